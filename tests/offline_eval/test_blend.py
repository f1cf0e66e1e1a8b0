"""The blend's constant c(s) (offline_eval.blend): the Gaussian-model worst ratio against a Monte Carlo, and the
tabulated constants against a fresh minimax search."""

from __future__ import annotations

import numpy as np
import pytest

from offline_eval.blend import BLEND_CONSTANTS, blend_constant, blend_weight, gaussian_worst_ratio


def monte_carlo_ratio(c: float, s: float, beta: float, reps: int, seed: int) -> float:
    """MSE of DR - lam D over min(MSE DR, MSE DM), simulating the two estimates themselves (theta = 0)."""
    rng = np.random.default_rng(seed)
    e_gap = rng.normal(0.0, np.sqrt(s), reps)
    dr = e_gap + rng.normal(0.0, np.sqrt(1.0 - s), reps)  # Var(DR) = 1, Cov(DR, D) = s
    gap = beta * np.sqrt(s) + e_gap
    dm = dr - gap
    lam = np.minimum(1.0, c * s / np.maximum(gap * gap, 1e-300))
    blend = dr - lam * gap
    return float(np.mean(blend**2) / min(np.mean(dr**2), np.mean(dm**2)))


@pytest.mark.parametrize(("c", "s", "beta"), [(1.0, 0.3, 2.25), (1.5625, 0.75, 0.0), (0.875, 0.1, 3.0)])
def test_worst_ratio_model_matches_a_monte_carlo(c, s, beta):
    exact, _ = gaussian_worst_ratio(c, s, betas=np.array([beta]))
    assert monte_carlo_ratio(c, s, beta, 400_000, seed=11) == pytest.approx(exact, rel=0.01)


def test_tabulated_constants_are_the_minimax_ones():
    grid = np.arange(0.5, 4.0001, 1 / 16)
    for s, c in BLEND_CONSTANTS:
        ratios = [gaussian_worst_ratio(float(x), s)[0] for x in grid]
        assert gaussian_worst_ratio(c, s)[0] <= min(ratios) + 1e-9, s
    # the plug-in c = 1 is nearly minimax for small s and far from it as DM becomes noiseless
    assert gaussian_worst_ratio(1.0, 0.2)[0] - gaussian_worst_ratio(blend_constant(0.2), 0.2)[0] < 0.01
    assert gaussian_worst_ratio(1.0, 0.9)[0] > 1.8 * gaussian_worst_ratio(blend_constant(0.9), 0.9)[0]
    assert blend_constant(0.0) == BLEND_CONSTANTS[0][1] and blend_constant(1.0) == BLEND_CONSTANTS[-1][1]
    assert blend_constant(0.325) == pytest.approx(1.0) and blend_constant(0.775) == pytest.approx((1.5625 + 1.75) / 2)


def test_a_gap_variance_at_round_off_counts_as_zero():
    """Merged moments leave ~1e-30 where one pass in memory gives exactly 0 (weights the reward model's projection
    reproduces): both must give DR itself (lam = 0), or the blend row's ``consistent`` differs between
    evaluate() and the streaming / Spark tables."""
    assert blend_weight(0.1, 0.0, 0.01) == 0.0
    assert blend_weight(0.1, 1e-31, 0.01) == 0.0
    assert blend_weight(0.1, 1e-6, 0.01) > 0.0  # s = 1e-4 is a real (small) variance
