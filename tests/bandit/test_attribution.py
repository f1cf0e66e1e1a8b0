"""Tests of bandit.attribution: the delayed-outcome join and applying it to a policy exactly once."""


from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bandit.attribution import apply_log, join_outcomes, resolve_rewards
from bandit.decision import BatchDecision, Decision
from bandit.decision_log import DecisionLog, read_decision_log

ARMS = ["individual", "duo", "family"]
T0 = pd.Timestamp("2024-05-01T00:00:00", tz="UTC")


def make_decision(event_id: str | None, index: int, probs, version: str = "v1") -> Decision:
    probs = np.asarray(probs, dtype=np.float64)
    return Decision(
        arm=ARMS[index],
        index=index,
        propensity=float(probs[index]),
        probabilities=probs,
        scores=np.where(probs > 0, probs, -np.inf),
        event_id=event_id,
        policy_version=version,
        eligible=probs > 0,
    )


def random_decisions(n: int, seed: int, d: int = 4):
    """n decisions with random distributions (some arms ineligible) and contexts; returns (decisions, X)."""
    rng = np.random.default_rng(seed)
    decisions = []
    for i in range(n):
        probs = rng.dirichlet(np.ones(len(ARMS)))
        if i % 3 == 0:
            probs[i % len(ARMS)] = 0.0
            probs /= probs.sum()
        index = int(rng.choice(len(ARMS), p=probs))
        decisions.append(make_decision(f"ev-{seed}-{i}", index, probs, version=f"v{i % 2}"))
    return decisions, rng.normal(size=(n, d))


def as_batch(decisions: list[Decision]) -> BatchDecision:
    return BatchDecision(
        indices=np.array([d.index for d in decisions], dtype=np.int64),
        arms=[d.arm for d in decisions],
        propensities=np.array([d.propensity for d in decisions]),
        probabilities=np.stack([d.probabilities for d in decisions]),
        scores=np.stack([d.scores for d in decisions]),
        event_ids=[d.event_id for d in decisions],
        policy_version=decisions[0].policy_version,
        eligible=np.stack([d.eligible for d in decisions]),
    )


class RecordingPolicy:
    """Stand-in for a bandit policy: arm names plus an update_batch that records its calls."""

    def __init__(self, arm_names, fail: bool = False):
        self.arm_names = list(arm_names)
        self.fail = fail
        self.calls: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def update_batch(self, X, arms, rewards):
        if self.fail:
            raise RuntimeError("update failed")
        self.calls.append((np.array(X, copy=True), np.array(arms, copy=True), np.array(rewards, copy=True)))


def part_files(path: Path) -> list[Path]:
    return sorted(path.glob("part-*.parquet"))


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
    pd.testing.assert_frame_equal(joined.drop(columns="reward"), frame.drop(columns="reward"))
    assert joined.attrs["arms"] == ARMS
    resolved = resolve_rewards(frame, outs, window, now).resolved.set_index("event_id")["reward"]
    expected = [resolved.get(e, np.nan) for e in frame["event_id"]]
    np.testing.assert_array_equal(joined["reward"].to_numpy(), expected)
    # decisions 0..34 are past their 10-minute window at minute 45; the last 5 wait (NaN), buyers among them count
    pending = np.isnan(joined["reward"].to_numpy())
    assert set(frame["event_id"][pending]) == {d.event_id for d in decisions[35:]} - set(buyers)

    with pytest.warns(UserWarning, match="missing reward"):
        data = LoggedData.from_dataframe(joined)
    assert data.n == int((~pending).sum()) and data.action_names == ARMS
    np.testing.assert_array_equal(data.reward, joined["reward"].to_numpy()[~pending])


def test_default_now_is_latest_timestamp_in_the_data():
    dec = decisions_frame([("a", 0, 0), ("b", 90, 0)])
    outs = outcomes_frame([("x", 95, 1.0)])
    res = resolve_rewards(dec, outs, "60min")
    assert res.now == at(95)
    assert res.resolved["event_id"].tolist() == ["a"] and res.pending_event_ids == ("b",)
    empty = resolve_rewards(dec.iloc[:0], outs.iloc[:0], "60min")
    assert empty.now is None and len(empty.resolved) == 0


def test_naive_timestamps_are_utc():
    dec = decisions_frame([("a", 0, 0)])
    dec["timestamp"] = dec["timestamp"].dt.tz_localize(None)
    outs = outcomes_frame([("a", 60, 2.0)])
    outs["timestamp"] = outs["timestamp"].dt.tz_convert("Asia/Tokyo")  # same instant, other zone
    res = resolve_rewards(dec, outs, dt.timedelta(hours=1), now=dt.datetime(2024, 5, 1, 5))
    assert res.resolved["reward"].tolist() == [2.0]


