"""Rendering :class:`~xdtutor.results.Results` for people: text, Markdown and figures.

Nothing here computes a number; every value comes from the results model (:mod:`xdtutor.results`)
and published numbers from :mod:`xdtutor.published`. ``xdtutor run`` prints :func:`text_table`,
:func:`write_run` writes a run folder (data, figures, ``report.md``), and ``xdtutor publish``
writes ``results/<name>.{json,md}`` with :func:`markdown`, keeping a hand-written ``## Notes``
section (:func:`keep_notes`).
"""

from __future__ import annotations

import math
import re
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from . import plots
from .published import METRICS as PUBLISHED_METRICS
from .published import published_table, published_value, sources
from .stats import METHOD as STATS_METHOD
from .stats import value_difference, verdict
from .utils import atomic_write, format_seconds, write_json

#: What a ``TrainConfig.negatives`` setting puts in the softmax, in words (the setup tables).
NEGATIVES_SAID = {"all": "all items", "in_batch": "the batch",
                  "per_domain": "the target's items for a target next item, the batch's for a source one"}

if TYPE_CHECKING:  # the results model is rendered, never imported at run time (it saves through us)
    from .results import Results

NOTES_HEADING = "## Notes"


def mean_std(mean: float, std: float, digits: int = 4) -> str:
    """``"0.0123 ± 0.0004"``; ``"0.0123 (n = 1)"`` when the spread is undefined (one seed); ``"0.0123 ± 0"``
    when every seed gave the same value (e.g. popularity, which no seed changes); ``"0.0123 ± <0.0001"``
    for a spread that rounds to zero — never ``± 0.0000``."""
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{mean:.{digits}f} (n = 1)"
    if std <= 1e-12 * max(1.0, abs(mean)):  # equal values; a std of them may come out as ~1e-18
        return f"{mean:.{digits}f} ± 0"
    if std < 0.5 * 10 ** -digits:  # a spread that rounds to zero is not zero
        return f"{mean:.{digits}f} ± <{10 ** -digits:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def seed_interval_text(c: dict) -> str:
    """``"95% interval over 3 seeds [low, high]: verdict"`` for a :meth:`Results.seed_difference` result."""
    if math.isnan(c["diff_low"]):
        return "one seed: no interval, so no verdict on the difference"
    return (f"{c['level']:.0%} interval over {c['seeds']} seeds (seed variation only) "
            f"[{c['diff_low']:+.4f}, {c['diff_high']:+.4f}]: {verdict(c)}")


def interval_text(c: dict | None) -> str:
    """How sure a difference is, in words: its 95 % interval, or that no interval was computed."""
    if not c:
        return "no interval computed"
    if c.get("diff_low") is None:  # format-1 files: a paired t-test over users, seeds ignored
        return f"an earlier run's paired t-test over users only (p = {c['p_value']:.2g}), no interval"
    if verdict(c) == "no interval":  # e.g. one seed of a seeds-only interval
        return "no interval (one seed), so no verdict on the difference"
    level = f"{c['level']:.0%}"
    if _finite(c.get("relative_low")):
        relative = f", relative [{c['relative_low']:+.1%}, {c['relative_high']:+.1%}]"
    elif " − " in str(c.get("method", "")):  # a change of a gain (stats.difference_of_differences names
        relative = ""                         # its sides "a − b"): no reference to divide by
    else:
        relative = ", no relative interval (the reference is 0)"
    span = (f"{level} interval of the difference [{c['diff_low']:+.4f}, {c['diff_high']:+.4f}]"
            f"{relative}; {c['seeds']} seed(s), {c['n_users']:,} users")
    if verdict(c) == "no detectable difference":
        return f"no detectable difference; the {span}"
    return f"{verdict(c)}; {span}"


def difference_text(c: dict) -> str:
    """A stored difference in one line: its value, relative where it has one, and :func:`interval_text`
    — e.g. ``"-0.0029; lower; 95% interval of the difference [-0.0052, -0.0005]; 3 seed(s), 8,442 users"``
    for a change of a gain (:func:`~xdtutor.stats.difference_of_differences`, no relative values)."""
    relative = f" ({c['relative']:+.1%})" if _finite(c.get("relative")) else ""
    return f"{c['diff']:+.4f}{relative}; {interval_text(c)}"


def _finite(x) -> bool:
    """A number that is neither missing (``None``, a JSON ``null``) nor NaN."""
    return x is not None and math.isfinite(x)


def comparison_text(res: Results, a: str, b: str, metric: str = "ndcg@10") -> str:
    """How sure ``a − b`` is, in words: the stored interval over seeds and users, or — for a file
    without per-user rows (format 1) — the Welch interval over the seeds' test means, said as such
    (never a bare p-value)."""
    return stored_comparison_text(res, res.comparison(a, b, metric) or {"method": a, "vs": b, "metric": metric})


def stored_comparison_text(res: Results, c: dict) -> str:
    """:func:`comparison_text` of one of ``res``'s stored comparisons ``c``: its interval, or the seeds'
    interval where the file kept only a p-value (format 1)."""
    if c.get("diff_low") is not None:
        return interval_text(c)
    # a file whose other comparisons have intervals over users simply did not make this one
    why = ("not compared user by user in this file; over the seeds' means: "
           if any(x.get("diff_low") is not None for x in res.comparisons)
           else "an earlier run that kept no per-user results: ")
    return why + seed_interval_text(res.seed_difference(c["method"], c["vs"], c.get("metric", "ndcg@10")))


