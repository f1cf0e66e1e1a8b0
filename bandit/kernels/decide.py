"""Building blocks of a decision (numba): per-arm mean/variance from a context, draws, the exploration floor.

Every policy file composes its own decision rule from these (``linucb_decide`` in
:mod:`bandit.policies.linucb`, ``linear_ts_decide`` in :mod:`bandit.policies.linear_ts`, ...): the rule scores the
arms and computes the exact probabilities (:mod:`~bandit.kernels.propensity`), then this module mixes the
exploration floor and draws.

The exploration floor is mixed here and nowhere else. Every policy's distribution is
``p = (1 - floor) p_policy + floor / |eligible|`` (:func:`mix_floor`), and its draw follows this mixture exactly:

- a policy with deterministic scores draws from the mixed distribution itself (:func:`draw_mixed`);
- a sampler (Thompson sampling) tosses a coin first (:func:`floor_coin`, before its score draws) and, when the coin
  falls below the floor, offers a uniform eligible arm instead of its argmax (:func:`floor_pick`).

Generators are (1,) uint64 states of :mod:`bandit.kernels.rng`, advanced in place; rows of a batch draw from the
policy's state in order, or each from its own per-event seed (:func:`row_state`).

Hot-path note: the small helpers are compiled inline (``inline="always"``) where they take arrays; a call to a
non-inlined numba function with array arguments costs about as much as a whole UCB decision.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from bandit.kernels import propensity, rng, scoring
from bandit.kernels.dense import fill_context
from bandit.kernels.status import STATUS_NON_FINITE, STATUS_OK, STATUS_SCORE_OVERFLOW

__all__ = [
    "EMPTY",
    "NO_SEEDS",
    "argmax_probs_rows",
    "argmax_random_ties",
    "context_mean_var",
    "decision_rows",
    "draw_categorical",
    "draw_mixed",
    "floor_coin",
    "floor_pick",
    "logistic_argmax",
    "mix_floor",
    "row_state",
    "rows_mean_var",
    "uniform_pick",
    "work_space",
]

#: Kernel modules compiled into this module's numba cache (see tests/bandit/test_kernels.py).
LINKED_SOURCES = ("dense", "logistic", "propensity", "rng", "scoring", "status")
LINKED_SOURCES_SHA256 = "64ddc52908c24089"

#: Placeholder context for policies that ignore the context.
EMPTY = np.empty(0, dtype=np.float64)
#: Per-row seeds of a batch whose rows draw from the policy's own generator (none).
NO_SEEDS = np.empty(0, dtype=np.uint64)


# ---------------------------------------------------------------------------------------------------------------
# posterior mean and variance of each arm's linear predictor
# ---------------------------------------------------------------------------------------------------------------


def decision_rows(n_dims: int, n_arms: int) -> int:
    """Rows of the (rows, K) float buffer of one decision for D = ``n_dims`` and K = ``n_arms``.

    Rows 0 and 1 receive the probabilities and the scores (the decision keeps them); the rows after them are the
    kernel's work space, ``out.reshape(-1)[2 K:]`` (:func:`work_space`), at least 2 D + 4 K floats:
    ``[x (D) | w (D) | mean (K) | var (K) | work (2 K)]`` (:func:`context_mean_var` fills x to var). A fresh
    buffer per decision means no work space is shared between decisions.
    """
    return 2 + -(-(2 * n_dims + 4 * n_arms) // n_arms)


@njit(cache=True, inline="always")
def work_space(out):
    """The work space of a decision buffer ``out`` (rows, K) of :func:`decision_rows`: its rows after the first two,
    as one 1-D view."""
    return out.reshape(-1)[2 * out.shape[1] :]


@njit(cache=True, inline="always")
def context_mean_var(context, A_inv, theta, scratch):
    """Mean ``theta_k . x`` and variance ``x^T A_inv[k] x`` of every arm for one raw context, into ``scratch``
    (the :func:`work_space` of a decision).

    ``context`` is (d,); ``D = theta.shape[1]`` is ``d`` or ``d + 1`` (a constant 1.0 appended). The results are
    ``scratch[2D : 2D + K]`` (mean) and ``scratch[2D + K : 2D + 2K]`` (variance), bit-identical to row ``i`` of
    :func:`rows_mean_var` for ``X[i] = context``.

    Returns
    -------
    int
        STATUS_OK, STATUS_NON_FINITE (a NaN/inf feature) or STATUS_SCORE_OVERFLOW (a mean or variance overflowed).
    """
    K, D = theta.shape
    x = scratch[:D]
    if not fill_context(context, D > context.shape[0], x):
        return STATUS_NON_FINITE
    mean = scratch[2 * D : 2 * D + K]
    var = scratch[2 * D + K : 2 * D + 2 * K]
    scoring._mean_var_row(A_inv, theta, x, scratch[D : 2 * D], mean, var)
    for k in range(K):
        if not (np.isfinite(mean[k]) and np.isfinite(var[k])):
            return STATUS_SCORE_OVERFLOW
    return STATUS_OK


@njit(cache=True, nogil=True)
def rows_mean_var(X, A_inv, theta, mean, var):
    """:func:`context_mean_var` for every row of ``X`` (n, d) into ``mean``, ``var`` (n, K); returns a status.

    STATUS_NON_FINITE when a row holds NaN/inf, STATUS_SCORE_OVERFLOW when a mean or variance overflowed (the
    outputs are then unspecified), else STATUS_OK. Releases the GIL.
    """
    found = scoring.linear_mean_var_batch(A_inv, theta, X, mean, var)
    if found == scoring.OVERFLOW:
        return STATUS_SCORE_OVERFLOW
    if found >= 0:
        return STATUS_NON_FINITE
    return STATUS_OK


# ---------------------------------------------------------------------------------------------------------------
# draws
# ---------------------------------------------------------------------------------------------------------------


@njit(cache=True, inline="always")
def row_state(use_seeds, seeds, i, st_row, rng_state):
    """Generator state of row ``i``: ``st_row`` (1,) re-seeded with ``seeds[i]`` when ``use_seeds``, else the
    shared ``rng_state`` (advanced row after row)."""
    if use_seeds:
        st_row[0] = seeds[i]
        return st_row
    return rng_state


@njit(cache=True)
def uniform_pick(eligible, u):
    """The floor(u * |E|)-th eligible arm: a uniform draw over the eligible arms from one uniform ``u``."""
    n_elig = np.int64(0)
    for k in range(eligible.shape[0]):
        if eligible[k]:
            n_elig += 1
    target = np.int64(u * n_elig)
    if target >= n_elig:
        target = n_elig - 1
    seen = np.int64(0)
    last = -1
    for k in range(eligible.shape[0]):
        if eligible[k]:
            if seen == target:
                return k
            seen += 1
            last = k
    return last


@njit(cache=True)
def draw_categorical(probs, st):
    """Draw an index from ``probs`` with one uniform; never returns an index of probability 0."""
    k = rng.sample_categorical(probs, rng.next_uniform(st))
    if probs[k] > 0.0:
        return k
    for j in range(probs.shape[0] - 1, -1, -1):  # rounding at the top of the cumulative sum
        if probs[j] > 0.0:
            return j
    return k


@njit(cache=True, inline="always")
def _eligible_max(scores, eligible):
    """``(best, n_best, first)``: the largest eligible score, how many eligible arms have it, the first of them
    (-1 when none is eligible)."""
    best = -np.inf
    n_best = 0
    first = -1
    for k in range(scores.shape[0]):
        if eligible[k]:
            s = scores[k]
            if first < 0 or s > best:
                best = s
                n_best = 1
                first = k
            elif s == best:
                n_best += 1
    return best, n_best, first


@njit(cache=True)
def argmax_random_ties(scores, eligible, st):
    """Argmax of ``scores`` over eligible arms; exact ties broken uniformly with a draw from ``st``."""
    best, n_best, first = _eligible_max(scores, eligible)
    if n_best == 1:
        return first
    target = int(rng.next_uniform(st) * n_best)
    if target >= n_best:
        target = n_best - 1
    seen = np.int64(0)
    for k in range(scores.shape[0]):
        if eligible[k] and scores[k] == best:
            if seen == target:
                return k
            seen += 1
    return first


@njit(cache=True)
def _logistic_beats(k, j, scores, logodds, values):
    """Whether arm ``k``'s sampled ``values[k] sigmoid(logodds[k])`` exceeds arm ``j``'s in exact arithmetic.

    The float scores decide, except when they are equal and the values are too: ``sigmoid`` saturates to 1.0 in
    float64 above log-odds ~37 (and loses resolution well before), while ``v sigmoid(s)`` is strictly increasing
    in ``s``, so the log-odds decide (exactly what the quadrature of
    :func:`~bandit.kernels.propensity.logistic_value_argmax_probs` integrates: it works on the log-odds scale).
    """
    if scores[k] != scores[j]:
        return scores[k] > scores[j]
    return values[k] == values[j] and logodds[k] > logodds[j]


@njit(cache=True)
def logistic_argmax(scores, logodds, values, eligible, st):
    """Argmax of the sampled logistic scores over the eligible arms, ties resolved on the log-odds scale
    (:func:`_logistic_beats`); draws that stay exactly tied (probability zero) are split uniformly with ``st``.

    The first pass is :func:`argmax_random_ties`'s; only tied float scores (a saturated sigmoid) take the
    second, exact pass.
    """
    best, n_best, first = _eligible_max(scores, eligible)
    if n_best == 1:
        return first
    top = first
    for k in range(first + 1, scores.shape[0]):
        if eligible[k] and scores[k] == best and _logistic_beats(k, top, scores, logodds, values):
            top = k
    n_best = 0
    for k in range(first, scores.shape[0]):
        if eligible[k] and scores[k] == best and not _logistic_beats(top, k, scores, logodds, values):
            n_best += 1
    if n_best == 1:
        return top
    target = int(rng.next_uniform(st) * n_best)
    if target >= n_best:
        target = n_best - 1
    seen = np.int64(0)
    for k in range(first, scores.shape[0]):
        if eligible[k] and scores[k] == best and not _logistic_beats(top, k, scores, logodds, values):
            if seen == target:
                return k
            seen += 1
    return top


# ---------------------------------------------------------------------------------------------------------------
# the exploration floor (the one place it is mixed)
# ---------------------------------------------------------------------------------------------------------------


@njit(cache=True, inline="always")
def mix_floor(probs, eligible, floor):
    """``probs <- (1 - floor) probs + floor / |eligible|`` on the eligible arms, in place (a zero floor leaves
    ``probs`` exactly as it is)."""
    if floor > 0.0:
        propensity.uniform_mix(probs, eligible, floor, probs)


@njit(cache=True, nogil=True)
def argmax_probs_rows(scores, eligible, floor, out):
    """The probabilities of a deterministic policy for n rows: every row of ``out`` (n, K) is bit-identical to
    :func:`~bandit.kernels.propensity.argmax_tie_probs` of ``scores[i]`` (n, K) followed by :func:`mix_floor`
    (``eligible`` (n, K) or (1, K), broadcast).

    Indexes the 2-D arrays instead of taking a view of each row, which costs about as much as the row's arithmetic;
    releases the GIL.
    """
    n, K = out.shape
    one_elig = eligible.shape[0] == 1
    keep = 1.0 - floor
    for i in range(n):
        e = 0 if one_elig else i
        best = np.nan
        n_best = 0
        n_elig = 0
        for k in range(K):
            if eligible[e, k]:
                n_elig += 1
                s = scores[i, k] if scores[i, k] == scores[i, k] else -np.inf  # NaN counts as -inf
                if s == best:
                    n_best += 1
                elif not s < best:  # first eligible arm (best is NaN) or a larger score
                    best = s
                    n_best = 1
        share = 1.0 / n_best if n_best > 0 else 0.0
        uniform = floor / n_elig if n_elig > 0 else 0.0
        for k in range(K):
            p = 0.0
            if eligible[e, k]:
                s = scores[i, k] if scores[i, k] == scores[i, k] else -np.inf
                if s == best:
                    p = share
                if floor > 0.0:
                    p = keep * p + uniform
            out[i, k] = p


@njit(cache=True, inline="always")
def draw_mixed(probs, eligible, floor, sample, st):
    """Mix the floor into the deterministic policy's ``probs`` (:func:`mix_floor`) and, if ``sample``, draw an arm
    from the mixture with one uniform of ``st``; -1 when not sampling."""
    mix_floor(probs, eligible, floor)
    if not sample:
        return -1
    return draw_categorical(probs, st)


@njit(cache=True)
def floor_coin(floor, st):
    """A sampler's exploration coin, tossed before its score draws: a uniform of ``st``, or 1.0 (no draw) when
    ``floor`` is 0."""
    if floor > 0.0:
        return rng.next_uniform(st)
    return 1.0


@njit(cache=True)
def floor_pick(coin, floor, eligible, st):
    """A uniform eligible arm when the ``coin`` of :func:`floor_coin` fell below ``floor`` (one more uniform of
    ``st``), else -1 (the sampler offers its argmax)."""
    if coin < floor:
        return uniform_pick(eligible, rng.next_uniform(st))
    return -1
