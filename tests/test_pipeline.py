"""The one-command pipeline: a micro run on synthetic data, checkpoints, seeds run apart, the shipped configs."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
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
                       "frozen_adaptor", "lora", "lora_adaptor", "fusion"}
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
    for r in results.cold_start:  # each curve point says how its training ended (a clock-stopped one is no result)
        assert r["stop_reason"] in {"patience", "max_epochs", "time_limit"} and 1 <= r["best_epoch"] <= r["epochs"]
    for r in results.cold_users:  # and so does the cold users' retrained base
        assert r["base"]["method"] in methods and r["base"]["stop_reason"] and r["base"]["epochs"] >= 1
    assert "src->tgt" in results.diagnostics
    out = write_run(results, tmp_path / "run")
    saved = json.loads((out / "results.json").read_text())
    assert saved["format"] == "xdtutor.results/2" and saved["protocol"]["dataset"] == "synthetic"
    assert saved["seeds"] == [0] and saved["device"] == "cpu" and saved["versions"]["torch"]
    assert "ndcg@10" in saved["methods"]["lora"]["metrics"] and saved["methods"]["lora"]["std"]["ndcg@10"] is None
    assert saved["wall_seconds"] > 0 and saved["comparisons"]
    assert (out / "per_user.csv").stat().st_size > 0 and "(n = 1)" in (out / "report.md").read_text()
    assert {p.name for p in out.glob("*.png")} >= {"metrics.png", "training_curves.png", "cold_start.png",
                                                   "similarity.png"}
    table = text_table(results)
    assert "protocol: synthetic" in table and "frozen_adaptor" in table
    rows = table.split("\n")[2:]  # the table under the protocol and seeds lines
    assert max(len(line) for line in rows[:len(results.summary()) + 2]) <= 100  # no scrolling on a page


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


def test_a_shared_source_folder_refuses_other_encoder_weights(tmp_path):
    """The folder's name comes from the configs, which cannot tell an fp16 copy of the encoder from the
    fp32 weights: the folder remembers the weights and refuses a run on others (a folder of before it
    remembered is reused as it is, and nothing is claimed for it)."""
    from dataclasses import replace as dc_replace

    config = build_config({**MICRO, "checkpoint_dir": str(tmp_path / "ckpt")})
    plain = collect(config, dataset=synthetic_dataset(), text_emb=micro_emb())
    fp32 = dc_replace(plain, encoder_record={"encoder_sha256": "a" * 64, "encoder_precision": "fp32"})
    pretrain(config, fp32, seed=0)
    (folder,) = (tmp_path / "ckpt").iterdir()
    assert json.loads((folder / "encoder.json").read_text()) == fp32.encoder_record
    pretrain(config, fp32, seed=0)  # the same weights: reused
    for key, value in (("encoder_sha256", "b" * 64), ("encoder_precision", "bf16")):
        other = {**fp32.encoder_record, key: value}
        with pytest.raises(ConfigError, match="other encoder weights"):
            pretrain(config, dc_replace(plain, encoder_record=other), seed=0)
    (folder / "encoder.json").unlink()  # a folder made before folders remembered their weights
    pretrain(config, dc_replace(plain, encoder_record={**fp32.encoder_record, "encoder_sha256": "b" * 64}), seed=0)
    assert not (folder / "encoder.json").exists()


def test_source_checkpoint_folder_is_named_by_what_changes_theta_s(tmp_path):
    """Settings that leave θ_s alone (how the target is ranked, loop settings in NOT_RESULTS) share the
    folder — a key added later must not orphan the source models made before it; a real change doesn't."""
    prepared = collect(build_config({**MICRO, "checkpoint_dir": str(tmp_path)}), dataset=synthetic_dataset(),
                       text_emb=micro_emb())

    def folder(*sets):
        config = build_config({**MICRO, "checkpoint_dir": str(tmp_path)}, sets)
        pretrain(config, prepared, seed=0)
        return sorted(p.name for p in tmp_path.iterdir())

    first = folder()
    assert folder("data.ranking=sampled", "data.negatives=5", "pretrain.logits_chunk=4",
                  "pretrain.check_every=3") == first
    assert len(folder("pretrain.lr=0.002")) == 2


