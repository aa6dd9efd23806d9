"""The fault server: every endpoint misbehaves exactly as named (real sockets, real server)."""

from __future__ import annotations

import gzip
import html
import io
import socket
import subprocess
import sys
import time
import uuid
import zlib
from collections.abc import AsyncIterator

import aiohttp
import brotli
import pytest
import zstandard

from foundation.errors import UsageError
from testbed._fault_app import EXTERNAL_URL, LATIN1_TEXT, ROBOTS_OK, UTF16_TEXT
from testbed.faults import ENDPOINTS, FaultServer, start_fault_server

MIB = 1 << 20


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as s:
        yield s


def key() -> str:
    return uuid.uuid4().hex[:12]


def raw_get(server: FaultServer, path: str, limit: int = 1 << 20) -> tuple[bytes, bytes]:
    """(head, body) of a GET over a plain socket with ``Connection: close``."""
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = bytearray()
        while len(data) < limit and (chunk := sock.recv(65536)):
            data += chunk
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    return head, body


def header_lines(head: bytes) -> list[tuple[str, str]]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    return [(n.strip().lower(), v.strip()) for n, _, v in (line.partition(":") for line in lines)]


async def test_index_links_every_endpoint(
    fault_server: FaultServer, session: aiohttp.ClientSession
) -> None:
    async with session.get(fault_server.url("/")) as resp:
        text = await resp.text()
    assert resp.status == 200
    for endpoint in ENDPOINTS:
        assert f'href="{html.escape(endpoint)}"' in text, endpoint


async def test_pages_link_within_a_ring(
    fault_server: FaultServer, session: aiohttp.ClientSession
) -> None:
    async with session.get(fault_server.url("/page/12")) as resp:
        text = await resp.text()
    assert resp.status == 200 and resp.content_type == "text/html"
    assert 'href="/page/3"' in text and 'href="/page/5"' in text and 'href="/ok"' in text
    async with session.get(fault_server.url("/page/-1")) as resp:
        assert resp.status == 404


async def test_slow_drip(fault_server: FaultServer, session: aiohttp.ClientSession) -> None:
    t0 = time.perf_counter()
    async with session.get(fault_server.url("/slow-drip?bytes=500&interval=0.05")) as resp:
        assert resp.content_length == 500
        pieces = [chunk async for chunk in resp.content.iter_any()]
    elapsed = time.perf_counter() - t0
    assert sum(map(len, pieces)) == 500
    assert len(pieces) >= 3  # really dripped, not sent at once
    assert elapsed >= 0.2, elapsed  # 5 chunks of 100 bytes, 4 gaps of 50 ms


async def test_reset_mid_body(fault_server: FaultServer, session: aiohttp.ClientSession) -> None:
    got = bytearray()
    async with session.get(fault_server.url("/reset-mid-body")) as resp:
        assert resp.content_length == 100_000
        with pytest.raises(aiohttp.ClientPayloadError):
            async for chunk in resp.content.iter_any():
                got += chunk
    assert len(got) == 50_000


def test_reset_mid_body_is_a_tcp_reset(fault_server: FaultServer) -> None:
    with socket.create_connection((fault_server.host, fault_server.port), timeout=10) as sock:
        sock.sendall(b"GET /reset-mid-body?bytes=20000 HTTP/1.1\r\nHost: x\r\n\r\n")
        data = bytearray()
        with pytest.raises(ConnectionResetError):
            while chunk := sock.recv(65536):
                data += chunk
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    assert ("content-length", "20000") in header_lines(head)
    assert len(body) == 10_000


async def test_flaky_then_ok(fault_server: FaultServer, session: aiohttp.ClientSession) -> None:
    k = key()
    statuses = []
    for _ in range(4):
        async with session.get(fault_server.url(f"/flaky/{k}?fails=3")) as resp:
            statuses.append(resp.status)
    assert statuses == [503, 503, 503, 200]
    k2 = key()
    async with session.get(fault_server.url(f"/flaky/{k2}?fails=1&status=500")) as resp:
        assert resp.status == 500
    assert fault_server.stats()[f"/flaky/{k}"] == 4


