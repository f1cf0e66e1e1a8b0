"""Scale-out bench: rows/s and peak memory of in-memory, streaming and local-Spark evaluation and policy fitting.

Configurations (each run in its own child process, after a JIT / JVM warm-up on a 20 000-row log; the parent samples
the resident memory of the child and all its descendants -- the Spark JVM and Python workers included -- every
50 ms with psutil and reports the peak):

* ``memory``: ``LoggedData.from_parquet`` then :func:`offline_eval.evaluate` (load and evaluation timed apart);
* ``streaming``: :func:`offline_eval.streaming.evaluate_parquet`;
* ``spark``: :func:`offline_eval.spark.evaluate` on ``spark.read.parquet`` in ``local[2]`` mode;

for the estimators IPS + SNIPS (``ips+snips``; ``ips+snips-arm``: the same for the single-arm target "always duo",
which isolates the estimators' own cost from the policy's scoring), DR with a ridge reward model (one fitting pass, then the evaluation pass) and DR
with the default model for revenue rewards (value-aware logistic: a few Newton passes); intervals "auto" (normal at
these sizes). Policy fitting (LinUCB, 8 features, 5 arms): ``update_batch`` on the loaded arrays, the streaming
``bandit.streaming.fit_parquet`` and the Spark ``bandit.spark.fit``.

Data: a synthetic upsell log in the decision-log schema (8 features, 5 plans priced 5.99-24.99, a softmax logger
with a 20 % uniform floor, revenue = price x conversion), written once per size as 10^6-row part files (snappy
Parquet, the writer's default) and reused. The target policy is a LinUCB fitted on 20 000 rows, evaluated through
its ``action_probabilities`` (exploration floor 0.1), so its scoring is part of every evaluation's cost.

Every streaming and Spark evaluation includes the duplicate-event-id check (the ids are unique here). Streaming
runs use the defaults: ``batch_rows`` 2^18 and ``cache_bytes`` 1 GiB, so at 10^7 rows the reward models' columns
(context, action, reward, folds: 77 bytes per row, 0.77 GB) stay in memory after their first pass and the Newton
passes do not read the files again (the peak RSS shows it), nor does the evaluation pass read the context and ids;
at 10^8 rows they do not fit and every pass reads. Streaming passes run on the machine's cores (the reading thread
decodes the part files batch by batch, ``offline_eval.streaming.read_row_groups``, while
``offline_eval.streaming.PASS_THREADS`` worker threads, 2 here, convert and accumulate) with one BLAS thread; the
LinUCB target declares its scoring thread-safe (``action_probabilities_thread_safe``), so the worker threads score
batches at once.
Each record carries the machine's 1-minute load average before and after the run (2 cores, shared with other
jobs: a load above 2 means the run had less than the whole machine).

Usage::

    python bench/scale_bench.py --max-rows 1e7          # 10^6 and 10^7 rows (streaming also 10^8 with 1e8)
    python bench/scale_bench.py --max-rows 1e6 --data-dir /tmp/scale
    python bench/scale_bench.py --sizes 1e8 --engines streaming --tasks ips+snips,ips+snips-arm,dr-ridge,fit

Writes ``bench/results/scale.json`` (merging with the configurations of earlier runs) and prints a table. In-memory
and Spark runs stop at 10^7 rows, DR with the default model too (its Newton passes). The data directory (default ``/work/scratch/scale``) is
deleted at the end unless ``--keep-data``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS_DIR, print_table, write_results  # noqa: E402

ARMS = ["solo", "duo", "family", "premium", "business"]
PRICES = np.array([5.99, 9.99, 14.99, 19.99, 24.99])
D = 8
PART_ROWS = 1_000_000
WARMUP_ROWS = 20_000
SPARK_MAX_ROWS = 10_000_000
MEMORY_MAX_ROWS = 10_000_000


# ----------------------------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------------------------


def generate(directory: Path, n_rows: int, seed: int = 0) -> float:
    """Write an ``n_rows`` log as 10^6-row parts (vectorised; skipped when complete). Returns seconds spent."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from offline_eval.schema import encode_decisions

    marker = directory / "_COMPLETE"
    if marker.exists():
        return 0.0
    t0 = time.perf_counter()
    directory.mkdir(parents=True, exist_ok=True)
    W = np.random.default_rng(seed).normal(scale=0.5, size=(D, len(ARMS)))
    for p, start in enumerate(range(0, n_rows, PART_ROWS)):
        m = min(PART_ROWS, n_rows - start)
        rng = np.random.default_rng([seed, p])
        X = rng.standard_normal((m, D))
        logits = X @ W
        P = np.exp(logits - logits.max(axis=1, keepdims=True))
        P /= P.sum(axis=1, keepdims=True)
        P = 0.8 * P + 0.2 / len(ARMS)
        a = (P.cumsum(axis=1) > rng.random((m, 1))).argmax(axis=1)
        z = -2.2 + 0.8 * X[:, 0] * (a % 2) - 0.4 * X[:, 1] * (a >= 3) - 0.1 * a
        reward = PRICES[a] * (rng.random(m) < 1.0 / (1.0 + np.exp(-z)))
        ids = pc.cast(pa.array(np.arange(start, start + m)), pa.string())
        table = encode_decisions(
            event_id=ids, timestamp_us=1_700_000_000_000_000 + np.arange(start, start + m, dtype=np.int64),
            context=X, action=a, propensity=P[np.arange(m), a], probabilities=P,
            eligible=np.ones((m, len(ARMS)), dtype=bool), policy="bench-logger", policy_version="v1", arms=ARMS,
            reward=reward,
        )
        pq.write_table(table, directory / f"part-{p:08d}-bench.parquet")
    marker.touch()
    return time.perf_counter() - t0


