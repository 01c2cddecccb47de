"""The validation-only hyper-parameter search (xdtutor.tune) on the micro experiment."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from test_experiment import MICRO
from test_pipeline import micro_emb
from test_transfer import synthetic_dataset
from xdtutor import cli, pipeline
from xdtutor.config import ConfigError, flatten
from xdtutor.tune import _trained_with, experiment_config, load_tune_config, search

pytestmark = pytest.mark.filterwarnings("ignore:.*tied with their target")
SEARCHES = Path(__file__).resolve().parents[1] / "configs" / "tune"


def write_search(tmp_path, **over) -> object:
    (tmp_path / "micro.yaml").write_text(yaml.safe_dump({**MICRO, "train": {**MICRO["train"], "epochs": 2}}))
    raw = {"experiment": "micro.yaml", "method": "full_finetune", "trials": 3, "seed": 0,
           "space": {"train.lr": {"log_float": [1e-4, 1e-2]}, "train.weight_decay": {"choice": [0.0, 0.01]}},
           **over}
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_tune_config(path)


@pytest.mark.parametrize("path", sorted(SEARCHES.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_searches_load_and_name_keys_of_their_experiment(path):
    tune = load_tune_config(path)
    assert tune.name == path.stem or tune.name.endswith(path.stem)
    current = flatten(experiment_config(tune).for_method(tune.method).to_dict())
    for p in tune.space:
        assert p.key in current and p.contains(_trained_with(current, p.key)), p.key  # they are trial 0


def test_a_bad_search_file_is_a_one_line_error(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmethod: text\nexperiment: none.yaml\nspace: {train.lr: {float: [0.1]}}\n")
    assert cli.main(["tune", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.yaml" in err and "space.train.lr: float needs [low, high]" in err
    bad.write_text("name: x\nspace: {train.lr: [\n")  # YAML that does not parse: its line is named
    with pytest.raises(ConfigError, match="bad.yaml, line 3: invalid YAML"):
        load_tune_config(bad)
    with pytest.raises(ConfigError, match="missing.yaml: cannot read the search"):
        load_tune_config(tmp_path / "missing.yaml")


def test_bad_searches_are_errors_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match="unknown key.*trails"):
        write_search(tmp_path, trails=3)
    with pytest.raises(ConfigError, match="space.model.dropout.*train.\\*, transfer.\\* only.*θ_s"):
        write_search(tmp_path, space={"model.dropout": {"float": [0.0, 0.5]}})
    with pytest.raises(ConfigError, match="space.transfer.temperature: 'joint' does not start from θ_s"):
        write_search(tmp_path, method="joint", space={"transfer.temperature": {"float": [0.05, 0.2]}})
    with pytest.raises(ConfigError, match="space.train.lr: log_float needs low > 0"):
        write_search(tmp_path, space={"train.lr": {"log_float": [0.0, 0.1]}})
    with pytest.raises(ConfigError, match="space.train.lr must be one of"):
        write_search(tmp_path, space={"train.lr": [0.001, 0.01]})
    with pytest.raises(ConfigError, match="nothing to tune"):
        write_search(tmp_path, method="popularity")
    # a baseline has no θ_s: its model keys may be searched
    assert write_search(tmp_path, method="sasrec", space={"model.dropout": {"float": [0.0, 0.5]}}).method == "sasrec"
    pytest.importorskip("optuna")
    tune = write_search(tmp_path, space={"train.lr_typo": {"float": [0.1, 0.2]}})
    with pytest.raises(ConfigError, match="space.train.lr_typo: not a key"):
        search(tune, tmp_path / "out", dataset=synthetic_dataset(), text_emb=micro_emb(), log=None)
    with pytest.raises(ConfigError, match="space.model.max_len: one value for the whole experiment"):
        write_search(tmp_path, method="sasrec", space={"model.max_len": {"int": [10, 50]}})
    with pytest.raises(ConfigError, match="metric must be recall@K"):
        write_search(tmp_path, metric="auc")
    with pytest.raises(ConfigError, match=r"also_try\[0\].train.dropout: not a searched key"):
        write_search(tmp_path, also_try=[{"train.dropout": 0.1}])
    with pytest.raises(ConfigError, match=r"also_try\[1\].train.lr: 0.5 lies outside the space"):
        write_search(tmp_path, also_try=[{"train.lr": 1e-3}, {"train.lr": 0.5}])
    with pytest.raises(ConfigError, match=r"also_try\[0\] is empty"):
        write_search(tmp_path, also_try=[{}])
    with pytest.raises(ConfigError, match="also_try lists 3 point.*trials is 3"):
        write_search(tmp_path, also_try=[{"train.lr": v} for v in (1e-3, 2e-3, 3e-3)])
    with pytest.raises(ConfigError, match=r"also_try\[0\] must be a dict"):
        write_search(tmp_path, also_try=[0.1])
    with pytest.raises(ConfigError, match=r"also_try\[1\] repeats an earlier point"):
        write_search(tmp_path, also_try=[{"train.lr": 1e-3}, {"train.lr": 1e-3}])
    with pytest.raises(ConfigError, match=r"'1e-3' lies outside the space \(YAML reads it as text"):
        write_search(tmp_path, also_try=[{"train.lr": "1e-3"}])
    with pytest.raises(ConfigError, match=r"also_try\[0\].train.epochs: 2.5 lies outside"):
        write_search(tmp_path, space={"train.epochs": {"int": [1, 3]}}, also_try=[{"train.epochs": 2.5}])


def test_a_value_the_config_refuses_is_an_error_before_pretraining(tmp_path, monkeypatch):
    pytest.importorskip("optuna")

    def no_pretraining(*args, **kwargs):
        raise AssertionError("pretrained before checking the space")

    monkeypatch.setattr(pipeline, "pretrain", no_pretraining)
    tune = write_search(tmp_path, space={"train.epochs": {"float": [1, 3]}})  # epochs is an integer
    with pytest.raises(ConfigError, match="space.train.epochs: the value 1.0 is refused.*must be an integer"):
        search(tune, tmp_path / "out", dataset=synthetic_dataset(), text_emb=micro_emb(), log=None)


@pytest.mark.slow
def test_search_tries_the_experiments_values_first_and_never_reads_test(tmp_path, monkeypatch):
    pytest.importorskip("optuna")
    def no_test(*args, **kwargs):
        raise AssertionError("the search evaluated test users")

    monkeypatch.setattr(pipeline, "evaluate", no_test)
    tune = write_search(tmp_path)
    found = search(tune, tmp_path / "out", dataset=synthetic_dataset(), text_emb=micro_emb(), log=None)
    assert [t["state"] for t in found.trials] == ["COMPLETE"] * 3
    first = found.trials[0]
    assert first["experiment_values"] and first["params"] == {"train.lr": 1e-3, "train.weight_decay": 0.0}
    assert found.best["value"] == max(t["value"] for t in found.trials)
    assert all(t["stop_reason"] and t["epochs"] >= 1 for t in found.trials)
    saved = json.loads((tmp_path / "out" / "tune.json").read_text())
    assert saved["per_method"] == {"full_finetune": found.best["params"]} == found.per_method
    assert saved["info"]["experiment_config"]["strategies"] == ["full_finetune"]
    assert saved["metric"] == "valid ndcg@10" and saved["budget"]["trials"] == 3
    assert "| 0 (experiment's values) |" in (tmp_path / "out" / "tune.md").read_text()
    again = type(found).load(tmp_path / "out" / "tune.json")
    assert again.trials == found.trials and again.best == found.best and again.config == found.config
    table = again.frame()
    assert list(table.index) == [0, 1, 2] and table.loc[0, "experiment's values"]
    assert table["valid ndcg@10"].max() == found.best["value"]


@pytest.mark.slow
def test_points_asked_for_run_after_the_experiments_values_even_in_a_search_that_already_ran(tmp_path):
    """``also_try``: a region the seeded random start may never draw (here a weight decay of 0.01 at the
    experiment's learning rate) is tried by name, right after the experiment's values, in the budget; a
    point added later — to a finished search, or one restored from its published file — runs next, and a
    point already tried does not run again."""
    pytest.importorskip("optuna")
    data, emb = synthetic_dataset(), micro_emb()
    tune = write_search(tmp_path, trials=2, also_try=[{"train.weight_decay": 0.01}])
    found = search(tune, tmp_path / "out", dataset=data, text_emb=emb, log=None)
    first, second = found.trials
    assert first["experiment_values"] and "asked_for" not in first
    assert second["params"] == second["asked_for"] == {"train.lr": 1e-3, "train.weight_decay": 0.01}
    assert "| 1 (also_try) |" in (tmp_path / "out" / "tune.md").read_text()
    again = type(found).load(tmp_path / "out" / "tune.json")
    assert again.config == tune and list(again.frame()["asked for"]) == [False, True]
    # a point added to the finished search (one more trial in the budget): it runs, the first does not again
    more = write_search(tmp_path, trials=3, also_try=[{"train.weight_decay": 0.01}, {"train.lr": 1e-4}])
    found = search(more, tmp_path / "out", dataset=data, text_emb=emb, log=None)
    assert [t["params"] for t in found.trials][2] == {"train.lr": 1e-4, "train.weight_decay": 0.0}
    # restored on another machine from the published file, with one more point: the same
    published = found.write_to(tmp_path / "results")
    last = write_search(tmp_path, trials=4, also_try=[*more.also_try, {"train.lr": 5e-3}])
    restored = search(last, tmp_path / "elsewhere", dataset=data, text_emb=emb, log=None, continue_from=published)
    assert [t.get("restored_from") for t in restored.trials] == [0, 1, 2, None]
    assert restored.trials[3]["params"] == {"train.lr": 5e-3, "train.weight_decay": 0.0}


def test_an_unusable_point_is_an_error_before_a_folder_is_written(tmp_path):
    pytest.importorskip("optuna")
    # the experiment's weight decay (0.0) lies outside this space, so a point must name it
    tune = write_search(tmp_path, space={"train.lr": {"log_float": [1e-4, 1e-2]},
                                         "train.weight_decay": {"choice": [0.01, 0.1]}},
                        also_try=[{"train.lr": 1e-3}])
    with pytest.raises(ConfigError, match=r"also_try\[0\]: give train.weight_decay too"):
        search(tune, tmp_path / "out", dataset=synthetic_dataset(), text_emb=micro_emb(), log=None)
    assert not (tmp_path / "out" / "study.db").exists()


@pytest.mark.slow
def test_a_strategy_searches_its_fine_tuning_dropout_starting_from_theta_s_one(tmp_path):
    pytest.importorskip("optuna")
    tune = write_search(tmp_path, trials=2, sets=["model.dropout=0.1"],
                        space={"transfer.dropout": {"float": [0.0, 0.5]}})
    flat = flatten(experiment_config(tune).for_method(tune.method).to_dict())
    assert flat["transfer.dropout"] is None and flat["model.dropout"] == 0.1  # null: θ_s's value
    found = search(tune, tmp_path / "out", dataset=synthetic_dataset(), text_emb=micro_emb(), log=None)
    first, second = found.trials
    assert first["experiment_values"] and first["params"] == {"transfer.dropout": flat["model.dropout"]}
    assert second["params"]["transfer.dropout"] != first["params"]["transfer.dropout"]


@pytest.mark.slow
def test_a_search_stored_before_a_config_key_existed_continues(tmp_path):
    optuna = pytest.importorskip("optuna")
    tune = write_search(tmp_path, trials=1)
    first = search(tune, tmp_path / "out", dataset=synthetic_dataset(), text_emb=micro_emb(), log=None)
    study = optuna.load_study(study_name=tune.name, storage=f"sqlite:///{tmp_path / 'out' / 'study.db'}")
    older = study.user_attrs["fingerprint"]
    del older["config"]["transfer.temperature"]  # as stored by a version without the key (its default: null)
    study.set_user_attr("fingerprint", older)
    assert search(tune, tmp_path / "out", dataset=synthetic_dataset(), text_emb=micro_emb(),
                  log=None).trials == first.trials
    older["config"]["transfer.temperature"] = 0.5  # a real difference is still refused
    study.set_user_attr("fingerprint", older)
    with pytest.raises(ConfigError, match=r"another setup \(differs in \['config.transfer.temperature'\]"):
        search(tune, tmp_path / "out", dataset=synthetic_dataset(), text_emb=micro_emb(), log=None)


@pytest.mark.slow
def test_a_trial_interrupted_before_a_config_key_existed_resumes_from_its_checkpoints(tmp_path, monkeypatch):
    pytest.importorskip("optuna")
    from xdtutor import tune as tune_module

    real = (pipeline.validate, tune_module._fingerprint)
    out, tune = tmp_path / "out", write_search(tmp_path, trials=1)

    def older(*args):  # the fingerprint of a version without the key
        fingerprint = real[1](*args)
        del fingerprint["config"]["transfer.temperature"]
        return fingerprint

    def stop(*args, **kwargs):
        raise KeyboardInterrupt  # trained and checkpointed, stopped before its score was stored

    monkeypatch.setattr(tune_module, "_fingerprint", older)
    monkeypatch.setattr(pipeline, "validate", stop)
    with pytest.raises(KeyboardInterrupt):
        search(tune, out, dataset=synthetic_dataset(), text_emb=micro_emb(), log=None)
    folders = sorted((out / "trials").iterdir())
    monkeypatch.setattr(tune_module, "_fingerprint", real[1])  # resumed by the version with the key
    monkeypatch.setattr(pipeline, "validate", real[0])
    found = search(tune, out, dataset=synthetic_dataset(), text_emb=micro_emb(), log=None)
    assert [t["state"] for t in found.trials] == ["FAIL", "COMPLETE"]
    assert sorted((out / "trials").iterdir()) == folders  # the rerun used the interrupted trial's folder


@pytest.mark.slow
def test_a_search_continued_in_a_new_call_does_not_propose_its_finished_values_again(tmp_path):
    pytest.importorskip("optuna")
    out = tmp_path / "out"
    first = search(write_search(tmp_path, trials=2), out, dataset=synthetic_dataset(), text_emb=micro_emb(),
                   log=None)
    more = search(write_search(tmp_path, trials=4), out, dataset=synthetic_dataset(), text_emb=micro_emb(),
                  log=None)
    assert more.trials[:2] == first.trials
    tried = [t["params"] for t in more.trials]
    assert all(p not in tried[:i] for i, p in enumerate(tried)), tried  # no trial repeats an earlier one
    assert [t["sampler_seed"] for t in more.trials] == [0, 0, 2, 2]  # the second call: seed + 2 trials
    assert first.to_dict()["sampler"] == "Optuna's TPE, seed 0"
    assert "seeded 0, 2 by the calls" in more.to_dict()["sampler"]
    assert "trials finished; sampler Optuna's TPE, seeded 0, 2 by the calls" in more.markdown()


@pytest.mark.slow
def test_a_published_search_continues_in_an_empty_folder_on_another_machine(tmp_path):
    """``--continue-from``: the committed ``results/<name>.json`` starts a new study (no study.db), so a
    search continues where it stopped without training its finished trials again."""
    pytest.importorskip("optuna")
    data = dict(dataset=synthetic_dataset(), text_emb=micro_emb(), log=None)
    first = search(write_search(tmp_path, trials=2), tmp_path / "a", **data)
    published = first.write_to(tmp_path / "results")
    more = search(write_search(tmp_path, trials=3), tmp_path / "b", continue_from=published, **data)
    assert [t["params"] for t in more.trials[:2]] == [t["params"] for t in first.trials]
    assert [t["value"] for t in more.trials[:2]] == [t["value"] for t in first.trials]
    assert [t.get("restored_from") for t in more.trials] == [0, 1, None]
    assert more.trials[2]["params"] not in [t["params"] for t in first.trials]  # a new proposal
    assert more.trials[2]["sampler_seed"] == 2  # seeded as if the first folder had been continued
    ran_on = more.trials[2]["ran_on"]
    assert ran_on.startswith("CPU ") and (f"Restored from `{published}`: trials 0, 1 ran on {ran_on}; θ_s was pretrained again on this "
                                        "machine, same seed.") in more.markdown()
    # the same command again (a continued search stopped once more) goes on from its own folder
    again = search(write_search(tmp_path, trials=4), tmp_path / "b", continue_from=published, **data)
    assert again.trials[:3] == more.trials and len(again.finished) == 4
    with pytest.raises(ConfigError, match=r"--out .*c already holds 2 trial"):  # another file: refused
        search(write_search(tmp_path, trials=2), tmp_path / "c", **data)
        search(write_search(tmp_path, trials=3), tmp_path / "c", continue_from=published, **data)
    with pytest.raises(ConfigError, match=r"another setup \(differs in \['config.seeds', 'seed'\]"):
        search(write_search(tmp_path, trials=3, seed=1), tmp_path / "d", continue_from=published, **data)
    # a trial the file dropped (interrupted there) still counts towards the seed: 2 restored + 1 dropped
    d = json.loads(published.read_text())
    d["trials"].append({**d["trials"][1], "number": 2, "state": "FAIL", "value": None})
    (tmp_path / "dropped.json").write_text(json.dumps(d))
    dropped = search(write_search(tmp_path, trials=3), tmp_path / "f", continue_from=tmp_path / "dropped.json", **data)
    assert [t["sampler_seed"] for t in dropped.trials] == [0, 0, 3]
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ConfigError, match="bad.json: not a search written by xdtutor tune"):
        search(write_search(tmp_path, trials=3), tmp_path / "e", continue_from=tmp_path / "bad.json", **data)


def test_a_restored_search_counts_the_trials_its_file_dropped_and_says_where_each_ran(tmp_path):
    """An interrupted trial of the published file is not carried over (its checkpoints stayed behind), but
    it counts towards the sampler's seed — else the new call would reuse a seed an earlier call drew with —
    and the trials after it are renumbered in the table."""
    optuna = pytest.importorskip("optuna")
    from xdtutor.tune import Search, _restore

    tune = write_search(tmp_path, trials=4)
    published = Search(tune, [
        {"number": 0, "state": "COMPLETE", "params": {"train.lr": 1e-3, "train.weight_decay": 0.0}, "value": 0.3,
         "experiment_values": True, "epochs": 2, "best_epoch": 2, "stop_reason": "max_epochs"},
        {"number": 1, "state": "FAIL", "params": {"train.lr": 2e-3, "train.weight_decay": 0.01}, "value": None},
        {"number": 2, "state": "COMPLETE", "params": {"train.lr": 2e-3, "train.weight_decay": 0.01}, "value": 0.4,
         "rerun_of": 1, "epochs": 2, "best_epoch": 1, "stop_reason": "max_epochs", "ran_on": "NVIDIA H200, 2026-12-04"}],
        {"device": "cpu", "device_name": "x86_64", "cpu_count": 2, "date": "2026-12-03 10:08:48 UTC"})
    study = optuna.create_study(direction="maximize")
    restored = _restore(study, published, tmp_path / "r.json", pretrains=True)
    assert restored["dropped"] == 1 and len(study.trials) == 2
    found = Search(tune, [{"number": t.number, "state": t.state.name, "params": t.params, "value": t.value,
                           **t.user_attrs} for t in study.trials], {"restored": restored})
    assert "rerun_of" not in found.trials[1]
    assert (f"Restored from `{tmp_path / 'r.json'}`: trial 0 ran on CPU x86_64 (2 cores), 2026-12-03; trial 1 ran on "
            "NVIDIA H200, 2026-12-04 (renumbered: 1 was 2); θ_s was pretrained again on this machine, same seed.") \
        in found.markdown()
    assert "Restored" not in Search(tune, [], {"restored": restored}).markdown()  # nothing restored: said nowhere
    found.trials.append({"number": 2, "state": "COMPLETE", "params": {"train.lr": 3e-3, "train.weight_decay": 0.0},
                         "value": 0.35, "sampler_seed": 3})  # the first trial this call ran
    assert found.sampler == ("Optuna's TPE, seeded 3 by the calls that ran the trials (seed 0 + the trials before "
                             "each call; not recorded for trials 0, 1, run before the seed was recorded)")


@pytest.mark.slow
def test_a_stopped_search_continues_and_reruns_the_interrupted_trial(tmp_path):
    optuna = pytest.importorskip("optuna")

    tune = write_search(tmp_path, trials=2)
    out = tmp_path / "out"
    first = search(tune, out, dataset=synthetic_dataset(), text_emb=micro_emb(), log=None)
    study = optuna.load_study(study_name=tune.name, storage=f"sqlite:///{(out / 'study.db').resolve()}")
    stopped = study.ask({"train.lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True),
                         "train.weight_decay": optuna.distributions.CategoricalDistribution([0.0, 0.01])})
    more = search(write_search(tmp_path, trials=3), out, dataset=synthetic_dataset(), text_emb=micro_emb(), log=None)
    assert more.trials[:2] == first.trials                      # finished trials are kept, not retrained
    assert more.trials[2]["state"] == "FAIL"                    # the trial a stopped process left running
    rerun = more.trials[3]
    assert rerun["state"] == "COMPLETE" and rerun["rerun_of"] == stopped.number
    assert rerun["params"] == stopped.params and len(more.finished) == 3


@pytest.mark.parametrize("path", sorted((SEARCHES.parents[1] / "results").glob("tune_*.json")), ids=lambda p: p.stem)
def test_committed_searches_load_and_name_their_best_trial(path):
    from xdtutor.tune import Search

    found = Search.load(path)
    assert found.best["value"] == max(t["value"] for t in found.finished)
    assert any(t.get("experiment_values") for t in found.trials)  # the experiment's own values were tried
    assert json.loads(path.read_text())["per_method"] == found.per_method


COPIED = [(path, method, search) for path in sorted(SEARCHES.parent.glob("*.yaml"))
          for method, search in re.findall(r'(?m)^  (\w+):  # copied from results/(\w+)\.json "per_method"$',
                                           path.read_text())]


@pytest.mark.parametrize("path, method, search", COPIED, ids=lambda x: getattr(x, "stem", str(x)))
def test_settings_copied_from_a_search_are_its_winners(path, method, search):
    """A config that says its ``per_method`` values are a committed search's retrains exactly those."""
    from xdtutor.experiment import load_config
    from xdtutor.tune import Search

    found = Search.load(SEARCHES.parents[1] / "results" / f"{search}.json")
    assert load_config(path).per_method[method] == found.per_method[method]


def test_the_theta_s_recipe_copied_from_the_text_search_is_its_winner():
    """``kitchen_to_food_source_tuned`` pretrains θ_s and fine-tunes with the text search's best trial:
    its learning rate and weight decay for pretraining and fine-tuning, its dropout as θ_s's."""
    from xdtutor.experiment import load_config
    from xdtutor.tune import Search

    text = Search.load(SEARCHES.parents[1] / "results" / "tune_kitchen_to_food_text.json").per_method["text"]
    cfg = load_config(SEARCHES.parent / "kitchen_to_food_source_tuned.yaml", ["scale=full"])
    assert (cfg.pretrain.lr, cfg.pretrain.weight_decay, cfg.model.dropout) == (
        text["train.lr"], text["train.weight_decay"], text["model.dropout"])
    for method in cfg.strategies:
        tuned = cfg.for_method(method)
        assert (tuned.train.lr, tuned.train.weight_decay, tuned.model.dropout) == (
            text["train.lr"], text["train.weight_decay"], text["model.dropout"]), method


def test_the_copied_settings_are_found():
    assert {(p.stem, m) for p, m, _ in COPIED} >= {("kitchen_to_food_tuned", "text"), ("kitchen_to_food_tuned", "sasrec"),
                                                  ("scientific_tuned", "text_id")}


@pytest.mark.slow
def test_a_search_stopped_mid_way_has_written_what_it_finished(tmp_path, monkeypatch):
    pytest.importorskip("optuna")
    real, calls = pipeline.validate, []

    def stop_on_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the process is stopped during the second trial
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "validate", stop_on_second)
    with pytest.raises(KeyboardInterrupt):
        search(write_search(tmp_path), tmp_path / "out", dataset=synthetic_dataset(), text_emb=micro_emb(), log=None)
    saved = json.loads((tmp_path / "out" / "tune.json").read_text())
    assert [t["state"] for t in saved["trials"]] == ["COMPLETE"] and saved["best"]["number"] == 0


