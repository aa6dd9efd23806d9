"""Bench output: ``results.json`` (every run and every cell's medians), Markdown tables with the
classic published numbers side by side, and PNG charts (matplotlib, Agg backend: no display).

The published figures came from other machines and other jobs (remote sites, a remote mail
server, a per-pixel image job), so only their *shape* compares: each table shows our seconds and
the published seconds next to each other, and the speed-up over the table's baseline row for both.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fetchlab.bench.grid import Cell, CellSummary, RunResult

__all__ = [
    "PUBLISHED",
    "cpu_model",
    "git_commit",
    "libraries_text",
    "library_versions",
    "machine_info",
    "markdown",
    "read_json",
    "versions_line",
    "write_charts",
    "write_json",
]

# (section, mode, concurrency, variant) -> published wall seconds; with each table's source job
PUBLISHED: Mapping[tuple[str, str, int, str], float] = {
    ("http", "threads", 1, ""): 30.1,
    ("http", "threads", 2, ""): 15.1,
    ("http", "threads", 5, ""): 7.8,
    ("http", "threads", 10, ""): 4.1,
    ("http", "threads", 20, ""): 3.2,
    ("http", "threads", 50, ""): 3.6,
    ("imap", "sequential", 1, "proxy"): 35.65,
    ("imap", "threads", 10, "proxy"): 9.84,
    ("parse", "inline", 1, ""): 34.2,
    ("parse", "threads", 2, ""): 36.1,
    ("parse", "processes", 2, ""): 17.8,
    ("sleep", "processes", 10, ""): 1.38,
    ("sleep", "threads", 10, ""): 1.00,
    ("sleep", "asyncio", 10, ""): 1.00,
}
PUBLISHED_JOBS = {
    "http": "100 requests to remote sites, ~300 ms each (published: threads only)",
    "imap": "100 mails from a remote IMAP server (latency unknown; compare the proxy rows)",
    "parse": "a per-pixel image job: 1 thread, 2 threads, 2 processes",
    "sleep": "sleep-bound tasks of 1 s: processes, threads, coroutines",
}
# sections whose variants are rows of one table (not tables of their own)
VARIANT_ROWS = frozenset({"crawl"})
# the classic table's 300 ms figures compare with our latency-300 rows only
PUBLISHED_LATENCY = {"http": 300}


# the libraries whose C code the hot paths run in: a run is comparable with another only with
# the same versions (a fresh venv takes the newest releases the pyproject ranges allow)
HOT_LIBRARIES = ("aiohttp", "uvloop", "isal", "selectolax", "yarl", "multidict", "psutil")


def cpu_model() -> str:
    """The CPU's model name as the kernel reports it (``?`` when it does not)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def library_versions(names: Sequence[str] = HOT_LIBRARIES) -> dict[str, str]:
    """Installed versions of ``names`` (``-`` when absent) and SQLite's."""
    import sqlite3
    from importlib import metadata

    found: dict[str, str] = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "-"
    found["sqlite"] = sqlite3.sqlite_version
    return found


