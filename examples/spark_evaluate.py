"""Evaluate candidate policies off-policy on Apache Spark from a decision log with joined rewards.

Locally (a demo log of --n decisions is generated when --log is not given)::

    python examples/spark_evaluate.py --master "local[2]" --n 200000 --out /tmp/spark-eval

On a cluster (the executors need upsell-bandit installed in their Python, e.g. ``pip install upsell-bandit`` in the
image, or ``--py-files upsell_bandit-*.whl``)::

    spark-submit --master yarn --deploy-mode cluster --conf spark.executor.memory=4g \\
        examples/spark_evaluate.py --log s3://bucket/decision-log-joined/ \\
        --candidate new=s3://bucket/models/linucb-v7.zip --out s3://bucket/reports/

The log is a directory of Parquet files in the decision-log schema whose ``reward`` column has been joined (null =
not known yet: dropped with a warning). Each candidate is a saved policy file (``policy.save``), shipped to the
executors as its bytes and loaded there; without ``--candidate`` a demo LinUCB is trained on the first 20 % of the
log. Every partition accumulates the estimators' mergeable statistics (offline_eval.accumulators), the driver
merges them: the table equals ``offline_eval.evaluate`` on the same rows. The script checks that against the
single-machine streaming evaluation (``offline_eval.streaming.evaluate_parquet``) when the log is local.
"""

from __future__ import annotations

import argparse
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
import bandit.state
from offline_eval.schema import arms_from_schema, encode_decisions
from offline_eval.spark import evaluate
from offline_eval.streaming import evaluate_parquet

PLANS = ["individual", "duo", "family"]
PRICES = np.array([9.99, 14.99, 19.99])
COLUMNS = ["policy", "estimator", "value", "ci_low", "ci_high", "lift", "interval", "recommended"]
#: Fewest rows of the demo log: the logger is fitted on 500 of them, the demo candidate on the first quarter.
MIN_DEMO_ROWS = 1_000


@dataclass
class Result:
    table: pd.DataFrame
    seconds: float
    max_diff_vs_streaming: float | None


def make_demo_log(root: Path, n: int, seed: int) -> Path:
    """An epsilon-greedy logger's decisions with revenue rewards, in 4 part files; returns the directory.

    The logger explores at the constant rate (every propensity at least ``epsilon / 3`` = 0.1): with the default
    per-arm schedule, exploration fades as an arm learns, and its propensities fell to ~6e-4 -- importance
    weights near 2,000 and an effective sample size of ~0.1 % of the log."""
    rng = np.random.default_rng(seed)
    d = 4
    X = rng.normal(size=(n, d))
    logger = bandit.EpsilonGreedy(PLANS, n_features=d, epsilon=0.3, schedule="constant", seed=seed)
    logger.update_batch(X[:500], rng.integers(0, 3, 500), rng.random(500))
    batch = logger.choose_batch(X)
    a = np.asarray(batch.indices)
    weights = np.array([[0.8, -0.4, 0.0, 0.2], [-0.3, 0.9, 0.3, 0.0], [0.1, 0.2, -0.8, 0.5]])
    convert = rng.random(n) < 1 / (1 + np.exp(-(np.einsum("nd,nd->n", X, weights[a]) - 2.0)))
    log_dir = root / "demo-log"
    log_dir.mkdir(parents=True, exist_ok=True)
    bounds = np.linspace(0, n, 5).astype(int)
    for p in range(4):
        rows = slice(bounds[p], bounds[p + 1])
        table = encode_decisions(
            event_id=[f"req-{i:09d}" for i in range(bounds[p], bounds[p + 1])],
            timestamp_us=1_790_000_000_000_000 + np.arange(bounds[p], bounds[p + 1], dtype=np.int64) * 10**6,
            context=X[rows], action=a[rows], propensity=np.asarray(batch.propensities)[rows],
            probabilities=np.asarray(batch.probabilities)[rows], eligible=np.ones((bounds[p + 1] - bounds[p], 3), bool),
            policy="EpsilonGreedy", policy_version="v1", arms=PLANS, reward=PRICES[a[rows]] * convert[rows],
        )
        pq.write_table(table, log_dir / f"part-{p:08d}-demo.parquet")
    return log_dir


def demo_candidate(log_dir: Path, out: Path) -> Path:
    """A LinUCB trained on the first 20 % of the log, saved next to the output."""
    first = sorted(log_dir.glob("part-*.parquet"))[0]
    table = pq.read_table(first).to_pandas()
    table = table[table.reward.notna()]
    policy = bandit.LinUCB(arms_from_schema(pq.read_schema(first)), n_features=len(table.context.iloc[0]),
                           alpha=0.5, exploration_floor=0.1, seed=1)
    policy.update_batch(np.stack(table.context.to_numpy()), table.action.to_numpy(), table.reward.to_numpy())
    return policy.save(out / "candidate-linucb.zip")


# spark_fit.py has the same URI helpers: each example is one file, which spark-submit ships alone
def is_uri(location: str) -> bool:
    """Whether ``location`` is a URI (``s3://bucket/...``, ``hdfs://...``, ``file:///...``), not a local path."""
    return "://" in location


def _filesystem(uri: str) -> tuple[Any, str]:
    # pyarrow names S3 's3'; Spark's Hadoop connector 's3a'
    return pafs.FileSystem.from_uri(uri.replace("s3a://", "s3://", 1))


