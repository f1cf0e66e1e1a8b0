"""kill -9 of a process whose threads share one DecisionLog: every row whose flush() returned is on disk, once."""

from __future__ import annotations

import signal
import subprocess
import sys
import warnings

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bandit.decision import Decision
from bandit.decision_log import DecisionLog, read_decision_log
from offline_eval.schema import DecisionLogWarning

ARMS = ["individual", "duo", "family"]

# Four serving threads append single decisions and small batches, and flush after every few rows; after flush()
# returns, the thread prints the ids it appended before calling it (one line, written atomically under a lock).
# rows_per_part is small, so appends also write parts concurrently with the flushes.
_CHILD = """
import sys, threading
import numpy as np
from bandit.decision import BatchDecision, Decision
from bandit.decision_log import DecisionLog

ARMS = ["individual", "duo", "family"]
log = DecisionLog(sys.argv[1], arms=ARMS, policy_name="P", rows_per_part=40)
out = threading.Lock()
probs = np.array([0.5, 0.25, 0.25])
eligible = np.ones(3, dtype=bool)

def worker(t):
    rng = np.random.default_rng(t)
    i = 0
    while True:
        mine = []
        for _ in range(int(rng.integers(1, 8))):
            if rng.random() < 0.3:
                m = int(rng.integers(2, 6))
                ids = [f"t{t}-{i + j}" for j in range(m)]
                batch = BatchDecision(indices=np.zeros(m, dtype=np.int64), arms=["individual"] * m,
                                      propensities=np.full(m, 0.5), probabilities=np.tile(probs, (m, 1)),
                                      scores=np.zeros((m, 3)), event_ids=ids, policy_version="v",
                                      eligible=np.ones((m, 3), dtype=bool))
                log.append_batch(batch, np.column_stack([np.full(m, t), np.arange(i, i + m)]).astype(float))
            else:
                ids = [f"t{t}-{i}"]
                d = Decision(arm="individual", index=0, propensity=0.5, probabilities=probs, scores=probs,
                             event_id=ids[0], policy_version="v", eligible=eligible)
                log.append(d, np.array([t, i], dtype=float))
            mine += ids
            i += len(ids)
        log.flush()
        with out:
            sys.stdout.write(" ".join(mine) + "\\n")
            sys.stdout.flush()

for t in range(4):
    threading.Thread(target=worker, args=(t,), daemon=True).start()
threading.Event().wait()
"""


def test_sigkill_mid_run_keeps_every_flushed_row_exactly_once_and_the_log_reopens(tmp_path):
    path = tmp_path / "log"
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(path)], stdout=subprocess.PIPE, text=True)
    reported: list[str] = []
    try:
        lines = 0
        while lines < 150:  # let the threads flush ~150 times, then kill the process without warning
            line = child.stdout.readline()
            assert line, "the writer died on its own"
            if line.endswith("\n"):
                reported += line.split()
                lines += 1
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        child.kill()
        child.wait()
        child.stdout.close()

    # on disk: every part reads cleanly, no row twice, every reported row present
    parts = sorted(path.glob("part-*.parquet"))
    table = pa.concat_tables([pq.read_table(p) for p in parts])
    on_disk = table.column("event_id").to_pylist()
    assert len(on_disk) == len(set(on_disk))
    assert set(reported) <= set(on_disk)
    ctx = np.stack(table.column("context").to_numpy(zero_copy_only=False))
    assert on_disk == [f"t{int(t)}-{int(i)}" for t, i in ctx]  # each row's context belongs to its id
    with warnings.catch_warnings():
        warnings.simplefilter("error", DecisionLogWarning)  # nothing stray, no duplicate to quarantine
        assert read_decision_log(path)["event_id"].tolist() == on_disk

    # the log reopens: the dead writer's temporaries are cleaned, ids on disk stay unique, logging continues
    log = DecisionLog(path, arms=ARMS, policy_name="P")
    assert not list(path.glob(".*.tmp"))
    probs = np.array([0.5, 0.25, 0.25])

    def decision(event_id: str) -> Decision:
        return Decision(arm="individual", index=0, propensity=0.5, probabilities=probs, scores=probs,
                        event_id=event_id, policy_version="v", eligible=np.ones(3, dtype=bool))

    try:
        log.append(decision(reported[-1]), np.zeros(2))
    except ValueError as err:
        assert "already appended" in str(err)
    else:  # pragma: no cover
        raise AssertionError("a flushed id was accepted again after reopening")
    log.append(decision("after-restart"), np.array([-1.0, -1.0]))
    log.close()
    assert read_decision_log(path)["event_id"].tolist() == [*on_disk, "after-restart"]
