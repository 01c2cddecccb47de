"""How a result is said in words: a mean ± std, a difference with its interval, a gain against a target,
how the trainings ended.

Nothing here computes a number a results file does not hold (intervals come from :mod:`xdtutor.stats`
through :class:`~xdtutor.results.Results`); these are the sentences the results Markdown, the chapters
and the README / FAQ share, so one comparison reads the same everywhere. The cold-start curve's
readings are in :mod:`xdtutor.curve_readings`, comparisons with published numbers in
:mod:`xdtutor.published_readings`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import TYPE_CHECKING, Mapping

import pandas as pd

from .stats import verdict

if TYPE_CHECKING:  # type hints only: xdtutor.results imports the training stack; a reading needs the file only
    from .results import Results


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


def spread_table(res: Results, metrics: tuple[str, ...] = ("recall@10", "ndcg@10", "recall@50", "ndcg@50"),
                 ) -> pd.DataFrame:
    """One row per method of ``res``: its kind, its number of seeds and each metric as :func:`mean_std`
    (mean ± sample std over seeds), in the order of :meth:`Results.summary`.

    Returns:
        A frame indexed by method, columns ``kind``, ``seeds`` and ``metrics`` (strings).
    """
    s = res.summary()
    shown = pd.DataFrame({"kind": s["kind"].values, "seeds": s["seeds"].values}, index=s["method"].values)
    for c in metrics:
        shown[c] = [mean_std(m, sd) for m, sd in zip(s[c], s[c + "_std"])]
    return shown


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


def _differ_text(c: dict) -> str:
    """``"; the files also differ in pretrain.lr, … (…)"`` for the settings two compared files may differ
    in (:func:`xdtutor.results.check_comparable`); ``""`` where they differ in none."""
    if not c.get("differ"):
        return ""
    return (f"; the files also differ in {', '.join(c['differ'])} "
            "(how the compared models were trained, not the protocol)")


def across_files_text(res_a: Results, a: str, res_b: Results, b: str, metric: str = "ndcg@10",
                      differ: tuple[str, ...] = ()) -> str:
    """:func:`comparison_text` for ``a`` of one results file against ``b`` of another run of the same
    experiment (:func:`xdtutor.results.seed_difference_across`): the relative difference and the interval
    over the seeds' test means, said as such (the files keep no per-user rows to pair), and the shared
    settings in which the files differ where they are the compared methods' own (or allowed by
    ``differ``, e.g. θ_s's pretraining recipe)."""
    from .results import seed_difference_across  # when called: see TYPE_CHECKING above

    c = seed_difference_across(res_a, a, res_b, b, metric, differ=differ)
    relative = f"{c['diff'] / c['mean_b']:+.1%} " if c["mean_b"] else ""
    own = _differ_text(c)
    return (f"{relative}(files `{res_a.name}` vs `{res_b.name}`, no per-user pairing across files{own}; "
            f"{seed_interval_text(c)})")


def theta_s_effect_text(res_new: Results, res_old: Results, method: str = "fusion") -> str:
    """``method`` of two results files that fine-tuned alike from differently pretrained θ_s, read as the
    pretraining's effect — after checking that the fine-tuning is the same: every ``train.*`` and
    ``transfer.*`` setting of the method's own config, θ_t's dropout and temperature resolved (a
    ``transfer.*`` value, or θ_s's ``model.*`` one where it is null). ``pretrain.*`` and
    ``model.dropout`` may differ (:func:`xdtutor.results.check_comparable`'s ``differ``).

    Returns:
        :func:`across_files_text` after a clause saying the fine-tuning is alike; or, where it is not, a
        clause naming the fine-tuning settings that differ (no comparison).
    """
    from .config import flatten  # when called: see TYPE_CHECKING above
    from .experiment import NOT_RESULTS
    from .transfer.base import INHERITED_FROM_MODEL

    def fine_tuning(res: Results) -> dict:
        cfg = res.config.for_method(method)
        flat = {k: v for k, v in flatten(cfg.to_dict()).items()
                if k.startswith(("train.", "transfer.")) and k not in NOT_RESULTS}
        for key in INHERITED_FROM_MODEL:  # θ_t's value: the transfer's own, else θ_s's
            own = flat.pop(f"transfer.{key}", None)
            flat[f"θ_t's {key}"] = getattr(cfg.model, key) if own is None else own
        return flat

    new, old = fine_tuning(res_new), fine_tuning(res_old)
    moved = sorted(k for k in set(new) | set(old) if new.get(k) != old.get(k))
    if moved:
        return f"not read as the pretraining's effect: the fine-tuning differs too ({', '.join(moved)})"
    return (f"{method} fine-tuned alike (every training and transfer setting, θ_t's dropout and temperature "
            "the same), from θ_s pretrained differently: "
            + across_files_text(res_new, method, res_old, method, differ=("pretrain.", "model.dropout")))


def versus_text(res: Results, a: str, b: str, other: Results | None = None, metric: str = "ndcg@10") -> str:
    """:func:`comparison_text` of ``a`` vs ``b`` when both ran in ``res``; else ``a`` against ``other``'s
    ``b`` (:func:`across_files_text`) — e.g. a run that trained only ``joint`` against the committed
    run whose ``full_finetune`` it is compared with; ``"not compared (why)"`` when the two files are not
    runs of the same experiment on the same device kind."""
    if b in res.kinds() or other is None:
        return comparison_text(res, a, b, metric)
    return across_files_said(res, a, other, b, metric)


