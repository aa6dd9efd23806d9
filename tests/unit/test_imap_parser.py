"""The pure IMAP response parser on canned server bytes (RFC 3501 examples, Dovecot, Gmail)."""

from __future__ import annotations

import contextlib
import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foundation import ImapProtocolError
from mailsync.core import parser as _parser_mod
from mailsync.core.parser import (
    Capability,
    Continuation,
    FetchResp,
    ListResp,
    Response,
    ResponseParser,
    StatusResp,
    Tagged,
    Untagged,
    capabilities_in,
    parse_internaldate,
)

DATA = Path(__file__).parent / "data" / "imap"


def parse(data: bytes, **kwargs: object) -> list[Response]:
    parser = ResponseParser(**kwargs)  # type: ignore[arg-type]
    out = parser.feed(data)
    assert not parser.pending()
    return out


def one(data: bytes) -> Response:
    (resp,) = parse(data)
    return resp


# -- status responses, greeting, codes ----------------------------------------------------------


def test_dovecot_greeting_with_capability_code() -> None:
    resp = one(
        b"* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ "
        b"AUTH=PLAIN] Dovecot (Debian) ready.\r\n"
    )
    assert isinstance(resp, Untagged)
    assert (resp.kind, resp.number, resp.code_name) == ("OK", None, "CAPABILITY")
    assert resp.text == "Dovecot (Debian) ready."
    assert capabilities_in(resp) == frozenset(
        {
            "IMAP4REV1",
            "SASL-IR",
            "LOGIN-REFERRALS",
            "ID",
            "ENABLE",
            "IDLE",
            "LITERAL+",
            "AUTH=PLAIN",
        }
    )


def test_capability_untagged() -> None:
    resp = one(b"* CAPABILITY IMAP4rev1 STARTTLS AUTH=GSSAPI LOGINDISABLED\r\n")
    assert resp == Capability(frozenset({"IMAP4REV1", "STARTTLS", "AUTH=GSSAPI", "LOGINDISABLED"}))
    assert capabilities_in(resp) == resp.names
    assert capabilities_in(Continuation("x")) is None


@pytest.mark.parametrize(
    ("line", "code", "args"),
    [
        (b"* OK [UIDVALIDITY 3857529045] UIDs valid\r\n", "UIDVALIDITY 3857529045", (3857529045,)),
        (b"* OK [UIDNEXT 4392] Predicted next UID\r\n", "UIDNEXT 4392", (4392,)),
        (
            b"* OK [HIGHESTMODSEQ 715194045007] Highest\r\n",
            "HIGHESTMODSEQ 715194045007",
            (715194045007,),
        ),
        (b"* OK [UNSEEN 12] Message 12 is first unseen\r\n", "UNSEEN 12", (12,)),
        (
            b"* OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] Limited\r\n",
            "PERMANENTFLAGS (\\Deleted \\Seen \\*)",
            (("\\Deleted", "\\Seen", "\\*"),),
        ),
        (b"* OK [PERMANENTFLAGS ()] Read-only mailbox.\r\n", "PERMANENTFLAGS ()", ((),)),
        (b"* OK [NOMODSEQ] Sorry\r\n", "NOMODSEQ", ()),
        (b"* NO [ALERT] System shutdown in 10 minutes\r\n", "ALERT", ()),
    ],
)
def test_untagged_codes(line: bytes, code: str, args: tuple[object, ...]) -> None:
    resp = one(line)
    assert isinstance(resp, Untagged)
    assert resp.code == code
    assert resp.code_args == args
    assert resp.code_name == code.split()[0]


