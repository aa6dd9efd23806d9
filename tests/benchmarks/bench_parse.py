"""Parse CPU per page: ``crawler.parse.parse_page`` on generated HTML (a script, not a test).

    .venv/bin/python -m tests.benchmarks.bench_parse [--rounds 5] [--pages 200]

Two inputs: a synthetic 26 KB page with 41 root-relative links (the shape FACTS.md measured
Scrapy at 19 CPU ms/page on), and the pages of the test-bed site (relative, absolute, query and
fragment links, <base href>). Prints CPU ms/page (process time, best of the rounds) and the
canonicalize share, so a regression shows up at a glance. Target: under 1 ms/page.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from crawler.core.urls import canonicalize
from crawler.parse import ParseInput, parse_page

ORIGIN = "http://127.0.0.1:8080"
WORDS = ("lorem", "ipsum", "dolor", "sit", "amet", "crawler", "archive", "café", "München")


def synthetic_page(seed: int, n_links: int = 41, size: int = 26_000) -> bytes:
    """A UTF-8 page of about ``size`` bytes with ``n_links`` links spread through the text."""
    rng = random.Random(seed)
    head = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Page {seed}</title>"
        '<link rel="stylesheet" href="/style.css"><link rel="next" href="/page/next.html">'
        "</head><body><header><nav><ul>"
    )
    nav = "".join(f'<li><a href="/section/{i}/">Section {i}</a></li>' for i in range(6))
    parts = [head, nav, "</ul></nav></header><main>"]
    links = [f'<a href="/page/{rng.randrange(20_000)}.html">more</a>' for _ in range(n_links - 7)]
    length = sum(map(len, parts))
    while length < size - 200:
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(30, 80)))
        para = f"<p>{words} {links.pop() if links else ''}</p>\n"
        parts.append(para)
        length += len(para.encode())
    parts += [f"<p>{link}</p>" for link in links]
    parts.append("</main></body></html>")
    return "".join(parts).encode()


def cpu_ms_per_call(fn: Callable[[], object], calls: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.process_time()
        for _ in range(calls):
            fn()
        best = min(best, (time.process_time() - t0) / calls * 1000)
    return best


def bench_inputs(name: str, inputs: list[ParseInput], rounds: int) -> None:
    results = [parse_page(i) for i in inputs]
    assert all(r.error is None for r in results), [r.error for r in results if r.error]
    state = {"i": 0}

    def one() -> None:
        parse_page(inputs[state["i"] % len(inputs)])
        state["i"] += 1

    ms = cpu_ms_per_call(one, max(len(inputs), 500), rounds)
    kb = sum(len(i.body) for i in inputs) / len(inputs) / 1000
    links = sum(r.n_links for r in results) / len(results)
    unique = sum(len(r.links) for r in results) / len(results)
    print(
        f"{name:<26} {len(inputs):>5} pages  {kb:6.1f} KB  {links:5.1f} links "
        f"({unique:4.1f} unique)  {ms:6.3f} CPU ms/page"
    )


def bench_canonicalize(rounds: int) -> None:
    fast = [f"{ORIGIN}/page/{i}.html" for i in range(1000)]
    slow = [f"HTTP://Example.COM:80/a/../p{i}?b=2&a=1#frag" for i in range(1000)]
    for name, urls in (("fast path", fast), ("w3lib path", slow)):
        it = iter(urls * (rounds + 1))

        def one(it: Iterator[str] = it) -> None:
            canonicalize(next(it))

        us = cpu_ms_per_call(one, len(urls), rounds) * 1000
        print(f"canonicalize {name:<13} {us:6.2f} CPU us/URL")


def site_inputs(pages: int) -> list[ParseInput]:
    from testbed.site import generate_site  # the test bed is optional for this script

    out = []
    with tempfile.TemporaryDirectory(prefix="bench-parse-") as tmp:
        generate_site(Path(tmp), pages=pages, seed=1, origin=ORIGIN)
        docroot = Path(tmp) / "www"
        for path in sorted(docroot.rglob("*.html")):
            url = f"{ORIGIN}/{path.relative_to(docroot).as_posix()}"
            out.append(ParseInput(url, 200, "text/html", None, path.read_bytes(), 20 << 20))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--pages", type=int, default=200, help="test-bed site size")
    args = ap.parse_args()
    synthetic = [
        ParseInput(f"{ORIGIN}/page/{s}.html", 200, "text/html", None, synthetic_page(s), 20 << 20)
        for s in range(50)
    ]
    bench_inputs("synthetic 26 KB / 41 links", synthetic, args.rounds)
    try:
        site = site_inputs(args.pages)
    except ImportError as exc:
        print(f"test-bed site skipped: {exc}")
    else:
        bench_inputs("test-bed site", site, args.rounds)
    bench_canonicalize(args.rounds)


if __name__ == "__main__":
    main()
