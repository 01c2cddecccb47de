"""Full-scale experiments of the transfer chapter; writes runs/<name>/ and results/<name>.{json,md}.

Run one experiment at a time (the machine is shared):

    python scripts/run_full_experiments.py kitchen_to_food   [--seeds 0 1 2] [--set key=value …]
    python scripts/run_full_experiments.py cold_start         # Kitchen->Food, fraction of target users
    python scripts/run_full_experiments.py sources_to_scientific
    python scripts/run_full_experiments.py kitchen_to_food_long --seeds 0   # longer training budget

``--set`` overrides go to the config as in ``xdtutor run`` (e.g. ``train.max_train_minutes=3`` to
fit a time budget; the config that ran is stored in the JSON). Source models are checkpointed
under runs/checkpoints, so ``cold_start`` reuses the source model of ``kitchen_to_food``.

Seeds in parallel (one process per core or GPU), then one table over all of them:

    python scripts/run_full_experiments.py kitchen_to_food --seeds 0 --out runs/k2f_s0 --part &
    python scripts/run_full_experiments.py kitchen_to_food --seeds 1 --out runs/k2f_s1 --part &
    wait
    python scripts/run_full_experiments.py kitchen_to_food --combine runs/k2f_s0 runs/k2f_s1

``results/<name>.md`` is regenerated each time; a hand-written section under a ``## Notes`` heading at
its end is kept (see ``keep_notes``) — update its numbers after a re-run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from xdtutor.pipeline import (Results, _jsonable, build_config, combine_results, flatten,  # noqa: E402
                              load_config, run_experiment)

EXPERIMENTS = {
    "kitchen_to_food": ("configs/kitchen_to_food.yaml", ["cold_start.fractions=[]"]),
    "cold_start": ("configs/kitchen_to_food.yaml",
                   ["strategies=[]", "baselines=[]", "cold_start.fractions=[0.05, 0.1, 0.2, 0.5, 1.0]"]),
    "sources_to_scientific": ("configs/sources_to_scientific.yaml", []),
    # Does the training budget decide the Kitchen->Food ranking? The headline strategy and the baselines
    # with 60 epochs and a 25-min cap per model instead of 40 epochs / 6 min (same source checkpoint).
    "kitchen_to_food_long": ("configs/kitchen_to_food.yaml",
                             ["name=kitchen_to_food_long", "cold_start.fractions=[]", "strategies=[full_finetune]",
                              "baselines=[popularity, sasrec, text]", "train.epochs=60", "train.max_train_minutes=25"]),
}

UNISREC = {  # UniSRec paper (KDD 2022) Table 2, Scientific; see /work/shared/reference/anchors.md
    "SASRec (ID)": {"recall@10": .1080, "ndcg@10": .0553, "recall@50": .2042, "ndcg@50": .0760},
    "ZESRec (zero-shot text)": {"recall@10": .0851, "ndcg@10": .0475, "recall@50": .1746, "ndcg@50": .0670},
    "UniSRec text only": {"recall@10": .1188, "ndcg@10": .0641, "recall@50": .2394, "ndcg@50": .0903},
    "UniSRec text + ID": {"recall@10": .1235, "ndcg@10": .0634, "recall@50": .2473, "ndcg@50": .0904},
}


def config_changes(config, reference) -> list[str]:
    """``key=value`` for every config entry that differs from ``reference`` (dotted keys)."""
    a, b = flatten(config.to_dict()), flatten(reference.to_dict())
    return [f"{k}={json.dumps(a[k])}" for k in sorted(a) if a[k] != b.get(k)]


NOTES_HEADING = "## Notes"


def keep_notes(new: str, old: str | None) -> str:
    """``new`` followed by the hand-written notes of ``old`` (from its first ``## Notes`` heading on).

    The generated part of ``results/<name>.md`` is rewritten on every run or ``--combine``; the notes a
    person added under a ``## Notes…`` heading are carried over verbatim, so re-combining never loses
    them (they may then need updating: the numbers above them changed).
    """
    if not old:
        return new
    lines = old.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(NOTES_HEADING)), None)
    if start is None:
        return new
    return new.rstrip("\n") + "\n\n" + "\n".join(lines[start:]).rstrip("\n") + "\n"


def markdown(name: str, results, extra_sets: list[str]) -> str:
    d = results.to_dict()
    lines = [f"# {name}", "",
             f"- date: {d['date']}; device: {d['device']} ({d['device_name']}, {d['torch_threads']} torch threads, "
             f"shared 2-core machine); wall time: {d['wall_seconds']:.0f} s"
             + (f" ({len(d['parts'])} parts side by side, {d['compute_seconds']:.0f} s summed)" if d.get("parts") else ""),
             f"- seeds: {d['seeds']}; scale: {d['scale']}; overrides: {' '.join(extra_sets) or '-'}",
             f"- {d['protocol_line']}", ""]
    if d["source_pretraining"]:
        lines.append("Source pretraining: " + "; ".join(
            f"seed {r['seed']} {'+'.join(r['sources'])}: valid NDCG@10 {r['valid_ndcg@10']:.4f} "
            f"(best epoch {r['best_epoch']}, {r['train_seconds']:.0f} s)" for r in d["source_pretraining"]))
        lines.append("")
    s = results.summary()
    if not s.empty:
        lines += ["| method | kind | R@10 | N@10 | R@50 | N@50 | N@10 overlap | N@10 target-only | trainable / total params | train s |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for _, r in s.iterrows():
            pm = lambda m: f"{r[m]:.4f} ± {r[m + '_std']:.4f}"  # noqa: E731
            lines.append(f"| {r['method']} | {r['kind']} | {pm('recall@10')} | {pm('ndcg@10')} | {pm('recall@50')} | "
                         f"{pm('ndcg@50')} | {r.get('ndcg@10[overlap]', float('nan')):.4f} | "
                         f"{r.get('ndcg@10[target_only]', float('nan')):.4f} | "
                         f"{int(r['trainable_params']):,} / {int(r['total_params']):,} | {r['train_seconds']:.0f} |")
        lines.append("")
    g = d.get("gain")
    if g:
        lines.append(f"Best transfer ({g['best_transfer']}) vs best target-only baseline ({g['best_baseline']}): "
                     f"NDCG@10 {g['transfer']:.4f} vs {g['baseline']:.4f} = **{g['relative_gain']:+.1%}**.")
        lines.append("")
    if d["significance"]:
        lines.append("Paired t-test on per-user NDCG@10 (mean over seeds) vs the best baseline: " + "; ".join(
            f"{x['method']} Δ={x['mean_diff']:+.4f} p={x['p_value']:.3g}" for x in d["significance"]))
        lines.append("")
    if "text" in d["methods"] and d["significance"] and d["significance"][0]["vs"] != "text":
        lines.append("The same against the text target-only baseline (same architecture, no source): " + "; ".join(
            f"{x['method']} Δ={x['mean_diff']:+.4f} p={x['p_value']:.3g}" for x in results.paired_tests(vs="text")))
        lines.append("")
    if d["cold_users"]:
        lines += ["Cold users (overlapping test users, target history hidden; EMCDR mapping of source user reps):", "",
                  "| method | seed | users | R@10 | N@10 | trainable params |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['method']} | {r['seed']} | {r['users']} | {r['metrics']['recall@10']:.4f} | "
                  f"{r['metrics']['ndcg@10']:.4f} | {r['trainable_params']:,} |" for r in d["cold_users"]]
        lines.append("")
    if d["cold_start"]:
        lines += ["Cold start (fraction of target training users kept; valid/test unchanged):", "",
                  "| fraction | method | seed | train users | R@10 | N@10 |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['fraction']:.0%}{' (' + r['from'] + ')' if r.get('from') else ''} | {r['method']} | "
                  f"{r['seed']} | {r['train_users']} | "
                  f"{r['metrics']['recall@10']:.4f} | {r['metrics']['ndcg@10']:.4f} |" for r in d["cold_start"]]
        lines.append("")
    diag = {k: v for k, v in d["diagnostics"].items() if k != "matrix"}
    if diag:
        lines.append("Domain similarity of the catalogues' text embeddings (negative-transfer diagnostic): " + "; ".join(
            f"{k}: " + ", ".join(f"{m} {v:.3f}" for m, v in x.items()) for k, x in diag.items()))
        lines.append("")
    if name == "sources_to_scientific":
        lines += ["Published (UniSRec, KDD 2022, Table 2; pretrained on 5 other Amazon categories, 1.36 M users; "
                  "same split and protocol, BERT-base features):", "",
                  "| model | R@10 | N@10 | R@50 | N@50 |", "|---|---|---|---|---|"]
        lines += [f"| {k} | {v['recall@10']:.4f} | {v['ndcg@10']:.4f} | {v['recall@50']:.4f} | {v['ndcg@50']:.4f} |"
                  for k, v in UNISREC.items()]
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("experiment", choices=sorted(EXPERIMENTS))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", default=None, help="run folder (default runs/<experiment>)")
    p.add_argument("--part", action="store_true",
                   help="one part of a parallel run: write only the run folder, not results/ (see --combine)")
    p.add_argument("--combine", nargs="+", metavar="RUN_DIR", default=None,
                   help="combine finished run folders (same config, different seeds) into results/")
    p.add_argument("--reuse-full", metavar="RESULTS_JSON", default=None,
                   help="cold_start: take the 100%% point from this finished kitchen_to_food results file "
                        "(same config and seed give the same training) instead of training it again")
    args = p.parse_args(argv)
    if args.part and not args.out:
        p.error("--part needs --out (parallel parts must not share a run folder)")
    if args.combine and (args.part or args.set or args.reuse_full or args.seeds != [0, 1, 2]):
        p.error("--combine takes only run folders (and --out): the seeds and settings come from them")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("MPLBACKEND", "Agg")
    path, sets = EXPERIMENTS[args.experiment]
    t0 = time.time()
    if args.combine:
        results = combine_results([Results.load(d) for d in args.combine])
        expected = load_config(ROOT / path, ["scale=full", *sets, f"seeds={list(results.config.seeds)}"])
        defining = {s.split("=", 1)[0] for s in sets} | {"name", "scale"}
        wrong = [c.split("=", 1)[0] for c in config_changes(results.config, expected)
                 if c.split("=", 1)[0] in defining]
        if wrong:
            raise SystemExit(f"--combine: these runs are not the {args.experiment} experiment (they differ in {wrong})")
        sets = config_changes(results.config, load_config(ROOT / path, ["scale=full", f"seeds={list(results.config.seeds)}"]))
    else:
        sets = ["scale=full", f"seeds={args.seeds}", "checkpoint_dir=runs/checkpoints", *sets, *args.set]
        config = load_config(ROOT / path, sets)
        reuse = None
        if args.reuse_full:
            reuse = json.loads(Path(args.reuse_full).read_text())
            stages = ("data", "encoder", "model", "pretrain", "train", "transfer", "source_eval_users")
            changed = [c.split("=", 1)[0] for c in config_changes(config, build_config(reuse["config"]))
                       if c.split(".", 1)[0].split("=", 1)[0] in stages]
            if changed:
                raise SystemExit(f"--reuse-full {args.reuse_full}: config differs in {changed}; cannot reuse its runs")
            config = dataclasses.replace(config, cold_start=dataclasses.replace(
                config.cold_start, fractions=tuple(f for f in config.cold_start.fractions if f < 1.0)))
        results = run_experiment(config)
        if reuse is not None:
            wanted = {(m, s) for m in (config.cold_start.strategy, *config.cold_start.baselines) for s in config.seeds}
            found = {(r["method"], r["seed"]): r for r in reuse["runs"] if (r["method"], r["seed"]) in wanted}
            missing = sorted(wanted - set(found))
            if missing:
                raise SystemExit(f"--reuse-full {args.reuse_full}: no run for (method, seed) {missing}")
            n_train = (reuse.get("dataset_stats") or {}).get("split", {}).get("train_users")
            for (method, seed), r in sorted(found.items()):
                results.cold_start.append({"fraction": 1.0, "method": method, "seed": seed,
                                           "train_users": n_train, "metrics": r["metrics"],
                                           "from": f"{reuse.get('name', '?')} {Path(args.reuse_full).parent.name}"})
    out = Path(args.out or ROOT / "runs" / args.experiment)
    results.save(out)
    print(results.table())
    if args.part:
        print(f"wrote {out} (a part; combine with --combine) in {time.time() - t0:.0f} s")
        return 0
    res_dir = ROOT / "results"
    res_dir.mkdir(exist_ok=True)
    d = results.to_dict()
    (res_dir / f"{args.experiment}.json").write_text(json.dumps(_jsonable(d), indent=1))
    md = res_dir / f"{args.experiment}.md"
    old = md.read_text() if md.exists() else None
    md.write_text(keep_notes(markdown(args.experiment, results, sets), old))
    print(f"wrote {out} and results/{args.experiment}.{{json,md}} in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
