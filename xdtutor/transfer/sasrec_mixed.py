"""Strategy 11 — ``sasrec_mixed``: ID-SASRec on cross-domain histories (the classic ID-based baseline).

An ID embedding for every item of both catalogues, the same interleaved histories as
``mixed_history`` (:func:`xdtutor.data.views.mixed_histories`), trained from scratch. Beside
``text_mixed`` it separates the gain of the language model from the gain of more data: both read
the same histories, one through item text, one through IDs.
"""

from __future__ import annotations

from ..data.views import ranked_items
from ..models import ModelConfig, SASRec
from .base import Transferred, TransferConfig, transferred

NAME = "sasrec_mixed"
VIEW = "mixed"
USES_THETA = False


def transfer(knowledge, target, config: TransferConfig = TransferConfig(), *, text_emb=None,
             model_config: ModelConfig = ModelConfig()) -> Transferred:
    """A fresh SASRec over the joint catalogue, ranking (and learning) target items only."""
    model = SASRec(target.n_items, **model_config.sasrec_kwargs())
    return transferred(NAME, model.score_only(ranked_items(target), train_on="scored"))
