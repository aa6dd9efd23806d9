"""What both IMAP transports (native asyncio and blocking imaplib) share about connecting.

The TLS context an account asks for, and the wording of the connect failures common to both, so
that a user sees the same one-line error in every mode. No asyncio here: the gevent mode's
blocking transport imports it.
"""

from __future__ import annotations

import ssl

from foundation.errors import ImapConnectError, ImapTLSError, MailError
from mailsync.settings import AccountSettings

__all__ = ["connect_failure", "make_ssl_context"]


def make_ssl_context(account: AccountSettings) -> ssl.SSLContext:
    try:
        ctx = ssl.create_default_context(
            cafile=str(account.ca_file) if account.ca_file is not None else None
        )
    except (OSError, ssl.SSLError) as exc:
        raise ImapTLSError(
            f"account {account.name}: cannot load ca_file {account.ca_file}: {exc}"
        ) from None
    if not account.verify_tls:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def connect_failure(exc: BaseException, where: str) -> MailError | None:
    """``exc`` (from connecting to ``where``) as our error when it is a TLS failure, a refusal or
    a timeout; None for the rest, which each transport words itself."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ImapTLSError(
            f"{where}: TLS certificate not trusted ({exc.verify_message}); "
            "set ca_file, or verify_tls = false to accept it anyway"
        )
    if isinstance(exc, ssl.SSLError):
        return ImapTLSError(f"{where}: TLS handshake failed ({exc.reason or exc})")
    if isinstance(exc, ConnectionRefusedError):
        return ImapConnectError(f"{where}: connection refused")
    if isinstance(exc, TimeoutError):
        return ImapConnectError(f"{where}: timed out")
    return None