@pytest.mark.slow
def test_an_interrupted_first_trial_keeps_its_label_and_a_changed_setup_is_refused(tmp_path, monkeypatch):
    pytest.importorskip("optuna")
    real = pipeline.validate

    def stop(*args, **kwargs):
        raise KeyboardInterrupt  # stopped during the experiment's-values trial

    monkeypatch.setattr(pipeline, "validate", stop)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        search(write_search(tmp_path, trials=1), out, dataset=synthetic_dataset(), text_emb=micro_emb(), log=None)
    monkeypatch.setattr(pipeline, "validate", real)
    found = search(write_search(tmp_path, trials=1), out, dataset=synthetic_dataset(), text_emb=micro_emb(), log=None)
    assert [t["state"] for t in found.trials] == ["FAIL", "COMPLETE"]
    assert found.experiment_values is found.trials[1] and found.trials[1]["rerun_of"] == 0
    with pytest.raises(ConfigError, match="holds a search of another setup.*train.epochs"):
        (tmp_path / "micro.yaml").write_text(yaml.safe_dump({**MICRO, "train": {**MICRO["train"], "epochs": 3}}))
        tune = load_tune_config(tmp_path / "search.yaml")
        search(tune, out, dataset=synthetic_dataset(), text_emb=micro_emb(), log=None)


