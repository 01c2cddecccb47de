"""Figures of the book and of ``xdtutor run``: each function takes data and an optional ``ax`` and
returns the ``ax`` it drew on. Nothing here calls ``plt.show()``.

* :func:`training_curves` — validation NDCG@10 (or training loss) per epoch from ``History`` objects;
* :func:`metric_bars` — one bar per method with error bars (std over seeds);
* :func:`cold_start_curve` — a metric against the fraction of target training users;
* :func:`similarity_heatmap` — a domain-similarity matrix;
* :func:`metric_by_rank` — what one target is worth at each full-ranking rank, under several protocols.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def _ax(ax):
    if ax is None:
        _, ax = plt.subplots()
    return ax


def _hist_dict(h: Any) -> dict:
    return h.to_dict() if hasattr(h, "to_dict") else dict(h)


def training_curves(histories: Mapping[str, Any], metric: str = "ndcg@10", *, ax=None, loss: bool = False):
    """One line per run: validation ``metric`` (or training loss when ``loss``) against the epoch.

    Args:
        histories: label -> :class:`~xdtutor.train.History` (or its ``to_dict()``).
        metric: Validation metric key.
        ax: Axes to draw on (new figure when ``None``).
        loss: Plot ``train_loss`` instead of the validation metric.
    """
    ax = _ax(ax)
    for label, h in histories.items():
        d = _hist_dict(h)
        epochs = d.get("epochs", [])
        if not epochs:
            continue
        ys = d["train_loss"] if loss else [m.get(metric, np.nan) for m in d.get("valid_metrics", [])]
        ax.plot(epochs, ys, marker="o", ms=3, label=label)
        best = d.get("best_epoch", 0)
        if not loss and best in epochs:
            ax.plot([best], [ys[epochs.index(best)]], "k*", ms=8)
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss" if loss else f"validation {metric}")
    if histories:
        ax.legend(fontsize=7, ncol=2)
    return ax


def metric_bars(summary: pd.DataFrame, metric: str = "ndcg@10", *, ax=None, title: str | None = None):
    """Bars of ``summary[metric]`` per method with ``summary[metric + '_std']`` error bars.

    Args:
        summary: A table with columns ``method``, ``metric``, optionally ``<metric>_std`` and ``kind``
            (``baseline`` bars are grey), e.g. :meth:`xdtutor.pipeline.Results.summary`.
    """
    ax = _ax(ax)
    if metric not in summary:
        raise KeyError(f"summary has no column {metric!r}; columns: {list(summary.columns)}")
    x = np.arange(len(summary))
    err = summary[f"{metric}_std"].to_numpy() if f"{metric}_std" in summary else None
    kinds = summary["kind"] if "kind" in summary else pd.Series(["transfer"] * len(summary))
    colors = ["0.6" if k == "baseline" else "C0" for k in kinds]
    ax.bar(x, summary[metric].to_numpy(), yerr=err, color=colors, capsize=3)
    ax.set_xticks(x)
    ax.set_xticklabels(summary["method"], rotation=30, ha="right")
    ax.set_ylabel(metric)
    if title:
        ax.set_title(title)
    return ax


def cold_start_curve(rows: Sequence[Mapping] | pd.DataFrame, metric: str = "ndcg@10", *, ax=None):
    """``metric`` against the fraction of target training users, one line per method (mean ± std over seeds).

    Args:
        rows: Records with ``fraction``, ``method`` and either ``metrics`` (a dict) or a ``metric`` column.
    """
    ax = _ax(ax)
    df = pd.DataFrame(rows)
    if metric not in df and "metrics" in df:
        df[metric] = [m[metric] for m in df["metrics"]]
    for method, g in df.groupby("method", sort=False):
        agg = g.groupby("fraction")[metric].agg(["mean", "std"]).sort_index()
        ax.errorbar(agg.index * 100, agg["mean"], yerr=agg["std"].fillna(0), marker="o", capsize=3, label=method)
    ax.set_xscale("log")
    points = sorted(df["fraction"].unique() * 100)  # ticks at the measured shares, not at powers of ten
    ax.set_xticks(points, [f"{p:g}" for p in points])
    ax.minorticks_off()
    ax.set_xlabel("target training users (%)")
    ax.set_ylabel(metric)
    ax.legend(fontsize=8)
    return ax


def similarity_heatmap(names: Sequence[str], matrix: np.ndarray, *, ax=None, title: str | None = None):
    """A labelled heatmap of a (K, K) similarity matrix with the values written in the cells."""
    ax = _ax(ax)
    matrix = np.asarray(matrix, dtype=float)
    if matrix.shape != (len(names), len(names)):
        raise ValueError(f"matrix has shape {matrix.shape}, expected ({len(names)}, {len(names)})")
    im = ax.imshow(matrix, cmap="viridis")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=30, ha="right")
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", color="w", fontsize=8)
    ax.figure.colorbar(im, ax=ax)
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def metric_by_rank(ranks: np.ndarray, curves: Mapping[str, np.ndarray], *, ax=None, ylabel: str = "NDCG@10"):
    """One line per protocol: a user's metric (or its expectation) against her target's full rank.

    Args:
        ranks: (R,) full-ranking ranks, increasing (drawn on a log axis).
        curves: label -> (R,) metric value at each rank, e.g. ``{"full ranking": ndcg_at_k(ranks, 10),
            "999 negatives": expected_sampled_metrics(ranks, N, 999)["ndcg@10"]}``.
        ax: Axes to draw on (new figure when ``None``).
        ylabel: The metric's name on the y axis.

    Raises:
        ValueError: A curve whose length differs from ``ranks``.
    """
    ax = _ax(ax)
    ranks = np.asarray(ranks)
    for label, values in curves.items():
        values = np.asarray(values, dtype=float)
        if values.shape != ranks.shape:
            raise ValueError(f"curve {label!r} has shape {values.shape}, the ranks {ranks.shape}")
        ax.plot(ranks, values, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("rank of the target under full ranking")
    ax.set_ylabel(ylabel)
    if curves:
        ax.legend(fontsize=8)
    return ax
