"""The generated test-bed web site and its ground truth.

``generate_site`` writes a deterministic site (seeded) under ``root/"www"`` and computes, from its
own link graph (not by crawling), the exact set of canonical URLs that a correct follow crawl from
``origin + "/"`` with scope=host fetches and archives, with and without obeying robots.txt.

The site is made to trip a careless crawler: relative (``../b/p12.html``, ``p12.html``,
``./p12.html``), root-relative and absolute links, ``#fragment`` variants, ``?query`` variants whose
arguments come in different orders (one canonical URL each), pages with ``<base href>``, external
hosts (``*.example.invalid``, never fetched), ``mailto:`` links, non-HTML files (.pdf, .png, .txt),
broken links (404, archived too), and a ``/private/`` section disallowed by robots.txt behind which
the ``/archive/`` pages hide (reachable only through ``/private/``). There is no nofollow and no
meta robots, so the truth stays simple. Links to the home page are always ``/`` (never
``/index.html``), and the crawl starts at ``/``.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import psutil

from foundation.errors import PortInUseError, TestbedError
from testbed._proc import LOOPBACK, ManagedProcess, free_port
from testbed._site_graph import DOCROOT_NAME, PRIVATE_PREFIX, TRUTH_NAME, SiteBuilder, SiteInfo
from testbed.nginx import nginx_available, start_nginx
from testbed.webserver import start_aiohttp_server

__all__ = [
    "GENERATOR_VERSION",
    "PRIVATE_PREFIX",
    "Prefer",
    "ServerKind",
    "SiteInfo",
    "SiteServer",
    "generate_site",
    "load_site_info",
    "serve_generated_site",
    "site_dir",
    "start_site_server",
]

_log = logging.getLogger(__name__)

GENERATOR_VERSION = 1
STAMP_NAME = "site.stamp"


def site_dir(workdir: Path, pages: int, seed: int) -> Path:
    """Where :func:`serve_generated_site` keeps the site of (pages, seed) under ``workdir``."""
    return Path(workdir) / f"site-p{pages}-s{seed}"


def generate_site(root: Path, *, pages: int = 200, seed: int = 1, origin: str) -> SiteInfo:
    """Write the site under ``root/"www"`` plus ``root/"truth.json"``; reuse it when unchanged.

    ``origin`` ("http://127.0.0.1:PORT") is needed because absolute same-site links contain it.
    A stamp file makes a second call with the same (pages, seed, origin) a cheap no-op.
    """
    origin = origin.rstrip("/")
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
        raise TestbedError(f"origin must look like http://127.0.0.1:PORT, not {origin!r}")
    if pages < 20:
        raise TestbedError(f"a site needs at least 20 pages (got {pages})")
    root = Path(root)
    stamp = {"version": GENERATOR_VERSION, "pages": pages, "seed": seed, "origin": origin}
    stamp_path = root / STAMP_NAME
    if stamp_path.exists() and (root / TRUTH_NAME).exists() and (root / DOCROOT_NAME).is_dir():
        try:
            if json.loads(stamp_path.read_text("utf-8")) == stamp:
                return load_site_info(root)
        except (ValueError, OSError):
            pass  # a damaged stamp: regenerate
    root.mkdir(parents=True, exist_ok=True)
    stamp_path.unlink(missing_ok=True)
    staging = root / f"{DOCROOT_NAME}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    info = SiteBuilder(random.Random(seed), pages, seed, origin).write(root, staging)
    shutil.rmtree(root / DOCROOT_NAME, ignore_errors=True)
    staging.rename(root / DOCROOT_NAME)
    _write_truth(info)
    stamp_path.write_text(json.dumps(stamp), "utf-8")
    return info


def load_site_info(root: Path) -> SiteInfo:
    """The SiteInfo of a site generated earlier, read back from ``root/"truth.json"``."""
    path = Path(root) / TRUTH_NAME
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise TestbedError(f"cannot read {path}: {exc}; generate the site again") from exc
    return SiteInfo(
        root=Path(root),
        origin=data["origin"],
        pages=data["pages"],
        seed=data["seed"],
        truth_obey_robots=frozenset(data["truth_obey_robots"]),
        truth_ignore_robots=frozenset(data["truth_ignore_robots"]),
        page_paths=tuple(data["page_paths"]),
        file_paths=tuple(data["file_paths"]),
        broken_paths=tuple(data["broken_paths"]),
        html_bytes=data["html_bytes"],
        link_count=data["link_count"],
    )


def _write_truth(info: SiteInfo) -> None:
    data = {
        "version": GENERATOR_VERSION,
        "origin": info.origin,
        "pages": info.pages,
        "seed": info.seed,
        "start_url": info.start_url,
        "scope": "host",
        "truth_obey_robots": sorted(info.truth_obey_robots),
        "truth_ignore_robots": sorted(info.truth_ignore_robots),
        "page_paths": list(info.page_paths),
        "file_paths": list(info.file_paths),
        "broken_paths": list(info.broken_paths),
        "html_bytes": info.html_bytes,
        "link_count": info.link_count,
    }
    info.truth_path.write_text(json.dumps(data, indent=1) + "\n", "utf-8")


# -- serving ---------------------------------------------------------------------------------------

ServerKind = Literal["nginx", "aiohttp"]
Prefer = Literal["nginx", "aiohttp", "auto"]


@dataclass(frozen=True)
class SiteServer:
    """A running site server: a plain port (``base_url``) and one port per latency value."""

    kind: ServerKind
    base_url: str
    latency_ports: Mapping[int, int]
    docroot: Path
    workdir: Path
    process: ManagedProcess
    note: str = ""

    @property
    def port(self) -> int:
        return int(urlsplit(self.base_url).port or 80)

    def latency_url(self, ms: int) -> str:
        """The origin of the port that holds every response ``ms`` milliseconds."""
        if ms not in self.latency_ports:
            raise TestbedError(
                f"no {ms} ms port: this server has {sorted(self.latency_ports)} "
                "(start it with latencies_ms including it, or --latency on the CLI)"
            )
        return f"http://{LOOPBACK}:{self.latency_ports[ms]}"

    def pids(self) -> list[int]:
        """The server's processes (the master and its workers), for checks and CPU accounting."""
        try:
            master = psutil.Process(self.process.pid)
            return [master.pid, *(child.pid for child in master.children(recursive=True))]
        except psutil.NoSuchProcess:
            return []

    def alive(self) -> bool:
        return self.process.alive()

    def stop(self) -> None:
        """Stop the server by PID (its whole process group), waiting until it is gone."""
        self.process.stop()

    def __enter__(self) -> SiteServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_site_server(
    root: Path,
    *,
    latencies_ms: Sequence[int] = (100,),
    prefer: Prefer = "auto",
    workdir: Path,
    port: int | None = None,
    nginx_bin: str | None = None,
) -> SiteServer:
    """Serve a generated site (``root`` as given to :func:`generate_site`) on its origin's port.

    ``root`` without a ``truth.json`` is served as a plain directory on ``port`` (or a free one).
    ``prefer="auto"`` takes nginx when it and its echo module are installed, else the aiohttp
    fallback (with a logged warning: it, not the client, may then be the bottleneck).
    """
    root = Path(root)
    if (root / TRUTH_NAME).exists():
        info = load_site_info(root)
        site_port = int(urlsplit(info.origin).port or 80)
        if port is not None and port != site_port:
            raise TestbedError(
                f"the site in {root} was generated for {info.origin}, not port {port}: "
                "generate it again for that origin"
            )
        port, docroot = site_port, info.docroot
    else:
        port, docroot = (port or free_port()), root
    delays = sorted(set(latencies_ms))
    if any(ms <= 0 for ms in delays):
        raise TestbedError(f"latencies must be above 0 ms (got {list(latencies_ms)})")
    latency_ports = {ms: free_port() for ms in delays}
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    kind: ServerKind
    note = ""
    if prefer == "nginx" or (
        prefer == "auto" and nginx_available(nginx_bin, need_echo=bool(delays))
    ):
        kind = "nginx"
        proc = start_nginx(
            docroot, port=port, latency_ports=latency_ports, workdir=workdir, nginx_bin=nginx_bin
        )
    else:
        kind = "aiohttp"
        if prefer == "auto":
            note = (
                "nginx (apt-get install nginx-light libnginx-mod-http-echo) is not installed: "
                "serving with the aiohttp fallback, which may be slower than the client under test"
            )
            _log.warning("%s", note)
        proc = start_aiohttp_server(
            docroot, port=port, latency_ports=latency_ports, workdir=workdir
        )
    return SiteServer(
        kind=kind,
        base_url=f"http://{LOOPBACK}:{port}",
        latency_ports=latency_ports,
        docroot=docroot,
        workdir=workdir,
        process=proc,
        note=note,
    )


def serve_generated_site(
    workdir: Path,
    pages: int = 200,
    seed: int = 1,
    latencies_ms: Sequence[int] = (100,),
    prefer: Prefer = "auto",
    *,
    port: int | None = None,
    nginx_bin: str | None = None,
) -> tuple[SiteInfo, SiteServer]:
    """Pick the port, generate the site for that origin (cached), then serve it.

    The site lives in ``workdir/"site-p{pages}-s{seed}"``; a fixed ``port`` makes the cache hit
    on the next run (absolute links contain the origin, so a new port means a new site).
    """
    workdir = Path(workdir)
    attempts = 1 if port is not None else 3
    for attempt in range(attempts):
        chosen = port if port is not None else free_port()
        info = generate_site(
            site_dir(workdir, pages, seed),
            pages=pages,
            seed=seed,
            origin=f"http://{LOOPBACK}:{chosen}",
        )
        try:
            server = start_site_server(
                info.root,
                latencies_ms=latencies_ms,
                prefer=prefer,
                workdir=workdir / "server",
                nginx_bin=nginx_bin,
            )
        except PortInUseError:
            # the free port was taken while the site was generated: pick another one
            if attempt + 1 == attempts:
                raise
            continue
        return info, server
    raise AssertionError("unreachable")
