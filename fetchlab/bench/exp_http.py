"""The classic "N HTTP requests with C workers" experiment, one client per mode.

``spec``: ``mode`` (sequential | threads | gevent | asyncio | processes), ``concurrency``,
``urls`` (fetched once each, in order), ``timeout``; asyncio also takes ``loop`` (uvloop |
asyncio) and processes ``workers`` (each worker process runs an asyncio client over its share of
the URLs with its share of ``concurrency`` coroutines: the "processes plus coroutines" design).

Each worker reads the whole body, as a crawler would; blocking modes use one ``requests.Session``
per thread (or greenlet), so every worker keeps its own keep-alive connection, as in the classic
thread-pool crawler. Only client libraries of the mode are imported: a gevent child (patched
before this module loads) never imports asyncio.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = ["fetch_asyncio", "prepare", "run"]


def prepare(spec: dict[str, Any]) -> None:
    """Import the mode's client libraries before the clock starts."""
    if spec["mode"] in ("asyncio", "processes"):
        import concurrent.futures

        import aiohttp  # noqa: F401

        import foundation.runtime  # noqa: F401
    else:
        import concurrent.futures  # noqa: F401

        import requests  # noqa: F401


def run(spec: dict[str, Any]) -> dict[str, Any]:
    mode = spec["mode"]
    urls: list[str] = list(spec["urls"])
    conc = max(1, int(spec["concurrency"]))
    timeout = float(spec.get("timeout", 60.0))
    if mode == "asyncio":
        ok, size = fetch_asyncio(urls, conc, timeout, spec.get("loop", "uvloop"))
    elif mode == "processes":
        ok, size = _processes(urls, conc, timeout, int(spec.get("workers", 2)))
    elif mode == "threads":
        ok, size = _threads(urls, conc, timeout)
    elif mode == "gevent":
        ok, size = _gevent(urls, conc, timeout)
    elif mode == "sequential":
        ok, size = _sequential(urls, timeout)
    else:
        raise ValueError(f"unknown mode {mode!r}")
    return {"items": ok, "bytes": size, "errors": len(urls) - ok}


# -- blocking clients ------------------------------------------------------------------------------
def _get(session: Any, url: str, timeout: float) -> int:
    try:
        resp = session.get(url, timeout=timeout)
    except OSError:  # requests' errors are OSError subclasses
        return -1
    return len(resp.content) if resp.status_code < 400 else -1


def _sequential(urls: Sequence[str], timeout: float) -> tuple[int, int]:
    import requests

    ok = size = 0
    with requests.Session() as session:
        for url in urls:
            n = _get(session, url, timeout)
            if n >= 0:
                ok, size = ok + 1, size + n
    return ok, size


class _PerWorker:
    """One Session per thread (or greenlet, when threading is patched), all closed at the end."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[Any] = []

    def session(self) -> Any:
        session = getattr(self._local, "session", None)
        if session is None:
            import requests

            session = requests.Session()
            self._local.session = session
            with self._lock:
                self._all.append(session)
        return session

    def close(self) -> None:
        for session in self._all:
            session.close()


def _threads(urls: Sequence[str], conc: int, timeout: float) -> tuple[int, int]:
    from concurrent.futures import ThreadPoolExecutor

    workers = _PerWorker()
    try:
        with ThreadPoolExecutor(max_workers=conc) as pool:
            sizes = list(pool.map(lambda u: _get(workers.session(), u, timeout), urls))
    finally:
        workers.close()
    return _tally(sizes)


def _gevent(urls: Sequence[str], conc: int, timeout: float) -> tuple[int, int]:
    from gevent.pool import Pool

    workers = _PerWorker()
    try:
        sizes = list(Pool(conc).imap(lambda u: _get(workers.session(), u, timeout), urls))
    finally:
        workers.close()
    return _tally(sizes)


def _tally(sizes: Sequence[int]) -> tuple[int, int]:
    good = [n for n in sizes if n >= 0]
    return len(good), sum(good)


# -- asyncio ---------------------------------------------------------------------------------------
def fetch_asyncio(urls: Sequence[str], conc: int, timeout: float, loop: str) -> tuple[int, int]:
    """Fetch ``urls`` with ``conc`` coroutines on one aiohttp session (top level: picklable)."""
    import asyncio

    import aiohttp

    from foundation.runtime import raise_nofile_limit, run

    raise_nofile_limit(conc + 256)

    async def main() -> tuple[int, int]:
        it: Iterator[str] = iter(urls)
        ok = size = 0
        connector = aiohttp.TCPConnector(limit=conc, limit_per_host=0)
        client_timeout = aiohttp.ClientTimeout(total=timeout)
        async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:

            async def worker() -> None:
                nonlocal ok, size
                for url in it:  # a shared iterator: each URL is taken by exactly one worker
                    try:
                        async with session.get(url) as resp:
                            body = await resp.read()
                    except (aiohttp.ClientError, TimeoutError, OSError):
                        continue
                    if resp.status < 400:
                        ok, size = ok + 1, size + len(body)

            await asyncio.gather(*(worker() for _ in range(min(conc, len(urls)) or 1)))
        return ok, size

    return run(main(), "uvloop" if loop == "uvloop" else "asyncio")


def _processes(urls: Sequence[str], conc: int, timeout: float, workers: int) -> tuple[int, int]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    workers = max(1, min(workers, len(urls) or 1))
    shares = [list(urls[i::workers]) for i in range(workers)]
    # the concurrency is split, remainder included: 5 over 2 workers is 3 + 2, not 2 + 2
    per = [max(1, conc // workers + (1 if k < conc % workers else 0)) for k in range(workers)]
    ctx = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futures = [
            pool.submit(fetch_asyncio, share, n, timeout, "uvloop")
            for share, n in zip(shares, per, strict=True)
        ]
        results = [f.result() for f in futures]
    return sum(r[0] for r in results), sum(r[1] for r in results)
