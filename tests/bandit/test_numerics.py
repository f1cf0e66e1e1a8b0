"""Numerics fail safe: ill-conditioning rejected before it changes state, precision loss repaired, VW rewards in
range, exact LogisticTS propensities when the sigmoid saturates.

Every check compares against a numpy reference (``np.linalg.inv`` / ``eigvalsh`` of the raw statistics) or a
seeded Monte Carlo with a binomial standard-error tolerance.
"""

from __future__ import annotations

import numpy as np
import pytest
from policy_helpers import RIDGE, assert_same_state, state_of
from reference import fresh_logistic_state, fresh_ridge_state

from bandit import LogisticTS, VWPolicy, load
from bandit._validation import IllConditionedError
from bandit.kernels import dense, logistic, ridge
from bandit.kernels import status as codes

LINEAR = [*RIDGE, LogisticTS]
ARMS = ["a", "b", "c"]


def _precision_and_covariance(policy):
    if isinstance(policy, LogisticTS):
        return policy._P, policy._Sigma
    return policy._A, policy._A_inv


def _assert_consistent(policy, rtol=1e-8):
    """Covariances are symmetric PSD and equal ``inv(precision)`` (numpy), means and variances finite."""
    P, S = _precision_and_covariance(policy)
    for k in range(P.shape[0]):
        ref = np.linalg.inv(P[k])
        np.testing.assert_allclose(S[k], ref, rtol=rtol, atol=rtol * np.abs(ref).max())
        eig = np.linalg.eigvalsh(S[k])
        assert eig.min() >= -1e-15 * eig.max(), eig
    assert np.isfinite(policy.coef_).all()


def _normal_updates(policy, n, scale=1.0, offset=0.0, seed=0):
    gen = np.random.default_rng(seed)
    X = offset + scale * gen.normal(size=(n, policy.n_features))
    arms = gen.integers(0, policy.n_arms, size=n)
    rewards = (gen.random(n) < 0.3).astype(float)
    for i in range(n):
        policy.update(X[i], int(arms[i]), float(rewards[i]))  # raises on any rejection
    return X, arms, rewards


# ---------------------------------------------------------------------------------------------------------------
# 1. an ill-conditioning row is rejected before it changes anything, naming the real cause
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", LINEAR, ids=lambda c: c.__name__)
def test_an_outlier_context_is_rejected_and_does_not_poison_the_arm(cls):
    policy = cls(ARMS, n_features=4, seed=0)
    _normal_updates(policy, 50)
    before = state_of(policy)
    version = policy.policy_version
    with pytest.raises(ValueError, match=r"context norm 2e\+09 would make arm 'a''s precision matrix lose precision "
                                         r"\(condition number > 1e\+12\).*standardise the features"):
        policy.update([1e9, -1e9, 1e9, 1e9], "a", 1.0)
    assert_same_state(before, state_of(policy))
    assert policy.policy_version == version and policy.n_updates == 50
    # the old code accepted the row, then rejected most later normal updates of the arm (blaming the context)
    _normal_updates(policy, 2000, seed=1)
    _assert_consistent(policy)


@pytest.mark.parametrize("cls", LINEAR, ids=lambda c: c.__name__)
def test_a_batch_with_an_outlier_row_is_rejected_naming_the_row(cls):
    policy = cls(ARMS, n_features=4, seed=0)
    gen = np.random.default_rng(3)
    X = gen.normal(size=(20, 4))
    X[7] = [1e9, -1e9, 1e9, 1e9]
    before = state_of(policy)
    match = (r"X row 7 \(norm 2e\+09\) would make arm 'b''s precision matrix lose precision \(condition number > "
             r"1e\+12; the first such row when the batch is learned in order\); nothing was learned")
    with pytest.raises(IllConditionedError, match=match):
        policy.update_batch(X, ["a", "b"] * 10, np.ones(20) * 0.5)
    assert_same_state(before, state_of(policy))
    policy.update_batch(np.delete(X, 7, axis=0), (["a", "b"] * 10)[:19], np.ones(19) * 0.5)
    _assert_consistent(policy)


