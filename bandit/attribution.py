"""Delayed-outcome attribution: join outcomes to logged decisions and feed them to a policy exactly once.

Conversions arrive after the offer, in an outcomes table (``event_id``, ``timestamp``, ``reward``).
:func:`resolve_rewards` joins them to the decisions of a decision log under an attribution window,
:func:`join_outcomes` fills a log's ``reward`` column for offline evaluation, and :func:`apply_log` feeds the
resolved rows to a policy exactly once (what ``policy.update_from_log`` does). The simulator uses the same code.

Bad rows never stop the others: each is quarantined in a ``rejected`` table (columns ``source`` --
``"decisions"`` or ``"outcomes"``, ``row`` -- its position in that table, ``event_id`` -- as given, ``timestamp``
-- NaT when unreadable, ``reason``, ``detail``, ``final``) and the good rows are used. Only table-level mistakes
raise: a missing column, a column of the wrong dtype (numbers for ``timestamp``; text or dates for ``reward``), a
wrong argument.

Rules
-----
``w`` = ``attribution_window``, ``g`` = ``grace``, a decision stamped ``t``; all times UTC (naive ones are taken
as UTC).

**now.** ``now`` defaults to the wall clock (UTC now) -- never to a timestamp found in the data, so a
future-dated row (a clock bug stamping 2099) cannot expire other decisions. Pass ``now=`` explicitly to replay
history (the simulator does): the result is then a pure function of the data and ``now``, what a job at that
moment would have computed.

**Settled decisions** (idempotence, bounded memory). A policy keeps an :class:`AppliedEvents` ledger: a
watermark ``W`` plus the ids of the decisions settled after it. A decision is *settled* when its id is in the
ledger or ``t <= W``; settled decisions are skipped (counted in ``n_already_applied``). A decision is settled by
being applied, or by a *final* rejection. After each :func:`apply_log` call ``W`` moves to ``now - w - g`` (never
back) and the ids it covers are dropped: by then every decision at or before ``W`` has had its window close
``g`` ago, so the ledger holds only one window plus grace of traffic. ``g`` (default 1 day) must cover the delay
with which decision rows become readable: a decision row first seen after ``W`` passed it is skipped as settled.

**Decision rows**, checked in this order (first failure wins):

1. ``event_id`` must be a non-empty string of valid UTF-8 text, else ``"bad_event_id"``. An id in the ledger is
   skipped (settled).
2. ``timestamp`` must be a readable timestamp, else ``"bad_timestamp"``.
3. Several rows with one id: the first (in table order) is the decision, the others are ``"duplicate_event_id"``
   (not reported once the id is settled). A decision with ``t <= W`` is skipped (settled).
4. ``t > now``: ``"future_timestamp"`` (not final: a later call whose ``now`` reaches ``t`` takes it).
5. ``context`` must be a 1-D array of finite real numbers of the policy's ``n_features`` (in
   :func:`resolve_rewards`: ``n_features``, default the most common length in the log), else ``"bad_context"``
   (final). Policies built without ``n_features`` ignore the context.
6. ``action_name`` must be a string naming one of the policy's arms (mapped by name, so a log written before arms
   were added or retired applies), else ``"unknown_arm"`` (not final: after ``policy.add_arm`` a later call takes
   it, until ``W`` passes it).

**Outcome rows**, checked in this order:

1. ``event_id`` a non-empty UTF-8 string, else ``"bad_event_id"``; ``timestamp`` readable, else ``"bad_timestamp"``;
   ``reward`` a finite real number, else ``"non_finite_reward"`` (NaN, inf, missing) or ``"bad_reward"`` (not a
   number).
2. ``timestamp > now``: ``"future_timestamp"``: never counted and never used to expire anything; not final (a
   later call whose ``now`` reaches it counts it if its decision is still open).
3. Exact duplicates -- same ``event_id``, ``timestamp`` and ``reward`` as an earlier row -- are one delivery: the
   first counts, the others are ``"duplicate_outcome"``.

**Joining.** An outcome counts for its decision when ``t <= outcome.timestamp <= t + w`` (both ends inclusive).
A decision with at least one counting outcome resolves (``resolved_by="outcome"``) as soon as one is in, with
reward = ``combine`` of its counting outcomes: ``"sum"`` (default: several purchases add up), ``"max"`` or
``"first"`` (the earliest; ties by table order). If any counting outcome or the combined reward lies outside the
policy's reward range (``_reward_low``/``_reward_high``, e.g. [0, 1] for LogisticTS; ``reward_range`` in
:func:`resolve_rewards`) the decision is ``"reward_out_of_range"`` (final): rewards are never clipped. An outcome
row for the decision that has an unreadable timestamp, or a bad reward at an in-window time, makes the decision
``"bad_outcome"`` (final): its true reward is unknown, so it is not learned from (an expiry to 0 would be a guess).
Without a counting outcome a decision resolves to reward 0 (``"window_expired"``) once ``now > t + w``
(strictly: at ``now == t + w`` an outcome could still count); otherwise it is pending.

**Outcomes that do not count** are returned, never silently dropped: ``unknown_outcomes`` (no decision with that
id) and ``late_outcomes`` with ``late_reason``: ``"already_settled"`` (the decision was settled in an earlier call:
its id is in the ledger, or it -- or the outcome itself -- is at or before ``W``), ``"decision_rejected"``,
``"before_decision"`` (clock skew or a wrong id) or ``"after_window"``. Rejected outcome rows are in ``rejected``.

**Final or not.** A final rejection (``bad_context``, ``bad_outcome``, ``reward_out_of_range``, and
``update_failed`` -- a row the policy's ``update_batch`` refuses on its own) settles the decision in
:func:`apply_log`: it is reported once and never applied. The others concern rows that cannot be keyed (bad id or
timestamp, a duplicate row) or may become valid (future rows, unknown arms): they are reported on every call that
sees them, until ``W`` passes them. Either way they never block the other rows.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from bandit._ledger import AppliedEvents
from bandit._timestamps import parse_utc_us, us_to_timestamps, utc_us, wall_clock_us
from bandit.decision_log import policy_arms_and_name, read_decision_log
from offline_eval.schema import (
    ACTION,
    ACTION_NAME,
    CONTEXT,
    EVENT_ID,
    OUTCOME_COLUMNS,
    REWARD,
    TIMESTAMP,
)

__all__ = [
    "AppliedEvents",
    "ResolvedRewards",
    "UpdateReport",
    "apply_log",
    "join_outcomes",
    "resolve_rewards",
]

Combine = Literal["sum", "max", "first"]
_COMBINE = ("sum", "max", "first")
#: Rejection reasons that settle the decision in apply_log (reported once, never applied).
FINAL_REASONS = frozenset({"bad_context", "bad_outcome", "reward_out_of_range", "update_failed"})
REJECTED_COLUMNS = ("source", "row", "event_id", "timestamp", "reason", "detail", "final")


@dataclass(frozen=True, slots=True, eq=False)
class ResolvedRewards:
    """Result of :func:`resolve_rewards`.

    Attributes
    ----------
    resolved : pandas.DataFrame
        One row per decision whose reward is now known, sorted by decision timestamp (stable): ``event_id``,
        ``timestamp`` (of the decision), ``context`` (one array of shape (d,) per row), ``action``,
        ``action_name``, ``reward`` (float64), ``n_outcomes`` (counting outcomes combined) and ``resolved_by``
        (``"outcome"`` or ``"window_expired"``).
    pending_event_ids : tuple of str
        Decisions still inside their attribution window with no outcome yet.
    unknown_outcomes : pandas.DataFrame
        Outcome rows (all their columns, original index) whose event_id matches no decision.
    late_outcomes : pandas.DataFrame
        Outcome rows that do not count, plus a ``late_reason`` column (see the module rules).
    rejected : pandas.DataFrame
        Quarantined rows of both tables with their reasons (columns ``source``, ``row``, ``event_id``,
        ``timestamp``, ``reason``, ``detail``, ``final``; see the module rules), decisions first, each by row.
    n_already_applied : int
        Decisions skipped because they were settled in an earlier call (``already_applied``).
    now : pandas.Timestamp
        The evaluation time used (UTC).
    attribution_window : pandas.Timedelta
    """

    resolved: pd.DataFrame
    pending_event_ids: tuple[str, ...]
    unknown_outcomes: pd.DataFrame
    late_outcomes: pd.DataFrame
    rejected: pd.DataFrame
    n_already_applied: int
    now: pd.Timestamp
    attribution_window: pd.Timedelta


@dataclass(frozen=True, slots=True, eq=False)
class UpdateReport:
    """Result of :func:`apply_log` (``policy.update_from_log``).

    Attributes
    ----------
    n_applied : int
        Decisions fed to ``policy.update_batch`` in this call (with an outcome, or expired to reward 0).
    n_expired_zero : int
        Of those, decisions whose window passed without an outcome (reward 0).
    n_pending : int
        Decisions still waiting inside their window.
    n_already_applied : int
        Decisions skipped as settled by an earlier call.
    unknown_outcomes, late_outcomes : pandas.DataFrame
        Outcomes that did not count (see :class:`ResolvedRewards`).
    rejected : pandas.DataFrame
        Quarantined rows with reasons (see :class:`ResolvedRewards`); ``final`` rows are settled by this call.
    event_ids : tuple of str
        Ids applied by this call (already recorded in the ledger).
    now : pandas.Timestamp
        The evaluation time used.
    watermark : pandas.Timestamp or None
        The ledger's watermark after this call.
    """

    n_applied: int
    n_expired_zero: int
    n_pending: int
    n_already_applied: int
    unknown_outcomes: pd.DataFrame
    late_outcomes: pd.DataFrame
    rejected: pd.DataFrame
    event_ids: tuple[str, ...]
    now: pd.Timestamp
    watermark: pd.Timestamp | None


# ------------------------------------------------------------------------------------------------------------------
# table and argument checks (table level: these raise)
# ------------------------------------------------------------------------------------------------------------------

_RESOLVE_DECISION_COLUMNS = (EVENT_ID, TIMESTAMP, CONTEXT, ACTION, ACTION_NAME)
#: How the decision contexts are checked: an expected length, "infer" (most common length) or "ignore".
ContextRule = int | Literal["infer", "ignore"]


def _require_columns(df: pd.DataFrame, columns: Sequence[str], name: str, what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(
            f"{name} is missing column {missing[0]!r} (all missing: {missing}); {what} needs columns {list(columns)}"
        )


def _decisions_frame(decisions: Any) -> pd.DataFrame:
    if isinstance(decisions, str | os.PathLike):
        return read_decision_log(decisions)
    if not isinstance(decisions, pd.DataFrame):
        raise TypeError(
            "decisions must be a pandas DataFrame (e.g. DecisionLog.read()) or a log directory path, got "
            f"{type(decisions).__name__}"
        )
    _require_columns(decisions, _RESOLVE_DECISION_COLUMNS, "decisions", "a decision log")
    return decisions


def _outcomes_frame(outcomes: Any) -> pd.DataFrame:
    if isinstance(outcomes, str | os.PathLike):
        outcomes = pq.read_table(outcomes).to_pandas()
    elif not isinstance(outcomes, pd.DataFrame):
        raise TypeError(
            f"outcomes must be a pandas DataFrame or a Parquet path, got {type(outcomes).__name__}"
        )
    _require_columns(outcomes, OUTCOME_COLUMNS, "outcomes", "an outcomes table")
    return outcomes


def _as_duration(value: Any, name: str, *, allow_zero: bool) -> pd.Timedelta:
    if isinstance(value, bool | int | float | np.integer | np.floating):
        raise TypeError(
            f"{name} must be a timedelta, pandas.Timedelta or string like '7D' / '48h', got a number "
            f"({value!r}) whose unit is ambiguous"
        )
    try:
        duration = pd.Timedelta(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a timedelta, pandas.Timedelta or string like '7D', got {value!r}") from None
    smallest = pd.Timedelta(0) if allow_zero else pd.Timedelta(microseconds=1)
    if duration is pd.NaT or duration < smallest:
        what = "zero or positive" if allow_zero else "positive (at least 1 microsecond)"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return duration


def _as_window(attribution_window: Any) -> pd.Timedelta:
    return _as_duration(attribution_window, "attribution_window", allow_zero=False)


def _as_combine(combine: Any) -> str:
    if not isinstance(combine, str):
        raise TypeError(f"combine must be one of {list(_COMBINE)}, got {type(combine).__name__}")
    if combine not in _COMBINE:
        raise ValueError(f"combine must be one of {list(_COMBINE)} (how several outcomes of a decision add up), "
                         f"got {combine!r}")
    return combine


def _as_now(now: Any) -> int:
    return wall_clock_us() if now is None else utc_us(now, "now")


def _as_ledger(already_applied: Any) -> tuple[int | None, Container[str]]:
    """(watermark_us or None, container of settled ids) of ``already_applied``."""
    if already_applied is None:
        return None, frozenset()
    if isinstance(already_applied, AppliedEvents):
        return already_applied.watermark_us, already_applied
    if isinstance(already_applied, set | frozenset):
        return None, already_applied
    raise TypeError(
        "already_applied must be an AppliedEvents ledger (e.g. policy._applied_event_ids) or a set of event ids, "
        f"got {type(already_applied).__name__}"
    )


def _as_reward_range(reward_range: Any) -> tuple[float, float]:
    if reward_range is None:
        return -math.inf, math.inf
    try:
        low, high = (float(v) for v in reward_range)
    except (TypeError, ValueError):
        raise TypeError(f"reward_range must be a (low, high) pair of numbers or None, got {reward_range!r}") from None
    if math.isnan(low) or math.isnan(high) or low > high:
        raise ValueError(f"reward_range must satisfy low <= high, got {reward_range!r}")
    return low, high


# ------------------------------------------------------------------------------------------------------------------
# row-level parsing (never raises for a bad row)
# ------------------------------------------------------------------------------------------------------------------


_BAD_ID_DETAIL = "event_id must be a non-empty string of valid UTF-8 text"


def _valid_ids(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(ids as objects, ok (n,)): an id is ok when it is a non-empty string of valid UTF-8 text (a lone surrogate,
    which no Parquet file or arrow string can hold, would break the whole table's indexing)."""
    ids = column.to_numpy(dtype=object)
    ok = np.fromiter((isinstance(e, str) and e != "" for e in ids), dtype=bool, count=len(ids))
    try:
        "".join(ids[ok]).encode("utf-8")
    except UnicodeEncodeError:
        ok &= np.fromiter((not k or _is_utf8(e) for e, k in zip(ids, ok, strict=True)), dtype=bool, count=len(ids))
    return ids, ok


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _in_ledger(ids: np.ndarray, ok: np.ndarray, settled: Container[str]) -> np.ndarray:
    return np.fromiter((k and e in settled for e, k in zip(ids, ok, strict=True)), dtype=bool, count=len(ids))


