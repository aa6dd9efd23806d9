"""Mail fleet benchmark (a script, not a test): ``python tests/benchmarks/bench_mail_fleet.py``.

Starts a private Dovecot, a redis-server and a delay proxy, loads ``--accounts`` accounts of
``--messages`` messages each, then for each worker count (``--workers 1,2,4``) enqueues every
account on a fresh fleet and times ``mailsync worker`` OS processes from their start until the
last one exits (the queue drained), backing up into an empty folder. Each worker count runs
direct (loopback) and through the proxy (``--delay`` ms each way). Reports wall seconds (median
of ``--runs``), msgs/s and the speed-up over one worker; ``--markdown FILE`` writes the table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script: make the project importable
    sys.path.insert(0, str(ROOT))

from testbed.corpus import generate_corpus  # noqa: E402
from testbed.dovecot import start_dovecot  # noqa: E402
from testbed.imap_load import load_corpus  # noqa: E402
from testbed.proxy import start_proxy  # noqa: E402
from testbed.redis import start_redis  # noqa: E402

PASSWORD_ENV = "FLEET_BENCH_PASSWORD"


def _settings(path: Path, out: Path, port: int, users: list[str], url: str, name: str) -> None:
    text = f"""[mail]
out = "{out}"
[mail.fleet]
queue = "{url}"
name = "{name}"
"""
    for user in users:
        text += f"""[[mail.accounts]]
name = "{user}"
host = "127.0.0.1"
port = {port}
security = "plain"
username = "{user}"
password_env = "{PASSWORD_ENV}"
"""
    path.write_text(text, "utf-8")


def _run(settings: Path, workers: int) -> float:
    env = {**os.environ, PASSWORD_ENV: "secret", "PYTHONPATH": str(ROOT)}
    cli = [sys.executable, "-m", "fetchlab.mail_cli"]
    subprocess.run([*cli, "enqueue", "--settings", str(settings)], env=env, check=True)
    start = time.monotonic()
    procs = [
        subprocess.Popen(
            [*cli, "worker", "--settings", str(settings)], env=env, stderr=subprocess.DEVNULL
        )
        for _ in range(workers)
    ]
    codes = [p.wait() for p in procs]
    elapsed = time.monotonic() - start
    if any(codes):
        raise SystemExit(f"a worker failed: {codes}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--accounts", type=int, default=12)
    ap.add_argument("--messages", type=int, default=150)
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--delay", type=float, default=100.0)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--markdown", type=Path, default=None)
    args = ap.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    tmp.chmod(0o755)
    users = [f"fleet{i:02d}" for i in range(args.accounts)]
    dovecot = start_dovecot(tmp / "dovecot", users={u: "secret" for u in users}, compress=False)
    redis = start_redis(tmp / "redis")
    proxy = start_proxy((dovecot.host, dovecot.port), delay_ms=args.delay, workdir=tmp / "proxy")
    rows: list[tuple[str, int, float, float]] = []
    try:
        total = 0
        for i, user in enumerate(users):
            corpus = generate_corpus(messages=args.messages, seed=500 + i, max_bytes=5_000_000)
            total += len(load_corpus(dovecot, user, corpus))
        for label, port in (("loopback", dovecot.port), (f"{args.delay:.0f} ms", proxy.port)):
            for workers in counts:
                times = []
                for run in range(args.runs):
                    out = tmp / f"out-{port}-{workers}-{run}"
                    settings = tmp / f"fleet-{port}-{workers}-{run}.toml"
                    _settings(settings, out, port, users, redis.url, f"b{port}-{workers}-{run}")
                    times.append(_run(settings, workers))
                    shutil.rmtree(out)
                median = statistics.median(times)
                rows.append((label, workers, median, total / median))
                print(f"{label:>9} {workers} workers: {median:6.2f} s {total / median:7.0f} msgs/s")
    finally:
        proxy.stop()
        redis.stop()
        dovecot.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    lines = [
        f"{args.accounts} accounts x {args.messages} messages ({total} messages), "
        f"median of {args.runs}",
        "",
        "| link | workers | seconds | msgs/s | speed-up vs 1 worker |",
        "|---|---|---|---|---|",
    ]
    for label, workers, seconds, rate in rows:
        base = next(r for r in rows if r[0] == label and r[1] == counts[0])[2]
        lines.append(
            f"| {label} | {workers} | {seconds:.2f} | {rate:.0f} | {base / seconds:.2f}x |"
        )
    print("\n".join(lines))
    if args.markdown is not None:
        args.markdown.write_text("\n".join(lines) + "\n", "utf-8")


if __name__ == "__main__":
    main()
