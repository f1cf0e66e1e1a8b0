"""Beta-Bernoulli arms: Beta draws (numba) and the exact probability that each arm's draw is the largest.

- :func:`gamma_draw` / :func:`beta_draw`: one Gamma / Beta variate from a generator state of
  :mod:`bandit.kernels.rng` (Marsaglia & Tsang 2000; Beta as ``G1 / (G1 + G2)``).
- :func:`beta_argmax_probs`: ``P_k = int f_k(y) prod_{j != k} F_j(y) dy`` for ``value_k * Beta(a_k, b_k)`` scores,
  by composite Gauss-Legendre quadrature. It is the one kernel here written with numpy and SciPy rather than
  numba: it needs the regularised incomplete beta function (``scipy.special.betainc``), and since the
  probabilities do not depend on a context, :class:`~bandit.policies.beta_ts.BetaTS` computes them once per state
  and eligibility mask (about a millisecond for 6 arms).

References
----------
Marsaglia & Tsang (2000), "A simple method for generating gamma variables", ACM TOMS 26(3).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from scipy import special

from bandit.kernels import rng

__all__ = ["beta_argmax_probs", "beta_draw", "gamma_draw"]

#: Kernel modules compiled into this module's numba cache (see tests/bandit/test_kernels.py).
LINKED_SOURCES = ("rng",)
LINKED_SOURCES_SHA256 = "9e6fbfb69c3bfddb"


@njit(cache=True)
def gamma_draw(shape, st):
    """One Gamma(shape, 1) draw (Marsaglia & Tsang 2000; shape < 1 via the U**(1/shape) boost)."""
    boost = 1.0
    a = shape
    if a < 1.0:
        boost = rng.next_uniform(st) ** (1.0 / a)
        a += 1.0
    d = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    while True:
        z = rng.next_normal(st)
        v = 1.0 + c * z
        if v <= 0.0:
            continue
        v = v * v * v
        u = rng.next_uniform(st)
        if u < 1.0 - 0.0331 * z * z * z * z or math.log(u) < 0.5 * z * z + d * (1.0 - v + math.log(v)):
            return d * v * boost

@njit(cache=True)
def beta_draw(a, b, st):
    """One ``Beta(a, b)`` draw (two Gamma draws). Both can underflow to 0 for tiny shapes; the draw is then 0 or 1
    with odds ``a : b`` (one more uniform)."""
    g1 = gamma_draw(a, st)
    g2 = gamma_draw(b, st)
    total = g1 + g2
    if total > 0.0:
        return g1 / total
    return 1.0 if rng.next_uniform(st) * (a + b) < a else 0.0


# Gauss-Legendre nodes/weights on [0, 1] used on every panel of the quadrature grid.
_GL_X, _GL_W = np.polynomial.legendre.leggauss(5)
_GL_X = (_GL_X + 1.0) / 2.0
_GL_W = _GL_W / 2.0
# Panel breakpoints of each arm: mean + sd * t (one standard deviation apart, 8 sd either side), a coarse
# uniform grid over the support, and -- for shapes below 1, whose densities are singular at an end of the
# support -- geometric grading (ratio 2) towards that end.
_SD_STEPS = np.arange(-8.0, 8.01, 1.0)
_UNIFORM = np.linspace(0.0, 1.0, 17)
_GRADED = 2.0 ** -np.arange(1.0, 51.0)


def beta_argmax_probs(a: np.ndarray, b: np.ndarray, values: np.ndarray, eligible: np.ndarray) -> np.ndarray:
    """P(arm k has the largest ``value_k * Beta(a_k, b_k)`` draw) over the eligible arms, by quadrature.

    ``P_k = int f_k(y) prod_{j != k} F_j(y) dy`` with ``f_k``, ``F_j`` the density and CDF of ``value * Beta``.
    The integral runs over one panel grid shared by all arms that resolves every arm's mass (panels one
    standard deviation wide around each mean, graded towards singular ends) with 5-point Gauss-Legendre per panel;
    the result is renormalised to sum exactly to 1 (the raw sum is 1 to ~1e-9).
    """
    K = values.shape[0]
    out = np.zeros(K)
    idx = np.flatnonzero(eligible)
    if idx.size == 1:
        out[idx[0]] = 1.0
        return out
    a, b, v = a[idx], b[idx], values[idx]
    mean = a / (a + b)
    sd = np.sqrt(a * b / ((a + b) ** 2 * (a + b + 1.0)))
    rel = [np.clip(mean[:, None] + sd[:, None] * _SD_STEPS[None, :], 0.0, 1.0), np.broadcast_to(_UNIFORM, (idx.size, 17))]
    if (a < 1.0).any():
        rel.append(np.where((a < 1.0)[:, None], _GRADED[None, :], 0.0))
    if (b < 1.0).any():
        rel.append(np.where((b < 1.0)[:, None], 1.0 - _GRADED[None, :], 1.0))
    edges = np.unique(np.concatenate([(np.concatenate(rel, axis=1) * v[:, None]).ravel(), [0.0, v.max()]]))
    width = np.diff(edges)
    keep = width > 0
    left, width = edges[:-1][keep], width[keep]
    y = (left[:, None] + width[:, None] * _GL_X[None, :]).ravel()
    w = (width[:, None] * _GL_W[None, :]).ravel()
    t = y[None, :] / v[:, None]  # (m, nodes) position inside each arm's [0, 1] support
    inside = t < 1.0
    tc = np.clip(t, 1e-300, 1.0 - 1e-16)
    cdf = np.where(inside, special.betainc(a[:, None], b[:, None], tc), 1.0)
    logpdf = (a[:, None] - 1.0) * np.log(tc) + (b[:, None] - 1.0) * np.log1p(-tc) - special.betaln(a, b)[:, None]
    pdf = np.where(inside, np.exp(logpdf) / v[:, None], 0.0)
    # prod_{j != k} F_j(y) from prefix and suffix products (no division by a CDF that may be 0)
    ones = np.ones((1, y.size))
    prefix = np.cumprod(np.vstack([ones, cdf[:-1]]), axis=0)
    suffix = np.cumprod(np.vstack([ones, cdf[:0:-1]]), axis=0)[::-1]
    p = (pdf * prefix * suffix) @ w
    p = np.clip(p, 0.0, None)
    out[idx] = p / p.sum()
    return out