_REWARD_OK, _REWARD_NON_FINITE, _REWARD_NOT_NUMBER = 0, 1, 2


def _parse_rewards(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(float64 rewards, int8 code per row: 0 finite, 1 NaN/inf/missing, 2 not a number)."""
    n = len(column)
    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        code = np.where(np.isfinite(values), _REWARD_OK, _REWARD_NON_FINITE).astype(np.int8)
        return values, code
    if column.dtype != object:
        raise TypeError(f"outcomes['reward'] must be numeric (float64), got dtype {column.dtype}")
    values = np.full(n, np.nan)
    code = np.full(n, _REWARD_NOT_NUMBER, dtype=np.int8)
    for i, v in enumerate(column.to_numpy(dtype=object)):
        if v is None or v is pd.NA or v is pd.NaT:
            code[i] = _REWARD_NON_FINITE
        elif isinstance(v, numbers.Real | np.bool_) and not isinstance(v, str | bytes):
            try:
                values[i] = float(v)
            except OverflowError:  # an int beyond the float64 range
                values[i] = math.inf
            code[i] = _REWARD_OK if math.isfinite(values[i]) else _REWARD_NON_FINITE
    return values, code


def _one_context(value: Any) -> np.ndarray | None:
    """``value`` as a 1-D float64 array of finite numbers, or None."""
    if isinstance(value, str | bytes):
        return None
    try:
        arr = np.asarray(value)
        if arr.dtype.kind == "O":
            arr = arr.astype(np.float64)
        elif arr.dtype.kind not in "biuf":
            return None
        arr = arr.astype(np.float64, copy=False)
    except (TypeError, ValueError, OverflowError):  # (OverflowError: an int beyond the float64 range)
        return None
    if arr.ndim != 1 or not np.isfinite(arr).all():
        return None
    return arr


def _check_contexts(values: np.ndarray, rule: ContextRule) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Check the contexts of the rows to be used: ``(X (m, d) of the good rows, ok (n,), detail per bad row)``."""
    n = values.shape[0]
    if rule == "ignore":
        return np.empty((n, 0)), np.ones(n, dtype=bool), []
    X: np.ndarray | None = None
    if n:
        try:  # fast path: a log read from Parquet holds equal-length float arrays
            stacked = np.stack(list(values))
        except (TypeError, ValueError):
            stacked = None
        if stacked is not None and stacked.ndim == 2 and stacked.dtype.kind in "biuf":
            X = stacked.astype(np.float64, copy=False)
    if X is not None:
        finite = np.isfinite(X).all(axis=1)
        d = X.shape[1] if rule == "infer" else rule
        length_ok = X.shape[1] == d
        ok = finite & length_ok
        details = [
            (f"context has {X.shape[1]} values, expected n_features={d}" if not length_ok
             else "context contains NaN or inf")
            for _ in range(int((~ok).sum()))
        ]
        return np.ascontiguousarray(X[ok]), ok, details
    rows = [_one_context(v) for v in values]
    lengths = [r.shape[0] for r in rows if r is not None]
    if rule == "infer":
        d = int(pd.Series(lengths, dtype=np.int64).mode().min()) if lengths else 0
    else:
        d = rule
    ok = np.fromiter((r is not None and r.shape[0] == d for r in rows), dtype=bool, count=n)
    details = [
        "context is not a 1-D array of finite real numbers" if r is None else
        f"context has {r.shape[0]} values, expected n_features={d}"
        for r, k in zip(rows, ok, strict=True) if not k
    ]
    good = [r for r, k in zip(rows, ok, strict=True) if k and r is not None]
    X = np.stack(good) if good else np.empty((0, max(d, 0)))
    return np.ascontiguousarray(X, dtype=np.float64), ok, details


class _Rejections:
    """Accumulates rejected rows; ``frame()`` builds the ``rejected`` table."""

    def __init__(self) -> None:
        self._parts: list[tuple[int, np.ndarray, np.ndarray, np.ndarray, str, list[str] | str]] = []

    def add(self, source: int, rows: np.ndarray, ids: np.ndarray, us: np.ndarray, reason: str,
            detail: list[str] | str) -> None:
        if len(rows):
            self._parts.append((source, rows, ids[rows], us[rows], reason, detail))

    def frame(self) -> pd.DataFrame:
        src, row, eid, us, reason, detail = [], [], [], [], [], []
        for s, rows, ids, ts, why, det in self._parts:
            src.append(np.full(len(rows), s))
            row.append(rows)
            eid.append(ids)
            us.append(ts)
            reason.append(np.full(len(rows), why, dtype=object))
            detail.append(np.asarray(det if isinstance(det, list) else [det] * len(rows), dtype=object))
        if not src:
            return _empty_rejected()
        s_all, r_all = np.concatenate(src), np.concatenate(row)
        order = np.lexsort((r_all, s_all))
        reasons = np.concatenate(reason)[order]
        return pd.DataFrame(
            {
                "source": pd.Series(np.where(s_all[order] == 0, "decisions", "outcomes"), dtype="str"),
                "row": r_all[order].astype(np.int64),
                "event_id": pd.Series(np.concatenate(eid)[order], dtype=object),
                "timestamp": us_to_timestamps(np.concatenate(us)[order]),
                "reason": pd.Series(reasons, dtype="str"),
                "detail": pd.Series(np.concatenate(detail)[order], dtype="str"),
                "final": np.fromiter((r in FINAL_REASONS for r in reasons), dtype=bool, count=len(reasons)),
            }
        )


def _empty_rejected() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "source": pd.Series([], dtype="str"),
            "row": np.array([], dtype=np.int64),
            "event_id": pd.Series([], dtype=object),
            "timestamp": us_to_timestamps(np.array([], dtype=np.int64)),
            "reason": pd.Series([], dtype="str"),
            "detail": pd.Series([], dtype="str"),
            "final": np.array([], dtype=bool),
        }
    )


