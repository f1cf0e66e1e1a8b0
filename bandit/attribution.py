"""Delayed-outcome attribution: join outcomes to logged decisions and feed them to a policy exactly once.

Conversions arrive after the offer, in an outcomes table (``event_id``, ``timestamp``, ``reward``).
:func:`resolve_rewards` joins them to the decisions of a decision log under an attribution window,
:func:`join_outcomes` fills a log's ``reward`` column for offline evaluation, and :func:`apply_log` feeds the
resolved rows to a policy exactly once (what ``policy.update_from_log`` does). The simulator uses the same code.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from bandit._timestamps import MIN_US, us_to_timestamps, utc_us, utc_us_array
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

__all__ = ["ResolvedRewards", "UpdateReport", "apply_log", "join_outcomes", "resolve_rewards"]


@dataclass(frozen=True, slots=True, eq=False)
class ResolvedRewards:
    """Result of :func:`resolve_rewards`.

    Attributes
    ----------
    resolved : pandas.DataFrame
        One row per decision whose reward is now known, sorted by decision timestamp (stable): ``event_id``,
        ``timestamp`` (of the decision), ``context`` (one array of shape (d,) per row), ``action``,
        ``action_name``, ``reward`` (float64), ``n_outcomes`` (in-window outcomes summed) and ``resolved_by``
        (``"outcome"`` or ``"window_expired"``).
    pending_event_ids : tuple of str
        Decisions still inside their attribution window with no outcome yet.
    unknown_outcomes : pandas.DataFrame
        Outcome rows (all their columns, original index) whose event_id matches no decision and was never applied.
    late_outcomes : pandas.DataFrame
        Outcome rows that do not count, plus a ``late_reason`` column: ``"after_window"`` (after the decision's
        window), ``"before_decision"`` (stamped before the decision: clock skew or a wrong id) or
        ``"already_applied"`` (the decision was applied in an earlier call).
    n_already_applied : int
        Decisions skipped because their id was in ``already_applied``.
    now : pandas.Timestamp or None
        The evaluation time used (UTC); ``None`` when there was no data at all.
    attribution_window : pandas.Timedelta
    """

    resolved: pd.DataFrame
    pending_event_ids: tuple[str, ...]
    unknown_outcomes: pd.DataFrame
    late_outcomes: pd.DataFrame
    n_already_applied: int
    now: pd.Timestamp | None
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
    unknown_outcomes : pandas.DataFrame
        Outcomes matching no decision (see :class:`ResolvedRewards`).
    late_outcomes : pandas.DataFrame
        Outcomes that did not count, with ``late_reason`` (see :class:`ResolvedRewards`).
    event_ids : tuple of str
        Ids applied by this call (already added to ``applied_event_ids``).
    now : pandas.Timestamp or None
        The evaluation time used.
    """

    n_applied: int
    n_expired_zero: int
    n_pending: int
    unknown_outcomes: pd.DataFrame
    late_outcomes: pd.DataFrame
    event_ids: tuple[str, ...]
    now: pd.Timestamp | None


_RESOLVE_DECISION_COLUMNS = (EVENT_ID, TIMESTAMP, CONTEXT, ACTION, ACTION_NAME)


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


def _event_ids(column: pd.Series, name: str) -> np.ndarray:
    if column.isna().any():
        raise ValueError(f"{name}['event_id'] has missing values; every row needs an event id")
    ids = column.to_numpy(dtype=object)
    if not all(isinstance(e, str) for e in ids):
        raise TypeError(f"{name}['event_id'] must hold strings")
    return ids


def _as_window(attribution_window: Any) -> pd.Timedelta:
    if isinstance(attribution_window, bool | int | float | np.integer | np.floating):
        raise TypeError(
            "attribution_window must be a timedelta, pandas.Timedelta or string like '7D' / '48h', got a number "
            f"({attribution_window!r}) whose unit is ambiguous"
        )
    try:
        window = pd.Timedelta(attribution_window)
    except (TypeError, ValueError):
        raise ValueError(
            f"attribution_window must be a timedelta, pandas.Timedelta or string like '7D', got {attribution_window!r}"
        ) from None
    if window is pd.NaT or window < pd.Timedelta(microseconds=1):
        raise ValueError(f"attribution_window must be positive (at least 1 microsecond), got {attribution_window!r}")
    return window


