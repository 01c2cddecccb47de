"""Numbers in the README and the FAQ are generated from the committed files, never typed."""

from __future__ import annotations

from pathlib import Path

import pytest

from xdtutor.docs import PAGES, render, snippets, update

ROOT = Path(__file__).resolve().parents[1]


def test_readme_and_faq_agree_with_the_committed_results():
    stale = update(ROOT, check=True)
    assert stale == [], f"{[str(p.relative_to(ROOT)) for p in stale]} disagree with results/: run scripts/render_docs.py"


def test_every_page_has_its_generated_regions():
    values = snippets(ROOT)
    for page in PAGES:
        text = (ROOT / page).read_text()
        assert "<!-- generated:" in text, page
        for name in values:
            if f"<!-- generated:{name} -->" in text:
                start = text.index(f"<!-- generated:{name} -->")
                assert values[name].rstrip() in text[start:text.index("<!-- /generated -->", start)]


def test_render_replaces_regions_and_catches_a_typed_number(tmp_path):
    page = "x\n<!-- generated:findings -->\n+99 % typed by hand\n<!-- /generated -->\ny\n"
    out = render(page, {"findings": "- measured"})
    assert out == "x\n<!-- generated:findings -->\n- measured\n<!-- /generated -->\ny\n"
    assert render(out, {"findings": "- measured"}) == out
    with pytest.raises(KeyError, match="no generated text named 'other'"):
        render("<!-- generated:other -->\n<!-- /generated -->", {"findings": ""})


def test_the_encoder_line_reads_each_target_and_the_transfer_gains_change():
    from xdtutor.docs import _encoder_line

    diff = {"diff": 0.002, "diff_low": -0.001, "diff_high": 0.004, "relative": 0.03, "relative_low": -0.01,
            "relative_high": 0.06, "level": 0.95, "seeds": 3, "n_users": 100}
    change = {"diff": 0.003, "diff_low": 0.001, "diff_high": 0.005, "relative": None, "relative_low": None,
              "relative_high": None, "level": 0.95, "seeds": 3, "n_users": 100}
    line = _encoder_line({"targets": {"food": {"difference": diff, "transfer": {"method": "full_finetune",
                                                                               "change": change}},
                                      "scientific": {"difference": {**diff, "diff_low": 0.001}}}})
    assert "food +3.0 % (no detectable difference;" in line and "scientific +3.0 % (higher;" in line
    assert line.endswith("change of the food transfer gain (full_finetune vs text, mpnet − MiniLM, user by user, "
                         "NDCG@10): +0.0030; higher; 95% interval of the difference [+0.0010, +0.0050]; 3 seed(s), "
                         "100 users.")
