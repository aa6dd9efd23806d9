"""Every fault of the test bed's fault server ends as a recorded outcome in every mode; the crawl
goes on. One crawl per mode covers them all (``fault_crawls``, tests/fixtures/crawls.py)."""

from __future__ import annotations

from pathlib import Path

from foundation.mode import Mode
from testbed.faults import FaultServer
from tests.fixtures.crawls import FaultCrawls, expected
from tests.integration.crawl_support import check_archive, crawl, pages


def test_every_fault_is_recorded(mode: Mode, fault_crawls: FaultCrawls) -> None:
    run = fault_crawls(mode)
    assert run.code == 1  # failed URLs: "done, with failures"
    want = expected()
    got = {key: (run.rows[key].get("status"), run.rows[key].get("error_class")) for key in want}
    assert got == want
    assert run.elapsed < 60
    rows = run.rows
    ok = run.requests["ok"]
    base = run.urls["ok /ok"].removesuffix("/ok")
    # retried the right number of times, and no more
    assert ok["/flaky/k1"] == 3 and rows["ok /flaky/k1?fails=2&status=503"]["retries"] == 2
    assert ok["/flaky/k2"] == 3 and rows["ok /flaky/k2?fails=9&status=500"]["retries"] == 2
    assert ok["/status/500"] == 3 and rows["ok /status/500"]["retries"] == 2
    assert ok["/reset-once/k1"] == 2  # the connection reset, then the page
    assert ok["/ratelimit/k1"] == 2 and rows["ok /ratelimit/k1?fails=1&retry_after=1"]["retries"]
    assert ok["/reset-mid-body"] == 3  # a lost connection is retried
    assert ok["/status/410"] == ok["/page/-1"] == 1  # a 4xx is final
    assert ok["/huge-headers"] == 2  # one per URL: a head too large is not retried
    assert ok["/robots.txt"] == 1 and "/private/page" not in ok
    # the bombs are stored as received (compressed), the huge bodies cut at the cap
    assert rows["ok /gzip-bomb?mib=64"]["bytes"] < 2_000_000
    for huge in ("ok /huge?bytes=50000000", "ok /huge?bytes=50000000&length=1"):
        assert rows[huge]["bytes"] == 2_000_000 and rows[huge]["truncated"] is True
    assert rows["ok /redirect/chain/4"]["final_url"] == base + "/redirect/chain/0"
    assert rows["ok /redirect/chain/4"]["hops"] == 5
    assert rows["ok /redirect/relative"]["final_url"] == run.urls["ok /ok"]
    assert ok["/redirect/chain/12"] == 1 and ok["/redirect/chain/1"] == 1  # 11 hops, then stop
    assert rows["ok /latin1"]["title"] and "\ufffd" not in rows["ok /latin1"]["title"]
    assert rows["ok /no-content-type"]["title"] is not None  # parsed as HTML
    assert rows["ok /wrong-content-type"]["n_links"] is None  # an image is not parsed
    assert rows["ok /status/204"]["bytes"] == 0
    # robots.txt: 404 allows all; 500 and unreachable disallow the host without fetching it
    assert run.requests["404"]["/private/page"] == 1
    for key in ("500 /ok", "500 /page/1", "slow /ok", "refused /nothing-listens"):
        assert "unreachable" in rows[key]["error"], rows[key]
    assert set(run.requests["500"]) == set(run.requests["slow"]) == {"/robots.txt"}
    # asked again after each wait: the first time, then once per retry round (the two URLs
    # wait with different jitter, so a round may ask for each of them)
    assert 3 <= run.requests["500"]["/robots.txt"] <= 1 + 2 * 2
    check_archive(run.out)


def test_redirect_external_not_followed_in_follow_mode(
    mode: Mode, fault_server: FaultServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    url = fault_server.url("/redirect/external")
    crawl(out, url, follow=True, max_depth=0, mode=mode.value)
    (row,) = pages(out)
    assert row["status"] == 302 and row["error_class"] == "OutOfScope"
