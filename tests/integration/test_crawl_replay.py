"""Archives that web-archive tools take as they are: ``crawler index``, ``crawler wacz`` /
``--wacz`` and ``crawler replay``, checked with pywb 2.10 and py-wacz 0.6 themselves (from
``.venv-replay``, see scripts/_setup.sh).

The WACZ is written in every mode's crawl and checked entry by entry in Python; the pywb and
py-wacz checks run once, on one asyncio crawl of the test-bed site (module fixture).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from crawler.cdxj import iter_index
from crawler.warc import warc_files
from foundation.mode import Mode
from testbed._proc import free_port
from tests.fixtures.crawls import FaultCrawls
from tests.fixtures.web import WebSite
from tests.integration.crawl_support import check_archive, crawl, crawler_cmd
from tests.integration.crawl_support import pages as page_rows
from tests.integration.replay_support import (
    Capture,
    check_replay,
    check_wacz,
    fetch,
    html_200_captures,
    replay_program,
    running,
    wayback_args,
)

PAGES = 40  # a small crawl: every page is replayed, several times over


def test_wacz_written_in_every_mode(mode: Mode, web_site: WebSite, tmp_path: Path) -> None:
    out = tmp_path / "site"
    code = crawl(out, web_site.start_url, follow=True, max_pages=PAGES, wacz=True, mode=mode.value)
    assert code in (0, 1)  # 1: the site's broken links are archived 404s
    check_archive(out)
    pages = check_wacz(out / "site.wacz", out)
    assert len(pages) > PAGES // 2
    assert any(p.get("title") for p in pages), "titles of the parsed pages are carried over"


@pytest.fixture(scope="module")
def archive(web_site: WebSite, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One asyncio crawl of the site, with its WACZ."""
    out = tmp_path_factory.mktemp("replay") / "site"
    code = crawl(out, web_site.start_url, follow=True, max_pages=PAGES, wacz=True)
    assert code in (0, 1)
    return out


@pytest.fixture(scope="module")
def captures(archive: Path) -> list[Capture]:
    found = html_200_captures(archive)
    assert len(found) > PAGES // 2
    return found


