"""Mergeable per-arm sufficient statistics, accumulated with compensated summation (used by :mod:`bandit.stats`).

Every sum is kept as an unevaluated pair ``(hi, lo)``: ``hi`` is the running floating-point sum and ``lo`` collects
the exact rounding error of every addition, obtained with Knuth's error-free ``TwoSum`` transformation. This is the
compensated summation "Sum2" of Ogita, Rump & Oishi (2005): the value ``hi + lo`` of n added terms ``t_i`` has an
error of at most ``eps |sum t_i| + O(n eps^2) sum |t_i|`` (eps = 2^-53), where plain summation has
``(n - 1) eps sum |t_i|``. So a long stream (10^8 rows) or terms that cancel (rewards of +-1e16 and 1) lose nothing
beyond the final rounding. The terms themselves (products ``x_i x_j``, ``r x_j``) are rounded once each (relative
error eps per term).

Discounting (forgetting factor ``gamma``): before each row is added the accumulators of its arm
(``global_clock=False``, the disjoint policies: ``gamma`` per update of the arm) or of every arm
(``global_clock=True``, the hybrid policies: ``gamma`` per observation of any arm) are multiplied by ``gamma``, both
``hi`` and ``lo`` (one rounding, relative error eps, per scaling). The undiscounted reward total and the row counts
are never scaled.

Layout (K arms, D = d (+1 with an intercept: a constant 1.0 is the last entry of every design row), float64
C-contiguous):

- ``count`` (K,) int64: rows per arm.
- ``scal_hi``, ``scal_lo`` (K, 4): discounted ``sum w`` (the weights ``gamma^age``), ``sum w r``, ``sum w r^2``,
  and the undiscounted ``sum r``.
- ``xx_hi``, ``xx_lo`` (K, D, D): ``sum w x x^T``, upper triangle only (the caller mirrors it).
- ``xr_hi``, ``xr_lo`` (K, D): ``sum w r x``.

The logistic pass (:func:`accumulate_logistic`) keeps, at given coefficients ``beta_k``, the sums that one Newton
step of the Laplace fit needs: ``sum [softplus(eta) - y eta]``, ``sum (p - y) x`` and ``sum max(p (1 - p), c) x x^T``
(``eta = beta_k . x``, ``p = sigmoid(eta)``, ``c`` the curvature floor).

Status codes (:mod:`bandit.kernels.status`): STATUS_OK, STATUS_NON_FINITE (a non-finite feature or reward),
STATUS_INVALID (an arm index out of range or inconsistent shapes). The
kernels check every row before changing anything.

References
----------
Ogita, Rump, Oishi (2005). Accurate sum and dot product. SIAM J. Sci. Comput. 26(6), 1955-1988.
Knuth (1998). The Art of Computer Programming, vol. 2, 3rd ed., section 4.2.2 (TwoSum).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from bandit.kernels.dense import design_row
from bandit.kernels.logistic import sigmoid, softplus
from bandit.kernels.status import STATUS_INVALID, STATUS_NON_FINITE, STATUS_OK

__all__ = ["STATUS_INVALID", "STATUS_NON_FINITE", "STATUS_OK", "accumulate_linear", "accumulate_logistic"]

#: Kernel modules compiled into this module's numba cache (see tests/bandit/test_kernels.py).
LINKED_SOURCES = ("dense", "logistic", "status")
LINKED_SOURCES_SHA256 = "6595939b70d0f7b1"
#: Columns of ``scal_hi``/``scal_lo`` in :func:`accumulate_linear`.
WEIGHT, REWARD, REWARD_SQ, REWARD_TOTAL = 0, 1, 2, 3
#: Columns of ``scal_hi``/``scal_lo`` in :func:`accumulate_logistic`.
OBJECTIVE, LABEL_SUM = 0, 1


@njit(cache=True, inline="always")
def _two_sum(a, b):
    """``(s, e)`` with ``s = fl(a + b)`` and ``s + e == a + b`` exactly (Knuth's TwoSum, no branch)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


@njit(cache=True)
def _check_rows(K, D, intercept, arms, X, rewards):
    n = arms.shape[0]
    d = X.shape[1]
    if X.shape[0] != n or rewards.shape[0] != n or d + (1 if intercept else 0) != D:
        return STATUS_INVALID
    for r in range(n):
        k = arms[r]
        if k < 0 or k >= K:
            return STATUS_INVALID
        if not math.isfinite(rewards[r]):
            return STATUS_NON_FINITE
        for j in range(d):
            if not math.isfinite(X[r, j]):
                return STATUS_NON_FINITE
    return STATUS_OK


@njit(cache=True)
def _scale_arm(k, gamma, scal_hi, scal_lo, xx_hi, xx_lo, xr_hi, xr_lo):
    """Multiply arm ``k``'s discounted accumulators (not the reward total) by ``gamma``."""
    for c in range(REWARD_TOTAL):
        scal_hi[k, c] *= gamma
        scal_lo[k, c] *= gamma
    D = xr_hi.shape[1]
    for i in range(D):
        for j in range(i, D):
            xx_hi[k, i, j] *= gamma
            xx_lo[k, i, j] *= gamma
        xr_hi[k, i] *= gamma
        xr_lo[k, i] *= gamma


@njit(cache=True)
def accumulate_linear(arms, X, rewards, intercept, gamma, global_clock, count, scal_hi, scal_lo, xx_hi, xx_lo, xr_hi,
                      xr_lo):
    """Add the rows, in order, to the per-arm linear statistics (module docstring), in place.

    Parameters
    ----------
    arms : (n,) int64
    X : (n, d) float64
        Contexts; ``D = d + 1`` when ``intercept`` (the constant is appended internally, ``X`` is not copied).
    rewards : (n,) float64
    intercept : bool
    gamma : float
        Forgetting factor in (0, 1]; 1 means no discounting.
    global_clock : bool
        Discount every arm at every row (hybrid policies) instead of only the row's arm.
    count, scal_hi, scal_lo, xx_hi, xx_lo, xr_hi, xr_lo
        The accumulators (module docstring), updated in place; ``xx`` on its upper triangle.

    Returns
    -------
    int
        A status code; nothing is changed unless it is ``STATUS_OK``.
    """
    K, D = xr_hi.shape
    status = _check_rows(K, D, intercept, arms, X, rewards)
    if status != STATUS_OK:
        return status
    x = np.empty(D)
    for r in range(arms.shape[0]):
        k = arms[r]
        y = rewards[r]
        if gamma != 1.0:
            if global_clock:
                for a in range(K):
                    _scale_arm(a, gamma, scal_hi, scal_lo, xx_hi, xx_lo, xr_hi, xr_lo)
            else:
                _scale_arm(k, gamma, scal_hi, scal_lo, xx_hi, xx_lo, xr_hi, xr_lo)
        design_row(X, r, 1.0, x)  # rows were checked finite by _check_rows
        count[k] += 1
        s, e = _two_sum(scal_hi[k, WEIGHT], 1.0)
        scal_hi[k, WEIGHT] = s
        scal_lo[k, WEIGHT] += e
        s, e = _two_sum(scal_hi[k, REWARD], y)
        scal_hi[k, REWARD] = s
        scal_lo[k, REWARD] += e
        s, e = _two_sum(scal_hi[k, REWARD_SQ], y * y)
        scal_hi[k, REWARD_SQ] = s
        scal_lo[k, REWARD_SQ] += e
        s, e = _two_sum(scal_hi[k, REWARD_TOTAL], y)
        scal_hi[k, REWARD_TOTAL] = s
        scal_lo[k, REWARD_TOTAL] += e
        Hk = xx_hi[k]
        Lk = xx_lo[k]
        for i in range(D):
            xi = x[i]
            Hi = Hk[i]
            Li = Lk[i]
            for j in range(i, D):
                t = xi * x[j]
                a = Hi[j]
                s = a + t
                bb = s - a
                Hi[j] = s
                Li[j] += (a - (s - bb)) + (t - bb)
            s, e = _two_sum(xr_hi[k, i], y * xi)
            xr_hi[k, i] = s
            xr_lo[k, i] += e
    return STATUS_OK


@njit(cache=True)
def accumulate_logistic(arms, X, labels, intercept, coef, min_curvature, count, scal_hi, scal_lo, grad_hi, grad_lo,
                        hess_hi, hess_lo):
    """Add the rows' terms of one Laplace/IRLS pass at the coefficients ``coef`` (module docstring), in place.

    Parameters
    ----------
    arms : (n,) int64
    X : (n, d) float64
        Contexts; ``D = d + 1`` when ``intercept``.
    labels : (n,) float64
        In [0, 1] (checked by the caller).
    intercept : bool
    coef : (K, D) float64
        The point ``beta_k`` of each arm at which the terms are evaluated.
    min_curvature : float
        Floor of the curvature ``p (1 - p)``.
    count : (K,) int64
    scal_hi, scal_lo : (K, 2)
        ``sum [softplus(eta) - y eta]`` and ``sum y``.
    grad_hi, grad_lo : (K, D)
        ``sum (p - y) x``.
    hess_hi, hess_lo : (K, D, D)
        ``sum max(p (1 - p), min_curvature) x x^T`` (upper triangle).

    Returns
    -------
    int
        A status code; nothing is changed unless it is ``STATUS_OK``.
    """
    K, D = grad_hi.shape
    status = _check_rows(K, D, intercept, arms, X, labels)
    if status != STATUS_OK:
        return status
    x = np.empty(D)
    for r in range(arms.shape[0]):
        k = arms[r]
        y = labels[r]
        design_row(X, r, 1.0, x)  # rows were checked finite by _check_rows
        ck = coef[k]
        eta = 0.0
        for j in range(D):
            eta += x[j] * ck[j]
        p = sigmoid(eta)
        w = max(p * (1.0 - p), min_curvature)
        count[k] += 1
        s, e = _two_sum(scal_hi[k, OBJECTIVE], softplus(eta) - y * eta)
        scal_hi[k, OBJECTIVE] = s
        scal_lo[k, OBJECTIVE] += e
        s, e = _two_sum(scal_hi[k, LABEL_SUM], y)
        scal_hi[k, LABEL_SUM] = s
        scal_lo[k, LABEL_SUM] += e
        g = p - y
        Hk = hess_hi[k]
        Lk = hess_lo[k]
        for i in range(D):
            xi = x[i]
            wxi = w * xi
            Hi = Hk[i]
            Li = Lk[i]
            for j in range(i, D):
                t = wxi * x[j]
                a = Hi[j]
                s = a + t
                bb = s - a
                Hi[j] = s
                Li[j] += (a - (s - bb)) + (t - bb)
            s, e = _two_sum(grad_hi[k, i], g * xi)
            grad_hi[k, i] = s
            grad_lo[k, i] += e
    return STATUS_OK
