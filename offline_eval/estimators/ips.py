"""Inverse propensity scoring: IPS (optionally clipped) and self-normalised SNIPS."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from offline_eval.estimators.base import Estimator, ResolvedTarget, _check_number, _clipped_terms, _Terms
from offline_eval.intervals import Interval, RowTerms

__all__ = ["IPS", "SNIPS"]


@dataclass(frozen=True, kw_only=True)
class IPS(Estimator):
    """Inverse propensity scoring: ``V = mean_i min(w_i, clip) * r_i`` with ``w_i = pi(a_i | x_i) / p_i``.

    Unbiased for the target's expected reward when the propensities are right and the target stays inside the
    logging support (no clipping); its variance grows with the weights. Clipping at ``clip`` trades a downward
    bias (for non-negative rewards) for variance; the share of clipped rows is in the diagnostics.

    Parameters
    ----------
    clip : float or None
        Maximum weight, > 0 (``inf`` allowed); None: no clipping.
    interval, alpha, seed, n_bootstrap, term_range
        See :class:`offline_eval.estimators.base.Estimator`.

    Examples
    --------
    >>> import numpy as np
    >>> from offline_eval import LoggedData
    >>> data = LoggedData(None, [0, 1, 1, 0], [1.0, 0.0, 2.0, 0.0], [0.5, 0.5, 0.25, 0.5])
    >>> est = IPS().estimate(data, [1, 1, 1, 1])  # always take arm 1: weights 0, 2, 4, 0
    >>> est.value  # (0 + 2 * 0 + 4 * 2 + 0) / 4
    2.0
    >>> IPS(clip=3.0).estimate(data, [1, 1, 1, 1]).value  # (3 * 2) / 4
    1.5

    References
    ----------
    Horvitz, D. G. and Thompson, D. J. (1952). A generalization of sampling without replacement from a finite
    universe. JASA 47(260).
    """

    clip: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.clip is not None:
            _check_number(self.clip, "clip", low=0.0, low_open=True, allow_inf=True)

    def _row_terms(self, target: ResolvedTarget, q: np.ndarray | None) -> _Terms:
        w, r = target.weights, target.data.reward
        if self.clip is None or target.weight_max <= self.clip:
            return _Terms(RowTerms(target.weighted_reward))
        terms, share = _clipped_terms(w, r, self.clip)
        return _Terms(
            RowTerms(terms),
            clipped_share=share,
            consistent=False,
            reference=RowTerms(target.weighted_reward),
            reference_kind="ips",
        )

    def _own_interval(self, target: ResolvedTarget, out: _Terms) -> tuple[Interval, str]:
        return self._terms_interval(target, out.terms, out.consistent)


@dataclass(frozen=True, kw_only=True)
class SNIPS(Estimator):
    """Self-normalised IPS: ``V = sum_i w_i r_i / sum_i w_i``.

    Consistent (bias O(1/n)), bounded by the reward range, and usually lower variance than IPS; the normal
    interval is the delta method. Equals IPS when the weights average exactly 1. Undefined (NaN) when every
    weight is 0 (the target never takes a logged action).

    Parameters
    ----------
    interval, alpha, seed, n_bootstrap, term_range
        See :class:`offline_eval.estimators.base.Estimator`.

    Examples
    --------
    >>> import numpy as np
    >>> from offline_eval import LoggedData
    >>> data = LoggedData(None, [0, 1, 1, 0], [1.0, 0.0, 2.0, 0.0], [0.5, 0.5, 0.25, 0.5])
    >>> SNIPS().estimate(data, [1, 1, 1, 1]).value  # (2 * 0 + 4 * 2) / (2 + 4)
    1.3333333333333333

    References
    ----------
    Swaminathan, A. and Joachims, T. (2015). The self-normalized estimator for counterfactual learning. NeurIPS.
    """

    def _row_terms(self, target: ResolvedTarget, q: np.ndarray | None) -> _Terms:
        return _Terms(RowTerms(None, ((1.0, target.weighted_reward, target.weights),)))

    def _own_interval(self, target: ResolvedTarget, out: _Terms) -> tuple[Interval, str]:
        return self._terms_interval(target, out.terms, True)
