"""Plots take data and an optional ax, return the ax, and never show()."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from xdtutor import plots  # noqa: E402
from xdtutor.train import History  # noqa: E402


def test_every_plot_returns_the_given_ax():
    h = History(epochs=[1, 2, 3], train_loss=[3.0, 2.5, 2.4],
                valid_metrics=[{"ndcg@10": 0.1}, {"ndcg@10": 0.2}, {"ndcg@10": 0.15}], best_epoch=2)
    summary = pd.DataFrame({"method": ["popularity", "lora"], "kind": ["baseline", "transfer"],
                            "ndcg@10": [0.02, 0.05], "ndcg@10_std": [0.0, 0.01]})
    rows = [{"fraction": f, "method": m, "metrics": {"ndcg@10": f * k}} for f in (0.1, 1.0)
            for m, k in (("text", 0.1), ("lora", 0.2))]
    fig, axes = plt.subplots(2, 3)
    assert plots.training_curves({"a": h, "b": h.to_dict()}, ax=axes[0, 0]) is axes[0, 0]
    assert len(axes[0, 0].lines) == 4  # two curves + two best-epoch stars
    assert plots.training_curves({"a": h}, ax=axes[0, 1], loss=True) is axes[0, 1]
    assert plots.metric_bars(summary, ax=axes[0, 2]) is axes[0, 2]
    assert len(axes[0, 2].patches) == 2
    assert plots.cold_start_curve(rows, ax=axes[1, 0]) is axes[1, 0]
    assert plots.similarity_heatmap(["a", "b"], np.eye(2), ax=axes[1, 1]) is axes[1, 1]
    ranks = np.array([1, 10, 100])
    assert plots.metric_by_rank(ranks, {"full": [1.0, 0.3, 0.0], "sampled": [1.0, 0.9, 0.5]}, ax=axes[1, 2]) is axes[1, 2]
    assert len(axes[1, 2].lines) == 2 and axes[1, 2].get_xscale() == "log"
    plt.close(fig)


def test_plots_check_their_input():
    with pytest.raises(KeyError, match="recall@10"):
        plots.metric_bars(pd.DataFrame({"method": ["x"], "ndcg@10": [0.1]}), "recall@10")
    with pytest.raises(ValueError, match="shape"):
        plots.similarity_heatmap(["a"], np.eye(2))
    with pytest.raises(ValueError, match="'full' has shape"):
        plots.metric_by_rank(np.arange(1, 4), {"full": [1.0, 0.5]})
    ax = plots.training_curves({})  # no ax: a new figure
    assert ax is not None
    plt.close("all")
