"""Where an account's password (or OAuth2 token) comes from: an environment variable or a command.

The secret is never stored in settings, state or logs: :class:`Secret` hides its value from
``repr``/``str``, and errors name the source (variable or command) but never its output.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field

from foundation.errors import ImapAuthError
from mailsync.settings import AccountSettings

__all__ = ["Secret", "get_oauth_token", "get_password", "get_secret"]

_COMMAND_TIMEOUT = 30.0


@dataclass(frozen=True)
class Secret:
    """A password or token whose value never shows up in a repr, a log line or a traceback."""

    value: str = field(repr=False)

    def __str__(self) -> str:
        return "Secret(****)"


def _run(command: str, what: str, account: str) -> str:
    # through the shell, like mbsync's PassCmd, so `pass show x | head -1` works
    try:
        done = subprocess.run(
            ["/bin/sh", "-c", command],
            capture_output=True,
            timeout=_COMMAND_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ImapAuthError(
            f"account {account}: {what} failed to run: {type(exc).__name__}"
        ) from None
    if done.returncode != 0:
        raise ImapAuthError(
            f"account {account}: {what} exited with status {done.returncode}"
            + (f" ({done.stderr.decode('utf-8', 'replace').strip()[:200]})" if done.stderr else "")
        )
    lines = done.stdout.decode("utf-8", "replace").splitlines()
    if not lines or not lines[0]:
        raise ImapAuthError(f"account {account}: {what} printed nothing")
    return lines[0]


def get_password(account: AccountSettings) -> Secret:
    """The password from ``password_env`` (first) or ``password_command``."""
    if account.password_env:
        value = os.environ.get(account.password_env)
        if value is None:
            raise ImapAuthError(
                f"account {account.name}: environment variable {account.password_env} is not set"
            )
        return Secret(value)
    if account.password_command:
        return Secret(_run(account.password_command, "password_command", account.name))
    raise ImapAuthError(
        f"account {account.name}: no password source (set password_env or password_command)"
    )


def get_oauth_token(account: AccountSettings) -> Secret:
    """The XOAUTH2 access token: ``oauth_token_command`` output, else the password source."""
    if account.oauth_token_command:
        return Secret(_run(account.oauth_token_command, "oauth_token_command", account.name))
    return get_password(account)


def get_secret(account: AccountSettings) -> Secret:
    """What the account logs in with: the XOAUTH2 token for ``auth = "xoauth2"``, else the
    password. May run a command: call it off the event loop."""
    return get_oauth_token(account) if account.auth == "xoauth2" else get_password(account)
