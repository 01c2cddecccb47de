"""Source data in the target's training: mixed histories, joint training rows, and the strategies on them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from test_experiment import MICRO
from test_pipeline import micro_emb
from test_transfer import synthetic_dataset
from xdtutor import pipeline
from xdtutor.config import ConfigError
from xdtutor.data.types import CrossDomainDataset, Domain, EvalSet, SplitDomain
from xdtutor.data.views import interleave, joint_training, mixed_histories, ranked_items
from xdtutor.evaluate import evaluate
from xdtutor.experiment import build_config
from xdtutor.models import SASRec, TextSeqRec
from xdtutor.protocol import Protocol

pytestmark = pytest.mark.filterwarnings("ignore:.*tied with their target")


def _items(n: int, prefix: str) -> pd.DataFrame:
    return pd.DataFrame({"item": range(n), "raw_id": [f"{prefix}{i}" for i in range(n)],
                         "text": [f"{prefix} item {i}" for i in range(n)]})


def hand_dataset() -> CrossDomainDataset:
    """One user ``a`` with target items 0 1 2 3 4 (valid 3, test 4) and source items 0, 1, 2, 3 that
    came before t_0, between t_1 and t_2, between t_3 and t_4, and after t_4; a user ``b`` without
    source items; a train-only user ``c`` (2 target items) with one source item after both."""
    seqs = {"a": np.array([0, 1, 2, 3, 4]), "b": np.array([4, 3, 2]), "c": np.array([1, 0])}
    target = Domain("tgt", _items(5, "t"), seqs)
    protocol = Protocol(dataset="hand", split="leave-one-out", ks=(1, 5), max_len=10)
    split = SplitDomain(target, {"a": seqs["a"][:3], "b": seqs["b"][:1], "c": seqs["c"]},
                        EvalSet(["a", "b"], [seqs["a"][:3], seqs["b"][:1]], np.array([3, 3])),
                        EvalSet(["a", "b"], [seqs["a"][:4], seqs["b"][:2]], np.array([4, 2])), protocol)
    source = Domain("src", _items(4, "s"), {"a": np.array([0, 1, 2, 3]), "c": np.array([2])})
    positions = {"a": (np.array([0, 1, 2, 3]), np.array([0, 2, 4, 5])), "c": (np.array([2]), np.array([2]))}
    return CrossDomainDataset("hand", (source,), split, frozenset({"a", "c"}), positions)


def test_interleave_puts_each_source_item_after_the_target_items_before_it():
    got = interleave(np.array([10, 11, 12]), np.array([100, 101, 102, 103]), np.array([0, 1, 1, 3]))
    assert got.tolist() == [100, 10, 101, 102, 11, 12, 103]


def test_mixed_histories_hold_only_earlier_source_items():
    view = mixed_histories(hand_dataset())
    s = view.split
    n = 5  # source item k has joint id 5 + k
    assert view.n_target == ranked_items(s) == 5 and view.offsets == {"src": 5} and s.n_items == 9
    # a: training = t0 t1 t2 with the source items before the valid item t3 (s0 before t0, s1 before t2,
    # none of s2 — it came after t3)
    assert s.train["a"].tolist() == [n + 0, 0, 1, n + 1, 2]
    assert s.valid.histories[0].tolist() == s.train["a"].tolist() and s.valid.targets.tolist() == [3, 3]
    assert s.test.histories[0].tolist() == [n + 0, 0, 1, n + 1, 2, 3, n + 2]  # s2 came before the test item t4
    assert s.test.targets.tolist() == [4, 2]
    assert s.train["b"].tolist() == [4] and s.test.histories[1].tolist() == [4, 3]  # no source items
    assert s.train["c"].tolist() == [1, 0, n + 2]  # a train-only user keeps everything
    assert "histories interleave" in s.protocol.split
    with pytest.raises(ValueError, match="no overlapping users with known source positions"):
        mixed_histories(CrossDomainDataset("x", (), hand_dataset().target, frozenset()))


def test_joint_training_adds_the_source_rows_and_keeps_the_evaluation():
    data = hand_dataset()
    view = joint_training(data, data.sources)
    s = view.split
    assert s.train["src:a"].tolist() == [5, 6, 7, 8] and s.train["src:c"].tolist() == [7]
    assert s.train["a"].tolist() == [0, 1, 2]
    assert s.valid is data.target.valid and s.test is data.target.test
    table = view.table(np.zeros((5, 3)), [np.ones((4, 3))])
    assert table.shape == (9, 3) and table[5:].sum() == 12
    with pytest.raises(ValueError, match="rows"):
        view.table(np.zeros((5, 3)), [np.ones((3, 3))])


@pytest.mark.parametrize("kind", ["sasrec", "text"])
def test_a_joint_model_ranks_target_items_and_learns_only_them_when_asked(kind):
    torch.manual_seed(0)
    model = (SASRec(9, hidden=8, n_layers=1, n_heads=2, max_len=6) if kind == "sasrec"
             else TextSeqRec(torch.randn(9, 4), hidden=8, n_layers=1, n_heads=2, max_len=6))
    model.eval()                                               # no dropout: losses are comparable
    seq = torch.tensor([[0, 6, 1, 2, 7, 3]])                   # +1-shifted; 6 and 7 are source items
    targets = torch.tensor([[6, 1, 2, 7, 3, 4]])
    full = model.loss(seq, targets)
    model.score_only(5, train_on="scored")
    assert model.score(seq).shape == (1, 5)
    scored = model.loss(seq, targets)
    # by hand: the positions whose next item is a target item, a softmax over the 5 target items
    items = model.item_representations()                       # (9, H)
    states = model(seq)[0]                                     # (6, H)
    if kind == "text":
        states, items = F.normalize(states, dim=-1) / model.temperature, F.normalize(items, dim=-1)
    keep = targets[0] <= 5
    by_hand = F.cross_entropy(states[keep] @ items[:5].T, targets[0, keep] - 1)
    assert torch.allclose(scored, by_hand, atol=1e-6) and not torch.allclose(scored, full)
    assert model.loss(seq, torch.tensor([[7, 0, 0, 0, 0, 0]])).item() == 0.0  # only context next items
    with pytest.raises(ValueError, match="train_on"):
        model.score_only(5, train_on="source")


def test_domain_catalogue_keeps_every_ranked_item_and_the_batch_s_others():
    from xdtutor.models.sasrec import domain_catalogue

    x = torch.tensor([[0, 9, 2], [0, 0, 7]])            # +1-shifted; n_scored = 3, so 7 and 9 are others
    y = torch.tensor([[9, 2, 3], [0, 7, 9]])
    ids, lx, ly = domain_catalogue(x, y, 3)
    assert ids.tolist() == [0, 1, 2, 6, 8]              # the 3 ranked items, then items 7 and 9 (0-based 6, 8)
    assert lx.tolist() == [[0, 5, 2], [0, 0, 4]] and ly.tolist() == [[5, 2, 3], [0, 4, 5]]


@pytest.mark.parametrize("kind", ["sasrec", "text"])
def test_per_domain_negatives_score_ranked_items_against_all_and_others_against_the_batch(kind):
    """Joint training's cheaper objective, by hand: a target (ranked) next item is a softmax over the 5
    ranked items, a source next item a softmax over the source items the batch holds (inputs too); one mean."""
    torch.manual_seed(0)
    model = (SASRec(12, hidden=8, n_layers=1, n_heads=2, max_len=6) if kind == "sasrec"
             else TextSeqRec(torch.randn(12, 4), hidden=8, n_layers=1, n_heads=2, max_len=6))
    model.score_only(5, train_on="all").eval()
    # (+1-shifted) a Food row 1 2 3 4 5 2 and a Kitchen row 7 6 8 6 10, as inputs and next items:
    # 7 is only ever an input, yet a candidate (the text model also encodes it from the batch's table)
    seq = torch.tensor([[0, 1, 2, 3, 4, 5], [0, 0, 7, 6, 8, 6]])
    targets = torch.tensor([[0, 2, 3, 4, 5, 2], [0, 0, 6, 8, 6, 10]])
    got = model.loss(seq, targets, negatives="per_domain")
    items = model.item_representations()                              # (12, H)
    states = model(seq)                                               # (2, L, H)
    if kind == "text":
        states, items = F.normalize(states, dim=-1) / model.temperature, F.normalize(items, dim=-1)
    ranked = F.cross_entropy(states[0, 1:] @ items[:5].T, targets[0, 1:] - 1, reduction="sum")   # 5 targets
    others = items[[5, 6, 7, 9]]                                       # items 6, 7, 8, 10 (0-based 5, 6, 7, 9)
    local = torch.tensor([0, 2, 0, 3])                                 # 6, 8, 6, 10 among (6, 7, 8, 10)
    source = F.cross_entropy(states[1, 2:] @ others.T, local, reduction="sum")                   # 4 targets
    torch.testing.assert_close(got, (ranked + source) / 9)
    assert not torch.allclose(got, model.loss(seq, targets))          # not the softmax over all 12 items
    model.train()
    model.loss(seq, targets, negatives="per_domain").backward()        # it trains
    model.score_only(5, train_on="scored")                             # source next items as context only:
    with pytest.raises(ValueError, match="per_domain.*train_on='scored'"):  # per_domain would learn them
        model.loss(seq, targets, negatives="per_domain")


def test_evaluation_ranks_the_scored_items_and_masks_only_those():
    torch.manual_seed(0)
    model = SASRec(9, hidden=8, n_layers=1, n_heads=2, max_len=6).score_only(5)
    eval_set = EvalSet(["a", "b"], [np.array([5, 0, 7]), np.array([1, 8])], np.array([2, 3]))
    for mask in (False, True):
        res = evaluate(model, eval_set, Protocol(dataset="x", split="y", ks=(1, 5), max_len=6, mask_history=mask))
        assert res.per_user["rank"].max() <= 5  # five candidates, whatever the history holds


STRATEGIES = ["transductive", "mixed_history", "text_mixed", "sasrec_mixed", "joint"]


def test_the_new_strategies_run_end_to_end_and_pair_users():
    cfg = build_config({**MICRO, "strategies": STRATEGIES, "baselines": ["text", "sasrec"],
                        "cold_users": {"mappings": []}, "cold_start": {"fractions": []}})
    res = pipeline.run_experiment(cfg, dataset=synthetic_dataset(), text_emb=micro_emb(), log=None)
    rows = {r["method"]: r for r in res.rows}
    assert set(rows) == {"text", "sasrec", *STRATEGIES} and all(rows[s]["kind"] == "transfer" for s in STRATEGIES)
    n_src, n_tgt = 30, 20
    assert rows["sasrec_mixed"]["total_params"] > rows["text"]["total_params"]  # IDs for both catalogues
    assert (n_src + n_tgt + 1) * 16 <= rows["sasrec_mixed"]["total_params"]
    assert rows["transductive"]["total_params"] == rows["text"]["total_params"] + n_tgt * 16
    users = res.per_user.groupby("method")["user"].apply(list)
    assert all(users[m] == users["text"] for m in STRATEGIES)  # the same users in the same order
    pairs = {(c["method"], c["vs"]): c["about"] for c in res.comparisons}
    assert {("mixed_history", "sasrec_mixed"), ("text_mixed", "sasrec_mixed")} <= set(pairs)
    assert pairs[("sasrec_mixed", "sasrec")] == "main"  # the ID model with and without the source items
    assert ("text_mixed", "text") in pairs and len(pairs) == len(res.comparisons)  # each pair once
    # every transfer method against the text model and against the ID model, whichever is chosen as best
    assert {(s, ref) for s in STRATEGIES for ref in ("text", "sasrec")} <= set(pairs)


def test_joint_training_takes_per_domain_negatives_from_its_own_settings(monkeypatch):
    cfg = build_config({**MICRO, "strategies": ["joint", "full_finetune"], "baselines": [],
                        "cold_users": {"mappings": []}, "cold_start": {"fractions": []},
                        "per_method": {"joint": {"train.negatives": "per_domain"}}})
    seen, real = [], TextSeqRec.loss

    def spy(self, item_seq, targets, negatives="all", logits_chunk=0):
        seen.append((self.n_items, self.n_scored, negatives))
        return real(self, item_seq, targets, negatives=negatives, logits_chunk=logits_chunk)

    monkeypatch.setattr(TextSeqRec, "loss", spy)
    res = pipeline.run_experiment(cfg, dataset=synthetic_dataset(), text_emb=micro_emb(), log=None)
    assert {r["method"] for r in res.rows} == {"joint", "full_finetune"}
    n_src, n_tgt = 30, 20
    assert (n_src + n_tgt, n_tgt, "per_domain") in seen            # the joint model, on both catalogues
    assert {neg for n, _, neg in seen if n == n_tgt} == {"all"}     # fine-tuning keeps the shared setting


def test_cold_users_map_into_a_model_trained_on_the_target_split(monkeypatch):
    """The EMCDR base is retrained on the target split without the cold users: a mixed-history model,
    even with the best validation score, is not a candidate (its data is another view)."""
    cfg = build_config({**MICRO, "strategies": ["full_finetune", "mixed_history"], "baselines": [],
                        "cold_start": {"fractions": []}})
    real = pipeline.Results.add

    def mixed_wins(self, trained, seed, test, valid, overlap):  # make mixed_history the validation winner
        real(self, trained, seed, test, valid, overlap)
        self.rows[-1]["valid_ndcg@10"] = 1.0 if trained.name == "mixed_history" else 0.0

    monkeypatch.setattr(pipeline.Results, "add", mixed_wins)
    res = pipeline.run_experiment(cfg, dataset=synthetic_dataset(), text_emb=micro_emb(), log=None)
    assert {r["method"] for r in res.cold_users} - {"popularity"} == {"mapping[ridge]<-full_finetune",
                                                                       "mapping[mlp]<-full_finetune"}


def test_strategies_without_theta_do_not_pretrain(monkeypatch):
    cfg = build_config({**MICRO, "strategies": ["sasrec_mixed"], "baselines": [], "cold_users": {"mappings": []},
                        "cold_start": {"fractions": []}})
    monkeypatch.setattr(pipeline, "pretrain", lambda *a, **k: pytest.fail("pretrained without a θ_s strategy"))
    res = pipeline.run_experiment(cfg, dataset=synthetic_dataset(), text_emb=micro_emb(), log=None)
    assert [r["method"] for r in res.rows] == ["sasrec_mixed"] and not res.source_runs


def test_a_dataset_without_cross_domain_order_fails_before_training(monkeypatch):
    data = synthetic_dataset()
    no_order = CrossDomainDataset(data.name, data.sources, data.target, data.overlap, {})
    cfg = build_config({**MICRO, "strategies": ["mixed_history"], "baselines": ["text"],
                        "cold_users": {"mappings": []}, "cold_start": {"fractions": []}})
    monkeypatch.setattr(pipeline, "run_seed", lambda *a, **k: pytest.fail("trained before checking the data"))
    with pytest.raises(ConfigError, match="strategies: .*no overlapping users with known source positions"):
        pipeline.run_experiment(cfg, dataset=no_order, text_emb=micro_emb(), log=None)
    with pytest.raises(ConfigError, match="curve retrains on a fraction"):
        build_config({**MICRO, "cold_start": {"fractions": [0.5], "strategy": "mixed_history"}})
