"""Stage 7: the one training loop used by every neural model and transfer strategy.

``fit`` trains the parameters that have ``requires_grad`` (so freezing is done on the model, not
here) with AdamW, linear warm-up/decay and gradient clipping, *validates* after every epoch
(NDCG@10 on the validation set), stops after ``patience`` epochs without improvement and restores
the best weights. With ``checkpoint_dir`` every epoch leaves a complete checkpoint behind
(:mod:`xdtutor.checkpoints`), and a later call with the same directory continues where the run
stopped and ends with exactly the same result as an uninterrupted run (on CPU). Under ``torchrun``
(``torch.distributed`` initialised) the model is wrapped in ``DistributedDataParallel``, each
process trains on its shard of the sequences and only rank 0 evaluates and writes.
"""

from __future__ import annotations

import inspect
import math
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import nn
from torch.utils.data.distributed import DistributedSampler
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from . import evaluate as evaluate_module  # module, not function: fit looks `evaluate` up at call time
from . import tracking
from .checkpoints import (CheckpointError, CheckpointMismatch, clear_training_state, read_best,
                          resume_training_state, save_training_state)
from .config import check, check_types, to_dict
from .data.types import SplitDomain
from .distributed import broadcast as dist_broadcast
from .distributed import info as dist_info
from .models.sasrec import NEGATIVES, loss_targets
from .utils import is_device_name, pad_left, seed_everything, select_device

