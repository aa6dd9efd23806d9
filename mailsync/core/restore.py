"""Restoring archived messages to a server, as a generator of effects: no I/O in it.

:func:`restore_folder` (one per destination folder) yields :class:`~mailsync.core.flow.Send`
(IMAP commands, pipelined) and the restore effects below, and receives their results; every mode's
driver performs them (:mod:`drivers.mail_restore_asyncio`, :mod:`drivers.mail_restore_blocking`).

Nothing is restored twice, whatever instant a run dies at. Before a batch is sent its messages are
recorded *pending* (:class:`MarkPending`, committed), and once the server answered they are
recorded *done* with the UID it gave them (:class:`MarkDone`). When the destination folder is not
empty -- a run died between the two records, or the messages never left (a restore into the
account they came from) -- its messages are listed first (UID, size, INTERNALDATE: APPEND keeps
both), the candidates' bytes compared by SHA-256, and only messages not there are sent; a UID
already recorded for another restored message is never taken twice (two identical copies in the
archive stay two). A message answered NO is not on the server (IMAP's APPEND is all or nothing,
MULTIAPPEND too) and is tried again on the next run.

Server limits: a NO with [OVERQUOTA], [LIMIT], [INUSE], [UNAVAILABLE] or [ALERT] is waited out
with the run's backoff (:class:`Pause`) and, when it outlasts it, ends the folder with an
:class:`~foundation.errors.ImapLimitError` naming what the server said. Any other NO to a
MULTIAPPEND is tried message by message, so one message the server refuses (too large, say)
fails alone (:class:`MarkFailed`).
"""

from __future__ import annotations

import hashlib
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
    depth: int = 4  # batches per round trip (bodies of depth x batch_bytes in memory)
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
    present: int = 0  # already in the destination folder (same bytes): not sent
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


def _selected(result: CommandResult) -> tuple[int | None, int, int | None]:
    """(UIDVALIDITY, EXISTS, UIDNEXT) from a SELECT's answer."""
    validity = uidnext = None
    exists = 0
    for resp in result.untagged:
        if isinstance(resp, Untagged):
            if resp.kind == "EXISTS" and resp.number is not None:
                exists = resp.number
            elif resp.code_name in ("UIDVALIDITY", "UIDNEXT") and resp.code:
                words = resp.code.split()
                if len(words) == 2 and words[1].isdigit():
                    if resp.code_name == "UIDVALIDITY":
                        validity = int(words[1])
                    else:
                        uidnext = int(words[1])
    return validity, exists, uidnext


def _digest(body: object) -> str | None:
    if isinstance(body, bytes | bytearray | memoryview):
        return hashlib.sha256(body).hexdigest()
    # a body the transport spilled to a file was hashed as it streamed (mailsync.store)
    sha = getattr(body, "sha256", None)
    return sha if isinstance(sha, str) else None


def _present(
    items: Sequence[RestoreItem], claimed: set[int], first_uid: int = 1, *, exact: bool = True
) -> Generator[RestoreEffect, object, dict[SourceKey, int]]:
    """Which of ``items`` the selected folder already holds (UIDs from ``first_uid`` on), and
    under which UID; each UID is taken once and ``claimed`` ones never.

    One listing of sizes and INTERNALDATEs finds the candidates (APPEND keeps both); with
    ``exact`` the candidates' bytes are fetched and compared by SHA-256, so a different message
    that happens to share size and date never passes for the one to restore. The listing routes
    answers by UID, so it is safe on servers that answer pipelined commands out of order."""
    if not items:
        return {}
    listing = _only((yield Send((b"UID FETCH %d:* (UID RFC822.SIZE INTERNALDATE)" % first_uid,))))
    by_size: dict[int, list[tuple[int, str | None]]] = {}
    for resp in listing.untagged:
        if (
            isinstance(resp, FetchResp)
            and resp.uid is not None
            and resp.size is not None
            and resp.uid >= first_uid
            and resp.uid not in claimed
        ):
            by_size.setdefault(resp.size, []).append((resp.uid, resp.internaldate))
    candidates = {
        item.key: sorted(
            uid for uid, date in by_size.get(item.size, []) if same_date(item.internaldate, date)
        )
        for item in items
    }
    digests: dict[int, str | None] = {}
    if exact:
        wanted = sorted({u for uids in candidates.values() for u in uids})
        sizes = {uid: size for size, pairs in by_size.items() for uid, _ in pairs}
        for chunk in chunk_uids(wanted, 200, sizes, 8 * 1024 * 1024):
            cmd = b"UID FETCH " + sequence_set(chunk).encode() + b" (UID BODY.PEEK[])"
            res = _only((yield Send((cmd,))))
            for resp in res.untagged:
                if isinstance(resp, FetchResp) and resp.uid is not None:
                    digests[resp.uid] = _digest(resp.body)
    found: dict[SourceKey, int] = {}
    for item in items:
        for uid in candidates[item.key]:
            if uid in claimed or (exact and digests.get(uid) != item.sha256):
                continue
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
    earlier_attempts = counts.appended + counts.found + counts.present
    counts.already = len(job.items) - len(todo) - earlier_attempts
    if not todo:
        return counts
    _only((yield Send((cmds.create(job.dest),))))
    # NO [ALREADYEXISTS] is the usual answer; any other NO shows at the first APPEND ([TRYCREATE])
    selected = _only((yield Send((cmds.select(job.dest),))))
    if not selected.ok:
        raise ImapCommandError("SELECT " + job.dest, selected.tagged.status, selected.tagged.text)
    uidvalidity, exists, uidnext = _selected(selected)
    claimed = set(progress.claimed.get(uidvalidity, frozenset())) if uidvalidity else set()
    if exists:
        # messages already there -- sent by a run that died before recording them, or never
        # lost (a restore into the account they came from) -- are recorded, not sent again
        found = yield from _present(todo, claimed)
        if found:
            rows = tuple(
                (i, uidvalidity, found[i.key], "found" if i.key in progress.pending else "present")
                for i in todo
                if i.key in found
            )
            yield MarkDone(job.dest, rows)
            counts.found += sum(1 for r in rows if r[3] == "found")
            counts.present += sum(1 for r in rows if r[3] == "present")
            todo = [i for i in todo if i.key not in found]
    state = _Dest(uidvalidity, uidnext, claimed)
    batches = _batches(todo, opts)
    # ``depth`` batches go out in one write and one round trip (answers are tagged: APPENDUID
    # comes with each command's own completion, so the order the server answers in is no matter)
    for at in range(0, len(batches), opts.depth):
        group = batches[at : at + opts.depth]
        yield MarkPending(job.dest, tuple(i for batch in group for i in batch))
        yield from _send(job.dest, group, opts, counts, state)
    return counts


