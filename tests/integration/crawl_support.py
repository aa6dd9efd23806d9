"""Helpers shared by the crawler integration tests: run the CLI, read the archive back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from warcio.archiveiterator import ArchiveIterator

from crawler.cdxj import lookup
from crawler.core.urls import canonicalize, exact_url
from crawler.frontier_sqlite import SqliteFrontier
from crawler.pages import iter_pages
from crawler.settings import CrawlerSettings
from crawler.warc import warc_files
from drivers import dispatch
from drivers.crawl_run import seed_frontier
from fetchlab.crawl_cli import run_crawl
from foundation.frozen import build
from foundation.mode import Mode

ROOT = Path(__file__).resolve().parents[2]


def crawl(
    out: Path, *urls: str, inputs: tuple[str, ...] = (), settings: Path | None = None, **flags: Any
) -> int:
    """``crawler crawl`` in this process (faster than a subprocess); returns the exit code."""
    base: dict[str, Any] = {
        "follow": None,
        "scope": None,
        "max_depth": None,
        "max_pages": None,
        "allow": (),
        "deny": (),
        "sitemaps": None,
        "concurrency": None,
        "per_host": None,
        "delay": None,
        "timeout": None,
        "retries": None,
        "max_bytes": None,
        "user_agent": None,
        "no_robots": False,
        "frontier": None,
        "parse_workers": 1,
        "loop": None,
        "mode": None,
    }
    base.update(flags)
    return run_crawl(urls, inputs, out, None, settings, base, progress=False)


def crawler_cmd(
    *args: str, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """The real command line in a child process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("FETCHLAB_SETTINGS", None)
    return subprocess.run(
        [sys.executable, "-m", "fetchlab.crawl_cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
    )


def pages(out: Path) -> list[dict[str, Any]]:
    return list(iter_pages(out / "pages.jsonl"))


@dataclass
class ArchiveCheck:
    responses: Counter[str]  # target URI -> response + revisit records (robots.txt aside)
    pairs: int  # request/response pairs, robots.txt aside
    robots: Counter[str]  # robots.txt URI -> response records (one per fetch of it)


def check_archive(out: Path) -> ArchiveCheck:
    """Read every WARC record back: digests verified, each response paired with its request.

    Also checks pages.jsonl against the WARC and that the CDXJ index finds every record.
    """
    responses: Counter[str] = Counter()
    robots: Counter[str] = Counter()
    ids: dict[str, str] = {}
    concurrent: list[str] = []
    digests: dict[str, str] = {}
    for path in warc_files(out):
        with open(path, "rb") as fh:
            for rec in ArchiveIterator(fh, check_digests="raise"):
                # check_digests="raise": reading the record to its end verifies both digests
                rec.raw_stream.read()
                uri = rec.rec_headers.get_header("WARC-Target-URI")
                if uri is not None and uri.endswith("/robots.txt"):
                    # robots.txt evidence: fetched again (and archived again) by each run
                    if rec.rec_type in ("response", "revisit"):
                        robots[uri] += 1
                        assert lookup(out / "index.cdxj", uri), f"{uri} missing from index.cdxj"
                    continue
                if rec.rec_type in ("response", "revisit"):
                    responses[uri] += 1
                    ids[rec.rec_headers.get_header("WARC-Record-ID")] = uri
                    digests[uri] = rec.rec_headers.get_header("WARC-Payload-Digest")
                elif rec.rec_type == "request":
                    concurrent.append(rec.rec_headers.get_header("WARC-Concurrent-To"))
    assert sorted(concurrent) == sorted(ids), "every response has exactly one request"
    index = out / "index.cdxj"
    for uri in responses:
        assert lookup(index, uri), f"{uri} missing from index.cdxj"
    for row in pages(out):
        if row["status"] is not None:
            assert row["final_url"] in responses
            if row["sha1"]:
                assert digests[row["final_url"]] == row["sha1"]
    return ArchiveCheck(responses, len(concurrent), robots)


def archived_urls(out: Path) -> set[str]:
    """Frontier URLs with a response in the archive (pages with a status), in canonical form:
    comparable with a site's truth, whichever spelling of a page the crawl met first."""
    return {canonicalize(r["url"]) for r in pages(out) if r["status"] is not None}


def dump(out: Path) -> str:
    return "\n".join(json.dumps(r) for r in pages(out))


def crawl_list(mode: Mode, out: Path, *urls: str, **extra: Any) -> dict[str, dict[str, Any]]:
    """A list crawl of ``urls`` in ``mode``; pages.jsonl rows by URL."""
    settings = build(
        CrawlerSettings,
        {"out": out, "mode": mode, "concurrency": 4, "parse_workers": 1, "timeout": 5, **extra},
    )
    out.mkdir(parents=True)
    frontier = SqliteFrontier(out / "state.sqlite")
    try:
        seed_frontier(frontier, [exact_url(u) for u in urls])
        dispatch.run_crawl(settings, frontier)
    finally:
        frontier.close()
    return {row["url"]: row for row in pages(out)}


# the pages.jsonl fields that may differ between two runs of the same crawl: when and how long
# a fetch took, where its records landed in which WARC file
RUN_FIELDS = ("fetched_at", "elapsed_ms", "warc", "warc_offset", "warc_end")


def comparable_row(row: dict[str, Any]) -> dict[str, Any]:
    """A pages.jsonl row without :data:`RUN_FIELDS`; ``error`` keeps the crawler's own words (the
    text before the first ``:``, digits masked: "timed out after 1.0 s" took 1.0 or 1.1 s), not
    the third-party library's message after it."""
    out = {k: v for k, v in row.items() if k not in RUN_FIELDS}
    if isinstance(out.get("error"), str):
        out["error"] = "".join("#" if c.isdigit() else c for c in out["error"].split(":")[0])
    return out


def warc_payloads(out: Path) -> dict[str, list[tuple[str, str | None]]]:
    """Target URI -> sorted (record type, payload digest) of its records in every WARC file.

    ``revisit`` counts as ``response``: which of two identical payloads is stored in full and
    which as a revisit depends on which fetch finished first, a race in any concurrent mode.
    warcinfo records (one per WARC file) have no target URI and are left out.
    """
    records: dict[str, list[tuple[str, str | None]]] = {}
    for path in warc_files(out):
        with open(path, "rb") as fh:
            for rec in ArchiveIterator(fh):
                uri = rec.rec_headers.get_header("WARC-Target-URI")
                if uri is None:
                    continue
                kind = "response" if rec.rec_type == "revisit" else rec.rec_type
                digest = rec.rec_headers.get_header("WARC-Payload-Digest")
                records.setdefault(uri, []).append((kind, digest))
    return {uri: sorted(recs, key=str) for uri, recs in records.items()}


def modes(**drifts: str) -> list[Any]:
    """Every mode as a parameter of the ``mode`` fixture (``indirect=True``); a mode named in
    ``drifts`` is a strict xfail with that reason: ``modes(threads="drift: ...")``."""
    return [
        pytest.param(
            m,
            id=m.value,
            marks=[pytest.mark.xfail(strict=True, reason=drifts[m.value])]
            if m.value in drifts
            else [],
        )
        for m in Mode
    ]
