"""Power and evaluability: against statsmodels, closed forms and Monte Carlo."""

from __future__ import annotations

import math

import numpy as np
import pytest
from statsmodels.stats.power import NormalIndPower, TTestIndPower
from statsmodels.stats.proportion import proportion_effectsize

from offline_eval import IPS, LoggedData
from offline_eval.power import (
    days_needed,
    exploration_floor_needed,
    halfwidth_at,
    mde_means,
    mde_proportions,
    power_curve,
    power_means,
    power_proportions,
    ratio_metric_variance,
    rows_needed,
    sample_size_means,
    sample_size_proportions,
)
from offline_eval.replay import Replay

NORMAL_IPS = IPS(interval="normal")  # the half-width formulas are about the normal interval

CASES = [  # p_control, mde, alpha, power, ratio, alternative
    (0.10, 0.02, 0.05, 0.8, 1.0, "two-sided"),
    (0.03, 0.005, 0.05, 0.9, 1.0, "two-sided"),
    (0.25, -0.03, 0.01, 0.8, 2.0, "two-sided"),
    (0.10, 0.01, 0.05, 0.8, 0.5, "larger"),
    (0.50, -0.05, 0.10, 0.95, 3.0, "smaller"),
]


def matched_normal_effect(p1: float, mde: float, ratio: float) -> float:
    """The NormalIndPower effect size whose test equals the unpooled difference-of-proportions z-test."""
    p2 = p1 + mde
    return mde / math.sqrt((p1 * (1 - p1) + p2 * (1 - p2) / ratio) / (1 + 1 / ratio))


@pytest.mark.parametrize(("p1", "mde", "alpha", "power", "ratio", "alt"), CASES)
def test_sample_size_proportions_agrees_with_statsmodels(p1, mde, alpha, power, ratio, alt):
    solver = NormalIndPower()
    h = proportion_effectsize(p1 + mde, p1)  # Cohen's h, treatment minus control
    ref_arcsine = solver.solve_power(effect_size=h, alpha=alpha, power=power, ratio=ratio, alternative=alt)
    n_arcsine = sample_size_proportions(p1, mde, alpha, power, ratio, alt, method="arcsine")
    assert n_arcsine == pytest.approx(ref_arcsine, rel=0.01) and n_arcsine >= ref_arcsine - 1e-6
    d = matched_normal_effect(p1, mde, ratio)
    ref_normal = solver.solve_power(effect_size=d, alpha=alpha, power=power, ratio=ratio, alternative=alt)
    n_normal = sample_size_proportions(p1, mde, alpha, power, ratio, alt)
    assert n_normal == pytest.approx(ref_normal, rel=0.01) and n_normal - ref_normal < 1 + 1e-3 * ref_normal
    # power at a given n: the same function as statsmodels (both tails counted)
    for n in (200, 1500, 9000):
        assert power_proportions(n, p1, mde, alpha, ratio, alt, method="arcsine") == pytest.approx(
            solver.power(effect_size=h, nobs1=n, alpha=alpha, ratio=ratio, alternative=alt), abs=1e-9
        )
        assert power_proportions(n, p1, mde, alpha, ratio, alt) == pytest.approx(
            solver.power(effect_size=d, nobs1=n, alpha=alpha, ratio=ratio, alternative=alt), abs=1e-9
        )


@pytest.mark.parametrize(("p1", "mde", "alpha", "power", "ratio", "alt"), CASES)
@pytest.mark.parametrize("method", ["normal", "arcsine"])
def test_mde_proportions_inverts_the_sample_size(p1, mde, alpha, power, ratio, alt, method):
    n = sample_size_proportions(p1, mde, alpha, power, ratio, alt, method=method)
    found = mde_proportions(n, p1, alpha, power, ratio, alt, method=method)
    assert np.sign(found) == (-1 if alt == "smaller" else 1)
    # the detectable change at that n reaches the power (the two-sided test's wrong-way rejections are negligible)
    tol = 1e-6 if alt != "two-sided" else 1e-4
    assert power_proportions(n, p1, found, alpha, ratio, alt, method=method) == pytest.approx(power, abs=tol)
    if np.sign(found) == np.sign(mde):
        # n was rounded up, so the detectable change is at most the one asked for, and barely smaller
        assert abs(mde) * 0.98 < abs(found) <= abs(mde) + 1e-9


