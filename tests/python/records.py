"""The record format shared by peer.py and the multi-process tests."""
import struct

HEADER = struct.Struct("<QI")  # sequence number, producer tag
_PATTERN = bytes((i * 131 + 7) & 0xFF for i in range(512))


def body(seq):
    """0..60 bytes, a window of a fixed pattern chosen by seq."""
    off = seq % 251
    return _PATTERN[off:off + seq % 61]
