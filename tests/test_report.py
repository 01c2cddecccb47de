"""Rendering results: lines, tables, the Markdown report with published numbers, notes kept on publish."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from test_results import ROOT, fake
from xdtutor.experiment import DataConfig
from xdtutor.published import SETTING_METHODS, published_table, published_value
from xdtutor.curve_readings import curve_comparisons, curve_points
from xdtutor.published_readings import published_gap_text, published_gaps, retrained_reading, setup_differences
from xdtutor.readings import (best_across, budget_admonition, budget_note, comparison_text, comparisons_frame,
                              difference_text, gain_line, gain_vs_line, interval_text, mean_std, spread_table,
                              stop_line, target_across_line, target_line)
from xdtutor.report import STALE_NOTES, keep_notes, markdown, publish, text_table, training_seconds
from xdtutor.results import Results, curve_key


def test_gain_lines():
    assert "+33.3%" in gain_line(fake()) and "lora" in gain_line(fake())
    res = fake()
    res.rows = []
    assert gain_line(res) == "no gain computed"
    assert gain_vs_line(fake(), "popularity") == ("best transfer **lora** NDCG@10 0.0400 vs popularity target-only "
                                                  "0.0200 (**+100.0%**; an earlier run that kept no per-user results: one seed: "
                                                  "no interval, so no verdict on the difference)")
    assert gain_vs_line(fake(), "missing") == "no missing baseline in this run"


def test_interval_text_says_no_detectable_difference_when_the_interval_holds_zero():
    c = {"diff_low": -0.001, "diff_high": 0.002, "relative_low": -0.02, "relative_high": 0.04, "level": 0.95,
         "seeds": 3, "n_users": 1000}
    assert interval_text(c).startswith("no detectable difference; the 95% interval of the difference [-0.0010, +0.0020]")
    assert interval_text({**c, "diff_low": 0.001}).startswith("higher;")
    assert interval_text({"p_value": 0.85}).startswith("an earlier run's paired t-test")  # never a p-value standing in for "equal"
    assert interval_text(None) == "no interval computed"
    zero_reference = {**c, "diff_low": 0.001, "relative": None, "relative_low": None, "relative_high": None}
    assert "no relative interval (the reference is 0)" in interval_text(zero_reference)  # as read from JSON
    assert "no relative interval" in interval_text({**zero_reference, "relative_low": float("nan")})  # in memory
    assert difference_text({**zero_reference, "diff": 0.001, "relative": float("nan")}).startswith("+0.0010; higher")
    change = {**zero_reference, "diff": 0.003, "method": "large − small"}  # a change of a gain: no reference
    assert interval_text(change) == "higher; 95% interval of the difference [+0.0010, +0.0020]; 3 seed(s), 1,000 users"
    assert difference_text(change) == "+0.0030; " + interval_text(change)
    assert difference_text({**c, "diff": 0.001, "relative": 0.02}).startswith("+0.0010 (+2.0%); no detectable")


def test_comparison_text_never_falls_back_to_a_p_value():
    """A file without per-user rows (format 1) gets the Welch interval over its seeds, not its stored p-value."""
    old = Results.load(ROOT / "results" / "kitchen_to_food_long.json")
    assert old.comparison("full_finetune", "sasrec")["p_value"] > 0.05  # what the README used to quote
    text = comparison_text(old, "full_finetune", "sasrec")
    c = old.seed_difference("full_finetune", "sasrec")
    assert text == (f"an earlier run that kept no per-user results: 95% interval over 3 seeds (seed variation only) "
                    f"[{c['diff_low']:+.4f}, {c['diff_high']:+.4f}]: no detectable difference")
    assert "p =" not in comparison_text(old, "full_finetune", "text") and "higher" in comparison_text(
        old, "full_finetune", "text")
    new = Results.load(ROOT / "results" / "kitchen_to_food_converged.json")  # per-user rows: the stored two-level interval
    assert comparison_text(new, "full_finetune", "text") == interval_text(new.comparison("full_finetune", "text"))
    # a pair the newer file did not compare is not blamed on an older format
    assert comparison_text(new, "sasrec", "popularity").startswith("not compared user by user in this file; over "
                                                                   "the seeds' means: 95% interval over 3 seeds")
    frame = comparisons_frame(old).set_index("method")  # the table too: the seeds' interval, not "p = 0.85"
    assert (frame.loc["full_finetune", "diff_low"], frame.loc["full_finetune", "diff_high"]) == (c["diff_low"],
                                                                                                 c["diff_high"])
    assert frame.loc["full_finetune", "verdict"] == "no detectable difference (interval over seeds only: an earlier run)"
    # a run of baselines only (no comparison made) has the same columns, so a table built from it works
    assert list(comparisons_frame(Results(new.config, rows=new.rows, info=new.info)).columns) == list(
        comparisons_frame(new).columns)


def test_cold_start_curve_ends_at_the_main_run_and_picks_its_reference_on_validation():
    """The 100 % point comes from the main run's rows and comparisons; at each point the baseline with the
    better *validation* score is marked best, even where the other one is better on test."""
    cold, full = fake(name="cold_start"), fake(seeds=(0, 1))
    cold.config = replace(cold.config, cold_start=replace(cold.config.cold_start, strategy="lora",
                                                          baselines=("popularity", "text")))
    # at 5 %: text better on validation, popularity better on test
    for method, valid, test in (("lora", .02, .03), ("text", .015, .01), ("popularity", .01, .02)):
        cold.cold_start.append({"fraction": 0.05, "method": method, "seed": 0, "train_users": 7,
                                "metrics": {"ndcg@10": test, "recall@10": 2 * test}, "valid": {"ndcg@10": valid}})
    for base, mean_b in (("text", .01), ("popularity", .02)):
        cold.comparisons.append({"method": curve_key(0.05, "lora"), "vs": curve_key(0.05, base), "mean_a": .03,
                                 "mean_b": mean_b, "diff": .03 - mean_b, "diff_low": .001, "diff_high": .02})
    full.comparisons = [{"method": "lora", "vs": b, "mean_a": .0405, "mean_b": m, "diff": .0405 - m,
                         "diff_low": -.001, "diff_high": .02} for b, m in (("text", .0305), ("popularity", .0205))]
    full.info["dataset_stats"] = {"split": {"train_users": 140}}
    points = curve_points(cold, full)
    assert sorted({(p["fraction"], p["method"]) for p in points}) == [
        (0.05, "lora"), (0.05, "popularity"), (0.05, "text"), (1.0, "lora"), (1.0, "popularity"), (1.0, "text")]
    assert {p["train_users"] for p in points if p["fraction"] == 1.0} == {140}
    assert len([p for p in points if p["fraction"] == 1.0]) == 6  # both seeds of the main run
    table = curve_comparisons(cold, full).set_index(["fraction", "vs"])
    assert table.loc[(0.05, "text"), "best"] and not table.loc[(0.05, "popularity"), "best"]
    assert table.loc[(0.05, "text"), "verdict"] == "higher"
    assert table.loc[(1.0, "text"), "best"] and table.loc[(1.0, "text"), "verdict"] == "no detectable difference"
    assert table.loc[(1.0, "text"), "reference"] == .0305
    assert curve_points(cold) == cold.cold_start  # without a main run: the curve as measured
    cold.cold_start[0].update(stop_reason="patience", best_epoch=12, epochs=32)
    cold.comparisons = []
    md = markdown(cold)  # each point says how its training ended
    assert "| 5% | lora | 0 | 7 | " in md and "| patience (12 / 32) |" in md and "| not recorded |" in md


def test_target_across_files_chooses_on_validation_and_reads_the_gain_over_seeds():
    """The headline over several files (a menu, baselines retrained with their searched settings): every
    method of every file a candidate, both sides chosen on validation, the gain read over the seeds."""
    from copy import deepcopy

    conv = Results.load(ROOT / "results" / "kitchen_to_food_converged.json")
    line = target_across_line([conv])
    # text leads sasrec on validation (.0685 vs .0675) although it is lower on test
    assert line == ("missed (full_finetune in `kitchen_to_food_converged` vs text in `kitchen_to_food_converged`, "
                    "both chosen on validation: +6.6% against a bar of +10%; 95% interval over 3 seeds (seed "
                    "variation only) [+0.0020, +0.0062]: higher)")
    assert target_across_line([conv], 0.05) == line.replace("missed", "met").replace("+10%", "+5%")[:-1] + (
        "; the interval's lower end, +3.2% of text, is below +5%)")
    # text retrained elsewhere: better on validation, worse on test -> it is the reference all the same
    tuned = Results(conv.config, rows=deepcopy([r for r in conv.rows if r["method"] in ("popularity", "text")]),
                    info=conv.info)
    for r in tuned.rows:
        if r["method"] == "text":
            r["valid"]["ndcg@10"] += 0.01
            r["metrics"]["ndcg@10"] *= 0.8
    assert "+33.3% against a bar of +10%" in target_across_line([conv, tuned])
    assert target_across_line([conv, tuned]).startswith("met (")
    # below the menu's own text on validation: the menu's row is the reference, however it does on test
    for r in tuned.rows:
        r["valid"]["ndcg@10"] -= 0.02
    assert target_across_line([conv, tuned]) == line
    no_text = Results(conv.config, rows=[r for r in conv.rows if r["method"] != "text"], info=conv.info)
    assert " vs sasrec in " in target_across_line([no_text])
    with pytest.raises(ValueError, match="no baseline"):
        target_across_line([Results(conv.config, rows=[r for r in conv.rows if r["method"] == "full_finetune"],
                                    info=conv.info)])


def test_best_across_files_is_chosen_on_validation_among_the_methods_asked_for():
    from copy import deepcopy

    tid = Results.load(ROOT / "results" / "sources_to_scientific_text_id.json")
    assert [m for _, m in (best_across([tid], k) for k in ("baseline", "transfer"))] == ["text", "transductive"]
    # the text + ID side only: text_id is the one text + ID baseline
    assert best_across([tid], "baseline", methods=("text_id",))[1] == "text_id"
    assert best_across([tid], None, methods=("text_id", "transductive"))[1] == "transductive"  # either kind
    retrained = Results(tid.config, rows=deepcopy([r for r in tid.rows if r["method"] == "text_id"]), info=tid.info)
    for r in retrained.rows:  # better on validation, worse on test: still the one chosen
        r["valid"]["ndcg@10"] += 0.05
        r["metrics"]["ndcg@10"] = 0.0
    res, m = best_across([tid, retrained], "baseline")
    assert (res, m) == (retrained, "text_id")
    assert best_across([tid, retrained], "baseline", "recall@10")[0] is tid  # another metric, another choice
    with pytest.raises(ValueError, match="no transfer"):
        best_across([retrained], "transfer")
    twin = Results(tid.config, rows=deepcopy(retrained.rows), info=tid.info)
    assert best_across([retrained, twin], "baseline")[0] is twin  # a tie goes to the later file


def test_retrained_reading_compares_each_retrained_model_and_chooses_on_validation():
    from copy import deepcopy
    from dataclasses import replace as dc_replace

    conv = Results.load(ROOT / "results" / "sources_to_scientific_converged.json")
    tid = Results.load(ROOT / "results" / "sources_to_scientific_text_id.json")
    config = dc_replace(tid.config, name="scientific_tuned", per_method={"text_id": {"train.lr": 0.0006}})
    retrained = Results(config, rows=deepcopy([r for r in tid.rows if r["method"] == "text_id"]), info=tid.info)
    for r in retrained.rows:  # the best text + ID model on validation now, worse on test
        r["valid"]["ndcg@10"] += 0.02
        r["metrics"]["ndcg@10"] -= 0.001
    found = retrained_reading({"text": conv, "text_id": tid}, retrained, "scientific", "UniSRec", SETTING_METHODS)
    assert found["retrained"].startswith("text_id with train.lr=0.0006 against the same model with the hand-set "
                                         "settings: ") and "`sources_to_scientific_text_id`" in found["retrained"]
    # full fine-tuning leads the transfers on validation (.0700 vs transductive's .0688)
    assert found["source"].startswith("the best transfer, full_finetune (`sources_to_scientific_converged`), "
                                      "against the best target-only model, text_id (`scientific_tuned`)")
    assert "text_id (`scientific_tuned`)" in found["published"].split("; ")[2]  # its text + ID line
    with pytest.raises(ValueError, match=r"no results file with hand-set rows of \['text_id'\]"):
        retrained_reading({"text": conv}, retrained, "scientific", "UniSRec", SETTING_METHODS)


def test_published_gap_is_a_one_sample_interval_over_our_seeds():
    from scipy import stats as sps

    tid = Results.load(ROOT / "results" / "sources_to_scientific_text_id.json")
    line = published_gap_text(tid, "text_id", "scientific", "UniSRec", "text + ID (transductive)", "recall@10")
    ours = [r["metrics"]["recall@10"] for r in tid.rows if r["method"] == "text_id"]
    ref = published_value("scientific", "UniSRec", "text + ID (transductive)", "recall@10")
    ci = sps.ttest_1samp(ours, ref).confidence_interval(0.95)
    assert line == (f"text_id (`sources_to_scientific_text_id`) {mean_std(np.mean(ours), np.std(ours, ddof=1))} vs "
                    f"UniSRec text + ID (transductive) {ref:.4f}: {np.mean(ours) / ref - 1:+.1%} (95% interval over our "
                    f"3 seeds only, the published value one number of unknown spread: [{ci.low - ref:+.4f}, {ci.high - ref:+.4f}]: lower)")
    one = Results(tid.config, rows=[r for r in tid.rows if r["seed"] == 0], info=tid.info)
    assert published_gap_text(one, "text", "scientific", "UniSRec", "text only (inductive)").endswith(
        "(one seed: no interval, so no verdict on the difference)")
    # the text model's three seeds hit the same number of users: no interval rather than a zero-width one
    assert published_gap_text(tid, "text", "scientific", "UniSRec", "text only (inductive)", "recall@10").endswith(
        "(our 3 seeds gave the same value: no spread, so no interval and no verdict)")
    with pytest.raises(KeyError, match="no rows for 'sasrec'"):
        published_gap_text(tid, "sasrec", "scientific", "UniSRec", "text only (inductive)")
    # like with like: the best text-only and the best text + ID model on validation, each on both metrics
    gaps = published_gaps([tid], "scientific", "UniSRec", SETTING_METHODS)
    assert [g.split(" (`")[0] for g in gaps] == ["text", "text", "transductive", "transductive"]
    assert [g.rsplit(" on ", 1)[1] for g in gaps] == ["recall@10", "ndcg@10"] * 2
    assert " vs UniSRec text + ID (transductive) " in gaps[2] and " vs UniSRec text only (inductive) " in gaps[0]


def test_budget_note_only_when_a_cap_fired():
    assert budget_note(fake()) is None
    note = budget_note(fake(stops=("time_limit", "patience")))
    assert note is not None and "1 of 2 trainings" in note and "source (seed 0)" in note and "15 min" in note
    assert "does not record" in budget_note(fake(stops=("", "")))
    assert budget_note(fake(stops=("", ""), caps=(None, None))) is None  # no caps: nothing to warn about


def test_budget_admonition_folds_the_note_under_its_count():
    assert budget_admonition(fake()) is None
    box = budget_admonition(fake(stops=("time_limit", "patience")), see=" See notes.md.")
    head, cls, body, end = box.split("\n")
    assert head == "````{admonition} Time caps: 1 of 2 trainings stopped by the clock (click to read which)"
    assert cls == ":class: dropdown" and end == "````"
    assert body == budget_note(fake(stops=("time_limit", "patience")))[2:] + " See notes.md."
    assert budget_admonition(fake(stops=("", ""))).startswith(
        "````{admonition} Time caps were set (click to read more)\n")  # no names to read: none promised


def test_target_line_needs_the_gain_and_an_interval_above_zero():
    res = fake()  # lora .04 vs text .03 on test, chosen on validation: +33.3 %, no stored interval
    assert target_line(res) == "missed (+33.3% against a bar of +10%; no interval of the difference, so it cannot count)"
    res.comparisons = [{"method": "lora", "vs": "text", "diff_low": float("nan"), "diff_high": float("nan")}]
    assert target_line(res).endswith("no interval of the difference, so it cannot count)")  # one seed
    res.comparisons = [{"method": "lora", "vs": "text", "diff_low": 0.001, "diff_high": 0.02}]
    assert target_line(res) == "met (+33.3% against a bar of +10%)"
    assert target_line(res, 0.5).startswith("missed (+33.3% against a bar of +50%)")
    res.comparisons[0]["relative_low"] = 0.05  # met on the mean, with an interval reaching below the bar
    assert target_line(res) == ("met (+33.3% against a bar of +10%; the relative interval's lower end, "
                                "+5.0%, is below +10%)")
    res.comparisons[0]["relative_low"] = 0.12
    assert target_line(res) == "met (+33.3% against a bar of +10%)"
    res.comparisons[0]["diff_low"] = -0.001
    assert target_line(res) == "missed (+33.3% against a bar of +10%; the interval of the difference does not exclude 0)"
    res.rows = []
    assert target_line(res) == "not measured (no gain computed)"


def test_stop_line_counts_target_and_source_trainings_apart():
    res = fake(stops=("max_epochs", "patience"))
    assert stop_line(res) == ("1 of 1 target training stopped by early stopping (3 epochs); "
                              "source pretraining (1 run): 1 at the epoch limit")
    res = fake(stops=("patience", "time_limit"))
    assert stop_line(res) == ("0 of 1 target training stopped by early stopping (3 epochs); 1 at the time cap; "
                              "source pretraining (1 run): 1 by early stopping")
    res = fake(stops=("", "patience"))  # an older file: no reason stored
    assert stop_line(res).endswith("source pretraining (1 run): 1 not recorded")
    res.histories = {}
    assert stop_line(res) == "this file does not record how its trainings ended"


def test_stop_line_counts_the_cold_start_curves_trainings():
    """A curve's rows carry their own stop reason (no history): a curve with trainings at the epoch limit
    must say so, or a file of unconverged points reads as converged (results/cold_start.md had 9 of 27)."""
    from xdtutor.readings import curve_stop_line

    res = fake(stops=("patience", "patience"))
    assert curve_stop_line(res) == ""
    for epochs, why in ((40, "patience"), (150, "max_epochs"), (90, "patience")):
        res.cold_start.append({"fraction": 0.2, "method": "text", "seed": 0, "train_users": 7, "epochs": epochs,
                               "stop_reason": why, "metrics": {"ndcg@10": .01}})
    res.cold_start.append({"fraction": 0.2, "method": "sasrec", "seed": 0, "metrics": {"ndcg@10": .01}})  # older row
    # the span is the early-stopped trainings' (40 and 90 epochs); the older row counts, as not recorded
    said = ("cold-start curve: 2 of 4 trainings stopped by early stopping (40–90 epochs), 1 at the epoch limit, "
            "1 not recorded")
    assert curve_stop_line(res) == said
    assert stop_line(res) == ("1 of 1 target training stopped by early stopping (3 epochs); " + said
                              + "; source pretraining (1 run): 1 by early stopping")
    res.histories = {}  # a curve-only file still says how its curve ended
    assert stop_line(res) == said


def test_budget_note_names_a_methods_own_time_cap():
    """A cap set only under ``per_method`` fired: the note says so, with that method's minutes."""
    res = fake(stops=("patience", "time_limit"), caps=(None, None))
    res.config = replace(res.config, per_method={"lora": {"train.max_train_minutes": 30}})
    assert res.time_cap("lora") == 30 and res.time_cap("text") is None and res.time_cap("source") is None
    note = budget_note(res)
    assert note is not None and "1 of 2 trainings" in note and "lora (seed 0)" in note
    assert "each target model no cap; lora 30 min" in note


