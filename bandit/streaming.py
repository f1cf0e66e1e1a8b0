"""Fit a policy from a decision-log directory larger than memory, by record batches (one machine).

:func:`fit_parquet` has two modes.

**Rewards already joined** (``outcomes=None``): the log's ``reward`` column holds the rewards (e.g. written by
``bandit.attribution.join_outcomes`` or an upstream job; null = not known yet). The part files are read in log order
by record batches of ``batch_rows`` rows (pyarrow), each batch becomes mergeable statistics (:mod:`bandit.stats`),
and the merged statistics are loaded into the policy: the policy ends up as after ``update_batch`` on the rows with
a reward, in log order (so also with ``discount < 1``). Rows whose ``event_id`` already appeared earlier in the log
are dropped first, as ``read_decision_log`` drops them (the first occurrence is kept; one ``DecisionLogWarning``):
the first pass hashes every id (:mod:`offline_eval.duplicate_ids`, exact, 8 bytes per row spilled beyond 4e6 rows)
and, only if an id repeats, runs again without the repeated rows. Bad rows are skipped and counted (see
:func:`bandit.spark.fit`, same rules). Memory: one record batch plus the statistics (``K D^2`` numbers).

**Outcomes to attribute** (``outcomes=`` a table, ``attribution_window=``): the streaming twin of
``policy.update_from_log(path, outcomes, attribution_window, now)``, with the same rules (duplicate ids, windows,
``combine``, rejections, the ledger of settled decisions; :mod:`bandit.attribution`) and the same result. The join
needs every row of one event id together, so the decisions are first split by a hash of ``event_id`` into
``ceil(rows / partition_rows)`` partitions (one streaming read, spilled to Arrow IPC files in a temporary directory:
disk ~ the log's size), then each partition is joined in memory with the existing attribution code, and its
resolved rows are spilled, sorted by decision time; the fit then reads them back (with ``discount < 1`` merging
the partitions into decision-time order, ties in log order: the order ``update_from_log`` learns in, which matters
for a discounted policy). Memory is therefore flat in the number of rows: one partition (``partition_rows``
decisions, default 1e6) plus the **outcomes table, which is held in memory** (outcomes are conversions: typically a
few percent of the decisions; a larger outcome table needs a bigger machine or Spark). The decisions of a log that
fits in one partition are not spilled.

Differences from the in-memory path, by design: the policy's statistics are applied once at the end, so a batch the
policy refuses as a whole (statistics that overflow or would lose precision) raises instead of being bisected into
``update_failed`` rows (run ``update_from_log`` on the offending slice to find them). Part files are read batch by
batch, so a part with a null in a required column, or one that turns unreadable half-way, has its good rows used
(bad rows rejected one by one) where ``read_decision_log`` skips the whole file. The report holds counts, not the
list of applied ids.
"""

from __future__ import annotations

import math
import os
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bandit import attribution as _attr
from bandit._arrow_rows import rows_from_batch
from bandit.stats import _check_writable, _policy_kind, fit_passes
from offline_eval.schema import (
    ACTION,
    ACTION_NAME,
    CONTEXT,
    EVENT_ID,
    REWARD,
    TIMESTAMP,
    DecisionLogWarning,
    PartInfo,
    scan_parts,
    warn_duplicates,
)

__all__ = ["StreamingUpdateReport", "fit_parquet"]

_JOIN_COLUMNS = (EVENT_ID, TIMESTAMP, CONTEXT, ACTION, ACTION_NAME)
_ROW = "__row__"


@dataclass(frozen=True, eq=False)
class StreamingUpdateReport:
    """Result of :func:`fit_parquet`.

    With outcomes, the fields of :class:`bandit.attribution.UpdateReport` (same meaning and, for the same data,
    the same values; ``event_ids`` is left out: it would grow with the log) plus the fit's figures; without, only
    the fit's figures are filled.

    Attributes
    ----------
    n_applied : int
        Rows learned from.
    n_passes : int
        Passes over the resolved rows (1; LogisticTS: its Newton passes).
    n_partitions : int
        Event-id hash partitions of the join (1: no spilling).
    n_expired_zero, n_pending, n_already_applied : int
        As in :class:`~bandit.attribution.UpdateReport`; ``n_pending`` counts null rewards without outcomes.
    rejected : pandas.DataFrame or dict
        With outcomes the ``rejected`` table of :class:`~bandit.attribution.UpdateReport` (rows numbered as in the
        log read by ``read_decision_log``); without, counts of skipped rows by reason.
    unknown_outcomes, late_outcomes : pandas.DataFrame or None
    now : pandas.Timestamp or None
    watermark : pandas.Timestamp or None
    """

    n_applied: int
    n_passes: int
    n_partitions: int = 1
    n_expired_zero: int = 0
    n_pending: int = 0
    n_already_applied: int = 0
    rejected: Any = field(default_factory=dict)
    unknown_outcomes: pd.DataFrame | None = None
    late_outcomes: pd.DataFrame | None = None
    now: pd.Timestamp | None = None
    watermark: pd.Timestamp | None = None


