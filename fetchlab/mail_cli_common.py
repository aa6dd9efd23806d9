"""What the mailsync subcommand modules share: the ``--settings`` option and the mode check."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from fetchlab.settings import load_settings
from foundation.errors import SettingsError
from mailsync.settings import MailSettings

__all__ = ["check_mode", "load_mail", "settings_option"]


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


def load_mail(settings_file: Path | None, overrides: dict[str, Any]) -> MailSettings:
    """The ``[mail]`` settings, the command's flags (``{"mail": {...}}``) over the file; each
    problem printed and exit 2 when they are wrong."""
    try:
        return load_settings(settings_file, overrides, tool="mail").mail
    except SettingsError as exc:
        for problem in exc.problems:
            click.echo(f"mailsync: {problem}", err=True)
        sys.exit(2)
