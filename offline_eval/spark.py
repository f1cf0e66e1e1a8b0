"""Evaluate policies on a Spark DataFrame of logged decisions (Apache Spark via pyspark): :func:`evaluate`.

Each pass over the data is one Spark job: every partition turns its Arrow record batches (``mapInArrow``) into the
mergeable statistics of :mod:`offline_eval.accumulators` (or, for the reward-model passes, of
:mod:`offline_eval.reward_fit`), ships them to the driver as ``np.savez`` bytes (plain arrays, loaded with
``allow_pickle=False``), and the driver merges them in partition order. The passes are those of
:func:`offline_eval.streaming.evaluate_parquet`: the reward models' (DR family only), then one evaluation pass.
The result is the table :func:`offline_eval.evaluate` returns on the same rows, to floating-point summation order.

Policies travel to the executors as their saved state: an object with ``save(path)`` whose top-level package has
``load(path)`` (every ``bandit`` policy: the versioned, checksummed, pickle-free zip of :mod:`bandit.state`) is
saved once on the driver and loaded once per partition; a single arm travels as itself. Other policy objects are
serialised by Spark's closure serialiser (cloudpickle).

pyspark is imported lazily (``import offline_eval`` never loads it); the executors need this package installed in
their Python. ``examples/spark_evaluate.py`` is a job that runs locally and with ``spark-submit``. The DataFrame's
order (partition, then row) stands for the log order: it does not matter to any estimate or interval except the
bootstrap's (its resampling counts are keyed by row), so keep the DataFrame in log order (e.g.
``orderBy("timestamp", "event_id")``) for ``interval="bootstrap"``.

As in memory, rows whose ``event_id`` already appeared earlier (in that order) are dropped, keeping the first, with
one :class:`~offline_eval.schema.DecisionLogWarning`, and rows with a null reward are dropped with one
``UserWarning``; a row with a null ``event_id`` (or a null ``timestamp`` or ``policy_version``, where the DataFrame
has those columns) is quarantined, like any row that breaks the contract. Checking the ids costs one aggregation of the ``event_id`` column (a shuffle of the ids); only when
some id repeats, the rows are numbered (``monotonically_increasing_id``), ranked within their id, and the first of
each id kept, re-sorted into DataFrame order and persisted (``MEMORY_AND_DISK``) for the passes. Reward models
are fitted as in :mod:`offline_eval.streaming` (the model columns persisted for the Newton passes; MRDR per target,
the policy shipped to the executors for its weights); scikit-learn models raise ``TypeError``.
"""

from __future__ import annotations

import importlib
import io
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from offline_eval import schema as S
from offline_eval.accumulators import Layout, PolicyAccumulator, evaluation_table
from offline_eval.data import (
    CHECKED_COLUMNS,
    IDENTITY_COLUMNS,
    ROW_REASONS,
    InvalidRowsError,
    Quarantine,
    _check_invalid_rows,
    _report_missing,
    check_identities,
    quarantine_batch,
    replay_warnings,
    rows_with_reward,
)
from offline_eval.estimators import Estimator
from offline_eval.evaluate import _check_estimators
from offline_eval.reward_fit import CrossFitPredictor, MapFn, combine
from offline_eval.reward_models import MRDRRewardModel, fold_of
from offline_eval.streaming import (
    Predictions,
    _logged_data,
    _model_batch,
    arm_indices,
    check_policies,
    eval_columns,
    fit_models,
    mrdr_weights_of,
    one_blas_thread,
)

__all__ = ["PARTITION_STRIDE", "evaluate"]

#: Row positions of partition p start at ``p * PARTITION_STRIDE`` (orders the rows kept for the EL intervals).
PARTITION_STRIDE = 1 << 40

_OUTPUT = "partition long, key long, payload binary, missing long, total long"
_EVAL_COLUMNS = [S.EVENT_ID, S.CONTEXT, S.ACTION, S.REWARD, S.PROPENSITY, S.PROBABILITIES, S.ELIGIBLE]
_MODEL_COLUMNS = [S.EVENT_ID, S.CONTEXT, S.ACTION, S.REWARD]
_MRDR_COLUMNS = [S.PROPENSITY, S.PROBABILITIES, S.ELIGIBLE]


