"""URL exact and canonical forms, fingerprints, host keys, URL-list reading and crawl scope.

Two forms of every URL, as Heritrix and browsertrix keep them: the *exact* form
(:func:`exact_url`) is what a page linked to, resolved against its base, with only the escaping
RFC 3986 requires; it is what the crawler requests and what the WARC, ``pages.jsonl`` and the
CDXJ record, byte for byte. The *canonical* form (:func:`canonicalize`) is only a dedup key:
:func:`fingerprint` digests it, so ``/a?b=1&a=2`` and ``/a?a=2&b=1`` are one page in the frontier
while the first form met is the one fetched.

The canonical form is w3lib's
(``canonicalize_url``: query arguments sorted, percent-encoding normalised, fragment dropped,
non-ASCII made safe) plus what w3lib leaves alone: default ports dropped, empty path made ``/``.

A fast path handles the common link shape (ASCII host, plain path, at most one simple query
argument) without w3lib: links are the hot loop of parsing, and w3lib costs ~8 µs per URL. The
fast path is checked against the slow one by a property test.

The core imports no third-party code: w3lib's ``canonicalize_url`` reaches the slow path through a
port (:func:`bind_canonicalizer`) that :mod:`crawler.adapters` binds when the ``crawler`` package
is imported, before any of its modules runs.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal
from urllib.parse import quote, urljoin, urlsplit

from foundation.errors import InvalidURLError, UnsupportedSchemeError
from foundation.hashes import blake2b

__all__ = [
    "MAX_URL_LENGTH",
    "BadLine",
    "Scope",
    "UrlLine",
    "bind_canonicalizer",
    "canonicalize",
    "exact_url",
    "fingerprint",
    "host_key",
    "host_of",
    "read_url_lines",
    "registered_domain",
    "splice",
    "splice_dirs",
    "splice_origin",
    "splice_relative",
]

# RFC 9110 asks senders and recipients to support at least 8000 octets of request target.
MAX_URL_LENGTH = 8000

_DEFAULT_PORTS = {"http": 80, "https": 443}

# Already canonical but for the default port and query order: lower-case http(s) scheme and ASCII
# host, no userinfo, a path of unreserved and sub-delim characters without '%', ';' or dot
# segments, and a query of plain ``k=v`` arguments. Anything else takes the w3lib path. The host
# is a dotted quad as written canonically or a name whose last label starts with a letter: w3lib
# (>= 2.6, as the WHATWG URL standard) reads a host whose last label is a number as an IPv4
# address, rewritten ("0x7f.1" -> "127.0.0.1", "0" -> "0.0.0.0") or refused ("a.1").
_ARG = r"[A-Za-z0-9_~.-]+=[A-Za-z0-9_~.-]*"
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_PATH = r"/(?:[A-Za-z0-9_~!$&'()*+,=:@-]|\.(?![./?]|$)|/(?!\.))*"
_FAST = re.compile(
    rf"https?://(?P<host>(?P<ipv4>{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}(?=[:/?]|$))"
    r"|(?:[a-z0-9][a-z0-9.-]{0,250}\.)?[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?)"
    r"(?::(?P<port>[0-9]{1,5}))?"
    rf"(?P<path>{_PATH})?"
    rf"(?:\?(?P<query>{_ARG}(?:&{_ARG})*))?"
)
# the part of _FAST after the host and port: a root-relative link in the common shape
_ROOT_REF = re.compile(rf"{_PATH}(?:\?{_ARG}(?:&{_ARG})*)?")
_ALPHA_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
# never in a host as written (the WHATWG parser would decode '%' and read '\' as '/')
_BAD_HOST_CHARS = " %<>\\^`{|}\"'"
# A relative reference made only of path characters (no scheme, query, fragment or escapes).
_REL_PATH = re.compile(r"[A-Za-z0-9_~!$&'()*+,=@./-]*")


def _fast_valid(m: re.Match[str]) -> bool:
    """A ``_FAST`` match is a valid URL: no empty host label, a port in range written without
    leading zeros (the regex cannot say either)."""
    port = m.group("port")
    return ".." not in m.group("host") and (port is None or (port[0] != "0" and int(port) <= 65535))


def _unchanged(m: re.Match[str], url: str) -> bool:
    """A ``_FAST`` match of ``url`` that :func:`exact_url` returns as it is: a path, valid (as
    :func:`_fast_valid` says, inline: one ``group`` call, ~0.4 us a link less), and no default
    port (which ``_shape`` drops)."""
    host, port, path = m.group("host", "port", "path")
    return (
        path is not None
        and ".." not in host
        and (
            port is None
            or (
                port[0] != "0" and int(port) <= 65535 and port != ("80" if url[4] == ":" else "443")
            )
        )
    )


def _fast(url: str) -> str | None:
    """The canonical form of a URL in the common shape, or None to take the w3lib path."""
    m = _FAST.fullmatch(url)
    if m is None or not _fast_valid(m):
        return None
    host_end = m.end("host")
    rest = host_end
    netloc_end = host_end
    port = m.group("port")
    if port is not None:
        num = int(port)
        rest = m.end("port")
        if num != _DEFAULT_PORTS[url[: url.index(":")]]:
            netloc_end = rest
    query = m.group("query")
    if query is not None and "&" in query:
        # w3lib sorts (key, value) pairs, which is not the order of the "k=v" strings.
        args = sorted(tuple(a.split("=", 1)) for a in query.split("&"))
        ordered = "&".join(f"{k}={v}" for k, v in args)
        if ordered != query:
            url = url[: m.start("query")] + ordered
    if m.group("path") is None:
        return url[:netloc_end] + "/" + url[rest:]
    if netloc_end != rest:
        return url[:netloc_end] + url[rest:]
    return url


@lru_cache(maxsize=256)
def _split_base(base: str) -> tuple[str, str] | None:
    """``(origin, path)`` of a base already in canonical form (safe to splice), else None."""
    if _fast(base) != base:
        return None
    slash = base.find("/", base.index("//") + 2)
    return base[:slash], base[slash:].split("?", 1)[0]


def _join(ref: str, base: str) -> str | None:
    """``urljoin(base, ref)`` for a canonical ``base`` and a plain relative ``ref``, else None.

    Covers the relative links that pages are full of (``p2.html``, ``../a/``, ``/x?b=1``) without
    urljoin's general parsing; ``#fragment`` is dropped first, as canonicalize drops it anyway.
    """
    hash_at = ref.find("#")
    if hash_at >= 0:
        ref = ref[:hash_at]
    q = ref.find("?")
    path, query = (ref[:q], ref[q:]) if q >= 0 else (ref, "")
    if len(query) <= 1 and not path:
        return None  # "", "?", "#x": urljoin keeps the base's query
    if path.startswith("//") or _REL_PATH.fullmatch(path) is None:
        return None
    split = _split_base(base)
    if split is None:
        return None
    origin, base_path = split
    if path.startswith("/"):
        merged = path
    elif not path:
        merged = base_path
    else:
        merged = base_path[: base_path.rfind("/") + 1] + path
    if "//" in merged:
        return None  # urljoin squeezes empty segments of relative paths; let it
    if "/." in merged:
        merged = _remove_dots(merged)
    return origin + merged + query


def canonicalize(url: str, base: str | None = None) -> str:
    """Resolve ``url`` against ``base`` and return its canonical absolute form.

    Raises InvalidURLError (empty, no host, bad port, too long) or UnsupportedSchemeError (any
    scheme but http/https).
    """
    url = url.strip()
    hash_at = url.find("#")
    if hash_at >= 0:
        url = url[:hash_at]
        if not url and base is not None:
            url = base  # "#section": the base document itself
    colon = -1 if url.startswith(("http://", "https://")) else url.find(":")
    if colon > 0 and url[:colon].lower() not in _DEFAULT_PORTS:
        # mailto:, javascript:, tel: ... are common in pages: refuse them before any parsing.
        scheme = url[:colon]
        if ("." in scheme or scheme == "localhost") and url[colon + 1 : colon + 2].isdigit():
            raise InvalidURLError(f"no scheme in {url[:80]!r} (did you mean http://{url[:60]}?)")
        if _ALPHA_SCHEME.fullmatch(scheme + ":") and "/" not in scheme:
            raise UnsupportedSchemeError(
                f"unsupported scheme {scheme.lower()!r}: only http and https"
            )
    if base is not None and url and not url.startswith(("http://", "https://")):
        url = _join(url, base) or urljoin(base, url)
    if not url:
        raise InvalidURLError("empty URL")
    if len(url) > MAX_URL_LENGTH:
        raise InvalidURLError(f"URL longer than {MAX_URL_LENGTH} characters")
    fast = _fast(url)
    if fast is not None:
        return fast
    return _slow(url)


# the full canonical form of any URL (w3lib's canonicalize_url, fragments dropped): a port
_full_canonical: Callable[[str], str] | None = None


def bind_canonicalizer(full: Callable[[str], str]) -> None:
    """Bind the library that canonicalises what the fast path does not handle."""
    global _full_canonical
    _full_canonical = full


def _slow(url: str) -> str:
    if _ALPHA_SCHEME.match(url) is None:
        raise InvalidURLError(f"no scheme in {url[:80]!r} (did you mean http://{url[:60]}?)")
    scheme = url.split(":", 1)[0].lower()
    if scheme not in _DEFAULT_PORTS:
        raise UnsupportedSchemeError(f"unsupported scheme {scheme!r}: only http and https")
    try:
        written = urlsplit(url).netloc.rpartition("@")[2]  # (credentials: refused below)
    except ValueError as exc:
        raise InvalidURLError(f"invalid URL {url[:80]!r}: {exc}") from None
    if not written:
        # "http:///path", "http:/x.com": browsers (and w3lib >= 2.6) take the next path segment
        # for the host; wget and curl refuse them, and so does the exact form
        raise InvalidURLError(f"no host in {url[:80]!r}")
    if any(c in written for c in _BAD_HOST_CHARS):
        raise InvalidURLError(f"invalid host in {url[:80]!r}")
    try:
        if _full_canonical is None:
            raise RuntimeError("no URL canonicaliser bound (import the crawler package)")
        canon = _full_canonical(url)
        parts = urlsplit(canon)
        host = parts.hostname
        port = parts.port
    except (ValueError, UnicodeError) as exc:
        raise InvalidURLError(f"invalid URL {url[:80]!r}: {exc}") from None
    if not host:
        raise InvalidURLError(f"no host in {url[:80]!r}")
    if parts.username is not None or parts.password is not None:
        # Credentials in a URL would be archived in every record; refuse them.
        raise InvalidURLError(f"credentials in URL {url[:80]!r} are not supported")
    if any(c in host for c in _BAD_HOST_CHARS):
        raise InvalidURLError(f"invalid host in {url[:80]!r}")
    netloc = parts.netloc
    if port is not None and port == _DEFAULT_PORTS[scheme]:
        netloc = netloc.rsplit(":", 1)[0]
    elif netloc.endswith(":"):
        netloc = netloc[:-1]
    path = parts.path or "/"
    canon = f"{scheme}://{netloc}{path}"
    if parts.query:
        canon += "?" + parts.query
    if len(canon) > MAX_URL_LENGTH:
        raise InvalidURLError(f"URL longer than {MAX_URL_LENGTH} characters")
    return canon


def fingerprint(url: str) -> bytes:
    """16-byte BLAKE2b digest of the canonical form of ``url`` (exact or canonical, absolute):
    the frontier's dedup key. Canonical forms are fixed points, so a frontier written when it
    stored canonical URLs keeps its keys."""
    canon = canonicalize(url)  # its fast path first
    return blake2b(canon.encode("utf-8", "surrogatepass"), digest_size=16).digest()


# RFC 3986: what may appear raw in a path or query (unreserved, sub-delims, ":@/?" and the '%'
# of an escape). '%' is always kept, even before non-hex digits: a link to "/%zz" is requested
# as "/%zz", as browsers do, not "repaired" into another URL.
_RAW_SAFE = "-._~!$&'()*+,;=:@/?%"
_NEEDS_ESCAPE = re.compile(r"[^A-Za-z0-9\-._~!$&'()*+,;=:@/?%]")
_TAB_NL = re.compile(r"[\t\n\r]")


def exact_url(url: str, base: str | None = None) -> str:
    """The URL a link points to, as a browser requests it: resolved against ``base``, fragment
    dropped, scheme and host lower-case (an IDN host in its ASCII form), dot segments removed,
    an empty path made ``/``, and the characters that cannot appear raw (space, quotes, ``<>``,
    ``\\^`{|}``, controls, non-ASCII as UTF-8) percent-encoded. Nothing else changes: no
    sorting, no ``?ok`` -> ``?ok=``, no re-coding of existing escapes.

    Raises InvalidURLError or UnsupportedSchemeError, as :func:`canonicalize` does.
    """
    url = url.strip()
    if "\t" in url or "\n" in url or "\r" in url:
        url = _TAB_NL.sub("", url)  # HTML's URL parser drops them anywhere
    hash_at = url.find("#")
    if hash_at >= 0:
        url = url[:hash_at]
        if not url and base is not None:
            url = base
    if base is not None and url and not url.startswith(("http://", "https://")):
        colon = url.find(":")
        if colon > 0 and _ALPHA_SCHEME.fullmatch(url[: colon + 1]):
            canonicalize(url)  # mailto:, javascript: ...: raises with the right message
        url = _join(url, base) or urljoin(base, url)
    if not url:
        raise InvalidURLError("empty URL")
    if len(url) > MAX_URL_LENGTH:
        raise InvalidURLError(f"URL longer than {MAX_URL_LENGTH} characters")
    m = _FAST.fullmatch(url)
    if m is not None and _unchanged(m, url):
        # the common shape: already exact (and valid). Not through _fast, whose second regex
        # match and query sorting an exact URL does not want
        return url
    exact = _shape(url)
    if len(exact) > MAX_URL_LENGTH:
        raise InvalidURLError(f"URL longer than {MAX_URL_LENGTH} characters")
    canonicalize(exact)  # validation: scheme, host, port, no credentials
    return exact


def splice_origin(base: str) -> str | None:
    """``scheme://host[:port]`` of ``base`` when :func:`splice` may join links onto it: ``base``
    is an exact URL in the common shape (the one :func:`exact_url` returns unchanged)."""
    m = _FAST.fullmatch(base)
    if m is None or not _unchanged(m, base):
        return None
    return base[: m.end("port") if m.group("port") is not None else m.end("host")]


def splice(origin: str, ref: str) -> str | None:
    """``exact_url(origin + ref)`` for a root-relative ``ref`` in the common shape (no ``//``,
    dot segment, escape, fragment or odd query) and an ``origin`` from :func:`splice_origin`;
    None for any other ``ref``. The parser's hot loop: a page's links are mostly of this shape,
    and this is one regex match against exact_url's dozen steps (property-tested against it)."""
    if ref[1:2] == "/" or len(origin) + len(ref) > MAX_URL_LENGTH:
        return None
    return origin + ref if _ROOT_REF.fullmatch(ref) is not None else None


# a relative link in the common shape: "../" steps, then path characters (no ':', which would
# make the first segment a scheme; no dot segment or empty segment) and a plain query
_UPS = re.compile(r"(?:\.\./)*")
_REL_REF = re.compile(
    r"[A-Za-z0-9_~!$&'()*+,=@-](?:[A-Za-z0-9_~!$&'()*+,=@-]|\.(?![./?]|$)|/(?![./]))*"
    rf"(?:\?{_ARG}(?:&{_ARG})*)?"
)


def splice_dirs(origin: str, base: str) -> tuple[str, ...] | None:
    """``origin/dir/`` for the directory of exact URL ``base`` and each above it, nearest first:
    what :func:`splice_relative` joins links onto; ``origin = splice_origin(base)``. None when
    the path has an empty segment (urljoin's business)."""
    path = base[len(origin) :].split("?", 1)[0]
    if "//" in path:
        return None
    dirs = path.split("/")[1:-1]
    return tuple(
        origin + "/" + "".join(d + "/" for d in dirs[: len(dirs) - up])
        for up in range(len(dirs) + 1)
    )


def splice_relative(dirs: tuple[str, ...], ref: str) -> str | None:
    """``exact_url(ref, base)`` for a relative ``ref`` in the common shape (``p2.html``,
    ``../a/p3.html?x=1``) and ``dirs = splice_dirs(origin, base)``; None for any other
    ``ref``."""
    up = _UPS.match(ref).end()  # type: ignore[union-attr]  # (matches any string)
    if _REL_REF.fullmatch(ref, up) is None:
        return None
    prefix = dirs[min(up // 3, len(dirs) - 1)]  # RFC 3986: ".." above the root stays there
    if len(prefix) + len(ref) - up > MAX_URL_LENGTH:
        return None
    return prefix + ref[up:]


def _shape(url: str) -> str:
    if _ALPHA_SCHEME.match(url) is None:
        raise InvalidURLError(f"no scheme in {url[:80]!r} (did you mean http://{url[:60]}?)")
    scheme, _, rest = url.partition(":")
    scheme = scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise UnsupportedSchemeError(f"unsupported scheme {scheme!r}: only http and https")
    if not rest.startswith("//"):
        raise InvalidURLError(f"no host in {url[:80]!r}")
    rest, _, query = rest[2:].partition("?")
    # browsers read a backslash as a slash before the query of an http(s) URL
    rest = rest.replace("\\", "/")
    cut = rest.find("/")
    netloc, path = (rest, "") if cut < 0 else (rest[:cut], rest[cut:])
    netloc = _ascii_netloc(netloc, url, _DEFAULT_PORTS[scheme])
    if not path:
        path = "/"
    elif "/." in path:
        path = _remove_dots(path)
    if _NEEDS_ESCAPE.search(path):
        path = quote(path, safe=_RAW_SAFE)
    if query and _NEEDS_ESCAPE.search(query):
        query = quote(query, safe=_RAW_SAFE)
    # an empty "?" is dropped: neither HTTP client can send it, and the WARC must say what was sent
    return f"{scheme}://{netloc}{path}" + (f"?{query}" if query else "")


def _ascii_netloc(netloc: str, url: str, default_port: int) -> str:
    if "@" in netloc:
        raise InvalidURLError(f"credentials in URL {url[:80]!r} are not supported")
    close = netloc.rfind("]")  # an IPv6 literal's colons are not a port's
    at = netloc.rfind(":")
    host, colon, port = (netloc, "", "") if at <= close else (netloc[:at], ":", netloc[at + 1 :])
    if port == str(default_port) or (colon and not port):
        colon = port = ""  # as browsers send it: no default port
    host = host.lower()
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise InvalidURLError(f"invalid host in {url[:80]!r}: {exc}") from None
    return host + colon + port


def _remove_dots(path: str) -> str:
    """RFC 3986 5.2.4 remove_dot_segments, for an absolute path."""
    out: list[str] = []
    segments = path.split("/")
    for seg in segments[1:]:
        if seg == "..":
            if out:
                out.pop()
        elif seg != ".":
            out.append(seg)
    if segments[-1] in (".", ".."):
        out.append("")
    return "/" + "/".join(out)


def host_key(url: str) -> str:
    """``host:port`` with the explicit or default port: the politeness and robots key."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError as exc:
        raise InvalidURLError(f"invalid URL {url[:80]!r}: {exc}") from None
    if not host:
        raise InvalidURLError(f"no host in {url[:80]!r}")
    if port is None:
        port = _DEFAULT_PORTS.get(parts.scheme.lower())
        if port is None:
            raise UnsupportedSchemeError(f"unsupported scheme {parts.scheme!r}")
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}"


@lru_cache(maxsize=4096)
def _origin_host_key(origin: str) -> str:
    return host_key(origin)


def host_of(url: str) -> str:
    """:func:`host_key`, cached per origin: asked several times per URL (the driver, the
    frontier, the scope check of every new link), and ``urlsplit`` was a visible share of the
    event loop's and the crawl workers' time. The netloc ends at the first ``/``, ``?`` or
    ``#`` after ``//``, so the text up to the path's ``/`` has the same host."""
    cut = url.find("/", url.find("//") + 2)
    return _origin_host_key(url if cut < 0 else url[:cut])


@dataclass(frozen=True)
class UrlLine:
    """A good line of a URL list: where it came from and its URL (exact form)."""

    source: str
    lineno: int
    url: str


@dataclass(frozen=True)
class BadLine:
    """A URL-list line that was skipped, with the reason, for the report."""

    source: str
    lineno: int
    text: str
    reason: str


def read_url_lines(lines: Iterable[str], source: str) -> Iterator[UrlLine | BadLine]:
    """The exact form of each line of a URL list (:func:`exact_url`).

    Blank lines and ``#`` comment lines are skipped, and so is a `` # comment`` after the URL.
    """
    for lineno, raw in enumerate(lines, start=1):
        text = raw.strip().lstrip("\ufeff").strip()
        if not text or text.startswith("#"):
            continue
        first, _, rest = text.partition(" ") if " " in text else text.partition("\t")
        rest = rest.strip()
        if rest and not rest.startswith("#"):
            yield BadLine(source, lineno, text, "whitespace inside the URL (write it as %20)")
            continue
        try:
            yield UrlLine(source, lineno, exact_url(first))
        except InvalidURLError as exc:
            yield BadLine(source, lineno, text, str(exc))


def registered_domain(host: str) -> str:
    """Simple registered-domain rule: the last two labels; IP addresses stay exact.

    Knowingly not the Public Suffix List (``example.co.uk`` gives ``co.uk``): scope ``domain`` is
    a convenience, and ``allow``/``deny`` patterns refine it.
    """
    host = host.strip("[]").rstrip(".").lower()
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    labels = host.split(".")
    return ".".join(labels[-2:])


@dataclass(frozen=True)
class Scope:
    """Which discovered links a follow crawl keeps.

    ``host``: same ``host:port`` as a seed; ``domain``: the same registered domain (any
    subdomain); ``prefix``: starts with a seed's canonical URL up to its last ``/``. Then
    ``allow`` regexes (one must match, if any are given) and ``deny`` regexes (none may match).
    """

    kind: Literal["host", "domain", "prefix"]
    seeds: tuple[str, ...]
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    _keys: frozenset[str] = field(init=False, repr=False, compare=False)
    _prefixes: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _allow: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)
    _deny: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in ("host", "domain", "prefix"):
            raise ValueError(f"unknown scope kind {self.kind!r}")
        canon = [canonicalize(s) for s in self.seeds]
        if self.kind == "host":
            keys = frozenset(host_key(u) for u in canon)
        elif self.kind == "domain":
            keys = frozenset(registered_domain(urlsplit(u).hostname or "") for u in canon)
        else:
            keys = frozenset()
        prefixes = tuple(u[: u.rfind("/") + 1] for u in canon) if self.kind == "prefix" else ()
        try:
            allow = tuple(re.compile(p) for p in self.allow)
            deny = tuple(re.compile(p) for p in self.deny)
        except re.error as exc:
            raise ValueError(f"bad allow/deny pattern: {exc}") from None
        # Frozen: set the derived caches once, here.
        object.__setattr__(self, "_keys", keys)
        object.__setattr__(self, "_prefixes", prefixes)
        object.__setattr__(self, "_allow", allow)
        object.__setattr__(self, "_deny", deny)

    def allows(self, url: str) -> bool:
        """True when ``url`` (exact or canonical) is inside the scope; patterns and prefixes
        are matched against its canonical form, so a link's spelling does not decide."""
        try:
            url = canonicalize(url)
            if self.kind == "host":
                inside = host_of(url) in self._keys
            elif self.kind == "domain":
                inside = registered_domain(urlsplit(url).hostname or "") in self._keys
            else:
                inside = url.startswith(self._prefixes)
        except (InvalidURLError, ValueError):
            return False
        if not inside:
            return False
        if self._allow and not any(p.search(url) for p in self._allow):
            return False
        return not any(p.search(url) for p in self._deny)
