"""Most-popular baseline: every user gets the same ranking, by training-interaction counts."""

from __future__ import annotations

from typing import Iterable

import numpy as np
import torch
from torch import nn


class Popularity(nn.Module):
    """Scores each item by how often it occurs in the training sequences.

    An ``nn.Module`` only so that ``.to(device)``/``.eval()`` work like for the neural models; it has
    no parameters and is fitted with :meth:`fit` (sklearn style), not with :func:`xdtutor.train.fit`.

    Args:
        n_items: Catalogue size N.
    """

    def __init__(self, n_items: int) -> None:
        super().__init__()
        if n_items < 1:
            raise ValueError(f"n_items must be positive, got {n_items}")
        self.n_items = n_items
        self.register_buffer("counts_", torch.zeros(n_items))
        self.register_buffer("scores_", torch.arange(n_items, 0, -1, dtype=torch.float32))

    def fit(self, sequences: Iterable[np.ndarray]) -> "Popularity":
        """Count item occurrences in ``sequences`` (0-based ids); returns ``self``."""
        counts = np.zeros(self.n_items, dtype=np.float64)
        for seq in sequences:
            seq = np.asarray(seq, dtype=np.int64)
            if seq.size and (seq.min() < 0 or seq.max() >= self.n_items):
                raise ValueError(f"item id out of range [0, {self.n_items}) in training sequences")
            np.add.at(counts, seq, 1.0)
        self.counts_ = torch.as_tensor(counts, dtype=torch.float32, device=self.counts_.device)
        # A ranking, not just counts: equal counts are ordered by item id (lower first), the way a
        # deployed "most popular" list is, so the evaluation never has to guess about ties.
        # Scores are N - position: exact integers in float32 for any realistic catalogue.
        order = np.lexsort((np.arange(self.n_items), -counts))  # most popular first
        scores = np.empty(self.n_items, dtype=np.float32)
        scores[order] = np.arange(self.n_items, 0, -1, dtype=np.float32)
        self.scores_ = torch.as_tensor(scores, device=self.counts_.device)
        return self

    def score(self, item_seq: torch.Tensor) -> torch.Tensor:
        """(B, L) -> (B, N): the same popularity ranking (as descending scores) for every row."""
        return self.scores_.to(item_seq.device).unsqueeze(0).repeat(item_seq.shape[0], 1)  # (B, N), a copy: callers may mask in place
