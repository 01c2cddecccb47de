"""The whole experiment from one config: :func:`run_experiment` reads like the book's table of contents.

1. collect + 2. preprocess   :func:`collect`      (``xdtutor.data``; item text -> PLM, ``xdtutor.encoders``)
3. pretrain on the source    :func:`pretrain`     (``xdtutor.pretrain_source``)
4. extract the knowledge     :func:`extract`      (``xdtutor.extract_knowledge``)
5. transfer                  :func:`transfer`     (``xdtutor.transfer``: θ_t's starting point from θ_s)
6. fine-tune on the target   :func:`finetune`     (``xdtutor.finetune_target``; early stopping = step 7)
7. validate                  :func:`validate`     (validation metrics of every final model)
8. evaluate                  :func:`evaluate`     (``xdtutor.evaluate``: full ranking, per user)

Every run also trains the target-only baselines (:mod:`xdtutor.baselines`) on the same split, so
each transfer number has its reference in the same table; the cold-user stage (EMCDR,
:mod:`xdtutor.cold_users`) and the cold-start curve run after the menu when the config asks.
Configs: :mod:`xdtutor.experiment`; results: :mod:`xdtutor.results`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import torch

from . import tracking
from .baselines import BASELINES, train_baseline
from .cold_users import (MappedColdStartRecommender, cold_eval_set, fit_mapping, select_split, source_reps,
                         split_cold_users)
from .config import ConfigError, to_dict
from .data import CrossDomainDataset, Domain, SplitDomain, dataset_stats, load_dataset, load_domain
from .data.compact import compact_catalogues, subsample_domain
from .data.preprocess import keep_train_users
from .data.views import joint_training, mixed_histories
from .diagnostics import diagnose
from .encoders import encode_texts, model_id, weights_record
from .evaluate import EvalResult
from .evaluate import evaluate as evaluate_model
from .experiment import NOT_RESULTS, TARGET_RANKING_KEYS, ExperimentConfig
from .extract_knowledge import Knowledge, extract_knowledge
from .finetune_target import TrainedModel, finetune_target
from .models import count_parameters
from .pretrain_source import pretrain_source
from .provenance import provenance
from .results import Results
from .run_folder import RunFolder
from .train import TrainConfig
from .transfer import USES_THETA, VIEWS, Transferred, get_strategy
from .utils import seed_everything, select_device, write_json

Log = Callable[..., None]
LOG = logging.getLogger("xdtutor")


def run_experiment(config: ExperimentConfig, *, dataset: CrossDomainDataset | None = None,
                   text_emb: Mapping[str, np.ndarray] | None = None, log: Log | None = LOG.info,
                   folder: RunFolder | None = None) -> Results:
    """Run stages 1–8 for every seed and return the :class:`~xdtutor.results.Results`.

    Args:
        config: The experiment (see :func:`xdtutor.experiment.load_config`).
        dataset / text_emb: Optional in-memory data and embeddings (tests, notebooks).
        log: Where progress lines go (the ``xdtutor`` logger at INFO by default; ``None`` = silent).
        folder: Keep every finished model and every training checkpoint there, and skip / resume
            what an earlier, interrupted call of the same run left (:class:`~xdtutor.run_folder.RunFolder`).
    """
    log = log or (lambda *a, **k: None)
    t_start = time.perf_counter()
    device = select_device(config.device)  # an unavailable device fails here, before any work
    results = Results(config)
    with tracking.tracker(config.tracking, folder and folder.path / "tensorboard"):  # checked before work too
        prepared = collect(config, dataset=dataset, text_emb=text_emb)               # 1–2
        for view in sorted({VIEWS[s] for s in config.strategies} - {"target"}):
            prepared.view(view)  # a dataset that cannot give a strategy its data fails now, not mid-run
        log(prepared.describe())
        results.diagnostics = diagnose({s.name: e for s, e in zip(prepared.sources, prepared.source_emb)},
                                       prepared.target.domain.name, prepared.target_emb,
                                       sample=config.similarity_sample, seed=config.data.seed)
        for seed in config.seeds:
            run_seed(config, prepared, seed, results, log, folder)                     # 3–8
    results.info = run_info(config, prepared, device, time.perf_counter() - t_start)
    results.comparisons = results.compare_all()
    return results


def run_seed(config: ExperimentConfig, prepared: Prepared, seed: int, results: Results, log: Log,
             folder: RunFolder | None = None) -> None:
    """Stages 3–8 for one seed, model by model, then the cold-user stage and the cold-start curve."""
    seed_everything(seed)
    knowledge = None
    if config.needs_source_model:
        t0 = time.perf_counter()
        with tracking.run(f"seed{seed}/source"):
            source_model = pretrain(config, prepared, seed, folder)                    # 3
        knowledge = extract(config, prepared, source_model)                           # 4
        h = source_model.pretrain_history
        results.histories[f"source/{seed}"] = h
        results.source_runs.append({"sources": [d.name for d in prepared.sources], "seed": seed,
                                    "valid_ndcg@10": float(h.best_metric), "best_epoch": int(h.best_epoch),
                                    "train_seconds": float(h.total_seconds),
                                    "wall_seconds": time.perf_counter() - t0})
        log(f"[pretrain seed {seed}] source valid NDCG@10 {h.best_metric:.4f} (epoch {h.best_epoch}, "
            f"{h.total_seconds:.0f}s); {knowledge!r}")
    for name in (*config.baselines, *config.strategies):                               # 5–8 per model
        key = f"seed{seed}/{name}"
        once(folder, key, results, lambda: train_and_evaluate(config, prepared, knowledge, name, seed, results,
                                                              log, folder and folder.model_dir(key)))
    if config.cold_users.mappings and knowledge is not None and knowledge.user_keys:
        key = f"seed{seed}/cold_users"
        once(folder, key, results, lambda: cold_users(config, prepared, knowledge, seed, results, log,
                                                      folder and folder.model_dir(key)))
    for fraction in config.cold_start.fractions:
        key = f"seed{seed}/curve-{fraction:g}"
        once(folder, key, results, lambda: cold_start_point(config, prepared, knowledge, seed, fraction, results,
                                                            log, folder and folder.model_dir(key)))


def once(folder: RunFolder | None, key: str, results: Results, produce: Callable[[], None]) -> None:
    """``produce()`` unless ``folder`` already holds ``key``'s results (then they are restored);
    what it adds to ``results`` is saved under ``key`` as soon as it is done."""
    done = folder.done(key) if folder is not None else None
    if done is not None:
        results.restore(*done)
        return
    mark = results.mark()
    with tracking.run(key):  # names its trainings in log lines and tracker curves
        produce()
    if folder is not None:
        folder.save(key, *results.since(mark))


def train_and_evaluate(config: ExperimentConfig, prepared: Prepared, knowledge: Knowledge | None, name: str,
                       seed: int, results: Results, log: Log, checkpoint_dir: Path | None = None) -> None:
    """One model: a baseline, or a strategy's transfer (5) and fine-tuning (6); then validate (7) and
    evaluate (8). Every model starts from the same random state, so a resumed run equals an
    uninterrupted one. The model trains with its own settings where the config has them
    (``per_method``)."""
    config = config.for_method(name)
    target, t = train_model(config, prepared, knowledge, name, seed, checkpoint_dir)
    valid, test = validate(config, target, t), evaluate(config, target, t)
    results.add(t, seed, test, valid, prepared.dataset.overlap)
    log(f"[{t.kind} seed {seed}] {t.name:<15} valid N@10 {valid.metrics['ndcg@10']:.4f}  "
        f"test N@10 {test.metrics['ndcg@10']:.4f} R@10 {test.metrics['recall@10']:.4f}  "
        f"trainable {t.trainable_params:,}/{t.total_params:,}")


def train_model(config: ExperimentConfig, prepared: Prepared, knowledge: Knowledge | None, name: str, seed: int,
                checkpoint_dir: Path | None = None) -> tuple[SplitDomain, TrainedModel]:
    """Train one model from the same random state: a baseline on the target split, or a strategy's
    transfer (5) and fine-tuning (6) on its view of the data. Returns the split it trained on and the model."""
    seed_everything(seed)
    if name in BASELINES:
        return prepared.target, train_baseline(name, prepared.target, config.train_config(seed),
                                               model_config=config.model, text_emb=prepared.target_emb,
                                               checkpoint_dir=checkpoint_dir)
    target = prepared.view(VIEWS[name])[0]  # the target split, or one with source data in it
    return target, finetune(config, target, transfer(config, prepared, knowledge, name), seed, checkpoint_dir)


# ============================================================================ stages 1–2


@dataclass(eq=False)
class Prepared:
    """Output of stages 1–2: the data and the item-text embeddings of every catalogue.

    Attributes:
        dataset: The split target and its sources as loaded.
        sources: The source domains pretraining reads (overlapping users cut at their target split).
        source_emb: Each source's item-text embeddings ``(N_k, D)`` (empty when nothing reads them).
        target_emb: The target's item-text embeddings ``(N, D)``.
        encoder_id: The encoder's name (``"given"`` for embeddings passed in).
        encoder_record: :func:`xdtutor.encoders.weights_record` of the weights that embedded the texts
            (``{}`` for embeddings passed in).
    """

    dataset: CrossDomainDataset
    sources: tuple[Domain, ...]
    source_emb: list[np.ndarray]
    target_emb: np.ndarray
    encoder_id: str
    encoder_record: dict[str, str] = field(default_factory=dict)
    _views: dict = field(default_factory=dict, repr=False)

    @property
    def target(self) -> SplitDomain:
        return self.dataset.target

    def view(self, name: str) -> tuple[SplitDomain, np.ndarray]:
        """The split and item-text table a strategy trains on: ``"target"``, or the joint catalogue
        with cross-domain histories (``"mixed"``) or source training rows (``"joint"``)
        (:mod:`xdtutor.data.views`); built once.

        Raises:
            ConfigError: The dataset cannot give that view (no sources, no known cross-domain order).
        """
        if name == "target":
            return self.target, self.target_emb
        if name not in self._views:
            try:
                view = (mixed_histories(self.dataset, self.sources[0] if self.sources else None) if name == "mixed"
                        else joint_training(self.dataset, self.sources))
            except ValueError as exc:
                raise ConfigError(f"strategies: {exc}") from None
            self._views[name] = (view.split, view.table(self.target_emb, self.source_emb))
        return self._views[name]

    def describe(self) -> str:
        t, overlap = self.target, self.dataset.overlap
        return (f"[data] target {t.domain.name}: {t.n_items} items, {len(t.train)} train users, "
                f"{len(t.test)} test users ({sum(u in overlap for u in t.test.users)} overlapping); sources "
                + ", ".join(f"{s.name} ({s.n_items} items, {s.n_users} users)" for s in self.sources))


def collect(config: ExperimentConfig, *, dataset: CrossDomainDataset | None = None,
            text_emb: Mapping[str, np.ndarray] | None = None) -> Prepared:
    """Stages 1–2: load and split the data, embed every catalogue's item text.

    Args:
        config: The experiment config.
        dataset: Use this dataset instead of loading ``config.data`` (tests, notebooks).
        text_emb: Precomputed embeddings by domain name (skips the language model).
    """
    d = config.data
    if dataset is None:
        dataset = load_dataset(d.dataset, data_dir=d.data_dir, subsample=d.subsample, seed=d.seed, target=d.target)
    if d.sources:
        sources = tuple(load_domain(name, data_dir=d.data_dir, subsample=d.subsample, seed=d.seed) for name in d.sources)
        evaluated = set(dataset.target.valid.users) | set(dataset.target.test.users)
        for s in sources:  # without positions a shared user's source history cannot be cut at the split
            shared = evaluated & set(s.sequences)
            if shared:
                raise ConfigError(f"data.sources: {s.name!r} shares {len(shared)} users with the evaluated target "
                                  f"users but their order across domains is unknown, so pretraining would see "
                                  f"their future; use the dataset's own sources")
    else:
        sources = dataset.pretraining_sources()  # overlapping users cut before their target valid item
    sources = tuple(subsample_domain(s, d.source_subsample, d.seed) for s in sources)
    if not sources and config.needs_source:
        raise ConfigError(f"data: {d.dataset!r} has no source domain; list some under data.sources")
    if d.compact:
        dataset, sources = compact_catalogues(dataset, sources)
    t = dataset.target
    # the protocol states the history length really used, and the ranking the config asks for
    protocol = t.protocol.with_(max_len=config.model.max_len, ranking=d.ranking, negatives=d.negatives,
                                negatives_seed=d.negatives_seed)
    if protocol != t.protocol:
        t = SplitDomain(t.domain, t.train, t.valid, t.test, protocol)
        dataset = CrossDomainDataset(dataset.name, dataset.sources, t, dataset.overlap, dataset.source_positions)

    device = select_device(None)  # where the texts are encoded (the record below must name the same)

    def embed(domain: Domain) -> np.ndarray:
        if text_emb is not None and domain.name in text_emb:
            return np.asarray(text_emb[domain.name], dtype=np.float32)
        return encode_texts(domain.texts, config.encoder, device=device, progress=config.encoder.progress)

    encoder_id = model_id(config.encoder.model) if text_emb is None else "given"
    # a source catalogue is encoded only when something reads it (a target-only run skips the cost)
    source_emb = [embed(s) for s in sources] if config.needs_source else []
    target_emb = embed(dataset.target.domain)
    # the name cannot tell an fp16 copy of the weights from the fp32 ones; the fingerprint can
    record = weights_record(config.encoder, device) if text_emb is None else {}
    return Prepared(dataset, sources, source_emb, target_emb, encoder_id, record)


# ============================================================================ stages 3–4


def pretrain(config: ExperimentConfig, prepared: Prepared, seed: int, folder: RunFolder | None = None):
    """Stage 3: the source model (:func:`xdtutor.pretrain_source.pretrain_source`), checkpointed in
    ``config.checkpoint_dir`` (shared by runs) or else in the run's folder."""
    pre = config.train_config(seed, "pretrain")
    ckpt = folder.model_dir(f"seed{seed}/source") if folder is not None else None
    if config.checkpoint_dir:  # a folder per source model: same data, encoder, model and loop = same folder
        ckpt = source_folder(config, prepared, pre)
        same_encoder(ckpt, prepared.encoder_record)
    return pretrain_source(prepared.sources, prepared.source_emb, config.model, pre,
                           encoder_config=to_dict(config.encoder), encoder_id=prepared.encoder_id,
                           max_eval_users=config.source_eval_users, checkpoint_dir=ckpt)


