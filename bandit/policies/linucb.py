"""LinUCB with disjoint ridge models (Li et al. 2010)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bandit._validation import check_scalar
from bandit.arms import Arm
from bandit.kernels import policy_kernels as pk
from bandit.policies.base import RidgePolicy, scaled_prior_precision

__all__ = ["LinUCB"]


class LinUCB(RidgePolicy):
    """LinUCB: offer the arm with the largest upper confidence bound on its value.

    Each arm k has its own ridge regression of the reward on the context (``A_k = l2 I + sum x x^T``,
    ``theta_k = A_k^-1 b_k``); the score is

        ``value_k * (theta_k . x + alpha * sqrt(x^T A_k^-1 x))``

    and the policy picks the best eligible score, splitting exact ties uniformly (so the first decisions, when all
    arms are equally unknown, are uniform). The reported propensity is exact: 1 for a unique best arm (before the
    ``exploration_floor``), ``1/m`` for an m-way tie.

    Defaults, from the noise scale of 0/1 rewards (validated on ``bench/defaults_bench.py``'s suite of ten
    worlds, never tuned on one): ``sqrt(x^T A_k^-1 x)`` is the posterior standard deviation of the predicted reward
    *in units of the reward noise* sigma (the ridge posterior is ``N(theta_k, sigma^2 A_k^-1)``). The prior
    ``N(0, sigma^2 I / l2)`` should not claim more than the reward's range: on standardised features ``E ||x||^2 =
    D`` (the context's length plus the intercept), so ``l2 = D / 4`` gives every prediction a prior standard
    deviation of ``2 sigma`` = 0.5, half the range of a 0/1 reward, in any dimension
    (:func:`~bandit.policies.base.scaled_prior_precision`); a fixed ``l2=1`` instead lets the first predictions of
    a 64-feature arm swing by ``8 sigma``, and the bonus with them. So ``alpha = sigma`` makes the bonus one posterior standard deviation in
    reward units. A 0/1 conversion at rate p has ``sigma = sqrt(p (1 - p))``: 0.22-0.3 for p = 5-10%, at most 0.5;
    hence ``alpha=0.25``. One standard deviation, not a worst-case confidence quantile, because the contexts of
    real traffic are diverse: the greedy choices alone keep enlarging every arm's design in new directions (Bastani,
    Bayati & Khosravi 2021), so the bonus only has to break early ties and rescue arms that started unlucky. On the
    suite, ``alpha=1, l2=1`` (the old defaults) lost 8 points of progressive reward on digits and 3 on wine against
    ``alpha=0.25, l2=1``, and ``l2 = D / 4`` gained 2.6 more on digits (D = 65) and 0.6 on wine, iris being
    unchanged (D = 5). The argument assumes standardised features: 0/1 one-hot blocks (as in the simulator's
    featurizer) have a smaller ``E ||x||^2``, and ``l2 = E ||x||^2 / 4`` is then the matching prior (on the
    simulator's default world, ``E ||x||^2`` is about 8 against D = 24; LinUCB's regret over the 5,000 offers before
    the launch in ``bench/cold_start_bench.py`` was 17% lower with ``l2=1``, its value over 20,000 offers the same). For revenue rewards set ``alpha`` to the reward's noise standard deviation. LinUCB is
    deterministic given its state: set an ``exploration_floor`` (e.g. 0.05) when its logs must support off-policy
    evaluation of other policies.

    Parameters
    ----------
    arms : list of str or Arm
        The offers; ``Arm.value`` multiplies the expected reward (see :class:`~bandit.policies.base.Policy`).
    n_features : int
        Length d of a context vector.
    alpha : float, default 0.25
        Width of the confidence bonus in reward units per posterior standard deviation (noise units) of the
        prediction: the reward-noise standard deviation (>= 0; 0 is greedy).
    l2 : float, optional
        Ridge penalty = prior precision of each coefficient, in noise units (> 0). None (the default): ``D / 4`` with
        D = ``n_features`` (+ 1 with the intercept), see above.
    exploration_floor : float, default 0.0
        Uniform mass over the eligible arms mixed into every decision, in [0, 1].
    discount : float, default 1.0
        Forgetting factor gamma in (0, 1] applied to an arm's statistics at each of its updates (1 = none).
    fit_intercept : bool, default True
        Append a constant 1 to every context internally (D = d + 1).
    seed : int, optional
        Seed of the policy's generator and of per-event draws; drawn from the OS when None.

    Examples
    --------
    >>> import numpy as np
    >>> from bandit import LinUCB
    >>> rng = np.random.default_rng(0)
    >>> policy = LinUCB(["individual", "duo", "family"], n_features=2, seed=1)
    >>> policy.choose([0.3, -1.2]).probabilities  # nothing learned yet: a three-way tie
    array([0.333, 0.333, 0.333])
    >>> for _ in range(500):
    ...     x = rng.normal(size=2)
    ...     best = 1 if x[0] > 0 else 2  # duo converts users with x[0] > 0, family the others
    ...     d = policy.choose(x)
    ...     policy.update(x, d.arm, float(d.index == best))
    >>> d = policy.choose([1.5, 0.0], event_id="req-42")
    >>> d.arm, d.propensity
    ('duo', 1.0)

    References
    ----------
    Li, Chu, Langford, Schapire (2010). A contextual-bandit approach to personalized news article recommendation.
    WWW.
    Bastani, Bayati, Khosravi (2021). Mostly exploration-free algorithms for contextual bandits. Management Science
    67(3).
    """

    _kind = pk.UCB
    _param_name = "alpha"

    def __init__(
        self,
        arms: Sequence[str | Arm],
        n_features: int,
        *,
        alpha: float = 0.25,
        l2: float | None = None,
        exploration_floor: float = 0.0,
        discount: float = 1.0,
        fit_intercept: bool = True,
        seed: int | None = None,
    ) -> None:
        self.alpha = check_scalar(alpha, "alpha", low=0.0)
        self.l2 = (
            scaled_prior_precision(type(self).__name__, n_features, fit_intercept) if l2 is None
            else check_scalar(l2, "l2", low=0.0, low_inclusive=False)
        )
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
