"""UpsellWorld: determinism, common random numbers, the documented ground truth, values, delays and the oracle."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bandit.simulation.catalog import Catalog, default_catalog
from bandit.simulation.config import DelayConfig, DriftConfig, WorldConfig
from bandit.simulation.world import UpsellWorld


def _episode_equal(a, b) -> None:
    pd.testing.assert_frame_equal(a.users, b.users)
    for name in ("X", "steps", "timestamps", "eligible", "probability", "net_value", "expected_value", "uniforms",
                 "delay_days"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_deterministic_under_seed():
    a = UpsellWorld(seed=42, launch_step=100).episode(300)
    b = UpsellWorld(seed=42, launch_step=100).episode(300)
    _episode_equal(a, b)
    c = UpsellWorld(seed=43, launch_step=100).episode(300)
    assert not np.array_equal(a.uniforms, c.uniforms)
    assert not a.users.equals(c.users)


def test_prefix_stable():
    long = UpsellWorld(seed=9, launch_step=50).episode(800)
    short = UpsellWorld(seed=9, launch_step=50).episode(300)
    pd.testing.assert_frame_equal(short.users, long.users.iloc[:300])
    for name in ("X", "uniforms", "delay_days", "expected_value", "eligible", "timestamps"):
        np.testing.assert_array_equal(getattr(short, name), getattr(long, name)[:300], err_msg=name)


def test_potential_outcomes_do_not_depend_on_world_parameters():
    """Common random numbers: changing the ground truth keeps the users and the uniforms."""
    a = UpsellWorld(WorldConfig(long_term_weight=0.0), seed=4).episode(200)
    b = UpsellWorld(WorldConfig(long_term_weight=1.0, drift=DriftConfig(strength=2.0)), seed=4).episode(200)
    pd.testing.assert_frame_equal(a.users, b.users)
    np.testing.assert_array_equal(a.uniforms, b.uniforms)
    np.testing.assert_array_equal(a.delay_days, b.delay_days)


def _reference_logit(world: UpsellWorld, user: pd.Series, k: int, t: float) -> float:
    """The module docstring's formula, one user and one product at a time, in plain Python."""
    m, cat = world.config.model, world.catalog
    p = cat.products[k]
    h = math.log1p(user["weekly_hours"]) - math.log1p(10.0)
    loyal = 1.0 - math.exp(-user["tenure_months"] / 12.0)
    sens = m.price_sensitivity * m.tier_multiplier[user["price_tier"]]
    if user["student_verified"]:
        sens *= m.student_price_multiplier
    sens *= 1.0 - m.loyalty_price_relief * loyal
    paid = next((q.price for q in cat.products if q.name == user["current_plan"]), 0.0)
    hh = user["household_size"]
    logit = p.appeal
    if p.kind == "plan":
        delta = p.price - paid
        if delta < 0:
            logit -= sens * 0.5 * delta
            logit += m.downgrade if paid > 0 else 0.0
        else:
            logit -= sens * delta
            logit += m.upgrade_intent if paid > 0 else 0.0
        logit += (m.listening_premium if p.premium else m.listening_basic) * h
        logit += m.loyalty * loyal + m.past_trials * user["past_trials"]
        logit += m.seats_fit * math.log(min(hh, p.seats)) - m.seats_waste * math.sqrt(max(p.seats - hh, 0))
        if p.seats > 1 and user["device"] in ("smart_speaker", "tv"):
            logit += m.shared_device
        if p.student_only:
            logit += m.student_plan
    else:
        logit -= sens * p.price
        if p.family == "audiobooks":
            logit += m.listening_audiobooks * h + m.desktop_audiobooks * (user["device"] in ("desktop", "tablet"))
        else:
            logit += m.listening_podcasts * h + m.mobile_podcasts * (user["device"] == "mobile")
    d = world.config.drift
    return logit + d.strength * d.direction.get(p.name, 0.0) * t / d.steps


def test_logits_match_the_documented_formula():
    world = UpsellWorld(WorldConfig(drift=DriftConfig(strength=1.3, steps=1000)), seed=21)
    users = world.sample_users(150)
    steps = np.arange(150) * 7
    L = world.logits(users, steps)
    ref = np.array([[_reference_logit(world, users.iloc[i], k, steps[i]) for k in range(L.shape[1])]
                    for i in range(len(users))])
    np.testing.assert_allclose(L, ref, rtol=0, atol=1e-12)


def test_ground_truth_is_not_linear_in_the_context():
    world = UpsellWorld(seed=2)
    ep = world.episode(5000)
    L = world.logits(ep.users)
    Xd = np.column_stack([ep.X, np.ones(len(ep))])
    coef, *_ = np.linalg.lstsq(Xd, L, rcond=None)
    resid = L - Xd @ coef
    assert resid.std(axis=0).min() > 0.05


def test_price_sensitivity_and_seats():
    world = UpsellWorld(seed=1)
    user = pd.DataFrame({"tenure_months": [6.0], "weekly_hours": [12.0], "device": ["mobile"], "market": ["us"],
                         "price_tier": ["high"], "household_size": [1], "student_verified": [False],
                         "past_trials": [0], "current_plan": ["free"], "has_audiobooks": [False],
                         "has_podcasts": [False]})
    fam = world.catalog.names.index("family")
    low = user.assign(market="in", price_tier="low")
    # same user, cheaper market tier -> more price sensitive -> lower conversion on every paid product
    assert (world.conversion_probability(low) < world.conversion_probability(user)).all()
    # household x seats: a bigger household makes the Family plan more attractive, up to its 6 seats
    probs = [world.conversion_probability(user.assign(household_size=h))[0, fam] for h in range(1, 7)]
    assert np.all(np.diff(probs) > 0)
    # student x student plan and a more expensive catalog
    cheap = Catalog([p.model_copy(update={"price": p.price * 0.5}) for p in world.catalog.products[:-1]])
    pricey = UpsellWorld(catalog=cheap, seed=1)
    assert (pricey.conversion_probability(user) > world.conversion_probability(user)[:, :-1]).all()


