"""evaluate(): the comparison table and its recommendation rule; compare(): paired differences."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from ope_world import World

import offline_eval.reward_models as reward_models
from offline_eval import DM, DR, DROS, IPS, SNDR, SNIPS, DiagnosticWarning, LoggedData, SwitchDR, compare, evaluate
from offline_eval.blend import BLEND_CONSTANTS, blend_constant, blend_weight
from offline_eval.evaluate import BLEND_NAME, COLUMNS, blend_row, default_estimators, mark_recommended

pytestmark = pytest.mark.filterwarnings("ignore::offline_eval.diagnostics.DiagnosticWarning")


@pytest.fixture()
def case():
    world = World(seed=0)
    draw = world.draw(3000, 1, seed=21)
    data = world.logged(draw)
    policies = {
        "target": world.target_probs(draw),
        "greedy": world.mu.argmax(axis=1)[draw.types[0]],
        "logging": world.target_probs(draw, policy=world.logging),
    }
    return world, draw, data, policies


class CountingModel:
    def __init__(self, q: np.ndarray) -> None:
        self.q = q
        self.calls = 0

    def fit_predict(self, data):
        self.calls += 1
        return self.q


def blend_reference(dm_value: float, dr_value: float, gap_var: float, dr_var: float) -> tuple[float, float]:
    """(lam, value) of the DR-DM blend by the module docstring's formula, written out independently (only the
    table of constants c(s) is offline_eval.blend's)."""
    gap = dr_value - dm_value
    s = min(1.0, gap_var / dr_var)
    knots = np.array(BLEND_CONSTANTS)
    c = float(np.interp(s, knots[:, 0], knots[:, 1]))
    lam = 1.0 if gap**2 <= c * gap_var else c * gap_var / gap**2
    return lam, dr_value - lam * gap


def test_table_shape_columns_and_one_recommendation_per_policy(case):
    world, draw, data, policies = case
    table = evaluate(data, policies)
    assert list(table.columns) == list(COLUMNS)
    assert len(table) == len(policies) * (len(default_estimators()) + 1)  # + the DR-DM blend row
    assert table.groupby("policy")["recommended"].sum().tolist() == [1, 1, 1]
    assert table.honest.all()
    for _, group in table.groupby("policy"):
        rows = group.set_index("estimator")
        assert rows.recommended.idxmax() == BLEND_NAME
        blend, dm, dr = rows.loc[BLEND_NAME], rows.loc["DM"], rows.loc["DR"]
        lam, value = blend_reference(dm.value, dr.value, dm.bias_se**2, dr.se**2)
        assert blend.value == pytest.approx(value, rel=1e-12) and blend.params == f"lam={lam:.4g}"
        assert (blend.ci_low, blend.ci_high) == (min(value, dr.ci_low), max(value, dr.ci_high))
        assert blend.interval == f"bias-aware({dr.interval})" and blend.se == dr.se
        assert blend.lift == pytest.approx(dr.lift - (dr.value - value), rel=1e-9)
        assert blend.lift_ci_low <= blend.lift <= blend.lift_ci_high
        assert rows.bias_se.notna().tolist() == [name == "DM" for name in rows.index]
    # without DM there is no blend: SLOPE over honest rows by decreasing se, pairwise overlap of value +- 2 se
    no_dm = evaluate(data, policies, [e for e in default_estimators() if not isinstance(e, DM)])
    assert len(no_dm) == len(policies) * (len(default_estimators()) - 1)
    for _, group in no_dm.groupby("policy"):
        best = group[group.recommended].iloc[0]
        rows = sorted(group.itertuples(), key=lambda r: (-r.se, not r.consistent))
        chosen = rows[0]
        for j in range(len(rows)):
            if all(abs(a.value - b.value) <= 2 * (a.se + b.se) for a in rows[: j + 1] for b in rows[: j + 1]):
                chosen = rows[j]
            else:
                break
        assert best.estimator == chosen.estimator
    np.testing.assert_allclose(table.est_mse, table.se**2 + table.bias_bound**2, rtol=1e-12)
    assert (table[table.consistent].bias_bound == 0).all()
    np.testing.assert_allclose(table.bias_bound, table.bias.abs(), rtol=1e-12)


