"""Load a corpus into the test-bed Dovecot, and change mail for tests (append, delete, recreate).

Loading uses MULTIAPPEND with LITERAL+ literals: one command carries a batch of messages and no
round trip waits for "+ go ahead", one connection per folder, a few folders at once. The UIDs come
back in APPENDUID (UIDPLUS), so the truth gets its UID and UIDVALIDITY without a second pass.

This is a small blocking client for the test bed only (one command at a time, loopback, no TLS):
mailsync has its own transports.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType

from imapclient import imap_utf7

from foundation.errors import TestbedError
from testbed.corpus import Corpus, TruthRecord
from testbed.dovecot import DovecotServer
from testbed.mailgen import build_message

__all__ = [
    "AppendMessage",
    "FolderStatus",
    "ImapSession",
    "append_messages",
    "create_folder",
    "delete_folder",
    "delete_messages",
    "folder_status",
    "imap_date",
    "load_corpus",
    "quote",
    "recreate_folder",
    "set_flags",
]

_BATCH_MESSAGES = 500
_BATCH_BYTES = 16 * 1024 * 1024
_LOAD_CONNECTIONS = 3
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")
_APPENDUID = re.compile(rb"\[APPENDUID (\d+) ([\d:,]+)\]")


@dataclass(frozen=True, slots=True)
class AppendMessage:
    """One message to APPEND, with optional flags and INTERNALDATE (aware datetime)."""

    data: bytes
    flags: tuple[str, ...] = ()
    internaldate: datetime | None = None


@dataclass(frozen=True, slots=True)
class FolderStatus:
    uidvalidity: int
    uidnext: int
    messages: int
    highestmodseq: int


def quote(folder: str) -> bytes:
    """A decoded folder name as an IMAP quoted string of its modified UTF-7 form."""
    encoded = imap_utf7.encode(folder)
    assert isinstance(encoded, bytes)
    return b'"' + encoded.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def imap_date(moment: datetime) -> bytes:
    """INTERNALDATE syntax ("02-Jan-2024 10:00:00 +0100"), month names never localised."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    offset = moment.utcoffset()
    minutes = int(offset.total_seconds()) // 60 if offset is not None else 0
    sign = "+" if minutes >= 0 else "-"
    hh, mm = divmod(abs(minutes), 60)
    text = (
        f'"{moment.day:02d}-{_MONTHS[moment.month - 1]}-{moment.year:04d} '
        f'{moment:%H:%M:%S} {sign}{hh:02d}{mm:02d}"'
    )
    return text.encode("ascii")


def _uid_set(text: bytes) -> list[int]:
    uids: list[int] = []
    for part in text.split(b","):
        first, _, last = part.partition(b":")
        uids += range(int(first), int(last or first) + 1)
    return uids


