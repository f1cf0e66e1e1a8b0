"""Rows that break the decision-log contract: one check (check_rows), quarantined by every log reader, the same rows
in memory and batch by batch; LoggedData(...) from arrays stays strict."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scale_logs import write_log
from test_accumulators import assert_tables_equal

from offline_eval import DR, IPS, SNIPS, LoggedData, evaluate
from offline_eval.data import PROBABILITY_ATOL, ROW_REASONS, check_rows
from offline_eval.reward_models import RidgeRewardModel
from offline_eval.schema import DecisionLogWarning, read_log
from offline_eval.streaming import evaluate_parquet

#: (local row of the corrupted part, what is done to it): at least one row of every kind a Parquet log can hold
CORRUPTIONS = [
    (3, "action 7"), (9, "action -1"), (14, "propensity 0"), (20, "propensity 1.5"), (27, "propensity nan"),
    (31, "context nan"), (38, "context inf"), (44, "reward inf"), (52, "probability -0.1"),
    (57, "probabilities sum 1.2"), (63, "propensity half"), (70, "action ineligible"), (76, "other arm ineligible"),
]


def corrupt(directory) -> list[str]:
    """Corrupt rows of the third part of a log written by ``scale_logs.write_log`` (and one row of the first) as
    :data:`CORRUPTIONS` says; returns the event ids of the corrupted rows in log order."""
    parts = sorted(directory.glob("part-*.parquet"))
    ids = []
    for part, rows in ((parts[0], CORRUPTIONS[:1]), (parts[2], CORRUPTIONS)):
        table = pq.read_table(part)
        df = table.to_pandas()
        for i, kind in rows:
            a = int(df.at[i, "action"])
            probs = np.array(df.at[i, "probabilities"], dtype=float)
            context = np.array(df.at[i, "context"], dtype=float)
            eligible = np.array(df.at[i, "eligible"], dtype=bool)
            other = next(k for k in range(len(probs)) if k != a and probs[k] > 0)
            what, value = kind.rsplit(" ", 1)
            if kind == "action ineligible":
                eligible[a] = False
            elif kind == "other arm ineligible":
                eligible[other] = False
            elif what == "action":
                df.at[i, "action"] = int(value)
            elif what == "propensity":
                df.at[i, "propensity"] = probs[a] / 2 if value == "half" else float(value)
            elif what == "context":
                context[1] = float(value)
            elif what == "reward":
                df.at[i, "reward"] = np.inf
            elif what == "probability":
                probs[other] -= 0.1
                probs[a] += 0.1
                df.at[i, "propensity"] = probs[a]
            elif what == "probabilities sum":
                probs[other] += 0.2  # every entry still in [0, 1]
            df.at[i, "probabilities"], df.at[i, "context"], df.at[i, "eligible"] = probs, context, eligible
            ids.append(df.at[i, "event_id"])
        # NaN, not null (from_pandas would turn them into nulls): the numeric columns straight from numpy
        propensity = df["propensity"].to_numpy(dtype=float)
        context = np.stack(df["context"].to_numpy()).ravel()
        df["propensity"] = 0.5
        df["context"] = [np.zeros(len(c)) for c in df["context"]]
        out = pa.Table.from_pandas(df, schema=table.schema, preserve_index=False)
        out = out.set_column(out.schema.get_field_index("propensity"), table.schema.field("propensity"),
                             pa.array(propensity, pa.float64()))
        context_type = table.schema.field("context").type
        out = out.set_column(out.schema.get_field_index("context"), table.schema.field("context"),
                             pa.FixedSizeListArray.from_arrays(pa.array(context, pa.float64()), type=context_type))
        pq.write_table(out, part)
    return ids


def reference_reasons(a, r, p, X, P, E, ts, k, ids, versions) -> dict[str, np.ndarray]:
    """Every reason's rows, written out row by row in plain Python (the contract of the schema docstring)."""
    out: dict[str, list[bool]] = {reason: [] for reason in ROW_REASONS}
    for i in range(len(a)):
        inside = 0 <= a[i] < k
        row = P[i]
        entries_ok = all(np.isfinite(v) and 0 <= v <= 1 + PROBABILITY_ATOL for v in row)
        sum_ok = entries_ok and abs(sum(row) - 1) <= PROBABILITY_ATOL
        out["action"].append(not inside)
        out["propensity"].append(not (0 < p[i] <= 1))
        out["reward"].append(not np.isfinite(r[i]))
        out["context"].append(not all(np.isfinite(X[i])))
        out["timestamp"].append(bool(np.isnat(ts[i])))
        out["event_id"].append(ids[i] is None)
        out["policy_version"].append(not isinstance(versions[i], str))
        out["probabilities"].append(not entries_ok)
        out["probabilities_sum"].append(entries_ok and not sum_ok)
        out["propensity_mismatch"].append(sum_ok and inside and abs(row[a[i]] - p[i]) > PROBABILITY_ATOL)
        out["ineligible_action"].append(inside and not E[i, a[i]])
        out["ineligible_probability"].append(any(not E[i, j] and row[j] > PROBABILITY_ATOL for j in range(k)))
    return {reason: np.array(rows) for reason, rows in out.items() if any(rows)}


