"""The book's chapters: one Markdown source each, its paired executed notebook, and nbval re-execution.

A chapter's only hand-edited source is ``book/chapters/NN_name.md`` (a jupytext MyST Markdown
notebook that Jupyter Book executes); ``notebooks/NN_name.ipynb`` is its paired copy with the
outputs of a CI-scale run (for JupyterLab, Colab, GitHub, papermill and nbval). The fast tests
check the structure, that every pair holds the same cells, and that every visible code cell runs
after the chapter's one set-up line (no name comes from a hidden cell). The slow part re-executes
every committed notebook at CI scale with nbval and compares the fresh outputs with the committed
ones (sanitised by ``notebooks/sanitize.cfg``; cells tagged ``nbval-ignore-output`` are executed
but not compared)::

    XDTUTOR_SCALE=ci pytest --nbval --nbval-current-env notebooks/ --nbval-sanitize-with notebooks/sanitize.cfg
"""

from __future__ import annotations

import ast
import builtins
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml
from pyflakes import messages
from pyflakes.checker import Checker

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
NOTEBOOKS = ROOT / "notebooks"
SOURCES = sorted((BOOK / "chapters").glob("[0-9][0-9]_*.md"))
IDS = [p.stem for p in SOURCES]
HIDDEN = {"remove-input", "remove-cell"}
IPYTHON_BUILTINS = {"display", "get_ipython"}  # defined in every IPython kernel


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _toc_files(node) -> list[str]:
    """Every ``file:`` entry of the (nested) _toc.yml."""
    out = []
    if isinstance(node, dict):
        if "file" in node:
            out.append(node["file"])
        for v in node.values():
            out += _toc_files(v)
    elif isinstance(node, list):
        for v in node:
            out += _toc_files(v)
    return out


def _cells(nb) -> list[tuple[str, str, list[str]]]:
    return [(c.cell_type, c.source.strip(), sorted(_tags(c))) for c in nb.cells]


def undefined_names(nb) -> list[str]:
    """Names the visible code cells use but no visible cell (or IPython) defines, in cell order."""
    visible = []
    for c in nb.cells:
        if c.cell_type == "code" and not HIDDEN & set(_tags(c)):
            visible.append("\n".join(line for line in c.source.splitlines()
                                     if not line.lstrip().startswith(("%", "!"))))  # IPython magics
    checker = Checker(ast.parse("\n\n".join(visible)))
    return sorted({m.message_args[0] for m in checker.messages if isinstance(m, messages.UndefinedName)}
                  - IPYTHON_BUILTINS - set(dir(builtins)))


def test_every_chapter_has_one_source_in_the_toc_and_a_paired_notebook():
    toc = yaml.safe_load((BOOK / "_toc.yml").read_text())
    files = set(_toc_files(toc)) | {toc["root"]}
    assert len(SOURCES) == 8, [p.name for p in SOURCES]
    for src in SOURCES:
        assert f"chapters/{src.stem}" in files, f"{src.name} is not in book/_toc.yml"
        assert (NOTEBOOKS / f"{src.stem}.ipynb").is_file(), f"{src.name}: no paired notebooks/{src.stem}.ipynb"
        assert not (BOOK / "chapters" / f"{src.stem}.ipynb").exists(), f"{src.stem}: two sources in book/chapters"
    for f in files:
        assert list(BOOK.glob(f + ".*")), f"_toc.yml lists {f!r} but book/{f}.(md|ipynb) does not exist"
    assert {p.stem for p in NOTEBOOKS.glob("*.ipynb")} == set(IDS), "a notebook without a chapter source"
    assert not list((ROOT / "scripts").glob("make_notebook*")), "chapters are not generated: edit book/chapters"


@pytest.mark.parametrize("source", SOURCES, ids=IDS)
def test_pair_has_not_drifted(source: Path):
    """The executed notebook holds exactly the cells of its Markdown source (fix: scripts/execute_notebooks.py)."""
    md = jupytext.read(source)
    assert md.metadata["jupytext"]["formats"] == "book/chapters//md:myst,notebooks//ipynb", source.name
    nb = nbformat.read(NOTEBOOKS / f"{source.stem}.ipynb", as_version=4)
    assert _cells(nb) == _cells(md), (f"{source.stem}: notebooks/{source.stem}.ipynb differs from its source; "
                                      f"run python scripts/execute_notebooks.py book/chapters/{source.name}")


@pytest.mark.parametrize("source", SOURCES, ids=IDS)
def test_chapter_structure(source: Path):
    nb = jupytext.read(source)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# "), f"{source.name}: title first"
    assert "Learning objectives" in first.source and "Runtime" in first.source, f"{source.name}: header"

    code = [c for c in nb.cells if c.cell_type == "code"]
    # first the install cell for Colab (hidden on the site; test_book_config checks what it does)
    assert 'find_spec("xdtutor")' in code[0].source and _tags(code[0]) == ["remove-cell"], \
        f"{source.name}: the first code cell installs xdtutor where it is missing"
    code = code[1:]
    assert "parameters" in _tags(code[0]), f"{source.name}: the parameters cell comes next"
    assert sum("parameters" in _tags(c) for c in code) == 1, f"{source.name}: exactly one 'parameters' cell"
    src = code[0].source
    assert re.search(r'SCALE = os\.environ\.get\("XDTUTOR_SCALE", "ci"\)', src), f"{source.name}: SCALE"
    for name in ("DATA_DIR", "DEVICE", "SEED"):
        assert re.search(rf"^{name} = ", src, re.M), f"{source.name}: parameter {name} missing"
    from papermill.translators import PythonTranslator  # what `papermill --help-notebook` lists

    seen = [p.name for p in PythonTranslator.inspect(nbformat.v4.new_code_cell(src))]
    assert seen == ["SCALE", "DATA_DIR", "DEVICE", "SEED"], f"{source.name}: papermill reads {seen}"
    setup_line = f'run = setup(SCALE, seed=SEED, device=DEVICE, data_dir=DATA_DIR, chapter="{source.stem}")'
    one_line = re.sub(r",\n\s+", ", ", code[1].source)  # the call may be wrapped to fit the page
    assert setup_line in one_line and not _tags(code[1]), f"{source.name}: the visible set-up line comes second"
    assert "run.finish()" in code[-1].source, f"{source.name}: the last code cell glues the 'About this run' box"

    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "## Exercises" in text, f"{source.name}: no exercises section"
    assert text.count("{solution-start}") == text.count("{solution-end}"), f"{source.name}: unbalanced solutions"
    for block in re.findall(r"```\{solution(?:-start)?\}[^\n]*\n((?::[^\n]*\n)*)", text):
        assert ":class: dropdown" in block, f"{source.name}: solutions must be hidden (:class: dropdown)"


