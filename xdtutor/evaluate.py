"""Full-ranking evaluation: every catalogue item is a candidate for every user.

:func:`evaluate` feeds users to ``model.score`` in batches, on the device: histories are
left-padded (:func:`xdtutor.utils.pad_left`), the (B, N) score matrix is optionally masked and
turned into the (B,) 1-based rank of each user's target (:func:`xdtutor.metrics.rank_of_target`);
only the ranks travel back to the CPU. The result keeps per-user metrics for confidence intervals
(:func:`confidence_interval`) and paired significance tests (:func:`paired_test`), and the
:class:`~xdtutor.protocol.Protocol` it was computed under, which is printed with every table.

History masking (``protocol.mask_history``): every item in the user's *full* history (not only
the last ``max_len`` items fed to the model) gets score ``-inf`` — **except the target**, which
keeps its score even when the user consumed it before (a repeat purchase). RecBole's masking
instead removes all history items including a repeated target, which puts that target last; we
never do that, because it punishes a model for a correct prediction. Users whose target is a
repeat are flagged in ``per_user["target_in_history"]`` so their share can be reported. RecBole
and UniSRec do not mask for sequential models; their published numbers are unmasked.

Ties follow ``protocol.ties`` (:func:`xdtutor.metrics.rank_of_target`; default pessimistic: the
target ranks after every item with an equal score, so ties never flatter a model).
``per_user["ties"]`` counts the items tied with the target; :func:`evaluate` warns when more than
1% of users have ties.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .data.types import EvalSet
from .metrics import METRICS, count_ties, per_example, rank_of_target
from .protocol import Protocol
from .utils import pad_left, select_device


@dataclass(frozen=True, eq=False)
class EvalResult:
    """Metrics of one model on one evaluation set under one protocol.

    Attributes:
        metrics: Mean over users, ``{"recall@K", "ndcg@K", "mrr@K", "hr@K"}`` for K in ``protocol.ks``.
        per_user: One row per user: ``user``, ``rank`` (1-based), ``ties`` (other items with the
            target's score), ``target_in_history`` and one column per metric.
        protocol: How the numbers were produced.
    """

    metrics: dict[str, float]
    per_user: pd.DataFrame
    protocol: Protocol

    @property
    def n_users(self) -> int:
        return len(self.per_user)

    def table(self, digits: int = 4) -> str:
        """The protocol line, the number of users and a metric × K table."""
        ks = self.protocol.ks
        width = max(8, digits + 4)
        lines = [self.protocol.describe(), f"users: {self.n_users:,}",
                 " " * 8 + "".join(f"{'@' + str(k):>{width}}" for k in ks)]
        for m in METRICS:
            lines.append(f"{m:<8}" + "".join(f"{self.metrics[f'{m}@{k}']:>{width}.{digits}f}" for k in ks))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        return f"EvalResult(n_users={self.n_users}, metrics={self.metrics!r})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: protocol, mean metrics and counts (no per-user rows)."""
        return {
            "protocol": self.protocol.to_dict(),
            "metrics": dict(self.metrics),
            "n_users": self.n_users,
            "users_with_ties": int((self.per_user["ties"] > 0).sum()),
            "users_target_in_history": int(self.per_user["target_in_history"].sum()),
        }


def _module_device(model: Any) -> torch.device | None:
    if isinstance(model, torch.nn.Module):
        for t in itertools.chain(model.parameters(), model.buffers()):
            return t.device
    return None


def evaluate(model: Any, eval_set: EvalSet, protocol: Protocol, *, device: str | torch.device | None = None,
             batch_size: int = 1024, progress: bool = False) -> EvalResult:
    """Full-ranking evaluation of ``model`` on ``eval_set``.

    Args:
        model: Anything with ``score(item_seq (B, L) LongTensor) -> (B, N)`` and ``n_items`` (or
            ``n_scored``: the ranked first items of a joint catalogue, whose other items may appear in
            histories). An
            ``nn.Module`` is put in eval mode (its training flag is restored afterwards) and moved to
            ``device`` when one is given. A model with ``needs_users = True`` is called as
            ``score(item_seq, users=[user keys of the batch])`` (the EMCDR cold-user recommender).
        eval_set: Users, their histories (0-based item ids) and one 0-based target each.
        protocol: Supplies ``max_len`` (history columns), ``mask_history`` and ``ks``.
        device: ``None`` = the module's own device (or :func:`~xdtutor.utils.select_device` for a
            model without tensors); otherwise the model is moved there.
        batch_size: Users per batch; the result does not depend on it.
        progress: Show a progress bar over batches.

    Returns:
        :class:`EvalResult` with mean and per-user metrics.

    Raises:
        ValueError: Empty evaluation set, bad batch size, or a score matrix of the wrong shape.
    """
    n = len(eval_set)
    if n == 0:
        raise ValueError("evaluate: the evaluation set has no users")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if len(eval_set.histories) != n or len(eval_set.targets) != n:
        raise ValueError(f"evaluate: eval_set has {n} users, {len(eval_set.histories)} histories and "
                         f"{len(eval_set.targets)} targets")
    own = _module_device(model)
    if device is None:
        dev = own if own is not None else select_device(None)
    else:
        dev = select_device(device)
        if isinstance(model, torch.nn.Module) and own is not None and own != dev:
            model.to(dev)
    was_training = isinstance(model, torch.nn.Module) and model.training
    if isinstance(model, torch.nn.Module):
        model.eval()

    needs_users = bool(getattr(model, "needs_users", False))
    targets_all = np.asarray(eval_set.targets, dtype=np.int64)
    ranks = np.empty(n, dtype=np.float64 if protocol.ties == "average" else np.int64)
    ties = np.empty(n, dtype=np.int64)
    repeat = np.zeros(n, dtype=bool)
    try:
        # no_grad, not inference_mode: a model may rewrite its own parameters in forward (peft's
        # LoRA MultiheadAttention merges and unmerges in place); under inference_mode those become
        # inference tensors that training can no longer update or reload.
        with torch.no_grad():
            for start in tqdm(range(0, n, batch_size), desc="evaluate", unit="batch", disable=not progress):
                stop = min(start + batch_size, n)
                histories = eval_set.histories[start:stop]
                tgt_np = targets_all[start:stop]
                seq = pad_left(histories, protocol.max_len).to(dev)  # (B, L)
                if needs_users:  # e.g. cold users scored from their source representation
                    scores = model.score(seq, users=list(eval_set.users[start:stop]))
                else:
                    scores = model.score(seq)
                scores = torch.as_tensor(scores).to(dev, torch.float32)  # (B, N)
                # A model on a joint catalogue ranks only its first n_scored items (the target's).
                n_items = getattr(model, "n_scored", getattr(model, "n_items", scores.shape[1]))
                if scores.shape != (stop - start, n_items):
                    raise ValueError(f"model.score returned shape {tuple(scores.shape)}, "
                                     f"expected ({stop - start}, {n_items})")
                tgt = torch.as_tensor(tgt_np, device=dev)  # (B,)

                # Flat (row, item) pairs of the full histories: masking without a loop over users.
                lengths = np.fromiter((len(h) for h in histories), dtype=np.int64, count=stop - start)
                items = (np.concatenate([np.asarray(h, dtype=np.int64) for h in histories])
                         if lengths.sum() else np.zeros(0, dtype=np.int64))
                rows = np.repeat(np.arange(stop - start), lengths)
                ranked = items < n_items  # history items of another catalogue are never candidates
                items, rows = items[ranked], rows[ranked]
                repeat[start:stop] = np.bincount(rows[items == tgt_np[rows]], minlength=stop - start) > 0
                if protocol.mask_history and len(items):
                    target_scores = scores.gather(1, tgt[:, None])  # (B, 1)
                    index = (torch.as_tensor(rows, device=dev), torch.as_tensor(items, device=dev))
                    scores = scores.index_put(index, torch.tensor(-math.inf, device=dev))  # (B, N), a copy
                    scores.scatter_(1, tgt[:, None], target_scores)  # the target is never masked

                ranks[start:stop] = rank_of_target(scores, tgt, ties=protocol.ties).cpu().numpy()
                ties[start:stop] = count_ties(scores, tgt).cpu().numpy()
    finally:
        if was_training:
            model.train()

    values = per_example(ranks, protocol.ks)
    per_user = pd.DataFrame({"user": list(eval_set.users), "rank": ranks, "ties": ties,
                             "target_in_history": repeat, **values})
    tied = float((ties > 0).mean())
    if tied > 0.01:
        warnings.warn(f"{tied:.1%} of users have items tied with their target's score; ties are "
                      f"ranked {protocol.ties} (protocol.ties, see xdtutor.metrics.rank_of_target)",
                      stacklevel=2)
    metrics = {name: float(v.mean()) for name, v in values.items()}
    return EvalResult(metrics=metrics, per_user=per_user, protocol=protocol)


def _paired_values(a: EvalResult, b: EvalResult, metric: str) -> tuple[np.ndarray, np.ndarray]:
    for r, name in ((a, "a"), (b, "b")):
        if metric not in r.per_user.columns:
            raise KeyError(f"metric {metric!r} not in result {name} (columns: {list(r.per_user.columns)})")
    if a.protocol != b.protocol:
        raise ValueError("paired_test: results were computed under different protocols:\n  "
                         f"{a.protocol.describe()}\n  {b.protocol.describe()}")
    merged = a.per_user[["user", metric]].merge(b.per_user[["user", metric]], on="user",
                                                suffixes=("_a", "_b"), validate="one_to_one")
    if merged.empty:
        raise ValueError("paired_test: the two results share no users")
    return merged[f"{metric}_a"].to_numpy(float), merged[f"{metric}_b"].to_numpy(float)


def _permutation_p(diff: np.ndarray, n_resamples: int, seed: int) -> float:
    """Two-sided sign-flip permutation test of mean(diff) == 0."""
    rng = np.random.default_rng(seed)
    observed = abs(diff.mean())
    extreme = 0
    chunk = max(1, int(2e6 // max(len(diff), 1)))
    for done in range(0, n_resamples, chunk):
        m = min(chunk, n_resamples - done)
        signs = rng.choice(np.array([-1.0, 1.0]), size=(m, len(diff)))
        extreme += int((np.abs((signs * diff).mean(axis=1)) >= observed - 1e-12).sum())
    return (extreme + 1) / (n_resamples + 1)


def paired_test(a: EvalResult, b: EvalResult, metric: str = "ndcg@10", *, method: str | None = None,
                n_resamples: int = 10_000, seed: int = 0) -> dict[str, Any]:
    """Is the difference between two models significant? Users are paired by key.

    Args:
        a: Result of model A.
        b: Result of model B (same protocol; only users present in both are compared).
        metric: Per-user column, e.g. ``"ndcg@10"``.
        method: ``"ttest"`` (paired t-test, scipy), ``"wilcoxon"`` (signed-rank, scipy) or
            ``"permutation"`` (sign-flip, NumPy only). ``None`` = ``"ttest"`` when scipy is
            installed, else ``"permutation"``.
        n_resamples: Resamples of the permutation test.
        seed: Seed of the permutation test.

    Returns:
        Dict with ``metric``, ``method``, ``n_users``, ``mean_a``, ``mean_b``, ``mean_diff``
        (a − b), ``statistic`` (None for the permutation test) and ``p_value`` (two-sided).
    """
    try:
        import scipy.stats as stats
    except ImportError:  # pragma: no cover - scipy is installed where the tests run
        stats = None
    if method is None:
        method = "ttest" if stats is not None else "permutation"
    if method not in ("ttest", "wilcoxon", "permutation"):
        raise ValueError(f"method must be 'ttest', 'wilcoxon' or 'permutation', got {method!r}")
    if method != "permutation" and stats is None:
        raise ImportError(f"method={method!r} needs scipy; use method='permutation'")
    va, vb = _paired_values(a, b, metric)
    diff = va - vb
    statistic: float | None = None
    if not np.any(diff != 0):
        p = 1.0  # identical per-user values: no evidence of a difference
    elif method == "ttest":
        res = stats.ttest_rel(va, vb)
        statistic, p = float(res.statistic), float(res.pvalue)
    elif method == "wilcoxon":
        res = stats.wilcoxon(va, vb)
        statistic, p = float(res.statistic), float(res.pvalue)
    else:
        p = _permutation_p(diff, n_resamples, seed)
    return {"metric": metric, "method": method, "n_users": int(len(diff)), "mean_a": float(va.mean()),
            "mean_b": float(vb.mean()), "mean_diff": float(diff.mean()), "statistic": statistic,
            "p_value": float(p)}


def confidence_interval(result: EvalResult, metric: str = "ndcg@10", level: float = 0.95, *,
                        n_boot: int = 1000, seed: int = 0) -> dict[str, float]:
    """Percentile bootstrap confidence interval of the mean of a per-user metric (seeded).

    Args:
        result: An :class:`EvalResult`.
        metric: Per-user column, e.g. ``"ndcg@10"``.
        level: Coverage, in (0, 1).
        n_boot: Bootstrap resamples of the users.
        seed: Seed; the same seed gives the same interval.

    Returns:
        ``{"metric", "mean", "low", "high", "level", "n_boot"}``.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if metric not in result.per_user.columns:
        raise KeyError(f"metric {metric!r} not in result (columns: {list(result.per_user.columns)})")
    values = result.per_user[metric].to_numpy(float)
    rng = np.random.default_rng(seed)
    n = len(values)
    means = np.empty(n_boot)
    chunk = max(1, int(2e6 // max(n, 1)))
    for start in range(0, n_boot, chunk):
        m = min(chunk, n_boot - start)
        means[start:start + m] = values[rng.integers(0, n, size=(m, n))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return {"metric": metric, "mean": float(values.mean()), "low": float(low), "high": float(high),
            "level": level, "n_boot": n_boot}


__all__ = ["EvalResult", "evaluate", "paired_test", "confidence_interval"]
