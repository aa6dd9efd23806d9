"""A mailsync backup in a given mode, run as a child process so a test can interrupt it.

``python -m tests.parity._mail_child OUT MODE HOST PORT USER`` (password from
``$MAILSYNC_TEST_PASSWORD``); what ``mailsync backup --mode MODE`` does once the CLI takes it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from drivers.dispatch import run_backup
from foundation.frozen import build
from mailsync.settings import AccountSettings, MailSettings


def main(argv: list[str]) -> int:
    out, mode, host, port, user = Path(argv[0]), argv[1], argv[2], int(argv[3]), argv[4]
    account = AccountSettings(
        name=user,
        host=host,
        port=port,
        security="plain",
        username=user,
        password_env="MAILSYNC_TEST_PASSWORD",
        connections=2,
        batch_messages=5,
    )
    settings = build(
        MailSettings, {"accounts": (account,), "mode": mode, "header_workers": 0, "timeout": 20.0}
    )
    try:
        (report,) = run_backup(settings, [account], out)
    except KeyboardInterrupt:
        return 130
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
