"""The decision building blocks (bandit.kernels.decide, .beta) and each policy's own decision kernels against numpy /
scipy references."""

from __future__ import annotations

import numpy as np
import pytest
from reference import (
    epsilon_greedy_rule_ref,
    linear_ts_rule_ref,
    linucb_rule_ref,
    logistic_ts_rule_ref,
    uniform_mix_ref,
)
from scipy import stats

from bandit.kernels import beta, decide, dense, status
from bandit.kernels import logistic as logistic_kernels
from bandit.kernels import ridge as ridge_kernels
from bandit.kernels.beta import beta_argmax_probs
from bandit.kernels.rng import seed_state
from bandit.policies.beta_ts import beta_ts_draw_rows
from bandit.policies.epsilon_greedy import epsilon_greedy_choose, epsilon_greedy_decide_rows, prior_variance_rows
from bandit.policies.linear_ts import linear_ts_choose, linear_ts_decide_rows
from bandit.policies.linucb import linucb_choose, linucb_decide_rows
from bandit.policies.logistic_ts import logistic_ts_choose, logistic_ts_decide_rows

#: Ridge prior precision of the epsilon-greedy kernels under test (its per-arm shares divide by x^T x / l2).
L2 = 2.0


def _ignoring_contexts(ref):
    """A rule reference (or rows kernel) that does not use the context, called with it first."""
    return lambda x, *args: ref(*args)


def _epsilon_greedy_ref(per_arm):
    def ref(x, mean, var, values, eligible, epsilon, floor):
        prior_var = (x @ x + 1.0) / L2 if per_arm else None  # the design row [x, 1]
        return epsilon_greedy_rule_ref(mean, var, values, eligible, epsilon, floor, prior_var)
    return ref


def _epsilon_greedy_kernels(per_arm):
    def choose(x, A_inv, theta, values, eligible, epsilon, floor, st, out):
        return epsilon_greedy_choose(x, A_inv, theta, values, eligible, epsilon, per_arm, L2, floor, st, out)

    def decide_rows(X, mean, var, values, eligible, epsilon, floor, sample, st, seeds, idx, probs, scores):
        prior_var = np.empty(X.shape[0])
        prior_variance_rows(X, True, L2, prior_var)
        epsilon_greedy_decide_rows(mean, var, prior_var, values, eligible, epsilon, per_arm, floor, sample, st, seeds, idx,
                                   probs, scores)
    return choose, decide_rows


#: Each policy's rule as a numpy reference: (probabilities, scores) from the context, the predictor means and variances.
RULE_REFS = {
    "LinUCB": _ignoring_contexts(linucb_rule_ref),
    "EpsilonGreedy": _epsilon_greedy_ref(True),
    "EpsilonGreedy/constant": _epsilon_greedy_ref(False),
    "LinearTS": _ignoring_contexts(linear_ts_rule_ref),
    "LogisticTS": _ignoring_contexts(logistic_ts_rule_ref),
}
#: Each policy's single-decision kernel and rows kernel (decide_rows takes the contexts first, then the same
#: hyper-parameters).
RULES = {
    "LinUCB": (linucb_choose, _ignoring_contexts(linucb_decide_rows)),
    "EpsilonGreedy": _epsilon_greedy_kernels(True),
    "EpsilonGreedy/constant": _epsilon_greedy_kernels(False),
    "LinearTS": (linear_ts_choose, _ignoring_contexts(linear_ts_decide_rows)),
    "LogisticTS": (logistic_ts_choose, _ignoring_contexts(logistic_ts_decide_rows)),
}


def _state(seed: int) -> np.ndarray:
    return seed_state(seed)


def test_fill_context_copies_appends_intercept_and_flags_non_finite():
    x = np.full(4, -7.0)
    assert dense.fill_context(np.array([1.0, 2.0, 3.0]), True, x)
    np.testing.assert_array_equal(x, [1.0, 2.0, 3.0, 1.0])
    x = np.full(3, -7.0)
    assert dense.fill_context(np.array([1.0, 2.0, 3.0]), False, x)
    np.testing.assert_array_equal(x, [1.0, 2.0, 3.0])
    for bad in (np.nan, np.inf, -np.inf):
        assert not dense.fill_context(np.array([1.0, bad, 3.0]), True, np.empty(4))


