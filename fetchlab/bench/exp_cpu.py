"""CPU-bound and sleep-bound experiments: where the GIL shows, and where it does not matter.

``run_parse`` is the per-pixel experiment on a crawler's real CPU job: ``parse_page`` over the
test-bed HTML pages (read into memory first, outside the timing of nothing but the parse), run
``inline`` (one thread), in a thread pool, or in a process pool, batched through
:class:`foundation.offload.BatchOffload` as the crawler does. ``run_sleep`` runs ``tasks`` tasks
that each sleep ``seconds``: processes, threads, coroutines, greenlets or one after another.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["load_pages", "prepare", "run_parse", "run_sleep", "sleep_task"]

_loaded: dict[str, list[Any]] = {}


def prepare(spec: dict[str, Any]) -> None:
    """Imports, and the parse section's pages read into memory, before the clock starts."""
    import concurrent.futures  # noqa: F401

    if spec["mode"] == "gevent":
        import gevent  # noqa: F401
    else:  # a gevent child never imports asyncio, not even unused
        import asyncio  # noqa: F401
        import multiprocessing  # noqa: F401
    if spec["exp"] == "parse":
        import foundation.offload  # noqa: F401

        _loaded["items"] = load_pages(
            Path(spec["docroot"]), spec["paths"], spec["origin"], spec["repeat"]
        )


def load_pages(docroot: Path, paths: list[str], origin: str, repeat: int) -> list[Any]:
    """ParseInputs for ``paths`` under ``docroot`` (``"/"`` is index.html), ``repeat`` times."""
    from crawler.parse import ParseInput

    out = []
    for path in paths:
        file = docroot / ("index.html" if path == "/" else path.lstrip("/"))
        out.append(
            ParseInput(
                url=origin + path,
                status=200,
                content_type="text/html",
                content_encoding=None,
                body=file.read_bytes(),
                max_decoded=20 * 1024 * 1024,
            )
        )
    return out * max(1, repeat)


def run_parse(spec: dict[str, Any]) -> dict[str, Any]:
    from crawler.parse import parse_page

    items = _loaded.pop("items", None) or load_pages(
        Path(spec["docroot"]), spec["paths"], spec["origin"], spec["repeat"]
    )
    mode = spec["mode"]
    workers = int(spec.get("concurrency", 2))
    if mode == "inline":
        links = sum(len(parse_page(inp).links) for inp in items)
    elif mode in ("threads", "processes"):
        links = _offloaded(items, "thread" if mode == "threads" else "process", workers, spec)
    else:
        raise ValueError(f"unknown parse mode {mode!r}")
    return {"items": len(items), "links": links, "bytes": sum(len(i.body) for i in items)}


def _offloaded(items: list[Any], kind: str, workers: int, spec: dict[str, Any]) -> int:
    import asyncio

    from crawler.parse import ParsedPage, ParseInput, parse_page
    from foundation.offload import BatchOffload

    async def main() -> int:
        offload: BatchOffload[ParseInput, ParsedPage] = BatchOffload(
            parse_page,
            workers=workers,
            kind="thread" if kind == "thread" else "process",
            batch_size=int(spec.get("batch", 16)),
            max_pending=int(spec.get("max_pending", 256)),
        )
        try:
            pages = await asyncio.gather(*(offload.submit(inp) for inp in items))
        finally:
            await offload.aclose()
        return sum(len(p.links) for p in pages)

    return asyncio.run(main())


def sleep_task(seconds: float) -> float:
    """One sleep-bound task (top level, so a process pool can run it)."""
    import time

    time.sleep(seconds)
    return seconds


def run_sleep(spec: dict[str, Any]) -> dict[str, Any]:
    mode = spec["mode"]
    tasks = int(spec["tasks"])
    seconds = float(spec["seconds"])
    if mode == "processes":
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        ctx = multiprocessing.get_context("forkserver")
        # the pool's start-up is part of the cost, as in the classic measurement
        with ProcessPoolExecutor(max_workers=tasks, mp_context=ctx) as pool:
            list(pool.map(sleep_task, [seconds] * tasks))
    elif mode == "threads":
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=tasks) as tpool:
            list(tpool.map(sleep_task, [seconds] * tasks))
    elif mode == "asyncio":
        import asyncio

        async def main() -> None:
            await asyncio.gather(*(asyncio.sleep(seconds) for _ in range(tasks)))

        asyncio.run(main())
    elif mode == "gevent":
        import gevent

        gevent.joinall([gevent.spawn(gevent.sleep, seconds) for _ in range(tasks)])
    elif mode == "sequential":
        for _ in range(tasks):
            sleep_task(seconds)
    else:
        raise ValueError(f"unknown sleep mode {mode!r}")
    return {"items": tasks}
