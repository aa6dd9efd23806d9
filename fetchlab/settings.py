"""Frozen, validated, layered settings: defaults < file < environment < command line.

Both tools read one TOML file (``--settings FILE`` or ``$FETCHLAB_SETTINGS``) with a ``[crawler]``
and a ``[mail]`` table. Environment variables override single keys with ``FETCHLAB_`` + the dotted
path, ``__`` between levels (``FETCHLAB_CRAWLER__CONCURRENCY=64``). Every problem is reported once,
naming the key and where its value came from (file, environment variable or command line).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from crawler.settings import CrawlerSettings
from foundation.errors import SettingsError
from mailsync.settings import MailSettings

__all__ = ["ENV_PREFIX", "SETTINGS_ENV", "AppSettings", "load_settings"]

ENV_PREFIX = "FETCHLAB_"
SETTINGS_ENV = "FETCHLAB_SETTINGS"


class _FileSource(PydanticBaseSettingsSource):
    """Feeds the already-parsed TOML file in at its place in the layering."""

    def __init__(self, settings_cls: type[BaseSettings], data: Mapping[str, Any]) -> None:
        super().__init__(settings_cls)
        self._data = dict(data)

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


class AppSettings(BaseSettings):
    """The whole settings tree of both tools."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        case_sensitive=False,
    )

    crawler: CrawlerSettings = CrawlerSettings()
    mail: MailSettings = MailSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Highest priority first: command line (init kwargs), environment, then the file.
        return init_settings, env_settings, _FileSource(settings_cls, _CURRENT_FILE_DATA)


_CURRENT_FILE_DATA: dict[str, Any] = {}


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SettingsError([f"{path}: settings file not found"]) from None
    except OSError as exc:
        raise SettingsError([f"{path}: cannot read settings file: {exc.strerror}"]) from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise SettingsError([f"{path}: not UTF-8 text ({exc.reason})"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError([f"{path}: invalid TOML: {exc}"]) from None


def _has_path(data: Mapping[str, Any], loc: tuple[str | int, ...]) -> bool:
    node: Any = data
    for part in loc:
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return False
    return True


def _env_name(loc: tuple[str | int, ...], env: Mapping[str, str]) -> str | None:
    for depth in range(len(loc), 0, -1):
        parts = loc[:depth]
        if any(isinstance(p, int) for p in parts):
            continue
        name = ENV_PREFIX + "__".join(str(p) for p in parts).upper()
        if name in env:
            return name
    return None


def _key(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _describe(
    exc: ValidationError,
    path: Path | None,
    file_data: Mapping[str, Any],
    cli: Mapping[str, Any],
    env: Mapping[str, str],
) -> list[str]:
    problems = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if isinstance(p, str | int))
        key = _key(loc) or "(top level)"
        if _has_path(cli, loc):
            where = "command line"
        elif (name := _env_name(loc, env)) is not None:
            where = f"environment variable {name}"
        elif path is not None:
            where = str(path)
        else:
            where = "defaults"
        value = err.get("input")
        shown = "" if isinstance(value, dict | list) or value is None else f" (got {value!r})"
        problems.append(f"{where}: {key}: {err['msg']}{shown}")
    return problems


def load_settings(
    path: Path | str | None = None,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> AppSettings:
    """Load, validate and freeze the settings.

    ``path`` falls back to ``$FETCHLAB_SETTINGS``; no file means defaults. ``overrides`` holds the
    command line's values as a nested dict (``{"crawler": {"concurrency": 10}}``); ``None`` values
    in it mean "not given" and are dropped. Raises :class:`SettingsError` listing every problem.
    """
    global _CURRENT_FILE_DATA
    environ = os.environ if env is None else env
    if path is None and environ.get(SETTINGS_ENV):
        path = environ[SETTINGS_ENV]
    file_path = Path(path) if path is not None else None
    file_data = _read_toml(file_path) if file_path is not None else {}
    cli = _drop_none(overrides or {})
    _CURRENT_FILE_DATA = file_data
    try:
        if env is None:
            return AppSettings(**cli)
        saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(env)
        try:
            return AppSettings(**cli)
        finally:
            os.environ.clear()
            os.environ.update(saved)
    except ValidationError as exc:
        raise SettingsError(_describe(exc, file_path, file_data, cli, environ)) from None
    finally:
        _CURRENT_FILE_DATA = {}


def _drop_none(data: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            inner = _drop_none(value)
            if inner:
                out[key] = inner
        elif value is not None:
            out[key] = value
    return out
