"""Strategy 8b — UniSRec's text + ID fine-tuning: the sequence encoder frozen, the item adaptor and a
new ID embedding per target item trained.

``transductive`` adds the ID embedding and trains everything; UniSRec's own transductive fine-tuning
keeps the sequence encoder (transformer + positions) of θ_s fixed and trains only what represents an
item: the MoE adaptor over the text features plus the fresh ID table (N_t, H). It is ``frozen_adaptor``
with ``transfer.use_id: true`` (built by it, so the two freeze the same parts), as a menu entry of its
own so that a results table names what each row trained.
"""

from __future__ import annotations

from dataclasses import replace

from . import frozen_adaptor
from .base import Transferred, TransferConfig, transferred

NAME = "frozen_adaptor_id"


def transfer(knowledge, target, config: TransferConfig = TransferConfig(), *, text_emb=None) -> Transferred:
    """``frozen_adaptor`` with ``use_id=True``: ``model.adaptor`` and ``model.id_embedding`` train."""
    frozen = frozen_adaptor.transfer(knowledge, target, replace(config, use_id=True), text_emb=text_emb)
    return transferred(NAME, frozen.model)
