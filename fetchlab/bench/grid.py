"""The bench grid: cells (section x mode x concurrency x latency), each run in a child process.

Every run of every cell is a fresh Python process (``fetchlab.bench.child``; gevent cells through
``drivers.gevent_entry`` so patching happens first), which makes peak RSS a per-run figure and keeps
one mode's leftovers (threads, patched sockets, pools) out of the next. Repeats are interleaved
(all cells once, then all again, each round starting one cell later) so a burst of load from
elsewhere on the machine hits different cells rather than all repeats of one. Each run is bounded
in time: past ``cell_timeout`` its whole process group is killed and the run is recorded as
failed. The summary of a cell is the median of its successful runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "SET_ASIDE",
    "Cell",
    "CellSummary",
    "RunResult",
    "child_argv",
    "run_cell",
    "run_grid",
    "set_aside",
    "summarize",
]

ROOT = Path(__file__).resolve().parents[2]
SET_ASIDE = "set-aside"


def set_aside(path: Path, workdir: Path) -> None:
    """Move a finished run's output under ``workdir/set-aside`` instead of deleting it; the
    caller removes that folder once every run is timed.

    ext4 without a journal (this kind of machine) skips, and reads, every inode freed in the
    last seconds when it allocates one (``recently_deleted()`` in fs/ext4/ialloc.c): a run
    that writes thousands of files right after the previous run's were deleted spent ~40% of
    its CPU in that scan (perf) and ran up to 2.5x slower, whichever mode or tool it was.
    """
    if path.exists():
        aside = workdir / SET_ASIDE
        aside.mkdir(parents=True, exist_ok=True)
        path.rename(aside / f"{path.name}-{os.getpid()}-{time.monotonic_ns()}")


@dataclass(frozen=True)
class Cell:
    """One point of the grid. ``spec`` is what the child's workload receives (JSON-able)."""

    section: str
    mode: str
    concurrency: int
    latency_ms: int = 0
    variant: str = ""
    spec: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> str:
        base = f"{self.section}/{self.mode}/c{self.concurrency}/l{self.latency_ms}"
        return f"{base}/{self.variant}" if self.variant else base

    def child_spec(self) -> dict[str, Any]:
        return {"mode": self.mode, "concurrency": self.concurrency, **self.spec}


@dataclass(frozen=True)
class RunResult:
    cell: Cell
    repeat: int
    ok: bool
    wall_s: float = 0.0
    items: int = 0
    errors: int = 0
    cpu_s: float = 0.0
    peak_rss_mb: float = 0.0
    peak_tree_rss_mb: float = 0.0
    error: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["cell"] = {k: v for k, v in data["cell"].items() if k != "spec"}
        data["cell"]["key"] = self.cell.key
        return data


