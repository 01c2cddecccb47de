"""Where and with what a number was produced: the one provenance record.

Results files, checkpoints, benchmarks and the book's "About this run" boxes all describe their run
with :func:`provenance` — device (and its name), torch threads, library versions, the git commit of
the code and the date — so that none of them keeps its own, slightly different, copy.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

#: Distributions whose versions every record lists (missing ones are recorded as ``None``).
PACKAGES = ("xdtutor", "torch", "numpy", "transformers", "safetensors", "peft", "sentence-transformers")


def package_version(name: str) -> str | None:
    """Installed version of distribution ``name`` (``None`` when it is not installed)."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, str | None]:
    """Python and the versions of :data:`PACKAGES`."""
    return {"python": platform.python_version(), **{p: package_version(p) for p in PACKAGES}}


def device_name(device: torch.device | str) -> str:
    """The GPU's name on CUDA, else the processor (``"x86_64"`` where the OS gives no better name)."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def git_commit(root: str | Path | None = None) -> str | None:
    """The commit of the checkout the package runs from (``"…-dirty"`` with uncommitted changes).

    ``None`` outside a git checkout (an installed wheel) or without git. Without ``root``, the
    environment variable ``XDTUTOR_GIT_COMMIT`` wins where it is set: a copied working tree whose
    ``.git`` is not the code's (a lent GPU machine's copy carries the repository as it was when the
    session began) gets the commit its job's ``--prepare`` recorded here
    (``benchmarks/gpu_env.sh``).
    """
    if root is None and os.environ.get("XDTUTOR_GIT_COMMIT"):
        return os.environ["XDTUTOR_GIT_COMMIT"]
    root = Path(root) if root is not None else Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if dirty else commit or None


def provenance(device: torch.device | str = "cpu") -> dict[str, Any]:
    """The record stored beside every result.

    Returns:
        ``{"device", "device_name", "cpu_count", "torch_threads", "versions", "git_commit", "date"}``;
        ``date`` is local time with its zone, e.g. ``"2026-12-01 10:32:00 UTC"``.
    """
    return {
        "device": str(device),
        "device_name": device_name(device),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "versions": versions(),
        "git_commit": git_commit(),
        "date": _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