def test_markdown_report_lists_the_published_numbers_of_its_dataset():
    res = fake()
    assert "Published results" not in markdown(res)  # synthetic data: nothing published
    res.config = replace(res.config, data=DataConfig(dataset="scientific"))
    md = markdown(res)
    assert "| UniSRec | text + ID (transductive) | 0.1235 | 0.0634 |" in md and "KDD 2022" in md
    assert published_value("scientific", "SASRec", "ID, target only", "ndcg@10") == 0.0553
    with pytest.raises(KeyError, match="no published"):
        published_value("scientific", "SASRec", "text", "ndcg@10")
    assert set(published_table("scientific")["source"]) == {"unisrec_scientific", "vqrec_scientific"}


def test_markdown_report_sums_the_training_time_behind_its_numbers():
    res = fake(seeds=(0, 1))  # 3 methods x 2 seeds, 3 s each
    res.source_runs = [{"seed": 0, "sources": ["kitchen"], "valid_ndcg@10": 0.01, "best_epoch": 2,
                        "train_seconds": 3582.0}]
    res.info["wall_seconds"] = 12.0  # a run resumed from its checkpoints: the last invocation only
    assert training_seconds(res) == 3600.0
    md = markdown(res)
    assert "wall time: 12 s" in md and "- training time behind these numbers: 1.0 h, summed" in md
    res.cold_start = [{"fraction": 0.05, "method": "text", "seed": 0, "train_seconds": 1800.0}]
    assert training_seconds(res) == 5400.0  # the cold-start curve's trainings count too


