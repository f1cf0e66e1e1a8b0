"""Evaluate policies on a decision log larger than memory, batch by batch (:func:`evaluate_parquet`).

The log is read in record batches of ``batch_rows`` rows (a directory's part files row group by row group,
:func:`read_row_groups`; a caller's :mod:`pyarrow.dataset` with its scanner: the same batches); each batch becomes a
:class:`~offline_eval.LoggedData` (validated as :meth:`LoggedData.from_parquet` validates), the target policies'
probabilities are computed on it (``action_probabilities``), and the estimators' statistics are accumulated in
:class:`~offline_eval.accumulators.PolicyAccumulator` objects and merged. Memory is flat in the number of rows:
one batch, the accumulators (a few kilobytes, plus at most
:data:`~offline_eval.accumulators.RETAINED_MAX_ROWS` rows' base columns for the empirical-likelihood intervals
of small logs), the reward models' statistics, the duplicate-id scan's one bucket of hashes, and at most
``cache_bytes`` of reward-model columns (below).

Passes over the data: one for IPS / SNIPS; estimators with a reward model add the model's passes before it
(:mod:`offline_eval.reward_fit`): ridge one; the default model one of reward statistics (which both chooses it and
starts a logistic fit) plus one per Newton iteration of the logistic and value-aware models (the last, a step
within the tolerance, needs none); MRDR, per target, two of weights plus those of its weighted fit. Each pass
reads only the columns it needs: the evaluation pass reads the context always (to check it: a row with a non-finite
context is left out whatever the targets, as in memory), the event id only for the models' folds. The reward-model
passes keep the columns they decode (context, action, reward, folds, MRDR weights: ``8 d + 13`` bytes per row, plus
8 per MRDR target) in memory after their first pass when the whole log's fit in ``cache_bytes`` (default
:data:`MODEL_CACHE_BYTES`, 1 GiB: about 1.4 x 10^7 rows of 8 features), so the Newton passes cost their arithmetic
only, and the evaluation pass then takes the contexts and folds from memory too (it reads neither the context nor the
event id); larger logs are read again every pass.

Threads: the next batch is decoded (by the reading thread; the context and event id on a thread of their own when
the pass reads the context only to check it, :func:`read_context_apart`) while :data:`PASS_THREADS` worker threads
(the cores, at most 4) convert and accumulate the batches read (:func:`ordered_map`); in the evaluation pass (unless
it takes the kept contexts from memory) they also prepare them (drop the rows without a reward, check or quarantine
the rows: :meth:`_Log.map_batches`), so that the reading thread only decodes and hashes the ids.
The results are merged in log order, so the result does not depend on the threads. A policy object is called by one
thread at a time (its ``action_probabilities`` need not be thread-safe), unless it sets
``action_probabilities_thread_safe = True`` (:func:`scores_concurrently`; every ``bandit`` policy whose scoring is
pure does): then the threads score batches at once. During the passes BLAS calls use one thread
(:func:`one_blas_thread`) and a dataset's scanner decodes into the jemalloc pool (:func:`scan_memory_pool`).

Rows whose ``event_id`` already appeared earlier in the log are dropped (the first occurrence is kept) and
reported in one :class:`~offline_eval.schema.DecisionLogWarning`, as :func:`offline_eval.schema.read_log` does:
the first pass also hashes every id (:mod:`offline_eval.duplicate_ids`: exact, 8 bytes per row spilled to
temporary files beyond 4 x 10^6 rows); if an id repeats, the passes run again without the repeated rows.

The result is the table :func:`offline_eval.evaluate` returns on ``LoggedData.from_parquet(path)``, to
floating-point summation order (tested to 1e-9). Differences from reading the log into memory, by design:

* targets must be policy objects (``action_probabilities(X, eligible)``) or a single arm: per-row arrays of a log
  that does not fit in memory are not a thing;
* an explicitly requested ``"el"``, ``"bootstrap"`` or ``"bernstein"`` interval on more than
  :data:`~offline_eval.accumulators.RETAINED_MAX_ROWS` rows raises ``ValueError``; ``"auto"`` uses them exactly
  where ``evaluate`` does;
* scikit-learn reward models (:class:`~offline_eval.reward_models.SklearnRewardModel`) raise ``TypeError``: their
  fit needs all training rows at once.

Rows that break the decision-log contract (``invalid_rows``) are quarantined as in memory: the batches' validation
finds them at no extra cost, and then every pass is run again checking the rows it reads
(:func:`offline_eval.data.quarantine_batch`), so all passes leave out the same rows.
"""

from __future__ import annotations

import os
import queue
import threading
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from offline_eval import schema as S
from offline_eval.accumulators import Layout, PolicyAccumulator, evaluation_table
from offline_eval.data import (
    CHECKED_COLUMNS,
    IDENTITY_COLUMNS,
    InvalidRowsError,
    LoggedData,
    Quarantine,
    _arrow_matrix,
    _check_invalid_rows,
    _report_missing,
    arrow_actions,
    check_action_range,
    check_identities,
    quarantine_batch,
    replay_warnings,
    rows_with_reward,
)
from offline_eval.duplicate_ids import DuplicateFinder, DuplicateRows
from offline_eval.estimators import Estimator, resolve_target
from offline_eval.evaluate import _check_estimators
from offline_eval.reward_fit import (
    CrossFitPredictor,
    MapFn,
    ModelBatch,
    Sample,
    choose_model,
    combine,
    fit_cross_fit,
    fit_mrdr,
    reduce_in_memory,
    reward_stats,
)
from offline_eval.reward_models import MRDRRewardModel, RidgeRewardModel, fold_of

__all__ = ["DEFAULT_BATCH_ROWS", "MODEL_CACHE_BYTES", "evaluate_parquet"]

#: Rows per record batch when ``batch_rows`` is None.
DEFAULT_BATCH_ROWS = 1 << 18

#: Default memory for the reward-model columns kept between passes (``cache_bytes`` of :func:`evaluate_parquet`).
MODEL_CACHE_BYTES = 1 << 30

#: With the reward-model columns in memory, a logistic fit on every SAMPLE_STRIDE-th row starts the fit on all rows.
SAMPLE_STRIDE = 16

#: Worker threads that convert and accumulate the batches of a pass (:func:`ordered_map`): the machine's cores, at
#: most 4.
PASS_THREADS = max(1, min(os.cpu_count() or 1, 4))

