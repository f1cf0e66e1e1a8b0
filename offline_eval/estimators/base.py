"""Shared machinery of the off-policy estimators: target policies, the :class:`Estimate` result, the base class.

Target policies
---------------
Every estimator evaluates a *target* policy on logged data. A target is one of

* an (n, K) array of probabilities, row i the target's distribution over the K arms for logged context i
  (non-negative, finite, rows summing to 1 within :data:`TARGET_ATOL` = 1e-6);
* an (n,) array of deterministic actions: integer indices in [0, K) or arm names;
* a single arm (int index or str name): the policy that always takes it;
* a pandas DataFrame of probabilities whose columns are the arm names (reordered to ``data.action_names``) or
  the integers 0..K-1 (positional);
* any object with ``action_probabilities(X, eligible) -> (n, K)`` (e.g. a ``bandit`` policy), called once with
  ``data.context`` and ``data.eligible``.

Arrays (and arms given by index) are **positional**: column / index k is ``data.action_names[k]``, whatever order
the policy that produced them used. Only names are matched: DataFrame columns, arm names, and the arms of a policy
object that names them in an ``arm_names`` attribute (``bandit`` policies) or, for other objects, an
``action_names`` attribute -- a sequence of str, the column order of its ``action_probabilities``. Such a policy
receives ``data.eligible`` reordered into its own arm order (``None`` stays ``None``) and its output columns are
reordered to ``data.action_names``, so a policy built with its arms in another order evaluates identically.
Matching is strict, with a ``ValueError`` naming the arms:

* a logged arm the policy does not know is an error (the policy cannot describe what the log did);
* an arm the policy knows but the log does not is passed as eligible; if the policy gives it probability (more
  than :data:`TARGET_ATOL` in any row), that mass has no logged data at all and it is an error; a retired arm
  (probability 0) is simply dropped;
* on logs without arm names (``action_names`` left at its default ``["0", "1", ...]``) a policy naming other arms
  is an error: give the logs their names, or pass the policy's probabilities as an array (positional).

A target may not put probability on an arm that was ineligible for that row (``data.eligible``): it could not
have offered it. That raises ``ValueError`` with the number of rows (mass up to :data:`TARGET_ATOL` is tolerated).

Support deficit
---------------
Mass on arms the logging policy could take but never does is the *support deficit*: the mean over rows of the
target's probability on arms with logging probability 0. A deterministic logger (every propensity 1) has support
only on the logged arm, so a target that spreads mass over other eligible arms has a deficit even though every
weight looks benign. No weighting estimator can see that mass: IPS and SNIPS are biased there (by up to the
deficit times the reward scale) and DR / DM extrapolate with the reward model. The deficit is reported in the
diagnostics (with a :class:`~offline_eval.diagnostics.DiagnosticWarning` above
:data:`~offline_eval.diagnostics.SUPPORT_DEFICIT_MAX`) and any deficit above :data:`TARGET_ATOL` makes every
estimate ``consistent=False``: its interval ignores that bias. How it is known:

* with ``data.probabilities``: exactly (arms of probability 0);
* without them, rows logged with propensity 1 count exactly (the logged arm was the only one the logger could
  take) and, with ``data.eligible``, so does mass on ineligible arms; rows with a propensity below 1 may hide
  more, so the value is a lower bound;
* ``None`` when nothing is known: no ``probabilities``, no ``eligible`` and no row with propensity 1.

:func:`resolve_target` validates a target once and precomputes the importance weights
``w_i = pi(a_i | x_i) / p_i``, the IPS terms ``w_i r_i`` and the weights' sufficient statistics (for the
diagnostics); validation and the gather are one compiled pass over the (n, K) array, the dominant cost of IPS and
SNIPS (about 0.1 s for n = 10^7, K = 10). Estimators accept the resolved target in place of the raw one: resolve a
target once to run several estimators on it without re-validating, as :func:`offline_eval.evaluate` does::

    target = resolve_target(data, probs)
    ips, snips = IPS().estimate(data, target), SNIPS().estimate(data, target)
"""

from __future__ import annotations

import inspect
import math
import types
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, NamedTuple, cast

import numpy as np
import pandas as pd
from numba import njit

from offline_eval.data import LoggedData, _all_finite, _distribution_flaw, _row_sum_min_max
from offline_eval.diagnostics import (
    INFORMATIVE_ROWS_MIN,
    Diagnostics,
    InformativeRows,
    RangeEnds,
    emit,
    informative_counts,
    weight_diagnostics,
)
from offline_eval.intervals import (
    AUTO_EL_MAX_N,
    INTERVAL_METHODS,
    Interval,
    IntervalMethod,
    RowTerms,
    compute_interval,
    normal_interval,
)
from offline_eval.small_sample import SmallSampleFloor, clip_to_range, ips_kl_side, kl_interval, small_sample_floor

__all__ = ["TARGET_ATOL", "Estimate", "Estimator", "ResolvedTarget", "resolve_target"]

#: Tolerance for target rows summing to 1 and for target mass on ineligible arms.
TARGET_ATOL = 1e-6