def test_where_the_data_folder_lies_does_not_name_the_source_folder(tmp_path):
    """A chapter passes its data folder, ``xdtutor run`` reads ``$XDTUTOR_DATA_DIR``: the same source model,
    one folder. A folder named the old way (the data folder in its hash) is still found and used."""
    import shutil

    from xdtutor.pipeline import source_folder

    base = {**MICRO, "checkpoint_dir": str(tmp_path)}
    prepared = collect(build_config(base), dataset=synthetic_dataset(), text_emb=micro_emb())
    here, there = (build_config(base, [f"data.data_dir={d}"]) for d in ("/data/here", "/data/there"))
    named = source_folder(build_config(base), prepared, build_config(base).train_config(0, "pretrain"))
    for config in (here, there):
        assert source_folder(config, prepared, config.train_config(0, "pretrain")) == named
    pretrain(here, prepared, seed=0)
    pretrain(build_config(base), prepared, seed=0)  # the env's data folder: the same model, reused
    assert [p.name for p in tmp_path.iterdir()] == [named.name]
    old = source_folder(here, prepared, here.train_config(0, "pretrain"), old_name=True)
    assert old != named
    named.rename(old)  # a folder named before the data folder left the name
    assert source_folder(here, prepared, here.train_config(0, "pretrain")) == old
    named.mkdir()  # a new-style folder a stopped run left without a model does not hide it
    (named / "encoder.json").write_text("{}")
    assert source_folder(here, prepared, here.train_config(0, "pretrain")) == old
    shutil.rmtree(named)
    pretrain(here, prepared, seed=0)
    assert [p.name for p in tmp_path.iterdir()] == [old.name]  # used, not a new one made beside it


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
    assert [(c["method"], c["vs"]) for c in merged.comparisons] == [(c["method"], c["vs"]) for c in joint.comparisons]
    for a, b in zip(merged.comparisons, joint.comparisons):  # the same per-user rows: the same intervals
        assert (a["diff"], a["diff_low"], a["diff_high"]) == pytest.approx((b["diff"], b["diff_low"], b["diff_high"]))
    assert set(merged.histories) == set(joint.histories)
    assert {c["vs"] for c in merged.comparisons if c["about"] == "main"} == {merged.best("baseline")[0], "text"}
    assert merged.comparisons[0]["seeds"] == 2
    with pytest.raises(ValueError, match="repeats seed"):
        combine([parts[0], parts[0]])
    other = run_experiment(build_config({**small, "seeds": [2], "train": {**small["train"], "lr": 0.01}}),
                           dataset=data, text_emb=emb, log=None)
    with pytest.raises(ValueError, match=r"\['train.lr'\]"):
        combine([parts[0], other])
    shown = run_experiment(build_config({**small, "seeds": [2], "train": {**small["train"], "progress": True}}),
                           dataset=data, text_emb=emb, log=None)
    assert combine([parts[0], shown]).config.seeds == (0, 2)  # how progress was shown is not a difference
    weights = {"encoder_sha256": "a" * 64, "encoder_precision": "fp32"}
    parts[0].info.update(weights)
    shown.info.update(weights, encoder_sha256="b" * 64)  # another copy of the encoder's weights
    with pytest.raises(ValueError, match="part 1 ran with encoder_sha256 'bbb"):
        combine([parts[0], shown])
    older = run_experiment(build_config({**small, "seeds": [3]}), dataset=data, text_emb=emb, log=None)
    assert "encoder_sha256" not in older.info  # a part of before the record passes any other part …
    with pytest.raises(ValueError, match="part 2 ran with encoder_sha256 'bbb.*part 1 with encoder_sha256 'aaa"):
        combine([older, parts[0], shown])  # … but the parts that have one are compared with each other
    shown.info.pop("encoder_sha256")
    mixed = combine([parts[0], shown])  # its weights are unknown, not different: the table names none
    assert "encoder_sha256" not in mixed.info and mixed.info["parts"][0]["encoder_sha256"] == "a" * 64
    shown.info["encoder_sha256"] = "a" * 64
    assert combine([parts[0], shown]).info["encoder_sha256"] == "a" * 64  # alike in every part
    shown.info["encoder_precision"] = "bf16"
    with pytest.raises(ValueError, match="encoder_precision"):
        combine([parts[0], shown])
    assert merged.info["wall_seconds"] == max(p.info["wall_seconds"] for p in parts)
    assert merged.info["compute_seconds"] == pytest.approx(sum(p.info["wall_seconds"] for p in parts))
    assert [p["seeds"] for p in merged.info["parts"]] == [[0], [1]]
    parts[0].info["overrides"] = ["scale=full", "seeds=[0]", "checkpoint_dir=runs/checkpoints"]
    assert combine(parts).info["overrides"] == ["scale=full", "checkpoint_dir=runs/checkpoints"]  # not "seeds=[0]"
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "results.json").write_text("{\n  oops")
    with pytest.raises(ConfigError, match="line 2"):
        Results.load(tmp_path / "bad")


