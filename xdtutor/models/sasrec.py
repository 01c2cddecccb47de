"""SASRec (Kang & McAuley, 2018): the ID-based target-only baseline.

Each catalogue item has a learned embedding; a causal transformer reads the left-padded sequence;
the score of item ``j`` for the next position is ``state · embedding_j``. Trained with full-softmax
cross-entropy over the whole catalogue at every position (as RecBole's ``loss_type="CE"``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from .blocks import SequenceEncoder, last_states


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """RecBole/BERT-style initialisation: N(0, std) for Linear/Embedding, LayerNorm = identity."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=std)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def softmax_ce(states: torch.Tensor, items: torch.Tensor, targets: torch.Tensor,
               temperature: float = 1.0, logits_chunk: int = 0, static_shapes: bool = False) -> torch.Tensor:
    """Full-softmax cross-entropy of next-item targets, ignoring padding.

    Args:
        states: (B, L, H) sequence states.
        items: (N, H) item representations of the N catalogue items.
        targets: (B, L) +1-shifted target ids, 0 = ignore.
        temperature: Logits are divided by it.
        logits_chunk: 0 = all M target rows at once, holding the (M, N) logits and their gradient.
            Otherwise the loss is summed over chunks of ``logits_chunk`` rows, each under activation
            checkpointing: only one chunk's (logits_chunk, N) logits exist at a time, in the forward
            and again in the backward pass (recomputed there). Same loss and gradients up to float
            rounding; costs one more logits product per chunk. A 1 M-item catalogue with 12,800
            target rows (batch 256 × 50) needs 51 GB of fp32 logits unchunked (and as much again for
            their gradient), 4 GB per chunk of 1,024 rows.
        static_shapes: Compute logits at every (B × L) position and let ``ignore_index`` drop the
            padding, instead of selecting the M real targets first (a data-dependent shape that
            ``torch.compile(fullgraph=True)`` cannot trace). Same loss; more work when rows are short.

    Returns:
        Scalar mean loss over the non-padding targets.
    """
    if static_shapes:
        picked = states.reshape(-1, states.shape[-1]) / temperature  # (B*L, H)
        labels = targets.reshape(-1) - 1                             # (B*L,), -1 = padding
        return _chunked(picked, items, labels, logits_chunk) / (labels >= 0).sum().clamp(min=1)
    keep = targets > 0                                   # (B, L)
    if not keep.any():  # e.g. a batch whose next items are all context items (score_only(…, "scored"))
        return states.sum() * 0.0
    picked = states[keep] / temperature                  # (M, H): cheaper than dividing the (M, N) logits
    labels = targets[keep] - 1                           # (M,)
    if logits_chunk <= 0 or picked.shape[0] <= logits_chunk:  # "mean", not sum / M: bit-identical to
        return _cross_entropy(picked, items, labels, "mean")   # the committed results' loss
    return _chunked(picked, items, labels, logits_chunk) / labels.shape[0]


def _chunked(picked: torch.Tensor, items: torch.Tensor, labels: torch.Tensor, logits_chunk: int) -> torch.Tensor:
    """Summed cross-entropy, chunk by chunk under activation checkpointing (or at once when 0)."""
    if logits_chunk <= 0 or picked.shape[0] <= logits_chunk:
        return _cross_entropy(picked, items, labels, "sum")
    return sum(checkpoint(_cross_entropy, rows, items, lab, "sum", use_reentrant=False)
               for rows, lab in zip(picked.split(logits_chunk), labels.split(logits_chunk)))


def _cross_entropy(picked: torch.Tensor, items: torch.Tensor, labels: torch.Tensor, reduction: str) -> torch.Tensor:
    """Cross-entropy of (m, H) states against (N, H) items, logits in float32."""
    # Logits in float32 even under bf16 autocast: cosine / 0.07 reaches ~14, where bf16 steps are 0.0625.
    with torch.autocast(device_type=picked.device.type, enabled=False):
        logits = picked.float() @ items.float().T        # (m, N)
    return F.cross_entropy(logits, labels, reduction=reduction, ignore_index=-1)


