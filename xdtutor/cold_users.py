"""The cold-user stage — EMCDR (Man et al., IJCAI 2017) for users with no target history.

A user who has never interacted in the target has an empty history: no sequential model of the
target can score them. For users present in both domains, EMCDR learns a mapping
``f: source user representation -> target user representation`` on users who *do* have target
training data; a cold user then gets ``f(source rep)`` as their target representation and is scored
against the target model's item representations.

It is its own stage (``cold_users:`` in a config), run after the transfer strategies: the mapping
needs a trained target model (the base whose user space it maps into) and the source user
representations of :class:`~xdtutor.extract_knowledge.Knowledge`.

The protocol keeps the cold users cold, as EMCDR's does: a seeded share of the overlapping test
users is set aside (:func:`split_cold_users`), and *all* their target interactions are removed from
the data every model they are evaluated with learns from — the base model, the mapping and the
popularity reference. The mapping function (ridge or MLP) is chosen on a validation part of the
users it is fitted on, never on the cold users' test items.

Two mapping functions, scikit-learn style (``__init__`` stores hyper-parameters, ``fit`` returns
``self``, learned state ends in ``_``): :class:`RidgeMapping` (closed form) and :class:`MLPMapping`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import check, check_types
from .data import EvalSet, SplitDomain
from .utils import pad_left, select_device

MAPPINGS = ("ridge", "mlp")


@dataclass(frozen=True)
class ColdUsersConfig:
    """Settings of the cold-user stage.

    Attributes:
        mappings: Mapping functions to fit and evaluate (``"ridge"``, ``"mlp"``); empty = skip the stage.
        cold_fraction: Share of the overlapping test users (with a source history) set aside as cold
            users; nothing any evaluated model learns from contains their target interactions.
        select_fraction: Share of the mapping's fitting users held out to choose the mapping
            function on their validation items.
        ridge_alpha: Ridge regularisation of the linear mapping.
        mlp_hidden: Hidden width of the MLP mapping.
        mlp_epochs: Full-batch training epochs of the MLP mapping.
    """

    mappings: tuple[str, ...] = ()
    cold_fraction: float = 0.2
    select_fraction: float = 0.2
    ridge_alpha: float = 1.0
    mlp_hidden: int = 128
    mlp_epochs: int = 200

    def __post_init__(self) -> None:
        check_types(self)
        unknown = [m for m in self.mappings if m not in MAPPINGS]
        check(not unknown, f"mappings: unknown {unknown}; choose from {MAPPINGS}")
        check(0.0 < self.cold_fraction < 1.0, f"cold_fraction must be in (0, 1), got {self.cold_fraction}")
        check(0.0 < self.select_fraction < 1.0, f"select_fraction must be in (0, 1), got {self.select_fraction}")
        check(self.ridge_alpha >= 0, f"ridge_alpha must be >= 0, got {self.ridge_alpha}")
        check(self.mlp_hidden > 0 and self.mlp_epochs > 0, "mlp_hidden and mlp_epochs must be positive")


def _as_2d(name: str, x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n_samples, n_features), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf")
    return x


def _check_xy(X: Any, Y: Any) -> tuple[np.ndarray, np.ndarray]:
    X, Y = _as_2d("X", X), _as_2d("Y", Y)
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but Y has {Y.shape[0]}; rows must be the same users")
    if X.shape[0] < 1:
        raise ValueError("cannot fit a mapping on zero users")
    return X, Y


class RidgeMapping:
    """Linear map ``Y ≈ X W + b`` by ridge regression (closed form).

    Args:
        alpha: L2 penalty on ``W`` (not on the intercept).
    """

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = alpha

    def fit(self, X: Any, Y: Any) -> "RidgeMapping":
        """Fit on paired rows: ``X`` (n, d_s) source reps, ``Y`` (n, d_t) target reps of the same users."""
        if self.alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {self.alpha}")
        X, Y = _check_xy(X, Y)
        x_mean, y_mean = X.mean(0), Y.mean(0)
        Xc, Yc = X - x_mean, Y - y_mean
        gram = Xc.T @ Xc + self.alpha * np.eye(X.shape[1])              # (d_s, d_s)
        self.coef_ = np.linalg.lstsq(gram, Xc.T @ Yc, rcond=None)[0]    # (d_s, d_t)
        self.intercept_ = y_mean - x_mean @ self.coef_                  # (d_t,)
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X: Any) -> np.ndarray:
        """``(n, d_s) -> (n, d_t)`` float32."""
        if not hasattr(self, "coef_"):
            raise RuntimeError("RidgeMapping is not fitted; call fit(X, Y) first")
        X = _as_2d("X", X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, the mapping was fitted on {self.n_features_in_}")
        return (X @ self.coef_ + self.intercept_).astype(np.float32)

    @property
    def n_params_(self) -> int:
        return int(self.coef_.size + self.intercept_.size)


class MLPMapping:
    """Two-layer MLP ``d_s -> hidden -> d_t`` (tanh, as in EMCDR), trained full-batch with Adam on MSE.

    Args:
        hidden: Hidden width.
        epochs: Full-batch steps.
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        seed: Initialisation seed.
    """

    def __init__(self, hidden: int = 128, epochs: int = 200, lr: float = 1e-2, weight_decay: float = 1e-4,
                 seed: int = 0) -> None:
        self.hidden, self.epochs, self.lr, self.weight_decay, self.seed = hidden, epochs, lr, weight_decay, seed

    def fit(self, X: Any, Y: Any) -> "MLPMapping":
        X, Y = _check_xy(X, Y)
        gen = torch.Generator().manual_seed(self.seed)
        x = torch.as_tensor(X, dtype=torch.float32)
        y = torch.as_tensor(Y, dtype=torch.float32)
        self.x_mean_, self.x_std_ = x.mean(0), x.std(0, unbiased=False).clamp_min(1e-6)
        net = nn.Sequential(nn.Linear(X.shape[1], self.hidden), nn.Tanh(), nn.Linear(self.hidden, Y.shape[1]))
        with torch.no_grad():
            for p in net.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * (1.0 / max(p.shape[-1], 1)) ** 0.5)
        opt = torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        xs = (x - self.x_mean_) / self.x_std_
        self.loss_curve_ = []
        for _ in range(self.epochs):
            loss = F.mse_loss(net(xs), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            self.loss_curve_.append(float(loss.detach()))
        self.net_ = net.eval().requires_grad_(False)
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X: Any) -> np.ndarray:
        if not hasattr(self, "net_"):
            raise RuntimeError("MLPMapping is not fitted; call fit(X, Y) first")
        X = _as_2d("X", X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, the mapping was fitted on {self.n_features_in_}")
        with torch.no_grad():
            x = (torch.as_tensor(X, dtype=torch.float32) - self.x_mean_) / self.x_std_
            return self.net_(x).numpy().astype(np.float32)

    @property
    def n_params_(self) -> int:
        return sum(p.numel() for p in self.net_.parameters())


def make_mapping(kind: str, config: ColdUsersConfig = ColdUsersConfig(), seed: int = 0):
    """An unfitted mapping of ``kind`` (``"ridge"`` | ``"mlp"``) with the config's hyper-parameters."""
    if kind == "ridge":
        return RidgeMapping(alpha=config.ridge_alpha)
    if kind == "mlp":
        return MLPMapping(hidden=config.mlp_hidden, epochs=config.mlp_epochs, seed=seed)
    raise ValueError(f"unknown mapping {kind!r}; choose from {MAPPINGS}")


