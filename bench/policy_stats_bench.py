"""Policy fitting at scale: mergeable statistics in memory, streamed from Parquet, and on local Spark.

Measures, for LinUCB (K arms, d features, intercept) on synthetic logs:

- in memory: ``update_batch`` vs ``PolicyStatistics.accumulate`` + ``apply`` (compensated sums) in rows/s;
- ``bandit.streaming.fit_parquet`` from a joined log (rewards in the log) at each size, rows/s and peak RSS;
- ``fit_parquet`` with an outcomes table (event-id hash partitions, the attribution join) at the smallest size;
- ``bandit.spark.fit`` on ``local[2]`` (JVM and Python workers warm: the second of two runs).

Each streaming / Spark case runs in a fresh subprocess so that its peak RSS (``ru_maxrss``) is its own. Prints a
table and writes bench/results/policy_stats.json. Usage::

    python bench/policy_stats_bench.py                 # 1e6 and 1e7 rows
    python bench/policy_stats_bench.py --sizes 1000000 --no-spark
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ARMS = ["individual", "duo", "family", "student", "premium", "basic"]
CHUNK = 500_000


def write_log(root: Path, n: int, d: int, seed: int = 0) -> Path:
    """A joined decision log of n rows (0/1 rewards, ~3% null) and an outcomes file, written chunk by chunk."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from offline_eval.schema import encode_decisions

    rng = np.random.default_rng(seed)
    log = root / "log"
    log.mkdir(parents=True, exist_ok=True)
    K = len(ARMS)
    weights = rng.normal(size=(K, d)) * 0.3
    outcome_parts = []
    for c, start in enumerate(range(0, n, CHUNK)):
        m = min(CHUNK, n - start)
        X = rng.normal(size=(m, d))
        action = rng.integers(0, K, size=m)
        p = 1 / (1 + np.exp(-(np.einsum("nd,nd->n", X, weights[action]) - 3.0)))
        converted = rng.random(m) < p
        reward = np.where(rng.random(m) < 0.03, np.nan, converted.astype(float))
        probs = np.full((m, K), 1.0 / K)
        ts = 1_790_000_000_000_000 + (start + np.arange(m)) * 1000
        ids = np.char.add("e", (start + np.arange(m)).astype(str)).astype(object)
        table = encode_decisions(
            event_id=ids.tolist(), timestamp_us=ts, context=X, action=action, propensity=probs[:, 0],
            probabilities=probs, eligible=np.ones((m, K), dtype=bool), policy="UniformRandom", policy_version="v1",
            arms=ARMS, reward=pa.array(reward, type=pa.float64(), from_pandas=True),
        )
        pq.write_table(table, log / f"part-{c:08d}-bench.parquet")
        outcome_parts.append(pd.DataFrame({
            "event_id": ids[converted], "timestamp": pd.to_datetime(ts[converted] + 3_600_000_000, unit="us", utc=True),
            "reward": 1.0,
        }))
    pd.concat(outcome_parts, ignore_index=True).to_parquet(root / "outcomes.parquet")
    return log


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def case(kind: str, root: str, d: int) -> dict:
    """One measurement, run in this (fresh) process."""
    import warnings

    import pandas as pd

    import bandit

    bandit.warmup()
    policy = bandit.LinUCB(ARMS, n_features=d, seed=0)
    log = Path(root) / "log"
    if kind == "stream":
        from bandit.streaming import fit_parquet

        start = time.perf_counter()
        report = fit_parquet(policy, log)
        rows = report.n_applied
    elif kind == "stream_outcomes":
        from bandit.streaming import fit_parquet

        outcomes = pd.read_parquet(Path(root) / "outcomes.parquet")
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report = fit_parquet(policy, log, outcomes, "2D", now="2027-01-01", partition_rows=250_000)
        rows = report.n_applied
    else:
        from pyspark.sql import SparkSession

        from bandit.spark import fit

        spark = (SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
                 .config("spark.driver.memory", "2g").getOrCreate())
        spark.sparkContext.setLogLevel("ERROR")
        df = spark.read.parquet(str(log))
        fit(bandit.LinUCB(ARMS, n_features=d, seed=0), df)  # warm the JVM and the Python workers
        start = time.perf_counter()
        rows = fit(policy, df).n_rows
        seconds = time.perf_counter() - start
        spark.stop()
        return {"rows": rows, "seconds": seconds, "peak_rss_mb": _peak_rss_mb()}
    seconds = time.perf_counter() - start
    return {"rows": rows, "seconds": seconds, "peak_rss_mb": _peak_rss_mb()}


def in_memory(n: int, d: int) -> dict:
    import bandit
    from bandit.stats import PolicyStatistics

    bandit.warmup()
    rng = np.random.default_rng(1)
    X = rng.normal(size=(n, d))
    arms = rng.integers(0, len(ARMS), size=n)
    rewards = (rng.random(n) < 0.1).astype(float)
    out = {}
    for name in ("update_batch", "statistics"):
        best = np.inf
        for _ in range(3):
            policy = bandit.LinUCB(ARMS, n_features=d, seed=0)
            start = time.perf_counter()
            if name == "update_batch":
                policy.update_batch(X, arms, rewards)
            else:
                PolicyStatistics.for_policy(policy).accumulate(X, arms, rewards).apply(policy)
            best = min(best, time.perf_counter() - start)
        out[name] = {"rows": n, "seconds": best}
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--d", type=int, default=8)
    parser.add_argument("--no-spark", action="store_true")
    parser.add_argument("--case", nargs=3, metavar=("KIND", "ROOT", "D"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:
        print(json.dumps(case(args.case[0], args.case[1], int(args.case[2]))))
        return {}
    results: dict = {"machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
                     "policy": f"LinUCB K={len(ARMS)} d={args.d} (+ intercept)", "in_memory": in_memory(1_000_000, args.d),
                     "streaming": {}, "streaming_with_outcomes": {}, "spark_local2": {}}
    for n in args.sizes:
        with tempfile.TemporaryDirectory(prefix="policy-stats-bench-") as tmp:
            write_log(Path(tmp), n, args.d)
            kinds = ["stream"] + (["stream_outcomes"] if n == min(args.sizes) else [])
            kinds += [] if args.no_spark or n != min(args.sizes) else ["spark"]
            for kind in kinds:
                proc = subprocess.run([sys.executable, __file__, "--case", kind, tmp, str(args.d)], capture_output=True,
                                      text=True, check=True, cwd=ROOT)
                res = json.loads(proc.stdout.strip().splitlines()[-1])
                key = {"stream": "streaming", "stream_outcomes": "streaming_with_outcomes", "spark": "spark_local2"}[kind]
                results[key][str(n)] = res
    print(f"{'case':<28} {'rows':>12} {'seconds':>9} {'rows/s':>12} {'peak RSS MB':>12}")
    for name, res in results["in_memory"].items():
        print(f"{'in-memory ' + name:<28} {res['rows']:>12,} {res['seconds']:>9.2f} {res['rows'] / res['seconds']:>12,.0f}"
              f" {'':>12}")
    for key in ("streaming", "streaming_with_outcomes", "spark_local2"):
        for n, res in results[key].items():
            print(f"{key + ' ' + n:<28} {res['rows']:>12,} {res['seconds']:>9.2f} "
                  f"{res['rows'] / res['seconds']:>12,.0f} {res['peak_rss_mb']:>12,.0f}")
    out = ROOT / "bench" / "results" / "policy_stats.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
