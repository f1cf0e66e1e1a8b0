"""Fit a policy from a Spark DataFrame of logged decisions with joined rewards (Apache Spark via pyspark).

:func:`fit` runs each pass as one Spark job: every partition turns its Arrow record batches into mergeable
statistics (:mod:`bandit.stats`) with ``mapInArrow``, ships them to the driver as plain bytes (no pickle), and the
driver merges them in partition order and loads the result into the policy. The policy ends up as if
``policy.update_batch`` had been called on the usable rows, in the DataFrame's order. LogisticTS takes one job per
Newton pass (typically 4-8; the selected columns are cached for the duration of the fit).

pyspark is imported only when :func:`fit` is called (``import bandit`` never loads it); the executors need this
package installed in their Python (``pip install upsell-bandit`` on the cluster image, or ship a wheel with
``spark-submit --py-files``). See ``examples/spark_fit.py`` for a job that runs locally and with spark-submit.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from typing import Any

from bandit.stats import (
    FitReport,
    LogisticPassStatistics,
    PolicyStatistics,
    _check_writable,
    _policy_kind,
    fit_passes,
)

__all__ = ["fit"]

_OUTPUT_SCHEMA = "partition long, stats binary, pending long, rejected string"


def _partition_job(template: bytes, logistic: bool, columns: tuple[str, str, str]) -> Any:
    """The ``mapInArrow`` function: one output row per partition holding its merged statistics as bytes."""

    def run(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa
        from pyspark import TaskContext

        from bandit._arrow_rows import rows_from_batch

        cls = LogisticPassStatistics if logistic else PolicyStatistics
        empty: Any = cls.from_bytes(template)
        total = empty
        pending = 0
        rejected: dict[str, int] = {}
        context, action_name, reward = columns
        for batch in batches:
            rows = rows_from_batch(batch, empty.arm_names, empty.n_features, empty.reward_range, context=context,
                                   action_name=action_name, reward=reward)
            pending += rows.n_pending
            for reason, n in rows.rejected.items():
                rejected[reason] = rejected.get(reason, 0) + n
            if len(rows.arms):
                total = total.accumulate(rows.X, rows.arms, rows.rewards)
        context_info = TaskContext.get()
        pid = context_info.partitionId() if context_info is not None else 0
        yield pa.RecordBatch.from_pydict(
            {"partition": [pid], "stats": [total.to_bytes()], "pending": [pending], "rejected": [json.dumps(rejected)]},
            schema=pa.schema([("partition", pa.int64()), ("stats", pa.binary()), ("pending", pa.int64()),
                              ("rejected", pa.string())]),
        )

    return run


def fit(
    policy: Any,
    spark_df: Any,
    *,
    context: str = "context",
    action_name: str = "action_name",
    reward: str = "reward",
) -> FitReport:
    """Learn from every row of ``spark_df`` with a known reward, as ``policy.update_batch`` on those rows would.

    Parameters
    ----------
    policy : policy
        Any policy but VWPolicy (it is updated in place, only once every pass has succeeded).
    spark_df : pyspark.sql.DataFrame
        Decisions in the decision-log schema with a joined ``reward`` (e.g. ``spark.read.parquet(log_dir)`` joined
        with the outcomes, or a log written by ``bandit.attribution.join_outcomes``): a ``context`` column (array
        of doubles; ignored by a policy built without ``n_features``), ``action_name`` (the arm names; mapped by
        name, so logs written before arms were added still fit) and ``reward`` (double, null = not known yet).
    context, action_name, reward : str
        Column names, if they differ.

    Returns
    -------
    FitReport
        ``n_rows`` learned, ``n_passes`` (Spark jobs), ``n_pending`` (null rewards, skipped) and ``rejected``
        (unusable rows by reason: ``"bad_context"`` -- null, wrong length or NaN/inf; ``"unknown_arm"``;
        ``"bad_reward"`` -- NaN/inf or outside the policy's reward range; ``"missing_event_id"`` -- a null
        ``event_id``, which ``offline_eval`` quarantines too). Bad rows are skipped, never fatal.

    Notes
    -----
    Rows whose ``event_id`` already appeared earlier in the DataFrame are dropped first, as ``read_decision_log``
    drops them (the first occurrence in DataFrame order is kept; one ``DecisionLogWarning``): one aggregation of the
    ids, and only when an id repeats a ranked de-duplication (:func:`offline_eval.schema.spark_without_repeated_ids`).
    A DataFrame without an ``event_id`` column is learned row by row. Rows are learned in the DataFrame's order (partition index, then order within the partition). That only
    matters with ``discount < 1``, where it is the order of ``update_batch``: sort first (``df.orderBy("timestamp",
    "event_id")``). Memory: each executor holds one record batch and its statistics (``K D^2`` numbers); the
    driver holds one statistics object per partition.

    Examples
    --------
    ::

        from bandit import LinUCB
        from bandit.spark import fit

        decisions = spark.read.parquet("s3://bucket/decision-log/")      # joined rewards in column "reward"
        policy = LinUCB(["individual", "duo", "family"], n_features=32)
        report = fit(policy, decisions)
        policy.save("linucb.json")
    """
    kind = _policy_kind(policy)
    _check_writable(policy)
    for col in ((context,) if policy.n_features is not None else ()) + (action_name, reward):
        if col not in spark_df.columns:
            raise ValueError(f"spark_df has no column {col!r} (columns: {spark_df.columns})")
    from offline_eval.schema import EVENT_ID, spark_without_repeated_ids

    columns = (context, action_name, reward)
    persisted = None
    if EVENT_ID in spark_df.columns:  # the schema's rule: a repeated event id counts once (first occurrence)
        spark_df, persisted = spark_without_repeated_ids(spark_df, stacklevel=3)
    selected = spark_df.select(*[c for c in dict.fromkeys((*columns, EVENT_ID)) if c in spark_df.columns])
    tallies: dict[str, Any] = {"pending": 0, "rejected": {}}
    logistic = kind == "logistic"
    if logistic:
        selected = selected.persist()

    def run_pass(empty: Any) -> Any:
        job = _partition_job(empty.to_bytes(), logistic, columns)
        with warnings.catch_warnings():
            # pyspark 4 warns that pandas 3 is not fully supported; this path exchanges Arrow batches only (tested)
            warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
            rows = selected.mapInArrow(job, _OUTPUT_SCHEMA).collect()
        total = empty
        pending = 0
        rejected: dict[str, int] = {}
        for row in sorted(rows, key=lambda r: r["partition"]):
            total = total.merge(type(empty).from_bytes(bytes(row["stats"])))
            pending += int(row["pending"])
            for reason, n in json.loads(row["rejected"]).items():
                rejected[reason] = rejected.get(reason, 0) + int(n)
        tallies["pending"], tallies["rejected"] = pending, rejected
        return total

    try:
        report = fit_passes(policy, run_pass)
    finally:
        if logistic:
            selected.unpersist()
        if persisted is not None:
            persisted.unpersist()
    return FitReport(report.n_rows, report.n_passes, tallies["pending"], dict(sorted(tallies["rejected"].items())))
