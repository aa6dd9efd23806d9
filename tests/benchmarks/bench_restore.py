"""Restore and export benchmark (a script, not a test): ``scripts/bench restore [--full]``.

Builds a corpus in a private stock Dovecot (no zlib plugins) and backs it up once with mailsync.
Then, side by side in one run and interleaved round by round (median of ``--runs``):

- ``mailsync restore`` of that archive into a new, empty account;
- ``mbsync`` pushing the same Maildir (``Sync Push``, ``Create Far``) into another new account
  (a hard-linked copy of the archive without mailsync's own ``.fetchlab/`` files: mbsync would
  take them for folders);
- ``mailsync export --format mbox`` and ``--format eml`` of the archive (MB/s of message bytes).

Restore and push run direct and through the test bed's delay proxy (``--delays``, ms one way).
Reports wall seconds, msgs/s, MB/s, client CPU seconds, peak RSS of the process tree and, for
restores, the ratio to mbsync (> 1: faster). Every restored account is checked afterwards: the
number of messages on the server must equal the corpus (no duplicate, nothing missing).

Quick size by default (2,000 messages, ~100 MB); ``--full`` (or FETCHLAB_SLOW=1) is the target
size (20,000 messages, ~1 GB); ``--messages N`` any other. Run the full size on a quiet machine.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script: make the project importable
    sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402

from fetchlab.bench.grid import set_aside  # noqa: E402
from fetchlab.bench.sampler import ServerCPU  # noqa: E402
from foundation.progress import summary_table  # noqa: E402
from mailsync.core.utf7 import encode_mutf7  # noqa: E402
from testbed.corpus import generate_corpus  # noqa: E402
from testbed.dovecot import DovecotServer, start_dovecot  # noqa: E402
from testbed.imap_load import ImapSession, load_corpus  # noqa: E402
from testbed.proxy import start_proxy  # noqa: E402
from tests.benchmarks.bench_mail import SERVER, Sample, _median, _run  # noqa: E402

USER, PASSWORD = "bench", "secret"
_users = itertools.count(1)


def _settings(path: Path, archive: Path, port: int, target: str | None) -> Path:
    accounts = [("bench", USER)] + ([("target", target)] if target else [])
    text = f'[mail]\nout = "{archive}"\n'
    for name, user in accounts:
        text += (
            f'[[mail.accounts]]\nname = "{name}"\nhost = "127.0.0.1"\nport = {port}\n'
            f'security = "plain"\nusername = "{user}"\npassword_env = "BENCH_PASSWORD"\n'
        )
    path.write_text(text, "utf-8")
    return path


def _mailsync(*args: str) -> list[str]:
    return [sys.executable, "-m", "fetchlab.mail_cli", *args]


ENV = {**os.environ, "BENCH_PASSWORD": PASSWORD, "PYTHONPATH": str(ROOT)}


def _new_user(server: DovecotServer, prefix: str) -> str:
    user = f"{prefix}{next(_users)}"
    server.add_user(user, PASSWORD)
    return user


def _restore(work: Path, archive: Path, server: DovecotServer, port: int) -> tuple[Sample, str]:
    user = _new_user(server, "r")
    settings = _settings(work / f"{user}.toml", archive, port, user)
    argv = _mailsync("restore", "--settings", str(settings), "--from", "bench", "--to", "target")
    return _run(argv, ENV), user


def _mbsync(work: Path, maildir: Path, server: DovecotServer, port: int) -> tuple[Sample, str]:
    user = _new_user(server, "m")
    conf = work / f"{user}.mbsyncrc"
    state = work / f"{user}.state"
    state.mkdir()
    conf.write_text(
        f"""IMAPAccount bench
Host 127.0.0.1
Port {port}
User {user}
Pass {PASSWORD}
SSLType None
AuthMechs LOGIN

IMAPStore remote
Account bench

MaildirStore local
Path {maildir}/
Inbox {maildir}/INBOX
SubFolders Verbatim

Channel bench
Far :remote:
Near :local:
Patterns *
Create Far
Sync Push
Expunge None
SyncState {state}/
""",
        "utf-8",
    )
    return _run(["mbsync", "-q", "-c", str(conf), "-a"]), user


def _export(work: Path, archive: Path, fmt: str, n: int) -> Sample:
    out = work / f"export-{fmt}-{n}"
    argv = _mailsync(
        "export",
        "--archive",
        str(archive),
        "--account",
        "bench",
        "--format",
        fmt,
        "--out",
        str(out),
    )
    sample = _run(argv, {**ENV, "FETCHLAB_SETTINGS": ""})
    # moved aside, not deleted: ext4 here makes every inode allocated in the seconds after a
    # deletion scan the freed ones (fetchlab.bench.grid.set_aside), and the next run, which
    # creates 20,000 files, paid for this one's 20,000 (eml export 79 MB/s measured that way)
    set_aside(out, work)
    return sample


def _mutf7_names(maildir: Path) -> None:
    """Folder names as mbsync 1.4 must send them: it does not encode to modified UTF-7 itself
    (a raw "Entwürfe" is refused by Dovecot), so the copy's folders are renamed to that form."""
    for dirpath, dirnames, _ in os.walk(maildir, topdown=False):
        for name in dirnames:
            wire = encode_mutf7(name).decode("ascii")
            if wire != name:
                os.rename(Path(dirpath) / name, Path(dirpath) / wire)


