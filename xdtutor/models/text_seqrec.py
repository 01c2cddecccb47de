"""A text-based sequential recommender (UniSRec-style) that works on catalogues it never saw.

Item ``j`` is represented by ``adaptor(e_j)`` where ``e_j`` is the *frozen* language-model embedding of
the item's text (a buffer, not a parameter), optionally plus a learned ID embedding (transductive).
The same causal transformer as SASRec reads the sequence, and the score of item ``j`` is
``sim(state, item_j)``: a dot product, or a cosine divided by a temperature (UniSRec uses 0.07).

Because nothing but the optional ID embedding depends on the catalogue, :meth:`set_catalogue` moves
a trained model to another domain's items — the basis of every transfer strategy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .adaptors import ADAPTORS, make_adaptor
from .blocks import SequenceEncoder, last_states
from .sasrec import (batch_catalogue, check_trains_on_all, domain_catalogue, init_weights, loss_targets,
                     per_domain_ce, set_scored, softmax_ce)

SIMILARITIES = ("dot", "cos")


def transferable_names(model: nn.Module) -> list[str]:
    """Names of the parameters that make up θ: everything but the catalogue-specific ID embedding.

    The text table is a buffer, not a parameter, so θ never depends on a catalogue: θ_s of a model
    trained on the source loads into a model built on the target's items.
    """
    return [n for n, _ in model.named_parameters() if not n.startswith("id_embedding")]


class TextSeqRec(nn.Module):
    """Frozen PLM item embeddings -> adaptor [+ ID embedding] -> causal transformer.

    Args:
        text_emb: (N, D) frozen item-text embeddings of the catalogue (row ``i`` = item ``i``).
        hidden: Model width H.
        n_layers: Transformer layers.
        n_heads: Attention heads.
        max_len: Longest history L.
        dropout: Dropout in the transformer and the adaptor.
        adaptor: ``"linear"``, ``"mlp"``, ``"whiten"`` or ``"moe"`` (see :mod:`.adaptors`).
        use_id: Add a learned per-item ID embedding to the text representation (transductive:
            it only exists for the current catalogue and is re-created by :meth:`set_catalogue`).
        similarity: ``"dot"`` or ``"cos"`` (cosine / ``temperature``).
        temperature: Divides cosine logits (ignored for ``"dot"``).

    Submodules (named so transfer strategies can freeze or wrap them): ``adaptor``, ``encoder``
    (:class:`~xdtutor.models.blocks.SequenceEncoder`, which holds the learned ``position`` table,
    also reachable as ``model.position``), ``id_embedding`` (only when ``use_id``).
    """

    def __init__(self, text_emb: torch.Tensor, hidden: int = 64, n_layers: int = 2, n_heads: int = 2,
                 max_len: int = 50, dropout: float = 0.2, adaptor: str = "linear", use_id: bool = False,
                 similarity: str = "cos", temperature: float = 0.07) -> None:
        super().__init__()
        if adaptor not in ADAPTORS:
            raise ValueError(f"unknown adaptor {adaptor!r}; choose one of {', '.join(ADAPTORS)}")
        if similarity not in SIMILARITIES:
            raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}")
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        text_emb = self._check_table(text_emb)
        self.hidden, self.max_len, self.use_id = hidden, max_len, use_id
        self.similarity, self.temperature = similarity, temperature
        self.text_dim = text_emb.shape[1]
        # The catalogue is data, not a parameter: non-persistent, so checkpoints stay catalogue-free
        # and a source model's state dict loads into a model built on the target catalogue.
        self.register_buffer("text_emb", text_emb, persistent=False)          # (N, D)
        self.adaptor = make_adaptor(adaptor, self.text_dim, hidden, dropout)
        self.encoder = SequenceEncoder(hidden, n_layers, n_heads, max_len, dropout)
        self.id_embedding = nn.Embedding(self.n_items, hidden) if use_id else None
        self.n_scored, self.train_on = self.n_items, "all"  # ranked items and training targets (score_only)
        self.apply(init_weights)
        if adaptor == "moe":  # UniSRec starts with uniform gates
            nn.init.zeros_(self.adaptor.w_gate)
            nn.init.zeros_(self.adaptor.w_noise)
            for expert in self.adaptor.experts:
                nn.init.zeros_(expert.bias)
        elif adaptor == "whiten":
            nn.init.zeros_(self.adaptor.bias)

    @staticmethod
    def _check_table(text_emb: torch.Tensor) -> torch.Tensor:
        text_emb = torch.as_tensor(text_emb, dtype=torch.float32)
        if text_emb.ndim != 2 or text_emb.shape[0] < 1:
            raise ValueError(f"text_emb must be a non-empty (N, D) table, got shape {tuple(text_emb.shape)}")
        if not torch.isfinite(text_emb).all():
            raise ValueError("text_emb contains NaN or inf")
        return text_emb

    @property
    def n_items(self) -> int:
        return self.text_emb.shape[0]

    @property
    def static_shapes(self) -> bool:
        return self.encoder.static_shapes

    def use_static_shapes(self, on: bool = True) -> "TextSeqRec":
        """Shapes that never depend on the data (for ``torch.compile(fullgraph=True)``); returns
        ``self``. As :meth:`SASRec.use_static_shapes <xdtutor.models.SASRec.use_static_shapes>`."""
        self.encoder.static_shapes = on
        return self

    @property
    def position(self) -> nn.Embedding:
        """The learned position embedding (lives in ``encoder``)."""
        return self.encoder.position

    def score_only(self, n: int, train_on: str = "all") -> "TextSeqRec":
        """Rank only items ``0 … n-1``: with a joint table (target items first, then source items)
        histories may hold every item, recommendations are target items; returns ``self``.

        Args:
            n: Items ranked by :meth:`score`.
            train_on: ``"all"`` — the training loss predicts every next item over the joint table
                (multi-domain training); ``"scored"`` — only next items among the first ``n``,
                ranked against those ``n`` (source items are context, and a step costs O(n)).
        """
        return set_scored(self, n, train_on)

    def set_catalogue(self, text_emb: torch.Tensor) -> "TextSeqRec":
        """Switch to another catalogue (e.g. the target domain); returns ``self``.

        The adaptor and transformer are kept. With ``use_id`` a fresh ID embedding (N_new, H) is
        created (N(0, 0.02) initialisation) — IDs do not transfer between catalogues.

        Raises:
            ValueError: If the embedding width differs from the one the adaptor was built for.
        """
        text_emb = self._check_table(text_emb)
        if text_emb.shape[1] != self.text_dim:
            raise ValueError(f"text_emb has width {text_emb.shape[1]}, the adaptor expects {self.text_dim}")
        device = self.text_emb.device
        self.text_emb = text_emb.to(device)                                    # (N_new, D)
        self.n_scored, self.train_on = self.n_items, "all"
        if self.use_id:
            self.id_embedding = nn.Embedding(self.n_items, self.hidden).to(device)
            init_weights(self.id_embedding)
        return self

    def item_representations(self, ids: torch.Tensor | None = None) -> torch.Tensor:
        """(N, H): adaptor(text embedding) [+ ID embedding] of every catalogue item.

        Args:
            ids: Optional (U,) 0-based item ids; then only those rows (U, H) are computed. The
                adaptors act row by row, so a row does not depend on which other rows are computed.
        """
        text = self.text_emb if ids is None else self.text_emb[ids]             # (N|U, D)
        items = self.adaptor(text)                                             # (N|U, H)
        if self.id_embedding is not None:
            ids_emb = self.id_embedding.weight if ids is None else self.id_embedding.weight[ids]
            items = items + ids_emb                                            # (N|U, H)
        return items

    def _encode(self, item_seq: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        table = torch.cat([items.new_zeros(1, items.shape[1]), items])         # (N+1, H), row 0 = pad
        x = table[item_seq]                                                    # (B, L, H)
        return self.encoder(x, item_seq > 0)                                   # (B, L, H)

    def forward(self, item_seq: torch.Tensor) -> torch.Tensor:
        """(B, L) left-padded +1-shifted ids -> (B, L, H) causal states."""
        return self._encode(item_seq, self.item_representations())

    def user_representation(self, item_seq: torch.Tensor) -> torch.Tensor:
        """(B, L) -> (B, H): the state at the last position."""
        return self.forward(item_seq)[:, -1]

    def _logits_parts(self, states: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
        if self.similarity == "cos":  # in float32: under bf16 autocast the unit vectors would carry bf16 error
            return F.normalize(states.float(), dim=-1), F.normalize(items.float(), dim=-1), self.temperature
        return states, items, 1.0

    def score(self, item_seq: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L) -> (B, N) next-item scores over the ranked items (``n_scored``, by default all).

        Args:
            item_seq: (B, L) left-padded +1-shifted ids.
            items: (N, H) :meth:`item_representations`, when the caller computed them once for many
                batches (evaluation does: the adaptor over the whole catalogue is then not rerun per
                batch). ``None`` = computed here.
        """
        if items is None:
            items = self.item_representations()                                # (N, H)
        user = last_states(lambda seq: self._encode(seq, items), item_seq)    # (B, H)
        user, items, t = self._logits_parts(user, items[: self.n_scored])
        return user @ items.T / t                                              # (B, N)

    def loss(self, item_seq: torch.Tensor, targets: torch.Tensor, negatives: str = "all",
             logits_chunk: int = 0) -> torch.Tensor:
        """Softmax CE at every position; ``targets`` (B, L) are +1-shifted, 0 = ignore.

        Args:
            item_seq: (B, L) left-padded +1-shifted inputs.
            targets: (B, L) next items, +1-shifted, 0 = ignore.
            negatives: ``"all"`` — softmax over the whole catalogue (what evaluation ranks);
                ``"in_batch"`` — softmax over the distinct items of the batch (inputs and
                targets), UniSRec's pretraining objective: the adaptor then runs on those U rows
                only, so a step costs O(U) instead of O(N) on a large source catalogue;
                ``"per_domain"`` — a target among the ranked items (``n_scored``) against all of
                them, any other (a source item in joint training) against the batch's other items
                (:func:`~.sasrec.per_domain_ce`): the adaptor runs on the n ranked + U other rows.
            logits_chunk: Target rows per logits chunk (see :func:`~.sasrec.softmax_ce`; 0 = none).
        """
        if negatives == "all":
            items = self.item_representations()                                # (N, H)
        elif self.static_shapes:
            raise ValueError(f"negatives={negatives!r} has data-dependent shapes; use_static_shapes(False) for it")
        elif negatives == "per_domain":  # the ranked items plus the batch's other items
            check_trains_on_all(self)
            ids, item_seq, targets = domain_catalogue(item_seq, targets, self.n_scored)
            items = self.item_representations(ids)                             # (n + U, H)
            states = self._encode(item_seq, items)                             # (B, L, H)
            states, items, t = self._logits_parts(states, items)
            return per_domain_ce(states, items, targets, self.n_scored, temperature=t, logits_chunk=logits_chunk)
        else:  # the batch re-indexed into its own small catalogue of U items
            ids, item_seq, targets = batch_catalogue(item_seq, targets, negatives)
            items = self.item_representations(ids)                             # (U, H)
        states = self._encode(item_seq, items)                                 # (B, L, H)
        if negatives == "all" and self.train_on == "scored":  # next items beyond the ranked ones are context
            items, targets = items[: self.n_scored], loss_targets(self, targets)  # (n, H)
        states, items, t = self._logits_parts(states, items)
        return softmax_ce(states, items, targets, temperature=t, logits_chunk=logits_chunk,
                          static_shapes=self.static_shapes)
