"""Benchmark 7 — xdtutor's ID-SASRec beside RecBole's SASRec: time to a converged model, throughput,
full-sort evaluation speed and test NDCG@10, same data, same threads, same machine, one run.

RecBole (the library UniSRec's numbers come from) is installed by this script into its own virtual
environment (``--venv``, default ``$XDTUTOR_CACHE_DIR/recbole-venv``) because RecBole 1.2.1 needs
``numpy < 2``, ``pandas < 2.2`` and ``pkg_resources`` (``setuptools < 81``); the venv sees this
environment's torch (``--system-site-packages``, torch pinned to the running version), so both sides
run the same torch build. Its side is :mod:`benchmarks.recbole_peer`, run as a subprocess.

Both sides, per seed: the released Scientific split (8,442 users, 4,385 items; RecBole reads the
mirror's ``.inter`` files as they are), SASRec with hidden 64, 2 layers, 2 heads, FFN 256, dropout
0.2, max length 50, full softmax (CE) loss, batch 256, lr 1e-3, at most ``--epochs`` epochs, early
stopping after ``--patience`` epochs without a better validation NDCG@10, test read once at the best
epoch, full ranking, history not masked. What differs, by design of each library:

* training rows: RecBole trains on 34,101 *prefixes* of the training sequences, one target each;
  xdtutor on one window per user with a target at *every* position (the same 34,101 targets, and
  each user's sequence is encoded once per epoch instead of once per prefix);
* optimiser: RecBole Adam at a constant lr; xdtutor AdamW (no weight decay) with warm-up and linear
  decay;
* evaluation batches: 1,024 users on both sides.

Rows: one per (library, seed) — epochs run, best epoch, time to a converged model (the whole ``fit``:
training and validation until the stopping rule fires), median training time per epoch, training
sequences/s and targets/s, median validation time, median full-sort time over the test users
(``--eval-repeats`` after one warm-up pass), test NDCG@10 and Recall@10. Summary: the ratios
RecBole/xdtutor of the means over seeds and the difference in test NDCG@10 with a Welch *t* interval
over seeds (the two libraries' runs are not paired).

Run: ``python -m benchmarks.bench_recbole [--seeds 0 1 2] [--threads 1]``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from . import common

#: What RecBole 1.2.1 needs beside the torch of this environment (see the module docstring).
RECBOLE_REQUIREMENTS = ["recbole==1.2.1", "numpy<2", "pandas<2.2", "setuptools<81"]


def ensure_venv(venv: Path) -> Path:
    """RecBole's virtual environment (created on first use); returns its Python."""
    python = venv / "bin" / "python"
    if python.exists() and subprocess.run([str(python), "-c", "import recbole"], capture_output=True).returncode == 0:
        return python
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
        fh.write(f"torch=={torch.__version__.split('+')[0]}\n")  # keep this environment's torch build
    subprocess.run([str(python), "-m", "pip", "install", "-q", "-c", fh.name, *RECBOLE_REQUIREMENTS], check=True)
    os.unlink(fh.name)
    return python


