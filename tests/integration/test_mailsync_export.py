"""``mailsync export``: an archive out as mboxrd and as .eml, read back by two readers that share
nothing with the writer (Python's :mod:`mailbox` and a strict mboxrd reader written here), and
every message comes back with its archived bytes (SHA-256) -- NUL bytes, bare LF, lone CR and
``From `` / ``>From `` lines included."""

from __future__ import annotations

import hashlib
import json
import mailbox
import os
import re
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from fetchlab.mail_cli import main
from mailsync.effects import StoreItem
from mailsync.state import FolderRecord
from mailsync.store import AccountArchive
from testbed.imap_load import append_messages
from tests.fixtures.imap import FreshImapAccount
from tests.integration._mailsync_helpers import PASSWORD_ENV, account_for, mail_settings, state_rows
from tests.integration._restore_helpers import backup

pytestmark = pytest.mark.needs_dovecot

FROM_LINES = (
    b"From: a@example.org\r\nSubject: from lines\r\nMessage-ID: <from@x>\r\n\r\n"
    b"From the start of a line\r\n>From quoted once\r\n>>From quoted twice\r\n"
    b"From\r\nFrom:not a separator\r\n From indented\r\n\r\nFrom after an empty line\r\n"
)
# bytes the archive may hold but Dovecot would not serve (it turns bare LF into CRLF): written
# into the archive by its own writer, as a backup from another server would leave them
SPECIAL = {
    1: b"From: b@example.org\nSubject: bare LF\n\nline one\nFrom here\n\n>From there\n",
    2: b"From: c@example.org\r\nSubject: NUL\r\n\r\nbinary \x00 zero \x00\x00 bytes\r\n",
    3: b"From: d@example.org\r\nSubject: lone CR\r\n\r\nhalf\rline\r\nFrom x\r\n",
    4: b"From: e@example.org\r\nSubject: no final line end\r\n\r\nends here",
    5: b"From: f@example.org\r\nSubject: ends in empty lines\r\n\r\nbody\n\n\n",
}


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "secret")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _unquote_lines(data: bytes) -> bytes:
    lines = data.split(b"\n")
    out = []
    for line in lines:
        stripped = line.lstrip(b">")
        if line.startswith(b">") and stripped.startswith(b"From "):
            line = line[1:]
        out.append(line)
    return b"\n".join(out)


def strict_mboxrd(path: Path) -> list[bytes]:
    """A reader of its own: a separator only at the file's start or after an empty line, the
    empty line before it dropped, one ``>`` taken from every ``>+From `` line."""
    data = path.read_bytes()
    assert data.startswith(b"From "), path
    messages: list[bytes] = []
    current: list[bytes] | None = None
    lines = data.split(b"\n")
    assert lines[-1] == b"", "an mbox ends with a line end"
    lines.pop()
    for n, line in enumerate(lines):
        if line.startswith(b"From "):
            assert n == 0 or lines[n - 1] == b"", f"{path}: separator without an empty line"
            if current is not None:
                assert current and current[-1] == b""
                messages.append(b"\n".join(current[:-1]) + b"\n")
            current = []
            continue
        assert current is not None
        current.append(line)
    assert current is not None and current[-1] == b""
    messages.append(b"\n".join(current[:-1]) + b"\n")
    return [_unquote_lines(m) for m in messages]


def python_mailbox(path: Path) -> list[bytes]:
    box = mailbox.mbox(path, create=False)
    try:
        return [_unquote_lines(box.get_bytes(key)) for key in box.iterkeys()]
    finally:
        box.close()


