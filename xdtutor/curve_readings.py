"""The cold-start curve read: its points, the strategy against each baseline at each point, and a point
trained under several settings (e.g. batch sizes) with each model's setting chosen on validation.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Mapping, Sequence

import pandas as pd

from .readings import difference_text, seed_interval_text
from .stats import verdict

if TYPE_CHECKING:  # type hints only: xdtutor.results imports the training stack; a reading needs the file only
    from .results import Results


def cold_start_frame(res: Results) -> pd.DataFrame:
    """The cold-start rows as a frame: fraction, method, seed, train users, NDCG@10, R@10."""
    return pd.DataFrame([{"fraction": r["fraction"], "method": r["method"], "seed": r["seed"],
                          "train users": r["train_users"], "ndcg@10": r["metrics"]["ndcg@10"],
                          "recall@10": r["metrics"]["recall@10"]} for r in res.cold_start],
                        columns=["fraction", "method", "seed", "train users", "ndcg@10", "recall@10"])


def curve_points(cold: Results, full: Results | None = None) -> list[dict]:
    """The cold-start curve's rows, with a 100 % point from ``full`` when ``cold`` has none.

    ``full`` is the same experiment trained on all the target's training users (e.g. the converged
    main run): its rows of the curve's strategy and baselines are the point at fraction 1.0, so the
    curve ends where the main table is, without training those models twice.
    """
    rows = [dict(r) for r in cold.cold_start]
    if full is None or any(r["fraction"] == 1.0 for r in rows):
        return rows
    cs = cold.config.cold_start
    train_users = full.info.get("dataset_stats", {}).get("split", {}).get("train_users")
    return rows + [{"fraction": 1.0, "method": r["method"], "seed": r["seed"], "train_users": train_users,
                    "metrics": r["metrics"], "valid": r.get("valid", {}), "stop_reason": r.get("stop_reason"),
                    "epochs": None, "best_epoch": r.get("best_epoch")}
                   for r in full.rows if r["method"] in (cs.strategy, *cs.baselines)]


def curve_comparisons(cold: Results, full: Results | None = None, metric: str = "ndcg@10") -> pd.DataFrame:
    """At every point of the cold-start curve: the strategy against each baseline, with its interval.

    The comparisons at the curve's fractions are ``cold``'s stored ones; the 100 % point's are
    ``full``'s (see :func:`curve_points`). ``best`` marks the baseline with the higher mean validation
    ``metric`` at that fraction — the reference a reader would have picked without seeing test.

    Returns:
        One row per (fraction, baseline): ``fraction, vs, best, strategy, reference, diff, diff_low,
        diff_high, relative_low, relative_high, verdict``.
    """
    from .results import curve_key  # when called: see TYPE_CHECKING above

    strategy, baselines = cold.config.cold_start.strategy, cold.config.cold_start.baselines
    points = pd.DataFrame([{"fraction": r["fraction"], "method": r["method"], "valid": r.get("valid", {}).get(metric)}
                           for r in curve_points(cold, full)])
    full_point_from_main = not any(r["fraction"] == 1.0 for r in cold.cold_start)  # see curve_points
    out = []
    for fraction in sorted(points["fraction"].unique()):
        valid = points[points["fraction"] == fraction].groupby("method")["valid"].mean()
        valid = valid.reindex(list(baselines)).astype(float)
        best = valid.idxmax() if valid.notna().any() else None  # older files kept no validation score
        for base in baselines:
            if fraction == 1.0 and full_point_from_main:
                c = full.comparison(strategy, base, metric)
            else:
                c = cold.comparison(curve_key(fraction, strategy), curve_key(fraction, base), metric)
            if c is None:
                continue
            out.append({"fraction": fraction, "vs": base, "best": base == best, "strategy": c["mean_a"],
                        "reference": c["mean_b"], "diff": c["diff"], "diff_low": c["diff_low"],
                        "diff_high": c["diff_high"], "relative_low": c.get("relative_low"),
                        "relative_high": c.get("relative_high"), "verdict": verdict(c)})
    return pd.DataFrame(out, columns=["fraction", "vs", "best", "strategy", "reference", "diff", "diff_low",
                                      "diff_high", "relative_low", "relative_high", "verdict"])


def curve_batch_size(res: Results) -> int:
    """The batch size every model of ``res``'s cold-start curve trained with.

    Raises:
        ValueError: If the curve's models trained with different batch sizes (``per_method``).
    """
    cs = res.config.cold_start
    sizes = {cs.batch_size or res.config.for_method(m).train.batch_size for m in (cs.strategy, *cs.baselines)}
    if len(sizes) != 1:
        raise ValueError(f"{res.name}: the curve's models trained with different batch sizes {sorted(sizes)}")
    return sizes.pop()


def curve_setting_choice(variants: Mapping[str, Results], fraction: float,
                         metric: str = "ndcg@10") -> pd.DataFrame:
    """One point of the cold-start curve trained under several settings (one results file each, e.g. the
    batch size): every model's mean validation and test ``metric`` per setting, and the setting each
    model's validation score chooses.

    Args:
        variants: Setting label (e.g. ``"batch 256"``) -> the results file trained with it. Every file
            must draw the same curve (strategy and baselines) with the same seeds and training users at
            ``fraction``, and every row must have a validation score.
        fraction: The point (e.g. ``0.05``).
        metric: The metric read (validation chooses, test is reported).

    Returns:
        One row per (method, setting): ``method, setting, seeds, valid, test, chosen``; ``chosen`` marks
        each method's setting with the highest mean validation score (on a tie, the first of
        ``variants``); test never chooses.

    Raises:
        ValueError: If a file has no rows at ``fraction``, draws another curve, lacks a model or seed the
            others have, kept other training users, has a row without a validation score, or is not a run
            of the same experiment as every other (:func:`xdtutor.results.check_comparable`: e.g. another
            device or library versions, whose validation scores would choose the device, not the setting).
    """
    from .results import check_comparable  # when called: see TYPE_CHECKING above

    files = list(variants.values())
    for i, res in enumerate(files):  # every pair: a file without the encoder record passes any other
        for other in files[:i]:
            check_comparable(other, res)
    rows, curves = [], set()
    for label, res in variants.items():
        here = [r for r in res.cold_start if r["fraction"] == fraction]
        if not here:
            raise ValueError(f"{res.name} has no cold-start rows at fraction {fraction:g}")
        curves.add((res.config.cold_start.strategy, tuple(res.config.cold_start.baselines)))
        for r in here:
            valid = (r.get("valid") or {}).get(metric)
            if valid is None or not math.isfinite(valid):
                raise ValueError(f"{res.name}: {r['method']} seed {r['seed']} at {fraction:g} has no validation "
                                 f"{metric}, so no setting can be chosen for it")
            rows.append({"method": r["method"], "setting": label, "seed": r["seed"],
                         "users": r.get("train_users"), "valid": valid, "test": r["metrics"][metric]})
    if len(curves) != 1:
        raise ValueError(f"the files draw different curves (strategy, baselines): {sorted(curves)}")
    frame = pd.DataFrame(rows)
    seeds = frame.groupby(["setting", "method"], sort=False)["seed"].apply(lambda x: tuple(sorted(x)))
    if seeds.nunique() != 1 or len(seeds) != len(variants) * frame["method"].nunique():
        raise ValueError(f"every file needs every model with the same seeds; found {seeds.to_dict()}")
    users = frame.groupby(["seed"])["users"].nunique()
    if (users > 1).any():
        raise ValueError(f"the files kept different training users for seeds {list(users.index[users > 1])}")
    out = (frame.groupby(["method", "setting"], sort=False)
           .agg(seeds=("seed", "nunique"), valid=("valid", "mean"), test=("test", "mean")).reset_index())
    best = out.groupby("method", sort=False)["valid"].idxmax()  # first maximum: the earlier variant on a tie
    out["chosen"] = out.index.isin(best.to_numpy())
    return out


def curve_choice_reading(variants: Mapping[str, Results], fraction: float, metric: str = "ndcg@10",
                         vs: str | None = None) -> str:
    """The point's verdict with every model at the setting its validation score chose.

    The curve's strategy against ``vs`` (default: the baseline that is better on validation), each at its
    chosen setting
    (:func:`curve_setting_choice`). Both from one file: that file's stored paired interval over seeds and
    users (a Welch interval over its seeds where it stored none); from two files: a Welch interval over the seeds'
    test values, said as such (committed files keep no per-user rows to pair), after checking that the
    files are runs of one experiment (:func:`xdtutor.results.check_comparable`).

    Args:
        variants: Setting label -> results file, as for :func:`curve_setting_choice`.
        fraction: The point.
        metric: The metric read.
        vs: The baseline compared with; ``None``: the one with the higher validation score.

    Returns:
        ``"<strategy> (<setting>) vs <baseline> (<setting>, the better baseline on validation): <difference>"``
        (without "the better baseline…" when ``vs`` names it).

    Raises:
        ValueError: From :func:`curve_setting_choice`, or if the two files are not comparable.
    """
    head, c, where, reference = curve_choice_comparison(variants, fraction, metric, vs)
    if where is None:
        return head + difference_text(c)
    return head + (f"{c['diff']:+.4f} ({c['diff'] / reference:+.1%}); {where}; "
                   f"{seed_interval_text(c)}")


def _better_baseline(chosen: pd.DataFrame, baselines: Sequence[str]) -> str:
    """The baseline with the higher mean validation score at its chosen setting (the first on a tie);
    ``chosen``: :func:`curve_setting_choice`'s chosen rows indexed by method."""
    return max(baselines, key=lambda b: chosen.loc[b, "valid"])


