"""Base class of every settings section: frozen, unknown keys rejected, every field converted and
checked when an instance is made (kept apart from fetchlab.settings to avoid an import cycle).

Built on msgspec, not pydantic: measured 2026-12-07 on the project's machines, importing
pydantic and pydantic-settings with the settings models cost ~20 MB of RSS in every process that
reads settings (the mail backup peaked at 108 MB against an 80 MB target; the crawler's
processes mode has four such processes) and ~0.1 s of CPU at every start; msgspec costs ~2.5 MB
(docs/benchmarks/mail.md). msgspec converts and checks one value and stops at its first error,
so :meth:`FrozenModel.__post_init__` converts each field on its own and reports every problem of
the instance at once, as a settings file's user wants them.

A section declares its fields with types (``Annotated[int, Meta(ge=1)]`` for bounds) and may add
checks across fields in :meth:`FrozenModel.problems`. Values are converted as a settings file or
environment variable spells them: ``"64"`` for an int, a list for a tuple, a string for a
``Path`` or an enum.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import msgspec
from msgspec import structs

__all__ = [
    "FrozenModel",
    "Invalid",
    "Problem",
    "build",
    "field_defaults",
    "field_names",
    "field_type",
    "inner_model",
    "replace",
    "to_data",
]

M = TypeVar("M", bound="FrozenModel")


@dataclasses.dataclass(frozen=True)
class Problem:
    """One bad value: where it is (keys and list indexes from the section), what is wrong, and the
    value itself when showing it helps (a number out of range, not a whole table)."""

    loc: tuple[str | int, ...]
    message: str
    value: object = None
    show_value: bool = False
    source: str | None = None  # where the value came from, when the problem's finder knows


class Invalid(ValueError):
    """An instance could not be made: every problem found, not only the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(_plain(p) for p in problems))


def _plain(p: Problem) -> str:
    key = ".".join(str(part) for part in p.loc)
    return f"{key}: {p.message}" if key else p.message


class FrozenModel(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Immutable, unknown keys rejected (a typo in a settings file is an error, not a no-op).

    Making an instance converts every field to its declared type and checks its bounds, then
    runs :meth:`problems`; any failure raises :class:`Invalid` with all of them.
    """

    def __post_init__(self) -> None:
        found: list[Problem] = []
        types = _types(type(self))
        values = {name: getattr(self, name) for name in types}
        for name, converted in _converted(types, values, (), found).items():
            if converted is not values[name]:
                structs.force_setattr(self, name, converted)
        if not found:
            found = [Problem(() if key is None else (key,), msg) for key, msg in self.problems()]
        if found:
            raise Invalid(found)

    def problems(self) -> Iterator[tuple[str | None, str]]:
        """Checks beyond one field's type and bounds, run once every field is valid: ``(key,
        message)`` pairs, key ``None`` for the section as a whole."""
        return iter(())


def _converted(
    types: Mapping[str, Any],
    values: Mapping[str, object],
    loc: tuple[str | int, ...],
    problems: list[Problem],
) -> dict[str, object]:
    """Each value converted to its key's declared type, one at a time (msgspec stops at a
    value's first error, the user wants them all); the bad ones go to ``problems`` instead."""
    out: dict[str, object] = {}
    for name, value in values.items():
        tp = types[name]
        try:
            out[name] = msgspec.convert(value, tp, strict=False, dec_hook=_decode)
        except msgspec.ValidationError as exc:
            problems.append(_problem((*loc, name), tp, value, exc))
    return out


@functools.cache
def _types(cls: type[FrozenModel]) -> dict[str, Any]:
    return {f.name: f.type for f in structs.fields(cls)}


def field_names(cls: type[FrozenModel]) -> tuple[str, ...]:
    """The section's keys, in declaration order."""
    return tuple(_types(cls))


def field_type(cls: type[FrozenModel], name: str) -> Any:
    """The declared type of key ``name`` (``Annotated`` bounds included)."""
    return _types(cls)[name]


def field_defaults(cls: type[FrozenModel]) -> dict[str, Any]:
    """Each key's default (keys without one are left out): what ``--help`` and the example
    settings file must show."""
    return {f.name: f.default for f in structs.fields(cls) if f.default is not msgspec.NODEFAULT}


def replace(model: M, **changes: Any) -> M:
    """A copy of ``model`` with ``changes``, converted and checked like any new instance."""
    return structs.replace(model, **changes)


