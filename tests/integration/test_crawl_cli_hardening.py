"""The crawler command line: `out` from the settings, exit codes over the whole archive, nothing
left behind by a usage error, `crawler stats` on a non-archive, and messages a terminal can take.

The failing URL is a refused connection on 127.0.0.1:1 (no server needed, fails at once).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from fetchlab.crawl_cli import cli

REFUSED = "http://127.0.0.1:1/"
QUICK = ["--no-robots", "--retries", "0", "--parse-workers", "0", "--no-progress"]


@pytest.fixture(autouse=True)
def _no_settings_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("FETCHLAB_"):
            monkeypatch.delenv(name)


def _run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def test_out_comes_from_the_settings_file_relative_to_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "s.toml").write_text('[crawler]\nout = "arch"\n')
    monkeypatch.chdir(tmp_path)
    result = _run("crawl", REFUSED, "--settings", "conf/s.toml", *QUICK)
    assert result.exit_code == 1, result.output
    assert (conf / "arch" / "pages.jsonl").is_file()
    assert not (tmp_path / "arch").exists() and not (tmp_path / "crawl-out").exists()
    # --out still wins
    result = _run("crawl", REFUSED, "--settings", "conf/s.toml", "--out", "cli", *QUICK)
    assert result.exit_code == 1, result.output
    assert (tmp_path / "cli" / "pages.jsonl").is_file()


def test_out_defaults_to_the_model_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = _run("crawl", REFUSED, *QUICK)
    assert result.exit_code == 1, result.output
    assert (tmp_path / "crawl-out" / "pages.jsonl").is_file()


def test_out_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FETCHLAB_CRAWLER__OUT", str(tmp_path / "env-out"))
    result = _run("crawl", REFUSED, *QUICK)
    assert result.exit_code == 1, result.output
    assert (tmp_path / "env-out" / "pages.jsonl").is_file()


def test_resuming_a_finished_crawl_with_failures_exits_1(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _run("crawl", REFUSED, "--out", str(out), *QUICK).exit_code == 1
    again = _run("crawl", "--resume", str(out), "--no-progress")
    assert again.exit_code == 1, again.output
    assert "1 URL(s) failed in earlier runs" in again.output
    rerun = _run("crawl", "--out", str(out), REFUSED, *QUICK)
    assert rerun.exit_code == 1, rerun.output


def test_a_usage_error_leaves_nothing_behind(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = _run("crawl", "not a url at all", "--out", str(out), *QUICK)
    assert result.exit_code == 2
    assert "no valid URL to crawl" in result.output
    assert not out.exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "mine.txt").write_text("x")
    assert _run("crawl", "--out", str(kept), *QUICK).exit_code == 2
    assert sorted(p.name for p in kept.iterdir()) == ["mine.txt"]


def test_stats_of_a_non_archive_is_an_error(tmp_path: Path) -> None:
    result = _run("stats", str(tmp_path))
    assert result.exit_code == 2
    assert "is not a crawl archive" in result.output
    assert "pages" not in result.output.split("is not")[0]


def test_stats_json_and_no_none_status(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _run("crawl", REFUSED, "--out", str(out), *QUICK).exit_code == 1
    table = _run("stats", str(out))
    assert table.exit_code == 0
    assert "None" not in table.output and "no response" in table.output
    data = json.loads(_run("stats", "--json", str(out)).output)
    assert data["pages"] == 1 and data["failed"] == 1
    assert data["statuses"] == {"no response": 1}
    assert data["failed_urls"][0][0] == REFUSED


def test_control_bytes_of_a_bad_line_are_escaped(tmp_path: Path) -> None:
    urls = tmp_path / "urls.txt"
    urls.write_text("\x1b[2J\x07evil.example/\x1b]0;title\x07\n" + REFUSED + "\n")
    result = _run("crawl", "-i", str(urls), "--out", str(tmp_path / "o"), *QUICK)
    assert result.exit_code == 1, result.output
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert "did you mean http://\\x1b[2J\\x07evil.example/\\x1b]0;title\\x07?" in result.output


def test_bad_regex_message_names_the_pattern(tmp_path: Path) -> None:
    result = _run("crawl", REFUSED, "--follow", "--allow", "a(b", "--out", str(tmp_path / "o"))
    assert result.exit_code == 2
    assert "crawler.allow: bad regular expression 'a(b': missing )" in result.output
    assert "('a(b',)" not in result.output
    assert not (tmp_path / "o").exists()


def test_a_bad_mail_section_does_not_stop_the_crawler(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text("[crawler]\nretries = 0\n\n[mail]\ntimeout = -1\n")
    out = tmp_path / "o"
    result = _run("crawl", REFUSED, "--settings", str(f), "--out", str(out), *QUICK)
    assert result.exit_code == 1, result.output
    assert "mail.timeout" not in result.output
