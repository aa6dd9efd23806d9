"""The crawl scheduler's decisions, fed plain data: every mode's driver relies on these."""

from __future__ import annotations

from array import array

from hypothesis import given, settings
from hypothesis import strategies as st

from crawler.core.frontier import FrontierItem
from crawler.core.robots import RobotsRules, rules_from_response
from crawler.core.scheduler import (
    DRY_RECHECK,
    MIN_TABLE,
    Commit,
    CrawlScheduler,
    LinkFilter,
    Release,
    Retry,
    RobotsBook,
    SchedulerConfig,
    retries_later,
    slot_wait,
)
from crawler.core.urls import Scope


def item(url: str, host: str = "a:80", depth: int = 0, attempts: int = 0) -> FrontierItem:
    return FrontierItem(url, depth, host, attempts, None)


def sched(**cfg: object) -> CrawlScheduler:
    return CrawlScheduler(SchedulerConfig(**cfg))  # type: ignore[arg-type]


def test_lease_batches_and_dry_frontier_waits() -> None:
    s = sched()
    assert s.lease_want(0.0, capacity=8) == 64  # at least 64: one SQL transaction per batch
    s.leased([item(f"http://a/{i}") for i in range(10)], short=True, mono=100.0)
    # short lease: the frontier had nothing more; ask again only after DRY_RECHECK
    assert s.lease_want(100.0, capacity=8) == 0
    assert s.lease_want(100.0 + DRY_RECHECK, capacity=8) == 54
    # links added (or a retry queued) end the dry spell at once
    s.dry(True, 200.0)
    s.links(item("http://a/0"), ["http://a/new"], from_sitemap=False)
    assert s.lease_want(200.0, capacity=8) > 0


def test_lease_respects_max_pages_across_runs() -> None:
    s = CrawlScheduler(SchedulerConfig(max_pages=10), previous=7)
    assert s.lease_want(0.0, capacity=100) == 3
    s.leased([item(f"http://a/{i}") for i in range(3)], short=False, mono=0.0)
    assert len(s.start(capacity=100)) == 3
    assert s.lease_want(0.0, capacity=100) == 0 and s.limit_left() == 0


def test_start_keeps_global_and_per_host_limits() -> None:
    s = sched(per_host=2)
    urls = [item(f"http://a/{i}", "a:80") for i in range(5)]
    urls += [item(f"http://b/{i}", "b:80") for i in range(5)]
    s.leased(urls, short=False, mono=0.0)
    first = s.start(capacity=3)
    assert len(first) == 3
    assert sum(i.host == "a:80" for i in first) <= 2
    started = first + s.start(capacity=10)
    assert [i.host for i in started].count("a:80") == 2
    assert [i.host for i in started].count("b:80") == 2
    # a host place frees when the URL's flow ends, before its line is written
    s.fetched(started[0])
    again = s.start(capacity=10)
    assert [i.host for i in again] == [started[0].host]
    assert s.in_flight == 5  # the global place is held until done()


def test_host_limit_and_slot_readiness_are_honoured() -> None:
    s = sched(per_host=8)
    s.leased([item(f"http://a/{i}") for i in range(8)], short=False, mono=0.0)
    assert len(s.start(capacity=8, host_limit=lambda h: 3)) == 3
    assert s.start(capacity=8, can_start=lambda h: False) == []


def test_paced_host_gets_one_start_per_call() -> None:
    s = sched(per_host=4, delay=0.5)
    s.leased([item(f"http://a/{i}") for i in range(4)], short=False, mono=0.0)
    assert len(s.start(capacity=8, can_start=lambda h: True)) == 1
    # a robots.txt Crawl-delay paces a host the same way when no delay is set
    s2 = sched(per_host=4)
    rules = rules_from_response(200, b"User-agent: *\nCrawl-delay: 2\n", 0.0)
    s2.robots_learned("a:80", "http://a/", rules)
    s2.leased([item(f"http://a/{i}") for i in range(4)], short=False, mono=0.0)
    assert len(s2.start(capacity=8, can_start=lambda h: True)) == 1
    # without a view of the slot table (blocking modes) the effects layer paces instead
    assert len(s2.start(capacity=8)) == 3


