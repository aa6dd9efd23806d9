"""SIGKILL at random instants, then resume: the same archive as an uninterrupted run.

The crawler runs as a real child process (in its own process group, so its parser processes die
with it) against the generated site on nginx, slowed with ``--delay`` so kills land mid-crawl.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crawler.frontier_sqlite import SqliteFrontier
from tests.fixtures.web import WebSite
from tests.integration.crawl_support import ROOT, archived_urls, check_archive, pages

SEEDS = [11, 22, 33] if os.environ.get("FETCHLAB_SLOW") != "1" else list(range(1, 11))


def _start(args: list[str]) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("FETCHLAB_SETTINGS", None)
    return subprocess.Popen(
        [sys.executable, "-m", "fetchlab.crawl_cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )


def _kill_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def _args(site: WebSite, out: Path) -> list[str]:
    return [
        "crawl",
        site.start_url,
        "--follow",
        "--out",
        str(out),
        "--delay",
        "0.008",
        "--no-progress",
        "--parse-workers",
        "1",
    ]


@pytest.mark.parametrize("seed", SEEDS)
def test_sigkill_then_resume_matches_truth(web_site: WebSite, tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    out = tmp_path / "out"
    kills = 0
    total = len(web_site.info.truth_obey_robots)
    for _ in range(2):
        proc = _start(_args(web_site, out))
        # kill once a random share of the site is committed (a fixed sleep raced a fast machine:
        # the crawl could end before the kill), then a random instant later
        target = len(pages(out)) + rng.randint(1, total // 3)
        deadline = time.monotonic() + 60
        while proc.poll() is None and len(pages(out)) < target and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.05))
        if proc.poll() is None:
            _kill_group(proc, signal.SIGKILL)
            kills += 1
            print(f"killed with {len(pages(out))} pages committed")
        proc.wait(timeout=30)
        assert proc.stderr is not None
        proc.stderr.close()
    final = subprocess.run(
        [
            sys.executable,
            "-m",
            "fetchlab.crawl_cli",
            "crawl",
            "--resume",
            str(out),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert final.returncode in (0, 1), final.stderr
    assert kills >= 1, "the crawl finished before any kill: slow it down"
    assert archived_urls(out) == web_site.info.truth_obey_robots
    rows = pages(out)
    assert len({r["url"] for r in rows}) == len(rows), "a URL committed twice"
    check = check_archive(out)
    assert max(check.responses.values()) == 1, "a URL archived twice"
    # "archived" == "complete in the frontier": one pages.jsonl line per finished URL
    with SqliteFrontier(out / "state.sqlite") as frontier:
        counts = frontier.counts()
    assert counts.queued == counts.leased == 0
    assert counts.done + counts.failed == len(rows)


def test_ctrl_c_saves_state_and_resumes(web_site: WebSite, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = _start(_args(web_site, out))
    time.sleep(1.8)
    assert proc.poll() is None
    _kill_group(proc, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    text = err.decode()
    assert proc.returncode == 130, text
    assert f"crawler crawl --resume {out}" in text
    partial = archived_urls(out)
    assert partial and partial < web_site.info.truth_obey_robots
    check_archive(out)
    final = subprocess.run(
        [sys.executable, "-m", "fetchlab.crawl_cli", *_args(web_site, out)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert final.returncode in (0, 1), final.stderr
    assert archived_urls(out) == web_site.info.truth_obey_robots
    assert max(check_archive(out).responses.values()) == 1
