"""Strategy 8 — transductive (text + ID): θ_s plus a new ID embedding per target item, all fine-tuned.

UniSRec's "text + ID" setting with everything trained (UniSRec itself keeps the sequence encoder
frozen: ``frozen_adaptor_id``): the text path carries what the source taught, the fresh
ID embedding (N_t, H) learns what text misses about each target item (it exists only for this
catalogue, so it cannot come from the source). The same as ``full_finetune`` with
``transfer.use_id: true`` (built by it, so the two train the same parts), as a menu entry of its own
so it is compared side by side.
"""

from __future__ import annotations

from dataclasses import replace

from . import full_finetune
from .base import Transferred, TransferConfig, transferred

NAME = "transductive"


def transfer(knowledge, target, config: TransferConfig = TransferConfig(), *, text_emb=None) -> Transferred:
    """``full_finetune`` with ``use_id=True``: θ_s plus a fresh (N_t, H) ID table; everything trains."""
    full = full_finetune.transfer(knowledge, target, replace(config, use_id=True), text_emb=text_emb)
    return transferred(NAME, full.model)
