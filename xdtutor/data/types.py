"""The canonical in-memory forms every loader returns and every later stage consumes.

Conventions (the contract between the data layer and the models):

* Items of a domain are 0-based integers ``0 … n_items-1``; ``Domain.items`` row ``i`` describes
  item ``i`` (``raw_id`` e.g. the ASIN, ``text`` the string given to the language model).
* Users are string keys (raw ids where the origin has them, e.g. ``"A1SWWHE1L3XR3V"``; for
  food_kitchen, which has no raw ids, ``"<file>:<line user id>"`` such as ``"overlap:17"``). The
  same person has the same key in every domain — that is what "overlapping users" means.
* A sequence is a chronological ``np.ndarray`` of int64 item ids of one domain.
* Models shift ids by +1 and use 0 for padding (:func:`xdtutor.utils.pad_left`); the data layer
  never does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from ..protocol import Protocol

Stage = Literal["train", "valid", "test"]


@dataclass(frozen=True, eq=False)
class Domain:
    """One domain's catalogue and user sequences.

    Attributes:
        name: Domain name, e.g. ``"food"``, ``"kitchen"``, ``"scientific"``.
        items: DataFrame with columns ``item`` (int, equals the row index), ``raw_id`` (str),
            ``text`` (str, non-empty).
        sequences: user key -> chronological item ids (int64 array, non-empty).
    """

    name: str
    items: pd.DataFrame
    sequences: dict[str, np.ndarray]

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def n_users(self) -> int:
        return len(self.sequences)

    @property
    def texts(self) -> list[str]:
        """Item texts in item-id order (what the encoder embeds)."""
        return self.items["text"].tolist()

    @property
    def interactions(self) -> pd.DataFrame:
        """Long form: one row per interaction with columns ``user``, ``item``, ``position``."""
        users, items, pos = [], [], []
        for u, seq in self.sequences.items():
            users.extend([u] * len(seq))
            items.extend(seq.tolist())
            pos.extend(range(len(seq)))
        return pd.DataFrame({"user": users, "item": np.asarray(items, dtype=np.int64),
                             "position": np.asarray(pos, dtype=np.int64)})


@dataclass(frozen=True, eq=False)
class EvalSet:
    """Next-item examples for validation or test: ``histories[i]`` -> ``targets[i]`` for ``users[i]``."""

    users: list[str]
    histories: list[np.ndarray]
    targets: np.ndarray  # (U,) int64

    def __len__(self) -> int:
        return len(self.users)


@dataclass(frozen=True, eq=False)
class SplitDomain:
    """A domain split for training and evaluation.

    Attributes:
        domain: The full domain (catalogue + all sequences).
        train: user -> training sequence; a model learns to predict every next item inside it.
            For leave-one-out this is the sequence without its last two items.
        valid: validation examples (history = train sequence, target = second-last item).
        test: test examples (history = train + valid item, target = last item).
        protocol: How this split was made (printed with every result).
    """

    domain: Domain
    train: dict[str, np.ndarray]
    valid: EvalSet
    test: EvalSet
    protocol: Protocol

    @property
    def n_items(self) -> int:
        return self.domain.n_items


@dataclass(frozen=True, eq=False)
class CrossDomainDataset:
    """Source domain(s) + a split target domain + the users they share.

    Attributes:
        name: e.g. ``"food_kitchen"``.
        sources: Source domains; all their sequences are training data for pretraining.
        target: The split target domain.
        overlap: Keys of users that appear in the target and in at least one source.
        source_positions: For overlapping users with a mixed (interleaved) history: user ->
            ``(source_items, target_index_before)`` where ``target_index_before[j]`` is the number of
            the user's *target* interactions that happened before ``source_items[j]``. It lets
            :meth:`source_history` cut a source history at the target split position.
    """

    name: str
    sources: tuple[Domain, ...]
    target: SplitDomain
    overlap: frozenset[str]
    source_positions: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def source_history(self, user: str, stage: Stage) -> np.ndarray:
        """Source-domain items of ``user`` that happened before the target item predicted at ``stage``.

        No leakage: for ``"test"`` only source items before the user's target test item are returned,
        for ``"valid"`` only those before the valid item, for ``"train"`` those before the valid item
        as well (the train stage may see everything that precedes validation). Users without
        valid/test examples (fewer than 3 target interactions: train only) get all their source
        items, since none of their target items is ever evaluated.

        Returns:
            int64 array of source item ids (empty when the user has none).
        """
        if user not in self.source_positions:
            return np.zeros(0, dtype=np.int64)
        items, before = self.source_positions[user]
        # Target items t_0 … t_{n-1}: test = t_{n-1}, valid = t_{n-2}. A source item with
        # before == k happened after t_{k-1} and before t_k, so it precedes t_m iff k <= m.
        n_target = len(self.target.train.get(user, ())) + 2  # train + valid + test items
        m = n_target - 1 if stage == "test" else n_target - 2
        return items[before <= m]

    def pretraining_sources(self) -> tuple[Domain, ...]:
        """The source domains as pretraining may see them: nothing from after the target split.

        An overlapping user's source sequence is cut before that user's target *valid* item
        (:meth:`source_history` at stage ``"train"``): a source model that learned from what the user
        did after that point would carry the future into validation and test. Users left with no
        source item are dropped. Only a source with known positions (the first source of a dataset
        with mixed histories, e.g. food_kitchen) can be cut; the others are returned unchanged.
        """
        if not self.sources or not self.source_positions:
            return self.sources
        first = self.sources[0]
        cut = {u: self.source_history(u, "train") if u in self.source_positions else s
               for u, s in first.sequences.items()}
        return (Domain(first.name, first.items, {u: s for u, s in cut.items() if len(s)}), *self.sources[1:])
