"""A folder bigger than ``listing_chunk`` is listed and compared chunk by chunk, in every mode:
new mail, flag changes and messages expunged in the first, a middle and the last chunk all land
in the state as with one whole listing, and the archive stays byte-exact."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.dispatch import run_backup
from foundation.frozen import replace
from foundation.mode import Mode
from mailsync.settings import MailSettings
from testbed.imap_load import append_messages, delete_messages, set_flags
from tests.fixtures.imap import FreshImapAccount
from tests.integration._mailsync_helpers import (
    PASSWORD_ENV,
    account_for,
    archive_files,
    assert_archive_matches,
    mail_settings,
    state_rows,
)

pytestmark = pytest.mark.needs_dovecot


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "secret")


@pytest.mark.parametrize("mode", list(Mode), ids=[m.value for m in Mode])
def test_big_folder_listed_in_chunks_in_every_mode(
    mode: Mode, fresh_imap_account: FreshImapAccount, tmp_path: Path
) -> None:
    acct = fresh_imap_account(messages=45, seed=11, folders=["INBOX"], max_bytes=200_000)
    account = account_for(acct.server, acct.user, connections=2, batch_messages=4)
    # chunks of 7 messages: the 45 make 7 ranges, the listing a window of 2 of them
    settings: MailSettings = replace(
        mail_settings(account, listing_chunk=7, pipeline_depth=2), mode=mode
    )
    (first,) = run_backup(settings, [account], tmp_path)
    assert first.ok, first.errors
    assert first.new_messages == 45
    root = tmp_path / account.name
    assert_archive_matches(root, acct.truth)

    uids = [t.uid or 0 for t in acct.truth]
    gone = [uids[0], uids[20], uids[21], uids[-1]]  # first, a middle and the last chunk
    delete_messages(acct.server, acct.user, "INBOX", gone)
    flagged = [uids[3], uids[30]]
    set_flags(acct.server, acct.user, "INBOX", flagged, ["\\Flagged"], mode="add")
    new = append_messages(
        acct.server,
        acct.user,
        "INBOX",
        [b"Subject: late %d\r\nMessage-ID: <late%d@x>\r\n\r\nx\r\n" % (i, i) for i in range(5)],
    )
    (second,) = run_backup(settings, [account], tmp_path)
    assert second.ok, second.errors
    assert (second.new_messages, second.flag_updates, second.gone) == (5, 2, 4)
    rows = {r["uid"]: r for r in state_rows(root)}
    assert len(rows) == 50 and len(archive_files(root)) == 50
    assert sorted(u for u, r in rows.items() if r["deleted_on_server"]) == sorted(gone)
    for uid in flagged:
        assert "\\Flagged" in rows[uid]["flags"].split()
        assert (root / rows[uid]["path"]).exists()
    assert all(uid in rows for uid in new)

    (third,) = run_backup(settings, [account], tmp_path)
    assert third.ok and third.new_messages == 0 and third.skipped == third.folders
