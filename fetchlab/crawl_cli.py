"""``crawler`` command line: thin: arguments -> frozen settings -> the asyncio engine.

Exit codes (README.md, the same for both tools): 0 all done, 1 done with failures (counting the
whole archive, resumed or not) or stopped by a dead ``--mode processes`` worker, 2 usage, settings
or lock error (a run that fails before any work leaves nothing behind), 130 interrupted by Ctrl-C
or SIGTERM (state saved: rerun the same command, or ``crawler crawl --resume DIR``).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import click

from crawler.cdxj import build_index
from crawler.core.frontier import Frontier, MemoryFrontier
from crawler.core.urls import BadLine, Scope, UrlLine, read_url_lines
from crawler.frontier_sqlite import SqliteFrontier
from crawler.settings import CrawlerSettings
from crawler.stats import CrawlStats, is_archive, summarize_archive
from crawler.warc import warc_files
from drivers.crawl_run import EngineResult, seed_frontier, storage_check
from drivers.dispatch import check_crawl_mode
from drivers.dispatch import run_crawl as run_in_mode
from fetchlab.archive_cli import index_cmd, make_wacz, replay_cmd, wacz_cmd
from fetchlab.distributed_cli import job_overrides, merge_cmd, status_cmd, worker_name
from fetchlab.settings import load_settings
from fetchlab.version import version_flag
from foundation.console import Console
from foundation.errors import (
    FetchlabError,
    ModeError,
    SettingsError,
    StorageError,
    UsageError,
    WorkerDiedError,
)
from foundation.frozen import field_defaults
from foundation.lifeline import exit_now, stop_signals_as_interrupt
from foundation.mode import Mode
from foundation.progress import ProgressReporter

__all__ = ["cli", "main", "run_crawl"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
STATE_DB = "state.sqlite"
ARGS_KEY = "cli_args"
SEEDS_KEY = "scope_seeds"


def _printable(text: str) -> str:
    """``text`` with control and other non-printable characters escaped (``\\x1b``): a bad
    line of a URL file must not drive the terminal."""
    if text.isprintable():
        return text
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text
    )


def _err(console: Console, message: str) -> None:
    console.print("[bold red]error:[/] ", end="", highlight=False)
    console.print(_printable(message), highlight=False, markup=False)


def _default(key: str) -> str:
    """The model's default of ``key``, as ``--help`` prints it (never written by hand)."""
    value = field_defaults(CrawlerSettings)[key]
    if value is None:
        return "unlimited"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ", ".join(value) if value else "none"
    if isinstance(value, Mode):
        return value.value
    return str(value)


def _help(text: str, key: str) -> str:
    return f"{text} [default: {_default(key)}]"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@version_flag("crawler")
def cli() -> None:
    """Crawl URL lists or whole sites into WARC, resumably."""


