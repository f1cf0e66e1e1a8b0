"""Mergeable policy statistics (bandit.stats): update_batch == statistics applied, merge laws, accuracy, bytes."""

from __future__ import annotations

import copy
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bandit import Arm, BetaTS, HybridLinearTS, HybridLinUCB, LinearTS, LinUCB, LogisticTS, UniformRandom, VWPolicy
from bandit.stats import (
    LaplaceFit,
    LogisticPassStatistics,
    PolicyStatistics,
    fit_batches,
    fit_passes,
)
from tests.bandit.policy_helpers import ARMS, POLICY_CLASSES, make, state_of, training_data

FITTABLE = [c for c in POLICY_CLASSES if c is not VWPolicy]
LINEAR = [c for c in FITTABLE if c not in (LogisticTS, BetaTS, UniformRandom)]


def _build(cls, discount: float, fit_intercept: bool | None, seed: int = 0):
    overrides = {"discount": discount} if cls is not UniformRandom else {}
    if fit_intercept is not None:
        overrides["fit_intercept"] = fit_intercept
    policy = make(cls, seed=seed, **overrides)
    X, arms, rewards = training_data(150, seed=7)  # a learned (non-prior) starting state
    policy.update_batch(X, arms, rewards)
    return policy


def _assert_states_close(got, want, rtol: float) -> None:
    a, b = state_of(got), state_of(want)
    assert a["meta"]["counters"]["n_updates"] == b["meta"]["counters"]["n_updates"]
    for name, ref in b["arrays"].items():
        val = a["arrays"][name]
        if ref.dtype.kind in "iub":
            np.testing.assert_array_equal(val, ref, err_msg=name)
        else:
            scale = max(float(np.max(np.abs(ref))), 1e-300) if ref.size else 1.0
            np.testing.assert_allclose(val, ref, rtol=0, atol=rtol * scale, err_msg=name)


def _pieces(n: int, rng: np.random.Generator, k: int) -> list[slice]:
    cuts = np.sort(rng.choice(np.arange(1, n), size=k - 1, replace=False))
    edges = [0, *cuts.tolist(), n]
    return [slice(lo, hi) for lo, hi in zip(edges[:-1], edges[1:], strict=True)]


CASES = [
    (cls, discount, intercept)
    for cls in FITTABLE
    for discount in (1.0, 0.97)
    for intercept in ((True, False) if "fit_intercept" in cls._test_params() or cls in LINEAR + [LogisticTS] else (None,))
    if not (cls is UniformRandom and discount != 1.0)
]


@pytest.mark.parametrize(
    ("cls", "discount", "fit_intercept"), CASES,
    ids=[f"{c.__name__}-g{d}-i{i}" for c, d, i in CASES],
)
def test_statistics_applied_equal_update_batch(cls, discount, fit_intercept):
    policy = _build(cls, discount, fit_intercept)
    reference = copy.deepcopy(policy)
    X, arms, rewards = training_data(400, seed=11)
    reference.update_batch(X, arms, rewards)
    pieces = _pieces(len(rewards), np.random.default_rng(3), 4)
    version = policy.policy_version
    report = fit_batches(policy, lambda: ((X[s], arms[s], rewards[s]) for s in pieces))
    assert report.n_rows == 400 and policy.policy_version != version
    _assert_states_close(policy, reference, 1e-9 if cls is not LogisticTS else 1e-7)
    np.testing.assert_allclose(policy.mean_rewards, reference.mean_rewards, rtol=1e-12)


@pytest.mark.parametrize("cls", [LinUCB, HybridLinUCB, BetaTS])
def test_discounted_merge_equals_sequential_processing(cls):
    """gamma < 1: merging a then b equals processing a then b; (a, b), c == a, (b, c)."""
    policy = make(cls, discount=0.9)
    X, arms, rewards = training_data(300, seed=5)
    empty = PolicyStatistics.for_policy(policy)
    whole = empty.accumulate(X, arms, rewards)
    a, b, c = (empty.accumulate(X[s], arms[s], rewards[s]) for s in (slice(0, 90), slice(90, 200), slice(200, 300)))
    left, right = a.merge(b).merge(c), a.merge(b.merge(c))
    for got in (left, right):
        np.testing.assert_array_equal(got.count, whole.count)
        for name in ("weight", "reward", "reward_sq", "reward_total", "xx", "xr"):
            np.testing.assert_allclose(getattr(got, name), getattr(whole, name), rtol=1e-13, atol=1e-13, err_msg=name)
    # the discounted weights are gamma^age: the per-arm weight is a geometric sum of the arm's (or all) rows
    counts = whole.count if cls is not HybridLinUCB else None
    if counts is not None:
        np.testing.assert_allclose(whole.weight, (1 - 0.9 ** counts) / (1 - 0.9), rtol=1e-13)
    # order matters with a discount: b then a differs
    assert not np.allclose(b.merge(a).reward, whole.reward, rtol=1e-6)