def reference_resolve(dec_rows, out_rows, window, now, applied):
    """Brute-force reading of the documented rules; times are plain numbers."""
    dec_time = {e: t for e, t, _ in dec_rows}
    resolved, pending, unknown, late = {}, set(), [], {}
    for j, (e, t, _) in enumerate(out_rows):
        if t > now:
            continue
        if e in applied:
            late[j] = "already_applied"
        elif e not in dec_time:
            unknown.append(j)
        elif t < dec_time[e]:
            late[j] = "before_decision"
        elif t > dec_time[e] + window:
            late[j] = "after_window"
    for e, t, _ in dec_rows:
        if e in applied:
            continue
        rewards = [r for e2, t2, r in out_rows if e2 == e and t2 <= now and t <= t2 <= t + window]
        if rewards:
            resolved[e] = (sum(rewards), "outcome")
        elif now > t + window:
            resolved[e] = (0.0, "window_expired")
        else:
            pending.add(e)
    return resolved, pending, unknown, late


@pytest.mark.parametrize("seed", range(5))
def test_join_matches_bruteforce_reference(seed):
    rng = np.random.default_rng(seed)
    n_dec, n_out, window = 40, 80, 10  # integer minutes: boundary equalities happen often
    dec_rows = [(f"d{i}", int(rng.integers(0, 50)), int(rng.integers(0, 3))) for i in range(n_dec)]
    out_rows = [
        (f"d{rng.integers(0, n_dec + 5)}", int(rng.integers(-5, 70)), float(rng.integers(1, 5))) for _ in range(n_out)
    ]
    applied = {f"d{i}" for i in rng.choice(n_dec + 5, size=6, replace=False)}
    now = int(rng.integers(20, 70))
    res = resolve_rewards(
        decisions_frame(dec_rows), outcomes_frame(out_rows), f"{window}min", now=at(now), already_applied=applied
    )
    resolved, pending, unknown, late = reference_resolve(dec_rows, out_rows, window, now, applied)
    got = {r.event_id: (r.reward, r.resolved_by) for r in res.resolved.itertuples()}
    assert got == resolved
    assert set(res.pending_event_ids) == pending
    assert res.unknown_outcomes.index.tolist() == unknown
    assert dict(zip(res.late_outcomes.index, res.late_outcomes["late_reason"], strict=True)) == late
    assert res.n_already_applied == sum(e in applied for e, _, _ in dec_rows)


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
        (lambda d, o: (pd.concat([d, d]), o), ValueError, r"decisions\['event_id'\] must be unique"),
        (lambda d, o: (d, o.assign(reward=np.nan)), ValueError, r"outcomes\['reward'\].*NaN"),
        (lambda d, o: (d, o.assign(event_id=None)), ValueError, r"outcomes\['event_id'\] has missing"),
        (lambda d, o: (d, o.assign(timestamp=[1, 2])), TypeError, r"outcomes\['timestamp'\]"),
        (lambda d, o: (d, o.assign(timestamp=[T0, pd.NaT])), ValueError, r"outcomes\['timestamp'\].*NaT"),
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
        ({"attribution_window": "1h", "already_applied": ["a"]}, TypeError, "already_applied"),
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
    applied: set[str] = set()
    report = apply_log(policy, dec, outs, "60min", now=at(201), applied_event_ids=applied)
    (call,) = policy.calls
    X, actions, rewards = call
    np.testing.assert_array_equal(X, [[0.0, 1.0], [1.0, 1.0], [2.0, 1.0]])
    np.testing.assert_array_equal(actions, [2, 3, 0])  # individual, duo, family in the policy's order
    assert actions.dtype == np.int64
    np.testing.assert_array_equal(rewards, [0.0, 4.5, 0.0])
    assert applied == {"a", "b", "c"}
    assert (report.n_applied, report.n_expired_zero, report.n_pending) == (3, 2, 1)
    assert report.event_ids == ("a", "b", "c")
    assert report.unknown_outcomes["event_id"].tolist() == ["zz"]
    assert len(report.late_outcomes) == 0