def across_files_text(res_a: Results, a: str, res_b: Results, b: str, metric: str = "ndcg@10") -> str:
    """:func:`comparison_text` for ``a`` of one results file against ``b`` of another run of the same
    experiment (:func:`xdtutor.results.seed_difference_across`): the relative difference and the interval
    over the seeds' test means, said as such (the files keep no per-user rows to pair)."""
    from .results import seed_difference_across  # not at import time: results saves through this module

    c = seed_difference_across(res_a, a, res_b, b, metric)
    relative = f"{c['diff'] / c['mean_b']:+.1%} " if c["mean_b"] else ""
    return (f"{relative}(files `{res_a.name}` vs `{res_b.name}`, no per-user pairing across files; "
            f"{seed_interval_text(c)})")


def versus_text(res: Results, a: str, b: str, other: Results | None = None, metric: str = "ndcg@10") -> str:
    """:func:`comparison_text` of ``a`` vs ``b`` when both ran in ``res``; else ``a`` against ``other``'s
    ``b`` (:func:`across_files_text`) — e.g. a run that trained only ``joint`` against the committed
    run whose ``full_finetune`` it is compared with; ``"not compared (why)"`` when the two files are not
    runs of the same experiment on the same device kind."""
    if b in res.kinds() or other is None:
        return comparison_text(res, a, b, metric)
    try:
        return across_files_text(res, a, other, b, metric)
    except ValueError as exc:  # e.g. a GPU run beside CPU references: said, not compared
        return f"not compared ({exc})"


def gain_line(res: Results) -> str:
    """Markdown: best transfer vs best target-only baseline on NDCG@10 (both chosen on validation)."""
    g = res.gain()
    if not g:
        return "no gain computed"
    return (f"best transfer **{g['best_transfer']}** vs best baseline **{g['best_baseline']}** (both chosen on "
            f"validation): test NDCG@10 {g['transfer']:.4f} vs {g['baseline']:.4f} (**{g['relative_gain']:+.1%}**; "
            f"{comparison_text(res, g['best_transfer'], g['best_baseline'])})")


def _target_verdict(relative: float, diff_low: float | None, relative_low: float | None, target: float,
                    low_words: str) -> tuple[bool, str]:
    """``(met, why)`` of a gain against a target: met = the mean gain reaches ``target`` and the interval
    of the difference lies above 0; ``why`` says what is missing, or (``low_words``, a format string for
    ``relative_low``) that the relative interval reaches below the bar although the mean is above it."""
    measured = _finite(diff_low)  # a format-1 or one-seed file has no interval
    above = measured and diff_low > 0
    met = relative >= target and above
    why = ("" if above else "; the interval of the difference does not exclude 0" if measured
           else "; no interval of the difference, so it cannot count")
    if met and _finite(relative_low) and relative_low < target:  # met on the mean only
        why += f"; {low_words.format(relative_low)} is below {target:+.0%}"
    return met, why


#: The Kitchen -> Food target (issue 13): the best transfer's mean NDCG@10 at least this much (relative)
#: above the best target-only baseline's, with the interval of the difference above 0.
TARGET_GAIN = 0.10


def target_line(res: Results, target: float = TARGET_GAIN) -> str:
    """Whether the best transfer beat the best target-only baseline (both chosen on validation) by
    at least ``target`` (relative NDCG@10) with an interval of the difference above 0: ``"met (…)"``
    or ``"missed (…)"`` with the gain measured."""
    g = res.gain()
    if not g:
        return "not measured (no gain computed)"
    c = res.comparison(g["best_transfer"], g["best_baseline"]) or {}
    met, why = _target_verdict(g["relative_gain"], c.get("diff_low"), c.get("relative_low"), target,
                               "the relative interval's lower end, {:+.1%},")
    return f"{'met' if met else 'missed'} ({g['relative_gain']:+.1%} against a bar of {target:+.0%}{why})"


def settings_text(sets: Mapping[str, object]) -> str:
    """``"train.lr=0.00259, train.weight_decay=0.1"``: a method's own settings (``per_method``), floats
    to three significant digits."""
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in sets.items())


def best_across(files: list[Results], kind: str | None, metric: str = "ndcg@10",
                methods: tuple[str, ...] | None = None) -> tuple[Results, str]:
    """The method of ``kind`` (``"transfer"``, ``"baseline"``, ``None``: either) with the best mean *validation* ``metric``
    over several results files, every method of every file a candidate (a method retrained with other
    settings in a second file is one more candidate); test never chooses.

    Args:
        files: Results of runs of the same experiment.
        kind: ``"transfer"``, ``"baseline"`` or ``None`` (every method).
        metric: The validation metric that chooses.
        methods: Only these method names are candidates (e.g. the text + ID models); ``None``: all.

    Returns:
        ``(file, method)``; a tie goes to the later file.

    Raises:
        ValueError: If no file has a candidate with a validation value.
    """
    found = [(v[m], i, res, m) for i, res in enumerate(files) for v in (res.valid_means(metric),)
             for m, k in res.kinds().items()
             if kind in (None, k) and m in v.index and (methods is None or m in methods)]
    if not found:
        raise ValueError(f"no {kind or 'method'} with a validation {metric} in {[res.name for res in files]}")
    return max(found, key=lambda x: x[:2])[2:]


