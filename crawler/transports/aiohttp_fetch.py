"""The asyncio fetch port on aiohttp: one GET, no redirects, raw head, body streamed with a cap.

The port is deliberately small (``fetch(request) -> FetchResult`` / ``aclose()``) so a blocking
twin on ``requests`` mirrors it. Bodies stay as received (``auto_decompress=False``) so the WARC
record and its Content-Encoding agree; decoding for the parser happens later, with its own cap.
aiohttp errors are translated here, at the boundary, into the project's error tree.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import Iterator
from types import TracebackType

import aiohttp
from aiohttp import http_exceptions
from yarl import URL

from crawler.core.flow import FetchRequest, FetchResult
from foundation.errors import (
    BadResponse,
    ConnectError,
    ConnectionLost,
    ConnectionRefused,
    FetchError,
    FetchTimeout,
    HeadersTooLarge,
    TLSError,
    UnknownHost,
)

__all__ = ["AiohttpFetcher"]

# aiohttp's own defaults; a head over these is a recorded HeadersTooLarge, not a crash.
MAX_LINE = 8190
MAX_FIELD = 8190
MAX_HEADERS = 128
# aiohttp bounds each line and the count, not the whole head; 80 cookies of 1 KB pass both.
MAX_HEAD = 64 * 1024


class AiohttpFetcher:
    """Owns one ClientSession; create inside a running loop, close with :meth:`aclose`."""

    def __init__(
        self,
        *,
        concurrency: int = 256,
        per_host: int = 8,
        timeout: float = 30.0,
    ) -> None:
        connector = aiohttp.TCPConnector(
            limit=concurrency,
            limit_per_host=per_host,
            ttl_dns_cache=300,
            use_dns_cache=True,
            keepalive_timeout=30,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            # a crawler must not carry one page's cookies to the next (nor pay to parse them)
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, 15.0)),
            max_line_size=MAX_LINE,
            max_field_size=MAX_FIELD,
            max_headers=MAX_HEADERS,
            raise_for_status=False,
        )
        self._option_cache: dict[
            tuple[tuple[tuple[str, str], ...], float],
            tuple[dict[str, str], aiohttp.ClientTimeout],
        ] = {}

    async def fetch(self, request: FetchRequest) -> FetchResult:
        """GET ``request.url`` once. Raises a :class:`FetchError` subclass on failure."""
        started = time.time()
        try:
            return await self._fetch(request, started)
        except FetchError:
            raise
        except TimeoutError as exc:  # asyncio.TimeoutError is TimeoutError on 3.11
            raise FetchTimeout(f"timed out after {time.time() - started:.1f} s") from exc
        except aiohttp.ClientConnectorError as exc:
            kind = _connect_error_class(exc)
            raise kind(f"cannot connect to {exc.host}:{exc.port}: {exc.os_error}") from exc
        except aiohttp.ClientSSLError as exc:
            raise TLSError(f"TLS failed: {exc}"[:300]) from exc
        except aiohttp.ClientResponseError as exc:
            if _is_head_too_large(exc):
                raise HeadersTooLarge(f"response head too large: {exc.message}"[:300]) from exc
            raise BadResponse(_bad(exc.message)) from exc
        except http_exceptions.LineTooLong as exc:
            raise HeadersTooLarge(f"response head too large: {exc.message}"[:300]) from exc
        except http_exceptions.HttpProcessingError as exc:
            # aiohttp's pure-Python parser (no C extension) raises its own error on a bad chunk
            raise BadResponse(_bad(exc.message)) from exc
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
            raise ConnectionLost(f"connection lost: {exc}"[:300]) from exc
        except aiohttp.ClientOSError as exc:
            raise ConnectionLost(f"connection lost: {exc}"[:300]) from exc
        except aiohttp.InvalidURL as exc:
            raise FetchError(f"invalid URL: {exc}") from exc
        except aiohttp.ClientError as exc:
            raise FetchError(f"{type(exc).__name__}: {exc}"[:300]) from exc
        except ConnectionError as exc:
            raise ConnectionLost(f"connection lost: {exc}"[:300]) from exc

    def _options(self, request: FetchRequest) -> tuple[dict[str, str], aiohttp.ClientTimeout]:
        # every request of a crawl carries the same headers and timeout: build them once
        key = (request.headers, request.timeout)
        found = self._option_cache.get(key)
        if found is None:
            timeout = aiohttp.ClientTimeout(
                total=request.timeout, sock_connect=min(request.timeout, 15.0)
            )
            found = (dict(request.headers), timeout)
            if len(self._option_cache) < 64:
                self._option_cache[key] = found
        return found

    async def _fetch(self, request: FetchRequest, started: float) -> FetchResult:
        headers, timeout = self._options(request)
        async with self._session.get(
            # encoded: sent as the crawler chose it (the exact URL), not re-coded by yarl
            URL(request.url, encoded=True),
            headers=headers,
            allow_redirects=False,
            timeout=timeout,
        ) as resp:
            head_size = sum(len(k) + len(v) + 4 for k, v in resp.raw_headers)
            if head_size > MAX_HEAD:
                raise HeadersTooLarge(f"response head of {head_size} bytes (limit {MAX_HEAD})")
            peer = None
            if resp.connection is not None and resp.connection.transport is not None:
                info = resp.connection.transport.get_extra_info("peername")
                if isinstance(info, tuple) and info:
                    peer = str(info[0])
            with _parser_errors_reach_body(resp):
                body, truncated = await _read_capped(resp, request.max_bytes)
            info_ = resp.request_info
            target = info_.url.raw_path_qs or "/"
            head = [f"GET {target} HTTP/1.1"]
            head += [f"{k}: {v}" for k, v in info_.headers.items()]
            request_head = ("\r\n".join(head) + "\r\n\r\n").encode("utf-8", "surrogateescape")
            version = resp.version
            return FetchResult(
                url=request.url,
                status=resp.status,
                reason=resp.reason or "",
                http_version=f"{version.major}.{version.minor}" if version else "1.1",
                headers=tuple(resp.raw_headers),
                body=body,
                truncated=truncated,
                request_head=request_head,
                started_at=started,
                received_at=time.time(),
                peer=peer,
            )

    async def aclose(self) -> None:
        await self._session.close()
        # let the connector's transports finish closing (avoids ResourceWarnings at loop exit)
        await asyncio.sleep(0)

    async def __aenter__(self) -> AiohttpFetcher:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


async def _read_capped(resp: aiohttp.ClientResponse, max_bytes: int) -> tuple[bytes, bool]:
    """The body up to ``max_bytes``; True when there was more."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_any():
        if size + len(chunk) > max_bytes:
            chunks.append(chunk[: max_bytes - size])
            # drop the connection: reading the rest of a huge body only to discard it would
            # cost the time the cap is there to save
            resp.close()
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), False


