"""Per-arm posterior mean and variance of the linear predictor ``theta_k . x`` for one or many contexts.

The variance ``x^T A x`` of a symmetric ``A = A_inv[k]`` is computed from the strict upper triangle:
``w_j = sum_{i<j} x_i A[i, j]`` (``i`` ascending), then ``var = sum_j x_j (A[j, j] x_j + 2 w_j)`` (``j``
ascending) -- half the multiplications of the full quadratic form. No ``fastmath`` is used: every sum runs in the
stated order, so the two kernels below produce **bit-identical** results for the same context, even though they
vectorise differently:

- :func:`linear_mean_var` (one context) accumulates ``w`` with contiguous row updates ``w[j] += x_i A[i, j]``,
  eight rows ``i`` per pass;
- :func:`linear_mean_var_batch` (many contexts) transposes blocks of 64 contexts and runs every loop over the
  contexts of the block, so each row of the block is one SIMD lane; ``w`` takes four rows ``i`` per pass over the
  block (``w <- (((w + x_i A[i, j]) + ...) + x_{i+3} A[i+3, j])``, the same additions in the same order). It
  releases the GIL (``nogil``): threads may score batches at once.

Only the upper triangle of ``A_inv[k]`` is read.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["linear_mean_var", "linear_mean_var_batch"]

#: Contexts per block of :func:`linear_mean_var_batch` (the transposed block and one arm's matrix stay in L1).
_ROWS = 64
#: Status of :func:`linear_mean_var_batch`: a mean or variance overflowed.
OVERFLOW = -2


@njit(cache=True, inline="always")
def _mean_var_row(A_inv, theta, x, w, out_mean, out_var):
    """Mean and variance for every arm at one context ``x`` (D,); ``w`` (D,) is scratch."""
    K, D = theta.shape
    for k in range(K):
        Ak = A_inv[k]
        for j in range(D):
            w[j] = 0.0
        i = 0
        while i + 8 <= D:
            # the triangle inside the block of rows i..i+7, row by row
            for r in range(i, i + 7):
                c = x[r]
                Ar = Ak[r]
                for j in range(r + 1, i + 8):
                    w[j] += c * Ar[j]
            # the columns right of the block: the eight rows in order, in one pass over w
            c0 = x[i]
            c1 = x[i + 1]
            c2 = x[i + 2]
            c3 = x[i + 3]
            c4 = x[i + 4]
            c5 = x[i + 5]
            c6 = x[i + 6]
            c7 = x[i + 7]
            A0 = Ak[i]
            A1 = Ak[i + 1]
            A2 = Ak[i + 2]
            A3 = Ak[i + 3]
            A4 = Ak[i + 4]
            A5 = Ak[i + 5]
            A6 = Ak[i + 6]
            A7 = Ak[i + 7]
            for j in range(i + 8, D):
                w[j] = (
                    ((((((w[j] + c0 * A0[j]) + c1 * A1[j]) + c2 * A2[j]) + c3 * A3[j]) + c4 * A4[j]) + c5 * A5[j])
                    + c6 * A6[j]
                ) + c7 * A7[j]
            i += 8
        while i < D - 1:
            c = x[i]
            Ai = Ak[i]
            for j in range(i + 1, D):
                w[j] += c * Ai[j]
            i += 1
        tk = theta[k]
        mean = 0.0
        var = 0.0
        for j in range(D):
            xj = x[j]
            mean += tk[j] * xj
            var += xj * (Ak[j, j] * xj + 2.0 * w[j])
        out_mean[k] = mean
        out_var[k] = 0.0 if var < 0.0 else var


@njit(cache=True)
def linear_mean_var(A_inv, theta, x, out_mean, out_var):
    """Posterior mean ``theta[k] . x`` and variance ``x^T A_inv[k] x`` (clipped at 0) of every arm.

    Parameters
    ----------
    A_inv : (K, D, D) float64
        Symmetric posterior covariance (up to scale) of each arm; only the upper triangle is read.
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
    w = np.empty(x.shape[0])
    _mean_var_row(A_inv, theta, x, w, out_mean, out_var)


@njit(cache=True, nogil=True)
def linear_mean_var_batch(A_inv, theta, X, out_mean, out_var):
    """:func:`linear_mean_var` for every row of ``X``, appending the intercept on the fly; checks finiteness of
    the contexts and of the results.

    Parameters
    ----------
    A_inv : (K, D, D) float64
    theta : (K, D) float64
    X : (n, d) float64
        Contexts without the intercept: ``d == D`` (no intercept) or ``d == D - 1`` (a constant 1.0 is used as the
        last feature, without copying ``X``).
    out_mean, out_var : (n, K) float64
        Outputs; row ``i`` is bit-identical to ``linear_mean_var(A_inv, theta, [X[i], 1], ...)``.

    Returns
    -------
    int
        -1 when every value of ``X`` and of the outputs is finite; else the index of the first row of ``X`` holding
        NaN or inf, or :data:`OVERFLOW` (-2) when a mean or variance overflowed (the outputs are then incomplete).
    """
    K, D = theta.shape
    n, d = X.shape
    Xt = np.empty((D, _ROWS))
    W = np.empty(_ROWS)
    M = np.empty(_ROWS)
    V = np.empty(_ROWS)
    C = np.zeros(_ROWS)
    for r0 in range(0, n, _ROWS):
        nb = min(_ROWS, n - r0)
        for q in range(nb):
            xr = X[r0 + q]
            check = 0.0
            for i in range(d):
                v = xr[i]
                check += v * 0.0  # NaN iff some v is NaN or inf
                Xt[i, q] = v
            if check != 0.0:
                return r0 + q
        if d < D:
            for q in range(nb):
                Xt[d, q] = 1.0
        for k in range(K):
            Ak = A_inv[k]
            tk = theta[k]
            for q in range(nb):
                M[q] = 0.0
                V[q] = 0.0
            for j in range(D):
                for q in range(nb):
                    W[q] = 0.0
                i = 0
                while i + 4 <= j:  # four rows per pass over W, added in order
                    a0 = Ak[i, j]
                    a1 = Ak[i + 1, j]
                    a2 = Ak[i + 2, j]
                    a3 = Ak[i + 3, j]
                    x0 = Xt[i]
                    x1 = Xt[i + 1]
                    x2 = Xt[i + 2]
                    x3 = Xt[i + 3]
                    for q in range(nb):
                        W[q] = (((W[q] + x0[q] * a0) + x1[q] * a1) + x2[q] * a2) + x3[q] * a3
                    i += 4
                while i < j:
                    a = Ak[i, j]
                    xi = Xt[i]
                    for q in range(nb):
                        W[q] += xi[q] * a
                    i += 1
                t = tk[j]
                ajj = Ak[j, j]
                xj = Xt[j]
                for q in range(nb):
                    c = xj[q]
                    M[q] += t * c
                    V[q] += c * (ajj * c + 2.0 * W[q])
            for q in range(nb):
                out_mean[r0 + q, k] = M[q]
                v = V[q]
                out_var[r0 + q, k] = 0.0 if v < 0.0 else v
                C[q] += M[q] * 0.0 + v * 0.0  # NaN iff a mean or variance is NaN or inf
        for q in range(nb):
            if C[q] != 0.0:
                return OVERFLOW
    return -1