# ----------------------------------------------------------------------------------------------------------------
# numba kernels
# ----------------------------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True)  # the streaming pass's worker threads run it at once
def _gather_target(T, action, propensity, reward, atol, w, wr, stats):  # pragma: no cover - numba
    """Gather the importance weights and check the target rows in one pass over ``T``.

    ``T`` (n, K) float64, ``action`` (n,) int64 in [0, K), ``propensity`` (n,) float64 > 0, ``reward`` (n,)
    float64. Outputs: ``w`` (n,) float64 = ``T[i, action[i]] / propensity[i]``; ``wr`` (n,) float64 =
    ``w * reward``; ``stats`` (3,) float64 = (sum w, sum w^2, max w). Rows are read four at a time into
    independent scalar accumulators, so the K-long sums of different rows overlap instead of waiting on each
    other. Returns the number of row groups (four rows, or one trailing row) holding a row that has an entry
    outside [0, 1 + ``atol``] or a sum (NaN for non-finite entries) further than ``atol`` from 1: 0 means every row
    is a distribution; otherwise :func:`_check_target_rows` names the bad rows.
    """
    n, K = T.shape
    top = 1.0 + atol
    bad = 0
    a0 = a1 = a2 = a3 = 0.0  # sum w, per lane
    q0 = q1 = q2 = q3 = 0.0  # sum w^2
    m0 = m1 = m2 = m3 = 0.0  # max w
    n4 = n - n % 4
    for i in range(0, n4, 4):
        s0 = s1 = s2 = s3 = 0.0
        lo0 = lo1 = lo2 = lo3 = np.inf
        hi0 = hi1 = hi2 = hi3 = -np.inf
        for k in range(K):
            v0, v1, v2, v3 = T[i, k], T[i + 1, k], T[i + 2, k], T[i + 3, k]
            s0 += v0
            s1 += v1
            s2 += v2
            s3 += v3
            lo0, lo1, lo2, lo3 = min(lo0, v0), min(lo1, v1), min(lo2, v2), min(lo3, v3)
            hi0, hi1, hi2, hi3 = max(hi0, v0), max(hi1, v1), max(hi2, v2), max(hi3, v3)
        ok = (min(min(lo0, lo1), min(lo2, lo3)) >= 0.0) & (max(max(hi0, hi1), max(hi2, hi3)) <= top)
        ok &= (abs(s0 - 1.0) <= atol) & (abs(s1 - 1.0) <= atol) & (abs(s2 - 1.0) <= atol) & (abs(s3 - 1.0) <= atol)
        bad += not ok
        w0 = T[i, action[i]] / propensity[i]
        w1 = T[i + 1, action[i + 1]] / propensity[i + 1]
        w2 = T[i + 2, action[i + 2]] / propensity[i + 2]
        w3 = T[i + 3, action[i + 3]] / propensity[i + 3]
        w[i], w[i + 1], w[i + 2], w[i + 3] = w0, w1, w2, w3
        wr[i] = w0 * reward[i]
        wr[i + 1] = w1 * reward[i + 1]
        wr[i + 2] = w2 * reward[i + 2]
        wr[i + 3] = w3 * reward[i + 3]
        a0 += w0
        a1 += w1
        a2 += w2
        a3 += w3
        q0 += w0 * w0
        q1 += w1 * w1
        q2 += w2 * w2
        q3 += w3 * w3
        m0, m1, m2, m3 = max(m0, w0), max(m1, w1), max(m2, w2), max(m3, w3)
    for i in range(n4, n):
        s0, lo0, hi0 = _row_sum_min_max(T, i)
        bad += _distribution_flaw(s0, lo0, hi0, atol) >= 0
        w0 = T[i, action[i]] / propensity[i]
        w[i] = w0
        wr[i] = w0 * reward[i]
        a0 += w0
        q0 += w0 * w0
        m0 = max(m0, w0)
    stats[0] = (a0 + a1) + (a2 + a3)
    stats[1] = (q0 + q1) + (q2 + q3)
    stats[2] = max(max(m0, m1), max(m2, m3))
    return bad


@njit(cache=True)
def _check_target_rows(T, atol, status):  # pragma: no cover - numba
    """Count the target rows that are not distributions (the error path of :func:`_gather_target`).

    ``T`` (n, K) float64. Output ``status`` (4,) int64 = (rows with a negative / non-finite / > 1 + ``atol``
    entry, rows not summing to 1 within ``atol``, first row of the first kind or -1, first row of the second kind
    or -1). Returns 0.
    """
    status[0] = 0
    status[1] = 0
    status[2] = -1
    status[3] = -1
    for i in range(T.shape[0]):
        s, lo, hi = _row_sum_min_max(T, i)
        c = _distribution_flaw(s, lo, hi, atol)
        if c >= 0:
            if status[c] == 0:
                status[2 + c] = i
            status[c] += 1
    return 0


@njit(cache=True)
def _clipped_products(w, x, clip, out):  # pragma: no cover - numba
    """Clipped weights times ``x`` and the number of clipped rows, in one pass.

    ``w``, ``x`` (n,) float64, ``clip`` float. Output ``out`` (n,) float64 = ``min(w, clip) * x``. Returns the
    number of rows with ``w > clip`` (int64), the numerator of the clipped share.
    """
    clipped = 0
    for i in range(w.shape[0]):
        wi = w[i]
        if wi > clip:
            clipped += 1
            wi = clip
        out[i] = wi * x[i]
    return clipped


@njit(cache=True, nogil=True)  # the streaming pass's worker threads run it at once
def _outside_support(T, rows, P, E, has_p, has_e, action, propensity, atol, out):  # pragma: no cover - numba
    """Target mass outside the logging support, over the candidate ``rows`` only.

    ``T`` (n, K) float64 target; ``rows`` (m,) int64; ``P`` (n, K) float64 logging probabilities (used if
    ``has_p``); ``E`` (n, K) bool eligibility (used if ``has_e``); ``action`` (n,) int64 and ``propensity`` (n,)
    float64 (used if not ``has_p``). An arm is outside the support when its logging probability is 0 -- without
    ``P``: when the row's propensity is 1 and the arm is not the logged one -- or it is ineligible. Output ``out``
    (4,) float64 = (total mass outside the support, number of rows with more than ``atol`` mass on ineligible arms,
    first such row or -1, total mass on ineligible arms). Returns 0.
    """
    total = 0.0
    bad_rows = 0.0
    first = -1.0
    inel = 0.0
    K = T.shape[1]
    for j in range(rows.shape[0]):
        i = rows[j]
        row_inel = 0.0
        one_hot = (not has_p) and propensity[i] == 1.0
        for k in range(K):
            v = T[i, k]
            outside = False
            if has_e and not E[i, k]:
                outside = True
                row_inel += v
            if has_p and P[i, k] == 0.0:
                outside = True
            if one_hot and k != action[i]:
                outside = True
            if outside:
                total += v
        if row_inel > atol:
            if bad_rows == 0.0:
                first = i
            bad_rows += 1.0
        inel += row_inel
    out[0] = total
    out[1] = bad_rows
    out[2] = first
    out[3] = inel
    return 0