@cli.command("crawl")
@click.argument("urls", nargs=-1)
@click.option(
    "-i", "--input", "inputs", multiple=True, help="File of URLs, one per line ('-': stdin)."
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help=_help("Output folder (rerun = resume); also `out` in the settings file.", "out"),
)
@click.option("--resume", type=click.Path(path_type=Path), help="Resume the crawl in this folder.")
@click.option(
    "--settings",
    "settings_path",
    type=click.Path(path_type=Path),
    help="TOML settings file (or $FETCHLAB_SETTINGS).",
)
@click.option(
    "--follow/--no-follow", default=None, help=_help("Follow links within the scope.", "follow")
)
@click.option(
    "--scope", type=click.Choice(["host", "domain", "prefix"]), help=_help("Follow scope.", "scope")
)
@click.option("--max-depth", type=int, help=_help("Link depth from the seeds.", "max_depth"))
@click.option(
    "--max-pages", type=int, help=_help("Pages in the archive, over all runs.", "max_pages")
)
@click.option(
    "--allow",
    multiple=True,
    help=_help("Regex a followed URL must match (repeatable).", "allow"),
)
@click.option(
    "--deny",
    multiple=True,
    help=_help("Regex a followed URL must not match (repeatable).", "deny"),
)
@click.option(
    "--sitemaps/--no-sitemaps",
    default=None,
    help=_help("Seed from robots.txt sitemaps.", "sitemaps"),
)
@click.option("--concurrency", type=int, help=_help("Requests in flight.", "concurrency"))
@click.option("--per-host", type=int, help=_help("Requests in flight per host.", "per_host"))
@click.option("--delay", type=float, help=_help("Seconds between requests to a host.", "delay"))
@click.option("--timeout", type=float, help=_help("Seconds per request.", "timeout"))
@click.option("--retries", type=int, help=_help("Retries on errors, 5xx, 429.", "retries"))
@click.option("--max-bytes", type=int, help=_help("Body cap in bytes.", "max_bytes"))
@click.option("--user-agent", help=_help("User-Agent, also for robots.txt.", "user_agent"))
@click.option(
    "--no-robots",
    is_flag=True,
    default=False,
    help="Ignore robots.txt (sets robots = false). " + f"[default: robots = {_default('robots')}]",
)
@click.option(
    "--frontier",
    help=_help(
        "State backend: sqlite, memory, or redis://HOST:PORT/DB to seed a job shared by "
        "workers (`crawler worker`); this command then crawls as one of them.",
        "frontier",
    ),
)
@click.option("--job", help="Job name on a redis:// frontier (required with one).")
@click.option(
    "--worker",
    help="This worker's name in the job [default: host name + the --out folder]; a restarted "
    "worker must keep its name to find its own leases.",
)
@click.option(
    "--seed-only",
    is_flag=True,
    default=False,
    help="With a redis:// frontier: queue the seeds and exit; workers do the crawl.",
)
@click.option(
    "--parse-workers",
    type=int,
    help=_help("Parser processes (0: parse inline).", "parse_workers"),
)
@click.option(
    "--mode",
    type=click.Choice([m.value for m in Mode]),
    help=_help("Concurrency design.", "mode"),
)
@click.option("--loop", type=click.Choice(["uvloop", "asyncio"]), help=_help("Event loop.", "loop"))
@click.option(
    "--wacz/--no-wacz",
    default=None,
    help=_help("When the crawl finishes, also write OUT/<name of OUT>.wacz.", "wacz"),
)
@click.option(
    "--progress/--no-progress",
    default=True,
    help="Live display on stderr / none (the summary is still printed). Either way, a host "
    "that waits (robots.txt retries) or is unreachable gets a line on stderr.",
)
def crawl_cmd(
    urls: tuple[str, ...],
    inputs: tuple[str, ...],
    out: Path | None,
    resume: Path | None,
    settings_path: Path | None,
    **flags: Any,
) -> None:
    """Fetch URLs (list mode) or crawl sites (--follow) into OUT."""
    progress = flags.pop("progress")
    seed_only = flags.pop("seed_only")
    code = run_crawl(
        urls, inputs, out, resume, settings_path, flags, progress=progress, seed_only=seed_only
    )
    if code == EXIT_INTERRUPTED:
        # the state is saved: a thread left with an abandoned request must not hold the exit
        exit_now(code)
    sys.exit(code)


def _overrides(out: Path | None, flags: dict[str, Any]) -> dict[str, Any]:
    crawler: dict[str, Any] = {k: v for k, v in flags.items() if k != "no_robots"}
    crawler["allow"] = tuple(flags["allow"]) or None
    crawler["deny"] = tuple(flags["deny"]) or None
    crawler["robots"] = False if flags.get("no_robots") else None
    crawler["out"] = str(out) if out is not None else None
    return {"crawler": crawler}