def blend_rows(dm_value: float, dr_value: float, bias_se: float, dr_interval=(-1.0, 3.0)) -> list[dict]:
    """A hand-made DM row and DR row of one policy, with the fields the blend reads."""
    common = {"policy": "p", "alpha": 0.05, "consistent": True, "honest": True, "bias": 0.0, "bias_se": math.nan,
              "se": 0.5, "lift": dr_value - 0.5, "lift_ci_low": dr_interval[0] - 0.5,
              "lift_ci_high": dr_interval[1] - 0.5, "interval": "el", "recommended": False, "params": ""}
    dm = common | {"estimator": "DM", "value": dm_value, "bias": dm_value - dr_value, "bias_se": bias_se,
                   "consistent": False, "se": 0.01, "ci_low": min(dm_value, dr_interval[0]),
                   "ci_high": max(dm_value, dr_interval[1]), "interval": "bias-aware(el)"}
    dr = common | {"estimator": "DR", "value": dr_value, "ci_low": dr_interval[0], "ci_high": dr_interval[1]}
    for row in (dm, dr):
        row["bias_bound"] = abs(row["bias"])
        row["est_mse"] = row["se"] ** 2 + row["bias_bound"] ** 2
    return [dm, dr]


def test_blend_row_is_the_formula_on_a_hand_made_case():
    rows = blend_rows(dm_value=1.0, dr_value=1.3, bias_se=0.1)
    mark_recommended(rows)
    blend = rows[-1]
    assert len(rows) == 3 and blend["recommended"] and not rows[0]["recommended"] and not rows[1]["recommended"]
    # gap 0.3 = 3 standard errors, s = 0.1^2 / 0.5^2 = 0.04 (below the first knot: c = 0.8125):
    # lam = 0.8125 * 0.01 / 0.09 = 0.8125 / 9, value = 1.3 - 0.3 * 0.8125 / 9
    shift = 0.3 * 0.8125 / 9
    assert blend["params"] == "lam=0.09028" and blend["value"] == pytest.approx(1.3 - shift, rel=1e-15)
    assert blend["bias"] == pytest.approx(-shift, rel=1e-12) and blend["se"] == 0.5
    assert (blend["ci_low"], blend["ci_high"]) == (-1.0, 3.0) and blend["interval"] == "bias-aware(el)"
    assert blend["lift"] == pytest.approx(1.3 - shift - 0.5, rel=1e-12) and blend["estimator"] == BLEND_NAME
    # an interval that does not contain the blend is widened to it, the lift's too
    rows = blend_rows(dm_value=1.0, dr_value=1.3, bias_se=0.1, dr_interval=(1.28, 1.32))
    blend = blend_row(rows)
    assert blend is not None and blend["ci_low"] == blend["value"] < 1.28 and blend["ci_high"] == 1.32
    assert blend["lift_ci_low"] == blend["lift"]
    # no DR row with DM's reward model: no blend, SLOPE among the rows
    rows = blend_rows(1.0, 1.3, 0.1)
    rows[1]["estimator"] = "DR(model=Other)"
    mark_recommended(rows)
    assert len(rows) == 2 and sum(r["recommended"] for r in rows) == 1


def test_blend_weight_is_in_0_1_and_the_blend_moves_at_most_sqrt_c_gap_se_from_dr():
    rng = np.random.default_rng(12)
    gaps = rng.normal(0.0, 1.0, 500) * rng.choice([1e-3, 1.0, 1e3], 500)
    ses = rng.uniform(0.0, 2.0, 500)
    dr_vars = ses**2 / rng.uniform(0.01, 1.0, 500)  # s = v_D / se_DR^2 anywhere in (0, 1]
    for gap, se, dr_var in zip(gaps, ses, dr_vars, strict=True):
        lam = blend_weight(gap, se**2, dr_var)
        assert 0.0 <= lam <= 1.0
        assert lam == pytest.approx(blend_reference(0.0, gap, se**2, dr_var)[0], rel=1e-14)
        assert abs(lam * gap) <= math.sqrt(blend_constant(se**2 / dr_var)) * se * (1 + 1e-12)  # |V - DR| bound
    assert blend_weight(0.0, 0.0, 1.0) == 1.0 and math.isnan(blend_weight(math.nan, 1.0, 1.0))
    assert math.isnan(blend_weight(1.0, -1.0, 1.0)) and math.isnan(blend_weight(1.0, 1.0, -1.0))
    assert blend_weight(2.0, 1.0, 0.0) == blend_constant(1.0) / 4  # DR without noise: s = 1
    # DM == DR: the blend equals both
    same = blend_row(blend_rows(dm_value=2.0, dr_value=2.0, bias_se=0.3))
    assert same is not None and same["value"] == 2.0 and same["params"] == "lam=1"
    # a gap of 1000 standard errors: the blend is DR (to 1e-6 of the gap)
    far = blend_row(blend_rows(dm_value=1.0, dr_value=2.0, bias_se=1e-3))
    assert far is not None and far["value"] == pytest.approx(2.0, abs=1e-6)
    # a gap within one standard error: the blend is DM
    near = blend_row(blend_rows(dm_value=1.0, dr_value=1.05, bias_se=0.1))
    assert near is not None and near["value"] == pytest.approx(1.0, rel=1e-15)