# ------------------------------------------------------------------------------------------------------------------
# the join
# ------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class _Resolution:
    public: ResolvedRewards
    X: np.ndarray  # validated contexts of public.resolved, in its row order
    resolved_us: np.ndarray  # decision times of public.resolved
    resolved_rows: np.ndarray  # positions of public.resolved's rows in the decisions table
    final_ids: np.ndarray  # ids and times of the decisions rejected for good (settled by apply_log)
    final_us: np.ndarray
    seen_ids: np.ndarray  # valid (id, time) decision rows, for AppliedEvents.learn_times
    seen_us: np.ndarray


def _resolve(
    decisions: Any,
    outcomes: Any,
    attribution_window: Any,
    now: Any,
    already_applied: Any,
    combine: Any,
    contexts: ContextRule,
    reward_range: tuple[float, float],
    arm_names: Sequence[str] | None,
) -> _Resolution:
    dec = _decisions_frame(decisions)
    out = _outcomes_frame(outcomes)
    window = _as_window(attribution_window)
    combine = _as_combine(combine)
    wm, settled = _as_ledger(already_applied)
    now_us = _as_now(now)
    low, high = reward_range
    w_us = window // pd.Timedelta(microseconds=1)
    rej = _Rejections()
    DEC, OUT = 0, 1

    # ---- decision rows ------------------------------------------------------------------------------------
    n_dec = len(dec)
    ids, id_ok = _valid_ids(dec[EVENT_ID])
    dec_us, ts_ok = parse_utc_us(dec[TIMESTAMP], "decisions['timestamp']")
    by_id = _in_ledger(ids, id_ok, settled)
    rej.add(DEC, np.flatnonzero(~id_ok), ids, dec_us, "bad_event_id", _BAD_ID_DETAIL)
    rej.add(DEC, np.flatnonzero(id_ok & ~by_id & ~ts_ok), ids, dec_us, "bad_timestamp",
            "timestamp is missing or not a readable date-time")
    cand = np.flatnonzero(id_ok & ~by_id & ts_ok)
    first = ~pd.Index(ids[cand]).duplicated(keep="first")
    kept_rows = cand[first]  # the decision of each id: its first readable row
    kept_index = pd.Index(ids[kept_rows])
    by_wm = np.zeros(n_dec, dtype=bool)
    if wm is not None:
        by_wm[kept_rows] = dec_us[kept_rows] <= wm
    dup_rows = cand[~first]
    dup_settled = by_wm[kept_rows[kept_index.get_indexer(ids[dup_rows])]]  # rows of an id settled: skipped
    rej.add(DEC, dup_rows[~dup_settled], ids, dec_us, "duplicate_event_id",
            "event_id repeats an earlier row; the first row is used")
    n_settled = int(by_id.sum() + by_wm.sum() + dup_settled.sum())

    live = np.zeros(n_dec, dtype=bool)
    live[kept_rows] = ~by_wm[kept_rows]
    future = live & (dec_us > now_us)
    rej.add(DEC, np.flatnonzero(future), ids, dec_us, "future_timestamp",
            f"decision stamped after now={pd.Timestamp(now_us, unit='us', tz='UTC').isoformat()}")
    live &= ~future
    rejected_dec = future.copy()
    final_dec = np.zeros(n_dec, dtype=bool)

    live_rows = np.flatnonzero(live)
    X_live, ctx_ok, ctx_detail = _check_contexts(dec[CONTEXT].to_numpy(dtype=object)[live_rows], contexts)
    bad_ctx = live_rows[~ctx_ok]
    rej.add(DEC, bad_ctx, ids, dec_us, "bad_context", ctx_detail)
    x_row = np.full(n_dec, -1, dtype=np.int64)  # row of X_live for each decision row
    x_row[live_rows[ctx_ok]] = np.arange(int(ctx_ok.sum()))
    live[bad_ctx] = False
    rejected_dec[bad_ctx] = True
    final_dec[bad_ctx] = True

    names = dec[ACTION_NAME].to_numpy(dtype=object)
    live_rows = np.flatnonzero(live)
    known = set(arm_names) if arm_names is not None else None
    arm_ok = np.fromiter(
        (isinstance(a, str) and a != "" and (known is None or a in known) for a in names[live_rows]),
        dtype=bool, count=len(live_rows),
    )
    bad_arm = live_rows[~arm_ok]
    arm_detail = [
        f"action_name {a!r} is not one of the policy's arms {list(arm_names)}; add it with add_arm"
        if arm_names is not None and isinstance(a, str) else f"action_name must be a non-empty string, got {a!r}"
        for a in names[bad_arm]
    ]
    rej.add(DEC, bad_arm, ids, dec_us, "unknown_arm", arm_detail)
    live[bad_arm] = False
    rejected_dec[bad_arm] = True

    # ---- outcome rows -------------------------------------------------------------------------------------
    n_out = len(out)
    o_ids, o_id_ok = _valid_ids(out[EVENT_ID])
    o_us, o_ts_ok = parse_utc_us(out[TIMESTAMP], "outcomes['timestamp']")
    o_reward, o_code = _parse_rewards(out[REWARD])
    rej.add(OUT, np.flatnonzero(~o_id_ok), o_ids, o_us, "bad_event_id", _BAD_ID_DETAIL)
    bad_ts = o_id_ok & ~o_ts_ok
    rej.add(OUT, np.flatnonzero(bad_ts), o_ids, o_us, "bad_timestamp", "timestamp is missing or not a readable date-time")
    base = o_id_ok & o_ts_ok
    nonfinite = base & (o_code == _REWARD_NON_FINITE)
    rej.add(OUT, np.flatnonzero(nonfinite), o_ids, o_us, "non_finite_reward",
            [f"reward is {v!r}" for v in out[REWARD].to_numpy(dtype=object)[nonfinite]])
    notnum = base & (o_code == _REWARD_NOT_NUMBER)
    rej.add(OUT, np.flatnonzero(notnum), o_ids, o_us, "bad_reward",
            [f"reward must be a real number, got {type(v).__name__}" for v in out[REWARD].to_numpy(dtype=object)[notnum]])
    good = base & (o_code == _REWARD_OK)
    o_future = good & (o_us > now_us)
    rej.add(OUT, np.flatnonzero(o_future), o_ids, o_us, "future_timestamp",
            f"outcome stamped after now={pd.Timestamp(now_us, unit='us', tz='UTC').isoformat()}; not counted yet")
    good &= ~o_future
    g_rows = np.flatnonzero(good)
    dup = np.zeros(n_out, dtype=bool)
    if len(g_rows):
        keys = pd.DataFrame({"e": o_ids[g_rows], "t": o_us[g_rows], "r": o_reward[g_rows]})
        dup[g_rows[keys.duplicated(keep="first").to_numpy()]] = True
    rej.add(OUT, np.flatnonzero(dup), o_ids, o_us, "duplicate_outcome",
            "same event_id, timestamp and reward as an earlier row; counted once")
    use = good & ~dup

    # each outcome -> row of its decision (-1: none)
    pos = np.full(n_out, -1, dtype=np.int64)
    keyed = np.flatnonzero(o_id_ok)
    if len(keyed) and len(kept_rows):
        hit = kept_index.get_indexer(o_ids[keyed])
        pos[keyed[hit >= 0]] = kept_rows[hit[hit >= 0]]
    has_dec = pos >= 0
    gather_at = np.where(has_dec, pos, n_dec)  # index into a decision array padded with one fill value

    def at_decision(values: np.ndarray, fill: Any) -> np.ndarray:
        return np.append(values, np.array([fill], dtype=values.dtype))[gather_at]

    d_us = at_decision(dec_us, 0)
    in_window = has_dec & (o_us >= d_us) & (o_us <= d_us + w_us)

    # a decision with an unusable outcome row has an unknown reward: bad_outcome (final)
    taint_rows = (bad_ts & has_dec) | ((nonfinite | notnum) & in_window & (o_us <= now_us))
    tainted = np.zeros(n_dec, dtype=bool)
    tainted[pos[taint_rows]] = True
    tainted &= live
    bad_out = np.flatnonzero(tainted)
    rej.add(DEC, bad_out, ids, dec_us, "bad_outcome",
            "an outcome row for this decision has an unreadable timestamp or reward (see its outcome rejection)")
    live &= ~tainted
    rejected_dec |= tainted
    final_dec |= tainted

    counts = use & in_window & at_decision(live, False)
    c_rows = np.flatnonzero(counts)
    c_pos = pos[c_rows]
    c_rew = o_reward[c_rows]
    n_counted = np.bincount(c_pos, minlength=n_dec)
    out_of_range = np.bincount(c_pos, weights=((c_rew < low) | (c_rew > high)).astype(np.float64),
                               minlength=n_dec) > 0
    if combine == "sum":
        reward = np.bincount(c_pos, weights=c_rew, minlength=n_dec).astype(np.float64)
    elif combine == "max":
        reward = np.full(n_dec, -np.inf)
        np.maximum.at(reward, c_pos, c_rew)
        reward[n_counted == 0] = 0.0
    else:  # first: earliest outcome, ties by table order
        reward = np.zeros(n_dec)
        order = np.lexsort((c_rows, o_us[c_rows], c_pos))
        firsts = order[np.r_[True, c_pos[order][1:] != c_pos[order][:-1]]] if len(order) else order
        reward[c_pos[firsts]] = c_rew[firsts]
    by_outcome = live & (n_counted > 0)
    expired = live & (n_counted == 0) & (dec_us + w_us < now_us)
    out_of_range = (by_outcome & (out_of_range | (reward < low) | (reward > high))) | (expired & (not low <= 0.0 <= high))
    oor_rows = np.flatnonzero(out_of_range)
    rej.add(DEC, oor_rows, ids, dec_us, "reward_out_of_range",
            [f"reward {reward[r]:g} from {n_counted[r]} outcome(s) (combine={combine!r}) is outside the policy's "
             f"range [{low:g}, {high:g}]" if n_counted[r] else f"reward 0 (window expired) is outside the policy's "
             f"range [{low:g}, {high:g}]" for r in oor_rows])
    by_outcome &= ~out_of_range
    expired &= ~out_of_range
    rejected_dec |= out_of_range
    final_dec |= out_of_range
    pending = live & ~by_outcome & ~expired & ~out_of_range

    # ---- outcomes that do not count -----------------------------------------------------------------------
    o_by_id = _in_ledger(o_ids, o_id_ok, settled)
    o_before_wm = (o_us <= wm) if wm is not None else np.zeros(n_out, dtype=bool)
    already = use & (o_by_id | at_decision(by_wm, False) | (~has_dec & o_before_wm))
    rest = use & ~already
    bad_ts_ids = set(ids[np.flatnonzero(id_ok & ~by_id & ~ts_ok)].tolist())
    unkeyed_rejected = np.fromiter((e in bad_ts_ids for e in o_ids), dtype=bool, count=n_out) if bad_ts_ids else (
        np.zeros(n_out, dtype=bool))
    dec_rejected = rest & (at_decision(rejected_dec, False) | (~has_dec & o_id_ok & unkeyed_rejected))
    rest &= ~dec_rejected
    before = rest & has_dec & (o_us < d_us)
    after = rest & has_dec & (o_us > d_us + w_us)
    unknown = rest & ~has_dec
    late_mask = already | dec_rejected | before | after
    reason = np.select(
        [already, dec_rejected, before], ["already_settled", "decision_rejected", "before_decision"], "after_window"
    )
    late = out.iloc[np.flatnonzero(late_mask)].assign(late_reason=reason[late_mask])

    # ---- the resolved table -------------------------------------------------------------------------------
    rows = np.flatnonzero(by_outcome | expired)
    rows = rows[np.argsort(dec_us[rows], kind="stable")]
    resolved = pd.DataFrame(
        {
            EVENT_ID: pd.Series(ids[rows], dtype="str"),
            TIMESTAMP: us_to_timestamps(dec_us[rows]),
            CONTEXT: pd.Series(dec[CONTEXT].to_numpy(dtype=object)[rows], dtype=object),
            ACTION: dec[ACTION].to_numpy()[rows],
            ACTION_NAME: pd.Series(names[rows], dtype="str"),
            REWARD: np.where(by_outcome[rows], reward[rows], 0.0).astype(np.float64),
            "n_outcomes": n_counted[rows].astype(np.int64),
            "resolved_by": pd.Series(np.where(by_outcome[rows], "outcome", "window_expired"), dtype="str"),
        }
    )
    public = ResolvedRewards(
        resolved=resolved,
        pending_event_ids=tuple(ids[pending].tolist()),
        unknown_outcomes=out.iloc[np.flatnonzero(unknown)],
        late_outcomes=late,
        rejected=rej.frame(),
        n_already_applied=n_settled,
        now=pd.Timestamp(now_us, unit="us", tz="UTC"),
        attribution_window=window,
    )
    final_rows = np.flatnonzero(final_dec)
    seen = np.flatnonzero(id_ok & ts_ok)
    return _Resolution(
        public=public,
        X=X_live[x_row[rows]] if len(rows) else np.empty((0, X_live.shape[1])),
        resolved_us=dec_us[rows],
        resolved_rows=rows.astype(np.int64),
        final_ids=ids[final_rows],
        final_us=dec_us[final_rows],
        seen_ids=ids[seen],
        seen_us=dec_us[seen],
    )


