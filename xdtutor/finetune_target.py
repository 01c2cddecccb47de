"""Stage 6 — fine-tune on the target: learn Δθ so that θ_t = θ_s + Δθ fits the target's data.

:func:`finetune_target` takes what a transfer strategy built (:class:`~xdtutor.transfer.Transferred`:
θ_t's starting point, its frozen parts, an optional penalty) and trains it with the one training
loop, :func:`xdtutor.train.fit`, which validates after every epoch and keeps the best epoch
(step 7). The result is a :class:`TrainedModel` — what the target-only baselines
(:mod:`xdtutor.baselines`) return too, so both are evaluated by the same code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .data import SplitDomain
from .train import History, TrainConfig, fit
from .transfer import Transferred
from .utils import select_device


@dataclass(eq=False)
class TrainedModel:
    """A recommender ready for the target's test set.

    Attributes:
        name: Strategy or baseline name (``"lora"``, ``"sasrec"`` …).
        kind: ``"transfer"`` or ``"baseline"``.
        model: Offers ``score(item_seq (B, L)) -> (B, N)``.
        history: Training history (``None`` when nothing was trained: zero-shot, popularity).
        total_params: Parameters of the model.
        trainable_params: Parameters trained on the target.
        extra: Strategy-specific details.
    """

    name: str
    kind: str
    model: Any
    history: History | None
    total_params: int
    trainable_params: int
    extra: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        return (f"TrainedModel(name={self.name!r}, kind={self.kind!r}, total_params={self.total_params:,}, "
                f"trainable_params={self.trainable_params:,}, trained={self.history is not None})")


def finetune_target(transferred: Transferred, target: SplitDomain, config: TrainConfig, *,
                    checkpoint_dir: str | Path | None = None) -> TrainedModel:
    """Train ``transferred.model``'s trainable parameters on ``target`` (see :func:`xdtutor.train.fit`).

    Args:
        transferred: A strategy's output (its penalty and training context are applied here).
        target: The split target domain (``train`` to learn from, ``valid`` for early stopping).
        config: The training loop's settings.
        checkpoint_dir: Resumable checkpoints of this training.

    Returns:
        The :class:`TrainedModel` (kind ``"transfer"``), in eval mode, on ``config.device``.
    """
    t = transferred
    if not t.trains:  # zero-shot: θ_t = θ_s
        model = t.model.to(select_device(config.device)).eval()
        return TrainedModel(t.name, "transfer", model, None, t.total_params, 0, dict(t.extra))
    with t.during_training():
        history = fit(t.model, target, config, penalty=t.penalty, checkpoint_dir=checkpoint_dir)
    model = t.after_training(t.model) if t.after_training is not None else t.model
    model.eval()
    return TrainedModel(t.name, "transfer", model, history, t.total_params, t.trainable_params, dict(t.extra))
