"""Full-ranking evaluation: every catalogue item is a candidate for every user (or, as some papers
do, only the target and a sample of negatives).

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

Sampled ranking (``protocol.ranking = "sampled"``, e.g. LLMCDSR's 999 negatives): the same (B, N)
scores are computed, then only the target's and its ``protocol.negatives`` sampled items' columns are
ranked (:func:`sample_negatives`). Memory: a batch holds at most ``max_scores`` scores (2^27 by
default, 512 MiB in float32, plus a masked copy), so a 1 M-item catalogue is scored 134 users at a
time; the result does not depend on the batch size.

Ties follow ``protocol.ties`` (:func:`xdtutor.metrics.rank_of_target`; default pessimistic: the
target ranks after every item with an equal score, so ties never flatter a model).
``per_user["ties"]`` counts the items tied with the target; :func:`evaluate` warns when more than
1% of users have ties.
"""

from __future__ import annotations

import inspect
import itertools
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from . import distributed
from .data.types import EvalSet
from .metrics import METRICS, per_example, ranks_and_ties
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


def sample_negatives(targets: np.ndarray, n_items: int, negatives: int, seed: int) -> np.ndarray:
    """Each user's sampled negatives: ``negatives`` distinct items other than the target.

    Drawn uniformly without replacement from items ``0 … n_items-1`` minus the target, user by user
    in order from one seeded generator (as LLMCDSR draws its fixed evaluation negatives once). The
    user's own history may be drawn.

    Args:
        targets: (U,) 0-based target items.
        n_items: Ranked catalogue size N.
        negatives: Negatives per user (at most N − 1).
        seed: Seed of the generator.

    Returns:
        (U, negatives) int64 item ids, none equal to its row's target.

    Raises:
        ValueError: If ``negatives`` is not in [1, N − 1].
    """
    if not 1 <= negatives <= n_items - 1:
        raise ValueError(f"protocol.negatives={negatives} must be in [1, {n_items - 1}] for a catalogue of "
                         f"{n_items:,} ranked items")
    rng = np.random.default_rng(seed)
    drawn = np.stack([rng.choice(n_items - 1, size=negatives, replace=False) for _ in range(len(targets))]) \
        if len(targets) else np.zeros((0, negatives), dtype=np.int64)
    targets = np.asarray(targets, dtype=np.int64)[:, None]
    return (drawn + (drawn >= targets)).astype(np.int64)  # skip the target: ids >= target move up by one


