"""Widen the intervals stored in committed results files to an interval over their seeds.

Every difference in ``results/`` was first published with a two-level percentile bootstrap (seeds, then
users, paired) alone, which understates the seeds' share of the variance with three seeds
(:mod:`xdtutor.stats`). Now an interval is the wider, at each end, of that bootstrap and a paired *t*
interval over the seeds. The committed files keep no per-user rows, so the bootstrap cannot be redrawn,
but the *t* interval needs only each seed's difference, which the rows of a results file keep
(:meth:`xdtutor.results.Results.with_seed_intervals`). This rewrites every stored copy of each comparison
(``comparisons`` and ``gain.comparison``) in place, and ``encoder_size.json``'s intervals from the
results files its runs were published as (Scientific's mpnet runs were not published: a Welch interval
from each side's stored mean and spread over the seeds). Idempotent.

    python scripts/seed_intervals.py           # rewrite results/*.json (then render_results.py, render_docs.py)
    python scripts/seed_intervals.py --check   # exit 1 and name the files still to widen
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from xdtutor.results import Results
from xdtutor.stats import BOOTSTRAP, welch_interval, widen, with_seed_t
from xdtutor.utils import write_json

ROOT = Path(__file__).resolve().parents[1]

#: encoder_size.json's food runs as published: the MiniLM side (runs/k2f_conv_s*) and the mpnet side
#: (runs/k2f_mpft_s*); with_seed_t checks that their per-seed values give the stored differences.
ENCODER_FILES = {"food": ("kitchen_to_food_converged", "kitchen_to_food_mpnet_transfer")}


def widened_results(path: Path) -> dict | None:
    """``path``'s JSON with its comparisons widened, or ``None`` for a file that stores no intervals
    (format 1: p-values only) or is not a results file."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict) or "comparisons" not in raw or "runs" not in raw:
        return None
    new = Results.load(path).with_seed_intervals().comparisons
    by_key = {_key(c): w for c, w in zip(raw["comparisons"], new)}
    return _replace_copies(raw, by_key)


def widened_encoder_size(path: Path, folder: Path) -> dict:
    """``encoder_size.json`` with each target's differences widened (see the module docstring)."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    for target, sec in raw["targets"].items():
        if target in ENCODER_FILES:
            small, large = (Results.load(folder / f"{name}.json") for name in ENCODER_FILES[target])
            text = {side: res.seed_values(sec["method"]) for side, res in (("small", small), ("large", large))}
            seeds = sorted(text["small"])
            sec["difference"] = with_seed_t(sec["difference"], [text["large"][s] - text["small"][s] for s in seeds])
            t = sec.get("transfer")
            if t:
                moved = {side: res.seed_values(t["method"]) for side, res in (("small", small), ("large", large))}
                gain = {side: {s: moved[side][s] - text[side][s] for s in seeds} for side in ("small", "large")}
                for side in ("small", "large"):
                    t[f"gain_{side}"] = with_seed_t(t[f"gain_{side}"], [gain[side][s] for s in seeds])
                t["change"] = with_seed_t(t["change"], [gain["large"][s] - gain["small"][s] for s in seeds])
        else:  # only each side's mean and sample std over the seeds were kept: Welch
            a, b, d = sec["large"], sec["small"], sec["difference"]
            if not math.isclose(a["ndcg@10"] - b["ndcg@10"], d["diff"], rel_tol=1e-6, abs_tol=1e-9):
                raise ValueError(f"{path.name}: {target}'s stored means do not give its difference")
            low, high = welch_interval(a["ndcg@10"] - b["ndcg@10"], a["ndcg@10_std"] ** 2, len(a["seeds"]),
                                       b["ndcg@10_std"] ** 2, len(b["seeds"]), d.get("level", 0.95))
            sec["difference"] = widen(d, low, high, seed_interval="welch-t over seeds (per-seed values not kept)",
                                      interval=f"the wider at each end of a {BOOTSTRAP} and a Welch t interval "
                                               "over the seeds")
    return raw


def _key(c: dict) -> tuple:
    return c.get("method"), c.get("vs"), c.get("metric", "ndcg@10"), round(float(c.get("diff") or 0.0), 12)


def _replace_copies(node, by_key: dict):
    """Every dict in ``node`` that is a stored comparison replaced by its widened copy."""
    if isinstance(node, dict):
        if "diff_low" in node and _key(node) in by_key:
            return by_key[_key(node)]
        return {k: _replace_copies(v, by_key) for k, v in node.items()}
    if isinstance(node, list):
        return [_replace_copies(v, by_key) for v in node]
    return node


def _close(a, b) -> bool:
    """Equal up to the last digits of a float: a freshly run file's per-seed differences come from its
    per-user rows, this script's from the rows' means, and the two sums round differently."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and (isinstance(a, float) or isinstance(b, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(a) and math.isnan(b))
    return a == b


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only name the files that are not widened yet")
    parser.add_argument("--folder", type=Path, default=ROOT / "results")
    args = parser.parse_args(argv)
    stale = []
    for path in sorted(args.folder.glob("*.json")):
        new = (widened_encoder_size(path, args.folder) if path.name == "encoder_size.json"
               else widened_results(path))
        if new is None or _close(new, json.loads(path.read_text(encoding="utf-8"))):
            continue
        stale.append(path.name)
        if not args.check:
            write_json(path, new)
    if stale:
        print(("not widened yet: " if args.check else "widened: ") + ", ".join(stale))
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
