r"""Intervals that stay valid when a target has only a handful of informative rows.

With fewer than :data:`~offline_eval.diagnostics.INFORMATIVE_ROWS_MIN` informative rows -- rows with a positive
importance weight whose reward is off the end of its range where the metric's mass sits
(:func:`~offline_eval.diagnostics.informative_rows`: the fewer of those above the range's low end and those below
its high end; e.g. fewer than 10 conversions among the target's offers, or fewer than 10 churners of a retention
flag that is 1 for nearly everyone) -- the normal, delta-method and empirical-likelihood intervals rest on a
variance estimated from those few rows. They then cover far less than they promise: with about 2.5 conversions
per log every estimator covered 0.56-0.75 at a nominal 0.95, and a target none of whose rows converted got DR and
DM intervals of zero width, ``[0, 0]``. The same holds mirrored: for a [0, 1] retention flag with about 3 zeros
among 10^5 rows (uniform logging of 3 arms, 200 seeded logs), counting non-zero rewards found ~3 x 10^4
informative rows per target and applied no floor; DR, SNDR, SwitchDR, DROS and the recommended blend covered 0.42
(the blend's median interval was 5e-7 wide), DM 0.86, the lifts 0.85-0.88, a paired DR difference 0.63, and
``rollout_report`` declared a retention guardrail sitting exactly at its margin non-inferior in 17% of logs
(nominal 1.25%). Counting the rows below the top, all are floored: 0.995-1.00 (blend width 1.1e-4), the guardrail
never passed at its margin (0 of 200) and its difference intervals covered 1.00.

In that regime every estimate's interval is widened to contain the **Chernoff-Hoeffding (KL) interval** of terms
whose mean is the target's value and whose range is known a priori: the weights are at most the weight bound ``W``
that exact propensities give (``max pi / mu``), and the rewards lie in ``reward_range`` (else the observed range).
Which terms is the paragraph "Which end" below; for revenue, whose mass sits at 0, they are the IPS terms
``w_i r_i``, each in ``[0, W r_hi]``. For i.i.d. terms ``X_i`` in ``[0, 1]`` with mean ``mu`` (rescaled from that
range), Hoeffding (1963, Theorem 1) bounds ``P(mean <= mu - t)`` and ``P(mean >= mu + t)`` by
``exp(-n KL(mu -+ t || mu))``, with ``KL`` the Bernoulli relative entropy; inverting at ``alpha / 2`` a side gives

.. math:: [\,\inf\{q \le \bar X : n\,KL(\bar X \| q) \le \ln(2/\alpha)\},\;
           \sup\{q \ge \bar X : n\,KL(\bar X \| q) \le \ln(2/\alpha)\}\,],

which covers the target's value with probability at least ``1 - alpha`` at **every** n, whatever the reward
distribution in the range (tightest when the terms sit at the two ends of the range, as conversions at one price
do, and conservative otherwise).

With no informative row (every weighted reward at the bottom) it is ``[r_lo, r_lo + W (r_hi - r_lo)
(1 - (alpha/2)^{1/n})]``, about ``W (r_hi - r_lo) ln(2/alpha) / n`` above ``r_lo``: the "rule of three" scaled by
the range. The lift over the logging policy is widened to contain ``[kl_V.low - kl_R.high, kl_V.high - kl_R.low]``,
the KL intervals of the target's value (in the form below) and of the logged rewards (weight 1, in
``[r_lo, r_hi]``) at ``alpha / 2`` each (a union bound: valid at every n too).

*Which end.* The terms are taken at the end of the range where the metric's mass sits, so that every row there
gives that end whatever its weight. The IPS terms ``w_i r_i`` do that only for a bottom at 0: with the mass at a
non-zero bottom (a monthly price paid in [5, 10] that most users keep at 5) or at the top (a retention flag, any
metric whose rare outcome is its low value), ``w_i r_i`` does not sit at an end -- the weights vary -- and its KL
interval is about as wide as IPS's own (a price paid in [5, 10] with about 2 weighted upgrades to 10 in 2,000 rows,
weights 0 or 3: median 1.36 over 200 seeded logs, against 0.064 below; a retention flag with 3 zeros in 2,000 rows:
about 9 times the interval below). When the target is supported (``E[w] = 1``: exact propensities and no support
deficit), the floor therefore uses, with the mass at the **bottom** (no more weighted rows above ``r_lo`` than below
``r_hi``), the terms ``u_i = r_lo + w_i (r_i - r_lo)`` in ``[r_lo, r_lo + W (r_hi - r_lo)]`` (mean
``r_lo (1 - mean w) + mean w r``; with ``r_lo = 0`` exactly ``w_i r_i``), and with the mass at the **top** the
mirrored terms ``v_i = r_hi - w_i (r_hi - r_i)`` in ``[r_hi - W (r_hi - r_lo), r_hi]`` (mean
``r_hi (1 - mean w) + mean w r``). Both have mean ``V`` because ``E[w] = 1``, and ``u_i = r_lo`` (``v_i = r_hi``)
on every row at that end, so the interval is as tight as the rare rows off it allow (the KL interval is
equivariant under ``x -> x - r_lo`` and ``x -> r_hi - x``, so these are the IPS form shifted and mirrored). With a
support deficit ``E[w] < 1`` and the IPS terms ``w_i r_i`` in ``[W min(r_lo, 0), W max(r_hi, 0)]`` are kept. Each
form's interval has level ``1 - alpha``; the end is chosen from the data, by the side with fewer rows off it. The
two counts add up to at least the weighted rows, so whenever the floor applies to 20 or more weighted rows the
other side has more than 10: the choice follows where the metric's mass sits, not noise. A range of one value
counts as its top (the value is that value).

The floor needs only ``n``, the means of ``w r`` and ``w``, the mean reward, the weight bound, the reward range, the
support deficit and the informative counts (on the observed range from
:class:`~offline_eval.diagnostics.RangeEnds`): mergeable scalars, so in-memory, streaming and Spark evaluations floor
identically. It applies to the *value* of the target
(IPS's unbiasedness: exact propensities and no support deficit); an estimator's own bias-aware widening still
applies on top. The interval kind gets the suffix ``"+kl"``.

**Clipping to a stated range** (:func:`clip_to_range`). When the range of one reward is stated a priori (an
estimator's ``reward_range``, a report metric's range), the quantity itself is confined: a policy's value, a mean of
rewards, lies in ``[r_lo, r_hi]``, and a difference of two values (a lift, a paired comparison) in ``[r_lo - r_hi,
r_hi - r_lo]``. Intersecting an interval with the set its quantity must lie in keeps its coverage -- whenever the
interval holds the true value, so does the intersection, since the true value lies in that set -- and only drops
values that are impossible (a churn rate's interval ``[-0.00021, 0.019]`` becomes ``[0, 0.019]``).
:func:`offline_eval.evaluate`, :func:`offline_eval.compare` and :func:`offline_eval.report.rollout_report` clip
every interval of a quantity with a stated range through that one function; the point estimate is left as it is,
and an interval never stops short of it (so it still contains the estimate when the estimate itself lies outside
the range, e.g. an IPS value above the top price). On a range only observed in the log nothing is clipped: the
quantity's own values may lie outside it.

References
----------
Hoeffding, W. (1963). Probability inequalities for sums of bounded random variables. JASA 58(301).
Garivier, A. and Cappe, O. (2011). The KL-UCB algorithm for bounded stochastic bandits and beyond. COLT.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from offline_eval.diagnostics import INFORMATIVE_ROWS_MIN

__all__ = [
    "SmallSampleFloor",
    "clip_to_range",
    "ips_kl_interval",
    "ips_kl_side",
    "ips_term_range",
    "kl_difference_p_value",
    "kl_interval",
    "kl_p_value",
    "small_sample_floor",
]

_BISECTIONS = 80
#: The largest KL budget a p-value is resolved to (exp(-700) is about 1e-304).
_MAX_BUDGET = 700.0


def _bernoulli_kl(p: float, q: float) -> float:
    """``KL(Bernoulli(p) || Bernoulli(q))`` for p in [0, 1], q in (0, 1)."""
    out = 0.0
    if p > 0.0:
        out += p * math.log(p / q)
    if p < 1.0:
        out += (1.0 - p) * math.log((1.0 - p) / (1.0 - q))
    return out


def _kl_side(p: float, n: int, budget: float, upper: bool) -> float:
    """The farthest q on one side of ``p`` with ``n KL(p || q) <= budget`` (bisection on the monotone side)."""
    if upper and p >= 1.0:
        return 1.0
    if not upper and p <= 0.0:
        return 0.0
    inside, outside = p, (1.0 if upper else 0.0)
    for _ in range(_BISECTIONS):
        mid = 0.5 * (inside + outside)
        if mid in (inside, outside):
            break
        if n * _bernoulli_kl(p, mid) <= budget:
            inside = mid
        else:
            outside = mid
    return inside


def kl_interval(mean: float, n: int, low: float, high: float, alpha: float = 0.05) -> tuple[float, float]:
    """Chernoff-Hoeffding (KL) confidence interval for the mean of ``n`` i.i.d. terms known to lie in
    ``[low, high]``, given their sample mean; level ``1 - alpha``, valid at every ``n`` (module docstring).

    Parameters
    ----------
    mean : float
        Sample mean of the terms (clipped into ``[low, high]``).
    n : int
        Number of terms (>= 1).
    low, high : float
        A-priori range of one term (``low <= high``).
    alpha : float
        Two-sided error rate in (0, 1).

    Returns
    -------
    (float, float)
        Lower and upper end.

    Examples
    --------
    No success in 100 Bernoulli trials: the upper end is ``1 - (alpha / 2)^(1 / n)``, about ``ln(40) / n``.

    >>> lo, hi = kl_interval(0.0, 100, 0.0, 1.0, alpha=0.05)
    >>> lo, round(hi, 5), round(1 - 0.025 ** (1 / 100), 5)
    (0.0, 0.03622, 0.03622)
    """
    if not high >= low:
        raise ValueError(f"high must be >= low, got [{low}, {high}]")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    budget = math.log(2.0 / alpha)
    return _kl_end((mean, low, high), n, budget, upper=False), _kl_end((mean, low, high), n, budget, upper=True)


def ips_kl_side(ips_mean: float, weight_bound: float, reward_range: tuple[float, float], at_top: bool = False,
                weight_mean: float = 1.0, supported: bool = True) -> tuple[float, float, float]:
    """``(mean, low, high)`` of the terms whose :func:`kl_interval` is the small-sample interval of a target's value
    (module docstring, "Which end"). When the target is ``supported`` (``E[w] = 1``): the terms
    ``r_lo + w_i (r_i - r_lo)`` in ``[r_lo, r_lo + W (r_hi - r_lo)]``, whose mean is ``r_lo (1 - mean w) + mean w r``
    (the mass at the bottom; with ``r_lo = 0`` the IPS terms ``w_i r_i``), or, ``at_top``, the terms
    ``r_hi - w_i (r_hi - r_i)`` in ``[r_hi - W (r_hi - r_lo), r_hi]``, whose mean is ``r_hi (1 - mean w) + mean w r``.
    Otherwise (a support deficit) the IPS terms ``w_i r_i`` in :func:`ips_term_range`.

    Parameters
    ----------
    ips_mean : float
        Mean of ``w_i r_i``.
    weight_bound : float
        A-priori largest weight ``W``.
    reward_range : (float, float)
        Range ``(r_lo, r_hi)`` of one reward.
    at_top : bool
        Whether the metric's mass sits at the top of the range (:attr:`InformativeRows.at_top
        <offline_eval.diagnostics.InformativeRows.at_top>`).
    weight_mean : float
        Mean weight (used when ``supported``).
    supported : bool
        Whether ``E[w] = 1`` (exact propensities, no support deficit), which the mirrored forms need.

    Examples
    --------
    A retention flag: 2 zeros among 1000 rows, weights 0 or 2 (mean 1), both zeros weighted.

    >>> ips_kl_side(0.996, 2.0, (0.0, 1.0), at_top=True, weight_mean=1.0)
    (0.996, -1.0, 1.0)
    >>> ips_kl_side(0.996, 2.0, (0.0, 1.0))
    (0.996, 0.0, 2.0)

    A price paid in [5, 10], 5 but for 2 weighted 10s among 1000 rows (same weights): every row at 5 gives 5.

    >>> ips_kl_side(5.02, 2.0, (5.0, 10.0), weight_mean=1.0)
    (5.02, 5.0, 15.0)
    >>> ips_kl_side(5.02, 2.0, (5.0, 10.0), supported=False)  # with a support deficit
    (5.02, 0.0, 20.0)
    """
    if not supported:
        return (ips_mean, *ips_term_range(weight_bound, reward_range))
    r_lo, r_hi = reward_range
    w = max(weight_bound, 0.0)
    if at_top:
        return r_hi * (1.0 - weight_mean) + ips_mean, r_hi - w * (r_hi - r_lo), r_hi
    return r_lo * (1.0 - weight_mean) + ips_mean, r_lo, r_lo + w * (r_hi - r_lo)


def ips_kl_interval(
    n: int, ips_mean: float, weight_bound: float, reward_range: tuple[float, float], alpha: float,
    at_top: bool = False, weight_mean: float = 1.0, supported: bool = True,
) -> tuple[float, float]:
    """:func:`kl_interval` of a target's value over ``n`` rows from the terms of :func:`ips_kl_side` (``ips_mean``:
    the mean of the IPS terms ``w_i r_i``; ``W`` = ``weight_bound``, ``(r_lo, r_hi)`` = ``reward_range``,
    ``weight_mean``: the mean weight); ``supported=False``: the IPS terms, each in ``[W min(r_lo, 0),
    W max(r_hi, 0)]``."""
    mean, low, high = ips_kl_side(ips_mean, weight_bound, reward_range, at_top, weight_mean, supported)
    return kl_interval(mean, n, low, high, alpha)


def ips_term_range(weight_bound: float, reward_range: tuple[float, float]) -> tuple[float, float]:
    """A-priori range ``[W min(r_lo, 0), W max(r_hi, 0)]`` of one IPS term ``w_i r_i`` (the range
    :func:`ips_kl_interval` rescales by; ``weight_bound`` 1 gives the range of a logged reward)."""
    w = max(weight_bound, 0.0)
    return w * min(reward_range[0], 0.0), w * max(reward_range[1], 0.0)


def _p_scaled(mean: float, low: float, high: float) -> float:
    return min(1.0, max(0.0, (mean - low) / (high - low)))


def kl_p_value(mean: float, n: int, low: float, high: float, threshold: float, upper: bool) -> float:
    """One-sided p-value that inverts :func:`kl_interval`: half the smallest two-sided level at which its interval
    excludes ``threshold`` on one side -- the Chernoff bound ``exp(-n KL(mean || threshold))`` of the terms rescaled
    to ``[low, high]`` (Hoeffding 1963, Theorem 1), itself a valid p-value at every n.

    Parameters
    ----------
    mean, n, low, high : as :func:`kl_interval`
    threshold : float
        The value tested.
    upper : bool
        True: ``H0: mu >= threshold``, rejected when the interval's upper end falls below ``threshold``; False:
        ``H0: mu <= threshold`` (its lower end above ``threshold``).

    Returns
    -------
    float
        In [0, 1]: 1 when ``mean`` lies on the wrong side of ``threshold`` (no level excludes it), 0 beyond the
        range (every level does).

    Examples
    --------
    No success in 100 Bernoulli trials: ``H0: mu >= 0.03`` has ``p = 0.97^100``, and ``kl_interval`` at level
    ``2 p`` ends at 0.03.

    >>> p = kl_p_value(0.0, 100, 0.0, 1.0, 0.03, upper=True)
    >>> round(p, 6), round(0.97 ** 100, 6), round(kl_interval(0.0, 100, 0.0, 1.0, alpha=2 * p)[1], 6)
    (0.047553, 0.047553, 0.03)
    """
    if not high >= low:
        raise ValueError(f"high must be >= low, got [{low}, {high}]")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not math.isfinite(threshold):
        raise ValueError(f"threshold must be finite, got {threshold}")
    span = high - low
    if span == 0.0 or not math.isfinite(span):  # kl_interval is the range itself at every level
        return 0.0 if (threshold > high if upper else threshold < low) else 1.0
    p, t = _p_scaled(mean, low, high), (threshold - low) / span
    if (t <= p) if upper else (t >= p):
        return 1.0
    if t >= 1.0 or t <= 0.0:
        return 0.0
    return math.exp(-n * _bernoulli_kl(p, t))


def _kl_end(side: tuple[float, float, float], n: int, budget: float, upper: bool) -> float:
    """One end of :func:`kl_interval` of ``side = (mean, low, high)`` at KL budget ``ln(2 / alpha)``; a range of
    zero or infinite width is its own interval."""
    mean, low, high = side
    span = high - low
    if span == 0.0 or not math.isfinite(span):
        return high if upper else low
    return low + span * _kl_side(_p_scaled(mean, low, high), n, budget, upper)


def kl_difference_p_value(
    first: tuple[float, float, float],
    second: tuple[float, float, float],
    n: int,
    threshold: float,
    upper: bool,
) -> float:
    """One-sided p-value of a difference of two means from the union-bound interval ``[lo_1 - hi_2, hi_1 - lo_2]``
    of their :func:`kl_interval` at ``alpha / 2`` each (as ``compare`` and the lift floor combine them): half the
    smallest level at which it excludes ``threshold``. At that level both ends sit at the same KL budget ``b``, so
    ``p = exp(-b) + exp(-b)``: the two sides' Chernoff bounds added (the union bound); ``b`` is found by bisection.

    Parameters
    ----------
    first, second : (mean, low, high)
        Each side's sample mean over the same ``n`` rows and its a-priori range (as :func:`kl_interval`).
    n : int
        Rows (>= 1).
    threshold : float
        The difference tested.
    upper : bool
        True: ``H0: mu_1 - mu_2 >= threshold`` (rejected when the upper end falls below it); False: ``<=``.

    Returns
    -------
    float
        In [0, 1].

    Examples
    --------
    The first side saw nothing in 200 rows, the second has mean 0.3 in [0, 1]: ``H0: difference >= 0`` is
    rejected at the level where the union-bound interval's upper end reaches 0.

    >>> p = kl_difference_p_value((0.0, 0.0, 1.0), (0.3, 0.0, 1.0), 200, 0.0, upper=True)
    >>> hi_1 = kl_interval(0.0, 200, 0.0, 1.0, alpha=p)[1]
    >>> lo_2 = kl_interval(0.3, 200, 0.0, 1.0, alpha=p)[0]
    >>> p < 1e-6, abs(hi_1 - lo_2) < 1e-9
    (True, True)
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not math.isfinite(threshold):
        raise ValueError(f"threshold must be finite, got {threshold}")
    for name, side in (("first", first), ("second", second)):
        if not side[2] >= side[1]:
            raise ValueError(f"{name} must be (mean, low, high) with high >= low, got {side}")

    def end(budget: float) -> float:
        if upper:
            return _kl_end(first, n, budget, True) - _kl_end(second, n, budget, False)
        return _kl_end(first, n, budget, False) - _kl_end(second, n, budget, True)

    def excludes(budget: float) -> bool:
        return end(budget) < threshold if upper else end(budget) > threshold

    if not excludes(0.0):  # the point estimate itself is on the other side (or on the threshold)
        return 1.0
    inside, outside = 0.0, _MAX_BUDGET  # excluded at budget `inside`, not (yet) at `outside`
    if excludes(outside):
        return 0.0
    for _ in range(_BISECTIONS):
        mid = 0.5 * (inside + outside)
        if mid in (inside, outside):
            break
        inside, outside = (mid, outside) if excludes(mid) else (inside, mid)
    return min(1.0, 2.0 * math.exp(-inside))


def clip_to_range(
    low: float,
    high: float,
    estimate: float,
    value_range: tuple[float, float] | None,
    difference: bool = False,
) -> tuple[float, float]:
    """An interval ``[low, high]`` of a quantity, intersected with the values the quantity can take when one reward
    lies in ``value_range`` (module docstring): ``[r_lo, r_hi]`` for a value (a mean of rewards), ``[r_lo - r_hi,
    r_hi - r_lo]`` for a ``difference`` of two values; never past the point ``estimate`` (the interval keeps
    containing it). Coverage is kept: the true quantity lies in that set, so it lies in the clipped interval
    whenever it lies in ``[low, high]``. ``value_range`` None (no stated range): unchanged.

    Parameters
    ----------
    low, high : float
        The interval (infinite ends allowed).
    estimate : float
        The point estimate the interval belongs to.
    value_range : (float, float) or None
        A-priori range of one reward (``low < high``).
    difference : bool
        Whether the quantity is a difference of two values (a lift) rather than a value.

    Returns
    -------
    (float, float)

    Examples
    --------
    A churn rate (0/1 per decision) and the change in it:

    >>> clip_to_range(-0.00021, 0.019, 0.009, (0.0, 1.0))
    (0.0, 0.019)
    >>> clip_to_range(-1.4, 0.3, -0.2, (0.0, 1.0), difference=True)
    (-1.0, 0.3)
    >>> clip_to_range(-0.3, 2.0, 0.5, None)
    (-0.3, 2.0)
    """
    if value_range is None:
        return low, high
    r_lo, r_hi = value_range
    if not r_lo < r_hi:
        raise ValueError(f"value_range must have low < high, got {value_range!r}")
    lo_allowed, hi_allowed = (r_lo - r_hi, r_hi - r_lo) if difference else (r_lo, r_hi)
    if math.isfinite(estimate):
        lo_allowed, hi_allowed = min(lo_allowed, estimate), max(hi_allowed, estimate)
    # an interval wholly outside the allowed set (it missed) shrinks to the nearest allowed end, never inverts
    return min(max(low, lo_allowed), hi_allowed), max(min(high, hi_allowed), lo_allowed)


class SmallSampleFloor(NamedTuple):
    """What every interval of one target must contain when it has too few informative rows."""

    value_low: float
    value_high: float
    lift_low: float
    lift_high: float


def small_sample_floor(
    n: int,
    informative_rows: int,
    ips_mean: float,
    reward_mean: float,
    weight_bound: float,
    reward_range: tuple[float, float],
    alpha: float,
    at_top: bool = False,
    weight_mean: float = 1.0,
    supported: bool = True,
) -> SmallSampleFloor | None:
    """The KL floor of a target's value and lift intervals, or None when it has enough informative rows.

    Parameters
    ----------
    n : int
        Logged rows.
    informative_rows : int
        The target's informative rows (:func:`offline_eval.diagnostics.informative_rows` on ``reward_range``).
    ips_mean : float
        Mean of the IPS terms ``w_i r_i`` over the n rows.
    reward_mean : float
        Mean logged reward.
    weight_bound : float
        A-priori largest importance weight (``max pi / mu``).
    reward_range : (float, float)
        Range of one reward (the estimator's ``reward_range``, else the observed range).
    alpha : float
        Two-sided error rate.
    at_top : bool
        The metric's mass sits at the top of the range: the value's side is :func:`ips_kl_side`'s top form
        (module docstring, "Which end").
    weight_mean : float
        Mean importance weight (used when ``supported``).
    supported : bool
        ``E[w] = 1`` (no support deficit): the value's side is one of :func:`ips_kl_side`'s mirrored forms; False:
        the IPS terms ``w_i r_i``. The logged rewards' side (the lift's) is the rewards in ``reward_range``.

    Examples
    --------
    >>> floor = small_sample_floor(300, 0, 0.0, 0.5, 3.0, (0.0, 9.99), 0.05)
    >>> round(floor.value_low, 6), round(floor.value_high, 4)
    (0.0, 0.3663)
    >>> small_sample_floor(300, 25, 0.4, 0.5, 3.0, (0.0, 9.99), 0.05) is None
    True

    A retention flag with one weighted zero among 10^4 rows: bounded from the rows below the top.

    >>> floor = small_sample_floor(10_000, 1, 0.9998, 0.9999, 3.0, (0.0, 1.0), 0.05, at_top=True)
    >>> round(floor.value_low, 4), floor.value_high
    (0.9983, 1.0)
    """
    if informative_rows >= INFORMATIVE_ROWS_MIN or n < 1:
        return None
    value = ips_kl_side(ips_mean, weight_bound, reward_range, at_top, weight_mean, supported)
    value_low, value_high = kl_interval(value[0], n, value[1], value[2], alpha)
    half_low, half_high = kl_interval(value[0], n, value[1], value[2], alpha / 2.0)
    reward_low, reward_high = kl_interval(reward_mean, n, reward_range[0], reward_range[1], alpha / 2.0)
    return SmallSampleFloor(value_low, value_high, half_low - reward_high, half_high - reward_low)
