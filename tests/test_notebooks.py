"""The book's chapter notebooks: structure (fast, no data) and nbval re-execution (marked ``notebooks``).

The slow part re-executes every committed notebook at CI scale with nbval and compares the fresh outputs
with the committed ones (sanitised by ``notebooks/sanitize.cfg``; cells tagged ``nbval-ignore-output``
are executed but not compared). It is the command CI would run directly::

    XDTUTOR_SCALE=ci pytest --nbval --nbval-current-env notebooks/ --nbval-sanitize-with notebooks/sanitize.cfg

driven here one notebook per test so a failure names the chapter and its runtime is reported.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
BOOK = ROOT / "book"
CHAPTERS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
IDS = [p.stem for p in CHAPTERS]


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


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


def test_chapters_exist_and_are_in_the_toc():
    toc = yaml.safe_load((BOOK / "_toc.yml").read_text())
    files = set(_toc_files(toc)) | {toc["root"]}
    assert len(CHAPTERS) == 8, [p.name for p in CHAPTERS]
    for nb in CHAPTERS:
        assert f"notebooks/{nb.stem}" in files, f"{nb.name} is not in book/_toc.yml"
    for f in files:
        assert list(BOOK.glob(f + ".*")), f"_toc.yml lists {f!r} but book/{f}.(md|ipynb) does not exist"
    assert (BOOK / "notebooks").resolve() == NOTEBOOKS.resolve(), "book/notebooks must link to ../notebooks"


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_notebook_structure(path: Path):
    nb = _read(path)
    nbformat.validate(nb)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# "), f"{path.name}: title first"
    assert "Learning objectives" in first.source and "Runtime" in first.source, f"{path.name}: header"

    params = [c for c in nb.cells if "parameters" in _tags(c)]
    assert len(params) == 1, f"{path.name}: exactly one cell tagged 'parameters'"
    src = params[0].source
    assert re.search(r'SCALE = os\.environ\.get\("XDTUTOR_SCALE", "ci"\)', src), f"{path.name}: SCALE"
    for name in ("DATA_DIR", "DEVICE", "SEED"):
        assert re.search(rf"^{name} = ", src, re.M), f"{path.name}: parameter {name} missing"

    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "## Exercises" in text, f"{path.name}: no exercises section"
    assert text.count("{solution-start}") == text.count("{solution-end}"), f"{path.name}: unbalanced solutions"
    for block in re.findall(r"```\{solution(?:-start)?\}[^\n]*\n((?::[^\n]*\n)*)", text):
        assert ":class: dropdown" in block, f"{path.name}: solutions must be hidden (:class: dropdown)"


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_committed_outputs_are_a_clean_ci_run(path: Path):
    """Committed notebooks are executed (at CI scale) and contain no errors: the CI book renders them."""
    nb = _read(path)
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
    runtimes = json.loads((NOTEBOOKS / "runtimes.json").read_text())
    for nb in CHAPTERS:
        r = runtimes.get(nb.stem, {}).get("ci")
        assert r and r["seconds"] > 0 and r["device"] and r["date"], f"{nb.stem}: no CI runtime recorded"


@pytest.mark.notebooks
@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_notebook_runs_and_matches_committed_outputs(path: Path, record_property):
    if not os.environ.get("XDTUTOR_DATA_DIR"):
        pytest.skip("XDTUTOR_DATA_DIR is not set: the chapters run on the real data")
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
