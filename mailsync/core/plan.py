"""The pure sync planner: server state + local state -> what to fetch, re-flag, mark gone.

Two steps. :func:`needs_sync` compares a folder's STATUS now with the STATUS stored after the
last good sync: when nothing moved, the folder costs one STATUS line and no EXAMINE (this is what
makes a no-change re-sync almost free). Otherwise the engine EXAMINEs, fetches the metadata of
the folder and calls :func:`plan_folder`.

Messages are never deleted locally: a UID that left the server is reported in ``gone`` (the
state marks it; the file stays), and a changed UIDVALIDITY starts a new generation (old copies
stay, every message of the new generation is fetched).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mailsync.core.commands import chunk_uids

__all__ = [
    "FolderPlan",
    "FolderState",
    "LocalMsg",
    "ServerMsg",
    "needs_sync",
    "normalize_flags",
    "plan_folder",
]


@dataclass(frozen=True, slots=True)
class ServerMsg:
    uid: int
    size: int
    flags: tuple[str, ...]
    internaldate: str
    modseq: int | None = None


@dataclass(frozen=True, slots=True)
class LocalMsg:
    uid: int
    size: int
    flags: tuple[str, ...]
    sha256: str
    path: str
    deleted_on_server: bool = False


@dataclass(frozen=True, slots=True)
class FolderState:
    """A folder's STATUS (or EXAMINE) numbers; None where the server did not say."""

    name: str
    uidvalidity: int | None
    uidnext: int | None
    highestmodseq: int | None
    messages: int | None


@dataclass(frozen=True, slots=True)
class FolderPlan:
    """``fetch``: UID batches (ascending, bounded by count and bytes); ``flag_updates``: (uid,
    new flags) for kept messages; ``gone``: UIDs deleted on the server since the last sync;
    ``new_generation``: UIDVALIDITY changed; ``skip``: nothing to do, not even EXAMINE."""

    fetch: tuple[tuple[int, ...], ...] = ()
    flag_updates: tuple[tuple[int, tuple[str, ...]], ...] = ()
    gone: tuple[int, ...] = ()
    new_generation: bool = False
    skip: bool = False

    @classmethod
    def skipped(cls) -> FolderPlan:
        """The plan for a folder whose STATUS did not change."""
        return cls(skip=True)

    @property
    def fetch_count(self) -> int:
        return sum(len(batch) for batch in self.fetch)


def needs_sync(status_now: FolderState, status_before: FolderState | None) -> bool:
    """False only when UIDVALIDITY, UIDNEXT, MESSAGES and (when the server has CONDSTORE)
    HIGHESTMODSEQ are all known and unchanged. Without CONDSTORE a flag change alone is not
    visible in STATUS, so it waits for the next sync that has another reason to look."""
    if status_before is None:
        return True
    now, before = status_now, status_before
    for a, b in (
        (now.uidvalidity, before.uidvalidity),
        (now.uidnext, before.uidnext),
        (now.messages, before.messages),
    ):
        if a is None or a != b:
            return True
    return now.highestmodseq is not None and now.highestmodseq != before.highestmodseq


_IGNORED_FLAGS = frozenset({"\\RECENT"})  # session-only, changes on every connection


def normalize_flags(flags: Sequence[str]) -> tuple[str, ...]:
    """Sorted, de-duplicated flags without \\Recent; system flags compared case-insensitively
    (RFC 3501: ``\\seen`` is ``\\Seen``), so the planner does not re-flag on a case change."""
    seen: dict[str, str] = {}
    for f in flags:
        key = f.upper() if f.startswith("\\") else f
        if key not in _IGNORED_FLAGS and key not in seen:
            seen[key] = f
    return tuple(sorted(seen.values(), key=lambda f: f.upper() if f.startswith("\\") else f))


def _same_flags(a: Sequence[str], b: Sequence[str]) -> bool:
    key = {f.upper() if f.startswith("\\") else f for f in a} - _IGNORED_FLAGS
    return key == {f.upper() if f.startswith("\\") else f for f in b} - _IGNORED_FLAGS


def plan_folder(
    server: Sequence[ServerMsg],
    local: Mapping[int, LocalMsg],
    *,
    uidvalidity_now: int,
    uidvalidity_before: int | None,
    batch_messages: int,
    batch_bytes: int,
    partial: bool = False,
) -> FolderPlan:
    """Plan one folder from the server's metadata and the local state of this generation.

    ``partial=True`` says ``server`` is not the whole folder (a CHANGEDSINCE answer or a UID
    range): then a UID missing from it is not taken as deleted. A local copy whose size differs
    from the server's (an interrupted write that slipped through) is fetched again.
    """
    new_generation = uidvalidity_before is not None and uidvalidity_now != uidvalidity_before
    if new_generation:
        local = {}
    wanted: list[ServerMsg] = []
    flag_updates: list[tuple[int, tuple[str, ...]]] = []
    on_server: set[int] = set()
    for msg in server:
        if msg.uid in on_server:
            continue  # a server that repeats a UID in one answer
        on_server.add(msg.uid)
        have = local.get(msg.uid)
        if have is None or have.size != msg.size:
            wanted.append(msg)
        elif not _same_flags(have.flags, msg.flags) or have.deleted_on_server:
            # marked deleted, yet on the server again (its folder was renamed away and back):
            # the flag update clears the mark
            flag_updates.append((msg.uid, normalize_flags(msg.flags)))
    gone: list[int] = []
    if not partial:
        gone = sorted(
            uid for uid, m in local.items() if uid not in on_server and not m.deleted_on_server
        )
    wanted.sort(key=lambda m: m.uid)
    batches = chunk_uids(
        [m.uid for m in wanted],
        batch_messages,
        {m.uid: m.size for m in wanted},
        batch_bytes,
    )
    return FolderPlan(
        fetch=tuple(tuple(b) for b in batches),
        flag_updates=tuple(sorted(flag_updates)),
        gone=tuple(gone),
        new_generation=new_generation,
        skip=False,
    )
