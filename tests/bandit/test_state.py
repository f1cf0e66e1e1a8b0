"""save / load, snapshots and concurrent serving."""

from __future__ import annotations

import io
import json
import sys
import tempfile
import threading
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from policy_helpers import POLICY_CLASSES, assert_same_state, make, new_arm, state_of, trained, training_data
from state_files import read_members, read_state, write_members, write_raw, write_v1

import bandit
from bandit import LinUCB, load
from bandit.state import FORMAT_VERSION, UnverifiedMetadataWarning

all_policies = pytest.mark.parametrize("cls", POLICY_CLASSES, ids=[c.__name__ for c in POLICY_CLASSES])
CONTEXTS = np.array([[0.3, -1.2, 0.5], [2.0, 0.1, -0.7], [-1.5, 1.5, 0.0]])


@all_policies
def test_save_load_round_trip_is_bit_exact(cls, tmp_path):
    policy = trained(cls, seed=9)
    policy.add_arm(new_arm("bundle"))
    policy.remove_arm("student")
    policy.choose(CONTEXTS[0])  # advance the own generator
    path = policy.save(tmp_path / "p.zip")
    restored = load(path)
    assert type(restored) is cls and not restored.read_only
    assert_same_state(state_of(policy), state_of(restored))
    assert restored.policy_version == policy.policy_version
    assert restored.get_params() == policy.get_params()
    assert restored.arms == policy.arms and restored.active_arms == policy.active_arms
    # same decisions: per event id, and along the own generator's sequence
    for i, x in enumerate(CONTEXTS):
        a, b = policy.choose(x, event_id=f"e{i}"), restored.choose(x, event_id=f"e{i}")
        assert a.index == b.index and np.array_equal(a.probabilities, b.probabilities)
        assert np.array_equal(a.scores, b.scores) and a.policy_version == b.policy_version
    assert [policy.choose(x).index for x in CONTEXTS] == [restored.choose(x).index for x in CONTEXTS]
    # and they keep learning identically
    X, arms, rewards = training_data(30, seed=5)
    for p in (policy, restored):
        p.update_batch(X, arms, rewards)
        p.update(X[0], "bundle", 1.0)
    assert_same_state(state_of(policy), state_of(restored))


NAMES = st.one_of(
    st.text(min_size=1, max_size=12),
    st.text(alphabet="xé\u4e00\U0001f600", min_size=1020, max_size=1030),  # around the 1,024-character limit
    st.sampled_from(["a\ud800", " ", "\x00", "a/b", "../x", "NaN", "\u2028"]),  # lone surrogate, blank, odd names
)


@given(
    names=st.lists(NAMES, min_size=1, max_size=4),
    value=st.floats(min_value=-1.0, max_value=1e308),
    reward=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**400), 10**400)),
    seed=st.integers(0, 2**64 - 1),
)
@settings(max_examples=60, deadline=None, derandomize=True)
def test_any_policy_the_public_api_accepts_saves_and_loads_back(names, value, reward, seed):
    """Regression (property): arm names of more than 1,024 characters, and rewards that overflowed the reward sums,
    were accepted, then the saved file could not be loaded. Whatever the constructor, add_arm and update accept,
    bandit.load restores exactly; whatever they refuse is a ValueError/TypeError that changes nothing."""
    try:
        policy = bandit.UniformRandom([bandit.Arm(name=n, value=value) for n in names], n_features=2, seed=seed)
    except (ValueError, TypeError):
        return
    before = state_of(policy)
    for _ in range(2):
        try:
            policy.update([0.5, -0.5], 0, reward)
        except (ValueError, TypeError):
            assert_same_state(before, state_of(policy))
    try:
        policy.add_arm(bandit.Arm(name=names[0] + "+", value=value))
    except (ValueError, TypeError):
        pass
    with tempfile.TemporaryDirectory() as tmp:
        assert_same_state(state_of(policy), state_of(bandit.load(policy.save(Path(tmp) / "p.zip"))))


def test_save_is_atomic_and_overwrites(tmp_path):
    policy = trained(LinUCB)
    path = tmp_path / "p.zip"
    policy.save(path)
    policy.update(CONTEXTS[0], 0, 1.0)
    policy.save(path)
    assert load(path).n_updates == policy.n_updates
    assert [p.name for p in tmp_path.iterdir()] == ["p.zip"]  # no temporary file left behind