def test_markdown_report_names_the_encoder_weights_where_recorded():
    """A file records the weights that embedded its item texts (``encoder_sha256``, since 2026-12-04):
    its report shows them, so two files of one encoder name but different copies differ on the page."""
    res = fake(seeds=(0,))
    res.info["encoder_id"] = "all-MiniLM-L6-v2"
    assert "item text encoder" not in markdown(res)  # an older file: nothing to show
    res.info.update(encoder_sha256="0123456789abcdef" * 4, encoder_precision="bf16")
    assert "- item text encoder: all-MiniLM-L6-v2 (weights sha256 0123456789ab…, bf16)" in markdown(res)


def test_keep_notes():
    old = "# x\n\n- date: 1\n\n| 0.0144 ± 0.0000 | 0.0616 |\n\n## Notes (read first)\n\n- seed 2 missing\n"
    # the same numbers, reworded, plus an interval (the run date aside): notes carried over as they are
    same = "# x\n\n- date: 2\n\n| 0.0144 ± 0 | 0.0616 (95 % [0.0600, 0.0630]) |\n"
    assert keep_notes(same, old) == same + "\n## Notes (read first)\n\n- seed 2 missing\n"
    # a number is gone: carried over, marked to be re-read (once)
    new = keep_notes("# x\n\n| 0.0144 ± 0 | 0.0620 |\n", old)
    assert new == (f"# x\n\n| 0.0144 ± 0 | 0.0620 |\n\n## Notes (read first)\n\n{STALE_NOTES}\n\n"
                   "- seed 2 missing\n")
    assert keep_notes("# x\n\n| 0.0625 |\n", new).count(STALE_NOTES) == 1
    signed = "# x\n\n| +0.0012 | 0.0616 |\n\n## Notes\n\n- a gain\n"
    assert STALE_NOTES in keep_notes("# x\n\n| -0.0012 | 0.0616 |\n", signed)  # a sign flipped
    twice = "# x\n\n| 0.0616 | 0.0616 |\n\n## Notes\n\n- a tie\n"
    assert STALE_NOTES in keep_notes("# x\n\n| 0.0616 | 0.0620 |\n", twice)  # one of two equal values changed
    timed = "# x\n\n- training time behind these numbers: 25 min\n\n| 0.0616 |\n\n## Notes\n\n- slow\n"
    assert STALE_NOTES not in keep_notes("# x\n\n- training time behind these numbers: 25.1 min\n\n| 0.0616 |\n",
                                         timed)  # how long it took is not a result the notes quote
    assert keep_notes("# x\n", "# x\n| no notes |\n") == "# x\n"
    assert keep_notes("# x\n", None) == "# x\n"


