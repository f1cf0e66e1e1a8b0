"""The standard error of the DR - DM gap (DM's estimated bias), with the reward model's own fit accounted for.

``D = DR - DM = mean_i w_i e_i`` with ``e_i = r_i - q(x_i, a_i)`` the cross-fitted residuals. Treating the terms
``w_i e_i`` as independent overstates the noise of D: the reward model was fitted to those same residuals, and an
arm's intercept and slopes absorb whatever part of them lies along the arm's features, fold after fold (with equal
folds, the out-of-fold residual means of a model with an intercept sum to zero exactly). To first order in the
fitted coefficients (a per-arm model linear in ``z = [1, x]``, least squares; the expansion is the same for
cross-fitted and in-sample fits),

    D - E[D] ~= mean_i (w_i - w^_i) e_i,      w^_i = z_i' beta_{a_i},      beta_a = (sum_{a_i = a} z_i z_i')^-1 sum_{a_i = a} z_i w_i,

so the part of the weights a model could express in its features does not add noise to the gap: only the
residual weights ``w - w^`` (the per-arm least-squares projection of w on ``[1, x]`` taken out) do. The variance
of D is estimated by the sample variance of ``d_i = (w_i - w^_i) e_i`` over n. Measured on the plan-upsell worlds
of ``bench/ope_accuracy.py`` (400 replications each, value-aware and logistic reward models), this predicts the
replications' spread of D within about 10 % in every setting, where the plain standard error of ``w_i e_i``
overstated it 1.1-3.6 times (README, "Accuracy").

All of it is computed from mergeable per-arm sums (:class:`GapMoments`: ``sum z z'``, ``sum z w``, ``sum z e``,
``sum z w e^2``, ``sum z z' e^2``, ``sum w e``, ``sum w^2 e^2``), so the in-memory, streaming and Spark evaluations
give the same standard error. Contexts with more than :data:`MAX_PROJECTION_FEATURES` features are projected on
the per-arm intercept only (a standard error between the projected and the plain one) to keep the sums small.

The expansion needs a reward model fitted to these rows, per arm, with an intercept and linear terms
(:func:`projects_weights`: the library's ridge, logistic and value-aware models, and the default model). For any
other model (a scikit-learn wrapper, a model trained elsewhere, MRDR) the standard error stays the plain one of the
terms ``w_i e_i``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

__all__ = ["MAX_PROJECTION_FEATURES", "GapMoments", "gap_se", "gap_variance", "projects_weights"]

#: Above this many context features the weights are projected on the per-arm intercept only.
MAX_PROJECTION_FEATURES = 64


#: A projected sum of squares below this fraction of the plain one is cancellation (:meth:`GapMoments.variance`).
_CANCELLED = 1e-10


@njit(cache=True, nogil=True)
def _gap_sums(X, action, w, e, gram, zze2, zw, ze, zwe2, scalars):  # pragma: no cover - numba
    """Add one batch's rows to the per-arm sums (upper triangles of ``gram`` / ``zze2``; ``z = [1, X[i]]``)."""
    n, d = X.shape
    p = d + 1
    z = np.empty(p)
    z[0] = 1.0
    for i in range(n):
        a = action[i]
        wi = w[i]
        ei = e[i]
        e2 = ei * ei
        scalars[0] += wi * ei
        scalars[1] += wi * wi * e2
        for j in range(d):
            z[j + 1] = X[i, j]
        for j in range(p):
            zj = z[j]
            zw[a, j] += zj * wi
            ze[a, j] += zj * ei
            zwe2[a, j] += zj * wi * e2
            for k in range(j, p):
                g = zj * z[k]
                gram[a, j, k] += g
                zze2[a, j, k] += g * e2


def projects_weights(reward_model: Any) -> bool:
    """Whether the gap's standard error of a DM with this ``reward_model`` uses the projection (module docstring):
    None (the data's default model, always one of the library's per-arm models) or a model whose class sets
    ``per_arm_linear_fit``."""
    return reward_model is None or bool(getattr(reward_model, "per_arm_linear_fit", False))


