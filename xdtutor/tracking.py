"""Which training is running, and where its per-epoch numbers go (logs, TensorBoard).

:func:`xdtutor.train.fit` calls :func:`log_epoch` after every epoch. What happens then depends on the
context the caller set up:

* :func:`run` names the training (the pipeline uses its run-folder key, e.g. ``seed0/lora``), so log
  lines and tracker curves say which model they belong to;
* :func:`tracker` (``tracking: tensorboard`` in an experiment config) writes every named training's
  loss, validation metrics and epoch time as TensorBoard scalars under ``<run folder>/tensorboard/<name>``
  (``tensorboard --logdir runs/k2f/tensorboard``).

Outside these contexts :func:`log_epoch` only logs. The contexts live in :mod:`contextvars`, so
nested or concurrent runs do not mix.
"""

from __future__ import annotations

import contextlib
import logging
from contextvars import ContextVar
from pathlib import Path
from typing import Iterator, Mapping

from . import distributed
from .config import ConfigError

#: Tracking back-ends an experiment can ask for (``tracking:`` in a config).
BACKENDS = ("none", "tensorboard")

LOG = logging.getLogger("xdtutor.train")
_NAME: ContextVar[str | None] = ContextVar("xdtutor_run_name", default=None)
_LOG_DIR: ContextVar[Path | None] = ContextVar("xdtutor_tracking_dir", default=None)
_WRITERS: ContextVar[dict | None] = ContextVar("xdtutor_tracking_writers", default=None)


class TrackingError(ConfigError):
    """The tracking back-end cannot be used (unknown, not installed, or no folder to write into)."""


def summary_writer(log_dir: Path):
    """A TensorBoard ``SummaryWriter`` writing into ``log_dir``.

    Raises:
        TrackingError: The ``tensorboard`` package is missing (``pip install "xdtutor[track]"``).
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:  # torch imports the tensorboard package lazily, here
        raise TrackingError('tracking: tensorboard needs the tensorboard package: pip install "xdtutor[track]"') from exc
    return SummaryWriter(log_dir=str(log_dir))


@contextlib.contextmanager
def tracker(backend: str, log_dir: str | Path | None) -> Iterator[None]:
    """Send every named training's epochs to ``backend`` while the context is open.

    Args:
        backend: One of :data:`BACKENDS`; ``"none"`` does nothing.
        log_dir: Folder of the event files (one sub-folder per training name).

    Raises:
        TrackingError: Unknown back-end, no folder, or tensorboard not installed (checked on entry,
            before anything trains).
    """
    if backend == "none":
        yield
        return
    if backend not in BACKENDS:
        raise TrackingError(f"tracking: unknown back-end {backend!r}; choose from {BACKENDS}")
    if log_dir is None:
        raise TrackingError(f"tracking: {backend} writes into the run folder; give the run an output folder "
                            "(xdtutor run ... --out DIR)")
    if not distributed.is_main():  # under torchrun rank 0 alone logs (xdtutor.train.fit)
        yield
        return
    summary_writer(Path(log_dir)).close()  # fail now, not after the first training
    dir_token, writers_token = _LOG_DIR.set(Path(log_dir)), _WRITERS.set({})
    try:
        yield
    finally:
        for writer in (_WRITERS.get() or {}).values():
            writer.close()
        _LOG_DIR.reset(dir_token)
        _WRITERS.reset(writers_token)


@contextlib.contextmanager
def run(name: str) -> Iterator[None]:
    """Name the trainings inside the context (log lines and tracker curves carry ``name``)."""
    token = _NAME.set(name)
    try:
        yield
    finally:
        _NAME.reset(token)


def current_name() -> str | None:
    """The name set by the innermost :func:`run`, or ``None``."""
    return _NAME.get()


def _writer(name: str):
    writers, log_dir = _WRITERS.get(), _LOG_DIR.get()
    if writers is None or log_dir is None:
        return None
    if name not in writers:
        writers[name] = summary_writer(log_dir / name)
    return writers[name]


def log_epoch(model: str, epoch: int, epochs: int, loss: float, metrics: Mapping[str, float], monitor: str,
              best: float, best_epoch: int, seconds: float, *, summary: bool) -> None:
    """Report one finished epoch: a log line, and scalars for the active tracker.

    Args:
        model: The model class (used when no :func:`run` names the training).
        epoch / epochs: 1-based epoch and the configured maximum.
        loss: Mean training objective of the epoch.
        metrics: Validation metrics of the epoch (``{"ndcg@10": ...}``).
        monitor: The metric early stopping follows.
        best / best_epoch: Best value of ``monitor`` so far and its epoch.
        seconds: Wall time of the epoch.
        summary: Log the line at INFO (one summary line per epoch, e.g. in notebooks, where no
            progress bar is drawn); otherwise at DEBUG with the epoch time (``xdtutor --debug``).
    """
    name = current_name() or model
    line = (f"  {name} epoch {epoch}/{epochs}: loss {loss:.4f}, valid {monitor} {metrics[monitor]:.4f} "
            f"(best {best:.4f} at epoch {best_epoch})")
    if summary:  # no time in the line: notebook outputs are compared across runs
        LOG.info(line)
    else:
        LOG.debug("%s, %.1f s", line, seconds)
    writer = _writer(name)
    if writer is not None:
        writer.add_scalar("train/loss", loss, epoch)
        for key, value in metrics.items():
            writer.add_scalar(f"valid/{key}", value, epoch)
        writer.add_scalar("time/epoch_seconds", seconds, epoch)
        writer.flush()  # a run cut off still shows the epochs it finished


__all__ = ["BACKENDS", "TrackingError", "tracker", "run", "current_name", "log_epoch", "summary_writer"]