def test_examine_response_rfc3501() -> None:
    data = (
        b"* 17 EXISTS\r\n"
        b"* 2 RECENT\r\n"
        b"* OK [UNSEEN 8] Message 8 is first unseen\r\n"
        b"* OK [UIDVALIDITY 3857529045] UIDs valid\r\n"
        b"* OK [UIDNEXT 4392] Predicted next UID\r\n"
        b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
        b"* OK [PERMANENTFLAGS ()] No permanent flags permitted\r\n"
        b"* OK [HIGHESTMODSEQ 90060115205545359] Highest mailbox mod-sequence\r\n"
        b"A932 OK [READ-ONLY] EXAMINE completed\r\n"
    )
    out = parse(data)
    assert out[0] == Untagged("EXISTS", 17, None, (), "", ())
    assert out[1] == Untagged("RECENT", 2, None, (), "", ())
    flags = out[5]
    assert isinstance(flags, Untagged) and flags.kind == "FLAGS"
    assert flags.values == (("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"),)
    assert out[-1] == Tagged("A932", "OK", "READ-ONLY", (), "EXAMINE completed")
    codes = {r.code_name: r.code_args for r in out if isinstance(r, Untagged) and r.code}
    assert codes["HIGHESTMODSEQ"] == (90060115205545359,)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"a1 OK LOGIN completed\r\n", Tagged("a1", "OK", None, (), "LOGIN completed")),
        (b"a2 no [TRYCREATE] No such\r\n", Tagged("a2", "NO", "TRYCREATE", (), "No such")),
        (b"A3 BAD Command unknown\r\n", Tagged("A3", "BAD", None, (), "Command unknown")),
        (
            b"x.1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n",
            Tagged("x.1", "NO", "AUTHENTICATIONFAILED", (), "Authentication failed."),
        ),
        (
            b"A003 OK [APPENDUID 38505 3955] APPEND completed\r\n",
            Tagged("A003", "OK", "APPENDUID 38505 3955", (38505, 3955), "APPEND completed"),
        ),
        (
            b"a4 OK [COPYUID 38505 304,319:320 3956:3958] Done\r\n",
            Tagged(
                "a4",
                "OK",
                "COPYUID 38505 304,319:320 3956:3958",
                (
                    38505,
                    "304,319:320",
                    "3956:3958",
                ),
                "Done",
            ),
        ),
        (b"a5 OK\r\n", Tagged("a5", "OK", None, (), "")),
        (
            b"a6 NO [NONEXISTENT] Mailbox doesn't exist: x\n",
            Tagged("a6", "NO", "NONEXISTENT", (), "Mailbox doesn't exist: x"),
        ),
    ],
)
def test_tagged(line: bytes, expected: Tagged) -> None:
    assert one(line) == expected


def test_bye_and_preauth() -> None:
    bye, pre = parse(
        b"* BYE Autologout; idle for too long\r\n* PREAUTH [CAPABILITY IMAP4rev1] hi\r\n"
    )
    assert bye == Untagged("BYE", None, None, (), "Autologout; idle for too long", ())
    assert isinstance(pre, Untagged) and pre.kind == "PREAUTH"
    assert capabilities_in(pre) == frozenset({"IMAP4REV1"})


@pytest.mark.parametrize(
    ("line", "text"),
    [
        (b"+ Ready for additional command text\r\n", "Ready for additional command text"),
        (b"+ \r\n", ""),
        (b"+\r\n", ""),
        (b"+ YGgGCSqGSIb3EgECAgIBAAD/////\r\n", "YGgGCSqGSIb3EgECAgIBAAD/////"),
    ],
)
def test_continuation(line: bytes, text: str) -> None:
    assert one(line) == Continuation(text)


def test_braces_in_free_text_are_not_literals() -> None:
    """RFC 3501 ``text`` may end in "{5}": status lines and continuations carry no literal."""
    out = parse(b"* OK [ALERT] read this {5}\r\na1 NO no {3}\r\n+ go {2}\r\n* 2 EXISTS\r\n")
    assert [getattr(r, "text", None) for r in out[:3]] == ["read this {5}", "no {3}", "go {2}"]
    assert out[3] == Untagged("EXISTS", 2, None, (), "", ())


def test_literal_delimiter() -> None:
    resp = one(b"* LIST () {1}\r\n/ a/b\r\n")
    assert isinstance(resp, ListResp) and (resp.delimiter, resp.name) == ("/", "a/b")


def test_search_enabled_and_expunge() -> None:
    out = parse(b"* SEARCH 2 84 882\r\n* SEARCH\r\n* ENABLED CONDSTORE\r\n* 44 EXPUNGE\r\n")
    assert [(r.kind, r.number, r.values) for r in out if isinstance(r, Untagged)] == [
        ("SEARCH", None, (2, 84, 882)),
        ("SEARCH", None, ()),
        ("ENABLED", None, ("CONDSTORE",)),
        ("EXPUNGE", 44, ()),
    ]


def test_namespace_with_nil_values() -> None:
    (resp,) = parse(b'* NAMESPACE (("" "/")) NIL (("Public Folders/" "/"))\r\n')
    assert isinstance(resp, Untagged)
    assert resp.values == ((("", "/"),), None, (("Public Folders/", "/"),))


def test_esearch_and_vanished() -> None:
    esearch, vanished = parse(
        b'* ESEARCH (TAG "a567") UID MIN 7 MAX 3800 ALL 7:3800\r\n'
        b"* VANISHED (EARLIER) 41,43:116\r\n"
    )
    assert isinstance(esearch, Untagged) and esearch.kind == "ESEARCH"
    assert esearch.values == (("TAG", "a567"), "UID", "MIN", 7, "MAX", 3800, "ALL", "7:3800")
    assert isinstance(vanished, Untagged)
    assert vanished.values == (("EARLIER",), "41,43:116")


