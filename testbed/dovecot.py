"""Launch a private Dovecot 2.3 IMAP server (plain + STARTTLS, implicit TLS) for tests and demos.

Everything lives in one work directory: a self-contained config (no /etc/dovecot include), a
passwd-file of users, a throw-away CA and server certificate made with the ``openssl`` CLI, the
runtime and state directories, the log and one Maildir (``LAYOUT=fs``, "/" separator) per user.
Dovecot runs in the foreground as our child (``dovecot -c CONFIG -F``) and is stopped by PID.

Dovecot refuses to read mail as root: when we are root, mail is owned by the unprivileged
system user ``fetchlab-mail`` (created with ``useradd --system`` if missing), so the work
directory must be reachable (o+x on every parent) by that user; when we are not root, Dovecot
runs entirely as the current user.
"""

from __future__ import annotations

import os
import pwd
import re
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType, TracebackType

from foundation.errors import TestbedError, UsageError
from testbed._proc import LOOPBACK, ManagedProcess, free_port, require_binary, start_process

__all__ = ["MAIL_USER", "DovecotServer", "start_dovecot"]

MAIL_USER = "fetchlab-mail"
_NAME_OK = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_START_TIMEOUT = 20.0


@dataclass(frozen=True, slots=True)
class _Account:
    uid: int
    gid: int
    name: str


