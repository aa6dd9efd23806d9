"""Mail benchmark (a script, not a test): ``scripts/bench mail [--full]``.

Builds a corpus in a private Dovecot, then times, side by side in one run, mailsync (native
transport; ``--aioimaplib`` adds the aioimaplib transport), mbsync (Debian isync) and OfflineIMAP
(Debian offlineimap3) when installed (``--with-peers`` installs them, as root) for three
scenarios: a full backup into an empty folder, a no-change re-sync, and a re-sync after 100 new
messages. Each runs direct and through the delay proxy (``--delays``, ms one way). Reports wall
seconds (median of ``--runs``), msgs/s, MB/s, client CPU seconds (process-pool workers included),
peak RSS of the process tree and the ratio to mbsync (> 1: faster than mbsync).

OfflineIMAP fetches one message per round trip (~4 msgs/s at 100 ms): it runs once per scenario
and is stopped after ``--peer-budget`` seconds; its rate is then what it archived by then.

Quick size by default (2,000 messages, ~100 MB); ``--full`` (or FETCHLAB_SLOW=1) is the target
size (20,000 messages, ~1 GB): run it on a quiet machine only. ``--markdown`` / ``--json`` write
the table (docs/benchmarks/mail.md) and the rows.

A finished run's archive is moved aside, not deleted, until the whole benchmark ends. ext4
without a journal (this machine's root file system) skips inodes freed in the last few seconds
when it allocates one (``recently_deleted`` in fs/ext4/ialloc.c), reading each of them: a full
backup written right after deleting the previous run's 20,000 files spent ~40% of its CPU in
that kernel scan (perf) and took 13.9-17 s instead of 9-10 s, whichever tool ran. Every tool
now writes into an empty folder as a user's first backup would; the moved archives take disk
space (~1 GB each at full size) until the end. Each full backup also starts from the same page
cache (``fetchlab.bench.page_cache``: dropped, the server's Maildir read back), whichever tool
ran before; the table's header says how.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script: make the project importable
    sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
from rich.console import Console  # noqa: E402

from fetchlab.bench.grid import SET_ASIDE, set_aside  # noqa: E402
from fetchlab.bench.page_cache import CacheReset, fresh_page_cache  # noqa: E402
from fetchlab.bench.report import git_commit, versions_line  # noqa: E402
from fetchlab.bench.sampler import ServerCPU  # noqa: E402
from foundation.progress import summary_table  # noqa: E402
from testbed.corpus import generate_corpus  # noqa: E402
from testbed.dovecot import DovecotServer, start_dovecot  # noqa: E402
from testbed.imap_load import append_messages, load_corpus  # noqa: E402
from testbed.proxy import start_proxy  # noqa: E402

USER, PASSWORD = "bench", "secret"
CUR_NEW = ("cur", "new")
PEERS = {"mbsync": "isync", "offlineimap": "offlineimap3"}


@dataclass(frozen=True)
class Sample:
    wall: float
    cpu: float
    rss_mb: float
    timed_out: bool = False
    server_cpu: float = 0.0  # Dovecot's CPU seconds during the run (all its processes)
    sys_cpu: float = 0.0  # the part of `cpu` spent in the kernel (file creation, page cache)


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
    timed_out: bool = False  # stopped at --peer-budget: messages = what it archived by then
    server_cpu: float = 0.0  # Dovecot's CPU seconds: near the wall time, the server is the limit
    sys_cpu: float = 0.0  # the client's CPU in the kernel (of `cpu`)


SERVER = [ServerCPU(None)]  # the Dovecot in use (set in main)
CACHE: list[CacheReset | None] = [None]  # how the last full run's page cache was reset


def _tree_rss(proc: psutil.Process, cpu: dict[int, tuple[float, float]]) -> int:
    """RSS of the process tree now; records each grandchild's CPU seconds (user, system) in
    ``cpu``."""
    # before exec the child still maps this (large) benchmark process: not the client's memory
    if any("bench_mail" in part for part in proc.cmdline()):
        return 0
    total = 0
    children = {p.pid for p in proc.children()}
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
            if p.pid != proc.pid and p.pid not in children:
                times = p.cpu_times()
                cpu[p.pid] = (times.user, times.system)
    return total


def _run(
    argv: list[str],
    env: dict[str, str] | None = None,
    budget: float | None = None,
    cwd: Path = ROOT,
) -> Sample:
    """Run one client to completion: wall, CPU (it and its reaped children), peak tree RSS.

    RSS is sampled (every 20 ms, summed over the process tree) because ru_maxrss of a forked
    child counts the parent's pages from before exec. CPU is the client's and its reaped
    children's (rusage) plus the last sample of each grandchild: process-pool workers are
    children of multiprocessing's forkserver, which the client never reaps. A client still
    running after ``budget`` seconds is stopped (its process group, by PID) and the sample says
    so.
    """
    server_before = SERVER[0].snapshot()
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        cwd=cwd,  # `python -m` imports from its working directory first
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    peak = 0
    grandchildren_cpu: dict[int, tuple[float, float]] = {}
    timed_out = False
    ps = psutil.Process(proc.pid)
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if budget is not None and not timed_out and time.perf_counter() - start > budget:
            timed_out = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(psutil.Error):
            peak = max(peak, _tree_rss(ps, grandchildren_cpu))
        time.sleep(0.02)
    wall = time.perf_counter() - start
    server = SERVER[0].since(server_before)
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode("utf-8", "replace") if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    if proc.returncode != 0 and not timed_out:
        raise SystemExit(f"{argv[0]} failed ({proc.returncode}): {err[-2000:]}")
    sys_cpu = usage.ru_stime + sum(t[1] for t in grandchildren_cpu.values())
    cpu = usage.ru_utime + sum(t[0] for t in grandchildren_cpu.values()) + sys_cpu
    return Sample(wall, cpu, peak / 1e6, timed_out, server, sys_cpu)


def _mailsync(
    out: Path, port: int, client: str, code: Path = ROOT, extra: str = ""
) -> Callable[[], Sample]:
    """mailsync from the checkout ``code`` (this one, or ``--baseline``'s); ``extra``: more
    ``[mail]`` lines (a labelled variant such as ``index = true``)."""
    settings = out.parent / f"{out.name}.toml"
    settings.write_text(
        f"""[mail]
out = "{out}"
imap_client = "{client}"
{extra}
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
    env = {**os.environ, "BENCH_PASSWORD": PASSWORD, "PYTHONPATH": str(code)}
    # the CLI module moved in the layout change: a baseline checkout may have the old one
    new = (code / "fetchlab" / "mail_cli.py").exists()
    argv = [
        sys.executable,
        "-m",
        "fetchlab.mail_cli" if new else "mailsync.cli",
        "backup",
        "--settings",
        str(settings),
        "--no-progress",
    ]
    return lambda: _run(argv, env, cwd=code)


def _index_later(out: Path) -> Sample:
    """``mailsync index`` over the archive a default backup (no index) left at ``out``: what the
    first search after that backup pays, once (its settings file is the backup's)."""
    settings = out.parent / f"{out.name}.toml"
    env = {**os.environ, "BENCH_PASSWORD": PASSWORD, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "fetchlab.mail_cli", "index", "--settings", str(settings)]
    return _run(argv, env, cwd=ROOT)


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


def _offlineimap(out: Path, port: int, budget: float) -> Callable[[], Sample]:
    conf = out.parent / f"{out.name}.offlineimaprc"
    conf.write_text(
        f"""[general]
accounts = bench
metadata = {out}.meta
maxsyncaccounts = 1

[Account bench]
localrepository = local
remoterepository = remote

[Repository local]
type = Maildir
localfolders = {out}

[Repository remote]
type = IMAP
remotehost = 127.0.0.1
remoteport = {port}
remoteuser = {USER}
remotepass = {PASSWORD}
ssl = no
starttls = no
readonly = True
maxconnections = 1
""",
        "utf-8",
    )
    out.mkdir(parents=True, exist_ok=True)
    return lambda: _run(["offlineimap", "-c", str(conf), "-u", "quiet"], budget=budget)


def _count_messages(root: Path) -> int:
    return sum(
        len(files) for dirpath, _, files in os.walk(root) if os.path.basename(dirpath) in CUR_NEW
    )


def _median(samples: list[Sample]) -> Sample:
    return Sample(
        statistics.median(s.wall for s in samples),
        statistics.median(s.cpu for s in samples),
        max(s.rss_mb for s in samples),
        any(s.timed_out for s in samples),
        statistics.median(s.server_cpu for s in samples),
        statistics.median(s.sys_cpu for s in samples),
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


BASELINE: list[Path] = []  # --baseline: the other checkout mailsync-baseline runs from


def _runner(tool: str, out: Path, port: int, budget: float) -> Callable[[], Sample]:
    if tool == "mailsync-baseline":
        return _mailsync(out, port, "native", BASELINE[0])
    if tool == "mailsync-index":  # the same code indexing as it backs up (index = true)
        return _mailsync(out, port, "native", extra="index = true")
    if tool == "mbsync":
        return _mbsync(out, port)
    if tool == "offlineimap":
        return _offlineimap(out, port, budget)
    return _mailsync(out, port, "aioimaplib" if "aio" in tool else "native")


def _ensure_peers(console: Console) -> None:
    """--with-peers: install the missing peers with apt-get (root only)."""
    missing = [pkg for binary, pkg in PEERS.items() if not shutil.which(binary)]
    if not missing:
        return
    if os.geteuid() != 0:
        console.print(f"not root: cannot install {', '.join(missing)} (apt-get install them)")
        return
    console.print(f"installing {', '.join(missing)} ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "install", "-y", *missing], check=False, env=env)


def _tool_version(tool: str) -> str:
    if tool == "mailsync-baseline" and BASELINE:
        return f"the checkout {BASELINE[0].name} ({git_commit(BASELINE[0])})"
    if tool.startswith("mailsync"):
        return f"this tree ({git_commit(Path(__file__).resolve().parents[2])})"
    argv = {"mbsync": ["mbsync", "--version"], "offlineimap": ["offlineimap", "--version"]}[tool]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return (
        (done.stdout or done.stderr).strip().splitlines()[0]
        if (done.stdout or done.stderr)
        else "?"
    )


def _archived_mb(root: Path) -> float:
    total = 0
    for dirpath, _, files in os.walk(root):
        if os.path.basename(dirpath) in CUR_NEW:
            total += sum(os.path.getsize(os.path.join(dirpath, f)) for f in files)
    return total / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", default=os.environ.get("FETCHLAB_SLOW") == "1")
    ap.add_argument("--messages", type=int, default=None)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--delays", default="0,25,100", help="one-way proxy delays in ms")
    ap.add_argument("--aioimaplib", action="store_true", help="also time the aioimaplib transport")
    ap.add_argument(
        "--index",
        action="store_true",
        help="also time mailsync with index = true (labelled mailsync-index): the search index"
        " built during the backup instead of by the first search after it (mbsync builds none)",
    )
    ap.add_argument(
        "--with-peers",
        action="store_true",
        help="install mbsync (isync) and OfflineIMAP (offlineimap3) when missing (root)",
    )
    ap.add_argument(
        "--peer-budget",
        type=float,
        default=90.0,
        help="seconds an OfflineIMAP run may take before it is stopped (its rate is then "
        "what it archived in that time); it runs once per scenario, not --runs times",
    )
    ap.add_argument(
        "--tools",
        default="mailsync,mbsync,offlineimap",
        help="comma-separated: mailsync, mbsync, offlineimap (peers only when installed)",
    )
    ap.add_argument(
        "--server",
        choices=["stock", "compress"],
        default="stock",
        help="Dovecot's configuration: stock (default), or with the zlib plugins that offer "
        "COMPRESS=DEFLATE (a second, labelled configuration: it makes the server the limit)",
    )
    ap.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="also run mailsync from this checkout (e.g. a git worktree of an older commit) as"
        " the tool mailsync-baseline: before/after in one run",
    )
    ap.add_argument("--json", type=Path, default=None, help="write the rows here")
    ap.add_argument("--markdown", type=Path, default=None, help="write the table here")
    args = ap.parse_args()
    messages = args.messages or (20_000 if args.full else 2_000)
    delays = [int(d) for d in args.delays.split(",") if d.strip()]
    console = Console(width=150)
    if args.with_peers:
        _ensure_peers(console)
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="fetchlab-bench-mail-"))
    work.chmod(0o755)  # Dovecot's unprivileged mail user must traverse it
    try:
        # stock Dovecot unless asked: the zlib plugins that offer COMPRESS cost the server CPU
        # even for clients that never compress, and a server-bound run measures the server
        server = start_dovecot(
            work / "dovecot", users={USER: PASSWORD}, compress=args.server == "compress"
        )
        SERVER[0] = ServerCPU(server.process.pid)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    rows: list[Row] = []
    wanted = {t.strip() for t in args.tools.split(",")}
    tools = ["mailsync"] if "mailsync" in wanted else []
    tools += ["mailsync-aioimaplib"] if args.aioimaplib else []
    tools += ["mailsync-index"] if args.index else []
    if args.baseline is not None:
        BASELINE[:] = [args.baseline.resolve()]
        tools.append("mailsync-baseline")
    tools += [t for t in ("mbsync", "offlineimap") if t in wanted and shutil.which(t)]
    corpus_line = ""
    try:
        corpus = generate_corpus(messages=messages, seed=1)
        t = time.perf_counter()
        truth = load_corpus(server, USER, corpus)
        total_mb = sum(r.size for r in truth) / 1e6
        corpus_line = (
            f"{len(truth)} messages, {total_mb:.0f} MB, {len(corpus.folders)} folders "
            f"(Dovecot {server.port}), loaded in {time.perf_counter() - t:.0f} s"
        )
        console.print(f"corpus: {corpus_line}")
        round_ = 0
        for delay in delays:
            proxy = None
            port = server.port
            if delay:
                proxy = start_proxy((server.host, server.port), delay_ms=delay)
                port = proxy.port
            try:
                round_ = _scenarios(
                    args, console, work, tools, delay, port, server, truth, rows, round_
                )
            finally:
                if proxy is not None:
                    proxy.stop()
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()
    table = _report(console, rows)
    machine = versions_line()
    console.print(f"load average before {load_before[0]:.1f}, after {load_after[0]:.1f}; {machine}")
    if CACHE[0] is not None:
        console.print(f"page cache: {CACHE[0].label}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1), "utf-8")
    if args.markdown:
        meta = [
            f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
            f"{os.cpu_count()} cores; load average before {load_before[0]:.1f}, "
            f"after {load_after[0]:.1f} (a shared machine: other jobs ran meanwhile)",
            f"- corpus: {corpus_line}",
            f"- runs: median of {args.runs} (OfflineIMAP: 1 run, stopped after "
            f"{args.peer_budget:.0f} s; its msgs/s is then what it archived in that time)",
            "- tools: " + "; ".join(f"{t}: {_tool_version(t)}" for t in tools),
            "- delay: added by testbed.proxy in each direction (a round trip gains 2x)",
            f"- machine: {machine}",
            f"- server: Dovecot, {args.server} configuration"
            + (" (zlib plugins loaded for COMPRESS)" if args.server == "compress" else "")
            + "; server CPU s is all its processes' CPU during the run",
            f"- page cache: {CACHE[0].label if CACHE[0] else 'untouched'}",
        ]
        _write_markdown(args.markdown, meta, table)


def _scenarios(
    args: argparse.Namespace,
    console: Console,
    work: Path,
    tools: list[str],
    delay: int,
    port: int,
    server: DovecotServer,
    truth: list[Any],
    rows: list[Row],
    round_: int,
) -> int:
    """Full, no-change and +100 new for every tool at one delay; returns the append round.

    The full backups are interleaved, round by round, and each round starts with the next
    tool: on this file system a run right after a mass deletion (a finished bench's clean-up)
    pays for creating files for minutes, so a tool that always ran first (or always in one
    block) was handicapped by whatever ran before it (measured: mailsync 14.2 s against 8.7 s
    twenty minutes apart, same code). Each full backup also starts from the same page cache
    (:mod:`fetchlab.bench.page_cache`: what the runs before had left cached changed a run's
    system CPU up to threefold, for either tool)."""
    total_mb = sum(r.size for r in truth) / 1e6
    complete: list[str] = []
    runs_of = {tool: 1 if tool == "offlineimap" else args.runs for tool in tools}
    outs = {tool: work / f"{tool}-{delay}" for tool in tools}
    fulls: dict[str, list[Sample]] = {tool: [] for tool in tools}
    for k in range(max(runs_of.values(), default=0)):
        for tool in tools[k % len(tools) :] + tools[: k % len(tools)]:
            if k < runs_of[tool]:
                set_aside(outs[tool], work)
                set_aside(Path(f"{outs[tool]}.meta"), work)
                CACHE[0] = fresh_page_cache([server.workdir / "home"], work / SET_ASIDE)
                fulls[tool].append(_runner(tool, outs[tool], port, args.peer_budget)())
    for tool in tools:
        runs, out = runs_of[tool], outs[tool]
        s = _median(fulls[tool])
        if s.timed_out:
            done = _count_messages(out)
            console.print(f"{tool} {delay} ms: stopped after {s.wall:.0f} s, {done} archived")
            rows.append(
                Row(
                    tool,
                    delay,
                    "full",
                    done,
                    _archived_mb(out),
                    s.wall,
                    s.cpu,
                    s.rss_mb,
                    True,
                    s.server_cpu,
                    s.sys_cpu,
                )
            )
            continue
        rows.append(
            Row(
                tool,
                delay,
                "full",
                len(truth),
                total_mb,
                s.wall,
                s.cpu,
                s.rss_mb,
                False,
                s.server_cpu,
                s.sys_cpu,
            )
        )
        if tool == "mailsync":
            # the default backup leaves the index to the first search: its one-off cost
            ix = _index_later(out)
            rows.append(
                Row(
                    tool,
                    delay,
                    "index later (1 run)",
                    len(truth),
                    total_mb,
                    ix.wall,
                    ix.cpu,
                    ix.rss_mb,
                    False,
                    ix.server_cpu,
                    ix.sys_cpu,
                )
            )
        none = _median([_runner(tool, out, port, args.peer_budget)() for _ in range(runs)])
        rows.append(
            Row(
                tool,
                delay,
                "no-change",
                0,
                0,
                none.wall,
                none.cpu,
                none.rss_mb,
                none.timed_out,
                none.server_cpu,
                none.sys_cpu,
            )
        )
        complete.append(tool)
    added: dict[str, list[Sample]] = {t: [] for t in complete}
    for _ in range(args.runs):
        round_ += 1
        _new_messages(server, 100, round_)
        for tool in complete:
            added[tool].append(_runner(tool, work / f"{tool}-{delay}", port, args.peer_budget)())
    for tool in complete:
        s = _median(added[tool])
        rows.append(
            Row(
                tool,
                delay,
                "+100 new",
                100,
                0.4,
                s.wall,
                s.cpu,
                s.rss_mb,
                s.timed_out,
                s.server_cpu,
                s.sys_cpu,
            )
        )
    for tool in tools:
        set_aside(work / f"{tool}-{delay}", work)
        set_aside(work / f"{tool}-{delay}.meta", work)
    return round_


def _report(console: Console, rows: list[Row]) -> list[tuple[str, ...]]:
    # ratio to mbsync: its wall / the tool's wall for the same work (msgs/s ratio when a run
    # was stopped early: then the work differs)
    ref = {(r.delay_ms, r.scenario): r for r in rows if r.tool == "mbsync"}
    table: list[tuple[str, ...]] = []
    for r in rows:
        base = ref.get((r.delay_ms, r.scenario))
        if base is None or base is r:
            ratio = "-"
        elif r.timed_out or base.timed_out:
            ratio = f"{(r.messages / r.wall) / (base.messages / base.wall):.2f}x"
        else:
            ratio = f"{base.wall / r.wall:.2f}x"
        table.append(
            (
                r.tool,
                str(r.delay_ms),
                r.scenario + (" (stopped)" if r.timed_out else ""),
                f"{r.wall:.2f}",
                f"{r.messages / r.wall:.0f}" if r.messages else "-",
                f"{r.mbytes / r.wall:.1f}" if r.mbytes else "-",
                f"{r.cpu:.2f}",
                f"{r.sys_cpu:.2f}",
                f"{r.server_cpu:.2f}",
                f"{r.rss_mb:.0f}",
                ratio,
            )
        )
    console.print(
        summary_table(
            "mail benchmark (median wall; vs mbsync = mbsync wall / tool wall)",
            list(HEADERS),
            table,
        )
    )
    return table


HEADERS = (
    "tool",
    "delay ms",
    "scenario",
    "wall s",
    "msgs/s",
    "MB/s",
    "CPU s",
    "of it system s",
    "server CPU s",
    "RSS MB",
    "vs mbsync",
)


def _write_markdown(path: Path, meta: list[str], table: list[tuple[str, ...]]) -> None:
    lines = [
        "# mailsync benchmark: results",
        "",
        "Written by `scripts/bench mail --markdown FILE`; see docs/mailsync.md for the method.",
        "",
        *meta,
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "---|" * len(HEADERS),
        *("| " + " | ".join(row) + " |" for row in table),
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), "utf-8")


if __name__ == "__main__":
    main()