# -- Gmail (examples from Google's IMAP extensions documentation) -------------------------------


def test_gmail_session_bytes() -> None:
    out = parse(
        b"* OK Gimap ready for requests from 127.0.0.1 h4mb12345678abc\r\n"
        b"* CAPABILITY IMAP4rev1 UNSELECT IDLE NAMESPACE QUOTA ID XLIST CHILDREN X-GM-EXT-1 "
        b"XYZZY SASL-IR AUTH=XOAUTH2 AUTH=PLAIN AUTH=PLAIN-CLIENTTOKEN AUTH=OAUTHBEARER\r\n"
        b'* LIST (\\HasNoChildren) "/" "INBOX"\r\n'
        b'* LIST (\\HasChildren \\Noselect) "/" "[Gmail]"\r\n'
        b'* LIST (\\All \\HasNoChildren) "/" "[Gmail]/All Mail"\r\n'
        b'* LIST (\\HasNoChildren \\Important) "/" [Gmail]/Important\r\n'
        b"* 1 FETCH (X-GM-THRID 1278455344230334865 X-GM-MSGID 1278455344230334865 "
        b'X-GM-LABELS (\\Inbox \\Sent Important "Muy Importante") UID 1 RFC822.SIZE 2000 '
        b'INTERNALDATE "01-Jan-2020 10:00:00 +0000" FLAGS (\\Seen))\r\n'
        b"a3 OK Success\r\n"
    )
    assert isinstance(out[0], Untagged) and out[0].text.startswith("Gimap ready")
    assert isinstance(out[1], Capability) and "X-GM-EXT-1" in out[1].names
    names = [r.name for r in out if isinstance(r, ListResp)]
    assert names == ["INBOX", "[Gmail]", "[Gmail]/All Mail", "[Gmail]/Important"]
    assert isinstance(out[4], ListResp) and out[4].flags == {"\\All", "\\HasNoChildren"}
    fetch = out[6]
    assert isinstance(fetch, FetchResp)
    assert (fetch.uid, fetch.size, fetch.flags) == (1, 2000, ("\\Seen",))
    assert fetch.other["X-GM-LABELS"] == ("\\Inbox", "\\Sent", "Important", "Muy Importante")
    assert fetch.other["X-GM-THRID"] == 1278455344230334865


# -- LIST / STATUS --------------------------------------------------------------------------------


def test_list_variants() -> None:
    out = parse(
        b'* LIST (\\HasNoChildren) "." INBOX\r\n'
        b'* LIST (\\Noselect \\HasChildren) "/" "~/Mail/foo"\r\n'
        b'* LIST (\\HasNoChildren) "\\\\" "Sent Items"\r\n'
        b'* LIST (\\Noselect) NIL ""\r\n'
        b'* LIST (\\HasNoChildren \\Sent) "/" "Entw&APw-rfe/&ZeVnLIqe-"\r\n'
        b'* LIST () "/" {10}\r\nab"c\\d\r\nef\r\n'
        b'* LIST (\\HasNoChildren) "." inbox\r\n'
        b'* LIST (\\NOSELECT \\hasnochildren) "." 2024\r\n'
        b'* LIST (\\HasNoChildren) "/" "x" ("CHILDINFO" ("SUBSCRIBED"))\r\n'
        b'* LSUB () "." #news.comp.mail.misc\r\n'
    )
    assert all(isinstance(r, ListResp) for r in out)
    lists = [r for r in out if isinstance(r, ListResp)]
    assert lists[0] == ListResp(frozenset({"\\HasNoChildren"}), ".", "INBOX", b"INBOX")
    assert lists[1].flags == {"\\Noselect", "\\HasChildren"}
    assert (lists[1].delimiter, lists[1].name) == ("/", "~/Mail/foo")
    assert (lists[2].delimiter, lists[2].name) == ("\\", "Sent Items")
    assert (lists[3].delimiter, lists[3].name, lists[3].raw_name) == (None, "", b"")
    assert lists[4].name == "Entwürfe/日本語"
    assert lists[4].raw_name == b"Entw&APw-rfe/&ZeVnLIqe-"
    assert (lists[5].name, lists[5].raw_name) == ('ab"c\\d\r\nef', b'ab"c\\d\r\nef')
    assert (lists[6].name, lists[6].raw_name) == ("INBOX", b"inbox")
    assert lists[7].flags == {"\\Noselect", "\\HasNoChildren"}
    assert (lists[7].name, lists[7].raw_name) == ("2024", b"2024")
    assert lists[8].name == "x"
    assert lists[9].name == "#news.comp.mail.misc"


