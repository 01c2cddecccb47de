"""Execute the book's chapters with papermill at a given scale and record their runtimes.

Usage (from the repository root)::

    python scripts/execute_notebooks.py --scale ci            # refresh the committed outputs in place
    python scripts/execute_notebooks.py --scale full          # full scale -> runs/notebooks_full/
    python scripts/execute_notebooks.py --scale ci book/chapters/01_background.md   # one chapter

A chapter's one hand-edited source is its MyST Markdown notebook ``book/chapters/NN_name.md``; its
executed copy is ``notebooks/NN_name.ipynb``, paired by jupytext. Each run first updates the
notebook from the Markdown (``jupytext --to ipynb --update``: the notebook takes the Markdown's cells
and keeps the outputs of unchanged ones — always in that direction, whatever the file times), then
executes the notebook.

* ``--scale ci`` (default) executes each notebook with ``XDTUTOR_SCALE=ci`` in the
  kernel's environment and no injected parameters cell, then strips papermill's per-cell timing
  metadata, and replaces the committed notebook only if every cell succeeded (a failing run is kept
  in ``runs/failed/``), so the committed notebooks change only where outputs changed.
  These committed outputs are what nbval compares against in CI and what the CI book build renders.
* ``--scale full`` injects ``SCALE = "full"`` through papermill and writes the executed copies to
  ``--out`` (default ``runs/notebooks_full``, git-ignored), measuring the full-scale runtimes; the
  full-scale *site* is built by ``make book SCALE=full``, which executes every chapter during the build
  (docs/publishing.md).
* ``--scale ci --cold-cache`` runs each chapter with an empty xdtutor cache of its own (a fresh
  ``XDTUTOR_CACHE_DIR``: item embeddings computed, data files verified again; the language model's
  weights are the Hugging Face cache's) and writes the executed copies to ``--out`` (default
  ``runs/notebooks_cold``): what a first run on a new machine costs, recorded as ``ci_cold``.
* Every run updates ``book/_generated/runtimes.json`` (seconds, device, date per chapter and scale),
  which the chapters show under "Runtime", and ``book/_generated/runtimes.md``, the table in the preface.

Notebooks run one after another (never in parallel) with the notebook folder as working directory.
"""

from __future__ import annotations

import argparse
import shutil
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

import nbformat
import papermill as pm
from jupytext.cli import jupytext as jupytext_cli

from xdtutor.book import RUNTIMES as RUNTIMES_RELATIVE
from xdtutor.book import runtime_text
from xdtutor.provenance import device_name
from xdtutor.utils import select_device

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ROOT / "book" / "chapters"
NOTEBOOKS = ROOT / "notebooks"
RUNTIMES = ROOT / RUNTIMES_RELATIVE
RUNTIMES_MD = RUNTIMES.with_suffix(".md")


def chapter_sources() -> list[Path]:
    """The chapters in book order (``book/chapters/NN_name.md``)."""
    return sorted(CHAPTERS.glob("[0-9][0-9]_*.md"))


def paired_notebook(source: Path) -> Path:
    """``book/chapters/NN_name.md`` -> ``notebooks/NN_name.ipynb`` (its executed copy)."""
    return NOTEBOOKS / f"{source.stem}.ipynb"


def device_description(device: str | None) -> str:
    """A short description of where the notebooks ran (GPU name, or CPU with its core count)."""
    chosen = select_device(device)
    name = device_name(chosen)
    return name if chosen.type == "cuda" else f"CPU {name} ({os.cpu_count()} cores)"


def strip_papermill_metadata(path: Path) -> None:
    """Remove papermill's run metadata (timestamps, durations) so committed notebooks stay stable."""
    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if cell.metadata.get("tags") == []:  # papermill's empty tags would make `jupytext --update`
            cell.metadata.pop("tags")        # drop a tag added to the .md later
    nbformat.write(nb, path)


def patch_runtime_glue(path: Path, records: dict) -> None:
    """Update the glued header runtimes of an executed notebook to the values just measured.

    The setup cell reads ``runtimes.json`` *before* this run's time is known; without this patch the
    committed page would show the previous run's runtime.
    """
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            name = out.get("metadata", {}).get("scrapbook", {}).get("name", "")
            if name in ("runtime_ci", "runtime_ci_cold", "runtime_full"):
                for key in out.get("data", {}):
                    if key.endswith("text/markdown"):
                        out["data"][key] = runtime_text(records.get(name.removeprefix("runtime_")))
    nbformat.write(nb, path)


