"""A deterministic IMAP mail corpus with its ground truth.

``generate_corpus`` only plans (folder, size, kind, flags, dates, Message-ID per message: a few
hundred bytes each), so 20,000 messages plan in well under a second; each message's bytes are made
on demand from (seed, index) by ``testbed.mailgen`` and never all held at once.

The ground truth of a message is what the server serves back: size and SHA-256 of BODY[] (Dovecot
turns lone CR / LF into CRLF, so the malformed "bare LF" messages are served longer than they were
APPENDed), flags, INTERNALDATE, Message-ID, and after loading its UID and UIDVALIDITY.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from foundation.errors import UsageError
from testbed.mailgen import MALFORMED_KINDS, BuiltMessage, MessagePlan, build_message

__all__ = [
    "DEFAULT_FOLDERS",
    "MALFORMED_KINDS",
    "MIN_MESSAGE_BYTES",
    "Corpus",
    "MessagePlan",
    "TruthRecord",
    "generate_corpus",
    "read_truth",
    "write_truth",
]

# Decoded names, "/" is the hierarchy delimiter. "Работа" is only a parent: the server lists it
# as \Noselect. "a&b" must survive modified UTF-7 ("a&-b"); "dots.and..dots" breaks Maildir++.
DEFAULT_FOLDERS: tuple[str, ...] = (
    "INBOX",
    "Archive",
    "Archive/2023",
    "Archive/2024",
    "Project X",
    "Entwürfe",
    "Работа/Отчёты",
    "a&b",
    "dots.and..dots",
)
_WEIGHTS = {"INBOX": 30.0, "Archive": 10.0, "Archive/2023": 15.0, "Archive/2024": 15.0}
MIN_MESSAGE_BYTES = 1024
_MAX_MESSAGE_BYTES = 6 * 1024 * 1024
_MAX_MALFORMED_BYTES = 64 * 1024
_ATTACHMENT_FROM = 8 * 1024  # below this a message is text only
_LARGE_BYTES = 2 * 1024 * 1024
# log-normal sizes: median 12 KB, mean ~50 KB, so 20,000 messages make ~1 GB
_SIZE_MU = math.log(12_000)
_SIZE_SIGMA = 1.7
_YEARS = (2015, 2025)
_ZONES = (0, 60, 120, -300, -420, 330, 540, 60, 0, 120)  # minutes east of UTC
_KEYWORDS = ("$Forwarded", "$Label1", "Work", "$Important")


@dataclass(frozen=True, slots=True)
class TruthRecord:
    """What the server must hold for one message (``uid``/``uidvalidity`` set once loaded)."""

    index: int
    folder: str
    message_id: str
    kind: str
    size: int  # RFC822.SIZE == len(BODY[])
    sha256: str  # of BODY[] as served
    flags: tuple[str, ...]
    internaldate: datetime
    appended_size: int  # bytes sent in APPEND (differs for lone CR / LF)
    uid: int | None = None
    uidvalidity: int | None = None

    def to_json(self) -> str:
        data: dict[str, Any] = asdict(self)
        data["flags"] = list(self.flags)
        data["internaldate"] = self.internaldate.isoformat()
        return json.dumps(data, ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, line: str) -> TruthRecord:
        data = json.loads(line)
        data["flags"] = tuple(data["flags"])
        data["internaldate"] = datetime.fromisoformat(data["internaldate"])
        return cls(**data)

    def with_uid(self, uid: int, uidvalidity: int) -> TruthRecord:
        return replace(self, uid=uid, uidvalidity=uidvalidity)


@dataclass(frozen=True)
class Corpus:
    """The plan of every message; bytes are built on demand (see ``message``)."""

    seed: int
    folders: tuple[str, ...]
    plans: tuple[MessagePlan, ...]
    _by_folder: dict[str, tuple[MessagePlan, ...]] = field(repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.plans)

    @property
    def total_bytes(self) -> int:
        """Sum of the served sizes (what a full backup downloads)."""
        return sum(p.size for p in self.plans)

    def in_folder(self, folder: str) -> tuple[MessagePlan, ...]:
        """The folder's messages in index order (the order they are APPENDed, so UID order)."""
        return self._by_folder.get(folder, ())

    def message(self, index: int) -> BuiltMessage:
        return build_message(self.seed, self.plans[index])

    def iter_messages(self, folder: str | None = None) -> Iterator[tuple[MessagePlan, bytes]]:
        """(plan, bytes to APPEND), one message in memory at a time."""
        plans = self.plans if folder is None else self.in_folder(folder)
        for plan in plans:
            yield plan, build_message(self.seed, plan).raw

    def truth_of(self, plan: MessagePlan, built: BuiltMessage | None = None) -> TruthRecord:
        built = built or build_message(self.seed, plan)
        return TruthRecord(
            index=plan.index,
            folder=plan.folder,
            message_id=plan.message_id,
            kind=plan.kind,
            size=len(built.served),
            sha256=hashlib.sha256(built.served).hexdigest(),
            flags=plan.flags,
            internaldate=plan.internaldate,
            appended_size=len(built.raw),
        )

    def truth(self) -> Iterator[TruthRecord]:
        """The ground truth before loading (no UIDs), generated message by message."""
        for plan in self.plans:
            yield self.truth_of(plan)