def test_sample_size_proportions_reaches_its_power_by_monte_carlo():
    p1, mde = 0.08, 0.02
    n = sample_size_proportions(p1, mde)
    rng = np.random.default_rng(11)
    reps = 20_000

    def rejection_rate(p2: float) -> float:
        c = rng.binomial(n, p1, size=reps) / n
        t = rng.binomial(n, p2, size=reps) / n
        z = (t - c) / np.sqrt(c * (1 - c) / n + t * (1 - t) / n)
        return float((np.abs(z) > 1.959964).mean())

    assert abs(rejection_rate(p1 + mde) - 0.80) < 0.015
    assert abs(rejection_rate(p1) - 0.05) < 0.008


TTEST_CASES = [  # mde / sd, alpha, power, ratio, alternative
    (0.05, 0.05, 0.8, 1.0, "two-sided"),
    (0.2, 0.01, 0.9, 2.0, "two-sided"),
    (0.8, 0.05, 0.8, 1.0, "two-sided"),
    (0.1, 0.05, 0.8, 0.5, "larger"),
    (-0.3, 0.10, 0.95, 1.5, "smaller"),
]


@pytest.mark.parametrize(("es", "alpha", "power", "ratio", "alt"), TTEST_CASES)
def test_sample_size_means_agrees_with_statsmodels(es, alpha, power, ratio, alt):
    sd = 7.5
    ref_z = NormalIndPower().solve_power(effect_size=es, alpha=alpha, power=power, ratio=ratio, alternative=alt)
    ref_t = TTestIndPower().solve_power(effect_size=es, alpha=alpha, power=power, ratio=ratio, alternative=alt)
    n_z = sample_size_means(sd, es * sd, alpha, power, ratio, alt)
    n_t = sample_size_means(sd, es * sd, alpha, power, ratio, alt, test="t")
    assert n_z == math.ceil(ref_z - 1e-9) or n_z == pytest.approx(ref_z, rel=0.01)
    assert ref_t <= n_t < ref_t + 1 + 1e-9  # the smallest whole n reaching the power
    for n in (20, 300, 5000):
        assert power_means(n, sd, es * sd, alpha, ratio, alt) == pytest.approx(
            NormalIndPower().power(effect_size=es, nobs1=n, alpha=alpha, ratio=ratio, alternative=alt), abs=1e-9
        )
        assert power_means(n, sd, es * sd, alpha, ratio, alt, test="t") == pytest.approx(
            TTestIndPower().power(effect_size=es, nobs1=n, alpha=alpha, ratio=ratio, alternative=alt), abs=1e-7
        )
    found = mde_means(n_z, sd, alpha, power, ratio, alt)
    assert found == pytest.approx(es * sd, rel=0.01) if alt != "two-sided" else abs(found) == pytest.approx(
        abs(es * sd), rel=0.01
    )


def test_means_with_unequal_variances_match_the_welch_normal_formula():
    sd_c, sd_t, mde, ratio = 10.0, 14.0, 0.8, 2.0
    n = sample_size_means(sd_c, mde, ratio=ratio, sd_treatment=sd_t)
    var_diff = sd_c**2 / n + sd_t**2 / (ratio * n)
    z_power = mde / math.sqrt(var_diff) - 1.959964
    assert 0.8 <= 0.5 * (1 + math.erf(z_power / math.sqrt(2))) < 0.8005
    assert mde_means(n, sd_c, ratio=ratio, sd_treatment=sd_t) == pytest.approx(mde, rel=2e-4)


