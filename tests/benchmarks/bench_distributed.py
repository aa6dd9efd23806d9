"""Distributed crawl benchmark (a script, not a test):
``python -m tests.benchmarks.bench_distributed [--urls N] [--memory-urls N] [--write]``.

Section 1 -- scaling: a URL list (``?n=i`` variants of the site's pages) on nginx's 100 ms latency
port, one Redis job, 1, 2 and 4 ``crawler worker`` processes with ``--concurrency C`` each and the
job's per-host limit raised to 256 (one host: the job-wide slot is the only cap left). The work is
latency-bound, so the ideal is N x the one-worker rate. Wall time runs from the workers' start to
the last one's exit (the job seeded before).

Section 1b -- the same on the plain port (CPU-bound): where the 2 cores cap the job.

Section 2 -- the frontier's own cost: the same list on the plain port (CPU-bound), one worker,
``crawler crawl`` on the SQLite frontier vs ``crawler worker`` on a Redis job, interleaved runs.

Section 3 -- Redis memory: N URLs (realistic lengths, 1,000 hosts) added through
:class:`~crawler.frontier_redis.RedisFrontier`; ``used_memory`` per queued URL (fingerprint in
``st`` + stream entry), then all leased and completed: per seen URL (the fingerprint and its state
left in ``st``), plus ``MEMORY USAGE`` of the keys.

``--write`` stores the tables in docs/benchmarks/distributed.md (with the date and the load
average) and the raw numbers in docs/benchmarks/distributed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from crawler.core.frontier import NewURL
from crawler.frontier_redis import RedisFrontier
from crawler.redis_conn import connect, job_prefix
from testbed.redis import RedisServer, start_redis
from testbed.site import serve_generated_site

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "benchmarks"


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("FETCHLAB_SETTINGS", None)
    return env


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "fetchlab.crawl_cli", *args]


def _seed(redis: RedisServer, job: str, listing: Path, per_host: int) -> None:
    subprocess.run(
        [
            *_cli("crawl", "-i", str(listing), "--seed-only", "--frontier", redis.url),
            *("--job", job, "--per-host", str(per_host), "--no-robots"),
        ],
        check=True,
        capture_output=True,
        env=_env(),
        cwd=ROOT,
    )


def _pages(out: Path) -> int:
    with open(out / "pages.jsonl", encoding="utf-8") as fh:
        return sum(1 for line in fh if '"status":null' not in line.replace(" ", ""))


def run_workers(
    redis: RedisServer, work: Path, listing: Path, workers: int, concurrency: int, per_host: int
) -> dict[str, Any]:
    job = f"bench-{uuid.uuid4().hex[:8]}"
    _seed(redis, job, listing, per_host)
    outs = [work / f"{job}-w{i}" for i in range(workers)]
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(
            [
                *_cli("worker", "--frontier", redis.url, "--job", job, "--out", str(out)),
                *("--concurrency", str(concurrency), "--no-progress"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=_env(),
            cwd=ROOT,
        )
        for out in outs
    ]
    samples = _watch(redis, job, procs)
    codes = [p.wait() for p in procs]
    wall = time.perf_counter() - t0
    pages = sum(_pages(o) for o in outs)
    return {
        "workers": workers,
        "codes": codes,
        "pages": pages,
        "wall": wall,
        "rate": pages / wall,
        "steady": _steady(samples, pages),
    }


def _watch(redis: RedisServer, job: str, procs: list[subprocess.Popen[bytes]]) -> list[Any]:
    """(time, URLs finished) every 50 ms until every worker exited."""
    client = connect(redis.url)
    key = job_prefix(job) + "counts"
    samples = []
    try:
        while any(p.poll() is None for p in procs):
            d, f = client.hmget(key, ["d", "f"])
            samples.append((time.perf_counter(), int(d or 0) + int(f or 0)))
            time.sleep(0.05)
    finally:
        client.close()
    return samples


def _steady(samples: list[Any], total: int) -> float:
    """Pages/s between 20% and 80% of the job: process start-up and the tail left out."""
    lo = next((s for s in samples if s[1] >= 0.2 * total), None)
    hi = next((s for s in samples if s[1] >= 0.8 * total), None)
    if lo is None or hi is None or hi[0] <= lo[0]:
        return 0.0
    return float((hi[1] - lo[1]) / (hi[0] - lo[0]))


def run_sqlite(work: Path, listing: Path, concurrency: int, per_host: int) -> dict[str, Any]:
    out = work / f"sqlite-{uuid.uuid4().hex[:8]}"
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [
            *_cli("crawl", "-i", str(listing), "--out", str(out)),
            *("--concurrency", str(concurrency), "--per-host", str(per_host)),
            *("--no-robots", "--no-progress"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_env(),
        cwd=ROOT,
    )
    samples = []
    while proc.poll() is None:  # pages.jsonl lines: the same progress Redis's counter gives
        try:
            with open(out / "pages.jsonl", "rb") as fh:
                samples.append((time.perf_counter(), fh.read().count(b"\n")))
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    wall = time.perf_counter() - t0
    pages = _pages(out)
    return {"pages": pages, "wall": wall, "rate": pages / wall, "steady": _steady(samples, pages)}


def memory(redis: RedisServer, n: int) -> dict[str, Any]:
    job = f"mem-{uuid.uuid4().hex[:8]}"
    client = connect(redis.url)
    prefix = job_prefix(job)
    f = RedisFrontier(redis.url, job, "bench", heartbeat=False)
    try:
        base = int(client.info("memory")["used_memory"])
        t0 = time.perf_counter()
        batch = 10_000
        for start in range(0, n, batch):
            f.add(
                NewURL(f"http://h{i % 1000}.example.org/section/{i % 97}/page-{i}.html", 1)
                for i in range(start, min(n, start + batch))
            )
        add_s = time.perf_counter() - t0
        queued = int(client.info("memory")["used_memory"]) - base
        st_q = int(client.memory_usage(prefix + "st") or 0)
        stream_q = int(client.memory_usage(prefix + "q:0:1") or 0)
        t0 = time.perf_counter()
        while items := f.lease(2000, 0.0):
            f.complete_many(i.url for i in items)
        drain_s = time.perf_counter() - t0
        seen = int(client.info("memory")["used_memory"]) - base
        st_s = int(client.memory_usage(prefix + "st") or 0)
        assert f.counts().done == n
    finally:
        f.close()
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
        client.close()
    return {
        "urls": n,
        "avg_url_len": round(
            statistics.mean(
                len(f"http://h{i % 1000}.example.org/section/{i % 97}/page-{i}.html")
                for i in range(0, n, max(1, n // 1000))
            ),
            1,
        ),
        "add_per_s": n / add_s,
        "lease_complete_per_s": n / drain_s,
        "queued_bytes_per_url": queued / n,
        "seen_bytes_per_url": seen / n,
        "st_bytes_per_url_queued": st_q / n,
        "stream_bytes_per_url": stream_q / n,
        "st_bytes_per_url_seen": st_s / n,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--urls", type=int, default=1200, help="URLs in the latency list")
    ap.add_argument("--plain-urls", type=int, default=3000, help="URLs in the plain-port list")
    ap.add_argument("--concurrency", type=int, default=8, help="per worker, latency section")
    ap.add_argument("--memory-urls", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-dist-"))
    load_before = os.getloadavg()
    redis = start_redis(work / "redis")
    info, server = serve_generated_site(work / "site", 200, 1, (100,), "nginx")
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    try:
        paths = list(info.page_paths)
        lat = server.latency_url(100)
        listing = work / "latency.txt"
        listing.write_text(
            "".join(f"{lat}{paths[i % len(paths)]}?n={i}\n" for i in range(args.urls))
        )
        plain = work / "plain.txt"
        plain.write_text(
            "".join(
                f"{server.base_url}{paths[i % len(paths)]}?n={i}\n" for i in range(args.plain_urls)
            )
        )
        scaling: dict[int, list[dict[str, Any]]] = {1: [], 2: [], 4: []}
        for _ in range(args.runs):
            for n in scaling:
                scaling[n].append(run_workers(redis, work, listing, n, args.concurrency, 256))
                print("scaling", scaling[n][-1], flush=True)
        results["scaling"] = scaling
        # the plain port: CPU-bound, where the 2 cores cap the job
        plain_scaling: dict[int, list[dict[str, Any]]] = {1: [], 2: [], 4: []}
        for _ in range(args.runs):
            for n in plain_scaling:
                plain_scaling[n].append(run_workers(redis, work, plain, n, 64, 256))
                print("plain", plain_scaling[n][-1], flush=True)
        results["plain_scaling"] = plain_scaling
        versus: dict[str, list[dict[str, Any]]] = {"sqlite": [], "redis": []}
        for _ in range(args.runs):
            versus["sqlite"].append(run_sqlite(work, plain, 64, 64))
            print("sqlite", versus["sqlite"][-1], flush=True)
            versus["redis"].append(run_workers(redis, work, plain, 1, 64, 64))
            print("redis", versus["redis"][-1], flush=True)
        results["versus"] = versus
        results["memory"] = memory(redis, args.memory_urls)
        print("memory", results["memory"], flush=True)
    finally:
        server.stop()
        redis.stop()
    results["load_before"] = load_before
    results["load_after"] = os.getloadavg()
    text = report(results, args)
    print(text)
    if args.write:
        DOCS.mkdir(parents=True, exist_ok=True)
        (DOCS / "distributed.md").write_text(text, encoding="utf-8")
        (DOCS / "distributed.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


def _median(rows: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in rows))


def report(results: dict[str, Any], args: argparse.Namespace) -> str:
    sc = results["scaling"]
    lines = [
        "# Distributed crawl: workers on one Redis job",
        "",
        f"Measured {results['date']} by `python -m tests.benchmarks.bench_distributed "
        f"--urls {args.urls} --plain-urls {args.plain_urls} --memory-urls {args.memory_urls} "
        f"--runs {args.runs}` on a shared 2-core machine; load average before "
        f"{results['load_before'][0]:.2f}, after {results['load_after'][0]:.2f}. "
        "Medians of the runs; every worker a separate OS process on this one machine.",
        "",
        f"## Scaling: {args.urls} URLs on the 100 ms latency port (nginx echo_sleep), "
        f"--concurrency {args.concurrency} per worker, job per-host limit 256",
        "",
        "Wall time includes starting the worker processes (Python start-up under load: "
        "seconds); the steady rate is taken between 20% and 80% of the job from Redis's done "
        "counter, polled every 50 ms.",
        "",
        "| workers | pages | wall s | pages/s (wall) | steady pages/s | steady speed-up |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    steady_one = _median(sc[1], "steady") or 1.0
    for n, rows in sc.items():
        rate = _median(rows, "rate")
        steady = _median(rows, "steady")
        lines.append(
            f"| {n} | {rows[0]['pages']} | {_median(rows, 'wall'):.2f} | {rate:,.1f} | "
            f"{steady:,.1f} | {steady / steady_one:.2f}x |"
        )
    ps = results["plain_scaling"]
    plain_one = _median(ps[1], "steady") or 1.0
    lines += [
        "",
        f"## The plain port (CPU-bound): {args.plain_urls} URLs, --concurrency 64 per worker",
        "",
        "| workers | wall s | pages/s (wall) | steady pages/s | steady speed-up |",
        "|---:|---:|---:|---:|---:|",
    ]
    for n, rows in ps.items():
        steady = _median(rows, "steady")
        lines.append(
            f"| {n} | {_median(rows, 'wall'):.2f} | {_median(rows, 'rate'):,.1f} | "
            f"{steady:,.1f} | {steady / plain_one:.2f}x |"
        )
    vs = results["versus"]
    sq, rd = _median(vs["sqlite"], "rate"), _median(vs["redis"], "rate")
    sq_s, rd_s = _median(vs["sqlite"], "steady"), _median(vs["redis"], "steady")
    lines += [
        "",
        f"## Frontier cost: {args.plain_urls} URLs on the plain port, one worker, "
        "--concurrency 64 --per-host 64",
        "",
        "| frontier | pages | wall s | pages/s (wall) | vs SQLite | steady pages/s | vs SQLite |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| SQLite (`crawler crawl`) | {vs['sqlite'][0]['pages']} | "
        f"{_median(vs['sqlite'], 'wall'):.2f} | {sq:,.1f} | 1.00x | {sq_s:,.1f} | 1.00x |",
        f"| Redis (`crawler worker`) | {vs['redis'][0]['pages']} | "
        f"{_median(vs['redis'], 'wall'):.2f} | {rd:,.1f} | {rd / sq:.2f}x | {rd_s:,.1f} | "
        f"{rd_s / max(sq_s, 1e-9):.2f}x |",
    ]
    m = results["memory"]
    lines += [
        "",
        f"## Redis memory at {m['urls']:,} URLs (average URL length {m['avg_url_len']} bytes)",
        "",
        "| what | bytes per URL |",
        "|---|---:|",
        f"| queued URL, all keys (`used_memory` growth) | {m['queued_bytes_per_url']:.1f} |",
        f"| of which the fingerprint hash `st` | {m['st_bytes_per_url_queued']:.1f} |",
        f"| of which the stream entry | {m['stream_bytes_per_url']:.1f} |",
        f"| seen URL once done (`used_memory` growth) | {m['seen_bytes_per_url']:.1f} |",
        f"| of which `st` (`MEMORY USAGE`) | {m['st_bytes_per_url_seen']:.1f} |",
        "",
        f"Adding ran at {m['add_per_s']:,.0f} URLs/s, lease + complete at "
        f"{m['lease_complete_per_s']:,.0f} URLs/s (one client, batches of 500 / 2,000).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
