"""Coverage of nominal 95% intervals in a synthetic world with an exactly known value (seeded replications).

Each test draws all replications at once, runs the real ``estimate`` on each, and checks that the share of
intervals containing the true value lies in [0.93, 0.97] (binomial sd at 0.95 over 2000 replications: 0.005).
The measured coverages are printed (``pytest -s``).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from ope_world import World

from offline_eval import DR, IPS, SNIPS, DiagnosticWarning, RidgeRewardModel

pytestmark = pytest.mark.slow

REPS = 2000
N = 1000


def coverage(estimators: dict, reps: int, n: int, seed: int, q_fn=None, world: World | None = None) -> dict:
    world = World(seed=0) if world is None else world
    truth = world.value(world.target)
    draw = world.draw(n, reps, seed=seed)
    hits = {name: 0 for name in estimators}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiagnosticWarning)
        for i in range(reps):
            data = world.logged(draw, i)
            target = world.target_probs(draw, i)
            q = None if q_fn is None else q_fn(world, draw, i)
            for name, est in estimators.items():
                result = est.estimate(data, target, q=q if est.uses_reward_model else None)
                hits[name] += result.ci_low <= truth <= result.ci_high
    rates = {name: h / reps for name, h in hits.items()}
    print(f"\ncoverage over {reps} replications of n={n}: {rates}")
    return rates


def constant_q(world: World, draw, i: int) -> np.ndarray:
    """A deliberately wrong reward model: one constant for every user and arm."""
    return np.full((draw.types.shape[1], world.K), 0.3)


def test_normal_intervals_cover_nominally():
    rates = coverage({"IPS": IPS(), "SNIPS": SNIPS(), "DR": DR()}, REPS, N, seed=100, q_fn=constant_q)
    for name, rate in rates.items():
        assert 0.93 <= rate <= 0.97, (name, rate)


def test_dr_with_a_cross_fitted_ridge_model_covers_nominally():
    rates = coverage({"DR(ridge)": DR(reward_model=RidgeRewardModel())}, REPS, N, seed=101)
    assert 0.93 <= rates["DR(ridge)"] <= 0.97


def test_heavier_weights_still_cover():
    """Logging floor 0.1 (weights up to about 30) at n=2000."""
    world = World(seed=2, floor=0.1)
    rates = coverage({"IPS": IPS(), "SNIPS": SNIPS(), "DR": DR()}, REPS, 2000, seed=102, q_fn=constant_q,
                     world=world)
    for name, rate in rates.items():
        assert 0.93 <= rate <= 0.97, (name, rate)


def test_bootstrap_intervals_cover_nominally():
    rates = coverage(
        {"IPS boot": IPS(interval="bootstrap", n_bootstrap=1000), "SNIPS boot": SNIPS(interval="bootstrap",
                                                                                    n_bootstrap=1000)},
        1000,
        500,
        seed=103,
    )
    for name, rate in rates.items():
        assert 0.93 <= rate <= 0.97, (name, rate)
