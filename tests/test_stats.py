"""Intervals for differences between methods that include the variance over seeds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xdtutor.evaluate import EvalResult, paired_test
from xdtutor.protocol import Protocol
from xdtutor.stats import difference_of_differences, paired_difference, per_user_frame, verdict, within_margin


def frame(values: dict[tuple[str, int], np.ndarray]) -> pd.DataFrame:
    """Per-user rows from ``{(method, seed): per-user values}`` (users u0, u1, …)."""
    return pd.DataFrame([{"method": m, "seed": s, "user": f"u{i}", "ndcg@10": float(v)}
                         for (m, s), vals in values.items() for i, v in enumerate(vals)])


def test_a_constant_difference_has_a_point_interval():
    base = np.random.default_rng(0).random(200)
    df = frame({("a", s): base + 0.01 for s in range(3)} | {("b", s): base for s in range(3)})
    c = paired_difference(df, "a", "b")
    assert c["diff"] == pytest.approx(0.01) and c["diff_low"] == pytest.approx(0.01) and c["diff_high"] == pytest.approx(0.01)
    assert c["seeds"] == 3 and c["n_users"] == 200 and verdict(c) == "higher"
    assert c["relative"] == pytest.approx(0.01 / base.mean())


def test_seed_variance_widens_the_interval_a_users_only_test_misses():
    """Three seeds disagree on the sign of the difference; within each seed users agree closely.

    The old test (paired t-test over users on seed-averaged values) calls the mean difference highly
    significant; the interval over seeds and users contains 0: no detectable difference.
    """
    rng = np.random.default_rng(1)
    base = rng.random(2000)
    shift = {0: 0.02, 1: -0.02, 2: 0.02}
    df = frame({("a", s): base + shift[s] + rng.normal(0, 1e-3, 2000) for s in range(3)}
               | {("b", s): base for s in range(3)})
    avg = {m: df[df.method == m].groupby("user")["ndcg@10"].mean() for m in ("a", "b")}
    proto = Protocol(dataset="x", split="y")
    old = paired_test(*(EvalResult({}, avg[m].rename("ndcg@10").reset_index(), proto) for m in ("a", "b")), "ndcg@10")
    assert old["p_value"] < 1e-6                              # "significant" for the old test
    c = paired_difference(df, "a", "b", n_boot=1000)
    assert c["diff_low"] < 0 < c["diff_high"] and verdict(c) == "no detectable difference"
    assert not within_margin(c, 0.001)                       # and not equivalent either


def test_the_interval_is_at_least_the_paired_t_over_seeds_which_the_bootstrap_understates():
    """Three seeds shift the difference (+.004, +.001, +.007); users add little noise. The t interval
    over the seeds' differences (checked against SciPy's one-sample t on them) is wider than the
    two-level bootstrap's, and the reported bounds are the hull of both: the bootstrap alone calls it
    "higher", the hull does not."""
    from scipy import stats as sps

    from xdtutor.stats import METHOD, with_seed_t

    rng = np.random.default_rng(3)
    base = rng.random(3000)
    shift = {0: 0.004, 1: 0.001, 2: 0.007}
    df = frame({("a", s): base + shift[s] + rng.normal(0, 0.01, 3000) for s in range(3)}
               | {("b", s): base for s in range(3)})
    c = paired_difference(df, "a", "b", n_boot=1000)
    per_seed = [c["seed_diffs"][s] for s in range(3)]
    ref = sps.ttest_1samp(per_seed, 0.0).confidence_interval(0.95)
    assert (c["seed_t_low"], c["seed_t_high"]) == (pytest.approx(ref.low), pytest.approx(ref.high))
    assert c["boot_low"] > 0 and c["seed_t_low"] < 0                # the two disagree on the verdict
    assert c["diff_low"] == min(c["boot_low"], c["seed_t_low"]) and c["diff_high"] == max(c["boot_high"],
                                                                                        c["seed_t_high"])
    assert verdict(c) == "no detectable difference" and c["interval"] == METHOD
    assert c["relative_low"] == pytest.approx(min(c["boot_relative_low"], c["seed_t_low"] / c["mean_b"]))
    # idempotent: widening again starts from the bootstrap's own bounds
    assert with_seed_t(c, per_seed) == c
    # a stored comparison is widened from the per-seed differences of its file's rows
    stored = {k: v for k, v in c.items() if not k.startswith(("boot_", "seed_"))} | {
        "diff_low": c["boot_low"], "diff_high": c["boot_high"], "relative_low": c["boot_relative_low"],
        "relative_high": c["boot_relative_high"], "interval": "two-level percentile bootstrap"}
    assert with_seed_t(stored, per_seed) == c
    with pytest.raises(ValueError, match="per-seed differences average"):
        with_seed_t(stored, [0.0, 0.0, 0.0])


@pytest.mark.slow
def test_with_three_seeds_the_hull_keeps_its_level_where_the_bootstrap_alone_does_not():
    """Coverage of the true difference (0) over simulated experiments with three seeds. Where the seeds
    shift the difference more than the users' sampling moves it, the two-level bootstrap alone covers
    well below 95 % (resampling 3 seeds); the hull stays close to 95 %. Where the users dominate, both do."""
    rng = np.random.default_rng(0)
    users, reps = 300, 300

    def coverage(seed_sd: float, user_sd: float, noise_sd: float) -> tuple[float, float]:
        boot = hull = 0
        for _ in range(reps):
            d = (rng.normal(0, user_sd, (users, 1)) + rng.normal(0, seed_sd, (1, 3))
                 + rng.normal(0, noise_sd, (users, 3)))                   # (U, S) per-user differences
            df = frame({("a", s): d[:, s] for s in range(3)} | {("b", s): np.zeros(users) for s in range(3)})
            c = paired_difference(df, "a", "b", n_boot=300, seed=int(rng.integers(1 << 30)))
            boot += c["boot_low"] <= 0 <= c["boot_high"]
            hull += c["diff_low"] <= 0 <= c["diff_high"]
        return boot / reps, hull / reps

    boot, hull = coverage(seed_sd=0.003, user_sd=0.0, noise_sd=0.01)   # seeds dominate
    assert boot < 0.85 and hull >= 0.9
    boot, hull = coverage(seed_sd=0.0005, user_sd=0.05, noise_sd=0.02)  # users dominate
    assert boot >= 0.9 and hull >= 0.9


def test_users_evaluated_in_some_seeds_only_count_where_they_were():
    df = frame({("a", 0): np.ones(4), ("b", 0): np.zeros(4)})
    other = frame({("a", 1): np.full(2, 0.5), ("b", 1): np.zeros(2)})
    other["user"] = ["v0", "v1", "v0", "v1"]                  # seed 1 evaluated other users
    c = paired_difference(pd.concat([df, other]), "a", "b", n_boot=200)
    assert c["mean_a"] == pytest.approx(0.75) and c["n_users"] == 6  # mean over seeds of each seed's mean
    with pytest.raises(ValueError, match="share no seed"):
        paired_difference(frame({("a", 0): np.ones(2), ("b", 1): np.ones(2)}), "a", "b")


def test_seed_difference_is_welchs_interval():
    """Checked against SciPy's Welch test, whose confidence interval is computed independently."""
    from scipy import stats as sps

    from xdtutor.stats import seed_difference, verdict

    a, b = [0.0494, 0.0480, 0.0508], [0.0404, 0.0401, 0.0407]
    c = seed_difference(a, b)
    ref = sps.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert (c["diff_low"], c["diff_high"]) == pytest.approx((ref.low, ref.high), rel=1e-9)
    assert c["diff"] == pytest.approx(np.mean(a) - np.mean(b)) and c["seeds"] == 3 and verdict(c) == "higher"
    one = seed_difference([0.05], [0.04])
    assert np.isnan(one["diff_low"]) and verdict(one) == "no interval"  # one seed: no verdict
    assert verdict(seed_difference([0.04, 0.05, 0.06], [0.05, 0.05, 0.05])) == "no detectable difference"