def test_values_and_long_term_term():
    users = pd.DataFrame({"tenure_months": [6.0, 6.0], "weekly_hours": [5.0, 5.0], "device": ["tv", "tv"],
                          "market": ["us", "us"], "price_tier": ["high", "high"], "household_size": [2, 2],
                          "student_verified": [True, True], "past_trials": [0, 0],
                          "current_plan": ["individual", "free"], "has_audiobooks": [False, False],
                          "has_podcasts": [False, False]})
    names = default_catalog().names
    short = UpsellWorld(WorldConfig(long_term_weight=0.0), seed=0).net_values(users)
    long = UpsellWorld(WorldConfig(long_term_weight=1.0), seed=0).net_values(users)
    np.testing.assert_allclose(short, np.tile(default_catalog().prices, (2, 1)))
    assert long[0, names.index("student")] == pytest.approx(5.99 - 11.99)  # downgrade cannibalises Individual
    assert long[0, names.index("family")] == pytest.approx(19.99 - 11.99)
    assert long[0, names.index("audiobooks")] == pytest.approx(9.99)
    np.testing.assert_allclose(long[1], short[1])  # a free user has nothing to cannibalise
    ltv = UpsellWorld(catalog=default_catalog(value="ltv"), seed=0).net_values(users)
    assert ltv[1, names.index("duo")] == pytest.approx(16.99 * 20)


def test_expected_value_is_probability_times_attribution_times_value():
    world = UpsellWorld(WorldConfig(delay=DelayConfig(mean_days=2.0, attribution_window_days=3.0)), seed=8)
    ep = world.episode(400)
    F = 1.0 - math.exp(-3.0 / 2.0)
    assert world.attribution_probability == pytest.approx(F)
    np.testing.assert_allclose(ep.expected_value, ep.probability * F * ep.net_value)


def test_outcomes_monte_carlo():
    """Conversions happen at the true rate, arrive with the configured mean delay and inside the window w.p. F."""
    world = UpsellWorld(WorldConfig(delay=DelayConfig(mean_days=1.5, attribution_window_days=2.0)), seed=3)
    ep = world.episode(60_000)
    rows = np.arange(len(ep))
    arms = ep.best_arms()
    out = ep.outcomes(rows, arms)
    p = ep.probability[rows, arms]
    se = math.sqrt((p * (1 - p)).sum()) / len(ep)
    assert abs(out.converted.mean() - p.mean()) < 4 * se
    assert (out.attributed <= out.converted).all()
    np.testing.assert_array_equal(out.revenue, np.where(out.attributed, ep.net_value[rows, arms], 0.0))
    F = 1 - math.exp(-2.0 / 1.5)
    n_conv = out.converted.sum()
    assert abs(out.attributed.sum() / n_conv - F) < 4 * math.sqrt(F * (1 - F) / n_conv)
    assert abs(ep.delay_days.mean() - 1.5) < 0.02
    with pytest.raises(ValueError, match="not eligible"):
        bad = np.argmin(ep.eligible[0])
        ep.outcomes(np.array([0]), np.array([bad]))


def test_launch_and_oracle():
    world = UpsellWorld(seed=6, launch_step=200)
    ep = world.episode(500)
    new = len(ep.arm_names) - 1
    assert not ep.eligible[:200, new].any() and ep.eligible[200:, new].any()
    assert ep.eligible.any(axis=1).all()
    best = ep.best_arms()
    assert ep.eligible[np.arange(500), best].all()
    masked = np.where(ep.eligible, ep.expected_value, -np.inf)
    np.testing.assert_array_equal(ep.oracle_value(), masked.max(axis=1))
    assert (best[200:] == new).any() and not (best[:200] == new).any()
    ts = ep.timestamps.astype(np.int64)
    assert np.all(np.diff(ts) > 0)
    assert (ts[400] - ts[0]) == pytest.approx(400 / world.config.events_per_day * 86_400e6, rel=1e-6)


def test_drift_moves_logits_linearly():
    world = UpsellWorld(WorldConfig(drift=DriftConfig(strength=0.8, steps=1000, direction={"family": 1.0})), seed=0)
    users = world.sample_users(20)
    diff = world.logits(users, 500) - world.logits(users, 0)
    fam = world.catalog.names.index("family")
    np.testing.assert_allclose(diff[:, fam], 0.4)
    np.testing.assert_allclose(np.delete(diff, fam, axis=1), 0.0)


def test_constructor_errors():
    with pytest.raises(ValueError, match="seed"):
        UpsellWorld(seed=-1)
    with pytest.raises(ValueError, match="no new_plan"):
        UpsellWorld(catalog=default_catalog(new_plan=False), launch_step=5)
    with pytest.raises(TypeError, match="WorldConfig"):
        UpsellWorld(config={"long_term_weight": 1})
    with pytest.raises(ValueError, match="n must"):
        UpsellWorld().sample_users(-3)
