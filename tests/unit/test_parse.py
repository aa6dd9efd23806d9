"""HTML and sitemap parsing: every element kind, base and relative links, nofollow, charsets,
garbage, picklability."""

from __future__ import annotations

import gzip
import os
import pickle
import random
from concurrent.futures import ProcessPoolExecutor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crawler.parse import (
    ParsedPage,
    ParseInput,
    detect_charset,
    is_html,
    is_sitemap,
    parse_page,
    parse_sitemap,
)

URL = "http://example.com/dir/page.html"


def page(
    html: str | bytes,
    url: str = URL,
    content_type: str | None = "text/html",
    encoding: str | None = None,
    max_decoded: int = 1 << 20,
) -> ParsedPage:
    body = html.encode("utf-8") if isinstance(html, str) else html
    return parse_page(ParseInput(url, 200, content_type, encoding, body, max_decoded))


def test_anchor_and_area_links_resolved_in_document_order() -> None:
    p = page(
        '<a href="b.html">b</a><a href="/root">r</a><map><area href="../up" alt=""></map>'
        '<a href="https://other.org/x">o</a><a href="//cdn.example.net/y">c</a>'
        '<a href="?q=1">q</a>'
    )
    assert p.links == (
        "http://example.com/dir/b.html",
        "http://example.com/root",
        "http://example.com/up",
        "https://other.org/x",
        "http://cdn.example.net/y",
        "http://example.com/dir/page.html?q=1",
    )
    assert p.n_links == 6
    assert p.error is None


def test_link_rel_navigation_kept_assets_ignored() -> None:
    p = page(
        '<link rel="next" href="/p2"><link rel="prev" href="/p0"><link rel="Previous" href="/pp">'
        '<link rel="alternate" hreflang="de" href="/de/"><link rel="stylesheet" href="/s.css">'
        '<link rel="icon" href="/favicon.ico"><link rel="alternate stylesheet" href="/alt.css">'
        '<link rel="preload" href="/font.woff2"><link href="/norel">'
    )
    assert p.links == (
        "http://example.com/p2",
        "http://example.com/p0",
        "http://example.com/pp",
        "http://example.com/de/",
    )


def test_base_href_applies_to_all_links_and_first_base_wins() -> None:
    p = page(
        '<a href="before">x</a><base href="http://base.example/sub/"><base href="/ignored/">'
        '<a href="after">y</a><a href="/abs">z</a>'
    )
    assert p.links == (
        "http://base.example/sub/before",
        "http://base.example/sub/after",
        "http://base.example/abs",
    )


def test_non_canonical_page_url() -> None:
    p = page('<a href="x">x</a><a href="/y">y</a>', url="HTTP://Example.COM:80/dir/p.html#f")
    assert p.links == ("http://example.com/dir/x", "http://example.com/y")


def test_relative_base_href_and_bad_base() -> None:
    assert page('<base href="../other/"><a href="x">x</a>').links == ("http://example.com/other/x",)
    assert page('<base href="javascript:void(0)"><a href="x">x</a>').links == (
        "http://example.com/dir/x",
    )


def test_fragments_dropped_duplicates_removed_bad_links_skipped() -> None:
    p = page(
        '<a href="#top">t</a><a href="a#one">1</a><a href="a#two">2</a><a href="a">3</a>'
        '<a href="/dir/a">4</a><a href="mailto:me@example.com">m</a><a href="javascript:x()">j</a>'
        '<a href="http://exa mple.com/">bad</a><a href="http://example.com:99999/">port</a>'
        '<a href="">empty</a><a href="  a  ">spaces</a><a>no href</a><a href="tel:123">t</a>'
    )
    assert p.links == ("http://example.com/dir/a",)
    assert p.n_links == 12


def test_exact_form_of_links() -> None:
    """Links keep the page's spelling (query order, ``?ok``, escapes); only scheme and host case,
    the default port and the characters that cannot appear raw change."""
    p = page(
        '<a href="HTTP://Example.COM:80/x?b=2&a=1#f">x</a><a href="/caf\u00e9 x">c</a>'
        '<a href="/f?ok">o</a><a href="/s?q=a b&r=%2F">s</a><a href="/%zz">z</a>'
    )
    assert p.links == (
        "http://example.com/x?b=2&a=1",
        "http://example.com/caf%C3%A9%20x",
        "http://example.com/f?ok",
        "http://example.com/s?q=a%20b&r=%2F",
        "http://example.com/%zz",
    )


