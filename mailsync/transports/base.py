"""The port every asyncio IMAP transport offers the engine (native pipelining client, aioimaplib).

A command is its bytes without tag and CRLF, or a sequence of parts: after each part but the last
the transport sends CRLF and waits for the server's ``+`` continuation (synchronizing literals,
AUTHENTICATE without SASL-IR). Results carry the tagged status and the untagged responses the
server sent while the command ran, parsed by :mod:`mailsync.core.parser`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from mailsync.core.flow import Command, CommandResult

__all__ = ["Command", "CommandResult", "ImapSession", "TransportStats"]


@dataclass
class TransportStats:
    """What crossed one connection: the engine sums these into the run's summary."""

    commands: int = 0
    round_trips: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    wire_in: int = field(default=0)  # bytes on the socket (smaller than bytes_in with COMPRESS)
    # seconds of the quickest command round trip yet (None: none timed): the link's latency
    fastest_round_trip: float | None = None

    def timed_round_trip(self, seconds: float) -> None:
        if self.fastest_round_trip is None or seconds < self.fastest_round_trip:
            self.fastest_round_trip = seconds


class ImapSession(Protocol):
    """An authenticated IMAP connection."""

    capabilities: frozenset[str]
    stats: TransportStats
    compressed: bool

    async def execute(self, command: Command) -> CommandResult: ...

    async def pipeline(self, commands: Sequence[Command]) -> list[CommandResult]: ...

    async def aclose(self) -> None: ...
