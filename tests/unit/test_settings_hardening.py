"""The settings loader: relative paths, spelling suggestions, one tool's section at a time."""

from __future__ import annotations

from pathlib import Path

import pytest

from fetchlab.settings import load_settings
from foundation.errors import SettingsError


def test_relative_out_in_a_settings_file_is_relative_to_its_folder(tmp_path: Path) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    f = folder / "s.toml"
    f.write_text('[crawler]\nout = "arch"\n\n[mail]\nout = "../mail"\n')
    s = load_settings(f, env={})
    assert s.crawler.out == folder / "arch"
    assert s.mail.out == folder / "../mail"
    f.write_text(f'[crawler]\nout = "{tmp_path / "abs"}"\n')
    assert load_settings(f, env={}).crawler.out == tmp_path / "abs"


def test_out_from_environment_and_command_line_wins(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text('[crawler]\nout = "from-file"\n')
    env = {"FETCHLAB_CRAWLER__OUT": "/srv/from-env"}
    assert load_settings(f, env=env).crawler.out == Path("/srv/from-env")
    cli = load_settings(f, env=env, overrides={"crawler": {"out": "/srv/cli"}})
    assert cli.crawler.out == Path("/srv/cli")


def test_misspelled_key_suggests_the_right_one(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text(
        "[crawler]\nconcurency = 3\n\n[[mail.accounts]]\nname = 'a'\nhost = 'h'\n"
        "username = 'u'\nprot = 993\n"
    )
    with pytest.raises(SettingsError) as info:
        load_settings(f, env={})
    text = "\n".join(info.value.problems)
    assert "crawler.concurency: unknown key; did you mean 'concurrency'?" in text
    assert "mail.accounts[0].prot: unknown key; did you mean 'port'?" in text
    assert "Extra inputs" not in text


def test_bad_regex_names_the_pattern_not_a_tuple() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(None, env={}, overrides={"crawler": {"allow": ("ok", "a(b")}})
    (problem,) = info.value.problems
    assert problem.startswith("command line: crawler.allow: bad regular expression 'a(b': ")
    assert "missing )" in problem
    assert "('ok'" not in problem and "Value error" not in problem


def test_each_tool_validates_only_its_own_section(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text("[crawler]\nconcurrency = 0\n\n[mail]\ntimeout = -1\n")
    env = {"FETCHLAB_MAIL__HEADER_WORKERS": "nope"}
    with pytest.raises(SettingsError) as crawler_info:
        load_settings(f, env=env, tool="crawler")
    assert [p.split(": ")[1] for p in crawler_info.value.problems] == ["crawler.concurrency"]
    with pytest.raises(SettingsError) as mail_info:
        load_settings(f, env=env, tool="mail")
    keys = sorted(p.split(": ")[1] for p in mail_info.value.problems)
    assert keys == ["mail.header_workers", "mail.timeout"]
    f.write_text("[crawler]\nconcurrency = 5\n\n[mail]\ntimeout = -1\n")
    assert load_settings(f, env=env, tool="crawler").crawler.concurrency == 5
