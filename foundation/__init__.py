"""The bottom layer both tools share: error tree, settings base, offload, progress, processes."""

from foundation.errors import *  # noqa: F403  (the public error tree)
from foundation.errors import __all__ as _errors

__all__ = list(_errors)
