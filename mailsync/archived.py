"""Reading an account archive for export and restore: its message rows, chosen by a selection.

Readers take the archive's shared lock (a backup, which takes it exclusively, cannot run at the
same time; other readers can) and read ``state.sqlite`` directly: the rows name each message's
file, SHA-256, flags, INTERNALDATE and Message-ID.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import cast

from foundation.errors import ImapProtocolError, StorageError, UsageError
from mailsync.core.parser import parse_internaldate
from mailsync.core.selection import Selection, parse_query
from mailsync.layout import ArchiveLock, existing_state

__all__ = [
    "ArchiveReader",
    "ArchivedMessage",
    "open_reader",
    "query_needs_index",
    "select_messages",
]


@dataclass(frozen=True)
class ArchivedMessage:
    folder: str
    uidvalidity: int
    uid: int
    size: int
    sha256: str
    flags: tuple[str, ...]
    internaldate: str | None
    message_id: str | None
    from_addr: str | None
    path: str  # relative to the archive root
    deleted_on_server: bool

    @property
    def when(self) -> datetime | None:
        if not self.internaldate:
            return None
        try:
            return parse_internaldate(self.internaldate)
        except ImapProtocolError:
            return None


class ArchiveReader:
    """Rows of one archive's state DB (open it with :func:`open_reader`)."""

    def __init__(self, root: Path, db: sqlite3.Connection) -> None:
        self.root = root
        self._db = db

    def relpaths(self) -> dict[str, str]:
        """Folder name -> its Maildir path under the archive root."""
        return {n: p for n, p in self._db.execute("SELECT name, relpath FROM folders")}

    def folders(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT DISTINCT folder FROM messages ORDER BY 1")]

    def messages(
        self, selection: Selection, *, include_deleted: bool = False, folder: str | None = None
    ) -> Iterator[ArchivedMessage]:
        """The selected rows, by folder, generation and UID (streamed, not all in memory)."""
        sql = (
            "SELECT folder, uidvalidity, uid, size, sha256, flags, internaldate, message_id,"
            " from_addr, path, deleted_on_server FROM messages WHERE size >= 0"
        )
        args: list[object] = []
        if not include_deleted:
            sql += " AND deleted_on_server = 0"
        if folder is not None:
            sql += " AND folder = ?"
            args.append(folder)
        sql += " ORDER BY folder, generation, uidvalidity, uid"
        for r in self._db.execute(sql, args):
            if not selection.folder_ok(r[0]) or not selection.key_ok(r[0], r[1], r[2]):
                continue
            msg = ArchivedMessage(
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                tuple(r[5].split()) if r[5] else (),
                r[6],
                r[7],
                r[8],
                r[9],
                bool(r[10]),
            )
            if selection.date_ok(msg.when):
                yield msg


def query_needs_index(query: str | None) -> bool:
    """True when ``query`` is answered by the search index (not absent, not ``folder:`` and
    ``date:`` alone); a malformed one too (the index's parser then names the problem)."""
    if query is None:
        return False
    try:
        parse_query(query)
    except UsageError:
        return True
    return False


def select_messages(root: Path, query: str | None) -> Selection:
    """``--query`` of export and restore: ``folder:``/``date:`` alone are read without the
    index; any other query is the search language, answered by the archive's search index
    (``mailsync search`` selects the same messages). UsageError for a bad query, StorageError
    when the query needs an index the archive does not have yet."""
    if query is None:
        return Selection()
    try:
        return parse_query(query)
    except UsageError:
        pass  # not folder:/date: alone: the search language
    from mailsync.search_index import SearchIndex  # only a search query needs it

    idx = SearchIndex(root, readonly=True)
    try:
        where, params = idx.select(query, root.name)
        sql = f"SELECT d.folder, d.uidvalidity, d.uid {where}"
        keys = frozenset(cast(tuple[str, int, int], row) for row in idx.rows(sql, params))
    finally:
        idx.close()
    return Selection(keys=keys)


@contextmanager
def open_reader(root: Path) -> Iterator[ArchiveReader]:
    """The archive at ``root`` under its shared lock; StorageError when there is none."""
    path = existing_state(root)
    if path is None:
        raise StorageError(f"{root}: no mailsync archive here (run mailsync backup first)")
    with ArchiveLock(root, shared=True):
        try:
            db = sqlite3.connect(path, isolation_level=None)
            db.execute("PRAGMA busy_timeout=10000")
        except sqlite3.Error as exc:
            raise StorageError(f"{path}: cannot open state DB: {exc}") from exc
        try:
            yield ArchiveReader(root, db)
        except sqlite3.Error as exc:
            raise StorageError(f"{path}: cannot read state DB: {exc}") from exc
        finally:
            db.close()