def published_gap_text(res: Results, method: str, dataset: str, model: str, setting: str,
                       metric: str = "ndcg@10") -> str:
    """``method``'s test ``metric`` in ``res`` (mean ± sample std over seeds) against a published number.

    The interval is a one-sample interval over our seeds (:func:`xdtutor.stats.value_difference`), said
    as such: the published value is one number whose own run-to-run spread is unknown, so "higher" or
    "lower" is relative to that number, not to the published model's spread.

    Args:
        res: A results file with rows of ``method``.
        method: Our method.
        dataset, model, setting: The published row (:func:`xdtutor.published.published_value`).
        metric: Test metric compared.

    Returns:
        One line: our mean ± std, the published value, the relative difference and the interval.

    Raises:
        KeyError: If ``res`` has no rows of ``method`` or the published table has no such row.
    """
    values = res.test_values(method, metric)
    ref = published_value(dataset, model, setting, metric)
    c = value_difference(values, ref)
    spread = mean_std(float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else math.nan)
    if c["seeds"] < 2:
        where = "one seed: no interval, so no verdict on the difference"
    elif math.isnan(c["diff_low"]):
        where = f"our {c['seeds']} seeds gave the same value: no spread, so no interval and no verdict"
    else:
        where = (f"{c['level']:.0%} interval over our {c['seeds']} seeds only, the published value one number "
                 f"of unknown spread: [{c['diff_low']:+.4f}, {c['diff_high']:+.4f}]: {verdict(c)}")
    return (f"{method} (`{res.name}`) {spread} vs {model} {setting} {ref:.4f}: "
            f"{c['diff'] / ref:+.1%} ({where})")


def published_gaps(files: list[Results], dataset: str, model: str, settings: Mapping[str, tuple[str, ...]],
                   metrics: tuple[str, ...] = ("recall@10", "ndcg@10")) -> list[str]:
    """Like with like against a published table: for each published ``setting`` (e.g. ``"text only
    (inductive)"``), our best of its ``methods`` on validation NDCG@10 across ``files`` (:func:`best_across`),
    then :func:`published_gap_text` on each of ``metrics``.

    Args:
        files: Results files of one experiment (every method of every file a candidate).
        dataset, model: The published table and model (e.g. ``"scientific"``, ``"UniSRec"``).
        settings: Published setting → our methods of that setting
            (:data:`xdtutor.published.SETTING_METHODS`).
        metrics: Test metrics compared.

    Returns:
        One line per setting and metric, each ending with ``" on <metric>"``.
    """
    return [published_gap_text(res, m, dataset, model, setting, metric) + f" on {metric}"
            for setting, methods in settings.items()
            for res, m in (best_across(files, None, methods=methods),) for metric in metrics]


def retrained_reading(hand_set: Mapping[str, Results], retrained: Results, dataset: str, model: str,
                      settings: Mapping[str, tuple[str, ...]]) -> dict[str, str]:
    """What a run that retrained some target-only models with searched settings changes, in three lines.

    Args:
        hand_set: Method → the results file whose rows of it used the experiment's own settings; every
            file of this mapping and ``retrained`` are candidates (runs of the same experiment).
        retrained: The run with the searched settings (its ``per_method``).
        dataset, model, settings: The published table read like with like (:func:`published_gaps`).

    Returns:
        ``"retrained"``: each retrained method against its hand-set rows; ``"source"``: the best transfer
        against the best target-only model, each chosen on validation across every file; ``"published"``:
        :func:`published_gaps` joined.

    Raises:
        ValueError: If a retrained method has no hand-set file, or the files are not comparable.
    """
    missing = sorted(set(retrained.config.per_method) - set(hand_set))
    if missing:
        raise ValueError(f"{retrained.name}: no results file with hand-set rows of {missing}")
    files = [*dict.fromkeys(hand_set.values()), retrained]  # each file once, in the order given
    (res_t, t), (res_b, b) = best_across(files, "transfer"), best_across(files, "baseline")
    return {"retrained": "; ".join(f"{m} with {settings_text(sets)} against the same model with the hand-set "
                                   f"settings: {across_files_text(retrained, m, hand_set[m], m)}"
                                   for m, sets in retrained.config.per_method.items()),
            "source": (f"the best transfer, {t} (`{res_t.name}`), against the best target-only model, {b} "
                       f"(`{res_b.name}`), each chosen on validation: {across_files_text(res_t, t, res_b, b)}"),
            "published": "; ".join(published_gaps(files, dataset, model, settings))}


def target_across_line(files: list[Results], target: float = TARGET_GAIN, metric: str = "ndcg@10") -> str:
    """:func:`target_line` over several results files of one experiment — e.g. the menu beside runs that
    retrained some of its methods with the settings their validation searches chose.

    Every method of every file is a candidate (a method retrained with other settings is one more
    candidate, not a replacement): the best transfer and the best target-only baseline are each chosen on
    mean *validation* ``metric`` across the files; test never chooses.

    Args:
        files: Results of runs of the same experiment (:func:`xdtutor.results.seed_difference_across`
            checks that the two chosen files are comparable).
        target: The relative gain asked of the best transfer.

    Returns:
        ``"met (…)"`` or ``"missed (…)"`` naming both methods and their files, with the relative gain and
        the Welch interval over the seeds' test means (the files keep no per-user rows to pair).
    """
    from .results import seed_difference_across  # not at import time: results saves through this module

    (res_t, t), (res_b, b) = best_across(files, "transfer", metric), best_across(files, "baseline", metric)
    c = seed_difference_across(res_t, t, res_b, b, metric)
    relative = c["diff"] / c["mean_b"]
    met, why = _target_verdict(relative, c["diff_low"], c["diff_low"] / c["mean_b"], target,
                               "the interval's lower end, {:+.1%} of " + b + ",")
    return (f"{'met' if met else 'missed'} ({t} in `{res_t.name}` vs {b} in `{res_b.name}`, both chosen on "
            f"validation: {relative:+.1%} against a bar of {target:+.0%}; {seed_interval_text(c)}{why})")


