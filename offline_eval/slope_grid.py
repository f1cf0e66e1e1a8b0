r"""The SwitchDR / DROS candidate grid and its mergeable statistics (SLOPE selection of ``tau`` / ``lambda``).

Candidates
----------
The data-driven ``SwitchDR(tau=None)`` and ``DROS(lam=None)`` choose their hyperparameter by SLOPE (see
:mod:`offline_eval.estimators.doubly_robust`) among candidates ordered from DR to DM. The thresholds are the points
of a fixed geometric lattice, :data:`LATTICE` = ``2^(j/2)`` for ``j = -20, ..., 40`` (half-octave steps from
``2^-10`` to ``2^20``), that lie in ``[min positive weight, max weight)``: SwitchDR ``tau`` in {inf, those points
in descending order, 0}; DROS ``lambda = s^2`` for the same points s, between inf and 0. (Before the scale-out the
points were quantiles of the weights; a fixed lattice makes every candidate's statistics a sum over rows, so
streaming and Spark evaluations select exactly as in memory. Geometric grids are what Su, Srinath and
Krishnamurthy (2020) use; half-octave steps are finer than the quantile grid over the usual weight ranges.)

Statistics
----------
For candidate j the DR-family terms are ``x_ij = dm_i + y_ij`` with ``y_ij = g_j(w_i) (r_i - q(x_i, a_i))``.
SLOPE needs each candidate's mean and standard deviation; the evaluation table also needs the covariance with the
reward (for the lift over logging). :class:`CandidateMoments` holds, per candidate, the mean of y and its centred
(co-)moments with y, dm and r, and the means of dm and r; batches merge by the parallel-variance formulas of Chan,
Golub and LeVeque (1979), which are exact up to rounding in any merge order.

References
----------
Su, Y., Srinath, P. and Krishnamurthy, A. (2020). Adaptive estimator selection for off-policy evaluation. ICML.
Chan, T. F., Golub, G. H. and LeVeque, R. J. (1979). Updating formulae and a pairwise algorithm for computing
sample variances. Technical report STAN-CS-79-773.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

__all__ = ["LATTICE", "CandidateMoments", "candidate_indices"]

#: Candidate thresholds (weights): ``2^(j/2)``, j = -20..40.
LATTICE = 2.0 ** (np.arange(-20, 41) / 2.0)
_L = len(LATTICE)


@njit(cache=True)
def _candidate_sums(w, resid, dm, r, shift_dm, shift_r, lattice, switch, counts, dros):  # pragma: no cover - numba
    """Raw sums of ``y`` for every candidate, over rows with ``w > 0`` (``y = 0`` elsewhere).

    ``w``, ``resid``, ``dm``, ``r`` (m,) float64; ``lattice`` (L,) increasing. Outputs (added to):
    ``switch`` (L + 1, 4): bin b holds rows with ``lattice[b-1] < w <= lattice[b]`` (bin L: ``w > lattice[L-1]``),
    columns (sum y, sum y^2, sum (dm - shift_dm) y, sum (r - shift_r) y) for ``y = w resid``; ``counts``
    (L + 1,): rows per bin;
    ``dros`` (L, 4): the same sums for ``y = lam w / (w^2 + lam) resid``, ``lam = lattice[j]^2``. Returns 0.
    """
    L = lattice.shape[0]
    for i in range(w.shape[0]):
        wi = w[i]
        if wi <= 0.0:
            continue
        e = resid[i]
        a = dm[i] - shift_dm
        b = r[i] - shift_r
        y = wi * e
        lo = 0
        hi = L
        while lo < hi:  # first lattice point >= wi
            mid = (lo + hi) // 2
            if lattice[mid] < wi:
                lo = mid + 1
            else:
                hi = mid
        counts[lo] += 1.0
        switch[lo, 0] += y
        switch[lo, 1] += y * y
        switch[lo, 2] += a * y
        switch[lo, 3] += b * y
        w2 = wi * wi
        for j in range(L):
            lam = lattice[j] * lattice[j]
            yj = lam * wi / (w2 + lam) * e
            dros[j, 0] += yj
            dros[j, 1] += yj * yj
            dros[j, 2] += a * yj
            dros[j, 3] += b * yj
    return 0


def _centred(raw: np.ndarray, n: int) -> np.ndarray:
    """(.., 4) raw sums about the batch means of dm and r -> (mean y, C_yy, C_dy, C_ry)."""
    out = np.empty_like(raw)
    mean_y = raw[..., 0] / n
    out[..., 0] = mean_y
    out[..., 1] = np.maximum(raw[..., 1] - raw[..., 0] * mean_y, 0.0)
    out[..., 2] = raw[..., 2]
    out[..., 3] = raw[..., 3]
    return out


@dataclass
class CandidateMoments:
    """Mergeable statistics of every SwitchDR / DROS candidate (module docstring).

    Attributes
    ----------
    n : int
        Rows.
    mean_dm, mean_r : float
        Means of the DM part and of the reward.
    c_dd : float
        ``sum (dm - mean dm)^2``.
    below : ndarray (L + 2,)
        Rows with ``0 < w <= LATTICE[j]`` (j < L); row L: all rows with ``w > 0``; row L + 1: 0.
    switch : ndarray (L + 2, 4)
        Per SwitchDR threshold ``LATTICE[j]`` (rows 0..L-1), DR (row L, ``tau = inf``) and unused row L + 1 = 0:
        (mean y, C_yy, C_dy, C_ry) with ``C_ab = sum (a - mean a)(b - mean b)``.
    dros : ndarray (L, 4)
        The same per DROS ``lambda = LATTICE[j]^2``.
    """

    n: int
    mean_dm: float
    mean_r: float
    c_dd: float
    switch: np.ndarray
    dros: np.ndarray
    below: np.ndarray

    @classmethod
    def of(cls, w: np.ndarray, resid: np.ndarray, dm: np.ndarray, r: np.ndarray) -> CandidateMoments:
        """Statistics of one batch (arrays (m,) float64, m >= 1)."""
        m = len(w)
        mean_dm = float(np.mean(dm))
        mean_r = float(np.mean(r))
        bins = np.zeros((_L + 1, 4))
        counts = np.zeros(_L + 1)
        dros = np.zeros((_L, 4))
        _candidate_sums(
            np.ascontiguousarray(w, dtype=np.float64), np.ascontiguousarray(resid, dtype=np.float64),
            np.ascontiguousarray(dm, dtype=np.float64), np.ascontiguousarray(r, dtype=np.float64),
            mean_dm, mean_r, LATTICE, bins, counts, dros,
        )
        switch = np.zeros((_L + 2, 4))
        switch[: _L + 1] = np.cumsum(bins, axis=0)  # row j: rows with w <= LATTICE[j]; row L: all rows (DR)
        c_dd = float(np.sum((dm - mean_dm) ** 2))
        below = np.zeros(_L + 2)
        below[: _L + 1] = np.cumsum(counts)
        return cls(m, mean_dm, mean_r, c_dd, _centred(switch, m), _centred(dros, m), below)

    def merge(self, other: CandidateMoments) -> CandidateMoments:
        """The statistics of both batches' rows (Chan et al.)."""
        na, nb = self.n, other.n
        n = na + nb
        f = na * nb / n
        d_dm = other.mean_dm - self.mean_dm
        d_r = other.mean_r - self.mean_r

        def join(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            out = np.empty_like(a)
            dy = b[:, 0] - a[:, 0]
            out[:, 0] = a[:, 0] + dy * (nb / n)
            out[:, 1] = a[:, 1] + b[:, 1] + dy * dy * f
            out[:, 2] = a[:, 2] + b[:, 2] + d_dm * dy * f
            out[:, 3] = a[:, 3] + b[:, 3] + d_r * dy * f
            return out

        return CandidateMoments(
            n,
            self.mean_dm + d_dm * (nb / n),
            self.mean_r + d_r * (nb / n),
            self.c_dd + other.c_dd + d_dm * d_dm * f,
            join(self.switch, other.switch),
            join(self.dros, other.dros),
            self.below + other.below,
        )

    def to_array(self) -> np.ndarray:
        """Flat float64 array (``from_array`` inverts it)."""
        head = [self.n, self.mean_dm, self.mean_r, self.c_dd]
        return np.concatenate([head, self.switch.ravel(), self.dros.ravel(), self.below])

    @classmethod
    def from_array(cls, arr: np.ndarray) -> CandidateMoments:
        """Inverse of :meth:`to_array`."""
        s = 4 + (_L + 2) * 4
        t = s + _L * 4
        return cls(int(arr[0]), float(arr[1]), float(arr[2]), float(arr[3]), arr[4:s].reshape(_L + 2, 4).copy(),
                   arr[s:t].reshape(_L, 4).copy(), arr[t:].copy())

    def stats(self, family: str, j: int | None) -> np.ndarray:
        """(mean y, C_yy, C_dy, C_ry) of candidate ``j`` of ``family`` ("switch" or "dros"); None: DR (tau = inf);
        -1: DM (y = 0)."""
        if j is None:
            return self.switch[_L]
        if j < 0:
            return self.switch[_L + 1]
        return (self.switch if family == "switch" else self.dros)[j]

    def switched(self, j: int | None) -> int:
        """Rows with ``w > tau`` for SwitchDR candidate ``j`` (None: inf, -1: 0)."""
        if j is None:
            return 0
        total = int(self.below[_L])
        return total if j < 0 else total - int(self.below[j])


def candidate_indices(w_min_positive: float, w_max: float) -> list[int]:
    """Lattice indices j with ``w_min_positive <= LATTICE[j] < w_max``, descending (the inner candidates)."""
    if not (math.isfinite(w_min_positive) and w_max > 0):
        return []
    return [j for j in range(_L - 1, -1, -1) if w_min_positive <= LATTICE[j] < w_max]
