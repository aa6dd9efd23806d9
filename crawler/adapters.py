"""Binds the crawler core's library ports: the core imports nothing but the standard library, its
own modules and the foundation, so the well-kept libraries it relies on are plugged in here, once,
when the ``crawler`` package is imported (``crawler/__init__.py``), before any module of it runs.

- URL canonical form, slow path: w3lib's ``canonicalize_url`` (fragments dropped);
  :func:`crawler.core.urls.bind_canonicalizer`.
- robots.txt matching (RFC 9309, longest match, wildcards): protego;
  :func:`crawler.core.robots.bind_matcher`.
"""

from __future__ import annotations

from functools import partial

from protego import Protego
from w3lib.url import canonicalize_url

from crawler.core import robots, urls

__all__ = ["bind"]


def bind() -> None:
    urls.bind_canonicalizer(partial(canonicalize_url, keep_fragments=False))
    robots.bind_matcher(Protego.parse)
