"""What every mailsync driver makes of the effects of :mod:`mailsync.core.flow`, I/O aside.

The asyncio engine (:mod:`drivers.mail_asyncio_folder`) and the blocking driver
(:mod:`drivers.mail_blocking`, behind the threads, gevent, sequential and processes modes) perform
the same archive effects; only the I/O differs (awaiting the archive's writer thread, or taking a
lock). The data shaping around that I/O -- the items a batch is stored as, the files each
message is parsed from, the folder record a SaveFolder writes, the header and index rows -- lives
here once, so that every mode leaves the same Maildirs, state rows and index. No asyncio here:
the gevent mode imports it.

A StoreBatch is performed in steps, each driver putting its own I/O between them:
:func:`store_items` (no I/O), :func:`store_batch` (on the archive: the files, then their state
rows with the header fields the store read from the bodies as it wrote them), and when the
backup indexes, parsing each stored file for its search index document
(:func:`mailsync.indexer.parse_doc` on :func:`stored_paths`: inline, or in a process pool) and
:func:`index_entries` (written by the archive's index writer, beside the archive writer, see
:mod:`mailsync.search_index`). Every other
archive effect is one operation: :func:`archive_call`, then :func:`archive_answer`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import cast

from foundation.errors import ImapProtocolError, MailError
from mailsync.core import flow
from mailsync.core.mime import IndexDoc
from mailsync.core.parser import FetchResp, parse_internaldate
from mailsync.core.plan import LocalMsg, normalize_flags
from mailsync.indexer import failed
from mailsync.search_index import IndexEntry
from mailsync.state import FolderRecord, MessageRow
from mailsync.store import AccountArchive, SpilledLiteral, StoredMessage, StoreItem

__all__ = [
    "ARCHIVE_EFFECTS",
    "ArchiveEffect",
    "StoreItem",
    "archive_answer",
    "archive_call",
    "doc_or_failed",
    "folder_record",
    "index_entries",
    "item_dates",
    "store_batch",
    "store_items",
    "stored_paths",
]


def _mtime(internaldate: str | None) -> float | None:
    if not internaldate:
        return None
    try:
        return parse_internaldate(internaldate).timestamp()
    except (MailError, ValueError, OverflowError):
        return None  # a server's malformed date must not stop the folder: keep the file's time


def _body(msg: FetchResp) -> bytes | SpilledLiteral:
    body = msg.body
    if isinstance(body, SpilledLiteral | bytes):
        return body
    if isinstance(body, bytearray | memoryview):
        return bytes(body)
    raise ImapProtocolError(f"UID {msg.uid}: unexpected body type {type(body).__name__}")


def store_items(messages: Iterable[FetchResp]) -> list[StoreItem]:
    """A StoreBatch's messages as store items."""
    items: list[StoreItem] = []
    for msg in messages:
        body = _body(msg)
        assert msg.uid is not None
        items.append(
            (
                msg.uid,
                normalize_flags(msg.flags or ()),
                _mtime(msg.internaldate),
                body,
                msg.internaldate,
            )
        )
    return items


def store_batch(
    arch: AccountArchive, effect: flow.StoreBatch, items: list[StoreItem]
) -> list[StoredMessage]:
    """Write a StoreBatch's ``items`` (from :func:`store_items`) durably, then their state rows;
    runs on the archive (its writer thread, or under the driver's lock)."""
    return arch.store_batch(
        effect.name, effect.relpath, effect.uidvalidity, effect.generation, items
    )


def stored_paths(root: Path, stored: Sequence[StoredMessage]) -> list[str]:
    """The absolute file path of each ``stored`` message: what the parser gets."""
    return [str(root / s.path) for s in stored]


def item_dates(items: Sequence[StoreItem]) -> dict[int, float | None]:
    """uid -> INTERNALDATE timestamp: the index's date of a message without a usable Date."""
    return {uid: mtime for uid, _, mtime, _, _ in items}


def doc_or_failed(outcome: object) -> IndexDoc:
    """A pool outcome as an index document (an exception: a message indexed as unreadable)."""
    if isinstance(outcome, IndexDoc):
        return outcome
    return failed(f"parser failed: {outcome!r}")


def index_entries(
    folder: str,
    uidvalidity: int,
    stored: Sequence[StoredMessage],
    docs: Sequence[IndexDoc],
    dates: Mapping[int, float | None],
) -> list[IndexEntry]:
    """The search index rows of ``stored`` messages (``docs`` in their order);
    :meth:`AccountArchive.add_to_index` writes them, beside the archive's writer."""
    return [
        IndexEntry(folder, uidvalidity, s.uid, s.size, dates.get(s.uid), doc)
        for s, doc in zip(stored, docs, strict=True)
    ]


# the effects that are one archive operation each, performed the same way in every mode (the
# asyncio driver first waits for the folder's writes in flight before a SaveFolder)
ArchiveEffect = (
    flow.LoadFolder | flow.DiffChunk | flow.UpdateFlags | flow.NewGeneration | flow.SaveFolder
)
ARCHIVE_EFFECTS = (
    flow.LoadFolder,
    flow.DiffChunk,
    flow.UpdateFlags,
    flow.NewGeneration,
    flow.SaveFolder,
)


def archive_call(
    arch: AccountArchive, effect: ArchiveEffect
) -> tuple[Callable[..., object], tuple[object, ...]]:
    """The archive operation that performs ``effect`` and its arguments; each driver runs it its
    own way (the writer thread, or under a lock) and hands the outcome to :func:`archive_answer`."""
    if isinstance(effect, flow.LoadFolder):
        return arch.load_folder, (effect.name, effect.relpath, effect.uidvalidity)
    if isinstance(effect, flow.DiffChunk):
        span = effect.span
        return arch.state.diff_chunk, (
            effect.name,
            effect.uidvalidity,
            effect.uids,
            span.lo,
            span.hi,
            effect.mark_gone,
        )
    if isinstance(effect, flow.UpdateFlags):
        return arch.update_flags, (effect.name, effect.relpath, effect.uidvalidity, effect.changes)
    if isinstance(effect, flow.SaveFolder):
        # every batch of the folder is durable, its headers indexed: record its STATUS
        return arch.state.save_folder, (folder_record(effect), time.time())
    return arch.state.mark_generation_gone, (effect.name, effect.old_uidvalidity)


def archive_answer(effect: ArchiveEffect, outcome: object) -> object:
    """What the flow receives for ``effect`` once :func:`archive_call`'s operation returned."""
    if isinstance(effect, flow.LoadFolder):
        record = cast(FolderRecord | None, outcome)
        return flow.LocalFolder(
            uidvalidity=record.uidvalidity if record else None,
            generation=record.generation if record else 0,
        )
    if isinstance(effect, flow.DiffChunk):
        rows, gone = cast(tuple[Sequence[MessageRow], int], outcome)
        return flow.LocalChunk(
            {
                r.uid: LocalMsg(r.uid, r.size, r.flags, r.sha256, r.path, r.deleted_on_server)
                for r in rows
            },
            gone,
        )
    return None


def folder_record(effect: flow.SaveFolder) -> FolderRecord:
    """The state row a SaveFolder effect writes."""
    st = effect.state
    return FolderRecord(
        st.name,
        effect.relpath,
        st.uidvalidity,
        effect.generation,
        st.uidnext,
        st.highestmodseq,
        st.messages,
    )
