"""Fill the test-bed Dovecot with many messages fast: Maildir files written straight to disk.

APPEND costs Dovecot ~0.3 ms of CPU per message and the client a round trip per batch: fine for
20,000 messages, slow for the 200,000 of a memory benchmark. Dovecot reads a Maildir as it finds
it, so the files are written into the folder's ``cur/`` under names Dovecot itself would use
(``<unique>,S=<size>,W=<size>:2,<flags>``: the sizes spare it reading every file), with the
INTERNALDATE as mtime and the mail user as owner. One SELECT and a metadata FETCH per folder then
make Dovecot assign the UIDs and build its index, so no client pays for that first scan.

Only messages whose stored bytes are what FETCH serves (CRLF line ends) may be written this way:
``testbed.mailgen.served_form`` makes them so.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from testbed.corpus import Corpus
from testbed.dovecot import DovecotServer
from testbed.imap_load import ImapSession, create_folder, quote
from testbed.mailgen import build_message, served_form

__all__ = ["folder_dir", "load_corpus_files", "write_folder_files"]

_FLAG_LETTERS = {"\\Draft": "D", "\\Flagged": "F", "\\Answered": "R", "\\Seen": "S"}


def folder_dir(server: DovecotServer, user: str, folder: str) -> Path:
    """The Maildir directory of ``folder`` (LAYOUT=fs: INBOX is the root)."""
    root = server.maildir(user)
    return root if folder.upper() == "INBOX" else root / folder


def write_folder_files(
    server: DovecotServer,
    user: str,
    folder: str,
    messages: Iterable[tuple[bytes, tuple[str, ...], float | None]],
) -> int:
    """Create ``folder`` and write (served bytes, flags, mtime) items into its ``cur/``; returns
    how many. Keywords are dropped (they need Dovecot's keyword file)."""
    create_folder(server, user, folder)
    cur = folder_dir(server, user, folder) / "cur"
    owner = cur.stat()
    count = 0
    for n, (data, flags, mtime) in enumerate(messages):
        letters = "".join(sorted(_FLAG_LETTERS[f] for f in flags if f in _FLAG_LETTERS))
        path = cur / f"1700000000.M{n}P1.fetchlab,S={len(data)},W={len(data)}:2,{letters}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fchown(fd, owner.st_uid, owner.st_gid)
        finally:
            os.close(fd)
        if mtime is not None:
            os.utime(path, (mtime, mtime))
        count += 1
    with ImapSession(server, user, timeout=600.0) as session:
        # Dovecot assigns UIDs on this scan and caches what a backup's listing asks for
        session.command(b"SELECT " + quote(folder))
        session.command(b"UID FETCH 1:* (UID RFC822.SIZE FLAGS INTERNALDATE)")
    return count


def load_corpus_files(server: DovecotServer, user: str, corpus: Corpus) -> int:
    """Write every message of ``corpus`` (served form) into its folder; returns the count."""
    total = 0
    for folder in sorted(corpus.folders, key=lambda name: name.count("/")):
        items = (
            (
                served_form(build_message(corpus.seed, plan).raw),
                plan.flags,
                plan.internaldate.timestamp(),
            )
            for plan in corpus.in_folder(folder)
        )
        total += write_folder_files(server, user, folder, items)
    return total
