"""When and how long to wait before fetching a URL again: exponential backoff with jitter.

Pure: the random number is passed in, so tests and replays are exact. Retried are transient
failures only: connection errors, timeouts, 5xx and 429. Any other 4xx is the page's answer.
"""

from __future__ import annotations

import email.utils
import math
from dataclasses import dataclass

__all__ = ["RetryPolicy", "is_retryable_status", "parse_retry_after"]


def is_retryable_status(status: int) -> bool:
    """5xx and 429 are worth another try; everything else is final."""
    return status >= 500 or status == 429


@dataclass(frozen=True)
class RetryPolicy:
    """``retries`` extra tries after the first; waits of ``base * 2**(n-1)`` capped at ``cap``.

    ``jitter`` spreads each wait over ``[1 - jitter, 1 + jitter)`` times the backoff, so hosts
    that failed together do not come back together. A server's Retry-After wins when longer,
    up to ``max_retry_after``.
    """

    retries: int = 3
    base: float = 0.5
    cap: float = 60.0
    jitter: float = 0.5
    max_retry_after: float = 600.0

    def __post_init__(self) -> None:
        if self.retries < 0 or self.base < 0 or self.cap < 0 or not 0 <= self.jitter <= 1:
            raise ValueError(f"invalid retry policy {self}")

    def should_retry(self, attempts: int, status: int | None, error: BaseException | None) -> bool:
        """``attempts`` counts the tries made so far (1 after the first fetch)."""
        if attempts > self.retries:
            return False
        if error is not None:
            # FetchTimeout / ConnectError / ConnectionLost inherit these builtins; decode errors,
            # size caps and redirect loops do not, and would fail the same way again.
            return isinstance(error, TimeoutError | ConnectionError)
        return status is not None and is_retryable_status(status)

    def delay(self, attempts: int, retry_after: float | None, rand: float) -> float:
        """Seconds to wait before try ``attempts + 1``; ``rand`` is uniform in [0, 1)."""
        exp = min(max(attempts - 1, 0), 62)
        backoff = min(self.cap, self.base * 2.0**exp)
        wait = min(self.cap, backoff * (1.0 - self.jitter + 2.0 * self.jitter * rand))
        if retry_after is not None and math.isfinite(retry_after):
            wait = max(wait, min(retry_after, self.max_retry_after))
        return max(0.0, wait)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP-date (RFC 9110 10.2.3).

    ``now`` is the Unix time the response arrived. Unreadable values give None; dates in the
    past give 0.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        return None  # HTTP-dates are GMT; a date without a zone is not one
    return max(0.0, when.timestamp() - now)