def test_list_name_with_escaped_quote_and_8bit() -> None:
    (a, b) = parse(b'* LIST () "/" "say \\"hi\\" \\\\ now"\r\n* LIST () "/" "caf\xc3\xa9"\r\n')
    assert isinstance(a, ListResp) and isinstance(b, ListResp)
    assert (a.name, a.raw_name) == ('say "hi" \\ now', b'say "hi" \\ now')
    # UTF8=ACCEPT servers send UTF-8 names: decoded leniently, wire bytes kept
    assert (b.name, b.raw_name) == ("café", b"caf\xc3\xa9")


def test_list_bad_mutf7_is_lenient() -> None:
    resp = one(b'* LIST () "/" "&AGE-bad&"\r\n')
    assert isinstance(resp, ListResp)
    assert (resp.name, resp.raw_name) == ("&AGE-bad&", b"&AGE-bad&")


def test_status() -> None:
    out = parse(
        b"* STATUS blurdybloop (MESSAGES 231 UIDNEXT 44292)\r\n"
        b'* STATUS "Entw&APw-rfe" (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 1700000000 unseen 0 '
        b"HIGHESTMODSEQ 1)\r\n"
        b"* STATUS {5}\r\na b c (MESSAGES 1)\r\n"
    )
    assert out[0] == StatusResp("blurdybloop", b"blurdybloop", {"MESSAGES": 231, "UIDNEXT": 44292})
    assert isinstance(out[1], StatusResp)
    assert out[1].mailbox == "Entwürfe"
    assert out[1].items == {
        "MESSAGES": 0,
        "UIDNEXT": 1,
        "UIDVALIDITY": 1700000000,
        "UNSEEN": 0,
        "HIGHESTMODSEQ": 1,
    }
    assert out[2] == StatusResp("a b c", b"a b c", {"MESSAGES": 1})


# -- FETCH ---------------------------------------------------------------------------------------


def test_fetch_metadata_line() -> None:
    resp = one(
        b"* 12 FETCH (UID 7 RFC822.SIZE 44827 FLAGS (\\Seen $Forwarded) "
        b'INTERNALDATE "17-Jul-1996 02:44:25 -0700" MODSEQ (12121231000))\r\n'
    )
    assert resp == FetchResp(
        seq=12,
        uid=7,
        flags=("\\Seen", "$Forwarded"),
        size=44827,
        internaldate="17-Jul-1996 02:44:25 -0700",
        body=None,
        modseq=12121231000,
        other={},
    )


def test_fetch_bodies_with_literals() -> None:
    msg = b"Subject: hi\r\n\r\nline 1\r\n)\r\n* 9 FETCH (BODY[] {3}\r\n"
    data = (
        b'* 1 FETCH (UID 10 FLAGS () INTERNALDATE " 7-Feb-2024 10:00:00 +0000" BODY[] {%d}\r\n'
        b"%s)\r\n"
        % (len(msg), msg)
        + b"* 2 FETCH (UID 11 BODY[] {0}\r\n FLAGS (\\Seen))\r\n"
        + b"* 3 FETCH (UID 12 RFC822 NIL)\r\n"
        + b"* 4 FETCH (UID 13 BODY[] ~{4}\r\n\x00\x01\x02\x03)\r\n"
        + b'* 5 FETCH (UID 14 BODY[] "quoted")\r\n'
        + b"* 6 FETCH (UID 15 BODY[]<0> {2}\r\nab BINARY[] {1}\r\nz)\r\n"
        + b"a9 OK Fetch completed (0.001 + 0.000 secs).\r\n"
    )
    out = parse(data)
    f = [r for r in out if isinstance(r, FetchResp)]
    assert [r.uid for r in f] == [10, 11, 12, 13, 14, 15]
    assert f[0].body == msg
    assert f[0].flags == ()
    assert parse_internaldate(f[0].internaldate or "") == datetime(2024, 2, 7, 10, tzinfo=UTC)
    assert (f[1].body, f[1].flags) == (b"", ("\\Seen",))
    assert f[2].body is None
    assert f[3].body == b"\x00\x01\x02\x03"
    assert f[4].body == b"quoted"
    assert f[5].body == b"z"  # the last body item wins
    assert isinstance(out[-1], Tagged)


