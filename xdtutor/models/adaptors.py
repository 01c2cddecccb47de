"""Adaptors: map frozen language-model item embeddings (D) to the recommender's width (H).

They are the small trainable part that makes a text-based recommender transferable: the same
adaptor applies to any catalogue for which we have text, including catalogues never seen in training.

* ``linear``  — one linear layer.
* ``mlp``     — two linear layers with GELU.
* ``whiten``  — parametric whitening as in UniSRec: ``(x - b) W`` with learnable ``b`` and ``W``.
* ``moe``     — UniSRec's mixture of ``n_experts`` whitening experts mixed by a (noisy) softmax gate.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ADAPTORS = ("linear", "mlp", "whiten", "moe")


class LinearAdaptor(nn.Module):
    """``dropout(x) A + c``: (..., D) -> (..., H)."""

    def __init__(self, in_dim: int, out_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(in_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(x))  # (..., H)


class MLPAdaptor(nn.Module):
    """Two-layer MLP ``D -> hidden_mult*H -> H`` with GELU."""

    def __init__(self, in_dim: int, out_dim: int, dropout: float = 0.0, hidden_mult: int = 2) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(in_dim, hidden_mult * out_dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_mult * out_dim, out_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (..., H)


class WhiteningAdaptor(nn.Module):
    """Parametric whitening (UniSRec's ``PWLayer``): ``dropout(x - b) W``, (..., D) -> (..., H)."""

    def __init__(self, in_dim: int, out_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.bias = nn.Parameter(torch.zeros(in_dim))           # b: (D,)
        self.linear = nn.Linear(in_dim, out_dim, bias=False)    # W: (D, H)
        nn.init.normal_(self.linear.weight, mean=0.0, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(x - self.bias))  # (..., H)


class MoEAdaptor(nn.Module):
    """UniSRec's mixture-of-experts adaptor: a gate mixes ``n_experts`` whitening experts.

    ``out = sum_k softmax(g(x))_k * expert_k(x)`` with ``g(x) = x W_g`` plus, in training,
    Gaussian noise scaled by ``softplus(x W_n)`` (noisy gating, as in UniSRec).
    """

    def __init__(self, in_dim: int, out_dim: int, dropout: float = 0.0, n_experts: int = 8,
                 noisy_gating: bool = True) -> None:
        super().__init__()
        self.noisy_gating = noisy_gating
        self.experts = nn.ModuleList(WhiteningAdaptor(in_dim, out_dim, dropout) for _ in range(n_experts))
        self.w_gate = nn.Parameter(torch.zeros(in_dim, n_experts))   # (D, K)
        self.w_noise = nn.Parameter(torch.zeros(in_dim, n_experts))  # (D, K)

    def gates(self, x: torch.Tensor) -> torch.Tensor:
        """(..., D) -> (..., K) mixture weights."""
        logits = x @ self.w_gate                                     # (..., K)
        if self.noisy_gating and self.training:
            noise_std = F.softplus(x @ self.w_noise) + 1e-2          # (..., K)
            logits = logits + torch.randn_like(logits) * noise_std
        return logits.softmax(dim=-1)                                # (..., K)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gates = self.gates(x)                                        # (..., K)
        outs = torch.stack([e(x) for e in self.experts], dim=-2)     # (..., K, H)
        return (gates.unsqueeze(-1) * outs).sum(dim=-2)              # (..., H)


def make_adaptor(kind: str, in_dim: int, out_dim: int, dropout: float = 0.0) -> nn.Module:
    """Build the adaptor named ``kind`` (one of :data:`ADAPTORS`)."""
    if kind == "linear":
        return LinearAdaptor(in_dim, out_dim, dropout)
    if kind == "mlp":
        return MLPAdaptor(in_dim, out_dim, dropout)
    if kind == "whiten":
        return WhiteningAdaptor(in_dim, out_dim, dropout)
    if kind == "moe":
        return MoEAdaptor(in_dim, out_dim, dropout)
    raise ValueError(f"unknown adaptor {kind!r}; choose one of {', '.join(ADAPTORS)}")
