"""Strategy 1 — zero-shot: θ_s applied to the target catalogue through its item text, no training.

Only possible because items are represented by their text: the source's adaptor maps the target
items' PLM embeddings into the space the source's sequence encoder was trained on (ZESRec/UniSRec's
inductive setting). Nothing is trained (``trains=False``), so fine-tuning returns the model as it is.
"""

from __future__ import annotations

from .base import Transferred, TransferConfig, build_target_model, target_text_emb, transferred

NAME = "zero_shot"


def transfer(knowledge, target, config: TransferConfig = TransferConfig(), *, text_emb=None) -> Transferred:
    """θ_t = θ_s on the target catalogue; every parameter is frozen."""
    emb = target_text_emb(knowledge, target, text_emb)  # (N_t, D)
    model = build_target_model(knowledge, emb, use_id=False, config=config)
    model.requires_grad_(False)
    return transferred(NAME, model.eval(), trains=False)
