"""The one-command pipeline: a micro run on synthetic data, checkpoints, seeds run apart, the shipped configs."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import torch

from test_experiment import MICRO
from test_transfer import synthetic_dataset, text_tables
from xdtutor import cli
from xdtutor.config import ConfigError
from xdtutor.data.compact import compact_catalogues
from xdtutor.data.preprocess import keep_train_users
from xdtutor.experiment import build_config
from xdtutor.pipeline import collect, pretrain, run_experiment
from xdtutor.report import text_table, write_run
from xdtutor.results import Results, combine

pytestmark = pytest.mark.filterwarnings("ignore:.*tied with their target")

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def micro_emb() -> dict:
    src, tgt = text_tables()
    return {"src": src.numpy(), "tgt": tgt.numpy()}


def test_keep_train_users_keeps_eval_sets():
    data = synthetic_dataset()
    part = keep_train_users(data.target, 0.5, seed=0)
    assert len(part.train) == round(0.5 * len(data.target.train))
    assert part.test is data.target.test and set(part.train) <= set(data.target.train)


def test_compact_catalogues_keeps_item_identity():
    data = synthetic_dataset(n_src=60, n_tgt=50)
    small, (src,) = compact_catalogues(data, data.sources)
    t, t0 = small.target, data.target
    assert t.n_items <= t0.n_items and src.n_items <= data.sources[0].n_items
    raw_new, raw_old = t.domain.items["raw_id"].to_numpy(), t0.domain.items["raw_id"].to_numpy()
    assert list(raw_new[t.test.histories[0]]) == list(raw_old[t0.test.histories[0]])
    assert raw_new[t.test.targets[0]] == raw_old[t0.test.targets[0]]
    src_new, src_old = src.items["raw_id"].to_numpy(), data.sources[0].items["raw_id"].to_numpy()
    ov = sorted(small.overlap)[0]
    assert list(src_new[small.source_history(ov, "test")]) == list(src_old[data.source_history(ov, "test")])
    assert "compacted" in t.protocol.dataset


def test_micro_run_end_to_end(tmp_path):
    results = run_experiment(build_config(MICRO), dataset=synthetic_dataset(), text_emb=micro_emb(), log=None)
    methods = {r["method"] for r in results.rows}
    assert methods == {"popularity", "sasrec", "text", "text_id", "zero_shot", "full_finetune", "l2sp",
                       "frozen_adaptor", "lora", "fusion"}
    zs = next(r for r in results.rows if r["method"] == "zero_shot")
    assert zs["trainable_params"] == 0 and zs["train_seconds"] == 0.0
    assert set(zs["by_user_type"]) == {"overlap", "target_only"}
    for r in results.rows:  # step 7: every final model is validated, popularity and zero-shot too
        assert set(r["valid"]) == set(r["metrics"]) and r["valid_ndcg@10"] == r["valid"]["ndcg@10"]
        if r["best_epoch"]:  # a trained model: the restored best epoch is the one validated
            assert r["valid"]["ndcg@10"] == pytest.approx(results.histories[f"{r['method']}/0"].best_metric, abs=1e-6)
    assert [r["method"] for r in results.cold_users][0] == "popularity"
    assert {r["method"].split("<-")[0] for r in results.cold_users} == {"popularity", "mapping[ridge]", "mapping[mlp]"}
    assert {r["fraction"] for r in results.cold_start} == {0.5}
    assert "src->tgt" in results.diagnostics
    out = write_run(results, tmp_path / "run")
    saved = json.loads((out / "results.json").read_text())
    assert saved["format"] == "xdtutor.results/2" and saved["protocol"]["dataset"] == "synthetic"
    assert saved["seeds"] == [0] and saved["device"] == "cpu" and saved["versions"]["torch"]
    assert "ndcg@10" in saved["methods"]["lora"]["metrics"] and saved["methods"]["lora"]["std"]["ndcg@10"] is None
    assert saved["wall_seconds"] > 0 and saved["significance"]
    assert (out / "per_user.csv").stat().st_size > 0 and "(n = 1)" in (out / "report.md").read_text()
    assert {p.name for p in out.glob("*.png")} >= {"metrics.png", "training_curves.png", "cold_start.png",
                                                   "similarity.png"}
    table = text_table(results)
    assert "protocol: synthetic" in table and "frozen_adaptor" in table


def test_a_baselines_only_config_needs_no_source():
    cfg = build_config({**MICRO, "strategies": [], "cold_users": {}, "cold_start": {"fractions": []},
                        "baselines": ["popularity", "text"]})
    assert not cfg.needs_source
    data = synthetic_dataset()
    data = type(data)(data.name, (), data.target, frozenset(), {})  # a target without any source
    res = run_experiment(cfg, dataset=data, text_emb=micro_emb(), log=None)
    assert {r["method"] for r in res.rows} == {"popularity", "text"} and not res.source_runs
    with pytest.raises(ConfigError, match="no source domain"):
        run_experiment(build_config(MICRO), dataset=data, text_emb=micro_emb(), log=None)


def test_source_checkpoint_is_reused(tmp_path):
    config = build_config({**MICRO, "checkpoint_dir": str(tmp_path / "ckpt")})
    prepared = collect(config, dataset=synthetic_dataset(), text_emb=micro_emb())
    first = pretrain(config, prepared, seed=0)
    second = pretrain(config, prepared, seed=0)  # loaded, not retrained
    for (n, a), (_, b) in zip(first.named_parameters(), second.named_parameters()):
        assert torch.equal(a, b), n
    assert len(list((tmp_path / "ckpt").iterdir())) == 1
    pretrain(config, prepared, seed=1)
    assert len(list((tmp_path / "ckpt").iterdir())) == 2


def test_seeds_run_apart_combine_to_the_joint_run(tmp_path):
    """Seeds can run as separate processes: save, load and combine == one run over both seeds."""
    small = {**MICRO, "strategies": ["zero_shot", "frozen_adaptor"], "baselines": ["popularity", "text"],
             "cold_start": {"fractions": []}}
    data, emb = synthetic_dataset(), micro_emb()
    joint = run_experiment(build_config({**small, "seeds": [0, 1]}), dataset=data, text_emb=emb, log=None)
    parts = []
    for seed in (0, 1):
        r = run_experiment(build_config({**small, "seeds": [seed]}), dataset=data, text_emb=emb, log=None)
        parts.append(Results.load(r.save(tmp_path / f"seed{seed}")))
    merged = combine(parts)
    assert merged.config.seeds == (0, 1) and merged.info["seeds"] == [0, 1]
    pd_testing = __import__("pandas").testing
    pd_testing.assert_frame_equal(merged.summary().drop(columns="train_seconds"),
                                  joint.summary().drop(columns="train_seconds"), check_exact=False, rtol=1e-6)
    assert [(s["method"], s["vs"]) for s in merged.significance] == [(s["method"], s["vs"]) for s in joint.significance]
    for a, b in zip(merged.significance, joint.significance):
        assert a["p_value"] == pytest.approx(b["p_value"], rel=1e-6)
    assert set(merged.histories) == set(joint.histories)
    assert {t["vs"] for t in merged.paired_tests(vs="text")} == {"text"}
    assert len(merged.paired_tests(vs="text")) == 2  # zero_shot, frozen_adaptor
    with pytest.raises(KeyError, match="no baseline 'nope'"):
        merged.paired_tests(vs="nope")
    with pytest.raises(ValueError, match="repeats seed"):
        combine([parts[0], parts[0]])
    other = run_experiment(build_config({**small, "seeds": [2], "train": {**small["train"], "lr": 0.01}}),
                           dataset=data, text_emb=emb, log=None)
    with pytest.raises(ValueError, match=r"\['train.lr'\]"):
        combine([parts[0], other])
    assert merged.info["wall_seconds"] == max(p.info["wall_seconds"] for p in parts)
    assert merged.info["compute_seconds"] == pytest.approx(sum(p.info["wall_seconds"] for p in parts))
    assert [p["seeds"] for p in merged.info["parts"]] == [[0], [1]]
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "results.json").write_text("{\n  oops")
    with pytest.raises(ConfigError, match="line 2"):
        Results.load(tmp_path / "bad")


def test_in_batch_pretraining_runs_end_to_end():
    cfg = build_config({**MICRO, "strategies": ["zero_shot"], "baselines": ["popularity"],
                        "cold_start": {"fractions": []}, "pretrain": {**MICRO["pretrain"], "negatives": "in_batch"}})
    res = run_experiment(cfg, dataset=synthetic_dataset(), text_emb=micro_emb(), log=None)
    assert res.config.pretrain.negatives == "in_batch" and res.source_runs[0]["best_epoch"] == 1


@pytest.mark.slow
@pytest.mark.parametrize("name", ["kitchen_to_food", "sources_to_scientific", "scientific_baselines"])
def test_shipped_config_runs_at_ci_scale(name, tmp_path, capsys):
    if not os.environ.get("XDTUTOR_DATA_DIR"):
        pytest.skip("XDTUTOR_DATA_DIR is not set (real data needed)")
    t0 = time.perf_counter()
    assert cli.main(["run", str(CONFIGS / f"{name}.yaml"), "--set", "scale=ci", "--out", str(tmp_path / name)]) == 0
    saved = json.loads((tmp_path / name / "results.json").read_text())
    assert saved["scale"] == "ci" and saved["methods"] and saved["config_file"].endswith(f"{name}.yaml")
    for method, entry in saved["methods"].items():
        assert 0.0 <= entry["metrics"]["ndcg@10"] <= 1.0, method
    assert "protocol:" in capsys.readouterr().out
    assert cli.main(["publish", str(tmp_path / name), "--to", str(tmp_path / "results")]) == 0
    assert (tmp_path / "results" / f"{name}.md").read_text().startswith(f"# {name}")
    print(f"{name} at scale ci: {time.perf_counter() - t0:.0f} s")
