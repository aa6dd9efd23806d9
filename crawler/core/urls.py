"""URL canonical form, fingerprints, host keys, URL-list reading and crawl scope.

Every URL that reaches the frontier goes through :func:`canonicalize`, so equal pages get equal
strings and equal :func:`fingerprint` digests. The canonical form is w3lib's
(``canonicalize_url``: query arguments sorted, percent-encoding normalised, fragment dropped,
non-ASCII made safe) plus what w3lib leaves alone: default ports dropped, empty path made ``/``.

A fast path handles the common link shape (ASCII host, plain path, at most one simple query
argument) without w3lib: links are the hot loop of parsing, and w3lib costs ~8 µs per URL. The
fast path is checked against the slow one by a property test.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urljoin, urlsplit

from modes._exceptions import InvalidURLError, UnsupportedSchemeError
from w3lib.url import canonicalize_url

__all__ = [
    "MAX_URL_LENGTH",
    "BadLine",
    "Scope",
    "UrlLine",
    "canonicalize",
    "fingerprint",
    "host_key",
    "read_url_lines",
    "registered_domain",
]

# RFC 9110 asks senders and recipients to support at least 8000 octets of request target.
MAX_URL_LENGTH = 8000

_DEFAULT_PORTS = {"http": 80, "https": 443}

# Already canonical: lower-case http(s) scheme and ASCII host, no userinfo, path of unreserved and
# sub-delim characters without '%' or dot segments, and no query or one plain ``k=v`` argument.
# Anything else takes the w3lib path.
_FAST = re.compile(
    r"https?://(?P<host>[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?)(?::(?P<port>[0-9]{1,5}))?"
    r"(?P<path>/(?:[A-Za-z0-9_~!$&'()*+,=:@-]|\.(?![./?]|$)|/(?!\.))*)?"
    r"(?:\?[A-Za-z0-9_~.-]+=[A-Za-z0-9_~.-]*)?"
)
_ALPHA_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


def _fast(url: str) -> str | None:
    """Return the canonical form of an already-canonical-looking URL, or None to go slow."""
    m = _FAST.fullmatch(url)
    if m is None or ".." in m.group("host"):
        return None
    port = m.group("port")
    scheme_end = 4 if url[4] == ":" else 5
    if port is not None:
        num = int(port)
        if num == _DEFAULT_PORTS[url[:scheme_end]]:
            # Drop the default port but keep the rest byte-for-byte.
            return url[: m.end("host")] + (url[m.end("port") :] or "/")
        if num > 65535 or port[0] == "0":
            return None
    if m.group("path") is None:
        end = m.end("port") if port is not None else m.end("host")
        return url[:end] + "/" + url[end:]
    return url


def canonicalize(url: str, base: str | None = None) -> str:
    """Resolve ``url`` against ``base`` and return its canonical absolute form.

    Raises InvalidURLError (empty, no host, bad port, too long) or UnsupportedSchemeError (any
    scheme but http/https).
    """
    url = url.strip()
    if base is not None:
        if url.startswith(("http://", "https://")):
            pass
        elif not url:
            raise InvalidURLError("empty URL")
        else:
            url = urljoin(base, url)
    if not url:
        raise InvalidURLError("empty URL")
    if len(url) > MAX_URL_LENGTH:
        raise InvalidURLError(f"URL longer than {MAX_URL_LENGTH} characters")
    fast = _fast(url)
    if fast is not None:
        return fast
    return _slow(url)


def _slow(url: str) -> str:
    if _ALPHA_SCHEME.match(url) is None:
        raise InvalidURLError(f"no scheme in {url[:80]!r} (did you mean http://{url[:60]}?)")
    scheme = url.split(":", 1)[0].lower()
    if scheme not in _DEFAULT_PORTS:
        raise UnsupportedSchemeError(f"unsupported scheme {scheme!r}: only http and https")
    try:
        canon = canonicalize_url(url, keep_fragments=False)
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
    if any(c in host for c in " %<>\\^`{|}\"'"):
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


def fingerprint(canonical_url: str) -> bytes:
    """16-byte BLAKE2b digest of a canonical URL: the frontier's dedup key."""
    return hashlib.blake2b(canonical_url.encode("utf-8", "surrogatepass"), digest_size=16).digest()


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


@dataclass(frozen=True)
class UrlLine:
    """A good line of a URL list: where it came from and its canonical URL."""

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
    """Canonicalize each line of a URL list; blank lines and ``#`` comments are skipped."""
    for lineno, raw in enumerate(lines, start=1):
        text = raw.strip().lstrip("\ufeff").strip()
        if not text or text.startswith("#"):
            continue
        try:
            yield UrlLine(source, lineno, canonicalize(text))
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
        """True when the canonical URL ``url`` is inside the scope."""
        try:
            if self.kind == "host":
                inside = host_key(url) in self._keys
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