def source_folder(config: ExperimentConfig, prepared: Prepared, pre: TrainConfig, *,
                  old_name: bool = False) -> Path:
    """The shared folder of one source model in ``config.checkpoint_dir``, named by a hash of what
    changes θ_s: not how the target is ranked, not loop settings that leave results alone (a key added
    later would otherwise orphan every folder made before it), not where the data folder lies (a
    chapter names it, ``xdtutor run`` reads ``$XDTUTOR_DATA_DIR``: the same files, the same θ_s).
    Folders were once named with the data folder in the hash: such a folder is still used
    (``old_name=True`` returns that name)."""
    encoder = {k: v for k, v in to_dict(config.encoder).items() if k not in ("batch_size", "progress")}
    data = {k: v for k, v in to_dict(config.data).items() if k not in TARGET_RANKING_KEYS}
    loop = {k: v for k, v in to_dict(pre).items() if f"pretrain.{k}" not in NOT_RESULTS}

    def folder(data: dict) -> Path:
        key = json.dumps({"data": data, "encoder": encoder, "model": to_dict(config.model),
                          "pretrain": {**loop, "progress": False, "device": "any"},
                          "source_items": [int(s.n_items) for s in prepared.sources],
                          "eval_users": config.source_eval_users}, sort_keys=True)
        return Path(config.checkpoint_dir) / f"source-{hashlib.sha256(key.encode()).hexdigest()[:16]}"

    named, legacy = folder({k: v for k, v in data.items() if k != "data_dir"}), folder(data)
    if old_name:
        return legacy
    # a new-style folder holding no model yet (a run stopped before its first checkpoint) must not hide
    # a trained old-style one
    return legacy if any(legacy.glob("*.safetensors")) and not any(named.glob("*.safetensors")) else named


