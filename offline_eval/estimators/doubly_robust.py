r"""Doubly-robust estimators: DR (optionally clipped), self-normalised SNDR, SwitchDR and DROS.

All share the decomposition, per logged row i with reward model q (cross-fitted, n x K),

.. math:: \hat V = \frac{1}{n} \sum_i \Big[ \underbrace{\textstyle\sum_k \pi(k|x_i) q(x_i, k)}_{\text{DM part}}
          + g(w_i) \, (r_i - q(x_i, a_i)) \Big],

and differ in the weight function g applied to the importance weight ``w_i = pi(a_i | x_i) / p_i``: ``g(w) = w``
(DR: unbiased if the propensities are right, whatever q), ``min(w, clip)`` (clipped DR),
``w * 1[w <= tau]`` (SwitchDR), ``lam * w / (w^2 + lam)`` (DROS), or ``w / mean(w)`` (SNDR).

Data-driven hyperparameters (``SwitchDR(tau=None)``, ``DROS(lam=None)``)
------------------------------------------------------------------------
The candidate set is {0 (= DM)} + a grid from the positive weights + {inf (= DR)}: for SwitchDR
``tau`` in the quantiles of the positive weights at :data:`GRID_QUANTILES`; for DROS ``lam = s^2`` for the same
quantiles s (weights above s are shrunk). The chosen candidate minimises the estimated mean squared error

.. math:: \widehat{\mathrm{MSE}}(\theta) = \widehat{\mathrm{se}}^2(\hat V_\theta)
          + \max\big(0, \; d_\theta^2 - \widehat{\mathrm{se}}^2(d_\theta)\big),
          \qquad d_\theta = \hat V_{\mathrm{DR}} - \hat V_\theta
          = \tfrac{1}{n}\textstyle\sum_i (w_i - g_\theta(w_i)) (r_i - q(x_i, a_i)),

with DR (unbiased) as the reference: :math:`d_\theta` estimates the bias of candidate θ, and since
:math:`E[d^2] = \mathrm{bias}^2 + \mathrm{Var}(d)`, subtracting the estimated variance of :math:`d_\theta` (the
sample variance of its per-row terms over n) makes the squared-bias estimate approximately unbiased (floored at
0). Without that correction the rule could never prefer shrinkage when the reward model is exact: the variance it
removes would come back as "bias". Ties go to the candidate closest to DR. This is the MSE-minimising selection of
Wang et al. (2017) and Su et al. (2020), with the difference to DR as the bias estimate. The chosen value is
reported in ``Estimate.params``; the interval is the chosen estimator's and does not include its bias
(``Estimate.consistent`` is False unless the choice reduces to DR).

References
----------
Dudik, M., Langford, J. and Li, L. (2011). Doubly robust policy evaluation and learning. ICML.
Wang, Y.-X., Agarwal, A. and Dudik, M. (2017). Optimal and adaptive off-policy evaluation in contextual bandits.
ICML.
Su, Y., Dimakopoulou, M., Krishnamurthy, A. and Dudik, M. (2020). Doubly robust off-policy evaluation with
shrinkage. ICML.
Kallus, N. and Uehara, M. (2019). Intrinsically efficient, stable, and bounded off-policy evaluation for
reinforcement learning. NeurIPS (self-normalised DR).
"""

from __future__ import annotations

import math
from collections.abc import Callable
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

__all__ = ["DR", "DROS", "GRID_QUANTILES", "SNDR", "SwitchDR"]

#: Quantile levels of the positive importance weights that form the SwitchDR / DROS candidate grids.
GRID_QUANTILES = (0.25, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.975, 0.99, 0.995, 0.999)


def _parts(target: ResolvedTarget, q: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """DM part (n,) and residual ``r_i - q(x_i, a_i)`` (n,)."""
    q = _require_q(q, "a doubly robust estimator")
    data = target.data
    dm = target.expected(q)
    resid = data.reward - q[np.arange(data.n), data.action]
    return dm, resid


def _select(
    dm: np.ndarray,
    resid: np.ndarray,
    w: np.ndarray,
    candidates: list[float],
    weight_fn: Callable[[np.ndarray, float], np.ndarray],
) -> float:
    """The candidate minimising the estimated MSE (module docstring); candidates sorted from DR-like to DM-like."""
    n = len(w)
    v_dr = float(np.mean(dm + w * resid))
    best, best_mse = candidates[0], math.inf
    for theta in candidates:
        g = weight_fn(w, theta)
        terms = dm + g * resid
        diff = (w - g) * resid  # per-row V_DR - V_theta
        bias_sq = max((v_dr - float(terms.mean())) ** 2 - float(diff.var(ddof=1)) / n, 0.0)
        mse = float(terms.var(ddof=1)) / n + bias_sq
        if mse < best_mse:
            best, best_mse = theta, mse
    return best


def _candidates(w: np.ndarray, squared: bool) -> list[float]:
    """inf, the positive-weight quantile grid (descending; squared for DROS), 0."""
    positive = w[w > 0]
    grid = np.quantile(positive, GRID_QUANTILES) if len(positive) else np.zeros(0)
    if squared:
        grid = grid**2
    values = sorted({float(g) for g in grid if g > 0}, reverse=True)
    return [math.inf, *values, 0.0]


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
        return _Terms(RowTerms(correction), clipped_share=share, consistent=False)


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
        tau = float(self.tau) if self.tau is not None else _select(dm, resid, w, _candidates(w, False), _switch_weights)
        switched = float(np.count_nonzero(w > tau)) / len(w)
        return _Terms(
            RowTerms(dm + _switch_weights(w, tau) * resid),
            clipped_share=switched,
            consistent=switched == 0.0,
            params={"tau": tau},
            warn_clipped=self.tau is not None,
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
        lam = float(self.lam) if self.lam is not None else _select(dm, resid, w, _candidates(w, True), _shrunk_weights)
        return _Terms(
            RowTerms(dm + _shrunk_weights(w, lam) * resid),
            consistent=math.isinf(lam),
            params={"lam": lam},
        )