def resolve_rewards(
    decisions: pd.DataFrame | str | os.PathLike[str],
    outcomes: pd.DataFrame | str | os.PathLike[str],
    attribution_window: timedelta | pd.Timedelta | str,
    now: datetime | np.datetime64 | str | None = None,
    already_applied: set[str] | frozenset[str] | None = None,
) -> ResolvedRewards:
    """Join delayed outcomes to logged decisions under an attribution window.

    Rules (``w`` = ``attribution_window``, decision at time ``t``; all times UTC, naive ones taken as UTC):

    1. Only outcomes stamped ``<= now`` are considered; later ones have "not happened yet" and are left for a
       later call (neither counted nor reported).
    2. An outcome counts for its decision when ``t <= outcome.timestamp <= t + w`` (both ends inclusive).
    3. A decision with at least one counting outcome is resolved (``resolved_by="outcome"``) with reward = the
       **sum** of its counting outcome rewards (several purchases add up). It resolves as soon as one outcome is
       in; an in-window outcome arriving after the decision was applied is reported late (``"already_applied"``).
    4. A decision with no counting outcome resolves to reward 0 (``"window_expired"``) once ``now > t + w``
       (strictly: at ``now == t + w`` an outcome could still count); otherwise it is pending.
    5. Decisions whose id is in ``already_applied`` are skipped (idempotence); outcomes for such ids are reported
       in ``late_outcomes`` with ``"already_applied"``, whether or not the decision is in ``decisions``.
    6. Other outcomes whose id matches no decision are returned in ``unknown_outcomes``; outcomes outside their
       decision's window go to ``late_outcomes`` (``"after_window"`` or ``"before_decision"``). No outcome with
       ``timestamp <= now`` is silently dropped.

    ``now`` defaults to the latest timestamp in ``decisions`` and ``outcomes``: the result then depends only on
    the data (replaying history is deterministic and matches what a job at that moment would have computed), and
    it is never later than the wall clock, so it never expires a decision the wall clock would not. It assumes the
    outcomes table is complete up to that time: if outcome ingestion lags behind the decision log, pass ``now`` =
    the time up to which outcomes are complete, otherwise decisions whose outcome is still in transit resolve to
    0 and their outcome is later reported as late.

    Parameters
    ----------
    decisions : pandas.DataFrame or path
        A decision log (``DecisionLog.read()``, :func:`read_decision_log`) or its directory. Needs ``event_id``
        (unique), ``timestamp``, ``context``, ``action``, ``action_name``; its ``reward`` column is ignored.
    outcomes : pandas.DataFrame or path
        Outcomes table (``event_id``, ``timestamp``, ``reward`` + any extra columns), or a Parquet file/directory.
    attribution_window : timedelta, pandas.Timedelta or str
        E.g. ``"7D"``, ``timedelta(hours=48)``; must be positive.
    now : datetime-like, optional
        Evaluation time; see above.
    already_applied : set of str, optional
        Event ids already applied to the policy (never resolved again).

    Returns
    -------
    ResolvedRewards

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> decisions = pd.DataFrame({
    ...     "event_id": ["a", "b", "c"],
    ...     "timestamp": pd.to_datetime(["2024-05-01", "2024-05-01", "2024-05-06"], utc=True),
    ...     "context": [np.array([1.0]), np.array([2.0]), np.array([3.0])],
    ...     "action": [0, 1, 1], "action_name": ["solo", "duo", "duo"]})
    >>> outcomes = pd.DataFrame({
    ...     "event_id": ["a", "a", "zz"], "reward": [9.99, 4.99, 1.0],
    ...     "timestamp": pd.to_datetime(["2024-05-02", "2024-05-03", "2024-05-07"], utc=True)})
    >>> res = resolve_rewards(decisions, outcomes, attribution_window="3D")
    >>> res.resolved[["event_id", "reward", "n_outcomes", "resolved_by"]]
      event_id  reward  n_outcomes     resolved_by
    0        a   14.98           2         outcome
    1        b    0.00           0  window_expired
    >>> res.pending_event_ids, res.unknown_outcomes["event_id"].tolist()
    (('c',), ['zz'])
    """
    dec = _decisions_frame(decisions)
    out = _outcomes_frame(outcomes)
    window = _as_window(attribution_window)
    if already_applied is None:
        applied: set[str] | frozenset[str] = frozenset()
    elif isinstance(already_applied, set | frozenset):
        applied = already_applied
    else:
        raise TypeError(f"already_applied must be a set of event ids, got {type(already_applied).__name__}")

    dec_ids = _event_ids(dec[EVENT_ID], "decisions")
    dec_index = pd.Index(dec_ids)
    if not dec_index.is_unique:
        dupes = dec_index[dec_index.duplicated()].unique().tolist()
        raise ValueError(f"decisions['event_id'] must be unique, duplicated: {dupes[:5]}")
    dec_ts = utc_us_array(dec[TIMESTAMP], "decisions['timestamp']")
    out_ids = _event_ids(out[EVENT_ID], "outcomes")
    out_ts = utc_us_array(out[TIMESTAMP], "outcomes['timestamp']")
    try:
        out_reward = out[REWARD].to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError("outcomes['reward'] must be numeric") from None
    if not np.isfinite(out_reward).all():
        raise ValueError("outcomes['reward'] contains NaN or infinite values; every outcome needs a finite reward")

    w_us = window // pd.Timedelta(microseconds=1)
    n_dec = len(dec_ts)
    if now is not None:
        now_us: int | None = utc_us(now, "now")
    elif n_dec or len(out_ts):
        now_us = int(max(dec_ts.max(initial=MIN_US), out_ts.max(initial=MIN_US)))
    else:
        now_us = None
    cutoff = MIN_US if now_us is None else now_us  # no data at all: nothing visible, nothing expires
    now_ts = None if now_us is None else pd.Timestamp(now_us, unit="us", tz="UTC")

    # each outcome -> position of its decision (-1: none)
    visible = out_ts <= cutoff
    pos = dec_index.get_indexer(out_ids)
    out_applied = visible & np.fromiter((e in applied for e in out_ids), dtype=bool, count=len(out_ids))
    matched = visible & (pos >= 0) & ~out_applied
    d_ts = dec_ts[pos] if n_dec else np.zeros_like(out_ts)  # garbage where pos == -1, masked by `matched`
    before = matched & (out_ts < d_ts)
    after = matched & (out_ts > d_ts + w_us)
    counts = matched & ~before & ~after
    unknown = visible & (pos < 0) & ~out_applied

    n_out = np.bincount(pos[counts], minlength=n_dec)
    reward = np.bincount(pos[counts], weights=out_reward[counts], minlength=n_dec).astype(np.float64)
    dec_applied = np.fromiter((e in applied for e in dec_ids), dtype=bool, count=n_dec)
    by_outcome = ~dec_applied & (n_out > 0)
    expired = ~dec_applied & (n_out == 0) & (dec_ts + w_us < cutoff)
    pending = ~dec_applied & ~by_outcome & ~expired

    rows = np.flatnonzero(by_outcome | expired)
    rows = rows[np.argsort(dec_ts[rows], kind="stable")]
    resolved = pd.DataFrame(
        {
            EVENT_ID: pd.Series(dec_ids[rows], dtype="str"),
            TIMESTAMP: us_to_timestamps(dec_ts[rows]),
            CONTEXT: pd.Series(dec[CONTEXT].to_numpy(dtype=object)[rows], dtype=object),
            ACTION: dec[ACTION].to_numpy()[rows],
            ACTION_NAME: pd.Series(dec[ACTION_NAME].to_numpy(dtype=object)[rows], dtype="str"),
            REWARD: reward[rows],
            "n_outcomes": n_out[rows].astype(np.int64),
            "resolved_by": pd.Series(np.where(by_outcome[rows], "outcome", "window_expired"), dtype="str"),
        }
    )
    late_mask = out_applied | before | after
    reason = np.where(out_applied, "already_applied", np.where(before, "before_decision", "after_window"))
    late = out.loc[late_mask].assign(late_reason=reason[late_mask])  # positional: safe with duplicate index labels
    return ResolvedRewards(
        resolved=resolved,
        pending_event_ids=tuple(dec_ids[pending].tolist()),
        unknown_outcomes=out.loc[unknown],
        late_outcomes=late,
        n_already_applied=int(dec_applied.sum()),
        now=now_ts,
        attribution_window=window,
    )


