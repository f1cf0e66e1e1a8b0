"""Mergeable estimator statistics: any split and merge order of the rows gives the in-memory estimates to 1e-9."""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ope_world import World

from offline_eval import DM, DR, DROS, IPS, SNDR, SNIPS, LoggedData, SwitchDR, evaluate
from offline_eval import accumulators as acc_mod
from offline_eval.accumulators import Layout, Moments, PolicyAccumulator, evaluation_table, policy_results
from offline_eval.diagnostics import DiagnosticWarning
from offline_eval.reward_models import RidgeRewardModel, default_reward_model
from offline_eval.slope_grid import LATTICE, CandidateMoments

NUMERIC = ["value", "se", "ci_low", "ci_high", "lift", "lift_se", "lift_ci_low", "lift_ci_high", "bias_bound",
           "est_mse", "ess", "max_weight", "mean_weight", "support_deficit", "clipped_share", "bias", "bias_se"]
EXACT = ["policy", "estimator", "n", "alpha", "interval", "consistent", "recommended", "params", "warnings", "honest"]


def every_estimator(interval: str, model=None) -> list:
    """One of each estimator (clipped / fixed / data-driven variants included), with ``model`` (None: the default),
    and, for the default, a DR with a second reward model."""
    m = {"reward_model": model}
    second = [DR(reward_model=RidgeRewardModel(l2=5.0), interval=interval)] if model is None else []
    return [
        IPS(interval=interval), IPS(clip=3.0, interval=interval), SNIPS(interval=interval), DM(interval=interval, **m),
        DR(interval=interval, **m), DR(clip=2.0, interval=interval, **m), SNDR(interval=interval, **m),
        SwitchDR(interval=interval, **m), SwitchDR(tau=2.0, interval=interval, **m), DROS(interval=interval, **m),
        DROS(lam=4.0, interval=interval, **m), *second,
    ]


