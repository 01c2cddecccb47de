"""Load pickles that hold only plain data, refusing every global.

``pickle.load`` can call any importable function, so loading a pickle from the internet can run
code. The origin of ``food_kitchen`` ships its item maps and titles as pickles of plain ``dict``s;
:func:`safe_load` reads those while refusing any GLOBAL/STACK_GLOBAL/INST/persistent id, which is
what every code-running pickle needs.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

from .errors import UnsafePickleError


class SafeUnpickler(pickle.Unpickler):
    """An unpickler for plain data (dict/list/tuple/str/bytes/int/float/bool/None) only."""

    def __init__(self, file, *, name: str | os.PathLike | None = None) -> None:
        super().__init__(file)
        self._name = name

    def find_class(self, module: str, name: str) -> Any:  # noqa: D401 - pickle hook
        raise UnsafePickleError(self._name, None, "global",
                                f"pickle refers to the global {module}.{name}; refused "
                                "(only plain data may be unpickled)")

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(self._name, None, "persistent_id",
                                "pickle uses a persistent id; refused (only plain data may be unpickled)")


def safe_loads(data: bytes, *, name: str | os.PathLike | None = None) -> Any:
    """Unpickle ``data`` refusing every global. ``name`` is used in error messages."""
    try:
        return SafeUnpickler(io.BytesIO(data), name=name).load()
    except UnsafePickleError:
        raise
    except Exception as exc:  # truncated or not a pickle at all
        raise UnsafePickleError(name, None, None, f"not a readable pickle: {exc}") from exc


def safe_load(path: str | os.PathLike) -> Any:
    """Unpickle the file at ``path`` refusing every global.

    Raises:
        UnsafePickleError: If the pickle refers to any global or cannot be read.
    """
    path = Path(path)
    return safe_loads(path.read_bytes(), name=path)