def resolve_rewards(
    decisions: pd.DataFrame | str | os.PathLike[str],
    outcomes: pd.DataFrame | str | os.PathLike[str],
    attribution_window: timedelta | pd.Timedelta | str,
    now: datetime | np.datetime64 | str | None = None,
    already_applied: AppliedEvents | set[str] | frozenset[str] | None = None,
    *,
    combine: Combine = "sum",
    n_features: int | None = None,
    reward_range: tuple[float, float] | None = None,
    arm_names: Sequence[str] | None = None,
) -> ResolvedRewards:
    """Join delayed outcomes to logged decisions under an attribution window (the rules: module docstring).

    Pure: nothing is recorded anywhere (:func:`apply_log` does that). Bad rows are returned in ``rejected``.

    Parameters
    ----------
    decisions : pandas.DataFrame or path
        A decision log (``DecisionLog.read()``, :func:`read_decision_log`) or its directory. Needs ``event_id``,
        ``timestamp``, ``context``, ``action``, ``action_name``; its ``reward`` column is ignored.
    outcomes : pandas.DataFrame or path
        Outcomes table (``event_id``, ``timestamp``, ``reward`` + any extra columns), or a Parquet file/directory.
    attribution_window : timedelta, pandas.Timedelta or str
        E.g. ``"7D"``, ``timedelta(hours=48)``; must be positive.
    now : datetime-like, optional
        Evaluation time; default the wall clock (UTC now). Pass it to replay history.
    already_applied : AppliedEvents or set of str, optional
        Decisions settled earlier (never resolved again): a ledger (watermark + ids) or plain ids.
    combine : {"sum", "max", "first"}
        How several counting outcomes of one decision make its reward.
    n_features : int, optional
        Expected context length; default the most common length in ``decisions``.
    reward_range : (low, high), optional
        Rewards outside it reject the decision (``"reward_out_of_range"``); default unbounded.
    arm_names : sequence of str, optional
        When given, decisions whose ``action_name`` is not among them are ``"unknown_arm"``.

    Returns
    -------
    ResolvedRewards

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> decisions = pd.DataFrame({
    ...     "event_id": ["a", "b", "c", "a"],
    ...     "timestamp": pd.to_datetime(["2024-05-01", "2024-05-01", "2024-05-06", "2024-05-02"], utc=True),
    ...     "context": [np.array([1.0]), np.array([2.0]), np.array([3.0]), np.array([4.0])],
    ...     "action": [0, 1, 1, 0], "action_name": ["solo", "duo", "duo", "solo"]})
    >>> outcomes = pd.DataFrame({
    ...     "event_id": ["a", "a", "zz", "b"], "reward": [9.99, 4.99, 1.0, float("nan")],
    ...     "timestamp": pd.to_datetime(["2024-05-02", "2024-05-03", "2024-05-07", "2024-05-02"], utc=True)})
    >>> res = resolve_rewards(decisions, outcomes, attribution_window="3D", now="2024-05-07")
    >>> res.resolved[["event_id", "reward", "n_outcomes", "resolved_by"]]
      event_id  reward  n_outcomes resolved_by
    0        a   14.98           2     outcome
    >>> res.pending_event_ids, res.unknown_outcomes["event_id"].tolist()
    (('c',), ['zz'])
    >>> res.rejected[["source", "row", "event_id", "reason", "final"]]
          source  row event_id              reason  final
    0  decisions    1        b         bad_outcome   True
    1  decisions    3        a  duplicate_event_id  False
    2   outcomes    3        b   non_finite_reward  False
    """
    contexts: ContextRule = "infer" if n_features is None else _as_n_features(n_features)
    if arm_names is not None and (isinstance(arm_names, str) or not all(isinstance(a, str) for a in arm_names)):
        raise TypeError("arm_names must be a sequence of arm-name strings")
    return _resolve(
        decisions, outcomes, attribution_window, now, already_applied, combine, contexts,
        _as_reward_range(reward_range), arm_names,
    ).public


