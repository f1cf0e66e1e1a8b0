"""Fit a policy on Apache Spark from a decision log with joined rewards, and save it for serving.

Locally (a demo log of --n decisions is generated when --log is not given)::

    python examples/spark_fit.py --master "local[2]" --n 200000 --out /tmp/spark-fit

On a cluster (the executors need upsell-bandit installed in their Python, e.g. ``pip install upsell-bandit`` in the
image, or ``--py-files upsell_bandit-*.whl``)::

    spark-submit --master yarn --deploy-mode cluster --conf spark.executor.memory=4g \\
        examples/spark_fit.py --log s3://bucket/decision-log-joined/ --policy LinUCB --out s3://bucket/models/

The log is a directory of Parquet files in the decision-log schema whose ``reward`` column has been joined (by
``bandit.attribution.join_outcomes`` or an upstream job; null = reward not known yet, skipped). Every partition
summarises its rows as mergeable statistics (bandit.stats), the driver merges them and loads them into the policy:
the result equals ``policy.update_batch`` on the rows (LogisticTS: a few Spark jobs, one per Newton pass). The
script checks that against the single-machine streaming fit (``bandit.streaming.fit_parquet``) when the log is local.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

import bandit
from bandit.attribution import join_outcomes
from bandit.spark import fit
from bandit.stats import FitReport
from bandit.streaming import fit_parquet
from offline_eval.schema import DecisionLogWarning, arms_from_schema, read_log

POLICIES = {"LinUCB": bandit.LinUCB, "LinearTS": bandit.LinearTS, "EpsilonGreedy": bandit.EpsilonGreedy,
            "LogisticTS": bandit.LogisticTS}
PLANS = ["individual", "duo", "family"]
#: Fewest rows of the demo log (over its 14 days, the last day's still pending).
MIN_DEMO_ROWS = 1_000


@dataclass
class Result:
    report: FitReport
    policy: Any
    policy_path: str  # a local path or the --out URI's file
    seconds: float
    max_diff_vs_streaming: float | None


def make_demo_log(root: Path, n: int, seed: int) -> Path:
    """A uniformly random logging policy's decisions with delayed conversions, joined; returns the directory."""
    rng = np.random.default_rng(seed)
    raw, joined_dir = root / "raw-log", root / "joined-log"
    joined_dir.mkdir(parents=True, exist_ok=True)
    d = 4
    X = rng.normal(size=(n, d))
    logger = bandit.UniformRandom(PLANS, n_features=d, seed=seed)
    batch = logger.choose_batch(X, event_ids=[f"req-{i:09d}" for i in range(n)])
    t0 = pd.Timestamp("2026-11-01", tz="UTC")
    times = t0 + pd.to_timedelta(np.sort(rng.integers(0, 14 * 86_400, n)), "s")
    with bandit.DecisionLog(raw, policy=logger) as log:
        log.append_batch(batch, X, timestamps=times)
    weights = np.array([[0.8, -0.4, 0.0, 0.2], [-0.3, 0.9, 0.3, 0.0], [0.1, 0.2, -0.8, 0.5]])
    p = 1 / (1 + np.exp(-(np.einsum("nd,nd->n", X, weights[batch.indices]) - 2.0)))
    converted = rng.random(n) < p
    outcomes = pd.DataFrame({"event_id": np.array(batch.event_ids, dtype=object)[converted],
                             "timestamp": times[converted] + pd.Timedelta("3h"), "reward": 1.0})
    now = t0 + pd.Timedelta("15D")  # the last day's decisions are still inside their window: pending
    joined = join_outcomes(raw, outcomes, attribution_window="2D", now=now)
    table = read_log(raw).table
    table = table.set_column(table.schema.get_field_index("reward"), "reward",
                             pa.array(joined["reward"].to_numpy(), type=pa.float64(), from_pandas=True))
    bounds = np.linspace(0, table.num_rows, 5).astype(int)
    for i in range(4):
        pq.write_table(table.slice(bounds[i], bounds[i + 1] - bounds[i]), joined_dir / f"part-{i:08d}-joined.parquet")
    return joined_dir


def log_arms(part: str) -> list[str]:
    """The arm list in a part file's schema metadata (a local path, or any URI pyarrow's filesystems can open)."""
    try:
        arms = arms_from_schema(pq.read_schema(part.removeprefix("file://")))
    except (OSError, pa.ArrowException, ValueError) as err:
        raise SystemExit(f"could not read the arm list of {part} ({err}); pass --arms a,b,c") from None
    if not arms:
        raise SystemExit(f"{part} carries no arm list metadata; pass --arms a,b,c")
    return arms


