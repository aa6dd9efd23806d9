"""``index.cdxj``: the sorted CDXJ index pywb and ReplayWeb.page use to replay the archive.

Built with cdxj-indexer (the Webrecorder tool, so the format is exactly what the replay tools
expect) over every WARC file, written to a temporary file and renamed, so a crash never leaves a
half index. Lookups for tests and ``crawler stats`` go through :func:`lookup`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import surt  # type: ignore[import-untyped]
from cdxj_indexer.main import write_cdx_index

from modes._exceptions import StorageError

__all__ = ["build_index", "iter_index", "lookup", "url_key"]


def url_key(url: str) -> str:
    """The SURT key a CDXJ line starts with."""
    return str(surt.surt(url))


def build_index(out: Path, warcs: Sequence[Path]) -> Path:
    """(Re)write ``out/index.cdxj`` over ``warcs``; returns its path."""
    target = out / "index.cdxj"
    tmp = out / "index.cdxj.tmp"
    try:
        if not warcs:
            tmp.write_text("")
        else:
            write_cdx_index(
                str(tmp),
                [str(p) for p in warcs],
                {"sort": True, "post_append": False, "dir_root": str(out)},
            )
        os.replace(tmp, target)
    except OSError as exc:
        raise StorageError(f"cannot write {target}: {exc}") from exc
    return target


def iter_index(path: Path) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(urlkey, timestamp, fields) for each line of a CDXJ file."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            key, ts, rest = line.rstrip("\n").split(" ", 2)
            yield key, ts, json.loads(rest)


def lookup(path: Path, url: str) -> list[dict[str, Any]]:
    """Every index entry whose SURT key is ``url``'s (a linear scan: tests and small archives)."""
    key = url_key(url)
    return [fields for k, _, fields in iter_index(path) if k == key]
