"""The public names stay exported, and the pure cores import nothing that does I/O."""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest

import foundation
from foundation import errors

ROOT = Path(__file__).resolve().parents[2]
BANNED = {
    "asyncio",
    "threading",
    "concurrent",
    "gevent",
    "aiohttp",
    "requests",
    "socket",
    "ssl",
    "imaplib",
    "imapclient",
    "aioimaplib",
    "sqlite3",
    "subprocess",
    "uvloop",
    "aiofiles",
}


def test_error_tree_exported() -> None:
    for name in errors.__all__:
        assert getattr(foundation, name) is getattr(errors, name)
        assert issubclass(getattr(errors, name), errors.FetchlabError)


def test_errors_inherit_expected_builtins() -> None:
    assert issubclass(errors.FetchTimeout, TimeoutError)
    assert issubclass(errors.ConnectError, ConnectionError)
    assert issubclass(errors.SettingsError, ValueError)
    assert issubclass(errors.ImapAuthError, PermissionError)


@pytest.mark.parametrize("core", ["crawler/core", "mailsync/core"])
def test_core_is_pure(core: str) -> None:
    """A core imports the standard library, its own core and the foundation, nothing else: no
    I/O library (the banned list) and no third-party code at all (the libraries it relies on are
    bound to its ports by the tool: crawler/adapters.py)."""
    own = core.replace("/", ".")
    offenders = []
    for path in sorted((ROOT / core).rglob("*.py")):
        tree = ast.parse(path.read_text("utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                allowed = (
                    (top in sys.stdlib_module_names and top not in BANNED)
                    or name == own
                    or name.startswith(own + ".")
                    or top == "foundation"
                )
                if top == "__future__" or allowed:
                    continue
                offenders.append(f"{path.relative_to(ROOT)}: {name}")
    assert not offenders


@pytest.mark.parametrize(
    "module",
    [
        "crawler",
        "mailsync",
        "foundation",
        "drivers",
        "drivers.dispatch",
        "fetchlab",
        "fetchlab.crawl_cli",
        "fetchlab.mail_cli",
        "testbed",
        "fetchlab.settings",
        "foundation.offload",
        "foundation.progress",
    ],
)
def test_modules_import(module: str) -> None:
    importlib.import_module(module)
