"""offline_eval.small_sample: the KL interval and the floor it puts under every interval of a target with fewer
than INFORMATIVE_ROWS_MIN informative rows (in memory, streaming and on Spark alike)."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats
from test_accumulators import assert_tables_equal

from offline_eval import DM, DR, IPS, Guardrail, LoggedData, compare, evaluate, rollout_report
from offline_eval.diagnostics import InformativeRows, RangeEnds, informative_counts, informative_rows
from offline_eval.evaluate import default_estimators
from offline_eval.schema import encode_decisions
from offline_eval.small_sample import (
    clip_to_range,
    ips_kl_interval,
    kl_difference_p_value,
    kl_interval,
    kl_p_value,
    small_sample_floor,
)
from offline_eval.streaming import evaluate_parquet

PRICES = np.array([5.0, 10.0, 20.0])
TOP = (0.0, 20.0)
UNIT = (0.0, 1.0)  # a retention flag's range
PAID = (5.0, 10.0)  # a monthly price paid: the base price 5 for most users, 10 for the few who upgrade


# ----------------------------------------------------------------------------------------------------------------
# the KL interval
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 7, 100, 5000])
def test_no_success_gives_the_closed_form_upper_end(n):
    low, high = kl_interval(0.0, n, 0.0, 1.0, alpha=0.05)
    assert low == 0.0
    assert high == pytest.approx(1.0 - 0.025 ** (1.0 / n), rel=1e-12)
    # rescaled to a range, and mirrored for the all-success case
    assert kl_interval(3.0, n, 3.0, 13.0, 0.05) == pytest.approx((3.0, 3.0 + 10.0 * high), rel=1e-12)
    assert kl_interval(1.0, n, 0.0, 1.0, 0.05) == pytest.approx((1.0 - high, 1.0), rel=1e-12)


@pytest.mark.parametrize(("k", "n"), [(0, 20), (1, 20), (3, 50), (10, 40), (37, 40), (250, 1000)])
def test_contains_the_exact_binomial_interval(k, n):
    """A Chernoff bound is never tighter than the exact (Clopper-Pearson) binomial interval at the same level, and
    it is not far off: its ends solve n KL = ln(2 / alpha), the tail exponent."""
    low, high = kl_interval(k / n, n, 0.0, 1.0, 0.05)
    cp_low = stats.beta.ppf(0.025, k, n - k + 1) if k > 0 else 0.0
    cp_high = stats.beta.ppf(0.975, k + 1, n - k) if k < n else 1.0
    assert low <= cp_low + 1e-12 and high >= cp_high - 1e-12
    assert high - low <= 2.0 * (cp_high - cp_low)
    p = k / n
    for end in (low, high):
        if 0.0 < end < 1.0 and end != p:
            kl = (p * np.log(p / end) if p > 0 else 0.0) + ((1 - p) * np.log((1 - p) / (1 - end)) if p < 1 else 0.0)
            assert n * kl == pytest.approx(np.log(40.0), rel=1e-9)


def test_covers_any_bounded_distribution_at_small_n():
    """Monte Carlo: three-point terms in [0, 20] (mostly 0, rare large values), n = 25: both sides hold at
    alpha / 2 (the guarantee is for every distribution in the range, not only two-point ones)."""
    rng = np.random.default_rng(11)
    values, probs = np.array([0.0, 5.0, 20.0]), np.array([0.9, 0.07, 0.03])
    mu = float(values @ probs)
    reps, n = 4000, 25
    draws = rng.choice(values, p=probs, size=(reps, n)).mean(axis=1)
    ends = np.array([kl_interval(m, n, 0.0, 20.0, 0.05) for m in draws])
    assert np.mean(ends[:, 0] > mu) <= 0.025 + 0.008
    assert np.mean(ends[:, 1] < mu) <= 0.025 + 0.008


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="high must be >= low"):
        kl_interval(0.5, 10, 1.0, 0.0)
    with pytest.raises(ValueError, match="n must be >= 1"):
        kl_interval(0.5, 0, 0.0, 1.0)
    with pytest.raises(ValueError, match="alpha"):
        kl_interval(0.5, 10, 0.0, 1.0, alpha=1.0)


def test_floor_applies_below_the_informative_rows_threshold_only():
    floor = small_sample_floor(300, 9, 0.3, 0.5, 3.0, (0.0, 10.0), 0.05)
    assert floor is not None
    assert floor.value_low == pytest.approx(kl_interval(0.3, 300, 0.0, 30.0, 0.05)[0], rel=1e-12)
    # the lift: a union bound of the target's and the logged rewards' intervals at alpha / 2 each
    v = kl_interval(0.3, 300, 0.0, 30.0, 0.025)
    r = kl_interval(0.5, 300, 0.0, 10.0, 0.025)
    assert (floor.lift_low, floor.lift_high) == pytest.approx((v[0] - r[1], v[1] - r[0]), rel=1e-12)
    assert small_sample_floor(300, 10, 0.3, 0.5, 3.0, (0.0, 10.0), 0.05) is None


# ----------------------------------------------------------------------------------------------------------------
# a world of rare conversions
# ----------------------------------------------------------------------------------------------------------------


def _rare_log(rng: np.random.Generator, n: int, rate: float, skewed: bool):
    """3 plans priced 5 / 10 / 20; conversions ~ rate; the target offers plan 2 to x0 = 1, plan 1 to the others."""
    x0 = (rng.random(n) < 0.5).astype(int)
    X = np.column_stack([x0, rng.normal(size=n)])
    conv = rate * np.array([[1.0, 1.0, 0.5], [1.0, 1.5, 1.5]])
    if skewed:
        P = np.where(x0[:, None] == 1, np.array([0.6, 0.3, 0.1]), np.array([0.1, 0.3, 0.6]))
    else:
        P = np.full((n, 3), 1.0 / 3.0)
    a = (rng.random(n)[:, None] > P.cumsum(1)).sum(1).clip(0, 2)
    r = PRICES[a] * (rng.random(n) < conv[x0, a])
    target = np.where(x0 == 1, 2, 1)
    truth = 0.5 * (conv[0, 1] * PRICES[1] + conv[1, 2] * PRICES[2])
    logged = 0.5 * sum(float((P[x0 == v][0] * conv[v] * PRICES).sum()) for v in (0, 1))
    return LoggedData(X, a, r, P[np.arange(n), a], probabilities=P), target, truth, logged


@pytest.mark.parametrize("skewed", [False, True])
def test_every_interval_covers_with_a_few_conversions(skewed):
    """n = 200 at 1% conversion (about 2.5 conversions per log): before the floor every estimator's 95% interval
    covered 0.56-0.75 here and a target without a conversion got DR / DM intervals of zero width. With the
    catalog's top price as reward_range, value, lift and paired-comparison intervals all cover at least 0.95."""
    ests = [dataclasses.replace(e, reward_range=TOP) for e in default_estimators()]
    hits: dict[str, list[int]] = {}
    reps = 120
    for s in range(reps):
        data, target, truth, logged = _rare_log(np.random.default_rng([7, s, skewed]), 200, 0.01, skewed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = evaluate(data, {"t": target}, ests)
            diff = compare(data, target, data.probabilities, estimator=ests[3])
        for row in table.itertuples():
            h = hits.setdefault(row.estimator, [0, 0])
            h[0] += row.ci_low <= truth <= row.ci_high
            h[1] += row.lift_ci_low <= truth - logged <= row.lift_ci_high
            if data.reward[data.action == 2].max() == 0.0 and row.estimator in ("DM", "DR", "DR-DM blend"):
                assert row.ci_high > 0.0 and row.interval.endswith(("+kl", "+kl)"))
        hits.setdefault("compare", [0, 0])[0] += diff.ci_low <= truth - logged <= diff.ci_high
        hits["compare"][1] += diff.interval.endswith("+kl")
    assert hits["compare"][1] > reps // 2  # the floor is what is being tested
    for name, (value_hits, lift_hits) in hits.items():
        assert value_hits / reps >= 0.95, (name, value_hits)
        if name != "compare":
            assert lift_hits / reps >= 0.95, (name, lift_hits)


@settings(derandomize=True, max_examples=300, deadline=None)
@given(ends=st.lists(st.floats(-50, 50), min_size=4, max_size=4), difference=st.booleans())
def test_clip_to_range_keeps_every_covered_truth_and_the_estimate(ends, difference):
    """Clipping to the set the quantity lies in (a value in [r_lo, r_hi], a difference in [r_lo - r_hi, r_hi - r_lo])
    never loses a truth the interval held -- so coverage is kept -- and never drops the point estimate; it only
    narrows, and stays inside that set unless the estimate itself lies outside it."""
    r_lo, r_hi = sorted(ends[:2])
    assume(r_hi > r_lo)
    low, high = sorted(ends[2:])
    allowed = (r_lo - r_hi, r_hi - r_lo) if difference else (r_lo, r_hi)
    for estimate in (low, 0.5 * (low + high), high):
        c_low, c_high = clip_to_range(low, high, estimate, (r_lo, r_hi), difference)
        assert c_low <= estimate <= c_high and low <= c_low <= c_high <= high
        for truth in np.linspace(*allowed, 41):
            if low <= truth <= high:
                assert c_low <= truth <= c_high
        if allowed[0] <= estimate <= allowed[1]:
            assert allowed[0] <= c_low and c_high <= allowed[1]
    assert clip_to_range(low, high, low, None, difference) == (low, high)
    with pytest.raises(ValueError, match="value_range must have low < high"):
        clip_to_range(low, high, low, (r_hi, r_lo), difference)


def test_evaluate_and_compare_clip_to_a_stated_reward_range(tmp_path):
    """With reward_range (the a-priori range of one reward) every interval of evaluate and compare is the one without
    it clipped by clip_to_range: values to [0, 20], lifts and paired differences to [-20, 20]. The rewards here run
    over the whole range [0, 20], so the small-sample floor and the EL-IPS interval are the same with and without
    it, and only the clipping differs; it binds (conversions at 1-3% put lower ends below 0). The streaming table
    clips identically."""
    data, _, _, _ = _rare_log(np.random.default_rng([9, 1]), 300, 0.02, True)
    assert (data.reward.min(), data.reward.max()) == TOP
    _write_parts(tmp_path, data, [100])
    ranged = [dataclasses.replace(e, reward_range=TOP) for e in default_estimators()]
    policies = {"duo": "duo", "family": "family"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = LoggedData.from_parquet(tmp_path)
        want, got = evaluate(data, policies), evaluate(data, policies, ranged)
        diffs = [(compare(data, "family", "duo", estimator=e), compare(data, "family", "duo", estimator=r))
                 for e, r in zip(default_estimators(), ranged, strict=True)]
        streamed = evaluate_parquet(tmp_path, policies, ranged)
    assert (want.ci_low < 0).sum() >= 4 and (got.ci_low >= 0).all() and (got.ci_high <= 20).all()
    for w, g in zip(want.itertuples(), got.itertuples(), strict=True):
        assert (g.ci_low, g.ci_high) == clip_to_range(w.ci_low, w.ci_high, w.value, TOP)
        assert (g.lift_ci_low, g.lift_ci_high) == clip_to_range(w.lift_ci_low, w.lift_ci_high, w.lift, TOP, True)
        assert (g.value, g.lift, g.recommended) == (w.value, w.lift, w.recommended)
    for w, g in diffs:
        assert (g.ci_low, g.ci_high) == clip_to_range(w.ci_low, w.ci_high, w.value, TOP, difference=True)
    assert_tables_equal(streamed, got)


def test_a_stated_range_that_does_not_hold_the_rewards_is_refused(tmp_path):
    """The floor, EL-IPS and the clipping are valid only on a range holding every reward: a stated range narrower
    than the logged rewards is a ValueError naming reward_range -- in memory (estimate, evaluate, compare) and
    streaming -- instead of an interval clipped to impossible ends."""
    data, _, _, _ = _rare_log(np.random.default_rng([9, 1]), 300, 0.02, True)
    _write_parts(tmp_path, data, [100])
    short = (0.0, 10.0)  # the log's rewards reach 20
    policies = {"duo": "duo"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = LoggedData.from_parquet(tmp_path)
        for call in (lambda: IPS(reward_range=short).estimate(data, "duo"),
                     lambda: evaluate(data, policies, [DR(reward_range=short)]),
                     lambda: compare(data, "family", "duo", estimator=DR(reward_range=short)),
                     lambda: evaluate_parquet(tmp_path, policies, [IPS(reward_range=short)], batch_rows=64)):
            with pytest.raises(ValueError, match=r"reward_range=\(0.0, 10.0\) does not hold the logged rewards"):
                call()
        # the range holding every reward still evaluates, in both engines alike
        assert_tables_equal(evaluate_parquet(tmp_path, policies, [IPS(reward_range=TOP)], batch_rows=64),
                            evaluate(data, policies, [IPS(reward_range=TOP)]))


def test_enough_informative_rows_leave_intervals_alone():
    data, target, _, _ = _rare_log(np.random.default_rng(3), 4000, 0.05, False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = evaluate(data, {"t": target})
        est = IPS().estimate(data, target)
    assert est.diagnostics.informative_rows >= 10
    assert not any("+kl" in kind for kind in table.interval)
    assert est.interval == "el-ips"


def _write_parts(path: Path, data: LoggedData, cuts: list[int]) -> None:
    bounds = [0, *cuts, data.n]
    P = data.probabilities
    assert P is not None
    for p in range(len(bounds) - 1):
        rows = slice(bounds[p], bounds[p + 1])
        m = bounds[p + 1] - bounds[p]
        table = encode_decisions(
            event_id=[f"e{i:05d}" for i in range(bounds[p], bounds[p + 1])],
            timestamp_us=np.arange(bounds[p], bounds[p + 1], dtype=np.int64) + 1_700_000_000_000_000,
            context=data.context[rows], action=data.action[rows], propensity=data.propensity[rows],
            probabilities=P[rows], eligible=np.ones((m, 3), dtype=bool), policy="logger", policy_version="v1",
            arms=["solo", "duo", "family"], reward=data.reward[rows],
        )
        pq.write_table(table, path / f"part-{p:08d}-x.parquet")


def _zero_conversion_log(tmp_path: Path) -> tuple[Path, dict]:
    rng = np.random.default_rng(5)
    data, _, _, _ = _rare_log(rng, 600, 0.02, False)
    reward = data.reward.copy()
    reward[data.action == 2] = 0.0  # the family plan never converted in the log
    reward[(data.action == 0) & (rng.random(data.n) < 0.3)] = 5.0  # and solo often did
    data = LoggedData(data.context, data.action, reward, data.propensity, probabilities=data.probabilities)
    _write_parts(tmp_path, data, [150, 420])
    # a target with no informative row, one with a few, and one past the threshold
    return tmp_path, {"family": "family", "duo": "duo", "solo": "solo"}


def _retention_parts(tmp_path: Path, mass: float = 1.0, rare: float = 0.0) -> tuple[Path, dict]:
    """A retention flag (1 unless churned) over 900 rows in 3 parts, the first without a churner: 4 churners among
    the family plan's offers, 2 among solo's (floored) and 15 among duo's (not floored). ``mass`` and ``rare`` in
    place of 1 and 0: e.g. 5 and 10 for a price paid whose mass sits at a non-zero bottom."""
    rng = np.random.default_rng(8)
    n = 900
    P = np.full((n, 3), 1.0 / 3.0)
    action = rng.integers(0, 3, n)
    reward = np.full(n, mass)
    for arm, k in ((2, 4), (0, 2), (1, 15)):
        reward[rng.choice(np.flatnonzero((action == arm) & (np.arange(n) >= 300)), k, replace=False)] = rare
    data = LoggedData(rng.normal(size=(n, 2)), action, reward, P[np.arange(n), action], probabilities=P)
    path = tmp_path / f"retention-{mass:g}-{rare:g}"
    path.mkdir()
    _write_parts(path, data, [300, 620])
    return path, {"family": "family", "duo": "duo", "solo": "solo"}


def test_streaming_floors_exactly_as_in_memory(tmp_path):
    """The floor needs n, the means of w r, w and r, the weight bound, the reward range and the informative counts:
    merged across part files and batches (of which most have enough informative rows alone to skip the weight
    bound), it equals the in-memory one. For a retention flag the counts are of the rows below the top, merged from
    the range's ends (a first part without a churner has range [1, 1]) and, on a stated range, from its ends."""
    path, targets = _zero_conversion_log(tmp_path)
    ests = default_estimators() + [dataclasses.replace(e, reward_range=TOP, alpha=0.1) for e in default_estimators()[:2]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = LoggedData.from_parquet(path)
        want = evaluate(data, targets, ests)
        for batch_rows in (64, 1000):
            assert_tables_equal(evaluate_parquet(path, targets, ests, batch_rows=batch_rows), want)
    kinds = want.groupby("policy").interval.apply(lambda k: all("+kl" in x for x in k))
    assert kinds["family"] and kinds["duo"] and not kinds["solo"]
    family = want[want.policy == "family"]
    assert (family.ci_high > 0).all() and (family.value == 0).all()

    for (mass, rare), stated in (((1.0, 0.0), UNIT), ((5.0, 10.0), PAID)):  # mass at the top; at a non-zero bottom
        path, targets = _retention_parts(tmp_path, mass, rare)
        ests = default_estimators() + [dataclasses.replace(e, reward_range=stated, alpha=0.1)
                                       for e in default_estimators()[:4]]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = evaluate(LoggedData.from_parquet(path), targets, ests)
            for batch_rows in (64, 1000):
                assert_tables_equal(evaluate_parquet(path, targets, ests, batch_rows=batch_rows), want)
        kinds = want.groupby("policy").interval.apply(lambda k: all("+kl" in x for x in k))
        assert kinds["family"] and kinds["solo"]
        assert not want[want.policy == "duo"].interval.str.contains("+kl", regex=False).any()
        assert want[want.policy == "family"].warnings.str.contains("only 4 row(s)", regex=False).all()
        # both tight: the floor's terms sit at the end where the mass is (4 rare rows among 900, weights 0 or 3)
        family = want[(want.policy == "family") & (want.estimator == "DR")].iloc[0]
        assert family.ci_high - family.ci_low < 0.05 * (stated[1] - stated[0]), (mass, family.ci_low, family.ci_high)


@pytest.mark.slow
def test_spark_floors_exactly_as_in_memory(spark, tmp_path):
    from offline_eval.spark import evaluate as spark_evaluate

    arms = ["solo", "duo", "family"]
    path, targets = _zero_conversion_log(tmp_path)
    ests = default_estimators()[:2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = evaluate(LoggedData.from_parquet(path), targets, ests)
        got = spark_evaluate(spark.read.parquet(str(path)).repartition(3, "event_id"), targets, ests, arms=arms)
    assert_tables_equal(got, want)
    assert any("+kl" in kind for kind in got.interval)
    for (mass, rare), stated in (((1.0, 0.0), UNIT), ((5.0, 10.0), PAID)):  # mass at the top; at a non-zero bottom
        retention, retention_targets = _retention_parts(tmp_path, mass, rare)
        stated_ests = [*ests, IPS(reward_range=stated, alpha=0.1)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want_end = evaluate(LoggedData.from_parquet(retention), retention_targets, stated_ests)
            got_end = spark_evaluate(spark.read.parquet(str(retention)).repartition(3, "event_id"),
                                     retention_targets, stated_ests, arms=arms)
        assert_tables_equal(got_end, want_end)
        assert got_end[got_end.policy == "family"].interval.str.contains("+kl", regex=False).all()


# ----------------------------------------------------------------------------------------------------------------
# p-values that invert the KL intervals (rollout_report's guardrail tests on a floored interval)
# ----------------------------------------------------------------------------------------------------------------


def _bisected_level(excludes, steps: int = 200) -> float:
    """Half the smallest two-sided level in (0, 1) at which ``excludes(level)`` holds (bisection on the log level;
    0.5 when even level 1 does not)."""
    lo, hi = -700.0, 0.0
    if not excludes(1.0 - 1e-15):
        return 0.5
    if excludes(np.exp(lo)):
        return 0.0
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if excludes(np.exp(mid)) else (mid, hi)
    return float(np.exp(hi)) / 2.0


@pytest.mark.parametrize(("mean", "n", "low", "high", "threshold", "upper"), [
    (0.0, 100, 0.0, 1.0, 0.03, True),  # no success: 0.97^100
    (0.05, 200, 0.0, 1.0, 0.12, True),
    (0.3, 50, 0.0, 1.0, 0.1, False),
    (1.5, 300, 0.0, 60.0, 4.0, True),  # IPS terms of a plan priced 20 under weight 3
    (-0.2, 80, -2.0, 0.0, -0.9, False),
])
def test_kl_p_value_inverts_the_kl_interval(mean, n, low, high, threshold, upper):
    p = kl_p_value(mean, n, low, high, threshold, upper)

    def excludes(level: float) -> bool:
        lo_end, hi_end = kl_interval(mean, n, low, high, level)
        return hi_end < threshold if upper else lo_end > threshold

    assert p == pytest.approx(_bisected_level(excludes), rel=1e-6)
    x, t = (mean - low) / (high - low), (threshold - low) / (high - low)  # the closed form
    kl = (x * np.log(x / t) if x > 0 else 0.0) + (1 - x) * np.log((1 - x) / (1 - t))
    assert p == pytest.approx(np.exp(-n * kl), rel=1e-12)


def test_kl_p_value_edges():
    assert kl_p_value(0.3, 50, 0.0, 1.0, 0.2, upper=True) == 1.0  # the mean is above: no level excludes it
    assert kl_p_value(0.3, 50, 0.0, 1.0, 1.5, upper=True) == 0.0  # beyond the range: every level does
    assert kl_p_value(0.0, 50, 0.0, 0.0, 0.1, upper=True) == 0.0  # a point range
    assert kl_p_value(0.0, 50, 0.0, 0.0, -0.1, upper=True) == 1.0
    with pytest.raises(ValueError, match="threshold must be finite"):
        kl_p_value(0.3, 50, 0.0, 1.0, float("nan"), upper=True)


@pytest.mark.parametrize(("first", "second", "threshold", "upper"), [
    ((0.0, 0.0, 60.0), (0.3, 0.0, 20.0), 0.6, True),  # a target without outcomes against the logged rewards
    ((0.9, 0.0, 60.0), (0.3, 0.0, 20.0), -1.5, False),
    ((0.04, 0.0, 20.0), (0.16, 0.0, 10.0), 0.2, True),  # a refund guardrail: candidate vs logging
    ((0.2, -5.0, 5.0), (0.2, 0.0, 1.0), 1.5, True),
])
def test_kl_difference_p_value_inverts_the_union_bound(first, second, threshold, upper):
    """Half the smallest level at which ``[lo_1 - hi_2, hi_1 - lo_2]`` (each side's KL interval at alpha / 2, as
    compare and the lift floor build it) excludes the threshold: the report's floored guardrail p-value."""
    n = 400
    p = kl_difference_p_value(first, second, n, threshold, upper)

    def excludes(level: float) -> bool:
        a = kl_interval(first[0], n, first[1], first[2], level / 2)
        b = kl_interval(second[0], n, second[1], second[2], level / 2)
        return a[1] - b[0] < threshold if upper else a[0] - b[1] > threshold

    assert 0.0 < p < 0.5
    assert p == pytest.approx(_bisected_level(excludes), rel=1e-6)
    # the union bound: at that level both sides' one-sided Chernoff bounds are p / 2 each
    a = kl_interval(first[0], n, first[1], first[2], p)
    b = kl_interval(second[0], n, second[1], second[2], p)
    end_a, end_b = (a[1], b[0]) if upper else (a[0], b[1])
    assert end_a - end_b == pytest.approx(threshold, abs=1e-9)
    assert kl_p_value(first[0], n, first[1], first[2], end_a, upper) == pytest.approx(p / 2, rel=1e-6)
    assert kl_p_value(second[0], n, second[1], second[2], end_b, not upper) == pytest.approx(p / 2, rel=1e-6)


def test_kl_difference_p_value_edges():
    assert kl_difference_p_value((0.5, 0.0, 1.0), (0.1, 0.0, 1.0), 100, 0.2, upper=True) == 1.0  # wrong side
    assert kl_difference_p_value((0.0, 0.0, 1.0), (0.5, 0.0, 1.0), 100, 2.0, upper=True) == 0.0  # beyond range
    with pytest.raises(ValueError, match="second must be"):
        kl_difference_p_value((0.0, 0.0, 1.0), (0.5, 1.0, 0.0), 100, 0.2, upper=True)


# ----------------------------------------------------------------------------------------------------------------
# support deficit: the EL-IPS constraint E[w] = 1 does not hold
# ----------------------------------------------------------------------------------------------------------------


def _greedy_log(n: int = 2000) -> tuple[LoggedData, np.ndarray]:
    """A greedy logger (propensity 1) that only ever takes arms 0 and 1 of 3; a uniform target puts 1/3 on arm 2."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 2))
    action = (X[:, 0] > 0).astype(int)
    probs = np.zeros((n, 3))
    probs[np.arange(n), action] = 1.0
    reward = rng.binomial(1, 0.3, size=n).astype(float)
    return LoggedData(X, action, reward, np.ones(n), probabilities=probs), np.full((n, 3), 1.0 / 3.0)


def test_a_support_deficit_gives_ips_an_interval_of_the_terms_and_recommends_the_blend(tmp_path):
    """Every weight is 1/3, so the EL-IPS constraint E[w] = 1 was infeasible and IPS got [0.0995, 0.0995]; evaluate
    then recommended the narrowest row (IPS, which ignores the third of the mass on the never-logged arm). Now IPS /
    SNIPS use the EL interval of their own terms, and the blend -- the reward model speaks for the unlogged arm -- is
    recommended although no row is honest; streaming agrees."""
    data, target = _greedy_log()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = IPS().estimate(data, target)
        table = evaluate(data, {"uniform": target})
    assert est.interval == "el" and est.ci_high - est.ci_low > 0.01
    assert est.ci_low < est.value < est.ci_high
    assert not table.honest.any()
    assert table.loc[table.recommended, "estimator"].tolist() == ["DR-DM blend"]
    rows = table.set_index("estimator")
    assert rows.loc["IPS", "interval"] == "el" and rows.loc["SNIPS", "interval"] == "el"
    assert (rows.ci_high - rows.ci_low).min() > 0.005


def test_support_deficit_intervals_stream_as_in_memory(tmp_path):
    """The same rule from merged accumulators (arm targets: the logger never takes 'family')."""
    data, _ = _greedy_log(900)
    _write_parts(tmp_path, data, [300, 700])
    targets = {"family": "family", "solo": "solo"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = evaluate(LoggedData.from_parquet(tmp_path), targets)
        got = evaluate_parquet(tmp_path, targets, batch_rows=128)
    assert_tables_equal(got, want)
    family = want[want.policy == "family"].set_index("estimator")
    assert family.loc["IPS", "interval"].startswith("el") and not family.loc["IPS", "interval"].startswith("el-ips")
    assert family.loc["DR-DM blend", "recommended"]


def test_a_single_estimate_is_clipped_to_its_reward_range_as_the_table_is():
    """Estimator.estimate clips like evaluate's table: a conversion rate's interval does not start below 0."""
    rng = np.random.default_rng(2)
    n = 400
    action = rng.integers(0, 2, n)
    reward = (rng.random(n) < 0.02).astype(float)
    data = LoggedData(None, action, reward, np.full(n, 0.5))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        free = IPS(interval="normal").estimate(data, 1)
        clipped = IPS(interval="normal", reward_range=(0.0, 1.0)).estimate(data, 1)
        row = evaluate(data, {"t": 1}, [IPS(interval="normal", reward_range=(0.0, 1.0))]).iloc[0]
    assert free.ci_low < 0.0  # the normal interval of a rare rate
    assert clipped.ci_low == 0.0 and clipped.ci_high == pytest.approx(free.ci_high)  # (observed range = stated)
    assert (row.ci_low, row.ci_high) == (clipped.ci_low, clipped.ci_high)


# ----------------------------------------------------------------------------------------------------------------
# a metric whose mass sits at the top of its range (a retention flag): informative rows are the rows below it
# ----------------------------------------------------------------------------------------------------------------


def test_informative_rows_are_the_rows_off_the_end_where_the_mass_sits():
    """Hand counts: revenue with zeros at the bottom gives the non-zero rewards (the count before the rule); a
    mostly-1 flag gives its weighted zeros; a stated range counts the rows at its own ends; a constant has none."""
    w = np.array([0.0, 3.0, 3.0, 3.0, 1.5, 0.0, 1.5])
    revenue = np.array([20.0, 0.0, 5.0, 0.0, 10.0, 0.0, 0.0])
    assert informative_rows(w, revenue) == 2 == np.count_nonzero((w > 0) & (revenue != 0))
    assert informative_rows(w, revenue, TOP) == 2  # stated [0, 20]: no weighted row at 20 either
    retention = np.array([0.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    assert informative_counts(w, retention, UNIT) == InformativeRows(above_low=4, below_high=1)
    assert informative_rows(w, retention) == 1 and informative_counts(w, retention).at_top
    # the observed range [0.5, 1] of a flag that never hit 0: rows at 0.5 are below the top, and the stated [0, 1]
    # counts rows below its top alike
    halves = np.where(retention == 0.0, 0.5, 1.0)
    assert informative_rows(w, halves) == informative_rows(w, halves, UNIT) == 1
    assert informative_rows(w, np.full(7, 4.0)) == 0 and informative_rows(w, np.full(7, 4.0), (0.0, 10.0)) == 5


@settings(derandomize=True, max_examples=200, deadline=None)
@given(values=st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.0]), min_size=1, max_size=40),
       weights=st.lists(st.sampled_from([0.0, 1.0, 2.5]), min_size=40, max_size=40),
       cuts=st.lists(st.integers(1, 39), max_size=4))
def test_range_ends_merge_to_the_whole_logs_counts(values, weights, cuts):
    """The observed range's ends and the weighted rows at each, merged over any split of the rows in any order,
    equal those of the whole log (a batch whose extreme is not the merged one adds nothing to that end)."""
    r = np.array(values)
    w = np.array(weights[: len(r)])
    bounds = sorted({0, len(r), *(c for c in cuts if c < len(r))})
    parts = [RangeEnds.of(w[a:b], r[a:b]) for a, b in zip(bounds, bounds[1:])]
    merged = parts[-1]
    for part in reversed(parts[:-1]):
        merged = part.merge(merged) if len(parts) % 2 else merged.merge(part)
    assert merged == RangeEnds.of(w, r)
    assert merged.informative() == informative_counts(w, r)


def _retention_log(rng: np.random.Generator, n: int, churn: float):
    """3 arms, uniform logging; a retention flag (1 unless the user churns, with probability churn * mult[x0, a]);
    target A offers 2 to x0 = 1 and 1 to the others (half the logger's churn), C offers 0 / 2 (1.5 times it)."""
    x0 = (rng.random(n) < 0.5).astype(int)
    X = np.column_stack([x0, rng.normal(size=n)])
    mult = np.array([[1.0, 0.5, 1.5], [1.5, 1.0, 0.5]])
    P = np.full((n, 3), 1.0 / 3.0)
    a = rng.integers(0, 3, n)
    r = 1.0 - (rng.random(n) < churn * mult[x0, a])
    targets = {"A": np.where(x0 == 1, 2, 1), "C": np.where(x0 == 1, 0, 2)}
    truth = {"A": 1.0 - churn * 0.5 * (mult[0, 1] + mult[1, 2]), "C": 1.0 - churn * 0.5 * (mult[0, 2] + mult[1, 0]),
             "logging": 1.0 - churn * mult.mean()}
    return LoggedData(X, a, r, P[np.arange(n), a], probabilities=P), targets, truth


def _assert_floored_and_covering(logs, ests, reps: int, check=None):
    """For each (data, targets, truth) of ``logs``: every interval of ``evaluate`` (target A, ``ests``) and of
    ``compare`` (A vs C, the last estimator) is floored (``+kl``); values, lifts and the difference cover the truth
    in at least 95% of the ``reps`` logs. ``check(data, targets, table, difference)`` runs on each log. Returns the last log's
    data, targets and table."""
    hits: dict[str, list[int]] = {}
    for data, targets, truth in logs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = evaluate(data, {"A": targets["A"]}, ests)
            diff = compare(data, targets["A"], targets["C"], estimator=ests[-1])
        for row in table.itertuples():
            h = hits.setdefault(row.estimator, [0, 0])
            assert row.interval.endswith(("+kl", "+kl)"))
            h[0] += row.ci_low <= truth["A"] <= row.ci_high
            h[1] += row.lift_ci_low <= truth["A"] - truth["logging"] <= row.lift_ci_high
        assert diff.interval.endswith("+kl")
        hits.setdefault("compare", [0, 0])[0] += diff.ci_low <= truth["A"] - truth["C"] <= diff.ci_high
        hits["compare"][1] += 1
        if check is not None:
            check(data, targets, table, diff)
    assert set(hits) == {"DM", "DR", "DR-DM blend", "compare"}
    for name, (value_hits, lift_hits) in hits.items():
        assert value_hits / reps >= 0.95 and lift_hits / reps >= 0.95, (name, value_hits, lift_hits)
    return data, targets, table


def test_a_metric_at_the_top_of_its_range_is_floored_and_covers():
    """A retention flag with about 3 zeros in 2,000 rows. Counting non-zero rewards found ~2,000 informative rows
    and applied no floor: on these 150 seeded logs DR and the blend covered 0.41, DM 0.83, their lifts 0.87-0.89
    and a paired DR difference 0.79. Counting the rows below the top, every interval is floored from the terms
    r_hi - w (r_hi - r) and covers (1.00 each)."""
    ests = [dataclasses.replace(e, reward_range=UNIT) for e in (DM(), DR())]
    n, reps = 2000, 150
    logs = (_retention_log(np.random.default_rng([41, s]), n, 3.0 / n) for s in range(reps))
    data, targets, table = _assert_floored_and_covering(logs, ests, reps)
    # tight all the same: the floor rests on the rows below the top, not on the weights' spread (the KL interval
    # of the IPS terms w r in [0, 3], the form for revenue, is about 9 times as wide in this log)
    blend = table[table.estimator == "DR-DM blend"].iloc[0]
    w = 3.0 * (data.action == targets["A"])
    low, high = ips_kl_interval(n, float(np.mean(w * data.reward)), 3.0, UNIT, 0.05)
    assert 0.0 < blend.ci_high - blend.ci_low < 0.2 * (high - low)


def _price_paid_log(rng: np.random.Generator, n: int, upgrade: float):
    """The retention world's log and targets with a price paid in PAID: the base price 5, or 10 for a user who
    upgrades (with probability upgrade * mult[x0, a]): A upgrades half as often as the logger, C 1.5 times."""
    data, targets, truth = _retention_log(rng, n, upgrade)
    paid = LoggedData(data.context, data.action, 10.0 - 5.0 * data.reward, data.propensity,
                      probabilities=data.probabilities)
    return paid, targets, {name: 10.0 - 5.0 * value for name, value in truth.items()}


def test_a_metric_at_a_nonzero_bottom_is_floored_tightly_and_covers():
    """A price paid in [5, 10], 5 but for about 10 upgrades in 2,000 rows (median 2 among A's offers, weights 0 or
    3). Its mass sits at the bottom, 5, not at 0, so the IPS terms w r (in [0, 30]) do not sit at an end: their
    floor was 1.36 wide (median over 200 seeded logs, these 60 their first), the DM / DR / blend value intervals
    0.73 (clipped to the range), their lifts 2.14, a paired DR difference 2.96. The terms 5 + w (r - 5), in
    [5, 20], give 5 on every row at the bottom: floor 0.064, values 0.066, lifts 0.11, the difference 0.16; every
    interval covers (1.00 before and after)."""
    from offline_eval.small_sample import ips_kl_side

    ests = [dataclasses.replace(e, reward_range=PAID) for e in (DM(), DR())]
    n, reps = 2000, 60

    def tight(data, targets, table, diff):
        w = 3.0 * (data.action == targets["A"])
        ips = float(np.mean(w * data.reward))
        assert ips_kl_side(ips, 3.0, PAID, weight_mean=float(w.mean())) == pytest.approx(
            (float(np.mean(5.0 + w * (data.reward - 5.0))), 5.0, 20.0))
        # tight: a tenth of the IPS terms' KL interval (the form with a support deficit) and of the paired one
        blend = table[table.estimator == "DR-DM blend"].iloc[0]
        low, high = ips_kl_interval(n, ips, 3.0, PAID, 0.05, supported=False)
        assert 0.0 < blend.ci_high - blend.ci_low < 0.1 * (high - low)
        assert diff.ci_high - diff.ci_low < 0.1 * (PAID[1] - PAID[0])

    logs = (_price_paid_log(np.random.default_rng([61, s]), n, 10.0 / n) for s in range(reps))
    _assert_floored_and_covering(logs, ests, reps, tight)


def test_rollout_report_judges_a_guardrail_at_a_nonzero_bottom():
    """rollout_report on the price-paid world, revenue as the primary metric, the price paid a guardrail on its
    stated range (5, 10) (higher is better). A lowers it by 0.0125. At a margin of 0.1 both candidates used to be
    inconclusive (0 of 40 logs passed: the floor of w r in [0, 30] and of the logged rewards in [0, 10] gave
    differences 2.3 wide); now they pass in every log (width 0.15), while at A's true harm as the margin A is never
    passed, and the floored differences cover."""
    n, reps = 2000, 12
    prices, conv = np.array([5.0, 10.0, 20.0]), np.array([[0.10, 0.08, 0.03], [0.05, 0.06, 0.05]])
    passed = {"tight": 0, "loose": 0}
    for s in range(reps):
        data, targets, truth = _price_paid_log(np.random.default_rng([61, s]), n, 10.0 / n)
        rng = np.random.default_rng([62, s])
        x0 = data.context[:, 0].astype(int)
        revenue = prices[data.action] * (rng.random(n) < conv[x0, data.action])
        logged = LoggedData(data.context, data.action, revenue, data.propensity, probabilities=data.probabilities)
        harm = truth["logging"] - truth["A"]
        rep = rollout_report(logged, targets, reward_range=TOP, guardrails={
            name: Guardrail(data.reward, margin=margin, higher_is_better=True, value_range=PAID)
            for name, margin in (("tight", harm), ("loose", 0.1))})
        for name in passed:
            rows = rep.table[rep.table.metric == name].set_index("policy")
            for policy in ("A", "C"):
                row = rows.loc[policy]
                assert "+kl" in row.interval
                assert row.diff_ci_low <= truth[policy] - truth["logging"] <= row.diff_ci_high
                assert row.diff_ci_high - row.diff_ci_low < 0.3
            passed[name] += rows.loc["A", "status"] == "non-inferior"
    assert passed == {"tight": 0, "loose": reps}


def test_rollout_report_does_not_pass_a_top_heavy_guardrail_at_its_margin():
    """rollout_report on the same world: revenue as the primary metric, retention as a guardrail with its stated
    range (0, 1) and the margin at C's true harm. Before, C was declared non-inferior in 5 of these 40 logs (at a
    nominal 1.25%) and the difference intervals covered 0.875; now C is never passed, the floored intervals cover
    A's and C's true changes, and the table counts the churners among the candidates' offers as their informative
    rows."""
    n, reps = 2000, 40
    prices, conv = np.array([5.0, 10.0, 20.0]), np.array([[0.10, 0.08, 0.03], [0.05, 0.06, 0.05]])
    passed = covered = 0
    for s in range(reps):
        rng = np.random.default_rng([43, s])
        data, targets, truth = _retention_log(rng, n, 3.0 / n)
        x0 = data.context[:, 0].astype(int)
        revenue = prices[data.action] * (rng.random(n) < conv[x0, data.action])
        logged = LoggedData(data.context, data.action, revenue, data.propensity, probabilities=data.probabilities)
        margin = truth["logging"] - truth["C"]
        rep = rollout_report(logged, targets, reward_range=(0.0, 20.0), guardrails={
            "retention": Guardrail(data.reward, margin=margin, higher_is_better=True, value_range=UNIT)})
        rows = rep.table[rep.table.metric == "retention"].set_index("policy")
        for name in ("A", "C"):
            row = rows.loc[name]
            covered += row.diff_ci_low <= truth[name] - truth["logging"] <= row.diff_ci_high
            churned = int(np.count_nonzero((data.action == targets[name]) & (data.reward == 0.0)))
            assert row.informative_rows == churned and "+kl" in row.interval
        passed += rows.loc["C", "status"] == "non-inferior"
    assert passed == 0 and covered == 2 * reps


def test_stated_and_observed_counts_differ_and_merge_alike():
    """One plan priced 10 that converts on 3 of 4 of the target's offers: on the observed range [0, 10] the few
    non-conversions are informative (floored), on a stated range up to 20 the conversions are (not floored). The
    estimates' diagnostics, floors and tables agree between in memory and accumulators merged over batches, for an
    estimator with either range in the same layout."""
    from offline_eval.accumulators import Layout, PolicyAccumulator, evaluation_table

    rng = np.random.default_rng(16)
    n = 64
    action = rng.integers(0, 2, n)
    reward = 10.0 * ((action == 1) & (rng.random(n) < 0.75))
    data = LoggedData(None, action, reward, np.full(n, 0.5), probabilities=np.full((n, 2), 0.5))
    on = action == 1
    converted, missed = int(np.count_nonzero(on & (reward > 0))), int(np.count_nonzero(on & (reward == 0)))
    assert missed < 10 <= converted
    ests = [IPS(), IPS(reward_range=(0.0, 20.0), alpha=0.1)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = evaluate(data, {"t": 1}, ests)
        layout = Layout.of(ests)
        parts = [PolicyAccumulator.of(layout, data.subset(np.arange(lo, hi)), 1, [], start=lo)
                 for lo, hi in ((0, 20), (20, 41), (41, n))]
        got = evaluation_table({"t": parts[2].merge(parts[0].merge(parts[1]))})
        observed, stated = (e.estimate(data, 1).diagnostics.informative_rows for e in ests)
    assert (observed, stated) == (missed, converted)
    assert want.interval.str.contains("+kl", regex=False).tolist() == [True, False]
    assert_tables_equal(got, want)


def test_the_small_sample_warning_names_only_the_estimators_it_applies_to():
    """The data of the test above: only the estimator on the observed range has too few informative rows (its
    misses) and is floored. The warning that its interval is widened was raised for the policy as a whole (the
    pair's diagnostics counted on the observed range), even for an estimator on a stated range that is not floored
    -- alone, it got a warning about a widening that did not happen. Now it names the estimator it applies to, in
    memory and from accumulators alike."""
    from offline_eval.accumulators import Layout, PolicyAccumulator, evaluation_table
    from offline_eval.diagnostics import DiagnosticWarning

    rng = np.random.default_rng(16)
    n = 64
    action = rng.integers(0, 2, n)
    reward = 10.0 * ((action == 1) & (rng.random(n) < 0.75))
    data = LoggedData(None, action, reward, np.full(n, 0.5), probabilities=np.full((n, 2), 0.5))
    missed = int(np.count_nonzero((action == 1) & (reward == 0)))
    stated = IPS(reward_range=(0.0, 20.0), alpha=0.1)

    def messages(ests, from_accumulators):
        with warnings.catch_warnings(record=True) as got:
            warnings.simplefilter("always")
            if from_accumulators:
                evaluation_table({"t": PolicyAccumulator.of(Layout.of(ests), data, 1, [], start=0)})
            else:
                table = evaluate(data, {"t": 1}, ests)
                assert table.interval.str.contains("+kl", regex=False).tolist() == [e.reward_range is None
                                                                                    for e in ests]
        return [str(w.message) for w in got if issubclass(w.category, DiagnosticWarning)]

    small = f"only {missed} row(s) the target weights"
    for from_accumulators in (False, True):
        assert not [m for m in messages([stated], from_accumulators) if small in m]
        both = [m for m in messages([IPS(), stated], from_accumulators) if small in m]
        assert len(both) == 1 and both[0].startswith(f"policies['t']: IPS: {small}"), both
        alone = [m for m in messages([IPS()], from_accumulators) if small in m]  # shared by every estimator
        assert len(alone) == 1 and alone[0].startswith(f"policies['t']: {small}"), alone


def _reference_counts(w: np.ndarray, r: np.ndarray, value_range=None) -> tuple[int, int]:
    """(weighted rows above low, weighted rows below high), by hand: on ``value_range``, else on r's min / max."""
    low, high = (r.min(), r.max()) if value_range is None else value_range
    on = w > 0
    return int(sum(on & (r > low))), int(sum(on & (r < high)))


@settings(derandomize=True, max_examples=150, deadline=None)
@given(values=st.lists(st.sampled_from([-3.0, -1.0, -0.0, 0.0, 1.0, 2.5]), min_size=2, max_size=30),
       arms=st.lists(st.integers(0, 2), min_size=30, max_size=30),
       cuts=st.lists(st.integers(1, 29), max_size=3), stated=st.sampled_from([(-3.0, 2.5), (0.0, 1.0), (1.0, 1.0)]),
       offset=st.sampled_from([0.0, 5.0]))
def test_counts_floors_and_forms_merge_as_in_memory(values, arms, cuts, stated, offset):
    """Negative rewards, both zeros, one-point ranges (observed and stated), ranges whose bottom is not 0 (shifted
    by ``offset``), batches whose rows are all at one value or unweighted: the accumulators merged over any split
    count the informative rows on the observed and on a stated range as a hand count of the whole log, and floor
    (form and numbers) as in memory, whose value floor is the KL interval of the terms by hand at the end where the
    mass sits (a stated range that does not hold every reward is refused by both); each batch's RangeEnds, the empty
    one included, merge to the whole log's."""
    from offline_eval.accumulators import Layout, PolicyAccumulator, _small_sample_floor, informative
    from offline_eval.estimators import resolve_target

    r = np.array(values) + offset
    stated = (stated[0] + offset, stated[1] + offset)
    n = len(r)
    a = np.array(arms[:n])
    P = np.tile([0.25, 0.25, 0.5], (n, 1))
    data = LoggedData(None, a, r, P[np.arange(n), a], probabilities=P)
    ests = [IPS(), IPS(reward_range=stated)]
    layout = Layout.of(ests)
    bounds = sorted({0, n, *(c for c in cuts if c < n)})
    parts = [PolicyAccumulator.of(layout, data.subset(np.arange(lo, hi)), 0, [], start=lo)
             for lo, hi in zip(bounds, bounds[1:])]
    merged = parts[-1]
    for part in reversed(parts[:-1]):
        merged = part.merge(merged)
    resolved = resolve_target(data, 0)
    w = resolved.weights
    ends = RangeEnds.of(w[:0], r[:0])  # no rows: the identity of the merge
    for lo, hi in zip(bounds, bounds[1:]):
        ends = ends.merge(RangeEnds.of(w[lo:hi], r[lo:hi]))
    assert ends == resolved.range_ends() and ends.low == r.min() and ends.high == r.max()
    if not stated[0] <= r.min() <= r.max() <= stated[1]:  # a stated range must hold every reward
        for count in (lambda: informative(merged, stated), lambda: resolved.informative(stated)):
            with pytest.raises(ValueError, match="does not hold the logged rewards"):
                count()
        ests = ests[:1]
    for value_range in (None, stated)[:len(ests)]:
        want = InformativeRows(*_reference_counts(w, r, value_range))
        assert informative(merged, value_range) == resolved.informative(value_range) == want
    for est in ests:
        floor = resolved.small_sample_floor(est.alpha, est.reward_range)
        if floor is None:  # enough informative rows
            assert _small_sample_floor(merged, est) is None
            continue
        assert _small_sample_floor(merged, est) == pytest.approx(floor, rel=1e-12, abs=1e-12)
        low, high = (r.min(), r.max()) if est.reward_range is None else est.reward_range
        top = InformativeRows(*_reference_counts(w, r, est.reward_range)).at_top
        terms, ends = ((high - w * (high - r), (high - 4.0 * (high - low), high)) if top else
                       (low + w * (r - low), (low, low + 4.0 * (high - low))))  # the weight bound is 1 / 0.25
        assert (floor.value_low, floor.value_high) == pytest.approx(kl_interval(terms.mean(), n, *ends, est.alpha),
                                                                    rel=1e-9, abs=1e-9)


@settings(derandomize=True, max_examples=200, deadline=None)
@given(ends=st.tuples(st.floats(-5, 5), st.floats(0, 5)), bound=st.floats(1, 25), mean_weight=st.floats(0.2, 1.5),
       seed=st.integers(0, 2**16))
def test_top_form_terms_by_hand(ends, bound, mean_weight, seed):
    """ips_kl_side's mirrored forms against their terms computed by hand (any signs of the range, weights up to the
    bound, a mean weight away from 1): the top form's v = r_hi - w (r_hi - r) and the bottom form's
    u = r_lo + w (r - r_lo): their means, every term in the stated range; the top form's KL interval is the IPS
    form's of r_hi - v mirrored, the bottom form's that of u - r_lo = w (r - r_lo) shifted. With r_lo = 0 the bottom
    form is exactly the IPS terms w r (form and floor, to the bit); with a support deficit the IPS terms are kept in
    either orientation, and with r_hi = 0 they are the top form."""
    from offline_eval.small_sample import ips_kl_side, ips_term_range

    r_lo, r_hi = ends[0], ends[0] + ends[1]
    rng = np.random.default_rng(seed)
    w = np.minimum(rng.exponential(mean_weight, 40), bound)
    r = rng.uniform(r_lo, r_hi, 40)
    ips, w_mean = float(np.mean(w * r)), float(w.mean())
    v = r_hi - w * (r_hi - r)
    mean, low, high = ips_kl_side(ips, bound, (r_lo, r_hi), at_top=True, weight_mean=w_mean)
    assert mean == pytest.approx(v.mean(), abs=1e-9) and high == r_hi
    assert np.all((low - 1e-9 <= v) & (v <= high + 1e-9))
    lo_end, hi_end = kl_interval(mean, 40, low, high, 0.05)
    m_lo, m_hi = kl_interval(r_hi - mean, 40, 0.0, r_hi - low, 0.05)
    assert (lo_end, hi_end) == pytest.approx((r_hi - m_hi, r_hi - m_lo), abs=1e-9)

    u = r_lo + w * (r - r_lo)
    mean, low, high = ips_kl_side(ips, bound, (r_lo, r_hi), weight_mean=w_mean)
    assert mean == pytest.approx(u.mean(), abs=1e-9) and low == r_lo
    assert np.all((low - 1e-9 <= u) & (u <= high + 1e-9))
    shifted = ips_kl_side(float(np.mean(w * (r - r_lo))), bound, (0.0, r_hi - r_lo), weight_mean=w_mean)
    assert kl_interval(mean, 40, low, high, 0.05) == pytest.approx(
        tuple(r_lo + end for end in kl_interval(shifted[0], 40, shifted[1], shifted[2], 0.05)), abs=1e-9)

    for at_top in (False, True):  # a support deficit: E[w] != 1, the IPS terms
        assert ips_kl_side(ips, bound, (r_lo, r_hi), at_top, w_mean, supported=False) == (
            ips, *ips_term_range(bound, (r_lo, r_hi)))
    zero = (0.0, r_hi - r_lo)  # a range from 0: the bottom form is today's IPS form, to the bit
    z_ips = float(np.mean(w * (r - r_lo)))
    assert ips_kl_side(z_ips, bound, zero, weight_mean=w_mean) == ips_kl_side(z_ips, bound, zero, supported=False)
    args = (40, 3, z_ips, float(np.mean(r - r_lo)), bound, zero, 0.05)
    assert small_sample_floor(*args, weight_mean=w_mean) == small_sample_floor(*args, supported=False)
    if r_hi == 0.0:
        assert ips_kl_side(ips, bound, (r_lo, 0.0), supported=False) == pytest.approx(
            ips_kl_side(ips, bound, (r_lo, 0.0), at_top=True, weight_mean=w_mean))


@pytest.mark.parametrize(("n", "zero"), [(300, 0.3), (3000, 0.04)])
def test_top_form_covers_with_skewed_logging_and_weights_up_to_20(n, zero):
    """A case the top form was not tried on: context-dependent logging of 3 arms (probabilities 0.05 / 0.25 / 0.70
    and mirrored), a target on the arm logged 5% of the time (weights 20), a lower-is-better [0, 1] flag whose rare
    value is its low end, about 2-3 weighted zeros per log (n = 300: 15 weighted rows). The floor of the form the
    counts choose covers the value and the lift (truth in closed form) at its nominal 0.95 (measured on 2,000 logs:
    0.997 / 0.994 value, 1.00 lift) and is narrower than the bottom form's of the same log (median 0.56 vs 1.29 at
    n = 300, 0.067 vs 0.43 at n = 3,000). Through evaluate / compare / rollout_report, 400 logs at n = 300 with
    ~3 zeros: every value, lift and paired interval covered 0.9975-1.00 and a guardrail at its margin was never
    passed (review6's report)."""
    probs = np.array([[0.05, 0.25, 0.70], [0.70, 0.25, 0.05]])
    mult = np.array([[0.5, 1.0, 1.5], [1.5, 1.0, 0.5]])
    target = np.array([0, 2])  # the 5% arm in both halves of the contexts
    truth = 1.0 - zero * 0.5 * (mult[0, 0] + mult[1, 2])
    logging = 1.0 - zero * 0.5 * float((probs * mult).sum())
    reps = 500
    rng = np.random.default_rng([2026, n])
    value_hits = lift_hits = narrower = floored = 0
    for _ in range(reps):
        x0 = (rng.random(n) < 0.5).astype(int)
        a = (rng.random(n)[:, None] > np.cumsum(probs[x0], axis=1)).sum(axis=1)
        r = 1.0 - (rng.random(n) < zero * mult[x0, a])
        w = (a == target[x0]) / probs[x0, a]
        counts = informative_counts(w, r, UNIT)
        if counts.rows >= 10:
            continue
        floored += 1
        args = (n, counts.rows, float(np.mean(w * r)), float(r.mean()), 20.0, UNIT, 0.05)
        floor = small_sample_floor(*args, at_top=counts.at_top, weight_mean=float(w.mean()))
        bottom = small_sample_floor(*args)
        value_hits += floor.value_low <= truth <= floor.value_high
        lift_hits += floor.lift_low <= truth - logging <= floor.lift_high
        narrower += floor.value_high - floor.value_low < bottom.value_high - bottom.value_low
    assert floored >= 0.99 * reps
    assert value_hits / floored >= 0.95 and lift_hits / floored >= 0.95, (value_hits, lift_hits, floored)
    assert narrower == floored