def test_reset_once(fault_server: FaultServer) -> None:
    path = f"/reset-once/{key()}"
    with pytest.raises(ConnectionResetError):
        raw_get(fault_server, path)
    head, body = raw_get(fault_server, path)
    assert head.startswith(b"HTTP/1.1 200") and b"recovered" in body


async def test_reset_once_is_retried_by_aiohttp(
    fault_server: FaultServer, session: aiohttp.ClientSession
) -> None:
    """aiohttp retries an idempotent request once after a reset: the server sees two requests.
    Crawler retry counts must allow for it (or read /stats)."""
    path = f"/reset-once/{key()}"
    async with session.get(fault_server.url(path)) as resp:
        assert resp.status == 200
    assert fault_server.stats()[path] == 2


async def test_ratelimit_retry_after(
    fault_server: FaultServer, session: aiohttp.ClientSession
) -> None:
    url = fault_server.url(f"/ratelimit/{key()}?fails=2&retry_after=7")
    for _ in range(2):
        async with session.get(url) as resp:
            assert resp.status == 429
            assert resp.headers["Retry-After"] == "7"
    async with session.get(url) as resp:
        assert resp.status == 200


async def test_redirect_chain(fault_server: FaultServer, session: aiohttp.ClientSession) -> None:
    async with session.get(fault_server.url("/redirect/chain/5")) as resp:
        assert resp.status == 200
        assert resp.url.path == "/redirect/chain/0"
        assert [str(r.url.path) for r in resp.history] == [
            f"/redirect/chain/{n}" for n in range(5, 0, -1)
        ]


async def test_redirect_loops(fault_server: FaultServer, session: aiohttp.ClientSession) -> None:
    with pytest.raises(aiohttp.TooManyRedirects):
        async with session.get(fault_server.url("/redirect/loop/a"), max_redirects=6):
            pass
    async with session.get(fault_server.url("/redirect/loop/b"), allow_redirects=False) as resp:
        assert resp.status == 302 and resp.headers["Location"] == "/redirect/loop/a"
    async with session.get(fault_server.url("/redirect/self"), allow_redirects=False) as resp:
        assert resp.status == 302 and resp.headers["Location"] == "/redirect/self"


async def test_redirect_relative_and_external(
    fault_server: FaultServer, session: aiohttp.ClientSession
) -> None:
    url = fault_server.url("/redirect/relative")
    async with session.get(url, allow_redirects=False) as resp:
        assert resp.headers["Location"] == "../ok"
    async with session.get(url) as resp:
        assert resp.status == 200 and resp.url.path == "/ok"
    url = fault_server.url("/redirect/external")
    async with session.get(url, allow_redirects=False) as resp:
        assert resp.status == 302 and resp.headers["Location"] == EXTERNAL_URL


async def test_gzip_bomb_ratio(fault_server: FaultServer, session: aiohttp.ClientSession) -> None:
    t0 = time.perf_counter()
    async with session.get(fault_server.url("/gzip-bomb"), auto_decompress=False) as resp:
        assert resp.headers["Content-Encoding"] == "gzip"
        assert resp.content_type == "text/html"
        body = await resp.read()
    first_fetch = time.perf_counter() - t0
    assert len(body) == resp.content_length
    assert len(body) < 1_200_000  # 1 GiB at deflate's ~1032:1 ceiling
    assert first_fetch < 10.0  # generation is ~0.3 s; generous for a loaded machine
    # inflate only the first 100 MiB, with a capped output: the ratio shows without the GiB
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = used = 0
    view = memoryview(body)
    pending = b""
    while out < 100 * MIB:
        if not pending:
            pending, view = bytes(view[:4096]), view[4096:]
            used += len(pending)
        piece = inflater.decompress(pending, 8 * MIB)
        pending = inflater.unconsumed_tail
        assert piece.strip(b" ") == b""
        out += len(piece)
    assert out / used > 900, (out, used)


