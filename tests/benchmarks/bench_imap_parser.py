"""Throughput of the pure IMAP response parser (a script, not a test).

    .venv/bin/python tests/benchmarks/bench_imap_parser.py [--quick]

Prints MB/s for FETCH BODY[] streams (messages as literals, fed in 64 KB chunks like a socket
read) and lines/s for metadata FETCH lines (UID RFC822.SIZE FLAGS INTERNALDATE [MODSEQ]).
Targets (docs/mail-core.md): >= 200 MB/s and >= 50,000 lines/s on the 2-core lab machine.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Iterator

from mailsync.core.parser import FetchResp, ResponseParser

CHUNK = 64 * 1024


def body_stream(count: int, size: int) -> bytes:
    rnd = random.Random(1)
    out = []
    for i in range(1, count + 1):
        body = bytes(rnd.getrandbits(8) for _ in range(64)) * (size // 64)
        out.append(
            b'* %d FETCH (UID %d FLAGS (\\Seen) INTERNALDATE "17-Jul-1996 02:44:25 -0700" '
            b"BODY[] {%d}\r\n%s)\r\n" % (i, i, len(body), body)
        )
    out.append(b"a1 OK Fetch completed.\r\n")
    return b"".join(out)


def meta_stream(count: int, modseq: bool) -> bytes:
    out = []
    for i in range(1, count + 1):
        ms = b" MODSEQ (%d)" % (i + 100) if modseq else b""
        out.append(
            b"* %d FETCH (UID %d RFC822.SIZE %d FLAGS (\\Seen $Forwarded) "
            b'INTERNALDATE "%02d-Jul-2024 02:44:25 +0200"%s)\r\n'
            % (i, i * 3, 1000 + i, 1 + i % 28, ms)
        )
    out.append(b"a1 OK Fetch completed.\r\n")
    return b"".join(out)


def chunks(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def run(data: bytes, repeat: int) -> tuple[float, int]:
    best = float("inf")
    count = 0
    for _ in range(repeat):
        parts = list(chunks(data, CHUNK))
        parser = ResponseParser()
        t0 = time.perf_counter()
        count = 0
        for part in parts:
            count += sum(1 for r in parser.feed(part) if isinstance(r, FetchResp))
        best = min(best, time.perf_counter() - t0)
    return best, count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    args = ap.parse_args()
    n_body, n_meta, repeat = (200, 20_000, 2) if args.quick else (2_000, 200_000, 3)
    for size in (4 * 1024, 50 * 1024, 1024 * 1024):
        count = max(4, n_body * 50 * 1024 // size // 4)
        data = body_stream(count, size)
        secs, got = run(data, repeat)
        assert got == count
        print(f"FETCH BODY[] {size // 1024:5d} KB x {count:5d}: {len(data) / secs / 1e6:8.0f} MB/s")
    for modseq in (False, True):
        data = meta_stream(n_meta, modseq)
        secs, got = run(data, repeat)
        assert got == n_meta
        label = "FETCH meta + MODSEQ" if modseq else "FETCH meta        "
        print(f"{label} x {n_meta}: {n_meta / secs:10.0f} lines/s")


if __name__ == "__main__":
    main()
