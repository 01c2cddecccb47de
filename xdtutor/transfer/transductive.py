"""Strategy 8 — transductive (text + ID): θ_s plus a new ID embedding per target item, all fine-tuned.

UniSRec's "text + ID" setting with everything trained (UniSRec itself keeps the sequence encoder
frozen: ``frozen_adaptor_id``): the text path carries what the source taught, the fresh
ID embedding (N_t, H) learns what text misses about each target item (it exists only for this
catalogue, so it cannot come from the source). The same as ``full_finetune`` with
``transfer.use_id: true``, as a menu entry of its own so it is compared side by side.
"""

from __future__ import annotations

from .base import Transferred, TransferConfig, build_target_model, target_text_emb, transferred

NAME = "transductive"


def transfer(knowledge, target, config: TransferConfig = TransferConfig(), *, text_emb=None) -> Transferred:
    """θ_s with ``use_id=True`` on the target catalogue; everything trains."""
    emb = target_text_emb(knowledge, target, text_emb)  # (N_t, D)
    model = build_target_model(knowledge, emb, use_id=True, config=config)
    return transferred(NAME, model)
