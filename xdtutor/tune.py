"""Choose hyper-parameters on validation: a small, seeded Optuna search for one method of an experiment.

A search trains one method (a transfer strategy or a target-only baseline) of an experiment config
again and again, each time with other values of a few config keys, and keeps the values with the best
**validation** NDCG@10. Test users are never evaluated here: the chosen values go into a config, and
that config's run reads test once (``xdtutor run``).

* The first trial uses the experiment's own values (where they lie inside the space), so the search
  reports what it gained over them on validation.
* The sampler is Optuna's TPE, seeded; every trial trains with the same seed, so two trials differ
  only in the values searched. TPE models the space only once its start-up trials have finished
  (Optuna's ``n_startup_trials``, 10 by default, counting the experiment's values and restored trials):
  a search of at most ten trials is a seeded random search of the space, beside the experiment's values.
* θ_s is pretrained once and shared by every trial: a strategy that starts from θ_s may search
  ``train.*`` and ``transfer.*`` keys (``model.*`` would change θ_s; ``transfer.dropout`` and
  ``transfer.temperature`` change them for fine-tuning only, and a null one — θ_s's value — counts as
  ``model.*``'s for the first trial); a baseline, which has no θ_s,
  may search ``train.*`` and ``model.*``.
* The budget is the number of trials (and optionally minutes); the trials live in
  ``<out>/study.db``. A search that was stopped continues where it stopped: finished trials are kept,
  an interrupted one is run again with its values from its checkpoints. The sampler's random state is
  not saved, so a continued search seeds it with ``seed`` plus the number of trials so far: its
  proposals differ from an uninterrupted search's, and do not repeat the first process's.
* On a machine without the study (a fresh clone), ``continue_from`` (``xdtutor tune --continue-from
  results/<name>.json``) starts an empty folder from a published search's finished trials, once it has
  checked that the search is the same one (method, metric, seed, space, experiment config).

Files in ``out``: ``tune.json`` (space, budget, every trial with its value, stop reason and epochs,
the best values as ``--set`` overrides, provenance) and ``tune.md`` (the same as a table).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import yaml

from .baselines import BASELINES
from .config import ConfigError, check, check_types, differing_keys, flatten
from .experiment import (NOT_RESULTS, ExperimentConfig, load_config, own_key_error, read_yaml_mapping,
                         with_current_defaults)
from .provenance import provenance
from .transfer import STRATEGIES
from .transfer.base import INHERITED_FROM_MODEL
from .utils import atomic_write, select_device

LOG = logging.getLogger("xdtutor")
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
        return isinstance(value, (int, float)) and not isinstance(value, bool) and self.low <= value <= self.high

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


def load_tune_config(path: str | Path) -> TuneConfig:
    """Read a search from YAML; ``space`` maps each key to one ``{kind: [low, high]}`` or
    ``{choice: [values…]}``.

    Raises:
        ConfigError: Unknown keys, a malformed space entry or invalid values (the key named).
    """
    path = Path(path)
    raw = read_yaml_mapping(path, "search")
    known = {"name", "experiment", "method", "space", "trials", "seed", "sets", "timeout_minutes", "metric"}
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


@dataclass
class Search:
    """What a search found (:func:`search`)."""

    config: TuneConfig
    trials: list[dict] = field(default_factory=list)
    info: dict = field(default_factory=dict)

    @property
    def finished(self) -> list[dict]:
        return [t for t in self.trials if t["state"] == "COMPLETE"]

    @property
    def best(self) -> dict:
        """The finished trial with the highest validation metric (the earliest on ties)."""
        if not self.finished:
            raise ValueError(f"search {self.config.name!r} has no finished trial")
        return max(self.finished, key=lambda t: (t["value"], -t["number"]))

    @property
    def per_method(self) -> dict:
        """The best values as the experiment config's ``per_method`` entry of the method."""
        return {self.config.method: dict(self.best["params"])}

    @property
    def experiment_values(self) -> dict | None:
        """The finished trial that used the experiment's own values (``None`` if none finished)."""
        return next((t for t in self.finished if t.get("experiment_values")), None)

    @property
    def sampler_seeds(self) -> list[int]:
        """The sampler's seed in each call that ran trials: ``seed`` for the first, ``seed`` + the trials
        before it for a call that continued the search (recorded per trial since 2026-12-03); a search
        restored from a published file (``--continue-from``) counts the trials that file dropped too."""
        return sorted({t["sampler_seed"] for t in self.trials if t.get("sampler_seed") is not None})

    @property
    def sampler(self) -> str:
        """The sampler and its seed; for a search continued in later calls, the seed of each call."""
        seeds = self.sampler_seeds
        if seeds in ([], [self.config.seed]):
            return f"Optuna's TPE, seed {self.config.seed}"
        before = [str(t["number"]) for t in self.finished if t.get("sampler_seed") is None]
        return (f"Optuna's TPE, seeded {', '.join(map(str, seeds))} by the calls that ran the trials "
                f"(seed {self.config.seed} + the trials before each call"
                + (f"; not recorded for trial{'s' * (len(before) > 1)} {', '.join(before)}, run before "
                   "the seed was recorded)" if before else ")"))

    def to_dict(self) -> dict:
        return {"name": self.config.name, "experiment": self.config.experiment, "method": self.config.method,
                "metric": f"valid {self.config.metric}", "sets": list(self.config.sets),
                "space": [{"key": p.key, "kind": p.kind, "low": p.low, "high": p.high, "choices": list(p.choices)}
                          for p in self.config.space],
                "budget": {"trials": self.config.trials, "timeout_minutes": self.config.timeout_minutes},
                "sampler": self.sampler, "seed": self.config.seed,
                "trials": self.trials, "best": self.best if self.finished else None,
                "experiment_values": self.experiment_values, "per_method": self.per_method if self.finished else {},
                "info": self.info}

    def frame(self):
        """The trials as a table: one row per trial, a column per searched key, the validation metric,
        epochs run, best epoch and stop reason."""
        import pandas as pd

        rows = [{"trial": t["number"], **{p.key: t["params"].get(p.key) for p in self.config.space},
                 f"valid {self.config.metric}": t["value"], "epochs": t.get("epochs"),
                 "best epoch": t.get("best_epoch"), "stop": self._stop(t),
                 "experiment's values": bool(t.get("experiment_values"))} for t in self.trials]
        return pd.DataFrame(rows).set_index("trial")

    @classmethod
    def load(cls, path: str | Path) -> "Search":
        """A search written by :meth:`write` or :meth:`write_to` (``tune.json`` / ``results/<name>.json``)."""
        d = json.loads(Path(path).read_text(encoding="utf-8"))
        space = tuple(Param(p["key"], p["kind"], p["low"], p["high"], tuple(p["choices"])) for p in d["space"])
        config = TuneConfig(name=d["name"], experiment=d["experiment"], method=d["method"], space=space,
                            trials=d["budget"]["trials"], seed=d["seed"], sets=tuple(d["sets"]),
                            timeout_minutes=d["budget"]["timeout_minutes"], metric=d["metric"].removeprefix("valid "))
        return cls(config, d["trials"], d["info"])

    def summary(self) -> str:
        """One Markdown sentence: the keys searched, trials finished of the budget, the experiment's own
        values' validation metric, the best trial with its values and its change over the experiment's values.

        The change is on validation, one seed: what the search saw, not a test result."""
        c = self.config
        head = f"**{c.method}** over {', '.join(p.key for p in c.space)} ({len(self.finished)} of {c.trials} trials"
        head += f" or {c.timeout_minutes:g} minutes" if c.timeout_minutes else ""
        repeats = sum(self._repeats(t) is not None for t in self.finished)
        head += f"; {repeats} repeating an earlier trial's values)" if repeats else ")"
        if not self.finished:
            return head + ": no trial finished yet"
        best, base = self.best, self.experiment_values
        own = ", ".join(f"{k} = {_fmt(v)}" for k, v in best["params"].items())
        text = head + ": "
        if base is not None:
            text += f"the experiment's values reach valid {c.metric} {base['value']:.4f}, "
        text += f"the best trial (number {best['number']}) {best['value']:.4f} with {own}"
        if base is not None and base["number"] == best["number"]:
            return text + " — the search kept the experiment's own values"
        if base is not None and base["value"] > 0:
            text += f" ({best['value'] / base['value'] - 1:+.1%} on validation, one seed)"
        return text

    def _repeats(self, trial: dict) -> int | None:
        """The earlier finished trial whose values ``trial`` (not a rerun) repeats, if any — what a
        continued search proposed before its sampler was seeded by the trials so far."""
        same = [t["number"] for t in self.finished if t["number"] < trial["number"] and t["params"] == trial["params"]]
        return same[0] if same and trial.get("rerun_of") is None else None

    def _stop(self, trial: dict) -> str:
        """Why a trial ended: its stop reason (and the trial whose values it repeats), or that it was
        interrupted (and which trial ran it again)."""
        if trial.get("stop_reason"):
            repeats = self._repeats(trial)
            return trial["stop_reason"] + (f"; repeats trial {repeats}'s values" if repeats is not None else "")
        if trial["state"] == "RUNNING":
            return "running"
        again = [t["number"] for t in self.trials if t.get("rerun_of") == trial["number"]]
        return "interrupted" + (f"; run again as trial {again[0]}" if again else "")

    def _restored(self) -> str:
        """Which trials a search continued from a published file (``--continue-from``), where they ran."""
        r = self.info.get("restored")
        done = [t for t in self.trials if t.get("restored_from") is not None]
        if not r or not done:
            return ""
        groups: dict[str, list[str]] = {}
        for t in done:
            groups.setdefault(t.get("ran_on") or "an unrecorded machine", []).append(str(t["number"]))
        text = f" Restored from `{r['file']}`: " + "; ".join(
            f"trial{'s' * (len(n) > 1)} {', '.join(n)} ran on {where}" for where, n in groups.items())
        renumbered = [f"{t['number']} was {t['restored_from']}" for t in done if t["number"] != t["restored_from"]]
        text += f" (renumbered: {', '.join(renumbered)})" if renumbered else ""
        return text + ("; θ_s was pretrained again on this machine, same seed" if r.get("theta_s_again") else "") + "."

    def markdown(self) -> str:
        keys = [p.key for p in self.config.space]
        lines = [f"# Search `{self.config.name}`: {self.config.method}, valid {self.config.metric}", "",
                 f"Experiment `{self.config.experiment}` {' '.join(self.config.sets)}; "
                 f"{len(self.finished)} of {self.config.trials} trials finished; sampler {self.sampler}."
                 + self._restored(),
                 "", "| trial | " + " | ".join(keys) + f" | valid {self.config.metric} | epochs (best) | stop |",
                 "|---" * (len(keys) + 4) + "|"]
        for t in self.trials:
            value = f"{t['value']:.4f}" if t["value"] is not None else "—"
            mark = " (experiment's values)" if t.get("experiment_values") else ""
            epochs = f"{t['epochs']} ({t.get('best_epoch')})" if t.get("epochs") is not None else "—"
            lines.append(f"| {t['number']}{mark} | " + " | ".join(_fmt(t["params"].get(k)) for k in keys)
                         + f" | {value} | {epochs} | {self._stop(t)} |")
        if self.finished:
            lines += ["", f"Best: trial {self.best['number']}; in the experiment config:", "", "```yaml",
                      yaml.safe_dump({"per_method": self.per_method}, default_flow_style=None).strip(), "```"]
        return "\n".join(lines) + "\n"

    def write(self, out: str | Path) -> Path:
        """``tune.json`` and ``tune.md`` in the search's folder ``out``."""
        return self._write(Path(out), "tune")

    def write_to(self, folder: str | Path) -> Path:
        """``<name>.json`` and ``<name>.md`` in ``folder`` (e.g. the committed ``results/``)."""
        return self._write(Path(folder), self.config.name)

    def _write(self, folder: Path, stem: str) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_write(folder / f"{stem}.json", "w") as fh:
            json.dump(self.to_dict(), fh, indent=1)
        with atomic_write(folder / f"{stem}.md", "w") as fh:
            fh.write(self.markdown())
        return folder / f"{stem}.json"


