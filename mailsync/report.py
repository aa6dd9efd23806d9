"""What one account's backup did: the row the CLI prints, filled by every mode's driver.

Every driver records into it through the methods below, so that the same run gives the same
counts, errors and warnings in every mode; a driver whose threads share a report holds its lock
around each call.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from foundation.errors import StorageError
from mailsync.core.flow import FolderResult
from mailsync.core.retry import FolderDecision, Retry, SkipFolder
from mailsync.core.schedule import FolderCounts, FolderPlan, folder_counts, folder_where
from mailsync.layout import ArchiveBusyError

if TYPE_CHECKING:
    from mailsync.store import StoredMessage
    from mailsync.transports.base import TransportStats

__all__ = ["AccountReport", "FolderOutcome"]

# how a folder ended: synced to the end, or the decision about its last failed attempt
FolderOutcome = FolderResult | FolderDecision


@dataclass
class AccountReport:
    """One account's outcome; the CLI prints it as a row of the summary table."""

    account: str
    folders: int = 0
    synced: int = 0
    skipped: int = 0
    new_messages: int = 0
    new_bytes: int = 0
    flag_updates: int = 0
    gone: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    commands: int = 0
    round_trips: int = 0
    wire_bytes: int = 0
    expected: int = 0  # messages the planned folders hold (for progress / ETA)
    folders_done: int = 0
    retries: int = 0  # connection attempts that failed and were tried again (any mode alike)
    busy: bool = False  # another run held the archive's lock: nothing was done

    @property
    def ok(self) -> bool:
        return not self.errors

    def planned(self, plan: FolderPlan) -> None:
        self.folders = plan.folders
        self.skipped = plan.skipped
        self.expected = plan.expected

    def synced_folder(self, counts: FolderCounts) -> None:
        """Count one folder synced to the end (callers that share a report hold its lock)."""
        self.synced += 1
        self.flag_updates += counts.flag_updates
        self.gone += counts.gone
        self.warnings.extend(counts.warnings)

    def failed_attempt(self, decision: FolderDecision) -> None:
        """Count a folder attempt that failed, as :mod:`mailsync.core.retry` decided about it."""
        if isinstance(decision, Retry):
            self.retries += 1
        elif isinstance(decision, SkipFolder):
            self.warnings.append(decision.warning)
        else:
            self.errors.append(decision.message)

    def folder_ended(self, folder: str, outcome: FolderOutcome) -> None:
        """Count the folder ``folder`` as done: synced (its counts and warnings), or failed or
        skipped as the decision about its last attempt says."""
        if isinstance(outcome, FolderResult):
            self.synced_folder(folder_counts(folder_where(self.account, folder), outcome))
        else:
            self.failed_attempt(outcome)
        self.folders_done += 1

    def stored(self, messages: Sequence[StoredMessage]) -> None:
        """Count a batch of messages written to the archive."""
        self.new_messages += len(messages)
        self.new_bytes += sum(m.size for m in messages)

    def count_transport(self, stats: Iterable[TransportStats]) -> None:
        """Add what crossed the account's connections (one ``stats`` per connection)."""
        for s in stats:
            self.commands += s.commands
            self.round_trips += s.round_trips
            self.wire_bytes += s.wire_in

    def account_failed(self, exc: Exception) -> None:
        """Record the error that stopped the whole account: an archive error as such, any other
        (IMAP, mode) with the account's name in front, unless its text starts with it already."""
        prefix = f"account {self.account}: "
        if isinstance(exc, StorageError):
            self.busy = self.busy or isinstance(exc, ArchiveBusyError)
            self.errors.append(f"{prefix}archive: {exc}")
            return
        msg = str(exc)
        self.errors.append(msg if msg.startswith(prefix) else prefix + msg)
