"""Tests of bandit.attribution: the delayed-outcome join and applying it to a policy exactly once."""


from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from log_helpers import ARMS, T0, RecordingPolicy, as_batch, random_decisions

from bandit._ledger import STATE_ARRAYS as LEDGER_ARRAYS
from bandit.attribution import AppliedEvents, apply_log, join_outcomes, resolve_rewards
from bandit.decision_log import DecisionLog, read_decision_log

# ------------------------------------------------------------------------------------------------------------------
# outcome join
# ------------------------------------------------------------------------------------------------------------------


def at(offset) -> pd.Timestamp:
    """T0 plus ``offset`` minutes (or a Timedelta)."""
    return T0 + (offset if isinstance(offset, pd.Timedelta) else pd.Timedelta(minutes=offset))


def decisions_frame(rows) -> pd.DataFrame:
    """rows: (event_id, minutes after T0, action index)."""
    return pd.DataFrame(
        {
            "event_id": [r[0] for r in rows],
            "timestamp": pd.to_datetime([at(r[1]) for r in rows], utc=True),
            "context": [np.array([float(i), 1.0]) for i in range(len(rows))],
            "action": np.array([r[2] for r in rows], dtype=np.int32),
            "action_name": [ARMS[r[2]] for r in rows],
        }
    )


def outcomes_frame(rows, **extra) -> pd.DataFrame:
    """rows: (event_id, minutes after T0, reward)."""
    return pd.DataFrame(
        {
            "event_id": [r[0] for r in rows],
            "timestamp": pd.to_datetime([at(r[1]) for r in rows], utc=True),
            "reward": [float(r[2]) for r in rows],
            **extra,
        }
    )


def test_join_rules_hand_built():
    window = "60min"
    dec = decisions_frame(
        [
            ("inside", 0, 0),  # outcome at +30: counts
            ("at-start", 0, 1),  # outcome at exactly t: counts
            ("at-end", 0, 2),  # outcome at exactly t + w: counts
            ("just-late", 0, 0),  # outcome 1 us after t + w: late, decision expires to 0
            ("two-buys", 10, 1),  # two in-window purchases add up; a third after the window does not
            ("silent", 0, 2),  # nothing: expired (now > t + w)
            ("waiting", 100, 0),  # nothing yet, window still open: pending
            ("at-edge", 40, 1),  # now == t + w exactly: still pending
            ("early", 50, 0),  # outcome stamped before the decision: late, decision still pending
        ]
    )
    outs = outcomes_frame(
        [
            ("inside", 30, 1.0),
            ("at-start", 0, 2.0),
            ("at-end", 60, 3.0),
            ("just-late", pd.Timedelta(minutes=60, microseconds=1), 4.0),
            ("two-buys", 20, 5.0),
            ("two-buys", 70, 6.0),
            ("two-buys", 71, 7.0),
            ("ghost", 5, 8.0),
            ("early", 49, 9.0),
            ("waiting", 150, 10.0),  # after `now`: not yet visible
        ],
        source=list("abcdefghij"),
    )
    res = resolve_rewards(dec, outs, window, now=at(100))
    got = {r.event_id: (r.reward, r.resolved_by, r.n_outcomes) for r in res.resolved.itertuples()}
    assert got == {
        "inside": (1.0, "outcome", 1),
        "at-start": (2.0, "outcome", 1),
        "at-end": (3.0, "outcome", 1),
        "just-late": (0.0, "window_expired", 0),
        "two-buys": (11.0, "outcome", 2),
        "silent": (0.0, "window_expired", 0),
    }
    assert set(res.pending_event_ids) == {"waiting", "at-edge", "early"}
    assert res.unknown_outcomes["event_id"].tolist() == ["ghost"]
    assert res.unknown_outcomes["source"].tolist() == ["h"]  # extra columns and index kept
    assert res.unknown_outcomes.index.tolist() == [7]
    late = dict(zip(res.late_outcomes["source"], res.late_outcomes["late_reason"], strict=True))
    assert late == {"d": "after_window", "g": "after_window", "i": "before_decision"}
    assert res.now == at(100) and res.attribution_window == pd.Timedelta("60min")
    # the outcome stamped after `now` is reported, not counted (a later call counts it)
    assert res.rejected[["source", "event_id", "reason"]].values.tolist() == [["outcomes", "waiting", "future_timestamp"]]
    # one microsecond later the edge decision expires
    res2 = resolve_rewards(dec, outs, window, now=at(100) + pd.Timedelta(microseconds=1))
    assert "at-edge" in set(res2.resolved["event_id"]) and "at-edge" not in res2.pending_event_ids
    # resolved rows carry the decision's context and action
    row = res.resolved.set_index("event_id").loc["two-buys"]
    np.testing.assert_array_equal(row["context"], [4.0, 1.0])
    assert row["action"] == 1 and row["action_name"] == "duo"


def test_resolved_rows_sorted_by_decision_time_and_dtypes():
    dec = decisions_frame([("late", 30, 0), ("early", 0, 1), ("mid", 10, 2)])
    res = resolve_rewards(dec, outcomes_frame([]), "5min", now=at(1000))
    assert res.resolved["event_id"].tolist() == ["early", "mid", "late"]
    assert res.resolved["reward"].dtype == np.float64
    assert str(res.resolved["timestamp"].dtype).startswith("datetime64") and res.resolved["timestamp"].dt.tz is not None


def test_join_outcomes_fills_rewards_by_the_resolution_rules_and_feeds_offline_eval(tmp_path):
    from offline_eval import LoggedData

    decisions, X = random_decisions(40, seed=11)
    with DecisionLog(tmp_path / "log", arms=ARMS, policy_name="test") as log:
        for i, (d, x) in enumerate(zip(decisions, X, strict=True)):
            log.append(d, x, timestamp=at(i))
    rng = np.random.default_rng(3)
    buyers = [d.event_id for d in decisions if rng.random() < 0.4]
    outs = outcomes_frame([(e, int(e.rsplit("-", 1)[1]) + 5, 9.99) for e in buyers] + [("ghost", 3, 1.0)])
    window, now = "10min", at(45)

    joined = join_outcomes(tmp_path / "log", outs, window, now)
    frame = read_decision_log(tmp_path / "log")
    pd.testing.assert_frame_equal(joined.drop(columns=["reward", "reward_status"]), frame.drop(columns="reward"))
    assert joined.attrs["arms"] == ARMS
    resolved = resolve_rewards(frame, outs, window, now).resolved.set_index("event_id")["reward"]
    expected = [resolved.get(e, np.nan) for e in frame["event_id"]]
    np.testing.assert_array_equal(joined["reward"].to_numpy(), expected)
    # decisions 0..34 are past their 10-minute window at minute 45; the last 5 wait (NaN), buyers among them count
    pending = np.isnan(joined["reward"].to_numpy())
    assert set(frame["event_id"][pending]) == {d.event_id for d in decisions[35:]} - set(buyers)
    assert set(joined["reward_status"][pending]) == {"pending"}
    assert set(joined["reward_status"][~pending]) <= {"outcome", "window_expired"}

    with pytest.warns(UserWarning, match="missing reward"):
        data = LoggedData.from_dataframe(joined)
    assert data.n == int((~pending).sum()) and data.action_names == ARMS
    np.testing.assert_array_equal(data.reward, joined["reward"].to_numpy()[~pending])


