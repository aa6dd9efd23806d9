"""The bench command runs a tiny grid on the real test bed and writes results.json, .md and PNGs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.needs_nginx
@pytest.mark.timeout(240)
def test_bench_modes_tiny_grid(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    argv = [
        sys.executable, "-m", "fetchlab.bench.cli", "modes", "--quick",
        "-s", "http", "-s", "sleep", "-s", "parse",
        "--http-requests", "12", "--http-concurrency", "1", "--http-concurrency", "4",
        "--latency", "0", "--latency", "100", "--repeats", "1", "--out", str(out),
    ]  # fmt: skip
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=220)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]

    data = json.loads((out / "results.json").read_text("utf-8"))
    assert data["meta"]["machine"]["cpus"] >= 1
    keys = {c["cell"]["key"] for c in data["cells"]}
    for mode in ("sequential", "threads", "gevent", "asyncio"):
        assert any(k.startswith(f"http/{mode}/") and "/l100" in k for k in keys), mode
    assert {"parse/inline/c1/l0", "parse/threads/c2/l0", "parse/processes/c2/l0"} <= keys
    assert {"sleep/processes/c10/l0", "sleep/gevent/c10/l0", "sleep/asyncio/c10/l0"} <= keys
    for cell in data["cells"]:
        assert cell["ok_runs"] == cell["runs"] == 1, cell
        assert cell["items"] > 0 and cell["wall_s"] > 0 and cell["peak_rss_mb"] > 5

    by_key = {c["cell"]["key"]: c for c in data["cells"]}
    # 12 requests one at a time at 100 ms cannot take less than 1.2 s; with 4 workers, 3 rounds
    assert by_key["http/sequential/c1/l100"]["wall_s"] >= 1.2
    assert (
        0.3 <= by_key["http/asyncio/c4/l100"]["wall_s"] < by_key["http/threads/c1/l100"]["wall_s"]
    )
    # ten 0.2 s sleeps: together ~0.2 s, one after another ~2 s
    assert by_key["sleep/threads/c10/l0"]["wall_s"] < 1.0
    assert by_key["sleep/sequential/c1/l0"]["wall_s"] >= 2.0
    # the process pool's workers are counted in the memory of their cell
    parse = by_key["parse/processes/c2/l0"]
    assert parse["peak_tree_rss_mb"] > by_key["parse/inline/c1/l0"]["peak_tree_rss_mb"]

    md = (out / "results.md").read_text("utf-8")
    assert "## http, latency 100 ms" in md and "## parse" in md
    assert "34.20" in md  # the published per-pixel figure sits next to ours
    for chart in ("http_throughput.png", "cpu_per_item.png", "parse.png", "sleep.png"):
        assert (out / chart).read_bytes()[:8] == PNG_MAGIC, chart
