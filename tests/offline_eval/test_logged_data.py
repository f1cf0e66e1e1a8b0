"""LoggedData: construction, validation (errors name the column and count bad rows), readers, subsets."""

from __future__ import annotations

import json
import pickle
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from offline_eval import LoggedData
from offline_eval.data import PROBABILITY_ATOL, InvalidRowsError
from offline_eval.schema import META_ARMS, DecisionLogWarning, decision_log_schema

ARMS = ["individual", "duo", "family"]


def arrays(n: int = 50, k: int = 3, d: int = 2, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(k), size=n)
    action = (probs.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    return {
        "context": rng.normal(size=(n, d)),
        "action": action,
        "reward": rng.random(n),
        "propensity": probs[np.arange(n), action],
        "probabilities": probs,
    }


def test_stores_read_only_views_without_copying():
    a = arrays()
    data = LoggedData(**a)
    for name in ("context", "reward", "propensity", "probabilities"):
        assert np.shares_memory(getattr(data, name), a[name]), name
        assert not getattr(data, name).flags.writeable
    assert a["reward"].flags.writeable  # the caller's array is untouched
    with pytest.raises(AttributeError, match="immutable"):
        data.reward = a["reward"]
    with pytest.raises(ValueError):
        data.reward[0] = 1.0


def test_pickle_round_trip_keeps_values_and_immutability():
    data = LoggedData(**arrays(), action_names=ARMS, event_id=[f"e{i}" for i in range(50)])
    copy = pickle.loads(pickle.dumps(data))
    for name in ("context", "action", "reward", "propensity", "probabilities", "event_id"):
        np.testing.assert_array_equal(getattr(copy, name), getattr(data, name))
    assert copy.action_names == ARMS and not copy.reward.flags.writeable
    with pytest.raises(AttributeError, match="immutable"):
        copy.n_actions = 4


def test_shapes_and_defaults():
    a = arrays(n=40, k=3, d=2)
    data = LoggedData(**a)
    assert (data.n, data.n_actions, data.n_features, len(data)) == (40, 3, 2, 40)
    assert data.action_names == ["0", "1", "2"]
    assert data.action.dtype == np.int64 and data.eligible is None and data.timestamp is None
    no_context = LoggedData(None, [0, 1], [1.0, 0.0], [0.5, 0.5])
    assert no_context.context.shape == (2, 0) and no_context.n_actions == 2


@pytest.mark.parametrize(
    "kwargs, k",
    [
        ({}, 2),  # max(action) + 1
        ({"n_actions": 5}, 5),
        ({"action_names": ["a", "b", "c", "d"]}, 4),
        ({"eligible": np.ones((3, 6), dtype=bool)}, 6),
        ({"probabilities": np.tile([0.5, 0.5, 0.0], (3, 1))}, 3),
    ],
)
def test_number_of_actions_is_inferred(kwargs, k):
    data = LoggedData(None, [0, 1, 1], [1.0, 0.0, 1.0], [0.5, 0.5, 0.5], **kwargs)
    assert data.n_actions == k


def test_inconsistent_number_of_actions_is_reported():
    with pytest.raises(ValueError, match=r"inconsistent: probabilities.shape\[1\]=2, n_actions=3"):
        LoggedData(None, [0, 1], [1.0, 0.0], [0.5, 0.5], probabilities=np.full((2, 2), 0.5), n_actions=3)


def test_timestamps_are_utc_microseconds():
    ts = pd.Series(pd.to_datetime(["2024-05-01T12:00:00+02:00", "2024-05-01T12:00:01+02:00"]))
    data = LoggedData(None, [0, 1], [1.0, 0.0], [0.5, 0.5], timestamp=ts, event_id=["e1", "e2"])
    assert data.timestamp.dtype == np.dtype("datetime64[us]")
    assert str(data.timestamp[0]) == "2024-05-01T10:00:00.000000"
    assert data.event_id.tolist() == ["e1", "e2"]


def _bad(name: str, value) -> dict:
    a = arrays(n=20)
    a[name] = value(a)
    return a


def _set(arr: np.ndarray, rows: list[int], value) -> np.ndarray:
    out = np.array(arr, dtype=np.float64)
    out[rows] = value
    return out


@pytest.mark.parametrize(
    "column, change, message",
    [
        ("propensity", lambda a: _set(a["propensity"], [1, 4, 7], 0.0), r"propensity must lie in \(0, 1\]; 3 of 20"),
        ("propensity", lambda a: _set(a["propensity"], [2], 1.5), r"propensity must lie in \(0, 1\]; 1 of 20"),
        ("propensity", lambda a: _set(a["propensity"], [0, 1], np.nan), r"propensity must lie in \(0, 1\]; 2 of 20"),
        ("reward", lambda a: _set(a["reward"], [3, 5], np.nan), r"reward must be finite; 2 of 20 .*not joined yet"),
        ("reward", lambda a: _set(a["reward"], [3], np.inf), r"reward must be finite; 1 of 20"),
        ("context", lambda a: _set(a["context"], [9], np.inf), r"context must be finite; 1 of 20 rows .*row 9"),
        ("action", lambda a: _set(a["action"], [0, 1], 3).astype(int), r"action must lie in \[0, K=3\); 2 of 20"),
        ("action", lambda a: _set(a["action"], [5], -1).astype(int), r"action must lie in \[0, K=3\); 1 of 20"),
        ("action", lambda a: _set(a["action"], [5], 0.5), r"action must hold integer action indices; 1 of 20"),
    ],
)
def test_bad_values_name_the_column_and_count_rows(column, change, message):
    with pytest.raises(ValueError, match=message):
        LoggedData(**_bad(column, change))


def test_probability_rows_must_sum_to_one():
    a = arrays(n=20)
    a["probabilities"] = a["probabilities"].copy()
    a["probabilities"][[2, 3], :] *= 1.1
    a["propensity"] = a["probabilities"][np.arange(20), a["action"]]
    with pytest.raises(ValueError, match=r"probabilities rows must sum to 1 .*; 2 of 20 rows .*first at row 2"):
        LoggedData(**a)


def test_negative_probabilities_are_reported():
    a = arrays(n=20)
    a["probabilities"] = a["probabilities"].copy()
    a["probabilities"][4] = [1.5, -0.25, -0.25]
    with pytest.raises(ValueError, match=r"probabilities entries must be finite and in \[0, 1\]; 1 of 20"):
        LoggedData(**a)


def test_propensity_inconsistent_with_probabilities_is_reported():
    a = arrays(n=30)
    a["propensity"] = a["propensity"].copy()
    a["propensity"][[0, 10, 20]] *= 0.9
    with pytest.raises(ValueError, match=r"propensity must equal probabilities\[i, action\[i\]\] .*; 3 of 30"):
        LoggedData(**a)
    # within the documented tolerance it passes
    a = arrays(n=30)
    LoggedData(**{**a, "propensity": np.clip(a["propensity"] + 0.5 * PROBABILITY_ATOL, 0, 1)})


def test_eligibility_is_checked():
    a = arrays(n=10)
    eligible = np.ones((10, 3), dtype=bool)
    eligible[np.arange(3), a["action"][:3]] = False  # logged action ineligible in rows 0-2
    with pytest.raises(ValueError, match=r"eligible must be True for the logged action; 3 of 10"):
        LoggedData(**a, eligible=eligible)
    probs = np.tile([0.5, 0.5, 0.0], (10, 1))
    action = np.zeros(10, dtype=int)
    eligible = np.tile([True, False, True], (10, 1))
    with pytest.raises(ValueError, match=r"probabilities must be 0 on ineligible arms; 10 of 10"):
        LoggedData(None, action, np.ones(10), np.full(10, 0.5), probabilities=probs, eligible=eligible)


@pytest.mark.parametrize(
    "change, exc, message",
    [
        (lambda a: {**a, "reward": a["reward"][:-1]}, ValueError, "reward has 19 rows but action has 20"),
        (lambda a: {**a, "context": a["context"][:, 0]}, ValueError, r"context must have shape \(n, d\).*reshape"),
        (lambda a: {**a, "probabilities": a["probabilities"][:5]}, ValueError, "probabilities has 5 rows"),
        (lambda a: {**a, "reward": ["x"] * 20}, TypeError, "reward must be a numeric array"),
        (lambda a: {**a, "action": a["action"].astype(str)}, TypeError, "action must be an integer array"),
        (lambda a: {**a, "eligible": np.full((20, 3), 0.5)}, TypeError, "eligible must be a boolean"),
        (lambda a: {**a, "action_names": ["a", "a", "b"]}, ValueError, "action_names must be unique"),
        (lambda a: {**a, "timestamp": [None] * 20}, ValueError, "timestamp must not be missing; 20 of 20"),
    ],
)
def test_bad_arguments(change, exc, message):
    with pytest.raises(exc, match=message):
        LoggedData(**change(arrays(n=20)))


def test_validate_false_skips_value_checks_but_keeps_support_rows():
    a = arrays(n=20)
    a["probabilities"] = a["probabilities"].copy()
    a["probabilities"][[3, 8]] = [0.5, 0.5, 0.0]
    a["action"] = np.where(a["probabilities"][np.arange(20), a["action"]] == 0, 0, a["action"])
    a["propensity"] = a["probabilities"][np.arange(20), a["action"]]
    checked = LoggedData(**a)
    unchecked = LoggedData(**{**a, "propensity": np.full(20, 7.0)}, validate=False)
    np.testing.assert_array_equal(checked.unsupported_rows(), [3, 8])
    np.testing.assert_array_equal(unchecked.unsupported_rows(), [3, 8])
    assert LoggedData(**{k: a[k] for k in ("context", "action", "reward", "propensity")}).unsupported_rows() is None


@pytest.mark.parametrize("index", [np.array([0, 5, 7]), np.arange(20) % 3 == 0, slice(2, 9)])
def test_subset_selects_rows_and_keeps_arms(index):
    a = arrays(n=20)
    data = LoggedData(**a, action_names=ARMS, event_id=[f"e{i}" for i in range(20)])
    sub = data.subset(index)
    np.testing.assert_array_equal(sub.reward, a["reward"][index])
    np.testing.assert_array_equal(sub.probabilities, a["probabilities"][index])
    assert sub.event_id.tolist() == np.array([f"e{i}" for i in range(20)], dtype=object)[index].tolist()
    assert sub.action_names == ARMS and sub.n_actions == 3


def test_subset_rejects_bad_index():
    data = LoggedData(**arrays(n=20))
    with pytest.raises(ValueError, match=r"boolean index must have shape \(20,\)"):
        data.subset(np.ones(5, dtype=bool))
    with pytest.raises(TypeError, match="index must be integer"):
        data.subset(np.array([0.5]))


# ---------------------------------------------------------------------------------------------------------------
# DataFrame and Parquet readers
# ---------------------------------------------------------------------------------------------------------------


def frame(n: int = 6, seed: int = 1) -> pd.DataFrame:
    a = arrays(n=n, k=3, d=2, seed=seed)
    return pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(n)],
            "timestamp": pd.date_range("2024-05-01", periods=n, freq="min", tz="UTC"),
            "context": list(a["context"]),
            "action": a["action"].astype(np.int32),
            "action_name": [ARMS[i] for i in a["action"]],
            "propensity": a["propensity"],
            "probabilities": list(a["probabilities"]),
            "eligible": list(np.ones((n, 3), dtype=bool)),
            "policy": ["LinUCB"] * n,
            "policy_version": ["v1"] * n,
            "reward": a["reward"],
        }
    )


