"""Rendering :class:`~xdtutor.results.Results` for people: text, Markdown and figures.

Nothing here computes a number; every value comes from the results model (:mod:`xdtutor.results`)
and published numbers from :mod:`xdtutor.published`; the sentences that say a difference, a curve point
or a gap to a published number are :mod:`xdtutor.readings`, :mod:`xdtutor.curve_readings` and
:mod:`xdtutor.published_readings`. ``xdtutor run`` prints :func:`text_table`,
:func:`write_run` writes a run folder (data, figures, ``report.md``), and ``xdtutor publish``
writes ``results/<name>.{json,md}`` with :func:`markdown`, keeping a hand-written ``## Notes``
section (:func:`keep_notes`).
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np

from . import plots
from .config import without_seed_override
from .curve_readings import cold_start_frame
from .published_readings import published_markdown
from .readings import comparison_text, mean_std, stored_comparison_text
from .stats import METHOD as STATS_METHOD
from .utils import atomic_write, format_seconds, write_json

if TYPE_CHECKING:  # type hints only: xdtutor.results imports the training stack; a reading needs the file only
    from .results import Results


NOTES_HEADING = "## Notes"


def text_table(res: Results) -> str:
    """The results table with the protocol line (what ``xdtutor run`` prints)."""
    s = res.summary()
    lines = [res.info.get("protocol_line", ""), f"seeds: {list(res.config.seeds)}; scale: {res.config.scale}; "
             f"device: {res.info.get('device', '?')}"]
    # at most 100 characters wide, so a notebook page shows it without scrolling (chapter 6); the total
    # parameter count is in the run's report.md
    w = max([15, *(len(m) + 1 for m in s["method"])])  # a long method name still leaves a space before its kind
    header = (f"{'method':<{w}}{'kind':<9}{'R@10':>16}{'N@10':>16}{'N@10 ovl':>9}{'N@10 tgt':>9}"
              f"{'trainable':>10}{'train s':>8}")
    lines += [header, "-" * len(header)]
    for _, r in s.iterrows():
        lines.append(f"{r['method']:<{w}}{r['kind']:<9}{mean_std(r['recall@10'], r['recall@10_std']):>16}"
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
    if len(res.config.seeds) > 1:  # a combined run (older files kept a part's own override)
        overrides = without_seed_override(overrides)
    lines = [f"# {res.name}", "",
             f"- date: {info.get('date')}; device: {info.get('device')} ({info.get('device_name')}, "
             f"{info.get('torch_threads')} torch threads); wall time: {info.get('wall_seconds', 0):.0f} s"
             + (f" (the longest of {len(parts)} parts, run as separate processes; "
                f"{info['compute_seconds']:.0f} s summed)" if parts else ""),
             f"- training time behind these numbers: {format_seconds(training_seconds(res))}, summed over every trained "
             "model and source model, all seeds and every invocation of a resumed run (the wall time above "
             "counts the last invocation only)",
             f"- seeds: {info.get('seeds')}; scale: {res.config.scale}; overrides: {' '.join(overrides) or '-'}",
             *([f"- item text encoder: {info.get('encoder_id')} (weights sha256 {info['encoder_sha256'][:12]}…, "
                f"{info.get('encoder_precision')})"] if info.get("encoder_sha256") else []),
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
    trained = [m for m, k in res.kinds().items() if k == "baseline" and m != "popularity"]
    if g and not trained:  # e.g. a file that trained one strategy beside another file's baselines
        lines += [f"Best transfer ({g['best_transfer']}) vs popularity, the only target-only baseline in this "
                  f"file (the trained baselines it is read against are in another file: see the notes): "
                  f"NDCG@10 {g['transfer']:.4f} vs {g['baseline']:.4f} "
                  f"({comparison_text(res, g['best_transfer'], g['best_baseline'])}).", ""]
    elif g:
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
        kinds = sorted({c["interval"] for c in res.comparisons if c.get("interval")})  # as each was computed
        how = ("an interval over the seeds' test means only, as each row says: this earlier run kept no "
               "per-user results" if older else "; ".join(kinds) or STATS_METHOD)
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