def _archive_with_specials(fresh: FreshImapAccount, tmp_path: Path) -> Path:
    acct = fresh(messages=12, seed=23, max_bytes=400_000, folders=["INBOX", "Archive/2023"])
    append_messages(acct.server, acct.user, "INBOX", [FROM_LINES])
    source = account_for(acct.server, acct.user, name="src")
    archive = tmp_path / "archive"
    backup(mail_settings(source), source, archive)
    arch = AccountArchive(archive / "src", fsync=False)
    arch.open_blocking()
    try:
        items: list[StoreItem] = [
            (uid, ("\\Seen",), None, body, "01-Feb-2024 10:00:00 +0100")
            for uid, body in SPECIAL.items()
        ]
        arch.store_batch("Special", "Special", 7, 0, items)
        arch.state.save_folder(FolderRecord("Special", "Special", 7, 0, 6, None, 5), None)
    finally:
        arch.close_blocking()
    return archive


def test_mbox_and_eml_give_back_the_archived_bytes(
    fresh_imap_account: FreshImapAccount, tmp_path: Path
) -> None:
    archive = _archive_with_specials(fresh_imap_account, tmp_path)
    rows = state_rows(archive / "src")
    want = Counter((r["folder"], r["sha256"]) for r in rows)
    assert sum(want.values()) == 13 + len(SPECIAL)
    no_line_end = _sha(SPECIAL[4])
    settings_env = {"FETCHLAB_SETTINGS": ""}

    runner = CliRunner()
    mbox_out = tmp_path / "mbox"
    result = runner.invoke(
        main,
        [
            "export",
            "--archive",
            str(archive),
            "--account",
            "src",
            "--format",
            "mbox",
            "--out",
            str(mbox_out),
        ],
        env=settings_env,
    )
    assert result.exit_code == 0, result.output
    assert "Special UID 4" in result.output  # the one message mbox cannot keep exact is named
    relpaths = {r["folder"]: r["path"].split("/new/")[0].split("/cur/")[0] for r in rows}
    for reader in (python_mailbox, strict_mboxrd):
        got: Counter[tuple[str, str]] = Counter()
        for folder, relpath in relpaths.items():
            for body in reader(mbox_out / f"{relpath}.mbox"):
                sha = _sha(body)
                if body == SPECIAL[4] + b"\n":
                    sha = no_line_end  # mbox needs the LF; the warning above named it
                got[(folder, sha)] += 1
        assert got == want, reader.__name__

    # the manifest's offsets cut the same entries
    manifest = [json.loads(line) for line in (mbox_out / "manifest.jsonl").read_text().splitlines()]
    assert Counter((m["folder"], m["sha256"]) for m in manifest) == want
    for m in manifest[:5]:
        with open(mbox_out / m["file"], "rb") as fh:
            fh.seek(m["offset"])
            assert fh.read(m["length"]).startswith(b"From ")

    eml_out = tmp_path / "eml"
    result = runner.invoke(
        main,
        [
            "export",
            "--archive",
            str(archive),
            "--account",
            "src",
            "--format",
            "eml",
            "--out",
            str(eml_out),
        ],
        env=settings_env,
    )
    assert result.exit_code == 0, result.output
    got_eml: Counter[tuple[str, str]] = Counter()
    for row in rows:
        path = eml_out / relpaths[row["folder"]] / f"{row['uidvalidity']}-{row['uid']}.eml"
        got_eml[(row["folder"], _sha(path.read_bytes()))] += 1
    assert got_eml == want  # exact, the message without a final line end included
    special = eml_out / "Special" / "7-1.eml"
    assert os.stat(special).st_mtime == 1706778000  # 01-Feb-2024 10:00:00 +0100


def test_query_selects_folder_and_dates(
    fresh_imap_account: FreshImapAccount, tmp_path: Path
) -> None:
    archive = _archive_with_specials(fresh_imap_account, tmp_path)
    out = tmp_path / "q"
    result = CliRunner().invoke(
        main,
        [
            "export",
            "--archive",
            str(archive),
            "--account",
            "src",
            "--format",
            "eml",
            "--query",
            "folder:Spec* date:2024-02-01",
            "--out",
            str(out),
        ],
        env={"FETCHLAB_SETTINGS": ""},
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.rglob("*.eml")) == [f"7-{u}.eml" for u in sorted(SPECIAL)]
    bad = CliRunner().invoke(
        main,
        [
            "export",
            "--archive",
            str(archive),
            "--format",
            "eml",
            "--query",
            "from:x",
            "--out",
            str(out),
        ],
        env={"FETCHLAB_SETTINGS": ""},
    )
    assert bad.exit_code == 0, bad.output  # a search query: answered by the index


