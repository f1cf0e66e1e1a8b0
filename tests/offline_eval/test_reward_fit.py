"""Reward models fitted from mergeable statistics over batches equal the in-memory cross-fitted models."""

from __future__ import annotations

import numpy as np
import pytest

from offline_eval import LoggedData
from offline_eval.reward_fit import (
    CrossFitPredictor,
    ModelBatch,
    choose_model,
    fit_cross_fit,
    fit_mrdr,
    reduce_in_memory,
)
from offline_eval.reward_models import (
    LogisticRewardModel,
    MRDRRewardModel,
    RidgeRewardModel,
    SklearnRewardModel,
    ValueAwareRewardModel,
    default_reward_model,
)


def logs(kind: str, n: int = 6000, seed: int = 0) -> LoggedData:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    a = rng.integers(0, 3, n)
    conv = rng.random(n) < 1 / (1 + np.exp(2 - X[:, 0] * (a == 1) + 0.5 * X[:, 1]))
    reward = {
        "ridge": 1.0 + X[:, 0] * (a == 1) + rng.normal(size=n),
        "logistic": conv.astype(float),
        "value": np.array([5.99, 9.99, 19.99])[a] * conv,
    }[kind]
    ids = np.array([f"id-{i}" for i in range(n)], dtype=object)
    return LoggedData(X, a, reward, np.full(n, 1 / 3), event_id=ids)


def batched(data: LoggedData, model, size: int = 1777, mrdr=None):
    folds = model.folds(data.n, data.event_id)
    X = np.ascontiguousarray(data.context)
    return reduce_in_memory([
        ModelBatch(X[i : i + size], data.action[i : i + size].astype(np.int64), data.reward[i : i + size],
                   folds[i : i + size], None if mrdr is None else mrdr[i : i + size])
        for i in range(0, data.n, size)
    ])


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("ridge", RidgeRewardModel), ("logistic", LogisticRewardModel), ("value", ValueAwareRewardModel)],
)
def test_default_model_fitted_in_passes_equals_in_memory(kind, expected):
    data = logs(kind)
    model = default_reward_model(data)
    assert type(model) is expected
    want = model.fit_predict(data)
    reduce = batched(data, model)
    chosen = choose_model(None, reduce, data.n_actions)
    assert type(chosen) is expected
    fitted = fit_cross_fit(chosen, reduce, data.n_actions)
    got = fitted.predict(data.context, chosen.folds(data.n, data.event_id))
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    back = CrossFitPredictor.from_arrays(fitted.to_arrays())
    np.testing.assert_array_equal(back.predict(data.context, model.folds_), got)


def test_value_aware_with_given_values_and_bad_rewards():
    data = logs("value")
    model = ValueAwareRewardModel(values=[5.99, 9.99, 19.99], l2=3.0)
    want = model.fit_predict(data)
    got = fit_cross_fit(model, batched(data, model), 3).predict(data.context, model.folds_)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    wrong = ValueAwareRewardModel(values=[5.99, 9.99, 24.99])
    with pytest.raises(ValueError, match="different from its value 24.99"):
        fit_cross_fit(wrong, batched(data, wrong), 3)
    with pytest.raises(ValueError, match=r"rewards in \[0, 1\]"):
        fit_cross_fit(LogisticRewardModel(), batched(data, LogisticRewardModel()), 3)


@pytest.mark.parametrize("kind", ["ridge", "logistic", "value"])
def test_mrdr_fitted_in_passes_equals_in_memory(kind):
    """The three MRDR forms (weighted ridge, weighted logistic, weighted conversion x value) from their raw weights."""
    data = logs(kind, n=4000)
    rng = np.random.default_rng(1)
    target_prob = np.where(rng.random(data.n) < 0.3, 0.0, rng.uniform(0.2, 1.0, data.n))  # some weights floored
    model = MRDRRewardModel(l2=2.0)
    want = model.fit_predict(data, target=target_prob)
    p = data.propensity
    raw = target_prob * (1.0 - p) / p**2
    fitted = fit_mrdr(model, batched(data, model, mrdr=raw), data.n_actions)
    got = fitted.predict(data.context, model.folds_)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    assert fitted.logistic == (kind != "ridge")


def test_models_without_mergeable_statistics_are_refused():
    from sklearn.linear_model import LinearRegression

    data = logs("ridge", n=100)
    with pytest.raises(TypeError, match=r"SklearnRewardModel\(LinearRegression\) cannot be fitted batch by batch"):
        choose_model(SklearnRewardModel(LinearRegression()), batched(data, RidgeRewardModel()), 3)
    with pytest.raises(TypeError, match="fitted per target: use fit_mrdr"):
        fit_cross_fit(MRDRRewardModel(), batched(data, RidgeRewardModel()), 3)