MONITOR = "ndcg@10"


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of :func:`fit`.

    Attributes:
        epochs: Maximum number of epochs.
        batch_size: Training sequences per step (per process under torchrun).
        lr: Peak AdamW learning rate.
        weight_decay: AdamW weight decay.
        warmup_ratio: Fraction of all steps spent warming the learning rate up linearly from 0;
            afterwards it decays linearly to 0 at the last step of ``epochs``.
        grad_clip: Max global gradient norm (0 disables clipping).
        patience: Stop after this many epochs without a better validation NDCG@10.
        max_len: Longest training/evaluation history.
        seed: Seed for shuffling, dropout and everything else random in training.
        device: ``"auto"`` (see :func:`xdtutor.utils.select_device`), ``"cpu"``, ``"cuda"`` …
        bf16: Use bfloat16 autocast on CUDA (never on CPU). At these model sizes (hidden 64) a step is
            bound by kernel launches, not arithmetic, and fp32 trained faster on an H200
            (``benchmarks/results/gpu/``): ``--set train.bf16=false --set pretrain.bf16=false`` on a GPU.
            The default stays on because every stored config (results, searches, run folders,
            checkpoints, source-model folder names) records it.
        eval_batch_size: Users per batch in validation.
        progress: Show a tqdm bar (epochs; loss and validation metric as postfix). Without it, one
            summary line per epoch goes to the ``xdtutor.train`` logger at INFO (what notebooks show);
            with it, that line is logged at DEBUG (``xdtutor --debug run …``).
        max_train_minutes: Stop after this much training wall time (``None`` = no limit).
        group_by_length: Build batches of similar-length sequences (rows are sorted by length inside
            pools of 16 batches, and the batches are shuffled). It changes which rows train together
            and cost accuracy: ID-SASRec on scientific, 3 seeds, validation R@10 .1077 with it vs
            .1132 with random batches (rows ``sasrec`` and ``sasrec_random_batches`` of the earlier
            ``results/scientific_baselines.json``: ``git show 1d8452b:results/scientific_baselines.json``).
            Off by default; the encoder's length-sorted chunks
            (``SequenceEncoder.chunk_rows``) save the padding without changing the batches.
        negatives: Candidates of the softmax loss: ``"all"`` (the whole catalogue, what evaluation
            ranks), ``"in_batch"`` (the distinct items of each batch, UniSRec's pretraining
            objective): a step no longer scales with the catalogue — a Kitchen pretraining step
            (27,637 items, batch 256, MLP adaptor, 1 CPU thread) took 1.13 s with ``"all"`` and
            0.27 s with ``"in_batch"`` (``python -m benchmarks.bench_negatives --threads 1``,
            benchmarks/results/negatives.json). Under torchrun each process draws its candidates from its
            own batch (nothing is gathered across ranks), so their number follows the per-process
            batch size. The model's ``loss`` must accept ``negatives=`` for ``"in_batch"`` and ``"per_domain"``.
            ``"per_domain"`` is for a model on a joint catalogue (``joint``): a next item among the
            ranked (target) items is scored against all of them, any other (a source item) against
            the batch's other items — the target's and the source's own objectives in one loss
            (:func:`xdtutor.models.sasrec.per_domain_ce`; ``python -m benchmarks.bench_joint``).
        logits_chunk: Target rows per chunk of the training logits (0 = all at once, fastest).
            A memory setting, not a result setting (same loss up to float rounding; see
            :func:`xdtutor.models.sasrec.softmax_ce`): needed for catalogues whose (rows × items)
            logits do not fit, e.g. 1,024 for a 1 M-item catalogue on a 16 GB card. The model's
            ``loss`` must accept ``logits_chunk=``.
        check_every: Steps between checks that the training loss is finite. Each check waits for
            the device (a host sync), so it is not done every step; a NaN is still caught within
            this many steps, naming them.
    """

    epochs: int = 50
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_ratio: float = 0.05
    grad_clip: float = 1.0
    patience: int = 5
    max_len: int = 50
    seed: int = 0
    device: str = "auto"
    bf16: bool = True
    eval_batch_size: int = 1024
    progress: bool = True
    max_train_minutes: float | None = None
    group_by_length: bool = False
    negatives: str = "all"
    logits_chunk: int = 0
    check_every: int = 50

    def __post_init__(self) -> None:
        check_types(self)
        check(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        check(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        check(self.lr > 0, f"lr must be positive, got {self.lr}")
        check(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        check(0 <= self.warmup_ratio < 1, f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        check(self.grad_clip >= 0, f"grad_clip must be >= 0, got {self.grad_clip}")
        check(self.patience >= 1, f"patience must be >= 1, got {self.patience}")
        check(self.max_len >= 1, f"max_len must be >= 1, got {self.max_len}")
        check(self.eval_batch_size >= 1, f"eval_batch_size must be >= 1, got {self.eval_batch_size}")
        check(is_device_name(self.device), f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {self.device!r}")
        check(self.max_train_minutes is None or self.max_train_minutes > 0,
              f"max_train_minutes must be positive or None, got {self.max_train_minutes}")
        check(self.negatives in NEGATIVES, f"negatives must be one of {NEGATIVES}, got {self.negatives!r}")
        check(self.logits_chunk >= 0, f"logits_chunk must be >= 0 (0 = no chunking), got {self.logits_chunk}")
        check(self.check_every >= 1, f"check_every must be >= 1, got {self.check_every}")


@dataclass
class History:
    """What happened during :func:`fit` (plots read it; ``to_dict`` is JSON-ready).

    Attributes:
        epochs: 1-based epoch numbers that were run.
        train_loss: Mean training objective per epoch (loss + penalty).
        valid_metrics: Validation metrics per epoch (dicts like ``{"ndcg@10": …}``).
        epoch_seconds: Wall time per epoch (training + validation).
        best_epoch: Epoch whose weights were restored (0 = none).
        best_metric: Its validation NDCG@10.
        stop_reason: ``"max_epochs"``, ``"patience"`` or ``"time_limit"``.
        device: Device the model was trained on.
        resumed_from: Epoch a resumed run continued after (0 = fresh run).
    """

    epochs: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    valid_metrics: list[dict[str, float]] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    best_epoch: int = 0
    best_metric: float = float("-inf")
    stop_reason: str = ""
    device: str = ""
    resumed_from: int = 0

    @property
    def total_seconds(self) -> float:
        return float(sum(self.epoch_seconds))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["total_seconds"] = self.total_seconds
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "History":
        d = {k: v for k, v in d.items() if k != "total_seconds"}
        return cls(**d)


# ----------------------------------------------------------------------------- data


def training_sequences(data: SplitDomain, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Turn the training sequences into next-item examples for every position.

    A sequence ``i_1 … i_n`` gives input ``i_1 … i_{n-1}`` and targets ``i_2 … i_n`` (both left-padded,
    +1-shifted, 0 = padding / ignore). Sequences longer than ``max_len + 1`` are cut from the end
    into windows so that every item except the first is a target exactly once.

    Args:
        data: The split domain; its ``train`` sequences are used.
        max_len: Window length L.

    Returns:
        ``(inputs, targets)``: two (S, L) LongTensors, one row per window. Users with fewer than two
        training items give no row.
    """
    inputs, targets = [], []
    for seq in data.train.values():
        seq = np.asarray(seq, dtype=np.int64)
        for end in range(len(seq), 1, -max_len):
            window = seq[max(0, end - max_len - 1):end]
            inputs.append(window[:-1])
            targets.append(window[1:])
    if not inputs:
        raise ValueError("no training sequence has two or more items; nothing to train on")
    return pad_left(inputs, max_len), pad_left(targets, max_len)


