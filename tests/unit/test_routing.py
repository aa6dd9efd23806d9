"""The processes mode's host routing: spread hosts are sent ahead, within each worker's share."""

from __future__ import annotations

from crawler.core.robots import RobotsRules, rules_from_response
from crawler.core.routing import AHEAD, HostRouter, host_shares

UA = "fetchlab-test"


def _rules(text: str) -> RobotsRules:
    return rules_from_response(200, text.encode(), 0.0)


def _router(
    per_host: int = 8, delay: float = 0.0, workers: int = 2, capacity: int = 256
) -> HostRouter:
    return HostRouter(
        workers, per_host=per_host, delay=delay, robots=True, user_agent=UA, capacity=capacity
    )


def test_a_spread_host_is_sent_ahead_and_each_worker_runs_its_share() -> None:
    router = _router(per_host=8)
    router.learn("a", _rules("User-agent: *\nDisallow: /private\n"))
    assert router.host_limit("a") == 8 * (1 + AHEAD)
    routes = [router.route("a") for _ in range(router.host_limit("a"))]
    for k, share in enumerate(host_shares(8, 2)):
        mine = [r for r in routes if r.worker == k]
        assert len(mine) == share * (1 + AHEAD)
        assert {r.limit for r in mine} == {share}  # the worker's cap: its share of per_host
    router.returned(1, "a")
    assert router.route("a").worker == 1  # the room freed is where the next URL goes


def test_pinned_hosts_are_not_sent_ahead() -> None:
    router = _router(per_host=8)
    pin = router.pin("b")
    # before its robots.txt verdict: the pinned worker's share, run as it comes
    assert router.host_limit("b") == host_shares(8, 2)[pin]
    assert router.route("b").limit is None
    router.learn("c", _rules("User-agent: *\nCrawl-delay: 2\n"))
    assert router.host_limit("c") == 8 and router.route("c").limit is None
    delayed = _router(per_host=8, delay=1.0)
    delayed.learn("d", _rules(""))
    assert delayed.host_limit("d") == 8 and delayed.route("d").limit is None


def test_many_hosts_in_flight_are_not_sent_ahead() -> None:
    # a URL queued at a worker holds a place of the crawl's concurrency: with many hosts the
    # places run URLs of more hosts instead
    router = _router(per_host=8, capacity=64)  # the extra of 64 / 16 = 4 hosts
    hosts = [f"h{n}" for n in range(5)]
    for host in hosts:
        router.learn(host, _rules(""))
    for host in hosts[:4]:
        assert router.host_limit(host) == 16
        router.route(host)
    assert router.host_limit("h0") == 16  # four hosts in flight: each has its extra
    assert router.host_limit("h4") == 8  # a fifth does not fit
    routes = [router.route("h4") for _ in range(8)]
    assert router.host_limit("h0") == 8  # five in flight: none is sent ahead
    for k, share in enumerate(host_shares(8, 2)):
        assert sum(r.worker == k for r in routes) == share  # each worker its share, no more
        assert {r.limit for r in routes if r.worker == k} == {share}
    for r in routes:
        router.returned(r.worker, "h4")
    assert router.host_limit("h0") == 16  # h4 is done: room again


def test_urls_started_while_sent_ahead_still_go_where_there_is_room() -> None:
    # host_limit let 16 start; a second host came in flight before they were routed
    router = _router(per_host=8, capacity=16)
    router.learn("a", _rules(""))
    router.learn("b", _rules(""))
    assert router.host_limit("a") == 16
    router.route("b")  # now two hosts in flight: a is no longer sent ahead
    routes = [router.route("a") for _ in range(16)]
    for k, share in enumerate(host_shares(8, 2)):
        assert sum(r.worker == k for r in routes) == 2 * share