def test_rel_nofollow_on_anchor_and_area() -> None:
    p = page(
        '<a href="/keep">k</a><a rel="nofollow" href="/drop">d</a>'
        '<a rel="external NoFollow" href="/drop2">d</a><area rel="nofollow" href="/drop3">'
        '<a rel="noopener" href="/keep2">k</a>'
    )
    assert p.links == ("http://example.com/keep", "http://example.com/keep2")
    assert p.n_links == 5
    assert not p.nofollow


@pytest.mark.parametrize(
    ("content", "nofollow", "noindex"),
    [
        ("nofollow", True, False),
        ("noindex", False, True),
        ("NOINDEX, NOFOLLOW", True, True),
        ("none", True, True),
        ("index, follow", False, False),
        ("noarchive", False, False),
    ],
)
def test_meta_robots(content: str, nofollow: bool, noindex: bool) -> None:
    p = page(f'<meta name="ROBOTS" content="{content}"><a href="/x">x</a>')
    assert (p.nofollow, p.noindex) == (nofollow, noindex)
    assert p.links == (() if nofollow else ("http://example.com/x",))
    assert p.n_links == 1


@pytest.mark.parametrize(
    ("content", "target"),
    [
        ("0; url=/next", "http://example.com/next"),
        ("0;URL='next.html'", "http://example.com/dir/next.html"),
        ('5, url="http://other.org/"', "http://other.org/"),
        ("3; http://other.org/a", "http://other.org/a"),
        ("0.5;url = /spaced ", "http://example.com/spaced"),
    ],
)
def test_meta_refresh(content: str, target: str) -> None:
    escaped = content.replace('"', "&quot;")
    p = page(f'<meta http-equiv="Refresh" content="{escaped}">')
    assert p.refresh == target
    assert p.links == (target,)
    assert p.n_links == 1


def test_meta_refresh_without_url_and_with_nofollow() -> None:
    assert page('<meta http-equiv="refresh" content="30">').refresh is None
    p = page(
        '<meta name="robots" content="nofollow"><meta http-equiv="refresh" content="0;url=/n">'
    )
    assert p.refresh == "http://example.com/n"
    assert p.links == ()


def test_canonical_and_title() -> None:
    p = page(
        "<html><head><title>  Hello\n   <b>World</b> &amp; more </title>"
        '<link rel="canonical" href="/canon?b=1&a=2#frag"><link rel="canonical" href="/second">'
        "</head><body><title>second title</title></body></html>"
    )
    assert p.title == "Hello <b>World</b> & more"
    assert p.canonical == "http://example.com/canon?b=1&a=2"
    assert p.links == ()


def test_empty_title_is_none() -> None:
    assert page("<title>   </title>").title is None
    assert page("<p>no title</p>").title is None


def test_compressed_body_is_decoded() -> None:
    p = page(gzip.compress(b'<a href="/z">z</a>'), encoding="gzip")
    assert p.links == ("http://example.com/z",)


def test_decode_errors_are_reported_not_raised() -> None:
    p = page(b"not gzip", encoding="gzip")
    assert p.error is not None
    assert p.error.startswith("DecodeError: ")
    assert p.links == ()
    bomb = page(gzip.compress(b" " * 200_000), encoding="gzip", max_decoded=100_000)
    assert bomb.error == "DecodeError: decoded body over 100000 bytes"


# -- charsets ------------------------------------------------------------------------------------

CAFE = "caf\u00e9 \u20ac"


