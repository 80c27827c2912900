#!/usr/bin/env python3
"""Renders a tools/bench-report results folder: the generated section of
docs/benchmarks.md, gnuplot data and script for the charts, and the tables
on stdout (the headline). Standard library only.

usage: report.py RESULTS_DIR MODE WRITE_DOCS(0|1) REPO_ROOT

Every ipc_compare case ran --benchmark_repetitions times; a figure is the
median of the repetitions, with their min-max beside it.
"""
import json, math, os, re, statistics, sys

out, mode, docs, root = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4]
env = {}
for line in open(os.path.join(out, "run.env")):
    k, _, v = line.rstrip("\n").partition("=")
    env[k] = v
cmd_path = os.path.join(out, "commands.txt")
commands = open(cmd_path).read().strip().splitlines() if os.path.exists(cmd_path) else []


def load(name):
    """{case: [per-repetition run dicts]}, context."""
    try:
        d = json.load(open(os.path.join(out, name + ".json")))
    except (OSError, ValueError):
        return {}, {}
    res = {}
    for b in d.get("benchmarks", []):
        if b.get("run_type") == "aggregate":
            continue
        res.setdefault(b.get("run_name", b["name"]), []).append(b)
    return res, d.get("context", {})


ipc, ctx = load("ipc_compare")
drift, _ = load("drift")
wake, _ = load("wakeup_bench")
mpmc, _ = load("mpmc_bench")
ops, _ = load("ring_ops_bench")


def error_of(runs):
    for r in runs or []:
        if r.get("error_occurred"):
            return r.get("error_message", "error")
    return None


class Stat:
    def __init__(self, values):
        self.values = values
        self.med = statistics.median(values)
        self.lo = min(values)
        self.hi = max(values)


def stat(runs, field):
    if not runs or error_of(runs):
        return None
    v = [r[field] for r in runs if field in r]
    return Stat(v) if v else None


def tp(t, s, field="items_per_second", src=None):
    return stat((src or ipc).get(f"throughput/{t}/{s}"), field)


def pp(t, s, field="rtt_p50_ns", src=None, suffix=""):
    return stat((src or ipc).get(f"pingpong/{t}/{s}{suffix}"), field)


def fmt_rate(x):
    if x is None: return "–"
    for unit, f in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= f: return f"{x/f:.3g} {unit}"
    return f"{x:.3g}"


def fmt_bytes(x):
    if x is None: return "–"
    for unit, f in (("GB/s", 1e9), ("MB/s", 1e6), ("kB/s", 1e3)):
        if x >= f: return f"{x/f:.3g} {unit}"
    return f"{x:.3g} B/s"


def fmt_ns(x):
    if x is None: return "–"
    if x >= 1e6: return f"{x/1e6:.3g} ms"
    if x >= 1e3: return f"{x/1e3:.3g} µs"
    return f"{x:.0f} ns"


def fmt_ratio(x):
    if x is None: return "–"
    return f"{x:.2g}×" if x < 10 else (f"{x:.3g}×" if x < 1000 else f"{x:.0f}×")


def spread(st, f):
    """median [min–max] with the formatter f (numbers only, one unit)."""
    if st is None: return "–"
    if len(st.values) == 1: return f(st.med)
    return f"{f(st.med)} [{f(st.lo)}–{f(st.hi)}]"


def div(a, b):
    if a is None or b is None or b.med == 0: return None
    return a.med / b.med


def size_name(s):
    s = int(s)
    if s >= 1 << 20: return f"{s >> 20} MiB"
    if s >= 1024: return f"{s >> 10} KiB"
    return f"{s} B"


RING_REC = ["ring_spsc", "ring_spsc_spin", "ring_mpmc", "ring_mpmc_spin", "ring_locked", "ring_locked_spin"]
PEERS_SHM = ["boost_lockfree_spsc", "boost_lockfree_mpmc", "iceoryx"]
PEERS_KERNEL = ["pipe", "unix_stream", "unix_seqpacket", "posix_mq", "boost_mq"]
PER_RECORD = RING_REC + PEERS_SHM + PEERS_KERNEL
BATCHED = ["ring_spsc_batched", "ring_spsc_batched_spin", "pipe_batched"]
LIMITS = ["crosscore_limit", "memcpy_limit"]
SMALL, LARGE = [8, 64, 512], [4096, 65536, 1048576]
ALL_SIZES = SMALL + LARGE
PP_SIZES = [8, 64, 512, 4096]
HEAD_SIZES = [8, 64, 4096, 65536]
HEAD_PEERS = ["pipe", "pipe_batched", "boost_lockfree_spsc", "iceoryx"]


