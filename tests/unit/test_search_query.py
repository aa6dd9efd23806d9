"""The search query language (mailsync.core.query): tokens, tree, errors, SQL -- and the SQL run
on a real in-memory SQLite FTS5 index, compared with a plain-Python evaluation of the tree."""

from __future__ import annotations

import calendar
import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from foundation.errors import QuerySyntaxError, UsageError
from mailsync.core.query import (
    And,
    Compare,
    Node,
    Not,
    Or,
    Text,
    describe,
    estimate,
    fts_terms,
    parse_query,
    to_sql,
    tokenize,
    uses_state,
)


def _utc(y: int, m: int, d: int) -> int:
    return calendar.timegm((y, m, d, 0, 0, 0))


def test_fields_words_and_phrases() -> None:
    node = parse_query('from:alice@example.org "quarter results" budget*')
    assert node == And(
        (
            Text("alice@example.org", "sender"),
            Text("quarter results", None, phrase=True),
            Text("budget", None, prefix=True),
        )
    )
    assert parse_query("subject:hi") == Text("hi", "subject")
    assert parse_query('to:"Bob Builder"') == Text("Bob Builder", "recipient", phrase=True)
    assert parse_query("FROM:x") == Text("x", "sender")  # field names in any case
    assert parse_query("") == And(())
    # a colon inside a word that is not a field stays part of the word
    assert parse_query("http://x") == Text("http://x")


def test_precedence_not_and_or_parentheses() -> None:
    a, b, c = Text("a"), Text("b"), Text("c")
    assert parse_query("a b OR c") == Or((And((a, b)), c))
    assert parse_query("a AND b OR c") == Or((And((a, b)), c))
    assert parse_query("a (b OR c)") == And((a, Or((b, c))))
    assert parse_query("NOT a b") == And((Not(a), b))
    assert parse_query("-a") == Not(a)
    assert parse_query("NOT NOT a") == Not(Not(a))
    assert parse_query("a or b") == And((a, Text("or"), b)), "operators only in capitals"


def test_dates_sizes_flags() -> None:
    assert parse_query("date:2024-01..2024-06") == And(
        (Compare("date", ">=", _utc(2024, 1, 1)), Compare("date", "<", _utc(2024, 7, 1)))
    )
    assert parse_query("date:2024") == And(
        (Compare("date", ">=", _utc(2024, 1, 1)), Compare("date", "<", _utc(2025, 1, 1)))
    )
    assert parse_query("date:2024-02-29") == And(
        (Compare("date", ">=", _utc(2024, 2, 29)), Compare("date", "<", _utc(2024, 3, 1)))
    )
    assert parse_query("date:2024-12..") == Compare("date", ">=", _utc(2024, 12, 1))
    assert parse_query("date:..2024-12") == Compare("date", "<", _utc(2025, 1, 1))
    assert parse_query("before:2024-03") == Compare("date", "<", _utc(2024, 3, 1))
    assert parse_query("after:2024-03-05") == Compare("date", ">=", _utc(2024, 3, 5))
    assert parse_query("larger:5M") == Compare("size", ">", 5 * 1024 * 1024)
    assert parse_query("smaller:200k") == Compare("size", "<", 200 * 1024)
    assert parse_query("larger:1500") == Compare("size", ">", 1500)
    assert parse_query("has:attachment") == Compare("attachments", ">", 0)
    assert parse_query("is:flagged") == Compare("flags", "flag", "\\Flagged")
    assert parse_query("is:unread") == Compare("flags", "noflag", "\\Seen")
    assert parse_query("folder:INBOX") == Compare("folder", "=", "INBOX")
    assert parse_query('folder:"Sent Items"') == Compare("folder", "=", "Sent Items")
    assert parse_query("id:abc@x") == Compare("message_id", "=", "<abc@x>")


