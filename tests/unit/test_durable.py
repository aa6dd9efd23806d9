"""foundation.durable on real files: syncfs where it reports errors, the per-file fallbacks."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import pytest

from foundation import durable


def test_kernel_versions_are_compared_by_number() -> None:
    assert durable._kernel_at_least("5.8.0-63-generic", (5, 8))
    assert durable._kernel_at_least("6.18.44-fc-v1300", (5, 8))
    assert durable._kernel_at_least("5.10", (5, 8))  # 10 > 8: not a string comparison
    assert not durable._kernel_at_least("5.4.0-150-generic", (5, 8))
    assert not durable._kernel_at_least("4.19.0", (5, 8))
    assert not durable._kernel_at_least("unknown", (5, 8))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="syncfs is Linux's")
def test_syncfs_is_usable_on_a_recent_linux_and_syncs(tmp_path: Path) -> None:
    expected = durable._kernel_at_least(platform.release(), (5, 8))
    assert durable.syncfs_usable() is expected
    if expected:
        (tmp_path / "a").write_bytes(b"x")
        durable.syncfs(tmp_path)  # no error on a healthy file system


def test_syncfs_names_the_folder_it_could_not_open(tmp_path: Path) -> None:
    with pytest.raises(OSError) as info:
        durable.syncfs(tmp_path / "missing")
    assert "missing" in str(info.value)


def test_the_per_file_syncs_work_on_real_files(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"data")
    durable.fdatasync_path(target)
    durable.fsync_dir(tmp_path)
    with pytest.raises(FileNotFoundError):
        durable.fdatasync_path(tmp_path / "gone")


def test_finding_the_libc_calls_starts_no_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """ctypes.util.find_library forks `ldconfig -p`: a fork of the whole backup process, twice
    in every backup (strace), for a name the process has already loaded."""
    import subprocess

    from foundation import heap

    def no_process(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a process was started: {args}")

    monkeypatch.setattr(subprocess, "Popen", no_process)
    monkeypatch.setattr(durable, "_LOADED", False)
    monkeypatch.setattr(heap, "_LOADED", False)
    usable = durable.syncfs_usable()
    trimmed = heap.trim_heap()
    if sys.platform.startswith("linux"):
        assert trimmed  # glibc's malloc_trim, found among the symbols already loaded
        assert usable is durable._kernel_at_least(platform.release(), (5, 8))