def present(ts, sizes):
    return [t for t in ts if any(f"throughput/{t}/{s}" in ipc for s in sizes)]


def sizes_present(ts, sizes):
    return [s for s in sizes if any(f"throughput/{t}/{s}" in ipc for t in ts)]


md = []
w = md.append

# ---- the run ----
reps = env.get("repetitions", "?")
marks = {
    "quick": f"**Quick run** (`tools/bench-report --quick`: every case, {reps} repetitions of a few hundredths "
             "of a second each, on a machine shared with other work). It shows the format; its numbers are not "
             "a measurement to quote. `tools/bench-report` on a quiet machine replaces it.",
    "short": f"**Short run** (`tools/bench-report --short`, the headline subset, {reps} repetitions).",
    "full": f"Full run: every case, {reps} repetitions each.",
}


def run_lines():
    return [
        marks.get(mode, mode),
        "",
        f"- Date: {env.get('date','?')}; commit {env.get('commit','?')}; run time {int(env.get('seconds', '0') or 0) // 60} min "
        f"{int(env.get('seconds', '0') or 0) % 60} s",
        f"- CPU: {env.get('cpu','?')}, {env.get('cores','?')} CPUs; kernel {env.get('kernel','?')}",
        f"- Load average (1, 5, 15 min) before the run: {env.get('load_before','?')}; after: {env.get('load_after','?')}",
        f"- Pinning: {ctx.get('pinning', 'producer CPU 0, consumer CPU 1')}",
        f"- Round-trip clock: {ctx.get('rtt_clock','?')}; round trips per ping-pong repetition: {ctx.get('rtt_count','?')}",
        f"- POSIX mq limits: {ctx.get('mq_limits','?')}",
        "- Each figure: the median of the repetitions, [min–max] of the repetitions beside it.",
    ] + [f"- Command: `{c.replace('bench-report: ', '')}`" for c in commands]


def rec(t, s): return tp(t, s)
def p50(t, s=8): return pp(t, s)


# ---- which to pick ----
def pick_rows():
    def both(t, s):
        return f"{spread(rec(t, s), fmt_rate)} records/s at {size_name(s)}"
    rows = [
        ("One producer, one consumer, a message at a time; the consumer may sleep", "`ring_spsc`", "spsc, futex",
         f"{both('ring_spsc', 64)}; ping-pong p50 {fmt_ns(p50('ring_spsc') and p50('ring_spsc').med)} at 8 B; "
         f"{fmt_ratio(div(rec('ring_spsc', 64), rec('pipe', 64)))} a pipe, "
         f"{fmt_ratio(div(rec('ring_spsc', 64), rec('boost_lockfree_spsc', 64)))} boost_lockfree_spsc at 64 B"),
        ("Lowest latency; each side has a core to itself", "`ring_spsc_spin`", "spsc, spin",
         f"ping-pong p50 {fmt_ns(p50('ring_spsc_spin') and p50('ring_spsc_spin').med)} at 8 B "
         f"(bare cache line: {fmt_ns(p50('cacheline_limit') and p50('cacheline_limit').med)}); {both('ring_spsc_spin', 64)}"),
        ("Streams: records may wait until 64 KiB of them are ready (`Publish::later`, then `flush`)", "`ring_spsc_batched`",
         "spsc, futex", f"{both('ring_spsc_batched', 64)}; {fmt_bytes(tp('ring_spsc_batched', 65536, 'bytes_per_second') and tp('ring_spsc_batched', 65536, 'bytes_per_second').med)} at 64 KiB "
         f"(crosscore limit {fmt_bytes(tp('crosscore_limit', 65536, 'bytes_per_second') and tp('crosscore_limit', 65536, 'bytes_per_second').med)})"),
        ("Several producers or consumers, records up to a fixed slot size", "`ring_mpmc`", "mpmc, futex",
         f"{both('ring_mpmc', 64)} with one of each (mpmc_bench below: more)"),
        ("Several producers or consumers, variable-size records", "`ring_locked`", "locked, futex",
         f"{both('ring_locked', 64)} with one of each"),
    ]
    out_rows = ["| use | pick | kind, wait | measured in this run (median [min–max]) |", "|---|---|---|---|"]
    for use, t, kw, fig in rows:
        out_rows.append(f"| {use} | {t} | {kw} | {fig} |")
    return out_rows


