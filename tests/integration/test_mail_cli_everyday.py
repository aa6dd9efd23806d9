"""mailsync's everyday command line against the real test-bed Dovecot: ``folders`` needs no
``--account`` when one is configured and lists folders in order, "no accounts" says where
settings come from, the summary counts flag changes and deletions, every option has help."""

from __future__ import annotations

import imaplib
from pathlib import Path

from click.testing import CliRunner

from fetchlab.mail_cli import main
from tests.fixtures.imap import FreshImapAccount, ImapAccount
from tests.integration._mailsync_helpers import PASSWORD_ENV

ENV = {PASSWORD_ENV: "secret", "FETCHLAB_SETTINGS": ""}


def _settings(path: Path, acct: ImapAccount, names: tuple[str, ...] = ("one",)) -> Path:
    blocks = "".join(
        f"""[[mail.accounts]]
name = "{name}"
host = "127.0.0.1"
port = {acct.server.port}
security = "plain"
username = "{acct.user}"
password_env = "{PASSWORD_ENV}"
"""
        for name in names
    )
    path.write_text(f'[mail]\nout = "{path.parent / "archive"}"\nheader_workers = 0\n' + blocks)
    return path


def test_folders_with_one_account_needs_no_account_flag(
    fresh_imap_account: FreshImapAccount, tmp_path: Path
) -> None:
    acct = fresh_imap_account(messages=8, seed=2, folders=["INBOX", "Zeta", "Alpha"])
    one = _settings(tmp_path / "one.toml", acct)
    runner = CliRunner()
    assert runner.invoke(main, ["backup", "--settings", str(one), "--no-progress"], env=ENV)
    listed = runner.invoke(main, ["folders", "--settings", str(one)], env=ENV)
    assert listed.exit_code == 0, listed.output
    order = [n for n in ("Alpha", "INBOX", "Zeta") if n in listed.output]
    assert order == ["Alpha", "INBOX", "Zeta"]
    assert [listed.output.index(n) for n in order] == sorted(listed.output.index(n) for n in order)
    two = _settings(tmp_path / "two.toml", acct, ("one", "two"))
    both = runner.invoke(main, ["folders", "--settings", str(two)], env=ENV)
    assert both.exit_code == 2 and "--account" in both.output and "one, two" in both.output


def test_no_accounts_says_where_settings_come_from(tmp_path: Path) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_text("[mail]\n")
    result = CliRunner().invoke(main, ["backup", "--settings", str(empty)], env=ENV)
    assert result.exit_code == 2
    assert "--settings" in result.output and "FETCHLAB_SETTINGS" in result.output


def test_summary_counts_flag_changes_and_deletions(
    fresh_imap_account: FreshImapAccount, tmp_path: Path
) -> None:
    acct = fresh_imap_account(messages=6, seed=5, folders=["INBOX"])
    settings = _settings(tmp_path / "mail.toml", acct)
    runner = CliRunner()
    args = ["backup", "--settings", str(settings), "--no-progress"]
    first = runner.invoke(main, args, env=ENV)
    assert first.exit_code == 0, first.output
    with imaplib.IMAP4(acct.server.host, acct.server.port, timeout=30) as client:
        client.login(acct.user, acct.password)
        client.select("INBOX")
        client.uid("STORE", "1", "+FLAGS", "(\\Flagged)")
        client.uid("STORE", "2", "+FLAGS", "(\\Deleted)")
        client.expunge()
    second = runner.invoke(main, args, env={**ENV, "COLUMNS": "200"})  # one line per row
    assert second.exit_code == 0, second.output
    assert "flags changed" in second.output and "deleted on server" in second.output
    row = next(line for line in second.output.splitlines() if line.strip("│ ").startswith("one"))
    cells = [c.strip() for c in row.strip("│").split("│")]
    assert cells[3:5] == ["1", "1"], row  # one flag change, one message deleted on the server


def test_every_option_has_help() -> None:
    for name, command in main.commands.items():
        for param in command.params:
            if param.param_type_name == "option":
                assert param.help, f"mailsync {name} {param.opts[0]} has no help"
