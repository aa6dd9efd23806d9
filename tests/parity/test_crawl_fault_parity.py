"""Every mode writes the same archive of the fault server as the asyncio engine.

The crawls are those of ``fault_crawls`` (tests/fixtures/crawls.py: every fault, the robots.txt
variants and a refused port, one list-mode crawl per mode, the same URLs in every mode). Per
crawled URL: the same pages.jsonl row (timestamps, elapsed times and WARC file names/offsets
aside: :func:`comparable_row`) and, for its target URI, the same WARC record types and payload
digests. Then, per mode: the same records for the URIs reached only through redirects, the same
set of rows and URIs, the same exit code and the same requests seen by the servers.

A case that fails because of a known drift between modes is a strict xfail naming the drift, so
the fix flips it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from foundation.mode import Mode
from tests.fixtures.crawls import FaultCrawls, expected
from tests.integration.crawl_support import comparable_row, pages, warc_payloads

BLOCKING = (Mode.THREADS, Mode.GEVENT, Mode.SEQUENTIAL)  # requests-based transports

# key ("<server> <path>") -> a known drift that makes it differ in the BLOCKING modes, as a
# strict xfail (fixed so far: a redirect's body archived as 0 bytes, another request head
# order plus "Connection: keep-alive", a reset before the head counted as a retry)
DRIFTS: dict[str, str] = {}

OTHERS = [m for m in Mode if m is not Mode.ASYNCIO]


def _xfail(reason: str | None) -> list[Any]:
    return [pytest.mark.xfail(strict=True, reason=reason)] if reason else []


def _url_cases() -> Iterator[Any]:
    for key in expected():
        for m in OTHERS:
            reason = DRIFTS.get(key) if m in BLOCKING else None
            yield pytest.param(m, key, id=f"{m.value}-{key}", marks=_xfail(reason))


@functools.cache
def _records(out: Path) -> dict[str, list[tuple[str, str | None]]]:
    return warc_payloads(out)


@pytest.mark.parametrize(("mode", "key"), list(_url_cases()), indirect=["mode"])
def test_row_and_records_match_asyncio(mode: Mode, key: str, fault_crawls: FaultCrawls) -> None:
    ref, run = fault_crawls(Mode.ASYNCIO), fault_crawls(mode)
    assert run.urls[key] == ref.urls[key]
    assert run.rows[key], f"no pages.jsonl row for {run.urls[key]} in {mode}"
    assert comparable_row(run.rows[key]) == comparable_row(ref.rows[key])
    uri = ref.rows[key]["url"]  # the WARC-Target-URI: the frontier's (canonical) URL
    assert _records(run.out).get(uri) == _records(ref.out).get(uri)


@pytest.mark.parametrize("mode", OTHERS, indirect=True)
def test_redirect_hops_match_asyncio(mode: Mode, fault_crawls: FaultCrawls) -> None:
    """The records of the URIs reached only through a redirect (chain hops, loop/b, /ok)."""
    ref, run = fault_crawls(Mode.ASYNCIO), fault_crawls(mode)
    crawled = {row["url"] for row in ref.rows.values()}
    # robots.txt aside: a 5xx one is fetched again (and archived again) each robots_retry,
    # as often as the crawl's timing allows (tests/integration/test_crawl_robots_records.py)
    hops = {
        uri: recs
        for uri, recs in _records(ref.out).items()
        if uri not in crawled and not uri.endswith("/robots.txt")
    }
    assert len(hops) >= 12  # /redirect/chain/0..11 and /redirect/loop/b at least
    assert {uri: _records(run.out).get(uri) for uri in hops} == hops


@pytest.mark.parametrize("mode", OTHERS, indirect=True)
def test_same_rows_uris_and_exit(mode: Mode, fault_crawls: FaultCrawls) -> None:
    ref, run = fault_crawls(Mode.ASYNCIO), fault_crawls(mode)
    assert run.code == ref.code == 1
    ref_rows, run_rows = pages(ref.out), pages(run.out)
    assert sorted(r["url"] for r in run_rows) == sorted(r["url"] for r in ref_rows)
    assert len(run_rows) == len(expected())  # one row per URL, none twice
    assert set(_records(run.out)) == set(_records(ref.out))


@pytest.mark.parametrize("mode", OTHERS, indirect=True)
def test_same_requests_reach_the_servers(mode: Mode, fault_crawls: FaultCrawls) -> None:
    """Per server and path, as many requests as asyncio sent (retries, hops, robots.txt).

    Not the robots.txt that answers 500: how often it is asked again depends on jittered waits
    (test_crawl_faults bounds it; test_crawl_politeness times the waits)."""
    ref, run = fault_crawls(Mode.ASYNCIO), fault_crawls(mode)
    assert set(run.requests["500"]) == set(ref.requests["500"]) == {"/robots.txt"}
    assert {k: v for k, v in run.requests.items() if k != "500"} == {
        k: v for k, v in ref.requests.items() if k != "500"
    }