def test_default_now_is_the_wall_clock_and_future_outcomes_never_expire_anything():
    """Regression: a 2099 outcome used to become `now` and expire every pending decision to reward 0."""
    wall = pd.Timestamp.now(tz="UTC").floor("s")
    dec = pd.DataFrame(
        {
            "event_id": ["old", "recent"],
            "timestamp": [wall - pd.Timedelta("3h"), wall - pd.Timedelta("10min")],
            "context": [np.array([1.0, 0.0]), np.array([0.0, 1.0])],
            "action": np.array([0, 1], dtype=np.int32),
            "action_name": ["individual", "duo"],
        }
    )
    outs = pd.DataFrame(
        {"event_id": ["recent", "old"], "timestamp": [pd.Timestamp("2099-01-01", tz="UTC"), wall - pd.Timedelta("4h")],
         "reward": [1.0, 1.0]}
    )
    res = resolve_rewards(dec, outs, "1h")
    assert wall <= res.now <= pd.Timestamp.now(tz="UTC")
    assert res.resolved["event_id"].tolist() == ["old"] and res.resolved["resolved_by"].tolist() == ["window_expired"]
    assert res.pending_event_ids == ("recent",)  # not expired by the 2099 outcome
    (row,) = res.rejected.itertuples()
    assert (row.source, row.row, row.event_id, row.reason, row.final) == ("outcomes", 0, "recent", "future_timestamp", False)
    assert res.late_outcomes["late_reason"].tolist() == ["before_decision"]
    # with an explicit now (replaying history) the same data resolves as of that time
    replay = resolve_rewards(dec, outs, "1h", now=wall - pd.Timedelta("2h"))
    assert replay.resolved.empty and replay.pending_event_ids == ("old",)
    assert replay.rejected["reason"].tolist() == ["future_timestamp", "future_timestamp"]  # "recent" and the 2099 row
    empty = resolve_rewards(dec.iloc[:0], outs.iloc[:0], "60min")
    assert len(empty.resolved) == 0 and empty.rejected.empty and empty.now is not None


def test_naive_timestamps_are_utc():
    dec = decisions_frame([("a", 0, 0)])
    dec["timestamp"] = dec["timestamp"].dt.tz_localize(None)
    outs = outcomes_frame([("a", 60, 2.0)])
    outs["timestamp"] = outs["timestamp"].dt.tz_convert("Asia/Tokyo")  # same instant, other zone
    res = resolve_rewards(dec, outs, dt.timedelta(hours=1), now=dt.datetime(2024, 5, 1, 5))
    assert res.resolved["reward"].tolist() == [2.0]


def reference_resolve(dec_rows, out_rows, window, now, applied):
    """Brute-force reading of the documented rules for clean rows; times are plain numbers."""
    dec_time = {e: t for e, t, _ in dec_rows}
    resolved, pending, unknown, late, future, dups = {}, set(), [], {}, [], []
    seen, counted = set(), {}
    future_dec = [e for e, t, _ in dec_rows if t > now and e not in applied]  # rejected: not happened yet
    for j, (e, t, r) in enumerate(out_rows):
        if t > now:
            future.append(j)
            continue
        if (e, t, r) in seen:
            dups.append(j)
            continue
        seen.add((e, t, r))
        if e in applied:
            late[j] = "already_settled"
        elif e not in dec_time:
            unknown.append(j)
        elif e in future_dec:
            late[j] = "decision_rejected"
        elif t < dec_time[e]:
            late[j] = "before_decision"
        elif t > dec_time[e] + window:
            late[j] = "after_window"
        else:
            counted.setdefault(e, []).append(r)
    for e, t, _ in dec_rows:
        if e in applied or e in future_dec:
            continue
        if e in counted:
            resolved[e] = (sum(counted[e]), "outcome")
        elif now > t + window:
            resolved[e] = (0.0, "window_expired")
        else:
            pending.add(e)
    return resolved, pending, unknown, late, future, dups, future_dec


@pytest.mark.parametrize("seed", range(5))
def test_join_matches_bruteforce_reference(seed):
    rng = np.random.default_rng(seed)
    n_dec, n_out, window = 40, 80, 10  # integer minutes: boundary equalities (and exact duplicates) happen often
    dec_rows = [(f"d{i}", int(rng.integers(0, 50)), int(rng.integers(0, 3))) for i in range(n_dec)]
    out_rows = [
        (f"d{rng.integers(0, n_dec + 5)}", int(rng.integers(-5, 70)), float(rng.integers(1, 5))) for _ in range(n_out)
    ]
    applied = {f"d{i}" for i in rng.choice(n_dec + 5, size=6, replace=False)}
    now = int(rng.integers(20, 70))
    res = resolve_rewards(
        decisions_frame(dec_rows), outcomes_frame(out_rows), f"{window}min", now=at(now), already_applied=applied
    )
    resolved, pending, unknown, late, future, dups, future_dec = reference_resolve(
        dec_rows, out_rows, window, now, applied
    )
    got = {r.event_id: (r.reward, r.resolved_by) for r in res.resolved.itertuples()}
    assert got == resolved
    assert set(res.pending_event_ids) == pending
    assert res.unknown_outcomes.index.tolist() == unknown
    assert dict(zip(res.late_outcomes.index, res.late_outcomes["late_reason"], strict=True)) == late
    assert res.n_already_applied == sum(e in applied for e, _, _ in dec_rows)
    rej = res.rejected
    assert rej.loc[rej["source"] == "decisions", "event_id"].tolist() == future_dec
    assert set(rej.loc[rej["source"] == "decisions", "reason"]) <= {"future_timestamp"}
    rej = rej[rej["source"] == "outcomes"]
    assert rej.loc[rej["reason"] == "future_timestamp", "row"].tolist() == future
    assert rej.loc[rej["reason"] == "duplicate_outcome", "row"].tolist() == dups
    assert len(rej) == len(future) + len(dups)


def test_outcomes_with_duplicate_index_labels():
    dec = decisions_frame([("a", 0, 0), ("b", 0, 1)])
    outs = pd.concat(
        [outcomes_frame([("a", 5, 1.0), ("b", 500, 2.0)]), outcomes_frame([("zz", 5, 3.0), ("a", 7, 4.0)])]
    )
    assert outs.index.tolist() == [0, 1, 0, 1]
    res = resolve_rewards(dec, outs, "1h", now=at(600))
    assert dict(zip(res.resolved["event_id"], res.resolved["reward"], strict=True)) == {"a": 5.0, "b": 0.0}
    assert res.late_outcomes["event_id"].tolist() == ["b"] and res.late_outcomes["late_reason"].tolist() == [
        "after_window"
    ]
    assert res.unknown_outcomes["event_id"].tolist() == ["zz"]


def test_join_does_not_mutate_inputs():
    dec = decisions_frame([("a", 0, 0), ("b", 0, 1)])
    outs = outcomes_frame([("a", 5, 1.0), ("zz", 5, 1.0)])
    dec_copy, outs_copy = dec.copy(deep=True), outs.copy(deep=True)
    applied = {"b"}
    resolve_rewards(dec, outs, "1h", now=at(500), already_applied=applied)
    pd.testing.assert_frame_equal(dec, dec_copy)
    pd.testing.assert_frame_equal(outs, outs_copy)
    assert applied == {"b"}


def test_join_reads_paths(tmp_path):
    decisions, X = random_decisions(3, seed=15)
    with DecisionLog(tmp_path / "log", arms=ARMS, policy_name="P") as log:
        log.append_batch(as_batch(decisions), X, timestamps=T0)
    outs = outcomes_frame([(decisions[1].event_id, 10, 2.5)])
    outs["campaign"] = ["spring"]
    pq.write_table(pa.Table.from_pandas(outs, preserve_index=False), tmp_path / "outcomes.parquet")
    res = resolve_rewards(tmp_path / "log", str(tmp_path / "outcomes.parquet"), "1D", now=at(60 * 24 + 1))
    got = dict(zip(res.resolved["event_id"], res.resolved["reward"], strict=True))
    assert got == {decisions[0].event_id: 0.0, decisions[1].event_id: 2.5, decisions[2].event_id: 0.0}
    np.testing.assert_array_equal(np.stack(res.resolved["context"]), X)


