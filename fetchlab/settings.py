"""Frozen, validated, layered settings: defaults < file < environment < command line.

Both tools read one TOML file (``--settings FILE`` or ``$FETCHLAB_SETTINGS``) with a ``[crawler]``
and a ``[mail]`` table. Environment variables override single keys with ``FETCHLAB_`` + the dotted
path, ``__`` between levels (``FETCHLAB_CRAWLER__CONCURRENCY=64``). Every problem is reported once,
naming the key and where its value came from (file, environment variable or command line).
"""

from __future__ import annotations

import difflib
import os
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from crawler.settings import CrawlerSettings
from foundation.errors import SettingsError
from mailsync.settings import MailSettings

__all__ = ["ENV_PREFIX", "SECTIONS", "SETTINGS_ENV", "AppSettings", "load_settings"]

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

SECTIONS = ("crawler", "mail")


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The settings model inside an annotation (``X``, ``X | None``, ``tuple[X, ...]``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _is_path(annotation: Any) -> bool:
    if annotation is Path:
        return True
    return any(_is_path(arg) for arg in typing.get_args(annotation))


def _resolve_paths(model: type[BaseModel], data: Any, base: Path) -> Any:
    """``data`` with every relative path of a ``Path`` field made relative to ``base`` (the
    settings file's folder), recursively through nested sections and lists of them."""
    if isinstance(data, list):
        return [_resolve_paths(model, item, base) for item in data]
    if not isinstance(data, Mapping):
        return data
    out = dict(data)
    for name, field in model.model_fields.items():
        if name not in out:
            continue
        value = out[name]
        if _is_path(field.annotation) and isinstance(value, str) and value:
            path = Path(value).expanduser()
            out[name] = str(path if path.is_absolute() else base / path)
        elif (inner := _model_in(field.annotation)) is not None:
            out[name] = _resolve_paths(inner, value, base)
    return out


def _model_at(loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The settings model that holds the key at ``loc`` (for spelling suggestions)."""
    model: type[BaseModel] = AppSettings
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        inner = _model_in(field.annotation) if field is not None else None
        if inner is None:
            return None
        model = inner
    return model


def _suggest(loc: tuple[str | int, ...]) -> str:
    if not loc or not isinstance(loc[-1], str):
        return ""
    model = _model_at(loc)
    if model is None:
        return ""
    close = difflib.get_close_matches(loc[-1].lower(), list(model.model_fields), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


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
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key" + _suggest(loc)
        shown = ""
        quiet = err["type"] in {"extra_forbidden", "value_error"}
        if not quiet and value is not None and not isinstance(value, dict | list | tuple):
            shown = f" (got {value!r})"
        problems.append(f"{where}: {key}: {msg}{shown}")
    return problems


def load_settings(
    path: Path | str | None = None,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    tool: str | None = None,
) -> AppSettings:
    """Load, validate and freeze the settings.

    ``path`` falls back to ``$FETCHLAB_SETTINGS``; no file means defaults. ``overrides`` holds the
    command line's values as a nested dict (``{"crawler": {"concurrency": 10}}``); ``None`` values
    in it mean "not given" and are dropped. A relative path in the file (``out``) is relative to
    the file's folder. ``tool`` (``"crawler"`` or ``"mail"``) validates only that tool's section:
    a mistake in the other tool's section does not stop this one (the other section is then left
    at its defaults). Raises :class:`SettingsError` listing every problem.
    """
    global _CURRENT_FILE_DATA
    environ: Mapping[str, str] = os.environ if env is None else env
    if path is None and environ.get(SETTINGS_ENV):
        path = environ[SETTINGS_ENV]
    file_path = Path(path) if path is not None else None
    file_data = _read_toml(file_path) if file_path is not None else {}
    if file_path is not None:
        file_data = _resolve_paths(AppSettings, file_data, file_path.parent)
    cli = _drop_none(overrides or {})
    if tool is not None:
        if tool not in SECTIONS:
            raise ValueError(f"unknown tool section {tool!r}")
        others = [ENV_PREFIX + s.upper() for s in SECTIONS if s != tool]
        file_data = {k: v for k, v in file_data.items() if k not in SECTIONS or k == tool}
        cli = {k: v for k, v in cli.items() if k not in SECTIONS or k == tool}
        environ = {
            k: v
            for k, v in environ.items()
            if not any(k.upper() == o or k.upper().startswith(o + "__") for o in others)
        }
        env = environ
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