def join_outcomes(
    decisions: pd.DataFrame | str | os.PathLike[str],
    outcomes: pd.DataFrame | str | os.PathLike[str],
    attribution_window: timedelta | pd.Timedelta | str,
    now: datetime | np.datetime64 | str | None = None,
) -> pd.DataFrame:
    """The decision log with its ``reward`` column filled from delayed outcomes, ready for offline evaluation.

    The rewards follow exactly the rules of :func:`resolve_rewards` (the ones ``policy.update_from_log`` learns
    from): the sum of the outcomes inside the attribution window, 0 once the window has passed without one, and
    null for decisions still inside their window (``offline_eval.LoggedData.from_dataframe`` drops those with a
    warning rather than counting them as 0).

    Parameters
    ----------
    decisions : DataFrame or path
        A decision log (``DecisionLog.read()`` or :func:`read_decision_log`, or the log directory).
    outcomes : DataFrame or path
        The outcomes table (``event_id``, ``timestamp``, ``reward``).
    attribution_window, now
        As in :func:`resolve_rewards`.

    Returns
    -------
    pandas.DataFrame
        Every column and row of ``decisions`` (same order, ``attrs`` kept, so the arm list travels along) with
        ``reward`` as float64 (NaN = pending).

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
    >>> join_outcomes(log.read(), outcomes, attribution_window="7D", now="2026-11-10")["reward"].tolist()
    [16.99, 0.0, nan]
    """
    frame = _decisions_frame(decisions)
    resolved = resolve_rewards(frame, outcomes, attribution_window, now).resolved
    reward = pd.Series(resolved[REWARD].to_numpy(), index=resolved[EVENT_ID].to_numpy())
    joined = frame.copy()
    joined[REWARD] = reward.reindex(frame[EVENT_ID].astype(str).to_numpy()).to_numpy(dtype=np.float64)
    joined.attrs = dict(frame.attrs)
    return joined


