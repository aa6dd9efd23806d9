"""Binds the crawler core's library ports: the core imports nothing but the standard library, its
own modules and the foundation, so the well-kept libraries it relies on are plugged in here, once,
when the ``crawler`` package is imported (``crawler/__init__.py``), before any module of it runs.

- URL canonical form, slow path: w3lib's ``canonicalize_url`` (fragments dropped);
  :func:`crawler.core.urls.bind_canonicalizer`.
- robots.txt matching (RFC 9309, longest match, wildcards): protego;
  :func:`crawler.core.robots.bind_matcher`.
"""

from __future__ import annotations

from crawler.core import robots, urls
from crawler.core.robots import RobotsMatcher

__all__ = ["bind"]

# The libraries are imported at their first use, not with the package: every process that reads
# the settings imports ``crawler`` (the [crawler] section), the mail tool's too, and w3lib's URL
# module alone pulls in urllib.request and http.client (~9 MB of RSS, ~35 ms of CPU).


def _canonicalize(url: str) -> str:
    from w3lib.url import canonicalize_url

    return canonicalize_url(url, keep_fragments=False)


def _parse_robots(text: str) -> RobotsMatcher:
    from protego import Protego

    return Protego.parse(text)


def bind() -> None:
    urls.bind_canonicalizer(_canonicalize)
    robots.bind_matcher(_parse_robots)
