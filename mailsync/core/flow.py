"""Syncing as generators of effects: the behaviour of mailsync, with no I/O in it.

:func:`discover` (one per account) and :func:`sync_folder` (one per folder) are generators. They
yield effects -- :class:`Send` (IMAP commands, pipelined: one round trip), :class:`StartFetch` /
:class:`NextFetch` (a sliding window of body FETCHes), :class:`LoadFolder`,
:class:`DiffChunk`, :class:`StoreBatch`, :class:`UpdateFlags`, :class:`NewGeneration`,
:class:`SaveFolder` -- and receive each effect's result. A driver (asyncio today; threads, gevent
and processes later) performs the effects; the order of decisions lives here, once.

Crash safety comes from the order: message files and their state rows are written before
:class:`SaveFolder` records the folder's STATUS, so an interrupted sync is resumed (and never
mistaken for "unchanged") on the next run.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field

from foundation.errors import FolderGone, ImapCommandError
from mailsync.core import commands, listing
from mailsync.core.listing import ChunkRouter, UidRange
from mailsync.core.names import safe_relpath
from mailsync.core.parser import (
    FetchResp,
    ListResp,
    Response,
    StatusResp,
    Tagged,
    Untagged,
)
from mailsync.core.plan import FolderState, LocalMsg, ServerMsg, needs_sync, plan_folder

__all__ = [
    "Command",
    "CommandResult",
    "DiffChunk",
    "Effect",
    "FolderJob",
    "FolderResult",
    "LoadFolder",
    "LocalChunk",
    "LocalFolder",
    "NewGeneration",
    "NextFetch",
    "SaveFolder",
    "Send",
    "StartFetch",
    "StoreBatch",
    "SyncOptions",
    "UpdateFlags",
    "code_int",
    "discover",
    "is_unchanged",
    "match_folder",
    "sync_folder",
]

Command = bytes | tuple[bytes, ...]


@dataclass(frozen=True)
class CommandResult:
    """A command's completion and the untagged responses sent while it ran."""

    tagged: Tagged
    untagged: tuple[Response, ...]

    @property
    def ok(self) -> bool:
        return self.tagged.status == "OK"


# effects ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    """Send these commands pipelined; result: ``tuple[CommandResult, ...]`` in the same order."""

    commands: tuple[Command, ...]


@dataclass(frozen=True)
class StartFetch:
    """Start sending ``commands`` in order, keeping ``window`` of them in flight. Result: None."""

    commands: tuple[Command, ...]
    window: int
    # the folder's UIDVALIDITY: a driver that spreads the commands over several connections
    # (each EXAMINEs the folder) uses a connection only if it sees the same one
    uidvalidity: int | None = None
    # each command's bytes of bodies (RFC822.SIZE summed; empty when unknown): a driver may
    # hold the bytes it has asked for and not yet written under a budget
    sizes: tuple[int, ...] = ()


@dataclass(frozen=True)
class NextFetch:
    """Result: the :class:`CommandResult` of the next command of the running StartFetch."""


@dataclass(frozen=True)
class LocalFolder:
    """What the archive holds for a folder (after crash leftovers were reconciled): its last
    UIDVALIDITY and generation. Its messages are compared chunk by chunk (:class:`DiffChunk`)."""

    uidvalidity: int | None
    generation: int


@dataclass(frozen=True)
class DiffChunk:
    """Compare one chunk of the folder's listing with the archive (in SQLite: the rows of these
    UIDs only). With ``mark_gone``, rows in ``span`` that the chunk lacks (and not yet marked) are
    marked deleted on the server there. Result: :class:`LocalChunk`."""

    name: str
    uidvalidity: int
    uids: tuple[int, ...]  # the UIDs the server listed in the chunk
    span: UidRange
    mark_gone: bool


@dataclass(frozen=True)
class LocalChunk:
    """The archive's rows for a chunk's listed UIDs, and how many rows of it were marked gone."""

    messages: Mapping[int, LocalMsg]
    gone: int = 0


@dataclass(frozen=True)
class LoadFolder:
    """Result: :class:`LocalFolder` for ``uidvalidity`` (the server's current one)."""

    name: str
    relpath: str
    uidvalidity: int


