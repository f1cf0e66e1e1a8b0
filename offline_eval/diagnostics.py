"""Importance-weight diagnostics: is the logged data able to say anything about the target policy?

Every estimate carries a :class:`Diagnostics` computed from the importance weights
``w_i = pi(a_i | x_i) / p_i`` (target probability of the logged action over its logging propensity), whether or not
the estimator itself uses them: they describe how well the logs cover the target policy.

Thresholds (module constants; a crossed threshold adds a message to ``Diagnostics.warnings`` and is also raised
through :func:`warnings.warn` as a :class:`DiagnosticWarning`):

==========================  ============================================================================
``ESS_MIN_SHARE`` = 0.01    Kish effective sample size below 1 % of the rows: a few rows carry the estimate.
``ESS_MIN`` = 30            fewer than 30 effective rows: normal intervals are unreliable.
``SUPPORT_DEFICIT_MAX``     more than 1 % of the target's probability mass is on actions the logging policy
= 0.01                      never takes (probability 0 -- e.g. every arm but the logged one when the logger
                            is deterministic, propensity 1); every weighting estimator is biased there and
                            DR / DM extrapolate (any deficit also makes estimates ``consistent=False``).
``CLIPPED_SHARE_MAX``       more than 5 % of the rows have a clipped (or switched-off) weight: the estimate
= 0.05                      leans on the clipping bias.
mean weight                 ``|mean(w) - (1 - support_deficit)| > MEAN_WEIGHT_TOL`` (0.05) **and** more than
                            ``MEAN_WEIGHT_Z`` (4) standard errors: with correct propensities E[w] = 1 - (mass
                            outside the support) exactly, so this signals wrong propensities or a target
                            misaligned with the logged rows.
``INFORMATIVE_ROWS_MIN``    fewer than 10 informative rows (:func:`informative_rows`: rows the target
= 10                        weights whose reward is off the end of its range where the metric's mass sits --
                            conversions among the target's offers for revenue, churners for a retention
                            flag that is 1 for nearly everyone): variance-based intervals then understate
                            the uncertainty (with ~2.5 such rows per log, seeded Monte Carlo coverage of
                            nominal 95% intervals was 0.56-0.75 for every estimator; with ~11, 0.96-0.98),
                            so every interval is widened to the KL bound of :mod:`offline_eval.small_sample`.
==========================  ============================================================================
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

__all__ = [
    "CLIPPED_SHARE_MAX",
    "ESS_MIN",
    "ESS_MIN_SHARE",
    "INFORMATIVE_ROWS_MIN",
    "MEAN_WEIGHT_TOL",
    "MEAN_WEIGHT_Z",
    "SUPPORT_DEFICIT_MAX",
    "DiagnosticWarning",
    "Diagnostics",
    "InformativeRows",
    "RangeEnds",
    "emit",
    "informative_counts",
    "informative_rows",
    "policy_messages",
    "weight_diagnostics",
    "worst_of",
]

ESS_MIN_SHARE = 0.01
ESS_MIN = 30.0
SUPPORT_DEFICIT_MAX = 0.01
CLIPPED_SHARE_MAX = 0.05
MEAN_WEIGHT_TOL = 0.05
MEAN_WEIGHT_Z = 4.0
INFORMATIVE_ROWS_MIN = 10


class DiagnosticWarning(UserWarning):
    """An importance-weight diagnostic crossed its threshold (see :mod:`offline_eval.diagnostics`)."""


@dataclass(frozen=True, slots=True)
class Diagnostics:
    """Importance-weight diagnostics of one (logged data, target policy) pair.

    Attributes
    ----------
    ess : float
        Kish effective sample size ``(sum w)^2 / sum w^2`` of the raw (unclipped) weights, in rows; ``n`` when all
        weights are equal, 0 when the target never agrees with a logged action.
    max_weight : float
        Largest raw weight.
    mean_weight : float
        Mean raw weight; near ``1 - support_deficit`` when the propensities are right.
    support_deficit : float or None
        Average over rows of the target's probability mass on actions with logging probability 0 (or ineligible),
        in [0, 1]. Exact with logged ``probabilities``; without them rows with propensity 1 count exactly and
        others only through ineligible arms (a lower bound); ``None`` when nothing is known (see
        :mod:`offline_eval.estimators.base`).
    clipped_share : float
        Share of rows whose weight the estimator clipped, switched off (SwitchDR) or otherwise capped; 0 for
        estimators that use the raw weights.
    warnings : tuple of str
        One message per crossed threshold.
    informative_rows : int or None
        Rows that carry the value's signal (None when not computed): of the rows with a positive weight, the fewer
        of those with a reward above the low end of its range and those below the high end
        (:func:`informative_rows`; the range is the estimator's ``reward_range``, else the observed one). For
        revenue with zeros at the bottom, the rows with a non-zero reward; for a metric whose mass sits at the
        top (a retention flag), the rows below the top.
    """

    ess: float
    max_weight: float
    mean_weight: float
    support_deficit: float | None
    clipped_share: float
    warnings: tuple[str, ...] = ()
    informative_rows: int | None = None


def weight_diagnostics(
    n: int,
    weight_sum: float,
    weight_sq_sum: float,
    weight_max: float,
    support_deficit: float | None,
    clipped_share: float = 0.0,
    warn_clipped: bool = True,
    informative_rows: int | None = None,
) -> Diagnostics:
    """Diagnostics from the sufficient statistics of the raw weights, with threshold warnings attached.

    Parameters
    ----------
    n : int
        Number of rows, >= 1.
    weight_sum, weight_sq_sum, weight_max : float
        ``sum w``, ``sum w^2`` and ``max w`` over the rows.
    support_deficit : float or None
        Mean target mass outside the logging support, or None if unknown.
    clipped_share : float
        Share of rows with a clipped weight.
    warn_clipped : bool
        Whether a clipped share above ``CLIPPED_SHARE_MAX`` is a warning (False for a clipping level the estimator
        chose from the data, e.g. ``SwitchDR(tau=None)``, whose bias the choice already weighed).
    informative_rows : int, optional
        Informative rows (:func:`informative_rows`); fewer than :data:`INFORMATIVE_ROWS_MIN` is a warning.

    Returns
    -------
    Diagnostics
        Its ``warnings`` hold the messages of crossed thresholds; nothing is emitted here (see :func:`emit`).

    Examples
    --------
    >>> d = weight_diagnostics(n=1000, weight_sum=1000.0, weight_sq_sum=1000.0, weight_max=1.0, support_deficit=0.0)
    >>> d.ess, d.mean_weight, d.warnings
    (1000.0, 1.0, ())
    >>> weight_diagnostics(1000, 1000.0, 2.0e5, 200.0, None).warnings
    ('effective sample size 5 is below 30 rows (0.5% of n=1000): a few rows carry the estimate',)
    """
    ess = weight_sum**2 / weight_sq_sum if weight_sq_sum > 0 else 0.0
    mean_w = weight_sum / n
    messages = []
    if ess < ESS_MIN or ess < ESS_MIN_SHARE * n:
        messages.append(
            f"effective sample size {ess:.3g} is below {max(ESS_MIN, ESS_MIN_SHARE * n):.3g} rows "
            f"({100 * ess / n:.2g}% of n={n}): a few rows carry the estimate"
        )
    if support_deficit is not None and support_deficit > SUPPORT_DEFICIT_MAX:
        messages.append(
            f"support deficit: {100 * support_deficit:.3g}% of the target's probability mass is on actions the "
            "logging policy never takes (logging probability 0); weighting estimators (IPS, SNIPS) miss it and "
            "DR / DM extrapolate the reward model there, so no estimate is unbiased and the intervals ignore it"
        )
    if informative_rows is not None and informative_rows < INFORMATIVE_ROWS_MIN:
        messages.append(
            f"only {informative_rows} row(s) the target weights have a reward off the end of its range where most "
            f"rewards sit (fewer than {INFORMATIVE_ROWS_MIN}; e.g. conversions, or churners of a mostly-1 flag): "
            "variance-based intervals understate the uncertainty, so the interval is widened to the small-sample "
            "(KL) bound of the IPS terms; it holds if the rewards stay in reward_range (default: the observed "
            "range)"
        )
    if warn_clipped and clipped_share > CLIPPED_SHARE_MAX:
        messages.append(f"{100 * clipped_share:.3g}% of the weights are clipped: the estimate carries clipping bias")
    expected = 1.0 - (support_deficit or 0.0)
    if n > 1:
        var_w = max(weight_sq_sum - n * mean_w**2, 0.0) / (n - 1)
        gap = abs(mean_w - expected)
        if gap > MEAN_WEIGHT_TOL and gap > MEAN_WEIGHT_Z * math.sqrt(var_w / n):
            messages.append(
                f"mean importance weight {mean_w:.4g} differs from its expected value {expected:.4g} by more than "
                f"{MEAN_WEIGHT_Z:g} standard errors: check the logged propensities"
            )
    return Diagnostics(
        ess=float(ess),
        max_weight=float(weight_max),
        mean_weight=float(mean_w),
        support_deficit=None if support_deficit is None else float(support_deficit),
        clipped_share=float(clipped_share),
        warnings=tuple(messages),
        informative_rows=None if informative_rows is None else int(informative_rows),
    )


class InformativeRows(NamedTuple):
    """Rows with a positive importance weight off each end of a reward range ``[low, high]``.

    Attributes
    ----------
    above_low : int
        Weighted rows with a reward above ``low``.
    below_high : int
        Weighted rows with a reward below ``high``.
    """

    above_low: int
    below_high: int

    @property
    def rows(self) -> int:
        """The informative rows: the fewer of the two, the rows off the end where the metric's mass sits."""
        return min(self.above_low, self.below_high)

    @property
    def at_top(self) -> bool:
        """Whether the mass sits at the top of the range (no more weighted rows below ``high`` than above ``low``;
        a range of one value, where both are 0, counts as its top): the small-sample floor then bounds the value
        from the rows below the top (:mod:`offline_eval.small_sample`)."""
        return self.below_high <= self.above_low


class RangeEnds(NamedTuple):
    """Mergeable statistics of the observed reward range and of the weighted rows at its ends: per batch, reduced
    by :meth:`merge` (associative and commutative) to the whole log's.

    Attributes
    ----------
    low, high : float
        Smallest and largest reward over all rows (``inf`` / ``-inf`` for no rows).
    at_low, at_high : int
        Rows with a positive weight whose reward equals ``low`` / ``high``.
    weighted : int
        Rows with a positive weight.
    """

    low: float
    at_low: int
    high: float
    at_high: int
    weighted: int

    @classmethod
    def of(cls, weights: np.ndarray, reward: np.ndarray) -> RangeEnds:
        """The statistics of one batch (``weights``, ``reward`` (n,)).

        >>> RangeEnds.of(np.array([0.0, 2.0, 2.0, 1.0]), np.array([1.0, 0.0, 1.0, 1.0]))
        RangeEnds(low=0.0, at_low=1, high=1.0, at_high=2, weighted=3)
        """
        if len(reward) == 0:
            return cls(math.inf, 0, -math.inf, 0, 0)
        low, high = float(reward.min()), float(reward.max())
        on = weights > 0.0
        return cls(low, int(np.count_nonzero(on & (reward == low))), high,
                   int(np.count_nonzero(on & (reward == high))), int(np.count_nonzero(on)))

    def merge(self, other: RangeEnds) -> RangeEnds:
        """The statistics of both batches' rows: an end's count adds the counts of the batches whose extreme is
        the merged extreme."""
        low = min(self.low, other.low)
        high = max(self.high, other.high)
        at_low = (self.at_low if self.low == low else 0) + (other.at_low if other.low == low else 0)
        at_high = (self.at_high if self.high == high else 0) + (other.at_high if other.high == high else 0)
        return RangeEnds(low, at_low, high, at_high, self.weighted + other.weighted)

    def informative(self) -> InformativeRows:
        """:class:`InformativeRows` on the observed range ``[low, high]``."""
        return InformativeRows(self.weighted - self.at_low, self.weighted - self.at_high)

    def check_within(self, value_range: tuple[float, float], name: str = "reward_range") -> None:
        """Raise ``ValueError`` naming ``name`` when a reward lies outside ``value_range``: the small-sample bound,
        the EL-IPS interval and the clipping are valid only on a range that holds every possible reward.

        >>> RangeEnds.of(np.ones(2), np.array([0.0, 25.0])).check_within((0.0, 20.0))
        Traceback (most recent call last):
        ...
        ValueError: reward_range=(0.0, 20.0) does not hold the logged rewards, which run from 0 to 25; give a range that holds every possible reward
        """
        if self.low <= self.high and not (value_range[0] <= self.low and self.high <= value_range[1]):
            raise ValueError(f"{name}={value_range} does not hold the logged rewards, which run from {self.low:g} to "
                             f"{self.high:g}; give a range that holds every possible reward")


def informative_counts(weights: np.ndarray, reward: np.ndarray,
                       value_range: tuple[float, float] | None = None) -> InformativeRows:
    """:class:`InformativeRows` of ``weights``, ``reward`` (n,) on ``value_range`` (the stated range of one reward),
    else on the observed range of ``reward`` (:meth:`RangeEnds.informative`). On a stated range both counts are
    sums over rows; on the observed one the batch engines merge :class:`RangeEnds`.

    >>> w, r = np.array([0.0, 2.0, 2.0, 1.0]), np.array([0.0, 1.0, 0.0, 1.0])
    >>> informative_counts(w, r, (0.0, 1.0))
    InformativeRows(above_low=2, below_high=1)
    """
    if value_range is None:
        return RangeEnds.of(weights, reward).informative()
    on = weights > 0.0
    return InformativeRows(int(np.count_nonzero(on & (reward > value_range[0]))),
                           int(np.count_nonzero(on & (reward < value_range[1]))))


def informative_rows(weights: np.ndarray, reward: np.ndarray, value_range: tuple[float, float] | None = None) -> int:
    """Informative rows of a target (``weights``, ``reward`` (n,)): of the rows with a positive importance weight,
    the fewer of those with a reward above the low end of ``[low, high]`` and those with a reward below its high
    end -- the rows off the end where the metric's mass sits, which carry the value's signal. ``[low, high]`` is
    ``value_range`` (the stated range of one reward), else the observed range of ``reward`` over all rows.

    For revenue with zeros at the bottom (and some row not at the top price) this is the count of rows with a
    non-zero reward; for a retention flag in [0, 1] that is 1 for nearly everyone it is the weighted churners
    (counting non-zero rewards there would count nearly every row, although the estimate rests on the few zeros).

    >>> w = np.array([0.0, 2.0, 2.0, 1.0])
    >>> informative_rows(w, np.array([5.0, 0.0, 9.99, 1.0]))  # revenue: the non-zero rewards
    2
    >>> informative_rows(w, np.array([1.0, 1.0, 0.0, 1.0]), (0.0, 1.0))  # retention: the zeros
    1
    """
    return informative_counts(weights, reward, value_range).rows


def emit(messages: Iterable[str], label: str, stacklevel: int = 3) -> None:
    """Raise each diagnostic message as a :class:`DiagnosticWarning` prefixed by ``label``."""
    for message in messages:
        warnings.warn(f"{label}: {message}", DiagnosticWarning, stacklevel=stacklevel)


def policy_messages(pair: Sequence[str], estimates: Sequence[tuple[str, Sequence[str]]]) -> list[str]:
    """The diagnostic messages of one policy's estimates: those of the (data, target) pair (``pair``) that every
    estimate carries, once, then each estimate's others prefixed by its name (``estimates``: (name, messages)
    pairs). An estimator whose ``reward_range`` counts the informative rows otherwise than the observed range of
    ``pair`` does not share its small-sample message.

    >>> policy_messages(["low ESS", "few rows"], [("IPS", ["low ESS", "few rows"]), ("DR", ["low ESS"])])
    ['low ESS', 'IPS: few rows']
    """
    shared = [m for m in pair if all(m in messages for _, messages in estimates)]
    return shared + [f"{name}: {m}" for name, messages in estimates for m in messages if m not in shared]


def worst_of(first: Diagnostics, second: Diagnostics, labels: tuple[str, str] = ("a", "b")) -> Diagnostics:
    """The worse of two diagnostics, field by field (for paired comparisons of two targets).

    Smaller ESS, larger max weight, the mean weight farther from 1, the larger support deficit (None if either is
    unknown), clipped share and the fewer informative rows; warnings of both, prefixed by ``labels``.
    """
    d1, d2 = first.support_deficit, second.support_deficit
    return Diagnostics(
        ess=min(first.ess, second.ess),
        max_weight=max(first.max_weight, second.max_weight),
        mean_weight=max(first.mean_weight, second.mean_weight, key=lambda m: abs(m - 1.0)),
        support_deficit=None if d1 is None or d2 is None else max(d1, d2),
        clipped_share=max(first.clipped_share, second.clipped_share),
        warnings=tuple(f"{labels[0]}: {m}" for m in first.warnings)
        + tuple(f"{labels[1]}: {m}" for m in second.warnings),
        informative_rows=None if first.informative_rows is None or second.informative_rows is None
        else min(first.informative_rows, second.informative_rows),
    )
