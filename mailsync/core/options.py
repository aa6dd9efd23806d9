"""What one IMAP session may do in a sync: the flow's options and the capabilities its folder
listing reads, from the account's batch limits, the run's pipeline depth and what the server and
the client library offer. The same in every concurrency mode (the drivers only pass the values).
"""

from __future__ import annotations

from collections.abc import Set

from mailsync.core.flow import SyncOptions

__all__ = [
    "AIOIMAPLIB_LISTING_CHUNK",
    "BUDGET_FLOOR",
    "BUDGET_RATE",
    "body_budget",
    "listing_capabilities",
    "sync_options",
]

# aioimaplib cannot take `UID FETCH 1:*` over a large folder: it lists in UID ranges of this size
AIOIMAPLIB_LISTING_CHUNK = 500
# An account's body budget is what keeps its link full: the round trip times this rate (bytes a
# second), at least the floor, at most the setting (40 MiB by default). 1 GB corpus, interleaved
# probes on 2026-12-07 (seven pairs): on loopback (2.4 ms measured: the floor) 8.36-9.72 s
# against 8.57-10.72 s with the fixed 24 MiB, the main process 105-108 MB against 116-124 MB.
# At 100 ms each way (0.204 s measured: 40.8 MB asked for) the cap was 24 MiB while the search
# index, built during the backup, set the pace (a 48 MiB cap gave nothing then); without it
# (index = false, the default since) a 40 MiB cap took 9.56-10.27 s against 10.98-11.56 s with
# 24 MiB and the same peak RSS (three interleaved rounds; 64 MiB: no better than 40).
BUDGET_FLOOR = 8 * 1024 * 1024
BUDGET_RATE = 200_000_000


def body_budget(round_trip: float | None, cap: int) -> int:
    """The bytes of bodies an account may have asked for and not yet written (0: no bound),
    for a link whose fastest round trip took ``round_trip`` seconds (None: not measured, the
    cap), never above ``cap`` (the setting; 0 = no bound)."""
    if not cap or round_trip is None:
        return cap
    return min(cap, max(BUDGET_FLOOR, int(round_trip * BUDGET_RATE)))


def listing_capabilities(capabilities: Set[str], *, aioimaplib: bool = False) -> frozenset[str]:
    """The capabilities :func:`mailsync.core.flow.discover` is told about: aioimaplib drops the
    STATUS lines of a LIST-STATUS answer, so discovery must not ask for them through it."""
    caps = frozenset(capabilities)
    return caps - {"LIST-STATUS"} if aioimaplib else caps


def sync_options(
    capabilities: Set[str],
    *,
    batch_messages: int,
    batch_bytes: int,
    pipeline_depth: int,
    listing_chunk: int | None = None,
    aioimaplib: bool = False,
) -> SyncOptions:
    """The options :func:`mailsync.core.flow.sync_folder` runs with on a session offering
    ``capabilities``, listing a folder in chunks of ``listing_chunk`` messages. aioimaplib
    serialises commands itself (one body FETCH at a time) and lists large folders in UID ranges
    of at most 500."""
    chunk = listing_chunk if listing_chunk is not None else SyncOptions().listing_chunk
    return SyncOptions(
        batch_messages=batch_messages,
        batch_bytes=batch_bytes,
        pipeline_depth=1 if aioimaplib else pipeline_depth,
        condstore="CONDSTORE" in capabilities,
        literal_plus="LITERAL+" in capabilities,
        listing_chunk=min(chunk, AIOIMAPLIB_LISTING_CHUNK) if aioimaplib else chunk,
        uid_step=aioimaplib,
    )
