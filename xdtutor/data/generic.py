"""Bring your own data: a folder with ``items.csv`` and ``interactions.csv`` (or RecBole atomic files,
:mod:`xdtutor.data.recbole`) -> CrossDomainDataset.

Format (UTF-8 CSV with a header row; extra columns are ignored):

``items.csv``
    ``item_id`` (string, unique within its domain), ``domain`` (e.g. ``books``), ``text`` (the
    non-empty string the language model reads, e.g. "title. category. brand").

``interactions.csv``
    ``user_id`` (string; the same person has the same id in every domain), ``item_id`` (must be in
    ``items.csv`` for that ``domain``), ``domain``, and ``timestamp`` *or* ``order`` (a number;
    a user's interactions are sorted by it, ties keep file order; timestamps of different domains
    must be comparable, because they decide what a cross-domain model may see).

Example::

    items.csv                          interactions.csv
    item_id,domain,text                user_id,item_id,domain,timestamp
    b1,books,The Hobbit. Fantasy       u1,b1,books,1600000000
    m7,movies,Alien (1979). Sci-Fi     u1,m7,movies,1600000100

Protocol: the target domain is split chronologically leave-one-out (last = test, second-last =
valid) for users with >= ``min_len`` target interactions, fewer = train only; every other domain
(or ``source``) is a source Domain. For users in the target and the first source,
``source_positions`` records how many target interactions precede each source interaction (a
source interaction with the same timestamp as a target one counts as *after* it, so nothing at the
prediction time leaks). Items are numbered ``0..n-1`` per domain in ``items.csv`` order.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..protocol import Protocol
from .errors import (DataError, EmptyDomainError, MalformedLineError, MissingTextError,
                     NotADatasetError, UnknownItemError)
from .loaders import read_text
from .preprocess import leave_one_out, sample_users
from .recbole import atomic_names, read_atomic_events
from .types import CrossDomainDataset, Domain

ITEM_COLUMNS = ("item_id", "domain", "text")
INTER_COLUMNS = ("user_id", "item_id", "domain")


def _rows(path: Path, required: Sequence[str]):
    """(line, row dict) of a CSV file, checking the header.

    A field may be as long as the file (the csv module's default limit of 128 KB does not apply), but
    not span lines: a quote that is never closed would otherwise swallow every row after it.
    """
    text = read_text(path)
    limit = csv.field_size_limit()
    csv.field_size_limit(max(limit, len(text) + 1))
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        try:
            header = reader.fieldnames or []
        except csv.Error as exc:
            raise MalformedLineError(path, 1, "header", f"not a CSV header ({exc})") from None
        for col in required:
            if col not in header:
                raise MalformedLineError(path, 1, col, f"missing column {col!r}; header is {header}")
        start = reader.line_num + 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise MalformedLineError(path, start, "line", f"not valid CSV ({exc})") from None
            if None in row or any(v is None for v in row.values()):
                raise MalformedLineError(path, reader.line_num, "line",
                                         f"expected {len(header)} comma-separated fields")
            if reader.line_num != start:
                raise MalformedLineError(path, start, "line",
                                         f"a quoted field runs from line {start} to line {reader.line_num}: "
                                         "an unclosed quote? (fields may not contain line breaks)")
            yield reader.line_num, row
            start = reader.line_num + 1
    finally:
        csv.field_size_limit(limit)


def read_generic(path: str | os.PathLike) -> tuple[dict[str, Domain], dict[str, list[tuple[float, int, str, int]]]]:
    """Parse a generic folder.

    Returns:
        ``(domains, events)``: domain name -> Domain (chronological sequences) and user ->
        chronologically sorted ``(key, file_line, domain, item)`` events across domains.
    """
    folder = Path(path)
    items_path, inter_path = folder / "items.csv", folder / "interactions.csv"
    if folder.is_dir() and not items_path.exists() and atomic_names(folder):
        return _read_atomic_folder(folder)
    if not folder.is_dir() or not items_path.is_file() or not inter_path.is_file():
        missing = [p.name for p in (items_path, inter_path) if not p.is_file()]
        raise NotADatasetError(folder, None, None,
                               f"not a generic dataset folder: missing {', '.join(missing) or 'folder'} "
                               "(expected items.csv and interactions.csv, or RecBole atomic files "
                               "NAME.inter + NAME.item per domain)")
    catalogue: dict[str, dict[str, int]] = {}
    tables: dict[str, tuple[list[str], list[str]]] = {}
    for line, row in _rows(items_path, ITEM_COLUMNS):
        dom, iid, text = row["domain"].strip(), row["item_id"].strip(), row["text"].strip()
        if not dom:
            raise MalformedLineError(items_path, line, "domain", "empty domain")
        if not iid:
            raise MalformedLineError(items_path, line, "item_id", "empty item id")
        if not text:
            raise MissingTextError(items_path, line, "text", f"item {iid!r} ({dom}) has no text")
        ids = catalogue.setdefault(dom, {})
        if iid in ids:
            raise MalformedLineError(items_path, line, "item_id", f"item {iid!r} listed twice in {dom}")
        ids[iid] = len(ids)
        raw, texts = tables.setdefault(dom, ([], []))
        raw.append(iid)
        texts.append(text)
    if not catalogue:
        raise EmptyDomainError(items_path, None, None, "no items")

    head = read_text(inter_path).split("\n", 1)[0]  # header sniffing for timestamp/order (BOM dropped)
    cols = next(csv.reader([head]), [])
    key_col = "timestamp" if "timestamp" in cols else "order" if "order" in cols else None
    if key_col is None:
        raise MalformedLineError(inter_path, 1, "timestamp", "need a 'timestamp' or an 'order' column")
    events: dict[str, list[tuple[float, int, str, int]]] = {}
    for line, row in _rows(inter_path, INTER_COLUMNS + (key_col,)):
        user, iid, dom = row["user_id"].strip(), row["item_id"].strip(), row["domain"].strip()
        if not user:
            raise MalformedLineError(inter_path, line, "user_id", "empty user id")
        if dom not in catalogue:
            raise UnknownItemError(inter_path, line, "domain",
                                   f"domain {dom!r} has no items in items.csv (domains: {sorted(catalogue)})")
        item = catalogue[dom].get(iid)
        if item is None:
            raise UnknownItemError(inter_path, line, "item_id", f"item {iid!r} is not in items.csv for {dom}")
        try:
            key = float(row[key_col])
        except ValueError:
            raise MalformedLineError(inter_path, line, key_col, f"not a number: {row[key_col]!r}") from None
        if math.isnan(key):
            raise MalformedLineError(inter_path, line, key_col, "NaN")
        events.setdefault(user, []).append((key, line, dom, item))
    domains: dict[str, Domain] = {}
    seqs: dict[str, dict[str, list[int]]] = {d: {} for d in catalogue}
    for user, ev in events.items():
        ev.sort()
        for _, _, dom, item in ev:
            seqs[dom].setdefault(user, []).append(item)
    for dom, (raw, texts) in tables.items():
        if not seqs[dom]:
            raise EmptyDomainError(inter_path, None, "domain", f"domain {dom!r} has no interactions")
        items = pd.DataFrame({"item": np.arange(len(raw), dtype=np.int64), "raw_id": raw, "text": texts})
        domains[dom] = Domain(dom, items, {u: np.asarray(s, dtype=np.int64) for u, s in seqs[dom].items()})
    return domains, events


def _read_atomic_folder(folder: Path) -> tuple[dict[str, Domain], dict[str, list[tuple[float, int, str, int]]]]:
    """:func:`read_generic` for a folder of RecBole atomic files, one ``.inter``/``.item`` pair per domain."""
    domains: dict[str, Domain] = {}
    events: dict[str, list[tuple[float, int, str, int]]] = {}
    for name in atomic_names(folder):
        items, by_user = read_atomic_events(folder, name)
        if not by_user:
            raise EmptyDomainError(folder / f"{name}.inter", None, None, f"domain {name!r} has no interactions")
        for user, ev in by_user.items():
            events.setdefault(user, []).extend((when, line, name, item) for when, line, item in ev)
        domains[name] = Domain(name, items, {u: np.array([i for _, _, i in sorted(ev)], dtype=np.int64)
                                             for u, ev in by_user.items()})
    for ev in events.values():
        ev.sort()
    return domains, events


def load_generic(path: str | os.PathLike, *, target: str | None = None,
                 source: str | Sequence[str] | None = None, subsample: float = 1.0, seed: int = 0,
                 min_len: int = 3) -> CrossDomainDataset:
    """Load a bring-your-own-data folder (format in the module docstring).

    Args:
        path: Folder with ``items.csv`` and ``interactions.csv``.
        target: Target domain; default the first domain of ``items.csv``.
        source: Source domain(s); default every other domain.
        subsample: Fraction of users kept (seeded, consistent across domains).
        seed: Seed of the subsample.
        min_len: Minimum target interactions for a user to be evaluated.
    """
    folder = Path(path)
    domains, events = read_generic(folder)
    names = list(domains)
    target = target or names[0]
    if target not in domains:
        raise DataError(folder / "items.csv", None, "target", f"no domain {target!r}; domains: {names}")
    if source is None:
        sources = [d for d in names if d != target]
    else:
        sources = [source] if isinstance(source, str) else list(source)
    for s in sources:
        if s not in domains or s == target:
            raise DataError(folder / "items.csv", None, "source",
                            f"source {s!r} must be a domain other than the target; domains: {names}")
    keep = None if subsample == 1.0 else sample_users(events, subsample, seed)

    def sub(d: Domain) -> Domain:
        return d if keep is None else Domain(d.name, d.items, {u: s for u, s in d.sequences.items() if u in keep})

    tgt = sub(domains[target])
    srcs = tuple(sub(domains[s]) for s in sources)
    protocol = Protocol(dataset=f"generic:{folder.name}, target {target}, sources {','.join(sources) or '-'}",
                        split=f"chronological leave-one-out for users with >= {min_len} {target} "
                              f"interactions, fewer = train only", subsample=subsample)
    split = leave_one_out(tgt, protocol, min_len=min_len)
    overlap = frozenset(u for u in tgt.sequences if any(u in s.sequences for s in srcs))
    positions = {}
    if srcs:
        first = srcs[0].name
        for u in sorted(overlap):
            if u not in srcs[0].sequences:
                continue
            ev = events[u]
            t_keys = np.asarray([k for k, _, d, _ in ev if d == target])
            s_ev = [(k, i) for k, _, d, i in ev if d == first]
            items = np.asarray([i for _, i in s_ev], dtype=np.int64)
            before = np.searchsorted(t_keys, np.asarray([k for k, _ in s_ev]), side="right").astype(np.int64)
            positions[u] = (items, before)
    return CrossDomainDataset(f"generic:{folder.name}", srcs, split, overlap, positions)