def test_value_difference_is_scipys_one_sample_interval():
    """Against a fixed (published) number: SciPy's one-sample t test gives the same interval."""
    from scipy import stats as sps

    from xdtutor.stats import value_difference, verdict

    ours, published = [0.1227, 0.1214, 0.1241], 0.1235
    c = value_difference(ours, published)
    ref = sps.ttest_1samp(ours, published).confidence_interval(0.95)
    assert (c["diff_low"], c["diff_high"]) == pytest.approx((ref.low - published, ref.high - published), rel=1e-9)
    assert c["diff"] == pytest.approx(np.mean(ours) - published) and c["seeds"] == 3
    assert verdict(c) == "no detectable difference"
    assert verdict(value_difference([0.130, 0.131, 0.132], published)) == "higher"
    assert np.isnan(value_difference([0.13], published)["diff_low"])  # one seed: no interval
    same = value_difference([0.1227] * 3, published)  # three seeds, one hit count: no spread, no certainty
    assert np.isnan(same["diff_low"]) and verdict(same) == "no interval"


def test_per_user_frame_pairs_evaluations_by_method_and_seed():
    """Evaluations stacked by ``per_user_frame`` give the same interval as rows written by hand."""
    proto = Protocol(dataset="x", split="y")
    rng = np.random.default_rng(2)
    values = {("a", s): rng.random(50) for s in (0, 1)} | {("b", s): rng.random(50) for s in (0, 1)}
    evals = {key: EvalResult({}, pd.DataFrame({"user": [f"u{i}" for i in range(50)], "rank": 1, "ties": 0,
                                               "target_in_history": False, "ndcg@10": v}), proto)
             for key, v in values.items()}
    stacked = per_user_frame(evals)
    assert list(stacked.columns) == ["method", "seed", "user", "rank", "ndcg@10"]
    assert paired_difference(stacked, "a", "b", n_boot=300) == paired_difference(frame(values), "a", "b", n_boot=300)
    with pytest.raises(ValueError, match="no evaluations"):
        per_user_frame({})


