"""The hosts a crawl waits for: shown live, logged once per change, carried across processes."""

from __future__ import annotations

import time

from crawler.stats import CrawlStats


def test_waiting_hosts_shown_while_they_wait_and_logged_once() -> None:
    stats = CrawlStats()
    now = time.time()
    stats.note_waiting("a:80", "robots.txt ConnectionRefused, retry 1", now + 5)
    stats.note_waiting("b:80", "robots.txt UnknownHost, retry 1", now - 1)  # already over
    assert str(stats.snapshot()["waiting"]).startswith(
        "a:80: robots.txt ConnectionRefused, retry 1"
    )
    assert "b:80" not in str(stats.snapshot()["waiting"])
    lines = stats.notices()
    assert len(lines) == 2 and "waiting for b:80" in " ".join(lines)  # a short wait still logs
    assert stats.notices() == []  # once per change
    stats.note_waiting("a:80", "robots.txt ConnectionRefused, retry 2", now + 5)
    assert stats.notices() == [
        "waiting for a:80: robots.txt ConnectionRefused, retry 2 (next try in 5.0 s)"
    ]
    stats.note_unreachable("a:80", "ConnectionRefused: a:80 unreachable: refused")
    assert "a:80" not in stats.waiting  # unreachable now: no longer waiting
    assert stats.notices() == ["ConnectionRefused: a:80 unreachable: refused; its URLs fail"]


def test_waiting_survives_the_json_round_trip() -> None:
    stats = CrawlStats()
    stats.note_waiting("a:80", "robots.txt TLSError, retry 1", time.time() + 5)
    copy = CrawlStats.from_json(stats.to_json())
    assert copy.waiting == stats.waiting
    assert "a:80" in str(copy.snapshot()["waiting"])


def test_every_wait_is_logged_even_when_the_next_comes_before_a_look() -> None:
    # the log thread looks every half second; a 0.3 s retry-1 wait followed by retry 2 must
    # still give two lines, not the last one only
    stats = CrawlStats()
    now = time.time()
    stats.note_waiting("a:80", "robots.txt ConnectionRefused, retry 1", now - 0.1)
    stats.note_waiting("a:80", "robots.txt ConnectionRefused, retry 2", now + 1)
    lines = stats.notices()
    assert [line.split(" (")[0] for line in lines] == [
        "waiting for a:80: robots.txt ConnectionRefused, retry 1",
        "waiting for a:80: robots.txt ConnectionRefused, retry 2",
    ]
    copy = CrawlStats.from_json(stats.to_json())  # the gevent child's counters, carried over
    assert len(copy.notices()) == 2 and copy.notices() == []