def test_ratio_metric_variance_matches_the_monte_carlo_variance_of_the_ratio():
    rng = np.random.default_rng(4)
    n, reps = 400, 3000
    engagement = rng.gamma(1.5, 1.0, size=(reps, n))  # heavy users: more sessions and more revenue per session
    sessions = rng.poisson(1 + 3 * engagement) + 1
    revenue = rng.gamma(2.0, 0.4 * engagement) * sessions
    ratios = revenue.sum(axis=1) / sessions.sum(axis=1)
    mc = float(ratios.var(ddof=1)) * n
    est = np.array([ratio_metric_variance(revenue[r], sessions[r]) for r in range(200)])
    assert abs(est.mean() / mc - 1) < 0.1
    # the naive per-session variance ignores the correlation within a user and is far too small here
    per_session = np.repeat(revenue[0] / sessions[0], sessions[0])
    naive = per_session.var(ddof=1) / sessions[0].mean()
    assert naive < 0.5 * mc
    # constant denominators: the plain variance of the mean
    y = rng.normal(3.0, 2.0, size=1000)
    assert ratio_metric_variance(y, np.full(1000, 2.0)) == pytest.approx(y.var(ddof=1) / 4.0)


def test_power_curve_grids_effects_and_sample_sizes():
    by_effect = power_curve([0.005, 0.01, 0.02, 0.04], 5000, p_control=0.1)
    assert list(by_effect.columns) == ["n_per_arm", "effect", "power"]
    assert by_effect["power"].is_monotonic_increasing
    for row in by_effect.itertuples():
        assert row.power == pytest.approx(power_proportions(5000, 0.1, row.effect))
    by_n = power_curve(0.5, [100, 1000, 10_000], sd=10.0, alternative="larger")
    assert by_n["power"].is_monotonic_increasing and by_n["n_per_arm"].dtype == np.int64
    assert by_n["power"].iloc[-1] == pytest.approx(power_means(10_000, 10.0, 0.5, alternative="larger"))
    assert len(power_curve([0.1, 0.2], [10, 20, 30], sd=1.0)) == 6
    with pytest.raises(ValueError, match="give exactly one of p_control"):
        power_curve(0.1, 100)
    with pytest.raises(ValueError, match="effects must not be empty"):
        power_curve([], 100, sd=1.0)


# ------------------------------------------------------------------------------------------------------------
# offline evaluability
# ------------------------------------------------------------------------------------------------------------


def uniform_logs(n: int, rng: np.random.Generator, k: int = 3) -> LoggedData:
    X = rng.normal(size=(n, 2))
    action = rng.integers(0, k, size=n)
    rate = 0.05 + 0.05 * action + 0.05 * (X[:, 0] > 0)
    reward = (rng.random(n) < rate).astype(float) * np.array([10.0, 15.0, 20.0])[action]
    return LoggedData(X, action, reward, np.full(n, 1 / k))


def test_rows_needed_forecast_reaches_the_target_halfwidth_by_simulation():
    rng = np.random.default_rng(8)
    realised, targets = [], []
    for _ in range(20):
        pilot = uniform_logs(2000, rng)
        target = (pilot.context[:, 0] > 0).astype(int) * 2  # a contextual deterministic candidate
        est = NORMAL_IPS.estimate(pilot, target)
        goal = 0.5 * (est.ci_high - est.ci_low) / 2.5
        more = rows_needed(est, goal)
        assert halfwidth_at(est, pilot.n + more) <= goal * (1 + 1e-9)
        fresh = uniform_logs(pilot.n + more, rng)
        new = NORMAL_IPS.estimate(fresh, (fresh.context[:, 0] > 0).astype(int) * 2)
        realised.append(0.5 * (new.ci_high - new.ci_low))
        targets.append(goal)
    ratio = np.array(realised) / np.array(targets)
    assert abs(ratio.mean() - 1) < 0.1
    # the target already met: nothing more to log
    assert rows_needed(est, 10 * (est.ci_high - est.ci_low)) == 0