def same_encoder(folder: Path, record: dict[str, str]) -> None:
    """A shared source-model folder is named by the configs, and the encoder's config does not say which
    copy of the weights embedded the texts (an fp16 copy on a GPU is named like the fp32 weights). So
    the folder remembers the weights it was pretrained on (``encoder.json``, written before pretraining)
    and refuses others; a folder made before it remembered is taken as it is.

    Raises:
        ConfigError: The folder's source model was pretrained on embeddings of other weights or precision.
    """
    if not record:  # embeddings passed in: nothing to compare
        return
    remembered = folder / "encoder.json"
    if remembered.is_file():
        stored = json.loads(remembered.read_text(encoding="utf-8"))
        if stored != record:
            raise ConfigError(f"checkpoint_dir: {folder} holds a source model pretrained on item-text embeddings "
                              f"of other encoder weights ({stored}; now {record}); use another checkpoint_dir")
    elif not any(folder.glob("*.safetensors")):  # a new folder (an older one stays unknown, not assumed)
        folder.mkdir(parents=True, exist_ok=True)
        write_json(remembered, record)


def extract(config: ExperimentConfig, prepared: Prepared, source_model) -> Knowledge:
    """Stage 4: θ_s and source representations (:func:`xdtutor.extract_knowledge.extract_knowledge`)."""
    return extract_knowledge(source_model, prepared.dataset, device=config.device)


