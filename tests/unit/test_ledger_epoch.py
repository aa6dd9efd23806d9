"""The ledger forgets the links it met when a shared frontier says its server restarted."""

from __future__ import annotations

from crawler.core.frontier import FrontierItem, MemoryFrontier
from crawler.ledger import CrawlLedger
from crawler.settings import CrawlerSettings
from crawler.stats import CrawlStats


class RestartingFrontier(MemoryFrontier):
    epoch = 0  # as RedisFrontier.epoch: bumped when the Redis server's run_id changed


def test_a_new_epoch_resets_every_link_memory() -> None:
    frontier = RestartingFrontier()
    forgotten: list[bool] = []
    ledger = CrawlLedger(
        CrawlerSettings(follow=True),
        frontier,
        None,
        CrawlStats(),
        on_forget=lambda: forgotten.append(True),
    )
    page = FrontierItem("http://a/", 0, "a:80", 0, None)
    assert len(ledger.sched.links(page, ["http://a/x"], False)) == 1
    ledger.tick()
    assert ledger.sched.links(page, ["http://a/x"], False) == []
    assert forgotten == []
    frontier.epoch = 1
    ledger.tick()
    assert forgotten == [True]
    assert len(ledger.sched.links(page, ["http://a/x"], False)) == 1
    ledger.tick()
    assert forgotten == [True]  # once per restart
