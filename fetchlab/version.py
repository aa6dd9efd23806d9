"""The installed version, looked up only when asked: ``importlib.metadata`` costs ~1 MB of RSS
(21 modules), which every crawl and backup carried for a ``--version`` it was not given."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

__all__ = ["installed_version", "version_flag"]

F = TypeVar("F", bound=Callable[..., Any])


def installed_version() -> str | None:
    """The version of the installed ``fetchlab`` distribution; None from a bare checkout."""
    from importlib import metadata

    try:
        return metadata.version("fetchlab")
    except metadata.PackageNotFoundError:
        return None


def version_flag(prog: str) -> Callable[[F], F]:
    """``--version``: prints ``PROG VERSION`` and exits (click's own option reads the version
    when the command is defined, that is at every start)."""

    def show(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if value and not ctx.resilient_parsing:
            found = installed_version()
            click.echo(f"{prog} {found or 'unknown (fetchlab is not installed)'}")
            ctx.exit()

    return click.option(
        "--version",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=show,
        help="Show the version and exit.",
    )
