"""Numbers in the README and the FAQ are generated from the committed files, never typed."""

from __future__ import annotations

import re
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
    change = {"diff": 0.003, "diff_low": 0.001, "diff_high": 0.005, "method": "ft − text", "relative": None, "relative_low": None,
              "relative_high": None, "level": 0.95, "seeds": 3, "n_users": 100}
    line = _encoder_line({"targets": {"food": {"difference": diff, "transfer": {"method": "full_finetune",
                                                                               "change": change}},
                                      "scientific": {"difference": {**diff, "diff_low": 0.001}}}})
    assert "food +3.0% (no detectable difference;" in line and "scientific +3.0% (higher;" in line
    assert line.endswith("change of the food transfer gain (full_finetune vs text, mpnet − MiniLM, user by user, "
                         "NDCG@10): +0.0030; higher; 95% interval of the difference [+0.0010, +0.0050]; 3 seed(s), "
                         "100 users.")


def test_the_scientific_searches_line_leaves_the_gpu_width_searches_to_their_own_line(tmp_path):
    """The width searches (configs/scientific_width.yaml, run on a GPU) are not the CPU experiments' hand-set
    settings' searches: the Scientific line of searches must not read them, and chapter 7's reading of
    Food's prior must not take their also_try trial for it; their own line reads them beside their run."""
    import shutil

    from xdtutor.docs import _scientific_width, _searches_line
    from xdtutor.tune_results import committed_searches

    names = [p.name for p in (ROOT / "results").glob("tune_scientific_*.json")]
    (tmp_path / "results").mkdir()
    for name in names:
        shutil.copy(ROOT / "results" / name, tmp_path / "results" / name)
    cpu = {Path(s.config.experiment).name for s in committed_searches(tmp_path / "results", "scientific")}
    assert cpu and "scientific_width.yaml" not in cpu
    gpu = committed_searches(tmp_path / "results", "scientific", "scientific_width")
    assert sorted(s.config.method for s in gpu) == ["text", "text_id"]
    line = _searches_line(tmp_path, "scientific", "Scientific")[0]
    assert "model.hidden" not in line and line.count("**text") == 2
    assert _scientific_width(tmp_path) == []  # no run file: no line
    shutil.copy(ROOT / "results" / "scientific_width.json", tmp_path / "results")
    (width,) = _scientific_width(tmp_path)
    assert "on NVIDIA H200" in width and "model.hidden = 128" in width and "a second NVIDIA H200" not in width
    shutil.copy(ROOT / "results" / "scientific_width_reference.json", tmp_path / "results")
    (width,) = _scientific_width(tmp_path)
    assert ("with the experiment's own settings, trained on a second NVIDIA H200 of the same image, library "
            "versions and encoder copy (`results/scientific_width_reference.md`): +0.5% (files `scientific_width` "
            "vs `scientific_width_reference`") in width
    assert "vs UniSRec text only (inductive)" in width and "vs UniSRec text + ID (transductive)" in width
    for name in names:  # without its searches the line still reads
        (tmp_path / "results" / name).unlink()
    (bare,) = _scientific_width(tmp_path)
    assert "there, so not compared with the CPU rows above): the searched text model against" in bare


# A result-like number in prose: a decimal with 3+ digits (".0641"), a signed percentage ("+22 %", a
# gain), a percentage with a decimal ("21.7 %"). Section numbers, constants ("95 %") and counts are not.
_RESULT_NUMBER = re.compile(r"(?<![\w.])[+\-−]?\d*\.\d{3,}(?!\w|\.\d)|(?<![\w.])[+\-−]\d+(?:\.\d+)?\s?%"
                            r"|(?<![\w.+\-−])\d+\.\d+\s?%")


def typed_numbers(markdown: str) -> list[str]:
    """Result-like numbers typed into Markdown prose: what is left after removing generated regions,
    code (fenced code blocks, inline code), roles (glue, cite, ref, math), math, links and DOIs."""
    text = re.sub(r"<!-- generated:(\w+) -->.*?<!-- /generated -->", " ", markdown, flags=re.S)
    text = re.sub(r"(`{3,})(?![`{])[^\n]*\n.*?\1", " ", text, flags=re.S)  # code blocks; directives stay prose
    text = re.sub(r"\{[a-z:-]+\}`[^`]*`", " ", text)
    text = re.sub(r"`[^`\n]*`", " ", text)
    text = re.sub(r"\$\$.*?\$\$", " ", text, flags=re.S)
    text = re.sub(r"\$[^$\n]*\$", " ", text)
    text = re.sub(r"\]\([^)]*\)", "]", text)
    text = re.sub(r"(https?://|DOI |arXiv:)\S+", " ", text)
    return [m.group(0) for m in _RESULT_NUMBER.finditer(text)]


