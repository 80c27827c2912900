"""Producer process for the multi-process tests (run with sys.executable).

    peer.py NAME COUNT MODE [TAG]

Sends COUNT records: 8-byte little-endian sequence number, 4-byte tag, then
a body whose length and bytes follow from the sequence number (records.body),
so the receiver can check every byte. MODE: send (copying) or reserve
(reserve/commit in place).
"""
import sys

import shmring
from records import HEADER, body


def main():
    name, count, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    tag = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    pack = HEADER.pack
    with shmring.Producer(name) as p:
        if mode == "send":
            send = p.send
            for seq in range(count):
                send(pack(seq, tag) + body(seq))
        elif mode == "reserve":
            for seq in range(count):
                b = body(seq)
                n = HEADER.size + len(b)
                buf = p.reserve(n)
                HEADER.pack_into(buf, 0, seq, tag)
                buf[HEADER.size:n] = b
                p.commit(n)
        else:
            raise SystemExit(f"unknown mode {mode}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
