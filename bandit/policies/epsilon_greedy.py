"""Epsilon-greedy over disjoint ridge models."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bandit._validation import check_scalar
from bandit.arms import Arm
from bandit.kernels import policy_kernels as pk
from bandit.policies.base import RidgePolicy

__all__ = ["EpsilonGreedy"]


class EpsilonGreedy(RidgePolicy):
    """Epsilon-greedy: the best predicted arm with probability ``1 - epsilon``, a uniform eligible arm otherwise.

    Each arm has a ridge regression of the reward on the context; the greedy score is ``value_k * theta_k . x``.
    The exact distribution is ``p = (1 - epsilon) * greedy + epsilon / |eligible|`` where ``greedy`` splits exact
    ties uniformly (so the first decisions are uniform), then the ``exploration_floor`` is mixed in as for every
    policy (it simply adds to epsilon's uniform mass).

    Defaults and why: ``epsilon=0.1`` explores enough for ridge estimates on standardised features to keep
    improving while losing at most 10% of decisions to exploration; ``l2=1`` is a unit prior per coefficient.

    Parameters
    ----------
    arms : list of str or Arm
    n_features : int
    epsilon : float, default 0.1
        Uniform exploration mass, in [0, 1].
    l2 : float, default 1.0
        Ridge penalty (> 0).
    exploration_floor : float, default 0.0
    discount : float, default 1.0
    fit_intercept : bool, default True
    seed : int, optional

    Examples
    --------
    >>> import numpy as np
    >>> from bandit import EpsilonGreedy
    >>> rng = np.random.default_rng(0)
    >>> policy = EpsilonGreedy(["individual", "duo", "family"], n_features=2, seed=1)
    >>> for _ in range(500):
    ...     x = rng.normal(size=2)
    ...     best = 1 if x[0] > 0 else 2
    ...     d = policy.choose(x)
    ...     policy.update(x, d.arm, float(d.index == best))
    >>> policy.choose([1.5, 0.0], event_id="req-42").probabilities
    array([0.0333, 0.9333, 0.0333])
    """

    _kind = pk.GREEDY
    _param_name = "epsilon"

    def __init__(
        self,
        arms: Sequence[str | Arm],
        n_features: int,
        *,
        epsilon: float = 0.1,
        l2: float = 1.0,
        exploration_floor: float = 0.0,
        discount: float = 1.0,
        fit_intercept: bool = True,
        seed: int | None = None,
    ) -> None:
        self.epsilon = check_scalar(epsilon, "epsilon", low=0.0, high=1.0)
        self.l2 = check_scalar(l2, "l2", low=0.0, low_inclusive=False)
        super().__init__(
            arms,
            n_features,
            exploration_floor=exploration_floor,
            discount=discount,
            fit_intercept=fit_intercept,
            seed=seed,
        )

    @classmethod
    def _test_params(cls) -> dict[str, Any]:
        return {"epsilon": 0.2, "l2": 1.0, "exploration_floor": 0.05}