def _as_n_features(n_features: Any) -> int:
    if isinstance(n_features, bool) or not isinstance(n_features, int | np.integer):
        raise TypeError(f"n_features must be a positive int or None, got {type(n_features).__name__}")
    if n_features < 1:
        raise ValueError(f"n_features must be a positive int (the context length), got {n_features}")
    return int(n_features)


def join_outcomes(
    decisions: pd.DataFrame | str | os.PathLike[str],
    outcomes: pd.DataFrame | str | os.PathLike[str],
    attribution_window: timedelta | pd.Timedelta | str,
    now: datetime | np.datetime64 | str | None = None,
    *,
    combine: Combine = "sum",
) -> pd.DataFrame:
    """The decision log with its ``reward`` column filled from delayed outcomes, ready for offline evaluation.

    The rewards follow exactly the rules of :func:`resolve_rewards` (the ones ``policy.update_from_log`` learns
    from): ``combine`` (default the sum) of the outcomes inside the attribution window, 0 once the window has
    passed without one, and null for decisions still inside their window and for rejected rows
    (``offline_eval.LoggedData.from_dataframe`` drops those with a warning rather than counting them as 0).

    Parameters
    ----------
    decisions : DataFrame or path
        A decision log (``DecisionLog.read()`` or :func:`read_decision_log`, or the log directory).
    outcomes : DataFrame or path
        The outcomes table (``event_id``, ``timestamp``, ``reward``).
    attribution_window, now, combine
        As in :func:`resolve_rewards` (``now`` defaults to the wall clock).

    Returns
    -------
    pandas.DataFrame
        Every column and row of ``decisions`` (same order, ``attrs`` kept, so the arm list travels along) with
        ``reward`` as float64 (NaN = pending or rejected) and a ``reward_status`` column: ``"outcome"``,
        ``"window_expired"``, ``"pending"``, or the rejection reason of the row (``"duplicate_event_id"``,
        ``"bad_context"``, ...; see :func:`resolve_rewards` for the rejected outcome rows).

    Examples
    --------
    >>> import tempfile
    >>> import pandas as pd
    >>> from bandit import DecisionLog, UniformRandom
    >>> policy = UniformRandom(["individual", "duo"], n_features=1, seed=0)
    >>> log = DecisionLog(tempfile.mkdtemp(), policy=policy)
    >>> for i, day in enumerate(["2026-11-01", "2026-11-01", "2026-11-09"]):
    ...     log.append(policy.choose([0.5], event_id=f"e{i}"), [0.5], timestamp=day)
    >>> log.close()
    >>> outcomes = pd.DataFrame({"event_id": ["e0"], "timestamp": ["2026-11-02"], "reward": [16.99]})
    >>> joined = join_outcomes(log.read(), outcomes, attribution_window="7D", now="2026-11-10")
    >>> joined["reward"].tolist(), joined["reward_status"].tolist()
    ([16.99, 0.0, nan], ['outcome', 'window_expired', 'pending'])
    """
    frame = _decisions_frame(decisions)
    res = resolve_rewards(frame, outcomes, attribution_window, now, combine=combine)
    n = len(frame)
    reward = np.full(n, np.nan)
    status = np.full(n, "pending", dtype=object)
    ids, id_ok = _valid_ids(frame[EVENT_ID])
    resolved = res.resolved
    pos = pd.Index(resolved[EVENT_ID].to_numpy(dtype=object)).get_indexer(np.where(id_ok, ids, np.array(None, dtype=object)))
    first = np.zeros(n, dtype=bool)
    seen: set[str] = set()
    for i in np.flatnonzero(pos >= 0):  # a duplicate row of a resolved id stays null (it is rejected)
        if ids[i] not in seen:
            seen.add(ids[i])
            first[i] = True
    hit = (pos >= 0) & first
    reward[hit] = resolved[REWARD].to_numpy()[pos[hit]]
    status[hit] = resolved["resolved_by"].to_numpy(dtype=object)[pos[hit]]
    dec_rej = res.rejected[res.rejected["source"] == "decisions"]
    status[dec_rej["row"].to_numpy()] = dec_rej["reason"].to_numpy(dtype=object)
    joined = frame.copy()
    joined[REWARD] = reward
    joined["reward_status"] = pd.Series(status, index=frame.index, dtype="str")
    joined.attrs = dict(frame.attrs)
    return joined


