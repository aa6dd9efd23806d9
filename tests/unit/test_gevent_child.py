"""The gevent modes' child-process runner: the job goes in, progress and the result come back,
Ctrl-C is forwarded."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from drivers.gevent_child import run_child
from foundation.errors import ModeError

TARGET = "tests.unit._gevent_target:main"


@pytest.mark.timeout(60)
def test_the_result_and_progress_come_back_and_paths_mean_the_callers_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    seen: list[Any] = []
    run = run_child(TARGET, {"kind": "ok", "out": "out"}, what="test", on_progress=seen.append)
    assert run.result == {"cwd": str(tmp_path), "out": str(tmp_path / "out")}
    assert not run.interrupted
    assert seen and all(set(p) == {"n"} for p in seen)


@pytest.mark.timeout(60)
def test_a_child_without_a_result_is_a_mode_error_with_its_exit_status() -> None:
    with pytest.raises(ModeError, match=r"the gevent test process failed \(exit status 3\)"):
        run_child(TARGET, {"kind": "fail"}, what="test")


@pytest.mark.timeout(60)
def test_ctrl_c_in_the_parent_is_forwarded_and_the_child_awaited(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[Any] = []
    real_sleep = time.sleep
    pressed: list[bool] = []

    def sleep(seconds: float) -> None:  # Ctrl-C, once the child is listening
        if seen and not pressed:
            pressed.append(True)
            raise KeyboardInterrupt
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", sleep)  # the one the runner polls with
    run = run_child(TARGET, {"kind": "stop"}, what="test", on_progress=seen.append)
    assert pressed and run.interrupted
    assert run.result == {"stopped": True}
