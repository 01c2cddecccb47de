"""Strategy 1 — zero-shot: θ_s applied to the target catalogue through its item text, no training.

Only possible because items are represented by their text: the source's adaptor maps the target
items' PLM embeddings into the space the source's sequence encoder was trained on (ZESRec/UniSRec's
inductive setting). Nothing is trained, so ``history`` is ``None`` and ``trainable_params`` is 0.
"""

from __future__ import annotations

from ..utils import select_device
from .base import TransferConfig, TransferResult, build_target_model, param_counts, target_text_emb

NAME = "zero_shot"


def apply(knowledge, target, config: TransferConfig = TransferConfig(), *, device=None,
          text_emb=None) -> TransferResult:
    """θ_t = θ_s on the target catalogue; parameters are frozen (nothing is trained)."""
    model = build_target_model(knowledge, target_text_emb(knowledge, target, text_emb), use_id=False)
    model.requires_grad_(False)
    model.to(select_device(device)).eval()
    total, _ = param_counts(model)
    return TransferResult(NAME, model, None, total, 0)