def apply_log(
    policy: Any,
    decisions: pd.DataFrame | str | os.PathLike[str],
    outcomes: pd.DataFrame | str | os.PathLike[str],
    attribution_window: timedelta | pd.Timedelta | str,
    now: datetime | np.datetime64 | str | None = None,
    *,
    applied_event_ids: set[str],
) -> UpdateReport:
    """Resolve delayed outcomes and update ``policy`` once with every newly resolved decision.

    This is what ``policy.update_from_log`` does. The rules are those of :func:`resolve_rewards`. Resolved rows
    (sorted by decision time) go to ``policy.update_batch(X, actions, rewards)`` in one call, with ``actions`` the
    policy's indices of the logged ``action_name`` -- mapped by name, so a log written before arms were added or
    retired still applies. Their ids are added to ``applied_event_ids`` only after ``update_batch`` returned, so
    calling again with the same (or more) data never counts a decision twice; persist the set together with the
    policy state.

    Parameters
    ----------
    policy : policy
        Needs ``arm_names`` and ``update_batch(X, arms, rewards)``.
    decisions, outcomes, attribution_window, now
        See :func:`resolve_rewards`.
    applied_event_ids : set of str
        Ids already applied; updated in place.

    Returns
    -------
    UpdateReport

    Raises
    ------
    ValueError
        A resolved decision's arm is unknown to the policy (nothing is applied), or bad input (see
        :func:`resolve_rewards`).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> class Recorder:  # any object with arm_names and update_batch
    ...     arm_names = ["solo", "duo"]
    ...     def update_batch(self, X, arms, rewards):
    ...         print(X.tolist(), arms.tolist(), rewards.tolist())
    >>> decisions = pd.DataFrame({
    ...     "event_id": ["a", "b"], "timestamp": pd.to_datetime(["2024-05-01", "2024-05-01"], utc=True),
    ...     "context": [np.array([1.0]), np.array([2.0])], "action": [1, 0], "action_name": ["duo", "solo"]})
    >>> outcomes = pd.DataFrame({"event_id": ["a"], "reward": [1.0],
    ...                          "timestamp": pd.to_datetime(["2024-05-02"], utc=True)})
    >>> applied = set()
    >>> report = apply_log(Recorder(), decisions, outcomes, "7D", now="2024-05-09", applied_event_ids=applied)
    [[1.0], [2.0]] [1, 0] [1.0, 0.0]
    >>> report.n_applied, report.n_expired_zero, sorted(applied)
    (2, 1, ['a', 'b'])
    >>> apply_log(Recorder(), decisions, outcomes, "7D", now="2024-05-09", applied_event_ids=applied).n_applied
    0
    """
    if not isinstance(applied_event_ids, set):
        raise TypeError(
            f"applied_event_ids must be a mutable set of event ids (updated in place), got "
            f"{type(applied_event_ids).__name__}"
        )
    arm_names, policy_name = policy_arms_and_name(policy)
    res = resolve_rewards(decisions, outcomes, attribution_window, now, already_applied=applied_event_ids)
    resolved = res.resolved
    n = len(resolved)
    event_ids = tuple(resolved[EVENT_ID].tolist())
    if n:
        actions = pd.Index(arm_names).get_indexer(resolved[ACTION_NAME])
        if (actions < 0).any():
            unknown = sorted(set(resolved[ACTION_NAME].to_numpy()[actions < 0].tolist()))
            raise ValueError(
                f"the log has decisions for arms {unknown} that {policy_name} does not know (its arms: {arm_names}); "
                "add them to the policy (add_arm) or apply this log to the policy that made the decisions"
            )
        X = np.stack(resolved[CONTEXT].to_numpy()).astype(np.float64, copy=False)
        rewards = resolved[REWARD].to_numpy(dtype=np.float64)
        policy.update_batch(X, actions.astype(np.int64), rewards)
        applied_event_ids.update(event_ids)
    return UpdateReport(
        n_applied=n,
        n_expired_zero=int((resolved["resolved_by"] == "window_expired").sum()),
        n_pending=len(res.pending_event_ids),
        unknown_outcomes=res.unknown_outcomes,
        late_outcomes=res.late_outcomes,
        event_ids=event_ids,
        now=res.now,
    )
