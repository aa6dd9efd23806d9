"""``mailsync report``'s files: ``report.html`` (self-contained: every chart inline as a base64
PNG, no script, no network), one PNG per chart, and ``report.md`` (the figures as tables, the
PNGs linked).

matplotlib (Agg backend: no display) draws the charts; it is imported only here, so search and
backup never pay its start-up.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from foundation.progress import human_bytes
from mailsync.insights import ArchiveStats, by_folder_year
from mailsync.layout import private_dirs

__all__ = ["CHARTS", "write_report"]

_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MB = 1024 * 1024


def _when(stamp: float | None) -> str:
    return "-" if stamp is None else datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d")


def _barh(ax: Any, pairs: Sequence[tuple[str, int]], xlabel: str) -> None:
    labels = [p[0] if len(p[0]) <= 40 else p[0][:39] + "…" for p in pairs][::-1]
    ax.barh(labels, [p[1] for p in pairs][::-1], color="#4c72b0")
    ax.set_xlabel(xlabel)


def _months(fig: Any, s: ArchiveStats) -> None:
    ax = fig.add_subplot()
    months = s.months()
    xs = range(len(months))
    ax.bar(xs, [m[1] for m in months], color="#4c72b0", label="messages")
    ax.set_ylabel("messages")
    ax2 = ax.twinx()
    ax2.plot(xs, [m[2] / _MB for m in months], color="#dd8452", label="MB")
    ax2.set_ylabel("MB")
    step = max(1, len(months) // 12)
    ax.set_xticks(list(xs)[::step], [m[0] for m in months][::step], rotation=45, ha="right")
    ax.set_title("Messages and MB per month")


def _top(title: str, attr: str, xlabel: str = "messages") -> Callable[[Any, ArchiveStats], None]:
    def draw(fig: Any, s: ArchiveStats) -> None:
        ax = fig.add_subplot()
        _barh(ax, getattr(s, attr).most_common(s.top), xlabel)
        ax.set_title(title)

    return draw


def _heatmap(fig: Any, s: ArchiveStats) -> None:
    ax = fig.add_subplot()
    image = ax.imshow(s.heatmap, aspect="auto", cmap="Blues")
    ax.set_yticks(range(7), _WEEKDAYS)
    ax.set_xticks(range(0, 24, 2), [f"{h:02d}" for h in range(0, 24, 2)])
    ax.set_xlabel("hour (UTC)")
    ax.set_title("When mail arrives (weekday x hour, by the Date header)")
    fig.colorbar(image, ax=ax, label="messages")


def _folder_years(fig: Any, s: ArchiveStats) -> None:
    ax = fig.add_subplot()
    folders, years, table = by_folder_year(s)
    bottom = [0.0] * len(years)
    for folder in folders:
        values = [v / _MB for v in table[folder]]
        ax.bar(years, values, bottom=bottom, label=folder)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_ylabel("MB")
    ax.set_title("Size by folder and year")
    if folders:
        ax.legend(fontsize="small", ncols=2)


def _folders(fig: Any, s: ArchiveStats) -> None:
    ax = fig.add_subplot()
    pairs = sorted(((f, v[0]) for f, v in s.folders.items()), key=lambda p: -p[1])
    _barh(ax, pairs[: max(s.top, 30)], "messages")
    ax.set_title("Messages per folder")


# (file stem, title, drawer)
CHARTS: tuple[tuple[str, str, Callable[[Any, ArchiveStats], None]], ...] = (
    ("per-month", "Messages and MB per month", _months),
    ("senders", "Top senders", _top("Top senders", "senders")),
    ("recipients", "Top recipients", _top("Top recipients (To and Cc)", "recipients")),
    ("domains", "Top sender domains", _top("Top sender domains", "domains")),
    ("heatmap", "Arrival by weekday and hour", _heatmap),
    ("folder-years", "Size by folder and year", _folder_years),
    ("attachment-types", "Attachment types", _top("Attachment types", "attachment_types")),
    ("folders", "Messages per folder", _folders),
)


def _render(draw: Callable[[Any, ArchiveStats], None], stats: ArchiveStats) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 4.8), dpi=100, layout="constrained")
    if stats.messages:
        draw(fig, stats)
    else:
        fig.text(0.5, 0.5, "no messages", ha="center", va="center", fontsize=16)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _facts(s: ArchiveStats) -> list[tuple[str, str]]:
    return [
        ("accounts", ", ".join(s.accounts)),
        ("query", s.query or "(everything)"),
        ("messages", f"{s.messages:,}"),
        ("size", human_bytes(s.bytes)),
        ("first / last", f"{_when(s.first)} / {_when(s.last)}"),
        ("with attachments", f"{s.with_attachments:,}"),
        ("without a usable date", f"{s.undated:,}"),
        ("indexed with parse problems", f"{s.parse_problems:,}"),
    ]


def _tables(s: ArchiveStats) -> list[tuple[str, list[str], list[tuple[str, ...]]]]:
    n = s.top
    return [
        ("Top senders", ["sender", "messages"], [(a, str(c)) for a, c in s.senders.most_common(n)]),
        (
            "Top recipients",
            ["recipient", "messages"],
            [(a, str(c)) for a, c in s.recipients.most_common(n)],
        ),
        (
            "Top sender domains",
            ["domain", "messages"],
            [(a, str(c)) for a, c in s.domains.most_common(n)],
        ),
        (
            "Folders",
            ["folder", "messages", "size"],
            [(f, str(v[0]), human_bytes(v[1])) for f, v in sorted(s.folders.items())],
        ),
        (
            "Attachment types",
            ["type", "messages"],
            [(t, str(c)) for t, c in s.attachment_types.most_common(n)],
        ),
    ]


def _html(s: ArchiveStats, images: list[tuple[str, str, bytes]]) -> str:
    esc = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>mailsync report</title>",
        "<style>body{font-family:sans-serif;max-width:960px;margin:auto;padding:1em}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 8px}"
        "td:last-child{text-align:right}img{max-width:100%}</style>",
        "</head><body>",
        "<h1>mailsync report</h1>",
        "<table>",
        *(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in _facts(s)),
        "</table>",
    ]
    for stem, title, png in images:
        data = base64.b64encode(png).decode("ascii")
        out += [
            f'<h2 id="{stem}">{esc(title)}</h2>',
            f'<img class="chart" alt="{esc(title)}" src="data:image/png;base64,{data}">',
        ]
    for title, header, rows in _tables(s):
        out += [f"<h2>{esc(title)}</h2>", "<table>"]
        out.append("<tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>")
        out += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows]
        out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _markdown(s: ArchiveStats, images: list[tuple[str, str, bytes]]) -> str:
    out = ["# mailsync report", "", "| | |", "|---|---|"]
    out += [f"| {_md_cell(k)} | {_md_cell(v)} |" for k, v in _facts(s)]
    out.append("")
    for stem, title, _ in images:
        out += [f"![{title}]({stem}.png)", ""]
    for title, header, rows in _tables(s):
        out += [f"## {title}", "", "| " + " | ".join(header) + " |"]
        out.append("|" + "---|" * len(header))
        out += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
        out.append("")
    return "\n".join(out)


def write_report(stats: ArchiveStats, dest: Path) -> list[Path]:
    """Write the report's files into ``dest`` (created, private); returns their paths."""
    private_dirs(dest)
    images = [(stem, title, _render(draw, stats)) for stem, title, draw in CHARTS]
    files: list[Path] = []
    for stem, _, png in images:
        path = dest / f"{stem}.png"
        path.write_bytes(png)
        files.append(path)
    page = dest / "report.html"
    page.write_text(_html(stats, images), encoding="utf-8")
    summary = dest / "report.md"
    summary.write_text(_markdown(stats, images), encoding="utf-8")
    for path in (*files, page, summary):
        path.chmod(0o600)  # the report names senders and recipients: private like the archive
    return [page, summary, *files]
