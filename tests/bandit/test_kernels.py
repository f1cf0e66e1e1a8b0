"""The numba kernels of bandit.kernels against pure numpy / scipy references, closed forms and Monte Carlo."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numba import njit
from reference import (
    argmax_monte_carlo,
    argmax_tie_ref,
    fresh_logistic_state,
    fresh_ridge_state,
    gaussian_argmax_quad,
    linear_mean_var_ref,
    logistic_map_ref,
    logistic_update_ref,
    logistic_value_argmax_quad,
    ridge_update_ref,
    uniform_mix_ref,
)
from scipy import stats
from scipy.special import expit, logit

from bandit.kernels import dense, logistic, propensity, ridge, rng, scoring
from bandit.kernels import status as codes

MASK64 = (1 << 64) - 1


def _rel(a, b):
    return np.max(np.abs(np.asarray(a) - np.asarray(b))) / max(np.max(np.abs(b)), 1e-300)


def _spd(gen, D):
    M = gen.normal(size=(D, D))
    return M @ M.T + 0.5 * np.eye(D)


def _features(gen, n, D):
    """Rows with an intercept column (last) and correlated, differently scaled features."""
    Z = gen.normal(size=(n, D))
    Z[:, 1:] += 0.5 * Z[:, :1]
    Z *= np.linspace(0.5, 3.0, D)
    Z[:, -1] = 1.0
    return Z


# ---------------------------------------------------------------------------------------------------------------
# rng
# ---------------------------------------------------------------------------------------------------------------


def _splitmix64_ref(state: int) -> tuple[int, int]:
    state = (state + 0x9E3779B97F4A7C15) & MASK64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return state, z ^ (z >> 31)


def test_splitmix64_matches_the_published_sequence_and_a_python_reference():
    state = np.array([0], dtype=np.uint64)
    assert int(rng.next_uint64(state)) == 0xE220A8397B1DCDAF  # first output from state 0 (Steele et al.)
    assert int(rng.next_uint64(state)) == 0x6E789E6AA1B965F4
    for seed in (1, 12345, 2**63 + 17, MASK64):
        state = np.array([seed], dtype=np.uint64)
        ref_state = seed
        for _ in range(50):
            ref_state, ref_out = _splitmix64_ref(ref_state)
            assert int(rng.next_uint64(state)) == ref_out
            assert int(state[0]) == ref_state
        s, z = rng.splitmix64(np.uint64(seed))
        assert (int(s), int(z)) == _splitmix64_ref(seed)


def test_next_uniform_is_uniform_on_the_unit_interval_and_reproducible():
    state = np.array([2024], dtype=np.uint64)
    u = np.array([rng.next_uniform(state) for _ in range(100_000)])
    assert u.min() >= 0.0 and u.max() < 1.0
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    assert abs(u.mean() - 0.5) < 4 * math.sqrt(1 / 12 / u.size)
    again = np.array([2024], dtype=np.uint64)
    assert [rng.next_uniform(again) for _ in range(5)] == list(u[:5])
    top = np.array([0], dtype=np.uint64)  # the largest 53-bit draw maps below 1
    assert rng.next_uniform(top) < 1.0


def test_next_normal_is_standard_normal():
    state = np.array([7], dtype=np.uint64)
    z = np.array([rng.next_normal(state) for _ in range(200_000)])
    assert np.isfinite(z).all()
    assert abs(z.mean()) < 4 / math.sqrt(z.size)
    assert abs(z.var() - 1.0) < 4 * math.sqrt(2 / z.size)
    assert stats.kstest(z, "norm").pvalue > 1e-3
    assert abs(stats.kurtosis(z)) < 0.05  # Gaussian tails, not just the right variance


def test_event_seed_is_stable_distinct_and_checked():
    # fixed values: a change of the derivation would change every logged decision's reproduction
    assert rng.event_seed(7, "req-1") == 13692732163743425276
    assert rng.event_seed(2**64 - 1, "é") == 14268544077437294796
    seeds = {rng.event_seed(s, e) for s in (0, 1, 2) for e in ("a", "b", "ab", "1", "01")}
    assert len(seeds) == 15
    assert all(0 <= s < 2**64 for s in seeds)
    assert rng.event_seed(np.int64(3), "x") == rng.event_seed(3, "x")
    assert rng.event_seed(7, "req-2") != rng.event_seed(7, "req-1") == 13692732163743425276  # cached state not updated
    with pytest.raises(TypeError, match="event_id"):
        rng.event_seed(1, 5)
    with pytest.raises(TypeError, match="seed"):
        rng.event_seed(True, "x")
    with pytest.raises(TypeError, match="seed"):
        rng.event_seed(1.0, "x")
    with pytest.raises(ValueError, match="seed"):
        rng.event_seed(-1, "x")
    with pytest.raises(ValueError, match="seed"):
        rng.event_seed(2**64, "x")


def test_sample_categorical_is_the_inverse_cdf_and_skips_zero_probabilities():
    p = np.array([0.0, 0.25, 0.0, 0.5, 0.25, 0.0])
    us = (np.arange(4000) + 0.5) / 4000
    draws = np.array([rng.sample_categorical(p, u) for u in us])
    assert np.bincount(draws, minlength=6).tolist() == [0, 1000, 0, 2000, 1000, 0]
    assert rng.sample_categorical(p, 0.0) == 1
    # round-off: the probabilities sum to slightly less than 1 and u is just below 1
    q = np.array([0.1] * 10)
    assert sum(q.tolist()) < 1.0  # (sequential sum)
    assert rng.sample_categorical(q, 1.0 - 2**-53) == 9
    assert rng.sample_categorical(np.array([0.3, 0.7, 0.0]), 1.0 - 2**-53) == 1
    assert rng.sample_categorical(np.zeros(3), 0.5) == -1


# ---------------------------------------------------------------------------------------------------------------
# linalg
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("D", [1, 2, 7, 33])
def test_spd_inverse_and_cholesky_match_numpy(D):
    gen = np.random.default_rng(D)
    M = _spd(gen, D)
    out = np.full((D, D), np.nan)
    assert dense.spd_inverse_into(M, out) == 0
    np.testing.assert_allclose(out, np.linalg.inv(M), rtol=1e-10, atol=1e-12 * np.abs(np.linalg.inv(M)).max())
    assert np.array_equal(out, out.T)
    U = np.empty((D, D))
    assert dense.cholesky_upper(M, U)
    np.testing.assert_allclose(U, np.linalg.cholesky(M).T, rtol=1e-12, atol=1e-12)
    rhs = gen.normal(size=D)
    z = np.empty(D)
    dense.cholesky_solve(U, rhs, z)
    np.testing.assert_allclose(z, np.linalg.solve(M, rhs), rtol=1e-9)
    alias = M.copy()  # out may alias M
    assert dense.spd_inverse_into(alias, alias) == 0
    np.testing.assert_array_equal(alias, out)


def test_spd_inverse_rejects_indefinite_and_non_finite_matrices_without_writing():
    for bad in (np.array([[1.0, 2.0], [2.0, 1.0]]), np.array([[0.0, 0.0], [0.0, 1.0]]),
                np.array([[np.nan, 0.0], [0.0, 1.0]]), np.array([[np.inf, 0.0], [0.0, 1.0]])):
        out = np.full((2, 2), 7.0)
        assert dense.spd_inverse_into(bad, out) == dense.SPD_FAILED
        assert (out == 7.0).all()


@pytest.mark.parametrize("D", [1, 3, 4, 33])
def test_symmetric_matvec_sums_the_rows_in_order(D):
    gen = np.random.default_rng(D)
    S = gen.normal(size=(D, D))
    x = gen.normal(size=D)
    ref = np.zeros(D)
    for i in range(D):  # the documented order, element-wise rounding as in the kernel: bit for bit
        ref = ref + x[i] * S[i]
    out = np.empty(D)
    dense.symmetric_matvec(S, x, out)
    np.testing.assert_array_equal(out, ref)


def _ridge_kernel_state(K, D, l2):
    s = fresh_ridge_state(K, D, l2)
    return {k: v.copy() for k, v in s.items()}


def _ridge_call(s, k, x, r, w, gamma, l2, every):
    return ridge.ridge_update(s["A"], s["A_inv"], s["b"], s["theta"], s["n"], k, x, r, w, gamma, l2, every)


@pytest.mark.parametrize("K, D, gamma", [(1, 1, 1.0), (3, 4, 1.0), (4, 9, 1.0), (3, 4, 0.9), (2, 6, 0.995)])
def test_ridge_update_matches_the_textbook_reference(K, D, gamma):
    gen = np.random.default_rng(K * 100 + D)
    l2, every = 0.7, 5
    got = _ridge_kernel_state(K, D, l2)
    ref = fresh_ridge_state(K, D, l2)
    X = _features(gen, 300, D) if D > 1 else gen.normal(size=(300, 1))
    for i in range(300):
        k = int(gen.integers(K))
        r, w = gen.normal(), gen.uniform(0.2, 3.0)
        assert _ridge_call(got, k, X[i], r, w, gamma, l2, every) == codes.STATUS_OK
        ridge_update_ref(ref, k, X[i], r, w, gamma, l2, every)
    for name in ("A", "A_inv", "b", "theta"):
        assert _rel(got[name], ref[name]) < 1e-9, name
    np.testing.assert_array_equal(got["n"], ref["n"])
    for k in range(K):  # kept exactly symmetric
        assert np.array_equal(got["A"][k], got["A"][k].T) and np.array_equal(got["A_inv"][k], got["A_inv"][k].T)


def test_ridge_update_rejects_bad_input_and_leaves_the_state_untouched():
    gen = np.random.default_rng(1)
    s = _ridge_kernel_state(3, 4, 1.0)
    for i in range(20):
        _ridge_call(s, i % 3, _features(gen, 1, 4)[0], 1.0, 1.0, 1.0, 1.0, 7)
    before = {k: v.copy() for k, v in s.items()}
    x = np.ones(4)
    cases = [
        ((1, np.array([1.0, np.nan, 0.0, 1.0]), 1.0, 1.0, 1.0), codes.STATUS_NON_FINITE),
        ((1, np.array([1.0, np.inf, 0.0, 1.0]), 1.0, 1.0, 1.0), codes.STATUS_NON_FINITE),
        ((1, x, np.nan, 1.0, 1.0), codes.STATUS_NON_FINITE),
        ((1, x, 1.0, np.inf, 1.0), codes.STATUS_NON_FINITE),
        ((3, x, 1.0, 1.0, 1.0), codes.STATUS_INVALID),
        ((-1, x, 1.0, 1.0, 1.0), codes.STATUS_INVALID),
        ((1, x, 1.0, 0.0, 1.0), codes.STATUS_INVALID),
        ((1, x, 1.0, -2.0, 1.0), codes.STATUS_INVALID),
        ((1, x, 1.0, 1.0, 0.0), codes.STATUS_INVALID),
        ((1, x, 1.0, 1.0, 1.5), codes.STATUS_INVALID),
        ((1, np.ones(3), 1.0, 1.0, 1.0), codes.STATUS_INVALID),
    ]
    for (k, xx, r, w, gamma), status in cases:
        assert _ridge_call(s, k, xx, r, w, gamma, 1.0, 7) == status
        for name in before:
            np.testing.assert_array_equal(s[name], before[name])
    huge = np.full(4, 1e200)  # x x^T overflows: reported, not stored
    assert _ridge_call(s, 1, huge, 1.0, 1.0, 1.0, 1.0, 7) == codes.STATUS_NOT_PD
    assert _ridge_call(s, 1, huge, 1.0, 1.0, 0.9, 1.0, 7) == codes.STATUS_NOT_PD
    for name in before:
        np.testing.assert_array_equal(s[name], before[name])


def _ridge_batch(s, arms, X, r, w, gamma, l2, every):
    return ridge.ridge_update_batch(s["A"], s["A_inv"], s["b"], s["theta"], s["n"], arms, X, r, w, gamma, l2,
                                     every)


@pytest.mark.parametrize("K, D, gamma, n", [(6, 33, 1.0, 1000), (3, 5, 1.0, 37), (4, 6, 0.97, 300), (1, 2, 0.5, 20)])
def test_ridge_update_batch_equals_sequential_updates(K, D, gamma, n):
    gen = np.random.default_rng(n)
    l2, every = 1.3, 64
    seq = _ridge_kernel_state(K, D, l2)
    bat = _ridge_kernel_state(K, D, l2)
    warm = _features(gen, 50, D)
    for i in range(50):  # a common non-trivial starting state
        for s in (seq, bat):
            _ridge_call(s, i % K, warm[i], 0.3, 1.0, gamma, l2, every)
    arms = gen.integers(0, max(K - 1, 1), n)  # the last arm (if K > 1) is not touched
    X = _features(gen, n, D)
    r = gen.normal(size=n)
    w = gen.uniform(0.1, 4.0, n)
    untouched = {name: v[K - 1].copy() for name, v in bat.items()} if K > 1 else None
    for i in range(n):
        assert _ridge_call(seq, int(arms[i]), X[i], r[i], w[i], gamma, l2, every) == 0
    assert _ridge_batch(bat, arms, X, r, w, gamma, l2, every) == 0
    for name in ("A", "A_inv", "b", "theta"):
        assert _rel(bat[name], seq[name]) < 1e-9, name
        if gamma < 1.0:  # the sequential arithmetic, then the same Cholesky inverse: bit for bit
            np.testing.assert_array_equal(bat[name], seq[name])
    touched = np.unique(arms)
    assert (bat["n"][touched] == 0).all()
    if untouched is not None:
        for name, v in untouched.items():
            np.testing.assert_array_equal(bat[name][K - 1], v)
    for k in range(K):
        assert np.array_equal(bat["A"][k], bat["A"][k].T) and np.array_equal(bat["A_inv"][k], bat["A_inv"][k].T)


def test_ridge_update_keeps_theta_equal_to_the_solution_between_refactorisations():
    """theta follows the O(D) recursive least-squares step after each Sherman-Morrison update: no drift."""
    gen = np.random.default_rng(8)
    K, D, n = 2, 12, 3000
    s = _ridge_kernel_state(K, D, 0.5)
    X = _features(gen, n, D)
    for i in range(n):
        assert _ridge_call(s, i % K, X[i], gen.normal() + X[i, 0], gen.uniform(0.5, 2.0), 1.0, 0.5, 0) == 0
    assert (s["n"] == n // K).all()  # never refactorised
    for k in range(K):
        np.testing.assert_allclose(s["theta"][k], np.linalg.solve(s["A"][k], s["b"][k]), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("gamma", [1.0, 0.9])
def test_ridge_update_batch_appends_the_intercept_without_a_copy(gamma):
    gen = np.random.default_rng(9)
    K, D, n = 3, 6, 400
    X = _features(gen, n, D)  # last column: the intercept
    arms = gen.integers(0, K, n)
    r = gen.normal(size=n)
    w = gen.uniform(0.5, 2.0, n)
    full, raw = _ridge_kernel_state(K, D, 1.0), _ridge_kernel_state(K, D, 1.0)
    assert _ridge_batch(full, arms, X, r, w, gamma, 1.0, 8) == 0
    assert _ridge_batch(raw, arms, np.ascontiguousarray(X[:, :-1]), r, w, gamma, 1.0, 8) == 0
    for name in ("A", "A_inv", "b", "theta"):
        np.testing.assert_array_equal(raw[name], full[name])


def test_ridge_update_batch_empty_and_bad_rows_change_nothing():
    gen = np.random.default_rng(5)
    K, D, n = 3, 4, 40
    s = _ridge_kernel_state(K, D, 1.0)
    X = _features(gen, n, D)
    arms = gen.integers(0, K, n)
    r = gen.normal(size=n)
    w = np.ones(n)
    assert _ridge_batch(s, arms, X, r, w, 1.0, 1.0, 5) == 0
    before = {k: v.copy() for k, v in s.items()}
    assert _ridge_batch(s, arms[:0], X[:0], r[:0], w[:0], 1.0, 1.0, 5) == 0
    for gamma in (1.0, 0.9):
        bad_x = X.copy()
        bad_x[n - 3, 2] = np.nan  # near the end: the earlier rows must not have been committed
        bad_r = r.copy()
        bad_r[n - 2] = np.inf
        bad_arm = arms.copy()
        bad_arm[n - 1] = K
        bad_w = w.copy()
        bad_w[n - 1] = 0.0
        nan_w = w.copy()
        nan_w[5] = np.nan
        cases = [
            ((arms, bad_x, r, w), codes.STATUS_NON_FINITE),
            ((arms, X, bad_r, w), codes.STATUS_NON_FINITE),
            ((arms, X, r, nan_w), codes.STATUS_NON_FINITE),
            ((bad_arm, X, r, w), codes.STATUS_INVALID),
            ((arms, X, r, bad_w), codes.STATUS_INVALID),
            ((arms, X, r, w[:-1]), codes.STATUS_INVALID),
            ((arms, X[:, :2].copy(), r, w), codes.STATUS_INVALID),  # D or D - 1 (intercept) columns only
        ]
        for args, status in cases:
            assert _ridge_batch(s, *args, gamma, 1.0, 5) == status
            for name in before:
                np.testing.assert_array_equal(s[name], before[name])
    assert _ridge_batch(s, arms, X, r, w, 1.2, 1.0, 5) == codes.STATUS_INVALID


@njit
def _many_rank1_updates(A, A_inv, b, theta, n_since, n_updates, D, refactor_every, seed):
    np.random.seed(seed)
    x = np.empty(D)
    for _ in range(n_updates):
        for j in range(D - 1):
            x[j] = np.random.normal() * (1.0 + j)
        x[D - 1] = 1.0
        status = ridge.ridge_update(A, A_inv, b, theta, n_since, 0, x, np.random.normal(), 1.0, 1.0, 1.0,
                                     refactor_every)
        if status != 0:
            return status
    return 0


@pytest.mark.slow
def test_a_million_rank1_updates_do_not_drift_thanks_to_refactorisation():
    D = 8
    s = _ridge_kernel_state(1, D, 1.0)
    assert _many_rank1_updates(s["A"], s["A_inv"], s["b"], s["theta"], s["n"], 1_000_000, D, 512, 3) == 0
    assert 0 < s["n"][0] < 512  # Sherman-Morrison updates since the last refactorisation
    fresh = np.linalg.inv(s["A"][0])
    assert np.linalg.norm(s["A_inv"][0] - fresh) / np.linalg.norm(fresh) < 1e-8
    np.testing.assert_allclose(s["theta"][0], np.linalg.solve(s["A"][0], s["b"][0]), rtol=1e-8, atol=1e-12)


def _logistic_kernel_state(K, D, l2):
    s = fresh_logistic_state(K, D, l2)
    return {k: v.copy() for k, v in s.items()}


@pytest.mark.parametrize("K, D, gamma", [(3, 4, 1.0), (2, 7, 1.0), (3, 4, 0.95)])
def test_logistic_update_matches_the_online_laplace_reference(K, D, gamma):
    gen = np.random.default_rng(D)
    l2, every = 1.0, 4
    got = _logistic_kernel_state(K, D, l2)
    ref = fresh_logistic_state(K, D, l2)
    X = _features(gen, 300, D) * 0.5
    beta = gen.normal(size=D)
    y = (gen.random(300) < expit(X @ beta)).astype(float)
    y[::7] = 0.35  # fractional labels are allowed
    for i in range(300):
        k = int(gen.integers(K))
        assert logistic.logistic_update(got["P"], got["Sigma"], got["m"], got["n"], k, X[i], y[i], gamma, l2,
                                      every) == 0
        logistic_update_ref(ref, k, X[i], y[i], gamma, l2, every)
    for name in ("P", "Sigma", "m"):
        assert _rel(got[name], ref[name]) < 1e-9, name


def test_logistic_update_rejects_bad_labels_and_features():
    s = _logistic_kernel_state(2, 3, 1.0)
    before = {k: v.copy() for k, v in s.items()}
    x = np.ones(3)
    for k, xx, y, gamma, status in [
        (0, x, 1.5, 1.0, codes.STATUS_INVALID),
        (0, x, -0.1, 1.0, codes.STATUS_INVALID),
        (0, x, np.nan, 1.0, codes.STATUS_NON_FINITE),
        (0, np.array([1.0, np.inf, 0.0]), 1.0, 1.0, codes.STATUS_NON_FINITE),
        (2, x, 1.0, 1.0, codes.STATUS_INVALID),
        (0, x, 1.0, 0.0, codes.STATUS_INVALID),
    ]:
        assert logistic.logistic_update(s["P"], s["Sigma"], s["m"], s["n"], k, xx, y, gamma, 1.0, 5) == status
        for name in before:
            np.testing.assert_array_equal(s[name], before[name])


def _logistic_gradient(beta, m0, P0, X, y):
    return P0 @ (beta - m0) - X.T @ (y - expit(X @ beta))


@pytest.mark.parametrize("gamma", [1.0, 0.8])
def test_logistic_update_batch_finds_the_map_and_the_laplace_covariance(gamma):
    gen = np.random.default_rng(11)
    K, D, n, l2 = 4, 5, 600, 1.0
    s = _logistic_kernel_state(K, D, l2)
    s["m"][:] = 0.2 * gen.normal(size=(K, D))
    for k in range(K):
        s["P"][k] = _spd(gen, D) + np.eye(D)
        s["Sigma"][k] = np.linalg.inv(s["P"][k])
    s["n"][:] = 3
    X = _features(gen, n, D) * 0.7
    beta = gen.normal(size=D)
    y = (gen.random(n) < expit(X @ beta)).astype(float)
    arms = gen.integers(0, K - 1, n)  # arm K-1 untouched
    m0, P0 = s["m"].copy(), s["P"].copy()
    untouched = {name: v[K - 1].copy() for name, v in s.items()}
    assert logistic.logistic_update_batch(s["P"], s["Sigma"], s["m"], s["n"], arms, X, y, gamma, l2, 25) == 0
    for k in range(K - 1):
        sel = arms == k
        prior = gamma * P0[k] + (1 - gamma) * l2 * np.eye(D)
        ref = logistic_map_ref(m0[k], prior, X[sel], y[sel])
        np.testing.assert_allclose(s["m"][k], ref, rtol=1e-6, atol=1e-8)
        assert np.linalg.norm(_logistic_gradient(s["m"][k], m0[k], prior, X[sel], y[sel])) < 1e-8
        p = expit(X[sel] @ s["m"][k])
        w = np.maximum(p * (1 - p), 1e-6)
        np.testing.assert_allclose(s["P"][k], prior + (X[sel] * w[:, None]).T @ X[sel], rtol=1e-12)
        np.testing.assert_allclose(s["Sigma"][k], np.linalg.inv(s["P"][k]), rtol=1e-9, atol=1e-13)
        assert s["n"][k] == 0
    for name, v in untouched.items():
        np.testing.assert_array_equal(s[name][K - 1], v)


def test_logistic_update_batch_appends_the_intercept_without_a_copy():
    gen = np.random.default_rng(10)
    K, D, n = 2, 5, 300
    X = _features(gen, n, D)
    arms = gen.integers(0, K, n)
    y = (gen.random(n) < expit(X[:, 0] - 0.5)).astype(float)
    full, raw = _logistic_kernel_state(K, D, 1.0), _logistic_kernel_state(K, D, 1.0)
    assert logistic.logistic_update_batch(full["P"], full["Sigma"], full["m"], full["n"], arms, X, y, 1.0, 1.0, 10) == 0
    X_raw = np.ascontiguousarray(X[:, :-1])
    assert logistic.logistic_update_batch(raw["P"], raw["Sigma"], raw["m"], raw["n"], arms, X_raw, y, 1.0, 1.0, 10) == 0
    for name in ("P", "Sigma", "m"):
        np.testing.assert_array_equal(raw[name], full[name])


def test_logistic_update_batch_with_zero_newton_steps_keeps_the_mean_and_checks_input():
    gen = np.random.default_rng(2)
    K, D, n = 2, 3, 30
    s = _logistic_kernel_state(K, D, 1.0)
    s["m"][:] = gen.normal(size=(K, D))
    X = gen.normal(size=(n, D))
    y = (gen.random(n) < 0.5).astype(float)
    arms = gen.integers(0, K, n)
    m_before = s["m"].copy()
    assert logistic.logistic_update_batch(s["P"], s["Sigma"], s["m"], s["n"], arms, X, y, 1.0, 1.0, 0) == 0
    np.testing.assert_array_equal(s["m"], m_before)
    before = {k: v.copy() for k, v in s.items()}
    bad_y = y.copy()
    bad_y[-1] = 2.0
    bad_x = X.copy()
    bad_x[-1, 0] = np.nan
    bad_arm = arms.copy()
    bad_arm[0] = -1
    for args, status in [
        ((arms, X, bad_y), codes.STATUS_INVALID),
        ((arms, bad_x, y), codes.STATUS_NON_FINITE),
        ((bad_arm, X, y), codes.STATUS_INVALID),
        ((arms, X, y[:-1]), codes.STATUS_INVALID),
    ]:
        assert logistic.logistic_update_batch(s["P"], s["Sigma"], s["m"], s["n"], *args, 1.0, 1.0, 5) == status
        for name in before:
            np.testing.assert_array_equal(s[name], before[name])


# ---------------------------------------------------------------------------------------------------------------
# scoring
# ---------------------------------------------------------------------------------------------------------------


def _symmetric_inverses(gen, K, D):
    A_inv = np.stack([np.linalg.inv(_spd(gen, D)) for _ in range(K)])
    return (A_inv + A_inv.transpose(0, 2, 1)) / 2  # exactly symmetric, like the policies' matrices


@pytest.mark.parametrize("K, D, n", [(1, 1, 3), (6, 33, 11), (3, 4, 8), (6, 33, 150), (2, 17, 64), (4, 9, 129)])
def test_linear_mean_var_matches_einsum_and_batch_rows_are_bit_identical(K, D, n):
    gen = np.random.default_rng(K + D + n)
    A_inv = _symmetric_inverses(gen, K, D)
    theta = gen.normal(size=(K, D))
    X = _features(gen, n, D) if D > 1 else gen.normal(size=(n, 1))
    mean, var = np.empty((n, K)), np.empty((n, K))
    assert scoring.linear_mean_var_batch(A_inv, theta, X, mean, var) == -1
    ref_mean, ref_var = linear_mean_var_ref(A_inv, theta, X)
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(var, ref_var, rtol=1e-12, atol=1e-14)
    m1, v1 = np.empty(K), np.empty(K)
    for i in range(n):
        scoring.linear_mean_var(A_inv, theta, X[i], m1, v1)
        assert np.array_equal(m1, mean[i]) and np.array_equal(v1, var[i])
    if D > 1:  # the intercept (last column of _features, all ones) appended on the fly: the same bits
        mean2, var2 = np.empty((n, K)), np.empty((n, K))
        assert scoring.linear_mean_var_batch(A_inv, theta, np.ascontiguousarray(X[:, :-1]), mean2, var2) == -1
        np.testing.assert_array_equal(mean2, mean)
        np.testing.assert_array_equal(var2, var)


def test_linear_mean_var_reads_only_the_upper_triangle():
    gen = np.random.default_rng(4)
    K, D, n = 3, 19, 70
    A_inv = _symmetric_inverses(gen, K, D)
    theta = gen.normal(size=(K, D))
    X = gen.normal(size=(n, D))
    upper = A_inv.copy()
    upper[:, np.tril_indices(D, -1)[0], np.tril_indices(D, -1)[1]] = np.nan
    mean, var = np.empty((n, K)), np.empty((n, K))
    mean_u, var_u = np.empty((n, K)), np.empty((n, K))
    scoring.linear_mean_var_batch(A_inv, theta, X, mean, var)
    scoring.linear_mean_var_batch(upper, theta, X, mean_u, var_u)
    np.testing.assert_array_equal(mean_u, mean)
    np.testing.assert_array_equal(var_u, var)
    m1, v1 = np.empty(K), np.empty(K)
    scoring.linear_mean_var(upper, theta, X[5], m1, v1)
    np.testing.assert_array_equal(v1, var[5])


def test_linear_mean_var_batch_reports_the_first_non_finite_row():
    gen = np.random.default_rng(6)
    K, D, n = 2, 5, 200
    A_inv = _symmetric_inverses(gen, K, D)
    theta = gen.normal(size=(K, D))
    out = np.empty((n, K)), np.empty((n, K))
    for row, bad in ((0, np.nan), (70, np.inf), (199, -np.inf)):
        X = gen.normal(size=(n, D - 1))
        X[row, 2] = bad
        X[min(row + 1, n - 1), 0] = np.nan  # a later bad row is not the one reported
        assert scoring.linear_mean_var_batch(A_inv, theta, X, *out) == row


def test_linear_mean_var_clips_negative_variances_at_zero():
    A_inv = np.array([[[1.0, 0.0], [0.0, -1.0]]])  # indefinite: x^T A x < 0 for x = (0, 1)
    theta = np.zeros((1, 2))
    mean, var = np.empty(1), np.empty(1)
    scoring.linear_mean_var(A_inv, theta, np.array([0.0, 2.0]), mean, var)
    assert var[0] == 0.0
    scoring.linear_mean_var(A_inv, theta, np.array([3.0, 1.0]), mean, var)
    assert var[0] == 8.0


# ---------------------------------------------------------------------------------------------------------------
# propensities
# ---------------------------------------------------------------------------------------------------------------


def _gauss(mu, sigma, eligible=None):
    mu = np.asarray(mu, float)
    out = np.full(mu.shape[0], np.nan)
    eligible = np.ones(mu.shape[0], bool) if eligible is None else np.asarray(eligible, bool)
    propensity.gaussian_argmax_probs(mu, np.asarray(sigma, float), eligible, out)
    return out


def _logit(mu, sigma, values, eligible=None):
    mu = np.asarray(mu, float)
    out = np.full(mu.shape[0], np.nan)
    eligible = np.ones(mu.shape[0], bool) if eligible is None else np.asarray(eligible, bool)
    propensity.logistic_value_argmax_probs(mu, np.asarray(sigma, float), np.asarray(values, float), eligible, out)
    return out


def test_gaussian_probs_of_two_arms_match_the_closed_form():
    # P(s_1 > s_2) = Phi((mu_1 - mu_2) / sqrt(sigma_1^2 + sigma_2^2)), for any ratio of the sigmas
    gen = np.random.default_rng(3)
    for _ in range(300):
        mu = gen.normal(0, 2, 2)
        sigma = np.exp(gen.normal(0, 2.5, 2))
        p = _gauss(mu, sigma)
        exact = stats.norm.cdf((mu[0] - mu[1]) / math.hypot(*sigma))
        assert abs(p[0] - exact) < 1e-8 and abs(p.sum() - 1.0) < 1e-14


@pytest.mark.parametrize(
    "spread, log_sigma_sd", [(1.0, 0.3), (0.2, 0.3), (1.0, 1.0), (3.0, 0.5)], ids=["ordinary", "close", "wide", "apart"]
)
def test_gaussian_probs_match_high_precision_quadrature(spread, log_sigma_sd):
    gen = np.random.default_rng(int(spread * 10 + log_sigma_sd * 100))
    for _ in range(8):
        K = int(gen.integers(3, 7))
        mu = gen.normal(0, spread, K)
        sigma = np.exp(gen.normal(0, log_sigma_sd, K))
        eligible = np.ones(K, bool)
        eligible[gen.integers(K)] = gen.random() < 0.5
        p = _gauss(mu, sigma, eligible)
        ref = gaussian_argmax_quad(mu, sigma, eligible)
        np.testing.assert_allclose(p, ref, rtol=0, atol=1e-7)
        assert (p[~eligible] == 0).all() and abs(p.sum() - 1.0) < 1e-14


def test_gaussian_probs_match_monte_carlo():
    gen = np.random.default_rng(4)
    for mu, sigma in [
        ([0.0, 0.3, -0.2, 0.1, 0.25, 0.0], [1.0, 0.8, 1.2, 0.9, 1.1, 0.05]),
        ([1.0, 0.0, 0.5, 2.0], [0.1, 3.0, 1.0, 0.01]),
    ]:
        draws = gen.normal(mu, sigma, size=(1_000_000, len(mu)))
        np.testing.assert_allclose(_gauss(mu, sigma), argmax_monte_carlo(draws), atol=2e-3)


def test_gaussian_probs_point_masses_and_ties():
    # equal point masses split; a lower point mass never wins
    np.testing.assert_array_equal(_gauss([1.0, 1.0, 0.5, 1.0], [0, 0, 0, 0]), [1 / 3, 1 / 3, 0, 1 / 3])
    # a point mass wins exactly when every continuous score is below it
    mu, sigma = np.array([0.3, 0.0, 1.0, -0.4]), np.array([0.0, 1.0, 0.5, 0.0])
    p = _gauss(mu, sigma)
    top = stats.norm.cdf((0.3 - 0.0) / 1.0) * stats.norm.cdf((0.3 - 1.0) / 0.5)
    assert abs(p[0] - top) < 1e-12 and p[3] == 0.0
    np.testing.assert_allclose(p, gaussian_argmax_quad(mu, sigma), atol=1e-8)
    # two tied point masses share the closed form
    p = _gauss([0.3, 0.0, 0.3], [0.0, 1.0, 0.0])
    assert abs(p[0] - stats.norm.cdf(0.3) / 2) < 1e-12 and p[0] == p[2]
    # a point mass far above or below the continuous arms
    np.testing.assert_array_equal(_gauss([50.0, 0.0, 0.1], [0.0, 1.0, 1.0]), [1.0, 0.0, 0.0])
    p = _gauss([-50.0, 0.0, 0.1], [0.0, 1.0, 1.0])
    assert p[0] == 0.0 and abs(p[1] - stats.norm.cdf(-0.1 / math.sqrt(2))) < 1e-9


def test_gaussian_probs_degenerate_inputs():
    assert _gauss([3.0], [1.0]).tolist() == [1.0]
    assert _gauss([3.0, 9.0, 1.0], [1.0, 1.0, 0.0], [False, True, False]).tolist() == [0.0, 1.0, 0.0]
    assert _gauss([3.0, 9.0], [1.0, 1.0], [False, False]).tolist() == [0.0, 0.0]
    # huge gaps: exact 0/1, no NaN
    np.testing.assert_array_equal(_gauss([0.0, 1e6, -1e6], [1.0, 1.0, 1.0]), [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(_gauss([0.0, 1e3], [1e-3, 1e-300]), [0.0, 1.0])
    # a support too narrow for double precision is a point mass
    p = _gauss([1.0, 0.1], [1e-20, 1.0])
    assert abs(p[0] - stats.norm.cdf(0.9)) < 1e-12
    p = _gauss([1.0, 0.1, 0.3], [1e-6, 1.0, 0.5])  # narrow but resolvable: still integrated
    np.testing.assert_allclose(p, gaussian_argmax_quad([1.0, 0.1, 0.3], [1e-6, 1.0, 0.5]), atol=1e-8)
    # identical arms split evenly
    np.testing.assert_allclose(_gauss(np.full(5, 0.7), np.full(5, 0.2)), np.full(5, 0.2), atol=1e-12)
    # extreme sigma ratios stay finite, normalised and monotone in the mean
    p = _gauss([0.0, 0.0, 0.0], [1e-8, 1.0, 1e8])
    assert np.isfinite(p).all() and abs(p.sum() - 1.0) < 1e-14
    np.testing.assert_allclose(p, argmax_monte_carlo(np.random.default_rng(0).normal(
        0.0, [1e-8, 1.0, 1e8], size=(400_000, 3))), atol=4e-3)


def test_gaussian_probs_are_permutation_equivariant():
    gen = np.random.default_rng(8)
    mu, sigma = gen.normal(size=6), np.exp(gen.normal(0, 1, 6))
    sigma[2] = 0.0
    p = _gauss(mu, sigma)
    perm = gen.permutation(6)
    np.testing.assert_allclose(_gauss(mu[perm], sigma[perm]), p[perm], atol=1e-9)


def test_gaussian_probs_batch_rows_equal_single_calls():
    gen = np.random.default_rng(9)
    n, K = 7, 5
    mu, sigma = gen.normal(size=(n, K)), np.exp(gen.normal(0, 0.8, (n, K)))
    sigma[0, 1] = 0.0
    eligible = gen.random((n, K)) < 0.8
    eligible[:, 0] = True
    out = np.empty((n, K))
    propensity.gaussian_argmax_probs_batch(mu, sigma, eligible, out)
    for i in range(n):
        np.testing.assert_array_equal(out[i], _gauss(mu[i], sigma[i], eligible[i]))
    propensity.gaussian_argmax_probs_batch(mu, sigma, eligible[:1], out)  # one mask for all rows
    for i in range(n):
        np.testing.assert_array_equal(out[i], _gauss(mu[i], sigma[i], eligible[0]))


def test_logistic_probs_with_equal_values_are_the_gaussian_probs():
    gen = np.random.default_rng(10)
    for _ in range(20):
        K = int(gen.integers(2, 7))
        mu, sigma = gen.normal(-2, 1, K), np.exp(gen.normal(-0.5, 0.5, K))
        v = np.full(K, gen.uniform(0.5, 20.0))
        eligible = gen.random(K) < 0.8
        values = v.copy()
        values[~eligible] = 99.0  # ineligible arms' values are irrelevant
        np.testing.assert_array_equal(_logit(mu, sigma, values, eligible), _gauss(mu, sigma, eligible))


@pytest.mark.parametrize(
    "mu_mean, mu_sd, log_sigma_mean, log_sigma_sd",
    [(-3.0, 1.0, -1.0, 0.3), (0.0, 2.0, 0.0, 1.0), (4.0, 2.0, 0.0, 1.0), (-1.0, 0.3, -2.0, 0.5)],
    ids=["upsell", "wide", "saturated", "confident"],
)
def test_logistic_probs_match_high_precision_quadrature(mu_mean, mu_sd, log_sigma_mean, log_sigma_sd):
    gen = np.random.default_rng(int(mu_mean * 10 + mu_sd * 100 + 7))
    for _ in range(6):
        K = int(gen.integers(2, 6))
        mu = gen.normal(mu_mean, mu_sd, K)
        sigma = np.exp(gen.normal(log_sigma_mean, log_sigma_sd, K))
        values = np.exp(gen.normal(0.0, 1.0, K))
        p = _logit(mu, sigma, values)
        np.testing.assert_allclose(p, logistic_value_argmax_quad(mu, sigma, values), rtol=0, atol=1e-7)
        assert abs(p.sum() - 1.0) < 1e-14


def test_logistic_probs_match_monte_carlo():
    gen = np.random.default_rng(12)
    for mu, sigma, values in [
        ([-3.0, -2.5, -3.5, -2.0, -4.0, -1.5], [0.3, 0.5, 0.2, 0.6, 0.4, 0.7], [10.0, 5.0, 20.0, 3.0, 50.0, 1.0]),
        ([2.0, 4.0, 0.0], [3.0, 1.0, 9.0], [1.0, 0.9, 1.05]),  # scores piled up against their caps
    ]:
        z = gen.normal(mu, sigma, size=(1_000_000, len(mu)))
        draws = np.asarray(values) * expit(z)
        np.testing.assert_allclose(_logit(mu, sigma, values), argmax_monte_carlo(draws), atol=2e-3)


def test_logistic_probs_point_masses_scale_invariance_and_eligibility():
    mu, sigma, values = np.array([-1.0, 0.5, -2.0]), np.array([0.0, 0.8, 0.5]), np.array([3.0, 1.0, 4.0])
    p = _logit(mu, sigma, values)
    t0 = 3.0 * expit(-1.0)  # the point mass's score: it wins when both other scores are below it
    top = stats.norm.cdf((logit(t0 / 1.0) - 0.5) / 0.8) * stats.norm.cdf((logit(t0 / 4.0) + 2.0) / 0.5)
    assert abs(p[0] - top) < 1e-12 and p.sum() == pytest.approx(1.0, abs=1e-14)
    p = _logit([-1.0, 0.5], [0.0, 0.8], [3.0, 0.5])  # the other arm's cap is below the point mass
    assert p.tolist() == [1.0, 0.0]
    gen = np.random.default_rng(13)
    mu, sigma, values = gen.normal(-1, 1, 5), np.exp(gen.normal(-0.5, 0.5, 5)), np.exp(gen.normal(0, 1, 5))
    np.testing.assert_allclose(_logit(mu, sigma, 7.5 * values), _logit(mu, sigma, values), atol=1e-10)
    eligible = np.array([True, False, True, True, False])
    p = _logit(mu, sigma, values, eligible)
    assert (p[~eligible] == 0).all()
    np.testing.assert_allclose(p[eligible], _logit(mu[eligible], sigma[eligible], values[eligible]), atol=1e-12)
    out = np.empty((2, 5))
    propensity.logistic_value_argmax_probs_batch(np.stack([mu, mu + 1]), np.stack([sigma, sigma]), values,
                                                 eligible[None], out)
    np.testing.assert_array_equal(out[0], p)
    np.testing.assert_array_equal(out[1], _logit(mu + 1, sigma, values, eligible))


def test_uniform_mix_matches_the_reference_and_may_alias():
    p = np.array([0.7, 0.0, 0.3, 0.0])
    eligible = np.array([True, True, True, False])
    for floor in (0.0, 0.1, 1.0):
        out = np.full(4, np.nan)
        propensity.uniform_mix(p, eligible, floor, out)
        np.testing.assert_allclose(out, uniform_mix_ref(p, eligible, floor), atol=1e-15)
        assert abs(out.sum() - 1.0) < 1e-15
    out = np.empty(4)
    propensity.uniform_mix(p, eligible, 0.0, out)
    np.testing.assert_array_equal(out, p)  # no floor: unchanged
    alias = p.copy()
    propensity.uniform_mix(alias, eligible, 0.2, alias)
    np.testing.assert_allclose(alias, uniform_mix_ref(p, eligible, 0.2), atol=1e-15)


def test_argmax_tie_probs_splits_exact_ties_and_matches_the_reference():
    gen = np.random.default_rng(14)
    for _ in range(200):
        scores = gen.integers(0, 4, 6).astype(float)  # many exact ties
        scores[gen.random(6) < 0.1] = np.nan
        scores[gen.random(6) < 0.1] = -np.inf
        eligible = gen.random(6) < 0.7
        if not eligible.any():
            eligible[0] = True
        out = np.empty(6)
        propensity.argmax_tie_probs(scores, eligible, out)
        np.testing.assert_allclose(out, argmax_tie_ref(scores, eligible), atol=1e-15)
    out = np.empty(3)
    propensity.argmax_tie_probs(np.array([1.0, 2.0, 3.0]), np.zeros(3, bool), out)
    assert out.tolist() == [0.0, 0.0, 0.0]
    propensity.argmax_tie_probs(np.array([np.nan, np.nan, 1.0]), np.array([True, True, False]), out)
    assert out.tolist() == [0.5, 0.5, 0.0]  # NaN counts as -inf
    scores = gen.normal(size=(5, 4))
    scores[2, 1] = scores[2, 3] = 10.0
    eligible = gen.random((5, 4)) < 0.8
    eligible[:, 1] = True
    batch = np.empty((5, 4))
    propensity.argmax_tie_probs_batch(scores, eligible, batch)
    for i in range(5):
        np.testing.assert_allclose(batch[i], argmax_tie_ref(scores[i], eligible[i]), atol=1e-15)


# ---------------------------------------------------------------------------------------------------------------
# numba cache freshness
# ---------------------------------------------------------------------------------------------------------------


def _kernel_imports(path):
    """The bandit.kernels modules a source file imports (``from bandit.kernels import a`` or ``.a import x``)."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "bandit.kernels":
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bandit.kernels."):
            found.add(node.module.split(".")[2])
    return found


