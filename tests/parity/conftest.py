"""Fixtures of the parity tests."""

from tests.parity._lifecycle import runs

__all__ = ["runs"]
