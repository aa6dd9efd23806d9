"""SURT keys from the ``surt`` library (pywb's and cdxj-indexer's), without what it does not use.

``surt.handyurl`` imports ``tldextract`` at its top for two methods (public suffixes) that
``surt.surt`` never calls; ``tldextract`` imports ``requests``, ``urllib3``, ``filelock`` and
``idna``: 20 MB of resident memory and 65 ms of start-up in every process that makes a CDXJ
line (measured: ``import surt`` 70 ms / +20 MB, with the stand-in 6 ms / +2 MB). In the
processes mode that is the fork server and each worker: 60 MB of a 280 MB crawl. A stand-in
module takes ``tldextract``'s name until something asks it for an attribute, and only then
imports the real one, so a caller that does use it (``handyurl.getPublicSuffix``) still works.

The common shape (``http(s)://host[:port]/path`` with a lower-case host name or a dotted quad, a
plain path, no query) is keyed here without the library: its key is the reversed host, the
port unless it is the scheme's default, and the lower-cased path without a trailing slash.
``surt.surt`` builds a parsed URL object and runs two canonicalizers for it (11 us a URL; this
path 1.6 us): 3.8 % of a crawl worker's busy time (py-spy, 20,000-page site). Anything else
(a query, an escape, ``.``/``..`` or empty segments, a host that is all digits, an upper-case
letter in the host) goes to the library; a test compares the two on generated URLs.
"""

from __future__ import annotations

import importlib
import re
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


_COMMON = re.compile(r"(https?)://([a-z0-9.-]+)(?::([1-9][0-9]{0,4}))?(/[A-Za-z0-9/._~-]*)?")
_DEFAULT_PORT = {"http": "80", "https": "443"}
_WWW = re.compile(r"www[0-9]*\.")
_QUAD = re.compile(
    r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])\.){3}"
    r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
)


def url_key(url: str) -> str:
    """The SURT key a CDXJ line starts with (``surt.surt``'s default canonicalization)."""
    m = _COMMON.fullmatch(url)
    if m is not None:
        key = _common_key(*m.groups())
        if key is not None:
            return key
    return str(_surt.surt(url))


def _common_key(scheme: str, host: str, port: str | None, path: str | None) -> str | None:
    """``surt.surt``'s key for a URL of the common shape, or None when the library must decide."""
    if host[0] == "." or host[-1] == "." or ".." in host:
        return None  # the library strips and merges the dots
    if not host.strip("0123456789."):
        # digits and dots: the library resolves it as an IP address (127.1, octal parts)
        if host[0] == "0" or _QUAD.fullmatch(host) is None:
            return None
    elif (www := _WWW.match(host)) is not None:
        host = host[www.end() :]
    if path:
        if "//" in path or "/./" in path or "/../" in path or path.endswith(("/.", "/..")):
            return None  # segments the library removes
        path = path.lower()
        if len(path) > 1 and path[-1] == "/":
            path = path[:-1]
    else:
        path = "/"
    if port is not None and int(port) > 65535:
        return None  # the library refuses it
    shown = "" if port is None or port == _DEFAULT_PORT[scheme] else ":" + port
    return ",".join(reversed(host.split("."))) + shown + ")" + path
