"""Disjoint ridge regression per arm, updated in place (numba): one observation, a context, or a batch.

State of arm ``k`` (K arms, D = feature dimension including any intercept, float64 C-contiguous): ``A[k]`` (D, D)
the precision ``l2 I + sum w x x^T``, ``A_inv[k]`` its inverse, ``b[k]`` (D,) = ``sum w r x``, ``theta[k] =
A_inv[k] @ b[k]`` and ``n_since_refactor[k]`` (int64), the number of Sherman-Morrison updates since ``A_inv[k]``
was last recomputed from ``A[k]`` by Cholesky. With a discount ``gamma < 1`` each update first forgets,
``A <- gamma A + (1 - gamma) l2 I``, ``b <- gamma b``, which keeps ``A >= l2 I``; the inverse is then recomputed
by Cholesky. The precision/inverse pair is updated by :func:`bandit.kernels.dense.rank1_precision_update`
(conditioning guard and precision-loss repair: :mod:`bandit.kernels.dense`).

Status codes: :mod:`bandit.kernels.status`; nothing is changed unless ``STATUS_OK`` is returned.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from bandit.kernels.dense import (
    MAX_CONDITION,
    add_rank1,
    add_scaled_row,
    all_finite,
    check_common,
    condition_bound,
    design_row,
    fill_context,
    forget_into,
    rank1_precision_update,
    spd_inverse_work,
    symmetric_matvec,
)
from bandit.kernels.status import (
    STATUS_ILL_CONDITIONED,
    STATUS_INVALID,
    STATUS_NON_FINITE,
    STATUS_NOT_PD,
    STATUS_OK,
)

__all__ = ["ridge_update", "ridge_update_batch", "ridge_update_context", "ridge_update_work"]

#: Kernel modules compiled into this module's numba cache (see tests/bandit/test_kernels.py).
LINKED_SOURCES = ("dense", "status")
LINKED_SOURCES_SHA256 = "dc3a3e161a4c1d86"

#: Rows buffered per arm before their Gram matrix is added by one BLAS product (``np.dot``).
_GRAM_ROWS = 256
#: Upper bound on the floats of all the arms' row buffers together (16 MB).
_GRAM_BUFFER = 1 << 21


@njit(cache=True)
def ridge_update(A, A_inv, b, theta, n_since_refactor, k, x, reward, weight, gamma, l2, refactor_every):
    """One weighted observation for ridge arm ``k``, in place (:func:`ridge_update_work` with its own scratch)."""
    return ridge_update_work(A, A_inv, b, theta, n_since_refactor, k, x, reward, weight, gamma, l2, refactor_every,
                             np.empty((2, x.shape[0])))


@njit(cache=True)
def ridge_update_work(A, A_inv, b, theta, n_since_refactor, k, x, reward, weight, gamma, l2, refactor_every, work):
    """One weighted observation for ridge arm ``k``, in place.

    gamma == 1: ``A[k] += w x x^T``; Sherman-Morrison on ``A_inv[k]``; ``b[k] += w r x``; ``n_since_refactor[k]``
    += 1, and when it reaches ``refactor_every`` ``A_inv[k]`` is recomputed from ``A[k]`` by Cholesky and the
    counter reset. gamma < 1 (forgetting): ``A[k] = gamma A[k] + (1 - gamma) l2 I + w x x^T``,
    ``b[k] = gamma b[k] + w r x``, ``A_inv[k]`` by Cholesky, counter 0. Then ``theta[k] = A_inv[k] @ b[k]``: after
    a Cholesky inverse by a matrix-vector product, after a Sherman-Morrison step by the equivalent O(D) recursive
    least-squares step ``theta += A_inv_new q (sqrt(w) r - q . theta)`` (``q = sqrt(w) x``; the refactorisations
    reset any drift).

    Parameters
    ----------
    A, A_inv : (K, D, D) float64
    b, theta : (K, D) float64
    n_since_refactor : (K,) int64
    k : int64
        Arm index.
    x : (D,) float64
        Features (with the intercept column if any).
    reward : float
    weight : float
        > 0; multiplies ``x x^T`` and ``reward x``.
    gamma : float
        Discount in (0, 1].
    l2 : float
        Ridge prior precision (used by the forgetting step).
    refactor_every : int64
        Sherman-Morrison updates between Cholesky refactorisations; <= 0 never refactors.
    work : (2, D) float64
        Scratch.

    Returns
    -------
    int
        A status code (module docstring); the state is unchanged unless it is ``STATUS_OK`` (0).
    """
    K, D = b.shape
    status = check_common(K, D, k, x, gamma)
    if status != STATUS_OK:
        return status
    if not (math.isfinite(reward) and math.isfinite(weight) and all_finite(x)):
        return STATUS_NON_FINITE
    if not weight > 0.0:
        return STATUS_INVALID
    c = rank1_precision_update(A, A_inv, n_since_refactor, k, x, weight, gamma, l2, refactor_every, work)
    if c < 0.0:
        return STATUS_ILL_CONDITIONED if c == -2.0 else STATUS_NOT_PD
    wr = weight * reward
    bk = b[k]
    if gamma != 1.0:
        for j in range(D):
            bk[j] *= gamma
    for j in range(D):
        bk[j] += wr * x[j]
    tk = theta[k]
    if c > 0.0:
        # Sherman-Morrison step: theta += A_inv_new q (sqrt(w) r - q . theta), with A_inv_new q = c^2 A_inv_old q
        q = work[0]
        u = work[1]
        e = math.sqrt(weight) * reward
        for j in range(D):
            e -= q[j] * tk[j]
        e *= c
        for j in range(D):
            tk[j] += e * u[j]
    else:
        symmetric_matvec(A_inv[k], bk, tk)
    return STATUS_OK


@njit(cache=True)
def ridge_update_context(context, k, reward, A, A_inv, b, theta, n_since_refactor, gamma, l2, refactor_every):
    """One observation with weight 1 from a raw context: finite check (+ intercept), then :func:`ridge_update_work`.

    ``context`` is (d,) with ``D = b.shape[1]`` equal to ``d`` or ``d + 1`` (a constant 1.0 appended).
    STATUS_NON_FINITE (or any negative status) leaves the state untouched.
    """
    D = b.shape[1]
    scratch = np.empty(3 * D)
    x = scratch[:D]
    if not fill_context(context, D > context.shape[0], x):
        return STATUS_NON_FINITE
    return ridge_update_work(A, A_inv, b, theta, n_since_refactor, k, x, reward, 1.0, gamma, l2, refactor_every,
                             scratch[D:].reshape((2, D)))


@njit(cache=True)
def _check_arm_weight_reward(K, k, weight, reward):
    """Status of a batch row's arm index, weight and reward (its context is checked by the caller)."""
    if k < 0 or k >= K:
        return STATUS_INVALID
    if not math.isfinite(weight):
        return STATUS_NON_FINITE
    if not weight > 0.0:
        return STATUS_INVALID
    if not math.isfinite(reward):
        return STATUS_NON_FINITE
    return STATUS_OK


