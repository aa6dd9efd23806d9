"""Several ``crawler worker`` OS processes on one Redis job: the merged archive equals the site's
ground truth, no URL is archived twice, the per-host limit holds across workers (counted by the
site server), and workers SIGKILLed at random instants lose nothing."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from testbed._proc import free_port
from testbed.redis import RedisServer
from tests.integration.crawl_support import ROOT, crawler_cmd
from tests.integration.distributed_support import (
    check_merged,
    counting_site,
    new_job,
    seed,
    start_worker,
    stop_all,
    wait_all,
    worker_env,
)
from tests.integration.replay_support import (
    check_replay,
    check_wacz,
    html_200_captures,
    running,
)

pytestmark = pytest.mark.needs_redis

PER_HOST = 3


def _status(redis: RedisServer, job: str) -> dict[str, object]:
    got = crawler_cmd("status", "--frontier", redis.url, "--job", job, "--json", "--interval", "0")
    assert got.returncode in (0, 1), got.stderr
    data: dict[str, object] = json.loads(got.stdout)
    return data


def _merge(out: Path, folders: list[Path]) -> None:
    got = crawler_cmd("merge", str(out), *map(str, folders))
    assert got.returncode == 0, got.stderr
    # no URL has a pages.jsonl line in two workers' folders
    assert "duplicate" not in got.stdout, got.stdout


@pytest.mark.parametrize("mode", ["asyncio", "processes"])
def test_workers_crawl_the_site_once(redis_server: RedisServer, tmp_path: Path, mode: str) -> None:
    # 30 ms a page at 3 places: >= 2 s of crawl, both workers are up long before it ends
    with counting_site(tmp_path / "site", 200, delay_ms=30) as site:
        job = new_job()
        seed(redis_server.url, job, site.start_url, "--per-host", str(PER_HOST))
        argv = ["--frontier", redis_server.url, "--job", job, "--mode", mode, "--concurrency", "8"]
        workers = [start_worker(tmp_path / f"w{i}", argv) for i in range(2)]
        try:
            codes = wait_all(workers, 120)
        finally:
            stop_all(workers)
        assert codes == [0, 0], [w.log() for w in workers]
        status = _status(redis_server, job)
        assert status["finished"] is True
        assert status["queued"] == status["leased"] == 0
        done = {w["name"]: w["done"] for w in status["workers"]}  # type: ignore[attr-defined]
        assert len(done) == 2 and all(n > 0 for n in done.values()), done
        merged = tmp_path / "merged"
        _merge(merged, [w.out for w in workers])
        result = check_merged(merged, site.truth)
        # robots.txt: fetched (and archived) once for the whole job
        assert list(result.robots.values()) == [1], result.robots
        peak = site.concurrency()["peak"]
        assert max(peak.values()) <= PER_HOST, peak
        # the merged folder is an ordinary archive: it packs into a WACZ, pywb replays it
        wacz = crawler_cmd("wacz", str(merged))
        assert wacz.returncode == 0, wacz.stderr
        check_wacz(merged / "merged.wacz", merged)
        if mode == "asyncio":
            captures = html_200_captures(merged)
            assert len(captures) > 50
            port = free_port()
            args = [sys.executable, "-m", "fetchlab.crawl_cli", "replay", str(merged)]
            args += ["--port", str(port), "--collection", "c"]
            with running(args, tmp_path, port, tmp_path / "replay.log", project=True):
                check_replay(f"http://127.0.0.1:{port}/c", captures)


@pytest.mark.parametrize("mode", ["asyncio", "processes"])
def test_kill_workers_at_random_instants(
    redis_server: RedisServer, tmp_path: Path, slow_size: bool, mode: str
) -> None:
    kills = 10 if slow_size else (3 if mode == "asyncio" else 2)
    rng = random.Random()
    # 40 ms a page at 3 places for the whole job: >= 2.7 s of crawl; the kills (one every
    # 0.1-0.5 s) land within 1.5 s
    with counting_site(tmp_path / "site", 600 if slow_size else 200, delay_ms=40) as site:
        job = new_job()
        seed(redis_server.url, job, site.start_url, "--per-host", str(PER_HOST))
        argv = ["--frontier", redis_server.url, "--job", job, "--concurrency", "6", "--mode", mode]
        workers = [start_worker(tmp_path / f"w{i}", argv) for i in range(3)]
        killed = 0
        try:
            while killed < kills:
                time.sleep(rng.uniform(0.1, 0.5))
                k = rng.randrange(len(workers))
                if workers[k].popen.poll() is not None:
                    break  # the job ended before every kill: the rest would crawl nothing
                workers[k].kill()
                killed += 1
                workers[k] = workers[k].restart()
            codes = wait_all(workers, 180)
        finally:
            stop_all(workers)
        assert codes == [0, 0, 0], [w.log() for w in workers]
        assert killed == kills, "the crawl ended before the kills: make the site slower"
        assert _status(redis_server, job)["finished"] is True
        merged = tmp_path / "merged"
        _merge(merged, [w.out for w in workers])
        check_merged(merged, site.truth)
        peak = site.concurrency()["peak"]
        assert max(peak.values()) <= PER_HOST, peak


def test_worker_needs_a_job(redis_server: RedisServer, tmp_path: Path) -> None:
    got = crawler_cmd(
        "worker", "--frontier", redis_server.url, "--job", "nope", "--out", str(tmp_path / "w")
    )
    assert got.returncode == 2
    assert "no job 'nope'" in got.stderr
    status = crawler_cmd("status", "--frontier", redis_server.url, "--job", "nope")
    assert status.returncode == 2


def test_help_names_the_distributed_commands() -> None:
    got = subprocess.run(
        [sys.executable, "-m", "fetchlab.crawl_cli", "worker", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert "--frontier" in got.stdout and "--job" in got.stdout


def test_seeding_command_crawls_as_a_worker(redis_server: RedisServer, tmp_path: Path) -> None:
    """Without --seed-only, ``crawler crawl --frontier redis://...`` is the job's first worker."""
    with counting_site(tmp_path / "site", 80, delay_ms=30) as site:
        job = new_job()
        seeder = subprocess.Popen(
            [
                *(sys.executable, "-m", "fetchlab.crawl_cli", "crawl", site.start_url),
                *("--follow", "--frontier", redis_server.url, "--job", job),
                *("--per-host", str(PER_HOST), "--out", str(tmp_path / "w0"), "--no-progress"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=ROOT,
            env=worker_env(),
        )
        try:
            deadline = time.monotonic() + 30
            while _status_code(redis_server, job) == 2 and time.monotonic() < deadline:
                time.sleep(0.1)  # the job exists once the seeds are in
            argv = ["--frontier", redis_server.url, "--job", job]
            other = start_worker(tmp_path / "w1", argv)
            try:
                assert other.wait(120) == 0, other.log()
            finally:
                stop_all([other])
            assert seeder.wait(120) == 0
        finally:
            if seeder.poll() is None:
                seeder.kill()
                seeder.wait(30)
        _merge(tmp_path / "merged", [tmp_path / "w0", tmp_path / "w1"])
        check_merged(tmp_path / "merged", site.truth)


def _status_code(redis: RedisServer, job: str) -> int:
    got = crawler_cmd("status", "--frontier", redis.url, "--job", job, "--interval", "0")
    return got.returncode
