"""Preprocessing (stage 2): k-core filtering, id remapping, leave-one-out splits, item text, stats.

All functions take and return the canonical forms of :mod:`xdtutor.data.types`; none mutates its
input.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..protocol import Protocol
from .errors import EmptyDomainError
from .types import CrossDomainDataset, Domain, EvalSet, SplitDomain


def remap_items(domain: Domain) -> tuple[Domain, np.ndarray]:
    """Drop items no sequence uses and renumber the rest ``0..n-1`` (order kept).

    Returns:
        ``(domain, old_to_new)`` where ``old_to_new[old]`` is the new id or -1 for dropped items.
    """
    used = np.zeros(domain.n_items, dtype=bool)
    for seq in domain.sequences.values():
        used[seq] = True
    old_to_new = np.full(domain.n_items, -1, dtype=np.int64)
    old_to_new[used] = np.arange(int(used.sum()), dtype=np.int64)
    items = domain.items[used].reset_index(drop=True).copy()
    items["item"] = np.arange(len(items), dtype=np.int64)
    seqs = {u: old_to_new[s] for u, s in domain.sequences.items()}
    return Domain(domain.name, items, seqs), old_to_new


def remap_ids(values: Iterable) -> tuple[np.ndarray, list]:
    """Map arbitrary hashable ids to ``0..n-1`` in first-seen order.

    Returns:
        ``(codes, uniques)`` with ``uniques[codes[i]] == values[i]``.
    """
    codes, uniques = pd.factorize(pd.Series(list(values), dtype=object), sort=False)
    return codes.astype(np.int64), list(uniques)


def k_core(domain: Domain, k: int = 5, *, item_k: int | None = None) -> Domain:
    """Iteratively keep users with >= ``k`` interactions and items with >= ``item_k`` (default ``k``).

    Items are renumbered afterwards (:func:`remap_items`).

    Raises:
        EmptyDomainError: Nothing survives the filter.
    """
    item_k = k if item_k is None else item_k
    seqs = dict(domain.sequences)
    while True:
        counts = np.bincount(np.concatenate(list(seqs.values())) if seqs else np.zeros(0, np.int64),
                             minlength=domain.n_items)
        keep_item = counts >= item_k
        new = {}
        for u, s in seqs.items():
            s2 = s[keep_item[s]]
            if len(s2) >= k:
                new[u] = s2
        if len(new) == len(seqs) and all(len(new[u]) == len(seqs[u]) for u in new):
            break
        seqs = new
    if not seqs:
        raise EmptyDomainError(None, None, domain.name, f"no user survives the {k}-core filter")
    return remap_items(Domain(domain.name, domain.items, seqs))[0]


kcore = k_core


def leave_one_out(domain: Domain, protocol: Protocol, *, min_len: int = 3) -> SplitDomain:
    """Chronological leave-one-out: last item = test, second-last = valid, the rest = train.

    Users with fewer than ``min_len`` interactions have no valid/test example; their whole
    sequence is training data.

    Args:
        domain: Sequences must already be chronological.
        protocol: Stored on the result.
        min_len: Minimum sequence length for an evaluated user (>= 3).
    """
    if min_len < 3:
        raise ValueError(f"min_len must be >= 3 (train, valid and test items), got {min_len}")
    train: dict[str, np.ndarray] = {}
    ev: dict[str, tuple[list, list, list]] = {"valid": ([], [], []), "test": ([], [], [])}
    for u, s in domain.sequences.items():
        if len(s) < min_len:
            train[u] = s
            continue
        train[u] = s[:-2]
        for stage, cut in (("valid", len(s) - 2), ("test", len(s) - 1)):
            users, hists, targets = ev[stage]
            users.append(u)
            hists.append(s[:cut])
            targets.append(int(s[cut]))
    sets = {st: EvalSet(us, hs, np.asarray(ts, dtype=np.int64)) for st, (us, hs, ts) in ev.items()}
    if len(sets["test"]) == 0:
        raise EmptyDomainError(None, None, domain.name, f"no user has >= {min_len} interactions to evaluate")
    return SplitDomain(domain, train, sets["valid"], sets["test"], protocol)


def build_item_text(items: pd.DataFrame, fields: Sequence[str], *, sep: str = ". ",
                    prefixes: Mapping[str, str] | None = None) -> pd.Series:
    """Join chosen columns into one text per item, skipping missing/empty values.

    Args:
        items: Item attribute table.
        fields: Columns to use, in order (e.g. ``["title", "categories", "brand"]``).
        sep: Separator placed between non-empty fields.
        prefixes: Optional text placed before a field's value, e.g. ``{"brand": "Brand: "}``.

    Returns:
        Series of strings aligned with ``items`` (empty string when every field is empty).
    """
    missing = [f for f in fields if f not in items.columns]
    if missing:
        raise KeyError(f"no column(s) {missing} in the item table; columns: {list(items.columns)}")
    prefixes = dict(prefixes or {})

    def one(row) -> str:
        parts = []
        for f in fields:
            v = row[f]
            if v is None or (isinstance(v, float) and np.isnan(v)):
                continue
            if isinstance(v, (list, tuple)):
                v = " ".join(str(x) for x in v)
            v = str(v).strip()
            if v:
                parts.append(prefixes.get(f, "") + v)
        return sep.join(parts)

    return items.apply(one, axis=1).astype(str) if len(items) else pd.Series([], dtype=str)


def domain_stats(domain: Domain) -> dict:
    """Statistics of one domain: users, items, interactions, density and length quantiles."""
    lengths = np.fromiter((len(s) for s in domain.sequences.values()), dtype=np.int64,
                          count=len(domain.sequences))
    n_inter = int(lengths.sum())
    used = np.unique(np.concatenate(list(domain.sequences.values()))) if n_inter else np.zeros(0)
    q = np.quantile(lengths, [0.0, 0.25, 0.5, 0.75, 0.9, 1.0]) if len(lengths) else np.zeros(6)
    return {
        "users": domain.n_users,
        "items": domain.n_items,
        "items_used": int(len(used)),
        "interactions": n_inter,
        "density": n_inter / max(1, domain.n_users * domain.n_items),
        "length_mean": float(lengths.mean()) if len(lengths) else 0.0,
        "length_quantiles": {k: float(v) for k, v in zip(("min", "p25", "p50", "p75", "p90", "max"), q)},
    }


def _used(domain: Domain) -> np.ndarray:
    """Boolean mask of the items that occur in some sequence."""
    used = np.zeros(domain.n_items, dtype=bool)
    for s in domain.sequences.values():
        used[s] = True
    return used


def dataset_stats(data: Domain | SplitDomain | CrossDomainDataset) -> dict:
    """Per-domain statistics (users, items, interactions, density, length quantiles) and overlap.

    Returns:
        For a Domain: :func:`domain_stats`. For a SplitDomain/CrossDomainDataset:
        ``{"domains": {name: stats}, "overlap_users": int, "overlap_items": int, "split": {...},
        "protocol": str}`` where ``overlap_items`` counts used target items whose ``raw_id`` is also
        a used source item.
    """
    if isinstance(data, Domain):
        return domain_stats(data)
    if isinstance(data, SplitDomain):
        data = CrossDomainDataset(data.domain.name, (), data, frozenset())
    t = data.target
    domains = {d.name: domain_stats(d) for d in (t.domain, *data.sources)}
    source_raw: set = set()
    for d in data.sources:
        source_raw |= set(d.items["raw_id"].to_numpy()[_used(d)])
    target_raw = set(t.domain.items["raw_id"].to_numpy()[_used(t.domain)])
    evaluated = set(t.test.users)
    return {
        "dataset": data.name,
        "target": t.domain.name,
        "sources": [d.name for d in data.sources],
        "domains": domains,
        "overlap_users": len(data.overlap),
        "overlap_items": len(target_raw & source_raw),
        "split": {
            "train_users": len(t.train),
            "train_interactions": int(sum(len(s) for s in t.train.values())),
            "valid_users": len(t.valid),
            "test_users": len(t.test),
            "train_only_users": sum(1 for u in t.train if u not in evaluated),
        },
        "protocol": t.protocol.describe(),
    }


def flatten_stats(stats: dict) -> dict[str, float]:
    """``{"domains": {"food": {"items": 1}}, "overlap_users": 3}`` -> ``{"food.items": 1, "overlap_users": 3}``."""
    flat: dict[str, float] = {}
    for name, st in stats.get("domains", {}).items():
        for k, v in st.items():
            if isinstance(v, (int, float)):
                flat[f"{name}.{k}"] = v
    for k in ("overlap_users", "overlap_items"):
        if k in stats:
            flat[k] = stats[k]
    return flat


def check_reference(stats: dict, reference: Mapping[str, float]) -> list[str]:
    """Differences between ``stats`` and reference values, one message each (empty = all match)."""
    flat = flatten_stats(stats)
    out = []
    for key, want in reference.items():
        got = flat.get(key)
        if got != want:
            out.append(f"{key}: got {got}, reference {want}")
    return out


def sample_users(users, subsample: float, seed: int) -> set[str]:
    """A seeded random ``subsample`` fraction of ``users`` (at least one), independent of their order."""
    if not 0.0 < subsample <= 1.0:
        raise ValueError(f"subsample must be in (0, 1], got {subsample}")
    ordered = sorted(set(users))
    if subsample == 1.0:
        return set(ordered)
    n_keep = max(1, int(round(subsample * len(ordered))))
    perm = np.random.default_rng(seed).permutation(len(ordered))[:n_keep]
    return {ordered[i] for i in perm}


def keep_train_users(target: SplitDomain, fraction: float, seed: int) -> SplitDomain:
    """The target with only a seeded ``fraction`` of its training users (valid/test unchanged).

    The feature-scarcity (cold-start) curve retrains every model on such a split.
    """
    if fraction >= 1.0:
        return target
    users = sorted(target.train)
    n = max(1, int(round(fraction * len(users))))
    keep = {users[i] for i in np.random.default_rng(seed).permutation(len(users))[:n]}
    return SplitDomain(target.domain, {u: s for u, s in target.train.items() if u in keep},
                       target.valid, target.test, target.protocol)
