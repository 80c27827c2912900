"""shmring: zero-copy ring buffers in POSIX shared memory.

    shmring.create("/frames", kind="spsc", capacity=1 << 24)
    with shmring.Producer("/frames") as p:
        p.send(b"record")
    with shmring.Consumer("/frames") as c:
        view = c.peek()        # read-only memoryview into the ring
        ...
        c.release()            # the view is released with the record

Timeouts: None waits forever, 0 tries once, a number waits at most that many
seconds. Errors are subclasses of shmring.Error carrying .code, the C return
code. See docs/python.md.
"""

from ._native import (  # noqa: F401
    LAYOUT_VERSION,
    Busy,
    Consumer,
    Corrupt,
    Error,
    Exists,
    InvalidArgument,
    NoSpace,
    NotFound,
    PeerGone,
    PermissionDenied,
    Producer,
    Reset,
    SystemFailure,
    Timeout,
    TooBig,
    VersionMismatch,
    WouldBlock,
    __version__,
    create,
    strerror,
    unlink,
    OK,
    EWOULDBLOCK,
    ETIMEDOUT,
    EPEERGONE,
    EBUSY,
    EEXIST,
    ENOENT,
    EPERM,
    ECORRUPT,
    EVERSION,
    ETOOBIG,
    ERESET,
    EINVAL,
    ENOSPC,
    ESYSTEM,
)

__all__ = [
    "create", "unlink", "strerror", "Producer", "Consumer",
    "Error", "WouldBlock", "Timeout", "PeerGone", "Busy", "Exists", "NotFound",
    "PermissionDenied", "Corrupt", "VersionMismatch", "TooBig", "Reset",
    "InvalidArgument", "NoSpace", "SystemFailure",
]
