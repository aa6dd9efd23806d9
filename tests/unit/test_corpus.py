"""The mail corpus: deterministic, realistic, malformed where planned, exact sizes, truth."""

from __future__ import annotations

import email
import email.policy
import hashlib
import re
import statistics
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest

from foundation.errors import UsageError
from testbed.corpus import (
    DEFAULT_FOLDERS,
    MALFORMED_KINDS,
    MIN_MESSAGE_BYTES,
    Corpus,
    generate_corpus,
    read_truth,
    write_truth,
)
from testbed.imap_load import imap_date, quote
from testbed.mailgen import served_form

LONE_LF = re.compile(rb"(?<!\r)\n")
LONE_CR = re.compile(rb"\r(?!\n)")


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return generate_corpus(messages=200, seed=1, max_bytes=15_000_000)


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    a = generate_corpus(messages=60, seed=7)
    b = generate_corpus(messages=60, seed=7)
    c = generate_corpus(messages=60, seed=8)
    assert a.plans == b.plans
    digests_a = [hashlib.sha256(a.message(i).raw).hexdigest() for i in range(len(a))]
    digests_b = [hashlib.sha256(b.message(i).raw).hexdigest() for i in range(len(b))]
    assert digests_a == digests_b
    assert len(set(digests_a)) == len(digests_a)
    assert [p.size for p in a.plans] != [p.size for p in c.plans]
    assert a.message(0).raw != c.message(0).raw


def test_default_folders_are_awkward_and_all_used(corpus: Corpus) -> None:
    assert corpus.folders == DEFAULT_FOLDERS
    names = set(corpus.folders)
    assert {"INBOX", "Archive", "Archive/2023", "Project X", "Entwürfe", "Работа/Отчёты"} <= names
    assert any("&" in name for name in names)  # modified UTF-7 escapes "&" as "&-"
    assert any(".." in name for name in names)  # breaks Maildir++ naming
    assert quote("a&b") == b'"a&-b"'
    assert quote("Entwürfe") == b'"Entw&APw-rfe"'
    for name in names:
        assert corpus.in_folder(name), f"no message in {name}"
    assert sum(len(corpus.in_folder(n)) for n in names) == len(corpus)


def test_custom_folders_and_bad_arguments() -> None:
    small = generate_corpus(messages=30, folders=["INBOX", "Only/Child"])
    assert {p.folder for p in small.plans} <= {"INBOX", "Only/Child"}
    with pytest.raises(UsageError):
        generate_corpus(messages=10, folders=["INBOX", "INBOX"])
    with pytest.raises(UsageError):
        generate_corpus(messages=100, max_bytes=50 * MIN_MESSAGE_BYTES)
    assert len(generate_corpus(messages=0)) == 0


def test_sizes_exact_capped_and_log_normal(corpus: Corpus) -> None:
    for plan in corpus.plans:
        built = corpus.message(plan.index)
        assert len(built.served) == plan.size, plan
    assert corpus.total_bytes <= 15_000_000
    assert min(p.size for p in corpus.plans) >= MIN_MESSAGE_BYTES
    # the distribution, from the plan only (no bytes): median ~12 KB, a long tail of large ones
    big = generate_corpus(messages=20_000, seed=3)
    sizes = [p.size for p in big.plans]
    assert 8_000 < statistics.median(sizes) < 18_000
    assert 0.7e9 < sum(sizes) < 1.4e9
    assert sum(size > 1_000_000 for size in sizes) > 20
    assert max(sizes) > 2 * 1024 * 1024
    assert max(p.size for p in generate_corpus(messages=60, seed=5).plans) > 2 * 1024 * 1024


def test_planning_is_fast_for_20000_messages() -> None:
    started = time.perf_counter()
    generate_corpus(messages=20_000, seed=2)
    assert time.perf_counter() - started < 5.0