# ----------------------------------------------------------------------------------------------------------------
# target policies
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False, slots=True)
class ResolvedTarget:
    """A validated target policy on one :class:`LoggedData`, with its importance weights.

    Attributes
    ----------
    data : LoggedData
        The logs the target was resolved on.
    probabilities : ndarray (n, K) or None
        Target distribution per row (None for a deterministic target).
    actions : ndarray (n,) of int64 or None
        Target action per row (None for a stochastic target).
    weights : ndarray (n,)
        ``w_i = pi(a_i | x_i) / p_i``, read-only.
    weighted_reward : ndarray (n,)
        ``w_i r_i`` (the IPS per-row terms, shared by IPS and SNIPS), read-only.
    weight_sum, weight_sq_sum, weight_max : float
        ``sum w``, ``sum w^2``, ``max w``.
    support_deficit : float or None
        Mean target mass on arms with logging probability 0 or ineligible (see "Support deficit" in
        :mod:`offline_eval.estimators.base`; None when unknown).
    n_informative : int
        Informative rows on the observed reward range (:func:`offline_eval.diagnostics.informative_rows`: of the
        rows with a positive weight, the fewer of those above the lowest and below the highest logged reward);
        :meth:`informative` counts them on a stated range.
    """

    data: LoggedData
    probabilities: np.ndarray | None
    actions: np.ndarray | None
    weights: np.ndarray
    weighted_reward: np.ndarray
    weight_sum: float
    weight_sq_sum: float
    weight_max: float
    support_deficit: float | None
    n_informative: int
    interval_cache: dict = field(default_factory=dict, repr=False)

    @property
    def supported(self) -> bool:
        """False when the target has a support deficit above :data:`TARGET_ATOL`: no estimate is then consistent."""
        return self.support_deficit is None or self.support_deficit <= TARGET_ATOL

    def informative(self, reward_range: tuple[float, float] | None = None) -> InformativeRows:
        """:func:`offline_eval.diagnostics.informative_counts` of this target on ``reward_range`` (a stated range of
        one reward; None: the observed range, whose count is :attr:`n_informative`), computed once per range."""
        key = ("informative", reward_range)
        hit = self.interval_cache.get(key)
        if hit is None:
            if reward_range is not None:
                self.range_ends().check_within(reward_range)
            hit = self.interval_cache[key] = (self.range_ends().informative() if reward_range is None else
                                              informative_counts(self.weights, self.data.reward, reward_range))
        return cast(InformativeRows, hit)

    def range_ends(self) -> RangeEnds:
        """:class:`offline_eval.diagnostics.RangeEnds` of these weights and the logged rewards (computed once): the
        mergeable statistics of the informative rows on the observed range."""
        hit = self.interval_cache.get("range_ends")
        if hit is None:
            hit = self.interval_cache["range_ends"] = RangeEnds.of(self.weights, self.data.reward)
        return cast(RangeEnds, hit)

    def small_sample_floor(self, alpha: float, reward_range: tuple[float, float] | None) -> SmallSampleFloor | None:
        """What every interval of this target must contain when it has too few informative rows
        (:mod:`offline_eval.small_sample`); None otherwise. ``reward_range``: the estimator's, else the observed."""
        counts = self.informative(reward_range)
        if counts.rows >= INFORMATIVE_ROWS_MIN:
            return None
        return small_sample_floor(self.data.n, counts.rows, float(self.weighted_reward.mean()),
                                  float(self.data.reward.mean()), self._weight_bound(),
                                  self._reward_range(reward_range), alpha, *self._orientation(counts))

    def value_kl_side(self, reward_range: tuple[float, float] | None) -> tuple[float, float, float]:
        """:func:`offline_eval.small_sample.ips_kl_side` of this target: ``(mean, low, high)`` of the terms whose
        KL interval bounds its value (the end its informative rows are counted from)."""
        return ips_kl_side(float(self.weighted_reward.mean()), self._weight_bound(), self._reward_range(reward_range),
                           *self._orientation(self.informative(reward_range)))

    def value_kl_interval(self, alpha: float, reward_range: tuple[float, float] | None) -> tuple[float, float]:
        """:func:`offline_eval.small_sample.kl_interval` of :meth:`value_kl_side` (valid at every n)."""
        mean, low, high = self.value_kl_side(reward_range)
        return kl_interval(mean, self.data.n, low, high, alpha)

    def _orientation(self, counts: InformativeRows) -> tuple[bool, float, bool]:
        """``(at_top, weight_mean, supported)``: the small-sample floor's form
        (:func:`~offline_eval.small_sample.ips_kl_side`; the mirrored forms need ``E[w] = 1``, no support deficit)."""
        return counts.at_top, self.weight_sum / self.data.n, self.supported

    def _weight_bound(self) -> float:
        """:func:`_weight_bound` of this target, computed once (an O(n K) pass; every estimator's floor needs it)."""
        hit = self.interval_cache.get("weight_bound")
        if hit is None:
            hit = self.interval_cache["weight_bound"] = _weight_bound(self)
        return float(hit)

    def _reward_range(self, reward_range: tuple[float, float] | None) -> tuple[float, float]:
        r = self.data.reward
        return (float(r.min()), float(r.max())) if reward_range is None else reward_range

    def expected(self, q: np.ndarray) -> np.ndarray:
        """``sum_k pi(k | x_i) q[i, k]`` per row, shape (n,), for a reward matrix ``q`` (n, K)."""
        if self.actions is not None:
            return q[np.arange(len(q)), self.actions]
        return np.einsum("ij,ij->i", cast(np.ndarray, self.probabilities), q)  # stochastic target: not None

    def diagnostics(self, clipped_share: float = 0.0, warn_clipped: bool = True,
                    reward_range: tuple[float, float] | None = None) -> Diagnostics:
        """:func:`offline_eval.diagnostics.weight_diagnostics` of these weights, with the informative rows on
        ``reward_range`` (None: the observed range)."""
        return weight_diagnostics(
            self.data.n,
            self.weight_sum,
            self.weight_sq_sum,
            self.weight_max,
            self.support_deficit,
            clipped_share,
            warn_clipped,
            self.informative(reward_range).rows,
        )


def _weight_bound(target: ResolvedTarget) -> float:
    """A-priori largest importance weight: ``max_{i,k} pi(k|x_i) / mu(k|x_i)`` over arms the logger can take (with
    logged probabilities), else ``max_i 1 / p_i`` (a target probability is at most 1)."""
    data = target.data
    P = data.probabilities
    if P is None:
        return float(1.0 / data.propensity.min())
    if target.actions is not None:
        p = P[np.arange(data.n), target.actions]
        p = p[p > 0]
        return float(1.0 / p.min()) if len(p) else 1.0
    T = cast(np.ndarray, target.probabilities)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(P > 0, T / np.where(P > 0, P, 1.0), 0.0)
    return float(ratio.max())