@dataclass(frozen=True)
class StoreBatch:
    """Write these messages (files, then state rows). Result: None (may complete later)."""

    name: str
    relpath: str
    uidvalidity: int
    generation: int
    messages: tuple[FetchResp, ...]


@dataclass(frozen=True)
class UpdateFlags:
    name: str
    relpath: str
    uidvalidity: int
    changes: tuple[tuple[int, tuple[str, ...]], ...]


@dataclass(frozen=True)
class NewGeneration:
    """UIDVALIDITY changed: keep the old copies (marked in state), start a new generation."""

    name: str
    old_uidvalidity: int
    generation: int


@dataclass(frozen=True)
class SaveFolder:
    """Record the folder as completely synced at this STATUS (after all stores are durable)."""

    name: str
    relpath: str
    state: FolderState
    generation: int


Effect = (
    Send
    | StartFetch
    | NextFetch
    | LoadFolder
    | DiffChunk
    | StoreBatch
    | UpdateFlags
    | NewGeneration
    | SaveFolder
)


# plain data ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyncOptions:
    batch_messages: int = 200
    batch_bytes: int = 2 * 1024 * 1024
    pipeline_depth: int = 4
    condstore: bool = False
    literal_plus: bool = False
    # a folder's listing is read and compared with the archive in chunks of about this many
    # messages (mailsync.core.listing): memory stays flat whatever the folder's size
    listing_chunk: int = 1000
    # list in fixed UID ranges of listing_chunk (aioimaplib: no plain FETCH, no `1:*` over a
    # large folder, no CHANGEDSINCE delta)
    uid_step: bool = False


@dataclass(frozen=True)
class FolderJob:
    name: str
    raw_name: bytes
    relpath: str
    status: FolderState | None  # from STATUS; None when STATUS failed (EXAMINE will tell)
    before: FolderState | None = None  # recorded after the last complete sync


@dataclass(frozen=True)
class FolderResult:
    name: str
    new_messages: int = 0
    new_bytes: int = 0
    flag_updates: int = 0
    gone: int = 0
    new_generation: bool = False
    skipped: bool = False
    missing: tuple[int, ...] = field(default=())  # planned but not returned (expunged meanwhile)


# helpers ------------------------------------------------------------------------------------


def _pattern_re(pattern: str, delimiter: str | None) -> re.Pattern[str]:
    # IMAP LIST wildcards: * matches anything, % anything but the hierarchy delimiter
    pct = f"[^{re.escape(delimiter)}]*" if delimiter else ".*"
    body = "".join(".*" if ch == "*" else pct if ch == "%" else re.escape(ch) for ch in pattern)
    return re.compile(body + r"\Z", re.DOTALL)


def match_folder(
    name: str, delimiter: str | None, include: Sequence[str], exclude: Sequence[str]
) -> bool:
    def hit(patterns: Sequence[str]) -> bool:
        return any(_pattern_re(p, delimiter).match(name) for p in patterns)

    return hit(include) and not hit(exclude)


def code_int(resp: Response, code: str) -> int | None:
    """The number in a response code such as ``[UIDVALIDITY 123]``, else None."""
    if isinstance(resp, Untagged | Tagged) and resp.code is not None:
        parts = resp.code.split()
        if parts and parts[0].upper() == code:
            if resp.code_args:
                return int(str(resp.code_args[0]))
            if len(parts) > 1 and parts[1].isdigit():
                return int(parts[1])
    return None


def _check(result: CommandResult, what: str, folder: str | None = None) -> None:
    if result.ok:
        return
    where = f"{folder}: " if folder else ""
    raise ImapCommandError(f"{where}{what}", result.tagged.status, result.tagged.text)


# account-level flow -------------------------------------------------------------------------