# ============================================================================ stages 5–8


def train_baselines(config: ExperimentConfig, prepared: Prepared, seed: int, target: SplitDomain,
                    names: tuple[str, ...]) -> list[TrainedModel]:
    """The target-only references, trained on ``target`` with the same loop (:mod:`xdtutor.baselines`)."""
    return [train_baseline(name, target, config.train_config(seed), model_config=config.model,
                           text_emb=prepared.target_emb) for name in names]


def transfer(config: ExperimentConfig, prepared: Prepared, knowledge: Knowledge | None, name: str) -> Transferred:
    """Stage 5: strategy ``name`` builds θ_t's starting point from θ_s, or — for the strategies that
    read source data instead — a fresh model on its view of the data (:mod:`xdtutor.transfer`)."""
    target, text_emb = prepared.view(VIEWS[name])
    if not USES_THETA[name]:
        return get_strategy(name).transfer(None, target, config.transfer, text_emb=text_emb, model_config=config.model)
    return get_strategy(name).transfer(knowledge, target, config.transfer, text_emb=text_emb)


def finetune(config: ExperimentConfig, target: SplitDomain, transferred: Transferred, seed: int,
             checkpoint_dir: Path | None = None) -> TrainedModel:
    """Stage 6 (with step 7's early stopping inside): train Δθ on ``target``."""
    return finetune_target(transferred, target, config.train_config(seed), checkpoint_dir=checkpoint_dir)