@pytest.mark.parametrize(
    ("mutate", "exc", "pattern"),
    [
        (lambda d, o: (d.drop(columns="action_name"), o), ValueError, r"decisions is missing column 'action_name'"),
        (lambda d, o: (d, o.drop(columns="reward")), ValueError, r"outcomes is missing column 'reward'"),
        (lambda d, o: (d, o.drop(columns="timestamp")), ValueError, r"outcomes is missing column 'timestamp'"),
        (lambda d, o: (d, o.assign(timestamp=[1, 2])), TypeError, r"outcomes\['timestamp'\] must hold datetimes"),
        (lambda d, o: (d.assign(timestamp=[1.5]), o), TypeError, r"decisions\['timestamp'\] must hold datetimes"),
        (lambda d, o: (d, o.assign(reward=["1", "2"])), TypeError, r"outcomes\['reward'\] must be numeric"),
        (lambda d, o: (d.to_dict(), o), TypeError, "decisions must be"),
        (lambda d, o: (d, [1, 2]), TypeError, "outcomes must be"),
    ],
)
def test_join_bad_input(mutate, exc, pattern):
    dec, outs = mutate(decisions_frame([("a", 0, 0)]), outcomes_frame([("a", 1, 1.0), ("b", 2, 1.0)]))
    with pytest.raises(exc, match=pattern):
        resolve_rewards(dec, outs, "1h")


