"""Smaller catalogues for small runs: keep only the items the kept users interacted with.

At CI scale a config keeps a few percent of the users (``data.subsample``); most of the catalogue
then has no interaction left, yet every item's text would still be encoded and ranked.
:func:`compact_catalogues` drops those items and renumbers the rest. It shrinks the ranking
catalogue, so the protocol's dataset line says so, and the numbers are not comparable with
full-catalogue ones.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .preprocess import sample_users
from .types import CrossDomainDataset, Domain, EvalSet, SplitDomain


def subsample_domain(domain: Domain, fraction: float, seed: int) -> Domain:
    """``domain`` with a seeded ``fraction`` of its users (the catalogue unchanged)."""
    if fraction >= 1.0:
        return domain
    keep = sample_users(domain.sequences, fraction, seed)
    return Domain(domain.name, domain.items, {u: s for u, s in domain.sequences.items() if u in keep})


def _remap_eval(e: EvalSet, m: np.ndarray) -> EvalSet:
    return EvalSet(list(e.users), [m[h] for h in e.histories], m[np.asarray(e.targets, dtype=np.int64)])


def _compact_domain(domain: Domain, used: np.ndarray) -> tuple[Domain, np.ndarray]:
    old_to_new = np.full(domain.n_items, -1, dtype=np.int64)
    old_to_new[used] = np.arange(int(used.sum()), dtype=np.int64)
    items = domain.items[used].reset_index(drop=True).copy()
    items["item"] = np.arange(len(items), dtype=np.int64)
    return Domain(domain.name, items, {u: old_to_new[s] for u, s in domain.sequences.items()}), old_to_new


def compact_catalogues(dataset: CrossDomainDataset, sources: Sequence[Domain]
                       ) -> tuple[CrossDomainDataset, tuple[Domain, ...]]:
    """Keep only the items some kept user interacted with, in every catalogue (ids renumbered).

    The target keeps every item of its sequences, training data, histories and targets; the first
    source also keeps the items of the overlapping users' source histories.
    """
    t = dataset.target
    used = np.zeros(t.n_items, dtype=bool)
    for seqs in (t.domain.sequences.values(), t.train.values(), t.valid.histories, t.test.histories):
        for s in seqs:
            used[np.asarray(s, dtype=np.int64)] = True
    used[np.asarray(t.valid.targets, dtype=np.int64)] = True
    used[np.asarray(t.test.targets, dtype=np.int64)] = True
    domain, m = _compact_domain(t.domain, used)
    protocol = t.protocol.with_(dataset=t.protocol.dataset + "; catalogue compacted to the sampled users' items")
    target = SplitDomain(domain, {u: m[s] for u, s in t.train.items()}, _remap_eval(t.valid, m),
                         _remap_eval(t.test, m), protocol)
    new_sources, positions = [], dict(dataset.source_positions)
    for k, src in enumerate(sources):
        used = np.zeros(src.n_items, dtype=bool)
        for s in src.sequences.values():
            used[s] = True
        if k == 0:
            for items, _ in positions.values():
                used[items] = True
        dom, m = _compact_domain(src, used)
        new_sources.append(dom)
        if k == 0:
            positions = {u: (m[items], before) for u, (items, before) in positions.items()}
    ds = CrossDomainDataset(dataset.name, tuple(new_sources) if dataset.sources else (), target,
                            dataset.overlap, positions)
    return ds, tuple(new_sources)
