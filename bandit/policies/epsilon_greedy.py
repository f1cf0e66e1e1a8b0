"""Epsilon-greedy over disjoint ridge models."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, cast

import numpy as np
from numba import njit

from bandit._validation import check_precision, check_scalar
from bandit.arms import Arm
from bandit.kernels import decide, propensity
from bandit.policies.base import RidgePolicy

__all__ = [
    "EpsilonGreedy", "epsilon_greedy_choose", "epsilon_greedy_decide", "epsilon_greedy_decide_rows", "per_arm_mix",
    "prior_variance", "prior_variance_rows",
]

#: Kernel modules compiled into this module's numba cache (see tests/bandit/test_kernels.py).
LINKED_SOURCES = ("decide", "dense", "logistic", "propensity", "rng", "scoring", "status")
LINKED_SOURCES_SHA256 = "5caffd1252692377"

#: The exploration schedules (see :class:`EpsilonGreedy`).
SCHEDULES = ("per_arm", "constant")


@njit(cache=True, inline="always")
def prior_variance(context, intercept, l2):
    """``(||context||^2 + intercept) / l2``: the prior variance ``x^T x / l2`` of an arm's predictor at the design row
    ``x`` of the raw ``context`` (d,) (1.0 appended when ``intercept``), in noise units."""
    s = 0.0
    for j in range(context.shape[0]):
        s += context[j] * context[j]
    if intercept:
        s += 1.0
    return s / l2


@njit(cache=True, nogil=True)
def prior_variance_rows(X, intercept, l2, out):
    """:func:`prior_variance` of every row of ``X`` (n, d) into ``out`` (n,)."""
    for i in range(X.shape[0]):
        out[i] = prior_variance(X[i], intercept, l2)


@njit(cache=True, inline="always")
def exploration_weight(var, prior_var):
    """The share of its prior predictive variance an arm still has at a context: ``var / prior_var`` in [0, 1]
    (``x^T A_k^-1 x`` over ``x^T x / l2``; 1 when the prior variance is 0: nothing is known there)."""
    if not prior_var > 0.0:
        return 1.0
    w = var / prior_var
    if w >= 1.0:
        return 1.0
    return w if w > 0.0 else 0.0


@njit(cache=True, inline="always")
def per_arm_mix(probs, eligible, epsilon, var, prior_var):
    """Per-arm exploration, in place: eligible arm ``k`` gets ``e_k = epsilon w_k / |E|`` with ``w_k`` its
    :func:`exploration_weight`, and ``probs <- (1 - sum_k e_k) probs + e`` (0 on ineligible arms). ``probs`` (K,)
    sums to 1 over the eligible arms and so does the result; ``var`` (K,) holds the arms' predictor variances."""
    K = probs.shape[0]
    n_e = 0
    for k in range(K):
        if eligible[k]:
            n_e += 1
    share = epsilon / n_e if n_e > 0 else 0.0
    total = 0.0
    for k in range(K):
        if eligible[k]:
            total += share * exploration_weight(var[k], prior_var)
    keep = 1.0 - total
    for k in range(K):
        probs[k] = keep * probs[k] + share * exploration_weight(var[k], prior_var) if eligible[k] else 0.0


@njit(cache=True, inline="always")
def epsilon_greedy_decide(mean, var, prior_var, values, eligible, epsilon, per_arm, floor, sample, st, probs, scores):
    """Epsilon-greedy's rule for one context, from each arm's posterior ``mean`` and predictor variance ``var``
    (K,) and the context's ``prior_var`` (:func:`prior_variance`).

    Greedy score ``value_k * mean_k`` (-inf if ineligible); the best eligible score wins with exact ties split
    evenly. Exploration: with ``per_arm``, eligible arm ``k`` gets ``epsilon w_k / |E|`` (``w_k =
    var_k / prior_var``, :func:`per_arm_mix`), otherwise ``epsilon / |E|`` (constant epsilon); the greedy
    distribution keeps the rest. Then the exploration floor and, if ``sample``, the draw
    (:func:`~bandit.kernels.decide.draw_mixed`). Returns the drawn arm (-1 when not sampling).
    """
    for k in range(values.shape[0]):
        scores[k] = values[k] * mean[k] if eligible[k] else -np.inf
    propensity.argmax_tie_probs(scores, eligible, probs)
    if per_arm:
        per_arm_mix(probs, eligible, epsilon, var, prior_var)
    else:
        propensity.uniform_mix(probs, eligible, epsilon, probs)
    return decide.draw_mixed(probs, eligible, floor, sample, st)


