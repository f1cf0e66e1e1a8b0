"""The direct method: average the reward model's prediction for the target's actions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from offline_eval.estimators.base import Estimator, ResolvedTarget, _require_q, _Terms
from offline_eval.intervals import RowTerms

__all__ = ["DM", "check_reward_model"]


def check_reward_model(model: Any) -> None:
    """Raise ``TypeError`` unless ``model`` is None or has a callable ``fit_predict(data) -> (n, K)``."""
    if model is not None and not callable(getattr(model, "fit_predict", None)):
        raise TypeError(
            f"reward_model must have fit_predict(data) -> (n, K) (e.g. offline_eval.reward_models.RidgeRewardModel()) "
            f"or be None for the default, got {type(model).__name__}"
        )


@dataclass(frozen=True, kw_only=True)
class DM(Estimator):
    """Direct method: ``V = mean_i sum_k pi(k | x_i) q(x_i, k)`` with a cross-fitted reward model q.

    No importance weights, so low variance even far from the logging policy; but biased by every error of the
    reward model. Its interval is therefore **bias-aware** by default (``interval="bias-aware(...)"``): the
    interval of DR on the same reward matrix (DM plus the cross-fitted estimate of DM's bias,
    ``mean_i w_i (r_i - q(x_i, a_i))``), extended to contain the DM value, so it covers at least as often as DR's
    whatever the model. ``Estimate.bias`` is DM minus DR. ``bias_aware=False`` gives the spread of the
    predictions alone, which ignores the bias.

    Parameters
    ----------
    reward_model : object or None
        Model with ``fit_predict(data) -> (n, K)`` (see :mod:`offline_eval.reward_models`); None picks
        :func:`offline_eval.reward_models.default_reward_model` from the rewards.
    interval, alpha, seed, n_bootstrap, term_range
        See :class:`offline_eval.estimators.base.Estimator`.

    Examples
    --------
    >>> import numpy as np
    >>> from offline_eval import LoggedData
    >>> data = LoggedData(None, [0, 1, 1, 0], [1.0, 0.0, 2.0, 0.0], [0.5] * 4)
    >>> q = np.array([[1.0, 2.0], [1.0, 0.0], [3.0, 1.0], [0.0, 1.0]])
    >>> DM().estimate(data, [1, 1, 1, 1], q=q).value  # (2 + 0 + 1 + 1) / 4
    1.0

    References
    ----------
    Dudik, M., Langford, J. and Li, L. (2011). Doubly robust policy evaluation and learning. ICML.
    """

    reward_model: Any = None

    uses_reward_model: ClassVar[bool] = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_reward_model(self.reward_model)

    def _row_terms(self, target: ResolvedTarget, q: np.ndarray | None) -> _Terms:
        q = _require_q(q, "DM")
        dm = target.expected(q)
        data = target.data
        resid = data.reward - q[np.arange(data.n), data.action]
        return _Terms(RowTerms(dm), consistent=False, reference=RowTerms(dm + target.weights * resid))
