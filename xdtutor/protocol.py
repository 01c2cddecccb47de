"""The evaluation protocol: a value printed and stored next to every number.

Recommendation numbers silently depend on the dataset version, the split, the ranking
(full vs sampled) and whether history items are masked. A :class:`Protocol` names all of them so a
result can always be compared like with like.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .config import check, check_types, to_dict


@dataclass(frozen=True)
class Protocol:
    """How a result was produced.

    Attributes:
        dataset: Dataset name and version, e.g. ``"scientific (UniSRec layout, CoWPiRec db47560)"``.
        split: The split rule, e.g. ``"released leave-one-out (histories <= 50)"``.
        ranking: ``"full"`` (every catalogue item is a candidate; what the book reports) or
            ``"sampled"``: the target against ``negatives`` items drawn for each user, as LLMCDSR's
            ``evaluation.py`` does (999 negatives). Sampled metrics are not comparable with full
            ranking and can change which method looks best (Krichene & Rendle, KDD 2020); they exist
            to compare with papers that report them.
        negatives: Negatives per user under ``"sampled"`` ranking (0 under ``"full"``): drawn
            uniformly without replacement from the ranked catalogue, excluding only the target (the
            user's history may be drawn, as in LLMCDSR), once per evaluation set in user order from
            ``negatives_seed`` — every model evaluated on the same set meets the same negatives
            (:func:`xdtutor.evaluate.sample_negatives`).
        negatives_seed: Seed of the negatives.
        mask_history: Whether items already in the user's history are removed from the ranking.
            RecBole/UniSRec do not mask for sequential models; their numbers are unmasked.
        ks: Cut-offs K for the @K metrics.
        max_len: Longest history fed to a sequential model.
        subsample: Fraction of users kept (1.0 = full scale), seeded.
        ties: How a target tied with other items is ranked (:func:`xdtutor.metrics.rank_of_target`).
            ``"pessimistic"`` (default) puts it after every tied item, so a constant scorer gets
            zero, not perfect, metrics; ties are rare for neural scores.
    """

    dataset: str
    split: str
    ranking: str = "full"
    negatives: int = 0
    negatives_seed: int = 0
    mask_history: bool = False
    ks: tuple[int, ...] = (5, 10, 20, 50)
    max_len: int = 50
    subsample: float = 1.0
    ties: str = "pessimistic"

    def __post_init__(self) -> None:
        check_types(self)
        check(self.ranking in ("full", "sampled"), f"ranking must be 'full' or 'sampled', got {self.ranking!r}")
        if self.ranking == "sampled":
            check(self.negatives >= 1, f"sampled ranking needs negatives >= 1, got {self.negatives}")
        else:
            check(self.negatives == 0, f"negatives={self.negatives} is only used with ranking='sampled'")
        check(len(self.ks) > 0 and all(int(k) > 0 for k in self.ks), f"ks must be positive, got {self.ks}")
        check(self.max_len > 0, f"max_len must be positive, got {self.max_len}")
        check(0.0 < self.subsample <= 1.0, f"subsample must be in (0, 1], got {self.subsample}")
        check(self.ties in ("optimistic", "pessimistic", "average"),
              f"ties must be 'optimistic', 'pessimistic' or 'average', got {self.ties!r}")

    def with_(self, **changes) -> "Protocol":
        """A copy with some fields changed (e.g. ``mask_history=True``)."""
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return to_dict(self)

    def describe(self) -> str:
        """One line to print beside a result table."""
        mask = "history masked" if self.mask_history else "history not masked"
        scale = "" if self.subsample == 1.0 else f", {self.subsample:.0%} of users"
        ks = ",".join(str(k) for k in self.ks)
        ranking = ("full ranking" if self.ranking == "full" else
                   f"sampled ranking ({self.negatives:,} negatives per user, seed {self.negatives_seed})")
        return (f"protocol: {self.dataset}; {self.split}; {ranking}, {mask}, "
                f"{self.ties} ties; K={ks}; max_len={self.max_len}{scale}")
