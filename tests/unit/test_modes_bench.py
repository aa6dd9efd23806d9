"""The bench's pure parts: medians over runs, which runs count, the published side-by-side table."""

from __future__ import annotations

import json
from pathlib import Path

from fetchlab.bench.exp_crawl import steady_rate
from fetchlab.bench.grid import Cell, RunResult, summarize
from fetchlab.bench.report import (
    PUBLISHED,
    git_commit,
    library_versions,
    machine_info,
    markdown,
    versions_line,
)
from fetchlab.bench.sections import FULL, QUICK


def run(cell: Cell, repeat: int, wall: float, *, items: int = 100, **kw: object) -> RunResult:
    return RunResult(
        cell, repeat, ok=True, wall_s=wall, items=items, cpu_s=wall / 2, peak_rss_mb=40.0,
        peak_tree_rss_mb=50.0 + repeat, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def test_median_of_interleaved_runs() -> None:
    a = Cell("http", "threads", 1, 300, spec={"urls": ["x"]})
    b = Cell("http", "threads", 10, 300)
    runs = [run(a, 0, 30.0), run(b, 0, 4.0), run(b, 1, 5.0), run(a, 1, 31.0), run(a, 2, 29.0)]
    runs.append(run(b, 2, 100.0))  # an outlier: the median ignores it
    sa, sb = summarize(runs)
    assert sa.cell == a and sa.wall_s == 30.0 and sa.ok_runs == 3
    assert sb.wall_s == 5.0
    assert sa.items_per_s is not None and abs(sa.items_per_s - 100 / 30) < 1e-9
    assert sa.cpu_ms_per_item == 150.0  # 15 s CPU / 100 items
    assert sa.peak_tree_rss_mb == 52.0  # the highest of the runs, not the median


def test_failed_and_lossy_runs_do_not_count() -> None:
    c = Cell("imap", "threads", 10, 0, "direct")
    runs = [
        run(c, 0, 1.0),
        RunResult(c, 1, ok=False, error="timeout after 60 s"),
        run(c, 2, 0.1, errors=3),  # lost items: fast, but not a measurement of the whole job
    ]
    (s,) = summarize(runs)
    assert s.runs == 3 and s.ok_runs == 1 and s.wall_s == 1.0
    assert s.errors == ("3 failed items", "timeout after 60 s")
    (none,) = summarize([RunResult(c, 0, ok=False, error="boom")])
    assert none.ok_runs == 0 and none.wall_s is None and none.errors == ("boom",)


def test_cell_key_and_spec() -> None:
    c = Cell("imap", "threads", 10, 100, "proxy", spec={"count": 5})
    assert c.key == "imap/threads/c10/l100/proxy"
    assert c.child_spec() == {"mode": "threads", "concurrency": 10, "count": 5}
    assert c == Cell("imap", "threads", 10, 100, "proxy")  # the spec is not part of identity


def test_markdown_puts_published_numbers_next_to_ours() -> None:
    cells = [Cell("http", "threads", n, 300) for n in (1, 10)]
    cells.append(Cell("http", "asyncio", 10, 300))
    cells.append(Cell("http", "threads", 10, 0))  # 0 ms: no published figure applies
    runs = [run(cells[0], 0, 31.0), run(cells[1], 0, 3.1), run(cells[2], 0, 3.05)]
    runs.append(run(cells[3], 0, 0.5))
    meta = {"size": "full", "repeats": 1, "machine": {"cpus": 2}}
    md = markdown(meta, summarize(runs))
    assert "## http, latency 300 ms" in md and "## http, latency 0 ms" in md
    lines = md.splitlines()
    one = next(line for line in lines if line.startswith("| threads | 1 |"))
    ten = next(line for line in lines if line.startswith("| threads | 10 | 100 | 3.10"))
    assert "| 30.10 |" in one and "1.00x / 1.00x" in one
    # ours 31/3.1 = 10x; published 30.1/4.1 = 7.34x
    assert "| 4.10 |" in ten and "10.00x / 7.34x" in ten
    zero = next(line for line in lines if line.startswith("| threads | 10 | 100 | 0.50"))
    assert "| — |" in zero
    assert "2 CPUs" in md


def test_a_run_records_the_machine_and_the_hot_path_library_versions(tmp_path: Path) -> None:
    """Runs on two machines (or two venvs) compare only with the same CPU and library versions:
    every bench writes them beside its table."""
    from importlib import metadata

    versions = library_versions(("aiohttp", "surely-not-installed-here"))
    assert versions["aiohttp"] == metadata.version("aiohttp")
    assert versions["surely-not-installed-here"] == "-"
    assert versions["sqlite"].count(".") == 2
    info = machine_info()
    assert info["cpu_model"] and info["libraries"]["isal"] == metadata.version("isal")
    line = versions_line()
    assert (
        line.startswith(f"CPU {info['cpu_model']}; ")
        and f"uvloop {metadata.version('uvloop')}" in line
    )
    md = markdown({"size": "quick", "repeats": 1, "machine": info}, [])
    assert f"aiohttp {metadata.version('aiohttp')}" in md
    # and which code ran: the checkout's commit, or "?" where git cannot tell
    root = Path(__file__).resolve().parents[2]
    if (root / ".git").exists():  # a source tarball has no history to name
        assert git_commit(root).removesuffix("-dirty").isalnum()
    assert git_commit(tmp_path) == "?"


def test_sizes_reproduce_the_classic_shapes() -> None:
    assert FULL.http_requests == 100 and 300 in FULL.http_latencies
    assert {1, 2, 5, 10, 20, 50} <= set(FULL.http_concurrency)
    assert FULL.imap_count == 100 and FULL.imap_threads == 10
    assert FULL.repeats == 3 and 5000 in FULL.mem_async and 1000 in FULL.mem_threads
    assert QUICK.repeats >= 1 and max(QUICK.http_concurrency) <= 50
    assert all(key[0] in {"http", "imap", "parse", "sleep"} for key in PUBLISHED)


def test_crawl_steady_rate_is_a_median_and_a_note(tmp_path: Path) -> None:
    c = Cell("crawl", "processes", 16, 0)
    runs = [run(c, i, 2.0, extra={"steady_per_s": v, "tag": "x"}) for i, v in enumerate((9, 3, 5))]
    (s,) = summarize(runs)
    assert s.extra == {"steady_per_s": 5.0}  # numeric measures only, median of the runs
    assert "| steady 5/s |" in markdown({}, [s])
    # the crawl cell's measure: pages per second between the 10th and 90th percentile of starts
    lines = [
        json.dumps({"url": f"u{i}", "fetched_at": f"2026-11-21T06:00:{i // 10:02d}.{i % 10}00Z"})
        for i in range(100)
    ]
    (tmp_path / "pages.jsonl").write_text("\n".join(lines) + "\n")
    rate = steady_rate(tmp_path / "pages.jsonl")
    assert rate is not None and abs(rate - 10.0) < 1e-6
    (tmp_path / "few.jsonl").write_text(lines[0] + "\n")
    assert steady_rate(tmp_path / "few.jsonl") is None
