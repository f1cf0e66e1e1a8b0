"""Intervals from per-row terms: kernels against numpy references, delta method, bootstrap, Bernstein, RowTerms."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from offline_eval._bootstrap import POISSON1_THRESHOLDS, poisson1_thresholds, poisson_bootstrap_sums
from offline_eval.intervals import (
    RowTerms,
    _mixed_moments,
    _ratio_moments,
    _shifted_moments,
    bernstein_interval,
    bootstrap_interval,
    compute_interval,
    normal_interval,
)

Z95 = NormalDist().inv_cdf(0.975)


# ---------------------------------------------------------------------------------------------------------------
# kernels vs pure numpy
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 3, 4, 1001])
def test_shifted_moments_kernel_matches_numpy(n):
    x = np.random.default_rng(n).normal(loc=3.0, size=n)
    out = np.zeros(2)
    _shifted_moments(x, 2.5, out)
    np.testing.assert_allclose(out, [x.sum(), ((x - 2.5) ** 2).sum()], rtol=1e-12)


@pytest.mark.parametrize("n", [2, 5, 1003])
def test_ratio_moments_kernel_matches_numpy(n):
    rng = np.random.default_rng(n)
    num, den = rng.normal(size=n), rng.random(n)
    out = np.zeros(5)
    _ratio_moments(num, den, 0.3, out)
    u = num - 0.3 * den
    expected = [num.sum(), den.sum(), (u * u).sum(), (u * den).sum(), (den * den).sum()]
    np.testing.assert_allclose(out, expected, rtol=1e-12)


@pytest.mark.parametrize("n", [1, 5, 1002])
def test_mixed_moments_kernel_matches_numpy(n):
    rng = np.random.default_rng(n)
    t, num, den = rng.normal(size=n), rng.normal(size=n), rng.random(n)
    out = np.zeros(2)
    _mixed_moments(t, num, den, 0.7, -1.3, 0.2, out)
    x = t - 1.3 * (num - 0.7 * den)
    np.testing.assert_allclose(out, [x.sum(), ((x - 0.2) ** 2).sum()], rtol=1e-12)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_terms_plus_one_ratio_interval_matches_linearised_terms(sign):
    """The one-pass path for mean(t) + sign * ratio (SNDR, lifts of SNIPS) equals the sd of linearized()."""
    rng = np.random.default_rng(15)
    t, w, r = 5.0 + rng.normal(size=3001), rng.exponential(size=3001), rng.random(3001)
    rt = RowTerms(t, ((sign, w * r, w),))
    iv = normal_interval(rt)
    psi = rt.linearized()
    assert iv.value == rt.value()
    assert iv.se == pytest.approx(psi.std(ddof=1) / math.sqrt(3001), rel=1e-9)
    empty = RowTerms(t[:4], ((sign, np.zeros(4), np.zeros(4)),))
    assert math.isnan(normal_interval(empty).value) and math.isnan(normal_interval(empty).se)


GAMMA = np.uint64(0x9E3779B97F4A7C15)


def splitmix_outputs(seed: int, count: int) -> np.ndarray:
    """Pure-numpy SplitMix64: the first ``count`` outputs of the stream seeded with ``seed``, (count,) uint64."""
    m1, m2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + GAMMA * np.arange(1, count + 1, dtype=np.uint64)
        z = (z ^ (z >> np.uint64(30))) * m1
        z = (z ^ (z >> np.uint64(27))) * m2
    return z ^ (z >> np.uint64(31))


def poisson_counts(seed: int, n: int) -> np.ndarray:
    """Pure-numpy reference of the kernel's counts for one resample: (n,) int64."""
    z = splitmix_outputs(seed, (n + 1) // 2)
    halves = np.empty(2 * len(z), dtype=np.uint64)
    halves[0::2] = z & np.uint64(0xFFFFFFFF)  # even rows: low half
    halves[1::2] = z >> np.uint64(32)  # odd rows: high half
    return np.searchsorted(POISSON1_THRESHOLDS.astype(np.uint64), halves[:n], side="right")


def test_poisson_thresholds_invert_the_poisson_distribution():
    from scipy.stats import poisson

    t = POISSON1_THRESHOLDS.astype(np.float64)
    assert POISSON1_THRESHOLDS.dtype == np.uint32 and np.all(np.diff(t) > 0)
    tails = (2.0**32 - t) / 2.0**32  # P(count > k) implied by the thresholds
    np.testing.assert_allclose(tails, poisson.sf(np.arange(len(t)), 1.0), rtol=0, atol=2.0**-33 + 1e-18)
    assert poisson.sf(len(t), 1.0) * 2.0**32 < 0.5  # a further threshold would round to 2^32 (never reached)
    np.testing.assert_array_equal(poisson1_thresholds(5), POISSON1_THRESHOLDS[:5])


@pytest.mark.parametrize("n", [1, 2, 7, 2047, 2048, 2049, 5001])
def test_poisson_bootstrap_kernel_matches_numpy_reference(n):
    rng = np.random.default_rng(n)
    cols = np.ascontiguousarray(rng.normal(size=(3, n)))
    seeds = rng.integers(0, np.iinfo(np.uint64).max, size=6, dtype=np.uint64, endpoint=True)
    out = np.full((6, 4), np.nan)
    poisson_bootstrap_sums(cols, seeds, POISSON1_THRESHOLDS, out)
    for b, seed in enumerate(seeds):
        c = poisson_counts(int(seed), n)
        np.testing.assert_allclose(out[b, :3], cols @ c, rtol=1e-12, atol=1e-12)
        assert out[b, 3] == c.sum()


def test_poisson_counts_are_poisson_and_independent():
    from scipy.stats import chi2, poisson

    seeds = np.random.default_rng(0).integers(0, np.iinfo(np.uint64).max, size=400, dtype=np.uint64, endpoint=True)
    counts = np.array([poisson_counts(int(s), 1000) for s in seeds])  # (400 resamples, 1000 rows)
    observed = np.bincount(np.minimum(counts.ravel(), 5), minlength=6)
    pmf = poisson.pmf(np.arange(5), 1.0)
    expected = counts.size * np.append(pmf, 1.0 - pmf.sum())
    assert ((observed - expected) ** 2 / expected).sum() < chi2.ppf(0.999, df=5)
    centred = counts - 1.0
    sd = 1.0 / math.sqrt(counts.size / 2)
    # the two 32-bit halves of one output (rows 2p, 2p+1) and neighbouring resamples are uncorrelated
    assert abs((centred[:, 0::2] * centred[:, 1::2]).mean()) < 4 * sd
    assert abs((centred[:-1] * centred[1:]).mean()) < 4 * 1.0 / math.sqrt(counts[1:].size)


# ---------------------------------------------------------------------------------------------------------------
# normal / delta method
# ---------------------------------------------------------------------------------------------------------------


def test_normal_interval_matches_textbook():
    x = np.random.default_rng(1).exponential(size=500)
    iv = normal_interval(x, alpha=0.1)
    se = x.std(ddof=1) / math.sqrt(500)
    z = NormalDist().inv_cdf(0.95)
    assert iv.value == pytest.approx(x.mean(), rel=1e-12)
    assert iv.se == pytest.approx(se, rel=1e-10)
    assert (iv.low, iv.high) == pytest.approx((x.mean() - z * se, x.mean() + z * se), rel=1e-10)


def test_normal_interval_is_accurate_with_a_large_offset():
    x = 1e6 + np.random.default_rng(2).normal(size=10_000)
    iv = normal_interval(x)
    assert iv.se == pytest.approx(x.std(ddof=1) / 100, rel=1e-6)


def delta_reference(num: np.ndarray, den: np.ndarray) -> tuple[float, float]:
    """Delta-method se of sum(num)/sum(den) from the gradient of the ratio of means (textbook form)."""
    n = len(num)
    mn, md = num.mean(), den.mean()
    cov = np.cov(np.vstack([num, den]), ddof=1)
    grad = np.array([1 / md, -mn / md**2])
    return mn / md, math.sqrt(grad @ cov @ grad / n)


def test_delta_method_for_a_ratio_matches_textbook():
    rng = np.random.default_rng(3)
    w = rng.exponential(size=2000)
    r = rng.random(2000) * (1 + w)
    iv = normal_interval(RowTerms(None, ((1.0, w * r, w),)))
    value, se = delta_reference(w * r, w)
    assert iv.value == pytest.approx(value, rel=1e-12)
    assert iv.se == pytest.approx(se, rel=1e-9)


def test_delta_method_general_path_matches_single_ratio_path():
    rng = np.random.default_rng(4)
    a, w, r = rng.normal(size=800), rng.exponential(size=800), rng.random(800)
    single = normal_interval(RowTerms(None, ((1.0, w * r, w),)))
    shifted = normal_interval(RowTerms(np.zeros(800), ((1.0, w * r, w),)))  # forces the linearised path
    assert shifted.value == pytest.approx(single.value, rel=1e-12)
    assert shifted.se == pytest.approx(single.se, rel=1e-9)
    mixed = RowTerms(a, ((1.0, w * r, w),))
    psi = mixed.linearized()
    assert psi.mean() == pytest.approx(mixed.value(), rel=1e-12)
    assert normal_interval(mixed).se == pytest.approx(psi.std(ddof=1) / math.sqrt(800), rel=1e-9)


def test_row_terms_algebra():
    rng = np.random.default_rng(5)
    t1, t2, w, r = rng.normal(size=50), rng.normal(size=50), rng.random(50), rng.random(50)
    a = RowTerms(t1, ((1.0, w * r, w),))
    b = RowTerms(t2)
    diff = a - b
    assert diff.value() == pytest.approx(a.value() - b.value(), rel=1e-12)
    np.testing.assert_allclose(diff.linearized(), a.linearized() - b.linearized(), atol=1e-12)
    assert (b - a).value() == pytest.approx(-diff.value(), rel=1e-12)
    assert a.minus(r).value() == pytest.approx(a.value() - r.mean(), rel=1e-12)
    with pytest.raises(ValueError, match="same length"):
        RowTerms(t1[:3], ((1.0, w, w),))
    with pytest.raises(ValueError, match="needs terms or at least one ratio"):
        RowTerms(None)
    with pytest.raises(ValueError, match="cannot subtract RowTerms of 3 rows"):
        a - RowTerms(t1[:3])


def test_row_term_sums_merge_exactly_across_chunks():
    """1000 + 2000 rows == 3000 rows: sums of per-row terms make chunked evaluation exact."""
    rng = np.random.default_rng(6)
    w, r = rng.exponential(size=3000), rng.random(3000)
    whole = RowTerms(None, ((1.0, w * r, w),)).value()
    chunks = [(w[:1000] * r[:1000]).sum(), (w[1000:] * r[1000:]).sum()], [w[:1000].sum(), w[1000:].sum()]
    assert sum(chunks[0]) / sum(chunks[1]) == pytest.approx(whole, rel=1e-13)


def test_zero_denominator_gives_nan():
    iv = normal_interval(RowTerms(None, ((1.0, np.zeros(5), np.zeros(5)),)))
    assert math.isnan(iv.value) and math.isnan(iv.se)


@pytest.mark.parametrize("alpha, exc", [(0.0, ValueError), (1.0, ValueError), ("0.05", TypeError), (True, TypeError)])
def test_alpha_is_validated(alpha, exc):
    with pytest.raises(exc, match="alpha"):
        normal_interval([1.0, 2.0], alpha=alpha)


# ---------------------------------------------------------------------------------------------------------------
# bootstrap
# ---------------------------------------------------------------------------------------------------------------


def test_bootstrap_close_to_normal_on_large_n():
    x = np.random.default_rng(7).exponential(size=20_000)
    boot = bootstrap_interval(x, n_resamples=2000, seed=3)
    wald = normal_interval(x)
    assert boot.value == wald.value
    assert boot.se == pytest.approx(wald.se, rel=0.08)
    width = wald.high - wald.low
    assert abs(boot.low - wald.low) < 0.1 * width and abs(boot.high - wald.high) < 0.1 * width


def test_bootstrap_ratio_close_to_delta_method():
    rng = np.random.default_rng(8)
    w, r = rng.exponential(size=20_000), rng.random(20_000)
    terms = RowTerms(None, ((1.0, w * r, w),))
    boot = bootstrap_interval(terms, n_resamples=2000, seed=1)
    delta = normal_interval(terms)
    assert boot.se == pytest.approx(delta.se, rel=0.08)


def test_bootstrap_is_seeded():
    x = np.random.default_rng(9).normal(size=300)
    assert bootstrap_interval(x, seed=5) == bootstrap_interval(x, seed=5)
    assert bootstrap_interval(x, seed=5) != bootstrap_interval(x, seed=6)


def test_bootstrap_percentiles_match_numpy_reference():
    x = np.random.default_rng(10).normal(size=100)
    iv = bootstrap_interval(x, alpha=0.1, n_resamples=300, seed=2)
    seeds = np.random.default_rng(2).integers(0, np.iinfo(np.uint64).max, size=300, dtype=np.uint64, endpoint=True)
    counts = [poisson_counts(int(s), 100) for s in seeds]
    means = np.array([c @ x / c.sum() for c in counts])
    assert (iv.low, iv.high) == pytest.approx(tuple(np.quantile(means, [0.05, 0.95])), rel=1e-10)
    assert iv.se == pytest.approx(means.std(ddof=1), rel=1e-10)


def naive_bootstrap(arrays: list[np.ndarray], statistic, n_resamples: int, seed: int) -> np.ndarray:
    """Textbook multinomial bootstrap: resample n row indices with replacement, recompute the statistic."""
    rng = np.random.default_rng(seed)
    n = len(arrays[0])
    return np.array([statistic(*(a[idx] for a in arrays)) for idx in rng.integers(0, n, size=(n_resamples, n))])


@pytest.mark.parametrize("kind", ["mean", "ratio"])
def test_poisson_bootstrap_agrees_with_the_multinomial_bootstrap(kind):
    """Same interval as resampling rows with replacement, within Monte Carlo error of 4000 resamples each."""
    rng = np.random.default_rng(14)
    n, reps = 3000, 4000
    w, r = rng.exponential(size=n), (rng.random(n) < 0.2) * rng.exponential(2.0, size=n)
    if kind == "mean":
        terms, arrays, statistic = w * r, [w * r], np.mean
    else:
        terms = RowTerms(None, ((1.0, w * r, w),))
        arrays, statistic = [w * r, w], lambda u, v: u.sum() / v.sum()
    ours = bootstrap_interval(terms, n_resamples=reps, seed=5)
    naive = naive_bootstrap(arrays, statistic, reps, seed=6)
    lo, hi = np.quantile(naive, [0.025, 0.975])
    sd = naive.std(ddof=1)
    # sd of a bootstrap sd over B resamples ~ sd / sqrt(2B) (1.1% here); of a 2.5% quantile ~ 0.04 sd
    assert ours.se == pytest.approx(sd, rel=0.06)
    assert abs(ours.low - lo) < 0.25 * sd and abs(ours.high - hi) < 0.25 * sd


def test_bootstrap_rejects_few_resamples():
    with pytest.raises(ValueError, match="n_resamples must be >= 100"):
        bootstrap_interval([1.0, 2.0, 3.0], n_resamples=10)


# ---------------------------------------------------------------------------------------------------------------
# empirical Bernstein
# ---------------------------------------------------------------------------------------------------------------


def test_bernstein_formula():
    x = (np.random.default_rng(11).random(400) < 0.2).astype(float)
    iv = bernstein_interval(x, alpha=0.05, term_range=(0.0, 1.0))
    log_term = math.log(4 / 0.05)
    half = math.sqrt(2 * x.var(ddof=1) * log_term / 400) + 7 * log_term / (3 * 399)
    assert (iv.low, iv.high) == pytest.approx((x.mean() - half, x.mean() + half), rel=1e-10)


def test_bernstein_covers_at_least_nominally():
    """Bounded, skewed terms (n=200): the finite-sample bound covers in >= 95% of 2000 seeded replications."""
    rng = np.random.default_rng(12)
    reps, n, p = 2000, 200, 0.05
    x = (rng.random((reps, n)) < p).astype(float) * 4.0  # terms in [0, 4], mean 0.2
    covered = 0
    for row in x:
        iv = bernstein_interval(row, term_range=(0.0, 4.0))
        covered += iv.low <= 0.2 <= iv.high
    assert covered / reps >= 0.95


def test_bernstein_range_must_contain_the_terms():
    with pytest.raises(ValueError, match=r"term_range \(0.0, 1.0\) does not contain the observed per-row terms"):
        bernstein_interval([0.5, 2.0], term_range=(0.0, 1.0))
    with pytest.raises(ValueError, match="low <= high"):
        bernstein_interval([0.5, 2.0], term_range=(3.0, 1.0))


def test_compute_interval_dispatches_and_rejects_unknown_methods():
    x = np.random.default_rng(13).random(500)
    assert compute_interval(x, "normal") == normal_interval(x)
    assert compute_interval(x, "bootstrap", seed=4) == bootstrap_interval(x, seed=4)
    assert compute_interval(x, "bernstein", term_range=(0, 1)) == bernstein_interval(x, term_range=(0, 1))
    with pytest.raises(ValueError, match="interval must be one of"):
        compute_interval(x, "wald")