def discover(
    capabilities: frozenset[str],
    include: Sequence[str],
    exclude: Sequence[str],
    before: Mapping[str, FolderState],
) -> Generator[Effect, object, tuple[list[FolderJob], list[str]]]:
    """LIST, then one pipelined STATUS for every folder -- or both in one command when the
    server offers LIST-STATUS (RFC 5819: one round trip less). Returns (jobs, folders gone from
    server).

    Jobs whose STATUS is unchanged since the last complete sync are returned with their status so
    the driver can count them as skipped without EXAMINE.
    """
    condstore = "CONDSTORE" in capabilities
    literal_plus = "LITERAL+" in capabilities
    list_status = "LIST-STATUS" in capabilities
    (listing,) = yield from _send(
        commands.list_status(condstore=condstore) if list_status else commands.list_all()
    )
    _check(listing, "LIST")
    folders: list[ListResp] = []
    listed: set[str] = set()
    for resp in listing.untagged:
        if not isinstance(resp, ListResp):
            continue
        listed.add(resp.name)
        if any(f.lower() in ("\\noselect", "\\nonexistent") for f in resp.flags):
            continue
        if match_folder(resp.name, resp.delimiter, include, exclude):
            folders.append(resp)
    results: tuple[CommandResult, ...] = (listing,)
    if not list_status:
        results = yield from _send(
            *(
                commands.status(f.raw_name, condstore=condstore, literal_plus=literal_plus)
                for f in folders
            )
        )
    statuses: dict[bytes, StatusResp] = {}
    for res in results:
        for resp in res.untagged:
            if isinstance(resp, StatusResp):
                statuses[resp.raw_name] = resp
    jobs = []
    for f in folders:
        st = statuses.get(f.raw_name)
        status = None
        if st is not None:
            status = FolderState(
                name=f.name,
                uidvalidity=st.items.get("UIDVALIDITY"),
                uidnext=st.items.get("UIDNEXT"),
                highestmodseq=st.items.get("HIGHESTMODSEQ"),
                messages=st.items.get("MESSAGES"),
            )
        rel = str(safe_relpath(f.name, f.delimiter))
        jobs.append(FolderJob(f.name, f.raw_name, rel, status, before.get(f.name)))
    # gone = not listed at all (a folder merely excluded by the patterns is not gone)
    gone = [name for name in before if name not in listed]
    return jobs, gone


def is_unchanged(job: FolderJob, before: Mapping[str, FolderState]) -> bool:
    return job.status is not None and not needs_sync(job.status, before.get(job.name))


def _send(*commands: Command) -> Generator[Effect, object, tuple[CommandResult, ...]]:
    results = yield Send(tuple(commands))
    assert isinstance(results, tuple)
    return results


# folder-level flow --------------------------------------------------------------------------


def _listing_commands(uidnext: int | None, opts: SyncOptions) -> list[Command]:
    """The whole listing as fixed UID ranges (``uid_step``) or one ``1:*``."""
    if not opts.uid_step:
        return [commands.uid_fetch_meta("1:*", modseq=opts.condstore)]
    ranges = listing.stepped_ranges(uidnext, opts.listing_chunk)
    return list(listing.range_commands(ranges, modseq=opts.condstore))


def _incremental_base(job: FolderJob, opts: SyncOptions) -> FolderState | None:
    """The last complete sync's STATUS when a CONDSTORE delta listing is safe, else None."""
    before, now = job.before, job.status
    if not opts.condstore or opts.uid_step or before is None or now is None:
        return None
    if before.uidvalidity is None or before.uidvalidity != now.uidvalidity:
        return None
    if before.highestmodseq is None or before.uidnext is None or before.messages is None:
        return None
    return before


def _check_listing(listing: Sequence[CommandResult], name: str, exists: int | None) -> None:
    for lres in listing:
        if exists == 0 and not lres.ok:
            continue  # some servers answer NO to UID FETCH on an empty folder
        _check(lres, "UID FETCH (listing)", name)


def _server_msgs(
    first: CommandResult | None, listing: Sequence[CommandResult], name: str, exists: int | None
) -> list[ServerMsg]:
    """The listing lines of answers already in hand (a small folder, a CONDSTORE delta)."""
    _check_listing(listing, name, exists)
    router = ChunkRouter([UidRange(1, None)])
    # listing lines may be credited to EXAMINE (the earliest command of the burst)
    for lres in (first, *listing) if first is not None else listing:
        router.add(lres.untagged)
    return router.take(0)


