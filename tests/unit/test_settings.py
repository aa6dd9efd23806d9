from __future__ import annotations

from pathlib import Path

import pytest

from fetchlab.settings import load_settings
from foundation.errors import SettingsError

ROOT = Path(__file__).resolve().parents[2]


def test_example_settings_file_loads() -> None:
    s = load_settings(ROOT / "settings.example.toml", env={})
    assert s.crawler.concurrency >= 1
    assert s.mail.accounts, "the example documents at least one account"


def test_defaults_without_file() -> None:
    s = load_settings(None, env={})
    assert s.crawler.concurrency == 256
    assert s.crawler.per_host == 8


def test_layering_file_env_cli(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text("[crawler]\nconcurrency = 10\nper_host = 3\ndelay = 0.5\n")
    s = load_settings(
        f,
        env={"FETCHLAB_CRAWLER__PER_HOST": "4", "FETCHLAB_CRAWLER__DELAY": "1.5"},
        overrides={"crawler": {"delay": 2.0, "timeout": None}},
    )
    assert s.crawler.concurrency == 10  # file
    assert s.crawler.per_host == 4  # env beats file
    assert s.crawler.delay == 2.0  # CLI beats env
    assert s.crawler.timeout == 30.0  # None on the CLI means "not given"


def test_settings_path_from_env(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text("[crawler]\nconcurrency = 7\n")
    s = load_settings(None, env={"FETCHLAB_SETTINGS": str(f)})
    assert s.crawler.concurrency == 7


def test_frozen(tmp_path: Path) -> None:
    s = load_settings(None, env={})
    with pytest.raises(AttributeError):
        s.crawler.concurrency = 3  # type: ignore[misc]


def test_every_problem_named_with_key_and_file(tmp_path: Path) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(
        "[crawler]\nconcurrency = -1\nper_hots = 3\n\n"
        "[[mail.accounts]]\nname = 'a'\nhost = 'h'\nport = 99999\n"
    )
    with pytest.raises(SettingsError) as info:
        load_settings(f, env={})
    problems = info.value.problems
    text = "\n".join(problems)
    assert all(p.startswith(str(f)) for p in problems), text
    assert "crawler.concurrency" in text
    assert "crawler.per_hots" in text
    assert "mail.accounts[0].port" in text
    assert "mail.accounts[0].username" in text


def test_env_problem_names_the_variable() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(None, env={"FETCHLAB_CRAWLER__CONCURRENCY": "lots"})
    assert "environment variable FETCHLAB_CRAWLER__CONCURRENCY" in str(info.value)


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    f = tmp_path / "broken.toml"
    f.write_text("[crawler\n")
    with pytest.raises(SettingsError, match="invalid TOML"):
        load_settings(f, env={})
    with pytest.raises(SettingsError, match="not found"):
        load_settings(tmp_path / "nope.toml", env={})