class MappedColdStartRecommender(nn.Module):
    """A trained target model whose users are given by ``mapping(source representation)``.

    :func:`xdtutor.evaluate.evaluate` passes the users' keys to :meth:`score` because
    ``needs_users`` is true; their (empty) target histories are ignored.

    Args:
        base: Trained target model (offers ``item_representations`` and ``similarity``/``temperature``).
        mapping: A fitted mapping.
        source_reps: user key -> source representation ``(d_s,)``, from the source history before
            the evaluated item.
    """

    needs_users = True

    def __init__(self, base: nn.Module, mapping, source_reps: dict[str, np.ndarray]) -> None:
        super().__init__()
        self.base = base
        self.mapping = mapping
        self.source_reps = source_reps

    @property
    def n_items(self) -> int:
        return self.base.n_items

    def can_score(self, user: str) -> bool:
        return user in self.source_reps

    @torch.no_grad()
    def score(self, item_seq: torch.Tensor, users: list[str]) -> torch.Tensor:
        """(B, L) ignored histories and B user keys -> (B, N) scores from ``mapping(source rep)``.

        Raises:
            KeyError: If a user has no source representation.
        """
        missing = [u for u in users if u not in self.source_reps]
        if missing:
            raise KeyError(f"no source representation for users {missing[:5]}")
        device = next(self.base.parameters()).device
        x = np.stack([self.source_reps[u] for u in users])                      # (B, d_s)
        user = torch.as_tensor(self.mapping.transform(x), device=device)        # (B, H)
        items = self.base.item_representations()                                # (N, H)
        if getattr(self.base, "similarity", "dot") == "cos":
            return F.normalize(user, dim=-1) @ F.normalize(items, dim=-1).T / self.base.temperature
        return user @ items.T                                                   # (B, N)


