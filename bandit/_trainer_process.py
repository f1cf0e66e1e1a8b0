"""The trainer of a :class:`bandit.serving.DecisionService` in its own process (``trainer="process"``).

With the trainer on a thread, every trainer step and journal compaction holds the GIL that the request handlers
need: at thousands of decisions per second that is tens of milliseconds per second, in bursts, and it sets the tail
latency of ``/rank``. In process mode the request process only journals, decides and forwards; this child process
owns the live policy, the pending decisions, the Parquet logs and the policy file:

* every ``train_every`` the request process sends the decisions and outcomes made durable since the last message
  (one frame of arrays) and asks for a step; the reply carries the trainer's counters and, when the policy learned,
  its state without the ledger of settled decisions (the request process rebuilds a read-only snapshot from it);
* compaction: the request process rotates its journals and sends the closed segment files; the child parses them,
  appends them to the Parquet logs and deletes them. With durability ``"memory"`` there are no files: every message
  also carries the journal records made since the last one, which the child keeps until the next compaction;
* admin commands (add / retire a plan, checkpoint) and the last compaction, step and checkpoint at close.

Frames on the child's stdin / stdout: ``<u32 header length><u32 number of arrays>``, the header (UTF-8 JSON),
then per array ``<u64 byte length>`` and its raw little-endian bytes; the header's ``"arrays"`` lists each array's
name, dtype and shape. Nothing is pickled. The child inherits the log directory's lock (its file descriptor), so a
restarted service cannot start while an old child still writes; the child exits when its stdin closes or its parent
dies (a watchdog thread notices the parent's death within 50 ms); it ignores SIGINT and SIGTERM, which a terminal or
a service manager sends to the whole process group, so that the service can still close cleanly.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import numpy as np

#: A message: its JSON header and its arrays by name.
Message = tuple[dict[str, Any], dict[str, np.ndarray]]

_HEAD = struct.Struct("<II")
_LEN = struct.Struct("<Q")
#: Largest frame part read from the pipe (both ends are this library; the bound catches a corrupt stream).
_MAX_PART = 1 << 31


def write_message(fh: IO[bytes], header: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> None:
    """Write one frame (see the module docstring) and flush."""
    arrays = arrays or {}
    items = [(name, np.ascontiguousarray(a)) for name, a in arrays.items()]
    head = dict(header, arrays=[[name, a.dtype.str, list(a.shape)] for name, a in items])
    raw = json.dumps(head, separators=(",", ":"), allow_nan=False).encode()
    parts = [_HEAD.pack(len(raw), len(items)), raw]
    for _, a in items:
        parts += [_LEN.pack(a.nbytes), a.tobytes()]
    fh.write(b"".join(parts))
    fh.flush()


def _read_exact(fh: IO[bytes], n: int) -> bytes:
    if n > _MAX_PART:
        raise ValueError(f"trainer pipe: a frame part of {n} bytes exceeds the limit; the stream is corrupt")
    data = fh.read(n)
    if data is None or len(data) != n:
        raise EOFError("trainer pipe closed")
    return data


def read_message(fh: IO[bytes]) -> Message:
    """Read one frame; raises ``EOFError`` when the other end has closed the pipe."""
    n_head, n_arrays = _HEAD.unpack(_read_exact(fh, _HEAD.size))
    header = json.loads(_read_exact(fh, n_head))
    specs = header.pop("arrays")
    if len(specs) != n_arrays:
        raise ValueError("trainer pipe: the header's array list does not match the frame")
    arrays = {}
    for name, dtype, shape in specs:
        (nbytes,) = _LEN.unpack(_read_exact(fh, _LEN.size))
        # a bytearray: the arrays are writable (they become the policy's own state)
        arrays[name] = np.frombuffer(bytearray(_read_exact(fh, nbytes)), dtype=np.dtype(dtype)).reshape(shape)
    return header, arrays


# ----------------------------------------------------------------------------------------------------------------
# the two ends
# ----------------------------------------------------------------------------------------------------------------


def batch_message(decisions: list[tuple[str, int, np.ndarray, str]], outcomes: list[tuple[str, int, float]],
                  n_features: int) -> Message:
    """The header fields and arrays carrying decisions (event_id, time us, context (d,), arm) and outcomes
    (event_id, time us, reward) to the trainer."""
    header = {"decision_ids": [d[0] for d in decisions], "decision_arms": [d[3] for d in decisions],
              "outcome_ids": [o[0] for o in outcomes]}
    contexts = np.empty((len(decisions), n_features))
    for i, d in enumerate(decisions):
        contexts[i] = d[2]
    arrays = {
        "decision_us": np.fromiter((d[1] for d in decisions), dtype=np.int64, count=len(decisions)),
        "contexts": contexts,
        "outcome_us": np.fromiter((o[1] for o in outcomes), dtype=np.int64, count=len(outcomes)),
        "rewards": np.fromiter((o[2] for o in outcomes), dtype=np.float64, count=len(outcomes)),
    }
    return header, arrays


def records_message(decision_rows: list[Any], outcome_rows: list[tuple[str, int, float, int, bool]]) -> Message:
    """Journal records as a message (durability ``"memory"``: the records exist nowhere else): decision rows
    (event_id, time us, context, index, propensity, probabilities, eligible, version) and outcome rows (event_id,
    time us, reward, received us, client timestamp)."""
    n = len(decision_rows)
    header = {"row_ids": [r[0] for r in decision_rows], "row_versions": [r[7] for r in decision_rows],
              "stored_outcome_ids": [o[0] for o in outcome_rows]}
    empty = np.zeros(0)
    arrays = {
        "row_us": np.fromiter((r[1] for r in decision_rows), dtype=np.int64, count=n),
        "row_contexts": np.concatenate([r[2] for r in decision_rows]) if n else empty,
        "row_index": np.fromiter((r[3] for r in decision_rows), dtype=np.int64, count=n),
        "row_propensity": np.fromiter((r[4] for r in decision_rows), dtype=np.float64, count=n),
        "row_n_arms": np.fromiter((len(r[5]) for r in decision_rows), dtype=np.int64, count=n),
        "row_probabilities": np.concatenate([r[5] for r in decision_rows]) if n else empty,
        "row_eligible": np.concatenate([r[6] for r in decision_rows]) if n else np.zeros(0, dtype=bool),
        "stored_outcome_us": np.array([o[1] for o in outcome_rows], dtype=np.int64),
        "stored_rewards": np.array([o[2] for o in outcome_rows], dtype=np.float64),
        "stored_received_us": np.array([o[3] for o in outcome_rows], dtype=np.int64),
        "stored_client": np.array([o[4] for o in outcome_rows], dtype=bool),
    }
    return header, arrays


def records_from_message(header: dict[str, Any], arrays: dict[str, np.ndarray],
                         n_features: int) -> tuple[list[Any], list[tuple[str, int, float, int, bool]]]:
    """The decision and outcome rows of :func:`records_message`."""
    ids = header.get("row_ids", [])
    rows = []
    if ids:
        contexts = arrays["row_contexts"].reshape(len(ids), n_features)
        bounds = np.concatenate([[0], np.cumsum(arrays["row_n_arms"])])
        probs, eligible = arrays["row_probabilities"], arrays["row_eligible"]
        for i, (event_id, version) in enumerate(zip(ids, header["row_versions"], strict=True)):
            lo, hi = bounds[i], bounds[i + 1]
            rows.append((event_id, int(arrays["row_us"][i]), contexts[i], int(arrays["row_index"][i]),
                         float(arrays["row_propensity"][i]), probs[lo:hi], eligible[lo:hi], version))
    outcomes = [(event_id, int(ts), float(r), int(at), bool(c)) for event_id, ts, r, at, c in zip(
        header.get("stored_outcome_ids", []), arrays.get("stored_outcome_us", ()), arrays.get("stored_rewards", ()),
        arrays.get("stored_received_us", ()), arrays.get("stored_client", ()), strict=True)]
    return rows, outcomes


def policy_state(policy: Any) -> Message:
    """The policy's state without its ledger of settled decisions (a snapshot never learns, so never reads it)."""
    from bandit.attribution import AppliedEvents

    ledger = policy._applied_event_ids
    policy._applied_event_ids = AppliedEvents()
    try:
        meta, arrays = policy._get_state()
    finally:
        policy._applied_event_ids = ledger
    return meta, arrays


