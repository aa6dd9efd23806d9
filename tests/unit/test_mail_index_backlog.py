"""An index parser slower than the disk must hold the folder's writes back, not pile up batches.

Each stored batch of a backup that indexes gets a task that waits for its messages' parse
results; without a bound, a
parser process starved of CPU let those tasks (each holding its batch's names and 100 pending
submissions) accumulate over a 200,000-message backup (peak RSS 119 -> 182 MB). The archive and
the parser are stand-ins here (no socket is involved): the bound is the driver's own logic.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, cast

from drivers import mail_asyncio_folder as folder
from mailsync.core import flow
from mailsync.core.mime import IndexDoc
from mailsync.core.responses import FetchResp
from mailsync.report import AccountReport
from mailsync.store import AccountArchive, StoredMessage, StoreItem
from mailsync.stored_parse import failed
from mailsync.transports.base import ImapSession

PER_BATCH = 5


class _Archive:
    root = Path("/archive")

    async def astore_batch(self, *args: Any) -> list[StoredMessage]:
        items = cast(list[StoreItem], args[-1])
        return [StoredMessage(uid, 3, "x", f"f/{uid}") for uid, *_ in items]

    async def aadd_to_index(self, entries: object) -> None:
        return None


class _SlowParser:
    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.parsed = 0

    enabled = True

    async def submit(self, path: str) -> IndexDoc:
        await self.gate.wait()
        self.parsed += 1
        return failed("stand-in")


def _batch(n: int) -> flow.StoreBatch:
    msgs = tuple(
        FetchResp(i, n * PER_BATCH + i + 1, (), 3, None, b"abc", None) for i in range(PER_BATCH)
    )
    return flow.StoreBatch("INBOX", "INBOX", 1, 0, msgs)


def test_a_slow_parser_holds_the_writes_back() -> None:
    async def scenario() -> None:
        parser = _SlowParser()
        fx = folder.FolderEffects()
        fx.archive = cast(AccountArchive, _Archive())
        fx.report = AccountReport("a")
        fx.offload = cast(folder.IndexOffload, parser)
        lanes = folder.FetchLanes()
        session = cast(ImapSession, None)

        async def flow_side() -> None:
            for n in range(12):  # the flow hands over one stored batch after another
                await fx._perform(_batch(n), session, lanes)
                live = [t for t in lanes.indexing if not t.done()]
                assert len(live) <= folder._INDEX_BACKLOG

        driving = asyncio.create_task(flow_side())
        await asyncio.sleep(0.2)
        # the parser answered nothing: the flow is stuck behind the bounded backlog
        assert not driving.done()
        assert len(lanes.indexing) == folder._INDEX_BACKLOG
        parser.gate.set()
        await asyncio.wait_for(driving, 5)
        await lanes.writes_done()
        await asyncio.gather(*lanes.indexing, *lanes.stores)
        assert parser.parsed == 12 * PER_BATCH
        assert fx.report.new_messages == 12 * PER_BATCH

    asyncio.run(scenario())


def test_a_backup_without_the_index_starts_no_parser(tmp_path: Path) -> None:
    from mailsync.settings import MailSettings

    async def scenario() -> None:
        off = folder.IndexOffload(MailSettings(out=tmp_path))  # index = false: the default
        assert not off.enabled
        off.prestart()  # a big first backup: still nothing to start
        assert off._pool is None
        on = folder.IndexOffload(MailSettings(out=tmp_path, index=True, header_workers=1))
        on.prestart()
        try:
            assert on._pool is not None
        finally:
            await on.aclose()

    asyncio.run(scenario())