def test_duplicate_message_ids_live_in_other_folders(corpus: Corpus) -> None:
    by_id: dict[str, list[str]] = {}
    for plan in corpus.plans:
        by_id.setdefault(plan.message_id, []).append(plan.folder)
    dups = {mid: homes for mid, homes in by_id.items() if len(homes) > 1}
    assert len(dups) >= 2
    for homes in dups.values():
        assert len(set(homes)) > 1


def test_every_malformed_kind_is_present_and_malformed(corpus: Corpus) -> None:
    kinds = Counter(p.kind for p in corpus.plans)
    for kind in MALFORMED_KINDS:
        assert kinds[kind] >= 1, kind
    for plan in corpus.plans:
        built = corpus.message(plan.index)
        assert b"\0" not in built.raw
        assert served_form(built.raw) == built.served
        if plan.kind == "malformed-no-header-end":
            assert b"\r\n\r\n" not in built.raw
        elif plan.kind == "malformed-bare-lf":
            assert LONE_LF.search(built.raw) and not LONE_LF.search(built.served)
            assert LONE_CR.search(built.served)  # kept by Dovecot
            assert len(built.raw) < len(built.served)
        elif plan.kind == "malformed-8bit-header":
            head = built.raw.split(b"\r\n\r\n", 1)[0]
            assert any(byte >= 0x80 for byte in head)
        elif plan.kind == "malformed-broken-boundary":
            boundary = re.search(rb'boundary="([^"]+)"', built.raw)
            assert boundary is not None
            assert b"--" + boundary.group(1) + b"--" not in built.raw
        else:
            assert built.raw == built.served
            assert not LONE_LF.search(built.raw) and not LONE_CR.search(built.raw)


def test_well_formed_messages_parse_as_mime(corpus: Corpus) -> None:
    encoded_subjects = 0
    attachments = 0
    for plan in corpus.plans:
        if plan.kind in MALFORMED_KINDS:
            continue
        raw = corpus.message(plan.index).raw
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert msg["Message-ID"] == plan.message_id
        assert msg["From"] and msg["To"] and msg["Date"]
        assert not msg.defects, (plan, msg.defects)
        encoded_subjects += b"Subject: =?utf-8?" in raw
        for part in msg.walk():
            if part.get_content_disposition() == "attachment":
                attachments += 1
                payload = part.get_payload(decode=True)
                assert isinstance(payload, bytes) and payload
                assert part["Content-Transfer-Encoding"] == "base64"
    assert encoded_subjects >= 5
    assert attachments >= 20


def test_flags_and_internaldates(corpus: Corpus) -> None:
    flags = Counter(flag for plan in corpus.plans for flag in plan.flags)
    assert flags["\\Seen"] > 100
    assert flags["\\Flagged"] >= 1 and flags["\\Answered"] >= 1
    assert any(not flag.startswith("\\") for flag in flags)  # keywords
    for plan in corpus.plans:
        assert ("\\Draft" in plan.flags) == (plan.folder == "Entwürfe")
        assert plan.internaldate.tzinfo is not None
        if plan.folder == "Archive/2023":
            assert plan.internaldate.year == 2023
    years = {plan.internaldate.year for plan in corpus.plans}
    assert len(years) >= 5
    when = datetime.fromisoformat("2024-03-05T07:08:09+05:30")
    assert imap_date(when) == b'"05-Mar-2024 07:08:09 +0530"'


def test_truth_round_trips_through_json_lines(corpus: Corpus, tmp_path: Path) -> None:
    records = list(corpus.truth())
    assert [r.index for r in records] == list(range(len(corpus)))
    assert all(r.uid is None for r in records)
    first = records[0]
    assert first.sha256 == hashlib.sha256(corpus.message(0).served).hexdigest()
    loaded = [r.with_uid(i + 1, 42) for i, r in enumerate(records)]
    path = tmp_path / "truth.jsonl"
    assert write_truth(path, loaded) == len(loaded)
    again = read_truth(path)
    assert again == loaded
    assert '"folder": "Entwürfe"' in path.read_text("utf-8")  # UTF-8, not \u escapes