def _fmt(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def experiment_config(tune: TuneConfig, values: Mapping[str, Any] = {},
                      extra: Iterable[str | tuple[str, Any]] = ()) -> ExperimentConfig:
    """The experiment with only ``tune.method`` on the menu and one seed; ``values`` become the
    method's own settings (``per_method``), over any the experiment already gives it."""
    full = load_config(tune.experiment, [*tune.sets, *extra])  # the experiment as it would run (validated)
    own = {**full.per_method.get(tune.method, {}), **values}
    only = (["strategies=[]", f"baselines=[{tune.method}]"] if tune.method in BASELINES
            else [f"strategies=[{tune.method}]", "baselines=[]"])
    return load_config(tune.experiment, [*tune.sets, *only, f"seeds=[{tune.seed}]", "cold_users.mappings=[]",
                                         "cold_start.fractions=[]", *extra,
                                         ("per_method", {tune.method: own} if own else {})])


def _bounds(p: Param) -> list:
    """The values at the edges of ``p``'s range (every value for a choice), typed as a trial gives them."""
    if p.kind == "choice":
        return list(p.choices)
    return [int(p.low), int(p.high)] if p.kind == "int" else [float(p.low), float(p.high)]


def _fingerprint(tune: TuneConfig, base: ExperimentConfig) -> dict:
    """What the trials of a search depend on; a study folder holds the search of one fingerprint."""
    return {"config": _searched_config(base), "method": tune.method, "metric": tune.metric, "seed": tune.seed,
            "space": [[p.key, p.kind, p.low, p.high, list(p.choices)] for p in tune.space]}


def _with_defaults(fingerprint: dict | None) -> dict | None:
    """A stored fingerprint with the config keys added since it was written at their defaults; as stored
    if its config no longer parses (:func:`with_current_defaults`)."""
    config = with_current_defaults({}, list(fingerprint["config"].items())) if fingerprint else None
    return fingerprint if config is None else {**fingerprint, "config": _searched_config(config)}


def _searched_config(config: ExperimentConfig) -> dict:
    """The flat config a search's trials depend on (not how they show progress, nor where they save)."""
    return {k: v for k, v in flatten(config.to_dict()).items() if k not in NOT_RESULTS and k != "checkpoint_dir"}


def _trained_with(flat: Mapping[str, Any], key: str) -> Any:
    """The value of ``key`` the experiment trains with: a null ``transfer.dropout`` or
    ``transfer.temperature`` means θ_s's ``model.*`` value (:meth:`TransferConfig.model_overrides`)."""
    section, name = key.split(".", 1)
    if section == "transfer" and name in INHERITED_FROM_MODEL and flat[key] is None:
        return flat[f"model.{name}"]
    return flat[key]


def _ran_on(info: Mapping[str, Any]) -> str | None:
    """Where and when a call ran its trials, in words (from :func:`provenance`), e.g.
    ``"CPU x86_64 (2 cores), 2026-12-03"``."""
    if not info.get("device"):
        return None
    if info["device"] == "cpu":
        cores = f" ({info['cpu_count']} cores)" if info.get("cpu_count") else ""
        where = f"CPU {info.get('device_name') or ''}".strip() + cores
    else:
        where = str(info.get("device_name") or info["device"])
    return where + (f", {str(info['date'])[:10]}" if info.get("date") else "")


def _published(tune: TuneConfig, base: ExperimentConfig, path: Path) -> Search:
    """A published search (``tune.json`` / ``results/<name>.json``) to continue; refused unless it is this
    search (same method, metric, seed, space and experiment config, read with today's defaults)."""
    where = f"--continue-from {path}"
    try:
        published = Search.load(path)
        for t in published.trials:  # what restoring reads, checked now rather than after pretraining
            t["state"], t["params"], t["value"]  # noqa: B018
        config = published.info["experiment_config"]
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read it ({exc.strerror or exc})") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}: not JSON ({exc})") from None
    except (AttributeError, KeyError, TypeError, ValueError) as exc:  # JSON, but not a search
        raise ConfigError(f"{where}: not a search written by xdtutor tune (missing or bad {exc})") from None
    stored = with_current_defaults(config)
    if stored is None:
        raise ConfigError(f"{where}: its experiment config no longer parses with this version of xdtutor")
    mine = _fingerprint(tune, base.for_method(tune.method))
    theirs = _fingerprint(published.config, stored)
    if theirs != mine:
        differs = differing_keys(theirs, mine)
        raise ConfigError(f"{where}: a search of another setup (differs in {differs[:8]})")
    return published


