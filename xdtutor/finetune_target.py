"""Stage 6 — fine-tune on the target, and the target-only baselines every result is compared with.

Every transfer strategy trains through :func:`finetune_target`, which is the one training loop
(:func:`xdtutor.train.fit`, early stopping on the target's validation NDCG@10) — nothing copied.
The baselines see the same split and the same loop:

* ``popularity`` — interaction counts of the target's training sequences;
* ``sasrec`` — ID-based SASRec trained on the target only;
* ``text`` — the text-based model (same architecture as the transferred one), trained from scratch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from .data import SplitDomain
from .models import Popularity, SASRec, TextSeqRec, count_parameters
from .train import History, TrainConfig, fit
from .utils import seed_everything

BASELINES = ("popularity", "sasrec", "text")


def finetune_target(model: nn.Module, target: SplitDomain, config: TrainConfig, *,
                    penalty: Callable[[nn.Module], torch.Tensor] | None = None,
                    checkpoint_dir: str | Path | None = None) -> History:
    """Train the trainable parameters of ``model`` on ``target`` (see :func:`xdtutor.train.fit`)."""
    return fit(model, target, config, penalty=penalty, checkpoint_dir=checkpoint_dir)


def train_baseline(name: str, target: SplitDomain, config: TrainConfig, *, text_emb=None,
                   model_kwargs: dict | None = None) -> tuple[object, History | None, int, int]:
    """Train one target-only baseline.

    Args:
        name: One of :data:`BASELINES`.
        target: The split target domain.
        config: Training loop settings (ignored by ``popularity``).
        text_emb: Target item-text embeddings ``(N, D)`` (``text`` only).
        model_kwargs: Architecture (``hidden``, ``n_layers`` …; ``adaptor``/``similarity`` only
            for ``text``).

    Returns:
        ``(model, history or None, total_params, trainable_params)``.
    """
    kwargs = dict(model_kwargs or {})
    seed_everything(config.seed)
    if name == "popularity":
        model = Popularity(target.n_items).fit(target.train.values())
        return model, None, 0, 0
    if name == "sasrec":
        arch = {k: kwargs[k] for k in ("hidden", "n_layers", "n_heads", "max_len", "dropout") if k in kwargs}
        model = SASRec(target.n_items, **arch)
    elif name == "text":
        if text_emb is None:
            raise ValueError("the 'text' baseline needs the target's text_emb")
        model = TextSeqRec(torch.as_tensor(np.asarray(text_emb), dtype=torch.float32), **kwargs)
    else:
        raise ValueError(f"unknown baseline {name!r}; choose from {BASELINES}")
    total, trainable = count_parameters(model)
    history = finetune_target(model, target, config)
    return model, history, total, trainable
