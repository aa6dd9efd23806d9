"""Retry decisions, backoff with jitter, and Retry-After parsing."""

from __future__ import annotations

import email.utils

import pytest

from crawler.core.retry import RetryPolicy, is_retryable_status, parse_retry_after
from foundation.errors import (
    BodyTooLarge,
    ConnectError,
    ConnectionLost,
    DecodeError,
    FetchTimeout,
    TooManyRedirects,
)

P = RetryPolicy(retries=3, base=0.5, cap=60.0, jitter=0.5)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        *[(s, True) for s in (500, 502, 503, 504, 599, 429)],
        *[(s, False) for s in (400, 401, 403, 404, 408, 410, 200, 301, 304)],
    ],
)
def test_statuses(status: int, expected: bool) -> None:
    assert is_retryable_status(status) is expected
    assert P.should_retry(1, status, None) is expected


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (FetchTimeout("read timeout"), True),
        (ConnectError("refused"), True),
        (ConnectionLost("reset"), True),
        (TimeoutError(), True),
        (ConnectionResetError(), True),
        (DecodeError("bomb"), False),
        (BodyTooLarge("big"), False),
        (TooManyRedirects("loop"), False),
        (ValueError("other"), False),
    ],
)
def test_errors(error: BaseException, expected: bool) -> None:
    assert P.should_retry(1, None, error) is expected


def test_attempt_budget() -> None:
    assert [P.should_retry(n, 503, None) for n in range(1, 6)] == [True, True, True, False, False]
    assert not RetryPolicy(retries=0).should_retry(1, 503, None)


def test_exponential_backoff_bounds() -> None:
    for attempts, backoff in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0)]:
        assert P.delay(attempts, None, 0.0) == pytest.approx(backoff * 0.5)
        assert P.delay(attempts, None, 0.5) == pytest.approx(backoff)
        assert P.delay(attempts, None, 0.999999) == pytest.approx(backoff * 1.5, rel=1e-5)


def test_cap_and_no_jitter() -> None:
    assert P.delay(30, None, 0.99) == 60.0
    assert P.delay(10_000, None, 0.5) == 60.0  # no overflow
    flat = RetryPolicy(base=1.0, jitter=0.0)
    assert [flat.delay(n, None, 0.7) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]


def test_retry_after_wins_when_larger_and_is_capped() -> None:
    assert P.delay(1, 30.0, 0.5) == 30.0
    assert P.delay(4, 0.1, 0.5) == pytest.approx(4.0)
    assert P.delay(1, 86_400.0, 0.5) == 600.0
    assert P.delay(1, float("nan"), 0.5) == pytest.approx(0.5)


def test_invalid_policy() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(retries=-1)
    with pytest.raises(ValueError):
        RetryPolicy(jitter=1.5)


NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        (email.utils.formatdate(NOW + 90, usegmt=True), 90.0),
        (email.utils.formatdate(NOW - 90, usegmt=True), 0.0),
        ("Sun, 06 Nov 1994 08:49:37 GMT", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("Sun, 06 Nov 1994 08:49:37", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    got = parse_retry_after(value, NOW)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected)