def test_mean_std_says_n_1_for_one_seed_and_0_only_when_exactly_0():
    assert mean_std(0.01234, 0.00041) == "0.0123 ± 0.0004"
    assert mean_std(0.01234, None) == mean_std(0.01234, float("nan")) == "0.0123 (n = 1)"
    assert mean_std(0.0144, 0.0) == mean_std(0.0144, 2e-18) == "0.0144 ± 0"  # every seed the same
    assert mean_std(0.0144, 1e-6) == "0.0144 ± <0.0001"  # a measured spread below the last digit


def test_spread_table_shows_each_method_as_mean_and_sample_std_over_its_seeds():
    table = spread_table(fake(seeds=(0, 1, 2)), ("ndcg@10",))
    assert list(table.columns) == ["kind", "seeds", "ndcg@10"]
    assert table.loc["lora", "ndcg@10"] == "0.0410 ± 0.0010"  # ddof = 1 over .040, .041, .042
    assert table.loc["text", "kind"] == "baseline" and table.loc["text", "seeds"] == 3
    assert spread_table(fake(), ("ndcg@10",)).loc["lora", "ndcg@10"] == "0.0400 (n = 1)"


def test_text_table_keeps_its_columns_for_a_long_method_name():
    res = fake()
    for r in res.rows:
        if r["method"] == "lora":
            r["method"] = "frozen_adaptor_id"  # 17 characters: wider than the default column
    lines = text_table(res).splitlines()
    rows = [ln for ln in lines if ln.split() and ln.split()[0] in ("popularity", "text", "frozen_adaptor_id")]
    assert len(rows) == 3 and len({ln.index(ln.split()[1]) for ln in rows}) == 1  # every kind in one column
    assert "frozen_adaptor_id transfer" in text_table(res)


