"""Invariants of pretraining, knowledge extraction and every transfer strategy (synthetic, seconds)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from xdtutor.config import ConfigError, from_dict
from xdtutor.data import CrossDomainDataset, Domain, leave_one_out
from xdtutor.evaluate import evaluate
from xdtutor.extract_knowledge import Knowledge, extract_knowledge
from xdtutor.finetune_target import finetune_target
from xdtutor.models import ModelConfig, TextSeqRec
from xdtutor.pretrain_source import merge_sources, pretrain_source
from xdtutor.protocol import Protocol
from xdtutor.train import TrainConfig
from xdtutor.transfer import (TransferConfig, frozen_adaptor, frozen_adaptor_id, full_finetune, fusion, l2sp, lora,
                              lora_adaptor, transductive, zero_shot)
from xdtutor.transfer.base import build_target_model, load_theta
from xdtutor.utils import pad_left

D = 12  # text-embedding width of the synthetic catalogues
TINY = ModelConfig(hidden=16, n_layers=1, n_heads=2, max_len=8, dropout=0.0, adaptor="linear")
FAST = TrainConfig(epochs=2, batch_size=16, lr=5e-3, patience=2, max_len=8, device="cpu", progress=False,
                   eval_batch_size=64)


def _domain(name: str, n_items: int, users: list[str], rng: np.random.Generator, length=(4, 9)) -> Domain:
    items = pd.DataFrame({"item": np.arange(n_items), "raw_id": [f"{name}{i}" for i in range(n_items)],
                          "text": [f"{name} item {i}" for i in range(n_items)]})
    seqs = {}
    for u in users:  # a noisy walk i -> i+1 so there is something to learn
        n = int(rng.integers(*length))
        start = int(rng.integers(n_items))
        seqs[u] = np.asarray([(start + k + int(rng.random() < 0.2)) % n_items for k in range(n)], dtype=np.int64)
    return Domain(name, items, seqs)


def synthetic_dataset(seed: int = 0, n_src=30, n_tgt=20, after_test_source_item: int | None = None):
    """Source (30 items, 40 users) + split target (20 items, 30 users); 15 users overlap.

    Overlapping users' source items are interleaved with their target items; with
    ``after_test_source_item`` one extra source item is appended *after* each user's test item
    (used to check that it never leaks into test-stage representations).
    """
    rng = np.random.default_rng(seed)
    src_users = [f"u{i}" for i in range(40)]
    tgt_users = [f"u{i}" for i in range(25, 55)]
    source = _domain("src", n_src, src_users, rng)
    target = _domain("tgt", n_tgt, tgt_users, rng)
    overlap = sorted(set(src_users) & set(tgt_users))
    positions = {}
    for u in overlap:
        s = source.sequences[u]
        n_t = len(target.sequences[u])
        before = np.sort(rng.integers(0, n_t - 1, size=len(s)))  # all before the test item
        items = s
        if after_test_source_item is not None:
            items = np.append(s, after_test_source_item)
            before = np.append(before, n_t)  # after the last (test) target item
        positions[u] = (items.astype(np.int64), before.astype(np.int64))
    protocol = Protocol(dataset="synthetic", split="leave-one-out", ks=(5, 10), max_len=8)
    split = leave_one_out(target, protocol)
    return CrossDomainDataset("synthetic", (source,), split, frozenset(overlap), positions)


def text_tables(seed: int = 0, n_src=30, n_tgt=20):
    g = torch.Generator().manual_seed(seed + 100)
    return torch.randn(n_src, D, generator=g), torch.randn(n_tgt, D, generator=g)


@pytest.fixture(scope="module")
def world():
    torch.set_num_threads(1)
    data = synthetic_dataset()
    src_emb, tgt_emb = text_tables()
    model = pretrain_source(data.sources, [src_emb], TINY, FAST, encoder_config={"model": "random"},
                            encoder_id="random-test")
    knowledge = extract_knowledge(model, data, device="cpu")
    return data, knowledge, tgt_emb


def theta_of(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if not n.startswith("id_embedding")}


# --------------------------------------------------------------------------- pretraining / knowledge

def test_merge_sources_offsets_items_and_keeps_sequences_in_domain():
    rng = np.random.default_rng(0)
    a, b = _domain("a", 5, ["x", "y"], rng), _domain("b", 7, ["x"], rng)
    merged, offsets = merge_sources([a, b])
    assert offsets.tolist() == [0, 5]
    assert merged.n_items == 12 and set(merged.sequences) == {"a/x", "a/y", "b/x"}
    np.testing.assert_array_equal(merged.sequences["b/x"], b.sequences["x"] + 5)
    assert (merged.items["item"].to_numpy() == np.arange(12)).all()


def test_pretrain_two_sources_uses_one_catalogue():
    rng = np.random.default_rng(1)
    a, b = _domain("a", 6, [f"u{i}" for i in range(12)], rng), _domain("b", 9, [f"u{i}" for i in range(12)], rng)
    model = pretrain_source([a, b], [torch.randn(6, D), torch.randn(9, D)], TINY,
                            TrainConfig(epochs=1, batch_size=8, max_len=8, device="cpu", progress=False))
    assert model.n_items == 15 and model.pretrain_history.epochs == [1]
    with pytest.raises(ValueError, match="rows"):
        pretrain_source([a], [torch.randn(5, D)], TINY, FAST)


def test_knowledge_roundtrip_and_summary(world, tmp_path):
    _, knowledge, _ = world
    path = knowledge.save(tmp_path / "k")
    back = Knowledge.load(path)
    assert list(back.theta) == list(knowledge.theta)
    for k in knowledge.theta:
        torch.testing.assert_close(back.theta[k], knowledge.theta[k], rtol=0, atol=0)
    torch.testing.assert_close(back.user_reps["test"], knowledge.user_reps["test"])
    assert back.user_keys == knowledge.user_keys and back.encoder_id == "random-test"
    assert torch.equal(back.user_has_history["valid"], knowledge.user_has_history["valid"])
    assert "θ_s" in back.summary() and "overlap users=15" in repr(back)
    assert "id_embedding" not in " ".join(knowledge.theta)
    (tmp_path / "k" / "reps.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="reps.safetensors"):
        Knowledge.load(tmp_path / "k")


def test_user_representations_do_not_leak_source_items_after_the_target_item(world):
    _, knowledge, _ = world
    model = TextSeqRec(torch.randn(30, D), **TINY.kwargs())
    model.load_state_dict({**model.state_dict(), **knowledge.theta})
    model.pretrain_info = {"sources": [], "text_embs": [], "model_config": TINY.kwargs()}
    clean = synthetic_dataset()
    leaky = synthetic_dataset(after_test_source_item=7)
    src_emb, _ = text_tables()
    k_clean = extract_knowledge(model, clean, sources=clean.sources, source_text_emb=[src_emb], device="cpu")
    k_leaky = extract_knowledge(model, leaky, sources=leaky.sources, source_text_emb=[src_emb], device="cpu")
    for stage in ("train", "valid", "test"):
        torch.testing.assert_close(k_clean.user_reps[stage], k_leaky.user_reps[stage])
    u = k_clean.user_keys[0]
    assert len(leaky.source_history(u, "test")) == len(clean.source_history(u, "test"))


# --------------------------------------------------------------------------- strategies

def test_zero_shot_trains_nothing_and_equals_theta_s(world):
    data, knowledge, tgt_emb = world
    res = finetune_target(zero_shot.transfer(knowledge, data.target, text_emb=tgt_emb), data.target, FAST)
    assert res.history is None and res.trainable_params == 0 and res.total_params > 0
    assert not any(p.requires_grad for p in res.model.parameters())
    for k, v in theta_of(res.model).items():
        assert torch.equal(v, knowledge.theta[k]), k
    scores = res.model.score(pad_left([[1, 2, 3]], 8))
    assert scores.shape == (1, 20)


def test_full_finetune_trains_everything(world):
    data, knowledge, tgt_emb = world
    res = finetune_target(full_finetune.transfer(knowledge, data.target, text_emb=tgt_emb), data.target, FAST)
    assert res.trainable_params == res.total_params and res.history.epochs
    changed = [k for k, v in theta_of(res.model).items() if not torch.equal(v, knowledge.theta[k])]
    assert any(k.startswith("encoder.") for k in changed) and any(k.startswith("adaptor.") for k in changed)


def test_l2sp_penalty_is_zero_at_theta_s_and_grows_with_distance(world):
    data, knowledge, tgt_emb = world
    model = TextSeqRec(tgt_emb, **TINY.kwargs())
    load_theta(model, knowledge.theta)
    penalty = l2sp.L2SPPenalty(knowledge.theta, alpha=0.5)
    assert float(penalty(model).detach()) == 0.0
    with torch.no_grad():
        model.encoder.output_norm.bias.add_(0.1)
    expected = 0.5 * 0.1 ** 2 * model.encoder.output_norm.bias.numel()
    assert float(penalty(model).detach()) == pytest.approx(expected, rel=1e-4)
    penalty(model).backward()  # gradient 2α(θ − θ_s)
    torch.testing.assert_close(model.encoder.output_norm.bias.grad,
                               torch.full_like(model.encoder.output_norm.bias, 2 * 0.5 * 0.1))
    res = finetune_target(l2sp.transfer(knowledge, data.target, TransferConfig(l2sp_alpha=0.1), text_emb=tgt_emb),
                          data.target, FAST)
    assert res.history.epochs and res.extra["alpha"] == 0.1


def test_frozen_adaptor_keeps_the_encoder(world):
    data, knowledge, tgt_emb = world
    res = finetune_target(frozen_adaptor.transfer(knowledge, data.target, TransferConfig(use_id=True), text_emb=tgt_emb),
                          data.target, FAST)
    theta = theta_of(res.model)
    for k, v in theta.items():
        if k.startswith("encoder."):
            assert torch.equal(v, knowledge.theta[k]), f"frozen {k} changed"
    assert any(not torch.equal(theta[k], knowledge.theta[k]) for k in theta if k.startswith("adaptor."))
    assert res.model.id_embedding is not None
    encoder = sum(p.numel() for p in res.model.encoder.parameters())
    assert res.trainable_params == res.total_params - encoder


def test_frozen_adaptor_id_trains_the_adaptor_and_new_ids_around_the_frozen_encoder(world):
    """UniSRec's text + ID fine-tuning: IDs without asking for them (``use_id`` left false), the encoder
    fixed — unlike ``transductive``, which adds the same IDs and trains everything."""
    data, knowledge, tgt_emb = world
    t = frozen_adaptor_id.transfer(knowledge, data.target, TransferConfig(), text_emb=tgt_emb)
    assert t.model.id_embedding is not None
    assert t.model.id_embedding.weight.shape == (data.target.n_items, TINY.hidden)  # (N_t, H), new
    assert t.model.id_embedding.weight.requires_grad
    res = finetune_target(t, data.target, FAST)
    theta = theta_of(res.model)
    for k, v in theta.items():
        if k.startswith("encoder."):
            assert torch.equal(v, knowledge.theta[k]), f"frozen {k} changed"
    assert any(not torch.equal(theta[k], knowledge.theta[k]) for k in theta if k.startswith("adaptor."))
    encoder = sum(p.numel() for p in res.model.encoder.parameters())
    assert res.trainable_params == res.total_params - encoder
    everything = transductive.transfer(knowledge, data.target, TransferConfig(), text_emb=tgt_emb)
    assert everything.total_params == t.total_params and everything.trainable_params == t.total_params


def test_lora_starts_as_identity_and_merges_to_theta_plus_ba(world):
    _, knowledge, tgt_emb = world
    base = build_target_model(knowledge, tgt_emb).eval()
    seq = pad_left([[1, 2, 3, 4], [5, 6]], 8)
    before = base.score(seq)
    cfg = TransferConfig(lora_rank=2, lora_alpha=4.0, lora_targets=("linear1", "linear2"))
    peft_model = lora.wrap_lora(build_target_model(knowledge, tgt_emb), cfg).eval()
    torch.testing.assert_close(peft_model.score(seq), before)  # B = 0: identity at the start
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert any("lora_A" in n for n in trainable) and not any("encoder" in n and "lora_" not in n for n in trainable)
    layer = peft_model.base_model.model.encoder.layers[0].linear1
    with torch.no_grad():
        layer.lora_B["default"].weight.normal_()
    W = layer.base_layer.weight.detach().clone()
    BA = layer.lora_B["default"].weight @ layer.lora_A["default"].weight
    merged = peft_model.merge_and_unload()
    torch.testing.assert_close(merged.encoder.layers[0].linear1.weight, W + (4.0 / 2) * BA)
    torch.testing.assert_close(merged.encoder.layers[0].linear2.weight,
                               knowledge.theta["encoder.layers.0.linear2.weight"])  # its B stayed 0


def test_lora_validation_scores_theta_plus_ba_not_theta(world):
    """Evaluating a PeftModel (eval mode, no grad) must include BA: the fused fast path skips it."""
    _, knowledge, tgt_emb = world
    seq = pad_left([[1, 2, 3, 4], [5, 6]], 8)
    cfg = TransferConfig(lora_rank=2, lora_alpha=4.0)
    peft_model = lora.wrap_lora(build_target_model(knowledge, tgt_emb), cfg).eval()
    for name, p in peft_model.named_parameters():
        if "lora_B" in name:
            with torch.no_grad():
                p.normal_()
    with torch.no_grad(), lora.exact_forward():
        during_training = peft_model.score(seq)  # what validation during fine-tuning sees
    merged = peft_model.merge_and_unload().eval()
    with torch.no_grad():
        torch.testing.assert_close(during_training, merged.score(seq), rtol=1e-4, atol=1e-4)
    assert torch.backends.mha.get_fastpath_enabled()  # the context restores the global switch


def test_lora_model_stays_trainable_after_validation(world):
    """Validation runs peft's MultiheadAttention wrapper, which merges/unmerges its weights in place.

    Evaluating must not turn parameters into inference tensors, or fit could not restore its best
    state afterwards (``load_state_dict`` fails on inference tensors).
    """
    data, knowledge, tgt_emb = world
    cfg = TransferConfig(lora_rank=2, lora_targets=("linear1", "linear2", "self_attn"))
    peft_model = lora.wrap_lora(build_target_model(knowledge, tgt_emb), cfg)
    state = {k: v.clone() for k, v in peft_model.state_dict().items()}
    with lora.exact_forward():
        evaluate(peft_model, data.target.valid, data.target.protocol, device="cpu")
    assert not [n for n, p in peft_model.named_parameters() if p.is_inference()]
    peft_model.load_state_dict(state)  # what fit does to restore the best epoch


def test_lora_apply_changes_only_targets_and_adaptor(world):
    data, knowledge, tgt_emb = world
    cfg = TransferConfig(lora_rank=2)
    res = finetune_target(lora.transfer(knowledge, data.target, cfg, text_emb=tgt_emb), data.target, FAST)
    assert 0 < res.trainable_params < res.total_params
    assert isinstance(res.model, TextSeqRec)  # merged back into a plain model
    for k, v in theta_of(res.model).items():
        if k.startswith("encoder.") and "norm" in k or k.startswith("encoder.position"):
            assert torch.equal(v, knowledge.theta[k]), k
    assert not torch.equal(res.model.encoder.layers[0].linear1.weight, knowledge.theta["encoder.layers.0.linear1.weight"])
    with pytest.raises(ValueError, match="match no"):
        lora.lora_target_names(res.model, ("query",))


def test_lora_and_lora_adaptor_train_what_their_names_say(world):
    data, knowledge, tgt_emb = world
    cfg = TransferConfig(lora_rank=2)
    only = finetune_target(lora.transfer(knowledge, data.target, cfg, text_emb=tgt_emb), data.target, FAST)
    both = finetune_target(lora_adaptor.transfer(knowledge, data.target, cfg, text_emb=tgt_emb), data.target, FAST)
    adaptor = sum(v.numel() for k, v in knowledge.theta.items() if k.startswith("adaptor."))
    assert both.trainable_params - only.trainable_params == adaptor
    for k, v in theta_of(only.model).items():
        if k.startswith("adaptor."):
            assert torch.equal(v, knowledge.theta[k]), f"lora changed the adaptor ({k})"
    assert any(not torch.equal(v, knowledge.theta[k]) for k, v in theta_of(both.model).items() if k.startswith("adaptor."))
    assert (only.name, both.name) == ("lora", "lora_adaptor") and not only.extra["adaptor_trained"]


def test_fusion_add_rejects_the_seeds_shape_mismatch():
    source_items, target_items = torch.randn(30, 16), torch.randn(20, 16)  # N_s != N_t
    with pytest.raises(fusion.FusionShapeError, match=r"\(20, 16\).*\(30, 16\)"):
        fusion.fuse_add(target_items, source_items)
    with pytest.raises(fusion.FusionShapeError, match="widths"):
        fusion.FusedAdaptor(torch.nn.Linear(D, 8), torch.nn.Linear(D, 16), D, mode="add")
    out = fusion.fuse_add(target_items, torch.ones(20, 16))
    torch.testing.assert_close(out, target_items + 1)


@pytest.mark.parametrize("mode", ["add", "concat", "gate"])
def test_fusion_trains_target_view_and_keeps_source_view(world, mode):
    data, knowledge, tgt_emb = world
    res = finetune_target(fusion.transfer(knowledge, data.target, TransferConfig(fusion=mode), text_emb=tgt_emb),
                          data.target, FAST)
    fused = res.model.adaptor
    assert isinstance(fused, fusion.FusedAdaptor) and fused.mode == mode
    for name, p in fused.source.named_parameters():
        assert not p.requires_grad and torch.equal(p, knowledge.theta[f"adaptor.{name}"])
    assert res.model.item_representations().shape == (20, TINY.hidden)
    assert res.trainable_params < res.total_params


def dropout_rates(model: torch.nn.Module) -> set[float]:
    """``p`` of every dropout layer of the recommender itself (LoRA's own ``lora_dropout`` aside)."""
    return {m.p for n, m in model.named_modules() if isinstance(m, torch.nn.Dropout) and "lora_" not in n}


def recommender(model: torch.nn.Module) -> TextSeqRec:
    return next(m for m in model.modules() if isinstance(m, TextSeqRec))  # inside LoRA's wrapper too


@pytest.mark.parametrize("strategy", [full_finetune, l2sp, frozen_adaptor, lora_adaptor, fusion])
def test_fine_tuning_dropout_and_temperature_replace_theta_s_ones(world, strategy):
    data, knowledge, tgt_emb = world
    assert knowledge.model_config["dropout"] == 0.0 and knowledge.model_config["temperature"] != 0.5
    kept = strategy.transfer(knowledge, data.target, text_emb=tgt_emb).model
    assert dropout_rates(kept) == {0.0} and recommender(kept).temperature == knowledge.model_config["temperature"]
    t = strategy.transfer(knowledge, data.target, TransferConfig(dropout=0.3, temperature=0.5), text_emb=tgt_emb)
    assert dropout_rates(t.model) == {0.3}  # fusion's fresh adaptor included
    assert recommender(t.model).temperature == 0.5
    if strategy is full_finetune:  # dropout has no weights: θ_s loads unchanged
        for k, v in theta_of(t.model).items():
            assert torch.equal(v, knowledge.theta[k]), k


def test_transfer_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="fusion"):
        TransferConfig(fusion="sum")
    with pytest.raises(ConfigError, match="lora_rnak"):
        from_dict(TransferConfig, {"lora_rnak": 4})
    with pytest.raises(ConfigError, match="train"):
        from_dict(TransferConfig, {"train": {"epochs": 3}})  # the training loop is not the strategy's
    with pytest.raises(ConfigError, match="lora_rank must be an integer"):
        from_dict(TransferConfig, {"lora_rank": 2.5})
    with pytest.raises(ConfigError, match="dropout must be in"):
        TransferConfig(dropout=1.0)
    with pytest.raises(ConfigError, match="temperature must be positive"):
        TransferConfig(temperature=0.0)
