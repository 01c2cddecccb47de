"""A search's settings (:class:`TuneConfig`, one :class:`Param` per searched key), read from YAML.

The search itself is :func:`xdtutor.tune.search`; what it found is :class:`xdtutor.tune_results.Search`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .baselines import BASELINES
from .config import ConfigError, check, check_types
from .experiment import own_key_error, read_yaml_mapping
from .transfer import STRATEGIES

KINDS = ("float", "log_float", "int", "choice")


@dataclass(frozen=True)
class Param:
    """One searched config key.

    Attributes:
        key: Dotted config key, e.g. ``"train.lr"``.
        kind: ``"float"``, ``"log_float"`` (sampled on a log scale), ``"int"`` or ``"choice"``.
        low, high: Range of the numeric kinds (both ends included).
        choices: Values of ``"choice"``.
    """

    key: str
    kind: str
    low: float | None = None
    high: float | None = None
    choices: tuple = ()

    def __post_init__(self) -> None:
        check_types(self)
        check(self.kind in KINDS, f"space.{self.key}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "choice":
            check(len(self.choices) >= 2, f"space.{self.key}: choice needs at least 2 values")
        else:
            check(self.low is not None and self.high is not None and self.low < self.high,
                  f"space.{self.key}: {self.kind} needs [low, high] with low < high")
            check(self.kind != "log_float" or self.low > 0, f"space.{self.key}: log_float needs low > 0")
            check(self.kind != "int" or (float(self.low).is_integer() and float(self.high).is_integer()),
                  f"space.{self.key}: int needs whole-number bounds")

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is one the search can propose."""
        if self.kind == "choice":
            return value in self.choices
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return False
        return self.low <= value <= self.high and (self.kind != "int" or float(value).is_integer())

    def distribution(self):
        """Optuna's distribution of this key: what :meth:`suggest` draws from."""
        from optuna import distributions as d

        if self.kind == "choice":
            return d.CategoricalDistribution(list(self.choices))
        if self.kind == "int":
            return d.IntDistribution(int(self.low), int(self.high))
        return d.FloatDistribution(float(self.low), float(self.high), log=self.kind == "log_float")

    def suggest(self, trial) -> Any:
        """Optuna's proposal for this key in ``trial``."""
        if self.kind == "choice":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high))
        return trial.suggest_float(self.key, float(self.low), float(self.high), log=self.kind == "log_float")


@dataclass(frozen=True)
class TuneConfig:
    """A search. Built from YAML by :func:`load_tune_config`.

    Attributes:
        name: Name of the search (file names).
        experiment: The experiment config file whose method is tuned (relative to the tune file).
        method: The strategy or baseline tuned.
        space: The searched keys.
        trials: Trials in the budget (the first is the experiment's own values).
        seed: Seed of the sampler and of every trial's training.
        sets: Overrides applied to the experiment before the search, e.g. ``["scale=full"]``.
        timeout_minutes: Stop starting new trials after this many minutes (``None`` = no limit).
        metric: Validation metric maximised.
        also_try: Points tried right after the experiment's values, before the sampler proposes any,
            e.g. ``({"transfer.dropout": 0.0},)``: a region the random start-up trials may miss is tried
            by name. A key a point leaves out keeps the experiment's value. Points can be added to a
            search that already ran (with a larger ``trials``): a point no trial has tried yet runs next.
    """

    name: str
    experiment: str
    method: str
    space: tuple[Param, ...]
    trials: int = 12
    seed: int = 0
    sets: tuple[str, ...] = ()
    timeout_minutes: float | None = None
    metric: str = "ndcg@10"
    also_try: tuple[dict, ...] = ()

    def __post_init__(self) -> None:
        check_types(self)
        check(self.method in STRATEGIES or self.method in BASELINES,
              f"method must be a strategy {tuple(STRATEGIES)} or a baseline {BASELINES}, got {self.method!r}")
        check(self.method != "popularity" and self.method != "zero_shot",
              f"method: {self.method!r} trains nothing, so there is nothing to tune")
        check(len(self.space) >= 1, "space must list at least one key")
        check(self.trials >= 1, f"trials must be >= 1, got {self.trials}")
        check(self.timeout_minutes is None or self.timeout_minutes > 0,
              f"timeout_minutes must be positive or null, got {self.timeout_minutes}")
        check(bool(re.fullmatch(r"(recall|ndcg|mrr|hr)@\d+", self.metric)),
              f"metric must be recall@K, ndcg@K, mrr@K or hr@K, got {self.metric!r}")
        for p in self.space:  # θ_s is pretrained once for every trial
            check((why := own_key_error(self.method, p.key, "search")) is None, f"space.{p.key}: {why}")
        space = {p.key: p for p in self.space}
        for i, point in enumerate(self.also_try):
            check(bool(point), f"also_try[{i}] is empty: name at least one searched key")
            check(point not in self.also_try[:i], f"also_try[{i}] repeats an earlier point")
            for key, value in point.items():
                check(key in space, f"also_try[{i}].{key}: not a searched key ({', '.join(space)})")
                hint = (" (YAML reads it as text: write a number with a dot, e.g. 1.0e-3)"
                        if isinstance(value, str) else "")
                check(space[key].contains(value), f"also_try[{i}].{key}: {value!r} lies outside the space{hint}")
        check(len(self.also_try) < self.trials,
              f"also_try lists {len(self.also_try)} point(s) but trials is {self.trials}: the experiment's "
              "values and every point must fit in the budget")


def load_tune_config(path: str | Path) -> TuneConfig:
    """Read a search from YAML; ``space`` maps each key to one ``{kind: [low, high]}`` or
    ``{choice: [values…]}``.

    Raises:
        ConfigError: Unknown keys, a malformed space entry or invalid values (the key named).
    """
    path = Path(path)
    raw = read_yaml_mapping(path, "search")
    known = {"name", "experiment", "method", "space", "trials", "seed", "sets", "timeout_minutes", "metric",
             "also_try"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(known))}")
    space = raw.get("space")
    if not isinstance(space, dict) or not space:
        raise ConfigError(f"{path}: space must map config keys to {{kind: [low, high]}} or {{choice: [...]}}")
    params = []
    for key, spec in space.items():
        if not (isinstance(spec, dict) and len(spec) == 1 and isinstance(next(iter(spec.values())), list)):
            raise ConfigError(f"{path}: space.{key} must be one of {KINDS} with a list, e.g. {{log_float: [1e-4, 1e-2]}}")
        (kind, values), = spec.items()
        try:
            if kind == "choice":
                params.append(Param(str(key), kind, choices=tuple(values)))
            else:
                if len(values) != 2:
                    raise ConfigError(f"space.{key}: {kind} needs [low, high], got {values}")
                low, high = (float(v) if isinstance(v, (int, float)) else v for v in values)
                params.append(Param(str(key), str(kind), low, high))
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items() if k != "space"}
    fields.setdefault("name", path.stem)
    if "experiment" in fields and isinstance(fields["experiment"], str):
        fields["experiment"] = os.path.normpath(path.parent / fields["experiment"])
    try:
        return TuneConfig(space=tuple(params), **fields)
    except TypeError as exc:  # a required key is missing
        raise ConfigError(f"{path}: {exc}") from None
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


__all__ = ["KINDS", "Param", "TuneConfig", "load_tune_config"]
