"""Logged decisions as validated, read-only arrays: the input of every estimator.

:class:`LoggedData` holds the columns of the decision-log schema (:mod:`offline_eval.schema`) as numpy arrays:
``context`` (n, d), ``action`` (n,), ``reward`` (n,), ``propensity`` (n,) and optionally the full logging
``probabilities`` (n, K), the ``eligible`` mask (n, K), ``timestamp`` and ``event_id``. It is built from arrays,
from a pandas DataFrame (:meth:`LoggedData.from_dataframe`) or from Parquet decision logs
(:meth:`LoggedData.from_parquet`), validated once at construction and immutable afterwards.

Validation (``validate=True``, the default) checks, and reports by column with the number of bad rows:

* matching lengths and shapes (always, O(1));
* ``propensity`` finite and in (0, 1];
* ``action`` integer and in [0, K);
* ``reward`` and ``context`` finite (a NaN reward usually means the outcome has not been joined yet);
* ``probabilities`` non-negative, finite, each row summing to 1 within :data:`PROBABILITY_ATOL` (1e-6), and
  ``probabilities[i, action[i]]`` equal to ``propensity[i]`` within :data:`PROBABILITY_ATOL`;
* ``eligible``: the logged action is eligible and ineligible arms have probability 0 (within the tolerance);
* ``timestamp``, ``event_id`` and ``policy_version`` have no missing values (a decision without an id cannot be
  joined to its outcome or de-duplicated; one without a version cannot be attributed to its logging policy).

Cost: a few passes over each column with no large temporaries (one fused compiled pass over ``probabilities`` /
``eligible``); about 0.25 s for n = 10^7, d = 20, K = 10 on one core. ``validate=False`` skips the value checks
(shapes are still checked) for data you have validated before. ``event_id`` uniqueness is not checked (the
readers drop repeated ids first).

The constructor raises :class:`InvalidRowsError` (a ``ValueError``) for a bad value: a programmer's arrays are
fixed, not filtered. The readers of logs (:meth:`LoggedData.from_parquet`, :meth:`LoggedData.from_dataframe`,
:func:`offline_eval.streaming.evaluate_parquet`, :func:`offline_eval.spark.evaluate`) treat logs as untrusted: with
``invalid_rows="quarantine"`` (their default) they leave the bad rows out, count them per reason
(:attr:`LoggedData.quarantined`, the evaluation table's ``attrs["quarantined"]``) and warn once
(:class:`~offline_eval.schema.DecisionLogWarning`); ``invalid_rows="raise"`` stops at the first. All go through one
check, :func:`check_rows`, so every engine leaves out the same rows. Leaving rows out biases an estimate when the
fault is in how the logging policy's propensities were recorded; the warning says so.

Arrays are stored without copying when they already have the right dtype and layout (float64 / int64 / bool,
C-contiguous); the stored arrays are read-only views. Do not modify the arrays you passed in afterwards.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd
from numba import njit
from numpy.typing import ArrayLike

from offline_eval import schema as S
from offline_eval._files import atomic_file

__all__ = ["PROBABILITY_ATOL", "ROW_REASONS", "InvalidRowsError", "LoggedData", "Quarantine", "RowCheck", "check_rows"]

#: Absolute tolerance for "probabilities sum to 1" and "propensity equals probabilities[i, action[i]]".
PROBABILITY_ATOL = S.PROBABILITY_ATOL

MissingReward = Literal["drop", "raise"]


# ----------------------------------------------------------------------------------------------------------------
# numba kernel
# ----------------------------------------------------------------------------------------------------------------


@njit(cache=True)
def _row_sum_min_max(P, i):  # pragma: no cover - numba
    """Sum (in column order), minimum and maximum of row ``i`` of ``P`` (n, K) float64."""
    s = 0.0
    lo = np.inf
    hi = -np.inf
    for k in range(P.shape[1]):
        v = P[i, k]
        s += v
        lo = min(lo, v)
        hi = max(hi, v)
    return s, lo, hi


@njit(cache=True)
def _distribution_flaw(s, lo, hi, atol):  # pragma: no cover - numba
    """What is wrong with a row of probabilities of sum ``s``, minimum ``lo`` and maximum ``hi``: 0 an entry outside
    [0, 1 + ``atol``] or non-finite (then ``s`` is NaN or out of range), 1 a sum further than ``atol`` from 1, -1
    nothing (the row is a distribution)."""
    if not (lo >= 0.0 and hi <= 1.0 + atol and s == s):
        return 0
    if abs(s - 1.0) > atol:
        return 1
    return -1


@njit(cache=True, nogil=True)  # the streaming pass's worker threads run it at once
def _check_probabilities(P, action, propensity, atol, unsupported, flags, counts):  # pragma: no cover - numba
    """One pass over the logging probabilities.

    ``P`` (n, K) float64, ``action`` (n,) int64 in [0, K), ``propensity`` (n,) float64, ``atol`` float. Outputs: ``unsupported`` (n,) bool, True where the row has an arm of
    probability 0 (overwritten); ``flags`` (n,) uint8 or (0,), bit ``c`` set (or-ed) on a row with problem ``c``
    (unless empty), and
    ``counts`` (5,) int64, entries 0-2 incremented per bad row, for: 0 a row with an entry outside [0, 1] or
    non-finite, 1 a row not summing to 1 within ``atol``, 2 a propensity differing from ``P[i, action[i]]`` by more
    than ``atol``. Returns 0.
    """
    for i in range(P.shape[0]):
        s, lo, hi = _row_sum_min_max(P, i)
        unsupported[i] = lo == 0.0
        c = _distribution_flaw(s, lo, hi, atol)
        if c < 0 and abs(P[i, action[i]] - propensity[i]) > atol:
            c = 2
        if c >= 0:
            if flags.shape[0]:
                flags[i] |= 1 << c
            counts[c] += 1
    return 0


@njit(cache=True, nogil=True)  # the streaming pass's worker threads run it at once
def _check_eligibility(E, P, has_p, action, atol, unsupported, flags, counts):  # pragma: no cover - numba
    """One pass over the eligibility mask.

    ``E`` (n, K) bool, ``P`` (n, K) float64 (read only if ``has_p``), ``action`` (n,) int64 in [0, K). Outputs: ``unsupported`` (n,) bool, set True (or-ed) where the row has an
    ineligible arm; ``flags`` bits and ``counts`` entries 3 (the logged action is ineligible) and 4 (probability
    above ``atol`` on an ineligible arm). Returns 0.
    """
    n, K = E.shape
    for i in range(n):
        if not E[i, action[i]]:
            if flags.shape[0]:
                flags[i] |= 1 << 3
            counts[3] += 1
        inel = False
        for k in range(K):
            if not E[i, k]:
                unsupported[i] = True
                if has_p and P[i, k] > atol:
                    inel = True
        if inel:
            if flags.shape[0]:
                flags[i] |= 1 << 4
            counts[4] += 1
    return 0


# ----------------------------------------------------------------------------------------------------------------
# narrow validators
# ----------------------------------------------------------------------------------------------------------------


def _readonly(arr: np.ndarray) -> np.ndarray:
    if arr.flags.writeable:
        arr = arr.view()
        arr.flags.writeable = False
    return arr


def _numeric(value: Any, name: str, ndim: int) -> np.ndarray:
    """``value`` as a C-contiguous float64 array of ``ndim`` dimensions (no copy if it already is one)."""
    if isinstance(value, (str, bytes)) or isinstance(value, dict):
        raise TypeError(f"{name} must be a numeric array, got {type(value).__name__}")
    arr = np.asarray(value)
    if arr.dtype.kind not in "iuf" or arr.dtype == np.bool_:
        if arr.dtype.kind == "O":
            try:
                arr = arr.astype(np.float64)
            except (TypeError, ValueError) as err:
                raise TypeError(f"{name} must hold numbers, got objects such as {arr.flat[0]!r}") from err
        else:
            raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if arr.ndim != ndim:
        shape = "(n,)" if ndim == 1 else "(n, d)" if name == "context" else "(n, K)"
        hint = "; reshape a single feature with x.reshape(-1, 1)" if name == "context" and arr.ndim == 1 else ""
        raise ValueError(f"{name} must have shape {shape}, got shape {arr.shape}{hint}")
    return np.ascontiguousarray(arr, dtype=np.float64)


def _actions(value: Any, name: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim != 1:
        raise ValueError(f"{name} must have shape (n,), got shape {arr.shape}")
    if arr.dtype.kind in "iu":
        return np.ascontiguousarray(arr, dtype=np.int64)
    if arr.dtype.kind == "f":
        whole = np.isfinite(arr) & (arr == np.floor(arr)) if len(arr) else np.ones(0, dtype=bool)
        if not whole.all():
            bad = np.flatnonzero(~whole)
            raise ValueError(
                f"{name} must hold integer action indices; {len(bad)} of {len(arr)} rows are not whole numbers "
                f"(first at row {bad[0]}: {arr[bad[0]]!r})"
            )
        return arr.astype(np.int64)
    raise TypeError(
        f"{name} must be an integer array of action indices, got dtype {arr.dtype}; map arm names to indices "
        "with the action_names order first"
    )


def _bool_matrix(value: Any, name: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape (n, K), got shape {arr.shape}")
    if arr.dtype == np.bool_:
        return np.ascontiguousarray(arr)
    if arr.dtype.kind in "iuf" and np.all((arr == 0) | (arr == 1)):
        return np.ascontiguousarray(arr, dtype=np.bool_)
    raise TypeError(f"{name} must be a boolean (or 0/1) mask of shape (n, K), got dtype {arr.dtype}")


def _timestamps(value: Any, n: int) -> np.ndarray:
    if isinstance(value, np.ndarray) and value.dtype == np.dtype("datetime64[us]"):
        arr = value
    else:
        try:
            idx = pd.DatetimeIndex(pd.to_datetime(value, utc=True))
        except (TypeError, ValueError) as err:
            raise TypeError(
                f"timestamp must hold datetimes (or ISO strings), got {type(value).__name__}: {err}"
            ) from err
        arr = idx.tz_localize(None).to_numpy(dtype="datetime64[us]")
    if arr.ndim != 1 or len(arr) != n:
        raise ValueError(f"timestamp must have shape ({n},), got shape {arr.shape}")
    return arr


def _bad_rows_message(name: str, bad: np.ndarray, values: np.ndarray | None, n: int, what: str, fix: str) -> str:
    idx = np.flatnonzero(bad)
    example = f": {values[idx[0]].item()!r}" if values is not None else ""
    return f"{name} {what}; {len(idx)} of {n} rows violate it (first at row {idx[0]}{example}); {fix}"


def _all_finite(arr: np.ndarray) -> bool:
    """True iff every entry is finite; a single sum is enough unless it overflows or a NaN/inf is present."""
    if arr.size == 0:
        return True
    with np.errstate(over="ignore", invalid="ignore"):
        if math.isfinite(float(arr.sum())):
            return True
    return bool(np.isfinite(arr).all())


# ----------------------------------------------------------------------------------------------------------------
# row checks: one function, used by the constructor (raise) and by the readers (quarantine)
# ----------------------------------------------------------------------------------------------------------------

#: Why a row breaks the decision-log contract: reason -> (column, what it must satisfy, how to fix it, show the value).
#: Ordered as the checks run; the first seven come from LoggedData's checks per column, the others from the compiled
#: pass over ``probabilities`` / ``eligible`` (its flag bit ``c`` is the ``c``-th of them).
ROW_REASONS: dict[str, tuple[str, str, str, bool]] = {
    "action": ("action", "must lie in [0, K={k})",
               "actions index the arm list (action_names); pass n_actions/action_names if arms are missing", True),
    "propensity": ("propensity", "must lie in (0, 1]",
                   "log the probability with which the logging policy chose the logged action", True),
    "reward": ("reward", "must be finite",
               "a NaN reward usually means the outcome is not joined yet: drop those rows (from_parquet and "
               "from_dataframe do this with missing_reward='drop')", True),
    "context": ("context", "must be finite", "impute or drop missing features", False),
    "timestamp": ("timestamp", "must not be missing", "fill or drop them", False),
    "event_id": ("event_id", "must not be missing",
                 "a decision without an id cannot be joined to its outcome or de-duplicated: log an id for each",
                 False),
    "policy_version": ("policy_version", "must not be missing",
                       "a decision without a version cannot be attributed to its logging policy: log the version",
                       False),
    "probabilities": ("probabilities", "entries must be finite and in [0, 1]", "check the logging code", False),
    "probabilities_sum": ("probabilities", f"rows must sum to 1 (within {PROBABILITY_ATOL:g})",
                          "log the full distribution", False),
    "propensity_mismatch": ("propensity", f"must equal probabilities[i, action[i]] (within {PROBABILITY_ATOL:g})",
                            "propensities and probabilities come from different policies or are misaligned", False),
    "ineligible_action": ("eligible", "must be True for the logged action",
                          "a policy cannot take an ineligible action", False),
    "ineligible_probability": ("probabilities", "must be 0 on ineligible arms", "ineligible arms cannot be taken",
                               False),
}
_SUPPORT_REASONS = list(ROW_REASONS)[list(ROW_REASONS).index("probabilities"):]

InvalidRows = Literal["quarantine", "raise"]

#: Dropped rows a quarantine warning names (event ids, else row numbers).
QUARANTINE_EXAMPLES = 5

#: How a quarantine warning names a row whose event id is missing.
NO_EVENT_ID = "<no event_id>"


def _example(event_id: Any) -> str:
    """A quarantined row's name in the warning: its event id, or :data:`NO_EVENT_ID`."""
    return NO_EVENT_ID if event_id is None or pd.isna(event_id) else str(event_id)


