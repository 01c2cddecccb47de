"""The transformer sequence encoder shared by :class:`~xdtutor.models.SASRec` and
:class:`~xdtutor.models.TextSeqRec`.

Input: item vectors of a left-padded sequence ``(B, L, H)`` plus the padding mask. Output: one state
per position ``(B, L, H)``; the state at position ``t`` only depends on items ``0 … t`` (causal).

Left padding and causal attention together leave the padding positions at the start of a row with
*no* visible key at all, which makes a softmax over an all-masked row NaN. We always let a position
attend to itself, so every row has at least one visible key; for real positions that changes
nothing (they see themselves anyway), and padding outputs are zeroed before returning.

Speed: most histories are much shorter than ``max_len`` (Food: 4 items on average against 50
columns), and one long history in a batch used to make every row pay for 50 positions — in the
transformer and in dropout's random masks. The encoder therefore sorts a batch's rows by length and
runs the transformer on chunks of ``chunk_rows`` rows, each cut to its own longest history
(leading columns that are padding in every row of a chunk are dropped; positions are counted from
the right, so this changes no result: every row is encoded on its own). The batch itself — which
rows train together — is unchanged. :func:`last_states` does the same for scoring.

The chunks pay on a CPU, where a step's time is arithmetic. On a GPU a step of this small model is
bound by kernel launches and by the host waiting for the device (each chunk reads its longest
history back), so the chunks cost more than one padded batch (``benchmarks/results/gpu/``): the default
(``chunk_rows=None``) chunks on the CPU only (:data:`CPU_CHUNK_ROWS` rows) and encodes the whole
batch at once elsewhere. An explicit ``chunk_rows`` is used on every device
(``benchmarks/bench_training.py --chunk-rows 32 0`` compares them).

Both shortcuts read the data to choose shapes, which ``torch.compile(fullgraph=True)`` cannot
trace. ``static_shapes = True`` (set by the models' ``use_static_shapes``) turns them off: every
row is encoded over all ``L`` columns — more arithmetic on CPU, one graph for a compiler.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

#: Rows per length-sorted chunk on the CPU when ``SequenceEncoder.chunk_rows`` is ``None`` (the default);
#: against none, ``benchmarks/results/training*.json``.
CPU_CHUNK_ROWS = 32


class SequenceEncoder(nn.Module):
    """Learned positions + LayerNorm/dropout + ``n_layers`` pre-LN causal transformer layers.

    Args:
        hidden: Model width H.
        n_layers: Number of transformer layers.
        n_heads: Attention heads (must divide ``hidden``).
        max_len: Longest sequence L (number of learned positions).
        dropout: Dropout on embeddings, attention and feed-forward.
        ffn_mult: Feed-forward width as a multiple of ``hidden``.
        chunk_rows: Rows per length-sorted chunk (see the module docstring); 0 = no chunking;
            ``None`` = :data:`CPU_CHUNK_ROWS` on the CPU, no chunking on other devices.
    """

    def __init__(self, hidden: int = 64, n_layers: int = 2, n_heads: int = 2, max_len: int = 50,
                 dropout: float = 0.2, ffn_mult: int = 4, chunk_rows: int | None = None) -> None:
        super().__init__()
        self.chunk_rows = chunk_rows
        self.static_shapes = False  # True: no padding trim, no length-sorted chunks (see the module doc)
        if hidden % n_heads != 0:
            raise ValueError(f"hidden={hidden} must be divisible by n_heads={n_heads}")
        self.hidden, self.n_heads, self.max_len = hidden, n_heads, max_len
        self.position = nn.Embedding(max_len, hidden)
        self.input_norm = nn.LayerNorm(hidden)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(hidden, n_heads, dim_feedforward=ffn_mult * hidden,
                                       dropout=dropout, activation="gelu", batch_first=True,
                                       norm_first=True)
            for _ in range(n_layers)
        )
        self.output_norm = nn.LayerNorm(hidden)

    def attention_mask(self, is_item: torch.Tensor) -> torch.Tensor:
        """Boolean mask ``(B * heads, L, L)``; ``True`` = may NOT attend (PyTorch's convention).

        Position ``i`` may attend to ``j`` iff ``j <= i`` and ``j`` is a real item, or ``j == i``.
        """
        B, L = is_item.shape
        causal = torch.ones(L, L, dtype=torch.bool, device=is_item.device).tril()  # (L, L)
        allowed = causal.unsqueeze(0) & is_item.unsqueeze(1)                       # (B, L, L)
        allowed = allowed | torch.eye(L, dtype=torch.bool, device=is_item.device)  # self always
        return (~allowed).repeat_interleave(self.n_heads, dim=0)                   # (B*heads, L, L)

    def forward(self, item_vectors: torch.Tensor, is_item: torch.Tensor) -> torch.Tensor:
        """Encode a left-padded sequence.

        Args:
            item_vectors: (B, L, H) item representations (padding rows may hold anything).
            is_item: (B, L) bool, ``True`` for real items, ``False`` for padding.

        Returns:
            (B, L, H) states; padding positions are zero.
        """
        B, L, H = item_vectors.shape
        if L > self.max_len:
            raise ValueError(f"sequence length {L} exceeds max_len={self.max_len}")
        chunk = self.chunk_rows_on(item_vectors.device)
        if self.static_shapes or not chunk or B <= chunk:
            return self._encode(item_vectors, is_item)
        order = torch.argsort(is_item.sum(dim=1), stable=True)                 # (B,) short rows first
        parts = [self._encode(item_vectors[rows], is_item[rows]) for rows in order.split(chunk)]
        return torch.cat(parts)[torch.argsort(order)]                            # (B, L, H), original order

    def chunk_rows_on(self, device: torch.device) -> int:
        """Rows per length-sorted chunk on ``device`` (0 = the whole batch): ``chunk_rows`` when set, else
        :data:`CPU_CHUNK_ROWS` on the CPU and 0 elsewhere (see the module docstring)."""
        if self.chunk_rows is not None:
            return self.chunk_rows
        return CPU_CHUNK_ROWS if torch.device(device).type == "cpu" else 0

    def _encode(self, item_vectors: torch.Tensor, is_item: torch.Tensor) -> torch.Tensor:
        """(b, L, H) -> (b, L, H) for rows encoded together, cut to their longest history."""
        B, L, H = item_vectors.shape
        # Leading columns that are padding in every row: drop them, pad the output back at the end.
        if self.static_shapes:
            n_pad = 0
        else:
            n_pad = int(is_item.any(dim=0).int().argmax()) if bool(is_item.any()) else L - 1
        item_vectors, is_item = item_vectors[:, n_pad:], is_item[:, n_pad:]  # (B, L', H), (B, L')
        L = L - n_pad
        # Positions count from the right so the latest item always gets the same position vector.
        pos = torch.arange(self.max_len - L, self.max_len, device=item_vectors.device)  # (L',)
        x = item_vectors + self.position(pos).unsqueeze(0)          # (B, L', H)
        x = self.dropout(self.input_norm(x))                        # (B, L', H)
        mask = self.attention_mask(is_item)                         # (B*heads, L', L')
        for layer in self.layers:
            x = layer(x, src_mask=mask)                             # (B, L', H)
        x = self.output_norm(x)                                     # (B, L', H)
        x = x * is_item.unsqueeze(-1).to(x.dtype)                   # (B, L', H), padding = 0
        return torch.cat([x.new_zeros(B, n_pad, H), x], dim=1)      # (B, L, H)


def last_states(encode: Callable[[torch.Tensor], torch.Tensor], item_seq: torch.Tensor,
                chunk: int = 256) -> torch.Tensor:
    """Last-position states of a big batch, encoded in length-sorted chunks.

    Args:
        encode: Maps a left-padded ``(b, l)`` id batch to its ``(b, l, H)`` states.
        item_seq: (B, L) left-padded ids.
        chunk: Rows per call of ``encode``.

    Returns:
        (B, H) states at the last column, in the original row order.
    """
    B = item_seq.shape[0]
    if B <= chunk:
        return encode(item_seq)[:, -1]                              # (B, H)
    order = torch.argsort((item_seq > 0).sum(dim=1), stable=True)  # (B,) short rows first
    parts = [encode(item_seq[order[s:s + chunk]])[:, -1] for s in range(0, B, chunk)]
    out = torch.empty(B, parts[0].shape[-1], dtype=parts[0].dtype, device=parts[0].device)
    out[order] = torch.cat(parts)                                   # (B, H)
    return out
