"""The test-bed Dovecot, for real: logins, TLS, capabilities, folders, the corpus byte for byte."""

from __future__ import annotations

import hashlib
import imaplib
import os
import re
import shutil
import socket
import ssl
import tempfile
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from imapclient import imap_utf7

from foundation.errors import TestbedError
from testbed.corpus import TruthRecord, read_truth
from testbed.dovecot import DovecotServer, start_dovecot
from testbed.imap_cli import cli
from testbed.imap_load import (
    AppendMessage,
    append_messages,
    create_folder,
    delete_folder,
    delete_messages,
    folder_status,
    quote,
    recreate_folder,
    set_flags,
)
from tests.fixtures.imap import FreshImapAccount, ImapCorpus

pytestmark = pytest.mark.needs_dovecot

_FETCH_ITEMS = {
    "uid": re.compile(rb"UID (\d+)"),
    "flags": re.compile(rb"FLAGS \(([^)]*)\)"),
    "date": re.compile(rb'INTERNALDATE "([^"]+)"'),
    "size": re.compile(rb"RFC822.SIZE (\d+)"),
}


def _login(server: DovecotServer, user: str = "alice") -> imaplib.IMAP4:
    client = imaplib.IMAP4(server.host, server.port, timeout=30)
    client.login(user, server.users[user])
    return client


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="fetchlab-dovecot-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _list(client: imaplib.IMAP4) -> dict[str, str]:
    """decoded name -> attributes."""
    typ, lines = client.list()
    assert typ == "OK"
    out = {}
    for line in lines:
        assert isinstance(line, bytes)
        match = re.match(rb'\(([^)]*)\) "/" (.+)$', line)
        assert match, line
        name = match.group(2).strip(b'"')
        out[imap_utf7.decode(name)] = match.group(1).decode()
    return out


def _fetch_all(client: imaplib.IMAP4, folder: str) -> dict[int, tuple[dict[str, str], bytes]]:
    """uid -> ({"flags", "date", "size"}, BODY[]) for the whole folder."""
    typ, _ = client.select(quote(folder).decode(), readonly=True)
    assert typ == "OK"
    typ, data = client.uid("FETCH", "1:*", "(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])")
    assert typ == "OK"
    out = {}
    for item in data:
        if not isinstance(item, tuple):
            continue
        head, body = item
        fields = {key: match.group(1).decode() for key, match in _fields(head)}
        out[int(fields["uid"])] = (fields, body)
    return out


def _fields(head: bytes) -> Iterator[tuple[str, re.Match[bytes]]]:
    for key, pattern in _FETCH_ITEMS.items():
        match = pattern.search(head)
        assert match is not None, (key, head)
        yield key, match


def test_plain_login_and_wrong_password(dovecot: DovecotServer) -> None:
    with _login(dovecot, "bob") as client:
        assert client.state == "AUTH"
    started = time.monotonic()
    with (
        imaplib.IMAP4(dovecot.host, dovecot.port, timeout=30) as client,
        pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"),
    ):
        client.login("alice", "wrong")
    assert time.monotonic() - started < 1.5  # no auth failure delay on the test bed


def test_implicit_tls_verified_with_the_ca_file_only(dovecot: DovecotServer) -> None:
    context = ssl.create_default_context(cafile=str(dovecot.ca_cert))
    for host in ("127.0.0.1", "localhost"):  # the certificate names both
        with imaplib.IMAP4_SSL(host, dovecot.tls_port, ssl_context=context, timeout=30) as client:
            client.login("alice", "secret")
            assert isinstance(client.sock, ssl.SSLSocket)
            assert client.sock.version() in {"TLSv1.2", "TLSv1.3"}
    with pytest.raises(ssl.SSLCertVerificationError):
        imaplib.IMAP4_SSL(
            dovecot.host, dovecot.tls_port, ssl_context=ssl.create_default_context(), timeout=30
        )


def test_starttls_and_capabilities(dovecot: DovecotServer) -> None:
    with imaplib.IMAP4(dovecot.host, dovecot.port, timeout=30) as client:
        assert "STARTTLS" in client.capabilities
        client.starttls(ssl.create_default_context(cafile=str(dovecot.ca_cert)))
        assert isinstance(client.sock, ssl.SSLSocket)
        client.login("alice", "secret")
        typ, data = client.capability()
        assert typ == "OK" and isinstance(data[0], bytes)
        caps = set(data[0].split())
    for cap in (b"COMPRESS=DEFLATE", b"CONDSTORE", b"QRESYNC", b"UIDPLUS", b"MULTIAPPEND",
                b"LITERAL+", b"MOVE", b"ENABLE"):  # fmt: skip
        assert cap in caps, cap


