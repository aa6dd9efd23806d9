"""``mailsync report`` over a real backup, its page opened in a real headless Chromium
(Debian's chromium + chromium-driver, driven by Selenium): every chart renders, the console is
clean, nothing is fetched from the network."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from drivers.dispatch import run_backup
from fetchlab.mail_cli import main
from fetchlab.mail_report import CHARTS
from tests.fixtures.imap import ImapCorpus
from tests.integration._mailsync_helpers import PASSWORD_ENV, account_for, mail_settings

pytestmark = pytest.mark.needs_dovecot


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "secret")


@pytest.fixture
def browser() -> Iterator[object]:
    chromium = shutil.which("chromium")
    driver_bin = shutil.which("chromedriver")
    if chromium is None or driver_bin is None:
        pytest.fail("chromium and chromium-driver are needed (scripts/_setup.sh installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_bin), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_report_page_renders_every_chart_in_a_browser(
    imap_corpus: ImapCorpus, tmp_path: Path, browser: object
) -> None:
    from selenium.webdriver.chrome.webdriver import WebDriver

    assert isinstance(browser, WebDriver)
    server, truth = imap_corpus
    account = account_for(server, imap_corpus.user, name="corpus")
    (report,) = run_backup(mail_settings(account), [account], tmp_path)
    assert report.ok, report.errors
    dest = tmp_path / "rep"
    result = CliRunner().invoke(main, ["report", "--out", str(tmp_path), "--to", str(dest)])
    assert result.exit_code == 0, result.stderr
    assert f"{len(truth)} messages" in result.stdout
    page = dest / "report.html"
    text = page.read_text(encoding="utf-8")
    assert "http://" not in text and "https://" not in text, "the page fetches nothing"
    md = (dest / "report.md").read_text(encoding="utf-8")
    assert f"| messages | {len(truth):,} |" in md
    for stem, _, _ in CHARTS:
        assert (dest / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({stem}.png)" in md

    browser.get(page.as_uri())
    images = browser.execute_script(
        "return Array.from(document.images).map("
        "i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight])"
    )
    assert len(images) == len(CHARTS)
    for alt, complete, width, height in images:
        assert complete and width > 0 and height > 0, alt
    log = browser.get_log("browser")  # type: ignore[no-untyped-call]
    errors = [e for e in log if e["level"] in ("SEVERE", "ERROR")]
    assert errors == []
    # the senders table names the corpus's senders
    assert "alice@example.org" in browser.page_source or "bob@example.com" in browser.page_source

    # --query restricts the figures; a bad query is one clear error
    result = CliRunner().invoke(
        main, ["report", "--out", str(tmp_path), "--to", str(dest), "--query", "has:attachment"]
    )
    assert result.exit_code == 0
    attachments = sum(t.kind == "attachment" for t in truth)
    assert f"{attachments} messages" in result.stdout
    result = CliRunner().invoke(main, ["report", "--out", str(tmp_path), "--query", "date:20x"])
    assert result.exit_code == 2 and "query error" in result.stderr
