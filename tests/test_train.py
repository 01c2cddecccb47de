"""Unit tests for xdtutor.train: config validation, examples, fit, checkpoints, resume, determinism."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

import xdtutor.evaluate as evaluate_module
from xdtutor.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from xdtutor.config import ConfigError, from_dict
from xdtutor.data.types import Domain, EvalSet, SplitDomain
from xdtutor.models import SASRec, TextSeqRec
from xdtutor.protocol import Protocol
from xdtutor.train import History, TrainConfig, epoch_batches, fit, training_sequences

torch.set_num_threads(1)
N_ITEMS, MAX_LEN = 20, 8


def tiny_split(n_users: int = 40, seed: int = 0) -> SplitDomain:
    """Synthetic users walking the catalogue: item i is usually followed by i + 1 (mod N)."""
    rng = np.random.default_rng(seed)
    seqs = {}
    for u in range(n_users):
        start, length = rng.integers(N_ITEMS), rng.integers(5, 12)
        seq = (start + np.arange(length)) % N_ITEMS
        noise = rng.random(length) < 0.1
        seq[noise] = rng.integers(N_ITEMS, size=noise.sum())
        seqs[f"u{u}"] = seq.astype(np.int64)
    items = pd.DataFrame({"item": range(N_ITEMS), "raw_id": [f"i{i}" for i in range(N_ITEMS)],
                          "text": [f"item {i}" for i in range(N_ITEMS)]})
    users = list(seqs)
    valid = EvalSet(users, [seqs[u][:-2] for u in users], np.array([seqs[u][-2] for u in users]))
    test = EvalSet(users, [seqs[u][:-1] for u in users], np.array([seqs[u][-1] for u in users]))
    protocol = Protocol(dataset="synthetic", split="leave-one-out", ks=(5, 10), max_len=MAX_LEN)
    return SplitDomain(Domain("toy", items, seqs), {u: seqs[u][:-2] for u in users}, valid, test, protocol)


def config(**kw) -> TrainConfig:
    base = dict(epochs=4, batch_size=8, lr=5e-3, patience=10, max_len=MAX_LEN, seed=0, device="cpu",
                progress=False, warmup_ratio=0.1)
    return TrainConfig(**{**base, **kw})


def model(seed: int = 0) -> SASRec:
    torch.manual_seed(seed)
    return SASRec(N_ITEMS, hidden=16, n_layers=1, n_heads=2, max_len=MAX_LEN, dropout=0.2)


def test_config_validation_names_the_field():
    with pytest.raises(ConfigError, match="^lr must be positive"):
        TrainConfig(lr=0)
    with pytest.raises(ConfigError, match="^pretrain.lr must be positive"):  # from a config section: named by it
        from_dict(TrainConfig, {"lr": -1}, where="pretrain.")
    with pytest.raises(ConfigError, match="warmup_ratio"):
        TrainConfig(warmup_ratio=1.5)
    with pytest.raises(ConfigError, match="epoch"):
        from_dict(TrainConfig, {"epoch": 3})
    assert from_dict(TrainConfig, {"epochs": 3}).epochs == 3


def test_training_sequences_shift_and_window():
    data = tiny_split(3)
    data.train.clear()
    data.train.update({"a": np.arange(5), "b": np.array([7]), "c": np.arange(12)})
    x, y = training_sequences(data, max_len=4)
    # a: one window; b: too short; c: 11 targets -> windows of 4, 4, 3
    assert x.shape == (4, 4) and y.shape == (4, 4)
    assert x[0].tolist() == [1, 2, 3, 4] and y[0].tolist() == [2, 3, 4, 5]  # ids +1
    targets_c = sorted(int(t) - 1 for t in y[1:].flatten() if t > 0)
    assert targets_c == list(range(1, 12))  # every item but the first is a target exactly once
    assert x[3].tolist() == [0, 1, 2, 3] and y[3].tolist() == [0, 2, 3, 4]  # left padded


def test_fit_learns_and_restores_the_best_epoch():
    data, m = tiny_split(), model()
    before = evaluate_module.evaluate(m, data.valid, data.protocol).metrics["ndcg@10"]
    history = fit(m, data, config(epochs=6))
    assert history.epochs == [1, 2, 3, 4, 5, 6] and len(history.valid_metrics) == 6
    assert history.train_loss[-1] < history.train_loss[0]
    best = max(v["ndcg@10"] for v in history.valid_metrics)
    assert history.best_metric == best and history.valid_metrics[history.best_epoch - 1]["ndcg@10"] == best
    after = evaluate_module.evaluate(m, data.valid, data.protocol).metrics["ndcg@10"]
    assert after == pytest.approx(best) and after > before
    d = history.to_dict()
    json.dumps(d)
    assert History.from_dict(d) == history


def test_early_stopping_patience():
    data = tiny_split()
    history = fit(model(), data, config(epochs=30, lr=1e-6, patience=2, warmup_ratio=0.0))
    # a learning rate this small barely moves: at some point two epochs pass without improvement
    assert history.stop_reason == "patience" and len(history.epochs) == history.best_epoch + 2


def test_same_seed_same_metrics_and_different_seed_differs():
    data = tiny_split()
    h1, h2 = fit(model(), data, config()), fit(model(), data, config())
    assert h1.valid_metrics == h2.valid_metrics and h1.train_loss == h2.train_loss
    h3 = fit(model(), data, config(seed=1))
    assert h3.train_loss != h1.train_loss


def test_frozen_parameters_are_unchanged_and_buffers_untouched():
    data = tiny_split()
    torch.manual_seed(0)
    m = TextSeqRec(torch.randn(N_ITEMS, 12), hidden=16, n_layers=1, n_heads=2, max_len=MAX_LEN, adaptor="whiten")
    m.encoder.requires_grad_(False)
    frozen = {k: v.clone() for k, v in m.encoder.state_dict().items()}
    adaptor = {k: v.clone() for k, v in m.adaptor.state_dict().items()}
    text = m.text_emb.clone()
    fit(m, data, config(epochs=2))
    assert all(torch.equal(v, m.encoder.state_dict()[k]) for k, v in frozen.items())
    assert any(not torch.equal(v, m.adaptor.state_dict()[k]) for k, v in adaptor.items())
    assert torch.equal(text, m.text_emb)


def test_no_trainable_parameters_is_an_error():
    m = model().requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable"):
        fit(m, tiny_split(), config())


def test_penalty_is_applied():
    data = tiny_split()
    anchor = {n: p.detach().clone() for n, p in model().named_parameters()}

    def l2sp(mod):
        return 100.0 * sum(((p - anchor[n]) ** 2).sum() for n, p in mod.named_parameters())

    m_free, m_pen = model(), model()
    fit(m_free, data, config(epochs=2)), fit(m_pen, data, config(epochs=2), penalty=l2sp)
    drift = lambda m: sum(((p - anchor[n]) ** 2).sum().item() for n, p in m.named_parameters())  # noqa: E731
    assert drift(m_pen) < drift(m_free)


def test_checkpoint_round_trip_reports_missing_and_unexpected(tmp_path):
    m = model()
    path = save_checkpoint(m, tmp_path / "ckpt", {"hidden": 16}, epoch=3)
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["epoch"] == 3 and meta["model_class"] == "SASRec" and "torch" in meta["versions"]
    m2 = model(seed=1)
    assert load_checkpoint(m2, path) == ([], [])
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), m2.state_dict().values()))
    # a model with an extra module: missing keys raise unless strict=False
    torch.manual_seed(0)
    t = TextSeqRec(torch.randn(N_ITEMS, 6), hidden=16, n_layers=1, n_heads=2, max_len=MAX_LEN, use_id=True)
    with pytest.raises(CheckpointError, match="missing keys.*adaptor"):
        load_checkpoint(t, path)
    with pytest.warns(UserWarning, match="keys"):
        missing, unexpected = load_checkpoint(t, path, strict=False)
    assert "adaptor.linear.weight" in missing and unexpected == ["item_embedding.weight"]
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_checkpoint(SASRec(N_ITEMS + 1, hidden=16, n_layers=1, n_heads=2, max_len=MAX_LEN), path)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(m, tmp_path / "nothing")


def test_interrupted_run_resumes_to_the_same_result(tmp_path, monkeypatch):
    data = tiny_split()
    reference = model()
    h_ref = fit(reference, data, config(epochs=4))

    real_evaluate, calls = evaluate_module.evaluate, {"n": 0}

    def crash_on_third_validation(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated interruption during epoch 3")
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(evaluate_module, "evaluate", crash_on_third_validation)
    with pytest.raises(KeyboardInterrupt):
        fit(model(), data, config(epochs=4), checkpoint_dir=tmp_path)
    assert json.loads((tmp_path / "last.json").read_text())["epoch"] == 2
    monkeypatch.setattr(evaluate_module, "evaluate", real_evaluate)

    torch.manual_seed(123)  # the resumed process starts from different global RNG state
    resumed = model(seed=5)  # and a freshly initialised model
    h_res = fit(resumed, data, config(epochs=4), checkpoint_dir=tmp_path)
    assert h_res.resumed_from == 2
    assert h_res.valid_metrics == h_ref.valid_metrics and h_res.train_loss == h_ref.train_loss
    assert h_res.best_epoch == h_ref.best_epoch
    for (k, a), b in zip(reference.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
    # a finished run is only loaded again, not retrained
    again = model(seed=7)
    h_again = fit(again, data, config(epochs=4), checkpoint_dir=tmp_path)
    assert h_again.epochs == h_ref.epochs
    assert all(torch.equal(a, b) for a, b in zip(reference.state_dict().values(), again.state_dict().values()))
    with pytest.raises(CheckpointError, match="different config.*lr"):
        fit(model(), data, config(epochs=4, lr=1e-2), checkpoint_dir=tmp_path)


@pytest.mark.parametrize("damage", ["truncated weights", "epoch mismatch", "unreadable trainer state"])
def test_a_damaged_checkpoint_is_reported_and_rebuilt(tmp_path, damage):
    """What an interrupted save or a full disk leaves behind must not block every rerun."""
    data = tiny_split()
    reference = model()
    h_ref = fit(reference, data, config(epochs=3))
    fit(model(), data, config(epochs=3), checkpoint_dir=tmp_path)
    if damage == "truncated weights":
        (tmp_path / "last.safetensors").write_bytes((tmp_path / "last.safetensors").read_bytes()[:100])
    elif damage == "epoch mismatch":
        meta = json.loads((tmp_path / "last.json").read_text())
        (tmp_path / "last.json").write_text(json.dumps({**meta, "epoch": 1, "finished": False}))
    else:
        (tmp_path / "last.pt").write_bytes(b"not a torch file")
    rebuilt = model()  # the same initial weights as the reference
    with pytest.warns(UserWarning, match="damaged checkpoint, training starts again"):
        h = fit(rebuilt, data, config(epochs=3), checkpoint_dir=tmp_path)
    assert h.resumed_from == 0 and h.valid_metrics == h_ref.valid_metrics   # a fresh run, the same result
    assert json.loads((tmp_path / "last.json").read_text())["finished"]


def test_time_limit_stops_and_is_recorded():
    history = fit(model(), tiny_split(), config(epochs=50, max_train_minutes=1e-6))
    assert history.stop_reason == "time_limit" and len(history.epochs) == 1


def test_length_grouped_batches_cover_every_row_once():
    lengths = torch.randint(1, 50, (1000,))
    order = torch.randperm(1000).tolist()
    batches = epoch_batches(order, lengths, 32, epoch=0, seed=0, group_by_length=True)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    assert len(batches) == 32 and all(len(b) == 32 for b in batches[:-1] + batches[-1:] if len(b) != 8)
    spread = sum(int(lengths[b].max() - lengths[b].min()) for b in batches) / len(batches)
    assert spread < 10  # similar lengths inside a batch (random batches spread ~45)
    assert epoch_batches(order, lengths, 32, 0, 0, False) == [order[s:s + 32] for s in range(0, 1000, 32)]


def test_in_batch_negatives_train_and_are_validated():
    with pytest.raises(ConfigError, match="negatives must be one of"):
        TrainConfig(negatives="sampled")
    data, m = tiny_split(), model()
    before = evaluate_module.evaluate(m, data.valid, data.protocol).metrics["ndcg@10"]
    history = fit(m, data, config(epochs=6, negatives="in_batch"))
    assert history.train_loss[-1] < history.train_loss[0]
    assert history.best_metric > before

    class OldStyle(SASRec):  # a model whose loss predates the ``negatives`` argument
        def loss(self, item_seq, targets):
            return super().loss(item_seq, targets)

    old = OldStyle(N_ITEMS, hidden=16, n_layers=1, n_heads=2, max_len=MAX_LEN)
    fit(old, data, config(epochs=1))  # fine with the default
    with pytest.raises(ValueError, match="no 'negatives' argument"):
        fit(old, data, config(epochs=1, negatives="in_batch"))


def test_rank_device_follows_local_rank_under_torchrun():
    from xdtutor.train import rank_device

    cuda = torch.device("cuda")  # a device object needs no GPU
    assert rank_device(cuda, True, {"LOCAL_RANK": "3"}) == torch.device("cuda", 3)
    assert rank_device(torch.device("cuda", 1), True, {"LOCAL_RANK": "3"}) == torch.device("cuda", 1)  # explicit wins
    assert rank_device(cuda, False, {"LOCAL_RANK": "3"}) is cuda            # one process: untouched
    assert rank_device(torch.device("cpu"), True, {"LOCAL_RANK": "3"}) == torch.device("cpu")


def test_training_logits_are_float32_under_bf16_autocast():
    """Cosine / 0.07 logits reach ~14, where bf16 steps are 0.0625: softmax_ce computes them in float32."""
    from xdtutor.models.sasrec import softmax_ce

    g = torch.Generator().manual_seed(0)
    states = torch.nn.functional.normalize(torch.randn(4, 5, 16, generator=g), dim=-1)   # (B, L, H)
    items = torch.nn.functional.normalize(torch.randn(300, 16, generator=g), dim=-1)      # (N, H)
    targets = torch.randint(1, 301, (4, 5), generator=g)
    exact = softmax_ce(states, items, targets, temperature=0.07)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        amp = softmax_ce(states, items, targets, temperature=0.07)
        bf16_logits = (states[targets > 0] / 0.07) @ items.T                              # what autocast would do
    naive = torch.nn.functional.cross_entropy(bf16_logits.float(), targets[targets > 0] - 1)
    assert bf16_logits.dtype == torch.bfloat16 and abs(naive.item() - exact.item()) > 1e-3  # the error is real
    assert amp.item() == pytest.approx(exact.item(), abs=1e-6)


def test_logits_chunk_trains_the_same_model_and_is_validated():
    with pytest.raises(ConfigError, match="logits_chunk must be >= 0"):
        TrainConfig(logits_chunk=-1)
    data = tiny_split()
    plain, chunked = model(), model()
    h1 = fit(plain, data, config(epochs=2))
    h2 = fit(chunked, data, config(epochs=2, logits_chunk=16))
    np.testing.assert_allclose(h1.train_loss, h2.train_loss, rtol=1e-5)
    # Adam turns rounding noise on the key bias (whose true gradient is 0: softmax ignores it) into
    # steps of ~1e-5; every other weight agrees to ~3e-8.
    for (n, a), (_, b) in zip(plain.state_dict().items(), chunked.state_dict().items()):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4, msg=n)

    class OldStyle(SASRec):  # a model whose loss has no logits_chunk argument
        def loss(self, item_seq, targets):
            return super().loss(item_seq, targets)

    old = OldStyle(N_ITEMS, hidden=16, n_layers=1, n_heads=2, max_len=MAX_LEN)
    with pytest.raises(ValueError, match="no 'logits_chunk' argument"):
        fit(old, data, config(epochs=1, logits_chunk=8))


def test_a_non_finite_loss_stops_training_naming_the_steps():
    data = tiny_split()

    class Exploding(SASRec):
        calls = 0

        def loss(self, item_seq, targets):
            Exploding.calls += 1
            value = super().loss(item_seq, targets)
            return value * float("nan") if Exploding.calls == 4 else value

    m = Exploding(N_ITEMS, hidden=16, n_layers=1, n_heads=2, max_len=MAX_LEN)
    with pytest.raises(FloatingPointError, match=r"non-finite training loss at epoch 1, in steps 3-4"):
        fit(m, data, config(epochs=2, check_every=2))  # checks after steps 2 and 4: NaN at 4