class InvalidRowsError(ValueError):
    """Rows of logged data break the decision-log contract (the message names the column, the count and the first
    row); raised by :class:`LoggedData` and by the readers with ``invalid_rows="raise"``."""


class RowCheck(NamedTuple):
    """What :func:`check_rows` found: ``reasons`` maps each reason of :data:`ROW_REASONS` that some row has to the
    (n,) bool mask of its rows (empty when every row is valid); ``unsupported``: (n,) bool, rows with an arm of
    logging probability 0 or an ineligible arm (None without ``probabilities`` and ``eligible``)."""

    reasons: dict[str, np.ndarray]
    unsupported: np.ndarray | None

    def bad(self) -> np.ndarray | None:
        """(n,) bool mask of the rows with at least one reason, or None when every row is valid."""
        masks = list(self.reasons.values())
        if not masks:
            return None
        out = masks[0].copy()
        for mask in masks[1:]:
            out |= mask
        return out


def check_rows(
    action: np.ndarray,
    reward: np.ndarray,
    propensity: np.ndarray,
    context: np.ndarray,
    probabilities: np.ndarray | None,
    eligible: np.ndarray | None,
    timestamp: np.ndarray | None,
    n_actions: int,
    event_id: np.ndarray | None = None,
    policy_version: np.ndarray | None = None,
) -> RowCheck:
    """The rows that break the decision-log contract, and why: the one row check of every reader and of
    :class:`LoggedData` (which raises for the first reason; the readers quarantine the rows).

    Vectorised, and as cheap as the validation on valid data: per column one aggregate (min / max, or a sum that is
    finite), and one compiled pass over ``probabilities`` / ``eligible``; a per-row mask is built only for a column
    whose aggregate fails.

    Parameters
    ----------
    action : (n,) int64
    reward, propensity : (n,) float64
    context : (n, d) float64
    probabilities : (n, K) float64 or None
    eligible : (n, K) bool or None
    timestamp : (n,) datetime64[us] or None
    n_actions : int
        K.
    event_id, policy_version : (n,) object or None
        The rows' ids and logging-policy versions; a missing one (None / NaN) is a bad row.

    Returns
    -------
    RowCheck
        The mask of each reason found (:data:`ROW_REASONS`; a row may have several) and the unsupported rows.

    Examples
    --------
    >>> import numpy as np
    >>> check = check_rows(np.array([0, 5, 1]), np.zeros(3), np.array([0.5, 0.5, 0.0]), np.zeros((3, 1)),
    ...                    None, None, None, n_actions=2)
    >>> {reason: np.flatnonzero(mask).tolist() for reason, mask in check.reasons.items()}
    {'action': [1], 'propensity': [2]}
    >>> check.bad().tolist()
    [False, True, True]
    """
    n, k = len(action), n_actions
    reasons: dict[str, np.ndarray] = {}
    if n:
        if action.min() < 0 or action.max() >= k:
            reasons["action"] = (action < 0) | (action >= k)
        lo, hi = propensity.min(), propensity.max()
        if not (lo > 0.0 and hi <= 1.0):
            reasons["propensity"] = ~((propensity > 0.0) & (propensity <= 1.0))
    if not _all_finite(reward):
        reasons["reward"] = ~np.isfinite(reward)
    if not _all_finite(context):
        reasons["context"] = ~np.isfinite(context).all(axis=1)
    if timestamp is not None and n:
        nat = np.isnat(timestamp)
        if nat.any():
            reasons["timestamp"] = nat
    for reason, labels in (("event_id", event_id), ("policy_version", policy_version)):
        if labels is not None and n:
            missing = pd.isna(labels)
            if missing.any():
                reasons[reason] = missing
    unsupported = None
    if probabilities is not None or eligible is not None:
        unsupported = np.zeros(n, dtype=np.bool_)
        P = np.zeros((0, 0)) if probabilities is None else probabilities
        outside = reasons.get("action")
        # the kernels index by the action: rows outside [0, K) are checked at arm 0, their verdicts on the logged
        # arm dropped below (those rows are reported for their action)
        indexable = action if outside is None else np.where(outside, 0, action)

        def support_pass(flags: np.ndarray) -> np.ndarray:
            counts = np.zeros(len(_SUPPORT_REASONS), dtype=np.int64)
            if probabilities is not None:
                _check_probabilities(P, indexable, propensity, PROBABILITY_ATOL, unsupported, flags, counts)
            if eligible is not None:
                _check_eligibility(eligible, P, probabilities is not None, indexable, PROBABILITY_ATOL, unsupported,
                                   flags, counts)
            return counts

        # counts only; the rows' flags in a second pass when some row is bad (a valid batch pays one pass)
        counts = support_pass(np.zeros(0, dtype=np.uint8))
        if counts.any():
            flags = np.zeros(n, dtype=np.uint8)
            counts = support_pass(flags)
        for c, reason in enumerate(_SUPPORT_REASONS):
            if counts[c]:
                mask = (flags & (1 << c)) != 0
                if outside is not None and reason in ("propensity_mismatch", "ineligible_action"):
                    mask &= ~outside
                if mask.any():
                    reasons[reason] = mask
    return RowCheck(reasons, unsupported)


