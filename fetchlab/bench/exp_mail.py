"""The real mail job: ``mailsync backup`` of a whole test-bed account, in one mode.

``spec``: ``mode``, ``host``, ``port``, ``user``, ``password``, ``connections``, ``workdir`` (a
fresh archive is made under it and removed afterwards). The gevent cell runs in a child already
patched by :mod:`drivers.gevent_entry`, so it calls the blocking driver with greenlets directly.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from fetchlab.bench.grid import set_aside

__all__ = ["prepare", "run"]

PASSWORD_ENV = "FETCHLAB_BENCH_IMAP_PASSWORD"


def prepare(spec: dict[str, Any]) -> None:

    if spec["mode"] in ("asyncio", "processes"):
        import drivers.mail_asyncio
    import drivers.mail_blocking  # noqa: F401


def run(spec: dict[str, Any]) -> dict[str, Any]:
    from mailsync.settings import AccountSettings, MailSettings

    os.environ[PASSWORD_ENV] = spec["password"]
    account = AccountSettings(
        name="bench",
        host=spec["host"],
        port=int(spec["port"]),
        security="plain",
        username=spec["user"],
        password_env=PASSWORD_ENV,
        connections=int(spec["concurrency"]),
    )
    mode = spec["mode"]
    settings = MailSettings(accounts=(account,), mode=mode, header_workers=0, fsync=False)
    out = Path(spec["workdir"]) / f"{mode}-{uuid.uuid4().hex[:8]}"
    try:
        if mode == "gevent":
            from drivers.mail_blocking import backup_blocking

            (report,) = backup_blocking(settings, [account], out, kind="gevent")
        else:
            from drivers.dispatch import run_backup

            (report,) = run_backup(settings, [account], out)
    finally:
        set_aside(out, Path(spec["workdir"]))
    if report.errors:
        raise RuntimeError("; ".join(report.errors)[:400])
    return {
        "items": report.new_messages,
        "bytes": report.new_bytes,
        "errors": 0,
        "round_trips": report.round_trips,
    }
