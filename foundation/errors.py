"""The one error tree of the project.

Third-party errors (aiohttp, imaplib, sqlite3, msgspec, OSError from sockets) are translated at the
boundary into these; callers catch these and nothing else. Each error also inherits the builtin a
caller would expect (``FetchTimeout`` is a ``TimeoutError``), so generic handlers keep working.

    FetchlabError
    ├── UsageError (ValueError)                    bad CLI arguments            -> exit 2
    │   └── QuerySyntaxError                       a search query that does not parse (.position)
    ├── SettingsError (ValueError)                 bad settings file / env      -> exit 2
    ├── ModeError (RuntimeError)                   a mode cannot run (extra missing, limit)
    │   └── WorkerDiedError                        a processes-mode worker died mid-run  -> exit 1
    ├── TestbedError (RuntimeError)                a test-bed server cannot start / misbehaves
    │   └── PortInUseError                         the port it must listen on is taken
    ├── StorageError (OSError)                     archive / state cannot be written or read
    │   └── CorruptArchiveError                    a damaged file that repair could not fix
    ├── CrawlError                                 crawler failures
    │   ├── InvalidURLError (ValueError)           a URL line that cannot be crawled
    │   │   └── UnsupportedSchemeError             anything but http/https
    │   ├── RobotsDisallowed                       robots.txt forbids the URL
    │   ├── OutOfScope                             follow mode: the link leaves the scope
    │   └── FetchError (OSError)                   one URL failed to fetch
    │       ├── FetchTimeout (TimeoutError)
    │       ├── ConnectError (ConnectionError)     no connection (unreachable ...)
    │       │   ├── ConnectionRefused              nothing listens on the port
    │       │   ├── UnknownHost                    the host name does not resolve
    │       │   └── TLSError                       TLS handshake or certificate failed
    │       ├── ConnectionLost (ConnectionError)   reset or closed mid-response
    │       ├── BadResponse                        broken HTTP framing (no retry)
    │       ├── HTTPStatusError                    a final 4xx / 5xx after retries
    │       ├── TooManyRedirects                   more hops than allowed, or a loop
    │       ├── BodyTooLarge                       over --max-bytes (body kept, truncated)
    │       ├── DecodeError (ValueError)           content-encoding / decompression bomb
    │       └── HeadersTooLarge
    └── MailError                                  mailsync failures
        ├── ImapProtocolError (ValueError)         bytes the parser cannot read
        ├── ImapConnectError (ConnectionError)     refused / DNS / closed mid-command
        │   ├── ImapTLSError                       certificate not trusted, handshake failed
        │   └── ImapUnknownHost                    the host name does not resolve (no retry)
        ├── ImapAuthError (PermissionError)        wrong user / password, no password source
        ├── ImapCommandError                       NO / BAD answer to a command
        │   ├── FolderGone                         folder deleted between LIST and EXAMINE
        │   └── ImapLimitError                     a server limit outlasted the backoff:
        │                                          [OVERQUOTA], [LIMIT], [ALERT] ... (restore)
        └── UIDValidityChanged                     folder re-created on the server
"""

from __future__ import annotations

__all__ = [
    "BadResponse",
    "BodyTooLarge",
    "ConnectError",
    "ConnectionLost",
    "ConnectionRefused",
    "CorruptArchiveError",
    "CrawlError",
    "DecodeError",
    "FetchError",
    "FetchTimeout",
    "FetchlabError",
    "FolderGone",
    "HTTPStatusError",
    "HeadersTooLarge",
    "ImapAuthError",
    "ImapCommandError",
    "ImapConnectError",
    "ImapLimitError",
    "ImapProtocolError",
    "ImapTLSError",
    "ImapUnknownHost",
    "InvalidURLError",
    "MailError",
    "ModeError",
    "OutOfScope",
    "PortInUseError",
    "QuerySyntaxError",
    "RobotsDisallowed",
    "SettingsError",
    "StorageError",
    "TLSError",
    "TestbedError",
    "TooManyRedirects",
    "UIDValidityChanged",
    "UnknownHost",
    "UnsupportedSchemeError",
    "UsageError",
]


class FetchlabError(Exception):
    """Root of every error this project raises on purpose."""


class UsageError(FetchlabError, ValueError):
    """Bad command-line arguments (exit code 2)."""