@settings(derandomize=True, max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), n_pieces=st.integers(1, 12))
def test_random_partitions_and_merge_trees_agree(seed, n_pieces):
    """discount 1: any partition of the rows, merged in any order and any tree shape, gives the same statistics."""
    rng = np.random.default_rng(seed)
    policy = make(LinUCB)
    n = int(rng.integers(n_pieces, 200))
    X = rng.normal(size=(n, 3)) * 10.0 ** rng.integers(-3, 4, size=3)
    arms = rng.integers(0, len(ARMS), size=n)
    rewards = rng.normal(size=n) * 100
    empty = PolicyStatistics.for_policy(policy)
    whole = empty.accumulate(X, arms, rewards)
    parts = [empty.accumulate(X[s], arms[s], rewards[s]) for s in _pieces(n, rng, n_pieces)] if n_pieces > 1 else [whole]
    rng.shuffle(parts)  # type: ignore[arg-type]
    while len(parts) > 1:  # a random merge tree
        i = int(rng.integers(0, len(parts) - 1))
        parts[i : i + 2] = [parts[i].merge(parts[i + 1])]
    got = parts[0]
    np.testing.assert_array_equal(got.count, whole.count)
    for name in ("weight", "reward", "reward_sq", "reward_total", "xx", "xr"):
        ref = getattr(whole, name)
        np.testing.assert_allclose(getattr(got, name), ref, rtol=4e-16, atol=1e-300, err_msg=name)


def _exact_sums(X: np.ndarray, arms: np.ndarray, rewards: np.ndarray, K: int):
    """Exact rational sum x x^T and r x per arm (the float64 inputs are exact rationals)."""
    D = X.shape[1]
    xx = [[[Fraction(0)] * D for _ in range(D)] for _ in range(K)]
    xr = [[Fraction(0)] * D for _ in range(K)]
    r_tot = [Fraction(0)] * K
    for x, k, r in zip(X.tolist(), arms.tolist(), rewards.tolist(), strict=True):
        fx = [Fraction(v) for v in x]
        fr = Fraction(r)
        r_tot[k] += fr
        for i in range(D):
            xr[k][i] += fr * fx[i]
            for j in range(D):
                xx[k][i][j] += fx[i] * fx[j]
    return xx, xr, r_tot


def test_compensated_sums_match_exact_arithmetic_on_cancelling_data():
    """Terms of 1e16 that cancel around small ones: plain summation loses everything, ours is exact to 1 ulp."""
    rng = np.random.default_rng(0)
    n = 3000
    big = rng.choice([1e16, -1e16, 3.0, -7.0, 0.5], size=n)
    big[-1] = -big[:-1].sum()  # make the plain float sum cancel badly (the exact sum is small)
    X = np.column_stack([np.ones(n), rng.choice([2.0**27, -(2.0**27), 1.0, 3.0], size=n)])
    arms = rng.integers(0, 2, size=n)
    rewards = big
    policy = LinUCB(["a", "b"], n_features=2, fit_intercept=False, seed=0)
    empty = PolicyStatistics.for_policy(policy)
    # pieces merged in a shuffled tree: accuracy must survive merging too
    parts = [empty.accumulate(X[s], arms[s], rewards[s]) for s in _pieces(n, rng, 500)]
    total = parts[0]
    for p in parts[1:]:
        total = p.merge(total)
    xx, xr, r_tot = _exact_sums(X, arms, rewards, 2)
    naive_err = 0.0
    for k in range(2):
        exact = float(r_tot[k])
        assert total.reward_total[k] == exact or abs(total.reward_total[k] - exact) <= 2 * math.ulp(exact)
        rows = arms == k
        naive_err = max(naive_err, abs(float(np.sum(rewards[rows])) - exact))
        for i in range(2):
            e = float(xr[k][i])
            assert abs(total.xr[k, i] - e) <= 2 * math.ulp(e) + 1e-300, (k, i, total.xr[k, i], e)
            for j in range(2):
                e = float(xx[k][i][j])
                assert abs(total.xx[k, i, j] - e) <= 2 * math.ulp(e) + 1e-300
    assert naive_err > 1.0  # the data are adversarial: plain summation is off by more than 1


