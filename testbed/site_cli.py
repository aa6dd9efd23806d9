"""``testbed site``: generate the test-bed web site, serve it, print its URLs and truth file."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from types import FrameType

import click

from foundation.errors import TestbedError
from testbed._proc import LOOPBACK, free_port
from testbed.site import Prefer, SiteInfo, generate_site, serve_generated_site, site_dir

__all__ = ["cli"]


def _describe(info: SiteInfo) -> None:
    click.echo(f"site:     {info.pages} pages, seed {info.seed}, in {info.docroot}")
    click.echo(
        f"truth:    {info.truth_path} ({len(info.truth_obey_robots)} URLs obeying robots.txt, "
        f"{len(info.truth_ignore_robots)} ignoring it)"
    )


@click.command(name="site")
@click.option("--pages", type=click.IntRange(min=20), default=200, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("testbed-site"),
    show_default=True,
    help="Work directory: the generated site (cached) and the server's config and logs.",
)
@click.option(
    "--latency",
    "latencies",
    type=click.IntRange(min=1),
    multiple=True,
    help="Also serve on a port that delays every response by this many ms (repeatable).",
)
@click.option(
    "--server",
    type=click.Choice(["nginx", "aiohttp", "auto"]),
    default="auto",
    show_default=True,
    help="auto: nginx when installed, else the (slower) aiohttp fallback.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    help="Plain port; 0 picks a free one. Keep it fixed to reuse the generated site next time.",
)
@click.option("--generate-only", is_flag=True, help="Generate the site and its truth, then exit.")
@click.option("--duration", type=float, default=None, help="Stop after this many seconds.")
def cli(
    pages: int,
    seed: int,
    directory: Path,
    latencies: tuple[int, ...],
    server: str,
    port: int,
    generate_only: bool,
    duration: float | None,
) -> None:
    """Generate the test-bed site and serve it on 127.0.0.1 until Ctrl-C (or --duration)."""
    prefer: Prefer = server  # type: ignore[assignment]  # click.Choice checked it
    try:
        if generate_only:
            origin = f"http://{LOOPBACK}:{port or free_port()}"
            _describe(
                generate_site(
                    site_dir(directory, pages, seed), pages=pages, seed=seed, origin=origin
                )
            )
            click.echo(
                f"origin:   {origin}/ (serve it on that port: --port {origin.rsplit(':', 1)[1]})"
            )
            return
        info, running = serve_generated_site(
            directory, pages, seed, latencies, prefer, port=port or None
        )
    except TestbedError as exc:
        raise click.ClickException(str(exc)) from exc
    stopping = False

    def _on_term(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = signal.signal(signal.SIGTERM, _on_term)
    try:
        _describe(info)
        click.echo(f"server:   {running.kind} (pids {' '.join(map(str, running.pids()))})")
        if running.note:
            click.echo(f"warning:  {running.note}", err=True)
        click.echo(f"base:     {running.base_url}/")
        for ms in sorted(running.latency_ports):
            click.echo(f"latency:  {ms} ms {running.latency_url(ms)}/")
        click.echo("Ctrl-C to stop" if duration is None else f"stopping in {duration:g} s")
        deadline = None if duration is None else time.monotonic() + duration
        while not stopping and (deadline is None or time.monotonic() < deadline):
            if not running.alive():
                raise click.ClickException(f"the {running.kind} server stopped on its own")
            time.sleep(0.1)
    except KeyboardInterrupt:
        pass
    finally:
        running.stop()
        signal.signal(signal.SIGTERM, previous)
    click.echo("stopped")