def run_recbole(python: Path, inter_dir: Path, seed: int, args) -> dict:
    """One RecBole seed in its venv (a subprocess); returns what :mod:`recbole_peer` wrote."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "recbole.json"
        cmd = [str(python), str(Path(__file__).with_name("recbole_peer.py")), "--inter-dir", str(inter_dir),
               "--out", str(out), "--seed", str(seed), "--threads", str(args.threads or 1),
               "--epochs", str(args.epochs), "--patience", str(args.patience),
               "--eval-repeats", str(args.eval_repeats)]
        env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS=str(args.threads or 1))
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise SystemExit(f"RecBole run failed (seed {seed}):\n{proc.stderr[-3000:]}")
        return json.loads(out.read_text())


def run_xdtutor(seed: int, args, device: torch.device) -> dict:
    """One xdtutor seed: :func:`xdtutor.train.fit` with validation passes timed separately."""
    import xdtutor.evaluate as evaluate_module
    from xdtutor.data import load_dataset
    from xdtutor.models import SASRec, count_parameters
    from xdtutor.train import TrainConfig, fit, training_sequences

    split = load_dataset("scientific", data_dir=common.data_dir()).target
    cfg = TrainConfig(epochs=args.epochs, batch_size=256, lr=1e-3, patience=args.patience, seed=seed,
                      device=str(device), progress=False)
    inputs, targets = training_sequences(split, cfg.max_len)
    torch.manual_seed(seed)
    model = SASRec(split.n_items, hidden=64, n_layers=2, n_heads=2, max_len=cfg.max_len, dropout=0.2)
    valid_s: list[float] = []
    plain = evaluate_module.evaluate

    def timed_evaluate(*a, **k):
        t0 = time.perf_counter()
        out = plain(*a, **k)
        common.sync(device)
        valid_s.append(time.perf_counter() - t0)
        return out
    evaluate_module.evaluate = timed_evaluate  # fit looks evaluate up in the module at call time
    try:
        t0 = time.perf_counter()
        history = fit(model, split, cfg)
        fit_s = time.perf_counter() - t0
    finally:
        evaluate_module.evaluate = plain
    # the test pass is also the warm-up of the timed repeats
    test = plain(model, split.test, split.protocol, device=device, batch_size=cfg.eval_batch_size).metrics
    eval_s = []
    for _ in range(args.eval_repeats):
        t0 = time.perf_counter()
        plain(model, split.test, split.protocol, device=device, batch_size=cfg.eval_batch_size)
        common.sync(device)
        eval_s.append(time.perf_counter() - t0)
    return {"train_rows": int(inputs.shape[0]), "train_targets": int((targets > 0).sum()),
            "params": count_parameters(model)[0], "epochs": len(history.epochs), "best_epoch": history.best_epoch,
            "fit_s": fit_s, "train_epoch_s": [e - v for e, v in zip(history.epoch_seconds, valid_s)],
            "valid_epoch_s": valid_s, "valid_ndcg@10": [m["ndcg@10"] for m in history.valid_metrics],
            "test_ndcg@10": float(test["ndcg@10"]),
            "test_recall@10": float(test["recall@10"]), "eval_test_median_s": statistics.median(eval_s),
            "stop_reason": history.stop_reason}


def row(library: str, seed: int, r: dict) -> dict:
    train_epoch = statistics.median(r["train_epoch_s"])
    return {"library": library, "seed": seed, "params": r["params"], "rows": r["train_rows"],
            "targets": r["train_targets"], "epochs": r["epochs"], "best_epoch": r["best_epoch"],
            "converged_s": round(r["fit_s"], 1), "train_epoch_s": round(train_epoch, 2),
            "train_seq_per_s": round(r["train_rows"] / train_epoch, 1),
            "train_targets_per_s": round(r["train_targets"] / train_epoch, 1),
            "valid_s": round(statistics.median(r["valid_epoch_s"]), 2),
            "eval_test_s": round(r["eval_test_median_s"], 2),
            "test_ndcg@10": round(r["test_ndcg@10"], 4), "test_recall@10": round(r["test_recall@10"], 4)}


def seconds_at_patience(row: dict, train_epochs: list[float], patience: int) -> float:
    """Training + validation seconds until a stopping rule with ``patience`` fires: epochs through
    ``best_epoch + patience`` (per-epoch training times, the median validation time per epoch). Puts
    runs made with different stopping rules on one footing (RecBole's ``stopping_step`` counts one
    epoch more than its name says; the peer now corrects for it, older results did not)."""
    n = min(len(train_epochs), row["best_epoch"] + patience)
    return sum(train_epochs[:n]) + n * row["valid_s"]


def summarise(rows: list[dict], per_epoch: dict | None = None, patience: int = 5) -> dict:
    """Ratios RecBole/xdtutor of the means over seeds, and the test NDCG@10 difference with its interval."""
    from xdtutor.stats import seed_difference

    by = {lib: [r for r in rows if r["library"] == lib] for lib in ("xdtutor", "RecBole")}

    def mean(lib: str, key: str) -> float:
        return statistics.fmean(r[key] for r in by[lib])

    ndcg = {lib: [r["test_ndcg@10"] for r in by[lib]] for lib in by}
    diff = seed_difference(ndcg["xdtutor"], ndcg["RecBole"])
    spread = {lib: (round(statistics.fmean(v), 4), round(statistics.stdev(v), 4) if len(v) > 1 else None)
              for lib, v in ndcg.items()}
    out = {
        "seeds": len(by["xdtutor"]),
        "time_to_converged_ratio": round(mean("RecBole", "converged_s") / mean("xdtutor", "converged_s"), 2),
        "train_epoch_ratio": round(mean("RecBole", "train_epoch_s") / mean("xdtutor", "train_epoch_s"), 2),
        "eval_speed_ratio": round(mean("RecBole", "eval_test_s") / mean("xdtutor", "eval_test_s"), 2),
        "test_ndcg@10_mean_sd": spread,
        "test_ndcg@10_diff": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in diff.items()},
        "reading": "ratios > 1: xdtutor is faster; test_ndcg@10_diff = xdtutor − RecBole",
    }
    if per_epoch:  # the same stopping rule on both sides, from the per-epoch times
        at = {lib: statistics.fmean(seconds_at_patience(r, per_epoch[f"{lib}/{r['seed']}"]["train_epoch_s"],
                                                        patience) for r in by[lib]) for lib in by}
        out["time_to_converged_ratio_same_patience"] = round(at["RecBole"] / at["xdtutor"], 2)
    return out


def resummarise(path: Path, patience: int = 5) -> dict:
    """Recompute ``summary`` of a written result from its rows and per-epoch details (no training)."""
    payload = json.loads(path.read_text())
    extra = {k: v for k, v in payload["summary"].items() if k == "protocol"}
    payload["summary"] = summarise(payload["rows"], payload["details"]["per_epoch"], patience) | extra
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return payload["summary"]


def main(argv: list[str] | None = None) -> dict:
    p = common.base_parser(__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--patience", type=int, default=5)
    p.add_argument("--eval-repeats", type=int, default=3)
    p.add_argument("--venv", default=None, help="RecBole's virtual environment (created when missing)")
    p.add_argument("--resummarise", type=Path, default=None,
                   help="recompute the summary of this result file from its rows and details, then exit")
    args = p.parse_args(argv)
    if args.resummarise:
        return {"summary": resummarise(args.resummarise, args.patience)}
    if not args.threads:
        args.threads = 1
    device = common.setup(args)
    if device.type != "cpu":
        raise SystemExit("bench_recbole compares CPU runs (RecBole's side runs on the CPU); use --device cpu")
    env = common.environment(device)
    from xdtutor.data.registry import dataset_dir
    from xdtutor.paths import cache_dir

    venv = Path(args.venv) if args.venv else cache_dir() / "recbole-venv"
    python = ensure_venv(venv)
    inter_dir = dataset_dir("scientific", common.data_dir())  # downloaded on first use
    rows, raw = [], {}
    for seed in args.seeds:
        raw[f"xdtutor/{seed}"] = run_xdtutor(seed, args, device)
        rows.append(row("xdtutor", seed, raw[f"xdtutor/{seed}"]))
        raw[f"RecBole/{seed}"] = run_recbole(python, inter_dir, seed, args)
        rows.append(row("RecBole", seed, raw[f"RecBole/{seed}"]))
        print(rows[-2], rows[-1], sep="\n", flush=True)
    env["recbole"] = raw[f"RecBole/{args.seeds[0]}"]["library"]
    per_epoch = {k: {"train_epoch_s": v["train_epoch_s"]} for k, v in raw.items()}
    summary = summarise(rows, per_epoch, args.patience) | {
        "protocol": "released Scientific split, full ranking, history not masked, test read once at the "
                    "best validation epoch"}
    details = {"recbole_settings": raw[f"RecBole/{args.seeds[0]}"]["settings"],
               "per_epoch": {k: {"train_epoch_s": [round(x, 2) for x in v["train_epoch_s"]],
                                 "valid_ndcg@10": v.get("valid_ndcg@10")} for k, v in raw.items()}}
    columns = ["library", "seed", "params", "rows", "targets", "epochs", "best_epoch", "converged_s",
               "train_epoch_s", "train_seq_per_s", "train_targets_per_s", "valid_s", "eval_test_s",
               "test_ndcg@10", "test_recall@10"]
    common.write_result("recbole", args, env, rows, summary, columns,
                        title="SASRec beside RecBole on Scientific (same data, threads and machine)",
                        details=details)
    return {"rows": rows, "summary": summary}


if __name__ == "__main__":
    main()
