"""The aiohttp application behind ``testbed.faults``: one handler per fault (see that module).

State (per-key counters, per-path request counts) lives in this process's memory, so each server
instance starts clean; tests use a fresh key per scenario.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import socket
import struct
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Literal

from aiohttp import hdrs, web

from testbed._bombs import MIB, brotli_bomb, gzip_bomb, zstd_bomb

__all__ = ["ENDPOINTS", "URL_CASES", "URL_REDIRECT_TARGET", "RobotsMode", "make_app"]

RobotsMode = Literal["ok", "404", "500", "slow"]

# Every endpoint, as linked from the index page (a follow crawl from / reaches them all).
ENDPOINTS: tuple[str, ...] = (
    "/ok",
    "/page/0",
    "/slow-drip",
    "/reset-mid-body",
    "/flaky/index?fails=2",
    "/reset-once/index",
    "/ratelimit/index?fails=1&retry_after=1",
    "/redirect/chain/3",
    "/redirect/loop/a",
    "/redirect/self",
    "/redirect/relative",
    "/redirect/external",
    "/redirect/body",
    "/redirect/body?bytes=300000000",
    "/chunked/bad-size",
    "/chunked/cut",
    "/gzip-bomb",
    "/br-bomb",
    "/zstd-bomb",
    "/huge",
    "/no-content-type",
    "/wrong-content-type",
    "/bad-charset",
    "/latin1",
    "/bom-utf16",
    "/huge-headers",
    "/private/page",
    "/status/404",
    "/status/500",
    "/echo/headers",
)

ROBOTS_OK = "User-agent: *\nDisallow: /private/\n"
ROBOTS_SLOW_S = 10.0
PAGE_RING = 10  # /page/{n} links stay inside /page/0 .. /page/9, so a follow crawl ends
EXTERNAL_URL = "http://ext.example.invalid/"
_HUGE_CHUNK = 64 * 1024
_FILLER = b"<p>" + b"fetchlab filler text " * 50 + b"</p>\n"

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_COUNTS = web.AppKey("counts", Counter[str])
_KEYS = web.AppKey("keys", Counter[str])
_ROBOTS = web.AppKey("robots", str)
_BOMB_LOCK = web.AppKey("bomb_lock", asyncio.Lock)
_TARGETS = web.AppKey("targets", list[str])

# /urls/: links spelled as real pages spell them, and the exact request targets a browser sends
# for them (the only ones answered 200: a crawler that rewrites a URL gets a 404)
URL_CASES: dict[str, str] = {
    "x.forbidden?ok": "/urls/x.forbidden?ok",  # not ?ok=
    "a b?q=a b": "/urls/a%20b?q=a%20b",  # not q=a+b
    "p%20q?q=a%20b+c": "/urls/p%20q?q=a%20b+c",
    "s?x=%2F&y=%2f": "/urls/s?x=%2F&y=%2f",  # escapes kept, case kept
    "%zz": "/urls/%zz",  # an invalid escape is sent as it is, not as %25zz
    "q?b=2&a=1": "/urls/q?b=2&a=1",  # the first spelling met is the one fetched ...
    "q?a=1&b=2": "/urls/q?b=2&a=1",  # ... this one is the same page
    "caf\u00e9?n=\u00fc": "/urls/caf%C3%A9?n=%C3%BC",
    "redirect-utf8": "/urls/redirect-utf8",
}
URL_REDIRECT_TARGET = "/urls/target%20dir/%C3%BCn%C3%AF%20page.html"


def _page(title: str, links: list[str], body: str = "") -> str:
    items = "".join(f'<li><a href="{html.escape(u)}">{html.escape(u)}</a></li>' for u in links)
    return (
        f"<!doctype html><html><head><title>{html.escape(title)}</title></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}<ul>{items}</ul></body></html>"
    )


def _html(title: str, links: list[str], status: int = 200) -> web.Response:
    return web.Response(text=_page(title, links), content_type="text/html", status=status)


def _int(request: web.Request, name: str, default: int, lo: int = 0, hi: int = 1 << 40) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be an integer") from None
    if not lo <= value <= hi:
        raise web.HTTPBadRequest(text=f"{name} must be in [{lo}, {hi}]")
    return value


def _float(request: web.Request, name: str, default: float, hi: float = 60.0) -> float:
    try:
        value = float(request.query.get(name, default))
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be a number") from None
    if not 0.0 <= value <= hi:
        raise web.HTTPBadRequest(text=f"{name} must be in [0, {hi}]")
    return value


def _count(request: web.Request, key: str) -> int:
    """How many times ``key`` was seen before this request (then counts this one)."""
    keys = request.app[_KEYS]
    seen = keys[key]
    keys[key] += 1
    return seen


async def _reset(request: web.Request) -> None:
    """Abort the connection with a TCP RST (SO_LINGER 0), after the kernel sent what we wrote."""
    transport = request.transport
    if transport is None:
        return
    # wait (bounded) for our buffer to reach the kernel, so the client gets the partial body first
    for _ in range(200):
        if transport.is_closing() or transport.get_write_buffer_size() == 0:
            break
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.02)
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


@web.middleware
async def _stats_middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
    if not request.path.startswith("/stats"):
        request.app[_COUNTS][request.path] += 1
        if request.raw_path.startswith("/urls/"):
            request.app[_TARGETS].append(request.raw_path)
    return await handler(request)


async def index(request: web.Request) -> web.Response:
    return _html("fetchlab fault server", list(ENDPOINTS))


async def ok(request: web.Request) -> web.Response:
    return _html("ok", ["/page/0", "/page/1", "/"])


async def page(request: web.Request) -> web.Response:
    try:
        n = int(request.match_info["n"])
    except ValueError:
        raise web.HTTPNotFound() from None
    if n < 0:
        raise web.HTTPNotFound()
    ring = [f"/page/{(n + 1) % PAGE_RING}", f"/page/{(n + 3) % PAGE_RING}", "/ok", "/"]
    return _html(f"page {n}", ring)


async def slow_drip(request: web.Request) -> web.StreamResponse:
    total = _int(request, "bytes", 2000, hi=100 * MIB)
    interval = _float(request, "interval", 0.05)
    chunk = _int(request, "chunk", 100, lo=1, hi=MIB)
    resp = web.StreamResponse(headers={hdrs.CONTENT_TYPE: "text/html"})
    resp.content_length = total
    await resp.prepare(request)
    sent = 0
    while sent < total:
        n = min(chunk, total - sent)
        await resp.write(b"." * n)
        sent += n
        if sent < total:
            await asyncio.sleep(interval)
    await resp.write_eof()
    return resp


async def reset_mid_body(request: web.Request) -> web.StreamResponse:
    total = _int(request, "bytes", 100_000, lo=2, hi=1 << 30)
    resp = web.StreamResponse(headers={hdrs.CONTENT_TYPE: "text/html"})
    resp.content_length = total
    await resp.prepare(request)
    await resp.write(b"x" * (total // 2))
    await _reset(request)
    return resp


async def flaky(request: web.Request) -> web.Response:
    fails = _int(request, "fails", 2)
    status = _int(request, "status", 503, lo=400, hi=599)
    if _count(request, "flaky:" + request.match_info["key"]) < fails:
        return web.Response(status=status, text=f"failing on purpose ({status})")
    return _html("flaky: recovered", ["/"])


async def reset_once(request: web.Request) -> web.StreamResponse:
    if _count(request, "reset-once:" + request.match_info["key"]) == 0:
        await _reset(request)
        return web.StreamResponse()  # never sent: the connection is gone
    return _html("reset-once: recovered", ["/"])


async def ratelimit(request: web.Request) -> web.Response:
    fails = _int(request, "fails", 1)
    retry_after = _int(request, "retry_after", 1, hi=3600)
    if _count(request, "ratelimit:" + request.match_info["key"]) < fails:
        return web.Response(
            status=429, text="slow down", headers={hdrs.RETRY_AFTER: str(retry_after)}
        )
    return _html("ratelimit: recovered", ["/"])


def _redirect(location: str, status: int = 302) -> web.Response:
    return web.Response(status=status, headers={hdrs.LOCATION: location}, text="redirect")


async def redirect_chain(request: web.Request) -> web.Response:
    try:
        n = int(request.match_info["n"])
    except ValueError:
        raise web.HTTPNotFound() from None
    if not 0 <= n <= 1000:
        raise web.HTTPNotFound()
    if n == 0:
        return _html("end of redirect chain", ["/"])
    return _redirect(f"/redirect/chain/{n - 1}")


async def redirect_loop(request: web.Request) -> web.Response:
    other = {"a": "b", "b": "a"}.get(request.match_info["side"])
    if other is None:
        raise web.HTTPNotFound()
    return _redirect(f"/redirect/loop/{other}")


async def redirect_self(request: web.Request) -> web.Response:
    return _redirect("/redirect/self")


async def redirect_relative(request: web.Request) -> web.Response:
    # a relative-path reference with a dot segment: resolves to /ok against /redirect/relative
    return _redirect("../ok")


async def redirect_external(request: web.Request) -> web.Response:
    return _redirect(EXTERNAL_URL)


async def redirect_body(request: web.Request) -> web.StreamResponse:
    # a redirect's body is part of its archived response: a client must read it like any other
    total = _int(request, "bytes", 1000, hi=1 << 40)
    status = _int(request, "status", 302, lo=300, hi=399)
    resp = web.StreamResponse(
        status=status, headers={hdrs.LOCATION: "/ok", hdrs.CONTENT_TYPE: "text/html"}
    )
    return await _stream_filler(request, resp, total, chunked=request.query.get("length") == "0")


_CHUNKED_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n"
    b"Connection: close\r\n\r\n"
)


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def _send_raw(request: web.Request, parts: list[bytes]) -> web.StreamResponse:
    """Write ``parts`` as they are (each after the previous left the server), then close (FIN).

    aiohttp's response writer cannot produce broken framing, so these bytes bypass it."""
    transport = request.transport
    if transport is not None:
        for i, part in enumerate(parts):
            if i:
                await _drained(transport)
                await asyncio.sleep(0.02)  # a separate segment, not one read for the client
            transport.write(part)
        await _drained(transport)
        transport.close()
    return web.StreamResponse()  # never sent: the connection is closed


