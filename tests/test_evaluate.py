"""Full-ranking evaluation with tiny fake scorers: ranks, masking, batching, devices, statistics."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from xdtutor import evaluate as evaluate_module
from xdtutor.data.types import EvalSet
from xdtutor.evaluate import EvalResult, confidence_interval, evaluate, paired_test
from xdtutor.protocol import Protocol
from xdtutor.utils import pad_left


class FixedScorer:
    """Scores come from a fixed (U, N) matrix; the user is recovered from the last history item.

    Each test user's history ends with a distinct item (``user_last``), so ``score`` can look the
    user up without any side channel; it also records the batches it saw.
    """

    def __init__(self, matrix: np.ndarray, last_items: np.ndarray):
        self.matrix = torch.as_tensor(matrix, dtype=torch.float32)
        self.n_items = self.matrix.shape[1]
        self.row_of_last = {int(item): row for row, item in enumerate(last_items)}
        self.seen_shapes: list[tuple[int, int]] = []

    def score(self, item_seq: torch.Tensor) -> torch.Tensor:
        self.seen_shapes.append(tuple(item_seq.shape))
        rows = [self.row_of_last[int(x) - 1] for x in item_seq[:, -1]]  # ids are +1-shifted
        return self.matrix[rows]


class LinearScorer(torch.nn.Module):
    """An nn.Module scorer: mean of item embeddings of the history dotted with all items."""

    def __init__(self, n_items: int, dim: int = 8, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.n_items = n_items
        self.emb = torch.nn.Embedding(n_items + 1, dim, padding_idx=0)
        self.dropout = torch.nn.Dropout(0.5)  # must be off during evaluation

    def score(self, item_seq: torch.Tensor) -> torch.Tensor:
        h = self.dropout(self.emb(item_seq)).sum(1)  # (B, D)
        return h @ self.emb.weight[1:].T  # (B, N)


def _protocol(**kw) -> Protocol:
    return Protocol(dataset="synthetic", split="test", **{"ks": (1, 2, 5), "max_len": 4, **kw})


def _toy():
    # 3 users, 6 items. Histories end with distinct items 0, 1, 2.
    histories = [np.array([3, 0]), np.array([4, 5, 1]), np.array([2])]
    targets = np.array([3, 5, 4])
    matrix = np.array([
        [0.0, 0.1, 0.2, 0.9, 0.3, 0.95],   # target 3 (0.9): 0.95 higher -> rank 2
        [0.5, 0.4, 0.3, 0.2, 0.1, 0.6],    # target 5 (0.6) highest -> rank 1
        [0.6, 0.5, 0.4, 0.3, 0.2, 0.1],    # target 4 (0.2): 4 items higher -> rank 5
    ])
    eval_set = EvalSet(users=["u0", "u1", "u2"], histories=histories, targets=targets)
    return eval_set, FixedScorer(matrix, np.array([0, 1, 2]))


def test_ranks_and_metrics_unmasked():
    eval_set, model = _toy()
    res = evaluate(model, eval_set, _protocol(), device="cpu")
    assert res.per_user["rank"].tolist() == [2, 1, 5]
    assert res.per_user["user"].tolist() == ["u0", "u1", "u2"]
    assert res.metrics["recall@1"] == pytest.approx(1 / 3)
    assert res.metrics["hr@2"] == pytest.approx(2 / 3)
    assert res.metrics["ndcg@5"] == pytest.approx((1 / math.log2(3) + 1 + 1 / math.log2(6)) / 3)
    assert res.metrics["mrr@5"] == pytest.approx((0.5 + 1 + 0.2) / 3)
    assert set(res.metrics) == {f"{m}@{k}" for m in ("recall", "ndcg", "mrr", "hr") for k in (1, 2, 5)}
    assert res.per_user["target_in_history"].tolist() == [True, True, False]
    assert res.per_user["ties"].tolist() == [0, 0, 0]


def test_history_masking_keeps_repeated_target():
    eval_set, model = _toy()
    res = evaluate(model, eval_set, _protocol(mask_history=True), device="cpu")
    # u0: history {3, 0}; 3 is also the target and must keep its score; 5 (0.95) still ahead -> 2.
    # u1: history {4, 5, 1}; target 5 stays, others can only drop -> 1.
    # u2: history {2}; items ahead of target 4 were 0, 1, 2, 3 -> 2 masked -> rank 4.
    assert res.per_user["rank"].tolist() == [2, 1, 4]
    assert "history masked" in res.table()


def test_masking_uses_full_history_not_only_max_len():
    # One user whose history (6 items) is longer than max_len (2): all of it is masked.
    hist = [np.array([1, 2, 3, 4, 5, 0])]
    matrix = np.array([[0.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.1, 0.4]])  # target 7 (0.4)
    model = FixedScorer(matrix, np.array([0]))
    es = EvalSet(users=["u"], histories=hist, targets=np.array([7]))
    assert evaluate(model, es, _protocol(max_len=2), device="cpu").per_user["rank"].tolist() == [6]
    masked = evaluate(model, es, _protocol(max_len=2, mask_history=True), device="cpu")
    assert masked.per_user["rank"].tolist() == [1]
    assert model.seen_shapes[-1] == (1, 2)


def test_batching_invariance_and_no_user_loop():
    rng = np.random.default_rng(0)
    n_users, n_items = 30, 40
    last = rng.permutation(n_items)[:n_users]  # distinct last items identify the users
    histories = [np.append(rng.integers(0, n_items, size=rng.integers(0, 6)), last[u]) for u in range(n_users)]
    es = EvalSet(users=[f"u{u}" for u in range(n_users)], histories=histories,
                 targets=rng.integers(0, n_items, size=n_users))
    model = FixedScorer(rng.standard_normal((n_users, n_items)), last)
    for mask in (False, True):
        p = _protocol(mask_history=mask)
        one = evaluate(model, es, p, batch_size=1, device="cpu")
        big = evaluate(model, es, p, batch_size=1000, device="cpu")
        odd = evaluate(model, es, p, batch_size=7, device="cpu")
        assert one.metrics == big.metrics == odd.metrics
        pd.testing.assert_frame_equal(one.per_user, big.per_user)
    assert (7, 4) in model.seen_shapes and (n_users, 4) in model.seen_shapes


def test_module_eval_mode_restored_and_device():
    n_items = 12
    model = LinearScorer(n_items)
    rng = np.random.default_rng(1)
    es = EvalSet(users=[f"u{i}" for i in range(20)],
                 histories=[rng.integers(0, n_items, size=3) for _ in range(20)],
                 targets=rng.integers(0, n_items, size=20))
    model.train()
    a = evaluate(model, es, _protocol(), batch_size=3)  # device=None: the module's own (CPU)
    b = evaluate(model, es, _protocol(), batch_size=20, device=torch.device("cpu"))
    assert model.training, "evaluate must restore the training flag"
    assert a.metrics == b.metrics  # dropout was off: deterministic
    assert next(model.parameters()).device.type == "cpu"


def test_bad_inputs():
    eval_set, model = _toy()
    with pytest.raises(ValueError, match="no users"):
        evaluate(model, EvalSet(users=[], histories=[], targets=np.zeros(0, dtype=np.int64)), _protocol())
    with pytest.raises(ValueError, match="batch_size"):
        evaluate(model, eval_set, _protocol(), batch_size=0)

    class WrongShape(FixedScorer):
        def score(self, item_seq):
            return super().score(item_seq)[:, :-1]

    bad = WrongShape(model.matrix.numpy(), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="shape"):
        evaluate(bad, eval_set, _protocol(), device="cpu")


def test_ties_are_reported_and_warned():
    es = EvalSet(users=["a", "b"], histories=[np.array([0]), np.array([1])], targets=np.array([2, 3]))
    model = FixedScorer(np.zeros((2, 5)), np.array([0, 1]))  # constant scorer
    with pytest.warns(UserWarning, match="tied"):
        res = evaluate(model, es, _protocol(), device="cpu")
    assert res.per_user["ties"].tolist() == [4, 4]
    assert res.metrics["recall@5"] == 1.0 and res.metrics["recall@1"] == 0.0  # pessimistic: rank 5 of 5
    assert res.to_dict()["users_with_ties"] == 2
    with pytest.warns(UserWarning, match="optimistic"):
        flattered = evaluate(model, es, _protocol().with_(ties="optimistic"), device="cpu")
    assert flattered.metrics["recall@1"] == 1.0  # why the optimistic rule is not the default
    with pytest.warns(UserWarning, match="tied"):
        avg = evaluate(model, es, _protocol().with_(ties="average"), device="cpu")
    assert avg.per_user["rank"].tolist() == [3.0, 3.0]


def test_table_and_to_dict():
    eval_set, model = _toy()
    res = evaluate(model, eval_set, _protocol(), device="cpu")
    text = str(res)
    assert text.splitlines()[0] == res.protocol.describe()
    assert "users: 3" in text and "ndcg" in text and "@5" in text
    d = json.loads(json.dumps(res.to_dict()))
    assert d["protocol"]["dataset"] == "synthetic" and d["n_users"] == 3
    assert d["metrics"]["mrr@5"] == pytest.approx(res.metrics["mrr@5"])


def _result(values: np.ndarray, users=None, protocol=None) -> EvalResult:
    users = users if users is not None else [f"u{i}" for i in range(len(values))]
    df = pd.DataFrame({"user": users, "rank": 1, "ties": 0, "target_in_history": False, "ndcg@10": values})
    return EvalResult(metrics={"ndcg@10": float(values.mean())}, per_user=df, protocol=protocol or _protocol())


@pytest.mark.parametrize("method", ["ttest", "wilcoxon", "permutation"])
def test_paired_test_detects_difference(method):
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 1, 300)
    a = _result(base + 0.05 + rng.normal(0, 0.01, 300))
    b = _result(base)
    out = paired_test(a, b, "ndcg@10", method=method, n_resamples=2000)
    assert out["p_value"] < 1e-3 and out["mean_diff"] == pytest.approx(0.05, abs=0.01)
    assert out["n_users"] == 300 and out["method"] == method
    # No difference in distribution -> large p-value.
    c = _result(base + rng.normal(0, 0.01, 300))
    assert paired_test(c, b, method=method, n_resamples=2000)["p_value"] > 0.01
    # Identical values -> p = 1.
    assert paired_test(b, b, method=method)["p_value"] == 1.0


def test_paired_test_aligns_users_by_key_and_checks_protocol():
    v = np.array([0.1, 0.2, 0.3, 0.4])
    a = _result(v, users=["w", "x", "y", "z"])
    b = _result(v[::-1].copy(), users=["z", "y", "x", "w"])  # same per-user values, other order
    assert paired_test(a, b, method="permutation")["p_value"] == 1.0
    partial = _result(np.array([0.3, 0.1]), users=["y", "w"])
    assert paired_test(a, partial)["n_users"] == 2
    with pytest.raises(ValueError, match="different protocols"):
        paired_test(a, _result(v, protocol=_protocol(mask_history=True)))
    with pytest.raises(ValueError, match="no users"):
        paired_test(a, _result(v, users=["p", "q", "r", "s"]))
    with pytest.raises(KeyError, match="recall@3"):
        paired_test(a, b, "recall@3")


def test_confidence_interval_seeded_and_covers_mean():
    rng = np.random.default_rng(3)
    res = _result(rng.uniform(0, 1, 500))
    ci = confidence_interval(res, "ndcg@10", level=0.95, n_boot=500, seed=1)
    assert ci["low"] < ci["mean"] < ci["high"]
    assert ci == confidence_interval(res, "ndcg@10", level=0.95, n_boot=500, seed=1)
    # Width close to the normal approximation 2 * 1.96 * sd / sqrt(n).
    expected = 2 * 1.96 * res.per_user["ndcg@10"].std() / math.sqrt(500)
    assert ci["high"] - ci["low"] == pytest.approx(expected, rel=0.2)
    narrow = confidence_interval(res, "ndcg@10", level=0.5, n_boot=500, seed=1)
    assert narrow["high"] - narrow["low"] < ci["high"] - ci["low"]
    with pytest.raises(ValueError, match="level"):
        confidence_interval(res, "ndcg@10", level=1.5)


@pytest.mark.gpu
def test_cuda_matches_cpu():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    n_items = 300
    rng = np.random.default_rng(2)
    es = EvalSet(users=[f"u{i}" for i in range(100)],
                 histories=[rng.integers(0, n_items, size=rng.integers(1, 9)) for _ in range(100)],
                 targets=rng.integers(0, n_items, size=100))
    model = LinearScorer(n_items)
    for mask in (False, True):
        cpu = evaluate(model, es, _protocol(mask_history=mask), device="cpu", batch_size=17)
        gpu = evaluate(model, es, _protocol(mask_history=mask), device="cuda", batch_size=64)
        assert next(model.parameters()).device.type == "cuda"
        assert (cpu.per_user["rank"] - gpu.per_user["rank"]).abs().max() <= 1  # float reduction order
        model.cpu()


# ----------------------------------------------------------------------------- sampled ranking


def test_sample_negatives_are_distinct_seeded_and_never_the_target():
    from xdtutor.evaluate import sample_negatives

    targets = np.array([0, 5, 9, 9, 3])
    neg = sample_negatives(targets, 10, 9, seed=1)  # every other item, in some order
    assert neg.shape == (5, 9) and neg.dtype == np.int64
    for row, t in zip(neg, targets):
        assert sorted(row.tolist()) == [i for i in range(10) if i != t]
    small = sample_negatives(targets, 10, 4, seed=1)
    assert all(len(set(r)) == 4 and t not in r for r, t in zip(small.tolist(), targets))
    np.testing.assert_array_equal(small, sample_negatives(targets, 10, 4, seed=1))
    assert not np.array_equal(small, sample_negatives(targets, 10, 4, seed=2))
    # uniform over the non-target items: each appears ~4/9 of the time over many users
    many = sample_negatives(np.full(9000, 2), 10, 4, seed=0)
    freq = np.bincount(many.ravel(), minlength=10) / 9000
    assert freq[2] == 0 and np.allclose(np.delete(freq, 2), 4 / 9, atol=0.02)
    with pytest.raises(ValueError, match=r"protocol.negatives=10 must be in \[1, 9\]"):
        sample_negatives(targets, 10, 10, seed=0)


def test_protocol_names_its_ranking_and_checks_negatives():
    from xdtutor.config import ConfigError

    p = _protocol(ranking="sampled", negatives=999, negatives_seed=42)
    assert "sampled ranking (999 negatives per user, seed 42)" in p.describe()
    assert "full ranking" in _protocol().describe()
    with pytest.raises(ConfigError, match="sampled ranking needs negatives >= 1"):
        _protocol(ranking="sampled")
    with pytest.raises(ConfigError, match="only used with ranking='sampled'"):
        _protocol(negatives=5)
    with pytest.raises(ConfigError, match="ranking must be 'full' or 'sampled'"):
        _protocol(ranking="popular")


def test_sampled_ranking_matches_an_independent_count():
    """Rank = 1 + negatives scoring above the target (+ ties, pessimistic), user by user."""
    from xdtutor.evaluate import sample_negatives

    rng = np.random.default_rng(3)
    U, N = 40, 30
    matrix = rng.integers(0, 6, size=(U, N)).astype(float)  # many ties on purpose
    histories = [np.array([rng.integers(N), u % N]) for u in range(U)]
    last = np.arange(U) % N
    targets = rng.integers(0, N, size=U)
    scorer = FixedScorer(matrix, last)
    scorer.row_of_last = {}
    rows_by_user = {u: u for u in range(U)}

    def score(item_seq):  # users are in order; recover them from the call count
        start = score.done
        score.done += item_seq.shape[0]
        return torch.as_tensor(matrix[[rows_by_user[u] for u in range(start, score.done)]], dtype=torch.float32)

    score.done = 0
    scorer.score = score
    protocol = _protocol(ranking="sampled", negatives=7, negatives_seed=5, ks=(1, 3))
    result = evaluate(scorer, EvalSet([f"u{u}" for u in range(U)], histories, targets), protocol, batch_size=16)
    neg = sample_negatives(targets, N, 7, seed=5)
    expected = [1 + int((matrix[u, neg[u]] >= matrix[u, targets[u]]).sum()) for u in range(U)]
    np.testing.assert_array_equal(result.per_user["rank"].to_numpy(), expected)


def test_sampled_ranking_with_every_other_item_is_full_ranking():
    eval_set, model = _toy()
    full = evaluate(model, eval_set, _protocol())
    for mask in (False, True):
        sampled = evaluate(model, eval_set, _protocol(ranking="sampled", negatives=model.n_items - 1,
                                                      mask_history=mask))
        masked = evaluate(model, eval_set, _protocol(mask_history=mask))
        np.testing.assert_array_equal(masked.per_user["rank"], sampled.per_user["rank"])
    assert full.per_user["rank"].tolist() == [2, 1, 5]


def test_batches_are_cut_to_the_score_budget():
    eval_set, model = _toy()
    small = evaluate(model, eval_set, _protocol(), batch_size=1024, max_scores=2 * model.n_items)
    assert [s[0] for s in model.seen_shapes] == [2, 1]  # 2 users × N items per batch at most
    assert small.metrics == evaluate(_toy()[1], eval_set, _protocol()).metrics


def test_text_model_items_are_computed_once_per_evaluation():
    from xdtutor.models import TextSeqRec

    torch.manual_seed(0)
    model = TextSeqRec(torch.randn(12, 6), hidden=8, n_layers=1, n_heads=2, max_len=4).eval()
    calls = []
    model.adaptor.register_forward_hook(lambda *a: calls.append(1))
    histories = [np.array([i % 12, (i + 1) % 12]) for i in range(10)]
    result = evaluate(model, EvalSet([str(i) for i in range(10)], histories, np.arange(10) % 12), _protocol(),
                      batch_size=3)
    assert len(calls) == 1  # 4 batches, one adaptor pass
    with torch.no_grad():
        reference = torch.cat([model.score(pad_left(histories[s:s + 3], 4)) for s in range(0, 10, 3)])
    ranks = (reference >= reference[torch.arange(10), torch.as_tensor(np.arange(10) % 12)][:, None]).sum(1)
    np.testing.assert_array_equal(result.per_user["rank"].to_numpy(), ranks.numpy())


def test_validation_during_training_warns_about_ties_once_per_training(monkeypatch):
    """``fit`` validates after every epoch; a warning each time was two log lines per epoch of every
    training. The first validation says it (the source pretraining reports no other evaluation), the
    others are silent, and ties are still ranked by the protocol."""
    import types
    import warnings

    from test_train import config, model, tiny_split
    from xdtutor import train

    zero = LinearScorer(n_items=5)
    torch.nn.init.zeros_(zero.emb.weight)  # every item scores 0: every target tied with 4 items
    es = EvalSet(users=["a", "b"], histories=[np.array([0]), np.array([1])], targets=np.array([2, 3]))
    data = types.SimpleNamespace(valid=es, protocol=_protocol(ks=(10,)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        metrics = train.validate(zero, data, train.TrainConfig(), torch.device("cpu"), warn_ties=False)
    assert metrics["ndcg@10"] == pytest.approx(1 / np.log2(6))  # still ranked pessimistically: rank 5
    with pytest.warns(UserWarning, match="tied"):
        train.validate(zero, data, train.TrainConfig(), torch.device("cpu"))

    def tied_evaluate(*args, **kwargs):  # every validation of a real training, as if its scores tied
        warnings.warn("50.0% of users have items tied with their target's score", UserWarning)
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(evaluate_module, "evaluate", tied_evaluate)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = train.fit(model(), tiny_split(), config(epochs=3, patience=10))
    assert len(history.epochs) == 3
    assert sum("tied with their target" in str(w.message) for w in caught) == 1