def _restore(study, published: Search, path: Path, pretrains: bool) -> dict:
    """Add the finished trials of ``published`` to an empty study, so that the search continues on a
    machine without its ``study.db``.

    Returns:
        What was restored, for the search's ``info``: the file, how many unfinished trials it dropped
        (they count towards the sampler's seed), and whether θ_s is pretrained again here.
    """
    import optuna

    distributions = {p.key: p.distribution() for p in published.config.space}
    ran_on = _ran_on(published.info)  # the file's last call: trials before 2026-12-03 lack their own
    for t in published.finished:  # interrupted trials are not carried over: their checkpoints stayed behind
        attrs = {"ran_on": ran_on, **{k: v for k, v in t.items()
                                      if k not in ("number", "state", "params", "value", "rerun_of")}}
        study.add_trial(optuna.trial.create_trial(params=t["params"], distributions=distributions,
                                                  value=t["value"], user_attrs={**attrs, "restored_from": t["number"]}))
    return {"file": str(path), "dropped": len(published.trials) - len(published.finished),
            "theta_s_again": pretrains}


def search(tune: TuneConfig, out: str | Path, *, log: Callable[..., None] | None = LOG.info,
           dataset=None, text_emb: Mapping[str, Any] | None = None,
           continue_from: str | Path | None = None) -> Search:
    """Run (or continue) the search and write ``tune.json`` / ``tune.md`` into ``out``.

    Args:
        tune: The search.
        out: Its folder (``study.db``, checkpoints, ``tune.json``, ``tune.md``).
        log: Where one line per trial goes (``None`` = silent).
        dataset / text_emb: In-memory data and embeddings instead of the experiment's (tests).
        continue_from: A published search (``tune.json`` or ``results/<name>.json``) of this very search
            whose finished trials start an empty ``out`` — a search continued on another machine.
    """
    import optuna

    from . import pipeline

    log = log or (lambda *a, **k: None)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    own_dir = [] if load_config(tune.experiment, tune.sets).checkpoint_dir else [("checkpoint_dir", str(out / "checkpoints"))]
    base = experiment_config(tune, extra=own_dir)
    flat = flatten(base.for_method(tune.method).to_dict())  # the values the experiment trains it with
    for p in tune.space:
        if p.key not in flat:
            raise ConfigError(f"space.{p.key}: not a key of the experiment {tune.experiment}")
        for value in _bounds(p):  # a value the config refuses is an error now, not after pretraining
            try:
                experiment_config(tune, {p.key: value}, extra=own_dir)
            except ConfigError as exc:
                raise ConfigError(f"space.{p.key}: the value {value!r} is refused: {exc}") from None
    # a published search to continue is checked before anything is encoded or pretrained
    published = _published(tune, base, Path(continue_from)) if continue_from is not None else None
    device = select_device(base.device)
    prepared = pipeline.collect(base, dataset=dataset, text_emb=text_emb)
    if tune.metric not in {f"{m}@{k}" for m in ("recall", "ndcg", "mrr", "hr") for k in prepared.target.protocol.ks}:
        raise ConfigError(f"metric: {tune.metric!r} is not computed (protocol ks {list(prepared.target.protocol.ks)})")
    fingerprint = _fingerprint(tune, base)
    # the study, and the published trials it may continue from, are checked before θ_s is pretrained:
    # a wrong file or folder is an error now, not after half an hour
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=tune.name, direction="maximize", load_if_exists=True,
                                storage=f"sqlite:///{(out / 'study.db').resolve()}")
    states = optuna.trial.TrialState
    stored = _with_defaults(study.user_attrs.get("fingerprint"))
    if stored is None and not study.trials:
        study.set_user_attr("fingerprint", fingerprint)
    elif stored != fingerprint:
        differs = differing_keys(stored or {}, fingerprint)
        raise ConfigError(f"--out {out} holds a search of another setup (differs in {differs[:8]}); "
                          "choose another folder or remove it")
    restored = study.user_attrs.get("restored") or {}
    if continue_from is not None and restored.get("file") == str(continue_from):
        log(f"[tune {tune.name}] {out} already continues {continue_from}; going on from its own trials")
    elif published is not None:
        if study.trials:
            raise ConfigError(f"--continue-from {continue_from}: --out {out} already holds {len(study.trials)} "
                              "trial(s); continue it without --continue-from, or choose an empty folder")
        if published.finished:
            restored = _restore(study, published, Path(continue_from), base.needs_source_model)
            study.set_user_attr("restored", restored)
    # seeded by the trials so far (and those a restored search dropped): a search continued in a new
    # process would otherwise draw again the values an earlier call drew (TPE starts with seeded random
    # proposals) and repeat finished trials
    sampler_seed = tune.seed + len(study.trials) + restored.get("dropped", 0)
    study.sampler = optuna.samplers.TPESampler(seed=sampler_seed)
    # trial folders are named after the fingerprint as first stored, so an interrupted trial still finds
    # its checkpoints after a later version added config keys (at their defaults) to the fingerprint
    key = hashlib.sha256(json.dumps(study.user_attrs["fingerprint"], sort_keys=True).encode()).hexdigest()[:12]
    # a process killed mid-trial leaves it RUNNING, an interrupted or crashed one FAIL (Optuna re-raises
    # the objective's errors, so no FAIL comes from a search that went on): each is run again, once
    for t in study.get_trials(deepcopy=False, states=(states.RUNNING,)):
        study.tell(t.number, state=states.FAIL)
    queued = {t.user_attrs.get("rerun_of") for t in study.get_trials(deepcopy=False)}
    for t in study.get_trials(deepcopy=False, states=(states.FAIL,)):
        if t.number not in queued:
            study.enqueue_trial(t.params, user_attrs={**t.user_attrs, "rerun_of": t.number})
    if not study.trials:
        current = {p.key: _trained_with(flat, p.key) for p in tune.space}
        if all(p.contains(current[p.key]) for p in tune.space):
            study.enqueue_trial(current, user_attrs={"experiment_values": True})
        else:
            log(f"[tune {tune.name}] the experiment's values {current} lie outside the space; not tried first")
    ran_on = _ran_on(provenance(device))
    knowledge = None
    if base.needs_source_model:
        log(f"[tune] pretraining θ_s once for every trial (seed {tune.seed})")
        knowledge = pipeline.extract(base, prepared, pipeline.pretrain(base, prepared, tune.seed))

    def objective(trial) -> float:
        values = {p.key: p.suggest(trial) for p in tune.space}
        config = experiment_config(tune, values, extra=[("checkpoint_dir", base.checkpoint_dir)]).for_method(tune.method)
        # a folder per setup and values: an interrupted trial resumes from its own checkpoints only
        ckpt = out / "trials" / hashlib.sha256(json.dumps([key, values], sort_keys=True).encode()).hexdigest()[:12]
        t0 = time.perf_counter()
        target, trained = pipeline.train_model(config, prepared, knowledge, tune.method, tune.seed, ckpt)
        value = pipeline.validate(config, target, trained).metrics[tune.metric]
        ended = {**pipeline.how_it_ended(trained), "seconds": time.perf_counter() - t0, "sampler_seed": sampler_seed,
                 "ran_on": ran_on}
        for k, v in ended.items():
            trial.set_user_attr(k, v)
        log(f"[tune {tune.name}] trial {trial.number}: "
            + ", ".join(f"{k}={_fmt(v)}" for k, v in values.items())
            + f" -> valid {tune.metric} {value:.4f} ({trial.user_attrs['epochs']} epochs, "
              f"{trial.user_attrs['stop_reason']})")
        return float(value)

    done = len(study.get_trials(deepcopy=False, states=(states.COMPLETE,)))
    t_start = time.perf_counter()

    def written(*_) -> Search:  # after every trial, so a stopped search still shows what it finished
        found = Search(tune, [{"number": t.number, "state": t.state.name, "params": t.params,
                               "value": t.value if t.state == states.COMPLETE else None, **t.user_attrs}
                              for t in study.get_trials(deepcopy=False)])
        found.info = {"wall_seconds_this_call": time.perf_counter() - t_start, **provenance(device),
                      "experiment_config": base.for_method(tune.method).to_dict(),
                      **({"restored": study.user_attrs["restored"]} if "restored" in study.user_attrs else {})}
        found.write(out)
        return found

    if done < tune.trials:
        study.optimize(objective, n_trials=tune.trials - done, callbacks=[written],
                       timeout=tune.timeout_minutes * 60 if tune.timeout_minutes else None)
    result = written()
    return result


__all__ = ["KINDS", "Param", "Search", "TuneConfig", "experiment_config", "load_tune_config", "search"]
