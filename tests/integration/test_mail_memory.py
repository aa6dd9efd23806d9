"""Memory slope of ``mailsync backup``: a bigger mailbox must not need more memory.

Two accounts on the test-bed Dovecot, all their small messages in one folder (so the big one is
listed and compared in chunks), each backed up by the real CLI in a process of its own while its
process tree's RSS is sampled; the peak of the big one may exceed the small one's only by a
generous ratio. Before the chunked listing, per-message lists of the folder (the listing, the
state rows, the plan) grew RSS with every message: calibrated on this machine (parser inline,
one process), 2,000 -> 30,000 messages took 60 -> 87 MB before (1.45x) and 60 -> 72 MB after
(1.19x); the bound 1.3x sits between. The quick sizes run in CI (~25 s); the slow flag
(FETCHLAB_SLOW=1) runs a tenfold pair in four modes (gevent is the threads driver patched).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from mailsync.layout import state_path
from testbed.corpus import generate_corpus
from testbed.dovecot import DovecotServer
from testbed.maildir_load import load_corpus_files

pytestmark = pytest.mark.needs_dovecot

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "secret"
SLOPE_BOUND = 1.3


def _load(server: DovecotServer, user: str, n: int) -> None:
    server.add_user(user, PASSWORD)
    corpus = generate_corpus(messages=n, seed=3, folders=("INBOX",), max_bytes=n * 1200)
    assert load_corpus_files(server, user, corpus) == n


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def _backup_peak(server: DovecotServer, user: str, out: Path, mode: str) -> int:
    """Back up ``user`` with the CLI; returns the peak RSS of its process tree."""
    settings = out.parent / f"{out.name}.toml"
    settings.write_text(
        f"""[mail]
out = "{out}"
header_workers = 0
[[mail.accounts]]
name = "m"
host = "{server.host}"
port = {server.port}
security = "plain"
username = "{user}"
password_env = "MEMORY_TEST_PASSWORD"
""",
        "utf-8",
    )
    argv = [sys.executable, "-m", "fetchlab.mail_cli", "backup", "--settings", str(settings)]
    argv += ["--no-progress", "--mode", mode]
    env = {**os.environ, "MEMORY_TEST_PASSWORD": PASSWORD, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    ps = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        with contextlib.suppress(psutil.Error):
            peak = max(peak, _tree_rss(ps))
        time.sleep(0.02)
    err = proc.stderr.read().decode("utf-8", "replace") if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    assert proc.returncode == 0, err[-2000:]
    return peak


def _archived(out: Path) -> int:
    db = sqlite3.connect(state_path(out / "m"))
    try:
        return int(db.execute("SELECT count(*) FROM messages").fetchone()[0])
    finally:
        db.close()


def _slope(dovecot: DovecotServer, tmp_path: Path, mode: str, small: int, big: int) -> None:
    peaks = {}
    for n in (small, big):
        user = f"mem{mode}{n}"
        _load(dovecot, user, n)
        out = tmp_path / f"out-{n}"
        peaks[n] = _backup_peak(dovecot, user, out, mode)
        assert _archived(out) == n
    ratio = peaks[big] / peaks[small]
    assert ratio <= SLOPE_BOUND, (
        f"{mode}: peak RSS {peaks[small] / 1e6:.0f} MB at {small} messages, "
        f"{peaks[big] / 1e6:.0f} MB at {big} ({ratio:.2f}x > {SLOPE_BOUND}x)"
    )


def test_backup_memory_stays_flat_as_the_folder_grows(
    dovecot: DovecotServer, tmp_path: Path
) -> None:
    _slope(dovecot, tmp_path, "asyncio", 2_000, 30_000)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["asyncio", "threads", "processes", "sequential"])
def test_backup_memory_slope_at_tenfold_size(
    mode: str, dovecot: DovecotServer, tmp_path: Path, slow_size: bool
) -> None:
    if not slow_size:
        pytest.skip("benchmark size: set FETCHLAB_SLOW=1")
    _slope(dovecot, tmp_path, mode, 5_000, 50_000)
