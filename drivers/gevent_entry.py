"""Entry point of every gevent run: monkey-patch FIRST, in a process of its own, then call.

``python -m drivers.gevent_entry PACKAGE.MODULE:FUNCTION ARG...`` patches the standard library
(sockets, ssl, time.sleep, threading...) before anything else imports it, then imports the target
and calls ``FUNCTION(list_of_args)``; its int return value is the exit status.

Why a process of its own: patched threads and asyncio (or a ProcessPoolExecutor, whose management
thread becomes a greenlet and hangs) must never share a process, and patching after ``ssl`` or
``socket`` were imported leaves half the program unpatched (gevent's own warning). Before
:func:`gevent.monkey.patch_all` runs, only ``sys``, ``importlib``, gevent and the ``modes``
package's error tree (pure: no sockets, no threads) are imported.
"""

import importlib
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


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or ":" not in args[0]:
        print("usage: python -m drivers.gevent_entry MODULE:FUNCTION [ARG...]", file=sys.stderr)
        return 2
    patch()
    module_name, _, func_name = args[0].partition(":")
    target = getattr(importlib.import_module(module_name), func_name)
    code = target(args[1:])
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
