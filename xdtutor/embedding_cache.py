"""On-disk cache of item-text embeddings: fingerprints, keys' file names, safe reads and writes.

An entry is one safetensors file under ``paths.cache_dir("embeddings")`` holding the (N, D) float32
table, its key (everything the embeddings depend on, built by :func:`xdtutor.encoders.cache_key`) and a
checksum in the metadata. Writes are atomic; a read checks key, shape and checksum, so a truncated,
garbled or foreign entry raises :class:`EncoderCacheError` and is rebuilt by the caller.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Sequence

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save as save_safetensors

from .paths import cache_dir
from .utils import atomic_write, sha256_file

#: Cache file format version; bump it when the layout of cache entries changes.
CACHE_FORMAT = 1

#: Files of a model folder that determine its embeddings (weights, config, tokenizer, the
#: sentence-transformers module configs).
_HASHED_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".json", ".txt", ".model")
_NOT_HASHED = {"README.md", "data_config.json"}
_WEIGHTS = (".safetensors", ".bin", ".pt", ".pth")

_HASH_MEMO: dict[tuple, str] = {}


class EncoderCacheError(RuntimeError):
    """A cache entry cannot be used (unreadable, truncated, wrong key, wrong shape or checksum)."""


def _hash_file(path: Path) -> str:
    st = path.stat()
    memo_key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if memo_key not in _HASH_MEMO:
        _HASH_MEMO[memo_key] = sha256_file(path)
    return _HASH_MEMO[memo_key]


def _module_folders(folder: Path) -> list[Path]:
    """The sub-folders of a sentence-transformers model's modules (``modules.json``), e.g. ``1_Pooling``."""
    modules = folder / "modules.json"
    if not modules.is_file():
        return []
    paths = [m.get("path", "") for m in json.loads(modules.read_text())]
    return [folder / p for p in paths if p and (folder / p).is_dir()]


def folder_fingerprint(folder: Path) -> str:
    """sha256 over the files of a model folder that determine its embeddings.

    The top level (weights, config, tokenizer, ``modules.json``) and, for a sentence-transformers
    model, the configs of its modules (pooling, normalisation, dense layers).
    """
    files = [p for p in folder.iterdir() if p.is_file()]
    for sub in _module_folders(folder):
        files += [p for p in sub.iterdir() if p.is_file()]
    files = sorted((p for p in files if p.suffix in _HASHED_SUFFIXES and p.name not in _NOT_HASHED),
                   key=lambda p: p.relative_to(folder).as_posix())
    if not any(p.suffix in _WEIGHTS for p in files):
        raise FileNotFoundError(f"{folder}: no weights file (*.safetensors, *.bin) to fingerprint")
    h = hashlib.sha256()
    for p in files:
        h.update(p.relative_to(folder).as_posix().encode() + b"\0" + _hash_file(p).encode() + b"\n")
    return h.hexdigest()


def texts_hash(texts: Sequence[str]) -> str:
    """sha256 of the exact list of texts (order and boundaries included)."""
    return hashlib.sha256(json.dumps(list(texts), ensure_ascii=False).encode("utf-8")).hexdigest()


def cache_path(key: dict) -> Path:
    """Where the cache entry for ``key`` lives (under ``paths.cache_dir("embeddings")``)."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    name = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(key["model"]))[-60:]
    return cache_dir("embeddings") / f"{name}-{key['pooling']}-{digest}.safetensors"


def _array_sha256(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


def save_cache(path: Path, emb: np.ndarray, key: dict) -> None:
    """Write ``emb`` (N, D) float32 with its key and checksum, atomically."""
    emb = np.ascontiguousarray(emb, dtype=np.float32)
    meta = {"key": json.dumps(key, sort_keys=True), "sha256": _array_sha256(emb)}
    data = save_safetensors({"embeddings": emb}, metadata=meta)
    with atomic_write(path) as fh:
        fh.write(data)


def load_cache(path: Path, key: dict) -> np.ndarray:
    """Read a cache entry and verify key, shape and checksum.

    Raises:
        FileNotFoundError: No entry at ``path``.
        EncoderCacheError: The entry is unreadable, truncated, for another key or fails its checksum.
    """
    if not path.exists():
        raise FileNotFoundError(path)
    try:
        with safe_open(str(path), framework="np") as fh:
            meta = fh.metadata() or {}
            emb = fh.get_tensor("embeddings")
    except Exception as exc:  # safetensors raises its own error types on truncated/garbled files
        raise EncoderCacheError(f"{path}: unreadable cache entry ({type(exc).__name__}: {exc})") from exc
    if meta.get("key") != json.dumps(key, sort_keys=True):
        raise EncoderCacheError(f"{path}: metadata key does not match the requested key")
    if emb.dtype != np.float32 or emb.ndim != 2 or emb.shape[0] != key["n_texts"]:
        raise EncoderCacheError(f"{path}: expected ({key['n_texts']}, D) float32, got {emb.shape} {emb.dtype}")
    if meta.get("sha256") != _array_sha256(emb):
        raise EncoderCacheError(f"{path}: checksum mismatch (corrupt entry)")
    return emb


__all__ = ["CACHE_FORMAT", "EncoderCacheError", "folder_fingerprint", "texts_hash", "cache_path", "save_cache",
           "load_cache"]