class _Inputs:
    """The URLs of the arguments, files and stdin, streamed (a list of millions stays on disk).

    Bad lines are reported as they are met and counted in ``bad``.
    """

    def __init__(self, urls: Iterable[str], inputs: Iterable[str], console: Console) -> None:
        self._urls = list(urls)
        self._inputs = list(inputs)
        self._console = console
        self.bad = 0
        for name in self._inputs:
            if name != "-" and not os.access(name, os.R_OK):
                raise UsageError(f"cannot read URL file {name}")

    def __iter__(self) -> Iterator[str]:
        yield from self._lines("argument", self._urls)
        for name in self._inputs:
            if name == "-":
                yield from self._lines("<stdin>", sys.stdin)
                continue
            try:
                fh = open(name, encoding="utf-8", errors="replace")  # noqa: SIM115
            except OSError as exc:
                raise UsageError(f"cannot read URL file {name}: {exc.strerror}") from exc
            with fh:
                yield from self._lines(name, fh)

    def _lines(self, source: str, lines: Iterable[str]) -> Iterator[str]:
        for entry in read_url_lines(lines, source):
            if isinstance(entry, UrlLine):
                yield entry.url
            else:
                assert isinstance(entry, BadLine)
                self.bad += 1
                where = f"{entry.source}:{entry.lineno}"
                self._console.print(
                    _printable(f"skipped {where}: {entry.reason}"), highlight=False, markup=False
                )


def run_crawl(
    urls: Iterable[str],
    inputs: Iterable[str],
    out: Path | None,
    resume: Path | None,
    settings_path: Path | None,
    flags: dict[str, Any],
    *,
    progress: bool = True,
    seed_only: bool = False,
    joining: bool = False,
) -> int:
    """The whole ``crawler crawl`` command (``joining``: ``crawler worker``, which adds no URL
    and keeps the job's arguments); returns the exit code."""
    console = Console(file=sys.stderr, soft_wrap=True)
    frontier: Frontier | None = None
    created: _Created | None = None
    try:
        overrides = _overrides(out if resume is None else resume, flags)
        if resume is not None:
            saved = _saved_args(resume)
            settings_path = settings_path or (
                Path(saved["settings"]) if saved["settings"] else None
            )
            merged = dict(saved["overrides"].get("crawler", {}))
            merged.update({k: v for k, v in overrides["crawler"].items() if v is not None})
            overrides = {"crawler": merged}
        settings = load_settings(settings_path, overrides, tool="crawler").crawler
        check_crawl_mode(settings)
        given = _Inputs(urls, inputs, console)
        created = _Created(settings.out)
        storage_check(settings.out)
        frontier = _open_frontier(settings)
        scope = None
        if settings.follow:
            # follow mode: the seeds define the scope (and are few); kept for --resume
            scope_seeds = _scope_seeds(frontier, list(given))
            try:
                scope = Scope(settings.scope, tuple(scope_seeds), settings.allow, settings.deny)
            except ValueError as exc:
                raise UsageError(str(exc)) from exc
            if not joining:
                _save_args(frontier, settings_path, overrides, scope_seeds)
                seed_frontier(frontier, scope_seeds)
        elif not joining:
            _save_args(frontier, settings_path, overrides, [])
            seed_frontier(frontier, given)  # streamed in chunks into the frontier
        bad = given.bad
        if frontier.counts().total == 0:
            raise UsageError("no valid URL to crawl (give URLs, -i FILE or -i -)")
        if seed_only:
            if not settings.shared:
                raise UsageError("--seed-only needs a redis:// frontier")
            counts = frontier.counts()
            console.print(f"job {settings.job}: {counts.queued} queued, {counts.total} known")
            return EXIT_OK  # the folder (made by the checks above, if new) is removed
        stats = CrawlStats()
        stats.total_hint = None if settings.follow else frontier.counts().total
        created = None  # the work starts: from here on the folder is an archive
        result = _run_engine(settings, frontier, scope, stats, progress)
        archive_failed = max(frontier.counts().failed, result.stats.failed)
    except SettingsError as exc:
        for problem in exc.problems:
            _err(console, problem)
        return EXIT_USAGE
    except WorkerDiedError as exc:  # not the user's input: the archive is fine, resume it
        _err(console, str(exc))
        return EXIT_FAILED
    except (UsageError, ModeError) as exc:
        _err(console, str(exc))
        return EXIT_USAGE
    except StorageError as exc:
        _err(console, str(exc))
        return EXIT_USAGE
    finally:
        if frontier is not None:
            frontier.close()
        if created is not None:  # failed before any work: leave nothing behind
            created.undo()
    build_index(settings.out, warc_files(settings.out))
    if settings.shared:
        # a worker's failures are the job's (crawler status); it exits 0 once the job is done
        archive_failed = 0
    code = _report(settings, result, bad, archive_failed, console)
    if (
        settings.wacz and code != EXIT_INTERRUPTED and not settings.shared
    ):  # an interrupted crawl is packed on its rerun
        try:
            make_wacz(settings.out, None, None, index_ready=True)
        except StorageError as exc:
            _err(console, str(exc))
            return EXIT_USAGE
    return code


