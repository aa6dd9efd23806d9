"""README.md's command lines parse with the real CLIs: every subcommand and flag it shows exists
(click parses each line without running it), and every flag README names in prose does too."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from fetchlab.crawl_cli import cli as crawler_cli
from fetchlab.mail_cli import main as mail_cli

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
TOOLS: dict[str, click.Group] = {"crawler": crawler_cli, "mailsync": mail_cli}


def _lines() -> list[str]:
    """Command lines of README's code blocks that run one of the tools (after a pipe too)."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        for line in block.splitlines():
            command = line.split("#", 1)[0].split("|")[-1].strip()
            if command.split(" ", 1)[0] in TOOLS:
                out.append(command)
    return out


@pytest.mark.parametrize("line", _lines())
def test_readme_command_parses(line: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tool, *args = shlex.split(line)
    monkeypatch.chdir(tmp_path)
    for word in args:  # the archives README's lines name (e.g. `crawler stats site-archive`)
        if word.endswith("-archive"):
            (tmp_path / word).mkdir(exist_ok=True)
    group = TOOLS[tool]
    sub = group.commands[args[0]]  # an unknown subcommand fails here
    ctx = sub.make_context(f"{tool} {args[0]}", list(args[1:]), resilient_parsing=False)
    assert ctx.params is not None


def test_every_flag_named_in_readme_exists() -> None:
    known = {
        opt
        for group in TOOLS.values()
        for command in group.commands.values()
        for param in command.params
        for opt in (*param.opts, *param.secondary_opts)
    }
    known |= {"--help", "--version"}
    for line in _lines():
        for flag in re.findall(r"(?<!\w)--[a-z][a-z0-9-]*", line):
            assert flag in known, f"README: {flag} in {line!r}"
    assert len(_lines()) >= 8
