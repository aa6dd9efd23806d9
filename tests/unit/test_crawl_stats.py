"""CrawlStats crosses a process boundary as JSON (the gevent mode): every counter comes back."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import fields
from typing import Any

from crawler.stats import PROCESS_LOCAL, CrawlStats

# a value unlike the default for every field that travels; a new field must be added here
SAMPLE: dict[str, Any] = {
    "done": 11,
    "failed": 2,
    "bytes": 123_456,
    "responses": 12,
    "retries": 3,
    "revisits": 4,
    "skipped": 5,
    "in_flight": 6,
    "queued": 7,
    "pending": 8,
    "max_pending": 9,
    "held": 10,
    "max_held": 13,
    "total_hint": 99,
    "previous": 14,
    "errors": Counter({"FetchTimeout": 2, "ConnectError": 1}),
    "failed_urls": [("http://a.test/x", "FetchTimeout: slow"), ("http://b.test/", "refused")],
    "unreachable": {"dead.test:80": "ConnectionRefused: dead.test:80 unreachable: refused"},
    "waiting": {"slow.test:80": ("robots.txt UnknownHost, retry 1", 1767225600.5)},
    "wait_log": [("slow.test:80", "robots.txt UnknownHost, retry 1", 1767225600.5)],
    "waits_noted": 3,
}


def _sample() -> CrawlStats:
    stats = CrawlStats()
    for name, value in SAMPLE.items():
        setattr(stats, name, value)
    return stats


def test_the_sample_covers_every_field_but_the_clocks() -> None:
    names = {f.name for f in fields(CrawlStats)}
    assert names >= PROCESS_LOCAL
    assert set(SAMPLE) == names - PROCESS_LOCAL
    default = CrawlStats()
    assert all(getattr(default, k) != v for k, v in SAMPLE.items())


def test_every_counter_round_trips_through_json() -> None:
    sent = _sample()
    data = json.loads(json.dumps(sent.to_json()))
    assert set(data) == set(SAMPLE)
    back = CrawlStats.from_json(data)
    for name, value in SAMPLE.items():
        assert getattr(back, name) == value, name
    assert isinstance(back.errors, Counter)
    assert all(isinstance(pair, tuple) for pair in back.failed_urls)


def test_load_json_updates_in_place_and_keeps_the_clocks() -> None:
    shown = CrawlStats(started=1.0, cpu_start=2.0)
    shown.load_json(json.loads(json.dumps(_sample().to_json())))
    assert (shown.started, shown.cpu_start) == (1.0, 2.0)
    assert {k: getattr(shown, k) for k in SAMPLE} == SAMPLE
    none_hint = CrawlStats()
    none_hint.load_json(json.loads(json.dumps(CrawlStats().to_json())))
    assert none_hint.total_hint is None
