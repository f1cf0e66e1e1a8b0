"""The rollout decision: GO / NO-GO / NEED MORE DATA for candidate policies, from logged decisions.

:func:`rollout_report` estimates every candidate on the same (test) rows for a primary metric (e.g. revenue per
offer) and for guardrail metrics (e.g. cancellations, cannibalised revenue), each with the same estimator, as
paired differences over a baseline, checks the overlap diagnostics, and turns all of it into one decision with
plain-language reasons, a table, Markdown, a self-contained HTML page and a JSON-serialisable dict.

Metrics
-------
``data`` is either

* a pandas DataFrame in the decision-log schema (``context`` or feature columns, ``action``, ``propensity``,
  ``probabilities``, ``eligible``, ``timestamp`` ...) with one column per metric: the primary ``metric`` (default
  ``"reward"``) and each guardrail's column. Each metric is read with
  ``LoggedData.from_dataframe(df, reward=column, **frame_options)`` on identical rows: rows whose event id already
  appeared earlier are dropped (as the decision-log readers do, with their
  :class:`~offline_eval.schema.DecisionLogWarning`), then rows where any used metric is missing (outcome not
  joined yet), with one warning, then rows that break the decision-log contract (quarantined by
  ``from_dataframe``; ``frame_options={"invalid_rows": "raise"}`` stops at the first instead);
* a :class:`~offline_eval.LoggedData`, whose ``reward`` is the primary metric (``metric`` only names it); a
  guardrail's ``column`` is then an array of per-row values (same rows).

Decision rules
--------------
Let ``m`` be the number of candidates and ``a = alpha / m`` (Bonferroni across candidates, so the chance of a false
GO for any of them is at most ``alpha / 2``). For each candidate, with paired differences ``d = V(candidate) -
V(baseline)`` per metric and two-sided ``1 - a`` intervals (``offline_eval.compare``'s paired interval; for
``baseline="logging"`` the lift over the logged mean, as in ``evaluate``):

* **overlap** -- ``support deficit`` above :data:`~offline_eval.diagnostics.SUPPORT_DEFICIT_MAX` (the logs never
  show much of what the candidate would do), an effective sample size below
  :data:`~offline_eval.diagnostics.ESS_MIN_SHARE` of the rows, or a mean importance weight off its expected value
  (the diagnostics' test: wrong propensities) make the candidate **NO-GO**: more logs of the same kind cannot fix
  them.
* **small samples** -- an interval that understates the uncertainty decides nothing, in either direction. Two
  counts (of the candidate, and of the baseline when it is a candidate) say when:

  - an ESS below :data:`~offline_eval.diagnostics.ESS_MIN` rows: every interval of the candidate (lift and
    guardrails) rests on too few effective rows, so it is **NEED MORE DATA** whatever they show;
  - fewer than :data:`~offline_eval.diagnostics.INFORMATIVE_ROWS_MIN` informative rows (offers whose value of the
    metric is off the end of its range where most values sit -- conversions for revenue, churners for a retention
    flag that is 1 for nearly everyone; :func:`~offline_eval.diagnostics.informative_rows`,
    ``Diagnostics.informative_rows``, the table's ``informative_rows``, counted on the metric's stated range, else
    the observed one; for a difference the fewer of its two sides'): every interval is given the **small-sample floor** of :func:`offline_eval.evaluate`
    and :func:`offline_eval.compare` (:mod:`offline_eval.small_sample`, the same functions) -- the value's
    interval widened to contain the Chernoff-Hoeffding (KL) interval of the IPS terms, a difference's to contain
    the union bound of both sides' KL intervals at ``alpha / 2`` each (the logging policy's terms are its
    rewards) -- and its kind gets ``+kl`` (the table's ``interval``). That floor holds at every n, *given the
    metric's range*. With a **stated range** (``reward_range=`` -- or the estimator's -- for the primary metric, the
    guardrail's ``value_range``) the floored interval is judged like any other: the lift against ``min_effect``,
    a guardrail as non-inferior / breached / inconclusive (so a rare harm -- no refund among 10^5 offers -- can
    pass). With only the **range seen in the log** it decides nothing: the candidate is **NEED MORE DATA** (unless
    a guardrail is breached) and such a guardrail is inconclusive (p = 1 in Holm's family, ``p_holm`` NaN, so it
    never loosens the others' tests); the reasons say how to state the range. When every value of the metric is
    the same (every refund 0, every retention flag 1) and no range is stated, nothing bounds it: the floored
    interval is the whole line.

  Measured (seeded Monte Carlo, 400 logs each): with an ESS of about 25 and hundreds of outcomes (a candidate
  offering, with probability 0.9, a plan the logger shows 2% of the time), the lift's interval put a true lift equal
  to the minimum effect below it -- a confident NO-GO -- in 12% of logs, at a nominal 2.5% at most (3.7% at an ESS
  of about 37). Why the observed range is not enough: a plan priced 50 among plans priced 5 and 10, about 2.5
  conversions on its offers, lift at the minimum effect: judged on the floor over the observed range, 3.0% of logs
  were a confident NO-GO (all among the 35 logs where none of its offers converted, so the range stopped at 10); a
  refund guardrail of 50 per refund (10 elsewhere) at its margin was declared non-inferior in 6.3%. With the range
  stated: 0 of 400 in both. On a stated range, a guardrail at its margin with about 4 or 9 events on the
  candidate's offers was declared non-inferior in 0 of 400 logs (breached in at most 1.5%), and a harmless one
  passed in all of them (figures in the module's tests and the README). A retention guardrail (a flag that is 1
  for all but about 3 of 10^5 users; its informative rows are the churners) sitting exactly at its margin was
  declared non-inferior in 17% of 200 logs while non-zero values were counted (no floor: about 3 x 10^4
  "informative" rows); counting the rows below the top, 0 of 200, with every difference interval covering.
* **lift** -- ``ci_high < min_effect``: NO-GO (it does not pay enough); ``ci_low > min_effect``: lift shown.
* **guardrails** -- a guardrail with non-inferiority margin ``M >= 0`` is *harmed* by ``h = d`` (``h = -d`` when
  higher is better). Two one-sided tests per guardrail at level ``a / 2``, each family corrected with
  Holm-Bonferroni across the guardrails: *non-inferior* when ``H0: h >= M`` is rejected (equivalently, the Holm-
  adjusted upper bound of ``h`` is below ``M``), *breached* when ``H0: h <= M`` is rejected. A breach is NO-GO.
* **GO** when the lift is shown, every guardrail is non-inferior and the overlap is healthy (with enough effective
  rows, and enough outcomes or a stated range); **NO-GO** as above; otherwise **NEED MORE DATA**.

**Stated ranges clip.** On a stated range every interval of that metric -- floored or not, of the candidates, the
references, the logging policy and the backtest windows -- is clipped to what the quantity can be: a value to
``[low, high]``, a difference to ``[low - high, high - low]`` (:func:`offline_eval.small_sample.clip_to_range`, the
function ``evaluate`` and ``compare`` clip with). The quantity lies in that set, so the clipped interval covers
whenever the unclipped one does; only impossible values go (a churn rate's interval ``[-0.00021, 0.019]`` becomes
``[0, 0.019]``). A margin or minimum effect beyond ``high - low`` cannot be reached: that side's test rejects with
p = 0, as the clipped interval shows. Nothing is clipped on a range only observed in the log.

The guardrail tests use the same intervals as the lift, the estimator's own (``estimator.interval``; by default
empirical likelihood up to 200,000 rows), which for a skewed metric need not be symmetric: a test's one-sided
p-value is half the smallest two-sided level at which the difference's interval excludes the margin: for the normal
interval the z-test's, for the empirical-likelihood interval the level whose calibrated critical value is the EL
statistic at the margin (one profile evaluation, :func:`offline_eval.empirical_likelihood.el_mean_p_value`, with
the interval's range fallback), for the others found by bisecting the level. A floored interval is the hull of
the scorer's interval and the KL floor, so it excludes the margin only where both do: its p-value is the larger of
the two, the floor's in closed form from the Chernoff bound (``exp(-n KL)`` of the terms rescaled to their range,
and for a difference the union bound of both sides',
:func:`offline_eval.small_sample.kl_difference_p_value`). They were z-tests on the standard error until the attack review of 2026-12-05: with rare
cancellations and skewed logging (3 plans, cancellation 2-5 %, logging 10-70 %, n = 2,000) a guardrail exactly at
its margin was declared non-inferior in 6.7-8 % of 300 replications at the nominal 2.5 %; from the intervals, 1.3 %.

Estimator
---------
By default (``estimator=None``) every value and difference is the **DR-DM blend** that :func:`offline_eval.evaluate`
and :func:`offline_eval.compare` recommend (``V = DR - lam (DR - DM)``, :mod:`offline_eval.blend`, from the same
cross-fitted default reward model), with DR's interval widened to contain it and DR's standard error. The lift
test therefore needs both the blend and DR's interval to clear ``min_effect``, and a guardrail's test rejects at a
level only when DR's interval excludes the margin there and the blend lies on the same side: the blend makes the
point estimates more accurate and never a test bolder than DR's. Pass ``estimator=DR()`` (or any estimator) to use one estimator throughout.

The report's decision is GO if any candidate is GO (the recommended one: the GO candidate with the largest lift),
NO-GO if every candidate is NO-GO, NEED MORE DATA otherwise.

Forecast
--------
For an undecided candidate, each unsettled quantity ``q`` (the lift against ``min_effect``, each inconclusive
guardrail against its margin) with estimate ``q^`` and standard error ``se`` on ``n`` rows needs about

    ``n_q = n * ((z_(1 - level) + z_power) * se / |q^ - threshold|)^2``

rows in total for its interval to exclude the threshold with probability ``power`` if the truth were ``q^``
(``level = a/2`` for the lift, ``a/(2k)`` for ``k`` guardrails: Holm's worst case). The forecast is
``max_q n_q - n`` more rows (and ``n * ESS_MIN / ess`` when the ESS is below ``ESS_MIN`` rows, ``n *
INFORMATIVE_ROWS_MIN / max(k, 1)`` with ``k`` informative rows below ``INFORMATIVE_ROWS_MIN``, when an unsettled
lift or guardrail is still on the small-sample floor -- the rows after which its own interval takes over, at the
rate seen so far -- whose threshold is planned as well), in days at the
evaluated rows' traffic (rows per day); beyond :data:`MAX_GROWTH` times the current rows it is reported as
impractical (infinite).

Calibration: collecting the forecast rows and re-running the report settles the decision (GO or NO-GO) in at
least 80 % of replications in the simulated world when the true effect is at least about one current standard
error from its threshold (``tests/offline_eval/test_report.py::test_forecast_is_calibrated``). The default
``power`` is 0.95, not 0.9: with 0.9 on the plug-in effect only about 80 % settled there, because a revenue
estimate and its standard error are strongly correlated (rare, large conversions), so the plug-in under-states
the rows needed exactly when the estimate is low. (Under a normal model, planning for 90 % would settle about 95 %
of such cases.) No forecast can settle an effect that sits on its threshold.

References next to each candidate
---------------------------------
The logging policy's on-policy value (the metric's logged mean), the **best single plan** (the plans ranked by
their self-normalised IPS value on the training rows; each row gets the best-ranked eligible plan) and a
**popularity** baseline (ranked by conversions on the training rows). A policy's **hit rate** is the share of
converting test rows (``conversion`` metric > 0, default the primary metric) where its top plan is the plan the
user converted on. Without a split the references are ranked on the evaluation rows themselves (in-sample; said
in the reasons).
"""

from __future__ import annotations

import base64
import dataclasses
import io
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from scipy.stats import norm

from offline_eval.blend import blend_shift, shifted_interval
from offline_eval.data import LoggedData
from offline_eval.diagnostics import (
    ESS_MIN,
    ESS_MIN_SHARE,
    INFORMATIVE_ROWS_MIN,
    MEAN_WEIGHT_TOL,
    MEAN_WEIGHT_Z,
    SUPPORT_DEFICIT_MAX,
    Diagnostics,
    DiagnosticWarning,
)
from offline_eval.estimators import DM, DR, Estimate, Estimator, resolve_target
from offline_eval.estimators.base import ResolvedTarget
from offline_eval.evaluate import BLEND_NAME
from offline_eval.gap import gap_variance
from offline_eval.intervals import Interval, RowTerms, normal_interval
from offline_eval.small_sample import clip_to_range, kl_difference_p_value, kl_interval

__all__ = [
    "DECISIONS",
    "LOGGING",
    "TABLE_COLUMNS",
    "Forecast",
    "Guardrail",
    "RolloutReport",
    "holm_bonferroni",
    "rollout_report",
]

GO, NO_GO, MORE = "GO", "NO-GO", "NEED MORE DATA"
#: The three decisions.
DECISIONS = (GO, NO_GO, MORE)
#: Name of the logging policy as a baseline and as a reference row.
LOGGING = "logging"
BEST_PLAN = "best single plan"
POPULARITY = "popularity"
#: A forecast never asks for more than this many times the current rows (beyond it: "indistinguishable").
MAX_GROWTH = 100.0

