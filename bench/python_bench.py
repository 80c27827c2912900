#!/usr/bin/env python3
"""Records per second between two Python processes: shmring against what a
Python user would otherwise pick.

Transports (one producer process, one consumer process, fork):
  shmring send/recv        copying calls (bytes in, bytes out)
  shmring zero-copy        reserve/commit in the producer, peek/release in the consumer
  mp.Queue                 multiprocessing.Queue put/get
  mp.Pipe                  multiprocessing.Pipe send_bytes/recv_bytes
  shared_memory+Lock       a multiprocessing.shared_memory ring of slots whose
                           indices are guarded by a multiprocessing.Lock (polling)

Every record carries its sequence number in its first and last 8 bytes; the
receiver checks both for every record (nothing lost, reordered or torn) and
counts only what it checked. Time runs from the consumer's first record to
its last. Each case runs --repeat times; the table shows the median.

    python3 bench/python_bench.py [--quick] [--repeat N] [--sizes 64,1048576]
"""
import argparse
import multiprocessing as mp
import os
import statistics
import struct
import sys
import time
from multiprocessing import shared_memory

import shmring

SEQ = struct.Struct("<Q")


def make_record(size):
    return bytearray(max(size, 16))


def stamp(rec, seq):
    SEQ.pack_into(rec, 0, seq)
    SEQ.pack_into(rec, len(rec) - 8, seq)


def check(rec, seq):
    if SEQ.unpack_from(rec, 0)[0] != seq or SEQ.unpack_from(rec, len(rec) - 8)[0] != seq:
        raise SystemExit(f"record {seq}: torn or out of order")


# ---- transports: producer(count, size, ctx) in the child, consumer(...) -> seconds -----------

class Shmring:
    label = "shmring send/recv"

    def __init__(self, size, count):
        self.name = f"/shmring-bench-py-{os.getpid()}"
        cap = 1 << max(20, (8 * (size + 64)).bit_length())  # at least 1 MiB, 8+ records
        shmring.create(self.name, capacity=cap)
        self.consumer = shmring.Consumer(self.name)

    def produce(self, size, count):
        self.consumer.close()
        rec = make_record(size)
        with shmring.Producer(self.name) as p:
            send = p.send
            for seq in range(count):
                stamp(rec, seq)
                send(rec)

    def consume(self, size, count):
        with self.consumer as c:
            recv = c.recv
            check(recv(), 0)
            t0 = time.perf_counter()
            for seq in range(1, count):
                check(recv(), seq)
            return time.perf_counter() - t0

    def close(self):
        shmring.unlink(self.name)


class ShmringZeroCopy(Shmring):
    label = "shmring zero-copy"

    def produce(self, size, count):
        self.consumer.close()
        n = max(size, 16)
        with shmring.Producer(self.name) as p:
            reserve, commit, pack = p.reserve, p.commit, SEQ.pack_into
            for seq in range(count):
                buf = reserve(n)
                pack(buf, 0, seq)
                pack(buf, n - 8, seq)
                commit(n)

    def consume(self, size, count):
        with self.consumer as c:
            peek, release = c.peek, c.release
            check(peek(), 0)
            release()
            t0 = time.perf_counter()
            for seq in range(1, count):
                check(peek(), seq)
                release()
            return time.perf_counter() - t0


class Queue:
    label = "mp.Queue"

    def __init__(self, size, count):
        self.q = mp.Queue(maxsize=1000 if size < 4096 else 8)

    def produce(self, size, count):
        rec = make_record(size)
        put = self.q.put
        for seq in range(count):
            stamp(rec, seq)
            put(bytes(rec))
        self.q.close()
        self.q.join_thread()

    def consume(self, size, count):
        get = self.q.get
        check(get(), 0)
        t0 = time.perf_counter()
        for seq in range(1, count):
            check(get(), seq)
        return time.perf_counter() - t0

    def close(self):
        pass


class Pipe:
    label = "mp.Pipe"

    def __init__(self, size, count):
        self.r, self.w = mp.Pipe(duplex=False)

    def produce(self, size, count):
        self.r.close()
        rec = make_record(size)
        send = self.w.send_bytes
        for seq in range(count):
            stamp(rec, seq)
            send(rec)

    def consume(self, size, count):
        self.w.close()
        recv = self.r.recv_bytes
        check(recv(), 0)
        t0 = time.perf_counter()
        for seq in range(1, count):
            check(recv(), seq)
        return time.perf_counter() - t0

    def close(self):
        self.r.close()


