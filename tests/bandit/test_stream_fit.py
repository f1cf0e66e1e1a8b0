"""bandit.streaming.fit_parquet: streaming (event-id hash partitions, record batches) == in-memory fitting."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bandit import BetaTS, HybridLinUCB, LinUCB, LogisticTS, VWPolicy
from bandit.attribution import join_outcomes
from bandit.streaming import fit_parquet
from offline_eval.schema import DecisionLogWarning, encode_decisions, read_log
from tests.bandit.policy_helpers import ARMS, make, state_of
from tests.offline_eval.scale_logs import old_form

NAMES = [a.name for a in ARMS]
T0 = pd.Timestamp("2026-11-01", tz="UTC")
DAY_US = 86_400_000_000


def write_log(root, n: int, seed: int, parts: int = 4) -> pd.DataFrame:
    """A log of n decisions over 11 days in ``parts`` part files, with a duplicated id and a NaN context."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    X[7, 1] = np.nan
    action = rng.integers(0, len(NAMES), size=n)
    ts = (T0.value // 1000) + np.sort(rng.integers(0, 11 * DAY_US, size=n))
    ids = [f"ev-{i}" for i in range(n)]
    ids[n // 2] = ids[3]  # a duplicate id in a later part: read_log keeps the first
    probs = np.full((n, len(NAMES)), 1 / len(NAMES))
    table = encode_decisions(
        event_id=ids, timestamp_us=ts, context=X, action=action, propensity=probs[np.arange(n), action],
        probabilities=probs, eligible=np.ones((n, len(NAMES)), dtype=bool), policy="UniformRandom",
        policy_version="v1", arms=NAMES,
    )
    bounds = np.linspace(0, n, parts + 1).astype(int)
    for p in range(parts):
        pq.write_table(table.slice(bounds[p], bounds[p + 1] - bounds[p]), root / f"part-{p:08d}-a.parquet")
    return table.to_pandas()


def outcomes_for(log: pd.DataFrame, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    hit = rng.random(len(log)) < 0.3
    out = pd.DataFrame({
        "event_id": log["event_id"][hit].to_numpy(),
        "timestamp": (log["timestamp"][hit] + pd.to_timedelta(rng.integers(0, 5 * 24, hit.sum()), "h")).to_numpy(),
        "reward": np.ones(hit.sum()),
    })
    extra = pd.DataFrame({
        "event_id": [out["event_id"].iloc[0], "no-such-decision", out["event_id"].iloc[2], out["event_id"].iloc[4],
                     None],
        "timestamp": [out["timestamp"].iloc[0], T0, T0 - pd.Timedelta("1D"), out["timestamp"].iloc[4], T0],
        "reward": [1.0, 1.0, 1.0, float("nan"), 1.0],
    })
    return pd.concat([out, extra, out.iloc[[5]]], ignore_index=True)  # incl. an exact duplicate delivery


CASES = [(LinUCB, {}), (LogisticTS, {}), (HybridLinUCB, {"discount": 0.9}), (BetaTS, {}), (LinUCB, {"discount": 0.95})]


@pytest.mark.parametrize(("cls", "params"), CASES, ids=[c.__name__ + ("-discount" if p else "") for c, p in CASES])
def test_streaming_update_from_log_equals_in_memory(tmp_path, cls, params):
    log = write_log(tmp_path, 3000, seed=1)
    outcomes = outcomes_for(log, seed=2)
    now = T0 + pd.Timedelta("12D")
    arms = ARMS[:3]  # the log's fourth arm is unknown to the policy: "unknown_arm" rejections
    policy = cls(arms, n_features=3, seed=0, **{**cls._test_params(), **params})
    reference = copy.deepcopy(policy)
    big = 700  # 5 hash partitions; with a discount they are merged back into decision-time order
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mem = reference.update_from_log(str(tmp_path), outcomes, "3D", now)
        got = fit_parquet(policy, tmp_path, outcomes, "3D", now, batch_rows=333, partition_rows=big)
    assert sum(issubclass(w.category, DecisionLogWarning) for w in caught) == 2  # one duplicate warning each
    texts = [str(w.message) for w in caught if issubclass(w.category, DecisionLogWarning)]
    assert texts[0] == texts[1] and "'ev-3'" in texts[0]  # the same words and ids as the in-memory reader
    assert got.n_partitions == 5
    assert (got.n_applied, got.n_expired_zero, got.n_pending, got.n_already_applied) == (
        mem.n_applied, mem.n_expired_zero, mem.n_pending, mem.n_already_applied)
    assert mem.n_applied > 1000 and len(mem.rejected) > 5
    pd.testing.assert_frame_equal(got.rejected, mem.rejected)
    pd.testing.assert_frame_equal(got.unknown_outcomes, mem.unknown_outcomes)
    pd.testing.assert_frame_equal(got.late_outcomes, mem.late_outcomes)
    assert got.watermark == mem.watermark
    assert policy._applied_event_ids == reference._applied_event_ids  # same ids and times (insertion order aside)
    a, b = state_of(policy)["arrays"], state_of(reference)["arrays"]
    for name, ref in b.items():
        if name.startswith("ledger_"):
            continue
        if ref.dtype.kind == "f" and ref.size:
            tol = 1e-7 if cls is LogisticTS else 1e-9
            np.testing.assert_allclose(a[name], ref, rtol=0, atol=tol * np.abs(ref).max(), err_msg=name)
        else:
            np.testing.assert_array_equal(a[name], ref, err_msg=name)
    # a second call with the same data learns nothing, in both
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DecisionLogWarning)
        again = fit_parquet(policy, tmp_path, outcomes, "3D", now, partition_rows=big)
        assert again.n_applied == 0 == reference.update_from_log(str(tmp_path), outcomes, "3D", now).n_applied


@pytest.mark.parametrize(("cls", "params"), [(LinUCB, {"discount": 0.95}), (LogisticTS, {})],
                         ids=["LinUCB-discount", "LogisticTS"])
def test_streaming_fit_from_joined_rewards_equals_update_batch(tmp_path, cls, params):
    log = write_log(tmp_path, 2000, seed=3, parts=1)
    outcomes = outcomes_for(log, seed=4)
    joined_dir = tmp_path / "joined"
    joined_dir.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DecisionLogWarning)
        joined = join_outcomes(str(tmp_path / "part-00000000-a.parquet"), outcomes, "3D", T0 + pd.Timedelta("12D"))
        table = read_log(tmp_path / "part-00000000-a.parquet").table  # the same rows, with the arm-list metadata
    joined["reward"] = joined["reward"].clip(upper=1.0)
    table = table.set_column(table.schema.get_field_index("reward"), "reward",
                             pa.array(joined["reward"].to_numpy(), type=pa.float64(), from_pandas=True))
    # a repeated event id in a later part (with another context and reward) must be dropped as read_log drops it
    repeat = table.slice(10, 1)
    for name, value in (("reward", [0.5]), ("context", [[3.0, -3.0, 3.0]])):
        field = table.schema.field(name)
        repeat = repeat.set_column(table.schema.get_field_index(name), field, pa.array(value, field.type))
    last = pa.concat_tables([table.slice(1500, 600), repeat, table.slice(2100)])
    for p, part in enumerate([table.slice(0, 700), table.slice(700, 800), last]):
        pq.write_table(part, joined_dir / f"part-{p:08d}-j.parquet")
    with pytest.warns(DecisionLogWarning, match="already appeared"):
        assert len(read_log(joined_dir).table) == table.num_rows  # the in-memory reader drops the repeat
    policy = make(cls, **params)
    reference = copy.deepcopy(policy)
    with pytest.warns(DecisionLogWarning, match="1 row\\(s\\) whose event id already appeared"):
        report = fit_parquet(policy, joined_dir, batch_rows=256)
    usable = joined[joined["reward"].notna()]
    usable = usable[usable["context"].map(lambda c: bool(np.isfinite(c).all()))]
    reference.update_batch(np.stack(usable["context"].to_list()), usable["action_name"].to_list(),
                           usable["reward"].to_numpy())
    assert report.n_applied == len(usable) and report.rejected == {}
    assert report.n_pending == int(joined["reward"].isna().sum())
    np.testing.assert_allclose(policy.coef_, reference.coef_, rtol=0, atol=1e-7 if cls is LogisticTS else 1e-10)
    assert policy.n_updates == reference.n_updates


def test_streaming_with_one_partition_equals_in_memory_and_bad_arguments_are_refused(tmp_path):
    log = write_log(tmp_path, 300, seed=5, parts=2)
    outcomes = outcomes_for(log, seed=6)
    now = T0 + pd.Timedelta("12D")
    policy = make(LinUCB, discount=0.9)
    reference = copy.deepcopy(policy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DecisionLogWarning)
        got = fit_parquet(policy, tmp_path, outcomes, "3D", now, batch_rows=64)  # one partition: no spilling
        mem = reference.update_from_log(str(tmp_path), outcomes, "3D", now)
    assert got.n_partitions == 1 and got.n_applied == mem.n_applied > 0
    np.testing.assert_allclose(policy.coef_, reference.coef_, rtol=0, atol=1e-10)
    before = state_of(policy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DecisionLogWarning)
        with pytest.raises(ValueError, match="attribution_window is required"):
            fit_parquet(policy, tmp_path, outcomes)
        with pytest.raises(ValueError, match="batch_rows"):
            fit_parquet(policy, tmp_path, batch_rows=0)
        with pytest.raises(ValueError, match="partition_rows"):
            fit_parquet(policy, tmp_path, outcomes, "3D", partition_rows=-5)
        with pytest.raises(TypeError, match="not a sum of per-row terms"):
            fit_parquet(make(VWPolicy), tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no decision-log part"):
        fit_parquet(policy, tmp_path / "empty")
    for k, v in before["arrays"].items():
        np.testing.assert_array_equal(state_of(policy)["arrays"][k], v)


def test_old_and_new_parts_fit_alike_and_a_null_context_element_is_a_bad_context(tmp_path):
    """A log whose first part has the old form (nullable list elements) with a null where the new-form log has its
    NaN context element: every reader fits the same policy and rejects that row as a bad context."""
    from bandit._arrow_rows import rows_from_batch

    for name in ("new", "mixed"):
        (tmp_path / name).mkdir()
    log = write_log(tmp_path / "new", 300, seed=5, parts=2)  # row 7's context holds a NaN
    mixed = tmp_path / "mixed"
    for p, part in enumerate(sorted((tmp_path / "new").glob("part-*.parquet"))):
        table = pq.read_table(part)
        pq.write_table(old_form(table, ("context", 7, 1)) if p == 0 else table, mixed / part.name)
    outcomes = outcomes_for(log, seed=6)
    now = T0 + pd.Timedelta("12D")
    fitted = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DecisionLogWarning)
        for name in ("new", "mixed"):
            for partition_rows in (1000, 100):  # in memory (one partition) and spilled
                policy = make(LinUCB)
                report = fit_parquet(policy, tmp_path / name, outcomes, "3D", now, batch_rows=64,
                                     partition_rows=partition_rows)
                fitted[name, partition_rows] = report.rejected, policy.coef_
            policy = make(LinUCB)
            fitted[name, "memory"] = policy.update_from_log(str(tmp_path / name), outcomes, "3D", now).rejected, \
                policy.coef_
    want_rejected, want_coef = fitted["new", "memory"]
    assert "bad_context" in set(want_rejected[want_rejected["row"] == 7]["reason"])
    for rejected, coef in fitted.values():
        pd.testing.assert_frame_equal(rejected, want_rejected)
        np.testing.assert_allclose(coef, want_coef, rtol=0, atol=1e-10)
    # the joined-rewards reader (streaming and Spark fits) counts the row as a bad context too
    table = pq.read_table(mixed / "part-00000000-a.parquet")
    table = table.set_column(table.schema.get_field_index("reward"), "reward", pa.array(np.ones(table.num_rows)))
    rows = rows_from_batch(table, NAMES, 3, (0.0, 1.0))
    assert rows.rejected == {"bad_context": 1} and len(rows.arms) == table.num_rows - 1


def test_ordered_merge_of_sorted_streams(tmp_path):
    """The k-way merge used with a discount emits every row once, in (time, row) order, whatever the chunking."""
    from bandit.streaming import _ordered_batches

    rng = np.random.default_rng(0)
    paths, everything = [], []
    for p in range(4):
        n = int(rng.integers(0, 300))
        t = np.sort(rng.integers(0, 50, size=n))
        r = rng.permutation(10_000)[:n] * 4 + p  # unique rows across streams
        order = np.lexsort((r, t))
        t, r = t[order], r[order]
        everything.append(np.column_stack([t, r]))
        table = pa.table({"time": t, "row": r})
        path = tmp_path / f"s{p}.arrow"
        with pa.ipc.new_stream(str(path), table.schema) as sink:
            sink.write_table(table, max_chunksize=int(rng.integers(1, 40)))
        paths.append(path)
    got = np.concatenate([np.column_stack([b.column(0).to_numpy(), b.column(1).to_numpy()])
                          for b in _ordered_batches(paths)])
    want = np.concatenate(everything)
    want = want[np.lexsort((want[:, 1], want[:, 0]))]
    np.testing.assert_array_equal(got, want)


def test_joined_fit_keeps_the_first_of_each_repeated_id_and_skips_a_part_with_a_null_id(tmp_path):
    n, names = 40, ["a", "b"]
    rng = np.random.default_rng(11)
    X, action = rng.normal(size=(n, 3)), rng.integers(0, 2, n)
    probs = np.full((n, 2), 0.5)
    ids = [f"e{i % 15}" for i in range(n)]
    reward = rng.random(n)
    for part, rows in ((0, slice(0, 30)), (1, slice(30, n))):
        table = encode_decisions(event_id=ids[rows], timestamp_us=1_700_000_000_000_000 + np.arange(n)[rows],
                                 context=X[rows], action=action[rows], propensity=probs[rows][np.arange(30 if part == 0
                                 else n - 30), action[rows]], probabilities=probs[rows],
                                 eligible=np.ones((len(ids[rows]), 2), dtype=bool), policy="UniformRandom",
                                 policy_version="v", arms=names)
        table = table.set_column(table.schema.get_field_index("reward"), table.schema.field("reward"),
                                 pa.array(reward[rows]))
        if part == 1:  # a crafted part whose event_id column is nullable and holds a null: not a decision-log part
            crafted = ids[rows]
            crafted[0] = None
            table = table.set_column(0, pa.field("event_id", pa.string(), nullable=True), pa.array(crafted, pa.string()))
        pq.write_table(table, tmp_path / f"part-{part:08d}-x.parquet")
    policy = LinUCB(names, n_features=3)
    reference = copy.deepcopy(policy)
    with pytest.warns(DecisionLogWarning) as caught:
        report = fit_parquet(policy, tmp_path, batch_rows=7)
    messages = [str(w.message) for w in caught]
    assert any("part-00000001-x.parquet" in m and "'event_id' has 1 nulls" in m for m in messages), messages
    assert any("15 row" in m for m in messages), messages  # e0..e14 again in rows 15..29
    first = [i for i in range(30) if ids.index(ids[i]) == i]  # the first occurrences in the readable part
    reference.update_batch(X[first], [names[a] for a in action[first]], reward[first])
    assert report.n_applied == len(first) == 15
    np.testing.assert_allclose(policy.coef_, reference.coef_, rtol=0, atol=1e-10)
