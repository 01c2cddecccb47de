"""Strategy 12 — ``joint``: one text model trained on the target's and the sources' sequences together.

Multi-domain training instead of pretrain-then-fine-tune: the training rows are the target split's
plus every source sequence as pretraining would see it (:func:`xdtutor.data.views.joint_training`),
and validation and test rank target items only. No θ_s: what the source teaches enters through the
shared weights during training. With ``train.negatives: all`` the softmax runs over the joint catalogue
(target and source items) for every row; with ``per_domain`` a target row's softmax runs over the target
items and a source row's over the batch's source items — the two stages' own objectives (full softmax on
the target, in-batch on the source) trained at once, at a fraction of the cost on a large source
catalogue (``python -m benchmarks.bench_joint``). Either way a step costs more than a target-only one.
"""

from __future__ import annotations

from ..data.views import ranked_items
from ..models import ModelConfig, TextSeqRec
from .base import Transferred, TransferConfig, joint_text_emb, transferred

NAME = "joint"
VIEW = "joint"
USES_THETA = False


def transfer(knowledge, target, config: TransferConfig = TransferConfig(), *, text_emb=None,
             model_config: ModelConfig = ModelConfig()) -> Transferred:
    """A fresh text model on the joint catalogue, learning every next item, ranking target items."""
    model = TextSeqRec(joint_text_emb(target, text_emb), **model_config.kwargs(), use_id=config.use_id)
    return transferred(NAME, model.score_only(ranked_items(target), train_on="all"))