def test_rows_needed_for_a_replay_counts_logged_rows():
    rng = np.random.default_rng(12)
    realised, targets = [], []
    for _ in range(20):
        pilot = uniform_logs(3000, rng)
        res = Replay().run(pilot, 2)  # keeps about a third of the rows
        hw = 0.5 * (res.estimate.ci_high - res.estimate.ci_low)
        assert halfwidth_at(res, 4 * pilot.n) == pytest.approx(hw / 2)
        goal = hw / 2
        more = rows_needed(res, goal)
        assert abs((pilot.n + more) / (4 * pilot.n) - 1) < 1e-3
        new = Replay().run(uniform_logs(pilot.n + more, rng), 2).estimate
        realised.append(0.5 * (new.ci_high - new.ci_low))
        targets.append(goal)
    assert abs(np.mean(np.array(realised) / np.array(targets)) - 1) < 0.1


def test_halfwidth_at_scales_with_the_square_root_of_rows_for_any_interval():
    rng = np.random.default_rng(2)
    data = uniform_logs(3000, rng)
    for est in (IPS().estimate(data, 1), IPS(interval="bootstrap", n_bootstrap=200).estimate(data, 1)):
        hw = 0.5 * (est.ci_high - est.ci_low)
        assert halfwidth_at(est, est.n) == pytest.approx(hw)
        assert halfwidth_at(est, 4 * est.n) == pytest.approx(hw / 2)
        assert halfwidth_at(est, est.n / 9) == pytest.approx(3 * hw)


def test_days_needed_uses_the_logs_traffic_rate():
    rng = np.random.default_rng(3)
    n = 5001
    seconds = np.sort(rng.uniform(0, 10 * 86_400, size=n))
    seconds[0], seconds[-1] = 0, 10 * 86_400  # exactly 10 days, 500 rows a day
    times = np.datetime64("2024-05-01", "us") + (seconds * 1e6).astype("timedelta64[us]")
    data = LoggedData(None, np.zeros(n, dtype=int), np.ones(n), np.ones(n), timestamp=times)
    assert days_needed(data, 500) == pytest.approx(1.0)
    assert days_needed(data, 0) == 0.0
    with pytest.raises(ValueError, match="data.timestamp is missing"):
        days_needed(LoggedData(None, [0, 0], [1.0, 1.0], [1.0, 1.0]), 10)
    with pytest.raises(ValueError, match="rows must be >= 0"):
        days_needed(data, -1)
    same = LoggedData(None, [0, 0], [1.0, 1.0], [1.0, 1.0], timestamp=["2024-01-01", "2024-01-01"])
    with pytest.raises(ValueError, match="must span some time"):
        days_needed(same, 10)


def floor_logs(floor: float, n: int, reps: int, rng: np.random.Generator, k: int = 4):
    """Logs of a base policy that always offers arm 0, mixed with ``floor`` of uniform exploration."""
    mu = np.full(k, floor / k)
    mu[0] += 1 - floor
    action = (mu.cumsum() > rng.random((reps, n, 1))).argmax(axis=2)
    rates = np.array([0.10, 0.15, 0.20, 0.30])
    reward = (rng.random((reps, n)) < rates[action]).astype(float)
    return action, reward, mu


def test_exploration_floor_needed_gives_the_halfwidth_in_most_replications():
    k, n, h, reps = 4, 20_000, 0.02, 40
    m2 = 0.30  # E[r^2] of 0/1 rewards is the conversion rate: at most the best arm's 0.30
    floor = exploration_floor_needed(h, n, k, m2)
    assert floor == pytest.approx(1.959964**2 * k * m2 / (n * h**2), rel=1e-6)
    rng = np.random.default_rng(21)
    for e, expect_within in ((floor, True), (floor / 2, False)):
        action, reward, mu = floor_logs(e, n, reps, rng)
        widths = {arm: [] for arm in range(k)}
        for r in range(reps):
            data = LoggedData(None, action[r], reward[r], mu[action[r]], probabilities=np.tile(mu, (n, 1)))
            for arm in range(k):
                est = NORMAL_IPS.estimate(data, arm)  # deterministic candidates: always offer `arm`
                widths[arm].append(0.5 * (est.ci_high - est.ci_low))
        worst = np.array(widths[3])  # the arm the base policy never chooses, with the highest reward: the bound
        if expect_within:
            assert (worst <= h).mean() >= 0.7
            assert all((np.array(w) <= h).all() for w in (widths[0], widths[1], widths[2]))
        else:  # half the floor is not enough: the formula is not loose for the hardest candidate
            assert (worst > h).mean() >= 0.9