async def test_gzip_bomb_is_a_valid_stream(
    fault_server: FaultServer, session: aiohttp.ClientSession
) -> None:
    async with session.get(fault_server.url("/gzip-bomb?mib=4"), auto_decompress=False) as resp:
        body = await resp.read()
    # gzip.decompress checks the CRC-32 and length trailer, and that it is a single member
    assert gzip.decompress(body) == b" " * (4 * MIB)
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    inflater.decompress(body)
    assert inflater.eof and inflater.unused_data == b""


async def test_brotli_and_zstd_bombs(
    fault_server: FaultServer, session: aiohttp.ClientSession
) -> None:
    async with session.get(fault_server.url("/br-bomb"), auto_decompress=False) as resp:
        assert resp.headers["Content-Encoding"] == "br"
        br = await resp.read()
    assert len(br) < 10_000
    out = brotli.Decompressor().process(br, output_buffer_limit=64 * MIB)
    assert len(out) >= 64 * MIB and out.strip(b" ") == b""
    async with session.get(fault_server.url("/zstd-bomb"), auto_decompress=False) as resp:
        assert resp.headers["Content-Encoding"] == "zstd"
        zs = await resp.read()
    assert len(zs) < 100_000
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(zs))
    with reader:
        out = reader.read(64 * MIB)
    assert len(out) == 64 * MIB and out.strip(b" ") == b""
    async with session.get(fault_server.url("/br-bomb?mib=3"), auto_decompress=False) as resp:
        assert brotli.decompress(await resp.read()) == b" " * (3 * MIB)


async def test_huge_chunked_and_with_length(
    fault_server: FaultServer, session: aiohttp.ClientSession
) -> None:
    async with session.get(fault_server.url("/huge?bytes=3000000")) as resp:
        assert resp.headers["Transfer-Encoding"] == "chunked"
        assert resp.content_length is None
        body = await resp.read()
    assert len(body) == 3_000_000 and body.startswith(b"<!doctype html>")
    async with session.get(fault_server.url("/huge?bytes=100000&length=1")) as resp:
        assert resp.content_length == 100_000
        assert len(await resp.read()) == 100_000
    # the default (200 MB) streams fast; read a slice and hang up
    t0 = time.perf_counter()
    async with session.get(fault_server.url("/huge")) as resp:
        got = 0
        async for chunk in resp.content.iter_chunked(1 << 20):
            got += len(chunk)
            if got >= 20 * MIB:
                break
    assert time.perf_counter() - t0 < 10.0


def test_no_content_type_header(fault_server: FaultServer) -> None:
    head, body = raw_get(fault_server, "/no-content-type")
    assert head.startswith(b"HTTP/1.1 200")
    assert "content-type" not in {name for name, _ in header_lines(head)}
    assert body.startswith(b"<!doctype html>")


async def test_content_types_and_charsets(
    fault_server: FaultServer, session: aiohttp.ClientSession
) -> None:
    async with session.get(fault_server.url("/wrong-content-type")) as resp:
        assert resp.headers["Content-Type"] == "image/png"
        assert (await resp.read()).startswith(b"<!doctype html>")
    async with session.get(fault_server.url("/bad-charset")) as resp:
        assert resp.headers["Content-Type"] == "text/html; charset=no-such-charset"
        assert "Grüße" in (await resp.read()).decode("utf-8")
    async with session.get(fault_server.url("/latin1")) as resp:
        assert resp.headers["Content-Type"] == "text/html"
        body = await resp.read()
        assert LATIN1_TEXT in body.decode("iso-8859-1")
        with pytest.raises(UnicodeDecodeError):
            body.decode("utf-8")
    async with session.get(fault_server.url("/bom-utf16")) as resp:
        assert resp.headers["Content-Type"] == "text/html"
        body = await resp.read()
        assert body[:2] in (b"\xff\xfe", b"\xfe\xff")
        assert UTF16_TEXT in body.decode("utf-16")