def test_fetch_other_items_keep_structure() -> None:
    resp = one(
        b"* 1 FETCH (UID 1 BODY[HEADER.FIELDS (FROM SUBJECT)] {16}\r\nSubject: x\r\n\r\n\r\n "
        b'X-GM-LABELS ("\\\\Important" Work) X-GM-MSGID 1278455344230334865 '
        b'ENVELOPE ("date" "subj" NIL NIL NIL NIL NIL NIL NIL "<id@x>"))\r\n'
    )
    assert isinstance(resp, FetchResp)
    assert resp.other["BODY[HEADER.FIELDS (FROM SUBJECT)]"] == b"Subject: x\r\n\r\n\r\n"
    assert resp.other["X-GM-LABELS"] == ("\\Important", "Work")
    assert resp.other["X-GM-MSGID"] == 1278455344230334865
    envelope = resp.other["ENVELOPE"]
    assert isinstance(envelope, tuple) and envelope[-1] == "<id@x>" and envelope[2] is None


def test_unsolicited_fetch_flags() -> None:
    resp = one(b"* 5 FETCH (FLAGS (\\Deleted))\r\n")
    assert resp == FetchResp(5, None, ("\\Deleted",), None, None, None, None, {})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("17-Jul-1996 02:44:25 -0700", datetime(1996, 7, 17, 9, 44, 25, tzinfo=UTC)),
        (" 1-jan-2000 00:00:00 +0530", datetime(1999, 12, 31, 18, 30, tzinfo=UTC)),
        ("1-Dec-2023 23:59:59 +0000", datetime(2023, 12, 1, 23, 59, 59, tzinfo=UTC)),
    ],
)
def test_parse_internaldate(raw: str, expected: datetime) -> None:
    got = parse_internaldate(raw)
    assert got == expected
    assert got.utcoffset() is not None


def test_parse_internaldate_keeps_offset() -> None:
    got = parse_internaldate("17-Jul-1996 02:44:25 -0700")
    assert got.utcoffset() == -timedelta(hours=7)


@pytest.mark.parametrize("raw", ["", "17-Foo-1996 02:44:25 -0700", "31-Feb-2020 00:00:00 +0000"])
def test_parse_internaldate_bad(raw: str) -> None:
    with pytest.raises(ImapProtocolError):
        parse_internaldate(raw)


# -- literals: spill, chunking --------------------------------------------------------------------


class _Sink:
    def __init__(self, size: int, log: list[tuple[int, bytes]]) -> None:
        self.size = size
        self.buf: list[bytes] = []
        self.log = log

    def write(self, data: bytes) -> None:
        self.buf.append(data)

    def finish(self) -> object:
        data = b"".join(self.buf)
        self.log.append((self.size, data))
        return ("spilled", len(data))


def test_large_literal_spills_to_sink_in_pieces() -> None:
    log: list[tuple[int, bytes]] = []
    parser = ResponseParser(lambda n: _Sink(n, log), spill_threshold=10)
    big = bytes(range(256)) * 40
    data = b"* 1 FETCH (UID 1 BODY[] {%d}\r\n%s)\r\n* 2 FETCH (UID 2 BODY[] {5}\r\nsmall)\r\n" % (
        len(big),
        big,
    )
    out: list[Response] = []
    for i in range(0, len(data), 333):
        out += parser.feed(data[i : i + 333])
    assert not parser.pending()
    assert log == [(len(big), big)]
    assert [r.body for r in out if isinstance(r, FetchResp)] == [("spilled", len(big)), b"small"]


def test_spilled_literal_is_streamed_not_buffered() -> None:
    """A literal above the threshold reaches the sink piece by piece as chunks arrive."""
    log: list[tuple[int, bytes]] = []
    sinks: list[_Sink] = []

    def factory(n: int) -> _Sink:
        sinks.append(_Sink(n, log))
        return sinks[-1]

    parser = ResponseParser(factory, spill_threshold=1024 * 1024)
    big = bytes(range(256)) * (3 * 4096)  # 3 MiB
    head = b"* 1 FETCH (UID 1 BODY[] {%d}\r\n" % len(big)
    data = head + big + b" FLAGS (\\Seen))\r\n"
    got: list[Response] = []
    for i in range(0, len(data), 65536):
        got += parser.feed(data[i : i + 65536])
        if 0 < i < len(big) - 65536:
            assert sinks and sum(map(len, sinks[0].buf)) == i + 65536 - len(head)
    assert max(map(len, sinks[0].buf)) <= 65536
    assert log == [(len(big), big)]
    assert got == [FetchResp(1, 1, ("\\Seen",), None, None, ("spilled", len(big)), None, {})]


def test_long_line_in_small_chunks() -> None:
    uids = list(range(1, 60_001))
    data = b"* SEARCH " + b" ".join(b"%d" % u for u in uids) + b"\r\n"
    parser = ResponseParser()
    got: list[Response] = []
    for i in range(0, len(data), 1000):
        got += parser.feed(data[i : i + 1000])
    assert len(got) == 1
    assert isinstance(got[0], Untagged) and list(got[0].values) == uids


