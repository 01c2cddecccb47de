"""Negative-transfer diagnostics: how alike are two catalogues, seen through the language model?

Transfer through item text can only help when the target's items land where the source model has
learned something. These scores compare the PLM embeddings of two catalogues (no training needed)
and are reported beside the measured gain, so a reader can see when transfer is unlikely to help:

* ``mean_cosine`` — average cosine over all (source, target) item pairs (= cosine of the mean unit vectors' dot product);
* ``centroid_cosine`` — cosine between the two catalogues' mean embeddings;
* ``nn_cosine`` — for each target item, the cosine to its nearest source item, averaged: how well
  the source catalogue "covers" the target;
* ``mmd_rbf`` — squared maximum mean discrepancy with an RBF kernel (median-distance bandwidth) on
  a seeded subsample: 0 for identical distributions, larger = more different.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F


def _t(x) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"embeddings must be a non-empty (N, D) table, got shape {tuple(x.shape)}")
    return x


def _sample(x: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    if x.shape[0] <= n:
        return x
    return x[torch.randperm(x.shape[0], generator=gen)[:n]]


def mmd_rbf(a: torch.Tensor, b: torch.Tensor, bandwidth: float | None = None) -> float:
    """Biased squared MMD between samples ``a`` (n, D) and ``b`` (m, D) with an RBF kernel."""
    both = torch.cat([a, b])                                    # (n+m, D)
    d2 = torch.cdist(both, both).pow(2)                         # (n+m, n+m)
    if bandwidth is None:
        bandwidth = float(d2[d2 > 0].median().sqrt()) if (d2 > 0).any() else 1.0
    k = torch.exp(-d2 / (2 * bandwidth ** 2))
    n = a.shape[0]
    return float(k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean())


def domain_similarity(source_emb, target_emb, *, sample: int = 2000, seed: int = 0) -> dict[str, float]:
    """Similarity scores between two catalogues' text embeddings (see the module docstring).

    Args:
        source_emb: (N_s, D) source item embeddings.
        target_emb: (N_t, D) target item embeddings (same encoder).
        sample: Items per catalogue used for ``nn_cosine`` and ``mmd_rbf`` (seeded subsample).
        seed: Seed of the subsample.

    Returns:
        ``{"mean_cosine", "centroid_cosine", "nn_cosine", "mmd_rbf"}``.
    """
    s, t = _t(source_emb), _t(target_emb)
    if s.shape[1] != t.shape[1]:
        raise ValueError(f"embedding widths differ: source {s.shape[1]}, target {t.shape[1]} (use one encoder)")
    su, tu = F.normalize(s, dim=-1), F.normalize(t, dim=-1)
    gen = torch.Generator().manual_seed(seed)
    ss, ts = _sample(su, sample, gen), _sample(tu, sample, gen)
    nn_cos = float((ts @ su.T).max(dim=1).values.mean())        # target item -> nearest source item
    return {
        "mean_cosine": float(su.mean(0) @ tu.mean(0)),
        "centroid_cosine": float(F.cosine_similarity(s.mean(0), t.mean(0), dim=0)),
        "nn_cosine": nn_cos,
        "mmd_rbf": mmd_rbf(ss, ts),
    }


def similarity_matrix(embeddings: Mapping[str, object], metric: str = "nn_cosine", **kwargs) -> tuple[list[str], np.ndarray]:
    """Pairwise ``metric`` between several catalogues; row = target, column = source.

    The diagonal (a catalogue against itself) is 1 for the cosines and 0 for ``mmd_rbf`` by
    definition, and is not computed.

    Returns:
        ``(names, matrix (K, K))``.
    """
    names = list(embeddings)
    out = np.zeros((len(names), len(names)))
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            if i == j:
                out[i, j] = 0.0 if metric == "mmd_rbf" else 1.0
            else:
                out[i, j] = domain_similarity(embeddings[b], embeddings[a], **kwargs)[metric]
    return names, out


def diagnose(source_embs: Mapping[str, object], target: str, target_emb: object, *, sample: int = 2000,
             seed: int = 0) -> dict:
    """The negative-transfer diagnostic of an experiment: each source against the target, and the matrix.

    Args:
        source_embs: Source name -> its catalogue's embeddings ``(N_s, D)``.
        target: The target's name.
        target_emb: The target catalogue's embeddings ``(N_t, D)``.
        sample: Items per catalogue for ``nn_cosine`` and ``mmd_rbf``.
        seed: Seed of the subsamples.

    Returns:
        ``{"<source>-><target>": domain_similarity(...), …, "matrix": {"metric", "names", "values"}}``.
    """
    out: dict = {f"{name}->{target}": domain_similarity(emb, target_emb, sample=sample, seed=seed)
                 for name, emb in source_embs.items()}
    names, values = similarity_matrix({**source_embs, target: target_emb}, sample=sample, seed=seed)
    out["matrix"] = {"metric": "nn_cosine (row: target, column: source)", "names": names,
                     "values": values.tolist()}
    return out
