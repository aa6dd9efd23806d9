"""``pages.jsonl``: one JSON object per crawled URL, appended after its WARC records are written.

The file doubles as the archive's commit log: a line exists only once every record of that URL is
in the WARC file, and it names the WARC file and the offset where those records end. Resume reads
the last complete line to know where the archive is whole (see :mod:`crawler.warc`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from crawler.core.checkpoint import PagesCheckpoint
from foundation.errors import StorageError

if TYPE_CHECKING:  # only for annotations: this module stays importable without asyncio
    from crawler.core.flow import Outcome
    from crawler.core.frontier import Frontier, FrontierItem
    from crawler.parse import ParsedPage

__all__ = [
    "CHECKPOINT_EVERY",
    "CHECKPOINT_KEY",
    "PAGE_FIELDS",
    "PagesLog",
    "iso_time",
    "iter_pages",
    "last_complete_line",
    "page_row",
    "resume_checkpoint",
    "save_checkpoint",
]

# the frontier meta key under which every mode saves how much of pages.jsonl is committed
CHECKPOINT_KEY = "pages_checkpoint"

# Every line has these keys (null when unknown), in this order.
PAGE_FIELDS = (
    "url",
    "final_url",
    "status",
    "content_type",
    "bytes",
    "sha1",
    "fetched_at",
    "elapsed_ms",
    "depth",
    "n_links",
    "title",
    "error_class",
    "error",
    "truncated",
    "retries",
    "hops",
    "revisit",
    "warc",
    "warc_offset",
    "warc_end",
)


class PagesLog:
    """Append-only writer (one thread at a time)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._fh: IO[bytes] = open(path, "ab")  # noqa: SIM115 (closed in close())
        except OSError as exc:
            raise StorageError(f"cannot open {path}: {exc.strerror}") from exc
        self.offset = self._fh.tell()

    def append(self, row: Mapping[str, Any]) -> int:
        """Write one line and flush it to the OS; returns the file offset after it."""
        line = json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n"
        data = line.encode("utf-8", "surrogatepass")
        # one write() call per line: a SIGKILL cannot leave half of it behind in our buffer
        self._fh.write(data)
        self._fh.flush()
        self.offset += len(data)
        return self.offset

    def fsync(self) -> None:
        os.fsync(self._fh.fileno())

    def fileno(self) -> int:
        return self._fh.fileno()

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.flush()
            self._fh.close()


def iter_pages(path: Path, start: int = 0) -> Iterator[dict[str, Any]]:
    """Every complete line of ``path`` from byte ``start`` (a torn last line is ignored)."""
    if not path.exists():
        return
    with open(path, "rb") as fh:
        fh.seek(start)
        for raw in fh:
            if not raw.endswith(b"\n"):
                return
            try:
                row = json.loads(raw)
            except ValueError:
                return
            if isinstance(row, dict):
                yield row


@dataclass(frozen=True)
class _Tail:
    offset: int  # end of the last complete line (truncate here)
    row: dict[str, Any] | None


def last_complete_line(path: Path, block: int = 1 << 16) -> _Tail:
    """The last complete, valid line of ``path`` and the offset just after it.

    Reads backwards block by block, so the cost does not grow with the file.
    """
    if not path.exists():
        return _Tail(0, None)
    with open(path, "rb") as fh:
        end = fh.seek(0, os.SEEK_END)
        pos = end
        buf = b""
        while True:
            start = max(0, pos - block)
            fh.seek(start)
            buf = fh.read(pos - start) + buf
            pos = start
            # candidate line ends, newest first
            cut = buf.rfind(b"\n")
            while cut >= 0:
                line_start = buf.rfind(b"\n", 0, cut) + 1
                if line_start == 0 and pos > 0:
                    break  # the line may begin before this block: read more
                try:
                    row = json.loads(buf[line_start:cut])
                except ValueError:
                    row = None
                if isinstance(row, dict):
                    return _Tail(pos + cut + 1, row)
                cut = line_start - 1
            if pos == 0:
                return _Tail(0, None)


def iso_time(ts: float) -> str:
    """UTC time with milliseconds, as pages.jsonl writes it."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


def page_row(
    item: FrontierItem, outcome: Outcome, parsed: ParsedPage | None
) -> tuple[dict[str, Any], str | None]:
    """The pages.jsonl row of one URL (before the writer adds digest and WARC position) and its
    final error class (None: the URL is done, else failed). Shared by every mode's driver, so
    all modes write the same rows."""
    final = outcome.final
    error_class, error = outcome.error_class, outcome.error
    if parsed is not None and parsed.error and error_class is None:
        error_class, _, error = parsed.error.partition(": ")
    row: dict[str, Any] = {
        "url": item.url,
        "final_url": outcome.final_url,
        "status": outcome.status,
        "content_type": final.header("Content-Type") if final else None,
        "bytes": len(final.body) if final else 0,
        "sha1": None,
        "fetched_at": iso_time(final.started_at) if final else iso_time(time.time()),
        "elapsed_ms": round(sum(h.elapsed for h in outcome.hops) * 1000, 1),
        "depth": item.depth,
        "n_links": parsed.n_links if parsed else None,
        "title": parsed.title if parsed else None,
        "error_class": error_class,
        "error": error,
        "truncated": bool(final and final.truncated),
        "retries": outcome.retries,
        "hops": len(outcome.hops),
    }
    return row, error_class


# -- the pages checkpoint's file and clock steps, shared by every mode's driver (the asyncio
# engine's crawler.commit.CommitPipeline and the other modes' coordinator); the bookkeeping
# between them is crawler.core.checkpoint.PagesCheckpoint

CHECKPOINT_EVERY = 1.0  # seconds between pages checkpoints saved in the frontier


def resume_checkpoint(frontier: Frontier, pages: Path) -> PagesCheckpoint:
    """The saved pages checkpoint, with the pages.jsonl lines after it applied to ``frontier``.

    Call after the repair (only complete lines are left) and before ``release_leases``.
    """
    get_meta = getattr(frontier, "get_meta", None)
    raw = get_meta(CHECKPOINT_KEY) if get_meta is not None else None
    saved = int(raw) if raw else 0
    try:
        fh = open(pages, "rb")  # noqa: SIM115 (closed below)
    except FileNotFoundError:
        return PagesCheckpoint(0, every=CHECKPOINT_EVERY)
    except OSError as exc:
        raise StorageError(f"cannot read {pages}: {exc.strerror}") from exc
    with fh:
        # a power cut can leave the file shorter than a checkpoint saved before it
        start = min(saved, fh.seek(0, os.SEEK_END))
        fh.seek(start)
        checkpoint = PagesCheckpoint(start, every=CHECKPOINT_EVERY)
        if get_meta is not None:  # without saved meta the lines are not the frontier's
            checkpoint.resume(frontier, fh)
    return checkpoint


def save_checkpoint(
    frontier: Frontier, checkpoint: PagesCheckpoint, *, force: bool = False
) -> None:
    """Save the checkpoint in the frontier's meta when it moved (at most once a second)."""
    set_meta = getattr(frontier, "set_meta", None)
    if set_meta is None:
        return
    now = time.monotonic()
    offset = checkpoint.due(now, force=force)
    if offset is not None:
        # the SQLite frontier commits the marks made before it in the same transaction
        set_meta(CHECKPOINT_KEY, str(offset))
        checkpoint.note_saved(offset, now)
