"""The optional aioimaplib transport (``imap_client = "aioimaplib"``, extra ``aioimaplib``).

Kept so the comparison can show a well-known asyncio IMAP library next to our own client. It
has no pipelining (aioimaplib waits for one command of a kind before sending the next), so
``pipeline`` runs the commands one after another; the engine lists folders in UID ranges of 500
because ``UID FETCH 1:*`` over large folders never returns (aioimaplib issue #118, FACTS.md).

aioimaplib hands back untagged lines with the ``* `` removed and literals as separate items; we
rebuild the wire form and read it with our own parser, so the engine sees the same responses
as from the native transport. Known limits: aioimaplib removes every ``"* "`` from an untagged
line (not only the prefix), its EXAMINE does not enter the selected state (we set it), and
literals in commands (odd passwords) are not supported beyond its own LOGIN quoting.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from foundation.errors import (
    ImapAuthError,
    ImapCommandError,
    ImapConnectError,
    ModeError,
)
from mailsync.auth import Secret
from mailsync.core.flow import Command, CommandResult
from mailsync.core.parser import ResponseParser, Tagged
from mailsync.settings import AccountSettings, MailSettings
from mailsync.transports.base import TransportStats
from mailsync.transports.connection import make_ssl_context, spill_factory
from mailsync.transports.native import translate_connect_error

__all__ = ["AioimaplibSession", "open_session", "wire_form"]


def wire_form(
    tag: str, result: str, lines: Sequence[bytes | bytearray], keyword: bytes = b""
) -> bytes:
    """Rebuild server bytes from an aioimaplib Response (untagged lines, literals, tagged text).

    ``keyword``: aioimaplib strips the response name from the lines it routes to an async
    command such as LIST or STATUS (``* LIST (...)`` arrives as ``(...)``); it is put back.
    """
    out = bytearray()
    after_literal = False
    for item in lines[:-1]:
        if isinstance(item, bytearray):
            out += item
            after_literal = True
            continue
        if not after_literal:
            out += b"* " + keyword
        out += item + b"\r\n"
        after_literal = False
    last = lines[-1] if lines else b""
    out += f"{tag} {result} ".encode() + bytes(last) + b"\r\n"
    return bytes(out)


class AioimaplibSession:
    """An authenticated aioimaplib client behind the engine's ImapSession port."""

    def __init__(self, client: Any, settings: MailSettings, spill_dir: Path) -> None:
        self._client = client
        self._proto = client.protocol
        self._timeout = settings.timeout
        self._spill = spill_factory(spill_dir)
        self._threshold = settings.spill_threshold
        self.capabilities: frozenset[str] = frozenset(c.upper() for c in self._proto.capabilities)
        self.stats = TransportStats()
        self.compressed = False
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)

    async def _run(self, command: Any) -> Any:
        task = asyncio.ensure_future(self._proto.execute(command))
        done, _ = await asyncio.wait(
            {task, self.lost}, timeout=self._timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if task not in done:
            task.cancel()
            if self.lost.done():
                raise ImapConnectError("connection closed by the server")
            raise ImapConnectError(f"no answer in {self._timeout:.0f} s")
        return task.result()

    async def execute(self, command: Command) -> CommandResult:
        import aioimaplib

        if not isinstance(command, bytes):
            if len(command) != 1:
                raise ModeError("aioimaplib transport: commands with literals are not supported")
            command = command[0]
        text = command.decode("utf-8", "surrogateescape")
        words = text.split(" ", 2)
        tag = self._proto.new_tag()
        loop = asyncio.get_running_loop()
        if words[0].upper() == "UID" and len(words) == 3 and words[1].upper() == "FETCH":
            uid_set, _, items = words[2].partition(" ")
            cmd = aioimaplib.FetchCommand(
                tag,
                uid_set,
                items,
                prefix="UID",
                untagged_resp_name="FETCH",
                loop=loop,
                timeout=self._timeout,
            )
        else:
            name, _, rest = text.partition(" ")
            args = (rest,) if rest else ()
            cmd = aioimaplib.Command(name.upper(), tag, *args, loop=loop, timeout=self._timeout)
        self.stats.commands += 1
        self.stats.round_trips += 1
        began = time.monotonic()
        try:
            response = await self._run(cmd)
        except aioimaplib.AioImapException as exc:
            raise ImapConnectError(f"aioimaplib: {exc}") from None
        self.stats.timed_round_trip(time.monotonic() - began)
        if response.result == "OK" and cmd.name == "EXAMINE":
            self._proto.state = aioimaplib.SELECTED  # aioimaplib forgets this (FACTS.md)
        keyword = cmd.name.encode() + b" " if cmd.name in ("LIST", "STATUS") else b""
        raw = wire_form(tag, response.result, response.lines, keyword)
        self.stats.bytes_in += len(raw)
        self.stats.wire_in += len(raw)
        parser = ResponseParser(self._spill, self._threshold)
        parsed = parser.feed(raw)
        tagged = parsed[-1]
        if not isinstance(tagged, Tagged):
            raise ImapCommandError(cmd.name, response.result, "no tagged completion")
        return CommandResult(tagged, tuple(parsed[:-1]))

    async def pipeline(self, commands: Sequence[Command]) -> list[CommandResult]:
        return [await self.execute(c) for c in commands]

    async def aclose(self) -> None:
        import aioimaplib

        try:
            if not self.lost.done():
                async with asyncio.timeout(5.0):
                    await self._client.logout()
        except (aioimaplib.AioImapException, TimeoutError, OSError):
            pass
        finally:
            transport = self._proto.transport
            if transport is not None:
                transport.close()


async def open_session(
    account: AccountSettings, secret: Secret, settings: MailSettings, spill_dir: Path
) -> AioimaplibSession:
    try:
        import aioimaplib
    except ImportError:
        raise ModeError(
            "imap_client = 'aioimaplib' needs the optional extra: "
            "pip install 'fetchlab[aioimaplib]'"
        ) from None
    if account.security == "starttls":
        raise ModeError("aioimaplib transport: use security = 'tls' or 'plain' (no STARTTLS)")
    if account.auth != "login":
        # aioimaplib 2.0 has xoauth2(), but after a refused token it never answers the server's
        # error challenge (the command hangs until the timeout) and it logs the SASL string,
        # which holds the token, at debug level: refused rather than half supported
        raise ModeError(
            f"account {account.name}: imap_client = 'aioimaplib' supports only auth = 'login', "
            f"not auth = '{account.auth}': use imap_client = 'native'"
        )
    ctx: ssl.SSLContext | None = make_ssl_context(account) if account.security == "tls" else None
    holder: list[AioimaplibSession] = []

    def lost(exc: Exception | None) -> None:
        if holder:
            holder[0].on_lost(exc)

    if ctx is not None:
        client = aioimaplib.IMAP4_SSL(
            account.host, account.port, timeout=settings.timeout, ssl_context=ctx
        )
        client.protocol.conn_lost_cb = lost
    else:
        client = aioimaplib.IMAP4(
            account.host, account.port, timeout=settings.timeout, conn_lost_cb=lost
        )
    try:
        await client.wait_hello_from_server()
        async with asyncio.timeout(settings.timeout):
            await client.protocol.wait("NONAUTH|AUTH")
        response = await client.login(account.username, secret.value)
    except (OSError, TimeoutError, ssl.SSLError) as exc:
        _close(client)
        err = translate_connect_error(exc, account.host, account.port)
        raise type(err)(f"account {account.name}: {err}") from None
    except aioimaplib.AioImapException as exc:
        _close(client)
        raise ImapConnectError(f"account {account.name}: aioimaplib: {exc}") from None
    if response.result != "OK":
        _close(client)
        text = b" ".join(bytes(x) for x in response.lines if isinstance(x, bytes | bytearray))
        raise ImapAuthError(
            f"account {account.name}: login as {account.username} failed: "
            f"{response.result} {text.decode('utf-8', 'replace')}"
        )
    session = AioimaplibSession(client, settings, spill_dir)
    holder.append(session)
    return session


def _close(client: Any) -> None:
    transport = getattr(client.protocol, "transport", None)
    if transport is not None:
        transport.close()
