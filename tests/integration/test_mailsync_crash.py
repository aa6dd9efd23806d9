"""Kill ``mailsync backup`` (SIGKILL, SIGINT) at random instants, rerun: a perfect archive."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mailsync.layout import index_path
from tests.fixtures.imap import FreshImapAccount
from tests.fixtures.proxy import ProxyFactory
from tests.integration._mailsync_helpers import (
    PASSWORD_ENV,
    archive_files,
    assert_archive_matches,
    state_rows,
)

pytestmark = pytest.mark.needs_dovecot

ROOT = Path(__file__).resolve().parents[2]


def _settings(tmp_path: Path, port: int, user: str) -> Path:
    path = tmp_path / "mail.toml"
    path.write_text(
        f"""[mail]
out = "{tmp_path / "archive"}"
header_workers = 0
index = true
timeout = 20.0
[[mail.accounts]]
name = "crash"
host = "127.0.0.1"
port = {port}
security = "plain"
username = "{user}"
password_env = "{PASSWORD_ENV}"
connections = 2
batch_messages = 3
""",
        encoding="utf-8",
    )
    return path


def _count(root: Path) -> int:
    """Message files in new/ and cur/ right now (a run in progress may hold tmp/ files)."""
    total = 0
    for dirpath, _, filenames in os.walk(root):
        if os.path.basename(dirpath) in ("new", "cur"):
            total += len(filenames)
    return total


def _backup(settings: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, PASSWORD_ENV: "secret"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fetchlab.mail_cli",
            "backup",
            "--settings",
            str(settings),
            "--no-progress",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigkill_at_random_points_then_rerun(
    seed: int,
    fresh_imap_account: FreshImapAccount,
    delay_proxy: ProxyFactory,
    tmp_path: Path,
) -> None:
    acct = fresh_imap_account(
        messages=45, seed=seed, folders=["INBOX", "Archive", "Sent"], max_bytes=3_000_000
    )
    # 5 ms each way stretches the run so the kills land inside it
    proxy = delay_proxy((acct.server.host, acct.server.port), delay_ms=5)
    settings = _settings(tmp_path, proxy.port, acct.user)
    rng = random.Random(seed)
    root = tmp_path / "archive" / "crash"
    killed_mid_run = 0
    for _ in range(3):
        # kill at a random point of progress (not of time): after 1..n-1 more files landed
        have = _count(root)
        target = have + rng.randint(1, max(1, (len(acct.truth) - have) // 2))
        proc = _backup(settings)
        deadline = time.monotonic() + 60
        while proc.poll() is None and _count(root) < target and time.monotonic() < deadline:
            time.sleep(rng.uniform(0.001, 0.01))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed_mid_run += 1
        proc.communicate(timeout=60)
    final = _backup(settings)
    _, err = final.communicate(timeout=120)
    assert final.returncode == 0, err.decode()
    assert b"Traceback" not in err
    assert_archive_matches(root, acct.truth)
    assert len(archive_files(root)) == len(acct.truth)
    assert len(state_rows(root)) == len(acct.truth)
    assert killed_mid_run >= 1
    # the search index too: every message once (the last run filled what the kills left out)
    db = sqlite3.connect(index_path(root))
    try:
        keys = db.execute("SELECT folder, uidvalidity, uid FROM docs").fetchall()
        (fts,) = db.execute("SELECT count(*) FROM fts").fetchone()
    finally:
        db.close()
    assert sorted(keys) == sorted((t.folder, t.uidvalidity, t.uid) for t in acct.truth)
    assert fts == len(keys)


def test_sigint_stops_cleanly_and_resumes(
    fresh_imap_account: FreshImapAccount, delay_proxy: ProxyFactory, tmp_path: Path
) -> None:
    acct = fresh_imap_account(messages=30, seed=9, folders=["INBOX", "Other"])
    proxy = delay_proxy((acct.server.host, acct.server.port), delay_ms=10)
    settings = _settings(tmp_path, proxy.port, acct.user)
    proc = _backup(settings)
    time.sleep(1.0)
    interrupted = proc.poll() is None
    if interrupted:
        proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    if interrupted:
        assert proc.returncode == 130, err.decode()
        assert b"interrupted" in err and b"Traceback" not in err
    final = _backup(settings)
    _, err = final.communicate(timeout=120)
    assert final.returncode == 0, err.decode()
    assert_archive_matches(tmp_path / "archive" / "crash", acct.truth)
