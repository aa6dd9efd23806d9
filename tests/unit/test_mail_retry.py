"""mailsync's one retry policy (:mod:`mailsync.core.retry`) and folder plan
(:mod:`mailsync.core.schedule`): every branch, fed plain values."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from foundation.errors import (
    FolderGone,
    ImapAuthError,
    ImapCommandError,
    ImapConnectError,
    ImapProtocolError,
    ImapTLSError,
    ImapUnknownHost,
    MailError,
    StorageError,
    UIDValidityChanged,
)
from mailsync.core.flow import FolderJob, FolderResult
from mailsync.core.plan import FolderState
from mailsync.core.retry import (
    Backoff,
    FailAccount,
    FailFolder,
    Retry,
    SkipFolder,
    after_connect_failure,
    after_folder_failure,
    gave_up,
    is_transient,
)
from mailsync.core.schedule import folder_counts, plan_folders
from mailsync.report import AccountReport
from mailsync.settings import MailSettings

P = Backoff(retries=3, first=0.2, cap=5.0)
REFUSED = ImapConnectError("account a: 127.0.0.1:1: connection refused")
UNAVAILABLE_NATIVE = ImapConnectError("login as u failed: NO [UNAVAILABLE] try later")
UNAVAILABLE_AIOIMAPLIB = ImapAuthError("account a: login as u failed: NO [UNAVAILABLE] later")
WRONG_PASSWORD = ImapAuthError("account a: login as u failed: NO [AUTHENTICATIONFAILED] no")
UNTRUSTED = ImapTLSError("account a: 127.0.0.1:993: TLS certificate not trusted")
NO_HOST = ImapUnknownHost("account a: nowhere.invalid: unknown host")


# -- backoff ------------------------------------------------------------------------------------


def test_backoff_doubles_from_the_first_delay_up_to_the_cap() -> None:
    # jitter 0.5 is the middle of the spread: the nominal schedule
    assert [P.delay(n, 0.5) for n in range(1, 8)] == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]


def test_backoff_jitter_spreads_half_to_one_and_a_half() -> None:
    assert P.delay(2, 0.0) == pytest.approx(0.2)
    assert P.delay(2, 1.0) == pytest.approx(0.6)


@given(st.integers(1, 10_000), st.floats(0.0, 1.0))
def test_backoff_stays_within_the_spread_of_the_cap(attempt: int, jitter: float) -> None:
    delay = P.delay(attempt, jitter)
    assert 0.5 * min(P.cap, P.first) <= delay <= 1.5 * P.cap


@given(st.integers(1, 50), st.floats(0.0, 1.0))
def test_backoff_never_shrinks_with_more_attempts(attempt: int, jitter: float) -> None:
    assert P.delay(attempt + 1, jitter) >= P.delay(attempt, jitter)


@pytest.mark.parametrize("kwargs", [{"retries": -1}, {"first": -0.1}, {"first": 2.0, "cap": 1.0}])
def test_backoff_refuses_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="invalid backoff"):
        Backoff(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("attempt", "jitter"), [(0, 0.5), (1, -0.1), (1, 1.5)])
def test_backoff_refuses_attempts_and_jitter_out_of_range(attempt: int, jitter: float) -> None:
    with pytest.raises(ValueError, match="out of range"):
        P.delay(attempt, jitter)


def test_settings_give_the_policy() -> None:
    s = MailSettings(retries=2, retry_delay=0.01, retry_max_delay=0.05)
    assert s.backoff == Backoff(2, 0.01, 0.05)
    assert MailSettings().backoff == Backoff()
    with pytest.raises(ValueError, match="retry_max_delay"):
        MailSettings(retry_delay=1.0, retry_max_delay=0.5)


# -- classification -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (REFUSED, True),
        (UNAVAILABLE_NATIVE, True),
        (UNAVAILABLE_AIOIMAPLIB, True),
        (ImapAuthError("account a: login as u failed: NO [LIMIT] Maximum number of"), True),
        (WRONG_PASSWORD, False),
        (UNTRUSTED, False),
        (NO_HOST, False),
        (ImapProtocolError("garbage"), False),
        (ImapCommandError("SELECT", "NO", "nope"), False),
        (StorageError("disk full"), False),
    ],
)
def test_is_transient(exc: Exception, transient: bool) -> None:
    assert is_transient(exc) is transient


def test_gave_up_counts_tries_in_words() -> None:
    assert gave_up("x", 1) == "x (gave up after 1 try)"
    assert gave_up("x", 5) == "x (gave up after 5 tries)"


# -- at connect ---------------------------------------------------------------------------------


@pytest.mark.parametrize("exc", [REFUSED, UNAVAILABLE_NATIVE, UNAVAILABLE_AIOIMAPLIB])
def test_connect_transient_is_retried_then_given_up(exc: MailError) -> None:
    decisions = [after_connect_failure(exc, n, P, 0.5) for n in range(1, 5)]
    assert decisions[:3] == [Retry(1, 0.2), Retry(2, 0.4), Retry(3, 0.8)]
    assert decisions[3] == FailAccount(f"{exc} (gave up after 4 tries)")


@pytest.mark.parametrize("exc", [WRONG_PASSWORD, UNTRUSTED, NO_HOST, ImapProtocolError("not IMAP")])
def test_connect_permanent_fails_the_account_at_once(exc: MailError) -> None:
    assert after_connect_failure(exc, 1, P, 0.5) == FailAccount(str(exc))


def test_connect_with_no_retries_gives_up_after_one_try() -> None:
    decision = after_connect_failure(REFUSED, 1, Backoff(retries=0), 0.5)
    assert decision == FailAccount(f"{REFUSED} (gave up after 1 try)")


@given(st.integers(0, 20), st.integers(1, 40), st.floats(0.0, 1.0))
def test_connect_retries_exactly_the_setting(retries: int, attempt: int, jitter: float) -> None:
    decision = after_connect_failure(REFUSED, attempt, Backoff(retries=retries), jitter)
    assert isinstance(decision, Retry) is (attempt <= retries)


# -- mid-folder ---------------------------------------------------------------------------------


def test_folder_gone_is_a_warning() -> None:
    exc = FolderGone("EXAMINE", "NO", "Mailbox doesn't exist: Doomed")
    assert after_folder_failure(exc, "a/Doomed", 1, P, 0.5) == SkipFolder(
        "a/Doomed: folder gone from the server (Mailbox doesn't exist: Doomed)"
    )


@pytest.mark.parametrize(
    "exc", [ImapConnectError("connection lost"), ImapProtocolError("bad bytes"), UNAVAILABLE_NATIVE]
)
def test_folder_reconnects_then_gives_up(exc: MailError) -> None:
    assert after_folder_failure(exc, "a/INBOX", 3, P, 0.0) == Retry(3, 0.4)
    assert after_folder_failure(exc, "a/INBOX", 4, P, 0.0) == FailFolder(
        f"a/INBOX: {exc} (gave up after 4 tries)", keep_session=False
    )


@pytest.mark.parametrize("exc", [UNTRUSTED, NO_HOST, WRONG_PASSWORD])
def test_folder_reconnect_that_cannot_succeed_fails_without_a_session(exc: MailError) -> None:
    assert after_folder_failure(exc, "a/INBOX", 1, P, 0.5) == FailFolder(
        f"a/INBOX: {exc}", keep_session=False
    )


@pytest.mark.parametrize(
    "exc",
    [
        ImapCommandError("UID FETCH", "NO", "server busy"),
        StorageError("disk full"),
        UIDValidityChanged("changed"),
    ],
)
def test_folder_error_keeps_a_healthy_session(exc: MailError | StorageError) -> None:
    assert after_folder_failure(exc, "a/INBOX", 1, P, 0.5) == FailFolder(
        f"a/INBOX: {exc}", keep_session=True
    )


# -- folder plan ----------------------------------------------------------------------------------


def _job(name: str, messages: int | None, uidnext: int = 10, *, synced: bool = False) -> FolderJob:
    status = None if messages is None else FolderState(name, 7, uidnext, None, messages)
    before = FolderState(name, 7, 10, None, messages or 0) if synced else None
    return FolderJob(name, name.encode(), name, status, before)


def test_plan_skips_unchanged_and_sorts_largest_first() -> None:
    jobs = [
        _job("Small", 3),
        _job("Same", 50, synced=True),
        _job("Big", 90, uidnext=99, synced=True),
        _job("NoStatus", None),
        _job("Mid", 40),
    ]
    before = {j.name: j.before for j in jobs if j.before is not None}
    plan = plan_folders(jobs, before)
    assert [j.name for j in plan.todo] == ["Big", "Mid", "Small", "NoStatus"]
    assert (plan.folders, plan.skipped, plan.expected) == (5, 1, 133)
    assert plan.first_time == 43  # Big was synced before: only Mid and Small are new
    assert not plan.nothing_to_do


def test_plan_of_an_unchanged_account_is_empty() -> None:
    jobs = [_job("INBOX", 5, synced=True)]
    plan = plan_folders(jobs, {"INBOX": jobs[0].before})  # type: ignore[dict-item]
    assert plan.nothing_to_do and plan.skipped == plan.folders == 1 and plan.expected == 0


@given(st.lists(st.integers(0, 1000), max_size=12))
def test_plan_order_is_largest_first_and_stable(sizes: list[int]) -> None:
    jobs = [_job(f"F{i}", n) for i, n in enumerate(sizes)]
    todo = plan_folders(jobs, {}).todo
    keys = [(-(j.status.messages or 0) if j.status else 0, int(j.name[1:])) for j in todo]
    assert keys == sorted(keys) and len(todo) == len(jobs)


def test_folder_counts_warn_about_vanished_messages() -> None:
    counts = folder_counts("a/INBOX", FolderResult("INBOX", flag_updates=2, gone=1, missing=(4, 5)))
    assert (counts.flag_updates, counts.gone) == (2, 1)
    assert counts.warnings == ("a/INBOX: 2 messages vanished while fetching",)
    assert folder_counts("a/INBOX", FolderResult("INBOX")).warnings == ()


def test_the_report_counts_each_decision() -> None:
    report = AccountReport("a")
    report.failed_attempt(Retry(1, 0.1))
    report.failed_attempt(SkipFolder("a/X: folder gone from the server (gone)"))
    report.failed_attempt(FailFolder("a/Y: UID FETCH: NO busy", keep_session=True))
    assert report.retries == 1
    assert report.warnings == ["a/X: folder gone from the server (gone)"]
    assert report.errors == ["a/Y: UID FETCH: NO busy"]
    assert not Retry(1, 0.1).keep_session and SkipFolder("w").keep_session
