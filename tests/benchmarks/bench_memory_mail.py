"""Memory benchmark of ``mailsync backup`` (a script, not a test): does memory stay flat as the
mailbox grows?

``python tests/benchmarks/bench_memory_mail.py [--sizes 20000,200000] [--markdown FILE]``

For each size, side by side in one run against one test-bed Dovecot (one user per size): a
corpus of small messages (the test bed's generator, sizes capped at ``--avg-bytes`` on average),
half of it in INBOX (so the large size has a folder of 100,000 messages) and the rest spread
over four folders, written straight into Dovecot's Maildir (:mod:`testbed.maildir_load`: APPEND
of 200,000 messages would take minutes). Then, per mode, into a fresh folder:

- a full backup: wall seconds, messages/s, peak RSS summed over mailsync's process tree
  (sampled every 20 ms from /proc, as ``bench_mail`` does: process-pool workers included);
- a no-change re-sync, direct and through the test bed's delay proxy (``--delay`` ms each way);
- a re-sync after one message of the big folder was expunged (the whole folder is listed again,
  in chunks).

``--baseline DIR`` also runs mailsync from another checkout (e.g. a git worktree of main) as
``<mode>-baseline``: before/after in one run; ``--inline`` adds ``<mode>-inline`` (header_workers
= 0: no parser processes). Writes a Markdown table (``--markdown``) and the
rows (``--json``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script: make the project importable
    sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402

from fetchlab.bench.grid import set_aside  # noqa: E402
from fetchlab.bench.sampler import ServerCPU  # noqa: E402
from foundation.progress import summary_table  # noqa: E402
from testbed.corpus import generate_corpus  # noqa: E402
from testbed.dovecot import DovecotServer, start_dovecot  # noqa: E402
from testbed.imap_load import ImapSession, quote  # noqa: E402
from testbed.maildir_load import load_corpus_files  # noqa: E402
from testbed.proxy import start_proxy  # noqa: E402
from tests.benchmarks import bench_mail  # noqa: E402

PASSWORD = "secret"
BIG = "INBOX"
OTHERS = ("Archive", "Archive/2023", "Archive/2024", "Project X")
HEADERS = (
    "tool",
    "messages",
    "full wall s",
    "msgs/s",
    "peak RSS MB",
    "no-change s",
    "no-change s @delay",
    "1 expunged s",
    "re-sync RSS MB",
)


@dataclass(frozen=True)
class Row:
    tool: str
    messages: int
    full_wall: float
    rate: float
    peak_mb: float
    nochange: float
    nochange_delay: float
    one_flag: float
    resync_mb: float


def _load(server: DovecotServer, user: str, n: int, avg_bytes: int, console: Console) -> None:
    """n messages: half in INBOX, the rest over OTHERS (each part its own seed)."""
    t = time.perf_counter()
    half = n // 2
    big = generate_corpus(messages=half, seed=1, folders=(BIG,), max_bytes=half * avg_bytes)
    rest = generate_corpus(
        messages=n - half, seed=2, folders=OTHERS, max_bytes=(n - half) * avg_bytes
    )
    done = load_corpus_files(server, user, big) + load_corpus_files(server, user, rest)
    console.print(f"{user}: {done} messages written in {time.perf_counter() - t:.0f} s")


def _settings(out: Path, port: int, user: str, inline: bool) -> Path:
    path = out.parent / f"{out.name}.toml"
    path.write_text(
        f"""[mail]
