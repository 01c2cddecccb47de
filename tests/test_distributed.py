"""Data-parallel training: ``xdtutor.train.fit`` under 2 processes (gloo, CPU) equals 1 process.

The two runs are made equal *by construction*, so the test can be strict:

* full-batch steps: the 64 training rows fit in one batch (``batch_size`` 64 ≥ 64 rows alone, and
  each of the 2 ranks' 32-row shard fits in its own batch), so every epoch is one optimizer step
  over exactly the same 64 rows whatever the shuffling (``fit`` shuffles with ``randperm`` alone
  and with ``DistributedSampler`` under DDP — different orders, same set);
* every row has the same number of targets (all sequences have the same length), so DDP's mean
  of the two ranks' mean losses equals the single process's mean over all targets, and so do the
  gradients (DDP all-reduces and averages them);
* dropout is 0, the seed is the same, and DDP broadcasts rank 0's initial weights;
* the learning-rate schedule depends only on the number of steps (1 per epoch in both).

What remains is floating-point summation order (gloo's all-reduce sums two partial gradients
instead of one sum over all rows), about 1e-7 relative per step; Adam divides by sqrt(v), which can
amplify that for parameters whose gradient is near 0, so weights are compared with ``atol=1e-5``
after 3 epochs. Measured: 8e-7 between DDP and one process, while training the single process on
half of the users (what one rank alone would see) differs by 3e-3 — a wrong gradient fails by
orders of magnitude. The test also checks that the weights did move.

Marked ``slow``: spawning two Python processes that import torch takes 20-40 s on a busy 2-core
machine. The multi-GPU equivalent of what it checks is ``torchrun --nproc_per_node=N`` around any
script that calls ``fit`` (see benchmarks/README.md).
"""

from __future__ import annotations

import os
import socket
import time

import numpy as np
import pytest
import torch

N_ITEMS, N_USERS, SEQ_LEN, MAX_LEN = 40, 64, 8, 10


def _split():
    """A tiny synthetic split domain: 64 users, every training sequence 8 items long."""
    import pandas as pd

    from xdtutor.data import Domain, EvalSet, SplitDomain
    from xdtutor.protocol import Protocol

    rng = np.random.default_rng(0)
    # Users follow one of 4 item "tracks" so there is something to learn.
    seqs = {}
    for u in range(N_USERS):
        start, step = int(rng.integers(0, N_ITEMS)), int(rng.integers(1, 4))
        seqs[f"u{u}"] = (start + step * np.arange(SEQ_LEN + 2)) % N_ITEMS
    items = pd.DataFrame({"item": np.arange(N_ITEMS), "raw_id": [f"i{i}" for i in range(N_ITEMS)],
                          "text": [f"item {i}" for i in range(N_ITEMS)]})
    domain = Domain("synthetic", items, {u: s.astype(np.int64) for u, s in seqs.items()})
    users = sorted(seqs)
    train = {u: seqs[u][:SEQ_LEN].astype(np.int64) for u in users}
    valid = EvalSet(users, [seqs[u][:SEQ_LEN] for u in users], np.array([seqs[u][SEQ_LEN] for u in users]))
    test = EvalSet(users, [seqs[u][:SEQ_LEN + 1] for u in users], np.array([seqs[u][SEQ_LEN + 1] for u in users]))
    protocol = Protocol(dataset="synthetic", split="fixed", ks=(10,), max_len=MAX_LEN)
    return SplitDomain(domain, train, valid, test, protocol)


def _model():
    from xdtutor.models import SASRec

    torch.manual_seed(0)
    return SASRec(N_ITEMS, hidden=16, n_layers=1, n_heads=2, max_len=MAX_LEN, dropout=0.0)


def _train(out_path: str | None = None):
    """Build the model, fit it, return (state_dict, history); rank 0 also saves them."""
    from xdtutor.train import TrainConfig, fit

    model = _model()
    config = TrainConfig(epochs=3, batch_size=64, lr=1e-3, warmup_ratio=0.0, patience=10, max_len=MAX_LEN,
                         seed=0, device="cpu", progress=False)
    history = fit(model, _split(), config)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if out_path is not None:
        torch.save({"state": state, "loss": history.train_loss, "valid": history.valid_metrics,
                    "best_epoch": history.best_epoch}, out_path)
    return state, history


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    try:
        _train(os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        torch.distributed.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="torch.distributed with the gloo backend is not available")
