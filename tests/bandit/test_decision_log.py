"""Tests of bandit.decision_log: the Parquet decision-log writer and reader."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from log_helpers import ARMS, T0, RecordingPolicy, as_batch, make_decision, part_files, random_decisions

import bandit.decision_log as dl
from bandit.decision import BatchDecision, Decision
from bandit.decision_log import DecisionLog, read_decision_log
from offline_eval.schema import (
    DECISION_COLUMNS,
    META_ARMS,
    META_SCHEMA_VERSION,
    SCHEMA_VERSION,
    DecisionLogWarning,
    arms_from_schema,
    decision_log_schema,
)
from tests.offline_eval.scale_logs import old_form

# ------------------------------------------------------------------------------------------------------------------
# writer: round trip, schema
# ------------------------------------------------------------------------------------------------------------------


def test_round_trip_matches_schema_and_values(tmp_path):
    decisions, X = random_decisions(6, seed=1)
    paris = dt.timezone(dt.timedelta(hours=2))
    stamps = [
        dt.datetime(2024, 5, 1, 14, 0, tzinfo=paris),  # aware, non-UTC -> 12:00 UTC
        dt.datetime(2024, 5, 1, 12, 0, 1),  # naive -> taken as UTC
        np.datetime64("2024-05-01T12:00:02.123456"),
        pd.Timestamp("2024-05-01T08:00:03", tz="America/New_York"),  # -> 12:00:03 UTC
        pd.Timestamp("2024-05-01T12:00:04"),
        "2024-05-01T12:00:05Z",
    ]
    expected_ts = pd.to_datetime(
        [
            "2024-05-01T12:00:00",
            "2024-05-01T12:00:01",
            "2024-05-01T12:00:02.123456",
            "2024-05-01T12:00:03",
            "2024-05-01T12:00:04",
            "2024-05-01T12:00:05",
        ],
        utc=True,
        format="ISO8601",
    )
    log = DecisionLog(tmp_path, arms=ARMS, policy_name="LinUCB")
    for d, x, ts in zip(decisions, X, stamps, strict=True):
        log.append(d, x, timestamp=ts)
    df = log.read()

    # on-disk Arrow schema is exactly the contract, metadata included
    (part,) = part_files(tmp_path)
    schema = pq.read_schema(part)
    assert schema.equals(decision_log_schema(4, ARMS), check_metadata=True)
    assert arms_from_schema(schema) == ARMS
    assert schema.metadata[META_SCHEMA_VERSION.encode()].decode() == SCHEMA_VERSION

    assert list(df.columns) == list(DECISION_COLUMNS)
    assert str(df["timestamp"].dtype) == "datetime64[us, UTC]"
    assert df["action"].dtype == np.int32
    assert df["propensity"].dtype == np.float64 and df["reward"].dtype == np.float64
    assert df.attrs["arms"] == ARMS
    assert df["event_id"].tolist() == [d.event_id for d in decisions]
    assert (df["timestamp"] == expected_ts).all()
    np.testing.assert_array_equal(np.stack(df["context"]), X)
    np.testing.assert_array_equal(np.stack(df["probabilities"]), np.stack([d.probabilities for d in decisions]))
    np.testing.assert_array_equal(np.stack(df["eligible"]), np.stack([d.probabilities > 0 for d in decisions]))
    assert df["action"].tolist() == [d.index for d in decisions]
    assert df["action_name"].tolist() == [d.arm for d in decisions]
    assert df["propensity"].tolist() == [d.propensity for d in decisions]
    assert (df["policy"] == "LinUCB").all()
    assert df["policy_version"].tolist() == [d.policy_version for d in decisions]
    assert df["reward"].isna().all()


def test_default_timestamp_is_current_utc(tmp_path):
    (d,), X = random_decisions(1, seed=2)
    log = DecisionLog(tmp_path, arms=ARMS, policy_name="P")
    before = pd.Timestamp.now(tz="UTC").floor("us")
    log.append(d, X[0])
    after = pd.Timestamp.now(tz="UTC")
    ts = log.read()["timestamp"].iloc[0]
    assert before <= ts <= after


def test_batch_append_equals_single_appends(tmp_path):
    decisions, X = random_decisions(9, seed=3)
    stamps = pd.date_range("2024-05-01", periods=9, freq="min", tz="UTC")
    single = DecisionLog(tmp_path / "single", arms=ARMS, policy_name="P")
    for d, x, ts in zip(decisions, X, stamps, strict=True):
        single.append(d, x, timestamp=ts)
    batch = DecisionLog(tmp_path / "batch", arms=ARMS, policy_name="P")
    batch.append_batch(as_batch(decisions[:4]), X[:4], timestamps=stamps[:4])
    batch.append_batch(as_batch(decisions[4:]), X[4:], timestamps=list(stamps[4:].to_pydatetime()))
    a, b = single.read(), batch.read()
    # a batch shares one policy_version
    a["policy_version"] = [decisions[0].policy_version] * 4 + [decisions[4].policy_version] * 5
    for col in DECISION_COLUMNS:
        if col in ("context", "probabilities", "eligible"):
            np.testing.assert_array_equal(np.stack(a[col]), np.stack(b[col]), err_msg=col)
        else:
            pd.testing.assert_series_equal(a[col], b[col], check_names=True)


def test_batch_scalar_timestamp_and_explicit_eligible(tmp_path):
    probs = np.array([[0.0, 1.0, 0.0], [0.5, 0.5, 0.0]])
    decisions = [make_decision("a", 1, probs[0]), make_decision("b", 0, probs[1])]
    eligible = np.array([[True, True, False], [True, True, True]])  # deterministic policy: eligible but p = 0
    log = DecisionLog(tmp_path, arms=ARMS, policy_name="P")
    stamp = np.datetime64("2024-05-01T09:30")
    with pytest.warns(dl.NoExplorationWarning, match="exploration_floor"):
        log.append_batch(as_batch(decisions), np.ones((2, 2)), timestamps=stamp, eligible=eligible)
    df = log.read()
    assert (df["timestamp"] == pd.Timestamp("2024-05-01T09:30", tz="UTC")).all()
    np.testing.assert_array_equal(np.stack(df["eligible"]), eligible)


def test_eligible_given_as_mask_or_names(tmp_path):
    log = DecisionLog(tmp_path, arms=ARMS, policy_name="P")
    with pytest.warns(dl.NoExplorationWarning):
        log.append(make_decision("names", 1, [0.0, 1.0, 0.0]), np.ones(2), eligible=["duo", "individual"])
    log.append(make_decision("mask", 0, [1.0, 0.0, 0.0]), np.ones(2), eligible=[True, False, True])
    log.append(make_decision("default", 2, [0.0, 0.5, 0.5]), np.ones(2))
    np.testing.assert_array_equal(
        np.stack(log.read()["eligible"]), [[True, True, False], [True, False, True], [False, True, True]]
    )


def test_parts_respect_rows_per_part_and_keep_order(tmp_path):
    decisions, X = random_decisions(17, seed=4)
    log = DecisionLog(tmp_path, arms=ARMS, policy_name="P", rows_per_part=3)
    for d, x in zip(decisions[:7], X[:7], strict=True):
        log.append(d, x)
    assert len(part_files(tmp_path)) == 2 and log.n_buffered == 1
    log.append_batch(as_batch(decisions[7:]), X[7:])  # 1 + 10 buffered rows -> 3 full parts, 2 left
    assert log.n_buffered == 2
    log.close()
    parts = part_files(tmp_path)
    assert [pq.read_metadata(p).num_rows for p in parts] == [3, 3, 3, 3, 3, 2]
    df = read_decision_log(tmp_path)
    assert df["event_id"].tolist() == [d.event_id for d in decisions]
    np.testing.assert_array_equal(np.stack(df["context"]), X)


def test_pyarrow_dataset_reads_the_log_and_ignores_temporaries(tmp_path):
    decisions, X = random_decisions(5, seed=5)
    with DecisionLog(tmp_path, arms=ARMS, policy_name="P", rows_per_part=2) as log:
        log.append_batch(as_batch(decisions), X)
    (tmp_path / ".part-00000099-deadbeef.parquet.tmp").write_bytes(b"PAR1 truncated")
    table = ds.dataset(tmp_path, format="parquet").to_table()
    assert table.num_rows == 5
    assert sorted(table.column("event_id").to_pylist()) == sorted(d.event_id for d in decisions)
    assert json.loads(table.schema.metadata[META_ARMS.encode()]) == ARMS


def test_offline_eval_reader_reads_the_log(tmp_path):
    data_mod = pytest.importorskip("offline_eval.data")
    decisions, X = random_decisions(8, seed=6)
    with DecisionLog(tmp_path, arms=ARMS, policy_name="P") as log:
        log.append_batch(as_batch(decisions), X, timestamps=T0)
    df = read_decision_log(tmp_path)
    df["reward"] = np.arange(8, dtype=np.float64)
    joined = tmp_path / "joined.parquet"
    table = pa.Table.from_pandas(df, schema=decision_log_schema(4, ARMS), preserve_index=False)
    pq.write_table(table, joined, use_compliant_nested_type=False)  # as DecisionLog writes it
    data = data_mod.LoggedData.from_parquet(joined)
    np.testing.assert_array_equal(np.asarray(data.action), [d.index for d in decisions])
    np.testing.assert_allclose(np.asarray(data.propensity), [d.propensity for d in decisions])
    np.testing.assert_array_equal(np.asarray(data.reward), np.arange(8.0))


def test_extra_columns_are_preserved(tmp_path):
    decisions, X = random_decisions(4, seed=7)
    log = DecisionLog(tmp_path, arms=ARMS, policy_name="P", extra_columns={"country": "string", "tenure": pa.int64()})
    log.append(decisions[0], X[0], extra={"country": "SE", "tenure": 12})
    log.append(decisions[1], X[1])  # all missing -> null
    log.append_batch(as_batch(decisions[2:]), X[2:], extra={"tenure": [1, None]})
    df = log.read()
    assert list(df.columns) == [*DECISION_COLUMNS, "country", "tenure"]
    assert df["country"].tolist()[0] == "SE" and df["country"].isna().tolist()[1:] == [True, True, True]
    assert df["tenure"].tolist()[0] == 12 and df["tenure"].tolist()[2] == 1
    assert df["tenure"].isna().tolist() == [False, True, False, True]
    assert pq.read_schema(part_files(tmp_path)[0]).field("tenure").type == pa.int64()


def test_policy_supplies_arms_and_name(tmp_path):
    policy = RecordingPolicy(ARMS)
    log = DecisionLog(tmp_path / "a", policy)
    assert log.arms == ARMS
    (d,), X = random_decisions(1, seed=8)
    log.append(d, X[0])
    assert log.read()["policy"].tolist() == ["RecordingPolicy"]
    renamed = DecisionLog(tmp_path / "b", policy, policy_name="LinUCB-2024-05")
    renamed.append(d, X[0])
    assert renamed.read()["policy"].tolist() == ["LinUCB-2024-05"]


def test_reopening_continues_the_log(tmp_path):
    decisions, X = random_decisions(4, seed=9)
    with DecisionLog(tmp_path, arms=ARMS, policy_name="P") as log:
        log.append(decisions[0], X[0])
    # the first part as a writer before the non-nullable list elements wrote it: the log continues in the new form
    (first,) = part_files(tmp_path)
    pq.write_table(old_form(pq.read_table(first)), first)
    log2 = DecisionLog(tmp_path, arms=ARMS, policy_name="P")
    assert log2.n_features == 4
    with pytest.raises(ValueError, match="context has 3 features"):
        log2.append(decisions[1], X[1, :3])
    log2.append(decisions[1], X[1])
    df = log2.read()
    assert df["event_id"].tolist() == [decisions[0].event_id, decisions[1].event_id]
    np.testing.assert_array_equal(np.stack(df["context"]), X[:2])
    np.testing.assert_array_equal(np.stack(df["eligible"]), [decisions[0].eligible, decisions[1].eligible])
    names = [p.name for p in part_files(tmp_path)]
    assert [n.split("-")[1] for n in names] == ["00000000", "00000001"]
    nullable = [pq.read_schema(path).field("context").type.value_field.nullable for path in part_files(tmp_path)]
    assert nullable == [True, False]


def test_empty_log_reads_as_empty_frame(tmp_path):
    df = DecisionLog(tmp_path, arms=ARMS, policy_name="P").read()
    assert len(df) == 0 and list(df.columns) == list(DECISION_COLUMNS)
    with pytest.raises(ValueError, match="no decision-log part files"):
        read_decision_log(tmp_path)


def test_close_and_context_manager(tmp_path):
    decisions, X = random_decisions(2, seed=10)
    with pytest.raises(RuntimeError, match="boom"):
        with DecisionLog(tmp_path, arms=ARMS, policy_name="P") as log:
            log.append(decisions[0], X[0])
            raise RuntimeError("boom")
    assert read_decision_log(tmp_path)["event_id"].tolist() == [decisions[0].event_id]  # flushed on the way out
    with pytest.raises(ValueError, match="closed"):
        log.append(decisions[1], X[1])
    log.close()  # idempotent


# ------------------------------------------------------------------------------------------------------------------
# writer: validation (message names the argument; the log is unchanged)
# ------------------------------------------------------------------------------------------------------------------


def _bad_appends():
    good = make_decision("ok-1", 1, [0.25, 0.75, 0.0])
    x = np.ones(4)
    return [
        ("no event id", lambda log: log.append(make_decision(None, 1, [0.25, 0.75, 0.0]), x), ValueError,
         r"event_id.*policy\.choose\(\)"),
        ("duplicate id", lambda log: log.append(make_decision("first", 0, [0.5, 0.5, 0.0]), x), ValueError,
         "already appended"),
        ("new arm", lambda log: log.append(
            Decision(arm="student", index=3, propensity=0.25, probabilities=np.full(4, 0.25), scores=np.zeros(4),
                     event_id="k4", policy_version="v"), x), ValueError, "open a new DecisionLog"),
        ("arm/index mismatch", lambda log: log.append(
            Decision(arm="family", index=1, propensity=0.75, probabilities=np.array([0.25, 0.75, 0.0]),
                     scores=np.zeros(3), event_id="mm", policy_version="v"), x), ValueError, "arm list"),
        ("context length", lambda log: log.append(good, np.ones(5)), ValueError, "context has 5 features"),
        ("context 2-D", lambda log: log.append(good, np.ones((1, 4))), ValueError, "context must be 1-D"),
        ("context NaN", lambda log: log.append(good, np.array([1.0, np.nan, 0, 0])), ValueError, "context.*NaN"),
        ("context text", lambda log: log.append(good, ["a", "b", "c", "d"]), TypeError, "context"),
        ("timestamp int", lambda log: log.append(good, x, timestamp=1714550400), TypeError, "timestamp"),
        ("timestamp NaT", lambda log: log.append(good, x, timestamp=np.datetime64("NaT")), ValueError, "timestamp"),
        ("eligible excludes choice", lambda log: log.append(good, x, eligible=np.array([True, False, True])),
         ValueError, "eligible marks the chosen arm"),
        ("eligible vs probs", lambda log: log.append(good, x, eligible=np.array([False, True, True])),
         ValueError, "eligible marks arms ineligible"),
        ("eligible shape", lambda log: log.append(good, x, eligible=np.array([True, True])), ValueError, "eligible"),
        ("eligible names", lambda log: log.append(good, x, eligible=["duo", "student"]), ValueError, "student"),
        ("extra unknown", lambda log: log.append(good, x, extra={"age": 3}), ValueError, "extra column 'age'"),
        ("extra type", lambda log: log.append(good, x, extra={"country": 3.5}), ValueError, r"extra\['country'\]"),
        ("not a decision", lambda log: log.append({"arm": "duo"}, x), TypeError, "decision must be"),
        ("batch ids missing", lambda log: log.append_batch(as_batch([good, make_decision(None, 0, [1, 0, 0])]),
                                                            np.ones((2, 4))), ValueError, r"event_ids.*choose_batch"),
        ("batch dup ids", lambda log: log.append_batch(as_batch([good, good]), np.ones((2, 4))), ValueError,
         "unique"),
        ("batch X rows", lambda log: log.append_batch(as_batch([good]), np.ones((2, 4))), ValueError, "X must have"),
        ("batch timestamps", lambda log: log.append_batch(as_batch([good]), np.ones((1, 4)), timestamps=[1]),
         TypeError, "timestamps"),
        ("batch eligible", lambda log: log.append_batch(as_batch([good]), np.ones((1, 4)),
                                                        eligible=np.ones((1, 2), bool)), ValueError, "eligible"),
        ("batch extra length", lambda log: log.append_batch(as_batch([good]), np.ones((1, 4)),
                                                            extra={"country": ["a", "b"]}), ValueError, "extra"),
    ]


@pytest.mark.parametrize("case", _bad_appends(), ids=lambda c: c[0])
def test_bad_append_raises_and_leaves_log_unchanged(tmp_path, case):
    _, call, exc, pattern = case
    log = DecisionLog(tmp_path, arms=ARMS, policy_name="P", extra_columns={"country": "string"})
    log.append(make_decision("first", 0, [0.5, 0.5, 0.0]), np.zeros(4), timestamp=T0)
    with pytest.raises(exc, match=pattern):
        call(log)
    assert log.n_buffered == 1
    df = log.read()
    assert df["event_id"].tolist() == ["first"]


def test_first_rejected_row_does_not_fix_context_length(tmp_path):
    log = DecisionLog(tmp_path, arms=ARMS, policy_name="P")
    with pytest.raises(ValueError, match="propensity"):
        log.append(
            Decision(arm="duo", index=1, propensity=0.0, probabilities=np.array([0.5, 0.5, 0.0]),
                     scores=np.zeros(3), event_id="z", policy_version="v"),
            np.ones(7),
        )
    assert log.n_features is None
    log.append(make_decision("a", 1, [0.5, 0.5, 0.0]), np.ones(2))
    assert log.n_features == 2


@pytest.mark.parametrize(
    ("kwargs", "exc", "pattern"),
    [
        ({}, ValueError, "policy=.*arms="),
        ({"arms": ARMS}, ValueError, "policy_name is required"),
        ({"arms": ARMS, "policy_name": "P", "policy": RecordingPolicy(ARMS)}, ValueError, "either policy or arms"),
        ({"arms": ["a", "a"], "policy_name": "P"}, ValueError, "unique"),
        ({"arms": ARMS, "policy_name": "P", "rows_per_part": 0}, ValueError, "rows_per_part"),
        ({"arms": ARMS, "policy_name": "P", "extra_columns": {"reward": "float64"}}, ValueError, "clashes"),
        ({"arms": ARMS, "policy_name": "P", "extra_columns": {"x": "no-such-type"}}, ValueError, "extra_columns"),
        ({"arms": ARMS, "policy_name": "P", "extra_columns": ["country"]}, TypeError, "extra_columns"),
        ({"policy": object()}, TypeError, "arm_names"),
    ],
)
def test_bad_constructor_arguments(tmp_path, kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        DecisionLog(tmp_path, **kwargs)


def test_directory_bound_to_one_arm_list(tmp_path):
    with DecisionLog(tmp_path, arms=ARMS, policy_name="P") as log:
        log.append(make_decision("a", 0, [1.0, 0.0, 0.0]), np.ones(2))
    with pytest.raises(ValueError, match="new directory"):
        DecisionLog(tmp_path, arms=[*ARMS, "student"], policy_name="P")
    with pytest.raises(ValueError, match="extra_columns must match"):
        DecisionLog(tmp_path, arms=ARMS, policy_name="P", extra_columns={"country": "string"})


# ------------------------------------------------------------------------------------------------------------------
# crash safety
# ------------------------------------------------------------------------------------------------------------------


def _write_half_then_raise(table, where, **kwargs):
    where.write(b"PAR1 half a file")
    raise OSError("disk died mid-write")


def test_failed_write_keeps_earlier_parts_and_buffered_rows(tmp_path, monkeypatch):
    decisions, X = random_decisions(7, seed=11)
    log = DecisionLog(tmp_path, arms=ARMS, policy_name="P", rows_per_part=3)
    for d, x in zip(decisions[:4], X[:4], strict=True):
        log.append(d, x)  # one part of 3 written, 1 buffered
    committed = part_files(tmp_path)
    assert len(committed) == 1

    monkeypatch.setattr(dl.pq, "write_table", _write_half_then_raise)
    with pytest.raises(OSError, match="mid-write"):
        log.append_batch(as_batch(decisions[4:]), X[4:])  # fills a part -> automatic flush fails
    assert part_files(tmp_path) == committed
    assert sorted(os.listdir(tmp_path)) == [committed[0].name]  # temporary removed
    assert log.n_buffered == 4  # nothing lost
    assert read_decision_log(tmp_path)["event_id"].tolist() == [d.event_id for d in decisions[:3]]
    with pytest.raises(ValueError, match="already appended"):  # a retry of the batch is not duplicated
        log.append_batch(as_batch(decisions[4:]), X[4:])

    monkeypatch.undo()
    log.close()
    df = read_decision_log(tmp_path)
    assert df["event_id"].tolist() == [d.event_id for d in decisions]
    np.testing.assert_array_equal(np.stack(df["context"]), X)


def test_failed_rename_keeps_rows(tmp_path, monkeypatch):
    decisions, X = random_decisions(2, seed=12)
    log = DecisionLog(tmp_path, arms=ARMS, policy_name="P")
    log.append(decisions[0], X[0])
    log.flush()

    def broken_replace(src, dst):
        raise OSError("rename failed")

    log.append(decisions[1], X[1])
    monkeypatch.setattr(dl.os, "replace", broken_replace)
    with pytest.raises(OSError, match="rename failed"):
        log.flush()
    monkeypatch.undo()
    assert len(os.listdir(tmp_path)) == 1 and log.n_buffered == 1
    assert read_decision_log(tmp_path)["event_id"].tolist() == [decisions[0].event_id]
    log.flush()
    assert read_decision_log(tmp_path)["event_id"].tolist() == [d.event_id for d in decisions]


def test_second_chunk_failure_does_not_duplicate_first(tmp_path, monkeypatch):
    decisions, X = random_decisions(5, seed=13)
    log = DecisionLog(tmp_path, arms=ARMS, policy_name="P", rows_per_part=2)
    real_write = dl.pq.write_table
    calls = []

    def fail_second(table, where, **kwargs):
        calls.append(table.num_rows)
        if len(calls) == 2:
            _write_half_then_raise(table, where)
        real_write(table, where, **kwargs)

    monkeypatch.setattr(dl.pq, "write_table", fail_second)
    with pytest.raises(OSError):
        log.append_batch(as_batch(decisions), X)
    assert log.n_buffered == 3  # first chunk of 2 on disk, 3 rows kept
    monkeypatch.undo()
    log.close()
    assert read_decision_log(tmp_path)["event_id"].tolist() == [d.event_id for d in decisions]


def test_stray_temporary_from_killed_writer_is_ignored(tmp_path):
    decisions, X = random_decisions(3, seed=14)
    with DecisionLog(tmp_path, arms=ARMS, policy_name="P") as log:
        log.append_batch(as_batch(decisions[:2]), X[:2])
    # what `kill -9` during a write leaves behind: a half-written, dot-prefixed temporary
    good = part_files(tmp_path)[0].read_bytes()
    (tmp_path / ".part-00000001-0123456789abcdef0123456789abcdef.parquet.tmp").write_bytes(good[: len(good) // 2])
    assert read_decision_log(tmp_path)["event_id"].tolist() == [d.event_id for d in decisions[:2]]
    assert ds.dataset(tmp_path, format="parquet").to_table().num_rows == 2
    assert len(pd.read_parquet(tmp_path)) == 2
    with DecisionLog(tmp_path, arms=ARMS, policy_name="P") as log:  # reopening is fine too
        log.append(decisions[2], X[2])
    assert read_decision_log(tmp_path)["event_id"].tolist() == [d.event_id for d in decisions]


_CHILD_WRITER = """
import sys, numpy as np
from bandit.decision_log import DecisionLog
from bandit.decision import Decision
path = sys.argv[1]
probs = np.array([0.5, 0.25, 0.25])
with DecisionLog(path, arms=["individual", "duo", "family"], policy_name="P", rows_per_part=64) as log:
    for i in range(10**9):
        d = Decision(arm="individual", index=0, propensity=0.5, probabilities=probs, scores=probs,
                     event_id=f"e{i}", policy_version="v", eligible=probs > 0)
        log.append(d, np.full(4, float(i)))
        if (i + 1) % 64 == 0:  # the append that filled a part returned: the part is committed
            print(i + 1, flush=True)
