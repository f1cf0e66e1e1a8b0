"""Fused per-policy glue kernels: validate-finite + score + probabilities + draw in one compiled call.

These kernels only combine the primitives of :mod:`bandit.kernels.linalg`, :mod:`~bandit.kernels.scoring`,
:mod:`~bandit.kernels.propensity` and :mod:`~bandit.kernels.rng`, so that one ``choose`` or ``update`` costs one
dispatch from Python. All arrays are float64 C-contiguous unless stated; K arms, D = d (+1 with an intercept).

A decision row is made by :func:`_decide_row` for every model ``kind`` (UCB, GREEDY, LINTS, LOGTS, UNIFORM),
from the per-arm posterior mean and variance of the linear predictor ``s_k = theta_k . x``. Single decisions
(:func:`choose_one`) and batches (:func:`choose_rows`) share it, and their mean/variance kernels are bit-identical
(:mod:`~bandit.kernels.scoring`), so ``choose`` and ``choose_batch`` / ``action_probabilities`` agree bit for bit.

Hot-path notes: the contexts are passed raw, (d,) or (n, d); an intercept (``D = d + 1``) is appended inside
the kernels, never by copying ``X``. The small per-row helpers are compiled inline (``inline="always"``): a
call to a non-inlined numba function with array arguments costs about as much as a whole UCB decision.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from bandit.kernels import linalg, propensity, rng, scoring

#: Hash of the kernel modules compiled into this module's numba cache. numba's on-disk cache (``cache=True``) is
#: keyed on the content of each function's own file only, so after an edit of a linked module the cached fused
#: kernels would keep running the old code; changing this value (which tests/bandit/test_kernels.py checks against
#: the sources) changes this file and invalidates them.
LINKED_SOURCES = ("linalg", "propensity", "rng", "scoring")
LINKED_SOURCES_SHA256 = "71f20b3c4bf96d4f"

#: Kernel status: the context (or a row of it) holds NaN or inf. Nothing was changed.
STATUS_NON_FINITE = -1
#: Kernel status: the context is so large that a score overflowed (inf/NaN). Nothing was drawn.
STATUS_SCORE_OVERFLOW = -4

# model kinds of _decide_row
UCB = 0
GREEDY = 1
LINTS = 2
LOGTS = 3
UNIFORM = 4

#: Placeholder context for policies that ignore the context.
EMPTY = np.empty(0, dtype=np.float64)
#: Placeholder seed when the policy's own generator is used.
ZERO_SEED = np.uint64(0)
#: Placeholder per-row seeds when rows draw from the policy's own generator.
NO_SEEDS = np.empty(0, dtype=np.uint64)


def seed_state(seed: np.uint64) -> np.ndarray:
    """A generator state array (length-1 uint64) for ``seed``; advanced in place by the draws."""
    return np.array([seed], dtype=np.uint64)


@njit(cache=True)
def fill_context(context, intercept, x):
    """Copy ``context`` (d,) into ``x`` (D,), appending 1.0 when ``intercept``; False if a value is not finite.

    ``x`` is only partially written when False is returned (it is a scratch buffer).
    """
    d = context.shape[0]
    for j in range(d):
        v = context[j]
        if not np.isfinite(v):
            return False
        x[j] = v
    if intercept:
        x[d] = 1.0
    return True


@njit(cache=True)
def _uniform_pick(eligible, u):
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
def _draw_categorical(probs, st):
    """Draw an index from ``probs`` with one uniform; never returns an index of probability 0."""
    k = rng.sample_categorical(probs, rng.next_uniform(st))
    if probs[k] > 0.0:
        return k
    for j in range(probs.shape[0] - 1, -1, -1):  # rounding at the top of the cumulative sum
        if probs[j] > 0.0:
            return j
    return k


@njit(cache=True)
def _argmax_random_ties(scores, eligible, st):
    """Argmax of ``scores`` over eligible arms; exact ties broken uniformly with a draw from ``st``."""
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


@njit(cache=True, inline="always")
def _row_state(use_seeds, seeds, i, st_row, rng_state):
    """Generator state of row ``i``: ``st_row`` (1,) re-seeded with ``seeds[i]`` when ``use_seeds``, else the
    shared ``rng_state`` (advanced row after row)."""
    if use_seeds:
        st_row[0] = seeds[i]
        return st_row
    return rng_state


@njit(cache=True, inline="always")
def _decide_argmax(kind, mean, var, values, eligible, param, floor, sample, st, probs, scores):
    """:func:`_decide_row` for the deterministic kinds UCB, GREEDY and UNIFORM (inlined into its callers)."""
    K = values.shape[0]
    for k in range(K):
        if not eligible[k]:
            scores[k] = -np.inf
        elif kind == UCB:
            scores[k] = values[k] * (mean[k] + param * math.sqrt(max(var[k], 0.0)))
        elif kind == GREEDY:
            scores[k] = values[k] * mean[k]
        else:
            scores[k] = 0.0
    propensity.argmax_tie_probs(scores, eligible, probs)
    if kind == GREEDY:
        propensity.uniform_mix(probs, eligible, param, probs)
    if floor > 0.0:  # a zero floor leaves the probabilities exactly as they are
        propensity.uniform_mix(probs, eligible, floor, probs)
    if not sample:
        return -1
    return _draw_categorical(probs, st)


@njit(cache=True)
def _decide_sampled(kind, mean, var, values, eligible, param, floor, sample, st, probs, scores, mu, sd):
    """:func:`_decide_row` for the Thompson-sampling kinds LINTS and LOGTS."""
    K = values.shape[0]
    for k in range(K):
        sd[k] = param * math.sqrt(max(var[k], 0.0))
    if kind == LINTS:
        for k in range(K):
            mu[k] = values[k] * mean[k]
            sd[k] *= values[k]
        propensity.gaussian_argmax_probs(mu, sd, eligible, probs)
    else:
        propensity.logistic_value_argmax_probs(mean, sd, values, eligible, probs)
    propensity.uniform_mix(probs, eligible, floor, probs)
    if not sample:
        for k in range(K):
            if not eligible[k]:
                scores[k] = -np.inf
            elif kind == LINTS:
                scores[k] = mu[k]
            else:
                scores[k] = values[k] / (1.0 + math.exp(-mean[k]))
        return -1
    u = 1.0
    if floor > 0.0:
        u = rng.next_uniform(st)
    for k in range(K):
        if not eligible[k]:
            scores[k] = -np.inf
        else:
            z = rng.next_normal(st)
            if kind == LINTS:
                scores[k] = mu[k] + sd[k] * z
            else:
                s = mean[k] + sd[k] * z
                mu[k] = s  # the sampled log-odds (mu is free for LOGTS): the draw compares on them
                scores[k] = values[k] / (1.0 + math.exp(-s))
    if u < floor:
        return _uniform_pick(eligible, rng.next_uniform(st))
    if kind == LINTS:
        return _argmax_random_ties(scores, eligible, st)
    return _logistic_argmax(scores, mu, values, eligible, st)


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
def _logistic_argmax(scores, logodds, values, eligible, st):
    """Argmax of the sampled logistic scores over the eligible arms, ties resolved on the log-odds scale
    (:func:`_logistic_beats`); draws that stay exactly tied (probability zero) are split uniformly with ``st``.

    The first pass is :func:`_argmax_random_ties`'s; only tied float scores (a saturated sigmoid) take the
    second, exact pass.
    """
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


@njit(cache=True, inline="always")
def _decide_row(kind, mean, var, values, eligible, param, floor, sample, st, probs, scores, mu, sd):
    """Probabilities, scores and (if ``sample``) the drawn arm for one context.

    Parameters
    ----------
    kind : int
        UCB (score ``value*(mean + param*sqrt(var))``, argmax, ties split), GREEDY (score ``value*mean``; greedy
        set mixed with ``param`` = epsilon uniform), LINTS (sampled ``value*N(mean, param^2 var)``), LOGTS
        (sampled ``value*sigmoid(N(mean, param^2 var))``) or UNIFORM.
    mean, var : (K,)
        Posterior mean and variance of ``theta_k . x`` (ignored for UNIFORM).
    values : (K,)
        Arm values.
    eligible : (K,) bool
        At least one True.
    param : float
        alpha (UCB), epsilon (GREEDY), posterior scale (LINTS, LOGTS).
    floor : float
        exploration_floor.
    sample : bool
        Draw an arm (advancing ``st``); otherwise only probabilities (scores hold the mean scores).
    st : (1,) uint64
        Generator state.
    probs, scores : (K,)
        Outputs. ``scores`` is -inf for ineligible arms.
    mu, sd : (K,)
        Scratch.

    Returns
    -------
    int
        The drawn arm (or -1 when ``sample`` is False).
    """
    if kind == UCB or kind == GREEDY or kind == UNIFORM:
        return _decide_argmax(kind, mean, var, values, eligible, param, floor, sample, st, probs, scores)
    return _decide_sampled(kind, mean, var, values, eligible, param, floor, sample, st, probs, scores, mu, sd)


@njit(cache=True)
def choose_one(kind, context, A_inv, theta, values, eligible, param, floor, st, out, scratch):
    """One contextual decision: finite check, per-arm mean/variance, probabilities, draw.

    Parameters
    ----------
    kind : int
        UCB, GREEDY, LINTS or LOGTS (see :func:`_decide_row`).
    context : (d,)
        Raw context. ``D = theta.shape[1]`` is ``d`` (no intercept) or ``d + 1`` (a constant 1.0 is appended).
    A_inv, theta : (K, D, D), (K, D)
        Posterior covariance factor (ridge inverse, or Laplace covariance) and mean of each arm.
    values : (K,)
    eligible : (K,) bool
    param, floor : float
        See :func:`_decide_row`.
    st : (1,) uint64
        Generator state the draws come from, advanced in place (the policy's own, or a per-event seed).
    out : (2, K)
        Output probabilities (row 0) and scores (row 1).
    scratch : (2 D + 4 K,)
        Work space.

    Returns
    -------
    int
        The chosen arm, or STATUS_NON_FINITE / STATUS_SCORE_OVERFLOW (nothing drawn, ``st`` unchanged).
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
    return _decide_row(kind, mean, var, values, eligible, param, floor, True, st, out[0], out[1],
                       scratch[2 * D + 2 * K : 2 * D + 3 * K], scratch[2 * D + 3 * K : 2 * D + 4 * K])


def choose_one_scratch(n_dims: int, n_arms: int) -> np.ndarray:
    """The ``scratch`` array :func:`choose_one` needs for D = ``n_dims`` and K = ``n_arms``."""
    return np.empty(2 * n_dims + 4 * n_arms)


@njit(cache=True)
def decide_rows(kind, mean, var, values, eligible, param, floor, sample, rng_state, use_seeds, seeds, out_idx,
                out_probs, out_scores):
    """:func:`_decide_row` for n rows.

    Parameters
    ----------
    mean, var : (n, K) or (1, K)
        Per-row posterior mean/variance of each arm's linear predictor (one row broadcast to all rows).
    eligible : (n, K) or (1, K) bool
    seeds : (n,) uint64
        Per-row seeds (event ids), used when ``use_seeds``; otherwise rows draw from ``rng_state`` in order.
    out_idx : (n,) int64
    out_probs, out_scores : (n, K)

    Returns
    -------
    int
        0.
    """
    n = out_idx.shape[0]
    K = values.shape[0]
    mu = np.empty(K)
    sd = np.empty(K)
    st_row = np.empty(1, dtype=np.uint64)
    one_mean = mean.shape[0] == 1
    one_elig = eligible.shape[0] == 1
    for i in range(n):
        st = _row_state(use_seeds, seeds, i, st_row, rng_state)
        r = 0 if one_mean else i
        e = 0 if one_elig else i
        out_idx[i] = _decide_row(kind, mean[r], var[r], values, eligible[e], param, floor, sample, st,
                                 out_probs[i], out_scores[i], mu, sd)
    return 0


@njit(cache=True)
def choose_rows(kind, X, A_inv, theta, values, eligible, param, floor, sample, rng_state, use_seeds, seeds, out_idx,
                out_probs, out_scores):
    """Score every row of ``X`` (:func:`scoring.linear_mean_var_batch`), then :func:`decide_rows`.

    Row ``i`` gets exactly the probabilities and scores (and, with the same generator state, the arm) that
    :func:`choose_one` gives for ``X[i]``.

    Parameters
    ----------
    X : (n, d)
        Raw contexts; ``D = theta.shape[1]`` is ``d`` or ``d + 1`` (intercept appended on the fly, no copy).
    A_inv, theta : (K, D, D), (K, D)
    Others
        As in :func:`decide_rows`.

    Returns
    -------
    int
        0, or STATUS_NON_FINITE (a row of ``X`` holds NaN/inf) / STATUS_SCORE_OVERFLOW; on a negative status
        nothing was drawn (``rng_state`` unchanged) and the outputs are unspecified.
    """
    n = X.shape[0]
    K = theta.shape[0]
    mean = np.empty((n, K))
    var = np.empty((n, K))
    if scoring.linear_mean_var_batch(A_inv, theta, X, mean, var) >= 0:
        return STATUS_NON_FINITE
    for i in range(n):
        for k in range(K):
            if not (np.isfinite(mean[i, k]) and np.isfinite(var[i, k])):
                return STATUS_SCORE_OVERFLOW
    return decide_rows(kind, mean, var, values, eligible, param, floor, sample, rng_state, use_seeds, seeds, out_idx,
                       out_probs, out_scores)


@njit(cache=True, inline="always")
def _update_buffers(context, D, scratch):
    """``(finite, x, work)`` for a single update: ``x`` = ``scratch[:D]`` filled by :func:`fill_context` (False if
    ``context`` holds NaN or inf) and ``work`` = the rest of ``scratch`` (3 D,) as (2, D)."""
    x = scratch[:D]
    return fill_context(context, D > context.shape[0], x), x, scratch[D:].reshape((2, D))


@njit(cache=True)
def ridge_update_one(context, k, reward, A, A_inv, b, theta, n_since_refactor, gamma, l2, refactor_every, scratch):
    """Finite check (+ intercept) and :func:`linalg.ridge_update_work` with weight 1.

    ``context`` is (d,) with ``D = b.shape[1]`` equal to ``d`` or ``d + 1``; ``scratch`` is (3 D,).
    STATUS_NON_FINITE (or any negative status) leaves the state untouched.
    """
    finite, x, work = _update_buffers(context, b.shape[1], scratch)
    if not finite:
        return STATUS_NON_FINITE
    return linalg.ridge_update_work(A, A_inv, b, theta, n_since_refactor, k, x, reward, 1.0, gamma, l2,
                                    refactor_every, work)


@njit(cache=True)
def logistic_update_one(context, k, y, P, Sigma, m, n_since_refactor, gamma, l2, refactor_every, scratch):
    """Finite check (+ intercept) and :func:`linalg.logistic_update_work`; ``scratch`` is (3 D,).

    STATUS_NON_FINITE (or any negative status) leaves the state untouched.
    """
    finite, x, work = _update_buffers(context, m.shape[1], scratch)
    if not finite:
        return STATUS_NON_FINITE
    return linalg.logistic_update_work(P, Sigma, m, n_since_refactor, k, x, y, gamma, l2, refactor_every, work)


def update_one_scratch(n_dims: int) -> np.ndarray:
    """The ``scratch`` array :func:`ridge_update_one` and :func:`logistic_update_one` need for D = ``n_dims``."""
    return np.empty(3 * n_dims)


@njit(cache=True)
def _gamma_draw(shape, st):
    """One Gamma(shape, 1) draw (Marsaglia & Tsang 2000; shape < 1 via the U**(1/shape) boost)."""
    boost = 1.0
    a = shape
    if a < 1.0:
        boost = rng.next_uniform(st) ** (1.0 / a)
        a += 1.0
    d = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    while True:
        z = rng.next_normal(st)
        v = 1.0 + c * z
        if v <= 0.0:
            continue
        v = v * v * v
        u = rng.next_uniform(st)
        if u < 1.0 - 0.0331 * z * z * z * z or math.log(u) < 0.5 * z * z + d * (1.0 - v + math.log(v)):
            return d * v * boost


@njit(cache=True)
def beta_draw_rows(alpha, beta, values, eligible, floor, rng_state, use_seeds, seeds, out_idx, out_scores):
    """Thompson draws for Beta-Bernoulli arms: arm ``argmax_k value_k * Beta(alpha_k, beta_k)`` per row.

    With probability ``floor`` (one uniform per row) the arm is instead uniform over the eligible arms; the
    sampled scores are reported either way.

    Parameters
    ----------
    alpha, beta, values : (K,)
    eligible : (n, K) or (1, K) bool
    seeds : (n,) uint64
        Per-row seeds when ``use_seeds``; otherwise rows draw from ``rng_state`` in order.
    out_idx : (n,) int64
    out_scores : (n, K)
    """
    n = out_idx.shape[0]
    K = values.shape[0]
    st_row = np.empty(1, dtype=np.uint64)
    one_elig = eligible.shape[0] == 1
    for i in range(n):
        st = _row_state(use_seeds, seeds, i, st_row, rng_state)
        elig = eligible[0] if one_elig else eligible[i]
        u = 1.0
        if floor > 0.0:
            u = rng.next_uniform(st)
        for k in range(K):
            if elig[k]:
                g1 = _gamma_draw(alpha[k], st)
                g2 = _gamma_draw(beta[k], st)
                total = g1 + g2
                # both draws can underflow to 0 for tiny shapes; the Beta draw is then 0 or 1 with odds alpha:beta
                b = g1 / total if total > 0.0 else (1.0 if rng.next_uniform(st) * (alpha[k] + beta[k]) < alpha[k] else 0.0)
                out_scores[i, k] = values[k] * b
            else:
                out_scores[i, k] = -np.inf
        if u < floor:
            out_idx[i] = _uniform_pick(elig, rng.next_uniform(st))
        else:
            out_idx[i] = _argmax_random_ties(out_scores[i], elig, st)
    return 0
