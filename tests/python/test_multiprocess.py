"""Records between real processes: nothing lost, duplicated, reordered or torn."""
import os
import subprocess
import sys

import numpy as np
import pytest

import shmring
from records import HEADER, body

HERE = os.path.dirname(os.path.abspath(__file__))
COUNT = int(os.environ.get("SHMRING_PY_RECORDS", "1000000"))


def start_peer(name, count, mode, tag=0):
    return subprocess.Popen([sys.executable, os.path.join(HERE, "peer.py"), name, str(count), mode, str(tag)],
                            env=dict(os.environ, PYTHONPATH=os.pathsep.join([HERE, os.environ.get("PYTHONPATH", "")])))


def finish(procs):
    for p in procs:
        if p.poll() is None:
            try:
                p.wait(timeout=120)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    return [p.returncode for p in procs]


def test_million_records_send_recv(ring_name):
    """10^6 records from a producer process, received by copy and checked."""
    name = ring_name("spsc", capacity=1 << 16)
    with shmring.Consumer(name) as c:
        proc = start_peer(name, COUNT, "send")
        try:
            unpack_from, hsize, recv = HEADER.unpack_from, HEADER.size, c.recv
            for expect in range(COUNT):
                rec = recv(timeout=60)
                seq, tag = unpack_from(rec, 0)
                if seq != expect or tag != 0 or rec[hsize:] != body(expect):
                    pytest.fail(f"record {expect}: got seq {seq} tag {tag}, {len(rec)} bytes")
            with pytest.raises(shmring.PeerGone):  # the producer exited after the last one
                recv(timeout=60)
        finally:
            assert finish([proc]) == [0]


def test_records_reserve_commit_peek_release(ring_name):
    """Zero-copy on both sides: reserve/commit in the producer, peek/release
    (read through numpy without a copy) in the consumer."""
    count = COUNT // 5
    name = ring_name("spsc", capacity=1 << 14)
    with shmring.Consumer(name) as c:
        proc = start_peer(name, count, "reserve")
        try:
            hsize = HEADER.size
            for expect in range(count):
                view = c.peek(timeout=60)
                seq, tag = HEADER.unpack_from(view, 0)
                arr = np.frombuffer(view, dtype=np.uint8, offset=hsize)
                ok = seq == expect and tag == 0 and arr.tobytes() == body(expect)
                del arr
                c.release()
                if not ok:
                    pytest.fail(f"record {expect}: got seq {seq}")
            with pytest.raises(shmring.PeerGone):
                c.peek(timeout=60)
        finally:
            assert finish([proc]) == [0]


@pytest.mark.parametrize("kind,kw", [("mpmc", {"slot_size": 128}), ("locked", {})])
def test_two_producer_processes(ring_name, kind, kw):
    """Two producer processes into one ring: each one's records arrive once and in order."""
    count = COUNT // 10
    name = ring_name(kind, capacity=1 << 15, **kw)
    with shmring.Consumer(name) as c:
        procs = [start_peer(name, count, "send", tag) for tag in (1, 2)]
        try:
            nxt = {1: 0, 2: 0}
            for _ in range(2 * count):
                rec = c.recv(timeout=60)
                seq, tag = HEADER.unpack_from(rec, 0)
                if tag not in nxt or seq != nxt[tag] or rec[HEADER.size:] != body(seq):
                    pytest.fail(f"tag {tag}: got seq {seq}, expected {nxt.get(tag)}")
                nxt[tag] += 1
            assert nxt == {1: count, 2: count}
        finally:
            assert finish(procs) == [0, 0]
