"""Checkpoint files: model weights as safetensors, the trainer's state beside them.

:func:`save_checkpoint` / :func:`load_checkpoint` write and read one model (``NAME.safetensors`` +
``NAME.json`` with its config, library versions and free metadata); they are what a user calls to
keep a trained model. :func:`save_training_state` / :func:`resume_training_state` are what
:func:`xdtutor.train.fit` uses to leave a resumable run behind after every epoch, in a folder:

* ``last.safetensors`` / ``last.json`` — model weights / config, epoch, history, early-stopping
  state, Python+NumPy RNG states, library versions;
* ``last.pt`` — optimizer, scheduler and torch RNG states (``torch.save``; read back with
  ``torch.load(weights_only=True)``);
* ``best.safetensors`` / ``best.json`` — the best weights so far.
"""

from __future__ import annotations

import json
import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from .provenance import versions
from .utils import atomic_write

#: Trainer settings that may differ between a checkpoint and the run resuming it.
RESUMABLE_DIFFERENCES = frozenset({"progress", "device", "eval_batch_size", "logits_chunk", "check_every"})


class CheckpointError(RuntimeError):
    """A checkpoint file is missing keys, inconsistent, or belongs to a different run (names the file)."""


class CheckpointMismatch(CheckpointError):
    """A checkpoint folder holds a run made with another training config (never overwritten silently)."""


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a ``DistributedDataParallel`` wrapper (or the model itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def save_checkpoint(model: nn.Module, path: str | Path, config: dict[str, Any], **meta: Any) -> Path:
    """Write ``model``'s state dict to ``path`` (safetensors) and ``config``/``meta`` to ``path.json``.

    Both files are written atomically. The JSON also records the model class and library versions.

    Returns:
        The path of the safetensors file.
    """
    path = Path(path).with_suffix(".safetensors")
    state = {k: v.detach().cpu().contiguous() for k, v in unwrap(model).state_dict().items()}
    epoch = str(meta.get("epoch", ""))
    with atomic_write(path) as fh:
        fh.write(st_save(state, metadata={"epoch": epoch}))
    info = {"model_class": type(unwrap(model)).__name__, "config": config, "versions": versions(), **meta}
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
    try:
        state = st_load(path.read_bytes())
    except Exception as exc:  # safetensors raises its own error type for a truncated header or body
        raise CheckpointError(f"{path}: cannot read the weights ({type(exc).__name__}: {exc})") from exc
    target = unwrap(model)
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


def read_meta(path: Path) -> dict[str, Any]:
    """The JSON beside a checkpoint (config, epoch, history …)."""
    try:
        return json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path.with_suffix('.json')}: cannot read checkpoint metadata ({exc})") from exc


def read_best(folder: Path) -> dict[str, torch.Tensor] | None:
    """The best weights of a training folder (``None`` before the first improvement)."""
    path = folder / "best.safetensors"
    if not path.is_file():
        return None
    try:
        return {k: v.clone() for k, v in st_load(path.read_bytes()).items()}
    except Exception as exc:
        raise CheckpointError(f"{path}: cannot read the weights ({type(exc).__name__}: {exc})") from exc


def clear_training_state(folder: Path) -> None:
    """Remove a training folder's checkpoint files (``last.*``, ``best.*``), nothing else."""
    for name in ("last.safetensors", "last.json", "last.pt", "best.safetensors", "best.json"):
        (folder / name).unlink(missing_ok=True)


def save_training_state(folder: Path, model: nn.Module, optimizer, scheduler, run_config: dict,
                        history: dict, bad_epochs: int, epoch: int, finished: bool, improved: bool,
                        best_metric: float) -> None:
    """Everything :func:`resume_training_state` needs to continue after ``epoch`` (see module doc)."""
    folder.mkdir(parents=True, exist_ok=True)
    if improved:
        save_checkpoint(model, folder / "best.safetensors", run_config, epoch=epoch, metric=best_metric)
    trainer_state = {"epoch": epoch, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                     "torch_rng": torch.get_rng_state(),
                     "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}
    with atomic_write(folder / "last.pt") as fh:
        torch.save(trainer_state, fh)
    np_state = np.random.get_state()
    save_checkpoint(model, folder / "last.safetensors", run_config, epoch=epoch, finished=finished,
                    bad_epochs=bad_epochs, history=history,
                    python_rng=[list(x) if isinstance(x, tuple) else x for x in random.getstate()],
                    numpy_rng=[np_state[0], np_state[1].tolist(), *map(float, np_state[2:])])


def resume_training_state(folder: Path, model: nn.Module, optimizer, scheduler, run_config: dict) -> dict[str, Any]:
    """Load the last state of ``folder`` into ``model``/``optimizer``/``scheduler`` and the RNGs.

    Returns:
        ``{"history": dict, "bad_epochs", "epoch", "finished"}``.

    Raises:
        CheckpointError: If the folder was written with another trainer config, or its files
            disagree (an interrupted save).
    """
    meta = read_meta(folder / "last.json")
    saved = meta.get("config", {})
    diff = sorted(k for k in set(saved) | set(run_config)
                  if k not in RESUMABLE_DIFFERENCES and saved.get(k) != run_config.get(k))
    if diff:
        raise CheckpointMismatch(f"{folder / 'last.json'}: checkpoint was made with a different config "
                              f"({', '.join(f'{k}: {saved.get(k)!r} vs {run_config.get(k)!r}' for k in diff)}); "
                              f"use another checkpoint_dir")
    load_checkpoint(model, folder / "last.safetensors")
    try:
        trainer = torch.load(folder / "last.pt", map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated or foreign file: whatever torch.load raises, it is damage
        raise CheckpointError(f"{folder / 'last.pt'}: cannot read the trainer state ({type(exc).__name__}: {exc})") from exc
    if trainer["epoch"] != meta["epoch"]:
        raise CheckpointError(f"{folder / 'last.pt'}: epoch {trainer['epoch']} does not match "
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
    return {"history": meta["history"], "bad_epochs": int(meta["bad_epochs"]),
            "epoch": int(meta["epoch"]), "finished": bool(meta["finished"])}
