"""The demo behind `scripts/demo`: start the local test site and Dovecot, run the tools on them.

Everything lands in ./demo-out (or --out): the crawl archive, the mail archive, the settings file
used, and the test-bed data. Servers are stopped by PID at the end (or after --keep-running).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from testbed.corpus import generate_corpus
from testbed.dovecot import start_dovecot
from testbed.imap_load import load_corpus
from testbed.site import serve_generated_site

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DEMO_USER, DEMO_PASSWORD = "demo", "demo-password"


def _banner(text: str) -> None:
    print(f"\n=== {text}", flush=True)


def _run(argv: list[str], env: dict[str, str] | None = None) -> int:
    print("$ " + " ".join(argv), flush=True)
    return subprocess.call(argv, env=env)


def _settings(path: Path, out: Path, host: str, port: int, ca_file: Path) -> None:
    path.write_text(
        "# Written by scripts/demo: the local test-bed Dovecot over TLS with its own CA.\n"
        "[mail]\n"
        f'out = "{out}"\n\n'
        "[[mail.accounts]]\n"
        f'name = "{DEMO_USER}"\n'
        f'host = "{host}"\n'
        f"port = {port}\n"
        'security = "tls"\n'
        f'username = "{DEMO_USER}"\n'
        'password_env = "FETCHLAB_DEMO_PASSWORD"\n'
        f'ca_file = "{ca_file}"\n',
        "utf-8",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/demo", description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "demo-out", help="where results go")
    parser.add_argument("--pages", type=int, default=500, help="pages in the generated site")
    parser.add_argument("--messages", type=int, default=300, help="messages in the demo mailbox")
    parser.add_argument(
        "--keep-running",
        type=float,
        default=0,
        metavar="SECONDS",
        help="keep the servers up this long after the demo, to explore them",
    )
    args = parser.parse_args(argv)
    out: Path = args.out.resolve()
    for sub in ("crawl", "mail"):
        shutil.rmtree(out / sub, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    status = 0

    _banner(f"test site: {args.pages} generated pages on nginx (or the aiohttp fallback)")
    info, site = serve_generated_site(out / "testbed" / "web", pages=args.pages, seed=1)
    # Dovecot's mail user must reach its folder: a private tmp folder, not under /root
    imap_work = Path(tempfile.mkdtemp(prefix="fetchlab-demo-dovecot-"))
    try:
        latency = site.latency_url(100)
        print(f"site: {site.base_url}/  ({site.kind}; 100 ms latency port: {latency})")
        print(f"ground truth: {len(info.truth_obey_robots)} URLs with robots obeyed")

        _banner("crawler: follow crawl of the whole site into WARC")
        t0 = time.monotonic()
        rc = _run(
            [
                str(BIN / "crawler"),
                "crawl",
                site.base_url + "/",
                "--follow",
                "--out",
                str(out / "crawl"),
            ]
        )
        print(f"crawl exit code {rc} in {time.monotonic() - t0:.1f} s")
        if rc == 1:
            # the generated site has deliberate broken links and robots-disallowed pages
            print("(exit code 1 = some URLs failed: expected here, the site has broken links)")
        else:
            status = max(status, rc)
        _run([str(BIN / "crawler"), "stats", str(out / "crawl")])
        _banner("crawler: pack the crawl as one WACZ (ReplayWeb.page, pywb)")
        status = max(status, _run([str(BIN / "crawler"), "wacz", str(out / "crawl")]))

        _banner(f"test mailbox: Dovecot with {args.messages} generated messages")
        imap = start_dovecot(imap_work, users={DEMO_USER: DEMO_PASSWORD})
        try:
            corpus = generate_corpus(messages=args.messages, seed=1, max_bytes=60_000_000)
            truth = load_corpus(imap, DEMO_USER, corpus)
            total = sum(r.size for r in truth)
            print(
                f"imap: {imap.host}:{imap.tls_port} (TLS) user {DEMO_USER}; "
                f"{len(truth)} messages, {total / 1e6:.1f} MB in {len(corpus.folders)} folders"
            )
            settings = out / "settings.toml"
            _settings(settings, out / "mail", imap.host, imap.tls_port, imap.ca_cert)
            env = dict(os.environ, FETCHLAB_DEMO_PASSWORD=DEMO_PASSWORD)

            _banner("mailsync: back up the whole account into Maildir")
            rc = _run([str(BIN / "mailsync"), "backup", "--settings", str(settings)], env)
            status = max(status, rc)
            _banner("mailsync: second run (incremental, nothing new)")
            status = max(
                status, _run([str(BIN / "mailsync"), "backup", "--settings", str(settings)], env)
            )
            _banner("mailsync: verify the archive against the server (SHA-256)")
            status = max(
                status,
                _run([str(BIN / "mailsync"), "verify", "--deep", "--settings", str(settings)], env),
            )
            mail = str(out / "mail")
            _banner(
                "mailsync: search the archive (the first search indexes what the backup stored)"
            )
            status = max(
                status,
                _run(
                    [
                        str(BIN / "mailsync"),
                        "search",
                        "--out",
                        mail,
                        "--limit",
                        "5",
                        "has:attachment",
                    ]
                ),
            )
            _banner("mailsync: report (HTML with charts, PNGs, Markdown)")
            report = str(out / "mail-report")
            status = max(
                status, _run([str(BIN / "mailsync"), "report", "--out", mail, "--to", report])
            )
            _banner("mailsync: export the archive as mboxrd files")
            export = [str(BIN / "mailsync"), "export", "--settings", str(settings)]
            export += ["--account", DEMO_USER, "--format", "mbox", "--out", str(out / "mbox")]
            status = max(status, _run(export, env))
            if args.keep_running > 0:
                print(f"servers stay up for {args.keep_running:.0f} s (Ctrl-C to stop)")
                time.sleep(args.keep_running)
        finally:
            imap.stop()
    except KeyboardInterrupt:
        status = 130
    finally:
        site.stop()
        shutil.rmtree(imap_work, ignore_errors=True)

    _banner("results")
    print(f"web archive:  {out / 'crawl'}  (warc/, pages.jsonl, index.cdxj)")
    print(f"web archive as WACZ: {out / 'crawl' / 'crawl.wacz'}")
    print(
        "  replay it: crawler replay FILE --wayback .venv-replay/bin/wayback (after scripts/test)"
    )
    print(f"mail archive: {out / 'mail'}  (one Maildir per folder, .fetchlab/state.sqlite)")
    print(f"mail report:  {out / 'mail-report'}  (open the .html in a browser)")
    print(f"mbox export:  {out / 'mbox'}")
    print(f"settings:     {out / 'settings.toml'}")
    print("demo " + ("finished" if status == 0 else f"finished with exit status {status}"))
    return status


if __name__ == "__main__":
    sys.exit(main())
