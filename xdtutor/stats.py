"""How sure is a difference between two methods? Intervals that include the seeds' variance.

A method's test NDCG@10 varies for two reasons: the sample of test users, and the training run
(initialisation, dropout, batch order — the seed). A paired test over users on seed-averaged scores
sees only the first. :func:`paired_difference` covers both, with the wider of two intervals at each
end:

* a **two-level percentile bootstrap** draws the seeds with replacement, then the users with
  replacement — the same users for both methods and every seed, since they are paired — and
  recomputes the mean difference and the relative difference on every replicate (the mean over the
  drawn seeds of each seed's mean over its drawn users; a user not evaluated in a seed, e.g. a cold
  user drawn for another seed, only counts where it was). It covers the users; with three seeds it
  understates the seeds' share (resampling 3 values sees about 2/3 of their variance, and its
  quantiles are those of a normal, where a t with 2 degrees of freedom is 2.2 times wider);
* a **paired t interval over the seeds** (:func:`seed_t_interval`: each seed's difference of
  the two means, S − 1 degrees of freedom) covers the seeds, but not the users, whom every seed
  shares.

Their hull holds its level where either part dominates: ``tests/test_stats.py`` simulates three seeds
whose differences vary more than the users' sampling does, where the bootstrap alone covers the true
difference well below 95 % of the time and the hull close to it. With one seed it is the paired
bootstrap over users alone (and says so).
:func:`with_seed_t` applies the same hull to an interval stored without it, from the per-seed
differences a results file keeps.

An interval that contains 0 means *no detectable difference* at that level, not that the two are
equal; equal within a margin is a different claim (:func:`within_margin`).
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

if TYPE_CHECKING:
    from xdtutor.evaluate import EvalResult

BOOTSTRAP = "two-level percentile bootstrap (seeds, then users, paired)"
METHOD = f"the wider at each end of a {BOOTSTRAP} and a paired t interval over the seeds (S − 1 df)"


def paired_difference(per_user: pd.DataFrame, a: str, b: str, metric: str = "ndcg@10", *,
                      level: float = 0.95, n_boot: int = 2000, seed: int = 0) -> dict:
    """Mean difference ``a − b`` of a per-user metric with a confidence interval over seeds and users.

    Args:
        per_user: Rows ``method, seed, user, <metric>`` (e.g. :attr:`xdtutor.results.Results.per_user`).
        a, b: The two methods (rows of ``per_user['method']``).
        metric: The per-user column.
        level: Coverage of the interval.
        n_boot: Bootstrap replicates.
        seed: Seed of the resampling (the same seed gives the same interval).

    Returns:
        ``{"method": a, "vs": b, "metric", "seeds", "n_users", "mean_a", "mean_b", "diff", "diff_low",
        "diff_high", "relative", "relative_low", "relative_high", "level", "n_boot", "interval"}``;
        ``relative`` is ``mean_a / mean_b − 1``. With several seeds the bounds are the hull of the
        bootstrap's (also kept as ``boot_low``/``boot_high``, ``boot_relative_low``/``boot_relative_high``)
        and the paired t interval's (``seed_t_low``/``seed_t_high``, from ``seed_diffs``: (S,) each seed's
        difference), as :func:`with_seed_t` makes them.

    Raises:
        ValueError: If the two methods share no seed or no user.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    A, B = _matrix(per_user, a, metric), _matrix(per_user, b, metric)
    seeds = sorted(set(A.columns) & set(B.columns))
    users = sorted(set(A.index) & set(B.index))
    if not seeds or not users:
        raise ValueError(f"{a!r} and {b!r} share no seed and user (seeds {list(A.columns)} vs {list(B.columns)})")
    # (U, S); NaN where a user was not evaluated in a seed (e.g. cold users are drawn per seed)
    A, B = A.loc[users, seeds].to_numpy(float), B.loc[users, seeds].to_numpy(float)
    both = ~(np.isnan(A) | np.isnan(B))
    A, B = np.where(both, A, np.nan), np.where(both, B, np.nan)
    rng = np.random.default_rng(seed)
    n_users, n_seeds = A.shape
    reps_a, reps_b = np.empty(n_boot), np.empty(n_boot)
    chunk = max(1, int(4e6 // (n_users * n_seeds)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a drawn seed may draw none of its users
        for start in range(0, n_boot, chunk):
            m = min(chunk, n_boot - start)
            u = rng.integers(0, n_users, size=(m, n_users))                    # (m, U) the same users for a and b
            pick = rng.integers(0, n_seeds, size=(m, 1, n_seeds))              # (m, 1, S) seeds with replacement
            reps_a[start:start + m] = np.nanmean(np.nanmean(np.take_along_axis(A[u], pick, axis=2), axis=1), axis=1)
            reps_b[start:start + m] = np.nanmean(np.nanmean(np.take_along_axis(B[u], pick, axis=2), axis=1), axis=1)
    ok = np.isfinite(reps_a) & np.isfinite(reps_b)
    reps_a, reps_b = reps_a[ok], reps_b[ok]
    alpha = (1.0 - level) / 2.0
    mean_a, mean_b = float(np.nanmean(np.nanmean(A, axis=0))), float(np.nanmean(np.nanmean(B, axis=0)))
    diff_lo, diff_hi = np.quantile(reps_a - reps_b, [alpha, 1.0 - alpha])
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = reps_a / reps_b - 1.0
    rel_lo, rel_hi = np.quantile(rel[np.isfinite(rel)], [alpha, 1.0 - alpha]) if np.isfinite(rel).any() else (np.nan, np.nan)
    n_users = int(both.any(axis=1).sum())
    boot = {"method": a, "vs": b, "metric": metric, "seeds": n_seeds, "n_users": n_users,
            "mean_a": mean_a, "mean_b": mean_b, "diff": mean_a - mean_b,
            "diff_low": float(diff_lo), "diff_high": float(diff_hi),
            "relative": mean_a / mean_b - 1.0 if mean_b else float("nan"),
            "relative_low": float(rel_lo), "relative_high": float(rel_hi), "level": level, "n_boot": n_boot,
            "interval": BOOTSTRAP if n_seeds > 1 else "paired percentile bootstrap over users (one seed)"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a seed whose users all went missing: NaN, dropped
        per_seed = np.nanmean(A - B, axis=0)                               # (S,) each seed's difference
    return with_seed_t(boot, per_seed[np.isfinite(per_seed)].tolist()) if n_seeds > 1 else boot


def seed_t_interval(seed_diffs: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Paired *t* interval of the mean of per-seed differences (S − 1 degrees of freedom).

    Args:
        seed_diffs: (S,) one difference ``a − b`` per seed (each the difference of the two means over
            that seed's users).
        level: Confidence level.

    Returns:
        ``(low, high)``; NaN with fewer than two seeds.
    """
    d = np.asarray(seed_diffs, dtype=float)
    if len(d) < 2:
        return math.nan, math.nan
    half = _t_half(d, level)
    return float(d.mean() - half), float(d.mean() + half)


def _t_half(values: np.ndarray, level: float) -> float:
    """Half-width of the one-sample *t* interval of the mean of ``values`` (len - 1 degrees of freedom)."""
    return float(scipy_stats.t.ppf(0.5 + level / 2, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)))


def welch_interval(diff: float, var_a: float, n_a: int, var_b: float, n_b: int,
                   level: float = 0.95) -> tuple[float, float]:
    """Welch *t* interval of a difference of two means from each side's sample variance and count
    (what :func:`seed_difference` computes from per-seed values; a file that kept only each side's mean
    and spread can call it directly). Zero spread on both sides: the difference is exact."""
    ea, eb = var_a / n_a, var_b / n_b
    if ea + eb == 0:
        return diff, diff
    dof = (ea + eb) ** 2 / (ea**2 / (n_a - 1) + eb**2 / (n_b - 1))
    half = float(scipy_stats.t.ppf(0.5 + level / 2, dof) * math.sqrt(ea + eb))
    return diff - half, diff + half


def with_seed_t(c: dict, seed_diffs: Sequence[float]) -> dict:
    """A bootstrap comparison widened, at each end, to the paired *t* interval over its seeds.

    The difference and relative difference keep their values; the bounds become the hull of the
    bootstrap's (kept as ``boot_low``/``boot_high``, ``boot_relative_low``/``boot_relative_high``) and
    the *t* interval's (``seed_t_low``/``seed_t_high``; its relative bounds divide by ``mean_b``).
    Idempotent: a comparison that has ``boot_low`` is widened from its bootstrap bounds again.

    Args:
        c: A :func:`paired_difference` dict of the bootstrap (or one stored before the hull existed).
        seed_diffs: (S,) the per-seed differences ``a − b`` behind ``c`` (e.g. from a results file's rows).

    Returns:
        A new dict; ``c`` unchanged when there are fewer than two seed differences or no interval.

    Raises:
        ValueError: If the mean of ``seed_diffs`` is not ``c["diff"]`` (they are not its seeds).
    """
    d = np.asarray(seed_diffs, dtype=float)
    if len(d) < 2 or not _has_interval(c):
        return dict(c)
    if not math.isclose(float(d.mean()), c["diff"], rel_tol=1e-6, abs_tol=1e-9):
        raise ValueError(f"{c.get('method')} vs {c.get('vs')}: the per-seed differences average "
                         f"{d.mean():+.6f}, the comparison says {c['diff']:+.6f}")
    low, high = seed_t_interval(d, c.get("level", 0.95))
    return widen(c, low, high, interval=METHOD, seed_diffs=[float(x) for x in d])


def widen(c: dict, low: float, high: float, *, interval: str, **extra) -> dict:
    """``c``'s bootstrap interval widened at each end to ``[low, high]``, an interval over the seeds
    (see :func:`with_seed_t`, which passes the paired *t*; a file that kept only each side's per-seed
    mean and spread can pass a Welch interval). ``interval`` names the result; ``extra`` is stored."""
    if not _has_interval(c):
        return dict(c)
    out = {**c, "boot_low": c.get("boot_low", c["diff_low"]), "boot_high": c.get("boot_high", c["diff_high"]),
           "seed_t_low": low, "seed_t_high": high, **extra}
    out["diff_low"], out["diff_high"] = min(out["boot_low"], low), max(out["boot_high"], high)
    mean_b = c.get("mean_b")
    if c.get("relative_low") is not None and mean_b:
        out["boot_relative_low"] = c.get("boot_relative_low", c["relative_low"])
        out["boot_relative_high"] = c.get("boot_relative_high", c["relative_high"])
        rel_low, rel_high = sorted((low / mean_b, high / mean_b))  # a negative reference flips them
        out["relative_low"] = min(out["boot_relative_low"], rel_low)
        out["relative_high"] = max(out["boot_relative_high"], rel_high)
    out["interval"] = interval
    return out


def _has_interval(c: dict) -> bool:
    low = c.get("boot_low", c.get("diff_low"))
    return low is not None and math.isfinite(low)


def difference_of_differences(per_user: pd.DataFrame, first: tuple[str, str], second: tuple[str, str],
                              metric: str = "ndcg@10", **kwargs) -> dict:
    """``(a − b) − (c − d)`` for ``first = (a, b)``, ``second = (c, d)``, with its interval.

    Whether a gain changes between two settings, e.g. the transfer gain (fine-tuned − text model)
    with a bigger encoder vs with the default one, on the same seeds and users. Each user's gain is
    taken within its seed first, then the two gains are compared by :func:`paired_difference` (the
    same interval over seeds and users); a user or seed missing on either side drops out.

    Returns:
        :func:`paired_difference`'s dict with ``method``/``vs`` naming the two differences,
        ``mean_a``/``mean_b`` the two mean gains, and no relative values (a gain can be near 0).
    """
    gains = []
    for name, (x, y) in (("first", first), ("second", second)):
        both = []
        for m in (x, y):
            rows = per_user[per_user["method"] == m].set_index(["seed", "user"])[metric]
            if rows.empty:
                raise ValueError(f"no per-user rows for {m!r}")
            if rows.index.duplicated().any():
                raise ValueError(f"{m!r} has more than one row for a (seed, user)")
            both.append(rows)
        # aligned on (seed, user); a pair missing on either side is NaN and dropped
        gain = (both[0] - both[1]).dropna().rename(metric).reset_index()
        gains.append(gain.assign(method=name))
    out = paired_difference(pd.concat(gains, ignore_index=True), "first", "second", metric, **kwargs)
    out.update(method=f"{first[0]} − {first[1]}", vs=f"{second[0]} − {second[1]}", relative=None,
               relative_low=None, relative_high=None, boot_relative_low=None, boot_relative_high=None)
    return out


def per_user_frame(evals: Mapping[tuple[str, int], "EvalResult"]) -> pd.DataFrame:
    """Stack the per-user rows of several evaluations into the frame :func:`paired_difference` reads.

    Args:
        evals: ``{(method, seed): EvalResult}``, e.g. ``{("transfer", 0): ev0, ("text", 0): ev1}``.

    Returns:
        Rows ``method, seed, user, rank, <metric columns>`` — one per user and evaluation.

    Raises:
        ValueError: If ``evals`` is empty.
    """
    if not evals:
        raise ValueError("per_user_frame: no evaluations given")
    frames = []
    for (method, seed), result in evals.items():
        frame = result.per_user.drop(columns=["ties", "target_in_history"], errors="ignore").copy()
        frame.insert(0, "seed", seed)
        frame.insert(0, "method", method)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _matrix(per_user: pd.DataFrame, method: str, metric: str) -> pd.DataFrame:
    rows = per_user[per_user["method"] == method]
    if rows.empty:
        raise ValueError(f"no per-user rows for {method!r}")
    return rows.pivot_table(index="user", columns="seed", values=metric, aggfunc="mean")  # (U, S)


def seed_difference(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> dict:
    """``mean(a) − mean(b)`` of per-seed values with a Welch *t* interval over the seeds.

    For results that keep no per-user rows (format-1 files): the interval covers seed-to-seed
    variation only, not which users were tested, so it is narrower than :func:`paired_difference`'s.

    Args:
        a, b: One value per seed for each method (e.g. test NDCG@10).
        level: Confidence level.

    Returns:
        ``{"diff", "diff_low", "diff_high", "seeds", "level", "method": "welch-t over seeds"}``; with
        fewer than 2 seeds on either side the bounds are NaN (no spread, no interval).
    """
    va, vb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = float(va.mean() - vb.mean())
    out = {"diff": diff, "diff_low": math.nan, "diff_high": math.nan, "seeds": int(min(len(va), len(vb))),
           "level": level, "method": "welch-t over seeds"}
    if min(len(va), len(vb)) < 2:
        return out
    low, high = welch_interval(diff, va.var(ddof=1), len(va), vb.var(ddof=1), len(vb), level)
    return {**out, "diff_low": low, "diff_high": high}


def value_difference(values: Sequence[float], value: float, level: float = 0.95) -> dict:
    """``mean(values) − value`` for per-seed values against one fixed number (e.g. a published result),
    with a one-sample *t* interval over the seeds.

    The interval covers our seed-to-seed variation only: a published number comes without its own
    spread, so "no detectable difference" here is a statement about our seeds, not about the paper's.

    Args:
        values: One value per seed (e.g. test Recall@10).
        value: The fixed number compared with.
        level: Confidence level.

    Returns:
        :func:`seed_difference`'s keys, ``"method": "one-sample t over seeds"``; NaN bounds with one seed
        or when every seed gave the same value (no spread to build an interval from).
    """
    v = np.asarray(values, dtype=float)
    diff = float(v.mean() - value)
    out = {"diff": diff, "diff_low": math.nan, "diff_high": math.nan, "seeds": len(v), "level": level,
           "method": "one-sample t over seeds"}
    if len(v) < 2 or np.ptp(v) == 0:  # equal seeds (e.g. a recall of the same hit count) show no spread:
        return out                   # a zero-width interval would claim a certainty they do not have
    half = _t_half(v, level)
    return {**out, "diff_low": diff - half, "diff_high": diff + half}


def verdict(c: dict) -> str:
    """``"higher"``, ``"lower"`` or ``"no detectable difference"`` (the interval contains 0) from a
    :func:`paired_difference` or :func:`seed_difference` result; ``"no interval"`` where none could be
    computed (one seed): nothing is said about the difference then, not even "no detectable" one."""
    if c["diff_low"] is None or math.isnan(c["diff_low"]):
        return "no interval"
    if c["diff_low"] > 0:
        return "higher"
    if c["diff_high"] < 0:
        return "lower"
    return "no detectable difference"


def within_margin(c: dict, margin: float) -> bool:
    """Whether the whole interval of the relative difference lies inside ``±margin`` (an equivalence claim)."""
    return -margin <= c["relative_low"] and c["relative_high"] <= margin