def revenue_logs(n: int = 1500, seed: int = 1) -> tuple[LoggedData, dict[str, np.ndarray]]:
    """Logs with zero logging probabilities (a support deficit for two of the three targets), eligibility, revenue
    rewards."""
    rng = np.random.default_rng(seed)
    K = 4
    X = rng.normal(size=(n, 3))
    eligible = rng.random((n, K)) < 0.85
    eligible[:, 0] = True
    logits = X @ rng.normal(size=(3, K))
    P = np.exp(logits) * eligible
    P[:, 3] *= rng.random(n) < 0.7  # arm 3 sometimes impossible although eligible: support deficit
    P /= P.sum(axis=1, keepdims=True)
    a = (P.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    price = np.array([5.99, 9.99, 14.99, 19.99])
    r = price[a] * (rng.random(n) < 1 / (1 + np.exp(2.5 - 0.8 * X[:, 0] * (a % 2))))
    data = LoggedData(X, a, r, P[np.arange(n), a], probabilities=P, eligible=eligible,
                      event_id=np.array([f"evt-{i}" for i in range(n)], dtype=object))
    soft = np.exp(2.0 * X @ rng.normal(size=(3, K))) * eligible
    soft /= soft.sum(axis=1, keepdims=True)
    greedy = np.where(eligible, X @ rng.normal(size=(3, K)), -np.inf).argmax(axis=1)
    inside = soft * (P > 0)  # the soft target kept to the logger's support: the EL-IPS kinds (E[w] = 1 holds)
    inside /= inside.sum(axis=1, keepdims=True)
    return data, {"soft": soft, "greedy": greedy, "inside": inside}


def reward_matrices(data: LoggedData, layout: Layout) -> list[np.ndarray]:
    return [(m if m is not None else default_reward_model(data)).fit_predict(data) for m in layout.models]


def accumulate(layout, data, target, qs, cuts, name="target"):
    out = []
    for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
        rows = np.arange(lo, hi)
        part = target[lo:hi] if isinstance(target, np.ndarray) else target
        out.append(PolicyAccumulator.of(layout, data.subset(rows), part, [q[lo:hi] for q in qs], start=lo, name=name))
    return out


def merge_randomly(accs: list[PolicyAccumulator], picks: list[int]) -> PolicyAccumulator:
    """Merge in a random tree: repeatedly merge two accumulators chosen by ``picks`` (either order)."""
    pool = list(accs)
    k = 0
    while len(pool) > 1:
        i = picks[k % len(picks)] % len(pool)
        a = pool.pop(i)
        j = picks[(k + 1) % len(picks)] % len(pool)
        b = pool.pop(j)
        pool.append(a.merge(b) if picks[k % len(picks)] % 2 else b.merge(a))
        k += 2
    return pool[0]


def assert_tables_equal(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert list(got.columns) == list(want.columns)
    assert len(got) == len(want)
    for col in EXACT:
        assert got[col].tolist() == want[col].tolist(), col
    for col in NUMERIC:
        np.testing.assert_allclose(got[col].to_numpy(float), want[col].to_numpy(float), rtol=1e-9, atol=1e-12,
                                   err_msg=col)


def in_memory_table(data, targets, estimators):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiagnosticWarning)
        return evaluate(data, targets, estimators)


def table_from_parts(data, targets, estimators, cuts, picks):
    layout = Layout.of(estimators)
    qs = reward_matrices(data, layout)
    accs = {name: merge_randomly(accumulate(layout, data, t, qs, cuts), picks) for name, t in targets.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiagnosticWarning)
        return evaluation_table(accs)


DATA, TARGETS = revenue_logs()
ESTIMATORS = {kind: every_estimator(kind) for kind in ("normal", "auto")}
WANT = {kind: in_memory_table(DATA, TARGETS, ests) for kind, ests in ESTIMATORS.items()}


@settings(derandomize=True, max_examples=12, deadline=None)
@given(
    cuts=st.lists(st.integers(1, DATA.n - 1), min_size=0, max_size=6, unique=True),
    picks=st.lists(st.integers(0, 50), min_size=1, max_size=8),
    kind=st.sampled_from(["normal", "auto"]),
)
def test_any_split_and_merge_tree_gives_the_in_memory_table(cuts, picks, kind):
    bounds = [0, *sorted(cuts), DATA.n]
    got = table_from_parts(DATA, TARGETS, ESTIMATORS[kind], bounds, picks)
    assert_tables_equal(got, WANT[kind])


def test_the_table_covers_every_interval_kind_and_a_support_deficit():
    normal, auto = WANT["normal"], WANT["auto"]
    assert {"normal", "bias-aware(normal)"} <= set(normal.interval)
    assert {"el-ips", "el", "bias-aware(el)", "bias-aware(el-ips)"} <= set(auto.interval)
    deficit = normal.policy != "inside"  # arm 3 has logging probability 0 in some rows
    assert (normal.support_deficit[deficit] > 0.01).all() and not normal.honest[deficit].any()
    assert (normal.support_deficit[~deficit] < 1e-9).all() and normal.honest[~deficit].any()
    # under the deficit E[w] = 1 does not hold: IPS and SNIPS use the EL interval of their own terms
    assert set(auto.interval[deficit & auto.estimator.isin(["IPS", "SNIPS"])]) == {"el"}
    for table in (normal, auto):  # the DR-DM blend row (DM and DR share the default model) and DM's bias_se
        assert (table.estimator == "DR-DM blend").sum() == len(TARGETS)
        assert table.bias_se.notna().tolist() == (table.estimator == "DM").tolist()


def test_inner_slope_candidates_are_selected_exactly_as_in_memory():
    """Heavy weights and a nearly exact model: SLOPE stops at lattice points strictly between DM and DR."""
    world = World(seed=3, floor=0.05)
    draw = world.draw(4000, 1, seed=4)
    data = world.logged(draw)
    target = world.target_probs(draw)
    q = world.oracle_q(draw) + 0.05
    estimators = [SwitchDR(interval="normal"), DROS(interval="normal"), SwitchDR(), DROS()]
    layout = Layout.of(estimators)
    merged = merge_randomly(accumulate(layout, data, target, [q], [0, 999, 2500, 4000]), [3, 1, 4])
    chosen = []
    for est, result in zip(estimators, policy_results(merged), strict=True):
        want = est.estimate(data, target, q=q)
        got = result.estimate
        assert got.params == want.params and got.interval == want.interval and got.n == want.n
        for field in ("value", "se", "ci_low", "ci_high", "bias"):
            assert getattr(got, field) == pytest.approx(getattr(want, field), rel=1e-9, abs=1e-12)
        assert got.diagnostics.clipped_share == want.diagnostics.clipped_share
        chosen.append(next(iter(got.params.values())))
    inner = [theta for theta in chosen if 0.0 < theta < math.inf]
    assert inner, f"expected an inner lattice choice, got {chosen}"
    assert all(np.isclose(theta, LATTICE).any() or np.isclose(theta, LATTICE**2).any() for theta in inner)


def test_moments_merge_matches_numpy_in_any_order():
    rng = np.random.default_rng(5)
    x = rng.normal(3.0, 2.0, size=(4, 1000)) * np.array([[1.0], [1e3], [1e-3], [1.0]])
    parts = np.split(x, [10, 11, 400, 999], axis=1)
    merged = Moments.of(parts[3]).merge(Moments.of(parts[0])).merge(Moments.of(parts[4]).merge(
        Moments.of(parts[2]).merge(Moments.of(parts[1]))))
    np.testing.assert_allclose(merged.mean, x.mean(axis=1), rtol=1e-13)
    centred = x - x.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(merged.comoment, centred @ centred.T, rtol=1e-11, atol=1e-9)


def test_candidate_moments_match_a_numpy_reference():
    rng = np.random.default_rng(6)
    n = 500
    w = np.where(rng.random(n) < 0.3, 0.0, rng.exponential(2.0, n))
    resid, dm, r = rng.normal(size=n), rng.normal(1.0, 0.2, n), rng.random(n)
    merged = CandidateMoments.of(w[:123], resid[:123], dm[:123], r[:123]).merge(
        CandidateMoments.of(w[123:], resid[123:], dm[123:], r[123:]))
    for j in (5, 20, 30):
        for family, g in (("switch", np.where(w <= LATTICE[j], w, 0.0)),
                          ("dros", LATTICE[j] ** 2 * w / (w * w + LATTICE[j] ** 2))):
            y = g * resid
            mean_y, c_yy, c_dy, c_ry = merged.stats(family, j)
            assert mean_y == pytest.approx(y.mean(), rel=1e-12)
            assert c_yy == pytest.approx(((y - y.mean()) ** 2).sum(), rel=1e-11)
            assert c_dy == pytest.approx(((dm - dm.mean()) * (y - y.mean())).sum(), rel=1e-10, abs=1e-12)
            assert c_ry == pytest.approx(((r - r.mean()) * (y - y.mean())).sum(), rel=1e-10, abs=1e-12)
        assert merged.switched(j) == np.count_nonzero(w > LATTICE[j])


def test_accumulators_round_trip_through_npz_without_pickle():
    layout = Layout.of(ESTIMATORS["auto"])
    qs = reward_matrices(DATA, layout)
    acc = merge_randomly(accumulate(layout, DATA, TARGETS["soft"], qs, [0, 700, DATA.n]), [1])
    buf = io.BytesIO()
    np.savez(buf, **acc.to_arrays())
    with np.load(io.BytesIO(buf.getvalue()), allow_pickle=False) as npz:
        back = PolicyAccumulator.from_arrays(layout, dict(npz))
    for a, b in zip(policy_results(acc), policy_results(back), strict=True):
        assert a.estimate == b.estimate and a.lift == b.lift


def test_explicit_row_intervals_beyond_the_retained_rows_raise(monkeypatch):
    monkeypatch.setattr(acc_mod, "RETAINED_MAX_ROWS", 1000)
    layout = Layout.of([IPS(interval="bootstrap")])
    parts = accumulate(layout, DATA, TARGETS["soft"], [], [0, 700, DATA.n])
    with pytest.raises(ValueError, match="interval='bootstrap' needs every row"):
        parts[0].merge(parts[1])
    normal = Layout.of([IPS(interval="normal"), SNIPS()])  # auto: EL only up to AUTO_EL_MAX_N, normal: no rows
    parts = accumulate(normal, DATA, TARGETS["soft"], [], [0, 700, DATA.n])
    assert parts[0].merge(parts[1]).rows is None


def test_layout_rejects_what_has_no_mergeable_statistics():
    from sklearn.tree import DecisionTreeRegressor

    from offline_eval.reward_models import MRDRRewardModel, SklearnRewardModel

    Layout.of([DR(reward_model=MRDRRewardModel())])  # fitted per target (offline_eval.reward_fit.fit_mrdr)
    with pytest.raises(TypeError, match=r"SklearnRewardModel\(DecisionTreeRegressor\) cannot be fitted batch"):
        Layout.of([DR(reward_model=SklearnRewardModel(DecisionTreeRegressor()))])
    layout = Layout.of([IPS()])
    acc = accumulate(layout, DATA, TARGETS["soft"], [], [0, 1])[0]
    with pytest.raises(ValueError, match="at least 2"):
        policy_results(acc)