@dataclass
class _Tally:
    """What a folder's listing made of it so far (summed over its chunks); the body batches
    are cut across chunks as :func:`mailsync.core.commands.chunk_uids` would cut them."""

    max_count: int
    max_bytes: int
    batches: list[array[int]] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)  # each batch's bytes
    flag_updates: int = 0
    gone: int = 0
    _open: array[int] = field(default_factory=lambda: listing.compact(()))
    _open_bytes: int = 0

    def want(self, uid: int, size: int) -> None:
        cur = self._open
        if cur and (len(cur) >= self.max_count or self._open_bytes + size > self.max_bytes):
            self.batches.append(cur)
            self.sizes.append(self._open_bytes)
            self._open, self._open_bytes = listing.compact(()), 0
        self._open.append(uid)
        self._open_bytes += size

    def close(self) -> list[array[int]]:
        if self._open:
            self.batches.append(self._open)
            self.sizes.append(self._open_bytes)
            self._open, self._open_bytes = listing.compact(()), 0
        return self.batches


def _diff_chunk(
    name: str,
    job: FolderJob,
    uidvalidity: int,
    server: list[ServerMsg],
    span: UidRange,
    opts: SyncOptions,
    tally: _Tally,
    *,
    mark_gone: bool,
) -> Generator[Effect, object, None]:
    """Compare one chunk with the archive, re-flag what changed; its fetch batches go to
    ``tally`` (4 bytes per message to fetch: the chunk's lines are dropped after this)."""
    if not server and not mark_gone:
        return
    local = yield DiffChunk(name, uidvalidity, tuple(m.uid for m in server), span, mark_gone)
    assert isinstance(local, LocalChunk)
    plan = plan_folder(
        server,
        local.messages,
        uidvalidity_now=uidvalidity,
        uidvalidity_before=uidvalidity,  # generations are handled by the caller
        partial=True,  # what the chunk lacks was marked gone in the archive already
        batch_messages=opts.batch_messages,
        batch_bytes=opts.batch_bytes,
    )
    if plan.flag_updates:
        yield UpdateFlags(name, job.relpath, uidvalidity, plan.flag_updates)
    tally.flag_updates += len(plan.flag_updates)
    tally.gone += local.gone
    if plan.fetch:
        sizes = {m.uid: m.size for m in server}
        for batch in plan.fetch:
            for uid in batch:
                tally.want(uid, sizes[uid])


def _list_in_chunks(
    name: str,
    job: FolderJob,
    uidvalidity: int,
    exists: int | None,
    uidnext: int | None,
    opts: SyncOptions,
    tally: _Tally,
    bounds_answer: CommandResult | None = None,
) -> Generator[Effect, object, None]:
    """A full listing of a folder too big to hold: UID ranges of about ``listing_chunk``
    messages, listed in a sliding window, each compared with the archive when complete.
    ``bounds_answer``: the boundary FETCH's answer when it went with EXAMINE."""
    if opts.uid_step:
        ranges = listing.stepped_ranges(uidnext, opts.listing_chunk)
    else:
        ranges = [UidRange(1, None)]
        bres = bounds_answer
        if bres is None:
            bounds = listing.boundary_command(exists or 0, opts.listing_chunk)
            if bounds is not None:
                (bres,) = yield from _send(bounds)
        if bres is not None:
            # a server that refuses the message numbers (one expunged meanwhile, say) gets
            # fixed UID ranges: more commands when UIDs are sparse, the same bound on memory
            ranges = (
                listing.boundary_ranges(bres.untagged)
                if bres.ok
                else listing.stepped_ranges(uidnext, opts.listing_chunk)
            )
    cmds = listing.range_commands(ranges, modseq=opts.condstore)
    if len(cmds) > 1:
        yield StartFetch(cmds, max(1, opts.pipeline_depth))
    router = ChunkRouter(ranges)
    for k, span in enumerate(ranges):
        if len(cmds) > 1:
            lres = yield NextFetch()
        else:
            (lres,) = yield from _send(cmds[0])
        assert isinstance(lres, CommandResult)
        _check_listing([lres], name, exists)
        router.add(lres.untagged)
        yield from _diff_chunk(
            name, job, uidvalidity, router.take(k), span, opts, tally, mark_gone=True
        )


