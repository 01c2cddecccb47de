"""Per-epoch reporting: a summary line where no bar is drawn, TensorBoard scalars behind a config switch."""

from __future__ import annotations

import logging
import sys

import pytest

from test_experiment import MICRO
from test_pipeline import micro_emb
from test_train import config, model, tiny_split
from test_transfer import synthetic_dataset
from xdtutor import pipeline, tracking
from xdtutor.config import ConfigError
from xdtutor.experiment import build_config
from xdtutor.run_folder import RunFolder
from xdtutor.train import fit

pytestmark = pytest.mark.filterwarnings("ignore:.*tied with their target")


def _scalars(folder) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_tensorboard_gets_every_epoch_of_a_named_training(tmp_path):
    with tracking.tracker("tensorboard", tmp_path / "tb"), tracking.run("seed0/sasrec"):
        history = fit(model(), tiny_split(), config(epochs=3))
    got = _scalars(tmp_path / "tb" / "seed0" / "sasrec")
    assert [s for s, _ in got["train/loss"]] == [1, 2, 3]
    assert [v for _, v in got["train/loss"]] == pytest.approx(history.train_loss, rel=1e-6)
    assert [v for _, v in got["valid/ndcg@10"]] == pytest.approx([m["ndcg@10"] for m in history.valid_metrics],
                                                                  abs=1e-7)
    assert "time/epoch_seconds" in got and "valid/recall@10" in got


def test_no_tracker_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with tracking.run("seed0/sasrec"):
        fit(model(), tiny_split(), config(epochs=1))
    assert not list(tmp_path.rglob("events.out.tfevents*"))


def test_one_summary_line_per_epoch_without_a_bar(caplog):
    with caplog.at_level(logging.DEBUG, logger="xdtutor.train"), tracking.run("seed0/text"):
        fit(model(), tiny_split(), config(epochs=2, progress=False))
        fit(model(), tiny_split(), config(epochs=2, progress=True))
    info = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert len(info) == 2 and info[0].startswith("  seed0/text epoch 1/2: loss ")
    assert "valid ndcg@10" in info[1] and " s" not in info[1].split(")")[-1]  # no time: outputs compare
    assert len(debug) == 2 and debug[1].endswith(" s")                        # with a bar: DEBUG, timed


def test_tracking_problems_are_config_errors_before_training(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="tracking: unknown back-end 'mlflow'"):
        with tracking.tracker("mlflow", tmp_path):
            pass
    with pytest.raises(ConfigError, match="give the run an output folder"):
        with tracking.tracker("tensorboard", None):
            pass
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # the track extra not installed
    with pytest.raises(ConfigError, match=r'pip install "xdtutor\[track\]"'):
        with tracking.tracker("tensorboard", tmp_path):
            pass
    with pytest.raises(ConfigError, match="tracking must be one of"):
        build_config({**MICRO, "tracking": "wandb"})


def test_an_experiment_tracks_each_model_in_its_run_folder(tmp_path, monkeypatch):
    cfg = build_config({**MICRO, "strategies": ["full_finetune"], "baselines": ["text"], "tracking": "tensorboard",
                        "cold_users": {"mappings": []},
                        "cold_start": {"fractions": [0.5], "strategy": "full_finetune", "baselines": ["text"]}})
    data, emb = synthetic_dataset(), micro_emb()
    trained = []
    monkeypatch.setattr(pipeline, "train_and_evaluate", lambda *a, **k: trained.append(a[3]))
    with pytest.raises(ConfigError, match="output folder"):        # refused before anything trains
        pipeline.run_experiment(cfg, dataset=data, text_emb=emb, log=None)
    assert trained == []
    monkeypatch.undo()
    folder = RunFolder(tmp_path / "run", cfg.to_dict())
    res = pipeline.run_experiment(cfg, dataset=data, text_emb=emb, log=None, folder=folder)
    board = tmp_path / "run" / "tensorboard" / "seed0"
    assert sorted(p.name for p in board.iterdir()) == ["curve-0.5", "full_finetune", "source", "text"]
    assert sorted(p.name for p in (board / "curve-0.5").iterdir()) == ["full_finetune", "text"]  # one per training
    loss = [v for _, v in _scalars(board / "text")["train/loss"]]
    assert loss == pytest.approx(res.histories["text/0"].train_loss, rel=1e-6)
    # tracking changes what a run shows, not what it computes: a resumed run may switch it
    RunFolder(tmp_path / "run2", cfg.to_dict())
    RunFolder(tmp_path / "run2", {**cfg.to_dict(), "tracking": "none"})
