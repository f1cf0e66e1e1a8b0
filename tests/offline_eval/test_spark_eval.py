"""offline_eval.spark.evaluate: per-partition accumulators merged on the driver equal evaluate() in memory."""

from __future__ import annotations

import warnings

import pytest
from scale_logs import ARMS, add_duplicates, old_form, write_log
from test_accumulators import assert_tables_equal, every_estimator

from offline_eval import DR, IPS, SNDR, SNIPS, LoggedData, SwitchDR, evaluate
from offline_eval.reward_models import MRDRRewardModel, RidgeRewardModel

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def log(tmp_path_factory):
    path = tmp_path_factory.mktemp("sparklog")
    policies = write_log(path, n=4000, parts=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        data = LoggedData.from_parquet(path)
    return path, policies, data


def test_spark_equals_in_memory_for_every_estimator(spark, log):
    from offline_eval.spark import evaluate as spark_evaluate

    path, policies, data = log
    # rows hashed across 3 partitions: the folds follow the ids and the statistics merge, whatever the partitioning
    df = spark.read.parquet(str(path)).repartition(3, "event_id")
    # ridge models (one pass each) keep the job count small; the logistic passes are the streaming tests' (same code)
    ridge = RidgeRewardModel()
    estimators = every_estimator("normal", ridge) + [IPS(), SNIPS(), DR(reward_model=ridge), SwitchDR(reward_model=ridge)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        want = evaluate(data, policies, estimators)
        got = spark_evaluate(df, policies, estimators, arms=ARMS)
    assert_tables_equal(got, want)
    assert {"normal", "bias-aware(normal)", "el-ips", "el", "bias-aware(el)"} <= set(got.interval)


def test_arm_names_are_read_from_the_log_and_missing_rewards_are_reported(spark, log):
    from offline_eval.spark import evaluate as spark_evaluate

    path, policies, data = log
    df = spark.read.parquet(str(path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = spark_evaluate(df, {"linucb": policies["linucb"]}, [IPS(), SNIPS()])
    assert any("dropped 25 of 4000 rows with a missing reward" in str(w.message) for w in caught)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        want = evaluate(data, {"linucb": policies["linucb"]}, [IPS(), SNIPS()])
    assert_tables_equal(got, want)
    with pytest.raises(ValueError, match="no column"):
        spark_evaluate(df.drop("propensity"), policies)


def test_spark_evaluate_example_runs_and_agrees_with_streaming(spark, tmp_path, capsys):
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "spark_evaluate.py"
    spec = importlib.util.spec_from_file_location("example_spark_evaluate", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # the example's dataclass looks its module up
    spec.loader.exec_module(module)
    result = module.main(["--n", "3000", "--out", str(tmp_path)], spark=spark)
    assert result.max_diff_vs_streaming is not None and result.max_diff_vs_streaming < 1e-9
    assert result.table.recommended.sum() == 1 and len(result.table) == 8  # 7 default estimators + DR-DM blend
    assert (tmp_path / "evaluation.csv").exists()
    assert "max |Spark - streaming|" in capsys.readouterr().out


def test_repeated_event_ids_are_dropped_and_mrdr_fitted_as_in_memory(spark, tmp_path):
    from offline_eval.spark import evaluate as spark_evaluate

    policies = write_log(tmp_path, n=2400, parts=3)
    add_duplicates(tmp_path)
    policies = {"linucb": policies["linucb"]}  # MRDR is fitted per target: one keeps the job count small
    # two Newton iterations (both fits stop there, in the same place, and warn): the MRDR passes of Spark, in 4 jobs
    mrdr = MRDRRewardModel(max_iter=2)
    estimators = [IPS(), SNIPS(), DR(reward_model=RidgeRewardModel()), SNDR(reward_model=mrdr)]
    with warnings.catch_warnings(record=True) as want_warnings:
        warnings.simplefilter("always")
        want = evaluate(LoggedData.from_parquet(tmp_path), policies, estimators)
    with warnings.catch_warnings(record=True) as got_warnings:
        warnings.simplefilter("always")
        got = spark_evaluate(spark.read.parquet(str(tmp_path)), policies, estimators, arms=ARMS)
    assert_tables_equal(got, want)

    def messages(caught):
        return sorted(str(w.message) for w in caught if issubclass(w.category, UserWarning))

    assert messages(got_warnings) == messages(want_warnings)
    assert any("holds 6 row(s) whose event id already appeared" in m for m in messages(got_warnings))


def test_spark_reads_new_and_old_parts_mixed(spark, log, tmp_path):
    """Parts of both element forms of the list columns alternating, a new-form part first (the other order:
    tests/bandit/test_spark_fit.py): Spark's reader equals the streaming one on the new-form log."""
    import pyarrow.parquet as pq

    from offline_eval.spark import evaluate as spark_evaluate
    from offline_eval.streaming import evaluate_parquet

    path, policies, _ = log
    targets = {"linucb": policies["linucb"]}
    for i, part in enumerate(sorted(path.glob("part-*.parquet"))):
        table = pq.read_table(part)
        pq.write_table(old_form(table) if i % 2 else table, tmp_path / part.name)
    estimators = [IPS(interval="normal"), SNIPS(interval="normal")]  # the read path is under test
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        want = evaluate_parquet(path, targets, estimators)
        got = spark_evaluate(spark.read.parquet(str(tmp_path)), targets, estimators, arms=ARMS)
    assert_tables_equal(got, want)


def test_bad_rows_are_left_out_as_in_memory_and_streaming(spark, tmp_path):
    """A log with bad rows of every kind: in memory, streaming and Spark leave out the same rows (the reward model
    too, so DR agrees) and count them alike; invalid_rows="raise" stops at the first."""
    import re

    from test_quarantine import corrupt

    from offline_eval.schema import DecisionLogWarning
    from offline_eval.spark import evaluate as spark_evaluate
    from offline_eval.streaming import evaluate_parquet

    policies = write_log(tmp_path, n=1200, parts=3)
    ids = corrupt(tmp_path)
    targets = {"linucb": policies["linucb"], "always solo": "solo"}
    estimators = [IPS(), SNIPS(), DR(reward_model=RidgeRewardModel())]
    caught = {}
    for engine in ("memory", "streaming", "spark"):
        with warnings.catch_warnings(record=True) as caught[engine]:
            warnings.simplefilter("always")
            if engine == "memory":
                want = evaluate(LoggedData.from_parquet(tmp_path), targets, estimators)
            elif engine == "streaming":
                streamed = evaluate_parquet(tmp_path, targets, estimators, batch_rows=150)
            else:
                got = spark_evaluate(spark.read.parquet(str(tmp_path)), targets, estimators, arms=ARMS)
    assert_tables_equal(streamed, want)
    assert_tables_equal(got, want)
    assert got.attrs["quarantined"] == streamed.attrs["quarantined"] == want.attrs["quarantined"]

    def messages(engine):  # Spark's partitions need not follow the file order: the first ids shown may differ
        return sorted(re.sub(r"; first: [^)]*\)", ")", str(w.message)) for w in caught[engine]
                      if issubclass(w.category, UserWarning))

    assert messages("spark") == messages("streaming") == messages("memory")
    quarantine = [m for m in messages("spark") if m.startswith("quarantined")]
    assert len(quarantine) == 1 and f"quarantined {len(ids)} of 1175 rows" in quarantine[0]
    assert any(w.category is DecisionLogWarning for w in caught["spark"])
    with pytest.raises(ValueError, match=r"action must lie in \[0, K=4\); \d+ of \d+ rows .*first at row 3: 7"):
        spark_evaluate(spark.read.parquet(str(tmp_path)), targets, [IPS()], arms=ARMS, invalid_rows="raise")