# closed-futures that already have _retrieve attached (one per connection, not per response)
_WATCHED: weakref.WeakSet[asyncio.Future[None]] = weakref.WeakSet()


def _retrieve(closed: asyncio.Future[None]) -> None:
    # the future exists only because we asked for it: take its error so asyncio does not log it
    if not closed.cancelled():
        closed.exception()


@contextlib.contextmanager
def _parser_errors_reach_body(resp: aiohttp.ClientResponse) -> Iterator[None]:
    """Make a malformed chunk fail the body read at once, as BadResponse.

    aiohttp 3.14's C parser fails the connection's protocol on a bad chunk-size line after the
    head, and closes it, but never tells the body stream: the read would wait for the total
    timeout. Watching the connection's close puts the parser's error on the stream.
    """
    protocol = resp.connection.protocol if resp.connection is not None else None
    closed = protocol.closed if protocol is not None else None
    if protocol is None or closed is None:
        yield  # the body is already complete (or the connection already gone)
        return

    def on_closed(_: asyncio.Future[None]) -> None:
        failure = protocol.exception()
        if isinstance(failure, http_exceptions.HttpProcessingError) and not resp.content.is_eof():
            resp.content.set_exception(BadResponse(_bad(failure.message)))

    if closed not in _WATCHED:
        _WATCHED.add(closed)
        closed.add_done_callback(_retrieve)
    closed.add_done_callback(on_closed)
    try:
        yield
    finally:
        # a pooled connection serves many responses: do not keep each one alive through it
        closed.remove_done_callback(on_closed)


def _bad(message: object) -> str:
    # the C parser's messages draw a caret under the bad byte on extra lines
    return " ".join(f"bad response: {message}".split())[:300]


def _is_head_too_large(exc: aiohttp.ClientResponseError) -> bool:
    cause = exc.__cause__
    if isinstance(cause, http_exceptions.LineTooLong):
        return True
    text = str(exc.message)
    return "Got more than" in text or "Too many headers" in text or "too long" in text.lower()


def _connect_error_class(exc: aiohttp.ClientConnectorError) -> type[ConnectError]:
    """Which failure to connect (the requests port tells the same ones apart)."""
    if isinstance(exc, aiohttp.ClientSSLError):
        return TLSError
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return UnknownHost
    if isinstance(exc.os_error, ConnectionRefusedError):
        return ConnectionRefused
    return ConnectError