def to_data(model: FrozenModel) -> dict[str, Any]:
    """Plain JSON-able data (paths as strings, enums as values) that ``build`` turns back into an
    equal model: how settings cross into a process of another kind (gevent's child)."""
    data = msgspec.to_builtins(model, enc_hook=_encode)
    assert isinstance(data, dict)
    return data


def _encode(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    raise NotImplementedError(f"cannot encode {type(obj).__name__}")


def _decode(tp: type, obj: Any) -> Any:
    # msgspec knows no Path: a string (as TOML and the environment give it) or a Path is one
    if tp is Path and isinstance(obj, str | Path):
        return Path(obj)
    raise NotImplementedError


def _problem(loc: tuple[str | int, ...], tp: Any, value: Any, exc: Exception) -> Problem:
    choices = _choices(tp)
    if choices:
        message = "must be one of " + ", ".join(repr(c) for c in choices)
    else:
        # "Expected `int`, got `str`": the value itself is shown instead of its type
        message = str(exc).replace("`", "").split(", got ")[0]
        message = message[:1].lower() + message[1:]
    return Problem(loc, message, value, show_value=not isinstance(value, dict | list | tuple))


def _choices(tp: Any) -> tuple[object, ...]:
    """The allowed values of a ``Literal`` or an enum (maybe ``Annotated`` or ``| None``)."""
    if typing.get_origin(tp) is typing.Literal:
        return typing.get_args(tp)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tuple(m.value for m in tp)
    if typing.get_origin(tp) is typing.Annotated:
        return _choices(typing.get_args(tp)[0])
    return ()


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, FrozenModel)


def inner_model(tp: Any) -> type[FrozenModel] | None:
    """The section class inside a type (``X``, ``X | None``, ``tuple[X, ...]``)."""
    if _is_model(tp):
        return typing.cast(type[FrozenModel], tp)
    for arg in typing.get_args(tp):
        found = inner_model(arg)
        if found is not None:
            return found
    return None


def build(
    cls: type[M], data: object, loc: tuple[str | int, ...] = (), found: list[Problem] | None = None
) -> M:
    """``cls`` made from plain data (a parsed TOML table, say), nested sections and lists of
    them included; raises :class:`Invalid` naming every bad, unknown or missing key by its full
    location."""
    problems: list[Problem] = [] if found is None else found
    made = _build(cls, data, loc, problems)
    if problems or made is None:
        raise Invalid(problems)
    return made


def _build(
    cls: type[M], data: object, loc: tuple[str | int, ...], problems: list[Problem]
) -> M | None:
    if isinstance(data, cls):
        return data
    if not isinstance(data, Mapping):
        problems.append(Problem(loc, "must be a table of keys", data, show_value=True))
        return None
    types = _types(cls)
    ok = True
    for key in data:
        if key not in types:
            problems.append(Problem((*loc, key), "unknown key" + _suggest(key, types)))
            ok = False
    required = {f.name for f in structs.fields(cls) if f.required}
    for key in sorted(required - set(data)):
        problems.append(Problem((*loc, key), "missing: this key has no default"))
        ok = False
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in types:
            continue
        made = _field(types[key], value, (*loc, key), problems)
        if made is _BAD:
            ok = False
        else:
            values[key] = made
    if not ok:
        # the instance cannot be made: still name every bad value among the keys given
        _converted(types, values, loc, problems)
        return None
    try:
        return cls(**values)
    except Invalid as exc:
        problems.extend(dataclasses.replace(p, loc=(*loc, *p.loc)) for p in exc.problems)
        return None


_BAD = object()


def _field(tp: Any, value: object, loc: tuple[str | int, ...], problems: list[Problem]) -> object:
    """A nested section (or a list of them) is built key by key so its problems carry their full
    location; any other value is left to the section's own conversion."""
    if value is None:
        return value
    if _is_model(tp):
        made = _build(tp, value, loc, problems)
        return _BAD if made is None else made
    args = typing.get_args(tp)
    if (
        typing.get_origin(tp) is tuple
        and len(args) == 2
        and args[1] is Ellipsis
        and _is_model(args[0])
    ):
        if not isinstance(value, list | tuple):
            problems.append(Problem(loc, "must be a list of tables", value, show_value=True))
            return _BAD
        items = [_build(args[0], item, (*loc, i), problems) for i, item in enumerate(value)]
        return _BAD if any(item is None for item in items) else tuple(items)
    return value


def _suggest(key: object, types: Mapping[str, Any]) -> str:
    import difflib  # only a misspelt key needs it

    close = difflib.get_close_matches(str(key).lower(), list(types), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""
