"""The cold-user stage (EMCDR): mapping functions, the cold evaluation set, and scoring through evaluate()."""

from __future__ import annotations

import numpy as np
import pytest

from test_transfer import world  # noqa: F401  (module fixture: a pretrained source + knowledge)
from xdtutor.cold_users import (ColdUsersConfig, MappedColdStartRecommender, MLPMapping, RidgeMapping, cold_eval_set,
                                fit_mapping, source_reps)
from xdtutor.config import ConfigError
from xdtutor.evaluate import evaluate
from xdtutor.transfer import zero_shot


def test_ridge_mapping_recovers_a_linear_map_and_checks_input():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 6))
    W, b = rng.normal(size=(6, 4)), rng.normal(size=4)
    m = RidgeMapping(alpha=0.0)
    assert m.fit(X, X @ W + b) is m
    np.testing.assert_allclose(m.coef_, W, atol=1e-8)
    assert m.transform(X[:3]).shape == (3, 4) and m.transform(X).dtype == np.float32
    with pytest.raises(ValueError, match="rows"):
        RidgeMapping().fit(X, X[:10])
    with pytest.raises(ValueError, match="features"):
        m.transform(X[:, :5])
    with pytest.raises(RuntimeError, match="not fitted"):
        MLPMapping().transform(X)
    mlp = MLPMapping(hidden=16, epochs=150).fit(X, X @ W)
    assert mlp.transform(X).shape == (50, 4) and mlp.loss_curve_[-1] < mlp.loss_curve_[0]


def test_mapping_scores_cold_users_through_evaluate(world):  # noqa: F811
    data, knowledge, tgt_emb = world
    base = zero_shot.transfer(knowledge, data.target, text_emb=tgt_emb).model
    reps = source_reps(knowledge, "test")
    cold = cold_eval_set(data.target, reps, "test")
    assert len(cold) > 0 and all(len(h) == 0 for h in cold.histories)
    assert set(cold.users) <= set(knowledge.user_keys)
    for kind in ("ridge", "mlp"):
        mapping = fit_mapping(knowledge, data.target, base, kind, ColdUsersConfig(mlp_epochs=20))
        assert mapping.n_pairs_ > 0
        model = MappedColdStartRecommender(base, mapping, reps)
        result = evaluate(model, cold, data.target.protocol)
        assert 0.0 <= result.metrics["ndcg@10"] <= 1.0 and len(result.per_user) == len(cold)
        # evaluate passes the users: scoring them directly gives the same ranks
        direct = model.score(None, users=list(cold.users))
        assert direct.shape == (len(cold), data.target.n_items)
    with pytest.raises(KeyError, match="no source representation"):
        model.score(None, users=["nobody"])


def test_cold_users_config_is_checked():
    with pytest.raises(ConfigError, match="unknown"):
        ColdUsersConfig(mappings=("linear",))
    with pytest.raises(ConfigError, match="mlp_epochs must be an integer"):
        ColdUsersConfig(mlp_epochs=2.5)