@dataclass(frozen=True)
class CellSummary:
    """Medians over a cell's successful runs."""

    cell: Cell
    runs: int
    ok_runs: int
    wall_s: float | None
    items: int
    items_per_s: float | None
    cpu_ms_per_item: float | None
    peak_rss_mb: float | None  # the highest of the runs (this process)
    peak_tree_rss_mb: float | None  # the highest of the runs (with pool workers)
    errors: tuple[str, ...] = ()
    # medians of the numeric measures a workload adds (the crawl: steady_per_s, revisits)
    extra: Mapping[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["cell"] = {k: v for k, v in data["cell"].items() if k != "spec"}
        data["cell"]["key"] = self.cell.key
        return data


def child_argv(cell: Cell, spec_path: Path, result_path: Path) -> list[str]:
    """The command running ``cell`` once; gevent cells go through the patch-first entry."""
    if cell.mode == "gevent":
        return [
            sys.executable, "-m", "drivers.gevent_entry", "fetchlab.bench.child:main",
            str(spec_path), str(result_path),
        ]  # fmt: skip
    return [sys.executable, "-m", "fetchlab.bench.child", str(spec_path), str(result_path)]


def run_cell(cell: Cell, repeat: int, workdir: Path, timeout: float) -> RunResult:
    """Run ``cell`` once in a child process; never raises for a failed or hung run."""
    workdir.mkdir(parents=True, exist_ok=True)
    stem = f"{cell.key.replace('/', '_')}-r{repeat}"
    spec_path, result_path = workdir / f"{stem}.spec.json", workdir / f"{stem}.result.json"
    log_path = workdir / f"{stem}.log"
    spec_path.write_text(json.dumps(cell.child_spec()), "utf-8")
    result_path.unlink(missing_ok=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), _pythonpath()])))
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            child_argv(cell, spec_path, result_path),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=env,
            start_new_session=True,  # its own group: a timeout kills pool workers too
        )
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            return RunResult(cell, repeat, ok=False, error=f"timeout after {timeout:.0f} s")
        finally:
            _kill_group(proc)  # leftovers of a finished run (none, normally)
    if not result_path.exists():
        tail = log_path.read_text("utf-8", "replace").strip().splitlines()[-3:]
        return RunResult(
            cell, repeat, ok=False, error=f"exit {proc.returncode}: {' | '.join(tail)}"[:500]
        )
    data = json.loads(result_path.read_text("utf-8"))
    if not data.get("ok"):
        return RunResult(cell, repeat, ok=False, error=str(data.get("error")))
    known = {"ok", "wall_s", "items", "errors", "cpu_s", "peak_rss_mb", "peak_tree_rss_mb"}
    return RunResult(
        cell,
        repeat,
        ok=True,
        wall_s=float(data["wall_s"]),
        items=int(data["items"]),
        errors=int(data.get("errors", 0)),
        cpu_s=float(data["cpu_s"]),
        peak_rss_mb=float(data["peak_rss_mb"]),
        peak_tree_rss_mb=float(data.get("peak_tree_rss_mb", data["peak_rss_mb"])),
        extra={k: v for k, v in data.items() if k not in known},
    )


def _pythonpath() -> str:
    return os.environ.get("PYTHONPATH", "")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def run_grid(
    cells: Sequence[Cell],
    *,
    repeats: int,
    workdir: Path,
    cell_timeout: float,
    on_result: Callable[[RunResult], None] | None = None,
) -> list[RunResult]:
    """Run every cell ``repeats`` times, interleaved (round r starts at cell r)."""
    results: list[RunResult] = []
    n = len(cells)
    for repeat in range(repeats):
        for i in range(n):
            cell = cells[(i + repeat) % n]
            result = run_cell(cell, repeat, workdir, cell_timeout)
            results.append(result)
            if on_result is not None:
                on_result(result)
    return results


def _extra_medians(runs: Sequence[RunResult]) -> dict[str, float]:
    keys = {k for r in runs for k, v in r.extra.items() if isinstance(v, int | float)}
    return {
        k: statistics.median(
            float(r.extra[k]) for r in runs if isinstance(r.extra.get(k), int | float)
        )
        for k in sorted(keys)
    }


def summarize(results: Iterable[RunResult]) -> list[CellSummary]:
    """One summary per cell, in the order cells first appear."""
    by_cell: dict[Cell, list[RunResult]] = {}
    for result in results:
        by_cell.setdefault(result.cell, []).append(result)
    out = []
    for cell, runs in by_cell.items():
        # a run that lost items is not a clean measurement of the job: its time is not a median
        good = [r for r in runs if r.ok and r.errors == 0 and r.items > 0]
        errors = tuple(
            sorted({r.error or f"{r.errors} failed items" for r in runs if r not in good})
        )
        if not good:
            out.append(CellSummary(cell, len(runs), 0, None, 0, None, None, None, None, errors))
            continue
        wall = statistics.median(r.wall_s for r in good)
        items = int(statistics.median(r.items for r in good))
        out.append(
            CellSummary(
                cell=cell,
                runs=len(runs),
                ok_runs=len(good),
                wall_s=wall,
                items=items,
                items_per_s=statistics.median(r.items / r.wall_s for r in good if r.wall_s > 0),
                cpu_ms_per_item=statistics.median(1000 * r.cpu_s / r.items for r in good),
                peak_rss_mb=max(r.peak_rss_mb for r in good),
                peak_tree_rss_mb=max(r.peak_tree_rss_mb for r in good),
                errors=errors,
                extra=_extra_medians(good),
            )
        )
    return out