def test_unreachable_robots_retry_waits_for_the_next_robots_fetch() -> None:
    # the drift this replaces: one driver waited max(retry_later, robots_retry), another only
    # retry_later, so a blocking mode asked for the same unreachable robots.txt too soon
    s = sched(retries=3, robots_retry=60.0)
    plan = s.finish(item("http://a/x", attempts=0), retry_later=1.5, wall=1000.0)
    assert plan == Retry(1060.0)
    plan = CrawlScheduler(SchedulerConfig(robots_retry=0.5)).finish(
        item("http://a/x"), retry_later=4.0, wall=1000.0
    )
    assert plan == Retry(1004.0)
    # out of tries: archived as a failure
    assert s.finish(item("http://a/x", attempts=3), 1.5, 1000.0) == Commit()
    assert s.finish(item("http://a/x"), None, 1000.0) == Commit()
    s.stop()
    assert s.finish(item("http://a/x"), 1.5, 1000.0) == Release()


@given(st.integers(0, 10), st.integers(0, 10), st.none() | st.floats(0, 100))
def test_retries_later_agrees_with_finish(attempts: int, retries: int, later: float | None) -> None:
    s = sched(retries=retries)
    plan = s.finish(item("http://a/", attempts=attempts), later, 0.0)
    assert isinstance(plan, Retry) == retries_later(
        item("http://a/", attempts=attempts), later, retries
    )


def test_links_depth_scope_and_sitemaps() -> None:
    scope = Scope("host", ("http://a/",), (), ())
    s = CrawlScheduler(SchedulerConfig(max_depth=1, follow=True), scope)
    page = item("http://a/p", depth=0)
    new = s.links(page, ["http://a/1", "http://b/out", "http://a/1"], from_sitemap=False)
    assert [(n.url, n.depth, n.parent) for n in new] == [("http://a/1", 1, "http://a/p")]
    assert s.links(item("http://a/q", depth=1), ["http://a/2"], from_sitemap=False) == []
    # a sitemap's URLs keep the sitemap's depth
    assert [n.depth for n in s.links(item("http://a/s", depth=1), ["http://a/3"], True)] == [1]
    rules = rules_from_response(200, b"Sitemap: http://a/map.xml\n", 0.0)
    seeds = s.robots_learned("a:80", "http://a/p", rules)
    assert {n.url for n in seeds} == {"http://a/map.xml", "http://a/sitemap.xml"}
    assert s.robots_learned("a:80", "http://a/p", rules) == []  # once per host


def test_end_or_wait() -> None:
    s = sched(max_pages=5)
    assert s.idle
    assert s.end_or_wait(None, 0.0) is None  # nothing queued: over
    assert s.end_or_wait(10.5, 10.0) == 0.5
    assert s.end_or_wait(100.0, 10.0) == 1.0  # never blind for long
    s.stop()
    assert s.end_or_wait(10.5, 10.0) is None


def test_wake_in_follows_the_earliest_slot() -> None:
    s = sched()
    s.leased([item("http://a/1", "a:80"), item("http://b/1", "b:80")], short=False, mono=0.0)
    waits = {"a:80": 0.05, "b:80": float("inf")}
    assert s.wake_in(waits.__getitem__) == 0.05
    assert s.wake_in() == 0.25
    assert slot_wait(float("inf")) == 1.0 and slot_wait(0.0) == 0.001