def test_failed_save_leaves_previous_file(tmp_path, monkeypatch):
    policy = trained(LinUCB)
    path = tmp_path / "p.zip"
    policy.save(path)
    good = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(bandit.state.os, "replace", boom)
    policy.update(CONTEXTS[0], 0, 1.0)
    with pytest.raises(OSError, match="disk full"):
        policy.save(path)
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["p.zip"]
    monkeypatch.undo()
    # regression: a policy beyond a limit of bandit.load (e.g. ~20,000 plans with long names: policy.json over
    # 16 MiB, or arrays over 1 GiB) was saved over the last good file, and that file could not be loaded back
    for limit, size in (("MAX_JSON_BYTES", 100), ("MAX_FILE_BYTES", 2_000)):
        with monkeypatch.context() as m:
            m.setattr(bandit.state, limit, size)
            with pytest.raises(ValueError, match=f"exceeds the {size}-byte limit of bandit.load; nothing was written"):
                policy.save(path)
        assert path.read_bytes() == good and [p.name for p in tmp_path.iterdir()] == ["p.zip"]


def _rewrite(path, *, meta=None, arrays=None, checksum=True):
    """Edit a saved file's metadata and/or npz bytes; the checksum is recomputed, or kept stale (``checksum=False``)."""
    members = read_members(path)
    m = json.loads(members["policy.json"])
    a = members["arrays.npz"]
    if meta:
        m = meta(m)
    if arrays:
        a = arrays(a)
    raw = json.dumps(m).encode("utf-8")
    if checksum:
        write_raw(path, raw, a)
    else:
        write_members(path, {**members, "policy.json": raw, "arrays.npz": a})


def test_load_rejects_corrupt_foreign_and_newer_files(tmp_path):
    policy = trained(LinUCB)
    path = tmp_path / "p.zip"

    policy.save(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="cannot load policy"):
        load(path)

    path.write_bytes(b"not a zip at all")
    with pytest.raises(ValueError, match="not a readable zip"):
        load(path)

    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("something.txt", "hello")
    with pytest.raises(ValueError, match="not an upsell-bandit policy file"):
        load(path)

    policy.save(path)
    _rewrite(path, meta=lambda m: {**m, "format": "other/thing"})
    with pytest.raises(ValueError, match="format marker"):
        load(path)

    policy.save(path)
    _rewrite(path, meta=lambda m: {**m, "format_version": FORMAT_VERSION + 1})
    with pytest.raises(ValueError, match="newer than this library reads"):
        load(path)

    policy.save(path)
    _rewrite(path, meta=lambda m: {**m, "class": "Pickle"})
    with pytest.raises(ValueError, match="unknown policy class 'Pickle'"):
        load(path)

    def tamper(npz: bytes) -> bytes:
        with np.load(io.BytesIO(npz)) as f:
            arrays = {k: f[k] for k in f.files}
        arrays["theta"] = arrays["theta"] + 1.0
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    policy.save(path)
    _rewrite(path, arrays=tamper, checksum=False)
    with pytest.raises(ValueError, match="checksum mismatch"):
        load(path)

    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.zip")


@pytest.mark.parametrize(
    "edit",
    [
        lambda m: {**m, "config": {**m["config"], "alpha": 50.0}},
        lambda m: {**m, "arms": [{**m["arms"][0], "value": 100.0}, *m["arms"][1:]]},
        lambda m: {**m, "counters": {**m["counters"], "revision": 0}},
        lambda m: {**m, "rng_state": 1},
    ],
    ids=["alpha", "arm-value", "revision", "rng-state"],
)
def test_checksum_covers_the_metadata(edit, tmp_path):
    """Regression: only arrays.npz was checksummed, so editing alpha in policy.json loaded silently."""
    path = trained(LinUCB).save(tmp_path / "p.zip")
    _rewrite(path, meta=edit, checksum=False)
    with pytest.raises(ValueError, match="checksum mismatch: the file's content does not match policy.sha256"):
        load(path)
    _rewrite(path, meta=lambda m: m)  # the same edit with a recomputed checksum is a consistent file: it loads
    load(path)


@all_policies
def test_version_1_files_still_load_with_a_warning(cls, tmp_path):
    """Files written by earlier releases (format_version 1: arrays-only checksum) load bit-exactly, with a warning
    that their metadata is unverified; saving again writes format_version 2."""
    policy = trained(cls, seed=3)
    path = policy.save(tmp_path / "p.zip")
    meta, arrays = read_state(path)
    assert meta["format_version"] == 2 and sorted(read_members(path)) == ["arrays.npz", "policy.json", "policy.sha256"]
    write_v1(path, {k: v for k, v in meta.items() if k != "format_version"}, arrays)
    with pytest.warns(UnverifiedMetadataWarning, match="format_version 1 .* metadata .* unverified"):
        restored = load(path)
    assert_same_state(state_of(policy), state_of(restored))
    assert restored.policy_version == policy.policy_version
    restored.save(path)
    assert json.loads(read_members(path)["policy.json"])["format_version"] == FORMAT_VERSION == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load(path)
    # a version-1 file still has its arrays checksum checked
    write_v1(path, meta, arrays)
    _rewrite(path, meta=lambda m: {**m, "arrays_sha256": "0" * 64}, checksum=False)
    with pytest.raises(ValueError, match="checksum mismatch: arrays.npz"):
        load(path)