@dataclass(frozen=True)
class DovecotServer:
    """A running Dovecot; ``port`` speaks plain IMAP (+ STARTTLS), ``tls_port`` implicit TLS."""

    workdir: Path
    port: int
    tls_port: int
    ca_cert: Path
    process: ManagedProcess = field(repr=False)
    _users: dict[str, str] = field(repr=False)
    _account: _Account = field(repr=False)
    host: str = LOOPBACK

    @property
    def users(self) -> Mapping[str, str]:
        """user -> password (read-only view; ``add_user`` adds one)."""
        return MappingProxyType(self._users)

    @property
    def log_path(self) -> Path:
        return self.workdir / "dovecot.log"

    def maildir(self, user: str) -> Path:
        """The user's Maildir root (INBOX's cur/new/tmp; other folders are subdirectories)."""
        return self.workdir / "home" / user / "Maildir"

    def add_user(self, user: str, password: str) -> None:
        """Add an account while the server runs (Dovecot re-reads the passwd-file on change)."""
        _check_credentials({user: password})
        if user in self._users:
            raise UsageError(f"user {user!r} already exists")
        _write_passwd(self.workdir, {user: password})
        self._users[user] = password

    def alive(self) -> bool:
        return self.process.alive()

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text("utf-8", "replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the master and its children (one process group), by PID."""
        self.process.stop()

    def __enter__(self) -> DovecotServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _check_credentials(users: Mapping[str, str]) -> None:
    for user, password in users.items():
        if not _NAME_OK.match(user):
            raise UsageError(f"user name {user!r}: use letters, digits, '.', '_', '-'")
        if not password or any(c in password for c in ":\r\n\0"):
            raise UsageError(f"password of {user!r} must be non-empty without ':' or newlines")


def _write_passwd(workdir: Path, users: Mapping[str, str]) -> None:
    # One passwd-file per user: Dovecot re-reads a changed passwd-file at most once a second, but
    # opens a file it has never seen at once, so an account added mid-run logs in immediately.
    folder = workdir / "users.d"
    folder.mkdir(exist_ok=True)
    folder.chmod(0o755)  # the auth process runs as an unprivileged user
    for user, password in users.items():
        tmp = folder / f".{user}.tmp"  # replaced atomically: never read half-written
        tmp.write_text(f"{user}:{{PLAIN}}{password}::::::\n", "utf-8")
        tmp.chmod(0o644)
        tmp.replace(folder / user)


def _mail_account() -> _Account:
    if os.geteuid() != 0:
        me = pwd.getpwuid(os.geteuid())
        return _Account(uid=me.pw_uid, gid=me.pw_gid, name=me.pw_name)
    try:
        entry = pwd.getpwnam(MAIL_USER)
    except KeyError:
        useradd = require_binary("useradd", "passwd")
        done = subprocess.run(
            [
                useradd,
                "--system",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                MAIL_USER,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode not in (0, 9):  # 9: created meanwhile by a parallel run
            raise TestbedError(
                f"cannot create the system user {MAIL_USER} for Dovecot's mail processes: "
                f"{done.stderr.strip()}"
            ) from None
        entry = pwd.getpwnam(MAIL_USER)
    return _Account(uid=entry.pw_uid, gid=entry.pw_gid, name=entry.pw_name)


def _check_reachable(workdir: Path, account: _Account) -> None:
    if account.uid == os.geteuid():
        return
    for parent in [workdir, *workdir.parents]:
        st = parent.stat()
        if not st.st_mode & 0o001 and st.st_uid != account.uid:
            raise TestbedError(
                f"{parent} is not reachable by the mail user {account.name} (no o+x): put the "
                "Dovecot work directory under a world-traversable one, e.g. "
                "tempfile.mkdtemp(prefix='fetchlab-dovecot-') in /tmp"
            )


def _make_certs(tls: Path) -> Path:
    """A throw-away CA and a server certificate for 127.0.0.1 / localhost signed by it."""
    openssl = require_binary("openssl", "openssl")
    tls.mkdir(exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    (tls / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid\n",
        "ascii",
    )
    steps = [
        [openssl, "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "30",
         "-subj", "/CN=fetchlab test-bed CA",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        [openssl, "req", *ec, "-keyout", "server.key", "-out", "server.csr",
         "-subj", "/CN=localhost"],
        [openssl, "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "server.pem", "-days", "30", "-extfile", "server.ext"],
    ]  # fmt: skip
    for argv in steps:
        done = subprocess.run(argv, cwd=tls, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise TestbedError(f"openssl failed ({' '.join(argv[1:3])}): {done.stderr.strip()}")
    return tls / "ca.pem"


def _oauth2_parts(workdir: Path, introspection_url: str | None) -> tuple[str, str, str]:
    """(extra mechanisms, passwd-file restriction, oauth2 passdb block) for the opt-in."""
    if introspection_url is None:
        return "", "", ""
    # Dovecot 2.3 keys (no "oauth2_" prefix: that is 2.4); "post" sends token=... as a form,
    # the RFC 7662 way; without a tokeninfo_url the introspection answer alone decides
    ext = workdir / "dovecot-oauth2.conf.ext"
    ext.write_text(
        f"introspection_mode = post\n"
        f"introspection_url = {introspection_url}\n"
        "username_attribute = username\n"
        "active_attribute = active\n"
        "active_value = true\n"
        "timeout_msecs = 10000\n",
        "utf-8",
    )
    ext.chmod(0o644)  # read by the unprivileged auth process
    passdb = f"""passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {ext}
}}
"""
    # the passwd-file passdb stays for LOGIN / PLAIN only: a bearer token is never compared
    # with a password, so a login by token proves the introspection server accepted it
    return " xoauth2 oauthbearer", "  mechanisms = plain login\n", passdb


def _config(
    workdir: Path,
    port: int,
    tls_port: int,
    account: _Account,
    oauth2_introspection_url: str | None = None,
    compress: bool = True,
    quota_kb: int | None = None,
    max_user_connections: int = 1000,
) -> str:
    mechs, passwd_mechs, oauth2_passdb = _oauth2_parts(workdir, oauth2_introspection_url)
    # the zlib plugins exist only to offer COMPRESS=DEFLATE; loaded, they cost Dovecot's imap
    # process CPU even for a client that never compresses (FACTS.md: mbsync 13.7 s without them,
    # 33-36 s with them), so a benchmark runs the stock config unless it asks for COMPRESS
    zlib, imap_zlib = ("zlib", " imap_zlib") if compress else ("", "")
    quota = ""
    if quota_kb is not None:  # every user gets this much: APPEND past it says NO [OVERQUOTA]
        zlib += " quota"
        quota = (
            f"plugin {{\n  quota = maildir:User quota\n  quota_rule = *:storage={quota_kb}K\n}}\n"
        )
    root = os.geteuid() == 0
    # as root: login processes chroot and run as dovenull (the Debian defaults); otherwise every
    # service runs as us, unchrooted
    services = (
        ""
        if root
        else f"default_internal_user = {account.name}\ndefault_login_user = {account.name}\n"
    )
    login_chroot = anvil_chroot = "" if root else "  chroot =\n"
    return f"""# written by testbed.dovecot: self-contained, nothing from /etc/dovecot
protocols = imap
listen = {LOOPBACK}
base_dir = {workdir}/run
state_dir = {workdir}/state
instance_name = fetchlab-dovecot-{port}
log_path = {workdir}/dovecot.log
{services}
ssl = yes
ssl_cert = <{workdir}/tls/server.pem
ssl_key = <{workdir}/tls/server.key
# LOGIN without TLS is fine on loopback; STARTTLS and IMAPS stay available
disable_plaintext_auth = no
auth_mechanisms = plain login{mechs}
# tests try wrong passwords on purpose: no 2 s failure delay, no growing per-IP penalty
auth_failure_delay = 0

passdb {{
  driver = passwd-file
{passwd_mechs}  args = scheme=PLAIN {workdir}/users.d/%u
}}
{oauth2_passdb}userdb {{
  driver = static
  args = uid={account.uid} gid={account.gid} home={workdir}/home/%u
}}
first_valid_uid = {account.uid}
first_valid_gid = {account.gid}

# fs layout: "/" is the separator, so folder names may contain "."
mail_location = maildir:~/Maildir:LAYOUT=fs
namespace inbox {{
  inbox = yes
  separator = /
}}
mail_fsync = never
# keep CRLF on disk: the Maildir files are exactly what FETCH BODY[] serves
mail_save_crlf = yes
mail_plugins = {zlib}
{quota}
protocol imap {{
  mail_plugins = $mail_plugins{imap_zlib}
  mail_max_userip_connections = {max_user_connections}
}}
service imap-login {{
  inet_listener imap {{
    address = {LOOPBACK}
    port = {port}
  }}
  inet_listener imaps {{
    address = {LOOPBACK}
    port = {tls_port}
    ssl = yes
  }}
  # one long-lived login process serves many connections (the default forks one each)
  service_count = 0
  client_limit = 1000
  process_min_avail = 1
{login_chroot}}}
service imap {{
  process_limit = 1000
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
{anvil_chroot}}}
"""


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def _wait_ready(proc: ManagedProcess, ports: tuple[int, ...], log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    pending = list(ports)
    while pending:
        if not proc.alive():
            tail = log.read_text("utf-8", "replace")[-2000:] if log.exists() else ""
            busy = " (a port is busy)" if "in use" in tail else ""
            raise TestbedError(f"dovecot exited at start{busy}:\n{proc.log_tail()}\n{tail}")
        try:
            with socket.create_connection((LOOPBACK, pending[0]), timeout=1.0):
                pending.pop(0)
        except OSError:
            if time.monotonic() > deadline:
                raise TestbedError(
                    f"dovecot does not listen on {LOOPBACK}:{pending[0]} "
                    f"after {_START_TIMEOUT:.0f} s"
                ) from None
            time.sleep(0.02)


def start_dovecot(
    workdir: Path,
    *,
    users: Mapping[str, str] | None = None,
    port: int | None = None,
    tls_port: int | None = None,
    oauth2_introspection_url: str | None = None,
    compress: bool = True,
    quota_kb: int | None = None,
    max_user_connections: int = 1000,
) -> DovecotServer:
    """Write config, users and certificates into ``workdir`` and start Dovecot on loopback.

    ``users`` maps user -> password (default ``{"alice": "secret"}``); free ports are picked
    unless given. Raises TestbedError when dovecot is missing, a port is busy or it fails.

    ``oauth2_introspection_url`` (opt-in): also offer AUTHENTICATE XOAUTH2 / OAUTHBEARER, each
    bearer token checked by POSTing it to that RFC 7662 introspection endpoint (see
    testbed/_oauth.py); the answer must say ``active: true`` and name the user logging in.
    LOGIN / PLAIN keep using the passwd-file users.

    ``compress`` (default on, what the tests need): load the zlib plugins that offer
    COMPRESS=DEFLATE. Off is Dovecot's stock configuration, the one benchmarks compare on.

    Server limits (opt-in, for restore tests): ``quota_kb`` gives every user a storage quota (an
    APPEND past it is answered ``NO [OVERQUOTA]``); ``max_user_connections`` caps one user's
    simultaneous IMAP connections from one IP, as providers do (Gmail: 15).
    """
    url = oauth2_introspection_url
    if url is not None and (
        not url.startswith(("http://", "https://")) or any(c.isspace() for c in url)
    ):
        raise UsageError(
            f"oauth2_introspection_url must be an http(s) URL, not {oauth2_introspection_url!r}"
        )
    accounts = dict(users if users is not None else {"alice": "secret"})
    _check_credentials(accounts)
    dovecot = require_binary("dovecot", "dovecot-imapd")
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    account = _mail_account()
    workdir.chmod(0o755)
    _check_reachable(workdir, account)
    port = port or free_port()
    tls_port = tls_port or free_port()
    for wanted in (port, tls_port):
        if not _port_free(wanted):
            raise TestbedError(f"port {LOOPBACK}:{wanted} is busy: choose another one")
    for sub in ("run", "state", "home"):
        (workdir / sub).mkdir(exist_ok=True)
    os.chown(workdir / "home", account.uid, account.gid)
    ca_cert = _make_certs(workdir / "tls")
    _write_passwd(workdir, accounts)
    conf = workdir / "dovecot.conf"
    config = _config(
        workdir,
        port,
        tls_port,
        account,
        oauth2_introspection_url,
        compress,
        quota_kb,
        max_user_connections,
    )
    conf.write_text(config, "utf-8")
    proc = start_process(
        "dovecot", [dovecot, "-c", str(conf), "-F"], log_path=workdir / "dovecot.out"
    )
    try:
        _wait_ready(proc, (port, tls_port), workdir / "dovecot.log")
    except BaseException:
        proc.stop()
        raise
    return DovecotServer(
        workdir=workdir,
        port=port,
        tls_port=tls_port,
        ca_cert=ca_cert,
        process=proc,
        _users=accounts,
        _account=account,
    )
