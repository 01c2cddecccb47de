"""Stage 5 — the transfer menu. Every strategy is a module with the same entry point::

    apply(knowledge, target, config, *, device=None, text_emb=None) -> TransferResult

=================  ==========================================================  =================
strategy           what is trained on the target                               θ_t
=================  ==========================================================  =================
``zero_shot``      nothing                                                     θ_s
``full_finetune``  everything                                                  θ_s + Δθ
``l2sp``           everything, with α‖θ_t − θ_s‖²                              θ_s + small Δθ
``frozen_adaptor`` the item adaptor [+ ID embedding]; encoder frozen           θ_s (encoder)
``lora``           low-rank BA on the encoder's layers (peft) [+ adaptor]      θ_s + BA
``fusion``         a target adaptor fused (add/concat/gate) with θ_s's one     θ_s + Δθ
``mapping``        f(source user rep) -> target user rep for cold users        (EMCDR)
=================  ==========================================================  =================

:mod:`.diagnostics` scores how alike two catalogues are (a warning sign for negative transfer).
"""

from __future__ import annotations

from . import diagnostics, frozen_adaptor, full_finetune, fusion, l2sp, lora, mapping, zero_shot
from .base import TransferConfig, TransferResult

STRATEGIES = {
    "zero_shot": zero_shot,
    "full_finetune": full_finetune,
    "l2sp": l2sp,
    "frozen_adaptor": frozen_adaptor,
    "lora": lora,
    "fusion": fusion,
    "mapping": mapping,
}


def get_strategy(name: str):
    """The strategy module called ``name`` (one of :data:`STRATEGIES`)."""
    if name not in STRATEGIES:
        raise KeyError(f"unknown transfer strategy {name!r}; choose from {', '.join(STRATEGIES)}")
    return STRATEGIES[name]


__all__ = ["STRATEGIES", "TransferConfig", "TransferResult", "diagnostics", "get_strategy", "frozen_adaptor",
           "full_finetune", "fusion", "l2sp", "lora", "mapping", "zero_shot"]
