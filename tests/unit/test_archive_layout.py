"""The archive's own files: where no folder name reaches, moved there from older archives,
private whatever the umask, locked per run; settings that would share or escape an archive."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from fetchlab.mail_cli import main
from foundation.errors import SettingsError
from mailsync.core.names import INTERNAL_DIR, safe_relpath
from mailsync.layout import ArchiveBusyError, ArchiveLock, state_path
from mailsync.settings import AccountSettings
from mailsync.state import FolderRecord, StateDB
from mailsync.store import AccountArchive


@given(st.text(), st.sampled_from(["/", ".", "\\", None]))
def test_no_folder_name_reaches_the_internal_files(name: str, delimiter: str | None) -> None:
    parts = safe_relpath(name, delimiter).parts
    assert INTERNAL_DIR.startswith(".")
    # no level starts with a dot, so neither .fetchlab nor .spill can ever be a folder path
    assert all(not p.startswith(".") for p in parts), parts
    assert INTERNAL_DIR not in parts


@pytest.mark.parametrize("name", [INTERNAL_DIR, ".spill", "state.sqlite", "lock"])
def test_reserved_names_map_elsewhere(name: str) -> None:
    assert str(safe_relpath(name, "/")) not in (INTERNAL_DIR, ".spill")


def test_legacy_state_moves_into_the_internal_folder(tmp_path: Path) -> None:
    import shutil

    crashed = tmp_path / "crashed"
    crashed.mkdir()
    old = StateDB(crashed / "state.sqlite")  # where versions before this one kept it
    old._db.execute("PRAGMA wal_autocheckpoint=0")  # the rows stay in the WAL
    old.save_folder(FolderRecord("INBOX", "INBOX", 7, 0, 12, None, 3), 1.0)
    old.save_folder(FolderRecord("Work", "Work", 8, 0, 5, None, 1), 2.0)
    root = tmp_path / "acct"
    root.mkdir()
    for name in ("state.sqlite", "state.sqlite-wal"):  # as a SIGKILL left them
        shutil.copy(crashed / name, root / name)
    old.close()
    assert (root / "state.sqlite-wal").stat().st_size > 0
    (root / "INBOX" / "cur").mkdir(parents=True)  # a folder stays where it is
    archive = AccountArchive(root, fsync=False)
    archive.open_blocking()
    try:
        assert set(archive.folder_states()) == {"INBOX", "Work"}
    finally:
        archive.close_blocking()
    assert not (root / "state.sqlite").exists() and not (root / "state.sqlite-wal").exists()
    assert (root / "INBOX" / "cur").is_dir()
    assert stat.S_IMODE(state_path(root).stat().st_mode) == 0o600
    db = sqlite3.connect(state_path(root))
    assert db.execute("SELECT count(*) FROM folders").fetchone() == (2,)
    db.close()


def test_a_folder_dir_named_like_the_old_state_is_left_alone(tmp_path: Path) -> None:
    root = tmp_path / "acct"
    (root / "state.sqlite" / "cur").mkdir(parents=True)  # a Maildir folder "state.sqlite"
    (root / "state.sqlite-wal" / "cur").mkdir(parents=True)
    archive = AccountArchive(root, fsync=False)
    archive.open_blocking()
    try:
        assert archive.folder_states() == {}
        archive.state.save_folder(FolderRecord("x", "x", 1, 0, 1, None, 0), 1.0)
    finally:
        archive.close_blocking()
    assert (root / "state.sqlite" / "cur").is_dir()
    assert state_path(root).is_file()


def test_an_archive_is_created_only_when_needed_and_locked(tmp_path: Path) -> None:
    root = tmp_path / "out" / "acct"
    archive = AccountArchive(root, fsync=False)
    archive.open_blocking()
    assert archive.folder_states() == {}
    assert not (tmp_path / "out").exists()  # nothing written before the first real work
    archive.state.save_folder(FolderRecord("x", "x", 1, 0, 1, None, 0), 1.0)
    try:
        second = AccountArchive(root, fsync=False)
        with pytest.raises(ArchiveBusyError, match=f"PID {os.getpid()}"):
            second.open_blocking()
        with pytest.raises(ArchiveBusyError):
            ArchiveLock(root, shared=True).acquire()
    finally:
        archive.close_blocking()
    with ArchiveLock(root, shared=True), ArchiveLock(root, shared=True):
        pass  # readers share it
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o700


@pytest.mark.parametrize("name", [".", "..", "a/b", "a\0b", ""])
def test_account_name_must_be_one_path_segment(name: str) -> None:
    with pytest.raises(ValueError, match="name"):
        AccountSettings(name=name, host="h", username="u")


def test_settings_reject_unsafe_and_duplicate_account_names(tmp_path: Path) -> None:
    from fetchlab.settings import load_settings

    toml = tmp_path / "s.toml"
    acct = '[[mail.accounts]]\nname = "{}"\nhost = "h"\nusername = "u"\n'
    toml.write_text(acct.format("a") + acct.format("b") + acct.format("a"))
    with pytest.raises(SettingsError) as info:
        load_settings(toml)
    assert any("mail.accounts" in p and "'a' is used twice" in p for p in info.value.problems)
    toml.write_text(acct.format(".."))
    with pytest.raises(SettingsError) as info:
        load_settings(toml)
    assert any("mail.accounts[0].name" in p for p in info.value.problems), info.value.problems


def test_version() -> None:
    from importlib.metadata import version

    res = CliRunner().invoke(main, ["--version"])
    assert res.exit_code == 0
    assert res.output.strip() == f"mailsync {version('fetchlab')}"


def test_unwritable_output_folder_is_exit_2(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    toml = tmp_path / "s.toml"
    toml.write_text(
        f'[mail]\nout = "{tmp_path / "file" / "out"}"\n'
        '[[mail.accounts]]\nname = "a"\nhost = "127.0.0.1"\nsecurity = "plain"\nusername = "u"\n'
        'password_env = "NOPE"\n'
    )
    res = CliRunner().invoke(main, ["backup", "--settings", str(toml), "--no-progress"])
    assert res.exit_code == 2, res.output
    assert "cannot write the output folder" in res.output and "not a folder" in res.output
    assert "Traceback" not in res.output


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o277])
def test_private_dirs_and_files_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    from mailsync.layout import private_dirs, private_file

    old = os.umask(umask)
    try:
        private_dirs(tmp_path / "a" / "b" / "c")
        private_file(tmp_path / "a" / "b" / "c" / "f")
    finally:
        os.umask(old)
    for p in (tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "c"):
        assert stat.S_IMODE(p.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "a" / "b" / "c" / "f").stat().st_mode) == 0o600


def test_private_dirs_never_chmods_a_file_in_the_way(tmp_path: Path) -> None:
    from mailsync.layout import private_dirs

    (tmp_path / "f").write_text("x")
    (tmp_path / "f").chmod(0o644)
    with pytest.raises(NotADirectoryError):
        private_dirs(tmp_path / "f")
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o644
