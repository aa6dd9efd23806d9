"""Helpers of the replay tests: read a crawl's pages back from its WARC files, check a WACZ's
structure in Python, and run pywb's and py-wacz's programs from ``.venv-replay`` (scripts/_setup.sh
installs them there: pywb pins libraries that clash with the project's venv)."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import signal
import subprocess
import urllib.error
import urllib.request
import zipfile
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from warcio.archiveiterator import ArchiveIterator

from crawler.warc import payload_digest, warc_files
from testbed._proc import LOOPBACK, free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
REPLAY_BIN = ROOT / ".venv-replay" / "bin"
HTML = ("text/html", "application/xhtml+xml")


def replay_program(name: str) -> Path:
    """A program of ``.venv-replay`` (wayback, wb-manager, wacz); fails (never skips) without it."""
    path = REPLAY_BIN / name
    if not path.exists():
        pytest.fail(
            f"{path} is missing: run scripts/test, or `source scripts/_setup.sh && "
            "ensure_replay_venv` (installs pywb and py-wacz into .venv-replay)"
        )
    return path


@dataclass(frozen=True)
class Capture:
    url: str
    warc_date: str  # 2026-12-06T12:07:04.304123Z
    digest: str  # WARC-Payload-Digest

    @property
    def timestamp(self) -> str:
        """The 14-digit form replay URLs use."""
        return "".join(c for c in self.warc_date[:19] if c.isdigit())


def html_200_captures(out: Path) -> list[Capture]:
    """Every response or revisit record of ``out``'s WARC files that answered 200 with HTML."""
    found = []
    for path in warc_files(out):
        with open(path, "rb") as fh:
            for rec in ArchiveIterator(fh):
                if rec.rec_type not in ("response", "revisit") or rec.http_headers is None:
                    continue
                ctype = (rec.http_headers.get_header("Content-Type") or "").split(";")[0]
                if rec.http_headers.get_statuscode() != "200" or ctype.strip().lower() not in HTML:
                    continue
                head = rec.rec_headers
                found.append(
                    Capture(
                        head.get_header("WARC-Target-URI"),
                        head.get_header("WARC-Date"),
                        head.get_header("WARC-Payload-Digest"),
                    )
                )
    return found


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check_wacz(wacz: Path, out: Path) -> list[dict[str, Any]]:
    """Check the WACZ of crawl folder ``out`` entry by entry; returns its pages.

    Layout, ZIP_STORED WARC files equal to the crawl's, the index equal to index.cdxj, every
    resource's sha256 and size, datapackage-digest.json, and pages.jsonl listing exactly the
    HTML 200 captures of the WARC files (url, and ts to the second).
    """
    warcs = warc_files(out)
    with zipfile.ZipFile(wacz) as zf:
        assert zf.testzip() is None
        names = zf.namelist()
        expected = [f"archive/{w.name}" for w in warcs] + [
            "indexes/index.cdx",
            "pages/pages.jsonl",
            "datapackage.json",
            "datapackage-digest.json",
        ]
        assert sorted(names) == sorted(expected)
        for w in warcs:
            info = zf.getinfo(f"archive/{w.name}")
            assert info.compress_type == zipfile.ZIP_STORED, "WARC files are stored, not deflated"
            assert zf.read(info) == w.read_bytes()
        assert zf.read("indexes/index.cdx") == (out / "index.cdxj").read_bytes()
        raw_package = zf.read("datapackage.json")
        package = json.loads(raw_package)
        digest = json.loads(zf.read("datapackage-digest.json"))
        assert digest == {"path": "datapackage.json", "hash": _sha256(raw_package)}
        assert package["profile"] == "data-package" and package["wacz_version"] == "1.1.1"
        assert package["created"].endswith("Z") and package["software"].startswith("fetchlab")
        listed = {r["path"]: r for r in package["resources"]}
        assert set(listed) == set(expected[:-2])
        for path, res in listed.items():
            data = zf.read(path)
            assert res["hash"] == _sha256(data) and res["bytes"] == len(data), path
            assert res["name"] == path.rsplit("/", 1)[1]
        lines = zf.read("pages/pages.jsonl").decode().splitlines()
    header = json.loads(lines[0])
    assert header["format"] == "json-pages-1.0" and header["id"] == "pages" and header["title"]
    pages = [json.loads(line) for line in lines[1:]]
    assert len({p["id"] for p in pages}) == len(pages)
    got = Counter((p["url"], p["ts"][:19]) for p in pages)
    want = Counter((c.url, c.warc_date[:19]) for c in html_200_captures(out))
    assert got == want, (got - want, want - got)
    for line in (out / "index.cdxj").read_text().splitlines():
        assert f"archive/{json.loads(line.split(' ', 2)[2])['filename']}" in names
    return pages


# pywb decodes a stored Content-Encoding for a client that does not accept it (urllib sends
# identity): accepting every coding the crawler asked for gets the bytes as archived
ACCEPT = {"Accept-Encoding": "gzip, deflate, br, zstd"}


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=ACCEPT), timeout=20
        ) as resp:
            status = int(resp.status)
            try:
                return status, resp.read()
            except http.client.IncompleteRead as exc:
                # a truncated capture (WARC-Truncated) keeps the Content-Length it was sent with
                # (docs/formats.md), so pywb's answer falls short of it: the bytes still count
                return status, exc.partial
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def check_replay(base: str, captures: Sequence[Capture]) -> None:
    """Every capture, fetched raw (``id_``) from the pywb collection at ``base``, has the
    archived payload (its payload digest: a revisit is served from the record it refers to)."""
    bad = []
    for cap in captures:
        status, body = fetch(f"{base}/{cap.timestamp}id_/{cap.url}")
        if status != 200 or payload_digest(body) != cap.digest:
            bad.append((cap.url, status, len(body)))
    assert not bad, f"{len(bad)} of {len(captures)} pages not replayed: {bad[:5]}"


@contextlib.contextmanager
def running(
    args: Sequence[str], cwd: Path, port: int, log: Path, *, project: bool = False
) -> Iterator[subprocess.Popen[bytes]]:
    """A server process started on ``port``, stopped by its PID (SIGTERM, then SIGKILL).

    ``.venv-replay/bin`` comes first on its PATH; ``project``: it runs this checkout's code.
    """
    env = {**os.environ, "PATH": f"{REPLAY_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("PYWB_CONFIG_FILE", None)
    if project:
        env["PYTHONPATH"] = str(ROOT)
    with open(log, "wb") as fh:
        proc = subprocess.Popen(list(args), cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, env=env)
    try:
        try:
            wait_for_port(port, timeout=60)
        except Exception:
            pytest.fail(f"{args[0]} did not start: {log.read_text('utf-8', 'replace')[-2000:]}")
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wayback_args() -> tuple[list[str], int]:
    """The command line of pywb's ``wayback`` on a free loopback port, and the port."""
    port = free_port()
    return [str(replay_program("wayback")), "--port", str(port), "--bind", LOOPBACK], port