# ---- tables ----
def rate_table(ts, sizes, with_bytes=False):
    sizes = [s for s in sizes if any(f"throughput/{t}/{s}" in ipc for t in ts)]
    rows = ["| transport | " + " | ".join(size_name(s) for s in sizes) + " |", "|---|" + "---|" * len(sizes)]
    for t in ts:
        cells = []
        for s in sizes:
            runs = ipc.get(f"throughput/{t}/{s}")
            if runs is None:
                cells.append("–")
            elif error_of(runs):
                cells.append("skipped" if error_of(runs).startswith("skipped") else "error")
            else:
                c = spread(rec(t, s), fmt_rate)
                if with_bytes:
                    c += f"<br>{fmt_bytes(tp(t, s, 'bytes_per_second').med)}"
                cells.append(c)
        if all(c == "–" for c in cells): continue
        name = f"*{t}*" if t in LIMITS else t
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return rows


def ratio_table(ring, others, sizes):
    sizes = [s for s in sizes if f"throughput/{ring}/{s}" in ipc]
    rows = [f"| {ring} ÷ | " + " | ".join(size_name(s) for s in sizes) + " |", "|---|" + "---|" * len(sizes)]
    for t in others:
        cells = [fmt_ratio(div(rec(ring, s), rec(t, s))) for s in sizes]
        if all(c == "–" for c in cells): continue
        rows.append(f"| {'*' + t + '*' if t in LIMITS else t} | " + " | ".join(cells) + " |")
    return rows


def head_table():
    sizes = [s for s in HEAD_SIZES if f"throughput/ring_spsc/{s}" in ipc]
    rows = ["| records/s | " + " | ".join(size_name(s) for s in sizes) + " |", "|---|" + "---|" * len(sizes)]
    for t in ["ring_spsc"] + HEAD_PEERS + LIMITS:
        cells = []
        for s in sizes:
            st = rec(t, s)
            if st is None:
                cells.append("–")
                continue
            c = spread(st, fmt_rate)
            if t != "ring_spsc":
                lo = rec("ring_spsc", s)
                # the ratio's own spread: worst and best pairing of repetitions
                r = div(lo, st)
                c += f"<br>ring_spsc = {fmt_ratio(r)} [{fmt_ratio(lo.lo / st.hi)}–{fmt_ratio(lo.hi / st.lo)}]" if r else ""
            cells.append(c)
        rows.append(f"| {'*' + t + '*' if t in LIMITS else t} | " + " | ".join(cells) + " |")
    return rows


def pp_table():
    ts = ["cacheline_limit"] + [t for t in PER_RECORD if any(f"pingpong/{t}/{s}" in ipc for s in PP_SIZES)]
    sizes = [s for s in PP_SIZES if any(f"pingpong/{t}/{s}" in ipc for t in ts)]
    rows = ["| transport | " + " | ".join(f"p50 {size_name(s)}" for s in sizes) + " | 8 B: p99 / p99.9 | 8 B: p50 ÷ cache line |",
            "|---|" + "---|" * (len(sizes) + 2)]
    cl = p50("cacheline_limit")
    for t in ts:
        cells = []
        for s in sizes:
            runs = ipc.get(f"pingpong/{t}/{s}")
            if runs is None:
                cells.append("–")
            elif error_of(runs):
                cells.append("skipped" if error_of(runs).startswith("skipped") else "error")
            else:
                cells.append(spread(pp(t, s), fmt_ns))
        tail = f"{fmt_ns(pp(t, 8, 'rtt_p99_ns') and pp(t, 8, 'rtt_p99_ns').med)} / {fmt_ns(pp(t, 8, 'rtt_p999_ns') and pp(t, 8, 'rtt_p999_ns').med)}"
        rows.append(f"| {'*' + t + '*' if t == 'cacheline_limit' else t} | " + " | ".join(cells) +
                    f" | {tail} | {fmt_ratio(div(p50(t), cl))} |")
    return rows


