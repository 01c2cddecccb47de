"""Stage 7: the one training loop used by every neural model and transfer strategy.

``fit`` trains the parameters that have ``requires_grad`` (so freezing is done on the model, not
here) with AdamW, linear warm-up/decay and gradient clipping, evaluates NDCG@10 on the validation
set after every epoch, stops after ``patience`` epochs without improvement and restores the best
weights. With ``checkpoint_dir`` every epoch leaves a complete checkpoint behind, and a later call
with the same directory continues where the run stopped and ends with exactly the same result as
an uninterrupted run (on CPU). Under ``torchrun`` (``torch.distributed`` initialised) the model is
wrapped in ``DistributedDataParallel``, each process trains on its shard of the sequences and only
rank 0 evaluates and writes.

Checkpoint files in ``checkpoint_dir``:

* ``last.safetensors`` / ``last.json`` — model weights / config, epoch, history, early-stopping
  state, Python+NumPy RNG states, library versions;
* ``last.pt`` — optimizer, scheduler and torch RNG states (``torch.save``; read back with
  ``torch.load(weights_only=True)``);
* ``best.safetensors`` / ``best.json`` — the best weights so far.
"""

from __future__ import annotations

import inspect
import json
import math
import platform
import random
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn
from tqdm.auto import tqdm

from .config import check, to_dict
from .data.types import SplitDomain
from .utils import atomic_write, pad_left, seed_everything, select_device

MONITOR = "ndcg@10"


class CheckpointError(RuntimeError):
    """A checkpoint file is missing keys, inconsistent, or belongs to a different run (names the file)."""


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
        bf16: Use bfloat16 autocast on CUDA (never on CPU).
        eval_batch_size: Users per batch in validation.
        progress: Show a tqdm bar (epochs; loss and validation metric as postfix).
        max_train_minutes: Stop after this much training wall time (``None`` = no limit).
        group_by_length: Build batches of similar-length sequences (rows are sorted by length inside
            pools of 16 batches, and the batches are shuffled), so that short histories are not
            padded to the longest one of a random batch. Up to 2x faster on CPU, but it costs
            accuracy: ID-SASRec on scientific (seed 0) got test R@10 .0929 with it vs .1025 without
            (results/scientific_baselines.md). Off by default.
        negatives: Candidates of the softmax loss: ``"all"`` (the whole catalogue, what evaluation
            ranks) or ``"in_batch"`` (the distinct items of each batch, UniSRec's pretraining
            objective): a step no longer scales with the catalogue — a Kitchen pretraining step
            (27,637 items, batch 256, MLP adaptor, 1 CPU thread) took 1.13 s with ``"all"`` and
            0.27 s with ``"in_batch"`` (``python -m benchmarks.bench_negatives --threads 1``,
            benchmarks/results/negatives.json). Under torchrun each process draws its candidates from its
            own batch (nothing is gathered across ranks), so their number follows the per-process
            batch size. The model's ``loss`` must accept ``negatives=`` for ``"in_batch"``.
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

    def __post_init__(self) -> None:
        check(self.epochs >= 1, f"train.epochs must be >= 1, got {self.epochs}")
        check(self.batch_size >= 1, f"train.batch_size must be >= 1, got {self.batch_size}")
        check(self.lr > 0, f"train.lr must be positive, got {self.lr}")
        check(self.weight_decay >= 0, f"train.weight_decay must be >= 0, got {self.weight_decay}")
        check(0 <= self.warmup_ratio < 1, f"train.warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        check(self.grad_clip >= 0, f"train.grad_clip must be >= 0, got {self.grad_clip}")
        check(self.patience >= 1, f"train.patience must be >= 1, got {self.patience}")
        check(self.max_len >= 1, f"train.max_len must be >= 1, got {self.max_len}")
        check(self.eval_batch_size >= 1, f"train.eval_batch_size must be >= 1, got {self.eval_batch_size}")
        check(isinstance(self.device, str) and bool(self.device), f"train.device must be a string, got {self.device!r}")
        check(self.max_train_minutes is None or self.max_train_minutes > 0,
              f"train.max_train_minutes must be positive or None, got {self.max_train_minutes}")
        from .models.sasrec import NEGATIVES

        check(self.negatives in NEGATIVES, f"train.negatives must be one of {NEGATIVES}, got {self.negatives!r}")


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


# ----------------------------------------------------------------------------- checkpoints


def _versions() -> dict[str, str]:
    import safetensors
    import transformers

    from . import __version__

    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "safetensors": safetensors.__version__, "transformers": transformers.__version__,
            "xdtutor": __version__}


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def save_checkpoint(model: nn.Module, path: str | Path, config: dict[str, Any], **meta: Any) -> Path:
    """Write ``model``'s state dict to ``path`` (safetensors) and ``config``/``meta`` to ``path.json``.

    Both files are written atomically. The JSON also records the model class and library versions.

    Returns:
        The path of the safetensors file.
    """
    path = Path(path).with_suffix(".safetensors")
    state = {k: v.detach().cpu().contiguous() for k, v in _unwrap(model).state_dict().items()}
    epoch = str(meta.get("epoch", ""))
    with atomic_write(path) as fh:
        fh.write(st_save(state, metadata={"epoch": epoch}))
    info = {"model_class": type(_unwrap(model)).__name__, "config": config, "versions": _versions(), **meta}
    with atomic_write(path.with_suffix(".json"), "w") as fh:
        json.dump(info, fh, indent=1)
    return path