async def _drained(transport: asyncio.Transport) -> None:
    for _ in range(200):
        if transport.is_closing() or transport.get_write_buffer_size() == 0:
            return
        await asyncio.sleep(0.005)


async def chunked_bad_size(request: web.Request) -> web.StreamResponse:
    bad = b"zz-not-hex\r\nhello\r\n0\r\n\r\n"
    if request.query.get("at") == "0":
        # in the head's segment: a client parses both in one go
        return await _send_raw(request, [_CHUNKED_HEAD + bad])
    return await _send_raw(request, [_CHUNKED_HEAD, _chunk(_FILLER), bad])


async def chunked_cut(request: web.Request) -> web.StreamResponse:
    chunks = _int(request, "chunks", 3, lo=0, hi=1000)
    return await _send_raw(request, [_CHUNKED_HEAD, *[_chunk(_FILLER)] * chunks])


async def gzip_bomb_handler(request: web.Request) -> web.StreamResponse:
    mib = _int(request, "mib", 1024, lo=1, hi=4096)
    async with request.app[_BOMB_LOCK]:
        bomb = await asyncio.to_thread(gzip_bomb, mib)
    resp = web.StreamResponse(
        headers={hdrs.CONTENT_TYPE: "text/html", hdrs.CONTENT_ENCODING: "gzip"}
    )
    resp.content_length = bomb.compressed_size
    await resp.prepare(request)
    for chunk in bomb.chunks():
        await resp.write(chunk)
    await resp.write_eof()
    return resp