def test_values_match_the_estimators_and_lift_is_paired(case):
    world, draw, data, policies = case
    q = world.oracle_q(draw)
    model = CountingModel(q)
    ests = [IPS(), SNIPS(), DR(reward_model=model), DM(reward_model=model), SwitchDR(reward_model=model)]
    table = evaluate(data, policies, estimators=ests).set_index(["policy", "estimator"])
    assert model.calls == 1  # one fit shared by every model-based estimator and every policy
    for name, target in policies.items():
        for est in ests:
            row = table.loc[(name, est.name)]
            single = est.estimate(data, target, q=q)
            assert row.value == pytest.approx(single.value, rel=1e-13)
            assert (row.ci_low, row.ci_high) == pytest.approx((single.ci_low, single.ci_high), rel=1e-12)
            psi = est.per_row(data, target, q=q)
            lift = psi - data.reward
            assert row.lift == pytest.approx(single.value - data.reward.mean(), rel=1e-9, abs=1e-12)
            assert row.lift_se == pytest.approx(lift.std(ddof=1) / math.sqrt(data.n), rel=1e-6)
    dm = table.loc[("target", ests[3].name)]
    dr = table.loc[("target", ests[2].name)]
    assert dm.bias_bound == pytest.approx(abs(dm.value - dr.value), rel=1e-12)
    # bias_se: the se of the mean correction DR - DM from the per-row terms; the blend pairs DM and DR by model
    gap = ests[2].per_row(data, policies["target"], q=q) - ests[3].per_row(data, policies["target"], q=q)
    assert dm.bias_se == pytest.approx(gap.std(ddof=1) / math.sqrt(data.n), rel=1e-9)
    blend = table.loc[("target", f"{BLEND_NAME}(model=CountingModel)")]
    assert blend.value == pytest.approx(blend_reference(dm.value, dr.value, dm.bias_se**2, dr.se**2)[1], rel=1e-12)
    assert blend.recommended
    # on the logging policy itself IPS weights are all 1: lift is exactly 0 with a zero-width interval
    on_policy = table.loc[("logging", "IPS")]
    assert on_policy.lift == pytest.approx(0.0, abs=1e-15) and on_policy.lift_se == pytest.approx(0.0, abs=1e-15)


def test_default_reward_model_is_fitted_once(case, monkeypatch):
    world, draw, data, policies = case
    made = []

    def factory(d):
        model = CountingModel(world.oracle_q(draw))
        made.append(model)
        return model

    monkeypatch.setattr(reward_models, "default_reward_model", factory)
    evaluate(data, policies)
    assert len(made) == 1 and made[0].calls == 1


def test_biased_estimators_alone_are_recommended_with_honest_intervals(case):
    world, draw, data, policies = case
    table = evaluate(data, {"target": policies["target"]}, estimators=[DM(), IPS(clip=1.5)])
    assert table.recommended.sum() == 1 and not table.consistent.any() and table.honest.all()
    assert table.interval.tolist() == ["bias-aware(el)", "bias-aware(el-ips)"]


def test_recommendation_falls_back_to_est_mse_without_honest_rows(case):
    world, draw, data, policies = case
    table = evaluate(data, {"target": policies["target"]}, estimators=[DM(bias_aware=False), IPS(clip=1.5,
                                                                                               bias_aware=False)])
    assert not table.honest.any() and table.recommended.sum() == 1
    assert table.loc[table.recommended, "est_mse"].iloc[0] == table.est_mse.min()


def test_params_and_diagnostics_columns(case):
    world, draw, data, policies = case
    q = world.oracle_q(draw)
    table = evaluate(data, {"target": policies["target"]}, estimators=[SwitchDR(reward_model=CountingModel(q)),
                                                                      IPS(clip=2.0)])
    assert table.params.iloc[0].startswith("tau=") and table.params.iloc[1] == ""
    d = IPS(clip=2.0).estimate(data, policies["target"]).diagnostics
    row = table.iloc[1]
    assert (row.ess, row.max_weight, row.mean_weight, row.support_deficit, row.clipped_share) == pytest.approx(
        (d.ess, d.max_weight, d.mean_weight, d.support_deficit, d.clipped_share)
    )