def test_a_searchs_summary_names_its_best_values_and_its_change_on_validation(tmp_path):
    from xdtutor.tune import Search

    tune = write_search(tmp_path, timeout_minutes=80)
    trial = lambda n, lr, value, **extra: {"number": n, "state": "COMPLETE", "value": value,
                                           "params": {"train.lr": lr, "train.weight_decay": 0.0}, **extra}
    found = Search(tune, [trial(0, 1e-3, 0.0600, experiment_values=True), trial(1, 3e-3, 0.0660),
                          {"number": 2, "state": "RUNNING", "value": None, "params": {}}])
    text = found.summary()
    assert text.startswith("**full_finetune** over train.lr, train.weight_decay (2 of 3 trials or 80 minutes): ")
    assert "experiment's values reach valid ndcg@10 0.0600" in text
    assert "best trial (number 1) 0.0660 with train.lr = 0.003, train.weight_decay = 0 (" in text
    assert text.endswith("(+10.0% on validation, one seed)")
    kept = Search(tune, [trial(0, 1e-3, 0.0600, experiment_values=True), trial(1, 3e-3, 0.0500)])
    assert kept.summary().endswith("the search kept the experiment's own values")
    assert Search(tune, []).summary().endswith("no trial finished yet")


def test_a_searchs_table_says_which_trial_was_interrupted_and_which_ran_it_again(tmp_path):
    from xdtutor.tune import Search

    tune = write_search(tmp_path)
    params = {"train.lr": 1e-3, "train.weight_decay": 0.0}
    found = Search(tune, [{"number": 0, "state": "FAIL", "value": None, "params": params},
                          {"number": 1, "state": "COMPLETE", "value": 0.06, "params": params, "rerun_of": 0,
                           "epochs": 12, "best_epoch": 7, "stop_reason": "patience"},
                          {"number": 2, "state": "RUNNING", "value": None, "params": params},
                          {"number": 3, "state": "COMPLETE", "value": 0.06, "params": params, "epochs": 12,
                           "best_epoch": 7, "stop_reason": "patience"}])
    rows = [line for line in found.markdown().splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert rows[0].endswith("| 0.001 | 0 | — | — | interrupted; run again as trial 1 |")
    assert rows[1].endswith("| 0.001 | 0 | 0.0600 | 12 (7) | patience |")
    assert rows[2].endswith("| — | — | running |")
    assert rows[3].endswith("| 12 (7) | patience; repeats trial 1's values |")
    assert "(2 of 3 trials; 1 repeating an earlier trial's values): " in found.summary()
    assert list(found.frame()["stop"]) == ["interrupted; run again as trial 1", "patience", "running",
                                           "patience; repeats trial 1's values"]


def test_a_trial_that_never_beat_its_first_epoch_is_flagged(tmp_path):
    from xdtutor.tune import Search

    tune = write_search(tmp_path)
    params = {"train.lr": 1e-3, "train.weight_decay": 0.0}
    trial = lambda n, best, epochs: {"number": n, "state": "COMPLETE", "value": 0.05, "params": {**params, "n": n},  # noqa: E731
                                     "epochs": epochs, "best_epoch": best, "stop_reason": "patience"}
    stops = list(Search(tune, [trial(0, 1, 6), trial(1, 7, 12), trial(2, 1, 1)]).frame()["stop"])
    assert stops == ["patience; never better than after its first epoch", "patience", "patience"]


@pytest.mark.parametrize("path", sorted((SEARCHES.parents[1] / "results").glob("tune_*.json")), ids=lambda p: p.stem)
def test_committed_search_tables_are_what_their_files_give(path):
    """``results/tune_*.md`` is written once, when a search is published: a change of the table's wording
    must be carried into the committed tables (``Search.load(json).markdown()``)."""
    from xdtutor.tune import Search

    assert path.with_suffix(".md").read_text(encoding="utf-8") == Search.load(path).markdown(), (
        f"{path.with_suffix('.md').name} is out of date")


def test_tpe_starts_with_ten_random_trials_as_the_book_says():
    """Chapters 5.8 and 7.4 call the committed five-trial searches random searches: TPE proposes at random
    until ``n_startup_trials`` trials exist (fix the pages if Optuna's default changes)."""
    optuna = pytest.importorskip("optuna")
    import inspect

    assert inspect.signature(optuna.samplers.TPESampler).parameters["n_startup_trials"].default == 10
    # the tenth trial is still proposed at random (nine finished before it)
    assert max(load_tune_config(p).trials for p in SEARCHES.glob("*.yaml")) <= 10


@pytest.mark.parametrize("name", sorted(p.stem for p in (Path(__file__).parents[1] / "configs" / "tune").glob("*.yaml")))
def test_every_committed_search_can_still_be_continued(name):
    """``xdtutor tune configs/tune/<name>.yaml --continue-from results/tune_<name>.json`` (what the README and
    chapter 7 tell readers) must accept the committed search: a changed default that enters the
    experiment's fingerprint (e.g. ``train.bf16``) would refuse every one of them, and so did the winner's
    values once written into the experiment's ``per_method`` (the MovieLens searches)."""
    from xdtutor.tune import _published, experiment_config
    from xdtutor.tune_config import load_tune_config

    root = Path(__file__).parents[1]
    published = root / "results" / f"tune_{name}.json"
    if not published.is_file():
        pytest.skip(f"results/tune_{name}.json is not committed")
    tune = load_tune_config(root / "configs" / "tune" / f"{name}.yaml")
    base = experiment_config(tune, extra=[("checkpoint_dir", "runs/checkpoints")])
    assert _published(tune, base, published).trials