# spark_evaluate.py has the same two helpers: each example is one file, which spark-submit ships alone
def is_uri(location: str) -> bool:
    """Whether ``location`` is a URI (``s3://bucket/...``, ``hdfs://...``, ``file:///...``), not a local path."""
    return "://" in location


def write_output(data: bytes, out: str, name: str) -> str:
    """Write ``name`` under the URI ``out`` with pyarrow's filesystems (S3 as ``s3://`` or Spark's ``s3a://``,
    GCS, HDFS, ``file://``) and return where it went."""
    fs, root = pafs.FileSystem.from_uri(out.replace("s3a://", "s3://", 1))
    fs.create_dir(root, recursive=True)
    with fs.open_output_stream(f"{root.rstrip('/')}/{name}") as stream:
        stream.write(data)
    return f"{out.rstrip('/')}/{name}"


def main(argv: list[str] | None = None, spark: Any = None) -> Result:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--log", help="joined decision-log directory (Parquet); default: generate a demo log")
    parser.add_argument("--policy", choices=sorted(POLICIES), default="LinUCB")
    parser.add_argument("--arms", help="comma-separated arm names (default: the log's arm-list metadata)")
    parser.add_argument("--master", help='Spark master, e.g. "local[2]" (default: set by spark-submit)')
    parser.add_argument("--n", type=int, default=200_000, help=f"rows of the demo log (at least {MIN_DEMO_ROWS:,})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="spark-fit-output", help="directory for the policy file (and demo log)")
    args = parser.parse_args(argv)
    if args.n < MIN_DEMO_ROWS:  # one line naming the flag (exit 2), before any work
        parser.error(f"--n {args.n}: the demo log needs at least {MIN_DEMO_ROWS:,} rows")
    if args.seed < 0:
        parser.error(f"--seed {args.seed}: expected a non-negative integer")
    if args.log and not is_uri(args.log) and not Path(args.log).is_dir():
        parser.error(f"--log {args.log}: no such directory (a joined decision-log directory, or a URI Spark reads)")
    if not is_uri(args.out) and Path(args.out).exists() and not Path(args.out).is_dir():
        parser.error(f"--out {args.out}: exists and is not a directory")
    if is_uri(args.out) and not args.log:
        parser.error(f"--out {args.out}: a URI needs --log (the demo log is written to a local --out directory)")
    # a URI (s3://bucket/...) stays a string: pathlib would make it 's3:/bucket/...', a local directory
    if args.log:
        log = args.log
    else:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DecisionLogWarning)
            log = str(make_demo_log(Path(args.out), args.n, args.seed))

    own_session = spark is None
    if own_session:
        from pyspark.sql import SparkSession

        builder = SparkSession.builder.appName("upsell-bandit-fit").config("spark.sql.session.timeZone", "UTC")
        if args.master:
            builder = builder.master(args.master)
        spark = builder.getOrCreate()
    try:
        df = spark.read.parquet(log)
        arms = args.arms.split(",") if args.arms else log_arms(df.inputFiles()[0])
        n_features = len(df.select("context").first()[0])
        policy = POLICIES[args.policy](arms, n_features=n_features, seed=args.seed)
        start = time.perf_counter()
        report = fit(policy, df)
        seconds = time.perf_counter() - start
    finally:
        if own_session:
            spark.stop()
    name = f"{args.policy.lower()}.policy"
    if is_uri(args.out):
        with tempfile.TemporaryDirectory() as tmp:
            policy_path = write_output(Path(policy.save(Path(tmp) / name)).read_bytes(), args.out, name)
    else:
        policy_path = str(policy.save(Path(args.out) / name))

    diff = None
    if not is_uri(log):  # a local log: the single-machine streaming fit must agree
        check = POLICIES[args.policy](arms, n_features=n_features, seed=args.seed)
        fit_parquet(check, log)
        diff = float(np.max(np.abs(check.coef_ - policy.coef_)))
    print(f"{args.policy}: learned {report.n_rows} rows in {report.n_passes} Spark job(s), {seconds:.1f} s "
          f"({report.n_rows / seconds:,.0f} rows/s); pending {report.n_pending}, rejected {report.rejected}")
    print(f"policy saved to {policy_path}")
    if diff is not None:
        print(f"max |coef(Spark) - coef(streaming)| = {diff:.2e}")
    return Result(report, policy, policy_path, seconds, diff)


if __name__ == "__main__":
    main(sys.argv[1:])
