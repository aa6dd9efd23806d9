"""The web crawler: URL lists and whole sites into WARC, resumable."""

from crawler import adapters as _adapters

_adapters.bind()  # the core's library ports (see crawler/adapters.py), before any use