NEGATIVES = ("all", "in_batch", "per_domain")


def loss_targets(model: nn.Module, targets: torch.Tensor, negatives: str = "all") -> torch.Tensor:
    """The (B, L) next items ``model.loss`` predicts: with ``train_on="scored"`` and the full softmax,
    next items beyond the ``n_scored`` ranked ones are context only (set to 0, ignored). The models'
    losses and the training loop's count of targets (:func:`xdtutor.train.fit` under torchrun) both
    use it, so they cannot disagree."""
    if negatives == "all" and getattr(model, "train_on", "all") == "scored":
        return targets.masked_fill(targets > model.n_scored, 0)
    return targets


def set_scored(model: nn.Module, n: int, train_on: str) -> nn.Module:
    """Validate and set ``model.n_scored`` / ``model.train_on`` (the models' ``score_only``); returns ``model``."""
    if not 1 <= n <= model.n_items:
        raise ValueError(f"score_only needs 1 <= n <= n_items={model.n_items}, got {n}")
    if train_on not in ("all", "scored"):
        raise ValueError(f"train_on must be 'all' or 'scored', got {train_on!r}")
    model.n_scored, model.train_on = n, train_on
    return model


def batch_catalogue(item_seq: torch.Tensor, targets: torch.Tensor,
                    negatives: str = "in_batch") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The distinct items of a batch, and the batch re-indexed into that small catalogue.

    Used for in-batch negatives: every distinct item of the batch (input or target) is a
    candidate once, so an item that occurs twice is never its own negative.

    Args:
        item_seq: (B, L) +1-shifted inputs, 0 = padding.
        targets: (B, L) +1-shifted targets, 0 = ignore.
        negatives: Must be ``"in_batch"`` (the argument exists to give one clear error).

    Returns:
        ``(ids, local_seq, local_targets)``: (U,) sorted 0-based catalogue ids, and the two (B, L)
        tensors with id ``ids[k]`` replaced by ``k + 1`` (0 stays 0).
    """
    if negatives != "in_batch":
        raise ValueError(f"negatives must be one of {NEGATIVES}, got {negatives!r}")
    real = torch.cat([item_seq[item_seq > 0], targets[targets > 0]])       # (M,)
    return _reindexed(torch.unique(real).contiguous(), item_seq, targets)  # (U,) sorted, +1-shifted


def _reindexed(ids: torch.Tensor, item_seq: torch.Tensor,
               targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(ids − 1, local_seq, local_targets)`` for sorted +1-shifted ``ids``: id ``ids[k]`` becomes ``k + 1``."""

    def local(x: torch.Tensor) -> torch.Tensor:
        return torch.where(x > 0, torch.searchsorted(ids, x.contiguous()) + 1, torch.zeros_like(x))  # (B, L)

    return ids - 1, local(item_seq), local(targets)


def check_trains_on_all(model: nn.Module) -> None:
    """``negatives="per_domain"`` learns the source next items too: refuse a model that keeps them as context."""
    if getattr(model, "train_on", "all") == "scored":
        raise ValueError("negatives='per_domain' learns every next item, source ones too; this model was set "
                         "to learn only its ranked items (score_only(..., train_on='scored')): use "
                         "negatives='all' for it")