def _clipped_terms(w: np.ndarray, x: np.ndarray, clip: float) -> tuple[np.ndarray, float]:
    """``min(w, clip) * x`` (n,) and the share of rows with ``w > clip``, in one compiled pass.

    Used by the clipped estimators (``IPS(clip=...)``, ``DR(clip=...)``) for their terms and the
    ``clipped_share`` diagnostic. ``w`` and ``x`` are float64 arrays of one length n >= 1.

    Examples
    --------
    >>> import numpy as np
    >>> _clipped_terms(np.array([0.5, 2.0, 4.0, 1.0]), np.array([1.0, 1.0, 2.0, 3.0]), 1.5)
    (array([0.5, 1.5, 3. , 3. ]), 0.5)
    """
    out = np.empty(len(w))
    clipped = _clipped_products(w, x, float(clip), out)
    return out, clipped / len(w)


#: Attributes, in order of preference, through which a policy object names its arms (its column order).
ARM_NAME_ATTRIBUTES = ("arm_names", "action_names")


def _policy_arm_names(policy: Any, name: str) -> list[str] | None:
    """The arm names ``policy`` exposes (see :data:`ARM_NAME_ATTRIBUTES`), or None if it names none."""
    for attr in ARM_NAME_ATTRIBUTES:
        names = getattr(policy, attr, None)
        if names is None:
            continue
        if isinstance(names, str) or not isinstance(names, (Sequence, np.ndarray)):
            raise TypeError(f"{name}.{attr} must be a sequence of arm names (str), got {type(names).__name__}")
        out = [str(a) for a in names]
        if len(set(out)) != len(out):
            dupes = sorted({a for a in out if out.count(a) > 1})
            raise ValueError(f"{name}.{attr} must name each arm once, got duplicates {dupes}")
        return out
    return None


def _policy_probabilities(data: LoggedData, policy: Any, name: str) -> Any:
    """Call ``policy.action_probabilities`` on the logs, matching its arms to the log's by name when it names them.

    Returns the raw output (still to be validated as an (n, K) array) in the log's arm order.
    """
    source = f"{name}.action_probabilities(X, eligible)"
    arms = _policy_arm_names(policy, name)
    if arms is None or arms == data.action_names:
        return policy.action_probabilities(data.context, data.eligible)
    log_arms = data.action_names
    known = set(arms)
    missing = [a for a in log_arms if a not in known]
    if missing and log_arms == [str(k) for k in range(data.n_actions)]:
        raise ValueError(
            f"{name} names its arms {arms} but the logs have no arm names (action_names defaults to {log_arms}); "
            "pass action_names=[...] to LoggedData (decision logs read with from_parquet carry them), or pass the "
            "policy's (n, K) probabilities as an array to match the arms by position"
        )
    if missing:
        raise ValueError(
            f"{name} lacks {'every one' if len(missing) == len(log_arms) else 'some'} of the logged arms: "
            f"{missing} are not among its arms {arms} (logged: {log_arms}); a policy must know every logged arm to "
            "be evaluated on these logs: add the arms to it, or evaluate on logs without them"
        )
    position = {a: j for j, a in enumerate(arms)}
    log_index = {a: k for k, a in enumerate(log_arms)}
    extra = [j for j, a in enumerate(arms) if a not in log_index]
    eligible = None
    if data.eligible is not None:
        eligible = np.ones((data.n, len(arms)), dtype=np.bool_)  # arms the log lacks: the policy may choose them
        for a, k in log_index.items():
            eligible[:, position[a]] = data.eligible[:, k]
    out = np.asarray(policy.action_probabilities(data.context, eligible))
    if out.ndim != 2 or out.shape != (data.n, len(arms)):
        raise ValueError(
            f"{source} must have shape (n, K) = ({data.n}, {len(arms)}) -- one distribution over its {len(arms)} "
            f"arms {arms} per logged row -- got shape {out.shape}"
        )
    if out.dtype.kind not in "iuf":
        raise TypeError(f"{source} must hold probabilities (floats), got dtype {out.dtype}")
    if extra:
        bad = ~(out[:, extra] <= TARGET_ATOL)  # NaN counts as mass: it cannot be dropped unseen
        if bad.any():
            rows = bad.any(axis=1)
            names = [arms[extra[j]] for j in np.flatnonzero(bad.any(axis=0))]
            raise ValueError(
                f"{name} puts probability on arms {names} that are not in the logs (logged arms: {log_arms}) in "
                f"{int(rows.sum())} of {data.n} rows (first at row {int(np.flatnonzero(rows)[0])}); no logged "
                "decision can evaluate that mass: retire those arms in a copy of the policy (remove_arm) or "
                "evaluate on logs that include them"
            )
    return out[:, [position[a] for a in log_arms]]


def _target_array(data: LoggedData, target: Any, name: str) -> np.ndarray:
    """The raw target as an ndarray: (n, K) float probabilities or (n,) int64 actions (validated shapes)."""
    n, k = data.n, data.n_actions
    source = name
    if callable(getattr(target, "action_probabilities", None)):
        source = f"{name}.action_probabilities(X, eligible)"
        target = _policy_probabilities(data, target, name)
    if isinstance(target, pd.DataFrame):
        columns = [str(c) for c in target.columns]
        if sorted(columns) == sorted(data.action_names):
            target = target.rename(columns=str)[data.action_names]
        elif not all(isinstance(c, (int, np.integer)) for c in target.columns):
            missing = [a for a in data.action_names if a not in columns]
            unknown = [c for c in columns if c not in data.action_names]
            raise ValueError(
                f"{name} DataFrame columns {columns} must be the logged arms {data.action_names} (any order; "
                f"missing {missing}, unknown {unknown}); integer columns 0..K-1 are read by position"
            )
        target = target.to_numpy()
    if isinstance(target, (str, int, np.integer)) and not isinstance(target, bool):
        target = np.full(n, target, dtype=object if isinstance(target, str) else np.int64)
    arr = np.asarray(target)
    if arr.ndim == 2:
        if arr.dtype.kind not in "iuf" or arr.dtype == np.bool_:
            raise TypeError(f"{source} must hold probabilities (floats), got dtype {arr.dtype}")
        if arr.shape != (n, k):
            raise ValueError(
                f"{source} must have shape (n, K) = ({n}, {k}) -- one distribution over the data's {k} arms "
                f"{data.action_names} per logged row -- got shape {arr.shape}"
            )
        return np.ascontiguousarray(arr, dtype=np.float64)
    if arr.ndim == 1:
        if len(arr) != n:
            raise ValueError(f"{source} must have one action per logged row ({n}), got {len(arr)}")
        if arr.dtype.kind in "iu":
            actions = arr.astype(np.int64, copy=False)
        elif arr.dtype.kind in "UO":
            index = {a: i for i, a in enumerate(data.action_names)}
            try:
                actions = np.fromiter((index[str(v)] for v in arr), dtype=np.int64, count=n)
            except KeyError as err:
                raise ValueError(f"{source} names arm {err.args[0]!r}, not one of {data.action_names}") from None
        else:
            raise TypeError(
                f"a 1-D {source} must hold deterministic actions (int indices or arm names), got dtype {arr.dtype}; "
                f"pass probabilities as an (n, K) = ({n}, {k}) array"
            )
        bad = (actions < 0) | (actions >= k)
        if bad.any():
            raise ValueError(
                f"{source} actions must lie in [0, K={k}); {int(bad.sum())} of {n} rows do not "
                f"(first at row {int(np.flatnonzero(bad)[0])})"
            )
        return actions
    raise ValueError(
        f"{source} must be an (n, K) probability array, an (n,) action array, an arm, or an object with "
        f"action_probabilities(X, eligible); got an array of shape {arr.shape}"
    )


