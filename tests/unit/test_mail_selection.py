"""--query in its minimal form (mailsync.core.selection): folder and INTERNALDATE range."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from foundation.errors import UsageError
from mailsync.core.selection import Selection, parse_query


def test_empty_query_selects_everything() -> None:
    assert parse_query(None) == Selection() == parse_query("  ")
    assert Selection().folder_ok("x") and Selection().date_ok(None)


def test_folders_with_wildcards_and_quotes() -> None:
    sel = parse_query('folder:INBOX folder:"Project X" folder:Archive/*')
    assert sel.folders == ("INBOX", "Project X", "Archive/*")
    assert sel.folder_ok("Archive/2023") and sel.folder_ok("Project X")
    assert not sel.folder_ok("Archive") and not sel.folder_ok("Sent")


@pytest.mark.parametrize(
    ("query", "since", "until"),
    [
        ("date:2024", datetime(2024, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)),
        ("date:2024-02", datetime(2024, 2, 1, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC)),
        ("date:2024-02-29", datetime(2024, 2, 29, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC)),
        ("date:2023..2024-06", datetime(2023, 1, 1, tzinfo=UTC), datetime(2024, 7, 1, tzinfo=UTC)),
        ("date:2024..", datetime(2024, 1, 1, tzinfo=UTC), None),
        ("date:..2019-12-31", None, datetime(2020, 1, 1, tzinfo=UTC)),
    ],
)
def test_date_ranges(query: str, since: datetime | None, until: datetime | None) -> None:
    sel = parse_query(query)
    assert (sel.since, sel.until) == (since, until)


def test_date_bounds_are_half_open_and_need_a_date() -> None:
    sel = parse_query("date:2024-02-01")
    assert sel.date_ok(datetime(2024, 2, 1, 23, 59, 59, tzinfo=UTC))
    assert not sel.date_ok(datetime(2024, 2, 2, tzinfo=UTC))
    assert not sel.date_ok(None)


@pytest.mark.parametrize(
    "query", ["from:ann", "subject", "date:2024-13", "date:24", "date:2025..2024", 'folder:"x']
)
def test_anything_else_is_refused(query: str) -> None:
    with pytest.raises(UsageError):
        parse_query(query)
