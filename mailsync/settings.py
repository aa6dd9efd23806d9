"""mailsync's settings section (``[mail]`` in the TOML file). Frozen and validated once."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from modes.frozen import FrozenModel

__all__ = ["AccountSettings", "MailSettings"]

Mode = Literal["asyncio", "threads", "gevent", "processes", "sequential"]


class AccountSettings(FrozenModel):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._@-]+$")
    host: str = Field(min_length=1)
    port: int = Field(default=993, ge=1, le=65535)
    security: Literal["tls", "starttls", "plain"] = "tls"
    allow_plain: bool = False
    username: str = Field(min_length=1)
    password_env: str | None = None
    password_command: str | None = None
    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()
    connections: int = Field(default=4, ge=1, le=64)
    batch_messages: int = Field(default=200, ge=1, le=10_000)
    batch_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    ca_file: Path | None = None
    verify_tls: bool = True


class MailSettings(FrozenModel):
    out: Path = Path("mail-archive")
    mode: Mode = "asyncio"
    loop: Literal["uvloop", "asyncio"] = "uvloop"
    imap_client: Literal["native", "aioimaplib"] = "native"
    max_connections: int = Field(default=64, ge=1, le=10_000)
    accounts: tuple[AccountSettings, ...] = ()
