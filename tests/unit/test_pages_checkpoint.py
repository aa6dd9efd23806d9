"""The pages checkpoint: the frontier's ``states`` query and :class:`PagesCheckpoint`.

The promise under test: every ``pages.jsonl`` line before the checkpoint has its URL marked done
or failed in the frontier, and after a crash the checkpoint moves past re-applied lines (those
whose URL was marked already, or still leased) as soon as the run starts, held back only by
lines whose URL waits to be leased again.
"""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crawler.core.checkpoint import PagesCheckpoint, Resumed
from crawler.core.frontier import (
    DONE,
    FAILED,
    LEASED,
    QUEUED,
    Frontier,
    MemoryFrontier,
    NewURL,
)
from crawler.frontier_sqlite import SqliteFrontier
from crawler.pages import CHECKPOINT_EVERY, CHECKPOINT_KEY, resume_checkpoint, save_checkpoint


def url(name: str) -> str:
    return f"http://example.com/{name}"


def line(name: str, error: str | None = None) -> bytes:
    row = {"url": url(name), "status": 200, "error_class": error}
    return json.dumps(row, separators=(",", ":")).encode() + b"\n"


def ends(lines: list[bytes], start: int = 0) -> list[int]:
    out, pos = [], start
    for raw in lines:
        pos += len(raw)
        out.append(pos)
    return out


@pytest.fixture(params=["memory", "sqlite"])
def frontier(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Frontier]:
    f: Frontier = MemoryFrontier() if request.param == "memory" else SqliteFrontier(tmp_path / "s")
    yield f
    with contextlib.suppress(Exception):
        f.close()


def setup_states(f: Frontier, states: dict[str, int]) -> None:
    """Put each URL named in ``states`` in that state (lease order = insertion order)."""
    f.add(NewURL(url(n), 0) for n in states)
    items = f.lease(len(states), 0.0)
    for item in items:
        name = item.url.rsplit("/", 1)[1]
        if states[name] == DONE:
            f.complete(item.url)
        elif states[name] == FAILED:
            f.fail(item.url)
        elif states[name] == QUEUED:
            f.retry(item.url, 0.0)


# -- states() ---------------------------------------------------------------------------------


def test_states_reports_known_urls_only(frontier: Frontier) -> None:
    setup_states(frontier, {"q": QUEUED, "l": LEASED, "d": DONE, "f": FAILED})
    got = frontier.states([url("q"), url("l"), url("d"), url("f"), url("never"), url("d")])
    assert got == {url("q"): QUEUED, url("l"): LEASED, url("d"): DONE, url("f"): FAILED}
    assert frontier.states([]) == {}


def test_states_in_chunks(tmp_path: Path) -> None:
    with SqliteFrontier(tmp_path / "s") as f:
        f.add(NewURL(url(str(i)), 0) for i in range(1200))
        got = f.states([url(str(i)) for i in range(0, 1300)])
    assert len(got) == 1200 and set(got.values()) == {QUEUED}


# -- PagesCheckpoint: resume ------------------------------------------------------------------


def test_resume_sorts_the_lines_after_a_crash(frontier: Frontier) -> None:
    setup_states(frontier, {"d": DONE, "f": FAILED, "l": LEASED, "le": LEASED, "q": QUEUED})
    lines = [line("d"), line("f", "HTTPStatusError"), line("l"), line("le", "FetchTimeout")]
    lines += [line("q"), line("unknown")]
    starts = [0, *ends(lines)[:-1]]
    ckpt = PagesCheckpoint()
    assert ckpt.resume(frontier, lines) == Resumed(lines=6, marked=2, applied=2, waiting=2)
    # the leased ones were marked as their lines say, at once
    assert frontier.states([url("l"), url("le")]) == {url("l"): DONE, url("le"): FAILED}
    # only the waiting lines hold the checkpoint, from the first of them
    assert ckpt.waiting == 2
    assert ckpt.offset == starts[4]
    frontier.release_leases()
    [item] = frontier.lease(5, 0.0)
    assert item.url == url("q")
    assert ckpt.take(frontier, item.url)
    assert frontier.states([url("q")]) == {url("q"): DONE}
    assert ckpt.offset == starts[5]
    assert not ckpt.take(frontier, item.url)  # applied once


def test_resume_with_everything_marked_moves_to_the_end(frontier: Frontier) -> None:
    # the case that used to hold the checkpoint for the whole run
    setup_states(frontier, {"a": DONE, "b": DONE, "c": FAILED})
    lines = [line("a"), line("b"), line("c", "ConnectError")]
    ckpt = PagesCheckpoint(40)
    assert ckpt.resume(frontier, lines) == Resumed(3, 3, 0, 0)
    assert ckpt.offset == 40 + ends(lines)[-1]
    assert ckpt.due(0.0) == ckpt.offset


