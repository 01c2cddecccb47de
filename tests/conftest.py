"""Shared pytest fixtures."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def data_dir() -> Path:
    """The real data root (``XDTUTOR_DATA_DIR``); skips the test when it is unset or missing."""
    value = os.environ.get("XDTUTOR_DATA_DIR")
    if not value:
        pytest.skip("XDTUTOR_DATA_DIR is not set (point it at the staged real data, e.g. ../shared/data)")
    path = Path(value).expanduser()
    if not path.is_dir():
        pytest.skip(f"XDTUTOR_DATA_DIR={value} is not a folder")
    return path


@pytest.fixture
def fixture_data() -> Path:
    """Root of the tiny synthetic data sets (same layout as a real data dir)."""
    return FIXTURES / "data"


@pytest.fixture
def fixture_copy(tmp_path, fixture_data) -> Path:
    """A writable copy of the synthetic data root (for tests that corrupt files)."""
    dest = tmp_path / "data"
    shutil.copytree(fixture_data, dest)
    for p in dest.rglob("*"):
        if p.is_file():
            p.chmod(0o644)
    return dest


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch) -> Path:
    """An empty private ``XDTUTOR_CACHE_DIR``."""
    path = tmp_path / "cache"
    monkeypatch.setenv("XDTUTOR_CACHE_DIR", str(path))
    return path