def evaluate(model: Any, eval_set: EvalSet, protocol: Protocol, *, device: str | torch.device | None = None,
             batch_size: int = 1024, progress: bool = False, max_scores: int = 2 ** 27) -> EvalResult:
    """Full-ranking (or sampled-ranking) evaluation of ``model`` on ``eval_set``.

    Args:
        model: Anything with ``score(item_seq (B, L) LongTensor) -> (B, N)`` and ``n_items`` (or
            ``n_scored``: the ranked first items of a joint catalogue, whose other items may appear in
            histories). An
            ``nn.Module`` is put in eval mode (its training flag is restored afterwards) and moved to
            ``device`` when one is given. A model with ``needs_users = True`` is called as
            ``score(item_seq, users=[user keys of the batch])`` (the EMCDR cold-user recommender).
            A model with ``item_representations()`` whose ``score`` takes ``items=`` gets them
            computed once for all batches.
        eval_set: Users, their histories (0-based item ids) and one 0-based target each.
        protocol: Supplies ``max_len`` (history columns), ``mask_history``, ``ks`` and the ranking
            (full, or sampled with its negatives).
        device: ``None`` = the module's own device (or :func:`~xdtutor.utils.select_device` for a
            model without tensors); otherwise the model is moved there.
        batch_size: Users per batch (at most; see ``max_scores``); the result does not depend on it.
            Under ``torchrun`` each process ranks every world-th user and the ranks are gathered
            (:mod:`xdtutor.distributed`): every process returns the same result.
        progress: Show a progress bar over batches.
        max_scores: Most scores one batch may hold: batches are cut to ``max_scores // N`` users
            when that is smaller than ``batch_size`` (a memory bound, not a result setting).

    Returns:
        :class:`EvalResult` with mean and per-user metrics.

    Raises:
        ValueError: Empty evaluation set, bad batch size, or a score matrix of the wrong shape.
    """
    n = len(eval_set)
    if n == 0:
        raise ValueError("evaluate: the evaluation set has no users")
    if batch_size < 1 or max_scores < 1:
        raise ValueError(f"batch_size and max_scores must be >= 1, got {batch_size} and {max_scores}")
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
    # A model on a joint catalogue ranks only its first n_scored items (the target's).
    n_ranked = getattr(model, "n_scored", getattr(model, "n_items", None))
    if n_ranked is not None:
        batch_size = max(1, min(batch_size, max_scores // int(n_ranked)))
    targets_all = np.asarray(eval_set.targets, dtype=np.int64)
    # Under torchrun each process ranks every world-th user; the ranks are gathered at the end.
    _, rank, world = distributed.info()
    mine = np.arange(rank, n, world)
    ranks = np.empty(len(mine), dtype=np.float64 if protocol.ties == "average" else np.int64)
    ties = np.empty(len(mine), dtype=np.int64)
    repeat = np.zeros(len(mine), dtype=bool)
    negatives = None
    try:
        # no_grad, not inference_mode: a model may rewrite its own parameters in forward (peft's
        # LoRA MultiheadAttention merges and unmerges in place); under inference_mode those become
        # inference tensors that training can no longer update or reload.
        with torch.no_grad():
            score = model.score
            if (hasattr(model, "item_representations") and not needs_users
                    and "items" in inspect.signature(model.score).parameters):
                items = model.item_representations()  # (N, H) once, not once per batch
                score = lambda seq: model.score(seq, items=items)  # noqa: E731
            for start in tqdm(range(0, len(mine), batch_size), desc="evaluate", unit="batch", disable=not progress):
                stop = min(start + batch_size, len(mine))
                rows_of = mine[start:stop]  # positions of this batch's users in eval_set
                histories = [eval_set.histories[i] for i in rows_of]
                tgt_np = targets_all[rows_of]
                seq = pad_left(histories, protocol.max_len).to(dev)  # (B, L)
                if needs_users:  # e.g. cold users scored from their source representation
                    scores = model.score(seq, users=[eval_set.users[i] for i in rows_of])
                else:
                    scores = score(seq)
                scores = torch.as_tensor(scores).to(dev, torch.float32)  # (B, N)
                n_items = n_ranked if n_ranked is not None else scores.shape[1]
                if scores.shape != (stop - start, n_items):
                    raise ValueError(f"model.score returned shape {tuple(scores.shape)}, "
                                     f"expected ({stop - start}, {n_items})")
                tgt = torch.as_tensor(tgt_np, device=dev)  # (B,)

                # Flat (row, item) pairs of the full histories: masking without a loop over users.
                lengths = np.fromiter((len(h) for h in histories), dtype=np.int64, count=stop - start)
                items_np = (np.concatenate([np.asarray(h, dtype=np.int64) for h in histories])
                            if lengths.sum() else np.zeros(0, dtype=np.int64))
                rows = np.repeat(np.arange(stop - start), lengths)
                ranked = items_np < n_items  # history items of another catalogue are never candidates
                items_np, rows = items_np[ranked], rows[ranked]
                repeat[start:stop] = np.bincount(rows[items_np == tgt_np[rows]], minlength=stop - start) > 0
                if protocol.mask_history and len(items_np):
                    target_scores = scores.gather(1, tgt[:, None])  # (B, 1)
                    index = (torch.as_tensor(rows, device=dev), torch.as_tensor(items_np, device=dev))
                    scores = scores.index_put(index, torch.tensor(-math.inf, device=dev))  # (B, N), a copy
                    scores.scatter_(1, tgt[:, None], target_scores)  # the target is never masked

                if protocol.ranking == "sampled":  # the target (column 0) against its sampled negatives
                    if negatives is None:
                        negatives = sample_negatives(targets_all, n_items, protocol.negatives,
                                                     protocol.negatives_seed)
                    candidates = torch.as_tensor(np.concatenate([tgt_np[:, None], negatives[rows_of]], axis=1),
                                                 device=dev)                     # (B, 1 + negatives)
                    scores, tgt = scores.gather(1, candidates), torch.zeros_like(tgt)  # (B, 1 + negatives)
                batch_ranks, tied = ranks_and_ties(scores, tgt, ties=protocol.ties)  # (B,), (B,)
                ranks[start:stop], ties[start:stop] = batch_ranks.cpu().numpy(), tied.cpu().numpy()
    finally:
        if was_training:
            model.train()

    if world > 1:  # every process gets every user's rank, in eval_set order
        parts = distributed.all_gather((mine, ranks, ties, repeat))
        order = np.concatenate([p[0] for p in parts])
        ranks, ties, repeat = (np.empty_like(a, shape=(n,)) for a in (ranks, ties, repeat))
        for j, name in enumerate((ranks, ties, repeat), start=1):
            name[order] = np.concatenate([p[j] for p in parts])
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


__all__ = ["EvalResult", "confidence_interval", "evaluate", "paired_test", "sample_negatives"]
