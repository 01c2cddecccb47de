"""Strategy 4 — frozen encoder + trained adaptor (UniSRec's default fine-tuning).

The sequence encoder (transformer + positions) keeps θ_s exactly; only the item adaptor — and the
target ID embedding when ``config.use_id`` — learns. Few trainable parameters, little forgetting.
"""

from __future__ import annotations

from .base import Transferred, TransferConfig, build_target_model, target_text_emb, transferred

NAME = "frozen_adaptor"


def transfer(knowledge, target, config: TransferConfig = TransferConfig(), *, text_emb=None) -> Transferred:
    """Freeze ``model.encoder``; ``model.adaptor`` [+ ``model.id_embedding``] train."""
    emb = target_text_emb(knowledge, target, text_emb)  # (N_t, D)
    model = build_target_model(knowledge, emb, use_id=config.use_id, config=config)
    model.encoder.requires_grad_(False)
    return transferred(NAME, model)
