"""The search query language of ``mailsync search`` (and ``--query`` wherever a command takes
one): text in, a syntax tree out, and the tree compiled to an SQL WHERE clause over the index.

Pure: no I/O, no SQLite here; :mod:`mailsync.search_index` runs the SQL. The language is the one
archive users know from notmuch and Gmail::

    query   := or
    or      := and ("OR" and)*
    and     := unary (["AND"] unary)*          (juxtaposition is AND)
    unary   := ("NOT" | "-") unary | primary
    primary := "(" or ")" | term
    term    := [field ":"] (word | "phrase")

Fields: ``from: to: cc: subject: body: filename:`` (full-text, one column), ``folder:``,
``account:``, ``id:`` (Message-ID), ``date:A..B`` (either end may be left out), ``before:``,
``after:``, ``larger:`` / ``smaller:`` (``5M``, ``200K``, bytes without a unit; K and M are
1024-based), ``has:attachment``, ``is:flagged|unread|read|answered|draft|deleted|forwarded``.
A free word or "phrase" matches any text column; ``word*`` matches a prefix. AND, OR and NOT are
operators only in capitals. Dates are UTC days: ``2024``, ``2024-03``, ``2024-03-05``;
``after:X`` is on or after X's first day, ``before:X`` strictly before it.

:func:`to_sql` gives ``(where, params)`` over these tables, joined by the caller::

    d    the index's ``docs`` table (one row per message: folder, date, size, attachments ...)
    m    the state DB's ``messages`` row of the same message (flags: live, as the last backup saw)
    fts  the FTS5 table, its rowid equal to ``d.id``

A malformed query raises :class:`~foundation.errors.QuerySyntaxError` with the position.
"""

from __future__ import annotations

import calendar
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from foundation.errors import QuerySyntaxError

__all__ = [
    "FLAG_NAMES",
    "TEXT_FIELDS",
    "And",
    "Compare",
    "Node",
    "Not",
    "Or",
    "Text",
    "describe",
    "estimate",
    "fts_terms",
    "parse_query",
    "to_sql",
    "tokenize",
    "uses_state",
]

# query field -> FTS5 column (None: every column)
TEXT_FIELDS: dict[str, str] = {
    "from": "sender",
    "to": "recipient",
    "cc": "cc",
    "subject": "subject",
    "body": "body",
    "filename": "filename",
}
# is:NAME -> (IMAP flag, whether the flag must be set)
FLAG_NAMES: dict[str, tuple[str, bool]] = {
    "flagged": ("\\Flagged", True),
    "unread": ("\\Seen", False),
    "read": ("\\Seen", True),
    "seen": ("\\Seen", True),
    "answered": ("\\Answered", True),
    "replied": ("\\Answered", True),
    "draft": ("\\Draft", True),
    "deleted": ("\\Deleted", True),
    "forwarded": ("$Forwarded", True),
}
_OTHER_FIELDS = frozenset(
    ["folder", "account", "id", "date", "before", "after", "larger", "smaller", "has", "is"]
)
FIELDS = frozenset(TEXT_FIELDS) | _OTHER_FIELDS
_OPERATORS = frozenset(["AND", "OR", "NOT"])
_DATE = re.compile(r"(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?")
_SIZE = re.compile(r"(\d+(?:\.\d+)?)([kKmMgG]?)[bB]?")
_TOKEN = re.compile(r"[^\W_]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


# -- tokens --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "(" ")" "op" "field" "word" "phrase" "-"
    text: str
    pos: int


def tokenize(query: str) -> list[Token]:
    """The query's tokens; a field is ``name:`` directly followed by its value."""
    tokens: list[Token] = []
    i, n = 0, len(query)
    while i < n:
        c = query[i]
        if c.isspace():
            i += 1
        elif c in "()":
            tokens.append(Token(c, c, i))
            i += 1
        elif c == '"':
            end = query.find('"', i + 1)
            if end < 0:
                raise QuerySyntaxError("unclosed quote", query, i)
            if not query[i + 1 : end].strip():
                raise QuerySyntaxError("empty phrase", query, i)
            tokens.append(Token("phrase", query[i + 1 : end], i))
            i = end + 1
        elif c == "-" and i + 1 < n and not query[i + 1].isspace() and query[i + 1] != ")":
            tokens.append(Token("-", c, i))
            i += 1
        else:
            start = i
            while i < n and not query[i].isspace() and query[i] not in '()"':
                if query[i] == ":" and query[start:i].lower() in FIELDS:
                    break
                i += 1
            word = query[start:i]
            if i < n and query[i] == ":" and word.lower() in FIELDS:
                tokens.append(Token("field", word.lower(), start))
                i += 1
                if i >= n or query[i].isspace() or query[i] in "()":
                    raise QuerySyntaxError(f"{word}: needs a value", query, i)
            elif word in _OPERATORS:
                tokens.append(Token("op", word, start))
            else:
                tokens.append(Token("word", word, start))
    return tokens


# -- the tree ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Text:
    """A word or phrase, in one FTS column (``column`` None: any)."""

    text: str
    column: str | None = None
    phrase: bool = False
    prefix: bool = False


@dataclass(frozen=True, slots=True)
class Compare:
    """A condition on a plain column: ``op`` is one of = < >= > flag noflag account."""

    field: str
    op: str
    value: str | int | float


@dataclass(frozen=True, slots=True)
class Not:
    item: Node


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Node, ...]