class ImapSession:
    """A logged-in plain-IMAP connection: ``command`` sends one command and collects replies."""

    def __init__(self, server: DovecotServer, user: str, *, timeout: float = 120.0) -> None:
        try:
            self._sock = socket.create_connection((server.host, server.port), timeout=timeout)
        except OSError as exc:
            raise TestbedError(
                f"cannot reach dovecot at {server.host}:{server.port}: {exc}"
            ) from exc
        self._file = self._sock.makefile("rb")
        self._tag = 0
        self._out = bytearray()
        try:
            self._read_line()  # greeting
            password = server.users[user]
            self.command(b"LOGIN " + _astring(user) + b" " + _astring(password))
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> ImapSession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        try:
            if self._tag:
                self._sock.sendall(b"Z LOGOUT\r\n")
        except OSError:
            pass
        finally:
            self._file.close()
            self._sock.close()

    def _read_line(self) -> bytes:
        """One response line with any literals it carries inlined."""
        line = self._file.readline()
        if not line.endswith(b"\r\n"):
            raise TestbedError(f"dovecot closed the connection (last bytes {line[-200:]!r})")
        while match := _LITERAL.search(line):
            line += self._file.read(int(match.group(1))) + self._file.readline()
        return line

    def _put(self, data: bytes) -> None:
        # small pieces are coalesced; large literals go out as they are
        self._out += data
        if len(self._out) >= 256 * 1024:
            self._flush()

    def _flush(self) -> None:
        self._sock.sendall(self._out)
        self._out.clear()

    def command(self, line: bytes, *chunks: bytes) -> tuple[list[bytes], bytes]:
        """Send ``tag line`` (plus raw ``chunks``, e.g. LITERAL+ literals) and CRLF.

        Returns (untagged lines, tagged OK line); NO / BAD raise TestbedError.
        """
        self._tag += 1
        tag = b"T%d" % self._tag
        try:
            self._put(tag + b" " + line)
            for chunk in chunks:
                self._put(chunk)
            self._put(b"\r\n")
            self._flush()
            return self._replies(tag, line)
        except OSError as exc:  # reset, timeout: the test bed's own error
            raise TestbedError(f"IMAP connection to dovecot failed: {exc}") from exc

    def _replies(self, tag: bytes, line: bytes) -> tuple[list[bytes], bytes]:
        untagged: list[bytes] = []
        while True:
            reply = self._read_line()
            if reply.startswith(tag + b" "):
                status = reply[len(tag) + 1 :]
                if not status.startswith(b"OK"):
                    shown = line[:120].decode("utf-8", "replace")
                    raise TestbedError(
                        f"dovecot refused {shown!r}: {status.decode(errors='replace').strip()}"
                    )
                return untagged, status
            untagged.append(reply)

    def select(self, folder: str) -> FolderStatus:
        untagged, _ = self.command(b"SELECT " + quote(folder) + b" (CONDSTORE)")
        return _status_of(untagged)

    def append_batch(self, folder: str, batch: Sequence[AppendMessage]) -> tuple[int, list[int]]:
        """MULTIAPPEND ``batch``; returns (UIDVALIDITY, UIDs in order)."""
        chunks: list[bytes] = []
        for message in batch:
            flags = b"(" + " ".join(message.flags).encode("utf-8") + b")"
            date = b" " + imap_date(message.internaldate) if message.internaldate else b""
            chunks += [b" " + flags + date + b" {%d+}\r\n" % len(message.data), message.data]
        _, status = self.command(b"APPEND " + quote(folder), *chunks)
        match = _APPENDUID.search(status)
        if match is None:
            raise TestbedError(f"no APPENDUID in {status!r}")
        uids = _uid_set(match.group(2))
        if len(uids) != len(batch):
            raise TestbedError(f"APPENDUID lists {len(uids)} UIDs for {len(batch)} messages")
        return int(match.group(1)), uids


def _astring(text: str) -> bytes:
    return b'"' + text.encode("utf-8").replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def _status_of(untagged: list[bytes]) -> FolderStatus:
    found: dict[str, int] = {}
    for line in untagged:
        for key in ("UIDVALIDITY", "UIDNEXT", "HIGHESTMODSEQ", "MESSAGES"):
            match = re.search(rb"\b" + key.encode() + rb" (\d+)", line)
            if match:
                found[key] = int(match.group(1))
        match = re.match(rb"\* (\d+) EXISTS", line)
        if match:
            found["MESSAGES"] = int(match.group(1))
    return FolderStatus(
        uidvalidity=found.get("UIDVALIDITY", 0),
        uidnext=found.get("UIDNEXT", 0),
        messages=found.get("MESSAGES", 0),
        highestmodseq=found.get("HIGHESTMODSEQ", 0),
    )


def _batches(items: Iterable[AppendMessage]) -> Iterator[list[AppendMessage]]:
    batch: list[AppendMessage] = []
    size = 0
    for item in items:
        batch.append(item)
        size += len(item.data)
        if len(batch) >= _BATCH_MESSAGES or size >= _BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _ensure_folder(session: ImapSession, folder: str) -> None:
    if folder.upper() == "INBOX":
        return
    try:
        session.command(b"CREATE " + quote(folder))
    except TestbedError as exc:
        if "ALREADYEXISTS" not in str(exc):
            raise


def append_messages(
    server: DovecotServer,
    user: str,
    folder: str,
    messages: Iterable[bytes | AppendMessage],
) -> list[int]:
    """APPEND to ``folder`` (created if missing) in batches; returns the new UIDs in order."""
    items = (m if isinstance(m, AppendMessage) else AppendMessage(m) for m in messages)
    uids: list[int] = []
    with ImapSession(server, user) as session:
        _ensure_folder(session, folder)
        for batch in _batches(items):
            uids += session.append_batch(folder, batch)[1]
    return uids