@pytest.mark.parametrize(
    ("query", "position", "reason"),
    [
        ("a AND (b", 8, "missing ')'"),
        ("a)", 1, "unmatched ')'"),
        ('subject:"open', 8, "unclosed quote"),
        ("from:", 5, "needs a value"),
        ("from: bob", 5, "needs a value"),
        ("a OR", 4, "ends where a term was expected"),
        ("OR a", 0, "needs a term on each side"),
        ("date:2024-13", 5, "no such date"),
        ("date:2023-02-29", 5, "no such date"),
        ("date:2024-01..June", 14, "expected a date"),
        ("date:..", 5, "at least one side"),
        ("larger:big", 7, "expects a size"),
        ("is:shiny", 3, "is: expects one of"),
        ("has:fun", 4, "knows only"),
        ('""', 0, "empty phrase"),
        ("()", 1, "unmatched ')'"),
    ],
)
def test_errors_name_the_position(query: str, position: int, reason: str) -> None:
    with pytest.raises(QuerySyntaxError) as info:
        parse_query(query)
    err = info.value
    assert isinstance(err, UsageError)
    assert err.position == position and reason in err.reason, (err.position, err.reason)
    lines = str(err).splitlines()
    assert lines[0].startswith(f"query error at character {position + 1}: ")
    assert lines[1] == f"  {query}" and lines[2] == "  " + " " * position + "^"


def test_sql_uses_parameters_only() -> None:
    where, params = to_sql(parse_query("from:x'; DROP TABLE docs; -- folder:\"a'b\""), "acct")
    assert "DROP" not in where and "a'b" not in where
    assert "a'b" in params
    assert to_sql(parse_query("account:acct"), "acct") == ("1", [])
    assert to_sql(parse_query("account:other a"), "acct")[0].startswith("(")
    # the text terms of one AND (or OR) go to FTS5 in one MATCH
    where, params = to_sql(parse_query("a b NOT c"), "")
    assert where.count("MATCH") == 2 and params[0] == '"a" AND "b"'


# -- the SQL on a real FTS5 table, against a plain-Python reading of the tree ----------------
_WORDS = ["alpha", "beta", "gamma", "delta"]
_DOCS = [
    # (id, subject, sender, body, folder, size, date, flags, attachments)
    (
        i,
        " ".join(_WORDS[j] for j in range(4) if i >> j & 1),
        f"u{i % 3}@x.org",
        _WORDS[i % 4] + " text",
        ["INBOX", "Sent"][i % 2],
        1000 * i,
        _utc(2020 + i % 5, 1 + i % 12, 1),
        "\\Seen" if i % 3 else "\\Flagged",
        i % 4 == 0,
    )
    for i in range(1, 33)
]


def _db() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    db.executescript(
        "CREATE TABLE docs (id INTEGER PRIMARY KEY, folder TEXT, size INT, date REAL,"
        " attachments INT, message_id TEXT);"
        "CREATE TABLE messages (id INTEGER PRIMARY KEY, flags TEXT);"
        "CREATE VIRTUAL TABLE fts USING fts5(subject, sender, recipient, cc, body, filename,"
        " content='');"
    )
    for i, subject, sender, body, folder, size, date, flags, att in _DOCS:
        db.execute("INSERT INTO docs VALUES (?,?,?,?,?,?)", (i, folder, size, date, att, ""))
        db.execute("INSERT INTO messages VALUES (?,?)", (i, flags))
        db.execute(
            "INSERT INTO fts (rowid, subject, sender, recipient, cc, body, filename)"
            " VALUES (?,?,?,?,?,?,?)",
            (i, subject, sender, "", "", body, ""),
        )
    return db


_DB = _db()


def _matches(node: Node, doc: tuple[object, ...]) -> bool:
    _, subject, sender, body, folder, size, date, flags, att = doc
    if isinstance(node, Text):
        fields = {"subject": subject, "sender": sender, "body": body}
        texts = [str(fields[node.column])] if node.column else [str(v) for v in fields.values()]
        words = [w for t in texts for w in t.replace("@", " ").replace(".", " ").split()]
        if node.prefix:
            return any(w.startswith(node.text) for w in words)
        return node.text in words
    if isinstance(node, Compare):
        value = {"folder": folder, "size": size, "date": date, "attachments": att}.get(node.field)
        if node.op == "flag":
            return str(node.value) in str(flags).split()
        if node.op == "noflag":
            return str(node.value) not in str(flags).split()
        if node.field == "folder":
            return str(value).lower() == str(node.value).lower()
        ops = {">": value > node.value, "<": value < node.value, ">=": value >= node.value}  # type: ignore[operator]
        return bool(ops[node.op])
    if isinstance(node, Not):
        return not _matches(node.item, doc)
    if isinstance(node, And):
        return all(_matches(n, doc) for n in node.items)
    return any(_matches(n, doc) for n in node.items)


