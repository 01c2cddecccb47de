"""RecBole atomic files in and out: bring RecBole data here, take ours to RecBole.

RecBole (and UniSRec, which is built on it) reads *atomic files*: tab-separated text with a header
row whose fields are ``name:type`` (``token``, ``token_seq``, ``float``, ``float_seq``). One domain's
data is ``<name>.inter`` (one interaction per row: ``user_id:token``, ``item_id:token`` and usually
``timestamp:float``) and ``<name>.item`` (one item per row: ``item_id:token`` and its features, e.g.
``title:token_seq``).

* :func:`write_atomic` writes a :class:`~xdtutor.data.types.Domain` as ``.inter`` + ``.item``
  (``timestamp`` = the position in the user's sequence, ``text:token_seq`` = the text our encoder
  reads), so ``recbole.quick_start.run_recbole(dataset=name, config_dict={"data_path": …})`` runs
  on exactly our sequences.
* :func:`read_atomic` reads ``.inter`` (+ ``.item`` for the texts) into a ``Domain``: each user's
  interactions sorted by ``timestamp`` (file order for ties, or when there is none), items numbered in
  ``.item`` order; an item's text is its ``token_seq`` fields joined with ". ".
* A bring-your-own-data folder (:mod:`xdtutor.data.generic`) may hold atomic files instead of
  ``items.csv``/``interactions.csv``: one ``<domain>.inter`` + ``<domain>.item`` pair per domain, read
  by :func:`read_atomic_events`. Their timestamps must be comparable across domains (RecBole's are
  usually Unix times), because they decide what a cross-domain model may see.
"""

from __future__ import annotations

import os
from pathlib import Path
import numpy as np
import pandas as pd

from ..utils import atomic_write
from .errors import MalformedLineError, MissingTextError, NotADatasetError, UnknownItemError
from .types import Domain


def _header(path: Path, line: str) -> list[tuple[str, str]]:
    fields = []
    for raw in line.rstrip("\r\n").split("\t"):
        name, sep, kind = raw.partition(":")
        if not sep or not name or kind not in ("token", "token_seq", "float", "float_seq"):
            raise MalformedLineError(path, 1, raw, "a RecBole header field is name:type with type token, "
                                     "token_seq, float or float_seq")
        fields.append((name, kind))
    return fields


def _read(path: Path) -> tuple[list[tuple[str, str]], list[list[str]]]:
    if not path.is_file():
        raise NotADatasetError(path, None, None, "no such file")
    with open(path, encoding="utf-8-sig", newline="") as fh:
        first = fh.readline()
        if not first.strip():
            raise MalformedLineError(path, 1, None, "empty file (line 1 must be the header)")
        fields = _header(path, first)
        rows = []
        for n, line in enumerate(fh, start=2):
            if not line.strip():
                continue
            cells = line.rstrip("\r\n").split("\t")
            if len(cells) != len(fields):
                raise MalformedLineError(path, n, None, f"{len(cells)} fields, the header has {len(fields)}")
            rows.append(cells)
    return fields, rows


