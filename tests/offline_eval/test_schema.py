"""offline_eval.schema: the decision-log schema, its one encoder and its one reader; LoggedData.to_parquet."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scale_logs import old_form

from offline_eval import LoggedData
from offline_eval.schema import (
    DECISION_COLUMNS,
    LIST_COLUMNS,
    MAX_EVENT_ID_LENGTH,
    META_ARMS,
    META_SCHEMA_VERSION,
    SCHEMA_VERSION,
    DecisionLogWarning,
    check_event_ids,
    decision_log_schema,
    encode_decisions,
    read_log,
    scan_parts,
    with_nullable_items,
)

ARMS = ["individual", "duo", "family"]


def columns(n: int = 5, d: int = 2, seed: int = 0, prefix: str = "e") -> dict:
    """Plain arrays for ``encode_decisions``: random distributions, some arms ineligible."""
    rng = np.random.default_rng(seed)
    eligible = rng.random((n, 3)) < 0.7
    eligible[:, 0] = True
    probs = rng.dirichlet(np.ones(3), size=n) * eligible
    probs /= probs.sum(axis=1, keepdims=True)
    action = np.array([rng.choice(3, p=p) for p in probs])
    return {
        "event_id": [f"{prefix}{i}" for i in range(n)],
        "timestamp_us": 1_714_521_600_000_000 + np.arange(n) * 1_000_000,
        "context": rng.normal(size=(n, d)),
        "action": action,
        "propensity": probs[np.arange(n), action],
        "probabilities": probs,
        "eligible": eligible,
        "policy": "LinUCB",
        "policy_version": [f"v{i % 2}" for i in range(n)],
        "arms": ARMS,
    }


def write_part(path, **overrides) -> pa.Table:
    table = encode_decisions(**{**columns(), **overrides})
    pq.write_table(table, path)
    return table


def test_import_loads_no_numba_and_no_bandit():
    code = (
        "import json, sys\nimport offline_eval.schema\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('numba', 'bandit', 'llvmlite'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


# ------------------------------------------------------------------------------------------------------------------
# encoder
# ------------------------------------------------------------------------------------------------------------------


def test_encoder_writes_the_schema_and_the_values():
    c = columns(n=6, d=3)
    reward = np.array([1.0, np.nan, 0.0, 2.5, np.nan, 0.0])
    table = encode_decisions(**c, reward=reward, extra={"country": ["SE"] * 6},
                             extra_fields=[pa.field("country", pa.string())])
    expected = decision_log_schema(3, ARMS, extra_fields=[pa.field("country", pa.string())])
    assert table.schema.equals(expected, check_metadata=True)
    assert table.column_names == [*DECISION_COLUMNS, "country"]
    assert json.loads(table.schema.metadata[META_ARMS.encode()]) == ARMS
    assert table.schema.metadata[META_SCHEMA_VERSION.encode()].decode() == SCHEMA_VERSION
    assert table.column("event_id").to_pylist() == c["event_id"]
    assert table.column("action_name").to_pylist() == [ARMS[a] for a in c["action"]]
    assert table.column("action").to_pylist() == c["action"].tolist()
    np.testing.assert_array_equal(np.stack(table.column("context").to_numpy(zero_copy_only=False)), c["context"])
    np.testing.assert_array_equal(np.stack(table.column("eligible").to_numpy(zero_copy_only=False)), c["eligible"])
    np.testing.assert_array_equal(table.column("propensity").to_numpy(), c["propensity"])
    assert table.column("reward").to_pylist() == [1.0, None, 0.0, 2.5, None, 0.0]  # NaN -> null
    assert table.column("policy").to_pylist() == ["LinUCB"] * 6
    assert table.column("policy_version").to_pylist() == c["policy_version"]
    ts = table.column("timestamp").to_pylist()
    assert ts[0] == pd.Timestamp("2024-05-01T00:00:00", tz="UTC")


@pytest.mark.parametrize(
    ("override", "exc", "pattern"),
    [
        ({"context": np.ones(5)}, ValueError, "context must have shape"),
        ({"action": np.zeros(4, dtype=int)}, ValueError, "action must be 5"),
        ({"action": np.full(5, 3)}, ValueError, "action must index the 3 arms"),
        ({"probabilities": np.ones((5, 2))}, ValueError, r"probabilities must have shape \(5, 3\)"),
        ({"eligible": np.ones((5, 3))}, TypeError, "eligible must be a boolean"),
        ({"timestamp_us": np.zeros(5)}, ValueError, "timestamp_us"),
        ({"event_id": ["a", "b", "c", "d", "\ud800"]}, ValueError, "event_id must hold valid UTF-8"),
        ({"policy_version": ["v"] * 4}, ValueError, "policy_version must hold 5"),
    ],
)
def test_encoder_rejects_inconsistent_columns(override, exc, pattern):
    with pytest.raises(exc, match=pattern):
        encode_decisions(**{**columns(), **override})


@pytest.mark.parametrize(
    ("ids", "exc", "pattern"),
    [
        (["a", None], TypeError, r"ids\[1\] = None must be a str"),
        (["a", ""], ValueError, r"ids\[1\] = '' must be a non-empty"),
        (["x" * (MAX_EVENT_ID_LENGTH + 1)], ValueError, "at most 256 characters"),
        (["ok", "req-\ud800"], ValueError, r"ids\[1\].*lone surrogate '\\ud800' at position 4"),
        ([b"bytes"], TypeError, "must be a str"),
    ],
)
def test_check_event_ids(ids, exc, pattern):
    with pytest.raises(exc, match=pattern):
        check_event_ids(ids, "ids")


def test_check_event_ids_accepts_valid_ids():
    check_event_ids(["a", "x" * MAX_EVENT_ID_LENGTH, "é-ü-😀", "req-\ud83d\ude00".encode("utf-16", "surrogatepass")
                     .decode("utf-16")], "ids")


# ------------------------------------------------------------------------------------------------------------------
# reader
# ------------------------------------------------------------------------------------------------------------------


def skipped_names(record) -> list[str]:
    return [str(w.message).split("'")[1].rsplit("/", 1)[-1] for w in record
            if issubclass(w.category, DecisionLogWarning) and str(w.message).startswith("skipping")]


def test_reader_skips_stray_files_naming_each(tmp_path):
    write_part(tmp_path / "part-00000000-a.parquet")
    write_part(tmp_path / "part-00000002-b.parquet", **{"event_id": [f"f{i}" for i in range(5)]})
    good = (tmp_path / "part-00000000-a.parquet").read_bytes()
    (tmp_path / "part-00000001-empty.parquet").write_bytes(b"")
    (tmp_path / "part-00000003-cut.parquet").write_bytes(good[:100])
    pq.write_table(pa.table({"x": [1.0]}), tmp_path / "part-00000004-foreign.parquet")
    no_meta = encode_decisions(**columns()).replace_schema_metadata(None)
    pq.write_table(no_meta, tmp_path / "part-00000005-nometa.parquet")
    nulls = encode_decisions(**columns())
    nulls = nulls.set_column(4, pa.field("action_name", pa.string()), pa.array(["duo", None, "duo", "duo", "duo"]))
    pq.write_table(nulls, tmp_path / "part-00000006-nulls.parquet")
    (tmp_path / "README.txt").write_text("not data")
    (tmp_path / "sub").mkdir()
    (tmp_path / ".part-00000007-x.parquet.tmp").write_bytes(b"PAR1")  # a writer's temporary: silent
    (tmp_path / "_SUCCESS").write_text("")  # silent
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        table, arms = read_log(tmp_path)
    assert arms == ARMS
    assert table.column("event_id").to_pylist() == [f"e{i}" for i in range(5)] + [f"f{i}" for i in range(5)]
    assert sorted(skipped_names(record)) == sorted([
        "README.txt", "part-00000001-empty.parquet", "part-00000003-cut.parquet", "part-00000004-foreign.parquet",
        "part-00000005-nometa.parquet", "part-00000006-nulls.parquet", "sub",
    ])
    (nulls_warning,) = [str(w.message) for w in record if "nulls.parquet" in str(w.message)]
    assert "column 'action_name' has 1 nulls" in nulls_warning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DecisionLogWarning)
        with pytest.warns(UserWarning, match="dropped 10 of 10 rows with a missing reward"):  # rewards are null
            LoggedData.from_parquet(tmp_path)


def test_reader_quarantines_duplicate_event_ids_keeping_the_first(tmp_path):
    write_part(tmp_path / "part-00000000-a.parquet", event_id=["a", "b", "c", "d", "e"])
    second = write_part(tmp_path / "part-00000001-b.parquet", event_id=["f", "b", "g", "a", "f"],
                        reward=np.arange(5.0))
    with pytest.warns(DecisionLogWarning, match=r"3 row\(s\).*'b', 'a', 'f'.*kept the first"):
        table, _ = read_log(tmp_path)
    assert table.column("event_id").to_pylist() == ["a", "b", "c", "d", "e", "f", "g"]
    assert table.column("reward").to_pylist()[5:] == [0.0, 2.0]  # the first "f" of the second part
    assert second.num_rows == 5


def test_reader_rejects_mixed_arm_lists_and_context_lengths(tmp_path):
    write_part(tmp_path / "part-00000000-a.parquet")
    write_part(tmp_path / "part-00000001-b.parquet", arms=["a", "b", "c"], event_id=list("vwxyz"))
    with pytest.raises(ValueError, match="was written for arms"):
        read_log(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    write_part(other / "part-00000000-a.parquet")
    write_part(other / "part-00000001-b.parquet", context=np.ones((5, 4)), event_id=list("vwxyz"))
    with pytest.raises(ValueError, match="4 features"):
        read_log(other)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="holds no decision-log part files"):
        read_log(empty)
    with pytest.raises(ValueError, match="does not exist"):
        read_log(tmp_path / "nope")


def test_reader_takes_files_in_the_given_order_and_normalises_types(tmp_path):
    a = tmp_path / "first.parquet"
    b = tmp_path / "second.parquet"
    write_part(a, event_id=list("abcde"))
    table = encode_decisions(**{**columns(), "event_id": list("vwxyz")})
    # another writer: compliant list names, nanosecond timestamps, int64 actions, large strings
    other = table.set_column(1, "timestamp", table.column("timestamp").cast(pa.timestamp("ns", tz="UTC")))
    other = other.set_column(3, "action", other.column("action").cast(pa.int64()))
    other = other.set_column(0, "event_id", other.column("event_id").cast(pa.large_string()))
    pq.write_table(other, b, use_compliant_nested_type=True)
    parts = scan_parts([b, a])
    assert [p.path.name for p in parts] == ["second.parquet", "first.parquet"]
    log = read_log([b, a])
    assert log.table.column("event_id").to_pylist() == list("vwxyzabcde")
    assert log.table.schema.equals(decision_log_schema(2, ARMS), check_metadata=True)


def test_reader_refuses_a_newer_schema_version(tmp_path):
    table = encode_decisions(**columns())
    meta = dict(table.schema.metadata)
    meta[META_SCHEMA_VERSION.encode()] = b"99"
    pq.write_table(table.replace_schema_metadata(meta), tmp_path / "part-00000000-a.parquet")
    with pytest.raises(ValueError, match="upgrade upsell-bandit"):
        read_log(tmp_path)


# ------------------------------------------------------------------------------------------------------------------
# element nullability of the list columns: written non-nullable, read in both forms
# ------------------------------------------------------------------------------------------------------------------


def items_nullable(schema: pa.Schema) -> list[bool]:
    return [schema.field(name).type.value_field.nullable for name in LIST_COLUMNS]


def test_writers_type_list_elements_non_nullable_and_parquet_stores_no_element_definition_level(tmp_path):
    assert items_nullable(decision_log_schema(2, ARMS)) == [False] * 3
    assert items_nullable(encode_decisions(**columns()).schema) == [False] * 3
    new = logged().to_parquet(tmp_path / "new.parquet")
    assert items_nullable(pq.read_schema(new)) == [False] * 3
    old = tmp_path / "old.parquet"
    pq.write_table(old_form(pq.read_table(new)), old)
    assert items_nullable(pq.read_schema(old)) == [True] * 3

    def definition_levels(path) -> list[int]:
        schema = pq.read_metadata(path).schema
        return [schema.column(i).max_definition_level for i in range(len(schema)) if schema.column(i).path.split(
            ".")[0] in LIST_COLUMNS]

    # the point of the form: Parquet decodes one definition level less per element (none beyond the list's own)
    assert definition_levels(new) == [level - 1 for level in definition_levels(old)]
    assert_same(LoggedData.from_parquet(new), LoggedData.from_parquet(old))


@pytest.mark.parametrize("forms", [("old", "new"), ("new", "old"), ("old", "old"), ("new", "new")])
def test_reader_reads_old_and_new_parts_alone_or_mixed_in_either_order(tmp_path, forms):
    written = []
    for i, form in enumerate(forms):
        c = columns(n=5, d=2, seed=i, prefix=f"p{i}-")
        table = encode_decisions(**c, reward=np.arange(5.0) + i)
        pq.write_table(old_form(table) if form == "old" else table, tmp_path / f"part-{i:08d}-{form}.parquet")
        written.append((table, c))
    nullable = frozenset(LIST_COLUMNS) if "old" in forms else frozenset()
    assert [info.nullable_items for info in scan_parts(tmp_path)] == [
        frozenset(LIST_COLUMNS) if form == "old" else frozenset() for form in forms]
    log = read_log(tmp_path)
    # all new: exactly the written schema; any old part: its list elements nullable, nothing else changed
    assert log.table.schema.equals(with_nullable_items(decision_log_schema(2, ARMS), nullable), check_metadata=True)
    for name in DECISION_COLUMNS:
        assert log.table.column(name).to_pylist() == sum((t.column(name).to_pylist() for t, _ in written), [])
    want = LoggedData(
        np.vstack([c["context"] for _, c in written]), np.concatenate([c["action"] for _, c in written]),
        np.concatenate([np.arange(5.0), np.arange(5.0) + 1]), np.concatenate([c["propensity"] for _, c in written]),
        probabilities=np.vstack([c["probabilities"] for _, c in written]),
        eligible=np.vstack([c["eligible"] for _, c in written]),
        timestamp=pd.to_datetime(np.concatenate([c["timestamp_us"] for _, c in written]), unit="us", utc=True),
        event_id=sum((c["event_id"] for _, c in written), []), action_names=ARMS,
    )
    assert_same(LoggedData.from_parquet(tmp_path), want)
    frame = log.table.to_pandas()  # what bandit.read_decision_log hands to pandas users
    assert_same(LoggedData.from_dataframe(frame, action_names=ARMS), want)


@pytest.mark.parametrize(("column", "message"), [
    ("context", "context must be finite; 1 of 10 rows violate it (first at row 7)"),
    ("probabilities", "probabilities entries must be finite and in [0, 1]; 1 of 10 rows violate it (first at row 7)"),
    ("eligible", "eligible must be True for the logged action; 1 of 10 rows violate it (first at row 7)"),
])
def test_a_null_element_of_an_old_part_is_read_as_nan_and_reported_as_before(tmp_path, column, message):
    """A null element (only the old form holds one) after a new part reads as NaN (False in ``eligible``): the row is
    reported with the message of the readers before the new form (``invalid_rows="raise"``) and quarantined as that
    value in a new-form log is (the default)."""
    first = encode_decisions(**columns(n=5, seed=0, prefix="a"), reward=np.ones(5))
    c = columns(n=5, seed=1, prefix="b")
    slot = int(c["action"][2]) if column == "eligible" else 0  # eligible: the logged arm's entry
    logs = {name: tmp_path / name for name in ("old", "nan")}
    for directory in logs.values():
        directory.mkdir()
        pq.write_table(first, directory / "part-00000000-new.parquet")
    pq.write_table(old_form(encode_decisions(**c, reward=np.ones(5)), (column, 2, slot)),
                   logs["old"] / "part-00000001-old.parquet")
    bad = {**c, column: np.array(c[column], copy=True)}
    bad[column][2, slot] = False if column == "eligible" else np.nan
    pq.write_table(encode_decisions(**bad, reward=np.ones(5)), logs["nan"] / "part-00000001-new.parquet")
    assert read_log(logs["old"]).table.column(column).combine_chunks().flatten().null_count == 1
    frames = {name: read_log(path).table.to_pandas() for name, path in logs.items()}
    for name, path in logs.items():
        with pytest.raises(ValueError, match=re.escape(message)):
            LoggedData.from_parquet(path, invalid_rows="raise")
        if column != "eligible":  # an object column of None / bool in pandas: refused by its type check, as before
            with pytest.raises(ValueError, match=re.escape(message)):
                LoggedData.from_dataframe(frames[name], action_names=ARMS, invalid_rows="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DecisionLogWarning)
        old, nan = (LoggedData.from_parquet(path) for path in logs.values())
    assert old.n == nan.n == 9 and "b2" not in old.event_id.tolist()
    assert old.quarantined.counts == nan.quarantined.counts and old.quarantined.examples == ("b2",)
    assert_same(old, nan)


# ------------------------------------------------------------------------------------------------------------------
# LoggedData.to_parquet / from_parquet round trip
# ------------------------------------------------------------------------------------------------------------------


def logged(n: int = 12) -> LoggedData:
    c = columns(n=n, d=3, seed=4)
    return LoggedData(
        c["context"], c["action"], np.linspace(0.0, 2.0, n), c["propensity"], probabilities=c["probabilities"],
        eligible=c["eligible"], timestamp=pd.to_datetime(c["timestamp_us"], unit="us", utc=True),
        event_id=c["event_id"], action_names=ARMS,
    )


def assert_same(a: LoggedData, b: LoggedData) -> None:
    for name in ("context", "action", "reward", "propensity", "probabilities", "eligible", "timestamp"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.event_id.tolist() == b.event_id.tolist()
    assert a.action_names == b.action_names and a.n_actions == b.n_actions


def test_to_parquet_round_trips_a_subset_with_its_metadata(tmp_path):
    data = logged()
    subset = data.subset(np.array([1, 4, 5, 9]))
    path = subset.to_parquet(tmp_path / "subset.parquet", policy="LinUCB", policy_version="v3")
    schema = pq.read_schema(path)
    assert schema.equals(decision_log_schema(3, ARMS), check_metadata=True)
    back = LoggedData.from_parquet(path)
    assert_same(subset, back)
    meta = pq.read_table(path).select(["policy", "policy_version", "action_name"]).to_pydict()
    assert meta["policy"] == ["LinUCB"] * 4 and meta["policy_version"] == ["v3"] * 4
    assert meta["action_name"] == [ARMS[a] for a in subset.action]
    # as a part of a log directory, read with the directory reader
    assert_same(data, LoggedData.from_parquet(data.to_parquet(tmp_path / "log" / "part-00000000-all.parquet")))
    assert not [p for p in (tmp_path / "log").iterdir() if p.name.startswith(".")]  # no temporary left


def test_to_parquet_of_a_read_log_round_trips(tmp_path):
    write_part(tmp_path / "part-00000000-a.parquet", reward=np.arange(5.0))
    data = LoggedData.from_parquet(tmp_path)
    again = LoggedData.from_parquet(data.to_parquet(tmp_path / "copy.parquet"))
    assert_same(data, again)


def test_to_parquet_needs_the_full_schema(tmp_path):
    data = logged()
    partial = LoggedData(data.context, data.action, data.reward, data.propensity, action_names=ARMS)
    with pytest.raises(ValueError, match="has no probabilities, eligible, timestamp, event_id"):
        partial.to_parquet(tmp_path / "x.parquet")
    no_context = LoggedData(None, data.action, data.reward, data.propensity, probabilities=data.probabilities,
                            eligible=data.eligible, timestamp=data.timestamp, event_id=data.event_id)
    with pytest.raises(ValueError, match="at least one context feature"):
        no_context.to_parquet(tmp_path / "x.parquet")
    dup = LoggedData(data.context, data.action, data.reward, data.propensity, probabilities=data.probabilities,
                     eligible=data.eligible, timestamp=data.timestamp, event_id=["same"] * data.n)
    with pytest.raises(ValueError, match="event_id must be unique"):
        dup.to_parquet(tmp_path / "x.parquet")
    with pytest.raises(ValueError, match="is a directory"):
        data.to_parquet(tmp_path)
    assert not list(tmp_path.iterdir())
