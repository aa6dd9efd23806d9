"""The native asyncio IMAP transport: an asyncio Protocol feeding the project's own parser.

Pipelining: :meth:`NativeConnection.pipeline` writes several tagged commands in one burst and then
waits for all their completions, so N commands cost one round trip instead of N. Untagged
responses are credited to the oldest command still running. Servers may run pipelined FETCHes
concurrently (Dovecot does), so an answer can land under an earlier command of the burst -- never
a later one: callers route FETCH data by UID and STATUS data by mailbox (mailsync.core.flow does).

Bytes go straight from ``data_received`` (through zlib after COMPRESS=DEFLATE) into the
incremental :class:`ResponseParser`; literals above the spill threshold are streamed by the parser
into a sink the caller supplies, so a huge message never sits in memory.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import ssl
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from foundation.errors import (
    ImapConnectError,
    ImapProtocolError,
    ImapTLSError,
    ImapUnknownHost,
    MailError,
)
from mailsync.core.parser import (
    Continuation,
    LiteralSink,
    Response,
    ResponseParser,
    Tagged,
    Untagged,
)
from mailsync.transports.base import Command, CommandResult, TransportStats
from mailsync.transports.tls import connect_failure

__all__ = ["NativeConnection", "connect", "translate_connect_error"]

_tag_prefixes = itertools.count(1)
_JOIN_BELOW = 256 * 1024  # pipelined commands smaller than this in all go in one joined write
_T = TypeVar("_T")


@dataclass
class _Pending:
    tag: str
    future: asyncio.Future[CommandResult]
    untagged: list[Response] = field(default_factory=list)
    # set while the command waits for a "+" before sending its next part
    continuation: asyncio.Future[str] | None = None


class _ImapProtocol(asyncio.Protocol):
    def __init__(
        self, parser: ResponseParser, stats: TransportStats, sinks: list[LiteralSink]
    ) -> None:
        self.parser = parser
        self.sinks = sinks
        self.stats = stats
        self.transport: asyncio.Transport | None = None
        self.pending: collections.OrderedDict[str, _Pending] = collections.OrderedDict()
        self.unsolicited: list[Response] = []
        self.greeting: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.error: BaseException | None = None
        self.inflate: zlib._Decompress | None = None
        self.deflate: zlib._Compress | None = None

    # asyncio callbacks -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have the same methods
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.stats.wire_in += len(data)
        if self.inflate is not None:
            data = self.inflate.decompress(data)
        self.stats.bytes_in += len(data)
        try:
            responses = self.parser.feed(data)
        except ImapProtocolError as exc:
            self._fail(exc)
            if self.transport is not None:
                self.transport.abort()
            return
        for resp in responses:
            self._dispatch(resp)

    def connection_lost(self, exc: Exception | None) -> None:
        for sink in self.sinks:
            abandon = getattr(sink, "abandon", None)
            if abandon is not None:
                abandon()
        self._fail(
            ImapConnectError(
                "connection closed by the server" + (f" ({exc})" if exc is not None else "")
            )
        )
        if not self.closed.done():
            self.closed.set_result(None)

    # dispatch --------------------------------------------------------------------------------

    def _dispatch(self, resp: Response) -> None:
        if isinstance(resp, Tagged):
            pending = self.pending.pop(resp.tag, None)
            if pending is None:
                self._fail(ImapProtocolError(f"response for unknown tag {resp.tag!r}"))
                return
            if not pending.future.done():
                pending.future.set_result(CommandResult(resp, tuple(pending.untagged)))
            return
        if isinstance(resp, Continuation):
            for pending in self.pending.values():
                if pending.continuation is not None and not pending.continuation.done():
                    pending.continuation.set_result(resp.text)
                    return
            # a "+" nobody asked for (a SASL error challenge): an empty line cancels it
            self.write(b"\r\n")
            return
        if not self.greeting.done():
            self.greeting.set_result(resp)
            return
        if self.pending:
            next(iter(self.pending.values())).untagged.append(resp)
        else:
            self.unsolicited.append(resp)
        if isinstance(resp, Untagged) and resp.kind == "BYE":
            self.error = ImapConnectError(f"server said BYE: {resp.text}")

    def _fail(self, exc: BaseException) -> None:
        if self.error is None or isinstance(exc, ImapProtocolError):
            self.error = exc
        futures: list[asyncio.Future[Any]] = [self.greeting]
        for pending in self.pending.values():
            futures.append(pending.future)
            if pending.continuation is not None:
                futures.append(pending.continuation)
        self.pending.clear()
        for fut in futures:
            if not fut.done():
                fut.set_exception(exc)
                # a pipelined command behind the one that failed may never be awaited: this
                # marks the error as seen so asyncio does not log it at garbage collection
                fut.exception()

    def write(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            raise self.error or ImapConnectError("connection is closed")
        if self.deflate is not None:
            data = self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        self.stats.bytes_out += len(data)
        self.transport.write(data)


def translate_connect_error(exc: BaseException, host: str, port: int) -> BaseException:
    where = f"{host}:{port}"
    if isinstance(exc, MailError):
        return exc
    common = connect_failure(exc, where)
    if common is not None:
        return common
    if isinstance(exc, OSError) and exc.errno is not None and exc.errno < 0:  # gaierror
        return ImapUnknownHost(f"{host}: unknown host ({exc.strerror})")
    if isinstance(exc, OSError):
        return ImapConnectError(f"{where}: cannot connect ({exc.strerror or exc})")
    return ImapConnectError(f"{where}: {exc}")


class NativeConnection:
    """One IMAP connection with pipelining. Use :func:`connect` to make one."""

    def __init__(
        self,
        protocol: _ImapProtocol,
        host: str,
        port: int,
        timeout: float,
    ) -> None:
        self._protocol = protocol
        self.host = host
        self.port = port
        self.timeout = timeout
        self.capabilities: frozenset[str] = frozenset()
        self.stats = protocol.stats
        self.compressed = False
        self._tags = itertools.count(1)
        self._prefix = f"M{next(_tag_prefixes)}_"
        # one command at a time may be in a continuation exchange
        self._literal_lock = asyncio.Lock()

    @property
    def unsolicited(self) -> list[Response]:
        return self._protocol.unsolicited

    def _start(self, command: Command) -> tuple[_Pending, bytes, list[bytes]]:
        """Register ``command``: its pending entry, the tag to write before it, its parts."""
        proto = self._protocol
        if proto.error is not None:
            raise proto.error
        tag = f"{self._prefix}{next(self._tags)}"
        fut: asyncio.Future[CommandResult] = asyncio.get_running_loop().create_future()
        pending = _Pending(tag, fut)
        parts = [command] if isinstance(command, bytes) else list(command)
        proto.pending[tag] = pending
        self.stats.commands += 1
        return pending, tag.encode() + b" ", parts

    async def _send_parts(self, pending: _Pending, parts: list[bytes]) -> None:
        loop = asyncio.get_running_loop()
        async with self._literal_lock:
            for part in parts[:-1]:
                pending.continuation = loop.create_future()
                self._protocol.write(part)  # a message body, maybe: not copied to add CRLF
                self._protocol.write(b"\r\n")
                await self._wait(pending.continuation)
                pending.continuation = None
            self._protocol.write(parts[-1])
            self._protocol.write(b"\r\n")

    async def _wait(self, fut: asyncio.Future[_T]) -> _T:
        try:
            async with asyncio.timeout(self.timeout):
                return await fut
        except TimeoutError:
            self._protocol._fail(
                ImapConnectError(f"{self.host}:{self.port}: no answer in {self.timeout:.0f} s")
            )
            self.abort()
            raise self._protocol.error or ImapConnectError("timed out") from None

    async def execute(self, command: Command) -> CommandResult:
        """Send one command and wait for its completion."""
        return (await self.pipeline([command]))[0]

    async def pipeline(self, commands: Sequence[Command]) -> list[CommandResult]:
        """Send all ``commands`` at once, then wait for all of them: one round trip."""
        if not commands:
            return []
        began = time.monotonic()
        started = [self._start(cmd) for cmd in commands]
        self.stats.round_trips += 1
        if all(len(parts) == 1 for _, _, parts in started):
            if sum(len(parts[0]) for _, _, parts in started) < _JOIN_BELOW:
                self._protocol.write(
                    b"".join(head + parts[0] + b"\r\n" for _, head, parts in started)
                )
            else:
                # megabytes of APPEND literals (restore): written as they are, not copied
                # into one more buffer with their tags
                for _, head, parts in started:
                    self._protocol.write(head)
                    self._protocol.write(parts[0])
                    self._protocol.write(b"\r\n")
        else:
            for pending, head, parts in started:
                await self._send_parts(pending, [head + parts[0], *parts[1:]])
        results = []
        for pending, _, _ in started:
            results.append(await self._wait(pending.future))
        self.stats.timed_round_trip(time.monotonic() - began)
        return results

    async def starttls(self, context: ssl.SSLContext) -> None:
        result = await self.execute(b"STARTTLS")
        if not result.ok:
            raise ImapTLSError(f"{self.host}: STARTTLS refused: {result.tagged.text}")
        proto = self._protocol
        assert proto.transport is not None
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout):
                new = await loop.start_tls(
                    proto.transport, proto, context, server_hostname=self.host
                )
        except (OSError, TimeoutError) as exc:
            self.abort()
            raise translate_connect_error(exc, self.host, self.port) from None
        proto.transport = cast(asyncio.Transport, new)

    def start_compression(self) -> None:
        """Switch both directions to raw DEFLATE (after ``COMPRESS DEFLATE`` said OK)."""
        self._protocol.inflate = zlib.decompressobj(-15)
        self._protocol.deflate = zlib.compressobj(1, zlib.DEFLATED, -15)
        self.compressed = True

    def abort(self) -> None:
        if self._protocol.transport is not None:
            self._protocol.transport.abort()

    async def aclose(self) -> None:
        """Send LOGOUT (without waiting a round trip for the answer) and close the socket."""
        proto = self._protocol
        if proto.transport is not None and not proto.transport.is_closing():
            if proto.error is None:
                with contextlib.suppress(Exception):
                    _, head, parts = self._start(b"LOGOUT")
                    proto.write(head + parts[0] + b"\r\n")
            proto.transport.close()  # flushes what is buffered, then closes
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5.0):
                await asyncio.shield(proto.closed)


async def connect(
    host: str,
    port: int,
    *,
    tls: ssl.SSLContext | None,
    op_timeout: float,
    literal_factory: Callable[[int], LiteralSink] | None = None,
    spill_threshold: int = 8 * 1024 * 1024,
) -> NativeConnection:
    """Open a connection (TLS when ``tls`` is given) and read the greeting.

    Raises ImapConnectError / ImapTLSError with a message naming host and port.
    """
    loop = asyncio.get_running_loop()
    stats = TransportStats()
    sinks: list[LiteralSink] = []
    tracked = None
    if literal_factory is not None:
        make = literal_factory

        def tracked(size: int) -> LiteralSink:
            # remember open sinks, so a connection lost mid-literal leaves no partial file
            sinks[:] = [s for s in sinks if not getattr(s, "finished", False)]
            sinks.append(make(size))
            return sinks[-1]

    parser = ResponseParser(literal_factory=tracked, spill_threshold=spill_threshold)
    try:
        async with asyncio.timeout(op_timeout):
            _, proto = await loop.create_connection(
                lambda: _ImapProtocol(parser, stats, sinks),
                host,
                port,
                ssl=tls,
                server_hostname=host if tls is not None else None,
            )
            conn = NativeConnection(proto, host, port, op_timeout)
            try:
                greeting = await proto.greeting
            except BaseException:
                conn.abort()
                raise
    except (OSError, TimeoutError) as exc:
        raise translate_connect_error(exc, host, port) from None
    if isinstance(greeting, Untagged) and greeting.kind == "BYE":
        conn.abort()
        raise ImapConnectError(f"{host}:{port}: server refused the session: {greeting.text}")
    conn.unsolicited.append(greeting)
    return conn
