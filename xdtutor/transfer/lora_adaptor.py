"""Strategy 5b — LoRA on the encoder *and* the item adaptor trained in full.

The adaptor (text embedding -> item representation) has more parameters than the LoRA matrices
(57,536 vs 16,384 in the default MLP configuration), so this variant is a different bet from
:mod:`.lora`: adapt how the target's items are represented, and the sequence encoder only by BA.
"""

from __future__ import annotations

from . import lora
from .base import Transferred, TransferConfig

NAME = "lora_adaptor"


def transfer(knowledge, target, config: TransferConfig = TransferConfig(), *, text_emb=None) -> Transferred:
    """θ_s wrapped with LoRA; fine-tuning trains BA and the adaptor, then merges BA into θ_s."""
    return lora.build(NAME, knowledge, target, config, text_emb=text_emb, train_adaptor=True)