def _numba_modules():
    """Every module of bandit/kernels and bandit/policies that defines numba kernels, with its path."""
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[2] / "bandit"
    paths = sorted((root / "kernels").glob("*.py")) + sorted((root / "policies").glob("*.py"))
    return root, [p for p in paths if "@njit" in p.read_text()]


def _linked_closure(root, path):
    """The kernel modules whose compiled code a module's kernels may contain: its kernel imports, transitively."""
    seen: set[str] = set()
    todo = list(_kernel_imports(path))
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(_kernel_imports(root / "kernels" / f"{name}.py"))
    seen.discard(path.stem if path.parent.name == "kernels" else "")
    return seen


def test_every_numba_module_records_its_linked_kernel_sources_so_numba_caches_refresh():
    # numba's cache=True keys each cached function on its own file's content only: a kernel that calls dense.py
    # (say) keeps running a stale compiled dense after dense.py changes, unless its own file changes too -- which
    # the recorded hash of its linked modules forces (found by introspection: every module defining @njit kernels)
    import hashlib
    import importlib

    root, paths = _numba_modules()
    assert len(paths) >= 12  # the kernel modules and the policy files with their own rules
    for path in paths:
        module = importlib.import_module(f"bandit.{path.parent.name}.{path.stem}")
        linked = _linked_closure(root, path)
        recorded = getattr(module, "LINKED_SOURCES", ())
        where = f"bandit/{path.parent.name}/{path.name}"
        assert tuple(recorded) == tuple(sorted(linked)), f"{where}: set LINKED_SOURCES = {tuple(sorted(linked))!r}"
        h = hashlib.sha256()
        for name in recorded:
            h.update((root / "kernels" / f"{name}.py").read_bytes())
        expected = h.hexdigest()[:16] if recorded else ""
        assert getattr(module, "LINKED_SOURCES_SHA256", "") == expected, (
            f"a module linked into {where} changed: set its LINKED_SOURCES_SHA256 to {expected!r} (this also "
            "refreshes its numba cache)"
        )