def sync_folder(job: FolderJob, opts: SyncOptions) -> Generator[Effect, object, FolderResult]:
    """EXAMINE, list and compare chunk by chunk, fetch in pipelined batches, store, record.
    Read-only on the server."""
    name = job.name
    since = _incremental_base(job, opts)
    known = job.status.messages if job.status is not None else None
    if since is not None:
        # CONDSTORE: only UIDs above the last UIDNEXT and what changed since the last MODSEQ
        listing_cmds: list[Command] = [
            commands.uid_fetch_meta(f"{since.uidnext}:*", modseq=True),
            commands.uid_fetch_meta("1:*", changedsince=since.highestmodseq),
        ]
    elif known is not None and known <= opts.listing_chunk:
        listing_cmds = _listing_commands(job.status.uidnext if job.status else None, opts)
    else:
        listing_cmds = []  # a big folder (or one STATUS did not describe): listed in chunks
    # a big folder's boundary FETCH (where its listing chunks start) goes with EXAMINE too,
    # cut at STATUS's count: a round trip less before its first body. Messages that arrived
    # since fall in the last, open range; a count that shrank makes the server refuse the
    # message numbers, and fixed UID ranges are used as when EXAMINE came first
    bounds = None
    if since is None and not listing_cmds and not opts.uid_step and known is not None:
        bounds = listing.boundary_command(known, opts.listing_chunk)
    # EXAMINE and a small folder's listing in one round trip: a failed EXAMINE leaves no mailbox
    # selected, so the listing then fails too instead of reading another folder
    res, *first_listing = yield from _send(
        commands.examine(job.raw_name, condstore=opts.condstore, literal_plus=opts.literal_plus),
        *listing_cmds,
        *((bounds,) if bounds is not None else ()),
    )
    if not res.ok:
        raise FolderGone(f"{name}: EXAMINE", res.tagged.status, res.tagged.text)
    bounds_answer = None
    if bounds is not None:
        (bres,) = first_listing
        first_listing = []
        # an answer line may be credited to EXAMINE (the earliest command of the burst)
        bounds_answer = CommandResult(
            bres.tagged,
            tuple(r for r in res.untagged if isinstance(r, FetchResp)) + tuple(bres.untagged),
        )
    uidvalidity = uidnext = modseq = exists = None
    for resp in (*res.untagged, res.tagged):
        uidvalidity = code_int(resp, "UIDVALIDITY") or uidvalidity
        uidnext = code_int(resp, "UIDNEXT") or uidnext
        modseq = code_int(resp, "HIGHESTMODSEQ") or modseq
        if isinstance(resp, Untagged) and resp.kind == "EXISTS":
            exists = resp.number
    if uidvalidity is None:
        raise ImapCommandError(f"{name}: EXAMINE", "OK", "no UIDVALIDITY in the answer")
    local = yield LoadFolder(name, job.relpath, uidvalidity)
    assert isinstance(local, LocalFolder)
    generation = local.generation
    new_generation = local.uidvalidity is not None and local.uidvalidity != uidvalidity
    if new_generation:
        assert local.uidvalidity is not None
        generation += 1
        # rows already stored under the new UIDVALIDITY (a run interrupted after the change)
        # stay valid: the chunks are compared with those only
        yield NewGeneration(name, local.uidvalidity, generation)
    tally = _Tally(max(1, opts.batch_messages), opts.batch_bytes)
    whole = UidRange(1, None)
    if since is not None:
        assert since.uidnext is not None and since.messages is not None
        delta = _server_msgs(res, first_listing, name, exists)
        new_count = len({m.uid for m in delta if m.uid >= since.uidnext})
        if not new_generation and exists == since.messages + new_count:
            # nothing was expunged: UIDs missing from the answer are unchanged
            yield from _diff_chunk(
                name, job, uidvalidity, delta, whole, opts, tally, mark_gone=False
            )
        elif exists is not None and exists <= opts.listing_chunk:
            full = yield from _send(*_listing_commands(uidnext, opts))
            server = _server_msgs(None, full, name, exists)
            yield from _diff_chunk(
                name, job, uidvalidity, server, whole, opts, tally, mark_gone=True
            )
        else:
            yield from _list_in_chunks(name, job, uidvalidity, exists, uidnext, opts, tally)
    elif listing_cmds and not opts.uid_step:
        server = _server_msgs(res, first_listing, name, exists)
        yield from _diff_chunk(name, job, uidvalidity, server, whole, opts, tally, mark_gone=True)
    elif listing_cmds:
        # fixed UID ranges, answered in the first round trip (a small folder): one chunk each
        ranges = listing.stepped_ranges(
            job.status.uidnext if job.status else None, opts.listing_chunk
        )
        _check_listing(first_listing, name, exists)
        router = ChunkRouter(ranges)
        router.add(res.untagged)
        for k, (span, lres) in enumerate(zip(ranges, first_listing, strict=True)):
            router.add(lres.untagged)
            yield from _diff_chunk(
                name, job, uidvalidity, router.take(k), span, opts, tally, mark_gone=True
            )
    else:
        yield from _list_in_chunks(
            name, job, uidvalidity, exists, uidnext, opts, tally, bounds_answer
        )
    new_messages = new_bytes = 0
    missing: list[int] = []
    batches = tally.close()
    if batches:
        # a sliding window: `pipeline_depth` body FETCHes stay in flight, the next one is sent
        # as soon as the oldest completes, so the link never idles between batches
        yield StartFetch(
            tuple(commands.uid_fetch_bodies(b) for b in batches),
            max(1, opts.pipeline_depth),
            uidvalidity,
            tuple(tally.sizes),
        )
    # servers may run pipelined FETCHes concurrently and interleave their answers (Dovecot
    # does): bodies are routed by UID. A body is credited to its own command or an earlier one,
    # so when batch k completes, all of batch k is in the pool.
    pool: dict[int, FetchResp] = {}
    while batches:
        count, size = yield from _store_next(
            name, job, uidvalidity, generation, batches.pop(0), pool, missing
        )
        new_messages += count
        new_bytes += size
    state = FolderState(
        name=name,
        uidvalidity=uidvalidity,
        uidnext=uidnext if job.status is None else job.status.uidnext or uidnext,
        highestmodseq=modseq if job.status is None else job.status.highestmodseq or modseq,
        messages=exists if job.status is None else job.status.messages,
    )
    if not missing:
        # only a complete sync may make the next run skip this folder
        yield SaveFolder(name, job.relpath, state, generation)
    return FolderResult(
        name=name,
        new_messages=new_messages,
        new_bytes=new_bytes,
        flag_updates=tally.flag_updates,
        gone=tally.gone,
        new_generation=new_generation,
        missing=tuple(missing),
    )