def test_diagnostic_warnings_are_raised_once_per_policy():
    n = 500
    probs = np.tile([0.5, 0.5, 0.0], (n, 1))
    # rewards 0 and 1 (a constant reward has no informative row: offline_eval.diagnostics.informative_rows)
    data = LoggedData(None, np.arange(n) % 2, np.arange(n) % 2.0, np.full(n, 0.5), probabilities=probs)
    policies = {"p": np.tile([0.1, 0.1, 0.8], (n, 1)), "q": np.tile([0.3, 0.3, 0.4], (n, 1))}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = evaluate(data, policies, estimators=[IPS(), SNIPS(), DR(), DM()])
    messages = [str(c.message) for c in caught if issubclass(c.category, DiagnosticWarning)]
    tail = (
        "% of the target's probability mass is on actions the logging policy never takes (logging probability 0); "
        "weighting estimators (IPS, SNIPS) miss it and DR / DM extrapolate the reward model there, so no estimate "
        "is unbiased and the intervals ignore it"
    )
    assert messages == [f"policies['p']: support deficit: 80{tail}", f"policies['q']: support deficit: 40{tail}"]
    assert table.warnings.str.contains("support deficit").all()


def test_support_deficit_makes_every_row_inconsistent_with_a_bias_bound():
    n = 2000
    rng = np.random.default_rng(4)
    probs = np.tile([0.5, 0.5, 0.0], (n, 1))  # arm 2 is never logged
    action = rng.integers(0, 2, size=n)
    reward = rng.random(n) * 3.0 - 1.0  # rewards in [-1, 2]: the deficit's bias is at most 3 per unit of mass
    data = LoggedData(None, action, reward, np.full(n, 0.5), probabilities=probs)
    table = evaluate(data, {"p": np.tile([0.4, 0.4, 0.2], (n, 1))}, estimators=[IPS(), SNIPS(), DR(), DM()])
    scale = reward.max() - reward.min()
    assert not table.consistent.any() and table.recommended.sum() == 1
    ips = table.iloc[0]
    assert ips.bias_bound == pytest.approx(0.2 * scale)  # IPS is unbiased apart from the unsupported mass
    dm = table.iloc[3]
    dr_value = table.iloc[2].value
    assert dm.bias_bound == pytest.approx(0.2 * scale + abs(dm.value - dr_value))
    np.testing.assert_allclose(table.est_mse, table.se**2 + table.bias_bound**2, rtol=1e-12)
    full = np.tile([0.5, 0.5, 0.0], (n, 1))
    supported = evaluate(data, {"p": full}, estimators=[IPS(), SNIPS(), DR()])
    assert supported.consistent.all() and (supported.bias_bound == 0).all()


@pytest.mark.parametrize(
    "policies, estimators, exc, message",
    [
        ({}, None, TypeError, "non-empty mapping"),
        ([np.zeros(3)], None, TypeError, "non-empty mapping"),
        ({1: 0}, None, TypeError, "keyed by str"),
        ({"a": 0}, IPS(), TypeError, "a single estimator"),
        ({"a": 0}, [IPS(), "DR"], TypeError, r"estimators\[1\] must be an offline_eval estimator"),
        ({"a": 0}, [IPS(), IPS()], ValueError, r"duplicates \['IPS'\]"),
        ({"a": 0}, [], ValueError, "estimators is empty"),
        ({"bad": np.full((20, 3), 0.5)}, [IPS()], ValueError, r"policies\['bad'\] rows must sum to 1"),
    ],
)
def test_bad_arguments(policies, estimators, exc, message):
    data = LoggedData(None, np.arange(20) % 3, np.ones(20), np.full(20, 1 / 3))
    with pytest.raises(exc, match=message):
        evaluate(data, policies, estimators)


def test_evaluate_rejects_non_logged_data():
    with pytest.raises(TypeError, match="data must be an offline_eval.LoggedData"):
        evaluate(pd.DataFrame({"reward": [1.0]}), {"a": 0})


# ---------------------------------------------------------------------------------------------------------------
# compare
# ---------------------------------------------------------------------------------------------------------------


