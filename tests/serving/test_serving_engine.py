"""bandit.serving in process: the trainer equals one offline update_from_log, the journal's group commit, recovery
after a crash without double counting, idempotent and concurrent rewards, reports of outcomes that do not count."""

from __future__ import annotations

import contextlib
import json
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bandit
from bandit.decision_log import read_decision_log
from bandit.serving import DecisionService, Journal, RequestError, SnapshotHolder, Trainer

ARMS = ["solo", "duo", "family"]
T0 = pd.Timestamp("2026-11-01T00:00:00Z")


def make_policy(seed: int = 0) -> bandit.LinUCB:
    return bandit.LinUCB(ARMS, n_features=3, alpha=0.5, exploration_floor=0.1, seed=seed)


def learned_state(policy) -> dict[str, np.ndarray]:
    return {"A": policy._A, "b": policy._b, "pulls": policy.pulls, "reward_sum": np.array(policy._reward_sum)}


def assert_same_learning(a, b) -> None:
    assert a.n_updates == b.n_updates
    np.testing.assert_array_equal(a.pulls, b.pulls)
    for name, value in learned_state(a).items():
        np.testing.assert_allclose(value, learned_state(b)[name], rtol=1e-10, atol=1e-10, err_msg=name)


def traffic(n: int, seed: int):
    """n decisions' contexts, one per minute from T0, and which of them convert (after 0-90 minutes)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    converts = rng.random(n) < 0.4
    delay = pd.to_timedelta(rng.integers(0, 90, size=n), unit="min")
    return X, converts, delay


def test_trainer_steps_equal_one_offline_update_from_log():
    """Many trainer steps on a growing log learn exactly what one update_from_log over the whole log learns."""
    window = pd.Timedelta("1h")
    live = make_policy()
    reference = make_policy()
    holder = SnapshotHolder(live)
    trainer = Trainer(holder, attribution_window=window, delivery_delay=0)
    X, converts, delay = traffic(300, seed=1)
    decisions, outcomes = [], []
    versions = {holder.snapshot.policy_version}
    ids_seen = 0
    for i in range(300):
        ts = T0 + pd.Timedelta(minutes=i)
        d = holder.snapshot.choose(X[i], event_id=f"e{i}")
        us = ts.value // 1000
        trainer.add_decision(d.event_id, us, X[i], d.arm)
        decisions.append({"event_id": d.event_id, "timestamp": ts, "context": X[i], "action": d.index,
                          "action_name": d.arm})
        if converts[i]:
            outcomes.append((f"e{i}", ts + delay[i], float(1 + i % 3)))
        if i % 25 == 24:  # deliver the outcomes that have happened, then step
            for event_id, when, reward in [o for o in outcomes if o[1] <= ts and not o[0].startswith("#")]:
                trainer.add_outcome(event_id, when.value // 1000, reward)
            outcomes = [o if o[1] > ts else ("#" + o[0], o[1], o[2]) for o in outcomes]
            trainer.step(now=ts)
            versions.add(holder.snapshot.policy_version)
            # the served snapshot carries no copy of the ledger (copying it at every publish stalled requests)
            assert len(holder.snapshot._applied_event_ids) == 0
            ids_seen = max(ids_seen, len(live._applied_event_ids))
    end = T0 + pd.Timedelta(minutes=300) + window + pd.Timedelta("2h")
    for event_id, when, reward in [o for o in outcomes if not o[0].startswith("#")]:
        trainer.add_outcome(event_id, when.value // 1000, reward)
    trainer.step(now=end)
    assert len(versions) > 5  # snapshots were swapped while serving
    assert trainer.n_pending == 0 and trainer.n_applied == 300 and ids_seen >= 10  # the live ledger held ids

    all_outcomes = pd.DataFrame([(o[0].lstrip("#"), o[1], o[2]) for o in outcomes],
                                columns=["event_id", "timestamp", "reward"])
    report = reference.update_from_log(pd.DataFrame(decisions), all_outcomes, window, now=end,
                                       grace=trainer.grace)
    assert report.n_applied == 300
    assert_same_learning(live, reference)
    assert live._applied_event_ids == reference._applied_event_ids  # same ledger: watermark and ids
    x = np.array([0.3, -1.0, 2.0])
    assert holder.snapshot.choose(x, event_id="probe") == live.choose(x, event_id="probe")


def test_journal_group_commit_from_many_threads_and_torn_line_recovery(tmp_path):
    journal = Journal(tmp_path, "decisions", "fsync")
    done: list[int] = []
    lock = threading.Lock()

    def writer(t: int) -> None:
        for i in range(50):
            ev = threading.Event()
            errors: list = []
            record = {"t": t, "i": i}

            def release(error, ev=ev, errors=errors):
                errors.append(error)
                ev.set()

            journal.append_fsync(json.dumps(record).encode() + b"\n", record, release)
            ev.wait()
            assert errors == [None]
            with lock:
                done.append(t * 1000 + i)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(done) == sorted(t * 1000 + i for t in range(8) for i in range(50))
    (segment,) = journal.close()
    assert sorted((r["t"], r["i"]) for r in segment.records) == [(t, i) for t in range(8) for i in range(50)]
    # the file holds exactly the committed records, in commit order; a torn last line is skipped on reopening
    with open(segment.path, "ab") as fh:
        fh.write(b'{"t": 99, "i"')
    reopened = Journal(tmp_path, "decisions", "write")
    (path,) = reopened.recovered
    assert path == segment.path and reopened.read_segment(path) == segment.records and reopened.n_bad_lines == 1
    reopened.close()


def service(tmp_path, **kwargs) -> DecisionService:
    options = {"attribution_window": "1h", "durability": "write", "delivery_delay": 0,
               "feature_names": ["a", "b", "c"], **kwargs}
    return DecisionService(tmp_path / "policy.zip", tmp_path / "logs", **options)


def test_recovery_after_a_crash_counts_every_outcome_once_and_equals_a_rebuild(tmp_path):
    make_policy(seed=3).save(tmp_path / "policy.zip")
    initial = bandit.load(tmp_path / "policy.zip")
    X, converts, delay = traffic(120, seed=4)
    first = service(tmp_path).start(thread=False)
    acked = {}
    for i in range(120):
        ts = T0 + pd.Timedelta(minutes=i)
        d = first.rank(X[i].tolist(), event_id=f"e{i}", timestamp=ts)
        acked[d.event_id] = (d.arm, d.propensity)
        if converts[i]:
            assert first.reward(f"e{i}", 2.5, timestamp=ts + pd.Timedelta(minutes=1)).status == "accepted"
        if i == 59:
            first.trainer.step(now=ts + pd.Timedelta(minutes=2))
            first.compact()  # the first 60 decisions are in Parquet parts, the rest stays in the journal
            first.trainer.checkpoint()
        if i == 89:
            first.trainer.step(now=ts + pd.Timedelta(minutes=2))  # applied, never checkpointed: lost in the crash
    applied_before_crash = first.trainer.n_applied
    assert applied_before_crash > int(converts[:60].sum())
    # crash: the first service is abandoned (no close, buffers lost; its death releases the directory lock); a new
    # one recovers from the same files
    first._lock_fh.close()
    second = service(tmp_path).start(thread=False)
    second.trainer.step(now=T0 + pd.Timedelta("1D"))
    second.close()
    recovered = bandit.load(tmp_path / "policy.zip")

    log = pd.concat([read_decision_log(p) for p in (tmp_path / "logs" / "decisions").iterdir()], ignore_index=True)
    assert sorted(log["event_id"]) == sorted(acked)  # every acknowledged decision, once
    for row in log.itertuples():
        assert (row.action_name, row.propensity) == acked[row.event_id]
    outcomes = second.read_outcomes()
    assert len(outcomes) == int(converts.sum())  # every acknowledged reward stored once
    assert recovered.n_updates == 120
    assert recovered.pulls.sum() == 120
    assert sum(recovered._reward_sum) == pytest.approx(2.5 * converts.sum())
    rebuilt = initial
    rebuilt.update_from_log(log, outcomes[["event_id", "timestamp", "reward"]], "1h", now=T0 + pd.Timedelta("1D"))
    assert_same_learning(recovered, rebuilt)
    ledger = recovered._applied_event_ids
    us = log["timestamp"].dt.tz_localize(None).to_numpy().astype("datetime64[us]").astype(np.int64)
    assert all(ledger.is_settled(e, int(t)) for e, t in zip(log["event_id"], us, strict=True))


def test_rewards_for_one_event_from_many_threads_are_stored_and_counted_once(tmp_path):
    make_policy().save(tmp_path / "policy.zip")
    # grace 1D: the step at T0 + 2h keeps e1 in the ledger (its watermark stays before T0), so the reward stamped
    # now, resolved by the next step before that step moves the watermark, is reported as late for a settled
    # decision (with a grace under 1h the watermark would already cover e1: an unknown event)
    svc = service(tmp_path, grace="1D").start(thread=False)
    svc.rank([0.1, 0.2, 0.3], event_id="e1", timestamp=T0)
    statuses: list[str] = []
    barrier = threading.Barrier(8)

    def post(i: int) -> None:
        barrier.wait()
        same = svc.reward("e1", 1.0, timestamp=T0 + pd.Timedelta(minutes=5))
        other = svc.reward("e1", 0.5 + i, timestamp=T0 + pd.Timedelta(minutes=6 + i))
        statuses.extend([same.status, other.status])

    threads = [threading.Thread(target=post, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert statuses.count("accepted") == 9 and statuses.count("duplicate") == 7
    # a retry without a timestamp is the same body: a duplicate too
    assert svc.reward("e1", 3.0).status == "accepted" and svc.reward("e1", 3.0).status == "duplicate"
    svc.trainer.step(now=T0 + pd.Timedelta("2h"))
    policy = svc.holder.policy
    assert policy.n_updates == 1
    # combine="sum" over the outcomes inside the window (the one without a timestamp is stamped now: after it)
    assert sum(policy._reward_sum) == pytest.approx(1.0 + sum(0.5 + i for i in range(8)))
    assert svc.rejected_counts == {}  # the reward stamped now waits for a step that reaches its time
    svc.trainer.step()
    assert svc.rejected_counts == {"late_already_settled": 1} and policy.n_updates == 1
    svc.close()
    assert len(svc.read_outcomes()) == 10


def test_reward_from_threads_mixed_with_reward_async_on_the_loop_stores_each_delivery_exactly_once(tmp_path):
    """Regression: reward_async checked and claimed a delivery key without the lock reward() takes, so an embedder
    mixing the two (threads and an event loop) could store one delivery twice. 300 distinct bodies, each sent by 4
    threads and twice on the loop; the dedupe table hands the GIL to another thread right after each lookup
    (the race window made wide, so that any check-then-claim outside the lock shows)."""
    import asyncio
    import random
    import time

    from bandit._ledger import DeliveryKeys

    class Yielding(DeliveryKeys):
        def _probe(self, high: int, low: int) -> tuple[bool, int]:
            found = super()._probe(high, low)
            time.sleep(0)  # releases the GIL between the lookup and the insert of a claim
            return found

    make_policy().save(tmp_path / "policy.zip")
    svc = service(tmp_path, durability="memory").start(thread=False)
    for i in range(0, 100, 2):
        svc.rank([0.1, 0.2, 0.3], event_id=f"e{i}")
    assert not len(svc._outcome_keys)
    svc._outcome_keys = Yielding(svc._dedupe_us)
    bodies = [(f"e{i % 100}", float(i // 100)) for i in range(300)]
    statuses: dict[tuple[str, float], list[str]] = {b: [] for b in bodies}
    barrier = threading.Barrier(5)

    order = random.Random(9).sample(bodies, len(bodies))  # everyone in the same order: the same body at once

    def post() -> None:
        barrier.wait()
        for body in order:
            statuses[body].append(svc.reward(*body).status)

    async def post_async() -> None:
        for body in order:
            for _ in range(2):
                statuses[body].append((await svc.reward_async(*body)).status)

    threads = [threading.Thread(target=post) for _ in range(4)]
    for th in threads:
        th.start()
    barrier.wait()
    asyncio.run(post_async())
    for th in threads:
        th.join()
    for (event_id, _), got in statuses.items():
        known = int(event_id[1:]) % 2 == 0
        assert sorted(got) == sorted(["accepted" if known else "unknown_event"] + ["duplicate"] * 5), event_id
    assert svc.n_outcomes_received == 300 and svc.n_outcome_duplicates == 1500
    svc.compact()
    stored = svc.read_outcomes()
    assert sorted(zip(stored["event_id"], stored["reward"], strict=True)) == sorted(bodies)
    svc.close()


def test_unknown_events_and_bad_inputs_are_reported_and_change_nothing(tmp_path):
    make_policy().save(tmp_path / "policy.zip")
    svc = service(tmp_path).start(thread=False)
    version = svc.holder.snapshot.policy_version
    bad = [
        ({"context": [1.0, 2.0]}, "context"),
        ({"context": [1.0, float("nan"), 2.0]}, "context"),
        ({"context": {"a": 1.0, "b": 2.0}}, "context"),
        ({"context": [1.0, 2.0, 3.0], "eligible": ["platinum"]}, "eligible"),
        ({"context": [1.0, 2.0, 3.0], "event_id": ""}, "event_id"),
    ]
    for kwargs, field in bad:
        with pytest.raises(RequestError) as err:
            svc.rank(**kwargs)
        assert err.value.field == field, (kwargs, str(err.value))
    svc.rank([1.0, 2.0, 3.0], event_id="e1", timestamp=T0)
    with pytest.raises(RequestError) as err:
        svc.rank([1.0, 2.0, 3.0], event_id="e1")
    assert err.value.status == 409
    with pytest.raises(RequestError, match="reward"):
        svc.reward("e1", float("inf"))
    with pytest.raises(RequestError, match="reward"):
        svc.reward("e1", True)
    assert svc.reward("nobody", 1.0, timestamp=T0).status == "unknown_event"
    svc.trainer.step(now=T0 + pd.Timedelta(minutes=10))
    assert svc.rejected_counts == {"unknown_event": 1}
    svc.close()
    lines = [json.loads(line) for line in (tmp_path / "logs" / "rejected.jsonl").read_text().splitlines()]
    assert [(r["event_id"], r["reason"]) for r in lines] == [("nobody", "unknown_event")]
    log = read_decision_log(tmp_path / "logs" / "decisions" / "arms-3")
    assert log["event_id"].tolist() == ["e1"] and log["policy_version"].tolist() == [version]


def test_a_second_service_on_the_same_log_directory_or_policy_file_is_refused(tmp_path):
    make_policy().save(tmp_path / "policy.zip")
    # regression: the temporary file of a checkpoint interrupted by kill -9 stayed forever (one per crash, each the
    # size of the policy file); the service that owns the policy file removes them when it starts
    (tmp_path / ".policy.zip.k3x9_a.tmp").write_bytes(b"half a checkpoint")
    (tmp_path / ".other.zip.k3x9_a.tmp").write_bytes(b"not ours")
    first = service(tmp_path).start(thread=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.zip.k3x9_a.tmp", ".policy.zip.lock", "logs",
                                                          "policy.zip"]
    with pytest.raises(ValueError, match="logs is in use by another serving process"):
        service(tmp_path).start(thread=False)
    # regression: another log directory with the same policy file started, and the two checkpointed over each
    # other's learning
    other = DecisionService(tmp_path / "policy.zip", tmp_path / "other-logs", attribution_window="1h",
                            durability="write", delivery_delay=0, feature_names=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"the policy file .*policy.zip is in use by another serving process"):
        other.start(thread=False)
    first.close()
    service(tmp_path).start(thread=False).close()  # free again once the first one is closed
    other.start(thread=False).close()  # (its failed start left nothing locked)


def test_a_policy_file_swapped_for_one_with_other_plans_or_features_is_refused_at_start(tmp_path):
    # regression: with a 4-feature policy in place of the 3-feature one the service started and served, then every
    # compaction failed ("X has 4 features, this log's rows have 3"): the journal grew and nothing was logged
    make_policy().save(tmp_path / "policy.zip")
    svc = service(tmp_path).start(thread=False)
    svc.rank([0.0, 1.0, 0.0], event_id="e1")
    svc.close()
    original = (tmp_path / "policy.zip").read_bytes()
    for other, match in [(bandit.LinUCB(ARMS, n_features=4, seed=0), "plans .* with 3 features.*n_features=4"),
                         (bandit.LinUCB(["x", "y", "z"], n_features=3, seed=0), "plans .*'solo'.* has plans .*'x'")]:
        other.save(tmp_path / "policy.zip")
        options = {"feature_names": ["a", "b", "c", "d"]} if other.n_features == 4 else {}
        with pytest.raises(ValueError, match=f"arms-3 holds decisions for {match}.*new --log directory"):
            service(tmp_path, **options).start(thread=False)
        # (a failed start releases the directory: the next attempt is not refused as "in use by another process")
    (tmp_path / "policy.zip").write_bytes(original)
    grown = bandit.load(tmp_path / "policy.zip")
    grown.add_arm("team")  # a policy with more plans than the log (add_arm) still fits it
    grown.save(tmp_path / "policy.zip")
    svc = service(tmp_path).start(thread=False)
    assert svc.rank([0.0, 1.0, 0.0], event_id="e2").probabilities.shape == (4,)
    svc.close()
    assert svc.last_error is None


def test_a_reward_outside_the_policys_range_is_refused_at_once(tmp_path):
    bandit.LogisticTS(ARMS, n_features=3, seed=0).save(tmp_path / "policy.zip")
    svc = service(tmp_path).start(thread=False)
    svc.rank([0.0, 1.0, 0.0], event_id="e1")
    with pytest.raises(RequestError, match=r"reward must be in \[0.0, 1.0\]") as err:
        svc.reward("e1", 16.99)
    assert err.value.field == "reward" and svc.n_outcomes_received == 0
    assert svc.reward("e1", 1.0).status == "accepted"
    svc.close()


def test_rewards_that_would_overflow_the_policy_are_refused_so_its_checkpoint_always_loads(tmp_path):
    # regression: three /reward calls of 1e308 (finite JSON numbers) were learned by a UniformRandom logging policy,
    # overflowed its reward sums to inf, and the checkpoint was a file bandit.load refuses: the service could not
    # restart
    bandit.UniformRandom(ARMS, n_features=3, seed=0).save(tmp_path / "policy.zip")
    svc = service(tmp_path).start(thread=False)
    for i in range(3):
        svc.rank([0.0, 1.0, 0.0], event_id=f"e{i}", timestamp=T0)
        with pytest.raises(RequestError, match=r"reward must be in \[-1e\+100, 1e\+100\]") as err:
            svc.reward(f"e{i}", 1e308, timestamp=T0)
        assert err.value.field == "reward"
        assert svc.reward(f"e{i}", 1e100, timestamp=T0).status == "accepted"
    svc.trainer.step(now=T0 + pd.Timedelta(minutes=10))
    assert svc.holder.policy.n_updates == 3
    svc.close()
    assert bandit.load(tmp_path / "policy.zip").n_updates == 3


def test_an_id_reused_beyond_the_id_window_never_breaks_compaction(tmp_path):
    make_policy().save(tmp_path / "policy.zip")
    svc = service(tmp_path, id_window=3).start(thread=False)
    for i in range(4):
        svc.rank([0.0, 1.0, float(i)], event_id=f"e{i}", timestamp=T0)
    svc.compact()
    with pytest.raises(RequestError):
        svc.rank([0.0, 1.0, 0.0], event_id="e3")  # inside the window: refused
    svc.rank([0.0, 1.0, 9.0], event_id="e0", timestamp=T0)  # beyond it: accepted, and logged
    svc.compact()
    assert svc.last_error is None
    svc.close()
    with pytest.warns(UserWarning, match="e0"):
        log = read_decision_log(tmp_path / "logs" / "decisions" / "arms-3")
    assert log["event_id"].tolist() == ["e0", "e1", "e2", "e3"]  # the readers keep the first occurrence


def test_compaction_in_slices_stores_every_record_once_in_order(tmp_path, monkeypatch):
    """Compaction converts the journal a slice at a time (pausing between slices for the request threads): every
    decision lands once, in commit order, in the log of its arm list, also when a slice spans two arm lists."""
    monkeypatch.setattr("bandit.serving._COMPACT_SLICE", 16)
    make_policy().save(tmp_path / "policy.zip")
    svc = service(tmp_path).start(thread=False)
    rng = np.random.default_rng(5)
    for i in range(100):
        if i == 45:
            svc.add_arm("team").result()
        svc.rank(rng.normal(size=3).tolist(), event_id=f"e{i}")
        if i % 3 == 0:
            svc.reward(f"e{i}", 1.0)
    svc.compact()
    assert all(f.stat().st_size == 0 for f in (tmp_path / "logs" / "journal").glob("*.jsonl"))  # only fresh ones
    first = read_decision_log(tmp_path / "logs" / "decisions" / "arms-3")
    second = read_decision_log(tmp_path / "logs" / "decisions" / "arms-4")
    assert first["event_id"].tolist() == [f"e{i}" for i in range(45)]
    assert second["event_id"].tolist() == [f"e{i}" for i in range(45, 100)]
    assert sorted(svc.read_outcomes()["event_id"]) == sorted(f"e{i}" for i in range(0, 100, 3))
    svc.close()


def _run_with_trainer(tmp_path, mode: str, durability: str) -> tuple[DecisionService, dict]:
    """The same traffic, admin operations and compactions through a service with its trainer in ``mode``; the
    decisions are stamped in the past (from T0), so with the wall clock every window has closed (grace covers them)."""
    tmp_path.mkdir()
    make_policy(seed=5).save(tmp_path / "policy.zip")
    svc = service(tmp_path, trainer=mode, grace="90D", durability=durability, shard=mode).start(thread=False)
    X, converts, delay = traffic(150, seed=6)
    for i in range(150):
        ts = T0 + pd.Timedelta(minutes=i)
        svc.rank(X[i].tolist(), event_id=f"e{i}", timestamp=ts)
        if converts[i]:
            svc.reward(f"e{i}", 1.5, timestamp=ts + delay[i])
        if i == 49:
            svc.run_trainer_once()
            svc.compact()
        if i == 99:
            assert svc.add_arm("student", 2.0).result()["index"] == 3
            assert svc.holder.snapshot.arm_names[-1] == "student"  # served from the next request on
    svc.reward("never-ranked", 1.0, timestamp=T0)
    svc.run_trainer_once()
    seen = {"pending": svc.n_pending, "applied": svc.n_applied, "rejected": dict(svc.rejected_counts),
            "healthy": svc.healthy, "served_updates": svc.holder.snapshot.n_updates,
            "checkpoint": svc.force_checkpoint().result()["n_updates"]}
    svc.close()
    return svc, seen


@pytest.mark.parametrize("durability", ["write", "memory"])
def test_a_trainer_process_learns_logs_and_reports_exactly_like_the_trainer_thread(tmp_path, durability, monkeypatch):
    monkeypatch.setattr("bandit.serving._FORWARD_ROWS", 16)  # backlogs go in several frames
    thread_svc, by_thread = _run_with_trainer(tmp_path / "thread", "thread", durability)
    process_svc, by_process = _run_with_trainer(tmp_path / "process", "process", durability)
    assert by_process == by_thread
    _, converts, delay = traffic(150, seed=6)
    late = int((converts & (delay > pd.Timedelta("1h"))).sum())
    assert late > 0
    assert by_thread["applied"] == 150 and by_thread["pending"] == 0
    assert by_thread["rejected"] == {"unknown_event": 1, "late_after_window": late}
    assert_same_learning(bandit.load(tmp_path / "process" / "policy.zip"), bandit.load(tmp_path / "thread" / "policy.zip"))
    for kind in ("arms-3", "arms-4"):
        a = read_decision_log(tmp_path / "thread" / "logs" / "decisions" / kind)
        b = read_decision_log(tmp_path / "process" / "logs" / "decisions" / kind)
        pd.testing.assert_frame_equal(a.drop(columns=["policy_version"]), b.drop(columns=["policy_version"]))
        # the shard is in every version, also in those of the snapshots the trainer process sends; same revisions
        assert a["policy_version"].str.contains("@thread-").all() and b["policy_version"].str.contains("@process-").all()
        assert a["policy_version"].str.rsplit("-", n=1).str[1].tolist() == b["policy_version"].str.rsplit(
            "-", n=1).str[1].tolist()
    pd.testing.assert_frame_equal(thread_svc.read_outcomes()[["event_id", "timestamp", "reward"]],
                                  process_svc.read_outcomes()[["event_id", "timestamp", "reward"]])
    assert not list((tmp_path / "process" / "logs" / "journal").iterdir())
    assert (tmp_path / "process" / "logs" / "rejected.jsonl").read_text().count("never-ranked") == 1


def test_a_dead_trainer_process_makes_the_service_unhealthy_and_nothing_is_lost(tmp_path):
    import os
    import signal

    make_policy(seed=7).save(tmp_path / "policy.zip")
    initial = bandit.load(tmp_path / "policy.zip")
    X, converts, _ = traffic(60, seed=8)
    svc = service(tmp_path, trainer="process", grace="90D").start(thread=False)
    for i in range(60):
        ts = T0 + pd.Timedelta(minutes=i)
        svc.rank(X[i].tolist(), event_id=f"e{i}", timestamp=ts)
        if converts[i]:
            svc.reward(f"e{i}", 1.0, timestamp=ts + pd.Timedelta(minutes=1))
        if i == 29:
            svc.run_trainer_once()
            os.kill(svc._remote.pid, signal.SIGKILL)
            svc._remote.proc.wait()
    assert not svc.healthy
    svc.run_trainer_once()  # fails: reported, the service keeps answering
    assert svc.last_error is not None and svc.n_trainer_errors >= 1
    d = svc.rank([0.0, 1.0, 2.0], event_id="after-death", timestamp=T0 + pd.Timedelta(minutes=61))
    svc.close()  # the journal files stay for the next start
    assert list((tmp_path / "logs" / "journal").glob("decisions-*.jsonl"))
    again = service(tmp_path, trainer="process", grace="90D").start(thread=False)
    again.run_trainer_once()
    assert again.healthy and again.n_pending == 0
    again.close()
    log = pd.concat([read_decision_log(p) for p in (tmp_path / "logs" / "decisions").iterdir()], ignore_index=True)
    assert sorted(log["event_id"]) == sorted([f"e{i}" for i in range(60)] + [d.event_id])
    outcomes = again.read_outcomes()
    assert len(outcomes) == int(converts.sum())
    recovered = bandit.load(tmp_path / "policy.zip")
    assert recovered.n_updates == 61
    initial.update_from_log(log, outcomes[["event_id", "timestamp", "reward"]], "1h", grace="90D")
    assert_same_learning(recovered, initial)


def test_with_durability_memory_a_dead_trainer_process_loses_nothing_the_server_still_holds(tmp_path):
    import os
    import signal

    make_policy().save(tmp_path / "policy.zip")
    svc = service(tmp_path, trainer="process", durability="memory", grace="90D").start(thread=False)
    X, _, _ = traffic(15, seed=9)
    for i in range(15):
        svc.rank(X[i].tolist(), event_id=f"e{i}", timestamp=T0 + pd.Timedelta(minutes=i))
        svc.reward(f"e{i}", 1.0, timestamp=T0 + pd.Timedelta(minutes=i, seconds=30))
        if i == 9:
            os.kill(svc._remote.pid, signal.SIGKILL)
            svc._remote.proc.wait()
    svc.run_trainer_once()  # refused before anything leaves the journal
    assert "trainer process has exited" in str(svc.last_error) and not svc.healthy
    svc.close()  # the records exist only in this process: it stores them itself
    log = read_decision_log(tmp_path / "logs" / "decisions" / "arms-3")
    assert log["event_id"].tolist() == [f"e{i}" for i in range(15)]
    assert sorted(svc.read_outcomes()["event_id"]) == sorted(f"e{i}" for i in range(15))
    again = service(tmp_path, trainer="process", durability="memory", grace="90D").start(thread=False)
    again.close()
    assert bandit.load(tmp_path / "policy.zip").n_updates == 15  # learned from the log at the next start


def test_the_trainer_process_outlives_a_process_group_interrupt_so_the_service_closes_cleanly(tmp_path):
    import os
    import signal

    make_policy().save(tmp_path / "policy.zip")
    svc = service(tmp_path, trainer="process", grace="90D").start(thread=False)
    svc.rank([0.1, 0.2, 0.3], event_id="e0", timestamp=T0)
    for sig in (signal.SIGINT, signal.SIGTERM):  # what Ctrl-C / a service manager send to the process group
        os.kill(svc._remote.pid, sig)
    svc.run_trainer_once()
    assert svc.healthy and svc.n_applied == 1
    svc.close()
    assert svc.last_error is None and svc._remote.proc.returncode == 0
    assert not list((tmp_path / "logs" / "journal").iterdir())


def test_the_trainer_process_quarantines_bad_journal_lines_and_stores_the_rest(tmp_path):
    make_policy().save(tmp_path / "policy.zip")
    svc = service(tmp_path, trainer="process", grace="90D").start(thread=False)
    svc.rank([0.1, 0.2, 0.3], event_id="e0", timestamp=T0)
    svc.reward("e0", 1.0, timestamp=T0)
    for prefix in ("decisions", "outcomes"):
        (segment,) = (tmp_path / "logs" / "journal").glob(f"{prefix}-*.jsonl")
        with open(segment, "ab") as fh:  # a record with a field missing, then a torn last write
            fh.write(b'{"e": "crafted", "t": 1}\n{"e": "to')
    (segment,) = (tmp_path / "logs" / "journal").glob("decisions-*.jsonl")
    lines = segment.read_bytes().split(b"\n")
    wide = json.loads(lines[0]) | {"e": "wide", "x": np.arange(4.0).tobytes().hex()}  # 4 features for a 3-feature log
    segment.write_bytes(b"\n".join([lines[0], json.dumps(wide).encode(), *lines[1:]]))
    svc.compact()  # regression: the wide record failed the whole segment's compaction, every time
    svc.close()
    assert svc.n_journal_bad_lines == 5
    assert read_decision_log(tmp_path / "logs" / "decisions" / "arms-3")["event_id"].tolist() == ["e0"]
    assert svc.read_outcomes()["event_id"].tolist() == ["e0"]


def test_trainer_pipe_frames_round_trip_and_refuse_corrupt_streams():
    import io

    from bandit._trainer_process import read_message, write_message

    buf = io.BytesIO()
    arrays = {"x": np.arange(12.0).reshape(3, 4), "ids": np.array([1, -2], dtype=np.int64),
              "mask": np.array([True, False]), "empty": np.zeros((0, 5))}
    write_message(buf, {"kind": "step", "names": ["a", "ü"]}, arrays)
    write_message(buf, {"kind": "batch"})
    buf.seek(0)
    header, got = read_message(buf)
    assert header == {"kind": "step", "names": ["a", "ü"]}
    for name, a in arrays.items():
        assert got[name].dtype == a.dtype and got[name].shape == a.shape and np.array_equal(got[name], a)
        assert got[name].flags.writeable
    assert read_message(buf) == ({"kind": "batch"}, {})
    with pytest.raises(EOFError):
        read_message(buf)
    with pytest.raises(EOFError):  # a frame cut short: the other end died mid-write
        read_message(io.BytesIO(buf.getvalue()[:20]))
    with pytest.raises(ValueError, match="corrupt"):
        read_message(io.BytesIO(b"\xff\xff\xff\xff\x00\x00\x00\x00"))


def test_trainer_process_needs_the_wall_clock(tmp_path):
    make_policy().save(tmp_path / "policy.zip")
    with pytest.raises(ValueError, match="wall clock"):
        service(tmp_path, trainer="process", clock=lambda: 0)
    with pytest.raises(ValueError, match="trainer must be"):
        service(tmp_path, trainer="fork")


@pytest.mark.parametrize("trainer", ["thread", "process"])
def test_a_plan_change_whose_checkpoint_fails_is_undone_and_nothing_learned_or_logged_is_lost(tmp_path, trainer):
    """Regression: the plan stayed in the live policy after its checkpoint failed, so the next snapshot offered a
    plan the policy file did not know (and every retry answered "already exists"). Now the live policy gets back
    its exact state (remove_arm would keep the plan's index) and the service stays healthy."""
    from bandit._trainer_process import policy_state
    from bandit.serving import CheckpointError

    make_policy(seed=11).save(tmp_path / "policy.zip")
    initial = bandit.load(tmp_path / "policy.zip")
    svc = service(tmp_path, trainer=trainer, grace="90D").start(thread=False)
    X, converts, _ = traffic(50, seed=12)

    def decide(i: int) -> None:
        ts = T0 + pd.Timedelta(minutes=i)
        svc.rank(X[i].tolist(), event_id=f"e{i}", timestamp=ts)
        if converts[i]:
            svc.reward(f"e{i}", 1.0, timestamp=ts + pd.Timedelta(minutes=1))

    for i in range(30):
        decide(i)
    svc.run_trainer_once()  # learned, not yet checkpointed (checkpoint_every 60 s)
    served = svc.holder.snapshot.policy_version
    live = policy_state(svc.holder.policy) if trainer == "thread" else None
    # the policy file cannot be written (its path is taken by a directory; a full disk fails the same way)
    (tmp_path / "policy.zip").unlink()
    (tmp_path / "policy.zip").mkdir()
    with pytest.raises(CheckpointError, match="plan 'team' was not added: the policy file could not be saved"):
        svc.add_arm("team", 2.0).result()
    with pytest.raises(CheckpointError, match="plan 'solo' was not retired"):
        svc.retire_arm("solo").result()
    if live is not None:  # the exact state from before: arrays, counters, arms, generator, version
        meta, arrays = policy_state(svc.holder.policy)
        assert meta == live[0] and arrays.keys() == live[1].keys()
        for name, array in arrays.items():
            np.testing.assert_array_equal(array, live[1][name], err_msg=name)
    assert svc.holder.snapshot.policy_version == served
    for i in range(30, 40):  # more learning publishes new snapshots: none offers the undone changes
        decide(i)
    svc.run_trainer_once()
    assert svc.healthy and svc.n_applied == 40
    snap = svc.holder.snapshot
    assert snap.arm_names == ARMS and snap.active_arms == ARMS and snap.n_updates == 40
    (tmp_path / "policy.zip").rmdir()
    assert svc.add_arm("team", 2.0).result()["index"] == 3  # not "already exists": it was never added
    with pytest.raises(ValueError, match="already exists"):  # (process mode: not a RuntimeError, so HTTP 409)
        svc.add_arm("team").result()
    for i in range(40, 50):
        decide(i)
    svc.run_trainer_once()
    assert svc.healthy
    svc.close()
    assert svc.last_error is None
    log = pd.concat([read_decision_log(p) for p in sorted((tmp_path / "logs" / "decisions").iterdir())],
                    ignore_index=True)
    assert log["event_id"].tolist() == [f"e{i}" for i in range(50)]
    recovered = bandit.load(tmp_path / "policy.zip")
    assert recovered.arm_names == [*ARMS, "team"] and recovered.active_arms == [*ARMS, "team"]
    initial.add_arm(bandit.Arm(name="team", value=2.0))
    initial.update_from_log(log, svc.read_outcomes()[["event_id", "timestamp", "reward"]], "1h", grace="90D")
    assert_same_learning(recovered, initial)


def test_shards_started_from_copies_of_one_policy_file_log_distinct_versions_and_a_restart_continues(tmp_path):
    """Regression: services started from copies of one policy file logged the same policy_version strings for
    different states (the copies share the instance id), so merged shard logs could not tell them apart."""
    from bandit.serving import check_shard

    make_policy(seed=13).save(tmp_path / "policy.zip")
    uid_version = bandit.load(tmp_path / "policy.zip").policy_version  # e.g. LinUCB-ab12cd34-1
    X, converts, _ = traffic(20, seed=14)
    logs = {}
    for shard in ("eu-1", "us.2", None):
        (tmp_path / str(shard)).mkdir()
        (tmp_path / str(shard) / "policy.zip").write_bytes((tmp_path / "policy.zip").read_bytes())
        svc = service(tmp_path / str(shard), shard=shard, grace="90D").start(thread=False)
        for i in range(20):  # the same traffic: the same states, revision for revision
            ts = T0 + pd.Timedelta(minutes=i)
            svc.rank(X[i].tolist(), event_id=f"e{i}", timestamp=ts)
            if converts[i]:
                svc.reward(f"e{i}", 1.0, timestamp=ts)
            if i == 9:
                svc.run_trainer_once()
        svc.close()
        logs[shard] = read_decision_log(tmp_path / str(shard) / "logs" / "decisions" / "arms-3")["policy_version"]
    assert logs[None].tolist()[0] == uid_version  # no shard: the versions of the file, as before
    revisions = logs[None].str.rsplit("-", n=1).str[1]
    assert revisions.nunique() == 2  # decided by two states
    for shard in ("eu-1", "us.2"):  # LinUCB-<id>-<revision> -> LinUCB-<id>@<shard>-<revision>
        assert logs[shard].tolist() == [f"{v.rsplit('-', 1)[0]}@{shard}-{v.rsplit('-', 1)[1]}" for v in logs[None]]
    assert not set(logs["eu-1"]) & set(logs["us.2"])  # merged, the shards' states are told apart
    # a restart of a shard continues its own sequence: the checkpoint carries the shard, the revision goes on
    saved = bandit.load(tmp_path / "eu-1" / "policy.zip")
    svc = service(tmp_path / "eu-1", shard="eu-1", grace="90D").start(thread=False)
    assert svc.holder.snapshot.policy_version == saved.policy_version
    svc.rank(X[0].tolist(), event_id="after-restart", timestamp=T0 + pd.Timedelta(minutes=30))
    svc.reward("after-restart", 1.0, timestamp=T0 + pd.Timedelta(minutes=30))
    svc.run_trainer_once()
    version = svc.holder.snapshot.policy_version
    svc.close()
    prefix, revision = version.rsplit("-", 1)
    assert prefix == f"{uid_version.rsplit('-', 1)[0]}@eu-1" and int(revision) > int(logs["eu-1"].iloc[-1].rsplit("-", 1)[1])
    for bad, error in (("", ValueError), ("eu 1", ValueError), ("a@b", ValueError), ("-x", ValueError),
                       ("x" * 33, ValueError), (7, TypeError)):
        with pytest.raises(error, match="shard must be"):
            check_shard(bad)
        with pytest.raises(error, match="shard must be"):
            service(tmp_path / "eu-1", shard=bad)


def test_a_trainer_process_killed_mid_checkpoint_then_a_restart_loses_and_double_counts_nothing(tmp_path):
    """SIGKILL of the trainer child while it writes the policy file (its temporary is on disk), more traffic while
    it is dead, then a restart: the last good checkpoint loads, the temporary is removed, every decision and reward
    is stored once, and the policy equals one rebuilt from the initial file, the log and the outcomes."""
    import os
    import signal

    D = 120  # a policy file of ~1 MB: its write takes long enough for the kill to land inside it
    rng = np.random.default_rng(11)
    for attempt in range(5):
        run = tmp_path / f"run{attempt}"
        run.mkdir()
        bandit.LinUCB(ARMS, n_features=D, alpha=0.5, seed=attempt).save(run / "policy.zip")
        initial = bandit.load(run / "policy.zip")
        svc = DecisionService(run / "policy.zip", run / "logs", attribution_window="1h", durability="write",
                              trainer="process", grace="90D").start(thread=False)
        rewarded = {}
        for i in range(30):
            ts = T0 + pd.Timedelta(minutes=i)
            svc.rank(rng.normal(size=D).tolist(), event_id=f"e{i}", timestamp=ts)
            if i % 3 == 0:
                rewarded[f"e{i}"] = float(i)
                assert svc.reward(f"e{i}", float(i), timestamp=ts + pd.Timedelta(seconds=30)).status == "accepted"
            if i == 19:
                pid, stop = svc._remote.pid, threading.Event()

                def kill_when_writing(pid=pid, stop=stop, run=run):
                    while not stop.is_set():
                        if any(n.endswith(".tmp") for n in os.listdir(run)):
                            os.kill(pid, signal.SIGKILL)
                            return

                watcher = threading.Thread(target=kill_when_writing)
                watcher.start()
                try:
                    svc.force_checkpoint().result()
                    landed = False  # the write finished before the kill (a loaded machine): try again
                except (EOFError, OSError, RuntimeError):
                    landed = True
                stop.set()
                watcher.join()
                if not landed:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                svc._remote.proc.wait()
                if not landed:
                    break
        if not landed:
            svc.close()
            continue
        mid_write = any(n.endswith(".tmp") for n in os.listdir(run))
        assert not svc.healthy
        svc.close()  # the trainer is gone: the journal files stay for the restart
        again = DecisionService(run / "policy.zip", run / "logs", attribution_window="1h", durability="write",
                                grace="90D").start(thread=False)  # (a trainer thread: the same files and recovery)
        again.run_trainer_once()
        assert again.healthy and again.n_pending == 0
        again.close()
        assert not any(n.endswith(".tmp") for n in os.listdir(run))
        log = read_decision_log(run / "logs" / "decisions" / "arms-3")
        assert sorted(log["event_id"]) == sorted(f"e{i}" for i in range(30))
        outcomes = again.read_outcomes()
        assert dict(zip(outcomes["event_id"], outcomes["reward"], strict=True)) == rewarded  # each once
        recovered = bandit.load(run / "policy.zip")
        assert recovered.n_updates == 30 and sum(recovered._reward_sum) == sum(rewarded.values())
        initial.update_from_log(log, outcomes[["event_id", "timestamp", "reward"]], "1h", grace="90D")
        assert_same_learning(recovered, initial)
        if mid_write:
            return
    pytest.fail("the kill never landed while the policy file was being written")


#: Decision journal records a corrupt or crafted file may hold (each next to valid ones), and outcome records.
_T = int(T0.value // 1000)
_GOOD = {"e": "good-0", "t": _T, "x": np.array([0.5, 1.0, -1.0]).tobytes().hex(), "a": 1, "p": 0.5,
         "q": np.array([0.5, 0.5, 0.0]).tobytes().hex(), "m": bytes([1, 1, 0]).hex(), "v": "LinUCB-x-0"}
_BAD_DECISIONS = [
    {"x": np.array([1.0, 2.0]).tobytes().hex()}, {"x": np.array([1.0, 2.0, 3.0, 4.0]).tobytes().hex()},
    {"x": np.array([np.nan, 2.0, 3.0]).tobytes().hex()}, {"x": "abc"},
    {"q": np.full(10, 0.1).tobytes().hex(), "m": bytes([1] * 10).hex()}, {"t": 10**30}, {"t": -(10**19)}, {"t": 1.5},
    {"p": float("nan")}, {"p": 0.0}, {"q": np.array([np.nan, 0.5, 0.0]).tobytes().hex()}, {"e": ["a"]}, {"e": 7},
    {"e": "x" * 300}, {"e": "\ud800"}, {"a": 5}, {"m": bytes([0, 0, 1]).hex()},
]
_BAD_OUTCOMES = [{"t": 10**30}, {"at": -(10**19)}, {"e": "x" * 300}, {"e": None}, {"t": "soon"}]


def test_corrupt_or_crafted_journal_records_are_quarantined_and_the_rest_recovered(tmp_path):
    # regression: one such record (a torn disk block, a crafted file) made every start fail -- recovery raised on
    # it (a reshape, an int64 overflow, the decision log's checks) -- so the service could not come back at all
    make_policy().save(tmp_path / "policy.zip")
    journal = tmp_path / "logs" / "journal"
    journal.mkdir(parents=True)
    decisions = [_GOOD] + [_GOOD | bad | {"e": bad.get("e", f"bad-{i}")} for i, bad in enumerate(_BAD_DECISIONS)]
    decisions.append(_GOOD | {"e": "good-1", "t": _T + 60_000_000})
    (journal / "decisions-00000000.jsonl").write_text("\n".join(json.dumps(r) for r in decisions) + "\n")
    good_outcome = {"e": "good-1", "t": _T + 90_000_000, "r": 2.5, "at": _T + 90_000_000, "c": True}
    outcomes = [good_outcome] + [good_outcome | bad for bad in _BAD_OUTCOMES]
    (journal / "outcomes-00000000.jsonl").write_text("\n".join(json.dumps(r) for r in outcomes) + "\n")
    svc = service(tmp_path, grace="90D").start(thread=False)
    svc.run_trainer_once()
    svc.close()
    assert svc.n_journal_bad_lines == len(_BAD_DECISIONS) + len(_BAD_OUTCOMES)
    assert read_decision_log(tmp_path / "logs" / "decisions" / "arms-3")["event_id"].tolist() == ["good-0", "good-1"]
    assert svc.read_outcomes()[["event_id", "reward"]].values.tolist() == [["good-1", 2.5]]
    assert not list(journal.iterdir())
    learned = bandit.load(tmp_path / "policy.zip")
    assert learned.n_updates == 2 and learned._reward_sum == [0.0, 2.5, 0.0]


def test_unreadable_or_repeated_log_parts_at_start_are_reported_and_recovery_goes_on(tmp_path):
    # regression: a log directory whose every part was unreadable, or one unreadable outcome part (a corrupt disk
    # block, a crafted file), made every start fail; outcome rows stored twice were learned twice
    import pyarrow as pa
    import pyarrow.parquet as pq

    make_policy().save(tmp_path / "policy.zip")
    first = service(tmp_path, grace="90D").start(thread=False)
    for i in range(4):
        first.rank([0.1 * i, 1.0, -1.0], event_id=f"e{i}", timestamp=T0 + pd.Timedelta(minutes=i))
    first.reward("e0", 2.0, timestamp=T0 + pd.Timedelta(minutes=1))
    first.reward("e1", 3.0, timestamp=T0 + pd.Timedelta(minutes=2))
    first.compact()  # in the Parquet logs, not yet learned: then the process dies (the checkpoint is the initial one)
    for fh in (first._decision_journal, first._outcome_journal, *first._logs.values(), first._rejected_fh,
               first._lock_fh):
        fh.close()  # (what the process's death closes; nothing is stepped or checkpointed)
    logs = tmp_path / "logs"
    (part,) = (logs / "outcomes").glob("part-*.parquet")
    pq.write_table(pa.concat_tables([pq.read_table(part)] * 2), part)  # every delivery stored twice
    (logs / "outcomes" / "part-zzzz.parquet").write_bytes(b"\0" * 512)
    # crafted outcome parts: a value the outcome table cannot hold (a null id; a timestamp that is no date) in the
    # last of several row groups, a missing column; each skipped whole
    good = pq.read_table(part).slice(0, 1)
    for name, bad in [("part-zzzz-null.parquet", good.set_column(0, "event_id", pa.array([None], pa.string()))),
                      ("part-zzzz-text.parquet", good.set_column(1, "timestamp", pa.array(["soon"]))),
                      ("part-zzzz-cols.parquet", good.drop_columns(["received_at"]))]:
        pq.write_table(pa.concat_tables([good.cast(bad.schema)] * 3 + [bad]) if bad.num_columns == 5 else bad,
                       logs / "outcomes" / name, row_group_size=1)
    (logs / "decisions" / "arms-2").mkdir()
    (logs / "decisions" / "arms-2" / "part-00000000-x.parquet").write_bytes(b"PAR1 torn")

    again = service(tmp_path, grace="90D").start(thread=False)
    again.run_trainer_once()
    again.close()
    # the part, its directory, the outcome parts, the repeated rows (each reported once; nothing else rejected: the
    # repeated rows never reached the trainer)
    assert again.rejected_counts == {"log_read": 7}
    reported = [json.loads(line) for line in (logs / "rejected.jsonl").read_text().splitlines()]
    details = " ".join(r["detail"] for r in reported if r["reason"] == "log_read")
    assert "arms-2" in details and "part-zzzz.parquet" in details and "each counted once" in details
    assert all(f"part-zzzz-{kind}.parquet" in details for kind in ("null", "text", "cols"))
    learned = bandit.load(tmp_path / "policy.zip")
    assert learned.n_updates == 4 and sum(learned._reward_sum) == 5.0  # each reward once
    assert read_decision_log(logs / "decisions" / "arms-3")["event_id"].tolist() == [f"e{i}" for i in range(4)]


def test_recovery_holds_one_journal_segment_in_memory_at_a_time(tmp_path, monkeypatch):
    # regression: every segment left behind was parsed when the journal opened and kept until recovery ended; the
    # segments of a long outage (a dead trainer process: one per compaction) could exceed memory at the restart
    import weakref

    import bandit.serving

    make_policy().save(tmp_path / "policy.zip")
    first = service(tmp_path).start(thread=False)
    for i in range(12):
        first.rank([0.1 * i, 1.0, -1.0], event_id=f"e{i}", timestamp=T0 + pd.Timedelta(minutes=i))
        first.reward(f"e{i}", 1.0, timestamp=T0 + pd.Timedelta(minutes=i, seconds=1))
        for journal in (first._decision_journal, first._outcome_journal):
            journal.rotate()  # a compaction whose store failed: the segment file stays for the restart
    journal_dir = tmp_path / "logs" / "journal"
    for path in sorted(journal_dir.glob("outcomes-*.jsonl"))[:3]:  # stored, then the process died before removing
        first._store_outcomes(bandit.serving.parse_segment(path)[0])
    for fh in (first._decision_journal, first._outcome_journal, first._rejected_fh, first._lock_fh):
        fh.close()
    assert len(list(journal_dir.glob("*.jsonl"))) == 24

    # a copy whose recovery is killed halfway (after storing the 6th outcome segment, before removing it), then
    # started again: it ends as the uninterrupted recovery does
    crashed = tmp_path.parent / f"{tmp_path.name}-crashed"
    shutil.copytree(tmp_path, crashed)

    class Killed(BaseException):
        pass

    removed: list[Path] = []

    def remove(self, path):
        if len(removed) == 12 + 5:
            raise Killed
        removed.append(path)
        real_remove(self, path)

    real_remove = Journal.remove
    with monkeypatch.context() as patch:
        patch.setattr(Journal, "remove", remove)
        with pytest.raises(Killed):
            service(crashed, grace="90D").start(thread=False)
    assert len(list((crashed / "logs" / "journal").glob("*.jsonl"))) == 7
    resumed = service(crashed, grace="90D").start(thread=False)
    resumed.close()

    class Records(list):
        pass

    parsed: list[weakref.ref] = []
    most_alive = []
    real = bandit.serving.parse_segment

    def tracked(path):
        records, n_bad = real(path)
        most_alive.append(sum(ref() is not None for ref in parsed))
        records = Records(records)
        parsed.append(weakref.ref(records))
        return records, n_bad

    monkeypatch.setattr(bandit.serving, "parse_segment", tracked)
    again = service(tmp_path, grace="90D").start(thread=False)
    again.close()
    assert len(parsed) == 24 and max(most_alive) <= 1  # at most the segment before (its loop variable)
    assert sorted(read_decision_log(tmp_path / "logs" / "decisions" / "arms-3")["event_id"]) == sorted(
        f"e{i}" for i in range(12))
    assert bandit.load(tmp_path / "policy.zip").n_updates == 12 and len(again.read_outcomes()) == 12
    assert sorted(again.read_outcomes()["event_id"]) == sorted(resumed.read_outcomes()["event_id"])  # each once
    assert_same_learning(bandit.load(crashed / "policy.zip"), bandit.load(tmp_path / "policy.zip"))


def test_a_restart_reads_only_the_decisions_and_outcomes_after_the_watermark(tmp_path, monkeypatch):
    # regression: every start read the whole decision history (about 12 s and 2.6 GB per 10^6 decisions at 32
    # features) and the whole outcome table, although the checkpoint's ledger settles everything at or before its
    # watermark; only outcomes received within the dedupe span (their keys) or stamped after the watermark matter
    import types

    import bandit.serving

    clock = {"us": T0.value // 1000}  # the service's receipt clock (received_at, part names, recovery's now)
    monkeypatch.setattr(bandit.serving, "time", types.SimpleNamespace(
        time_ns=lambda: clock["us"] * 1000, time=time.time, perf_counter=time.perf_counter, sleep=time.sleep))
    monkeypatch.setattr(bandit.serving, "_OUTCOME_BATCH", 7)  # parts read in several batches
    make_policy().save(tmp_path / "policy.zip")
    initial = bandit.load(tmp_path / "policy.zip")
    X, converts, _ = traffic(150, seed=6)
    first = service(tmp_path, id_window=120).start(thread=False)

    def receive(at: pd.Timestamp, event_id: str, reward: float, stamp: pd.Timestamp | None) -> None:
        clock["us"] = at.value // 1000
        first.reward(event_id, reward, stamp)

    bodies = {}
    for i in range(150):
        ts = T0 + pd.Timedelta(minutes=i)
        first.rank(X[i], event_id=f"e{i}", timestamp=ts)
        if converts[i]:  # the last ones stamped after the step below: pending at the crash, with their outcomes
            stamp = ts + pd.Timedelta(minutes=5 if i < 140 else 20)
            bodies[i] = (f"e{i}", 1.0 + i % 3, None if i % 4 == 0 else stamp)
            receive(stamp + pd.Timedelta(seconds=1), *bodies[i])
        elif i % 7 == 0:  # stamped before its decision: never counts, the decision stays pending, reported late
            receive(ts + pd.Timedelta(seconds=10), f"e{i}", 9.0, ts - pd.Timedelta(minutes=1))
        if i % 30 == 29:
            first.compact()  # one decision part and one outcome part per 30 decisions
    first.trainer.step(now=T0 + pd.Timedelta(minutes=150))  # the decisions older than the 1h window settle
    first.trainer.checkpoint()
    resent = [i for i in bodies if i < 30][:3]  # deliveries sent again late (e.g. a client's retry queue)
    for i in resent:
        receive(T0 + pd.Timedelta(minutes=175), f"e{i}", 7.0, T0 + pd.Timedelta(minutes=i + 6))
    first.compact()  # a sixth outcome part: stamped long before the watermark, received after the others
    for fh in (first._decision_journal, first._outcome_journal, *first._logs.values(), first._rejected_fh,
               first._lock_fh):
        fh.close()  # the process dies here (close() would settle everything at the wall clock's time)
    watermark = bandit.load(tmp_path / "policy.zip")._applied_event_ids.watermark_us
    assert watermark == (T0 + pd.Timedelta(minutes=89)).value // 1000  # (150 min - window 1h - grace 1 min)

    full = tmp_path.parent / f"{tmp_path.name}-full"
    shutil.copytree(tmp_path, full)  # the same files, recovered by reading everything

    read: list[int] = []
    reader = bandit.serving.read_decision_log
    monkeypatch.setattr(bandit.serving, "read_decision_log", lambda parts: read.append(len(parts)) or reader(parts))
    # parts written before their names told their span: the footer tells (parts 0 and 5 here, in both copies)
    outcome_dir = tmp_path / "logs" / "outcomes"
    for k in (0, 5):
        old_name = sorted(outcome_dir.iterdir())[k]
        for root in (tmp_path, full):
            (root / "logs" / "outcomes" / old_name.name).rename(
                root / "logs" / "outcomes" / (old_name.name.rsplit("-", 1)[0] + ".parquet"))
    footers: list[str] = []
    monkeypatch.setattr(bandit.serving._OutcomeParts, "_index",
                        lambda self, path, index=bandit.serving._OutcomeParts._index: footers.append(path.name) or
                        index(self, path))
    read_outcomes: list[str] = []
    batches = bandit.serving._OutcomeParts.batches
    monkeypatch.setattr(bandit.serving._OutcomeParts, "batches",
                        lambda self, part, groups=None: read_outcomes.append(part.path.name) or batches(self, part, groups))
    # the restart: the dedupe span (window + delay + 1 day) reaches back to receipts at T0 + 172 min
    clock["us"] = (T0 + pd.Timedelta(minutes=172) + pd.Timedelta("1h") + pd.Timedelta("1D")).value // 1000
    second = service(tmp_path, id_window=120).start(thread=False)
    assert read and max(read) <= 3  # the decision parts after the watermark (3 of 5), not the whole history
    # outcome parts 0 and 1 (stamped by T0 + 64 min, received by T0 + 65 min) are not read; 2-4 hold outcomes
    # stamped after the watermark, 5 deliveries received within the dedupe span
    outcome_parts = sorted(p.name for p in outcome_dir.iterdir())
    assert sorted(set(read_outcomes)) == outcome_parts[2:] and len(outcome_parts) == 6
    assert sorted(footers) == [outcome_parts[0], *outcome_parts[2:]]  # part 1 is not even opened: its name tells
    monkeypatch.setattr(bandit.serving, "_decided_by", lambda part, after_us: False)
    index = bandit.serving._OutcomeParts._index  # names and footers that tell nothing: every row is read
    monkeypatch.setattr(bandit.serving._OutcomeParts, "_index", lambda self, path: (None,) * len(index(self, path)))
    monkeypatch.setattr(bandit.serving, "_name_span", lambda name: None)
    read.clear()
    read_outcomes.clear()
    everything = service(full, id_window=120).start(thread=False)
    assert max(read) == 5 and len(set(read_outcomes)) == 6
    assert_same_learning(second.holder.policy, everything.holder.policy)
    assert second.holder.policy.n_updates == everything.holder.policy.n_updates == 150  # (each start settles at
    # its own wall-clock time, so the two watermarks differ by the seconds between them)
    assert second._recent_set == everything._recent_set
    # the same delivery keys (in the same order, with the same times): those received since T0 + 172 min
    assert second._outcome_keys == everything._outcome_keys and len(second._outcome_keys) == len(resent)
    early = [i for i in range(150) if i % 7 == 0 and not converts[i]]
    # the outcomes stamped before their decisions still pending (after the watermark), reported again by both
    assert second.rejected_counts == everything.rejected_counts == {"late_before_decision": sum(i >= 90 for i in early)}
    everything.close()
    # and both equal a rebuild from the initial policy, the log and the outcomes (but those resent late: they
    # reached the service long after their timestamp, found their decisions settled; a rebuild would count them)
    log = read_decision_log(tmp_path / "logs" / "decisions" / "arms-3")
    outcomes = second.read_outcomes()
    outcomes = outcomes[outcomes["reward"] != 7.0]
    initial.update_from_log(log, outcomes[["event_id", "timestamp", "reward"]], "1h")
    assert_same_learning(second.holder.policy, initial)
    # after the restart a delivery received within the span is still a duplicate, an older one is not remembered
    i = resent[0]
    assert second.reward(f"e{i}", 7.0, T0 + pd.Timedelta(minutes=i + 6)).status == "duplicate"
    assert second.reward(*bodies[max(bodies)]).status == "accepted"
    # ids settled long ago but among the last id_window decisions are still refused when ranked again
    with pytest.raises(RequestError, match="already ranked"):
        second.rank(X[40], event_id="e40", timestamp=T0 + pd.Timedelta(minutes=200))
    assert len(second._recent_set) == 120  # the last id_window ids: topped up from the newest settled parts
    second.rank(X[10], event_id="e10", timestamp=T0 + pd.Timedelta(minutes=200))  # older than the window: allowed
    second.close()


def _wait_for(condition, what: str) -> None:
    """Wait (bounded) until another thread has reached a state: a condition, not a timed race."""
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.001)


@pytest.mark.parametrize("first_write", ["fails", "succeeds"])
def test_a_retry_during_the_first_attempts_write_waits_for_it_and_is_never_a_duplicate_of_nothing(
        tmp_path, monkeypatch, first_write):
    """Regression (review7): a retry that arrived while the first attempt's journal write was failing was answered
    "duplicate" (its key was still claimed); if the client did not retry once more, the reward was lost. The first
    write is held open until the retry is waiting, then fails (or succeeds): the retry is written itself (or is a
    duplicate of a stored reward)."""
    make_policy().save(tmp_path / "policy.zip")
    svc = service(tmp_path).start(thread=False)
    svc.rank([0.1, 0.2, 0.3], event_id="e0")
    journal = svc._outcome_journal
    real_append = journal.append
    writing, finish = threading.Event(), threading.Event()
    writes: list[str] = []

    def append(line: bytes, record) -> None:
        writes.append(record[0])
        if len(writes) == 1:  # the first attempt's write: open until the retry waits, then it ends
            writing.set()
            finish.wait()
            if first_write == "fails":
                raise OSError(28, "No space left on device")
        real_append(line, record)

    monkeypatch.setattr(journal, "append", append)
    results: dict[str, object] = {}

    def first() -> None:
        try:
            results["first"] = svc.reward("e0", 1.0).status
        except OSError as exc:
            results["first"] = exc

    def retry() -> None:
        results["retry"] = svc.reward("e0", 1.0).status

    threads = [threading.Thread(target=first), threading.Thread(target=retry)]
    threads[0].start()
    writing.wait()
    threads[1].start()
    _wait_for(lambda: any(w is not None for w in svc._unwritten.values()), "the retry waits for the first write")
    assert "retry" not in results  # not answered while the first write has not ended
    finish.set()
    for th in threads:
        th.join()
    if first_write == "fails":
        assert isinstance(results["first"], OSError) and results["retry"] == "accepted" and writes == ["e0", "e0"]
    else:
        assert results == {"first": "accepted", "retry": "duplicate"} and writes == ["e0"]
    assert svc.reward("e0", 1.0).status == "duplicate" and not svc._unwritten
    assert svc.n_outcomes_received == 1 and svc.n_outcome_duplicates == (1 if first_write == "fails" else 2)
    svc.compact()
    assert list(svc.read_outcomes()["event_id"]) == ["e0"]
    svc.close()


@pytest.mark.parametrize("first_attempt", ["fails", "cancelled, then written", "cancelled, then fails"])
def test_reward_async_retries_wait_for_the_first_fsync_group_also_when_its_caller_is_cancelled(
        tmp_path, monkeypatch, first_attempt):
    """The event loop's side of the regression above, in fsync mode: the test holds each queued write and ends it
    itself. A cancelled first caller (a client gone) does not end its delivery: the write still decides whether the
    retry is a duplicate, and a written reward reaches the trainer once."""
    import asyncio

    make_policy().save(tmp_path / "policy.zip")
    svc = service(tmp_path, durability="fsync").start(thread=False)
    svc.rank([0.1, 0.2, 0.3], event_id="e0")
    journal = svc._outcome_journal
    real_append_fsync = journal.append_fsync
    held: list[tuple] = []
    monkeypatch.setattr(journal, "append_fsync", lambda line, record, done: held.append((line, record, done)))
    learned: list[str] = []
    add_outcome = svc.trainer.add_outcome
    monkeypatch.setattr(svc.trainer, "add_outcome", lambda e, *rest: (learned.append(e), add_outcome(e, *rest)))

    async def turns(until) -> None:  # let the loop run its ready callbacks until a state is reached
        for _ in range(100):
            if until():
                return
            await asyncio.sleep(0)
        raise AssertionError("state not reached")

    async def scenario() -> str:
        first = asyncio.ensure_future(svc.reward_async("e0", 1.0))
        await turns(lambda: len(held) == 1)
        retry = asyncio.ensure_future(svc.reward_async("e0", 1.0))
        await turns(lambda: any(w is not None for w in svc._unwritten.values()))
        if first_attempt.startswith("cancelled"):
            first.cancel()
            await turns(first.done)
            assert first.cancelled() and len(svc._unwritten) == 1  # the key is not given back: its write goes on
        await asyncio.sleep(0)
        assert not retry.done()
        line, record, done = held.pop()
        if first_attempt.endswith("written"):
            real_append_fsync(line, record, done)  # the commit thread writes and fsyncs it now
        else:
            done(OSError(5, "Input/output error"))
            await turns(lambda: len(held) == 1)  # the retry claimed the delivery again and queued its own write
            real_append_fsync(*held.pop())
        status = (await retry).status
        if not first.cancelled():
            with pytest.raises(OSError):
                await first
        return status

    status = asyncio.run(scenario())
    assert status == ("duplicate" if first_attempt.endswith("written") else "accepted")
    assert learned == ["e0"] and not svc._unwritten and svc.n_outcomes_received == 1
    svc.compact()
    assert list(svc.read_outcomes()["event_id"]) == ["e0"]
    svc.close()