def test_difference_of_differences_compares_two_gains_user_by_user():
    """Gain 1 = +0.03 for every user, gain 2 = +0.01 plus noise that averages out within users: the
    change is +0.02; with the same gain on both sides the interval holds 0; a user missing on one
    side of a gain drops out."""
    rng = np.random.default_rng(1)
    base, other = rng.random(300), rng.random(300)
    noise = {s: rng.normal(0, 0.01, 300) for s in range(3)}
    df = frame({("a", s): base + 0.03 for s in range(3)} | {("b", s): base for s in range(3)}
               | {("c", s): other + 0.01 + noise[s] for s in range(3)} | {("d", s): other for s in range(3)})
    c = difference_of_differences(df, ("a", "b"), ("c", "d"))
    by_hand = 0.03 - np.mean([(0.01 + noise[s]).mean() for s in range(3)])
    assert c["diff"] == pytest.approx(by_hand) and c["diff_low"] < by_hand < c["diff_high"]
    assert c["diff_low"] > 0 and verdict(c) == "higher"
    assert (c["method"], c["vs"], c["relative"]) == ("a − b", "c − d", None)
    assert c["mean_a"] == pytest.approx(0.03) and c["n_users"] == 300
    same = difference_of_differences(df, ("c", "d"), ("c", "d"))
    assert same["diff"] == 0 and verdict(same) == "no detectable difference"
    one_side = df[~((df["user"] == "u0") & (df["method"] == "b"))]  # u0 missing from b only
    assert difference_of_differences(one_side, ("a", "b"), ("c", "d"))["n_users"] == 299
    with pytest.raises(ValueError, match="no per-user rows for 'e'"):
        difference_of_differences(df, ("a", "e"), ("c", "d"))
    with pytest.raises(ValueError, match="more than one row"):
        difference_of_differences(pd.concat([df, df[df["method"] == "a"]]), ("a", "b"), ("c", "d"))
