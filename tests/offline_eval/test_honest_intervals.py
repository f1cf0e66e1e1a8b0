"""Empirical-likelihood and bias-aware intervals, SLOPE selection, MRDR and several logging versions.

Reference implementations (scipy optimisers, numpy least squares, closed forms) check the kernels; seeded
replications check coverage against known truth (slow-marked, each well under a minute).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from ope_world import World
from scipy.optimize import minimize
from scipy.stats import chi2, kurtosis, t

from offline_eval import DM, DR, DROS, IPS, SNIPS, DiagnosticWarning, LoggedData, SwitchDR, compare, evaluate
from offline_eval.empirical_likelihood import CORNER_WEIGHT, el_mean_interval, ips_el_interval
from offline_eval.estimators.doubly_robust import slope_select
from offline_eval.intervals import normal_interval
from offline_eval.multilogger import balanced_ips, per_version_diagnostics, stratified_estimate
from offline_eval.reward_models import MRDRRewardModel, _ridge_coefficients, mrdr_weights

# the clipped estimators warn about their clipping bias on purpose here
pytestmark = pytest.mark.filterwarnings("ignore::offline_eval.diagnostics.DiagnosticWarning")


class FixedModel:
    """A 'reward model' returning a given matrix (to control the model's bias exactly)."""

    def __init__(self, q: np.ndarray) -> None:
        self.q = q

    def fit_predict(self, data: LoggedData) -> np.ndarray:
        return self.q


# ---------------------------------------------------------------------------------------------------------------
# empirical likelihood against scipy references
# ---------------------------------------------------------------------------------------------------------------


def _reference_profile(g: np.ndarray, corners: np.ndarray) -> float:
    """max_lam sum log(1 + g lam) + CORNER_WEIGHT * sum log(1 + corners lam), by scipy (observed terms with true
    log, valid near the solution for these well-behaved samples)."""

    def neg(lam: np.ndarray) -> float:
        z = 1.0 + g @ lam
        zc = 1.0 + corners @ lam if len(corners) else np.ones(1)
        if np.any(z <= 0) or np.any(zc <= 0):
            return 1e30
        return -(np.log(z).sum() + (CORNER_WEIGHT * np.log(zc).sum() if len(corners) else 0.0))

    res = minimize(neg, np.zeros(g.shape[1]), method="Nelder-Mead", options={"xatol": 1e-12, "fatol": 1e-13,
                                                                               "maxiter": 20000})
    return -float(res.fun)


def _reference_crit(terms: np.ndarray, alpha: float = 0.05) -> float:
    """The EL critical value t_nu^2 (1 + 1/n), nu = min(n - 1, 2n / (kurtosis - 1)), by scipy.stats."""
    n = len(terms)
    nu = min(n - 1.0, 2.0 * n / (kurtosis(terms, fisher=False) - 1.0))
    return t.ppf(1 - alpha / 2, nu) ** 2 * (1 + 1 / n)


def test_el_critical_value_is_chi_square_for_normal_terms_and_wider_for_heavy_tails():
    rng = np.random.default_rng(3)
    normal = rng.normal(size=50_000)
    assert _reference_crit(normal) == pytest.approx(chi2.ppf(0.95, 1), rel=1e-3)
    heavy = np.where(rng.random(2000) < 0.005, 200.0, 0.0)  # kurtosis ~ 200: nu ~ 20
    assert _reference_crit(heavy) > 1.05 * chi2.ppf(0.95, 1)
    iv_normal, iv_heavy = el_mean_interval(normal), el_mean_interval(heavy)
    for x, iv in ((normal, iv_normal), (heavy, iv_heavy)):
        for mu in (iv.low, iv.high):
            assert 2 * _reference_profile((x - mu)[:, None], np.zeros((0, 1))) == pytest.approx(
                _reference_crit(x), rel=2e-3
            )


def test_el_mean_endpoints_solve_the_chi_square_equation():
    x = np.random.default_rng(0).exponential(size=300)
    iv = el_mean_interval(x)
    crit = _reference_crit(x)
    empty = np.zeros((0, 1))
    for mu in (iv.low, iv.high):
        stat = 2 * _reference_profile((x - mu)[:, None], empty)
        assert stat == pytest.approx(crit, rel=2e-3)
    assert iv.low < x.mean() < iv.high


def test_el_mean_end_stopped_by_the_terms_range_falls_back_to_the_normal_end():
    """Regression: EL cannot leave the range of the terms. Lift terms of a target none of whose rows converted are
    all <= 0 (195 zeros, 5 logged conversions elsewhere), and the upper end sat at -2e-6: "95% sure the lift is
    negative" from 5 conversions, where the normal interval's upper end is +0.05. Such an end is now the
    t-calibrated normal end; ends the likelihood ratio sets are unchanged (the lower end here, and
    test_el_mean_endpoints_solve_the_chi_square_equation)."""
    x = np.zeros(200)
    x[:5] = [-5.0, -5.0, -10.0, -10.0, -20.0]
    iv = el_mean_interval(x)
    half = math.sqrt(_reference_crit(x)) * x.std(ddof=1) / math.sqrt(len(x))
    assert iv.high == pytest.approx(x.mean() + half, rel=1e-9) and iv.high > 0
    empty = np.zeros((0, 1))  # the lower end, far inside the range, still solves the EL equation
    assert 2 * _reference_profile((x - iv.low)[:, None], empty) == pytest.approx(_reference_crit(x), rel=2e-3)


def test_ips_el_endpoints_solve_the_profile_equation_with_the_box_constraints():
    rng = np.random.default_rng(1)
    n, p = 400, 0.25
    w = (rng.random(n) < p) / p
    r = 19.99 * (rng.random(n) < 0.1)
    iv = ips_el_interval(w, r, w_max=4.0, reward_range=(0.0, 19.99))
    wr = w * r
    base = _reference_profile((w - 1)[:, None], np.array([[-1.0], [3.0]]))
    crit = _reference_crit(wr)
    for v in (iv.low, iv.high):
        corners = np.array([[-1.0, -v], [3.0, 4.0 * 0.0 - v], [3.0, 4.0 * 19.99 - v]])
        stat = 2 * (_reference_profile(np.column_stack([w - 1, wr - v]), corners) - base)
        assert stat == pytest.approx(crit, rel=5e-3)


def test_el_passes_run_over_distinct_rows_weighted_by_their_counts():
    """The dual's sums over rows are taken over the distinct (w, w r) pairs times their counts: the pairs and counts
    are np.unique's (a NaN pair stands alone, as a row did). That the sums themselves are right is checked by the
    endpoint tests around this one, whose samples take two to four distinct values, against scipy's optimum over
    all rows."""
    from offline_eval.empirical_likelihood import _distinct_rows

    rng = np.random.default_rng(7)
    w = rng.choice([0.0, 2.0, 4.0], 5000)
    r = rng.choice([0.0, 5.99, 19.99, np.nan], 5000, p=[0.9, 0.05, 0.049, 0.001])
    order = np.lexsort((r, w))
    a, b, count = _distinct_rows(w[order], (w * r)[order])
    pairs = np.column_stack([w * r, w])
    finite = ~np.isnan(pairs).any(axis=1)
    uniq, ref_count = np.unique(pairs[finite], axis=0, return_counts=True)
    got = np.column_stack([b, a])
    keep = ~np.isnan(got).any(axis=1)
    assert count.sum() == 5000 and np.sum(count[~keep]) == np.sum(~finite)  # each NaN pair stands alone
    assert np.array_equal(got[keep][np.lexsort((got[keep][:, 1], got[keep][:, 0]))], uniq)
    assert np.array_equal(count[keep][np.lexsort((got[keep][:, 1], got[keep][:, 0]))], ref_count)
    x = rng.choice([-1.0, 0.0, 0.5, 3.0], 400)
    a1, _, c1 = _distinct_rows(np.sort(x), np.sort(x))
    assert len(a1) == 4 and c1.sum() == 400


def test_ips_el_interval_is_skewed_towards_rare_large_terms_and_bounded_by_the_reward_range():
    rng = np.random.default_rng(2)
    w = (rng.random(3000) < 0.1) / 0.1
    r = 19.99 * (rng.random(3000) < 0.03)
    iv = ips_el_interval(w, r, w_max=10.0, reward_range=(0.0, 19.99))
    assert iv.high - iv.value > iv.value - iv.low
    assert 0.0 <= iv.low and iv.high <= 19.99


# ---------------------------------------------------------------------------------------------------------------
# bias-aware intervals
# ---------------------------------------------------------------------------------------------------------------


def _world_data(n: int = 2000, seed: int = 0):
    world = World(seed=0)
    draw = world.draw(n, 1, seed=seed)
    return world, world.logged(draw), world.target_probs(draw), draw


def test_bias_aware_interval_is_the_dr_interval_extended_to_the_estimate():
    world, data, target, draw = _world_data()
    q = np.full((data.n, world.K), 0.3)  # a wrong model
    dr = DR().estimate(data, target, q=q)
    for est in (DM(), SwitchDR(tau=1.0), DROS(lam=1.0), DR(clip=1.5)):
        res = est.estimate(data, target, q=q)
        assert res.interval == f"bias-aware({dr.interval})"
        assert res.honest and not res.consistent
        assert res.bias == pytest.approx(res.value - dr.value, abs=1e-12)
        assert res.ci_low == pytest.approx(min(res.value, dr.ci_low))
        assert res.ci_high == pytest.approx(max(res.value, dr.ci_high))
        own = type(est)(**{**{k: getattr(est, k) for k in ("tau", "lam", "clip") if hasattr(est, k)},
                           "bias_aware": False}).estimate(data, target, q=q)
        assert not own.honest and own.ci_high - own.ci_low < res.ci_high - res.ci_low


def test_clipped_ips_is_bias_aware_around_ips():
    _, data, target, _ = _world_data()
    ips = IPS().estimate(data, target)
    clipped = IPS(clip=1.2).estimate(data, target)
    assert clipped.interval == "bias-aware(el-ips)"
    assert clipped.ci_low <= min(clipped.value, ips.ci_low) + 1e-12
    assert clipped.ci_high >= max(clipped.value, ips.ci_high) - 1e-12


def test_default_interval_kinds_follow_auto():
    _, data, target, _ = _world_data()
    assert IPS().estimate(data, target).interval == "el-ips"
    assert SNIPS().estimate(data, target).interval == "el-ips"
    assert DR().estimate(data, target, q=np.zeros((data.n, 3))).interval == "el"
    assert IPS(interval="normal").estimate(data, target).interval == "normal"
    normal = IPS(interval="normal").estimate(data, target)
    terms = IPS().per_row(data, target)
    assert (normal.ci_low, normal.ci_high) == pytest.approx(tuple(normal_interval(terms))[2:], rel=1e-12)


# ---------------------------------------------------------------------------------------------------------------
# SLOPE
# ---------------------------------------------------------------------------------------------------------------


def test_slope_select_matches_pairwise_overlap():
    rng = np.random.default_rng(3)
    for _ in range(200):
        m = rng.integers(1, 8)
        ses = np.sort(rng.uniform(0.1, 1.0, m))[::-1]
        vals = rng.normal(0, 1, m)
        j = slope_select(vals, ses)
        ok = [all(abs(vals[a] - vals[b]) <= 2 * (ses[a] + ses[b]) for a in range(k + 1) for b in range(k + 1))
              for k in range(m)]
        expected = max(k for k in range(m) if all(ok[: k + 1]))
        assert j == expected


def test_evaluate_recommends_the_model_when_it_is_exact_and_not_when_it_is_badly_biased():
    world, data, target, draw = _world_data(n=4000, seed=5)
    exact = world.oracle_q(draw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiagnosticWarning)
        good = evaluate(data, {"t": target}, [IPS(), DR(reward_model=FixedModel(exact)),
                                              DM(reward_model=FixedModel(exact))])
        bad = evaluate(data, {"t": target}, [IPS(), DR(reward_model=FixedModel(exact + 0.2)),
                                             DM(reward_model=FixedModel(exact + 0.2))])
    # the recommended DR-DM blend is DM when the model is exact (the gap is noise) and DR when it is biased
    for table in (good, bad):
        assert table.loc[table.recommended, "estimator"].item() == "DR-DM blend(model=FixedModel)"
    value = {name: t.set_index("estimator").value for name, t in (("good", good), ("bad", bad))}
    assert value["good"]["DR-DM blend(model=FixedModel)"] == pytest.approx(value["good"]["DM(model=FixedModel)"])
    bad_gap = value["bad"]["DR(model=FixedModel)"] - value["bad"]["DM(model=FixedModel)"]
    bad_shift = value["bad"]["DR(model=FixedModel)"] - value["bad"]["DR-DM blend(model=FixedModel)"]
    assert 0.0 <= bad_shift / bad_gap < 0.05
    assert good["honest"].all() and bad["honest"].all()


def test_compare_default_is_an_honest_slope_choice():
    world, data, target, draw = _world_data(n=3000, seed=6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiagnosticWarning)
        diff = compare(data, target, world.logging[draw.types[0]], names=("new", "old"))
    assert diff.honest
    assert diff.ci_low <= diff.value <= diff.ci_high
    truth = world.value(world.target) - world.value(world.logging)
    assert diff.ci_low - 0.05 <= truth <= diff.ci_high + 0.05


# ---------------------------------------------------------------------------------------------------------------
# MRDR
# ---------------------------------------------------------------------------------------------------------------


def test_weighted_ridge_matches_numpy_weighted_least_squares():
    rng = np.random.default_rng(4)
    n, d, K, F = 600, 3, 2, 3
    X = rng.normal(size=(n, d))
    a = rng.integers(0, K, n)
    r = X[:, 0] + a + rng.normal(size=n)
    folds = rng.permutation(n) % F
    s = rng.uniform(0.1, 3.0, n)
    coef, intercept = _ridge_coefficients(X, a, r, K, folds, F, 0.0, True, sample_weight=s)
    for f in range(F):
        for k in range(K):
            rows = (folds != f) & (a == k)
            Z = np.column_stack([np.ones(rows.sum()), X[rows]]) * np.sqrt(s[rows])[:, None]
            beta = np.linalg.lstsq(Z, r[rows] * np.sqrt(s[rows]), rcond=None)[0]
            assert intercept[f, k] == pytest.approx(beta[0], abs=1e-8)
            assert coef[f, :, k] == pytest.approx(beta[1:], abs=1e-8)


def test_mrdr_weights_closed_form():
    w = mrdr_weights(np.array([1.0, 1.0, 0.5]), np.array([0.5, 0.25, 0.5]))
    raw = np.array([1 * 0.5 / 0.25, 1 * 0.75 / 0.0625, 0.5 * 0.5 / 0.25])
    assert w == pytest.approx(raw / raw.mean())


def test_mrdr_needs_a_target_and_dr_with_it_recovers_the_value():
    world, data, target, draw = _world_data(n=4000, seed=7)
    with pytest.raises(TypeError, match="target"):
        MRDRRewardModel().fit_predict(data)
    est = DR(reward_model=MRDRRewardModel()).estimate(data, target)
    truth = world.value(world.target)
    assert est.ci_low <= truth <= est.ci_high


# ---------------------------------------------------------------------------------------------------------------
# several logging versions
# ---------------------------------------------------------------------------------------------------------------


def _two_versions(n: int, seed: int):
    rng = np.random.default_rng(seed)
    version = np.repeat(["v1", "v2"], n // 2)
    p1 = np.where(version == "v1", 0.5, 0.1)
    a = (rng.random(n) < p1).astype(int)
    r = (rng.random(n) < 0.2 + 0.1 * a).astype(float)
    data = LoggedData(None, a, r, np.where(a == 1, p1, 1 - p1))
    props = np.column_stack([np.full(n, 0.5), np.where(a == 1, 0.1, 0.9)])
    return data, version, props


def test_stratified_is_the_precision_weighted_combination():
    data, version, _ = _two_versions(4000, 0)
    res = stratified_estimate(data, 1, version)
    pv = res.per_version
    lam = (1 / pv.se**2) / (1 / pv.se**2).sum()
    assert res.combined.value == pytest.approx(float((lam * pv.value).sum()))
    assert res.combined.se == pytest.approx(math.sqrt(1 / (1 / pv.se**2).sum()))
    assert list(per_version_diagnostics(data, 1, version).version) == ["v1", "v2"]
    with pytest.raises(ValueError, match="policy_version"):
        stratified_estimate(data, 1, version[:10])


def test_balanced_ips_equals_ips_when_the_versions_agree():
    data, version, _ = _two_versions(2000, 1)
    same = np.column_stack([data.propensity, data.propensity])
    assert balanced_ips(data, 1, same, version).value == pytest.approx(IPS().estimate(data, 1).value)
    with pytest.raises(ValueError, match="own version"):
        balanced_ips(data, 1, same[:, ::-1] * 0.5, version)


@pytest.mark.slow
def test_multilogger_estimates_cover_and_beat_naive_ips():
    truth = 0.3
    hits = {"stratified": 0, "balanced": 0}
    se = {"stratified": [], "balanced": [], "ips": []}
    reps = 300
    for i in range(reps):
        data, version, props = _two_versions(2000, 100 + i)
        s = stratified_estimate(data, 1, version).combined
        b = balanced_ips(data, 1, props, version)
        for name, e in (("stratified", s), ("balanced", b)):
            hits[name] += e.ci_low <= truth <= e.ci_high
            se[name].append(e.se)
        se["ips"].append(IPS(interval="normal").estimate(data, 1).se)
    for name in hits:
        assert 0.92 <= hits[name] / reps <= 0.98, (name, hits[name] / reps)
        assert np.mean(se[name]) < np.mean(se["ips"])


# ---------------------------------------------------------------------------------------------------------------
# coverage (slow)
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_bias_aware_intervals_cover_with_a_wrong_model():
    """A constant reward model (badly biased): DM's own interval would almost never cover; the bias-aware ones do."""
    world = World(seed=0)
    truth = world.value(world.target)
    reps, n = 600, 1000
    draw = world.draw(n, reps, seed=300)
    ests = {"DM": DM(), "SwitchDR": SwitchDR(), "DROS": DROS(), "DM(own)": DM(bias_aware=False)}
    hits = dict.fromkeys(ests, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiagnosticWarning)
        for i in range(reps):
            data, target = world.logged(draw, i), world.target_probs(draw, i)
            q = np.full((n, world.K), 0.3)
            for name, est in ests.items():
                res = est.estimate(data, target, q=q)
                hits[name] += res.ci_low <= truth <= res.ci_high
    rates = {k: v / reps for k, v in hits.items()}
    print(f"\nbias-aware coverage, {reps} replications: {rates}")
    for name in ("DM", "SwitchDR", "DROS"):
        assert 0.93 <= rates[name] <= 0.98, (name, rates[name])
    assert rates["DM(own)"] < 0.5


@pytest.mark.slow
def test_el_mean_t_calibration_restores_coverage_of_heavy_tailed_terms():
    """DR-like terms w * r of a deterministic target: a third of the rows logged with propensity 0.05 (weights 20),
    10 % conversion at 19.99, n = 2000 (kurtosis ~ 100). The chi-square calibration falls short; t_nu does not."""
    rng = np.random.default_rng(7)
    reps, n, c = 600, 2000, 0.1
    truth = 19.99 * c
    props = np.array([0.05, 0.45, 0.45])
    covered = chi_square = 0
    for _ in range(reps):
        p = props[rng.integers(0, 3, n)]
        x = (rng.random(n) < p) / p * 19.99 * (rng.random(n) < c)
        iv = el_mean_interval(x)
        covered += iv.low <= truth <= iv.high
        # -2 log R(truth) by the scipy reference, against the chi-square(1) calibration
        chi_square += 2 * _reference_profile((x - truth)[:, None], np.zeros((0, 1))) <= chi2.ppf(0.95, 1) * (1 + 1 / n)
    print(f"\nEL coverage of heavy-tailed terms: t_nu {covered / reps}, chi-square {chi_square / reps}")
    assert 0.94 <= covered / reps <= 0.97
    assert chi_square / reps <= covered / reps - 0.01


@pytest.mark.slow
def test_el_ips_covers_a_deterministic_target_where_the_normal_interval_falls_short():
    """Uniform logging over 10 arms, always the dearest plan (19.99, 5 % conversion), n = 2000."""
    rng = np.random.default_rng(5)
    reps, n, p, c = 1000, 2000, 0.1, 0.05
    truth = 19.99 * c
    taken = rng.random((reps, n)) < p
    conv = rng.random((reps, n)) < c
    el = normal = 0
    for i in range(reps):
        w = taken[i] / p
        r = np.where(taken[i], 19.99 * conv[i], 5.99 * conv[i])
        iv = ips_el_interval(w, r, w_max=1 / p, reward_range=(0.0, 19.99))
        nm = normal_interval(w * r)
        el += iv.low <= truth <= iv.high
        normal += nm.low <= truth <= nm.high
    print(f"\nEL-IPS coverage {el / reps}, normal {normal / reps}")
    assert 0.935 <= el / reps <= 0.97
    assert normal < el
