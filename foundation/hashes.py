"""Hash functions that load OpenSSL only when a digest is first made.

Why: ``import hashlib`` loads OpenSSL's libcrypto, 3.2-3.3 MiB of RSS in a process that has not
loaded it yet (measured 2026-12-07: the crawl coordinator's imports 29.3 MiB with it, 26.0-26.1
without). The coordinator of ``--mode processes`` imports the WARC, WACZ and naming code that
hashes, yet the workers make every digest, and they load OpenSSL for TLS anyway. BLAKE2b, the
crawler's URL fingerprint, is CPython's own ``_blake2`` (what ``hashlib.blake2b`` is), so it
never needs OpenSSL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

try:
    from _blake2 import blake2b
except ImportError:  # a CPython built without its own BLAKE2: hashlib's
    from hashlib import blake2b

if TYPE_CHECKING:
    from hashlib import _Hash

__all__ = ["blake2b", "sha1", "sha256"]


def sha1(data: bytes = b"") -> _Hash:
    """``hashlib.sha1(data)`` (OpenSSL's, the fastest here), importing hashlib on first use."""
    import hashlib

    return hashlib.sha1(data)


def sha256(data: bytes = b"") -> _Hash:
    """``hashlib.sha256(data)``, importing hashlib on first use."""
    import hashlib

    return hashlib.sha256(data)