def _pool_bodies(fres: CommandResult, pool: dict[int, FetchResp]) -> None:
    # servers may run pipelined FETCHes concurrently and interleave their answers (Dovecot
    # does): bodies are routed by UID
    for resp in fres.untagged:
        if isinstance(resp, FetchResp) and resp.uid is not None and resp.body is not None:
            pool[resp.uid] = resp


def _store_next(
    name: str,
    job: FolderJob,
    uidvalidity: int,
    generation: int,
    batch: array[int],
    pool: dict[int, FetchResp],
    missing: list[int],
) -> Generator[Effect, object, tuple[int, int]]:
    """Read the next body FETCH's answer and store ``batch``'s messages: the messages and bytes
    stored. A function of its own so that nothing of this batch stays referenced while the flow
    waits for the next answer (a frame's locals live until it is left: one batch a folder, 8 MB
    of a 4-connection backup, held beyond the body budget)."""
    fres = yield NextFetch()
    assert isinstance(fres, CommandResult)
    _check(fres, "UID FETCH (bodies)", name)
    _pool_bodies(fres, pool)
    got = {uid: pool.pop(uid) for uid in batch if uid in pool}
    missing.extend(uid for uid in batch if uid not in got)
    msgs = tuple(got[uid] for uid in sorted(got))
    del fres, got  # while the write runs, the batch is held by the StoreBatch only
    if not msgs:
        return 0, 0
    size = sum(_body_size(m.body) for m in msgs)
    yield StoreBatch(name, job.relpath, uidvalidity, generation, msgs)
    return len(msgs), size


def _body_size(body: object) -> int:
    if isinstance(body, bytes | bytearray | memoryview):
        return len(body)
    size = getattr(body, "size", 0)
    return size if isinstance(size, int) else 0
