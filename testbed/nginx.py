"""nginx as the test-bed web server: one plain port plus one port per latency value.

The configuration is written by the project into a work directory (pid file, error log, temp
paths), ``daemon off`` so the process we start is the master and ``stop()`` by PID ends it. A
latency port runs ``echo_sleep`` (Debian's ``libnginx-mod-http-echo``) then ``echo_exec``s into a
named location that serves the same files as the plain port, so bytes, status and content type
are identical and only the delay differs; the sleep is a timer, so thousands of sleeping
connections cost nginx almost nothing.

Both ports map ``/`` to ``/index.html`` and serve files only (``try_files $file =404``): a
directory is a 404 rather than a redirect, the same rule the aiohttp fallback follows.
"""

from __future__ import annotations

import os
import resource
import socket
import time
from collections.abc import Mapping
from pathlib import Path

from foundation.errors import PortInUseError, TestbedError
from testbed._proc import LOOPBACK, ManagedProcess, require_binary, start_process

__all__ = [
    "DEFAULT_TYPE",
    "ECHO_MODULE",
    "MIME_TYPES",
    "NOT_FOUND_BODY",
    "check_port_free",
    "find_nginx",
    "nginx_available",
    "render_nginx_conf",
    "start_nginx",
]

ECHO_MODULE = Path("/usr/lib/nginx/modules/ngx_http_echo_module.so")

# one table for both servers, so nginx and the aiohttp fallback send the same Content-Type
MIME_TYPES: Mapping[str, str] = {
    "html": "text/html",
    "htm": "text/html",
    "txt": "text/plain",
    "xml": "text/xml",
    "pdf": "application/pdf",
    "png": "image/png",
    "jpg": "image/jpeg",
    "gif": "image/gif",
    "css": "text/css",
    "js": "application/javascript",
    "json": "application/json",
}
DEFAULT_TYPE = "application/octet-stream"