def _symmetric(upper: np.ndarray) -> np.ndarray:
    return np.triu(upper) + np.triu(upper, 1).T


@dataclass
class GapMoments:
    """Mergeable per-arm sums behind :func:`gap_variance` (module docstring).

    Attributes
    ----------
    n : int
        Rows.
    gram, zze2 : ndarray (K, p, p)
        Per arm, ``sum z z'`` and ``sum z z' e^2`` (upper triangles), ``p`` = features + 1.
    zw, ze, zwe2 : ndarray (K, p)
        Per arm, ``sum z w``, ``sum z e`` and ``sum z w e^2``.
    scalars : ndarray (2,)
        ``sum w e`` and ``sum w^2 e^2``.
    """

    n: int
    gram: np.ndarray
    zze2: np.ndarray
    zw: np.ndarray
    ze: np.ndarray
    zwe2: np.ndarray
    scalars: np.ndarray

    @classmethod
    def empty(cls, n_actions: int, n_features: int) -> GapMoments:
        """Sums of no rows for K = ``n_actions`` arms and ``n_features`` context features."""
        p = (n_features if n_features <= MAX_PROJECTION_FEATURES else 0) + 1
        return cls(0, np.zeros((n_actions, p, p)), np.zeros((n_actions, p, p)), np.zeros((n_actions, p)),
                   np.zeros((n_actions, p)), np.zeros((n_actions, p)), np.zeros(2))

    @classmethod
    def of(cls, context: np.ndarray | None, action: np.ndarray, n_actions: int, w: np.ndarray, e: np.ndarray
           ) -> GapMoments:
        """Sums of one batch: contexts (n, d) or None, logged actions (n,) in [0, K), weights and residuals (n,)."""
        a = np.asarray(action, dtype=np.int64)
        n = len(a)
        w = np.asarray(w, dtype=np.float64)
        e = np.asarray(e, dtype=np.float64)
        X = np.zeros((n, 0)) if context is None else np.asarray(context, dtype=np.float64)
        if a.ndim != 1 or w.shape != (n,) or e.shape != (n,) or X.ndim != 2 or len(X) != n:
            raise ValueError(f"action, w and e must have shape (n,) and context (n, d); got action {a.shape}, "
                             f"w {w.shape}, e {e.shape}, context {X.shape}")
        if n and (int(a.min()) < 0 or int(a.max()) >= n_actions):
            raise ValueError(f"action must lie in [0, {n_actions}), got values from {int(a.min())} to {int(a.max())}")
        out = cls.empty(n_actions, X.shape[1])
        if X.shape[1] > MAX_PROJECTION_FEATURES:
            X = X[:, :0]
        _gap_sums(np.ascontiguousarray(X), a, w, e, out.gram, out.zze2, out.zw, out.ze, out.zwe2, out.scalars)
        out.n = n
        return out

    def merge(self, other: GapMoments) -> GapMoments:
        """The sums of both sets of rows."""
        if other.gram.shape != self.gram.shape:
            raise ValueError(f"cannot merge gap sums of shapes {self.gram.shape} and {other.gram.shape}")
        return GapMoments(self.n + other.n, self.gram + other.gram, self.zze2 + other.zze2, self.zw + other.zw,
                          self.ze + other.ze, self.zwe2 + other.zwe2, self.scalars + other.scalars)

    def to_array(self) -> np.ndarray:
        """One float64 array ``[n, K, p, sums...]`` (:meth:`from_array` inverts it)."""
        k, p = self.zw.shape
        return np.concatenate([[float(self.n), float(k), float(p)], self.gram.ravel(), self.zze2.ravel(),
                               self.zw.ravel(), self.ze.ravel(), self.zwe2.ravel(), self.scalars])

    @classmethod
    def from_array(cls, array: Any) -> GapMoments:
        """Rebuild from :meth:`to_array`; ``ValueError`` when the array is not one."""
        a = np.asarray(array, dtype=np.float64).ravel()
        if len(a) < 3 or not all(math.isfinite(x) and x >= 0 and x == int(x) for x in a[:3]):
            raise ValueError("gap sums array: expected a header [n, K, p] of non-negative integers")
        n, k, p = (int(x) for x in a[:3])
        sizes = (k * p * p, k * p * p, k * p, k * p, k * p, 2)
        if p < 1 or len(a) != 3 + sum(sizes):
            raise ValueError(f"gap sums array: expected {3 + sum(sizes)} values for K={k}, p={p}, got {len(a)}")
        parts, at = [], 3
        for size in sizes:
            parts.append(a[at:at + size].copy())
            at += size
        return cls(n, parts[0].reshape(k, p, p), parts[1].reshape(k, p, p), parts[2].reshape(k, p),
                   parts[3].reshape(k, p), parts[4].reshape(k, p), parts[5])

    def variance(self) -> float:
        """Estimated variance of the mean gap ``D``: the sample variance (ddof 1) of ``(w - w^) e`` over n; NaN
        for fewer than 2 rows."""
        n = self.n
        if n < 2:
            return math.nan
        sum_d, sum_d2 = float(self.scalars[0]), float(self.scalars[1])
        raw = sum_d2
        p = self.zw.shape[1]
        for a in range(self.zw.shape[0]):
            gram = _symmetric(self.gram[a])
            scale = float(np.trace(gram)) / p
            if not scale > 0.0:
                continue  # no rows of this arm
            beta = np.linalg.solve(gram + 1e-10 * scale * np.eye(p), self.zw[a])
            sum_d -= float(beta @ self.ze[a])
            sum_d2 += float(beta @ _symmetric(self.zze2[a]) @ beta) - 2.0 * float(beta @ self.zwe2[a])
        ss = sum_d2 - sum_d * sum_d / n
        if ss <= _CANCELLED * raw:
            # the projection absorbed the weights (e.g. one weight per arm): what is left is cancellation, whose
            # sign and size depend on the summation order (one pass in memory vs merged batches)
            return 0.0
        return ss / (n - 1) / n


