"""One contract, both fetch ports: every fault the fault server offers gives the same status,
body bytes, truncated flag, header names and error class through aiohttp (asyncio, processes)
and requests (threads, gevent, sequential). A fault added to the server without a case here
fails :func:`test_every_endpoint_has_a_case`."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from crawler.core.flow import FetchRequest, FetchResult
from foundation.errors import (
    BadResponse,
    ConnectionLost,
    FetchError,
    FetchTimeout,
    HeadersTooLarge,
)
from testbed.faults import ENDPOINTS, FaultServer
from tests.parity.test_fetch_parity import PORTS

Expected = int | type[FetchError]


def _same(body: bytes) -> object:
    return body


def _echo(body: bytes) -> object:
    # the request headers as the server saw them: requests adds its own Connection: keep-alive
    return {k: v for k, v in json.loads(body).items() if k != "Connection"}


def _json_keys(body: bytes) -> object:
    return sorted(json.loads(body))  # /stats counts change with every request


@dataclass(frozen=True)
class Case:
    path: str  # "{key}" becomes a fresh key per port, so stateful faults start alike
    expect: Expected  # the status, or the error class both ports must raise
    endpoint: str | None = None  # the ENDPOINTS entry this case covers
    max_bytes: int = 1 << 20
    timeout: float = 10.0
    body: Callable[[bytes], object] = _same
    truncated: bool = False


def _c(path: str, expect: Expected, **kw: object) -> Case:
    return Case(path, expect, path if path in ENDPOINTS else None, **kw)  # type: ignore[arg-type]


CASES: tuple[Case, ...] = (
    _c("/", 200),
    _c("/ok", 200),
    _c("/page/0", 200),
    _c("/slow-drip", 200),
    _c("/slow-drip?bytes=4000&interval=0.5", FetchTimeout, timeout=1.0),
    _c("/reset-mid-body", ConnectionLost),
    Case("/flaky/{key}?fails=2", 503, "/flaky/index?fails=2"),
    Case("/reset-once/{key}", 200, "/reset-once/index"),
    Case("/ratelimit/{key}?fails=1&retry_after=1", 429, "/ratelimit/index?fails=1&retry_after=1"),
    _c("/redirect/chain/3", 302),
    _c("/redirect/loop/a", 302),
    _c("/redirect/self", 302),
    _c("/redirect/relative", 302),
    _c("/redirect/external", 302),
    _c("/redirect/body", 302),
    _c("/redirect/body?status=301", 301),
    _c("/redirect/body?bytes=300000000", 302, max_bytes=100_000, truncated=True),
    _c("/redirect/body?bytes=300000000&length=0", 302, max_bytes=100_000, truncated=True),
    _c("/chunked/bad-size", BadResponse),
    _c("/chunked/bad-size?at=0", BadResponse),
    _c("/chunked/cut", ConnectionLost),
    _c("/chunked/cut?chunks=0", ConnectionLost),
    _c("/gzip-bomb", 200, max_bytes=4096, truncated=True),
    _c("/br-bomb", 200),
    _c("/zstd-bomb", 200),
    _c("/huge", 200, max_bytes=100_000, truncated=True),
    _c("/huge?bytes=300000&length=1", 200, max_bytes=100_000, truncated=True),
    _c("/no-content-type", 200),
    _c("/wrong-content-type", 200),
    _c("/bad-charset", 200),
    _c("/latin1", 200),
    _c("/bom-utf16", 200),
    _c("/huge-headers", HeadersTooLarge),
    _c("/huge-headers?kind=cookies", HeadersTooLarge),
    _c("/robots.txt", 200),
    _c("/private/page", 200),
    _c("/status/404", 404),
    _c("/status/500", 500),
    _c("/status/204", 204),
    _c("/status/304", 304),
    _c("/echo/headers", 200, body=_echo),
    _c("/stats", 200, body=_json_keys),
)


@dataclass(frozen=True)
class Seen:
    """What a port made of one fault, in the terms both ports must agree on."""

    status: int | None
    body: object
    truncated: bool
    header_names: frozenset[bytes]
    error: type[FetchError] | None


def _seen(case: Case, outcome: FetchResult | FetchError) -> Seen:
    if isinstance(outcome, FetchError):
        return Seen(None, b"", False, frozenset(), type(outcome))
    names = frozenset(k.lower() for k, _ in outcome.headers) - {b"date"}
    return Seen(outcome.status, case.body(outcome.body), outcome.truncated, names, None)


def _fetch(server: FaultServer, case: Case, port: str) -> Seen:
    url = server.url(case.path.replace("{key}", f"{port}-{uuid.uuid4().hex[:8]}"))
    request = FetchRequest(url, (("User-Agent", "contract-test"),), case.max_bytes, case.timeout)
    return _seen(case, PORTS[port](request))


def test_every_endpoint_has_a_case() -> None:
    assert set(ENDPOINTS) <= {c.endpoint for c in CASES}


@pytest.mark.parametrize("case", CASES, ids=[c.path for c in CASES])
def test_both_ports_agree(fault_server: FaultServer, case: Case) -> None:
    aio, req = (_fetch(fault_server, case, port) for port in ("aiohttp", "requests"))
    assert aio == req
    if isinstance(case.expect, int):
        assert (aio.status, aio.error, aio.truncated) == (case.expect, None, case.truncated)
    else:
        assert aio.error is case.expect
    if case.truncated:
        assert isinstance(aio.body, bytes) and len(aio.body) == case.max_bytes


def test_redirect_body_is_the_servers(fault_server: FaultServer) -> None:
    case = _c("/redirect/body?bytes=1000", 302)
    seen = _fetch(fault_server, case, "requests")
    assert isinstance(seen.body, bytes) and len(seen.body) == 1000
    assert seen.body.startswith(b"<!doctype html>")
