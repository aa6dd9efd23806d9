"""The asyncio driver: accounts in parallel, folders spread over K connections per account.

One global semaphore bounds every IMAP connection of the run (``max_connections``). Per account
(:mod:`drivers.mail_asyncio_account`) one connection runs LIST + a pipelined STATUS of all folders,
then up to ``connections`` workers take folders (largest first) from a queue and run
:func:`mailsync.core.flow.sync_folder` on their connection; workers left without a folder help
the folders still fetching (:mod:`drivers.mail_asyncio_folder`: several connections EXAMINE one
folder and fetch disjoint batches of it). Headers are parsed off the loop in a bounded process pool.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from drivers.mail_asyncio_folder import IndexOffload
from mailsync.report import AccountReport
from mailsync.settings import AccountSettings, MailSettings
from mailsync.transports.factory import SessionFactory, open_account_session

__all__ = ["AccountReport", "SessionFactory", "backup_accounts", "open_account_session"]


async def backup_accounts(
    settings: MailSettings,
    accounts: Sequence[AccountSettings],
    out: Path,
    *,
    factory: SessionFactory = open_account_session,
    on_start: Callable[[list[AccountReport]], None] | None = None,
) -> list[AccountReport]:
    """Back up ``accounts`` concurrently; one report per account, in the given order."""
    import asyncio

    from drivers.mail_asyncio_account import AccountRun

    semaphore = asyncio.Semaphore(settings.max_connections)
    offload = IndexOffload(settings)
    runs = [AccountRun(a, settings, out, semaphore, offload, factory) for a in accounts]
    if on_start is not None:
        on_start([r.report for r in runs])
    try:
        return list(await asyncio.gather(*(r.run() for r in runs)))
    finally:
        await offload.aclose()
