"""Helpers for the mail fleet tests: a settings file for N accounts, worker OS processes
(``python -m fetchlab.mail_cli worker``), the fleet's status as JSON, Redis looks."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from tests.fixtures.imap import ImapAccount
from tests.integration._mailsync_helpers import PASSWORD_ENV

__all__ = [
    "ROOT",
    "FleetAccount",
    "fleet_name",
    "mailsync",
    "redis_client",
    "start_worker",
    "status",
    "wait_workers",
    "write_settings",
]

ROOT = Path(__file__).resolve().parents[2]
_names = itertools.count(1)


@dataclass(frozen=True)
class FleetAccount:
    """An account of the settings file: its name, the port to reach it on, its server user."""

    name: str
    port: int
    account: ImapAccount
    password_env: str = PASSWORD_ENV


def fleet_name(tag: str) -> str:
    """A fleet name no other test of the session uses (they share one redis-server)."""
    return f"{tag}-{os.getpid()}-{next(_names)}"


def write_settings(
    path: Path,
    out: Path,
    accounts: Sequence[FleetAccount],
    *,
    queue: str,
    name: str,
    connections: int = 2,
    batch_messages: int = 200,
    host: str = "127.0.0.1",
    index: bool = False,
    **fleet: Any,
) -> Path:
    fleet_lines = "".join(f"{k} = {json.dumps(v)}\n" for k, v in fleet.items())
    text = f"""[mail]
out = "{out}"
header_workers = 0
index = {json.dumps(index)}
timeout = 20.0
retries = 2
retry_delay = 0.05
[mail.fleet]
queue = "{queue}"
name = "{name}"
{fleet_lines}"""
    for a in accounts:
        text += f"""[[mail.accounts]]
name = "{a.name}"
host = "{host}"
port = {a.port}
security = "plain"
allow_plain = true
username = "{a.account.user}"
password_env = "{a.password_env}"
connections = {connections}
batch_messages = {batch_messages}
"""
    path.write_text(text, "utf-8")
    return path


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, PASSWORD_ENV: "secret", "PYTHONPATH": str(ROOT), **(extra or {})}


def mailsync(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``mailsync ARGS`` to its end (text output)."""
    return subprocess.run(
        [sys.executable, "-m", "fetchlab.mail_cli", *args],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_worker(
    settings: Path,
    mode: str,
    log: Path,
    env: dict[str, str] | None = None,
    wrap: Callable[[list[str]], list[str]] | None = None,
    extra: Sequence[str] = (),
) -> subprocess.Popen[bytes]:
    """A ``mailsync worker`` OS process; its stderr goes to ``log`` (appended). ``wrap``: the
    command line run instead (e.g. inside a network namespace)."""
    argv = [sys.executable, "-m", "fetchlab.mail_cli", "worker"]
    argv += ["--settings", str(settings), "--mode", mode, *extra]
    with log.open("ab") as sink:
        return subprocess.Popen(
            wrap(argv) if wrap is not None else argv,
            cwd=ROOT,
            env=_env(env),
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )


def wait_workers(workers: Sequence[subprocess.Popen[bytes]], timeout: float) -> list[int]:
    """Wait for every worker to exit (killing the rest after ``timeout``); their exit codes."""
    deadline = time.monotonic() + timeout
    codes = []
    for proc in workers:
        try:
            codes.append(proc.wait(timeout=max(0.1, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            codes.append(-999)
    return codes


def status(settings: Path) -> tuple[int, dict[str, Any]]:
    """``mailsync fleet-status --json``: exit code and the parsed object."""
    done = mailsync("fleet-status", "--settings", str(settings), "--json")
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout)


def redis_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True)
