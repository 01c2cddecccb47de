"""What sampled metrics do: full-ranking results read under a sampled-negatives protocol.

Some papers (LLMCDSR among them) rank each test user's target against ``m`` negatives drawn at
random from the catalogue (999 in LLMCDSR), not against every item. Krichene & Rendle ("On Sampled
Metrics for Item Recommendation", KDD 2020) showed that such metrics are not a cheaper estimate of
the full-ranking ones: they can change *which method looks best*.

For a target whose full rank is ``r`` (1-based; ``r - 1`` of the other ``N - 1`` items score at
least as high, pessimistic ties), the number ``X`` of those items among ``m`` negatives drawn
uniformly without replacement is hypergeometric, and the sampled rank is ``1 + X``. So the
*expected* sampled metric of every user follows exactly from the full rank — no model needs to be
run again, and the sampling noise of one draw is not added:

* ``E[HR@K]   = P(X <= K - 1)``,
* ``E[NDCG@K] = sum_{x < K} P(X = x) / log2(x + 2)``,
* ``E[MRR@K]  = sum_{x < K} P(X = x) / (x + 1)``.

:func:`xdtutor.evaluate.evaluate` with ``Protocol(ranking="sampled", negatives=m)`` draws one
realisation (the tests check that its average over draws converges to these expectations).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import hypergeom, kendalltau

from .metrics import METRICS


def expected_sampled_metrics(ranks: np.ndarray, n_items: int, negatives: int,
                             ks: tuple[int, ...] = (10,)) -> dict[str, np.ndarray]:
    """Per-user expected metrics under ``negatives`` sampled negatives, from full-ranking ranks.

    Args:
        ranks: (U,) 1-based full-ranking ranks of each user's target among ``n_items`` items.
        n_items: Ranked catalogue size N.
        negatives: Negatives m drawn per user (uniform, without replacement, never the target).
        ks: Cut-offs.

    Returns:
        ``{"hr@K", "recall@K", "ndcg@K", "mrr@K": (U,) float arrays}``.

    Raises:
        ValueError: Ranks outside [1, N] or ``negatives`` outside [1, N - 1].
    """
    r = np.asarray(ranks)
    if r.size and (r.min() < 1 or r.max() > n_items or not np.all(r == np.floor(r))):
        raise ValueError(f"ranks must be integers in [1, {n_items}] (full ranking over {n_items:,} items)")
    if not 1 <= negatives <= n_items - 1:
        raise ValueError(f"negatives={negatives} must be in [1, {n_items - 1}]")
    above = r.astype(np.int64) - 1                                      # (U,) items at or above the target
    x = np.arange(max(ks))[:, None]                                     # (K, 1) sampled items above it
    pmf = hypergeom.pmf(x, n_items - 1, above[None, :], negatives)      # (K, U): P(X = x)
    out: dict[str, np.ndarray] = {}
    for k in ks:
        p = pmf[:k]                                                     # (k, U)
        out[f"hr@{k}"] = p.sum(axis=0)
        out[f"recall@{k}"] = out[f"hr@{k}"]
        out[f"ndcg@{k}"] = (p / np.log2(x[:k] + 2.0)).sum(axis=0)
        out[f"mrr@{k}"] = (p / (x[:k] + 1.0)).sum(axis=0)
    return {f"{m}@{k}": out[f"{m}@{k}"] for m in METRICS for k in ks}


def compare_protocols(per_user: pd.DataFrame, n_items: int, negatives: tuple[int, ...] = (99, 999),
                      metric: str = "ndcg@10") -> pd.DataFrame:
    """Mean ``metric`` of every method under full ranking and under each sampled protocol.

    Args:
        per_user: One row per (method, seed, user) with a full-ranking ``rank`` column (a run
            folder's ``per_user.csv``).
        n_items: Ranked catalogue size N.
        negatives: Sampled protocols to compare with.
        metric: ``"ndcg@K"``, ``"hr@K"``, ``"recall@K"`` or ``"mrr@K"``.

    Returns:
        One row per method (best full-ranking value first): ``full`` and ``sampled_<m>`` (mean over
        seeds of the mean over users), ``<column>_std`` (sample std over seeds; NaN for one seed)
        and ``rank_<column>`` (1 = best under that protocol).
    """
    k = int(metric.split("@")[1])
    protocols = {"full": n_items - 1, **{f"sampled_{m}": m for m in negatives}}  # all N-1 negatives = full
    rows = []
    for (method, seed), group in per_user.groupby(["method", "seed"], sort=False):
        ranks = group["rank"].to_numpy()
        rows.append({"method": method, "seed": seed, **{
            name: float(expected_sampled_metrics(ranks, n_items, m, (k,))[metric].mean())
            for name, m in protocols.items()}})
    by_seed = pd.DataFrame(rows).groupby("method", sort=False)[list(protocols)]
    table = by_seed.mean().join(by_seed.std(ddof=1).add_suffix("_std")).sort_values("full", ascending=False)
    for name in protocols:
        table[f"rank_{name}"] = table[name].rank(ascending=False, method="min").astype(int)
    return table


def ranking_agreement(table: pd.DataFrame, negatives: int) -> float:
    """Kendall's tau between the method orders under full ranking and ``negatives`` sampled negatives
    (1 = the same order, −1 = reversed)."""
    return float(kendalltau(table["full"], table[f"sampled_{negatives}"]).statistic)


__all__ = ["compare_protocols", "expected_sampled_metrics", "ranking_agreement"]
