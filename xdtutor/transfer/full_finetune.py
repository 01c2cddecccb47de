"""Strategy 2 — full fine-tuning: θ_t initialised from θ_s, every parameter trained (θ_t = θ_s + Δθ)."""

from __future__ import annotations

from .base import Transferred, TransferConfig, build_target_model, target_text_emb, transferred

NAME = "full_finetune"


def transfer(knowledge, target, config: TransferConfig = TransferConfig(), *, text_emb=None) -> Transferred:
    """Initialise from θ_s (plus a fresh ID embedding when ``config.use_id``); everything trains."""
    emb = target_text_emb(knowledge, target, text_emb)  # (N_t, D)
    model = build_target_model(knowledge, emb, use_id=config.use_id, config=config)
    return transferred(NAME, model)
