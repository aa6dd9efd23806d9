"""Which asyncio IMAP transport an account's session comes from (the default session factory)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from mailsync.auth import Secret
from mailsync.settings import AccountSettings, MailSettings
from mailsync.transports.base import ImapSession

__all__ = ["SessionFactory", "open_account_session"]

SessionFactory = Callable[[AccountSettings, Secret, MailSettings, Path], Awaitable[ImapSession]]


async def open_account_session(
    account: AccountSettings, secret: Secret, settings: MailSettings, spill_dir: Path
) -> ImapSession:
    """The default session factory: our own pipelining transport, or aioimaplib when asked."""
    if settings.imap_client == "aioimaplib":
        from mailsync.transports.aioimaplib_client import open_session as open_aioimaplib

        return await open_aioimaplib(account, secret, settings, spill_dir)
    from mailsync.transports.connection import open_session, spill_factory

    return await open_session(
        account,
        secret,
        op_timeout=settings.timeout,
        compress=settings.compress,
        literal_factory=spill_factory(spill_dir),
        spill_threshold=settings.spill_threshold,
    )