def validate(config: ExperimentConfig, target: SplitDomain, trained: TrainedModel) -> EvalResult:
    """Stage 7: the final model's metrics on the validation users (what choices may look at)."""
    return evaluate_model(trained.model, target.valid, target.protocol, device=config.device)


def evaluate(config: ExperimentConfig, target: SplitDomain, trained: TrainedModel) -> EvalResult:
    """Stage 8: full-ranking test metrics, overall and per user."""
    return evaluate_model(trained.model, target.test, target.protocol, device=config.device)


# ============================================================================ after the menu


def cold_users(config: ExperimentConfig, prepared: Prepared, knowledge: Knowledge, seed: int, results: Results,
               log: Log, checkpoint_dir: Path | None = None) -> None:
    """EMCDR for cold users, who stay cold: scored from mapped source representations alone.

    A seeded share of the overlapping test users is set aside (:func:`~xdtutor.cold_users.split_cold_users`);
    the base model (the transfer strategy on the target split with the best validation NDCG@10,
    retrained), the mapping
    and the popularity reference learn from the target without any of their interactions. The
    mapping function is chosen on the validation items of held-out fitting users; the chosen one is
    marked ``selected`` (test is read only to report).
    """
    target, cc = prepared.target, config.cold_users
    # the base is retrained on the target split without the cold users: a strategy that trains there
    candidates = [r for r in results.rows if r["seed"] == seed and r["kind"] == "transfer"
                  and VIEWS.get(r["method"]) == "target"]
    reps = source_reps(knowledge, "test")
    cold, rest = split_cold_users(target, reps, cc.cold_fraction, seed)
    if not candidates or not cold:
        return
    base_name = max(candidates, key=lambda r: r["valid_ndcg@10"])["method"]
    seed_everything(seed)
    own = config.for_method(base_name)
    base = finetune(own, rest, transfer(own, prepared, knowledge, base_name), seed, checkpoint_dir)  # never saw them
    popularity = train_baseline("popularity", rest, config.train_config(seed))
    known = knowledge.user_index()
    fit_users, select_users = select_split([u for u in rest.train if u in known], cc.select_fraction, seed)
    valid_reps = source_reps(knowledge, "valid")
    select_set = cold_eval_set(rest, valid_reps, "valid", select_users)
    runs, scores = [("popularity", popularity.model, 0, 0)], {}
    for kind in cc.mappings:
        mapping = fit_mapping(knowledge, rest, base.model, kind, cc, seed=seed, users=fit_users)
        name = f"mapping[{kind}]<-{base_name}"
        if len(select_set):
            scores[name] = evaluate_model(MappedColdStartRecommender(base.model, mapping, valid_reps), select_set,
                                          target.protocol).metrics["ndcg@10"]
        runs.append((name, MappedColdStartRecommender(base.model, mapping, reps), mapping.n_params_,
                     count_parameters(base.model)[0] + mapping.n_params_))
    chosen = max(scores, key=scores.get) if scores else None  # no selection users: nothing is chosen
    cold_set = cold_eval_set(target, reps, "test", cold)
    base_info = {"method": base_name, **how_it_ended(base)}  # the retrained base (a zero-shot base trains nothing)
    for name, model, trainable, total in runs:
        ev = evaluate_model(model, cold_set, target.protocol)
        results.add_cold_user({"method": name, "seed": seed, "metrics": dict(ev.metrics), "users": ev.n_users,
                               "trainable_params": int(trainable), "total_params": int(total),
                               "valid_ndcg@10": scores.get(name), "selected": name == chosen,
                               "select_users": len(select_set), "base": base_info}, ev)
        log(f"[cold users seed {seed}] {name:<28} test N@10 {ev.metrics['ndcg@10']:.4f} ({ev.n_users} cold users)"
            + (f"; selection N@10 {scores[name]:.4f}{' (chosen)' if name == chosen else ''}" if name in scores else ""))


