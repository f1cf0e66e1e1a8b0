"""The equality contract under attack: logs with rows broken in every way the row checks know (and some they might
not: nulls, null list elements, parts without statistics, repeated ids across parts, parts of both list forms)
give the same table, the same quarantine counts and the same warnings in memory and streaming (and on Spark)."""

from __future__ import annotations

import math
import re
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scale_logs import ARMS, write_log
from test_accumulators import assert_tables_equal

from offline_eval import DR, IPS, SNIPS, LoggedData, evaluate
from offline_eval.reward_models import RidgeRewardModel
from offline_eval.schema import LIST_COLUMNS
from offline_eval.streaming import evaluate_parquet

K = len(ARMS)


def _first_other(row: dict, a: int) -> int:
    """Another arm the logger could take (else the next arm)."""
    return next((k for k in range(K) if k != a and row["probabilities"][k] > 0 and row["eligible"][k]), (a + 1) % K)


def _zero_logged_arm(row: dict) -> None:
    """Propensity 0 and probability 0 for the logged arm, the mass moved to another eligible arm (consistent)."""
    a = row["action"]
    probs = list(row["probabilities"])
    probs[_first_other(row, a)] += probs[a]
    probs[a] = 0.0
    row["probabilities"], row["propensity"] = probs, 0.0


def _set_item(column: str, slot: int | str, value: object):
    def corrupt(row: dict) -> None:
        items = list(row[column])
        items[row["action"] if slot == "action" else _first_other(row, row["action"]) if slot == "other" else slot] = value
        row[column] = items

    return corrupt


def _set(column: str, value: object):
    return lambda row: row.__setitem__(column, value)


def _scale_propensity(row: dict) -> None:
    row["propensity"] = row["propensity"] / 2


def _unnormalise(row: dict) -> None:
    probs = list(row["probabilities"])
    probs[_first_other(row, row["action"])] += 0.2
    row["probabilities"] = probs


#: What is done to a row: every reason of check_rows, and values the checks may not expect (NaN / inf where a
#: number is checked by range, nulls, null list elements, an action beyond int32, lists of another length). A null
#: in a required column, an action beyond int32 or a list of another length makes a Parquet part a non-log part
#: (skipped whole, by both readers: :data:`PART_FAULTS`); the rest are row faults (quarantined) or a missing
#: reward.
CORRUPTIONS = {
    "action = K": _set("action", K),
    "action = -1": _set("action", -1),
    "action = 2^40": _set("action", 2**40),
    "propensity NaN": _set("propensity", math.nan),
    "propensity inf": _set("propensity", math.inf),
    "propensity 0": _set("propensity", 0.0),
    "propensity 1.5": _set("propensity", 1.5),
    "propensity 0 for the logged arm": _zero_logged_arm,
    "propensity half": _scale_propensity,
    "reward NaN": _set("reward", math.nan),
    "reward -inf": _set("reward", -math.inf),
    "context NaN": _set_item("context", 0, math.nan),
    "context inf": _set_item("context", 2, math.inf),
    "context null element": _set_item("context", 1, None),
    "probability NaN": _set_item("probabilities", "other", math.nan),
    "probability null element": _set_item("probabilities", "other", None),
    "probabilities sum 1.2": _unnormalise,
    "action ineligible": _set_item("eligible", "action", False),
    "action eligibility null": _set_item("eligible", "action", None),
    "other arm ineligible": _set_item("eligible", "other", False),
    "eligible empty": _set("eligible", []),
    "context short": lambda row: row.__setitem__("context", row["context"][:-1]),
    "null action": _set("action", None),
    "null propensity": _set("propensity", None),
    "null context": _set("context", None),
    "null probabilities": _set("probabilities", None),
    "null eligible": _set("eligible", None),
    "null event_id": _set("event_id", None),
    "null timestamp": _set("timestamp", None),
    "null policy_version": _set("policy_version", None),
}


#: The faults that make a part a non-log part, and what the readers' warning says.
PART_FAULTS = {
    **{kind: f"column {kind.removeprefix('null ')!r} has 1 nulls" for kind in CORRUPTIONS if kind.startswith("null ")},
    "action = 2^40": "column 'action' holds values from 0 to 1099511627776, outside int32",
    # a list column of variable length (as Spark writes arrays) is no decision-log column
    "eligible empty": "column types do not match the decision-log schema for 4 arms: eligible (list<",
    "context short": "column types do not match the decision-log schema for 4 arms: context (list<",
}