def test_typed_numbers_finds_results_but_not_section_numbers_or_glue():
    assert typed_numbers("a gain of +21.7 % (N@10 .0641 vs 0.0625), +22 %, and 6.6% more") == [
        "+21.7 %", ".0641", "0.0625", "+22 %", "6.6%"]
    assert typed_numbers("It reached 0.0641. Then 21.75 % of it.") == ["0.0641", "21.75 %"]
    assert typed_numbers("section 5.8, a 95 % interval, 8,442 users, {glue:text}`x:.4f`, `0.1235`, $0.5$, "
                         "[p](a/0.1235.md), DOI 10.1145/3715099\n```python\nx = 0.0641\n```\n") == []
    assert typed_numbers("````{admonition} Note\nit reached 0.0641\n````") == ["0.0641"]


def test_no_result_number_is_typed_into_the_prose():
    """Every number a reader sees in a chapter, the FAQ or the README comes from a results file: glued
    in chapters, generated into README/FAQ (and the benchmarks' README). Published (external) numbers are glued from
    xdtutor/published.yaml too."""
    import jupytext

    pages = sorted((ROOT / "book" / "chapters").glob("*.md"))
    bad = []
    for page in pages + sorted((ROOT / "book").glob("*.md")) + [ROOT / "README.md", ROOT / "benchmarks" / "README.md"]:
        if page in pages:
            text = "\n".join(c.source for c in jupytext.read(page).cells if c.cell_type == "markdown")
        else:
            text = page.read_text(encoding="utf-8")
        bad += [f"{page.relative_to(ROOT)}: {n}" for n in typed_numbers(text)]
    assert not bad, bad


def test_the_benchmark_summary_has_a_line_per_file_read_from_it(tmp_path):
    """The benchmarks README's numbers come from ``benchmarks/results/*.json``: a changed file changes
    its line (the summary was once typed by hand and went stale)."""
    import json
    import shutil

    from xdtutor.docs import _benchmarks

    shutil.copytree(ROOT / "benchmarks" / "results", tmp_path / "benchmarks" / "results")
    lines = _benchmarks(tmp_path).splitlines()
    files = sorted(p.name for p in (tmp_path / "benchmarks" / "results").glob("*.json"))
    assert [re.search(r"\(`(\w+\.json)`", line).group(1) for line in lines] == files
    path = tmp_path / "benchmarks" / "results" / "joint.json"
    d = json.loads(path.read_text())
    d["rows"] = [{**r, "s_per_step": 2.0 if r["negatives"] == "all" else 0.5} for r in d["rows"]]
    path.write_text(json.dumps(d))
    assert "2.00 s with the full softmax, 0.50 s with `per_domain` (4.0×)" in _benchmarks(tmp_path)
    assert _benchmarks(tmp_path / "empty").startswith("No benchmark has been run yet")


def test_the_gpu_summary_reads_its_folder_a_stopped_run_and_the_cpu_comparison(tmp_path):
    """benchmarks/README.md's GPU region: a line per ``benchmarks/results/gpu/*.json``, a stopped end-to-end
    run says how far it got, and the GPU-vs-CPU epoch line divides the two files' epochs."""
    import json
    import shutil

    from xdtutor.docs import _benchmarks, _gpu_vs_cpu

    shutil.copytree(ROOT / "benchmarks" / "results", tmp_path / "benchmarks" / "results")
    gpu = tmp_path / "benchmarks" / "results" / "gpu"
    text = _benchmarks(tmp_path, "benchmarks/results/gpu")
    named = [m.group(1) for m in re.finditer(r"\(`(\w+\.json)`", text)]
    assert named == sorted(p.name for p in gpu.glob("*.json"))
    e2e = json.loads((gpu / "end_to_end.json").read_text())
    e2e["rows"][0].update(status="stopped after 9 s (timeout)",
                          progress={"finished": [{"method": "sasrec"}], "last_epoch": {"source/ab12": 4, "seed0/text": 2}})
    (gpu / "end_to_end.json").write_text(json.dumps(e2e))
    text = _benchmarks(tmp_path, "benchmarks/results/gpu")
    assert "stopped after 9 s (timeout), 1 trainings finished, source pretraining at epoch 4, seed0/text at epoch 2" in text
    for name, epoch in (("gpu/training_fp32.json", 0.5), ("training.json", 2.0)):
        path = tmp_path / "benchmarks" / "results" / name
        d = json.loads(path.read_text())
        d["rows"] = [{**r, "epoch_s": epoch} for r in d["rows"]]
        path.write_text(json.dumps(d))
    last = _gpu_vs_cpu(tmp_path)  # the GPU region's last line (xdtutor.docs.snippets)
    assert last.startswith("* One training epoch on Scientific, GPU vs CPU") and "SASRec 0.50 s vs 2.0 s" in last
    assert "4.0×" in last
    shutil.rmtree(gpu)
    assert "is empty" in _benchmarks(tmp_path, "benchmarks/results/gpu")