# ---- the drift check ----
def drift_rows():
    rows = []
    for name, runs in drift.items():
        field = "items_per_second" if name.startswith("throughput") else "rtt_p50_ns"
        a, b = stat(ipc.get(name), field), stat(runs, field)
        if a is None or b is None:
            rows.append((name, None, None, None, "not measured"))
            continue
        change = b.med / a.med - 1
        moved = (b.med < a.lo or b.med > a.hi) and abs(change) > 0.05
        rows.append((name, a, b, change, "**moved**" if moved else "steady"))
    return rows


def fmt_field(name):
    return fmt_rate if name.startswith("throughput") else fmt_ns


# ---- Markdown ----
w("<!-- bench-report:begin (generated by tools/bench-report; edit outside these markers) -->")
w("")
w(f"### The run ({mode})")
w("")
md.extend(run_lines())
w("")
w("### Which to pick")
w("")
md.extend(pick_rows())
w("")
w("### ring_spsc against the peers a user would pick, and the limits")
w("")
w("Records/s, one record per message (`pipe_batched`: 64 KiB per `write()`), and what ring_spsc moves against each "
  "(the ratio of medians; in brackets its worst and best pairing of repetitions).")
w("")
md.extend(head_table())
w("")
w("### Message at a time (per record): records/s")
w("")
w("Every transport hands over each record on its own: the ring publishes every commit, the pipe and sockets "
  "do one `write()`/`send()` per record, the queues one send per record. The limits (italics) are not transports: "
  "`crosscore_limit` moves 64 KiB blocks between the two cores with one flag each (the most any transport can carry "
  "across), `memcpy_limit` is one core copying inside its own cache.")
w("")
w("Small records:")
w("")
md.extend(rate_table(PER_RECORD + LIMITS, SMALL))
w("")
w("Large records:")
w("")
md.extend(rate_table(PER_RECORD + LIMITS, LARGE))
w("")
w("![per-record throughput, small records](bench-per-record-small.png)")
w("![per-record throughput, large records](bench-per-record-large.png)")
w("")
w("ring_spsc against every other transport and the limits (ratio of median records/s):")
w("")
md.extend(ratio_table("ring_spsc", [t for t in PER_RECORD if t != "ring_spsc"] + LIMITS, ALL_SIZES))
w("")
w("### Bulk (batched): records/s and bytes/s")
w("")
w("The ring publishes once per 64 KiB of records (`Publish::later`), the pipe writes 64 KiB per `write()`; "
  "the reader takes what is there.")
w("")
md.extend(rate_table(BATCHED + LIMITS, ALL_SIZES, with_bytes=True))
w("")
w("![batched throughput](bench-batched.png)")
w("")
md.extend(ratio_table("ring_spsc_batched", [t for t in BATCHED if t != "ring_spsc_batched"] + LIMITS, ALL_SIZES))
w("")
w("### Ping-pong round trip")
w("")
w("p50 of each repetition's round trips: median [min–max] over the repetitions; the 8-byte p99 and p99.9 are "
  "medians too. `cacheline_limit`: two processes bouncing one atomic word, the floor.")
w("")
md.extend(pp_table())
w("")
w("![ping-pong round trip, 8 bytes](bench-latency.png)")
w("")
unp = sorted(k for k in ipc if k.endswith("/unpinned"))
if unp:
    w("### Unpinned (the scheduler places both processes)")
    w("")
    rows = ["| case | pinned | unpinned |", "|---|---|---|"]
    for k in unp:
        base = k[: -len("/unpinned")]
        field = "items_per_second" if k.startswith("throughput") else "rtt_p50_ns"
        f = fmt_rate if k.startswith("throughput") else fmt_ns
        label = base + (" (records/s)" if k.startswith("throughput") else " (p50)")
        rows.append(f"| {label} | {spread(stat(ipc.get(base), field), f)} | {spread(stat(ipc[k], field), f)} |")
    md.extend(rows)
    w("")
