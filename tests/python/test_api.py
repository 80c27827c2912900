"""Single-process semantics of the shmring Python package."""
import threading
import time

import numpy as np
import pytest

import shmring


def test_send_recv_roundtrip(ring):
    with shmring.Producer(ring) as p, shmring.Consumer(ring) as c:
        for i in range(100):
            p.send(i.to_bytes(4, "little") * (i % 7))
        for i in range(100):
            assert c.recv(timeout=0) == i.to_bytes(4, "little") * (i % 7)
    assert p.closed and c.closed


def test_send_accepts_any_buffer(ring):
    with shmring.Producer(ring) as p, shmring.Consumer(ring) as c:
        p.send(bytearray(b"ab"))
        p.send(memoryview(b"xcdx")[1:3])
        p.send(np.arange(4, dtype=np.uint16))
        assert c.recv(0) == b"ab"
        assert c.recv(0) == b"cd"
        assert np.array_equal(np.frombuffer(c.recv(0), dtype=np.uint16), np.arange(4))


@pytest.mark.parametrize("kind,kw", [("spsc", {}), ("mpmc", {"slot_size": 64}), ("locked", {})])
def test_every_kind(ring_name, kind, kw):
    name = ring_name(kind, capacity=1 << 12, **kw)
    with shmring.Producer(name) as p, shmring.Consumer(name) as c:
        p.send(b"abc")
        buf = p.reserve(5)
        buf[:5] = b"hello"
        p.commit(5)
        assert c.recv(0) == b"abc"
        assert bytes(c.peek(0)) == b"hello"
        c.release()


def test_error_classes_carry_codes(ring):
    expected = {
        "WouldBlock": shmring.EWOULDBLOCK, "Timeout": shmring.ETIMEDOUT, "PeerGone": shmring.EPEERGONE,
        "Busy": shmring.EBUSY, "Exists": shmring.EEXIST, "NotFound": shmring.ENOENT,
        "PermissionDenied": shmring.EPERM, "Corrupt": shmring.ECORRUPT, "VersionMismatch": shmring.EVERSION,
        "TooBig": shmring.ETOOBIG, "Reset": shmring.ERESET, "InvalidArgument": shmring.EINVAL,
        "NoSpace": shmring.ENOSPC, "SystemFailure": shmring.ESYSTEM,
    }
    # The C values are the fixed contract (shmring.h).
    assert [shmring.EWOULDBLOCK, shmring.ETIMEDOUT, shmring.EPEERGONE, shmring.EINVAL] == [-1, -2, -3, -12]
    for cls_name, code in expected.items():
        cls = getattr(shmring, cls_name)
        assert issubclass(cls, shmring.Error)
        assert cls.code == code
        assert shmring.strerror(code)
    with pytest.raises(shmring.Exists) as ei:
        shmring.create(ring)
    assert ei.value.code == shmring.EEXIST
    assert ring in str(ei.value)
    with pytest.raises(shmring.NotFound):
        shmring.Consumer(ring + "_none")
    with pytest.raises(shmring.InvalidArgument):
        shmring.create(ring + "_x", kind="broadcastx")
    with pytest.raises(shmring.InvalidArgument):
        shmring.create(ring + "_x", capacity=1000)
    with pytest.raises(shmring.Busy):
        with shmring.Producer(ring), shmring.Producer(ring):
            pass


def test_timeouts(ring):
    with shmring.Producer(ring) as p, shmring.Consumer(ring) as c:
        with pytest.raises(shmring.WouldBlock):
            c.recv(timeout=0)
        t0 = time.monotonic()
        with pytest.raises(shmring.Timeout) as ei:
            c.peek(timeout=0.05)
        assert ei.value.code == shmring.ETIMEDOUT
        # The wait lasts at least the timeout; the upper bound is generous
        # (a loaded machine), it only catches "waited forever".
        assert 0.05 <= time.monotonic() - t0 < 30
        with pytest.raises(shmring.InvalidArgument):
            c.recv(timeout=-1)
        # Fill the ring: a try-once send then says WouldBlock, a timed one Timeout.
        with pytest.raises(shmring.WouldBlock):
            while True:
                p.send(b"x" * 1000, timeout=0)
        with pytest.raises(shmring.Timeout):
            p.send(b"x" * 1000, timeout=0.01)


def test_peer_gone_after_producer_closes(ring):
    with shmring.Consumer(ring) as c:
        with shmring.Producer(ring) as p:
            p.send(b"last")
        assert c.recv(timeout=None) == b"last"
        with pytest.raises(shmring.PeerGone):
            c.recv(timeout=None)


