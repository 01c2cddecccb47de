"""Small utilities used by several stages: seeding, devices, atomic writes, JSON files, padding."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import re
import tempfile
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch


def format_seconds(seconds: float) -> str:
    """``"42 s"`` below 90 seconds, ``"3.5 min"`` below an hour, else ``"6.9 h"``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 3600 else f"{seconds / 3600:.1f} h"


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) so a run is repeatable on CPU."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


_DEVICE_NAME = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def is_device_name(name: object) -> bool:
    """Whether ``name`` is a device a config may name: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``."""
    return isinstance(name, str) and bool(_DEVICE_NAME.match(name))


def select_device(device: str | torch.device | None = None) -> torch.device:
    """Pick the compute device: an explicit choice wins, else CUDA > MPS > CPU.

    ``XDTUTOR_DEVICE`` (e.g. ``cpu``) overrides the automatic choice, so a notebook can be forced
    onto the CPU without editing it.

    Raises:
        ValueError: For a CUDA or MPS device on a machine that has none (before anything runs on it).
    """
    if device is None or device == "auto":
        device = os.environ.get("XDTUTOR_DEVICE") or None
    if device is not None and device != "auto":
        chosen = torch.device(device)
        if chosen.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r} asked for, but this machine has no CUDA GPU "
                             "(use device=auto or cpu)")
        if chosen.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ValueError(f"device {str(device)!r} asked for, but MPS is not available here")
        return chosen
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator:
    """Open a temporary file next to ``path`` and rename it over ``path`` only on success.

    A crash or exception leaves ``path`` untouched (either the old content or absent), never a
    half-written file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a written file follows the umask like open() does
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    """The process's umask (read by setting and restoring it: there is no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def pad_left(sequences: Sequence[Sequence[int]], max_len: int) -> torch.Tensor:
    """Left-pad item sequences into a ``(B, max_len)`` LongTensor for the models.

    Item ids in the data layer are 0-based; models reserve 0 for padding, so ids are shifted by +1
    here. The most recent ``max_len`` items are kept and the latest item sits in the last column.

    Args:
        sequences: B sequences of 0-based item ids (chronological).
        max_len: Number of columns L.

    Returns:
        LongTensor of shape (B, L): 0 = padding, ``item + 1`` otherwise.
    """
    out = torch.zeros((len(sequences), max_len), dtype=torch.long)
    for row, seq in enumerate(sequences):
        seq = list(seq)[-max_len:]
        if seq:
            out[row, max_len - len(seq):] = torch.as_tensor(seq, dtype=torch.long) + 1
    return out


def jsonable(x: Any) -> Any:
    """``x`` with NumPy scalars/arrays as Python values and non-finite floats as ``None`` (JSON null)."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, (np.floating, float)):
        return None if not np.isfinite(x) else float(x)
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    return x


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically (see :func:`jsonable`)."""
    with atomic_write(path, "w") as fh:
        json.dump(jsonable(data), fh, indent=1)
