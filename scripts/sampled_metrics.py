"""Full vs sampled ranking on our own runs: does a 999-negative protocol change which method wins?

Reads the per-user full-ranking ranks of finished run folders (``per_user.csv``), computes each
user's *expected* metric under m sampled negatives (:mod:`xdtutor.sampled_metrics`), and, as a check,
draws one real realisation — LLMCDSR's 999 negatives, seed 42 — with each seed-``--realised-seed``
neural model of the first folder re-loaded from its best checkpoint. Writes
``results/sampled_metrics.{json,md}`` (chapter 4, section 4.7, glues them). Give the seeds' own run
folders (a combined folder keeps no models):

    XDTUTOR_DATA_DIR=../shared/data python scripts/sampled_metrics.py \
        runs/k2f_conv_s0 runs/k2f_conv_s1 runs/k2f_conv_s2
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import torch

from xdtutor.baselines import BUILDERS
from xdtutor.checkpoints import load_checkpoint
from xdtutor.evaluate import evaluate
from xdtutor.experiment import build_config
from xdtutor.models import Popularity
from xdtutor.pipeline import collect
from xdtutor.readings import mean_std
from xdtutor.provenance import provenance
from xdtutor.sampled_metrics import compare_protocols, expected_sampled_metrics, ranking_agreement
from xdtutor.utils import write_json

ROOT = Path(__file__).resolve().parents[1]
LLMCDSR = {"negatives": 999, "seed": 42}  # xhran2010/LLMCDSR evaluation.py: set_seed(42), 999 per user


def realised(folder: Path, seed: int, n_items: int) -> list[dict]:
    """One real 999-negative draw for each neural model of ``seed`` that ``folder`` kept."""
    results = json.loads((folder / "results.json").read_text())
    config = build_config(results["config"])
    prepared = collect(config)
    target = prepared.target
    sampled = target.protocol.with_(ranking="sampled", negatives=LLMCDSR["negatives"],
                                    negatives_seed=LLMCDSR["seed"])
    # The models whose architecture is a plain baseline's: full fine-tuning keeps the text model's shape.
    same_shape = {"popularity": None, "sasrec": "sasrec", "text": "text", "full_finetune": "text"}
    rows = []
    for name, kind in same_shape.items():
        if kind is None:
            model = Popularity(n_items).fit(target.train.values())
        elif (folder / "models" / f"seed{seed}" / name / "best.safetensors").is_file():
            model = BUILDERS[kind](n_items, config.model, prepared.target_emb)
            load_checkpoint(model, folder / "models" / f"seed{seed}" / name / "best.safetensors")
        else:
            continue
        full = evaluate(model, target.test, target.protocol, device="cpu")
        draw = evaluate(model, target.test, sampled, device="cpu")
        expect = expected_sampled_metrics(full.per_user["rank"].to_numpy(), n_items, LLMCDSR["negatives"])
        rows.append({"method": name, "seed": seed, "full_ndcg@10": full.metrics["ndcg@10"],
                     "sampled_ndcg@10": draw.metrics["ndcg@10"], "expected_ndcg@10": float(expect["ndcg@10"].mean()),
                     "sampled_hr@10": draw.metrics["hr@10"], "expected_hr@10": float(expect["hr@10"].mean()),
                     "protocol_line": sampled.describe()})
        print(f"{name}: full N@10 {full.metrics['ndcg@10']:.4f}  one 999-negative draw {draw.metrics['ndcg@10']:.4f}"
              f"  expected {rows[-1]['expected_ndcg@10']:.4f}")
    return rows


def markdown(tables: dict[str, pd.DataFrame], taus: dict, checks: list[dict], protocol_line: str) -> str:
    lines = ["# Full vs sampled ranking on Kitchen → Food (converged runs)", "",
             f"Full ranking: {protocol_line}", "",
             "Sampled columns: each user's *expected* metric when the target is ranked against m negatives "
             "drawn uniformly without replacement from the other Food items (`xdtutor.sampled_metrics`); "
             "mean over users, then mean ± sample std over seeds. Rank 1 = best under that protocol.", ""]
    for metric, table in tables.items():
        cols = [c for c in table.columns if not c.endswith("_std") and not c.startswith("rank_")]
        lines += [f"## {metric}", "", "| method | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        for method, row in table.iterrows():
            cells = [f"{mean_std(row[c], row[c + '_std'])} (#{int(row['rank_' + c])})" for c in cols]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines += ["", "Kendall's τ between the full and sampled orders: "
                  + ", ".join(f"m = {m}: {t:+.2f}" for m, t in taus[metric].items()), ""]
    if checks:
        lines += ["## One real draw (LLMCDSR's 999 negatives, seed 42) against the expectation", "",
                  "| method | seed | full N@10 | sampled N@10 (one draw) | expected | sampled HR@10 | expected |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {c['method']} | {c['seed']} | {c['full_ndcg@10']:.4f} | {c['sampled_ndcg@10']:.4f} | "
                  f"{c['expected_ndcg@10']:.4f} | {c['sampled_hr@10']:.4f} | {c['expected_hr@10']:.4f} |" for c in checks]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", type=Path, nargs="+", help="finished run folders (per_user.csv, results.json)")
    p.add_argument("--negatives", type=int, nargs="+", default=[99, 999])
    p.add_argument("--realised-seed", type=int, default=0, help="seed whose models get one real draw (-1 = none)")
    p.add_argument("--out", type=Path, default=ROOT / "results" / "sampled_metrics")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    per_user = pd.concat([pd.read_csv(f / "per_user.csv") for f in args.folders], ignore_index=True)
    first = json.loads((args.folders[0] / "results.json").read_text())
    target = first["dataset_stats"]["target"]
    n_items = int(first["dataset_stats"]["domains"][target]["items"])
    tables, taus = {}, {}
    for metric in ("ndcg@10", "hr@10"):
        tables[metric] = compare_protocols(per_user, n_items, tuple(args.negatives), metric)
        taus[metric] = {m: ranking_agreement(tables[metric], m) for m in args.negatives}
        print(metric, "\n", tables[metric].round(4).to_string())
    checks = realised(args.folders[0], args.realised_seed, n_items) if args.realised_seed >= 0 else []
    payload = {"what": "full vs sampled-negative ranking of the same trained models", "n_items": n_items,
               "negatives": args.negatives, "seeds": sorted(int(s) for s in per_user["seed"].unique()),
               "users": int(per_user.groupby(["method", "seed"]).size().iloc[0]),
               "protocol_line": first["protocol_line"], "folders": [str(f) for f in args.folders],
               "tables": {m: t.reset_index().to_dict(orient="records") for m, t in tables.items()},
               "kendall_tau": {m: {str(k): v for k, v in t.items()} for m, t in taus.items()},
               "realised": checks, **provenance()}
    write_json(args.out.with_suffix(".json"), payload)
    args.out.with_suffix(".md").write_text(markdown(tables, taus, checks, first["protocol_line"]))
    print(f"wrote {args.out}.json and .md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
