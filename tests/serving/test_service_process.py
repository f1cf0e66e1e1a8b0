"""``upsell-bandit serve`` as a real process on 127.0.0.1 (a free port): bad requests over the wire, concurrent
rewards for one event, tokens; and a kill -9 under load followed by a restart that loses no acknowledged decision,
counts no outcome twice and ends with the policy a rebuild from the log and the outcomes gives."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import psutil
import pytest

import bandit
from bandit.decision_log import read_decision_log

TOKEN = "tok-123"
JSON = {"content-type": "application/json"}
AUTH = {**JSON, "Authorization": f"Bearer {TOKEN}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One ``upsell-bandit serve`` process and the arguments to start it again."""

    def __init__(self, tmp: Path, *extra: str) -> None:
        self.tmp = tmp
        self.port = free_port()
        (tmp / "token").write_text(TOKEN + "\n")
        self.args = [sys.executable, "-m", "bandit.cli", "serve", "--policy", str(tmp / "policy.zip"), "--log",
                     str(tmp / "logs"), "--port", str(self.port), "--token-file", str(tmp / "token"), *extra]
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=open(self.tmp / "stderr.txt", "ab"))
        deadline = time.time() + 60
        while time.time() < deadline:
            assert self.proc.poll() is None, (self.tmp / "stderr.txt").read_text()
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError("the server did not come up")

    def stop(self) -> None:
        """SIGTERM: a clean shutdown (uvicorn re-raises the signal once it has shut down, hence -SIGTERM)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=60) in (0, -signal.SIGTERM)
        assert not list((self.tmp / "logs" / "journal").glob("*.jsonl"))  # everything compacted


@pytest.fixture()
def policy_dir(tmp_path):
    bandit.LinUCB(["solo", "duo", "family"], n_features=3, alpha=0.5, exploration_floor=0.1, seed=0).save(
        tmp_path / "policy.zip")
    shutil.copy(tmp_path / "policy.zip", tmp_path / "initial.zip")
    return tmp_path


@pytest.mark.slow
def test_real_server_rejects_bad_requests_and_handles_concurrent_rewards(policy_dir):
    server = Server(policy_dir, "--max-body-bytes", "1024", "--durability", "write").start()
    # it says where it listens (uvicorn's own log is quiet at the default level: it used to print nothing)
    said = (policy_dir / "stderr.txt").read_text()
    assert f"serving {policy_dir / 'policy.zip'} (LinUCB-" in said and f"on {server.url}, log " in said
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            r = http.post("/rank", content=b'{"context": [1, 2, 3], "event_id": "e1"}', headers=JSON)
            assert r.status_code == 200
            checks = [
                (http.post("/rank", content=b'{"context": [1, 2, 3]}', headers={"content-type": "text/html"}), 400),
                (http.post("/rank", content=b'{"context": [1, 2,', headers=JSON), 400),
                (http.post("/rank", content=b'{"context": [1, 2, 3], "x": "' + b"a" * 2000 + b'"}', headers=JSON), 400),
                # no content-length (chunked): the limit holds while the body streams in
                (http.post("/rank", content=iter([b'{"context": [', b"1, " * 600, b"3]}"]), headers=JSON), 400),
                (http.post("/rank", content=b'{"context": [1e999, 2, 3]}', headers=JSON), 422),
                (http.post("/rank", content=b'{"context": [1, 2, 3], "event_id": "e1"}', headers=JSON), 409),
                (http.post("/reward", content=b'{"event_id": "e1", "reward": 1}', headers=JSON), 401),
                (http.post("/reward", content=b'{"event_id": "e1", "reward": 1}',
                           headers={**JSON, "Authorization": "Bearer tok-12"}), 401),
                (http.post("/admin/checkpoint", headers=JSON), 401),
                (http.get("/rank"), 405),
            ]
            for response, status in checks:
                assert response.status_code == status, response.text
                if status not in (405,):
                    assert response.json()["field"]

        # 16 clients post the same reward for e1 at once, and one distinct reward each for e2
        assert httpx.post(server.url + "/rank", json={"context": [0, 1, 0], "event_id": "e2"}).status_code == 200
        results: list[tuple[str, str]] = []
        barrier = threading.Barrier(16)

        def post(i: int) -> None:
            with httpx.Client(base_url=server.url, timeout=10) as http:
                barrier.wait()
                a = http.post("/reward", json={"event_id": "e1", "reward": 1.0, "timestamp": "2026-01-01T00:00:00Z"},
                              headers=AUTH)
                b = http.post("/reward", json={"event_id": "e2", "reward": float(i)}, headers=AUTH)
                assert a.status_code == b.status_code == 202
                results.append((a.json()["status"], b.json()["status"]))

        threads = [threading.Thread(target=post, args=(i,)) for i in range(16)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert sorted(a for a, _ in results) == ["accepted"] + ["duplicate"] * 15
        assert [b for _, b in results] == ["accepted"] * 16
        metrics = httpx.get(server.url + "/metrics").text
        assert 'upsell_requests_total{code="202",endpoint="reward"} 32.0' in metrics
        assert "upsell_outcomes_received_total 17.0" in metrics and "upsell_outcome_duplicates_total 15.0" in metrics
    finally:
        server.stop()
    outcomes = pd.read_parquet(policy_dir / "logs" / "outcomes")
    assert sorted(outcomes["event_id"]) == ["e1"] + ["e2"] * 16
    assert sorted(outcomes.loc[outcomes["event_id"] == "e2", "reward"]) == [float(i) for i in range(16)]
    assert read_decision_log(policy_dir / "logs" / "decisions" / "arms-3")["event_id"].tolist() == ["e1", "e2"]


@pytest.mark.slow
@pytest.mark.parametrize("trainer", ["process", "thread"])
def test_kill_9_under_load_then_restart_loses_nothing_and_equals_a_rebuild(policy_dir, trainer):
    server = Server(policy_dir, "--attribution-window", "2s", "--delivery-delay", "0.5s", "--train-every", "0.2s",
                    "--compact-every", "1.5s", "--checkpoint-every", "1s", "--trainer", trainer).start()
    acked: dict[str, tuple[str, float]] = {}
    rewarded: dict[str, float] = {}
    stop = threading.Event()

    def client(seed: int) -> None:
        rng = np.random.default_rng(seed)
        with httpx.Client(base_url=server.url, timeout=5) as http:
            i = 0
            while not stop.is_set():
                event_id = f"c{seed}-{i}"
                i += 1
                try:
                    r = http.post("/rank", json={"event_id": event_id, "context": rng.normal(size=3).tolist()})
                    assert r.status_code == 200, r.text
                    acked[event_id] = (r.json()["arm"], r.json()["propensity"])
                    if rng.random() < 0.5:
                        reward = float(rng.integers(1, 4))
                        r = http.post("/reward", json={"event_id": event_id, "reward": reward}, headers=AUTH)
                        assert r.status_code == 202 and r.json()["status"] == "accepted", r.text
                        rewarded[event_id] = reward
                except httpx.TransportError:
                    return  # the server was killed

    threads = [threading.Thread(target=client, args=(s,)) for s in range(4)]
    for th in threads:
        th.start()
    time.sleep(2.0)  # under load: checkpoints, compactions and snapshot swaps are happening
    children = psutil.Process(server.proc.pid).children()
    assert len(children) == (trainer == "process")
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait(timeout=10)
    _, alive = psutil.wait_procs(children, timeout=5)
    assert not alive  # the trainer process dies with the server (it holds the log directory's lock)
    stop.set()
    for th in threads:
        th.join()
    assert len(acked) > 100 and rewarded
    # the crash left decisions only in the journal (not yet in Parquet): recovery has work to do
    journal = [line for f in (policy_dir / "logs" / "journal").glob("decisions-*.jsonl")
               for line in f.read_bytes().splitlines()]
    assert journal

    # a restart killed (-9) during its recovery, once it has compacted the first journal segment
    segments = set((policy_dir / "logs" / "journal").glob("*.jsonl"))
    interrupted = subprocess.Popen(server.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline and set((policy_dir / "logs" / "journal").glob("*.jsonl")) >= segments:
        time.sleep(0.002)
    # its trainer child, if any, exits with it: wait for that one (matching this process's other children by their
    # command line also caught a Spark JVM left by earlier tests, which never exits)
    trainers = psutil.Process(interrupted.pid).children(recursive=True)
    interrupted.kill()
    interrupted.wait(timeout=10)
    _, alive = psutil.wait_procs(trainers, timeout=10)
    assert not alive

    server.start()  # recovery: last checkpoint + journal + log tail
    with httpx.Client(base_url=server.url, timeout=10) as http:
        deadline = time.time() + 30
        while http.get("/healthz").json()["pending_decisions"] and time.time() < deadline:
            time.sleep(0.2)
        assert http.get("/healthz").json()["pending_decisions"] == 0
        # a retry of an acknowledged reward (same body) is still recognised after the restarts
        event_id, reward = next(iter(rewarded.items()))
        retry = http.post("/reward", json={"event_id": event_id, "reward": reward}, headers=AUTH)
        assert retry.status_code == 202 and retry.json()["status"] == "duplicate"
        assert http.post("/admin/checkpoint", headers=AUTH).status_code == 200
    server.stop()

    decisions = pd.concat([read_decision_log(p) for p in sorted((policy_dir / "logs" / "decisions").iterdir())])
    logged = dict(zip(decisions["event_id"], zip(decisions["action_name"], decisions["propensity"], strict=True),
                      strict=True))
    assert decisions["event_id"].is_unique
    assert all(logged[e] == v for e, v in acked.items())  # every acknowledged decision, as acknowledged
    outcomes = pd.read_parquet(policy_dir / "logs" / "outcomes")
    assert outcomes["event_id"].is_unique
    stored = dict(zip(outcomes["event_id"], outcomes["reward"], strict=True))
    assert all(stored[e] == r for e, r in rewarded.items())  # every acknowledged reward

    recovered = bandit.load(policy_dir / "policy.zip")
    rebuilt = bandit.load(policy_dir / "initial.zip")
    report = rebuilt.update_from_log(decisions, outcomes[["event_id", "timestamp", "reward"]], "2s",
                                     now=pd.Timestamp.now(tz="UTC") + pd.Timedelta("1h"))
    assert report.n_applied == len(decisions) and len(report.late_outcomes) == 0
    assert recovered.n_updates == len(decisions)  # each decision learned exactly once
    np.testing.assert_array_equal(recovered.pulls, rebuilt.pulls)
    assert sum(recovered._reward_sum) == pytest.approx(sum(stored.values()))  # each outcome counted once
    np.testing.assert_allclose(recovered._A, rebuilt._A, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(recovered._b, rebuilt._b, rtol=1e-9, atol=1e-9)
    assert json.loads((policy_dir / "logs" / "rejected.jsonl").read_text() or "null") is None
