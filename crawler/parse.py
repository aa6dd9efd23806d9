"""Link extraction from HTML pages and sitemaps: pure, picklable, never raising.

``parse_page`` is what the process pool runs: bytes in (the body as received, maybe compressed),
a small frozen ``ParsedPage`` out. It is the crawler's CPU hot spot, so it parses with lexbor
(selectolax), collects every interesting element with one CSS query, drops duplicate hrefs
before resolving, joins root-relative hrefs by concatenation and lets ``exact_url`` take its fast
path for the common link shapes. Links come out in their exact form (what the page linked to, see
:mod:`crawler.core.urls`); the frontier dedups them by their canonical form.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from types import ModuleType

from crawler.core.urls import exact_url, splice, splice_dirs, splice_origin, splice_relative
from crawler.decode import decode_body
from foundation.errors import InvalidURLError

__all__ = [
    "ParseInput",
    "ParsedPage",
    "detect_charset",
    "is_html",
    "is_sitemap",
    "parse_page",
    "parse_sitemap",
]


@dataclass(frozen=True)
class ParseInput:
    """A fetched response as the parser needs it. ``url`` is the final URL (after redirects)."""

    url: str
    status: int
    content_type: str | None
    content_encoding: str | None
    body: bytes
    max_decoded: int


@dataclass(frozen=True)
class ParsedPage:
    """What a page links to, and what it says about itself."""

    links: tuple[str, ...] = ()
    n_links: int = 0
    title: str | None = None
    canonical: str | None = None
    refresh: str | None = None
    nofollow: bool = False
    noindex: bool = False
    charset: str = "utf-8"
    error: str | None = None


_SELECTOR = "a[href], area[href], link[href], base[href], meta, title"
_NAV_RELS = frozenset({"next", "prev", "previous", "alternate"})
_NOT_PAGES = frozenset({"stylesheet", "icon", "preload", "prefetch", "modulepreload", "manifest"})
_REFRESH = re.compile(
    r"""^\s*[0-9.]*\s*[;,]?\s*(?:url\s*=\s*)?(?P<q>['"]?)(?P<url>.*?)(?P=q)\s*$""",
    re.IGNORECASE | re.DOTALL,
)
_SPACES = re.compile(r"\s+")
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_XML_TYPES = frozenset({"application/xml", "text/xml", "application/gzip", "application/x-gzip"})
# codecs that read ASCII bytes as ASCII (not so UTF-16, UTF-7 or the ISO-2022 family)
_ASCII_SUPERSETS = frozenset({"utf-8", "cp1252", "iso8859-1"})
# Sniff at most this much of the body for <meta charset> (HTML spec: the first 1024 bytes).
_SNIFF = 4096


def _w3lib_encoding() -> ModuleType:
    """w3lib's encoding rules, imported by the first body to decode: since w3lib 2.6 they load
    frostwork's native library (~1.2 MiB of RSS a process, measured), and the processes mode's
    coordinator imports this module for its types but never decodes a page."""
    import w3lib.encoding

    return w3lib.encoding


def _codec_name(encoding: str | None) -> str | None:
    if not encoding:
        return None
    resolved = _w3lib_encoding().resolve_encoding(encoding)
    if resolved is None:
        return None
    try:
        return codecs.lookup(resolved).name
    except LookupError:
        return None


def detect_charset(content_type: str | None, body: bytes) -> tuple[str, int]:
    """Pick the body's codec: BOM, then HTTP header, then ``<meta>``, else UTF-8.

    Returns the Python codec name and the BOM length to skip. Follows the WHATWG rules where w3lib
    does not: a ``utf-16`` label without BOM means little endian, and a ``<meta>`` claiming
    UTF-16/32 is read as UTF-8 (the meta could only be read because the bytes are ASCII-like).
    """
    w3 = _w3lib_encoding()
    bom_enc, bom = w3.read_bom(body)
    if bom_enc and bom:
        name = _codec_name(bom_enc)
        if name:
            return name, len(bom)
    header = _codec_name(w3.http_content_type_encoding(content_type)) if content_type else None
    if header:
        return ("utf-16-le" if header == "utf-16" else header), 0
    meta = _codec_name(w3.html_body_declared_encoding(body[:_SNIFF]))
    if meta:
        return ("utf-8" if meta.startswith(("utf-16", "utf-32")) else meta), 0
    return "utf-8", 0


def is_html(content_type: str | None) -> bool:
    """HTML or XHTML by Content-Type; a missing type is treated as HTML (servers omit it)."""
    if not content_type:
        return True
    return content_type.split(";", 1)[0].strip().lower() in _HTML_TYPES


def is_sitemap(url: str, content_type: str | None) -> bool:
    """A sitemap by name: ``sitemap`` in the path and an XML/text/gzip name or XML type."""
    path = url.split("?", 1)[0].split("#", 1)[0].lower()
    name = path.rsplit("/", 1)[-1]
    if "sitemap" not in name:
        return False
    if name.endswith((".xml", ".xml.gz", ".txt", ".txt.gz")):
        return True
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    return mime in _XML_TYPES


def _fail(exc: BaseException, charset: str = "utf-8") -> ParsedPage:
    return ParsedPage(charset=charset, error=f"{type(exc).__name__}: {exc}")


def parse_page(inp: ParseInput) -> ParsedPage:
    """Extract links and page facts from an HTML response. Never raises: errors go to ``error``."""
    charset = "utf-8"
    try:
        body = decode_body(inp.body, inp.content_encoding, inp.max_decoded)
        charset, skip = detect_charset(inp.content_type, body)
        if not skip and charset in _ASCII_SUPERSETS and body.isascii():
            # lexbor reads UTF-8 bytes: ASCII ones are the same text, without a decode here and
            # selectolax's encode back (~15 us of a 26 KB page's ~200)
            return _extract(inp.url, body, charset)
        text = body[skip:].decode(charset, "replace") if skip else body.decode(charset, "replace")
        return _extract(inp.url, text, charset)
    except Exception as exc:  # the pool must get a result for every page, whatever the bytes
        return _fail(exc, charset)


def _rel_tokens(value: str | None) -> frozenset[str]:
    return frozenset(value.lower().split()) if value else frozenset()


def _extract(url: str, text: str | bytes, charset: str) -> ParsedPage:
    # imported where used: the crawler's main process imports this module (the page steps)
    # but parses nothing when a parser pool runs, and lexbor + lxml cost it ~9 MB of RSS
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(text)
    nodes = tree.css(_SELECTOR)
    base = url
    title: str | None = None
    canonical_href: str | None = None
    refresh_href: str | None = None
    nofollow = noindex = False
    hrefs: list[str] = []  # in document order, duplicates included (counted in n_links)
    blocked: set[str] = set()  # rel=nofollow hrefs
    base_seen = False
    for node in nodes:
        tag = node.tag
        if tag == "a" or tag == "area":
            attrs = node.attributes  # one dict: faster than node.attrs' lookups
            href = attrs.get("href")
            if href is None:
                continue
            hrefs.append(href)
            rel = attrs.get("rel")
            if rel and "nofollow" in rel.lower().split():
                blocked.add(href)
        elif tag == "link":
            attrs = node.attributes
            href = attrs.get("href")
            rels = _rel_tokens(attrs.get("rel"))
            if href is None or not rels:
                continue
            if "canonical" in rels and canonical_href is None:
                canonical_href = href
            if rels & _NAV_RELS and not rels & _NOT_PAGES:
                hrefs.append(href)
        elif tag == "meta":
            attrs = node.attributes
            content = attrs.get("content")
            if content is None:
                continue
            name = (attrs.get("name") or "").strip().lower()
            if name == "robots":
                tokens = {t.strip() for t in content.lower().split(",")}
                nofollow = nofollow or bool(tokens & {"nofollow", "none"})
                noindex = noindex or bool(tokens & {"noindex", "none"})
            elif (attrs.get("http-equiv") or "").strip().lower() == "refresh":
                m = _REFRESH.match(content)
                if m and m.group("url").strip() and refresh_href is None:
                    refresh_href = m.group("url").strip()
        elif tag == "base":
            if not base_seen:
                # HTML: the first <base href> sets the base for the whole document.
                base_seen = True
                try:
                    candidate = exact_url(node.attrs.get("href") or "", url)
                except InvalidURLError:
                    pass
                else:
                    base = candidate
        elif tag == "title" and title is None:
            title = _SPACES.sub(" ", node.text(deep=True)).strip() or None

    resolve = _Resolver(base)
    refresh = resolve(refresh_href) if refresh_href is not None else None
    canonical = resolve(canonical_href) if canonical_href is not None else None
    n_links = len(hrefs) + (refresh_href is not None)
    links: list[str] = []
    if not nofollow:
        seen_href: set[str] = set()
        seen: set[str] = set()
        for href in hrefs:
            if href in seen_href or href in blocked:
                continue
            seen_href.add(href)
            absolute = resolve(href)
            if absolute is not None and absolute not in seen:
                seen.add(absolute)
                links.append(absolute)
        if refresh is not None and refresh not in seen:
            links.append(refresh)
    return ParsedPage(
        links=tuple(links),
        n_links=n_links,
        title=title,
        canonical=canonical,
        refresh=refresh,
        nofollow=nofollow,
        noindex=noindex,
        charset=charset,
    )


class _Resolver:
    """Exact absolute URL of an href, or None (a link to the page itself, or invalid)."""

    __slots__ = ("base", "dirs", "origin", "spliced")
    origin: str | None
    spliced: str | None

    def __init__(self, base: str) -> None:
        # An exact base in the common shape lets exact_url() splice relative links without
        # urljoin.
        try:
            self.base = exact_url(base)
        except InvalidURLError:
            self.base = base
        # scheme://host[:port] of the base, for root-relative links (the most common).
        cut = self.base.find("/", self.base.find("//") + 2)
        self.origin = self.base[:cut] if self.base.startswith("http") and cut > 0 else None
        # the common shapes of links joined by concatenation (1.1 us a root-relative link and
        # ~1.3 a relative one, against 2.0 and 4.0 through exact_url; test site, 2026-12-07)
        self.spliced = splice_origin(self.base)
        self.dirs = None if self.spliced is None else splice_dirs(self.spliced, self.base)

    def __call__(self, href: str) -> str | None:
        href = href.strip()
        if not href or href[0] == "#":
            return None
        try:
            if href[0] == "/":
                if self.origin is not None and href[1:2] != "/":
                    if self.spliced is not None:
                        exact = splice(self.spliced, href)
                        if exact is not None:
                            return exact
                    return exact_url(self.origin + href)
            elif href.startswith(("http://", "https://")):
                return exact_url(href)  # (absolute: the base plays no part)
            elif self.dirs is not None:
                exact = splice_relative(self.dirs, href)
                if exact is not None:
                    return exact
            return exact_url(href, self.base)
        except InvalidURLError:
            return None


def parse_sitemap(inp: ParseInput) -> ParsedPage:
    """URLs of a sitemap: XML ``urlset``/``sitemapindex`` ``<loc>``, gzipped or not, or text."""
    try:
        body = decode_body(inp.body, inp.content_encoding, inp.max_decoded)
        if body[:2] == b"\x1f\x8b":
            # A .xml.gz file served as-is (no Content-Encoding): the payload itself is gzip.
            body = decode_body(body, "gzip", inp.max_decoded)
        stripped = body.lstrip(b"\xef\xbb\xbf \t\r\n")
        if stripped.startswith(b"<"):
            raw = _xml_locs(stripped)
        else:
            raw = [line.strip() for line in stripped.decode("utf-8", "replace").splitlines()]
    except Exception as exc:  # never raise: the engine records the error with the page
        return _fail(exc)
    links: list[str] = []
    seen: set[str] = set()
    for loc in raw:
        if not loc:
            continue
        try:
            # The protocol requires fully qualified URLs: no resolution against the sitemap.
            url = exact_url(loc)
        except InvalidURLError:
            continue
        if url not in seen:
            seen.add(url)
            links.append(url)
    return ParsedPage(links=tuple(links), n_links=sum(1 for r in raw if r))


def _xml_locs(body: bytes) -> list[str]:
    from lxml import etree  # type: ignore[import-untyped]  # where used: see _extract

    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        huge_tree=False,
        load_dtd=False,
        recover=True,
        remove_comments=True,
    )
    root = etree.fromstring(body, parser)
    if root is None:
        raise ValueError("not an XML sitemap")
    return [(el.text or "").strip() for el in root.iter("{*}loc")]


def parse_any(inp: ParseInput) -> ParsedPage:
    """Sitemaps by name/type, everything else as HTML (top level: runs in the parse pool)."""
    if is_sitemap(inp.url, inp.content_type):
        return parse_sitemap(inp)
    return parse_page(inp)
