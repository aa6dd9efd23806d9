"""Shared by both tools: mode drivers, bounded process-pool offload, progress, settings."""

from modes._exceptions import *  # noqa: F403  (the public error tree)
from modes._exceptions import __all__ as _errors

__all__ = list(_errors)
