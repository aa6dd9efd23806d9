"""``crawler replay``: serve a crawl folder or a WACZ with pywb's ``wayback``, in one command.

pywb is not a dependency of the crawler: it pins old versions of libraries the crawler's extras
need (redis 2.10 against redis>=5), so it lives in an environment of its own (scripts/_setup.sh
makes ``.venv-replay`` for the tests) and is found as the ``wayback`` program on PATH, or given
with ``--wayback``.

A crawl folder is served in place: a pywb config in a temporary folder names ``OUT/index.cdxj``
as the collection's index and ``OUT/warc/`` as its ``archive_paths`` (the index names each WARC
file by its plain name). A WACZ goes through pywb's own ``wb-manager add --unpack-wacz`` into a
temporary collection. The temporary folder goes when the server stops (Ctrl-C or SIGTERM, which
also stop ``wayback``).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from crawler.warc import WARC_DIR
from foundation.errors import StorageError, UsageError

__all__ = ["find_wayback", "pywb_config", "serve"]

INSTALL_HINT = (
    "install pywb (`pip install pywb`, best in a virtual environment of its own) and put its "
    "`wayback` on PATH, or give --wayback PATH"
)


def find_wayback(given: str | None) -> Path:
    """The ``wayback`` program: ``given`` or the one on PATH."""
    found = shutil.which(given or "wayback")
    if found is None:
        raise UsageError(f"pywb's wayback not found ({given or 'PATH'}): {INSTALL_HINT}")
    return Path(found)


def pywb_config(out: Path, collection: str) -> str:
    """A pywb ``config.yaml`` whose ``collection`` is the crawl folder ``out``, files in place.

    Written as JSON, which YAML reads as it is (paths with any character stay quoted right).
    """
    out = out.resolve()
    entry = {"index_paths": str(out / "index.cdxj"), "archive_paths": str(out / WARC_DIR) + "/"}
    return json.dumps({"collections": {collection: entry}}, indent=2) + "\n"


def _prepare(source: Path, root: Path, collection: str, wayback: Path) -> None:
    if source.is_dir():
        index = source / "index.cdxj"
        if not index.exists():
            raise StorageError(f"{index} is missing: build it with `crawler index {source}`")
        with open(index, encoding="utf-8") as fh:
            first = fh.readline()
        if '"filename": "warc/' in first:  # an index from before plain file names
            raise StorageError(f"{index} names files as warc/...: run `crawler index {source}`")
        (root / "config.yaml").write_text(pywb_config(source, collection), "utf-8")
        return
    if source.suffix != ".wacz":
        raise UsageError(f"{source}: give a crawl folder or a .wacz file")
    (root / "config.yaml").write_text("{}\n", "utf-8")  # pywb's defaults (it warns without one)
    manager = wayback.with_name("wb-manager")
    for args in (["init", collection], ["add", "--unpack-wacz", collection, str(source.resolve())]):
        done = subprocess.run(
            [str(manager), *args], cwd=root, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise StorageError(f"wb-manager {args[0]} failed: {done.stderr.strip()[-500:]}")


def serve(source: Path, *, port: int, bind: str, collection: str, wayback: Path) -> int:
    """Run ``wayback`` over ``source`` until it stops or this process gets Ctrl-C / SIGTERM;
    returns wayback's exit code (130 when stopped by a signal)."""
    with tempfile.TemporaryDirectory(prefix="crawler-replay-") as tmp:
        root = Path(tmp)
        _prepare(source, root, collection, wayback)
        print(
            f"replaying {source} at http://{bind}:{port}/{collection}/ (Ctrl-C stops)",
            file=sys.stderr,
            flush=True,
        )

        def stop(signum: int, frame: object) -> None:
            raise KeyboardInterrupt

        # SIGTERM and SIGINT both stop the server, whatever SIGINT's disposition was (a shell
        # starts a background job with SIGINT ignored, and then so would this process be); set
        # before wayback starts, so no signal can leave it running without its parent
        previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
        proc: subprocess.Popen[bytes] | None = None
        try:
            proc = subprocess.Popen([str(wayback), "--port", str(port), "--bind", bind], cwd=root)
            return proc.wait()
        except KeyboardInterrupt:
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            return 130
        finally:
            for signum, handler in previous.items():
                if handler is not None:  # None: a handler not set from Python (kept as it is)
                    signal.signal(signum, handler)
