"""Folder names -> safe relative paths: hierarchy kept, never escaping the root, injective."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailsync.core.names import MAX_SEGMENT_BYTES, safe_relpath, safe_segment


@pytest.mark.parametrize(
    ("name", "delimiter", "expected"),
    [
        ("INBOX", "/", "INBOX"),
        ("a/b/c", "/", "a/b/c"),
        ("a.b.c", ".", "a/b/c"),
        ("a/b.c", ".", "a%2Fb/c"),
        ("a/b", None, "a%2Fb"),
        ("Entwürfe/日本語", "/", "Entwürfe/日本語"),
        ("..", "/", "%2E%2E"),
        ("../../etc/passwd", "/", "%2E%2E/%2E%2E/etc/passwd"),
        ("/abs", "/", "%/abs"),
        ("a//b/", "/", "a/%/b/%"),
        ("", "/", "%"),
        (".hidden", "/", "%2Ehidden"),
        ("trailing. ", "/", "trailing.%20"),
        ("dot.", "/", "dot%2E"),
        ("CON", "/", "%43ON"),
        ("nul.txt", "/", "%6Eul.txt"),
        ("com1", "/", "%63om1"),
        ("Inbox/cur", "/", "Inbox/%63ur"),
        ("new", "/", "%6Eew"),
        ("tmp.old", "/", "%74mp.old"),
        ("a:b*c?d", "/", "a%3Ab%2Ac%3Fd"),
        ('<"|>', "/", "%3C%22%7C%3E"),
        ("100%", "/", "100%25"),
        ("x\\y", "\\", "x/y"),
        ("x\\y", "/", "x%5Cy"),
        ("tab\there\x00\x7f\x85", "/", "tab%09here%00%7F%85"),
        ("bad\udc80", "/", "bad%uDC80"),
        ("sp ace", "/", "sp ace"),
    ],
)
def test_known_mappings(name: str, delimiter: str | None, expected: str) -> None:
    assert safe_relpath(name, delimiter) == PurePosixPath(expected)


def test_long_segment_is_cut_with_hash() -> None:
    long = "é" * 300
    seg = safe_segment(long)
    assert len(seg.encode()) <= MAX_SEGMENT_BYTES
    assert "%~" in seg
    assert seg != safe_segment(long + "x")
    assert safe_segment(long) == seg  # stable


def _check_safe(path: PurePosixPath) -> None:
    assert not path.is_absolute()
    assert path.parts
    for part in path.parts:
        assert part not in ("", ".", "..")
        assert "/" not in part and "\\" not in part and "\0" not in part
        assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in part)
        assert not part.startswith(".")
        assert not part.endswith((".", " "))
        assert len(part.encode("utf-8")) <= MAX_SEGMENT_BYTES
        part.encode("utf-8")  # no lone surrogates left: every file system can store it


names = st.text(
    alphabet=st.characters(exclude_categories=()) | st.sampled_from(list("%./ ~:\x00")),
    max_size=40,
) | st.sampled_from(["..", ".", "", "/", "a/../b", "CON", "cur", "%", "%25", "%2E"])
delimiters = st.sampled_from(["/", ".", "\\", None])


@given(names, delimiters)
def test_always_safe(name: str, delimiter: str | None) -> None:
    _check_safe(safe_relpath(name, delimiter))


@given(names, names, delimiters)
def test_injective(a: str, b: str, delimiter: str | None) -> None:
    if a != b:
        assert safe_relpath(a, delimiter) != safe_relpath(b, delimiter)


@given(st.lists(names, min_size=1, max_size=4), st.sampled_from(["/", "."]))
def test_hierarchy_kept(levels: list[str], delimiter: str) -> None:
    levels = [lvl.replace(delimiter, "") for lvl in levels]
    path = safe_relpath(delimiter.join(levels), delimiter)
    assert len(path.parts) == len(levels)
    assert path.parts == tuple(safe_segment(lvl) for lvl in levels)
    parent = safe_relpath(delimiter.join(levels[:-1]), delimiter) if len(levels) > 1 else None
    if parent is not None:
        assert path.parent == parent


@given(st.text(min_size=201, max_size=400), st.text(min_size=201, max_size=400))
def test_truncated_segments_stay_distinct(a: str, b: str) -> None:
    if a != b:
        assert safe_segment(a) != safe_segment(b)