def _ineligible_error(source: str, rows: int, first: int, n: int) -> ValueError:
    return ValueError(
        f"{source} puts probability on ineligible arms in {rows} of {n} rows (first at row {first}); a policy cannot "
        "offer an ineligible arm: set those probabilities to 0 and renormalise each row, e.g. "
        "p = p * data.eligible; p /= p.sum(axis=1, keepdims=True)"
    )


def _support_rows(data: LoggedData) -> np.ndarray | None:
    """Rows (int64) where the logging support may miss an arm; None when no row's support is known.

    ``data.unsupported_rows()`` (an arm of probability 0 or ineligible) and, without ``probabilities``, the rows
    logged with propensity 1 (their support is the logged arm alone, when K > 1).
    """
    rows = data.unsupported_rows()
    if data.probabilities is not None or data.n_actions < 2:
        return rows
    one_hot = data.propensity == 1.0
    if rows is None:
        return np.flatnonzero(one_hot) if one_hot.any() else None
    if one_hot.any():
        one_hot[rows] = True
        rows = np.flatnonzero(one_hot)
    return rows


def resolve_target(data: LoggedData, target: Any, name: str = "target") -> ResolvedTarget:
    """Validate ``target`` against ``data`` and compute its importance weights (see the module docstring).

    Parameters
    ----------
    data : LoggedData
        The logs.
    target : array_like, arm, DataFrame, policy object or ResolvedTarget
        The target policy; a :class:`ResolvedTarget` of the same ``data`` is returned as is.
    name : str
        How error messages call the target (e.g. ``"policies['greedy']"``).

    Returns
    -------
    ResolvedTarget

    Examples
    --------
    >>> import numpy as np
    >>> data = LoggedData(None, [0, 1, 1, 0], [1.0, 0.0, 2.0, 0.0], [0.5] * 4)
    >>> resolve_target(data, [1, 1, 1, 1]).weights
    array([0., 2., 2., 0.])
    >>> resolve_target(data, np.full((4, 2), 0.6))
    Traceback (most recent call last):
    ...
    ValueError: target rows must sum to 1 (within 1e-06); 4 of 4 rows do not (first at row 0, sum 1.2); ...
    """
    if not isinstance(data, LoggedData):
        raise TypeError(
            f"data must be an offline_eval.LoggedData, got {type(data).__name__}; build it with LoggedData(...), "
            "LoggedData.from_dataframe(df) or LoggedData.from_parquet(path)"
        )
    if isinstance(target, ResolvedTarget):
        if target.data is not data:
            raise ValueError(f"{name} was resolved on different LoggedData; resolve it on this data")
        return target
    arr = _target_array(data, target, name)
    n = data.n
    rows = _support_rows(data)
    P, E = data.probabilities, data.eligible
    if arr.ndim == 1:
        actions = arr
        match = actions == data.action
        w = np.where(match, 1.0 / data.propensity, 0.0)
        wr = w * data.reward
        deficit = None
        if rows is not None:
            outside = np.zeros(len(rows), dtype=bool)
            ta = actions[rows]
            if E is not None:
                inel = ~E[rows, ta]
                if inel.any():
                    raise _ineligible_error(name, int(inel.sum()), int(rows[np.flatnonzero(inel)[0]]), n)
            if P is not None:
                outside |= P[rows, ta] == 0.0
            else:  # propensity 1: the logged arm was the only one the logger could take
                outside |= (data.propensity[rows] == 1.0) & (ta != data.action[rows])
            deficit = float(outside.sum()) / n if n else 0.0
        stats = (float(w.sum()), float(w @ w), float(w.max()) if n else 0.0)
        probabilities = None
    else:
        w = np.empty(n)
        wr = np.empty(n)
        stats_arr = np.zeros(3)
        if _gather_target(arr, data.action, data.propensity, data.reward, TARGET_ATOL, w, wr, stats_arr):
            status = np.zeros(4, dtype=np.int64)
            _check_target_rows(arr, TARGET_ATOL, status)
            if status[0]:
                raise ValueError(
                    f"{name} probabilities must be finite and in [0, 1]; {status[0]} of {n} rows are not "
                    f"(first at row {status[2]}: {arr[status[2]].tolist()})"
                )
            raise ValueError(
                f"{name} rows must sum to 1 (within {TARGET_ATOL:g}); {status[1]} of {n} rows do not (first at row "
                f"{status[3]}, sum {arr[status[3]].sum():.6g}); normalise with p / p.sum(axis=1, keepdims=True)"
            )
        deficit = None
        if rows is not None:
            out = np.zeros(4)
            has_p, has_e = P is not None, E is not None
            _outside_support(
                arr,
                rows,
                P if has_p else np.zeros((0, 0)),
                E if has_e else np.zeros((0, 0), dtype=np.bool_),
                has_p,
                has_e,
                data.action,
                data.propensity,
                TARGET_ATOL,
                out,
            )
            if out[1]:
                raise _ineligible_error(name, int(out[1]), int(out[2]), n)
            deficit = float(out[0]) / n if n else 0.0
        stats = (float(stats_arr[0]), float(stats_arr[1]), float(stats_arr[2]))
        actions, probabilities = None, arr
    w.flags.writeable = False
    wr.flags.writeable = False
    ends = RangeEnds.of(w, data.reward)
    return ResolvedTarget(data, probabilities, actions, w, wr, stats[0], stats[1], stats[2], deficit,
                          ends.informative().rows, {"range_ends": ends})


