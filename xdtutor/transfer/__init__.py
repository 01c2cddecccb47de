"""Stage 5 — the transfer menu: how θ_t starts from θ_s. Every strategy is a module with ``NAME`` and::

    transfer(knowledge, target, config, *, text_emb=None) -> Transferred

=====================  ========================================================  ======================
strategy               what fine-tuning (step 6) trains on the target            θ_t
=====================  ========================================================  ======================
``zero_shot``          nothing                                                   θ_s
``full_finetune``      everything                                                θ_s + Δθ
``l2sp``               everything, with α‖θ_t − θ_s‖²                            θ_s + small Δθ
``frozen_adaptor``     the item adaptor [+ ID embedding]; encoder frozen         θ_s (encoder)
``lora``               low-rank BA on the encoder's layers (peft)                θ_s + BA
``lora_adaptor``       BA on the encoder and the whole item adaptor              θ_s + BA, new adaptor
``fusion``             a target adaptor fused (add/concat/gate) with θ_s's one   θ_s + Δθ
``transductive``       everything, plus a new ID embedding per target item       θ_s + Δθ, new IDs
``frozen_adaptor_id``  the item adaptor and a new ID embedding; encoder frozen   θ_s (encoder), new IDs
``mixed_history``      everything, reading source items in the histories         θ_s + Δθ
=====================  ========================================================  ======================

Three more use the source's *data* instead of θ_s (``USES_THETA = False``, built from the
experiment's ``model`` section): ``text_mixed`` and ``sasrec_mixed`` (text or ID model on
cross-domain histories) and ``joint`` (target and source sequences trained together).
A strategy with ``VIEW = "mixed"`` or ``"joint"`` is trained and evaluated on that view of the data
(:mod:`xdtutor.data.views`); the others on the target split.

Users with no target history at all are served by a different stage, the EMCDR mapping of
:mod:`xdtutor.cold_users`; how alike two catalogues are is measured by :mod:`xdtutor.diagnostics`.
"""

from __future__ import annotations

from types import ModuleType

from . import (frozen_adaptor, frozen_adaptor_id, full_finetune, fusion, joint, l2sp, lora, lora_adaptor,
               mixed_history, sasrec_mixed, text_mixed, transductive, zero_shot)
from .base import Transferred, TransferConfig

STRATEGIES: dict[str, ModuleType] = {m.NAME: m for m in (
    zero_shot, full_finetune, l2sp, frozen_adaptor, lora, lora_adaptor, fusion, transductive, frozen_adaptor_id,
    mixed_history, text_mixed, sasrec_mixed, joint)}
#: The data each strategy trains and is evaluated on: ``"target"``, ``"mixed"`` or ``"joint"``.
VIEWS: dict[str, str] = {n: getattr(m, "VIEW", "target") for n, m in STRATEGIES.items()}
#: Strategies that start from θ_s (the others train from scratch on source data).
USES_THETA: dict[str, bool] = {n: getattr(m, "USES_THETA", True) for n, m in STRATEGIES.items()}


def get_strategy(name: str) -> ModuleType:
    """The strategy module called ``name`` (one of :data:`STRATEGIES`)."""
    if name not in STRATEGIES:
        raise KeyError(f"unknown transfer strategy {name!r}; choose from {', '.join(STRATEGIES)}")
    return STRATEGIES[name]


__all__ = ["STRATEGIES", "USES_THETA", "VIEWS", "TransferConfig", "Transferred", "frozen_adaptor", "frozen_adaptor_id",
           "full_finetune",
           "fusion", "get_strategy", "joint", "l2sp", "lora", "lora_adaptor", "mixed_history", "sasrec_mixed",
           "text_mixed", "transductive", "zero_shot"]