def _row_message(reason: str, mask: np.ndarray, values: np.ndarray, k: int) -> str:
    """The error message of :class:`LoggedData` for the rows ``mask`` with ``reason``."""
    name, what, fix, show = ROW_REASONS[reason]
    return _bad_rows_message(name, mask, values if show else None, len(mask), what.format(k=k), fix)


@dataclass(frozen=True, eq=False)
class Quarantine:
    """The rows a reader left out because they break the decision-log contract (``invalid_rows="quarantine"``).

    Attributes
    ----------
    counts : dict of str to int
        Rows per reason of :data:`ROW_REASONS`, in that order (a row with several reasons counts under each).
    n_rows : int
        Rows left out.
    n_checked : int
        Rows checked (with a reward, after the rows with a repeated event id).
    examples : tuple of str
        The first :data:`QUARANTINE_EXAMPLES` rows left out, in log order: their event ids, else ``"row i"``.
    rows : (n_rows,) int64
        Positions of the rows left out among the rows the reader was given (the DataFrame's rows for
        :meth:`LoggedData.from_dataframe`, the log's rows with a reward in reading order for
        :meth:`LoggedData.from_parquet`); empty for the batch readers (streaming, Spark), which only count.
    """

    counts: dict[str, int] = field(default_factory=dict)
    n_rows: int = 0
    n_checked: int = 0
    examples: tuple[str, ...] = ()
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __bool__(self) -> bool:
        return self.n_rows > 0

    def merge(self, later: Quarantine) -> Quarantine:
        """Both quarantines, ``later`` covering rows after this one's (the batch readers merge in log order; the
        positions are not kept)."""
        counts = {r: self.counts.get(r, 0) + later.counts.get(r, 0) for r in ROW_REASONS
                  if self.counts.get(r, 0) + later.counts.get(r, 0)}
        return Quarantine(counts, self.n_rows + later.n_rows, self.n_checked + later.n_checked,
                          (self.examples + later.examples)[:QUARANTINE_EXAMPLES])

    def warn(self, stacklevel: int = 2) -> None:
        """The readers' one :class:`~offline_eval.schema.DecisionLogWarning` about these rows (nothing if none)."""
        if not self:
            return
        counts = ", ".join(f"{r}: {c}" for r, c in self.counts.items())
        shown = ", ".join(self.examples) + (", ..." if self.n_rows > len(self.examples) else "")
        warnings.warn(
            f"quarantined {self.n_rows} of {self.n_checked} rows that break the decision-log contract ({counts}; "
            f"first: {shown}) and left them out. Leaving rows out biases the estimates when the reason is in the "
            "logging (e.g. propensities that are not the logging policy's): fix the logger, and pass "
            'invalid_rows="raise" (CLI: --invalid-rows raise) to stop at the first bad row instead',
            S.DecisionLogWarning,
            stacklevel=stacklevel + 1,
        )


# ----------------------------------------------------------------------------------------------------------------
# LoggedData
# ----------------------------------------------------------------------------------------------------------------


