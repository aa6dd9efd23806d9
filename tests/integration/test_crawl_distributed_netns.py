"""Workers on separate "hosts": each in a network namespace of its own, created here, reaching
Redis and the test site over a veth pair (nothing shared but those two addresses and the
files of this machine). Needs root; cleaned up in a finally."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from testbed.redis import start_redis
from tests.integration.crawl_support import crawler_cmd
from tests.integration.distributed_support import (
    check_merged,
    counting_site,
    new_job,
    seed,
    start_worker,
    stop_all,
    wait_all,
)

pytestmark = [
    pytest.mark.needs_redis,
    pytest.mark.skipif(
        os.geteuid() != 0 or shutil.which("ip") is None,
        reason="network namespaces need root and iproute2 (`ip netns add`)",
    ),
]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@contextmanager
def namespaces(count: int) -> Iterator[tuple[str, list[str]]]:
    """``count`` namespaces, each with a veth pair to this one; yields (the address of the
    first pair's host side, which every namespace reaches, and the namespace names)."""
    tag = uuid.uuid4().hex[:6]
    net = random.randrange(100, 250)
    names: list[str] = []
    hosts: list[str] = []
    try:
        for i in range(count):
            ns, host_if, ns_if = f"fl-{tag}-{i}", f"flh{tag}{i}", f"fln{tag}{i}"
            _ip("netns", "add", ns)
            names.append(ns)
            _ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
            hosts.append(host_if)
            _ip("link", "set", ns_if, "netns", ns)
            gateway = f"10.{net}.{i}.1"
            _ip("addr", "add", f"{gateway}/24", "dev", host_if)
            _ip("link", "set", host_if, "up")
            _ip("-n", ns, "addr", "add", f"10.{net}.{i}.2/24", "dev", ns_if)
            _ip("-n", ns, "link", "set", ns_if, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "route", "add", "default", "via", gateway)
        yield f"10.{net}.0.1", names
    finally:
        for ns in names:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        for host_if in hosts:  # gone with its namespace's peer; this is in case it was not
            subprocess.run(["ip", "link", "del", host_if], capture_output=True, timeout=30)


def test_workers_in_their_own_network_namespaces(tmp_path: Path) -> None:
    with namespaces(2) as (addr, names):
        redis = start_redis(tmp_path / "redis", bind=addr)
        try:
            with counting_site(tmp_path / "site", 120, delay_ms=10, bind=addr) as site:
                job = new_job()
                seed(redis.url, job, site.start_url, "--per-host", "3")
                argv = ["--frontier", redis.url, "--job", job, "--concurrency", "6"]
                workers = [
                    start_worker(tmp_path / f"w{i}", argv, prefix=["ip", "netns", "exec", ns])
                    for i, ns in enumerate(names)
                ]
                try:
                    codes = wait_all(workers, 120)
                finally:
                    stop_all(workers)
                assert codes == [0, 0], [w.log() for w in workers]
                merged = tmp_path / "merged"
                got = crawler_cmd("merge", str(merged), *(str(w.out) for w in workers))
                assert got.returncode == 0, got.stderr
                assert "duplicate" not in got.stdout
                check_merged(merged, site.truth)
                assert max(site.concurrency()["peak"].values()) <= 3
                # the job is finished, and both workers (each from its own namespace) took part
                status = crawler_cmd("status", "--frontier", redis.url, "--job", job, "--json")
                assert status.returncode == 0, status.stderr
                data = json.loads(status.stdout)
                assert data["finished"] is True
                assert len(data["workers"]) == 2, data["workers"]
        finally:
            redis.stop()
