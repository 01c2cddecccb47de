"""Where data and caches live.

Data resolution order (see :func:`resolve_data_dir`): an explicit ``data_dir`` argument, then the
``XDTUTOR_DATA_DIR`` environment variable, then the cache folder (``XDTUTOR_CACHE_DIR`` or
``~/.cache/xdtutor``) where :mod:`xdtutor.data.download` puts verified downloads.
Nothing under a data dir is ever written; derived files (embeddings, checkpoints) go to the cache.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(sub: str = "") -> Path:
    """The writable cache folder (``XDTUTOR_CACHE_DIR`` or ``~/.cache/xdtutor``), created on demand."""
    root = Path(os.environ.get("XDTUTOR_CACHE_DIR") or Path.home() / ".cache" / "xdtutor")
    path = root / sub if sub else root
    path.mkdir(parents=True, exist_ok=True)
    return path


def env_data_dir() -> Path | None:
    """``XDTUTOR_DATA_DIR`` as a path, or ``None`` when unset."""
    value = os.environ.get("XDTUTOR_DATA_DIR")
    return Path(value).expanduser() if value else None
