"""A bigger language model as the item encoder: does all-mpnet-base-v2 change the text model?

Compares the same text model, trained to convergence with the same config and seeds, on item
embeddings from two encoders: the default all-MiniLM-L6-v2 (22 M parameters, 384-d) and
all-mpnet-base-v2 (110 M, 768-d; :mod:`xdtutor.encoder_packages`). Reads the per-user test metrics of
finished run folders (``per_user.csv``, ``results.json``), pairs them by seed and user, and reports the
difference in NDCG@10 with its interval over seeds and users (:func:`xdtutor.stats.paired_difference`).
It also times each encoder on ``--cost-items`` of the target's item texts (one CPU thread, no cache,
after a warm-up batch) — the encoding cost per 1,000 items.

With ``--transfer full_finetune`` (both sides' folders then hold that strategy too) it also asks
whether the bigger encoder changes the *transfer gain*: the strategy vs the text model on each side,
and the change of that gain between the encoders, user by user
(:func:`xdtutor.stats.difference_of_differences`).

Writes ``results/encoder_size.{json,md}``; a second target adds its section to the same files::

    python scripts/encoder_size.py --target food \\
        --small runs/k2f_conv_s0 runs/k2f_conv_s1 runs/k2f_conv_s2 \\
        --large runs/k2f_mpft_s0 runs/k2f_mpft_s1 runs/k2f_mpft_s2 --transfer full_finetune
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from xdtutor.encoders import EncoderConfig, TextEncoder, model_id
from xdtutor.experiment import build_config
from xdtutor.pipeline import collect
from xdtutor.provenance import provenance
from xdtutor.readings import difference_text
from xdtutor.stats import difference_of_differences, paired_difference
from xdtutor.utils import write_json

ROOT = Path(__file__).resolve().parents[1]


def runs_of(folders: list[Path], method: str) -> tuple[pd.DataFrame, list[dict], dict]:
    """Per-user rows and run records of ``method`` in ``folders``, and the first folder's results."""
    per_user, runs, first = [], [], None
    for folder in folders:
        results = json.loads((folder / "results.json").read_text())
        first = first or results
        runs += [r for r in results["runs"] if r["method"] == method]
        rows = pd.read_csv(folder / "per_user.csv")
        per_user.append(rows[rows["method"] == method])
    return pd.concat(per_user, ignore_index=True), runs, first


def transfer_section(small: list[Path], large: list[Path], transfer: str, text_rows: pd.DataFrame) -> dict:
    """The strategy ``transfer`` vs the text model on each side, and the change of that gain between sides.

    ``text_rows`` are the text model's per-user rows of both sides, labelled ``method = "small"`` and
    ``"large"`` (what :func:`main` compares first).
    """
    out: dict = {"method": transfer}
    frames = [text_rows]  # methods "small" and "large": the text model on each side
    for key, folders in (("small", small), ("large", large)):
        rows, runs, _ = runs_of(folders, transfer)
        if not runs:
            raise SystemExit(f"no {transfer} runs in {[str(f) for f in folders]}")
        out[key] = summary(runs)
        frames.append(rows.assign(method=f"{key}:{transfer}"))
    per_user = pd.concat(frames, ignore_index=True)
    for key in ("small", "large"):
        out[f"gain_{key}"] = paired_difference(per_user, f"{key}:{transfer}", key)
    out["change"] = difference_of_differences(per_user, (f"large:{transfer}", "large"),
                                              (f"small:{transfer}", "small"))
    return out


def encoding_cost(encoder: EncoderConfig, texts: list[str]) -> dict:
    """Seconds to encode ``texts`` on one CPU thread (after one warm-up batch), and the encoder's size."""
    torch.set_num_threads(1)
    enc = TextEncoder(encoder, device="cpu")
    enc.encode(texts[:encoder.batch_size], progress=False)  # warm-up
    t0 = time.perf_counter()
    enc.encode(texts, progress=False)
    seconds = time.perf_counter() - t0
    return {"encoder": model_id(encoder.model), "params": sum(p.numel() for p in enc.model.parameters()),
            "dim": enc.dim, "items": len(texts), "seconds": seconds,
            "seconds_per_1000_items": seconds * 1000 / len(texts),
            "load_avg_1min": round(os.getloadavg()[0], 2)}  # a shared machine: the ratio is the robust number


def summary(runs: list[dict]) -> dict:
    values = np.array([r["metrics"]["ndcg@10"] for r in runs])
    return {"seeds": sorted(r["seed"] for r in runs), "ndcg@10": float(values.mean()),
            "ndcg@10_std": float(values.std(ddof=1)) if len(values) > 1 else None,
            "recall@10": float(np.mean([r["metrics"]["recall@10"] for r in runs])),
            "valid_ndcg@10": float(np.mean([r["valid_ndcg@10"] for r in runs])),
            "best_epochs": [r["best_epoch"] for r in runs], "stop_reasons": [r["stop_reason"] for r in runs],
            "train_seconds": float(np.mean([r["train_seconds"] for r in runs])),
            "trainable_params": runs[0]["trainable_params"]}