@pytest.mark.parametrize("cls", LINEAR, ids=lambda c: c.__name__)
@pytest.mark.parametrize("scale, offset", [(1.0, 0.0), (100.0, 0.0), (1.0, 100.0), (300.0, 0.0)],
                         ids=["standard", "x100", "offset100", "x300"])
def test_normal_use_is_never_rejected(cls, scale, offset):
    # standardised contexts, contexts of magnitude ~100 (scaled, or ~100 + noise: strongly collinear with the
    # intercept) and a few hundred: every one of these updates is accepted
    n = 100_000 if (scale, offset) == (1.0, 0.0) else 20_000
    policy = cls(ARMS, n_features=6, seed=0)
    X, arms, rewards = _normal_updates(policy, n, scale=scale, offset=offset)
    _assert_consistent(policy, rtol=1e-6)
    batch = cls(ARMS, n_features=6, seed=0)
    batch.update_batch(X, arms, rewards)
    _assert_consistent(batch, rtol=1e-6)
    assert np.isfinite(policy.action_probabilities(X[:100])).all()


def test_the_conditioning_bound_is_an_upper_bound_of_the_scaled_condition_number():
    gen = np.random.default_rng(5)
    for _ in range(50):
        D = int(gen.integers(1, 8))
        M = gen.normal(size=(D, D)) * np.exp(gen.normal(0, 4, size=D))
        A = M @ M.T + 1e-3 * np.eye(D)
        s = 1 / np.sqrt(np.diag(A))
        bound = dense.condition_bound(A, np.linalg.inv(A))
        assert bound >= np.linalg.cond(A * s[:, None] * s[None, :]) * (1 - 1e-9)
        # and it ignores feature scaling: the same matrix in other units has the same bound
        T = np.diag(np.exp(gen.normal(0, 5, size=D)))
        assert dense.condition_bound(T @ A @ T, np.linalg.inv(T @ A @ T)) == pytest.approx(bound, rel=1e-6)