def load_checkpoint(model: nn.Module, path: str | Path, *, strict: bool = True) -> tuple[list[str], list[str]]:
    """Load the weights saved by :func:`save_checkpoint` into ``model``.

    Args:
        model: Module to load into (its non-persistent buffers, e.g. the text table, are untouched).
        path: The ``.safetensors`` file (or the same path without suffix).
        strict: Raise when the model has keys the file lacks (missing keys). Unexpected keys (in the
            file but not in the model) are always reported with a warning, never silently dropped.

    Returns:
        ``(missing, unexpected)`` key lists.

    Raises:
        CheckpointError: Missing keys with ``strict``, or shapes that do not match (names the file).
    """
    path = Path(path).with_suffix(".safetensors")
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    state = st_load(path.read_bytes())
    target = _unwrap(model)
    own = target.state_dict()
    bad = [f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
           for k, v in state.items() if k in own and own[k].shape != v.shape]
    if bad:
        raise CheckpointError(f"{path}: shape mismatch for {'; '.join(bad)}")
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing and strict:
        raise CheckpointError(f"{path}: missing keys {missing} (pass strict=False to load the rest)")
    if unexpected:
        warnings.warn(f"{path}: unexpected keys ignored: {unexpected}", stacklevel=2)
    if missing:
        warnings.warn(f"{path}: missing keys left at their current values: {missing}", stacklevel=2)
    target.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    return missing, unexpected


def _checkpoint_meta(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path.with_suffix('.json')}: cannot read checkpoint metadata ({exc})") from exc


# ----------------------------------------------------------------------------- distributed helpers


def _dist() -> tuple[bool, int, int]:
    """(initialised, rank, world size) of torch.distributed."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return True, dist.get_rank(), dist.get_world_size()
    return False, 0, 1


class _LossModule(nn.Module):
    """Routes ``model.loss`` through ``forward`` so DistributedDataParallel sees (and syncs) it."""

    def __init__(self, model: nn.Module, negatives: str = "all") -> None:
        super().__init__()
        self.model, self.negatives = model, negatives

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.negatives == "all":  # models without a ``negatives`` argument keep working
            return self.model.loss(inputs, targets)
        return self.model.loss(inputs, targets, negatives=self.negatives)


def _epoch_order(n: int, epoch: int, seed: int, distributed: bool, rank: int, world: int) -> list[int]:
    """Row order of one epoch: a seeded permutation (or this rank's DistributedSampler shard)."""
    if distributed:
        from torch.utils.data.distributed import DistributedSampler

        sampler = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=True, seed=seed)
        sampler.set_epoch(epoch)
        return list(iter(sampler))
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=generator).tolist()


