"""Frozen, validated, layered settings: defaults < file < environment < command line.

Both tools read one TOML file (``--settings FILE`` or ``$FETCHLAB_SETTINGS``) with a ``[crawler]``
and a ``[mail]`` table. Environment variables override single keys with ``FETCHLAB_`` + the dotted
path, ``__`` between levels (``FETCHLAB_CRAWLER__CONCURRENCY=64``). Every problem is reported once,
naming the key and where its value came from (file, environment variable or command line).
"""

from __future__ import annotations

import json
import os
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from crawler.settings import CrawlerSettings
from foundation.errors import SettingsError
from foundation.frozen import FrozenModel, Invalid, Problem, build, field_type, inner_model
from mailsync.settings import MailSettings

__all__ = ["ENV_PREFIX", "SECTIONS", "SETTINGS_ENV", "AppSettings", "load_settings"]

ENV_PREFIX = "FETCHLAB_"
SETTINGS_ENV = "FETCHLAB_SETTINGS"


class AppSettings(FrozenModel, frozen=True, kw_only=True):
    """The whole settings tree of both tools."""

    crawler: CrawlerSettings = CrawlerSettings()
    mail: MailSettings = MailSettings()


SECTIONS = ("crawler", "mail")


def _is_path(annotation: Any) -> bool:
    if annotation is Path:
        return True
    return any(_is_path(arg) for arg in typing.get_args(annotation))


def _resolve_paths(model: type[FrozenModel], data: Any, base: Path) -> Any:
    """``data`` with every relative path of a ``Path`` field made relative to ``base`` (the
    settings file's folder), recursively through nested sections and lists of them."""
    if isinstance(data, list):
        return [_resolve_paths(model, item, base) for item in data]
    if not isinstance(data, Mapping):
        return data
    out = dict(data)
    for name, value in data.items():
        try:
            annotation = field_type(model, name)
        except KeyError:
            continue  # an unknown key: validation names it
        if _is_path(annotation) and isinstance(value, str) and value:
            path = Path(value).expanduser()
            out[name] = str(path if path.is_absolute() else base / path)
        elif (inner := inner_model(annotation)) is not None:
            out[name] = _resolve_paths(inner, value, base)
    return out


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


def _env_name(loc: tuple[str | int, ...], names: Mapping[tuple[str, ...], str]) -> str | None:
    for depth in range(len(loc), 0, -1):
        parts = loc[:depth]
        if all(isinstance(p, str) for p in parts) and parts in names:
            return names[typing.cast(tuple[str, ...], parts)]
    return None


def _key(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _describe(
    problems: list[Problem],
    path: Path | None,
    cli: Mapping[str, Any],
    env_names: Mapping[tuple[str, ...], str],
) -> list[str]:
    out = []
    for problem in problems:
        loc = problem.loc
        key = _key(loc) or "(top level)"
        if problem.source is not None:
            where = problem.source
        elif _has_path(cli, loc):
            where = "command line"
        elif (name := _env_name(loc, env_names)) is not None:
            where = f"environment variable {name}"
        elif path is not None:
            where = str(path)
        else:
            where = "defaults"
        shown = ""
        if problem.show_value and not isinstance(problem.value, dict | list | tuple):
            shown = f" (got {problem.value!r})"
        out.append(f"{where}: {key}: {problem.message}{shown}")
    return out


def _wants_json(annotation: Any) -> bool:
    """A table or list: the environment spells it as JSON (as pydantic-settings read it before)."""
    if inner_model(annotation) is not None:
        return True
    origin = typing.get_origin(annotation)
    if origin in (tuple, list, dict):
        return True
    return any(_wants_json(arg) for arg in typing.get_args(annotation) if arg is not type(None))


def _from_env(
    env: Mapping[str, str], sections: tuple[str, ...]
) -> tuple[dict[str, Any], dict[tuple[str, ...], str], list[Problem]]:
    """``FETCHLAB_<SECTION>__<KEY>[__<KEY>...]`` variables (any case) as nested data, with the
    variable that set each key and the values that are not the JSON a table or list needs."""
    data: dict[str, Any] = {}
    names: dict[tuple[str, ...], str] = {}
    problems: list[Problem] = []
    for name, raw in sorted(env.items()):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX):
            continue
        loc = tuple(upper[len(ENV_PREFIX) :].lower().split("__"))
        if loc[0] not in sections or "" in loc:
            continue  # FETCHLAB_SETTINGS and other variables of ours
        value: Any = raw
        if _wants_json(_annotation_at(loc)):
            try:
                value = json.loads(raw)
            except ValueError as exc:
                where = f"environment variable {name}"
                problems.append(Problem(loc, f"not JSON ({exc})", raw, True, source=where))
                continue
        names[loc] = name
        node = data
        for part in loc[:-1]:
            if not isinstance(node.setdefault(part, {}), dict):
                break  # an outer variable set this table to a non-table: validation names it
            node = node[part]
        else:
            node[loc[-1]] = _merge(node.get(loc[-1]), value)
    return data, names, problems


def _annotation_at(loc: tuple[str, ...]) -> Any:
    """The declared type of the key at ``loc`` (None for an unknown key: validation names it)."""
    model: type[FrozenModel] | None = AppSettings
    annotation: Any = None
    for part in loc:
        if model is None:
            return None
        try:
            annotation = field_type(model, part)
        except KeyError:
            return None
        model = inner_model(annotation)
    return annotation


def _merge(under: Any, over: Any) -> Any:
    """``over`` laid on ``under``: tables merge key by key, anything else is replaced."""
    if isinstance(under, Mapping) and isinstance(over, Mapping):
        out = dict(under)
        for key, value in over.items():
            out[key] = _merge(out.get(key), value)
        return out
    return over


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
    environ: Mapping[str, str] = os.environ if env is None else env
    if path is None and environ.get(SETTINGS_ENV):
        path = environ[SETTINGS_ENV]
    file_path = Path(path) if path is not None else None
    file_data = _read_toml(file_path) if file_path is not None else {}
    if file_path is not None:
        file_data = _resolve_paths(AppSettings, file_data, file_path.parent)
    cli = _drop_none(overrides or {})
    sections: tuple[str, ...] = SECTIONS
    if tool is not None:
        if tool not in SECTIONS:
            raise ValueError(f"unknown tool section {tool!r}")
        sections = (tool,)
        file_data = {k: v for k, v in file_data.items() if k not in SECTIONS or k == tool}
        cli = {k: v for k, v in cli.items() if k not in SECTIONS or k == tool}
    env_data, env_names, problems = _from_env(environ, sections)
    data = _merge(_merge(file_data, env_data), cli)
    try:
        settings = build(AppSettings, data, found=problems)
    except Invalid as exc:
        raise SettingsError(_describe(exc.problems, file_path, cli, env_names)) from None
    return settings


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
