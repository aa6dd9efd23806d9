"""The per-URL flow, driven by a scripted fake driver (canned responses, no I/O)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pytest

from crawler.core.flow import (
    FetchEffect,
    FetchResult,
    FlowConfig,
    Outcome,
    RobotsEffect,
    SleepEffect,
    header_value,
    robots_flow,
    url_flow,
)
from crawler.core.retry import RetryPolicy
from crawler.core.robots import RobotsRules, rules_from_response
from foundation.errors import (
    ConnectError,
    ConnectionRefused,
    FetchError,
    FetchTimeout,
    UnknownHost,
)

BASE = "http://a.test"
UA = "testbot"


def resp(
    url: str, status: int = 200, headers: Mapping[str, str] | None = None, body: bytes = b"x"
) -> FetchResult:
    raw = tuple((k.encode(), v.encode()) for k, v in (headers or {}).items())
    return FetchResult(
        url=url,
        status=status,
        reason="R",
        http_version="1.1",
        headers=raw,
        body=body,
        truncated=False,
        request_head=b"GET / HTTP/1.1\r\n\r\n",
        started_at=1000.0,
        received_at=1000.5,
    )


@dataclass
class Script:
    """Answers fetches from per-URL queues and records every effect seen."""

    answers: dict[str, list[FetchResult | FetchError]]
    robots: RobotsRules = field(default_factory=lambda: RobotsRules("allow_all"))
    effects: list[object] = field(default_factory=list)

    def drive(self, gen: object) -> object:
        value: object = None
        while True:
            try:
                effect = gen.send(value)  # type: ignore[attr-defined]
            except StopIteration as stop:
                return stop.value
            self.effects.append(effect)
            if isinstance(effect, FetchEffect):
                value = self.answers[effect.request.url].pop(0)
            elif isinstance(effect, RobotsEffect):
                value = self.robots
            elif isinstance(effect, SleepEffect):
                value = None
            else:
                raise AssertionError(effect)

    @property
    def sleeps(self) -> list[SleepEffect]:
        return [e for e in self.effects if isinstance(e, SleepEffect)]

    @property
    def fetched(self) -> list[str]:
        return [e.request.url for e in self.effects if isinstance(e, FetchEffect)]


def run(
    url: str,
    answers: Mapping[str, Sequence[FetchResult | FetchError]],
    *,
    robots: RobotsRules | None = None,
    retries: int = 3,
    obey: bool = True,
) -> tuple[Outcome, Script]:
    script = Script({k: list(v) for k, v in answers.items()})
    if robots is not None:
        script.robots = robots
    cfg = FlowConfig(user_agent=UA, policy=RetryPolicy(retries=retries), obey_robots=obey)
    out = script.drive(url_flow(url, cfg, lambda: 0.5))
    assert isinstance(out, Outcome)
    return out, script


def test_plain_ok() -> None:
    out, script = run(f"{BASE}/", {f"{BASE}/": [resp(f"{BASE}/")]})
    assert out.ok and out.status == 200 and out.final_url == f"{BASE}/"
    assert isinstance(script.effects[0], RobotsEffect)
    assert script.fetched == [f"{BASE}/"]


def test_redirects_hop_by_hop_each_archived() -> None:
    answers = {
        f"{BASE}/a": [resp(f"{BASE}/a", 301, {"Location": "/b"})],
        f"{BASE}/b": [resp(f"{BASE}/b", 302, {"Location": "http://other.test/c?y=1&x=2"})],
        "http://other.test/c?y=1&x=2": [resp("http://other.test/c?y=1&x=2")],
    }
    out, script = run(f"{BASE}/a", answers)
    assert out.ok
    assert [h.status for h in out.hops] == [301, 302, 200]
    assert out.final_url == "http://other.test/c?y=1&x=2"  # as the Location said
    # robots consulted before every hop (the third is on another host)
    robots_checks = [e.url for e in script.effects if isinstance(e, RobotsEffect)]
    assert robots_checks == [f"{BASE}/a", f"{BASE}/b", "http://other.test/c?y=1&x=2"]


def test_redirect_loop_detected() -> None:
    answers = {
        f"{BASE}/a": [resp(f"{BASE}/a", 302, {"Location": "/b"})],
        f"{BASE}/b": [resp(f"{BASE}/b", 302, {"Location": "/a"})],
    }
    out, _ = run(f"{BASE}/a", answers)
    assert out.error_class == "TooManyRedirects" and "loop" in (out.error or "")
    assert len(out.hops) == 2


def test_redirect_limit_ten() -> None:
    answers = {
        f"{BASE}/r{i}": [resp(f"{BASE}/r{i}", 302, {"Location": f"/r{i + 1}"})] for i in range(12)
    }
    out, script = run(f"{BASE}/r0", answers)
    assert out.error_class == "TooManyRedirects"
    assert len(script.fetched) == 11  # the first request plus ten followed redirects


def test_ten_redirects_are_fine() -> None:
    answers: dict[str, list[FetchResult | FetchError]] = {
        f"{BASE}/r{i}": [resp(f"{BASE}/r{i}", 302, {"Location": f"/r{i + 1}"})] for i in range(10)
    }
    answers[f"{BASE}/r10"] = [resp(f"{BASE}/r10")]
    out, _ = run(f"{BASE}/r0", answers)
    assert out.ok and len(out.hops) == 11


def test_retry_5xx_then_success() -> None:
    url = f"{BASE}/f"
    out, script = run(url, {url: [resp(url, 503), resp(url, 502), resp(url)]})
    assert out.ok and out.retries == 2
    assert len(out.hops) == 1  # failed tries are not archived, only the answer
    assert [s.seconds for s in script.sleeps] == [0.5, 1.0]


def test_retry_after_wins_and_pauses_host() -> None:
    url = f"{BASE}/rl"
    out, script = run(url, {url: [resp(url, 429, {"Retry-After": "7"}), resp(url)]})
    assert out.ok
    assert script.sleeps == [SleepEffect(7.0, "a.test:80")]


def test_retries_exhausted_records_status() -> None:
    url = f"{BASE}/down"
    out, script = run(url, {url: [resp(url, 500)] * 3}, retries=2)
    assert out.error_class == "HTTPStatusError" and out.status == 500
    assert len(script.fetched) == 3


def test_connection_errors_retried_then_failed() -> None:
    url = f"{BASE}/x"
    errors: list[FetchResult | FetchError] = [ConnectError("refused"), FetchTimeout("slow")]
    out, _ = run(url, {url: errors}, retries=1)
    assert out.error_class == "FetchTimeout" and not out.hops


def test_404_not_retried() -> None:
    url = f"{BASE}/nope"
    out, script = run(url, {url: [resp(url, 404)]})
    assert out.error_class == "HTTPStatusError" and script.fetched == [url]
    assert out.hops[0].status == 404


def test_robots_disallow_and_ignore() -> None:
    rules = rules_from_response(200, b"User-agent: *\nDisallow: /private/\n", 0.0)
    url = f"{BASE}/private/p"
    out, script = run(url, {}, robots=rules)
    assert out.error_class == "RobotsDisallowed" and not script.fetched
    out2, script2 = run(url, {url: [resp(url)]}, robots=rules, obey=False)
    assert out2.ok and not any(isinstance(e, RobotsEffect) for e in script2.effects)


def test_robots_unreachable_asks_for_later() -> None:
    rules = rules_from_response(503, b"", 0.0)
    out, _ = run(f"{BASE}/p", {}, robots=rules)
    assert out.error_class == "RobotsDisallowed" and out.retry_later is not None


def test_truncated_body_recorded() -> None:
    url = f"{BASE}/big"
    r = resp(url)
    big = FetchResult(**{**r.__dict__, "truncated": True})
    out, _ = run(url, {url: [big]})
    assert out.error_class == "BodyTooLarge" and out.hops == (big,)


@pytest.mark.parametrize(
    ("answers", "kind"),
    [
        ([resp(f"{BASE}/robots.txt", 200, body=b"User-agent: *\nDisallow: /x\n")], "parsed"),
        ([resp(f"{BASE}/robots.txt", 404)], "allow_all"),
        ([resp(f"{BASE}/robots.txt", 500)], "disallow_all"),
        ([ConnectError("down")] * 4, "disallow_all"),  # refused on every try
        ([FetchTimeout("slow")], "disallow_all"),  # reachable but slow: RFC 9309's "later"
    ],
)
def test_robots_flow_statuses(answers: list[FetchResult | FetchError], kind: str) -> None:
    script = Script({f"{BASE}/robots.txt": list(answers)})
    rules = script.drive(robots_flow(f"{BASE}/page", FlowConfig(user_agent=UA), 5.0))
    assert isinstance(rules, RobotsRules) and rules.kind == kind


def test_robots_flow_follows_five_redirects() -> None:
    answers: dict[str, list[FetchResult | FetchError]] = {
        f"{BASE}/robots.txt": [resp(f"{BASE}/robots.txt", 301, {"Location": "/r1"})]
    }
    for i in range(1, 5):
        answers[f"{BASE}/r{i}"] = [resp(f"{BASE}/r{i}", 301, {"Location": f"/r{i + 1}"})]
    answers[f"{BASE}/r5"] = [resp(f"{BASE}/r5", 200, body=b"User-agent: *\nDisallow: /\n")]
    rules = Script(answers).drive(robots_flow(f"{BASE}/", FlowConfig(user_agent=UA), 0.0))
    assert isinstance(rules, RobotsRules)
    assert rules.kind == "parsed" and not rules.allowed(f"{BASE}/a", UA)


def test_redirect_out_of_scope_not_followed() -> None:
    url = f"{BASE}/ext"
    script = Script({url: [resp(url, 302, {"Location": "http://elsewhere.test/"})]})
    cfg = FlowConfig(user_agent=UA, redirect_scope=lambda u: u.startswith(BASE))
    out = script.drive(url_flow(url, cfg, lambda: 0.5))
    assert isinstance(out, Outcome)
    assert out.error_class == "OutOfScope" and len(out.hops) == 1
    assert script.fetched == [url]


def test_robots_connect_failures_retried_then_the_cause_fails_the_url() -> None:
    """A dead host: robots.txt is retried with backoff (seconds), then the URL fails with the
    real cause at once, not "RobotsDisallowed ... try again later" for minutes."""
    robots = f"{BASE}/robots.txt"
    script = Script({robots: [ConnectionRefused("cannot connect: refused")] * 3})
    cfg = FlowConfig(user_agent=UA, policy=RetryPolicy(retries=2))
    rules = script.drive(robots_flow(f"{BASE}/p", cfg, 7.0, lambda: 0.5))
    assert isinstance(rules, RobotsRules) and rules.temporary and rules.fetched_at == 7.0
    assert rules.cause is not None and rules.cause[0] == "ConnectionRefused"
    assert [round(s.seconds, 2) for s in script.sleeps] == [0.5, 1.0]  # the policy's backoff
    assert script.fetched == [robots] * 3
    out, page = run(f"{BASE}/p", {}, robots=rules)
    assert out.error_class == "ConnectionRefused" and "unreachable" in (out.error or "")
    assert out.retry_later is None and page.fetched == []


def test_robots_recovers_after_a_refused_connect() -> None:
    robots = f"{BASE}/robots.txt"
    answers: list[FetchResult | FetchError] = [UnknownHost("no such host")]
    answers.append(resp(robots, 200, body=b"User-agent: *\nDisallow: /x\n"))
    rules = Script({robots: answers}).drive(robots_flow(f"{BASE}/", FlowConfig(user_agent=UA), 0.0))
    assert isinstance(rules, RobotsRules) and rules.kind == "parsed" and rules.cause is None


def test_robots_refusal_names_the_url_once() -> None:
    """The summary prints "URL  RobotsDisallowed: <error>": the error does not repeat the URL,
    only a redirect target that differs from it."""
    rules = rules_from_response(200, b"User-agent: *\nDisallow: /x\n", 0.0)
    out, _ = run(f"{BASE}/x", {}, robots=rules)
    assert out.error == "robots.txt disallows it"
    hop = resp(f"{BASE}/a", 301, {"Location": "/x/y"})
    out, _ = run(f"{BASE}/a", {f"{BASE}/a": [hop]}, robots=rules)
    assert out.error == f"robots.txt disallows the redirect target {BASE}/x/y"


def test_header_value_utf8_first_latin1_fallback() -> None:
    """A raw UTF-8 ``Location`` is read as browsers read it; other bytes as latin-1."""
    utf8 = ((b"Location", "../target dir/ünï page.html".encode()),)
    assert header_value(utf8, "location") == "../target dir/ünï page.html"
    latin1 = ((b"Location", "/caf\u00e9".encode("latin-1")),)
    assert header_value(latin1, "Location") == "/caf\u00e9"
    assert header_value(latin1, "Other") is None
