"""What one account's backup did: the row the CLI prints, filled by every mode's driver."""

from __future__ import annotations

from dataclasses import dataclass, field

from mailsync.core.retry import FolderDecision, Retry, SkipFolder
from mailsync.core.schedule import FolderCounts, FolderPlan

__all__ = ["AccountReport"]


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
