"""The grid runner with real child processes: interleaving, per-run isolation, time bounds."""

from __future__ import annotations

import json
import time
from pathlib import Path

import psutil

from fetchlab.bench.grid import Cell, child_argv, run_cell, run_grid

SLEEP = {"exp": "sleep", "tasks": 4, "seconds": 0.05}


def test_runs_are_interleaved_and_measured(tmp_path: Path) -> None:
    cells = [
        Cell("sleep", "threads", 4, spec=SLEEP),
        Cell("sleep", "asyncio", 4, spec=SLEEP),
        Cell("sleep", "gevent", 4, spec=SLEEP),
    ]
    seen: list[str] = []
    results = run_grid(
        cells,
        repeats=2,
        workdir=tmp_path,
        cell_timeout=60,
        on_result=lambda r: seen.append(r.cell.mode),
    )
    # round 0 starts at cell 0, round 1 at cell 1
    assert seen == ["threads", "asyncio", "gevent", "asyncio", "gevent", "threads"]
    for r in results:
        assert r.ok, r.error
        assert r.items == 4 and 0.05 <= r.wall_s < 2.0
        assert r.peak_rss_mb > 5
    # the gevent cell went through the patch-first entry, the others did not
    assert "drivers.gevent_entry" in child_argv(cells[2], Path("s"), Path("r"))
    assert "drivers.gevent_entry" not in child_argv(cells[0], Path("s"), Path("r"))


def test_a_hung_run_is_killed_with_its_workers(tmp_path: Path) -> None:
    # ten sleeping pool workers for 30 s; the run gets 2 s
    cell = Cell("sleep", "processes", 10, spec={"exp": "sleep", "tasks": 10, "seconds": 30})
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    started = time.monotonic()
    result = run_cell(cell, 0, tmp_path, timeout=2.0)
    assert not result.ok and result.error == "timeout after 2 s"
    assert time.monotonic() - started < 15
    time.sleep(0.2)
    left = {p.pid for p in psutil.Process().children(recursive=True)} - before
    assert not left, "no worker of the killed run survives"


def test_a_failing_workload_is_reported(tmp_path: Path) -> None:
    result = run_cell(Cell("sleep", "fibers", 1, spec=SLEEP), 0, tmp_path, timeout=30)
    assert not result.ok and result.error == "ValueError: unknown sleep mode 'fibers'"
    spec = json.loads(next(tmp_path.glob("*.spec.json")).read_text("utf-8"))
    assert spec["mode"] == "fibers" and spec["exp"] == "sleep"