def test_compensated_sums_match_float128_reference_on_random_data():
    """Random rows (products rounded once): the error is at most eps * sum|terms| (plain sum: ~n eps sum|terms|)."""
    rng = np.random.default_rng(1)
    n = 20000
    X = rng.normal(size=(n, 3)) * 10.0 ** rng.uniform(-4, 4, size=(n, 1))
    rewards = rng.standard_cauchy(n)
    arms = np.zeros(n, dtype=np.int64)
    policy = LinUCB(["a"], n_features=3, fit_intercept=False, seed=0)
    got = PolicyStatistics.for_policy(policy).accumulate(X, arms, rewards)
    Xl = X.astype(np.longdouble)
    ref_xx = np.einsum("ni,nj->ij", Xl, Xl)
    abs_xx = np.einsum("ni,nj->ij", np.abs(Xl), np.abs(Xl))
    ref_xr = (Xl * rewards.astype(np.longdouble)[:, None]).sum(axis=0)
    abs_xr = (np.abs(Xl) * np.abs(rewards.astype(np.longdouble))[:, None]).sum(axis=0)
    eps = np.finfo(np.float64).eps
    longdouble_eps = float(np.finfo(np.longdouble).eps)
    slack = 2 * eps + n * longdouble_eps  # product rounding + the reference's own error
    assert (np.abs(got.xx[0] - ref_xx) <= slack * abs_xx + eps * np.abs(ref_xx)).all()
    assert (np.abs(got.xr[0] - ref_xr) <= slack * abs_xr + eps * np.abs(ref_xr)).all()


def test_bytes_round_trip_and_untrusted_input_rejected():
    policy = make(HybridLinUCB, discount=0.95)
    X, arms, rewards = training_data(50)
    stats = PolicyStatistics.for_policy(policy).accumulate(X, arms, rewards)
    blob = stats.to_bytes()
    back = PolicyStatistics.from_bytes(blob)
    assert back.kind == "hybrid" and back.arm_names == stats.arm_names and back.discount == 0.95
    for name in ("count", "weight", "reward", "reward_sq", "reward_total", "xx", "xr"):
        np.testing.assert_array_equal(getattr(back, name), getattr(stats, name))
    assert b"pickle" not in blob and blob[:8] == b"UBSTATS1"
    with pytest.raises(ValueError, match="magic"):
        PolicyStatistics.from_bytes(b"\x80\x04garbage-pickle")
    with pytest.raises(ValueError, match="truncated|trailing"):
        PolicyStatistics.from_bytes(blob[:-8])
    with pytest.raises(ValueError, match="trailing"):
        PolicyStatistics.from_bytes(blob + b"\0" * 8)
    with pytest.raises(TypeError, match="data"):
        PolicyStatistics.from_bytes("text")  # type: ignore[arg-type]
    tampered = bytearray(blob)
    tampered[-8:] = np.array([np.nan]).tobytes()
    with pytest.raises(ValueError, match="NaN"):
        PolicyStatistics.from_bytes(bytes(tampered))
    with pytest.raises(ValueError, match="LogisticPassStatistics|expected"):
        LogisticPassStatistics.from_bytes(blob)