def test_robots_book_one_fetch_per_host() -> None:
    book = RobotsBook(retry=30.0, size=2)
    assert book.lookup("a", 0.0) is None
    assert book.claim("a") and not book.claim("a")  # the second caller waits
    book.release("a")  # the fetch failed: the next caller fetches
    assert book.claim("a")
    ok = RobotsRules("allow_all", fetched_at=0.0)
    book.store("a", ok)
    assert book.lookup("a", 10.0) is ok and book.claim("a")
    book.store("a", ok)
    temp = RobotsRules("disallow_all", fetched_at=0.0, temporary=True)
    book.install("b", temp)
    assert book.lookup("b", 29.0) is temp and book.lookup("b", 31.0) is None  # stale: refetch
    book.install("c", ok)  # least recently used out
    assert not book.known("a") and book.known("c")


def test_link_filter_generations() -> None:
    f = LinkFilter(None, size=2)
    assert f(["x", "y", "x"]) == ("x", "y")
    assert f(["z"]) == ("z",)  # the new generation starts
    assert f(["x", "w"]) == ("w",)  # x still known in the old generation


def test_link_depth() -> None:
    from crawler.core.scheduler import link_depth

    assert link_depth(item("http://a/", depth=2), False, None) == 3
    assert link_depth(item("http://a/", depth=2), True, 2) == 2  # a sitemap's URLs: its depth
    assert link_depth(item("http://a/", depth=2), False, 2) is None


def test_robots_book_passes_a_crawl_delay_to_the_slot_table() -> None:
    delays: list[tuple[str, float]] = []
    book = RobotsBook(user_agent="ua", on_delay=lambda host, s: delays.append((host, s)))
    assert book.claim("a")
    book.store("a", rules_from_response(200, b"User-agent: *\nCrawl-delay: 2\n", 0.0))
    book.install("b", rules_from_response(200, b"User-agent: *\nDisallow: /x\n", 0.0))
    book.install("c", rules_from_response(200, b"User-agent: *\nCrawl-delay: 0.5\n", 0.0))
    assert delays == [("a", 2.0), ("c", 0.5)]


def test_lease_batch_caps_the_buffer_of_a_shared_frontier() -> None:
    s = sched(lease_batch=8)
    assert s.lease_want(0.0, 256) == 8  # not 2 x capacity: other workers want work too
    assert sched().lease_want(0.0, 256) == 512


def test_forget_links_offers_them_again() -> None:
    s = sched(follow=True)
    page = item("http://a/", "a:80")
    assert [n.url for n in s.links(page, ["http://a/x"], False)] == ["http://a/x"]
    assert s.links(page, ["http://a/x"], False) == []
    s.forget_links()  # the shared frontier's Redis restarted: it may have lost them
    assert [n.url for n in s.links(page, ["http://a/x"], False)] == ["http://a/x"]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.lists(st.integers(0, 2000), max_size=40), max_size=60),
    st.sampled_from([1, 3, 50, 700, 10_000]),
)
def test_link_filter_sends_new_links_once_and_stays_bounded(
    pages: list[list[int]], size: int
) -> None:
    f = LinkFilter(None, size=size)
    seen: set[str] = set()
    for page in pages:
        links = [f"http://a.test/{n}" for n in page]
        sent = f(links)
        fresh = [u for u in dict.fromkeys(links) if u not in seen]
        if size >= 10_000:  # never full: exactly the links met for the first time, in order
            assert list(sent) == fresh
        else:  # a forgotten link may come again, but a link never met always comes
            assert set(fresh) <= set(sent) and len(set(sent)) == len(sent)
        seen.update(links)
        for table in (f._table, f._old or array("q")):
            assert len(table) <= max(MIN_TABLE, 4 * size)  # bounded: two tables at most
        assert f._count == len(f._table) - f._table.count(0) < size


def test_link_filter_tables_grow_without_losing_keys() -> None:
    f = LinkFilter(None, size=1_000_000)
    links = [f"http://a.test/{n}" for n in range(20_000)]
    assert f(links[:100]) == tuple(links[:100])
    assert f(links) == tuple(links[100:])  # grown several times within one call
    assert f(links) == () and len(f._table) == 32_768 and f._old is None