def domain_catalogue(item_seq: torch.Tensor, targets: torch.Tensor,
                     n_scored: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ranked items plus the batch's other items, and the batch re-indexed into that catalogue.

    Used by ``negatives="per_domain"`` (joint training on a target and a source catalogue): the
    first ``n_scored`` items (the target's, which evaluation ranks) are all candidates, every other
    item only when the batch holds it (as an input or a target). With several sources their items
    form one pool: a source next item competes with the batch's items of every source.

    Args:
        item_seq: (B, L) +1-shifted inputs, 0 = padding.
        targets: (B, L) +1-shifted targets, 0 = ignore.
        n_scored: The number of ranked items (ids 0 … n_scored − 1).

    Returns:
        ``(ids, local_seq, local_targets)``: (n_scored + U,) sorted 0-based catalogue ids — the
        ranked items, then the U distinct other items of the batch — and the two (B, L) tensors with
        id ``ids[k]`` replaced by ``k + 1`` (0 stays 0), so a local id ≤ ``n_scored`` is a ranked item.
    """
    real = torch.cat([item_seq[item_seq > n_scored], targets[targets > n_scored]])  # (M,) other items
    ranked = torch.arange(1, n_scored + 1, device=targets.device, dtype=targets.dtype)
    return _reindexed(torch.cat([ranked, torch.unique(real)]).contiguous(), item_seq, targets)  # (n + U,)


def per_domain_ce(states: torch.Tensor, items: torch.Tensor, targets: torch.Tensor, n_scored: int,
                  temperature: float = 1.0, logits_chunk: int = 0) -> torch.Tensor:
    """Cross-entropy of ``negatives="per_domain"``: full softmax for the ranked items, in-batch for the rest.

    A target among the ranked items is scored against all of them (what evaluation does); any other
    target (a source item in joint training) only against the batch's other items — the two objectives
    of pretrain-then-fine-tune (``"in_batch"`` on the source, ``"all"`` on the target) trained at once,
    so a source row no longer pays for a softmax over every catalogue.

    Args:
        states: (B, L, H) sequence states.
        items: (n_scored + U, H) the representations of :func:`domain_catalogue`'s ``ids``.
        targets: (B, L) its local targets, 0 = ignore.
        n_scored: The number of ranked items (the first rows of ``items``).
        temperature, logits_chunk: As in :func:`softmax_ce`.

    Returns:
        Scalar mean loss over all non-padding targets (each target weighs the same, whatever its domain).
    """
    ranked = targets.masked_fill(targets > n_scored, 0)                            # (B, L)
    other = torch.where(targets > n_scored, targets - n_scored, torch.zeros_like(targets))  # (B, L)
    m_ranked, m_other = (ranked > 0).sum(), (other > 0).sum()
    total = (softmax_ce(states, items[:n_scored], ranked, temperature, logits_chunk) * m_ranked
             + softmax_ce(states, items[n_scored:], other, temperature, logits_chunk) * m_other)
    return total / (m_ranked + m_other).clamp(min=1)


class SASRec(nn.Module):
    """ID-based self-attentive sequential recommender.

    Args:
        n_items: Catalogue size N (item ids 0 … N-1; the model uses id+1 with 0 = padding).
        hidden: Embedding and model width H.
        n_layers: Transformer layers.
        n_heads: Attention heads.
        max_len: Longest history L.
        dropout: Dropout rate.
    """

    def __init__(self, n_items: int, hidden: int = 64, n_layers: int = 2, n_heads: int = 2,
                 max_len: int = 50, dropout: float = 0.2) -> None:
        super().__init__()
        if n_items < 1:
            raise ValueError(f"n_items must be positive, got {n_items}")
        self.n_items, self.hidden, self.max_len = n_items, hidden, max_len
        self.n_scored, self.train_on = n_items, "all"  # ranked items and training targets (score_only)
        self.item_embedding = nn.Embedding(n_items + 1, hidden, padding_idx=0)
        self.encoder = SequenceEncoder(hidden, n_layers, n_heads, max_len, dropout)
        self.apply(init_weights)

    @property
    def static_shapes(self) -> bool:
        return self.encoder.static_shapes

    def use_static_shapes(self, on: bool = True) -> "SASRec":
        """Shapes that never depend on the data (for ``torch.compile(fullgraph=True)``); returns ``self``.

        Turns off the encoder's padding trim and length-sorted chunks and computes the loss at
        every position; results are the same up to float rounding. ``negatives="in_batch"`` and
        ``"per_domain"`` need the data (their candidates depend on the batch) and are refused in this mode.
        """
        self.encoder.static_shapes = on
        return self

    @property
    def position(self) -> nn.Embedding:
        """The learned position embedding (lives in ``encoder``; exposed by name for transfer code)."""
        return self.encoder.position

    def score_only(self, n: int, train_on: str = "all") -> "SASRec":
        """Rank only items ``0 … n-1`` (a target catalogue placed first in a joint one, whose other
        items may appear in histories); returns ``self``.

        Args:
            n: Items ranked by :meth:`score`.
            train_on: ``"all"`` — the training loss predicts every next item over the joint
                catalogue (multi-domain training); ``"scored"`` — only next items among the first
                ``n``, ranked against those ``n`` (the others are context).
        """
        return set_scored(self, n, train_on)

    def forward(self, item_seq: torch.Tensor) -> torch.Tensor:
        """(B, L) left-padded +1-shifted ids -> (B, L, H) causal states."""
        x = self.item_embedding(item_seq)            # (B, L, H)
        return self.encoder(x, item_seq > 0)         # (B, L, H)

    def item_representations(self) -> torch.Tensor:
        """(N, H) embeddings of the real items (padding row excluded)."""
        return self.item_embedding.weight[1:]

    def user_representation(self, item_seq: torch.Tensor) -> torch.Tensor:
        """(B, L) -> (B, H): the state at the last (most recent) position."""
        return self.forward(item_seq)[:, -1]

    def score(self, item_seq: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L) -> (B, N) scores of every ranked item (``n_scored``, by default all) as the next item.

        ``items`` (N, H) may be passed in (as :meth:`TextSeqRec.score` allows); here it is just the
        embedding table, so there is nothing to save.
        """
        if items is None:
            items = self.item_representations()                                    # (N, H)
        user = last_states(self.forward, item_seq)                                 # (B, H)
        return user @ items[: self.n_scored].T                                     # (B, N)

    def loss(self, item_seq: torch.Tensor, targets: torch.Tensor, negatives: str = "all",
             logits_chunk: int = 0) -> torch.Tensor:
        """Softmax CE at every position.

        Args:
            item_seq: (B, L) left-padded +1-shifted inputs.
            targets: (B, L) next items, +1-shifted, 0 = ignore.
            negatives: ``"all"`` ranks each target against the whole catalogue; ``"in_batch"``
                only against the distinct items of the batch (see :func:`batch_catalogue`);
                ``"per_domain"`` a ranked item against all ranked items, any other against the
                batch's other items (see :func:`per_domain_ce`).
            logits_chunk: Target rows per logits chunk (see :func:`softmax_ce`; 0 = no chunking).

        Returns:
            Scalar mean loss over the non-padding targets.
        """
        states = self.forward(item_seq)                                            # (B, L, H)
        if negatives == "all":
            items = self.item_representations()                                    # (N, H)
            if self.train_on == "scored":  # next items beyond the ranked ones are context only
                items, targets = items[: self.n_scored], loss_targets(self, targets)
            return softmax_ce(states, items, targets, logits_chunk=logits_chunk, static_shapes=self.static_shapes)
        if self.static_shapes:
            raise ValueError(f"negatives={negatives!r} has data-dependent shapes; use_static_shapes(False) for it")
        if negatives == "per_domain":
            check_trains_on_all(self)
            ids, _, local_targets = domain_catalogue(item_seq, targets, self.n_scored)
            return per_domain_ce(states, self.item_embedding.weight[ids + 1], local_targets,  # (n + U, H)
                                 self.n_scored, logits_chunk=logits_chunk)
        ids, _, local_targets = batch_catalogue(item_seq, targets, negatives)
        return softmax_ce(states, self.item_embedding.weight[ids + 1], local_targets,  # (U, H) candidates
                          logits_chunk=logits_chunk)
