"""The target split on a joint catalogue — target items first, then the sources' — with source data in it.

Two ways for target-side training to read source interactions directly (no pretrained model in
between, or in addition to one):

* :func:`mixed_histories` — every overlapping user's source items interleaved, in time order, with her
  target items; only source items from before the predicted target item (the rule of
  :meth:`~xdtutor.data.CrossDomainDataset.source_history`). A text model reads both catalogues through
  the same language model; an ID model needs an embedding for every item of both.
* :func:`joint_training` — the target split plus each source sequence as an extra training row
  (multi-domain training from scratch, instead of pretrain-then-fine-tune). The source sequences are
  the pretraining ones, already cut before each overlapping user's target validation item.

Both keep the target's evaluated users, their order and their targets, so per-user comparisons with
target-only models pair up. Target items keep their ids ``0 … N_t-1``; source ``k``'s items follow
from :attr:`JointView.offsets` ``[k]``. A model on the joint table ranks only the first ``N_t`` items
(``model.score_only(N_t)``); histories and training targets may contain any item.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from .types import CrossDomainDataset, Domain, EvalSet, SplitDomain


@dataclass(frozen=True, eq=False)
class JointView:
    """A target split on the joint catalogue.

    Attributes:
        split: The split; ``split.domain.items`` lists target items then each source's.
        n_target: N_t, the target items (ranked); the rest only appear in histories and training.
        offsets: Source name -> id of its first item in the joint catalogue.
        what: One line for the protocol (what the histories or training rows contain).
    """

    split: SplitDomain
    n_target: int
    offsets: dict[str, int]
    what: str

    def table(self, target_emb: np.ndarray, source_embs: Sequence[np.ndarray]) -> np.ndarray:
        """The joint item-text table ``(N_t + ΣN_s, D)`` in the joint catalogue's order."""
        table = np.concatenate([np.asarray(target_emb, dtype=np.float32),
                                *[np.asarray(e, dtype=np.float32) for e in source_embs[:len(self.offsets)]]])
        if table.shape[0] != self.split.n_items:
            raise ValueError(f"the embeddings give {table.shape[0]} rows, the joint catalogue has "
                             f"{self.split.n_items} items")
        return table


def ranked_items(split: SplitDomain) -> int:
    """How many leading items of ``split``'s catalogue are target items (all of them for a plain split)."""
    items = split.domain.items
    if "domain" not in items.columns:
        return split.n_items
    return int((items["domain"] == items["domain"].iloc[0]).sum())


def _joint_domain(target: Domain, sources: Sequence[Domain], sequences: dict[str, np.ndarray]) -> tuple[Domain, dict]:
    offsets, parts, start = {}, [target.items.assign(domain=target.name)], target.n_items
    for src in sources:
        offsets[src.name] = start
        parts.append(src.items.assign(item=src.items["item"] + start, domain=src.name))
        start += src.n_items
    items = pd.concat(parts, ignore_index=True)
    name = "+".join([target.name, *offsets])
    return Domain(name, items, sequences), offsets


def interleave(target_items: np.ndarray, source_items: np.ndarray, before: np.ndarray) -> np.ndarray:
    """Merge a user's target and source items in time order.

    Args:
        target_items: The user's target items ``t_0 … t_{m-1}`` (chronological).
        source_items: Her source items (joint ids), chronological.
        before: ``before[j]`` = how many of her target items happened before ``source_items[j]``.

    Returns:
        int64 array: source items with ``before == 0``, ``t_0``, those with ``before == 1``, ``t_1`` …
        (source items with ``before >= m`` come last).
    """
    keys = np.concatenate([np.arange(len(target_items)) * 2 + 1, np.asarray(before, dtype=np.int64) * 2])
    items = np.concatenate([np.asarray(target_items, dtype=np.int64), np.asarray(source_items, dtype=np.int64)])
    return items[np.argsort(keys, kind="stable")]


def mixed_histories(dataset: CrossDomainDataset, source: Domain | None = None) -> JointView:
    """Target histories with each overlapping user's earlier source items interleaved (no future).

    Args:
        dataset: A dataset whose first source has known positions (``source_positions``, e.g. food_kitchen).
        source: The first source's catalogue as the run uses it (e.g. after
            :func:`~xdtutor.data.compact.compact_catalogues`; its item ids are the ones the positions
            use); default ``dataset.sources[0]``.

    Raises:
        ValueError: The dataset has no source with positions (no overlapping users' time order).
    """
    if not dataset.sources or not dataset.source_positions:
        raise ValueError(f"{dataset.name}: no overlapping users with known source positions; mixed histories "
                         "need a dataset whose users' cross-domain order is known (e.g. food_kitchen)")
    t = dataset.target
    source = source if source is not None else dataset.sources[0]
    n_t = t.n_items
    evaluated = set(t.valid.users)

    def mixed(user: str, n_target: int) -> np.ndarray:
        """The user's history up to (not including) target item ``n_target``."""
        seq = t.domain.sequences[user][:n_target]
        if user not in dataset.source_positions:
            return np.asarray(seq, dtype=np.int64)
        items, before = dataset.source_positions[user]
        keep = before <= n_target
        return interleave(seq, items[keep] + n_t, before[keep])

    train = {}
    for u, seq in t.train.items():
        # an evaluated user's training sequence stops before her valid item t_{n-2}; a train-only
        # user's (fewer than 3 target items) holds everything
        train[u] = mixed(u, len(seq)) if u in evaluated else mixed(u, len(t.domain.sequences[u]))
    valid = EvalSet(list(t.valid.users), [train[u] for u in t.valid.users], np.asarray(t.valid.targets))
    test = EvalSet(list(t.test.users), [mixed(u, len(t.train[u]) + 1) for u in t.test.users],
                   np.asarray(t.test.targets))
    domain, offsets = _joint_domain(t.domain, [source], {u: mixed(u, len(s)) for u, s in t.domain.sequences.items()})
    what = f"histories interleave each overlapping user's earlier {source.name} items"
    protocol = t.protocol.with_(split=f"{t.protocol.split}; {what}")
    return JointView(SplitDomain(domain, train, valid, test, protocol), n_t, offsets, what)


def joint_training(dataset: CrossDomainDataset, sources: Sequence[Domain]) -> JointView:
    """The target split plus every source sequence as a training row (ids offset into the joint catalogue).

    Args:
        dataset: The dataset (its target split is kept as it is).
        sources: The source domains as pretraining would see them (``Prepared.sources``: overlapping
            users already cut before their target valid item).
    """
    t = dataset.target
    if not sources:
        raise ValueError(f"{dataset.name}: joint training needs at least one source domain")
    domain, offsets = _joint_domain(t.domain, sources, dict(t.domain.sequences))
    train = dict(t.train)
    for src in sources:
        off = offsets[src.name]
        train.update({f"{src.name}:{u}": np.asarray(s, dtype=np.int64) + off for u, s in src.sequences.items()})
    what = "training rows include every " + " and ".join(offsets) + " sequence (cut before the target split)"
    protocol = t.protocol.with_(split=f"{t.protocol.split}; {what}")
    return JointView(SplitDomain(domain, train, t.valid, t.test, protocol), t.n_items, offsets, what)


__all__ = ["JointView", "interleave", "joint_training", "mixed_histories", "ranked_items"]
