"""The architecture of the text-based recommender, as a config section (``model:`` in YAML)."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import check, check_types, to_dict
from .adaptors import ADAPTORS
from .text_seqrec import SIMILARITIES


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the text-based recommender (:class:`~xdtutor.models.TextSeqRec` keyword
    arguments); source and target share it, and the ID baseline (SASRec) takes its sizes.

    Attributes:
        hidden: Width H of item and sequence representations.
        n_layers: Transformer layers.
        n_heads: Attention heads (``hidden`` must be divisible by it).
        max_len: Longest history fed to the model; also the protocol's history length and every
            training loop's window length.
        dropout: Dropout in the transformer and the adaptor.
        adaptor: Item adaptor on the frozen PLM embeddings (``linear``, ``mlp``, ``whiten``, ``moe``).
        similarity: ``dot`` or ``cos`` (cosine divided by ``temperature``).
        temperature: Divides cosine logits.
    """

    hidden: int = 64
    n_layers: int = 2
    n_heads: int = 2
    max_len: int = 50
    dropout: float = 0.2
    adaptor: str = "mlp"
    similarity: str = "cos"
    temperature: float = 0.07

    def __post_init__(self) -> None:
        check_types(self)
        check(self.hidden > 0 and self.n_layers > 0 and self.n_heads > 0, "hidden, n_layers and n_heads must be positive")
        check(self.hidden % self.n_heads == 0, f"hidden={self.hidden} must be divisible by n_heads={self.n_heads}")
        check(self.max_len > 0, f"max_len must be positive, got {self.max_len}")
        check(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")
        check(self.adaptor in ADAPTORS, f"adaptor must be one of {ADAPTORS}, got {self.adaptor!r}")
        check(self.similarity in SIMILARITIES, f"similarity must be one of {SIMILARITIES}, got {self.similarity!r}")
        check(self.temperature > 0, f"temperature must be positive, got {self.temperature}")

    def kwargs(self) -> dict:
        """The ``TextSeqRec`` keyword arguments."""
        return to_dict(self)

    def sasrec_kwargs(self) -> dict:
        """The sizes the ID baseline (``SASRec``) shares with the text model."""
        return {k: getattr(self, k) for k in ("hidden", "n_layers", "n_heads", "max_len", "dropout")}