def gain_vs_line(res: Results, baseline: str = "text") -> str:
    """Markdown: best transfer (chosen on validation) vs baseline ``baseline`` on NDCG@10."""
    g = res.gain_vs(baseline)
    if g is None:
        return f"no {baseline} baseline in this run"
    return (f"best transfer **{g['best_transfer']}** NDCG@10 {g['transfer']:.4f} vs {baseline} target-only "
            f"{g['baseline_value']:.4f} (**{g['relative_gain']:+.1%}**; "
            f"{comparison_text(res, g['best_transfer'], baseline)})")


def comparisons_frame(res: Results) -> pd.DataFrame:
    """The stored comparisons as a table: method, reference, means, difference and its interval."""
    cols = ["about", "method", "vs", "mean_a", "mean_b", "diff", "diff_low", "diff_high", "relative",
            "relative_low", "relative_high", "seeds", "n_users"]
    df = pd.DataFrame(res.comparisons)
    if df.empty:
        return pd.DataFrame(columns=[*cols, "verdict"])  # the same columns as a file with comparisons
    df = df.reindex(columns=cols)
    verdicts = []
    for i, c in enumerate(res.comparisons):
        if c.get("diff_low") is not None:
            verdicts.append(verdict(c))
            continue
        # a format-1 file kept a p-value over users, no per-user rows: the interval its seeds allow
        sd = res.seed_difference(c["method"], c["vs"], c.get("metric", "ndcg@10"))
        df.loc[i, ["diff", "diff_low", "diff_high", "seeds"]] = [sd["diff"], sd["diff_low"], sd["diff_high"], sd["seeds"]]
        verdicts.append(f"{verdict(sd)} (interval over seeds only: an earlier run)")
    df["verdict"] = verdicts
    return df


def budget_note(res: Results) -> str | None:
    """A Markdown warning when any training of the run was stopped by its time cap, else ``None``.

    A time cap (``max_train_minutes``) that never fired changes nothing; one that did means that
    model did not finish early stopping, and its numbers measure the budget as much as the method.
    """
    caps = res.time_caps()
    own = {m: res.time_cap(m) for m in res.config.per_method}  # a method's own cap wins over the shared one
    own = {m: cap for m, cap in own.items() if cap != caps["train"]}
    if not any(caps.values()) and not any(own.values()):
        return None
    reasons = res.stop_reasons()
    unknown = reasons.empty or (reasons["stop_reason"] == "?").any()
    capped = reasons[reasons["stop_reason"] == "time_limit"]
    if capped.empty and not unknown:
        return None
    minutes = (f"source pretraining {_cap(caps['pretrain'])}, each target model {_cap(caps['train'])}"
               + "".join(f"; {m} {_cap(cap)}" for m, cap in own.items()))
    if capped.empty:  # caps were set but the file does not say what stopped the trainings
        return (f"> **Time caps were set** ({minutes}) and this file does not record what stopped each "
                "training, so some models may not have converged.")
    names = ", ".join(f"{w} (seed {s})" for w, s in zip(capped["what"], capped["seed"]))
    return (f"> **Time-capped:** {len(capped)} of {len(reasons)} trainings stopped at their time cap "
            f"({minutes}) before early stopping ended them: {names}. Those numbers measure the compute budget "
            "as much as the method.")


#: how a training ended, in words (TrainedModel.stop_reason)
STOP_WORDS = {"patience": "by early stopping", "max_epochs": "at the epoch limit", "time_limit": "at the time cap"}


def stop_line(res: Results) -> str:
    """How every training of the run ended, target models and source pretraining apart.

    E.g. ``"6 of 6 target trainings stopped by early stopping (21–41 epochs); source pretraining
    (3 runs): 1 by early stopping, 2 at the epoch limit"`` — a converged run is one whose target trainings
    all stopped by early stopping; a pretraining at its epoch limit is said, not hidden.
    """
    reasons = res.stop_reasons()
    if reasons.empty:
        return "this file does not record how its trainings ended"
    target, source = reasons[reasons["what"] != "source"], reasons[reasons["what"] == "source"]

    def counts(part: pd.DataFrame) -> list[str]:
        found = part["stop_reason"].value_counts()
        known = [f"{found[r]} {words}" for r, words in STOP_WORDS.items() if r in found.index]
        return known + [f"{found[r]} not recorded" for r in found.index if r not in STOP_WORDS]

    parts = []
    if not target.empty:
        early = int((target["stop_reason"] == "patience").sum())
        low, high = int(target["epochs"].min()), int(target["epochs"].max())
        parts.append(f"{early} of {len(target)} target training{'s' * (len(target) > 1)} stopped by early "
                     f"stopping ({low}{f'–{high}' if high > low else ''} epochs)"
                     + ("" if early == len(target) else
                        "; " + ", ".join(counts(target[target["stop_reason"] != "patience"]))))
    if not source.empty:
        parts.append(f"source pretraining ({len(source)} run{'s' * (len(source) > 1)}): {', '.join(counts(source))}")
    return "; ".join(parts)


def _cap(minutes: float | None) -> str:
    return "no cap" if minutes is None else f"{minutes} min"


