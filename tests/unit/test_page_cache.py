"""fetchlab.bench.page_cache: the benchmarks' reset of the page cache before a timed run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fetchlab.bench.page_cache import fresh_page_cache


def _tree(root: Path) -> int:
    (root / "cur").mkdir(parents=True)
    (root / "cur" / "a").write_bytes(b"x" * 3000)
    (root / "b").write_bytes(b"y" * (3 << 20))  # more than one read
    (root / "link").symlink_to(root / "b")  # not read twice
    os.mkfifo(root / "fifo")  # a server's FIFO: opening it would block
    return 3000 + (3 << 20)


def test_dropped_then_the_servers_data_read_back(tmp_path: Path) -> None:
    size = _tree(tmp_path / "server")
    knob = tmp_path / "drop_caches"  # stands in for /proc/sys/vm/drop_caches
    knob.write_text("")
    (tmp_path / "urls.txt").write_bytes(b"u" * 10)  # a file is read too, not only folders
    got = fresh_page_cache(
        [tmp_path / "server", tmp_path / "urls.txt"], tmp_path / "aside", drop_caches=knob
    )
    assert knob.read_text() == "1\n"
    assert got.dropped and got.warmed == size + 10 and got.evicted == 0
    assert "dropped" in got.label


def test_without_the_right_to_drop_the_outputs_set_aside_are_evicted(tmp_path: Path) -> None:
    _tree(tmp_path / "aside" / "run-1")
    (tmp_path / "aside" / "run-2").mkdir()
    (tmp_path / "aside" / "run-2" / "c").write_bytes(b"z")
    knob = tmp_path / "no-such-dir" / "drop_caches"
    got = fresh_page_cache([tmp_path / "server"], tmp_path / "aside", drop_caches=knob)
    assert not got.dropped and got.warmed == 0
    assert got.evicted == 3  # the regular files only: not the link, not the FIFO
    assert "evicted" in got.label
    assert (tmp_path / "aside" / "run-2" / "c").read_bytes() == b"z"  # evicted, not lost


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping the page cache needs root")
def test_the_real_knob_takes_the_value(tmp_path: Path) -> None:
    _tree(tmp_path / "server")
    got = fresh_page_cache([tmp_path / "server"], tmp_path / "aside")
    assert got.dropped
