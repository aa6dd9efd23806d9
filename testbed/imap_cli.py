"""``testbed imap``: start Dovecot, load a generated corpus, print how to connect, wait."""

from __future__ import annotations

import os
import signal
import tempfile
import time
from pathlib import Path
from types import FrameType

import click

from foundation.errors import TestbedError
from testbed.corpus import generate_corpus, write_truth
from testbed.dovecot import start_dovecot
from testbed.imap_load import load_corpus

__all__ = ["cli"]


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@click.command(name="imap")
@click.option("--messages", type=click.IntRange(min=0), default=200, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option(
    "--dir",
    "workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Work directory (config, Maildirs, truth.jsonl); default: a new one in /tmp, kept.",
)
@click.option("--user", default="alice", show_default=True)
@click.option(
    "--password-env",
    default="TESTBED_IMAP_PASSWORD",
    show_default=True,
    help="Environment variable holding the user's password (not an option: `ps` would show"
    " it); unset: the throw-away password 'secret'.",
)
@click.option("--max-bytes", type=click.IntRange(min=1), default=None, help="Cap total size.")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Plain IMAP port.")
@click.option("--tls-port", type=click.IntRange(1, 65535), default=None, help="IMAPS port.")
@click.option(
    "--duration",
    type=click.FloatRange(min=0),
    default=None,
    help="Stop after SECONDS (default: run until Ctrl-C).",
)
def cli(
    messages: int,
    seed: int,
    workdir: Path | None,
    user: str,
    password_env: str,
    max_bytes: int | None,
    port: int | None,
    tls_port: int | None,
    duration: float | None,
) -> None:
    """Run Dovecot on 127.0.0.1 with a deterministic mail corpus and its ground truth."""
    password = os.environ.get(password_env) or "secret"
    workdir = workdir or Path(tempfile.mkdtemp(prefix="fetchlab-imap-"))
    try:
        corpus = generate_corpus(messages=messages, seed=seed, max_bytes=max_bytes)
        server = start_dovecot(workdir, users={user: password}, port=port, tls_port=tls_port)
    except (TestbedError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        started = time.perf_counter()
        truth = load_corpus(server, user, corpus)
        took = time.perf_counter() - started
        truth_path = workdir / "truth.jsonl"
        write_truth(truth_path, truth)
        size = corpus.total_bytes
        click.echo(
            f"loaded {len(truth)} messages ({size / 1e6:.1f} MB) in {took:.1f} s "
            f"({len(truth) / max(took, 1e-9):.0f} msgs/s, {size / 1e6 / max(took, 1e-9):.1f} MB/s)"
        )
        click.echo(f"host       {server.host}")
        click.echo(f"port       {server.port}  (plain IMAP, STARTTLS)")
        click.echo(f"tls_port   {server.tls_port}  (implicit TLS)")
        click.echo(f"user       {user}")
        shown = f"from ${password_env}" if os.environ.get(password_env) else password
        click.echo(f"password   {shown}")
        click.echo(f"ca_file    {server.ca_cert}")
        click.echo(f"truth      {truth_path}")
        click.echo(f"maildir    {server.maildir(user)}")
        click.echo("running; Ctrl-C stops" if duration is None else f"running for {duration} s")
        deadline = None if duration is None else time.monotonic() + duration
        while deadline is None or time.monotonic() < deadline:
            if not server.alive():
                raise click.ClickException(f"dovecot stopped:\n{server.log_tail()}")
            time.sleep(0.2 if deadline is None else min(0.2, max(0.0, deadline - time.monotonic())))
    except KeyboardInterrupt:
        click.echo("stopping")
    except TestbedError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.stop()