class SharedMemoryLock:
    """A ring of fixed slots in a SharedMemory block; head and tail counters
    at its start, read and written under one multiprocessing.Lock; both sides
    poll (yielding the CPU between polls)."""
    label = "shared_memory+Lock"

    def __init__(self, size, count):
        self.n = max(size, 16)
        self.slots = 64 if size < 4096 else 4
        self.shm = shared_memory.SharedMemory(create=True, size=16 + self.slots * self.n)
        self.shm.buf[:16] = bytes(16)
        self.lock = mp.Lock()

    def produce(self, size, count):
        buf, n, slots, lock = self.shm.buf, self.n, self.slots, self.lock
        idx = struct.Struct("<QQ")
        rec = make_record(size)
        for seq in range(count):
            while True:
                with lock:
                    head, tail = idx.unpack_from(buf, 0)
                if head - tail < slots:
                    break
                os.sched_yield()
            stamp(rec, seq)
            off = 16 + (head % slots) * n
            buf[off:off + n] = rec
            with lock:
                SEQ.pack_into(buf, 0, head + 1)
        del buf
        self.shm.close()

    def consume(self, size, count):
        buf, n, slots, lock = self.shm.buf, self.n, self.slots, self.lock
        idx = struct.Struct("<QQ")
        t0 = None
        for seq in range(count):
            while True:
                with lock:
                    head, tail = idx.unpack_from(buf, 0)
                if head != tail:
                    break
                os.sched_yield()
            off = 16 + (tail % slots) * n
            check(bytes(buf[off:off + n]), seq)
            with lock:
                SEQ.pack_into(buf, 8, tail + 1)
            if t0 is None:
                t0 = time.perf_counter()
        del buf
        return time.perf_counter() - t0

    def close(self):
        self.shm.close()
        self.shm.unlink()


TRANSPORTS = [Shmring, ShmringZeroCopy, Queue, Pipe, SharedMemoryLock]


def run_case(cls, size, count):
    t = cls(size, count)
    try:
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                t.produce(size, count)
            except BaseException as e:  # noqa: BLE001
                print(f"{cls.label} producer: {e!r}", file=sys.stderr)
                code = 1
            os._exit(code)
        secs = t.consume(size, count)
        _, status = os.waitpid(pid, 0)
        if status != 0:
            raise SystemExit(f"{cls.label}: producer failed")
        return (count - 1) / secs
    finally:
        t.close()


def counts(size, quick):
    scale = 0.2 if quick else 1.0
    if size <= 4096:
        base = {Shmring: 1_000_000, ShmringZeroCopy: 1_000_000, Queue: 100_000, Pipe: 300_000,
                SharedMemoryLock: 100_000}
    else:
        base = {Shmring: 2_000, ShmringZeroCopy: 5_000, Queue: 500, Pipe: 1_000, SharedMemoryLock: 1_000}
    return {k: max(100, int(v * scale)) for k, v in base.items()}


def human_size(n):
    return f"{n >> 20} MiB" if n >= 1 << 20 and n % (1 << 20) == 0 else (
        f"{n >> 10} KiB" if n >= 1024 and n % 1024 == 0 else f"{n} B")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a fifth of the records (a smoke run)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sizes", default="64,1048576")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"# python {sys.version.split()[0]}, shmring {shmring.__version__}, {os.cpu_count()} CPUs, "
          f"median of {args.repeat}")
    print("| size | transport | records/s | MB/s | vs mp.Queue |")
    print("|---|---|---:|---:|---:|")
    for size in sizes:
        n = counts(size, args.quick)
        rates = {}
        for cls in TRANSPORTS:
            runs = [run_case(cls, size, n[cls]) for _ in range(args.repeat)]
            rates[cls] = statistics.median(runs)
        q = rates[Queue]
        for cls in TRANSPORTS:
            r = rates[cls]
            print(f"| {human_size(size)} | {cls.label} | {r:,.0f} | {r * max(size, 16) / 1e6:,.0f} | {r / q:.1f}x |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
