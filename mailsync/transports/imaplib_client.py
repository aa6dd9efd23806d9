"""The blocking IMAP port on the standard library's imaplib: the twin of the native asyncio
transport (mirrored names: ``execute`` / ``pipeline`` / ``close`` for ``aclose``), used by the
threads, gevent and sequential modes.

imaplib does what it is good at: connecting, implicit TLS or STARTTLS (with the same certificate
checks as the native transport), the greeting and LOGIN / AUTHENTICATE with its literal quoting.
After that, commands go over imaplib's own socket and the answers are read through its buffered
file into the project's incremental :class:`~mailsync.core.parser.ResponseParser`: imaplib's own
reader cannot pipeline and hands literals back unparsed, and the sync flow needs the same parsed
responses (and the same spill-to-disk of huge literals) whatever the transport. COMPRESS=DEFLATE
is not offered here (the setting's "auto" never uses it on loopback anyway).
"""

from __future__ import annotations

import contextlib
import imaplib
import io
import itertools
import socket
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from foundation.errors import (
    ImapAuthError,
    ImapConnectError,
    ImapProtocolError,
    ImapTLSError,
    ImapUnknownHost,
    MailError,
)
from mailsync.auth import Secret
from mailsync.core.flow import Command, CommandResult
from mailsync.core.parser import (
    Continuation,
    LiteralSink,
    Response,
    ResponseParser,
    Tagged,
    Untagged,
)
from mailsync.settings import AccountSettings
from mailsync.transports.base import TransportStats
from mailsync.transports.tls import connect_failure, make_ssl_context

__all__ = ["ImaplibSession", "open_blocking_session"]

_prefixes = itertools.count(1)
READ_SIZE = 256 * 1024
_JOIN_BELOW = 256 * 1024  # pipelined commands smaller than this in all go in one joined write


@dataclass
class _Pending:
    tag: str
    untagged: list[Response] = field(default_factory=list)
    result: CommandResult | None = None