def test_check_rows_finds_each_reason_on_the_rows_a_plain_reference_finds():
    rng = np.random.default_rng(3)
    n, k = 300, 3
    P = rng.dirichlet(np.ones(k), size=n)
    a = rng.integers(0, k, n)
    p, r, X = P[np.arange(n), a].copy(), rng.random(n), rng.normal(size=(n, 2))
    E = np.ones((n, k), dtype=bool)
    ts = np.arange(n).astype("datetime64[us]")
    ids = np.array([f"e{i}" for i in range(n)], dtype=object)
    versions = np.array(["v1"] * n, dtype=object)
    rows = rng.permutation(n)[:48]
    for j, i in enumerate(rows):  # 4 rows of each of 12 corruptions
        [lambda: a.__setitem__(i, k + 1), lambda: p.__setitem__(i, np.nan), lambda: r.__setitem__(i, -np.inf),
         lambda: X.__setitem__((i, 1), np.nan), lambda: ts.__setitem__(i, np.datetime64("NaT")),
         lambda: P.__setitem__((i, 0), P[i, 0] + 0.3), lambda: P.__setitem__((i, 1), -0.2),
         lambda: p.__setitem__(i, p[i] * 0.9), lambda: E.__setitem__((i, a[i] % k), False),
         lambda: E.__setitem__((i, (a[i] + 1) % k), False), lambda: ids.__setitem__(i, None),
         lambda: versions.__setitem__(i, np.nan)][j % 12]()
    check = check_rows(a, r, p, X, P, E, ts, k, event_id=ids, policy_version=versions)
    want = reference_reasons(a, r, p, X, P, E, ts, k, ids, versions)
    assert list(check.reasons) == list(want) and len(want) == 12
    for reason, mask in want.items():
        np.testing.assert_array_equal(check.reasons[reason], mask, err_msg=reason)
    np.testing.assert_array_equal(check.bad(), np.any(list(want.values()), axis=0))
    assert set(np.flatnonzero(check.bad())) == set(rows)
    # the constructor stays strict: the first reason, with its count and first row
    first = np.flatnonzero(want["action"])[0]
    with pytest.raises(ValueError, match=rf"action must lie in \[0, K=3\); 4 of 300 rows .*first at row {first}: 4"):
        LoggedData(X, a, r, p, probabilities=P, eligible=E, timestamp=ts)
    clean = ~check.bad()
    assert check_rows(a[clean], r[clean], p[clean], X[clean], P[clean], E[clean], ts[clean], k,
                      event_id=ids[clean], policy_version=versions[clean]).bad() is None
    no_id = clean | pd.isna(ids)  # the clean rows and the 4 rows without an id: the constructor raises for those
    with pytest.raises(ValueError, match=r"event_id must not be missing; 4 of 256 rows violate it"):
        LoggedData(X[no_id], a[no_id], r[no_id], p[no_id], event_id=ids[no_id])


@pytest.fixture(scope="module")
def bad_log(tmp_path_factory):
    path = tmp_path_factory.mktemp("bad_log")
    policies = write_log(path, n=2400, parts=3)
    clean = {i: pq.read_table(p) for i, p in enumerate(sorted(path.glob("part-*.parquet")))}
    ids = corrupt(path)
    return path, policies, ids, clean


