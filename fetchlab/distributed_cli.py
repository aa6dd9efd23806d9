"""``crawler status`` and ``crawler merge``, and what ``crawler worker`` reads from the job:
the commands of a crawl job shared by workers on a Redis frontier (docs/distributed.md).

``fetchlab.crawl_cli`` adds these commands to its group and defines ``crawler worker`` itself
(it runs the crawl command's own code path).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from crawler.merge import merge_archives
from crawler.redis_conn import default_worker_name
from crawler.redis_status import JobStatus, job_status
from foundation.console import Console, new_table
from foundation.errors import FetchlabError, UsageError
from foundation.hashes import sha1

if TYPE_CHECKING:
    from rich.table import Table

__all__ = ["job_overrides", "merge_cmd", "status_cmd", "worker_name"]

EXIT_OK, EXIT_RUNNING, EXIT_USAGE = 0, 1, 2
ARGS_KEY = "cli_args"  # as fetchlab.crawl_cli saves them
# the seeding command's settings that are not the job's but its own worker's
_PER_WORKER = ("out", "worker", "frontier", "job", "mode", "concurrency", "parse_workers", "loop")


def worker_name(out: Path) -> str:
    """The default worker name: host name, folder name and a hash of its full path (stable
    across restarts of the same folder, distinct for two folders on one machine)."""
    full = str(out.resolve())
    return default_worker_name(f"{out.resolve().name}-{sha1(full.encode()).hexdigest()[:6]}")


def job_overrides(url: str, job: str) -> dict[str, Any]:
    """The seeding command's crawl flags, as ``crawler worker`` passes them on (the job's scope,
    limits and politeness; the per-worker ones left to the worker)."""
    from crawler.redis_conn import connect, job_prefix

    client = connect(url)
    try:
        raw = client.hget(job_prefix(job) + "job", ARGS_KEY)
    except Exception as exc:
        raise UsageError(f"cannot read job {job!r} from {url}: {exc}") from exc
    finally:
        client.close()
    if raw is None:
        raise UsageError(f"no job {job!r} on {url} (seed it with `crawler crawl --frontier ...`)")
    saved: dict[str, Any] = json.loads(raw)["overrides"].get("crawler", {})
    flags = {k: v for k, v in saved.items() if k not in _PER_WORKER and k != "robots"}
    flags["no_robots"] = saved.get("robots") is False
    flags["allow"] = tuple(saved.get("allow") or ())
    flags["deny"] = tuple(saved.get("deny") or ())
    return flags


def _table(status: JobStatus) -> Table:
    state = "finished" if status.finished else "running"
    table = new_table(title=f"job {status.job}: {state}", title_justify="left")
    for col in ("worker", "done", "failed", "leased", "pages/s", "last seen"):
        table.add_column(col, justify="left" if col == "worker" else "right")
    for w in status.workers:
        rate = "-" if w.pages_per_s is None else f"{w.pages_per_s:,.1f}"
        seen = "-" if w.seen_ago is None else f"{w.seen_ago:,.1f} s ago"
        table.add_row(w.name, f"{w.done:,}", f"{w.failed:,}", f"{w.leased:,}", rate, seen)
    rate = "-" if status.pages_per_s is None else f"{status.pages_per_s:,.1f}"
    table.add_row(
        "[bold]job[/]", f"{status.done:,}", f"{status.failed:,}", f"{status.leased:,}", rate, ""
    )
    return table


@click.command("status")
@click.option("--frontier", required=True, help="The job's Redis: redis://HOST:PORT/DB.")
@click.option("--job", required=True, help="The job's name.")
@click.option(
    "--interval",
    type=float,
    default=1.0,
    show_default=True,
    help="Seconds between the two reads the pages/s rates come from (0: no rates).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the status as one JSON object.")
def status_cmd(frontier: str, job: str, interval: float, as_json: bool) -> None:
    """Queued, leased, done and failed URLs of a shared job, per worker, with pages/s.

    Exits 0 when the job is finished (nothing queued, leased or waiting for a retry), 1 while it
    runs, 2 when there is no such job or Redis cannot be read.
    """
    try:
        status = job_status(frontier, job, interval=interval)
    except FetchlabError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    if not status.exists:
        click.echo(f"error: no job {job!r} on {frontier}", err=True)
        sys.exit(EXIT_USAGE)
    if as_json:
        print(json.dumps(status.to_json(), indent=2))
    else:
        console = Console(file=sys.stdout)
        console.print(_table(status))
        console.print(
            f"queued {status.queued:,} (waiting for a retry: {status.retry_waiting:,}), "
            f"leased {status.leased:,}, done {status.done:,}, failed {status.failed:,}, "
            f"URLs seen {status.seen:,}",
            highlight=False,
        )
        if status.finished:
            console.print(f"job {job} is finished", highlight=False)
    sys.exit(EXIT_OK if status.finished else EXIT_RUNNING)


@click.command("merge")
@click.argument("out", type=click.Path(path_type=Path))
@click.argument(
    "folders",
    nargs=-1,
    required=True,
    type=click.Path(path_type=Path, exists=True, file_okay=False),
)
def merge_cmd(out: Path, folders: tuple[Path, ...]) -> None:
    """Merge the worker folders FOLDERS of a shared job into the new folder OUT: one warc/, one
    pages.jsonl and one index.cdxj, for `crawler wacz`, `crawler replay` and `crawler stats`.

    WARC files are hard-linked when OUT is on the same file system, else copied.
    """
    try:
        report = merge_archives(out, list(folders))
    except FetchlabError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    click.echo(
        f"merged {len(folders)} folder(s) into {out}: {report.warcs} WARC file(s) "
        f"({report.linked} hard-linked), {report.pages} pages"
        + (f", {report.duplicates} duplicate page line(s) left out" if report.duplicates else "")
    )
    sys.exit(EXIT_OK)
