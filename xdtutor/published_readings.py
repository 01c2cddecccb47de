"""Our results beside published ones: like with like (text only with text only, text + ID with text + ID),
each gap with an interval over our seeds, and the two setups side by side (:func:`setup_differences`).
The published numbers themselves are in :mod:`xdtutor.published` (typed once, in ``published.yaml``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Mapping

import numpy as np
import pandas as pd

from .published import METRICS as PUBLISHED_METRICS
from .published import SETTING_METHODS, published_table, published_value, sources
from .readings import across_files_said, across_files_text, best_across, mean_std, settings_text
from .stats import value_difference, verdict

if TYPE_CHECKING:  # type hints only: xdtutor.results imports the training stack; a reading needs the file only
    from .results import Results


#: What a ``TrainConfig.negatives`` setting puts in the softmax, in words (the setup tables).
NEGATIVES_SAID = {"all": "all items", "in_batch": "the batch",
                  "per_domain": "the target's items for a target next item, the batch's for a source one"}


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
    c = published_difference(res, method, dataset, model, setting, metric)
    ref = c["reference"]
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


def published_difference(res: Results, method: str, dataset: str, model: str, setting: str,
                         metric: str = "ndcg@10") -> dict:
    """``method``'s per-seed test ``metric`` in ``res`` against a published number: the one-sample
    interval over our seeds of :func:`xdtutor.stats.value_difference` (read it with
    :func:`xdtutor.stats.verdict`), with the published value as ``"reference"``.

    Raises:
        KeyError: If ``res`` has no rows of ``method`` or the published table has no such row.
    """
    ref = published_value(dataset, model, setting, metric)
    return {**value_difference(res.test_values(method, metric), ref), "reference": ref}


def width_reading(width: Results, reference: Results | None, searches: list) -> dict[str, str | None]:
    """What a run with searched widths shows (``results/scientific_width.json``), in three parts.

    Args:
        width: The run of the searched settings.
        reference: The same experiment's text model with its own settings on the same device kind, or
            ``None`` before it ran.
        searches: The searches whose choices ``width`` ran (:func:`xdtutor.tune_results.committed_searches`).

    Returns:
        ``"searches"``: their summaries, the text model's first; ``"vs_own"``: the searched text model
        against the reference's (:func:`xdtutor.readings.across_files_said`), ``None`` without one;
        ``"published"``: :func:`published_gaps` against UniSRec in the same feature settings.
    """
    return {"searches": "; ".join(s.summary() for s in sorted(searches, key=lambda s: s.config.method)),
            "vs_own": None if reference is None else across_files_said(width, "text", reference, "text"),
            "published": "; ".join(published_gaps([width], "scientific", "UniSRec", SETTING_METHODS))}


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
