"""mailsync's settings section (``[mail]`` in the TOML file). Frozen and validated once."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Literal

from msgspec import Meta, structs

from foundation.durable import SyncMethod
from foundation.frozen import FrozenModel
from foundation.mode import Mode
from mailsync.core.retry import Backoff
from mailsync.fleet_settings import FleetSettings

__all__ = ["AccountSettings", "MailSettings", "is_loopback"]


def is_loopback(host: str) -> bool:
    """True for names and addresses that never leave the machine."""
    if host.lower() in {"localhost", "localhost.localdomain", "ip6-localhost"}:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class AccountSettings(FrozenModel, frozen=True, kw_only=True):
    name: Annotated[str, Meta(min_length=1, pattern=r"^[A-Za-z0-9._@-]+\Z")]
    host: Annotated[str, Meta(min_length=1)]
    port: Annotated[int, Meta(ge=1, le=65535)] = 993
    security: Literal["tls", "starttls", "plain"] = "tls"
    allow_plain: bool = False
    username: Annotated[str, Meta(min_length=1)]
    password_env: str | None = None
    password_command: str | None = None
    # login = LOGIN; plain = AUTHENTICATE PLAIN; xoauth2 = AUTHENTICATE XOAUTH2 with the token
    # printed by oauth_token_command (or taken from password_env / password_command).
    auth: Literal["login", "plain", "xoauth2"] = "login"
    oauth_token_command: str | None = None
    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()
    connections: Annotated[int, Meta(ge=1, le=64)] = 4
    # 100: small messages cost more in flight than their bytes (a parsed FETCH item each): 200
    # held ~8 MB more at 1.5 KB a message for no speed (docs/benchmarks/memory.md)
    batch_messages: Annotated[int, Meta(ge=1, le=10_000)] = 100
    # 2 MB: 4 connections x (4 in flight + 1 being written + 1 parsed) batches stay near 50 MB;
    # larger batches bought no speed even at 100 ms (measured, docs/mailsync.md)
    batch_bytes: Annotated[int, Meta(ge=1024)] = 2 * 1024 * 1024
    ca_file: Path | None = None
    verify_tls: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        # "[::1]" is how URLs spell an IPv6 literal; sockets, TLS and the loopback check take
        # "::1" (with the brackets every transport failed with "unknown host")
        if self.host.startswith("[") and self.host.endswith("]"):
            structs.force_setattr(self, "host", self.host[1:-1])

    def problems(self) -> Iterator[tuple[str | None, str]]:
        # the archive is <out>/<name>: "." or ".." would be <out> itself or its parent
        if self.name in (".", ".."):
            yield "name", f"{self.name!r} is not a folder name: it must be one safe path segment"
        # a password in clear text over a real network is refused unless explicitly forced
        if self.security == "plain" and not self.allow_plain and not is_loopback(self.host):
            yield (
                None,
                f"security = 'plain' sends the password unencrypted to {self.host}: "
                "use tls or starttls, or set allow_plain = true",
            )


class MailSettings(FrozenModel, frozen=True, kw_only=True):
    out: Path = Path("mail-archive")
    mode: Mode = Mode.ASYNCIO
    loop: Literal["uvloop", "asyncio"] = "uvloop"
    imap_client: Literal["native", "aioimaplib"] = "native"
    max_connections: Annotated[int, Meta(ge=1, le=10_000)] = 64
    # COMPRESS=DEFLATE: auto = only when the host is not loopback (on loopback zlib costs more
    # CPU than it saves), always = whenever the server offers it, never.
    compress: Literal["auto", "always", "never"] = "auto"
    # Literals (message bodies) larger than this stream to a file as they arrive, hashed on the
    # way, and are renamed into the Maildir. 256 KiB, not 8 MiB: the larger messages carry most
    # of a mailbox's bytes, and held in memory until their batch was written they made most of
    # the peak: 20,000 messages / 1 GB, 70-71 MB against 89-92 and 4.2-4.6 s against 4.4-5.0
    # (interleaved, 2026-12-07; docs/benchmarks/mail.md)
    spill_threshold: Annotated[int, Meta(ge=1024)] = 256 * 1024
    # UID FETCH body commands in flight per connection (pipelining depth). 4 x 2 MB batches keep
    # a connection near 40 MB/s at a 200 ms round trip: 1 GB at 100 ms one way took 11.5 s
    # against 16 s with 2 (docs/mailsync.md); on loopback the depth changes nothing.
    pipeline_depth: Annotated[int, Meta(ge=1, le=64)] = 4
    # A folder's listing (UID, size, flags of every message) is read and compared with the
    # archive in chunks of about this many messages, so memory stays flat whatever the folder's
    # size (docs/benchmarks/memory.md); a folder of at most this many is listed in one command.
    # 1000: with 4 connections x pipeline_depth 4 chunks in flight, 2000 held ~6 MB more at the
    # start of a big backup; a changed 100,000-message folder then takes ~25 round trips, not 13
    listing_chunk: Annotated[int, Meta(ge=2, le=1_000_000)] = 1000
    # At most this many bytes of message bodies one account may have asked for (body FETCHes
    # sent) and not yet written to their files, over all its connections (0 = no bound). Below
    # it, the account asks for what keeps its link full: the fastest command round trip so far
    # times 200 MB/s, at least 8 MiB (8 MiB on loopback; 40.8 MB at 100 ms each way:
    # mailsync.core.options.body_budget). A batch larger than the budget still goes, alone.
    # Without it, up to pipeline_depth x lanes batches per folder (32 MB at the defaults)
    # piled up whenever the disk was slower than the network; bodies not asked for yet wait in
    # the server instead (docs/benchmarks/memory.md). The asyncio mode's: the other modes keep
    # a folder on one connection and store each batch before reading the next, so they hold at
    # most pipeline_depth + 1 batches a connection.
    bodies_in_flight_bytes: Annotated[int, Meta(ge=0)] = 40 * 1024 * 1024
    # Seconds to connect + greet + log in, and the longest wait for one response.
    timeout: Annotated[float, Meta(gt=0, le=3600)] = 60.0
    # Reconnects (with exponential backoff) of one connection before its folders fail.
    retries: Annotated[int, Meta(ge=0, le=100)] = 4
    # Seconds before the first retry (doubling each time, jittered by +-50 %) and the longest wait.
    retry_delay: Annotated[float, Meta(ge=0, le=60)] = 0.2
    retry_max_delay: Annotated[float, Meta(ge=0, le=3600)] = 5.0
    # Parser processes for the index's MIME walk (0 = on the event loop), messages per IPC batch.
    # (1: on two cores a second process bought no speed and cost ~24 MB; measured 2026-12-06,
    # 1 GB corpus 9.8 s with one against 12.5 s with two, docs/benchmarks/memory.md)
    header_workers: Annotated[int, Meta(ge=0, le=64)] = 1
    header_batch: Annotated[int, Meta(ge=1, le=10_000)] = 64
    # Index each stored message for search (the MIME walk) during the backup; false: the first
    # search (or report, or --query) after it indexes what is new, as notmuch new after mbsync.
    index: bool = False
    # fsync every message file and folder before the state records it (crash safety).
    fsync: bool = True
    # how: "syncfs" syncs a batch's file system in one call (Linux 5.8+, else per file),
    # "files" each file and folder (no wait for other programs' writes to that file system)
    fsync_method: SyncMethod = "syncfs"
    # `mailsync enqueue` / `worker` / `fleet-status`: the Redis job queue (mailsync.fleet_settings)
    fleet: FleetSettings = FleetSettings()
    accounts: tuple[AccountSettings, ...] = ()

    def problems(self) -> Iterator[tuple[str | None, str]]:
        # two accounts with one name would share (and fight over) one archive folder
        seen: dict[str, int] = {}
        for i, acct in enumerate(self.accounts):
            if acct.name in seen:
                yield (
                    "accounts",
                    f"account name {acct.name!r} is used twice (accounts[{seen[acct.name]}] and "
                    f"accounts[{i}]): each account needs a name of its own",
                )
            seen.setdefault(acct.name, i)
        if self.retry_max_delay < self.retry_delay:
            yield None, "retry_max_delay must not be smaller than retry_delay"

    @property
    def backoff(self) -> Backoff:
        """The retry policy every mode follows (:mod:`mailsync.core.retry`)."""
        return Backoff(self.retries, self.retry_delay, self.retry_max_delay)