@torch.no_grad()
def target_user_reps(model: nn.Module, sequences: list[np.ndarray], max_len: int, device=None,
                     batch_size: int = 512) -> np.ndarray:
    """``(U, H)`` target-model user representations of the given (non-empty) target sequences."""
    device = select_device(device) if device is not None else next(model.parameters()).device
    model.eval()
    out = []
    for start in range(0, len(sequences), batch_size):
        seq = pad_left(sequences[start:start + batch_size], max_len).to(device)  # (B, L)
        out.append(model.user_representation(seq).float().cpu().numpy())       # (B, H)
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def fit_mapping(knowledge, target, base: nn.Module, kind: str, config: ColdUsersConfig = ColdUsersConfig(),
                seed: int = 0, users: set[str] | None = None):
    """Fit an EMCDR mapping on overlapping users with target training data.

    Args:
        knowledge: Supplies source user representations (``user_reps["train"]``: source histories
            before each user's target valid item).
        target: The split target; ``target.train`` gives the paired users' target sequences.
        base: The trained target model whose user space is mapped into.
        kind: ``"ridge"`` or ``"mlp"``.
        config: The mappings' hyper-parameters.
        seed: Seed of the MLP's initialisation.
        users: Fit on these users only (``None``: every pair).

    Returns:
        The fitted mapping (``n_pairs_`` = the users it was fitted on).

    Raises:
        ValueError: If no overlapping user has both a source history and target training data.
    """
    rows = knowledge.user_index()
    has = knowledge.user_has_history.get("train")
    pairs = [u for u in knowledge.user_keys if (users is None or u in users)
             and len(target.train.get(u, ())) > 0 and has is not None and bool(has[rows[u]])]
    if not pairs:
        raise ValueError("mapping: no overlapping user has both a source history and target training data")
    max_len = int(knowledge.model_config.get("max_len", 50))
    X = knowledge.user_reps["train"][[rows[u] for u in pairs]].numpy()            # (n, d_s)
    Y = target_user_reps(base, [target.train[u] for u in pairs], max_len)        # (n, H)
    mapping = make_mapping(kind, config, seed).fit(X, Y)
    mapping.n_pairs_ = len(pairs)
    return mapping


def source_reps(knowledge, stage: str = "test") -> dict[str, np.ndarray]:
    """user key -> source representation before the ``stage`` item, for users who have one."""
    reps, mask = knowledge.user_reps[stage], knowledge.user_has_history[stage]
    return {u: reps[i].numpy() for u, i in knowledge.user_index().items() if bool(mask[i])}


def cold_eval_set(target, reps: dict[str, np.ndarray], stage: str = "test", users: set[str] | None = None) -> EvalSet:
    """The ``stage`` examples of overlapping users, with their target history hidden (cold users).

    Only users with a source representation in ``reps`` (and in ``users`` when given) are kept;
    ``histories`` are empty, so a history-based model sees nothing and
    :class:`~xdtutor.models.Popularity` is the natural reference.
    """
    ev = target.test if stage == "test" else target.valid
    idx = [i for i, u in enumerate(ev.users) if u in reps and (users is None or u in users)]
    return EvalSet([ev.users[i] for i in idx], [np.zeros(0, dtype=np.int64) for _ in idx],
                   np.asarray(ev.targets)[idx])


def split_cold_users(target, reps: dict[str, np.ndarray], fraction: float, seed: int) -> tuple[set[str], SplitDomain]:
    """Set a seeded ``fraction`` of the test users with a source representation aside as cold users.

    Returns:
        ``(cold, rest)``: the cold users, and the target without any of their interactions
        (training sequences, validation and test examples) — what the base model, the mapping and
        the popularity reference may learn from.
    """
    candidates = sorted(u for u in target.test.users if u in reps)
    n = int(round(fraction * len(candidates)))
    cold = {candidates[i] for i in np.random.default_rng(seed).permutation(len(candidates))[:n]}

    def keep(ev: EvalSet) -> EvalSet:
        idx = [i for i, u in enumerate(ev.users) if u not in cold]
        return EvalSet([ev.users[i] for i in idx], [ev.histories[i] for i in idx], np.asarray(ev.targets)[idx])

    rest = SplitDomain(target.domain, {u: s for u, s in target.train.items() if u not in cold},
                       keep(target.valid), keep(target.test), target.protocol)
    return cold, rest


def select_split(users: list[str], fraction: float, seed: int) -> tuple[set[str], set[str]]:
    """Seeded split of the mapping's users into ``(fit, select)``: ``select`` chooses the mapping kind."""
    order = sorted(users)
    n = max(1, int(round(fraction * len(order)))) if len(order) > 1 else 0
    perm = np.random.default_rng(seed + 1).permutation(len(order))
    select = {order[i] for i in perm[:n]}
    return set(order) - select, select