class LoggedData:
    """Logged decisions: contexts, logged actions, rewards and logging propensities (validated, read-only).

    Parameters
    ----------
    context : array_like (n, d) or None
        Feature vector each decision was made on (float64). None: no features (d = 0).
    action : array_like (n,)
        Index of the logged action in [0, K) (integer).
    reward : array_like (n,)
        Observed reward, finite (float64, e.g. revenue or 0/1 conversion).
    propensity : array_like (n,)
        Probability, in (0, 1], with which the logging policy chose the logged action.
    probabilities : array_like (n, K), optional
        Full logging distribution per row (0 for arms the logging policy could not take). Enables the support
        deficit diagnostic and the propensity consistency check.
    eligible : array_like (n, K) of bool, optional
        Eligibility mask at decision time. Targets may not put probability on ineligible arms.
    timestamp : array_like (n,), optional
        Decision times; stored as ``datetime64[us]`` in UTC (tz-aware inputs are converted, naive ones taken as UTC).
    event_id : array_like (n,), optional
        Decision identifiers (object array).
    action_names : sequence of str, optional
        Arm names in index order (length K, unique). Default ``["0", "1", ...]``.
    n_actions : int, optional
        Number of arms K when no other argument fixes it.
    policy_version : array_like (n,) of str, optional
        The logging policy's version per row (the decision log's ``policy_version`` column): logs that span several
        policy refreshes are a mixture of logging policies, see :mod:`offline_eval.multilogger`.
    validate : bool
        Check the values (see the module docstring); shapes are always checked.

    Attributes
    ----------
    context, action, reward, propensity, probabilities, eligible, timestamp, event_id, policy_version
        The columns as read-only numpy arrays (None when not given).
    action_names : list of str
        Arm names, length K.
    n_actions : int
        K, inferred from ``probabilities``, ``eligible``, ``action_names`` or ``n_actions`` (all must agree), else
        ``max(action) + 1``.
    quarantined : Quarantine
        The rows the reader left out because they break the decision-log contract (:meth:`from_parquet`,
        :meth:`from_dataframe` with ``invalid_rows="quarantine"``): counts per reason, the first ones, their
        positions. Empty for data built from arrays (the constructor raises instead) and kept by :meth:`subset`.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(1000, 3))
    >>> action = rng.integers(0, 2, size=1000)
    >>> reward = (rng.random(1000) < 0.1 + 0.1 * action).astype(float)
    >>> data = LoggedData(X, action, reward, propensity=np.full(1000, 0.5), action_names=["individual", "duo"])
    >>> data.n, data.n_actions, data.n_features
    (1000, 2, 3)
    >>> data.subset(np.arange(10)).n
    10
    >>> LoggedData(X, action, reward, propensity=np.full(1000, 1.5))
    Traceback (most recent call last):
    ...
    offline_eval.data.InvalidRowsError: propensity must lie in (0, 1]; 1000 of 1000 rows violate it (first at row 0: 1.5); ...
    """

    __slots__ = (
        "context",
        "action",
        "reward",
        "propensity",
        "probabilities",
        "eligible",
        "timestamp",
        "event_id",
        "policy_version",
        "action_names",
        "n_actions",
        "quarantined",
        "_unsupported_rows",
    )

    context: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    propensity: np.ndarray
    probabilities: np.ndarray | None
    eligible: np.ndarray | None
    timestamp: np.ndarray | None
    event_id: np.ndarray | None
    policy_version: np.ndarray | None
    action_names: list[str]
    n_actions: int
    quarantined: Quarantine
    _unsupported_rows: np.ndarray | None

    def __init__(
        self,
        context: ArrayLike | None,
        action: ArrayLike,
        reward: ArrayLike,
        propensity: ArrayLike,
        probabilities: ArrayLike | None = None,
        eligible: ArrayLike | None = None,
        timestamp: ArrayLike | None = None,
        event_id: ArrayLike | None = None,
        action_names: Sequence[str] | None = None,
        n_actions: int | None = None,
        *,
        policy_version: ArrayLike | None = None,
        validate: bool = True,
    ) -> None:
        a = _actions(action, "action")
        n = len(a)
        r = _numeric(reward, "reward", 1)
        p = _numeric(propensity, "propensity", 1)
        X = np.zeros((n, 0)) if context is None else _numeric(context, "context", 2)
        P = None if probabilities is None else _numeric(probabilities, "probabilities", 2)
        E = None if eligible is None else _bool_matrix(eligible, "eligible")
        for name, arr in (("reward", r), ("propensity", p), ("context", X), ("probabilities", P), ("eligible", E)):
            if arr is not None and len(arr) != n:
                raise ValueError(
                    f"{name} has {len(arr)} rows but action has {n}; every column needs one row per decision"
                )
        ts = None if timestamp is None else _timestamps(timestamp, n)
        ids = None
        if event_id is not None:
            ids = np.asarray(event_id, dtype=object)
            if ids.shape != (n,):
                raise ValueError(f"event_id must have shape ({n},), got shape {ids.shape}")
        versions = None if policy_version is None else _labels(policy_version, "policy_version", n)
        k = self._infer_k(a, P, E, action_names, n_actions)
        if action_names is None:
            names = [str(i) for i in range(k)]
        else:
            if isinstance(action_names, str):
                raise TypeError("action_names must be a sequence of arm names, got a single str")
            names = [str(x) for x in action_names]
            if len(set(names)) != len(names):
                raise ValueError(f"action_names must be unique, got {names}")
        values = {
            "context": X,
            "action": a,
            "reward": r,
            "propensity": p,
            "probabilities": P,
            "eligible": E,
            "timestamp": ts,
            "event_id": ids,
            "policy_version": versions,
        }
        for name, arr in values.items():
            object.__setattr__(self, name, None if arr is None else _readonly(arr))
        object.__setattr__(self, "action_names", names)
        object.__setattr__(self, "n_actions", k)
        object.__setattr__(self, "_unsupported_rows", None)
        object.__setattr__(self, "quarantined", Quarantine(n_checked=n))
        if validate:
            self._validate()

    # -- construction helpers ------------------------------------------------------------------------------------

    @staticmethod
    def _infer_k(
        action: np.ndarray,
        P: np.ndarray | None,
        E: np.ndarray | None,
        action_names: Sequence[str] | None,
        n_actions: int | None,
    ) -> int:
        sources = {}
        if P is not None:
            sources["probabilities.shape[1]"] = P.shape[1]
        if E is not None:
            sources["eligible.shape[1]"] = E.shape[1]
        if action_names is not None and not isinstance(action_names, str):
            sources["len(action_names)"] = len(action_names)
        if n_actions is not None:
            if isinstance(n_actions, bool) or not isinstance(n_actions, (int, np.integer)):
                raise TypeError(f"n_actions must be an int >= 1, got {type(n_actions).__name__} {n_actions!r}")
            sources["n_actions"] = int(n_actions)
        if len(set(sources.values())) > 1:
            listed = ", ".join(f"{key}={val}" for key, val in sources.items())
            raise ValueError(f"the number of actions K is inconsistent: {listed}; all must describe the same arms")
        if sources:
            k = next(iter(sources.values()))
        elif len(action):
            k = int(action.max()) + 1
        else:
            raise ValueError("cannot infer the number of actions K from no rows; pass n_actions or action_names")
        if k < 1:
            raise ValueError(f"the number of actions K must be >= 1, got {k}")
        return k

    def _row_check(self, missing: Mapping[str, np.ndarray] | None = None) -> RowCheck:
        """:func:`check_rows` of this data's columns; keeps the unsupported rows it finds. ``missing``: reason
        (:data:`IDENTITY_COLUMNS`) -> (n,) bool mask of the rows missing that column, found by the caller from
        the Arrow columns (:func:`missing_identities`: the batch readers, whose data lacks them, and
        :meth:`from_parquet`, which spares the scan of the object arrays, 0.25 s per 10^7 rows each); None: the
        ids and versions are checked here."""
        labels = missing is None
        check = check_rows(self.action, self.reward, self.propensity, self.context, self.probabilities,
                           self.eligible, self.timestamp, self.n_actions,
                           event_id=self.event_id if labels else None,
                           policy_version=self.policy_version if labels else None)
        if check.unsupported is not None:
            object.__setattr__(self, "_unsupported_rows", np.flatnonzero(check.unsupported))
        if missing:
            found = {**check.reasons, **missing}
            check = RowCheck({r: found[r] for r in ROW_REASONS if r in found}, check.unsupported)
        return check

    def _validate(self, missing: Mapping[str, np.ndarray] | None = None) -> None:
        check = self._row_check(missing)
        for reason, mask in check.reasons.items():
            values = self.action if reason == "action" else self.reward if reason == "reward" else self.propensity
            raise InvalidRowsError(_row_message(reason, mask, values, self.n_actions))

    def _checked(self, invalid_rows: str, positions: np.ndarray | None = None,
                 missing: Mapping[str, np.ndarray] | None = None) -> LoggedData:
        """This data (built with ``validate=False``) checked as a reader checks it: raise for the first bad row
        (``"raise"``, :class:`InvalidRowsError`), or without its bad rows, recorded in :attr:`quarantined`
        (``"quarantine"``; not warned here). ``positions``: the rows' positions in the reader's input; ``missing``:
        as in :meth:`_row_check`."""
        if invalid_rows == "raise":
            self._validate(missing)
            return self
        check = self._row_check(missing)
        bad = check.bad()
        if bad is None:
            object.__setattr__(self, "quarantined", Quarantine(n_checked=self.n))
            return self
        idx = np.flatnonzero(bad)
        ids = self.event_id
        examples = tuple(
            _example(ids[i]) if ids is not None else f"row {i if positions is None else positions[i]}"
            for i in idx[:QUARANTINE_EXAMPLES]
        )
        kept = self.subset(~bad)
        record = Quarantine({r: int(m.sum()) for r, m in check.reasons.items()}, len(idx), self.n, examples,
                            idx if positions is None else positions[idx])
        object.__setattr__(kept, "quarantined", record)
        return kept

    # -- immutability --------------------------------------------------------------------------------------------

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"LoggedData is immutable; build a new one (e.g. with subset) instead of setting {name}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"LoggedData is immutable; cannot delete {name}")

    def __getstate__(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, _readonly(value) if isinstance(value, np.ndarray) else value)

    # -- properties ----------------------------------------------------------------------------------------------

    @property
    def n(self) -> int:
        """Number of logged decisions."""
        return int(self.action.shape[0])

    @property
    def n_features(self) -> int:
        """Context dimension d."""
        return int(self.context.shape[1])

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        optional = [
            name
            for name in ("probabilities", "eligible", "timestamp", "event_id", "policy_version")
            if getattr(self, name) is not None
        ]
        extra = f", with {', '.join(optional)}" if optional else ""
        return f"LoggedData(n={self.n}, d={self.n_features}, K={self.n_actions}, arms={self.action_names}{extra})"

    def unsupported_rows(self) -> np.ndarray | None:
        """Rows (int64 indices) with an arm of logging probability 0 or an ineligible arm; None if unknowable.

        Known when ``probabilities`` or ``eligible`` was given. Used for the support-deficit diagnostic: a target's
        mass outside the logging support can only sit in these rows.
        """
        if self.probabilities is None and self.eligible is None:
            return None
        if self._unsupported_rows is None:
            hole = np.zeros(self.n, dtype=bool)
            if self.probabilities is not None:
                hole |= (self.probabilities == 0.0).any(axis=1)
            if self.eligible is not None:
                hole |= ~self.eligible.all(axis=1)
            object.__setattr__(self, "_unsupported_rows", np.flatnonzero(hole))
        return self._unsupported_rows

    # -- derived data ----------------------------------------------------------------------------------------------

    def subset(self, index: ArrayLike | slice) -> LoggedData:
        """The rows selected by ``index`` (integer indices, a boolean mask of length n, or a slice), as new data.

        Arm names and K are kept; values are not re-validated (they were checked when this object was built).

        Examples
        --------
        >>> import numpy as np
        >>> data = LoggedData(None, [0, 1, 1, 0], [1.0, 0.0, 2.0, 0.0], [0.5] * 4)
        >>> data.subset(np.array([True, False, True, False])).reward
        array([1., 2.])
        """
        if not isinstance(index, slice):
            index = np.asarray(index)
            if index.dtype == np.bool_:
                if index.shape != (self.n,):
                    raise ValueError(f"a boolean index must have shape ({self.n},), got {index.shape}")
            elif index.dtype.kind not in "iu":
                raise TypeError(f"index must be integer indices, a boolean mask or a slice, got dtype {index.dtype}")

        def take(arr: np.ndarray | None) -> np.ndarray | None:
            return None if arr is None else arr[index]

        out = LoggedData(
            self.context[index],
            self.action[index],
            self.reward[index],
            self.propensity[index],
            probabilities=take(self.probabilities),
            eligible=take(self.eligible),
            timestamp=take(self.timestamp),
            event_id=take(self.event_id),
            action_names=self.action_names,
            n_actions=self.n_actions,
            policy_version=take(self.policy_version),
            validate=False,
        )
        object.__setattr__(out, "quarantined", self.quarantined)
        return out

    # -- readers ---------------------------------------------------------------------------------------------------

    @classmethod
    def from_dataframe(
        cls,
        df: pd.DataFrame,
        *,
        context: str | Sequence[str] | None = S.CONTEXT,
        context_prefix: str | None = None,
        action: str = S.ACTION,
        reward: str = S.REWARD,
        propensity: str = S.PROPENSITY,
        probabilities: str | None = S.PROBABILITIES,
        eligible: str | None = S.ELIGIBLE,
        timestamp: str | None = S.TIMESTAMP,
        event_id: str | None = S.EVENT_ID,
        action_names: Sequence[str] | None = None,
        n_actions: int | None = None,
        policy_version: str | None = S.POLICY_VERSION,
        missing_reward: MissingReward = "drop",
        invalid_rows: InvalidRows = "quarantine",
        validate: bool = True,
    ) -> LoggedData:
        """Build from a DataFrame with the decision-log columns (e.g. ``bandit.DecisionLog.read()``).

        Read as the decision-log readers read a log: rows whose ``event_id`` already appeared earlier in ``df`` are
        dropped (the first occurrence is kept) with the readers' :class:`~offline_eval.schema.DecisionLogWarning`,
        then rows without a reward (``missing_reward``), then rows that break the contract (``invalid_rows``).

        Parameters
        ----------
        df : pandas.DataFrame
            One row per decision.
        context : str, sequence of str or None
            A str names one column holding a sequence (list / array) of d floats per row, as in the decision-log
            schema; a sequence of str names d numeric columns, in feature order; None: no features.
        context_prefix : str, optional
            Use every column whose name starts with this prefix, in DataFrame column order, as the features
            (overrides ``context``); e.g. ``"x_"`` for columns ``x_0, x_1, ...``.
        action, reward, propensity : str
            Required column names.
        probabilities, eligible, timestamp, event_id, policy_version : str or None
            Optional column names; used when the column exists, ignored when absent or None.
        action_names : sequence of str, optional
            Arm names in index order; default ``df.attrs["arms"]`` (set by the decision-log reader) if present.
        n_actions : int, optional
            K when nothing else fixes it.
        missing_reward : {"drop", "raise"}
            Rows whose reward is missing (NaN / None: outcome not joined yet) are dropped with a ``UserWarning``
            stating how many (``"drop"``), or raise ``ValueError`` (``"raise"``). They are never treated as 0.
        invalid_rows : {"quarantine", "raise"}
            Rows that break the decision-log contract (:data:`ROW_REASONS`: an action out of range or missing, a
            propensity outside (0, 1], a non-finite reward or context, probabilities not summing to 1 or not
            matching the propensity, an ineligible logged action, a missing timestamp, event id or policy version,
            ...; a missing list cell or one of another length than the arms (or, for the context, than most rows)
            is read as missing values, NaN or not eligible, as the batch readers read it) are left out, counted
            per reason in :attr:`quarantined` and reported in one :class:`~offline_eval.schema.DecisionLogWarning`
            (``"quarantine"``, the default), or raise :class:`InvalidRowsError` (a ``ValueError``) naming the first
            (``"raise"``). Leaving rows out biases the estimates when the fault is in the logging (wrong
            propensities): treat the warning as a bug report on the logger.
        validate : bool
            As in :class:`LoggedData` (``False``: no row is checked, none quarantined).

        Examples
        --------
        >>> import pandas as pd
        >>> df = pd.DataFrame({"x_age": [0.1, 0.5, 0.9], "x_tenure": [3.0, 1.0, 2.0], "action": [0, 1, 1],
        ...                    "reward": [0.0, 9.99, None], "propensity": [0.5, 0.5, 0.5]})
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     data = LoggedData.from_dataframe(df, context_prefix="x_", action_names=["individual", "duo"])
        >>> data
        LoggedData(n=2, d=2, K=2, arms=['individual', 'duo'])
        >>> print(caught[0].message)
        dropped 1 of 3 rows with a missing reward (outcome not joined yet); pass missing_reward="raise" to fail
        instead
        """
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"df must be a pandas DataFrame, got {type(df).__name__}")
        _check_missing_reward(missing_reward)
        _check_invalid_rows(invalid_rows)
        for name in (action, reward, propensity):
            if name not in df.columns:
                raise ValueError(
                    f"column {name!r} is missing from df (columns: {list(df.columns)}); pass its name, e.g. "
                    f"from_dataframe(df, {_param_of(name, action, reward)}='my_column')"
                )
        positions = np.arange(len(df))
        if event_id is not None and event_id in df.columns:  # the decision-log readers' rule: first occurrence kept
            # (a missing id repeats nothing: its row is quarantined below)
            repeated = (df[event_id].duplicated(keep="first") & df[event_id].notna()).to_numpy()
            if repeated.any():
                S.warn_duplicates(int(repeated.sum()), df.loc[repeated, event_id].unique().tolist(), stacklevel=3)
                df, positions = df.loc[~repeated], positions[~repeated]
        rewards = pd.to_numeric(df[reward], errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
        keep = _missing_reward_mask(rewards, missing_reward)
        if keep is not None:
            df = df.loc[keep]
            rewards = rewards[keep]
            positions = positions[keep]
        if action_names is None and isinstance(df.attrs.get("arms"), list):
            action_names = df.attrs["arms"]
        k = len(action_names) if action_names is not None and not isinstance(action_names, str) else n_actions
        X = _context_from_frame(df, context, context_prefix)

        def optional(name: str | None) -> Any:
            if name is None or name not in df.columns:
                return None
            col = df[name]
            if name in (probabilities, eligible):
                return _stack_column(col, name, k if isinstance(k, int) else None, mask=name == eligible)
            return col

        ts = optional(timestamp)
        ids = optional(event_id)
        versions = optional(policy_version)
        actions = df[action].infer_objects() if df[action].dtype == object else df[action]  # e.g. ints and None
        if actions.isna().any():  # a missing action is outside the arms, as the batch readers read it
            actions = actions.fillna(-1).infer_objects()
        data = cls(
            X,
            actions.to_numpy(),
            rewards,
            df[propensity].to_numpy(dtype=np.float64),
            probabilities=optional(probabilities),
            eligible=optional(eligible),
            timestamp=None if ts is None else ts,
            event_id=None if ids is None else ids.to_numpy(dtype=object),
            action_names=action_names,
            n_actions=n_actions,
            policy_version=None if versions is None else versions.to_numpy(dtype=object),
            validate=False,
        )
        if not validate:
            return data
        data = data._checked(invalid_rows, positions)
        data.quarantined.warn(stacklevel=2)
        return data

    @classmethod
    def from_parquet(
        cls,
        path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        *,
        missing_reward: MissingReward = "drop",
        invalid_rows: InvalidRows = "quarantine",
        validate: bool = True,
    ) -> LoggedData:
        """Read a decision log written in the schema of :mod:`offline_eval.schema` (a directory or file(s)).

        Reads through the schema's one reader, :func:`offline_eval.schema.read_log`: in a directory, only part files
        ``part-*.parquet`` (in sequence order; names starting with ``.`` or ``_`` are ignored); other files, empty or
        unreadable parts and parts without the decision-log schema are skipped with a
        :class:`~offline_eval.schema.DecisionLogWarning` naming each; rows whose ``event_id`` already appeared
        earlier in the log are dropped with a warning naming the ids (the first occurrence is kept). All parts must
        carry the same arm list.

        Parameters
        ----------
        path : str, path-like or sequence of them
            A log directory, a Parquet file in the schema (any name), or a list of such files (read in that order).
        missing_reward : {"drop", "raise"}
            Rows with a null (or NaN) reward -- decisions whose outcome is not joined yet -- are dropped with a
            ``UserWarning`` stating how many (``"drop"``, the default), or raise ``ValueError`` (``"raise"``).
            They are never treated as reward 0.
        invalid_rows : {"quarantine", "raise"}
            Rows that break the decision-log contract are left out and reported (``"quarantine"``, the default:
            counts per reason in :attr:`quarantined` and one :class:`~offline_eval.schema.DecisionLogWarning`), or
            raise :class:`InvalidRowsError` naming the first (``"raise"``); see :meth:`from_dataframe`, and there
            the bias that leaving rows out can cause.
        validate : bool
            As in :class:`LoggedData` (``False``: no row is checked, none quarantined).

        Returns
        -------
        LoggedData
            Every column of the schema: ``action_names`` from the schema metadata (``upsell_bandit.arms``),
            ``probabilities``, ``eligible``, ``timestamp`` (UTC), ``event_id`` (unique) and ``policy_version``.

        Examples
        --------
        >>> import tempfile, numpy as np, pyarrow as pa, pyarrow.parquet as pq
        >>> from offline_eval.schema import decision_log_schema
        >>> schema = decision_log_schema(n_features=2, arms=["individual", "duo"])
        >>> table = pa.Table.from_pydict({
        ...     "event_id": ["e1", "e2"], "timestamp": [0, 1], "context": [[0.1, 1.0], [0.2, 0.0]],
        ...     "action": [1, 0], "action_name": ["duo", "individual"], "propensity": [0.7, 0.3],
        ...     "probabilities": [[0.3, 0.7], [0.3, 0.7]], "eligible": [[True, True], [True, True]],
        ...     "policy": ["LinUCB"] * 2, "policy_version": ["v1"] * 2, "reward": [19.99, 0.0]}, schema=schema)
        >>> tmp = tempfile.TemporaryDirectory()
        >>> pq.write_table(table, tmp.name + "/part-0.parquet")
        >>> data = LoggedData.from_parquet(tmp.name)
        >>> data.action_names, data.reward
        (['individual', 'duo'], array([19.99,  0.  ]))
        >>> tmp.cleanup()
        """
        _check_missing_reward(missing_reward)
        _check_invalid_rows(invalid_rows)
        table, arms = S.read_log(path if isinstance(path, str | os.PathLike) else list(path))
        n_rows = table.num_rows
        table, n_missing = rows_with_reward(table)
        if n_missing:
            _report_missing(n_missing, n_rows, missing_reward)
        data = cls._from_arrow(table, arms, validate=False)
        if not validate:
            return data
        # the ids and versions' missing rows from the Arrow columns' null counts, not a scan of the object arrays
        data = data._checked(invalid_rows, missing=missing_identities(table))
        data.quarantined.warn(stacklevel=2)
        return data

    @classmethod
    def _from_arrow(
        cls, table: Any, arms: Sequence[str], *, identities: bool = True, validate: bool = True,
        context: np.ndarray | None = None,
    ) -> LoggedData:
        """Build from an Arrow table (or record batch) in the decision-log schema whose rewards are all present.

        ``identities=False`` leaves out ``timestamp``, ``event_id`` and ``policy_version`` (the batch readers of
        :mod:`offline_eval.streaming` hash folds from the Arrow id column and need nothing else). ``validate``
        raises :class:`InvalidRowsError` for a bad row, as the constructor does. ``context``: the rows' contexts
        (n, d) kept from an earlier pass, used instead of the column (None: read the column).
        """
        return cls(
            _arrow_matrix(table, S.CONTEXT, np.float64) if context is None else context,
            arrow_actions(table),
            table.column(S.REWARD).to_numpy().astype(np.float64),
            table.column(S.PROPENSITY).to_numpy().astype(np.float64),
            probabilities=_arrow_matrix(table, S.PROBABILITIES, np.float64, len(arms)),
            eligible=_arrow_matrix(table, S.ELIGIBLE, np.bool_, len(arms)),
            timestamp=_arrow_timestamps(table) if identities else None,
            event_id=table.column(S.EVENT_ID).to_numpy().astype(object) if identities else None,
            action_names=arms,
            policy_version=table.column(S.POLICY_VERSION).to_numpy().astype(object) if identities else None,
            validate=validate,
        )

    @classmethod
    def from_dsjson(cls, path: str | os.PathLike[str], **options: Any) -> LoggedData:
        """Read a Vowpal Wabbit decision-service JSON (DSJSON) log; see :func:`offline_eval.formats.read_dsjson`.

        Bad lines are quarantined and reported in one :class:`~offline_eval.formats.DSJSONWarning` with their line
        numbers (``read_dsjson(path).rejected`` lists them all); ``options`` are those of ``read_dsjson``
        (``arms``, ``features``, ``missing_reward``, ``max_line_bytes``, ...).
        """
        from offline_eval.formats import read_dsjson

        return read_dsjson(path, **options).data

    # -- writer ----------------------------------------------------------------------------------------------------

    def to_parquet(
        self, path: str | os.PathLike[str], *, policy: str = "LoggedData", policy_version: str | None = None
    ) -> Path:
        """Write the data as one Parquet file in the decision-log schema; :meth:`from_parquet` reads it back.

        The file carries the schema metadata (arm names in index order, schema version), so ``from_parquet`` restores
        every column and ``action_names`` exactly, e.g. to save a subset or a split. It is written through the
        schema's one encoder (:func:`offline_eval.schema.encode_decisions`) to a temporary file that is renamed into
        place, so ``path`` is either the old file or the complete new one. Name it ``part-<seq>-<id>.parquet`` to
        place it in a log directory that other readers list.

        Parameters
        ----------
        path : str or path-like
            The file to write (parent directories are created; an existing file is replaced).
        policy : str
            Value of the schema's ``policy`` column, which LoggedData does not hold.
        policy_version : str, optional
            Value of every row's ``policy_version``; default: this data's ``policy_version`` column, else
            ``"unknown"``.

        Returns
        -------
        pathlib.Path
            The written file.

        Raises
        ------
        ValueError
            The data lacks a column the schema requires (``probabilities``, ``eligible``, ``timestamp``,
            ``event_id``: build it from a decision log or pass them), has no context features, or has event ids that
            are invalid (see :func:`offline_eval.schema.check_event_ids`) or not unique; ``path`` is a directory.
        TypeError
            An event id is not a str; ``policy`` / ``policy_version`` are not strings.

        Examples
        --------
        >>> import tempfile, numpy as np
        >>> rng = np.random.default_rng(0)
        >>> data = LoggedData(rng.normal(size=(4, 2)), [0, 1, 1, 0], [1.0, 0.0, 2.0, 0.0], [0.5] * 4,
        ...                   probabilities=np.full((4, 2), 0.5), eligible=np.ones((4, 2), bool),
        ...                   timestamp=np.arange(4).astype("datetime64[s]"), event_id=["a", "b", "c", "d"],
        ...                   action_names=["individual", "duo"])
        >>> tmp = tempfile.TemporaryDirectory()
        >>> written = data.subset([1, 2]).to_parquet(tmp.name + "/subset.parquet")
        >>> back = LoggedData.from_parquet(written)
        >>> back.event_id.tolist(), back.action_names, back.reward
        (['b', 'c'], ['individual', 'duo'], array([0., 2.]))
        >>> tmp.cleanup()
        """
        import pyarrow.parquet as pq

        required = ("probabilities", "eligible", "timestamp", "event_id")
        missing = [name for name in required if getattr(self, name) is None]
        if missing:
            raise ValueError(
                f"to_parquet writes the full decision-log schema, but this LoggedData has no {', '.join(missing)}; "
                "build it with those columns (LoggedData(..., probabilities=, eligible=, timestamp=, event_id=) or "
                "from a decision log)"
            )
        if self.n_features == 0:
            raise ValueError("to_parquet needs at least one context feature: the schema's context has d >= 1")
        for name, value in (("policy", policy), ("policy_version", policy_version)):
            if not isinstance(value, str) and not (name == "policy_version" and value is None):
                raise TypeError(f"{name} must be a str, got {type(value).__name__}")
        S.check_event_ids([policy], "policy")
        assert self.event_id is not None and self.timestamp is not None  # checked above
        ids = self.event_id.tolist()
        S.check_event_ids(ids, "event_id")
        if len(set(ids)) != len(ids):
            dupes = pd.Index(ids)[pd.Index(ids).duplicated()].unique().tolist()
            raise ValueError(f"event_id must be unique in a decision log, duplicated: {dupes[:5]}")
        table = S.encode_decisions(
            event_id=ids,
            timestamp_us=self.timestamp.astype("datetime64[us]").astype(np.int64),
            context=self.context,
            action=self.action,
            propensity=self.propensity,
            probabilities=self.probabilities,
            eligible=self.eligible,
            policy=policy,
            policy_version=self._versions_to_write(policy_version),
            arms=self.action_names,
            reward=self.reward,
        )
        with atomic_file(path, "wb") as fh:
            pq.write_table(table, fh, compression="zstd", use_compliant_nested_type=False)
        return Path(path)

    def _versions_to_write(self, policy_version: str | None) -> str | list[str]:
        if policy_version is not None:
            return policy_version
        return "unknown" if self.policy_version is None else self.policy_version.tolist()


# ----------------------------------------------------------------------------------------------------------------
# reader helpers
# ----------------------------------------------------------------------------------------------------------------


def _labels(value: Any, name: str, n: int) -> np.ndarray:
    """An (n,) object array of str labels (e.g. policy versions), or a ValueError / TypeError naming ``name``. A
    missing label (None / NaN) is kept: the row checks report it (:func:`check_rows`)."""
    arr = np.asarray(value, dtype=object)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got shape {arr.shape}")
    bad = [i for i, v in enumerate(arr)
           if not isinstance(v, str) and not (pd.api.types.is_scalar(v) and pd.isna(v))]
    if bad:
        raise TypeError(f"{name} must hold str labels; row {bad[0]} holds {type(arr[bad[0]]).__name__}")
    return arr


def _param_of(name: str, action: str, reward: str) -> str:
    return "action" if name == action else "reward" if name == reward else "propensity"


def _check_invalid_rows(invalid_rows: object) -> None:
    if invalid_rows not in ("quarantine", "raise"):
        raise ValueError(f"invalid_rows must be 'quarantine' or 'raise', got {invalid_rows!r}")


def _check_missing_reward(missing_reward: object) -> None:
    if missing_reward not in ("drop", "raise"):
        raise ValueError(f"missing_reward must be 'drop' or 'raise', got {missing_reward!r}")


def _report_missing(n_missing: int, n: int, missing_reward: str) -> None:
    if missing_reward == "raise":
        raise ValueError(
            f"reward is missing in {n_missing} of {n} rows (outcome not joined yet); join the outcomes first or pass "
            'missing_reward="drop" to evaluate only the decisions with an outcome'
        )
    warnings.warn(
        f"dropped {n_missing} of {n} rows with a missing reward (outcome not joined yet); pass "
        'missing_reward="raise" to fail instead',
        UserWarning,
        stacklevel=3,
    )


def rows_with_reward(table: Any) -> tuple[Any, int]:
    """The rows of an Arrow table whose ``reward`` is neither null nor NaN, and how many were dropped."""
    import pyarrow.compute as pc

    reward = table.column(S.REWARD)
    missing = pc.or_kleene(reward.is_null(), pc.is_nan(reward))
    n_missing = int(pc.sum(pc.cast(missing, "int64")).as_py() or 0)
    return (table.filter(pc.invert(missing)) if n_missing else table), n_missing


#: The columns :func:`quarantine_batch` checks; the event id names rows. The context is checked whatever the
#: targets: a row with a non-finite context is a broken log row (its logged propensity was computed from it), and
#: the batch readers leave it out as :meth:`LoggedData.from_parquet` does.
CHECKED_COLUMNS = (S.EVENT_ID, S.CONTEXT, S.ACTION, S.REWARD, S.PROPENSITY, S.PROBABILITIES, S.ELIGIBLE)


def quarantine_batch(table: Any, arms: Sequence[str]) -> tuple[Any, LoggedData, Quarantine]:
    """The rows of an Arrow table (or record batch) in the decision-log schema, all with a reward, that keep the
    contract, as the batch readers (:mod:`offline_eval.streaming`, :mod:`offline_eval.spark`) quarantine them.

    Checks :data:`CHECKED_COLUMNS` with :func:`check_rows`, as :meth:`LoggedData.from_parquet` does, and the rows
    missing an event id or (where the table has the column) a timestamp or policy version
    (:func:`missing_identities`). Returns the kept rows (``table`` itself when every row is valid), their validated
    LoggedData (no timestamps / policy versions) and the :class:`Quarantine` (examples: event ids, or
    :data:`NO_EVENT_ID`).
    """
    import pyarrow as pa

    data = LoggedData._from_arrow(table, arms, identities=False, validate=False)._checked(
        "quarantine", missing=missing_identities(table))
    record = data.quarantined
    if not record:
        return table, data, record
    keep = np.ones(record.n_checked, dtype=bool)
    keep[record.rows] = False
    ids = table.column(S.EVENT_ID).take(pa.array(record.rows[:QUARANTINE_EXAMPLES])).to_pylist()
    examples = tuple(_example(i) for i in ids)
    return table.filter(pa.array(keep)), data, Quarantine(record.counts, record.n_rows, record.n_checked, examples)


#: The columns whose null rows the batch readers quarantine without reading them into a LoggedData (reasons of the
#: same names): :func:`missing_identities`.
IDENTITY_COLUMNS = (S.TIMESTAMP, S.EVENT_ID, S.POLICY_VERSION)


def missing_identities(table: Any) -> dict[str, np.ndarray]:
    """Reason (``"timestamp"``, ``"event_id"``, ``"policy_version"``) -> (n,) bool mask of an Arrow table's rows
    where that column is null, for those of :data:`IDENTITY_COLUMNS` the table has and that hold a null (one null
    count each otherwise)."""
    out = {}
    for name in IDENTITY_COLUMNS:
        if name in table.column_names and table.column(name).null_count:
            out[name] = table.column(name).is_null().to_numpy(zero_copy_only=False)
    return out


def check_identities(table: Any) -> None:
    """Raise :class:`InvalidRowsError` (the message of :class:`LoggedData`) when an Arrow table has a row missing
    its timestamp, event id or policy version (:func:`missing_identities`): the batch readers check it, as they
    check the action range, where they do not quarantine."""
    for reason, mask in missing_identities(table).items():
        raise InvalidRowsError(_row_message(reason, mask, mask, 0))


def replay_warnings(records: Sequence[warnings.WarningMessage]) -> None:
    """Issue again warnings recorded with ``warnings.catch_warnings(record=True)``: the batch readers record each
    run of their passes and replay the warnings of the run whose result they keep (a run given up to quarantine bad
    rows is repeated, and its warnings with it). Each message is issued once per place, as the default filter
    shows it (the run was recorded with every warning let through)."""
    seen = set()
    for w in records:
        key = (str(w.message), w.category, w.filename, w.lineno)
        if key not in seen:
            seen.add(key)
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)


