"""Whether a failed IMAP connection or folder sync is tried again, after how long, and what the
report says when it is not: one policy for every concurrency mode.

A driver catches the failure, counts the attempt and asks :func:`after_connect_failure` (opening
the account's first connection) or :func:`after_folder_failure` (anything while a folder syncs,
its reconnects included); it then only performs the answer -- sleep and try again, record an
error or a warning, keep or drop the connection. Randomness comes in as a number (``jitter``,
0 <= jitter < 1) so that the decision stays a pure function of its inputs.

What is retried, and why:

- refused, reset, timed out, closed mid-command (:class:`ImapConnectError`): a server restarting
  or a flaky link; waiting may help.
- a login answered ``NO [LIMIT]`` (RFC 5530; Dovecot's per-user connection cap, a provider's
  "too many simultaneous connections"): other connections of the user may end meanwhile.
- a login answered ``NO [UNAVAILABLE]`` (RFC 5530: the server could not check the credentials
  just now). The native and imaplib transports raise it as an :class:`ImapConnectError`; an
  :class:`ImapAuthError` carrying the code (aioimaplib's wording) is read the same way.
- bytes the parser cannot read (:class:`ImapProtocolError`) mid-folder: the stream is lost, a new
  connection starts clean. At connect time it means the peer does not speak IMAP: not retried.

Never retried: an untrusted certificate (:class:`ImapTLSError`), a host name that does not
resolve (:class:`ImapUnknownHost`), a refused password (:class:`ImapAuthError`): the user has to
change a setting, and repeating a wrong login can lock the account.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from foundation.errors import (
    FolderGone,
    ImapAuthError,
    ImapConnectError,
    ImapProtocolError,
    ImapTLSError,
    ImapUnknownHost,
    MailError,
    StorageError,
)

__all__ = [
    "AccountFailed",
    "Backoff",
    "ConnectDecision",
    "FailAccount",
    "FailFolder",
    "FolderDecision",
    "Retry",
    "SkipFolder",
    "after_connect_failure",
    "after_folder_failure",
    "gave_up",
    "is_connection_cap",
    "is_transient",
]


class AccountFailed(MailError):
    """The account's first connection could not be opened; the message is the report's error."""


@dataclass(frozen=True)
class Backoff:
    """How often and how patiently a connection is tried again (from the mail settings)."""

    retries: int = 4  # tries after the first one
    first: float = 0.2  # seconds before the first retry; doubles each time
    cap: float = 5.0  # longest wait before one retry

    def __post_init__(self) -> None:
        if self.retries < 0 or self.first < 0 or self.cap < self.first:
            raise ValueError(f"invalid backoff {self!r}")

    def delay(self, attempt: int, jitter: float) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1, 2, ...). The ±50 % spread keeps
        connections cut together (a server restart) from all coming back at the same instant."""
        if attempt < 1 or not 0.0 <= jitter <= 1.0:
            raise ValueError(f"attempt {attempt} and jitter {jitter} out of range")
        # the exponent is bounded: 2.0 ** 1100 would overflow long before any cap applies
        base = self.first * 2.0 ** min(attempt - 1, 60)
        return min(self.cap, base) * (0.5 + jitter)


@dataclass(frozen=True)
class Retry:
    """Close the connection, wait ``delay`` seconds, then connect and try again."""

    attempt: int  # failed attempts so far
    delay: float
    keep_session: ClassVar[bool] = False  # the connection broke, or may have


@dataclass(frozen=True)
class FailAccount:
    """The account cannot be backed up in this run: ``message`` is its one error."""

    message: str


@dataclass(frozen=True)
class FailFolder:
    """The folder fails with ``message``; the account's other folders go on."""

    message: str
    # a session that answered NO or whose archive write failed is still usable for the next
    # folder; one that broke, or never logged in, is not
    keep_session: bool


@dataclass(frozen=True)
class SkipFolder:
    """Not an error: the folder went away on the server; ``warning`` says so."""

    warning: str
    keep_session: ClassVar[bool] = True  # the server answered: the connection is fine


ConnectDecision = Retry | FailAccount
FolderDecision = Retry | FailFolder | SkipFolder


def is_transient(exc: BaseException) -> bool:
    """True when a new connection may succeed where this one failed."""
    if isinstance(exc, ImapTLSError | ImapUnknownHost):
        return False
    if isinstance(exc, ImapConnectError):
        return True
    return is_connection_cap(exc) or (
        isinstance(exc, ImapAuthError) and "[UNAVAILABLE]" in str(exc)
    )


def is_connection_cap(exc: BaseException) -> bool:
    """A login refused by a per-user connection cap (``NO [LIMIT]``): another connection of the
    same user has to end first."""
    return isinstance(exc, ImapAuthError) and "[LIMIT]" in str(exc)


def gave_up(message: str, attempts: int) -> str:
    """``message`` with how many tries were made, for a transient failure that outlasted them."""
    return f"{message} (gave up after {attempts} {'try' if attempts == 1 else 'tries'})"


def after_connect_failure(
    exc: MailError, attempt: int, policy: Backoff, jitter: float
) -> ConnectDecision:
    """What to do once attempt ``attempt`` (1, 2, ...) to open a connection raised ``exc``."""
    if not is_transient(exc):
        return FailAccount(str(exc))
    if attempt <= policy.retries:
        return Retry(attempt, policy.delay(attempt, jitter))
    return FailAccount(gave_up(str(exc), attempt))


def after_folder_failure(
    exc: MailError | StorageError, where: str, attempt: int, policy: Backoff, jitter: float
) -> FolderDecision:
    """What to do once attempt ``attempt`` to sync the folder ``where`` (``account/folder``)
    raised ``exc``, while syncing or while reconnecting for it."""
    if isinstance(exc, FolderGone):
        return SkipFolder(f"{where}: folder gone from the server ({exc.text})")
    if is_transient(exc) or isinstance(exc, ImapProtocolError):
        if attempt <= policy.retries:
            return Retry(attempt, policy.delay(attempt, jitter))
        return FailFolder(gave_up(f"{where}: {exc}", attempt), keep_session=False)
    # a reconnect that cannot succeed (certificate, host name, password): no session left
    broken = isinstance(exc, ImapConnectError | ImapAuthError)
    return FailFolder(f"{where}: {exc}", keep_session=not broken)
