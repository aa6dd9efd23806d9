"""The blocking (imaplib-based) transport against the real Dovecot: its send / wait window.

The threads, gevent, processes and sequential modes keep ``pipeline_depth`` body FETCHes in flight
with ``send`` and read them back in order with ``wait``. One read from the socket can complete
several of those commands; each must still be found by its own ``wait`` (with depth 4 the
benchmark grid failed with "no command ... is waiting" before this was fixed).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from foundation.errors import ImapProtocolError
from mailsync.auth import Secret
from mailsync.core.responses import FetchResp
from mailsync.settings import AccountSettings
from mailsync.transports.imaplib_client import ImaplibSession, open_blocking_session
from tests.fixtures.imap import ImapCorpus


@pytest.fixture
def session(imap_corpus: ImapCorpus) -> Iterator[ImaplibSession]:
    server = imap_corpus.server
    account = AccountSettings(
        name="blocking",
        host=server.host,
        port=server.port,
        security="plain",
        username=imap_corpus.user,
        password_env="UNUSED",
    )
    session = open_blocking_session(account, Secret(imap_corpus.password), timeout=20.0)
    try:
        yield session
    finally:
        session.close()


def _inbox_uids(imap_corpus: ImapCorpus) -> list[int]:
    return sorted(r.uid for r in imap_corpus.truth if r.folder == "INBOX" and r.uid is not None)


def test_commands_completed_by_one_read_are_each_found_by_wait(
    session: ImaplibSession, imap_corpus: ImapCorpus
) -> None:
    assert session.execute(b"EXAMINE INBOX").ok
    uids = _inbox_uids(imap_corpus)[:8]
    assert len(uids) == 8
    tags = [session.send(b"UID FETCH %d (UID FLAGS)" % uid) for uid in uids]
    # reading up to the last completion reads (and completes) every earlier command as well
    last = session.wait(tags[-1])
    assert last.ok
    results = [session.wait(tag) for tag in tags[:-1]] + [last]
    assert all(r.ok for r in results)
    fetched = {u.uid for r in results for u in r.untagged if isinstance(u, FetchResp) and u.uid}
    assert fetched == set(uids)
    # a tag is waited for once
    with pytest.raises(ImapProtocolError, match="is waiting"):
        session.wait(tags[0])


def test_a_window_of_body_fetches_in_order(
    session: ImaplibSession, imap_corpus: ImapCorpus
) -> None:
    assert session.execute(b"EXAMINE INBOX").ok
    uids = _inbox_uids(imap_corpus)
    sizes = {r.uid: r.size for r in imap_corpus.truth if r.folder == "INBOX" and r.uid is not None}
    depth = 4
    inflight: list[str] = []
    got: dict[int, int] = {}
    pending = [uids[i : i + 3] for i in range(0, len(uids), 3)]
    while pending or inflight:
        while pending and len(inflight) < depth:
            batch = pending.pop(0)
            uid_set = b",".join(b"%d" % u for u in batch)
            inflight.append(session.send(b"UID FETCH " + uid_set + b" (UID BODY.PEEK[])"))
        result = session.wait(inflight.pop(0))
        assert result.ok
        for resp in result.untagged:
            if isinstance(resp, FetchResp) and isinstance(resp.body, bytes):
                assert resp.uid is not None
                got[resp.uid] = len(resp.body)
    assert got == sizes