def test_apply_rejects_other_layouts_and_leaves_the_policy_unchanged():
    policy = _build(LinUCB, 1.0, True)
    X, arms, rewards = training_data(60)
    before = state_of(policy)
    other_arms = LinUCB(ARMS[:3], n_features=3, seed=0)
    stats = PolicyStatistics.for_policy(other_arms).accumulate(X[arms < 3], arms[arms < 3], rewards[arms < 3])
    with pytest.raises(ValueError, match="policy has arms"):
        stats.apply(policy)
    wrong_d = LinUCB(ARMS, n_features=2, seed=0)
    with pytest.raises(ValueError, match="policy has n_features"):
        PolicyStatistics.for_policy(wrong_d).accumulate(X[:, :2], arms, rewards).apply(policy)
    with pytest.raises(ValueError, match="policy has discount"):
        PolicyStatistics.for_policy(make(LinUCB, discount=0.5)).accumulate(X, arms, rewards).apply(policy)
    with pytest.raises(ValueError, match="policy has policy family"):
        PolicyStatistics.for_policy(make(HybridLinUCB)).accumulate(X, arms, rewards).apply(policy)
    with pytest.raises(ValueError, match="other has arms"):
        PolicyStatistics.for_policy(policy).merge(stats)
    assert state_of(policy)["arrays"].keys() == before["arrays"].keys()
    for k, v in before["arrays"].items():
        np.testing.assert_array_equal(state_of(policy)["arrays"][k], v)
    with pytest.raises(RuntimeError, match="snapshot"):
        PolicyStatistics.for_policy(policy).accumulate(X, arms, rewards).apply(policy.snapshot())


def test_accumulate_validates_like_update_batch_and_keeps_self():
    policy = make(LinearTS)
    empty = PolicyStatistics.for_policy(policy)
    X, arms, rewards = training_data(20)
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="X"):
        empty.accumulate(bad, arms, rewards)
    with pytest.raises(ValueError, match="arms"):
        empty.accumulate(X, [*arms[:-1], 99], rewards)
    with pytest.raises(ValueError, match="rewards"):
        empty.accumulate(X, arms, rewards[:-1])
    with pytest.raises(ValueError, match="rewards"):
        PolicyStatistics.for_policy(BetaTS(ARMS, seed=0)).accumulate(None, arms, rewards * 2 - 3)
    assert empty.n_rows == 0 and not empty.xx.any()
    # names are accepted like update_batch
    named = empty.accumulate(X, [ARMS[a].name for a in arms], rewards)
    np.testing.assert_array_equal(named.xx, empty.accumulate(X, arms, rewards).xx)


def test_policies_that_are_not_sums_of_rows_are_refused():
    with pytest.raises(TypeError, match="not a sum of per-row terms"):
        PolicyStatistics.for_policy(make(VWPolicy))
    with pytest.raises(TypeError, match="Newton passes"):
        PolicyStatistics.for_policy(make(LogisticTS))
    with pytest.raises(TypeError, match="policy"):
        PolicyStatistics.for_policy(object())


