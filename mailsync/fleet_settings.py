"""The mail fleet's settings (``[mail.fleet]``): where the job queue lives and how leases,
retries and the per-server connection cap behave. Frozen and validated once.

Every worker of one fleet must name the same ``queue`` and ``name``; ``heartbeat``, ``lease`` and
``max_connections_per_server`` should match too (the cap is counted in Redis, so a worker with a
larger cap would take more than the others think is free).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from msgspec import Meta

from foundation.frozen import FrozenModel

__all__ = ["FleetSettings"]


class FleetSettings(FrozenModel, frozen=True, kw_only=True):
    # redis://HOST:PORT/DB (rediss:// for TLS); None: name it with --queue
    queue: str | None = None
    # the fleet's name: its Redis keys start with mailsync:fleet:<name>:
    name: Annotated[str, Meta(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._-]+\Z")] = (
        "default"
    )
    # seconds between a worker's lease renewals (XCLAIM JUSTID of its job, its connection slots)
    heartbeat: Annotated[float, Meta(gt=0, le=3600)] = 5.0
    # seconds without a renewal after which another worker takes the job over (XAUTOCLAIM) and
    # the dead worker's connection slots count as free again
    lease: Annotated[float, Meta(gt=0, le=86_400)] = 30.0
    # attempts of one account before it is recorded as failed (a backup that ended with errors
    # or a worker lost while it held the account both count one)
    max_attempts: Annotated[int, Meta(ge=1, le=1000)] = 3
    # IMAP connections open at once to one server (host:port) over ALL workers; None: no cap
    # across workers (each account still opens at most its own `connections`)
    max_connections_per_server: Annotated[int, Meta(ge=1, le=10_000)] | None = None

    def problems(self) -> Iterator[tuple[str | None, str]]:
        queue = self.queue
        if queue is not None and not queue.startswith(("redis://", "rediss://", "unix://")):
            yield "queue", f"{queue!r} is not a Redis URL (redis://HOST:PORT/DB)"
        # a lease must survive a late heartbeat or two, or a live worker loses its account
        if self.lease < 2 * self.heartbeat:
            yield (
                None,
                f"lease ({self.lease} s) must be at least twice heartbeat ({self.heartbeat} s)",
            )