TABLE_COLUMNS = (
    "policy",
    "role",
    "metric",
    "kind",
    "interval",
    "value",
    "ci_low",
    "ci_high",
    "diff",
    "diff_se",
    "diff_ci_low",
    "diff_ci_high",
    "threshold",
    "status",
    "p_holm",
    "verdict",
    "hit_rate",
    "ess",
    "mean_weight",
    "support_deficit",
    "informative_rows",
    "more_rows",
)


# ----------------------------------------------------------------------------------------------------------------
# inputs
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Guardrail:
    """A metric that must not get worse by more than a non-inferiority margin.

    Parameters
    ----------
    column : str or array_like
        The metric's column of the DataFrame ``data`` (per decision, e.g. ``"cancelled"`` as 0/1), or, when
        ``data`` is a LoggedData, an array of its per-row values.
    margin : float
        Non-inferiority margin, >= 0, in metric units per decision: the largest harm worth accepting (e.g. 0.002 =
        0.2 percentage points more cancellations).
    higher_is_better : bool
        False (default) for harms such as cancellations and cannibalised revenue (an increase is the harm); True
        for metrics such as retention (a decrease is the harm).
    value_range : (float, float), optional
        A-priori range of one per-decision value (e.g. ``(0, 1)`` for a 0/1 flag, ``(0, top price)`` for a refund
        amount), used by the small-sample bound that judges the guardrail while fewer than
        :data:`~offline_eval.diagnostics.INFORMATIVE_ROWS_MIN` of a candidate's offers are informative -- off the
        end of the range where most values sit: a refund, or a churner of a retention flag
        (:mod:`offline_eval.small_sample`). Default: the range observed on the evaluated rows (with 0), which
        bounds nothing when every value is the same -- give it for a rare harm or a rare loss.

    Examples
    --------
    >>> Guardrail("cancelled", margin=0.002)
    Guardrail(column='cancelled', margin=0.002, higher_is_better=False)
    >>> Guardrail("refunded", margin=0.001, value_range=(0, 1))
    Guardrail(column='refunded', margin=0.001, higher_is_better=False, value_range=(0.0, 1.0))
    >>> Guardrail("cancelled", margin=-1)
    Traceback (most recent call last):
    ...
    ValueError: margin must be a finite number >= 0 (metric units per decision), got -1
    """

    column: Any
    margin: float
    higher_is_better: bool = False
    value_range: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.margin, bool) or not isinstance(self.margin, (int, float, np.integer, np.floating)):
            raise TypeError(f"margin must be a number, got {type(self.margin).__name__} {self.margin!r}")
        if not (math.isfinite(float(self.margin)) and float(self.margin) >= 0):
            raise ValueError(f"margin must be a finite number >= 0 (metric units per decision), got {self.margin!r}")
        if not isinstance(self.higher_is_better, bool):
            raise TypeError(f"higher_is_better must be a bool, got {type(self.higher_is_better).__name__}")
        if self.value_range is not None:
            object.__setattr__(self, "value_range", _check_range(self.value_range, "value_range"))

    def __repr__(self) -> str:
        col = self.column if isinstance(self.column, str) else f"<{len(np.asarray(self.column))} values>"
        extra = "" if self.value_range is None else f", value_range={self.value_range!r}"
        return f"Guardrail(column={col!r}, margin={self.margin!r}, higher_is_better={self.higher_is_better}{extra})"


