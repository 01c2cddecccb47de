"""Strategy 9 — cross-domain histories: θ_s reads each user's source items interleaved with her target items.

What only a text-based model can do without a shared ID space: an overlapping user's source items
(before the predicted item, :func:`xdtutor.data.views.mixed_histories`) are embedded by the same
language model and adaptor as target items, so the sequence encoder sees her whole recent history.
θ_s initialises the model on the joint catalogue (target items, then the source's); it ranks and
learns to predict target items only — source items are context (``score_only(N_t, "scored")``).
Everything is fine-tuned. Its data-only twins are ``text_mixed`` (the same without θ_s) and
``sasrec_mixed`` (IDs instead of text).
"""

from __future__ import annotations

from ..data.views import ranked_items
from .base import Transferred, TransferConfig, build_target_model, target_text_emb, transferred

NAME = "mixed_history"
VIEW = "mixed"


def transfer(knowledge, target, config: TransferConfig = TransferConfig(), *, text_emb=None) -> Transferred:
    """θ_s on the joint catalogue of ``target`` (a mixed-histories split) ranking its target items."""
    emb = target_text_emb(knowledge, target, text_emb)  # (N_t, D)
    model = build_target_model(knowledge, emb, use_id=config.use_id, config=config)
    model.score_only(ranked_items(target), train_on="scored")
    return transferred(NAME, model)