def _export_eml(archive: Path, out: Path, query: str) -> tuple[int, str, list[str]]:
    result = CliRunner().invoke(
        main,
        [
            *("export", "--archive", str(archive), "--account", "src", "--format", "eml"),
            *("--query", query, "--out", str(out)),
        ],
        env={"FETCHLAB_SETTINGS": ""},
    )
    return result.exit_code, result.output, sorted(p.name for p in out.rglob("*.eml"))


def test_query_in_the_search_language_selects_what_search_finds(
    fresh_imap_account: FreshImapAccount, tmp_path: Path
) -> None:
    """Any query beyond folder:/date: is the search language, answered by the archive's index:
    the export holds exactly the messages ``mailsync search`` lists for it."""
    from mailsync.search_index import SearchIndex

    archive = _archive_with_specials(fresh_imap_account, tmp_path)
    assert CliRunner().invoke(main, ["index", "--out", str(archive)]).exit_code == 0
    rows = state_rows(archive / "src")
    eml_name = {r["path"]: f"{r['uidvalidity']}-{r['uid']}.eml" for r in rows}
    idx = SearchIndex(archive / "src", readonly=True)
    try:
        someone = re.findall(r"[a-z]{3,}", idx.search("folder:INBOX", "src", limit=1)[0].sender)[0]
        queries = ("NOT folder:Special", "folder:INBOX AND NOT folder:Special", f"from:{someone}")
        expect = {q: idx.search(q, "src", limit=None) for q in queries}
    finally:
        idx.close()
    for query, hits in expect.items():
        want = sorted(eml_name[h.path] for h in hits)
        code, output, got = _export_eml(archive, tmp_path / query.replace(" ", "_"), query)
        assert code == 0, output
        assert got == want and got, query
    inbox = [r for r in rows if r["folder"] == "INBOX"]
    code, _, got = _export_eml(archive, tmp_path / "inbox", "folder:INBOX AND NOT folder:Special")
    assert len(got) == len(inbox)
    code, output, _ = _export_eml(archive, tmp_path / "bad", "from:bob AND (")
    assert code == 2 and "query error at character 15" in output, output


def test_a_search_query_indexes_what_the_backup_did_not_then_selects(
    fresh_imap_account: FreshImapAccount, tmp_path: Path
) -> None:
    """A default backup leaves the index to later: an export whose --query needs it indexes the
    archive first (once, under its lock), then exports exactly what search finds; a backup
    holding the archive leaves the unindexed messages out, with a warning."""
    from mailsync.layout import ArchiveLock, index_path

    archive = _archive_with_specials(fresh_imap_account, tmp_path)
    root = archive / "src"
    assert not index_path(root).exists()
    total = len(state_rows(root))
    with ArchiveLock(root):  # a backup running
        code, output, got = _export_eml(archive, tmp_path / "busy", "NOT folder:Special")
    assert code == 2 and f"{total} messages are not indexed yet" in output, output
    assert "archive in use" in output and got == []
    code, output, got = _export_eml(archive, tmp_path / "x", "NOT folder:Special")
    assert code == 0, output
    assert f"indexing {total} messages for search" in output
    assert len(got) == total - len(SPECIAL)
    # indexed once: the next query reads the index as it is
    code, output, _ = _export_eml(archive, tmp_path / "y", "folder:Special OR from:nobody")
    assert code == 0 and "indexing" not in output, output
