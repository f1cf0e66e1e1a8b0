"""The weight of the DR-DM blend ``V = DR - lam (DR - DM)`` that :func:`offline_eval.evaluate` recommends.

``lam = min(1, c(s) v_D / D^2)``: ``D = DR - DM``, ``v_D`` its estimated variance (the DM row's ``bias_se``
squared, :mod:`offline_eval.gap`), and ``c(s)`` a constant that depends on ``s = v_D / se_DR^2``, the share of DR's
variance that DM does not have. ``c = 1`` is the plug-in of the MSE-optimal weight ``Var(D) / E[D^2]``
(derivation in :mod:`offline_eval.evaluate`).

Why ``c`` depends on ``s``. In the Gaussian model of the two estimates (DR unbiased with variance 1, D normal with
mean b -- DM's bias, unknown -- variance s and ``Cov(DR, D) = s``), the blend's mean squared error over that of the
better of DR and DM is, for a given ``c``, a function of ``b / sqrt(s)`` alone; :func:`gaussian_worst_ratio` is its
maximum over b. ``c(s)`` is the constant that minimises this worst case (:data:`BLEND_CONSTANTS`, on a grid of
step 1/16, recomputed by ``tests/offline_eval/test_blend.py``). Up to ``s ~ 0.35`` it is 0.8-1 and hardly
matters (worst ratio within 0.01 of c = 1's); when most of DR's noise is the correction (s -> 1, DM nearly noiseless)
the plug-in shrinks to DR far too readily -- worst ratio 4.0 at s = 0.9 -- and the minimax constant halves that
(2.07). No constant, and no other function of DR and DM, reaches 1.05 for every bias once s >= 0.2
(``bench/blend_minimax.py`` gives a lower bound for every rule).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["BLEND_CONSTANTS", "blend_constant", "blend_shift", "blend_weight", "gaussian_worst_ratio", "shifted_interval"]

#: ``(s, c(s))`` knots, ``s = v_D / se_DR^2``; :func:`blend_constant` interpolates linearly and clamps at the ends.
BLEND_CONSTANTS: tuple[tuple[float, float], ...] = (
    (0.05, 0.8125), (0.10, 0.875), (0.15, 0.875), (0.20, 0.9375), (0.25, 0.9375), (0.30, 1.0), (0.35, 1.0),
    (0.40, 1.0625), (0.45, 1.125), (0.50, 1.1875), (0.55, 1.1875), (0.60, 1.3125), (0.65, 1.375), (0.70, 1.4375),
    (0.75, 1.5625), (0.80, 1.75), (0.85, 1.9375), (0.90, 2.25), (0.95, 2.8125),
)

_S = np.array([k[0] for k in BLEND_CONSTANTS])
_C = np.array([k[1] for k in BLEND_CONSTANTS])
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(161)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


def blend_constant(s: float) -> float:
    """``c(s)`` from :data:`BLEND_CONSTANTS` (linear interpolation, clamped to the first and last knots)."""
    return float(np.interp(s, _S, _C))


#: Gap variances below this fraction of DR's variance are round-off (:func:`blend_weight`).
GAP_VAR_ROUNDOFF = 1e-12


def blend_weight(gap: float, gap_var: float, dr_var: float) -> float:
    """The blend's weight on DM, ``min(1, c(s) gap_var / gap^2)`` with ``s = min(1, gap_var / dr_var)``.

    Parameters
    ----------
    gap : float
        DR - DM.
    gap_var : float
        Its estimated variance (``bias_se^2`` of the DM row), >= 0.
    dr_var : float
        DR's estimated variance (``se^2`` of the DR row), >= 0.

    Returns
    -------
    float
        In [0, 1]; 1 when ``gap^2 <= c gap_var`` (including ``gap == 0``); NaN when an input is not finite or a
        variance is negative.

    Examples
    --------
    >>> blend_weight(0.3, 0.01, 0.04)  # s = 0.25: c = 0.9375; the gap is 3 of its standard errors
    0.10416666666666667
    >>> blend_weight(0.05, 0.01, 0.04)  # within its noise: DM
    1.0
    """
    if not all(math.isfinite(x) for x in (gap, gap_var, dr_var)) or gap_var < 0.0 or dr_var < 0.0:
        return math.nan
    s = min(1.0, gap_var / dr_var) if dr_var > 0.0 else 1.0
    if s <= GAP_VAR_ROUNDOFF:
        # a gap variance at round-off of DR's is 0 (e.g. weights the reward model's projection reproduces exactly):
        # merged moments leave ~1e-30 where one pass in memory gives 0, and the blend must not tell them apart
        s = gap_var = 0.0
    scaled = blend_constant(s) * gap_var
    if gap * gap <= scaled:
        return 1.0
    return scaled / (gap * gap)


def blend_shift(dr_value: float, dm_value: float, gap_var: float, dr_var: float) -> tuple[float, float] | None:
    """``(lam, lam (DR - DM))`` of the blend ``V = DR - lam (DR - DM)`` (:func:`blend_weight`), or None when a value
    is not finite."""
    gap = dr_value - dm_value
    lam = blend_weight(gap, gap_var, dr_var)
    if not (math.isfinite(lam) and math.isfinite(dr_value)):
        return None
    return lam, lam * gap


def shifted_interval(dr_value: float, dr_low: float, dr_high: float, shift: float) -> tuple[float, float, float]:
    """The blend's ``(value, low, high)``: ``value = DR - shift`` (``shift`` from :func:`blend_shift`) and DR's
    interval widened to contain it, ``[min(value, DR_low), max(value, DR_high)]`` -- the one rule every blended
    value, lift and paired difference follows (:func:`offline_eval.evaluate.blend_row`,
    :func:`offline_eval.compare`, :func:`offline_eval.report.rollout_report`).

    Examples
    --------
    >>> shifted_interval(1.0, 0.8, 1.2, 0.3)  # the blend 0.7 lies below DR's interval
    (0.7, 0.7, 1.2)
    """
    value = dr_value - shift
    return value, min(value, dr_low), max(value, dr_high)


def gaussian_worst_ratio(c: float, s: float, betas: np.ndarray | None = None) -> tuple[float, float]:
    """Worst ratio over DM's bias of the blend's MSE (constant ``c``) to the better of DR and DM, Gaussian model.

    DR has variance 1; ``D = DR - DM ~ N(b, s)`` with ``Cov(DR, D) = s``, so ``DR - theta = (D - b) + u`` with
    ``u ~ N(0, 1 - s)`` independent of D. With ``z = D / sqrt(s)`` and ``beta = b / sqrt(s)``, the blend's MSE is
    ``1 - s + s E[((1 - lam(z)) z - beta)^2]``, DR's 1 and DM's ``1 - s + s beta^2``.

    Parameters
    ----------
    c : float
        The rule's constant, ``lam = min(1, c / z^2)``.
    s : float
        In (0, 1).
    betas : ndarray, optional
        The ``b / sqrt(s)`` searched (default 0 to 12 by 0.025).

    Returns
    -------
    (float, float)
        The worst ratio and the ``b / sqrt(s)`` where it occurs.
    """
    grid = np.linspace(0.0, 12.0, 481) if betas is None else np.asarray(betas, dtype=np.float64)
    z = grid[:, None] + _NODES[None, :]
    lam = np.minimum(1.0, c / np.maximum(z * z, 1e-300))
    err = (1.0 - lam) * z - grid[:, None]
    mse = (1.0 - s) + s * ((err * err) @ _WEIGHTS)
    ratio = mse / np.minimum(1.0, 1.0 - s + s * grid * grid)
    i = int(np.argmax(ratio))
    return float(ratio[i]), float(grid[i])