def target_policy(directory: Path):
    """LinUCB fitted on the first 20 000 rows of the log."""
    from bandit import LinUCB
    from offline_eval import LoggedData

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = LoggedData.from_parquet(sorted(directory.glob("part-*.parquet"))[:1])
    policy = LinUCB(ARMS, n_features=D, alpha=0.5, exploration_floor=0.1, seed=1)
    policy.update_batch(data.context[:20_000], data.action[:20_000], data.reward[:20_000])
    return policy


# ----------------------------------------------------------------------------------------------------------------
# one configuration (child process)
# ----------------------------------------------------------------------------------------------------------------


def _estimators(kind: str):
    from offline_eval import DR, IPS, SNIPS
    from offline_eval.reward_models import RidgeRewardModel

    return {"ips+snips": [IPS(), SNIPS()], "ips+snips-arm": [IPS(), SNIPS()],
            "dr-ridge": [DR(reward_model=RidgeRewardModel())], "dr-default": [DR()]}[kind]


def _spark():
    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = sys.executable
    session = (
        SparkSession.builder.master("local[2]").appName("scale-bench").config("spark.ui.enabled", "false")
        .config("spark.driver.memory", "2g").config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.session.timeZone", "UTC").getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    return session


def run_config(config: dict) -> dict:
    """Run one configuration on ``config["path"]`` after a warm-up on ``config["warmup"]``; returns timings."""
    warnings.simplefilter("ignore")
    path, warm = Path(config["path"]), Path(config["warmup"])
    engine, task = config["engine"], config["task"]
    policy = target_policy(warm)
    spark = _spark() if engine == "spark" else None

    def once(where: Path) -> dict:
        t0 = time.perf_counter()
        out: dict = {}
        if task.startswith("fit"):
            from bandit import LinUCB

            learner = LinUCB(ARMS, n_features=D, alpha=0.5, seed=2)
            if engine == "memory":
                from offline_eval import LoggedData

                data = LoggedData.from_parquet(where, validate=False)
                out["load_s"] = time.perf_counter() - t0
                t1 = time.perf_counter()
                learner.update_batch(data.context, data.action, data.reward)
                out["work_s"] = time.perf_counter() - t1
            elif engine == "streaming":
                from bandit.streaming import fit_parquet

                fit_parquet(learner, where, batch_rows=1 << 18)
            else:
                from bandit.spark import fit

                fit(learner, spark.read.parquet(str(where)))
        else:
            estimators = _estimators(task)
            policies = {"always duo": "duo"} if task.endswith("-arm") else {"linucb": policy}
            if engine == "memory":
                from offline_eval import LoggedData, evaluate

                data = LoggedData.from_parquet(where)
                out["load_s"] = time.perf_counter() - t0
                t1 = time.perf_counter()
                table = evaluate(data, policies, estimators)
                out["work_s"] = time.perf_counter() - t1
            elif engine == "streaming":
                from offline_eval.streaming import evaluate_parquet

                table = evaluate_parquet(where, policies, estimators)
            else:
                from offline_eval.spark import evaluate as spark_evaluate

                table = spark_evaluate(spark.read.parquet(str(where)), policies, estimators, arms=ARMS)
            out["values"] = table["value"].round(6).tolist()
            out["intervals"] = table["interval"].tolist()
        out["total_s"] = time.perf_counter() - t0
        return out

    warm_t = once(warm)["total_s"]
    result = once(path)
    result["warmup_s"] = warm_t
    return result


# ----------------------------------------------------------------------------------------------------------------
# parent: spawn, sample memory, tabulate
# ----------------------------------------------------------------------------------------------------------------


def measure(config: dict) -> dict:
    """Run ``config`` in a child process; peak RSS of the process tree sampled every 50 ms."""
    import psutil

    load_before = os.getloadavg()[0]
    proc = subprocess.Popen([sys.executable, __file__, "--child", json.dumps(config)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        root = psutil.Process(proc.pid)
        while not stop.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
                rss = 0
                for p in procs:
                    try:
                        rss += p.memory_info().rss
                    except psutil.Error:
                        pass
                peak = max(peak, rss)
            except psutil.Error:
                pass
            time.sleep(0.05)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    out, err = proc.communicate()
    stop.set()
    thread.join()
    if proc.returncode != 0:
        return {"error": err.strip().splitlines()[-1] if err.strip() else f"exit {proc.returncode}",
                "peak_rss_gb": peak / 1e9}
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_rss_gb"] = peak / 1e9
    # the machine is shared: the 1-minute load average (2 cores) before and after the run says how busy it was
    result["load_avg_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-rows", type=float, default=1e7, help="largest log size (1e6, 1e7 or 1e8)")
    parser.add_argument("--sizes", help="comma-separated sizes to run (default: 1e6, 1e7, 1e8 up to --max-rows)")
    parser.add_argument("--data-dir", default="/work/scratch/scale", help="where the logs are written")
    parser.add_argument("--keep-data", action="store_true", help="keep the generated logs")
    parser.add_argument("--engines", default="memory,streaming,spark", help="comma-separated subset")
    parser.add_argument("--tasks", default="ips+snips,ips+snips-arm,dr-ridge,dr-default,fit",
                        help="comma-separated subset")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_config(json.loads(args.child))))
        return
    root = Path(args.data_dir)
    sizes = [n for n in (10**6, 10**7, 10**8) if n <= int(args.max_rows)]
    if args.sizes:
        sizes = [int(float(v)) for v in args.sizes.split(",")]
    engines = args.engines.split(",")
    tasks = args.tasks.split(",")
    warm = root / "warmup"
    generate(warm, WARMUP_ROWS)
    rows = []
    results = []
    generated = {}
    for n in sizes:
        directory = root / f"rows_{n}"
        seconds = generate(directory, n)
        if seconds:  # 0.0: the log was already there (the time recorded when it was written is kept)
            generated[n] = seconds
        for engine in engines:
            if engine == "spark" and n > SPARK_MAX_ROWS or engine == "memory" and n > MEMORY_MAX_ROWS:
                continue
            for task in tasks:
                if n > 10**7 and task == "dr-default":
                    continue  # the logistic model's Newton passes: measured at 10^7
                config = {"engine": engine, "task": task, "path": str(directory), "warmup": str(warm), "n": n}
                print(f"running {engine} {task} n={n:.0e} ...", flush=True)
                res = measure(config)
                seconds = res.get("work_s", res.get("total_s"))
                record = {"engine": engine, "task": task, "rows": n, **res,
                          "rows_per_s": n / seconds if seconds else None,
                          "rows_per_s_incl_load": n / res["total_s"] if "total_s" in res else None}
                results.append(record)
                rows.append({
                    "engine": engine, "task": task, "rows": f"{n:.0e}",
                    "rows/s": "-" if record["rows_per_s"] is None else f"{record['rows_per_s']:.3g}",
                    "rows/s incl. load": "-" if record["rows_per_s_incl_load"] is None
                    else f"{record['rows_per_s_incl_load']:.3g}",
                    "peak RSS GB": f"{res['peak_rss_gb']:.2f}",
                    "warm-up s": f"{res.get('warmup_s', float('nan')):.1f}",
                    "load": "/".join(f"{v:.1f}" for v in res.get("load_avg_1min", [])),
                    "note": res.get("error", ""),
                })
                print_table(rows[-1:], list(rows[-1]))
    print_table(rows, list(rows[0]))
    # runs of different sizes (the 10^8 rows run later than the others) accumulate in one results file
    previous = RESULTS_DIR / "scale.json"
    kept = []
    if previous.exists():
        old = json.loads(previous.read_text())
        done = {(r["engine"], r["task"], r["rows"]) for r in results}
        kept = [r for r in old.get("results", []) if (r["engine"], r["task"], r["rows"]) not in done]
        generated = {**{int(k): v for k, v in old.get("config", {}).get("generation_s", {}).items()}, **generated}
    write_results("scale", {
        "config": {"features": D, "arms": ARMS, "part_rows": PART_ROWS, "warmup_rows": WARMUP_ROWS,
                   "generation_s": {str(k): v for k, v in sorted(generated.items())}},
        "results": sorted(kept + results, key=lambda r: (r["rows"], r["engine"], r["task"])),
    })
    if not args.keep_data:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