# ----------------------------------------------------------------------------------------------------------------
# results
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Estimate:
    """An off-policy estimate of a target policy's expected reward per decision, with its interval.

    Attributes
    ----------
    value : float
        Estimated expected reward per decision under the target (reward units).
    se : float
        Standard error (for bootstrap intervals: the sd of the resampled estimates).
    ci_low, ci_high : float
        Two-sided ``1 - alpha`` interval.
    n : int
        Number of logged rows used.
    estimator : str
        Name of the estimator that produced it (e.g. ``"IPS"``, ``"DR(clip=20)"``).
    alpha : float
        Two-sided error rate of the interval; ``level = 1 - alpha``.
    interval : str
        The kind of interval (see ``docs/ope_intervals.md``): ``"normal"``, ``"bootstrap"``, ``"bernstein"``,
        ``"el"`` (empirical likelihood of the mean of the terms), ``"el-ips"`` (empirical likelihood with the
        mean-weight constraint and the weight / reward bounds, for IPS and SNIPS), or ``"bias-aware(<kind>)"``: the
        interval of the unbiased reference (DR, or IPS for clipped IPS) computed with ``<kind>`` and extended to
        contain this estimate, so that its coverage does not depend on the reward model.
    diagnostics : Diagnostics
        Importance-weight diagnostics of the (data, target) pair.
    consistent : bool
        True when the estimator is unbiased or consistent with O(1/n) bias given correct propensities (IPS,
        SNIPS, DR and SNDR without clipping; SwitchDR / DROS when their selected hyperparameter reduces them to
        DR), so the interval has asymptotically nominal coverage; False for DM and for clipped / shrunk /
        switched estimators, whose intervals ignore their bias, and for every estimator when the target has a
        support deficit (mass on arms the logging policy never takes; see ``diagnostics.support_deficit``).
    params : Mapping[str, float]
        Hyperparameters chosen from the data (e.g. ``{"tau": 7.5}`` for SwitchDR); empty for the others.
    bias : float
        Estimated bias: this value minus its unbiased reference's on the same rows (0 for unbiased estimators).
    honest : bool
        True when the interval keeps its nominal coverage whatever the reward model (unbiased estimators and
        bias-aware intervals), given correct propensities and no support deficit.
    """

    value: float
    se: float
    ci_low: float
    ci_high: float
    n: int
    estimator: str
    alpha: float
    interval: str
    diagnostics: Diagnostics
    consistent: bool = True
    params: Mapping[str, float] = field(default_factory=dict)
    bias: float = 0.0
    honest: bool = True

    @property
    def interval_kind(self) -> str:
        """Alias of :attr:`interval`."""
        return self.interval

    @property
    def level(self) -> float:
        """Confidence level ``1 - alpha``."""
        return 1.0 - self.alpha

    def __repr__(self) -> str:
        params = "".join(f", {k}={v:.4g}" for k, v in self.params.items())
        return (
            f"Estimate({self.estimator}: value={self.value:.6g}, se={self.se:.3g}, "
            f"{100 * self.level:g}% CI [{self.ci_low:.6g}, {self.ci_high:.6g}], n={self.n}{params})"
        )


class _Terms(NamedTuple):
    """What an estimator's private hook returns."""

    terms: RowTerms
    clipped_share: float = 0.0
    consistent: bool = True
    params: Mapping[str, float] = types.MappingProxyType({})
    warn_clipped: bool = True
    reference: RowTerms | None = None  # terms of the unbiased reference of a biased estimator
    reference_kind: str = "dr"  # "dr" (mean terms) or "ips" (weights x rewards: EL with the weight constraint)


def _require_q(q: np.ndarray | None, estimator: str) -> np.ndarray:
    """The reward matrix a model-based estimator's ``_row_terms`` was given; TypeError when it got none."""
    if q is None:
        raise TypeError(
            f"{estimator} needs the (n, K) reward matrix q; get it with estimator.reward_matrix(data) (or call "
            "estimate(), which fits it)"
        )
    return q