def test_load_rejects_inconsistent_arrays(tmp_path):
    policy = trained(LinUCB)
    path = tmp_path / "p.zip"
    policy.save(path)

    def drop_theta(npz: bytes) -> bytes:
        with np.load(io.BytesIO(npz)) as f:
            arrays = {k: f[k] for k in f.files if k != "theta"}
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    _rewrite(path, arrays=drop_theta)
    with pytest.raises(ValueError, match="inconsistent state"):
        load(path)


def test_save_rejects_bad_paths(tmp_path):
    policy = make(LinUCB)
    with pytest.raises(ValueError, match="is a directory"):
        policy.save(tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        policy.save(tmp_path / "missing" / "p.zip")


@all_policies
def test_snapshot_is_read_only_and_frozen(cls):
    policy = trained(cls)
    snap = policy.snapshot()
    assert snap.read_only and not policy.read_only
    ref = [snap.choose(x, event_id=f"s{i}") for i, x in enumerate(CONTEXTS)]
    live = [policy.choose(x, event_id=f"s{i}") for i, x in enumerate(CONTEXTS)]
    assert [d.index for d in ref] == [d.index for d in live]
    assert all(a.policy_version == b.policy_version for a, b in zip(ref, live, strict=False))
    for call in (
        lambda: snap.update(CONTEXTS[0], 0, 1.0),
        lambda: snap.update_batch(CONTEXTS, [0, 1, 2], [1.0, 0.0, 1.0]),
        lambda: snap.add_arm("x"),
        lambda: snap.remove_arm("duo"),
    ):
        with pytest.raises(RuntimeError, match="read-only snapshot"):
            call()
    before = state_of(snap)
    X, arms, rewards = training_data(50, seed=3)
    policy.update_batch(X, arms, rewards)
    assert_same_state(before, state_of(snap))
    again = [snap.choose(x, event_id=f"s{i}") for i, x in enumerate(CONTEXTS)]
    for a, b in zip(ref, again, strict=False):
        assert a.index == b.index and np.array_equal(a.probabilities, b.probabilities)
    # a snapshot's (locked) choose belongs to it: a snapshot of it draws from its own generator, not the original's
    twin = snap.snapshot()
    generator = snap._rng_state.copy()
    twin.choose(CONTEXTS[0])
    assert snap._rng_state[0] == generator[0] != twin._rng_state[0]


@pytest.mark.parametrize("cls", [LinUCB, bandit.LinearTS], ids=lambda c: c.__name__)
def test_concurrent_serving_threads_with_a_live_trainer(cls):
    """A trainer updates the live policy and swaps snapshots while serving threads choose.

    Every decision must be exactly the one its snapshot makes when asked again single-threaded (no torn state),
    and its version must be a version the trainer published.
    """
    live = make(cls, seed=2)
    X, arms, rewards = training_data(2000, seed=6)
    current = {"snap": live.snapshot()}
    published = {current["snap"].policy_version: current["snap"]}
    stop = threading.Event()
    records: list[list] = [[] for _ in range(4)]
    errors: list[BaseException] = []

    def serve(t: int) -> None:
        rng = np.random.default_rng(t)
        i = 0
        try:
            while not stop.is_set() or i < 200:
                snap = current["snap"]
                x = X[rng.integers(len(X))]
                eid = f"t{t}-{i}"
                d = snap.choose(x, event_id=eid)
                b = snap.choose_batch(x[None, :], event_ids=[eid])
                records[t].append((snap, x, eid, d, b))
                i += 1
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def train() -> None:
        try:
            for start in range(0, len(X), 20):
                for j in range(start, start + 20):
                    live.update(X[j], int(arms[j]), rewards[j])
                snap = live.snapshot()
                published[snap.policy_version] = snap
                current["snap"] = snap
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)
        finally:
            stop.set()

    threads = [threading.Thread(target=serve, args=(t,)) for t in range(3)] + [threading.Thread(target=train)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    seen_versions = set()
    for rec in records[:3]:
        assert len(rec) >= 200
        for snap, x, eid, d, b in rec:
            assert d.policy_version in published
            seen_versions.add(d.policy_version)
            again = published[d.policy_version].choose(x, event_id=eid)
            assert again.index == d.index == b.indices[0]
            np.testing.assert_array_equal(again.probabilities, d.probabilities)
            np.testing.assert_array_equal(b.probabilities[0], d.probabilities)
    assert len(published) == 101
    assert live.n_updates == len(X)


def test_shared_snapshot_without_event_ids_is_thread_safe():
    """Many threads drawing from one snapshot's own generator: every decision valid, no draw lost or repeated."""
    snap = trained(bandit.LinearTS, seed=4).snapshot()
    ref = snap.snapshot()  # same generator state, used single-threaded
    x = CONTEXTS[1]
    results: list[int] = []
    lock = threading.Lock()

    def serve() -> None:
        local = [snap.choose(x).index for _ in range(500)]
        with lock:
            results.extend(local)

    threads = [threading.Thread(target=serve) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    expected = [ref.choose(x).index for _ in range(2000)]
    # the draws are serialised: the multiset of arms equals the single-threaded sequence's
    assert sorted(results) == sorted(expected)


def test_load_restores_applied_event_ids(tmp_path):
    policy = make(LinUCB)
    policy._applied_event_ids.add(["a", "b"], [1_000, 2_000])  # ids with their decision times (us)
    policy._applied_event_ids.advance(1_500)  # the watermark now covers "a"
    restored = load(policy.save(tmp_path / "p.zip"))
    assert set(restored._applied_event_ids) == {"b"} and restored._applied_event_ids.watermark_us == 1_500


def test_update_from_log_is_idempotent(tmp_path):
    import pandas as pd

    policy = make(LinUCB, seed=1)
    decisions = []
    for i, x in enumerate(CONTEXTS):
        d = policy.choose(x, event_id=f"r{i}")
        decisions.append({"event_id": d.event_id, "timestamp": pd.Timestamp("2024-05-01", tz="UTC"),
                          "context": x, "action": d.index, "action_name": d.arm})
    decisions = pd.DataFrame(decisions)
    outcomes = pd.DataFrame({"event_id": ["r0"], "reward": [1.0], "timestamp": pd.to_datetime(["2024-05-02"], utc=True)})
    report = policy.update_from_log(decisions, outcomes, "7D", now="2024-05-20")
    assert report.n_applied == 3 and policy.n_updates == 3
    restored = load(policy.save(tmp_path / "p.zip"))
    assert restored.update_from_log(decisions, outcomes, "7D", now="2024-05-20").n_applied == 0
    assert restored.n_updates == 3
    assert_same_state(state_of(policy), state_of(restored))


@pytest.mark.skipif(sys.platform == "win32", reason="save removes dead temporaries on POSIX systems only")
def test_save_removes_the_temporary_a_killed_save_left_and_nothing_else(tmp_path):
    """Regression: a save killed mid-write (kill -9) left its temporary beside the policy file forever (library
    users had no cleanup). Now a later save removes it, and never one a live save is writing."""
    import fcntl
    import os
    import subprocess
    import time

    path = tmp_path / "p.zip"
    policy = LinUCB(["solo", "duo"], n_features=2, seed=0)
    policy.save(path)
    long_ago = time.time() - 3600
    # a writer killed while it held its temporary (save's lock): the kernel dropped the lock with the process
    dead = tmp_path / ".p.zip.k1ll3d.tmp"
    writer = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys, time\n"
                               f"fd = os.open({str(dead)!r}, os.O_WRONLY | os.O_CREAT, 0o600)\n"
                               "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, b'PK partial')\n"
                               "print('held', flush=True); time.sleep(60)"], stdout=subprocess.PIPE)
    assert writer.stdout.readline() == b"held\n"
    writer.kill()
    writer.wait()
    live = tmp_path / ".p.zip.wr1t1ng.tmp"  # a save writing right now (a slow disk): it holds the lock
    fresh = tmp_path / ".p.zip.n3w.tmp"  # just created, its writer not yet holding the lock
    unrelated = [tmp_path / ".q.zip.x.tmp", tmp_path / ".p.zip.x.tmp.bak", tmp_path / "p.zip.tmp"]
    for f in (live, fresh, *unrelated):
        f.write_bytes(b"data")
    target = tmp_path / "precious"
    target.write_bytes(b"keep")
    link = tmp_path / ".p.zip.l1nk.tmp"
    link.symlink_to(target)
    for f in (dead, live, *unrelated, target):
        os.utime(f, (long_ago, long_ago))
    holder = os.open(live, os.O_RDONLY)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        policy.update([1.0, 0.0], "duo", 1.0)
        policy.save(path)
        assert not dead.exists()
        assert all(f.exists() for f in (live, fresh, link, target, *unrelated))
        assert target.read_bytes() == b"keep" and load(path).n_updates == 1
    finally:
        os.close(holder)  # the live writer finished (or died) long ago: its temporary goes with the next save
    policy.save(path)
    assert not live.exists() and fresh.exists() and link.is_symlink()
    assert sorted(p.name for p in bandit.state.stale_temporaries(path)) == sorted([fresh.name, link.name])
