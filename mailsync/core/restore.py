"""Restoring archived messages to a server, as a generator of effects: no I/O in it.

:func:`restore_folder` (one per destination folder) yields :class:`~mailsync.core.flow.Send`
(IMAP commands, pipelined) and the restore effects below, and receives their results; every mode's
driver performs them (:mod:`drivers.mail_restore_asyncio`, :mod:`drivers.mail_restore_blocking`).

Nothing is restored twice, whatever instant a run dies at. Before a batch is sent its messages are
recorded *pending* (:class:`MarkPending`, committed), and once the server answered they are
recorded *done* with the UID it gave them (:class:`MarkDone`). A run that finds pending messages
(the previous one died between the two) looks each one up on the server first -- Message-ID
(when it has one), exact size and INTERNALDATE, among UIDs no other restored message claimed --
and appends only those not there. A message answered NO is not on the server (IMAP's APPEND is
all or nothing, MULTIAPPEND too) and is tried again on the next run.

Server limits: a NO with [OVERQUOTA], [LIMIT], [INUSE], [UNAVAILABLE] or [ALERT] is waited out
with the run's backoff (:class:`Pause`) and, when it outlasts it, ends the folder with an
:class:`~foundation.errors.ImapLimitError` naming what the server said. Any other NO to a
MULTIAPPEND is tried message by message, so one message the server refuses (too large, say)
fails alone (:class:`MarkFailed`).
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field

from foundation.errors import ImapCommandError, ImapLimitError, ImapProtocolError
from mailsync.core import append as cmds
from mailsync.core.commands import chunk_uids, sequence_set
from mailsync.core.flow import CommandResult, Send
from mailsync.core.parser import FetchResp, Untagged, parse_internaldate

__all__ = [
    "LIMIT_CODES",
    "LoadProgress",
    "MarkDone",
    "MarkFailed",
    "MarkPending",
    "Pause",
    "Progress",
    "ReadBodies",
    "RestoreCounts",
    "RestoreEffect",
    "RestoreItem",
    "RestoreJob",
    "RestoreOptions",
    "SourceKey",
    "Warn",
    "build_jobs",
    "map_folder",
    "parse_folder_map",
    "restore_folder",
    "same_date",
]

SourceKey = tuple[str, int, int]  # (folder, uidvalidity, uid) in the archive
# codes that mean "not now" rather than "not this message" (RFC 5530, RFC 3501's ALERT)
LIMIT_CODES = frozenset({"OVERQUOTA", "LIMIT", "INUSE", "UNAVAILABLE", "ALERT"})


@dataclass(frozen=True)
class RestoreItem:
    """One archived message to restore (``path`` relative to the archive's root)."""

    key: SourceKey
    size: int
    sha256: str
    flags: tuple[str, ...]
    internaldate: str | None
    message_id: str | None
    path: str


@dataclass(frozen=True)
class RestoreJob:
    """Every message that goes into one destination folder."""

    dest: str
    items: tuple[RestoreItem, ...]

    @property
    def bytes(self) -> int:
        return sum(i.size for i in self.items)


@dataclass(frozen=True)
class RestoreOptions:
    """From the target's capabilities and the settings."""

    literal_plus: bool = False
    literal_minus: bool = False
    multiappend: bool = False
    uidplus: bool = False
    batch_messages: int = 100
    batch_bytes: int = 4 * 1024 * 1024
    retries: int = 4  # pauses a server limit gets before the folder fails

    @classmethod
    def from_capabilities(cls, caps: frozenset[str], **extra: int) -> RestoreOptions:
        return cls(
            literal_plus="LITERAL+" in caps,
            literal_minus="LITERAL-" in caps,
            multiappend="MULTIAPPEND" in caps,
            uidplus="UIDPLUS" in caps,
            **extra,
        )


@dataclass(frozen=True)
class Progress:
    """What the restore table holds for a destination folder of this target."""

    done: frozenset[SourceKey]
    pending: frozenset[SourceKey]
    # destination UIDs already recorded for a restored message, by the folder's UIDVALIDITY
    claimed: Mapping[int, frozenset[int]] = field(default_factory=dict)


@dataclass
class RestoreCounts:
    appended: int = 0  # sent and stored now
    found: int = 0  # pending after a crash and found on the server: not sent again
    already: int = 0  # recorded done by an earlier run
    failed: int = 0  # refused by the server (errors name them)
    bytes: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# effects -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadProgress:
    """Result: :class:`Progress` for ``dest``."""

    dest: str


@dataclass(frozen=True)
class ReadBodies:
    """Result: the archived bytes of ``items``, in order."""

    items: tuple[RestoreItem, ...]


@dataclass(frozen=True)
class MarkPending:
    """Record ``items`` as being sent to ``dest`` (committed before the APPEND goes out)."""

    dest: str
    items: tuple[RestoreItem, ...]


@dataclass(frozen=True)
class MarkDone:
    """Record these as on the server: (item, UIDVALIDITY, UID, how) -- UIDs None when unknown;
    ``how`` is ``"appended"`` or ``"found"``."""

    dest: str
    rows: tuple[tuple[RestoreItem, int | None, int | None, str], ...]


@dataclass(frozen=True)
class MarkFailed:
    """The server refused ``items`` (``reason``): not on the server, tried again next run."""

    dest: str
    items: tuple[RestoreItem, ...]
    reason: str


@dataclass(frozen=True)
class Pause:
    """Wait the backoff of failed attempt ``attempt`` (the driver adds the jitter)."""

    attempt: int
    reason: str


@dataclass(frozen=True)
class Warn:
    """Show ``text`` to the user (an [ALERT] must be shown, RFC 3501 7.1)."""

    text: str


RestoreEffect = (
    Send | LoadProgress | ReadBodies | MarkPending | MarkDone | MarkFailed | Pause | Warn
)


# planning -------------------------------------------------------------------------------------


def parse_folder_map(specs: Sequence[str]) -> dict[str, str]:
    """``["Old=New", "INBOX=Restored"]`` -> mapping; raises ValueError on a malformed spec."""
    out: dict[str, str] = {}
    for spec in specs:
        src, sep, dst = spec.partition("=")
        if not sep or not src or not dst:
            raise ValueError(f"--folder-map {spec!r}: write it SOURCE=DESTINATION")
        out[src] = dst
    return out


def map_folder(name: str, mapping: Mapping[str, str]) -> str:
    """``name`` renamed by the longest mapping entry that is it or one of its parents
    (``Archive=Old`` maps ``Archive/2023`` to ``Old/2023``); unchanged without one."""
    best = ""
    for src in mapping:
        if (name == src or name.startswith(src + "/")) and len(src) > len(best):
            best = src
    return mapping[best] + name[len(best) :] if best else name


def build_jobs(items: Sequence[RestoreItem], mapping: Mapping[str, str]) -> list[RestoreJob]:
    """One job per destination folder (two source folders mapped together share one, so one
    connection at a time writes a folder), largest first; items in source order."""
    by_dest: dict[str, list[RestoreItem]] = {}
    for item in items:
        by_dest.setdefault(map_folder(item.key[0], mapping), []).append(item)
    jobs = [RestoreJob(dest, tuple(group)) for dest, group in by_dest.items()]
    return sorted(jobs, key=lambda j: (-j.bytes, j.dest))


# the flow -------------------------------------------------------------------------------------


def same_date(a: str | None, b: str | None) -> bool:
    """True when two INTERNALDATEs name the same instant (None matches anything: a message
    archived without one got the server's clock)."""
    if a is None or b is None:
        return True
    try:
        return parse_internaldate(a) == parse_internaldate(b)
    except ImapProtocolError:
        return a.strip() == b.strip()


def _uidvalidity(result: CommandResult) -> int | None:
    for resp in result.untagged:
        if isinstance(resp, Untagged) and resp.code_name == "UIDVALIDITY" and resp.code:
            words = resp.code.split()
            if len(words) == 2 and words[1].isdigit():
                return int(words[1])
    return None


def _find(
    items: Sequence[RestoreItem], claimed: set[int]
) -> Generator[RestoreEffect, object, dict[SourceKey, int]]:
    """Look ``items`` up in the selected folder; their UIDs (each UID claimed once)."""
    if not items:
        return {}
    # one SEARCH per round trip: Dovecot runs pipelined commands concurrently, and an untagged
    # "* SEARCH" carries nothing that says which command it answers. Only the messages of a
    # batch a crash interrupted are looked up, so these round trips are few.
    candidates: dict[SourceKey, list[int]] = {}
    for item in items:
        res = _only((yield Send((cmds.search_copy(item.message_id, item.size),))))
        candidates[item.key] = cmds.search_uids(res.untagged) if res.ok else []
    every = sorted({u for uids in candidates.values() for u in uids} - claimed)
    dates: dict[int, str | None] = {}
    for chunk in chunk_uids(every, 500):
        fetch = b"UID FETCH " + sequence_set(chunk).encode() + b" (UID INTERNALDATE)"
        res = _only((yield Send((fetch,))))
        for resp in res.untagged:
            if isinstance(resp, FetchResp) and resp.uid is not None:
                dates[resp.uid] = resp.internaldate
    found: dict[SourceKey, int] = {}
    for item in items:
        for uid in sorted(candidates[item.key]):
            if uid in dates and uid not in claimed and same_date(item.internaldate, dates[uid]):
                found[item.key] = uid
                claimed.add(uid)
                break
    return found


def _only(value: object) -> CommandResult:
    """The one result of a one-command :class:`Send`."""
    assert isinstance(value, tuple) and len(value) == 1 and isinstance(value[0], CommandResult)
    return value[0]


def _limit(result: CommandResult) -> bool:
    return result.tagged.code_name in LIMIT_CODES


def _command(
    dest: str, batch: Sequence[tuple[RestoreItem, bytes]], opts: RestoreOptions
) -> tuple[bytes, ...]:
    messages = [cmds.AppendMessage(body, i.flags, i.internaldate) for i, body in batch]
    return cmds.append(
        dest, messages, literal_plus=opts.literal_plus, literal_minus=opts.literal_minus
    )


def _batches(items: Sequence[RestoreItem], opts: RestoreOptions) -> list[list[RestoreItem]]:
    index = {n: item for n, item in enumerate(items, 1)}
    sizes = {n: item.size for n, item in index.items()}
    groups = chunk_uids(list(index), opts.batch_messages, sizes, opts.batch_bytes)
    return [[index[n] for n in group] for group in groups]


def restore_folder(
    job: RestoreJob, opts: RestoreOptions, counts: RestoreCounts | None = None
) -> Generator[RestoreEffect, object, RestoreCounts]:
    """Restore ``job``'s messages not yet recorded as restored; the counts.

    ``counts`` is updated as the work goes, so a driver keeps what an attempt did even when it
    ends in an error; pass the same object to every attempt at one job (it then tells the
    messages an earlier attempt sent from those an earlier run did)."""
    counts = counts if counts is not None else RestoreCounts()
    progress = yield LoadProgress(job.dest)
    assert isinstance(progress, Progress)
    todo = [i for i in job.items if i.key not in progress.done]
    counts.already = len(job.items) - len(todo) - counts.appended - counts.found
    if not todo:
        return counts
    _only((yield Send((cmds.create(job.dest),))))
    # NO [ALREADYEXISTS] is the usual answer; any other NO shows at the first APPEND ([TRYCREATE])
    uidvalidity: int | None = None
    claimed: set[int] = set()
    pending = [i for i in todo if i.key in progress.pending]
    if pending or not opts.uidplus:
        selected = _only((yield Send((cmds.select(job.dest),))))
        if not selected.ok:
            raise ImapCommandError(
                "SELECT " + job.dest, selected.tagged.status, selected.tagged.text
            )
        uidvalidity = _uidvalidity(selected)
        if uidvalidity is not None:
            claimed = set(progress.claimed.get(uidvalidity, frozenset()))
        found = yield from _find(pending, claimed)
        if found:
            rows = tuple((i, uidvalidity, found[i.key], "found") for i in pending if i.key in found)
            yield MarkDone(job.dest, rows)
            counts.found += len(rows)
            todo = [i for i in todo if i.key not in found]
    for batch in _batches(todo, opts):
        bodies = yield ReadBodies(tuple(batch))
        assert isinstance(bodies, tuple)
        pairs = list(zip(batch, bodies, strict=True))
        yield MarkPending(job.dest, tuple(batch))
        yield from _send(job.dest, pairs, opts, counts, uidvalidity, claimed)
    return counts


def _send(
    dest: str,
    pairs: list[tuple[RestoreItem, bytes]],
    opts: RestoreOptions,
    counts: RestoreCounts,
    uidvalidity: int | None,
    claimed: set[int],
) -> Generator[RestoreEffect, object, None]:
    """APPEND ``pairs`` (one MULTIAPPEND, or one APPEND each, pipelined) until each is stored
    or refused; server limits are paused on."""
    groups = [pairs] if opts.multiappend and len(pairs) > 1 else [[p] for p in pairs]
    attempt = 0
    while groups:
        results = yield Send(tuple(_command(dest, g, opts) for g in groups))
        assert isinstance(results, tuple)
        again: list[list[tuple[RestoreItem, bytes]]] = []
        done: list[tuple[RestoreItem, int | None, int | None, str]] = []
        limited: CommandResult | None = None
        for group, result in zip(groups, results, strict=True):
            assert isinstance(result, CommandResult)
            if result.ok:
                uids = cmds.appenduid(result.tagged)
                if uids is not None and len(uids[1]) == len(group):
                    done += [
                        (i, uids[0], u, "appended")
                        for (i, _), u in zip(group, uids[1], strict=True)
                    ]
                else:
                    done += [(i, None, None, "appended") for i, _ in group]
                counts.appended += len(group)
                counts.bytes += sum(len(b) for _, b in group)
            elif _limit(result):
                limited = result
                again.append(group)
            elif result.tagged.code_name == "TRYCREATE":
                yield Send((cmds.create(dest),))
                again.append(group)  # counted as an attempt: a CREATE that did not help ends it
                limited = limited or result
            elif len(group) > 1:
                again += [[p] for p in group]  # find the one the server refuses
            else:
                item = group[0][0]
                text = f"{result.tagged.status} {result.tagged.text}".strip()
                yield MarkFailed(dest, (item,), text)
                counts.failed += 1
                counts.errors.append(f"{dest}: {item.key[0]} UID {item.key[2]}: refused: {text}")
        if done:
            if not opts.uidplus and uidvalidity is not None:
                found = yield from _find([i for i, _, _, _ in done], claimed)
                done = [(i, uidvalidity, found.get(i.key), how) for i, _, _, how in done]
            yield MarkDone(dest, tuple(done))
        if limited is not None:
            tagged = limited.tagged
            said = f"{tagged.status} [{tagged.code}] {tagged.text}".strip()
            if tagged.code_name == "ALERT":
                yield Warn(f"server alert: {tagged.text}")
            attempt += 1
            if attempt > opts.retries:
                raise ImapLimitError(
                    f"APPEND to {dest}", tagged.status, f"[{tagged.code}] {tagged.text}"
                )
            yield Pause(attempt, said)
        groups = again