def text_table(res: Results) -> str:
    """The results table with the protocol line (what ``xdtutor run`` prints)."""
    s = res.summary()
    lines = [res.info.get("protocol_line", ""), f"seeds: {list(res.config.seeds)}; scale: {res.config.scale}; "
             f"device: {res.info.get('device', '?')}"]
    # at most 100 characters wide, so a notebook page shows it without scrolling (chapter 6); the total
    # parameter count is in the run's report.md
    header = (f"{'method':<15}{'kind':<9}{'R@10':>16}{'N@10':>16}{'N@10 ovl':>9}{'N@10 tgt':>9}"
              f"{'trainable':>10}{'train s':>8}")
    lines += [header, "-" * len(header)]
    for _, r in s.iterrows():
        lines.append(f"{r['method']:<15}{r['kind']:<9}{mean_std(r['recall@10'], r['recall@10_std']):>16}"
                     f"{mean_std(r['ndcg@10'], r['ndcg@10_std']):>16}"
                     f"{r.get('ndcg@10[overlap]', np.nan):>9.4f}{r.get('ndcg@10[target_only]', np.nan):>9.4f}"
                     f"{int(r['trainable_params']):>10,}{r['train_seconds']:>8.1f}")
    g = res.gain()
    if g:
        lines.append(f"best transfer {g['best_transfer']} vs best baseline {g['best_baseline']}: "
                     f"NDCG@10 {g['transfer']:.4f} vs {g['baseline']:.4f} ({g['relative_gain']:+.1%})")
    if res.cold_users:
        lines.append("cold users (target history hidden): " + ", ".join(
            f"{r['method']} N@10={r['metrics']['ndcg@10']:.4f}" for r in res.cold_users))
    cs = cold_start_frame(res)
    if not cs.empty:
        table = cs.groupby(["fraction", "method"])["ndcg@10"].mean().unstack()
        lines.append("cold start (NDCG@10 by fraction of target training users):\n" + table.to_string(float_format="%.4f"))
    if res.diagnostics:
        lines.append("domain similarity: " + "; ".join(
            f"{k}: " + ", ".join(f"{m}={v:.3f}" for m, v in d.items()) for k, d in res.diagnostics.items()
            if k != "matrix"))
    return "\n".join(lines)


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
    from .results import curve_key  # here: the results module imports this one

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
            others have, kept other training users, or has a row without a validation score.
    """
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
    (:func:`curve_setting_choice`). Both from one file: that file's stored paired two-level interval (a
    Welch interval over its seeds where it stored none); from two files: a Welch interval over the seeds'
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
    from .results import check_comparable, curve_key  # here: the results module imports this one
    from .stats import seed_difference

    table = curve_setting_choice(variants, fraction, metric)
    chosen = table[table["chosen"]].set_index("method")
    first = next(iter(variants.values()))
    strategy, baselines = first.config.cold_start.strategy, first.config.cold_start.baselines
    best = vs or max(baselines, key=lambda b: chosen.loc[b, "valid"])  # the first baseline on a tie
    (sa, res_a), (sb, res_b) = ((chosen.loc[m, "setting"], variants[chosen.loc[m, "setting"]])
                                for m in (strategy, best))
    head = f"{strategy} ({sa}) vs {best} ({sb}{'' if vs else ', the better baseline on validation'}): "
    stored = res_a.comparison(curve_key(fraction, strategy), curve_key(fraction, best), metric)
    if res_a is res_b and stored:
        return head + difference_text(stored)
    check_comparable(res_a, res_b)

    def values(res: Results, method: str) -> list[float]:
        return [r["metrics"][metric] for r in sorted(res.cold_start, key=lambda r: r["seed"])
                if r["fraction"] == fraction and r["method"] == method]

    c = seed_difference(values(res_a, strategy), values(res_b, best))
    where = (f"files `{res_a.name}` vs `{res_b.name}`, no per-user pairing across files" if res_a is not res_b
             else f"not compared user by user in `{res_a.name}`")
    return head + (f"{c['diff']:+.4f} ({c['diff'] / chosen.loc[best, 'test']:+.1%}); {where}; "
                   f"{seed_interval_text(c)}")


def published_markdown(dataset: str) -> list[str]:
    """Markdown lines: the published rows for ``dataset`` with each source's protocol and setup."""
    table = published_table(dataset)
    if table.empty:
        return []
    lines = [f"Published results on `{dataset}` (`xdtutor/published.yaml`):", "",
             "| model | setting | " + " | ".join(PUBLISHED_METRICS) + " | source |",
             "|---|---|" + "---|" * len(PUBLISHED_METRICS) + "---|"]
    for _, r in table.iterrows():
        lines.append(f"| {r['model']} | {r['setting']} | " + " | ".join(f"{r[m]:.4f}" for m in PUBLISHED_METRICS)
                     + f" | {r['source']} |")
    lines.append("")
    for s in sources():
        if s["dataset"] == dataset:
            lines.append(f"- `{s['key']}`: {s['source']}. Protocol: {s['protocol']}. Setup: {s['setup']}.")
    lines.append("")
    return lines


def protocol_differences(line: str, reference: str) -> tuple[list[str], list[str]]:
    """The clauses of protocol line ``line`` that ``reference`` lacks, and those it lacks that
    ``reference`` has (a page prints a protocol once, then only how another run's differs)."""
    clauses = [re.split(r"; |, (?=\d+% of users)", text) for text in (line, reference)]
    return ([c for c in clauses[0] if c not in clauses[1]], [c for c in clauses[1] if c not in clauses[0]])


#: The source clause of the protocol line of runs made before overlapping users' source sequences were cut
#: for pretraining (the cut was then true of the source histories only).
UNCUT_SOURCE = "cut at the target split position"


def protocol_caveat(res: Results) -> str | None:
    """A Markdown warning for a run made under a protocol that has since been corrected, else ``None``."""
    if UNCUT_SOURCE not in res.info.get("protocol_line", ""):
        return None
    return ("> **Made before a protocol fix.** Source pretraining in this run read each overlapping user's "
            "whole source sequence, including purchases made after the target items being predicted (runs "
            "made since cut it before the user's target validation item). That could flatter the "
            "transferred models, never the target-only ones: read their gains here as possibly optimistic.")