def _check_positive(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _log_parts(path: Any) -> list[PartInfo]:
    parts = scan_parts(path)
    if not parts:
        raise ValueError(f"{str(path)!r} holds no decision-log part files; check the path")
    first = parts[0]
    for info in parts[1:]:
        if info.arms != first.arms or info.n_features != first.n_features:
            raise ValueError(
                f"{info.path} was written for arms {info.arms} / {info.n_features} features, {first.path} for "
                f"{first.arms} / {first.n_features}; a log directory holds one arm list and one context length"
            )
    return parts


def _iter_batches(parts: list[PartInfo], columns: list[str], batch_rows: int) -> Iterator[pa.RecordBatch]:
    """Record batches of ``columns`` of every part, in log order (unreadable parts skipped with a warning)."""
    for info in parts:
        try:
            reader = pq.ParquetFile(info.path)
            yield from reader.iter_batches(batch_size=batch_rows, columns=columns)
        except (OSError, pa.ArrowException) as err:
            warnings.warn(f"skipping {str(info.path)!r}: its data is not readable ({err})", DecisionLogWarning,
                          stacklevel=3)


# ------------------------------------------------------------------------------------------------------------------
# mode 1: rewards already in the log
# ------------------------------------------------------------------------------------------------------------------


def _fit_joined(policy: Any, parts: list[PartInfo], batch_rows: int) -> StreamingUpdateReport:
    # The exact, bounded-memory duplicate-id scan of offline_eval's streaming reader: the rule (first occurrence
    # kept, before anything else) is the decision-log schema's, and the finder holds no estimator logic.
    from offline_eval.duplicate_ids import DuplicateFinder, DuplicateRows

    tallies: dict[str, Any] = {}
    columns = [EVENT_ID, CONTEXT, ACTION_NAME, REWARD] if policy.n_features is not None else [
        EVENT_ID, ACTION_NAME, REWARD]
    n_rows = sum(info.num_rows for info in parts)
    found: list[DuplicateRows] = []

    def ids_of(batch: pa.RecordBatch, start: int) -> pa.Array:
        ids = batch.column(EVENT_ID)
        if ids.null_count:  # a row without an id repeats nothing: give it a key no real id can have
            filler = pa.array([f"\x00row {start + i}" for i in range(batch.num_rows)], type=ids.type)
            ids = pc.if_else(ids.is_null(), filler, ids)
        return ids

    def accumulate(empty: Any, drop: DuplicateRows | None) -> tuple[Any, Any]:
        total, pending = empty, 0
        rejected: dict[str, int] = {}
        finder = DuplicateFinder(n_rows) if drop is None else None
        start = 0
        try:
            for batch in _iter_batches(parts, columns, batch_rows):
                m = batch.num_rows
                if finder is not None:
                    finder.add(ids_of(batch, start))
                elif (keep := drop.keep_mask(start, m)) is not None:  # type: ignore[union-attr]
                    batch = batch.filter(pa.array(keep))
                start += m
                rows = rows_from_batch(batch, empty.arm_names, empty.n_features, empty.reward_range)
                pending += rows.n_pending
                for reason, n in rows.rejected.items():
                    rejected[reason] = rejected.get(reason, 0) + n
                if len(rows.arms):
                    total = total.accumulate(rows.X, rows.arms, rows.rewards)
        except BaseException:
            if finder is not None:
                finder.close()
            raise
        tallies.update(pending=pending, rejected=dict(sorted(rejected.items())))
        return total, finder

    def reread_ids() -> Iterator[pa.Array]:
        start = 0
        for batch in _iter_batches(parts, [EVENT_ID], batch_rows):
            yield ids_of(batch, start)
            start += batch.num_rows

    def run_pass(empty: Any) -> Any:
        if found:
            return accumulate(empty, found[0])[0]
        total, finder = accumulate(empty, None)  # the first pass also hashes the ids
        duplicates = finder.finish(reread_ids)
        found.append(duplicates)
        if len(duplicates):  # rare: the pass counted repeated rows, so run it again without them
            total = accumulate(empty, duplicates)[0]
        return total

    report = fit_passes(policy, run_pass)
    if found and len(found[0]):
        warn_duplicates(len(found[0]), found[0].ids, stacklevel=3)
    return StreamingUpdateReport(report.n_rows, report.n_passes, n_pending=tallies["pending"],
                                 rejected=tallies["rejected"])


# ------------------------------------------------------------------------------------------------------------------
# mode 2: outcomes attributed by event-id hash partitions
# ------------------------------------------------------------------------------------------------------------------


def _partition_of(ids: np.ndarray, n_partitions: int) -> np.ndarray:
    """Stable partition of each event id (a non-string id goes to partition 0); the same for decisions and outcomes."""
    if n_partitions == 1:
        return np.zeros(len(ids), dtype=np.int64)
    is_str = np.fromiter((isinstance(e, str) for e in ids), dtype=bool, count=len(ids))
    keys = np.where(is_str, ids, "")
    hashed = pd.util.hash_array(keys.astype(object), categorize=False)
    return np.where(is_str, (hashed % np.uint64(n_partitions)).astype(np.int64), 0)


def _target_schema(n_features: int) -> pa.Schema:
    """The spilled decisions' schema. The context's elements stay nullable: parts of both forms of the log's list
    columns are cast to it at no cost, and an old part's null element reaches the join, which rejects its row as
    ``bad_context`` (a non-nullable target would carry the null under a type that says there is none)."""
    return pa.schema([
        (EVENT_ID, pa.string()), (TIMESTAMP, pa.timestamp("us", tz="UTC")),
        (CONTEXT, pa.list_(pa.float64(), n_features)), (ACTION, pa.int32()), (ACTION_NAME, pa.string()),
        (_ROW, pa.int64()),
    ])


def _canonical_batch(batch: pa.RecordBatch, schema: pa.Schema, first_row: int) -> pa.RecordBatch:
    columns = []
    for name in _JOIN_COLUMNS:
        col = batch.column(name)
        target = schema.field(name).type
        if not col.type.equals(target):
            col = col.cast(target, safe=name != TIMESTAMP)
        columns.append(col)
    columns.append(pa.array(np.arange(first_row, first_row + batch.num_rows, dtype=np.int64)))
    return pa.RecordBatch.from_arrays(columns, schema=schema)


class _Partitions:
    """The decisions split by event-id hash: in memory for one partition, else spilled to Arrow IPC files."""

    def __init__(self, n_partitions: int, schema: pa.Schema, directory: Path) -> None:
        self.n = n_partitions
        self.schema = schema
        self._memory: list[pa.RecordBatch] = []
        self._paths = [directory / f"partition-{p:05d}.arrow" for p in range(n_partitions)]
        self._writers = [] if n_partitions == 1 else [pa.ipc.new_stream(str(p), schema) for p in self._paths]

    def add(self, batch: pa.RecordBatch) -> None:
        if self.n == 1:
            self._memory.append(batch)
            return
        ids = batch.column(EVENT_ID).to_numpy(zero_copy_only=False)
        part = _partition_of(ids, self.n)
        order = np.argsort(part, kind="stable")
        bounds = np.searchsorted(part[order], np.arange(self.n + 1))
        taken = batch.take(pa.array(order))
        for p in range(self.n):
            if bounds[p + 1] > bounds[p]:
                self._writers[p].write_batch(taken.slice(bounds[p], bounds[p + 1] - bounds[p]))

    def close(self) -> None:
        for writer in self._writers:
            writer.close()

    def frame(self, p: int) -> pd.DataFrame:
        if self.n == 1:
            table = pa.Table.from_batches(self._memory, schema=self.schema)
        else:
            with pa.ipc.open_stream(str(self._paths[p])) as reader:
                table = reader.read_all()
            os.unlink(self._paths[p])
        return table.to_pandas()


def _read_stream(path: Path) -> Iterator[pa.RecordBatch]:
    with pa.ipc.open_stream(str(path)) as reader:
        yield from reader


def _ordered_batches(paths: list[Path]) -> Iterator[pa.RecordBatch]:
    """The rows of several Arrow streams, each sorted by (``time``, ``row``), merged into that global order.

    A k-way merge by chunks: every stream holds one record batch in memory; the rows of all buffers up to the
    smallest "last key" among them are emitted (sorted), which empties at least that buffer each round.
    """

    def refill(stream: Iterator[pa.RecordBatch]) -> pa.RecordBatch | None:
        return next((b for b in stream if b.num_rows), None)

    streams = [_read_stream(path) for path in paths]
    buffers = {i: b for i, s in enumerate(streams) if (b := refill(s)) is not None}
    while buffers:
        keys = {i: (b.column(0).to_numpy(), b.column(1).to_numpy()) for i, b in buffers.items()}
        bound_t, bound_r = min((int(t[-1]), int(r[-1])) for t, r in keys.values())
        pieces = []
        for i, (t, r) in keys.items():
            take = int(np.sum((t < bound_t) | ((t == bound_t) & (r <= bound_r))))  # a prefix: the stream is sorted
            batch = buffers[i]
            if take:
                pieces.append(batch.slice(0, take))
            if take < batch.num_rows:
                buffers[i] = batch.slice(take)
            elif (nxt := refill(streams[i])) is not None:
                buffers[i] = nxt
            else:
                del buffers[i]
        table = pa.Table.from_batches(pieces).combine_chunks()
        order = np.lexsort((table.column(1).to_numpy(), table.column(0).to_numpy()))
        yield from table.take(pa.array(order)).to_batches()


def _fit_with_outcomes(
    policy: Any, parts: list[PartInfo], outcomes: Any, attribution_window: Any, now: Any, combine: Any, grace: Any,
    batch_rows: int, partition_rows: int, spill_dir: Any,
) -> StreamingUpdateReport:
    arm_names = policy.arm_names
    window = _attr._as_window(attribution_window)
    grace_td = _attr._as_duration(grace, "grace", allow_zero=True)
    combine = _attr._as_combine(combine)
    out = _attr._outcomes_frame(outcomes)
    position = pd.Series(np.arange(len(out)), index=out.index) if out.index.is_unique else None
    now_us = _attr._as_now(now)
    now_ts = pd.Timestamp(now_us, unit="us", tz="UTC")
    contexts: Any = "ignore" if policy.n_features is None else int(policy.n_features)
    reward_range = (float(policy._reward_low), float(policy._reward_high))
    applied = policy._applied_event_ids
    n_rows = sum(info.num_rows for info in parts)
    n_partitions = max(1, math.ceil(n_rows / partition_rows))
    new_watermark = now_us - (window + grace_td) // pd.Timedelta(microseconds=1)
    if applied.watermark_us is not None:
        new_watermark = max(new_watermark, applied.watermark_us)
    schema = _target_schema(parts[0].n_features)
    out_ids = out[EVENT_ID].to_numpy(dtype=object)
    out_part = _partition_of(out_ids, n_partitions)

    with tempfile.TemporaryDirectory(prefix="upsell-bandit-fit-", dir=spill_dir) as tmp:
        partitions = _Partitions(n_partitions, schema, Path(tmp))
        row = 0
        try:
            for batch in _iter_batches(parts, list(_JOIN_COLUMNS), batch_rows):
                partitions.add(_canonical_batch(batch, schema, row))
                row += batch.num_rows
        finally:
            partitions.close()

        d = policy.n_features
        resolved_fields = [("time", pa.int64()), ("row", pa.int64()), ("arm", pa.int64()), ("reward", pa.float64())]
        if d is not None:
            resolved_fields.append(("x", pa.list_(pa.float64(), d)))
        resolved_schema = pa.schema(resolved_fields)
        resolved_paths = [Path(tmp) / f"resolved-{p:05d}.arrow" for p in range(n_partitions)]
        # with a discount the passes merge the partitions by (decision time, row): one buffer of this size each
        chunk = max(1024, batch_rows // n_partitions)
        dropped: list[np.ndarray] = []
        dropped_ids: list[np.ndarray] = []
        decision_rejects: list[pd.DataFrame] = []
        outcome_rejects: list[pd.DataFrame] = []
        unknown, late = [], []
        settle_ids: list[np.ndarray] = []
        settle_us: list[np.ndarray] = []
        counts = {"applied": 0, "expired": 0, "pending": 0, "settled": 0}
        for p in range(n_partitions):
            with pa.ipc.new_stream(str(resolved_paths[p]), resolved_schema) as sink:
                dec = partitions.frame(p)
                dec = dec.sort_values(_ROW, kind="stable").reset_index(drop=True)
                dup = pd.Index(dec[EVENT_ID]).duplicated(keep="first")
                dropped.append(dec[_ROW].to_numpy()[dup])
                dropped_ids.append(dec[EVENT_ID].to_numpy(dtype=object)[dup])
                dec = dec[~dup].reset_index(drop=True)
                raw_rows = dec[_ROW].to_numpy()
                o_rows = np.flatnonzero(out_part == p)
                res = _attr._resolve(dec, out.iloc[o_rows], window, now_ts, applied, combine, contexts, reward_range,
                                     arm_names)
                if applied.has_unknown_times:
                    applied.learn_times(res.seen_ids, res.seen_us)
                pub = res.public
                resolved = pub.resolved
                n = len(resolved)
                counts["applied"] += n
                counts["expired"] += int((resolved["resolved_by"] == "window_expired").sum())
                counts["pending"] += len(pub.pending_event_ids)
                counts["settled"] += pub.n_already_applied
                rej = pub.rejected
                is_dec = (rej["source"] == "decisions").to_numpy()
                d_rej = rej[is_dec].copy()
                d_rej["row"] = raw_rows[d_rej["row"].to_numpy()]
                o_rej = rej[~is_dec].copy()
                o_rej["row"] = o_rows[o_rej["row"].to_numpy()]
                decision_rejects.append(d_rej)
                outcome_rejects.append(o_rej)
                unknown.append(pub.unknown_outcomes)
                late.append(pub.late_outcomes)
                ids = resolved[EVENT_ID].to_numpy(dtype=object)
                for e, t in ((ids, res.resolved_us), (res.final_ids, res.final_us)):
                    keep = np.asarray(t) > new_watermark  # ids at or before the new watermark are covered by it
                    settle_ids.append(np.asarray(e, dtype=object)[keep])
                    settle_us.append(np.asarray(t)[keep])
                if n:  # resolved is sorted by decision time (stable in log order), as update_from_log learns it
                    columns = [
                        pa.array(res.resolved_us.astype(np.int64)),
                        pa.array(raw_rows[res.resolved_rows]),
                        pa.array(pd.Index(arm_names).get_indexer(resolved[ACTION_NAME]).astype(np.int64)),
                        pa.array(resolved[REWARD].to_numpy(dtype=np.float64)),
                    ]
                    if d is not None:
                        columns.append(pa.FixedSizeListArray.from_arrays(pa.array(res.X.ravel()), d))
                    sink.write_table(pa.Table.from_arrays(columns, schema=resolved_schema), max_chunksize=chunk)

        def run_pass(empty: Any) -> Any:
            total = empty
            batches = (_ordered_batches(resolved_paths) if policy.discount != 1.0
                       else (b for path in resolved_paths for b in _read_stream(path)))
            for batch in batches:
                X = None
                if d is not None:
                    X = batch.column(4).flatten().to_numpy(zero_copy_only=False).reshape(batch.num_rows, d)
                total = total.accumulate(X, batch.column(2).to_numpy(), batch.column(3).to_numpy())
            return total

        report = fit_passes(policy, run_pass)

    # the statistics are in: settle the applied and the finally rejected decisions, then move the watermark
    for e, t in zip(settle_ids, settle_us, strict=True):
        applied.add(e.tolist(), t.tolist())
    applied.advance(now_us - (window + grace_td) // pd.Timedelta(microseconds=1))
    wm = applied.watermark_us
    all_dropped = np.concatenate(dropped) if dropped else np.empty(0, dtype=np.int64)
    order = np.argsort(all_dropped, kind="stable")
    all_dropped = all_dropped[order]
    if len(all_dropped):  # the ids in the order of their first repeat in the log, as read_decision_log lists them
        ids = pd.unique(np.concatenate(dropped_ids)[order])
        warn_duplicates(len(all_dropped), [str(e) for e in ids], stacklevel=3)
    dec_rej = pd.concat(decision_rejects, ignore_index=True)
    # rows are numbered as in the log read by read_decision_log (duplicate rows removed)
    dec_rej["row"] = dec_rej["row"] - np.searchsorted(all_dropped, dec_rej["row"].to_numpy())
    rejected = pd.concat([dec_rej.sort_values("row", kind="stable"),
                          pd.concat(outcome_rejects, ignore_index=True).sort_values("row", kind="stable")],
                         ignore_index=True)
    return StreamingUpdateReport(
        n_applied=report.n_rows,
        n_passes=report.n_passes,
        n_partitions=n_partitions,
        n_expired_zero=counts["expired"],
        n_pending=counts["pending"],
        n_already_applied=counts["settled"],
        rejected=rejected,
        unknown_outcomes=_in_table_order(unknown, out, position),
        late_outcomes=_in_table_order(late, out, position),
        now=now_ts,
        watermark=None if wm is None else pd.Timestamp(wm, unit="us", tz="UTC"),
    )


def _in_table_order(frames: list[pd.DataFrame], out: pd.DataFrame, position: pd.Series | None) -> pd.DataFrame:
    """Concatenate per-partition subsets of the outcomes table in the table's row order."""
    frames = [f for f in frames if len(f)]
    if not frames:
        return out.iloc[:0]
    joined = pd.concat(frames)
    if position is None:  # a non-unique index: order by the index values as a fallback
        return joined.sort_index(kind="stable")
    return joined.iloc[np.argsort(position.loc[joined.index].to_numpy(), kind="stable")]


def fit_parquet(
    policy: Any,
    path: str | os.PathLike[str],
    outcomes: pd.DataFrame | str | os.PathLike[str] | None = None,
    attribution_window: timedelta | pd.Timedelta | str | None = None,
    now: datetime | np.datetime64 | str | None = None,
    *,
    combine: str = "sum",
    grace: timedelta | pd.Timedelta | str = "1D",
    batch_rows: int = 65_536,
    partition_rows: int = 1_000_000,
    spill_dir: str | os.PathLike[str] | None = None,
) -> StreamingUpdateReport:
    """Fit ``policy`` from a decision-log directory by record batches (module docstring for both modes).

    Parameters
    ----------
    policy : policy
        Any policy but VWPolicy; updated in place once everything has been read.
    path : path
        A decision-log directory (its ``part-*.parquet`` files in ``seq`` order) or one Parquet file.
    outcomes : DataFrame or path, optional
        The outcomes table (``event_id``, ``timestamp``, ``reward``); held in memory. None: use the log's
        ``reward`` column.
    attribution_window, now, combine, grace
        As in ``policy.update_from_log`` (required window with ``outcomes``; ``now`` defaults to the wall clock).
    batch_rows : int, default 65536
        Rows per record batch read.
    partition_rows : int, default 1_000_000
        Decisions per event-id hash partition of the join (the memory bound of mode 2).
    spill_dir : path, optional
        Where the partitions are spilled (default: the system's temporary directory); removed afterwards.

    Returns
    -------
    StreamingUpdateReport

    Raises
    ------
    TypeError, ValueError
        Bad arguments, a log without readable parts or with mixed arm lists, a policy that cannot be fitted from
        statistics (VWPolicy), statistics the policy refuses (nothing is changed then).
    """
    _policy_kind(policy)  # TypeError for a policy that cannot be fitted from statistics
    _check_writable(policy)
    batch_rows = _check_positive(batch_rows, "batch_rows")
    partition_rows = _check_positive(partition_rows, "partition_rows")
    parts = _log_parts(path)
    if outcomes is None:
        if attribution_window is not None:
            raise ValueError("attribution_window needs outcomes; without outcomes the log's reward column is used")
        return _fit_joined(policy, parts, batch_rows)
    if attribution_window is None:
        raise ValueError("attribution_window is required with outcomes, e.g. attribution_window='7D'")
    return _fit_with_outcomes(policy, parts, outcomes, attribution_window, now, combine, grace, batch_rows,
                              partition_rows, spill_dir)
