"""``mailsync --help`` and settings.example.toml agree with the [mail] settings model, and
mailsync starts whatever the [crawler] section holds (each tool validates its own section)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from click.testing import CliRunner

from fetchlab.mail_cli import main
from foundation.frozen import field_defaults, field_names
from mailsync.fleet_settings import FleetSettings
from mailsync.settings import MailSettings

ROOT = Path(__file__).resolve().parents[2]


def test_mode_help_prints_the_model_default() -> None:
    result = CliRunner().invoke(main, ["backup", "--help"], terminal_width=120)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    default = field_defaults(MailSettings)["mode"].value
    assert f"Concurrency design (mail.mode). [default: {default}]" in text
    assert "log line" in text and "only the summary" in text


def test_example_settings_file_has_every_mail_key_with_its_default() -> None:
    raw = (ROOT / "settings.example.toml").read_text(encoding="utf-8")
    section = tomllib.loads(raw)["mail"]
    block = raw.split("[mail]", 1)[1].split("\n[[", 1)[0]
    for name in field_names(MailSettings):
        if name == "accounts":  # the [[mail.accounts]] tables follow
            assert section.get("accounts"), "no [[mail.accounts]] example"
            continue
        if name == "fleet":  # the [mail.fleet] table
            _check_fleet(section["fleet"], block.split("[mail.fleet]", 1)[1])
            continue
        default = field_defaults(MailSettings)[name]
        if default is None:
            assert re.search(rf"^# {name} = ", block, re.M), f"{name} missing"
            continue
        assert name in section, f"mail.{name} missing from settings.example.toml"
        value, expected = section[name], default
        if isinstance(default, Path):
            expected = str(default)
        elif hasattr(default, "value"):
            expected = default.value
        assert value == expected, f"mail.{name}: {value!r} != default {expected!r}"


def _check_fleet(table: dict[str, object], block: str) -> None:
    for name, default in field_defaults(FleetSettings).items():
        if default is None:
            assert re.search(rf"^# {name} = ", block, re.M), f"mail.fleet.{name} missing"
        else:
            assert table.get(name) == default, f"mail.fleet.{name} != {default!r}"


def test_fleet_commands_have_help() -> None:
    for command in ("enqueue", "worker", "fleet-status"):
        result = CliRunner().invoke(main, [command, "--help"], terminal_width=120)
        assert result.exit_code == 0, result.output
        assert "--queue" in result.output and "--fleet" in result.output


def test_mailsync_starts_despite_a_bad_crawler_section(tmp_path: Path) -> None:
    settings = tmp_path / "s.toml"
    settings.write_text("[crawler]\nconcurrency = -5\n[mail]\n")
    result = CliRunner().invoke(
        main, ["backup", "--settings", str(settings)], env={"FETCHLAB_SETTINGS": ""}
    )
    # the mail section is fine (it names no account): the crawler's bad value is not its business
    assert result.exit_code == 2 and "no accounts configured" in result.output
    assert "crawler.concurrency" not in result.output