def git_commit(tree: Path) -> str:
    """The commit ``tree`` is checked out at, ``-dirty`` when it has changes (``?`` when git
    cannot tell)."""
    import subprocess

    try:
        done = subprocess.run(
            ["git", "-C", str(tree), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return done.stdout.strip() or "?"


def libraries_text(libs: Mapping[str, object]) -> str:
    """``name version, ...``: how every bench shows :func:`library_versions`."""
    return ", ".join(f"{k} {v}" for k, v in libs.items())


def versions_line(cpu: str | None = None, libs: Mapping[str, object] | None = None) -> str:
    """One line for a bench's Markdown: the CPU model and the hot-path library versions (read
    now unless the caller already has them)."""
    return (
        f"CPU {cpu or cpu_model()}; {libraries_text(library_versions() if libs is None else libs)}"
    )


def machine_info() -> dict[str, Any]:
    import os

    import psutil

    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "libraries": library_versions(),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def write_json(
    path: Path, meta: Mapping[str, Any], runs: Sequence[RunResult], cells: Sequence[CellSummary]
) -> None:
    data = {
        "meta": dict(meta),
        "cells": [c.as_dict() for c in cells],
        "runs": [r.as_dict() for r in runs],
    }
    path.write_text(json.dumps(data, indent=1, default=str) + "\n", "utf-8")


def read_json(path: Path) -> tuple[dict[str, Any], list[CellSummary]]:
    """The meta and cell summaries of a ``results.json`` (to merge runs into one report)."""
    data = json.loads(path.read_text("utf-8"))
    cells = []
    for c in data["cells"]:
        k = c["cell"]
        cell = Cell(k["section"], k["mode"], k["concurrency"], k["latency_ms"], k["variant"])
        cells.append(
            CellSummary(
                cell,
                c["runs"],
                c["ok_runs"],
                c["wall_s"],
                c["items"],
                c["items_per_s"],
                c["cpu_ms_per_item"],
                c["peak_rss_mb"],
                c["peak_tree_rss_mb"],
                tuple(c["errors"]),
                dict(c.get("extra", {})),
            )
        )
    return dict(data["meta"]), cells


def _extra_note(s: CellSummary) -> str:
    steady = s.extra.get("steady_per_s")
    return "" if steady is None else f"steady {_fmt(steady, 0)}/s"


def _published(s: CellSummary) -> float | None:
    c = s.cell
    want = PUBLISHED_LATENCY.get(c.section)
    if want is not None and c.latency_ms != want:
        return None
    return PUBLISHED.get((c.section, c.mode, c.concurrency, c.variant))


def _fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def markdown(meta: Mapping[str, Any], cells: Sequence[CellSummary]) -> str:
    """One table per section (and latency / variant), our medians next to published seconds."""
    m = meta.get("machine", {})
    lines = [
        f"# Concurrency-mode bench ({meta.get('size', '?')} size)",
        "",
        f"Machine: {m.get('cpus')} CPUs, {m.get('memory_gb')} GB, Python {m.get('python')}, "
        f"{m.get('system')}; load average at start {m.get('load_avg_at_start')}. "
        f"Repeats per cell: {meta.get('repeats')} (interleaved; median shown).",
        "",
        f"CPU {m.get('cpu_model', '?')}; libraries: " + libraries_text(m.get("libraries") or {}),
        "",
        "Speed-up: the first row's wall time over this row's. Where a published figure exists, "
        "`ours / published`, both relative to the first row that has one. CPU ms/item counts "
        "the client process and its pool workers; peak RSS is the whole client process tree.",
        "",
    ]
    groups: dict[tuple[str, int, str], list[CellSummary]] = {}
    for s in cells:
        variant = "" if s.cell.section in VARIANT_ROWS else s.cell.variant
        groups.setdefault((s.cell.section, s.cell.latency_ms, variant), []).append(s)
    for (section, latency, variant), unsorted in groups.items():
        order = {m: i for i, m in enumerate(_modes(unsorted))}
        rows = sorted(
            unsorted, key=lambda s: (order[s.cell.mode], s.cell.variant, s.cell.concurrency)
        )
        title = f"## {section}"
        if latency or section in ("http", "mem"):
            title += f", latency {latency} ms"
        if variant:
            title += f" ({variant})"
        lines += [title, ""]
        if section in PUBLISHED_JOBS:
            lines += [f"Published job: {PUBLISHED_JOBS[section]}.", ""]
        lines += [
            "| mode | conc. | items | wall s | items/s | CPU ms/item | peak RSS MB "
            "| published s | speed-up | notes |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
        ]
        base = rows[0]
        # published speed-ups are relative to the first row that has a published figure
        pub_base = next((s for s in rows if _published(s) is not None), None)
        for s in rows:
            pub = _published(s)
            ours_up = base.wall_s / s.wall_s if base.wall_s and s.wall_s else None
            speed = _fmt(ours_up)
            if pub is not None and pub_base is not None:
                base_pub = _published(pub_base)
                ours = pub_base.wall_s / s.wall_s if pub_base.wall_s and s.wall_s else None
                pub_up = base_pub / pub if base_pub else None
                speed = f"{_fmt(ours)}x / {_fmt(pub_up)}x"
            rss = s.peak_tree_rss_mb
            note = "; ".join(s.errors)[:120] if s.errors else _extra_note(s)
            if s.ok_runs < s.runs:
                note = f"{s.ok_runs}/{s.runs} runs ok; " + note
            label = (
                f"{s.cell.mode} ({s.cell.variant})"
                if s.cell.variant and not variant
                else s.cell.mode
            )
            lines.append(
                f"| {label} | {s.cell.concurrency} | {s.items} | {_fmt(s.wall_s)} "
                f"| {_fmt(s.items_per_s, 1)} | {_fmt(s.cpu_ms_per_item)} | {_fmt(rss, 0)} "
                f"| {_fmt(pub)} | {speed} | {note} |"
            )
        lines.append("")
    return "\n".join(lines)


def write_charts(cells: Sequence[CellSummary], outdir: Path) -> list[Path]:
    """The PNG charts that have data: throughput vs concurrency, CPU per item, memory."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outdir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    http = [s for s in cells if s.cell.section == "http" and s.items_per_s]
    latencies = sorted({s.cell.latency_ms for s in http})
    if latencies:
        fig, axes = plt.subplots(1, len(latencies), figsize=(5 * len(latencies), 4), squeeze=False)
        for ax, latency in zip(axes[0], latencies, strict=True):
            for mode in _modes(http):
                pts = sorted(
                    (s.cell.concurrency, s.items_per_s or 0.0)
                    for s in http
                    if s.cell.latency_ms == latency and s.cell.mode == mode
                )
                if pts:
                    ax.plot(*zip(*pts, strict=True), marker="o", label=mode)
            ax.set_xscale("log")
            ax.set_title(f"latency {latency} ms")
            ax.set_xlabel("concurrency")
            ax.set_ylabel("requests / s")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8)
        written.append(_save(fig, outdir / "http_throughput.png", plt))

    cpu = [s for s in cells if s.cpu_ms_per_item is not None and s.cell.section in ("http",)]
    if cpu:
        best: dict[str, float] = {}
        for s in cpu:
            if s.cell.latency_ms == 0 and s.cpu_ms_per_item is not None:
                best[s.cell.mode] = min(best.get(s.cell.mode, 1e9), s.cpu_ms_per_item)
        if best:
            fig, ax = plt.subplots(figsize=(6, 4))
            ax.bar(list(best), list(best.values()))
            ax.set_ylabel("client CPU ms per request (best concurrency, 0 ms latency)")
            ax.set_title("CPU cost per request by mode")
            written.append(_save(fig, outdir / "cpu_per_item.png", plt))

    mem = [s for s in cells if s.cell.section == "mem" and s.peak_tree_rss_mb]
    if mem:
        fig, ax = plt.subplots(figsize=(6, 4))
        for mode in _modes(mem):
            pts = sorted(
                (s.cell.concurrency, s.peak_tree_rss_mb or 0.0) for s in mem if s.cell.mode == mode
            )
            ax.plot(*zip(*pts, strict=True), marker="o", label=mode)
        ax.set_xscale("log")
        ax.set_xlabel("concurrent connections (100 ms latency)")
        ax.set_ylabel("peak RSS MB")
        ax.set_title("Memory vs concurrency")
        ax.grid(True, alpha=0.3)
        ax.legend()
        written.append(_save(fig, outdir / "memory.png", plt))

    per_second = ("parse", "crawl", "mail")
    for section, ylabel in (
        ("parse", "pages / s"),
        ("crawl", "pages / s"),
        ("mail", "messages / s"),
        ("sleep", "wall s"),
        ("imap", "wall s"),
    ):
        rows = [s for s in cells if s.cell.section == section and s.wall_s]
        if not rows:
            continue
        fig, ax = plt.subplots(figsize=(7, 4))
        labels = [
            f"{s.cell.mode}\nc={s.cell.concurrency}"
            + (f"\n{s.cell.variant}" if s.cell.variant else "")
            for s in rows
        ]
        values = [
            (s.items_per_s or 0.0) if section in per_second else (s.wall_s or 0.0) for s in rows
        ]
        ax.bar(range(len(rows)), values)
        ax.set_xticks(range(len(rows)), labels, fontsize=7)
        ax.set_ylabel(ylabel)
        ax.set_title(section)
        written.append(_save(fig, outdir / f"{section}.png", plt))
    return written


def _modes(rows: Sequence[CellSummary]) -> list[str]:
    seen: list[str] = []
    for s in rows:
        if s.cell.mode not in seen:
            seen.append(s.cell.mode)
    return seen


def _save(fig: Any, path: Path, plt: Any) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
