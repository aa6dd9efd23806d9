"""A folder's listing in bounded chunks: memory that stays flat whatever the folder's size.

A folder of at most ``chunk`` messages is listed whole (``UID FETCH 1:*``, in the EXAMINE round
trip). A larger one is cut into UID ranges of about ``chunk`` messages each: one
``FETCH c,2c,3c,... (UID)`` (message numbers) names the UID at every ``chunk``-th position, so the
ranges hold ``chunk`` messages each however sparse the UIDs are (a range of ``chunk`` UIDs would
need thousands of commands for an old folder whose UIDs run into the millions); the last range is
open (``u:*``) and takes whatever arrived meanwhile. The ranges' ``UID FETCH`` commands go out in a
sliding window; each range is compared with the archive (in SQLite, by the driver) as soon as it
is complete, then dropped. Clients that cannot send plain FETCH (aioimaplib) list in fixed UID
ranges instead (``uid_step``).

Servers may credit a pipelined FETCH's lines to an earlier command (Dovecot runs them
concurrently): lines are routed to their range by UID, and a range is complete once its own
command has completed, as for body batches.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mailsync.core import commands
from mailsync.core.parser import FetchResp, Response
from mailsync.core.plan import ServerMsg

__all__ = [
    "ChunkRouter",
    "UidRange",
    "boundary_command",
    "boundary_ranges",
    "range_commands",
    "server_msg",
    "stepped_ranges",
]


@dataclass(frozen=True, slots=True)
class UidRange:
    """UIDs ``lo`` to ``hi`` (None: no upper end)."""

    lo: int
    hi: int | None

    def contains(self, uid: int) -> bool:
        return uid >= self.lo and (self.hi is None or uid <= self.hi)

    @property
    def text(self) -> str:
        return f"{self.lo}:{'*' if self.hi is None else self.hi}"


def boundary_command(exists: int, chunk: int) -> bytes | None:
    """``FETCH c,2c,... (UID)`` for a folder of ``exists`` messages (None: one range does)."""
    if exists <= chunk:
        return None
    seqs = ",".join(str(n) for n in range(chunk, exists + 1, chunk))
    return f"FETCH {seqs} (UID)".encode("ascii")


def boundary_ranges(answers: Iterable[Response]) -> list[UidRange]:
    """The UID ranges cut at the UIDs a boundary FETCH returned (last one open)."""
    cuts = sorted({r.uid for r in answers if isinstance(r, FetchResp) and r.uid is not None})
    ranges: list[UidRange] = []
    lo = 1
    for uid in cuts:
        if uid >= lo:
            ranges.append(UidRange(lo, uid))
            lo = uid + 1
    ranges.append(UidRange(lo, None))
    return ranges


def stepped_ranges(uidnext: int | None, step: int) -> list[UidRange]:
    """Fixed UID ranges of ``step`` below ``uidnext``, then ``uidnext:*`` (one open range when
    UIDNEXT is unknown)."""
    if uidnext is None:
        return [UidRange(1, None)]
    ranges = [UidRange(lo, min(lo + step - 1, uidnext - 1)) for lo in range(1, uidnext, step)]
    ranges.append(UidRange(max(uidnext, 1), None))
    return ranges


def range_commands(ranges: Sequence[UidRange], *, modseq: bool) -> tuple[bytes, ...]:
    return tuple(commands.uid_fetch_meta(r.text, modseq=modseq) for r in ranges)


def server_msg(resp: FetchResp) -> ServerMsg | None:
    """A listing line as the planner takes it (None: not a listing line, e.g. a FLAGS update)."""
    if resp.uid is None or resp.size is None:
        return None
    return ServerMsg(
        uid=resp.uid,
        size=resp.size,
        flags=tuple(resp.flags or ()),
        internaldate=resp.internaldate or "",
        modseq=resp.modseq,
    )


class ChunkRouter:
    """Collects listing lines into their ranges; :meth:`take` hands over a complete range's."""

    def __init__(self, ranges: Sequence[UidRange]) -> None:
        self._ranges = list(ranges)
        self._starts = [r.lo for r in self._ranges]
        self._pool: dict[int, dict[int, ServerMsg]] = {}

    def add(self, answers: Iterable[Response]) -> None:
        for resp in answers:
            if not isinstance(resp, FetchResp):
                continue
            msg = server_msg(resp)
            if msg is None:
                continue
            k = bisect.bisect_right(self._starts, msg.uid) - 1
            if k >= 0 and self._ranges[k].contains(msg.uid):
                self._pool.setdefault(k, {}).setdefault(msg.uid, msg)

    def take(self, k: int) -> list[ServerMsg]:
        """Range ``k``'s lines, by UID (its command has completed)."""
        got = self._pool.pop(k, {})
        return [got[uid] for uid in sorted(got)]


def compact(batch: Iterable[int]) -> array[int]:
    """A fetch batch's UIDs as 4-byte integers (a first backup keeps one per message)."""
    return array("I", batch)