@pytest.mark.parametrize(
    ("body", "content_type", "charset", "title"),
    [
        pytest.param(
            b"\xef\xbb\xbf<title>" + CAFE.encode() + b"</title>",
            "text/html; charset=iso-8859-1",
            "utf-8",
            CAFE,
            id="utf8-bom-beats-header",
        ),
        pytest.param(
            "\ufeff<title>" + CAFE + "</title>",
            None,
            "utf-16-le",
            CAFE,
            id="utf16le-bom",
        ),
        pytest.param(
            "<title>" + CAFE + "</title>",
            "text/html; charset=utf-16",
            "utf-16-le",
            CAFE,
            id="utf16-header-no-bom",
        ),
        pytest.param(
            "<title>" + CAFE + "</title>",
            "text/html; charset=windows-1252",
            "cp1252",
            CAFE,
            id="header",
        ),
        pytest.param(
            '<meta charset="windows-1252"><title>' + CAFE + "</title>",
            "text/html",
            "cp1252",
            CAFE,
            id="meta-charset",
        ),
        pytest.param(
            '<meta http-equiv="Content-Type" content="text/html; charset=ISO-8859-1">'
            "<title>caf\u00e9</title>",
            None,
            "cp1252",
            "caf\u00e9",
            id="meta-http-equiv-latin1",
        ),
        pytest.param(
            '<meta charset="windows-1252"><title>' + CAFE + "</title>",
            "text/html; charset=utf-8",
            "utf-8",
            CAFE,
            id="header-beats-meta",
        ),
        pytest.param(
            '<meta charset="utf-16"><title>' + CAFE + "</title>",
            None,
            "utf-8",
            CAFE,
            id="meta-utf16-means-utf8",
        ),
        pytest.param(
            "<title>" + CAFE + "</title>",
            "text/html; charset=no-such-charset",
            "utf-8",
            CAFE,
            id="invalid-header-charset",
        ),
        pytest.param(
            '<meta charset="x-bogus-1"><title>' + CAFE + "</title>",
            None,
            "utf-8",
            CAFE,
            id="invalid-meta-charset",
        ),
        pytest.param("<title>" + CAFE + "</title>", None, "utf-8", CAFE, id="default-utf8"),
    ],
)
def test_charsets(body: str | bytes, content_type: str | None, charset: str, title: str) -> None:
    if isinstance(body, str):
        codec = {"utf-16-le": "utf-16-le", "cp1252": "cp1252"}.get(charset, "utf-8")
        raw = body.encode(codec)
    else:
        raw = body
    p = page(raw, content_type=content_type)
    assert p.charset == charset
    assert p.title == title
    assert p.error is None


def test_links_in_non_utf8_page() -> None:
    p = page(
        '<a href="/caf\u00e9">x</a>'.encode("cp1252"), content_type="text/html; charset=cp1252"
    )
    assert p.links == ("http://example.com/caf%C3%A9",)


def test_invalid_utf8_bytes_replaced() -> None:
    p = page(b"<title>a\xff\xfeb</title><a href='/x\xff'>x</a>")
    assert p.title == "a\ufffd\ufffdb"
    assert p.links == ("http://example.com/x%EF%BF%BD",)


def test_detect_charset_directly() -> None:
    assert detect_charset(None, b"\xff\xfeh\x00") == ("utf-16-le", 2)
    assert detect_charset(None, b"\xfe\xff\x00h") == ("utf-16-be", 2)
    assert detect_charset("text/html; charset=Shift_JIS", b"") == (
        "cp932",
        0,
    )  # WHATWG maps Shift_JIS to windows-31j


# -- robustness ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\x00" * 100,
        b"<a href='/x'>\x00</a>",
        bytes(range(256)) * 4,
        b"<<<<>>>><a href=<a href='/z'>",
        b"<html>" + b"<div>" * 5000 + b"<a href='/deep'>x</a>",
        b"<a href='" + b"x" * 20_000 + b"'>long</a>",
    ],
    ids=["empty", "nuls", "nul-in-text", "all-bytes", "broken-tags", "deep", "long-href"],
)
def test_garbage_never_raises(body: bytes) -> None:
    p = page(body)
    assert isinstance(p, ParsedPage)
    assert p.error is None
    assert all(link.startswith("http://") for link in p.links)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000), st.sampled_from([None, "gzip", "br", "text/html;charset=x"]))
def test_random_bytes_never_raise(body: bytes, header: str | None) -> None:
    encoding = header if header in ("gzip", "br") else None
    content_type = header if encoding is None else None
    p = page(body, content_type=content_type, encoding=encoding)
    assert isinstance(p, ParsedPage)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=30), max_size=10))
def test_random_hrefs_never_raise(hrefs: list[str]) -> None:
    html = "".join(f'<a href="{h.replace(chr(34), "")}">x</a>' for h in hrefs)
    p = page(html)
    assert p.error is None
    assert len(p.links) <= len(hrefs)


# -- process pool --------------------------------------------------------------------------------


def _generated_page(n_links: int, seed: int) -> bytes:
    rng = random.Random(seed)
    links = "".join(f'<a href="/page/{rng.randrange(10_000)}.html">p</a>' for _ in range(n_links))
    return f"<html><head><title>T{seed}</title></head><body>{links}</body></html>".encode()


def test_parse_page_is_picklable_and_runs_in_a_process_pool() -> None:
    assert pickle.loads(pickle.dumps(parse_page)) is parse_page
    inputs = [
        ParseInput(
            f"http://127.0.0.1:8080/p{i}", 200, "text/html", None, _generated_page(41, i), 1 << 20
        )
        for i in range(8)
    ]
    with ProcessPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(parse_page, inputs))
    assert results == [parse_page(i) for i in inputs]
    assert [r.title for r in results] == [f"T{i}" for i in range(8)]
    assert all(r.n_links == 41 for r in results)
    assert pickle.loads(pickle.dumps(results[0])) == results[0]


