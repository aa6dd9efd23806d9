"""``scripts/bench``: the concurrency-mode bench and the engines' own benches.

    scripts/bench modes --quick                 # every section, quick size (a few minutes)
    scripts/bench modes --full --out DIR        # the full grid (quiet machine; long)
    scripts/bench modes --quick -s http -s parse
    scripts/bench crawl ARGS...                 # tests/benchmarks/bench_crawl.py, when present
    scripts/bench mail ARGS...                  # tests/benchmarks/bench_mail.py, when present
    scripts/bench restore ARGS...               # tests/benchmarks/bench_restore.py (restore
                                                # against mbsync's Sync Push, export MB/s)
    scripts/bench report OUT A/results.json B/results.json   # merge runs into one report

``modes`` writes ``results.json``, ``results.md`` and PNG charts into ``--out``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import click

from fetchlab.bench.grid import SET_ASIDE, CellSummary, RunResult, run_grid, summarize
from fetchlab.bench.report import machine_info, markdown, read_json, write_charts, write_json
from fetchlab.bench.sections import FULL, QUICK, SECTIONS, BenchServers, build_cells

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[2]
ENGINE_BENCHES = {
    "crawl": ROOT / "tests" / "benchmarks" / "bench_crawl.py",
    "mail": ROOT / "tests" / "benchmarks" / "bench_mail.py",
    "restore": ROOT / "tests" / "benchmarks" / "bench_restore.py",
}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Benchmarks on the local test bed (loopback only)."""


@main.command("modes")
@click.option("--quick/--full", default=True, help="Quick size (default) or the full grid.")
@click.option(
    "-s",
    "--section",
    "sections",
    multiple=True,
    type=click.Choice(SECTIONS),
    help="Run only these sections (repeatable; default: all).",
)
@click.option("--out", type=click.Path(path_type=Path), default=Path("bench-out"))
@click.option("--repeats", type=click.IntRange(1, 20), help="Runs per cell (default: by size).")
@click.option("--cell-timeout", type=click.FloatRange(1, 3600), help="Seconds per run at most.")
@click.option("--http-requests", type=click.IntRange(1, 100_000), help="Override requests/cell.")
@click.option(
    "--http-concurrency",
    type=click.IntRange(1, 100_000),
    multiple=True,
    help="Override the http section's concurrency levels (repeatable).",
)
@click.option(
    "--latency",
    "latencies",
    type=click.IntRange(0, 10_000),
    multiple=True,
    help="Override the http section's latencies in ms (repeatable; 0 = the plain port).",
)
def modes_cmd(
    quick: bool,
    sections: tuple[str, ...],
    out: Path,
    repeats: int | None,
    cell_timeout: float | None,
    http_requests: int | None,
    http_concurrency: tuple[int, ...],
    latencies: tuple[int, ...],
) -> None:
    """Run the mode x concurrency x latency grid; write results.json / .md / PNG charts."""
    size = QUICK if quick else FULL
    if http_requests is not None:
        size = replace(size, http_requests=http_requests, http_requests_0=http_requests)
    if http_concurrency:
        size = replace(size, http_concurrency=tuple(sorted(set(http_concurrency))))
    if latencies:
        size = replace(size, http_latencies=tuple(sorted(set(latencies))))
    repeats = repeats or size.repeats
    timeout = cell_timeout or size.cell_timeout
    chosen = sections or SECTIONS
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    meta = {
        "size": size.name,
        "repeats": repeats,
        "sections": list(chosen),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
    }

    def show(result: RunResult) -> None:
        c = result.cell
        what = (
            f"{result.items} items in {result.wall_s:.2f} s, "
            f"{1000 * result.cpu_s / max(result.items, 1):.2f} CPU ms/item, "
            f"{result.peak_tree_rss_mb:.0f} MB"
            if result.ok
            else f"FAILED: {result.error}"
        )
        click.echo(f"[{time.monotonic() - started:6.1f}s] {c.key} r{result.repeat}: {what}")

    latencies = (*size.http_latencies, 100)
    with BenchServers(out / "servers", latencies) as servers:
        cells = build_cells(chosen, size, servers)
        click.echo(f"{len(cells)} cells x {repeats} repeats ({size.name} size)")
        try:
            runs = run_grid(
                cells, repeats=repeats, workdir=out / "runs", cell_timeout=timeout, on_result=show
            )
        finally:
            shutil.rmtree(out / "runs" / SET_ASIDE, ignore_errors=True)
    summaries = summarize(runs)
    meta["elapsed_s"] = round(time.monotonic() - started, 1)
    write_json(out / "results.json", meta, runs, summaries)
    (out / "results.md").write_text(markdown(meta, summaries), "utf-8")
    charts = write_charts(summaries, out)
    click.echo(f"wrote {out / 'results.json'}, {out / 'results.md'} and {len(charts)} charts")
    failed = [s for s in summaries if s.ok_runs == 0]
    if failed:
        click.echo(f"{len(failed)} cell(s) had no successful run: see results.md", err=True)
        sys.exit(1)


@main.command("report")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.argument(
    "results", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
def report_cmd(out: Path, results: tuple[Path, ...]) -> None:
    """Merge RESULTS (results.json files; later ones win per cell) into OUT/results.md + charts."""
    merged: dict[str, CellSummary] = {}
    metas = []
    for path in results:
        meta, cells = read_json(path)
        metas.append(meta)
        for cell in cells:
            merged[cell.cell.key] = cell
    summaries = list(merged.values())
    meta = dict(metas[-1])
    meta["size"] = " + ".join(sorted({str(m.get("size")) for m in metas}))
    meta["repeats"] = " / ".join(str(m.get("repeats")) for m in metas)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text(markdown(meta, summaries), "utf-8")
    charts = write_charts(summaries, out)
    click.echo(f"wrote {out / 'results.md'} and {len(charts)} charts from {len(results)} run(s)")


def _engine_bench(name: str, args: tuple[str, ...]) -> None:
    script = ENGINE_BENCHES[name]
    if not script.exists():
        click.echo(f"{script.relative_to(ROOT)} does not exist yet", err=True)
        sys.exit(2)
    sys.exit(subprocess.call([sys.executable, str(script), *args], cwd=ROOT))


@main.command("crawl", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def crawl_cmd(args: tuple[str, ...]) -> None:
    """The crawl benchmark (tests/benchmarks/bench_crawl.py)."""
    _engine_bench("crawl", args)


@main.command("mail", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def mail_cmd(args: tuple[str, ...]) -> None:
    """The mail benchmark (tests/benchmarks/bench_mail.py)."""
    _engine_bench("mail", args)


@main.command("restore", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def restore_cmd(args: tuple[str, ...]) -> None:
    """Restore against mbsync's Sync Push, and export MB/s (tests/benchmarks/bench_restore.py)."""
    _engine_bench("restore", args)


if __name__ == "__main__":
    main()