def test_compare_is_the_paired_difference(case):
    world, draw, data, policies = case
    a, b = policies["target"], policies["greedy"]
    for est in (IPS(), SNIPS(), DR(reward_model=CountingModel(world.oracle_q(draw)))):
        diff = compare(data, a, b, estimator=est)
        q = est.reward_matrix(data)
        va, vb = est.estimate(data, a, q=q).value, est.estimate(data, b, q=q).value
        assert diff.value == pytest.approx(va - vb, rel=1e-10)
        per_row = est.per_row(data, a, q=q) - est.per_row(data, b, q=q)
        assert diff.se == pytest.approx(per_row.std(ddof=1) / math.sqrt(data.n), rel=1e-9)
        assert diff.estimator == f"{est.name}: a - b" and diff.n == data.n


def test_paired_interval_is_narrower_than_separate_intervals(case):
    world, draw, data, policies = case
    est = DR(reward_model=CountingModel(world.oracle_q(draw)))
    a = policies["target"]
    b = 0.8 * a + 0.2 * policies["logging"]  # a close variant: most of the per-row variation is shared
    sa, sb = est.estimate(data, a), est.estimate(data, b)
    diff = compare(data, a, b, estimator=est)
    unpaired_se = math.sqrt(sa.se**2 + sb.se**2)
    assert diff.se < 0.3 * unpaired_se
    assert diff.ci_high - diff.ci_low < min(sa.ci_high - sa.ci_low, sb.ci_high - sb.ci_low)


def test_compare_defaults_to_the_blend_and_merges_diagnostics(case, monkeypatch):
    world, draw, data, policies = case
    q = world.oracle_q(draw) + 0.05 * (np.arange(3) - 1)  # a biased model: its gap to DR is a few se
    monkeypatch.setattr(reward_models, "default_reward_model", lambda d: CountingModel(q))
    a, b = policies["target"], policies["greedy"]
    diff = compare(data, a, b)
    assert diff.honest and diff.estimator == f"{BLEND_NAME}: a - b"
    dm, dr = compare(data, a, b, estimator=DM()), compare(data, a, b, estimator=DR())
    gap = (DR().per_row(data, a, q=q) - DR().per_row(data, b, q=q)) - (
        DM().per_row(data, a, q=q) - DM().per_row(data, b, q=q))
    lam, value = blend_reference(dm.value, dr.value, gap.var(ddof=1) / data.n, dr.se**2)
    assert 0.1 < lam < 0.9 and diff.params["lam"] == pytest.approx(lam, rel=1e-9)
    assert diff.value == pytest.approx(value, rel=1e-10)
    assert (diff.ci_low, diff.ci_high) == (min(value, dr.ci_low), max(value, dr.ci_high))
    assert diff.se == dr.se and diff.interval == f"bias-aware({dr.interval})"
    explicit = compare(data, policies["target"], policies["greedy"], estimator=DR())
    assert explicit.estimator == "DR: a - b" and explicit.consistent
    diff = explicit
    da = DR().estimate(data, policies["target"]).diagnostics
    db = DR().estimate(data, policies["greedy"]).diagnostics
    assert diff.diagnostics.ess == min(da.ess, db.ess)
    assert diff.diagnostics.max_weight == max(da.max_weight, db.max_weight)
    tuned = compare(data, policies["target"], policies["greedy"], estimator=SwitchDR(tau=math.inf))
    assert set(tuned.params) == {"a.tau", "b.tau"}


def test_compare_argument_checks(case):
    world, draw, data, policies = case
    with pytest.raises(TypeError, match="estimator must be an offline_eval estimator"):
        compare(data, 0, 1, estimator="DR")
    with pytest.raises(ValueError, match=r"b must have shape \(n, K\)"):
        compare(data, 0, np.zeros((3, 3)), estimator=IPS())


def test_all_default_estimators_run_in_evaluate_with_intervals_options(case):
    world, draw, data, policies = case
    q = world.oracle_q(draw)
    model = CountingModel(q)
    ests = [IPS(interval="bootstrap", n_bootstrap=200), SNDR(reward_model=model, interval="bernstein"),
            DROS(reward_model=model)]
    table = evaluate(data, {"target": policies["target"]}, estimators=ests)
    assert (table.ci_low <= table.value).all() and (table.value <= table.ci_high).all()
    assert (table.lift_ci_low <= table.lift).all() and (table.lift <= table.lift_ci_high).all()
    assert table.interval.tolist()[:2] == ["bootstrap", "bernstein"]
    assert table.interval.iloc[2] in ("el", "bias-aware(el)")
