"""Log-log plot of the scaling benchmark (``results/scaling.json``).

``plot_scaling(rows, fits=None, ax=None) -> ax`` draws, per stage, the measured seconds against
the stage's size (titles encoded, catalogue items for a training step, users × items for
evaluation) with the fitted power law as a dashed line. From the command line it re-draws the PNG
from a JSON result: ``python -m benchmarks.plot_scaling [results/scaling.json] [out.png]``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

#: stage label -> (size column or product of columns, seconds column, power-law key)
STAGES = {
    "encoding (s vs titles)": (("titles_encoded",), "encode_s", "encode_s ~ titles"),
    "training step (s vs items)": (("items",), "train_step_s", "train_step_s ~ items"),
    "evaluation (s vs users x items)": (("eval_users", "items"), "eval_s", "eval_s ~ users*items"),
}


def _size(row: dict, cols: Sequence[str]) -> float:
    return float(np.prod([row[c] for c in cols]))


def plot_scaling(rows: Sequence[dict], fits: dict | None = None, ax=None, title: str | None = None):
    """Draw measured seconds vs size per stage on log-log axes.

    Args:
        rows: The scaling benchmark's rows (dicts with the columns named in :data:`STAGES`).
        fits: Optional power laws ``{key: {"b", "c"}}`` (the JSON's ``summary["power_laws"]``),
            drawn dashed and quoted in the legend.
        ax: Matplotlib axes to draw on (a new figure when ``None``).
        title: Axes title.

    Returns:
        The axes.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4.2))
    for (label, (cols, ycol, key)), color in zip(STAGES.items(), ("C0", "C1", "C2")):
        x = np.array([_size(r, cols) for r in rows])
        y = np.array([r[ycol] for r in rows])
        fit = (fits or {}).get(key)
        legend = label if not fit else f"{label}: b = {fit['b']:.2f}"
        ax.loglog(x, y, "o-", color=color, label=legend)
        if fit and np.isfinite(fit.get("b", np.nan)):
            xs = np.geomspace(x.min(), x.max(), 20)
            ax.loglog(xs, fit["c"] * xs ** fit["b"], "--", color=color, alpha=0.6)
    ax.set_xlabel("size (titles, items, or users × items)")
    ax.set_ylabel("seconds")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def save_plot(rows: Sequence[dict], fits: dict | None, path: str | Path, title: str | None = None) -> Path:
    """Draw :func:`plot_scaling` into a new figure and save it as PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    plot_scaling(rows, fits, ax=ax, title=title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> Path:
    argv = sys.argv[1:] if argv is None else argv
    src = Path(argv[0]) if argv else Path(__file__).resolve().parent / "results" / "scaling.json"
    dst = Path(argv[1]) if len(argv) > 1 else src.with_suffix(".png")
    data = json.loads(src.read_text())
    env = data["env"]
    out = save_plot(data["rows"], data["summary"].get("power_laws"), dst,
                    title=f"Kitchen slices on {env['device']} ({env.get('device_name')}), {env['date_utc'][:10]}")
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
