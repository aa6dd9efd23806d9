"""Open an authenticated native session for an account: TLS / STARTTLS, CAPABILITY, login, COMPRESS.

Every expected failure becomes a one-line error naming the account (wrong password, untrusted
certificate, refused connection...), never a traceback; the secret never appears in a message.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Callable
from pathlib import Path

from foundation.errors import (
    ImapAuthError,
    ImapCommandError,
    ImapConnectError,
    ImapTLSError,
    MailError,
)
from mailsync.auth import Secret
from mailsync.core import commands
from mailsync.core.parser import LiteralSink, capabilities_in
from mailsync.settings import AccountSettings, is_loopback
from mailsync.transports.native import NativeConnection, connect
from mailsync.transports.tls import make_ssl_context

__all__ = ["make_ssl_context", "open_session", "spill_factory", "want_compression"]


def want_compression(mode: str, host: str) -> bool:
    # measured (docs/mailsync.md): on loopback zlib costs more CPU than the bytes it saves
    return mode == "always" or (mode == "auto" and not is_loopback(host))


async def _refresh_caps(conn: NativeConnection) -> None:
    result = await conn.execute(commands.capability())
    for resp in (*result.untagged, result.tagged):
        caps = capabilities_in(resp)
        if caps is not None:
            conn.capabilities = caps


async def _authenticate(conn: NativeConnection, account: AccountSettings, secret: Secret) -> None:
    caps = conn.capabilities
    literal_plus = "LITERAL+" in caps or "LITERAL-" in caps
    if account.auth == "login":
        if "LOGINDISABLED" in caps:
            raise ImapAuthError(
                f"account {account.name}: the server disables LOGIN here (use tls or starttls)"
            )
        cmd = commands.login(account.username, secret.value, literal_plus=literal_plus)
    else:
        mech = account.auth.upper()
        if f"AUTH={mech}" not in caps:
            raise ImapAuthError(f"account {account.name}: the server does not offer AUTH={mech}")
        if mech == "PLAIN":
            b64 = commands.plain_response(account.username, secret.value)
        else:
            blob = f"user={account.username}\1auth=Bearer {secret.value}\1\1".encode()
            b64 = base64.b64encode(blob)
        head = b"AUTHENTICATE " + mech.encode()
        cmd = (head + b" " + b64,) if "SASL-IR" in caps else (head, b64)
    result = await conn.execute(cmd)
    if not result.ok:
        # the response code (AUTHENTICATIONFAILED, UNAVAILABLE...) tells a refused secret from a
        # server that could not check it (for XOAUTH2: its token introspection was down)
        tagged = result.tagged
        code = f" [{tagged.code_name}]" if tagged.code_name else ""
        text = f"login as {account.username} failed: {tagged.status}{code} {tagged.text}"
        # UNAVAILABLE (RFC 5530) is temporary: a connection-class error, retried with backoff
        if tagged.code_name == "UNAVAILABLE":
            raise ImapConnectError(text)  # open_account_session names the account
        raise ImapAuthError(f"account {account.name}: {text}")
    caps_after = capabilities_in(result.tagged)
    if caps_after is not None:
        conn.capabilities = caps_after
    else:
        await _refresh_caps(conn)


async def open_session(
    account: AccountSettings,
    secret: Secret,
    *,
    op_timeout: float,
    compress: str,
    literal_factory: Callable[[int], LiteralSink] | None = None,
    spill_threshold: int = 8 * 1024 * 1024,
) -> NativeConnection:
    """Connect, secure, authenticate and (maybe) compress. Raises MailError subclasses."""
    ctx = make_ssl_context(account) if account.security != "plain" else None
    conn = await connect(
        account.host,
        account.port,
        tls=ctx if account.security == "tls" else None,
        op_timeout=op_timeout,
        literal_factory=literal_factory,
        spill_threshold=spill_threshold,
    )
    try:
        greeting = conn.unsolicited[0] if conn.unsolicited else None
        caps = capabilities_in(greeting) if greeting is not None else None
        if caps is None:
            await _refresh_caps(conn)
        else:
            conn.capabilities = caps
        if account.security == "starttls":
            if "STARTTLS" not in conn.capabilities:
                raise ImapTLSError(f"account {account.name}: server does not offer STARTTLS")
            assert ctx is not None
            await conn.starttls(ctx)
            await _refresh_caps(conn)
        already = getattr(greeting, "kind", None) == "PREAUTH"
        if not already:
            await _authenticate(conn, account, secret)
        if want_compression(compress, account.host) and "COMPRESS=DEFLATE" in conn.capabilities:
            result = await conn.execute(b"COMPRESS DEFLATE")
            if result.ok:
                conn.start_compression()
        conn.unsolicited.clear()
        return conn
    except MailError as exc:
        conn.abort()
        if isinstance(exc, ImapCommandError | ImapAuthError | ImapTLSError):
            raise
        raise type(exc)(f"account {account.name}: {exc}") from None
    except BaseException:
        with contextlib.suppress(Exception):
            conn.abort()
        raise


def spill_factory(directory: Path) -> Callable[[int], LiteralSink]:
    from mailsync.store import SpillSink

    return lambda size: SpillSink(directory, size)