# -- sitemaps ------------------------------------------------------------------------------------

URLSET = b"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <url><loc>http://example.com/a</loc><lastmod>2024-01-01</lastmod></url>
  <url><loc> http://example.com/b?y=2&amp;x=1 </loc></url>
  <url><loc>http://example.com/a</loc></url>
  <url><loc>mailto:nobody@example.com</loc></url>
</urlset>"""
INDEX = b"""<?xml version="1.0"?>
<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <sitemap><loc>http://example.com/sitemap-1.xml.gz</loc></sitemap>
  <sitemap><loc>/sitemap-2.xml</loc></sitemap>
</sitemapindex>"""


def sitemap(body: bytes, url: str = "http://example.com/sitemap.xml", **kw: str) -> ParsedPage:
    return parse_sitemap(
        ParseInput(url, 200, kw.get("ct", "application/xml"), kw.get("enc"), body, 1 << 20)
    )


def test_sitemap_urlset() -> None:
    p = sitemap(URLSET)
    assert p.links == ("http://example.com/a", "http://example.com/b?y=2&x=1")
    assert p.n_links == 4
    assert p.error is None


def test_sitemap_index_and_relative_loc_dropped() -> None:
    # The sitemap protocol requires fully qualified URLs; a relative <loc> is skipped.
    p = sitemap(INDEX)
    assert p.links == ("http://example.com/sitemap-1.xml.gz",)
    assert p.n_links == 2


def test_sitemap_gzipped_file_and_content_encoding() -> None:
    assert sitemap(gzip.compress(URLSET), "http://example.com/s.xml.gz").n_links == 4
    assert sitemap(gzip.compress(URLSET), enc="gzip").n_links == 4


def test_sitemap_text_format() -> None:
    p = sitemap(b"http://example.com/1\n\nhttp://example.com/2\r\nnot a url\n", ct="text/plain")
    assert p.links == ("http://example.com/1", "http://example.com/2")


def test_sitemap_entities_not_expanded() -> None:
    evil = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
        b'<!ENTITY ext SYSTEM "file:///etc/passwd">]>'
        b"<urlset><url><loc>http://example.com/&lol2;</loc></url>"
        b"<url><loc>http://example.com/&ext;</loc></url></urlset>"
    )
    p = sitemap(evil)
    assert p.error is None
    assert all("lollol" not in link and "root" not in link for link in p.links)


@pytest.mark.parametrize("body", [b"<urlset><url><loc>http://e.com/", b"\x00\x01\x02", b"<"])
def test_sitemap_garbage_never_raises(body: bytes) -> None:
    assert isinstance(sitemap(body), ParsedPage)


def test_sitemap_bomb_reported() -> None:
    p = sitemap(gzip.compress(b" " * (2 << 20)), "http://example.com/s.xml.gz")
    assert p.error is not None
    assert "over" in p.error


# -- content type helpers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("text/html", True),
        ("text/html; charset=utf-8", True),
        ("TEXT/HTML", True),
        ("application/xhtml+xml", True),
        (None, True),
        ("", True),
        ("application/pdf", False),
        ("image/png", False),
        ("text/plain", False),
    ],
)
def test_is_html(content_type: str | None, expected: bool) -> None:
    assert is_html(content_type) is expected


@pytest.mark.parametrize(
    ("url", "content_type", "expected"),
    [
        ("http://e.com/sitemap.xml", None, True),
        ("http://e.com/sitemap_index.xml.gz", None, True),
        ("http://e.com/sitemap.txt", "text/plain", True),
        ("http://e.com/sitemap", "application/xml", True),
        ("http://e.com/sitemap?page=2", "text/xml; charset=utf-8", True),
        ("http://e.com/sitemap", "text/html", False),
        ("http://e.com/feed.xml", "application/xml", False),
        ("http://e.com/sitemaps/page.html", "text/html", False),
    ],
)
def test_is_sitemap(url: str, content_type: str | None, expected: bool) -> None:
    assert is_sitemap(url, content_type) is expected


def test_large_generated_page() -> None:
    body = _generated_page(41, 7) + os.urandom(100).hex().encode()
    p = page(body, url="http://127.0.0.1:8080/page/1.html")
    assert p.n_links == 41
    assert len(p.links) == len(set(p.links)) <= 41
