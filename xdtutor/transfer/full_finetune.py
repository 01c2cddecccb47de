"""Strategy 2 — full fine-tuning: θ_t initialised from θ_s, every parameter trained (θ_t = θ_s + Δθ)."""

from __future__ import annotations

from .base import TransferConfig, TransferResult, build_target_model, fit_target, param_counts, target_text_emb

NAME = "full_finetune"


def apply(knowledge, target, config: TransferConfig = TransferConfig(), *, device=None,
          text_emb=None) -> TransferResult:
    """Initialise from θ_s (plus a fresh ID embedding when ``config.use_id``) and train everything."""
    model = build_target_model(knowledge, target_text_emb(knowledge, target, text_emb), use_id=config.use_id)
    total, trainable = param_counts(model)
    history = fit_target(model, target, config, device=device)
    return TransferResult(NAME, model, history, total, trainable)