def test_exploration_floor_above_one_means_not_enough_traffic():
    assert exploration_floor_needed(0.001, 10_000, 6, 1.0) > 1


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: sample_size_proportions(0.0, 0.01), ValueError, "p_control must lie in \\(0, 1\\)"),
        (lambda: sample_size_proportions(0.1, 0.0), ValueError, "mde must be non-zero"),
        (lambda: sample_size_proportions(0.1, -0.01, alternative="larger"), ValueError, "mde must be > 0"),
        (lambda: sample_size_proportions(0.1, 0.01, alternative="smaller"), ValueError, "mde must be < 0"),
        (lambda: sample_size_proportions(0.95, 0.1), ValueError, "p_control \\+ mde must lie in \\(0, 1\\)"),
        (lambda: sample_size_proportions(0.1, 0.01, alpha=0.0), ValueError, "alpha must lie in \\(0, 1\\)"),
        (lambda: sample_size_proportions(0.1, 0.01, power=1.0), ValueError, "power must lie in \\(0, 1\\)"),
        (lambda: sample_size_proportions(0.1, 0.01, ratio=0), ValueError, "ratio must be > 0"),
        (lambda: sample_size_proportions(0.1, 0.01, alternative="less"), ValueError, "alternative must be one of"),
        (lambda: sample_size_proportions(0.1, 0.01, method="exact"), ValueError, "method must be 'normal' or"),
        (lambda: sample_size_proportions("0.1", 0.01), TypeError, "p_control must be a number"),
        (lambda: mde_proportions(3, 0.5), ValueError, "n_per_arm=3 is too small"),
        (lambda: mde_proportions(0, 0.5), ValueError, "n_per_arm must be > 0"),
        (lambda: sample_size_means(-1.0, 0.5), ValueError, "sd must be > 0"),
        (lambda: sample_size_means(1.0, 0.5, sd_treatment=0), ValueError, "sd_treatment must be > 0"),
        (lambda: sample_size_means(1.0, 0.5, test="welch"), ValueError, "test must be 'z'"),
        (lambda: mde_means(100, float("nan")), ValueError, "sd must be finite"),
        (lambda: ratio_metric_variance([1.0, 2.0], [1.0]), ValueError, "same length"),
        (lambda: ratio_metric_variance([1.0, 2.0], [0.0, 0.0]), ValueError, "denominators must have a positive mean"),
        (lambda: ratio_metric_variance(["a", "b"], [1, 1]), TypeError, "numerators must be a numeric array"),
        (lambda: ratio_metric_variance([1.0, np.inf], [1, 1]), ValueError, "numerators must be finite"),
        (lambda: exploration_floor_needed(0.0, 100, 3, 1.0), ValueError, "halfwidth must be > 0"),
        (lambda: exploration_floor_needed(0.1, 100, 0, 1.0), ValueError, "n_arms must be an int >= 1"),
        (lambda: halfwidth_at("estimate", 100), TypeError, "estimate must be an offline_eval Estimate"),
    ],
)
def test_bad_input_names_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_halfwidth_and_rows_needed_validate_rows():
    est = IPS().estimate(uniform_logs(500, np.random.default_rng(0)), 1)
    with pytest.raises(ValueError, match="n_rows must be > 0"):
        halfwidth_at(est, 0)
    with pytest.raises(ValueError, match="target_halfwidth must be > 0"):
        rows_needed(est, -0.1)
