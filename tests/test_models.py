"""Unit tests for xdtutor.models: shapes, causality, padding, loss masking, catalogues, counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xdtutor.models import (ADAPTORS, Popularity, SASRec, SequenceEncoder, TextSeqRec, count_parameters,
                            make_adaptor)
from xdtutor.utils import pad_left

torch.set_num_threads(1)
N, D, H, L = 30, 12, 16, 8


def sasrec(**kw) -> SASRec:
    torch.manual_seed(0)
    return SASRec(N, hidden=H, n_layers=2, n_heads=2, max_len=L, **kw).eval()


def textrec(adaptor: str = "linear", **kw) -> TextSeqRec:
    torch.manual_seed(0)
    return TextSeqRec(torch.randn(N, D), hidden=H, n_layers=2, n_heads=2, max_len=L, adaptor=adaptor, **kw).eval()


ALL_MODELS = [pytest.param(sasrec, id="sasrec")] + [
    pytest.param(lambda a=a: textrec(a, use_id=u), id=f"text-{a}{'-id' if u else ''}")
    for a in ADAPTORS for u in (False, True)]


def batch() -> torch.Tensor:
    return pad_left([[1, 2, 3], [4], [], list(range(12)), [5, 5, 5, 6]], L)  # (5, L)


@pytest.mark.parametrize("make", ALL_MODELS)
def test_shapes(make):
    model, x = make(), batch()
    assert model(x).shape == (5, L, H)
    assert model.score(x).shape == (5, N)
    assert model.item_representations().shape == (N, H)
    assert model.user_representation(x).shape == (5, H)
    assert model.loss(x, x).ndim == 0
    assert model.n_items == N


@pytest.mark.parametrize("make", ALL_MODELS)
def test_causal_attention_never_peeks_at_the_future(make):
    model = make()
    x = pad_left([[1, 2, 3, 4, 5, 6]], L)
    y = x.clone()
    y[0, -1] = 20  # change only the latest item
    with torch.no_grad():
        a, b = model(x), model(y)
    torch.testing.assert_close(a[:, :-1], b[:, :-1], rtol=0, atol=1e-6)
    assert not torch.allclose(a[:, -1], b[:, -1])


@pytest.mark.parametrize("make", ALL_MODELS)
def test_left_padding_changes_nothing_and_gives_no_nan(make):
    model = make()
    short = torch.tensor([[3, 7, 9]])
    padded = pad_left([[2, 6, 8]], L)  # same items (+1 shift), padded to L
    with torch.no_grad():
        full = model(padded)                                   # (1, L, H), 5 padding columns
        assert torch.isfinite(full).all()
        assert (full[0, :-3] == 0).all()                       # padding states are zeroed
        # no padding at all (L = 3) gives the same states for the real positions
        torch.testing.assert_close(model(short)[0], full[0, -3:], rtol=0, atol=1e-5)
        # a fully padded row (no history) is finite too
        assert torch.isfinite(model.score(pad_left([[]], L))).all()


@pytest.mark.parametrize("make", ALL_MODELS)
def test_loss_ignores_padding_targets(make):
    model = make()
    x = pad_left([[1, 2, 3, 4]], L)
    t = pad_left([[2, 3, 4, 5]], L)
    t_partial = t.clone()
    t_partial[0, :-2] = 0  # only the last two positions count
    logits = model(x)[0, -2:]
    items = model.item_representations()
    if isinstance(model, TextSeqRec) and model.similarity == "cos":
        logits = torch.nn.functional.normalize(logits, dim=-1) @ torch.nn.functional.normalize(items, dim=-1).T
        logits = logits / model.temperature
    else:
        logits = logits @ items.T
    expected = torch.nn.functional.cross_entropy(logits, t[0, -2:] - 1)
    torch.testing.assert_close(model.loss(x, t_partial), expected)


def test_sasrec_score_is_last_state_dot_item_embeddings_without_padding_row():
    model, x = sasrec(), batch()
    expected = model(x)[:, -1] @ model.item_embedding.weight[1:].T
    torch.testing.assert_close(model.score(x), expected)
    assert torch.all(model.item_embedding.weight[0] == 0)


def test_text_model_scores_an_unseen_catalogue_and_set_catalogue():
    model = textrec("moe", use_id=True)
    new = torch.randn(7, D)
    x = pad_left([[0, 1, 2], [6]], L)
    before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("id_embedding")}
    model.set_catalogue(new)
    assert model.n_items == 7 and model.id_embedding.weight.shape == (7, H)
    scores = model.score(x)
    assert scores.shape == (2, 7) and torch.isfinite(scores).all()
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())  # adaptor/encoder kept
    # without ID embeddings the item representation depends only on the text: same text, same vector
    plain = textrec("whiten")
    reps = plain.item_representations()
    plain.set_catalogue(torch.cat([plain.text_emb[:3].clone(), torch.randn(2, D)]))
    torch.testing.assert_close(plain.item_representations()[:3], reps[:3])
    with pytest.raises(ValueError, match="width"):
        plain.set_catalogue(torch.randn(5, D + 1))


def test_text_table_is_a_non_persistent_buffer():
    model = textrec()
    assert "text_emb" not in model.state_dict()
    assert all(p is not model.text_emb for p in model.parameters())
    model2 = TextSeqRec(torch.randn(99, D), hidden=H, n_layers=2, n_heads=2, max_len=L)
    model2.load_state_dict(model.state_dict())  # a state dict moves between catalogues


def test_invalid_arguments_raise():
    with pytest.raises(ValueError, match="adaptor"):
        TextSeqRec(torch.randn(3, D), adaptor="nope")
    with pytest.raises(ValueError, match="similarity"):
        TextSeqRec(torch.randn(3, D), similarity="l2")
    with pytest.raises(ValueError, match="NaN"):
        TextSeqRec(torch.full((3, D), float("nan")))
    with pytest.raises(ValueError, match="divisible"):
        SASRec(5, hidden=10, n_heads=3)
    with pytest.raises(ValueError, match="max_len"):
        sasrec()(torch.ones(1, L + 1, dtype=torch.long))


def test_parameter_counts():
    model = SASRec(10, hidden=8, n_layers=1, n_heads=2, max_len=5)
    layer = 4 * (8 * 8 + 8) + 2 * 8 * 32 + 32 + 8 + 2 * 2 * 8  # attention, ffn, 2 LayerNorms
    expected = 11 * 8 + 5 * 8 + 2 * 8 + layer + 2 * 8  # items, positions, input LN, layer, output LN
    assert count_parameters(model) == (expected, expected)
    model.item_embedding.requires_grad_(False)
    assert count_parameters(model) == (expected, expected - 88)
    text = TextSeqRec(torch.randn(10, 6), hidden=8, n_layers=1, n_heads=2, max_len=5, adaptor="whiten")
    assert count_parameters(text)[0] == expected - 88 + 6 + 6 * 8  # no item table; b (D,) + W (D, H)
    moe = make_adaptor("moe", 6, 8)
    assert count_parameters(moe)[0] == 8 * (6 + 6 * 8) + 2 * 6 * 8


def test_moe_gate_starts_uniform_and_is_deterministic_in_eval():
    model = textrec("moe")
    gates = model.adaptor.gates(model.text_emb)
    torch.testing.assert_close(gates, torch.full_like(gates, 1 / 8))
    torch.testing.assert_close(model.item_representations(), model.item_representations())


def test_popularity_counts_training_items():
    pop = Popularity(5).fit([np.array([0, 1, 1]), np.array([1, 4])])
    scores = pop.score(torch.zeros(3, 4, dtype=torch.long))
    assert scores.shape == (3, 5)
    assert pop.counts_.tolist() == [1, 3, 0, 0, 1]
    # a strict ranking: by count, equal counts by lower item id first
    assert scores[0].tolist() == [4, 5, 2, 1, 3] and torch.equal(scores[0], scores[2])
    scores[0, 0] = -1  # callers may mask in place
    assert pop.score(torch.zeros(1, 4, dtype=torch.long))[0, 0] == 4
    with pytest.raises(ValueError, match="out of range"):
        Popularity(2).fit([np.array([2])])


@pytest.mark.parametrize("make", ALL_MODELS[:2])
def test_chunked_length_sorted_scoring_matches_plain_scoring(make):
    from xdtutor.models.blocks import last_states

    model = make()
    g = torch.Generator().manual_seed(0)
    seqs = [torch.randint(0, N, (int(n),), generator=g).tolist() for n in torch.randint(0, 12, (37,), generator=g)]
    x = pad_left(seqs, L)
    plain = torch.stack([model(x[i:i + 1])[0, -1] for i in range(len(seqs))])  # one row at a time
    torch.testing.assert_close(last_states(model.forward, x, chunk=5), plain, rtol=0, atol=1e-5)
    torch.testing.assert_close(model.user_representation(x), plain, rtol=0, atol=1e-5)


# ----------------------------------------------------------------------------- in-batch negatives


def test_batch_catalogue_reindexes_the_distinct_items():
    from xdtutor.models.sasrec import batch_catalogue

    x = torch.tensor([[0, 7, 3], [0, 0, 7]])         # +1-shifted, 0 = padding
    y = torch.tensor([[0, 3, 9], [0, 0, 3]])
    ids, lx, ly = batch_catalogue(x, y)
    assert ids.tolist() == [2, 6, 8]                  # 0-based ids of items 3, 7, 9 (+1-shifted)
    assert lx.tolist() == [[0, 2, 1], [0, 0, 2]]
    assert ly.tolist() == [[0, 1, 3], [0, 0, 1]]
    for orig, loc in ((x, lx), (y, ly)):              # mapping back gives the original ids
        back = torch.where(loc > 0, ids[(loc - 1).clamp(min=0)] + 1, torch.zeros_like(loc))
        assert torch.equal(back, orig)
    with pytest.raises(ValueError, match="negatives"):
        batch_catalogue(x, y, "sampled")


@pytest.mark.parametrize("make", ALL_MODELS)
def test_in_batch_loss_equals_full_loss_when_the_batch_holds_every_item(make):
    model = make()
    seqs = [list(range(N))[i:i + L + 1] for i in range(0, N, 3)]  # together: all N items
    rows = pad_left(seqs, L + 1)
    x, y = rows[:, :-1], rows[:, 1:]
    assert torch.unique(torch.cat([x[x > 0], y[y > 0]])).numel() == N
    with torch.no_grad():
        torch.testing.assert_close(model.loss(x, y, negatives="in_batch"), model.loss(x, y))
    grads = []
    for negatives in ("in_batch", "all"):  # the same gradients too (adaptor, ID embedding, item table)
        model.zero_grad()
        model.loss(x, y, negatives=negatives).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=1e-6, rtol=1e-4, msg=name)


@pytest.mark.parametrize("make", ALL_MODELS)
def test_in_batch_loss_ranks_against_the_batch_items_only(make):
    import torch.nn.functional as F

    model = make()
    x, y = pad_left([[1, 2], [2, 5]], L), pad_left([[2, 5], [5, 5]], L)   # items 1, 2, 5 only; 5 twice
    # (pad_left shifts ids by +1)
    with torch.no_grad():
        got = model.loss(x, y, negatives="in_batch")
        states = model(x)                                                     # (B, L, H)
        items = model.item_representations()[[1, 2, 5]]                       # (3, H): items 1, 2, 5
        if isinstance(model, TextSeqRec) and model.similarity == "cos":
            states, items = F.normalize(states, dim=-1), F.normalize(items, dim=-1)
            t = model.temperature
        else:
            t = 1.0
        keep = y > 0
        logits = states[keep] @ items.T / t                                   # (4, 3)
        want = F.cross_entropy(logits, torch.tensor([1, 2, 2, 2]))
    torch.testing.assert_close(got, want)
    with pytest.raises(ValueError, match="negatives"):
        model.loss(x, y, negatives="popular")


def test_length_sorted_chunks_encode_each_row_as_the_whole_batch_does():
    """SequenceEncoder.chunk_rows only changes which rows share a transformer call, not any row's result."""
    torch.manual_seed(0)
    from xdtutor.models import SASRec
    from xdtutor.utils import pad_left

    model = SASRec(40, hidden=16, n_layers=2, n_heads=2, max_len=12, dropout=0.0).eval()
    rng = np.random.default_rng(0)
    seqs = [rng.integers(0, 40, size=int(n)).tolist() for n in rng.integers(1, 13, size=23)]
    x = pad_left(seqs, 12)
    targets = pad_left([s[1:] + [1] for s in seqs], 12)
    outs, grads = [], []
    for chunk in (0, 5, 64):
        model.encoder.chunk_rows = chunk
        model.zero_grad()
        out = model(x)                                               # (23, 12, 16)
        model.loss(x, targets).backward()
        outs.append(out.detach())
        grads.append(model.item_embedding.weight.grad.clone())
    for out, grad in zip(outs[1:], grads[1:]):
        torch.testing.assert_close(out, outs[0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(grad, grads[0], rtol=1e-4, atol=1e-6)
    assert (outs[0][x == 0] == 0).all()                              # padding stays zero


def test_length_sorted_chunks_are_a_cpu_default_and_an_explicit_setting_everywhere(monkeypatch):
    """chunk_rows=None (the default) chunks on the CPU only: on a GPU each chunk is more kernel launches
    and a host sync, so the whole batch goes at once there; an explicit chunk_rows is used on every device."""
    from xdtutor.models import SASRec
    from xdtutor.models.blocks import CPU_CHUNK_ROWS, SequenceEncoder

    enc = SequenceEncoder(hidden=16, max_len=12)
    assert enc.chunk_rows is None
    assert enc.chunk_rows_on(torch.device("cpu")) == CPU_CHUNK_ROWS == 32
    assert enc.chunk_rows_on(torch.device("cuda", 0)) == 0 and enc.chunk_rows_on("mps") == 0
    enc.chunk_rows = 5
    assert enc.chunk_rows_on("cpu") == enc.chunk_rows_on("cuda") == 5
    enc.chunk_rows = 0
    assert enc.chunk_rows_on("cpu") == 0

    model = SASRec(40, hidden=16, n_layers=1, n_heads=2, max_len=12).eval()
    sizes = []
    real = SequenceEncoder._encode
    monkeypatch.setattr(SequenceEncoder, "_encode", lambda self, v, m: sizes.append(len(v)) or real(self, v, m))
    model(torch.randint(1, 40, (70, 12)))                            # on the CPU: chunks of 32
    assert sizes == [32, 32, 6]


@pytest.mark.parametrize("make", [ALL_MODELS[0], ALL_MODELS[2]])
def test_chunked_logits_give_the_same_loss_and_gradients(make):
    """train.logits_chunk: chunks under activation checkpointing, the same loss and gradients."""
    model = make().train()
    rows = pad_left([list(range(N))[i:i + L + 1] for i in range(0, N, 2)], L + 1)
    x, y = rows[:, :-1], rows[:, 1:]
    assert int((y > 0).sum()) > 3 * 7  # several chunks of 7 rows, the last one short
    results = []
    for chunk in (0, 7):
        torch.manual_seed(1)  # the same dropout masks (checkpointing replays the RNG state)
        model.zero_grad()
        loss = model.loss(x, y, logits_chunk=chunk)
        loss.backward()
        results.append((loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    torch.testing.assert_close(results[0][0], results[1][0])
    assert results[0][1].keys() == results[1][1].keys()
    for name, grad in results[0][1].items():
        # float rounding only: gradients reach ~11 (cosine / 0.07), differences ~2e-6
        torch.testing.assert_close(grad, results[1][1][name], atol=1e-5, rtol=1e-4, msg=name)


def test_chunked_logits_never_hold_all_rows_at_once(monkeypatch):
    """The point of chunking: no (M, N) logits matrix, only (chunk, N) ones — forward and backward."""
    import xdtutor.models.sasrec as sasrec_module

    shapes = []
    real = sasrec_module._cross_entropy

    def spy(picked, items, labels, reduction):
        shapes.append(tuple(picked.shape))
        return real(picked, items, labels, reduction)

    monkeypatch.setattr(sasrec_module, "_cross_entropy", spy)
    model = sasrec().train()
    rows = pad_left([list(range(N))[i:i + L + 1] for i in range(0, N, 2)], L + 1)
    model.loss(rows[:, :-1], rows[:, 1:], logits_chunk=5).backward()
    assert shapes and max(s[0] for s in shapes) <= 5
    n_chunks = -(-int((rows[:, 1:] > 0).sum()) // 5)
    assert len(shapes) == 2 * n_chunks  # each chunk once forward, once recomputed in backward


@pytest.mark.parametrize("make", [ALL_MODELS[0], pytest.param(lambda: textrec("moe", use_id=True), id="text-moe-id")])
def test_static_shapes_give_the_same_results(make):
    """use_static_shapes: no padding trim, no length-sorted chunks, loss at every position."""
    dynamic, static = make().train(), make().train().use_static_shapes()
    rows = pad_left([list(range(N))[i:i + L + 1] for i in range(0, N, 4)] + [[1, 2], [3]], L + 1)
    x, y = rows[:, :-1], rows[:, 1:]
    for chunk in (0, 5):
        losses = []
        for model in (dynamic, static):
            torch.manual_seed(3)
            losses.append(model.loss(x, y, logits_chunk=chunk))
        torch.testing.assert_close(losses[0], losses[1], atol=1e-5, rtol=1e-5)
    dynamic.eval(), static.eval()
    with torch.no_grad():
        torch.testing.assert_close(dynamic.score(batch()), static.score(batch()), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="data-dependent shapes"):
        static.loss(x, y, negatives="in_batch")


@pytest.mark.slow
@pytest.mark.parametrize("make", [ALL_MODELS[0], pytest.param(lambda: textrec("moe", use_id=True), id="text-moe-id")])
def test_models_compile_as_one_graph_on_cpu(make):
    """torch.compile(fullgraph=True) traces score and loss (forward and backward) with no graph break."""
    torch._dynamo.reset()
    model = make().use_static_shapes()
    x = batch()
    with torch.no_grad():
        expected = model.score(x)
        compiled = torch.compile(model.score, fullgraph=True, backend="aot_eager")(x)
    torch.testing.assert_close(compiled, expected, atol=1e-5, rtol=1e-5)
    model.train()
    rows = pad_left([list(range(N))[i:i + L + 1] for i in range(0, N, 4)], L + 1)
    torch.manual_seed(0)
    loss = torch.compile(lambda a, b: model.loss(a, b), fullgraph=True, backend="aot_eager")(rows[:, :-1], rows[:, 1:])
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in model.encoder.parameters())
