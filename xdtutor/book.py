"""What every chapter of the book does first, in one visible line.

::

    from xdtutor.book import setup
    run = setup(SCALE, seed=SEED, device=DEVICE, data_dir=DATA_DIR, chapter="05_case_study")

:func:`setup` seeds Python/NumPy/torch, picks the device, pins torch to one thread at CI scale (the
same floats on every machine, so nbval can compare outputs), silences progress bars and warnings
that are noise on a rendered page, switches a notebook to inline figures (a headless build sets
``MPLBACKEND=Agg``, which would hide them), finds the repository (for ``configs/`` and
``results/``) and glues the chapter's measured runtimes for its header. Every later cell of a
chapter imports what it uses, so any cell copied into a fresh notebook after this line runs.

:func:`glue` is myst-nb's ``glue`` where myst-nb is installed (the book build) and a no-op that
returns the value elsewhere (Colab), so the same cell runs in both.
"""

from __future__ import annotations

import warnings

# Before anything imports tqdm.auto: without ipywidgets it warns "IProgress not found" into every page.
warnings.filterwarnings("ignore", message="IProgress not found")

import json  # noqa: E402  (the filter above must come first)
import logging  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402
from IPython import get_ipython  # noqa: E402
from IPython.display import Markdown  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

from . import __version__  # noqa: E402
from .experiment import ExperimentConfig, load_config  # noqa: E402
from .utils import format_seconds, seed_everything, select_device  # noqa: E402

SCALES = ("ci", "full")
#: Measured chapter runtimes (written by ``scripts/execute_notebooks.py``), relative to the repository.
RUNTIMES = Path("book") / "_generated" / "runtimes.json"

try:
    from myst_nb import glue as _myst_glue
except ImportError:  # outside the book build (e.g. Colab): glued values are simply not rendered
    _myst_glue = None


def glue(name: str, value: Any, display: bool = False) -> None:
    """Make ``value`` available to the page's prose as ``{glue:text}`name``` / ``{glue:md}`name```.

    Glue plain ``int``/``float`` (not NumPy scalars, whose repr cannot be formatted) or
    :class:`IPython.display.Markdown` for text. Returns nothing, so a cell that ends with a glue call
    shows no stray value.
    """
    if _myst_glue is not None:
        _myst_glue(name, value, display=display)