@pytest.mark.parametrize(
    ("kwargs", "exc", "pattern"),
    [
        ({"attribution_window": 7}, TypeError, "attribution_window.*ambiguous"),
        ({"attribution_window": "-1h"}, ValueError, "attribution_window must be positive"),
        ({"attribution_window": "soon"}, ValueError, "attribution_window"),
        ({"attribution_window": "1h", "now": 5}, TypeError, "now"),
        ({"attribution_window": "1h", "already_applied": ["a"]}, TypeError, "already_applied must be an AppliedEvents"),
        ({"attribution_window": "1h", "combine": "mean"}, ValueError, "combine must be one of"),
        ({"attribution_window": "1h", "combine": max}, TypeError, "combine must be one of"),
        ({"attribution_window": "1h", "n_features": 0}, ValueError, "n_features must be a positive int"),
        ({"attribution_window": "1h", "reward_range": (1.0, 0.0)}, ValueError, "reward_range must satisfy"),
        ({"attribution_window": "1h", "arm_names": "duo"}, TypeError, "arm_names must be a sequence"),
    ],
)
def test_join_bad_arguments(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        resolve_rewards(decisions_frame([("a", 0, 0)]), outcomes_frame([]), **kwargs)


def test_missing_log_directory_is_named(tmp_path):
    with pytest.raises(ValueError, match="path must be a decision-log directory"):
        resolve_rewards(tmp_path / "nope", outcomes_frame([]), "1h")


# ------------------------------------------------------------------------------------------------------------------
# apply_log
# ------------------------------------------------------------------------------------------------------------------


def test_apply_log_updates_once_by_arm_name():
    dec = decisions_frame([("a", 0, 0), ("b", 5, 1), ("c", 10, 2), ("d", 200, 1)])
    outs = outcomes_frame([("b", 20, 3.0), ("b", 30, 1.5), ("zz", 40, 1.0)])
    # the policy lists the arms in another order and has gained one: mapping is by name
    policy = RecordingPolicy(["family", "student", "individual", "duo"])
    applied = AppliedEvents()
    report = apply_log(policy, dec, outs, "60min", now=at(201), applied=applied)
    (call,) = policy.calls
    X, actions, rewards = call
    np.testing.assert_array_equal(X, [[0.0, 1.0], [1.0, 1.0], [2.0, 1.0]])
    np.testing.assert_array_equal(actions, [2, 3, 0])  # individual, duo, family in the policy's order
    assert actions.dtype == np.int64
    np.testing.assert_array_equal(rewards, [0.0, 4.5, 0.0])
    assert set(applied) == {"a", "b", "c"}
    assert (report.n_applied, report.n_expired_zero, report.n_pending) == (3, 2, 1)
    assert report.event_ids == ("a", "b", "c")
    assert report.unknown_outcomes["event_id"].tolist() == ["zz"]
    assert len(report.late_outcomes) == 0 and report.rejected.empty
    assert report.watermark == at(201) - pd.Timedelta("60min") - pd.Timedelta("1D")


def test_apply_log_is_idempotent():
    dec = decisions_frame([("a", 0, 0), ("b", 0, 1), ("c", 0, 2)])
    outs = outcomes_frame([("a", 10, 1.0), ("b", 20, 2.0)])
    policy = RecordingPolicy(ARMS)
    applied = AppliedEvents()
    first = apply_log(policy, dec, outs, "30min", now=at(60), applied=applied)
    snapshot = applied.copy()
    second = apply_log(policy, dec, outs, "30min", now=at(60), applied=applied)
    assert first.n_applied == 3 and second.n_applied == 0 and second.n_pending == 0
    assert second.n_already_applied == 3
    assert len(policy.calls) == 1 and applied == snapshot
    assert second.late_outcomes["late_reason"].tolist() == ["already_settled", "already_settled"]
    # a late distinct conversion of an already-applied decision is reported, never added
    third = apply_log(policy, dec, pd.concat([outs, outcomes_frame([("a", 15, 9.0)])]), "30min", now=at(60),
                      applied=applied)
    assert third.n_applied == 0 and len(policy.calls) == 1 and len(third.late_outcomes) == 3


@pytest.mark.parametrize("seed", range(3))
def test_incremental_replay_applies_each_decision_exactly_once(seed):
    """Calling at growing `now` with all data so far (all outcomes, most in the future at first), a short grace so
    that the watermark moves and drops ids during the replay: every decision applied once, rewards as the rules
    say."""
    rng = np.random.default_rng(100 + seed)
    n, window = 60, 15
    dec_rows = [(f"d{i}", int(rng.integers(0, 100)), int(rng.integers(0, 3))) for i in range(n)]
    out_rows = [(f"d{rng.integers(0, n)}", int(rng.integers(0, 130)), float(rng.integers(1, 4))) for _ in range(90)]
    dec_all, out_all = decisions_frame(dec_rows), outcomes_frame(out_rows)
    dec_time = {e: t for e, t, _ in dec_rows}
    policy = RecordingPolicy(ARMS)
    applied = AppliedEvents()
    expected: dict[str, float] = {}
    sizes = []
    for now in range(0, 140, 7):
        visible_dec = dec_all[[t <= now for _, t, _ in dec_rows]]
        report = apply_log(policy, visible_dec, out_all, f"{window}min", now=at(now), applied=applied, grace="5min")
        assert set(report.rejected["reason"]) <= {"future_timestamp", "duplicate_outcome"}
        for e in report.event_ids:  # reward = in-window outcomes known at the time it was applied, duplicates once
            expected[e] = sum(
                r for e2, t2, r in set(out_rows)
                if e2 == e and t2 <= now and dec_time[e] <= t2 <= dec_time[e] + window
            )
        sizes.append(len(applied))
        assert applied.watermark_us is not None and all(t > applied.watermark_us for _, t in applied.items())
    ids = [e for X, _, _ in policy.calls for e in [dec_rows[int(x)][0] for x in X[:, 0]]]
    assert len(ids) == len(set(ids)) == n  # everything resolved (last now > all windows), nothing twice
    rewards = np.concatenate([r for _, _, r in policy.calls])
    np.testing.assert_allclose(rewards, [expected[e] for e in ids])
    assert sizes[-1] == 0  # every id aged out behind the watermark


def test_failed_update_marks_nothing_applied():
    dec = decisions_frame([("a", 0, 0)])
    outs = outcomes_frame([("a", 1, 1.0)])
    applied = AppliedEvents()
    with pytest.raises(RuntimeError, match="update failed"):
        apply_log(RecordingPolicy(ARMS, fail=True), dec, outs, "1h", now=at(2), applied=applied)
    assert applied == AppliedEvents()
    ok = RecordingPolicy(ARMS)
    assert apply_log(ok, dec, outs, "1h", now=at(2), applied=applied).n_applied == 1 and set(applied) == {"a"}


def test_unknown_arm_is_reported_every_call_until_the_arm_exists():
    """Regression: one decision for an arm the policy lacks used to stop the whole log."""
    dec = decisions_frame([("a", 0, 0), ("b", 0, 2)])
    outs = outcomes_frame([("a", 1, 1.0), ("b", 1, 1.0)])
    policy = RecordingPolicy(["individual", "duo"])
    applied = AppliedEvents()
    for _ in range(2):  # not final: reported again
        report = apply_log(policy, dec, outs, "1h", now=at(2), applied=applied)
        assert report.rejected[["event_id", "reason", "final"]].values.tolist() == [["b", "unknown_arm", False]]
        assert "add it with add_arm" in report.rejected["detail"].iloc[0]
        assert report.late_outcomes["late_reason"].tolist() in (["decision_rejected"],
                                                                ["already_settled", "decision_rejected"])
    assert [c[2].tolist() for c in policy.calls] == [[1.0]] and set(applied) == {"a"}
    policy.arm_names.append("family")
    report = apply_log(policy, dec, outs, "1h", now=at(2), applied=applied)
    assert report.event_ids == ("b",) and report.rejected.empty and policy.calls[-1][1].tolist() == [2]


def test_apply_log_argument_checks():
    dec, outs = decisions_frame([("a", 0, 0)]), outcomes_frame([])
    with pytest.raises(TypeError, match="applied must be an AppliedEvents"):
        apply_log(RecordingPolicy(ARMS), dec, outs, "1h", applied=set())
    with pytest.raises(TypeError, match="arm_names"):
        apply_log(object(), dec, outs, "1h", applied=AppliedEvents())
    with pytest.raises(ValueError, match="grace must be zero or positive"):
        apply_log(RecordingPolicy(ARMS), dec, outs, "1h", applied=AppliedEvents(), grace="-1h")
    with pytest.raises(TypeError, match="grace must be a timedelta"):
        apply_log(RecordingPolicy(ARMS), dec, outs, "1h", applied=AppliedEvents(), grace=3)


def test_log_to_policy_end_to_end(tmp_path):
    """Decisions logged with DecisionLog, outcomes as Parquet, applied through the log directory path."""
    decisions, X = random_decisions(10, seed=16)
    stamps = pd.date_range(T0, periods=10, freq="h")
    with DecisionLog(tmp_path / "log", arms=ARMS, policy_name="P", rows_per_part=4) as log:
        log.append_batch(as_batch(decisions), X, timestamps=stamps)
    buyers = [decisions[i].event_id for i in (1, 4, 8)]
    outs = pd.DataFrame(
        {"event_id": buyers, "timestamp": stamps[[1, 4, 8]] + pd.Timedelta("30min"), "reward": [9.99, 14.99, 19.99]}
    )
    outs.to_parquet(tmp_path / "outcomes.parquet")
    policy = RecordingPolicy(ARMS)
    report = apply_log(
        policy, tmp_path / "log", tmp_path / "outcomes.parquet", "2h", now=stamps[-1] + pd.Timedelta("1h"),
        applied=AppliedEvents(),
    )
    # decision 9 (and 8, which has an outcome) are within 2 h of now; 8 resolves by its outcome
    assert report.n_applied == 9 and report.n_expired_zero == 6 and report.n_pending == 1
    X_seen, actions, rewards = policy.calls[0]
    np.testing.assert_array_equal(X_seen, X[:9])
    np.testing.assert_array_equal(actions, [d.index for d in decisions[:9]])
    expected = np.zeros(9)
    expected[[1, 4, 8]] = [9.99, 14.99, 19.99]
    np.testing.assert_allclose(rewards, expected)


# ------------------------------------------------------------------------------------------------------------------
# bad rows are quarantined, not fatal
# ------------------------------------------------------------------------------------------------------------------


def rejected_of(report_or_result) -> list[tuple[str, object, str]]:
    """(source, event_id, reason) of each rejected row; a missing id (None or NaN, as pandas stores it) is None."""
    return [
        (r.source, None if isinstance(r.event_id, float) and np.isnan(r.event_id) else r.event_id, r.reason)
        for r in report_or_result.rejected.itertuples()
    ]


def test_row_level_problems_are_rejected_with_reasons_and_the_rest_resolves():
    dec = pd.DataFrame(
        {
            "event_id": ["ok", "dup", "dup", None, 7, "", "no-ts", "bad-ctx", "wrong-len", "future", "no-arm"],
            "timestamp": [T0, T0, at(5), T0, T0, T0, pd.NaT, T0, T0, at(10_000), T0],
            "context": [np.array([1.0, 2.0]), np.array([1.0, 0.0]), np.array([9.0, 9.0]), np.array([1.0, 1.0]),
                        np.array([1.0, 1.0]), np.array([1.0, 1.0]), np.array([1.0, 1.0]), np.array([np.inf, 1.0]),
                        np.array([1.0, 1.0, 1.0]), np.array([1.0, 1.0]), np.array([1.0, 1.0])],
            "action": np.zeros(11, dtype=np.int32),
            "action_name": ["duo"] * 10 + [None],
        }
    )
    outs = pd.DataFrame(
        {
            "event_id": ["ok", "ok", "dup", None, "ok", "ok", "ok"],
            "timestamp": pd.Series([at(1), at(1), at(2), at(1), "garbage-date", at(3), at(4)], dtype=object),
            "reward": pd.Series([1.0, 1.0, 2.0, 1.0, 1.0, np.inf, "oops"], dtype=object),
        }
    )
    res = resolve_rewards(dec, outs, "1h", now=at(100))
    assert rejected_of(res) == [
        ("decisions", "ok", "bad_outcome"),
        ("decisions", "dup", "duplicate_event_id"),
        ("decisions", None, "bad_event_id"),
        ("decisions", 7, "bad_event_id"),
        ("decisions", "", "bad_event_id"),
        ("decisions", "no-ts", "bad_timestamp"),
        ("decisions", "bad-ctx", "bad_context"),
        ("decisions", "wrong-len", "bad_context"),
        ("decisions", "future", "future_timestamp"),
        ("decisions", "no-arm", "unknown_arm"),
        ("outcomes", "ok", "duplicate_outcome"),
        ("outcomes", None, "bad_event_id"),
        ("outcomes", "ok", "bad_timestamp"),
        ("outcomes", "ok", "non_finite_reward"),
        ("outcomes", "ok", "bad_reward"),
    ]
    rej = res.rejected
    assert rej["row"].tolist() == [0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1, 3, 4, 5, 6]
    assert rej["final"].tolist() == [True] + [False] * 5 + [True, True] + [False] * 7
    assert "expected n_features=2" in rej.loc[rej["event_id"] == "wrong-len", "detail"].item()
    assert rej["timestamp"].isna().tolist() == [False] * 5 + [True] + [False] * 6 + [True, False, False]
    # "ok" has an unreadable outcome row (bad timestamp) and a bad reward in its window: its reward is unknown
    assert res.resolved["event_id"].tolist() == ["dup"]
    assert res.resolved["reward"].tolist() == [2.0]
    np.testing.assert_array_equal(res.resolved["context"].iloc[0], [1.0, 0.0])  # the first row of the duplicated id


def test_a_bad_outcome_row_makes_its_decision_rejected_not_zero():
    dec = decisions_frame([("nan-in", 0, 0), ("nan-out", 0, 1), ("fine", 0, 2)])
    outs = outcomes_frame([("nan-in", 10, np.nan), ("nan-out", 500, np.nan), ("fine", 5, 1.0)])
    res = resolve_rewards(dec, outs, "1h", now=at(1000))
    assert dict(zip(res.resolved["event_id"], res.resolved["reward"], strict=True)) == {"nan-out": 0.0, "fine": 1.0}
    assert rejected_of(res) == [
        ("decisions", "nan-in", "bad_outcome"),
        ("outcomes", "nan-in", "non_finite_reward"),
        ("outcomes", "nan-out", "non_finite_reward"),
    ]


@pytest.mark.parametrize(
    ("combine", "expected"), [("sum", {"a": 3.0, "b": 5.0}), ("max", {"a": 2.0, "b": 5.0}), ("first", {"a": 2.0, "b": 5.0})]
)
def test_duplicate_deliveries_count_once_and_distinct_outcomes_combine(combine, expected):
    dec = decisions_frame([("a", 0, 0), ("b", 0, 1)])
    outs = outcomes_frame([("a", 20, 1.0), ("a", 10, 2.0), ("a", 20, 1.0), ("b", 5, 5.0), ("b", 5, 5.0)])
    res = resolve_rewards(dec, outs, "1h", now=at(100), combine=combine)
    assert dict(zip(res.resolved["event_id"], res.resolved["reward"], strict=True)) == expected
    assert res.resolved["n_outcomes"].tolist() == [2, 1]
    assert rejected_of(res) == [("outcomes", "a", "duplicate_outcome"), ("outcomes", "b", "duplicate_outcome")]
    assert res.rejected["row"].tolist() == [2, 4]


def test_reward_range_rejects_instead_of_summing_past_it():
    dec = decisions_frame([("twice", 0, 0), ("neg", 0, 1), ("ok", 0, 2)])
    outs = outcomes_frame([("twice", 1, 1.0), ("twice", 2, 1.0), ("neg", 1, -1.0), ("neg", 2, 1.0), ("ok", 1, 1.0)])
    res = resolve_rewards(dec, outs, "1h", now=at(100), reward_range=(0.0, 1.0))
    assert res.resolved["event_id"].tolist() == ["ok"]
    assert rejected_of(res) == [("decisions", "twice", "reward_out_of_range"), ("decisions", "neg", "reward_out_of_range")]
    assert "reward 2 from 2 outcome(s)" in res.rejected["detail"].iloc[0]
    assert res.late_outcomes["late_reason"].tolist() == ["decision_rejected"] * 4
    res_max = resolve_rewards(dec, outs, "1h", now=at(100), reward_range=(0.0, 1.0), combine="max")
    assert res_max.resolved["event_id"].tolist() == ["twice", "ok"]  # max(1, 1) = 1; "neg" still has a -1 outcome


def test_join_outcomes_status_column_names_rejected_rows():
    dec = decisions_frame([("a", 0, 0), ("b", 0, 1), ("a", 1, 2), ("c", 50, 0)])
    outs = outcomes_frame([("a", 5, 2.0)])
    joined = join_outcomes(dec, outs, "30min", now=at(60))
    assert joined["reward_status"].tolist() == ["outcome", "window_expired", "duplicate_event_id", "pending"]
    np.testing.assert_array_equal(joined["reward"].to_numpy(), [2.0, 0.0, np.nan, np.nan])


# ------------------------------------------------------------------------------------------------------------------
# real policies: update_from_log
# ------------------------------------------------------------------------------------------------------------------

POLICY_ARMS = ["individual", "duo", "family"]


def real_policy(cls, seed: int = 3):
    return cls(POLICY_ARMS, n_features=2, seed=seed)


def state_arrays(policy) -> dict[str, np.ndarray]:
    """The learned arrays (the applied-events ledger is compared separately where it matters)."""
    return {k: v for k, v in policy._get_state()[1].items() if k not in LEDGER_ARRAYS}


def assert_same_learned_state(a, b) -> None:
    sa, sb = state_arrays(a), state_arrays(b)
    assert sa.keys() == sb.keys()
    for k in sa:
        np.testing.assert_array_equal(sa[k], sb[k], err_msg=k)
    assert a.n_updates == b.n_updates


def clean_log(n: int, seed: int):
    """n decisions one minute apart over POLICY_ARMS with 2 features; outcome 1.0 for every third, 30 s later."""
    rng = np.random.default_rng(seed)
    dec = pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(n)],
            "timestamp": [at(i) for i in range(n)],
            "context": list(rng.normal(size=(n, 2))),
            "action": np.arange(n, dtype=np.int32) % 3,
            "action_name": [POLICY_ARMS[i % 3] for i in range(n)],
        }
    )
    buyers = list(range(0, n, 3))
    outs = pd.DataFrame(
        {"event_id": [f"e{i}" for i in buyers], "timestamp": [at(i) + pd.Timedelta("30s") for i in buyers],
         "reward": [1.0] * len(buyers)}
    )
    return dec, outs