def write_part(table: pa.Table, rows: dict[int, list[str]], path: Path, old_form: bool, statistics: bool) -> None:
    """``table`` (a part of the log) with ``rows`` corrupted as named, written to ``path``: a column that holds a
    null typed nullable (as a writer other than ours would write it), the list columns' elements nullable in the old
    form or when one holds a null element; with or without column statistics."""
    columns = {name: table.column(name).to_pylist() for name in table.column_names}
    for i, kinds in rows.items():
        row = {name: values[i] for name, values in columns.items()}
        for kind in kinds:
            try:
                CORRUPTIONS[kind](row)
            except (TypeError, IndexError):  # an earlier corruption of the row took what this one needs (a null)
                continue
        for name, value in row.items():
            columns[name][i] = value
    fields = []
    for field in table.schema:
        values = columns[field.name]
        if field.name == "action" and any(v is not None and abs(v) >= 2**31 for v in values):
            field = field.with_type(pa.int64())  # as a writer of int64 actions would write it
        if field.name in LIST_COLUMNS:
            item = field.type.value_field
            if old_form or any(v is not None and None in v for v in values):
                item = item.with_nullable(True)
            size = field.type.list_size
            ragged = any(v is not None and len(v) != size for v in values)
            field = field.with_type(pa.list_(item) if ragged else pa.list_(item, size))
        fields.append(field.with_nullable(field.nullable or None in values))
    schema = pa.schema(fields, metadata=table.schema.metadata)
    arrays = [pa.array(columns[f.name], type=f.type) for f in schema]  # NaN stays NaN (not from pandas)
    pq.write_table(pa.Table.from_arrays(arrays, schema=schema), path, write_statistics=statistics)


@pytest.fixture(scope="module")
def clean_log(tmp_path_factory):
    path = tmp_path_factory.mktemp("clean")
    policies = write_log(path, n=450, parts=3, missing=4)
    parts = [pq.read_table(p) for p in sorted(path.glob("part-*.parquet"))]
    return parts, {"linucb": policies["linucb"], "always solo": "solo"}


def user_warnings(caught) -> list[str]:
    return sorted({str(w.message) for w in caught if issubclass(w.category, UserWarning)})