def write_runtime_table(runtimes: dict) -> None:
    """The preface's per-chapter runtime table, generated from ``runtimes.json``."""
    lines = ["| chapter | CI scale | CI scale, empty cache | full scale |", "|---|---|---|---|"]
    for stem in sorted(set(runtimes) | {p.stem for p in chapter_sources()}):
        cells = [runtime_text(runtimes.get(stem, {}).get(key)) for key in ("ci", "ci_cold", "full")]
        lines.append(f"| {stem} | " + " | ".join(cells) + " |")
    RUNTIMES_MD.parent.mkdir(parents=True, exist_ok=True)
    RUNTIMES_MD.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chapters", nargs="*", type=Path, help="book/chapters/NN_name.md (default: every chapter)")
    parser.add_argument("--scale", choices=("ci", "full"), default="ci")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: in place for ci, runs/notebooks_full for full)")
    parser.add_argument("--timeout", type=int, default=None,
                        help="seconds per cell; 0 means none (default: 3600 at CI scale, none at full "
                             "scale, where one cell trains several models for over an hour)")
    parser.add_argument("--no-record", action="store_true", help="do not update runtimes.json")
    parser.add_argument("--cold-cache", action="store_true",
                        help="each chapter with an empty xdtutor cache (CI scale; copies to --out)")
    args = parser.parse_args(argv)
    if args.cold_cache and args.scale != "ci":
        parser.error("--cold-cache measures the CI scale")
    record_as = "ci_cold" if args.cold_cache else args.scale
    timeout = args.timeout if args.timeout is not None else 3600 if args.scale == "ci" else None

    sources = [p.resolve() for p in args.chapters] or chapter_sources()
    for source in sources:  # the notebook takes the Markdown's cells (outputs of unchanged cells kept)
        if source.suffix != ".md":
            parser.error(f"{source}: give the chapter's source, book/chapters/NN_name.md")
        if jupytext_cli(["--to", "ipynb", "--update", "--quiet", str(source), "-o", str(paired_notebook(source))]):
            return 1
    notebooks = [paired_notebook(source) for source in sources]
    out_dir = args.out or (ROOT / "runs" / "notebooks_cold" if args.cold_cache
                           else None if args.scale == "ci" else ROOT / "runs" / "notebooks_full")
    os.environ["XDTUTOR_SCALE"] = args.scale
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    runtimes = json.loads(RUNTIMES.read_text()) if RUNTIMES.exists() else {}
    device = device_description(os.environ.get("XDTUTOR_DEVICE"))
    failed = []
    for nb_path in notebooks:
        final = nb_path if out_dir is None else Path(out_dir) / nb_path.name
        # papermill writes partial results (and error banners) while it runs: execute into runs/ and
        # only replace the committed notebook when the whole notebook succeeded.
        work = ROOT / "runs" / "executing" / nb_path.name
        work.parent.mkdir(parents=True, exist_ok=True)
        final.parent.mkdir(parents=True, exist_ok=True)
        params = {} if args.scale == "ci" else {"SCALE": args.scale}
        print(f"[{record_as}] {nb_path.name} ...", flush=True)
        cold = ROOT / "runs" / "cold_cache" / nb_path.stem
        if args.cold_cache:  # a fresh cache for this chapter only
            shutil.rmtree(cold, ignore_errors=True)
            os.environ["XDTUTOR_CACHE_DIR"] = str(cold)
        start = time.perf_counter()
        try:
            pm.execute_notebook(str(nb_path), str(work), parameters=params, cwd=str(nb_path.parent),
                                kernel_name="python3", progress_bar=False, execution_timeout=timeout)
            seconds = time.perf_counter() - start  # the cache's clean-up below is not the chapter's
        except Exception as exc:  # report every failing chapter, then exit non-zero
            failed_copy = ROOT / "runs" / "failed" / nb_path.name
            failed_copy.parent.mkdir(parents=True, exist_ok=True)
            if work.exists():
                os.replace(work, failed_copy)
            print(f"FAILED {nb_path.name} (executed copy: {failed_copy.relative_to(ROOT)}; "
                  f"{nb_path.name} left unchanged): {type(exc).__name__}: {str(exc)[:2000]}", file=sys.stderr)
            failed.append(nb_path.name)
            continue
        finally:
            if args.cold_cache:
                shutil.rmtree(cold, ignore_errors=True)
        if out_dir is None:
            strip_papermill_metadata(work)
        os.replace(work, final)
        print(f"    {seconds:.0f} s -> {final.relative_to(ROOT) if final.is_relative_to(ROOT) else final}")
        if not args.no_record:  # re-read first: another run may have recorded other chapters meanwhile
            runtimes = json.loads(RUNTIMES.read_text()) if RUNTIMES.exists() else {}
            runtimes.setdefault(nb_path.stem, {})[record_as] = {
                "seconds": round(seconds, 1), "device": device, "date": dt.date.today().isoformat()}
            RUNTIMES.write_text(json.dumps(runtimes, indent=1, sort_keys=True) + "\n", encoding="utf-8")
            write_runtime_table(runtimes)
            if out_dir is None:
                patch_runtime_glue(final, runtimes[nb_path.stem])
            elif args.cold_cache or args.scale == "full":  # the committed notebook's header shows it too
                patch_runtime_glue(nb_path, runtimes[nb_path.stem])
    if failed:
        print(f"{len(failed)} notebook(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
