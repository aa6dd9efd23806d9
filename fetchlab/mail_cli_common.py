"""What the mailsync subcommand modules share: the ``--settings`` option and the mode check."""

from __future__ import annotations

from pathlib import Path

import click

from mailsync.settings import MailSettings

__all__ = ["check_mode", "settings_option"]


def settings_option(fn: click.decorators.FC) -> click.decorators.FC:
    return click.option(
        "--settings",
        "settings_file",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="TOML settings file (default: $FETCHLAB_SETTINGS).",
    )(fn)


def check_mode(settings: MailSettings) -> None:
    """Raise ModeError when the chosen mode cannot run here (gevent missing, ...). asyncio always
    can: the drivers of the other modes are imported only when one is chosen."""
    if settings.mode != "asyncio":
        from drivers.dispatch import check_mail_mode

        check_mail_mode(settings)
