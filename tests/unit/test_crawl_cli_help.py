"""``crawler crawl --help`` prints the settings model's defaults, and the example file has them."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import click
from click.testing import CliRunner

from crawler.settings import CrawlerSettings
from fetchlab.crawl_cli import cli, crawl_cmd
from foundation.frozen import field_defaults

ROOT = Path(__file__).resolve().parents[2]
# options of the command that are not keys of the [crawler] model
NOT_SETTINGS = {"inputs", "resume", "settings_path", "progress", "seed_only"}
# keys with no default to print: a shared job's name and a worker's own name
NO_DEFAULT = {"job", "worker"}
DEFAULT = re.compile(r"\[default: (.*)\]$")


def _shown(value: object) -> str:
    if value is None:
        return "unlimited"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ", ".join(value) if value else "none"
    return str(getattr(value, "value", value))


def _help_text() -> str:
    result = CliRunner().invoke(cli, ["crawl", "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def test_every_flag_is_documented_with_the_model_default() -> None:
    text = _help_text()
    fields = field_defaults(CrawlerSettings)
    ctx = click.Context(crawl_cmd)
    for param in crawl_cmd.params:
        if not isinstance(param, click.Option):
            continue
        record = param.get_help_record(ctx)
        assert record is not None and record[1].strip(), f"{param.name}: no help"
        opts, help_ = record
        assert " ".join(help_.split()) in text, f"{param.name}: help not printed"
        for opt in param.opts + param.secondary_opts:
            assert opt in text
        if param.name in NOT_SETTINGS:
            continue
        key = "robots" if param.name == "no_robots" else param.name
        assert key in fields, f"{param.name} is not a [crawler] key"
        if key in NO_DEFAULT:
            continue
        match = DEFAULT.search(" ".join(help_.split()))
        assert match is not None, f"{opts}: no default printed"
        shown = match.group(1).removeprefix("robots = ")
        assert shown == _shown(fields[key]), f"{opts}: default {shown!r}"


def test_help_no_longer_misstates_parse_workers_or_no_progress() -> None:
    text = _help_text()
    assert "periodic log lines" not in text
    assert "Parser processes (0: parse inline). [default: 1]" in text


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert re.fullmatch(r"crawler \d+\.\d+\.\d+\S*\n", result.output)


def test_example_settings_file_has_every_crawler_key_with_its_default() -> None:
    raw = (ROOT / "settings.example.toml").read_text(encoding="utf-8")
    section = tomllib.loads(raw)["crawler"]
    crawler_block = raw.split("[crawler]", 1)[1].split("\n[", 1)[0]
    for name, default in field_defaults(CrawlerSettings).items():
        if default is None:  # TOML has no null: documented as a commented-out line
            assert re.search(rf"^# {name} = ", crawler_block, re.M), f"{name} missing"
            continue
        assert name in section, f"{name} missing from settings.example.toml"
        value = section[name]
        expected = default
        if isinstance(default, tuple):
            value = tuple(value)
        elif isinstance(default, Path):
            expected = str(default)
        elif hasattr(default, "value"):
            expected = default.value
        assert value == expected, f"{name}: {value!r} != default {expected!r}"
