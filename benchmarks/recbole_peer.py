"""RecBole's side of :mod:`benchmarks.bench_recbole`: SASRec on the released Scientific split.

Runs inside RecBole's own virtual environment (RecBole 1.2.1 needs ``numpy < 2``, ``pandas < 2.2``
and ``pkg_resources``), so it imports only the standard library, torch and recbole — never xdtutor.
It reads the mirror's ``Scientific.{train,valid,test}.inter`` files as they are
(``benchmark_filename``), trains RecBole's SASRec with early stopping on validation NDCG@10, evaluates
the best model on test (full sort, history not masked: RecBole's default for sequential models) and
times full-sort evaluation of the test users again, after one warm-up pass.

Run (by the driver): ``<venv>/bin/python benchmarks/recbole_peer.py --inter-dir DIR --out FILE.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

# RecBole 1.2.1 calls torch.load on its own checkpoints without weights_only (torch >= 2.6 defaults to True).
os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")


def timed(fn, store: list):
    """Wrap a bound method so every call's wall time is appended to ``store``."""
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        store.append(time.perf_counter() - t0)
        return out
    return wrapper


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--inter-dir", required=True, help="folder with Scientific.{train,valid,test}.inter")
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--patience", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--eval-batch-size", type=int, default=1024)
    p.add_argument("--eval-repeats", type=int, default=3)
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    import recbole
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender import SASRec
    from recbole.trainer import Trainer
    from recbole.utils import init_seed

    work = tempfile.mkdtemp(prefix="recbole-peer-")
    os.chdir(work)  # RecBole writes log_tensorboard/ and saved/ into the working folder
    data = os.path.join(work, "Scientific")
    os.makedirs(data)
    for part in ("train", "valid", "test"):
        os.symlink(os.path.abspath(os.path.join(args.inter_dir, f"Scientific.{part}.inter")),
                   os.path.join(data, f"Scientific.{part}.inter"))
    settings = {
        # data: the released files as they are (UniSRec's fine-tuning setup)
        "data_path": work, "benchmark_filename": ["train", "valid", "test"],
        "load_col": {"inter": ["user_id", "item_id_list", "item_id"]}, "alias_of_item_id": ["item_id_list"],
        "MAX_ITEM_LIST_LENGTH": 50,
        # model: the same shape as xdtutor's SASRec (hidden 64, 2 layers, 2 heads, FFN 256, dropout 0.2)
        "hidden_size": 64, "inner_size": 256, "n_layers": 2, "n_heads": 2,
        "hidden_dropout_prob": 0.2, "attn_dropout_prob": 0.2, "hidden_act": "gelu",
        "layer_norm_eps": 1e-12, "initializer_range": 0.02, "loss_type": "CE", "train_neg_sample_args": None,
        # training: Adam at 1e-3, batch 256, early stopping on validation NDCG@10
        "learning_rate": 1e-3, "train_batch_size": args.batch_size, "epochs": args.epochs,
        # RecBole stops when the count of epochs without improvement *exceeds* stopping_step:
        # patience - 1 makes it wait `patience` epochs, as xdtutor does
        "stopping_step": args.patience - 1, "eval_step": 1, "valid_metric": "NDCG@10",
        "metrics": ["Recall", "NDCG"], "topk": [10], "eval_batch_size": args.eval_batch_size,
        "eval_args": {"mode": "full", "order": "TO", "group_by": "user"},
        "device": "cpu", "use_gpu": False, "seed": args.seed, "reproducibility": True, "worker": 0,
        "checkpoint_dir": os.path.join(work, "saved"), "show_progress": False, "state": "WARNING",
        "metric_decimal_place": 6,
    }
    config = Config(model="SASRec", dataset="Scientific", config_dict=settings)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"], config["reproducibility"])
    model = SASRec(config, train_data.dataset).to(config["device"])
    trainer = Trainer(config, model)
    train_s: list[float] = []
    valid_s: list[float] = []
    valid_scores: list[float] = []
    trainer._train_epoch = timed(trainer._train_epoch, train_s)
    valid_epoch = timed(trainer._valid_epoch, valid_s)

    def record_valid(*a, **k):
        score, result = valid_epoch(*a, **k)
        valid_scores.append(float(score))
        return score, result
    trainer._valid_epoch = record_valid

    t0 = time.perf_counter()
    trainer.fit(train_data, valid_data, saved=True, show_progress=False)
    fit_s = time.perf_counter() - t0
    test = trainer.evaluate(test_data, load_best_model=True, show_progress=False)  # also the warm-up
    eval_s = []
    for _ in range(args.eval_repeats):
        t0 = time.perf_counter()
        trainer.evaluate(test_data, load_best_model=False, show_progress=False)
        eval_s.append(time.perf_counter() - t0)
    best = max(range(len(valid_scores)), key=lambda i: (valid_scores[i], i))  # RecBole keeps the latest tie
    result = {
        "library": f"RecBole {recbole.__version__}", "torch": torch.__version__, "seed": args.seed,
        "threads": torch.get_num_threads(), "python": sys.version.split()[0],
        "train_rows": len(train_data.dataset), "train_targets": len(train_data.dataset),
        "test_users": len(test_data.dataset), "n_items": dataset.item_num - 1,
        "params": sum(p.numel() for p in model.parameters()),
        "epochs": len(train_s), "best_epoch": best + 1, "fit_s": fit_s,
        "train_epoch_s": train_s, "valid_epoch_s": valid_s, "valid_ndcg@10": valid_scores,
        "test_ndcg@10": float(test["ndcg@10"]), "test_recall@10": float(test["recall@10"]),
        "eval_test_s": eval_s, "eval_test_median_s": statistics.median(eval_s),
        "settings": settings | {"data_path": "<temporary folder>", "checkpoint_dir": "<temporary folder>"},
    }
    with open(args.out, "w") as fh:
        json.dump(result, fh, indent=2)
    return result


if __name__ == "__main__":
    main()
