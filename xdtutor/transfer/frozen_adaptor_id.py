"""Strategy 8b — UniSRec's text + ID fine-tuning: the sequence encoder frozen, the item adaptor and a
new ID embedding per target item trained.

``transductive`` adds the ID embedding and trains everything; UniSRec's own transductive fine-tuning
keeps the sequence encoder (transformer + positions) of θ_s fixed and trains only what represents an
item: the MoE adaptor over the text features plus the fresh ID table (N_t, H). The same as
``frozen_adaptor`` with ``transfer.use_id: true``, as a menu entry of its own so that a results table
names what each row trained.
"""

from __future__ import annotations

from .base import Transferred, TransferConfig, build_target_model, target_text_emb, transferred

NAME = "frozen_adaptor_id"


def transfer(knowledge, target, config: TransferConfig = TransferConfig(), *, text_emb=None) -> Transferred:
    """θ_s with ``use_id=True``; ``model.encoder`` frozen, ``model.adaptor`` and ``model.id_embedding`` train."""
    emb = target_text_emb(knowledge, target, text_emb)  # (N_t, D)
    model = build_target_model(knowledge, emb, use_id=True, config=config)
    model.encoder.requires_grad_(False)
    return transferred(NAME, model)
