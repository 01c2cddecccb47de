"""Expected sampled metrics from full ranks: hand-computed cases, Monte Carlo with real sampled evaluation."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from xdtutor.data.types import EvalSet
from xdtutor.evaluate import evaluate
from xdtutor.metrics import per_example
from xdtutor.protocol import Protocol
from xdtutor.sampled_metrics import compare_protocols, expected_sampled_metrics, ranking_agreement


def test_hand_computed_cases():
    # N = 5 items, m = 2 negatives drawn from the 4 non-targets. Full rank 3: 2 of the 4 are above.
    # P(X=0) = C(2,0)C(2,2)/C(4,2) = 1/6, P(X=1) = 4/6, P(X=2) = 1/6.
    e = expected_sampled_metrics(np.array([3]), 5, 2, ks=(1, 2, 3))
    assert e["hr@1"][0] == pytest.approx(1 / 6)
    assert e["hr@2"][0] == pytest.approx(5 / 6)
    assert e["hr@3"][0] == pytest.approx(1.0)
    assert e["ndcg@2"][0] == pytest.approx(1 / 6 + (4 / 6) / math.log2(3))
    assert e["mrr@3"][0] == pytest.approx(1 / 6 + (4 / 6) / 2 + (1 / 6) / 3)
    # rank 1 is rank 1 under any sampling; the last item (rank N) with all N-1 negatives stays last
    assert expected_sampled_metrics(np.array([1]), 5, 2)["ndcg@10"][0] == 1.0
    assert expected_sampled_metrics(np.array([5]), 5, 4, ks=(4, 5))["hr@4"][0] == 0.0


def test_all_negatives_is_full_ranking():
    ranks = np.array([1, 2, 7, 10, 11, 40, 100])
    e = expected_sampled_metrics(ranks, 100, 99, ks=(5, 10))
    full = per_example(ranks, (5, 10))
    for key in ("ndcg@10", "hr@5", "mrr@10"):
        np.testing.assert_allclose(e[key], full[key], atol=1e-12)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"ranks must be integers in \[1, 5\]"):
        expected_sampled_metrics(np.array([6]), 5, 2)
    with pytest.raises(ValueError, match=r"negatives=5 must be in \[1, 4\]"):
        expected_sampled_metrics(np.array([2]), 5, 5)


class _Scores:
    """A scorer with fixed per-user scores (users in order, any batch size)."""

    def __init__(self, matrix: np.ndarray):
        self.matrix = torch.as_tensor(matrix, dtype=torch.float32)
        self.n_items, self.done = matrix.shape[1], 0

    def score(self, item_seq):
        rows = self.matrix[self.done:self.done + item_seq.shape[0]]
        self.done += item_seq.shape[0]
        return rows


def test_expectation_matches_the_average_of_real_sampled_evaluations():
    """Independent route: xdtutor.evaluate with sampled negatives, averaged over 300 draws."""
    rng = np.random.default_rng(0)
    U, N, m = 30, 60, 9
    matrix = rng.normal(size=(U, N))
    targets = rng.integers(0, N, size=U)
    eval_set = EvalSet([f"u{i}" for i in range(U)], [np.array([1])] * U, targets)
    base = Protocol(dataset="synthetic", split="test", ks=(3, 10), max_len=2)
    full_ranks = evaluate(_Scores(matrix), eval_set, base).per_user["rank"].to_numpy()
    expected = expected_sampled_metrics(full_ranks, N, m, ks=(3, 10))
    draws = [evaluate(_Scores(matrix), eval_set, base.with_(ranking="sampled", negatives=m, negatives_seed=s))
             .per_user[["ndcg@10", "hr@3"]].to_numpy() for s in range(300)]
    mean = np.mean(draws, axis=0)                                            # (U, 2)
    np.testing.assert_allclose(mean[:, 0], expected["ndcg@10"], atol=0.08)  # per user, 300 draws
    assert abs(mean[:, 0].mean() - expected["ndcg@10"].mean()) < 0.01
    assert abs(mean[:, 1].mean() - expected["hr@3"].mean()) < 0.015


def test_compare_protocols_orders_methods_and_shows_a_reversal():
    """A popular-item scorer (ranks 2-30 for everyone) against a sharp one (rank 1 or very deep):
    full NDCG@10 prefers the sharp one, 99 sampled negatives out of 10,000 prefer the popular one."""
    rng = np.random.default_rng(1)
    users = 2000
    sharp = np.where(rng.random(users) < 0.2, 1, rng.integers(3000, 10_000, size=users))
    popular = rng.integers(2, 31, size=users)
    per_user = pd.concat([pd.DataFrame({"method": name, "seed": seed, "user": range(users), "rank": ranks})
                          for name, ranks in (("sharp", sharp), ("popular", popular)) for seed in (0, 1)])
    table = compare_protocols(per_user, 10_000, negatives=(99,))
    assert list(table.index) == ["sharp", "popular"]
    assert table.loc["sharp", "rank_full"] == 1 and table.loc["sharp", "rank_sampled_99"] == 2
    assert table.loc["sharp", "full"] == pytest.approx(0.2, abs=0.03)
    assert table.loc["popular", "sampled_99"] > table.loc["sharp", "sampled_99"]
    assert table.loc["sharp", "full_std"] == 0.0  # the same ranks for both seeds
    assert ranking_agreement(table, 99) == pytest.approx(-1.0)


ROOT = Path(__file__).resolve().parents[1]


def _script():
    """scripts/sampled_metrics.py as a module."""
    spec = importlib.util.spec_from_file_location("sampled_metrics_script", ROOT / "scripts" / "sampled_metrics.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_the_script_writes_the_comparison_of_run_folders(tmp_path):
    """scripts/sampled_metrics.py on two run folders (the real-model draw is skipped here)."""
    script = _script()
    rng = np.random.default_rng(0)
    folders = []
    for seed in (0, 1):
        folder = tmp_path / f"run{seed}"
        folder.mkdir()
        frames = [pd.DataFrame({"method": m, "seed": seed, "user": range(300), "rank": rng.integers(lo, hi, 300)})
                  for m, lo, hi in (("good", 1, 40), ("poor", 20, 400))]
        pd.concat(frames).to_csv(folder / "per_user.csv", index=False)
        (folder / "results.json").write_text(json.dumps({
            "dataset_stats": {"target": "food", "domains": {"food": {"items": 500}}},
            "protocol_line": "protocol: synthetic"}))
        folders.append(str(folder))
    out = tmp_path / "results" / "sampled_metrics"
    assert script.main([*folders, "--negatives", "49", "--realised-seed", "-1", "--out", str(out)]) == 0
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["seeds"] == [0, 1] and data["users"] == 300 and data["n_items"] == 500
    rows = {r["method"]: r for r in data["tables"]["ndcg@10"]}
    assert rows["good"]["full"] > rows["poor"]["full"] and rows["good"]["sampled_49"] > rows["good"]["full"]
    assert "Kendall" in out.with_suffix(".md").read_text()


def test_the_committed_table_is_what_the_script_writes_from_its_json():
    """results/sampled_metrics.md is rendered from results/sampled_metrics.json, never edited by hand."""
    d = json.loads((ROOT / "results" / "sampled_metrics.json").read_text(encoding="utf-8"))
    tables = {m: pd.DataFrame(rows).set_index("method") for m, rows in d["tables"].items()}
    expected = _script().markdown(tables, d["kendall_tau"], d["realised"], d["protocol_line"])
    assert (ROOT / "results" / "sampled_metrics.md").read_text(encoding="utf-8") == expected