def test_the_same_ridge_statistics_fit_every_ridge_policy():
    X, arms, rewards = training_data(120)
    stats = PolicyStatistics.for_policy(make(LinUCB, alpha=2.0)).accumulate(X, arms, rewards)
    ts = make(LinearTS)
    stats.apply(ts)
    ref = make(LinearTS)
    ref.update_batch(X, arms, rewards)
    np.testing.assert_allclose(ts.coef_, ref.coef_, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------------------------------------------
# LogisticTS: the pass-based Laplace fit
# ---------------------------------------------------------------------------------------------------------------


def _map_laplace_reference(P0, m0, X, y):
    """Independent MAP + Laplace of one arm: scipy's minimiser on the exact negative log-posterior."""
    from scipy.optimize import minimize

    def objective(beta):
        eta = X @ beta
        d = beta - m0
        return 0.5 * d @ P0 @ d + np.sum(np.logaddexp(0.0, eta) - y * eta)

    def gradient(beta):
        p = 1 / (1 + np.exp(-(X @ beta)))
        return P0 @ (beta - m0) + X.T @ (p - y)

    def hessian(beta):
        p = 1 / (1 + np.exp(-(X @ beta)))
        w = np.maximum(p * (1 - p), 1e-6)
        return P0 + (X * w[:, None]).T @ X

    res = minimize(objective, m0, jac=gradient, hess=hessian, method="trust-exact", options={"gtol": 1e-12})
    return res.x, hessian(res.x)


@pytest.mark.parametrize("discount", [1.0, 0.8])
def test_logistic_pass_fit_matches_an_independent_map_laplace_reference(discount):
    rng = np.random.default_rng(4)
    n, d = 3000, 3
    X = rng.normal(size=(n, d))
    arms = rng.integers(0, 2, size=n)
    true = np.array([[1.0, -0.5, 0.3], [-0.8, 0.2, 1.1]])
    y = (rng.random(n) < 1 / (1 + np.exp(-np.einsum("nd,nd->n", X, true[arms]) + 0.5))).astype(float)
    policy = LogisticTS(["a", "b"], n_features=d, discount=discount, l2=2.0, seed=0)
    policy.update_batch(X[:200], arms[:200], y[:200])  # a non-trivial prior
    P_prior, m_prior = policy._P.copy(), policy._m.copy()
    rest = slice(200, n)
    report = fit_batches(policy, lambda: ((X[rest][s], arms[rest][s], y[rest][s]) for s in (slice(0, 1000), slice(1000, None))))
    assert 2 <= report.n_passes <= 12
    for k in range(2):
        rows = arms[rest] == k
        Xd = np.column_stack([X[rest][rows], np.ones(rows.sum())])
        P0 = discount * P_prior[k] + (1 - discount) * 2.0 * np.eye(d + 1)
        beta, H = _map_laplace_reference(P0, m_prior[k], Xd, y[rest][rows])
        np.testing.assert_allclose(policy._m[k], beta, atol=1e-6)
        np.testing.assert_allclose(policy._P[k], H, rtol=1e-6)
        np.testing.assert_allclose(policy._Sigma[k], np.linalg.inv(H), rtol=1e-6, atol=1e-12)


def test_laplace_fit_refuses_passes_over_other_rows_or_points():
    policy = make(LogisticTS)
    X, arms, y = training_data(100)
    fit = LaplaceFit(policy)
    first = fit.next_pass()
    fit.update(first.accumulate(X, arms, y))
    with pytest.raises(ValueError, match="other coefficients"):
        fit.update(first.accumulate(X, arms, y))
    if not fit.done:
        with pytest.raises(ValueError, match="same rows"):
            fit.update(fit.next_pass().accumulate(X[:50], arms[:50], y[:50]))
        with pytest.raises(RuntimeError, match="more passes"):
            fit.apply(policy)
    # the pass statistics survive a byte round trip
    p = fit.next_pass().accumulate(X, arms, y) if not fit.done else first.accumulate(X, arms, y)
    back = LogisticPassStatistics.from_bytes(p.to_bytes())
    np.testing.assert_array_equal(back.hessian, p.hessian)
    np.testing.assert_array_equal(back.coef, p.coef)


def test_fit_passes_changes_nothing_when_a_pass_fails():
    policy = make(LogisticTS)
    before = state_of(policy)

    def run_pass(empty):
        raise OSError("disk gone")

    with pytest.raises(OSError):
        fit_passes(policy, run_pass)
    for k, v in before["arrays"].items():
        np.testing.assert_array_equal(state_of(policy)["arrays"][k], v)


def test_hybrid_statistics_are_the_joint_statistics():
    """Z, B and c rebuilt from per-arm sums equal the hybrid kernel's direct accumulation (discount 1 and < 1)."""
    arms_spec = [Arm(name=a.name, features=a.features) for a in ARMS]
    for discount in (1.0, 0.9):
        policy = HybridLinearTS(arms_spec, n_features=3, discount=discount, seed=0)
        reference = copy.deepcopy(policy)
        X, arms, rewards = training_data(80, seed=2)
        reference.update_batch(X, arms, rewards)
        PolicyStatistics.for_policy(policy).accumulate(X, arms, rewards).apply(policy)
        for name in ("Z", "c", "B", "A0_inv", "beta"):
            ref = getattr(reference, "_" + name)
            np.testing.assert_allclose(getattr(policy, "_" + name), ref, rtol=0, atol=1e-10 * np.abs(ref).max())


@pytest.mark.parametrize("cls", [LinUCB, LogisticTS, BetaTS])
def test_fitting_no_rows_changes_nothing(cls):
    policy = make(cls)
    version = policy.policy_version
    report = fit_batches(policy, lambda: iter(()))
    assert report.n_rows == 0 and policy.policy_version == version and policy.n_updates == 0
