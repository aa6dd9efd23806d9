"""``mailsync backup --mode gevent``: the blocking driver with greenlets, in a process of its own.

The parent writes the job (settings, chosen accounts, output folder) to a file and starts ``python
-m drivers.gevent_entry drivers.mail_gevent:main JOB.json``; the entry monkey-patches first, so the
blocking driver's threads, locks and imaplib sockets become greenlets and gevent sockets. Passwords
are never written to the job: the child reads them the way the parent would (its environment, or
``password_command``). The reports come back as JSON."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from drivers.gevent_entry import start_child
from foundation.errors import ModeError
from foundation.limits import check_gevent_installed
from mailsync.report import AccountReport
from mailsync.settings import AccountSettings, MailSettings

__all__ = ["main", "run_gevent_backup"]


def main(argv: list[str]) -> int:
    """Child entry (already monkey-patched by :mod:`drivers.gevent_entry`)."""
    import gevent

    from drivers.mail_blocking import backup_blocking

    # Ctrl-C: leave at once. gevent would print a KeyboardInterrupt raised in its hub and carry
    # on; the archive needs no clean-up (files are durable before their state rows, and the next
    # run reconciles any leftover), exactly as after a SIGKILL.
    for sig in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(sig, os._exit, 130)
    job = json.loads(Path(argv[0]).read_text("utf-8"))
    settings = MailSettings.model_validate(job["settings"])
    chosen = [a for a in settings.accounts if a.name in set(job["accounts"])]
    reports = backup_blocking(settings, chosen, Path(job["out"]), kind="gevent")
    Path(job["result"]).write_text(json.dumps([asdict(r) for r in reports]), "utf-8")
    return 0


def run_gevent_backup(
    settings: MailSettings, accounts: list[AccountSettings], out: Path
) -> list[AccountReport]:
    check_gevent_installed()
    with tempfile.TemporaryDirectory(prefix="fetchlab-gevent-mail-") as tmp:
        job_path, result = Path(tmp) / "job.json", Path(tmp) / "result.json"
        job: dict[str, Any] = {
            "settings": settings.model_dump(mode="json"),
            "accounts": [a.name for a in accounts],
            "out": str(out),
            "result": str(result),
        }
        job_path.write_text(json.dumps(job), "utf-8")
        proc = start_child("drivers.mail_gevent:main", str(job_path))
        try:
            proc.wait()
        except KeyboardInterrupt:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
            proc.wait()
            raise
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        try:
            data = json.loads(result.read_text("utf-8"))
        except (OSError, ValueError):
            raise ModeError(
                f"the gevent backup process failed (exit status {proc.returncode})"
            ) from None
    return [AccountReport(**row) for row in data]