def test_from_dataframe_reads_the_schema_columns():
    df = frame()
    df.attrs["arms"] = ARMS
    data = LoggedData.from_dataframe(df)
    np.testing.assert_array_equal(data.context, np.stack(df["context"]))
    np.testing.assert_array_equal(data.probabilities, np.stack(df["probabilities"]))
    assert data.eligible.dtype == bool and data.action_names == ARMS
    assert data.event_id.tolist() == df["event_id"].tolist()
    assert str(data.timestamp[1]) == "2024-05-01T00:01:00.000000"


def test_from_dataframe_context_from_columns_or_prefix():
    df = pd.DataFrame({"x_a": [1.0, 2.0], "y": [5.0, 6.0], "x_b": [3.0, 4.0], "action": [0, 1],
                       "reward": [1.0, 0.0], "propensity": [0.5, 0.5]})
    by_prefix = LoggedData.from_dataframe(df, context_prefix="x_")
    np.testing.assert_array_equal(by_prefix.context, [[1.0, 3.0], [2.0, 4.0]])
    by_list = LoggedData.from_dataframe(df, context=["y", "x_a"])
    np.testing.assert_array_equal(by_list.context, [[5.0, 1.0], [6.0, 2.0]])
    with pytest.raises(ValueError, match="context column 'context' is missing"):
        LoggedData.from_dataframe(df)
    with pytest.raises(ValueError, match="column 'propensity' is missing"):
        LoggedData.from_dataframe(df.drop(columns="propensity"), context=None)