class QuerySyntaxError(UsageError):
    """A mailsync search query that does not parse; ``position`` is the 0-based character
    offset of the problem in ``query``."""

    def __init__(self, message: str, query: str, position: int) -> None:
        self.query = query
        self.position = position
        self.reason = message
        marker = " " * position + "^"
        super().__init__(
            f"query error at character {position + 1}: {message}\n  {query}\n  {marker}"
        )


class SettingsError(FetchlabError, ValueError):
    """Invalid settings: one message per problem, each naming the key and the file (exit 2)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class ModeError(FetchlabError, RuntimeError):
    """A concurrency mode cannot run as asked (missing extra, refused limit)."""


class WorkerDiedError(ModeError):
    """A worker process of ``--mode processes`` died mid-run (killed, crashed): the run stops,
    the archive stays consistent and a rerun resumes. Not the user's input: exit 1, not 2."""


class TestbedError(FetchlabError, RuntimeError):
    """A test-bed server could not start or stopped working; the message says how to fix it."""

    __test__ = False  # not a pytest test class despite the name


class PortInUseError(TestbedError):
    """Something already listens on the port a test-bed server must use."""


class StorageError(FetchlabError, OSError):
    """The archive or its state cannot be written or read."""


class CorruptArchiveError(StorageError):
    """A damaged archive file that automatic repair could not fix."""


class CrawlError(FetchlabError):
    """Base of the crawler's errors."""


class InvalidURLError(CrawlError, ValueError):
    """A URL (line) that cannot be crawled."""


class UnsupportedSchemeError(InvalidURLError):
    """Only http and https URLs are crawled."""


class RobotsDisallowed(CrawlError):
    """robots.txt forbids this URL for our user agent."""


class OutOfScope(CrawlError):
    """A followed link that leaves the crawl's scope."""


class FetchError(CrawlError, OSError):
    """One URL failed to fetch."""


class FetchTimeout(FetchError, TimeoutError):
    """Connect, read or total timeout."""


class ConnectError(FetchError, ConnectionError):
    """Connection refused, DNS failure, host unreachable."""


class ConnectionRefused(ConnectError):
    """The host answered, but nothing listens on the port."""


class UnknownHost(ConnectError):
    """The host name does not resolve."""


class TLSError(ConnectError):
    """The TLS handshake failed or the certificate is not trusted."""


class ConnectionLost(FetchError, ConnectionError):
    """The server reset or closed the connection mid-response."""


class BadResponse(FetchError):
    """The response broke HTTP's framing (a malformed status line or chunk-size line): the
    server's bytes are wrong, so fetching again would fail the same way. Not a
    ``ConnectionError``, so the retry policy leaves it alone."""


class HTTPStatusError(FetchError):
    """A final error status (4xx/5xx) after retries."""

    def __init__(self, status: int, message: str = "") -> None:
        self.status = status
        super().__init__(message or f"HTTP {status}")


class TooManyRedirects(FetchError):
    """More redirect hops than allowed, or a redirect loop."""


class BodyTooLarge(FetchError):
    """The body went over the byte cap; what was read is kept, marked truncated."""


class DecodeError(FetchError, ValueError):
    """The content-encoding could not be decoded, or decoding exceeded its cap (a bomb)."""


class HeadersTooLarge(FetchError):
    """The response head was larger than the client accepts."""


class MailError(FetchlabError):
    """Base of mailsync's errors."""


class ImapProtocolError(MailError, ValueError):
    """Server bytes that the IMAP parser cannot read."""


class ImapConnectError(MailError, ConnectionError):
    """Refused, unknown host, or connection closed mid-command."""


class ImapTLSError(ImapConnectError):
    """TLS handshake failed or the certificate is not trusted."""


class ImapUnknownHost(ImapConnectError):
    """The host name does not resolve: a setting to fix, not a moment to wait out."""


class ImapAuthError(MailError, PermissionError):
    """Login failed, or no password source is configured."""


class ImapCommandError(MailError):
    """The server answered NO or BAD."""

    def __init__(self, command: str, status: str, text: str) -> None:
        self.command = command
        self.status = status
        self.text = text
        super().__init__(f"{command}: {status} {text}".strip())


class FolderGone(ImapCommandError):
    """The folder was deleted between LIST and EXAMINE."""


class ImapLimitError(ImapCommandError):
    """The server refused for one of its limits (quota full, upload rate, an [ALERT]) and kept
    refusing through the backoff: the run stops for this account; the message says what the
    server said and that a rerun goes on where this one stopped."""


class UIDValidityChanged(MailError):
    """The folder's UIDVALIDITY changed: a new generation is synced, old copies are kept."""