def across_files_said(res_a: Results, a: str, res_b: Results, b: str, metric: str = "ndcg@10") -> str:
    """:func:`across_files_text`, or ``"not compared (why)"`` when the two files are not runs of the same
    experiment on the same device kind (e.g. a GPU run beside CPU references: said, not raised)."""
    try:
        return across_files_text(res_a, a, res_b, b, metric)
    except ValueError as exc:
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
    from .results import seed_difference_across  # when called: see TYPE_CHECKING above

    (res_t, t), (res_b, b) = best_across(files, "transfer", metric), best_across(files, "baseline", metric)
    c = seed_difference_across(res_t, t, res_b, b, metric)
    relative = c["diff"] / c["mean_b"]
    met, why = _target_verdict(relative, c["diff_low"], c["diff_low"] / c["mean_b"], target,
                               "the interval's lower end, {:+.1%} of " + b + ",")
    own = _differ_text(c)
    return (f"{'met' if met else 'missed'} ({t} in `{res_t.name}` vs {b} in `{res_b.name}`, both chosen on "
            f"validation{own}: {relative:+.1%} against a bar of {target:+.0%}; {seed_interval_text(c)}{why})")


def gain_vs_line(res: Results, baseline: str = "text") -> str:
    """Markdown: best transfer (chosen on validation) vs baseline ``baseline`` on NDCG@10."""
    g = res.gain_vs(baseline)
    if g is None:
        return f"no {baseline} baseline in this run"
    return (f"best transfer **{g['best_transfer']}** NDCG@10 {g['transfer']:.4f} vs {baseline} target-only "
            f"{g['baseline_value']:.4f} (**{g['relative_gain']:+.1%}**; "
            f"{comparison_text(res, g['best_transfer'], baseline)})")


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


def budget_admonition(res: Results, see: str = "") -> str | None:
    """:func:`budget_note` folded into a MyST dropdown titled with how many trainings the clock stopped
    (a page shows the count and the reader opens the list of names), else ``None``.

    Args:
        res: the run.
        see: appended to the note, e.g. where the run's notes are.
    """
    note = budget_note(res)
    if note is None:
        return None
    reasons = res.stop_reasons()
    capped = int((reasons["stop_reason"] == "time_limit").sum()) if not reasons.empty else 0
    # a list of names to open only where the file says which trainings the clock stopped
    title = (f"Time caps: {capped} of {len(reasons)} trainings stopped by the clock (click to read which)"
             if capped else "Time caps were set (click to read more)")
    return (f"````{{admonition}} {title}\n:class: dropdown\n"
            f"{note.removeprefix('> ')}{see}\n````")


#: how a training ended, in words (TrainedModel.stop_reason)
STOP_WORDS = {"patience": "by early stopping", "max_epochs": "at the epoch limit", "time_limit": "at the time cap"}


def stop_line(res: Results) -> str:
    """How every training of the run ended, target models and source pretraining apart.

    E.g. ``"6 of 6 target trainings stopped by early stopping (21–41 epochs); source pretraining
    (3 runs): 1 by early stopping, 2 at the epoch limit"`` — a converged run is one whose target trainings
    all stopped by early stopping; a pretraining at its epoch limit is said, not hidden.
    """
    reasons, curve = res.stop_reasons(), curve_stop_line(res)
    if reasons.empty and not curve:
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
    if curve:  # the cold-start curve's trainings, after the main ones
        parts.append(curve)
    if not source.empty:
        parts.append(f"source pretraining ({len(source)} run{'s' * (len(source) > 1)}): {', '.join(counts(source))}")
    return "; ".join(parts)


def curve_stop_line(res: Results) -> str:
    """How the cold-start curve's trainings ended (its rows carry their own stop reason, not a history),
    e.g. ``"cold-start curve: 18 of 27 trainings stopped by early stopping (50–150 epochs), 9 at the
    epoch limit"``; ``""`` when the file has no curve or its rows do not record it (older files)."""
    rows = res.cold_start
    if not any(r.get("stop_reason") for r in rows):
        return ""
    early = [int(r["epochs"]) for r in rows if r.get("stop_reason") == "patience" and r.get("epochs")]
    span = f" ({min(early)}{f'–{max(early)}' if max(early) > min(early) else ''} epochs)" if early else ""
    others = Counter(r.get("stop_reason") or "?" for r in rows if r.get("stop_reason") != "patience")
    n_early = sum(r.get("stop_reason") == "patience" for r in rows)
    return (f"cold-start curve: {n_early} of {len(rows)} training{'s' * (len(rows) > 1)} stopped by early "
            f"stopping{span}" + "".join(f", {n} {STOP_WORDS.get(why, 'not recorded')}" for why, n in others.items()))


def _cap(minutes: float | None) -> str:
    return "no cap" if minutes is None else f"{minutes} min"


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


def protocol_differences(line: str, reference: str) -> tuple[list[str], list[str]]:
    """The clauses of protocol line ``line`` that ``reference`` lacks, and those it lacks that
    ``reference`` has (a page prints a protocol once, then only how another run's differs)."""
    clauses = [re.split(r"; |, (?=\d+% of users)", text) for text in (line, reference)]
    return ([c for c in clauses[0] if c not in clauses[1]], [c for c in clauses[1] if c not in clauses[0]])