class ImaplibSession:
    """An authenticated connection; not shared between threads (one per worker)."""

    def __init__(
        self,
        conn: imaplib.IMAP4,
        *,
        host: str,
        port: int,
        capabilities: frozenset[str],
        literal_factory: Callable[[int], LiteralSink] | None = None,
        spill_threshold: int = 8 * 1024 * 1024,
    ) -> None:
        self._conn = conn
        with contextlib.suppress(OSError, AttributeError):
            # a command may go out in a few writes (tag, literal, CRLF): without this, Nagle
            # would hold the last small one for the server's delayed ACK (asyncio sets it too)
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.host = host
        self.port = port
        self.capabilities = capabilities
        self.stats = TransportStats()
        self.compressed = False
        self._parser = ResponseParser(
            literal_factory=literal_factory, spill_threshold=spill_threshold
        )
        self._tags = itertools.count(1)
        self._prefix = f"B{next(_prefixes)}_"
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        # sent by send() and not yet waited for: one read can complete several of them, and
        # _dispatch drops a completed command from _pending, so wait() finds it here
        self._sent: dict[str, _Pending] = {}
        self._waiting: _Pending | None = None  # a command waiting for a "+" continuation
        self._continued = False
        self._error: MailError | None = None

    # io ---------------------------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        try:
            self._conn.sock.sendall(data)
        except (OSError, ValueError) as exc:
            raise self._fail(ImapConnectError(f"{self._where}: send failed ({exc})")) from None
        self.stats.bytes_out += len(data)

    @property
    def _where(self) -> str:
        return f"{self.host}:{self.port}"

    def _fail(self, exc: MailError) -> MailError:
        if self._error is None:
            self._error = exc
        return self._error

    def _read_some(self) -> None:
        try:
            # imaplib's buffered reader: bytes it already read past the login are not lost
            data = cast(io.BufferedReader, self._conn.file).read1(READ_SIZE)
        except TimeoutError:
            raise self._fail(ImapConnectError(f"{self._where}: no answer in time")) from None
        except (OSError, ValueError) as exc:
            raise self._fail(ImapConnectError(f"{self._where}: connection lost ({exc})")) from None
        if not data:
            raise self._fail(ImapConnectError("connection closed by the server"))
        self.stats.wire_in += len(data)
        self.stats.bytes_in += len(data)
        try:
            responses = self._parser.feed(data)
        except ImapProtocolError as exc:
            raise self._fail(exc) from None
        for resp in responses:
            self._dispatch(resp)

    def _dispatch(self, resp: Response) -> None:
        if isinstance(resp, Tagged):
            pending = self._pending.pop(resp.tag, None)
            if pending is None:
                raise self._fail(ImapProtocolError(f"response for unknown tag {resp.tag!r}"))
            pending.result = CommandResult(resp, tuple(pending.untagged))
            return
        if isinstance(resp, Continuation):
            if self._waiting is not None:
                self._continued = True
            else:  # a "+" nobody asked for (a SASL challenge): an empty line cancels it
                self._write(b"\r\n")
            return
        if self._pending:
            next(iter(self._pending.values())).untagged.append(resp)
        if isinstance(resp, Untagged) and resp.kind == "BYE":
            self._fail(ImapConnectError(f"server said BYE: {resp.text}"))

    # the port ---------------------------------------------------------------------------------
    def execute(self, command: Command) -> CommandResult:
        return self.pipeline([command])[0]

    def send(self, command: bytes) -> str:
        """Send one command (no literal parts) without waiting; returns its tag for :meth:`wait`.
        The sliding window of body FETCHes is built from these two."""
        if self._error is not None:
            raise self._error
        tag = f"{self._prefix}{next(self._tags)}"
        self._pending[tag] = self._sent[tag] = _Pending(tag)
        self.stats.commands += 1
        self._write(tag.encode() + b" " + command + b"\r\n")
        return tag

    def wait(self, tag: str) -> CommandResult:
        """Read until the command ``tag`` has completed; its result."""
        pending = self._sent.pop(tag, None)
        if pending is None:
            raise ImapProtocolError(f"no command {tag!r} is waiting")
        self.stats.round_trips += 1
        while pending.result is None:
            if self._error is not None:
                raise self._error
            self._read_some()
        return pending.result

    def pipeline(self, commands: Sequence[Command]) -> list[CommandResult]:
        """Send every command at once, then read until all completed: one round trip."""
        if self._error is not None:
            raise self._error
        if not commands:
            return []
        started: list[tuple[_Pending, bytes, list[bytes]]] = []
        for command in commands:
            tag = f"{self._prefix}{next(self._tags)}"
            parts = [command] if isinstance(command, bytes) else list(command)
            pending = _Pending(tag)
            self._pending[tag] = pending
            started.append((pending, tag.encode() + b" ", parts))
        self.stats.commands += len(commands)
        self.stats.round_trips += 1
        if all(len(parts) == 1 for _, _, parts in started):
            if sum(len(parts[0]) for _, _, parts in started) < _JOIN_BELOW:
                self._write(b"".join(head + parts[0] + b"\r\n" for _, head, parts in started))
            else:  # megabytes of APPEND literals (restore): written as they are, not copied
                for _, head, parts in started:
                    self._write(head)
                    self._write(parts[0])
                    self._write(b"\r\n")
        else:
            for pending, head, parts in started:
                parts = [head + parts[0], *parts[1:]]
                for part in parts[:-1]:
                    self._waiting, self._continued = pending, False
                    self._write(part)  # a message body, maybe: not copied to add CRLF
                    self._write(b"\r\n")
                    while not self._continued and pending.result is None:
                        self._read_some()
                    self._waiting = None
                    if pending.result is not None:  # refused before the continuation
                        break
                else:
                    self._write(parts[-1])
                    self._write(b"\r\n")
        while any(p.result is None for p, _, _ in started):
            if self._error is not None:
                raise self._error
            self._read_some()
        return [p.result for p, _, _ in started if p.result is not None]

    def close(self) -> None:
        """LOGOUT politely when the connection is healthy, then close the socket."""
        if self._error is None:
            with contextlib.suppress(MailError):
                self.execute(b"LOGOUT")
        with contextlib.suppress(OSError, ValueError):
            self._conn.shutdown()


def _translate(exc: BaseException, account: AccountSettings) -> MailError:
    where = f"account {account.name}: {account.host}:{account.port}"
    common = connect_failure(exc, where)
    if common is not None:
        return common
    if isinstance(exc, socket.gaierror):  # not retried: the same words as the native transport
        return ImapUnknownHost(
            f"account {account.name}: {account.host}: unknown host ({exc.strerror})"
        )
    return ImapConnectError(f"{where}: {exc}")


