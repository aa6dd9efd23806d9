"""A tiny OAuth2 token introspection server (RFC 7662) for the test-bed Dovecot's oauth2 passdb.

``start_introspection_server({"tok-1": Token("alice")})`` runs it as a child process on a free
loopback port (its own CPU, stopped by PID); ``start_dovecot(...,
oauth2_introspection_url=server.url)`` makes Dovecot check every XOAUTH2 / OAUTHBEARER token here.

The token table is fixed at start (a JSON file in the work directory, never on the command line,
so no token shows up in ``ps``). ``POST /introspect`` with the form field ``token`` (Dovecot's
``introspection_mode = post``; a ``?token=`` query and an ``Authorization: Bearer`` header are read
too) answers ``{"active": true, "username": ...}`` for an active token and ``{"active": false}``
for an inactive or unknown one, as RFC 7662 section 2.2 says. ``GET /stats`` counts the answers
(never the tokens), so a test can prove that Dovecot really asked.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import click
from aiohttp import web

from foundation.errors import TestbedError, UsageError
from testbed._child import ChildServer, serve_until_stopped, start_child
from testbed._proc import LOOPBACK, ManagedProcess

__all__ = ["IntrospectionServer", "Token", "cli", "make_app", "start_introspection_server"]

_STATS: web.AppKey[dict[str, int]] = web.AppKey("stats", dict)


@dataclass(frozen=True)
class Token:
    """Who a bearer token belongs to, and whether it is still valid."""

    user: str
    active: bool = True


@dataclass(frozen=True)
class IntrospectionServer(ChildServer):
    """A running introspection server; ``url`` is what Dovecot's ``introspection_url`` gets."""

    port: int
    process: ManagedProcess = field(repr=False)
    tokens: Mapping[str, Token] = field(repr=False)
    tmpdir: Path | None = None
    host: str = LOOPBACK

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/introspect"

    def stats(self) -> dict[str, int]:
        """``{"requests": N, "active": A, "inactive": I, "unknown": U}`` since the start."""
        with urllib.request.urlopen(f"http://{self.host}:{self.port}/stats", timeout=10) as resp:
            data = json.loads(resp.read())
        return {str(k): int(v) for k, v in data.items()}

    def alive(self) -> bool:
        return self.process.alive()


def _bearer(request: web.Request, form: Mapping[str, object]) -> str:
    token = form.get("token")
    if isinstance(token, str) and token:
        return token
    if request.query.get("token"):
        return request.query["token"]
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def make_app(tokens: Mapping[str, Token]) -> web.Application:
    """The aiohttp application answering for ``tokens``."""
    table = dict(tokens)
    app = web.Application()
    app[_STATS] = {"requests": 0, "active": 0, "inactive": 0, "unknown": 0}

    async def introspect(request: web.Request) -> web.Response:
        stats = request.app[_STATS]
        stats["requests"] += 1
        form = await request.post() if request.method == "POST" else {}
        token = _bearer(request, form)
        if not token:
            # RFC 7662: a request without the token parameter is malformed
            return web.json_response({"error": "invalid_request"}, status=400)
        info = table.get(token)
        if info is None or not info.active:
            stats["unknown" if info is None else "inactive"] += 1
            return web.json_response({"active": False})
        stats["active"] += 1
        return web.json_response(
            {
                "active": True,
                "username": info.user,
                "scope": "mail",
                "token_type": "Bearer",
                "client_id": "fetchlab-testbed",
            }
        )

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(request.app[_STATS])

    app.router.add_route("POST", "/introspect", introspect)
    app.router.add_route("GET", "/introspect", introspect)
    app.router.add_get("/stats", stats)
    return app


def _write_tokens(path: Path, tokens: Mapping[str, Token]) -> None:
    for token, info in tokens.items():
        if not token or not token.isprintable() or " " in token:
            raise UsageError("a token must be non-empty printable text without spaces")
        if not info.user:
            raise UsageError("every token needs a user")
    data = {token: {"user": info.user, "active": info.active} for token, info in tokens.items()}
    # created 0600: the table holds secrets (test ones, but still)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(data, out)


def _read_tokens(path: Path) -> dict[str, Token]:
    data = json.loads(path.read_text("utf-8"))
    return {str(k): Token(str(v["user"]), bool(v["active"])) for k, v in data.items()}


def start_introspection_server(
    tokens: Mapping[str, Token], *, workdir: Path | None = None
) -> IntrospectionServer:
    """Start the server as a child process on a free loopback port; wait until it answers.

    The token table and the log go to ``workdir`` (or a temporary folder removed by ``stop()``).
    """
    tmpdir = None
    if workdir is None:
        tmpdir = Path(tempfile.mkdtemp(prefix="fetchlab-oauth-"))
        workdir = tmpdir
    workdir.mkdir(parents=True, exist_ok=True)
    table = workdir / "oauth-tokens.json"
    try:
        _write_tokens(table, tokens)
    except BaseException:
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)
        raise
    logs = workdir
    try:
        proc, (port,) = start_child(
            "oauth2 introspection server",
            "testbed._oauth",
            ["--tokens", str(table)],
            lambda port: logs / f"oauth-{port}.log",
        )
    except TestbedError:
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)
        raise
    return IntrospectionServer(port=port, process=proc, tokens=dict(tokens), tmpdir=tmpdir)


async def _serve(
    port: int, tokens: Mapping[str, Token], duration: float | None, parent_pid: int | None
) -> None:
    runner = web.AppRunner(make_app(tokens), shutdown_timeout=1.0, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, LOOPBACK, port)
    await site.start()
    for host, real_port in runner.addresses:
        click.echo(f"oauth2 introspection: http://{host}:{real_port}/introspect")
    sys.stdout.flush()
    await serve_until_stopped(runner.cleanup, duration, parent_pid)


@click.command(name="oauth")
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="0 picks a free port.")
@click.option(
    "--tokens",
    "tokens_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help='JSON: {"TOKEN": {"user": "alice", "active": true}, ...}',
)
@click.option("--duration", type=float, default=None, help="Stop after this many seconds.")
@click.option("--parent-pid", type=int, default=None, hidden=True, help="Exit when it exits.")
def cli(port: int, tokens_file: Path, duration: float | None, parent_pid: int | None) -> None:
    """Run the OAuth2 introspection server on 127.0.0.1 until Ctrl-C (or --duration)."""
    from foundation.runtime import run

    run(_serve(port, _read_tokens(tokens_file), duration, parent_pid), "uvloop")


if __name__ == "__main__":
    cli()
