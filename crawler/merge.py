"""``crawler merge OUT DIR...``: one archive folder over the folders of a distributed job's workers.

Every worker of a Redis job writes its own WARC series and pages.jsonl in its own ``--out``. The
merged folder is an ordinary crawl folder that ``crawler wacz``, ``crawler replay`` and
``crawler stats`` take as is:

- ``OUT/warc/``: each source's WARC files, hard-linked when OUT is on the same file system (else
  copied), renamed into one worker series each: ``fetchlab-w{N}-{seq}.warc.gz``, N numbering
  the (source folder, source series) pairs in the order given;
- ``OUT/pages.jsonl``: every source's lines, the ``warc`` field renamed to match; a URL archived
  by two workers (possible only when a dead worker's leases were taken over before it came
  back) keeps its first line, and the count of such lines is reported;
- ``OUT/index.cdxj``: merged from each source's index parts, file names rewritten (a WARC file
  without a part is read again by cdxj-indexer).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from crawler.cdxj import build_index, index_part
from crawler.core.urls import fingerprint
from crawler.pages import iter_pages
from crawler.warc import WARC_DIR, warc_files, warc_series, worker_warc_name
from foundation.errors import StorageError, UsageError

__all__ = ["MergeReport", "merge_archives"]


@dataclass
class MergeReport:
    warcs: int = 0
    pages: int = 0
    duplicates: int = 0
    linked: int = 0  # WARC files hard-linked (the rest were copied)
    sources: list[str] = field(default_factory=list)


def _link(src: Path, dst: Path) -> bool:
    try:
        os.link(src, dst)
        return True
    except OSError:
        shutil.copyfile(src, dst)
        return False


def merge_archives(out: Path, sources: list[Path]) -> MergeReport:
    """Write the merged archive of ``sources`` into ``out`` (new or empty)."""
    if not sources:
        raise UsageError("merge needs at least one worker folder")
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"{out} is not empty: merge writes a new folder")
    report = MergeReport(sources=[str(s) for s in sources])
    try:
        (out / WARC_DIR).mkdir(parents=True, exist_ok=True)
        renames: list[dict[str, str]] = []
        series_no = 0
        for src in sources:
            if not (src / "pages.jsonl").exists():
                raise UsageError(f"{src} is not a crawl folder (no pages.jsonl)")
            names: dict[str, str] = {}
            numbers: dict[int | None, int] = {}
            for warc in warc_files(src):
                series = warc_series(warc)
                if series not in numbers:
                    numbers[series] = series_no
                    series_no += 1
                seq = int(warc.name.removesuffix(".warc.gz").rsplit("-", 1)[1])
                new = worker_warc_name(numbers[series], seq)
                report.linked += _link(warc, out / WARC_DIR / new)
                _rename_part(src, warc, out, new)
                names[warc.name] = new
                report.warcs += 1
            renames.append(names)
        seen: set[bytes] = set()
        with open(out / "pages.jsonl", "w", encoding="utf-8") as fh:
            for src, names in zip(sources, renames, strict=True):
                for row in iter_pages(src / "pages.jsonl"):
                    fp = fingerprint(str(row["url"]))
                    if fp in seen:
                        report.duplicates += 1
                        continue
                    seen.add(fp)
                    if row.get("warc"):
                        old = str(row["warc"]).rpartition("/")[2]
                        row["warc"] = f"{WARC_DIR}/{names.get(old, old)}"
                    fh.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
                    report.pages += 1
        build_index(out, warc_files(out))
    except OSError as exc:
        raise StorageError(f"cannot write the merged archive in {out}: {exc}") from exc
    return report


def _rename_part(src: Path, warc: Path, out: Path, new: str) -> None:
    """Copy ``warc``'s index part with the file name rewritten (none: cdxj-indexer reads it)."""
    part = index_part(src, warc)
    if not part.exists():
        return
    target = index_part(out, out / WARC_DIR / new)
    target.parent.mkdir(parents=True, exist_ok=True)
    old = f'"filename": "{warc.name}"'
    with open(part, encoding="utf-8") as fin, open(target, "w", encoding="utf-8") as fout:
        for line in fin:
            fout.write(line.replace(old, f'"filename": "{new}"'))
