"""Strategy 3 — L2-SP: full fine-tuning with the penalty α‖θ_t − θ_s‖² (Li et al., ICML 2018).

Plain weight decay pulls θ towards 0, which forgets the source; L2-SP pulls towards the starting
point θ_s instead, so Δθ stays small where the target data do not insist. The penalty is zero at
θ_s and only covers the transferred parameters (a fresh ID embedding has no source value).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .base import Transferred, TransferConfig, build_target_model, target_text_emb, transferred

NAME = "l2sp"


class L2SPPenalty:
    """Callable ``penalty(model) -> α Σ_k ‖θ_t[k] − θ_s[k]‖²`` over the keys of θ_s.

    Args:
        theta_s: Source parameters (name -> tensor); copied, so later changes to the model do not
            move the anchor.
        alpha: Weight α.
    """

    def __init__(self, theta_s: dict[str, torch.Tensor], alpha: float) -> None:
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        self.theta_s = {k: v.detach().clone() for k, v in theta_s.items()}
        self.alpha = alpha

    def __call__(self, model: nn.Module) -> torch.Tensor:
        params = dict(model.named_parameters())
        missing = [k for k in self.theta_s if k not in params]
        if missing:
            raise KeyError(f"L2-SP anchor names parameters the model lacks: {missing[:5]}")
        total = None
        for name, anchor in self.theta_s.items():
            p = params[name]
            if anchor.device != p.device:  # move once, keep on the model's device afterwards
                anchor = self.theta_s[name] = anchor.to(p.device)
            term = (p - anchor).pow(2).sum()
            total = term if total is None else total + term
        if total is None:
            return torch.zeros(())
        return self.alpha * total


def transfer(knowledge, target, config: TransferConfig = TransferConfig(), *, text_emb=None) -> Transferred:
    """Full fine-tuning from θ_s with :class:`L2SPPenalty` (α = ``config.l2sp_alpha``)."""
    emb = target_text_emb(knowledge, target, text_emb)  # (N_t, D)
    model = build_target_model(knowledge, emb, use_id=config.use_id, config=config)
    penalty: Callable = L2SPPenalty(knowledge.theta, config.l2sp_alpha)
    return transferred(NAME, model, penalty=penalty, extra={"alpha": config.l2sp_alpha})