def run(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn()
    return out, user_warnings(caught)


def assert_same_evaluation(path: Path, targets: dict, batch_rows: int) -> tuple:
    """In memory and streaming agree for an arm target alone (the pass that needs no context) and for a policy with
    an arm under DR with a ridge model: tables to 1e-9, quarantine counts per reason, warnings word for word."""
    data, load_warnings = run(lambda: LoggedData.from_parquet(path))
    out = []
    for chosen, estimators in (({"always solo": "solo"}, [IPS(), SNIPS()]),
                               (targets, [IPS(), SNIPS(), DR(reward_model=RidgeRewardModel())])):
        want, want_warnings = run(lambda: evaluate(data, chosen, estimators))
        got, got_warnings = run(lambda: evaluate_parquet(path, chosen, estimators, batch_rows=batch_rows))
        assert_tables_equal(got, want)
        assert got.attrs["quarantined"] == want.attrs["quarantined"] == dict(data.quarantined.counts)
        assert got_warnings == sorted(set(load_warnings + want_warnings))
        out.append(want)
    return data, out


def assert_same_evaluation_read_whole(path: Path, targets: dict) -> None:
    """One Parquet file read whole, with no part to skip: LoggedData.from_dataframe of its DataFrame and
    evaluate_parquet of it as a caller's dataset quarantine the same rows (the checks of
    :func:`assert_same_evaluation`)."""
    import pyarrow.dataset as ds

    dataset = ds.dataset(path, format="parquet")
    data, load_warnings = run(lambda: LoggedData.from_dataframe(dataset.to_table().to_pandas(), action_names=ARMS))
    for chosen, estimators in (({"always solo": "solo"}, [IPS(), SNIPS()]),
                               (targets, [IPS(), SNIPS(), DR(reward_model=RidgeRewardModel())])):
        want, want_warnings = run(lambda: evaluate(data, chosen, estimators))
        got, got_warnings = run(lambda: evaluate_parquet(dataset, chosen, estimators, batch_rows=64))
        assert_tables_equal(got, want)
        assert got.attrs["quarantined"] == want.attrs["quarantined"] == dict(data.quarantined.counts)
        assert got_warnings == sorted(set(load_warnings + want_warnings))


ROWS_PER_PART = 150


@st.composite
def corrupted_logs(draw):
    """Up to 8 (part, row, corruptions) and, per part, its form and whether it has statistics; sometimes an id of
    an earlier part repeated in a later one."""
    n_rows = draw(st.integers(1, 8))
    rows = draw(st.lists(st.tuples(st.integers(0, 2), st.integers(0, ROWS_PER_PART - 1),
                                   st.lists(st.sampled_from(sorted(CORRUPTIONS)), min_size=1, max_size=2)),
                         min_size=n_rows, max_size=n_rows))
    forms = draw(st.lists(st.booleans(), min_size=3, max_size=3))
    statistics = draw(st.lists(st.booleans(), min_size=3, max_size=3))
    repeat = draw(st.none() | st.tuples(st.integers(0, ROWS_PER_PART - 1), st.integers(0, ROWS_PER_PART - 1)))
    return rows, forms, statistics, repeat


@settings(derandomize=True, max_examples=10, deadline=None)
@given(corrupted_logs())
def test_in_memory_and_streaming_agree_on_corrupted_logs(clean_log, case):
    """As a log directory (from_parquet = evaluate_parquet: a part with a null, an action beyond int32 or a list of
    another length skipped whole), and as one file read whole (from_dataframe = evaluate_parquet of a dataset:
    every fault a row fault)."""
    parts, targets = clean_log
    rows, forms, statistics, repeat = case
    with tempfile.TemporaryDirectory() as tmp:
        tables = []
        for p, table in enumerate(parts):
            if repeat is not None and p == 2:  # a row of the last part takes the id of a row of the first
                ids = table.column("event_id").to_pylist()
                ids[repeat[1]] = parts[0].column("event_id")[repeat[0]].as_py()
                table = table.set_column(0, table.schema.field(0), pa.array(ids, pa.string()))
            tables.append(table)
            chosen: dict[int, list[str]] = {}
            for part, i, kinds in rows:
                if part == p:
                    chosen.setdefault(i, []).extend(kinds)
            write_part(table, chosen, Path(tmp) / f"part-{p:08d}-x.parquet", forms[p], statistics[p])
        try:
            assert_same_evaluation(Path(tmp), targets, batch_rows=64)
        except ValueError as err:  # every part skipped (a null in each): both readers say so
            assert "holds no decision-log part" in str(err)
            with pytest.raises(ValueError, match="holds no decision-log part"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                evaluate_parquet(tmp, {"always solo": "solo"}, [IPS()], batch_rows=64)
        whole: dict[int, list[str]] = {}
        for part, i, kinds in rows:
            whole.setdefault(part * ROWS_PER_PART + i, []).extend(kinds)
        write_part(pa.concat_tables(tables), whole, Path(tmp) / "whole.parquet", forms[0], statistics[0])
        assert_same_evaluation_read_whole(Path(tmp) / "whole.parquet", targets)


def test_every_corruption_alone_is_left_out_alike(clean_log, tmp_path):
    """Each row fault on its own row; each part fault (a null, an action beyond int32) in its own part, skipped by
    both readers, from its footer or from its data when the footer has no statistics; the quarantine counts name
    every row reason."""
    parts, targets = clean_log
    rows = [kind for kind in sorted(CORRUPTIONS) if kind not in PART_FAULTS]
    for p, table in enumerate(parts):
        chosen = {5 * j: [kind] for j, kind in enumerate(rows) if j % 3 == p}
        write_part(table, chosen, tmp_path / f"part-{p:08d}-x.parquet", old_form=p == 1, statistics=True)
    for j, kind in enumerate(PART_FAULTS):  # one part each, a copy of rows of the first part with other ids
        table = parts[0].slice(0, 40)
        ids = [f"part-fault-{j}-{i}" for i in range(table.num_rows)]
        table = table.set_column(0, table.schema.field(0), pa.array(ids, pa.string()))
        write_part(table, {7: [kind]}, tmp_path / f"part-{10 + j:08d}-x.parquet", old_form=False,
                   statistics=j % 2 == 0)
    data, (arm_table, _) = assert_same_evaluation(tmp_path, targets, batch_rows=50)
    assert set(data.quarantined.counts) == {"action", "propensity", "reward", "context", "probabilities",
                                            "probabilities_sum", "propensity_mismatch", "ineligible_action",
                                            "ineligible_probability"}
    # 4 rows without a reward, 1 more (reward NaN), the quarantined rows; every part with a part fault skipped
    assert data.n == arm_table.n.iloc[0] == 450 - 4 - 1 - data.quarantined.n_rows
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        LoggedData.from_parquet(tmp_path)
    skipped = sorted(str(w.message) for w in caught if "skipping" in str(w.message))
    assert len(skipped) == len(PART_FAULTS)
    for kind, why in PART_FAULTS.items():
        assert any(why in message for message in skipped), kind


def test_a_non_finite_context_is_left_out_whatever_the_targets(tmp_path):
    """The arm-target pass reads no context for its estimates, yet leaves out a row whose context is not finite,
    as in memory: the same rows, so an arm's estimate does not depend on which other targets share the call."""
    policies = write_log(tmp_path, n=600, parts=2, missing=0)
    part = sorted(tmp_path.glob("part-*.parquet"))[1]
    write_part(pq.read_table(part), {3: ["context NaN"], 4: ["context inf"]}, part, old_form=False,
               statistics=True)
    alone, _ = run(lambda: evaluate_parquet(tmp_path, {"always solo": "solo"}, [IPS(), SNIPS()]))
    together, _ = run(lambda: evaluate_parquet(tmp_path, {"always solo": "solo", "linucb": policies["linucb"]},
                                               [IPS(), SNIPS()]))
    assert alone.n.tolist() == [598, 598] and alone.attrs["quarantined"] == {"context": 2}
    assert_tables_equal(alone, together[together.policy == "always solo"].reset_index(drop=True))
    with pytest.raises(ValueError, match=r"context must be finite; 2 of 150 rows violate it \(first at row 3\)"):
        evaluate_parquet(tmp_path, {"always solo": "solo"}, [IPS()], batch_rows=150, invalid_rows="raise")


def test_parts_of_another_context_length_fail_alike(clean_log, tmp_path):
    parts, _ = clean_log
    log = tmp_path / "log"
    log.mkdir()
    pq.write_table(parts[0], log / "part-00000000-x.parquet")
    table = parts[1]
    context = pa.FixedSizeListArray.from_arrays(
        pa.array(np.ones(table.num_rows * 4)), type=pa.list_(pa.field("item", pa.float64(), nullable=False), 4))
    pq.write_table(table.set_column(2, pa.field("context", context.type, nullable=False), context),
                   log / "part-00000001-x.parquet")
    with pytest.raises(ValueError, match="context length"):
        LoggedData.from_parquet(log)
    with pytest.raises(ValueError, match="context length"):
        evaluate_parquet(log, {"always solo": "solo"}, [IPS()])


def test_null_rows_of_a_dataset_are_quarantined_not_fatal(clean_log, tmp_path):
    """A caller's pyarrow dataset (or a Spark DataFrame) has no parts to skip: a null in a checked column, or a list
    of another length, is read as missing values (NaN, False, action -1) and its row quarantined; the other rows
    evaluate as in memory."""
    import pyarrow.dataset as ds

    parts, targets = clean_log
    bad = {3: ["null context"], 8: ["null eligible"], 11: ["null action"], 12: ["null propensity"],
           20: ["null probabilities"], 25: ["eligible empty"], 30: ["context short"]}
    write_part(parts[0], bad, tmp_path / "part-0.parquet", old_form=False, statistics=True)
    dataset = ds.dataset(tmp_path / "part-0.parquet", format="parquet")
    got, _ = run(lambda: evaluate_parquet(dataset, targets, [IPS(), SNIPS()], batch_rows=64))
    keep = np.setdiff1d(np.arange(parts[0].num_rows), list(bad))
    pq.write_table(parts[0].take(keep), tmp_path / "kept.parquet")
    want, _ = run(lambda: evaluate(LoggedData.from_parquet(tmp_path / "kept.parquet"), targets, [IPS(), SNIPS()]))
    assert_tables_equal(got, want)
    assert got.attrs["quarantined"] == {"action": 1, "propensity": 1, "context": 2, "probabilities": 1,
                                        "ineligible_action": 2, "ineligible_probability": 2}


@pytest.mark.slow
def test_spark_agrees_on_corrupted_rows_and_quarantines_null_rows(spark, clean_log, tmp_path):
    """Spark on a log with a row of every row fault (the arm-target pass too) and a repeated id across parts equals
    in memory; on a DataFrame with null rows and lists of another length (no parts to skip) it quarantines them
    as the streaming reader of a dataset does."""
    from offline_eval.spark import evaluate as spark_evaluate

    parts, targets = clean_log
    kinds = [kind for kind in sorted(CORRUPTIONS) if kind not in PART_FAULTS]
    for p, table in enumerate(parts):
        chosen = {5 * j: [kind] for j, kind in enumerate(kinds) if j % 3 == p}
        if p == 2:
            ids = table.column("event_id").to_pylist()
            ids[100] = parts[0].column("event_id")[17].as_py()
            table = table.set_column(0, table.schema.field(0), pa.array(ids, pa.string()))
        write_part(table, chosen, tmp_path / f"part-{p:08d}-x.parquet", old_form=p == 1, statistics=True)
    data, memory_warnings = run(lambda: LoggedData.from_parquet(tmp_path))
    arm = {"always solo": "solo"}
    want, want_warnings = run(lambda: evaluate(data, arm, [IPS(), SNIPS()]))
    # in log order (Spark reads the larger files first): the first occurrence of the repeated id is the log's
    got, got_warnings = run(lambda: spark_evaluate(spark.read.parquet(str(tmp_path)).orderBy("timestamp"), arm,
                                                   [IPS(), SNIPS()], arms=ARMS))
    assert_tables_equal(got, want)
    assert got.attrs["quarantined"] == want.attrs["quarantined"] == dict(data.quarantined.counts)
    assert len(data.quarantined.counts) == 9

    def without_examples(messages):
        return sorted(re.sub(r"; first: [^)]*\)", ")", m) for m in messages)

    assert without_examples(got_warnings) == without_examples(set(memory_warnings + want_warnings))
    assert any("already appeared" in m for m in got_warnings)

    nulls = tmp_path / "nulls"
    nulls.mkdir()
    bad = {3: ["null context"], 8: ["null eligible"], 11: ["null action"], 12: ["null propensity"],
           20: ["eligible empty"], 31: ["context short"]}
    write_part(parts[0], bad, nulls / "part-0.parquet", old_form=False, statistics=True)
    got, _ = run(lambda: spark_evaluate(spark.read.parquet(str(nulls)), targets, [IPS(), SNIPS()], arms=ARMS))
    keep = np.setdiff1d(np.arange(parts[0].num_rows), list(bad))
    pq.write_table(parts[0].take(keep), tmp_path / "kept.parquet")
    want, _ = run(lambda: evaluate(LoggedData.from_parquet(tmp_path / "kept.parquet"), targets, [IPS(), SNIPS()]))
    assert_tables_equal(got, want)
    assert got.attrs["quarantined"] == {"action": 1, "propensity": 1, "context": 2, "ineligible_action": 2,
                                        "ineligible_probability": 2}


#: Rows of the first part broken for :func:`identity_faults_part` (a table read whole: no parts to skip).
IDENTITY_FAULTS = {3: ["null event_id"], 40: ["null event_id"], 9: ["null timestamp"], 14: ["null context"],
                   21: ["null eligible"], 0: ["null probabilities"], 33: ["eligible empty"], 45: ["context short"],
                   50: ["null action"], 52: ["null propensity"], 57: ["action eligibility null"],
                   60: ["null policy_version"]}
#: Row 62 repeats the id of row 10 (in the batch of the null ids: the duplicate scan skips them, positions kept).
REPEATED_ROW, FIRST_ROW = 62, 10


def identity_faults_part(parts: list, path: Path) -> Path:
    table = parts[0]
    ids = table.column("event_id").to_pylist()
    ids[REPEATED_ROW] = ids[FIRST_ROW]
    table = table.set_column(0, table.schema.field(0), pa.array(ids, pa.string()))
    write_part(table, IDENTITY_FAULTS, path, old_form=False, statistics=True)
    return path


def test_rows_missing_an_id_a_timestamp_or_a_list_are_quarantined_alike_in_every_reader(clean_log, tmp_path):
    """A table with null ids, a null timestamp and policy version, null and ragged lists and a repeated id, read
    whole (a caller's dataset, a DataFrame): LoggedData.from_dataframe and evaluate_parquet on the dataset quarantine
    the same rows (a decision without an id can be neither joined nor de-duplicated: reasons "event_id",
    "timestamp", "policy_version"; two null ids are no repeated id) and give the table of the clean rows, under DR too (whose folds
    hash the ids); invalid_rows="raise" stops at them."""
    import pyarrow.dataset as ds

    from offline_eval.data import InvalidRowsError

    parts, targets = clean_log
    dataset = ds.dataset(identity_faults_part(parts, tmp_path / "part-0.parquet"), format="parquet")
    frame = dataset.to_table().to_pandas()
    data, load_warnings = run(lambda: LoggedData.from_dataframe(frame, action_names=ARMS))
    counts = {"action": 1, "propensity": 1, "context": 2, "timestamp": 1, "event_id": 2, "policy_version": 1,
              "probabilities": 1, "ineligible_action": 3, "ineligible_probability": 3}
    assert dict(data.quarantined.counts) == counts
    assert data.quarantined.examples[1] == "<no event_id>" and data.quarantined.rows.tolist() == sorted(IDENTITY_FAULTS)
    keep = np.setdiff1d(np.arange(parts[0].num_rows), [*IDENTITY_FAULTS, REPEATED_ROW])
    pq.write_table(parts[0].take(keep), tmp_path / "kept.parquet")
    clean = LoggedData.from_parquet(tmp_path / "kept.parquet")
    estimators = [IPS(), SNIPS(), DR(reward_model=RidgeRewardModel())]
    want, want_warnings = run(lambda: evaluate(data, targets, estimators))
    assert_tables_equal(want, run(lambda: evaluate(clean, targets, estimators))[0])
    got, got_warnings = run(lambda: evaluate_parquet(dataset, targets, estimators, batch_rows=64))
    assert_tables_equal(got, want)
    assert got.attrs["quarantined"] == want.attrs["quarantined"] == counts
    assert got_warnings == sorted(set(load_warnings + want_warnings))
    assert any("already appeared" in m and ids_of(parts)[FIRST_ROW] in m for m in got_warnings)
    only = {3: ["null event_id"], 9: ["null timestamp"], 40: ["null event_id"]}
    (tmp_path / "ids").mkdir()
    write_part(parts[0], only, tmp_path / "ids" / "part-0.parquet", old_form=False, statistics=True)
    dataset = ds.dataset(tmp_path / "ids" / "part-0.parquet", format="parquet")
    why = "timestamp must not be missing; 1 of {} rows violate it \\(first at row 9\\)"
    with pytest.raises(InvalidRowsError, match=why.format(150)):
        LoggedData.from_dataframe(dataset.to_table().to_pandas(), action_names=ARMS, invalid_rows="raise")
    with pytest.raises(InvalidRowsError, match=why.format(64)):
        evaluate_parquet(dataset, targets, [IPS()], batch_rows=64, invalid_rows="raise")


def ids_of(parts: list) -> list[str]:
    return parts[0].column("event_id").to_pylist()


@pytest.mark.slow
def test_spark_quarantines_rows_missing_an_id_or_a_timestamp_as_in_memory(spark, clean_log, tmp_path):
    """The table of the test above as a Spark DataFrame: two null ids are no repeated id, the rows without an id or
    a timestamp are quarantined (before, Spark kept them in IPS and DR failed hashing a null id to a fold), the
    table equals in memory under DR, with the same counts and warnings."""
    import pyarrow.dataset as ds

    from offline_eval.spark import evaluate as spark_evaluate

    parts, targets = clean_log
    path = identity_faults_part(parts, tmp_path / "part-0.parquet")
    data, load_warnings = run(lambda: LoggedData.from_dataframe(ds.dataset(path).to_table().to_pandas(),
                                                                action_names=ARMS))
    estimators = [IPS(), SNIPS(), DR(reward_model=RidgeRewardModel())]
    want, want_warnings = run(lambda: evaluate(data, targets, estimators))
    # the arm names read from the (action, action_name) pairs (a null action among them), K from the probabilities
    # (the first row's are null)
    got, got_warnings = run(lambda: spark_evaluate(spark.read.parquet(str(path)), targets, estimators))
    assert_tables_equal(got, want)
    assert got.attrs["quarantined"] == want.attrs["quarantined"] == dict(data.quarantined.counts)
    assert got_warnings == sorted(set(load_warnings + want_warnings))
