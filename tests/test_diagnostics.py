"""Negative-transfer diagnostics: similarity of two catalogues' text embeddings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xdtutor.diagnostics import diagnose, domain_similarity, similarity_matrix

D = 12


def test_domain_similarity_scores():
    a = torch.randn(200, D)
    same = domain_similarity(a, a)
    assert same["nn_cosine"] == pytest.approx(1.0, abs=1e-5) and same["mmd_rbf"] == pytest.approx(0.0, abs=1e-6)
    far = domain_similarity(a, torch.randn(150, D) + 3.0)
    assert far["mmd_rbf"] > same["mmd_rbf"] and far["nn_cosine"] < 1.0
    names, mat = similarity_matrix({"a": a, "b": a + 0.01})
    assert names == ["a", "b"] and mat.shape == (2, 2)
    with pytest.raises(ValueError, match="widths"):
        domain_similarity(a, torch.randn(5, D + 1))


def test_diagnose_reports_each_source_and_the_matrix():
    g = torch.Generator().manual_seed(0)
    src, tgt = torch.randn(40, D, generator=g), torch.randn(30, D, generator=g)
    out = diagnose({"src": src}, "tgt", tgt, sample=20, seed=1)
    assert out["src->tgt"] == domain_similarity(src, tgt, sample=20, seed=1)
    m = out["matrix"]
    assert m["names"] == ["src", "tgt"]
    values = np.asarray(m["values"])
    assert values[0, 0] == values[1, 1] == 1.0
    assert values[1, 0] == pytest.approx(out["src->tgt"]["nn_cosine"])  # row target, column source