def curve_choice_comparison(variants: Mapping[str, Results], fraction: float, metric: str = "ndcg@10",
                            vs: str | None = None) -> tuple[str, dict, str | None, float]:
    """What :func:`curve_choice_reading` reads: ``(head, comparison, where, reference)`` — the comparison
    dict (its verdict: :func:`xdtutor.stats.verdict`), ``where`` ``None`` for a file's stored paired
    interval or else how the Welch interval over the seeds was formed, and the baseline's mean test
    ``metric`` at its chosen setting.

    Raises:
        ValueError: From :func:`curve_setting_choice`, or if the two files are not comparable.
    """
    from .results import check_comparable, curve_key  # when called: see TYPE_CHECKING above
    from .stats import seed_difference

    table = curve_setting_choice(variants, fraction, metric)
    chosen = table[table["chosen"]].set_index("method")
    first = next(iter(variants.values()))
    strategy, baselines = first.config.cold_start.strategy, first.config.cold_start.baselines
    best = vs or _better_baseline(chosen, baselines)
    (sa, res_a), (sb, res_b) = ((chosen.loc[m, "setting"], variants[chosen.loc[m, "setting"]])
                                for m in (strategy, best))
    head = f"{strategy} ({sa}) vs {best} ({sb}{'' if vs else ', the better baseline on validation'}): "
    stored = res_a.comparison(curve_key(fraction, strategy), curve_key(fraction, best), metric)
    if res_a is res_b and stored:
        return head, stored, None, float(chosen.loc[best, "test"])
    check_comparable(res_a, res_b)

    def values(res: Results, method: str) -> list[float]:
        return [r["metrics"][metric] for r in sorted(res.cold_start, key=lambda r: r["seed"])
                if r["fraction"] == fraction and r["method"] == method]

    c = seed_difference(values(res_a, strategy), values(res_b, best))
    where = (f"files `{res_a.name}` vs `{res_b.name}`, no per-user pairing across files" if res_a is not res_b
             else f"not compared user by user in `{res_a.name}`")
    return head, c, where, float(chosen.loc[best, "test"])


