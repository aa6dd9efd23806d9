"""URL canonical form, fingerprints, host keys, URL lists and scope."""

from __future__ import annotations

import contextlib
import string
from urllib.parse import urljoin

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crawler.core import urls
from crawler.core.urls import (
    MAX_URL_LENGTH,
    BadLine,
    Scope,
    UrlLine,
    canonicalize,
    exact_url,
    fingerprint,
    host_key,
    read_url_lines,
    registered_domain,
)
from foundation.errors import InvalidURLError, UnsupportedSchemeError

CANONICAL = [
    # (input, base, expected)
    ("http://example.com", None, "http://example.com/"),
    ("HTTP://Example.COM/Path", None, "http://example.com/Path"),
    ("http://example.com:80/a", None, "http://example.com/a"),
    ("https://example.com:443/a", None, "https://example.com/a"),
    ("http://example.com:443/a", None, "http://example.com:443/a"),
    ("https://example.com:80", None, "https://example.com:80/"),
    ("http://example.com:8080", None, "http://example.com:8080/"),
    ("http://example.com/a#frag", None, "http://example.com/a"),
    ("http://example.com/?b=2&a=1", None, "http://example.com/?a=1&b=2"),
    ("http://example.com/?a=2&a=1", None, "http://example.com/?a=1&a=2"),
    ("http://example.com/?a", None, "http://example.com/?a="),
    ("http://example.com/%7euser", None, "http://example.com/~user"),
    ("http://example.com/a%2fb", None, "http://example.com/a%2Fb"),
    ("http://example.com/a b", None, "http://example.com/a%20b"),
    ("http://example.com/caf\u00e9", None, "http://example.com/caf%C3%A9"),
    ("http://b\u00fccher.example/", None, "http://xn--bcher-kva.example/"),
    ("http://example.com/a/./b/../c", None, "http://example.com/a/c"),
    ("  http://example.com/x  ", None, "http://example.com/x"),
    ("http://[::1]:8080/x", None, "http://[::1]:8080/x"),
    ("http://[::1]:80/x", None, "http://[::1]/x"),
    ("http://127.0.0.1:8080/p?q=1", None, "http://127.0.0.1:8080/p?q=1"),
    ("http://example.com:/a", None, "http://example.com/a"),
    ("http://example.com:80?x=1", None, "http://example.com/?x=1"),
    ("http://example.com?b=1&a=2", None, "http://example.com/?a=2&b=1"),
    ("http://example.com/?b=1&a=2&a=1", None, "http://example.com/?a=1&a=2&b=1"),
    # relative resolution (RFC 3986 section 5.4 examples, base http://a/b/c/d;p?q)
    ("g", "http://a/b/c/d;p?q", "http://a/b/c/g"),
    ("./g", "http://a/b/c/d;p?q", "http://a/b/c/g"),
    ("g/", "http://a/b/c/d;p?q", "http://a/b/c/g/"),
    ("/g", "http://a/b/c/d;p?q", "http://a/g"),
    ("//g", "http://a/b/c/d;p?q", "http://g/"),
    ("?y", "http://a/b/c/d;p?q", "http://a/b/c/d;p?y="),
    ("g?y", "http://a/b/c/d;p?q", "http://a/b/c/g?y="),
    ("#s", "http://a/b/c/d;p?q", "http://a/b/c/d;p?q="),
    ("..", "http://a/b/c/d;p?q", "http://a/b/"),
    ("../g", "http://a/b/c/d;p?q", "http://a/b/g"),
    ("../../g", "http://a/b/c/d;p?q", "http://a/g"),
    ("../../../g", "http://a/b/c/d;p?q", "http://a/g"),
    ("https://other/x", "http://a/b", "https://other/x"),
]


@pytest.mark.parametrize(("url", "base", "expected"), CANONICAL)
def test_canonicalize(url: str, base: str | None, expected: str) -> None:
    assert canonicalize(url, base) == expected