# ----------------------------------------------------------------------------- distributed helpers


def rank_device(device: torch.device, distributed: bool, env: Mapping[str, str] = os.environ) -> torch.device:
    """The device of this process: under ``torchrun`` a bare ``cuda`` becomes ``cuda:$LOCAL_RANK``
    (a launcher need not call ``torch.cuda.set_device``; without it every rank would use cuda:0)."""
    if not distributed or device.type != "cuda" or device.index is not None:
        return device
    if "LOCAL_RANK" in env:
        return torch.device("cuda", int(env["LOCAL_RANK"]))
    return torch.device("cuda", torch.cuda.current_device())


class _LossModule(nn.Module):
    """Routes ``model.loss`` through ``forward`` so DistributedDataParallel sees (and syncs) it."""

    def __init__(self, model: nn.Module, negatives: str = "all", logits_chunk: int = 0) -> None:
        super().__init__()
        self.model = model
        # only the non-default settings are passed: models without these arguments keep working
        self.options = {**({"negatives": negatives} if negatives != "all" else {}),
                        **({"logits_chunk": logits_chunk} if logits_chunk else {})}

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.model.loss(inputs, targets, **self.options)


def epoch_order(n: int, epoch: int, seed: int, distributed: bool, rank: int, world: int) -> list[int]:
    """Row order of one epoch: a seeded permutation (or this rank's DistributedSampler shard)."""
    if distributed:
        sampler = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=True, seed=seed)
        sampler.set_epoch(epoch)
        return list(iter(sampler))
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=generator).tolist()


def epoch_batches(order: list[int], lengths: torch.Tensor, batch_size: int, epoch: int, seed: int,
                  group_by_length: bool) -> list[list[int]]:
    """Cut one epoch's row order into batches (optionally of similar lengths, in shuffled order)."""
    if not group_by_length:
        return [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
    pool = 16 * batch_size
    batches = []
    for s in range(0, len(order), pool):
        rows = sorted(order[s:s + pool], key=lambda i: int(lengths[i]))  # stable: ties keep order
        batches += [rows[j:j + batch_size] for j in range(0, len(rows), batch_size)]
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch + 7919)
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


# ----------------------------------------------------------------------------- the loop


def validate(model: nn.Module, data: SplitDomain, config: TrainConfig, device: torch.device,
             warn_ties: bool = True) -> dict[str, float]:
    """Validation metrics of ``model`` on ``data.valid`` (the model is left in training mode).

    ``warn_ties=False`` silences the evaluator's warning about scores tied with the target: :func:`fit`
    lets the first validation of a training say it, not every epoch's (two log lines each)."""
    model.eval()
    with warnings.catch_warnings():
        if not warn_ties:  # ties are still ranked by the protocol
            warnings.filterwarnings("ignore", message=".*tied with their target")
        result = evaluate_module.evaluate(model, data.valid, data.protocol, device=device,
                                          batch_size=config.eval_batch_size)
    model.train()
    metrics = {k: float(v) for k, v in result.metrics.items()}
    if MONITOR not in metrics:
        raise KeyError(f"validation metrics lack {MONITOR!r} (protocol ks={data.protocol.ks}); got {sorted(metrics)}")
    return metrics


@dataclass
class _EarlyStopping:
    """Best validation score so far, its weights (on the CPU), and epochs since it improved."""

    patience: int
    best_state: dict[str, torch.Tensor] | None = None
    bad_epochs: int = 0

    def update(self, model: nn.Module, history: History, epoch: int, metric: float) -> bool:
        """Record epoch ``epoch`` (1-based); returns whether it improved on the best."""
        if metric > history.best_metric:
            self.best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            self.bad_epochs = 0
            history.best_epoch, history.best_metric = epoch, metric
            return True
        self.bad_epochs += 1
        return False

    def restore(self, model: nn.Module, device: torch.device) -> None:
        if self.best_state is not None:
            model.load_state_dict({k: v.to(device) for k, v in self.best_state.items()}, strict=False)