def corrupt(kind: str, dec: pd.DataFrame, outs: pd.DataFrame):
    """One bad row of the kinds seen in production; returns (decisions, outcomes, bad event id, reason)."""
    dec, outs = dec.copy(), outs.copy()
    if kind == "duplicate_decision_id":
        extra = dec.iloc[[4]].assign(timestamp=[at(4.5)], context=[np.array([5.0, 5.0])])
        return pd.concat([dec, extra], ignore_index=True), outs, "e4", "duplicate_event_id"
    if kind == "outcome_delivered_twice":  # two deliveries, different stamps: 2.0 summed, outside LogisticTS's [0, 1]
        extra = outs.iloc[[1]].assign(timestamp=[outs["timestamp"].iloc[1] + pd.Timedelta("5s")])
        return dec, pd.concat([outs, extra], ignore_index=True), outs["event_id"].iloc[1], "reward_out_of_range"
    if kind == "nan_reward":
        outs.loc[2, "reward"] = np.nan
        return dec, outs, outs["event_id"].iloc[2], "bad_outcome"
    if kind == "inf_context":
        dec.at[5, "context"] = np.array([np.inf, 0.0])
        return dec, outs, "e5", "bad_context"
    raise AssertionError(kind)


@pytest.mark.parametrize("cls_name", ["LinUCB", "LogisticTS"])
@pytest.mark.parametrize("kind", ["duplicate_decision_id", "outcome_delivered_twice", "nan_reward", "inf_context"])
def test_one_bad_row_never_blocks_update_from_log(cls_name, kind):
    """Regression: each of these rows used to make update_from_log raise for the whole log, on every retry."""
    import bandit

    cls = getattr(bandit, cls_name)
    dec, outs = clean_log(30, seed=1)
    bad_dec, bad_outs, bad_id, reason = corrupt(kind, dec, outs)
    policy = real_policy(cls)
    report = policy.update_from_log(bad_dec, bad_outs, "10min", now=at(60))
    if kind == "outcome_delivered_twice" and cls_name == "LinUCB":  # unbounded rewards: the two purchases add up
        assert report.rejected.empty and report.n_applied == 30
        return
    bad = report.rejected[report.rejected["source"] == "decisions"]
    assert bad[["event_id", "reason"]].values.tolist() == [[bad_id, reason]]
    # the good rows, and only they, were learned: same state as a policy fed the clean rows directly
    good_ids = [e for e in dec["event_id"] if e != bad_id or kind == "duplicate_decision_id"]
    assert sorted(report.event_ids) == sorted(good_ids)
    reference = real_policy(cls)
    res = resolve_rewards(dec, outs, "10min", now=at(60))
    keep = res.resolved[res.resolved["event_id"].isin(good_ids)]
    reference.update_batch(np.stack(keep["context"]), keep["action_name"].tolist(), keep["reward"].to_numpy())
    assert_same_learned_state(policy, reference)
    # idempotent: again applies nothing; a final rejection is settled (not reported again), a duplicate row is
    again = policy.update_from_log(bad_dec, bad_outs, "10min", now=at(60))
    assert again.n_applied == 0
    assert_same_learned_state(policy, reference)
    assert again.rejected[again.rejected["source"] == "decisions"].empty