BAD = [
    ("", InvalidURLError),
    ("   ", InvalidURLError),
    ("example.com/path", InvalidURLError),
    ("http://", InvalidURLError),
    ("http:///path", InvalidURLError),
    ("http:/example.com/a", InvalidURLError),
    ("http:example.com", InvalidURLError),
    ("http://\\example.com/", InvalidURLError),
    ("http://ex%41mple.com/", InvalidURLError),
    ("http://a.1/", InvalidURLError),  # ends in a number, so IPv4 (WHATWG), and not one
    ("http://256.1.1.1/", InvalidURLError),
    ("http://example.com:99999/", InvalidURLError),
    ("http://example.com:abc/", InvalidURLError),
    ("http://user:pw@example.com/", InvalidURLError),
    ("http://exa mple.com/", InvalidURLError),
    ("http://example.com/" + "a" * MAX_URL_LENGTH, InvalidURLError),
    ("mailto:someone@example.com", UnsupportedSchemeError),
    ("javascript:void(0)", UnsupportedSchemeError),
    ("ftp://example.com/file", UnsupportedSchemeError),
    ("file:///etc/passwd", UnsupportedSchemeError),
    ("data:text/html,hi", UnsupportedSchemeError),
]


@pytest.mark.parametrize(("url", "error"), BAD)
def test_canonicalize_rejects(url: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        canonicalize(url)


def test_unsupported_scheme_is_invalid_url_and_relative_javascript_rejected() -> None:
    assert issubclass(UnsupportedSchemeError, InvalidURLError)
    with pytest.raises(UnsupportedSchemeError):
        canonicalize("javascript:alert(1)", "http://a/b")
    with pytest.raises(InvalidURLError):
        canonicalize("", "http://a/b")


URL_CHARS = string.ascii_letters + string.digits + "-._~:/?#[]@!$&'()*+,;=% \u00e9\u4e2d"


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=URL_CHARS, max_size=60), st.sampled_from(["http", "https", "HTTP"]))
def test_canonicalize_idempotent_and_only_raises_invalid(tail: str, scheme: str) -> None:
    try:
        once = canonicalize(f"{scheme}://{tail}")
    except InvalidURLError:
        return
    assert once.startswith(("http://", "https://"))
    assert "#" not in once
    assert canonicalize(once) == once


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40), st.text(max_size=40))
def test_canonicalize_any_text_with_base_never_raises_others(href: str, path: str) -> None:
    with contextlib.suppress(InvalidURLError):
        canonicalize(href, "http://example.com/" + path.replace("#", ""))


SAFE = string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@/"


@settings(max_examples=500, deadline=None)
@given(
    host=st.one_of(
        st.from_regex(r"[a-z0-9]([a-z0-9.-]{0,20}[a-z0-9])?", fullmatch=True),
        st.from_regex(r"[0-9]{1,4}(\.[0-9x]{1,4}){0,4}", fullmatch=True),  # IPv4 or not
    ),
    port=st.one_of(st.none(), st.sampled_from(["80", "443", "8080", "1"])),
    path=st.text(alphabet=SAFE + ".", max_size=30),
    query=st.one_of(
        st.none(), st.from_regex(r"[a-z0-9_~.-]{1,5}=[a-z0-9_~.-]{0,5}", fullmatch=True)
    ),
    scheme=st.sampled_from(["http", "https"]),
)
def test_fast_path_matches_w3lib_path(
    host: str, port: str | None, path: str, query: str | None, scheme: str
) -> None:
    url = f"{scheme}://{host}" + (f":{port}" if port else "") + "/" + path
    if query:
        url += "?" + query
    fast = urls._fast(url)
    try:
        slow = urls._slow(url)
    except InvalidURLError:
        assert fast is None
        return
    if fast is not None:
        assert fast == slow


BASES = [
    "http://e.com/",
    "http://e.com/a/b/c",
    "http://e.com/a/b/",
    "https://e.com:8443/x/y.html?q=1",
    "http://e.com/a/b?x=1&y=2",
    "http://e.com",
    "http://e.com/a//b/c",
    "http://E.com/%41/b",
]


@settings(max_examples=1000, deadline=None)
@given(ref=st.text(alphabet="ab./?=&#:%;-~_", max_size=16), base=st.sampled_from(BASES))
def test_fast_join_matches_urljoin(ref: str, base: str) -> None:
    joined = urls._join(ref, base)
    if joined is None:
        return
    expected = urljoin(base, ref)
    try:
        want = canonicalize(expected)
    except InvalidURLError:
        with pytest.raises(InvalidURLError):
            canonicalize(joined)
        return
    assert canonicalize(joined) == want


SPLICE_BASES = [
    "http://127.0.0.1:8080/a/b.html",
    "https://example.com/",
    "http://example.com:443/x?y=1",
    "http://example.com:80/",  # not exact (default port): no splicing
    "http://Example.com/",  # not exact: no splicing
    "http://a..b/",  # invalid host: no splicing
]


