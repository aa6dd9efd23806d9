"""Entry point of every gevent run: monkey-patch FIRST, in a process of its own, then call.

``python -m drivers.gevent_entry PACKAGE.MODULE:FUNCTION ARG...`` patches the standard library
(sockets, ssl, time.sleep, threading...) before anything else imports it, then imports the target
and calls ``FUNCTION(list_of_args)``; its int return value is the exit status.

Why a process of its own: patched threads and asyncio (or a ProcessPoolExecutor, whose management
thread becomes a greenlet and hangs) must never share a process, and patching after ``ssl`` or
``socket`` were imported leaves half the program unpatched (gevent's own warning). Before
:func:`gevent.monkey.patch_all` runs, only ``sys``, ``os``, ``importlib``, gevent, the error tree
and :mod:`foundation.lifeline` (no sockets, no threads started) are imported.

The parent (:func:`drivers.gevent_child.run_child`) starts this process with ``python -P`` in the
user's working directory: relative paths of the job (``--out``, ``password_command``) mean what
they mean in every other mode, and that directory stays off ``sys.path`` (its files cannot shadow
the project's modules).
"""

from __future__ import annotations

import importlib
import os
import sys

__all__ = ["main", "patch"]


def patch() -> None:
    """Monkey-patch the whole standard library (idempotent)."""
    try:
        from gevent import monkey
    except ImportError:  # the error tree is imported only now: it does not touch sockets
        from foundation.errors import ModeError

        raise ModeError(
            "mode 'gevent' needs gevent: pip install 'fetchlab[gevent]' (or pip install gevent)"
        ) from None
    if not monkey.is_module_patched("socket"):
        monkey.patch_all()


def _arm_lifeline() -> None:
    """End with the parent (a SIGKILLed parent cannot stop this process any other way). Its
    module touches no socket and starts no thread here, so patching after it is still safe."""
    from foundation.lifeline import OWNER_ENV, die_with_parent

    parent = os.environ.get(OWNER_ENV)
    if parent:
        die_with_parent(int(parent))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or ":" not in args[0]:
        print("usage: python -m drivers.gevent_entry MODULE:FUNCTION [ARG...]", file=sys.stderr)
        return 2
    _arm_lifeline()
    patch()
    module_name, _, func_name = args[0].partition(":")
    target = getattr(importlib.import_module(module_name), func_name)
    code = target(args[1:])
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