def test_rows_float64_or_utf8_cannot_hold_are_rejected_and_the_rest_learned():
    """Regression: a lone-surrogate event id (in the decisions or the outcomes) and an integer beyond the float64
    range (in a context, or a reward in an object column) made update_from_log raise UnicodeEncodeError /
    OverflowError for the whole log, on every retry."""
    import bandit

    clean_dec, clean_outs = clean_log(12, seed=4)
    dec = clean_dec.astype({"event_id": object})
    dec.at[5, "event_id"] = "e5\ud800"
    dec.at[7, "context"] = [10**400, 0.0]
    outs = pd.DataFrame({"event_id": pd.Series([*clean_outs["event_id"], "e\udc80"], dtype=object),
                         "timestamp": [*clean_outs["timestamp"], at(2)],
                         "reward": pd.Series([1.0, 10**400, 1.0, 1.0, 1.0], dtype=object)})  # 10**400: e3's reward
    policy = real_policy(bandit.LinUCB)
    report = policy.update_from_log(dec, outs, "10min", now=at(60))
    assert sorted(map(tuple, report.rejected[["source", "event_id", "reason"]].values.tolist())) == sorted([
        ("decisions", "e5\ud800", "bad_event_id"), ("decisions", "e7", "bad_context"),
        ("decisions", "e3", "bad_outcome"), ("outcomes", "e3", "non_finite_reward"),
        ("outcomes", "e\udc80", "bad_event_id"),
    ])
    good = [f"e{i}" for i in range(12) if i not in (3, 5, 7)]
    assert sorted(report.event_ids) == sorted(good)
    reference = real_policy(bandit.LinUCB)
    res = resolve_rewards(clean_dec, clean_outs, "10min", now=at(60))
    keep = res.resolved[res.resolved["event_id"].isin(good)]
    reference.update_batch(np.stack(keep["context"]), keep["action_name"].tolist(), keep["reward"].to_numpy())
    assert_same_learned_state(policy, reference)


def test_update_failed_rows_are_isolated_by_bisection():
    """A finite context so large the statistics overflow: update_batch refuses the whole batch; the row alone is
    rejected (final) and the other rows are learned, in order."""
    import bandit

    dec, outs = clean_log(12, seed=2)
    dec.at[7, "context"] = np.array([1e200, 1.0])
    policy = real_policy(bandit.LinUCB)
    report = policy.update_from_log(dec, outs, "10min", now=at(60))
    assert rejected_of(report) == [("decisions", "e7", "update_failed")]
    assert report.rejected["final"].tolist() == [True] and report.rejected["row"].tolist() == [7]
    assert "too large" in report.rejected["detail"].iloc[0]
    assert report.n_applied == 11 and "e7" in policy._applied_event_ids
    reference = real_policy(bandit.LinUCB)
    keep = dec.drop(index=7)
    rewards = [1.0 if int(e[1:]) % 3 == 0 else 0.0 for e in keep["event_id"]]
    reference.update_batch(np.stack(keep["context"]), keep["action_name"].tolist(), rewards)
    np.testing.assert_allclose(policy.coef_, reference.coef_, rtol=1e-12, atol=1e-12)
    assert policy.update_from_log(dec, outs, "10min", now=at(60)).rejected.empty  # settled


def test_update_from_log_default_now_ignores_a_2099_outcome():
    """Regression (policy level): the future-dated outcome expired a decision made a minute ago to reward 0."""
    import bandit

    wall = pd.Timestamp.now(tz="UTC")
    dec = pd.DataFrame({"event_id": ["fresh"], "timestamp": [wall - pd.Timedelta("1min")],
                        "context": [np.array([0.5, 0.5])], "action": [1], "action_name": ["duo"]})
    outs = pd.DataFrame({"event_id": ["other"], "timestamp": [pd.Timestamp("2099-06-01", tz="UTC")], "reward": [1.0]})
    policy = real_policy(bandit.LogisticTS)
    report = policy.update_from_log(dec, outs, "7D")
    assert report.n_applied == 0 and report.n_pending == 1 and policy.n_updates == 0
    assert rejected_of(report) == [("outcomes", "other", "future_timestamp")]
    assert report.watermark < wall  # the watermark follows the wall clock, not the 2099 stamp


# ------------------------------------------------------------------------------------------------------------------
# bounded memory: the watermark
# ------------------------------------------------------------------------------------------------------------------


def daily_traffic(day: int, per_day: int, seed: int):
    """per_day decisions spread over day `day` (T0 + day), one feature pair each; every 4th buys 2 hours later."""
    rng = np.random.default_rng(seed + day)
    start = T0 + pd.Timedelta(days=day)
    stamps = [start + pd.Timedelta(seconds=int(s)) for s in np.sort(rng.integers(0, 86_400, size=per_day))]
    ids = [f"day{day}-{i}" for i in range(per_day)]
    dec = pd.DataFrame({"event_id": ids, "timestamp": stamps, "context": list(rng.normal(size=(per_day, 2)) * 0.3),
                        "action": np.arange(per_day, dtype=np.int32) % 3,
                        "action_name": [POLICY_ARMS[i % 3] for i in range(per_day)]})
    buy = np.arange(0, per_day, 4)
    outs = pd.DataFrame({"event_id": [ids[i] for i in buy], "timestamp": [stamps[i] + pd.Timedelta("2h") for i in buy],
                         "reward": 1.0})
    return dec, outs


def test_ledger_stays_bounded_and_survives_save_load(tmp_path):
    """Regression: every applied id used to be kept forever (state growing with history)."""
    import bandit

    policy = real_policy(bandit.LinUCB)
    per_day, sizes, file_sizes = 200, [], []
    all_dec, all_out = [], []
    for day in range(12):
        dec, outs = daily_traffic(day, per_day, seed=5)
        all_dec.append(dec)
        all_out.append(outs)
        now = T0 + pd.Timedelta(days=day + 1)
        # the trainer re-reads the last three days of log each day
        report = policy.update_from_log(pd.concat(all_dec[-3:], ignore_index=True),
                                        pd.concat(all_out[-3:], ignore_index=True), "1D", now=now)
        assert set(report.rejected["reason"]) <= {"future_timestamp"}  # conversions of the last two hours
        assert report.watermark == now - pd.Timedelta("2D")
        sizes.append(len(policy._applied_event_ids))
        file_sizes.append(policy.save(tmp_path / f"p{day}.zip").stat().st_size)
    assert policy.n_updates == 12 * per_day - report.n_pending  # everything but the last day's open windows
    assert report.n_pending > 0
    assert max(sizes) <= 2 * per_day and max(sizes[2:]) - min(sizes[2:]) <= 10  # flat: window + grace of traffic
    assert file_sizes[-1] <= file_sizes[3] * 1.05
    restored = bandit.load(tmp_path / "p11.zip")
    assert restored._applied_event_ids == policy._applied_event_ids
    # replaying the whole history on the restored policy applies nothing again, and outcomes of decisions behind the
    # watermark are reported late, not dropped
    everything = pd.concat(all_dec, ignore_index=True)
    late_out = pd.DataFrame({"event_id": ["day0-1"], "timestamp": [T0 + pd.Timedelta("3h")], "reward": [1.0]})
    again = restored.update_from_log(everything, late_out, "1D", now=now)
    assert again.n_applied == 0 and again.n_already_applied == len(everything) - report.n_pending
    assert again.n_pending == report.n_pending
    assert again.late_outcomes["late_reason"].tolist() == ["already_settled"]
    assert_same_learned_state(restored, policy)