_MODEL_COLUMNS = [S.EVENT_ID, S.CONTEXT, S.ACTION, S.REWARD]


def scan_memory_pool() -> Any:
    """The Arrow memory pool the scanners decode into: jemalloc where pyarrow has it, else the default pool.

    Decoding a batch allocates and frees tens of megabytes; pyarrow's default pool (mimalloc in the wheels) returns
    that memory to the OS and faults it in again batch after batch. Measured on the bench log (10^7 rows, the
    evaluation pass's columns and the context): 1.7 s of system CPU with the default pool, 0.8 s with jemalloc,
    the same user CPU.
    """
    import pyarrow as pa

    try:
        return pa.jemalloc_memory_pool()
    except NotImplementedError:  # a pyarrow built without jemalloc (ArrowNotImplementedError subclasses it)
        return pa.default_memory_pool()


#: Bytes a part file is read in by :func:`read_row_groups` (Parquet pages are read through a buffer of this size).
READ_BUFFER_BYTES = 1 << 20


def read_row_groups(files: Sequence[Path], columns: list[str], batch_rows: int, schema: Any) -> Iterator[Any]:
    """The record batches of ``columns`` of Parquet ``files``, row group after row group, each cut into batches of
    ``batch_rows`` rows (the last of a row group shorter), with the column types of ``schema``.

    These are the batches a :mod:`pyarrow.dataset` scanner yields with ``batch_size=batch_rows``, so the passes'
    results do not depend on the reader. It reads them for less CPU: the scanner decodes a whole row group at once
    (a 10^6-row part of the bench log: ~300 MB of buffers, grown as it goes) and reads each column chunk into one
    more buffer, which the allocator hands back to the OS and faults in again group after group.
    :meth:`pyarrow.parquet.ParquetFile.iter_batches` decodes one batch at a time, into buffers of one batch's size,
    from pages read through a :data:`READ_BUFFER_BYTES` buffer. Measured on the bench log (10^7 rows, IPS + SNIPS
    with a LinUCB target, 2 shared cores, medians of 17 runs in 5 sessions): 3.3 x 10^5 -> 0.8 x 10^5 page faults,
    system CPU 2.1 -> 1.0 s, user 4.0 -> 4.2 s, wall 3.2 -> 2.8 s, peak RSS 1.25 -> 0.66 GB. A batch's columns are decoded by the calling thread, or on pyarrow's threads when the
    machine has more cores than the passes have worker threads (:data:`PASS_THREADS`; on 2 cores the hand-off to
    pyarrow's threads cost more CPU than it saved).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    fields = [schema.field(name) for name in columns]
    decode_threads = (os.cpu_count() or 1) > PASS_THREADS
    for path in files:
        with pq.ParquetFile(path, pre_buffer=False, buffer_size=READ_BUFFER_BYTES) as parquet:
            for group in range(parquet.metadata.num_row_groups):
                for record_batch in parquet.iter_batches(batch_size=batch_rows, row_groups=[group], columns=columns,
                                                         use_threads=decode_threads):
                    if not record_batch.num_rows:
                        continue
                    record_batch = record_batch.select(columns)
                    if any(not c.type.equals(f.type) for c, f in zip(record_batch.columns, fields, strict=True)):
                        # e.g. a part with nullable list elements among new parts, a large_string id, float32 values
                        record_batch = pa.RecordBatch.from_arrays(
                            [c if c.type.equals(f.type) else c.cast(f.type) for c, f in
                             zip(record_batch.columns, fields, strict=True)], schema=pa.schema(fields))
                    yield record_batch


#: The columns :func:`read_context_apart` decodes on its own thread.
APART_COLUMNS = (S.CONTEXT, S.EVENT_ID)


def read_context_apart(files: Sequence[Path], columns: list[str], batch_rows: int, schema: Any) -> Iterator[Any]:
    """The batches of :func:`read_row_groups`, the context (and the event id) decoded on a thread of their own
    (:func:`prefetched`) while the calling thread decodes the other columns.

    The context is the widest column (``d`` doubles per row, a value and two levels each in Parquet). The evaluation
    pass of single-arm targets without a reward model reads it only to check it (a row with a non-finite context is
    left out, as in memory), and its worker threads have little to do: decoded with the other columns, the context
    made the reading thread the pass's critical path. Measured on the bench log (10^7 rows, 8 features, IPS + SNIPS
    for "always duo", 2 cores, interleaved runs started at load < 1, medians): 7.0 x 10^6 rows/s without reading the
    context (12 runs, CPU 2.2 s), 4.5 x 10^6 reading it on the reading thread (4 runs, CPU 2.9 s), 5.3 x 10^6 with
    this reader (12 runs, 4.7-6.0, CPU 3.3 s). Where the worker threads score a policy the extra thread cost more than
    it saved (LinUCB target: 4.1 -> 3.4 x 10^6 rows/s, 4 runs each), so only that pass uses it,
    on machines with more than one core, when ``columns`` holds the context and a column not in
    :data:`APART_COLUMNS`.
    """
    import pyarrow as pa

    apart = [c for c in columns if c in APART_COLUMNS]
    others = [c for c in columns if c not in APART_COLUMNS]
    if S.CONTEXT not in apart or not others or (os.cpu_count() or 1) < 2:
        yield from read_row_groups(files, columns, batch_rows, schema)
        return
    output = pa.schema([schema.field(c) for c in columns])
    with prefetched(read_row_groups(files, apart, batch_rows, schema)) as apart_batches:
        for batch in read_row_groups(files, others, batch_rows, schema):
            aside = next(apart_batches)
            arrays = [aside.column(apart.index(c)) if c in apart else batch.column(others.index(c)) for c in columns]
            yield pa.RecordBatch.from_arrays(arrays, schema=output)


@contextmanager
def prefetched(items: Iterator[Any], depth: int = 2) -> Iterator[Iterator[Any]]:
    """A context whose value iterates ``items``, drawn ahead (at most ``depth`` items) on a thread of its own.

    An exception of ``items`` is raised where its item would have been yielded. Leaving the context stops the thread
    (it draws at most one more item).
    """
    ahead: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                ahead.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def draw() -> None:
        try:
            for item in items:
                if not put(("item", item)):
                    return
        except BaseException as err:  # handed to the consumer
            put(("error", err))
            return
        put(("end", None))

    def drawn() -> Iterator[Any]:
        while True:
            kind, value = ahead.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value

    thread = threading.Thread(target=draw, name="offline_eval-prefetch", daemon=True)
    thread.start()
    try:
        yield drawn()
    finally:
        stop.set()
        thread.join()


def ordered_map(fn: Callable[[Any], Any], items: Iterable[Any], threads: int | None = None) -> Iterator[Any]:
    """``fn(item)`` for every item, computed on worker threads and yielded in the items' order.

    The items are drawn on the calling thread, at most ``threads + 1`` ahead of the result it is waiting for
    (bounded memory). The per-batch work releases the GIL in its large parts (Arrow decoding and conversion, numpy,
    the ``nogil`` kernels), so on two cores one batch is converted and accumulated while the next is decoded and
    the one before is merged. An exception of ``fn`` is raised when its item's turn comes; results of later items
    are dropped. ``threads`` defaults to :data:`PASS_THREADS` (1: inline, no thread).
    """
    threads = PASS_THREADS if threads is None else threads
    if threads <= 1:
        yield from map(fn, items)
        return
    pending: deque[Future[Any]] = deque()
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="offline_eval-pass") as pool:
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) > threads:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def _reading_both_forms(dataset: Any) -> Any:
    """A caller's Parquet dataset re-typed to read parts of both forms of the list columns (non-nullable and nullable
    elements, :func:`offline_eval.schema.with_nullable_items`).

    ``pyarrow.dataset.dataset(directory)`` takes its schema from the first file: when that is a new part, Arrow would
    cast an older part's null element into a non-nullable type. Other datasets are returned as they are.
    """
    import pyarrow.dataset as ds

    schema = S.with_nullable_items(dataset.schema)
    if schema.equals(dataset.schema) or not isinstance(dataset, ds.FileSystemDataset):
        return dataset
    return ds.FileSystemDataset(list(dataset.get_fragments()), schema, dataset.format, dataset.filesystem,
                                dataset.partition_expression)


class _Restart(Exception):
    """The first pass found duplicate event ids: every pass is run again without them."""


class _Log:
    """A decision log as a pyarrow dataset in the canonical schema, its arm list, and its duplicated rows."""

    def __init__(self, path: Any) -> None:
        import pyarrow.dataset as ds

        #: Rows to drop for a repeated event id (:mod:`offline_eval.duplicate_ids`); None until the first pass ends.
        self.duplicates: DuplicateRows | None = None
        #: Every pass quarantines rows that break the contract (:func:`~offline_eval.data.quarantine_batch`); set
        #: once a pass met such a row (:func:`evaluate_parquet`).
        self.quarantine = False
        #: What the last pass quarantined.
        self.quarantined = Quarantine()
        #: The part files, read row group by row group (:meth:`_record_batches`); None for a caller's dataset.
        self.files: list[Path] | None = None
        #: Columns read only to quarantine their null rows (:func:`~offline_eval.data.missing_identities`) beyond
        #: :data:`~offline_eval.data.CHECKED_COLUMNS`: a caller's dataset's timestamp and policy version. The parts
        #: of a log directory hold no null there (:func:`~offline_eval.schema.scan_parts` skips a part that does).
        self.identity_columns: list[str] = []
        if isinstance(path, ds.Dataset):
            arms = S.arms_from_schema(path.schema)
            if arms is None:
                raise ValueError(
                    f"the dataset's schema carries no arm list ({S.META_ARMS!r} metadata); write the log with "
                    "bandit.DecisionLog or LoggedData.to_parquet"
                )
            self.dataset, self.arms = _reading_both_forms(path), arms
            self.identity_columns = [c for c in IDENTITY_COLUMNS if c != S.EVENT_ID and c in self.dataset.schema.names]
            return
        if not isinstance(path, str | os.PathLike) and not (
            isinstance(path, Sequence) and not isinstance(path, bytes)
        ):
            raise TypeError(
                f"path must be a decision-log directory, a Parquet file, a list of files or a pyarrow dataset, got "
                f"{type(path).__name__}"
            )
        parts = S.scan_parts(path if isinstance(path, str | os.PathLike) else [Path(p) for p in path])
        if not parts:
            raise ValueError(f"{str(path)!r} holds no decision-log part files")
        first = parts[0]
        for info in parts[1:]:
            if info.arms != first.arms or info.n_features != first.n_features:
                raise ValueError(
                    f"{info.path} was written for arms {info.arms} and {info.n_features} features, {first.path} for "
                    f"{first.arms} and {first.n_features}; a log directory holds one arm list and context length"
                )
        # the list columns' elements typed nullable where some part types them so (old and new parts mixed)
        schema = S.with_nullable_items(S.decision_log_schema(first.n_features, first.arms),
                                       frozenset().union(*(info.nullable_items for info in parts)))
        self.dataset = ds.dataset([str(p.path) for p in parts], format="parquet", schema=schema)
        self.arms = list(first.arms)
        self.files = [p.path for p in parts]

    def _record_batches(self, columns: list[str], batch_rows: int, retained: bool = False, apart: bool = False
                        ) -> Iterator[Any]:
        """The non-empty record batches of ``columns``, typed as the dataset's schema: ``batch_rows`` rows each, the
        last of every row group shorter (a batch never spans row groups).

        The part files of a log directory or file list are decoded batch by batch (:func:`read_row_groups`; with
        ``apart``, the context on a thread of its own: :func:`read_context_apart`), unless
        the caller keeps the batches' columns (``retained``: a reward-model pass whose columns stay in memory):
        their buffers are then never reused, and the scanner's jemalloc pool provides fresh memory for less CPU
        (measured, DR with a ridge model at 10^7 rows: +8 % CPU read batch by batch). A caller's dataset is always
        scanned (:meth:`pyarrow.dataset.Dataset.scanner`); the scanner cuts the same batches.
        """
        if self.files is not None and not retained:
            read = read_context_apart if apart else read_row_groups
            yield from read(self.files, columns, batch_rows, self.dataset.schema)
            return
        # little readahead: memory stays at a few batches whatever the number of files (the defaults, 16 batches and
        # 4 files ahead, held ~1.8 GB on a 10-file log), and on a busy machine it is no slower
        scanner = self.dataset.scanner(columns=columns, batch_size=batch_rows, batch_readahead=2, fragment_readahead=1,
                                       memory_pool=scan_memory_pool())
        for record_batch in scanner.to_batches():
            if record_batch.num_rows:
                yield record_batch

    def batches(self, columns: list[str], batch_rows: int, retained: bool = False, apart: bool = False
                ) -> Iterator[tuple[Any, int]]:
        """Record batches as one-chunk tables (rows with a reward only, repeated event ids dropped) and the number
        of rows dropped for a missing reward; ``retained``: the caller keeps their columns, ``apart``: the context is
        decoded on a thread of its own (:meth:`_record_batches`).

        The first complete pass also hashes the event ids (:class:`~offline_eval.duplicate_ids.DuplicateFinder`);
        if some id repeats, it warns as :func:`~offline_eval.schema.read_log` does and raises :class:`_Restart`
        at its end (the pass saw the repeated rows), and every later pass drops them. It also checks that no row
        misses its event id (nor, in a caller's dataset, its timestamp or policy version): such a row breaks the contract
        (:class:`~offline_eval.data.InvalidRowsError`, so the passes run again quarantining).
        """
        for table, _, n_missing in self._mapped(lambda table, start: table, columns, batch_rows, retained, apart, 1):
            yield table, n_missing

    def map_batches(self, fn: Callable[[Any, int], Any], columns: list[str], batch_rows: int, apart: bool = False
                    ) -> Iterator[tuple[Any, int, int]]:
        """``fn(table, position)`` of every non-empty table of :meth:`batches` (``position``: of the batch's first
        row in the log, dropped rows counted), its rows and the rows dropped for a missing reward, in log order.

        Unlike :meth:`batches`, whose caller's thread prepares each batch after decoding it, the calling thread only
        decodes the batches (:meth:`_record_batches`) and hashes their ids for the duplicate scan; the worker
        threads of :func:`ordered_map` prepare them (repeated ids, missing rewards, checks or quarantine) and apply
        ``fn``. The decoding thread is the pass's critical path (bench log, 10^7 rows, LinUCB target, 2 cores: 2.4
        of the pass's 4.6 CPU-seconds, the pass 2.6 s). Measured there, interleaved (12 pairs): that thread 2.36 ->
        2.28 CPU-s, the pass 2.61 -> 2.57 s (median; mean 2.67 -> 2.56 s). Hashing the ids on the worker threads
        too took that thread down to 2.2 CPU-s but cost the workers 0.4 CPU-s of page faults (the hashes' memory
        is fresh on their threads): 3.1 s. The duplicate scan, :attr:`quarantined` and the results are those of
        :meth:`batches`.
        """
        return self._mapped(lambda table, start: fn(table, start) if table.num_rows else None, columns, batch_rows,
                            False, apart, None)

    def _mapped(self, fn: Callable[[Any, int], Any], columns: list[str], batch_rows: int, retained: bool, apart: bool,
                threads: int | None) -> Iterator[tuple[Any, int, int]]:
        """:meth:`batches` and :meth:`map_batches`: ``fn(table, position)`` of every prepared table (empty ones
        too), its rows and the rows dropped for a missing reward, in log order, computed by :func:`ordered_map`
        with ``threads`` (1: on the calling thread, as it reads)."""
        columns, finder = self._pass_columns(columns)

        def mapped(item: tuple[Any, int]) -> tuple[Any, int, int, Quarantine | None]:
            record_batch, start = item
            table, n_missing, found = self._prepared(record_batch, start)
            return fn(table, start), table.num_rows, n_missing, found

        def positioned() -> Iterator[tuple[Any, int]]:
            start = 0
            for record_batch in self._record_batches(columns, batch_rows, retained, apart):
                if finder is not None:
                    finder.add(record_batch.column(S.EVENT_ID))
                yield record_batch, start
                start += record_batch.num_rows

        try:
            for result, m, n_missing, found in ordered_map(mapped, positioned(), threads):
                if found is not None:
                    self.quarantined = self.quarantined.merge(found)
                yield result, m, n_missing
            if finder is not None:
                self._finish(finder, batch_rows)
                finder = None
        finally:
            if finder is not None:
                finder.close()

    def _pass_columns(self, columns: list[str]) -> tuple[list[str], DuplicateFinder | None]:
        """The columns a pass reads (``columns`` plus those the duplicate scan and the quarantine need), and the
        duplicate scan of the first pass (None after it); resets :attr:`quarantined` for a quarantining pass."""
        finder = None
        if self.duplicates is None:
            finder = DuplicateFinder(self.dataset.count_rows())
            columns = [*columns, *(c for c in (S.EVENT_ID, *self.identity_columns) if c not in columns)]
        if self.quarantine:
            checked = (*CHECKED_COLUMNS, *self.identity_columns)
            columns = [*columns, *(c for c in checked if c not in columns)]
            self.quarantined = Quarantine()
        return columns, finder

    def _prepared(self, record_batch: Any, start: int) -> tuple[Any, int, Quarantine | None]:
        """A record batch of the log's rows ``start`` onwards as a pass uses it: a one-chunk table of its rows with
        a reward and without a repeated event id (none is dropped in the first pass, which hashes the ids on the
        reading thread), the rows dropped for a missing reward, and what it quarantined (None unless the pass
        quarantines). Reads only the log's state: the worker threads run it at once."""
        import pyarrow as pa

        table = pa.Table.from_batches([record_batch])
        if self.duplicates is not None and len(self.duplicates):
            keep = self.duplicates.keep_mask(start, record_batch.num_rows)
            if keep is not None:
                table = table.filter(pa.array(keep))
        table, n_missing = rows_with_reward(table)
        found = None
        if self.quarantine and table.num_rows:
            table, _, found = quarantine_batch(table, self.arms)
        else:  # before a reward-model pass indexes its statistics by the action, or hashes folds from ids
            check_action_range(table, len(self.arms))
            check_identities(table)
        return table, n_missing, found

    def _finish(self, finder: DuplicateFinder, batch_rows: int) -> None:
        """End the first pass's duplicate scan: set :attr:`duplicates`; when some id repeats, warn and raise
        :class:`_Restart`."""
        self.duplicates = finder.finish(
            lambda: (b.column(S.EVENT_ID) for b in self._record_batches([S.EVENT_ID], batch_rows))
        )
        if len(self.duplicates):
            S.warn_duplicates(len(self.duplicates), self.duplicates.ids, stacklevel=5)
            raise _Restart


def _model_batch(batch: Any, model: Any | None) -> ModelBatch:
    """Fitting inputs of a record batch, with the model's folds (zeros without a model)."""
    m = batch.num_rows
    X = np.ascontiguousarray(_arrow_matrix(batch, S.CONTEXT, np.float64))
    action = arrow_actions(batch)
    reward = batch.column(S.REWARD).to_numpy().astype(np.float64)
    folds = np.zeros(m, dtype=np.int64) if model is None else model.folds(m, batch.column(S.EVENT_ID))
    return ModelBatch(X, action, reward, folds)


def _logged_data(batch: Any, arms: list[str], X: np.ndarray | None = None) -> LoggedData:
    """A validated LoggedData of a record batch (no event ids: folds are hashed from the Arrow column); its contexts
    are ``X`` (the batch's rows' contexts kept from an earlier pass) when given."""
    return LoggedData._from_arrow(batch, arms, identities=False, context=X)


def one_blas_thread() -> AbstractContextManager[Any]:
    """A context in which BLAS calls use one thread (:func:`threadpoolctl.threadpool_limits`), for the passes.

    The per-batch statistics make a few small BLAS calls per batch (e.g. ``w @ w``); OpenBLAS runs each on all its
    threads, whose workers then spin-wait for the next call and take the core that decodes the next Parquet batch
    (measured on 2 cores, 10^7 rows of IPS + SNIPS for an arm target: 4.3 s wall with the spinning thread, 1.6 s
    without). The limit is process-wide while the context is open, and restored when it closes.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def scores_concurrently(target: Any) -> bool:
    """Whether a policy object opts in to concurrent ``action_probabilities`` calls: its class sets
    ``action_probabilities_thread_safe = True`` (the bool itself: any other value, or none, means one call at a
    time).

    The opt-in is the class's own statement that scoring reads the object's state and changes nothing, so that the
    pass's worker threads may score several batches of the log at once (each call on its own arrays). ``bandit``
    policies set it where it holds (:attr:`bandit.policies.base.Policy.action_probabilities_thread_safe`); a target
    that does not say so is called under a lock, whatever it is. It is read on the class, not the instance: a
    wrapper that forwards attribute lookups to a policy (``__getattr__``) wraps its calls in code of its own, and
    does not inherit the policy's opt-in.
    """
    return getattr(type(target), "action_probabilities_thread_safe", False) is True


def is_arm(target: Any) -> bool:
    """Whether a target is a single arm (a name or an index)."""
    return isinstance(target, str | int | np.integer) and not isinstance(target, bool)


def check_policies(policies: Any, where: str) -> dict[str, Any]:
    """The policies mapping, checked: str names to policy objects (``action_probabilities``) or single arms."""
    if not isinstance(policies, Mapping) or not policies:
        raise TypeError(
            "policies must be a non-empty mapping of name -> policy, e.g. {'new': policy, 'always duo': 'duo'}"
        )
    for name, target in policies.items():
        if not isinstance(name, str):
            raise TypeError(f"policies must be keyed by str names, got key {name!r}")
        if not is_arm(target) and not callable(getattr(target, "action_probabilities", None)):
            raise TypeError(
                f"policies[{name!r}] must be a policy object with action_probabilities(X, eligible) or a single arm "
                f"for {where}, got {type(target).__name__}; per-row probability arrays need the rows in memory "
                "(use offline_eval.evaluate)"
            )
    return dict(policies)


def arm_indices(targets: dict[str, Any], arms: list[str]) -> dict[str, Any]:
    """Targets given as arm names replaced by their index (one lookup instead of one per row); unknown names are
    left for :func:`~offline_eval.estimators.resolve_target` to reject with its message."""
    return {name: arms.index(t) if isinstance(t, str) and t in arms else t for name, t in targets.items()}


ReduceFor = Callable[..., Callable[[MapFn, tuple[str, ...]], list[np.ndarray]]]


def fit_models(layout: Layout, reduce_for: ReduceFor, n_actions: int, arms: list[str], targets: Sequence[str],
               sample_for: Callable[..., Sample] | None = None) -> list[dict[str, CrossFitPredictor]]:
    """Choose and fit every reward model of the layout: for each, the fitted predictor of every target (one fit
    shared by all, except MRDR: one per target).

    ``reduce_for(model)`` is a reduce whose batches carry that model's folds (``reduce_for(None)``: a pass that
    ignores folds); ``reduce_for(model, name)`` one whose batches also carry target ``name``'s raw MRDR weights.
    ``sample_for(model[, name])``: the ``sample`` of :func:`~offline_eval.reward_fit.fit_cross_fit` for that reduce.
    """

    def sample(*key: Any) -> Sample | None:
        return None if sample_for is None else sample_for(*key)

    fitted = []
    for model in layout.models:
        if type(model) is MRDRRewardModel:
            fitted.append({name: fit_mrdr(model, reduce_for(model, name), n_actions, sample(model, name))
                           for name in targets})
            continue
        stats = None
        if model is None:
            # the default models share the folds of RidgeRewardModel(): one pass of statistics in those folds both
            # chooses the model and starts a logistic fit
            probe = RidgeRewardModel()
            stats = reward_stats(reduce_for(probe), n_actions, int(probe.n_folds))
            chosen = choose_model(None, reduce_for(None), n_actions, stats)
            if (chosen.n_folds, chosen.fold_seed_) != (probe.n_folds, probe.fold_seed_):
                stats = None
        else:
            chosen = choose_model(model, reduce_for(None), n_actions)
        predictor = fit_cross_fit(chosen, reduce_for(chosen), n_actions, arms, stats, sample(chosen))
        fitted.append(dict.fromkeys(targets, predictor))
    return fitted


class Predictions:
    """The reward matrices of a batch for each target: ``predictions(name)`` (each fit predicted once).

    The rows' folds are hashed from the batch's event ids, or taken from ``folds`` ((n_folds, fold_seed) -> (m,)
    int64, kept from an earlier pass) where it has them.
    """

    def __init__(self, predictors: list[dict[str, CrossFitPredictor]], data: LoggedData, batch: Any,
                 folds: Mapping[tuple[int, int], np.ndarray] | None = None) -> None:
        self.predictors, self.data, self.batch = predictors, data, batch
        self.folds = folds or {}
        self.done: dict[int, np.ndarray] = {}

    def __call__(self, name: str) -> list[np.ndarray]:
        out = []
        for per_target in self.predictors:
            p = per_target[name]
            if id(p) not in self.done:
                folds = self.folds.get((p.n_folds, p.fold_seed))
                if folds is None:
                    folds = fold_of(self.batch.column(S.EVENT_ID), p.n_folds, p.fold_seed)
                self.done[id(p)] = p.predict(self.data.context, folds)
            out.append(self.done[id(p)])
        return out


def mrdr_weights_of(data: LoggedData, target: Any, name: str) -> np.ndarray:
    """The raw MRDR weights ``pi(a_i|x_i) (1 - p_i) / p_i^2`` of a batch's rows for a target (before the floor and
    normalisation of :func:`offline_eval.reward_models.mrdr_weights`)."""
    resolved = resolve_target(data, target, name=name)
    propensity = data.propensity
    prob = resolved.weights * propensity
    return np.asarray(prob * (1.0 - propensity) / propensity**2, dtype=np.float64)


def evaluate_parquet(
    path: Any,
    policies: Mapping[str, Any],
    estimators: Sequence[Estimator] | None = None,
    batch_rows: int | None = None,
    *,
    cache_bytes: int = MODEL_CACHE_BYTES,
    invalid_rows: str = "quarantine",
) -> pd.DataFrame:
    """Evaluate policies on a Parquet decision log, batch by batch: the table of :func:`offline_eval.evaluate`.

    Parameters
    ----------
    path : str, path-like, list of paths or pyarrow.dataset.Dataset
        A log directory (its ``part-*.parquet`` files in sequence order, as :meth:`LoggedData.from_parquet` reads
        it), one Parquet file, a list of files, or a dataset in the decision-log schema (with its arm metadata).
    policies : mapping of str to policy
        Name -> a policy object with ``action_probabilities(X, eligible)`` (e.g. a ``bandit`` policy) or a single
        arm (index or name).
    estimators : sequence of Estimator, optional
        Default :func:`offline_eval.evaluate.default_estimators`. Reward models must be ridge, logistic,
        value-aware or None (the default for the rewards).
    batch_rows : int, optional
        Rows per record batch (default :data:`DEFAULT_BATCH_ROWS`); memory grows with it, not with the log.
    cache_bytes : int
        Memory the reward models' passes may use to keep the columns they read (context, action, reward, folds:
        ``8 d + 13`` bytes per row) after their first pass instead of reading them again (module docstring);
        default :data:`MODEL_CACHE_BYTES`, 0 = always read. Logs whose columns do not fit are read every pass.
    invalid_rows : {"quarantine", "raise"}
        Rows that break the decision-log contract are left out as :meth:`LoggedData.from_parquet` leaves them out
        (the same rows: one warning, counts per reason in the table's ``attrs["quarantined"]``), or raise
        ``ValueError`` naming the first (``"raise"``). The check is the validation each batch gets anyway; the
        first batch that fails it starts the passes again with every pass quarantining (reading the checked
        columns), so a log with bad rows costs up to one more run.

    Returns
    -------
    pandas.DataFrame
        The :func:`offline_eval.evaluate` table (same rows, columns and recommended estimator). Rows with a missing
        reward are dropped with one ``UserWarning``; diagnostic warnings are raised as ``evaluate`` raises them.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from offline_eval import LoggedData, IPS, SNIPS
    >>> rng = np.random.default_rng(0)
    >>> n = 5000
    >>> a = rng.integers(0, 2, n)
    >>> data = LoggedData(rng.normal(size=(n, 2)), a, (rng.random(n) < 0.1 + 0.1 * a).astype(float),
    ...                   np.full(n, 0.5), probabilities=np.full((n, 2), 0.5), eligible=np.ones((n, 2), bool),
    ...                   timestamp=np.arange(n).astype("datetime64[s]"), event_id=[f"e{i}" for i in range(n)],
    ...                   action_names=["solo", "duo"])
    >>> tmp = tempfile.TemporaryDirectory()
    >>> _ = data.to_parquet(tmp.name + "/part-0.parquet")
    >>> table = evaluate_parquet(tmp.name, {"always duo": "duo"}, [IPS(), SNIPS()], batch_rows=1000)
    >>> table[["estimator", "value"]].round(3)
      estimator  value
    0       IPS  0.202
    1     SNIPS  0.201
    >>> from offline_eval import evaluate
    >>> in_memory = evaluate(LoggedData.from_parquet(tmp.name), {"always duo": "duo"}, [IPS(), SNIPS()])
    >>> bool(np.allclose(table[["value", "ci_low", "ci_high"]], in_memory[["value", "ci_low", "ci_high"]], rtol=1e-9))
    True
    >>> tmp.cleanup()
    """
    ests = _check_estimators(estimators)
    targets = check_policies(policies, "evaluate_parquet")
    if batch_rows is None:
        batch_rows = DEFAULT_BATCH_ROWS
    if isinstance(batch_rows, bool) or not isinstance(batch_rows, int | np.integer) or batch_rows < 1:
        raise ValueError(f"batch_rows must be a positive int (rows per record batch), got {batch_rows!r}")
    log = _Log(path)
    targets = arm_indices(targets, log.arms)
    layout = Layout.of(ests)
    if isinstance(cache_bytes, bool) or not isinstance(cache_bytes, int | np.integer) or cache_bytes < 0:
        raise ValueError(f"cache_bytes must be an int >= 0 (bytes), got {cache_bytes!r}")
    _check_invalid_rows(invalid_rows)
    with one_blas_thread():
        while True:  # at most three runs: each restart sets what the next run drops
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    accs = _passes(log, layout, targets, int(batch_rows), int(cache_bytes))
                    done = True
                except _Restart:  # the first pass met repeated event ids (and warned): again without them
                    done = False
                except InvalidRowsError:  # a batch broke the contract: again, every pass quarantining the same rows
                    if invalid_rows == "raise" or log.quarantine:
                        replay_warnings(caught)
                        raise
                    log.quarantine = True
                    continue  # the next run repeats this one's warnings
                except BaseException:
                    replay_warnings(caught)
                    raise
            replay_warnings(caught)
            if done:
                break
    if accs is None:
        raise ValueError(f"the log {str(path)!r} has no rows with a reward")
    log.quarantined.warn(stacklevel=2)
    table = evaluation_table(accs)
    table.attrs["quarantined"] = dict(log.quarantined.counts)
    return table


def eval_columns(layout: Layout, kept: bool = False) -> list[str]:
    """The columns the evaluation pass reads: the context always (a row with a non-finite context breaks the log
    contract whatever the targets, and is left out as in memory), the event id only for the reward models' folds;
    neither when the model passes ``kept`` them (:meth:`_ModelColumns.kept_rows`: the kept contexts are validated
    with their batch)."""
    columns = [S.ACTION, S.REWARD, S.PROPENSITY, S.PROBABILITIES, S.ELIGIBLE]
    if kept:
        return columns
    columns.append(S.CONTEXT)
    if layout.models:
        columns.append(S.EVENT_ID)
    return columns


class _ModelColumns:
    """The reward-model passes' batches: read from the log, or from memory once a pass has read them all and they
    fit in ``budget`` bytes (the context, action and reward, the folds of each model seen and the MRDR weights of
    each target seen)."""

    def __init__(self, log: _Log, batch_rows: int, budget: int, targets: Mapping[str, Any],
                 locks: Mapping[str, threading.Lock]) -> None:
        self.log, self.batch_rows, self.targets, self.locks = log, batch_rows, targets, locks
        context = log.dataset.schema.field(S.CONTEXT).type
        d = context.list_size if hasattr(context, "list_size") else 0
        self.n_rows = log.dataset.count_rows()
        self.row_bytes = 8 * d + 4 + 8  # float64 context, int32 action, float64 reward
        self.budget = budget
        self.base: list[tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None
        self.folds: dict[tuple[int, int], list[np.ndarray]] = {}
        self.weights: dict[str, list[np.ndarray]] = {}

    def release(self) -> None:
        """Free the kept columns."""
        self.base = None
        self.folds.clear()
        self.weights.clear()

    def kept_rows(self, keys: Sequence[tuple[int, int]]) -> _KeptRows | None:
        """The kept contexts and the folds of ``keys`` ((n_folds, fold_seed) of the fitted models) for the
        evaluation pass, which then reads neither the context nor the event id (None when they are not all kept);
        the rest of what is kept is freed."""
        base, folds = self.base, {key: self.folds[key] for key in keys if key in self.folds}
        self.release()
        if base is None or len(folds) < len(set(keys)):
            return None
        return _KeptRows([X for X, _, _ in base], folds)

    def _fits(self, extra_bytes: int) -> bool:
        """Whether what is kept plus ``extra_bytes`` per row fits in the budget."""
        kept = (0 if self.base is None else self.row_bytes) + len(self.folds) + 8 * len(self.weights)
        return self.n_rows * (kept + extra_bytes) <= self.budget

    def kept(self, model: Any, target: str | None = None, stride: int = 1) -> Iterator[ModelBatch] | None:
        """The batches from memory (every ``stride``-th row), or None when they are not all kept."""
        key = None if model is None else (int(model.n_folds), int(model.fold_seed_))
        if self.base is None or (key is not None and key not in self.folds) or (
                target is not None and target not in self.weights):
            return None
        base, folds = self.base, None if key is None else self.folds[key]
        weights = None if target is None else self.weights[target]
        step = slice(None, None, stride)

        def rows() -> Iterator[ModelBatch]:
            for i, (X, action, reward) in enumerate(base):
                m = len(reward[step])
                fold = np.zeros(m, dtype=np.int64) if folds is None else folds[i][step].astype(np.int64)
                yield ModelBatch(X if stride == 1 else np.ascontiguousarray(X[step]), action[step].astype(np.int64),
                                 reward if stride == 1 else np.ascontiguousarray(reward[step]), fold,
                                 None if weights is None else np.ascontiguousarray(weights[i][step]))

        return rows()

    def sample(self, model: Any, target: str | None = None) -> Sample:
        """The ``sample`` of :func:`~offline_eval.reward_fit.fit_cross_fit`: every :data:`SAMPLE_STRIDE`-th kept
        row, once the batches are kept (None before), as one batch (a logistic pass splits a batch over its threads
        only when it is large: one sampled batch of each kept one would run on one thread)."""

        def make() -> tuple[Callable[[MapFn, tuple[str, ...]], list[np.ndarray]], float] | None:
            sampled = self.kept(model, target, SAMPLE_STRIDE)
            if sampled is None or self.base is None:
                return None
            batches = list(sampled)
            weights = [b.mrdr for b in batches if b.mrdr is not None]
            one = ModelBatch(np.concatenate([b.X for b in batches]), np.concatenate([b.action for b in batches]),
                             np.concatenate([b.reward for b in batches]), np.concatenate([b.folds for b in batches]),
                             np.concatenate(weights) if weights else None)
            n = sum(len(r) for _, _, r in self.base)
            return reduce_in_memory([one]), len(one.reward) / max(n, 1)

        return make

    def batches(self, model: Any, target: str | None = None, map_fn: MapFn | None = None
                ) -> Iterator[tuple[ModelBatch, tuple[np.ndarray, ...] | None]]:
        """Batches with ``model``'s folds (zeros for None) and, given a target name, its raw MRDR weights, each with
        ``map_fn`` of it (None without a ``map_fn``), converted (batches read from the log) and mapped on the
        pass's worker threads (:func:`ordered_map`)."""
        key = None if model is None else (int(model.n_folds), int(model.fold_seed_))
        kept = self.kept(model, target)
        if kept is not None:
            if map_fn is None:
                yield from ((part, None) for part in kept)
            else:
                # two batches' logistic chunks queue on its threads at once: no idle core while a batch's last
                # chunk finishes
                yield from ordered_map(lambda part: (part, map_fn(part)), kept)
            return
        keep_base = self.base is None and self._fits(self.row_bytes)
        has_base = self.base is not None or keep_base
        keep_folds = has_base and key is not None and key not in self.folds and self._fits(
            (0 if self.base is not None else self.row_bytes) + 1)
        keep_weights = has_base and target is not None and self._fits(
            (0 if self.base is not None else self.row_bytes) + int(keep_folds) + 8)
        columns = _MODEL_COLUMNS if target is None else [*_MODEL_COLUMNS, S.PROPENSITY, S.PROBABILITIES, S.ELIGIBLE]
        policy_lock = self.locks.get(target) if target is not None else None

        def convert(batch: Any) -> tuple[ModelBatch, tuple[np.ndarray, ...] | None]:
            part = _model_batch(batch, model)
            if target is not None:
                data = _logged_data(batch, self.log.arms)
                with policy_lock or nullcontext():
                    mrdr = mrdr_weights_of(data, self.targets[target], f"policies[{target!r}]")
                part = part._replace(mrdr=mrdr)
            return part, None if map_fn is None else map_fn(part)

        base, folds, weights = [], [], []
        read = (batch for batch, _ in self.log.batches(columns, self.batch_rows, keep_base) if batch.num_rows)
        for part, out in ordered_map(convert, read):
            if keep_weights and part.mrdr is not None:
                weights.append(part.mrdr)
            if keep_base:
                base.append((part.X, part.action.astype(np.int32), part.reward))
            if keep_folds and key is not None:
                folds.append(part.folds.astype(np.min_scalar_type(key[0])))
            yield part, out
        if keep_base:
            self.base = base
        if keep_folds and key is not None:
            self.folds[key] = folds
        if keep_weights and target is not None:
            self.weights[target] = weights


class _KeptRows:
    """Contexts and folds kept per batch by a model pass, looked up by row position in the log (after the dropped
    rows): the evaluation pass's batches start where the model pass's did, so a lookup is normally a view of one
    kept batch."""

    def __init__(self, contexts: list[np.ndarray], folds: Mapping[tuple[int, int], list[np.ndarray]]) -> None:
        self.contexts, self.folds = contexts, folds
        self.starts = np.cumsum([0, *(len(X) for X in contexts)])

    def _rows(self, chunks: list[np.ndarray], start: int, m: int) -> np.ndarray:
        i = int(np.searchsorted(self.starts, start, side="right")) - 1
        offset = start - int(self.starts[i])
        if offset + m <= len(chunks[i]):
            return chunks[i][offset:offset + m]
        j = int(np.searchsorted(self.starts, start + m, side="left"))
        return np.concatenate(chunks[i:j])[offset:offset + m]

    def context(self, start: int, m: int) -> np.ndarray:
        """The (m, d) contexts of rows ``start`` to ``start + m``."""
        return self._rows(self.contexts, start, m)

    def fold_rows(self, start: int, m: int) -> dict[tuple[int, int], np.ndarray]:
        """(n_folds, fold_seed) -> (m,) int64 folds of rows ``start`` to ``start + m``."""
        return {key: self._rows(chunks, start, m).astype(np.int64) for key, chunks in self.folds.items()}


def _passes(log: _Log, layout: Layout, targets: dict[str, Any], batch_rows: int, cache_bytes: int
            ) -> dict[str, PolicyAccumulator] | None:
    """The reward models' passes and the evaluation pass: every policy's merged accumulator (None: no rows)."""
    K = len(log.arms)
    # a policy object is scored by one thread at a time (its action_probabilities need not be thread-safe), unless
    # it opts in to concurrent calls
    locks = {name: threading.Lock() for name, target in targets.items()
             if not is_arm(target) and not scores_concurrently(target)}
    model_columns = _ModelColumns(log, batch_rows, cache_bytes, targets, locks)

    def reduce_for(model: Any, target: str | None = None) -> Callable[[MapFn, tuple[str, ...]], list[np.ndarray]]:
        def reduce(map_fn: MapFn, ops: tuple[str, ...]) -> list[np.ndarray]:
            total: list[np.ndarray] | None = None
            for _, mapped in model_columns.batches(model, target, map_fn):
                out = combine([cast(tuple[np.ndarray, ...], mapped)], ops)
                total = out if total is None else combine([total, out], ops)
            if total is None:
                raise ValueError("the log has no rows with a reward")
            return total

        return reduce

    predictors = fit_models(layout, reduce_for, K, log.arms, list(targets), model_columns.sample)
    kept = model_columns.kept_rows([(p.n_folds, p.fold_seed) for fitted in predictors for p in fitted.values()])
    columns = eval_columns(layout, kept is not None)
    # the pass reads the context only to check it: decoded apart, it stays off the reading thread's critical path
    context_checked_only = not layout.models and all(is_arm(t) for t in targets.values())

    def accumulate(item: tuple[Any, int]) -> dict[str, PolicyAccumulator]:
        batch, start = item
        if kept is None:
            data = _logged_data(batch, log.arms)
            predict = Predictions(predictors, data, batch)
        else:
            data = _logged_data(batch, log.arms, X=kept.context(start, batch.num_rows))
            predict = Predictions(predictors, data, batch, kept.fold_rows(start, batch.num_rows))
        parts = {}
        for name, target in targets.items():
            where = f"policies[{name!r}]"
            with locks.get(name) or nullcontext():
                resolved = resolve_target(data, target, name=where)
            parts[name] = PolicyAccumulator.of(layout, data, resolved, predict(name), start=start, name=where)
        return parts

    accs: dict[str, PolicyAccumulator] = {}
    counts = {"rows": 0, "missing": 0, "total": 0}

    def positioned() -> Iterator[tuple[Any, int]]:
        for batch, dropped in log.batches(columns, batch_rows):
            counts["missing"] += dropped
            counts["total"] += dropped + batch.num_rows
            if batch.num_rows:
                yield batch, counts["rows"]
                counts["rows"] += batch.num_rows

    def prepared_by_workers() -> Iterator[dict[str, PolicyAccumulator]]:
        # positions count the dropped rows too (they only order the rows an accumulator retains)
        for parts, m, dropped in log.map_batches(lambda batch, start: accumulate((batch, start)), columns,
                                                 batch_rows, apart=context_checked_only):
            counts["missing"] += dropped
            counts["total"] += dropped + m
            counts["rows"] += m
            if parts is not None:
                yield parts

    # the kept contexts are looked up by their position after the dropped rows: that pass prepares its batches
    # before handing them out
    in_order = ordered_map(accumulate, positioned()) if kept is not None else prepared_by_workers()
    for parts in in_order:
        for name, part in parts.items():
            acc = accs.get(name)
            accs[name] = part if acc is None else acc.merge(part)
    if counts["missing"]:
        _report_missing(counts["missing"], counts["total"] + log.quarantined.n_rows, "drop")
    if counts["rows"] == 0:
        return None
    return accs
