"""Mail benchmark (a script, not a test): ``scripts/bench mail [--full]``.

Builds a corpus in a private Dovecot, then times, side by side in one run, mailsync (native
transport; ``--aioimaplib`` adds the aioimaplib transport) and mbsync (Debian isync) -- and
OfflineIMAP when installed -- for three scenarios: a full backup into an empty folder, a no-change
re-sync, and a re-sync after 100 new messages. Each runs direct and through the delay proxy
(``--delays``, ms one way). Reports wall seconds (median of ``--runs``), msgs/s, MB/s, client CPU
seconds, peak RSS and the wall-time ratio to mbsync (> 1: faster than mbsync).

Quick size by default (2,000 messages, ~100 MB); ``--full`` (or FETCHLAB_SLOW=1) is the target
size (20,000 messages, ~1 GB): run it on a quiet machine only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script: make the project importable
    sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
from rich.console import Console  # noqa: E402

from modes.progress import summary_table  # noqa: E402
from testbed.corpus import generate_corpus  # noqa: E402
from testbed.dovecot import DovecotServer, start_dovecot  # noqa: E402
from testbed.imap_load import append_messages, load_corpus  # noqa: E402
from testbed.proxy import start_proxy  # noqa: E402

USER, PASSWORD = "bench", "secret"


@dataclass(frozen=True)
class Sample:
    wall: float
    cpu: float
    rss_mb: float


@dataclass(frozen=True)
class Row:
    tool: str
    delay_ms: int
    scenario: str
    messages: int
    mbytes: float
    wall: float
    cpu: float
    rss_mb: float


def _tree_rss(proc: psutil.Process) -> int:
    # before exec the child still maps this (large) benchmark process: not the client's memory
    if any("bench_mail" in part for part in proc.cmdline()):
        return 0
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def _run(argv: list[str], env: dict[str, str] | None = None) -> Sample:
    """Run one client to completion: wall, CPU (it and its reaped children), peak tree RSS.

    RSS is sampled (every 20 ms, summed over the process tree) because ru_maxrss of a forked
    child counts the parent's pages from before exec.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    peak = 0
    ps = psutil.Process(proc.pid)
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        with contextlib.suppress(psutil.Error):
            peak = max(peak, _tree_rss(ps))
        time.sleep(0.02)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode("utf-8", "replace") if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({proc.returncode}): {err[-2000:]}")
    return Sample(wall, usage.ru_utime + usage.ru_stime, peak / 1e6)


def _mailsync(out: Path, port: int, client: str) -> Callable[[], Sample]:
    settings = out.parent / f"{out.name}.toml"
    settings.write_text(
        f"""[mail]
out = "{out}"
imap_client = "{client}"
[[mail.accounts]]
name = "bench"
host = "127.0.0.1"
port = {port}
security = "plain"
username = "{USER}"
password_env = "BENCH_PASSWORD"
""",
        "utf-8",
    )
    env = {**os.environ, "BENCH_PASSWORD": PASSWORD}
    argv = [
        sys.executable,
        "-m",
        "mailsync.cli",
        "backup",
        "--settings",
        str(settings),
        "--no-progress",
    ]
    return lambda: _run(argv, env)


def _mbsync(out: Path, port: int) -> Callable[[], Sample]:
    conf = out.parent / f"{out.name}.mbsyncrc"
    conf.write_text(
        f"""IMAPAccount bench
Host 127.0.0.1
Port {port}
User {USER}
Pass {PASSWORD}
SSLType None
AuthMechs LOGIN

IMAPStore remote
Account bench

MaildirStore local
Path {out}/
Inbox {out}/INBOX
SubFolders Verbatim

Channel bench
Far :remote:
Near :local:
Patterns *
Create Near
Sync Pull
Expunge None
SyncState *
""",
        "utf-8",
    )
    out.mkdir(parents=True, exist_ok=True)
    return lambda: _run(["mbsync", "-q", "-c", str(conf), "-a"])


def _median(samples: list[Sample]) -> Sample:
    return Sample(
        statistics.median(s.wall for s in samples),
        statistics.median(s.cpu for s in samples),
        max(s.rss_mb for s in samples),
    )