def _batches(order: list[int], lengths: torch.Tensor, batch_size: int, epoch: int, seed: int,
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


def _validate(model: nn.Module, data: SplitDomain, config: TrainConfig, device: torch.device) -> dict[str, float]:
    from . import evaluate as evaluate_module  # late: resolved at call time (tests may patch it)

    model.eval()
    result = evaluate_module.evaluate(model, data.valid, data.protocol, device=device,
                                      batch_size=config.eval_batch_size)
    model.train()
    metrics = {k: float(v) for k, v in result.metrics.items()}
    if MONITOR not in metrics:
        raise KeyError(f"validation metrics lack {MONITOR!r} (protocol ks={data.protocol.ks}); got {sorted(metrics)}")
    return metrics


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
    distributed, rank, world = _dist()
    seed_everything(config.seed)
    device = select_device(config.device)
    if distributed and device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"{type(model).__name__} has no trainable parameters")
    if config.negatives != "all" and "negatives" not in inspect.signature(model.loss).parameters:
        raise ValueError(f"train.negatives={config.negatives!r} but {type(model).__name__}.loss has no "
                         "'negatives' argument")
    inputs, targets = training_sequences(data, config.max_len)
    lengths = (inputs > 0).sum(dim=1)                                      # (S,)
    n_rows = inputs.shape[0]
    rows_per_rank = math.ceil(n_rows / world)
    steps_per_epoch = math.ceil(rows_per_rank / config.batch_size)
    total_steps = steps_per_epoch * config.epochs

    from transformers import get_linear_schedule_with_warmup

    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, math.ceil(config.warmup_ratio * total_steps), total_steps)
    loss_module: nn.Module = _LossModule(model, config.negatives)
    if distributed:
        loss_module = nn.parallel.DistributedDataParallel(
            loss_module, device_ids=[device.index] if device.type == "cuda" else None)
    use_bf16 = config.bf16 and device.type == "cuda"

    history = History(device=str(device))
    best_state: dict[str, torch.Tensor] | None = None
    bad_epochs, start_epoch = 0, 0
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    run_config = to_dict(config)
    if ckpt is not None and (ckpt / "last.json").is_file():
        state = _resume(ckpt, model, optimizer, scheduler, run_config, device)
        history, bad_epochs, start_epoch = state["history"], state["bad_epochs"], state["epoch"]
        history.resumed_from = start_epoch
        best_state = {k: v.clone() for k, v in st_load((ckpt / "best.safetensors").read_bytes()).items()} \
            if (ckpt / "best.safetensors").is_file() else None
        if state["finished"]:
            if best_state is not None:
                model.load_state_dict(best_state, strict=False)
            return history

    bar = tqdm(total=config.epochs, initial=start_epoch, desc=f"train {type(model).__name__}",
               disable=not config.progress or rank != 0, leave=True)
    limit_s = None if config.max_train_minutes is None else 60.0 * config.max_train_minutes
    stop_reason = "max_epochs"
    model.train()
    for epoch in range(start_epoch, config.epochs):
        t0 = time.perf_counter()
        order = _epoch_order(n_rows, epoch, config.seed, distributed, rank, world)
        loss_sum, n_steps, out_of_time = 0.0, 0, False
        for rows in _batches(order, lengths, config.batch_size, epoch, config.seed, config.group_by_length):
            idx = torch.as_tensor(rows)
            x, y = inputs[idx].to(device), targets[idx].to(device)     # (b, L), (b, L)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_bf16):
                loss = loss_module(x, y)
                if penalty is not None:
                    loss = loss + penalty(model)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite training loss {loss.item()} at epoch {epoch + 1}, "
                                         f"step {n_steps + 1}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                nn.utils.clip_grad_norm_(params, config.grad_clip)
            optimizer.step()
            scheduler.step()
            loss_sum += float(loss.detach())
            n_steps += 1
            if (not distributed and limit_s is not None
                    and history.total_seconds + time.perf_counter() - t0 > limit_s):
                out_of_time = True  # (under DDP only between epochs, decided by rank 0)
                break
        mean_loss = _mean_across_ranks(loss_sum, n_steps, distributed, device)

        metrics = _validate(model, data, config, device) if rank == 0 else {}
        out_of_time = out_of_time or (limit_s is not None
                                      and history.total_seconds + time.perf_counter() - t0 > limit_s)
        metrics, out_of_time = _broadcast(metrics, out_of_time, distributed)  # rank 0's on every rank
        improved = metrics[MONITOR] > history.best_metric
        if improved:
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            bad_epochs = 0
            history.best_epoch, history.best_metric = epoch + 1, metrics[MONITOR]
        else:
            bad_epochs += 1
        history.epochs.append(epoch + 1)
        history.train_loss.append(mean_loss)
        history.valid_metrics.append(metrics)
        history.epoch_seconds.append(time.perf_counter() - t0)
        finished = epoch + 1 == config.epochs
        if bad_epochs >= config.patience:
            stop_reason, finished = "patience", True
        elif out_of_time:
            stop_reason, finished = "time_limit", True
        if finished:
            history.stop_reason = stop_reason
        if ckpt is not None and rank == 0:
            _save_state(ckpt, model, optimizer, scheduler, run_config, history, bad_epochs, epoch + 1,
                        finished, improved)
        bar.update(1)
        bar.set_postfix(loss=f"{mean_loss:.4f}", **{MONITOR: f"{metrics[MONITOR]:.4f}"},
                        best=f"{history.best_metric:.4f}")
        if finished:
            break
    bar.close()
    history.stop_reason = history.stop_reason or stop_reason
    if best_state is not None:
        model.load_state_dict({k: v.to(device) for k, v in best_state.items()}, strict=False)
    model.eval()
    return history


