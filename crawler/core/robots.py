"""robots.txt rules with RFC 9309 status semantics, parsed once per host (by protego).

Status handling (RFC 9309 section 2.3.1): a 2xx body is parsed (only its first 500 KiB); 4xx means
"unavailable": everything is allowed; 5xx or no answer at all means "unreachable": everything is
disallowed for now and the file is fetched again later (``temporary``). Two choices beyond the
RFC, both Google's: 429 counts as unreachable (the server asks us to slow down, so we do not
treat it as permission), and a redirect chain still unresolved after the engine's five hops counts
as unavailable (allow all).

The core imports no third-party code: the rules of a 2xx body are matched by a
:class:`RobotsMatcher` that a port (:func:`bind_matcher`) builds; :mod:`crawler.adapters` binds
protego's parser to it when the ``crawler`` package is imported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Literal, Protocol
from urllib.parse import urlsplit

from foundation.errors import InvalidURLError

__all__ = [
    "MAX_ROBOTS_BYTES",
    "ROBOTS_TTL",
    "TEMPORARY_TTL",
    "RobotsMatcher",
    "RobotsRules",
    "bind_matcher",
    "robots_url",
    "rules_from_response",
]

MAX_ROBOTS_BYTES = 500 * 1024
# RFC 9309 2.4: a cached robots.txt should not be used for more than 24 hours.
ROBOTS_TTL = 24 * 3600.0
# How soon an unreachable robots.txt is asked for again.
TEMPORARY_TTL = 60.0


def robots_url(url: str) -> str:
    """``scheme://host[:port]/robots.txt`` for the site of ``url`` (credentials dropped)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError as exc:
        raise InvalidURLError(f"invalid URL {url[:80]!r}: {exc}") from None
    if not host or parts.scheme.lower() not in ("http", "https"):
        raise InvalidURLError(f"no http(s) host in {url[:80]!r}")
    if ":" in host:
        host = f"[{host}]"
    scheme = parts.scheme.lower()
    default = 80 if scheme == "http" else 443
    netloc = host if port is None or port == default else f"{host}:{port}"
    return f"{scheme}://{netloc}/robots.txt"


class RobotsMatcher(Protocol):
    """The parsed rules of one robots.txt file (protego's parser has this face)."""

    def can_fetch(self, url: str, user_agent: str) -> bool: ...
    def crawl_delay(self, user_agent: str) -> float | None: ...
    @property
    def sitemaps(self) -> Iterable[str]: ...


_parse_rules: Callable[[str], RobotsMatcher] | None = None


def bind_matcher(parse: Callable[[str], RobotsMatcher]) -> None:
    """Bind the library that parses and matches a robots.txt body."""
    global _parse_rules
    _parse_rules = parse


@dataclass(frozen=True)
class RobotsRules:
    """One host's robots.txt verdict; the protego parse is cached on first use."""

    kind: Literal["parsed", "allow_all", "disallow_all"]
    body: bytes = b""
    fetched_at: float = 0.0
    temporary: bool = False
    # the host could not be connected to (error class, message): its URLs fail with this cause
    # until the verdict expires, instead of waiting for robots.txt (see unreachable_rules)
    cause: tuple[str, str] | None = None

    @cached_property
    def _parser(self) -> RobotsMatcher:
        # cached_property writes the instance __dict__ directly, which a frozen dataclass allows.
        body = self.body
        # Skip a UTF-8 BOM, even a truncated one, as Google's parser does.
        for bom in (b"\xef\xbb\xbf", b"\xef\xbb", b"\xef"):
            if body.startswith(bom):
                body = body[len(bom) :]
                break
        if _parse_rules is None:
            raise RuntimeError("no robots.txt matcher bound (import the crawler package)")
        return _parse_rules(body.decode("utf-8", "replace"))

    def allowed(self, url: str, user_agent: str) -> bool:
        """May ``user_agent`` fetch ``url``? ``/robots.txt`` itself is always allowed."""
        if self.kind == "allow_all":
            return True
        if self.kind == "disallow_all":
            return _is_robots_path(url)
        if _is_robots_path(url):
            return True
        return bool(self._parser.can_fetch(url, user_agent))

    def crawl_delay(self, user_agent: str) -> float | None:
        """The Crawl-delay that applies to ``user_agent``, in seconds, if any."""
        if self.kind != "parsed":
            return None
        delay = self._parser.crawl_delay(user_agent)
        return None if delay is None else float(delay)

    def sitemaps(self) -> tuple[str, ...]:
        """``Sitemap:`` URLs listed in the file (any user-agent group)."""
        if self.kind != "parsed":
            return ()
        return tuple(self._parser.sitemaps)

    def is_stale(self, now: float, ttl: float = ROBOTS_TTL, retry: float = TEMPORARY_TTL) -> bool:
        """True when the cached verdict should be fetched again."""
        return now - self.fetched_at >= (retry if self.temporary else ttl)

    def __getstate__(self) -> dict[str, object]:
        # Ship the fields only; the receiver re-parses on first use.
        state = dict(self.__dict__)
        state.pop("_parser", None)
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)


def _is_robots_path(url: str) -> bool:
    try:
        return urlsplit(url).path == "/robots.txt"
    except ValueError:
        return False


def rules_from_response(status: int | None, body: bytes, now: float) -> RobotsRules:
    """Turn the final answer to a robots.txt request into rules (RFC 9309 semantics).

    ``status`` is None when the server could not be reached (connect error, timeout, reset).
    """
    if status is None or status >= 500 or status == 429 or status < 200:
        return RobotsRules("disallow_all", fetched_at=now, temporary=True)
    if status >= 300:
        # 3xx here: the engine gave up following redirects; RFC 9309 2.3.1.2 allows
        # treating that as "unavailable"; 4xx is "unavailable" by definition.
        return RobotsRules("allow_all", fetched_at=now)
    if len(body) > MAX_ROBOTS_BYTES:
        cut = body.rfind(b"\n", 0, MAX_ROBOTS_BYTES)
        body = body[: cut + 1 if cut >= 0 else MAX_ROBOTS_BYTES]
    return RobotsRules("parsed", body=body, fetched_at=now)


def unreachable_rules(error_class: str, message: str, now: float) -> RobotsRules:
    """The verdict for a host that refused the connection, does not resolve or failed TLS on
    every try: nothing can be fetched there, so its URLs fail at once with the real cause
    (``error_class``) until the verdict expires (``robots_retry``), rather than being retried
    for minutes as "robots.txt unreachable" (RFC 9309's rule for 5xx answers still holds)."""
    return RobotsRules("disallow_all", fetched_at=now, temporary=True, cause=(error_class, message))
