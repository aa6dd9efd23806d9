"""``crawler index``, ``crawler wacz`` and ``crawler replay``: what a finished crawl folder is
turned into for other web-archive tools (pywb, ReplayWeb.page, py-wacz, browsertrix).

``fetchlab.crawl_cli`` adds these commands to its group (they share its exit codes: 0 done,
2 usage or storage error, 130 stopped by Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click

from crawler.cdxj import build_index
from crawler.wacz import default_wacz_path, write_wacz
from crawler.warc import warc_files
from fetchlab.version import installed_version
from foundation.errors import FetchlabError

__all__ = ["index_cmd", "make_wacz", "replay_cmd", "software_name", "wacz_cmd"]

EXIT_OK, EXIT_USAGE = 0, 2
_FOLDER = click.Path(path_type=Path, exists=True, file_okay=False)


def software_name() -> str:
    """What datapackage.json names as the WACZ's writer."""
    found = installed_version()
    return "fetchlab-crawler" if found is None else f"fetchlab-crawler {found}"


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_USAGE)


def _need_warcs(out: Path) -> list[Path]:
    warcs = warc_files(out)
    if not warcs:
        _fail(f"{out} holds no crawl WARC files (warc/fetchlab-*.warc.gz)")
    return warcs


@click.command("index", short_help="Rebuild OUT/index.cdxj from the WARC files.")
@click.argument("out", type=_FOLDER)
def index_cmd(out: Path) -> None:
    """Rebuild OUT/index.cdxj by reading every WARC file of OUT again (cdxj-indexer).

    The crawl writes the index itself; this repairs or upgrades it (e.g. an archive whose index
    still names files as warc/...). Run it when no crawl is writing to OUT.
    """
    warcs = _need_warcs(out)
    try:
        index = build_index(out, warcs, reindex=True)
    except FetchlabError as exc:
        _fail(str(exc))
    with open(index, "rb") as fh:
        lines = sum(1 for _ in fh)
    click.echo(f"{index}: {lines} entries from {len(warcs)} WARC file(s)")
    sys.exit(EXIT_OK)


def make_wacz(
    out: Path, target: Path | None, title: str | None, *, index_ready: bool = False
) -> Path:
    """Write the WACZ of the crawl folder ``out`` (its index merged first unless
    ``index_ready``: the crawl has just done it); returns its path."""
    if not index_ready:  # merges the writer's own lines: cheap, and the WACZ then has them all
        build_index(out, warc_files(out))
    path = target or default_wacz_path(out)
    report = write_wacz(out, path, title=title or out.resolve().name, software=software_name())
    click.echo(
        f"wacz: {report.path} ({report.warcs} WARC file(s), {report.pages} pages, "
        f"{report.bytes:,} bytes)"
    )
    return path


@click.command("wacz", short_help="Pack the crawl in OUT into one WACZ file.")
@click.argument("out", type=_FOLDER)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Where to write the WACZ. [default: OUT/<name of OUT>.wacz]",
)
@click.option("--title", help="The collection's title. [default: the name of OUT]")
def wacz_cmd(out: Path, output: Path | None, title: str | None) -> None:
    """Pack the crawl in OUT into one WACZ file (ReplayWeb.page, pywb, py-wacz take it).

    Holds the WARC files as they are, the CDXJ index, the HTML 200 pages (pages/pages.jsonl)
    and datapackage.json with every file's sha256. `crawler crawl --wacz` does it at the end.
    """
    _need_warcs(out)
    try:
        make_wacz(out, output, title)
    except FetchlabError as exc:
        _fail(str(exc))
    sys.exit(EXIT_OK)


@click.command("replay")
@click.argument("source", type=click.Path(path_type=Path, exists=True))
@click.option("--port", type=int, default=8080, show_default=True, help="Port to serve on.")
@click.option("--bind", default="127.0.0.1", show_default=True, help="Address to serve on.")
@click.option(
    "--collection",
    default="crawl",
    show_default=True,
    help="Collection name: pages are at http://BIND:PORT/COLLECTION/<url>.",
)
@click.option(
    "--wayback",
    help="pywb's wayback program. [default: `wayback` on PATH]",
)
def replay_cmd(source: Path, port: int, bind: str, collection: str, wayback: str | None) -> None:
    """Replay SOURCE (a crawl folder or a .wacz) in pywb until Ctrl-C.

    Needs pywb (not installed with the crawler: its pinned libraries clash with the crawler's
    extras; install it in an environment of its own). A page is then at
    http://127.0.0.1:8080/crawl/<url>, the raw archived body at /crawl/<timestamp>id_/<url>.
    """
    from fetchlab.replay import find_wayback, serve  # only this command runs programs

    try:
        code = serve(
            source, port=port, bind=bind, collection=collection, wayback=find_wayback(wayback)
        )
    except FetchlabError as exc:
        _fail(str(exc))
    sys.exit(code)
