"""Strategy 4 — frozen encoder + trained adaptor (UniSRec's default fine-tuning).

The sequence encoder (transformer + positions) keeps θ_s exactly; only the item adaptor — and the
target ID embedding when ``config.use_id`` — learns. Few trainable parameters, little forgetting.
"""

from __future__ import annotations

from .base import TransferConfig, TransferResult, build_target_model, fit_target, param_counts, target_text_emb

NAME = "frozen_adaptor"


def apply(knowledge, target, config: TransferConfig = TransferConfig(), *, device=None,
          text_emb=None) -> TransferResult:
    """Freeze ``model.encoder``; train ``model.adaptor`` [+ ``model.id_embedding``]."""
    model = build_target_model(knowledge, target_text_emb(knowledge, target, text_emb), use_id=config.use_id)
    model.encoder.requires_grad_(False)
    total, trainable = param_counts(model)
    history = fit_target(model, target, config, device=device)
    return TransferResult(NAME, model, history, total, trainable)
