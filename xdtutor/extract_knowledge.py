"""Stage 4 — extract what transfers from the source model into a :class:`Knowledge` object.

Knowledge holds

* θ_s: the state dict of the transferable parameters (item adaptor, position embedding, sequence
  encoder — everything except the catalogue-specific ID embedding and the text-embedding buffer);
* the source catalogue(s)' item representations ``(N_s, H)``;
* representations ``(U, H)`` of the users who also appear in the target, computed from their
  source histories cut *before* the target item of each stage (``dataset.source_history``), so
  nothing after the evaluated target item leaks in;
* the model hyper-parameters and the id of the text encoder (target items must be encoded with it).

It is saved on its own (``safetensors`` for tensors + ``knowledge.json``) and can be inspected in a
notebook (``repr``, :meth:`Knowledge.summary`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .models import transferable_names
from .results_upgrade import encoder_loader
from .utils import atomic_write, pad_left, select_device

STAGES = ("train", "valid", "test")


@dataclass(eq=False)
class Knowledge:
    """What the source domain(s) hand over to the target.

    Attributes:
        theta: θ_s, parameter name -> tensor (names as in ``TextSeqRec.named_parameters()``).
        model_config: ``TextSeqRec`` keyword arguments (hidden, n_layers, n_heads, max_len, dropout,
            adaptor) needed to rebuild the architecture around θ_s.
        encoder_id: Id of the PLM that embedded item text (e.g. ``"all-MiniLM-L6-v2"``).
        encoder_config: ``EncoderConfig`` fields, to encode a target catalogue the same way.
        text_dim: Dimension D of the PLM embeddings θ_s expects.
        source_names: Names of the source domains, in pretraining order.
        item_reps: source name -> item representations ``(N_s, H)``.
        user_keys: Overlapping users with a source history, in the row order of ``user_reps``.
        user_reps: stage -> ``(U, H)`` user representations from the leak-free source history
            for that stage (``"train"`` and ``"valid"`` histories end before the valid item,
            ``"test"`` before the test item). Users without source items before a stage get zeros
            and ``user_has_history[stage][u] = False``.
        user_has_history: stage -> ``(U,)`` bool.
        meta: Free-form provenance (pretraining metrics, seeds …).
    """

    theta: dict[str, torch.Tensor]
    model_config: dict
    encoder_id: str
    encoder_config: dict
    text_dim: int
    source_names: tuple[str, ...] = ()
    item_reps: dict[str, torch.Tensor] = field(default_factory=dict)
    user_keys: list[str] = field(default_factory=list)
    user_reps: dict[str, torch.Tensor] = field(default_factory=dict)
    user_has_history: dict[str, torch.Tensor] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    @property
    def hidden(self) -> int:
        return int(self.model_config["hidden"])

    @property
    def n_theta(self) -> int:
        """Number of scalars in θ_s."""
        return sum(int(v.numel()) for v in self.theta.values())

    def user_index(self) -> dict[str, int]:
        """user key -> row in ``user_reps[stage]``."""
        return {u: i for i, u in enumerate(self.user_keys)}

    def __repr__(self) -> str:
        items = ", ".join(f"{k}: {tuple(v.shape)}" for k, v in self.item_reps.items())
        return (f"Knowledge(sources={list(self.source_names)}, encoder={self.encoder_id!r}, "
                f"θ_s={len(self.theta)} tensors / {self.n_theta:,} params, item_reps={{{items}}}, "
                f"overlap users={len(self.user_keys)})")

    def summary(self) -> str:
        """A multi-line description: architecture, θ_s tensors and what the users carry."""
        lines = [repr(self), f"model: {self.model_config}", f"text dim: {self.text_dim}", "θ_s:"]
        lines += [f"  {k:<50} {tuple(v.shape)}" for k, v in self.theta.items()]
        for stage, has in self.user_has_history.items():
            lines.append(f"users with source history before the {stage} item: {int(has.sum())}/{len(has)}")
        if self.meta:
            lines.append(f"meta: {self.meta}")
        return "\n".join(lines)

    # -- persistence -------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write ``theta.safetensors``, ``reps.safetensors`` and ``knowledge.json`` into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        theta = {k: v.detach().cpu().contiguous() for k, v in self.theta.items()}
        reps: dict[str, torch.Tensor] = {}
        for name, v in self.item_reps.items():
            reps[f"item/{name}"] = v.detach().cpu().contiguous()
        for stage, v in self.user_reps.items():
            reps[f"user/{stage}"] = v.detach().cpu().contiguous()
        for stage, v in self.user_has_history.items():
            reps[f"has/{stage}"] = v.detach().cpu().to(torch.uint8).contiguous()
        for fname, tensors in (("theta.safetensors", theta), ("reps.safetensors", reps)):
            tmp = directory / f".{fname}.tmp"
            save_file(tensors, str(tmp))
            tmp.replace(directory / fname)
        meta = {
            "format": "xdtutor.knowledge/1",
            "model_config": self.model_config,
            "encoder_id": self.encoder_id,
            "encoder_config": self.encoder_config,
            "text_dim": self.text_dim,
            "source_names": list(self.source_names),
            "theta_keys": list(self.theta),
            "user_keys": self.user_keys,
            "meta": self.meta,
        }
        with atomic_write(directory / "knowledge.json", "w") as fh:
            json.dump(meta, fh, indent=1)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "Knowledge":
        """Read what :meth:`save` wrote.

        Raises:
            FileNotFoundError: If a file is missing (the message names it).
            ValueError: If ``knowledge.json`` has another format or θ_s keys do not match.
        """
        directory = Path(directory)
        for fname in ("knowledge.json", "theta.safetensors", "reps.safetensors"):
            if not (directory / fname).is_file():
                raise FileNotFoundError(f"{directory / fname}: missing (not a saved Knowledge directory)")
        meta = json.loads((directory / "knowledge.json").read_text(encoding="utf-8"))
        if meta.get("format") != "xdtutor.knowledge/1":
            raise ValueError(f"{directory / 'knowledge.json'}: field 'format' is {meta.get('format')!r}, "
                             "expected 'xdtutor.knowledge/1'")
        theta_raw = load_file(str(directory / "theta.safetensors"))
        if set(theta_raw) != set(meta["theta_keys"]):
            raise ValueError(f"{directory / 'theta.safetensors'}: keys differ from knowledge.json 'theta_keys'")
        theta = {k: theta_raw[k] for k in meta["theta_keys"]}  # keep the saved order
        reps = load_file(str(directory / "reps.safetensors"))
        item_reps = {k.split("/", 1)[1]: v for k, v in reps.items() if k.startswith("item/")}
        user_reps = {k.split("/", 1)[1]: v for k, v in reps.items() if k.startswith("user/")}
        has = {k.split("/", 1)[1]: v.bool() for k, v in reps.items() if k.startswith("has/")}
        return cls(theta=theta, model_config=meta["model_config"], encoder_id=meta["encoder_id"],
                   encoder_config=encoder_loader(meta["encoder_config"]), text_dim=int(meta["text_dim"]),
                   source_names=tuple(meta["source_names"]), item_reps=item_reps,
                   user_keys=list(meta["user_keys"]), user_reps=user_reps, user_has_history=has,
                   meta=meta.get("meta", {}))


@torch.no_grad()
def _user_reps(model: nn.Module, histories: list[np.ndarray], max_len: int, device, batch_size: int = 512
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(U, H)`` last-position states for the given source histories; zeros where a history is empty."""
    has = torch.tensor([len(h) > 0 for h in histories], dtype=torch.bool)
    out = torch.zeros(len(histories), model.item_representations().shape[1])
    idx = torch.nonzero(has).flatten().tolist()
    for start in range(0, len(idx), batch_size):
        rows = idx[start:start + batch_size]
        seq = pad_left([histories[i] for i in rows], max_len).to(device)  # (B, L)
        out[rows] = model.user_representation(seq).float().cpu()  # (B, H)
    return out, has