def test_uniform_pick_is_uniform_over_eligible():
    eligible = np.array([False, True, True, False, True])
    us = (np.arange(3000) + 0.5) / 3000
    picks = np.array([decide.uniform_pick(eligible, u) for u in us])
    assert np.bincount(picks, minlength=5).tolist() == [0, 1000, 1000, 0, 1000]
    assert decide.uniform_pick(eligible, 1.0 - 1e-17) == 4


def test_argmax_random_ties_splits_exact_ties_uniformly():
    st = _state(3)
    scores = np.array([1.0, 3.0, 3.0, 3.0, -np.inf])
    eligible = np.array([True, True, True, False, False])
    picks = np.array([decide.argmax_random_ties(scores, eligible, st) for _ in range(20_000)])
    counts = np.bincount(picks, minlength=5)
    assert counts[0] == counts[3] == counts[4] == 0  # not best / ineligible
    assert stats.chisquare(counts[1:3]).pvalue > 1e-3
    unique = np.array([0.5, 2.0, 1.0, 4.0, 0.0])
    before = st.copy()
    assert decide.argmax_random_ties(unique, eligible, st) == 1
    assert st[0] == before[0]  # a unique maximum draws nothing


def test_draw_categorical_follows_probabilities_and_skips_zeros():
    st = _state(5)
    p = np.array([0.2, 0.0, 0.5, 0.3, 0.0])
    draws = np.array([decide.draw_categorical(p, st) for _ in range(50_000)])
    counts = np.bincount(draws, minlength=5)
    assert counts[1] == counts[4] == 0
    assert stats.chisquare(counts[[0, 2, 3]], 50_000 * p[[0, 2, 3]]).pvalue > 1e-3


@pytest.mark.parametrize("shape", [0.3, 1.0, 2.5, 40.0, 5000.0])
def test_gamma_draw_matches_gamma_distribution(shape):
    st = _state(11)
    draws = np.array([beta.gamma_draw(shape, st) for _ in range(20_000)])
    assert stats.kstest(draws, stats.gamma(shape).cdf).pvalue > 1e-3


def test_beta_draw_rows_follow_beta_marginals_and_per_row_seeds():
    alpha, beta_ = np.array([2.0, 30.0, 0.7]), np.array([5.0, 10.0, 0.4])
    values = np.array([1.0, 1.0, 2.0])
    n = 20_000
    idx = np.empty(n, dtype=np.int64)
    scores = np.empty((n, 3))
    eligible = np.ones((1, 3), dtype=bool)
    beta_ts_draw_rows(alpha, beta_, values, eligible, 0.0, _state(1), decide.NO_SEEDS, idx, scores)
    for k in range(3):
        assert stats.kstest(scores[:, k] / values[k], stats.beta(alpha[k], beta_[k]).cdf).pvalue > 1e-3
    np.testing.assert_array_equal(idx, scores.argmax(axis=1))
    # per-row seeds: the same seed gives the same row, whatever the row position
    seeds = np.array([7, 8, 7], dtype=np.uint64)
    idx3, sc3 = np.empty(3, dtype=np.int64), np.empty((3, 3))
    beta_ts_draw_rows(alpha, beta_, values, eligible, 0.2, _state(1), seeds, idx3, sc3)
    np.testing.assert_array_equal(sc3[0], sc3[2])
    assert idx3[0] == idx3[2]