def _to_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    savez: Any = np.savez  # (its stubs type every keyword as allow_pickle)
    savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return buf.getvalue()


def _from_bytes(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def _ship(target: Any) -> tuple[Any, ...]:
    """How a policy travels to the executors (module docstring)."""
    if isinstance(target, str | int | np.integer) and not isinstance(target, bool):
        return ("arm", target)
    package = type(target).__module__.split(".")[0]
    loader = getattr(importlib.import_module(package), "load", None)
    if callable(getattr(target, "save", None)) and callable(loader):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "policy.zip"
            target.save(path)
            return ("saved", package, path.read_bytes())
    return ("object", target)


def _unship(shipped: tuple[Any, ...]) -> Any:
    kind = shipped[0]
    if kind == "saved":
        _, package, data = shipped
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "policy.zip"
            path.write_bytes(data)
            return importlib.import_module(package).load(path)
    return shipped[1]


def _partition_id() -> int:
    from pyspark import TaskContext

    context = TaskContext.get()
    return context.partitionId() if context is not None else 0


def _output(rows: list[tuple[int, int, bytes, int, int]]) -> Any:
    import pyarrow as pa

    schema = pa.schema([("partition", pa.int64()), ("key", pa.int64()), ("payload", pa.binary()),
                        ("missing", pa.int64()), ("total", pa.int64())])
    return pa.RecordBatch.from_pydict(
        {name: [r[i] for r in rows] for i, name in enumerate(schema.names)}, schema=schema
    )


def _model_job(map_fn: MapFn, ops: tuple[str, ...], n_folds: int | None, fold_seed: int,
               mrdr: tuple[tuple[Any, ...], str, list[str]] | None, n_actions: int,
               quarantine: list[str] | None = None) -> Any:
    """``mapInArrow`` function of a reward-model pass: the partition's combined ``map_fn`` outputs as bytes.
    ``mrdr`` = (shipped target, its name, the arms): the batches carry that target's raw MRDR weights.
    ``quarantine`` (the arms): the rows that break the contract are left out first, as the evaluation pass does;
    without it only the rows whose action is outside [0, ``n_actions``) or whose event id is null."""

    def run(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa
        import pyarrow.compute as pc

        from offline_eval.reward_fit import ModelBatch

        target = None if mrdr is None else _unship(mrdr[0])
        total = None
        with one_blas_thread():  # see offline_eval.streaming.one_blas_thread
            for record_batch in batches:
                table, _ = rows_with_reward(pa.Table.from_batches([record_batch]))
                if quarantine is not None and table.num_rows:
                    table, _, _ = quarantine_batch(table, quarantine)
                elif table.num_rows:  # an action outside [0, K) must not index the statistics, nor a null id be
                    # hashed to a fold; the evaluation pass quarantines its row (and the passes run again with the
                    # model passes leaving it out)
                    table = table.filter(pc.and_(pc.and_(pc.greater_equal(table.column(S.ACTION), 0),
                                                         pc.less(table.column(S.ACTION), n_actions)),
                                                 pc.is_valid(table.column(S.EVENT_ID))))
                if table.num_rows == 0:
                    continue
                part = _model_batch(table, None)
                if n_folds is not None:
                    part = ModelBatch(part.X, part.action, part.reward,
                                      fold_of(table.column(S.EVENT_ID), n_folds, fold_seed))
                if mrdr is not None:
                    data = _logged_data(table, mrdr[2])
                    part = part._replace(mrdr=mrdr_weights_of(data, target, f"policies[{mrdr[1]!r}]"))
                out = combine([map_fn(part)], ops)
                total = out if total is None else combine([total, out], ops)
        if total is not None:
            yield _output([(_partition_id(), 0, _to_bytes({str(i): a for i, a in enumerate(total)}), 0, 0)])

    return run


def _eval_job(layout: Layout, arms: list[str], predictors: list[dict[str, bytes]], policies: list[tuple[Any, ...]],
              names: list[str], invalid_rows: str) -> Any:
    """``mapInArrow`` function of the evaluation pass: one row per policy with the partition's accumulator, and a
    row (key -1) with the rows missing a reward, the rows read and what was quarantined (:func:`_quarantine_bytes`;
    with ``invalid_rows="raise"``, the first bad row's error)."""

    def run(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa

        pid = _partition_id()
        loaded: dict[bytes, CrossFitPredictor] = {}
        fitted = [{name: loaded.setdefault(p, CrossFitPredictor.from_arrays(_from_bytes(p))) for name, p in m.items()}
                  for m in predictors]
        targets = [_unship(p) for p in policies]
        accs: list[PolicyAccumulator | None] = [None] * len(targets)
        start = pid * PARTITION_STRIDE
        missing = total = 0
        quarantined, error = Quarantine(), ""
        with one_blas_thread():  # see offline_eval.streaming.one_blas_thread
            for record_batch in batches:
                table, dropped = rows_with_reward(pa.Table.from_batches([record_batch]))
                missing += dropped
                total += record_batch.num_rows
                if table.num_rows == 0:
                    continue
                if invalid_rows == "raise":
                    try:
                        check_identities(table)
                        data = _logged_data(table, arms)
                    except InvalidRowsError as err:
                        error = f"{err} (in a batch of partition {pid})"
                        break
                else:
                    table, data, found = quarantine_batch(table, arms)
                    quarantined = quarantined.merge(found)
                    if table.num_rows == 0:
                        continue
                predict = Predictions(fitted, data, table)
                for i, target in enumerate(targets):
                    part = PolicyAccumulator.of(layout, data, target, predict(names[i]), start=start,
                                                name=f"policies[{names[i]!r}]")
                    acc = accs[i]
                    accs[i] = part if acc is None else acc.merge(part)
                start += data.n
        rows = [(pid, i, _to_bytes(acc.to_arrays()), 0, 0) for i, acc in enumerate(accs) if acc is not None]
        rows.append((pid, -1, _quarantine_bytes(quarantined, error), missing, total))
        yield _output(rows)

    return run


def _quarantine_bytes(quarantined: Quarantine, error: str) -> bytes:
    """A partition's :class:`~offline_eval.data.Quarantine` (and error) as plain arrays; :func:`_quarantine_of`
    reads them back."""
    return _to_bytes({
        "counts": np.array([quarantined.counts.get(r, 0) for r in ROW_REASONS], dtype=np.int64),
        "rows": np.array([quarantined.n_rows, quarantined.n_checked], dtype=np.int64),
        "examples": np.array(quarantined.examples, dtype=str),
        "error": np.array(error),
    })


def _quarantine_of(payload: bytes) -> tuple[Quarantine, str]:
    arrays = _from_bytes(payload)
    counts = {r: int(c) for r, c in zip(ROW_REASONS, arrays["counts"], strict=True) if c}
    n_rows, n_checked = (int(v) for v in arrays["rows"])
    return Quarantine(counts, n_rows, n_checked, tuple(str(e) for e in arrays["examples"])), str(arrays["error"])


def _collect(df: Any, job: Any) -> list[Any]:
    with warnings.catch_warnings():
        # pyspark 4 warns that pandas 3 is not fully supported; this path exchanges Arrow batches only (tested)
        warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
        rows = df.mapInArrow(job, _OUTPUT).collect()
    return sorted(rows, key=lambda r: (r["partition"], r["key"]))


def _arms(spark_df: Any, arms: Sequence[str] | None) -> list[str]:
    """The arm names in index order: given, or read from the distinct (action, action_name) pairs."""
    if arms is not None:
        if isinstance(arms, str) or not all(isinstance(a, str) for a in arms):
            raise TypeError(f"arms must be a sequence of arm names (str), got {arms!r}")
        return list(arms)
    if S.ACTION_NAME not in spark_df.columns:
        raise ValueError("spark_df has no action_name column to read the arm names from; pass arms=[...]")
    pairs = spark_df.select(S.ACTION, S.ACTION_NAME).distinct().collect()
    by_index: dict[int, str] = {}
    for row in pairs:
        if row[S.ACTION] is None or row[S.ACTION_NAME] is None:  # a broken row (quarantined by the passes)
            continue
        i, name = int(row[S.ACTION]), str(row[S.ACTION_NAME])
        if by_index.setdefault(i, name) != name:
            raise ValueError(f"action {i} is logged as both {by_index[i]!r} and {name!r}; pass arms=[...]")
    # K: the length most rows' probabilities have (a tie: the longer), as the passes read the column; a null or
    # ragged row is a broken row, not the arm count
    from pyspark.sql import functions as F

    lengths = spark_df.where(F.col(S.PROBABILITIES).isNotNull()).groupBy(F.size(S.PROBABILITIES).alias("k")).count()
    first = lengths.orderBy(F.desc("count"), F.desc("k")).first()
    if first is None:
        raise ValueError("spark_df has no rows with probabilities")
    K = int(first["k"])
    unknown = [k for k in range(K) if k not in by_index]
    if unknown:
        raise ValueError(
            f"arms {unknown} (of {K}) are never logged, so their names are unknown; pass arms=[...] (the log's "
            f"{S.META_ARMS!r} metadata, e.g. offline_eval.schema.arms_from_schema of a part's schema)"
        )
    return [by_index[k] for k in range(K)]


def evaluate(
    spark_df: Any,
    policies: Mapping[str, Any],
    estimators: Sequence[Estimator] | None = None,
    *,
    arms: Sequence[str] | None = None,
    invalid_rows: str = "quarantine",
) -> pd.DataFrame:
    """Evaluate policies on a Spark DataFrame in the decision-log schema: the table of :func:`offline_eval.evaluate`.

    Parameters
    ----------
    spark_df : pyspark.sql.DataFrame
        Decisions with joined rewards in the decision-log schema (e.g. ``spark.read.parquet(log_dir)``): the columns
        ``event_id``, ``context``, ``action``, ``reward`` (null = not known yet), ``propensity``, ``probabilities``
        and ``eligible``. Its row order (partition, then row) is the log order.
    policies : mapping of str to policy
        Name -> a policy object with ``action_probabilities(X, eligible)`` or a single arm (index or name).
    estimators : sequence of Estimator, optional
        As in :func:`offline_eval.streaming.evaluate_parquet`.
    arms : sequence of str, optional
        The arm names in index order (the log's ``upsell_bandit.arms`` metadata, which Spark does not carry);
        default: read from the distinct ``(action, action_name)`` pairs (every arm must have been logged).
    invalid_rows : {"quarantine", "raise"}
        Rows that break the decision-log contract are left out as :meth:`LoggedData.from_parquet` leaves them out
        (the same rows: one :class:`~offline_eval.schema.DecisionLogWarning`, counts per reason in the table's
        ``attrs["quarantined"]``), or raise :class:`~offline_eval.data.InvalidRowsError` naming the first
        (``"raise"``). The evaluation pass checks every batch (the validation it needs anyway); when it finds bad
        rows and reward models were fitted, the passes run again with the model passes leaving them out too.

    Returns
    -------
    pandas.DataFrame
        The :func:`offline_eval.evaluate` table; ``attrs["quarantined"]``: rows left out per reason.

    Examples
    --------
    ::

        from offline_eval.spark import evaluate

        decisions = spark.read.parquet("s3://bucket/decision-log/")   # rewards joined in column "reward"
        table = evaluate(decisions, {"candidate": bandit.load("candidate.zip")})
        print(table[table.recommended])
    """
    ests = _check_estimators(estimators)
    targets = check_policies(policies, "offline_eval.spark.evaluate")
    _check_invalid_rows(invalid_rows)
    missing_columns = [c for c in _EVAL_COLUMNS if c not in spark_df.columns]
    if missing_columns:
        raise ValueError(f"spark_df has no column(s) {missing_columns} of the decision-log schema "
                         f"(columns: {spark_df.columns})")
    arms_list = _arms(spark_df, arms)
    targets = arm_indices(targets, arms_list)
    layout = Layout.of(ests)
    spark_df, persisted = S.spark_without_repeated_ids(spark_df)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                table, quarantined = _evaluate(spark_df, targets, layout, arms_list, invalid_rows)
            except BaseException:
                replay_warnings(caught)
                raise
        if quarantined and layout.models:  # the reward models were fitted on rows the evaluation left out: again
            # (and its warnings with it), the model passes leaving them out too
            table, quarantined = _evaluate(spark_df, targets, layout, arms_list, invalid_rows, quarantine_models=True)
        else:
            replay_warnings(caught)
    finally:
        if persisted is not None:
            persisted.unpersist()
    quarantined.warn(stacklevel=2)
    table.attrs["quarantined"] = dict(quarantined.counts)
    return table


def _evaluate(spark_df: Any, targets: dict[str, Any], layout: Layout, arms_list: list[str], invalid_rows: str,
              quarantine_models: bool = False) -> tuple[pd.DataFrame, Quarantine]:
    """The passes of :func:`evaluate` on a DataFrame without repeated ids: the table and what the evaluation pass
    quarantined. ``quarantine_models``: the model passes leave out the same rows."""
    K = len(arms_list)

    policy_names = list(targets)
    shipped = {name: _ship(targets[name]) for name in policy_names}
    mrdr = any(type(m) is MRDRRewardModel for m in layout.models)
    # the logistic fits read the model columns once per Newton pass; MRDR fits also the target's columns
    # a null timestamp or policy version is quarantined (where the DataFrame has the column), as a null event id is
    identities = [c for c in IDENTITY_COLUMNS if c != S.EVENT_ID and c in spark_df.columns]
    checked = [*_MODEL_COLUMNS, *(_MRDR_COLUMNS if mrdr or quarantine_models else ()),
               *(identities if quarantine_models else ())]
    model_df = spark_df.select(*checked).persist()

    def reduce_for(model: Any, target: str | None = None) -> Any:
        n_folds = None if model is None else int(model.n_folds)
        seed = 0 if model is None else int(model.fold_seed_)
        weights = None if target is None else (shipped[target], target, arms_list)

        def reduce(map_fn: MapFn, ops: tuple[str, ...]) -> list[np.ndarray]:
            rows = _collect(model_df, _model_job(map_fn, ops, n_folds, seed, weights, K,
                                                 arms_list if quarantine_models else None))
            parts = [list(_from_bytes(bytes(r["payload"])).values()) for r in rows]
            if not parts:
                raise ValueError("spark_df has no rows with a reward")
            return combine(parts, ops)

        return reduce

    try:
        predictors = fit_models(layout, reduce_for, K, arms_list, policy_names) if layout.models else []
    finally:
        model_df.unpersist()
    as_bytes: dict[int, bytes] = {}
    shipped_predictors = [{name: as_bytes.setdefault(id(p), _to_bytes(p.to_arrays())) for name, p in m.items()}
                          for m in predictors]
    columns = eval_columns(layout)
    job = _eval_job(layout, arms_list, shipped_predictors, [shipped[name] for name in policy_names], policy_names,
                    invalid_rows)
    rows = _collect(spark_df.select(*dict.fromkeys([*columns, *CHECKED_COLUMNS, *identities])), job)
    merged: dict[str, PolicyAccumulator | None] = dict.fromkeys(policy_names)
    n_missing = n_total = 0
    quarantined = Quarantine()
    for row in rows:
        key = int(row["key"])
        if key < 0:
            n_missing += int(row["missing"])
            n_total += int(row["total"])
            found, error = _quarantine_of(bytes(row["payload"]))
            if error:
                raise InvalidRowsError(error)
            quarantined = quarantined.merge(found)
            continue
        name = policy_names[key]
        part = PolicyAccumulator.from_arrays(layout, _from_bytes(bytes(row["payload"])))
        acc = merged[name]
        merged[name] = part if acc is None else acc.merge(part)
    if n_missing:
        _report_missing(n_missing, n_total, "drop")
    if any(acc is None for acc in merged.values()):
        raise ValueError("spark_df has no rows with a reward")
    return evaluation_table({name: acc for name, acc in merged.items() if acc is not None}), quarantined