@settings(max_examples=2000, deadline=None)
@given(
    ref=st.text(alphabet="/ab.?=&#:%;-~_\t ", max_size=16).map(lambda r: "/" + r),
    base=st.sampled_from(SPLICE_BASES),
)
def test_splice_is_exact_url_of_the_joined_link(ref: str, base: str) -> None:
    origin = urls.splice_origin(base)
    if origin is None:
        assert base in ("http://example.com:80/", "http://Example.com/", "http://a..b/")
        return
    spliced = urls.splice(origin, ref)
    if spliced is not None:
        assert spliced == exact_url(ref, base) == exact_url(origin + ref)


def test_splice_takes_the_common_links_only() -> None:
    origin = urls.splice_origin("http://127.0.0.1:8080/a/b.html")
    assert origin == "http://127.0.0.1:8080"
    assert (
        urls.splice(origin, "/x/p1.html?ref=1&v=2") == "http://127.0.0.1:8080/x/p1.html?ref=1&v=2"
    )
    for ref in ("//other.test/x", "/a/../b", "/a#top", "/a b", "/a?q", "/%41", "/x" * 4000):
        assert urls.splice(origin, ref) is None


@settings(max_examples=3000, deadline=None)
@given(
    ref=st.text(alphabet="ab./?=&#:%;-~_@", max_size=16),
    ups=st.integers(0, 4),
    base=st.sampled_from(
        [
            "http://127.0.0.1:8080/a/b.html",
            "https://example.com/",
            "http://example.com:81/x/y/z?q=1",
            "http://example.com/d/",
        ]
    ),
)
def test_splice_relative_is_exact_url_of_the_link(ref: str, ups: int, base: str) -> None:
    ref = "../" * ups + ref
    origin = urls.splice_origin(base)
    assert origin is not None
    dirs = urls.splice_dirs(origin, base)
    assert dirs is not None
    spliced = urls.splice_relative(dirs, ref)
    if spliced is not None:
        assert spliced == exact_url(ref, base) == urljoin(base, ref)


def test_splice_relative_takes_the_common_links_only() -> None:
    dirs = urls.splice_dirs("http://h.test", "http://h.test/a/b/c.html")
    assert dirs == ("http://h.test/a/b/", "http://h.test/a/", "http://h.test/")
    assert urls.splice_relative(dirs, "p2.html?x=1") == "http://h.test/a/b/p2.html?x=1"
    assert urls.splice_relative(dirs, "../../../../p.html") == "http://h.test/p.html"
    for ref in ("./p", "a/./b", "a//b", "x:y", "?x=1", "a#b", "a b", "%41", ".hidden", "a/.."):
        assert urls.splice_relative(dirs, ref) is None, ref
    assert urls.splice_dirs("http://h.test", "http://h.test/a//b") is None
    assert urls.splice_origin("http://H.test/a") is None


def test_fast_path_taken_for_common_links() -> None:
    assert urls._fast("http://127.0.0.1:8080/page/1.html") == "http://127.0.0.1:8080/page/1.html"
    assert urls._fast("http://example.com:80/x") == "http://example.com/x"
    assert urls._fast("https://example.com") == "https://example.com/"
    assert urls._fast("http://example.com/a?x=1") == "http://example.com/a?x=1"
    assert urls._fast("http://example.com/a/../b") is None
    assert urls._fast("http://example.com/?b=1&a=2") == "http://example.com/?a=2&b=1"
    assert urls._fast("http://example.com/?a") is None
    assert (
        urls._join("../c/./d.html#x", "http://example.com/a/b/") == "http://example.com/a/c/d.html"
    )
    assert urls._join("g:h", "http://example.com/") is None
    assert urls._fast("http://Example.com/") is None
    assert urls._fast("http://10.0.0.1:81/x") == "http://10.0.0.1:81/x"
    assert urls._fast("http://0/") is None  # WHATWG: 0.0.0.0, the slow path's business
    assert urls._fast("http://1.2.3/") is None and urls._fast("http://01.2.3.4/") is None


def test_numeric_hosts_are_ipv4_as_browsers_read_them() -> None:
    # w3lib >= 2.6 parses hosts the WHATWG way: one page, however its address is written; the
    # exact form (what is requested and archived) keeps what the page wrote
    assert canonicalize("http://0x7f.1:8080/a") == "http://127.0.0.1:8080/a"
    assert canonicalize("http://0/") == "http://0.0.0.0/"
    assert canonicalize("HTTP://1.2.3/") == "http://1.2.0.3/"
    assert exact_url("http://0x7f.1:8080/a") == "http://0x7f.1:8080/a"
    assert fingerprint("http://0x7f.1/") == fingerprint("http://127.0.0.1/")
    with pytest.raises(InvalidURLError):
        exact_url("http://a.1/")


