"""What one IMAP session may do in a sync: the flow's options and the capabilities its folder
listing reads, from the account's batch limits, the run's pipeline depth and what the server and
the client library offer. The same in every concurrency mode (the drivers only pass the values).
"""

from __future__ import annotations

from collections.abc import Set

from mailsync.core.flow import SyncOptions

__all__ = ["AIOIMAPLIB_LISTING_CHUNK", "listing_capabilities", "sync_options"]

# aioimaplib cannot take `UID FETCH 1:*` over a large folder: it lists in UID ranges of this size
AIOIMAPLIB_LISTING_CHUNK = 500


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
