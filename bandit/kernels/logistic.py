"""Bayesian logistic regression per arm with a Laplace (Gaussian) posterior, updated in place (numba).

State of arm ``k`` (K arms, D = feature dimension including any intercept, float64 C-contiguous): ``P[k]`` (D, D)
the precision, ``Sigma[k]`` its inverse (the covariance), ``m[k]`` (D,) the posterior mean and
``n_since_refactor[k]`` (int64), as for ridge (:mod:`bandit.kernels.ridge`). One observation is one online Laplace
step (a Newton step on the new observation, rank-1 update of the precision by
:func:`bandit.kernels.dense.rank1_precision_update`); a batch refits the Laplace approximation
(:func:`logistic_update_batch`).

Status codes: :mod:`bandit.kernels.status`; nothing is changed unless ``STATUS_OK`` is returned.

References
----------
Chapelle & Li (2011), "An empirical evaluation of Thompson sampling", NeurIPS (online Laplace approximation).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from bandit.kernels.dense import (
    BLOCK,
    MAX_CONDITION,
    add_scaled_row,
    all_finite,
    check_common,
    check_row,
    cholesky_solve,
    cholesky_upper,
    condition_bound,
    counting_order,
    design_row,
    dot,
    fill_context,
    forget_into,
    gram_block_upper,
    mirror_upper,
    rank1_precision_update,
    rank1_upper,
    row_dot,
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

__all__ = [
    "MIN_CURVATURE",
    "logistic_update",
    "logistic_update_batch",
    "logistic_update_context",
    "logistic_update_work",
    "sigmoid",
    "softplus",
]

#: Kernel modules compiled into this module's numba cache (see tests/bandit/test_kernels.py).
LINKED_SOURCES = ("dense", "status")
LINKED_SOURCES_SHA256 = "dc3a3e161a4c1d86"

#: Floor of the logistic curvature p (1 - p): keeps a confident arm learning (Chapelle & Li 2011).
MIN_CURVATURE = 1e-6
#: Armijo constant and maximum number of step halvings of the batch Newton line search.
_ARMIJO = 1e-4
_MAX_HALVINGS = 60
#: Below this Newton decrement ``g^T H^-1 g`` the full Newton step is taken without a line search (the quadratic
#: convergence region, where the objective's decrease is below its floating-point resolution).
_FULL_STEP_DECREMENT = 1e-6


@njit(cache=True)
def sigmoid(z):
    """``1 / (1 + exp(-z))`` without overflow."""
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@njit(cache=True)
def softplus(z):
    """``log(1 + exp(z))`` without overflow."""
    return max(z, 0.0) + math.log1p(math.exp(-abs(z)))


@njit(cache=True)
def logistic_update(P, Sigma, m, n_since_refactor, k, x, y, gamma, l2, refactor_every):
    """One observation for Laplace-logistic arm ``k``, in place (:func:`logistic_update_work`, own scratch)."""
    return logistic_update_work(P, Sigma, m, n_since_refactor, k, x, y, gamma, l2, refactor_every,
                                np.empty((2, x.shape[0])))


@njit(cache=True)
def logistic_update_work(P, Sigma, m, n_since_refactor, k, x, y, gamma, l2, refactor_every, work):
    """One observation for Laplace-logistic arm ``k`` (one Newton step on the log-posterior), in place.

    ``p = sigmoid(m[k] . x)``, ``w = max(p (1 - p), 1e-6)``; ``P[k] += w x x^T`` (gamma < 1:
    ``P[k] = gamma P[k] + (1 - gamma) l2 I + w x x^T``); ``Sigma[k] = P[k]^-1`` by Sherman-Morrison with periodic
    Cholesky refactorisation (gamma == 1) or by Cholesky (gamma < 1); then ``m[k] += Sigma[k] @ x * (y - p)``.

    Parameters
    ----------
    P, Sigma : (K, D, D) float64
        Precision and covariance of each arm's coefficients.
    m : (K, D) float64
        Posterior means.
    n_since_refactor : (K,) int64
    k : int64
    x : (D,) float64
    y : float
        Label in [0, 1].
    gamma, l2, refactor_every
        As in :func:`ridge_update`.
    work : (2, D) float64
        Scratch.

    Returns
    -------
    int
        A status code; nothing is changed unless ``STATUS_OK`` (0).
    """
    K, D = m.shape
    status = check_common(K, D, k, x, gamma)
    if status != STATUS_OK:
        return status
    if not (math.isfinite(y) and all_finite(x)):
        return STATUS_NON_FINITE
    if y < 0.0 or y > 1.0:
        return STATUS_INVALID
    p = sigmoid(dot(m[k], x))
    w = max(p * (1.0 - p), MIN_CURVATURE)
    c = rank1_precision_update(P, Sigma, n_since_refactor, k, x, w, gamma, l2, refactor_every, work)
    if c < 0.0:
        return STATUS_ILL_CONDITIONED if c == -2.0 else STATUS_NOT_PD
    g = work[0]
    symmetric_matvec(Sigma[k], x, g)
    r = y - p
    mk = m[k]
    for j in range(D):
        mk[j] += g[j] * r
    return STATUS_OK


@njit(cache=True)
def logistic_update_context(context, k, y, P, Sigma, m, n_since_refactor, gamma, l2, refactor_every):
    """One observation from a raw context: finite check (+ intercept), then :func:`logistic_update_work`.

    ``context`` is (d,) with ``D = m.shape[1]`` equal to ``d`` or ``d + 1``. STATUS_NON_FINITE (or any negative
    status) leaves the state untouched.
    """
    D = m.shape[1]
    scratch = np.empty(3 * D)
    x = scratch[:D]
    if not fill_context(context, D > context.shape[0], x):
        return STATUS_NON_FINITE
    return logistic_update_work(P, Sigma, m, n_since_refactor, k, x, y, gamma, l2, refactor_every,
                                scratch[D:].reshape((2, D)))


@njit(cache=True)
def _logistic_objective(beta, m0, P0, X, y, rows, diff, tmp):
    """``0.5 (beta - m0)^T P0 (beta - m0) + sum_rows [softplus(x.beta) - y x.beta]``."""
    D = beta.shape[0]
    for j in range(D):
        diff[j] = beta[j] - m0[j]
    symmetric_matvec(P0, diff, tmp)
    f = 0.5 * dot(diff, tmp)
    for r in range(rows.shape[0]):
        i = rows[r]
        eta = row_dot(X, i, beta)
        f += softplus(eta) - y[i] * eta
    return f


@njit(cache=True)
def _add_weighted_gram(H, X, rows, beta, grad_out, y, buf):
    """``H += sum w_i x_i x_i^T`` (upper triangle) with ``w = max(p(1-p), 1e-6)`` at ``beta``; if ``grad_out``
    has length D also ``grad_out -= sum (y_i - p_i) x_i``. ``x_i`` is ``X[i]`` plus the intercept when ``X`` has
    D - 1 columns. ``buf`` (8, D) is scratch."""
    D = beta.shape[0]
    do_grad = grad_out.shape[0] == D
    fill = 0
    for r in range(rows.shape[0]):
        i = rows[r]
        p = sigmoid(row_dot(X, i, beta))
        sw = math.sqrt(max(p * (1.0 - p), MIN_CURVATURE))
        if do_grad:
            add_scaled_row(X, i, p - y[i], grad_out)
        design_row(X, i, sw, buf[fill])
        fill += 1
        if fill == BLOCK:
            gram_block_upper(H, buf)
            fill = 0
    for r in range(fill):
        rank1_upper(H, buf[r])


@njit(cache=True)
def logistic_update_batch(P, Sigma, m, n_since_refactor, arms, X, y, gamma, l2, newton_iters):
    """Batch Laplace update of every touched logistic arm (Chapelle & Li 2011, Algorithm 3, full covariance).

    For each touched arm ``k`` with prior ``N(m_k, P_k^-1)`` (gamma < 1: first ``P_k = gamma P_k +
    (1 - gamma) l2 I``, once per batch), the MAP of prior x Bernoulli-logit likelihood of its rows is found by up
    to ``newton_iters`` Newton steps from ``m_k`` (Cholesky solves; Armijo backtracking while the Newton decrement
    exceeds 1e-6, full steps below; stops early when the decrement is below 1e-24). Then
    ``P_k += sum w_i x_i x_i^T`` at the MAP (``w = max(p (1 - p), 1e-6)``), ``Sigma_k = P_k^-1`` (Cholesky),
    ``m_k`` = MAP, counter reset to 0.

    Parameters
    ----------
    P, Sigma : (K, D, D) float64
    m : (K, D) float64
    n_since_refactor : (K,) int64
    arms : (n,) int64
    X : (n, d) float64
        Raw contexts: ``d == D``, or ``d == D - 1`` and a constant 1.0 is the last feature (no copy of ``X``).
    y : (n,) float64
        Labels in [0, 1].
    gamma, l2
        As in :func:`logistic_update`.
    newton_iters : int64
        Maximum Newton steps per arm (0: the curvature is taken at the prior mean, which is kept).

    Returns
    -------
    int
        A status code; nothing is changed (for any arm) unless ``STATUS_OK``.
    """
    K, D = m.shape
    n = arms.shape[0]
    d = X.shape[1]
    if not (gamma > 0.0 and gamma <= 1.0) or X.shape[0] != n or not (d == D or d + 1 == D) or y.shape[0] != n:
        return STATUS_INVALID
    for i in range(n):
        status = check_row(K, arms[i], X[i], y[i], 1.0)
        if status != STATUS_OK:
            return status
        if y[i] < 0.0 or y[i] > 1.0:
            return STATUS_INVALID
    if n == 0:
        return STATUS_OK
    order, start = counting_order(arms, K)
    P_new = np.empty((K, D, D))
    S_new = np.empty((K, D, D))
    m_new = np.empty((K, D))
    P0 = np.empty((D, D))
    H = np.empty((D, D))
    U = np.empty((D, D))
    Wk = np.empty((D, D))
    grad = np.empty(D)
    step = np.empty(D)
    trial = np.empty(D)
    diff = np.empty(D)
    tmp = np.empty(D)
    no_grad = np.empty(0)
    buf = np.empty((BLOCK, D))
    for k in range(K):
        lo = start[k]
        hi = start[k + 1]
        if hi == lo:
            continue
        rows = order[lo:hi]
        if gamma == 1.0:
            P0[:, :] = P[k]
        else:
            forget_into(P[k], gamma, l2, P0)
        m0 = m[k]
        beta = m_new[k]
        beta[:] = m0
        f = _logistic_objective(beta, m0, P0, X, y, rows, diff, tmp)
        for _ in range(newton_iters):
            # gradient P0 (beta - m0) - sum (y - p) x and Hessian P0 + sum w x x^T
            for j in range(D):
                diff[j] = beta[j] - m0[j]
            symmetric_matvec(P0, diff, grad)
            for a in range(D):
                for j in range(D):
                    H[a, j] = P0[a, j]
            _add_weighted_gram(H, X, rows, beta, grad, y, buf)
            mirror_upper(H)
            if not cholesky_upper(H, U):
                return STATUS_ILL_CONDITIONED if all_finite(H.ravel()) else STATUS_NOT_PD
            cholesky_solve(U, grad, step)
            decrement = dot(grad, step)  # g^T H^-1 g >= 0
            if not decrement > 1e-24:
                break
            if decrement < _FULL_STEP_DECREMENT:
                # close to the optimum: the full step (the objective's change is below its round-off here)
                for j in range(D):
                    beta[j] -= step[j]
                f = _logistic_objective(beta, m0, P0, X, y, rows, diff, tmp)
                continue
            s = 1.0
            accepted = False
            for _h in range(_MAX_HALVINGS):
                for j in range(D):
                    trial[j] = beta[j] - s * step[j]
                f_trial = _logistic_objective(trial, m0, P0, X, y, rows, diff, tmp)
                if f_trial <= f - _ARMIJO * s * decrement:
                    accepted = True
                    break
                s *= 0.5
            if not accepted:
                break
            beta[:] = trial
            f = f_trial
        Pk = P_new[k]
        Pk[:, :] = P0
        _add_weighted_gram(Pk, X, rows, beta, no_grad, y, buf)
        mirror_upper(Pk)
        if not spd_inverse_work(Pk, S_new[k], U, Wk):
            return STATUS_ILL_CONDITIONED if all_finite(Pk.ravel()) else STATUS_NOT_PD
        if not condition_bound(Pk, S_new[k]) <= MAX_CONDITION:
            return STATUS_ILL_CONDITIONED
    for k in range(K):
        if start[k + 1] == start[k]:
            continue
        P[k, :, :] = P_new[k]
        Sigma[k, :, :] = S_new[k]
        m[k, :] = m_new[k]
        n_since_refactor[k] = 0
    return STATUS_OK