@njit(cache=True)
def epsilon_greedy_choose(context, A_inv, theta, values, eligible, epsilon, per_arm, l2, floor, st, out):
    """One epsilon-greedy decision in one compiled call: the raw ``context`` (d,) -> :func:`epsilon_greedy_decide`.

    ``A_inv``, ``theta`` (K, D, D), (K, D): ridge inverses and coefficients (D = d, or d + 1 with the intercept
    appended); ``l2`` the ridge prior precision; ``st`` (1,) uint64 the generator; ``out`` (rows, K)
    (:func:`~bandit.kernels.decide.decision_rows`) receives the probabilities and scores in rows 0 and 1, the rows
    after them are work space. Returns the arm, or STATUS_NON_FINITE / STATUS_SCORE_OVERFLOW (nothing drawn).
    """
    scratch = decide.work_space(out)
    status = decide.context_mean_var(context, A_inv, theta, scratch)
    if status < 0:
        return status
    K, D = theta.shape
    prior_var = prior_variance(context, D > context.shape[0], l2)
    return epsilon_greedy_decide(scratch[2 * D : 2 * D + K], scratch[2 * D + K : 2 * D + 2 * K], prior_var, values,
                                 eligible, epsilon, per_arm, floor, True, st, out[0], out[1])


@njit(cache=True, nogil=True)
def epsilon_greedy_decide_rows(mean, var, prior_var, values, eligible, epsilon, per_arm, floor, sample, rng_state, seeds,
                               out_idx, out_probs, out_scores):
    """:func:`epsilon_greedy_decide` for n rows: ``mean``, ``var`` (n, K) and ``prior_var`` (n,), or (1, K) and (1,)
    (broadcast), ``eligible`` (n, K) or (1, K); row ``i`` draws from ``seeds[i]`` or, when ``seeds`` is empty, from
    ``rng_state`` in order. Fills ``out_idx`` (n,), ``out_probs`` and ``out_scores`` (n, K)."""
    st_row = np.empty(1, dtype=np.uint64)
    use_seeds = seeds.shape[0] > 0
    one_mean = mean.shape[0] == 1
    one_elig = eligible.shape[0] == 1
    for i in range(out_idx.shape[0]):
        st = decide.row_state(use_seeds, seeds, i, st_row, rng_state)
        r = 0 if one_mean else i
        out_idx[i] = epsilon_greedy_decide(mean[r], var[r], prior_var[r], values, eligible[0 if one_elig else i], epsilon,
                                           per_arm, floor, sample, st, out_probs[i], out_scores[i])


