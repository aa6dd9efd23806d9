"""The archive's own SQLite files (state, restore table): opened private and in WAL mode, and
written in one transaction per batch, the same way everywhere."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

from foundation.errors import StorageError
from mailsync.layout import private_dirs, private_file

__all__ = ["open_private_db", "write_batch"]


def open_private_db(
    path: Path,
    schema: str,
    *,
    what: str,
    synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
    timeout: float = 5.0,
    busy_ms: int = 10_000,
) -> sqlite3.Connection:
    """``path`` (0600 before SQLite creates it; -wal and -shm take its mode) with ``schema``;
    StorageError naming ``what`` when it cannot be opened."""
    try:
        private_dirs(path.parent)
        private_file(path)
        db = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous}")
        db.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
        db.executescript(schema)
    except (sqlite3.Error, OSError) as exc:
        raise StorageError(f"{path}: cannot open {what}: {exc}") from exc
    return db


def write_batch(
    db: sqlite3.Connection, sql: str, rows: Iterable[Sequence[object]], failure: str
) -> None:
    """``sql`` over ``rows`` in one IMMEDIATE transaction; rolled back and StorageError(``failure``:
    cause) on failure."""
    try:
        db.execute("BEGIN IMMEDIATE")
        db.executemany(sql, rows)
        db.execute("COMMIT")
    except sqlite3.Error as exc:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise StorageError(f"{failure}: {exc}") from exc