def _count_on_server(server: DovecotServer, user: str) -> int:
    """Messages in every folder of ``user`` (one LIST-STATUS)."""
    with ImapSession(server, user) as session:
        lines, _ = session.command(b'LIST "" "*" RETURN (STATUS (MESSAGES))')
    return sum(int(m) for line in lines for m in re.findall(rb"MESSAGES (\d+)", line))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="20,000 messages (~1 GB)")
    parser.add_argument("--messages", type=int, default=None)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--delays", default="0,100", help="ms one way, comma-separated")
    args = parser.parse_args()
    full = args.full or os.environ.get("FETCHLAB_SLOW") == "1"
    messages = args.messages or (20_000 if full else 2_000)
    delays = [int(d) for d in args.delays.split(",") if d.strip()]
    console = Console()
    have_mbsync = shutil.which("mbsync") is not None
    work = Path(tempfile.mkdtemp(prefix="fetchlab-bench-restore-"))
    work.chmod(0o755)
    server = start_dovecot(work / "dovecot", users={USER: PASSWORD}, compress=False)
    SERVER[0] = ServerCPU(server.process.pid)
    rows: list[tuple[str, ...]] = []
    try:
        corpus = generate_corpus(messages=messages, seed=1)
        truth = load_corpus(server, USER, corpus)
        mb = sum(r.size for r in truth) / 1e6
        archive = work / "archive"
        settings = _settings(work / "backup.toml", archive, server.port, None)
        subprocess.run(
            _mailsync("backup", "--settings", str(settings), "--no-progress"),
            env=ENV,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        # mbsync gets the same Maildirs, hard-linked, without mailsync's own files
        maildir = work / "maildir"
        shutil.copytree(
            archive / "bench",
            maildir,
            copy_function=os.link,
            ignore=shutil.ignore_patterns(".fetchlab", ".spill"),
        )
        _mutf7_names(maildir)
        console.print(f"corpus: {len(truth)} messages, {mb:.0f} MB, {len(corpus.folders)} folders")

        def add(tool: str, what: str, delay: int, s: Sample, ref: Sample | None) -> None:
            ratio = f"{ref.wall / s.wall:.2f}x" if ref is not None else "-"
            rows.append(
                (
                    tool,
                    what,
                    str(delay),
                    f"{s.wall:.2f}",
                    f"{len(truth) / s.wall:.0f}",
                    f"{mb / s.wall:.1f}",
                    f"{s.cpu:.1f}",
                    f"{s.server_cpu:.1f}",
                    f"{s.rss_mb:.0f}",
                    ratio,
                )
            )

        for delay in delays:
            proxy = start_proxy((server.host, server.port), delay_ms=delay) if delay else None
            port = proxy.port if proxy is not None else server.port
            try:
                ours: list[Sample] = []
                theirs: list[Sample] = []
                for _ in range(args.runs):
                    sample, user = _restore(work, archive, server, port)
                    got = _count_on_server(server, user)
                    assert got == len(truth), f"restore left {got} of {len(truth)} messages"
                    ours.append(sample)
                    if have_mbsync:
                        sample, user = _mbsync(work, maildir, server, port)
                        theirs.append(sample)
                ref = _median(theirs) if theirs else None
                add("mailsync restore", "restore", delay, _median(ours), ref)
                if ref is not None:
                    add("mbsync (Sync Push)", "restore", delay, ref, None)
            finally:
                if proxy is not None:
                    proxy.stop()
        for fmt in ("mbox", "eml"):
            samples = [_export(work, archive, fmt, n) for n in range(args.runs)]
            add(f"mailsync export {fmt}", "export", 0, _median(samples), None)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    console.print(
        summary_table(
            f"restore / export benchmark (median of {args.runs}; {len(truth)} msgs, {mb:.0f} MB)",
            [
                "tool",
                "work",
                "delay ms",
                "wall s",
                "msgs/s",
                "MB/s",
                "CPU s",
                "server CPU s",
                "peak RSS MB",
                "vs mbsync",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