def test_resume_skips_foreign_lines_and_stops_at_a_torn_one(frontier: Frontier) -> None:
    setup_states(frontier, {"a": LEASED, "b": LEASED, "c": LEASED})
    lines = [line("a"), b"not json\n", b"[1, 2]\n", b'{"no_url": 1}\n', line("b"), line("c")[:-1]]
    ckpt = PagesCheckpoint()
    assert ckpt.resume(frontier, lines) == Resumed(2, 0, 2, 0)
    assert ckpt.offset == ends(lines)[-2]  # up to b's line: the torn line is not counted
    assert frontier.states([url("c")]) == {url("c"): LEASED}


def test_resume_applies_a_repeated_url_once(frontier: Frontier) -> None:
    setup_states(frontier, {"a": LEASED})
    assert PagesCheckpoint().resume(frontier, [line("a"), line("a")]) == Resumed(2, 0, 1, 0)
    assert frontier.states([url("a")]) == {url("a"): DONE}


def test_resume_in_chunks(tmp_path: Path) -> None:
    names = {str(i): (LEASED if i % 3 else DONE) for i in range(4500)}
    with SqliteFrontier(tmp_path / "s") as f:
        setup_states(f, names)
        got = PagesCheckpoint().resume(f, (line(n) for n in names))
        assert got == Resumed(4500, 1500, 3000, 0)
        assert f.counts().done == 4500


def test_take_keeps_the_line_when_the_mark_fails() -> None:
    f = MemoryFrontier()
    setup_states(f, {"q": QUEUED})
    ckpt = PagesCheckpoint()
    ckpt.resume(f, [line("q")])
    with pytest.raises(KeyError):
        ckpt.take(f, url("q"))  # not leased: the mark raises
    assert ckpt.waiting == 1 and ckpt.offset == 0


# -- PagesCheckpoint: this run's lines and saving ---------------------------------------------


def test_marked_and_due() -> None:
    ckpt = PagesCheckpoint(100, every=1.0)
    assert ckpt.offset == 100 and ckpt.due(0.0) is None
    ckpt.begin()
    ckpt.marked(250)
    assert ckpt.due(5.0) == 250
    ckpt.note_saved(250, 5.0)
    assert ckpt.saved == 250 and ckpt.due(5.1) is None
    ckpt.begin()
    ckpt.marked(300)
    assert ckpt.due(5.5) is None  # saved less than a second ago
    assert ckpt.due(5.5, force=True) == 300
    assert ckpt.due(6.0) == 300


def test_waiting_line_holds_new_lines_back() -> None:
    f = MemoryFrontier()
    setup_states(f, {"q": QUEUED})
    ckpt = PagesCheckpoint(10)
    ckpt.resume(f, [line("q")])
    ckpt.begin()
    ckpt.marked(10_000)  # this run's lines, after the waiting one
    assert ckpt.offset == 10
    assert ckpt.due(0.0, force=True) is None
    [item] = f.lease(1, 0.0)
    assert ckpt.take(f, item.url)
    assert ckpt.offset == 10_000


def test_unfinished_batch_freezes_the_checkpoint() -> None:
    ckpt = PagesCheckpoint()
    ckpt.begin()
    ckpt.marked(100)
    ckpt.begin()  # lines written, then KeyboardInterrupt before the marks: no marked()
    assert ckpt.offset == 100
    ckpt.begin()
    ckpt.marked(300)  # cannot vouch for the interrupted batch's lines
    assert ckpt.offset == 100
    assert ckpt.due(0.0, force=True) == 100