def fit(model: nn.Module, data: SplitDomain, config: TrainConfig, *,
        penalty: Callable[[nn.Module], torch.Tensor] | None = None,
        checkpoint_dir: str | Path | None = None) -> History:
    """Train ``model`` on ``data.train`` with early stopping on ``data.valid`` NDCG@10.

    Args:
        model: A sequential model with ``loss(inputs, targets)`` and ``score(seq)``; only its
            parameters with ``requires_grad`` are trained.
        data: Split target (or source) domain; ``data.protocol`` defines the validation metrics.
        config: Training hyper-parameters.
        penalty: Optional extra term ``penalty(model) -> scalar`` added to the loss (e.g. L2-SP).
        checkpoint_dir: Where to keep ``last.*``/``best.*`` checkpoints; when it already holds a
            run with the same config, training continues from it (a finished run is just loaded).

    Returns:
        The :class:`History`; ``model`` holds the best weights (on the training device).

    Raises:
        ValueError: If the model has no trainable parameters or no training examples exist.
        CheckpointError: If ``checkpoint_dir`` holds a run made with another config.
    """
    # 1. where, what and how much: device, trainable parameters, training windows, schedule
    distributed, rank, world = dist_info()
    seed_everything(config.seed + rank)  # the same weights (DDP broadcasts rank 0's), rank-own dropout masks
    device = rank_device(select_device(config.device), distributed)
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"{type(model).__name__} has no trainable parameters")
    for key, default in (("negatives", "all"), ("logits_chunk", 0)):
        if getattr(config, key) != default and key not in inspect.signature(model.loss).parameters:
            raise ValueError(f"train.{key}={getattr(config, key)!r} but {type(model).__name__}.loss has no "
                             f"{key!r} argument")
    inputs, targets = training_sequences(data, config.max_len)             # (S, L), (S, L)
    lengths = (inputs > 0).sum(dim=1)                                      # (S,)
    # On the device once (a few MB): each step then indexes there, with no host-to-device copy.
    inputs, targets = inputs.to(device), targets.to(device)
    steps_per_epoch = math.ceil(math.ceil(inputs.shape[0] / world) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, math.ceil(config.warmup_ratio * total_steps), total_steps)
    loss_module: nn.Module = _LossModule(model, config.negatives, config.logits_chunk)
    if distributed:
        # the buffers (the frozen text table) never change: broadcasting them every step is waste
        loss_module = nn.parallel.DistributedDataParallel(
            loss_module, device_ids=[device.index] if device.type == "cuda" else None, broadcast_buffers=False)
    use_bf16 = config.bf16 and device.type == "cuda"

    # 2. a fresh run, or the one a checkpoint folder left behind (a damaged one is reported and rebuilt)
    history = History(device=str(device))
    stopper = _EarlyStopping(config.patience)
    start_epoch = 0
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    run_config = to_dict(config)
    if ckpt is not None and (ckpt / "last.json").is_file():
        initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
        try:
            state = resume_training_state(ckpt, model, optimizer, scheduler, run_config)
            best = read_best(ckpt)
        except CheckpointMismatch:
            raise
        except CheckpointError as exc:
            warnings.warn(f"{ckpt}: damaged checkpoint, training starts again ({exc})", stacklevel=2)
            clear_training_state(ckpt)
            model.load_state_dict(initial)
            seed_everything(config.seed + rank)
            optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
            scheduler = get_linear_schedule_with_warmup(optimizer, math.ceil(config.warmup_ratio * total_steps),
                                                        total_steps)
        else:
            history, start_epoch = History.from_dict(state["history"]), state["epoch"]
            history.resumed_from = start_epoch
            stopper.bad_epochs, stopper.best_state = state["bad_epochs"], best
            if state["finished"]:
                stopper.restore(model, device)
                return history

    # 3. epochs: train on shuffled batches, validate, stop on patience, epochs or time
    bar = tqdm(total=config.epochs, initial=start_epoch, desc=f"train {type(model).__name__}",
               disable=not config.progress or rank != 0, leave=True)
    limit_s = None if config.max_train_minutes is None else 60.0 * config.max_train_minutes
    model.train()
    for epoch in range(start_epoch, config.epochs):
        t0 = time.perf_counter()
        order = epoch_order(inputs.shape[0], epoch, config.seed, distributed, rank, world)
        # The loss is summed on the device and read back every ``check_every`` steps and at the end
        # of the epoch: reading it each step would make the host wait for the device each step.
        loss_sum = torch.zeros((), dtype=torch.float32 if device.type == "mps" else torch.float64, device=device)
        n_steps, out_of_time = 0, False
        for rows in epoch_batches(order, lengths, config.batch_size, epoch, config.seed, config.group_by_length):
            idx = torch.as_tensor(rows).to(device)
            x, y = inputs[idx], targets[idx]                                # (b, L), (b, L)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_bf16):
                data_loss = loss_module(x, y)                                # mean over this process's targets
                extra = penalty(model) if penalty is not None else None
            loss = data_loss if extra is None else data_loss + extra
            optimizer.zero_grad(set_to_none=True)
            if distributed:  # gradients of the mean over *all* processes' targets (see _global_mean_weight)
                weighted = data_loss * _global_mean_weight(model, y, config.negatives, world)
                (weighted if extra is None else weighted + extra).backward()
            else:
                loss.backward()
            if config.grad_clip > 0:
                nn.utils.clip_grad_norm_(params, config.grad_clip)
            optimizer.step()
            scheduler.step()
            loss_sum += loss.detach()
            n_steps += 1
            if n_steps % config.check_every == 0:
                _check_finite(loss_sum, epoch, n_steps, config.check_every)
            if (not distributed and limit_s is not None
                    and history.total_seconds + time.perf_counter() - t0 > limit_s):
                out_of_time = True  # (under DDP only between epochs, decided by rank 0)
                break
        _check_finite(loss_sum, epoch, n_steps, n_steps % config.check_every or config.check_every)
        mean_loss = _mean_across_ranks(float(loss_sum), n_steps, distributed, device)

        # sharded over the processes, gathered; ties warned about once per training
        metrics = validate(model, data, config, device, warn_ties=not history.valid_metrics)
        out_of_time = out_of_time or (limit_s is not None
                                      and history.total_seconds + time.perf_counter() - t0 > limit_s)
        # every rank computed the same metrics; its own clock may differ: rank 0 decides for all
        metrics, out_of_time = dist_broadcast((metrics, out_of_time))
        improved = stopper.update(model, history, epoch + 1, metrics[MONITOR])
        history.epochs.append(epoch + 1)
        history.train_loss.append(mean_loss)
        history.valid_metrics.append(metrics)
        history.epoch_seconds.append(time.perf_counter() - t0)
        if stopper.bad_epochs >= config.patience:
            history.stop_reason = "patience"
        elif out_of_time:
            history.stop_reason = "time_limit"
        elif epoch + 1 == config.epochs:
            history.stop_reason = "max_epochs"
        if ckpt is not None and rank == 0:
            save_training_state(ckpt, model, optimizer, scheduler, run_config, history.to_dict(), stopper.bad_epochs,
                                epoch + 1, bool(history.stop_reason), improved, history.best_metric)
        bar.update(1)
        bar.set_postfix(loss=f"{mean_loss:.4f}", **{MONITOR: f"{metrics[MONITOR]:.4f}"},
                        best=f"{history.best_metric:.4f}")
        if rank == 0:  # a log line per epoch (INFO where no bar is drawn) and the tracker's scalars
            tracking.log_epoch(type(model).__name__, epoch + 1, config.epochs, mean_loss, metrics, MONITOR,
                               history.best_metric, history.best_epoch, history.epoch_seconds[-1],
                               summary=not config.progress)
        if history.stop_reason:
            break
    bar.close()

    # 4. the best epoch's weights
    stopper.restore(model, device)
    model.eval()
    return history


