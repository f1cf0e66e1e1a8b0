"""How much data a decision needs: online A/B sample sizes, and how much logged data an offline estimate needs.

Online A/B tests
----------------
Treatment is compared with control on ``n`` control users and ``ratio * n`` treatment users (``n`` is what the
functions call ``n_per_arm``), at two-sided or one-sided level ``alpha`` with the normal approximation:

* conversion rates (two proportions) -- ``method="normal"``: the difference of the rates with its unpooled variance,
  ``n = (z_a + z_b)^2 (p1 (1 - p1) + p2 (1 - p2) / ratio) / mde^2`` with ``p2 = p1 + mde``; ``method="arcsine"``:
  Cohen's ``h = 2 asin(sqrt(p2)) - 2 asin(sqrt(p1))``, ``n = (z_a + z_b)^2 (1 + 1 / ratio) / h^2``, as statsmodels'
  ``proportion_effectsize`` with ``NormalIndPower``;
* means, e.g. revenue per user (two means) -- ``n = (z_a + z_b)^2 (sd^2 + sd_t^2 / ratio) / mde^2`` with the standard
  deviations taken from the logs; ``test="t"`` solves the two-sample t-test's power (noncentral t, pooled sd) as
  statsmodels' ``TTestIndPower`` does;
* ratio metrics (revenue per converting user, per session, ...) whose unit of randomisation is the user: the
  delta method gives the per-user variance of the ratio (:func:`ratio_metric_variance`); use its square root as
  ``sd``.

``z_a = z_{1 - alpha/2}`` (two-sided) or ``z_{1 - alpha}`` (one-sided) and ``z_b = z_{power}``. Sample sizes ignore
the two-sided test's rejections in the wrong direction (negligible); :func:`power_proportions` and
:func:`power_means` count them. Sample sizes are rounded up.

Offline evaluability
--------------------
An off-policy estimate's standard error shrinks like ``1 / sqrt(n)``: :func:`halfwidth_at` forecasts an estimate's
interval half-width at another number of logged rows, :func:`rows_needed` the rows to add for a target half-width,
:func:`days_needed` how long the log's traffic takes to supply them. Before logging, :func:`exploration_floor_needed`
gives the exploration floor that makes every candidate policy evaluable with IPS to a given half-width (derivation
in its docstring).

References
----------
Cohen, J. (1988). Statistical Power Analysis for the Behavioral Sciences, 2nd ed., ch. 6 (the arcsine effect h).
Chow, S.-C., Shao, J. and Wang, H. (2008). Sample Size Calculations in Clinical Research, 2nd ed., ch. 3-4.
Deng, A., Knoblich, U. and Lu, J. (2018). Applying the delta method in metric analytics. KDD.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist
from typing import Any, Literal, cast

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from offline_eval.data import LoggedData
from offline_eval.estimators.base import Estimate
from offline_eval.replay import ReplayResult

__all__ = [
    "days_needed",
    "exploration_floor_needed",
    "halfwidth_at",
    "mde_means",
    "mde_proportions",
    "power_curve",
    "power_means",
    "power_proportions",
    "ratio_metric_variance",
    "rows_needed",
    "sample_size_means",
    "sample_size_proportions",
]

Alternative = Literal["two-sided", "larger", "smaller"]
ProportionMethod = Literal["normal", "arcsine"]
MeanTest = Literal["z", "t"]

_ALTERNATIVES = ("two-sided", "larger", "smaller")
_N = NormalDist()


# ----------------------------------------------------------------------------------------------------------------
# validators
# ----------------------------------------------------------------------------------------------------------------


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return v


def _open_unit(value: Any, name: str, hint: str = "") -> float:
    v = _number(value, name)
    if not 0.0 < v < 1.0:
        raise ValueError(f"{name} must lie in (0, 1){hint}, got {value!r}")
    return v


def _positive(value: Any, name: str) -> float:
    v = _number(value, name)
    if v <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return v


def _alternative(alternative: Any) -> Alternative:
    if alternative not in _ALTERNATIVES:
        raise ValueError(f"alternative must be one of {_ALTERNATIVES}, got {alternative!r}")
    return cast(Alternative, alternative)


def _z_alpha(alpha: float, alternative: str) -> float:
    return _N.inv_cdf(1.0 - alpha / 2.0) if alternative == "two-sided" else _N.inv_cdf(1.0 - alpha)


def _signed_effect(mde: Any, alternative: str, name: str = "mde") -> float:
    """``mde`` checked against the direction of the test: > 0 for "larger", < 0 for "smaller", != 0 otherwise."""
    v = _number(mde, name)
    if v == 0 or (alternative == "larger" and v < 0) or (alternative == "smaller" and v > 0):
        want = {"two-sided": "non-zero", "larger": "> 0", "smaller": "< 0"}[alternative]
        raise ValueError(
            f"{name} must be {want} for alternative={alternative!r} (treatment minus control), got {mde!r}"
        )
    return v


def _power_from_delta(delta: float, alpha: float, alternative: str) -> float:
    """Power of a z-test whose statistic is N(delta, 1) (delta signed: treatment minus control over its se)."""
    if alternative == "two-sided":
        z = _N.inv_cdf(1.0 - alpha / 2.0)
        return _N.cdf(delta - z) + _N.cdf(-delta - z)
    z = _N.inv_cdf(1.0 - alpha)
    return _N.cdf(delta - z) if alternative == "larger" else _N.cdf(-delta - z)


def _common(alpha: Any, power: Any, ratio: Any, alternative: Any) -> tuple[float, float, float, Alternative]:
    return (
        _open_unit(alpha, "alpha", " (0.05 for a 5% test)"),
        _open_unit(power, "power", " (0.8 for 80% power)"),
        _positive(ratio, "ratio"),
        _alternative(alternative),
    )


# ----------------------------------------------------------------------------------------------------------------
# two proportions
# ----------------------------------------------------------------------------------------------------------------


def _treatment_rate(p_control: float, mde: float) -> float:
    p2 = p_control + mde
    if not 0.0 < p2 < 1.0:
        raise ValueError(f"p_control + mde must lie in (0, 1) (the treatment's rate), got {p_control} + {mde} = {p2:g}")
    return p2


def _proportion_delta_per_root_n(p1: float, p2: float, ratio: float, method: str) -> float:
    """Signed standardised effect per sqrt(n control users)."""
    if method == "arcsine":
        h = 2.0 * math.asin(math.sqrt(p2)) - 2.0 * math.asin(math.sqrt(p1))
        return h / math.sqrt(1.0 + 1.0 / ratio)
    if method == "normal":
        return (p2 - p1) / math.sqrt(p1 * (1 - p1) + p2 * (1 - p2) / ratio)
    raise ValueError(f"method must be 'normal' or 'arcsine', got {method!r}")


def sample_size_proportions(
    p_control: float,
    mde: float,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
    alternative: Alternative = "two-sided",
    method: ProportionMethod = "normal",
) -> int:
    """Control users needed to detect a change ``mde`` in a conversion rate (treatment: ``ratio`` times as many).

    Parameters
    ----------
    p_control : float
        Control conversion rate, in (0, 1).
    mde : float
        Minimum detectable effect: treatment rate minus control rate (absolute, e.g. 0.01 for one point); > 0 for
        ``alternative="larger"``, < 0 for ``"smaller"``.
    alpha : float
        Type I error rate.
    power : float
        Probability of detecting an effect of size ``mde``.
    ratio : float
        Treatment users per control user.
    alternative : {"two-sided", "larger", "smaller"}
        The test's alternative hypothesis (treatment larger / smaller than control).
    method : {"normal", "arcsine"}
        Unpooled normal approximation of the difference (default) or Cohen's arcsine effect ``h`` (statsmodels).

    Returns
    -------
    int
        Control users ``n``; treatment users ``ceil(ratio * n)``.

    Examples
    --------
    >>> sample_size_proportions(0.10, 0.02)
    3839
    >>> sample_size_proportions(0.10, 0.02, method="arcsine")  # statsmodels NormalIndPower: 3834.6
    3835
    """
    p1 = _open_unit(p_control, "p_control")
    alpha, power, ratio, alternative = _common(alpha, power, ratio, alternative)
    effect = _signed_effect(mde, alternative)
    d = abs(_proportion_delta_per_root_n(p1, _treatment_rate(p1, effect), ratio, method))
    z = _z_alpha(alpha, alternative) + _N.inv_cdf(power)
    return math.ceil((z / d) ** 2 - 1e-9)


def power_proportions(
    n_per_arm: float,
    p_control: float,
    mde: float,
    alpha: float = 0.05,
    ratio: float = 1.0,
    alternative: Alternative = "two-sided",
    method: ProportionMethod = "normal",
) -> float:
    """Power of the two-proportion test with ``n_per_arm`` control users (see :func:`sample_size_proportions`).

    Examples
    --------
    >>> round(power_proportions(3839, 0.10, 0.02), 4)
    0.8001
    """
    n = _positive(n_per_arm, "n_per_arm")
    p1 = _open_unit(p_control, "p_control")
    alpha = _open_unit(alpha, "alpha")
    ratio = _positive(ratio, "ratio")
    alternative = _alternative(alternative)
    effect = _number(mde, "mde")
    if effect == 0:
        return alpha
    d = _proportion_delta_per_root_n(p1, _treatment_rate(p1, effect), ratio, method)
    return _power_from_delta(d * math.sqrt(n), alpha, alternative)


def mde_proportions(
    n_per_arm: float,
    p_control: float,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
    alternative: Alternative = "two-sided",
    method: ProportionMethod = "normal",
) -> float:
    """The smallest change in a conversion rate that ``n_per_arm`` control users detect with the given power.

    Returns the absolute change (treatment minus control): positive, or negative for ``alternative="smaller"``
    (for "two-sided", the upward change). Inverse of :func:`sample_size_proportions` (up to its rounding).

    Examples
    --------
    >>> round(mde_proportions(3839, 0.10), 5)
    0.02
    """
    n = _positive(n_per_arm, "n_per_arm")
    p1 = _open_unit(p_control, "p_control")
    alpha, power, ratio, alternative = _common(alpha, power, ratio, alternative)
    target = (_z_alpha(alpha, alternative) + _N.inv_cdf(power)) / math.sqrt(n)
    sign = -1.0 if alternative == "smaller" else 1.0
    hi = (1.0 - p1) if sign > 0 else p1  # the treatment rate stays inside (0, 1)
    if method == "arcsine":
        h = sign * target * math.sqrt(1.0 + 1.0 / ratio)
        angle = math.asin(math.sqrt(p1)) + h / 2.0
        if not 0.0 < angle < math.pi / 2:
            raise ValueError(f"n_per_arm={n_per_arm} is too small: no rate change inside (0, 1) reaches power {power}")
        return math.sin(angle) ** 2 - p1
    _proportion_delta_per_root_n(p1, p1, ratio, method)  # validates method
    lo, top = 0.0, hi * (1 - 1e-12)
    if abs(_proportion_delta_per_root_n(p1, p1 + sign * top, ratio, method)) < target:
        raise ValueError(f"n_per_arm={n_per_arm} is too small: no rate change inside (0, 1) reaches power {power}")
    for _ in range(200):  # bisection: |delta| grows with |mde| on (0, hi)
        mid = 0.5 * (lo + top)
        if abs(_proportion_delta_per_root_n(p1, p1 + sign * mid, ratio, method)) < target:
            lo = mid
        else:
            top = mid
    return sign * 0.5 * (lo + top)


# ----------------------------------------------------------------------------------------------------------------
# two means
# ----------------------------------------------------------------------------------------------------------------


def _sd_pair(sd: Any, sd_treatment: Any) -> tuple[float, float]:
    s1 = _positive(sd, "sd")
    s2 = s1 if sd_treatment is None else _positive(sd_treatment, "sd_treatment")
    return s1, s2


def _t_power(n: float, effect: float, s1: float, s2: float, alpha: float, ratio: float, alternative: str) -> float:
    """Power of the pooled two-sample t-test (noncentral t), as statsmodels' TTestIndPower."""
    from scipy import special, stats

    n2 = ratio * n
    df = n + n2 - 2
    if df <= 0:
        return math.nan
    pooled = math.sqrt(((n - 1) * s1**2 + (n2 - 1) * s2**2) / df) if n > 1 and n2 > 1 else max(s1, s2)
    nc = effect / (pooled * math.sqrt(1 / n + 1 / n2))

    def cdf(x: float) -> float:
        """Noncentral t CDF; far in a tail scipy returns NaN: the normal approximation (A&S 26.7.10) then."""
        v = float(special.nctdtr(df, nc, x))
        if math.isnan(v):
            v = _N.cdf((x * (1 - 1 / (4 * df)) - nc) / math.sqrt(1 + x * x / (2 * df)))
        return v

    if alternative == "two-sided":
        c = float(stats.t.ppf(1 - alpha / 2, df))
        return 1.0 - cdf(c) + cdf(-c)
    c = float(stats.t.ppf(1 - alpha, df))
    return 1.0 - cdf(c) if alternative == "larger" else cdf(-c)


