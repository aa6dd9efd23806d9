"""The mail fleet worker: take account jobs from the Redis queue, back each up, ack.

One account at a time per worker process (run more workers for more at once; each account
already spreads its folders over its ``connections``). For each job the worker:

1. starts a heartbeat thread that renews the job's lease (:meth:`FleetQueue.renew`) and the
   connection slots it holds every ``heartbeat`` seconds;
2. with ``max_connections_per_server`` set, takes up to ``connections`` slots of the account's
   server (:class:`~mailsync.fleet_slots.ConnectionSlots`), waiting while none is free, and
   backs the account up with ``connections`` = the slots it got (the backup never opens more);
3. backs the account up in any mode (:func:`drivers.dispatch.run_backup`): incremental from
   the archive's own state, so a job taken over from a dead worker resumes where it stopped;
4. stops the heartbeat, gives the slots back and acks the job only then (done), or queues it
   again (errors, attempts left), or records it as failed (no attempts left).

A worker that is SIGKILLed renews nothing: ``lease`` seconds later another worker's XAUTOCLAIM
takes the job, and its slots expire. The archive's lock (``flock``) keeps two workers from
writing one archive even if a stalled worker wakes up after losing its lease.
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from foundation.errors import FetchlabError
from foundation.frozen import replace
from foundation.mode import Mode
from mailsync.fleet_queue import FleetQueue, FleetQueueError, Job
from mailsync.fleet_slots import ConnectionSlots
from mailsync.layout import state_path
from mailsync.report import AccountReport
from mailsync.settings import AccountSettings, MailSettings

__all__ = ["WorkerSummary", "run_worker", "server_of"]

Log = Callable[[str], None]


@dataclass
class WorkerSummary:
    """What one worker did before it exited."""

    done: int = 0
    failed: int = 0
    retried: int = 0
    reclaimed: int = 0  # jobs taken over from a worker whose lease expired
    messages: int = 0


def server_of(account: AccountSettings) -> str:
    """The key connection slots are counted under: ``host:port`` (host lower-cased)."""
    return f"{account.host.lower()}:{account.port}"


class _Heartbeat:
    """Renews one job's lease and its connection slots from a thread of its own."""

    def __init__(self, queue: FleetQueue, job: Job, interval: float, log: Log) -> None:
        self.queue = queue
        self.job = job
        self.interval = interval
        self.log = log
        self.slots: ConnectionSlots | None = None
        self.members: list[str] = []
        self.lost = False
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="fleet-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def hold(self, slots: ConnectionSlots, members: list[str]) -> None:
        with self._lock:
            self.slots, self.members = slots, members

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if not self.queue.renew(self.job) and not self.lost:
                    self.lost = True
                    self.log(f"{self.job.account}: lease lost to another worker (renewals late)")
                with self._lock:
                    if self.slots is not None:
                        self.slots.renew(self.members)
            except FleetQueueError as exc:  # Redis away for a moment: the next beat retries
                self.log(f"heartbeat: {exc}")


def _take_slots(
    queue: FleetQueue, settings: MailSettings, account: AccountSettings, beat: _Heartbeat
) -> list[str]:
    """Up to ``account.connections`` slots of its server, waiting until at least one is free."""
    cap = settings.fleet.max_connections_per_server
    assert cap is not None
    slots = ConnectionSlots(
        queue.client, queue.url, queue.slot_key(server_of(account)), cap, settings.fleet.lease
    )
    holder = f"{queue.consumer}:{beat.job.entry}"
    # the sequential mode opens one connection at a time, whatever `connections` says
    want = 1 if settings.mode == Mode.SEQUENTIAL else account.connections
    while True:
        members = slots.acquire(holder, want)
        if members:
            beat.hold(slots, members)
            return members
        time.sleep(random.uniform(0.05, 0.25))  # jittered: waiting workers do not stampede


def _backup(settings: MailSettings, account: AccountSettings) -> AccountReport:
    from drivers.dispatch import run_backup

    try:
        (report,) = run_backup(settings, [account], settings.out)
    except FetchlabError as exc:  # a mode that cannot run, a processes worker that died
        report = AccountReport(account.name)
        report.errors.append(f"{account.name}: {exc}")
    return report


