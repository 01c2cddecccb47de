"""Published numbers we compare with, read from ``published.yaml`` (the one place they are typed).

Each entry is one table of one source with the protocol and setup it was measured under, so a
comparison can say what is alike and what is not. :func:`published_table` gives the rows of a
dataset as a DataFrame; :func:`sources` the entries themselves.
"""

from __future__ import annotations

import functools
from importlib import resources

import pandas as pd
import yaml

METRICS = ("recall@10", "ndcg@10", "recall@50", "ndcg@50")
#: Our methods of each published setting, for comparing like with like (a text-only model with a
#: text-only row, text + ID with text + ID): the target-only baseline and the strategies of each
#: (text + ID transfer with everything trained, or UniSRec's way, the sequence encoder frozen).
SETTING_METHODS = {"text only (inductive)": ("text", "full_finetune"),
                   "text + ID (transductive)": ("text_id", "transductive", "frozen_adaptor_id")}


@functools.lru_cache(maxsize=1)
def sources() -> tuple[dict, ...]:
    """Every entry of ``published.yaml`` (``key``, ``source``, ``dataset``, ``protocol``, ``setup``, ``rows``)."""
    text = resources.files("xdtutor").joinpath("published.yaml").read_text(encoding="utf-8")
    return tuple(yaml.safe_load(text))


def published_table(dataset: str) -> pd.DataFrame:
    """The published rows for ``dataset``: columns ``model``, ``setting``, the metrics and ``source`` (its key)."""
    rows = [{"model": r["model"], "setting": r["setting"], **{m: r.get(m) for m in METRICS}, "source": s["key"]}
            for s in sources() if s["dataset"] == dataset for r in s["rows"]]
    return pd.DataFrame(rows, columns=["model", "setting", *METRICS, "source"])


def published_value(dataset: str, model: str, setting: str, metric: str) -> float:
    """One published number (``KeyError`` naming what was asked when there is none)."""
    t = published_table(dataset)
    hit = t[(t["model"] == model) & (t["setting"] == setting)]
    if hit.empty:
        raise KeyError(f"no published {model!r} ({setting}) on {dataset!r}; see xdtutor/published.yaml")
    return float(hit.iloc[0][metric])