@pytest.mark.parametrize("source", SOURCES, ids=IDS)
def test_visible_cells_run_after_the_setup_line(source: Path):
    """Code copied from a page runs: no visible cell uses a name that only a hidden cell defines."""
    assert undefined_names(jupytext.read(source)) == []


def test_the_undefined_name_check_catches_a_hidden_definition():
    nb = jupytext.reads("```{code-cell} ipython3\n:tags: [remove-input]\n\nimport torch\n```\n\n"
                        "```{code-cell} ipython3\nx = torch.zeros(2)\ndisplay(x)\n```\n", fmt="md:myst")
    assert undefined_names(nb) == ["torch"]


@pytest.mark.parametrize("source", SOURCES, ids=IDS)
def test_committed_outputs_are_a_clean_ci_run(source: Path):
    """Committed notebooks are executed (at CI scale) and contain no errors."""
    path = NOTEBOOKS / f"{source.stem}.ipynb"
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code), f"{path.name}: not executed; run scripts/execute_notebooks.py"
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{path.name}: committed outputs contain errors: {[e['ename'] for e in errors]}"
    scale = [v for c in code for o in c.get("outputs", [])
             if o.get("metadata", {}).get("scrapbook", {}).get("name") == "run_scale"
             for k, v in o["data"].items() if k.endswith("text/markdown")]
    assert scale == ["`ci`"], f"{path.name}: committed outputs must come from a CI-scale run, got {scale}"
    numpy_glue = [o["metadata"]["scrapbook"]["name"] for c in code for o in c.get("outputs", [])
                  if "scrapbook" in o.get("metadata", {})
                  and str(o["data"].get("application/papermill.record/text/plain", "")).startswith("np.")]
    assert not numpy_glue, f"{path.name}: glue plain int/float, not NumPy scalars (unformattable): {numpy_glue}"
    assert not any(m.get("papermill") for m in [nb.metadata, *[c.metadata for c in nb.cells]]), \
        f"{path.name}: papermill metadata left in the committed notebook"


def test_runtimes_recorded():
    runtimes = json.loads((BOOK / "_generated" / "runtimes.json").read_text())
    for src in SOURCES:
        for key in ("ci", "ci_cold"):  # warm and empty cache (scripts/execute_notebooks.py --cold-cache)
            r = runtimes.get(src.stem, {}).get(key)
            assert r and r["seconds"] > 0 and r["device"] and r["date"], f"{src.stem}: no {key} runtime recorded"


@pytest.mark.notebooks
@pytest.mark.parametrize("source", SOURCES, ids=IDS)
def test_notebook_runs_and_matches_committed_outputs(source: Path, record_property):
    if not os.environ.get("XDTUTOR_DATA_DIR"):
        pytest.skip("XDTUTOR_DATA_DIR is not set: the chapters run on the real data")
    path = NOTEBOOKS / f"{source.stem}.ipynb"
    env = {**os.environ, "XDTUTOR_SCALE": "ci", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "pytest", "--nbval", "--nbval-current-env", str(path),
           "--nbval-sanitize-with", str(NOTEBOOKS / "sanitize.cfg"), "--nbval-cell-timeout", "1800",
           "-p", "no:cacheprovider", "-q", "--rootdir", str(ROOT)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    seconds = time.perf_counter() - start
    record_property("seconds", round(seconds, 1))
    print(f"{path.stem}: nbval {seconds:.0f} s")
    assert proc.returncode == 0, f"nbval failed for {path.name}:\n{proc.stdout[-8000:]}\n{proc.stderr[-2000:]}"


@pytest.mark.notebooks
def test_papermill_runs_a_chapter_with_injected_parameters(tmp_path):
    """The parameters cell works as papermill expects: injected values replace the defaults."""
    if not os.environ.get("XDTUTOR_DATA_DIR"):
        pytest.skip("XDTUTOR_DATA_DIR is not set: the chapters run on the real data")
    import papermill as pm

    out = tmp_path / "01_background.ipynb"
    pm.execute_notebook(str(NOTEBOOKS / "01_background.ipynb"), str(out), parameters={"SCALE": "ci", "SEED": 1},
                        cwd=str(NOTEBOOKS), kernel_name="python3", progress_bar=False)
    nb = nbformat.read(out, as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in _tags(c)]
    assert len(injected) == 1 and "SEED = 1" in injected[0].source
    # right after the parameters cell (title, install cell, parameters), before the set-up line
    assert nb.cells.index(injected[0]) == 3 and "parameters" in _tags(nb.cells[2])
