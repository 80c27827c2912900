#!/usr/bin/env python3
"""Pass numpy video frames between two processes through a shmring ring.

The producer (a forked child) renders each frame straight into the ring
(reserve -> numpy array over the reserved bytes -> commit). The consumer
reads each frame in place: peek() returns a read-only memoryview into the
ring and np.frombuffer wraps it without copying; the frame is checked, then
released.

    python3 tools/python/examples/frames.py [--frames N] [--width W] [--height H]
"""
import argparse
import os
import struct
import sys
import time

import numpy as np

import shmring

HEADER = struct.Struct("<QII")  # frame number, width, height


def render(frame_no, out):
    """A moving gradient: pixel (y, x) = (x + y + frame_no) mod 256, in 3 channels."""
    h, w, _ = out.shape
    base = (np.arange(w, dtype=np.uint16)[None, :] + np.arange(h, dtype=np.uint16)[:, None] + frame_no) & 0xFF
    out[:, :, 0] = base
    out[:, :, 1] = 255 - base
    out[:, :, 2] = frame_no & 0xFF


def producer(name, frames, w, h):
    size = HEADER.size + w * h * 3
    with shmring.Producer(name) as p:
        for i in range(frames):
            buf = p.reserve(size)
            HEADER.pack_into(buf, 0, i, w, h)
            img = np.frombuffer(buf, dtype=np.uint8, offset=HEADER.size).reshape(h, w, 3)
            render(i, img)
            del img  # the view must be gone before commit
            p.commit(size)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    args = ap.parse_args()
    w, h = args.width, args.height
    frame_bytes = HEADER.size + w * h * 3
    capacity = 1 << max(16, (4 * frame_bytes).bit_length())  # room for about 4 frames
    name = f"/shmring-example-frames-{os.getpid()}"
    shmring.create(name, capacity=capacity)
    try:
        consumer = shmring.Consumer(name)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                consumer.close()
                producer(name, args.frames, w, h)
            except BaseException as e:  # noqa: BLE001
                print(f"producer: {e!r}", file=sys.stderr)
                code = 1
            os._exit(code)
        expected = np.empty((h, w, 3), dtype=np.uint8)
        t0 = time.perf_counter()
        copies = 0
        with consumer as c:
            for i in range(args.frames):
                view = c.peek(timeout=30)
                no, fw, fh = HEADER.unpack_from(view, 0)
                frame = np.frombuffer(view, dtype=np.uint8, offset=HEADER.size).reshape(fh, fw, 3)
                copies += frame.base is None or frame.flags.owndata  # 0: a view of the ring
                render(i, expected)
                if no != i or (fw, fh) != (w, h) or not np.array_equal(frame, expected):
                    raise SystemExit(f"frame {i}: wrong content (got frame {no}, {fw}x{fh})")
                del frame
                c.release()
        dt = time.perf_counter() - t0
        _, status = os.waitpid(pid, 0)
        if status != 0:
            raise SystemExit("producer failed")
        mib = args.frames * frame_bytes / 2**20
        print(f"{args.frames} frames {w}x{h}x3 received and checked in {dt:.2f} s: "
              f"{args.frames / dt:.0f} frames/s, {mib / dt:.0f} MiB/s, {copies} copies on the reader side")
    finally:
        shmring.unlink(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
