"""Fetching one URL as a generator of effects: robots, hop-by-hop redirects, retries, outcome.

The behaviour lives here once; every concurrency mode only *drives* it (model: httpx
``auth_flow``). The generator yields an effect and receives its result:

    FetchEffect(request)      -> FetchResult, or the FetchError the transport raised
    RobotsEffect(url)         -> RobotsRules for the URL's host (the driver caches per host and
                                 runs :func:`robots_flow` on a miss)
    SleepEffect(seconds, host)-> None (host set: pause the whole host, e.g. 429 Retry-After)

and finally returns an :class:`Outcome`. Nothing here does I/O or reads a clock: times come in
with the results (``FetchResult.received_at``) and randomness through ``rand``.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Literal

from crawler.core.retry import RetryPolicy, parse_retry_after
from crawler.core.robots import RobotsRules, robots_url, rules_from_response, unreachable_rules
from crawler.core.urls import exact_url, host_key, host_of
from foundation.errors import ConnectError, FetchError, InvalidURLError

__all__ = [
    "REDIRECT_STATUSES",
    "Effect",
    "FetchEffect",
    "FetchRequest",
    "FetchResult",
    "FlowConfig",
    "Outcome",
    "RobotsEffect",
    "SleepEffect",
    "header_value",
    "host_of",
    "robots_flow",
    "url_flow",
]

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# RFC 9309 2.3.1.2: follow at least five consecutive redirects for robots.txt.
ROBOTS_MAX_REDIRECTS = 5

RawHeaders = tuple[tuple[bytes, bytes], ...]


@dataclass(frozen=True)
class FetchRequest:
    """One GET the transport performs (never following redirects itself)."""

    url: str
    headers: tuple[tuple[str, str], ...] = ()
    max_bytes: int = 50 * 1024 * 1024
    timeout: float = 30.0


@dataclass(frozen=True)
class FetchResult:
    """One HTTP response as received: head from the raw header lines, body not decompressed."""

    url: str
    status: int
    reason: str
    http_version: str  # "1.1"
    headers: RawHeaders
    body: bytes
    truncated: bool
    request_head: bytes  # rebuilt request line + headers as sent, for the WARC request record
    started_at: float  # wall clock (epoch seconds) when the request started
    received_at: float  # wall clock when the body was complete
    peer: str | None = None

    @property
    def elapsed(self) -> float:
        return max(0.0, self.received_at - self.started_at)

    def header(self, name: str) -> str | None:
        return header_value(self.headers, name)


def header_value(headers: RawHeaders, name: str) -> str | None:
    """The first value of header ``name`` (case-insensitive): UTF-8 when its bytes are UTF-8
    (servers send raw UTF-8 in ``Location``, and browsers read it so), else latin-1."""
    want = name.lower().encode("ascii")
    for key, value in headers:
        if key.lower() == want:
            try:
                return value.decode("utf-8").strip()
            except UnicodeDecodeError:
                return value.decode("latin-1").strip()
    return None


@dataclass(frozen=True)
class FetchEffect:
    request: FetchRequest
    purpose: Literal["page", "robots"] = "page"

    @property
    def host(self) -> str:
        return host_of(self.request.url)


@dataclass(frozen=True)
class RobotsEffect:
    url: str

    @property
    def host(self) -> str:
        return host_of(self.url)


@dataclass(frozen=True)
class SleepEffect:
    seconds: float
    host: str | None = None  # pause this whole host (politeness slot backoff), not just us
    # (host, why): the host's URLs wait for this sleep to end, shown live (robots.txt retries)
    waiting: tuple[str, str] | None = None


Effect = FetchEffect | RobotsEffect | SleepEffect


@dataclass(frozen=True)
class FlowConfig:
    user_agent: str
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    obey_robots: bool = True
    max_redirects: int = 10
    max_bytes: int = 50 * 1024 * 1024
    timeout: float = 30.0
    # follow mode: a redirect hop must stay in the crawl's scope (None: list mode, any target)
    redirect_scope: Callable[[str], bool] | None = None

    def request(self, url: str) -> FetchRequest:
        return FetchRequest(
            url=url,
            headers=(("User-Agent", self.user_agent),),
            max_bytes=self.max_bytes,
            timeout=self.timeout,
        )


@dataclass(frozen=True)
class Outcome:
    """What happened to one URL. ``hops`` are every response to archive, in order."""

    url: str
    hops: tuple[FetchResult, ...] = ()
    error_class: str | None = None
    error: str | None = None
    retries: int = 0
    # robots.txt unreachable: try the URL again later (seconds), instead of failing it now
    retry_later: float | None = None

    @property
    def final(self) -> FetchResult | None:
        return self.hops[-1] if self.hops else None

    @property
    def final_url(self) -> str:
        return self.hops[-1].url if self.hops else self.url

    @property
    def status(self) -> int | None:
        return self.hops[-1].status if self.hops else None

    @property
    def ok(self) -> bool:
        return self.error_class is None


FlowGen = Generator[Effect, object, Outcome]


def _failed(url: str, hops: list[FetchResult], exc: BaseException, retries: int) -> Outcome:
    return Outcome(url, tuple(hops), type(exc).__name__, str(exc) or type(exc).__name__, retries)


def url_flow(url: str, cfg: FlowConfig, rand: Callable[[], float]) -> FlowGen:
    """Fetch ``url`` (exact form): robots check per hop, redirects hop by hop, retries."""
    hops: list[FetchResult] = []
    seen = {url}
    current = url
    attempts = 0  # tries of the current hop
    retries = 0
    while True:
        if cfg.obey_robots:
            rules = yield RobotsEffect(current)
            assert isinstance(rules, RobotsRules)
            if not rules.allowed(current, cfg.user_agent):
                if rules.cause is not None:  # the host cannot be connected to at all
                    cls, why = rules.cause
                    return Outcome(url, tuple(hops), cls, why, retries)
                if rules.temporary and not hops:
                    return Outcome(
                        url,
                        error_class="RobotsDisallowed",
                        error=f"robots.txt of {host_key(current)} unreachable: host paused",
                        retries=retries,
                        retry_later=cfg.policy.delay(retries, None, rand()),
                    )
                # the row and the summary already name the URL: say it once
                where = "it" if current == url else f"the redirect target {current}"
                return Outcome(
                    url, tuple(hops), "RobotsDisallowed", f"robots.txt disallows {where}", retries
                )
        result = yield FetchEffect(cfg.request(current))
        attempts += 1
        error = result if isinstance(result, FetchError) else None
        status = result.status if isinstance(result, FetchResult) else None
        if error is None and not isinstance(result, FetchResult):
            raise TypeError(f"FetchEffect answered with {type(result).__name__}")
        if (error is not None or (status is not None and (status >= 500 or status == 429))) and (
            cfg.policy.should_retry(attempts, status, error)
        ):
            retry_after = None
            pause_host = None
            if isinstance(result, FetchResult) and status in (429, 503):
                retry_after = parse_retry_after(result.header("Retry-After"), result.received_at)
                pause_host = host_key(current)
            retries += 1
            yield SleepEffect(cfg.policy.delay(attempts, retry_after, rand()), pause_host)
            continue
        if error is not None:
            return _failed(url, hops, error, retries)
        assert isinstance(result, FetchResult)
        hops.append(result)
        attempts = 0
        if result.status in REDIRECT_STATUSES and result.header("Location"):
            location = result.header("Location") or ""
            try:
                target = exact_url(location, base=current)
            except InvalidURLError as exc:
                return _failed(url, hops, exc, retries)
            if target in seen:
                return Outcome(
                    url, tuple(hops), "TooManyRedirects", f"redirect loop at {target}", retries
                )
            if len(hops) > cfg.max_redirects:
                return Outcome(
                    url,
                    tuple(hops),
                    "TooManyRedirects",
                    f"more than {cfg.max_redirects} redirects",
                    retries,
                )
            if cfg.redirect_scope is not None and not cfg.redirect_scope(target):
                return Outcome(
                    url,
                    tuple(hops),
                    "OutOfScope",
                    f"redirect to {target} leaves the scope",
                    retries,
                )
            seen.add(target)
            current = target
            continue
        if result.status >= 400:
            return Outcome(
                url,
                tuple(hops),
                "HTTPStatusError",
                f"HTTP {result.status} {result.reason}",
                retries,
            )
        if result.truncated:
            return Outcome(
                url,
                tuple(hops),
                "BodyTooLarge",
                f"body over {cfg.max_bytes} bytes: truncated",
                retries,
            )
        return Outcome(url, tuple(hops), retries=retries)


RobotsGen = Generator[Effect, object, RobotsRules]


def robots_flow(
    page_url: str, cfg: FlowConfig, now: float, rand: Callable[[], float] = lambda: 0.5
) -> RobotsGen:
    """Fetch the robots.txt for ``page_url``'s site (up to five redirects) and return its rules.

    ``now`` stamps the rules when no response came back at all (unreachable). A failure to
    connect (refused, unknown host, TLS) is retried with the policy's backoff -- seconds, while
    the host's other URLs wait for this verdict -- and then becomes a verdict that fails the
    host's URLs with that cause (:func:`unreachable_rules`).
    """
    current = robots_url(page_url)
    host = host_key(page_url)
    seen = {current}
    attempts = 0
    hops = 0
    while hops <= ROBOTS_MAX_REDIRECTS:
        result = yield FetchEffect(cfg.request(current), purpose="robots")
        if isinstance(result, ConnectError):
            attempts += 1
            if cfg.policy.should_retry(attempts, None, result):
                why = f"robots.txt {type(result).__name__}, retry {attempts}"
                yield SleepEffect(cfg.policy.delay(attempts, None, rand()), None, (host, why))
                continue
            cause = f"{host_key(current)} unreachable: {result}"
            return unreachable_rules(type(result).__name__, cause, now)
        if isinstance(result, FetchError):
            return rules_from_response(None, b"", now)
        assert isinstance(result, FetchResult)
        location = result.header("Location")
        if result.status in REDIRECT_STATUSES and location:
            try:
                target = exact_url(location, base=current)
            except InvalidURLError:
                return rules_from_response(404, b"", result.received_at)
            if target in seen:
                break
            seen.add(target)
            current = target
            hops += 1
            attempts = 0
            continue
        # a truncated robots.txt is still parsed: RFC 9309 only needs the first 500 KiB
        return rules_from_response(result.status, result.body, result.received_at)
    # redirects unresolved after five hops, or a loop: "unavailable" (allow all), as Google does
    return rules_from_response(310, b"", now)