def _capabilities(conn: imaplib.IMAP4) -> frozenset[str]:
    typ, data = conn.capability()
    words: list[str] = []
    if typ == "OK":
        for line in data:
            if isinstance(line, bytes):
                words += line.decode("ascii", "replace").upper().split()
    return frozenset(words)


def _login(conn: imaplib.IMAP4, account: AccountSettings, secret: Secret) -> None:
    try:
        _send_credentials(conn, account, secret)
    except imaplib.IMAP4.abort:
        raise
    except imaplib.IMAP4.error as exc:
        # imaplib words a BAD itself ("LOGIN command error: BAD ..."); anything else it raises
        # with the server's bare NO text, bytes for LOGIN. Reworded as the native transport
        # does, so that a refused login reads the same in every mode.
        arg = exc.args[0] if exc.args else ""
        text = arg.decode("utf-8", "replace") if isinstance(arg, bytes) else str(arg)
        raise imaplib.IMAP4.error(text if "command error" in text else f"NO {text}") from None


def _send_credentials(conn: imaplib.IMAP4, account: AccountSettings, secret: Secret) -> None:
    if account.auth == "login":
        conn.login(account.username, secret.value)
        return
    mech = account.auth.upper()
    if mech == "PLAIN":
        blob = f"\0{account.username}\0{secret.value}".encode()
    else:
        blob = f"user={account.username}\1auth=Bearer {secret.value}\1\1".encode()
    sent: list[bool] = []

    def respond(_challenge: bytes) -> bytes:
        # imaplib base64-encodes what this returns. The credentials go once: a second "+" is
        # the server's error challenge (XOAUTH2 sends a JSON status there), answered with an
        # empty response as RFC 7628 3.2.3 and Google's XOAUTH2 notes ask, then the NO follows
        if sent:
            return b""
        sent.append(True)
        return blob

    conn.authenticate(mech, respond)


def open_blocking_session(
    account: AccountSettings,
    secret: Secret,
    *,
    timeout: float,
    spill_dir: Path | None = None,
    spill_threshold: int = 8 * 1024 * 1024,
) -> ImaplibSession:
    """Connect, secure, authenticate. Raises MailError subclasses naming the account."""
    factory: Callable[[int], LiteralSink] | None = None
    if spill_dir is not None:
        from mailsync.store import SpillSink

        directory = spill_dir
        factory = lambda size: SpillSink(directory, size)  # noqa: E731
    conn: imaplib.IMAP4 | None = None
    try:
        if account.security == "tls":
            conn = imaplib.IMAP4_SSL(
                account.host,
                account.port,
                ssl_context=make_ssl_context(account),
                timeout=timeout,
            )
        else:
            conn = imaplib.IMAP4(account.host, account.port, timeout=timeout)
            if account.security == "starttls":
                conn.starttls(make_ssl_context(account))
        if conn.state != "AUTH":  # PREAUTH greetings skip the login
            _login(conn, account, secret)
        caps = _capabilities(conn)
    except imaplib.IMAP4.abort as exc:
        _drop(conn)
        raise ImapConnectError(f"account {account.name}: connection lost ({exc})") from None
    except imaplib.IMAP4.error as exc:
        _drop(conn)
        text = str(exc)
        if "STARTTLS" in text or "TLS" in text:
            raise ImapTLSError(f"account {account.name}: {text}") from None
        message = f"account {account.name}: login as {account.username} failed: {text}"
        if "[UNAVAILABLE]" in text:  # temporary (RFC 5530): retried like a lost connection
            raise ImapConnectError(message) from None
        raise ImapAuthError(message) from None
    except (OSError, ValueError) as exc:
        _drop(conn)
        raise _translate(exc, account) from None
    return ImaplibSession(
        conn,
        host=account.host,
        port=account.port,
        capabilities=caps,
        literal_factory=factory,
        spill_threshold=spill_threshold,
    )


def _drop(conn: Any) -> None:
    if conn is not None:
        with contextlib.suppress(Exception):
            conn.shutdown()