def _sync_state(root: Path) -> None:
    """fsync the account's state DB files and their folder before the ack: the state runs
    SQLite WAL with synchronous=NORMAL, durable against a killed process but not, for its last
    commits, against a power cut; an acked job must survive that too."""
    state = state_path(root)
    for path in (state.with_name(state.name + "-wal"), state, state.parent):
        with contextlib.suppress(FileNotFoundError):
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def _one(
    queue: FleetQueue,
    settings: MailSettings,
    job: Job,
    mode: Mode | None,
    summary: WorkerSummary,
    log: Log,
    after: Callable[[AccountReport], None] | None,
) -> None:
    fleet = settings.fleet
    account = next((a for a in settings.accounts if a.name == job.account), None)
    if account is None:
        queue.failed(job, f"account {job.account!r} is not in this worker's settings")
        summary.failed += 1
        log(f"{job.account}: failed: not in this worker's settings")
        return
    if job.reclaimed:
        summary.reclaimed += 1
        if job.attempt > fleet.max_attempts:
            note = f"gave up after {job.attempt - 1} attempts: each time its worker was lost"
            queue.failed(job, note)
            summary.failed += 1
            log(f"{job.account}: failed: {note}")
            return
    beat = _Heartbeat(queue, job, fleet.heartbeat, log)
    beat.start()
    start = time.monotonic()
    try:
        try:
            if mode is not None:
                settings = replace(settings, mode=mode)
            if fleet.max_connections_per_server is not None:
                members = _take_slots(queue, settings, account, beat)
                account = replace(account, connections=len(members))
            report = _backup(settings, account)
        finally:
            beat.stop()
            _release(beat)  # after the backup: its connections are closed by now
    except KeyboardInterrupt:
        # not left to the lease: another worker may take the account at once
        queue.give_back(job, "its worker stopped (queued again)")
        raise
    seconds = time.monotonic() - start
    if report.busy:
        queue.wait_busy(job, "; ".join(report.errors) or "archive in use by another run")
        log(f"{job.account}: archive busy; left for a later attempt")
    elif report.ok:
        if after is not None:
            after(report)
        if settings.fsync:
            _sync_state(settings.out / account.name)
        queue.done(job, messages=report.new_messages, bytes_=report.new_bytes, seconds=seconds)
        summary.done += 1
        summary.messages += report.new_messages
        log(
            f"{job.account}: done: {report.new_messages} new messages in {seconds:.1f} s"
            f" ({account.connections} connections, attempt {job.attempt})"
        )
    else:
        error = "; ".join(report.errors)[:2000]
        if job.attempt >= fleet.max_attempts:
            queue.failed(job, error)
            summary.failed += 1
            log(f"{job.account}: failed after {job.attempt} attempts: {error}")
        else:
            queue.retry(job, error)
            summary.retried += 1
            log(f"{job.account}: attempt {job.attempt} failed, queued again: {error}")


def _release(beat: _Heartbeat) -> None:
    if beat.slots is not None:
        beat.slots.release(beat.members)


def run_worker(
    settings: MailSettings,
    queue: FleetQueue,
    *,
    mode: Mode | None = None,
    follow: bool = False,
    log: Log = lambda line: None,
    after: Callable[[AccountReport], None] | None = None,
) -> WorkerSummary:
    """Take and back up accounts until the queue is drained (nothing queued, nothing leased by
    anyone), or for ever with ``follow``. ``after``: called with each successful report before
    its job is acked (the CLI fills search-index gaps there)."""
    fleet = settings.fleet
    summary = WorkerSummary()
    # a short block: a dead worker's job is noticed within about this much after its lease ends
    block = min(1.0, fleet.lease / 4)
    while True:
        job = queue.take(fleet.lease, block)
        if job is None:
            if not follow and queue.outstanding() == 0:
                break
            continue
        _one(queue, settings, job, mode, summary, log, after)
    queue.leave()
    return summary
