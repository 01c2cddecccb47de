"""The whole experiment from one config: :func:`run_experiment` reads like the book's table of contents.

1. collect + 2. preprocess   :func:`collect`             (``xdtutor.data.load_dataset``, item text -> PLM)
3. pretrain                  :func:`pretrain`            (``xdtutor.pretrain_source``)
4. extract                   :func:`extract`             (``xdtutor.extract_knowledge``)
5. transfer + 6. fine-tune   :func:`transfer`            (``xdtutor.transfer.*``; ``xdtutor.finetune_target``)
7. validate                  early stopping inside ``xdtutor.train.fit`` on the target's validation NDCG@10
8. evaluate                  :func:`evaluate_all`        (``xdtutor.evaluate``: full ranking, per user)

Every run also trains the target-only baselines (Popularity, ID-SASRec, text-based target-only)
on the same split, so each transfer number has its reference in the same table.

Configs are frozen dataclasses per stage; YAML only exists at the edge (:func:`load_config`).
``scale: ci | full`` selects the ``ci:`` or ``full:`` section of the YAML file, a mapping of
dotted keys to values applied on top of the file (``ci`` = a small user subsample and few epochs so
that a config runs in minutes on 2 CPUs). ``--set key=value`` overrides (dotted keys) win over
both. Unknown keys are errors that name the key.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import yaml

from .config import ConfigError, check, from_dict, to_dict
from .data import CrossDomainDataset, Domain, EvalSet, SplitDomain
from .encoders import EncoderConfig, encode_texts
from .pretrain_source import ModelConfig
from .train import TrainConfig
from .transfer.base import TransferConfig, TransferResult
from .utils import atomic_write, seed_everything, select_device

ALL_STRATEGIES = ("zero_shot", "full_finetune", "l2sp", "frozen_adaptor", "lora", "fusion", "mapping")
ALL_BASELINES = ("popularity", "sasrec", "text")
SCALES = ("ci", "full")


# ============================================================================ configuration

@dataclass(frozen=True)
class DataConfig:
    """Which data (stages 1–2).

    Attributes:
        dataset: Registered dataset of the target (``"food_kitchen"``, ``"scientific"``).
        target: Target domain inside ``dataset`` (``None`` = its default, e.g. Food).
        sources: Source domains by name (``xdtutor.data.load_domain``); empty = the dataset's own
            sources (Kitchen for ``food_kitchen``).
        subsample: Fraction of the dataset's users kept (seeded by ``seed``).
        source_subsample: Further fraction of *source* users kept for pretraining.
        seed: Seed of the subsamples.
        data_dir: Data root; ``None`` = ``XDTUTOR_DATA_DIR`` / download cache.
        compact: Drop catalogue items that no kept user interacted with (CI scale: fewer texts to
            encode). It shrinks the ranking catalogue, so the protocol's dataset line says so and
            the numbers are not comparable with full-catalogue ones.
    """

    dataset: str = "food_kitchen"
    target: str | None = None
    sources: tuple[str, ...] = ()
    subsample: float = 1.0
    source_subsample: float = 1.0
    seed: int = 0
    data_dir: str | None = None
    compact: bool = False

    def __post_init__(self) -> None:
        check(0.0 < self.subsample <= 1.0, f"data.subsample must be in (0, 1], got {self.subsample}")
        check(0.0 < self.source_subsample <= 1.0,
              f"data.source_subsample must be in (0, 1], got {self.source_subsample}")


@dataclass(frozen=True)
class ColdStartConfig:
    """The feature-scarcity curve: target training users kept ∈ ``fractions``.

    Attributes:
        fractions: Fractions of target training users (by user, seeded); empty = skip.
        strategy: The transfer strategy drawn on the curve.
        baselines: Target-only baselines drawn next to it.
    """

    fractions: tuple[float, ...] = ()
    strategy: str = "frozen_adaptor"
    baselines: tuple[str, ...] = ("text", "sasrec")

    def __post_init__(self) -> None:
        check(all(0.0 < f <= 1.0 for f in self.fractions), f"cold_start.fractions must be in (0, 1], got {self.fractions}")
        check(self.strategy in ALL_STRATEGIES and self.strategy != "mapping",
              f"cold_start.strategy must be a trained strategy, got {self.strategy!r}")
        check(set(self.baselines) <= set(ALL_BASELINES), f"cold_start.baselines must be in {ALL_BASELINES}")


@dataclass(frozen=True)
class ExperimentConfig:
    """One experiment. Built from YAML by :func:`load_config`.

    Attributes:
        name: Experiment name (output file names).
        scale: ``"ci"`` or ``"full"`` (which override section was applied).
        seeds: Seeds of pretraining + target training (mean ± std over them).
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` … (overrides the train sections' device).
            ``pretrain.max_len`` and ``train.max_len`` follow ``model.max_len``, as does the
            protocol's history length.
        data, encoder, model, pretrain, train, transfer, cold_start: The stages' configs;
            ``transfer.train`` is taken from ``train``.
        strategies: Transfer strategies to run (subset of :data:`ALL_STRATEGIES`).
        baselines: Target-only baselines (subset of :data:`ALL_BASELINES`).
        similarity_sample: Items per catalogue for the domain-similarity diagnostic.
        source_eval_users: Source users ranked for early stopping of pretraining (``None`` = all).
            Source NDCG@10 is small (Kitchen: Popularity .0043 on 20,000 users, scripts/source_popularity.py),
            so 2,000 users give only a handful of hits per epoch and early stopping follows noise;
            full-scale configs use more.
        checkpoint_dir: Keep resumable source-pretraining checkpoints here, in a folder named by a
            hash of everything the source model depends on (data, encoder, model, pretrain, seed), so
            a second run with the same settings (e.g. only the cold-start curve) reuses the source model.
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
    cold_start: ColdStartConfig = field(default_factory=ColdStartConfig)
    strategies: tuple[str, ...] = ALL_STRATEGIES
    baselines: tuple[str, ...] = ALL_BASELINES
    similarity_sample: int = 2000
    source_eval_users: int | None = 2000
    checkpoint_dir: str | None = None

    def __post_init__(self) -> None:
        check(self.scale in SCALES, f"scale must be one of {SCALES}, got {self.scale!r}")
        check(len(self.seeds) >= 1, "seeds must list at least one seed")
        unknown = [s for s in self.strategies if s not in ALL_STRATEGIES]
        check(not unknown, f"strategies: unknown {unknown}; choose from {ALL_STRATEGIES}")
        unknown = [b for b in self.baselines if b not in ALL_BASELINES]
        check(not unknown, f"baselines: unknown {unknown}; choose from {ALL_BASELINES}")
        check(self.similarity_sample > 0, "similarity_sample must be positive")
        check(self.source_eval_users is None or self.source_eval_users > 0,
              f"source_eval_users must be positive or null, got {self.source_eval_users}")

    def to_dict(self) -> dict:
        d = to_dict(self)
        d["transfer"].pop("train", None)
        return d


SECTIONS = {"data": DataConfig, "encoder": EncoderConfig, "model": ModelConfig, "pretrain": TrainConfig,
            "train": TrainConfig, "transfer": TransferConfig, "cold_start": ColdStartConfig}


def _set_dotted(raw: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = raw
    for p in parts[:-1]:
        if node.get(p) is None:
            node[p] = {}
        if not isinstance(node[p], dict):
            raise ConfigError(f"cannot set {key!r}: {p!r} is not a section")
        node = node[p]
    node[parts[-1]] = value


def _parse_value(text: Any) -> Any:
    """``--set`` values are YAML scalars/lists: ``0.1`` -> float, ``[0, 1]`` -> list, ``null`` -> None."""
    if not isinstance(text, str):
        return text
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _overrides(sets: Iterable[str | tuple[str, Any]]) -> list[tuple[str, Any]]:
    out = []
    for s in sets:
        if isinstance(s, str):
            if "=" not in s:
                raise ConfigError(f"--set expects key=value, got {s!r}")
            k, v = s.split("=", 1)
        else:
            k, v = s
        out.append((k.strip(), _parse_value(v)))
    return out


def build_config(raw: Mapping[str, Any], sets: Iterable[str | tuple[str, Any]] = (), *,
                 where: str = "config") -> ExperimentConfig:
    """Turn a plain mapping (parsed YAML) + overrides into an :class:`ExperimentConfig`.

    Order: file values, then the ``ci:``/``full:`` section chosen by ``scale``, then ``sets``.

    Raises:
        ConfigError: Unknown keys (named, e.g. ``train.epoch``) or invalid values.
    """
    raw = json.loads(json.dumps(dict(raw)))  # deep copy of plain data
    overrides = _overrides(sets)
    for k, v in overrides:  # first pass: `--set scale=full` must choose the section
        if k == "scale":
            raw["scale"] = v
    scale_sections = {s: raw.pop(s, None) or {} for s in SCALES}
    scale = raw.get("scale", "ci")
    if scale not in SCALES:
        raise ConfigError(f"{where}: scale must be one of {SCALES}, got {scale!r}")
    for section in scale_sections.values():
        if not isinstance(section, dict):
            raise ConfigError(f"{where}: the ci:/full: sections must map dotted keys to values")
    for k, v in list(scale_sections[scale].items()) + overrides:
        _set_dotted(raw, k, v)
    if isinstance(raw.get("transfer"), dict) and "train" in raw["transfer"]:
        raise ConfigError(f"{where}: transfer.train is not a key; the target training loop is set under 'train'")
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        if key in SECTIONS:
            if value is not None and not isinstance(value, dict):
                raise ConfigError(f"{where}: section {key!r} must be a mapping, got {type(value).__name__}")
            kwargs[key] = from_dict(SECTIONS[key], value, where=f"{key}.")
        else:
            kwargs[key] = tuple(value) if isinstance(value, list) else value
    config = from_dict(ExperimentConfig, kwargs)
    # the target loop of every strategy is `train`; device and history length follow the experiment
    L = config.model.max_len
    train = dataclasses.replace(config.train, device=config.device, max_len=L)
    return dataclasses.replace(config, train=train,
                               pretrain=dataclasses.replace(config.pretrain, device=config.device, max_len=L),
                               transfer=dataclasses.replace(config.transfer, train=train))


def load_config(path: str | Path, sets: Iterable[str | tuple[str, Any]] = ()) -> ExperimentConfig:
    """Read a YAML config file and apply the scale section and ``sets`` (see :func:`build_config`)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: invalid YAML ({exc})") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return build_config(raw, sets, where=str(path))


# ============================================================================ results

@dataclass(eq=False)
class Results:
    """Everything a run produced (``to_dict`` is what ``results.json`` holds).

    Attributes:
        config: The config that ran.
        rows: One dict per (method, seed): ``method``, ``kind`` (baseline | transfer), ``seed``,
            ``metrics`` (test, e.g. ``{"ndcg@10": …}``), ``by_user_type`` (overlap / target_only),
            ``valid_ndcg@10``, ``total_params``, ``trainable_params``, ``train_seconds``, ``best_epoch``.
        per_user: Test metrics per user (method, seed, user, user_type, rank, metric columns).
        histories: ``"method/seed"`` -> training :class:`~xdtutor.train.History`.
        cold_users: Rows like ``rows`` for users with hidden target history (mapping vs popularity).
        cold_start: Rows ``{fraction, method, seed, metrics}`` of the feature-scarcity curve.
        diagnostics: Domain similarity of the catalogues' text embeddings.
        significance: Paired tests of each transfer method against the best baseline.
        source_runs: Source pretraining per seed (source validation NDCG@10, time).
        info: Protocol, dataset statistics, device, wall time, versions, date.
    """

    config: ExperimentConfig
    rows: list[dict] = field(default_factory=list)
    per_user: pd.DataFrame = field(default_factory=pd.DataFrame)
    histories: dict[str, Any] = field(default_factory=dict)
    cold_users: list[dict] = field(default_factory=list)
    cold_start: list[dict] = field(default_factory=list)
    diagnostics: dict = field(default_factory=dict)
    significance: list[dict] = field(default_factory=list)
    source_runs: list[dict] = field(default_factory=list)
    info: dict = field(default_factory=dict)

    def summary(self, metrics: Sequence[str] = ("recall@10", "ndcg@10", "recall@50", "ndcg@50")) -> pd.DataFrame:
        """Mean ± std over seeds per method (columns ``<metric>`` and ``<metric>_std``)."""
        if not self.rows:
            return pd.DataFrame()
        recs = []
        for r in self.rows:
            rec = {"method": r["method"], "kind": r["kind"], "seed": r["seed"],
                   "trainable_params": r["trainable_params"], "total_params": r["total_params"],
                   "train_seconds": r["train_seconds"]}
            rec.update({m: r["metrics"].get(m, np.nan) for m in metrics})
            for group, vals in r.get("by_user_type", {}).items():
                rec[f"ndcg@10[{group}]"] = vals.get("ndcg@10", np.nan)
            recs.append(rec)
        df = pd.DataFrame(recs)
        value_cols = [c for c in df.columns if c not in ("method", "kind", "seed")]
        mean = df.groupby(["method", "kind"], sort=False)[value_cols].mean()
        std = df.groupby(["method", "kind"], sort=False)[list(metrics)].std(ddof=0).add_suffix("_std")
        out = mean.join(std).reset_index()
        out["seeds"] = df.groupby(["method", "kind"], sort=False)["seed"].count().to_numpy()
        return out

    def paired_tests(self, vs: str | None = None) -> list[dict]:
        """Paired t-tests (per-user NDCG@10, mean over seeds) of every transfer method against the
        best baseline, or against baseline ``vs`` (e.g. ``"text"``: the same architecture without
        the source)."""
        from .protocol import Protocol

        proto = self.info.get("protocol")
        if not proto:
            raise ValueError("these results have no info['protocol']; cannot pair users")
        protocol = Protocol(**{k: tuple(v) if isinstance(v, list) else v for k, v in proto.items()})
        return _significance(self.per_user, {r["method"]: r["kind"] for r in self.rows}, protocol, vs=vs)

    def best(self, kind: str, metric: str = "ndcg@10") -> tuple[str, float] | None:
        """``(method, mean metric)`` of the best method of ``kind`` (baseline | transfer)."""
        s = self.summary()
        if s.empty:
            return None
        s = s[s["kind"] == kind]
        if s.empty:
            return None
        row = s.loc[s[metric].idxmax()]
        return str(row["method"]), float(row[metric])

    def gain(self, metric: str = "ndcg@10") -> dict | None:
        """Relative gain of the best transfer method over the best target-only baseline."""
        bt, bb = self.best("transfer", metric), self.best("baseline", metric)
        if bt is None or bb is None or bb[1] == 0:
            return None
        return {"metric": metric, "best_transfer": bt[0], "transfer": bt[1], "best_baseline": bb[0],
                "baseline": bb[1], "relative_gain": bt[1] / bb[1] - 1.0}

    def table(self) -> str:
        """The results table with the protocol line (what ``xdtutor run`` prints)."""
        s = self.summary()
        lines = [self.info.get("protocol_line", ""), f"seeds: {list(self.config.seeds)}; scale: {self.config.scale}; "
                 f"device: {self.info.get('device', '?')}"]
        header = (f"{'method':<16}{'kind':<10}{'R@10':>16}{'N@10':>16}{'N@10 ovl':>10}{'N@10 tgt':>10}"
                  f"{'trainable':>12}{'total':>11}{'train s':>9}")
        lines += [header, "-" * len(header)]
        for _, r in s.iterrows():
            pm = lambda m: f"{r[m]:.4f}±{r[m + '_std']:.4f}"  # noqa: E731
            lines.append(f"{r['method']:<16}{r['kind']:<10}{pm('recall@10'):>16}{pm('ndcg@10'):>16}"
                         f"{r.get('ndcg@10[overlap]', np.nan):>10.4f}{r.get('ndcg@10[target_only]', np.nan):>10.4f}"
                         f"{int(r['trainable_params']):>12,}{int(r['total_params']):>11,}{r['train_seconds']:>9.1f}")
        g = self.gain()
        if g:
            lines.append(f"best transfer {g['best_transfer']} vs best baseline {g['best_baseline']}: "
                         f"NDCG@10 {g['transfer']:.4f} vs {g['baseline']:.4f} ({g['relative_gain']:+.1%})")
        if self.cold_users:
            lines.append("cold users (target history hidden): " + ", ".join(
                f"{r['method']} N@10={r['metrics']['ndcg@10']:.4f}" for r in self.cold_users))
        if self.cold_start:
            cs = pd.DataFrame([{"fraction": r["fraction"], "method": r["method"], "ndcg@10": r["metrics"]["ndcg@10"]}
                               for r in self.cold_start]).groupby(["fraction", "method"])["ndcg@10"].mean().unstack()
            lines.append("cold start (NDCG@10 by fraction of target training users):\n" + cs.to_string(float_format="%.4f"))
        if self.diagnostics:
            lines.append("domain similarity: " + "; ".join(
                f"{k}: " + ", ".join(f"{m}={v:.3f}" for m, v in d.items()) for k, d in self.diagnostics.items()
                if k != "matrix"))
        return "\n".join(x for x in lines if x is not None)

    def to_dict(self) -> dict:
        s = self.summary()
        return {
            "name": self.config.name,
            "config": self.config.to_dict(),
            **self.info,
            "methods": {r["method"]: {"kind": r["kind"], "seeds": int(r["seeds"]),
                                      "metrics": {m: float(r[m]) for m in ("recall@10", "ndcg@10", "recall@50", "ndcg@50")},
                                      "std": {m: float(r[m + "_std"]) for m in ("recall@10", "ndcg@10", "recall@50", "ndcg@50")},
                                      "trainable_params": int(r["trainable_params"]),
                                      "total_params": int(r["total_params"]),
                                      "train_seconds": float(r["train_seconds"])}
                        for _, r in s.iterrows()} if not s.empty else {},
            "runs": self.rows,
            "source_pretraining": self.source_runs,
            "gain": self.gain(),
            "significance": self.significance,
            "cold_users": self.cold_users,
            "cold_start": self.cold_start,
            "diagnostics": self.diagnostics,
            "histories": {k: (h.to_dict() if hasattr(h, "to_dict") else h) for k, h in self.histories.items()},
        }

    @classmethod
    def load(cls, folder: str | Path) -> "Results":
        """Read a folder written by :meth:`save` (``results.json`` + ``per_user.csv``)."""
        from .train import History

        folder = Path(folder)
        path = folder / "results.json"
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no results.json (was the run saved with Results.save?)") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: line {exc.lineno}: not valid JSON ({exc.msg})") from None
        known = {"name", "config", "methods", "runs", "source_pretraining", "gain", "significance", "cold_users",
                 "cold_start", "diagnostics", "histories"}
        missing = sorted(k for k in known if k not in d)
        if missing:
            raise ConfigError(f"{path}: missing field(s) {missing}")
        per_user_path = folder / "per_user.csv"
        per_user = pd.read_csv(per_user_path, dtype={"user": str}) \
            if per_user_path.is_file() and per_user_path.stat().st_size > 1 else pd.DataFrame()
        return cls(config=build_config(d["config"], where=str(path)), rows=d["runs"], per_user=per_user,
                   histories={k: History.from_dict(h) for k, h in d["histories"].items()},
                   cold_users=d["cold_users"], cold_start=d["cold_start"], diagnostics=d["diagnostics"],
                   significance=d["significance"], source_runs=d["source_pretraining"],
                   info={k: v for k, v in d.items() if k not in known})

    def save(self, out: str | Path) -> Path:
        """Write ``results.json``, ``per_user.csv`` and the figures (PNG) into ``out``."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        with atomic_write(out / "results.json", "w") as fh:
            json.dump(_jsonable(self.to_dict()), fh, indent=1)
        with atomic_write(out / "per_user.csv", "w") as fh:
            self.per_user.to_csv(fh, index=False)
        save_figures(self, out)
        return out


def combine_results(parts: Sequence[Results]) -> Results:
    """One :class:`Results` from runs of the same experiment with different seeds.

    Lets the seeds of a full-scale experiment run as separate processes (one per core or GPU) and
    still give one table with mean ± std and one significance test over all seeds. ``info`` gets
    ``wall_seconds`` = the longest part (the parts ran side by side), ``compute_seconds`` = their
    sum, and ``parts`` = each part's seeds, device, date and wall time.

    Raises:
        ValueError: If the parts differ in anything but their seeds (the dotted config keys are
            named), ran on different device kinds or library versions, or share a seed.
    """
    if not parts:
        raise ValueError("combine_results needs at least one Results")
    first = parts[0]
    ref = flatten({k: v for k, v in first.config.to_dict().items() if k != "seeds"})
    seen: list[int] = []
    for i, r in enumerate(parts):
        cfg = flatten({k: v for k, v in r.config.to_dict().items() if k != "seeds"})
        diff = sorted(k for k in set(ref) | set(cfg) if ref.get(k) != cfg.get(k))
        if diff:
            raise ValueError(f"part {i} ({r.config.name}) differs from part 0 in {diff}; only seeds may differ")
        for key in ("device_name", "versions"):
            if r.info.get(key) != first.info.get(key):
                raise ValueError(f"part {i} ran with {key} {r.info.get(key)!r}, part 0 with {first.info.get(key)!r}; "
                                 "a table must not mix them")
        dup = sorted(set(seen) & set(r.config.seeds))
        if dup:
            raise ValueError(f"part {i} repeats seed(s) {dup}")
        seen += list(r.config.seeds)
    out = Results(dataclasses.replace(first.config, seeds=tuple(seen)))
    for r in parts:
        out.rows += r.rows
        out.histories.update(r.histories)
        out.cold_users += r.cold_users
        out.cold_start += r.cold_start
        out.source_runs += r.source_runs
    frames = [r.per_user.astype({"user": str}) for r in parts if not r.per_user.empty]  # loaded == in memory
    out.per_user = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    out.diagnostics = first.diagnostics
    walls = [float(r.info.get("wall_seconds", 0.0)) for r in parts]
    out.info = {**first.info, "seeds": seen, "wall_seconds": max(walls), "compute_seconds": sum(walls),
                "parts": [{"seeds": list(r.config.seeds), "device": r.info.get("device"),
                           "date": r.info.get("date"), "wall_seconds": w} for r, w in zip(parts, walls)],
                "date": max(str(r.info.get("date", "")) for r in parts)}
    out.significance = out.paired_tests()
    return out


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 1}}`` -> ``{"train.lr": 1}`` (lists stay values)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating, float)):
        return None if not np.isfinite(x) else float(x)
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    return x


def save_figures(results: Results, out: Path) -> list[Path]:
    """Metric bars, training curves, cold-start curve and similarity heatmap as PNG files."""
    # No matplotlib.use(...): selecting a backend here would silently switch off inline figures in
    # the notebook that called us. Headless runs set MPLBACKEND=Agg (the Makefile does).
    import matplotlib.pyplot as plt

    from . import plots

    written = []

    def save(fig, name):
        fig.tight_layout()
        fig.savefig(out / name, dpi=120)
        plt.close(fig)
        written.append(out / name)

    summary = results.summary()
    if not summary.empty:
        fig, ax = plt.subplots(figsize=(8, 4))
        plots.metric_bars(summary, "ndcg@10", ax=ax, title=f"{results.config.name}: test NDCG@10")
        save(fig, "metrics.png")
    if results.histories:
        fig, ax = plt.subplots(figsize=(8, 4))
        plots.training_curves({k: h for k, h in results.histories.items()}, ax=ax)
        save(fig, "training_curves.png")
    if results.cold_start:
        fig, ax = plt.subplots(figsize=(6, 4))
        plots.cold_start_curve(results.cold_start, "ndcg@10", ax=ax)
        save(fig, "cold_start.png")
    sim = results.diagnostics.get("matrix")
    if sim:
        fig, ax = plt.subplots(figsize=(4.5, 4))
        plots.similarity_heatmap(sim["names"], np.asarray(sim["values"]), ax=ax, title=sim["metric"])
        save(fig, "similarity.png")
    return written


# ============================================================================ the stages

@dataclass(eq=False)
class Prepared:
    """Output of stages 1–2: the data and the item-text embeddings of every catalogue."""

    dataset: CrossDomainDataset
    sources: tuple[Domain, ...]
    source_emb: list[np.ndarray]
    target_emb: np.ndarray
    encoder_id: str


def _subsample_domain(domain: Domain, fraction: float, seed: int) -> Domain:
    if fraction >= 1.0:
        return domain
    from .data.build import sample_users

    keep = sample_users(domain.sequences, fraction, seed)
    return Domain(domain.name, domain.items, {u: s for u, s in domain.sequences.items() if u in keep})


def _remap_eval(e: EvalSet, m: np.ndarray) -> EvalSet:
    return EvalSet(list(e.users), [m[h] for h in e.histories], m[np.asarray(e.targets, dtype=np.int64)])


def _compact_domain(domain: Domain, used: np.ndarray) -> tuple[Domain, np.ndarray]:
    old_to_new = np.full(domain.n_items, -1, dtype=np.int64)
    old_to_new[used] = np.arange(int(used.sum()), dtype=np.int64)
    items = domain.items[used].reset_index(drop=True).copy()
    items["item"] = np.arange(len(items), dtype=np.int64)
    return Domain(domain.name, items, {u: old_to_new[s] for u, s in domain.sequences.items()}), old_to_new


def compact_catalogues(dataset: CrossDomainDataset, sources: Sequence[Domain]
                       ) -> tuple[CrossDomainDataset, tuple[Domain, ...]]:
    """Keep only the items some kept user interacted with, in every catalogue (ids renumbered).

    The target keeps every item of its sequences, training data, histories and targets; the first
    source also keeps the items of the overlapping users' source histories.
    """
    t = dataset.target
    used = np.zeros(t.n_items, dtype=bool)
    for seqs in (t.domain.sequences.values(), t.train.values(), t.valid.histories, t.test.histories):
        for s in seqs:
            used[np.asarray(s, dtype=np.int64)] = True
    used[np.asarray(t.valid.targets, dtype=np.int64)] = True
    used[np.asarray(t.test.targets, dtype=np.int64)] = True
    domain, m = _compact_domain(t.domain, used)
    protocol = t.protocol.with_(dataset=t.protocol.dataset + "; catalogue compacted to the sampled users' items")
    target = SplitDomain(domain, {u: m[s] for u, s in t.train.items()}, _remap_eval(t.valid, m),
                         _remap_eval(t.test, m), protocol)
    new_sources, positions = [], dict(dataset.source_positions)
    for k, src in enumerate(sources):
        used = np.zeros(src.n_items, dtype=bool)
        for s in src.sequences.values():
            used[s] = True
        if k == 0:
            for items, _ in positions.values():
                used[items] = True
        dom, m = _compact_domain(src, used)
        new_sources.append(dom)
        if k == 0:
            positions = {u: (m[items], before) for u, (items, before) in positions.items()}
    ds = CrossDomainDataset(dataset.name, tuple(new_sources) if dataset.sources else (), target,
                            dataset.overlap, positions)
    return ds, tuple(new_sources)


def collect(config: ExperimentConfig, *, dataset: CrossDomainDataset | None = None,
            text_emb: Mapping[str, np.ndarray] | None = None) -> Prepared:
    """Stages 1–2: load and split the data, embed every catalogue's item text.

    Args:
        config: The experiment config.
        dataset: Use this dataset instead of loading ``config.data`` (tests, notebooks).
        text_emb: Precomputed embeddings by domain name (skips the language model).
    """
    from .data import load_dataset, load_domain

    d = config.data
    if dataset is None:
        dataset = load_dataset(d.dataset, data_dir=d.data_dir, subsample=d.subsample, seed=d.seed, target=d.target)
    if d.sources:
        sources = tuple(load_domain(name, data_dir=d.data_dir, subsample=d.subsample, seed=d.seed) for name in d.sources)
    else:
        sources = tuple(dataset.sources)
    sources = tuple(_subsample_domain(s, d.source_subsample, d.seed) for s in sources)
    if not sources:
        raise ConfigError(f"data: {d.dataset!r} has no source domain; list some under data.sources")
    if d.compact:
        dataset, sources = compact_catalogues(dataset, sources)
    t = dataset.target
    if t.protocol.max_len != config.model.max_len:  # the protocol states the history length really used
        t = SplitDomain(t.domain, t.train, t.valid, t.test, t.protocol.with_(max_len=config.model.max_len))
        dataset = CrossDomainDataset(dataset.name, dataset.sources, t, dataset.overlap, dataset.source_positions)

    def embed(domain: Domain) -> np.ndarray:
        if text_emb is not None and domain.name in text_emb:
            return np.asarray(text_emb[domain.name], dtype=np.float32)
        return encode_texts(domain.texts, config.encoder)

    from .encoders import _model_id

    encoder_id = _model_id(config.encoder.model) if text_emb is None else "given"
    return Prepared(dataset, sources, [embed(s) for s in sources], embed(dataset.target.domain), encoder_id)


def pretrain(config: ExperimentConfig, prepared: Prepared, seed: int):
    """Stage 3: the source model (:func:`xdtutor.pretrain_source.pretrain_source`)."""
    import hashlib

    from .pretrain_source import pretrain_source

    pre = dataclasses.replace(config.pretrain, seed=seed)
    ckpt = None
    if config.checkpoint_dir:
        key = json.dumps({"data": to_dict(config.data), "encoder": to_dict(config.encoder), "model": to_dict(config.model),
                          "pretrain": to_dict(dataclasses.replace(pre, progress=False, device="any")),
                          "source_items": [int(s.n_items) for s in prepared.sources],
                          "eval_users": config.source_eval_users}, sort_keys=True)
        ckpt = Path(config.checkpoint_dir) / f"source-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    return pretrain_source(prepared.sources, prepared.source_emb, config.model, pre,
                           encoder_config=to_dict(config.encoder), encoder_id=prepared.encoder_id,
                           max_eval_users=config.source_eval_users, checkpoint_dir=ckpt)


def extract(config: ExperimentConfig, prepared: Prepared, source_model):
    """Stage 4: θ_s and source representations (:func:`xdtutor.extract_knowledge.extract_knowledge`)."""
    from .extract_knowledge import extract_knowledge

    return extract_knowledge(source_model, prepared.dataset, device=config.device)


def baselines(config: ExperimentConfig, prepared: Prepared, seed: int, target: SplitDomain | None = None,
              names: Sequence[str] | None = None) -> list[TransferResult]:
    """The target-only references, trained on the same split (:mod:`xdtutor.finetune_target`)."""
    from .finetune_target import train_baseline

    target = target or prepared.dataset.target
    out = []
    for name in names if names is not None else config.baselines:
        model, history, total, trainable = train_baseline(
            name, target, dataclasses.replace(config.train, seed=seed), text_emb=prepared.target_emb,
            model_kwargs=config.model.kwargs())
        out.append(TransferResult(name, model, history, total, trainable))
    return out


def transfer(config: ExperimentConfig, prepared: Prepared, knowledge, seed: int, target: SplitDomain | None = None,
             names: Sequence[str] | None = None) -> list[TransferResult]:
    """Stages 5–7: every strategy of the menu, each fine-tuned (and early-stopped) on the target."""
    from .transfer import get_strategy

    target = target or prepared.dataset.target
    tconf = dataclasses.replace(config.transfer, train=dataclasses.replace(config.train, seed=seed))
    out: list[TransferResult] = []
    for name in names if names is not None else config.strategies:
        if name == "mapping":
            continue  # needs a trained base model and scores cold users: see cold_user_mapping
        out.append(get_strategy(name).apply(knowledge, target, tconf, device=config.device,
                                            text_emb=prepared.target_emb))
    return out


def evaluate_all(results: Sequence[TransferResult], prepared: Prepared, config: ExperimentConfig) -> list[tuple]:
    """Stage 8: full-ranking test metrics of every model, overall and by user type."""
    from .evaluate import evaluate

    target = prepared.dataset.target
    out = []
    for r in results:
        ev = evaluate(r.model, target.test, target.protocol, device=config.device)
        out.append((r, ev))
    return out


def cold_user_mapping(config: ExperimentConfig, prepared: Prepared, knowledge, base: TransferResult, seed: int,
                      popularity=None) -> list[tuple[str, Any]]:
    """EMCDR for cold users: their target history hidden, scored from mapped source representations.

    Returns:
        ``[(method, EvalResult), …]`` for popularity and both mapping functions.
    """
    from .evaluate import evaluate
    from .transfer import mapping

    target = prepared.dataset.target
    out = []
    cold = None
    for kind in ("ridge", "mlp"):
        tconf = dataclasses.replace(config.transfer, mapping=kind,
                                    train=dataclasses.replace(config.train, seed=seed))
        res = mapping.apply(knowledge, target, tconf, base=base)
        cold = mapping.cold_eval_set(target, res.model)
        if len(cold) == 0:
            return []
        out.append((f"mapping[{kind}]<-{base.name}", mapping.evaluate_cold(res.model, cold, target.protocol),
                    res.trainable_params, res.total_params))
    if popularity is not None and cold is not None:
        out.insert(0, ("popularity", evaluate(popularity, cold, target.protocol), 0, 0))
    return out


def fraction_split(target: SplitDomain, fraction: float, seed: int) -> SplitDomain:
    """The target with only a seeded ``fraction`` of its training users (valid/test unchanged)."""
    if fraction >= 1.0:
        return target
    users = sorted(target.train)
    n = max(1, int(round(fraction * len(users))))
    keep = {users[i] for i in np.random.default_rng(seed).permutation(len(users))[:n]}
    return SplitDomain(target.domain, {u: s for u, s in target.train.items() if u in keep},
                       target.valid, target.test, target.protocol)


def diagnose(config: ExperimentConfig, prepared: Prepared) -> dict:
    """The negative-transfer diagnostic: similarity of the catalogues' text embeddings."""
    from .transfer.diagnostics import domain_similarity

    tname = prepared.dataset.target.domain.name
    out = {}
    embs = {s.name: e for s, e in zip(prepared.sources, prepared.source_emb)}
    embs[tname] = prepared.target_emb
    for s, e in zip(prepared.sources, prepared.source_emb):
        out[f"{s.name}->{tname}"] = domain_similarity(e, prepared.target_emb, sample=config.similarity_sample,
                                                      seed=config.data.seed)
    names = list(embs)
    values = [[1.0 if a == b else (domain_similarity(embs[b], embs[a], sample=config.similarity_sample,
                                                     seed=config.data.seed)["nn_cosine"]) for b in names]
              for a in names]
    out["matrix"] = {"metric": "nn_cosine (row: target, column: source)", "names": names, "values": values}
    return out


def _row(method: str, kind: str, seed: int, r: TransferResult, ev, overlap: frozenset) -> dict:
    pu = ev.per_user
    groups = {}
    is_ovl = pu["user"].isin(overlap)
    for g, mask in (("overlap", is_ovl), ("target_only", ~is_ovl)):
        if mask.any():
            groups[g] = {m: float(pu.loc[mask, m].mean()) for m in ("recall@10", "ndcg@10")}
            groups[g]["users"] = int(mask.sum())
    h = r.history
    return {"method": method, "kind": kind, "seed": seed, "metrics": dict(ev.metrics), "by_user_type": groups,
            "valid_ndcg@10": None if h is None else float(h.best_metric),
            "best_epoch": None if h is None else int(h.best_epoch),
            "stop_reason": None if h is None else h.stop_reason,
            "train_seconds": 0.0 if h is None else float(h.total_seconds),
            "total_params": int(r.total_params), "trainable_params": int(r.trainable_params),
            "users": ev.n_users}


def _significance(per_user: pd.DataFrame, kinds: Mapping[str, str], protocol, vs: str | None = None) -> list[dict]:
    """Paired t-test of each transfer method vs the best baseline (or baseline ``vs``), on per-user
    NDCG@10 averaged over seeds."""
    from .evaluate import EvalResult, paired_test

    if per_user.empty:
        return []
    avg = {}
    for method, group in per_user.groupby("method", sort=True):
        mean = group.groupby("user")["ndcg@10"].mean()                      # one value per user
        avg[method] = EvalResult({"ndcg@10": float(mean.mean())}, mean.rename("ndcg@10").reset_index(), protocol)
    base = [m for m in avg if kinds.get(m) == "baseline"]
    if not base:
        return []
    if vs is not None and vs not in base:
        raise KeyError(f"no baseline {vs!r} in these results (baselines: {base})")
    best = vs if vs is not None else max(base, key=lambda m: avg[m].metrics["ndcg@10"])
    out = []
    for m in avg:
        if kinds.get(m) != "transfer":
            continue
        t = paired_test(avg[m], avg[best], "ndcg@10")
        out.append({**t, "test": t["method"], "method": m, "vs": best})
    return out


def run_experiment(config: ExperimentConfig, *, dataset: CrossDomainDataset | None = None,
                   text_emb: Mapping[str, np.ndarray] | None = None, log=print) -> Results:
    """Run stages 1–8 for every seed and return the :class:`Results`.

    Args:
        config: The experiment (see :func:`load_config`).
        dataset / text_emb: Optional in-memory data and embeddings (tests, notebooks).
        log: Where progress lines go (``print`` by default; ``None`` = silent).
    """
    log = log or (lambda *a, **k: None)
    t_start = time.perf_counter()
    device = select_device(config.device)
    results = Results(config)

    # 1–2. collect + preprocess (+ item text -> language model)
    prepared = collect(config, dataset=dataset, text_emb=text_emb)
    target = prepared.dataset.target
    overlap = prepared.dataset.overlap
    log(f"[data] target {target.domain.name}: {target.n_items} items, {len(target.train)} train users, "
        f"{len(target.test)} test users ({sum(u in overlap for u in target.test.users)} overlapping); sources "
        + ", ".join(f"{s.name} ({s.n_items} items, {s.n_users} users)" for s in prepared.sources))
    results.diagnostics = diagnose(config, prepared)

    per_user = []
    for seed in config.seeds:
        seed_everything(seed)
        # 3. pretrain on the source(s); 4. extract the knowledge
        t0 = time.perf_counter()
        source_model = pretrain(config, prepared, seed)
        knowledge = extract(config, prepared, source_model)
        h = source_model.pretrain_history
        results.histories[f"source/{seed}"] = h
        results.source_runs.append({"sources": [d.name for d in prepared.sources], "seed": seed,
                             "valid_ndcg@10": float(h.best_metric), "best_epoch": int(h.best_epoch),
                             "train_seconds": float(h.total_seconds), "wall_seconds": time.perf_counter() - t0})
        log(f"[pretrain seed {seed}] source valid NDCG@10 {h.best_metric:.4f} (epoch {h.best_epoch}, "
            f"{h.total_seconds:.0f}s); {knowledge!r}")
        # baselines + 5–7. transfer and fine-tune (early stopping on the target's validation)
        trained = [(r, "baseline") for r in baselines(config, prepared, seed)]
        trained += [(r, "transfer") for r in transfer(config, prepared, knowledge, seed)]
        # 8. evaluate
        for (r, kind), (_, ev) in zip(trained, evaluate_all([r for r, _ in trained], prepared, config)):
            results.rows.append(_row(r.name, kind, seed, r, ev, overlap))
            if r.history is not None:
                results.histories[f"{r.name}/{seed}"] = r.history
            pu = ev.per_user.drop(columns=["ties", "target_in_history"], errors="ignore").copy()
            pu.insert(0, "seed", seed)
            pu.insert(0, "method", r.name)
            pu.insert(3, "user_type", np.where(pu["user"].isin(overlap), "overlap", "target_only"))
            per_user.append(pu)
            log(f"[{kind} seed {seed}] {r.name:<15} test N@10 {ev.metrics['ndcg@10']:.4f} "
                f"R@10 {ev.metrics['recall@10']:.4f}  trainable {r.trainable_params:,}/{r.total_params:,}")
        # EMCDR mapping on cold users (needs overlapping users with source history)
        if "mapping" in config.strategies and knowledge.user_keys:
            bases = [r for r, k in trained if k == "transfer" and r.history is not None] or \
                    [r for r, k in trained if k == "transfer"]
            if bases:
                best = max(bases, key=lambda r: r.history.best_metric if r.history is not None else -1)
                pop = next((r.model for r, _ in trained if r.name == "popularity"), None)
                for name, ev, trainable, total in cold_user_mapping(config, prepared, knowledge, best, seed, pop):
                    results.cold_users.append({"method": name, "seed": seed, "metrics": dict(ev.metrics),
                                               "users": ev.n_users, "trainable_params": int(trainable),
                                               "total_params": int(total)})
                    log(f"[cold users seed {seed}] {name:<28} N@10 {ev.metrics['ndcg@10']:.4f} ({ev.n_users} users)")
        # the feature-scarcity curve
        for fraction in config.cold_start.fractions:
            part = fraction_split(target, fraction, seed)
            runs = baselines(config, prepared, seed, part, config.cold_start.baselines)
            runs += transfer(config, prepared, knowledge, seed, part, [config.cold_start.strategy])
            for r, ev in evaluate_all(runs, prepared, config):
                results.cold_start.append({"fraction": fraction, "method": r.name, "seed": seed,
                                           "train_users": len(part.train), "metrics": dict(ev.metrics)})
                log(f"[cold start {fraction:.0%} seed {seed}] {r.name:<15} N@10 {ev.metrics['ndcg@10']:.4f}")

    results.per_user = pd.concat(per_user, ignore_index=True) if per_user else pd.DataFrame()
    from .data import dataset_stats

    try:
        stats = dataset_stats(prepared.dataset)
    except Exception as exc:  # statistics are informative only; never lose a run over them
        stats = {"error": f"{type(exc).__name__}: {exc}"}
    results.info = {
        "protocol": target.protocol.to_dict(), "protocol_line": target.protocol.describe(),
        "dataset_stats": stats, "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(), "seeds": list(config.seeds), "scale": config.scale,
        "encoder_id": prepared.encoder_id, "wall_seconds": time.perf_counter() - t_start,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "versions": {"torch": torch.__version__,
                                                                  "python": platform.python_version()},
    }
    results.significance = results.paired_tests()
    return results


def cli_run(config_path: str, sets: Sequence[str | tuple[str, str]] = (), out: str | None = None) -> int:
    """``xdtutor run CONFIG.yaml [--set k=v …] [--out DIR]``: run, print the table, write DIR.

    ``DIR`` defaults to ``runs/<name>-<scale>``.
    """
    config = load_config(config_path, sets)
    results = run_experiment(config)
    out_dir = Path(out) if out else Path("runs") / f"{config.name}-{config.scale}"
    results.save(out_dir)
    print(results.table())
    print(f"wrote {out_dir / 'results.json'}, {out_dir / 'per_user.csv'} and figures "
          f"(wall time {results.info['wall_seconds']:.0f} s)")
    return 0
