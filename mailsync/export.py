"""``mailsync export``: an archive's messages as mboxrd files (one per folder) or .eml files.

- mbox: ``<out>/<folder path>.mbox``, the folder path being the archive's own safe Maildir path
  (``Archive/2023.mbox``); messages in UID order, each an mboxrd entry
  (:mod:`mailsync.core.mboxrd`) with the sender's address and the INTERNALDATE in its ``From ``
  line. A file is written under a temporary name and renamed when complete.
- eml: ``<out>/<folder path>/<uidvalidity>-<uid>.eml``, the archived bytes exactly, the file's
  mtime set to the INTERNALDATE (names made of numbers only: safe on any file system).

Export files get the user's umask (an export is made to be read elsewhere; the archive itself
stays private).

Both write ``<out>/manifest.jsonl``: one line per message with its folder, file (and byte offset
and length in an mbox), SHA-256, size, flags and INTERNALDATE -- the flags have no place in the
message bytes, and the manifest lets anyone check the export.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal

from foundation.errors import StorageError
from mailsync.archived import ArchivedMessage, ArchiveReader, open_reader
from mailsync.core import mboxrd
from mailsync.core.selection import Selection

__all__ = ["ExportFormat", "ExportReport", "export_archive"]

ExportFormat = Literal["mbox", "eml"]
_BUFFER = 1024 * 1024


@dataclass
class ExportReport:
    account: str
    messages: int = 0
    bytes: int = 0  # message bytes exported (mbox framing and quoting not counted)
    files: int = 0
    seconds: float = 0.0
    inexact: list[str] = field(default_factory=list)  # mbox: messages that got a final LF
    errors: list[str] = field(default_factory=list)


def _read(root: Path, msg: ArchivedMessage) -> bytes:
    with open(root / msg.path, "rb") as fh:
        return fh.read()


def _safe_target(out: Path, relpath: str, suffix: str) -> Path:
    target = out / (relpath + suffix)
    # the archive's relpaths are made safe by mailsync.core.names; this guards a damaged state
    if ".." in Path(relpath).parts or Path(relpath).is_absolute():
        raise StorageError(f"refusing to export to {target}: not under {out}")
    return target


def _manifest_line(msg: ArchivedMessage, file: str, **extra: int) -> bytes:
    row: dict[str, object] = {
        "folder": msg.folder,
        "uidvalidity": msg.uidvalidity,
        "uid": msg.uid,
        "file": file,
        **extra,
        "size": msg.size,
        "sha256": msg.sha256,
        "flags": list(msg.flags),
        "internaldate": msg.internaldate,
    }
    return json.dumps(row, ensure_ascii=False).encode() + b"\n"


def _export_mbox(
    reader: ArchiveReader,
    folder: str,
    relpath: str,
    out: Path,
    sel: Selection,
    include_deleted: bool,
    manifest: BinaryIO,
    report: ExportReport,
) -> None:
    target = _safe_target(out, relpath, ".mbox")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    offset = 0
    count = 0
    with open(tmp, "wb", buffering=_BUFFER) as fh:
        for msg in reader.messages(sel, include_deleted=include_deleted, folder=folder):
            try:
                body = _read(reader.root, msg)
            except OSError as exc:
                report.errors.append(f"{folder} UID {msg.uid}: {msg.path}: {exc.strerror}")
                continue
            entry = mboxrd.entry(body, mboxrd.envelope_sender(msg.from_addr), msg.when)
            for chunk in entry.chunks:
                fh.write(chunk)
            if not entry.exact:
                report.inexact.append(f"{folder} UID {msg.uid}")
            manifest.write(
                _manifest_line(
                    msg, target.relative_to(out).as_posix(), offset=offset, length=entry.size
                )
            )
            offset += entry.size
            count += 1
            report.messages += 1
            report.bytes += len(body)
    if count:
        os.replace(tmp, target)
        report.files += 1
    else:
        tmp.unlink()


def _export_eml(
    reader: ArchiveReader,
    folder: str,
    relpath: str,
    out: Path,
    sel: Selection,
    include_deleted: bool,
    manifest: BinaryIO,
    report: ExportReport,
) -> None:
    folder_dir = _safe_target(out, relpath, "")
    made = False
    for msg in reader.messages(sel, include_deleted=include_deleted, folder=folder):
        try:
            body = _read(reader.root, msg)
        except OSError as exc:
            report.errors.append(f"{folder} UID {msg.uid}: {msg.path}: {exc.strerror}")
            continue
        if not made:
            folder_dir.mkdir(parents=True, exist_ok=True)
            made = True
        target = folder_dir / f"{msg.uidvalidity}-{msg.uid}.eml"
        # written in place (no temporary name): an export is redone, not resumed, and a rename
        # per message cost a third of its time
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        try:
            _write_all(fd, body)
            when = msg.when
            if when is not None:
                stamp = when.timestamp()
                os.utime(fd, (stamp, stamp))
        finally:
            os.close(fd)
        manifest.write(_manifest_line(msg, target.relative_to(out).as_posix()))
        report.messages += 1
        report.files += 1
        report.bytes += len(body)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def export_archive(
    root: Path,
    fmt: ExportFormat,
    out: Path,
    selection: Selection,
    *,
    include_deleted: bool = False,
) -> ExportReport:
    """Export the selected messages of the archive at ``root`` into ``out``."""
    import time

    start = time.monotonic()
    report = ExportReport(root.name)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"{out}: cannot create the export folder: {exc.strerror}") from exc
    with open_reader(root) as reader:
        relpaths = reader.relpaths()
        write = _export_mbox if fmt == "mbox" else _export_eml
        try:
            with open(out / "manifest.jsonl", "wb") as manifest:
                for folder in reader.folders():
                    if not selection.folder_ok(folder):
                        continue
                    relpath = relpaths.get(folder)
                    if relpath is None:
                        report.errors.append(f"{folder}: no folder record in the state")
                        continue
                    write(
                        reader, folder, relpath, out, selection, include_deleted, manifest, report
                    )
        except OSError as exc:
            raise StorageError(f"{out}: export failed: {exc.strerror or exc}") from exc
    report.seconds = time.monotonic() - start
    return report
