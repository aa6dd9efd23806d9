"""The blocking fetch port on requests/urllib3: the twin of :mod:`aiohttp_fetch` (mirrored names:
``fetch(request) -> FetchResult`` / ``close()``), for the threads, gevent and sequential modes.

Same contract as the asyncio port: one GET, no redirects (the flow follows them hop by hop), the
body as received (``decode_content=False``, so the WARC record and its Content-Encoding agree),
streamed with a byte cap, a total timeout, no cookies, no proxies from the environment (the test
bed is loopback only), and third-party errors translated into the project's error tree here.

Redirect responses are read like any other: ``Session.send`` would hand a 3xx to
``resolve_redirects``, which reads the whole body (``resp.content``) even with
``allow_redirects=False, stream=True``, so the request goes through the session's adapter instead.

Each thread (or greenlet, when threading is monkey-patched) gets its own ``requests.Session``:
sessions are not documented as thread-safe, and one session per worker keeps one keep-alive
connection per worker, as the classic thread-pool crawler does.
"""

from __future__ import annotations

import contextlib
import http.client
import http.cookiejar
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import requests
import requests.adapters
import urllib3
import urllib3.connectionpool

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

__all__ = ["RequestsFetcher"]

CHUNK = 64 * 1024
MAX_HEAD = 64 * 1024  # the same cap as the asyncio port


# The request target of the fetch running in this thread (greenlet, when patched), sent as is.
_TARGET = threading.local()
# The connection that fetch runs on (``interrupt`` shuts its socket down).
_IN_FLIGHT = threading.local()


