"""Shared cell builders for the chapter generators ``scripts/make_notebook_0X.py``.

Each generator writes one chapter notebook (without outputs) with :func:`write`; execute it afterwards
with ``python scripts/execute_notebooks.py --scale ci notebooks/0X_*.ipynb`` so the committed notebook
carries its CI-scale outputs. The header, parameters, setup and "About this run" cells follow the
conventions of ``notebooks/01_background.ipynb`` (learning objectives + measured runtime, a papermill
``parameters`` cell driven by ``XDTUTOR_SCALE``, glue for numbers in prose, exercises with hidden
solutions).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]

PARAMETERS = '''\
# Parameters: papermill (and scripts/execute_notebooks.py) override these.
import os

SCALE = os.environ.get("XDTUTOR_SCALE", "ci")      # "ci": seeded subsample, minutes on a CPU; "full": all data
DATA_DIR = os.environ.get("XDTUTOR_DATA_DIR")      # None: download + verify into the cache
DEVICE = os.environ.get("XDTUTOR_DEVICE", "auto")  # "auto" = CUDA > MPS > CPU
SEED = 0'''

SETUP = '''\
# Setup: seeding, device, and the measured runtimes of this chapter (scripts/execute_notebooks.py).
import json
import pathlib
import time
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm without ipywidgets

import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown
from myst_nb import glue
from transformers.utils import logging as hf_logging

import xdtutor
from xdtutor.utils import seed_everything, select_device

%matplotlib inline
hf_logging.disable_progress_bar()  # no "Loading weights" bars in the outputs
assert SCALE in ("ci", "full"), f"SCALE must be 'ci' or 'full', got {SCALE!r}"
_t0 = time.perf_counter()
seed_everything(SEED)
if SCALE == "ci":
    torch.set_num_threads(1)  # CI scale: single-threaded = same floats on every machine, and no oversubscription
device = select_device(DEVICE)
_runtimes = pathlib.Path("runtimes.json")
_runtimes = json.loads(_runtimes.read_text()).get("STEM", {}) if _runtimes.exists() else {}
for _scale in ("ci", "full"):
    _r = _runtimes.get(_scale)
    _s = _r and (f"{_r['seconds']:.0f} s" if _r["seconds"] < 90 else f"{_r['seconds'] / 60:.1f} min")
    glue(f"runtime_{_scale}", Markdown(f"{_s} ({_r['device']}, {_r['date']})" if _r else "not measured yet"),
         display=False)'''

RUN_INFO = '''\
# This run: scale, device, versions and elapsed time (shown in the "About this run" box).
glue("run_scale", Markdown(f"`{SCALE}`"), display=False)
glue("run_device", Markdown(f"`{device}`"), display=False)
glue("run_version", Markdown(f"xdtutor `{xdtutor.__version__}`, torch `{torch.__version__}`"), display=False)
glue("run_elapsed", Markdown(f"{time.perf_counter() - _t0:.0f} s"), display=False)'''

RUN_BOX = '''\
```{admonition} About this run
:class: note
Built at scale {glue:md}`run_scale` on {glue:md}`run_device` with {glue:md}`run_version`;
this notebook took {glue:md}`run_elapsed`.
```'''


class Book:
    """Accumulates the cells of one chapter."""

    def __init__(self, stem: str, title: str, objectives: list[str]) -> None:
        self.stem = stem
        self.cells = []
        lines = [f"# {title}", "", "**Learning objectives.** After this chapter you can", ""]
        lines += [f"{i}. {o}" for i, o in enumerate(objectives, 1)]
        lines += ["", "**Runtime** (measured): {glue:md}`runtime_ci` at CI scale · "
                      "{glue:md}`runtime_full` at full scale."]
        self.md("\n".join(lines))
        self.code(PARAMETERS, tags=["parameters"])
        self.code(SETUP.replace("STEM", stem), tags=["remove-input", "nbval-ignore-output"])

    def md(self, text: str) -> None:
        self.cells.append(new_markdown_cell(text.strip("\n")))

    def code(self, src: str, tags: list[str] | None = None) -> None:
        cell = new_code_cell(src.strip("\n"))
        if tags:
            cell.metadata["tags"] = list(tags)
        self.cells.append(cell)

    def exercise(self, label: str, text: str, solution_code: str | None = None,
                 solution_md: str | None = None, tags: list[str] | None = None) -> None:
        """An exercise with a hidden solution (code that CI runs, or prose)."""
        ex = f"```{{exercise}}\n:label: {label}\n{text.strip()}\n```"
        if solution_code is not None:
            self.md(f"{ex}\n```{{solution-start}} {label}\n:class: dropdown\n```")
            self.code(solution_code, tags=tags)
            self.md("```{solution-end}\n```")
        else:
            self.md(f"{ex}\n```{{solution}} {label}\n:class: dropdown\n{solution_md.strip()}\n```")

    def write(self) -> Path:
        self.code(RUN_INFO, tags=["remove-input", "nbval-ignore-output"])
        self.md(RUN_BOX)
        nb = new_notebook(cells=self.cells)
        nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
        nb.metadata["language_info"] = {"name": "python"}
        path = ROOT / "notebooks" / f"{self.stem}.ipynb"
        nbformat.write(nb, path)
        return path