"""


def test_sigkill_during_writes_loses_no_committed_record(tmp_path):
    import signal
    import subprocess
    import sys

    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD_WRITER, str(tmp_path / "log")], stdout=subprocess.PIPE, text=True
    )
    try:
        committed = 0
        while committed < 64 * 40:  # let it write ~40 parts, then kill it mid-stream without warning
            line = child.stdout.readline()
            assert line, "the writer died on its own"
            committed = int(line)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        child.kill()
        child.stdout.close()
    df = read_decision_log(tmp_path / "log")  # every committed part reads cleanly, temporaries are ignored
    n = len(df)
    assert n >= committed and n % 64 == 0
    assert df["event_id"].tolist() == [f"e{i}" for i in range(n)]
    np.testing.assert_array_equal(np.stack(df["context"])[:, 0], np.arange(n, dtype=float))


# ------------------------------------------------------------------------------------------------------------------
# eligibility is recorded, never inferred
# ------------------------------------------------------------------------------------------------------------------


def test_policy_without_exploration_logs_its_eligibility_mask_and_warns_once(tmp_path):
    """Regression: LinUCB(exploration_floor=0) logged without eligible= stored probabilities > 0 (one arm only)."""
    from bandit import LinUCB
    from offline_eval import LoggedData

    policy = LinUCB(ARMS, n_features=2, exploration_floor=0.0, seed=0)
    rng = np.random.default_rng(0)
    for i in range(30):  # some learning, so scores differ and the greedy choice is unique
        policy.update(rng.normal(size=2), i % 3, float(i % 3 == 1))
    log = DecisionLog(tmp_path, policy)
    with pytest.warns(dl.NoExplorationWarning, match="exploration_floor") as caught:
        for i in range(20):
            x = rng.normal(size=2)
            d = policy.choose(x, event_id=f"r{i}")
            assert np.count_nonzero(d.probabilities) == 1  # deterministic: all mass on one arm
            log.append(d, x)
        batch = policy.choose_batch(rng.normal(size=(5, 2)), event_ids=[f"b{i}" for i in range(5)])
        log.append_batch(batch, rng.normal(size=(5, 2)))
    assert len([w for w in caught if issubclass(w.category, dl.NoExplorationWarning)]) == 1  # once per log
    df = log.read()
    assert np.stack(df["eligible"]).all()  # every arm was eligible: recorded as such
    assert (np.stack(df["probabilities"]) == 0).sum(axis=1).tolist() == [2] * 25
    df["reward"] = 1.0
    data = LoggedData.from_dataframe(df)
    assert data.eligible.all() and len(data.unsupported_rows()) == 25  # offline evaluation sees the support gap


def test_policy_with_exploration_floor_does_not_warn(tmp_path):
    from bandit import LinUCB

    policy = LinUCB(ARMS, n_features=2, exploration_floor=0.05, seed=0)
    log = DecisionLog(tmp_path, policy)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for i in range(5):
            log.append(policy.choose(np.ones(2), eligible=["duo", "family"], event_id=f"r{i}"), np.ones(2))
    np.testing.assert_array_equal(np.stack(log.read()["eligible"]), [[False, True, True]] * 5)


def test_hand_built_decision_needs_a_mask(tmp_path):
    log = DecisionLog(tmp_path, arms=ARMS, policy_name="P")
    probs = np.array([0.0, 1.0, 0.0])
    bare = Decision(arm="duo", index=1, propensity=1.0, probabilities=probs, scores=probs, event_id="a",
                    policy_version="v")
    with pytest.raises(ValueError, match=r"decision\.eligible is None.*eligible="):
        log.append(bare, np.ones(2))
    bare_batch = BatchDecision(indices=np.array([1]), arms=["duo"], propensities=np.array([1.0]),
                               probabilities=probs[None], scores=probs[None], event_ids=["b"], policy_version="v")
    with pytest.raises(ValueError, match=r"batch\.eligible is None.*eligible="):
        log.append_batch(bare_batch, np.ones((1, 2)))
    assert log.n_buffered == 0 and log.n_features is None
    log.append(bare, np.ones(2), eligible=["duo"])  # an explicit mask is fine
    log.append_batch(bare_batch, np.ones((1, 2)), eligible=np.array([[False, True, False]]))
    np.testing.assert_array_equal(np.stack(log.read()["eligible"]), [[False, True, False]] * 2)


def test_explicit_eligible_overrides_the_decision_mask_but_is_checked(tmp_path):
    log = DecisionLog(tmp_path, arms=ARMS, policy_name="P")
    d = make_decision("a", 1, [0.5, 0.5, 0.0])  # decision.eligible = [T, T, F]
    with pytest.raises(ValueError, match="eligible marks arms ineligible"):
        log.append(d, np.ones(2), eligible=["duo"])  # individual has probability 0.5
    with pytest.warns(dl.NoExplorationWarning):
        log.append(d, np.ones(2), eligible=[True, True, True])
    np.testing.assert_array_equal(np.stack(log.read()["eligible"]), [[True, True, True]])


# ------------------------------------------------------------------------------------------------------------------
# validation on append: nothing invalid is buffered, flush cannot fail because of a row
# ------------------------------------------------------------------------------------------------------------------


def test_lone_surrogate_event_id_is_rejected_and_good_rows_still_flush(tmp_path):
    """Regression: "req-\\ud800" was buffered, then every flush raised and the good rows were lost."""
    decisions, X = random_decisions(3, seed=20)
    log = DecisionLog(tmp_path, arms=ARMS, policy_name="P")
    log.append(decisions[0], X[0])
    bad = make_decision("req-\ud800", 0, [1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match=r"decision\.event_id.*UTF-8.*surrogate"):
        log.append(bad, X[1])
    with pytest.raises(ValueError, match=r"batch\.event_ids\[1\].*UTF-8"):
        log.append_batch(as_batch([decisions[1], bad]), X[1:3])
    assert log.n_buffered == 1
    log.append_batch(as_batch(decisions[1:]), X[1:])
    log.flush()
    assert read_decision_log(tmp_path)["event_id"].tolist() == [d.event_id for d in decisions]


@pytest.mark.parametrize(
    ("event_id", "exc", "pattern"),
    [
        ("x" * 257, ValueError, "at most 256 characters"),
        ("", ValueError, "non-empty"),
        (17, TypeError, "must be a str"),
        (b"req-1", TypeError, "must be a str"),
        ("req-\udfff-tail", ValueError, "surrogate"),
    ],
    ids=["too-long", "empty", "int", "bytes", "low-surrogate"],
)
def test_bad_event_ids_are_rejected(tmp_path, event_id, exc, pattern):
    log = DecisionLog(tmp_path, arms=ARMS, policy_name="P")
    with pytest.raises(exc, match=pattern):
        log.append(make_decision(event_id, 0, [1.0, 0.0, 0.0]), np.ones(2))
    assert log.n_buffered == 0
    log.append(make_decision("x" * 256, 0, [1.0, 0.0, 0.0]), np.ones(2))  # the documented maximum is fine
    assert log.read()["event_id"].str.len().tolist() == [256]


def test_duplicate_event_id_rejected_across_flushes_and_after_reopening(tmp_path):
    """Regression: an id already flushed could be appended again."""
    decisions, X = random_decisions(3, seed=21)
    log = DecisionLog(tmp_path, arms=ARMS, policy_name="P")
    log.append(decisions[0], X[0])
    log.append_batch(as_batch(decisions[1:]), X[1:])
    log.flush()
    again = make_decision(decisions[0].event_id, 0, [1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="already appended"):
        log.append(again, X[0])
    with pytest.raises(ValueError, match="already appended"):
        log.append_batch(as_batch([make_decision("new", 0, [1.0, 0, 0]), decisions[2]]), X[:2])
    log.close()
    reopened = DecisionLog(tmp_path, arms=ARMS, policy_name="P")
    with pytest.raises(ValueError, match="already appended"):
        reopened.append(again, X[0])
    reopened.append(make_decision("new", 0, [1.0, 0.0, 0.0]), X[0])
    assert reopened.read()["event_id"].tolist() == [d.event_id for d in decisions] + ["new"]


def test_id_window_bounds_memory_and_the_reader_quarantines_older_duplicates(tmp_path):
    log = DecisionLog(tmp_path, arms=ARMS, policy_name="P", id_window=3)
    for i in range(6):
        log.append(make_decision(f"e{i}", 0, [1.0, 0.0, 0.0]), np.full(2, float(i)))
        log.flush()
    assert len(log._recent_set) == 3 and len(log._recent) == 3  # bounded: the last id_window rows
    for i in (3, 4, 5):  # the guarantee: the last id_window rows' ids are rejected
        with pytest.raises(ValueError, match="already appended"):
            log.append(make_decision(f"e{i}", 0, [1.0, 0.0, 0.0]), np.zeros(2))
    log.append(make_decision("e0", 0, [1.0, 0.0, 0.0]), np.full(2, 99.0))  # older than the window: accepted
    with pytest.warns(DecisionLogWarning, match=r"1 row\(s\).*'e0'.*kept the first"):
        df = log.read()
    assert df["event_id"].tolist() == [f"e{i}" for i in range(6)]
    assert np.stack(df["context"])[0].tolist() == [0.0, 0.0]  # the first occurrence is the one kept
    # reopening remembers the last id_window ids on disk
    reopened = DecisionLog(tmp_path, arms=ARMS, policy_name="P", id_window=2)
    assert sorted(reopened._recent_set) == ["e0", "e5"]


def test_unwritten_rows_are_never_forgotten_by_the_id_window(tmp_path):
    log = DecisionLog(tmp_path, arms=ARMS, policy_name="P", id_window=2)
    for i in range(5):
        log.append(make_decision(f"e{i}", 0, [1.0, 0.0, 0.0]), np.ones(2))
    for i in range(5):
        with pytest.raises(ValueError, match="already appended"):
            log.append(make_decision(f"e{i}", 0, [1.0, 0.0, 0.0]), np.ones(2))
    log.flush()
    assert len(log._recent_set) == 2


@pytest.mark.parametrize(
    ("probs", "propensity", "pattern"),
    [
        ([0.5, 0.6, 0.0], 0.5, "probability distribution"),
        ([np.nan, 1.0, 0.0], 1.0, "probability distribution"),
        ([-0.5, 1.5, 0.0], 1.5, "probability distribution"),
        ([0.5, 0.5, 0.0], 0.4, "differs from"),
    ],
)
def test_decisions_that_are_not_distributions_are_rejected(tmp_path, probs, propensity, pattern):
    log = DecisionLog(tmp_path, arms=ARMS, policy_name="P")
    d = Decision(arm="duo", index=1, propensity=propensity, probabilities=np.array(probs), scores=np.zeros(3),
                 event_id="a", policy_version="v", eligible=np.ones(3, bool))
    with pytest.raises(ValueError, match=pattern):
        log.append(d, np.ones(2))
    with pytest.raises(ValueError):
        log.append_batch(as_batch([d]), np.ones((1, 2)))
    assert log.n_buffered == 0


def test_mutating_inputs_after_append_changes_nothing(tmp_path):
    decisions, X = random_decisions(4, seed=22)
    log = DecisionLog(tmp_path, arms=ARMS, policy_name="P", extra_columns={"tags": pa.list_(pa.string())})
    x = X[0].copy()
    tags = ["a"]
    log.append(decisions[0], x, extra={"tags": tags})
    x[:] = np.nan
    tags.append(None)
    tags.append(3)  # would not fit list<string> any more
    batch_x = X[1:].copy()
    log.append_batch(as_batch(decisions[1:]), batch_x, extra={"tags": [["b"], ["c"], None]})
    batch_x[:] = np.inf
    df = log.read()
    np.testing.assert_array_equal(np.stack(df["context"]), X)
    assert [None if t is None else list(t) for t in df["tags"]] == [["a"], ["b"], ["c"], None]


# ------------------------------------------------------------------------------------------------------------------
# stray files, temporaries
# ------------------------------------------------------------------------------------------------------------------


def test_stray_and_broken_part_files_are_skipped_with_a_warning_naming_them(tmp_path):
    """Regression: a stray or empty part-*.parquet blocked reading and reopening the log."""
    from offline_eval import LoggedData

    decisions, X = random_decisions(4, seed=23)
    with DecisionLog(tmp_path, arms=ARMS, policy_name="P") as log:
        log.append_batch(as_batch(decisions[:2]), X[:2])
    good = part_files(tmp_path)[0].read_bytes()
    (tmp_path / "part-00000007-empty.parquet").write_bytes(b"")
    (tmp_path / "part-00000003-truncated.parquet").write_bytes(good[: len(good) // 2])
    pq.write_table(pa.table({"a": [1, 2]}), tmp_path / "part-00000004-foreign.parquet")
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "_SUCCESS").write_text("")  # hidden by convention: ignored silently
    strays = ["part-00000007-empty.parquet", "part-00000003-truncated.parquet", "part-00000004-foreign.parquet",
              "notes.txt"]

    def skipped(record) -> list[str]:
        return sorted(n for n in strays for w in record if issubclass(w.category, DecisionLogWarning)
                      and n in str(w.message))

    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        df = read_decision_log(tmp_path)
    assert df["event_id"].tolist() == [d.event_id for d in decisions[:2]]
    assert skipped(record) == sorted(strays)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        log = DecisionLog(tmp_path, arms=ARMS, policy_name="P")
    assert skipped(record) == sorted(strays)
    log.append_batch(as_batch(decisions[2:]), X[2:])
    log.close()
    assert part_files(tmp_path)[-1].name.startswith("part-00000008-")  # continues after the highest seq seen
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DecisionLogWarning)
        assert log.read()["event_id"].tolist() == [d.event_id for d in decisions]
        df = read_decision_log(tmp_path)
        df["reward"] = 0.0
        assert LoggedData.from_dataframe(df).n == 4


def _dead_pid() -> int:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_orphan_temporaries_of_dead_writers_are_cleaned_but_not_those_of_live_ones(tmp_path):
    """Regression: .tmp files left by a crash were never cleaned."""
    import subprocess
    import sys

    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        dead = tmp_path / f".part-00000001-{'a' * 32}.parquet.{dl._HOST}-{_dead_pid()}.tmp"
        alive = tmp_path / f".part-00000001-{'b' * 32}.parquet.{dl._HOST}-{live.pid}.tmp"
        mine = tmp_path / f".part-00000001-{'c' * 32}.parquet.{dl._HOST}-{os.getpid()}.tmp"
        other_host = tmp_path / f".part-00000001-{'d' * 32}.parquet.otherhost-{_dead_pid()}.tmp"
        legacy = tmp_path / f".part-00000001-{'e' * 32}.parquet.tmp"
        unrelated = tmp_path / ".keep"
        for p in (dead, alive, mine, other_host, legacy, unrelated):
            p.write_bytes(b"PAR1 half")
        DecisionLog(tmp_path, arms=ARMS, policy_name="P")
        assert not dead.exists()
        assert alive.exists() and mine.exists() and other_host.exists() and legacy.exists() and unrelated.exists()
    finally:
        live.kill()
        live.wait()
    DecisionLog(tmp_path, arms=ARMS, policy_name="P")  # the live writer has died since
    assert not alive.exists() and mine.exists()


def test_orphan_temporaries_whose_owner_cannot_be_told_are_cleaned_by_age(tmp_path):
    old = time.time() - dl.ORPHAN_TEMP_AGE - 60
    names = [f".part-00000001-{'e' * 32}.parquet.tmp", f".part-00000002-{'f' * 32}.parquet.otherhost-1.tmp",
             f".part-00000003-{'a' * 32}.parquet.{dl._HOST}-{os.getpid()}.tmp"]
    for name in names:
        (tmp_path / name).write_bytes(b"PAR1 half")
    fresh = tmp_path / f".part-00000004-{'b' * 32}.parquet.tmp"
    fresh.write_bytes(b"PAR1 half")
    for name in names:
        os.utime(tmp_path / name, (old, old))
    DecisionLog(tmp_path, arms=ARMS, policy_name="P")
    assert sorted(os.listdir(tmp_path)) == [fresh.name]


# ------------------------------------------------------------------------------------------------------------------
# threads
# ------------------------------------------------------------------------------------------------------------------


def test_many_threads_appending_and_flushing_write_every_row_exactly_once(tmp_path):
    """Regression: a DecisionLog shared by 4 serving threads corrupted itself (broadcast errors, duplicate rows)."""
    import threading

    n_threads, per_thread = 8, 300
    log = DecisionLog(tmp_path, arms=ARMS, policy_name="P", rows_per_part=97)
    errors: list[BaseException] = []
    start = threading.Barrier(n_threads)

    def worker(t: int) -> None:
        try:
            rng = np.random.default_rng(t)
            start.wait()
            i = 0
            while i < per_thread:
                if rng.random() < 0.3:
                    m = min(int(rng.integers(1, 20)), per_thread - i)
                    ds = [make_decision(f"t{t}-{i + j}", 0, [0.5, 0.5, 0.0]) for j in range(m)]
                    x = np.column_stack([np.full(m, t), np.arange(i, i + m)]).astype(float)
                    log.append_batch(as_batch(ds), x)
                    i += m
                else:
                    log.append(make_decision(f"t{t}-{i}", 1, [0.5, 0.5, 0.0]), np.array([t, i], dtype=float))
                    i += 1
                if rng.random() < 0.05:
                    log.flush()
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    log.close()
    assert log.n_buffered == 0
    tables = [pq.read_table(p) for p in part_files(tmp_path)]
    assert all(t.num_rows <= 97 for t in tables)
    table = pa.concat_tables(tables)
    ids = table.column("event_id").to_pylist()
    assert len(ids) == len(set(ids)) == n_threads * per_thread  # every row exactly once on disk
    ctx = np.stack(table.column("context").to_numpy(zero_copy_only=False))
    for t in range(n_threads):  # each thread's rows keep their order, and rows are not mixed up
        mine = ctx[ctx[:, 0] == t, 1]
        np.testing.assert_array_equal(mine, np.arange(per_thread))
        assert [e for e in ids if e.startswith(f"t{t}-")] == [f"t{t}-{i}" for i in range(per_thread)]


def test_appends_do_not_wait_for_a_flush_that_is_writing(tmp_path, monkeypatch):
    import threading

    decisions, X = random_decisions(6, seed=24)
    log = DecisionLog(tmp_path, arms=ARMS, policy_name="P")
    log.append_batch(as_batch(decisions[:3]), X[:3])
    writing, release = threading.Event(), threading.Event()
    real_write = dl.pq.write_table

    def slow_write(table, where, **kwargs):
        writing.set()
        assert release.wait(timeout=30)
        real_write(table, where, **kwargs)

    monkeypatch.setattr(dl.pq, "write_table", slow_write)
    flusher = threading.Thread(target=log.flush)
    flusher.start()
    assert writing.wait(timeout=30)  # the flush is inside the Parquet write now
    for d, x in zip(decisions[3:], X[3:], strict=True):
        log.append(d, x)  # would deadlock (the writer waits for release) if appends waited for the flush
    assert log.n_buffered == 6  # 3 being written + 3 new
    release.set()
    flusher.join(timeout=30)
    assert not flusher.is_alive() and log.n_buffered == 3
    monkeypatch.undo()
    log.close()
    assert read_decision_log(tmp_path)["event_id"].tolist() == [d.event_id for d in decisions]
