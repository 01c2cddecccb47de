"""Stage 3 — pretrain a text-based recommender on one or more source domains.

Several sources (e.g. Kitchen + Food before transferring to Scientific) are trained **jointly on
one concatenated catalogue**: source ``k``'s items get ids offset by the sizes of sources
``0 … k-1`` and their text embeddings are stacked, and each user sequence stays inside its own
domain (users are keyed ``"<domain>/<user>"``, so a person in two sources contributes two
sequences). The softmax then runs over all source items (``TrainConfig.negatives="all"``) or over
the distinct items of each batch (``"in_batch"``, what the full-scale configs use), and with several
sources its candidates mix the domains, which also teaches the model to tell them apart; the one
training loop (:func:`xdtutor.train.fit`) is reused unchanged. We chose this over alternating per-domain batches
(``set_catalogue`` between steps) because it needs no second training loop; with one source both
are the same.

Source validation is leave-one-out on the source sequences (:func:`xdtutor.data.leave_one_out`):
early stopping watches the source's own next-item NDCG@10, never the target's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from .data import Domain, EvalSet, SplitDomain, leave_one_out
from .models import ModelConfig, TextSeqRec
from .protocol import Protocol
from .train import TrainConfig, fit
from .utils import seed_everything


def merge_sources(sources: Sequence[Domain]) -> tuple[Domain, np.ndarray]:
    """One catalogue for several source domains.

    Returns:
        ``(merged, offsets)``: the merged :class:`Domain` (items stacked in source order, user keys
        ``"<domain>/<user>"`` when there is more than one source) and the item-id offset of each source.
    """
    if not sources:
        raise ValueError("pretraining needs at least one source domain")
    if len(sources) == 1:
        return sources[0], np.zeros(1, dtype=np.int64)
    offsets = np.cumsum([0] + [d.n_items for d in sources[:-1]]).astype(np.int64)
    items, seqs = [], {}
    for dom, off in zip(sources, offsets):
        block = dom.items[["item", "raw_id", "text"]].copy()
        block["item"] = block["item"].to_numpy() + off
        block["raw_id"] = dom.name + "/" + block["raw_id"].astype(str)
        items.append(block)
        for u, s in dom.sequences.items():
            seqs[f"{dom.name}/{u}"] = np.asarray(s, dtype=np.int64) + off
    merged = Domain("+".join(d.name for d in sources), pd.concat(items, ignore_index=True), seqs)
    return merged, offsets


def source_split(merged: Domain, *, max_len: int = 50, max_eval_users: int | None = None,
                 seed: int = 0) -> SplitDomain:
    """Leave-one-out split of the source sequences for source validation.

    Args:
        merged: The (merged) source domain.
        max_len: History length of the protocol.
        max_eval_users: Cap on the number of valid/test users (validation each epoch ranks the
            whole catalogue for every one of them); ``None`` = all.
        seed: Seed of the capped subset.
    """
    protocol = Protocol(dataset=f"source {merged.name}", split="leave-one-out on source sequences",
                        max_len=max_len)
    split = leave_one_out(merged, protocol, min_len=3)
    if max_eval_users is None or len(split.valid) <= max_eval_users:
        return split
    keep = np.sort(np.random.default_rng(seed).permutation(len(split.valid))[:max_eval_users])

    def sub(e: EvalSet) -> EvalSet:
        return EvalSet([e.users[i] for i in keep], [e.histories[i] for i in keep], e.targets[keep])

    return SplitDomain(split.domain, split.train, sub(split.valid), sub(split.test), protocol)


def pretrain_source(sources: Sequence[Domain], text_embs: Sequence[np.ndarray | torch.Tensor],
                    model_config: ModelConfig = ModelConfig(), train_config: TrainConfig = TrainConfig(), *,
                    encoder_config: dict | None = None, encoder_id: str | None = None,
                    max_eval_users: int | None = 2000, checkpoint_dir: str | Path | None = None) -> TextSeqRec:
    """Train a :class:`~xdtutor.models.TextSeqRec` on the source domain(s).

    Args:
        sources: Source domains (their catalogues and all their sequences).
        text_embs: Each source's item-text embeddings ``(N_k, D)``, same order.
        model_config: Architecture.
        train_config: Training loop settings (epochs, lr, ``seed`` …).
        encoder_config / encoder_id: How ``text_embs`` were made (kept for :class:`Knowledge`).
        max_eval_users: Cap on source validation users (see :func:`source_split`).
        checkpoint_dir: Resumable checkpoints of the source run.

    Returns:
        The trained model on the merged source catalogue. ``model.pretrain_info`` holds what
        :func:`xdtutor.extract_knowledge.extract_knowledge` needs (sources, embeddings, configs) and
        ``model.pretrain_history`` the :class:`~xdtutor.train.History`.
    """
    if len(sources) != len(text_embs):
        raise ValueError(f"{len(sources)} source domains but {len(text_embs)} text embedding tables")
    embs = [torch.as_tensor(np.asarray(e), dtype=torch.float32) for e in text_embs]
    for dom, e in zip(sources, embs):
        if e.shape[0] != dom.n_items:
            raise ValueError(f"source {dom.name!r}: text_emb has {e.shape[0]} rows, catalogue has {dom.n_items} items")
    if len({e.shape[1] for e in embs}) != 1:
        raise ValueError(f"source text embeddings differ in width: {[e.shape[1] for e in embs]}")
    merged, offsets = merge_sources(sources)
    split = source_split(merged, max_len=model_config.max_len, max_eval_users=max_eval_users,
                         seed=train_config.seed)
    seed_everything(train_config.seed)
    model = TextSeqRec(torch.cat(embs), **model_config.kwargs())
    history = fit(model, split, train_config, checkpoint_dir=checkpoint_dir)
    model.pretrain_history = history
    model.pretrain_info = {
        "sources": list(sources), "text_embs": embs, "offsets": offsets.tolist(),
        "model_config": model_config.kwargs(), "encoder_config": dict(encoder_config or {}),
        "encoder_id": encoder_id, "text_dim": int(embs[0].shape[1]),
        "meta": {"source_valid_ndcg@10": history.best_metric, "source_best_epoch": history.best_epoch,
                 "source_train_seconds": history.total_seconds, "source_users": merged.n_users,
                 "source_items": merged.n_items, "seed": train_config.seed},
    }
    return model