def _new_messages(server: DovecotServer, n: int, round_: int) -> None:
    append_messages(
        server,
        USER,
        "INBOX",
        [
            b"From: bench@example.org\r\nSubject: new %d.%d\r\nMessage-ID: <b%d.%d@bench>\r\n"
            b"\r\n%s\r\n" % (round_, i, round_, i, b"x" * 4000)
            for i in range(n)
        ],
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", default=os.environ.get("FETCHLAB_SLOW") == "1")
    ap.add_argument("--messages", type=int, default=None)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--delays", default="0,25,100", help="one-way proxy delays in ms")
    ap.add_argument("--aioimaplib", action="store_true", help="also time the aioimaplib transport")
    ap.add_argument("--json", type=Path, default=None, help="write the rows here")
    args = ap.parse_args()
    messages = args.messages or (20_000 if args.full else 2_000)
    delays = [int(d) for d in args.delays.split(",") if d.strip()]
    console = Console(width=150)
    work = Path(tempfile.mkdtemp(prefix="fetchlab-bench-mail-"))
    work.chmod(0o755)  # Dovecot's unprivileged mail user must traverse it
    try:
        server = start_dovecot(work / "dovecot", users={USER: PASSWORD})
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    rows: list[Row] = []
    try:
        corpus = generate_corpus(messages=messages, seed=1)
        t = time.perf_counter()
        truth = load_corpus(server, USER, corpus)
        total_mb = sum(r.size for r in truth) / 1e6
        console.print(
            f"corpus: {len(truth)} messages, {total_mb:.0f} MB, "
            f"{len(corpus.folders)} folders, loaded in {time.perf_counter() - t:.0f} s"
        )
        tools = ["mailsync"] + (["mailsync-aioimaplib"] if args.aioimaplib else [])
        if shutil.which("mbsync"):
            tools.append("mbsync")
        if shutil.which("offlineimap"):
            console.print("offlineimap is installed but not wired in yet: skipped")
        round_ = 0
        for delay in delays:
            proxy = None
            port = server.port
            if delay:
                proxy = start_proxy((server.host, server.port), delay_ms=delay)
                port = proxy.port
            try:
                for tool in tools:
                    full: list[Sample] = []
                    for i in range(args.runs):
                        out = work / f"{tool}-{delay}-{i}"
                        shutil.rmtree(out, ignore_errors=True)
                        runner = (
                            _mbsync(out, port)
                            if tool == "mbsync"
                            else _mailsync(out, port, "aioimaplib" if "aio" in tool else "native")
                        )
                        full.append(runner())
                    s = _median(full)
                    rows.append(
                        Row(tool, delay, "full", len(truth), total_mb, s.wall, s.cpu, s.rss_mb)
                    )
                    none = _median([runner() for _ in range(args.runs)])
                    rows.append(
                        Row(tool, delay, "no-change", 0, 0, none.wall, none.cpu, none.rss_mb)
                    )
                added: dict[str, list[Sample]] = {t: [] for t in tools}
                last = {t: work / f"{t}-{delay}-{args.runs - 1}" for t in tools}
                for _ in range(args.runs):
                    round_ += 1
                    _new_messages(server, 100, round_)
                    for tool in tools:
                        runner = (
                            _mbsync(last[tool], port)
                            if tool == "mbsync"
                            else _mailsync(
                                last[tool], port, "aioimaplib" if "aio" in tool else "native"
                            )
                        )
                        added[tool].append(runner())
                for tool in tools:
                    s = _median(added[tool])
                    rows.append(Row(tool, delay, "+100 new", 100, 0.4, s.wall, s.cpu, s.rss_mb))
            finally:
                if proxy is not None:
                    proxy.stop()
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    _report(console, rows)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1), "utf-8")


def _report(console: Console, rows: list[Row]) -> None:
    ref = {(r.delay_ms, r.scenario): r.wall for r in rows if r.tool == "mbsync"}
    table = []
    for r in rows:
        base = ref.get((r.delay_ms, r.scenario))
        table.append(
            (
                r.tool,
                r.delay_ms,
                r.scenario,
                f"{r.wall:.2f}",
                f"{r.messages / r.wall:.0f}" if r.messages else "-",
                f"{r.mbytes / r.wall:.1f}" if r.mbytes else "-",
                f"{r.cpu:.2f}",
                f"{r.rss_mb:.0f}",
                f"{base / r.wall:.2f}x" if base else "-",
            )
        )
    console.print(
        summary_table(
            "mail benchmark (median wall; ratio = mbsync wall / tool wall)",
            [
                "tool",
                "delay ms",
                "scenario",
                "wall s",
                "msgs/s",
                "MB/s",
                "CPU s",
                "RSS MB",
                "vs mbsync",
            ],
            table,
        )
    )


if __name__ == "__main__":
    main()
