"""One experiment as one config: the stages' sections, built from YAML at the edge.

A config file has a section per stage — ``data``, ``encoder``, ``model``, ``pretrain``, ``train``,
``transfer``, ``cold_users``, ``cold_start`` — and the experiment's own keys (``name``, ``seeds``,
``strategies``, ``baselines`` …). :func:`load_config` reads it:

1. ``extends: other.yaml`` (optional, relative to the file) starts from another config and
   overrides it key by key (sections are merged, lists replaced), so an experiment that differs
   from a shipped one in three keys is a three-key file;
2. ``scale: ci | full`` selects the ``ci:`` or ``full:`` section, a mapping of dotted keys to values
   applied on top (``ci`` = a small user subsample and few epochs, so that a config runs in
   minutes on 2 CPUs);
3. ``--set key=value`` overrides (dotted keys, :func:`xdtutor.config.parse_sets`) win over both.

Every key either takes effect or is rejected by name: unknown keys, wrong types and out-of-range
values are :class:`~xdtutor.config.ConfigError` naming the key. The training loops' ``device``,
``max_len`` and ``seed`` are not keys: they follow the experiment's ``device``, ``model.max_len``
and ``seeds`` (:meth:`ExperimentConfig.train_config`), and setting them is an error that says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from .baselines import BASELINES
from .cold_users import ColdUsersConfig
from .config import ConfigError, check, check_types, from_dict, parse_sets, set_dotted, to_dict
from .encoders import EncoderConfig
from .models import ModelConfig
from .tracking import BACKENDS as TRACKING_BACKENDS
from .train import TrainConfig
from .transfer import STRATEGIES, USES_THETA, VIEWS, TransferConfig
from .transfer.base import INHERITED_FROM_MODEL
from .utils import is_device_name

SCALES = ("ci", "full")
#: Training-loop keys the experiment sets itself (from ``device``, ``model.max_len`` and ``seeds``).
DERIVED = {"device": "device", "max_len": "model.max_len", "seed": "seeds"}
#: Keys that moved, old -> new (a config written for an earlier version gets told where they went).
MOVED = {"transfer.mapping": "cold_users.mappings", "transfer.ridge_alpha": "cold_users.ridge_alpha",
         "transfer.mlp_hidden": "cold_users.mlp_hidden", "transfer.mlp_epochs": "cold_users.mlp_epochs",
         "transfer.train": "train", "transfer.lora_train_adaptor": "the strategy lora_adaptor"}


@dataclass(frozen=True)
class DataConfig:
    """Which data (stages 1–2).

    Attributes:
        dataset: Registered dataset of the target (``"food_kitchen"``, ``"scientific"``) or a
            bring-your-own-data folder.
        target: Target domain inside ``dataset`` (``None`` = its default, e.g. Food).
        sources: Source domains by name (``xdtutor.data.load_domain``); empty = the dataset's own
            sources (Kitchen for ``food_kitchen``).
        subsample: Fraction of the dataset's users kept (seeded by ``seed``).
        source_subsample: Further fraction of *source* users kept for pretraining.
        seed: Seed of the subsamples.
        data_dir: Data root; ``None`` = ``XDTUTOR_DATA_DIR`` / download cache.
        compact: Drop catalogue items that no kept user interacted with (:mod:`xdtutor.data.compact`).
        ranking: ``"full"`` (every item a candidate; what the book reports) or ``"sampled"``: each
            validation/test target against ``negatives`` items drawn per user with
            ``negatives_seed`` (LLMCDSR's protocol is ``sampled``, 999, 42). Stated in the protocol
            line; sampled numbers are not comparable with full ones (chapter 4, section 4.7).
        negatives: Negatives per user under sampled ranking (0 under full ranking).
        negatives_seed: Seed of the negatives.
    """

    dataset: str = "food_kitchen"
    target: str | None = None
    sources: tuple[str, ...] = ()
    subsample: float = 1.0
    source_subsample: float = 1.0
    seed: int = 0
    data_dir: str | None = None
    compact: bool = False
    ranking: str = "full"
    negatives: int = 0
    negatives_seed: int = 0

    def __post_init__(self) -> None:
        check_types(self)
        check(0.0 < self.subsample <= 1.0, f"subsample must be in (0, 1], got {self.subsample}")
        check(self.ranking in ("full", "sampled"), f"ranking must be 'full' or 'sampled', got {self.ranking!r}")
        check((self.negatives >= 1) == (self.ranking == "sampled"),
              f"negatives must be >= 1 with ranking 'sampled' and 0 with 'full', got {self.negatives} "
              f"with {self.ranking!r}")
        check(0.0 < self.source_subsample <= 1.0, f"source_subsample must be in (0, 1], got {self.source_subsample}")


@dataclass(frozen=True)
class ColdStartConfig:
    """The feature-scarcity curve: models retrained on a fraction of the target's training users.

    Attributes:
        fractions: Fractions of target training users (by user, seeded); empty = skip.
        strategy: The transfer strategy drawn on the curve.
        baselines: Target-only baselines drawn next to it.
        patience: Early-stopping patience of the curve's trainings (``None`` = ``train.patience``).
            With a few hundred training users, validation NDCG@10 of the text models peaks in the
            first epochs, dips while the learning rate warms up, and then climbs for tens of epochs:
            at 5 % of Kitchen → Food, patience 5 stopped every text-only run and one of three
            transferred runs inside that dip (`results/cold_start.md`, notes).
        batch_size: Batch size of the curve's trainings (``None`` = the method's ``train.batch_size``).
            With 5 % of Food's training users a batch of 256 is about three optimiser steps per
            epoch; the trainings there ran for many epochs and some stopped at the epoch limit
            (`results/cold_start.md`), so a small point can ask for more, smaller steps.
    """

    fractions: tuple[float, ...] = ()
    strategy: str = "frozen_adaptor"
    baselines: tuple[str, ...] = ("text", "sasrec")
    patience: int | None = None
    batch_size: int | None = None

    def __post_init__(self) -> None:
        check_types(self)
        check(all(0.0 < f <= 1.0 for f in self.fractions), f"fractions must be in (0, 1], got {self.fractions}")
        check(self.strategy in STRATEGIES, f"strategy must be one of {tuple(STRATEGIES)}, got {self.strategy!r}")
        check(VIEWS[self.strategy] == "target", f"strategy: the curve retrains on a fraction of the target split; "
              f"{self.strategy!r} trains on another view of the data ({VIEWS[self.strategy]})")
        check(set(self.baselines) <= set(BASELINES), f"baselines must be in {BASELINES}, got {self.baselines}")
        check(self.patience is None or self.patience >= 1, f"patience must be >= 1 or null, got {self.patience}")
        check(self.batch_size is None or self.batch_size >= 1,
              f"batch_size must be >= 1 or null, got {self.batch_size}")


#: The strategies a config without ``strategies:`` runs (the θ_s menu on the target split; the strategies
#: that read source data in the histories or train jointly are chosen explicitly).
DEFAULT_STRATEGIES = ("zero_shot", "full_finetune", "l2sp", "frozen_adaptor", "lora", "lora_adaptor", "fusion")


@dataclass(frozen=True)
class ExperimentConfig:
    """One experiment. Built from YAML by :func:`load_config`.

    Attributes:
        name: Experiment name (results file names).
        scale: ``"ci"`` or ``"full"`` (which override section was applied).
        seeds: Seeds of pretraining + target training (mean ± std over them).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``: every stage runs there.
        data, encoder, model, pretrain, train, transfer, cold_users, cold_start: The stages' configs.
            ``pretrain`` is the source's training loop, ``train`` every target-side one.
        strategies: Transfer strategies to run (:data:`xdtutor.transfer.STRATEGIES`).
        baselines: Target-only baselines (:data:`xdtutor.baselines.BASELINES`).
        similarity_sample: Items per catalogue for the domain-similarity diagnostic.
        source_eval_users: Source users ranked for early stopping of pretraining (``None`` = all).
            Source NDCG@10 is small (Kitchen: Popularity .0043 on 20,000 users,
            ``scripts/source_popularity.py``), so 2,000 users give only a handful of hits per
            epoch and early stopping follows noise; full-scale configs use more.
        checkpoint_dir: Keep resumable source-pretraining checkpoints here, in a folder named by a
            hash of everything the source model depends on, so a second run with the same
            settings (e.g. only the cold-start curve) reuses the source model.
        tracking: ``"none"`` or ``"tensorboard"``: every training's per-epoch loss, validation metrics
            and time as TensorBoard scalars in ``<run folder>/tensorboard/<seed>/<model>``
            (:mod:`xdtutor.tracking`; needs an output folder and ``pip install "xdtutor[track]"``).
        per_method: Settings of one method over the shared ones, e.g. ``{"text": {"train.lr": 3e-4,
            "model.dropout": 0.3}}`` — what a validation search chose for it (:mod:`xdtutor.tune`).
            A strategy that starts from θ_s may set ``train.*`` and ``transfer.*`` (its model is
            θ_s's); a baseline ``train.*`` and ``model.*``. :meth:`for_method` applies them.
    """

    name: str = "experiment"
    scale: str = "ci"
    seeds: tuple[int, ...] = (0,)
    device: str = "auto"
    data: DataConfig = field(default_factory=DataConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    pretrain: TrainConfig = field(default_factory=TrainConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    transfer: TransferConfig = field(default_factory=TransferConfig)
    cold_users: ColdUsersConfig = field(default_factory=ColdUsersConfig)
    cold_start: ColdStartConfig = field(default_factory=ColdStartConfig)
    strategies: tuple[str, ...] = DEFAULT_STRATEGIES
    baselines: tuple[str, ...] = BASELINES
    similarity_sample: int = 2000
    source_eval_users: int | None = 2000
    checkpoint_dir: str | None = None
    tracking: str = "none"
    per_method: dict = field(default_factory=dict, hash=False)  # a dict: left out of the hash

    def __post_init__(self) -> None:
        check_types(self)
        check(self.scale in SCALES, f"scale must be one of {SCALES}, got {self.scale!r}")
        check(len(self.seeds) >= 1, "seeds must list at least one seed")
        check(len(set(self.seeds)) == len(self.seeds), f"seeds must not repeat, got {list(self.seeds)}")
        check(is_device_name(self.device), f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {self.device!r}")
        unknown = [s for s in self.strategies if s not in STRATEGIES]
        check(not unknown, f"strategies: unknown {unknown}; choose from {tuple(STRATEGIES)}")
        unknown = [b for b in self.baselines if b not in BASELINES]
        check(not unknown, f"baselines: unknown {unknown}; choose from {BASELINES}")
        check(self.similarity_sample > 0, "similarity_sample must be positive")
        check(self.tracking in TRACKING_BACKENDS, f"tracking must be one of {TRACKING_BACKENDS}, got {self.tracking!r}")
        check(self.source_eval_users is None or self.source_eval_users > 0,
              f"source_eval_users must be positive or null, got {self.source_eval_users}")
        trained = {*self.strategies, *self.baselines}
        if self.cold_start.fractions:
            trained |= {self.cold_start.strategy, *self.cold_start.baselines}
        for method, sets in self.per_method.items():
            check(method in STRATEGIES or method in BASELINES,
                  f"per_method: unknown method {method!r}; choose from {(*BASELINES, *STRATEGIES)}")
            check(method not in ("popularity", "zero_shot"), f"per_method.{method}: {method!r} trains nothing")
            check(method in trained, f"per_method.{method}: this config never trains {method!r} "
                  "(not in strategies, baselines or the cold-start curve), so its settings would be ignored")
            check(isinstance(sets, dict) and sets, f"per_method.{method} must map dotted config keys to values")
            for key in sets:
                check((why := own_key_error(method, key)) is None, f"per_method.{method}.{key}: {why}")
            self.for_method(method)  # an unknown key or a bad value is an error now, not when it trains

    def for_method(self, name: str) -> "ExperimentConfig":
        """The config method ``name`` trains with: its :attr:`per_method` settings over the shared ones."""
        sets = self.per_method.get(name)
        if not sets:
            return self
        raw = {**self.to_dict(), "per_method": {}}
        for key, value in sets.items():  # values as given: YAML typed them, nothing re-reads a string
            set_dotted(raw, key, value)
        try:
            return build_config(raw, where=f"per_method.{name}")
        except ConfigError as exc:
            message = str(exc)
            raise ConfigError(message if message.startswith("per_method") else f"per_method.{name}: {message}") from None

    @property
    def needs_source(self) -> bool:
        """Whether anything reads a source domain (θ_s, or source data in histories or training rows)."""
        return bool(self.strategies) or self.needs_source_model

    @property
    def needs_source_model(self) -> bool:
        """Whether anything uses θ_s (a strategy that starts from it, cold users, the cold-start curve)."""
        return any(USES_THETA[s] for s in self.strategies) or bool(self.cold_users.mappings or self.cold_start.fractions)

    def train_config(self, seed: int, section: str = "train") -> TrainConfig:
        """The ``train`` (or ``pretrain``) loop of seed ``seed``, on the experiment's device and
        with the model's history length."""
        base: TrainConfig = getattr(self, section)
        return replace(base, device=self.device, max_len=self.model.max_len, seed=seed)

    def to_dict(self) -> dict:
        """Plain data, as a config file would hold it (the loops' derived keys left out)."""
        d = to_dict(self)
        for section in ("pretrain", "train"):
            for key in DERIVED:
                d[section].pop(key, None)
        return d


#: Keys one method cannot set for itself: evaluation pads every history to the protocol's length.
FIXED_PER_EXPERIMENT = {"model.max_len": "every model is evaluated on histories of the protocol's length"}


def unused_by(method: str, key: str) -> str | None:
    """Why ``method`` would ignore the dotted ``key`` as its own setting (``None``: it reads it).

    ``transfer.dropout`` / ``transfer.temperature`` change θ_t's settings; a strategy built from the
    source's data instead of θ_s reads ``model.*`` for them.
    """
    section, _, name = key.partition(".")
    if section == "transfer" and name in INHERITED_FROM_MODEL and not USES_THETA.get(method, False):
        return f"{method!r} does not start from θ_s and would ignore it; set model.{name} instead"
    return None


def own_key_error(method: str, key: Any, verb: str = "set") -> str | None:
    """Why ``method`` cannot have its own value of the dotted ``key`` (``None``: it can) — in a config's
    ``per_method`` (``verb`` "set") or a search's ``space`` ("search")."""
    allowed = method_sections(method)
    if not (isinstance(key, str) and "." in key and key.split(".")[0] in allowed):
        return (f"{method!r} may {verb} dotted keys of {', '.join(s + '.*' for s in allowed)} only, e.g. train.lr"
                + (" (its model is θ_s's, pretrained once for every strategy; transfer.dropout and "
                   "transfer.temperature change θ_t's)" if "model" not in allowed else ""))
    if key in FIXED_PER_EXPERIMENT:
        return f"one value for the whole experiment ({FIXED_PER_EXPERIMENT[key]})"
    return unused_by(method, key)


def method_sections(method: str) -> tuple[str, ...]:
    """The config sections one method's own settings may change: not ``model`` for a strategy that
    starts from θ_s (its model is θ_s's, pretrained once for every strategy)."""
    if method in BASELINES:
        return ("train", "model")
    return ("train", "transfer") if USES_THETA[method] else ("train", "transfer", "model")


#: ``data`` keys that only say how the target is ranked at evaluation; source pretraining ignores them.
TARGET_RANKING_KEYS = ("ranking", "negatives", "negatives_seed")

#: Dotted config keys that change what a run shows, not what it computes: a resumed run, or the seeds
#: combined into one table, may differ in them.
NOT_RESULTS = ("tracking", "encoder.progress", "pretrain.progress", "train.progress", "encoder.batch_size",
               "pretrain.logits_chunk", "train.logits_chunk", "pretrain.check_every", "train.check_every")

SECTIONS = {"data": DataConfig, "encoder": EncoderConfig, "model": ModelConfig, "pretrain": TrainConfig,
            "train": TrainConfig, "transfer": TransferConfig, "cold_users": ColdUsersConfig,
            "cold_start": ColdStartConfig}


def build_config(raw: Mapping[str, Any], sets: Iterable[str | tuple[str, Any]] = (), *,
                 where: str = "config") -> ExperimentConfig:
    """Turn a plain mapping (parsed YAML) + overrides into an :class:`ExperimentConfig`.

    Order: file values, then the ``ci:``/``full:`` section chosen by ``scale``, then ``sets``.

    Raises:
        ConfigError: Unknown, moved or derived keys (named, e.g. ``train.epoch``) or invalid values.
    """
    raw = json.loads(json.dumps(dict(raw)))  # deep copy of plain data
    if "extends" in raw:
        raise ConfigError(f"{where}: 'extends' is only read from files (load_config)")
    overrides = parse_sets(sets)
    for k, v in overrides:  # first pass: `--set scale=full` must choose the section
        if k == "scale":
            raw["scale"] = v
    scale_sections = {s: raw.pop(s, None) or {} for s in SCALES}
    scale = raw.get("scale", "ci")
    if scale not in SCALES:
        raise ConfigError(f"{where}: scale must be one of {SCALES}, got {scale!r}")
    for name, section in scale_sections.items():
        if not isinstance(section, dict):
            raise ConfigError(f"{where}: the {name}: section must map dotted keys to values")
    for k, v in list(scale_sections[scale].items()) + overrides:
        set_dotted(raw, k, v)
    _reject_moved_and_derived(raw, where)
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        if key in SECTIONS:
            kwargs[key] = from_dict(SECTIONS[key], value, where=f"{key}.")
        else:
            kwargs[key] = tuple(value) if isinstance(value, list) else value
    try:
        return from_dict(ExperimentConfig, kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def with_current_defaults(raw: Mapping[str, Any], sets: Iterable[str | tuple[str, Any]] = ()
                          ) -> ExperimentConfig | None:
    """A config stored by an earlier version, with the keys added since at their defaults (so a run or
    search started before a new key existed can continue); ``None`` if it no longer parses."""
    try:
        return build_config(raw, sets)
    except (ConfigError, KeyError, TypeError, ValueError):
        return None


def _reject_moved_and_derived(raw: Mapping[str, Any], where: str) -> None:
    for old, new in MOVED.items():
        section, _, key = old.partition(".")
        if isinstance(raw.get(section), dict) and key in raw[section]:
            raise ConfigError(f"{where}: {old} is no longer a key; use {new}")
    for section in ("pretrain", "train"):
        for key, source in DERIVED.items():
            if isinstance(raw.get(section), dict) and key in raw[section]:
                raise ConfigError(f"{where}: {section}.{key} is not a key: every training loop takes it "
                                  f"from {source!r}; set that instead")


def read_yaml_mapping(path: str | Path, what: str = "config") -> dict[str, Any]:
    """The mapping one YAML file holds (``extends`` not resolved).

    Raises:
        ConfigError: Invalid YAML (with its line), an unreadable file (``what`` names it in the
            message) or a top level that is not a mapping.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: invalid YAML ({exc})") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what} ({exc.strerror})") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return raw


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping a config file describes, with ``extends`` resolved (parents first).

    Raises:
        ConfigError: Invalid YAML (with its line), a top level that is not a mapping, or an
            ``extends`` chain that loops.
    """
    path = Path(path)
    chain: list[Path] = []
    merged: dict[str, Any] = {}
    while True:
        resolved = path.resolve()
        if resolved in chain:
            raise ConfigError(f"{path}: 'extends' loops ({' -> '.join(map(str, chain + [resolved]))})")
        chain.append(resolved)
        merged = _merge(read_yaml_mapping(path), merged)
        parent = merged.pop("extends", None)
        if parent is None:
            return merged
        if not isinstance(parent, str):
            raise ConfigError(f"{path}: extends must be a file name, got {parent!r}")
        path = path.parent / parent


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``: mappings merge key by key, everything else is replaced."""
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(path: str | Path, sets: Iterable[str | tuple[str, Any]] = ()) -> ExperimentConfig:
    """Read a YAML config file (``extends`` resolved) and apply the scale section and ``sets``."""
    return build_config(read_config_file(path), sets, where=str(path))
