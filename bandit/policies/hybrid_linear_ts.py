"""Linear Thompson sampling with the hybrid (shared + per-arm) linear model of Li et al. (2010)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bandit._validation import check_precision, check_scalar
from bandit.arms import Arm
from bandit.policies._hybrid import HybridRidgePolicy
from bandit.policies.linear_ts import linear_ts_decide_rows

__all__ = ["HybridLinearTS"]


class HybridLinearTS(HybridRidgePolicy):
    """Hybrid linear Thompson sampling: offer the arm whose sampled value is largest, sharing across arms.

    The model is that of :class:`~bandit.policies.hybrid_linucb.HybridLinUCB`: expected reward
    ``m_a(x) = z_{x,a} . beta + x . theta_a`` with ``beta`` shared through the arms' ``features``, fit by one joint
    ridge regression whose posterior is ``N(w_hat, v^2 M^-1)``. For a context ``x`` the policy samples each arm's
    score from its **marginal** posterior,

        ``value_a * N(m_a(x), v^2 s_{x,a})``,  independently per eligible arm,

    and offers the argmax. This is marginal Thompson sampling: under the joint posterior the arms' predictions are
    correlated through the shared ``beta``, and that correlation is dropped for the draw. What is drawn is then a
    set of independent normals, so the probability that arm ``a`` wins is the 1-D integral
    ``int phi_a(t) prod_{j != a} Phi_j(t) dt``, computed by quadrature exactly as for
    :class:`~bandit.policies.linear_ts.LinearTS`: the reported propensities are exact for the draw actually made
    (a joint draw would need a K-dimensional integral). Each arm's own uncertainty, including what it inherits
    from the shared coefficients, is kept in full.

    Parameters
    ----------
    arms : list of Arm
        The offers, each with ``features`` of the same length m.
    n_features : int
        Length d of a context vector.
    v : float, default 0.125
        Posterior scale (> 0): half the reward-noise standard deviation of 0/1 conversions, for the reasons given in
        :class:`~bandit.policies.linear_ts.LinearTS`.
    l2 : float, default 1.0
        Ridge penalty = prior precision of each shared coefficient ``beta`` (> 0).
    arm_l2 : float, default 1.0
        Prior precision of each arm's own coefficients ``theta_a`` (> 0). Larger values trust the shared model
        more: new arms are scored, and explored, mostly from their features (see
        :class:`~bandit.policies._hybrid.HybridRidgePolicy`, "Cold start"). Li et al.'s ``l2 = arm_l2 = 1`` are
        kept here, unlike :class:`~bandit.policies.hybrid_linucb.HybridLinUCB`'s ``P / 4``
        (:func:`~bandit.policies._hybrid.joint_prior_precision`): with ``v = 0.125`` the draws explore in
        proportion to the posterior's width, and the tighter prior made the sampler explore too little on the
        simulator's default world (``bench/defaults_bench.py``'s ``upsell_sim``, 5 seeds: 0.874 of the oracle's
        revenue against 0.883), although it learned the novel launch faster (launch-window regret 1,233 against
        1,855 on seeds 0-2 of ``bench/cold_start_bench.py``). ``l2 = P / 4`` with ``arm_l2 = D / 4`` (each block
        scaled to its own length) reached 0.889 there and 1,593 on the novel launch, but its regret over the whole
        known-attribute launch run rose by 7% (4,247 against 3,960 over 25,000 offers, seeds 0-2).
    exploration_floor : float, default 0.0
        Uniform mass over the eligible arms mixed into every decision, in [0, 1].
    discount : float, default 1.0
        Forgetting factor gamma in (0, 1]; with gamma < 1 every update ages all statistics (see
        :class:`~bandit.policies._hybrid.HybridRidgePolicy`).
    fit_intercept : bool, default True
        Append a constant 1 to every context and to every arm's features internally.
    seed : int, optional

    Examples
    --------
    >>> import numpy as np
    >>> from bandit import Arm, HybridLinearTS
    >>> arms = [Arm(name="individual", features=[1.2, 0.0]), Arm(name="duo", features=[1.7, 1.0]),
    ...         Arm(name="family", features=[2.0, 2.6])]
    >>> policy = HybridLinearTS(arms, n_features=2, seed=0)
    >>> rng = np.random.default_rng(0)
    >>> for _ in range(600):
    ...     x = rng.normal(size=2)
    ...     d = policy.choose(x)
    ...     p = 0.3 + 0.1 * arms[d.index].features[1] * x[0] - 0.1 * arms[d.index].features[0]
    ...     policy.update(x, d.arm, float(rng.random() < p))
    >>> d = policy.choose([1.5, 0.0], event_id="req-42")
    >>> d.arm, round(d.propensity, 2)
    ('family', 1.0)
    >>> policy.add_arm(Arm(name="family_plus", features=[2.3, 3.0]))  # more seats, a little dearer; no data yet
    3
    >>> policy.action_probabilities([[1.5, 0.0]]).round(2)  # the shared model already rates it like family
    array([[0.  , 0.  , 0.48, 0.52]])

    References
    ----------
    Li, Chu, Langford, Schapire (2010). A contextual-bandit approach to personalized news article recommendation.
    WWW. Agrawal, Goyal (2013). Thompson sampling for contextual bandits with linear payoffs. ICML.
    """

    def __init__(
        self,
        arms: Sequence[str | Arm],
        n_features: int,
        *,
        v: float = 0.125,
        l2: float = 1.0,
        arm_l2: float = 1.0,
        exploration_floor: float = 0.0,
        discount: float = 1.0,
        fit_intercept: bool = True,
        seed: int | None = None,
    ) -> None:
        self.v = check_scalar(v, "v", low=0.0, low_inclusive=False)
        self.l2 = check_precision(l2, "l2")
        self.arm_l2 = check_precision(arm_l2, "arm_l2")
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
        return {"v": 0.5, "l2": 1.0, "exploration_floor": 0.05}

    def _decide_rows(
        self, mean: np.ndarray, var: np.ndarray, eligible: np.ndarray, sample: bool, st: np.ndarray,
        seeds: np.ndarray, idx: np.ndarray, probs: np.ndarray, scores: np.ndarray,
    ) -> None:
        linear_ts_decide_rows(mean, var, self._values, eligible, self.v, self.exploration_floor, sample, st, seeds, idx,
                              probs, scores)
