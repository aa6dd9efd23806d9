"""The settings sections (foundation.frozen on msgspec): what a section made in code, from a file,
from the environment or from another process's copy must accept, convert and refuse."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from crawler.settings import CrawlerSettings
from fetchlab.settings import AppSettings, load_settings
from foundation.errors import SettingsError
from foundation.frozen import Invalid, build, field_defaults, replace, to_data
from foundation.mode import Mode
from mailsync.settings import AccountSettings, MailSettings


def test_made_in_code_values_are_converted_as_a_file_spells_them() -> None:
    s = CrawlerSettings(out="o", mode="threads", allow=["a", "b"], delay=1)  # type: ignore[arg-type]
    assert s.out == Path("o") and isinstance(s.out, Path)
    assert s.mode is Mode.THREADS
    assert s.allow == ("a", "b")
    assert s.delay == 1.0 and isinstance(s.delay, float)


def test_made_in_code_bad_values_are_all_refused_at_once() -> None:
    with pytest.raises(Invalid) as info:
        AccountSettings(name="a b", host="h", username="u", port=0, security="ssl")  # type: ignore[arg-type]
    keys = sorted(p.loc for p in info.value.problems)
    assert keys == [("name",), ("port",), ("security",)]
    text = str(info.value)
    assert "port: expected int >= 1" in text
    assert "security: must be one of 'tls', 'starttls', 'plain'" in text


def test_a_check_across_fields_runs_once_the_fields_are_valid() -> None:
    with pytest.raises(Invalid, match="retry_max_delay must not be smaller than retry_delay"):
        MailSettings(retry_delay=2.0, retry_max_delay=1.0)
    with pytest.raises(Invalid, match="bad regular expression 'a\\('"):
        CrawlerSettings(deny=("a(",))


def test_replace_checks_the_copy_too() -> None:
    acct = AccountSettings(name="a", host="127.0.0.1", username="u", security="plain")
    assert replace(acct, connections=8).connections == 8
    with pytest.raises(Invalid, match="connections"):
        replace(acct, connections=0)
    with pytest.raises(Invalid, match="sends the password unencrypted"):
        replace(acct, host="imap.example.org")


def test_to_data_and_build_round_trip_through_json() -> None:
    acct = AccountSettings(name="a", host="[::1]", username="u", ca_file=Path("/ca.pem"))
    mail = MailSettings(out=Path("/m"), mode=Mode.GEVENT, accounts=(acct,))
    data = json.loads(json.dumps(to_data(mail)))
    assert data["mode"] == "gevent" and data["out"] == "/m"
    again = build(MailSettings, data)
    assert again == mail and again.accounts[0].host == "::1"


def test_build_names_nested_problems_by_their_full_key() -> None:
    with pytest.raises(Invalid) as info:
        build(AppSettings, {"mail": {"accounts": [{"name": "a", "host": "h"}, "x"], "fleet": 3}})
    where = {".".join(map(str, p.loc)): p.message for p in info.value.problems}
    assert where == {
        "mail.accounts.0.username": "missing: this key has no default",
        "mail.accounts.1": "must be a table of keys",
        "mail.fleet": "must be a table of keys",
    }


def test_the_environment_spells_lists_and_tables_as_json(tmp_path: Path) -> None:
    env = {
        "FETCHLAB_CRAWLER__ALLOW": '["^https://a/", "^https://b/"]',
        "fetchlab_mail__fleet": '{"name": "night", "lease": 90}',
        "FETCHLAB_MAIL__FLEET__HEARTBEAT": "10",
        "FETCHLAB_SETTINGS_UNRELATED": "ignored",
        "FETCHLAB_OTHER__THING": "ignored",
    }
    s = load_settings(None, env=env)
    assert s.crawler.allow == ("^https://a/", "^https://b/")
    assert (s.mail.fleet.name, s.mail.fleet.lease, s.mail.fleet.heartbeat) == ("night", 90.0, 10.0)
    with pytest.raises(SettingsError) as info:
        load_settings(None, env={"FETCHLAB_CRAWLER__ALLOW": "^https://a/"})
    (problem,) = info.value.problems
    assert problem.startswith(
        "environment variable FETCHLAB_CRAWLER__ALLOW: crawler.allow: not JSON"
    )


def test_an_unknown_key_in_the_environment_is_named() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(None, env={"FETCHLAB_CRAWLER__PER_HOTS": "3"})
    (problem,) = info.value.problems
    assert problem == (
        "environment variable FETCHLAB_CRAWLER__PER_HOTS: crawler.per_hots: unknown key; "
        "did you mean 'per_host'?"
    )


def test_a_name_must_end_where_the_pattern_ends() -> None:
    # "$" would let a trailing newline through (Python's re): the archive folder "a\n"
    with pytest.raises(Invalid, match="name"):
        AccountSettings(name="a\n", host="h", username="u")


def test_defaults_are_the_declared_ones() -> None:
    defaults = field_defaults(CrawlerSettings)
    assert defaults["per_host"] == 8 and defaults["mode"] is Mode.ASYNCIO
    assert "username" not in field_defaults(AccountSettings)  # required: no default


def _imported(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"],
        check=True,
        capture_output=True,
        text=True,
    )
    return set(json.loads(out.stdout))


def test_reading_the_settings_imports_no_heavy_library() -> None:
    # every process that reads settings pays for what they import (docs/benchmarks/mail.md)
    loaded = _imported("import fetchlab.settings")
    assert not loaded & {"pydantic", "w3lib", "protego", "aiohttp", "rich", "urllib.request"}


def test_the_processes_mode_coordinator_imports_no_http_client() -> None:
    # its workers fetch; the coordinator holding aiohttp cost ~10 MB (docs/benchmarks/crawl.md)
    loaded = _imported("import fetchlab.crawl_cli, drivers.dispatch, drivers.crawl_processes")
    assert "aiohttp" not in loaded
