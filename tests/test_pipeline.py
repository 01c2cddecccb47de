"""The one-command pipeline: configs, overrides, a micro run on synthetic data, the shipped configs."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from test_transfer import synthetic_dataset, text_tables
from xdtutor.config import ConfigError
from xdtutor.pipeline import build_config, cli_run, compact_catalogues, fraction_split, load_config, run_experiment

pytestmark = pytest.mark.filterwarnings("ignore:.*tied with their target")

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

MICRO = {
    "name": "micro", "scale": "ci", "seeds": [0], "device": "cpu",
    "model": {"hidden": 16, "n_layers": 1, "n_heads": 2, "max_len": 8, "dropout": 0.0, "adaptor": "linear"},
    "pretrain": {"epochs": 1, "batch_size": 16, "max_len": 8, "progress": False},
    "train": {"epochs": 1, "batch_size": 16, "max_len": 8, "progress": False},
    "transfer": {"lora_rank": 2, "mlp_epochs": 10},
    "cold_start": {"fractions": [0.5]},
    "similarity_sample": 50,
}


def test_unknown_keys_are_errors_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match="train.epoch"):
        build_config(MICRO, ["train.epoch=3"])
    with pytest.raises(ConfigError, match="lernrate"):
        build_config({**MICRO, "lernrate": 1})
    with pytest.raises(ConfigError, match="transfer.train"):
        build_config({**MICRO, "transfer": {"train": {"epochs": 2}}})
    with pytest.raises(ConfigError, match="strategies"):
        build_config({**MICRO, "strategies": ["magic"]})
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ndata:\n  subsampel: 0.1\n")
    with pytest.raises(ConfigError, match="data.subsampel"):
        load_config(bad)


def test_scale_sections_and_overrides():
    raw = {**MICRO, "ci": {"train.epochs": 2, "data.subsample": 0.1}, "full": {"train.epochs": 40}}
    ci = build_config(raw)
    assert ci.scale == "ci" and ci.train.epochs == 2 and ci.data.subsample == 0.1
    full = build_config(raw, [("scale", "full")])
    assert full.scale == "full" and full.train.epochs == 40 and full.data.subsample == 1.0
    over = build_config(raw, ["train.epochs=5", "seeds=[1, 2]", "transfer.fusion=concat"])
    assert over.train.epochs == 5 and over.seeds == (1, 2) and over.transfer.fusion == "concat"
    assert over.transfer.train == over.train and over.train.device == "cpu"  # one target loop for all


def test_fraction_split_keeps_eval_sets():
    data = synthetic_dataset()
    part = fraction_split(data.target, 0.5, seed=0)
    assert len(part.train) == round(0.5 * len(data.target.train))
    assert part.test is data.target.test and set(part.train) <= set(data.target.train)


def test_compact_catalogues_keeps_item_identity():
    data = synthetic_dataset(n_src=60, n_tgt=50)
    data = type(data)(data.name, data.sources, data.target, data.overlap, data.source_positions)
    small, (src,) = compact_catalogues(data, data.sources)
    t, t0 = small.target, data.target
    assert t.n_items <= t0.n_items and src.n_items <= data.sources[0].n_items
    raw_new, raw_old = t.domain.items["raw_id"].to_numpy(), t0.domain.items["raw_id"].to_numpy()
    u = t.test.users[0]
    assert list(raw_new[t.test.histories[0]]) == list(raw_old[t0.test.histories[0]])
    assert raw_new[t.test.targets[0]] == raw_old[t0.test.targets[0]]
    src_new, src_old = src.items["raw_id"].to_numpy(), data.sources[0].items["raw_id"].to_numpy()
    ov = sorted(small.overlap)[0]
    assert list(src_new[small.source_history(ov, "test")]) == list(src_old[data.source_history(ov, "test")])
    assert "compacted" in t.protocol.dataset and u in t0.test.users


def test_micro_run_end_to_end(tmp_path):
    data = synthetic_dataset()
    src, tgt = text_tables()
    config = build_config(MICRO)
    results = run_experiment(config, dataset=data, text_emb={"src": src.numpy(), "tgt": tgt.numpy()}, log=None)
    methods = {r["method"] for r in results.rows}
    assert {"popularity", "sasrec", "text", "zero_shot", "full_finetune", "l2sp", "frozen_adaptor", "lora",
            "fusion"} <= methods
    zs = next(r for r in results.rows if r["method"] == "zero_shot")
    assert zs["trainable_params"] == 0 and zs["train_seconds"] == 0.0
    assert set(zs["by_user_type"]) == {"overlap", "target_only"}
    assert any(r["method"].startswith("mapping[ridge]") for r in results.cold_users)
    assert {r["fraction"] for r in results.cold_start} == {0.5}
    assert "src->tgt" in results.diagnostics
    out = results.save(tmp_path / "run")
    saved = json.loads((out / "results.json").read_text())
    assert saved["protocol"]["dataset"] == "synthetic" and saved["seeds"] == [0]
    assert "ndcg@10" in saved["methods"]["lora"]["metrics"] and saved["device"] == "cpu"
    assert saved["wall_seconds"] > 0 and saved["significance"]
    assert (out / "per_user.csv").stat().st_size > 0
    assert {p.name for p in out.glob("*.png")} >= {"metrics.png", "training_curves.png", "cold_start.png",
                                                   "similarity.png"}
    table = results.table()
    assert "protocol: synthetic" in table and "frozen_adaptor" in table


def test_shipped_configs_parse_at_both_scales():
    for path in sorted(CONFIGS.glob("*.yaml")):
        for scale in ("ci", "full"):
            config = load_config(path, [f"scale={scale}"])
            assert config.scale == scale, path


@pytest.mark.slow
@pytest.mark.parametrize("name", ["kitchen_to_food", "sources_to_scientific"])
def test_shipped_config_runs_at_ci_scale(name, tmp_path, capsys):
    if not os.environ.get("XDTUTOR_DATA_DIR"):
        pytest.skip("XDTUTOR_DATA_DIR is not set (real data needed)")
    t0 = time.perf_counter()
    assert cli_run(str(CONFIGS / f"{name}.yaml"), ["scale=ci"], str(tmp_path / name)) == 0
    saved = json.loads((tmp_path / name / "results.json").read_text())
    assert saved["scale"] == "ci" and saved["methods"]
    for method, entry in saved["methods"].items():
        assert 0.0 <= entry["metrics"]["ndcg@10"] <= 1.0, method
    assert "protocol:" in capsys.readouterr().out
    print(f"{name} at scale ci: {time.perf_counter() - t0:.0f} s")


def test_source_checkpoint_is_reused(tmp_path):
    import torch

    from xdtutor.pipeline import collect, pretrain

    data = synthetic_dataset()
    src, tgt = text_tables()
    config = build_config({**MICRO, "checkpoint_dir": str(tmp_path / "ckpt")})
    prepared = collect(config, dataset=data, text_emb={"src": src.numpy(), "tgt": tgt.numpy()})
    first = pretrain(config, prepared, seed=0)
    second = pretrain(config, prepared, seed=0)  # loaded, not retrained
    for (n, a), (_, b) in zip(first.named_parameters(), second.named_parameters()):
        assert torch.equal(a, b), n
    assert len(list((tmp_path / "ckpt").iterdir())) == 1
    pretrain(config, prepared, seed=1)
    assert len(list((tmp_path / "ckpt").iterdir())) == 2


def test_seeds_run_apart_combine_to_the_joint_run(tmp_path):
    """Seeds can run as separate processes: save, load and combine == one run over both seeds."""
    from xdtutor.pipeline import Results, combine_results

    data = synthetic_dataset()
    src, tgt = text_tables()
    emb = {"src": src.numpy(), "tgt": tgt.numpy()}
    small = {**MICRO, "strategies": ["zero_shot", "frozen_adaptor"], "baselines": ["popularity", "text"],
             "cold_start": {"fractions": []}}
    joint = run_experiment(build_config({**small, "seeds": [0, 1]}), dataset=data, text_emb=emb, log=None)
    parts = []
    for seed in (0, 1):
        r = run_experiment(build_config({**small, "seeds": [seed]}), dataset=data, text_emb=emb, log=None)
        parts.append(Results.load(r.save(tmp_path / f"seed{seed}")))
    merged = combine_results(parts)
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
        combine_results([parts[0], parts[0]])
    other = run_experiment(build_config({**small, "seeds": [2], "train": {**small["train"], "lr": 0.01}}),
                           dataset=data, text_emb=emb, log=None)
    with pytest.raises(ValueError, match=r"\['train.lr'\]"):
        combine_results([parts[0], other])
    assert merged.info["wall_seconds"] == max(p.info["wall_seconds"] for p in parts)
    assert merged.info["compute_seconds"] == pytest.approx(sum(p.info["wall_seconds"] for p in parts))
    assert [p["seeds"] for p in merged.info["parts"]] == [[0], [1]]
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "results.json").write_text("{\n  oops")
    with pytest.raises(ConfigError, match="line 2"):
        Results.load(tmp_path / "bad")


def test_source_eval_users_is_validated_and_set_by_the_full_scale_configs():
    with pytest.raises(ConfigError, match="source_eval_users"):
        build_config({**MICRO, "source_eval_users": 0})
    # a micro run pretrains with in-batch negatives end to end
    cfg = build_config({**MICRO, "strategies": ["zero_shot"], "baselines": ["popularity"],
                        "cold_start": {"fractions": []}, "pretrain": {**MICRO["pretrain"], "negatives": "in_batch"}})
    src, tgt = text_tables()
    res = run_experiment(cfg, dataset=synthetic_dataset(), text_emb={"src": src.numpy(), "tgt": tgt.numpy()}, log=None)
    assert res.config.pretrain.negatives == "in_batch" and res.source_runs[0]["best_epoch"] == 1
    full = load_config(CONFIGS / "kitchen_to_food.yaml", ["scale=full"])
    assert full.source_eval_users == 20000 and full.pretrain.negatives == "in_batch"
    ci = load_config(CONFIGS / "kitchen_to_food.yaml", ["scale=ci"])
    assert ci.source_eval_users == 2000 and ci.pretrain.negatives == "all"


def test_run_full_experiments_script_guards(tmp_path):
    """The full-scale driver: parts need their own folder; config_changes names dotted keys."""
    import importlib.util

    path = CONFIGS.parent / "scripts" / "run_full_experiments.py"
    spec = importlib.util.spec_from_file_location("run_full_experiments", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    with pytest.raises(SystemExit):
        mod.main(["kitchen_to_food", "--seeds", "0", "--part"])            # no --out
    with pytest.raises(SystemExit):
        mod.main(["kitchen_to_food", "--combine", "a", "--set", "train.lr=1"])  # settings come from the runs
    a = load_config(CONFIGS / "kitchen_to_food.yaml", ["scale=full"])
    b = load_config(CONFIGS / "kitchen_to_food.yaml", ["scale=full", "train.max_train_minutes=6", "seeds=[0]"])
    assert mod.config_changes(b, a) == ["seeds=[0]", "train.max_train_minutes=6"]
    # re-combining rewrites the generated table but keeps the hand-written notes below it
    old = "# x\n\n| old table |\n\n## Notes (read first)\n\n- seed 2 missing\n"
    assert mod.keep_notes("# x\n\n| new table |\n", old) == "# x\n\n| new table |\n\n## Notes (read first)\n\n- seed 2 missing\n"
    assert mod.keep_notes("# x\n", "# x\n| no notes |\n") == "# x\n"
    assert mod.keep_notes("# x\n", None) == "# x\n"
