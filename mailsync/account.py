"""The start of one account's backup, the same in every concurrency mode.

A driver loads the recorded folder states (:meth:`mailsync.store.AccountArchive.folder_states`),
opens its first connection, takes the flow's options from :func:`sync_options`, drives
:func:`discover` on that connection, marks the folders gone from the server
(:meth:`~mailsync.store.AccountArchive.mark_folders_gone`) and hands :func:`plan_run`'s folders to
its connections. Only how it drives, waits and writes is its own.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence, Set

from mailsync.core import flow
from mailsync.core.options import listing_capabilities
from mailsync.core.options import sync_options as _sync_options
from mailsync.core.plan import FolderState
from mailsync.core.schedule import FolderPlan, plan_folders
from mailsync.report import AccountReport
from mailsync.settings import AccountSettings, MailSettings

__all__ = ["discover", "plan_run", "sync_options"]


def sync_options(
    account: AccountSettings,
    settings: MailSettings,
    capabilities: Set[str],
    *,
    aioimaplib: bool = False,
) -> flow.SyncOptions:
    """The options every folder of ``account`` syncs with, on sessions offering
    ``capabilities`` (``aioimaplib``: the sessions are aioimaplib's)."""
    return _sync_options(
        capabilities,
        batch_messages=account.batch_messages,
        batch_bytes=account.batch_bytes,
        pipeline_depth=settings.pipeline_depth,
        listing_chunk=settings.listing_chunk,
        aioimaplib=aioimaplib,
    )


def discover(
    account: AccountSettings,
    capabilities: Set[str],
    before: Mapping[str, FolderState],
    *,
    aioimaplib: bool = False,
) -> Generator[flow.Effect, object, tuple[list[flow.FolderJob], list[str]]]:
    """The account's folder discovery (:func:`mailsync.core.flow.discover`) with its include and
    exclude patterns, on a session offering ``capabilities``; returns (jobs, names gone)."""
    caps = listing_capabilities(capabilities, aioimaplib=aioimaplib)
    return flow.discover(caps, account.include, account.exclude, before)


def plan_run(
    report: AccountReport, jobs: Sequence[flow.FolderJob], before: Mapping[str, FolderState]
) -> FolderPlan:
    """The folders to sync, largest first (:func:`mailsync.core.schedule.plan_folders`), counted
    in ``report`` (folders listed, skipped, messages expected)."""
    plan = plan_folders(jobs, before)
    report.planned(plan)
    return plan