def cold_start_point(config: ExperimentConfig, prepared: Prepared, knowledge: Knowledge | None, seed: int,
                     fraction: float, results: Results, log: Log, checkpoint_dir: Path | None = None) -> None:
    """One point of the feature-scarcity curve: the models retrained on ``fraction`` of the training users
    (with the curve's own early-stopping patience and batch size where ``cold_start`` sets them)."""
    part = keep_train_users(prepared.target, fraction, seed)
    curve = {k: v for k in ("patience", "batch_size") if (v := getattr(config.cold_start, k)) is not None}
    runs = []
    for name in (*config.cold_start.baselines, config.cold_start.strategy):
        own = config.for_method(name)  # what the curve sets is the curve's, the rest the method's own
        own = replace(own, train=replace(own.train, **curve))
        seed_everything(seed)
        ckpt = checkpoint_dir / name if checkpoint_dir is not None else None
        with tracking.run(f"{tracking.current_name() or f'seed{seed}/curve-{fraction:g}'}/{name}"):
            if name in BASELINES:
                runs.append(train_baseline(name, part, own.train_config(seed), model_config=own.model,
                                           text_emb=prepared.target_emb, checkpoint_dir=ckpt))
            else:
                runs.append(finetune(own, part, transfer(own, prepared, knowledge, name), seed, ckpt))
    for t in runs:
        valid, ev = validate(config, part, t), evaluate(config, part, t)
        # how the training ended: a curve point stopped by a clock is not converged
        results.add_curve_point({"fraction": fraction, "method": t.name, "seed": seed, "train_users": len(part.train),
                                 "metrics": dict(ev.metrics), "valid": dict(valid.metrics), **how_it_ended(t)}, ev)
        log(f"[cold start {fraction:.0%} seed {seed}] {t.name:<15} N@10 {ev.metrics['ndcg@10']:.4f}")


def how_it_ended(trained: TrainedModel) -> dict:
    """Stop reason, epochs run, best epoch and seconds of a training (``None`` / 0 for a model that trains nothing)."""
    h = trained.history
    if h is None:
        return {"stop_reason": None, "epochs": 0, "best_epoch": None, "train_seconds": 0.0}
    return {"stop_reason": h.stop_reason, "epochs": len(h.epochs), "best_epoch": int(h.best_epoch),
            "train_seconds": float(h.total_seconds)}


def run_info(config: ExperimentConfig, prepared: Prepared, device: torch.device, wall_seconds: float) -> dict:
    """The protocol, the data's statistics and the provenance of a run (``Results.info``)."""
    try:
        stats = dataset_stats(prepared.dataset)
    except Exception as exc:  # statistics are informative only; never lose a run over them
        stats = {"error": f"{type(exc).__name__}: {exc}"}
    protocol = prepared.target.protocol
    return {"protocol": protocol.to_dict(), "protocol_line": protocol.describe(), "dataset_stats": stats,
            **provenance(device), "seeds": list(config.seeds), "scale": config.scale,
            "encoder_id": prepared.encoder_id, **prepared.encoder_record, "wall_seconds": wall_seconds}
