"""Results files of earlier formats, read into the current one (the numbers are never touched).

The results model (:mod:`xdtutor.results`) reads every committed ``results/*.json``; files written
before a change of the config sections or of the method names are upgraded here on reading, so
old runs stay readable next to new ones.
"""

from __future__ import annotations

import copy

from .config import ConfigError

FORMAT = "xdtutor.results/2"


def upgrade(d: dict) -> dict:
    """A results dict of any earlier format in the current one (the numbers are never touched).

    Format 1 (no ``format`` field) kept the EMCDR settings under ``transfer`` with ``mapping`` in
    ``strategies`` (the pipeline then fitted both mappings), and stored the training loops'
    ``device``, ``max_len`` and ``seed``, which now follow the experiment. An encoder section without
    ``loader`` (any format) was encoded by the transformers loader.
    """
    d = _encoder_loader(d)
    if d.get("format") == FORMAT:
        return d
    if "format" in d:
        raise ConfigError(f"unknown results format {d['format']!r} (this version reads {FORMAT!r})")
    d = copy.deepcopy(d)
    cfg = d.get("config", {})
    transfer = cfg.get("transfer") or {}
    transfer.pop("train", None)
    mapping = {k: transfer.pop(k) for k in ("ridge_alpha", "mlp_hidden", "mlp_epochs") if k in transfer}
    transfer.pop("mapping", None)
    strategies = list(cfg.get("strategies") or [])
    if "mapping" in strategies:
        strategies.remove("mapping")
        mapping["mappings"] = ["ridge", "mlp"]
    if "strategies" in cfg:
        cfg["strategies"] = strategies
    cfg["cold_users"] = mapping
    for section in ("pretrain", "train"):
        for key in ("device", "max_len", "seed"):
            (cfg.get(section) or {}).pop(key, None)
    # format 1: paired t-tests over users (seed-averaged) against the best baseline: p-values, no intervals
    d["comparisons"] = [{**t, "diff": t.get("mean_diff"), "about": "main"} for t in d.pop("significance", [])]
    if transfer.pop("lora_train_adaptor", True) and "lora" in cfg.get("strategies", []):
        _rename_method(d, "lora", "lora_adaptor")  # it trained the adaptor too: name it for what it trained
    d["format"] = FORMAT
    return d


def encoder_loader(encoder: dict) -> dict:
    """An encoder config saved before there were loaders (no ``loader`` key) was made by the transformers
    loader with its own pooling: say so, so it is read as what made it and not as today's default."""
    return encoder if not encoder or "loader" in encoder else {**encoder, "loader": "transformers"}


def _encoder_loader(d: dict) -> dict:
    encoder = (d.get("config") or {}).get("encoder")
    if not isinstance(encoder, dict) or "loader" in encoder:
        return d
    return {**d, "config": {**d["config"], "encoder": encoder_loader(encoder)}}


def _rename_method(d: dict, old: str, new: str) -> None:
    """Rename a method everywhere a results dict mentions it (format upgrades only)."""
    cfg = d["config"]
    cfg["strategies"] = [new if s == old else s for s in cfg["strategies"]]
    if (cfg.get("cold_start") or {}).get("strategy") == old:
        cfg["cold_start"]["strategy"] = new
    for row in d.get("runs", []) + d.get("cold_start", []) + d.get("comparisons", []):
        if row.get("method") == old:
            row["method"] = new
    if old in d.get("methods", {}):
        d["methods"] = {new if k == old else k: v for k, v in d["methods"].items()}
    if (d.get("gain") or {}).get("best_transfer") == old:
        d["gain"]["best_transfer"] = new
    d["histories"] = {(new + k[len(old):] if k.startswith(old + "/") else k): v
                      for k, v in d.get("histories", {}).items()}
    for row in d.get("cold_users", []):
        row["method"] = row["method"].replace(f"<-{old}", f"<-{new}")