Node = Text | Compare | Not | And | Or


class _Parser:
    def __init__(self, query: str) -> None:
        self.query = query
        self.tokens = tokenize(query)
        self.i = 0

    def error(self, message: str, pos: int | None = None) -> QuerySyntaxError:
        if pos is None:
            pos = self.tokens[self.i].pos if self.i < len(self.tokens) else len(self.query)
        return QuerySyntaxError(message, self.query, pos)

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def parse(self) -> Node:
        if not self.tokens:
            return And(())
        node = self.or_()
        tok = self.peek()
        if tok is not None:
            raise self.error("unmatched ')'" if tok.kind == ")" else f"unexpected {tok.text!r}")
        return node

    def or_(self) -> Node:
        items = [self.and_()]
        while (tok := self.peek()) is not None and tok.kind == "op" and tok.text == "OR":
            self.take()
            items.append(self.and_())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_(self) -> Node:
        items = [self.unary()]
        while (tok := self.peek()) is not None and tok.kind != ")":
            if tok.kind == "op" and tok.text == "OR":
                break
            if tok.kind == "op" and tok.text == "AND":
                self.take()
            items.append(self.unary())
        return items[0] if len(items) == 1 else And(tuple(items))

    def unary(self) -> Node:
        tok = self.peek()
        if tok is None:
            raise self.error("the query ends where a term was expected")
        if tok.kind == "-" or (tok.kind == "op" and tok.text == "NOT"):
            self.take()
            return Not(self.unary())
        return self.primary()

    def primary(self) -> Node:
        tok = self.take()
        if tok.kind == "(":
            node = self.or_()
            close = self.peek()
            if close is None or close.kind != ")":
                raise self.error(
                    "missing ')'" if close is None else f"expected ')' for the '(' at {tok.pos + 1}"
                )
            self.take()
            return node
        if tok.kind == ")":
            raise self.error("unmatched ')'", tok.pos)
        if tok.kind == "op":
            raise self.error(f"{tok.text} needs a term on each side", tok.pos)
        if tok.kind == "field":
            value = self.peek()
            if value is None or value.kind not in ("word", "phrase"):
                raise self.error(f"{tok.text}: needs a value")
            self.take()
            return self.field(tok, value)
        return _text(tok, None)

    def field(self, field: Token, value: Token) -> Node:
        name, text = field.text, value.text
        if name in TEXT_FIELDS:
            return _text(value, TEXT_FIELDS[name])
        if name == "folder":
            return Compare("folder", "=", text)
        if name == "account":
            return Compare("account", "account", text)
        if name == "id":
            return Compare("message_id", "=", text if text.startswith("<") else f"<{text}>")
        if name in ("larger", "smaller"):
            size = _size(text)
            if size is None:
                raise self.error(f"{name}: expects a size like 500K or 5M", value.pos)
            return Compare("size", ">" if name == "larger" else "<", size)
        if name == "has":
            if text.lower() not in ("attachment", "attachments"):
                raise self.error("has: knows only 'attachment'", value.pos)
            return Compare("attachments", ">", 0)
        if name == "is":
            flag = FLAG_NAMES.get(text.lower())
            if flag is None:
                raise self.error(f"is: expects one of {', '.join(FLAG_NAMES)}", value.pos)
            return Compare("flags", "flag" if flag[1] else "noflag", flag[0])
        return self.dates(name, value)

    def dates(self, name: str, value: Token) -> Node:
        text = value.text
        if name == "date":
            lo_text, dots, hi_text = text.partition("..")
            lo = self.day(lo_text, value, 0) if lo_text else None
            hi = (
                self.day(hi_text, value, len(lo_text) + 2, end=True)
                if hi_text
                else (None if dots else self.day(lo_text, value, 0, end=True))
            )
            if lo is None and hi is None:
                raise self.error("date: needs a date on at least one side of '..'", value.pos)
            parts: list[Node] = []
            if lo is not None:
                parts.append(Compare("date", ">=", lo))
            if hi is not None:
                parts.append(Compare("date", "<", hi))
            return parts[0] if len(parts) == 1 else And(tuple(parts))
        day = self.day(text, value, 0)
        return Compare("date", "<" if name == "before" else ">=", day)

    def day(self, text: str, tok: Token, offset: int, *, end: bool = False) -> int:
        """A UTC timestamp: the first second of ``text`` (or the first second after it)."""
        pos = tok.pos + offset
        m = _DATE.fullmatch(text)
        if m is None:
            raise self.error(f"expected a date like 2024, 2024-03 or 2024-03-05: {text!r}", pos)
        year, month, day = int(m[1]), int(m[2] or 1), int(m[3] or 1)
        try:
            if not 1 <= month <= 12 or not 1 <= day <= calendar.monthrange(year, month)[1]:
                raise ValueError
            stamp = calendar.timegm((year, month, day, 0, 0, 0))
        except (ValueError, OverflowError):
            raise self.error(f"no such date: {text!r}", pos) from None
        if not end:
            return stamp
        if m[3]:
            return stamp + 86400
        if m[2]:
            return calendar.timegm((year + (month == 12), month % 12 + 1, 1, 0, 0, 0))
        return calendar.timegm((year + 1, 1, 1, 0, 0, 0))