def test_two_process_ddp_matches_single_process(tmp_path):
    import torch.multiprocessing as mp

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single_state, single_hist = _train()
    finally:
        torch.set_num_threads(threads)

    t0 = time.perf_counter()
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    elapsed = time.perf_counter() - t0
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)

    # Both ranks end with identical weights (DDP keeps replicas in sync) ...
    for k, v in r0["state"].items():
        torch.testing.assert_close(r1["state"][k], v, rtol=0, atol=0, msg=f"ranks differ in {k}")
    # ... equal to the single-process run within the summation-order tolerance.
    for k, v in single_state.items():
        torch.testing.assert_close(r0["state"][k], v, rtol=0, atol=1e-5, msg=f"DDP vs single process: {k}")
    np.testing.assert_allclose(r0["loss"], single_hist.train_loss, rtol=1e-5)
    assert r0["best_epoch"] == single_hist.best_epoch
    for a, b in zip(r0["valid"], single_hist.valid_metrics):
        assert a.keys() == b.keys()
        np.testing.assert_allclose([a[k] for k in a], [b[k] for k in a], atol=1e-6)
    # Training did something (so equality is not trivially "nothing moved").
    assert single_hist.train_loss[-1] < single_hist.train_loss[0]
    initial = _model().state_dict()
    moved = max(float((single_state[k] - initial[k]).abs().max()) for k in initial)
    assert moved > 1e-3, f"weights barely moved ({moved:.2e}); the comparison would be vacuous"
    assert elapsed < 120, f"2-process run took {elapsed:.0f} s"


# ----------------------------------------------------------------------------- the whole pipeline


def _pipeline_config(folder: str | None = None):
    """Full-batch steps (one per epoch in 1 or 2 processes), no dropout: 2 processes train what 1 does."""
    from test_experiment import MICRO

    from xdtutor.experiment import build_config

    big = {"batch_size": 4096, "progress": False, "epochs": 3, "warmup_ratio": 0.0}
    return build_config({**MICRO, "strategies": ["full_finetune"], "baselines": ["popularity", "sasrec", "text"],
                         "cold_users": {"mappings": []}, "cold_start": {"fractions": []},
                         "pretrain": {**MICRO["pretrain"], **big}, "train": {**MICRO["train"], **big}})


def _pipeline(out_dir: str, rank: int) -> None:
    from test_pipeline import micro_emb
    from test_transfer import synthetic_dataset

    from xdtutor import distributed
    from xdtutor.pipeline import run_experiment
    from xdtutor.run_folder import RunFolder

    config = _pipeline_config()
    folder = RunFolder(os.path.join(out_dir, "run"), config.to_dict(), writer=distributed.is_main())
    results = run_experiment(config, dataset=synthetic_dataset(), text_emb=micro_emb(), log=None, folder=folder)
    torch.save({"rows": [(r["method"], r["metrics"]) for r in results.rows]}, os.path.join(out_dir, f"pipe{rank}.pt"))


def _pipeline_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    import sys

    sys.path.insert(0, os.path.dirname(__file__))  # the helpers above live in the tests folder
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    try:
        _pipeline(out_dir, rank)
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="torch.distributed with the gloo backend is not available")
def test_the_whole_pipeline_under_two_processes_matches_one(tmp_path):
    """Pretraining, baselines and a strategy under 2 gloo processes: sharded training with the loss
    weighted to the mean over all targets, sharded evaluation gathered, rank 0 alone writing."""
    import torch.multiprocessing as mp

    from test_pipeline import micro_emb
    from test_transfer import synthetic_dataset

    from xdtutor.pipeline import run_experiment
    from xdtutor.train import training_sequences

    data = synthetic_dataset()
    # DistributedSampler repeats rows to even out an odd count; equal row counts keep the runs comparable
    assert len(training_sequences(data.target, 8)[0]) % 2 == 0
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = run_experiment(_pipeline_config(), dataset=data, text_emb=micro_emb(), log=None)
    finally:
        torch.set_num_threads(threads)
    mp.spawn(_pipeline_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"pipe{r}.pt", weights_only=False)["rows"] for r in (0, 1)]
    assert ranks[0] == ranks[1]                                   # every process holds the same results
    expected = [(r["method"], r["metrics"]) for r in single.rows]
    assert [m for m, _ in ranks[0]] == [m for m, _ in expected] == ["popularity", "sasrec", "text", "full_finetune"]
    for (method, got), (_, want) in zip(ranks[0], expected):
        assert got == pytest.approx(want, abs=1e-6), method
    assert any(v > 0 for _, m in expected for v in m.values())   # not a vacuous comparison
    written = sorted(p.name for p in (tmp_path / "run" / "progress" / "seed0").glob("*.json"))
    assert written == ["full_finetune.json", "popularity.json", "sasrec.json", "text.json"]  # by rank 0
