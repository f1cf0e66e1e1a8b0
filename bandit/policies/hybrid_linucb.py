"""LinUCB with the hybrid (shared + per-arm) linear model (Li et al. 2010, Algorithm 2)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from bandit._validation import check_precision, check_scalar
from bandit.arms import Arm
from bandit.policies._hybrid import HybridRidgePolicy, joint_prior_precision
from bandit.policies.linucb import linucb_decide_rows

__all__ = ["HybridLinUCB"]


class HybridLinUCB(HybridRidgePolicy):
    """Hybrid LinUCB: offer the arm with the largest upper confidence bound, sharing what is learned across arms.

    Every arm carries ``features`` (a numeric description: one-hot plan, price, seats, ...). The expected reward
    is ``z_{x,a} . beta + x . theta_a`` with ``z_{x,a} = vec(features_a x^T)``: ``beta`` is shared by all arms (how
    each arm feature interacts with each context feature), ``theta_a`` is arm ``a``'s own ridge correction (see
    :class:`~bandit.policies._hybrid.HybridRidgePolicy`). The score is

        ``value_a * (z_{x,a} . beta + x . theta_a + alpha * sqrt(s_{x,a}))``

    with ``s_{x,a}`` the posterior variance of the prediction under the joint ridge posterior (Li et al.'s
    ``s_{t,a}``). As in :class:`~bandit.policies.linucb.LinUCB` the best eligible score wins, exact ties are split
    uniformly, and the reported propensity is exact (1, or ``1/m`` for an m-way tie, before the
    ``exploration_floor``).

    Use it when arms come and go (new plans, plan x message combinations): a new arm added with ``add_arm`` is
    scored from its features by the shared ``beta`` before its first impression, instead of starting from nothing.
    The cost is a larger model: with m arm features a decision costs ``O(K (m D)^2)``.

    Parameters
    ----------
    arms : list of Arm
        The offers, each with ``features`` of the same length m; ``Arm.value`` multiplies the expected reward.
    n_features : int
        Length d of a context vector.
    alpha : float, default 0.25
        Width of the confidence bonus (>= 0; 0 is greedy) in reward units per posterior standard deviation of the
        prediction (noise units): the reward-noise standard deviation, 0.25 for 0/1 conversions (the argument of
        :class:`~bandit.policies.linucb.LinUCB`).
    l2 : float, optional
        Ridge penalty = prior precision of each shared coefficient ``beta`` (> 0). Default ``P / 4`` with
        ``P = (m + 1) D`` the length of ``z`` (:func:`~bandit.policies._hybrid.joint_prior_precision`): the shared
        part alone gives a prediction the prior standard deviation ``2 sigma`` of a disjoint
        :class:`~bandit.policies.linucb.LinUCB` arm (whose ``l2`` is ``D / 4``).
    arm_l2 : float, optional
        Prior precision of each arm's own coefficients ``theta_a`` (> 0), default ``P / 4`` like ``l2``: an arm's
        own part is a deviation from the shared model with prior standard deviation ``2 sigma / sqrt(m + 1)``, so a
        new arm is scored, and explored, mostly from its features (see
        :class:`~bandit.policies._hybrid.HybridRidgePolicy`, "Cold start"). Li et al.'s priors are
        ``l2 = arm_l2 = 1``.
    exploration_floor : float, default 0.0
        Uniform mass over the eligible arms mixed into every decision, in [0, 1].
    discount : float, default 1.0
        Forgetting factor gamma in (0, 1]; with gamma < 1 every update ages all statistics (see
        :class:`~bandit.policies._hybrid.HybridRidgePolicy`).
    fit_intercept : bool, default True
        Append a constant 1 to every context (D = d + 1) and to every arm's features internally, so that ``beta``
        also learns the arm features' main effects, context effects common to all arms and a global intercept.
    seed : int, optional
        Seed of the policy's generator and of per-event draws; drawn from the OS when None.

    Examples
    --------
    Three plans described by ``[price / 10, log2(seats)]``; bigger households (``x[0] > 0``) convert on
    multi-seat plans:

    >>> import numpy as np
    >>> from bandit import Arm, HybridLinUCB
    >>> arms = [Arm(name="individual", features=[1.2, 0.0]), Arm(name="duo", features=[1.7, 1.0]),
    ...         Arm(name="family", features=[2.0, 2.6])]
    >>> policy = HybridLinUCB(arms, n_features=2, alpha=0.5, seed=0)
    >>> rng = np.random.default_rng(0)
    >>> def convert(x, features):  # the (unknown) truth: seats help large households, price hurts everyone
    ...     p = 0.3 + 0.1 * features[1] * x[0] - 0.1 * features[0]
    ...     return float(rng.random() < np.clip(p, 0.0, 1.0))
    >>> for _ in range(600):
    ...     x = rng.normal(size=2)
    ...     d = policy.choose(x)
    ...     policy.update(x, d.arm, convert(x, arms[d.index].features))
    >>> policy.choose([1.5, 0.0]).arm, policy.choose([-1.5, 0.0]).arm
    ('family', 'individual')

    Which plan, and how to say it: arms are (plan x message) combinations whose features are one-hot plan, price,
    seats and one-hot message template. The same machinery then chooses the plan and the way to present it, and a
    combination never shown before -- here ``duo|social_proof`` -- is scored from what the other combinations
    taught about Duo and about social proof:

    >>> plans = {"individual": (11.99, 1), "duo": (16.99, 2), "family": (19.99, 6)}
    >>> messages = ["price_anchor", "social_proof"]
    >>> def combo(plan, message):
    ...     price, seats = plans[plan]
    ...     onehot_plan = [float(p == plan) for p in plans]
    ...     onehot_message = [float(m == message) for m in messages]
    ...     return Arm(name=f"{plan}|{message}", value=price,
    ...                features=onehot_plan + [price / 10, np.log2(seats)] + onehot_message)
    >>> launched = [combo(p, m) for p in plans for m in messages if (p, m) != ("duo", "social_proof")]
    >>> def rate(x, arm):  # true conversion: seats help large households (x[0]), social proof persuades x[1]
    ...     plan, message = arm.name.split("|")
    ...     base = {"individual": 0.15, "duo": 0.12, "family": 0.10}[plan]
    ...     lift = 0.04 * x[1] if message == "social_proof" else 0.02
    ...     return base + 0.02 * np.log2(plans[plan][1]) * x[0] + lift
    >>> rng = np.random.default_rng(1)  # a month of randomised offers of the five launched combinations
    >>> X = rng.uniform(-1, 1, size=(5000, 2))
    >>> shown = rng.integers(0, len(launched), size=5000)
    >>> converted = rng.random(5000) < [rate(x, launched[a]) for x, a in zip(X, shown)]
    >>> policy = HybridLinUCB(launched, n_features=2, seed=0)
    >>> policy.update_batch(X, shown, converted)
    >>> new = combo("duo", "social_proof")
    >>> policy.add_arm(new)
    5
    >>> contexts = [[1.0, 1.0], [-1.0, -1.0]]  # a large, persuadable household; a small, unmoved one
    >>> policy.predict(contexts)[:, 5].round(2), np.round([rate(x, new) for x in contexts], 2)
    (array([0.17, 0.08]), array([0.18, 0.06]))
    >>> policy.choose(contexts[0]).arm  # still uncertain about it, so LinUCB tries it where it looks promising
    'duo|social_proof'

    References
    ----------
    Li, Chu, Langford, Schapire (2010). A contextual-bandit approach to personalized news article recommendation.
    WWW (Algorithm 2, "LinUCB with hybrid linear models").
    """

    def __init__(
        self,
        arms: Sequence[str | Arm],
        n_features: int,
        *,
        alpha: float = 0.25,
        l2: float | None = None,
        arm_l2: float | None = None,
        exploration_floor: float = 0.0,
        discount: float = 1.0,
        fit_intercept: bool = True,
        seed: int | None = None,
    ) -> None:
        self.alpha = check_scalar(alpha, "alpha", low=0.0)
        scaled = (joint_prior_precision(type(self).__name__, arms, n_features, fit_intercept)
                  if l2 is None or arm_l2 is None else math.nan)
        self.l2 = scaled if l2 is None else check_precision(l2, "l2")
        self.arm_l2 = scaled if arm_l2 is None else check_precision(arm_l2, "arm_l2")
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
        return {"alpha": 0.5, "l2": 1.0, "exploration_floor": 0.05}

    def _decide_rows(
        self, mean: np.ndarray, var: np.ndarray, eligible: np.ndarray, sample: bool, st: np.ndarray,
        seeds: np.ndarray, idx: np.ndarray, probs: np.ndarray, scores: np.ndarray,
    ) -> None:
        linucb_decide_rows(mean, var, self._values, eligible, self.alpha, self.exploration_floor, sample, st, seeds, idx,
                           probs, scores)