def test_policy_file_with_the_old_applied_id_list_still_loads_and_its_ids_age_out():
    import bandit

    dec, outs = clean_log(9, seed=4)
    old = real_policy(bandit.LinUCB)
    old.update_from_log(dec.iloc[:6], outs, "10min", now=at(100))
    meta, arrays = old._get_state()
    del meta["applied_events"]
    for name in LEDGER_ARRAYS:
        del arrays[name]
    meta["applied_event_ids"] = sorted(old._applied_event_ids)  # the format before the watermark
    restored = bandit.LinUCB._from_state(meta, arrays)
    assert set(restored._applied_event_ids) == {f"e{i}" for i in range(6)}
    assert restored._applied_event_ids.has_unknown_times
    report = restored.update_from_log(dec, outs, "10min", now=at(100))
    assert report.event_ids == ("e6", "e7", "e8") and report.n_already_applied == 6  # nothing applied twice
    assert not restored._applied_event_ids.has_unknown_times  # times learned from the log rows
    restored.update_from_log(dec, outs, "10min", now=at(100) + pd.Timedelta("2D"))
    assert len(restored._applied_event_ids) == 0  # aged out behind the watermark


def test_snapshot_keeps_its_own_ledger():
    import bandit

    dec, outs = clean_log(6, seed=6)
    policy = real_policy(bandit.LinUCB)
    policy.update_from_log(dec.iloc[:3], outs, "10min", now=at(100))
    snap = policy.snapshot()
    policy.update_from_log(dec, outs, "10min", now=at(100))
    assert set(snap._applied_event_ids) == {"e0", "e1", "e2"} and len(policy._applied_event_ids) == 6
    meta, arrays = snap._get_state()
    saved = AppliedEvents.from_state(meta, arrays)
    assert list(saved) == ["e0", "e1", "e2"] and saved == snap._applied_event_ids
    times = [t for _, t in saved.items()]
    assert np.diff(times).tolist() == [60_000_000, 60_000_000]  # a minute apart


def test_applied_events_state_is_validated():
    good = AppliedEvents()
    good.add(["a", "b", "c", "é"], [5, 3, 9, 12])
    good.advance(4)
    meta, arrays = good.to_state()
    assert meta == {"watermark_us": 4, "n_ids": 3, "id_bytes": 4}  # "a", "c", "é" (2 UTF-8 bytes)
    assert arrays["ledger_id_ends"].tolist() == [1, 2, 4] and arrays["ledger_times_us"].tolist() == [5, 9, 12]
    assert AppliedEvents.from_state({"applied_events": meta}, arrays) == good

    def with_array(name, value):
        return {**arrays, name: np.asarray(value, dtype=arrays[name].dtype)}

    for bad_meta, bad_arrays, pattern in [
        ({**meta, "n_ids": 2}, arrays, "ledger_id_ends"),
        ({**meta, "id_bytes": -1}, arrays, "id_bytes"),
        ({**meta, "watermark_us": 1.5}, arrays, "watermark_us"),
        ({**meta, "watermark_us": 2**63}, arrays, "watermark_us"),
        ({**meta, "extra": 1}, arrays, "applied_events"),
        (meta, with_array("ledger_id_ends", [1, 1, 4]), "ledger_id_ends"),
        (meta, with_array("ledger_id_ends", [0, 2, 4]), "ledger_id_ends"),
        (meta, with_array("ledger_times_us", [5, 9, 3]), "watermark"),
        (meta, with_array("ledger_id_bytes", [97, 97, 0xC3, 0x28]), "UTF-8"),
        (meta, with_array("ledger_id_bytes", [97, 97, 0xC3, 0xA9]), "twice"),
        (meta, {k: v for k, v in arrays.items() if k != "ledger_times_us"}, "needs arrays"),
        (meta, {**arrays, "ledger_times_us": arrays["ledger_times_us"].astype(np.float64)}, "ledger_times_us"),
        ([], arrays, "applied_events"),
    ]:
        with pytest.raises(ValueError, match=pattern):
            AppliedEvents.from_state({"applied_events": bad_meta}, bad_arrays)
    with pytest.raises(ValueError, match="applied_event_ids"):
        AppliedEvents.from_state({"applied_event_ids": "abc"}, {})
    with pytest.raises(ValueError, match="need the policy metadata field"):
        AppliedEvents.from_state({}, arrays)


def test_a_busy_ledger_saves_and_loads_beyond_the_json_limit(tmp_path):
    """600,000 ids within one window (more than the 16 MB policy.json limit would hold as JSON) round-trip."""
    import bandit
    from bandit.state import MAX_JSON_BYTES

    policy = real_policy(bandit.LinUCB)
    ids = [f"request-{i:012d}-{'x' * 16}" for i in range(600_000)]
    assert sum(len(e) + 4 for e in ids) > MAX_JSON_BYTES  # as a JSON list it would not fit
    policy._applied_event_ids.add(ids, range(10**15, 10**15 + len(ids)))
    restored = bandit.load(policy.save(tmp_path / "busy.zip"))
    assert restored._applied_event_ids == policy._applied_event_ids


# ------------------------------------------------------------------------------------------------------------------
# fuzz: malformed decisions and outcomes never raise; good rows are applied exactly once
# ------------------------------------------------------------------------------------------------------------------

FUZZ_WINDOW, FUZZ_GRACE = 30, 10  # minutes
BAD_TIMES = [None, pd.NaT, "not a date", 5, np.nan]


