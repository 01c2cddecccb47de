"""Configuration helpers shared by every stage.

Each pipeline stage owns a small frozen dataclass (``EncoderConfig`` in ``encoders.py``,
``TrainConfig`` in ``train.py`` …) that validates itself in ``__post_init__``. Dicts and YAML
only exist at the edge: :func:`from_dict` turns a mapping into a config and rejects unknown keys
by name, so a typo in a YAML file is an error instead of a silently ignored setting.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value or key is invalid; the message names the key."""


def from_dict(cls: type[T], data: Mapping[str, Any] | None, *, where: str = "") -> T:
    """Build the frozen dataclass ``cls`` from ``data``, rejecting unknown keys.

    Args:
        cls: A dataclass type.
        data: Mapping of field name to value (``None`` means all defaults).
        where: Prefix used in error messages, e.g. ``"train."`` for a nested section.

    Raises:
        ConfigError: If a key is not a field of ``cls`` (the message lists the valid keys).
    """
    data = dict(data or {})
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {', '.join(where + k for k in unknown)} for {cls.__name__}; "
            f"valid keys: {', '.join(sorted(names))}"
        )
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        # YAML gives lists where configs keep tuples (hashable, frozen).
        if f.name in data and isinstance(data[f.name], list):
            data[f.name] = tuple(data[f.name])
    try:
        return cls(**data)
    except TypeError as exc:  # pragma: no cover - defensive, names the class
        raise ConfigError(f"{where or cls.__name__}: {exc}") from exc


def to_dict(config: Any) -> dict[str, Any]:
    """Plain-dict view of a config dataclass (tuples become lists, for JSON/YAML)."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return to_dict(v)
        return v

    return {f.name: plain(getattr(config, f.name)) for f in dataclasses.fields(config)}


def check(condition: bool, message: str) -> None:
    """Raise :class:`ConfigError` with ``message`` unless ``condition`` holds (for ``__post_init__``)."""
    if not condition:
        raise ConfigError(message)
