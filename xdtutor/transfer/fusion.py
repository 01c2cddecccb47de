"""Strategy 6 — fusion: the target model's item features fused with the source's knowledge.

Each target item ``j`` gets two views of its text embedding ``e_j``:

* the **source view** ``s_j = a_s(e_j)`` — θ_s's adaptor, frozen: where the source model would put the item;
* the **target view** ``t_j = a_t(e_j)`` — a fresh adaptor trained on the target (plus the target ID
  embedding when ``use_id``).

They are fused into one ``(N, H)`` item table, and the sequence encoder (initialised from θ_s) reads it:

* ``add``    — ``t + s``. Only defined for identical shapes. The seed added token embeddings of
  *different* shapes (a source table of N_s rows to a target table of N_t rows, or widths that
  differ); :func:`fuse_add` rejects that with :class:`FusionShapeError` instead of broadcasting or
  truncating.
* ``concat`` — ``W [t; s]`` with ``W`` (2H -> H).
* ``gate``   — ``g ⊙ t + (1 − g) ⊙ s`` with ``g = σ(W_g [t; s])`` learned per item and dimension.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..models import make_adaptor
from ..models.sasrec import init_weights
from .base import (FUSIONS, Transferred, TransferConfig, build_target_model, target_model_config, target_text_emb,
                   transferred)

NAME = "fusion"


class FusionShapeError(ValueError):
    """Two feature tables cannot be fused (their shapes differ); the message names both shapes."""


def fuse_add(target_features: torch.Tensor, source_features: torch.Tensor) -> torch.Tensor:
    """Element-wise ``target + source`` after checking that the shapes are identical.

    Args:
        target_features: (N, H) target item features.
        source_features: (N, H) source features of the *same* N items.

    Raises:
        FusionShapeError: If the shapes differ (no silent broadcasting).
    """
    if target_features.shape != source_features.shape:
        raise FusionShapeError(
            f"add fusion needs identical shapes, got target {tuple(target_features.shape)} and source "
            f"{tuple(source_features.shape)}. Rows must be the same items (a source catalogue's table "
            "cannot be added to a target catalogue's) and widths must match; map the target items "
            "through the source adaptor first, or use fusion='concat' / 'gate'.")
    return target_features + source_features  # (N, H)


class FusedAdaptor(nn.Module):
    """Drop-in replacement for ``TextSeqRec.adaptor``: (N, D) text embeddings -> (N, H) fused features.

    Args:
        source_adaptor: θ_s's adaptor; a frozen copy is kept.
        target_adaptor: A fresh, trainable adaptor (D -> H).
        in_dim: Text-embedding width D.
        mode: ``"add"``, ``"concat"`` or ``"gate"``.

    Raises:
        FusionShapeError: For ``add`` when the two adaptors' output widths differ.
    """

    def __init__(self, source_adaptor: nn.Module, target_adaptor: nn.Module, in_dim: int,
                 mode: str = "gate") -> None:
        super().__init__()
        if mode not in FUSIONS:
            raise ValueError(f"fusion mode must be one of {FUSIONS}, got {mode!r}")
        self.mode = mode
        self.source = copy.deepcopy(source_adaptor).requires_grad_(False)
        self.target = target_adaptor
        self.source.eval()
        h_s, h_t = _out_width(self.source, in_dim), _out_width(self.target, in_dim)
        if mode == "add" and h_s != h_t:
            raise FusionShapeError(f"add fusion needs equal widths, source adaptor gives {h_s}, target {h_t}")
        self.hidden = h_t
        if mode == "concat":
            self.proj = nn.Linear(h_t + h_s, h_t)          # W: (H_t + H_s) -> H_t
        elif mode == "gate":
            self.gate = nn.Linear(h_t + h_s, h_t)          # W_g
            if h_s != h_t:
                raise FusionShapeError(f"gate fusion mixes t and s element-wise: widths {h_t} and {h_s} differ")

    def train(self, mode: bool = True) -> "FusedAdaptor":
        super().train(mode)
        self.source.eval()  # the frozen source view never uses dropout
        return self

    def forward(self, text_emb: torch.Tensor) -> torch.Tensor:
        t = self.target(text_emb)                          # (N, H)
        with torch.no_grad():
            s = self.source(text_emb)                      # (N, H)
        if self.mode == "add":
            return fuse_add(t, s)                          # (N, H)
        both = torch.cat([t, s], dim=-1)                   # (N, 2H)
        if self.mode == "concat":
            return self.proj(both)                         # (N, H)
        g = torch.sigmoid(self.gate(both))                 # (N, H)
        return g * t + (1 - g) * s                         # (N, H)


def _out_width(adaptor: nn.Module, in_dim: int) -> int:
    """Output width H of an adaptor, probed with one zero row of width ``in_dim``."""
    was = adaptor.training
    adaptor.eval()
    with torch.no_grad():
        width = adaptor(torch.zeros(1, in_dim)).shape[-1]
    adaptor.train(was)
    return int(width)


def transfer(knowledge, target, config: TransferConfig = TransferConfig(), *, text_emb=None) -> Transferred:
    """θ_s's encoder (trained) reading fused item features (``config.fusion``)."""
    emb = target_text_emb(knowledge, target, text_emb)  # (N_t, D)
    model = build_target_model(knowledge, emb, use_id=config.use_id, config=config)
    own = target_model_config(knowledge, config)  # the fresh adaptor drops out like the rest of θ_t
    fresh = make_adaptor(own.get("adaptor", "linear"), model.text_dim, model.hidden,
                         float(own.get("dropout", 0.2)))
    fresh.apply(init_weights)
    model.adaptor = FusedAdaptor(model.adaptor, fresh, model.text_dim, config.fusion)
    if config.fusion in ("concat", "gate"):
        (model.adaptor.proj if config.fusion == "concat" else model.adaptor.gate).apply(init_weights)
    return transferred(NAME, model, extra={"fusion": config.fusion})
