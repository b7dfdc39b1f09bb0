"""Typed step parameters: a step's ``Params`` dataclass is the schema of its ``with:``.

Supported field types: ``str``, ``int``, ``float``, ``bool``, :class:`Duration`,
:class:`Secret` (only by reference), :class:`TargetRef` (a name under ``targets:``),
``Any``, ``list[T]``, ``dict[str, T]``, ``T | None``, ``Literal[...]`` and nested
dataclasses. :func:`coerce` builds the dataclass or raises :class:`ParamError` with the
path of the offending value, so the loader can point at its line and column.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from runbook.duration import Duration, parse_duration
from runbook.secret import Secret, has_reference


class TargetRef(str):
    """The name of a connection profile under the runbook's ``targets:``."""


class ParamError(Exception):
    def __init__(self, path: tuple[Any, ...], message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def param(default: Any = dataclasses.MISSING, *, doc: str = "", factory: Any = None) -> Any:
    """A dataclass field with a one-line description for the step catalogue."""
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata={"doc": doc})
    return dataclasses.field(default=default, metadata={"doc": doc})


def is_templated(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


_HINTS: dict[type, dict[str, Any]] = {}


def hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = get_type_hints(cls)
    return _HINTS[cls]


def type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if tp is Any:
        return "anything"
    if origin is Literal:
        return " or ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(a) for a in get_args(tp) if a is not type(None))
    if origin is list:
        plural = {str: "strings", int: "integers", float: "numbers"}.get(get_args(tp)[0])
        return f"a list of {plural}" if plural else f"a list (each {type_name(get_args(tp)[0])})"
    if origin is dict:
        return f"a mapping of {type_name(get_args(tp)[1])}"
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
             Duration: "a duration like '30s'", Secret: "a secret reference like ${env:NAME}",
             TargetRef: "a target name"}
    if tp in names:
        return names[tp]
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def coerce(tp: Any, value: Any, path: tuple[Any, ...] = (), *, lenient: bool = False) -> Any:
    """Check ``value`` against ``tp`` and convert it.

    ``lenient`` is the validation mode: values that are still templates or unresolved
    secret references are accepted as they are (they are checked again after rendering).
    """
    if lenient and is_templated(value):
        return value
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return coerce(option, value, path, lenient=lenient)
            except ParamError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        raise ParamError(path, f"must be {type_name(tp)}, got {_show(value)}")
    if origin is Literal:
        if value in get_args(tp):
            return value
        raise ParamError(path, f"must be {type_name(tp)}, got {_show(value)}")
    if origin is list:
        if not isinstance(value, list):
            raise ParamError(path, f"must be {type_name(tp)}, got {_show(value)}")
        (item_tp,) = get_args(tp)
        return [coerce(item_tp, v, path + (i,), lenient=lenient) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ParamError(path, f"must be {type_name(tp)}, got {_show(value)}")
        _, item_tp = get_args(tp)
        return {str(k): coerce(item_tp, v, path + (k,), lenient=lenient) for k, v in value.items()}
    if tp is Secret:
        if isinstance(value, Secret):
            return value
        if isinstance(value, str) and has_reference(value):
            return value  # resolved at execution
        raise ParamError(path, "must be a secret reference like ${env:NAME} or ${file:PATH}; "
                               "secrets are never written into a runbook")
    if tp is Duration:
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise ParamError(path, str(exc)) from None
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ParamError(path, f"must be true or false, got {_show(value)}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ParamError(path, f"must be an integer, got {_show(value)}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ParamError(path, f"must be a number, got {_show(value)}")
    if tp is str or tp is TargetRef:
        if isinstance(value, Secret):
            return value  # a resolved reference inside a plain string field stays masked
        if isinstance(value, str):
            return tp(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and tp is str:
            return str(value)
        raise ParamError(path, f"must be a string, got {_show(value)}")
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return build(tp, value, path, lenient=lenient)
    raise ParamError(path, f"has an unsupported parameter type {tp!r} (a bug in the step type)")


def build(cls: type, value: Any, path: tuple[Any, ...] = (), *, lenient: bool = False) -> Any:
    """Build dataclass ``cls`` from a mapping, reporting unknown and missing keys."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ParamError(path, f"must be a mapping, got {_show(value)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    tps = hints(cls)
    problems: list[ParamError] = []
    for key in value:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else \
                f"; known: {', '.join(sorted(fields)) or 'none'}"
            problems.append(ParamError(path + (key,), f"unknown parameter '{key}'{hint}"))
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        if name in value:
            try:
                kwargs[name] = coerce(tps[name], value[name], path + (name,), lenient=lenient)
            except ParamError as exc:
                problems.append(exc)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            problems.append(ParamError(path, f"missing required parameter '{name}'"))
    if problems:
        raise ParamErrors(problems)
    if lenient:
        return None
    return cls(**kwargs)


class ParamErrors(ParamError):
    """Several problems at once; ``.errors`` holds each with its own path."""

    errors: list[ParamError]

    def __init__(self, errors: list[ParamError]) -> None:
        flat: list[ParamError] = []
        for e in errors:
            flat.extend(e.errors if isinstance(e, ParamErrors) else [e])
        super().__init__(flat[0].path, flat[0].message)
        self.errors = flat


def describe(cls: type) -> list[tuple[str, str, str, str]]:
    """(name, type, default, doc) rows for the step catalogue."""
    rows = []
    tps = hints(cls)
    for f in dataclasses.fields(cls):
        if isinstance(f.default, Duration):
            from runbook.duration import format_duration

            default = format_duration(f.default)
        elif f.default is not dataclasses.MISSING:
            default = repr(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            default = repr(f.default_factory())
        else:
            default = "required"
        rows.append((f.name, type_name(tps[f.name]), default, f.metadata.get("doc", "")))
    return rows


def _show(value: Any) -> str:
    if isinstance(value, Secret):
        return "a secret"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


