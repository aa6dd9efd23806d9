"""Which of an account's folders a run syncs, in which order, and what the report counts for them:
the same in every concurrency mode, so that their reports compare.

The drivers discover the folders (:func:`mailsync.core.flow.discover`), ask :func:`plan_folders`
for the work, hand it to their connections in the order given, and count each folder's outcome
with :func:`folder_counts`. Messages about a folder name it as :func:`folder_where` does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mailsync.core.flow import FolderJob, FolderResult, is_unchanged
from mailsync.core.plan import FolderState

__all__ = ["FolderCounts", "FolderPlan", "folder_counts", "folder_where", "plan_folders"]


@dataclass(frozen=True)
class FolderPlan:
    """The folders to sync, largest first, and the report's counters for the listing."""

    todo: tuple[FolderJob, ...]
    folders: int  # every folder listed (and included)
    skipped: int  # unchanged since the last complete sync: not even EXAMINEd
    expected: int  # messages the folders to sync hold (progress and ETA)
    first_time: int  # of those, messages in folders never synced before

    @property
    def nothing_to_do(self) -> bool:
        return not self.todo


def _messages(job: FolderJob) -> int:
    return (job.status.messages or 0) if job.status is not None else 0


def plan_folders(jobs: Sequence[FolderJob], before: Mapping[str, FolderState]) -> FolderPlan:
    """Drop the folders whose STATUS matches the recorded state; the rest largest first.

    Largest first because the biggest folder bounds the run: started last it would leave the
    other connections idle while it finishes. The sort is stable: equal folders keep the
    server's LIST order, so every mode starts them in the same order.
    """
    todo = [j for j in jobs if not is_unchanged(j, before)]
    todo.sort(key=lambda j: -_messages(j))
    return FolderPlan(
        todo=tuple(todo),
        folders=len(jobs),
        skipped=len(jobs) - len(todo),
        expected=sum(_messages(j) for j in todo),
        first_time=sum(_messages(j) for j in todo if j.before is None),
    )


@dataclass(frozen=True)
class FolderCounts:
    """What one synced folder adds to its account's report."""

    flag_updates: int
    gone: int
    warnings: tuple[str, ...]


def folder_where(account: str, folder: str) -> str:
    """How errors, warnings and retries name a folder: ``account/folder``."""
    return f"{account}/{folder}"


def folder_counts(where: str, result: FolderResult) -> FolderCounts:
    """The report's share of ``result``, the folder ``where`` (``account/folder``)."""
    warnings: tuple[str, ...] = ()
    if result.missing:  # expunged between the listing and the FETCH: not an error
        warnings = (f"{where}: {len(result.missing)} messages vanished while fetching",)
    return FolderCounts(result.flag_updates, result.gone, warnings)
