"""Experiment configs: YAML at the edge, sections per stage, every key takes effect or is rejected by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from xdtutor.config import ConfigError, parse_sets
from xdtutor.experiment import build_config, load_config, read_config_file

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

MICRO = {
    "name": "micro", "scale": "ci", "seeds": [0], "device": "cpu",
    "model": {"hidden": 16, "n_layers": 1, "n_heads": 2, "max_len": 8, "dropout": 0.0, "adaptor": "linear"},
    "pretrain": {"epochs": 1, "batch_size": 16, "progress": False},
    "train": {"epochs": 1, "batch_size": 16, "progress": False},
    "transfer": {"lora_rank": 2},
    "cold_users": {"mappings": ["ridge", "mlp"], "mlp_epochs": 10},
    "cold_start": {"fractions": [0.5]},
    "similarity_sample": 50,
}


def test_unknown_keys_are_errors_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match="train.epoch"):
        build_config(MICRO, ["train.epoch=3"])
    with pytest.raises(ConfigError, match="lernrate"):
        build_config({**MICRO, "lernrate": 1})
    with pytest.raises(ConfigError, match="strategies"):
        build_config({**MICRO, "strategies": ["magic"]})
    with pytest.raises(ConfigError, match="mapping"):  # EMCDR is the cold-user stage, not a strategy
        build_config({**MICRO, "strategies": ["mapping"]})
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ndata:\n  subsampel: 0.1\n")
    with pytest.raises(ConfigError, match="data.subsampel"):
        load_config(bad)


def test_moved_and_derived_keys_say_where_they_went():
    with pytest.raises(ConfigError, match="transfer.train is no longer a key; use train"):
        build_config({**MICRO, "transfer": {"train": {"epochs": 2}}})
    with pytest.raises(ConfigError, match="transfer.mapping is no longer a key; use cold_users.mappings"):
        build_config(MICRO, ["transfer.mapping=ridge"])
    # the loops' device, history length and seed follow the experiment: setting them would be ignored
    for key, source in (("train.max_len=20", "model.max_len"), ("pretrain.device=cpu", "device"),
                        ("train.seed=3", "seeds")):
        with pytest.raises(ConfigError, match=rf"{key.split('=')[0]} is not a key.*'{source}'"):
            build_config(MICRO, [key])


def test_types_are_checked_when_the_config_loads(tmp_path):
    cases = {"train.epochs=1.5": "train.epochs must be an integer",
             "train.batch_size=2.5": "train.batch_size must be an integer",
             "model.hidden=64.0": "model.hidden must be an integer",
             "seeds=[a]": r"seeds\[0\] must be an integer",
             "device=gpu": "device must be 'auto', 'cpu'",
             "train.lr=.inf": "train.lr must be a finite number",
             "pretrain.lr=-1": "pretrain.lr must be positive",
             "cold_users.mlp_hidden=true": "cold_users.mlp_hidden must be an integer",
             "data.compact=1": "data.compact must be true or false"}
    for setting, message in cases.items():
        with pytest.raises(ConfigError, match=message):
            build_config(MICRO, [setting])
    yaml11 = tmp_path / "lr.yaml"  # YAML 1.1 reads 1e-3 as a string
    yaml11.write_text("name: x\ntrain:\n  lr: 1e-3\n")
    with pytest.raises(ConfigError, match=r"train.lr must be a number, got the string '1e-3' \(YAML reads"):
        load_config(yaml11)


def test_scale_sections_and_overrides():
    raw = {**MICRO, "ci": {"train.epochs": 2, "data.subsample": 0.1}, "full": {"train.epochs": 40}}
    ci = build_config(raw)
    assert ci.scale == "ci" and ci.train.epochs == 2 and ci.data.subsample == 0.1
    full = build_config(raw, [("scale", "full")])
    assert full.scale == "full" and full.train.epochs == 40 and full.data.subsample == 1.0
    over = build_config(raw, ["train.epochs=5", "seeds=[1, 2]", "transfer.fusion=concat"])
    assert over.train.epochs == 5 and over.seeds == (1, 2) and over.transfer.fusion == "concat"
    loop = over.train_config(seed=2)  # what every target-side training runs with
    assert (loop.epochs, loop.seed, loop.device, loop.max_len) == (5, 2, "cpu", 8)
    assert over.train_config(1, "pretrain").epochs == 1
    assert "device" not in over.to_dict()["train"]  # derived keys are not written back
    assert parse_sets(["a.b=[1, 2]", ("c", 3)]) == [("a.b", [1, 2]), ("c", 3)]
    with pytest.raises(ConfigError, match="key=value"):
        parse_sets(["novalue"])


def test_extends_merges_sections_and_detects_loops(tmp_path):
    (tmp_path / "base.yaml").write_text("name: base\ntrain:\n  epochs: 3\n  lr: 0.01\nfull:\n  train.epochs: 30\n")
    (tmp_path / "child.yaml").write_text("extends: base.yaml\nname: child\ntrain:\n  epochs: 4\nfull:\n  seeds: [1]\n")
    cfg = load_config(tmp_path / "child.yaml")
    assert (cfg.name, cfg.train.epochs, cfg.train.lr) == ("child", 4, 0.01)
    full = load_config(tmp_path / "child.yaml", ["scale=full"])
    assert full.train.epochs == 30 and full.seeds == (1,)
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(ConfigError, match="loops"):
        read_config_file(tmp_path / "a.yaml")
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")


def test_shipped_configs_parse_at_both_scales():
    for path in sorted(CONFIGS.glob("*.yaml")):
        for scale in ("ci", "full"):
            config = load_config(path, [f"scale={scale}"])
            assert config.scale == scale and config.name == path.stem, path


def test_source_eval_users_is_validated_and_set_by_the_full_scale_configs():
    with pytest.raises(ConfigError, match="source_eval_users"):
        build_config({**MICRO, "source_eval_users": 0})
    full = load_config(CONFIGS / "kitchen_to_food.yaml", ["scale=full"])
    assert full.source_eval_users == 20000 and full.pretrain.negatives == "in_batch"
    ci = load_config(CONFIGS / "kitchen_to_food.yaml", ["scale=ci"])
    assert ci.source_eval_users == 2000 and ci.pretrain.negatives == "all"


def test_sampled_ranking_is_a_data_setting_stated_in_the_protocol():
    from test_pipeline import micro_emb
    from test_transfer import synthetic_dataset
    from xdtutor.pipeline import collect

    with pytest.raises(ConfigError, match="negatives must be >= 1 with ranking 'sampled'"):
        build_config({**MICRO, "data": {**MICRO.get("data", {}), "ranking": "sampled"}})
    with pytest.raises(ConfigError, match="ranking must be 'full' or 'sampled'"):
        build_config({**MICRO, "data": {**MICRO.get("data", {}), "ranking": "top"}})
    config = build_config({**MICRO, "data": {**MICRO.get("data", {}), "ranking": "sampled", "negatives": 5,
                                            "negatives_seed": 42}})
    dataset = synthetic_dataset()
    prepared = collect(config, dataset=dataset, text_emb=micro_emb())
    assert prepared.target.protocol.negatives == 5 and prepared.target.protocol.negatives_seed == 42
    assert "sampled ranking (5 negatives per user, seed 42)" in prepared.target.protocol.describe()


def test_per_method_settings_apply_to_their_method_only():
    config = build_config({**MICRO, "strategies": ["full_finetune", "lora"], "per_method": {"text": {"train.lr": 3e-4, "model.dropout": 0.3},
                                                   "lora": {"transfer.lora_rank": 4}}})
    text, lora = config.for_method("text"), config.for_method("lora")
    assert (text.train.lr, text.model.dropout, text.transfer.lora_rank) == (3e-4, 0.3, 2)
    assert (lora.train.lr, lora.model.dropout, lora.transfer.lora_rank) == (1e-3, 0.0, 4)
    assert config.for_method("sasrec") is config and text.per_method == {} and isinstance(hash(config), int)
    errors = {"per_method.lora.model.dropout: 'lora' may set dotted keys of train.\\*, transfer.\\* only": {"lora": {"model.dropout": 0.1}},
              "per_method.text: unknown config key.*train.lrr": {"text": {"train.lrr": 1.0}},
              "per_method.text: train.lr must be positive": {"text": {"train.lr": -1.0}},
              "per_method: unknown method 'magic'": {"magic": {"train.lr": 1.0}},
              "per_method.text must map dotted config keys to values": {"text": 3},
              # a nested section would replace the whole of train: dotted keys only
              "per_method.text.train: 'text' may set dotted keys": {"text": {"train": {"lr": 1.0}}},
              # values are typed as YAML read them, never re-read from a string
              "per_method.text: train.lr must be a number, got the string": {"text": {"train.lr": "0.001"}},
              "per_method.text.model.max_len: one value for the whole experiment": {"text": {"model.max_len": 20}},
              "per_method.popularity: 'popularity' trains nothing": {"popularity": {"train.lr": 1.0}},
              "per_method.transductive: this config never trains": {"transductive": {"train.lr": 1.0}}}
    for message, bad in errors.items():
        with pytest.raises(ConfigError, match=message):
            build_config({**MICRO, "per_method": bad})
    # θ_t's dropout: a θ_s strategy sets it under transfer; one built from the source's data would ignore it
    both = {**MICRO, "strategies": ["full_finetune", "joint"]}
    ok = build_config({**both, "per_method": {"full_finetune": {"transfer.dropout": 0.3}}})
    assert ok.for_method("full_finetune").transfer.model_overrides() == {"dropout": 0.3}
    with pytest.raises(ConfigError, match="per_method.joint.transfer.dropout: 'joint' does not start from θ_s.*"
                                          "set model.dropout instead"):
        build_config({**both, "per_method": {"joint": {"transfer.dropout": 0.3}}})