_terms = st.one_of(
    st.sampled_from(_WORDS),
    st.sampled_from(["subject:alpha", "subject:beta", "body:gamma", "from:u1", "gam*", "del*"]),
    st.sampled_from(["folder:INBOX", "folder:sent", "is:flagged", "is:unread", "has:attachment"]),
    st.sampled_from(
        ["larger:10K", "smaller:5000", "date:2021..2022", "before:2023", "after:2022-06"]
    ),
)


@st.composite
def _queries(draw: st.DrawFn, depth: int = 3) -> str:
    if depth == 0 or draw(st.booleans()):
        term = draw(_terms)
        return ("-" if draw(st.integers(0, 4)) == 0 else "") + term
    left = draw(_queries(depth - 1))
    right = draw(_queries(depth - 1))
    op = draw(st.sampled_from([" ", " AND ", " OR ", " NOT "]))
    return f"({left}{op}{right})" if draw(st.booleans()) else f"{left}{op}{right}"


@settings(max_examples=300, deadline=None)
@given(_queries())
def test_sql_selects_what_the_tree_means(query: str) -> None:
    node = parse_query(query)
    where, params = to_sql(node, "acct")
    sql = f"SELECT d.id FROM docs d JOIN messages m ON m.id = d.id WHERE {where}"
    got = {row[0] for row in _DB.execute(sql, params)}
    want = {doc[0] for doc in _DOCS if _matches(node, doc)}
    assert got == want, (query, describe(node), where, params)
    # the date-driven form (frequent words) selects the same rows
    where, params = to_sql(node, "acct", by_date=True)
    sql = f"SELECT d.id FROM docs d JOIN messages m ON m.id = d.id WHERE {where}"
    assert {row[0] for row in _DB.execute(sql, params)} == want


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_any_text_parses_or_fails_cleanly(query: str) -> None:
    try:
        node = parse_query(query)
    except QuerySyntaxError as exc:
        assert 0 <= exc.position <= len(query)
        return
    where, params = to_sql(node, "a")
    # whatever the user typed, the SQL runs (FTS5 syntax never leaks from the user's text)
    list(
        _DB.execute(f"SELECT d.id FROM docs d JOIN messages m ON m.id = d.id WHERE {where}", params)
    )
    assert describe(node)


def test_terms_and_estimates() -> None:
    assert fts_terms("Müller alice@example.org_x Встреча 2024") == [
        "muller",
        "alice",
        "example",
        "org",
        "x",
        "встреча",
        "2024",
    ]
    counts = {"budget": 900, "a": 10, "b": 20, "alice": 50, "example": 700, "org": 800}
    docs = lambda term, prefix: counts.get(term, 0)  # noqa: E731
    assert estimate(parse_query("budget"), docs, 1000) == 900
    assert estimate(parse_query("budget (a OR b)"), docs, 1000) == 30
    assert estimate(parse_query("from:alice"), docs, 1000) == 50
    assert estimate(parse_query('from:alice@example.org "budget example"'), docs, 1000) == 0
    assert estimate(parse_query("NOT budget"), docs, 1000) == 1000
    assert estimate(parse_query("larger:5M"), docs, 1000) == 1000
    assert estimate(parse_query("budget OR example"), docs, 1000) == 1000
    assert estimate(parse_query('"@@"'), docs, 1000) == 0


def test_uses_state_only_for_flags() -> None:
    assert uses_state(parse_query("a (b OR NOT is:unread)"))
    assert uses_state(parse_query("is:flagged"))
    assert not uses_state(parse_query("from:x has:attachment folder:INBOX date:2024 -y"))
    assert not uses_state(parse_query(""))


def test_tokens_carry_positions() -> None:
    assert [(t.kind, t.text, t.pos) for t in tokenize('a (from:"b c")')] == [
        ("word", "a", 0),
        ("(", "(", 2),
        ("field", "from", 3),
        ("phrase", "b c", 8),
        (")", ")", 13),
    ]
