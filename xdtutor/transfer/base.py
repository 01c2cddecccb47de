"""What every transfer strategy shares: its config, what it hands to fine-tuning, and θ_t from θ_s.

A strategy is a module of :mod:`xdtutor.transfer` with a ``NAME`` and one function::

    transfer(knowledge: Knowledge, target: SplitDomain, config: TransferConfig, *,
             text_emb=None) -> Transferred

It builds θ_t's starting point from θ_s — which parameters are copied, which stay frozen, what is
new — and says how fine-tuning must treat it (an extra penalty, a context to train in, a step
after training). It trains nothing: step 6, :func:`xdtutor.finetune_target.finetune_target`, does.
``knowledge`` is what :func:`xdtutor.extract_knowledge.extract_knowledge` kept from the source
model, ``target`` the split target domain, ``text_emb`` the target catalogue's PLM embeddings
``(N_t, D)`` (encoded from ``target.domain.texts`` with the knowledge's encoder when omitted).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager

import numpy as np
import torch
from torch import nn

from ..config import check, check_types, from_dict
from ..encoders import EncoderConfig, encode_texts
from ..models import TextSeqRec, count_parameters, transferable_names

FUSIONS = ("add", "concat", "gate")

#: ``TransferConfig`` fields that, when set, replace θ_s's ``model.<field>`` for fine-tuning (no weights).
INHERITED_FROM_MODEL = ("dropout", "temperature")


@dataclass(frozen=True)
class TransferConfig:
    """Settings of the transfer stage (one config for the whole menu; each strategy reads its part).

    Attributes:
        use_id: Add a trainable target ID embedding to the text item representation
            (UniSRec's "text + ID" / transductive setting).
        l2sp_alpha: Weight α of the L2-SP penalty α‖θ_t − θ_s‖².
        lora_rank: Rank r of LoRA's Δθ = BA.
        lora_alpha: LoRA scaling numerator (Δθ is scaled by lora_alpha / lora_rank).
        lora_dropout: Dropout on LoRA's input.
        lora_targets: Names (suffixes) of the encoder's ``nn.Linear`` layers to wrap; empty = all of them.
        fusion: How target item features meet the source's: ``"add"``, ``"concat"`` or ``"gate"``.
        dropout: Dropout of θ_t while it fine-tunes (transformer and adaptors); ``None`` keeps θ_s's
            (``model.dropout`` of pretraining). Dropout holds no weights, so θ_s loads unchanged.
        temperature: Cosine temperature of θ_t; ``None`` keeps θ_s's (``model.temperature``).
    """

    use_id: bool = False
    l2sp_alpha: float = 0.01
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = ()
    fusion: str = "gate"
    dropout: float | None = None
    temperature: float | None = None

    def __post_init__(self) -> None:
        check_types(self)
        check(self.l2sp_alpha >= 0, f"l2sp_alpha must be >= 0, got {self.l2sp_alpha}")
        check(self.lora_rank > 0, f"lora_rank must be positive, got {self.lora_rank}")
        check(0.0 <= self.lora_dropout < 1.0, f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        check(self.fusion in FUSIONS, f"fusion must be one of {FUSIONS}, got {self.fusion!r}")
        check(self.dropout is None or 0.0 <= self.dropout < 1.0,
              f"dropout must be in [0, 1) or null, got {self.dropout}")
        check(self.temperature is None or self.temperature > 0,
              f"temperature must be positive or null, got {self.temperature}")

    def model_overrides(self) -> dict[str, float]:
        """The ``TextSeqRec`` settings fine-tuning changes from θ_s's (the ones that are not ``None``).

        They change no parameter shape, so a strategy that starts from θ_s — whose ``model.*`` is
        fixed by pretraining — can still search them.
        """
        return {k: getattr(self, k) for k in INHERITED_FROM_MODEL if getattr(self, k) is not None}


@dataclass(eq=False)
class Transferred:
    """θ_t's starting point, as a strategy hands it to fine-tuning (step 6).

    Attributes:
        name: Strategy name, e.g. ``"lora"``.
        model: The module fine-tuning trains (its frozen parts have ``requires_grad=False``).
        total_params: Parameters of the target model (without training-only wrappers).
        trainable_params: Parameters fine-tuning will train (0 when ``trains`` is false).
        trains: ``False`` when the strategy uses θ_s as it is (zero-shot).
        penalty: Extra training term ``penalty(model) -> scalar`` (L2-SP), or ``None``.
        during_training: A context manager factory fine-tuning runs inside (LoRA needs PyTorch's
            exact, unfused encoder forward).
        after_training: Turns the trained module into the final target model (LoRA merges BA into
            θ_s); ``None`` keeps it.
        extra: Strategy-specific details (LoRA target layers, fusion mode, α …).
    """

    name: str
    model: nn.Module
    total_params: int
    trainable_params: int
    trains: bool = True
    penalty: Callable[[nn.Module], torch.Tensor] | None = None
    during_training: Callable[[], ContextManager] = contextlib.nullcontext
    after_training: Callable[[nn.Module], nn.Module] | None = None
    extra: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        return (f"Transferred(name={self.name!r}, total_params={self.total_params:,}, "
                f"trainable_params={self.trainable_params:,}, trains={self.trains})")


def target_text_emb(knowledge: Any, target: Any, text_emb: Any = None) -> torch.Tensor:
    """The target catalogue's PLM embeddings ``(N_t, D)``: given, or encoded with the source's encoder."""
    if text_emb is None:
        enc = from_dict(EncoderConfig, knowledge.encoder_config, where="knowledge.encoder.")
        text_emb = encode_texts(target.domain.texts, enc)
    text_emb = torch.as_tensor(np.asarray(text_emb), dtype=torch.float32)
    if text_emb.shape[0] != target.n_items:
        raise ValueError(f"target text_emb has {text_emb.shape[0]} rows but the target catalogue "
                         f"{target.domain.name!r} has {target.n_items} items")
    if text_emb.shape[1] != knowledge.text_dim:
        raise ValueError(f"target text_emb has dimension {text_emb.shape[1]} but θ_s was trained on "
                         f"{knowledge.text_dim}-d embeddings from {knowledge.encoder_id!r}; "
                         "encode the target with the same encoder")
    return text_emb


def joint_text_emb(target: Any, text_emb: Any) -> torch.Tensor:
    """The joint catalogue's PLM embeddings ``(N, D)`` for a strategy trained from scratch on a view."""
    if text_emb is None:
        raise ValueError("this strategy needs the joint catalogue's text embeddings (text_emb)")
    table = torch.as_tensor(np.asarray(text_emb), dtype=torch.float32)
    if table.shape[0] != target.n_items:
        raise ValueError(f"text_emb has {table.shape[0]} rows, the joint catalogue {target.n_items} items")
    return table


def build_target_model(knowledge: Any, text_emb: torch.Tensor, *, use_id: bool = False,
                       from_source: bool = True, config: TransferConfig | None = None) -> TextSeqRec:
    """A :class:`~xdtutor.models.TextSeqRec` on the target catalogue, initialised from θ_s.

    Args:
        knowledge: The source knowledge (model hyper-parameters and θ_s).
        text_emb: Target catalogue embeddings ``(N_t, D)``.
        use_id: Add a (fresh, target-only) ID embedding.
        from_source: Load θ_s (``False`` gives the text-based target-only baseline's initialisation).
        config: Its :meth:`TransferConfig.model_overrides` (dropout, temperature) replace θ_s's.

    Raises:
        RuntimeError: If θ_s does not cover the model's transferable parameters exactly (no
            ``strict=False`` silently ignoring missing keys).
    """
    kwargs = target_model_config(knowledge, config)
    kwargs["use_id"] = use_id
    model = TextSeqRec(text_emb, **kwargs)
    if from_source:
        load_theta(model, knowledge.theta)
    return model


def target_model_config(knowledge: Any, config: TransferConfig | None = None) -> dict[str, Any]:
    """θ_s's ``TextSeqRec`` keyword arguments with fine-tuning's overrides (``config``) applied."""
    return {**knowledge.model_config, **(config.model_overrides() if config is not None else {})}


def load_theta(model: nn.Module, theta: dict[str, torch.Tensor]) -> None:
    """Load θ_s into ``model`` and check that exactly the transferable parameters were set."""
    expected = set(transferable_names(model))
    got = set(theta)
    missing, unexpected = sorted(expected - got), sorted(got - expected)
    if missing or unexpected:
        raise RuntimeError(f"θ_s does not match the target model: missing {missing[:5]}"
                           f"{'…' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
                           f"{'…' if len(unexpected) > 5 else ''}")
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in theta.items():
            if params[name].shape != value.shape:
                raise RuntimeError(f"θ_s[{name!r}] has shape {tuple(value.shape)}, model expects "
                                   f"{tuple(params[name].shape)}")
            params[name].copy_(value)


def transferred(name: str, model: nn.Module, **kwargs: Any) -> Transferred:
    """A :class:`Transferred` whose parameter counts are read off ``model`` as it stands."""
    total, trainable = count_parameters(model)
    return Transferred(name, model, total, trainable, **kwargs)