def _size(text: str) -> int | None:
    m = _SIZE.fullmatch(text)
    if m is None:
        return None
    return int(float(m[1]) * _UNITS[m[2].lower()])


def _text(tok: Token, column: str | None) -> Text:
    if tok.kind == "phrase":
        return Text(tok.text, column, phrase=True)
    text = tok.text
    prefix = text.endswith("*") and len(text) > 1
    return Text(text.rstrip("*") if prefix else text, column, prefix=prefix)


def parse_query(query: str) -> Node:
    """The syntax tree of ``query`` (an empty query is ``And(())``: every message)."""
    return _Parser(query).parse()


# -- SQL -----------------------------------------------------------------------------------------
def _fts_string(node: Text) -> str:
    """One FTS5 query term: always a quoted string (the user's text can hold no FTS syntax;
    control characters, NUL included, end an FTS5 string early: they become spaces)."""
    text = _CONTROL.sub(" ", node.text)
    body = '"' + text.replace('"', '""') + '"'
    if node.prefix:
        body += "*"
    return f"{{{node.column}}} : {body}" if node.column else body


def _match(expr: str, params: list[object], by_date: bool) -> str:
    params.append(expr)
    # "+d.id" is no column for the planner: it walks the date index and probes the matches
    # instead of looking up every match and sorting them all (see to_sql)
    return f"{'+' if by_date else ''}d.id IN (SELECT rowid FROM fts WHERE fts MATCH ?)"


