"""Run one bench cell in this (fresh) process and write its measurements as JSON.

``python -m fetchlab.bench.child SPEC.json RESULT.json`` (or, for gevent cells, ``python -m
drivers.gevent_entry fetchlab.bench.child:main SPEC.json RESULT.json``). The workload named by
``spec["exp"]`` is imported only here, so a gevent child never imports asyncio or aiohttp and an
asyncio child never imports gevent. Peak RSS comes from ``getrusage`` (this process only: one
process per run is what makes it a per-run figure); pool workers are sampled with psutil while the
workload runs, so their CPU seconds and memory count too."""

import importlib
import json
import resource
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["EXPERIMENTS", "main", "measure", "peak_rss_mb"]

# experiment name -> "module:function"; each function takes the spec and returns at least "items"
EXPERIMENTS: Mapping[str, str] = {
    "http": "fetchlab.bench.exp_http:run",
    "parse": "fetchlab.bench.exp_cpu:run_parse",
    "sleep": "fetchlab.bench.exp_cpu:run_sleep",
    "imap": "fetchlab.bench.exp_imap:run",
    "crawl": "fetchlab.bench.exp_crawl:run",
    "mail": "fetchlab.bench.exp_mail:run",
}


def _workload(exp: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    module_name, _, func = EXPERIMENTS[exp].partition(":")
    module = importlib.import_module(module_name)
    fn: Callable[[dict[str, Any]], dict[str, Any]] = getattr(module, func)
    return fn


def _prepare(exp: str, spec: dict[str, Any]) -> None:
    # imports and input loading happen before the clock starts: they are not the mode's cost
    module = importlib.import_module(EXPERIMENTS[exp].partition(":")[0])
    prepare = getattr(module, "prepare", None)
    if prepare is not None:
        prepare(spec)


def peak_rss_mb() -> float:
    """This process's peak RSS: VmHWM of its own memory map.

    Not ``ru_maxrss``: Linux carries the parent's RSS across fork + exec into it, so every child
    of a big parent would report at least the parent's size.
    """
    with open("/proc/self/status", "rb") as fh:
        for line in fh:
            if line.startswith(b"VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """Run the workload of ``spec`` once; wall, CPU (self + pool workers) and peak RSS."""
    fn = _workload(spec["exp"])
    _prepare(spec["exp"], spec)
    sampler = None
    if spec.get("mode") != "gevent":  # a gevent child has no pool workers to sample
        from fetchlab.bench.sampler import TreeSampler

        sampler = TreeSampler()
        sampler.start()
    before = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    try:
        out = fn(spec)
    finally:
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_SELF)
        kids = sampler.stop() if sampler is not None else None
    cpu_self = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if kids is not None:  # the sampler's own reading of /proc is not the workload's cost
        cpu_self = max(0.0, cpu_self - kids.own_cpu_s)
    cpu_children = kids.cpu_s if kids is not None else 0.0
    rss_self = peak_rss_mb()
    return {
        **out,
        "wall_s": wall,
        "cpu_s": cpu_self + cpu_children,
        "cpu_children_s": cpu_children,
        "peak_rss_mb": rss_self,
        "peak_tree_rss_mb": max(rss_self, kids.peak_tree_rss_mb if kids is not None else 0.0),
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m fetchlab.bench.child SPEC.json RESULT.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(args[0]).read_text("utf-8"))
    try:
        result = {"ok": True, **measure(spec)}
    except Exception as exc:  # reported in the results table, not as a traceback
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:500]}
    Path(args[1]).write_text(json.dumps(result), "utf-8")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