def _apply_rows(
    policy: Any, X: np.ndarray, actions: np.ndarray, rewards: np.ndarray, on_applied: Callable[[int, int], None]
) -> list[tuple[int, str]]:
    """``policy.update_batch`` on all rows; if it refuses the batch (ValueError), on halves in order, down to the
    single rows it refuses, which are returned as ``(position, message)``. ``on_applied(lo, hi)`` records each
    applied slice at once, so an unexpected error later leaves the record true."""
    failed: list[tuple[int, str]] = []

    def run(lo: int, hi: int) -> None:
        try:
            policy.update_batch(X[lo:hi], actions[lo:hi], rewards[lo:hi])
        except ValueError as exc:
            if hi - lo == 1:
                failed.append((lo, str(exc)))
                return
            mid = (lo + hi) // 2
            run(lo, mid)
            run(mid, hi)
            return
        on_applied(lo, hi)

    if len(rewards):
        run(0, len(rewards))
    return failed


def apply_log(
    policy: Any,
    decisions: pd.DataFrame | str | os.PathLike[str],
    outcomes: pd.DataFrame | str | os.PathLike[str],
    attribution_window: timedelta | pd.Timedelta | str,
    now: datetime | np.datetime64 | str | None = None,
    *,
    applied: AppliedEvents,
    combine: Combine = "sum",
    grace: timedelta | pd.Timedelta | str = "1D",
) -> UpdateReport:
    """Resolve delayed outcomes and update ``policy`` once with every newly resolved decision.

    This is what ``policy.update_from_log`` does; the rules are in the module docstring. Resolved rows (sorted by
    decision time) go to ``policy.update_batch(X, actions, rewards)`` in one call, with ``actions`` the policy's
    indices of the logged ``action_name``. If ``update_batch`` refuses the batch with a ``ValueError`` (a row it
    cannot learn from, e.g. a context so large its statistics overflow), the batch is split in halves, in order,
    down to the rows it refuses alone, which are rejected as ``"update_failed"``. Applied ids and final rejections
    are recorded in ``applied`` as soon as ``update_batch`` returns, then its watermark moves to
    ``now - attribution_window - grace`` (see :class:`AppliedEvents`), so calling again with the same (or more)
    data never counts a decision twice; persist ``applied`` with the policy state (``policy.save`` does).

    Parameters
    ----------
    policy : policy
        Needs ``arm_names`` and ``update_batch(X, arms, rewards)``; ``n_features`` (contexts are checked against it;
        None: ignored) and the reward range ``_reward_low``/``_reward_high`` are read when present.
    decisions, outcomes, attribution_window, now, combine
        See :func:`resolve_rewards`; ``now`` defaults to the wall clock.
    applied : AppliedEvents
        The ledger of settled decisions; updated in place.
    grace : timedelta, pandas.Timedelta or str
        How long after a decision's window closed its id is kept (default one day): must cover the delay with which
        decision rows become readable.

    Returns
    -------
    UpdateReport

    Raises
    ------
    TypeError, ValueError
        Table-level problems (a missing column, a column of the wrong dtype) and bad arguments; nothing is
        applied then. Bad rows are reported in ``UpdateReport.rejected`` instead.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> class Recorder:  # any object with arm_names and update_batch
    ...     arm_names = ["solo", "duo"]
    ...     def update_batch(self, X, arms, rewards):
    ...         print(X.tolist(), arms.tolist(), rewards.tolist())
    >>> decisions = pd.DataFrame({
    ...     "event_id": ["a", "b", "c"],
    ...     "timestamp": pd.to_datetime(["2024-05-01", "2024-05-01", "2024-05-01"], utc=True),
    ...     "context": [np.array([1.0]), np.array([2.0]), np.array([np.nan])],
    ...     "action": [1, 0, 0], "action_name": ["duo", "solo", "solo"]})
    >>> outcomes = pd.DataFrame({"event_id": ["a", "a"], "reward": [1.0, 1.0],
    ...                          "timestamp": pd.to_datetime(["2024-05-02", "2024-05-02"], utc=True)})
    >>> applied = AppliedEvents()
    >>> report = apply_log(Recorder(), decisions, outcomes, "7D", now="2024-05-09", applied=applied)
    [[1.0], [2.0]] [1, 0] [1.0, 0.0]
    >>> report.n_applied, report.n_expired_zero, report.rejected["reason"].tolist()
    (2, 1, ['bad_context', 'duplicate_outcome'])
    >>> apply_log(Recorder(), decisions, outcomes, "7D", now="2024-05-09", applied=applied).n_applied
    0
    """
    if not isinstance(applied, AppliedEvents):
        raise TypeError(
            f"applied must be an AppliedEvents ledger (updated in place), got {type(applied).__name__}; create one "
            "with AppliedEvents() and save it with the policy"
        )
    arm_names, _ = policy_arms_and_name(policy)
    if not callable(getattr(policy, "update_batch", None)):
        raise TypeError(f"policy must have an update_batch(X, arms, rewards) method, got {type(policy).__name__}")
    window = _as_window(attribution_window)
    grace_td = _as_duration(grace, "grace", allow_zero=True)
    n_features = getattr(policy, "n_features", "infer")
    contexts: ContextRule = "ignore" if n_features is None else ("infer" if n_features == "infer" else int(n_features))
    low = float(getattr(policy, "_reward_low", -math.inf))
    high = float(getattr(policy, "_reward_high", math.inf))
    now_us = _as_now(now)  # one instant for the join and the watermark
    res = _resolve(decisions, outcomes, window, pd.Timestamp(now_us, unit="us", tz="UTC"), applied, combine,
                   contexts, (low, high), arm_names)
    pub = res.public
    resolved = pub.resolved
    if applied.has_unknown_times:
        applied.learn_times(res.seen_ids, res.seen_us)
    ids = resolved[EVENT_ID].to_numpy(dtype=object)
    n = len(resolved)
    actions = pd.Index(arm_names).get_indexer(resolved[ACTION_NAME]).astype(np.int64)
    rewards = resolved[REWARD].to_numpy(dtype=np.float64)
    X = res.X if contexts != "ignore" else np.empty((n, 0))

    def record(lo: int, hi: int) -> None:
        applied.add(ids[lo:hi], res.resolved_us[lo:hi])

    failed = _apply_rows(policy, X, actions, rewards, record)
    applied.add(res.final_ids, res.final_us)
    rejected = pub.rejected
    ok = np.ones(n, dtype=bool)
    if failed:
        where = np.array([i for i, _ in failed], dtype=np.int64)
        ok[where] = False
        applied.add(ids[where], res.resolved_us[where])
        extra = pd.DataFrame(
            {
                "source": pd.Series(["decisions"] * len(failed), dtype="str"),
                "row": res.resolved_rows[where],
                "event_id": pd.Series(ids[where], dtype=object),
                "timestamp": us_to_timestamps(res.resolved_us[where]),
                "reason": pd.Series(["update_failed"] * len(failed), dtype="str"),
                "detail": pd.Series([f"policy.update_batch refused this row: {m}" for _, m in failed], dtype="str"),
                "final": np.ones(len(failed), dtype=bool),
            }
        )
        rejected = pd.concat([rejected, extra], ignore_index=True)
    applied.advance(now_us - (window + grace_td) // pd.Timedelta(microseconds=1))
    wm = applied.watermark_us
    return UpdateReport(
        n_applied=int(ok.sum()),
        n_expired_zero=int(((resolved["resolved_by"] == "window_expired").to_numpy() & ok).sum()),
        n_pending=len(pub.pending_event_ids),
        n_already_applied=pub.n_already_applied,
        unknown_outcomes=pub.unknown_outcomes,
        late_outcomes=pub.late_outcomes,
        rejected=rejected,
        event_ids=tuple(ids[ok].tolist()),
        now=pub.now,
        watermark=None if wm is None else pd.Timestamp(wm, unit="us", tz="UTC"),
    )

