"""A run's output folder: checked before anything trains, filled as models finish, resumed after a stop.

``xdtutor run CONFIG --out DIR`` owns ``DIR``. :class:`RunFolder` checks it before the first step
(writable; not a finished run unless ``overwrite``; not a run of another config), and then keeps
what the run finished as it goes:

* ``progress/config.json`` — the config of the run in progress;
* ``progress/<key>.json`` + ``progress/<key>.csv`` — one finished model (its row, history and
  per-user metrics), written atomically when the model is evaluated, e.g. ``seed0/lora``;
* ``tensorboard/<key>/`` — with ``tracking: tensorboard``, each training's per-epoch scalars;
* ``models/<key>/`` — each model's training checkpoints (``last.*``, ``best.*``: safetensors +
  JSON, :mod:`xdtutor.checkpoints`), so an interrupted training continues where it stopped and a
  finished one can be loaded with :func:`xdtutor.checkpoints.load_checkpoint`.

Running the same command again skips what is finished and resumes the training that was cut off;
a damaged file in ``progress/`` is reported and that model rebuilt.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from .config import ConfigError, differing_keys
from .experiment import NOT_RESULTS, with_current_defaults
from .utils import atomic_write, write_json

#: What a run writes into its folder (removed by ``overwrite``; anything else there is left alone).
OWNED = ("results.json", "per_user.csv", "report.md", "metrics.png", "training_curves.png", "cold_start.png",
         "similarity.png", "progress", "models", "tensorboard")


class RunFolder:
    """The output folder of one run (see the module docstring).

    Args:
        path: The folder (created if missing).
        config: The run's config as plain data (``ExperimentConfig.to_dict()``).
        overwrite: Replace a finished run, or a run of another config, instead of refusing.
        writer: ``False`` for the other processes of a ``torchrun`` job: they read the folder
            (finished models, checkpoints) and write nothing; rank 0 checks and prepares it.

    Raises:
        ConfigError: If the folder cannot be written, holds a finished run (without ``overwrite``), or
            holds an unfinished run of a different config (the differing keys are named).
    """

    def __init__(self, path: str | Path, config: dict, *, overwrite: bool = False, writer: bool = True) -> None:
        self.path = Path(path)
        self.writer = writer
        if not writer:  # another process of a torchrun job checked and prepared the folder (rank 0)
            return
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            with atomic_write(self.path / ".write-test", "w") as fh:
                fh.write("ok")
            (self.path / ".write-test").unlink()
        except OSError as exc:
            raise ConfigError(f"--out {self.path}: cannot write there ({exc.strerror or exc})") from None
        started = self.progress / "config.json"
        if (self.path / "results.json").exists() and not overwrite:
            raise ConfigError(f"--out {self.path} holds a finished run (results.json); pass --overwrite to "
                              "replace it, or choose another folder")
        if started.exists() and not overwrite:
            previous = _with_defaults(json.loads(started.read_text(encoding="utf-8")))
            diff = [k for k in differing_keys(previous, config) if k not in NOT_RESULTS]
            if diff:
                raise ConfigError(f"--out {self.path} holds an unfinished run of another config (differs in "
                                  f"{diff}); pass --overwrite to start again, or choose another folder")
        if overwrite:
            self.clear()
        write_json(started, config)

    @property
    def progress(self) -> Path:
        return self.path / "progress"

    def clear(self) -> None:
        """Remove what a run owns in the folder (:data:`OWNED`), nothing else."""
        for name in OWNED:
            target = self.path / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()

    def model_dir(self, key: str) -> Path:
        """Where the training of ``key`` (e.g. ``"seed0/lora"``) keeps its checkpoints."""
        return self.path / "models" / key

    def done(self, key: str) -> tuple[dict, pd.DataFrame] | None:
        """``(payload, per_user)`` of a finished ``key``, or ``None`` (also for a damaged entry, with a warning)."""
        meta, frame = self.progress / f"{key}.json", self.progress / f"{key}.csv"
        if not meta.exists():
            return None
        try:
            payload = json.loads(meta.read_text(encoding="utf-8"))
            per_user = pd.read_csv(frame, dtype={"user": str}) if frame.exists() else pd.DataFrame()
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            warnings.warn(f"{meta}: damaged progress entry ({exc}); {key} is rebuilt", stacklevel=2)
            if self.writer:
                meta.unlink(missing_ok=True)
            return None
        return payload, per_user

    def save(self, key: str, payload: dict[str, Any], per_user: pd.DataFrame) -> None:
        """Record ``key`` as finished: the per-user rows first, then the entry that marks it done
        (only by the writing process)."""
        if not self.writer:
            return
        frame = self.progress / f"{key}.csv"
        frame.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(frame, "w") as fh:
            per_user.to_csv(fh, index=False)
        write_json(self.progress / f"{key}.json", payload)


def _with_defaults(config: dict) -> dict:
    """A stored config with the settings added since it was written at their defaults; as stored if it
    no longer parses (:func:`with_current_defaults`)."""
    current = with_current_defaults(config)
    return config if current is None else current.to_dict()
