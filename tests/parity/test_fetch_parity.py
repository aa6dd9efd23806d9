"""The two fetch ports (aiohttp for asyncio/processes, requests for threads/gevent/sequential)
answer the same request the same way: status, body as received, header names, the byte cap, and
the same error class for each fault, against the real test-bed fault server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from crawler.core.flow import FetchRequest, FetchResult
from crawler.transports.aiohttp_fetch import AiohttpFetcher
from crawler.transports.requests_fetch import RequestsFetcher
from foundation.errors import (
    ConnectError,
    ConnectionLost,
    FetchError,
    FetchTimeout,
    HeadersTooLarge,
)
from testbed._proc import free_port
from testbed.faults import FaultServer

Outcome = FetchResult | FetchError


def via_aiohttp(request: FetchRequest) -> Outcome:
    async def go() -> Outcome:
        async with AiohttpFetcher(timeout=request.timeout) as fetcher:
            try:
                return await fetcher.fetch(request)
            except FetchError as exc:
                return exc

    return asyncio.run(go())


def via_requests(request: FetchRequest) -> Outcome:
    with RequestsFetcher(timeout=request.timeout) as fetcher:
        try:
            return fetcher.fetch(request)
        except FetchError as exc:
            return exc


PORTS: dict[str, Callable[[FetchRequest], Outcome]] = {
    "aiohttp": via_aiohttp,
    "requests": via_requests,
}


def both(url: str, *, max_bytes: int = 1 << 20, timeout: float = 10.0) -> list[Outcome]:
    req = FetchRequest(url, headers=(("User-Agent", "parity-test"),), max_bytes=max_bytes)
    req = FetchRequest(req.url, req.headers, req.max_bytes, timeout)
    return [fetch(req) for fetch in PORTS.values()]


def names(result: FetchResult) -> set[bytes]:
    return {k.lower() for k, _ in result.headers}


def head_names(result: FetchResult) -> dict[bytes, bytes]:
    """Request header names -> values as archived, except the client's own housekeeping."""
    lines = result.request_head.split(b"\r\n")[1:]
    pairs = (line.split(b": ", 1) for line in lines if b": " in line)
    skip = {b"connection", b"user-agent"}
    return {k.lower(): v for k, v in pairs if k.lower() not in skip} | {
        b"ua": b"parity-test" if b"User-Agent: parity-test" in result.request_head else b""
    }


@pytest.mark.parametrize("path", ["/ok", "/page/3", "/status/404", "/latin1", "/no-content-type"])
def test_same_response(fault_server: FaultServer, path: str) -> None:
    a, r = both(fault_server.url(path))
    assert isinstance(a, FetchResult) and isinstance(r, FetchResult)
    assert (a.status, a.reason, a.http_version) == (r.status, r.reason, r.http_version)
    assert a.body == r.body and a.body
    assert a.header("Content-Type") == r.header("Content-Type")
    assert names(a) - {b"date"} == names(r) - {b"date"}
    assert not a.truncated and not r.truncated
    for res in (a, r):
        assert res.request_head.startswith(b"GET " + path.encode() + b" HTTP/1.1\r\n")
        assert b"User-Agent: parity-test" in res.request_head
        assert res.received_at >= res.started_at
    assert head_names(a) == head_names(r)
    assert r.peer == "127.0.0.1"
    assert a.peer in (None, "127.0.0.1")  # aiohttp may have released the connection already


def test_redirect_is_not_followed(fault_server: FaultServer) -> None:
    a, r = both(fault_server.url("/redirect/self"))
    assert isinstance(a, FetchResult) and isinstance(r, FetchResult)
    assert a.status == r.status and 300 <= a.status < 400
    assert a.header("Location") == r.header("Location")


def test_body_kept_compressed_and_capped(fault_server: FaultServer) -> None:
    # a gzip bomb: stored as received (never inflated), cut at the cap
    a, r = both(fault_server.url("/gzip-bomb?mib=8"), max_bytes=4096)
    assert isinstance(a, FetchResult) and isinstance(r, FetchResult)
    for res in (a, r):
        assert res.header("Content-Encoding") == "gzip"
        assert res.body[:2] == b"\x1f\x8b"
        assert res.truncated and len(res.body) == 4096
    assert a.body == r.body


def test_chunked_huge_body_capped(fault_server: FaultServer) -> None:
    a, r = both(fault_server.url("/huge?bytes=300000"), max_bytes=100_000)
    assert isinstance(a, FetchResult) and isinstance(r, FetchResult)
    assert a.truncated and r.truncated
    assert a.body == r.body and len(a.body) == 100_000


@pytest.mark.parametrize(
    ("path", "kwargs", "error"),
    [
        ("/reset-mid-body", {}, ConnectionLost),
        ("/slow-drip?bytes=4000&interval=0.5", {"timeout": 1.0}, FetchTimeout),
        ("/huge-headers?kind=one", {}, HeadersTooLarge),
        ("/huge-headers?kind=cookies", {}, HeadersTooLarge),
    ],
)
def test_same_error_class(
    fault_server: FaultServer, path: str, kwargs: dict[str, float], error: type[FetchError]
) -> None:
    a, r = both(fault_server.url(path), **kwargs)  # type: ignore[arg-type]
    assert isinstance(a, error), repr(a)
    assert isinstance(r, error), repr(r)


def test_refused_is_connect_error() -> None:
    a, r = both(f"http://127.0.0.1:{free_port()}/", timeout=5.0)
    assert isinstance(a, ConnectError) and isinstance(r, ConnectError)
