"""evaluate_parquet: batch-by-batch evaluation of a Parquet decision log equals evaluate() on the loaded log."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scale_logs import write_log
from test_accumulators import assert_tables_equal, every_estimator

from offline_eval import DR, IPS, SNIPS, LoggedData, evaluate
from offline_eval.diagnostics import DiagnosticWarning
from offline_eval.reward_models import RidgeRewardModel
from offline_eval.streaming import evaluate_parquet


@pytest.fixture(scope="module")
def log(tmp_path_factory):
    path = tmp_path_factory.mktemp("log")
    policies = write_log(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        data = LoggedData.from_parquet(path)
    return path, policies, data


def messages(caught) -> list[str]:
    return sorted(str(w.message) for w in caught if issubclass(w.category, UserWarning))


@pytest.mark.parametrize("kind", ["auto", "normal"])
def test_streaming_equals_in_memory_with_every_estimator(log, kind):
    path, policies, data = log
    estimators = every_estimator(kind)
    with warnings.catch_warnings(record=True) as want_warnings:
        warnings.simplefilter("always")
        want = evaluate(data, policies, estimators)
        # from_parquet warned about the rows without reward when the fixture loaded them: say it again here
        warnings.warn("dropped 25 of 6000 rows with a missing reward (outcome not joined yet); pass "
                      'missing_reward="raise" to fail instead', UserWarning, stacklevel=1)
    with warnings.catch_warnings(record=True) as got_warnings:
        warnings.simplefilter("always")
        got = evaluate_parquet(path, policies, estimators, batch_rows=700)
    assert_tables_equal(got, want)
    assert messages(got_warnings) == messages(want_warnings)
    assert got.recommended.sum() == len(policies)


def test_default_estimators_on_a_pyarrow_dataset_and_a_file_list(log):
    import pyarrow.dataset as ds

    path, policies, data = log
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        want = evaluate(data, policies)
        files = sorted(path.glob("part-*.parquet"))
        dataset = ds.dataset([str(f) for f in files], format="parquet")
        got_dataset = evaluate_parquet(dataset, policies, batch_rows=1000)
        got_files = evaluate_parquet(files, policies)
    assert_tables_equal(got_dataset, want)
    assert_tables_equal(got_files, want)
    assert set(want.interval) >= {"el-ips", "el"}  # small log: the EL intervals, from the retained rows


def test_batch_size_does_not_change_the_result(log):
    path, policies, _ = log
    estimators = [IPS(interval="normal"), SNIPS(interval="normal"), DR(reward_model=RidgeRewardModel(),
                                                                     interval="normal")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        tables = [evaluate_parquet(path, {"linucb": policies["linucb"]}, estimators, batch_rows=b)
                  for b in (97, 5000)]
    assert_tables_equal(tables[0], tables[1])


def test_bad_arguments_name_what_is_wrong(log, tmp_path):
    path, policies, data = log
    with pytest.raises(TypeError, match="per-row probability arrays need the rows in memory"):
        evaluate_parquet(path, {"array": np.full((data.n, 4), 0.25)})
    with pytest.raises(ValueError, match="batch_rows must be a positive int"):
        evaluate_parquet(path, policies, batch_rows=0)
    with pytest.raises(ValueError, match="does not exist"):
        evaluate_parquet(tmp_path / "nowhere", policies)
    with pytest.raises(TypeError, match="non-empty mapping"):
        evaluate_parquet(path, {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiagnosticWarning)
        with pytest.raises(ValueError, match="no decision-log part files"):
            evaluate_parquet(tmp_path, policies)


def test_the_scale_modules_import_pyspark_and_bandit_lazily():
    import subprocess
    import sys

    code = ("import sys, offline_eval.streaming, offline_eval.spark, offline_eval.accumulators\n"
            "assert 'pyspark' not in sys.modules, 'pyspark imported'\n"
            "assert not any(m == 'bandit' or m.startswith('bandit.') for m in sys.modules), 'bandit imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)
