"""``mailsync backup`` in every mode, as a real command: no process outlives it (even after
SIGKILL), SIGINT and SIGTERM stop it within 2 s with exit 130 and the archive consistent (a
rerun finishes it byte-exact), and relative paths -- the settings' ``out`` and
``password_command`` -- mean the user's working directory (the runs start in a temporary cwd)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from foundation.mode import Mode
from tests.fixtures.imap import FreshImapAccount, ImapAccount
from tests.fixtures.proxy import ProxyFactory
from tests.integration._mailsync_helpers import archive_files, assert_archive_matches, state_rows
from tests.parity._lifecycle import (
    STOP_WITHIN,
    Runs,
    assert_all_gone,
    ctrl_c_as_workers_start,
    env,
    sigkill_main,
    stop_with,
    tree,
    wait_for,
)

MESSAGES = 60


def _setup(cwd: Path, acct: ImapAccount, port: int, mode: Mode, *, header_workers: int = 0) -> None:
    """A settings file with relative paths only, and the password script beside it."""
    script = cwd / "pw.sh"
    script.write_text(f"#!/bin/sh\necho {acct.password}\n", "utf-8")
    script.chmod(0o700)
    (cwd / "mail.toml").write_text(
        f'[mail]\nout = "archive"\nmode = "{mode.value}"\nheader_workers = {header_workers}\n'
        "timeout = 20.0\n\n[[mail.accounts]]\n"
        f'name = "{acct.user}"\nhost = "127.0.0.1"\nport = {port}\nsecurity = "plain"\n'
        f'username = "{acct.user}"\npassword_command = "./pw.sh"\n'
        "connections = 2\nbatch_messages = 2\n",
        "utf-8",
    )


ARGV = ["-m", "fetchlab.mail_cli", "backup", "--settings", "mail.toml", "--no-progress"]


def _messages(root: Path) -> int:
    if not root.exists():
        return 0
    return sum(1 for sub in ("new", "cur") for p in root.rglob(f"{sub}/*") if p.is_file())


@pytest.mark.needs_dovecot
@pytest.mark.timeout(90)
def test_sigkill_of_mailsync_leaves_no_process(
    mode: Mode,
    fresh_imap_account: FreshImapAccount,
    delay_proxy: ProxyFactory,
    tmp_path: Path,
    runs: Runs,
) -> None:
    acct = fresh_imap_account(messages=MESSAGES, seed=5, folders=["INBOX", "Work", "Old"])
    proxy = delay_proxy((acct.server.host, acct.server.port), delay_ms=50)
    _setup(tmp_path, acct, proxy.port, mode)
    proc = runs.start(ARGV, tmp_path, env())
    wanted = {Mode.PROCESSES: 3, Mode.GEVENT: 1}.get(mode, 0)
    wait_for(lambda: len(tree(proc.pid)) >= wanted, proc, f"{wanted} descendants started")
    root = tmp_path / "archive" / acct.user
    wait_for(lambda: _messages(root) >= 5, proc, "5 messages were archived")
    before = sigkill_main(proc, runs)
    assert len(before) >= wanted
    assert_all_gone(before)


@pytest.mark.needs_dovecot
@pytest.mark.timeout(120)
def test_sigint_and_sigterm_stop_mailsync_then_a_rerun_finishes(
    mode: Mode,
    fresh_imap_account: FreshImapAccount,
    delay_proxy: ProxyFactory,
    tmp_path: Path,
    runs: Runs,
) -> None:
    acct = fresh_imap_account(messages=MESSAGES, seed=6, folders=["INBOX", "Work", "Old"])
    # 50 ms each way, 2 messages a batch: a run is cut in the middle
    proxy = delay_proxy((acct.server.host, acct.server.port), delay_ms=50)
    _setup(tmp_path, acct, proxy.port, mode)
    root = tmp_path / "archive" / acct.user
    took: dict[str, float] = {}
    # Ctrl-C in a terminal reaches the whole process group; ``kill`` only the command
    for sig, group in ((signal.SIGINT, True), (signal.SIGTERM, False)):
        at = _messages(root)
        proc = runs.start(ARGV, tmp_path, env())
        wait_for(lambda at=at: _messages(root) >= at + 3, proc, "3 more messages archived")  # type: ignore[misc]
        code, err, took[sig.name] = stop_with(proc, runs, sig, group=group)
        assert code == 130, err
        assert "Traceback" not in err, err
        assert took[sig.name] < STOP_WITHIN, took
    print(f"stop times ({mode.value}): {took}")  # shown with -s: the figures in the docs
    assert _messages(root) < MESSAGES
    _setup(tmp_path, acct, acct.server.port, mode)  # the rest straight from the server
    again = runs.start(ARGV, tmp_path, env())
    _, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    assert_archive_matches(root, acct.truth)
    assert len(archive_files(root)) == len(state_rows(root)) == MESSAGES


@pytest.mark.needs_dovecot
@pytest.mark.timeout(90)
def test_ctrl_c_while_the_workers_start_is_a_stop(
    mode: Mode,
    fresh_imap_account: FreshImapAccount,
    delay_proxy: ProxyFactory,
    tmp_path: Path,
    runs: Runs,
) -> None:
    """Ctrl-C the moment the worker processes (or the gevent child) exist,
    while they still import: a stop (exit 130, no traceback, no worker reported dead), and a
    rerun finishes. A child got the group's SIGINT before it could ignore it and died of
    KeyboardInterrupt."""
    acct = fresh_imap_account(messages=MESSAGES, seed=7, folders=["INBOX", "Work"])
    proxy = delay_proxy((acct.server.host, acct.server.port), delay_ms=50)
    _setup(tmp_path, acct, proxy.port, mode)
    proc = runs.start(ARGV, tmp_path, env())
    # (a backup this small parses on the loop: the asyncio mode's pool is the crawler test's)
    wanted = {Mode.PROCESSES: 3, Mode.GEVENT: 1}.get(mode, 0)
    ctrl_c_as_workers_start(proc, runs, wanted, (tmp_path / "archive").exists)
    _setup(tmp_path, acct, acct.server.port, mode)
    again = runs.start(ARGV, tmp_path, env())
    _, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    assert_archive_matches(tmp_path / "archive" / acct.user, acct.truth)


@pytest.mark.timeout(60)
def test_a_parse_pool_ends_with_its_owner(tmp_path: Path, runs: Runs) -> None:
    """The header parser's pool (and the crawler's) after a SIGKILL of the process owning it:
    its (spawned) workers and the resource tracker all end."""
    script = (
        "import asyncio, sys\n"
        "from foundation.offload import BatchOffload\n"
        "from mailsync.core.headers import parse_headers\n"
        "async def main() -> None:\n"
        "    pool = BatchOffload(parse_headers, workers=2)\n"
        "    await pool.start()\n"
        "    await pool.submit(b'Subject: x\\r\\n\\r\\n')\n"
        "    print('ready', flush=True)\n"
        "    await asyncio.sleep(60)\n"
        "asyncio.run(main())\n"
    )
    proc = runs.start(["-c", script], tmp_path, env())
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    before = sigkill_main(proc, runs)
    assert len(before) >= 3, before  # resource tracker, two workers
    assert_all_gone(before)
