"""Index rate, index size and search latency of ``mailsync index`` / ``search`` (a script, not a
test).

    .venv/bin/python tests/benchmarks/bench_index.py [--messages 20000] [--max-mb 1000]
        [--workers 2] [--dir DIR]

Builds an archive without a server (the test bed's corpus written as Maildir files, their rows
in a state DB, as a backup leaves them), then times ``index_archive`` (the process pool, all
cores), reports the index's size against the archive's, and times 20 typical queries (10 runs
each: p50 and p95). Peak RSS of this process is printed too.
Targets (issue 12): >= 3,000 msgs/s on 2 cores for 20,000 messages / 1 GB; index <= 40 % of
the archive; search p50 <= 50 ms, p95 <= 200 ms over 100,000 messages; RSS < 200 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from mailsync.core.maildir import message_filename, subdir_for
from mailsync.core.names import safe_relpath
from mailsync.index_run import index_archive
from mailsync.layout import index_path, state_path
from mailsync.search_index import SearchIndex
from mailsync.state import MessageRow, StateDB
from testbed.corpus import generate_corpus
from testbed.mailgen import build_message

QUERIES = [
    "budget",
    '"project review"',
    "from:alice@example.org",
    "to:bob@example.com",
    "subject:invoice",
    "subject:report from:carol",
    "has:attachment",
    "has:attachment larger:1M",
    "filename:report.pdf",
    "folder:INBOX is:unread",
    "is:flagged",
    "date:2023-01..2023-06",
    "after:2024-06 budget",
    "meeting OR schedule",
    "(invoice OR contract) NOT folder:Sent",
    "repor*",
    "body:migration from:juergen",
    "smaller:5K",
    "Müller",
    "встреча",
]


def build_archive(root: Path, messages: int, max_mb: int) -> int:
    corpus = generate_corpus(messages=messages, seed=11, max_bytes=max_mb * 1_000_000)
    state = StateDB(state_path(root))
    rows: list[MessageRow] = []
    total = 0
    uids: dict[str, int] = {}
    for plan in corpus.plans:
        data = build_message(corpus.seed, plan).served
        rel = str(safe_relpath(plan.folder, "/"))
        uid = uids[plan.folder] = uids.get(plan.folder, 0) + 1
        sub = subdir_for(plan.flags)
        name = message_filename(1, uid, len(data), plan.flags)
        path = root / rel / sub / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        total += len(data)
        date = plan.internaldate.strftime("%d-%b-%Y %H:%M:%S %z")
        rows.append(
            MessageRow(
                plan.folder,
                1,
                0,
                uid,
                len(data),
                hashlib.sha256(data).hexdigest(),
                plan.flags,
                date,
                f"{rel}/{sub}/{name}",
            )
        )
        if len(rows) >= 2000:
            state.insert_messages(rows)
            rows = []
    state.insert_messages(rows)
    state.close()
    return total


def _rss_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=20_000)
    ap.add_argument("--max-mb", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--dir", type=Path, default=None)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-index-", dir=args.dir))
    root = base / "acct"
    try:
        t = time.perf_counter()
        archive_bytes = build_archive(root, args.messages, args.max_mb)
        print(
            f"archive: {args.messages} messages, {archive_bytes / 1e6:.0f} MB"
            f" (built in {time.perf_counter() - t:.1f} s)"
        )
        os.sync()
        run = asyncio.run(index_archive(root, workers=args.workers, batch=32))
        rate = run.indexed / run.seconds
        size = sum(os.path.getsize(p) for p in index_path(root).parent.glob("index.sqlite*"))
        print(
            f"index: {run.indexed} messages in {run.seconds:.2f} s = {rate:,.0f} msgs/s,"
            f" {run.bytes / run.seconds / 1e6:.0f} MB/s, {run.errors} with parse problems"
        )
        print(
            f"index size: {size / 1e6:.1f} MB = {100 * size / archive_bytes:.1f} % of the archive"
        )
        index = SearchIndex(root, readonly=True)
        print(f"{'query':45} {'hits':>6} {'p50 ms':>8} {'p95 ms':>8}")
        p50s = []
        for q in QUERIES:
            times = []
            hits = 0
            for _ in range(10):
                t = time.perf_counter()
                hits = len(index.search(q, "acct", limit=50))
                times.append((time.perf_counter() - t) * 1000)
            times.sort()
            p50, p95 = statistics.median(times), times[int(len(times) * 0.95) - 1]
            p50s.append(p50)
            print(f"{q:45} {hits:>6} {p50:>8.1f} {p95:>8.1f}")
        index.close()
        print(
            f"all queries: median of p50s {statistics.median(p50s):.1f} ms,"
            f" worst p50 {max(p50s):.1f} ms"
        )
        # (the pool's workers are the fork server's children: not counted here)
        print(f"peak RSS: this process {_rss_mb(resource.RUSAGE_SELF):.0f} MB")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
