"""The pages checkpoint: how far ``pages.jsonl`` (the archive's commit log) is applied to the
frontier. Every crawl driver (the asyncio engine and the coordinator of the other modes) shares
:class:`PagesCheckpoint`, so every mode keeps the same promise: the saved offset never covers a
line whose URL is not marked done or failed. Pure: the caller reads the file and keeps the time.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from crawler.core.frontier import DONE, FAILED, LEASED, Frontier
from crawler.core.urls import fingerprint

__all__ = ["PagesCheckpoint", "Resumed"]

_RESUME_CHUNK = 2000  # pages.jsonl lines per states() query at start-up


@dataclass(frozen=True)
class Resumed:
    """What start-up found in the ``pages.jsonl`` lines after the saved checkpoint."""

    lines: int = 0  # complete lines read after the saved offset
    marked: int = 0  # the URL was marked already: the crash came after the mark
    applied: int = 0  # the URL was still leased by the crashed run: marked now
    waiting: int = 0  # the URL was queued (or unknown): marked when leased, never fetched twice


class PagesCheckpoint:
    """How far ``pages.jsonl`` is applied to the frontier: the ``pages_checkpoint`` offset.

    Every line before :attr:`offset` has its URL marked done or failed in the frontier, so a
    restart reads only the lines after the saved offset (:meth:`resume`). A crash leaves three
    kinds of lines there, told apart with :meth:`Frontier.states`:

    * the URL is marked already (the crash came between the mark and the next save, so about one
      save interval of lines): nothing to do;
    * the URL is still leased (the crash came between the line and the mark): marked now;
    * the URL is queued, or unknown to the frontier (a run wrote the line, then released the
      lease without marking it): it waits here and is marked instead of fetched when leased again
      (:meth:`take`).

    Only waiting lines hold the checkpoint back, and only up to the first of them; lines written
    in this run count once the driver reports them marked, in write order (:meth:`begin` before
    a batch's lines or marks, :meth:`marked` after its last mark). The drivers share this class
    so that every mode keeps the same promise. Pure: the caller reads the file, keeps the time
    and writes what :meth:`due` returns.
    """

    def __init__(self, saved: int = 0, *, every: float = 1.0) -> None:
        self.saved = saved  # the offset the frontier holds
        self.every = every  # seconds between saves
        self._saved_at = float("-inf")
        self._marked = saved  # end of the last line whose URL is marked, lines in write order
        self._waiting: dict[bytes, tuple[bool, int]] = {}  # fingerprint -> (ok, line start)
        self._floor: int | None = None  # start of the first waiting line (cache)
        self._busy = False  # between begin() and marked()
        self._frozen = False  # a batch never reached marked(): its lines may be unmarked

    @property
    def waiting(self) -> int:
        """Lines from before a crash whose URL waits to be leased again."""
        return len(self._waiting)

    @property
    def offset(self) -> int:
        """The pages.jsonl offset up to which every line's URL is marked in the frontier."""
        if not self._waiting:
            return self._marked
        if self._floor is None:
            self._floor = min(start for _, start in self._waiting.values())
        return min(self._floor, self._marked)

    def resume(self, frontier: Frontier, lines: Iterable[bytes]) -> Resumed:
        """Apply the lines that follow the saved offset, read from pages.jsonl from there (each
        with its newline; a torn line ends them). Call before ``release_leases``, which would
        make a URL leased by the crashed run look like one queued again."""
        pos = self.saved
        tally = [0, 0, 0, 0]  # as Resumed
        batch: dict[str, tuple[bool, int]] = {}
        for raw in lines:
            if not raw.endswith(b"\n"):
                break
            start, pos = pos, pos + len(raw)
            try:
                row = json.loads(raw)
            except ValueError:
                continue  # not a line the crawler wrote (the repair leaves none): no URL in it
            if not isinstance(row, dict) or not isinstance(row.get("url"), str):
                continue
            tally[0] += 1
            batch.setdefault(row["url"], (not row.get("error_class"), start))
            if len(batch) >= _RESUME_CHUNK:
                self._apply(frontier, batch, tally)
                batch = {}
        self._apply(frontier, batch, tally)
        self._marked = pos
        return Resumed(*tally)

    def _apply(
        self, frontier: Frontier, batch: dict[str, tuple[bool, int]], tally: list[int]
    ) -> None:
        if not batch:
            return
        states = frontier.states(list(batch))
        done: list[str] = []
        for url, (ok, start) in batch.items():
            state = states.get(url)
            if state in (DONE, FAILED):
                tally[1] += 1
            elif state == LEASED:
                tally[2] += 1
                if ok:
                    done.append(url)
                else:
                    frontier.fail(url)
            else:
                tally[3] += 1
                self._waiting.setdefault(fingerprint(url), (ok, start))
                self._floor = None
        complete_many = getattr(frontier, "complete_many", None)
        if complete_many is not None:
            complete_many(done)
        else:
            for url in done:
                frontier.complete(url)

    def take(self, frontier: Frontier, url: str) -> bool:
        """True when the leased ``url`` has a line from before a crash: it is marked now (done
        or failed as its line says) and must not be fetched."""
        if not self._waiting:  # the usual case: no fingerprint per lease
            return False
        fp = fingerprint(url)
        entry = self._waiting.get(fp)
        if entry is None:
            return False
        ok, start = entry
        (frontier.complete if ok else frontier.fail)(url)
        # forgotten only once marked: if the mark raised, the line still holds the checkpoint
        del self._waiting[fp]
        if start == self._floor:
            self._floor = None
        return True

    def begin(self) -> None:
        """Lines are about to be written or marked; :meth:`marked` follows the last mark.

        A batch that never reached :meth:`marked` (an error, or a Ctrl-C raising
        KeyboardInterrupt between its lines and its marks) leaves lines whose URLs may not be
        marked: the checkpoint then stays where it is for the rest of the run (the next start-up
        sorts those lines out with the frontier's states), as a later batch's :meth:`marked`
        cannot vouch for them.
        """
        if self._busy:
            self._frozen = True
        self._busy = True

    def marked(self, end: int) -> None:
        """The URL of the line ending at ``end``, and of every line of this run before it, is
        marked in the frontier."""
        if not self._frozen:
            self._marked = end
        self._busy = False

    def due(self, now: float, *, force: bool = False) -> int | None:
        """The offset to save now: None when it has not moved, or (unless ``force``) when the
        last save is less than ``every`` seconds old."""
        offset = self.offset
        if offset == self.saved or (not force and now - self._saved_at < self.every):
            return None
        return offset

    def note_saved(self, offset: int, now: float) -> None:
        """The frontier holds ``offset`` since ``now``."""
        self.saved = offset
        self._saved_at = now