# nginx's built-in 404 page with `server_tokens off` (the aiohttp fallback sends the same bytes)
NOT_FOUND_BODY = (
    b"<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n"
    b"<center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


def find_nginx(nginx_bin: str | None = None) -> str:
    """The nginx binary (``nginx_bin`` when given), or a TestbedError saying how to install it."""
    if nginx_bin is not None:
        if not os.access(nginx_bin, os.X_OK):
            raise TestbedError(
                f"nginx is not installed at {nginx_bin}: run `apt-get install nginx-light "
                "libnginx-mod-http-echo`, or use the aiohttp server (--server aiohttp)"
            )
        return nginx_bin
    return require_binary("nginx", "nginx-light libnginx-mod-http-echo")


def nginx_available(nginx_bin: str | None = None, *, need_echo: bool = True) -> bool:
    """True when nginx (and, for latency ports, its echo module) is installed."""
    try:
        find_nginx(nginx_bin)
    except TestbedError:
        return False
    return ECHO_MODULE.exists() or not need_echo


def check_port_free(port: int) -> None:
    """Raise a TestbedError (with the fix) when something already listens on ``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError as exc:
            raise PortInUseError(
                f"port {port} on {LOOPBACK} is in use ({exc.strerror}): stop what listens there "
                f"(`ss -ltnp 'sport = :{port}'` shows it) or choose another port (--port 0 "
                "picks a free one)"
            ) from exc


def _nofile_limit() -> int:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        return 65536
    return int(hard)


def render_nginx_conf(
    docroot: Path,
    *,
    port: int,
    latency_ports: Mapping[int, int],
    workdir: Path,
    workers: int = 2,
) -> str:
    """The nginx.conf text for ``docroot`` on ``port`` plus ``{latency_ms: port}``."""
    nofile = _nofile_limit()
    # each connection needs a descriptor; the file cache must stay well under the limit
    # (open_file_cache max above it gives EMFILE and 0 req/s, see docs/testbed.md)
    connections = max(1024, min(16384, nofile // 2))
    cache_max = max(64, min(10000, nofile // 4))
    tmp = workdir / "tmp"
    lines = [
        "# written by testbed.nginx; regenerated at every start",
        "daemon off;",
        "master_process on;",
        f"worker_processes {workers};",
        f"worker_rlimit_nofile {nofile};",
        f"pid {workdir / 'nginx.pid'};",
        f"error_log {workdir / 'error.log'} warn;",
        f"load_module {ECHO_MODULE};" if latency_ports else "",
        # as root, workers would drop to `nobody` and could not read a 0700 temp directory
        "user root;" if os.geteuid() == 0 else "",
        f"events {{ worker_connections {connections}; multi_accept on; }}",
        "http {",
        "  types {",
        *(f"    {mime} {ext};" for ext, mime in MIME_TYPES.items()),
        "  }",
        f"  default_type {DEFAULT_TYPE};",
        "  access_log off;",
        "  server_tokens off;",
        "  sendfile on;",
        "  tcp_nopush on;",
        "  tcp_nodelay on;",
        "  keepalive_requests 1000000;",
        "  keepalive_timeout 75s;",
        f"  open_file_cache max={cache_max} inactive=60s;",
        "  open_file_cache_valid 60s;",
        f"  client_body_temp_path {tmp / 'body'};",
        f"  proxy_temp_path {tmp / 'proxy'};",
        f"  fastcgi_temp_path {tmp / 'fastcgi'};",
        f"  uwsgi_temp_path {tmp / 'uwsgi'};",
        f"  scgi_temp_path {tmp / 'scgi'};",
        "  map $uri $site_file { / /index.html; default $uri; }",
        "  server {",
        f"    listen {LOOPBACK}:{port} backlog=4096;",
        f"    root {docroot};",
        "    location / { try_files $site_file =404; }",
        "  }",
    ]
    for ms, latency_port in sorted(latency_ports.items()):
        if ms <= 0:
            raise TestbedError(f"a latency port needs a delay above 0 ms (got {ms})")
        lines += ["  server {", f"    listen {LOOPBACK}:{latency_port} backlog=4096;"]
        lines.append(f"    root {docroot};")
        # echo_sleep takes seconds with 3 decimals: exact for whole milliseconds
        lines.append(f"    location / {{ echo_sleep {ms / 1000:.3f}; echo_exec @site; }}")
        lines.append("    location @site { try_files $site_file =404; }")
        lines.append("  }")
    lines.append("}")
    return "\n".join(line for line in lines if line) + "\n"


def start_nginx(
    docroot: Path,
    *,
    port: int,
    latency_ports: Mapping[int, int],
    workdir: Path,
    nginx_bin: str | None = None,
    timeout: float = 15.0,
) -> ManagedProcess:
    """Start nginx serving ``docroot``; return once every port answers (or raise TestbedError)."""
    binary = find_nginx(nginx_bin)
    if latency_ports and not ECHO_MODULE.exists():
        raise TestbedError(
            f"the nginx echo module ({ECHO_MODULE}) is missing: run `apt-get install "
            "libnginx-mod-http-echo` (latency ports need its echo_sleep)"
        )
    ports = [port, *latency_ports.values()]
    for each in ports:
        check_port_free(each)
    workdir = Path(workdir).resolve()
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (workdir / "tmp" / sub).mkdir(parents=True, exist_ok=True)
    conf = workdir / "nginx.conf"
    conf.write_text(
        render_nginx_conf(
            Path(docroot).resolve(), port=port, latency_ports=latency_ports, workdir=workdir
        ),
        "utf-8",
    )
    pid_file = workdir / "nginx.pid"
    pid_file.unlink(missing_ok=True)
    (workdir / "error.log").unlink(missing_ok=True)
    proc = start_process(
        "nginx",
        [binary, "-p", str(workdir), "-c", str(conf), "-e", str(workdir / "error.log")],
        log_path=workdir / "nginx.out",
    )
    try:
        _wait_ready(proc, pid_file, ports, timeout)
    except BaseException:
        proc.stop()
        raise
    return proc


def _wait_ready(proc: ManagedProcess, pid_file: Path, ports: list[int], timeout: float) -> None:
    """nginx writes its pid file only after binding every port; then each port must accept."""
    deadline = time.monotonic() + timeout
    pending = list(ports)
    while time.monotonic() < deadline:
        if not proc.alive():
            log = (proc.log_path.parent / "error.log") if proc.log_path else None
            tail = log.read_text("utf-8", "replace")[-2000:] if log and log.exists() else ""
            tail += proc.log_tail()
            error = PortInUseError if "Address already in use" in tail else TestbedError
            raise error(f"nginx exited with code {proc.popen.returncode}:\n{tail}")
        if pid_file.exists() and pid_file.read_text().strip() == str(proc.pid):
            while pending:
                try:
                    with socket.create_connection((LOOPBACK, pending[0]), timeout=1.0):
                        pending.pop(0)
                except OSError:
                    break
            if not pending:
                return
        time.sleep(0.02)
    raise TestbedError(f"nginx did not answer on ports {ports} within {timeout:.0f} s")