def _check_test(test: Any) -> MeanTest:
    if test not in ("z", "t"):
        raise ValueError(f"test must be 'z' (normal approximation) or 't' (two-sample t-test), got {test!r}")
    return cast(MeanTest, test)


def sample_size_means(
    sd: float,
    mde: float,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
    alternative: Alternative = "two-sided",
    sd_treatment: float | None = None,
    test: MeanTest = "z",
) -> int:
    """Control users needed to detect a change ``mde`` in a mean (e.g. revenue per user).

    Parameters
    ----------
    sd : float
        Standard deviation of the metric per user, from the logs (e.g. ``np.std(revenue_per_user, ddof=1)``; for
        a ratio metric, ``sqrt(ratio_metric_variance(...))``).
    mde : float
        Minimum detectable effect: treatment mean minus control mean (metric units).
    alpha, power, ratio, alternative
        As in :func:`sample_size_proportions`.
    sd_treatment : float, optional
        The treatment's standard deviation if it differs (default ``sd``).
    test : {"z", "t"}
        Normal approximation (closed form) or the pooled two-sample t-test (solved numerically; a few users more
        for small samples).

    Returns
    -------
    int
        Control users ``n``; treatment users ``ceil(ratio * n)``.

    Examples
    --------
    >>> sample_size_means(sd=12.0, mde=0.5)  # revenue per user: sd 12, detect +0.50
    9042
    >>> sample_size_means(sd=12.0, mde=0.5, test="t")
    9043
    """
    s1, s2 = _sd_pair(sd, sd_treatment)
    alpha, power, ratio, alternative = _common(alpha, power, ratio, alternative)
    effect = _signed_effect(mde, alternative)
    test = _check_test(test)
    z = _z_alpha(alpha, alternative) + _N.inv_cdf(power)
    n_z = (z**2) * (s1**2 + s2**2 / ratio) / effect**2
    if test == "z":
        return math.ceil(n_z - 1e-9)
    n = max(2, math.ceil(n_z - 1e-9))
    while _t_power(n, effect, s1, s2, alpha, ratio, alternative) < power:
        n += max(1, n // 1000)
    while n > 2 and _t_power(n - 1, effect, s1, s2, alpha, ratio, alternative) >= power:
        n -= 1
    return n


def power_means(
    n_per_arm: float,
    sd: float,
    mde: float,
    alpha: float = 0.05,
    ratio: float = 1.0,
    alternative: Alternative = "two-sided",
    sd_treatment: float | None = None,
    test: MeanTest = "z",
) -> float:
    """Power of the two-means test with ``n_per_arm`` control users (see :func:`sample_size_means`).

    Examples
    --------
    >>> round(power_means(9042, sd=12.0, mde=0.5), 4)
    0.8
    """
    n = _positive(n_per_arm, "n_per_arm")
    s1, s2 = _sd_pair(sd, sd_treatment)
    alpha = _open_unit(alpha, "alpha")
    ratio = _positive(ratio, "ratio")
    alternative = _alternative(alternative)
    effect = _number(mde, "mde")
    if _check_test(test) == "t":
        return _t_power(n, effect, s1, s2, alpha, ratio, alternative)
    delta = effect * math.sqrt(n) / math.sqrt(s1**2 + s2**2 / ratio)
    return _power_from_delta(delta, alpha, alternative)


def mde_means(
    n_per_arm: float,
    sd: float,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
    alternative: Alternative = "two-sided",
    sd_treatment: float | None = None,
) -> float:
    """The smallest change in a mean that ``n_per_arm`` control users detect (normal approximation).

    ``mde = (z_a + z_b) sqrt((sd^2 + sd_t^2 / ratio) / n)``; negative for ``alternative="smaller"``.

    Examples
    --------
    >>> round(mde_means(9042, sd=12.0), 3)
    0.5
    """
    n = _positive(n_per_arm, "n_per_arm")
    s1, s2 = _sd_pair(sd, sd_treatment)
    alpha, power, ratio, alternative = _common(alpha, power, ratio, alternative)
    z = _z_alpha(alpha, alternative) + _N.inv_cdf(power)
    m = z * math.sqrt((s1**2 + s2**2 / ratio) / n)
    return -m if alternative == "smaller" else m


def ratio_metric_variance(numerators: ArrayLike, denominators: ArrayLike) -> float:
    """Per-unit variance of a ratio metric ``sum(numerators) / sum(denominators)`` by the delta method.

    For a metric such as revenue per session (numerator: a user's revenue, denominator: their sessions) or
    revenue per converting user (denominator: 0/1 converted) where users, not sessions, are randomised, the
    ratio ``R = mean(Y) / mean(X)`` over ``n`` users has variance ``sigma_R^2 / n`` with

    .. math:: \\sigma_R^2 = \\frac{\\sigma_Y^2 - 2 R \\sigma_{XY} + R^2 \\sigma_X^2}{\\mu_X^2}.

    Pass ``sqrt(sigma_R^2)`` as ``sd`` to :func:`sample_size_means` / :func:`mde_means`. Treating the sessions as
    independent (the naive per-session variance) understates it when a user's sessions are correlated.

    Parameters
    ----------
    numerators, denominators : array_like (n,)
        Per-user numerator and denominator (finite; the denominators' mean must be positive).

    Returns
    -------
    float
        ``sigma_R^2`` (sample moments with ddof=1).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> sessions = rng.poisson(5, size=10_000) + 1
    >>> revenue = rng.gamma(2.0, 0.5, size=10_000) * sessions
    >>> round(ratio_metric_variance(revenue, sessions), 3)
    0.57

    References
    ----------
    Deng, A., Knoblich, U. and Lu, J. (2018). Applying the delta method in metric analytics. KDD.
    """
    y = _vector(numerators, "numerators")
    x = _vector(denominators, "denominators")
    if len(x) != len(y):
        raise ValueError(f"numerators and denominators must have the same length, got {len(y)} and {len(x)}")
    if len(x) < 2:
        raise ValueError(f"numerators needs at least 2 units, got {len(x)}")
    mx, my = float(x.mean()), float(y.mean())
    if mx <= 0:
        raise ValueError(f"denominators must have a positive mean, got {mx:g}")
    cov = np.cov(y, x, ddof=1)
    r = my / mx
    return float(max(cov[0, 0] - 2 * r * cov[0, 1] + r**2 * cov[1, 1], 0.0) / mx**2)


def _vector(value: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "iuf" or arr.dtype == np.bool_:
        if arr.dtype == np.bool_:
            arr = arr.astype(np.float64)
        else:
            raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{name} must have shape (n,), got shape {arr.shape}")
    arr = arr.astype(np.float64, copy=False)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite; {int((~np.isfinite(arr)).sum())} values are not")
    return arr


# ----------------------------------------------------------------------------------------------------------------
# power curves
# ----------------------------------------------------------------------------------------------------------------


def _as_list(value: Any, name: str) -> list[float]:
    if isinstance(value, (Sequence, np.ndarray, pd.Series)) and not isinstance(value, str):
        out = [_number(v, name) for v in value]
        if not out:
            raise ValueError(f"{name} must not be empty")
        return out
    return [_number(value, name)]


def power_curve(
    effects: float | Sequence[float] | np.ndarray,
    n_per_arm: float | Sequence[float] | np.ndarray,
    *,
    p_control: float | None = None,
    sd: float | None = None,
    alpha: float = 0.05,
    ratio: float = 1.0,
    alternative: Alternative = "two-sided",
) -> pd.DataFrame:
    """Power over a grid of effects and sample sizes: effect vs power at a fixed n, or n vs power at a fixed effect.

    Give ``p_control`` for a conversion rate (two proportions, normal method) or ``sd`` for a mean.

    Parameters
    ----------
    effects : float or sequence of float
        Treatment minus control (absolute).
    n_per_arm : float or sequence of float
        Control users (treatment: ``ratio`` times as many).
    p_control : float, optional
        Control conversion rate (proportions).
    sd : float, optional
        Standard deviation per user (means).
    alpha, ratio, alternative
        As in :func:`sample_size_proportions`.

    Returns
    -------
    pandas.DataFrame
        Columns ``n_per_arm``, ``effect``, ``power``: one row per (n, effect), n-major.

    Examples
    --------
    >>> power_curve([0.01, 0.02, 0.03], 3839, p_control=0.10).round(3)
       n_per_arm  effect  power
    0       3839    0.01  0.298
    1       3839    0.02  0.800
    2       3839    0.03  0.985
    """
    if (p_control is None) == (sd is None):
        raise ValueError("give exactly one of p_control (a conversion rate) and sd (a mean's standard deviation)")
    ns = _as_list(n_per_arm, "n_per_arm")
    es = _as_list(effects, "effects")
    rows = []
    for n in ns:
        for e in es:
            if p_control is not None:
                pw = power_proportions(n, p_control, e, alpha=alpha, ratio=ratio, alternative=alternative)
            else:
                pw = power_means(n, sd, e, alpha=alpha, ratio=ratio, alternative=alternative)  # type: ignore[arg-type]
            rows.append({"n_per_arm": n, "effect": e, "power": pw})
    out = pd.DataFrame(rows, columns=["n_per_arm", "effect", "power"])
    if all(float(n).is_integer() for n in ns):
        out["n_per_arm"] = out["n_per_arm"].astype(np.int64)
    return out


# ----------------------------------------------------------------------------------------------------------------
# offline evaluability
# ----------------------------------------------------------------------------------------------------------------


def _estimate(estimate: Any) -> tuple[float, int]:
    """An estimate's current half-width and the logged rows behind it (checked).

    For a :class:`~offline_eval.replay.ReplayResult` the rows are the logged rows replayed (``n_rows``), not the
    rows it kept: the half-width scales with the log either way.
    """
    if isinstance(estimate, ReplayResult):
        n_logged = estimate.n_rows
        estimate = estimate.estimate
    elif isinstance(estimate, Estimate):
        n_logged = estimate.n
    else:
        raise TypeError(
            f"estimate must be an offline_eval Estimate (e.g. IPS().estimate(data, target)) or a ReplayResult, got "
            f"{type(estimate).__name__}"
        )
    hw = 0.5 * (float(estimate.ci_high) - float(estimate.ci_low))
    if not (math.isfinite(hw) and estimate.n >= 2):
        raise ValueError(f"estimate has no finite interval (n={estimate.n}, [{estimate.ci_low}, {estimate.ci_high}])")
    return hw, int(n_logged)


def halfwidth_at(estimate: Estimate | ReplayResult, n_rows: float) -> float:
    """The interval half-width ``estimate`` would have with ``n_rows`` logged rows of the same kind.

    ``halfwidth_now * sqrt(n_now / n_rows)``, with ``halfwidth_now = (ci_high - ci_low) / 2`` (``z * se`` for a
    normal interval) and ``n_now`` the logged rows behind the estimate (for a replay: the rows replayed, of which
    it keeps a share). Assumes the new rows come from the same logging policy and population (the per-row variance
    stays the same); an estimate from few rows has a noisy standard error, and so has the forecast.

    Examples
    --------
    >>> import numpy as np
    >>> from offline_eval import IPS, LoggedData
    >>> rng = np.random.default_rng(0)
    >>> action = rng.integers(0, 2, size=4000)
    >>> data = LoggedData(None, action, (rng.random(4000) < 0.1).astype(float), np.full(4000, 0.5))
    >>> est = IPS().estimate(data, 1)
    >>> round(halfwidth_at(est, 16_000) / halfwidth_at(est, est.n), 6)  # four times the rows: half the width
    0.5
    """
    hw, n = _estimate(estimate)
    rows = _positive(n_rows, "n_rows")
    return hw * math.sqrt(n / rows)


def rows_needed(estimate: Estimate | ReplayResult, target_halfwidth: float) -> int:
    """How many more logged rows ``estimate`` (or a replay) needs for an interval half-width of ``target_halfwidth``.

    The total is ``ceil(n_now * (halfwidth_now / target_halfwidth)^2)`` (see :func:`halfwidth_at` for the
    assumptions); returns the total minus the ``n_now`` rows already used (0 if the target is already met).

    Examples
    --------
    >>> import numpy as np
    >>> from offline_eval import IPS, LoggedData
    >>> rng = np.random.default_rng(0)
    >>> action = rng.integers(0, 2, size=4000)
    >>> data = LoggedData(None, action, (rng.random(4000) < 0.1).astype(float), np.full(4000, 0.5))
    >>> est = IPS().estimate(data, 1)
    >>> rows_needed(est, 0.5 * (est.ci_high - est.ci_low) / 2)  # half the width: four times the rows
    12000
    """
    hw, n = _estimate(estimate)
    target = _positive(target_halfwidth, "target_halfwidth")
    total = math.ceil(n * (hw / target) ** 2 - 1e-9)
    return max(total - n, 0)


def days_needed(data: LoggedData, rows: float) -> float:
    """Days of traffic that supply ``rows`` more logged rows at the log's rate.

    The rate is ``(n - 1) / span`` rows per day, ``span`` the time from the first to the last decision in
    ``data`` (days). ``rows`` are logged rows, e.g. from :func:`rows_needed` (also for a replay).

    Examples
    --------
    >>> import numpy as np
    >>> times = np.datetime64("2024-01-01") + np.arange(1001) * np.timedelta64(36, "s")  # 2400 rows a day
    >>> data = LoggedData(None, np.zeros(1001, dtype=int), np.ones(1001), np.ones(1001), timestamp=times)
    >>> days_needed(data, 12_000)
    5.0
    """
    if not isinstance(data, LoggedData):
        raise TypeError(f"data must be an offline_eval.LoggedData, got {type(data).__name__}")
    if data.timestamp is None:
        raise ValueError("data.timestamp is missing; the traffic rate needs decision times")
    r = _number(rows, "rows")
    if r < 0:
        raise ValueError(f"rows must be >= 0, got {rows!r}")
    us = data.timestamp.astype(np.int64)
    span = (int(us.max()) - int(us.min())) / 86_400e6 if data.n else 0.0
    if data.n < 2 or span <= 0:
        raise ValueError(f"data must span some time to give a traffic rate; its {data.n} rows share one timestamp")
    return r / ((data.n - 1) / span)


def exploration_floor_needed(
    halfwidth: float,
    n_rows: float,
    n_arms: int,
    reward_second_moment: float,
    alpha: float = 0.05,
) -> float:
    """The exploration floor that lets IPS evaluate any candidate policy to ``+-halfwidth`` from ``n_rows`` rows.

    A logging policy with exploration floor ``e`` over ``K`` eligible arms gives every arm probability at least
    ``e / K``, so an importance weight is at most ``K / e``. For any target ``pi`` (deterministic or not) the IPS
    term ``w r`` has second moment
    ``E[w^2 r^2] = E_x sum_a pi(a|x)^2 / mu(a|x) E[r^2|x,a] <= (K / e) E_pi[r^2]`` (as ``pi^2 <= pi``), so its
    variance is below ``(K / e) m2`` with ``m2`` the reward's second moment and the normal half-width below
    ``z sqrt(K m2 / (e n))``. The floor that guarantees ``halfwidth`` is

    .. math:: e = \\frac{z_{1-\\alpha/2}^2 \\, K \\, m_2}{n \\, h^2}.

    The bound is attained (up to the ``- V^2`` term) by a deterministic candidate that always takes an arm the
    base policy never takes; candidates close to the base policy need less. A result above 1 means even uniform
    random logging (floor 1) cannot reach ``halfwidth`` with ``n_rows`` rows: more traffic is needed.

    Parameters
    ----------
    halfwidth : float
        Target half-width of the candidates' IPS intervals (reward units).
    n_rows : float
        Logged rows available (the traffic budget).
    n_arms : int
        ``K``: the most eligible arms in a row.
    reward_second_moment : float
        ``E[r^2]`` under the candidates, e.g. the largest conversion rate for 0/1 rewards, ``max(r)^2`` for a
        worst case, or ``mean(r^2)`` of existing logs as an estimate.
    alpha : float
        Two-sided error rate of the interval.

    Returns
    -------
    float
        The floor ``e`` (the share of uniform exploration mixed into the logging policy).

    Examples
    --------
    >>> round(exploration_floor_needed(halfwidth=0.01, n_rows=200_000, n_arms=6, reward_second_moment=0.1), 3)
    0.115
    """
    h = _positive(halfwidth, "halfwidth")
    n = _positive(n_rows, "n_rows")
    if isinstance(n_arms, bool) or not isinstance(n_arms, (int, np.integer)) or n_arms < 1:
        raise ValueError(f"n_arms must be an int >= 1 (eligible arms), got {n_arms!r}")
    m2 = _positive(reward_second_moment, "reward_second_moment")
    alpha = _open_unit(alpha, "alpha")
    z = _N.inv_cdf(1.0 - alpha / 2.0)
    return z**2 * int(n_arms) * m2 / (n * h**2)
