"""What every mailsync driver makes of the effects of :mod:`mailsync.core.flow`, I/O aside.

The asyncio engine (:mod:`drivers.mail_asyncio_folder`) and the blocking driver
(:mod:`drivers.mail_blocking`, behind the threads, gevent, sequential and processes modes) perform
the same archive effects; only the I/O differs (awaiting the archive's writer thread, or taking a
lock). The data shaping around that I/O -- the items a batch is stored as, the header block each
message is parsed from, the folder record a SaveFolder writes, the header rows -- lives here once,
so that every mode leaves the same Maildirs and state rows. No asyncio here: the gevent mode
imports it.

A StoreBatch is performed in steps, each driver putting its own I/O between them:
:func:`store_items` (no I/O), :func:`store_batch` (on the archive), :func:`header_blocks` (reads
back spilled bodies only), parsing the blocks (inline, or in a process pool),
:func:`save_headers` (on the archive). Every other archive effect is one operation:
:func:`archive_call`, then :func:`archive_answer`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import cast

from foundation.errors import ImapProtocolError, MailError
from mailsync.core import flow
from mailsync.core.headers import HeaderInfo
from mailsync.core.parser import FetchResp, parse_internaldate
from mailsync.core.plan import LocalMsg, normalize_flags
from mailsync.state import FolderRecord, MessageRow
from mailsync.store import AccountArchive, SpilledLiteral, StoredMessage

__all__ = [
    "ARCHIVE_EFFECTS",
    "HEADER_CAP",
    "ArchiveEffect",
    "HeaderRow",
    "StoreItem",
    "archive_answer",
    "archive_call",
    "folder_record",
    "header_block",
    "header_blocks",
    "header_rows",
    "heads_in_memory",
    "read_head",
    "save_headers",
    "store_batch",
    "store_items",
]

HEADER_CAP = 256 * 1024  # bytes of a message searched for the end of its header block

# (uid, flags, mtime, body, internaldate): one message as AccountArchive.store_batch takes it
StoreItem = tuple[int, tuple[str, ...], float | None, bytes | SpilledLiteral, str | None]
# (folder, uidvalidity, uid, message_id, from, to, subject, date, error): StateDB.set_headers
HeaderRow = tuple[
    str, int, int, str | None, str | None, str | None, str | None, str | None, str | None
]


def header_block(body: bytes) -> bytes:
    """The head of ``body`` the header parser gets: up to the first empty line, at most the cap."""
    end = body.find(b"\r\n\r\n", 0, HEADER_CAP)
    if end < 0:
        end = body.find(b"\n\n", 0, HEADER_CAP)
    return body[: end + 4] if end >= 0 else body[:HEADER_CAP]


def read_head(path: Path) -> bytes:
    """The header block of a stored message file (a spilled body is not held in memory)."""
    with open(path, "rb") as fh:
        return header_block(fh.read(HEADER_CAP))


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


def store_items(messages: Iterable[FetchResp]) -> tuple[list[StoreItem], dict[int, bytes]]:
    """A StoreBatch's messages as store items, plus the header blocks of the in-memory bodies
    (spilled ones are read back with :func:`read_head` once stored)."""
    items: list[StoreItem] = []
    heads: dict[int, bytes] = {}
    for msg in messages:
        body = _body(msg)
        assert msg.uid is not None
        if isinstance(body, bytes):
            heads[msg.uid] = header_block(body)
        items.append(
            (
                msg.uid,
                normalize_flags(msg.flags or ()),
                _mtime(msg.internaldate),
                body,
                msg.internaldate,
            )
        )
    return items, heads


def store_batch(
    arch: AccountArchive, effect: flow.StoreBatch, items: list[StoreItem]
) -> list[StoredMessage]:
    """Write a StoreBatch's ``items`` (from :func:`store_items`) durably, then their state rows;
    runs on the archive (its writer thread, or under the driver's lock)."""
    return arch.store_batch(
        effect.name, effect.relpath, effect.uidvalidity, effect.generation, items
    )


def heads_in_memory(stored: Sequence[StoredMessage], heads: Mapping[int, bytes]) -> bool:
    """True when every stored message's header block is in ``heads`` (none was spilled):
    :func:`header_blocks` then reads no file."""
    return all(s.uid in heads for s in stored)


def header_blocks(
    root: Path, stored: Sequence[StoredMessage], heads: Mapping[int, bytes]
) -> list[bytes]:
    """The header block of each ``stored`` message, in order: from ``heads`` (the in-memory
    bodies, :func:`store_items`), else read back from the stored file under ``root``."""
    return [heads[s.uid] if s.uid in heads else read_head(root / s.path) for s in stored]


def save_headers(
    arch: AccountArchive,
    folder: str,
    uidvalidity: int,
    stored: Sequence[StoredMessage],
    infos: Sequence[HeaderInfo],
) -> None:
    """Index the parsed headers (``infos``, in the order of ``stored``); runs on the archive."""
    arch.state.set_headers(header_rows(folder, uidvalidity, stored, infos))


# the effects that are one archive operation each, performed the same way in every mode (the
# asyncio driver first waits for the folder's writes in flight before a SaveFolder)
ArchiveEffect = (
    flow.LoadFolder | flow.UpdateFlags | flow.MarkGone | flow.NewGeneration | flow.SaveFolder
)
ARCHIVE_EFFECTS = (
    flow.LoadFolder,
    flow.UpdateFlags,
    flow.MarkGone,
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
    if isinstance(effect, flow.UpdateFlags):
        return arch.update_flags, (effect.name, effect.relpath, effect.uidvalidity, effect.changes)
    if isinstance(effect, flow.MarkGone):
        return arch.state.mark_deleted, (effect.name, effect.uidvalidity, effect.uids)
    if isinstance(effect, flow.SaveFolder):
        # every batch of the folder is durable, its headers indexed: record its STATUS
        return arch.state.save_folder, (folder_record(effect), time.time())
    return arch.state.mark_generation_gone, (effect.name, effect.old_uidvalidity)


def archive_answer(effect: ArchiveEffect, outcome: object) -> object:
    """What the flow receives for ``effect`` once :func:`archive_call`'s operation returned."""
    if isinstance(effect, flow.LoadFolder):
        record, rows = cast(tuple[FolderRecord | None, Mapping[int, MessageRow]], outcome)
        return _local_folder(record, rows)
    return None


def _local_folder(record: FolderRecord | None, rows: Mapping[int, MessageRow]) -> flow.LocalFolder:
    return flow.LocalFolder(
        uidvalidity=record.uidvalidity if record else None,
        generation=record.generation if record else 0,
        messages={
            uid: LocalMsg(uid, r.size, r.flags, r.sha256, r.path, r.deleted_on_server)
            for uid, r in rows.items()
        },
    )


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


def header_rows(
    folder: str, uidvalidity: int, stored: Sequence[StoredMessage], infos: Sequence[HeaderInfo]
) -> list[HeaderRow]:
    """The header index rows of ``stored`` messages, parsed as ``infos`` (same order)."""
    return [
        (folder, uidvalidity, s.uid, h.message_id, h.from_, h.to, h.subject, h.date, h.error)
        for s, h in zip(stored, infos, strict=True)
    ]