def test_pending_tracks_partial_responses() -> None:
    parser = ResponseParser()
    assert not parser.pending()
    assert parser.feed(b"* 1 FETCH (UID 1 BODY[] {5}\r\nab") == []
    assert parser.pending()
    assert parser.feed(b"cde)\r") == []
    assert parser.pending()
    (resp,) = parser.feed(b"\n")
    assert isinstance(resp, FetchResp) and resp.body == b"abcde"
    assert not parser.pending()


STREAM = (
    b"* OK [CAPABILITY IMAP4rev1 LITERAL+] ready\r\n"
    b'* LIST (\\HasNoChildren) "." "Entw&APw-rfe"\r\n'
    b"* 1 FETCH (UID 1 BODY[] {12}\r\nhello\r\nworld FLAGS (\\Seen))\r\n"
    b"* 2 FETCH (UID 2 BODY[] {0}\r\n)\r\n"
    b"+ go\r\n"
    b"a1 OK done\r\n"
)


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=20))
def test_any_chunking_gives_same_responses(cuts: list[int]) -> None:
    expected = parse(STREAM)
    parser = ResponseParser()
    got: list[Response] = []
    bounds = [0, *sorted(cuts), len(STREAM)]
    for a, b in itertools.pairwise(bounds):
        got += parser.feed(STREAM[a:b])
    assert got == expected
    assert not parser.pending()


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(
    bodies=st.lists(st.binary(max_size=300), min_size=1, max_size=6),
    data=st.data(),
    spill=st.sampled_from([None, 0, 16]),
)
def test_random_literals_random_chunks(
    bodies: list[bytes], data: st.DataObject, spill: int | None
) -> None:
    stream = (
        b"".join(
            b"* %d FETCH (UID %d BODY[] {%d}\r\n%s FLAGS (\\Seen))\r\n" % (i + 1, i + 1, len(b), b)
            for i, b in enumerate(bodies)
        )
        + b"a1 OK done\r\n"
    )
    log: list[tuple[int, bytes]] = []
    if spill is None:
        parser = ResponseParser()
    else:
        parser = ResponseParser(lambda n: _Sink(n, log), spill_threshold=spill)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=30))
    bounds = [0, *sorted(cuts), len(stream)]
    got: list[Response] = []
    for a, b in itertools.pairwise(bounds):
        got += parser.feed(stream[a:b])
    fetches = [r for r in got if isinstance(r, FetchResp)]
    assert [r.uid for r in fetches] == list(range(1, len(bodies) + 1))
    assert all(r.flags == ("\\Seen",) for r in fetches)
    if spill is None:
        assert [r.body for r in fetches] == bodies
    else:
        spilled = {len(b) for b in bodies if len(b) > spill}
        for r, body in zip(fetches, bodies, strict=True):
            want = ("spilled", len(body)) if len(body) in spilled else body
            assert r.body == want
        assert [d for _, d in log] == [b for b in bodies if len(b) > spill]
    assert got[-1] == Tagged("a1", "OK", None, (), "done")
    assert not parser.pending()


# -- garbage -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"* 1 FETCH (UID 1\r\n",
        b"* 1 FETCH UID 1)\r\n",
        b"* 1 FETCH (UID 1 FLAGS)\r\n",
        b"* 1 FETCH (UID x)\r\n",
        b'* 1 FETCH (UID 1 FLAGS "\\Seen)\r\n',
        b'* LIST (\\Noselect) "/"\r\n',
        b"* STATUS x MESSAGES 1\r\n",
        b"* STATUS x (MESSAGES)\r\n",
        b"a1 MAYBE fine\r\n",
        b"\r\n",
        b"(a1 OK\r\n",
        b"* \r\n",
        b"* 12\r\n",
        b"* (x)\r\n",
        b"* 1 FETCH (UID 1 ]BODY)\r\n",
        b"* 1 FETCH (UID 1) {5}\r\nabcde\r\n",
        b"* LIST () {1}\r\n\x00\r\n",
    ],
)
def test_garbage_raises_protocol_error(data: bytes) -> None:
    parser = ResponseParser()
    with pytest.raises(ImapProtocolError):
        parser.feed(data)
    with pytest.raises(ImapProtocolError):  # the parser stays broken: the stream is lost
        parser.feed(b"a1 OK fine\r\n")


def test_protocol_error_quotes_offending_bytes() -> None:
    with pytest.raises(ImapProtocolError, match="MAYBE"):
        ResponseParser().feed(b"a1 MAYBE fine\r\n")