def test_from_dataframe_missing_rewards_are_dropped_with_a_count_or_raise():
    df = frame(n=6)
    df.loc[[1, 4], "reward"] = np.nan
    with pytest.warns(UserWarning, match="dropped 2 of 6 rows with a missing reward"):
        data = LoggedData.from_dataframe(df)
    assert data.n == 4 and data.event_id.tolist() == ["e0", "e2", "e3", "e5"]
    with pytest.raises(ValueError, match="reward is missing in 2 of 6 rows"):
        LoggedData.from_dataframe(df, missing_reward="raise")


def test_from_dataframe_quarantines_missing_and_ragged_cells_or_raises():
    """A None in a list column, a list of another length, a missing element, a missing action, id or version: the
    row is quarantined as the batch readers quarantine it (not a ValueError for the whole frame); the other rows are
    read as they are; invalid_rows="raise" still stops at the first."""
    df = frame(n=10)
    df["context"] = df["context"].astype(object)
    df.at[1, "context"] = None
    df.at[2, "probabilities"] = [0.5, 0.5]  # one arm short
    eligible = [True, True, True]
    eligible[int(df.at[3, "action"])] = None  # the logged arm's eligibility missing: not eligible
    df.at[3, "eligible"] = eligible
    df.at[4, "context"] = [0.1, None]
    df["action"] = df["action"].astype(object)
    df.at[5, "action"] = None
    df.at[6, "event_id"] = None
    df.at[7, "policy_version"] = None
    with pytest.warns(DecisionLogWarning, match=r"quarantined 7 of 10 rows .*first: e1, e2, e3, e4, e5, \.\.\."):
        data = LoggedData.from_dataframe(df, action_names=ARMS)
    assert dict(data.quarantined.counts) == {"action": 1, "context": 2, "event_id": 1, "policy_version": 1,
                                             "probabilities": 1, "ineligible_action": 1, "ineligible_probability": 1}
    assert data.quarantined.rows.tolist() == [1, 2, 3, 4, 5, 6, 7] and data.event_id.tolist() == ["e0", "e8", "e9"]
    kept = frame(n=10).iloc[[0, 8, 9]]
    np.testing.assert_array_equal(data.context, np.stack(kept["context"]))
    np.testing.assert_array_equal(data.probabilities, np.stack(kept["probabilities"]))
    with pytest.raises(InvalidRowsError, match=r"context must be finite; 2 of 9 rows violate it \(first at row 1\)"):
        LoggedData.from_dataframe(df.drop(index=5), action_names=ARMS, invalid_rows="raise")


