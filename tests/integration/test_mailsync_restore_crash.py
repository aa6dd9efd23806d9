"""Kill ``mailsync restore`` (SIGKILL) at random instants, rerun: the target account ends with
every archived message exactly once -- no duplicate from a batch the server stored just before
the kill, nothing missing."""

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

from mailsync.restore_state import restore_db_path
from tests.fixtures.imap import FreshImapAccount
from tests.fixtures.proxy import ProxyFactory
from tests.integration._mailsync_helpers import PASSWORD_ENV, account_for, mail_settings
from tests.integration._restore_helpers import archive_multiset, backup

pytestmark = pytest.mark.needs_dovecot

ROOT = Path(__file__).resolve().parents[2]


def _settings(tmp_path: Path, src: str, dst: str, port: int, mode: str) -> Path:
    path = tmp_path / "mail.toml"
    accounts = "".join(
        f"""
[[mail.accounts]]
name = "{name}"
host = "127.0.0.1"
port = {port}
security = "plain"
username = "{user}"
password_env = "{PASSWORD_ENV}"
connections = 2
batch_messages = 3
"""
        for name, user in (("src", src), ("dst", dst))
    )
    path.write_text(
        f'[mail]\nout = "{tmp_path / "archive"}"\nmode = "{mode}"\nheader_workers = 0\n'
        f"timeout = 20.0\n{accounts}",
        encoding="utf-8",
    )
    return path


def _recorded(root: Path) -> int:
    """Rows of the restore table (pending or done) right now; 0 before it exists."""
    path = restore_db_path(root)
    if not path.exists():
        return 0
    db = sqlite3.connect(path, timeout=10)
    try:
        return int(db.execute("SELECT COUNT(*) FROM restored").fetchone()[0])
    except sqlite3.OperationalError:
        return 0  # the table is being created
    finally:
        db.close()


def _restore(settings: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fetchlab.mail_cli",
            "restore",
            "--settings",
            str(settings),
            "--from",
            "src",
            "--to",
            "dst",
        ],
        cwd=ROOT,
        env={**os.environ, PASSWORD_ENV: "secret"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.mark.parametrize(("seed", "mode"), [(1, "asyncio"), (2, "threads")])
def test_sigkill_during_restore_then_rerun(
    seed: int,
    mode: str,
    fresh_imap_account: FreshImapAccount,
    delay_proxy: ProxyFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "secret")
    src = fresh_imap_account(
        messages=60, seed=40 + seed, folders=["INBOX", "Archive", "Sent"], max_bytes=2_000_000
    )
    dst = fresh_imap_account()
    source = account_for(src.server, src.user, name="src")
    archive = tmp_path / "archive"
    backup(mail_settings(source), source, archive)
    want = archive_multiset(archive / "src")
    # 5 ms each way stretches the run so the kills land inside it
    proxy = delay_proxy((src.server.host, src.server.port), delay_ms=5)
    settings = _settings(tmp_path, src.user, dst.user, proxy.port, mode)
    rng = random.Random(seed)
    root = archive / "src"
    killed_mid_run = 0
    for _ in range(3):
        # kill at a random point of progress, then a random instant later (before the pending
        # record, during an APPEND, between the server's answer and the done record...)
        have = _recorded(root)
        target = have + rng.randint(1, max(1, (len(src.truth) - have) // 2))
        proc = _restore(settings)
        deadline = time.monotonic() + 60
        while proc.poll() is None and _recorded(root) < target and time.monotonic() < deadline:
            time.sleep(rng.uniform(0.001, 0.01))
        time.sleep(rng.uniform(0, 0.02))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed_mid_run += 1
        proc.communicate(timeout=60)
    final = _restore(settings)
    out, err = final.communicate(timeout=120)
    assert final.returncode == 0, (out + err).decode()
    assert b"Traceback" not in err
    assert killed_mid_run >= 1

    target_account = account_for(dst.server, dst.user, name="dst")
    backup(mail_settings(target_account), target_account, archive)
    assert archive_multiset(archive / "dst") == want  # no duplicate, nothing missing
    db = sqlite3.connect(restore_db_path(root))
    states = dict(db.execute("SELECT state, COUNT(*) FROM restored GROUP BY state").fetchall())
    db.close()
    assert states == {"done": len(src.truth)}
