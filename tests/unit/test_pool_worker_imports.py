"""A spawned parser worker imports the module of every function it is sent: those modules must
stay light, or each worker process grows by the search index, SQLite and asyncio (~8 MB RSS each,
docs/benchmarks/memory.md). Checked in a fresh interpreter, as a spawned worker starts."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("asyncio", "sqlite3", "mailsync.search_index", "msgspec", "aiohttp")


def _in_a_fresh_interpreter(*lines: str) -> None:
    subprocess.run([sys.executable, "-c", "\n".join(lines)], check=True)


def _imported_after(modules: str) -> set[str]:
    code = f"import sys, json\nimport {modules}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return set(json.loads(out.stdout))


def test_the_mail_parser_worker_imports_nothing_heavy() -> None:
    loaded = _imported_after("foundation.pool_worker, mailsync.stored_parse")
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_the_offload_sends_functions_from_the_light_module() -> None:
    from foundation import offload, pool_worker
    from mailsync import indexer, stored_parse

    # pickled by reference: the worker imports the function's own module
    assert offload.apply_batch.__module__ == pool_worker.__name__
    assert offload.pool_worker_init.__module__ == pool_worker.__name__
    assert indexer.parse_doc.__module__ == stored_parse.__name__


def test_surt_keys_leave_tldextract_unimported_until_it_is_used() -> None:
    # surt imports tldextract (and with it requests and urllib3: ~20 MB a process) for public
    # suffixes that surt.surt never asks for
    _in_a_fresh_interpreter(
        "import sys",
        "from crawler.surt_key import url_key",
        "assert url_key('http://www.Example.com:80/b/../a?b=1&a=2') == 'com,example)/a?a=2&b=1'",
        "assert 'requests' not in sys.modules and 'urllib3' not in sys.modules",
        "import tldextract",
        "from surt.handyurl import handyurl",
        "assert tldextract.TLDExtract.__module__ == 'tldextract.tldextract'",
        "assert 'requests' in sys.modules  # the real module, loaded on first use",
        "assert handyurl.parse(b'http://a.example/').host == b'a.example'",
    )


def test_the_crawl_coordinator_loads_neither_openssl_nor_frostwork() -> None:
    # importing hashlib loads libcrypto (~3.3 MiB RSS), w3lib.encoding frostwork's library (~1.2
    # MiB); the processes mode's coordinator never makes a digest (foundation.hashes) nor decodes
    # a page, and it fingerprints URLs with CPython's own BLAKE2b
    _in_a_fresh_interpreter(
        "import sys",
        "import fetchlab.crawl_cli, drivers.crawl_processes",
        "from crawler.core.urls import fingerprint",
        "assert len(fingerprint('http://a.example/b')) == 16",
        "assert '_hashlib' not in sys.modules and 'ssl' not in sys.modules, 'OpenSSL loaded'",
        "assert 'frostwork' not in sys.modules and 'w3lib.encoding' not in sys.modules",
        "from foundation.hashes import sha1",
        "assert sha1(b'abc').hexdigest() == 'a9993e364706816aba3e25717850c26c9cd0d89d'",
    )


def test_fingerprints_are_hashlibs_blake2b() -> None:
    import hashlib

    from crawler.core.urls import canonicalize, fingerprint
    from crawler.warc import _EMPTY_DIGEST, payload_digest

    url = "http://Example.com:80/a/../b?x=1"
    want = hashlib.blake2b(canonicalize(url).encode(), digest_size=16).digest()
    assert fingerprint(url) == want  # the keys of frontiers written before stay valid
    assert payload_digest(b"") == _EMPTY_DIGEST