class EpsilonGreedy(RidgePolicy):
    """Epsilon-greedy: the best predicted arm, plus exploration that fades per arm as the arm's model settles.

    Each arm has a ridge regression of the reward on the context; the greedy score is ``value_k * theta_k . x``
    and the greedy distribution splits exact ties uniformly (so the first decisions are uniform). Exploration
    (``schedule="per_arm"``, the default): eligible arm ``k`` gets probability ``e_k = epsilon w_k / |E|`` on top
    of its greedy share, and the greedy distribution the rest,

        ``p = (1 - sum_k e_k) greedy + e``,    ``w_k = x^T A_k^-1 x / (x^T x / l2)``,

    where ``x`` is the design row (the context with the intercept) and ``A_k = l2 I + sum x x^T`` the arm's
    precision matrix. ``w_k`` is the share of its prior predictive variance at this context the arm still has: 1
    for an arm with no data (a newly added plan is explored at the full rate ``epsilon``), about ``l2 / (l2 + n_k)``
    after ``n_k`` observations of standardised contexts -- the per-arm form of the ``epsilon_n ~ c / n`` schedule of
    Auer, Cesa-Bianchi & Fischer (2002), so an arm's exploration costs about ``epsilon log n_k`` decisions in all
    rather than a fixed share for ever, and it stays high in directions of the context the arm has not seen. With
    ``discount < 1`` old data fade, ``A_k`` drifts back to the prior and exploration rises again. Every decision's
    probabilities are exact (a deterministic function of the state, the context and the eligibility).
    ``schedule="constant"`` gives every eligible arm ``epsilon / |E|`` for ever (the only behaviour before the
    schedule existed; state files written then load with it). The ``exploration_floor`` is mixed in last, as for every
    policy; since the per-arm shares shrink towards 0, set a floor when the logs must keep every propensity above
    a minimum for off-policy evaluation.

    Defaults (validated on ``bench/defaults_bench.py``'s suite of ten classification worlds and the simulator,
    never tuned on one): on diverse contexts the greedy choices alone keep enlarging each arm's design, so greedy
    ridge estimates keep improving (Bastani, Bayati & Khosravi 2021) and a constant exploration rate only costs
    ``epsilon (1 - 1/K)`` of the reward for ever (``epsilon=0.02`` lost about a point on the two 2-plan worlds).
    Exploration is still needed to keep an unlucky arm from being locked out (greedy alone scored 0.46 against
    0.50 on the noisy 4-plan world over 20 seeds) and to learn a new plan. The per-arm schedule with
    ``epsilon=0.1`` scores within 0.1 point of pure greedy where greedy is safe (breast_cancer 0.970 against 0.971
    over 30 seeds), keeps the noisy world's 0.50, and explores a new plan at 0.1 / |E| (``epsilon=0.05`` locked an
    arm out on the noisy world again, 0.46; 0.2 cost up to a point elsewhere). On the simulator's launches it also
    pays less than the constant 0.02 did (regret over the 5,000 offers after a launch, 10 seeds: 850 against 1,227
    for a plan of known attributes, 1,484 against 1,639 for a new tier). Weighting by the predictive variance in
    noise units, ``min(1, x^T A_k^-1 x)``, instead of its share of the prior's was measured too: it decays as
    ``D / n_k``, too slowly in 64 dimensions (digits 0.84 at ``epsilon=0.1``). ``l2=1`` is a unit prior
    per coefficient on standardised features: epsilon-greedy uses only the posterior mean, for which a weak ridge
    penalty is the usual choice.

    Parameters
    ----------
    arms : list of str or Arm
    n_features : int
    epsilon : float, default 0.1
        Exploration mass of an arm with no data (the full rate), in [0, 1].
    schedule : {"per_arm", "constant"}, default "per_arm"
        ``"per_arm"``: each arm's share ``epsilon / |E|`` scaled by the share of its prior predictive variance it
        still has at the context (above); ``"constant"``: ``epsilon / |E|`` for every eligible arm, always.
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
    >>> policy.pulls  # "individual" is rarely best: it has seen the least data and keeps the larger share
    array([  6, 214, 280])
    >>> policy.choose([1.5, 0.0], event_id="req-42").probabilities.round(4).tolist()
    [0.007, 0.9925, 0.0005]
    >>> policy.add_arm("annual")  # a new plan is explored at the full rate, epsilon / |E| = 0.1 / 4
    3
    >>> policy.choose([1.5, 0.0], event_id="req-43").probabilities.round(4).tolist()
    [0.0052, 0.9694, 0.0004, 0.025]

    References
    ----------
    Auer, Cesa-Bianchi, Fischer (2002). Finite-time analysis of the multiarmed bandit problem. Machine Learning
    47.
    Bastani, Bayati, Khosravi (2021). Mostly exploration-free algorithms for contextual bandits. Management Science
    67(3).
    """

    def __init__(
        self,
        arms: Sequence[str | Arm],
        n_features: int,
        *,
        epsilon: float = 0.1,
        schedule: Literal["per_arm", "constant"] = "per_arm",
        l2: float = 1.0,
        exploration_floor: float = 0.0,
        discount: float = 1.0,
        fit_intercept: bool = True,
        seed: int | None = None,
    ) -> None:
        self.epsilon = check_scalar(epsilon, "epsilon", low=0.0, high=1.0)
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
        self.schedule = schedule
        self._per_arm = schedule == "per_arm"
        self.l2 = check_precision(l2, "l2")
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


    def _choose_one(self, x: np.ndarray, eligible: np.ndarray, st: np.ndarray, out: np.ndarray) -> int:
        args = (x, self._A_inv, self._theta, self._values, eligible, self.epsilon, self._per_arm, self.l2,
                self.exploration_floor, st, out)
        return (self._choose_entry or self._bind("choose", epsilon_greedy_choose, args))(*args)

    def _decide_rows(
        self, X: np.ndarray, mean: np.ndarray, var: np.ndarray, eligible: np.ndarray, sample: bool, seeds: np.ndarray,
        idx: np.ndarray, probs: np.ndarray, scores: np.ndarray,
    ) -> None:
        prior_var = np.empty(X.shape[0])
        prior_variance_rows(X, self.fit_intercept, self.l2, prior_var)
        epsilon_greedy_decide_rows(mean, var, prior_var, self._values, eligible, self.epsilon, self._per_arm,
                                   self.exploration_floor, sample, self._rng_state, seeds, idx, probs, scores)

    @classmethod
    def _from_state(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> EpsilonGreedy:
        # files written before ``schedule`` existed explored at the constant rate: they load with it, made explicit
        config = meta.get("config") if isinstance(meta, dict) else None
        if isinstance(config, dict) and "schedule" not in config:
            meta = {**meta, "config": {**config, "schedule": "constant"}}
        return cast(EpsilonGreedy, super()._from_state(meta, arrays))
