"""Strategy 5 — LoRA: a low-rank update Δθ = BA on the sequence encoder, via ``peft``.

Two menu entries, named for what they train: ``lora`` trains only the LoRA matrices (everything of
θ_s stays frozen); ``lora_adaptor`` (:mod:`.lora_adaptor`) also trains the item adaptor, which has
more parameters than the LoRA matrices themselves.

Each wrapped layer computes ``W x + (α/r) B A x`` with ``W`` = θ_s frozen, ``A`` (r × in) random and
``B`` (out × r) **zero** at the start, so the model starts exactly as the source model. After
training, :meth:`peft.PeftModel.merge_and_unload` folds ``(α/r) B A`` into ``W``; the returned model is
a plain ``TextSeqRec`` with θ_t = θ_s + BA.

Which layers: the encoder's ``nn.TransformerEncoderLayer`` has feed-forward ``linear1``/``linear2``
(``nn.Linear``) and an ``nn.MultiheadAttention`` ``self_attn`` whose projections are used through
``F.multi_head_attention_forward`` (not by calling its ``out_proj`` module), so wrapping
``out_proj`` alone would silently do nothing. ``peft`` wraps ``nn.MultiheadAttention`` as a whole;
the default targets are ``linear1``, ``linear2`` and ``self_attn`` of every layer.
"""

from __future__ import annotations

import contextlib
import re
from typing import Iterator

import torch
from peft import LoraConfig, get_peft_model
from torch import nn

from ..models import count_parameters
from .base import Transferred, TransferConfig, build_target_model, target_text_emb

NAME = "lora"
DEFAULT_TARGETS = ("linear1", "linear2", "self_attn")


def lora_target_names(model: nn.Module, targets: tuple[str, ...] = ()) -> list[str]:
    """Full module names inside ``model.encoder`` that LoRA wraps.

    Args:
        model: A ``TextSeqRec``.
        targets: Name suffixes (``"linear1"`` …); empty = :data:`DEFAULT_TARGETS`.

    Raises:
        ValueError: If a requested suffix matches no ``nn.Linear``/``nn.MultiheadAttention`` in the encoder.
    """
    targets = tuple(targets) or DEFAULT_TARGETS
    names = []
    for name, module in model.encoder.named_modules():
        if not isinstance(module, (nn.Linear, nn.MultiheadAttention)):
            continue
        if ".self_attn." in f".{name}." and not name.endswith("self_attn"):
            continue  # out_proj is handled with its MultiheadAttention
        if any(name == t or name.endswith("." + t) for t in targets):
            names.append(f"encoder.{name}")
    found = {t for t in targets if any(n.endswith("." + t) for n in names)}
    if set(targets) - found:
        raise ValueError(f"LoRA targets {sorted(set(targets) - found)} match no Linear/MultiheadAttention "
                         f"layer of the encoder; available: {available_layers(model)}")
    return names


def available_layers(model: nn.Module) -> list[str]:
    """Encoder module names LoRA could wrap (for error messages and notebooks)."""
    return [n for n, m in model.encoder.named_modules()
            if isinstance(m, (nn.Linear, nn.MultiheadAttention)) and not n.endswith("out_proj")]


def wrap_lora(model: nn.Module, config: TransferConfig, *, train_adaptor: bool = False):
    """Wrap ``model`` with ``peft`` LoRA on its encoder; returns the ``PeftModel``.

    Everything but the LoRA matrices is frozen by peft; the adaptor is re-enabled with
    ``train_adaptor`` (and the ID embedding when present: it has no θ_s value to keep).
    """
    names = lora_target_names(model, config.lora_targets)
    pattern = "^(" + "|".join(re.escape(n) for n in names) + ")$"
    lora_config = LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha,
                             lora_dropout=config.lora_dropout, target_modules=pattern,
                             init_lora_weights=True, bias="none")
    peft_model = get_peft_model(model, lora_config)
    if train_adaptor:
        model.adaptor.requires_grad_(True)
    if getattr(model, "id_embedding", None) is not None:
        model.id_embedding.requires_grad_(True)
    return peft_model


@contextlib.contextmanager
def exact_forward() -> Iterator[None]:
    """Disable PyTorch's fused Transformer fast path while a ``PeftModel`` is evaluated.

    In eval mode without gradients, ``nn.TransformerEncoderLayer`` runs a fused kernel that reads
    ``linear1.weight``/``self_attn.in_proj_weight`` directly — the *base* weights θ_s — and skips
    peft's LoRA branches. Validation during LoRA training would then score θ_s, not θ_s + BA, and
    early stopping would pick epochs by the wrong model. Inside this context the layers run their
    ordinary (unfused) forward, which goes through the LoRA wrappers.
    """
    previous = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(previous)


def transfer(knowledge, target, config: TransferConfig = TransferConfig(), *, text_emb=None) -> Transferred:
    """θ_s wrapped with LoRA; fine-tuning trains BA only, then merges: θ_t = θ_s + BA."""
    return build(NAME, knowledge, target, config, text_emb=text_emb, train_adaptor=False)


def build(name: str, knowledge, target, config: TransferConfig, *, text_emb=None,
          train_adaptor: bool = False) -> Transferred:
    """The LoRA starting point shared by ``lora`` and ``lora_adaptor``."""
    emb = target_text_emb(knowledge, target, text_emb)  # (N_t, D)
    model = build_target_model(knowledge, emb, use_id=config.use_id, config=config)
    targets = lora_target_names(model, config.lora_targets)
    peft_model = wrap_lora(model, config, train_adaptor=train_adaptor)
    total, _ = count_parameters(model)        # θ_s with the LoRA matrices peft inserted into it
    _, trainable = count_parameters(peft_model)
    return Transferred(name, peft_model, total, trainable,
                       during_training=exact_forward,  # validation inside fit must see θ_s + BA, not θ_s
                       after_training=merge,
                       extra={"targets": targets, "rank": config.lora_rank, "alpha": config.lora_alpha,
                              "adaptor_trained": train_adaptor})


def merge(peft_model: nn.Module) -> nn.Module:
    """Fold ``(α/r) B A`` into the wrapped weights; returns the plain ``TextSeqRec`` with θ_s + BA."""
    merged = peft_model.merge_and_unload()
    merged.eval()
    return merged