def test_publish_keeps_the_notes_of_the_committed_file(tmp_path):
    (tmp_path / "k2f.md").write_text("# k2f\n\nold table\n\n## Notes\n\n- written by a person\n")
    written = publish(fake(), tmp_path)
    names = {p.name for p in written}
    assert {"k2f.json", "k2f.md", "k2f.metrics.png"} <= names
    text = (tmp_path / "k2f.md").read_text()
    assert "old table" not in text and text.rstrip().endswith("- written by a person")


def test_markdown_report_names_each_methods_own_settings():
    from test_experiment import MICRO
    from xdtutor.experiment import build_config

    own = Results(build_config({**MICRO, "strategies": ["full_finetune"], "baselines": ["text"],
                                "per_method": {"text": {"train.lr": 3e-4, "model.dropout": 0.3}}}))
    assert "- per-method settings (over the shared ones): text: train.lr=0.0003, model.dropout=0.3" in markdown(own)
    shared = Results(build_config({**MICRO, "strategies": ["full_finetune"], "baselines": ["text"]}))
    assert "per-method" not in markdown(shared)


def test_setup_differences_name_each_methods_own_settings():
    """Beside a published setup, the shared dropout and stopping rule are ours only for the methods without
    their own ``per_method`` values; those are named."""
    res = fake()
    shared = setup_differences(res, "unisrec_scientific")["ours"]
    assert not any("own settings" in shared[k] for k in ("dropout", "stopping rule", "scores"))
    res.config = replace(res.config, per_method={"text": {"model.dropout": 0.3},
                                                 "lora": {"train.patience": 9, "train.lr": 0.002,
                                                          "train.negatives": "in_batch"}})
    ours = setup_differences(res, "unisrec_scientific")["ours"]
    assert ours["scores"].endswith("softmax over all items (own settings: lora: train.negatives=in_batch)")
    assert ours["dropout"] == f"{res.config.model.dropout} (own settings: text: model.dropout=0.3)"
    assert ours["stopping rule"].endswith("(own settings: lora: train.patience=9)")