class _ExactTarget(urllib3.connectionpool.HTTPConnectionPool):
    """Sends the request target the crawler chose, byte for byte: the URL a page linked to (see
    :func:`crawler.core.urls.exact_url`). requests' ``requote_uri`` and urllib3's
    ``_encode_target`` both rewrite targets ("/%zz" -> "/%25zz", "%7e" -> "%7E"), and the
    asyncio port sends them unchanged; one URL must be one request in every mode."""

    def _make_request(self, conn: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        exact: str | None = getattr(_TARGET, "value", None)
        _IN_FLIGHT.conn = conn
        return super()._make_request(conn, method, exact or url, *args, **kwargs)


class _ExactHTTPPool(_ExactTarget):
    pass


class _ExactHTTPSPool(_ExactTarget, urllib3.connectionpool.HTTPSConnectionPool):
    pass


class _ExactAdapter(requests.adapters.HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _ExactHTTPPool,
            "https": _ExactHTTPSPool,
        }


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    def set_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return False

    def return_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return False


class RequestsFetcher:
    """Blocking GETs; safe to call from many threads (one Session per thread). ``close()`` ends
    every session it made."""

    def __init__(self, *, timeout: float = 30.0) -> None:
        self._timeout = timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._sessions: list[requests.Session] = []
        self._closed = False

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False  # no proxies or netrc from the environment
            session.cookies.set_policy(_NoCookies())
            session.mount("http://", _ExactAdapter())
            session.mount("https://", _ExactAdapter())
            # the same request head as the aiohttp port, in its order (the flow's User-Agent
            # takes the first place): requests' defaults put Accept-Encoding before Accept and
            # add "Connection: keep-alive" (HTTP/1.1's default anyway), so servers and the WARC
            # request records saw another head in the blocking modes
            session.headers = requests.structures.CaseInsensitiveDict(
                {
                    "User-Agent": requests.utils.default_user_agent(),
                    "Accept": "*/*",
                    "Accept-Encoding": requests.utils.DEFAULT_ACCEPT_ENCODING,
                }
            )
            with self._lock:
                if self._closed:
                    session.close()
                    raise FetchError("the fetcher is closed")
                self._sessions.append(session)
            self._local.session = session
        return session

    def fetch(self, request: FetchRequest) -> FetchResult:
        """GET ``request.url`` once. Raises a :class:`FetchError` subclass on failure."""
        started = time.time()
        try:
            return self._fetch(request, started)
        except FetchError:
            raise
        except requests.exceptions.Timeout as exc:
            raise FetchTimeout(f"timed out after {time.time() - started:.1f} s") from exc
        except requests.exceptions.ConnectionError as exc:
            if _is_connect_failure(exc) or isinstance(exc, requests.exceptions.SSLError):
                kind = _connect_error_class(exc)
                raise kind(f"cannot connect to {_netloc(request.url)}: {_reason(exc)}") from exc
            if _is_head_too_large(exc):
                raise HeadersTooLarge(f"response head too large: {exc}"[:300]) from exc
            if _is_bad_framing(exc):
                raise BadResponse(f"bad response: {exc}"[:300]) from exc
            raise ConnectionLost(f"connection lost: {exc}"[:300]) from exc
        except (requests.exceptions.ChunkedEncodingError, urllib3.exceptions.ProtocolError) as exc:
            if _is_bad_framing(exc):
                raise BadResponse(f"bad response: {exc}"[:300]) from exc
            raise ConnectionLost(f"connection lost: {exc}"[:300]) from exc
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema) as exc:
            raise FetchError(f"invalid URL: {exc}") from exc
        except requests.exceptions.RequestException as exc:
            raise FetchError(f"{type(exc).__name__}: {exc}"[:300]) from exc
        except urllib3.exceptions.HTTPError as exc:
            raise FetchError(f"{type(exc).__name__}: {exc}"[:300]) from exc
        except http.client.HTTPException as exc:
            if _is_head_too_large(exc):
                raise HeadersTooLarge(f"response head too large: {exc}"[:300]) from exc
            raise BadResponse(f"bad response: {exc}"[:300]) from exc
        except ConnectionError as exc:
            raise ConnectionLost(f"connection lost: {exc}"[:300]) from exc

    def _fetch(self, request: FetchRequest, started: float) -> FetchResult:
        session = self._session()
        # requests' defaults (Accept */*, Accept-Encoding with br and zstd when their decoders
        # are installed) match what aiohttp sends; the flow's headers (User-Agent) win
        prepared = session.prepare_request(
            requests.Request("GET", request.url, headers=dict(request.headers))
        )
        prepared.url = request.url  # exact: requote_uri would re-code its escapes
        _TARGET.value = prepared.path_url
        try:
            resp = _send(session, prepared, request.timeout)
        except BaseException:
            _IN_FLIGHT.conn = None
            raise
        finally:
            _TARGET.value = None
        try:
            raw = resp.raw
            pairs = [
                (k.encode("latin-1", "replace"), v.encode("latin-1", "replace"))
                for k, v in raw.headers.items()
            ]
            head_size = sum(len(k) + len(v) + 4 for k, v in pairs)
            if head_size > MAX_HEAD:
                raise HeadersTooLarge(f"response head of {head_size} bytes (limit {MAX_HEAD})")
            peer = _peer(raw)
            body, truncated = _read_capped(raw, request.max_bytes, started, request.timeout)
            version = {10: "1.0", 11: "1.1", 20: "2"}.get(int(raw.version or 11), "1.1")
            return FetchResult(
                url=request.url,
                status=resp.status_code,
                reason=resp.reason or "",
                http_version=version,
                headers=tuple(pairs),
                body=body,
                truncated=truncated,
                request_head=_request_head(prepared),
                started_at=started,
                received_at=time.time(),
                peer=peer,
            )
        finally:
            resp.close()
            _IN_FLIGHT.conn = None

    def interrupt(self) -> None:
        """End the fetch under way in this thread now: its socket is shut down, so the read it
        waits in returns (an error or a short body, for the caller to discard). Meant for a
        signal handler in the thread that fetches (the sequential mode's Ctrl-C): unlike an
        exception raised there, it cannot land inside urllib3's pool lock and leave it held
        (a later fetch, or ``close``, then waited forever for it). A fetch still connecting
        has no socket yet: it ends at its connect timeout."""
        sock = getattr(getattr(_IN_FLIGHT, "conn", None), "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()

    def __enter__(self) -> RequestsFetcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _send(
    session: requests.Session, prepared: requests.PreparedRequest, timeout: float
) -> requests.Response:
    """One GET through the session's adapter (its pool), never through ``Session.send``."""
    adapter = session.get_adapter(prepared.url or "")
    options: dict[str, Any] = {
        "stream": True,
        "timeout": (min(timeout, 15.0), timeout),
        "verify": session.verify,
        "cert": session.cert,
        "proxies": {},  # trust_env is off: no proxy from the environment
    }
    try:
        return adapter.send(prepared, **options)
    except requests.exceptions.ConnectionError as exc:
        if not _dropped_before_head(exc):
            raise
    # aiohttp re-sends an idempotent request once when the connection drops before the response
    # head (RFC 9112 9.3.1: a reused keep-alive connection the server had just closed); the
    # twin does the same, so both ports send a URL equally often
    return adapter.send(prepared, **options)


def _read_capped(raw: Any, max_bytes: int, started: float, timeout: float) -> tuple[bytes, bool]:
    """The body as received up to ``max_bytes``; True when there was more (not drained)."""
    chunks: list[bytes] = []
    size = 0
    # read1, not stream(): stream(n) blocks until n bytes came, so a slow drip would outlive the
    # total timeout; read1 returns what one socket read brought
    while chunk := raw.read1(CHUNK, decode_content=False):
        if time.time() > started + timeout:
            raise FetchTimeout(f"timed out after {time.time() - started:.1f} s")
        if size + len(chunk) > max_bytes:
            chunks.append(chunk[: max_bytes - size])
            return b"".join(chunks), True  # the connection is dropped by the caller
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), False


