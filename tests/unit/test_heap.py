"""foundation.heap: freed C heap memory goes back to the OS during a long run."""

from __future__ import annotations

import sys

import pytest

from foundation import heap


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_trim_heap_releases_freed_memory_on_glibc() -> None:
    blocks = [bytearray(200_000) for _ in range(200)]  # ~40 MB through malloc, then freed
    del blocks
    assert heap.trim_heap() is True


def test_the_trimmer_trims_every_nth_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def fake_trim() -> bool:
        calls.append(1)
        return True

    monkeypatch.setattr(heap, "trim_heap", fake_trim)
    trimmer = heap.HeapTrimmer(every=3)
    for _ in range(7):
        trimmer.tick()
    assert len(calls) == 2