def check_action_range(table: Any, n_actions: int) -> None:
    """Raise :class:`InvalidRowsError` (the message of :class:`LoggedData`) when an Arrow table's ``action`` column
    holds a value outside [0, ``n_actions``): the batch readers check it (one min / max) before a reward-model pass
    indexes its statistics by the action."""
    import pyarrow.compute as pc

    if table.num_rows == 0:
        return
    lo, hi = (v.as_py() for v in pc.min_max(table.column(S.ACTION)).values())
    if table.column(S.ACTION).null_count or lo < 0 or hi >= n_actions:
        a = arrow_actions(table)
        raise InvalidRowsError(_row_message("action", (a < 0) | (a >= n_actions), a, n_actions))


def arrow_actions(table: Any) -> np.ndarray:
    """The ``action`` column of an Arrow table as (n,) int64; a null action is read as -1 (outside the arms, so the
    row checks quarantine it)."""
    import pyarrow.compute as pc

    column = table.column(S.ACTION)
    if column.null_count:
        column = pc.fill_null(column, -1)
    return np.asarray(column.to_numpy(), dtype=np.int64)


def _missing_reward_mask(rewards: np.ndarray, missing_reward: str) -> np.ndarray | None:
    """Boolean mask of the rows to keep, or None when no reward is missing (warns / raises otherwise)."""
    missing = np.isnan(rewards)
    n_missing = int(missing.sum())
    if not n_missing:
        return None
    _report_missing(n_missing, len(rewards), missing_reward)
    return ~missing


