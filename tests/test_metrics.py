"""Metrics: hand-worked cases, ties, K beyond the catalogue, and two independent references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from xdtutor.metrics import (compute_all, count_ties, hit_at_k, metric_names, mrr_at_k, ndcg_at_k,
                             rank_of_target, ranks_and_ties, recall_at_k)


def test_ideal_ranking_scores_one():
    ranks = np.ones(7, dtype=np.int64)
    for k in (1, 5, 10):
        out = compute_all(ranks, [k])
        assert out == {f"recall@{k}": 1.0, f"ndcg@{k}": 1.0, f"mrr@{k}": 1.0, f"hr@{k}": 1.0}


def test_no_hit_scores_zero():
    ranks = np.array([11, 50, 1000])
    out = compute_all(ranks, [10])
    assert all(v == 0.0 for v in out.values())


def test_worked_example():
    # Ranks 1, 3, 12 with K = 10:
    #   recall = (1 + 1 + 0) / 3; ndcg = (1/log2(2) + 1/log2(4) + 0) / 3 = (1 + .5) / 3 = .5
    #   mrr = (1 + 1/3 + 0) / 3 = 4/9
    ranks = np.array([1, 3, 12])
    out = compute_all(ranks, [10])
    assert out["recall@10"] == pytest.approx(2 / 3)
    assert out["hr@10"] == pytest.approx(2 / 3)
    assert out["ndcg@10"] == pytest.approx(0.5)
    assert out["mrr@10"] == pytest.approx(4 / 9)
    # At K = 2 only the first example counts.
    assert ndcg_at_k(ranks, 2).tolist() == [1.0, 0.0, 0.0]
    assert ndcg_at_k(np.array([7]), 10)[0] == pytest.approx(1 / 3)  # 1/log2(8)


def test_numpy_and_torch_agree_and_keep_type():
    ranks = np.array([1, 2, 5, 9, 40])
    for f in (recall_at_k, hit_at_k, ndcg_at_k, mrr_at_k):
        a = f(ranks, 5)
        b = f(torch.from_numpy(ranks), 5)
        assert isinstance(a, np.ndarray) and isinstance(b, torch.Tensor)
        np.testing.assert_allclose(a, b.numpy(), rtol=0, atol=0)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="1-based"):
        ndcg_at_k(np.array([0, 1]), 5)
    with pytest.raises(ValueError, match="positive integer"):
        recall_at_k(np.array([1]), 0)
    with pytest.raises(ValueError, match="at least one"):
        compute_all(np.array([], dtype=np.int64), [5])


def test_rank_of_target_basic():
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.3],
                           [0.4, 0.3, 0.2, 0.1]])
    assert rank_of_target(scores, torch.tensor([1, 3])).tolist() == [1, 4]
    assert rank_of_target(scores, torch.tensor([2, 0])).tolist() == [2, 1]


def test_rank_of_target_ties():
    # Target (item 0) ties with two other items; one item scores strictly higher.
    scores = torch.tensor([[1.0, 1.0, 2.0, 1.0, 0.0]])
    t = torch.tensor([0])
    assert rank_of_target(scores, t, ties="optimistic").tolist() == [2]   # 1 + #strictly higher
    assert rank_of_target(scores, t, ties="pessimistic").tolist() == [4]  # + the two tied items
    assert rank_of_target(scores, t).tolist() == [4]                      # the default is pessimistic
    assert rank_of_target(scores, t, ties="average").tolist() == [3.0]
    assert count_ties(scores, t).tolist() == [2]
    # A constant scorer is perfect under the optimistic rule and last under the pessimistic one.
    const = torch.zeros(3, 10)
    assert rank_of_target(const, torch.tensor([0, 5, 9]), ties="optimistic").tolist() == [1, 1, 1]
    assert rank_of_target(const, torch.tensor([0, 5, 9])).tolist() == [10, 10, 10]


def test_rank_of_target_inf_and_errors():
    scores = torch.tensor([[-math.inf, 0.5, 0.7]])
    assert rank_of_target(scores, torch.tensor([1])).tolist() == [2]
    assert rank_of_target(scores, torch.tensor([0])).tolist() == [3]
    with pytest.raises(ValueError, match="NaN"):
        rank_of_target(torch.tensor([[float("nan"), 1.0]]), torch.tensor([0]))
    with pytest.raises(ValueError, match="item ids"):
        rank_of_target(scores, torch.tensor([3]))
    with pytest.raises(ValueError, match=r"\(B, N\)"):
        rank_of_target(torch.zeros(3), torch.tensor([0]))
    with pytest.raises(ValueError, match="ties"):
        rank_of_target(scores, torch.tensor([0]), ties="random")


@pytest.mark.parametrize("ties", ["optimistic", "pessimistic", "average"])
def test_ranks_and_ties_agree_with_a_per_row_count(ties):
    """Evaluation's one-pass ranks and tie counts (summed in int32) equal a plain per-row count in
    Python, on scores with many ties, excluded (-inf) and NaN non-target items."""
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 6, (50, 40), generator=g).to(torch.float32)  # (B, N), ties everywhere
    targets = torch.randint(0, 40, (50,), generator=g)
    scores[torch.rand(50, 40, generator=g) < 0.1] = -math.inf
    scores[torch.rand(50, 40, generator=g) < 0.05] = float("nan")
    scores[torch.arange(50), targets] = torch.randint(0, 6, (50,), generator=g).to(torch.float32)
    ranks, tied = ranks_and_ties(scores, targets, ties=ties)
    for b in range(50):
        row, t = scores[b].tolist(), float(scores[b, targets[b]])
        higher = sum(x > t for x in row)
        equal = sum(x == t for x in row) - 1
        assert int(tied[b]) == equal
        assert float(ranks[b]) == {"optimistic": higher + 1, "pessimistic": higher + equal + 1,
                                   "average": higher + equal / 2 + 1}[ties]
    assert torch.equal(ranks, rank_of_target(scores, targets, ties=ties))
    assert torch.equal(tied, count_ties(scores, targets)) and tied.dtype == torch.long
    # a long row of ties: the int32 sum is exact
    assert ranks_and_ties(torch.zeros(1, 70_000), torch.tensor([5]))[1].tolist() == [69_999]


def test_k_larger_than_catalogue():
    scores = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    ranks = rank_of_target(scores, torch.tensor([0, 1, 2, 3, 0, 1]))
    assert int(ranks.max()) <= 4
    out = compute_all(ranks, [50])
    assert out["recall@50"] == 1.0 and out["hr@50"] == 1.0
    # NDCG and MRR at K >= N are the untruncated values.
    r = ranks.numpy().astype(float)
    assert out["ndcg@50"] == pytest.approx(np.mean(1 / np.log2(r + 1)))
    assert out["mrr@50"] == pytest.approx(np.mean(1 / r))


def test_metric_names_order():
    assert metric_names([5, 10])[:5] == ["recall@5", "ndcg@5", "mrr@5", "hr@5", "recall@10"]


def _loop_reference(scores: np.ndarray, targets: np.ndarray, k: int) -> dict[str, float]:
    """Plain-Python reference: sort each row, find the target's position."""
    rec = ndcg = mrr = 0.0
    for row, t in zip(scores.tolist(), targets.tolist()):
        order = sorted(range(len(row)), key=lambda i: -row[i])
        pos = order.index(t) + 1
        if pos <= k:
            rec += 1
            ndcg += 1 / math.log2(pos + 1)
            mrr += 1 / pos
    b = len(targets)
    return {"recall": rec / b, "ndcg": ndcg / b, "mrr": mrr / b}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_against_python_loop(seed):
    rng = np.random.default_rng(seed)
    b, n = 40, 30
    scores = rng.standard_normal((b, n))  # continuous: no ties
    targets = rng.integers(0, n, size=b)
    ranks = rank_of_target(torch.from_numpy(scores), torch.from_numpy(targets))
    for k in (1, 5, 10, 50):
        ref = _loop_reference(scores, targets, k)
        out = compute_all(ranks, [k])
        assert out[f"recall@{k}"] == pytest.approx(ref["recall"], abs=1e-12)
        assert out[f"hr@{k}"] == pytest.approx(ref["recall"], abs=1e-12)
        assert out[f"ndcg@{k}"] == pytest.approx(ref["ndcg"], abs=1e-12)
        assert out[f"mrr@{k}"] == pytest.approx(ref["mrr"], abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_against_torchmetrics(seed):
    tm = pytest.importorskip("torchmetrics.retrieval")
    gen = torch.Generator().manual_seed(seed)
    b, n = 32, 25
    # A random permutation per row as scores: distinct values, so no ties (torchmetrics breaks ties
    # by sort order, we rank optimistically — they only agree without ties). Scores are kept > 0:
    # torchmetrics' recall counts an item as retrieved only if its score is positive.
    scores = (torch.argsort(torch.rand(b, n, generator=gen), dim=1).float() + 1.0) / n
    targets = torch.randint(0, n, (b,), generator=gen)
    relevant = torch.zeros(b, n, dtype=torch.bool)
    relevant[torch.arange(b), targets] = True
    indexes = torch.arange(b)[:, None].expand(b, n)
    ranks = rank_of_target(scores, targets)
    for k in (1, 5, 10, 30):
        ours = compute_all(ranks, [k])
        ref = {
            "ndcg": tm.RetrievalNormalizedDCG(top_k=k), "recall": tm.RetrievalRecall(top_k=k),
            "mrr": tm.RetrievalMRR(top_k=k), "hr": tm.RetrievalHitRate(top_k=k),
        }
        for name, metric in ref.items():
            value = float(metric(scores.flatten(), relevant.flatten(), indexes=indexes.flatten()))
            assert ours[f"{name}@{k}"] == pytest.approx(value, abs=1e-6), (name, k)
