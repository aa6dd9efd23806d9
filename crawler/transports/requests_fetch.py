"""The blocking fetch port on requests/urllib3: the twin of :mod:`aiohttp_fetch` (mirrored names:
``fetch(request) -> FetchResult`` / ``close()``), for the threads, gevent and sequential modes.

Same contract as the asyncio port: one GET, no redirects (the flow follows them hop by hop), the
body as received (``decode_content=False``, so the WARC record and its Content-Encoding agree),
streamed with a byte cap, a total timeout, no cookies, no proxies from the environment (the test
bed is loopback only), and third-party errors translated into the project's error tree here.

Each thread (or greenlet, when threading is monkey-patched) gets its own ``requests.Session``:
sessions are not documented as thread-safe, and one session per worker keeps one keep-alive
connection per worker, as the classic thread-pool crawler does.
"""

from __future__ import annotations

import http.client
import http.cookiejar
import threading
import time
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3

from crawler.core.flow import FetchRequest, FetchResult
from foundation.errors import (
    ConnectError,
    ConnectionLost,
    FetchError,
    FetchTimeout,
    HeadersTooLarge,
)

__all__ = ["RequestsFetcher"]

CHUNK = 64 * 1024
MAX_HEAD = 64 * 1024  # the same cap as the asyncio port


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
            if _is_connect_failure(exc):
                raise ConnectError(f"cannot connect to {_netloc(request.url)}: {exc}") from exc
            if _is_head_too_large(exc):
                raise HeadersTooLarge(f"response head too large: {exc}"[:300]) from exc
            raise ConnectionLost(f"connection lost: {exc}"[:300]) from exc
        except (requests.exceptions.ChunkedEncodingError, urllib3.exceptions.ProtocolError) as exc:
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
            raise FetchError(f"bad response: {exc}"[:300]) from exc
        except ConnectionError as exc:
            raise ConnectionLost(f"connection lost: {exc}"[:300]) from exc

    def _fetch(self, request: FetchRequest, started: float) -> FetchResult:
        deadline = started + request.timeout
        # requests' defaults (Accept */*, Accept-Encoding with br and zstd when their decoders
        # are installed) match what aiohttp sends; the flow's headers (User-Agent) win
        headers = dict(request.headers)
        resp = self._session().get(
            request.url,
            headers=headers,
            allow_redirects=False,
            stream=True,
            timeout=(min(request.timeout, 15.0), request.timeout),
        )
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
            chunks: list[bytes] = []
            size = 0
            truncated = False
            # read1, not stream(): stream(n) blocks until n bytes came, so a slow drip would
            # outlive the total timeout; read1 returns what one socket read brought
            while chunk := raw.read1(CHUNK, decode_content=False):
                if time.time() > deadline:
                    raise FetchTimeout(f"timed out after {time.time() - started:.1f} s")
                if size + len(chunk) > request.max_bytes:
                    chunks.append(chunk[: request.max_bytes - size])
                    size = request.max_bytes
                    truncated = True
                    break  # the connection is dropped below, not drained
                chunks.append(chunk)
                size += len(chunk)
            version = {10: "1.0", 11: "1.1", 20: "2"}.get(int(raw.version or 11), "1.1")
            return FetchResult(
                url=request.url,
                status=resp.status_code,
                reason=resp.reason or "",
                http_version=version,
                headers=tuple(pairs),
                body=b"".join(chunks),
                truncated=truncated,
                request_head=_request_head(resp.request),
                started_at=started,
                received_at=time.time(),
                peer=peer,
            )
        finally:
            resp.close()

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


def _is_connect_failure(exc: BaseException) -> bool:
    # urllib3 wraps a refused/unreachable connect in MaxRetryError(reason=NewConnectionError)
    seen: set[int] = set()
    node: BaseException | None = exc
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        if isinstance(
            node, urllib3.exceptions.NewConnectionError | urllib3.exceptions.NameResolutionError
        ):
            return True
        reason = getattr(node, "reason", None)
        if isinstance(reason, BaseException):
            if isinstance(reason, urllib3.exceptions.NewConnectionError):
                return True
            node = reason
            continue
        args = getattr(node, "args", ())
        nested = next((a for a in args if isinstance(a, BaseException)), None)
        node = nested or node.__cause__ or node.__context__
    return False


def _is_head_too_large(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "got more than" in text or "line too long" in text or "header line" in text
