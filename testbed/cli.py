"""``testbed``: start the local servers and generate the data used by the demo, tests and benches.

Each subcommand lives in its own module, imported only when used.
"""

from __future__ import annotations

import importlib

import click

__all__ = ["main"]

# subcommand name -> module that defines a click command named ``cli``
_COMMANDS = {
    "site": "testbed.site_cli",
    "faults": "testbed.faults",
    "imap": "testbed.imap_cli",
    "proxy": "testbed.proxy",
    "redis": "testbed.redis",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = _COMMANDS.get(cmd_name)
        if module is None:
            return None
        command = importlib.import_module(module).cli
        assert isinstance(command, click.Command)
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Real local servers (nginx, Dovecot, Redis, fault server, delay proxy) and generated data."""