def training_seconds(res: Results) -> float:
    """Seconds of training in ``res``: every target model's epochs (cold-start curve points included)
    and every source pretraining's, all seeds (a run resumed from checkpoints keeps the epochs timed
    before it stopped)."""
    return sum(float(r.get("train_seconds") or 0.0) for r in (*res.rows, *res.cold_start, *res.source_runs))


def markdown(res: Results, overrides: list[str] = ()) -> str:
    """The Markdown report of a run (what ``results/<name>.md`` holds above its notes)."""
    info = res.info
    parts = info.get("parts")
    lines = [f"# {res.name}", "",
             f"- date: {info.get('date')}; device: {info.get('device')} ({info.get('device_name')}, "
             f"{info.get('torch_threads')} torch threads); wall time: {info.get('wall_seconds', 0):.0f} s"
             + (f" (the longest of {len(parts)} parts, run as separate processes; "
                f"{info['compute_seconds']:.0f} s summed)" if parts else ""),
             f"- training time behind these numbers: {format_seconds(training_seconds(res))}, summed over every trained "
             "model and source model, all seeds and every invocation of a resumed run (the wall time above "
             "counts the last invocation only)",
             f"- seeds: {info.get('seeds')}; scale: {res.config.scale}; overrides: {' '.join(overrides) or '-'}",
             *(["- per-method settings (over the shared ones): " + "; ".join(
                 f"{m}: " + ", ".join(f"{k}={v}" for k, v in sets.items()) for m, sets in res.config.per_method.items())]
               if res.config.per_method else []),
             f"- {info.get('protocol_line', '')}", ""]
    caveat = protocol_caveat(res)
    if caveat:
        lines += [caveat, ""]
    if res.source_runs:
        lines += ["Source pretraining: " + "; ".join(
            f"seed {r['seed']} {'+'.join(r['sources'])}: valid NDCG@10 {r['valid_ndcg@10']:.4f} "
            f"(best epoch {r['best_epoch']}, {r['train_seconds']:.0f} s)" for r in res.source_runs), ""]
    s = res.summary()
    if not s.empty:
        lines += ["| method | kind | seeds | R@10 | N@10 | R@50 | N@50 | N@10 overlap | N@10 target-only | "
                  "trainable / total params | train s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for _, r in s.iterrows():
            pm = lambda m: mean_std(r[m], r[m + "_std"])  # noqa: E731
            lines.append(f"| {r['method']} | {r['kind']} | {int(r['seeds'])} | {pm('recall@10')} | {pm('ndcg@10')} | "
                         f"{pm('recall@50')} | {pm('ndcg@50')} | {r.get('ndcg@10[overlap]', float('nan')):.4f} | "
                         f"{r.get('ndcg@10[target_only]', float('nan')):.4f} | "
                         f"{int(r['trainable_params']):,} / {int(r['total_params']):,} | {r['train_seconds']:.0f} |")
        lines.append("")
    g = res.gain()
    if g:
        lines += [f"Best transfer ({g['best_transfer']}) vs best target-only baseline ({g['best_baseline']}): "
                  f"NDCG@10 {g['transfer']:.4f} vs {g['baseline']:.4f} = **{g['relative_gain']:+.1%}** "
                  f"({comparison_text(res, g['best_transfer'], g['best_baseline'])}).", ""]
    gt = res.gain_vs("text")
    if gt and g and g["best_baseline"] != "text":  # what the source adds to the same architecture
        lines += [f"Best transfer ({gt['best_transfer']}) vs the same text model trained on the target only: "
                  f"NDCG@10 {gt['transfer']:.4f} vs {gt['baseline_value']:.4f} = **{gt['relative_gain']:+.1%}** "
                  f"({comparison_text(res, gt['best_transfer'], 'text')}).", ""]
    if res.comparisons:
        older = any(c.get("diff_low") is None for c in res.comparisons)  # format 1: no per-user rows
        how = ("an interval over the seeds' test means only, as each row says: this earlier run kept no "
               "per-user results" if older else STATS_METHOD)
        lines += ["Differences in test NDCG@10 with their intervals (the references are chosen on validation; "
                  f"{how}):", "",
                  "| about | method | vs | NDCG@10 | reference | difference | interval |", "|---|---|---|---|---|---|---|"]
        lines += [f"| {c.get('about', '')} | {c['method']} | {c['vs']} | {c.get('mean_a', float('nan')):.4f} | "
                  f"{c.get('mean_b', float('nan')):.4f} | {c.get('diff', c.get('mean_diff', float('nan'))):+.4f} | "
                  f"{stored_comparison_text(res, c)} |" for c in res.comparisons]
        lines.append("")
    if res.cold_users:
        cold = ("Cold users (a held-out share of the overlapping test users, none of their target interactions "
                "in any model's training data; EMCDR mapping of source user reps, chosen on validation):")
        if not any("base" in r for r in res.cold_users):  # made before the fix: the users were not kept cold
            cold = ("Cold users, **older protocol** (no base model was retrained without them: the mapping and the "
                    "base model learnt from these users' target interactions, so they were not cold, and no mapping "
                    "was chosen on validation):")
        lines += [cold, "",
                  "| method | seed | users | R@10 | N@10 | selection N@10 | chosen | trainable params |",
                  "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['method']} | {r['seed']} | {r['users']} | {r['metrics']['recall@10']:.4f} | "
                  f"{r['metrics']['ndcg@10']:.4f} | "
                  f"{'-' if r.get('valid_ndcg@10') is None else format(r['valid_ndcg@10'], '.4f')} | "
                  f"{'yes' if r.get('selected') else ''} | {r['trainable_params']:,} |" for r in res.cold_users]
        bases = {r["seed"]: r["base"] for r in res.cold_users if r.get("base")}
        if bases:  # the base model the mappings score with, retrained without the cold users
            lines += ["", "Base model, retrained without the cold users: " + "; ".join(
                f"seed {s} {b['method']} " + (f"({b['stop_reason']}, best epoch {b['best_epoch']} of {b['epochs']})"
                                              if b.get("stop_reason") else "(not trained)")
                for s, b in sorted(bases.items()))]
        lines.append("")
    if res.cold_start:
        cs = res.config.cold_start
        own = ", ".join(f"{label} {v}" for label, v in (("early-stopping patience", cs.patience),
                                                         ("batch size", cs.batch_size)) if v is not None)
        lines += ["Cold start (fraction of target training users kept; valid/test unchanged"
                  + (f"; the curve's own {own}" if own else "") + "):", "",
                  "| fraction | method | seed | train users | R@10 | N@10 | stop (best / epochs) |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {r['fraction']:.0%}{' (' + r['from'] + ')' if r.get('from') else ''} | {r['method']} | "
                  f"{r['seed']} | {r['train_users']} | "
                  f"{r['metrics']['recall@10']:.4f} | {r['metrics']['ndcg@10']:.4f} | "
                  + (f"{r['stop_reason']} ({r['best_epoch']} / {r['epochs']}) |" if r.get("stop_reason")
                     else "not recorded |") for r in res.cold_start]
        lines.append("")
    diag = {k: v for k, v in res.diagnostics.items() if k != "matrix"}
    if diag:
        lines += ["Domain similarity of the catalogues' text embeddings (negative-transfer diagnostic): " + "; ".join(
            f"{k}: " + ", ".join(f"{m} {v:.3f}" for m, v in x.items()) for k, x in diag.items()), ""]
    lines += published_markdown(res.config.data.dataset)
    return "\n".join(lines)


#: The line :func:`keep_notes` puts under the notes heading when the numbers above them changed; a
#: committed results file must not contain it (tests/test_results.py): the notes were re-read.
STALE_NOTES = ("> **Check these notes:** they were written for an earlier version of the tables above; "
               "delete this line once they agree with the numbers.")


def keep_notes(new: str, old: str | None) -> str:
    """``new`` followed by the hand-written notes of ``old`` (from its first ``## Notes`` heading on).

    The generated part of ``results/<name>.md`` is rewritten on every publish; the notes a person
    added under a ``## Notes…`` heading are carried over, and — when a number of the generated part
    (its ``- date:`` line aside) is no longer there — marked with :data:`STALE_NOTES`, so they are not
    passed on unread.
    """
    if not old:
        return new
    lines = old.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(NOTES_HEADING)), None)
    if start is None:
        return new
    notes = lines[start:]

    def numbers(text: list[str]) -> Counter:  # of the generated part, its run date and times aside
        return Counter(float(n.replace(",", "").replace("−", "-")) for line in text
                       if not line.startswith(("- date:", "- training time")) for n in re.findall(r"[+\-−]?\d[\d,]*(?:\.\d+)?", line))

    # a number the notes may quote is gone (a rewording, or an added interval, is not a change)
    if numbers(lines[:start]) - numbers(new.splitlines()) and STALE_NOTES not in notes:
        notes = [notes[0], "", STALE_NOTES] + notes[1:]
    return new.rstrip("\n") + "\n\n" + "\n".join(notes).rstrip("\n") + "\n"


