r"""Doubly-robust estimators: DR (optionally clipped), self-normalised SNDR, SwitchDR and DROS.

All share the decomposition, per logged row i with reward model q (cross-fitted, n x K),

.. math:: \hat V = \frac{1}{n} \sum_i \Big[ \underbrace{\textstyle\sum_k \pi(k|x_i) q(x_i, k)}_{\text{DM part}}
          + g(w_i) \, (r_i - q(x_i, a_i)) \Big],

and differ in the weight function g applied to the importance weight ``w_i = pi(a_i | x_i) / p_i``: ``g(w) = w``
(DR: unbiased if the propensities are right, whatever q), ``min(w, clip)`` (clipped DR),
``w * 1[w <= tau]`` (SwitchDR), ``lam * w / (w^2 + lam)`` (DROS), or ``w / mean(w)`` (SNDR).

Data-driven hyperparameters (``SwitchDR(tau=None)``, ``DROS(lam=None)``): SLOPE
-------------------------------------------------------------------------------
The candidates form an ordered family from DR (unbiased, largest variance) to DM (smallest variance, largest
bias): for SwitchDR ``tau`` in {inf} + the points of the fixed geometric lattice
:data:`offline_eval.slope_grid.LATTICE` (``2^(j/2)``) between the smallest positive and the largest weight
(descending) + {0}; for DROS ``lam = s^2`` for the same points s, between ``inf`` and 0. Each candidate's mean and
standard error come from sums over rows (:class:`offline_eval.slope_grid.CandidateMoments`), so a streaming or Spark
evaluation selects exactly as in memory. The choice is the SLOPE / Lepski rule of Su, Srinath and Krishnamurthy
(2020): with ``se_j`` the standard error of candidate j's per-row terms and the intervals
``I_j = [V_j - SLOPE_WIDTH * se_j, V_j + SLOPE_WIDTH * se_j]``, take the last candidate j (in the order above) such
that ``I_1, ..., I_j`` still have a common point. A candidate whose bias is visible -- its value outside what the
less biased, noisier candidates allow -- stops the walk; the rule needs no estimate of the bias itself, so it does
not trust the reward model. ``SLOPE_WIDTH = 2`` is the paper's factor 2 on one standard error. The chosen value is
in ``Estimate.params``; the interval is bias-aware (the DR interval extended to contain the estimate) unless the
choice is DR itself.

References
----------
Dudik, M., Langford, J. and Li, L. (2011). Doubly robust policy evaluation and learning. ICML.
Wang, Y.-X., Agarwal, A. and Dudik, M. (2017). Optimal and adaptive off-policy evaluation in contextual bandits.
ICML.
Su, Y., Dimakopoulou, M., Krishnamurthy, A. and Dudik, M. (2020). Doubly robust off-policy evaluation with
shrinkage. ICML.
Su, Y., Srinath, P. and Krishnamurthy, A. (2020). Adaptive estimator selection for off-policy evaluation. ICML.
Kallus, N. and Uehara, M. (2019). Intrinsically efficient, stable, and bounded off-policy evaluation for
reinforcement learning. NeurIPS (self-normalised DR).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from offline_eval.estimators.base import (
    Estimator,
    ResolvedTarget,
    _check_number,
    _clipped_terms,
    _require_q,
    _Terms,
)
from offline_eval.estimators.direct import check_reward_model
from offline_eval.intervals import RowTerms
from offline_eval.slope_grid import LATTICE, CandidateMoments, candidate_indices

__all__ = ["DR", "DROS", "SLOPE_WIDTH", "SNDR", "SwitchDR", "select_candidate", "slope_select"]

#: Half-width of the SLOPE intervals in standard errors (the paper's 2 x CNF with CNF one standard error).
SLOPE_WIDTH = 2.0



def _parts(target: ResolvedTarget, q: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """DM part (n,) and residual ``r_i - q(x_i, a_i)`` (n,)."""
    q = _require_q(q, "a doubly robust estimator")
    data = target.data
    dm = target.expected(q)
    resid = data.reward - q[np.arange(data.n), data.action]
    return dm, resid


def slope_select(values: np.ndarray, ses: np.ndarray, width: float = SLOPE_WIDTH) -> int:
    """Index chosen by SLOPE in a family ordered from least biased to least variable.

    The last j such that the intervals ``values[i] +- width * ses[i]``, i <= j, share a point (NaN entries are
    skipped). Returns 0 when the first interval is all there is.

    Examples
    --------
    >>> slope_select(np.array([1.0, 1.2, 1.1, 3.0]), np.array([0.5, 0.2, 0.1, 0.01]))
    2
    """
    lo, hi, best = -math.inf, math.inf, 0
    for j in range(len(values)):
        v, s = float(values[j]), float(ses[j])
        if not (math.isfinite(v) and math.isfinite(s)):
            continue
        lo, hi = max(lo, v - width * s), min(hi, v + width * s)
        if lo > hi:
            break
        best = j
    return best


def select_candidate(
    moments: CandidateMoments, family: str, w_min_positive: float, w_max: float
) -> tuple[float, int | None]:
    """The SLOPE choice (module docstring) for ``family`` "switch" (tau) or "dros" (lam) from the candidates'
    statistics; returns ``(theta, j)`` with ``j`` the lattice index, None for DR (inf) and -1 for DM (0)."""
    inner = candidate_indices(w_min_positive, w_max)
    keys: list[int | None] = [None, *inner, -1]
    thetas = [math.inf, *(float(LATTICE[j]) ** (2 if family == "dros" else 1) for j in inner), 0.0]
    n = moments.n
    values = np.empty(len(keys))
    ses = np.empty(len(keys))
    for i, key in enumerate(keys):
        mean_y, c_yy, c_dy, _ = moments.stats(family, key)
        values[i] = moments.mean_dm + mean_y
        ss = max(moments.c_dd + 2.0 * c_dy + c_yy, 0.0)
        ses[i] = math.sqrt(ss / (n - 1)) / math.sqrt(n) if n > 1 else math.nan
    i = slope_select(values, ses)
    return thetas[i], keys[i]


def _min_positive(w: np.ndarray) -> float:
    positive = w[w > 0]
    return float(positive.min()) if len(positive) else math.inf


def _switch_weights(w: np.ndarray, tau: float) -> np.ndarray:
    return np.where(w <= tau, w, 0.0)


def _shrunk_weights(w: np.ndarray, lam: float) -> np.ndarray:
    if math.isinf(lam):
        return w
    if lam == 0.0:
        return np.zeros_like(w)
    return lam * w / (w * w + lam)


@dataclass(frozen=True, kw_only=True)
class _DoublyRobust(Estimator):
    reward_model: Any = None

    uses_reward_model: ClassVar[bool] = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_reward_model(self.reward_model)

    @staticmethod
    def _chosen(target: ResolvedTarget, dm: np.ndarray, resid: np.ndarray, family: str) -> float:
        w = target.weights
        moments = CandidateMoments.of(w, resid, dm, target.data.reward)
        return select_candidate(moments, family, _min_positive(w), target.weight_max)[0]


@dataclass(frozen=True, kw_only=True)
class DR(_DoublyRobust):
    """Doubly robust: ``V = mean_i [sum_k pi(k|x_i) q(x_i, k) + min(w_i, clip) (r_i - q(x_i, a_i))]``.

    Unbiased when the propensities are right, however wrong the reward model; the better q, the lower the
    variance. Clipping (``clip``) adds bias like clipped IPS.

    Parameters
    ----------
    reward_model : object or None
        Model with ``fit_predict(data) -> (n, K)``; None: :func:`offline_eval.reward_models.default_reward_model`.
    clip : float or None
        Maximum weight, > 0; None: no clipping.
    interval, alpha, seed, n_bootstrap, term_range
        See :class:`offline_eval.estimators.base.Estimator`.

    Examples
    --------
    >>> import numpy as np
    >>> from offline_eval import LoggedData
    >>> data = LoggedData(None, [0, 1, 1, 0], [1.0, 0.0, 2.0, 0.0], [0.5, 0.5, 0.25, 0.5])
    >>> q = np.array([[1.0, 2.0], [1.0, 0.0], [3.0, 1.0], [0.0, 1.0]])
    >>> # DM part (2, 0, 1, 1); corrections w * (r - q[a]) = (0, 2 * 0, 4 * (2 - 1), 0)
    >>> DR().estimate(data, [1, 1, 1, 1], q=q).value
    2.0
    """

    clip: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.clip is not None:
            _check_number(self.clip, "clip", low=0.0, low_open=True, allow_inf=True)

    def _row_terms(self, target: ResolvedTarget, q: np.ndarray | None) -> _Terms:
        dm, resid = _parts(target, q)
        w = target.weights
        if self.clip is None or target.weight_max <= self.clip:
            return _Terms(RowTerms(dm + w * resid))
        correction, share = _clipped_terms(w, resid, self.clip)
        correction += dm
        return _Terms(
            RowTerms(correction), clipped_share=share, consistent=False, reference=RowTerms(dm + w * resid)
        )


@dataclass(frozen=True, kw_only=True)
class SNDR(_DoublyRobust):
    """Self-normalised DR: ``V = mean_i DM_i + sum_i w_i (r_i - q(x_i, a_i)) / sum_i w_i``.

    Consistent (bias O(1/n)); the correction is bounded like SNIPS. Delta-method normal interval.

    Parameters
    ----------
    reward_model : object or None
        As in :class:`DR`.
    interval, alpha, seed, n_bootstrap, term_range
        See :class:`offline_eval.estimators.base.Estimator`.

    Examples
    --------
    >>> import numpy as np
    >>> from offline_eval import LoggedData
    >>> data = LoggedData(None, [0, 1, 1, 0], [1.0, 0.0, 2.0, 0.0], [0.5, 0.5, 0.25, 0.5])
    >>> q = np.array([[1.0, 2.0], [1.0, 0.0], [3.0, 1.0], [0.0, 1.0]])
    >>> SNDR().estimate(data, [1, 1, 1, 1], q=q).value  # 1 + (2 * 0 + 4 * 1) / (2 + 4)
    1.6666666666666665
    """

    def _row_terms(self, target: ResolvedTarget, q: np.ndarray | None) -> _Terms:
        dm, resid = _parts(target, q)
        w = target.weights
        return _Terms(RowTerms(dm, ((1.0, w * resid, w),)))


@dataclass(frozen=True, kw_only=True)
class SwitchDR(_DoublyRobust):
    """Switch-DR: the DR correction only where ``w_i <= tau``, the DM prediction alone elsewhere.

    ``tau = 0`` is DM, ``tau = inf`` is DR. The share of switched rows (``w > tau``) is reported as
    ``diagnostics.clipped_share`` (a warning above 5 % only for a fixed ``tau``: a data-driven ``tau`` already
    weighed the bias of switching).

    Parameters
    ----------
    reward_model : object or None
        As in :class:`DR`.
    tau : float or None
        Weight threshold, >= 0 (``inf`` allowed); None: chosen from the data (module docstring), reported in
        ``Estimate.params["tau"]``.
    interval, alpha, seed, n_bootstrap, term_range
        See :class:`offline_eval.estimators.base.Estimator`.

    Examples
    --------
    >>> import numpy as np
    >>> from offline_eval import LoggedData
    >>> data = LoggedData(None, [0, 1, 1, 0], [1.0, 0.0, 2.0, 0.0], [0.5, 0.5, 0.25, 0.5])
    >>> q = np.array([[1.0, 2.0], [1.0, 0.0], [3.0, 1.0], [0.0, 1.0]])
    >>> SwitchDR(tau=3.0).estimate(data, [1, 1, 1, 1], q=q).value  # the weight-4 row falls back to DM
    1.0
    """

    tau: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.tau is not None:
            _check_number(self.tau, "tau", low=0.0, low_open=False, allow_inf=True)

    def _row_terms(self, target: ResolvedTarget, q: np.ndarray | None) -> _Terms:
        dm, resid = _parts(target, q)
        w = target.weights
        tau = float(self.tau) if self.tau is not None else self._chosen(target, dm, resid, "switch")
        switched = float(np.count_nonzero(w > tau)) / len(w)
        return _Terms(
            RowTerms(dm + _switch_weights(w, tau) * resid),
            clipped_share=switched,
            consistent=switched == 0.0,
            params={"tau": tau},
            warn_clipped=self.tau is not None,
            reference=None if switched == 0.0 else RowTerms(dm + w * resid),
        )


@dataclass(frozen=True, kw_only=True)
class DROS(_DoublyRobust):
    """DR with optimistic shrinkage (Su et al. 2020): weight ``lam * w / (w^2 + lam)`` in the DR correction.

    ``lam = 0`` collapses to DM, ``lam = inf`` is DR; in between, large weights are shrunk smoothly (the shrunk
    weight peaks at ``sqrt(lam) / 2`` for ``w = sqrt(lam)``), trading bias for variance.

    Parameters
    ----------
    reward_model : object or None
        As in :class:`DR`.
    lam : float or None
        Shrinkage, >= 0 (``inf`` allowed); None: chosen from the data (module docstring), reported in
        ``Estimate.params["lam"]``.
    interval, alpha, seed, n_bootstrap, term_range
        See :class:`offline_eval.estimators.base.Estimator`.

    Examples
    --------
    >>> import numpy as np
    >>> from offline_eval import LoggedData
    >>> data = LoggedData(None, [0, 1, 1, 0], [1.0, 0.0, 2.0, 0.0], [0.5, 0.5, 0.25, 0.5])
    >>> q = np.array([[1.0, 2.0], [1.0, 0.0], [3.0, 1.0], [0.0, 1.0]])
    >>> DROS(lam=4.0).estimate(data, [1, 1, 1, 1], q=q).value  # 1 + (4 * 4 / (16 + 4)) * 1 / 4
    1.2
    >>> DROS(lam=0.0).estimate(data, [1, 1, 1, 1], q=q).value  # DM
    1.0
    """

    lam: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.lam is not None:
            _check_number(self.lam, "lam", low=0.0, low_open=False, allow_inf=True)

    def _row_terms(self, target: ResolvedTarget, q: np.ndarray | None) -> _Terms:
        dm, resid = _parts(target, q)
        w = target.weights
        lam = float(self.lam) if self.lam is not None else self._chosen(target, dm, resid, "dros")
        return _Terms(
            RowTerms(dm + _shrunk_weights(w, lam) * resid),
            consistent=math.isinf(lam),
            params={"lam": lam},
            reference=None if math.isinf(lam) else RowTerms(dm + w * resid),
        )
