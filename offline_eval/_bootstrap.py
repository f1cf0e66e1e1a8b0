"""Numba kernel of the Poisson bootstrap: resampled sums of per-row terms without a (B, n) matrix.

The Poisson bootstrap replaces the multinomial counts of resampling n rows with replacement by independent
Poisson(1) counts ``c[b, i]``, one per (resample, row), and recomputes an estimate from the weighted sums
``sum_i c[b, i] x[i]`` and the resample size ``sum_i c[b, i]`` (Hanley & MacGibbon 2006; Chamandy et al. 2012).
For a mean or a ratio of sums the two schemes agree to O(1/n). Independent counts make it fast and exact to split:

* a count depends only on ``(seed of the resample, row index)`` through a counter-based hash, so rows can be
  processed in any order, in cache-sized blocks, and the sums of disjoint row ranges add up to the full sums;
* rows are visited block by block (``_BLOCK`` rows stay in L1 cache while all resamples pass over them), with the
  counts drawn branch-free and the sums vectorised.

Counts: the 64-bit output ``z = splitmix64(seed_b + (i // 2 + 1) * 0x9E3779B97F4A7C15)`` (the ``i // 2 + 1``-th
output of the SplitMix64 stream seeded with ``seed_b``) gives two 32-bit uniforms ``u``: its low half for even rows
``i``, its high half for odd rows. The count is ``c = #{k : u >= POISSON1_THRESHOLDS[k]}`` (inversion of the
Poisson(1) distribution function; every probability ``P(c = k)`` is exact to within 2^-32, and counts above 12,
probability 6e-11, are cut to 12).

References
----------
Hanley, J. A. and MacGibbon, B. (2006). Creating non-parametric bootstrap samples using Poisson frequencies.
Computer Methods and Programs in Biomedicine 83(1).
Chamandy, N., Muralidharan, O., Najmi, A. and Naidu, S. (2012). Estimating uncertainty for massive data streams.
Google technical report.
Steele, G. L., Lea, D. and Flood, C. H. (2014). Fast splittable pseudorandom number generators. OOPSLA.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["POISSON1_THRESHOLDS", "poisson1_thresholds", "poisson_bootstrap_sums"]

_BLOCK = 2048  # rows per block: 2 KB of counts + 16 KB per column, inside a 32-48 KB L1 data cache
_N_THRESHOLDS = 12  # P(Poisson(1) > 12) * 2^32 < 0.5: a 13th threshold would round to 2^32


def poisson1_thresholds(n: int = _N_THRESHOLDS) -> np.ndarray:
    """Inversion thresholds of Poisson(1) for 32-bit uniforms: ``t_k = 2^32 - round(2^32 P(C > k))``, k < ``n``.

    A uniform ``u`` in [0, 2^32) gives ``C = #{k : u >= t_k}``, so ``P(C > k) = P(u >= t_k)`` up to the rounding
    (at most 2^-33 per threshold). Returns a (n,) uint32 array, increasing.
    """
    out = np.empty(n, dtype=np.uint32)
    for k in range(n):
        # P(C > k) = e^-1 sum_{j > k} 1/j!, summed from its largest term until the terms stop mattering
        term = math.exp(-1.0) / math.factorial(k + 1)
        tail, j = 0.0, k + 1
        while term > tail * 1e-17:
            tail += term
            j += 1
            term /= j
        out[k] = 2**32 - round(tail * 2.0**32)
    return out


#: Poisson(1) inversion thresholds (12,) uint32 used by :func:`poisson_bootstrap_sums`.
POISSON1_THRESHOLDS = poisson1_thresholds()


@njit(cache=True)
def _draw_counts(seed, first_pair, n_pairs, thresholds, counts):  # pragma: no cover - numba
    """Poisson(1) counts of ``2 * n_pairs`` consecutive rows starting at row ``2 * first_pair``.

    ``seed`` uint64 (the resample's stream), ``first_pair`` int64, ``n_pairs`` int64, ``thresholds`` (12,) uint32
    (:data:`POISSON1_THRESHOLDS`). Output ``counts`` (>= 2 * n_pairs,) uint8, entries 0 .. 2 * n_pairs - 1
    overwritten. The thresholds are read into scalars first so the loop keeps them in registers. Returns 0.
    """
    gamma = np.uint64(0x9E3779B97F4A7C15)
    mul1 = np.uint64(0xBF58476D1CE4E5B9)
    mul2 = np.uint64(0x94D049BB133111EB)
    low = np.uint64(0xFFFFFFFF)
    s30, s27, s31, s32 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(32)
    t0, t1, t2, t3 = thresholds[0], thresholds[1], thresholds[2], thresholds[3]
    t4, t5, t6, t7 = thresholds[4], thresholds[5], thresholds[6], thresholds[7]
    t8, t9, t10, t11 = thresholds[8], thresholds[9], thresholds[10], thresholds[11]
    base = seed + gamma * np.uint64(first_pair + 1)
    for p in range(n_pairs):
        z = base + gamma * np.uint64(p)
        z = (z ^ (z >> s30)) * mul1
        z = (z ^ (z >> s27)) * mul2
        z = z ^ (z >> s31)
        u = np.uint32(z & low)
        v = np.uint32(z >> s32)
        counts[2 * p] = (
            np.uint8(u >= t0) + np.uint8(u >= t1) + np.uint8(u >= t2) + np.uint8(u >= t3)
            + np.uint8(u >= t4) + np.uint8(u >= t5) + np.uint8(u >= t6) + np.uint8(u >= t7)
            + np.uint8(u >= t8) + np.uint8(u >= t9) + np.uint8(u >= t10) + np.uint8(u >= t11)
        )
        counts[2 * p + 1] = (
            np.uint8(v >= t0) + np.uint8(v >= t1) + np.uint8(v >= t2) + np.uint8(v >= t3)
            + np.uint8(v >= t4) + np.uint8(v >= t5) + np.uint8(v >= t6) + np.uint8(v >= t7)
            + np.uint8(v >= t8) + np.uint8(v >= t9) + np.uint8(v >= t10) + np.uint8(v >= t11)
        )
    return 0


@njit(cache=True)
def _count_sum(counts, m):  # pragma: no cover - numba
    """``sum(counts[:m])`` of a uint8 array, as int64 (integer adds: exact in any order)."""
    s = np.uint32(0)
    for t in range(m):
        s += np.uint32(counts[t])
    return np.int64(s)


@njit(cache=True, fastmath={"reassoc"})
def _weighted_sum(counts, x):  # pragma: no cover - numba
    """``sum_t counts[t] * x[t]`` over ``x`` (m,) float64, counts uint8; ``reassoc`` lets the sum vectorise."""
    s = 0.0
    for t in range(x.shape[0]):
        s += np.float64(counts[t]) * x[t]
    return s


@njit(cache=True)
def poisson_bootstrap_sums(cols, seeds, thresholds, out):  # pragma: no cover - numba
    """Poisson-bootstrap sums of the rows of ``cols`` for ``len(seeds)`` resamples.

    ``cols`` (m, n) float64 C-contiguous (one per-row array per row of ``cols``); ``seeds`` (B,) uint64, one
    stream per resample; ``thresholds`` (12,) uint32 (:data:`POISSON1_THRESHOLDS`). Output ``out`` (B, m + 1)
    float64, overwritten: ``out[b, j] = sum_i c[b, i] cols[j, i]`` for j < m and ``out[b, m] = sum_i c[b, i]``
    (the resample size), with the counts ``c`` of the module docstring. Rows are processed in blocks of
    ``_BLOCK``; for each block every resample draws its counts once and reuses them for all m columns.
    Returns 0.
    """
    m, n = cols.shape
    n_resamples = seeds.shape[0]
    counts = np.zeros(_BLOCK, dtype=np.uint8)
    for b in range(n_resamples):
        for j in range(m + 1):
            out[b, j] = 0.0
    for lo in range(0, n, _BLOCK):
        size = min(_BLOCK, n - lo)
        for b in range(n_resamples):
            _draw_counts(seeds[b], lo // 2, (size + 1) // 2, thresholds, counts)
            out[b, m] += _count_sum(counts, size)
            for j in range(m):
                out[b, j] += _weighted_sum(counts, cols[j, lo : lo + size])
    return 0
