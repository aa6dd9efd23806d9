"""``index.cdxj``: the sorted CDXJ index pywb and ReplayWeb.page use to replay the archive.

Each line's ``filename`` is the WARC file's plain name (``fetchlab-00000.warc.gz``), the way
cdxj-indexer and ``wb-manager`` write it: pywb looks a name up in a collection's ``archive/``
folder (or its ``archive_paths``) and a WACZ's ``archive/`` folder holds the files by name, so the
same index serves a pywb collection, ``crawler replay`` and the WACZ as it is. (A name relative to
the crawl folder, ``warc/...``, made pywb answer 503 on every lookup.)

The WARC writer appends one line per response/revisit record to a per-file part
(``.index/<warc name>.cdxj``) as it writes, in cdxj-indexer's exact format (a test compares the
two); :func:`build_index` merges the sorted parts into ``index.cdxj`` at the end of a run, so the
archive is not read back again (reading it back cost a third of the crawl's CPU). A WARC file
without a part (written by another tool) is indexed by cdxj-indexer. The index is written to a
temporary file and renamed, so a crash never leaves half an index.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from crawler.surt_key import url_key
from foundation.errors import StorageError

__all__ = [
    "build_index",
    "cdxj_line",
    "index_part",
    "iter_index",
    "lookup",
    "trim_part",
    "url_key",
]

PART_DIR = ".index"
RUN_LINES = 50_000  # index lines sorted in memory at once (~20 MB)
MERGE_FILES = 64  # sorted runs merged at once (open files)
_MIME_END = re.compile(r"[;\s]")


def index_part(out: Path, warc: Path) -> Path:
    """Where the writer keeps the index lines of ``warc``."""
    return out / PART_DIR / (warc.name.removesuffix(".warc.gz") + ".cdxj")


def cdxj_line(
    url: str,
    warc_date: str,
    mime: str | None,
    status: int,
    digest: str,
    length: int,
    offset: int,
    filename: str,
) -> str:
    """One line as cdxj-indexer writes it for a response or revisit record.

    ``filename`` may be a path: the line names its last part (see the module docstring).
    """
    fields: dict[str, str] = {"url": url}
    if mime:
        mime = _MIME_END.split(mime, 1)[0].strip()
        if mime:
            fields["mime"] = mime
    fields.update(
        status=str(status),
        digest=digest,
        length=str(length),
        offset=str(offset),
        filename=filename.rpartition("/")[2],
    )
    # WARC-Date 2026-11-21T05:11:29.838000Z -> 20261121051129
    stamp = warc_date[:19].replace("-", "").replace(":", "").replace("T", "")
    return f"{url_key(url)} {stamp} {json.dumps(fields)}\n"


def trim_part(part: Path, end: int) -> None:
    """Drop the lines of records at or after ``end`` (cut away by crash repair)."""
    if not part.exists():
        return
    keep = []
    with open(part, encoding="utf-8") as fh:
        for line in fh:
            if not line.endswith("\n"):
                break
            try:
                offset = int(json.loads(line.split(" ", 2)[2])["offset"])
            except (ValueError, KeyError, IndexError):
                break
            if offset >= end:
                break
            keep.append(line)
    tmp = part.with_suffix(".tmp")
    tmp.write_text("".join(keep), encoding="utf-8")
    os.replace(tmp, part)


def _index_with_cdxj_indexer(warc: Path, target: Path) -> None:
    """cdxj-indexer's lines for ``warc``, in record order, into ``target``."""
    from cdxj_indexer.main import write_cdx_index  # rare: keep it off the start-up path

    # no dir_root: cdxj-indexer then names the file by its plain name, as cdxj_line does
    write_cdx_index(str(target), [str(warc)], {"sort": False})


def _sorted_runs(out: Path, warc: Path, tmpdir: Path, reindex: bool) -> list[Path]:
    """One WARC file's index lines, sorted, in runs of at most :data:`RUN_LINES` lines.

    A WARC file without the writer's part (another tool wrote it), or every file with
    ``reindex``, is read by cdxj-indexer, whose lines then become the file's part: a resumed
    crawl appends to them and merges them like its own. Runs, not the whole part: one 1 GB
    WARC file of small pages has ~100,000 lines, and sorting them in memory was the crawl's
    peak RSS (measured: +90 MB at the end of a 100,000-page crawl).
    """
    part = index_part(out, warc)
    if reindex or not part.exists():
        raw = tmpdir / (warc.name + ".raw")
        _index_with_cdxj_indexer(warc, raw)
        part.parent.mkdir(exist_ok=True)
        os.replace(raw, part)
    runs: list[Path] = []
    with open(part, encoding="utf-8") as fh:
        while lines := list(itertools.islice(fh, RUN_LINES)):
            lines.sort()
            run = tmpdir / f"{warc.name}.{len(runs)}.sorted"
            with open(run, "w", encoding="utf-8") as w:
                w.writelines(lines)
            runs.append(run)
    return runs


def _merge(runs: list[Path], target: Path, scratch: Path) -> None:
    """Merge sorted ``runs`` into ``target`` streaming, at most :data:`MERGE_FILES` files open
    at once (stages in ``scratch`` in between), and remove them."""
    stage = 0
    while len(runs) > MERGE_FILES:
        merged: list[Path] = []
        for i in range(0, len(runs), MERGE_FILES):
            out = scratch / f"stage-{stage}-{i}.sorted"
            _merge_files(runs[i : i + MERGE_FILES], out)
            merged.append(out)
        runs, stage = merged, stage + 1
    _merge_files(runs, target)


def _merge_files(runs: list[Path], target: Path) -> None:
    with contextlib.ExitStack() as stack:
        files = [stack.enter_context(open(r, encoding="utf-8")) for r in runs]
        with open(target, "w", encoding="utf-8") as fh:
            fh.writelines(heapq.merge(*files))
    for r in runs:
        r.unlink()


def build_index(out: Path, warcs: Sequence[Path], *, reindex: bool = False) -> Path:
    """(Re)write ``out/index.cdxj`` over ``warcs``; returns its path.

    Lines are sorted in bounded runs, then merged streaming: memory holds :data:`RUN_LINES`
    lines, however large the archive. ``reindex`` (``crawler index``) reads every WARC file
    again instead of the lines the writer kept.
    """
    target = out / "index.cdxj"
    tmp = out / "index.cdxj.tmp"
    tmpdir = out / PART_DIR / "merge"
    try:
        tmpdir.mkdir(parents=True, exist_ok=True)
        runs = [run for w in warcs for run in _sorted_runs(out, w, tmpdir, reindex)]
        _merge(runs, tmp, tmpdir)
        os.replace(tmp, target)
        tmpdir.rmdir()
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