@pytest.mark.parametrize(
    "a, b, values, mask",
    [
        ([1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [True, True, True]),  # symmetric: 1/3 each
        ([3.0, 30.0, 300.0], [7.0, 70.0, 700.0], [1.0, 1.0, 1.0], [True, True, True]),  # same mean, different spread
        ([2.0, 50.0, 1.5], [20.0, 450.0, 3.0], [10.0, 12.0, 1.0], [True, True, True]),  # values matter
        ([0.5, 0.5, 5.0], [0.5, 0.5, 1.0], [1.0, 1.0, 1.0], [True, False, True]),  # singular densities, mask
        ([1.0, 20000.0, 2.0], [1.0, 20000.0, 2.0], [1.0, 1.0, 1.0], [True, True, True]),  # a very sharp arm
    ],
)
def test_beta_argmax_probs_matches_monte_carlo(a, b, values, mask):
    a, b, values, mask = map(np.asarray, (a, b, values, mask))
    p = beta_argmax_probs(a.astype(float), b.astype(float), values.astype(float), mask)
    rng = np.random.default_rng(0)
    draws = rng.beta(a, b, size=(1_000_000, 3)) * values
    draws[:, ~mask] = -np.inf
    mc = np.bincount(draws.argmax(axis=1), minlength=3) / 1_000_000
    np.testing.assert_allclose(p, mc, atol=2e-3)
    assert p.sum() == pytest.approx(1.0, abs=1e-12) and (p[~mask] == 0).all()


def test_beta_argmax_probs_symmetric_case_is_exact():
    p = beta_argmax_probs(np.array([4.0, 4.0]), np.array([9.0, 9.0]), np.ones(2), np.ones(2, dtype=bool))
    np.testing.assert_allclose(p, [0.5, 0.5], atol=1e-12)


def test_decide_rows_broadcasts_one_row_of_posterior_and_eligibility():
    mean = np.array([[0.1, 0.4, 0.2]])
    var = np.array([[0.04, 0.01, 0.09]])
    values = np.ones(3)
    n = 5
    probs = np.empty((n, 3))
    linear_ts_decide_rows(mean, var, values, np.ones((1, 3), dtype=bool), 1.0, 0.0, False, _state(0), decide.NO_SEEDS,
                          np.empty(n, dtype=np.int64), probs, np.empty((n, 3)))
    assert (probs == probs[0]).all()
    # Monte Carlo of independent normals
    rng = np.random.default_rng(1)
    s = mean[0] + np.sqrt(var[0]) * rng.standard_normal((1_000_000, 3))
    np.testing.assert_allclose(probs[0], np.bincount(s.argmax(axis=1), minlength=3) / 1_000_000, atol=2e-3)


@pytest.mark.parametrize(
    "a, b, values",
    [
        ([3.0, 30.0, 300.0], [7.0, 70.0, 700.0], [1.0, 1.0, 1.0]),
        ([2.0, 50.0, 1.5], [20.0, 450.0, 3.0], [10.0, 12.0, 1.0]),
        ([0.5, 0.7, 5.0], [0.5, 3.0, 1.0], [1.0, 1.5, 1.0]),
        ([1.0, 2000.0, 2.0], [99.0, 198000.0, 150.0], [1.0, 1.0, 1.0]),  # low conversion rates, one sharp arm
    ],
)
def test_beta_argmax_probs_matches_adaptive_quadrature(a, b, values):
    """Against scipy.integrate.quad in quantile space (an independent, adaptive reference) to 1e-7.

    ``P_k = int_0^1 prod_{j != k} F_j(Q_k(u)) du`` (``Q_k`` the quantile function of arm k): the integrand is
    bounded and monotone, so singular densities do not hurt the reference.
    """
    from scipy import integrate

    a, b, values = (np.asarray(z, dtype=float) for z in (a, b, values))
    p = beta_argmax_probs(a, b, values, np.ones(3, dtype=bool))
    ref = np.empty(3)
    for k in range(3):
        dist = stats.beta(a[k], b[k], scale=values[k])
        others = [stats.beta(a[j], b[j], scale=values[j]) for j in range(3) if j != k]
        ref[k] = integrate.quad(lambda u: np.prod([o.cdf(dist.ppf(u)) for o in others]), 0.0, 1.0, limit=1000,
                                epsabs=1e-12, epsrel=1e-10)[0]
    np.testing.assert_allclose(p, ref / ref.sum(), atol=1e-7)


def _posterior(gen, K, D):
    M = gen.normal(size=(K, D, D))
    A_inv = np.linalg.inv(M @ M.transpose(0, 2, 1) + D * np.eye(D))
    return (A_inv + A_inv.transpose(0, 2, 1)) / 2, gen.normal(scale=0.5, size=(K, D))


@pytest.mark.parametrize("rule", sorted(RULES))
def test_decide_rows_equals_the_single_choose_kernel_row_by_row(rule):
    choose, decide_rows = RULES[rule]
    gen = np.random.default_rng(sorted(RULES).index(rule))
    K, d, n = 4, 6, 70  # two blocks of the batch scoring kernel; D = d + 1 (intercept)
    A_inv, theta = _posterior(gen, K, d + 1)
    values = np.array([1.0, 2.0, 0.5, 1.5])
    X = gen.normal(size=(n, d))
    eligible = gen.random((n, K)) < 0.7
    eligible[np.arange(n), gen.integers(0, K, n)] = True
    seeds = gen.integers(0, 2**63, n).astype(np.uint64)
    idx, probs, scores = np.empty(n, dtype=np.int64), np.empty((n, K)), np.empty((n, K))
    st = _state(1)
    mean, var = np.empty((n, K)), np.empty((n, K))
    assert decide.rows_mean_var(X, A_inv, theta, mean, var) == status.STATUS_OK
    decide_rows(X, mean, var, values, eligible, 0.4, 0.1, True, st, seeds, idx, probs, scores)
    assert st[0] == 1  # per-row seeds: the policy's generator is not used
    rows = decide.decision_rows(d + 1, K)
    for i in range(n):
        out = np.empty((rows, K))
        one = choose(X[i], A_inv, theta, values, eligible[i], 0.4, 0.1, seed_state(seeds[i]), out)
        assert one == idx[i] and eligible[i, one]
        np.testing.assert_array_equal(out[0], probs[i])
        np.testing.assert_array_equal(out[1], scores[i])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    assert (probs[~eligible] == 0).all() and np.isneginf(scores[~eligible]).all()
    # probabilities only (the off-policy evaluation path, LinUCB's own row-vectorised loop): the same bits
    probs_only, scores_only = np.empty((n, K)), np.empty((n, K))
    decide_rows(X, mean, var, values, eligible, 0.4, 0.1, False, st, decide.NO_SEEDS, idx, probs_only, scores_only)
    np.testing.assert_array_equal(probs_only.view(np.int64), probs.view(np.int64))
    if rule == "LinUCB":  # deterministic scores (a sampler's scores are its draws)
        np.testing.assert_array_equal(scores_only.view(np.int64), scores.view(np.int64))
    if rule == "LinUCB":  # against the numpy posterior of [x, 1]
        Xd = np.hstack([X, np.ones((n, 1))])
        mean = Xd @ theta.T
        sd = np.sqrt(np.einsum("nd,kde,ne->nk", Xd, A_inv, Xd))
        np.testing.assert_allclose(scores[eligible], (values * (mean + 0.4 * sd))[eligible], rtol=1e-12)


@pytest.mark.parametrize("rule", sorted(RULES))
def test_each_policy_rule_matches_its_numpy_reference(rule):
    # probabilities (exact argmax shares / quadrature, epsilon and floor mixed) and scores of the rows kernel against
    # the numpy reference, on random predictors with ties, eligibility masks and values
    _, decide_rows = RULES[rule]
    gen = np.random.default_rng(11)
    n, K = 12, 5
    mean = gen.normal(scale=1.5, size=(n, K))
    mean[0, 1] = mean[0, 3]  # an exact tie
    var = gen.uniform(0.01, 0.5, size=(n, K))
    var[0, 1] = var[0, 3]
    var[1] = 10.0  # above the prior variance: epsilon-greedy's per-arm share is capped at the full rate
    X = gen.normal(scale=0.3, size=(n, 3))
    values = np.array([1.0, 2.0, 0.5, 1.0, 1.5])
    eligible = gen.random((n, K)) < 0.75
    eligible[np.arange(n), gen.integers(0, K, n)] = True
    eligible[0] = True
    for param, floor in ((0.7, 0.0), (0.3, 0.1)):
        idx, probs, scores = np.empty(n, dtype=np.int64), np.empty((n, K)), np.empty((n, K))
        st = _state(5)
        decide_rows(X, mean, var, values, eligible, param, floor, False, st, decide.NO_SEEDS, idx, probs, scores)
        assert st[0] == 5  # no sampling, no draw
        for i in range(n):
            ref_p, ref_s = RULE_REFS[rule](X[i], mean[i], var[i], values, eligible[i], param, floor)
            np.testing.assert_allclose(probs[i], ref_p, atol=1e-8, err_msg=f"{rule} row {i}")
            np.testing.assert_allclose(scores[i], ref_s, rtol=1e-13, err_msg=f"{rule} row {i}")


def test_linucb_probabilities_in_chunks_equal_the_rows_kernels_bit_for_bit():
    from bandit.policies.linucb import _CHUNK, linucb_probabilities

    gen = np.random.default_rng(8)
    K, d = 4, 6
    n = 2 * _CHUNK + 37  # three chunks, the last one short
    A_inv, theta = _posterior(gen, K, d + 1)
    values = np.array([1.0, 2.0, 0.5, 1.5])
    X = gen.normal(size=(n, d))
    eligible = gen.random((n, K)) < 0.7
    eligible[np.arange(n), gen.integers(0, K, n)] = True
    mean, var = np.empty((n, K)), np.empty((n, K))
    assert decide.rows_mean_var(X, A_inv, theta, mean, var) == status.STATUS_OK
    for mask in (eligible, eligible[:1]):
        want_p, want_s = np.empty((n, K)), np.empty((n, K))
        linucb_decide_rows(mean, var, values, mask, 0.4, 0.1, False, _state(1), decide.NO_SEEDS,
                           np.empty(n, dtype=np.int64), want_p, want_s)
        probs, scores = np.empty((n, K)), np.empty((n, K))
        assert linucb_probabilities(X, A_inv, theta, values, mask, 0.4, 0.1, probs, scores) == status.STATUS_OK
        np.testing.assert_array_equal(probs.view(np.int64), want_p.view(np.int64))
        np.testing.assert_array_equal(scores.view(np.int64), want_s.view(np.int64))
    X[_CHUNK + 5, 2] = np.inf  # in the second chunk
    assert linucb_probabilities(X, A_inv, theta, values, eligible, 0.4, 0.1, probs, scores) == status.STATUS_NON_FINITE
    X[_CHUNK + 5, 2] = 1e200
    assert linucb_probabilities(X, A_inv, theta, values, eligible, 0.4, 0.1, probs, scores) == (
        status.STATUS_SCORE_OVERFLOW)


@pytest.mark.parametrize("floor", [0.0, 0.15])
def test_argmax_probs_rows_is_the_per_row_tie_split_and_floor_bit_for_bit(floor):
    from bandit.kernels import propensity

    gen = np.random.default_rng(21)
    n, K = 300, 5
    scores = gen.integers(-2, 3, size=(n, K)).astype(float)  # many exact ties
    scores[gen.random((n, K)) < 0.05] = np.nan  # counts as -inf
    scores[gen.random((n, K)) < 0.05] = -np.inf
    scores[7] = np.nan  # every arm NaN: a tie of all eligible arms
    scores[8] = -0.0
    scores[8, 2] = 0.0  # -0.0 == 0.0: a tie
    eligible = gen.random((n, K)) < 0.6
    eligible[np.arange(n), gen.integers(0, K, n)] = True
    for mask in (eligible, eligible[:1]):  # per row, and one row broadcast
        out = np.empty((n, K))
        decide.argmax_probs_rows(scores, mask, floor, out)
        for i in range(n):
            e = mask[0 if len(mask) == 1 else i]
            ref = np.empty(K)
            propensity.argmax_tie_probs(scores[i], e, ref)
            decide.mix_floor(ref, e, floor)
            np.testing.assert_array_equal(out[i].view(np.int64), ref.view(np.int64), err_msg=f"row {i}")
        assert np.allclose(out.sum(axis=1), 1.0, atol=1e-12) and (out[~np.broadcast_to(mask, (n, K))] == 0).all()


def test_choose_kernels_report_bad_contexts_without_drawing():
    gen = np.random.default_rng(2)
    K, d, n = 3, 4, 10
    A_inv, theta = _posterior(gen, K, d + 1)
    values, eligible = np.ones(K), np.ones((1, K), dtype=bool)
    outs = np.empty(n, dtype=np.int64), np.empty((n, K)), np.empty((n, K))
    st = _state(7)
    X = gen.normal(size=(n, d))
    X[6, 1] = np.nan
    mean, var = outs[1], outs[2]
    assert decide.rows_mean_var(X, A_inv, theta, mean, var) == status.STATUS_NON_FINITE
    out = np.empty((decide.decision_rows(d + 1, K), K))
    for choose, _ in RULES.values():
        assert choose(X[6], A_inv, theta, values, eligible[0], 1.0, 0.2, st, out) == status.STATUS_NON_FINITE
    huge = np.full((n, d), 1e300)  # x^T A_inv x overflows
    assert decide.rows_mean_var(huge, A_inv, theta, mean, var) == status.STATUS_SCORE_OVERFLOW
    late = gen.normal(size=(150, d))
    late[140] = 1e200  # one row of the third block: its variance overflows, its mean does not
    assert decide.rows_mean_var(late, A_inv, theta, *(np.empty((150, K)) for _ in range(2))) == (
        status.STATUS_SCORE_OVERFLOW)
    late[140] = 1e100
    assert decide.rows_mean_var(late, A_inv, theta, *(np.empty((150, K)) for _ in range(2))) == status.STATUS_OK
    for choose, _ in RULES.values():
        assert choose(huge[0], A_inv, theta, values, eligible[0], 1.0, 0.0, st, out) == status.STATUS_SCORE_OVERFLOW
    assert st[0] == 7  # nothing was drawn


def test_context_update_kernels_equal_the_updates_on_the_design_row():
    gen = np.random.default_rng(3)
    K, d = 3, 5
    ridge = [np.tile(np.eye(d + 1), (K, 1, 1)), np.tile(np.eye(d + 1), (K, 1, 1)), np.zeros((K, d + 1)),
             np.zeros((K, d + 1)), np.zeros(K, dtype=np.int64)]
    ridge_ref = [a.copy() for a in ridge]
    logit = [np.tile(np.eye(d + 1), (K, 1, 1)), np.tile(np.eye(d + 1), (K, 1, 1)), np.zeros((K, d + 1)),
             np.zeros(K, dtype=np.int64)]
    logit_ref = [a.copy() for a in logit]
    for i in range(40):
        x = gen.normal(size=d)
        k = int(gen.integers(K))
        y = float(gen.random() < 0.3)
        xd = np.append(x, 1.0)
        assert ridge_kernels.ridge_update_context(x, k, y, *ridge, 1.0, 1.0, 16) == 0
        assert ridge_kernels.ridge_update(*ridge_ref, k, xd, y, 1.0, 1.0, 1.0, 16) == 0
        assert logistic_kernels.logistic_update_context(x, k, y, *logit, 1.0, 1.0, 16) == 0
        assert logistic_kernels.logistic_update(*logit_ref, k, xd, y, 1.0, 1.0, 16) == 0
    for got, ref in zip(ridge + logit, ridge_ref + logit_ref, strict=False):
        np.testing.assert_array_equal(got, ref)
    before = [a.copy() for a in ridge + logit]
    bad = np.array([1.0, np.inf, 0.0, 0.0, 0.0])
    assert ridge_kernels.ridge_update_context(bad, 0, 1.0, *ridge, 1.0, 1.0, 16) == status.STATUS_NON_FINITE
    assert logistic_kernels.logistic_update_context(bad, 0, 1.0, *logit, 1.0, 1.0, 16) == (
        status.STATUS_NON_FINITE
    )
    for got, ref in zip(ridge + logit, before, strict=False):
        np.testing.assert_array_equal(got, ref)


def test_the_exploration_floor_mixes_probabilities_and_draws_alike():
    # mix_floor: (1 - f) p + f / |E| on the eligible arms (numpy reference); draw_mixed draws from that mixture;
    # floor_coin / floor_pick: a sampler explores with probability f, uniformly over the eligible arms
    eligible = np.array([True, False, True, True])
    p = np.array([0.7, 0.0, 0.3, 0.0])
    mixed = p.copy()
    decide.mix_floor(mixed, eligible, 0.2)
    np.testing.assert_allclose(mixed, uniform_mix_ref(p, eligible, 0.2), rtol=1e-15)
    unchanged = p.copy()
    decide.mix_floor(unchanged, eligible, 0.0)
    assert np.array_equal(unchanged, p)  # a zero floor leaves the probabilities bit for bit
    st = _state(21)
    n = 60_000
    draws = np.array([decide.draw_mixed(p.copy(), eligible, 0.2, True, st) for _ in range(n)])
    counts = np.bincount(draws, minlength=4)
    assert counts[1] == 0
    assert stats.chisquare(counts[[0, 2, 3]], n * mixed[[0, 2, 3]]).pvalue > 1e-3
    picks = []
    for _ in range(n):
        coin = decide.floor_coin(0.25, st)
        picks.append(decide.floor_pick(coin, 0.25, eligible, st))
    picks = np.array(picks)
    explored = picks[picks >= 0]
    assert abs(explored.size / n - 0.25) < 4 * np.sqrt(0.25 * 0.75 / n)
    assert stats.chisquare(np.bincount(explored, minlength=4)[[0, 2, 3]]).pvalue > 1e-3
    before = st.copy()
    assert decide.floor_coin(0.0, st) == 1.0 and st[0] == before[0]  # no floor: no draw