def policy_from_state(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Any:
    """A live policy from :func:`policy_state` (checked like a policy file)."""
    from bandit import state

    cls = state._REGISTRY[meta["class"]]
    return cls._from_state(meta, arrays)


class TrainerProcess:
    """The request process's handle on the trainer child: :meth:`call` sends a message and waits for the reply.

    One caller at a time (the service's trainer thread). A failure of the child (it died, or the pipe broke)
    raises ``EOFError`` / ``OSError`` from :meth:`call` and leaves :attr:`alive` False.
    """

    def __init__(self, init: dict[str, Any], keep_fds: tuple[int, ...] = ()) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bandit._trainer_process"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            pass_fds=keep_fds, close_fds=True,
        )
        self._lock = threading.Lock()
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in: IO[bytes] = self.proc.stdin
        self._out: IO[bytes] = self.proc.stdout
        reply, _ = self.call({"kind": "init", **init})
        self.pid = reply["pid"]

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def call(self, header: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> Message:
        """Send one message, return the reply. A reply with ``"error"`` raises it: a ``ValueError``, ``TypeError``
        or :class:`~bandit.serving.CheckpointError` of the child as the same type with the same message (so that
        the service answers them as in thread mode, e.g. 409 for a plan that exists), anything else as a
        ``RuntimeError`` naming the child's exception type."""
        with self._lock:
            write_message(self._in, header, arrays)
            reply, reply_arrays = read_message(self._out)
        if reply.get("error"):
            from bandit.serving import CheckpointError

            passed: dict[str, type[Exception]] = {"ValueError": ValueError, "TypeError": TypeError,
                                                  "CheckpointError": CheckpointError}
            kind = passed.get(reply.get("error_type", ""))
            if kind is not None:
                raise kind(reply["error"])
            raise RuntimeError(f"trainer process: {reply.get('error_type', 'Exception')}: {reply['error']}")
        return reply, reply_arrays

    def close(self, timeout: float = 60.0) -> None:
        """Close the pipe (the child exits) and wait for it; kill it after ``timeout`` seconds."""
        try:
            self._in.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._out.close()


class _Worker:
    """The child's side: a trainer-side :class:`~bandit.serving.DecisionService` driven by messages."""

    def __init__(self, init: dict[str, Any]) -> None:
        from bandit.serving import DecisionService

        self.service = DecisionService(
            init["policy_path"], init["log_dir"], attribution_window=init["attribution_window"],
            durability=init["durability"], checkpoint_every=init["checkpoint_every"],
            checkpoint_updates=init["checkpoint_updates"], combine=init["combine"], grace=init["grace"],
            delivery_delay=init["delivery_delay"], shard=init["shard"],
        )
        self.service._open_trainer_side()
        self.published = self.service.holder.n_published
        #: durability "memory": the records received and not yet stored (the next compaction stores them)
        self.decision_rows: list[Any] = []
        self.outcome_rows: list[tuple[str, int, float, int, bool]] = []

    def handle(self, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> Message:
        svc = self.service
        trainer = svc.trainer
        for event_id, ts, x, arm in zip(header.get("decision_ids", ()), arrays.get("decision_us", ()),
                                        arrays.get("contexts", ()), header.get("decision_arms", ()), strict=True):
            trainer.add_decision(event_id, int(ts), x.copy(), arm)
        for event_id, ts, reward in zip(header.get("outcome_ids", ()), arrays.get("outcome_us", ()),
                                        arrays.get("rewards", ()), strict=True):
            trainer.add_outcome(event_id, int(ts), float(reward))
        rows, outcomes = records_from_message(header, arrays, svc.n_features)
        self.decision_rows += rows
        self.outcome_rows += outcomes
        kind = header["kind"]
        result: Any = None
        if kind in ("compact", "close"):
            svc._compact_files([Path(p) for p in header.get("decision_paths", ())],
                               [Path(p) for p in header.get("outcome_paths", ())])
            if self.decision_rows:
                svc._store_decisions(self.decision_rows)
            svc._store_outcomes(self.outcome_rows)
            self.decision_rows, self.outcome_rows = [], []
        if kind == "step":
            trainer.step()
        elif kind == "add_arm":
            result = svc._add_arm(header["name"], float(header["value"]))
        elif kind == "retire_arm":
            result = svc._retire_arm(header["name"])
        elif kind == "checkpoint":
            result = svc._checkpoint()
        elif kind == "close":
            svc._close_trainer_side()
        elif kind not in ("batch", "compact"):
            raise ValueError(f"unknown message kind {kind!r}")
        reply: dict[str, Any] = {
            "result": result, "n_pending": trainer.n_pending,
            "n_applied": trainer.n_applied, "n_steps": trainer.n_steps, "last_checkpoint": trainer.last_checkpoint,
            "rejected_counts": svc.rejected_counts, "n_journal_bad_lines": svc.n_journal_bad_lines,
        }
        reply_arrays: dict[str, np.ndarray] = {}
        if svc.holder.n_published != self.published:
            self.published = svc.holder.n_published
            reply["snapshot"], reply_arrays = policy_state(svc.holder.policy)
        return reply, reply_arrays


def _watch_parent(parent: int) -> None:
    while True:
        if os.getppid() != parent:  # re-parented: the service died (kill -9); stop writing at once
            os._exit(1)
        time.sleep(0.05)


def main() -> int:
    """The child's loop: read a message, handle it, reply; exit on end of input."""
    parent = os.getppid()
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    # Ctrl-C in a terminal and systemd's stop signal the whole process group: the service then closes cleanly, and
    # its close needs this process for the last compaction, step and checkpoint
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    stdin = sys.stdin.buffer
    # the frames get the pipe to themselves: anything else writing to fd 1 (a print, a C library) goes to stderr
    stdout = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    worker: _Worker | None = None
    while True:
        try:
            header, arrays = read_message(stdin)
        except EOFError:
            return 0
        try:
            if header["kind"] == "init":
                worker = _Worker(header)
                reply: Message = ({"pid": os.getpid()}, {})
            else:
                assert worker is not None, "the first message must be init"
                reply = worker.handle(header, arrays)
        except Exception as exc:  # reported to the service (its last_error); the next message may succeed
            reply = ({"error": str(exc) or type(exc).__name__, "error_type": type(exc).__name__}, {})
        write_message(stdout, *reply)
        if header.get("kind") == "close":
            return 0


if __name__ == "__main__":
    sys.exit(main())
