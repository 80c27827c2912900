"""The shipped example and benchmark run and check what they receive."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(*args):
    out = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_frames_example():
    out = run(os.path.join(ROOT, "tools/python/examples/frames.py"), "--frames", "30", "--width", "64",
              "--height", "48")
    assert "30 frames 64x48x3 received and checked" in out
    assert "0 copies on the reader side" in out


def test_bench_smoke():
    out = run(os.path.join(ROOT, "bench/python_bench.py"), "--quick", "--repeat", "1", "--sizes", "64")
    assert out.count("| 64 B |") == 5
