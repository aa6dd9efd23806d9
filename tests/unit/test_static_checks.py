"""scripts/check as part of the suite: format, lint and strict typing stay clean on every commit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "argv",
    [
        ["ruff", "format", "--check", "."],
        ["ruff", "check", "."],
        ["mypy", "foundation", "crawler", "mailsync", "drivers", "fetchlab", "testbed", "tests"],
        ["lint-imports"],
    ],
    ids=["ruff-format", "ruff-lint", "mypy-strict", "import-layers"],
)
@pytest.mark.timeout(600)
def test_static_check(argv: list[str]) -> None:
    proc = subprocess.run(
        [str(BIN / argv[0]), *argv[1:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=590,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