def test_overlong_line_is_refused() -> None:
    parser = ResponseParser(max_line=100)
    parser.feed(b"* SEARCH" + b" 1" * 40)
    with pytest.raises(ImapProtocolError, match="longer"):
        parser.feed(b" 1" * 40)


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_random_bytes_only_raise_protocol_error(data: bytes) -> None:
    parser = ResponseParser()
    with contextlib.suppress(ImapProtocolError):
        parser.feed(data + b"\r\n")


@settings(max_examples=300)
@given(
    st.lists(
        st.sampled_from(
            [
                b"* ",
                b"1 ",
                b"FETCH ",
                b"(",
                b")",
                b'"',
                b"\\",
                b"{3}\r\n",
                b"NIL ",
                b"UID ",
                b"FLAGS ",
                b"BODY[] ",
                b"LIST ",
                b"STATUS ",
                b"[",
                b"]",
                b"a1 ",
                b"OK ",
                b"\r\n",
                b"~{0}\r\n",
                b"x",
                b"+ ",
            ]
        ),
        max_size=30,
    )
)
def test_imap_like_garbage_only_raises_protocol_error(pieces: list[bytes]) -> None:
    parser = ResponseParser()
    with contextlib.suppress(ImapProtocolError):
        parser.feed(b"".join(pieces) + b"\r\n")


# -- real Dovecot bytes -------------------------------------------------------------------------


def _fixtures() -> list[Path]:
    return sorted(DATA.glob("*.bin"))


@pytest.mark.parametrize("path", _fixtures(), ids=lambda p: p.name)
def test_real_dovecot_transcripts(path: Path) -> None:
    """Every server stream captured from Dovecot 2.3 parses, in one piece and byte by byte."""
    data = path.read_bytes()
    whole = parse(data)
    assert whole, "empty transcript"
    assert isinstance(whole[-1], Tagged | Untagged)
    parser = ResponseParser()
    step: list[Response] = []
    for i in range(0, len(data), 7):
        step += parser.feed(data[i : i + 7])
    assert step == whole


def _load(name: str) -> list[Response]:
    return parse((DATA / name).read_bytes())


def test_dovecot_list_and_status() -> None:
    out = _load("dovecot_list_status.bin")
    lists = [r for r in out if isinstance(r, ListResp)]
    names = {r.name: r for r in lists[:10]}
    assert set(names) == {
        "Archive",
        "&amp",
        'quote"back\\slash',
        "日本語",
        "a",
        "a/b",
        "a/b/c",
        "Sent Items",
        "Entwürfe",
        "INBOX",
    }
    assert names["a"].flags == {"\\Noselect", "\\HasChildren"}
    assert names["日本語"].raw_name == b"&ZeVnLIqe-"
    assert names['quote"back\\slash'].raw_name == b'quote"back\\slash'
    assert all(r.delimiter == "/" for r in lists)
    statuses = {r.mailbox: r.items for r in out if isinstance(r, StatusResp)}
    assert statuses["INBOX"]["MESSAGES"] == 4
    assert statuses["INBOX"]["UIDNEXT"] == 5
    assert set(statuses["Entwürfe"]) == {
        "MESSAGES",
        "UIDNEXT",
        "UIDVALIDITY",
        "UNSEEN",
        "HIGHESTMODSEQ",
    }
    assert len(statuses) == 7
    tagged = [r for r in out if isinstance(r, Tagged)]
    assert [t.status for t in tagged].count("NO") == 1


def test_dovecot_examine_and_fetch() -> None:
    out = _load("dovecot_examine_fetch.bin")
    codes = {r.code_name: r.code_args for r in out if isinstance(r, Untagged) and r.code}
    assert codes["UIDNEXT"] == (5,)
    assert codes["HIGHESTMODSEQ"] == (6,)
    assert codes["PERMANENTFLAGS"] == ((),)
    assert isinstance(codes["UIDVALIDITY"][0], int)
    fetches = [r for r in out if isinstance(r, FetchResp)]
    meta = fetches[:4]
    assert [(m.uid, m.size, m.modseq) for m in meta] == [
        (1, 189, 2),
        (2, 215, 4),
        (3, 41489, 5),
        (4, 194, 6),
    ]
    assert meta[1].flags == ("\\Flagged", "\\Seen", "\\Recent", "$Forwarded")
    bodies = [f for f in fetches if f.body is not None and f.uid is not None][:4]
    assert [len(f.body) for f in bodies if isinstance(f.body, bytes)] == [189, 215, 41489, 194]
    assert isinstance(bodies[1].body, bytes)
    assert b")\r\n* 3 FETCH (BODY[] {5}\r\n" in bodies[1].body  # server bytes inside a literal
    headers = [f for f in fetches if "ENVELOPE" in f.other]
    assert len(headers) == 2
    head = headers[0].other["BODY[HEADER.FIELDS (FROM SUBJECT)]"]
    assert isinstance(head, bytes) and head.startswith(b"From: ")
    envelope = headers[0].other["ENVELOPE"]
    assert isinstance(envelope, tuple) and envelope[9] == "<m1@example.org>"
    assert isinstance(headers[0].body, bytes) and len(headers[0].body) == 189
    tagged = {t.tag: t.status for t in out if isinstance(t, Tagged)}
    assert (tagged["c9"], tagged["c10"], tagged["c12"]) == ("NO", "BAD", "OK")
    search = [r for r in out if isinstance(r, Untagged) and r.kind == "SEARCH"]
    assert search[0].values == (1, 2, 3, 4)