dr = drift_rows()
if dr:
    w("### Drift check")
    w("")
    moved = [r for r in dr if r[4] == "**moved**"]
    w("These cases ran again at the end of the run. A case *moved* when its end-of-run median lies outside the "
      "main run's min–max and differs from its median by more than 5%." +
      (f" **{len(moved)} of {len(dr)} moved: the machine's state changed during the run; read the tables with that "
       "in mind.**" if moved else " None moved."))
    w("")
    w("| case | main run | end of run | change | |")
    w("|---|---|---|---|---|")
    for name, a, b, ch, verdict in dr:
        f = fmt_field(name)
        w(f"| {name} | {spread(a, f)} | {spread(b, f)} | {'–' if ch is None else f'{ch*100:+.0f}%'} | {verdict} |")
    w("")
errors = [(k, error_of(v)) for src in (ipc, wake, mpmc, ops) for k, v in src.items() if error_of(v)]
skips = [(k, e) for k, e in errors if e.startswith("skipped")]
errors = [(k, e) for k, e in errors if not e.startswith("skipped")]
if skips:
    w("### Skipped cases")
    w("")
    reasons = {}
    for k, e in skips:
        reasons.setdefault(e, []).append(k)
    for e, ks in reasons.items():
        w(f"- {len(ks)} cases ({', '.join(sorted({k.split('/')[1] for k in ks}))}): {e}")
    w("")
if errors:
    w("### Cases that reported an error")
    w("")
    md.extend(["| case | error |", "|---|---|"] + [f"| {k} | {e} |" for k, e in errors])
    w("")


def first(runs):
    return runs[0] if runs else {}


if wake:
    w("### Wake-up (wakeup_bench, 8-byte messages, pinned)")
    w("")
    w("| strategy | pattern | round trip p50 / p99 / p99.9 | one-way wake p50 / p99 / p99.9 | receiver sleeps per round trip |")
    w("|---|---|---|---|---|")
    for k, runs in wake.items():
        b = first(runs)
        if error_of(runs): continue
        _, s, pat = k.split("/")
        w(f"| {s} | {pat} | {fmt_ns(b['rtt_p50_ns'])} / {fmt_ns(b['rtt_p99_ns'])} / {fmt_ns(b['rtt_p999_ns'])} | "
          f"{fmt_ns(b['wake_p50_ns'])} / {fmt_ns(b['wake_p99_ns'])} / {fmt_ns(b['wake_p999_ns'])} | {b['peer_sleeps_per_rt']:.2f} |")
    w("")
if mpmc:
    w("### Many producers, many consumers (mpmc_bench, records/s)")
    w("")
    w("Producers on CPU 0, consumers on CPU 1: 2P2C and 4P4C are oversubscribed on this 2-CPU machine.")
    w("")
    cols, queues = [], []
    for k in mpmc:
        _, q, kind, pc, s = k.split("/")
        if (kind, pc, s) not in cols: cols.append((kind, pc, s))
        if q not in queues: queues.append(q)
    for kind in ("threads", "procs"):
        sub = [c for c in cols if c[0] == kind]
        if not sub: continue
        w(f"{kind}:")
        w("")
        w("| queue | " + " | ".join(f"{pc} {s} B" for _, pc, s in sub) + " |")
        w("|---|" + "---|" * len(sub))
        for q in queues:
            cells = []
            for _, pc, s in sub:
                runs = mpmc.get(f"mpmc/{q}/{kind}/{pc}/{s}")
                cells.append(fmt_rate(first(runs).get("items_per_second")) if runs and not error_of(runs) else ("error" if runs else "–"))
            w(f"| {q} | " + " | ".join(cells) + " |")
        w("")
