"""The classic "N mails over IMAP" experiment with stdlib imaplib: one FETCH per message.

``spec``: ``host``, ``port``, ``user``, ``password``, ``folder``, ``count`` (messages 1..count
by sequence number), ``mode`` (sequential | threads | gevent) and ``concurrency`` (connections;
each thread or greenlet logs in on its own connection and fetches its share). The time includes
connecting and logging in, as the classic measurement did. Bytes are checked: a message that
comes back empty counts as an error.
"""

from __future__ import annotations

import contextlib
import imaplib
from collections.abc import Sequence
from typing import Any

__all__ = ["fetch_messages", "run"]


def fetch_messages(spec: dict[str, Any], numbers: Sequence[int]) -> tuple[int, int]:
    """Log in, EXAMINE the folder and ``FETCH n (RFC822)`` each number; (messages, bytes)."""
    if not numbers:
        return 0, 0
    conn = imaplib.IMAP4(spec["host"], int(spec["port"]), timeout=float(spec.get("timeout", 60)))
    ok = size = 0
    try:
        conn.login(spec["user"], spec["password"])
        typ, _ = conn.select(_quoted(spec["folder"]), readonly=True)
        if typ != "OK":
            raise RuntimeError(f"cannot EXAMINE {spec['folder']}")
        for n in numbers:
            typ, data = conn.fetch(str(n), "(RFC822)")
            body = _body(data) if typ == "OK" else b""
            if body:
                ok, size = ok + 1, size + len(body)
    finally:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            conn.logout()  # closes the socket too
    return ok, size


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _body(data: list[Any]) -> bytes:
    for part in data:
        if isinstance(part, tuple) and len(part) == 2 and isinstance(part[1], bytes):
            return part[1]
    return b""


def run(spec: dict[str, Any]) -> dict[str, Any]:
    count = int(spec["count"])
    numbers = list(range(1, count + 1))
    mode = spec["mode"]
    conc = max(1, min(int(spec.get("concurrency", 1)), count))
    shares = [numbers[i::conc] for i in range(conc)]
    if mode == "sequential":
        results = [fetch_messages(spec, numbers)]
    elif mode == "threads":
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=conc) as pool:
            results = list(pool.map(lambda share: fetch_messages(spec, share), shares))
    elif mode == "gevent":
        from gevent.pool import Pool

        results = list(Pool(conc).imap(lambda share: fetch_messages(spec, share), shares))
    else:
        raise ValueError(f"unknown imap mode {mode!r}")
    ok = sum(r[0] for r in results)
    return {"items": ok, "bytes": sum(r[1] for r in results), "errors": count - ok}
