"""Reading committed experiment results (``results/*.json``) for the book and for people.

The chapters that show full-scale numbers do not re-run anything: they load the JSON files that
:mod:`xdtutor.pipeline` wrote (``Results.to_dict``) and say *how* those numbers were obtained —
device, date, seeds, and whether any training was stopped by its time budget rather than by early
stopping. These helpers are the single place that logic lives.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

METRICS = ("recall@10", "ndcg@10", "recall@50", "ndcg@50")


def find_results(name: str, scale: str = "full", root: str | Path = "results") -> list[tuple[Path, dict]]:
    """Every results file of experiment ``name`` at ``scale`` under ``root``, newest first.

    Files that are not JSON, or not a results dict (no ``methods``), are skipped.

    Returns:
        ``[(path, results_dict), …]`` sorted by the run's ``date``, newest first.
    """
    found = []
    for path in sorted(Path(root).glob("**/*.json")):
        try:
            res = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(res, dict) and res.get("name") == name and res.get("scale") == scale and "methods" in res:
            found.append((str(res.get("date", "")), path, res))
    return [(p, r) for _, p, r in sorted(found, key=lambda x: x[0], reverse=True)]


def method_table(res: dict, metrics: tuple[str, ...] = METRICS) -> pd.DataFrame:
    """Mean and std over seeds per method (columns ``<metric>``, ``<metric>_std``), best first per kind."""
    rows = []
    for name, m in res.get("methods", {}).items():
        row: dict[str, Any] = {"method": name, "kind": m["kind"], "seeds": m["seeds"]}
        for k in metrics:
            row[k] = m["metrics"].get(k, float("nan"))
            row[k + "_std"] = m["std"].get(k, float("nan"))
        row["trainable params"] = m["trainable_params"]
        row["train s"] = m["train_seconds"]
        rows.append(row)
    if not rows:
        return pd.DataFrame(columns=["method", "kind", "seeds", *metrics])
    return pd.DataFrame(rows).sort_values(["kind", "ndcg@10"], ascending=[True, False]).reset_index(drop=True)


def gain_line(res: dict) -> str:
    """Markdown: best transfer vs best target-only baseline on NDCG@10, with the relative gain."""
    g = res.get("gain")
    if not g:
        return "no gain computed"
    return (f"best transfer **{g['best_transfer']}** vs best baseline **{g['best_baseline']}**: NDCG@10 "
            f"{g['transfer']:.4f} vs {g['baseline']:.4f} (**{g['relative_gain']:+.1%}**)")


def stop_reasons(res: dict) -> pd.DataFrame:
    """Why every training of a run ended: one row per (what, seed) with ``stop_reason``.

    ``what`` is ``"source"`` for pretraining and the method name for target trainings; methods
    without training (popularity, zero-shot) are left out.
    """
    rows = []
    for key, h in (res.get("histories") or {}).items():
        what, _, seed = key.rpartition("/")
        if not isinstance(h, dict) or not h.get("epochs"):
            continue
        rows.append({"what": what, "seed": int(seed) if seed.isdigit() else seed,
                     "stop_reason": h.get("stop_reason") or "?", "epochs": len(h["epochs"]),
                     "best_epoch": h.get("best_epoch"), "seconds": float(sum(h.get("epoch_seconds", [])))})
    return pd.DataFrame(rows, columns=["what", "seed", "stop_reason", "epochs", "best_epoch", "seconds"])


def budget_note(res: dict) -> str | None:
    """A Markdown warning when any training of the run was stopped by its time cap, else ``None``.

    A time cap (``max_train_minutes``) that never fired changes nothing; one that did means that
    model did not finish early stopping, and its numbers measure the budget as much as the method.
    """
    reasons = stop_reasons(res)
    cfg = res.get("config", {})
    caps = {s: (cfg.get(s) or {}).get("max_train_minutes") for s in ("pretrain", "train")}
    if not any(caps.values()):
        return None
    unknown = reasons.empty or (reasons["stop_reason"] == "?").any()
    capped = reasons[reasons["stop_reason"] == "time_limit"]
    if capped.empty and not unknown:
        return None
    if capped.empty:  # caps were set but the file does not say what stopped the trainings
        return (f"> **Time caps were set** (source pretraining {caps['pretrain']} min, each target model "
                f"{caps['train']} min) and this file does not record what stopped each training, so some "
                "models may not have converged.")
    names = ", ".join(f"{w} (seed {s})" for w, s in zip(capped["what"], capped["seed"]))
    return (f"> **Time-capped:** {len(capped)} of {len(reasons)} trainings stopped at their time cap "
            f"(source pretraining {caps['pretrain']} min, each target model {caps['train']} min) before early "
            f"stopping ended them: {names}. Those numbers measure the compute budget as much as the method.")


def gain_vs(res: dict, baseline: str = "text", metric: str = "ndcg@10") -> dict | None:
    """Best transfer method vs one named baseline (e.g. the same architecture trained on the target only).

    Returns:
        ``{"best_transfer", "transfer", "baseline", "baseline_value", "relative_gain"}`` or ``None``
        when the baseline or every transfer method is missing.
    """
    methods = res.get("methods", {})
    transfer = {k: v["metrics"][metric] for k, v in methods.items() if v["kind"] == "transfer" and metric in v["metrics"]}
    if baseline not in methods or not transfer:
        return None
    best = max(transfer, key=transfer.get)
    base = methods[baseline]["metrics"][metric]
    return {"best_transfer": best, "transfer": transfer[best], "baseline": baseline, "baseline_value": base,
            "relative_gain": transfer[best] / base - 1.0 if base else float("nan")}



def gain_vs_line(res: dict, baseline: str = "text") -> str:
    """Markdown: best transfer vs baseline ``baseline`` on NDCG@10 (:func:`gain_vs`), with the relative gain."""
    g = gain_vs(res, baseline)
    if g is None:
        return f"no {baseline} baseline in this run"
    return (f"best transfer **{g['best_transfer']}** NDCG@10 {g['transfer']:.4f} vs {baseline} target-only "
            f"{g['baseline_value']:.4f} (**{g['relative_gain']:+.1%}**)")

def cold_user_gain(res: dict, metric: str = "ndcg@10") -> dict | None:
    """Mean over seeds of the best EMCDR mapping vs popularity on cold users (``None`` without them)."""
    rows = pd.DataFrame([{"method": r["method"], "seed": r["seed"], metric: r["metrics"][metric]}
                         for r in res.get("cold_users", [])])
    if rows.empty or "popularity" not in set(rows["method"]):
        return None
    mean = rows.groupby("method")[metric].mean()
    mappings = mean.drop("popularity")
    if mappings.empty:
        return None
    best = str(mappings.idxmax())
    return {"best_mapping": best, "mapping": float(mappings[best]), "popularity": float(mean["popularity"]),
            "relative_gain": float(mappings[best] / mean["popularity"] - 1.0), "seeds": int(rows["seed"].nunique())}


def budget_table(runs: dict[str, dict], seed: int = 0, metric: str = "ndcg@10") -> pd.DataFrame:
    """The same methods and seed under different training budgets, side by side.

    Args:
        runs: ``{label: results_dict}``, e.g. ``{"6 min": main_run, "25 min": long_run}``; every run
            must hold ``seed`` (a combined multi-seed run contributes only that seed's rows).
        seed: which seed's trainings to compare (budgets are compared seed by seed, not as means).
        metric: the test metric to show.

    Returns:
        One row per method present in every run, columns ``"<metric> (<label>)"``,
        ``"epochs (<label>)"`` and ``"stop (<label>)"`` (the recorded stop reason; ``-`` for methods
        that do not train, e.g. popularity).
    """
    frames = []
    for label, res in runs.items():
        rows = {r["method"]: r["metrics"][metric] for r in res.get("runs", []) if r.get("seed") == seed}
        if not rows:
            raise KeyError(f"run {label!r} has no rows for seed {seed}")
        hist = res.get("histories") or {}
        frames.append(pd.DataFrame({
            f"{metric} ({label})": pd.Series(rows),
            f"epochs ({label})": pd.Series({m: len(hist.get(f"{m}/{seed}", {}).get("epochs", [])) for m in rows}),
            f"stop ({label})": pd.Series({m: hist.get(f"{m}/{seed}", {}).get("stop_reason") or "-" for m in rows}),
        }))
    return pd.concat(frames, axis=1, join="inner").rename_axis("method")