def find_root(start: str | Path | None = None) -> Path | None:
    """The repository folder above ``start`` (default: the working directory): the first with
    ``pyproject.toml``; ``None`` when the chapter runs outside a checkout."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "xdtutor").is_dir():
            return folder
    return None


def runtime_text(record: dict | None) -> str:
    """The "Runtime" text of a chapter header for one ``runtimes.json`` record."""
    if not record:
        return "not measured yet"
    return f"{format_seconds(record['seconds'])} ({record['device']}, {record['date']})"


@dataclass
class BookRun:
    """The settings a chapter runs with (what :func:`setup` returns).

    Attributes:
        scale: ``"ci"`` or ``"full"``.
        seed: Seed of everything random.
        device: Where models run.
        data_dir: Data root (``None``: ``XDTUTOR_DATA_DIR``, then the verified download cache).
        root: The repository folder (``None`` outside a checkout).
        chapter: The chapter's file stem, e.g. ``"05_case_study"``.
    """

    scale: str
    seed: int
    device: torch.device
    data_dir: str | None
    root: Path | None
    chapter: str | None = None
    started: float = field(default_factory=time.perf_counter)

    @property
    def results(self) -> Path:
        """The committed full-scale results (``<repository>/results``)."""
        return self._in_repo("results")

    @property
    def configs(self) -> Path:
        return self._in_repo("configs")

    def _in_repo(self, name: str) -> Path:
        if self.root is None:
            raise FileNotFoundError(f"this chapter runs outside the xdtutor repository, so there is no {name}/ "
                                    "folder; clone the repository and open the chapter from it")
        return self.root / name

    def config(self, name: str, *sets: str | tuple[str, Any]) -> ExperimentConfig:
        """``configs/<name>.yaml`` at this chapter's scale, data folder and device (then ``sets``).

        Progress bars are switched off (``encoder.progress``, ``pretrain.progress``,
        ``train.progress``): a page shows the pipeline's one line per model instead. A relative
        ``checkpoint_dir`` from the YAML (``runs/checkpoints``) names the repository's folder, as it
        does for ``xdtutor run`` from the repository root — not a folder under ``notebooks/``, where
        the kernel runs; one given in ``sets`` is used as given.
        """
        base = [("scale", self.scale), ("data.data_dir", self.data_dir), ("device", str(self.device)),
                ("encoder.progress", False), ("pretrain.progress", False), ("train.progress", False)]
        path = self.configs / f"{name}.yaml"
        config = load_config(path, [*base, *sets])
        given = any(isinstance(s, tuple) and s[0] == "checkpoint_dir" or str(s).startswith("checkpoint_dir=")
                    for s in sets)
        if config.checkpoint_dir and not Path(config.checkpoint_dir).is_absolute() and not given:
            config = load_config(path, [*base, ("checkpoint_dir", str(self.root / config.checkpoint_dir)), *sets])
        return config

    def finish(self) -> None:
        """Glue the "About this run" values: scale, device, versions and elapsed time."""
        glue("run_scale", Markdown(f"`{self.scale}`"))
        glue("run_device", Markdown(f"`{self.device}`"))
        glue("run_version", Markdown(f"xdtutor `{__version__}`, torch `{torch.__version__}`"))
        glue("run_elapsed", Markdown(format_seconds(time.perf_counter() - self.started)))


def _print_log(name: str, stream) -> logging.Logger:
    """Print ``name``'s INFO records (message only) on ``stream``, once however often setup runs."""
    logger = logging.getLogger(name)
    if not any(getattr(h, "xdtutor_book", False) for h in logger.handlers):
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler.xdtutor_book = True
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return logger


def setup(scale: str = "ci", *, seed: int = 0, device: str = "auto", data_dir: str | None = None,
          chapter: str | None = None) -> BookRun:
    """Prepare a chapter's run (see the module docstring) and return its settings.

    Raises:
        ValueError: If ``scale`` is not ``"ci"`` or ``"full"``.
    """
    if scale not in SCALES:
        raise ValueError(f"SCALE must be 'ci' or 'full', got {scale!r}")
    hf_logging.disable_progress_bar()  # no "Loading weights" bars in the outputs
    shell = get_ipython()
    if shell is not None:
        shell.run_line_magic("matplotlib", "inline")
    # The pipeline's one line per model goes to stdout (the page shows it); at full scale, where a
    # training takes minutes, one line per epoch goes to stderr, which Jupyter shows while a notebook
    # runs and the website leaves out (book/_config.yml: stderr_output: remove). At CI scale a
    # training takes seconds: no epoch lines, so the committed notebooks are no walls of epochs either.
    _print_log("xdtutor", sys.stdout)
    epochs = _print_log("xdtutor.train", sys.stderr)
    epochs.propagate = False
    epochs.setLevel(logging.INFO if scale == "full" else logging.WARNING)
    seed_everything(seed)
    if scale == "ci":
        torch.set_num_threads(1)  # the same floats on every machine, and no oversubscription
    run = BookRun(scale, seed, select_device(device), data_dir, find_root(), chapter)
    records = {}
    if run.root is not None and chapter and (run.root / RUNTIMES).is_file():
        records = json.loads((run.root / RUNTIMES).read_text(encoding="utf-8")).get(chapter, {})
    for s in (*SCALES, "ci_cold"):  # ci_cold: CI scale with an empty cache (scripts/execute_notebooks.py)
        glue(f"runtime_{s}", Markdown(runtime_text(records.get(s))))
    return run
