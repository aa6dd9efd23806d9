"""The link graph of the generated site, its files, and the ground truth computed from the graph.

Private to :mod:`testbed.site` (which owns caching and the public face).
"""

from __future__ import annotations

import posixpath
import random
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from w3lib.url import canonicalize_url

from testbed._site_content import (
    Link,
    PageSpec,
    make_sentences,
    pdf_bytes,
    png_bytes,
    render_page,
    text_bytes,
)

__all__ = ["DOCROOT_NAME", "PRIVATE_PREFIX", "TRUTH_NAME", "SiteBuilder", "SiteInfo"]

PRIVATE_PREFIX = "/private/"
HIDDEN_PREFIX = "/archive/"
SECTIONS = ("news", "docs", "blog", "shop", "wiki", "forum")
SUBDIRS = ("a", "b", "c", "d")
QUERY_KEYS = ("page", "sort", "lang", "view", "ref", "id")
TRUTH_NAME = "truth.json"
DOCROOT_NAME = "www"


@dataclass(frozen=True)
class SiteInfo:
    """A generated site: where it is, for which origin, and what a correct crawl must fetch."""

    root: Path
    origin: str
    pages: int
    seed: int
    truth_obey_robots: frozenset[str]
    truth_ignore_robots: frozenset[str]
    page_paths: tuple[str, ...]  # URL paths of the HTML pages, "/" for the home page
    file_paths: tuple[str, ...]  # non-HTML files (.pdf, .png, .txt) that exist
    broken_paths: tuple[str, ...]  # linked paths that do not exist (404)
    html_bytes: int  # total size of the HTML pages
    link_count: int  # total number of <a href> in the HTML pages

    @property
    def start_url(self) -> str:
        return self.origin + "/"

    @property
    def docroot(self) -> Path:
        """The directory the web server serves."""
        return self.root / DOCROOT_NAME

    @property
    def truth_path(self) -> Path:
        return self.root / TRUTH_NAME


@dataclass(frozen=True)
class _Page:
    index: int
    path: str  # URL path
    kind: str  # "home" | "public" | "private" | "hidden"
    section: str
    query: tuple[tuple[str, str], ...]  # the one query-argument set this page is linked with