def test_compress_deflate_works(dovecot: DovecotServer) -> None:
    with socket.create_connection((dovecot.host, dovecot.port), timeout=30) as sock:
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"* OK")
        sock.sendall(b"a LOGIN alice secret\r\nb COMPRESS DEFLATE\r\n")
        lines = [reader.readline() for _ in range(2)]
        assert lines[0].startswith(b"a OK") and lines[1].startswith(b"b OK"), lines
        # from here on both directions are raw DEFLATE streams (RFC 4978)
        deflate = zlib.compressobj(wbits=-15)
        sock.sendall(deflate.compress(b"c NOOP\r\nd LOGOUT\r\n") + deflate.flush(zlib.Z_SYNC_FLUSH))
        inflate = zlib.decompressobj(wbits=-15)
        text = b""
        while b"d OK" not in text:
            chunk = sock.recv(65536)
            assert chunk, text
            text += inflate.decompress(chunk)
        reader.close()
    assert b"c OK" in text and b"* BYE" in text


def test_stock_config_offers_no_compress() -> None:
    """compress=False is Dovecot's stock configuration (no zlib plugins): what the benchmarks
    compare on, so a server-bound COMPRESS setup cannot flatter a client with more connections."""
    # not tmp_path: its 0700 parent would keep Dovecot's unprivileged mail user out
    workdir = Path(tempfile.mkdtemp(prefix="fetchlab-dovecot-"))
    server = start_dovecot(workdir, compress=False)
    try:
        with imaplib.IMAP4(server.host, server.port, timeout=30) as client:
            client.login("alice", "secret")
            typ, data = client.capability()
            assert typ == "OK" and isinstance(data[0], bytes)
            caps = set(data[0].split())
        assert b"COMPRESS=DEFLATE" not in caps and b"CONDSTORE" in caps
        assert "zlib" not in (workdir / "dovecot.conf").read_text()
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def test_many_parallel_connections(dovecot: DovecotServer) -> None:
    def session(number: int) -> str:
        with _login(dovecot) as client:
            status, _ = client.select("INBOX", readonly=True)
        return str(status)

    with ThreadPoolExecutor(max_workers=40) as pool:
        assert list(pool.map(session, range(120))) == ["OK"] * 120


def test_list_shows_every_corpus_folder(imap_corpus: ImapCorpus) -> None:
    with _login(imap_corpus.server, imap_corpus.user) as client:
        listed = _list(client)
    selectable = {name for name, attrs in listed.items() if "\\Noselect" not in attrs}
    assert selectable == set(imap_corpus.corpus.folders)
    # a parent made only by its child is listed but cannot be selected
    assert "\\Noselect" in listed["Работа"]


def test_every_message_served_as_in_the_truth(imap_corpus: ImapCorpus) -> None:
    server, truth = imap_corpus
    assert len(truth) == 200
    by_folder: dict[str, list[TruthRecord]] = {}
    for record in truth:
        by_folder.setdefault(record.folder, []).append(record)
    checked = 0
    for folder, records in by_folder.items():
        with _login(server, imap_corpus.user) as client:
            served = _fetch_all(client, folder)
        assert sorted(served) == sorted(r.uid or 0 for r in records)
        status = folder_status(server, imap_corpus.user, folder)
        for record in records:
            assert record.uidvalidity == status.uidvalidity
            fields, body = served[record.uid or 0]
            assert hashlib.sha256(body).hexdigest() == record.sha256, record
            assert int(fields["size"]) == record.size == len(body)
            assert set(fields["flags"].split()) - {"\\Recent"} == set(record.flags)
            stamp = datetime.strptime(fields["date"], "%d-%b-%Y %H:%M:%S %z")
            assert stamp == record.internaldate  # same instant (the server answers in UTC)
            checked += 1
    assert checked == len(truth)
    kinds = {r.kind for r in truth}
    assert "malformed-bare-lf" in kinds and "attachment" in kinds


def test_maildir_files_hold_the_served_bytes(imap_corpus: ImapCorpus) -> None:
    server, truth = imap_corpus
    folder = "Project X"
    files = [
        p for sub in ("cur", "new") for p in (server.maildir("alice") / folder / sub).iterdir()
    ]
    on_disk = sorted(hashlib.sha256(p.read_bytes()).hexdigest() for p in files)
    assert on_disk == sorted(r.sha256 for r in truth if r.folder == folder)


