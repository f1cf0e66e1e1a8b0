"""numba kernels of the batch-by-batch evaluations (:mod:`offline_eval.accumulators`, :mod:`offline_eval.streaming`,
:mod:`offline_eval.spark`).

They replace numpy expressions whose BLAS call (a ``(m, n) @ (n, m)`` product) wakes OpenBLAS's thread pool on every
batch: its threads spin after each call and take the core that decodes the next Parquet batch. These loops run on
the calling thread and release the GIL.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["column_moments"]

#: Rows summed naively before a partial sum joins the total (bounds the rounding like a pairwise sum's leaves).
BLOCK_ROWS = 1024


@njit(cache=True, nogil=True)
def _column_moments(columns, mean, comoment):  # pragma: no cover - numba
    """Means ``mean`` (m,) and co-moments ``comoment`` (m, m) = ``sum_i (x_i - mean)(x_i - mean)^T`` of the columns
    ``columns`` (m, n) float64 (n >= 1), each sum taken by blocks of :data:`BLOCK_ROWS` rows. Returns 0."""
    m, n = columns.shape
    block = np.empty(m)
    mean[:] = 0.0
    for start in range(0, n, BLOCK_ROWS):
        stop = min(start + BLOCK_ROWS, n)
        block[:] = 0.0
        for j in range(m):
            row = columns[j]
            s = 0.0
            for i in range(start, stop):
                s += row[i]
            block[j] = s
        for j in range(m):
            mean[j] += block[j]
    for j in range(m):
        mean[j] /= n
    centred = np.empty(m)
    partial = np.empty((m, m))
    comoment[:, :] = 0.0
    for start in range(0, n, BLOCK_ROWS):
        stop = min(start + BLOCK_ROWS, n)
        partial[:, :] = 0.0
        for i in range(start, stop):
            for j in range(m):
                centred[j] = columns[j, i] - mean[j]
            for j in range(m):
                cj = centred[j]
                for k in range(j, m):
                    partial[j, k] += cj * centred[k]
        for j in range(m):
            for k in range(j, m):
                comoment[j, k] += partial[j, k]
    for j in range(m):
        for k in range(j + 1, m):
            comoment[k, j] = comoment[j, k]
    return 0


def column_moments(columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Means (m,) and co-moment matrix (m, m) ``(X - mean)(X - mean)^T`` of ``columns`` (m, n), n >= 1.

    Equal to ``X.mean(axis=1)`` and ``centred @ centred.T`` up to summation order, without a BLAS call.

    Examples
    --------
    >>> mean, comoment = column_moments(np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 9.0]]))
    >>> mean.tolist(), comoment.tolist()
    ([2.0, 5.0], [[2.0, 7.0], [7.0, 26.0]])
    """
    columns = np.ascontiguousarray(columns, dtype=np.float64)
    if columns.ndim != 2 or columns.shape[1] == 0:
        raise ValueError(f"columns must be (m, n) with n >= 1 rows, got shape {columns.shape}")
    m = columns.shape[0]
    mean, comoment = np.empty(m), np.empty((m, m))
    _column_moments(columns, mean, comoment)
    return mean, comoment