def curve_choice_points(variants: Mapping[str, Sequence[Results]], metric: str = "ndcg@10") -> pd.DataFrame:
    """Every point of the cold-start curve trained under more than one setting, each model at the setting its
    validation score chose: the curve's strategy against each baseline (:func:`curve_choice_comparison`).

    Args:
        variants: Setting label -> the results files trained with it, e.g. ``{"batch 256": [curve],
            "batch 32": [file_of_5pct, file_of_10_and_20pct]}``. At each point, the file of each label that
            has rows there; a point with rows under one label only (not retrained) is left out.
        metric: The metric read (validation chooses, test is reported).

    Returns:
        One row per (point, baseline), points in increasing order: ``fraction, vs, best`` (the better
        baseline on validation), ``verdict, diff, diff_low, diff_high, relative_low, relative_high``
        (bounds over the baseline's mean test score where the comparison stores no relative ones) and
        ``paired`` (the interval pairs users within one file, else it is over seeds across files).

    Raises:
        ValueError: From :func:`curve_setting_choice`, or if one label has two files with rows at a point
            (which of them is the setting would be a guess).
    """
    points: dict[float, dict[str, Results]] = {}
    for label, files in variants.items():
        for res in files:
            for f in sorted({r["fraction"] for r in res.cold_start}):
                here = points.setdefault(f, {})
                if label in here:
                    raise ValueError(f"two files under {label!r} hold the point {f:g}: "
                                     f"{here[label].name} and {res.name}")
                here[label] = res
    rows = []
    for f, at in sorted(points.items()):
        if len(at) < 2:
            continue
        first = next(iter(at.values()))
        table = curve_setting_choice(at, f, metric)
        best = _better_baseline(table[table["chosen"]].set_index("method"), first.config.cold_start.baselines)
        for base in first.config.cold_start.baselines:
            _, c, where, reference = curve_choice_comparison(at, f, metric, vs=base)
            rows.append({"fraction": f, "vs": base, "best": base == best, "verdict": verdict(c),
                         "diff": c["diff"], "diff_low": c["diff_low"], "diff_high": c["diff_high"],
                         "relative_low": c.get("relative_low", c["diff_low"] / reference),
                         "relative_high": c.get("relative_high", c["diff_high"] / reference),
                         "paired": where is None})
    return pd.DataFrame(rows, columns=["fraction", "vs", "best", "verdict", "diff", "diff_low", "diff_high",
                                       "relative_low", "relative_high", "paired"])