def load_policy(location: str) -> Any:
    """``bandit.load`` of a local policy file, or of one at a URI pyarrow's filesystems open (copied locally)."""
    if not is_uri(location):
        return bandit.load(location)
    fs, path = _filesystem(location)
    with fs.open_input_stream(path) as stream, tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "policy.zip"
        local.write_bytes(stream.read(bandit.state.MAX_FILE_BYTES + 1))
        return bandit.load(local)


def write_output(data: bytes, out: str, name: str) -> str:
    """Write ``name`` under ``out`` (a local directory: atomically; or a URI pyarrow's filesystems open, e.g.
    ``s3://bucket/reports/``) and return where it went."""
    if not is_uri(out):
        target = Path(out) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("wb", dir=target.parent, suffix=".tmp", delete=False) as fh:
            fh.write(data)
        Path(fh.name).replace(target)
        return str(target)
    fs, root = _filesystem(out)
    fs.create_dir(root, recursive=True)
    with fs.open_output_stream(f"{root.rstrip('/')}/{name}") as stream:
        stream.write(data)
    return f"{out.rstrip('/')}/{name}"


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """One line naming the flag (``parser.error``, exit 2) for a value the script cannot run with, before any work."""
    if args.n < MIN_DEMO_ROWS:
        parser.error(f"--n {args.n}: the demo log needs at least {MIN_DEMO_ROWS:,} rows")
    if args.seed < 0:
        parser.error(f"--seed {args.seed}: expected a non-negative integer")
    if args.log and not is_uri(args.log) and not Path(args.log).is_dir():
        parser.error(f"--log {args.log}: no such directory (a joined decision-log directory, or a URI Spark reads)")
    if not is_uri(args.out) and Path(args.out).exists() and not Path(args.out).is_dir():
        parser.error(f"--out {args.out}: exists and is not a directory")
    if is_uri(args.out) and not (args.log and args.candidate):
        parser.error(f"--out {args.out}: a URI needs --log and --candidate (the demo log and candidate are written "
                     "to a local --out directory)")


def print_warnings(caught: list[warnings.WarningMessage]) -> None:
    """Print each distinct user-facing warning of the evaluation once (weight diagnostics, rows left out)."""
    for message in dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, UserWarning)):
        print(f"warning: {message}")


def main(argv: list[str] | None = None, spark: Any = None) -> Result:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--log", help="joined decision-log directory (Parquet); default: generate a demo log")
    parser.add_argument("--candidate", action="append", default=[],
                        help="name=path of a saved policy file (repeatable); default: a demo LinUCB")
    parser.add_argument("--arms", help="comma-separated arm names (default: read from the log)")
    parser.add_argument("--master", help='Spark master, e.g. "local[2]" (default: set by spark-submit)')
    parser.add_argument("--n", type=int, default=200_000, help=f"rows of the demo log (at least {MIN_DEMO_ROWS:,})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="spark-evaluate-output", help="directory for the table (and demo log)")
    args = parser.parse_args(argv)
    check_arguments(parser, args)
    candidates: dict[str, str] = {}
    for spec in args.candidate:
        name, _, path = spec.partition("=")
        if not name or not path or name in candidates:
            parser.error(f"--candidate {spec}: expected NAME=PATH of a saved policy file, each NAME once")
        candidates[name] = path
    policies = {}
    for name, path in candidates.items():
        try:
            policies[name] = load_policy(path)
        except (OSError, ValueError, pa.ArrowException) as err:
            parser.error(f"--candidate {name}={path}: {' '.join(str(err).split())}")
    # a URI (s3://bucket/...) stays a string: pathlib would make it 's3:/bucket/...', a local directory
    if args.log:
        log = args.log
    else:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        log = str(make_demo_log(Path(args.out), args.n, args.seed))
    if not policies:
        policies = {"linucb": bandit.load(demo_candidate(Path(log), Path(args.out)))}

    own_session = spark is None
    if own_session:
        from pyspark.sql import SparkSession

        builder = SparkSession.builder.appName("upsell-bandit-evaluate").config("spark.sql.session.timeZone", "UTC")
        if args.master:
            builder = builder.master(args.master)
        spark = builder.getOrCreate()
    try:
        decisions = spark.read.parquet(log)
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")  # rows without a reward yet, weight diagnostics: printed once below
            table = evaluate(decisions, policies, arms=args.arms.split(",") if args.arms else None)
        seconds = time.perf_counter() - t0
    finally:
        if own_session:
            spark.stop()
    diff = None
    if not is_uri(log):  # a local log: the single-machine streaming evaluation must give the same table
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            local = evaluate_parquet(log, policies)
        diff = float(np.nanmax(np.abs(local[["value", "ci_low", "ci_high"]].to_numpy()
                                      - table[["value", "ci_low", "ci_high"]].to_numpy())))
    written = write_output(table.to_csv(index=False).encode(), args.out, "evaluation.csv")
    with pd.option_context("display.width", 160):
        print(table[COLUMNS].round(4).to_string(index=False))
    print_warnings(caught)
    print(f"{len(table)} rows in {seconds:.1f} s on Spark; table written to {written}")
    if diff is not None:
        print(f"max |Spark - streaming| over value, ci_low, ci_high: {diff:.1e}")
    return Result(table, seconds, diff)


if __name__ == "__main__":
    main()
