"""``host = "[::1]"`` (an IPv6 literal as URLs spell it) passes the plain-IMAP loopback check, and
must then connect too, in every mode: it used to fail as an unknown host."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.dispatch import run_backup
from foundation.frozen import build, replace, to_data
from foundation.mode import Mode
from mailsync.settings import AccountSettings
from testbed.dovecot import DovecotServer
from tests.fixtures.imap import FreshImapAccount
from tests.integration._mailsync_helpers import (
    PASSWORD_ENV,
    account_for,
    assert_archive_matches,
    mail_settings,
)


def _host(host: str) -> str:
    return AccountSettings(name="a", host=host, security="plain", username="u").host


def test_bracketed_ipv6_host_is_stored_bare() -> None:
    assert _host("[::1]") == "::1"
    assert _host("::1") == "::1" and _host("127.0.0.1") == "127.0.0.1"


class _Forward(socketserver.ThreadingTCPServer):
    address_family = socket.AF_INET6
    daemon_threads = True
    allow_reuse_address = True
    target: tuple[str, int] = ("127.0.0.1", 0)


class _Relay(socketserver.BaseRequestHandler):
    """Copies bytes both ways between the client on ::1 and Dovecot on 127.0.0.1."""

    def handle(self) -> None:
        assert isinstance(self.server, _Forward)
        with socket.create_connection(self.server.target, timeout=30) as up:
            down = self.request

            def pump(src: socket.socket, dst: socket.socket) -> None:
                with contextlib.suppress(OSError):
                    while data := src.recv(65536):
                        dst.sendall(data)
                for s in (src, dst):
                    with contextlib.suppress(OSError):
                        s.shutdown(socket.SHUT_RDWR)

            back = threading.Thread(target=pump, args=(up, down), daemon=True)
            back.start()
            pump(down, up)
            back.join(30)


@pytest.fixture
def ipv6_dovecot(dovecot: DovecotServer) -> Iterator[int]:
    """A port on ::1 that leads to the test-bed Dovecot."""
    server = _Forward(("::1", 0), _Relay)
    server.target = (dovecot.host, dovecot.port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.mark.needs_dovecot
def test_bracketed_ipv6_loopback_connects(
    mode: Mode,
    fresh_imap_account: FreshImapAccount,
    ipv6_dovecot: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "secret")
    acct = fresh_imap_account(messages=6, seed=4, folders=["INBOX"])
    # validated as a settings file's values are (model_copy would skip the validators)
    base = to_data(account_for(acct.server, acct.user))
    account = build(AccountSettings, {**base, "host": "[::1]", "port": ipv6_dovecot})
    settings = replace(mail_settings(account), mode=mode)
    (report,) = run_backup(settings, [account], tmp_path)
    assert report.ok, report.errors
    assert_archive_matches(tmp_path / account.name, acct.truth)