async def _small_bomb(request: web.Request, encoding: str) -> web.Response:
    mib = _int(request, "mib", 1024, lo=1, hi=4096)
    make = brotli_bomb if encoding == "br" else zstd_bomb
    async with request.app[_BOMB_LOCK]:
        body = await asyncio.to_thread(make, mib)
    return web.Response(
        body=body, headers={hdrs.CONTENT_TYPE: "text/html", hdrs.CONTENT_ENCODING: encoding}
    )


async def br_bomb(request: web.Request) -> web.Response:
    return await _small_bomb(request, "br")


async def zstd_bomb_handler(request: web.Request) -> web.Response:
    return await _small_bomb(request, "zstd")


async def huge(request: web.Request) -> web.StreamResponse:
    total = _int(request, "bytes", 200_000_000, hi=1 << 40)
    resp = web.StreamResponse(headers={hdrs.CONTENT_TYPE: "text/html"})
    return await _stream_filler(request, resp, total, chunked=request.query.get("length") != "1")


async def _stream_filler(
    request: web.Request, resp: web.StreamResponse, total: int, *, chunked: bool
) -> web.StreamResponse:
    """Send ``total`` bytes of HTML filler, generated as it goes (never held in memory)."""
    if chunked:
        resp.enable_chunked_encoding()
    else:
        resp.content_length = total
    await resp.prepare(request)
    block = (_FILLER * (_HUGE_CHUNK // len(_FILLER) + 1))[:_HUGE_CHUNK]
    head = b"<!doctype html><html><body>"
    first = (head + block)[: min(total, _HUGE_CHUNK)]
    await resp.write(first)
    sent = len(first)
    while sent < total:
        piece = block if total - sent >= len(block) else block[: total - sent]
        await resp.write(piece)
        sent += len(piece)
    await resp.write_eof()
    return resp


class _NoContentTypeResponse(web.StreamResponse):
    """aiohttp adds ``Content-Type: application/octet-stream`` to any body; this drops it."""

    async def _write_headers(self) -> None:
        self._headers.popall(hdrs.CONTENT_TYPE, None)
        await super()._write_headers()


async def no_content_type(request: web.Request) -> web.StreamResponse:
    body = _page("no content type", ["/"]).encode()
    resp = _NoContentTypeResponse()
    resp.content_length = len(body)
    await resp.prepare(request)
    await resp.write(body)
    await resp.write_eof()
    return resp


async def wrong_content_type(request: web.Request) -> web.Response:
    body = _page("html served as png", ["/"]).encode()
    return web.Response(body=body, headers={hdrs.CONTENT_TYPE: "image/png"})


async def bad_charset(request: web.Request) -> web.Response:
    body = _page("bad charset", ["/"], "<p>Grüße, café, naïve — ☃</p>").encode("utf-8")
    return web.Response(
        body=body, headers={hdrs.CONTENT_TYPE: "text/html; charset=no-such-charset"}
    )


LATIN1_TEXT = "Élève, garçon, señor, 10 °C, ½ £"
UTF16_TEXT = "UTF-16 mit BOM: Grüße ☃"


async def latin1(request: web.Request) -> web.Response:
    doc = (
        '<!doctype html><html><head><meta charset="iso-8859-1"><title>latin1</title></head>'
        f'<body><p>{LATIN1_TEXT}</p><a href="/">home</a></body></html>'
    )
    return web.Response(body=doc.encode("iso-8859-1"), headers={hdrs.CONTENT_TYPE: "text/html"})


async def bom_utf16(request: web.Request) -> web.Response:
    doc = _page("utf-16", ["/"], f"<p>{UTF16_TEXT}</p>")
    # the "utf-16" codec writes a BOM first (little-endian on this machine)
    return web.Response(body=doc.encode("utf-16"), headers={hdrs.CONTENT_TYPE: "text/html"})


async def huge_headers(request: web.Request) -> web.Response:
    kind = request.query.get("kind", "one")
    resp = _html("huge headers", ["/"])
    if kind == "one":
        resp.headers["X-Filler"] = "f" * 70_000
    elif kind == "cookies":
        for i in range(80):
            resp.headers.add(hdrs.SET_COOKIE, f"c{i}={'v' * 1000}; Path=/")
    else:
        raise web.HTTPBadRequest(text="kind must be one or cookies")
    return resp


async def robots(request: web.Request) -> web.Response:
    mode = request.app[_ROBOTS]
    if mode == "404":
        return web.Response(status=404, text="no robots here")
    if mode == "500":
        return web.Response(status=500, text="robots broke")
    if mode == "slow":
        await asyncio.sleep(ROBOTS_SLOW_S)
    return web.Response(text=ROBOTS_OK, content_type="text/plain")


async def private_page(request: web.Request) -> web.Response:
    return _html("private (disallowed by robots.txt)", ["/"])


_NO_BODY = {204, 304}


async def status(request: web.Request) -> web.Response:
    try:
        code = int(request.match_info["code"])
    except ValueError:
        raise web.HTTPNotFound() from None
    if not 200 <= code <= 599:
        raise web.HTTPBadRequest(text="status must be in [200, 599]")
    if code in _NO_BODY:
        return web.Response(status=code)
    return web.Response(status=code, text=f"status {code}\n")


async def echo_headers(request: web.Request) -> web.Response:
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return web.json_response(headers)


async def urls_page(request: web.Request) -> web.StreamResponse:
    raw = request.raw_path
    if raw == "/urls/":
        return _html("exact URLs", list(URL_CASES))
    if raw == "/urls/redirect-utf8":
        # a raw UTF-8 Location, as some servers send it; aiohttp writes header text as UTF-8
        return web.Response(status=302, headers={"Location": "target dir/\u00fcn\u00ef page.html"})
    if raw in URL_CASES.values() or raw == URL_REDIRECT_TARGET:
        return _html(f"exact {raw}", [])
    return _html(f"rewritten: {raw}", [], status=404)


async def stats(request: web.Request) -> web.Response:
    counts = request.app[_COUNTS]
    return web.json_response(
        {"total": sum(counts.values()), "paths": dict(counts), "targets": request.app[_TARGETS]}
    )


async def stats_reset(request: web.Request) -> web.Response:
    request.app[_TARGETS].clear()
    request.app[_COUNTS].clear()
    request.app[_KEYS].clear()
    return web.json_response({"total": 0, "paths": {}})


def make_app(robots_mode: RobotsMode = "ok") -> web.Application:
    """The fault application; ``robots_mode`` picks what /robots.txt does for this instance."""
    app = web.Application(middlewares=[_stats_middleware])
    app[_COUNTS] = Counter()
    app[_KEYS] = Counter()
    app[_ROBOTS] = robots_mode
    app[_BOMB_LOCK] = asyncio.Lock()
    app[_TARGETS] = []
    app.router.add_routes(
        [
            web.get("/", index),
            web.get("/ok", ok),
            web.get("/page/{n}", page),
            web.get("/slow-drip", slow_drip),
            web.get("/reset-mid-body", reset_mid_body),
            web.get("/flaky/{key}", flaky),
            web.get("/reset-once/{key}", reset_once),
            web.get("/ratelimit/{key}", ratelimit),
            web.get("/redirect/chain/{n}", redirect_chain),
            web.get("/redirect/loop/{side}", redirect_loop),
            web.get("/redirect/self", redirect_self),
            web.get("/redirect/relative", redirect_relative),
            web.get("/redirect/external", redirect_external),
            web.get("/redirect/body", redirect_body),
            web.get("/chunked/bad-size", chunked_bad_size),
            web.get("/chunked/cut", chunked_cut),
            web.get("/gzip-bomb", gzip_bomb_handler),
            web.get("/br-bomb", br_bomb),
            web.get("/zstd-bomb", zstd_bomb_handler),
            web.get("/huge", huge),
            web.get("/no-content-type", no_content_type),
            web.get("/wrong-content-type", wrong_content_type),
            web.get("/bad-charset", bad_charset),
            web.get("/latin1", latin1),
            web.get("/bom-utf16", bom_utf16),
            web.get("/huge-headers", huge_headers),
            web.get("/robots.txt", robots),
            web.get("/private/page", private_page),
            web.get("/status/{code}", status),
            web.get("/echo/headers", echo_headers),
            web.get("/urls/{tail:.*}", urls_page),
            web.get("/stats", stats),
            web.post("/stats/reset", stats_reset),
        ]
    )
    return app
