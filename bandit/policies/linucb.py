"""LinUCB with disjoint ridge models (Li et al. 2010)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numba import njit

from bandit._validation import check_precision, check_scalar
from bandit.arms import Arm
from bandit.kernels import decide, propensity
from bandit.kernels.status import STATUS_OK
from bandit.policies.base import RidgePolicy, scaled_prior_precision

__all__ = ["LinUCB", "linucb_choose", "linucb_decide", "linucb_decide_rows", "linucb_probabilities",
           "linucb_probability_rows", "ucb_score"]

#: Kernel modules compiled into this module's numba cache (see tests/bandit/test_kernels.py).
LINKED_SOURCES = ("decide", "dense", "logistic", "propensity", "rng", "scoring", "status")
LINKED_SOURCES_SHA256 = "5caffd1252692377"


@njit(cache=True, inline="always")
def ucb_score(mean, var, value, alpha):
    """LinUCB's score of one eligible arm: ``value * (mean + alpha * sqrt(max(var, 0)))``."""
    return value * (mean + alpha * math.sqrt(max(var, 0.0)))


@njit(cache=True, inline="always")
def linucb_decide(mean, var, values, eligible, alpha, floor, sample, st, probs, scores):
    """LinUCB's rule for one context, from each arm's posterior ``mean`` and ``var`` of ``theta_k . x`` (K,).

    Score ``value_k * (mean_k + alpha * sqrt(var_k))`` (-inf if ineligible); the best eligible score wins, exact
    ties split evenly (:func:`~bandit.kernels.propensity.argmax_tie_probs`); then the exploration floor and, if
    ``sample``, the draw (:func:`~bandit.kernels.decide.draw_mixed`). Fills ``probs`` and ``scores`` (K,);
    returns the drawn arm (-1 when not sampling).
    """
    for k in range(values.shape[0]):
        if eligible[k]:
            scores[k] = ucb_score(mean[k], var[k], values[k], alpha)
        else:
            scores[k] = -np.inf
    propensity.argmax_tie_probs(scores, eligible, probs)
    return decide.draw_mixed(probs, eligible, floor, sample, st)


@njit(cache=True)
def linucb_choose(context, A_inv, theta, values, eligible, alpha, floor, st, out):
    """One LinUCB decision in one compiled call: the raw ``context`` (d,) -> :func:`linucb_decide`.

    ``A_inv``, ``theta`` (K, D, D), (K, D): ridge inverses and coefficients (D = d, or d + 1 with the intercept
    appended); ``st`` (1,) uint64 the generator; ``out`` (rows, K) (:func:`~bandit.kernels.decide.decision_rows`)
    receives the probabilities and scores in rows 0 and 1, the rows after them are work space. Returns the arm, or
    STATUS_NON_FINITE / STATUS_SCORE_OVERFLOW (nothing drawn).
    """
    scratch = decide.work_space(out)
    status = decide.context_mean_var(context, A_inv, theta, scratch)
    if status < 0:
        return status
    K, D = theta.shape
    return linucb_decide(scratch[2 * D : 2 * D + K], scratch[2 * D + K : 2 * D + 2 * K], values, eligible, alpha,
                         floor, True, st, out[0], out[1])


@njit(cache=True, inline="always")
def linucb_probability_rows(mean, var, values, eligible, alpha, floor, out_probs, out_scores):
    """:func:`linucb_decide`'s probabilities and scores for n rows, without drawing (arguments as
    :func:`linucb_decide_rows`): the scores of all rows first (a loop the compiler vectorises), then the tie split
    and floor of every row (:func:`~bandit.kernels.decide.argmax_probs_rows`); the same arithmetic, bit for bit."""
    one_mean = mean.shape[0] == 1
    one_elig = eligible.shape[0] == 1
    n, K = out_scores.shape
    for i in range(n):
        r = 0 if one_mean else i
        e = 0 if one_elig else i
        for k in range(K):
            s = ucb_score(mean[r, k], var[r, k], values[k], alpha)
            out_scores[i, k] = s if eligible[e, k] else -np.inf
    decide.argmax_probs_rows(out_scores, eligible, floor, out_probs)


#: Rows per chunk of :func:`linucb_probabilities` (its means and variances stay in the L2 cache).
_CHUNK = 1024


