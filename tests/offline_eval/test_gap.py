"""The standard error of the DR - DM gap (offline_eval.gap): numpy reference, merging, crafted arrays, and a Monte
Carlo check that it predicts the spread of the gap across replications when the reward model is fitted."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offline_eval import DM, DR, LoggedData, compare, evaluate
from offline_eval.blend import blend_weight
from offline_eval.gap import MAX_PROJECTION_FEATURES, GapMoments, gap_variance, projects_weights
from offline_eval.reward_models import (
    LogisticRewardModel,
    RidgeRewardModel,
    SklearnRewardModel,
    ValueAwareRewardModel,
)


def reference_variance(X: np.ndarray | None, action: np.ndarray, k: int, w: np.ndarray, e: np.ndarray) -> float:
    """Per-arm least-squares projection of w on [1, x] by numpy's lstsq, then the variance of the mean of
    (w - w^) e."""
    n = len(action)
    Z = np.ones((n, 1)) if X is None or X.shape[1] > MAX_PROJECTION_FEATURES else np.column_stack([np.ones(n), X])
    fitted = np.zeros(n)
    for a in range(k):
        rows = action == a
        if rows.any():
            beta = np.linalg.lstsq(Z[rows], w[rows], rcond=None)[0]
            fitted[rows] = Z[rows] @ beta
    d = (w - fitted) * e
    return float(d.var(ddof=1) / n)


@pytest.mark.parametrize("d", [None, 0, 3, MAX_PROJECTION_FEATURES + 1])
def test_equals_the_numpy_projection(d):
    rng = np.random.default_rng(3)
    n, k = 3000, 4
    X = None if d is None else rng.normal(size=(n, d))
    action = rng.choice(k - 1, n)  # the last arm has no rows
    w = rng.exponential(size=n) * (1 + (0 if X is None or d == 0 else X[:, 0] ** 2))
    e = rng.normal(size=n) * (1 + action)
    got = gap_variance(X, action, k, w, e)
    assert got == pytest.approx(reference_variance(X, action, k, w, e), rel=1e-9)
    assert got < np.var(w * e, ddof=1) / n  # projecting can only remove variation here


def test_weights_an_arm_model_can_express_leave_no_noise():
    rng = np.random.default_rng(4)
    n = 2000
    X = rng.normal(size=(n, 2))
    action = rng.integers(0, 3, n)
    w = np.array([0.5, 1.0, 2.0])[action] + 0.3 * X[:, 1]  # linear in [1, x] within each arm
    e = rng.normal(size=n)
    assert gap_variance(X, action, 3, w, e) < 1e-12 * np.var(w * e) / n
    assert math.isnan(gap_variance(X[:1], action[:1], 3, w[:1], e[:1]))


def test_batches_merge_to_the_whole_and_round_trip_as_arrays():
    rng = np.random.default_rng(5)
    n, k = 5000, 3
    X, action = rng.normal(size=(n, 2)), rng.integers(0, k, n)
    w, e = rng.exponential(size=n), rng.normal(size=n)
    whole = GapMoments.of(X, action, k, w, e)
    cuts = np.sort(rng.choice(np.arange(1, n), 6, replace=False))
    parts = [GapMoments.of(X[s], action[s], k, w[s], e[s]) for s in np.split(np.arange(n), cuts)]
    merged = parts[0]
    for part in reversed(parts[1:]):  # any order
        merged = part.merge(merged)
    assert merged.n == n
    assert merged.variance() == pytest.approx(whole.variance(), rel=1e-10)
    back = GapMoments.from_array(merged.to_array())
    assert back.variance() == merged.variance()
    with pytest.raises(ValueError, match="cannot merge"):
        whole.merge(GapMoments.empty(k + 1, 2))


@pytest.mark.parametrize("array", [[], [1.0, 2.0], [-1.0, 1.0, 1.0], [10.0, 2.0, 1.5], [10.0, 1e12, 1e6],
                                   [10.0, 1.0, 1.0, 0.0], [math.nan, 1.0, 1.0]])
def test_crafted_arrays_are_refused(array):
    with pytest.raises(ValueError, match="gap sums array"):
        GapMoments.from_array(array)


def test_bad_arrays_are_refused_before_any_sum():
    X, action, w, e = np.zeros((4, 2)), np.array([0, 1, 2, 1]), np.ones(4), np.ones(4)
    with pytest.raises(ValueError, match=r"action must lie in \[0, 2\)"):
        GapMoments.of(X, action, 2, w, e)
    with pytest.raises(ValueError, match="shape"):
        GapMoments.of(X[:3], action, 3, w, e)
    with pytest.raises(ValueError, match="shape"):
        GapMoments.of(X, action, 3, w[:2], e)


def test_which_models_project():
    # every model default_reward_model can pick (rollout_report's blend relies on it)
    assert projects_weights(None) and all(m.per_arm_linear_fit for m in (RidgeRewardModel, LogisticRewardModel,
                                                                        ValueAwareRewardModel))
    assert not SklearnRewardModel.per_arm_linear_fit and not projects_weights(object())


def test_predicts_the_spread_of_the_gap_across_replications():
    """Monte Carlo: 300 seeded replications of a 3-arm world (rewards linear in x, plus a step in x0 on arm 2 that the
    ridge model cannot fit, so DM is biased for a target that picks arm 2 when x0 > 0). The cross-fitted ridge model absorbs the residuals' per-arm means and
    slopes; the projected standard error matches the replications' spread of DR - DM within 12 %, where the plain
    standard error of the terms w e overstates it by more than half."""
    n, k, reps = 1500, 3, 300
    gaps, projected, plain = [], [], []
    for rep in range(reps):
        r_rng = np.random.default_rng(1000 + rep)
        X = r_rng.normal(size=(n, 2))
        logging = np.full((n, k), 1.0 / k)
        action = r_rng.integers(0, k, n)
        mean = 1.0 + np.array([0.0, 0.5, 1.0])[action] + X[:, 0] * (action - 1) + (X[:, 0] > 0) * (action == 2)
        reward = mean + r_rng.normal(size=n)
        data = LoggedData(X, action, reward, logging[np.arange(n), action], probabilities=logging)
        target = np.eye(k)[(X[:, 0] > 0).astype(int) * 2]  # arm 2 when x0 > 0, else arm 0
        table = evaluate(data, {"t": target}, estimators=[DM(reward_model=RidgeRewardModel(seed=1)),
                                                              DR(reward_model=RidgeRewardModel(seed=1))])
        dm, dr = table.iloc[0], table.iloc[1]
        gaps.append(dr.value - dm.value)
        projected.append(dm.bias_se**2)
        q = RidgeRewardModel(seed=1).fit_predict(data)
        w = target[np.arange(n), action] / (1.0 / k)
        plain.append(np.var(w * (reward - q[np.arange(n), action]), ddof=1) / n)
    spread = np.std(gaps, ddof=1)
    assert abs(np.mean(gaps)) > 2 * spread / math.sqrt(reps)  # DM is biased here
    assert math.sqrt(np.mean(projected)) == pytest.approx(spread, rel=0.12)
    assert math.sqrt(np.mean(plain)) > 1.5 * spread


def test_evaluate_and_compare_use_it_with_the_default_model():
    """evaluate's DM bias_se and compare's blend weight come from the projected variance with the default model
    (ridge here: real-valued rewards), from the same cross-fitted residuals."""
    rng = np.random.default_rng(8)
    n, k = 4000, 3
    X = rng.normal(size=(n, 2))
    logging = np.full((n, k), 1.0 / k)
    action = rng.integers(0, k, n)
    reward = X[:, 0] * (action - 1) + (X[:, 1] > 0) * (action == 2) + rng.normal(size=n)
    data = LoggedData(X, action, reward, logging[np.arange(n), action], probabilities=logging)
    a = np.eye(k)[(X[:, 1] > 0).astype(int) * 2]
    b = np.full((n, k), 1.0 / k)
    table = evaluate(data, {"a": a}, estimators=[DM(), DR()])
    dm, dr = table.iloc[0], table.iloc[1]
    q = RidgeRewardModel(seed=0).fit_predict(data)  # the default model for real-valued rewards, same folds
    e = reward - q[np.arange(n), action]
    wa, wb = a[np.arange(n), action] * k, b[np.arange(n), action] * k
    assert dm.value == pytest.approx((a * q).sum(1).mean(), rel=1e-12)
    assert dm.bias_se == pytest.approx(math.sqrt(reference_variance(X, action, k, wa, e)), rel=1e-9)
    diff = compare(data, a, b)
    gap = (dr.value - dm.value) - (DR().estimate(data, b).value - DM().estimate(data, b).value)
    v = reference_variance(X, action, k, wa - wb, e)
    assert diff.params["lam"] == pytest.approx(blend_weight(gap, v, compare(data, a, b, estimator=DR()).se ** 2),
                                               rel=1e-9)


@settings(derandomize=True, max_examples=60, deadline=None)
@given(n=st.integers(2, 60), k=st.integers(1, 4), d=st.integers(0, 3), cuts=st.lists(st.integers(1, 59), max_size=4),
       seed=st.integers(0, 2**16), collinear=st.booleans())
def test_any_split_and_merge_order_gives_the_numpy_value(n, k, d, cuts, seed, collinear):
    """Few rows per arm, arms without rows, duplicated (collinear) features: the merged sums still give the
    variance of the numpy projection (up to the tiny ridge that keeps a rank-deficient arm solvable)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    if collinear and d >= 2:
        X[:, 1] = X[:, 0]
    action = rng.integers(0, k, n)
    w, e = rng.exponential(size=n), rng.normal(size=n)
    whole = GapMoments.of(X, action, k, w, e)
    bounds = sorted({c for c in cuts if c < n})
    parts = [GapMoments.of(X[s], action[s], k, w[s], e[s]) for s in np.split(np.arange(n), bounds)]
    order = rng.permutation(len(parts))
    merged = parts[order[0]]
    for i in order[1:]:
        merged = merged.merge(parts[i])
    v = merged.variance()
    assert v >= 0.0 and v == pytest.approx(whole.variance(), rel=1e-9, abs=1e-15)
    assert v == pytest.approx(reference_variance(X, action, k, w, e), rel=1e-6, abs=1e-12)