if ops:
    w("### Ring operations in one thread (ring_ops_bench)")
    w("")
    w("| case | ns per record (or per call) | records/s |")
    w("|---|---|---|")
    for k, runs in ops.items():
        if error_of(runs): continue
        b = first(runs)
        if "ns_per_record" in b:
            nsr = b["ns_per_record"] * 1e9 if b["ns_per_record"] < 1e-3 else b["ns_per_record"]
        elif b.get("items_per_second"):
            nsr = 1e9 / b["items_per_second"]
        else:
            nsr = b["real_time"] * {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[b.get("time_unit", "ns")]
        extra = ""
        if "skips_per_lap" in b:
            extra = f" (skips/lap {b['skips_per_lap']:.0f}, wasted {b['wasted_bytes_per_lap']:.0f} B/lap)"
        w(f"| {k}{extra} | {nsr:.1f} | {fmt_rate(b.get('items_per_second'))} |")
    w("")
w("<!-- bench-report:end -->")
generated = "\n".join(md) + "\n"
open(os.path.join(out, "benchmarks-generated.md"), "w").write(generated)

# ---- charts: gnuplot data (x median min max per transport) and script ----
palette = ["#1f77b4", "#2ca02c", "#17becf", "#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#aec7e8", "#98df8a", "#ff9896", "#c5b0d5", "#000000", "#555555"]
title_machine = f"{env.get('cpu','?')}, {env.get('cores','?')} CPUs, pinned, {env.get('date','')}, {mode} run"


def rate_chart(fname, ts, sizes, title):
    ts = [t for t in ts if any(rec(t, s) for s in sizes)]
    sizes = [s for s in sizes if any(rec(t, s) for t in ts)]
    if not ts or not sizes:
        return ""
    dat = os.path.join(out, fname + ".dat")
    with open(dat, "w") as f:
        for t in ts:
            f.write(f'"{t}"\n')
            for s in sizes:
                st = rec(t, s)
                if st: f.write(f"{s} {st.med:.6g} {st.lo:.6g} {st.hi:.6g}\n")
            f.write("\n\n")
    plots = []
    for i, t in enumerate(ts):
        dt = 2 if t in LIMITS else (1 if t.startswith("ring") else 4)
        lw = 3 if t.startswith("ring") else 2
        plots.append(f'"{dat}" index {i} using 1:2:3:4 with yerrorlines lw {lw} lc rgb "{palette[i % len(palette)]}" '
                     f'pt {i % 13 + 1} dt {dt} title "{t}"')
    return f"""reset
set terminal pngcairo size 1100,650 font ",10" noenhanced
set output "{out}/{fname}.png"
set title "{title}\\n{title_machine}; median, bars: min-max of the repetitions"
set logscale x 2
set logscale y 10
set xlabel "record size (bytes)"
set ylabel "records/s (log)"
set key outside right top
set grid
set xtics ({", ".join(f'"{size_name(s)}" {s}' for s in sizes)})
set xrange [{sizes[0] / 1.6}:{sizes[-1] * 1.6}]
plot {", ".join(plots)}
"""


def latency_chart():
    ts = ["cacheline_limit"] + [t for t in PER_RECORD if p50(t)]
    ts = [t for t in ts if p50(t)]
    if not ts:
        return ""
    dat = os.path.join(out, "latency.dat")
    with open(dat, "w") as f:
        for t in ts:
            vals = []
            for fld in ("rtt_p50_ns", "rtt_p99_ns", "rtt_p999_ns"):
                st = pp(t, 8, fld)
                vals += [st.med / 1e3, st.lo / 1e3, st.hi / 1e3]
            f.write(f"{t} " + " ".join(f"{v:.6g}" for v in vals) + "\n")
    return f"""reset
set terminal pngcairo size 1100,650 font ",10" noenhanced
set output "{out}/bench-latency.png"
set grid ytics
set logscale y 10
set title "Ping-pong round trip, 8-byte messages (p50, p99, p99.9)\\n{title_machine}; median, bars: min-max of the repetitions"
set style data histograms
set style histogram errorbars gap 1 lw 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set xtics rotate by -35 nomirror
set key inside left top
set ylabel "round trip (µs, log)"
set yrange [0.05:*]
plot "{dat}" using 2:3:4:xtic(1) title "p50", "" using 5:6:7 title "p99", "" using 8:9:10 title "p99.9"
"""


with open(os.path.join(out, "charts.gp"), "w") as f:
    f.write(rate_chart("bench-per-record-small", PER_RECORD + LIMITS, SMALL, "Per-record throughput, small records"))
    f.write(rate_chart("bench-per-record-large", PER_RECORD + LIMITS, LARGE, "Per-record throughput, large records"))
    f.write(rate_chart("bench-batched", BATCHED + LIMITS + ["ring_spsc"], ALL_SIZES, "Batched throughput (ring_spsc per record for reference)"))
    f.write(latency_chart())

# ---- stdout: the same tables in short form ----
def line(label, cells, width=24, cw=13):
    return f"{label:<{width}}" + "".join(f"{c:>{cw}}" for c in cells)


def short_spread(st, f):
    if st is None: return "–"
    return f(st.med) if len(st.values) == 1 else f"{f(st.med)}±{(st.hi - st.lo) / 2 / st.med * 100:.0f}%"


print()
print(f"== shmring benchmarks ({mode}, {reps} repetitions; median, ±half the min-max range): {env.get('cpu','?')}, "
      f"{env.get('cores','?')} CPUs, load {env.get('load_before','?')} -> {env.get('load_after','?')}")
for title, ts, sizes in (("per record, records/s", PER_RECORD + LIMITS, SMALL),
                         ("per record, records/s", PER_RECORD + LIMITS, LARGE),
                         ("batched, records/s", BATCHED + LIMITS, ALL_SIZES)):
    ts = [t for t in ts if any(rec(t, s) for s in sizes)]
    sizes = [s for s in sizes if any(rec(t, s) for t in ts)]
    if not ts: continue
    print()
    print(line(title, [size_name(s) for s in sizes]))
    for t in ts:
        print(line(t, [short_spread(rec(t, s), fmt_rate) for s in sizes]))
sizes = [s for s in ALL_SIZES if rec("ring_spsc", s)]
others = [t for t in PER_RECORD + LIMITS if t != "ring_spsc" and any(rec(t, s) for s in sizes)]
if sizes and others:
    print()
    print(line("ring_spsc ÷", [size_name(s) for s in sizes]))
    for t in others:
        print(line(t, [fmt_ratio(div(rec("ring_spsc", s), rec(t, s))) for s in sizes]))
if any(rec("ring_spsc_batched", s) for s in ALL_SIZES):
    sizes = [s for s in ALL_SIZES if rec("ring_spsc_batched", s)]
    print()
    print(line("ring_spsc_batched ÷", [size_name(s) for s in sizes]))
    for t in ["pipe_batched"] + LIMITS:
        if any(rec(t, s) for s in sizes):
            print(line(t, [fmt_ratio(div(rec("ring_spsc_batched", s), rec(t, s))) for s in sizes]))
ts = [t for t in ["cacheline_limit"] + PER_RECORD if p50(t)]
if ts:
    cl = p50("cacheline_limit")
    print()
    print(line("ping-pong 8 B", ["p50", "p99", "p99.9", "p50/limit"]))
    for t in ts:
        print(line(t, [short_spread(p50(t), fmt_ns), fmt_ns(pp(t, 8, "rtt_p99_ns").med),
                       fmt_ns(pp(t, 8, "rtt_p999_ns").med), fmt_ratio(div(p50(t), cl))]))
if dr:
    print()
    print("drift check (the same cases again at the end):")
    for name, a, b, ch, verdict in dr:
        f = fmt_field(name)
        print(f"  {name:<36} {spread(a, f):>28} -> {spread(b, f):>28}  "
              f"{'' if ch is None else f'{ch*100:+.0f}%'} {verdict.replace('*', '')}")
if skips:
    print()
    for e in sorted({e for _, e in skips}):
        print(f"skipped: {e[len('skipped: '):] if e.startswith('skipped: ') else e}")
if errors:
    print()
    for k, e in errors:
        print(f"ERROR {k}: {e}")
print()

if docs:
    path = os.path.join(root, "docs", "benchmarks.md")
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n\n<!-- bench-report:begin -->\n<!-- bench-report:end -->\n"
    a = text.find("<!-- bench-report:begin")
    e = text.find("<!-- bench-report:end -->")
    if a < 0 or e < 0:
        text = text.rstrip("\n") + "\n\n" + generated
    else:
        text = text[:a] + generated + text[e + len("<!-- bench-report:end -->") + 1:]
    open(path, "w").write(text)