@pytest.mark.parametrize("cls", LINEAR, ids=lambda c: c.__name__)
def test_feature_scale_alone_is_never_rejected(cls):
    # features in very different units (1e-3 .. 1e5) and one that never fires: badly scaled, but Cholesky and
    # Sherman-Morrison are as accurate as for standardised features, so nothing is rejected
    policy = cls(ARMS, n_features=4, seed=0)
    gen = np.random.default_rng(9)
    units = np.array([1e-3, 1.0, 1e5, 0.0])
    for i in range(20_000):
        policy.update(gen.normal(size=4) * units, int(i % 3), float(gen.random() < 0.3))
    _assert_consistent(policy, rtol=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# 2. precision loss detected and repaired (or refused): never negative variances
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", LINEAR, ids=lambda c: c.__name__)
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("scale", [1e6, 1e4, 1e3])
def test_exactly_collinear_features_never_give_negative_variances(cls, fit_intercept, scale):
    # x = s (t, t, u): the direction (1, -1, 0) never gets data, its covariance stays 1 / l2 in exact arithmetic
    policy = cls(ARMS, n_features=3, seed=0, fit_intercept=fit_intercept)
    gen = np.random.default_rng(7)
    accepted = rejected = 0
    for _ in range(3000):
        t, u = gen.normal(size=2) * scale
        try:
            policy.update([t, t, u], "a", float(gen.random() < 0.5))
            accepted += 1
        except ValueError as exc:
            assert "condition number > 1e+12" in str(exc)
            rejected += 1
    assert accepted + rejected == 3000
    if scale <= 1e3:
        assert rejected == 0
    _assert_consistent(policy, rtol=1e-3 if scale > 1e3 else 1e-6)
    P, S = _precision_and_covariance(policy)
    null = np.zeros(P.shape[1])
    null[:2] = [1 / np.sqrt(2), -1 / np.sqrt(2)]
    np.testing.assert_allclose(null @ S[0] @ null, 1.0 / policy.l2, rtol=1e-3)  # the prior variance 1 / l2 is kept
    X = gen.normal(size=(50, 3)) * scale
    X[:, 1] = X[:, 0]
    dec = policy.choose_batch(X)
    assert np.isfinite(dec.probabilities).all() and np.isfinite(policy.choose(X[0]).scores).all()


@pytest.mark.parametrize("gamma", [1.0, 0.99])
def test_ridge_kernel_repairs_a_covariance_that_lost_precision(gamma):
    gen = np.random.default_rng(11)
    K, D, l2 = 2, 4, 1.0
    s = {k: v.copy() for k, v in fresh_ridge_state(K, D, l2).items()}
    for _ in range(30):
        x = gen.normal(size=D)
        assert ridge.ridge_update(s["A"], s["A_inv"], s["b"], s["theta"], s["n"], 0, x, 1.0, 1.0, 1.0, l2,
                                   512) == codes.STATUS_OK
    # drifted inverse: symmetric, but no longer the inverse of A (A_jj (A^-1)_jj < 1 on the last diagonal)
    s["A_inv"][0, -1, -1] = 0.5 / s["A"][0, -1, -1]
    x = gen.normal(size=D)
    A_new = gamma * s["A"][0] + (1 - gamma) * l2 * np.eye(D) + np.outer(x, x)
    b_new = gamma * s["b"][0] + 0.7 * x
    status = ridge.ridge_update(s["A"], s["A_inv"], s["b"], s["theta"], s["n"], 0, x, 0.7, 1.0, gamma, l2, 512)
    assert status == codes.STATUS_OK
    np.testing.assert_allclose(s["A"][0], A_new, rtol=1e-14)
    np.testing.assert_allclose(s["A_inv"][0], np.linalg.inv(A_new), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(s["theta"][0], np.linalg.solve(A_new, b_new), rtol=1e-10, atol=1e-12)
    assert s["n"][0] == 0  # refactorised


def test_logistic_kernel_repairs_a_covariance_that_lost_precision():
    gen = np.random.default_rng(12)
    K, D, l2 = 1, 3, 1.0
    s = {k: v.copy() for k, v in fresh_logistic_state(K, D, l2).items()}
    for _ in range(20):
        x = gen.normal(size=D)
        assert logistic.logistic_update(s["P"], s["Sigma"], s["m"], s["n"], 0, x, 1.0, 1.0, l2, 512) == 0
    s["Sigma"][0, 0, 0] *= 0.3
    x = gen.normal(size=D)
    assert logistic.logistic_update(s["P"], s["Sigma"], s["m"], s["n"], 0, x, 0.0, 1.0, l2, 512) == 0
    np.testing.assert_allclose(s["Sigma"][0], np.linalg.inv(s["P"][0]), rtol=1e-10, atol=1e-13)
    assert s["n"][0] == 0


def test_kernels_report_ill_conditioning_and_change_nothing():
    gen = np.random.default_rng(13)
    s = {k: v.copy() for k, v in fresh_ridge_state(2, 3, 1.0).items()}
    before = {k: v.copy() for k, v in s.items()}
    big = np.array([1e7, -1e7, 1.0])  # trace(A) trace(A^-1) ~ 2e14 * 2
    for gamma in (1.0, 0.9):
        assert ridge.ridge_update(s["A"], s["A_inv"], s["b"], s["theta"], s["n"], 1, big, 1.0, 1.0, gamma, 1.0,
                                   512) == codes.STATUS_ILL_CONDITIONED
    X = np.vstack([gen.normal(size=(5, 3)), big])
    for gamma in (1.0, 0.9):
        assert ridge.ridge_update_batch(s["A"], s["A_inv"], s["b"], s["theta"], s["n"], np.array([0, 1, 0, 1, 0, 1]),
                                         X, np.ones(6), np.ones(6), gamma, 1.0, 512) == codes.STATUS_ILL_CONDITIONED
    for name in before:
        np.testing.assert_array_equal(s[name], before[name])
    g = {k: v.copy() for k, v in fresh_logistic_state(2, 3, 1.0).items()}
    gb = {k: v.copy() for k, v in g.items()}
    assert logistic.logistic_update(g["P"], g["Sigma"], g["m"], g["n"], 1, big * 1e3, 1.0, 1.0, 1.0,
                                  512) == codes.STATUS_ILL_CONDITIONED
    assert logistic.logistic_update_batch(g["P"], g["Sigma"], g["m"], g["n"], np.array([0, 1, 0, 1, 0, 1]), X * 1e3,
                                        np.ones(6), 1.0, 1.0, 5) == codes.STATUS_ILL_CONDITIONED
    for name in gb:
        np.testing.assert_array_equal(g[name], gb[name])


# ---------------------------------------------------------------------------------------------------------------
# 3. VWPolicy: rewards VW cannot represent are rejected, the policy stays usable
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("exploration", ["squarecb", "epsilon"])
def test_vw_rejects_rewards_beyond_float32_and_stays_usable(exploration, tmp_path):
    policy = VWPolicy(ARMS, n_features=2, seed=0, exploration=exploration)
    gen = np.random.default_rng(0)
    for _ in range(30):
        x = gen.normal(size=2)
        policy.update(x, policy.choose(x).arm, float(gen.random() < 0.5))
    version = policy.policy_version
    for reward in (1e39, 3e38, 2e37, -1e99):  # 3e38 and 2e37 are float32 numbers, yet made VW's model inf
        with pytest.raises(ValueError, match=r"reward = .* is too large for Vowpal Wabbit.*rescale the rewards"):
            policy.update([0.5, -0.3], "a", reward)
    with pytest.raises(ValueError, match=r"reward must be in \[-1e\+100, 1e\+100\]"):  # every policy's range
        policy.update([0.5, -0.3], "a", -1e300)
    with pytest.raises(ValueError, match=r"rewards\[1\] = 1e\+39 is too large"):
        policy.update_batch([[0.1, 0.2]] * 3, ["a", "b", "c"], [1.0, 1e39, 0.0])
    assert policy.policy_version == version and policy.n_updates == 30
    policy.update([0.5, -0.3], "a", 1e6)  # large but representable: learned
    path = policy.save(tmp_path / "vw.npz")
    restored = load(path)
    for p in (policy, restored):
        for _ in range(20):
            x = gen.normal(size=2)
            d = p.choose(x)
            assert np.isfinite(d.probabilities).all() and np.isfinite(d.scores).all()
            p.update(x, d.arm, 1.0)


# ---------------------------------------------------------------------------------------------------------------
# 4. LogisticTS propensities are exact when the sigmoid saturates
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "means, sds, values",
    [
        ([40.0, 44.0], [5.0, 1.0], [1.0, 1.0]),  # both usually above 37: sigmoid(s) == 1.0 in float64
        ([38.0, 41.0, 36.0], [4.0, 2.0, 6.0], [2.0, 2.0, 1.0]),  # a tie among the equal-valued arms
        ([60.0, 59.0], [20.0, 20.0], [7.5, 7.5]),
        ([45.0, 40.0, 50.0], [3.0, 3.0, 30.0], [1.0, 1.0 - 1e-15, 1.0]),  # near-equal values, all saturated
    ],
)
def test_logistic_ts_propensities_match_draws_when_the_sigmoid_saturates(means, sds, values):
    from bandit import Arm

    K = len(means)
    arms = [Arm(name=f"arm{k}", value=v) for k, v in enumerate(values)]
    policy = LogisticTS(arms, n_features=1, seed=3, fit_intercept=False)
    policy._m[:, 0] = means
    policy._Sigma[:, 0, 0] = np.square(sds)
    n = 200_000
    batch = policy.choose_batch(np.ones((n, 1)))
    p = batch.probabilities[0]
    freq = np.bincount(batch.indices, minlength=K) / n
    se = np.sqrt(p * (1 - p) / n)
    assert np.all(np.abs(freq - p) <= 5 * se + 1e-12), (freq, p)
    # the single-decision path draws the same way (bit-identical to the batch rows)
    one = policy.choose(np.ones(1), event_id="e1")
    again = policy.choose_batch(np.ones((1, 1)), event_ids=["e1"])
    assert one.index == again.indices[0]
