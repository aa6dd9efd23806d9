"""``--mode processes``: one worker process SIGKILLed mid-run (crawler and mailsync).

The run must end on its own, soon, with the CLI's error code and one line that names the dead
worker (no traceback); every other worker must be gone too (no orphans); and a rerun, in the
processes mode and in another, finishes the job: the archive then equals the ground truth.

Worker PIDs are found by process tree, never by name: the crawler spawns its workers (children
of the command); mailsync's are forked by the multiprocessing fork server, a child of the command
(so: grandchildren of the command).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path

import psutil
import pytest

from foundation.worker_pipe import PipeSender, death_note
from tests.fixtures.imap import FreshImapAccount
from tests.fixtures.proxy import ProxyFactory
from tests.fixtures.web import WebSite
from tests.integration._mailsync_helpers import (
    PASSWORD_ENV,
    account_for,
    archive_files,
    assert_archive_matches,
    state_rows,
)
from tests.integration.crawl_support import check_archive, pages

ROOT = Path(__file__).resolve().parents[2]
EXIT_WORKER_DIED = 1  # fetchlab.crawl_cli: WorkerDiedError, not the user's input (2 is usage)
END_WITHIN = 15.0  # seconds from the kill to the command's own exit


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FETCHLAB_PROCESSES": "2", **extra}
    env.pop("FETCHLAB_SETTINGS", None)
    return env


def _start(argv: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        argv,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the test's clean-up can reach every process it made
    )


def _workers(proc: subprocess.Popen[str], n: int, *, spawned: bool) -> list[psutil.Process]:
    """The ``n`` worker processes of ``proc``: its direct children (the crawler's, started by
    foundation.child_process: there are no others) or the children of its fork server
    (mailsync's), a child of it."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            children = psutil.Process(proc.pid).children()
            if spawned:
                found = [c for c in children if "foundation.child_process" in " ".join(c.cmdline())]
            else:
                found = [g for c in children for g in c.children()]
        except psutil.NoSuchProcess:
            break
        if len(found) >= n:
            return found
        time.sleep(0.02)
    raise AssertionError(f"{n} worker processes never showed up (exit {proc.poll()})")


def _poll(ready: Callable[[], bool], proc: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + 60
    while not ready():
        assert proc.poll() is None, f"the run ended before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _kill_one_and_wait(
    proc: subprocess.Popen[str], workers: list[psutil.Process]
) -> tuple[int, str, float]:
    """SIGKILL ``workers[0]``; the command's exit code, its stderr and how long it took."""
    everyone = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    victim = workers[0]
    victim.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    try:
        _, err = proc.communicate(timeout=END_WITHIN + 30)
    except subprocess.TimeoutExpired:
        raise AssertionError("the run hung after a worker died") from None
    took = time.monotonic() - killed_at
    # no orphans: every process of the run is gone (the fork server exits on its own, soon)
    deadline = time.monotonic() + 10
    while (left := [p for p in everyone if _alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not left, f"left running after the run ended: {left}"
    return proc.returncode, err, took


def _alive(p: psutil.Process) -> bool:
    try:
        return bool(p.is_running() and p.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def reaped() -> Iterator[list[subprocess.Popen[str]]]:
    """Runs started by the test: whatever is left of them is killed at the end."""
    started: list[subprocess.Popen[str]] = []
    try:
        yield started
    finally:
        for proc in started:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=10)


def _one_clean_line(err: str, *needles: str) -> str:
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if "died" in ln or "killed" in ln]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# -- the crawler ----------
def _crawl_argv(*args: str) -> list[str]:
    flags = ["--concurrency", "4", "--per-host", "4", "--parse-workers", "0", "--no-progress"]
    return [sys.executable, "-m", "fetchlab.crawl_cli", "crawl", *args, *flags]


def _rows(out: Path) -> int:
    path = out / "pages.jsonl"
    return path.read_bytes().count(b"\n") if path.exists() else 0


@pytest.mark.needs_nginx
@pytest.mark.parametrize("second", ["processes", "asyncio"])
def test_crawl_worker_killed_then_resumed(
    second: str, web_site: WebSite, tmp_path: Path, reaped: list[subprocess.Popen[str]]
) -> None:
    base = web_site.server.latency_url(100)  # 100 ms a response: the crawl runs a few seconds
    urls = sorted({base + p for p in web_site.info.page_paths})[:120]
    urls_file = tmp_path / "urls.txt"
    urls_file.write_text("\n".join(urls) + "\n", "utf-8")
    out = tmp_path / "out"
    argv = _crawl_argv("-i", str(urls_file), "--out", str(out), "--mode", "processes")
    proc = _start(argv, _env())
    reaped.append(proc)
    workers = _workers(proc, 2, spawned=True)
    _poll(lambda: _rows(out) >= 10, proc, "10 pages were archived")
    code, err, took = _kill_one_and_wait(proc, workers)

    assert code == EXIT_WORKER_DIED, err
    _one_clean_line(err, "crawl worker", f"pid {workers[0].pid}", "SIGKILL", "--resume")
    assert took < END_WITHIN, took
    assert 10 <= _rows(out) < len(urls)

    again = _start(
        [*_crawl_argv("--resume", str(out), "--mode", second)], _env(FETCHLAB_PROCESSES="2")
    )
    reaped.append(again)
    _, err2 = again.communicate(timeout=60)
    assert again.returncode == 0, err2
    rows = pages(out)
    assert sorted(r["url"] for r in rows) == urls, "every URL exactly once"
    assert all(r["status"] == 200 and r["error_class"] is None for r in rows)
    check = check_archive(out)  # WARC readable, digests right, request/response pairs, index
    assert set(check.responses) == set(urls) and max(check.responses.values()) == 1


# -- mailsync ----------
def _mail_settings(path: Path, proxy_port: int, user: str, mode: str) -> Path:
    path.write_text(
        f'[mail]\nmode = "{mode}"\nheader_workers = 0\ntimeout = 20.0\n\n'
        "[[mail.accounts]]\n"
        f'name = "{user}"\nhost = "127.0.0.1"\nport = {proxy_port}\nsecurity = "plain"\n'
        f'username = "{user}"\npassword_env = "{PASSWORD_ENV}"\n'
        "connections = 2\nbatch_messages = 5\n",
        "utf-8",
    )
    return path


def _mailsync(*args: str) -> list[str]:
    return [sys.executable, "-m", "fetchlab.mail_cli", *args]


def _messages(root: Path) -> int:
    return sum(1 for sub in ("new", "cur") for p in root.rglob(f"{sub}/*") if p.is_file())


@pytest.mark.needs_dovecot
@pytest.mark.parametrize("second", ["processes", "asyncio"])
def test_mail_worker_killed_then_resumed(
    second: str,
    fresh_imap_account: FreshImapAccount,
    delay_proxy: ProxyFactory,
    tmp_path: Path,
    reaped: list[subprocess.Popen[str]],
) -> None:
    acct = fresh_imap_account(messages=60, seed=11, folders=["INBOX", "Work", "Old"])
    assert len(acct.truth) == 60
    # 20 ms each way: the backup runs long enough to be cut in the middle
    proxy = delay_proxy((acct.server.host, acct.server.port), delay_ms=20)
    out = tmp_path / "out"
    root = out / acct.user
    env = _env(**{PASSWORD_ENV: "secret"})
    cut = _mail_settings(tmp_path / "cut.toml", proxy.port, acct.user, "processes")
    argv = _mailsync("backup", "--settings", str(cut), "--out", str(out), "--no-progress")
    proc = _start(argv, env)
    reaped.append(proc)
    workers = _workers(proc, 2, spawned=False)
    _poll(lambda: root.exists() and _messages(root) >= 10, proc, "10 messages were archived")
    code, err, took = _kill_one_and_wait(proc, workers)

    assert code == 1, err
    _one_clean_line(err, f"account {acct.user}", f"pid {workers[0].pid}", "SIGKILL")
    assert took < END_WITHIN, took
    assert 10 <= _messages(root) < 60

    # the rerun, straight to the server: the rest, each message once
    direct = account_for(acct.server, acct.user, connections=2)
    settings = _mail_settings(tmp_path / "direct.toml", direct.port, acct.user, second)
    rerun = ["backup", "--settings", str(settings), "--out", str(out), "--no-progress"]
    again = _start(_mailsync(*rerun), env)
    reaped.append(again)
    _, err2 = again.communicate(timeout=60)
    assert again.returncode == 0, err2
    assert_archive_matches(root, acct.truth)
    assert len(archive_files(root)) == len(state_rows(root)) == 60
    deep = _start(
        _mailsync("verify", "--settings", str(settings), "--out", str(out), "--deep"), env
    )
    reaped.append(deep)
    report, err3 = deep.communicate(timeout=60)
    assert deep.returncode == 0, report + err3
    assert f"{acct.user}: 60 server messages checked (deep): OK" in report


# -- the pipe a worker sends on ----------
def _send_big(conn: Connection, size: int) -> None:
    sender = PipeSender(conn, "test-outbox")
    sender.put(b"x" * size)
    sender.close()


@pytest.mark.timeout(20)
def test_a_worker_killed_in_the_middle_of_a_message_is_seen_not_waited_for() -> None:
    # what a shared multiprocessing.Queue cannot do: its reader would wait for the rest of the
    # message for ever (and the dead writer would hold the write lock of every other worker)
    ctx = multiprocessing.get_context("forkserver")
    mine, theirs = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_send_big, args=(theirs, 8 << 20), name="big-sender")
    proc.start()
    theirs.close()
    try:
        assert mine.poll(10), "the message never started"  # 8 MB: the writer now waits
        assert proc.pid is not None
        os.kill(proc.pid, signal.SIGKILL)
        with pytest.raises((EOFError, OSError)):
            mine.recv()
        note = death_note("mail worker 3", proc)
        assert note == f"mail worker 3 (pid {proc.pid}) died: killed by SIGKILL"
    finally:
        mine.close()
        proc.join(5)


@pytest.mark.timeout(20)
def test_a_worker_that_exits_reads_as_its_exit_status() -> None:
    ctx = multiprocessing.get_context("forkserver")
    proc = ctx.Process(target=sys.exit, args=(3,), name="exits")
    proc.start()
    proc.join(10)
    assert (
        death_note("crawl worker 0", proc) == f"crawl worker 0 (pid {proc.pid}) died: exit status 3"
    )