def gap_variance(context: np.ndarray | None, action: np.ndarray, n_actions: int, w: np.ndarray, e: np.ndarray
                 ) -> float:
    """Estimated variance of ``D = mean_i w_i e_i`` (module docstring).

    Parameters
    ----------
    context : ndarray (n, d) or None
        The logged contexts (None: the projection uses the per-arm intercept only).
    action : ndarray (n,) of int
        Logged actions in [0, n_actions).
    n_actions : int
        K.
    w : ndarray (n,)
        Importance weights of the target (or a difference of two targets' weights).
    e : ndarray (n,)
        Cross-fitted residuals ``r_i - q(x_i, a_i)``.

    Returns
    -------
    float
        The variance of the mean gap (its standard error squared); NaN for fewer than 2 rows.

    Examples
    --------
    With weights an arm's intercept can express (one weight per arm), the gap is pure model fit: no noise left.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> action = rng.integers(0, 3, 1000)
    >>> e = rng.normal(size=1000)
    >>> w = np.array([0.5, 1.0, 2.0])[action]
    >>> gap_variance(None, action, 3, w, e)
    0.0

    Exponential weights (mean 1, variance 1) independent of the arm: the per-arm mean of w is absorbed, which halves
    the plain variance of ``w e``.

    >>> w = rng.exponential(size=1000)
    >>> round(float(gap_variance(None, action, 3, w, e) / (np.var(w * e, ddof=1) / 1000)), 1)
    0.5
    """
    return GapMoments.of(context, action, n_actions, w, e).variance()


def gap_se(data: Any, w: np.ndarray, q: np.ndarray) -> float:
    """Standard error of ``mean_i w_i (r_i - q(x_i, a_i))`` on a LoggedData's rows (``w`` (n,), ``q`` (n, K))."""
    resid = data.reward - q[np.arange(data.n), data.action]
    return math.sqrt(gap_variance(data.context, data.action, data.n_actions, w, resid))