def holm_bonferroni(pvalues: Sequence[float] | np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Holm's step-down correction: which hypotheses are rejected at family-wise level ``alpha``.

    Returns ``(rejected, adjusted)``: booleans and Holm-adjusted p-values (``max_{j <= i} min(1, (m - j + 1)
    p_(j))`` in sorted order), in the input order. Controls the family-wise error rate under any dependence.

    Examples
    --------
    >>> rejected, adjusted = holm_bonferroni([0.01, 0.04, 0.03], alpha=0.05)
    >>> rejected.tolist(), adjusted.round(2).tolist()
    ([True, False, False], [0.03, 0.06, 0.06])
    """
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1 or not np.all((p >= 0) & (p <= 1)):
        raise ValueError(f"pvalues must be a 1-D array of probabilities in [0, 1], got {pvalues!r}")
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted_sorted = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    adjusted = np.empty(m)
    adjusted[order] = adjusted_sorted
    return adjusted <= alpha, adjusted


def _check_alpha(alpha: Any) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.integer, np.floating)):
        raise TypeError(f"alpha must be a number in (0, 1), got {type(alpha).__name__} {alpha!r}")
    if not 0 < float(alpha) < 1:
        raise ValueError(f"alpha must lie in (0, 1) (0.05 for 95% intervals), got {alpha!r}")
    return float(alpha)


def _check_range(value: Any, name: str) -> tuple[float, float]:
    """``value`` as a ``(low, high)`` pair of finite floats with ``low < high`` (the a-priori range of one value)."""
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be a (low, high) pair of numbers or None, got {value!r}")
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a (low, high) pair of numbers or None, got {value!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"{name} must be finite with low < high (the range of one per-decision value), got {value!r}")
    return low, high


def _check_values_in_range(values: np.ndarray, value_range: tuple[float, float] | None, what: str) -> None:
    """The small-sample bound and the clipping are valid only on a range that holds every value of the metric."""
    if value_range is not None and len(values) and not (value_range[0] <= values.min()
                                                        and values.max() <= value_range[1]):
        raise ValueError(
            f"{what} is {value_range} but its values run from {values.min():g} to {values.max():g}; give a range "
            "that holds every possible value"
        )


def _check_finite(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(float(value)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def _check_guardrails(guardrails: Any) -> dict[str, Guardrail]:
    if guardrails is None:
        return {}
    if not isinstance(guardrails, Mapping):
        raise TypeError(
            "guardrails must map names to Guardrail(column, margin) (or (column, margin) pairs), e.g. "
            f"{{'cancellations': Guardrail('cancelled', 0.002)}}; got {type(guardrails).__name__}"
        )
    out: dict[str, Guardrail] = {}
    for name, g in guardrails.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"guardrails must be keyed by non-empty str names, got {name!r}")
        if isinstance(g, tuple) and len(g) == 2:
            g = Guardrail(g[0], g[1])
        if not isinstance(g, Guardrail):
            raise TypeError(
                f"guardrails[{name!r}] must be a Guardrail(column, margin) or a (column, margin) pair, got "
                f"{type(g).__name__}"
            )
        out[name] = g
    return out


def _with_reward(data: LoggedData, values: Any, name: str) -> LoggedData:
    r = np.asarray(values)
    if r.dtype.kind not in "iufb" or r.ndim != 1:
        raise TypeError(f"{name} must be a 1-D numeric array of per-row metric values, got {r.dtype} {r.shape}")
    if len(r) != data.n:
        raise ValueError(f"{name} has {len(r)} values but data has {data.n} rows; give one value per logged row")
    r = r.astype(np.float64)
    if not np.isfinite(r).all():
        raise ValueError(f"{name} must be finite; {int((~np.isfinite(r)).sum())} of {data.n} values are not")
    return LoggedData(
        data.context,
        data.action,
        r,
        data.propensity,
        probabilities=data.probabilities,
        eligible=data.eligible,
        timestamp=data.timestamp,
        event_id=data.event_id,
        action_names=data.action_names,
        n_actions=data.n_actions,
        validate=False,
    )


def _metric_data(
    data: Any,
    metric: str,
    guardrails: Mapping[str, Guardrail],
    conversion: str | None,
    frame_options: Mapping[str, Any],
) -> dict[str, LoggedData]:
    """One LoggedData per metric (primary first, then guardrails, then a conversion column), on identical rows."""
    if isinstance(data, LoggedData):
        out = {metric: data}
        for name, g in guardrails.items():
            if isinstance(g.column, str):
                raise TypeError(
                    f"guardrails[{name!r}].column is the column name {g.column!r}, but data is a LoggedData with a "
                    "single reward: pass the metric's per-row values as the column, or pass data as a DataFrame"
                )
            out[name] = _with_reward(data, g.column, f"guardrails[{name!r}].column")
        if conversion is not None and conversion not in out:
            raise ValueError(
                f"conversion={conversion!r} must name the metric or a guardrail when data is a LoggedData "
                f"(known: {list(out)})"
            )
        return out
    if not isinstance(data, pd.DataFrame):
        raise TypeError(
            f"data must be a LoggedData or a pandas DataFrame of decision-log rows with metric columns, got "
            f"{type(data).__name__}"
        )
    columns = {metric: metric}
    for name, g in guardrails.items():
        if not isinstance(g.column, str):
            raise TypeError(f"guardrails[{name!r}].column must be a column name (str) when data is a DataFrame")
        columns[name] = g.column
    if conversion is not None and conversion not in columns:
        columns[conversion] = conversion
    for name, col in columns.items():
        if col not in data.columns:
            what = "metric" if name == metric else "conversion" if name == conversion else f"guardrails[{name!r}]"
            raise ValueError(f"{what}: column {col!r} is not in data (columns: {list(data.columns)})")
    id_column = frame_options.get("event_id", "event_id")
    if id_column is not None and id_column in data.columns:  # the decision-log readers' rule: first occurrence kept
        repeated = data[id_column].duplicated(keep="first").to_numpy()
        if repeated.any():
            from offline_eval.schema import warn_duplicates

            warn_duplicates(int(repeated.sum()), data.loc[repeated, id_column].unique().tolist(), stacklevel=4)
            data = data.loc[~repeated]
    values = {}
    for name, col in columns.items():
        try:
            values[name] = pd.to_numeric(data[col], errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError) as err:
            raise TypeError(f"column {col!r} must be numeric (metric values per decision): {err}") from None
    missing = np.zeros(len(data), dtype=bool)
    for name, v in values.items():
        missing |= np.isnan(v)
        infinite = np.isinf(v)
        if infinite.any():
            raise ValueError(
                f"column {columns[name]!r} has {int(infinite.sum())} infinite values (first at row "
                f"{int(np.flatnonzero(infinite)[0])}); every metric value must be finite (NaN: outcome not joined yet)"
            )
    frame = data
    if missing.any():
        warnings.warn(
            f"dropped {int(missing.sum())} of {len(data)} rows with a missing metric (outcome not joined yet); every "
            "metric is evaluated on the same rows",
            UserWarning,
            stacklevel=3,
        )
        frame = data.loc[~missing]
    primary = LoggedData.from_dataframe(frame, reward=metric, **dict(frame_options))
    out = {metric: primary}
    for name in columns:
        if name != metric:  # on the primary's rows: without those it quarantined
            kept = np.delete(values[name][~missing], primary.quarantined.rows)
            out[name] = _with_reward(primary, kept, f"column {columns[name]!r}")
    return out


def _split(
    data: dict[str, LoggedData], train: Any, split_at: Any, test_days: Any
) -> tuple[dict[str, LoggedData] | None, dict[str, LoggedData]]:
    given = [k for k, v in (("train", train), ("split_at", split_at), ("test_days", test_days)) if v is not None]
    if len(given) > 1:
        raise ValueError(f"give at most one of train, split_at and test_days, got {given}")
    if train is not None:
        first = next(iter(data))
        if isinstance(train, pd.DataFrame):
            raise TypeError("train must be a LoggedData (the training rows, primary metric as reward)")
        if not isinstance(train, LoggedData):
            raise TypeError(f"train must be a LoggedData, got {type(train).__name__}")
        if train.action_names != data[first].action_names:
            raise ValueError(
                f"train has arms {train.action_names} but data has {data[first].action_names}; they must match"
            )
        return {first: train}, data
    if split_at is None and test_days is None:
        return None, data
    from offline_eval.splits import chronological_split

    parts = {name: chronological_split(d, at=split_at, test_days=test_days) for name, d in data.items()}
    return {k: v[0] for k, v in parts.items()}, {k: v[1] for k, v in parts.items()}


def _check_disjoint(train: LoggedData, test: LoggedData, data: Any) -> None:
    """A given ``train`` may not be the evaluated rows: not the same object, and no event id in both."""
    if train is data:
        raise ValueError("train is the evaluated data itself; give the training rows only (e.g. chronological_split)")
    if train.event_id is not None and test.event_id is not None:
        shared = pd.Index(train.event_id).intersection(pd.Index(test.event_id))
        if len(shared):
            raise ValueError(
                f"train and data share {len(shared):,} event ids (e.g. {shared[0]!r}): the evaluated rows must not "
                "be training rows; build the parts with offline_eval.splits.chronological_split"
            )


def _split_text(train: LoggedData, test: LoggedData) -> str:
    """How the training and evaluated rows relate, for the report's settings (``earlier`` only when the times say so)."""
    sizes = f"trained on {train.n:,}"
    if train.timestamp is None or test.timestamp is None:
        return f"{sizes} given rows, tested on {test.n:,} rows (no timestamps: that training came first is not checked)"
    if train.n and test.n and train.timestamp.max() >= test.timestamp.min():
        return f"{sizes} given rows, tested on {test.n:,} rows (the training rows are not all earlier)"
    return f"{sizes} earlier rows, tested on {test.n:,} later rows"


# ----------------------------------------------------------------------------------------------------------------
# targets
# ----------------------------------------------------------------------------------------------------------------


def _is_fit_function(target: Any) -> bool:
    return callable(target) and not callable(getattr(target, "action_probabilities", None)) and not isinstance(
        target, (np.ndarray, pd.DataFrame, str, int)
    )


def _materialise(data: LoggedData, target: Any, name: str) -> np.ndarray:
    """The target on ``data`` as (n, K) probabilities or (n,) int64 actions, validated once."""
    resolved = resolve_target(data, target, name=name)
    if resolved.actions is not None:
        return np.asarray(resolved.actions)
    assert resolved.probabilities is not None
    return np.asarray(resolved.probabilities)


def _ranked_plan(order: Sequence[int], eligible: np.ndarray | None, n: int, k: int) -> np.ndarray:
    """Per row, the first arm of ``order`` that is eligible there, shape (n,) int64."""
    if eligible is None:
        return np.full(n, order[0], dtype=np.int64)
    E = eligible[:, list(order)]
    first = np.argmax(E, axis=1)
    out = np.asarray(order, dtype=np.int64)[first]
    if not E.any(axis=1).all():
        raise ValueError("some logged rows have no eligible arm; the reference plans cannot be offered there")
    return out


def _plan_rankings(train: LoggedData, converted: np.ndarray) -> tuple[list[int], list[int], np.ndarray, np.ndarray]:
    """(best-plan order, popularity order, per-arm SNIPS value, per-arm conversions) from the training rows."""
    k = train.n_actions
    w = 1.0 / train.propensity
    num = np.bincount(train.action, weights=w * train.reward, minlength=k)
    den = np.bincount(train.action, weights=w, minlength=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where(den > 0, num / np.where(den > 0, den, 1.0), -np.inf)
    counts = np.bincount(train.action, weights=converted.astype(np.float64), minlength=k)
    best = sorted(range(k), key=lambda j: (-value[j], j))
    popular = sorted(range(k), key=lambda j: (-counts[j], j))
    return best, popular, value, counts


def _top_plan(target: np.ndarray) -> np.ndarray:
    return target if target.ndim == 1 else np.argmax(target, axis=1)


def _hit_rate(target: np.ndarray, data: LoggedData, converted: np.ndarray) -> float:
    if not converted.any():
        return float("nan")
    return float(np.mean(_top_plan(target)[converted] == data.action[converted]))


# ----------------------------------------------------------------------------------------------------------------
# statistics
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Paired:
    value: float
    se: float
    low: float
    high: float
    floored: bool = False  # widened by the small-sample floor (_SmallSample)


#: The baseline's difference with itself: 0, without an interval.
_SELF = _Paired(0.0, float("nan"), float("nan"), float("nan"))


class _KLSide(NamedTuple):
    """A policy's terms for the small-sample floor (:func:`offline_eval.small_sample.ips_kl_side`): their mean,
    a-priori range and informative rows."""

    mean: float
    low: float
    high: float
    n_informative: int


class _SmallSample:
    """The small-sample floor of one metric's intervals, as :func:`offline_eval.evaluate` and
    :func:`offline_eval.compare` put it (:mod:`offline_eval.small_sample`): a policy with fewer than
    :data:`INFORMATIVE_ROWS_MIN` informative rows gets its value interval widened to contain the KL interval of its
    IPS terms (``ResolvedTarget.small_sample_floor``), a difference whose either side has too few the union bound
    of both sides' KL intervals at ``alpha / 2`` each (the lift floor over the logged rewards; ``compare``'s for a
    candidate baseline). The logging policy's terms are its rewards (weight 1), in the range itself (either
    mirrored form of :func:`offline_eval.small_sample.ips_kl_side` with ``w = 1``).

    ``value_range`` is the metric's a-priori range (``rollout_report``'s ``reward_range`` for the primary metric,
    the guardrail's ``value_range``), else the observed one; informative rows are counted on it
    (:func:`offline_eval.diagnostics.informative_rows`). When it is not given and every value of the metric is the
    same, nothing bounds a policy without informative rows (``unbounded``): its floored interval is the whole line.
    A stated range also clips every interval (floored or not) to what the quantity can be: a value to the range, a
    difference to ``[low - high, high - low]`` (:func:`offline_eval.small_sample.clip_to_range`, as ``evaluate``
    and ``compare`` clip; coverage is kept).
    """

    def __init__(self, d: LoggedData, resolved: Mapping[str, ResolvedTarget], alpha: float,
                 value_range: tuple[float, float] | None) -> None:
        from offline_eval.diagnostics import informative_rows

        self.n, self.alpha, self.value_range, self.resolved = d.n, alpha, value_range, resolved
        self._range = (float(d.reward.min()), float(d.reward.max())) if value_range is None else value_range
        self.unbounded = value_range is None and self._range[0] == self._range[1]
        self._sides = {LOGGING: _KLSide(float(d.reward.mean()), *self._range,
                                        informative_rows(np.ones(d.n), d.reward, value_range))}

    def _side(self, name: str) -> _KLSide:
        """The KL side of ``name``, built on first use: a candidate's weight bound is an O(n K) pass that only a
        floored difference needs."""
        side = self._sides.get(name)
        if side is None:
            rt = self.resolved[name]
            side = self._sides[name] = _KLSide(*rt.value_kl_side(self.value_range),
                                               rt.informative(self.value_range).rows)
        return side

    @property
    def decides(self) -> bool:
        """Whether a floored interval may decide: only on a stated range. The observed one can miss what a policy's
        own offers would bring (a plan none of whose offers converted, dearer than anything that did): measured,
        it gave confident wrong answers above the nominal rate (module docstring)."""
        return self.value_range is not None

    def range_settings(self) -> dict[str, Any]:
        """The range of one value the floor rests on (for the settings): ``low``, ``high``, ``given``."""
        return {"low": self._range[0], "high": self._range[1], "given": self.decides}

    def count(self, name: str, base: str | None = None) -> int:
        """Informative rows of ``name`` (the fewer of ``name`` and ``base`` for their difference)."""
        def informative(policy: str) -> int:
            if policy == LOGGING:
                return self._sides[LOGGING].n_informative
            return self.resolved[policy].informative(self.value_range).rows

        k = informative(name)
        return k if base is None else min(k, informative(base))

    def _kl(self, name: str, alpha: float) -> tuple[float, float]:
        if name == LOGGING:
            side = self._sides[LOGGING]
            return kl_interval(side.mean, self.n, side.low, side.high, alpha)
        return self.resolved[name].value_kl_interval(alpha, self.value_range)

    def _clip(self, iv: _Paired, difference: bool) -> _Paired:
        """``iv`` clipped to what a value (a ``difference``) can be on the stated range; unchanged without one."""
        low, high = clip_to_range(iv.low, iv.high, iv.value, self.value_range, difference)
        return dataclasses.replace(iv, low=low, high=high)

    def impossible(self, threshold: float) -> tuple[bool, bool]:
        """Whether ``H0: d >= threshold`` and ``H0: d <= threshold`` are impossible for a difference ``d`` of two
        values on the stated range (``threshold`` beyond ``high - low``, or below ``low - high``): such a test
        rejects with p = 0, as the clipped interval shows."""
        if self.value_range is None:
            return False, False
        span = self.value_range[1] - self.value_range[0]
        return threshold > span, threshold < -span

    def value(self, name: str, iv: _Paired) -> _Paired:
        """``iv``, the interval of ``name``'s value, with the floor when ``name`` has too few informative rows,
        clipped to the stated range."""
        return self._clip(self._floored_value(name, iv), difference=False)

    def diff(self, name: str, base: str, iv: _Paired) -> _Paired:
        """``iv``, the interval of ``V(name) - V(base)``, with the floor when either has too few informative rows,
        clipped to the differences the stated range allows."""
        return self._clip(self._floored_diff(name, base, iv), difference=True)

    def _floored_value(self, name: str, iv: _Paired) -> _Paired:
        if self.count(name) >= INFORMATIVE_ROWS_MIN:
            return iv
        if self.unbounded:
            low, high = -math.inf, math.inf
        elif name == LOGGING:
            low, high = self._kl(LOGGING, self.alpha)
        else:
            floor = self.resolved[name].small_sample_floor(self.alpha, self.value_range)
            assert floor is not None
            low, high = floor.value_low, floor.value_high
        return _Paired(iv.value, iv.se, min(iv.low, low), max(iv.high, high), True)

    def _floored_diff(self, name: str, base: str, iv: _Paired) -> _Paired:
        if self.count(name, base) >= INFORMATIVE_ROWS_MIN:
            return iv
        if self.unbounded:
            low, high = -math.inf, math.inf
        elif base == LOGGING and name != LOGGING:  # evaluate()'s lift floor
            floor = self.resolved[name].small_sample_floor(self.alpha, self.value_range)
            assert floor is not None  # off each end of the range, the target's weighted rows are among the logged
            low, high = floor.lift_low, floor.lift_high
        else:  # compare()'s union bound
            a_low, a_high = self._kl(name, self.alpha / 2.0)
            b_low, b_high = self._kl(base, self.alpha / 2.0)
            low, high = a_low - b_high, a_high - b_low
        return _Paired(iv.value, iv.se, min(iv.low, low), max(iv.high, high), True)

    def p_values(self, name: str, base: str, threshold: float) -> tuple[float, float] | None:
        """One-sided p-values of ``H0: d >= threshold`` and ``H0: d <= threshold`` for ``d = V(name) - V(base)``
        from the floor of :meth:`diff` (:func:`offline_eval.small_sample.kl_difference_p_value`), None when the
        difference has enough informative rows to need no floor."""
        if self.count(name, base) >= INFORMATIVE_ROWS_MIN:
            return None
        if self.unbounded:
            return 1.0, 1.0
        a, b = self._side(name)[:3], self._side(base)[:3]
        return (kl_difference_p_value(a, b, self.n, threshold, upper=True),
                kl_difference_p_value(a, b, self.n, threshold, upper=False))


@dataclass(frozen=True)
class _Blended:
    """Per-row DR and DM terms of a target (or of a difference of targets) and its importance weights (n,)."""

    dr: RowTerms
    dm: RowTerms
    w: np.ndarray
    level: _Blended | None = None  # for a lift over the logged rewards: the target's own terms, which set the weight

    def minus(self, reward: np.ndarray) -> _Blended:
        """The lift over the logged rewards, blended with the target's own weight (as :func:`evaluate`'s lift)."""
        return _Blended(self.dr.minus(reward), self.dm.minus(reward), self.w, self)

    def __sub__(self, other: _Blended) -> _Blended:
        return _Blended(self.dr - other.dr, self.dm - other.dm, self.w - other.w)


class _Scorer:
    """The report's estimator: a given one, or (``estimator=None``) the DR-DM blend that :func:`offline_eval.evaluate`
    recommends, from the same cross-fitted default reward model (:mod:`offline_eval.blend`, :mod:`offline_eval.gap`).

    ``prepare(d)`` fits the reward model on one metric's rows; ``terms`` gives a target's terms (``RowTerms``, or
    :class:`_Blended`, which subtract and shift like them); ``interval`` their estimate; ``p_values`` the one-sided
    tests of a threshold, from the same intervals. A blend's interval is DR's widened to contain the blend and its
    ``se`` DR's, so its tests are never less conservative than DR's.
    """

    def __init__(self, estimator: Estimator | None, alpha: float,
                 reward_range: tuple[float, float] | None = None) -> None:
        self.blend = estimator is None
        self.est = (DR(alpha=alpha, reward_range=reward_range) if estimator is None
                    else dataclasses.replace(estimator, alpha=alpha, reward_range=reward_range))
        self.dm = DM(alpha=alpha)
        self.name = BLEND_NAME if self.blend else self.est.name
        self._data: LoggedData | None = None
        self.n_rows = 0  # of the metric being scored (prepare)
        self._resid = np.empty(0)
        # id of a blended target's own terms -> (the terms, DR's interval, the blend's shift), for the current
        # metric: a target's value and its lift share them (holding the terms keeps their id from being reused)
        self._own_cache: dict[int, tuple[_Blended, Interval, float]] = {}

    def kind(self, n: int, floored: bool) -> str:
        """The interval kind on ``n`` rows, as :func:`offline_eval.evaluate` names it (``+kl``: with the small-sample
        floor; the blend's interval is DR's, floored, widened to contain the blend)."""
        method = self.est._method(n) + ("+kl" if floored else "")
        return f"bias-aware({method})" if self.blend else method

    def prepare(self, d: LoggedData) -> np.ndarray | None:
        q = self.est.reward_matrix(d)
        self.n_rows = d.n
        self._own_cache.clear()
        if self.blend and q is not None:
            self._data = d
            self._resid = d.reward - q[np.arange(d.n), d.action]
        return q

    def terms(self, resolved: ResolvedTarget, q: np.ndarray | None) -> RowTerms | _Blended:
        dr = self.est._row_terms(resolved, q).terms
        if not self.blend:
            return dr
        return _Blended(dr, self.dm._row_terms(resolved, q).terms, resolved.weights)

    def logging_terms(self, reward: np.ndarray) -> RowTerms | _Blended:
        """The logging policy's on-policy terms: the rewards (no model, no gap)."""
        own = RowTerms(np.array(reward, dtype=np.float64))
        return _Blended(own, own, np.zeros(len(reward))) if self.blend else own

    def _own(self, own: _Blended) -> tuple[Interval, float]:
        """DR's interval of a blended target's own terms and the blend's shift ``lam (DR - DM)`` (0 when a value is
        not finite), computed once per metric."""
        hit = self._own_cache.get(id(own))
        if hit is None:
            d = self._data
            assert d is not None  # prepare() came first
            dr = self.est._interval(own.dr)
            gap_var = gap_variance(d.context, d.action, d.n_actions, own.w, self._resid)  # the default model projects
            shifted = blend_shift(float(dr.value), float(own.dm.linearized().mean()), gap_var, float(dr.se) ** 2)
            hit = (own, dr, 0.0 if shifted is None else shifted[1])
            self._own_cache[id(own)] = hit
        return hit[1], hit[2]

    def interval(self, terms: RowTerms | _Blended | np.ndarray) -> _Paired:
        if not isinstance(terms, _Blended):
            rt = terms if isinstance(terms, RowTerms) else RowTerms(np.asarray(terms, dtype=np.float64))
            iv = self.est._interval(rt)
            return _Paired(float(iv.value), float(iv.se), float(iv.low), float(iv.high))
        if terms.level is None:
            dr, shift = self._own(terms)
        else:  # a lift: its own interval, shifted by the target's own blend (its value minus the logged mean)
            dr, shift = self.est._interval(terms.dr), self._own(terms.level)[1]
        value, low, high = shifted_interval(float(dr.value), float(dr.low), float(dr.high), shift)
        return _Paired(value, float(dr.se), low, high)


    def p_values(self, terms: RowTerms | _Blended, value: float, threshold: float) -> tuple[float, float]:
        """One-sided p-values of ``H0: d >= threshold`` and of ``H0: d <= threshold`` for the paired difference
        ``terms`` whose reported estimate is ``value``, from this scorer's own intervals.

        Each is half the smallest two-sided level at which the interval excludes ``threshold`` on that side. For
        the normal interval that is the z-test's p-value; for the empirical-likelihood interval it comes from one
        profile evaluation at the threshold (:func:`offline_eval.empirical_likelihood.el_mean_p_value`, which keeps
        the interval's range fallback); for the other kinds (bootstrap, Bernstein) the level is found by bisection
        on its logit (:func:`_bisected_p_value`). A blend's interval is DR's widened to contain the blend, which
        excludes the threshold only where DR's does and the blend lies on the same side: its p-value is DR's then,
        else 1. p-values are resolved down to about 5e-14 (a level's logit >= -30; with a bootstrap interval of B
        resamples down to 1 / (B + 1)); smaller ones are reported as that.
        """
        rt = terms.dr if isinstance(terms, _Blended) else terms
        own = float(rt.value())
        if own == threshold:
            below = above = 1.0
        elif own < threshold:
            below = self._one_sided(rt, threshold, upper=True)
            above = 1.0 - below
        else:
            above = self._one_sided(rt, threshold, upper=False)
            below = 1.0 - above
        if self.blend:
            below = below if value < threshold else 1.0
            above = above if value > threshold else 1.0
        return below, above

    def _one_sided(self, rt: RowTerms, threshold: float, upper: bool) -> float:
        """p-value of ``H0: d >= threshold`` (``upper``: the terms' estimate is below the threshold, rejected when the
        interval's upper end is too) or of ``H0: d <= threshold`` (the estimate is above it)."""
        method = self.est._method(rt.n)
        if method == "el":
            from offline_eval.empirical_likelihood import el_mean_p_value

            psi = rt.linearized()  # the terms el_mean_interval is computed on (compute_interval's "el")
            on_side = (threshold > float(psi.mean())) == upper  # else no level excludes it (rounding only)
            p = el_mean_p_value(psi, threshold) if on_side else 0.5
        elif method == "normal":
            iv = normal_interval(rt, 0.5)  # value and se (any level)
            p = float(norm.sf(abs(threshold - float(iv.value)) / iv.se)) if iv.se > 0 else (
                0.0 if iv.se == 0 else 0.5)
        else:
            return _bisected_p_value(lambda level: dataclasses.replace(self.est, alpha=level)._interval(rt),
                                     threshold, upper,
                                     bootstrap=int(self.est.n_bootstrap) if method == "bootstrap" else None)
        return min(max(p, _expit(_LOGIT_MIN) / 2), _expit(_LOGIT_MAX) / 2)


def _bisected_p_value(interval: Any, threshold: float, upper: bool, bootstrap: int | None = None) -> float:
    """Half the smallest two-sided level at which ``interval(level)`` (an :class:`Interval`) excludes ``threshold``
    (``upper``: its upper end falls below it; else its lower end above it), by bisection on the level's logit in
    [``_LOGIT_MIN``, ``_LOGIT_MAX``] (``_P_BISECT`` steps); with ``bootstrap`` = B resamples the smallest level is
    ``2 / (B - 1)``, the resolution of B resamples."""

    def excludes(logit: float) -> bool:
        iv = interval(_expit(logit))
        return bool(iv.high < threshold) if upper else bool(iv.low > threshold)

    lo, hi = _LOGIT_MIN, _LOGIT_MAX  # at hi the interval has all but shrunk to the estimate
    if bootstrap is not None:  # B resamples resolve one-sided p-values down to 1 / (B + 1)
        lo = math.log(2.0 / (bootstrap - 1))
    if excludes(lo):
        return _expit(lo) / 2
    if not excludes(hi):
        return _expit(hi) / 2
    for _ in range(_P_BISECT):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if excludes(mid) else (mid, hi)
    return _expit(hi) / 2


def _expit(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


#: Logits of the smallest and largest two-sided levels a guardrail's p-value resolves (p in [4.7e-14, 0.5]).
_LOGIT_MIN, _LOGIT_MAX = -30.0, 30.0
#: Bisection steps for a p-value of the interval kinds without a direct inversion (about 1e-7 relative precision).
_P_BISECT = 30


#: How the overlap checks rank, worst first: "no-go" (more logs of the kind cannot help), "small" (too few effective
#: rows: no interval of the target can be trusted), "outcomes" (too few informative primary outcomes among its
#: offers -- off the end of the metric's range where most sit: the lift's interval cannot be trusted).
_OVERLAP_RANK = {"no-go": 0, "small": 1, "outcomes": 2, "ok": 3}


def _overlap(d: Diagnostics, n: int) -> tuple[str, str]:
    """("ok" | "no-go" | "small" | "outcomes", sentence) for a target's weight diagnostics (see ``_OVERLAP_RANK``)."""
    if d.support_deficit is not None and d.support_deficit > SUPPORT_DEFICIT_MAX:
        return "no-go", (
            f"{100 * d.support_deficit:.1f}% of its offers are ones the logging policy never makes, so the logs "
            "cannot say how they would do"
        )
    if d.ess < ESS_MIN_SHARE * n:
        return "no-go", (
            f"the logs rarely made the offers it would make: only about {d.ess:,.0f} of {n:,} decisions "
            "effectively count (importance weights too uneven), and more logs of the same kind will not fix that"
        )
    expected = 1.0 - (d.support_deficit or 0.0)
    gap = abs(d.mean_weight - expected)
    # the diagnostics flag the mean weight only beyond MEAN_WEIGHT_Z standard errors; their warning says so
    if gap > MEAN_WEIGHT_TOL and any("mean importance weight" in w for w in d.warnings):
        return "no-go", (
            f"its mean importance weight is {d.mean_weight:.3g} instead of about {expected:.3g} (more than "
            f"{MEAN_WEIGHT_Z:g} standard errors off), which points to wrong logged propensities"
        )
    if d.ess < ESS_MIN:
        return "small", f"only about {d.ess:.0f} decisions effectively count (at least {ESS_MIN:.0f} are needed)"
    if d.informative_rows is not None and d.informative_rows < INFORMATIVE_ROWS_MIN:
        return "outcomes", (
            f"only {d.informative_rows} of the logged decisions it would make have an informative outcome (one off "
            f"the end of the metric's range where most outcomes sit; below {INFORMATIVE_ROWS_MIN} its intervals are "
            "the small-sample bound, valid at any size but wide)"
        )
    return "ok", ""


def _outcome_rows(n: int, k: int) -> float:
    """More rows for ``k`` informative outcomes among ``n`` rows to reach :data:`INFORMATIVE_ROWS_MIN`, at the rate
    seen so far (at least one outcome)."""
    return float(math.ceil(n * INFORMATIVE_ROWS_MIN / max(k, 1)) - n)


def _sample_needs(d: Diagnostics, n: int) -> list[tuple[str, float, Estimate | None, float, float]]:
    """The forecast's needs of a target whose diagnostics show a small sample: ``("ess", more rows)`` below
    :data:`ESS_MIN` effective rows, ``("outcomes", more rows)`` below :data:`INFORMATIVE_ROWS_MIN` informative ones."""
    out: list[tuple[str, float, Estimate | None, float, float]] = []
    if d.ess < ESS_MIN:
        out.append(("ess", float(math.ceil(n * ESS_MIN / max(d.ess, 1e-12)) - n), None, 0.0, 0.0))
    if d.informative_rows is not None and d.informative_rows < INFORMATIVE_ROWS_MIN:
        out.append(("outcomes", _outcome_rows(n, d.informative_rows), None, 0.0, 0.0))
    return out


def _planning_estimate(value: float, se: float, z_level: float, n: int, diag: Diagnostics) -> Estimate:
    """An :class:`Estimate` whose interval is ``value +- z_level * se``: the interval whose growth is planned."""
    return Estimate(
        value=value,
        se=se,
        ci_low=value - z_level * se,
        ci_high=value + z_level * se,
        n=n,
        estimator="forecast",
        alpha=float(2 * norm.sf(z_level)),
        interval="normal",
        diagnostics=diag,
    )


def _more_rows_to_settle(plan: Estimate, threshold: float, z_level: float, z_power: float) -> float:
    """More rows for ``plan``'s interval to exclude ``threshold`` with power ``z_power`` if the truth is its value.

    The interval excludes the threshold with that power once its half-width is ``gap * z_level / (z_level +
    z_power)``: :func:`offline_eval.power.rows_needed` at that half-width.
    """
    from offline_eval.power import rows_needed

    gap = abs(plan.value - threshold)
    if plan.se <= 0:
        return 1.0
    if gap == 0:
        return math.inf
    return float(rows_needed(plan, gap * z_level / (z_level + z_power)))


def _rows_per_day(data: LoggedData) -> float | None:
    """Decisions per day at the data's traffic (:func:`offline_eval.power.days_needed`), None without times."""
    from offline_eval.power import days_needed

    if data.timestamp is None or data.n < 2:
        return None
    try:
        return 1.0 / days_needed(data, 1.0)
    except ValueError:  # every row at one instant
        return None


# ----------------------------------------------------------------------------------------------------------------
# the report
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class Forecast:
    """How much more data would settle an undecided candidate.

    Attributes
    ----------
    candidate : str
    more_rows : float
        Additional logged decisions (``inf`` when the effect is indistinguishable from its threshold at any
        realistic size; see :data:`MAX_GROWTH`).
    more_days : float or None
        ``more_rows`` at the evaluated rows' traffic (None without timestamps).
    rows_per_day : float or None
    current_rows : int
    power : float
        Planned probability that the new interval excludes the threshold.
    driver : str
        What needs the most rows (``"lift"``, a guardrail name -- its margin test, or its own outcomes when it has
        too few --, ``"ess"`` or ``"outcomes"``: too few informative primary outcomes among the offers it would
        make, :func:`offline_eval.diagnostics.informative_rows`). Counts are forecast at the rate seen so far (no ``curve``).
    curve : list of (float, float)
        (additional rows, probability of settling the driver) pairs, for the power-curve plot.
    """

    candidate: str
    more_rows: float
    more_days: float | None
    rows_per_day: float | None
    current_rows: int
    power: float
    driver: str
    curve: list[tuple[float, float]] = field(default_factory=list)


@dataclass
class RolloutReport:
    """The rollout decision and everything behind it (see :mod:`offline_eval.report` for the rules).

    Attributes
    ----------
    decision : str
        ``"GO"``, ``"NO-GO"`` or ``"NEED MORE DATA"``.
    reasons : list of str
        Plain sentences: the decision first, then what each candidate showed.
    table : pandas.DataFrame
        One row per (policy, metric): the candidates, the baseline and the references (logging policy, best
        single plan, popularity). Columns :data:`TABLE_COLUMNS`: the ``interval`` kind (as :func:`evaluate` names
        it; ``+kl`` where the small-sample floor widened the row's value interval -- its ``informative_rows`` below
        :data:`INFORMATIVE_ROWS_MIN` -- or its difference's -- it or the baseline below), the estimate ``value``
        and interval, the paired difference over the baseline ``diff`` (se, interval), the ``threshold`` it is
        judged against (min effect or margin, in harm units for guardrails), the ``status`` of that test (a
        guardrail on the small-sample floor of an observed range is ``"inconclusive"`` with ``p_holm`` NaN: not
        tested), the Holm-adjusted ``p_holm``, the candidate's ``verdict``, its ``hit_rate``, its weight
        diagnostics, ``informative_rows`` (its offers whose value of that metric is off the end of the metric's
        range where most values sit, :func:`offline_eval.diagnostics.informative_rows`; the logging policy's: all
        such rows) and the forecast ``more_rows``.
    recommended : str or None
        The GO candidate to roll out (largest lift), if any.
    forecast : Forecast or None
        With NEED MORE DATA: the forecast for the undecided candidate with the largest lift.
    backtest : pandas.DataFrame or None
        Rolling-origin lift per window and candidate (``window``, ``train_end``, ``test_end``, ``policy``,
        ``n``, ``diff``, ``diff_ci_low``, ``diff_ci_high``, ``interval`` -- its kind, ``+kl`` on the small-sample
        floor --, ``refitted``), when requested. Only fit functions are
        refitted on each window's training rows (``refitted`` True); a policy object is evaluated as it is, so a
        window inside the period it was trained on is an in-sample figure, not an out-of-sample backtest.
    settings : dict
        Metric, baseline, min effect, alpha, estimator, split and sizes; the rows the reader quarantined
        (``quarantined``: per reason; ``n_quarantined`` of ``n_checked``); the stated ranges (``reward_range`` of
        the primary metric and each guardrail's ``value_range``, ``[low, high]`` or None) and ``value_ranges``, per
        metric the range its small-sample floor rests on (``low``, ``high``, ``given``).
    verdicts : dict of str to str
        Each decided candidate's own decision.
    power_curve : dict or None
        For the power-curve plot: ``candidate``, ``driver`` (what is being settled), ``points`` ((more rows,
        chance that the interval then excludes the threshold) pairs, if the truth is the current estimate),
        ``power`` and ``forecast_rows`` (the forecast's rows, None when the report is decided: then the curve shows
        how firmly the leading candidate's lift is settled).
    """

    decision: str
    reasons: list[str]
    table: pd.DataFrame
    recommended: str | None
    forecast: Forecast | None
    backtest: pd.DataFrame | None
    settings: dict[str, Any]
    verdicts: dict[str, str] = field(default_factory=dict)
    power_curve: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"RolloutReport({self.decision}: {self.reasons[0]})"

    # -- serialisation ---------------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Everything as JSON-serialisable values (NaN and infinities become None, timestamps ISO strings)."""
        forecast = None
        if self.forecast is not None:
            forecast = dataclasses.asdict(self.forecast)
        out = {
            "decision": self.decision,
            "reasons": list(self.reasons),
            "recommended": self.recommended,
            "verdicts": dict(self.verdicts),
            "forecast": forecast,
            "settings": self.settings,
            "table": self.table.to_dict(orient="records"),
            "backtest": None if self.backtest is None else self.backtest.to_dict(orient="records"),
            "power_curve": self.power_curve,
        }
        return _jsonable(out)

    def to_markdown(self) -> str:
        """A Markdown summary: decision, reasons, one table per metric."""
        s = self.settings
        lines = [f"# Rollout decision: {self.decision}", ""]
        lines += [f"- {r}" for r in self.reasons]
        lines += [
            "",
            f"Evaluated on {s['n_test']:,} logged decisions ({s['split']}) with {s['estimator']}; "
            f"{100 * (1 - s['alpha_per_candidate']):.4g}% intervals per candidate (alpha {s['alpha']:g} "
            f"Bonferroni-split over {s['n_candidates']} candidate(s)); differences are against the baseline "
            f"`{s['baseline']}`.",
            "",
        ]
        for metric in self.table["metric"].unique():
            part = self.table[self.table["metric"] == metric]
            kind = part["kind"].iloc[0]
            lines += [f"## {metric} ({kind})", ""]
            lines += [
                "| policy | role | value | interval | diff vs baseline | diff interval | kind | informative rows | "
                "status | hit rate |",
                "|---|---|---|---|---|---|---|---|---|---|",
            ]
            dv, dd = _column_decimals(part)  # one format per column
            for _, r in part.iterrows():
                lines.append(
                    f"| {r['policy']} | {r['role']} | {_fmt(r['value'], False, dv)} | [{_fmt(r['ci_low'], False, dv)}, "
                    f"{_fmt(r['ci_high'], False, dv)}] | {_fmt(r['diff'], True, dd)} | "
                    f"[{_fmt(r['diff_ci_low'], True, dd)}, {_fmt(r['diff_ci_high'], True, dd)}] | {r['interval']} | "
                    f"{_count(r['informative_rows'])} | {r['status'] or ''} | {_pct(r['hit_rate'])} |"
                )
            lines.append("")
            if part["interval"].str.contains("+kl", regex=False).any():
                lines += [_KL_NOTE.format(min_rows=INFORMATIVE_ROWS_MIN), ""]
        if self.backtest is not None and len(self.backtest):
            lines += ["## Backtest (rolling origin)", "",
                      "| window | test period | policy | refitted | rows | lift | interval |",
                      "|---|---|---|---|---|---|---|"]
            _, dd = _column_decimals(self.backtest)
            for _, r in self.backtest.iterrows():
                lines.append(
                    f"| {r['window']} | {str(r['train_end'])[:16]} to {str(r['test_end'])[:16]} | {r['policy']} | "
                    f"{'yes' if r['refitted'] else 'no'} | {int(r['n']):,} | {_fmt(r['diff'], True, dd)} | "
                    f"[{_fmt(r['diff_ci_low'], True, dd)}, {_fmt(r['diff_ci_high'], True, dd)}] |"
                )
            lines.append("")
            if not self.backtest["refitted"].all():
                lines += [_FIXED_NOTE, ""]
        return "\n".join(lines)

    def figures(self) -> dict[str, str]:
        """The report's plots as base64-encoded PNG: ``estimates`` always, ``backtest`` and ``power`` when known."""
        out = {"estimates": _estimates_png(self)}
        if self.backtest is not None and len(self.backtest):
            out["backtest"] = _backtest_png(self)
        if self.power_curve is not None and self.power_curve["points"]:
            out["power"] = _power_png(self)
        return {k: base64.b64encode(v).decode("ascii") for k, v in out.items()}

    def to_html(self, path: str | Path) -> Path:
        """Write a self-contained HTML page (no network: inline CSS, plots as base64 PNG) and return its path."""
        import importlib.resources

        import jinja2

        target = Path(path)
        if target.is_dir():
            raise ValueError(f"path must be a file to write, {str(target)!r} is a directory")
        source = importlib.resources.files("offline_eval").joinpath("templates/report.html.j2").read_text("utf-8")
        env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
        env.filters["fmt"] = _fmt
        env.filters["pct"] = _pct
        env.filters["count"] = _count
        fixed = self.backtest is not None and len(self.backtest) and not self.backtest["refitted"].all()
        html = env.from_string(source).render(report=self, figures=self.figures(), metrics=self._metric_tables(),
                                              backtest_note=_FIXED_NOTE if fixed else "",
                                              min_informative=INFORMATIVE_ROWS_MIN)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(html, encoding="utf-8")
        return target

    def _metric_tables(self) -> list[dict[str, Any]]:
        out = []
        ranges = self.settings.get("value_ranges", {})
        for metric in self.table["metric"].unique():
            part = self.table[self.table["metric"] == metric]
            vr = ranges.get(metric)
            text = "" if vr is None else (
                f"{'given' if vr['given'] else 'as observed in the log'}: {_fmt(vr['low'])} to {_fmt(vr['high'])}")
            dv, dd = _column_decimals(part)
            out.append({"name": metric, "kind": part["kind"].iloc[0], "rows": part.to_dict(orient="records"),
                        "value_decimals": dv, "diff_decimals": dd,
                        "floored": bool(part["interval"].str.contains("+kl", regex=False).any()), "range": text,
                        "range_given": bool(vr is not None and vr["given"])})
        return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, (pd.Timestamp, np.datetime64)):
        return None if pd.isna(value) else pd.Timestamp(value).isoformat()
    if value is None or isinstance(value, str):
        return value
    if value is pd.NaT:
        return None
    return str(value)


#: Most decimals a table column shows (a column whose smallest non-zero entry is below 1e-6 shows it as 0.000000).
_MAX_DECIMALS = 6


def _decimals(values: Any) -> int:
    """Decimals for one table column: enough for two significant digits of its smallest non-zero entry below 0.01
    (at least 3, at most :data:`_MAX_DECIMALS`), so every entry of the column has the same format (0.00000,
    -0.00017 and +0.00260, not 0.000, -0.00017 and +0.0026)."""
    v = np.abs(np.asarray(pd.to_numeric(pd.Series(values, dtype=object), errors="coerce"), dtype=np.float64))
    small = v[np.isfinite(v) & (v > 0) & (v < 0.01)]
    if not len(small):
        return 3
    return int(min(_MAX_DECIMALS, 1 - math.floor(math.log10(float(small.min())))))


def _fmt(v: Any, signed: bool = False, decimals: int | None = None) -> str:
    """A number for the tables and reasons: ``decimals`` fixed decimals (one table column, :func:`_decimals`), else
    3 decimals, 2 significant digits below 0.01, none from 1,000."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    v = float(v)
    if decimals is not None:
        text = f"{v:,.{decimals}f}"
        if float(text.replace(",", "")) == 0:
            text = text.lstrip("-")  # -0.000 -> 0.000
    elif abs(v) >= 1000:
        text = f"{v:,.0f}"
    elif v == 0 or abs(v) >= 0.01:
        text = f"{v:.3f}"
    else:
        text = f"{v:.2g}"
    return ("+" + text) if signed and v > 0 and float(text.replace(",", "")) != 0 else text


def _column_decimals(table: pd.DataFrame) -> tuple[int, int]:
    """Decimals of a table's value columns (``value``, ``ci_low``, ``ci_high``; 3 when absent) and of its difference
    columns (``diff``, ``diff_ci_low``, ``diff_ci_high``), each shared by the column and its interval."""
    def of(cols: tuple[str, ...]) -> int:
        present = [c for c in cols if c in table.columns]
        return _decimals(np.concatenate([table[c].to_numpy(dtype=object) for c in present])) if present else 3

    return of(("value", "ci_low", "ci_high")), of(("diff", "diff_ci_low", "diff_ci_high"))


def _count(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{float(v):,.0f}"


def _pct(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{100 * float(v):.1f}%"


def _rows_text(rows: float) -> str:
    if not math.isfinite(rows):
        return "far more data than is practical"
    if rows >= 10_000:
        return f"{round(rows, -3):,.0f}"
    if rows >= 1_000:
        return f"{round(rows, -2):,.0f}"
    return f"{math.ceil(rows):,}"


# ----------------------------------------------------------------------------------------------------------------
# rollout_report
# ----------------------------------------------------------------------------------------------------------------


def rollout_report(
    data: LoggedData | pd.DataFrame,
    candidates: Mapping[str, Any],
    baseline: str = LOGGING,
    metric: str | None = None,
    guardrails: Mapping[str, Guardrail | tuple[Any, float]] | None = None,
    min_effect: float = 0.0,
    alpha: float = 0.05,
    *,
    estimator: Estimator | None = None,
    reward_range: tuple[float, float] | None = None,
    train: LoggedData | None = None,
    split_at: Any = None,
    test_days: float | None = None,
    conversion: str | None = None,
    power: float = 0.95,
    backtest_windows: int = 0,
    backtest_test_days: float | None = None,
    frame_options: Mapping[str, Any] | None = None,
) -> RolloutReport:
    """Decide GO / NO-GO / NEED MORE DATA for candidate policies from logged decisions (rules: module docstring).

    Parameters
    ----------
    data : LoggedData or pandas.DataFrame
        The logs (see "Metrics" in the module docstring). With a split, the test rows are evaluated.
    candidates : mapping of str to target
        Name -> a policy object with ``action_probabilities(X, eligible)``, an (n, K) probability array or (n,)
        action array over the evaluated rows, or a *fit function* ``fit(train: LoggedData) -> target`` (called
        with the training rows only -- the primary metric as reward; needs a split).
    baseline : str
        ``"logging"`` (the logged policy's on-policy value: the metric's mean) or a candidate's name (that candidate
        becomes the baseline and is not itself decided on).
    metric : str, optional
        The primary metric: a DataFrame column (default ``"reward"``), or a label for a LoggedData's reward.
    guardrails : mapping of str to Guardrail, optional
        Name -> :class:`Guardrail` (or a ``(column, margin)`` pair).
    min_effect : float
        Smallest lift of the primary metric per decision worth shipping (metric units).
    alpha : float
        Family-wise error rate, split over the candidates (Bonferroni).
    estimator : Estimator, optional
        Used for every metric (its ``interval`` is used, its ``alpha`` replaced); default the DR-DM blend ("Estimator"
        in the module docstring).
    reward_range : (float, float), optional
        A-priori range of one value of the primary metric (e.g. ``(0, top price)`` for revenue per offer), for any
        estimator, the default blend included (an ``estimator`` with its own ``reward_range`` gives the same; two
        different ranges are refused). With it, the small-sample bound may decide below
        :data:`~offline_eval.diagnostics.INFORMATIVE_ROWS_MIN` outcomes (module docstring), and every primary
        interval is clipped to what the range allows (a value to it, a difference to ``[low - high, high - low]``;
        coverage is kept). It must hold every value of the metric's column (ValueError otherwise). Recorded in
        ``settings["reward_range"]``. A guardrail's range is its ``Guardrail(value_range=...)``.
    train : LoggedData, optional
        Training rows (then ``data`` holds the test rows only). Or give ``split_at`` (a time) or ``test_days``
        for :func:`offline_eval.splits.chronological_split` of ``data``.
    conversion : str, optional
        The metric whose positive values mark a conversion (hit rate, popularity); default the primary metric.
    power : float
        Planned probability, in (0.5, 1), that the forecast's extra rows settle the decision (default 0.95; see
        "Forecast" in the module docstring).
    backtest_windows : int
        Rolling-origin windows (:func:`offline_eval.splits.rolling_origin`) over ``data`` to backtest the
        candidates' lift on (0: none); fit functions are refitted on each window's training rows.
    backtest_test_days : float, optional
        Length of each backtest window (default ``test_days``), shortened to the log's span / (windows + 1) when
        longer, so the first window has training rows.
    frame_options : mapping, optional
        Extra keyword arguments of ``LoggedData.from_dataframe`` (e.g. ``{"context_prefix": "x_"}``).

    Returns
    -------
    RolloutReport

    Examples
    --------
    >>> import numpy as np
    >>> from offline_eval import LoggedData, IPS
    >>> rng = np.random.default_rng(0)
    >>> n = 20_000
    >>> action = rng.integers(0, 2, size=n)
    >>> revenue = (rng.random(n) < np.where(action == 1, 0.12, 0.08)) * 10.0
    >>> cancelled = (rng.random(n) < 0.02).astype(float)
    >>> data = LoggedData(None, action, revenue, np.full(n, 0.5), probabilities=np.full((n, 2), 0.5),
    ...                   action_names=["individual", "duo"])
    >>> report = rollout_report(data, {"always duo": "duo"}, metric="revenue", min_effect=0.1,
    ...                         guardrails={"cancellations": Guardrail(cancelled, margin=0.01)},
    ...                         estimator=IPS())
    >>> report.decision
    'GO'
    >>> print(report.reasons[0])
    GO: roll out 'always duo'. It raises revenue by 0.188 per decision (95% CI +0.144 to +0.231) over the logging
    policy, more than the 0.100 worth shipping, and no guardrail is breached.
    """
    if not isinstance(candidates, Mapping) or not candidates:
        raise TypeError("candidates must be a non-empty mapping of name -> target (policy, array or fit function)")
    for name in candidates:
        if not isinstance(name, str) or not name:
            raise TypeError(f"candidates must be keyed by non-empty str names, got {name!r}")
        if name in (LOGGING, BEST_PLAN, POPULARITY):
            raise ValueError(f"candidates may not be called {name!r}: that name is a reference row of the report")
    if not isinstance(baseline, str):
        raise TypeError(f"baseline must be 'logging' or a candidate's name (str), got {type(baseline).__name__}")
    if baseline != LOGGING and baseline not in candidates:
        raise ValueError(f"baseline must be 'logging' or one of the candidates {list(candidates)}, got {baseline!r}")
    decided = [c for c in candidates if c != baseline]
    if not decided:
        raise ValueError("candidates holds only the baseline; add at least one candidate to decide on")
    if metric is None:
        metric = "reward"
    if not isinstance(metric, str) or not metric:
        raise TypeError(f"metric must be a non-empty str (a column name or label), got {metric!r}")
    gr = _check_guardrails(guardrails)
    if metric in gr:
        raise ValueError(f"guardrail name {metric!r} is the primary metric's name; rename the guardrail")
    min_effect = _check_finite(min_effect, "min_effect")
    alpha = _check_alpha(alpha)
    power = _check_finite(power, "power")
    if not 0.5 < power < 1:
        raise ValueError(f"power must lie in (0.5, 1), e.g. 0.9, got {power!r}")
    if isinstance(backtest_windows, bool) or not isinstance(backtest_windows, (int, np.integer)) or backtest_windows < 0:
        raise ValueError(f"backtest_windows must be an int >= 0, got {backtest_windows!r}")
    if estimator is not None and not isinstance(estimator, Estimator):
        raise TypeError(f"estimator must be an offline_eval estimator such as DR(), got {type(estimator).__name__}")
    range_name = "reward_range"
    if reward_range is not None:
        reward_range = _check_range(reward_range, "reward_range")
        if estimator is not None and estimator.reward_range not in (None, reward_range):
            raise ValueError(f"reward_range={reward_range} differs from estimator.reward_range="
                             f"{estimator.reward_range}; give the primary metric's range once")
    elif estimator is not None and estimator.reward_range is not None:
        reward_range, range_name = estimator.reward_range, "estimator.reward_range"
    if conversion is not None and not isinstance(conversion, str):
        raise TypeError(f"conversion must be a metric name (str) or None, got {type(conversion).__name__}")
    if frame_options is not None and not isinstance(frame_options, Mapping):
        raise TypeError(f"frame_options must be a mapping of from_dataframe keyword arguments, got {frame_options!r}")

    full = _metric_data(data, metric, gr, conversion, frame_options or {})
    # the small-sample bound and the clipping are valid only on a range that holds every value
    _check_values_in_range(full[metric].reward, reward_range, f"{range_name} (of the primary metric {metric!r})")
    for name, guard in gr.items():
        _check_values_in_range(full[name].reward, guard.value_range, f"guardrails[{name!r}].value_range")
    train_parts, test = _split(full, train, split_at, test_days)
    primary = test[metric]
    if primary.n < 2:
        raise ValueError(f"the evaluated data has {primary.n} rows; a report needs at least 2")
    train_primary = None if train_parts is None else train_parts[metric]
    if train is not None:
        _check_disjoint(train, primary, data)
    conv_name = metric if conversion is None else conversion
    converted = test[conv_name].reward > 0

    # candidates as arrays on the test rows
    fitted: dict[str, Any] = {}
    for name, target in candidates.items():
        if _is_fit_function(target):
            if train_primary is None:
                raise ValueError(
                    f"candidates[{name!r}] is a fit function; give a split (train=, split_at= or test_days=) so it "
                    "is fitted on the training rows only"
                )
            if train_primary.timestamp is not None and primary.timestamp is not None:
                from offline_eval.splits import fit_on_train

                fitted[name] = fit_on_train((train_primary, primary), target)  # checks train precedes test
            else:
                fitted[name] = target(train_primary)
        else:
            fitted[name] = target
    targets = {name: _materialise(primary, t, f"candidates[{name!r}]") for name, t in fitted.items()}

    # references
    if train_primary is not None:
        train_conv = train_parts[conv_name].reward > 0 if (train_parts and conv_name in train_parts) else (
            train_primary.reward > 0
        )
        rank_data = train_primary
    else:
        train_conv, rank_data = converted, primary
    best_order, pop_order, _, _ = _plan_rankings(rank_data, np.asarray(train_conv))
    refs: dict[str, np.ndarray] = {
        BEST_PLAN: _ranked_plan(best_order, primary.eligible, primary.n, primary.n_actions),
        POPULARITY: _ranked_plan(pop_order, primary.eligible, primary.n, primary.n_actions),
    }

    m = len(decided)
    a = alpha / m
    scorer = _Scorer(estimator, a, reward_range)
    z_lift = float(norm.ppf(1 - a / 2))
    z_power = float(norm.ppf(power))
    k_g = len(gr)

    rows: list[dict[str, Any]] = []
    verdicts: dict[str, str] = {}
    # needs: (quantity, estimate, se, threshold, z) to plan from; count_needs: (quantity, more rows) from counts
    per_candidate: dict[str, dict[str, Any]] = {c: {"reasons": [], "needs": [], "count_needs": []} for c in decided}
    resolved_primary: dict[str, ResolvedTarget] = {}
    # (candidate, guardrail) -> one-sided p-values of (H0: harm >= margin, H0: harm <= margin)
    guard_p: dict[tuple[str, str], tuple[float, float]] = {}
    unbounded: dict[str, bool] = {}  # metric -> no range bounds its small-sample floor (_SmallSample)
    value_ranges: dict[str, dict[str, Any]] = {}  # metric -> the range its small-sample floor rests on

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiagnosticWarning)
        for metric_name, d in test.items():
            if metric_name not in (metric, *gr):
                continue
            kind = "primary" if metric_name == metric else "guardrail"
            q = scorer.prepare(d)
            terms: dict[str, Any] = {}
            resolved: dict[str, ResolvedTarget] = {}
            for name, arr in {**targets, **refs}.items():
                resolved[name] = resolve_target(d, arr, name=name)
                terms[name] = scorer.terms(resolved[name], q)
            if metric_name == metric:
                resolved_primary = resolved
            base_terms: Any = None if baseline == LOGGING else terms[baseline]
            diffs: dict[str, _Paired] = {}

            def diff_terms(t: Any) -> Any:
                return t.minus(d.reward) if base_terms is None else t - base_terms  # noqa: B023

            def diff_of(t: Any) -> _Paired:
                return scorer.interval(diff_terms(t))

            g = gr.get(metric_name)
            sign = 1.0 if g is None or g.higher_is_better else -1.0  # harm = -sign * diff for guardrails
            floors = _SmallSample(d, resolved, scorer.est.alpha,
                                  scorer.est.reward_range if g is None else g.value_range)
            unbounded[metric_name] = floors.unbounded
            value_ranges[metric_name] = floors.range_settings()
            base_name = LOGGING if baseline == LOGGING else baseline
            log_iv = floors.value(LOGGING, scorer.interval(d.reward))
            log_diff = _SELF if baseline == LOGGING else floors.diff(LOGGING, baseline,
                                                                     diff_of(scorer.logging_terms(d.reward)))
            rows.append(_row(LOGGING, "baseline" if baseline == LOGGING else "reference", metric_name, kind, log_iv,
                             log_diff, _hit_rate(_logging_target(d), d, converted) if d.probabilities is not None
                             else float("nan"), None, scorer, floors.count(LOGGING)))
            for name, arr in {**targets, **refs}.items():
                role = "baseline" if name == baseline else "candidate" if name in targets else "reference"
                diff = _SELF if name == baseline else floors.diff(name, base_name, diff_of(terms[name]))
                diffs[name] = diff
                rows.append(_row(name, role, metric_name, kind, floors.value(name, scorer.interval(terms[name])),
                                 diff, _hit_rate(arr, d, converted),
                                 resolved[name].diagnostics(reward_range=floors.value_range),
                                 scorer))
            # tests for the decided candidates, on the (floored) intervals
            for name in decided:
                row = next(r for r in rows if r["policy"] == name and r["metric"] == metric_name)
                info = per_candidate[name]
                k_informative = floors.count(name, base_name)  # what the floor of its difference depends on
                if kind == "primary":
                    info["outcomes"], info["bound_decides"] = k_informative, floors.decides
                    row["threshold"] = min_effect
                    if row["diff_ci_low"] > min_effect:
                        row["status"] = "above min effect"
                    elif row["diff_ci_high"] < min_effect:
                        row["status"] = "below min effect"
                    else:
                        row["status"] = "inconclusive"
                        # on the small-sample bound the driver is the outcomes: the floor is gone at
                        # INFORMATIVE_ROWS_MIN of them (the verdict adds those rows), its own se plans the rest
                        driver = "outcomes" if k_informative < INFORMATIVE_ROWS_MIN else "lift"
                        info["needs"].append((driver, row["diff"], row["diff_se"], min_effect, z_lift))
                    info["lift"] = row
                else:
                    assert g is not None
                    harm = -sign * row["diff"]
                    info.setdefault("guardrails", []).append((metric_name, g, harm, row))
                    info.setdefault("guard_outcomes", {})[metric_name] = k_informative
                    # a floored interval decides only on a stated range (_SmallSample.decides); else not judged
                    info.setdefault("guard_judged", {})[metric_name] = (k_informative >= INFORMATIVE_ROWS_MIN
                                                                        or floors.decides)
                    # the tests' p-values, in the difference's units (harm = -sign * diff); a floored interval is
                    # the hull of the scorer's and the KL floor's, so it excludes a value only where both do
                    thr = -sign * g.margin
                    p_below, p_above = scorer.p_values(diff_terms(terms[name]), diffs[name].value, thr)
                    kl_p = floors.p_values(name, base_name, thr)
                    if kl_p is not None:
                        p_below, p_above = max(p_below, kl_p[0]), max(p_above, kl_p[1])
                    # a margin beyond what the stated range allows: that side's H0 cannot hold
                    no_below, no_above = floors.impossible(thr)
                    p_below, p_above = (0.0 if no_below else p_below), (0.0 if no_above else p_above)
                    guard_p[(name, metric_name)] = (p_below, p_above) if sign < 0 else (p_above, p_below)
        # Holm across guardrails, per candidate
        for name in decided:
            info = per_candidate[name]
            gl = info.get("guardrails", [])
            if gl:
                p_noninf = np.array([guard_p[(name, gname)][0] for gname, _, _, _ in gl])  # H0: harm >= margin
                p_breach = np.array([guard_p[(name, gname)][1] for gname, _, _, _ in gl])  # H0: harm <= margin
                # a guardrail that cannot be judged stays in Holm's family with p = 1: it never loosens the others
                judged = np.array([info["guard_judged"][gname] for gname, _, _, _ in gl])
                ok, adj_ok = holm_bonferroni(np.where(judged, p_noninf, 1.0), a / 2)
                bad, adj_bad = holm_bonferroni(np.where(judged, p_breach, 1.0), a / 2)
                z_g = float(norm.ppf(1 - a / (2 * k_g)))
                for j, (gname, g, h, row) in enumerate(gl):
                    row["threshold"] = g.margin
                    if not judged[j]:
                        row["status"], row["p_holm"] = "inconclusive", float("nan")
                        info["needs"].append((gname, h, row["diff_se"], g.margin, z_g))
                        info["count_needs"].append((gname, _outcome_rows(primary.n, info["guard_outcomes"][gname])))
                    elif bad[j]:
                        row["status"], row["p_holm"] = "breached", adj_bad[j]
                    elif ok[j]:
                        row["status"], row["p_holm"] = "non-inferior", adj_ok[j]
                    else:
                        row["status"], row["p_holm"] = "inconclusive", min(adj_ok[j], adj_bad[j])
                        info["needs"].append((gname, h, row["diff_se"], g.margin, z_g))
                        k_guard = info["guard_outcomes"][gname]
                        if k_guard < INFORMATIVE_ROWS_MIN:  # judged on the small-sample bound until then
                            info["count_needs"].append((gname, _outcome_rows(primary.n, k_guard)))

    # verdicts
    n = primary.n
    per_day = _rows_per_day(primary)
    forecasts: dict[str, Forecast] = {}
    for name in decided:
        info = per_candidate[name]
        lift = info["lift"]
        diag = resolved_primary[name].diagnostics(reward_range=scorer.est.reward_range)
        overlap, why = _overlap(diag, n)
        sample_diag = diag  # the diagnostics that set the overlap
        if baseline != LOGGING:
            base_diag = resolved_primary[baseline].diagnostics(reward_range=scorer.est.reward_range)
            base_overlap, base_why = _overlap(base_diag, n)
            if _OVERLAP_RANK[base_overlap] < _OVERLAP_RANK[overlap]:
                overlap, why, sample_diag = base_overlap, f"the baseline {baseline!r}: {base_why}", base_diag
        gl = info.get("guardrails", [])
        breached = [x for x in gl if x[3]["status"] == "breached"]
        if overlap == "no-go":
            verdict = NO_GO
        elif overlap == "small":  # too few effective rows: no interval of it decides anything, either way
            verdict = MORE
        elif breached:
            verdict = NO_GO
        elif info["outcomes"] < INFORMATIVE_ROWS_MIN and not info["bound_decides"]:
            verdict = MORE  # the small-sample bound on an observed range decides nothing (module docstring)
        elif lift["status"] == "below min effect":
            verdict = NO_GO
        elif lift["status"] == "above min effect" and all(x[3]["status"] == "non-inferior" for x in gl):
            verdict = GO
        else:
            verdict = MORE
        verdicts[name] = verdict
        info["overlap"], info["why"], info["breached"] = overlap, why, breached
        if verdict == MORE:
            needs: list[tuple[str, float, Estimate | None, float, float]] = []
            for q_name, v, se, thr, zl in info["needs"]:
                plan = _planning_estimate(v, se, zl, n, diag)
                needs.append((q_name, _more_rows_to_settle(plan, thr, zl, z_power), plan, thr, zl))
            needs += [(q_name, rows, None, 0.0, 0.0) for q_name, rows in info["count_needs"]]
            if info["outcomes"] < INFORMATIVE_ROWS_MIN and (lift["status"] == "inconclusive"
                                                            or not info["bound_decides"]):
                needs.append(("outcomes", _outcome_rows(n, info["outcomes"]), None, 0.0, 0.0))
            if overlap == "small":
                needs += _sample_needs(sample_diag, n)
            driver, more, planned, thr, zl = max(needs, key=lambda x: x[1])
            more = max(more, 1.0)
            if not math.isfinite(more) or more > MAX_GROWTH * n:
                more = math.inf
            curve = [] if planned is None else _power_curve(planned, thr, zl, more)
            forecasts[name] = Forecast(
                candidate=name,
                more_rows=more,
                more_days=None if per_day is None else more / per_day,
                rows_per_day=per_day,
                current_rows=n,
                power=power,
                driver=driver,
                curve=curve,
            )
        for r in rows:
            if r["policy"] == name:
                r["verdict"] = verdict
                r["more_rows"] = forecasts[name].more_rows if name in forecasts else float("nan")

    go = [c for c in decided if verdicts[c] == GO]
    undecided = [c for c in decided if verdicts[c] == MORE]
    lift_of = {c: per_candidate[c]["lift"]["diff"] for c in decided}
    if go:
        decision, recommended = GO, max(go, key=lambda c: lift_of[c])
    elif undecided:
        decision, recommended = MORE, None
    else:
        decision, recommended = NO_GO, None
    forecast = forecasts[max(undecided, key=lambda c: lift_of[c])] if undecided else None

    split = "no split: references ranked on the evaluated rows (in-sample)" if train_primary is None else (
        _split_text(train_primary, primary)
    )
    settings: dict[str, Any] = {
        "metric": metric,
        "baseline": baseline,
        "min_effect": min_effect,
        "alpha": alpha,
        "alpha_per_candidate": a,
        "n_candidates": m,
        "estimator": scorer.name,
        "interval": scorer.kind(primary.n, False),
        "power": power,
        "guardrails": {k: {"margin": g.margin, "higher_is_better": g.higher_is_better,
                           "value_range": None if g.value_range is None else list(g.value_range)}
                       for k, g in gr.items()},
        "reward_range": None if reward_range is None else list(reward_range),
        "n_test": primary.n,
        "n_train": None if train_parts is None else train_parts[metric].n,
        "quarantined": dict(full[metric].quarantined.counts),
        "n_quarantined": full[metric].quarantined.n_rows,
        "n_checked": full[metric].quarantined.n_checked,
        "split": split,
        "arms": list(primary.action_names),
        "best_plan_order": [primary.action_names[j] for j in best_order],
        "popularity_order": [primary.action_names[j] for j in pop_order],
        "rows_per_day": per_day,
        "unbounded": unbounded,
        "value_ranges": value_ranges,
    }
    reasons = _reasons(decision, recommended, decided, verdicts, per_candidate, forecasts, forecast, settings, gr)
    table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    backtest = None
    if backtest_windows:
        backtest = _backtest(full[metric], fitted_sources=candidates, baseline=baseline, scorer=scorer,
                             n_windows=int(backtest_windows), test_days=backtest_test_days or test_days)
    power_plot: dict[str, Any] | None = None
    if forecast is not None:
        power_plot = {"candidate": forecast.candidate, "driver": forecast.driver, "points": forecast.curve,
                      "power": power, "forecast_rows": forecast.more_rows}
    else:
        leading = recommended if recommended is not None else max(decided, key=lambda c: lift_of[c])
        lift_row = per_candidate[leading]["lift"]
        if lift_row["diff_se"] > 0:
            plan = _planning_estimate(lift_row["diff"], lift_row["diff_se"], z_lift, n,
                                      resolved_primary[leading].diagnostics(reward_range=scorer.est.reward_range))
            points = _power_curve(plan, min_effect, z_lift, n / 2)
            power_plot = {"candidate": leading, "driver": "lift", "points": points, "power": power,
                          "forecast_rows": None}
    return RolloutReport(decision, reasons, table, recommended, forecast, backtest, settings, verdicts, power_plot)


def _logging_target(d: LoggedData) -> np.ndarray:
    assert d.probabilities is not None
    return np.asarray(d.probabilities)


def _row(
    policy: str,
    role: str,
    metric: str,
    kind: str,
    value: _Paired,
    diff: _Paired,
    hit: float,
    diag: Diagnostics | None,
    scorer: _Scorer,
    informative: int | None = None,
) -> dict[str, Any]:
    """One table row; ``informative``: the informative rows when there are no weight diagnostics (logging)."""
    if diag is not None:
        informative = diag.informative_rows
    return {
        "policy": policy,
        "role": role,
        "metric": metric,
        "kind": kind,
        "interval": scorer.kind(scorer.n_rows, value.floored or diff.floored),
        "value": value.value,
        "ci_low": value.low,
        "ci_high": value.high,
        "diff": diff.value,
        "diff_se": diff.se,
        "diff_ci_low": diff.low,
        "diff_ci_high": diff.high,
        "threshold": float("nan"),
        "status": "",
        "p_holm": float("nan"),
        "verdict": "",
        "hit_rate": hit,
        "ess": float("nan") if diag is None else diag.ess,
        "mean_weight": float("nan") if diag is None else diag.mean_weight,
        "support_deficit": float("nan") if diag is None or diag.support_deficit is None else diag.support_deficit,
        "informative_rows": float("nan") if informative is None else informative,
        "more_rows": float("nan"),
    }


def _power_curve(plan: Estimate, threshold: float, z_level: float, more: float) -> list[tuple[float, float]]:
    """(more rows, chance the interval then excludes ``threshold``) if the truth is ``plan.value``.

    The half-width after ``x`` more rows is :func:`offline_eval.power.halfwidth_at`; the chance is
    ``Phi(gap / se_x - z_level) + Phi(-gap / se_x - z_level)``.
    """
    from offline_eval.power import halfwidth_at

    top = (2.0 * more) if math.isfinite(more) else 10.0 * plan.n
    gap = abs(plan.value - threshold)
    out = []
    for x in np.linspace(0.0, max(top, 1.0), 41):
        se_x = halfwidth_at(plan, plan.n + float(x)) / z_level
        z = gap / se_x if se_x > 0 else math.inf
        out.append((float(x), float(norm.cdf(z - z_level) + norm.cdf(-z - z_level))))
    return out


def _reasons(
    decision: str,
    recommended: str | None,
    decided: list[str],
    verdicts: Mapping[str, str],
    info: Mapping[str, Mapping[str, Any]],
    forecasts: Mapping[str, Forecast],
    forecast: Forecast | None,
    settings: Mapping[str, Any],
    gr: Mapping[str, Guardrail],
) -> list[str]:
    metric, baseline = settings["metric"], settings["baseline"]
    level = f"{100 * (1 - settings['alpha_per_candidate']):.4g}%"
    base = "the logging policy" if baseline == LOGGING else f"{baseline!r}"
    min_eff = _fmt(settings["min_effect"])

    def lift_text(name: str) -> str:
        r = info[name]["lift"]
        verb = "raises" if r["diff"] >= 0 else "lowers"
        return (
            f"{verb} {metric} by {_fmt(abs(r['diff']))} per decision ({level} CI {_fmt(r['diff_ci_low'], True)} to "
            f"{_fmt(r['diff_ci_high'], True)}) over {base}"
        )

    out: list[str] = []
    if decision == GO:
        assert recommended is not None
        guard = ", and no guardrail is breached" if gr else ""
        out.append(
            f"GO: roll out {recommended!r}. It {lift_text(recommended)}, more than the {min_eff} worth shipping{guard}."
        )
    elif decision == NO_GO:
        if len(decided) > 1:
            out.append("NO-GO: no candidate should be rolled out.")
        else:
            out.append(f"NO-GO: do not roll out {decided[0]!r}: {_no_go_cause(info[decided[0]], min_eff)}.")
    else:
        assert forecast is not None
        what = {"lift": "the lift", "ess": "the effective sample size", "outcomes": "the outcomes it is judged on"}.get(
            forecast.driver, f"the {forecast.driver} guardrail"
        )
        lead = info[forecast.candidate]
        few_guard = lead.get("guard_outcomes", {}).get(forecast.driver, INFORMATIVE_ROWS_MIN)
        if forecast.driver == "ess":
            pending = "too few decisions effectively count yet"
        elif forecast.driver == "outcomes":
            pending = (f"only {lead['outcomes']} of its offers have an informative outcome yet, and at least "
                       f"{INFORMATIVE_ROWS_MIN} are needed before its lift is judged on its own interval")
        elif forecast.driver in gr and few_guard < INFORMATIVE_ROWS_MIN:
            pending = (f"only {few_guard} of its offers have an informative {forecast.driver} value yet, and at least "
                       f"{INFORMATIVE_ROWS_MIN} are needed before that guardrail is judged on its own interval")
        else:
            pending = f"{what} is still undecided"
        # a count (ESS, outcomes) is forecast at the rate seen so far, an interval with a planned chance
        planned = f"; planned for a {100 * forecast.power:.0f}% chance" if forecast.curve else ", at the rate seen so far"
        if math.isfinite(forecast.more_rows):
            days = (
                f" (about {_days_text(forecast.more_days)} at the current {forecast.rows_per_day:,.0f} decisions a day)"
                if forecast.more_days is not None
                else ""
            )
            out.append(
                f"NEED MORE DATA: about {_rows_text(forecast.more_rows)} more logged decisions{days} should settle "
                f"{forecast.candidate!r} ({pending}{planned})."
            )
        else:
            out.append(
                f"NEED MORE DATA: {forecast.candidate!r} is too close to its threshold on {what} to settle with a "
                f"practical amount of data (more than {MAX_GROWTH:g} times the current rows); treat it as no "
                "better than the baseline unless a bigger effect would matter."
            )
    for name in decided:
        i = info[name]
        v = verdicts[name]
        parts = [f"{name!r} ({v}): it {lift_text(name)}"]
        status = i["lift"]["status"]
        if status == "above min effect":
            parts.append(f"more than the {min_eff} worth shipping")
        elif status == "below min effect":
            parts.append(f"which is less than the {min_eff} worth shipping")
        elif status == "inconclusive":
            parts.append(f"which cannot yet be told apart from the {min_eff} worth shipping")
        if status != "inconclusive" and i["overlap"] == "small":
            parts.append("but that interval cannot be trusted yet")
        if i["outcomes"] < INFORMATIVE_ROWS_MIN:
            parts.append(_bound_text(i["outcomes"], f"{metric} value", metric, settings,
                                     "pass reward_range=(low, high)"))
        sentence = ", ".join(parts) + "."
        out.append(sentence)
        if i["why"]:
            out.append(f"{name!r}: {i['why']}.")
        for gname, g, _, row in i.get("guardrails", []):
            limit = f"{'rise' if not g.higher_is_better else 'fall'} of {_fmt(g.margin)}"
            change = (
                f"{gname} changes by {_fmt(row['diff'], True)} per decision ({level} CI "
                f"{_fmt(row['diff_ci_low'], True)} to {_fmt(row['diff_ci_high'], True)})"
            )
            k_guard = i["guard_outcomes"][gname]
            if k_guard < INFORMATIVE_ROWS_MIN:
                change += ", " + _bound_text(k_guard, f"{gname} value", gname, settings,
                                             "give the guardrail a value_range=(low, high)")
            if row["status"] == "breached":
                out.append(f"{name!r} breaches the {gname} guardrail: {change}, beyond the allowed {limit}.")
            elif row["status"] == "non-inferior":
                out.append(f"{name!r} keeps {gname} within the allowed {limit}: {change}.")
            else:
                out.append(f"{name!r}: {change}; the data cannot yet show it stays within the allowed {limit}.")
    if settings["n_train"] is None:
        out.append("No training split was given: the best single plan and popularity references were ranked on the "
                   "evaluated rows themselves, which flatters them.")
    if settings["n_quarantined"]:
        why = ", ".join(f"{reason}: {count:,}" for reason, count in settings["quarantined"].items())
        out.append(f"{settings['n_quarantined']:,} of {settings['n_checked']:,} logged rows broke the decision-log "
                   f"contract ({why}) and were left out; if the logger is at fault (wrong propensities), the rows "
                   "that look valid may be wrong too, and the estimates biased.")
    return out


def _bound_text(k: int, what: str, metric: str, settings: Mapping[str, Any], fix: str) -> str:
    """The clause for an interval on the small-sample bound (``k`` < INFORMATIVE_ROWS_MIN informative rows): judged
    on it (a stated range), or not judged (the range only observed; none at all when every value is the same), with
    ``fix`` saying how to state one."""
    head = f"only {k} of its offers have an informative {what} (off the end of its range where most values sit)"
    if settings["unbounded"][metric]:
        return (f"and every evaluated decision has the same {what}, so without a stated range nothing bounds it "
                f"({fix})")
    vr = settings["value_ranges"][metric]
    if vr["given"]:
        return (f"judged on the small-sample bound ({head}; below {INFORMATIVE_ROWS_MIN} the interval contains the "
                f"Chernoff-Hoeffding one for values in [{_fmt(vr['low'])}, {_fmt(vr['high'])}], valid at any size)")
    return (f"but {head}, and below {INFORMATIVE_ROWS_MIN} its interval rests on the range seen in the log "
            f"([{_fmt(vr['low'])}, {_fmt(vr['high'])}]), which its own offers may exceed: it decides nothing "
            f"({fix} to judge it on the small-sample bound)")


def _no_go_cause(i: Mapping[str, Any], min_eff: str) -> str:
    """The main reason a candidate is NO-GO, as a clause."""
    if i["overlap"] == "no-go":
        return "the logs cannot judge it"
    if i["lift"]["status"] == "below min effect":
        return f"its lift is below the {min_eff} worth shipping"
    names = [g for g, _, _, _ in i["breached"]]
    return f"it breaches the {' and '.join(names)} guardrail{'s' if len(names) > 1 else ''}"


def _days_text(days: float | None) -> str:
    if days is None:
        return ""
    if days < 1:
        return f"{24 * days:.0f} hours"
    return f"{days:.1f} days" if days < 10 else f"{days:.0f} days"


def _backtest(
    data: LoggedData,
    fitted_sources: Mapping[str, Any],
    baseline: str,
    scorer: _Scorer,
    n_windows: int,
    test_days: float | None,
) -> pd.DataFrame:
    """Lift of each candidate over the baseline on each rolling-origin window (fit functions refitted per window;
    ``refitted`` False for a fixed policy, which is evaluated as it is on every window)."""
    from offline_eval.splits import fit_on_train, rolling_origin

    if data.timestamp is None:
        raise ValueError("backtest_windows needs timestamps in the data")
    ts = data.timestamp.astype(np.int64)
    fits = (int(ts.max()) - int(ts.min())) / 86_400_000_000 / (n_windows + 1)  # leaves a window's worth to train on
    if test_days is None or test_days > fits:
        test_days = fits
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiagnosticWarning)
        for j, w in enumerate(rolling_origin(data, n_windows=n_windows, test_days=float(test_days))):
            if w.test.n < 2:
                continue
            q = scorer.prepare(w.test)
            terms: dict[str, Any] = {}
            resolved: dict[str, ResolvedTarget] = {}
            for name, src in fitted_sources.items():
                if isinstance(src, (np.ndarray, pd.DataFrame, list)):
                    continue  # arrays are tied to the evaluated rows
                target = fit_on_train(w, src) if _is_fit_function(src) else src
                resolved[name] = resolve_target(w.test, target, name=name)
                terms[name] = scorer.terms(resolved[name], q)
            floors = _SmallSample(w.test, resolved, scorer.est.alpha, scorer.est.reward_range)
            for name, t in terms.items():
                if name == baseline:
                    continue
                if baseline == LOGGING:
                    iv = floors.diff(name, LOGGING, scorer.interval(t.minus(w.test.reward)))
                elif baseline in terms:
                    iv = floors.diff(name, baseline, scorer.interval(t - terms[baseline]))
                else:
                    continue
                rows.append({"window": j, "train_end": w.train_end, "test_end": w.test_end, "policy": name,
                             "n": w.test.n, "diff": iv.value, "diff_ci_low": iv.low, "diff_ci_high": iv.high,
                             "interval": scorer.kind(w.test.n, iv.floored),
                             "refitted": _is_fit_function(fitted_sources[name])})
    return pd.DataFrame(rows, columns=["window", "train_end", "test_end", "policy", "n", "diff", "diff_ci_low",
                                       "diff_ci_high", "interval", "refitted"])


#: Said under a Markdown table with an interval on the small-sample floor.
_KL_NOTE = (
    "Kind `+kl`: fewer than {min_rows} informative rows (offers whose value of the metric is off the end of its range "
    "where most values sit, e.g. conversions or churners; the policy's or the baseline's), so the interval is widened to contain a Chernoff-Hoeffding (KL) bound that holds at any sample "
    "size given the metric's range (see the reasons)."
)

#: Said under a backtest that holds policies which were not refitted per window.
_FIXED_NOTE = (
    "Policies not refitted (refitted = no) are evaluated as they are on every window: a window inside the period "
    "they were trained on is an in-sample figure, not an out-of-sample backtest. Pass a fit function "
    "(train -> policy) to refit them per window."
)


# ----------------------------------------------------------------------------------------------------------------
# plots (matplotlib's object API: no pyplot state, no display needed)
# ----------------------------------------------------------------------------------------------------------------

_COLORS = {"candidate": "#1f6fb4", "baseline": "#555555", "reference": "#9a9a9a"}
_VERDICT_COLORS = {GO: "#1a7f37", NO_GO: "#c62828", MORE: "#b26a00"}


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def _estimates_png(report: RolloutReport) -> bytes:
    """One panel per metric: each policy's difference over the baseline with its interval, and the threshold."""
    from matplotlib.figure import Figure

    metrics = list(report.table["metric"].unique())
    policies = list(dict.fromkeys(report.table["policy"]))
    fig = Figure(figsize=(7.5, 0.5 + (0.45 * len(policies) + 0.9) * len(metrics)))
    axes = fig.subplots(len(metrics), 1, squeeze=False)[:, 0]
    for ax, metric in zip(axes, metrics, strict=True):
        part = report.table[report.table["metric"] == metric].set_index("policy").loc[policies]
        y = np.arange(len(policies))[::-1]
        for yi, (name, r) in zip(y, part.iterrows(), strict=True):
            color = _VERDICT_COLORS.get(r["verdict"], _COLORS[r["role"]])
            lo, hi = r["diff_ci_low"], r["diff_ci_high"]
            if math.isfinite(lo) and math.isfinite(hi):
                ax.errorbar(r["diff"], yi, xerr=[[r["diff"] - lo], [hi - r["diff"]]], fmt="o", color=color, capsize=3)
            else:
                ax.plot([r["diff"]], [yi], "o", color=color)
        ax.axvline(0.0, color="#333333", lw=0.8)
        kind = part["kind"].iloc[0]
        if kind == "primary":
            thr = report.settings["min_effect"]
            ax.axvline(thr, color=_VERDICT_COLORS[GO], ls="--", lw=1, label=f"min effect {_fmt(thr)}")
        else:
            g = report.settings["guardrails"][metric]
            thr = g["margin"] if g["higher_is_better"] is False else -g["margin"]
            ax.axvline(thr, color=_VERDICT_COLORS[NO_GO], ls="--", lw=1, label=f"margin {_fmt(g['margin'])}")
        ax.set_yticks(y, policies)
        ax.set_title(f"{metric} ({kind}): difference vs {report.settings['baseline']}", fontsize=10, loc="left")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def _backtest_png(report: RolloutReport) -> bytes:
    from matplotlib.figure import Figure

    bt = report.backtest
    assert bt is not None
    fig = Figure(figsize=(7.5, 3.2))
    ax = fig.subplots()
    names = list(dict.fromkeys(bt["policy"]))
    width = 0.8 / max(len(names), 1)
    for j, name in enumerate(names):
        part = bt[bt["policy"] == name]
        x = part["window"].to_numpy() + (j - (len(names) - 1) / 2) * width
        d = part["diff"].to_numpy()
        err = [d - part["diff_ci_low"].to_numpy(), part["diff_ci_high"].to_numpy() - d]
        err = [np.where(np.isfinite(e), e, np.nan) for e in err]  # an unbounded interval: no bar
        ax.errorbar(x, d, yerr=err, fmt="o", capsize=3, label=name if part["refitted"].all() else f"{name} (fixed)")
    ax.axhline(0.0, color="#333333", lw=0.8)
    ax.axhline(report.settings["min_effect"], color=_VERDICT_COLORS[GO], ls="--", lw=1, label="min effect")
    windows = bt.drop_duplicates("window")
    ax.set_xticks(windows["window"], [str(t)[:10] for t in windows["test_end"]])
    ax.set_xlabel("backtest window (test period ending)")
    ax.set_ylabel(f"lift in {report.settings['metric']}")
    ax.legend(fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def _power_png(report: RolloutReport) -> bytes:
    from matplotlib.figure import Figure

    c = report.power_curve
    assert c is not None
    fig = Figure(figsize=(7.5, 3.0))
    ax = fig.subplots()
    xs = [x for x, _ in c["points"]]
    ps = [p for _, p in c["points"]]
    ax.plot(xs, ps, color=_COLORS["candidate"])
    ax.axhline(c["power"], color="#888888", ls=":", lw=1, label=f"planned chance {100 * c['power']:.0f}%")
    rows = c["forecast_rows"]
    if rows is not None and math.isfinite(rows):
        ax.axvline(rows, color=_VERDICT_COLORS[MORE], ls="--", lw=1, label=f"forecast: {rows:,.0f} more rows")
    ax.legend(fontsize=8, frameon=False, loc="lower right")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("additional logged decisions")
    ax.set_ylabel("chance the interval excludes\nthe threshold")
    ax.set_title(f"{c['candidate']}: settling {c['driver']} (if the truth is the current estimate)", fontsize=10,
                 loc="left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)