def test_index_command_rebuilds_the_crawl_index(archive: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(archive, copy)
    written = (copy / "index.cdxj").read_text()
    (copy / "index.cdxj").unlink()
    shutil.rmtree(copy / ".index")  # nothing of the writer's left: every line from the WARCs
    done = crawler_cmd("index", str(copy))
    assert done.returncode == 0, done.stderr
    rebuilt = (copy / "index.cdxj").read_text()
    assert sorted(rebuilt.splitlines()) == sorted(written.splitlines())
    assert rebuilt.splitlines() == sorted(rebuilt.splitlines())
    names = {w.name for w in warc_files(copy)}
    assert {fields["filename"] for _, _, fields in iter_index(copy / "index.cdxj")} == names
    assert f"{len(rebuilt.splitlines())} entries" in done.stdout


def test_index_and_warcs_copied_into_a_pywb_collection_replay(
    archive: Path, captures: list[Capture], tmp_path: Path
) -> None:
    """The documented layout: WARC files in collections/C/archive/, index.cdxj in indexes/."""
    done = subprocess.run(
        [str(replay_program("wb-manager")), "init", "site"], cwd=tmp_path, capture_output=True
    )
    assert done.returncode == 0, done.stderr
    coll = tmp_path / "collections" / "site"
    for warc in warc_files(archive):
        shutil.copy(warc, coll / "archive")
    shutil.copy(archive / "index.cdxj", coll / "indexes")
    args, port = wayback_args()
    with running(args, tmp_path, port, tmp_path / "wayback.log"):
        base = f"http://127.0.0.1:{port}/site"
        check_replay(base, captures)
        # the normal (rewritten) replay of a page works too, not only the raw payload
        first = captures[0]
        status, body = fetch(f"{base}/{first.timestamp}mp_/{first.url}")
        assert status == 200 and b"<title>" in body


def test_wacz_validates_with_py_wacz(archive: Path) -> None:
    done = subprocess.run(
        [str(replay_program("wacz")), "validate", "-f", str(archive / "site.wacz")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the passed WACZ is valid" in done.stdout


def test_wacz_added_to_a_pywb_collection_replays_every_page(
    archive: Path, captures: list[Capture], tmp_path: Path
) -> None:
    manager = str(replay_program("wb-manager"))
    for args in (["init", "w"], ["add", "--unpack-wacz", "w", str(archive / "site.wacz")]):
        done = subprocess.run([manager, *args], cwd=tmp_path, capture_output=True)
        assert done.returncode == 0, done.stderr
    pages = check_wacz(archive / "site.wacz", archive)
    by_url_ts = {(c.url, c.warc_date[:19]): c for c in captures}
    listed = [by_url_ts[(p["url"], p["ts"][:19])] for p in pages]
    args, port = wayback_args()
    with running(args, tmp_path, port, tmp_path / "wayback.log"):
        check_replay(f"http://127.0.0.1:{port}/w", listed)


@pytest.mark.parametrize("source", ["folder", "wacz"])
def test_crawler_replay_serves_the_archive_until_sigterm(
    archive: Path, captures: list[Capture], tmp_path: Path, source: str
) -> None:
    """`crawler replay OUT` (the one-line way) in a child process, stopped by its PID."""
    target = archive if source == "folder" else archive / "site.wacz"
    port = free_port()
    args = [sys.executable, "-m", "fetchlab.crawl_cli", "replay", str(target)]
    args += ["--port", str(port), "--collection", "c"]
    with running(args, tmp_path, port, tmp_path / "replay.log", project=True) as proc:
        check_replay(f"http://127.0.0.1:{port}/c", captures)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 130
    # wayback went with it: nothing answers on the port any more
    with pytest.raises(OSError):
        fetch(f"http://127.0.0.1:{port}/")
    log = (tmp_path / "replay.log").read_text()
    assert f"http://127.0.0.1:{port}/c/" in log


def test_replay_without_pywb_says_how_to_install_it(archive: Path) -> None:
    done = crawler_cmd("replay", str(archive), "--wayback", "no-such-wayback")
    assert done.returncode == 2
    assert "pip install pywb" in done.stderr and "no-such-wayback" in done.stderr


def test_wacz_command_with_output_and_title(archive: Path, tmp_path: Path) -> None:
    target = tmp_path / "named.wacz"
    done = crawler_cmd("wacz", str(archive), "-o", str(target), "--title", "My site")
    assert done.returncode == 0, done.stderr
    assert f"wacz: {target}" in done.stdout
    check_wacz(target, archive)
    with zipfile.ZipFile(target) as zf:
        assert json.loads(zf.read("datapackage.json"))["title"] == "My site"


def test_commands_refuse_a_folder_without_a_crawl(tmp_path: Path) -> None:
    for command in ("index", "wacz"):
        done = crawler_cmd(command, str(tmp_path))
        assert done.returncode == 2
        assert "holds no crawl WARC files" in done.stderr


def test_replay_asks_for_crawler_index_on_an_older_index(archive: Path, tmp_path: Path) -> None:
    copy = tmp_path / "old"
    shutil.copytree(archive, copy)
    index = copy / "index.cdxj"
    index.write_text(index.read_text().replace('"filename": "', '"filename": "warc/'))
    done = crawler_cmd("replay", str(copy), "--wayback", str(replay_program("wayback")))
    assert done.returncode == 2
    assert f"run `crawler index {copy}`" in done.stderr


def test_wacz_of_the_fault_crawl_lists_redirect_targets_and_replays(
    fault_crawls: FaultCrawls, tmp_path: Path
) -> None:
    """Redirect chains, truncated and undecodable 200s, odd content types: the pages are still
    exactly the HTML 200 captures, each under the URL that answered, and pywb replays them."""
    crawl = fault_crawls(Mode.ASYNCIO)
    target = tmp_path / "faults.wacz"
    done = crawler_cmd("wacz", str(crawl.out), "-o", str(target))
    assert done.returncode == 0, done.stderr
    pages = check_wacz(target, crawl.out)
    redirected = crawl.rows["ok /redirect/chain/4"]
    assert redirected["final_url"] != redirected["url"]
    listed = {p["url"] for p in pages}
    assert redirected["final_url"] in listed and redirected["url"] not in listed
    manager = str(replay_program("wb-manager"))
    for args in (["init", "f"], ["add", "--unpack-wacz", "f", str(target)]):
        done = subprocess.run([manager, *args], cwd=tmp_path, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    args, port = wayback_args()
    with running(args, tmp_path, port, tmp_path / "wayback.log"):
        check_replay(f"http://127.0.0.1:{port}/f", html_200_captures(crawl.out))


def test_crawl_exits_2_when_its_wacz_cannot_be_written(web_site: WebSite, tmp_path: Path) -> None:
    out = tmp_path / "site"
    (out / "site.wacz.tmp").mkdir(parents=True)  # where the WACZ is written before its rename
    done = crawler_cmd(
        "crawl", web_site.start_url, "--follow", "--max-pages", "5", "--wacz", "--out", str(out)
    )
    assert done.returncode == 2
    assert "cannot write" in done.stderr and "site.wacz" in done.stderr
    assert len(page_rows(out)) == 5, "the crawl itself is complete"
    assert not (out / "site.wacz").exists()
