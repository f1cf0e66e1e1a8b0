"""Guardrail outcomes of the simulated world: cancellations and cannibalised value per user x arm.

The new outcomes come from a stream spawned after every existing one, so every earlier output of the world is
bit-identical to what it was before they were added (hashes recorded from the commit before the change).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from bandit.simulation import UpsellWorld
from bandit.simulation.world import CANCEL_BASE, CANCEL_PUSH

# sha256 of the world's outputs (users, contexts, potential outcomes, oracle, realised outcomes of the oracle's
# arms) for 1000 events, computed before the guardrail outcomes existed
BEFORE = {
    (0, None): "be8f97c84400002186165285cea1049a6d47ad57caf1233e44fddbdd4edd7289",
    (7, 300): "82a4054b0a33fb3b2f2b72b5f59b0e1b28153e94a54533eee37006ed74bc520f",
}


def _digest(ep) -> str:
    h = hashlib.sha256()
    for a in (ep.X, ep.steps, ep.timestamps.astype(np.int64), ep.eligible, ep.probability, ep.net_value,
              ep.expected_value, ep.uniforms, ep.delay_days):
        h.update(np.ascontiguousarray(a).tobytes())
    h.update(ep.users.to_csv().encode())
    o = ep.outcomes(np.arange(len(ep)), ep.best_arms())
    for a in (o.converted, o.attributed, o.delay_days, o.revenue):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("seed,launch", list(BEFORE))
def test_existing_outputs_are_bit_identical(seed, launch):
    assert _digest(UpsellWorld(seed=seed, launch_step=launch).episode(1000)) == BEFORE[(seed, launch)]


def test_guardrail_outcomes_are_deterministic_and_prefix_stable():
    a = UpsellWorld(seed=4).episode(3000)
    b = UpsellWorld(seed=4).episode(1000)
    np.testing.assert_array_equal(a.cancel_uniforms[:1000], b.cancel_uniforms)
    np.testing.assert_array_equal(a.cancel_probability[:1000], b.cancel_probability)
    np.testing.assert_array_equal(a.cannibalised_value[:1000], b.cannibalised_value)
    c = UpsellWorld(seed=5).episode(1000)
    assert not np.array_equal(c.cancel_uniforms, b.cancel_uniforms)


def test_cancel_probability_follows_the_documented_formula():
    world = UpsellWorld(seed=1)
    ep = world.episode(2000)
    paid = np.array([world._prices.get(p, 0.0) for p in ep.users["current_plan"]])
    prices = world.catalog.prices
    plan = np.array([p.kind == "plan" for p in world.catalog.products])
    push = np.where(plan[None, :], np.maximum(prices[None, :] - paid[:, None], 0.0), prices[None, :])
    expect = np.where(paid[:, None] > 0, 1 / (1 + np.exp(-(CANCEL_BASE + CANCEL_PUSH * push))), 0.0)
    np.testing.assert_allclose(ep.cancel_probability, expect, rtol=1e-12, atol=1e-15)
    # free users never cancel, whatever they are offered
    free = paid == 0
    assert free.any() and (~free).any()
    rows = np.repeat(np.flatnonzero(free), 1)
    arms = np.argmax(ep.eligible[rows], axis=1)
    assert not ep.guardrail_outcomes(rows, arms).cancelled.any()


def test_cannibalisation_is_the_value_of_replaced_products_held():
    world = UpsellWorld(seed=2)
    ep = world.episode(3000)
    names = world.arm_names
    plan = ep.users["current_plan"].to_numpy()
    fam, ind = names.index("family"), names.index("individual")
    on_individual = plan == "individual"
    assert on_individual.any()
    # family replaces an individual plan: its cannibalised value is the individual price
    np.testing.assert_allclose(ep.cannibalised_value[on_individual, fam], world.catalog.values[ind])
    # add-ons replace nothing
    addon = [k for k, p in enumerate(world.catalog.products) if p.kind == "addon"]
    assert np.all(ep.cannibalised_value[:, addon] == 0)
    # realised: only attributed conversions cannibalise
    rows = np.flatnonzero(on_individual & ep.eligible[:, fam])
    arms = np.full(len(rows), fam)
    out, g = ep.outcomes(rows, arms), ep.guardrail_outcomes(rows, arms)
    np.testing.assert_allclose(g.cannibalised, np.where(out.attributed, world.catalog.values[ind], 0.0))


def test_realised_guardrails_match_their_expectation_monte_carlo():
    """Over many users, realised means match the exact expectations (CLT bound, 5 standard errors)."""
    world = UpsellWorld(seed=11)
    n = 60_000
    ep = world.episode(n)
    rng = np.random.default_rng(0)
    e = ep.eligible.astype(float)
    arms = np.array([rng.choice(np.flatnonzero(row)) for row in e.astype(bool)])
    rows = np.arange(n)
    g = ep.guardrail_outcomes(rows, arms)
    exp_cancel = ep.expected_cancellation[rows, arms]
    exp_cannibal = ep.expected_cannibalisation[rows, arms]
    for realised, expected in ((g.cancelled.astype(float), exp_cancel), (g.cannibalised, exp_cannibal)):
        se = realised.std() / np.sqrt(n)
        assert abs(realised.mean() - expected.mean()) < 5 * se
    # both side effects actually happen under a uniform-random policy
    assert g.cancelled.mean() > 0
    assert g.cannibalised.mean() > 0


def test_converting_users_never_cancel():
    ep = UpsellWorld(seed=3).episode(5000)
    rows = np.arange(5000)
    arms = ep.best_arms()
    assert not np.any(ep.guardrail_outcomes(rows, arms).cancelled & ep.outcomes(rows, arms).converted)


def test_ineligible_offer_is_rejected():
    ep = UpsellWorld(seed=3).episode(200)
    r, k = np.argwhere(~ep.eligible)[0]
    with pytest.raises(ValueError, match="not eligible"):
        ep.guardrail_outcomes(np.array([r]), np.array([k]))