def test_too_big(ring):
    with shmring.Producer(ring) as p, shmring.Consumer(ring) as c:
        with pytest.raises(shmring.TooBig):
            p.send(b"x" * (p.max_record + 1))
        p.send(b"y" * 100)
        small = bytearray(10)
        with pytest.raises(shmring.TooBig):
            c.recv_into(small, timeout=0)
        big = bytearray(200)
        assert c.recv_into(big, timeout=0) == 100  # the record stayed in the ring
        assert big[:100] == b"y" * 100


def test_peek_view_is_readonly_zero_copy_and_dies_with_release(ring):
    with shmring.Producer(ring) as p, shmring.Consumer(ring) as c:
        p.send(bytes(range(16)))
        view = c.peek(0)
        assert view.readonly and len(view) == 16
        with pytest.raises(TypeError):
            view[0] = 1
        arr = np.frombuffer(view, dtype=np.uint8)
        assert not arr.flags.owndata and not arr.flags.writeable
        # Zero copy: peeking again gives a view of the same bytes.
        assert np.frombuffer(c.peek(0), dtype=np.uint8).__array_interface__["data"][0] == \
            arr.__array_interface__["data"][0]
        # A live numpy array (or slice) keeps the record: release refuses.
        with pytest.raises(BufferError):
            c.release()
        del arr
        part = view[2:4]
        with pytest.raises(BufferError):
            c.release()
        assert bytes(part) == b"\x02\x03"
        view.release()  # the caller's own view going first changes nothing
        with pytest.raises(BufferError):
            c.release()
        del part
        view2 = c.peek(0)
        c.release()
        with pytest.raises(ValueError):  # released memoryview
            view2[0]
        with pytest.raises(shmring.WouldBlock):
            c.peek(0)


def test_reserve_view_is_writable_and_dies_with_commit(ring):
    with shmring.Producer(ring) as p, shmring.Consumer(ring) as c:
        buf = p.reserve(64)
        assert not buf.readonly and len(buf) == 64
        arr = np.frombuffer(buf, dtype=np.uint32)
        arr[:] = np.arange(16, dtype=np.uint32)
        with pytest.raises(BufferError):
            p.commit(64)
        del arr
        p.commit(64)
        with pytest.raises(ValueError):
            buf[0] = 1
        assert np.array_equal(np.frombuffer(c.recv(0), dtype=np.uint32), np.arange(16))


def test_exporter_cannot_be_reused_after_release(ring):
    with shmring.Producer(ring) as p, shmring.Consumer(ring) as c:
        p.send(b"abc")
        view = c.peek(0)
        exporter = view.obj
        c.release()
        with pytest.raises(BufferError):
            memoryview(exporter)


def test_close_refuses_while_a_view_lives(ring):
    p = shmring.Producer(ring)
    c = shmring.Consumer(ring)
    p.send(b"abc")
    arr = np.frombuffer(c.peek(0), dtype=np.uint8)
    with pytest.raises(BufferError):
        c.close()
    assert not c.closed
    del arr
    c.close()
    p.close()
    with pytest.raises(shmring.InvalidArgument):
        c.recv(0)


def test_recv_refuses_while_peeked(ring):
    with shmring.Producer(ring) as p, shmring.Consumer(ring) as c:
        p.send(b"a")
        p.send(b"b")
        view = c.peek(0)
        with pytest.raises(ValueError):
            c.recv(0)
        assert bytes(view) == b"a"
        c.release()
        assert c.recv(0) == b"b"


def test_blocking_call_releases_the_gil(ring):
    """A thread blocked in recv() must let other Python threads run.

    The main thread proves it runs while the worker is inside recv(): calling
    the same handle then fails with "used by two threads" (the handle's busy
    flag, only set inside a call). With the GIL held across the wait, the main
    thread could not run until the worker's recv() returned, would never see
    that, and the worker would time out.
    """
    with shmring.Producer(ring) as p, shmring.Consumer(ring) as c:
        result = {}

        def worker():
            try:
                result["data"] = c.recv(timeout=20)
            except Exception as e:  # noqa: BLE001 - reported below
                result["error"] = e

        t = threading.Thread(target=worker)
        t.start()
        seen_busy = False
        deadline = time.monotonic() + 20
        while t.is_alive() and time.monotonic() < deadline:
            try:
                c.recv(timeout=0)
            except RuntimeError:
                seen_busy = True
                break
            except shmring.WouldBlock:
                pass  # the worker has not entered recv() yet
        p.send(b"wake")
        t.join()
        assert seen_busy, result
        assert result == {"data": b"wake"}


def test_deferred_commit_and_flush(ring):
    with shmring.Producer(ring) as p, shmring.Consumer(ring) as c:
        for i in range(3):
            buf = p.reserve(1)
            buf[0] = i
            p.commit_deferred(1)
        with pytest.raises(shmring.WouldBlock):
            c.recv(0)
        p.flush()
        assert [c.recv(0) for _ in range(3)] == [b"\0", b"\1", b"\2"]
