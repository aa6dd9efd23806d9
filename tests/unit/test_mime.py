"""The index's MIME walk (mailsync.core.mime): fields, text, attachments, malformed input --
and, over generated corpus messages, the same text parts and attachments as the stdlib's
full parser finds."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

from hypothesis import given, settings
from hypothesis import strategies as st

from mailsync.core.mime import TEXT_CAP, extract
from testbed.corpus import generate_corpus
from testbed.mailgen import build_message


def _msg(head: str, body: bytes = b"hello\r\n") -> bytes:
    return head.replace("\n", "\r\n").encode() + b"\r\n" + body


def test_header_fields_decoded() -> None:
    doc = extract(
        _msg(
            "From: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <Juergen@Example.DE>\n"
            'To: a@x.org, "Bob, B." <b@y.org>\nCc: c@z.org\n'
            "Subject: =?utf-8?b?0JLRgdGC0YDQtdGH0LA=?= today\n"
            "Date: Tue, 05 Mar 2024 10:00:00 +0100\nMessage-ID: <m1@x>\n"
        )
    )
    assert doc.from_ == "Jürgen Müller <juergen@example.de>"
    assert doc.from_addr == "juergen@example.de"
    assert doc.to == "a@x.org, Bob, B. <b@y.org>"
    assert doc.cc == "c@z.org"
    assert doc.subject == "Встреча today"
    assert doc.date == 1709629200.0
    assert doc.message_id == "<m1@x>" and doc.body == "hello" and doc.error is None


def test_multipart_text_html_and_attachments() -> None:
    msg = EmailMessage()
    msg["From"] = "a@x.org"
    msg["Subject"] = "parts"
    msg.set_content("plain words here")
    msg.add_alternative(
        "<html><body><p>html &amp; words</p><script>x()</script></body></html>", subtype="html"
    )
    msg.add_attachment(
        b"%PDF-1.4 binary", maintype="application", subtype="pdf", filename="Übersicht 2024.pdf"
    )
    msg.add_attachment(b"\x89PNG", maintype="image", subtype="png", filename="a.png")
    doc = extract(msg.as_bytes())
    assert doc.body == "plain words here", "an alternative's plain part only"
    assert doc.attachments == (
        ("Übersicht 2024.pdf", "application/pdf"),
        ("a.png", "image/png"),
    )
    html_only = EmailMessage()
    html_only.set_content("<p>only&nbsp;html</p><style>p{}</style>", subtype="html")
    assert extract(html_only.as_bytes()).body.split() == ["only", "html"]


def test_transfer_encodings_and_charsets() -> None:
    qp = _msg(
        "Content-Type: text/plain; charset=iso-8859-1\n"
        "Content-Transfer-Encoding: quoted-printable\n",
        b"caf=E9 cr=E8me=\r\n br=FBl=E9e\r\n",
    )
    assert extract(qp).body == "café crème brûlée"
    b64 = _msg(
        "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n",
        b"0L/RgNC40LLQtdGC\r\n",
    )
    assert extract(b64).body == "привет"
    unknown = _msg("Content-Type: text/plain; charset=x-nonsense\n", "naïve".encode())
    assert extract(unknown).body == "naïve"


def test_rfc2231_names_and_nested_messages() -> None:
    raw = _msg(
        'Content-Type: multipart/mixed; boundary="b1"\n',
        b"--b1\r\nContent-Type: text/plain\r\n\r\nintro\r\n"
        b"--b1\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Disposition: attachment; filename*0*=utf-8''na%C3%AFve;"
        b' filename*1=".txt"\r\n\r\nxx\r\n'
        b"--b1\r\nContent-Type: message/rfc822\r\n\r\n"
        b"Subject: inner subject\r\nContent-Type: text/plain\r\n\r\ninner text\r\n"
        b"--b1--\r\n",
    )
    doc = extract(raw)
    assert doc.attachments == (("naïve.txt", "application/octet-stream"),)
    assert doc.body == "intro inner subject inner text"


def test_malformed_messages_are_indexed_as_far_as_they_parse() -> None:
    no_end = b"From: a@x.org\r\nSubject: cut\r\nX-Pad: " + b"y" * 100
    doc = extract(no_end)
    assert doc.subject == "cut" and doc.error == "no end of the header block"
    broken = _msg(
        'Content-Type: multipart/mixed; boundary="real"\nSubject: b\n',
        b"--realX\r\nContent-Type: text/plain\r\n\r\nsome text\r\n",
    )
    doc = extract(broken)
    assert "boundary 'real' not found" in (doc.error or "") and "some text" in doc.body
    unclosed = _msg('Content-Type: multipart/mixed; boundary="b"\n', b"--b\r\n\r\nstill read\r\n")
    assert extract(unclosed).body == "still read"
    bad_b64 = _msg("Content-Transfer-Encoding: base64\n", b"aGVsbG8gd29y!!bGQ=\r\n")
    assert extract(bad_b64).error is None
    eight_bit = b"Subject: Caf\xe9 \xff\r\nFrom: M\xfcller <m@x.org>\r\n\r\nbody\r\n"
    doc = extract(eight_bit)
    assert doc.subject == "Café ÿ" and doc.from_addr == "m@x.org"
    assert extract(b"").subject == "" and extract(b"\r\n\r\n").body == ""
    bad_date = extract(_msg("Date: yesterday-ish\n"))
    assert bad_date.date is None and "Date: unparseable" in (bad_date.error or "")


def test_text_is_capped() -> None:
    doc = extract(_msg("Subject: big\n", b"word " * (TEXT_CAP // 2)))
    assert len(doc.body) <= TEXT_CAP


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_never_raises(raw: bytes) -> None:
    extract(b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n" + raw)
    extract(raw)


def test_same_parts_as_the_stdlib_on_the_corpus() -> None:
    corpus = generate_corpus(messages=120, seed=3, max_bytes=6_000_000)
    for plan in corpus.plans:
        if plan.kind.startswith("malformed"):
            continue
        raw = build_message(corpus.seed, plan).served
        doc = extract(raw)
        ref = email.message_from_bytes(raw, policy=email.policy.default)
        names = [
            (str(p.get_filename() or ""), p.get_content_type())
            for p in ref.walk()
            if not p.is_multipart() and p.get_content_maintype() != "text"
        ]
        assert list(doc.attachments) == names, plan
        assert doc.subject == " ".join(str(ref["subject"]).split())
        first_text = next(p for p in ref.walk() if p.get_content_type() == "text/plain")
        words = str(first_text.get_content()).split()
        assert doc.body.split()[:20] == words[:20], plan