def _minute(value):
    """The minute offset of a generated timestamp, or None when it is malformed."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value != 5 else None


def fuzz_strategies():
    from hypothesis import strategies as st

    def mostly(good, bad):  # a bad value one time in ten: most rows are good, so good rows get applied
        return st.sampled_from(range(10)).flatmap(lambda i: bad if i == 3 else good)

    finite = st.sampled_from([-1.0, -0.5, 0.0, 0.5, 1.0, 2.0])
    good_ctx = st.tuples(finite, finite, st.booleans()).map(lambda t: ("ok", list(t[:2]) if t[2] else np.array(t[:2])))
    bad_ctx = st.sampled_from([
        ("bad", np.array([np.nan, 1.0])), ("bad", np.array([np.inf, 0.0])), ("bad", np.array([1.0])),
        ("bad", [1.0, 2.0, 3.0]), ("bad", "1,2"), ("bad", None), ("bad", np.array([[1.0, 2.0]])),
    ])
    bad_ids = st.sampled_from([None, "", 7, np.nan, b"d1"])
    bad_time = st.sampled_from(BAD_TIMES).map(lambda b: ("bad", b))
    # few distinct minutes at the rules' edges (window 30, now 90 then 200): equal stamps and boundaries are common
    dec_minutes = st.sampled_from([0, 30, 60, 61, 89, 120]).map(lambda m: ("ok", m))
    out_minutes = st.sampled_from([-5, 0, 30, 60, 61, 90, 91, 150]).map(lambda m: ("ok", m))
    decision = st.tuples(
        mostly(st.sampled_from([f"d{i}" for i in range(4)]), bad_ids),
        mostly(dec_minutes, bad_time),
        mostly(good_ctx, bad_ctx),
        mostly(st.sampled_from(POLICY_ARMS), st.sampled_from(["ghost", None, 3])),
    )
    outcome = st.tuples(
        mostly(st.sampled_from([f"d{i}" for i in range(5)]), bad_ids),
        mostly(out_minutes, bad_time),
        mostly(st.sampled_from([0.0, 0.5, 1.0, 2.0, -1.0, True]), st.sampled_from([np.nan, np.inf, None, "x"])),
    )

    def with_repeats(rows):  # exact repeats of some rows: duplicate deliveries and duplicated log rows
        return st.lists(st.sampled_from(rows), max_size=3).map(lambda extra: rows + extra) if rows else st.just(rows)

    return (
        st.lists(decision, min_size=2, max_size=10).flatmap(with_repeats),
        st.lists(outcome, min_size=2, max_size=12).flatmap(with_repeats),
        st.booleans(),
        st.sampled_from(["LinUCB", "LogisticTS"]),
        st.sampled_from(["sum", "max", "first"]),
    )


def fuzz_frames(dec_rows, out_rows, typed: bool):
    def stamp(kind_value):
        kind, v = kind_value
        return at(v) if kind == "ok" else v

    dec_ts = [stamp(t) for _, t, _, _ in dec_rows]
    dec = pd.DataFrame(
        {
            "event_id": pd.Series([e for e, _, _, _ in dec_rows], dtype=object),
            "timestamp": pd.Series(dec_ts, dtype=object),
            "context": pd.Series([c for _, _, (_, c), _ in dec_rows], dtype=object),
            "action": np.zeros(len(dec_rows), dtype=np.int32),
            "action_name": pd.Series([a for _, _, _, a in dec_rows], dtype=object),
        }
    )
    out = pd.DataFrame(
        {
            "event_id": pd.Series([e for e, _, _ in out_rows], dtype=object),
            "timestamp": pd.Series([stamp(t) for _, t, _ in out_rows], dtype=object),
            "reward": pd.Series([r for _, _, r in out_rows], dtype=object),
        }
    )
    if typed:  # the dtypes a Parquet file gives, where the values allow it
        if all(t[0] == "ok" for _, t, _, _ in dec_rows):
            dec["timestamp"] = pd.to_datetime(dec["timestamp"], utc=True)
        if all(isinstance(r, float) for _, _, r in out_rows):
            out["reward"] = out["reward"].astype(np.float64)
    return dec, out


def reference_updates(dec_rows, out_rows, now, settled, wm, low, high, combine):
    """The module rules, read literally, on the generated rows (times in minutes). Returns the rows to apply, in
    order, as (event_id, minute, context, arm, reward), and the (event_id, minute) of the final rejections."""
    def ok_id(e):
        return isinstance(e, str) and e != ""

    def ok_ctx(kind_value):
        return kind_value[0] == "ok"

    kept = {}
    for i, (e, t, _, _) in enumerate(dec_rows):
        if ok_id(e) and e not in settled and _minute(t[1]) is not None and t[0] == "ok" and e not in kept:
            kept[e] = i
    bad_ts_ids, bad_reward, seen, goods = set(), [], set(), []
    for e, t, r in out_rows:
        if not ok_id(e):
            continue
        m = t[1] if t[0] == "ok" else None
        if m is None:
            bad_ts_ids.add(e)
            continue
        good_r = isinstance(r, float | bool) and np.isfinite(float(r))
        if not good_r:
            if m <= now:
                bad_reward.append((e, m))
            continue
        if m > now or (e, m, float(r)) in seen:
            continue
        seen.add((e, m, float(r)))
        goods.append((e, m, float(r)))
    applies, finals = [], []
    for e, i in kept.items():
        _, (_, t), ctx, arm = dec_rows[i]
        if (wm is not None and t <= wm) or t > now:
            continue
        if not ok_ctx(ctx):
            finals.append((e, t))
            continue
        if arm not in POLICY_ARMS:
            continue
        if e in bad_ts_ids or any(e2 == e and t <= m <= t + FUZZ_WINDOW for e2, m in bad_reward):
            finals.append((e, t))
            continue
        rs = [(m, r) for e2, m, r in goods if e2 == e and t <= m <= t + FUZZ_WINDOW]
        if rs:
            values = [r for _, r in rs]
            reward = {"sum": sum(values), "max": max(values), "first": min(rs, key=lambda mr: mr[0])[1]}[combine]
            if not all(low <= v <= high for v in [*values, reward]):
                finals.append((e, t))
                continue
        elif now > t + FUZZ_WINDOW:
            reward = 0.0
        else:
            continue
        applies.append((i, e, t, np.asarray(ctx[1], dtype=np.float64), arm, reward))
    applies.sort(key=lambda a: (a[2], a[0]))
    return [a[1:] for a in applies], finals


def run_fuzz_case(dec_rows, out_rows, typed, cls_name, combine):
    import bandit

    cls = getattr(bandit, cls_name)
    policy = real_policy(cls, seed=9)
    reference = real_policy(cls, seed=9)
    low, high = cls._reward_low, cls._reward_high
    dec, out = fuzz_frames(dec_rows, out_rows, typed)
    settled: dict[str, int] = {}
    wm = None
    applied_ids: list[str] = []
    for now, expect_nothing in ((90, False), (90, True), (200, False)):
        report = policy.update_from_log(dec, out, f"{FUZZ_WINDOW}min", now=at(now), combine=combine,
                                        grace=f"{FUZZ_GRACE}min")
        applies, finals = reference_updates(dec_rows, out_rows, now, settled, wm, low, high, combine)
        if expect_nothing:
            assert applies == [] and report.n_applied == 0
        assert list(report.event_ids) == [a[0] for a in applies]
        if applies:
            reference.update_batch(np.stack([a[2] for a in applies]), [a[3] for a in applies], [a[4] for a in applies])
        assert_same_learned_state(policy, reference)
        finals_got = report.rejected.loc[report.rejected["final"], "event_id"].tolist()
        assert sorted(finals_got) == sorted(e for e, _ in finals)
        assert set(report.rejected["reason"]) <= {
            "bad_event_id", "bad_timestamp", "duplicate_event_id", "future_timestamp", "bad_context", "unknown_arm",
            "bad_outcome", "reward_out_of_range", "non_finite_reward", "bad_reward", "duplicate_outcome",
        }
        applied_ids.extend(report.event_ids)
        settled.update({e: t for e, t, *_ in applies})
        settled.update(dict(finals))
        wm = now - FUZZ_WINDOW - FUZZ_GRACE if wm is None else max(wm, now - FUZZ_WINDOW - FUZZ_GRACE)
        settled = {e: t for e, t in settled.items() if t > wm}
        assert set(policy._applied_event_ids) == set(settled)
    assert len(applied_ids) == len(set(applied_ids))  # exactly once


def _fuzz_test(max_examples: int):
    from hypothesis import HealthCheck, given, settings

    decs, outs, typed, cls_name, combine = fuzz_strategies()

    @settings(max_examples=max_examples, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(decs, outs, typed, cls_name, combine)
    def check(dec_rows, out_rows, typed, cls_name, combine):
        run_fuzz_case(dec_rows, out_rows, typed, cls_name, combine)

    check()


def test_fuzz_malformed_rows_never_raise_and_good_rows_apply_exactly_once():
    _fuzz_test(max_examples=100)


@pytest.mark.slow
def test_fuzz_malformed_rows_many_examples():
    _fuzz_test(max_examples=600)


def test_table_level_problems_still_raise_and_change_nothing():
    import bandit

    dec, outs = clean_log(6, seed=8)
    policy = real_policy(bandit.LinUCB)
    before = policy._applied_event_ids.copy()
    for bad_dec, bad_outs, exc in [
        (dec.drop(columns="context"), outs, ValueError),
        (dec.assign(timestamp=np.arange(6)), outs, TypeError),
        (dec, outs.assign(reward=pd.Series(["1"] * len(outs), dtype="str")), TypeError),
        (dec, outs.drop(columns="event_id"), ValueError),
        (dec.to_numpy(), outs, TypeError),
    ]:
        with pytest.raises(exc):
            policy.update_from_log(bad_dec, bad_outs, "10min", now=at(60))
    with pytest.raises(ValueError, match="combine"):
        policy.update_from_log(dec, outs, "10min", now=at(60), combine="avg")
    assert policy.n_updates == 0 and policy._applied_event_ids == before
