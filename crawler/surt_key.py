"""SURT keys from the ``surt`` library (pywb's and cdxj-indexer's), without what it does not use.

``surt.handyurl`` imports ``tldextract`` at its top for two methods (public suffixes) that
``surt.surt`` never calls; ``tldextract`` imports ``requests``, ``urllib3``, ``filelock`` and
``idna``: 20 MB of resident memory and 65 ms of start-up in every process that makes a CDXJ
line (measured: ``import surt`` 70 ms / +20 MB, with the stand-in 6 ms / +2 MB). In the
processes mode that is the fork server and each worker: 60 MB of a 280 MB crawl. A stand-in
module takes ``tldextract``'s name until something asks it for an attribute, and only then
imports the real one, so a caller that does use it (``handyurl.getPublicSuffix``) still works.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__all__ = ["url_key"]


def _defer_import(name: str) -> None:
    """Import module ``name`` on the first use of one of its attributes, not on ``import``."""
    if name in sys.modules:
        return
    stand_in = types.ModuleType(name)

    def load(attr: str) -> Any:
        if sys.modules.get(name) is stand_in:
            del sys.modules[name]
        return getattr(importlib.import_module(name), attr)

    stand_in.__getattr__ = load  # type: ignore[method-assign]  # PEP 562's module __getattr__
    sys.modules[name] = stand_in


_defer_import("tldextract")
_surt: Any = importlib.import_module("surt")


def url_key(url: str) -> str:
    """The SURT key a CDXJ line starts with (``surt.surt``'s default canonicalization)."""
    return str(_surt.surt(url))