def _global_mean_weight(model: nn.Module, targets: torch.Tensor, negatives: str, world: int) -> torch.Tensor:
    """Factor that turns this process's mean loss into its share of the mean over all processes.

    DistributedDataParallel averages the processes' gradients, i.e. of their *mean* losses; when
    processes hold different numbers of targets (sequences of different lengths) that is not the
    mean over all targets. Weighting by ``world * n_here / n_all`` makes it exactly that, so two
    processes train the model one process would (up to float rounding).
    """
    n_here = (loss_targets(model, targets, negatives) > 0).sum().to(torch.float64)  # the loss's own targets
    n_all = n_here.clone()
    torch.distributed.all_reduce(n_all)
    return (world * n_here / n_all.clamp(min=1)).to(torch.float32)


def _check_finite(loss_sum: torch.Tensor, epoch: int, n_steps: int, window: int) -> None:
    """Raise if the running loss sum went NaN/inf: one of the last ``window`` steps had a non-finite loss."""
    if not bool(torch.isfinite(loss_sum)):
        first = max(n_steps - window + 1, 1)
        raise FloatingPointError(f"non-finite training loss at epoch {epoch + 1}, in steps {first}-{n_steps} "
                                 f"(train.check_every checks every few steps; lower the lr or check the data)")


def _mean_across_ranks(loss_sum: float, n_steps: int, distributed: bool, device: torch.device) -> float:
    if not distributed:
        return loss_sum / max(n_steps, 1)
    t = torch.tensor([loss_sum, float(n_steps)], dtype=torch.float64,
                     device=device if device.type == "cuda" else "cpu")
    torch.distributed.all_reduce(t)
    return float(t[0] / t[1].clamp(min=1))


__all__ = ["History", "TrainConfig", "epoch_batches", "fit", "rank_device", "training_sequences", "validate"]