def test_runs_made_before_the_source_cut_say_so():
    """The two format-1 Kitchen → Food files were made while pretraining read whole source sequences:
    their report, and the README line built from them, say that their transfer gains may be optimistic."""
    from xdtutor.docs import _caveat
    from xdtutor.report import protocol_caveat

    old = Results.load(ROOT / "results" / "kitchen_to_food.json")
    new = Results.load(ROOT / "results" / "kitchen_to_food_converged.json")
    assert protocol_caveat(old).startswith("> **Made before a protocol fix.**")
    assert protocol_caveat(new) is None and _caveat(new) == ""
    assert protocol_caveat(old) in markdown(old) and "Made before a protocol fix" not in markdown(new)
    assert "may be optimistic" in _caveat(old)
    assert "Cold users, **older protocol**" in markdown(old)  # its cold users were not cold
    cold = Results.load(ROOT / "results" / "cold_start.json")
    assert "older protocol" not in markdown(cold) and "none of their target interactions" in markdown(cold)
    # its comparison table says that its intervals cover the seeds only, and what the source adds to
    # the same architecture is a line of its own
    assert "this earlier run kept no per-user results" in markdown(old) and "earlier run" not in markdown(new)
    assert "vs the same text model trained on the target only" in markdown(old)


def test_protocol_differences_name_the_clauses_each_line_lacks():
    from xdtutor.readings import protocol_differences

    sample = "protocol: food; leave-one-out, 2% of users; full ranking; max_len=50"
    full = "protocol: food; leave-one-out; full ranking, history not masked; max_len=50"
    assert protocol_differences(full, sample) == (["full ranking, history not masked"], ["2% of users", "full ranking"])
    assert protocol_differences(full, full) == ([], [])


_PROTOCOL = Results.load(ROOT / "results" / "cold_start.json").info["protocol"]


def _curve_file(name: str, points: dict) -> Results:
    """A results file with one cold-start point (5 %): ``points[method] = (valid, [test per seed])``."""
    res = fake(name=name, seeds=(0, 1, 2))
    res.info["protocol"] = _PROTOCOL
    res.config = replace(res.config, cold_start=replace(res.config.cold_start, fractions=(0.05,),
                                                        strategy="lora", baselines=("sasrec", "text")))
    for method, (valid, tests) in points.items():
        for seed, test in enumerate(tests):
            res.cold_start.append({"fraction": 0.05, "method": method, "seed": seed, "train_users": 7,
                                   "metrics": {"ndcg@10": test, "recall@10": 2 * test}, "valid": {"ndcg@10": valid}})
    return res


