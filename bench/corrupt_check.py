#!/usr/bin/env python3
"""The corrupting-sender check for ipc_compare (ctest: ipc_compare_corrupting_sender).

For every transport ipc_compare lists (and the crosscore limit, whose reader
checks every block too):

 1. a clean run at 8 and 64 bytes (throughput) and 64 bytes (ping-pong) must
    pass: the receivers accept honest streams;
 2. the same cases with --corrupt_seq=10 (every sender flips one payload byte
    of record 10; at 8 bytes the record is its sequence number) must all
    fail, each with the receiver's rejection in its error message.

A case that cannot run on this machine (iceoryx without its RouDi daemon)
reports "skipped: ..." in both runs; it is listed, not counted as a pass.
Runs in about ten seconds. Usage: corrupt_check.py path/to/ipc_compare
"""
import json, os, re, subprocess, sys, tempfile

exe = sys.argv[1]
listed = subprocess.run([exe, "--benchmark_list_tests", "--unpinned=none"], check=True,
                        capture_output=True, text=True).stdout.split()
# Google Benchmark lists the registered names, with "/iterations:N" and
# "/real_time"; the reports carry the fixed names without them.
listed = [re.sub(r"(/iterations:\d+)?(/real_time)?$", "", n) for n in listed]
pat = re.compile(r"^(throughput/[a-z_]+/(8|64)|pingpong/[a-z_]+/64)$")
cases = [n for n in listed if pat.match(n) and "memcpy_limit" not in n]
transports = sorted({n.split("/")[1] for n in listed} - {"memcpy_limit", "cacheline_limit"})
missing = [t for t in transports if not any(c.split("/")[1] == t for c in cases)]
if missing:
    sys.exit(f"FAIL: transports without a case at 8 or 64 bytes: {missing}")


def run(extra):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "r.json")
        p = subprocess.run([exe, "--benchmark_filter=^(" + "|".join(map(re.escape, cases)) + ")$",
                            "--benchmark_min_time=0.01", "--rtt_count=2000", "--unpinned=none",
                            "--watchdog_s=60", f"--benchmark_out={out}", "--benchmark_out_format=json"] + extra,
                           capture_output=True, text=True, timeout=600)
        if p.returncode != 0:
            sys.exit(f"FAIL: ipc_compare exited with {p.returncode}\n{p.stderr}")
        runs = json.load(open(out))["benchmarks"]
    return {b["name"]: (b.get("error_message", "") if b.get("error_occurred") else None) for b in runs}


clean = run([])
bad = run(["--corrupt_seq=10"])
failures, skipped = [], []
for c in cases:
    e_clean, e_bad = clean.get(c, "not run"), bad.get(c, "not run")
    if e_clean and e_clean.startswith("skipped:"):
        skipped.append(f"{c}: {e_clean}")
        continue
    if e_clean is not None:
        failures.append(f"{c}: the clean run failed: {e_clean}")
    if e_bad is None:
        failures.append(f"{c}: a flipped payload byte was accepted")
    elif not re.search(r"rejected: (record|block) 10: (payload checksum|checksum|sequence number)", e_bad):
        failures.append(f"{c}: failed, but not by the receiver's check: {e_bad}")
    else:
        print(f"ok   {c}: {e_bad}")
for s in skipped:
    print(f"skip {s}")
if failures:
    print("\n".join("FAIL " + f for f in failures))
    sys.exit(1)
print(f"corrupting sender: {len(cases) - len(skipped)} cases over {len(transports)} transports rejected it"
      f" ({len(skipped)} skipped)")