def test_fingerprint() -> None:
    fp = fingerprint("http://example.com/")
    assert isinstance(fp, bytes)
    assert len(fp) == 16
    assert fp == fingerprint("http://example.com/")
    assert fp != fingerprint("http://example.com/a")


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("http://example.com/x", "example.com:80"),
        ("https://example.com/x", "example.com:443"),
        ("http://Example.com:8080/", "example.com:8080"),
        ("http://127.0.0.1:1234/", "127.0.0.1:1234"),
        ("https://[::1]/", "[::1]:443"),
    ],
)
def test_host_key(url: str, key: str) -> None:
    assert host_key(url) == key


def test_host_key_rejects() -> None:
    with pytest.raises(InvalidURLError):
        host_key("/relative")
    with pytest.raises(UnsupportedSchemeError):
        host_key("ftp://example.com/")


def test_read_url_lines_reports_bad_lines_with_numbers() -> None:
    lines = [
        "\ufeffhttp://example.com/a\n",
        "\n",
        "# a comment\n",
        "   https://Example.com:443/b   \n",
        "not a url\n",
        "mailto:x@example.com\n",
        "http://example.com:99999/\n",
        "http://example.com/a#again\n",
        "http://example.com/c   # inline comment\n",
        "http://example.com/d\tsomething else\n",
        "http://example.com/e f\n",
    ]
    out = list(read_url_lines(lines, "urls.txt"))
    assert out[0] == UrlLine("urls.txt", 1, "http://example.com/a")
    assert out[1] == UrlLine("urls.txt", 4, "https://example.com/b")
    bad = [o for o in out if isinstance(o, BadLine)]
    assert [(b.lineno, b.text) for b in bad] == [
        (5, "not a url"),
        (6, "mailto:x@example.com"),
        (7, "http://example.com:99999/"),
        (10, "http://example.com/d\tsomething else"),
        (11, "http://example.com/e f"),
    ]
    assert all(b.source == "urls.txt" and b.reason for b in bad)
    assert "scheme" in bad[1].reason
    with pytest.raises(InvalidURLError, match=r"did you mean http://example\.com:8080/x"):
        canonicalize("example.com:8080/x")
    with pytest.raises(InvalidURLError, match="did you mean"):
        canonicalize("localhost:8080")
    assert UrlLine("urls.txt", 8, "http://example.com/a") in out
    assert UrlLine("urls.txt", 9, "http://example.com/c") in out
    assert "whitespace" in bad[-1].reason


@pytest.mark.parametrize(
    ("host", "domain"),
    [
        ("www.example.com", "example.com"),
        ("a.b.example.com", "example.com"),
        ("example.com", "example.com"),
        ("localhost", "localhost"),
        ("127.0.0.1", "127.0.0.1"),
        ("[::1]", "::1"),
        ("Example.COM.", "example.com"),
    ],
)
def test_registered_domain(host: str, domain: str) -> None:
    assert registered_domain(host) == domain


def test_scope_host() -> None:
    s = Scope("host", ("http://example.com/start",))
    assert s.allows("http://example.com/other")
    assert s.allows("http://example.com:80/x")
    assert not s.allows("https://example.com/x")  # other port
    assert not s.allows("http://www.example.com/x")
    assert not s.allows("not a url")


def test_scope_domain() -> None:
    s = Scope("domain", ("http://www.example.com/", "http://127.0.0.1:8080/"))
    assert s.allows("https://blog.example.com/x")
    assert s.allows("http://example.com/")
    assert not s.allows("http://example.org/")
    assert not s.allows("http://notexample.com/")
    assert s.allows("http://127.0.0.1:9999/")
    assert not s.allows("http://127.0.0.2/")


def test_scope_prefix() -> None:
    s = Scope("prefix", ("http://example.com/docs/index.html",))
    assert s.allows("http://example.com/docs/")
    assert s.allows("http://example.com/docs/a/b")
    assert not s.allows("http://example.com/doc")
    assert not s.allows("http://example.com/")


