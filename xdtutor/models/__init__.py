"""Stage 3 models: every recommender offers ``score(item_seq (B, L)) -> (B, N)`` and ``n_items``.

* :class:`Popularity` — counts, the same ranking for everyone.
* :class:`SASRec` — ID embeddings + causal transformer (target-only baseline).
* :class:`TextSeqRec` — frozen language-model item embeddings -> adaptor [+ ID] -> the same transformer;
  works on unseen catalogues (:meth:`TextSeqRec.set_catalogue`).
"""

from __future__ import annotations

from torch import nn

from .adaptors import ADAPTORS, LinearAdaptor, MLPAdaptor, MoEAdaptor, WhiteningAdaptor, make_adaptor
from .blocks import SequenceEncoder
from .config import ModelConfig
from .popularity import Popularity
from .sasrec import SASRec
from .text_seqrec import TextSeqRec, transferable_names


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """``(total, trainable)`` numbers of parameters (buffers such as the frozen text table excluded)."""
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


__all__ = ["ADAPTORS", "LinearAdaptor", "MLPAdaptor", "MoEAdaptor", "ModelConfig", "Popularity", "SASRec",
           "SequenceEncoder", "TextSeqRec", "WhiteningAdaptor", "count_parameters", "make_adaptor",
           "transferable_names"]