def read_atomic_events(folder: str | os.PathLike, name: str
                       ) -> tuple[pd.DataFrame, dict[str, list[tuple[float, int, int]]]]:
    """The catalogue of ``<name>.item`` and every user's ``(timestamp, line, item)`` of ``<name>.inter``.

    Raises:
        DataError: A missing file or column, a bad header, a row with the wrong number of fields, an
            item of ``.inter`` missing from ``.item``, an item without text (each names file and line).
    """
    folder = Path(folder)
    inter_path, item_path = folder / f"{name}.inter", folder / f"{name}.item"
    item_fields, item_rows = _read(item_path)
    names = [f for f, _ in item_fields]
    if "item_id" not in names:
        raise MalformedLineError(item_path, 1, "item_id", "no item_id field in the header")
    text_cols = [k for k, (_, kind) in enumerate(item_fields) if kind == "token_seq"]
    if not text_cols:
        raise MissingTextError(item_path, 1, None, "no token_seq field to read item texts from")
    id_col = names.index("item_id")
    index, raw_ids, texts = {}, [], []
    for n, row in enumerate(item_rows, start=2):
        text = ". ".join(row[k].strip() for k in text_cols if row[k].strip())
        if not text:
            raise MissingTextError(item_path, n, names[text_cols[0]], f"item {row[id_col]!r} has no text")
        if row[id_col] in index:
            raise MalformedLineError(item_path, n, "item_id", f"item {row[id_col]!r} listed twice")
        index[row[id_col]] = len(raw_ids)
        raw_ids.append(row[id_col])
        texts.append(text)

    inter_fields, inter_rows = _read(inter_path)
    names = [f for f, _ in inter_fields]
    for needed in ("user_id", "item_id"):
        if needed not in names:
            raise MalformedLineError(inter_path, 1, needed, f"no {needed} field in the header")
    u_col, i_col = names.index("user_id"), names.index("item_id")
    t_col = names.index("timestamp") if "timestamp" in names else None
    events: dict[str, list[tuple[float, int, int]]] = {}
    for n, row in enumerate(inter_rows, start=2):
        if row[i_col] not in index:
            raise UnknownItemError(inter_path, n, "item_id", f"item {row[i_col]!r} is not in {item_path.name}")
        try:
            when = float(row[t_col]) if t_col is not None else 0.0
        except ValueError:
            raise MalformedLineError(inter_path, n, "timestamp", f"not a number: {row[t_col]!r}") from None
        events.setdefault(row[u_col], []).append((when, n, index[row[i_col]]))
    items = pd.DataFrame({"item": np.arange(len(raw_ids), dtype=np.int64), "raw_id": raw_ids, "text": texts})
    return items, events


def read_atomic(folder: str | os.PathLike, name: str, domain: str | None = None) -> Domain:
    """One domain from ``<folder>/<name>.inter`` and ``<folder>/<name>.item``: each user's interactions
    sorted by ``timestamp`` (file order for ties, or when there is none), items numbered in ``.item``
    order, an item's text its ``token_seq`` fields joined with ". ".

    Args:
        folder: Where the atomic files are.
        name: Their common file name (RecBole's dataset name).
        domain: Name of the returned domain (default ``name``).

    Raises:
        DataError: As :func:`read_atomic_events`.
    """
    items, events = read_atomic_events(folder, name)
    sequences = {u: np.array([i for _, _, i in sorted(ev)], dtype=np.int64) for u, ev in events.items()}
    return Domain(domain or name, items, sequences)


def atomic_names(folder: str | os.PathLike) -> list[str]:
    """Names with both a ``.inter`` and a ``.item`` file in ``folder``, sorted."""
    folder = Path(folder)
    return sorted(p.stem for p in folder.glob("*.inter") if (folder / f"{p.stem}.item").is_file())


def write_atomic(domain: Domain, folder: str | os.PathLike, name: str | None = None) -> tuple[Path, Path]:
    """Write ``domain`` as ``<name>.inter`` and ``<name>.item`` in ``folder``; returns the two paths.

    ``timestamp`` is each interaction's position in its user's sequence (0, 1, …), so RecBole's
    chronological ordering reproduces our sequences; tabs and newlines in texts become spaces.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    name = name or domain.name
    inter_path, item_path = folder / f"{name}.inter", folder / f"{name}.item"
    raw = domain.items["raw_id"].astype(str).tolist()
    with atomic_write(item_path, "w") as fh:
        fh.write("item_id:token\ttext:token_seq\n")
        for item_id, text in zip(raw, domain.items["text"].astype(str)):
            fh.write(f"{item_id}\t{' '.join(text.split())}\n")
    with atomic_write(inter_path, "w") as fh:
        fh.write("user_id:token\titem_id:token\ttimestamp:float\n")
        for user, seq in domain.sequences.items():
            for position, item in enumerate(seq):
                fh.write(f"{user}\t{raw[int(item)]}\t{position}\n")
    return inter_path, item_path


__all__ = ["atomic_names", "read_atomic", "read_atomic_events", "write_atomic"]