def test_from_parquet_and_from_dataframe_quarantine_exactly_the_bad_rows(bad_log):
    path, _, ids, clean = bad_log
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = LoggedData.from_parquet(path)
    quarantine = [str(w.message) for w in caught if w.category is DecisionLogWarning]
    assert len(quarantine) == 1
    assert f"quarantined {len(ids)} of 2375 rows" in quarantine[0]  # 25 rows of the second part have no reward
    assert f"first: {', '.join(ids[:5])}, ..." in quarantine[0] and "biases the estimates" in quarantine[0]
    assert 'invalid_rows="raise"' in quarantine[0]
    assert data.quarantined.n_rows == len(ids) and sum(data.quarantined.counts.values()) >= len(ids)
    assert set(data.quarantined.counts) == {"action", "propensity", "context", "reward", "probabilities",
                                            "probabilities_sum", "propensity_mismatch", "ineligible_action",
                                            "ineligible_probability"}
    # the kept rows are the untouched log without the corrupted rows, value for value
    table, arms = read_log(path)
    want = pa.concat_tables(clean.values()).filter(
        pa.array(~np.isin(table.column("event_id").to_numpy(zero_copy_only=False), ids)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        tmp = path.parent / "kept"
        tmp.mkdir(exist_ok=True)
        pq.write_table(want.replace_schema_metadata(table.schema.metadata), tmp / "part-0.parquet")
        reference = LoggedData.from_parquet(tmp)
    assert reference.quarantined.n_rows == 0
    for name in ("context", "action", "reward", "propensity", "probabilities", "eligible", "event_id"):
        np.testing.assert_array_equal(getattr(data, name), getattr(reference, name), err_msg=name)
    with pytest.raises(ValueError, match=r"action must lie in \[0, K=4\); 3 of 2375 rows violate it"), \
            pytest.warns(UserWarning, match="dropped 25 of 2400 rows with a missing reward"):
        LoggedData.from_parquet(path, invalid_rows="raise")
    # the same rows from a DataFrame (a NaT timestamp too), with their positions in the DataFrame
    df = table.to_pandas()
    df.attrs["arms"] = arms
    df.loc[100, "timestamp"] = pd.NaT
    with pytest.warns(DecisionLogWarning, match=rf"quarantined {len(ids) + 1} of 2375 rows .*timestamp: 1"), \
            pytest.warns(UserWarning, match="dropped 25 of 2400 rows with a missing reward"):
        from_df = LoggedData.from_dataframe(df)
    bad = np.flatnonzero(df["event_id"].isin(ids).to_numpy() | (np.arange(len(df)) == 100))
    assert from_df.quarantined.rows.tolist() == bad.tolist()
    assert from_df.event_id.tolist() == [e for e in data.event_id if e != df.at[100, "event_id"]]
    with pytest.raises(ValueError, match="invalid_rows must be 'quarantine' or 'raise', got 'drop'"):
        LoggedData.from_dataframe(df, invalid_rows="drop")


def test_from_dataframe_drops_repeated_event_ids_as_the_log_readers_do():
    df = pd.DataFrame({"event_id": ["a", "b", "a", "c"], "x": [0.1, 0.2, 0.3, 0.4], "action": [0, 1, 1, 0],
                       "reward": [1.0, 0.0, 5.0, 2.0], "propensity": [0.5] * 4})
    with pytest.warns(DecisionLogWarning, match=r"holds 1 row\(s\) whose event id already appeared .*'a'"):
        data = LoggedData.from_dataframe(df, context=["x"])
    assert data.event_id.tolist() == ["a", "b", "c"] and data.reward.tolist() == [1.0, 0.0, 2.0]


def test_streaming_leaves_out_the_rows_in_memory_leaves_out(bad_log):
    path, policies, ids, _ = bad_log
    targets = {"linucb": policies["linucb"], "always solo": "solo"}
    estimators = [IPS(), SNIPS(), DR(reward_model=RidgeRewardModel())]
    with warnings.catch_warnings(record=True) as want_warnings:
        warnings.simplefilter("always")
        want = evaluate(LoggedData.from_parquet(path), targets, estimators)
    assert sum(want.attrs["quarantined"].values()) >= len(ids)
    for cache_bytes in (0, 1 << 30):  # model columns read every pass, or kept after the first
        with warnings.catch_warnings(record=True) as got_warnings:
            warnings.simplefilter("always")
            got = evaluate_parquet(path, targets, estimators, batch_rows=300, cache_bytes=cache_bytes)
        assert_tables_equal(got, want)
        assert got.attrs["quarantined"] == want.attrs["quarantined"]
        assert sorted(str(w.message) for w in got_warnings if issubclass(w.category, UserWarning)) == sorted(
            str(w.message) for w in want_warnings if issubclass(w.category, UserWarning))
    with pytest.raises(ValueError, match=r"action must lie in \[0, K=4\); 1 of 300 rows"):
        evaluate_parquet(path, targets, [IPS()], batch_rows=300, invalid_rows="raise")