@njit(cache=True, nogil=True)
def linucb_probabilities(X, A_inv, theta, values, eligible, alpha, floor, out_probs, out_scores):
    """LinUCB's probabilities and scores (n, K) for the raw contexts ``X`` (n, d) in one call, without drawing:
    :func:`~bandit.kernels.decide.rows_mean_var` and :func:`linucb_probability_rows` chunk by chunk of
    :data:`_CHUNK` rows, so the (n, K) means and variances are never stored (row ``i`` is bit-identical to
    :func:`linucb_choose` of ``X[i]``). ``eligible`` (n, K) or (1, K). Returns STATUS_OK, or the status of
    ``rows_mean_var`` (outputs then incomplete). Releases the GIL."""
    n = X.shape[0]
    K = theta.shape[0]
    mean = np.empty((_CHUNK, K))
    var = np.empty((_CHUNK, K))
    one_elig = eligible.shape[0] == 1
    for r0 in range(0, n, _CHUNK):
        r1 = min(n, r0 + _CHUNK)
        m = mean[: r1 - r0]
        v = var[: r1 - r0]
        status = decide.rows_mean_var(X[r0:r1], A_inv, theta, m, v)
        if status < 0:
            return status
        linucb_probability_rows(m, v, values, eligible if one_elig else eligible[r0:r1], alpha, floor,
                                out_probs[r0:r1], out_scores[r0:r1])
    return STATUS_OK


@njit(cache=True, nogil=True)
def linucb_decide_rows(mean, var, values, eligible, alpha, floor, sample, rng_state, seeds, out_idx, out_probs,
                       out_scores):
    """:func:`linucb_decide` for n rows: ``mean``, ``var`` (n, K) or (1, K) (broadcast), ``eligible`` (n, K) or
    (1, K); row ``i`` draws from ``seeds[i]`` or, when ``seeds`` is empty, from ``rng_state`` in order.
    Fills ``out_idx`` (n,), ``out_probs`` and ``out_scores`` (n, K); without ``sample`` (probabilities only, the
    off-policy evaluation path: :func:`linucb_probability_rows`) ``out_idx`` is left as it is. Releases the
    GIL."""
    if not sample:
        linucb_probability_rows(mean, var, values, eligible, alpha, floor, out_probs, out_scores)
        return
    one_mean = mean.shape[0] == 1
    one_elig = eligible.shape[0] == 1
    st_row = np.empty(1, dtype=np.uint64)
    use_seeds = seeds.shape[0] > 0
    for i in range(out_idx.shape[0]):
        st = decide.row_state(use_seeds, seeds, i, st_row, rng_state)
        r = 0 if one_mean else i
        out_idx[i] = linucb_decide(mean[r], var[r], values, eligible[0 if one_elig else i], alpha, floor, sample, st,
                                   out_probs[i], out_scores[i])


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
            else check_precision(l2, "l2")
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

    def _choose_one(self, x: np.ndarray, eligible: np.ndarray, st: np.ndarray, out: np.ndarray) -> int:
        args = (x, self._A_inv, self._theta, self._values, eligible, self.alpha, self.exploration_floor, st, out)
        return (self._choose_entry or self._bind("choose", linucb_choose, args))(*args)

    def _choose_many(
        self, X: np.ndarray, eligible: np.ndarray, seeds: np.ndarray | None, sample: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if sample:
            return super()._choose_many(X, eligible, seeds, sample)
        idx, probs, scores = self._batch_outputs(X.shape[0])
        status = linucb_probabilities(X, self._A_inv, self._theta, self._values, eligible, self.alpha,
                                      self.exploration_floor, probs, scores)
        if status < 0:
            raise self._batch_error(status, X)
        return idx, probs, scores

    def _decide_rows(
        self, X: np.ndarray, mean: np.ndarray, var: np.ndarray, eligible: np.ndarray, sample: bool, seeds: np.ndarray,
        idx: np.ndarray, probs: np.ndarray, scores: np.ndarray,
    ) -> None:
        linucb_decide_rows(mean, var, self._values, eligible, self.alpha, self.exploration_floor, sample,
                           self._rng_state, seeds, idx, probs, scores)