def write_log(path, df: pd.DataFrame, arms=ARMS, compliant: bool = True) -> None:
    table = pa.Table.from_pandas(df, schema=decision_log_schema(2, arms), preserve_index=False)
    pq.write_table(table, path, use_compliant_nested_type=compliant)


@pytest.mark.parametrize("compliant", [True, False])
def test_from_parquet_round_trip(tmp_path, compliant):
    df = frame(n=8)
    write_log(tmp_path / "log.parquet", df, compliant=compliant)
    data = LoggedData.from_parquet(tmp_path / "log.parquet")
    assert data.action_names == ARMS
    np.testing.assert_array_equal(data.context, np.stack(df["context"]))
    np.testing.assert_array_equal(data.action, df["action"])
    np.testing.assert_array_equal(data.reward, df["reward"])
    np.testing.assert_array_equal(data.propensity, df["propensity"])
    np.testing.assert_array_equal(data.probabilities, np.stack(df["probabilities"]))
    np.testing.assert_array_equal(data.eligible, np.ones((8, 3), dtype=bool))
    np.testing.assert_array_equal(data.timestamp, df["timestamp"].dt.tz_localize(None).to_numpy("datetime64[us]"))
    assert data.event_id.tolist() == df["event_id"].tolist()


def test_from_parquet_directory_of_parts_with_pending_rewards(tmp_path):
    df = frame(n=10)
    df.loc[[2, 7], "reward"] = None
    write_log(tmp_path / "part-0.parquet", df.iloc[:5])
    write_log(tmp_path / "part-1.parquet", df.iloc[5:])
    (tmp_path / ".part-2.parquet.tmp").write_bytes(b"PAR1 truncated")
    with pytest.warns(UserWarning, match="dropped 2 of 10 rows with a missing reward"):
        data = LoggedData.from_parquet(tmp_path)
    assert data.event_id.tolist() == [f"e{i}" for i in (0, 1, 3, 4, 5, 6, 8, 9)]
    with pytest.raises(ValueError, match="reward is missing in 2 of 10 rows"):
        LoggedData.from_parquet(tmp_path, missing_reward="raise")