def write_truth(path: Path, records: Iterable[TruthRecord]) -> int:
    """Write JSON lines (one record per line, UTF-8); returns the number of records."""
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for record in records:
            out.write(record.to_json() + "\n")
            count += 1
    return count


def read_truth(path: Path) -> list[TruthRecord]:
    with path.open(encoding="utf-8") as src:
        return [TruthRecord.from_json(line) for line in src if line.strip()]


def _sizes(rng: random.Random, n: int, max_bytes: int | None) -> list[int]:
    sizes = [
        int(
            min(
                max(rng.lognormvariate(_SIZE_MU, _SIZE_SIGMA), MIN_MESSAGE_BYTES),
                _MAX_MESSAGE_BYTES,
            )
        )
        for _ in range(n)
    ]
    if n >= 50 and max(sizes) < _LARGE_BYTES:  # always a few large ones, even in small corpora
        sizes[rng.randrange(n)] = rng.randint(_LARGE_BYTES, _MAX_MESSAGE_BYTES)
    if max_bytes is not None and sum(sizes) > max_bytes:
        floor = n * MIN_MESSAGE_BYTES
        if max_bytes < floor:
            raise UsageError(
                f"max_bytes={max_bytes} is below {n} messages x {MIN_MESSAGE_BYTES} bytes"
            )
        # shrink what is above the floor proportionally: the shape of the distribution stays
        factor = (max_bytes - floor) / (sum(sizes) - floor)
        sizes = [MIN_MESSAGE_BYTES + int((s - MIN_MESSAGE_BYTES) * factor) for s in sizes]
    return sizes


def _kind(rng: random.Random, size: int) -> str:
    if size > 64 * 1024:
        return "attachment"
    if size >= _ATTACHMENT_FROM:
        return rng.choices(("attachment", "alternative", "plain"), (5, 2, 3))[0]
    return rng.choices(("plain", "alternative"), (6, 4))[0]


def _internaldate(rng: random.Random, folder: str) -> datetime:
    year = folder.rsplit("/", 1)[-1]
    first, last = (int(year), int(year)) if year.isdigit() and len(year) == 4 else _YEARS
    start = datetime(first, 1, 1, tzinfo=UTC)
    span = datetime(last + 1, 1, 1, tzinfo=UTC) - start
    instant = start + timedelta(seconds=rng.randrange(int(span.total_seconds())))
    zone = timezone(timedelta(minutes=rng.choice(_ZONES)))
    return instant.astimezone(zone)


def _flags(rng: random.Random, folder: str) -> tuple[str, ...]:
    flags = []
    if folder == "Entwürfe":
        flags.append("\\Draft")
    if rng.random() < 0.7:
        flags.append("\\Seen")
    if rng.random() < 0.15:
        flags.append("\\Answered")
    if rng.random() < 0.08:
        flags.append("\\Flagged")
    if rng.random() < 0.1:
        flags.append(rng.choice(_KEYWORDS))
    return tuple(flags)


def generate_corpus(
    *,
    messages: int = 200,
    seed: int = 1,
    folders: Sequence[str] | None = None,
    max_bytes: int | None = None,
) -> Corpus:
    """Plan ``messages`` messages over ``folders`` (decoded names, "/" delimiter); deterministic.

    ``max_bytes`` caps the total served size (sizes shrink proportionally above 1 KB each).
    """
    if messages < 0:
        raise UsageError("messages must be >= 0")
    names = tuple(folders) if folders is not None else DEFAULT_FOLDERS
    if not names or len(set(names)) != len(names):
        raise UsageError(f"folders must be distinct and not empty: {names!r}")
    rng = random.Random(f"plan:{seed}")
    weights = [_WEIGHTS.get(name, 5.0) for name in names]
    homes = rng.choices(names, weights, k=messages)
    sizes = _sizes(rng, messages, max_bytes)
    kinds = [_kind(rng, size) for size in sizes]
    # one message of each malformed kind per 100 (at least one each once there are 20)
    if messages >= 20:
        picks = rng.sample(
            range(messages), min(messages, len(MALFORMED_KINDS) * max(1, messages // 100))
        )
        for n, index in enumerate(picks):
            kinds[index] = MALFORMED_KINDS[n % len(MALFORMED_KINDS)]
            sizes[index] = min(sizes[index], _MAX_MALFORMED_BYTES)
    ids = [f"<{seed}.{i}.{rng.getrandbits(40):010x}@fetchlab.test>" for i in range(messages)]
    # a few messages carry the Message-ID of an earlier one in another folder (copies, resends)
    if messages >= 10 and len(names) >= 2:
        for index in rng.sample(range(1, messages), max(2, messages // 100)):
            earlier = rng.randrange(index)
            ids[index] = ids[earlier]
            if homes[index] == homes[earlier]:
                homes[index] = next(name for name in names if name != homes[earlier])
    plans = tuple(
        MessagePlan(
            index=i,
            folder=homes[i],
            size=sizes[i],
            kind=kinds[i],
            internaldate=_internaldate(rng, homes[i]),
            message_id=ids[i],
            flags=_flags(rng, homes[i]),
        )
        for i in range(messages)
    )
    by_folder: dict[str, list[MessagePlan]] = {name: [] for name in names}
    for plan in plans:
        by_folder[plan.folder].append(plan)
    return Corpus(
        seed=seed,
        folders=names,
        plans=plans,
        _by_folder={name: tuple(group) for name, group in by_folder.items()},
    )
