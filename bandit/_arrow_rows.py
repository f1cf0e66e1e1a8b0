"""Training rows from Arrow record batches in the decision-log schema, bad rows counted instead of raised.

Shared by :mod:`bandit.spark` (on the executors) and :mod:`bandit.streaming`. A batch needs a context column
(``list``/``fixed_size_list`` of floats; ignored for a policy without ``n_features``), an arm-name column and a
``reward`` column. Rows are sorted into:

- pending: the reward is null (not joined yet) -- skipped;
- ``"bad_context"``: the context is null, has the wrong length or holds NaN/inf;
- ``"unknown_arm"``: the arm name is null or not one of the policy's arms;
- ``"bad_reward"``: the reward is NaN/inf or outside the policy's reward range (e.g. [0, 1] for LogisticTS);
- ``"missing_event_id"``: the batch has an ``event_id`` column and this row's is null (a decision without an id
  cannot have been joined to its outcome or de-duplicated: ``offline_eval`` quarantines it too);

(first failing check wins) and the remaining rows are returned as arrays ready for ``accumulate``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from offline_eval.schema import EVENT_ID

REASONS = ("bad_context", "unknown_arm", "bad_reward", "missing_event_id")


@dataclass
class Rows:
    """Good rows of a batch and the tallies of the others."""

    X: np.ndarray | None  # (n, d) float64, or None when the context is ignored
    arms: np.ndarray  # (n,) int64 indices into the arm list
    rewards: np.ndarray  # (n,) float64
    n_pending: int = 0
    rejected: dict[str, int] = field(default_factory=dict)


def _contexts(column: pa.Array, n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """``(ok (n,) bool, X (n, n_features) with garbage in the rows not ok)`` of a list-of-floats column."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    n = len(column)
    t = column.type
    is_list = pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)
    if not is_list or not (pa.types.is_floating(t.value_type) or pa.types.is_integer(t.value_type)):
        raise TypeError(f"the context column must hold lists of numbers, got Arrow type {t}")
    lists = column.cast(pa.large_list(pa.float64()))
    offsets = np.asarray(lists.offsets, dtype=np.int64)
    lengths = np.diff(offsets)
    values = lists.values.fill_null(np.nan).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
    ok = (lengths == n_features) & ~np.asarray(lists.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    starts = np.where(ok, offsets[:-1], 0)
    if values.size == 0:
        values = np.zeros(max(n_features, 1))
    index = np.minimum(starts[:, None] + np.arange(n_features)[None, :], values.size - 1)
    X = values[index] if n else np.empty((0, n_features))
    ok &= np.isfinite(X).all(axis=1)
    return ok, X


def rows_from_batch(
    batch: pa.RecordBatch | pa.Table,
    arm_names: Sequence[str],
    n_features: int | None,
    reward_range: tuple[float, float],
    *,
    context: str = "context",
    action_name: str = "action_name",
    reward: str = "reward",
) -> Rows:
    """Sort the rows of ``batch`` (module docstring) and return the good ones in table order."""
    for col in ((context,) if n_features is not None else ()) + (action_name, reward):
        if col not in batch.schema.names:
            raise ValueError(f"the data has no column {col!r} (columns: {batch.schema.names})")
    r_col = batch.column(reward)
    if isinstance(r_col, pa.ChunkedArray):
        r_col = r_col.combine_chunks()
    if not (pa.types.is_floating(r_col.type) or pa.types.is_integer(r_col.type) or pa.types.is_null(r_col.type)
            or pa.types.is_boolean(r_col.type)):
        raise TypeError(f"the {reward!r} column must be numeric, got Arrow type {r_col.type}")
    pending = np.asarray(r_col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    rewards = r_col.cast(pa.float64()).fill_null(0.0).to_numpy(zero_copy_only=False)
    live = ~pending
    rejected: dict[str, int] = {}
    X: np.ndarray | None = None
    if n_features is not None:
        ctx_ok, X = _contexts(batch.column(context), n_features)
        bad = live & ~ctx_ok
        rejected["bad_context"] = int(bad.sum())
        live &= ctx_ok
    names = batch.column(action_name)
    if isinstance(names, pa.ChunkedArray):
        names = names.combine_chunks()
    if not (pa.types.is_string(names.type) or pa.types.is_large_string(names.type)):
        raise TypeError(f"the {action_name!r} column must hold arm names (strings), got Arrow type {names.type}")
    index = pc.index_in(names, value_set=pa.array(list(arm_names), type=names.type))
    arm_ok = ~np.asarray(index.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    rejected["unknown_arm"] = int((live & ~arm_ok).sum())
    live &= arm_ok
    low, high = reward_range
    reward_ok = np.isfinite(rewards) & (rewards >= low) & (rewards <= high)
    rejected["bad_reward"] = int((live & ~reward_ok).sum())
    live &= reward_ok
    if EVENT_ID in batch.schema.names:
        id_ok = ~np.asarray(batch.column(EVENT_ID).is_null().to_numpy(zero_copy_only=False), dtype=bool)
        rejected["missing_event_id"] = int((live & ~id_ok).sum())
        live &= id_ok
    keep = np.flatnonzero(live)
    arms = index.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)[keep]
    return Rows(
        X=None if X is None else np.ascontiguousarray(X[keep]),
        arms=arms,
        rewards=np.ascontiguousarray(rewards[keep], dtype=np.float64),
        n_pending=int(pending.sum()),
        rejected={k: v for k, v in rejected.items() if v},
    )
