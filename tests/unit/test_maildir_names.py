"""Pure Maildir naming: stable names, flags <-> info letters, new vs cur."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailsync.core.maildir import (
    MaildirName,
    flags_to_info,
    info_to_flags,
    message_filename,
    parse_filename,
    subdir_for,
)

SYSTEM = ["\\Draft", "\\Flagged", "$Forwarded", "\\Answered", "\\Seen", "\\Deleted"]


@pytest.mark.parametrize(
    ("flags", "info"),
    [
        ([], ""),
        (["\\Seen"], "S"),
        (["\\Seen", "\\Answered", "\\Flagged"], "FRS"),
        (["\\Deleted", "\\Draft"], "DT"),
        (["\\seen", "\\SEEN", "\\Recent", "$Junk", "custom"], "S"),
        (SYSTEM, "DFPRST"),
    ],
)
def test_flags_to_info(flags: list[str], info: str) -> None:
    assert flags_to_info(flags) == info


def test_info_to_flags() -> None:
    assert info_to_flags("FRS") == {"\\Flagged", "\\Answered", "\\Seen"}
    assert info_to_flags("2,ST") == {"\\Seen", "\\Deleted"}
    assert info_to_flags("") == frozenset()
    assert info_to_flags("Sab") == {"\\Seen"}  # Dovecot keyword letters are not flags here


@given(st.lists(st.sampled_from([*SYSTEM, "\\Recent", "$Label1"])))
def test_info_round_trip(flags: list[str]) -> None:
    info = flags_to_info(flags)
    assert list(info) == sorted(set(info))
    assert info_to_flags(info) == {f for f in flags if f in SYSTEM}
    assert flags_to_info(info_to_flags(info)) == info


def test_subdir_for() -> None:
    assert subdir_for([]) == "new"
    assert subdir_for(["\\Recent"]) == "new"
    assert subdir_for(["$Label1"]) == "new"
    assert subdir_for(["\\Seen"]) == "cur"
    assert subdir_for(["\\Flagged"]) == "cur"


def test_message_filename_is_stable_and_readable() -> None:
    name = message_filename(1795237894, 42, 4096, ["\\Seen", "\\Flagged"])
    assert name == "1795237894.42.mailsync,S=4096:2,FS"
    assert message_filename(1795237894, 42, 4096, ("\\Flagged", "\\Seen")) == name
    assert parse_filename(name) == MaildirName(1795237894, 42, "mailsync", 4096, "FS")
    assert message_filename(1, 2, 3, [], host="my.host/x:y") == "1.2.my_host_x_y,S=3:2,"
    assert parse_filename("1.2.my_host_x_y,S=3:2,") == MaildirName(1, 2, "my_host_x_y", 3, "")


@pytest.mark.parametrize("name", ["", "1700000000.M1P2.host,S=5:2,S", "x.1.h,S=1", "1.2.h"])
def test_parse_filename_foreign(name: str) -> None:
    assert parse_filename(name) is None


def test_message_filename_rejects_negative() -> None:
    with pytest.raises(ValueError):
        message_filename(-1, 1, 1, [])


@given(
    st.integers(0, 2**32 - 1),
    st.integers(1, 2**32 - 1),
    st.integers(0, 2**40),
    st.lists(st.sampled_from(SYSTEM)),
)
def test_filename_round_trip_and_unique(uv: int, uid: int, size: int, flags: list[str]) -> None:
    name = message_filename(uv, uid, size, flags)
    assert "/" not in name
    parsed = parse_filename(name)
    assert parsed == MaildirName(uv, uid, "mailsync", size, flags_to_info(flags))
    assert message_filename(uv, uid + 1, size, flags) != name
