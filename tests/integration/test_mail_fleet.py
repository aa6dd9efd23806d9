"""The mail fleet on real processes: ``mailsync enqueue``, several ``mailsync worker`` OS
processes on the test-bed Dovecot and Redis, ``mailsync fleet-status``."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from foundation.mode import Mode
from testbed.redis import RedisServer
from tests.fixtures.imap import FreshImapAccount
from tests.fixtures.proxy import ProxyFactory
from tests.integration._fleet_helpers import (
    FleetAccount,
    fleet_name,
    mailsync,
    redis_client,
    start_worker,
    status,
    wait_workers,
    write_settings,
)
from tests.integration._mailsync_helpers import archive_files, assert_archive_matches

pytestmark = [pytest.mark.needs_dovecot, pytest.mark.needs_redis]

FOLDERS = ["INBOX", "Archive", "Sent"]


def _accounts(
    fresh: FreshImapAccount, n: int, messages: int, port: int | None = None
) -> list[FleetAccount]:
    out = []
    for i in range(n):
        acct = fresh(messages=messages, seed=100 + i, folders=FOLDERS, max_bytes=400_000)
        out.append(FleetAccount(f"acct{i:02d}", port or acct.server.port, acct))
    return out


def _messages_in(root: Path) -> int:
    """Message files in new/ and cur/ under ``root`` (a backup may be writing tmp/ meanwhile)."""
    return sum(1 for sub in ("new", "cur") for p in root.rglob(f"{sub}/*") if p.is_file())


def _drained(url: str, name: str) -> None:
    client = redis_client(url)
    stream = f"mailsync:fleet:{name}:jobs"
    assert client.xlen(stream) == 0
    assert client.xpending(stream, "workers")["pending"] == 0


def test_two_workers_back_up_every_account_once(
    mode: Mode,
    fresh_imap_account: FreshImapAccount,
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    accounts = _accounts(fresh_imap_account, 4, 8)
    name = fleet_name("share")
    out = tmp_path / "archive"
    settings = write_settings(
        tmp_path / "fleet.toml",
        out,
        accounts,
        queue=redis_server.url,
        name=name,
        max_connections_per_server=3,  # the slots run in every mode (counted: the cap test)
    )
    queued = mailsync("enqueue", "--settings", str(settings))
    assert queued.returncode == 0, queued.stderr
    assert "queued 4 account(s)" in queued.stdout
    again = mailsync("enqueue", "--settings", str(settings), "--account", "acct00")
    assert "already queued or running: acct00" in again.stdout
    logs = [tmp_path / f"worker{i}.log" for i in range(2)]
    workers = [start_worker(settings, mode.value, log) for log in logs]
    codes = wait_workers(workers, timeout=90)
    text = "".join(log.read_text("utf-8") for log in logs)
    assert codes == [0, 0], text
    assert "Traceback" not in text
    for a in accounts:
        root = out / a.name
        assert_archive_matches(root, a.account.truth)
        assert len(archive_files(root)) == len(a.account.truth)
    code, st = status(settings)
    assert code == 0
    assert st["counts"] == {"queued": 0, "leased": 0, "done": 4, "failed": 0}
    assert all(s["attempts"] == 1 for s in st["accounts"])
    assert sum(s["messages"] for s in st["accounts"]) == sum(len(a.account.truth) for a in accounts)
    _drained(redis_server.url, name)
    if mode != Mode.ASYNCIO:
        return
    # a second round finds nothing new: every account done again, no message added
    mailsync("enqueue", "--settings", str(settings))
    codes = wait_workers([start_worker(settings, mode.value, logs[0])], timeout=60)
    assert codes == [0]
    code, st = status(settings)
    assert st["counts"]["done"] == 4 and all(s["messages"] == 0 for s in st["accounts"])


def test_wrong_password_fails_after_bounded_attempts(
    fresh_imap_account: FreshImapAccount, redis_server: RedisServer, tmp_path: Path
) -> None:
    good, bad = _accounts(fresh_imap_account, 2, 5)
    bad = FleetAccount("badpass", bad.port, bad.account, password_env="FLEET_WRONG_PASSWORD")
    name = fleet_name("fail")
    settings = write_settings(
        tmp_path / "fleet.toml",
        tmp_path / "archive",
        [good, bad],
        queue=redis_server.url,
        name=name,
        max_attempts=2,
    )
    assert mailsync("enqueue", "--settings", str(settings)).returncode == 0
    log = tmp_path / "worker.log"
    proc = start_worker(settings, "asyncio", log, env={"FLEET_WRONG_PASSWORD": "nope"})
    assert wait_workers([proc], timeout=60) == [0], log.read_text("utf-8")
    code, st = status(settings)
    assert code == 1  # an account failed
    by_name = {s["account"]: s for s in st["accounts"]}
    assert by_name["acct00"]["state"] == "done"
    failed = by_name["badpass"]
    assert failed["state"] == "failed"
    assert failed["attempts"] == 2
    assert "auth" in failed["error"].lower() or "login" in failed["error"].lower(), failed
    _drained(redis_server.url, name)
    table = mailsync("fleet-status", "--settings", str(settings))
    assert table.returncode == 1
    assert "badpass" in table.stdout and "failed" in table.stdout
    assert_archive_matches(tmp_path / "archive" / "acct00", good.account.truth)


def test_connection_cap_holds_across_workers(
    fresh_imap_account: FreshImapAccount,
    delay_proxy: ProxyFactory,
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    # every account through one proxy: one "server" whose client connections are counted
    first = fresh_imap_account(messages=0)
    proxy = delay_proxy((first.server.host, first.server.port), delay_ms=2)
    accounts = _accounts(fresh_imap_account, 6, 15, port=proxy.port)
    name = fleet_name("cap")
    settings = write_settings(
        tmp_path / "fleet.toml",
        tmp_path / "archive",
        accounts,
        queue=redis_server.url,
        name=name,
        connections=3,
        batch_messages=3,
        max_connections_per_server=4,
    )
    assert mailsync("enqueue", "--settings", str(settings)).returncode == 0
    logs = [tmp_path / f"worker{i}.log" for i in range(3)]
    workers = [start_worker(settings, "asyncio", log) for log in logs]
    codes = wait_workers(workers, timeout=90)
    text = "".join(log.read_text("utf-8") for log in logs)
    assert codes == [0, 0, 0], text
    stats = proxy.stats
    # 3 workers x 3 connections would be 9 without the cap
    assert stats.peak_clients <= 4, stats
    assert stats.peak_clients >= 2, stats  # the cap was really shared, not one at a time
    for a in accounts:
        assert_archive_matches(tmp_path / "archive" / a.name, a.account.truth)
    _drained(redis_server.url, name)
    assert not redis_client(redis_server.url).zcard(
        f"mailsync:fleet:{name}:conn:127.0.0.1:{proxy.port}"
    )


def test_sigterm_gives_the_account_back_at_once(
    fresh_imap_account: FreshImapAccount,
    delay_proxy: ProxyFactory,
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    first = fresh_imap_account(messages=0)
    proxy = delay_proxy((first.server.host, first.server.port), delay_ms=30)
    accounts = _accounts(fresh_imap_account, 2, 40, port=proxy.port)
    name = fleet_name("term")
    settings = write_settings(
        tmp_path / "fleet.toml",
        tmp_path / "archive",
        accounts,
        queue=redis_server.url,
        name=name,
        connections=1,
        batch_messages=2,
        lease=600.0,  # a job left to its lease would wait 10 minutes: give-back must not
    )
    assert mailsync("enqueue", "--settings", str(settings)).returncode == 0
    log = tmp_path / "worker.log"
    proc = start_worker(settings, "asyncio", log)
    client = redis_client(redis_server.url)
    stream = f"mailsync:fleet:{name}:jobs"
    deadline = time.monotonic() + 30
    # inside the first account's backup: its first message is in, the rest not (a fixed sleep
    # raced a backup that had become fast enough to finish first)
    while not _messages_in(tmp_path / "archive") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert client.xpending(stream, "workers")["pending"] == 1
    proc.send_signal(signal.SIGTERM)
    assert wait_workers([proc], timeout=30) == [130], log.read_text("utf-8")
    _, st = status(settings)
    assert st["counts"]["leased"] == 0 and st["counts"]["queued"] >= 1, st
    given_back = [s for s in st["accounts"] if "stopped" in s["error"]]
    assert len(given_back) == 1 and given_back[0]["attempts"] == 0, st
    assert client.xpending(stream, "workers")["pending"] == 0
    assert wait_workers([start_worker(settings, "asyncio", log)], timeout=60) == [0]
    for a in accounts:
        assert_archive_matches(tmp_path / "archive" / a.name, a.account.truth)
    assert status(settings)[1]["counts"]["done"] == 2


def test_follow_keeps_the_worker_for_the_next_round(
    fresh_imap_account: FreshImapAccount, redis_server: RedisServer, tmp_path: Path
) -> None:
    accounts = _accounts(fresh_imap_account, 1, 6)
    name = fleet_name("follow")
    settings = write_settings(
        tmp_path / "fleet.toml", tmp_path / "archive", accounts, queue=redis_server.url, name=name
    )
    log = tmp_path / "worker.log"
    # started before anything is queued: --follow waits instead of exiting
    proc = start_worker(settings, "asyncio", log, extra=["--follow"])

    def wait_done(rounds: int) -> None:
        deadline = time.monotonic() + 40
        while log.read_text("utf-8").count("acct00: done") < rounds:
            assert proc.poll() is None, log.read_text("utf-8")
            assert time.monotonic() < deadline, log.read_text("utf-8")
            time.sleep(0.1)

    time.sleep(1.0)
    assert proc.poll() is None, log.read_text("utf-8")
    assert mailsync("enqueue", "--settings", str(settings)).returncode == 0
    wait_done(1)
    assert mailsync("enqueue", "--settings", str(settings)).returncode == 0
    wait_done(2)
    assert proc.poll() is None  # still waiting for the next round
    proc.send_signal(signal.SIGTERM)
    assert wait_workers([proc], timeout=30) == [130]
    assert_archive_matches(tmp_path / "archive" / "acct00", accounts[0].account.truth)
    _, st = status(settings)
    assert st["counts"]["done"] == 1 and st["accounts"][0]["messages"] == 0  # round 2: nothing new
