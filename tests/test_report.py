"""Rendering results: lines, tables, the Markdown report with published numbers, notes kept on publish."""

from __future__ import annotations

from dataclasses import replace

import pytest

from test_results import fake
from xdtutor.experiment import DataConfig
from xdtutor.published import published_table, published_value
from xdtutor.report import (budget_note, gain_line, gain_vs_line, interval_text, keep_notes, markdown, mean_std,
                            publish)


def test_mean_std_says_n_1_instead_of_a_zero_spread():
    assert mean_std(0.01234, 0.0004) == "0.0123 ± 0.0004"
    assert mean_std(0.01234, float("nan")) == "0.0123 (n = 1)"


def test_gain_lines():
    assert "+33.3%" in gain_line(fake()) and "lora" in gain_line(fake())
    res = fake()
    res.rows = []
    assert gain_line(res) == "no gain computed"
    assert gain_vs_line(fake(), "popularity") == ("best transfer **lora** NDCG@10 0.0400 vs popularity target-only "
                                                  "0.0200 (**+100.0%**; no interval computed)")
    assert gain_vs_line(fake(), "missing") == "no missing baseline in this run"


def test_interval_text_says_no_detectable_difference_when_the_interval_holds_zero():
    c = {"diff_low": -0.001, "diff_high": 0.002, "relative_low": -0.02, "relative_high": 0.04, "level": 0.95,
         "seeds": 3, "n_users": 1000}
    assert interval_text(c).startswith("no detectable difference; the 95% interval of the difference [-0.0010, +0.0020]")
    assert interval_text({**c, "diff_low": 0.001}).startswith("higher;")
    assert interval_text({"p_value": 0.85}).startswith("format-1 file")  # never a p-value standing in for "equal"
    assert interval_text(None) == "no interval computed"
    zero_reference = {**c, "diff_low": 0.001, "relative_low": None, "relative_high": None}
    assert "no relative interval (the reference is 0)" in interval_text(zero_reference)


def test_budget_note_only_when_a_cap_fired():
    assert budget_note(fake()) is None
    note = budget_note(fake(stops=("time_limit", "patience")))
    assert note is not None and "1 of 2 trainings" in note and "source (seed 0)" in note and "15 min" in note
    assert "does not record" in budget_note(fake(stops=("", "")))
    assert budget_note(fake(stops=("", ""), caps=(None, None))) is None  # no caps: nothing to warn about


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


def test_keep_notes():
    old = "# x\n\n| old table |\n\n## Notes (read first)\n\n- seed 2 missing\n"
    assert keep_notes("# x\n\n| new table |\n", old) == "# x\n\n| new table |\n\n## Notes (read first)\n\n- seed 2 missing\n"
    assert keep_notes("# x\n", "# x\n| no notes |\n") == "# x\n"
    assert keep_notes("# x\n", None) == "# x\n"


def test_publish_keeps_the_notes_of_the_committed_file(tmp_path):
    (tmp_path / "k2f.md").write_text("# k2f\n\nold table\n\n## Notes\n\n- written by a person\n")
    written = publish(fake(), tmp_path)
    names = {p.name for p in written}
    assert {"k2f.json", "k2f.md", "k2f.metrics.png"} <= names
    text = (tmp_path / "k2f.md").read_text()
    assert "old table" not in text and text.rstrip().endswith("- written by a person")