def _mean_across_ranks(loss_sum: float, n_steps: int, distributed: bool, device: torch.device) -> float:
    if not distributed:
        return loss_sum / max(n_steps, 1)
    t = torch.tensor([loss_sum, float(n_steps)], dtype=torch.float64,
                     device=device if device.type == "cuda" else "cpu")
    torch.distributed.all_reduce(t)
    return float(t[0] / t[1].clamp(min=1))


def _broadcast(metrics: dict[str, float], out_of_time: bool, distributed: bool) -> tuple[dict[str, float], bool]:
    """Rank 0's validation metrics and time-limit flag on every rank, so all ranks stop together."""
    if not distributed:
        return metrics, out_of_time
    box = [(metrics, out_of_time)]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def _save_state(ckpt: Path, model: nn.Module, optimizer, scheduler, run_config: dict, history: History,
                bad_epochs: int, epoch: int, finished: bool, improved: bool) -> None:
    ckpt.mkdir(parents=True, exist_ok=True)
    if improved:
        save_checkpoint(model, ckpt / "best.safetensors", run_config, epoch=epoch, metric=history.best_metric)
    trainer_state = {"epoch": epoch, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                     "torch_rng": torch.get_rng_state(),
                     "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}
    with atomic_write(ckpt / "last.pt") as fh:
        torch.save(trainer_state, fh)
    np_state = np.random.get_state()
    save_checkpoint(model, ckpt / "last.safetensors", run_config, epoch=epoch, finished=finished,
                    bad_epochs=bad_epochs, history=history.to_dict(),
                    python_rng=[list(x) if isinstance(x, tuple) else x for x in random.getstate()],
                    numpy_rng=[np_state[0], np_state[1].tolist(), *map(float, np_state[2:])])


def _resume(ckpt: Path, model: nn.Module, optimizer, scheduler, run_config: dict,
            device: torch.device) -> dict[str, Any]:
    meta = _checkpoint_meta(ckpt / "last.json")
    saved = meta.get("config", {})
    ignore = {"progress", "device", "eval_batch_size"}
    diff = sorted(k for k in set(saved) | set(run_config) if k not in ignore and saved.get(k) != run_config.get(k))
    if diff:
        raise CheckpointError(f"{ckpt / 'last.json'}: checkpoint was made with a different config "
                              f"({', '.join(f'{k}: {saved.get(k)!r} vs {run_config.get(k)!r}' for k in diff)}); "
                              f"use another checkpoint_dir")
    load_checkpoint(model, ckpt / "last.safetensors")
    trainer = torch.load(ckpt / "last.pt", map_location="cpu", weights_only=True)
    if trainer["epoch"] != meta["epoch"]:
        raise CheckpointError(f"{ckpt / 'last.pt'}: epoch {trainer['epoch']} does not match "
                              f"last.json epoch {meta['epoch']} (interrupted while saving?)")
    optimizer.load_state_dict(trainer["optimizer"])
    scheduler.load_state_dict(trainer["scheduler"])
    torch.set_rng_state(trainer["torch_rng"])
    if trainer["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(trainer["cuda_rng"])
    py = meta["python_rng"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    npr = meta["numpy_rng"]
    np.random.set_state((npr[0], np.asarray(npr[1], dtype=np.uint32), int(npr[2]), int(npr[3]), npr[4]))
    return {"history": History.from_dict(meta["history"]), "bad_epochs": int(meta["bad_epochs"]),
            "epoch": int(meta["epoch"]), "finished": bool(meta["finished"])}


__all__ = ["CheckpointError", "History", "TrainConfig", "fit", "load_checkpoint", "save_checkpoint",
           "training_sequences"]
