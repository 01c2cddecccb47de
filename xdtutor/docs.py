"""Numbers in the README and the FAQ, generated from the committed results and benchmark files.

A page marks each generated region with an HTML comment pair (invisible when rendered)::

    <!-- generated:findings -->
    … text written by :func:`update` …
    <!-- /generated -->

:func:`snippets` composes every region's text from ``results/*.json`` (through
:mod:`xdtutor.results` and the readings modules) and ``benchmarks/results/*.json``; nothing in it
is typed by hand. ``python scripts/render_docs.py`` rewrites the regions; ``--check`` (and a test)
fails when a page and its files disagree.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from .published import SETTING_METHODS
from .curve_readings import curve_batch_size, curve_choice_reading, curve_comparisons, curve_setting_choice
from .published_readings import published_gap_text, retrained_reading, width_reading
from .readings import (TARGET_GAIN, across_files_text, comparison_text, curve_stop_line, difference_text, interval_text,
                       settings_text, stop_line, target_across_line, target_line, theta_s_effect_text,
                       versus_text)
from .config import flatten
from .report import protocol_caveat
from .results import K2F_RETRAINED, Results, find_results, setting_differences
from .tune_results import committed_searches

PAGES = ("README.md", "book/10_faq.md", "benchmarks/README.md")
#: The Kitchen -> Food bar and what "met" means for it (chapter 5.6 states it; the findings name it).
BAR = f"the {TARGET_GAIN:+.0%} bar"
BAR_RULE = f"(a mean gain of at least {TARGET_GAIN:+.0%} with the interval of the difference above 0; chapter 5.6)"
REGION = re.compile(r"(<!-- generated:(\w+) -->\n)(.*?)(<!-- /generated -->)", re.S)


def _latest(root: Path, name: str | tuple[str, ...], having: str = "rows") -> Results | None:
    found = find_results(name, "full", root / "results", having=having)
    return found[0][1] if found else None


def _pct(x: float) -> str:
    return f"{x:+.1%}"  # as report's lines write a gain (+12.0%), so one README sentence has one style


def _gain(res: Results, g: dict | None, what: str) -> str:
    """``what`` with the relative gain of a :meth:`Results.gain` / :meth:`Results.gain_vs` result and its interval."""
    if not g:
        return f"{what}: not computed"
    vs = g.get("best_baseline", g.get("baseline"))  # gain() names it best_baseline, gain_vs() baseline
    return f"{what} {_pct(g['relative_gain'])} ({comparison_text(res, g['best_transfer'], vs)})"


def _pairs(res: Results, pairs: tuple[tuple[str, str], ...]) -> str:
    """``"a vs b: <interval>; …"`` for the pairs that ran."""
    ran = set(res.kinds())
    return "; ".join(f"{a} vs {b}: {comparison_text(res, a, b)}" for a, b in pairs if {a, b} <= ran) \
        or "no pair of these methods ran"


def _caveat(res: Results) -> str:
    """``"; its source pretraining saw …"`` for a run under the older protocol (report.protocol_caveat)."""
    return ("; its source pretraining saw overlapping users' later Kitchen items, so transfer gains may be "
            "optimistic") if protocol_caveat(res) else ""


def _findings(root: Path) -> str:
    k2f, long, conv = (_latest(root, n) for n in ("kitchen_to_food", "kitchen_to_food_long",
                                                  "kitchen_to_food_converged"))
    # Scientific: the converged three-seed run when there is one, else the capped one-seed run
    sci = next((r for r in (_latest(root, n) for n in ("sources_to_scientific_converged", "sources_to_scientific"))
                if r is not None), None)
    # the curve is its own experiment (format-1 files named it after the config it extends)
    cold = _latest(root, ("cold_start", "kitchen_to_food"), having="cold_start")
    lines = []
    menu = _latest(root, "kitchen_to_food_menu")
    if menu is not None:
        best = menu.best("transfer")[0]
        others = [m for m, k in menu.kinds().items() if k == "transfer" and m not in ("full_finetune", "zero_shot")]
        lines.append(f"- **Kitchen → Food, the whole menu trained to convergence** (`results/kitchen_to_food_menu.md`, "
                     f"{len(menu.config.seeds)} seed(s); {stop_line(menu)}): "
                     + _gain(menu, menu.gain(), f"best transfer on validation ({best}) vs the "
                             f"best baseline ({menu.best('baseline')[0]})")
                     + f"; {BAR} {BAR_RULE}: {target_line(menu)}"
                     + (f"; {best} vs sasrec (not the best baseline on validation): "
                        + comparison_text(menu, best, "sasrec")
                        if menu.best("baseline")[0] != "sasrec" and "sasrec" in menu.kinds() else "")
                     + "; against full fine-tuning, and zero-shot against popularity: "
                     + _pairs(menu, tuple((m, "full_finetune") for m in others) + (("zero_shot", "popularity"),))
                     + ".")
    if k2f is not None:
        caps = k2f.time_caps()
        lines.append(f"- **Kitchen → Food, first runs** (`results/kitchen_to_food.md`, {len(k2f.config.seeds)} seed(s), "
                     f"{caps['train'] or 'no'}-min cap per model, {k2f.info.get('device_name')}{_caveat(k2f)}): "
                     + _gain(k2f, k2f.gain_vs("text"), f"best transfer ({k2f.best('transfer')[0]}) vs the same model "
                             "trained on Food only") + "; "
                     + _gain(k2f, k2f.gain(), f"vs the best target-only baseline ({k2f.best('baseline')[0]})") + ".")
    if long is not None:
        lines.append(f"- **Longer budget** (`results/kitchen_to_food_long.md`, {long.time_caps()['train']}-min cap"
                     f"{_caveat(long)}): "
                     + _gain(long, long.gain(), f"{long.best('transfer')[0]} vs {long.best('baseline')[0]}") + "; "
                     + _gain(long, long.gain_vs("text"), "vs text-only") + ".")
    if conv is not None:
        lines.append(f"- **Trained to convergence** (`results/kitchen_to_food_converged.md`, {len(conv.config.seeds)} "
                     f"seed(s), no time cap; {stop_line(conv)}): "
                     + _gain(conv, conv.gain(), f"{conv.best('transfer')[0]} vs {conv.best('baseline')[0]} (the best "
                             "baseline on validation)") + "; "
                     + "; ".join(_gain(conv, conv.gain_vs(ref), f"vs {ref}") for ref in ("text", "sasrec")
                                 if ref != conv.best("baseline")[0]) + ".")
    tid_k2f = _latest(root, "kitchen_to_food_text_id")
    if tid_k2f is not None:
        lines.append(f"- **Text + ID on Kitchen → Food** (`results/kitchen_to_food_text_id.md`, "
                     f"{len(tid_k2f.config.seeds)} seed(s), the converged run plus `transductive`; best transfer "
                     f"on validation: {tid_k2f.best('transfer')[0]}): "
                     + _pairs(tid_k2f, (("transductive", "full_finetune"), ("transductive", "text"))) + ".")
    aid_k2f = _latest(root, "kitchen_to_food_adaptor_id")
    if aid_k2f is not None:
        lines.append(f"- **Text + ID with the encoder frozen on Kitchen → Food** (`results/{aid_k2f.name}.md`, "
                     f"{len(aid_k2f.config.seeds)} seed(s); {stop_line(aid_k2f)}): frozen_adaptor_id vs "
                     f"transductive: {comparison_text(aid_k2f, 'frozen_adaptor_id', 'transductive')}"
                     + "".join(f"; vs {b}: {versus_text(aid_k2f, 'frozen_adaptor_id', b, tid_k2f)}"
                               for b in ("full_finetune", "text") if tid_k2f is not None) + ".")
    mixed = _latest(root, "kitchen_to_food_mixed")
    if mixed is not None:
        found = {(c["method"], c["vs"]): c for c in mixed.comparisons}
        parts = [f"{a} vs {b} {_pct(found[(a, b)]['relative'])} ({interval_text(found[(a, b)])})"
                 for a, b in (("text_mixed", "text"), ("text_mixed", "sasrec_mixed"), ("sasrec_mixed", "sasrec"))
                 if (a, b) in found]
        if parts:
            lines.append(f"- **Kitchen items in the Food histories** (`results/kitchen_to_food_mixed.md`, "
                         f"{len(mixed.config.seeds)} seed(s), no pretraining): " + "; ".join(parts) + ".")
    mh = _latest(root, "kitchen_to_food_mixed_history")
    if mh is not None:
        lines.append(f"- **θ_s reading the Kitchen items** (`results/kitchen_to_food_mixed_history.md`, "
                     f"{len(mh.config.seeds)} seed(s); {stop_line(mh)}): "
                     + _pairs(mh, (("mixed_history", "full_finetune"), ("mixed_history", "text_mixed")))
                     + "; " + _gain(mh, mh.gain(), f"best transfer on validation ({mh.best('transfer')[0]}) vs "
                                    f"the best baseline ({mh.best('baseline')[0]})") + ".")
    lines += _searches_line(root, "kitchen_to_food", "Kitchen → Food")
    retrained = [r for r in (_latest(root, n) for n in K2F_RETRAINED) if r is not None]
    if menu is not None and retrained:
        again = "; ".join("; ".join(f"{m} with {settings_text(sets)}"
                                    f"{_settings_source(root, 'kitchen_to_food', m, sets)}"
                                    for m, sets in r.config.per_method.items()) + _theta_s_text(r, menu)
                          for r in retrained)
        try:
            verdict_text = target_across_line([menu, *retrained])
        except ValueError as exc:  # e.g. a GPU run beside CPU files: said, not compared
            verdict_text = f"not compared ({exc})"
        lines.append("- **Kitchen → Food with the settings chosen on validation** ("
                     + ", ".join(f"`results/{r.name}.md`" for r in retrained)
                     + f", {len(retrained[0].config.seeds)} seed(s); retrained: {again}; each retrained method "
                     f"one more candidate beside its menu row): {BAR} {BAR_RULE}: "
                     f"{verdict_text}"
                     + "".join(f"; {m} with its searched settings vs the menu's {m}: "
                               f"{across_files_text(r, m, menu, m) if m in menu.kinds() else 'not in the menu'}"
                               for r in retrained for m in r.config.per_method
                               if r.kinds().get(m) == "baseline")
                     + _theta_s_effect(retrained) + ".")
    joint = _latest(root, "kitchen_to_food_joint")
    if joint is not None:
        lines.append(f"- **Joint training on Kitchen and Food** (`results/kitchen_to_food_joint.md`, "
                     f"{len(joint.config.seeds)} seed(s); {stop_line(joint)}): "
                     + "; ".join(f"joint vs {b}: {versus_text(joint, 'joint', b, conv)}"
                                 for b in ("full_finetune", "text", "sasrec")
                                 if b in joint.kinds() or (conv is not None and b in conv.kinds())) + ".")
    if cold is not None and cold.cold_start:
        lines.append(_curve_line(cold, conv))
    extra = _latest(root, "cold_start_fusion", having="cold_start")
    if extra is not None:  # another strategy retrained where the curve's showed no lead over text
        strategy = extra.config.cold_start.strategy
        lines.append(_curve_line(extra, None, f"{strategy.capitalize()} on the cold-start curve"))
    searched = _latest(root, "cold_start_searched", having="cold_start")
    if searched is not None:  # a curve point with every model's settings from a validation search
        lines.append(_searched_point_line(searched, menu))
    for name in ("cold_start_batch", "cold_start_batch_wide"):  # curve points again, another batch size
        batch = _latest(root, name, having="cold_start")
        if batch is None or cold is None:
            continue
        try:
            lines.append(_batch_line(cold, batch))
        except ValueError as exc:  # e.g. a part published before its seeds were combined: said, not read
            lines.append(f"- **`results/{batch.name}.md`**: not compared with `results/{cold.name}.md` ({exc}).")
    cg = next((g for g in (r.cold_user_gain() for r in (cold, k2f) if r is not None) if g), None)
    if cg is not None:
        lines.append(f"- **Cold users** (no Food history, none of their Food interactions in any model; "
                     f"{cg['seeds']} seed(s)): {cg['best_mapping']} (chosen on validation) vs popularity "
                     f"{_pct(cg['relative_gain'])} ({interval_text(cg.get('comparison'))}).")
    if sci is not None:
        lines.append(f"- **Kitchen + Food → Scientific** (`results/{sci.config.name}.md`, "
                     f"{len(sci.config.seeds)} seed(s); {stop_line(sci)}): "
                     + _gain(sci, sci.gain_vs("text"), "best transfer vs the same text model trained on Scientific only")
                     + ".")
    tid = _latest(root, "sources_to_scientific_text_id")
    if tid is not None:
        lines.append(f"- **Text + ID on Scientific** (`results/sources_to_scientific_text_id.md`, "
                     f"{len(tid.config.seeds)} seed(s)): transductive vs text + ID trained on Scientific only: "
                     + comparison_text(tid, "transductive", "text_id")
                     + "; transductive vs the text model trained on Scientific only: "
                     + comparison_text(tid, "transductive", "text")
                     + f"; text + ID vs text, both target-only: {comparison_text(tid, 'text_id', 'text')}.")
    uid = _latest(root, "sources_to_scientific_adaptor_id")
    if uid is not None:
        lines.append(f"- **Text + ID fine-tuned as UniSRec does it** (`results/{uid.name}.md`, "
                     f"{len(uid.config.seeds)} seed(s); {stop_line(uid)}; θ_s of the capped run): the sequence "
                     "encoder frozen vs trained (frozen_adaptor_id vs transductive): "
                     + comparison_text(uid, "frozen_adaptor_id", "transductive")
                     + "; vs the text + ID model trained on Scientific only: "
                     + comparison_text(uid, "frozen_adaptor_id", "text_id")
                     + "; vs the text model trained on Scientific only: "
                     + comparison_text(uid, "frozen_adaptor_id", "text")
                     + "; against UniSRec's text + ID row: "
                     + published_gap_text(uid, "frozen_adaptor_id", "scientific", "UniSRec",
                                          "text + ID (transductive)", "recall@10") + " on recall@10.")
    lines += _scientific_tuned(root, _latest(root, "sources_to_scientific_converged"), tid)
    lines += _scientific_width(root)
    lines += _scientific_schedule(root)
    size_file = root / "results" / "encoder_size.json"
    if size_file.is_file():
        lines.append(_encoder_line(json.loads(size_file.read_text(encoding="utf-8"))))
    ml = _latest(root, "movielens")
    if ml is not None:
        own = ", ".join(sorted(ml.config.per_method)) or "none"
        lines.append(f"- **MovieLens-1M → MovieLens-100K** (`results/movielens.md`, {len(ml.config.seeds)} seed(s), "
                     f"each method's own settings from a validation search: {own}): "
                     + _gain(ml, ml.gain(), f"{ml.best('transfer')[0]} vs {ml.best('baseline')[0]} (the best "
                             "baseline on validation)")
                     + ("" if ml.best("baseline")[0] == "text"
                        else "; " + _gain(ml, ml.gain_vs("text"), "vs the same text model trained on 100K only"))
                     + ".")
    return "\n".join(lines) if lines else "No full-scale results are committed yet."


def _theta_s_diff(res: Results, menu: Results) -> dict:
    """The θ_s settings (``pretrain.*``, ``model.*``) in which a file differs from the menu (``{}``: it
    fine-tunes the menu's θ_s)."""
    mine = flatten(res.config.to_dict())
    return {k: mine[k] for k in setting_differences(res, menu, ("pretrain.", "model.")) if k in mine}


def _theta_s_text(res: Results, menu: Results) -> str:
    """``" — fusion from a θ_s pretrained with pretrain.lr=…"``: :func:`_theta_s_diff` said after a
    retrained file's methods; ``""`` where it fine-tunes the menu's θ_s."""
    diff = _theta_s_diff(res, menu)
    trained = " and ".join(m for m in (*res.config.strategies, *res.config.baselines) if m in res.config.per_method)
    return f" — {trained} from a θ_s pretrained with {settings_text(diff)}" if diff else ""


def _theta_s_effect(retrained: list[Results]) -> str:
    """``"; θ_s pretrained with the text search's recipe … vs the menu's θ_s: …"``: fusion of
    ``kitchen_to_food_source_tuned`` against ``kitchen_to_food_fusion_dropout``, the retrained pair meant
    to fine-tune alike from two θ_s (:func:`xdtutor.readings.theta_s_effect_text` checks that they do);
    ``""`` until both exist."""
    found = {r.name: r for r in retrained}
    new, old = found.get("kitchen_to_food_source_tuned"), found.get("kitchen_to_food_fusion_dropout")
    if new is None or old is None:
        return ""
    return ("; θ_s pretrained with the text search's recipe and a larger epoch budget vs the menu's θ_s: "
            + theta_s_effect_text(new, old, "fusion"))


def _settings_source(root: Path, prefix: str, method: str, sets: dict) -> str:
    """Where a retrained method's settings came from: its own validation search (nothing to add), or
    another method's search whose best trial they copy by hand (said, so they are not read as chosen
    for this method on validation)."""
    import json

    best = {path.stem[len(f"tune_{prefix}_"):]:  # each search's best trial, read once
            (json.loads(path.read_text(encoding="utf-8")).get("best") or {}).get("params", {})
            for path in sorted((root / "results").glob(f"tune_{prefix}_*.json"))}
    if method in best and all(best[method].get(k) == v for k, v in sets.items()):
        return ""
    # the search whose best trial shares the most of these values, the same keys first (a value may
    # also have moved to another key, e.g. a model's dropout set as the transfer's)
    ranked = sorted(best, key=lambda m: (-sum(best[m].get(k) == v for k, v in sets.items()),
                                         -sum(v in best[m].values() for v in sets.values())))
    for other in ranked[:1]:
        shared = [k for k, v in sets.items() if v in best[other].values()]
        if shared:
            return (f" (the values of the {other} search's best trial, copied by hand"
                    + ("" if len(shared) == len(sets) else f" for {', '.join(shared)}; the rest set by hand") + ")")
    return " (set by hand)"


def _searches_line(root: Path, prefix: str, title: str) -> list[str]:
    """One findings line summing up the committed searches ``results/tune_<prefix>_*.json`` (none: no line)."""
    searches = committed_searches(root / "results", prefix)
    if not searches:
        return []
    return [f"- **{title} settings chosen on validation** (`results/tune_{prefix}_*.md`; one seed, validation "
            "users only, test not read): " + "; ".join(s.summary() for s in searches) + "."]


def _scientific_tuned(root: Path, conv: Results | None, tid: Results | None) -> list[str]:
    """The Scientific searches and the target-only models retrained with their settings: the source's
    effect with every variant a candidate, and the like-with-like gaps to UniSRec's published rows."""
    lines = _searches_line(root, "scientific", "Scientific")
    tuned = _latest(root, "scientific_tuned")
    if tuned is None or conv is None or tid is None:
        return lines
    found = retrained_reading({"text": conv, "text_id": tid}, tuned, "scientific", "UniSRec", SETTING_METHODS)
    lines.append(f"- **Scientific with the settings chosen on validation** (`results/scientific_tuned.md`, "
                 f"{len(tuned.config.seeds)} seed(s)): {found['retrained']}; {found['source']}; against UniSRec "
                 "in the same feature setting (text only, text + ID; the best of each on validation; the "
                 "encoder and the source data still differ, chapter 7.1): " + found["published"] + ".")
    return lines


def _scientific_schedule(root: Path) -> list[str]:
    """The text model on Scientific under the transfer configs' epoch budget and warm-up against the
    references' (``scientific_schedule`` vs ``scientific_baselines``): which one validation chooses, and
    the test difference over the seeds."""
    sched, base = _latest(root, "scientific_schedule"), _latest(root, "scientific_baselines")
    if sched is None or base is None:
        return []
    valid = [r.valid_means()["text"] for r in (sched, base)]
    return [f"- **The text model's schedule on Scientific** (`results/{sched.name}.md`, "
            f"{len(sched.config.seeds)} seed(s); {stop_line(sched)}): text with "
            f"{settings_text(sched.config.per_method['text'])} vs the references' schedule "
            f"(`results/{base.name}.md`): validation N@10 {valid[0]:.4f} vs {valid[1]:.4f} "
            f"({'the first' if valid[0] > valid[1] else 'the second'} chosen on validation); test N@10 "
            + across_files_text(sched, "text", base, "text") + "."]


def _scientific_width(root: Path) -> list[str]:
    """The wider models on Scientific, chosen and run on a GPU: what the searches chose, the searched text
    model against its same-device reference, then each against UniSRec's row of its feature setting."""
    width = _latest(root, "scientific_width")
    if width is None:
        return []
    ref = _latest(root, "scientific_width_reference")
    found = width_reading(width, ref, committed_searches(root / "results", "scientific", "scientific_width"))
    against_own = ("" if ref is None else
                   "the searched text model against the same model with the experiment's own settings, "
                   f"trained on a second {ref.info.get('device_name')} of the same image, library versions "
                   f"and encoder copy (`results/{ref.name}.md`): {found['vs_own']}; ")
    return [f"- **Scientific with the width searched too** (`results/scientific_width.md`, "
            f"{len(width.config.seeds)} seed(s), on {width.info.get('device_name')}; searched and run there, so "
            "not compared with the CPU rows above): " + (f"{found['searches']}; " if found["searches"] else "")
            + against_own + "against UniSRec in the same feature setting (ours trained on Scientific alone, "
            "UniSRec's pretrained on five categories first): " + found["published"] + "."]


def _encoder_line(size: dict) -> str:
    """The bigger encoder (``results/encoder_size.json``): the text model's change on each target, and
    the change of the transfer gain where it was measured."""
    parts = [f"{target} {_pct(sec['difference']['relative'])} ({interval_text(sec['difference'])})"
             for target, sec in size["targets"].items()]
    line = ("- **Bigger encoder** (`results/encoder_size.md`, all-mpnet-base-v2 vs all-MiniLM-L6-v2, the "
            "target-only text model): " + "; ".join(parts))
    for target, sec in size["targets"].items():
        t = sec.get("transfer")
        if t:
            line += (f"; change of the {target} transfer gain ({t['method']} vs text, mpnet − MiniLM, user by "
                     f"user, NDCG@10): {difference_text(t['change'])}")
    return line + "."


def _curve_line(cold: Results, conv: Results | None, title: str = "Cold-start curve") -> str:
    """The cold-start curve: at each point, the strategy vs the best target-only model on validation."""
    stops = curve_stop_line(cold)
    head = (f"- **{title}** (`results/{cold.config.name}.md`, {len(cold.config.seeds)} seed(s)"
            + (f"; {stops}" if stops else ""))
    table = curve_comparisons(cold, conv)
    best = table[table["best"].astype(bool)]
    others = table[~table["best"].astype(bool)]
    if best.empty:  # an older file: no validation scores and no intervals to report
        fractions = sorted({r["fraction"] for r in cold.cold_start})
        return (f"{head}): {cold.config.cold_start.strategy} and the baselines retrained on "
                + ", ".join(f"{f:.0%}" for f in fractions) + " of the Food training users.")
    end = "; 100% = `results/kitchen_to_food_converged.md`" if conv is not None else ""
    return (f"{head}{end}): {cold.config.cold_start.strategy} vs "
            "the best target-only model on validation, by share of the Food training users: "
            + "; ".join(f"{r.fraction:.0%} vs {r.vs} {_curve_difference(r)}" for r in best.itertuples())
            + "; against the other baseline: "
            + "; ".join(f"{r.fraction:.0%} vs {r.vs} {_curve_difference(r)}" for r in others.itertuples()) + ".")


def _curve_difference(r) -> str:
    """``"+4.4% (no detectable difference, 95% interval of the difference [-0.0010, +0.0051])"`` for a row
    of :func:`xdtutor.curve_readings.curve_comparisons`."""
    return (f"{_pct(r.diff / r.reference)} ({r.verdict}, 95% interval of the difference "
            f"[{r.diff_low:+.4f}, {r.diff_high:+.4f}])")


def _searched_point_line(res: Results, menu: Results | None) -> str:
    """A cold-start point retrained with searched settings on both sides: the strategy against each
    baseline, paired over users in the one file."""
    strategy = res.config.cold_start.strategy
    theta = _theta_s_diff(res, menu) if menu is not None else {}
    return (f"- **The cold-start curve with searched settings** (`results/{res.name}.md`, "
            f"{len(res.config.seeds)} seed(s); {curve_stop_line(res)}; "
            + "; ".join(f"{m} with {settings_text(sets)}" for m, sets in res.config.per_method.items()
                        if m in (strategy, *res.config.cold_start.baselines))
            + (f"; {strategy} from a θ_s pretrained with {settings_text(theta)}" if theta else "")
            + "; values chosen with all the users, a prior at these points — chapter 5.6 reads which values "
            "validation prefers at each): "
            + "; ".join(f"at {r.fraction:.0%}, {strategy} vs {r.vs} {_curve_difference(r)}"
                        for r in curve_comparisons(res).itertuples()) + ".")


def _batch_line(cold: Results, batch: Results) -> str:
    """Cold-start points retrained with the curve's own batch size: at each point, each model's batch
    size chosen on validation, then the strategy against the better baseline.

    Raises:
        ValueError: If the two files trained with the same batch size, or from the report's checks.
    """
    fractions = batch.config.cold_start.fractions
    before, after = curve_batch_size(cold), curve_batch_size(batch)
    if before == after:
        raise ValueError(f"{cold.name} and {batch.name} trained with the batch size of both = {after}")
    variants = {f"batch {before}": cold, f"batch {after}": batch}
    points = []
    for fraction in fractions:
        table = curve_setting_choice(variants, fraction)
        chosen = ", ".join(f"{r.method} {r.setting}" for r in table[table["chosen"]].itertuples())
        reading = curve_choice_reading(variants, fraction)  # against the better baseline on validation
        others = [b for b in batch.config.cold_start.baselines if f" vs {b} (" not in reading]
        reading += "".join(f"; against the other baseline, {curve_choice_reading(variants, fraction, vs=b)}"
                           for b in others)
        points.append((fraction, chosen, reading))
    where = " and ".join(f"{f:.0%}" for f in fractions) + f" point{'s' * (len(fractions) > 1)}"
    head = (f"- **Batches of {after} at the cold-start curve's {where}** (`results/{batch.name}.md`, "
            f"{len(batch.config.seeds)} seed(s); every model retrained with batches of {after} beside "
            f"`results/{cold.name}.md`'s {before}" + (f"; {curve_stop_line(batch)}" if curve_stop_line(batch) else ""))
    if len(points) == 1:
        (_, chosen, reading), = points
        return f"{head}; chosen on validation: {chosen}): {reading}."
    return head + "): " + "; ".join(f"at {f:.0%} (chosen on validation: {chosen}): {reading}"
                                    for f, chosen, reading in points) + "."


def _pretraining_speed(root: Path) -> str:
    path = root / "benchmarks" / "results" / "negatives.json"
    if not path.is_file():
        return "(run `python -m benchmarks.bench_negatives` to measure it)"
    d = json.loads(path.read_text(encoding="utf-8"))
    step = {r["negatives"]: r["s_per_step"] for r in d["rows"]}
    s = d["summary"]
    return (f"On Kitchen ({s['catalogue_items']:,} items, batch {s['batch_size']}, "
            f"{d['env'].get('torch_threads', '?')} CPU thread) a pretraining step took {step['all']:.2f} s with the full "
            f"softmax and {step['in_batch']:.2f} s with in-batch negatives ({s['speedup_in_batch']:.1f}× faster; "
            "`python -m benchmarks.bench_negatives --threads 1`, `benchmarks/results/negatives.json`).")


def _source_yardstick(root: Path) -> str:
    path = root / "results" / "source_popularity.json"
    if not path.is_file():
        return "Run `python scripts/source_popularity.py` to measure it."
    rows = json.loads(path.read_text(encoding="utf-8"))["rows"]
    values = ", ".join(f"{r['ndcg@10']:.4f}" for r in rows)
    return (f"Kitchen Popularity reaches a validation NDCG@10 of {values} on {rows[0]['users']:,} source "
            f"validation users (seeds {', '.join(str(r['seed']) for r in rows)}; `python scripts/source_popularity.py`, "
            "`results/source_popularity.json`): a source model must beat that to have learned anything.")


def _encoding_line(rows: list[dict], s: dict) -> str:
    speed = {r["impl"]: r for r in rows if r.get("precision") == "fp32"}
    return (f"Encoding {speed['xdtutor']['texts']:,} Food+Kitchen titles: xdtutor {speed['xdtutor']['texts_per_s']:.0f} "
            f"texts/s vs sentence-transformers {speed['sentence-transformers']['texts_per_s']:.0f} texts/s; paired "
            f"speed ratio {s['speed_ratio_xdtutor_over_peer_fp32']:.2f} (rounds "
            + " / ".join(f"{x:.2f}" for x in s["speed_ratio_per_round_fp32"])
            + f"); embeddings equal to {s['max_abs_diff_fp32']:.0e}")


def _evaluation_line(rows: list[dict], s: dict) -> str:
    parts = []
    for cat, c in ((k, v) for k, v in s.items() if isinstance(v, dict) and "speed_ratio_vs_loop" in v):
        ours = next(r for r in rows if r["catalogue"] == cat and r["impl"] == "xdtutor.evaluate")
        parts.append(f"{cat.capitalize()} ({ours['items']:,} items, {ours['users']:,} users) "
                     f"{ours['users_per_s']:,.0f} users/s, {c['speed_ratio_vs_loop']:.1f}× the per-user loop and "
                     f"{c['speed_ratio_vs_torchmetrics']:.0f}× torchmetrics, ranks equal to the loop's for "
                     f"{100 * c['ranks_equal_loop_fraction']:.1f} % of users")
    return "Full-ranking evaluation: " + "; ".join(parts)


def _training_line(rows: list[dict], s: dict, target: str) -> str:
    def setting(r: dict) -> str:  # files written before --precision have no precision column
        return f"chunk_rows={r['chunk_rows']}" + (f", {r['precision']}" if r.get("precision") else "")

    epochs = "; ".join(f"{r['model']} ({setting(r)}) {_seconds(r['epoch_s'])}" for r in rows)
    line = f"One training epoch on {target} ({rows[0]['rows']:,} windows, batch {s['batch_size']}): {epochs}"
    if s.get("speedup"):  # bench_training: training sequences/s of its last chunk_rows over its first
        first, last = rows[0]["chunk_rows"], rows[-1]["chunk_rows"]
        line += (f"; chunk_rows={last} vs {first}, training sequences/s: "
                 + ", ".join(f"{m} {x:.2f}×" for m, x in s["speedup"].items()))
    return line


def _seconds(x: float) -> str:
    return f"{x:.2f} s" if x < 1 else f"{x:.1f} s"


def _gpu_vs_cpu(root: Path) -> str | None:
    """One Scientific training epoch: the GPU's default settings (``training_fp32.json``) against the CPU
    file's fastest setting per model (``benchmarks/results/training.json``), or None without both."""
    gpu, cpu = root / "benchmarks/results/gpu/training_fp32.json", root / "benchmarks/results/training.json"
    if not (gpu.is_file() and cpu.is_file()):
        return None
    g, c = (json.loads(f.read_text(encoding="utf-8")) for f in (gpu, cpu))
    parts = []
    for r in g["rows"]:
        best = min((x for x in c["rows"] if x["model"] == r["model"]), key=lambda x: x["epoch_s"], default=None)
        if best:
            parts.append(f"{r['model']} {_seconds(r['epoch_s'])} vs {_seconds(best['epoch_s'])} "
                         f"(chunk_rows={best['chunk_rows']}), {best['epoch_s'] / r['epoch_s']:.1f}×")
    where = (f"{g['env'].get('device_name')}, an epoch after a warm-up one, vs {c['env'].get('device_name')} with "
             f"{c['env'].get('torch_threads')} thread, the file's epochs")
    return f"* One training epoch on Scientific, GPU vs CPU ({where}): " + "; ".join(parts) + "." if parts else None


def _step_line(rows: list[dict], s: dict, what: str, other: str) -> str:
    step = {r["negatives"]: r["s_per_step"] for r in rows}
    return (f"A {what} step ({s['catalogue_items']:,} items, batch {s['batch_size']}): {step['all']:.2f} s with the "
            f"full softmax, {step[other]:.2f} s with `{other}` ({step['all'] / step[other]:.1f}×)")


def _recbole_line(rows: list[dict], s: dict) -> str:
    ours, theirs = s["test_ndcg@10_mean_sd"]["xdtutor"], s["test_ndcg@10_mean_sd"]["RecBole"]
    c = s["test_ndcg@10_diff"]
    same = s.get("time_to_converged_ratio_same_patience")  # like for like: RecBole ran with one more epoch of patience
    converged = (f"{same:.1f}× faster to a converged model with the same patience" if same is not None
                 else f"{s['time_to_converged_ratio']:.1f}× faster to a converged model")
    return (f"SASRec beside RecBole on Scientific ({s['seeds']} seeds): {converged}, {s['train_epoch_ratio']:.1f}× "
            f"per epoch, {s['eval_speed_ratio']:.1f}× in evaluation; test NDCG@10 {ours[0]:.4f} ± {ours[1]:.4f} vs "
            f"{theirs[0]:.4f} ± {theirs[1]:.4f} (difference [{c['diff_low']:+.4f}, {c['diff_high']:+.4f}] over seeds)")


def _scaling_line(rows: list[dict], s: dict) -> str:
    laws = ", ".join(f"{k.split(' ~ ')[0]} ∝ ({k.split(' ~ ')[1].replace('*', ' × ')})^{v['b']:.2f}"
                     for k, v in s["power_laws"].items())
    return f"Scaling on Kitchen slices (power laws fitted over the slices): {laws}"


def _memory_line(rows: list[dict], s: dict) -> str:
    largest = max(r["items"] for r in rows)
    return (f"Peak memory of a training step: {s['chunked_step_mib_per_1k_items']:.1f} MiB per 1,000 catalogue "
            f"items with chunked logits; at {largest:,} items the unchunked peak is "
            f"{s['unchunked_over_chunked_peak_at_largest']:.1f}× the chunked one")


def _end_to_end_line(rows: list[dict], s: dict) -> str:
    walls = [r["wall_s"] for r in rows if r.get("status") == "ok"]
    scale = rows[0].get("scale", "ci")
    warm = ", embedding cache warm" if scale == "ci" else ""  # how the CPU rows were measured
    parts = [f"{min(walls):.0f}–{max(walls):.0f} s per config, {len(walls)} configs{warm}"] if walls else []
    for r in rows:  # a full-scale run: beside its committed run; a stopped one: how far it got
        if r.get("status") != "ok":
            progress = r.get("progress") or {}
            reached = ", ".join(f"{'source pretraining' if k.startswith('source/') else k} "
                                f"{'ended ' if k in progress.get('ended', []) else ''}at epoch {e}"
                                for k, e in progress.get("last_epoch", {}).items())
            done = len(progress.get("finished", []))
            parts.append(f"`{r['config']}` {r['status']}, {done} trainings finished"
                         + (f", {reached} reached" if reached else ""))
        elif r.get("committed_wall_s"):
            parts.append(f"`{r['config']}` {r['wall_s']:.0f} s")
        ref = r.get("committed")
        if ref:
            trained = ", ".join(f"{t['method']} {t['train_s']:.0f} s" for t in ref["trainings"])
            parts[-1] += f" (its part in `{ref['file']}`, on {ref['device']}: {ref['wall_s']:.0f} s; {trained})"
    return f"`xdtutor run` at `scale: {scale}`: " + "; ".join(parts)


#: benchmarks/results/<name>.json -> its line of the benchmarks README (from the file's rows and summary)
BENCH_LINES = {
    "encoding": _encoding_line,
    "evaluation": _evaluation_line,
    "training": lambda rows, s: _training_line(rows, s, "Scientific"),
    "training_food": lambda rows, s: _training_line(rows, s, "Food"),
    "training_fp32": lambda rows, s: _training_line(rows, s, "Scientific"),
    "negatives": lambda rows, s: _step_line(rows, s, "Kitchen pretraining", "in_batch"),
    "joint": lambda rows, s: _step_line(rows, s, "joint Kitchen + Food training", "per_domain"),
    "recbole": _recbole_line,
    "scaling": _scaling_line,
    "memory": _memory_line,
    "end_to_end": _end_to_end_line,
}


def _benchmarks(root: Path, folder: str = "benchmarks/results") -> str:
    """The benchmarks README's summary: a line per ``<folder>/*.json`` file (:data:`BENCH_LINES`;
    a file without a formatter is named, so a new benchmark is not left out silently), with the load
    average it started under (the machines are shared)."""
    lines = []
    for path in sorted((root / folder).glob("*.json")):
        d = json.loads(path.read_text(encoding="utf-8"))
        if path.stem not in BENCH_LINES:
            lines.append(f"* `{path.name}`: no summary line yet (`xdtutor.docs.BENCH_LINES`); see `results/latest.md`.")
        else:
            line, env = BENCH_LINES[path.stem](d["rows"], d["summary"]), d.get("env", {})
            lines.append(f"* {line} (`{path.name}`; {env.get('device_name', '?')}, {env.get('cpu_count', '?')} "
                         f"cores, torch threads {env.get('torch_threads', '?')}, load "
                         f"{env.get('load_avg_1min_start', float('nan')):.1f} at the start).")
    return "\n".join(lines) or (f"No benchmark has been run yet (`{folder}` is empty)."
                                if folder != "benchmarks/results" else
                                "No benchmark has been run yet (`python -m benchmarks.run_all`).")


def snippets(root: str | Path) -> dict[str, str]:
    """Every generated region's text, by name, from the files under ``root`` (the repository)."""
    root = Path(root)
    return {"findings": _findings(root), "pretraining_speed": _pretraining_speed(root),
            "source_yardstick": _source_yardstick(root), "benchmarks": _benchmarks(root),
            "gpu_benchmarks": "\n".join(filter(None, [_benchmarks(root, "benchmarks/results/gpu"), _gpu_vs_cpu(root)]))}


def render(text: str, values: dict[str, str]) -> str:
    """``text`` with every generated region replaced by ``values[name]``.

    Raises:
        KeyError: For a region whose name has no snippet.
    """
    def fill(m: re.Match) -> str:
        if m.group(2) not in values:
            raise KeyError(f"no generated text named {m.group(2)!r} (known: {sorted(values)})")
        return f"{m.group(1)}{values[m.group(2)].rstrip()}\n{m.group(4)}"
    return REGION.sub(fill, text)


def update(root: str | Path, *, check: bool = False) -> list[Path]:
    """Rewrite the generated regions of :data:`PAGES` (with ``check``, only list the pages that differ)."""
    root = Path(root)
    values = snippets(root)
    stale = []
    for page in PAGES:
        path = root / page
        old = path.read_text(encoding="utf-8")
        new = render(old, values)
        if new != old:
            stale.append(path)
            if not check:
                path.write_text(new, encoding="utf-8")
    return stale
