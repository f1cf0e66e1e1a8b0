"""Confidence intervals as functions of per-row terms.

Every estimator in :mod:`offline_eval.estimators` reduces the logs to :class:`RowTerms`: per-row arrays whose
combination is the estimate,

.. math:: \\hat V = \\frac{1}{n} \\sum_i t_i + \\sum_j s_j \\frac{\\sum_i u_{ij}}{\\sum_i v_{ij}},

a plain mean (IPS, DM, DR, ...) plus, for self-normalised estimators (SNIPS, SNDR), ratios of sums with signs
:math:`s_j`. Sums merge across chunks, shards and Spark partitions, so the point estimate is exact however the rows
are split; differences of two estimates (paired comparisons, lift over the logging policy) are RowTerms too.

Intervals (``alpha`` is the two-sided error rate; the level is ``1 - alpha``):

:func:`normal_interval`
    ``value +- z_{1-alpha/2} * sd / sqrt(n)`` with the sample standard deviation (ddof=1) of the per-row terms.
    For ratios this is the **delta method**: the sd of the linearised terms
    :math:`\\psi_i = \\hat V + (t_i - \\bar t) + \\sum_j s_j (u_{ij} - R_j v_{ij}) / \\bar v_j` with
    :math:`R_j = \\sum u_{ij} / \\sum v_{ij}` (their mean is exactly :math:`\\hat V`).
:func:`bootstrap_interval`
    Nonparametric percentile bootstrap, Poisson variant: each resample weights row i by an independent Poisson(1)
    count (all arrays of a row together) instead of drawing n rows with replacement, and recomputes the estimate
    from the weighted sums (for the plain mean: ``sum c_i t_i / sum c_i``); it agrees with the multinomial
    bootstrap up to O(1/n). The counts come from a counter-based generator keyed by (resample seed, row), drawn in a
    compiled kernel block by block (:mod:`offline_eval._bootstrap`): no Python loop over resamples and no (B, n)
    matrix. Cost about 0.8 ns per row per resample on one core, plus about 0.15 ns per extra per-row array (8.0 s
    for n = 10^6 and 10,000 resamples of single-column terms, 9.6 s for SNIPS). ``se`` is the standard deviation of
    the resampled estimates.
:func:`bernstein_interval`
    Empirical-Bernstein bound (Maurer & Pontil 2009, Theorem 4), each side at level ``alpha / 2``: for i.i.d.
    terms in a known range ``[a, b]``,
    :math:`|\\hat V - V| \\le \\sqrt{2 \\hat\\sigma^2 \\ln(4/\\alpha) / n} + 7 (b - a) \\ln(4/\\alpha) / (3 (n - 1))`
    with probability at least ``1 - alpha``. Valid in finite samples **if** the terms lie in ``term_range``; with
    ``term_range=None`` the observed min and max are used, which assumes the sample has seen the extremes (pass
    the a-priori range, e.g. ``(0, max_weight * max_reward)`` for IPS, for a guarantee). For ratios it is applied
    to the linearised terms (an approximation). Conservative: expect coverage well above ``1 - alpha``.

References
----------
Maurer, A. and Pontil, M. (2009). Empirical Bernstein bounds and sample variance penalization. COLT.
Efron, B. and Tibshirani, R. (1993). An Introduction to the Bootstrap, ch. 13 (percentile intervals).
Hanley, J. A. and MacGibbon, B. (2006). Creating non-parametric bootstrap samples using Poisson frequencies.
Computer Methods and Programs in Biomedicine 83(1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal, NamedTuple

import numpy as np
from numba import njit
from numpy.typing import ArrayLike

from offline_eval._bootstrap import POISSON1_THRESHOLDS, poisson_bootstrap_sums

__all__ = [
    "AUTO_EL_MAX_N",
    "INTERVAL_METHODS",
    "Interval",
    "RowTerms",
    "bernstein_interval",
    "bootstrap_interval",
    "compute_interval",
    "normal_interval",
]

INTERVAL_METHODS = ("auto", "normal", "bootstrap", "bernstein", "el")
IntervalMethod = Literal["auto", "normal", "bootstrap", "bernstein", "el"]


# ----------------------------------------------------------------------------------------------------------------
# numba kernels
# ----------------------------------------------------------------------------------------------------------------


@njit(cache=True, inline="always")
def _lanes_total(a):  # pragma: no cover - numba
    """``(a[0] + a[1]) + (a[2] + a[3])``: the one order in which four interleaved accumulators are combined."""
    return (a[0] + a[1]) + (a[2] + a[3])


@njit(cache=True, inline="always")
def _add_shifted(s, ss, j, v, shift):  # pragma: no cover - numba
    """Accumulate ``v`` into lane ``j``: ``s[j] += v``, ``ss[j] += (v - shift)^2``."""
    s[j] += v
    d = v - shift
    ss[j] += d * d


@njit(cache=True)
def _sum(x):  # pragma: no cover - numba
    """Sum of ``x`` (n,) float64 with four interleaved accumulators, in exactly the order of the moment kernels
    below (so a value computed here and one computed with its interval agree to the last bit). Returns float64."""
    n = x.shape[0]
    s = np.zeros(4)
    m = n - n % 4
    for i in range(0, m, 4):
        for j in range(4):
            s[j] += x[i + j]
    for i in range(m, n):
        s[0] += x[i]
    return _lanes_total(s)


@njit(cache=True)
def _shifted_moments(x, shift, out):  # pragma: no cover - numba
    """One pass over ``x`` (n,) float64: ``out`` (2,) = (sum x, sum (x - shift)^2). Returns 0.

    With ``m`` the mean, ``sum (x - m)^2 = out[1] - n (m - shift)^2``, accurate when ``shift`` is near ``m``.
    Four interleaved accumulators keep the floating-point adds independent (memory-bound, not latency-bound).
    """
    n = x.shape[0]
    s = np.zeros(4)
    ss = np.zeros(4)
    m = n - n % 4
    for i in range(0, m, 4):
        for j in range(4):
            _add_shifted(s, ss, j, x[i + j], shift)
    for i in range(m, n):
        _add_shifted(s, ss, 0, x[i], shift)
    out[0] = _lanes_total(s)
    out[1] = _lanes_total(ss)
    return 0


@njit(cache=True)
def _ratio_moments(num, den, shift, out):  # pragma: no cover - numba
    """One pass over ``num``, ``den`` (n,) float64 with ``u = num - shift * den``: ``out`` (5,) =
    (sum num, sum den, sum u^2, sum u den, sum den^2). Returns 0.

    With ``R = sum num / sum den``: ``sum (num - R den)^2 = out[2] - 2 (R - shift) out[3] + (R - shift)^2 out[4]``.
    Four interleaved accumulators per sum, as in :func:`_shifted_moments`.
    """
    n = num.shape[0]
    acc = np.zeros((5, 4))
    m = n - n % 4
    for i in range(0, m, 4):
        for j in range(4):
            d = den[i + j]
            a = num[i + j]
            u = a - shift * d
            acc[0, j] += a
            acc[1, j] += d
            acc[2, j] += u * u
            acc[3, j] += u * d
            acc[4, j] += d * d
    for i in range(m, n):
        d = den[i]
        a = num[i]
        u = a - shift * d
        acc[0, 0] += a
        acc[1, 0] += d
        acc[2, 0] += u * u
        acc[3, 0] += u * d
        acc[4, 0] += d * d
    for k in range(5):
        out[k] = _lanes_total(acc[k])
    return 0


@njit(cache=True)
def _mixed_moments(t, num, den, ratio, scale, shift, out):  # pragma: no cover - numba
    """One pass over ``t``, ``num``, ``den`` (n,) float64 with ``x = t + scale * (num - ratio * den)``: ``out``
    (2,) = (sum x, sum (x - shift)^2). Returns 0.

    ``x`` are the delta-method terms of ``mean(t) + sign * sum(num) / sum(den)`` (``ratio`` the ratio of sums,
    ``scale = sign / mean(den)``) up to a constant, so their sample sd is the estimate's, without materialising
    them. Four interleaved accumulators per sum, as in :func:`_shifted_moments`.
    """
    n = t.shape[0]
    s = np.zeros(4)
    ss = np.zeros(4)
    m = n - n % 4
    for i in range(0, m, 4):
        for j in range(4):
            _add_shifted(s, ss, j, t[i + j] + scale * (num[i + j] - ratio * den[i + j]), shift)
    for i in range(m, n):
        _add_shifted(s, ss, 0, t[i] + scale * (num[i] - ratio * den[i]), shift)
    out[0] = _lanes_total(s)
    out[1] = _lanes_total(ss)
    return 0


# ----------------------------------------------------------------------------------------------------------------
# per-row terms
# ----------------------------------------------------------------------------------------------------------------


class Interval(NamedTuple):
    """A point estimate with its standard error and two-sided interval ``[low, high]`` (same units as the value)."""

    value: float
    se: float
    low: float
    high: float


def _as_terms_array(x: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of per-row terms, got shape {arr.shape}")
    return arr


@dataclass(frozen=True, eq=False)
class RowTerms:
    """Per-row terms of an estimate: ``mean(terms) + sum_j sign_j * sum(numerator_j) / sum(denominator_j)``.

    Parameters
    ----------
    terms : ndarray (n,) or None
        The averaged part, in reward units; None means 0 (e.g. SNIPS is a single ratio).
    ratios : tuple of (sign, numerator (n,), denominator (n,))
        Self-normalised parts; ``sign`` is +1 or -1 (a difference of two estimates negates the second's ratios).

    Examples
    --------
    >>> import numpy as np
    >>> snips = RowTerms(None, ((1.0, np.array([0.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0])),))
    >>> snips.value()
    0.8333333333333334
    >>> float(snips.linearized().mean())
    0.8333333333333334
    >>> (snips - snips).value()
    0.0
    """

    terms: np.ndarray | None
    ratios: tuple[tuple[float, np.ndarray, np.ndarray], ...] = ()

    def __post_init__(self) -> None:
        lengths = set()
        if self.terms is not None:
            object.__setattr__(self, "terms", _as_terms_array(self.terms, "terms"))
            lengths.add(len(self.terms))
        ratios = []
        for sign, num, den in self.ratios:
            num = _as_terms_array(num, "ratio numerator")
            den = _as_terms_array(den, "ratio denominator")
            lengths.update((len(num), len(den)))
            ratios.append((float(sign), num, den))
        object.__setattr__(self, "ratios", tuple(ratios))
        if not lengths:
            raise ValueError("RowTerms needs terms or at least one ratio")
        if len(lengths) != 1:
            raise ValueError(f"all per-row arrays of a RowTerms must have the same length, got lengths {lengths}")

    @property
    def n(self) -> int:
        """Number of rows."""
        return len(self.terms) if self.terms is not None else len(self.ratios[0][1])

    def _ratio_values(self) -> list[float]:
        values = []
        for _, num, den in self.ratios:
            d = float(_sum(den))
            values.append(float(_sum(num)) / d if d != 0.0 else math.nan)
        return values

    def value(self) -> float:
        """The estimate: ``mean(terms) + sum_j sign_j * R_j`` (NaN if a denominator sums to 0)."""
        v = float(_sum(self.terms)) / self.n if self.terms is not None else 0.0
        for (sign, _, _), r in zip(self.ratios, self._ratio_values(), strict=True):
            v += sign * r
        return v

    def linearized(self) -> np.ndarray:
        """Per-row terms (n,) whose mean is exactly :meth:`value` (the delta-method influence terms for ratios).

        Equal to ``terms`` (a copy) when there are no ratios.
        """
        psi = np.zeros(self.n) if self.terms is None else np.array(self.terms, dtype=np.float64)
        for (sign, num, den), r in zip(self.ratios, self._ratio_values(), strict=True):
            mean_den = float(den.mean())
            if mean_den == 0.0 or not math.isfinite(r):
                psi += math.nan
                continue
            psi += sign * (r + (num - r * den) / mean_den)
        return psi

    def __sub__(self, other: RowTerms) -> RowTerms:
        if not isinstance(other, RowTerms):
            return NotImplemented
        if other.n != self.n:
            raise ValueError(f"cannot subtract RowTerms of {other.n} rows from RowTerms of {self.n} rows")
        if self.terms is None and other.terms is None:
            terms = None
        elif other.terms is None:
            terms = self.terms
        elif self.terms is None:
            terms = -other.terms
        else:
            terms = self.terms - other.terms
        negated = tuple((-sign, num, den) for sign, num, den in other.ratios)
        return RowTerms(terms, self.ratios + negated)

    def minus(self, values: ArrayLike) -> RowTerms:
        """These terms minus a per-row array ``values`` (n,), e.g. the logged rewards (lift over logging)."""
        values = _as_terms_array(values, "values")
        if len(values) != self.n:
            raise ValueError(f"values has {len(values)} rows, the terms have {self.n}")
        return RowTerms(-values if self.terms is None else self.terms - values, self.ratios)

    def columns(self) -> tuple[np.ndarray, int]:
        """All per-row arrays stacked as rows of an (m, n) C-contiguous float64 array, and 1 if row 0 is ``terms``.

        Order: ``terms`` (if any), then numerator and denominator of each ratio.
        """
        arrays = ([] if self.terms is None else [self.terms]) + [a for _, num, den in self.ratios for a in (num, den)]
        stacked = arrays[0].reshape(1, -1) if len(arrays) == 1 else np.vstack(arrays)
        return np.ascontiguousarray(stacked), int(self.terms is not None)

    def statistic(self, sums: np.ndarray) -> np.ndarray:
        """The estimate recomputed from weighted sums of resampled rows, shape (B,).

        ``sums`` (B, m + 1): ``sums[b, j] = sum_i c_bi a_j[i]`` for the m arrays of :meth:`columns` and
        ``sums[b, m] = sum_i c_bi``, for row weights (counts) ``c_bi`` of resample b; the plain-mean part is the
        weighted mean ``sums[b, 0] / sums[b, m]``. NaN where a resample's denominator is 0.
        """
        has_terms = self.terms is not None
        with np.errstate(divide="ignore", invalid="ignore"):
            out = sums[:, 0] / sums[:, -1] if has_terms else np.zeros(len(sums))
            k = int(has_terms)
            for sign, _, _ in self.ratios:
                out = out + sign * sums[:, k] / sums[:, k + 1]
                k += 2
        return out


def _as_row_terms(terms: RowTerms | ArrayLike) -> RowTerms:
    return terms if isinstance(terms, RowTerms) else RowTerms(_as_terms_array(terms, "terms"))


def _check_alpha(alpha: float) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.integer, np.floating)):
        raise TypeError(f"alpha must be a float in (0, 1), got {type(alpha).__name__} {alpha!r}")
    if not 0.0 < float(alpha) < 1.0:
        raise ValueError(f"alpha must lie in (0, 1) (0.05 gives a 95% interval), got {alpha!r}")
    return float(alpha)


def _z(alpha: float) -> float:
    return NormalDist().inv_cdf(1.0 - alpha / 2.0)


#: ``interval="auto"`` uses empirical likelihood up to this many rows (its advantage, the skewness of the terms,
#: is a finite-sample one) and the one-pass normal interval above it.
AUTO_EL_MAX_N = 200_000

_PREFIX = 1024  # rows used to pick the shift of the one-pass moment kernels


def _mean_sd(x: np.ndarray) -> tuple[float, float]:
    """Mean and sample sd (ddof=1) of ``x`` in one pass (shifted by the mean of a prefix for accuracy)."""
    n = len(x)
    shift = float(x[:_PREFIX].mean())
    out = np.zeros(2)
    _shifted_moments(x, shift, out)
    mean = float(out[0]) / n
    if n < 2 or not math.isfinite(mean):
        return mean, math.nan
    ss = max(out[1] - n * (mean - shift) ** 2, 0.0)
    return mean, math.sqrt(ss / (n - 1))


def _value_sd(rt: RowTerms) -> tuple[float, float]:
    """The estimate and the sample sd (ddof=1) of its linearised per-row terms, in as few passes as possible."""
    n = rt.n
    if rt.terms is not None and not rt.ratios:
        return _mean_sd(rt.terms)
    if rt.terms is None and len(rt.ratios) == 1:
        sign, num, den = rt.ratios[0]
        head = float(den[:_PREFIX].sum())
        shift = float(num[:_PREFIX].sum()) / head if head != 0.0 else 0.0
        out = np.zeros(5)
        _ratio_moments(num, den, shift, out)
        if out[1] == 0.0:
            return math.nan, math.nan
        ratio = float(out[0]) / float(out[1])
        if n < 2:
            return sign * ratio, math.nan
        delta = ratio - shift
        ss = max(out[2] - 2.0 * delta * out[3] + delta * delta * out[4], 0.0)
        return sign * ratio, abs(sign) * math.sqrt(float(ss) / (n - 1)) / (float(out[1]) / n)
    if rt.terms is not None and len(rt.ratios) == 1:  # e.g. SNDR, or a lift of SNIPS: no (n,) temporaries
        sign, num, den = rt.ratios[0]
        sum_den = float(_sum(den))
        ratio = float(_sum(num)) / sum_den if sum_den != 0.0 else math.nan
        value = float(_sum(rt.terms)) / n + sign * ratio  # exactly RowTerms.value()
        if n < 2 or not math.isfinite(value):
            return value, math.nan
        scale = sign / (sum_den / n)
        p = _PREFIX
        shift = float((rt.terms[:p] + scale * (num[:p] - ratio * den[:p])).mean())
        out = np.zeros(2)
        _mixed_moments(rt.terms, num, den, ratio, scale, shift, out)
        ss = max(float(out[1]) - n * (float(out[0]) / n - shift) ** 2, 0.0)
        return value, math.sqrt(ss / (n - 1))
    value = rt.value()
    if n < 2 or not math.isfinite(value):
        return value, math.nan
    return value, _mean_sd(rt.linearized())[1]


def normal_interval(terms: RowTerms | ArrayLike, alpha: float = 0.05) -> Interval:
    """Normal (Wald) interval from per-row terms; the delta method for ratio terms.

    Parameters
    ----------
    terms : RowTerms or array_like (n,)
        Per-row terms; a plain array is a mean.
    alpha : float
        Two-sided error rate in (0, 1).

    Returns
    -------
    Interval
        ``value``, ``se = sd / sqrt(n)`` and ``value -+ z_{1 - alpha/2} se`` (NaN se for n < 2).

    Examples
    --------
    >>> normal_interval([1.0, 2.0, 3.0, 4.0])
    Interval(value=2.5, se=0.6455, low=1.2348, high=3.7652)
    """
    alpha = _check_alpha(alpha)
    rt = _as_row_terms(terms)
    value, sd = _value_sd(rt)
    se = sd / math.sqrt(rt.n)
    half = _z(alpha) * se
    return Interval(value, se, value - half, value + half)


def bootstrap_interval(
    terms: RowTerms | ArrayLike, alpha: float = 0.05, n_resamples: int = 2000, seed: int | None = 0
) -> Interval:
    """Percentile bootstrap interval: the estimate recomputed on ``n_resamples`` Poisson resamples of the rows.

    Each resample weights every row by an independent Poisson(1) count (module docstring); the result depends only
    on the terms, ``n_resamples`` and ``seed``.

    Parameters
    ----------
    terms : RowTerms or array_like (n,)
        Per-row terms; all arrays of a row share its count (ratios stay paired).
    alpha : float
        Two-sided error rate in (0, 1).
    n_resamples : int
        Number of resamples, >= 100.
    seed : int or None
        Seed of the resample streams (None: fresh entropy).

    Returns
    -------
    Interval
        ``value`` (the full-sample estimate), ``se`` (sd of the resampled estimates) and the ``alpha/2`` and
        ``1 - alpha/2`` quantiles of the resampled estimates.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=2000)
    >>> boot = bootstrap_interval(x, seed=1)
    >>> wald = normal_interval(x)
    >>> bool(abs(boot.low - wald.low) < 0.01 and abs(boot.high - wald.high) < 0.01)
    True
    """
    alpha = _check_alpha(alpha)
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)):
        raise TypeError(f"n_resamples must be an int >= 100, got {type(n_resamples).__name__} {n_resamples!r}")
    if n_resamples < 100:
        raise ValueError(f"n_resamples must be >= 100 for percentile intervals, got {n_resamples}; 2000 is typical")
    rt = _as_row_terms(terms)
    value = rt.value()
    cols, _ = rt.columns()
    seeds = np.random.default_rng(seed).integers(
        0, np.iinfo(np.uint64).max, size=int(n_resamples), dtype=np.uint64, endpoint=True
    )
    sums = np.empty((int(n_resamples), cols.shape[0] + 1))
    poisson_bootstrap_sums(cols, seeds, POISSON1_THRESHOLDS, sums)
    stats = rt.statistic(sums)
    finite = stats[np.isfinite(stats)]
    if len(finite) < 2:
        return Interval(value, math.nan, math.nan, math.nan)
    low, high = np.quantile(finite, [alpha / 2.0, 1.0 - alpha / 2.0])
    return Interval(value, float(finite.std(ddof=1)), float(low), float(high))


def bernstein_interval(
    terms: RowTerms | ArrayLike, alpha: float = 0.05, term_range: tuple[float, float] | None = None
) -> Interval:
    """Empirical-Bernstein interval (Maurer & Pontil 2009), valid in finite samples for terms in ``term_range``.

    Parameters
    ----------
    terms : RowTerms or array_like (n,)
        Per-row terms (ratios are linearised first).
    alpha : float
        Two-sided error rate in (0, 1); each side uses ``alpha / 2``.
    term_range : (float, float) or None
        A-priori bounds ``(a, b)`` of every per-row term. None: the observed min and max (an assumption, see the
        module docstring). Observed terms outside a given range raise ``ValueError``.

    Returns
    -------
    Interval
        ``value``, the normal ``se`` (for reference) and ``value -+ (sqrt(2 var ln(4/alpha) / n)
        + 7 (b - a) ln(4/alpha) / (3 (n - 1)))``.

    Examples
    --------
    >>> import numpy as np
    >>> x = (np.random.default_rng(0).random(5000) < 0.3).astype(float)
    >>> b = bernstein_interval(x, term_range=(0.0, 1.0))
    >>> w = normal_interval(x)
    >>> bool(b.low < w.low and w.high < b.high)
    True
    """
    alpha = _check_alpha(alpha)
    rt = _as_row_terms(terms)
    value, sd = _value_sd(rt)
    n = rt.n
    psi = rt.terms if rt.terms is not None and not rt.ratios else rt.linearized()
    lo_obs, hi_obs = float(psi.min()), float(psi.max())
    if term_range is None:
        a, b = lo_obs, hi_obs
    else:
        try:
            a, b = (float(v) for v in term_range)
        except (TypeError, ValueError) as err:
            raise TypeError(f"term_range must be a pair of floats (low, high), got {term_range!r}") from err
        if not (math.isfinite(a) and math.isfinite(b) and a <= b):
            raise ValueError(f"term_range must be finite with low <= high, got {term_range!r}")
        if lo_obs < a or hi_obs > b:
            raise ValueError(
                f"term_range {term_range!r} does not contain the observed per-row terms [{lo_obs:g}, {hi_obs:g}]; "
                "widen it to the a-priori range of the terms (for IPS: (min(0, r_min) * w_max, r_max * w_max))"
            )
    if n < 2:
        return Interval(value, math.nan, math.nan, math.nan)
    log_term = math.log(4.0 / alpha)
    half = math.sqrt(2.0 * sd**2 * log_term / n) + 7.0 * (b - a) * log_term / (3.0 * (n - 1))
    return Interval(value, sd / math.sqrt(n), value - half, value + half)


def compute_interval(
    terms: RowTerms | ArrayLike,
    method: IntervalMethod = "normal",
    alpha: float = 0.05,
    *,
    n_resamples: int = 2000,
    seed: int | None = 0,
    term_range: tuple[float, float] | None = None,
) -> Interval:
    """Dispatch to :func:`normal_interval`, :func:`bootstrap_interval`, :func:`bernstein_interval` or
    :func:`offline_eval.empirical_likelihood.el_mean_interval` (``"el"``, on the linearised terms) by ``method``.

    ``"auto"`` on bare terms is ``"el"`` up to :data:`AUTO_EL_MAX_N` rows and ``"normal"`` above (the estimators
    resolve ``"auto"`` themselves, see :mod:`offline_eval.estimators.base`).

    Examples
    --------
    >>> compute_interval([1.0, 2.0, 3.0, 4.0], "normal").value
    2.5
    """
    if method == "auto":
        method = "el" if _as_row_terms(terms).n <= AUTO_EL_MAX_N else "normal"
    if method == "el":
        from offline_eval.empirical_likelihood import el_mean_interval

        rt = _as_row_terms(terms)
        alpha = _check_alpha(alpha)
        psi = rt.terms if rt.terms is not None and not rt.ratios else rt.linearized()
        return el_mean_interval(psi, alpha, value=rt.value())
    if method == "normal":
        return normal_interval(terms, alpha)
    if method == "bootstrap":
        return bootstrap_interval(terms, alpha, n_resamples, seed)
    if method == "bernstein":
        return bernstein_interval(terms, alpha, term_range)
    raise ValueError(f"interval must be one of {INTERVAL_METHODS}, got {method!r}")