class _Created:
    """What a run made in the output folder before its work started, to undo on failure."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.fresh = not out.exists()
        self.had_state = (out / STATE_DB).exists()

    def undo(self) -> None:
        if self.fresh:
            shutil.rmtree(self.out, ignore_errors=True)
        elif not self.had_state:
            for suffix in ("", "-wal", "-shm", "-journal"):
                (self.out / (STATE_DB + suffix)).unlink(missing_ok=True)


def _open_frontier(settings: CrawlerSettings) -> Frontier:
    if settings.shared:
        if not settings.job:
            raise UsageError("a redis:// frontier needs --job NAME")
        from crawler.frontier_redis import RedisFrontier

        return RedisFrontier(
            settings.frontier,
            settings.job,
            settings.worker or worker_name(settings.out),
            claim_idle=settings.claim_idle,
        )
    if settings.frontier == "memory":
        return MemoryFrontier()
    return SqliteFrontier(settings.out / STATE_DB)


def _scope_seeds(frontier: Frontier, seeds: list[str]) -> list[str]:
    # a shared job keeps its arguments for the whole job, not per worker
    get_meta = getattr(frontier, "get_job", None) or getattr(frontier, "get_meta", None)
    saved = get_meta(SEEDS_KEY) if get_meta is not None else None
    known = list(json.loads(saved)) if saved else []
    return known + [s for s in seeds if s not in set(known)]


def _save_args(
    frontier: Frontier, path: Path | None, overrides: dict[str, Any], seeds: list[str]
) -> None:
    set_meta = getattr(frontier, "set_job", None) or getattr(frontier, "set_meta", None)
    if set_meta is None:
        return
    args = {"settings": str(path.resolve()) if path else None, "overrides": overrides}
    set_meta(ARGS_KEY, json.dumps(args, default=list))
    set_meta(SEEDS_KEY, json.dumps(seeds))


def _saved_args(folder: Path) -> dict[str, Any]:
    db = folder / STATE_DB
    if not db.exists():
        raise UsageError(f"{folder} holds no crawl to resume ({STATE_DB} missing)")
    frontier = SqliteFrontier(db)
    try:
        raw = frontier.get_meta(ARGS_KEY)
    finally:
        frontier.close()
    if not raw:
        raise UsageError(f"{folder}: no saved arguments to resume with")
    data: dict[str, Any] = json.loads(raw)
    return data


def _run_engine(
    settings: CrawlerSettings,
    frontier: Frontier,
    scope: Scope | None,
    stats: CrawlStats,
    progress: bool,
) -> EngineResult:
    # the mode driver (asyncio engine, threads, gevent, processes, sequential) from the settings
    # SIGTERM (kill, a service manager) stops the crawl the way Ctrl-C does: state saved, 130
    with (
        stop_signals_as_interrupt(),
        ProgressReporter(
            "crawl", stats.snapshot, enabled=progress, stream=sys.stderr, notices=stats.notices
        ),
    ):
        return run_in_mode(settings, frontier, scope, stats)


def _report(
    settings: CrawlerSettings,
    result: EngineResult,
    bad: int,
    archive_failed: int,
    console: Console,
) -> int:
    """Print the summary; the exit code counts the failures of the whole archive (a resumed
    finished crawl with failed URLs exits 1, as its first run did)."""
    stats = result.stats
    out_console = Console(file=sys.stdout)
    out_console.print(stats.summary())
    if bad:
        console.print(f"{bad} invalid URL line(s) skipped", highlight=False)
    if stats.failed_urls:
        console.print("failed URLs (all are in pages.jsonl):", highlight=False)
        for url, why in stats.failed_urls[:20]:
            console.print(
                _printable(f"  {url}  {why}"), highlight=False, soft_wrap=True, markup=False
            )
        if len(stats.failed_urls) > 20:
            console.print(f"  ... and {len(stats.failed_urls) - 20} more", highlight=False)
    if stats.unreachable:
        console.print("unreachable hosts (their URLs failed at once):", highlight=False)
        for host, why in list(stats.unreachable.items())[:10]:
            console.print(_printable(f"  {host}  {why}"), highlight=False, markup=False)
        if len(stats.unreachable) > 10:
            console.print(f"  ... and {len(stats.unreachable) - 10} more", highlight=False)
    if result.interrupted:
        console.print(
            f"interrupted: state saved. Resume with: crawler crawl --resume {settings.out}",
            highlight=False,
            soft_wrap=True,
        )
        return EXIT_INTERRUPTED
    earlier = archive_failed - stats.failed
    if earlier > 0:
        console.print(
            f"{earlier} URL(s) failed in earlier runs (crawler stats {settings.out} lists them)",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    return EXIT_FAILED if archive_failed else EXIT_OK


@cli.command("stats")
@click.argument("folder", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
def stats_cmd(folder: Path, as_json: bool) -> None:
    """Print the summary of the archive in FOLDER."""
    if not is_archive(folder, warc_files(folder)):
        _err(
            Console(file=sys.stderr, soft_wrap=True),
            f"{folder} is not a crawl archive (no pages.jsonl, {STATE_DB} or warc/ files)",
        )
        sys.exit(EXIT_USAGE)
    summary = summarize_archive(folder, warc_files(folder))
    if as_json:
        print(json.dumps(summary.to_json(), indent=2))
    else:
        Console(file=sys.stdout).print(summary.table(f"archive {folder}"))
    sys.exit(EXIT_OK)


@cli.command("worker")
@click.option("--frontier", required=True, help="The job's Redis: redis://HOST:PORT/DB.")
@click.option("--job", required=True, help="The job's name (as given to `crawler crawl`).")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="This worker's own folder: its WARC series and pages.jsonl (rerun = resume).",
)
@click.option(
    "--worker",
    help="This worker's name [default: host name + the --out folder]; keep it on a restart.",
)
@click.option("--mode", type=click.Choice(["asyncio", "processes"]), help="Concurrency design.")
@click.option("--concurrency", type=int, help="Requests in flight in this worker.")
@click.option("--parse-workers", type=int, help="Parser processes (0: parse inline).")
@click.option(
    "--claim-idle",
    type=float,
    help="Seconds a dead worker's leased URLs wait before this one takes them over [default: 60].",
)
@click.option("--progress/--no-progress", default=True, help="Live display on stderr / none.")
def worker_cmd(frontier: str, job: str, out: Path, progress: bool, **flags: Any) -> None:
    """Join the crawl job JOB on a Redis frontier and work until the job is done.

    Exits 0 when nothing is queued, leased or waiting for a retry anywhere in the job; 130 on
    Ctrl-C / SIGTERM (its leases go back to the queue; rerun it to rejoin). The job's own
    arguments (scope, limits, per-host politeness) are the seeding command's.
    """
    try:
        merged = job_overrides(frontier, job)
    except FetchlabError as exc:
        _err(Console(file=sys.stderr, soft_wrap=True), str(exc))
        sys.exit(EXIT_USAGE)
    merged.update({k: v for k, v in flags.items() if v is not None})
    merged.update({"frontier": frontier, "job": job})
    code = run_crawl((), (), out, None, None, merged, progress=progress, joining=True)
    if code == EXIT_INTERRUPTED:
        exit_now(code)
    sys.exit(code)


cli.add_command(status_cmd)
cli.add_command(merge_cmd)
cli.add_command(index_cmd)
cli.add_command(wacz_cmd)
cli.add_command(replay_cmd)


def main() -> None:
    try:
        cli(standalone_mode=False)
    except (click.exceptions.Abort, KeyboardInterrupt):
        sys.exit(EXIT_INTERRUPTED)
    except click.exceptions.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USAGE)
    except FetchlabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


if __name__ == "__main__":
    main()