def test_scope_allow_and_deny() -> None:
    s = Scope(
        "host",
        ("http://example.com/",),
        allow=(r"/blog/", r"/news/"),
        deny=(r"\.pdf$", r"[?&]session="),
    )
    assert s.allows("http://example.com/blog/1")
    assert s.allows("http://example.com/news/2")
    assert not s.allows("http://example.com/shop/")
    assert not s.allows("http://example.com/blog/x.pdf")
    assert not s.allows("http://example.com/blog/?session=1")
    only_deny = Scope("host", ("http://example.com/",), deny=(r"/private",))
    assert only_deny.allows("http://example.com/public")
    assert not only_deny.allows("http://example.com/private/x")


def test_scope_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="pattern"):
        Scope("host", ("http://example.com/",), allow=("(",))
    with pytest.raises(InvalidURLError):
        Scope("host", ("ftp://example.com/",))


# ------------------------------------------------------------------------------- exact form
@pytest.mark.parametrize(
    ("href", "expected"),
    [
        ("/x.forbidden?ok", "http://h:8080/x.forbidden?ok"),  # not ?ok=
        ("a b.html?q=a b", "http://h:8080/dir/a%20b.html?q=a%20b"),  # not q=a+b
        ("a%20b?q=a%20b+c", "http://h:8080/dir/a%20b?q=a%20b+c"),
        ("/%zz", "http://h:8080/%zz"),  # not /%25zz
        ("?x=%2F", "http://h:8080/dir/p.html?x=%2F"),  # not x=/
        ("?x=%2f&b=2&a=1", "http://h:8080/dir/p.html?x=%2f&b=2&a=1"),  # case and order kept
        ("../target dir/ünï page.html", "http://h:8080/target%20dir/%C3%BCn%C3%AF%20page.html"),
        ("HTTP://ExAmple.COM", "http://example.com/"),
        ("http://bücher.de/ü?ä=1#f", "http://xn--bcher-kva.de/%C3%BC?%C3%A4=1"),
        ("/a/./b/../c?x=1&y", "http://h:8080/a/c?x=1&y"),
        ("//other:81/p", "http://other:81/p"),
        ("HTTPS://Host:443/p", "https://host/p"),
        ('/q?a=<b>|{c}^`"', "http://h:8080/q?a=%3Cb%3E%7C%7Bc%7D%5E%60%22"),
        ("/a\\b?c\\d", "http://h:8080/a/b?c%5Cd"),
        ("/a\tb\n", "http://h:8080/ab"),
        ("/a?", "http://h:8080/a"),
        ("http://[::1]:80/p q", "http://[::1]/p%20q"),
        # the common shape, returned as is unless its port is the default
        ("http://h.example:8080/a/b?z=1&a=2", "http://h.example:8080/a/b?z=1&a=2"),
        ("http://h.example:80/a", "http://h.example/a"),
        ("https://h.example:443/a", "https://h.example/a"),
        ("http://h.example:65535/a", "http://h.example:65535/a"),
    ],
)
def test_exact_url(href: str, expected: str) -> None:
    assert urls.exact_url(href, "http://h:8080/dir/p.html") == expected


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("mailto:a@b", UnsupportedSchemeError),
        ("ftp://h/x", UnsupportedSchemeError),
        ("http://u:p@h/", InvalidURLError),
        ("http://h:99999/", InvalidURLError),
        ("http://h:65536/a", InvalidURLError),  # the common shape but for the port
        ("http://exa mple.com/", InvalidURLError),
        ("example.com:8080/x", InvalidURLError),
        ("", InvalidURLError),
    ],
)
def test_exact_url_rejects_what_canonicalize_rejects(url: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        urls.exact_url(url)


@given(st.text(alphabet=URL_CHARS + " äü<>|^", max_size=60), st.sampled_from(["http", "HTTP"]))
def test_exact_url_idempotent_and_keyed_like_its_canonical_form(tail: str, scheme: str) -> None:
    """The exact form is a fixed point, sendable as is (ASCII, no space or control), and its
    fingerprint is the canonical form's: two spellings of a page are one frontier entry."""
    try:
        exact = urls.exact_url(f"{scheme}://example.com/{tail}")
    except InvalidURLError:
        return
    assert urls.exact_url(exact) == exact
    assert exact.isascii() and not any(c in exact for c in ' "<>\\^`{|}\t\r\n')
    assert urls.fingerprint(exact) == urls.fingerprint(urls.canonicalize(exact))


def test_fingerprint_is_the_canonical_forms() -> None:
    a = urls.fingerprint("http://h/a?b=1&a=2")
    assert a == urls.fingerprint("http://h/a?a=2&b=1") == urls.fingerprint("HTTP://H:80/a?a=2&b=1")
    assert urls.fingerprint("http://h/x?ok") == urls.fingerprint("http://h/x?ok=")
