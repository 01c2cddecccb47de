"""A run's folder: checked before training, filled as models finish, resumed after an interruption."""

from __future__ import annotations

import json

import pytest

from test_experiment import MICRO
from test_pipeline import micro_emb
from test_transfer import synthetic_dataset
from xdtutor import pipeline
from xdtutor.config import ConfigError
from xdtutor.experiment import build_config
from xdtutor.run_folder import RunFolder

pytestmark = pytest.mark.filterwarnings("ignore:.*tied with their target")

SMALL = {**MICRO, "strategies": ["zero_shot", "full_finetune", "lora"], "baselines": ["popularity", "text"],
         "cold_start": {"fractions": [0.5]}}


def test_an_interrupted_run_resumes_to_the_same_results(tmp_path, monkeypatch):
    config = build_config(SMALL)
    data, emb = synthetic_dataset(), micro_emb()
    reference = pipeline.run_experiment(config, dataset=data, text_emb=emb, log=None)

    real, calls = pipeline.train_and_evaluate, []

    def crash_on_the_fourth_model(config, prepared, knowledge, name, *args, **kwargs):
        calls.append(name)
        if len(calls) == 4:
            raise KeyboardInterrupt("stopped by the session's end")
        return real(config, prepared, knowledge, name, *args, **kwargs)

    monkeypatch.setattr(pipeline, "train_and_evaluate", crash_on_the_fourth_model)
    folder = RunFolder(tmp_path / "run", config.to_dict())
    with pytest.raises(KeyboardInterrupt):
        pipeline.run_experiment(config, dataset=data, text_emb=emb, log=None, folder=folder)
    finished = sorted(p.name for p in (tmp_path / "run" / "progress" / "seed0").glob("*.json"))
    assert finished == ["popularity.json", "text.json", "zero_shot.json"]  # each on disk when it finished

    calls.clear()
    resumed = pipeline.run_experiment(config, dataset=data, text_emb=emb, log=None,
                                      folder=RunFolder(tmp_path / "run", config.to_dict()))
    assert calls == ["full_finetune", "lora"]                # the finished models are not trained again
    key = lambda r: (r["method"], r["seed"])  # noqa: E731
    for a, b in zip(sorted(resumed.rows, key=key), sorted(reference.rows, key=key)):
        assert key(a) == key(b) and a["metrics"] == pytest.approx(b["metrics"]), key(a)
    assert [r["metrics"] for r in resumed.cold_start] == pytest.approx([r["metrics"] for r in reference.cold_start])
    assert len(resumed.per_user) == len(reference.per_user)
    assert (tmp_path / "run" / "models" / "seed0" / "text" / "best.safetensors").exists()  # a loadable model


def test_the_folder_is_checked_before_anything_trains(tmp_path):
    config = build_config(SMALL).to_dict()
    folder = tmp_path / "run"
    RunFolder(folder, config)
    other = {**config, "train": {**config["train"], "lr": 0.5}}
    with pytest.raises(ConfigError, match=r"another config \(differs in \['train.lr'\]\)"):
        RunFolder(folder, other)
    (folder / "results.json").write_text("{}")
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="holds a finished run"):
        RunFolder(folder, config)
    RunFolder(folder, other, overwrite=True)                 # replaces what the run owns, nothing else
    assert not (folder / "results.json").exists() and (folder / "notes.txt").read_text() == "mine"
    assert json.loads((folder / "progress" / "config.json").read_text())["train"]["lr"] == 0.5
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="cannot write there"):
        RunFolder(tmp_path / "file" / "run", config)


def test_a_damaged_progress_entry_is_reported_and_rebuilt(tmp_path):
    folder = RunFolder(tmp_path / "run", build_config(SMALL).to_dict())
    folder.save("seed0/text", {"rows": []}, __import__("pandas").DataFrame({"user": ["u1"]}))
    assert folder.done("seed0/text") is not None
    (tmp_path / "run" / "progress" / "seed0" / "text.json").write_text('{"rows": [')  # cut off mid-write
    with pytest.warns(UserWarning, match="damaged progress entry"):
        assert folder.done("seed0/text") is None
    assert not (tmp_path / "run" / "progress" / "seed0" / "text.json").exists()


def test_a_run_started_before_a_new_config_key_still_resumes(tmp_path):
    config = build_config(SMALL).to_dict()
    folder = tmp_path / "run"
    older = json.loads(json.dumps(config))
    for key in ("ranking", "negatives", "negatives_seed"):  # keys this version added to `data`
        del older["data"][key]
    RunFolder(folder, older)
    RunFolder(folder, config)                                # the new keys at their defaults: the same run
    sampled = {**config, "data": {**config["data"], "ranking": "sampled", "negatives": 9}}
    with pytest.raises(ConfigError, match=r"differs in \['data.negatives', 'data.ranking'\]"):
        RunFolder(folder, sampled)                           # a new key set to something else is a change
