"""The target-only baselines every transfer number is compared with.

They see the same split and the same training loop (:func:`xdtutor.train.fit`) as the transferred
models, and nothing of the source:

* ``popularity`` — interaction counts of the target's training sequences;
* ``sasrec`` — ID-based SASRec trained on the target only;
* ``text`` — the text-based model (same architecture as the transferred one), trained from scratch:
  the fair reference, since a gain over it comes from the source, not from the model or the PLM;
* ``text_id`` — ``text`` plus a learned ID embedding per item (UniSRec's "text + ID" without source).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from .data import SplitDomain
from .finetune_target import TrainedModel
from .models import ModelConfig, Popularity, SASRec, TextSeqRec, count_parameters
from .train import TrainConfig, fit
from .utils import seed_everything


def _text_table(text_emb) -> torch.Tensor:
    if text_emb is None:
        raise ValueError("the text baselines need the target's text_emb")
    return torch.as_tensor(np.asarray(text_emb), dtype=torch.float32)


#: name -> builder(n_items, model config, text_emb) of an untrained neural baseline
BUILDERS: dict[str, Callable[[int, ModelConfig, object], nn.Module]] = {
    "sasrec": lambda n, m, e: SASRec(n, **m.sasrec_kwargs()),
    "text": lambda n, m, e: TextSeqRec(_text_table(e), **m.kwargs()),
    "text_id": lambda n, m, e: TextSeqRec(_text_table(e), **m.kwargs(), use_id=True),
}
#: Every baseline name (the registry the configs are checked against).
BASELINES = ("popularity", *BUILDERS)


def train_baseline(name: str, target: SplitDomain, config: TrainConfig, *,
                   model_config: ModelConfig = ModelConfig(), text_emb=None,
                   checkpoint_dir: str | Path | None = None) -> TrainedModel:
    """Train one target-only baseline.

    Args:
        name: One of :data:`BASELINES`.
        target: The split target domain.
        config: Training loop settings (ignored by ``popularity``).
        model_config: Architecture (``sasrec`` takes its sizes; the text baselines all of it).
        text_emb: Target item-text embeddings ``(N, D)`` (text baselines only).
        checkpoint_dir: Resumable checkpoints of the training (:func:`xdtutor.train.fit`).

    Returns:
        The :class:`~xdtutor.finetune_target.TrainedModel` (kind ``"baseline"``).
    """
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; choose from {BASELINES}")
    seed_everything(config.seed)
    if name == "popularity":
        return TrainedModel(name, "baseline", Popularity(target.n_items).fit(target.train.values()), None, 0, 0)
    model = BUILDERS[name](target.n_items, model_config, text_emb)
    total, trainable = count_parameters(model)
    history = fit(model, target, config, checkpoint_dir=checkpoint_dir)
    return TrainedModel(name, "baseline", model, history, total, trainable)