def markdown(payload: dict) -> str:
    lines = ["# A bigger item encoder: all-MiniLM-L6-v2 vs all-mpnet-base-v2", "",
             "The same text model, config and seeds; only the frozen item-text encoder differs. "
             "Test NDCG@10 mean ± sample std over seeds; each difference has a 95 % interval: the wider, "
             "at each end, of a two-level bootstrap (seeds, then users, paired) and a t interval over the "
             "seeds (paired where the per-seed values were kept, else Welch; the JSON names which). "
             "Encoding: one CPU thread, no cache, "
             "on a shared machine (the JSON keeps the load average): read the ratio of the two, not the "
             "seconds.", ""]
    for target, sec in payload["targets"].items():
        d = sec["difference"]
        lines += [f"## {target}", "", sec["protocol_line"], "",
                  "| encoder | params | dim | encode s / 1,000 items | seeds | N@10 | R@10 | best epochs | "
                  "trainable params | train s |", "|---|---|---|---|---|---|---|---|---|---|"]
        for key in ("small", "large"):
            s, c = sec[key], sec["cost"][key]
            std = f" ± {s['ndcg@10_std']:.4f}" if s["ndcg@10_std"] is not None else " (n = 1)"
            lines.append(f"| {c['encoder']} | {c['params'] / 1e6:.0f} M | {c['dim']} | "
                         f"{c['seconds_per_1000_items']:.1f} | {len(s['seeds'])} | {s['ndcg@10']:.4f}{std} | "
                         f"{s['recall@10']:.4f} | {', '.join(map(str, s['best_epochs']))} | "
                         f"{s['trainable_params']:,} | {s['train_seconds']:.0f} |")
        lines += ["", f"mpnet − MiniLM: {difference_text(d)}.", ""]
        t = sec.get("transfer")
        if t:
            lines += [f"Transfer (`{t['method']}` from the source, each side with its own encoder) vs the same text "
                      "model trained on the target only:", ""]
            for key, name in (("small", "MiniLM"), ("large", "mpnet")):
                lines.append(f"- {name}: {t[key]['ndcg@10']:.4f} vs {sec[key]['ndcg@10']:.4f}, "
                             f"{difference_text(t['gain_' + key])}")
            lines += ["", f"Change of the transfer gain (mpnet − MiniLM, user by user): "
                      f"{difference_text(t['change'])}.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", required=True, help="section name, e.g. food")
    p.add_argument("--small", type=Path, nargs="+", required=True, help="run folders with the default encoder")
    p.add_argument("--large", type=Path, nargs="+", required=True, help="run folders with the bigger encoder")
    p.add_argument("--method", default="text")
    p.add_argument("--transfer", help="a strategy both sides ran (e.g. full_finetune): its gain over --method")
    p.add_argument("--cost-items", type=int, default=1000)
    p.add_argument("--measure-cost", action="store_true",
                   help="time the encoders again even if this target's section already holds a timing")
    p.add_argument("--out", type=Path, default=ROOT / "results" / "encoder_size")
    args = p.parse_args(argv)
    small_rows, small_runs, small = runs_of(args.small, args.method)
    large_rows, large_runs, large = runs_of(args.large, args.method)
    if small["encoder_id"] == large["encoder_id"]:
        raise SystemExit(f"both sides used {small['encoder_id']}")
    per_user = pd.concat([small_rows.assign(method="small"), large_rows.assign(method="large")], ignore_index=True)
    diff = paired_difference(per_user, "large", "small")
    config = build_config(large["config"])
    path = args.out.with_suffix(".json")
    payload = json.loads(path.read_text()) if path.is_file() else {"targets": {}}
    cost = payload["targets"].get(args.target, {}).get("cost")
    encoders = {side: model_id(build_config(r["config"]).encoder.model) for side, r in (("small", small),
                                                                                       ("large", large))}
    if args.measure_cost or not cost or {k: cost[k]["encoder"] for k in encoders} != encoders:
        # a fresh timing; otherwise the stored one is kept (a busy machine would distort a second one)
        texts = list(collect(config).target.domain.texts[:args.cost_items])
        cost = {"small": encoding_cost(build_config(small["config"]).encoder, texts),
                "large": encoding_cost(config.encoder, texts)}
    section = {"method": args.method, "protocol_line": large["protocol_line"],
               "folders": {"small": [str(f) for f in args.small], "large": [str(f) for f in args.large]},
               "small": summary(small_runs), "large": summary(large_runs), "difference": diff, "cost": cost}
    if args.transfer:
        section["transfer"] = transfer_section(args.small, args.large, args.transfer, per_user)
    payload["targets"][args.target] = section
    payload.update(provenance())
    write_json(path, payload)
    args.out.with_suffix(".md").write_text(markdown(payload))
    print(markdown(payload))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