def test_fresh_accounts_are_isolated_and_loadable(fresh_imap_account: FreshImapAccount) -> None:
    empty = fresh_imap_account()
    with _login(empty.server, empty.user) as client:
        assert set(_list(client)) == {"INBOX"}
    loaded = fresh_imap_account(messages=25, seed=9, folders=["INBOX", "Sub/Dir"])
    assert loaded.user != empty.user and len(loaded.truth) == 25
    assert {r.folder for r in loaded.truth} == {"INBOX", "Sub/Dir"}
    assert loaded.maildir.is_dir()


def test_helpers_append_flag_delete_recreate(fresh_imap_account: FreshImapAccount) -> None:
    account = fresh_imap_account()
    server, user = account.server, account.user
    when = datetime.fromisoformat("2022-02-03T04:05:06+01:00")
    msgs = [b"Subject: %d\r\n\r\nbody %d\r\n" % (i, i) for i in range(5)]
    uids = append_messages(
        server, user, "Work", [AppendMessage(msgs[0], ("\\Seen",), when), *msgs[1:]]
    )
    assert uids == [1, 2, 3, 4, 5]
    assert append_messages(server, user, "Work", [b"Subject: more\r\n\r\nx\r\n"]) == [6]
    set_flags(server, user, "Work", [2, 3], ["\\Flagged", "$Label1"])
    set_flags(server, user, "Work", [1], ["\\Seen"], mode="remove")
    delete_messages(server, user, "Work", [4, 5])
    with _login(server, user) as client:
        served = _fetch_all(client, "Work")
    assert sorted(served) == [1, 2, 3, 6]
    assert served[1][1] == msgs[0]
    assert datetime.strptime(served[1][0]["date"], "%d-%b-%Y %H:%M:%S %z") == when
    assert set(served[1][0]["flags"].split()) - {"\\Recent"} == set()
    assert set(served[2][0]["flags"].split()) - {"\\Recent"} == {"\\Flagged", "$Label1"}
    before = folder_status(server, user, "Work")
    assert before.messages == 4 and before.uidnext == 7 and before.highestmodseq > 0
    after = recreate_folder(server, user, "Work")
    assert after != before.uidvalidity
    assert folder_status(server, user, "Work").messages == 0
    assert create_folder(server, user, "Gone") > 0
    delete_folder(server, user, "Gone")
    with _login(server, user) as client:
        assert "Gone" not in _list(client)
    with pytest.raises(TestbedError):
        delete_folder(server, user, "Gone")


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry))
    return members


def test_stop_leaves_no_process_and_frees_ports(workdir: Path) -> None:
    server = start_dovecot(workdir, users={"carol": "pw"})
    with _login(server, "carol"):  # an imap child process exists too
        members = _group_members(server.process.pid)
        assert len(members) >= 3
        server.stop()
    assert not server.alive()
    assert _group_members(server.process.pid) == []
    for port in (server.port, server.tls_port):
        with pytest.raises(OSError), socket.create_connection((server.host, port), timeout=2):
            pass


def test_busy_port_is_a_clear_error(workdir: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(TestbedError, match="busy"):
            start_dovecot(workdir, port=port)


def test_cli_loads_prints_and_stops(workdir: Path) -> None:
    result = CliRunner().invoke(
        cli, ["--messages", "12", "--seed", "3", "--dir", str(workdir), "--duration", "0.2"]
    )
    assert result.exit_code == 0, result.output
    assert "password   secret" in result.output
    port = int(re.search(r"^port\s+(\d+)", result.output, re.M).group(1))  # type: ignore[union-attr]
    truth = read_truth(workdir / "truth.jsonl")
    assert len(truth) == 12 and all(r.uid for r in truth)
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


def test_cli_takes_the_password_from_the_environment(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a --password option would show the password to every `ps` on the machine
    assert "--password" not in {o for p in cli.params for o in p.opts}
    monkeypatch.setenv("TESTBED_IMAP_PASSWORD", "s3cr3t-from-env")
    result = CliRunner().invoke(cli, ["--messages", "2", "--dir", str(workdir), "--duration", "0"])
    assert result.exit_code == 0, result.output
    assert (
        "s3cr3t" not in result.output and "password   from $TESTBED_IMAP_PASSWORD" in result.output
    )
    user_file = workdir / "users.d" / "alice"
    assert "s3cr3t-from-env" in user_file.read_text()
