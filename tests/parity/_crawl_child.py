"""A list-mode crawl in a given mode, run as a child process so a test can SIGKILL it.

``python -m tests.parity._crawl_child OUT MODE CONCURRENCY URLS_FILE`` (what ``crawler crawl
--mode MODE -i URLS_FILE --out OUT`` does once the CLI takes ``--mode``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from crawler.frontier_sqlite import SqliteFrontier
from crawler.settings import CrawlerSettings
from drivers.crawl_run import seed_frontier
from drivers.dispatch import run_crawl
from foundation.frozen import build


def main(argv: list[str]) -> int:
    out, mode, conc, urls_file = Path(argv[0]), argv[1], int(argv[2]), Path(argv[3])
    settings = build(
        CrawlerSettings,
        {"out": out, "mode": mode, "concurrency": conc, "per_host": conc, "parse_workers": 0},
    )
    out.mkdir(parents=True, exist_ok=True)
    frontier = SqliteFrontier(out / "state.sqlite")
    try:
        seed_frontier(frontier, urls_file.read_text("utf-8").split())
        result = run_crawl(settings, frontier)
    finally:
        frontier.close()
    if result.interrupted:
        return 130  # what the CLI answers to Ctrl-C
    return 0 if not result.stats.failed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