def refresh_markdown(res: Results, md_path: str | Path) -> str:
    """``results/<name>.md`` as the current code writes it from ``res`` (its JSON), notes kept as
    :func:`keep_notes` does — what ``scripts/render_results.py`` writes after a change to the tables'
    code. A file that did not record its overrides (older runs) keeps the ones its Markdown names."""
    md_path = Path(md_path)
    old = md_path.read_text(encoding="utf-8") if md_path.exists() else None
    overrides = res.info.get("overrides")
    if overrides is None:
        said = re.search(r"; overrides: (.*)$", old or "", re.M)
        overrides = [] if not said or said.group(1) == "-" else said.group(1).split(" ")
    return keep_notes(markdown(res, overrides) + "\n", old)


def save_figures(res: Results, out: str | Path) -> list[Path]:
    """Metric bars, training curves, cold-start curve and similarity heatmap as PNG files in ``out``."""
    # No matplotlib.use(...): selecting a backend here would silently switch off inline figures in
    # the notebook that called us. Headless runs set MPLBACKEND=Agg (the Makefile does).
    out = Path(out)
    written = []

    def save(fig, name):
        fig.tight_layout()
        fig.savefig(out / name, dpi=120)
        plt.close(fig)
        written.append(out / name)

    summary = res.summary()
    if not summary.empty:
        fig, ax = plt.subplots(figsize=(8, 4))
        plots.metric_bars(summary, "ndcg@10", ax=ax, title=f"{res.name}: test NDCG@10")
        save(fig, "metrics.png")
    if res.histories:
        fig, ax = plt.subplots(figsize=(8, 4))
        plots.training_curves(res.histories, ax=ax)
        save(fig, "training_curves.png")
    if res.cold_start:
        fig, ax = plt.subplots(figsize=(6, 4))
        plots.cold_start_curve(res.cold_start, "ndcg@10", ax=ax)
        save(fig, "cold_start.png")
    sim = res.diagnostics.get("matrix")
    if sim:
        fig, ax = plt.subplots(figsize=(4.5, 4))
        plots.similarity_heatmap(sim["names"], np.asarray(sim["values"]), ax=ax, title=sim["metric"])
        save(fig, "similarity.png")
    return written


def write_run(res: Results, out: str | Path) -> Path:
    """A run folder: ``results.json``, ``per_user.csv``, the figures and ``report.md``."""
    out = res.save(out)
    save_figures(res, out)
    with atomic_write(out / "report.md", "w") as fh:
        fh.write(markdown(res, res.info.get("overrides", [])) + "\n")
    return out