def test_from_parquet_rejects_mixed_arm_lists_and_bad_paths(tmp_path):
    df = frame(n=4)
    write_log(tmp_path / "part-0.parquet", df)
    write_log(tmp_path / "part-1.parquet", df, arms=["a", "b", "c"])
    with pytest.raises(ValueError, match="was written for arms"):
        LoggedData.from_parquet(tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        LoggedData.from_parquet(tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="without \\*.parquet files"):
        LoggedData.from_parquet(empty)


def test_from_parquet_validates(tmp_path):
    df = frame(n=5)
    df.loc[3, "propensity"] = 0.0
    write_log(tmp_path / "log.parquet", df)
    with pytest.raises(ValueError, match=r"propensity must lie in \(0, 1\]; 1 of 5"):
        LoggedData.from_parquet(tmp_path / "log.parquet", invalid_rows="raise")
    with pytest.warns(DecisionLogWarning, match=r"quarantined 1 of 5 rows .*propensity: 1.*first: e3"):
        data = LoggedData.from_parquet(tmp_path / "log.parquet")
    assert data.event_id.tolist() == ["e0", "e1", "e2", "e4"] and data.quarantined.rows.tolist() == [3]


def test_schema_metadata_holds_the_arms(tmp_path):
    write_log(tmp_path / "log.parquet", frame(n=3))
    assert json.loads(pq.read_schema(tmp_path / "log.parquet").metadata[META_ARMS.encode()]) == ARMS
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert LoggedData.from_parquet(tmp_path / "log.parquet").n == 3
