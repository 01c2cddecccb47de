"""Configuration helpers shared by every stage.

Each pipeline stage owns a small frozen dataclass (``EncoderConfig`` in ``encoders.py``,
``TrainConfig`` in ``train.py`` …) that validates itself in ``__post_init__``: first the types of
its fields (:func:`check_types`), then their values (:func:`check`). Dicts and YAML only exist at
the edge: :func:`from_dict` turns a mapping into a config and rejects unknown keys by name, so a
typo in a YAML file is an error instead of a silently ignored setting, and prefixes every message
with the section it came from (``pretrain.lr must be positive``, not ``lr must be positive``).

``key=value`` overrides (``xdtutor run --set train.lr=0.01``) are parsed by :func:`parse_sets`, the
one parser for them, and applied with :func:`set_dotted`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from typing import Any, Iterable, Mapping, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value or key is invalid; the message names the key."""


def check(condition: bool, message: str) -> None:
    """Raise :class:`ConfigError` with ``message`` unless ``condition`` holds (for ``__post_init__``)."""
    if not condition:
        raise ConfigError(message)


# ----------------------------------------------------------------------------- types


@functools.lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return f"the string {value!r}"
    return f"{value!r} ({type(value).__name__})"


def _type_error(name: str, expected: Any, value: Any) -> str | None:
    """Why ``value`` is not of type ``expected`` (``None`` when it is)."""
    origin = typing.get_origin(expected)
    if expected is Any:
        return None
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(expected)
        if value is None and type(None) in options:
            return None
        errors = [_type_error(name, o, value) for o in options if o is not type(None)]
        if any(e is None for e in errors):
            return None
        return errors[0]
    if expected is type(None):
        return None if value is None else f"{name} must be null, got {_describe(value)}"
    if origin is tuple:
        if not isinstance(value, tuple):
            return f"{name} must be a list, got {_describe(value)}"
        args = typing.get_args(expected)
        inner = args[0] if len(args) == 2 and args[1] is Ellipsis else None
        if inner is None:
            return None
        for i, v in enumerate(value):
            err = _type_error(f"{name}[{i}]", inner, v)
            if err:
                return err
        return None
    if expected is bool:
        return None if isinstance(value, bool) else f"{name} must be true or false, got {_describe(value)}"
    if expected is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return None
        return f"{name} must be an integer, got {_describe(value)}"
    if expected is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return None if math.isfinite(value) else f"{name} must be a finite number, got {value!r}"
        hint = ""
        if isinstance(value, str):
            try:
                float(value)
                hint = f" (YAML reads {value} as text: write it with a dot and a signed exponent, e.g. 1.0e-3)"
            except ValueError:
                pass
        return f"{name} must be a number, got {_describe(value)}{hint}"
    if expected is str:
        return None if isinstance(value, str) else f"{name} must be a string, got {_describe(value)}"
    if isinstance(expected, type):
        if isinstance(value, expected):
            return None
        return f"{name} must be a {expected.__name__}, got {_describe(value)}"
    return None  # pragma: no cover - an annotation this checker does not know is not checked


def check_types(config: Any) -> None:
    """Check every field of the dataclass instance ``config`` against its annotation.

    ``int`` fields take integers only (``1.5`` and ``64.0`` are errors, ``True`` too); ``float``
    fields take finite numbers (an integer is a number); ``str | None`` takes a string or null;
    ``tuple[int, ...]`` a list of integers. Call it first in ``__post_init__``.

    Raises:
        ConfigError: Naming the field, the expected type and what was given.
    """
    hints = _hints(type(config))
    for f in dataclasses.fields(config):
        err = _type_error(f.name, hints.get(f.name, Any), getattr(config, f.name))
        if err:
            raise ConfigError(err)


# ----------------------------------------------------------------------------- dicts <-> configs


def from_dict(cls: type[T], data: Mapping[str, Any] | None, *, where: str = "") -> T:
    """Build the frozen dataclass ``cls`` from ``data``, rejecting unknown keys.

    Args:
        cls: A dataclass type.
        data: Mapping of field name to value (``None`` means all defaults). Lists become tuples.
        where: Prefix of every error message, e.g. ``"pretrain."`` for a nested section.

    Raises:
        ConfigError: If a key is not a field of ``cls`` (the message lists the valid keys), or a
            value has the wrong type or range (the message names ``where`` + the key).
    """
    if data is not None and not isinstance(data, Mapping):
        raise ConfigError(f"{where.rstrip('.') or cls.__name__} must be a mapping, got {_describe(data)}")
    data = dict(data or {})
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {', '.join(where + str(k) for k in unknown)} for {cls.__name__}; "
            f"valid keys: {', '.join(sorted(names))}"
        )
    for key, value in data.items():  # YAML gives lists where configs keep tuples (hashable, frozen)
        if isinstance(value, list):
            data[key] = tuple(value)
    try:
        return cls(**data)
    except ConfigError as exc:
        raise ConfigError(f"{where}{exc}") from None


def to_dict(config: Any) -> dict[str, Any]:
    """Plain-dict view of a config dataclass (tuples become lists, for JSON/YAML)."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return to_dict(v)
        return v

    return {f.name: plain(getattr(config, f.name)) for f in dataclasses.fields(config)}


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 1}}`` -> ``{"train.lr": 1}`` (lists stay values)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def differing_keys(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """The dotted keys (:func:`flatten`) whose values differ between two nested mappings, sorted (a key
    one of them lacks counts as ``None`` there)."""
    fa, fb = flatten(a), flatten(b)
    return sorted(k for k in set(fa) | set(fb) if fa.get(k) != fb.get(k))


# ----------------------------------------------------------------------------- key=value overrides


def parse_value(text: Any) -> Any:
    """An override's value as YAML reads it: ``0.1`` -> float, ``[0, 1]`` -> list, ``null`` -> None.

    Values that are not strings pass through unchanged (overrides given from Python).
    """
    if not isinstance(text, str):
        return text
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def parse_sets(sets: Iterable[str | tuple[str, Any]]) -> list[tuple[str, Any]]:
    """``["train.lr=0.01", ("seeds", [0, 1])]`` -> ``[("train.lr", 0.01), ("seeds", [0, 1])]``.

    Raises:
        ConfigError: For a string without ``=`` or an empty key.
    """
    out = []
    for s in sets:
        if isinstance(s, str):
            if "=" not in s:
                raise ConfigError(f"--set expects key=value, got {s!r}")
            key, value = s.split("=", 1)
        else:
            key, value = s
        key = key.strip()
        if not key:
            raise ConfigError(f"--set expects key=value, got an empty key in {s!r}")
        out.append((key, parse_value(value)))
    return out


def without_seed_override(overrides: Iterable[str]) -> list[str]:
    """``overrides`` (``--set`` strings) without ``seeds=…``: a part's own ``--set seeds=[…]`` describes
    that part, not a run combined from several (whose seeds are its ``seeds``)."""
    return [o for o in overrides if not str(o).replace(" ", "").startswith("seeds=")]


def set_dotted(raw: dict, key: str, value: Any) -> None:
    """``set_dotted(d, "train.lr", 0.1)`` sets ``d["train"]["lr"]`` (creating the section).

    Raises:
        ConfigError: If a part of the key names a value, not a section.
    """
    parts = key.split(".")
    node = raw
    for p in parts[:-1]:
        if node.get(p) is None:
            node[p] = {}
        if not isinstance(node[p], dict):
            raise ConfigError(f"cannot set {key!r}: {p!r} is not a section")
        node = node[p]
    node[parts[-1]] = value