out = "{out}"
{"header_workers = 0" if inline else ""}
[[mail.accounts]]
name = "bench"
host = "127.0.0.1"
port = {port}
security = "plain"
username = "{user}"
password_env = "BENCH_PASSWORD"
""",
        "utf-8",
    )
    return path


def _backup(
    out: Path, port: int, user: str, mode: str, code: Path, inline: bool = False
) -> bench_mail.Sample:
    argv = [
        sys.executable,
        "-m",
        "fetchlab.mail_cli",
        "backup",
        "--settings",
        str(_settings(out, port, user, inline)),
        "--no-progress",
        "--mode",
        mode,
    ]
    env = {**os.environ, "BENCH_PASSWORD": PASSWORD, "PYTHONPATH": str(code)}
    return bench_mail._run(argv, env, cwd=code)


def _expunge_one(server: DovecotServer, user: str, round_: int) -> None:
    """One message of the big folder expunged: the next sync lists the whole folder."""
    with ImapSession(server, user) as session:
        session.command(b"SELECT " + quote(BIG))
        session.command(b"UID STORE %d +FLAGS.SILENT (\\Deleted)" % (100 + round_))
        session.command(b"UID EXPUNGE %d" % (100 + round_))


def _measure(
    args: argparse.Namespace,
    server: DovecotServer,
    work: Path,
    tool: str,
    user: str,
    n: int,
    round_: int,
) -> Row:
    mode, _, variant = tool.partition("-")
    code = args.baseline if variant == "baseline" else ROOT
    inline = variant == "inline"
    out = work / f"{tool}-{user}"
    set_aside(out, work)
    full = _backup(out, server.port, user, mode, code, inline)
    none = bench_mail._median(
        [_backup(out, server.port, user, mode, code, inline) for _ in range(3)]
    )
    proxy = start_proxy((server.host, server.port), delay_ms=args.delay)
    try:
        slow = bench_mail._median(
            [_backup(out, proxy.port, user, mode, code, inline) for _ in range(args.runs)]
        )
    finally:
        proxy.stop()
    _expunge_one(server, user, round_)
    flag = _backup(out, server.port, user, mode, code, inline)
    set_aside(out, work)
    return Row(
        tool,
        n,
        full.wall,
        n / full.wall,
        full.rss_mb,
        none.wall,
        slow.wall,
        flag.wall,
        max(none.rss_mb, flag.rss_mb),
    )


def _table(rows: list[Row], delay: int) -> list[tuple[str, ...]]:
    return [
        (
            r.tool,
            f"{r.messages:,}",
            f"{r.full_wall:.1f}",
            f"{r.rate:.0f}",
            f"{r.peak_mb:.0f}",
            f"{r.nochange:.2f}",
            f"{r.nochange_delay:.2f}",
            f"{r.one_flag:.2f}",
            f"{r.resync_mb:.0f}",
        )
        for r in rows
    ]


def _ratios(rows: list[Row]) -> list[str]:
    """Largest size against the smallest, per tool: the targets of issue 16."""
    lines = []
    for tool in dict.fromkeys(r.tool for r in rows):
        mine = sorted((r for r in rows if r.tool == tool), key=lambda r: r.messages)
        if len(mine) < 2:
            continue
        small, large = mine[0], mine[-1]
        lines.append(
            f"- {tool}: peak RSS {large.messages:,} / {small.messages:,} = "
            f"{large.peak_mb / small.peak_mb:.2f}x ({large.peak_mb:.0f} MB); speed "
            f"{large.rate / small.rate:.0%} of the small size; no-change re-sync at the large "
            f"size through the proxy: {large.nochange_delay:.2f} s"
        )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="20000,200000", help="comma-separated message counts")
    ap.add_argument("--modes", default="asyncio", help="comma-separated mailsync modes")
    ap.add_argument("--avg-bytes", type=int, default=1500, help="average message size cap")
    ap.add_argument("--delay", type=int, default=100, help="proxy delay each way, ms")
    ap.add_argument("--runs", type=int, default=3, help="runs of the delayed re-sync (median)")
    ap.add_argument("--baseline", type=Path, default=None, help="a checkout to compare with")
    ap.add_argument(
        "--inline", action="store_true", help="also run each mode with header_workers = 0"
    )
    ap.add_argument("--markdown", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if args.baseline is not None:
        args.baseline = args.baseline.resolve()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    tools = [
        t
        for m in modes
        for t in [
            m,
            *([f"{m}-inline"] if args.inline else []),
            *([f"{m}-baseline"] if args.baseline else []),
        ]
    ]
    console = Console(width=150)
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="fetchlab-bench-memory-"))
    work.chmod(0o755)  # Dovecot's mail user must traverse it
    users = {f"m{n}": PASSWORD for n in sizes}
    server = start_dovecot(work / "dovecot", users=users, compress=False)
    bench_mail.SERVER[0] = ServerCPU(server.process.pid)
    rows: list[Row] = []
    try:
        for n in sizes:
            _load(server, f"m{n}", n, args.avg_bytes, console)
        round_ = 0
        for n in sizes:
            for tool in tools:
                round_ += 1
                row = _measure(args, server, work, tool, f"m{n}", n, round_)
                console.print(row)
                rows.append(row)
    finally:
        server.stop()
        subprocess.run(["rm", "-rf", str(work)], check=False)
    load_after = os.getloadavg()
    table = _table(rows, args.delay)
    console.print(summary_table("mail memory benchmark", list(HEADERS), table))
    ratios = _ratios(rows)
    for line in ratios:
        console.print(line)
    meta = [
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} cores;"
        f" load average before {load_before[0]:.1f}, after {load_after[0]:.1f}",
        f"- corpus: {', '.join(f'{n:,}' for n in sizes)} messages of ~{args.avg_bytes} bytes,"
        f" half in {BIG}, the rest in {len(OTHERS)} folders; stock Dovecot 2.3 on loopback",
        f"- no-change s @delay: through testbed.proxy, {args.delay} ms each way (median of"
        f" {args.runs}); no-change s: median of 3 direct",
    ]
    if args.markdown:
        lines = [
            *meta,
            "",
            "| " + " | ".join(HEADERS) + " |",
            "|" + "---|" * len(HEADERS),
            *("| " + " | ".join(row) + " |" for row in table),
            "",
            *ratios,
            "",
        ]
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text("\n".join(lines), "utf-8")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1), "utf-8")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