def publish(res: Results, folder: str | Path = "results") -> list[Path]:
    """Write ``<folder>/<name>.json``, ``<name>.md`` (a ``## Notes`` section already there is kept)
    and the figures as ``<name>.<figure>.png``: what the book and the README read.

    Returns:
        The paths written.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / f"{res.name}.json", folder / f"{res.name}.md"
    write_json(json_path, res.to_dict())
    text = refresh_markdown(res, md_path)  # the committed notes kept
    with atomic_write(md_path, "w") as fh:
        fh.write(text)
    with tempfile.TemporaryDirectory() as tmp:
        written = [json_path, md_path]
        for fig in save_figures(res, tmp):
            target = folder / f"{res.name}.{fig.name}"
            shutil.move(str(fig), target)
            written.append(target)
    return written


def budget_table(runs: Mapping[str, Results], seed: int = 0, metric: str = "ndcg@10") -> pd.DataFrame:
    """The same methods and seed under different training budgets, side by side.

    Args:
        runs: ``{label: Results}``, e.g. ``{"6 min": main_run, "25 min": long_run}``; every run must
            hold ``seed`` (a combined multi-seed run contributes only that seed's rows).
        seed: Which seed's trainings to compare (budgets are compared seed by seed, not as means).
        metric: The test metric to show.

    Returns:
        One row per method present in every run, columns ``"<metric> (<label>)"``,
        ``"epochs (<label>)"`` and ``"stop (<label>)"`` (the recorded stop reason; ``-`` for methods
        that do not train, e.g. popularity).
    """
    frames = []
    for label, res in runs.items():
        rows = {r["method"]: r["metrics"][metric] for r in res.rows if r.get("seed") == seed}
        if not rows:
            raise KeyError(f"run {label!r} has no rows for seed {seed}")
        hist = {m: res.histories.get(f"{m}/{seed}") for m in rows}
        frames.append(pd.DataFrame({
            f"{metric} ({label})": pd.Series(rows),
            f"epochs ({label})": pd.Series({m: len(h.epochs) if h else 0 for m, h in hist.items()}),
            f"stop ({label})": pd.Series({m: (h.stop_reason if h else "") or "-" for m, h in hist.items()}),
        }))
    return pd.concat(frames, axis=1, join="inner").rename_axis("method")



def _pooling(encoder) -> str:
    """How item vectors were pooled, from an ``EncoderConfig`` (no model files needed)."""
    if encoder.loader == "transformers" or encoder.pooling is not None or encoder.normalize is not None:
        return f"{encoder.pooling or 'mean'} pooling" + (", L2-normalised" if encoder.normalize else "")
    return "pooling and normalisation of its sentence-transformers modules"


def _own_settings(config, keys: tuple[str, ...]) -> str:
    """``" (own settings: text: model.dropout=0.1)"`` for the methods whose ``per_method`` entry sets one of
    ``keys`` (the shared value above does not describe them), else ``""``."""
    own = [f"{m}: " + ", ".join(f"{k}={v}" for k, v in sets.items() if k in keys)
           for m, sets in config.per_method.items() if any(k in keys for k in sets)]
    return f" (own settings: {'; '.join(own)})" if own else ""


def setup_differences(res: Results, source: str) -> pd.DataFrame:
    """Our run's setup next to a published source's (``published.yaml`` ``settings``), aspect by aspect.

    A comparison with a published number is only fair between rows whose setups are listed side by
    side; this table is that list.
    """
    published = next((s for s in sources() if s["key"] == source), None)
    if published is None or "settings" not in published:
        raise KeyError(f"{source!r} has no settings in xdtutor/published.yaml")
    c = res.config
    m, pre, tr = c.model, c.pretrain, c.train
    stop = (f"early stopping on validation NDCG@10 after {tr.patience} epochs without improvement, at most "
            f"{tr.epochs} epochs" + (f", {tr.max_train_minutes}-min cap" if tr.max_train_minutes else ""))
    sources_line = " + ".join(r for r in dict.fromkeys(x for run in res.source_runs for x in run["sources"])) or "none"
    ours = {
        "item text": f"the dataset's item text ({c.data.dataset})",
        "text encoder": f"{res.info.get('encoder_id', c.encoder.model)}, {_pooling(c.encoder)}, up to "
                        f"{c.encoder.max_tokens} tokens, frozen",
        "hidden size": f"{m.hidden} (feed-forward {4 * m.hidden}), {m.n_layers} layers, {m.n_heads} heads",
        "dropout": f"{m.dropout}" + _own_settings(c, ("model.dropout",)),
        "item adaptor": m.adaptor,
        "scores": f"{m.similarity}" + (f" / {m.temperature}" if m.similarity == "cos" else "")
                  + f", softmax over {NEGATIVES_SAID[tr.negatives]}" + _own_settings(c, ("train.negatives",)),
        "stopping rule": stop + _own_settings(c, ("train.patience", "train.epochs", "train.max_train_minutes")),
        "pretraining data": f"{sources_line}; at most {pre.epochs} epochs"
                            + (f", {pre.max_train_minutes}-min cap" if pre.max_train_minutes else "")
                            + f", batch {pre.batch_size}, softmax over "
                            + NEGATIVES_SAID[pre.negatives],
        "fine-tuning": ", ".join(c.strategies) or "none (target-only models)",
    }
    rows = [{"aspect": k, "published": v, "ours": ours.get(k, "-")} for k, v in published["settings"].items()]
    return pd.DataFrame(rows).set_index("aspect")
