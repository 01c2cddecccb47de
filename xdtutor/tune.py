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
* ``also_try`` names points to try right after the experiment's values (a region the random start
  can miss, e.g. no dropout at all); they count towards the budget. They are not part of the search's
  identity: a point added later, to a stopped, finished or restored search, runs next.
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

The search's settings live in :mod:`xdtutor.tune_config` and what it found in
:mod:`xdtutor.tune_results`; both are importable from here too (``from xdtutor.tune import Search``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from .baselines import BASELINES
from .config import ConfigError, differing_keys, flatten
from .experiment import NOT_RESULTS, ExperimentConfig, load_config, with_current_defaults
from .provenance import provenance
from .transfer.base import INHERITED_FROM_MODEL
from .tune_config import KINDS, Param, TuneConfig, load_tune_config
from .tune_results import Search, format_value
from .utils import select_device

LOG = logging.getLogger("xdtutor")


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


def _without(fingerprint: dict, keys: set[str]) -> dict:
    """``fingerprint`` with the config ``keys`` left out."""
    return {**fingerprint, "config": {k: v for k, v in fingerprint["config"].items() if k not in keys}}


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


def _asked_for(tune: TuneConfig, current: Mapping[str, Any]) -> list[dict]:
    """The ``also_try`` points as full values: a key a point leaves out takes the experiment's value.

    Raises:
        ConfigError: If that value lies outside the space (the point must then name the key).
    """
    out = []
    for i, point in enumerate(tune.also_try):
        values = {**current, **point}
        outside = [p.key for p in tune.space if not p.contains(values[p.key])]
        if outside:
            raise ConfigError(f"also_try[{i}]: give {', '.join(outside)} too (the experiment's value "
                              "lies outside the space)")
        out.append({p.key: values[p.key] for p in tune.space})
    return out


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
    # the searched keys are each trial's own values: the experiment's (its first trial's, and what a
    # config records once the search has chosen, in ``per_method``) do not change a published trial
    searched = {p.key for p in tune.space}
    mine, theirs = (_without(_fingerprint(t, c), searched)
                    for t, c in ((tune, base.for_method(tune.method)), (published.config, stored)))
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
    current = {p.key: _trained_with(flat, p.key) for p in tune.space}  # the experiment's values
    asked = _asked_for(tune, current)  # an unusable point is an error now, before any folder is written
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
        if all(p.contains(current[p.key]) for p in tune.space):
            study.enqueue_trial(current, user_attrs={"experiment_values": True})
        else:
            log(f"[tune {tune.name}] the experiment's values {current} lie outside the space; not tried first")
    # then the points asked for that no trial has tried or waits to try (a search continued, restored
    # from a file, or given a point after it ran), in their order
    tried = [t.user_attrs.get("asked_for") or (t.params if t.state == states.COMPLETE else None)
             for t in study.get_trials(deepcopy=False)]
    for values in asked:
        # (a queued trial has no params yet: the experiment's values, queued above, count as tried)
        if values in tried or (values == current and study.trials):
            log(f"[tune {tune.name}] also_try {values}: already tried")
        else:
            study.enqueue_trial(values, user_attrs={"asked_for": values})
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
            + ", ".join(f"{k}={format_value(v)}" for k, v in values.items())
            + f" -> valid {tune.metric} {value:.4f} ({trial.user_attrs['epochs']} epochs, "
              f"{trial.user_attrs['stop_reason']})")
        return float(value)

    done = len(study.get_trials(deepcopy=False, states=(states.COMPLETE,)))
    t_start = time.perf_counter()

    def written(*_) -> Search:  # after every trial, so a stopped search still shows what it finished
        found = Search(tune, [{"number": t.number, "state": t.state.name, "params": t.params,
                               "value": t.value if t.state == states.COMPLETE else None, **t.user_attrs}
                              for t in study.get_trials(deepcopy=False)
                              if t.state != states.WAITING])  # queued, not run: the next call queues it again
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