@pytest.mark.parametrize("kind", ["one", "cookies"])
def test_huge_headers(fault_server: FaultServer, kind: str) -> None:
    head, body = raw_get(fault_server, f"/huge-headers?kind={kind}")
    assert len(head) > 64 * 1024
    assert head.startswith(b"HTTP/1.1 200")
    lines = header_lines(head)
    if kind == "cookies":
        assert sum(1 for name, _ in lines if name == "set-cookie") == 80
    else:
        assert max(len(v) for _, v in lines) == 70_000
    assert body.startswith(b"<!doctype html>")


async def test_huge_header_rejected_by_default_aiohttp(
    fault_server: FaultServer, session: aiohttp.ClientSession
) -> None:
    with pytest.raises(aiohttp.ClientResponseError):
        async with session.get(fault_server.url("/huge-headers")):
            pass


async def test_robots_modes(
    fault_server: FaultServer,
    fault_server_robots_404: FaultServer,
    fault_server_robots_500: FaultServer,
    session: aiohttp.ClientSession,
) -> None:
    async with session.get(fault_server.url("/robots.txt")) as resp:
        text = await resp.text()
    assert resp.status == 200 and text == ROBOTS_OK
    assert "Disallow: /private/" in text and "crawl-delay" not in text.lower()
    async with session.get(fault_server.url("/private/page")) as resp:
        assert resp.status == 200
    async with session.get(fault_server_robots_404.url("/robots.txt")) as resp:
        assert resp.status == 404
    async with session.get(fault_server_robots_500.url("/robots.txt")) as resp:
        assert resp.status == 500


async def test_robots_slow(
    fault_server_robots_slow: FaultServer, session: aiohttp.ClientSession
) -> None:
    server = fault_server_robots_slow
    t0 = time.perf_counter()
    with pytest.raises(TimeoutError):
        timeout = aiohttp.ClientTimeout(total=0.5)
        async with session.get(server.url("/robots.txt"), timeout=timeout):
            pass
    assert time.perf_counter() - t0 < 2.0
    async with session.get(server.url("/ok")) as resp:  # the rest stays fast
        assert resp.status == 200
    assert (await server.astats())["/robots.txt"] >= 1


def test_bad_robots_mode_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        start_fault_server(robots="maybe")  # type: ignore[arg-type]


@pytest.mark.parametrize("code", [200, 204, 301, 404, 418, 429, 500, 503, 599])
async def test_status(fault_server: FaultServer, session: aiohttp.ClientSession, code: int) -> None:
    url = fault_server.url(f"/status/{code}")
    async with session.get(url, allow_redirects=False) as resp:
        assert resp.status == code
        body = await resp.read()
    assert body == (b"" if code == 204 else f"status {code}\n".encode())


async def test_echo_headers(fault_server: FaultServer, session: aiohttp.ClientSession) -> None:
    headers = {"User-Agent": "fetchlab-test/1.0", "X-Probe": "42"}
    async with session.get(fault_server.url("/echo/headers"), headers=headers) as resp:
        data = await resp.json()
    assert data["User-Agent"] == "fetchlab-test/1.0"
    assert data["X-Probe"] == "42"


async def test_stats_count_requests_per_path(
    fault_server: FaultServer, session: aiohttp.ClientSession
) -> None:
    path = f"/page/{1000 + uuid.uuid4().int % 100_000}"
    for _ in range(3):
        async with session.get(fault_server.url(path + "?q=1")) as resp:
            assert resp.status == 200
    async with session.get(fault_server.url("/stats")) as resp:
        data = await resp.json()
    assert data["paths"][path] == 3
    assert "/stats" not in data["paths"]
    assert data["total"] == sum(data["paths"].values())


def test_reset_stats_and_stop_leaves_no_process() -> None:
    server = start_fault_server()
    try:
        raw_get(server, "/ok")
        assert server.stats() == {"/ok": 1}
        server.reset_stats()
        assert server.stats() == {}
    finally:
        server.stop()
    assert not server.process.alive()
    with pytest.raises(OSError):
        socket.create_connection((server.host, server.port), timeout=1.0).close()


def test_cli_prints_url_and_stops_after_duration() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "testbed", "faults", "--duration", "0.5", "--robots", "404"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "fault server: http://127.0.0.1:" in proc.stdout
    assert "robots=404" in proc.stdout
