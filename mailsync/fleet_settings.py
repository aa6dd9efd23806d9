"""The mail fleet's settings (``[mail.fleet]``): where the job queue lives and how leases,
retries and the per-server connection cap behave. Frozen and validated once.

Every worker of one fleet must name the same ``queue`` and ``name``; ``heartbeat``, ``lease`` and
``max_connections_per_server`` should match too (the cap is counted in Redis, so a worker with a
larger cap would take more than the others think is free).
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from foundation.frozen import FrozenModel

__all__ = ["FleetSettings"]


class FleetSettings(FrozenModel):
    # redis://HOST:PORT/DB (rediss:// for TLS); None: name it with --queue
    queue: str | None = None
    # the fleet's name: its Redis keys start with mailsync:fleet:<name>:
    name: str = Field(default="default", min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._-]+$")
    # seconds between a worker's lease renewals (XCLAIM JUSTID of its job, its connection slots)
    heartbeat: float = Field(default=5.0, gt=0, le=3600)
    # seconds without a renewal after which another worker takes the job over (XAUTOCLAIM) and
    # the dead worker's connection slots count as free again
    lease: float = Field(default=30.0, gt=0, le=86_400)
    # attempts of one account before it is recorded as failed (a backup that ended with errors
    # or a worker lost while it held the account both count one)
    max_attempts: int = Field(default=3, ge=1, le=1000)
    # IMAP connections open at once to one server (host:port) over ALL workers; None: no cap
    # across workers (each account still opens at most its own `connections`)
    max_connections_per_server: int | None = Field(default=None, ge=1, le=10_000)

    @field_validator("queue")
    @classmethod
    def _redis_url(cls, queue: str | None) -> str | None:
        if queue is not None and not queue.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"{queue!r} is not a Redis URL (redis://HOST:PORT/DB)")
        return queue

    @model_validator(mode="after")
    def _lease_outlives_heartbeats(self) -> FleetSettings:
        # a lease must survive a late heartbeat or two, or a live worker loses its account
        if self.lease < 2 * self.heartbeat:
            raise ValueError(
                f"lease ({self.lease} s) must be at least twice heartbeat ({self.heartbeat} s)"
            )
        return self