def _load_folder(
    server: DovecotServer, user: str, corpus: Corpus, folder: str
) -> list[TruthRecord]:
    plans = corpus.in_folder(folder)
    records: list[TruthRecord] = []
    with ImapSession(server, user) as session:
        _ensure_folder(session, folder)
        pending: list[TruthRecord] = []
        items: list[AppendMessage] = []
        size = 0
        for n, plan in enumerate(plans, 1):
            built = build_message(corpus.seed, plan)
            pending.append(corpus.truth_of(plan, built))
            items.append(AppendMessage(built.raw, plan.flags, plan.internaldate))
            size += len(built.raw)
            if len(items) >= _BATCH_MESSAGES or size >= _BATCH_BYTES or n == len(plans):
                validity, uids = session.append_batch(folder, items)
                records += [r.with_uid(u, validity) for r, u in zip(pending, uids, strict=True)]
                pending, items, size = [], [], 0
    return records


def load_corpus(
    server: DovecotServer, user: str, corpus: Corpus, *, connections: int = _LOAD_CONNECTIONS
) -> list[TruthRecord]:
    """Create every corpus folder and APPEND its messages; returns the truth with UIDs, by index.

    Parents of nested folders are created first, so "Работа/Отчёты" never races "Работа".
    """
    folders = sorted(corpus.folders, key=lambda name: name.count("/"))
    with ImapSession(server, user) as session:
        for folder in folders:
            _ensure_folder(session, folder)
    with ThreadPoolExecutor(max_workers=max(1, connections)) as pool:
        parts = list(pool.map(lambda f: _load_folder(server, user, corpus, f), folders))
    return sorted((r for part in parts for r in part), key=lambda r: r.index)


def create_folder(server: DovecotServer, user: str, folder: str) -> int:
    """CREATE ``folder`` (no error if it exists); returns its UIDVALIDITY."""
    with ImapSession(server, user) as session:
        _ensure_folder(session, folder)
        return session.select(folder).uidvalidity


def folder_status(server: DovecotServer, user: str, folder: str) -> FolderStatus:
    with ImapSession(server, user) as session:
        return session.select(folder)


def delete_messages(server: DovecotServer, user: str, folder: str, uids: Iterable[int]) -> None:
    """Mark ``uids`` \\Deleted and UID EXPUNGE just those (other \\Deleted mail stays)."""
    wanted = b",".join(b"%d" % uid for uid in uids)
    if not wanted:
        return
    with ImapSession(server, user) as session:
        session.select(folder)
        session.command(b"UID STORE " + wanted + b" +FLAGS.SILENT (\\Deleted)")
        session.command(b"UID EXPUNGE " + wanted)


def set_flags(
    server: DovecotServer,
    user: str,
    folder: str,
    uids: Iterable[int],
    flags: Sequence[str],
    *,
    mode: str = "replace",
) -> None:
    """Replace (``mode="replace"``), add ("add") or remove ("remove") flags on ``uids``."""
    op = {"replace": b"FLAGS.SILENT", "add": b"+FLAGS.SILENT", "remove": b"-FLAGS.SILENT"}[mode]
    wanted = b",".join(b"%d" % uid for uid in uids)
    if not wanted:
        return
    with ImapSession(server, user) as session:
        session.select(folder)
        names = " ".join(flags).encode("utf-8")
        session.command(b"UID STORE " + wanted + b" " + op + b" (" + names + b")")


def delete_folder(server: DovecotServer, user: str, folder: str) -> None:
    with ImapSession(server, user) as session:
        session.command(b"DELETE " + quote(folder))


def recreate_folder(server: DovecotServer, user: str, folder: str) -> int:
    """DELETE and CREATE ``folder`` (now empty); returns the new, different UIDVALIDITY."""
    with ImapSession(server, user) as session:
        old = session.select(folder).uidvalidity
        session.command(b"UNSELECT")
        session.command(b"DELETE " + quote(folder))
        session.command(b"CREATE " + quote(folder))
        new = session.select(folder).uidvalidity
    if new == old:
        raise TestbedError(f"UIDVALIDITY of {folder!r} did not change on re-create ({new})")
    return new