def test_curve_setting_is_chosen_on_validation_and_the_point_read_with_each_models_choice():
    """Each model of a point takes the setting its *validation* score prefers (never test); the strategy is
    then read against the better baseline on validation: from one file, its stored paired interval; across
    two files, a Welch interval over the seeds' test values (checked against SciPy)."""
    from scipy import stats as sps

    from xdtutor.curve_readings import curve_choice_reading, curve_setting_choice

    big = _curve_file("cold_big", {"lora": (.030, [.030, .031, .032]), "text": (.029, [.040, .041, .042]),
                                   "sasrec": (.031, [.025, .026, .024])})
    small = _curve_file("cold_small", {"lora": (.033, [.029, .030, .028]), "text": (.032, [.030, .031, .029]),
                                       "sasrec": (.028, [.050, .050, .050])})
    table = curve_setting_choice({"batch 256": big, "batch 32": small}, 0.05)
    chosen = dict(table[table["chosen"]][["method", "setting"]].to_numpy())
    # validation chooses, even where test says otherwise (text at 256 and sasrec at 32 are better on test)
    assert chosen == {"lora": "batch 32", "text": "batch 32", "sasrec": "batch 256"}
    row = table.set_index(["method", "setting"]).loc[("text", "batch 256")]
    assert (row["seeds"], row["valid"], row["test"]) == (3, pytest.approx(.029), pytest.approx(.041))
    # the better baseline on validation is text (.032 at its chosen setting vs sasrec .031): both from one file
    small.comparisons.append({"method": curve_key(0.05, "lora"), "vs": curve_key(0.05, "text"), "mean_a": .029,
                              "mean_b": .030, "diff": -.001, "relative": -1 / 30, "diff_low": -.003,
                              "diff_high": .001, "relative_low": -.1, "relative_high": .03, "level": .95,
                              "seeds": 3, "n_users": 100})
    line = curve_choice_reading({"batch 256": big, "batch 32": small}, 0.05)
    assert line.startswith("lora (batch 32) vs text (batch 32, the better baseline on validation): -0.0010 (-3.3%); "
                           "no detectable difference; the 95% interval of the difference [-0.0030, +0.0010]")
    # a baseline named by the caller: read at its own chosen setting, and not called "the better" one
    line = curve_choice_reading({"batch 256": big, "batch 32": small}, 0.05, vs="sasrec")
    assert line.startswith("lora (batch 32) vs sasrec (batch 256): ") and "files `cold_small` vs `cold_big`" in line
    # text better at 256 on validation: the two sides come from two files -> Welch over seeds
    big.cold_start = [{**r, "valid": {"ndcg@10": .034}} if r["method"] == "text" else r for r in big.cold_start]
    line = curve_choice_reading({"batch 256": big, "batch 32": small}, 0.05)
    welch = sps.ttest_ind([.029, .030, .028], [.040, .041, .042], equal_var=False).confidence_interval(0.95)
    assert line.startswith("lora (batch 32) vs text (batch 256, the better baseline on validation): -0.0120 (-29.3%); "
                           "files `cold_small` vs `cold_big`, no per-user pairing across files; 95% interval over 3 "
                           f"seeds (seed variation only) [{welch.low:+.4f}, {welch.high:+.4f}]: lower")
    # the batch size the curve's models trained with: the curve's own, else each method's
    from xdtutor.curve_readings import curve_batch_size

    assert curve_batch_size(big) == big.config.train.batch_size
    mixed = replace(big.config, per_method={"text": {"train.batch_size": big.config.train.batch_size + 1}})
    with pytest.raises(ValueError, match="different batch sizes"):
        curve_batch_size(Results(mixed, rows=[], info={}))
    curve = replace(mixed, cold_start=replace(mixed.cold_start, batch_size=32))
    assert curve_batch_size(Results(curve, rows=[], info={})) == 32  # the curve's own wins
    # the file's report says what the curve trained with
    own = replace(small.config, cold_start=replace(small.config.cold_start, patience=20, batch_size=32))
    assert "unchanged; the curve's own early-stopping patience 20, batch size 32):" in markdown(
        Results(own, rows=small.rows, info=small.info, cold_start=small.cold_start))
    # across two files only for runs of one experiment
    big.info["device_name"] = "another CPU"
    with pytest.raises(ValueError, match="differ in \\['device_name'\\]"):
        curve_choice_reading({"batch 256": big, "batch 32": small}, 0.05)
    # one file with no stored comparison: its seeds' interval, said as such
    small.comparisons = []
    line = curve_choice_reading({"batch 32": small}, 0.05)
    assert "not compared user by user in `cold_small`; 95% interval over 3 seeds (seed variation only)" in line


def _at(res: Results, fraction: float) -> Results:
    """``res`` with its one point moved to ``fraction``."""
    res.cold_start = [{**r, "fraction": fraction} for r in res.cold_start]
    res.config = replace(res.config, cold_start=replace(res.config.cold_start, fractions=(fraction,)))
    return res