def _request_head(prepared: requests.PreparedRequest) -> bytes:
    target = prepared.path_url or "/"
    lines = [f"{prepared.method or 'GET'} {target} HTTP/1.1"]
    sent = dict(prepared.headers)
    if not any(k.lower() == "host" for k in sent):
        lines.append(f"Host: {_netloc(prepared.url or '')}")  # http.client adds it on the wire
    lines += [f"{k}: {v}" for k, v in sent.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")


def _netloc(url: str) -> str:
    return urlsplit(url).netloc


def _peer(raw: Any) -> str | None:
    conn = getattr(raw, "connection", None)
    sock = getattr(conn, "sock", None)
    try:
        info = sock.getpeername() if sock is not None else None
    except OSError:
        return None
    return str(info[0]) if isinstance(info, tuple) and info else None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every error it wraps: urllib3 nests them in ``reason`` and ``args``,
    http.client in ``__context__``."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        node = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        yield node
        reason = getattr(node, "reason", None)
        nested = (reason, *node.args, node.__cause__, node.__context__)
        todo += [a for a in nested if isinstance(a, BaseException)]


def _is_connect_failure(exc: BaseException) -> bool:
    # urllib3 wraps a refused/unreachable connect in MaxRetryError(reason=NewConnectionError)
    connect = urllib3.exceptions.NewConnectionError | urllib3.exceptions.NameResolutionError
    return any(isinstance(node, connect) for node in _chain(exc))


def _connect_error_class(exc: BaseException) -> type[ConnectError]:
    """The same class the aiohttp port raises for the same failure to connect."""
    nodes = list(_chain(exc))
    if any(isinstance(n, requests.exceptions.SSLError | ssl.SSLError) for n in nodes):
        return TLSError
    if any(isinstance(n, urllib3.exceptions.NameResolutionError) for n in nodes):
        return UnknownHost
    if any(isinstance(n, ConnectionRefusedError) for n in nodes):
        return ConnectionRefused
    return ConnectError


def _reason(exc: BaseException) -> str:
    """The innermost cause's words ("[Errno 111] Connection refused"), not urllib3's
    "HTTPConnectionPool(...): Max retries exceeded" wrapping."""
    nodes = [n for n in _chain(exc) if str(n)]
    return str(nodes[-1] if nodes else exc)[:300]


def _dropped_before_head(exc: requests.exceptions.ConnectionError) -> bool:
    """Reset or closed after the request was sent and before a response head came."""
    if isinstance(exc, requests.exceptions.Timeout | requests.exceptions.SSLError):
        return False
    if _is_connect_failure(exc):
        return False
    return any(isinstance(node, ConnectionError) for node in _chain(exc))


def _is_bad_framing(exc: BaseException) -> bool:
    """The server sent bytes that are not HTTP (status line, chunk-size line), as opposed to
    sending too few of them."""
    for node in _chain(exc):
        if isinstance(node, urllib3.exceptions.InvalidChunkLength):
            return True
        if isinstance(node, http.client.BadStatusLine) and not isinstance(node, ConnectionError):
            return True  # RemoteDisconnected is a BadStatusLine too, but a closed connection
        if isinstance(node, http.client.IncompleteRead) and _bad_chunk_size(node):
            return True
    return False


def _bad_chunk_size(incomplete: http.client.IncompleteRead) -> bool:
    # http.client reads a chunk-size line with int(line, 16) and turns the ValueError into
    # IncompleteRead(b''): the line was b'' when the connection closed there, anything else
    # when the server wrote garbage
    cause = incomplete.__context__
    return isinstance(cause, ValueError) and not str(cause).endswith("b''")


def _is_head_too_large(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "got more than" in text or "line too long" in text or "header line" in text