class SiteBuilder:
    """Draws the link graph, renders the files, and computes the truth from the graph."""

    def __init__(self, rng: random.Random, pages: int, seed: int, origin: str) -> None:
        self.rng = rng
        self.pages = pages
        self.seed = seed
        self.origin = origin
        self.netloc = urlsplit(origin).netloc
        self.sentences = make_sentences(rng)
        self._resolved: dict[tuple[str, str], str | None] = {}
        self._canonical: dict[str, str] = {}
        n_private = max(2, pages * 4 // 100)
        n_hidden = max(2, pages * 3 // 100)
        n_public = pages - 1 - n_private - n_hidden
        kinds = ["home"] + ["public"] * n_public + ["private"] * n_private + ["hidden"] * n_hidden
        self.all: list[_Page] = [self._page(i, kind) for i, kind in enumerate(kinds)]
        self.public = [p for p in self.all if p.kind == "public"]
        self.private = [p for p in self.all if p.kind == "private"]
        self.hidden = [p for p in self.all if p.kind == "hidden"]
        self.heads: dict[str, _Page] = {}
        for page in self.public:
            self.heads.setdefault(page.section, page)
        n_files = max(6, pages // 40)
        names = ("/files/report-{}.pdf", "/img/photo-{}.png", "/files/notes-{}.txt")
        self.files = [names[k % 3].format(k) for k in range(n_files)]
        self.broken = [
            f"/{SECTIONS[k % len(SECTIONS)]}/{SUBDIRS[k % len(SUBDIRS)]}/p{pages + 1000 + k}.html"
            if k % 3 else f"/files/missing-{k}.pdf"
            for k in range(max(3, pages // 50))
        ]  # fmt: skip

    def _page(self, index: int, kind: str) -> _Page:
        rng = self.rng
        query: tuple[tuple[str, str], ...] = ()
        if kind != "home" and rng.random() < 0.15:
            keys = sorted(rng.sample(QUERY_KEYS, rng.randint(2, 3)))
            query = tuple((key, str(rng.randint(1, 9))) for key in keys)
        if kind == "home":
            return _Page(index, "/", kind, "home", ())
        if kind == "private":
            return _Page(
                index, f"/private/{rng.choice(SUBDIRS)}/p{index}.html", kind, "private", query
            )
        if kind == "hidden":
            return _Page(index, f"{HIDDEN_PREFIX}p{index}.html", kind, "archive", query)
        section = rng.choice(SECTIONS)
        path = f"/{section}/{rng.choice(SUBDIRS)}/p{index}.html"
        return _Page(index, path, kind, section, query)

    # -- links ---------------------------------------------------------------------------------

    def _href(self, target: str, base_dir: str, query: tuple[tuple[str, str], ...] = ()) -> str:
        """One of the many spellings of a link to ``target`` (a URL path)."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.40:
            href = posixpath.relpath(target, base_dir)
            if "/" not in href and rng.random() < 0.2:
                href = "./" + href
        elif roll < 0.70:
            href = target
        else:
            href = self.origin + target
        if query and rng.random() < 0.6:
            args = list(query)
            rng.shuffle(args)
            href += "?" + "&".join(f"{key}={value}" for key, value in args)
        if rng.random() < 0.12:
            href += rng.choice(("#top", "#sec-1", "#sec-2", "#sec-3"))
        return href

    def _links(self, page: _Page, base_dir: str, wanted: int) -> list[Link]:
        rng = self.rng
        links: list[Link] = []
        structural: list[_Page] = []
        position = page.index
        if page.kind == "home":
            structural += [self.public[0], self.private[0]]
        elif page.kind == "public":
            nxt = position + 1
            if nxt < len(self.all) and self.all[nxt].kind == "public":
                structural.append(self.all[nxt])
            if position % 37 == 0:
                structural.append(rng.choice(self.private))
        else:
            group = self.private if page.kind == "private" else self.hidden
            at = group.index(page)
            if at + 1 < len(group):
                structural.append(group[at + 1])
            if page.kind == "private":
                structural.append(self.hidden[at % len(self.hidden)])
        for target in structural:
            links.append(Link(self._href(target.path, base_dir, target.query), "Next"))
        # public pages never link to /archive/: those stay reachable only through /private/
        pool = self.public if page.kind != "hidden" else self.public + self.hidden
        while len(links) < wanted:
            roll = rng.random()
            if roll < 0.04:
                links.append(Link(self._href(rng.choice(self.files), base_dir), "Download"))
            elif roll < 0.045:
                links.append(Link(self._href(rng.choice(self.broken), base_dir), "Old page"))
            elif roll < 0.09:
                host = f"ext-{rng.randint(1, 40)}.example.invalid"
                links.append(Link(f"http://{host}/article/{rng.randint(1, 500)}.html", "Elsewhere"))
            elif roll < 0.10 and base_dir == posixpath.dirname(page.path) + "/":
                links.append(Link(rng.choice(("#top", "#sec-2")), "Back to top"))
            elif roll < 0.11 and page.kind != "public":
                target = rng.choice(self.private)
                links.append(Link(self._href(target.path, base_dir, target.query), "Members"))
            else:
                target = rng.choice(pool)
                text = rng.choice(self.sentences)[:40].rstrip(" .!?")
                links.append(Link(self._href(target.path, base_dir, target.query), text))
        rng.shuffle(links)
        return links

    # -- rendering -----------------------------------------------------------------------------

    def write(self, root: Path, staging: Path) -> SiteInfo:
        rng = self.rng
        nav = [Link("/", "Home")] + [
            Link(head.path, section.capitalize()) for section, head in sorted(self.heads.items())
        ]
        footer = [
            Link("mailto:webmaster@example.invalid", "Contact"),
            Link("https://ext-0.example.invalid/privacy", "Privacy"),
            Link(self.origin + "/", "Fetchlab test site"),
        ]
        outlinks: dict[str, frozenset[str]] = {}
        html_bytes = link_count = 0
        for page in self.all:
            page_dir = posixpath.dirname(page.path).rstrip("/") + "/"
            base_href: str | None = None
            base_dir = page_dir
            if page.kind != "home" and rng.random() < 0.03:
                base_dir = f"/{rng.choice(SECTIONS)}/{rng.choice(SUBDIRS)}/"
                base_href = self.origin + base_dir
            total = min(60, max(20, round(rng.gauss(41, 9))))
            body = self._links(page, base_dir, total - len(nav) - len(footer))
            spec = PageSpec(
                title=f"{page.section.capitalize()} {page.index}: "
                + rng.choice(self.sentences)[:50].rstrip(" .!?"),
                section=page.section,
                base_href=base_href,
                nav=tuple(nav),
                body_links=tuple(body),
                footer=tuple(footer),
                target_bytes=min(37_000, max(11_000, round(rng.gauss(25_500, 6_000)))),
            )
            data = render_page(spec, rng, self.sentences)
            file_path = "/index.html" if page.path == "/" else page.path
            _write(staging, file_path, data)
            html_bytes += len(data)
            hrefs = [link.href for link in (*spec.nav, *spec.body_links, *spec.footer)]
            link_count += len(hrefs)
            outlinks[page.path] = self._resolve(base_href or self.origin + page.path, hrefs)
        for k, path in enumerate(self.files):
            title = f"Attachment {k} of the fetchlab test site"
            if path.endswith(".pdf"):
                data = pdf_bytes(rng, self.sentences, title)
            elif path.endswith(".png"):
                data = png_bytes(rng)
            else:
                data = text_bytes(rng, self.sentences, title)
            _write(staging, path, data)
        public = [self.all[0], *self.public]
        _write(staging, "/robots.txt", self._robots())
        _write(staging, "/sitemap.xml", self._sitemap(p.path for p in public))
        start = canonicalize_url(self.origin + "/")
        return SiteInfo(
            root=root,
            origin=self.origin,
            pages=self.pages,
            seed=self.seed,
            truth_obey_robots=_crawl(start, outlinks, obey_robots=True),
            truth_ignore_robots=_crawl(start, outlinks, obey_robots=False),
            page_paths=tuple(p.path for p in self.all),
            file_paths=tuple(self.files),
            broken_paths=tuple(self.broken),
            html_bytes=html_bytes,
            link_count=link_count,
        )

    def _resolve(self, base: str, hrefs: Iterable[str]) -> frozenset[str]:
        """Canonical in-scope targets of ``hrefs``; a fragment-only href is the page itself."""
        # no generated href is query-only, so a target depends on the base's directory alone:
        # caching on (directory, href) makes the shared nav/footer links and repeats free
        base_dir = base[: base.rindex("/") + 1]
        out = set()
        for href in hrefs:
            if href.startswith("#"):
                continue  # the page's own URL, whatever query it was fetched with: already seen
            key = (base_dir, href)
            if key in self._resolved:
                target = self._resolved[key]
            else:
                url = urljoin(base_dir, href).partition("#")[0]
                parts = urlsplit(url)
                target = None
                if parts.scheme in ("http", "https") and parts.netloc == self.netloc:
                    target = self._canonical.get(url)
                    if target is None:
                        target = self._canonical[url] = canonicalize_url(url)
                self._resolved[key] = target
            if target is not None:
                out.add(target)
        return frozenset(out)

    def _robots(self) -> bytes:
        return (
            f"# fetchlab test site: {self.pages} pages, seed {self.seed}\n"
            "User-agent: *\n"
            f"Disallow: {PRIVATE_PREFIX}\n"
            "\n"
            f"Sitemap: {self.origin}/sitemap.xml\n"
        ).encode("ascii")

    def _sitemap(self, paths: Iterable[str]) -> bytes:
        lines = [
            '<?xml version="1.0" encoding="UTF-8"?>',
            '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">',
        ]
        lines += [f"<url><loc>{self.origin}{path}</loc></url>" for path in paths]
        lines.append("</urlset>")
        return ("\n".join(lines) + "\n").encode("utf-8")


def _write(staging: Path, url_path: str, data: bytes) -> None:
    target = staging / url_path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def _crawl(start: str, outlinks: dict[str, frozenset[str]], *, obey_robots: bool) -> frozenset[str]:
    """Breadth-first walk of the link graph: every URL a correct crawler fetches.

    A URL's outlinks are those of the HTML file at its path (its query does not change the page,
    and no generated link is query-only); non-HTML files and 404s have none.
    """
    seen = {start}
    queue = deque([start])
    while queue:
        url = queue.popleft()
        for target in outlinks.get(urlsplit(url).path, ()):
            if target in seen:
                continue
            if obey_robots and urlsplit(target).path.startswith(PRIVATE_PREFIX):
                continue
            seen.add(target)
            queue.append(target)
    return frozenset(seen)