def test_every_retrained_point_is_read_with_each_models_validation_choice():
    """Points retrained under another setting in several files are each read with the models' validation
    choices, against every baseline; the better baseline is the one better on validation (here the worse
    one on test); a point trained under one setting only is left out, and two files of one setting at one
    point are refused."""
    from xdtutor.curve_readings import curve_choice_points

    points = {"lora": (.030, [.030, .031, .032]), "text": (.029, [.040, .041, .042]),
              "sasrec": (.036, [.025, .026, .024])}
    better = {"lora": (.033, [.050, .051, .052]), "text": (.035, [.030, .031, .029]),
              "sasrec": (.028, [.050, .050, .050])}
    curve = _curve_file("cold_curve", points)
    for f in (0.1, 0.2):  # the curve's own points, all at one setting
        curve.cold_start += [{**r, "fraction": f} for r in _curve_file("x", points).cold_start]
    lo, mid = _curve_file("cold_lo", better), _at(_curve_file("cold_mid", better), 0.1)
    mid.comparisons.append({"method": curve_key(0.1, "lora"), "vs": curve_key(0.1, "text"), "mean_a": .051,
                            "mean_b": .030, "diff": .021, "relative": .7, "diff_low": .015, "diff_high": .027,
                            "relative_low": .5, "relative_high": .9, "level": .95, "seeds": 3, "n_users": 100})
    table = curve_choice_points({"batch 256": [curve], "batch 32": [lo, mid]})
    assert sorted(set(table["fraction"])) == [0.05, 0.1]  # 0.2 was not retrained
    row = table.set_index(["fraction", "vs"])
    # sasrec keeps batch 256 (.036 > .028 on validation) and text takes 32 (.035 > .029); sasrec is then
    # the better baseline on validation (.036 > .035) though text is the better one on test (.030 > .025)
    for f in (0.05, 0.1):
        assert row.loc[(f, "sasrec"), "best"] and not row.loc[(f, "text"), "best"]
    # lora (32) vs sasrec (256): across two files, over seeds, relative bounds over sasrec's test mean
    assert row.loc[(0.05, "sasrec"), "diff"] == pytest.approx(.051 - .025)
    assert not row.loc[(0.05, "sasrec"), "paired"]
    assert row.loc[(0.05, "sasrec"), "relative_low"] == pytest.approx(row.loc[(0.05, "sasrec"), "diff_low"] / .025)
    # lora (32) vs text (32) at 10 %: one file that stores the paired comparison -> its own bounds
    assert row.loc[(0.1, "text"), "paired"] and row.loc[(0.1, "text"), "verdict"] == "higher"
    assert (row.loc[(0.1, "text"), "relative_low"], row.loc[(0.1, "text"), "relative_high"]) == (.5, .9)
    assert not row.loc[(0.05, "text"), "paired"]  # lo stores none: over seeds, within the file
    with pytest.raises(ValueError, match="two files under 'batch 32' hold the point 0.05"):
        curve_choice_points({"batch 256": [curve], "batch 32": [lo, _curve_file("cold_again", better)]})


@pytest.mark.parametrize("damage, message", [
    (lambda f: f.cold_start.pop(), "every file needs every model with the same seeds"),
    (lambda f: f.cold_start[0].update(valid={}), "has no validation ndcg@10"),
    (lambda f: f.cold_start[0].update(train_users=8), "different training users for seeds \\[0\\]"),
    (lambda f: setattr(f, "config", replace(f.config, cold_start=replace(f.config.cold_start, strategy="fusion"))),
     "different curves"),
    # validation scores of two devices would choose the device, not the setting
    (lambda f: f.info.update(device_name="another CPU"), "differ in \\['device_name'\\]"),
])
def test_curve_setting_choice_refuses_files_that_are_not_the_same_point(damage, message):
    """Each file must hold the same curve with every model, seed and training-user count, and every row a
    validation score: otherwise a setting would win by another file's absence."""
    from xdtutor.curve_readings import curve_setting_choice

    points = {"lora": (.030, [.030, .031, .032]), "text": (.029, [.040, .041, .042]),
              "sasrec": (.031, [.025, .026, .024])}
    a, b = _curve_file("cold_a", points), _curve_file("cold_b", points)
    assert len(curve_setting_choice({"a": a, "b": b}, 0.05)) == 6
    damage(b)
    with pytest.raises(ValueError, match=message):
        curve_setting_choice({"a": a, "b": b}, 0.05)


def test_curve_setting_choice_compares_every_pair_of_files():
    """A file made before the encoder weights were recorded passes any other; two files that record
    different weights must still be refused when such a file comes first."""
    from xdtutor.curve_readings import curve_setting_choice

    points = {"lora": (.030, [.030, .031, .032]), "text": (.029, [.040, .041, .042]),
              "sasrec": (.031, [.025, .026, .024])}
    old, a, b = (_curve_file(f"cold_{n}", points) for n in ("old", "a", "b"))
    a.info.update(encoder_sha256="a" * 64, encoder_precision="fp32")
    b.info.update(encoder_sha256="b" * 64, encoder_precision="fp32")
    assert len(curve_setting_choice({"old": old, "a": a}, 0.05)) == 6
    with pytest.raises(ValueError, match="differ in \\['encoder_sha256'\\]"):
        curve_setting_choice({"old": old, "a": a, "b": b}, 0.05)


def test_a_combined_run_does_not_show_a_parts_own_seed_override():
    """Seeds run apart carry ``--set seeds=[0]``; the combined file has all of them, so its header must
    not say ``seeds=[0]`` beside ``seeds: [0, 1, 2]`` (a one-seed run keeps it)."""
    sets = ["scale=full", "seeds=[0]", "train.progress=false"]
    head = markdown(fake(name="combined", seeds=(0, 1, 2)), sets).splitlines()
    line = next(x for x in head if x.startswith("- seeds:"))
    assert line.endswith("overrides: scale=full train.progress=false")
    one = next(x for x in markdown(fake(name="one", seeds=(0,)), sets).splitlines() if x.startswith("- seeds:"))
    assert "seeds=[0]" in one