@torch.no_grad()
def extract_knowledge(model: nn.Module, dataset=None, *, sources: Sequence | None = None,
                      source_text_emb: Sequence[torch.Tensor] | None = None,
                      encoder_config: dict | None = None, encoder_id: str | None = None,
                      device=None, meta: dict | None = None) -> Knowledge:
    """Collect θ_s, item and user representations from a pretrained source ``TextSeqRec``.

    Args:
        model: The source model returned by :func:`xdtutor.pretrain_source.pretrain_source`
            (its ``pretrain_info`` attribute supplies the defaults below).
        dataset: The :class:`~xdtutor.data.CrossDomainDataset`; its overlapping users get user
            representations from ``dataset.source_history(user, stage)`` in the first source domain.
            ``None``: no user representations.
        sources: Source domains (default: ``model.pretrain_info``'s).
        source_text_emb: Their catalogue embeddings ``(N_s, D)``, same order.
        encoder_config / encoder_id: How item text was encoded (default: from ``pretrain_info``).
        device: Where to run the model.
        meta: Extra provenance to store.

    Returns:
        The :class:`Knowledge`.
    """
    info = getattr(model, "pretrain_info", {})
    sources = list(sources if sources is not None else info.get("sources", ()))
    source_text_emb = list(source_text_emb if source_text_emb is not None else info.get("text_embs", ()))
    if len(sources) != len(source_text_emb):
        raise ValueError(f"{len(sources)} source domains but {len(source_text_emb)} text embedding tables")
    encoder_config = dict(encoder_config if encoder_config is not None else info.get("encoder_config", {}))
    encoder_id = encoder_id or info.get("encoder_id") or str(encoder_config.get("model") or "unknown")
    device = select_device(device)
    model = model.to(device).eval()
    params = dict(model.named_parameters())
    theta = {n: params[n].detach().cpu().clone() for n in transferable_names(model)}
    max_len = int(info.get("model_config", {}).get("max_len", getattr(model, "max_len", 50)))
    original = getattr(model, "text_emb", None)
    item_reps: dict[str, torch.Tensor] = {}
    user_keys: list[str] = []
    user_reps: dict[str, torch.Tensor] = {}
    has_hist: dict[str, torch.Tensor] = {}
    for k, (dom, emb) in enumerate(zip(sources, source_text_emb)):
        model.set_catalogue(torch.as_tensor(emb, dtype=torch.float32).to(device))
        item_reps[dom.name] = model.item_representations().float().cpu()  # (N_s, H)
        if k == 0 and dataset is not None:
            user_keys = sorted(u for u in dataset.overlap if u in dataset.source_positions
                               or u in dom.sequences)
            for stage in STAGES:
                hists = [dataset.source_history(u, stage) for u in user_keys]
                user_reps[stage], has_hist[stage] = _user_reps(model, hists, max_len, device)
    if original is not None:
        model.set_catalogue(original)
    text_dim = int(source_text_emb[0].shape[1]) if source_text_emb else int(info.get("text_dim", 0))
    return Knowledge(theta=theta, model_config=dict(info.get("model_config", {})), encoder_id=encoder_id,
                     encoder_config=encoder_config, text_dim=text_dim,
                     source_names=tuple(d.name for d in sources), item_reps=item_reps,
                     user_keys=user_keys, user_reps=user_reps, user_has_history=has_hist,
                     meta=dict(meta or info.get("meta", {})))
