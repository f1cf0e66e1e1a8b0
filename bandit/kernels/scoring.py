"""Per-arm posterior mean and variance of the linear predictor ``theta_k . x`` for one or many contexts.

``out_var[k] = x^T A_inv[k] x`` is computed as ``x . (sum_i x_i A_inv[k][i, :])``: the inner accumulation runs
over contiguous rows (vectorised by LLVM without reassociating a reduction), so no ``fastmath`` is needed. The
batch kernel runs for every row exactly the arithmetic of the single-context kernel, in the same order (four rows
share each pass over ``A_inv[k]``), so a row scored in a batch is bit-identical to the same context scored alone.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["linear_mean_var", "linear_mean_var_batch"]


@njit(cache=True)
def _mean_var_row(A_inv, theta, x, u, out_mean, out_var):
    """Mean and variance for every arm at one context ``x`` (D,); ``u`` (D,) is scratch."""
    K, D = theta.shape
    for k in range(K):
        Ak = A_inv[k]
        tk = theta[k]
        mean = 0.0
        for j in range(D):
            mean += tk[j] * x[j]
            u[j] = 0.0
        for i in range(D):
            c = x[i]
            Ai = Ak[i]
            for j in range(D):
                u[j] += c * Ai[j]
        var = 0.0
        for j in range(D):
            var += x[j] * u[j]
        out_mean[k] = mean
        out_var[k] = 0.0 if var < 0.0 else var


@njit(cache=True)
def linear_mean_var(A_inv, theta, x, out_mean, out_var):
    """Posterior mean ``theta[k] . x`` and variance ``x^T A_inv[k] x`` (clipped at 0) of every arm.

    Parameters
    ----------
    A_inv : (K, D, D) float64
        Symmetric posterior covariance (up to scale) of each arm.
    theta : (K, D) float64
        Posterior means.
    x : (D,) float64
        One context (with the intercept column if any).
    out_mean, out_var : (K,) float64
        Outputs.

    Examples
    --------
    >>> import numpy as np
    >>> A_inv = np.stack([np.eye(2), 2.0 * np.eye(2)])
    >>> theta = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> mean, var = np.empty(2), np.empty(2)
    >>> linear_mean_var(A_inv, theta, np.array([3.0, 1.0]), mean, var)
    >>> mean, var
    (array([3., 1.]), array([10., 20.]))
    """
    u = np.empty(x.shape[0])
    _mean_var_row(A_inv, theta, x, u, out_mean, out_var)


@njit(cache=True)
def linear_mean_var_batch(A_inv, theta, X, out_mean, out_var):
    """:func:`linear_mean_var` for every row of ``X``.

    Rows are processed four at a time, so each row of ``A_inv[k]`` is loaded once per four contexts; every row
    still runs exactly the arithmetic of :func:`_mean_var_row`, in the same order.

    Parameters
    ----------
    A_inv : (K, D, D) float64
    theta : (K, D) float64
    X : (n, D) float64
    out_mean, out_var : (n, K) float64
        Outputs; row ``i`` is bit-identical to ``linear_mean_var(A_inv, theta, X[i], ...)``.
    """
    K, D = theta.shape
    n = X.shape[0]
    U = np.empty((4, D))
    n4 = n // 4 * 4
    for r0 in range(0, n4, 4):
        x0 = X[r0]
        x1 = X[r0 + 1]
        x2 = X[r0 + 2]
        x3 = X[r0 + 3]
        u0 = U[0]
        u1 = U[1]
        u2 = U[2]
        u3 = U[3]
        for k in range(K):
            Ak = A_inv[k]
            for j in range(D):
                u0[j] = 0.0
                u1[j] = 0.0
                u2[j] = 0.0
                u3[j] = 0.0
            for i in range(D):
                c0 = x0[i]
                c1 = x1[i]
                c2 = x2[i]
                c3 = x3[i]
                Ai = Ak[i]
                for j in range(D):
                    a = Ai[j]
                    u0[j] += c0 * a
                    u1[j] += c1 * a
                    u2[j] += c2 * a
                    u3[j] += c3 * a
            tk = theta[k]
            for q in range(4):
                x = X[r0 + q]
                uq = U[q]
                mean = 0.0
                for j in range(D):
                    mean += tk[j] * x[j]
                var = 0.0
                for j in range(D):
                    var += x[j] * uq[j]
                out_mean[r0 + q, k] = mean
                out_var[r0 + q, k] = 0.0 if var < 0.0 else var
    u = U[0]
    for i in range(n4, n):
        _mean_var_row(A_inv, theta, X[i], u, out_mean[i], out_var[i])
