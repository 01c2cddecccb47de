"""Strategy 10 — ``text_mixed``: the text model on cross-domain histories, trained from scratch (no θ_s).

``mixed_history`` minus pretraining: the same joint catalogue and interleaved histories
(:func:`xdtutor.data.views.mixed_histories`), a randomly initialised :class:`~xdtutor.models.TextSeqRec`.
Set beside ``mixed_history`` it measures what θ_s adds once the source items are in the history;
beside ``text`` what the source items add without it.
"""

from __future__ import annotations

from ..data.views import ranked_items
from ..models import ModelConfig, TextSeqRec
from .base import Transferred, TransferConfig, joint_text_emb, transferred

NAME = "text_mixed"
VIEW = "mixed"
USES_THETA = False


def transfer(knowledge, target, config: TransferConfig = TransferConfig(), *, text_emb=None,
             model_config: ModelConfig = ModelConfig()) -> Transferred:
    """A fresh text model on the joint catalogue, ranking (and learning) target items only."""
    model = TextSeqRec(joint_text_emb(target, text_emb), **model_config.kwargs(), use_id=config.use_id)
    return transferred(NAME, model.score_only(ranked_items(target), train_on="scored"))
