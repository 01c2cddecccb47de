"""scripts/encoder_size.py: the transfer gain on each side and its change between encoders."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xdtutor.stats import verdict

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "encoder_size.py"


def _script():
    spec = importlib.util.spec_from_file_location("encoder_size_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _folders(root: Path, side: str, gain: float) -> list[Path]:
    """One run folder per seed with a text model and a fine-tuned one ``gain`` above it for every user."""
    rng = np.random.default_rng({"small": 1, "large": 2}[side])  # two different text baselines
    out = []
    for seed in (0, 1, 2):
        folder = root / f"{side}{seed}"
        folder.mkdir()
        text = rng.random(200) / 5
        pd.DataFrame({"method": ["text"] * 200 + ["full_finetune"] * 200, "seed": seed, "user": [*range(200)] * 2,
                      "ndcg@10": [*text, *(text + gain)]}).to_csv(folder / "per_user.csv", index=False)
        runs = [{"method": m, "seed": seed, "metrics": {"ndcg@10": float(v.mean()), "recall@10": 0.1},
                 "valid_ndcg@10": 0.05, "best_epoch": 3, "stop_reason": "patience", "train_seconds": 1.0,
                 "trainable_params": 10} for m, v in (("text", text), ("full_finetune", text + gain))]
        (folder / "results.json").write_text(json.dumps({"runs": runs}))
        out.append(folder)
    return out


def test_transfer_section_measures_each_gain_and_its_change(tmp_path):
    script = _script()
    small, large = _folders(tmp_path, "small", 0.004), _folders(tmp_path, "large", 0.010)
    text_rows = pd.concat([script.runs_of(small, "text")[0].assign(method="small"),
                           script.runs_of(large, "text")[0].assign(method="large")], ignore_index=True)
    t = script.transfer_section(small, large, "full_finetune", text_rows)
    assert t["gain_small"]["diff"] == pytest.approx(0.004) and t["gain_large"]["diff"] == pytest.approx(0.010)
    assert t["change"]["diff"] == pytest.approx(0.006) and verdict(t["change"]) == "higher"
    assert t["large"]["ndcg@10"] == pytest.approx(t["gain_large"]["mean_a"])
    assert t["gain_large"]["mean_b"] != pytest.approx(t["gain_small"]["mean_b"])  # each side's own text model
    with pytest.raises(SystemExit, match="no lora runs"):
        script.transfer_section(small, large, "lora", text_rows)
    side = {"ndcg@10": 0.06, "ndcg@10_std": 0.001, "recall@10": 0.12, "seeds": [0, 1, 2], "best_epochs": [3],
            "trainable_params": 10, "train_seconds": 1.0}
    cost = {k: {"encoder": k, "params": 1e6, "dim": 8, "seconds_per_1000_items": 1.0} for k in ("small", "large")}
    md = script.markdown({"targets": {"food": {"protocol_line": "p", "small": side, "large": side, "cost": cost,
                                               "difference": t["gain_small"], "transfer": t}}})
    assert "Change of the transfer gain (mpnet − MiniLM, user by user): +0.0060; higher" in md
    assert "- MiniLM: " in md and "- mpnet: " in md


def test_the_committed_table_is_what_the_script_writes_from_its_json():
    """results/encoder_size.md is rendered from results/encoder_size.json, never edited by hand."""
    root = SCRIPT.parents[1] / "results"
    payload = json.loads((root / "encoder_size.json").read_text(encoding="utf-8"))
    assert (root / "encoder_size.md").read_text(encoding="utf-8") == _script().markdown(payload)
