"""Shared test configuration. Server fixtures live in tests/fixtures/<server>.py, one per server."""

from __future__ import annotations

import os

import pytest

from foundation.mode import Mode

pytest_plugins = [
    "tests.fixtures.web",
    "tests.fixtures.faults",
    "tests.fixtures.crawls",
    "tests.fixtures.imap",
    "tests.fixtures.oauth",
    "tests.fixtures.proxy",
    "tests.fixtures.redis",
]

SLOW = os.environ.get("FETCHLAB_SLOW") == "1"


@pytest.fixture(scope="session")
def slow_size() -> bool:
    """True when the full (benchmark-like) sizes should run; CI runs the quick sizes."""
    return SLOW


@pytest.fixture(params=list(Mode), ids=[m.value for m in Mode])
def mode(request: pytest.FixtureRequest) -> Mode:
    """Every concurrency mode: an integration scenario that takes ``mode`` runs in all five."""
    return Mode(request.param)
