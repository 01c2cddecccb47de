"""Stages 1–2: collect and preprocess. Canonical forms live in :mod:`xdtutor.data.types`.

* :func:`load_dataset` — a registered dataset (``food_kitchen``, ``scientific``) with its protocol.
* :func:`load_domain` — one whole domain (``food``, ``kitchen``, ``scientific``).
* :func:`load_generic` — a bring-your-own-data folder (``items.csv`` + ``interactions.csv``).
* :func:`dataset_stats`, :func:`k_core`, :func:`leave_one_out`, :func:`build_item_text` — preprocessing.
* :mod:`~xdtutor.data.registry` / :mod:`~xdtutor.data.download` — where files come from, verified.
"""

from .build import load_dataset, load_domain
from .errors import (ChecksumError, DataEncodingError, DataError, DownloadError, EmptyDomainError,
                     MalformedLineError, MissingTextError, NotADatasetError, UnknownItemError,
                     UnsafePickleError)
from .generic import load_generic
from .preprocess import build_item_text, dataset_stats, k_core, kcore, leave_one_out, remap_items
from .registry import REGISTRY, DatasetSpec, FileSpec, dataset_dir, get_spec, list_datasets
from .types import CrossDomainDataset, Domain, EvalSet, SplitDomain

__all__ = [
    "CrossDomainDataset", "Domain", "EvalSet", "SplitDomain",
    "load_dataset", "load_domain", "load_generic", "list_datasets", "get_spec", "dataset_dir",
    "REGISTRY", "DatasetSpec", "FileSpec",
    "dataset_stats", "k_core", "kcore", "leave_one_out", "build_item_text", "remap_items",
    "DataError", "MalformedLineError", "UnknownItemError", "EmptyDomainError", "MissingTextError",
    "DataEncodingError", "ChecksumError", "NotADatasetError", "DownloadError", "UnsafePickleError",
]