def test_dovecot_literal8() -> None:
    out = _load("dovecot_literal8.bin")
    (fetch,) = [r for r in out if isinstance(r, FetchResp)]
    assert fetch.other["BINARY[1]"] == b"\x00\x01\x02 binary \xff\xfe\r\n"
    assert fetch.other["BINARY.SIZE[1]"] == 15
    assert isinstance(fetch.body, bytes) and len(fetch.body) == fetch.size == 111


def test_dovecot_auth_failure() -> None:
    out = _load("dovecot_auth.bin")
    failed = out[1]
    assert isinstance(failed, Tagged)
    assert (failed.status, failed.code) == ("NO", "AUTHENTICATIONFAILED")
    assert capabilities_in(out[2]) is not None and "CONDSTORE" in (capabilities_in(out[2]) or ())


# -- the metadata fast path agrees with the general path ------------------------------------------

_ITEMS = st.sampled_from(
    [
        b"UID 7",
        b"uid 0012",
        b"RFC822.SIZE 44827",
        b"FLAGS ()",
        b"FLAGS (\\Seen)",
        b"FLAGS (\\Seen  $Forwarded \\Recent Junk)",
        b'INTERNALDATE "17-Jul-1996 02:44:25 -0700"',
        b'INTERNALDATE " 7-Jul-1996 02:44:25 +0000"',
        b"MODSEQ (12121231000)",
        b"FLAGS (\\Seen caf\xc3\xa9)",
    ]
)


@given(st.integers(0, 2**32), st.lists(_ITEMS, min_size=1, max_size=7))
def test_fast_fetch_path_matches_general_path(seq: int, items: list[bytes]) -> None:
    line = b"* %d FETCH (%s)" % (seq, b" ".join(items))
    assert _parser_mod._FAST_FETCH.fullmatch(line) is not None
    fast = one(line + b"\r\n")
    general = _parser_mod._untagged([line])
    assert fast == general


def test_fast_path_on_dovecot_metadata_lines() -> None:
    lines = [
        ln
        for ln in (DATA / "dovecot_examine_fetch.bin").read_bytes().split(b"\r\n")
        if b"RFC822.SIZE" in ln
    ]
    assert len(lines) == 8
    for ln in lines:
        assert _parser_mod._FAST_FETCH.fullmatch(ln) is not None
        assert one(ln + b"\r\n") == _parser_mod._untagged([ln])


@given(
    st.lists(_ITEMS, max_size=4),
    st.sampled_from([b"BODY[]", b"RFC822", b"BINARY[]", b"body[]"]),
    st.binary(max_size=40),
    st.lists(_ITEMS, max_size=4),
)
def test_fast_body_path_matches_general_path(
    before: list[bytes], key: bytes, body: bytes, after: list[bytes]
) -> None:
    head = b"* 3 FETCH (" + b"".join(i + b" " for i in before) + key + b" "
    tail = b"".join(b" " + i for i in after) + b")"
    assert _parser_mod._FAST_HEAD.fullmatch(head) is not None
    assert _parser_mod._FAST_TAIL.fullmatch(tail) is not None
    fast = one(head + b"{%d}\r\n" % len(body) + body + tail + b"\r\n")
    assert fast == _parser_mod._untagged([head, body, tail])
    assert isinstance(fast, FetchResp) and fast.body == body


def test_fast_path_fetch_responses_pickle_for_the_processes_modes() -> None:
    import pickle

    parser = ResponseParser()
    got = parser.feed(b"* 3 FETCH (UID 7 FLAGS (\\Seen) RFC822.SIZE 12)\r\n")
    assert isinstance(got[0], FetchResp)
    assert got[0].other is _parser_mod._NO_OTHER  # the fast path: shared, and must pickle
    assert pickle.loads(pickle.dumps(got)) == got