def _stack_column(col: pd.Series, name: str, width: int | None = None, mask: bool = False) -> np.ndarray:
    """A column holding one sequence per row as an (n, m) array, read as the batch readers read a list column
    (:func:`_arrow_matrix`): a missing row (None / NaN), a row of another length than ``width`` (default: the length
    most rows have) and a missing element are missing values -- NaN, or False in a column of booleans or a ``mask``
    (the eligibility: missing = not eligible) -- so that the row checks quarantine the row."""
    import pyarrow as pa

    values = col.to_numpy()
    if len(values) == 0:
        return np.zeros((0, 0))
    if values.dtype != object:
        raise TypeError(f"column {name!r} must hold one sequence per row, got dtype {values.dtype}")
    try:
        column = pa.array([v if isinstance(v, list | tuple | np.ndarray) or not pd.isna(v) else None
                           for v in values])
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise TypeError(f"column {name!r} must hold one sequence of numbers per row: {err}") from err
    if pa.types.is_null(column.type):  # every row missing
        column = column.cast(pa.list_(pa.float64()))
    if not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)):
        raise TypeError(f"column {name!r} must hold one sequence per row, got values of Arrow type {column.type}")
    items = column.type.value_type
    if not (pa.types.is_boolean(items) or pa.types.is_integer(items) or pa.types.is_floating(items)
            or pa.types.is_null(items)):
        raise TypeError(f"column {name!r} must hold sequences of numbers, got items of Arrow type {items}")
    dtype = np.bool_ if pa.types.is_boolean(items) else np.float64
    out = _arrow_matrix(pa.table({name: column}), name, dtype, width)
    if mask and out.dtype.kind == "f":  # 0/1 numbers: a missing entry is not eligible (0)
        out[np.isnan(out)] = 0.0
    return out