@dataclass
class _Dest:
    """What the flow knows of the destination folder while it appends."""

    uidvalidity: int | None
    uidnext: int | None  # without UIDPLUS: where the next batch's UIDs start
    claimed: set[int]


def _commands(
    dest: str, groups: list[list[RestoreItem]], opts: RestoreOptions
) -> Generator[RestoreEffect, object, list[tuple[bytes, ...]]]:
    """The APPEND of each group, its bodies read from the archive; the bodies themselves are
    not kept (the commands hold the one copy that must stay in memory until sent)."""
    items = tuple(i for g in groups for i in g)
    bodies = yield ReadBodies(items)
    assert isinstance(bodies, tuple)
    by_key = dict(zip((i.key for i in items), bodies, strict=True))
    del bodies
    out = []
    for group in groups:
        out.append(_command(dest, [(i, by_key.pop(i.key)) for i in group], opts))
    return out


def _send(
    dest: str,
    batches: list[list[RestoreItem]],
    opts: RestoreOptions,
    counts: RestoreCounts,
    dest_state: _Dest,
) -> Generator[RestoreEffect, object, None]:
    """APPEND ``batches`` (a MULTIAPPEND each, or one APPEND per message; all pipelined) until
    each message is stored or refused; server limits are paused on."""
    groups = list(batches) if opts.multiappend else [[i] for b in batches for i in b]
    commands = yield from _commands(dest, groups, opts)
    attempt = 0
    while groups:
        results = yield Send(tuple(commands))
        assert isinstance(results, tuple)
        again: list[tuple[list[RestoreItem], tuple[bytes, ...]]] = []
        split: list[list[RestoreItem]] = []
        done: list[tuple[RestoreItem, int | None, int | None, str]] = []
        limited: CommandResult | None = None
        for group, command, result in zip(groups, commands, results, strict=True):
            assert isinstance(result, CommandResult)
            for resp in result.untagged:  # "* OK [ALERT] ..." must reach the user too
                if isinstance(resp, Untagged) and resp.code_name == "ALERT":
                    yield Warn(f"server alert: {resp.text}")
            if result.ok:
                uids = cmds.appenduid(result.tagged)
                if uids is not None and len(uids[1]) == len(group):
                    pairs = zip(group, uids[1], strict=True)
                    done += [(i, uids[0], u, "appended") for i, u in pairs]
                else:
                    done += [(i, None, None, "appended") for i in group]
                counts.appended += len(group)
                counts.bytes += sum(i.size for i in group)
            elif _limit(result):
                limited = result
                again.append((group, command))
            elif result.tagged.code_name == "TRYCREATE":
                yield Send((cmds.create(dest),))
                again.append((group, command))  # an attempt: a CREATE that did not help ends it
                limited = limited or result
            elif len(group) > 1:
                split += [[i] for i in group]  # find the one the server refuses
            else:
                item = group[0]
                text = f"{result.tagged.status} {result.tagged.text}".strip()
                yield MarkFailed(dest, (item,), text)
                counts.failed += 1
                counts.errors.append(f"{dest}: {item.key[0]} UID {item.key[2]}: refused: {text}")
        if done:
            if not opts.uidplus and dest_state.uidnext is not None:
                # no APPENDUID: the new messages are the ones past the old UIDNEXT (their UIDs
                # are for the record only, so size and date suffice)
                new = [i for i, _, _, _ in done]
                found = yield from _present(
                    new, dest_state.claimed, dest_state.uidnext, exact=False
                )
                validity = dest_state.uidvalidity
                done = [(i, validity, found.get(i.key), how) for i, _, _, how in done]
                if found:
                    dest_state.uidnext = max(found.values()) + 1
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
        groups = [g for g, _ in again] + split
        commands = [c for _, c in again]
        if split:  # the bodies are read again: one message per APPEND now
            commands += yield from _commands(dest, split, opts)
