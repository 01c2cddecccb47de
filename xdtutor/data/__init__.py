"""Stages 1–2: collect and preprocess. Canonical forms live in :mod:`xdtutor.data.types`."""

from .types import CrossDomainDataset, Domain, EvalSet, SplitDomain

__all__ = ["CrossDomainDataset", "Domain", "EvalSet", "SplitDomain"]