@njit(cache=True)
def ridge_update_batch(A, A_inv, b, theta, n_since_refactor, arms, X, rewards, weights, gamma, l2, refactor_every):
    """``n`` observations in one call; the result equals ``n`` sequential :func:`ridge_update` calls.

    ``X`` holds the raw contexts: ``D = b.shape[1]`` is ``d`` (no intercept) or ``d + 1`` (a constant 1.0 is the
    last feature of every row, used without copying ``X``).

    gamma == 1: rows are read in order and copied (scaled by ``sqrt(w)``) into a buffer of their arm; a full buffer
    of ``B`` rows ``Q`` adds ``Q^T Q`` to the arm's Gram matrix with one BLAS product (``np.dot``), ``b`` gets
    ``w r x`` row by row. Then per touched arm ``A[k] += G`` (upper triangle, mirrored: exactly symmetric),
    ``A_inv[k]`` by one Cholesky inverse (counter reset to 0). It matches the sequential path to round-off
    (~1e-15 relative).
    gamma < 1: the forgetting updates of ``A[k]`` and ``b[k]`` are applied row by row in order (exactly the
    sequential arithmetic), then one Cholesky inverse per touched arm (bitwise equal to the sequential result).

    Parameters
    ----------
    A, A_inv : (K, D, D) float64
    b, theta : (K, D) float64
    n_since_refactor : (K,) int64
    arms : (n,) int64
    X : (n, d) float64
        ``d`` is ``D`` or ``D - 1`` (see above).
    rewards : (n,) float64
    weights : (n,) float64
        All > 0.
    gamma, l2, refactor_every
        As in :func:`ridge_update` (``refactor_every`` is unused: every touched arm is refactorised).

    Returns
    -------
    int
        A status code: ``STATUS_NON_FINITE`` for a NaN/inf feature, reward or weight, ``STATUS_NOT_PD`` when the
        accumulated statistics overflow, ``STATUS_ILL_CONDITIONED`` when an arm's updated precision matrix would
        exceed :data:`MAX_CONDITION` (checked once per touched arm, on the batch's result). Nothing is changed (for any arm) unless ``STATUS_OK`` (the rows are
        accumulated into copies, committed only when every row and every inverse is fine).
    """
    K, D = b.shape
    n = arms.shape[0]
    d = X.shape[1]
    if not (gamma > 0.0 and gamma <= 1.0) or X.shape[0] != n or not (d == D or d + 1 == D):
        return STATUS_INVALID
    if rewards.shape[0] != n or weights.shape[0] != n:
        return STATUS_INVALID
    A_new = np.zeros((K, D, D))
    b_new = np.zeros((K, D))
    inv_new = np.empty((K, D, D))
    U = np.empty((D, D))
    Wk = np.empty((D, D))
    count = np.zeros(K, dtype=np.int64)
    if gamma == 1.0:
        # G_k = sum w x x^T from per-arm buffers of rows, read in order (sequential memory)
        rows = max(1, min(_GRAM_ROWS, _GRAM_BUFFER // max(K * D, 1)))
        Q = np.empty((K, rows, D))
        fill = np.zeros(K, dtype=np.int64)
        for r in range(n):
            k = arms[r]
            w = weights[r]
            reward = rewards[r]
            status = _check_arm_weight_reward(K, k, w, reward)
            if status != STATUS_OK:
                return status
            if not design_row(X, r, math.sqrt(w), Q[k, fill[k]]):
                return STATUS_NON_FINITE
            add_scaled_row(X, r, w * reward, b_new[k])
            fill[k] += 1
            count[k] += 1
            if fill[k] == rows:
                Qk = Q[k]
                A_new[k] += np.dot(Qk.T, Qk)
                fill[k] = 0
        for k in range(K):
            if count[k] == 0:
                continue
            if fill[k] > 0:
                Qk = Q[k, : fill[k]]
                A_new[k] += np.dot(Qk.T, Qk)
            # A_new = A + G from the upper triangle, mirrored (exactly symmetric)
            Ak = A_new[k]
            Aold = A[k]
            for i in range(D):
                Ak[i, i] += Aold[i, i]
                for j in range(i + 1, D):
                    v = Aold[i, j] + Ak[i, j]
                    Ak[i, j] = v
                    Ak[j, i] = v
            for j in range(D):
                b_new[k, j] += b[k, j]
    else:
        q = np.empty(D)
        xr = np.empty(D)
        for k in range(K):
            A_new[k, :, :] = A[k]
            b_new[k, :] = b[k]
        for r in range(n):  # the sequential arithmetic of ridge_update, without the inverses
            k = arms[r]
            w = weights[r]
            reward = rewards[r]
            status = _check_arm_weight_reward(K, k, w, reward)
            if status != STATUS_OK:
                return status
            if not design_row(X, r, 1.0, xr):
                return STATUS_NON_FINITE
            count[k] += 1
            Ak = A_new[k]
            bk = b_new[k]
            sw = math.sqrt(w)
            wr = w * reward
            for j in range(D):
                q[j] = sw * xr[j]
            forget_into(Ak, gamma, l2, Ak)
            add_rank1(Ak, q)
            for j in range(D):
                bk[j] *= gamma
            for j in range(D):
                bk[j] += wr * xr[j]
    for k in range(K):
        if count[k] == 0:
            continue
        if not (all_finite(A_new[k].ravel()) and all_finite(b_new[k])):
            return STATUS_NOT_PD  # the inputs are finite: the sums overflowed
        if not spd_inverse_work(A_new[k], inv_new[k], U, Wk):
            return STATUS_ILL_CONDITIONED  # finite, and PD in exact arithmetic: lost in round-off
        if not condition_bound(A_new[k], inv_new[k]) <= MAX_CONDITION:
            return STATUS_ILL_CONDITIONED
    for k in range(K):
        if count[k] == 0:
            continue
        A[k, :, :] = A_new[k]
        A_inv[k, :, :] = inv_new[k]
        b[k, :] = b_new[k]
        n_since_refactor[k] = 0
        symmetric_matvec(A_inv[k], b[k], theta[k])
    return STATUS_OK
