"""What every transfer strategy shares: its config, its result, and building θ_t from θ_s.

A strategy is a module of :mod:`xdtutor.transfer` with one function::

    apply(knowledge: Knowledge, target: SplitDomain, config: TransferConfig, *, device=None,
          text_emb=None) -> TransferResult

``knowledge`` is what :func:`xdtutor.extract_knowledge.extract_knowledge` kept from the source model,
``target`` the split target domain, ``text_emb`` the target catalogue's PLM embeddings ``(N_t, D)``
(computed from ``target.domain.texts`` with the knowledge's encoder when omitted).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import check, from_dict
from ..train import TrainConfig

FUSIONS = ("add", "concat", "gate")
MAPPINGS = ("ridge", "mlp")


@dataclass(frozen=True)
class TransferConfig:
    """Settings of the transfer stage (one config for the whole menu; each strategy reads its part).

    Attributes:
        train: The target training loop (epochs, lr, early stopping …).
        use_id: Add a trainable target ID embedding to the text item representation
            (UniSRec's "text + ID" / transductive setting).
        l2sp_alpha: Weight α of the L2-SP penalty α‖θ_t − θ_s‖².
        lora_rank: Rank r of LoRA's Δθ = BA.
        lora_alpha: LoRA scaling numerator (Δθ is scaled by lora_alpha / lora_rank).
        lora_dropout: Dropout on LoRA's input.
        lora_targets: Names (suffixes) of the encoder's ``nn.Linear`` layers to wrap; empty = all of them.
        lora_train_adaptor: Also train the item adaptor next to the LoRA matrices.
        fusion: How target item features meet the source's: ``"add"``, ``"concat"`` or ``"gate"``.
        mapping: EMCDR mapping function: ``"ridge"`` (closed form) or ``"mlp"``.
        ridge_alpha: Ridge regularisation of the linear mapping.
        mlp_hidden: Hidden width of the MLP mapping.
        mlp_epochs: Full-batch training epochs of the MLP mapping.
    """

    train: TrainConfig = field(default_factory=TrainConfig)
    use_id: bool = False
    l2sp_alpha: float = 0.01
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = ()
    lora_train_adaptor: bool = True
    fusion: str = "gate"
    mapping: str = "ridge"
    ridge_alpha: float = 1.0
    mlp_hidden: int = 128
    mlp_epochs: int = 200

    def __post_init__(self) -> None:
        if isinstance(self.train, dict):  # built from YAML
            object.__setattr__(self, "train", from_dict(TrainConfig, self.train, where="train."))
        check(self.l2sp_alpha >= 0, f"transfer.l2sp_alpha must be >= 0, got {self.l2sp_alpha}")
        check(self.lora_rank > 0, f"transfer.lora_rank must be positive, got {self.lora_rank}")
        check(0.0 <= self.lora_dropout < 1.0, f"transfer.lora_dropout must be in [0, 1), got {self.lora_dropout}")
        check(self.fusion in FUSIONS, f"transfer.fusion must be one of {FUSIONS}, got {self.fusion!r}")
        check(self.mapping in MAPPINGS, f"transfer.mapping must be one of {MAPPINGS}, got {self.mapping!r}")
        check(self.ridge_alpha >= 0, f"transfer.ridge_alpha must be >= 0, got {self.ridge_alpha}")
        check(self.mlp_hidden > 0 and self.mlp_epochs > 0, "transfer.mlp_hidden and mlp_epochs must be positive")


@dataclass(eq=False)
class TransferResult:
    """What a strategy returns.

    Attributes:
        name: Strategy name, e.g. ``"lora"``.
        model: The target recommender (offers ``score(item_seq)``).
        history: Training history (``None`` when nothing was trained, e.g. zero-shot).
        total_params: Parameters of the model.
        trainable_params: Parameters the strategy trained on the target.
        extra: Strategy-specific details (e.g. LoRA target layers, the fitted mapping).
    """

    name: str
    model: Any
    history: Any
    total_params: int
    trainable_params: int
    extra: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        return (f"TransferResult(name={self.name!r}, total_params={self.total_params:,}, "
                f"trainable_params={self.trainable_params:,}, trained={self.history is not None})")


def target_text_emb(knowledge, target, text_emb=None) -> torch.Tensor:
    """The target catalogue's PLM embeddings ``(N_t, D)``: given, or encoded with the source's encoder."""
    if text_emb is None:
        from ..encoders import EncoderConfig, encode_texts

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


def build_target_model(knowledge, text_emb: torch.Tensor, *, use_id: bool = False,
                       from_source: bool = True) -> nn.Module:
    """A :class:`~xdtutor.models.TextSeqRec` on the target catalogue, initialised from θ_s.

    Args:
        knowledge: The source knowledge (model hyper-parameters and θ_s).
        text_emb: Target catalogue embeddings ``(N_t, D)``.
        use_id: Add a (fresh, target-only) ID embedding.
        from_source: Load θ_s (``False`` gives the text-based target-only baseline's initialisation).

    Raises:
        RuntimeError: If θ_s does not cover the model's transferable parameters exactly (no
            ``strict=False`` silently ignoring missing keys).
    """
    from ..models import TextSeqRec

    kwargs = dict(knowledge.model_config)
    kwargs["use_id"] = use_id
    model = TextSeqRec(text_emb, **kwargs)
    if from_source:
        load_theta(model, knowledge.theta)
    return model


def transferable_names(model: nn.Module) -> list[str]:
    """Names of the parameters that make up θ (everything but the catalogue-specific ID embedding)."""
    return [n for n, _ in model.named_parameters() if not n.startswith("id_embedding")]


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


def param_counts(model: nn.Module) -> tuple[int, int]:
    """``(total, trainable)`` parameters of a module (unique tensors)."""
    from ..models import count_parameters

    return count_parameters(model)


def fit_target(model: nn.Module, target, config: TransferConfig, *, penalty=None, device=None):
    """Train ``model`` on the target with the one training loop (:func:`xdtutor.train.fit`)."""
    from ..finetune_target import finetune_target

    train = config.train if device is None else dataclasses.replace(config.train, device=str(device))
    return finetune_target(model, target, train, penalty=penalty)


def copy_module(module: nn.Module) -> nn.Module:
    """A deep copy (so a strategy never mutates the caller's model)."""
    return copy.deepcopy(module)