def test_the_batch_line_names_each_models_choice_and_reads_the_point(tmp_path):
    """A cold-start point retrained with smaller batches: the findings line names the batch size each model
    chose on validation and the strategy's verdict against the better baseline (from the report)."""
    from dataclasses import replace

    from test_report import _curve_file
    from xdtutor.docs import _batch_line

    cold = _curve_file("cold_start", {"lora": (.030, [.030, .031, .032]), "text": (.029, [.040, .041, .042]),
                                      "sasrec": (.031, [.025, .026, .024])})
    batch = _curve_file("cold_start_batch", {"lora": (.033, [.029, .030, .028]), "text": (.032, [.030, .031, .029]),
                                             "sasrec": (.028, [.050, .050, .050])})
    batch.config = replace(batch.config, cold_start=replace(batch.config.cold_start, batch_size=32))
    line = _batch_line(cold, batch)
    assert line.startswith("- **Batches of 32 at the cold-start curve's 5% point** (`results/cold_start_batch.md`, "
                           f"3 seed(s); every model retrained with batches of 32 beside `results/cold_start.md`'s "
                           f"{cold.config.train.batch_size}; chosen on validation: ")
    assert "lora batch 32" in line and "text batch 32" in line and f"sasrec batch {cold.config.train.batch_size}" in line
    assert "lora (batch 32) vs text (batch 32, the better baseline on validation): -0.0010 (-3.3%); not compared " \
           "user by user in `cold_start_batch`" in line
    with pytest.raises(ValueError, match="the batch size of both"):
        _batch_line(cold, cold)

    # a file of two points (configs/cold_start_batch_wide.yaml): each point read with its own choices
    def two_points(res, test_shift):
        res.cold_start += [{**r, "fraction": 0.2, "metrics": {k: v + test_shift for k, v in r["metrics"].items()}}
                           for r in res.cold_start]
        res.config = replace(res.config, cold_start=replace(res.config.cold_start, fractions=(0.05, 0.2)))
        return res

    line = _batch_line(two_points(cold, .01), two_points(batch, .02))
    assert line.startswith("- **Batches of 32 at the cold-start curve's 5% and 20% points** "
                           "(`results/cold_start_batch.md`, 3 seed(s); every model retrained with batches of 32 "
                           f"beside `results/cold_start.md`'s {cold.config.train.batch_size}): at 5% (chosen on "
                           f"validation: sasrec batch {cold.config.train.batch_size}, lora batch 32, text batch 32): "
                           "lora (batch 32) vs text (batch 32, the better baseline on validation): -0.0010 (-3.3%); ")
    # at 20% every test value is .02 higher in the batch-32 file: the same difference, relative to .050
    assert "; at 20% (chosen on validation: sasrec batch " in line
    assert line.count("lora (batch 32) vs text (batch 32, the better baseline on validation)") == 2
    assert "-0.0010 (-2.0%)" in line


def test_the_architecture_map_names_every_module():
    """docs/architecture.md is the map a newcomer reads first: a module added (or split off) without its
    line there is one they cannot find (the map had drifted by 23 modules before this test)."""
    root = Path(__file__).resolve().parents[1]
    layout = (root / "docs" / "architecture.md").read_text(encoding="utf-8").split("## Layout", 1)[1]
    layout = layout.split("\n## ", 1)[0]
    named = set(re.findall(r"[\w.]+", layout))
    missing = []
    for path in sorted((root / "xdtutor").rglob("*.py")):
        if path.name == "__init__.py":
            continue
        # a strategy module is listed by its name (the registry key), every other file by its file name
        key = path.stem if path.parent.name == "transfer" and path.stem != "base" else path.name
        if key not in named:
            missing.append(str(path.relative_to(root)))
    assert not missing, f"docs/architecture.md's layout does not name {missing}"


def test_a_retrained_file_that_pretrained_its_own_theta_s_says_so():
    """The findings' retrained line names a file's θ_s settings where they differ from the menu's (the
    file fine-tunes from another θ_s), and nothing where it fine-tunes the menu's."""
    from xdtutor.docs import _theta_s_text
    from xdtutor.experiment import load_config
    from xdtutor.results import Results

    menu = Results.load(ROOT / "results" / "kitchen_to_food_menu.json")
    cfg = load_config(ROOT / "configs" / "kitchen_to_food_source_tuned.yaml", ["scale=full"])
    own = _theta_s_text(Results(cfg, rows=menu.rows, info=menu.info), menu)
    assert own.startswith(" — full_finetune and fusion from a θ_s pretrained with ") and "pretrain.lr=0.00259" in own
    assert "model.dropout=0.0355" in own and "pretrain.epochs=100" in own and "train.lr" not in own.replace(
        "pretrain.lr", "")
    tuned = Results.load(ROOT / "results" / "kitchen_to_food_fusion_tuned.json")
    assert _theta_s_text(tuned, menu) == ""  # per-method settings only: the menu's θ_s