def test_apply_log_is_idempotent():
    dec = decisions_frame([("a", 0, 0), ("b", 0, 1), ("c", 0, 2)])
    outs = outcomes_frame([("a", 10, 1.0), ("b", 20, 2.0)])
    policy = RecordingPolicy(ARMS)
    applied: set[str] = set()
    first = apply_log(policy, dec, outs, "30min", now=at(60), applied_event_ids=applied)
    snapshot = set(applied)
    second = apply_log(policy, dec, outs, "30min", now=at(60), applied_event_ids=applied)
    assert first.n_applied == 3 and second.n_applied == 0 and second.n_pending == 0
    assert len(policy.calls) == 1 and applied == snapshot
    assert second.late_outcomes["late_reason"].tolist() == ["already_applied", "already_applied"]
    # a late duplicate of an already-applied conversion is reported, never added
    third = apply_log(policy, dec, pd.concat([outs, outcomes_frame([("a", 15, 9.0)])]), "30min", now=at(60),
                      applied_event_ids=applied)
    assert third.n_applied == 0 and len(policy.calls) == 1 and len(third.late_outcomes) == 3


@pytest.mark.parametrize("seed", range(3))
def test_incremental_replay_applies_each_decision_exactly_once(seed):
    """Calling at growing `now` with all data so far: every decision applied once, rewards as the rules say."""
    rng = np.random.default_rng(100 + seed)
    n, window = 60, 15
    dec_rows = [(f"d{i}", int(rng.integers(0, 100)), int(rng.integers(0, 3))) for i in range(n)]
    out_rows = [(f"d{rng.integers(0, n)}", int(rng.integers(0, 130)), float(rng.integers(1, 4))) for _ in range(90)]
    dec_all, out_all = decisions_frame(dec_rows), outcomes_frame(out_rows)
    dec_time = {e: t for e, t, _ in dec_rows}
    policy = RecordingPolicy(ARMS)
    applied: set[str] = set()
    expected: dict[str, float] = {}
    for now in range(0, 140, 7):
        visible_dec = dec_all[[t <= now for _, t, _ in dec_rows]]
        report = apply_log(policy, visible_dec, out_all, f"{window}min", now=at(now), applied_event_ids=applied)
        for e in report.event_ids:  # reward = in-window outcomes known at the time it was applied
            expected[e] = sum(
                r for e2, t2, r in out_rows if e2 == e and t2 <= now and dec_time[e] <= t2 <= dec_time[e] + window
            )
    ids = [e for X, _, _ in policy.calls for e in [dec_rows[int(x)][0] for x in X[:, 0]]]
    assert len(ids) == len(set(ids)) == n  # everything resolved (last now > all windows), nothing twice
    rewards = np.concatenate([r for _, _, r in policy.calls])
    np.testing.assert_allclose(rewards, [expected[e] for e in ids])
    assert applied == set(dec_time)


def test_failed_update_marks_nothing_applied():
    dec = decisions_frame([("a", 0, 0)])
    outs = outcomes_frame([("a", 1, 1.0)])
    applied: set[str] = set()
    with pytest.raises(RuntimeError, match="update failed"):
        apply_log(RecordingPolicy(ARMS, fail=True), dec, outs, "1h", applied_event_ids=applied)
    assert applied == set()
    ok = RecordingPolicy(ARMS)
    assert apply_log(ok, dec, outs, "1h", applied_event_ids=applied).n_applied == 1 and applied == {"a"}


def test_apply_log_rejects_arm_unknown_to_policy():
    dec = decisions_frame([("a", 0, 0), ("b", 0, 2)])
    outs = outcomes_frame([("a", 1, 1.0), ("b", 1, 1.0)])
    policy = RecordingPolicy(["individual", "duo"])
    applied: set[str] = set()
    with pytest.raises(ValueError, match=r"arms \['family'\].*add_arm"):
        apply_log(policy, dec, outs, "1h", applied_event_ids=applied)
    assert policy.calls == [] and applied == set()


def test_apply_log_argument_checks():
    dec, outs = decisions_frame([("a", 0, 0)]), outcomes_frame([])
    with pytest.raises(TypeError, match="applied_event_ids must be a mutable set"):
        apply_log(RecordingPolicy(ARMS), dec, outs, "1h", applied_event_ids=frozenset())
    with pytest.raises(TypeError, match="arm_names"):
        apply_log(object(), dec, outs, "1h", applied_event_ids=set())


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
    applied: set[str] = set()
    report = apply_log(
        policy, tmp_path / "log", tmp_path / "outcomes.parquet", "2h", now=stamps[-1] + pd.Timedelta("1h"),
        applied_event_ids=applied,
    )
    # decision 9 (and 8, which has an outcome) are within 2 h of now; 8 resolves by its outcome
    assert report.n_applied == 9 and report.n_expired_zero == 6 and report.n_pending == 1
    X_seen, actions, rewards = policy.calls[0]
    np.testing.assert_array_equal(X_seen, X[:9])
    np.testing.assert_array_equal(actions, [d.index for d in decisions[:9]])
    expected = np.zeros(9)
    expected[[1, 4, 8]] = [9.99, 14.99, 19.99]
    np.testing.assert_allclose(rewards, expected)
