"""Deterministic filler for the generated site: words, sentences, page HTML and binary files.

Kept apart from :mod:`testbed._site_graph` (the link graph and the ground truth) so each file
stays small. Everything here draws from a caller's ``random.Random``: a seed gives the same bytes.
"""

from __future__ import annotations

import html
import random
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "Link",
    "PageSpec",
    "make_sentences",
    "pdf_bytes",
    "png_bytes",
    "render_page",
    "text_bytes",
]

_SYLLABLES = (
    "ka", "lo", "mi", "ne", "ru", "ta", "so", "vi", "der", "lan", "mor", "pel", "sta", "tri",
    "qua", "ben", "cor", "dal", "fen", "gus", "hal", "jor", "kel", "lum", "nar", "ost", "pra",
)  # fmt: skip
_REAL_WORDS = (
    "the", "of", "and", "a", "to", "in", "is", "for", "that", "with", "on", "as", "by", "this",
    "server", "crawler", "archive", "network", "latency", "request", "response", "page", "link",
    "index", "policy", "robots", "sitemap", "mailbox", "folder", "message", "record", "header",
    "café", "naïve", "Zürich", "façade", "résumé", "München", "smörgåsbord",
)  # fmt: skip
_CSS = (
    "body{font-family:sans-serif;margin:0 auto;max-width:52em;line-height:1.5;color:#222}"
    "header,footer{background:#f4f4f4;padding:.5em 1em}nav ul{list-style:none;padding:0}"
    "nav li{display:inline;margin-right:1em}article{padding:0 1em}"
    "aside{border-left:3px solid #ddd;padding-left:1em}.meta{color:#777;font-size:.9em}"
)


@dataclass(frozen=True)
class Link:
    """One ``<a href>`` as written in the page (``href`` unescaped) and its anchor text."""

    href: str
    text: str


@dataclass(frozen=True)
class PageSpec:
    """What a page contains; the text around the links is drawn at render time."""

    title: str
    section: str
    base_href: str | None
    nav: tuple[Link, ...]
    body_links: tuple[Link, ...]
    footer: tuple[Link, ...]
    target_bytes: int


def make_sentences(rng: random.Random, count: int = 2500) -> tuple[str, ...]:
    """A pool of pseudo-English sentences (realistic length and compressibility, cheap to draw)."""
    made = {"".join(rng.choices(_SYLLABLES, k=rng.randint(1, 3))) for _ in range(900)}
    words = sorted(made) + list(_REAL_WORDS) * 6
    out = []
    for _ in range(count):
        chosen = rng.choices(words, k=rng.randint(7, 19))
        out.append(" ".join(chosen).capitalize() + rng.choice((".", ".", ".", "!", "?")))
    return tuple(out)


def _paragraph(rng: random.Random, sentences: Sequence[str]) -> str:
    return " ".join(rng.choices(sentences, k=rng.randint(3, 7)))


def _a(link: Link) -> str:
    return f'<a href="{html.escape(link.href)}">{html.escape(link.text)}</a>'


def render_page(spec: PageSpec, rng: random.Random, sentences: Sequence[str]) -> bytes:
    """The page's HTML (UTF-8), filled with paragraphs until it reaches ``spec.target_bytes``."""
    head = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{html.escape(spec.title)}</title>",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
    ]
    if spec.base_href is not None:
        head.append(f'<base href="{html.escape(spec.base_href)}">')
    head += [f"<style>{_CSS}</style>", "</head>", "<body>", "<header>"]
    head.append("<nav><ul>" + "".join(f"<li>{_a(link)}</li>" for link in spec.nav) + "</ul></nav>")
    head += ["</header>", "<main>", '<article id="top">', f"<h1>{html.escape(spec.title)}</h1>"]
    day = rng.randint(1, 28)
    month = rng.randint(1, 12)
    head.append(f'<p class="meta">Published 2026-{month:02d}-{day:02d} in {spec.section}</p>')
    foot = ["</main>", "<footer><p>"]
    foot.append(" | ".join(_a(link) for link in spec.footer))
    foot += ["</p></footer>", "</body>", "</html>", ""]

    # about half the body links sit inside paragraphs, the rest in a "related" list at the end
    inline = list(spec.body_links[: len(spec.body_links) // 2])
    related = spec.body_links[len(inline) :]
    related_html = (
        "</article>\n<aside><h2>Related</h2><ul>"
        + "".join(f"<li>{_a(link)}</li>" for link in related)
        + "</ul></aside>"
    )
    size = sum(len(part) + 1 for part in (*head, *foot)) + len(related_html)
    body: list[str] = []
    section_no = 0
    while size < spec.target_bytes or inline:
        if len(body) % 6 == 0:
            section_no += 1
            part = f'<h2 id="sec-{section_no}">{html.escape(rng.choice(sentences)[:60])}</h2>'
        else:
            text = html.escape(_paragraph(rng, sentences))
            if inline:
                cut = text.find(" ", len(text) // 2)
                cut = len(text) if cut < 0 else cut
                text = f"{text[:cut]} {_a(inline.pop(0))}{text[cut:]}"
            part = f"<p>{text}</p>"
        body.append(part)
        size += len(part) + 1
        if size > spec.target_bytes + 2000 and not inline:
            break
    # 3 headings at least, so the #sec-1..3 fragments always name an existing element
    while section_no < 3:
        section_no += 1
        body.append(f'<h2 id="sec-{section_no}">Notes</h2>')
    return "\n".join([*head, *body, related_html, *foot]).encode("utf-8")


def pdf_bytes(rng: random.Random, sentences: Sequence[str], title: str) -> bytes:
    """A small, valid one-page PDF whose text is a few sentences."""
    lines = [title, *rng.choices(sentences, k=rng.randint(6, 14))]
    text = "BT /F1 11 Tf 50 780 Td 14 TL " + " ".join(
        "(" + line.encode("ascii", "replace").decode().replace("\\", "").replace("(", "")
        .replace(")", "")[:90] + ") '"
        for line in lines
    ) + " ET"  # fmt: skip
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(text), text.encode("ascii")),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def png_bytes(rng: random.Random, width: int = 48, height: int = 32) -> bytes:
    """A valid RGB PNG of random pixels (incompressible, like a real photo thumbnail)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    rows = b"".join(b"\x00" + rng.randbytes(width * 3) for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


def text_bytes(rng: random.Random, sentences: Sequence[str], title: str) -> bytes:
    """A plain-text note (no URLs in it, so no crawler finds links there)."""
    lines = [title, "=" * len(title), ""]
    lines += [_paragraph(rng, sentences) for _ in range(rng.randint(3, 8))]
    return ("\n\n".join(lines) + "\n").encode("utf-8")