def test_in_batch_pretraining_runs_end_to_end():
    cfg = build_config({**MICRO, "strategies": ["zero_shot"], "baselines": ["popularity"],
                        "cold_start": {"fractions": []}, "pretrain": {**MICRO["pretrain"], "negatives": "in_batch"}})
    res = run_experiment(cfg, dataset=synthetic_dataset(), text_emb=micro_emb(), log=None)
    assert res.config.pretrain.negatives == "in_batch" and res.source_runs[0]["best_epoch"] == 1


GOLDEN = Path(__file__).resolve().parent / "golden" / "ci_scale.json"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["kitchen_to_food", "sources_to_scientific", "scientific_baselines"])
def test_shipped_config_runs_at_ci_scale(name, tmp_path, capsys):
    """Each shipped config runs end to end at CI scale and reproduces its recorded test metrics.

    CPU runs are deterministic (one torch thread), so any change to what a run computes shows up
    here. When a change is meant to alter the numbers, record them again with
    ``XDTUTOR_UPDATE_GOLDEN=1 pytest -m slow tests/test_pipeline.py -k shipped`` and say why in the commit.
    """
    if not os.environ.get("XDTUTOR_DATA_DIR"):
        pytest.skip("XDTUTOR_DATA_DIR is not set (real data needed)")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    try:
        assert cli.main(["run", str(CONFIGS / f"{name}.yaml"), "--set", "scale=ci", "--out", str(tmp_path / name)]) == 0
    finally:
        torch.set_num_threads(threads)
    saved = json.loads((tmp_path / name / "results.json").read_text())
    assert saved["scale"] == "ci" and saved["config_file"].endswith(f"{name}.yaml")
    got = {m: round(e["metrics"]["ndcg@10"], 8) for m, e in saved["methods"].items()}
    got.update({f"cold:{r['method']}": round(r["metrics"]["ndcg@10"], 8) for r in saved["cold_users"]})
    got.update({f"curve:{r['fraction']}:{r['method']}": round(r["metrics"]["ndcg@10"], 8) for r in saved["cold_start"]})
    golden = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
    if os.environ.get("XDTUTOR_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps({**golden, name: got}, indent=1, sort_keys=True) + "\n")
    else:
        assert got == pytest.approx(golden.get(name), abs=1e-7), (
            f"{name}: CI-scale test NDCG@10 changed (see the docstring to record intended changes)")
    assert "protocol:" in capsys.readouterr().out
    assert cli.main(["publish", str(tmp_path / name), "--to", str(tmp_path / "results")]) == 0
    assert (tmp_path / "results" / f"{name}.md").read_text().startswith(f"# {name}")
    print(f"{name} at scale ci: {time.perf_counter() - t0:.0f} s")


def test_pretraining_never_sees_source_items_after_the_target_split():
    """collect() hands pretraining the sources cut before each overlapping user's target valid item."""
    data = synthetic_dataset()
    positions = {}
    for u, (items, before) in data.source_positions.items():  # the last two source items: after the test item
        n_target = len(data.target.train[u]) + 2
        positions[u] = (items, np.where(np.arange(len(items)) >= len(items) - 2, n_target, before))
    leaky = type(data)(data.name, data.sources, data.target, data.overlap, positions)
    prepared = collect(build_config(MICRO), dataset=leaky, text_emb=micro_emb())
    src, full = prepared.sources[0], leaky.sources[0]
    for u in leaky.overlap:
        assert list(src.sequences.get(u, [])) == list(full.sequences[u][:-2]), u
        assert list(src.sequences.get(u, [])) == list(leaky.source_history(u, "train")), u
    not_overlapping = next(u for u in full.sequences if u not in leaky.overlap)
    assert list(src.sequences[not_overlapping]) == list(full.sequences[not_overlapping])


def test_cold_users_stay_cold(monkeypatch):
    """The base model, the mapping and popularity never learn from a cold user's target interactions,
    and the mapping function is chosen on validation items of other users, not on the cold test items."""
    from xdtutor import pipeline

    seen, fitted = [], []
    real_finetune, real_fit = pipeline.finetune, pipeline.fit_mapping

    def spy_finetune(config, target, transferred, seed, checkpoint_dir=None):
        seen.append(target)
        return real_finetune(config, target, transferred, seed, checkpoint_dir)

    def spy_fit(knowledge, target, base, kind, config, seed=0, users=None):
        fitted.append((target, users))
        return real_fit(knowledge, target, base, kind, config, seed=seed, users=users)

    popular, splits = [], []
    real_baseline, real_split = pipeline.train_baseline, pipeline.select_split

    def spy_baseline(name, target, *args, **kwargs):
        if name == "popularity":
            popular.append(target)
        return real_baseline(name, target, *args, **kwargs)

    def spy_split(users, fraction, seed):
        splits.append(real_split(users, fraction, seed))
        return splits[-1]

    monkeypatch.setattr(pipeline, "finetune", spy_finetune)
    monkeypatch.setattr(pipeline, "fit_mapping", spy_fit)
    monkeypatch.setattr(pipeline, "train_baseline", spy_baseline)
    monkeypatch.setattr(pipeline, "select_split", spy_split)
    cfg = build_config({**MICRO, "strategies": ["full_finetune"], "baselines": ["popularity"],
                        "cold_start": {"fractions": []}, "cold_users": {"mappings": ["ridge", "mlp"], "mlp_epochs": 10,
                                                                          "cold_fraction": 0.5}})
    res = run_experiment(cfg, dataset=synthetic_dataset(), text_emb=micro_emb(), log=None)
    cold = {u for u in res.per_user.loc[res.per_user["user_type"] == "cold", "user"]}
    assert cold
    base_target = seen[-1]  # the cold-user stage retrains its base last
    assert not cold & set(base_target.train) and not cold & set(base_target.valid.users)
    for target, users in fitted:
        assert not cold & set(target.train) and users and not cold & users
    assert not cold & set(popular[-1].train)  # the cold users' popularity baseline: their items uncounted
    (fit, select), = splits  # the mapping kind is chosen on users it was not fitted on
    assert fit and select and not fit & select and all(users == fit for _, users in fitted)
    rows = [r for r in res.cold_users if r["method"] != "popularity"]
    chosen = [r for r in rows if r["selected"]]
    assert len(chosen) == 1 and chosen[0]["valid_ndcg@10"] == max(r["valid_ndcg@10"] for r in rows)
    assert res.cold_user_gain()["best_mapping"] == chosen[0]["method"]
    assert {c["about"] for c in res.comparisons} >= {"main", "cold users"}


def test_target_only_run_does_not_encode_the_sources(monkeypatch):
    """A run that reads no source (no strategy, no cold users, no curve) never encodes a source catalogue:
    with a 110 M-parameter encoder Kitchen alone costs half an hour of CPU for nothing."""
    import xdtutor.pipeline as pipeline

    encoded = []
    monkeypatch.setattr(pipeline, "encode_texts", lambda texts, *a, **k: encoded.append(len(texts)) or
                        np.zeros((len(texts), 8), dtype=np.float32))
    data = synthetic_dataset()
    only = build_config({**MICRO, "strategies": [], "baselines": ["text"], "cold_start": {"fractions": []},
                         "cold_users": {"mappings": []}})
    prepared = collect(only, dataset=data)
    assert encoded == [data.target.n_items] and prepared.source_emb == []
    encoded.clear()
    collect(build_config(MICRO), dataset=data)  # with strategies: every catalogue
    assert sorted(encoded) == sorted([data.target.n_items, data.sources[0].n_items])


def test_a_run_records_the_weights_that_embedded_its_texts(monkeypatch):
    """``encoder_id`` is a name; the run's info also records the weights' fingerprint and precision
    (what the embedding cache is keyed by), and nothing of the kind when the embeddings were given."""
    import xdtutor.pipeline as pipeline
    from xdtutor.encoders import weights_record

    import xdtutor.encoders as encoders

    monkeypatch.setattr(pipeline, "encode_texts", lambda texts, *a, **k: np.zeros((len(texts), 8), dtype=np.float32))
    config = build_config({**MICRO, "strategies": [], "baselines": ["text"], "cold_start": {"fractions": []},
                           "cold_users": {"mappings": []}})
    info = pipeline.run_info(config, collect(config, dataset=synthetic_dataset()), torch.device("cpu"), 0.0)
    assert {k: info[k] for k in ("encoder_sha256", "encoder_precision")} == weights_record(config.encoder)
    assert info["encoder_sha256"] == encoders.model_fingerprint(None) and info["encoder_precision"] == "fp32"
    # texts encoded on a bf16 GPU are recorded as such, whatever device the models then train on
    monkeypatch.setattr(pipeline, "select_device", lambda d=None: torch.device("cuda"))
    monkeypatch.setattr(encoders, "select_device", lambda d=None: torch.device(d or "cuda"))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    info = pipeline.run_info(config, collect(config, dataset=synthetic_dataset()), torch.device("cpu"), 0.0)
    assert info["encoder_precision"] == "bf16"
    given = pipeline.run_info(config, collect(config, dataset=synthetic_dataset(), text_emb=micro_emb()),
                              torch.device("cpu"), 0.0)
    assert given["encoder_id"] == "given" and "encoder_sha256" not in given


def test_cold_start_curve_trains_with_its_own_patience_and_batch_size(monkeypatch):
    """``cold_start.patience`` and ``cold_start.batch_size`` reach every training of the curve (baselines
    and strategy), and only them: the main models keep ``train.patience`` and ``train.batch_size``."""
    from xdtutor import pipeline

    seen = []
    real_finetune, real_baseline = pipeline.finetune, pipeline.train_baseline

    def spy_finetune(config, target, transferred, seed, checkpoint_dir=None):
        loop = config.train_config(seed)
        seen.append((transferred.name, len(target.train), loop.patience, loop.batch_size))
        return real_finetune(config, target, transferred, seed, checkpoint_dir)

    def spy_baseline(name, target, train_config, **kwargs):
        seen.append((name, len(target.train), train_config.patience, train_config.batch_size))
        return real_baseline(name, target, train_config, **kwargs)

    monkeypatch.setattr(pipeline, "finetune", spy_finetune)
    monkeypatch.setattr(pipeline, "train_baseline", spy_baseline)
    cfg = build_config({**MICRO, "strategies": ["full_finetune"], "baselines": ["text"], "cold_users": {},
                        "train": {**MICRO["train"], "patience": 3, "batch_size": 16},
                        "cold_start": {"fractions": [0.5], "strategy": "full_finetune", "baselines": ["text"],
                                       "patience": 9, "batch_size": 4}})
    run_experiment(cfg, dataset=synthetic_dataset(), text_emb=micro_emb(), log=None)
    full = max(n for _, n, _, _ in seen)
    assert sorted((name, p, b) for name, n, p, b in seen if n == full) == [("full_finetune", 3, 16),
                                                                          ("text", 3, 16)]
    assert sorted((name, p, b) for name, n, p, b in seen if n < full) == [("full_finetune", 9, 4),
                                                                         ("text", 9, 4)]


def test_each_method_trains_with_its_own_settings(monkeypatch):
    """``per_method`` reaches the method's main training and its cold-start curve point; the curve's
    patience still wins there; the other methods keep the shared settings."""
    from xdtutor import pipeline

    seen = []
    real_finetune, real_baseline = pipeline.finetune, pipeline.train_baseline

    def spy_finetune(config, target, transferred, seed, checkpoint_dir=None):
        loop = config.train_config(seed)
        seen.append((transferred.name, len(target.train), loop.lr, loop.patience))
        return real_finetune(config, target, transferred, seed, checkpoint_dir)

    def spy_baseline(name, target, train_config, **kwargs):
        seen.append((name, len(target.train), train_config.lr, train_config.patience))
        return real_baseline(name, target, train_config, **kwargs)

    monkeypatch.setattr(pipeline, "finetune", spy_finetune)
    monkeypatch.setattr(pipeline, "train_baseline", spy_baseline)
    cfg = build_config({**MICRO, "strategies": ["full_finetune", "l2sp"], "baselines": ["text"], "cold_users": {},
                        "per_method": {"text": {"train.lr": 3e-4, "train.patience": 2},
                                       "full_finetune": {"train.lr": 5e-4}},
                        "cold_start": {"fractions": [0.5], "strategy": "full_finetune", "baselines": ["text"],
                                       "patience": 9}})
    run_experiment(cfg, dataset=synthetic_dataset(), text_emb=micro_emb(), log=None)
    full = max(n for _, n, _, _ in seen)
    assert sorted((m, lr, p) for m, n, lr, p in seen if n == full) == [
        ("full_finetune", 5e-4, 5), ("l2sp", 1e-3, 5), ("text", 3e-4, 2)]
    assert sorted((m, lr, p) for m, n, lr, p in seen if n < full) == [("full_finetune", 5e-4, 9), ("text", 3e-4, 9)]
