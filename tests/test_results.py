"""xdtutor.results: finding committed results files and saying how their numbers were obtained."""

from __future__ import annotations

import json

import pytest

from xdtutor.results import budget_note, find_results, gain_line, method_table, stop_reasons


def fake(name="k2f", scale="full", date="2026-11-28 08:00:00", stops=("patience", "patience")) -> dict:
    hist = lambda reason: {"epochs": [1, 2, 3], "best_epoch": 2, "epoch_seconds": [1.0, 1.0, 1.0],  # noqa: E731
                           "stop_reason": reason}
    m = lambda kind, n: {"kind": kind, "seeds": 1, "metrics": {"recall@10": 2 * n, "ndcg@10": n, "recall@50": 3 * n,  # noqa: E731
                                                               "ndcg@50": n}, "std": {"recall@10": 0, "ndcg@10": 0,
                                                               "recall@50": 0, "ndcg@50": 0},
                         "trainable_params": 10, "total_params": 20, "train_seconds": 3.0}
    return {"name": name, "scale": scale, "date": date, "config": {"pretrain": {"max_train_minutes": 15},
                                                                   "train": {"max_train_minutes": 6}},
            "methods": {"popularity": m("baseline", .02), "text": m("baseline", .03), "lora": m("transfer", .04)},
            "gain": {"best_transfer": "lora", "transfer": .04, "best_baseline": "text", "baseline": .03,
                     "relative_gain": .04 / .03 - 1},
            "histories": {"source/0": hist(stops[0]), "lora/0": hist(stops[1]), "empty/0": {"epochs": []}}}


def test_find_results_newest_first_and_skips_other_files(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(fake(date="2026-11-28 07:00:00")))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.json").write_text(json.dumps(fake(date="2026-11-28 09:00:00")))
    (tmp_path / "ci.json").write_text(json.dumps(fake(scale="ci")))
    (tmp_path / "other.json").write_text(json.dumps(fake(name="other")))
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "list.json").write_text("[1, 2]")
    found = find_results("k2f", "full", tmp_path)
    assert [p.name for p, _ in found] == ["b.json", "a.json"]
    assert find_results("k2f", "ci", tmp_path)[0][0].name == "ci.json"
    assert find_results("missing", root=tmp_path) == []


def test_method_table_and_gain_line():
    df = method_table(fake())
    assert list(df["method"]) == ["text", "popularity", "lora"]  # baselines first, best first within a kind
    assert df.loc[df["method"] == "lora", "ndcg@10"].item() == .04
    assert "+33.3%" in gain_line(fake()) and "lora" in gain_line(fake())
    assert gain_line({}) == "no gain computed"
    assert method_table({}).empty


def test_budget_note_only_when_a_cap_fired():
    assert budget_note(fake()) is None
    reasons = stop_reasons(fake())
    assert list(reasons["what"]) == ["source", "lora"] and set(reasons["stop_reason"]) == {"patience"}
    note = budget_note(fake(stops=("time_limit", "patience")))
    assert note is not None and "1 of 2 trainings" in note and "source (seed 0)" in note and "15 min" in note
    assert budget_note({"methods": {}}) is None


def test_budget_note_when_caps_were_set_but_no_stop_reason_was_recorded():
    res = fake(stops=("", ""))
    assert "does not record" in budget_note(res)
    res["config"] = {"pretrain": {}, "train": {}}
    assert budget_note(res) is None  # no caps: nothing to warn about


def test_helpers_read_a_real_results_file(tmp_path):
    """The helpers read what Results.save writes, not only hand-made dicts."""
    from test_pipeline import MICRO
    from test_transfer import synthetic_dataset, text_tables
    from xdtutor.pipeline import build_config, run_experiment

    src, tgt = text_tables()
    cfg = build_config({**MICRO, "strategies": ["zero_shot", "full_finetune"], "baselines": ["popularity", "text"],
                        "cold_start": {"fractions": []}, "scale": "full",
                        "train": {**MICRO["train"], "max_train_minutes": 1e-6}})
    out = run_experiment(cfg, dataset=synthetic_dataset(), text_emb={"src": src.numpy(), "tgt": tgt.numpy()},
                         log=None).save(tmp_path / "run")
    (path, res), = find_results("micro", "full", tmp_path)
    assert path == out / "results.json"
    assert set(method_table(res)["method"]) == {"popularity", "text", "zero_shot", "full_finetune"}
    reasons = stop_reasons(res)
    assert set(reasons["what"]) == {"source", "text", "full_finetune"}
    assert set(reasons.loc[reasons["what"] != "source", "stop_reason"]) == {"time_limit"}  # a cap of 60 µs fires
    assert "time cap" in budget_note(res) and "full_finetune (seed 0)" in budget_note(res)


def test_gain_vs_a_named_baseline_and_cold_user_gain():
    from xdtutor.results import cold_user_gain, gain_vs

    g = gain_vs(fake(), "popularity")
    assert g["best_transfer"] == "lora" and g["relative_gain"] == pytest.approx(1.0)
    assert gain_vs(fake(), "missing") is None
    from xdtutor.results import gain_vs_line

    assert gain_vs_line(fake(), "popularity") == ("best transfer **lora** NDCG@10 0.0400 vs popularity target-only "
                                                  "0.0200 (**+100.0%**)")
    assert gain_vs_line(fake(), "missing") == "no missing baseline in this run"
    res = {"cold_users": [{"method": "popularity", "seed": s, "metrics": {"ndcg@10": .02}} for s in (0, 1)]
           + [{"method": "mapping[mlp]", "seed": s, "metrics": {"ndcg@10": v}} for s, v in ((0, .024), (1, .026))]
           + [{"method": "mapping[ridge]", "seed": 0, "metrics": {"ndcg@10": .021}}]}
    c = cold_user_gain(res)
    assert c["best_mapping"] == "mapping[mlp]" and c["mapping"] == pytest.approx(.025)
    assert c["relative_gain"] == pytest.approx(.25) and c["seeds"] == 2
    assert cold_user_gain({}) is None


def test_budget_table_compares_one_seed_across_runs():
    from xdtutor.results import budget_table

    def run(values: dict, stop: str, epochs: int) -> dict:
        return {"runs": [{"method": m, "seed": s, "metrics": {"ndcg@10": v + s}} for m, v in values.items() for s in (0, 1)],
                "histories": {f"{m}/{s}": {"epochs": list(range(epochs)), "stop_reason": stop}
                              for m in values if m != "popularity" for s in (0, 1)}}

    short = run({"popularity": .01, "text": .04, "lora": .05}, "time_limit", 12)
    long = run({"popularity": .01, "text": .06}, "patience", 30)
    t = budget_table({"6 min": short, "25 min": long}, seed=0)
    assert list(t.index) == ["popularity", "text"]            # only methods in both runs
    assert t.loc["text", "ndcg@10 (6 min)"] == .04 and t.loc["text", "ndcg@10 (25 min)"] == .06
    assert t.loc["text", "epochs (25 min)"] == 30 and t.loc["text", "stop (6 min)"] == "time_limit"
    assert t.loc["popularity", "stop (25 min)"] == "-" and t.loc["popularity", "epochs (6 min)"] == 0
    assert budget_table({"a": short}, seed=1).loc["text", "ndcg@10 (a)"] == pytest.approx(1.04)
    with pytest.raises(KeyError, match="no rows for seed 5"):
        budget_table({"a": short}, seed=5)