_STATE = st.sampled_from(["done", "failed", "leased", "queued", "unknown"])


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(st.tuples(_STATE, st.booleans()), min_size=0, max_size=25),
    new_lines=st.integers(0, 3),
    order=st.randoms(use_true_random=False),
)
def test_checkpoint_never_passes_an_unmarked_line(
    rows: list[tuple[str, bool]], new_lines: int, order: random.Random
) -> None:
    """Any mix of line kinds, any lease order: the checkpoint covers only marked lines, and
    ends at the end of the file once every waiting line is applied."""
    f = MemoryFrontier()
    names = {f"u{i}": kind for i, (kind, _) in enumerate(rows)}
    code = {"done": DONE, "failed": FAILED, "leased": LEASED, "queued": QUEUED}
    setup_states(f, {n: code[k] for n, k in names.items() if k != "unknown"})
    lines = [line(f"u{i}", None if ok else "ConnectError") for i, (_, ok) in enumerate(rows)]
    saved = 7
    line_ends = ends(lines, saved)
    ckpt = PagesCheckpoint(saved)
    ckpt.resume(f, lines)
    f.release_leases()

    def check() -> None:
        states = f.states([url(n) for n in names])
        for i, end in enumerate(line_ends):
            if end <= ckpt.offset:
                assert states.get(url(f"u{i}")) in (DONE, FAILED)

    check()
    # this run: new URLs fetched and marked, interleaved with the waiting ones leased again
    tail = line_ends[-1] if line_ends else saved
    f.add(NewURL(url(f"new{j}"), 1) for j in range(new_lines))
    leased = f.lease(100, 0.0)
    order.shuffle(leased)
    for item in leased:
        if not ckpt.take(f, item.url):
            ckpt.begin()
            f.complete(item.url)
            tail += 50
            ckpt.marked(tail)
        check()
    for n, kind in names.items():  # an unknown URL turns up as a link, then is leased
        if kind == "unknown":
            f.add([NewURL(url(n), 1)])
            [item] = f.lease(1, 0.0)
            assert ckpt.take(f, item.url)
            check()
    assert ckpt.waiting == 0
    assert ckpt.offset == tail
    assert f.counts().queued == f.counts().leased == 0


# -- the file and meta steps (crawler.pages_commit) ---------------------------------------------


def test_resume_checkpoint_reads_after_the_saved_offset(tmp_path: Path) -> None:
    pages = tmp_path / "pages.jsonl"
    before, after = [line("a"), line("b")], [line("c"), line("d")]
    pages.write_bytes(b"".join(before + after))
    with SqliteFrontier(tmp_path / "s") as f:
        setup_states(f, {"a": DONE, "b": DONE, "c": DONE, "d": LEASED})
        f.set_meta(CHECKPOINT_KEY, str(ends(before)[-1]))
        ckpt = resume_checkpoint(f, pages)
        assert ckpt.saved == ends(before)[-1]
        assert ckpt.every == CHECKPOINT_EVERY
        assert ckpt.offset == pages.stat().st_size
        assert f.states([url("d")]) == {url("d"): DONE}
        save_checkpoint(f, ckpt)
        assert f.get_meta(CHECKPOINT_KEY) == str(pages.stat().st_size)
        # nothing moved: nothing written
        f.set_meta(CHECKPOINT_KEY, "1")
        save_checkpoint(f, ckpt, force=True)
        assert f.get_meta(CHECKPOINT_KEY) == "1"


def test_resume_checkpoint_clamps_to_the_file(tmp_path: Path) -> None:
    pages = tmp_path / "pages.jsonl"
    pages.write_bytes(line("a"))
    with SqliteFrontier(tmp_path / "s") as f:
        f.set_meta(CHECKPOINT_KEY, "99999")  # saved before a power cut shortened the file
        ckpt = resume_checkpoint(f, pages)
        assert ckpt.saved == ckpt.offset == len(line("a"))


def test_resume_checkpoint_without_a_file(tmp_path: Path) -> None:
    with SqliteFrontier(tmp_path / "s") as f:
        ckpt = resume_checkpoint(f, tmp_path / "missing.jsonl")
        assert ckpt.offset == 0 and ckpt.waiting == 0


def test_save_checkpoint_at_most_once_a_second(tmp_path: Path) -> None:
    with SqliteFrontier(tmp_path / "s") as f:
        ckpt = PagesCheckpoint(every=3600.0)
        ckpt.begin()
        ckpt.marked(10)
        save_checkpoint(f, ckpt)
        assert f.get_meta(CHECKPOINT_KEY) == "10"
        ckpt.begin()
        ckpt.marked(20)
        save_checkpoint(f, ckpt)
        assert f.get_meta(CHECKPOINT_KEY) == "10"
        save_checkpoint(f, ckpt, force=True)
        assert f.get_meta(CHECKPOINT_KEY) == "20"


def test_checkpoint_commits_with_the_marks_before_it(tmp_path: Path) -> None:
    """The meta write commits the grouped transaction: a crash right after it (no close) keeps
    the marks the checkpoint covers."""
    path = tmp_path / "s"
    f = SqliteFrontier(path)
    setup_states(f, {"a": LEASED})
    f.complete(url("a"))  # pending in the grouped transaction
    f.set_meta(CHECKPOINT_KEY, "123")
    other = SqliteFrontier(path)  # a second connection sees only what is committed
    try:
        assert other.states([url("a")]) == {url("a"): DONE}
        assert other.get_meta(CHECKPOINT_KEY) == "123"
    finally:
        other.close()
        f.close()