def _check_number(value: Any, name: str, *, low: float, low_open: bool, allow_inf: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    v = float(value)
    if math.isnan(v) or (math.isinf(v) and not allow_inf) or v < low or (low_open and v == low):
        bound = f"> {low:g}" if low_open else f">= {low:g}"
        raise ValueError(f"{name} must be {'finite and ' if not allow_inf else ''}{bound}, got {value!r}")
    return v


def _check_range(pair: Any, name: str) -> tuple[float, float]:
    """``pair`` as ``(low, high)`` floats, finite with ``low <= high`` (a list or array of two numbers is accepted)."""
    try:
        lo, hi = (float(v) for v in pair)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a pair of floats (low, high), got {pair!r}") from err
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise ValueError(f"{name} must be (low, high) with finite low <= high, got {pair!r}")
    return lo, hi


# ----------------------------------------------------------------------------------------------------------------
# base estimator
# ----------------------------------------------------------------------------------------------------------------


_INTERVAL_FIELDS = (
    "interval", "alpha", "seed", "n_bootstrap", "term_range", "reward_model", "reward_range", "bias_aware"
)


#: Every subclass of :class:`Estimator`, by name, in definition order (``Estimator.__init_subclass__``).
_REGISTRY: dict[str, type[Estimator]] = {}


def estimator_classes() -> list[type[Estimator]]:
    """Every concrete estimator class of :mod:`offline_eval.estimators`, in the order they were defined.

    Found by introspection: the subclasses ``Estimator.__init_subclass__`` registered, minus abstract and private
    (underscore) ones and those defined outside :mod:`offline_eval.estimators`. Adding an estimator class to a
    module of the package is all it takes for :func:`offline_eval.evaluate` to run it by default (unless its
    ``_run_by_default`` is False), for configs and the CLI to accept its name and for the generic tests to cover it.

    Examples
    --------
    >>> from offline_eval.estimators import estimator_classes
    >>> [cls.__name__ for cls in estimator_classes()]
    ['IPS', 'SNIPS', 'DM', 'DR', 'SNDR', 'SwitchDR', 'DROS']
    """
    return [
        cls
        for cls in _REGISTRY.values()
        if cls.__module__.startswith("offline_eval.estimators.")
        and not inspect.isabstract(cls)
        and not cls.__name__.startswith("_")
    ]


@dataclass(frozen=True, kw_only=True)
class Estimator(ABC):
    """Base of the off-policy estimators: validation, target resolution, intervals, diagnostics.

    Subclasses are frozen keyword-only dataclasses whose extra fields are hyperparameters (checked in
    ``__post_init__``) and implement one private hook, ``_row_terms(target, q)``, returning the per-row terms.

    Parameters
    ----------
    interval : {"auto", "normal", "bootstrap", "bernstein", "el"}
        How the interval is computed from the per-row terms (see :mod:`offline_eval.intervals`); ``"normal"`` is
        the delta method for the self-normalised estimators. ``"auto"`` (default) is the kind that measured best:
        empirical likelihood up to :data:`offline_eval.intervals.AUTO_EL_MAX_N` rows (``"el-ips"`` for IPS and
        SNIPS, with the weight and reward bounds; ``"el"`` on the terms of the others) and ``"normal"`` above.
    alpha : float
        Two-sided error rate of the interval, in (0, 1).
    seed : int or None
        Seed of the bootstrap resamples.
    n_bootstrap : int
        Number of bootstrap resamples (``interval="bootstrap"``), >= 100.
    term_range : (float, float) or None
        A-priori range of the per-row terms for ``interval="bernstein"`` (None: observed range).
    reward_range : (float, float) or None
        A-priori reward bounds (e.g. ``(0, top price)``) for the ``"el-ips"`` interval; None: the observed rewards
        and 0.
    bias_aware : bool
        For estimators that trade bias for variance (DM, SwitchDR, DROS, clipped IPS / DR): report the bias-aware
        interval (default) rather than the interval of their own terms, which ignores their bias.
    """

    #: Whether :func:`offline_eval.evaluate` runs this estimator when it is given no estimators.
    _run_by_default: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.__name__] = cls  # abstract and private classes are left out by estimator_classes()

    interval: IntervalMethod = "auto"
    alpha: float = 0.05
    seed: int | None = 0
    n_bootstrap: int = 2000
    term_range: tuple[float, float] | None = None
    reward_range: tuple[float, float] | None = None
    bias_aware: bool = True

    #: Whether the estimator needs a reward model q(x, a).
    uses_reward_model: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if self.interval not in INTERVAL_METHODS:
            raise ValueError(f"interval must be one of {INTERVAL_METHODS}, got {self.interval!r}")
        alpha = _check_number(self.alpha, "alpha", low=0.0, low_open=True)
        if alpha >= 1.0:
            raise ValueError(f"alpha must lie in (0, 1) (0.05 gives a 95% interval), got {self.alpha!r}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer))):
            raise TypeError(f"seed must be an int or None, got {type(self.seed).__name__} {self.seed!r}")
        if isinstance(self.n_bootstrap, bool) or not isinstance(self.n_bootstrap, (int, np.integer)):
            raise TypeError(f"n_bootstrap must be an int >= 100, got {type(self.n_bootstrap).__name__}")
        if self.n_bootstrap < 100:
            raise ValueError(f"n_bootstrap must be >= 100, got {self.n_bootstrap}")
        for name in ("term_range", "reward_range"):  # stored as a tuple of floats: hashable, used in cache keys
            pair = getattr(self, name)
            if pair is not None:
                object.__setattr__(self, name, _check_range(pair, name))

    # -- naming --------------------------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """Class name plus any hyperparameter that differs from its default, e.g. ``"IPS(clip=10)"``."""
        parts = []
        for f in fields(self):
            if f.name in _INTERVAL_FIELDS:
                continue
            value = getattr(self, f.name)
            if value != f.default:
                parts.append(f"{f.name}={value:g}" if isinstance(value, float) else f"{f.name}={value!r}")
        model = getattr(self, "reward_model", None)
        if model is not None:
            parts.append(f"model={type(model).__name__}")
        return f"{type(self).__name__}({', '.join(parts)})" if parts else type(self).__name__

    # -- reward model --------------------------------------------------------------------------------------------

    def reward_matrix(self, data: LoggedData, q: Any = None, target: Any = None) -> np.ndarray | None:
        """The (n, K) reward matrix this estimator uses: ``q`` validated, else fitted; None if it needs none.

        When ``q`` is None the estimator's ``reward_model`` (or
        :func:`offline_eval.reward_models.default_reward_model` when that is None) is cross-fitted on ``data``
        with ``fit_predict``. Pass a precomputed ``q`` to reuse one fit across estimators and targets. A model
        whose fit depends on the target (``target_dependent``, e.g. MRDR) gets ``target`` (resolved here if raw).
        """
        if not self.uses_reward_model:
            return None
        if q is None:
            model = getattr(self, "reward_model", None)
            if model is None:
                from offline_eval.reward_models import default_reward_model

                model = default_reward_model(data)
            if getattr(model, "target_dependent", False):
                if target is None:
                    raise TypeError(f"{type(model).__name__} fits to a target policy: pass target=...")
                resolved = target if isinstance(target, ResolvedTarget) else resolve_target(data, target)
                q = cast(Any, model).fit_predict(data, target=resolved)
            else:
                q = model.fit_predict(data)
        arr = np.asarray(q, dtype=np.float64) if not isinstance(q, np.ndarray) or q.dtype != np.float64 else q
        if arr.shape != (data.n, data.n_actions):
            raise ValueError(
                f"q must have shape (n, K) = ({data.n}, {data.n_actions}) -- predicted reward of every arm for "
                f"every logged row -- got shape {arr.shape}"
            )
        if not _all_finite(arr):  # one sum, no (n, K) temporary, unless something is not finite
            raise ValueError(f"q must be finite; {int((~np.isfinite(arr)).any(axis=1).sum())} rows are not")
        return arr

    # -- the verb ------------------------------------------------------------------------------------------------

    def _prepare(self, data: LoggedData, target: Any, q: Any) -> tuple[ResolvedTarget, np.ndarray | None]:
        resolved = resolve_target(data, target)
        if data.n < 2:
            raise ValueError(f"data has {data.n} rows; an estimate with an interval needs at least 2")
        return resolved, self.reward_matrix(data, q, resolved)

    def _method(self, n: int) -> str:
        """``interval`` with ``"auto"`` resolved for n rows (``"el"`` or ``"normal"``)."""
        if self.interval == "auto":
            return "el" if n <= AUTO_EL_MAX_N else "normal"
        return self.interval

    def _interval(self, terms: RowTerms) -> Interval:
        return compute_interval(
            terms,
            cast(IntervalMethod, self._method(terms.n)),
            self.alpha,
            n_resamples=int(self.n_bootstrap),
            seed=self.seed,
            term_range=self.term_range,
        )

    def _ips_el(self, target: ResolvedTarget, terms: RowTerms) -> Interval:
        """The ``"el-ips"`` interval of the target's value from its weights and the logged rewards; value and se
        are those of ``terms`` (IPS or SNIPS)."""
        from offline_eval.empirical_likelihood import ips_el_interval

        point = normal_interval(terms, self.alpha)
        el = ips_el_interval(
            target.weights,
            target.data.reward,
            self.alpha,
            w_max=target._weight_bound(),
            reward_range=self.reward_range,
            value=point.value,
        )
        return Interval(point.value, point.se, el.low, el.high)

    def _terms_interval(self, target: ResolvedTarget, terms: RowTerms, ips_form: bool) -> tuple[Interval, str]:
        """Interval of ``terms`` and its kind; ``ips_form``: the terms are IPS / SNIPS of ``target`` (EL-IPS).

        Intervals of mean terms are cached on the target, keyed by the interval settings and the terms' sum and
        sum of squares (the bias-aware intervals of DM, SwitchDR and DROS share DR's reference interval).
        """
        method = self._method(terms.n)
        key = None
        if terms.terms is not None and not terms.ratios and method not in ("normal",):
            t = terms.terms
            key = (method, ips_form, float(self.alpha), self.reward_range, self.term_range, self.seed,
                   int(self.n_bootstrap), float(t.sum()), float(t @ t))
            hit = target.interval_cache.get(key)
            if hit is not None:
                return hit
        if method == "el" and ips_form and target.supported:  # E[w] = 1 holds only without a support deficit
            out = self._ips_el(target, terms), "el-ips"
        else:
            out = self._interval(terms), method
        if key is not None:
            target.interval_cache[key] = out
        return out

    def _bias_aware(
        self, target: ResolvedTarget, iv: Interval, kind: str, reference: RowTerms | None, ips_form: bool
    ) -> tuple[float, float, str, float]:
        """``(low, high, kind, bias)``: the bias-aware interval when there is a reference and ``bias_aware``,
        else ``iv``'s own bounds (bias still estimated when there is a reference)."""
        if reference is None:
            return iv.low, iv.high, kind, 0.0
        if not self.bias_aware:
            return iv.low, iv.high, kind, iv.value - reference.value()
        ref, ref_kind = self._terms_interval(target, reference, ips_form)
        return min(iv.value, ref.low), max(iv.value, ref.high), f"bias-aware({ref_kind})", iv.value - ref.value

    def _own_interval(self, target: ResolvedTarget, out: _Terms) -> tuple[Interval, str]:
        """The interval of the estimator's own terms (hook for IPS / SNIPS, which use the EL-IPS form)."""
        return self._terms_interval(target, out.terms, False)

    def _estimate(self, resolved: ResolvedTarget, q: np.ndarray | None) -> tuple[Estimate, _Terms]:
        """The estimate and the hook's output (whose ``consistent`` ignores the target's support deficit)."""
        out = self._row_terms(resolved, q)
        iv, kind = self._own_interval(resolved, out)
        reference = None if out.consistent else out.reference
        low, high, kind, bias = self._bias_aware(resolved, iv, kind, reference, out.reference_kind == "ips")
        floor = resolved.small_sample_floor(self.alpha, self.reward_range)
        if floor is not None:
            low, high, kind = min(low, floor.value_low), max(high, floor.value_high), f"{kind}+kl"
        low, high = clip_to_range(low, high, iv.value, self.reward_range)  # as evaluate's table (coverage is kept)
        honest = out.consistent or (reference is not None and self.bias_aware)
        est = Estimate(
            value=iv.value,
            se=iv.se,
            ci_low=low,
            ci_high=high,
            n=resolved.data.n,
            estimator=self.name,
            alpha=float(self.alpha),
            interval=kind,
            diagnostics=resolved.diagnostics(out.clipped_share, out.warn_clipped, self.reward_range),
            consistent=out.consistent and resolved.supported,
            params=dict(out.params),
            bias=bias,
            honest=honest and resolved.supported,
        )
        return est, out

    def estimate(self, data: LoggedData, target: Any, *, q: Any = None) -> Estimate:
        """Estimate the target policy's expected reward per decision on the logged data.

        Parameters
        ----------
        data : LoggedData
            The logs.
        target : array_like, arm, DataFrame or policy object
            The target policy (see :mod:`offline_eval.estimators.base`).
        q : array_like (n, K), optional
            Precomputed cross-fitted reward matrix for estimators with a reward model (fitted when None); ignored
            by IPS and SNIPS.

        Returns
        -------
        Estimate
            Diagnostics whose thresholds are crossed are also raised as
            :class:`offline_eval.diagnostics.DiagnosticWarning`.
        """
        resolved, q = self._prepare(data, target, q)
        est, _ = self._estimate(resolved, q)
        emit(est.diagnostics.warnings, self.name, stacklevel=3)
        return est

    def row_terms(self, data: LoggedData, target: Any, *, q: Any = None) -> RowTerms:
        """The per-row terms of the estimate: means and, for self-normalised estimators, numerator/denominator.

        Sums of these arrays over any split of the rows combine exactly into the estimate.
        """
        resolved, q = self._prepare(data, target, q)
        return self._row_terms(resolved, q).terms

    def per_row(self, data: LoggedData, target: Any, *, q: Any = None) -> np.ndarray:
        """Per-row terms (n,) whose mean is exactly the estimate.

        For IPS, DM, DR and their clipped / switched / shrunk variants these are the estimator's own terms; for
        the self-normalised SNIPS and SNDR they are the linearised (delta-method) terms, which depend on the
        overall ratio -- use :meth:`row_terms` for numerator and denominator.
        """
        return self.row_terms(data, target, q=q).linearized()

    @abstractmethod
    def _row_terms(self, target: ResolvedTarget, q: np.ndarray | None) -> _Terms:
        """Per-row terms for a resolved target (and reward matrix ``q`` if ``uses_reward_model``)."""