def _compile(node: Node, account: str, params: list[object], by_date: bool = False) -> str:
    if isinstance(node, Text):
        return _match(_fts_string(node), params, by_date)
    if isinstance(node, Compare):
        return _compare(node, account, params)
    if isinstance(node, Not):
        return f"NOT ({_compile(node.item, account, params, by_date)})"
    if not node.items:
        return "1"
    texts = [i for i in node.items if isinstance(i, Text)]
    rest = [i for i in node.items if not isinstance(i, Text)]
    joiner = " AND " if isinstance(node, And) else " OR "
    parts: list[str] = []
    if texts:  # one MATCH for all the node's text terms: FTS5 combines them itself
        parts.append(_match(joiner.join(_fts_string(t) for t in texts), params, by_date))
    parts += [_compile(i, account, params, by_date) for i in rest]
    return parts[0] if len(parts) == 1 else "(" + joiner.join(parts) + ")"


def _compare(node: Compare, account: str, params: list[object]) -> str:
    if node.op == "account":
        return "1" if str(node.value).lower() == account.lower() else "0"
    if node.op in ("flag", "noflag"):
        params.append(f"% {node.value} %")
        neg = "NOT " if node.op == "noflag" else ""
        return f"(' ' || m.flags || ' ') {neg}LIKE ?"
    if node.field == "folder":
        params.append(node.value)
        return "d.folder = ? COLLATE NOCASE"
    params.append(node.value)
    return f"d.{node.field} {node.op} ?"


def uses_state(node: Node) -> bool:
    """True when ``node``'s clause reads the state row ``m`` (the flags); otherwise the caller
    may filter, order and limit on ``d`` alone and join ``m`` for the rows it keeps."""
    if isinstance(node, Compare):
        return node.op in ("flag", "noflag")
    if isinstance(node, Not):
        return uses_state(node.item)
    if isinstance(node, And | Or):
        return any(uses_state(i) for i in node.items)
    return False


def to_sql(node: Node, account: str = "", *, by_date: bool = False) -> tuple[str, list[object]]:
    """``(where, params)`` selecting ``node``'s messages of ``account`` (see the module doc
    for the tables ``d``, ``m`` and ``fts`` the clause names).

    ``by_date``: the caller wants the newest few of many matches (its text terms are frequent,
    :func:`estimate` says): the clause then lets SQLite walk the messages newest first and stop
    early. Same rows either way; only the plan differs.
    """
    params: list[object] = []
    return _compile(node, account, params, by_date), params


def fts_terms(text: str) -> list[str]:
    """The tokens FTS5's ``unicode61 remove_diacritics 2`` makes of ``text`` (near enough for
    estimating how many messages a term matches): lower case, accents dropped, split at
    everything but letters and digits."""
    folded = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return _TOKEN.findall(folded.lower())


def estimate(node: Node, docs: Callable[[str, bool], int], total: int) -> int:
    """How many of ``total`` messages ``node``'s text terms may match, from ``docs(term,
    prefix)`` (the messages holding a term); conditions on other columns count as all."""
    if isinstance(node, Text):
        terms = fts_terms(node.text)
        if len(terms) != 1:
            # no token; or a phrase (an address is one too): its words side by side are far
            # rarer than each word, and walking the dates for a rare match costs the most
            return 0
        counts = [docs(t, node.prefix and i == len(terms) - 1) for i, t in enumerate(terms)]
        return min(counts)
    if isinstance(node, And):
        return min((estimate(i, docs, total) for i in node.items), default=total)
    if isinstance(node, Or):
        return min(total, sum(estimate(i, docs, total) for i in node.items))
    return total


def describe(node: Node) -> str:
    """A canonical text form of a tree (tests parse it back; logs show it)."""
    if isinstance(node, Text):
        return ("" if node.column is None else f"{node.column}:") + _fts_string(
            Text(node.text, None, node.phrase, node.prefix)
        )
    if isinstance(node, Compare):
        return f"{node.field}{node.op}{node.value!r}"
    if isinstance(node, Not):
        return f"NOT({describe(node.item)})"
    word = "AND" if isinstance(node, And) else "OR"
    return f"{word}(" + ", ".join(describe(i) for i in node.items) + ")"