def _context_from_frame(df: pd.DataFrame, context: Any, prefix: str | None) -> np.ndarray | None:
    if prefix is not None:
        cols = [c for c in df.columns if isinstance(c, str) and c.startswith(prefix)]
        if not cols:
            raise ValueError(f"no column starts with context_prefix={prefix!r} (columns: {list(df.columns)})")
        return df[cols].to_numpy(dtype=np.float64)
    if context is None:
        return None
    if isinstance(context, str):
        if context not in df.columns:
            raise ValueError(
                f"context column {context!r} is missing (columns: {list(df.columns)}); pass context=[feature "
                "columns], context_prefix='x_' or context=None"
            )
        return _stack_column(df[context], context).reshape(len(df), -1)
    cols = list(context)
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"context columns {missing} are missing (columns: {list(df.columns)})")
    return df[cols].to_numpy(dtype=np.float64)


def _arrow_matrix(table: Any, name: str, dtype: type, width: int | None = None) -> np.ndarray:
    """A (fixed-size) list column of an Arrow table as an (n, m) numpy array.

    A null row, like a null element, is read as missing values: NaN, or False for a bool column, so that the row
    checks (:func:`check_rows`) quarantine it; so is a row of a variable-size list column whose length is not
    ``width`` (default: the length most rows have). The batch readers of a Spark DataFrame or a caller's dataset
    meet such rows; :func:`~offline_eval.schema.read_log` skips the part files that hold them.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    chunked = table.column(name)
    col = chunked.chunk(0) if chunked.num_chunks == 1 else chunked.combine_chunks()  # combining copies, even one
    n = len(col)
    if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
        lengths = pc.list_value_length(col).fill_null(-1).to_numpy()
        if width is None:
            counts = np.bincount(lengths[lengths >= 0])
            width = int(len(counts) - 1 - counts[::-1].argmax()) if len(counts) else 0  # a tie: the longer
        wrong = lengths != width
        if wrong.any():  # null rows and rows of another length: as null rows of a fixed-size list
            col = pc.if_else(pa.array(wrong), pa.nulls(n, col.type), col)
        col = col.cast(pa.list_(pa.field("item", col.type.value_type), width))
    elif not pa.types.is_fixed_size_list(col.type):
        raise TypeError(f"column {name!r} must be a list column, got Arrow type {col.type}")
    width = col.type.list_size
    if not col.null_count:
        flat = col.flatten().to_numpy(zero_copy_only=False)
        return np.asarray(flat, dtype=dtype).reshape(n, width)
    values = col.values.slice(col.offset * width, n * width).to_numpy(zero_copy_only=False)
    out: np.ndarray = np.array(values, dtype=dtype).reshape(n, width)
    out[col.is_null().to_numpy(zero_copy_only=False)] = np.nan if out.dtype.kind == "f" else False
    return out


def _arrow_timestamps(table: Any) -> np.ndarray:
    import pyarrow as pa

    col = table.column(S.TIMESTAMP).combine_chunks()
    if pa.types.is_timestamp(col.type):
        col = col.cast(pa.timestamp("us", tz=col.type.tz))
        values = col.to_numpy(zero_copy_only=False)
        return np.asarray(values).astype("datetime64[us]")
    return _timestamps(col.to_pandas(), len(col))

