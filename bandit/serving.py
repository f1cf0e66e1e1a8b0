"""In-process serving: read-only snapshots for requests, a durable decision/outcome journal, a background trainer.

The reusable parts of a Rank/Reward service (``upsell-bandit serve`` is a thin HTTP layer over them):

* :class:`SnapshotHolder` -- request threads read :attr:`SnapshotHolder.snapshot` (one attribute read, no lock);
  the trainer updates the live policy and :meth:`~SnapshotHolder.publish` swaps in a new read-only snapshot (one
  reference assignment, atomic).
* :class:`Journal` -- an append-only write-ahead file of JSON lines with three durability modes (see below). An
  acknowledged decision or outcome is in the journal before the caller returns; the trainer compacts closed journal
  segments into the Parquet decision log (:class:`bandit.DecisionLog`) and Parquet outcome parts, then deletes them.
* :class:`Trainer` -- applies outcomes to the live policy through the attribution window with
  ``policy.update_from_log`` (the same code as offline learning: :func:`bandit.attribution.apply_log`), publishes a
  new snapshot after each update and checkpoints the policy file atomically every N seconds / M updates.
* :class:`DecisionService` -- all of it wired together on a log directory: ``rank`` / ``reward`` (sync, or
  ``rank_async`` / ``reward_async`` for an asyncio server), admin operations run on the trainer thread, and
  recovery on start.

Durability modes (``durability=``)
----------------------------------
``"fsync"``
    Group commit: concurrent ``rank`` / ``reward`` calls queue their journal lines; one commit thread writes the
    queued group and ``fsync``\\ s it, then releases every caller of the group. An acknowledged record survives a
    process crash and a power loss. Costs one fsync per group (a few ms on a typical SSD): with one request in
    flight each request waits for its own fsync; under concurrency the groups grow and the cost is shared.
``"write"``
    Each record is written to the journal file (``os.write``, the OS page cache) before the call returns. Survives
    ``kill -9`` and any crash of the process, not a power loss or kernel crash. About a microsecond per record.
``"memory"``
    Records are kept in memory until the next compaction (every ``compact_every`` seconds): the cheapest, but a
    crash loses the decisions and outcomes acknowledged since the last compaction.

Log directory layout
--------------------
``decisions/arms-<K>/``
    The decision log (Parquet parts, :mod:`offline_eval.schema`) for the policy's first K arms: a log is bound to
    one arm list, so adding an arm starts ``arms-<K+1>/``. Read one with :func:`bandit.decision_log.read_decision_log`
    or ``upsell-bandit evaluate --logs DIR/decisions/arms-<K>``.
``outcomes/``
    Every reward received, as Parquet parts (``event_id``, ``timestamp``, ``reward``, ``received_at``,
    ``client_timestamp``): the outcomes table of ``--outcomes``.
``journal/``
    The write-ahead segments (``decisions-*.jsonl``, ``outcomes-*.jsonl``) not yet compacted.
``rejected.jsonl``
    One JSON line per outcome that did not count (an unknown event id; late: after the window, before the decision,
    or for a decision already settled) and per decision row the attribution rules rejected, with the reason.

Recovery
--------
On start the policy file (the last checkpoint; it carries the ledger of settled decisions,
:class:`bandit.attribution.AppliedEvents`) is loaded, journal segments left by a crash are compacted (records
already in the Parquet logs are skipped), and every logged decision the ledger does not cover becomes pending
again with its outcomes. Decisions applied after the last checkpoint are therefore applied again -- to the
checkpointed state, which never saw them -- and decisions the checkpoint settled are skipped: no outcome counts
twice, and the recovered policy equals one rebuilt from the initial policy file, the decision log and the outcomes
(``policy.update_from_log(decisions, outcomes, window)``), provided every reward reached the service within
``delivery_delay`` of its timestamp (a later one finds its decision settled and is reported as late, where a
rebuild with hindsight would count it).

A restart reads only what it can need: the decision-log parts with decisions after the checkpoint's watermark (from
the parts' footers; everything at or before it is settled), and of the outcome parts, batch by batch, those whose
names (``part-<ns>-<tag>-<stamped min>_<max>_<received min>_<max>.parquet``, microseconds) and row groups whose
footer statistics show rewards received within the dedupe span (their keys: a retried delivery stays a duplicate
across a restart) or stamped after the watermark (only those can count for a pending decision).

Reward dedupe: a delivery is ``(event_id, reward, timestamp or None)``; the same delivery again within the attribution
window + ``delivery_delay`` + 1 day of its receipt is a ``"duplicate"``. The keys are 128-bit hashes in flat arrays
(:class:`bandit._ledger.DeliveryKeys`, about 50 bytes a reward held).

Journal records are JSON objects; float arrays (context, probabilities) are stored as the hex of their
little-endian float64 bytes -- exact, and several times cheaper to write than decimal text. Nothing is pickled.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import json
import logging
import math
import os
import re
import threading
import time
import uuid
import warnings
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import bandit
from bandit._fs import fsync_dir
from bandit._ledger import DeliveryKey, DeliveryKeys, delivery_key
from bandit._timestamps import utc_us, wall_clock_us
from bandit._validation import one_line
from bandit.attribution import AppliedEvents, UpdateReport, _as_duration, _as_window
from bandit.decision import BatchDecision, Decision
from bandit.decision_log import _MAX_US as _LOG_MAX_US
from bandit.decision_log import _MIN_US as _LOG_MIN_US
from bandit.decision_log import DecisionLog, read_decision_log
from offline_eval.schema import (
    CONTEXT,
    MAX_EVENT_ID_LENGTH,
    TIMESTAMP,
    TIMESTAMP_TYPE,
    DecisionLogWarning,
    arms_from_schema,
    check_event_ids,
    outcome_schema,
)

__all__ = [
    "DURABILITY_MODES",
    "DecisionService",
    "Journal",
    "SnapshotHolder",
    "Trainer",
    "check_shard",
    "check_token",
]

Durability = Literal["fsync", "write", "memory"]
#: The journal's durability modes (see the module docstring).
DURABILITY_MODES: tuple[str, ...] = ("fsync", "write", "memory")
#: How far ahead of the server's clock a reward's timestamp may be (clock skew); later ones are refused.
MAX_CLOCK_SKEW_US = 5 * 60_000_000
_SEGMENT = re.compile(r"(?P<prefix>[a-z]+)-(?P<seq>\d{8})\.jsonl")
#: Journal records converted per slice at compaction, and the pause between slices (seconds) that lets the request
#: threads take the GIL.
_COMPACT_SLICE = 2048
_COMPACT_PAUSE = 0.0005
#: Decisions per message to a trainer process at most (a bounded frame; a larger backlog goes in several).
_FORWARD_ROWS = 100_000
#: Where trainer failures are reported (the service's ``/healthz`` shows their message only to the token holder).
_log = logging.getLogger("bandit.serving")
_OUTCOME_FIELDS = [pa.field("received_at", TIMESTAMP_TYPE, nullable=False),
                   pa.field("client_timestamp", pa.bool_(), nullable=False)]


def _seconds(value: float | timedelta | str, name: str, *, allow_zero: bool = False) -> float:
    """A duration in seconds from a number of seconds, a timedelta or a string like ``"60s"``."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a duration (seconds, timedelta or '60s'), got a bool")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        try:
            seconds = pd.Timedelta(value).total_seconds()
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a duration such as 60, '60s' or '5min', got {value!r}") from None
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        raise ValueError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} duration, got {value!r}")
    return seconds


def check_shard(shard: Any) -> str | None:
    """``shard`` (a service's name among several serving copies of one policy file) if it is None or a valid
    name -- 1 to 32 characters of ``[A-Za-z0-9_.-]`` starting with a letter or digit
    (:data:`bandit.state.SHARD_NAME`); otherwise a ``TypeError`` / ``ValueError`` naming ``shard``.

    >>> check_shard("eu-west.1"), check_shard(None)
    ('eu-west.1', None)
    """
    if shard is None:
        return None
    if not isinstance(shard, str):
        raise TypeError(f"shard must be a string or None, got {type(shard).__name__}")
    if not bandit.state.SHARD_NAME.fullmatch(shard):
        raise ValueError(f"shard must be 1 to 32 characters of [A-Za-z0-9_.-] starting with a letter or digit, got "
                         f"{shard[:40]!r}")
    return shard


def _assign_shard(policy: Any, shard: str) -> None:
    """Make ``shard`` part of the live policy's instance id, so of every ``policy_version``: ``<id>@<shard>``, where
    ``<id>`` is the id before any earlier ``@shard`` (the revision, and so the sequence, is kept)."""
    policy._uid = f"{policy._uid.partition('@')[0]}@{shard}"
    policy._version_prefix = f"{type(policy).__name__}-{policy._uid}-"
    policy._version = None


def check_token(given: str | None, expected: str | None) -> bool:
    """Whether a presented bearer token matches the configured one, compared in constant time.

    No token configured (``expected`` None) accepts everything; a configured token rejects a missing one.

    >>> check_token("s3cret", "s3cret"), check_token("guess", "s3cret"), check_token(None, "s3cret")
    (True, False, False)
    """
    if expected is None:
        return True
    if given is None:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


# ----------------------------------------------------------------------------------------------------------------
# snapshots
# ----------------------------------------------------------------------------------------------------------------


class SnapshotHolder:
    """The live policy (trainer only) and the read-only snapshot every request uses.

    Request threads read :attr:`snapshot` -- a plain attribute read, never blocked by the trainer -- and use that
    one object for the whole request. The trainer mutates :attr:`policy` and calls :meth:`publish`, which builds a
    new snapshot and installs it with one reference assignment (atomic in Python): a request sees the old or the
    new state, never a mix.

    Parameters
    ----------
    policy : bandit policy
        The live (writable) policy.

    Examples
    --------
    >>> from bandit import LinUCB
    >>> holder = SnapshotHolder(LinUCB(["solo", "duo"], n_features=1, seed=0))
    >>> before = holder.snapshot
    >>> holder.policy.update([1.0], "duo", 1.0)
    >>> holder.snapshot is before, holder.publish() is holder.snapshot, holder.snapshot.n_updates
    (True, True, 1)
    """

    def __init__(self, policy: Any) -> None:
        if getattr(policy, "read_only", False):
            raise TypeError("policy must be a live policy, got a read-only snapshot")
        if not callable(getattr(policy, "snapshot", None)):
            raise TypeError(f"policy must be a bandit policy with snapshot(), got {type(policy).__name__}")
        self._policy = policy
        self.snapshot: Any = None
        self.n_published = 0
        self.publish()

    @property
    def policy(self) -> Any:
        """The live policy; only the trainer thread may touch it."""
        return self._policy

    def publish(self) -> Any:
        """Snapshot the live policy and serve it from the next request on; returns the new snapshot.

        The snapshot gets an empty ledger of settled decisions: only learning reads the ledger (a read-only snapshot
        cannot learn), and copying it -- one attribution window plus grace of event ids -- held the GIL, and so
        stalled every request, for ~40 ms per 200,000 ids at each publish.
        """
        policy = self._policy
        ledger = policy._applied_event_ids
        policy._applied_event_ids = AppliedEvents()
        try:
            snap = policy.snapshot()
        finally:
            policy._applied_event_ids = ledger
        self.snapshot = snap
        self.n_published += 1
        return snap

    def replace(self, policy: Any) -> Any:
        """Make ``policy`` the live policy and publish it (a service whose trainer runs in another process rebuilds
        its policy from the trainer's state); returns the new snapshot."""
        self._policy = policy
        return self.publish()


# ----------------------------------------------------------------------------------------------------------------
# journal
# ----------------------------------------------------------------------------------------------------------------


class _Segment:
    """One journal file (or, in memory mode, one in-memory batch) and the records committed to it."""

    __slots__ = ("fd", "path", "records")

    def __init__(self, path: Path | None, fd: int | None) -> None:
        self.path = path
        self.fd = fd
        self.records: list[Any] = []


def parse_segment(path: Path) -> tuple[list[Any], int]:
    """The records of a journal segment file and the number of lines that are not valid JSON (a torn last write)."""
    records = []
    n_bad = 0
    with open(path, "rb") as fh:
        for line in fh:
            try:
                records.append(json.loads(line))
            except ValueError:
                n_bad += 1
    return records, n_bad


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class Journal:
    """Append-only write-ahead journal of JSON lines, one file per segment, with group commit.

    Thread-safe. A record is a JSON-encodable object; :meth:`append` (modes ``"write"`` and ``"memory"``) returns
    once it is durable in that mode, :meth:`append_fsync` (mode ``"fsync"``) hands it to the commit thread and calls
    ``done(error)`` once the group holding it is written and fsynced. :meth:`rotate` closes the current segment and
    returns the closed ones, each quiescent (no write in flight) with its records in commit order; the owner stores
    them elsewhere and then calls :meth:`remove`. Segments left by an earlier process are listed on opening
    (:attr:`recovered`) and parsed one at a time by :meth:`read_segment` (so recovering a long outage's segments holds
    one of them in memory, not all); a line that is not valid JSON (a torn final write) is skipped and counted in
    :attr:`n_bad_lines`.

    Parameters
    ----------
    directory : path
        Where the segment files ``<prefix>-<seq>.jsonl`` live (created).
    prefix : str
        Lower-case letters naming the record kind.
    durability : {"fsync", "write", "memory"}
        See the module docstring.
    """

    def __init__(self, directory: str | os.PathLike[str], prefix: str, durability: Durability) -> None:
        if durability not in DURABILITY_MODES:
            raise ValueError(f"durability must be one of {list(DURABILITY_MODES)}, got {durability!r}")
        if not re.fullmatch(r"[a-z]+", prefix):
            raise ValueError(f"prefix must be lower-case letters, got {prefix!r}")
        self.durability = durability
        self._dir = Path(directory)
        self._dir.mkdir(parents=True, exist_ok=True)
        self._prefix = prefix
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._io_lock = threading.Lock()
        self._queue: list[tuple[bytes, Any, Callable[[BaseException | None], None]]] = []
        self._closed = False
        self.n_bad_lines = 0
        found = sorted(
            (int(m["seq"]), self._dir / name)
            for name in os.listdir(self._dir)
            if (m := _SEGMENT.fullmatch(name)) and m["prefix"] == prefix
        )
        self._seq = found[-1][0] + 1 if found else 0
        #: The segment files an earlier process left behind, oldest first (their records: :meth:`read_segment`).
        self.recovered: list[Path] = [path for _, path in found]
        self._segment = self._open_segment()
        self._committer: threading.Thread | None = None
        if durability == "fsync":
            self._committer = threading.Thread(target=self._commit_loop, name=f"journal-{prefix}", daemon=True)
            self._committer.start()

    def read_segment(self, path: Path) -> list[Any]:
        """The records of the segment file ``path`` (one of :attr:`recovered`), parsed now; its lines that are not
        valid JSON are skipped and counted in :attr:`n_bad_lines`."""
        records, n_bad = parse_segment(path)
        self.n_bad_lines += n_bad
        return records

    def _open_segment(self) -> _Segment:
        if self.durability == "memory":
            return _Segment(None, None)
        path = self._dir / f"{self._prefix}-{self._seq:08d}.jsonl"
        self._seq += 1
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        fsync_dir(self._dir)  # the segment's name survives a power loss (fsync mode)
        return _Segment(path, fd)

    @property
    def n_open_records(self) -> int:
        """Records committed to the current (not yet rotated) segment."""
        return len(self._segment.records)

    def append(self, line: bytes, record: Any) -> None:
        """Commit one record (modes ``"write"``: written to the file; ``"memory"``: kept) before returning.

        ``line`` is the record's JSON text followed by ``b"\\n"``.
        """
        with self._lock:
            if self._closed:
                raise RuntimeError("the journal is closed")
            seg = self._segment
            if seg.fd is not None:
                _write_all(seg.fd, line)
            seg.records.append(record)

    def append_fsync(self, line: bytes, record: Any, done: Callable[[BaseException | None], None]) -> None:
        """Queue one record for the next fsynced group (mode ``"fsync"``); ``done(None)`` runs on the commit thread
        once it is durable, ``done(error)`` if writing failed."""
        with self._cond:
            if self._closed:
                raise RuntimeError("the journal is closed")
            self._queue.append((line, record, done))
            self._cond.notify()

    def _commit_loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return
                group, self._queue = self._queue, []
                seg = self._segment
                self._io_lock.acquire()  # taken before the segment can be rotated away
            error: BaseException | None = None
            try:
                assert seg.fd is not None
                _write_all(seg.fd, b"".join(line for line, _, _ in group))
                os.fsync(seg.fd)
                seg.records.extend(record for _, record, _ in group)
            except BaseException as exc:  # reported to every caller of the group
                error = exc
            finally:
                self._io_lock.release()
            for _, _, done in group:
                done(error)

    def rotate(self) -> list[_Segment]:
        """Close the current segment (a new one takes the appends) and return it, quiescent, if it holds records."""
        with self._lock:
            old = self._segment
            if not old.records and old.path is not None and not self._closed:
                return []
            self._segment = self._open_segment() if not self._closed else _Segment(None, None)
        with self._io_lock:  # a group already writing to the old segment finishes first
            pass
        if old.fd is not None:
            os.close(old.fd)
            old.fd = None
        if not old.records and old.path is not None:
            self._unlink(old.path)
            return []
        return [old] if old.records else []

    def remove(self, path: Path | None) -> None:
        """Delete a rotated or recovered segment file once its records are stored elsewhere."""
        if path is not None:
            self._unlink(path)

    def _unlink(self, path: Path) -> None:
        _unlink_durably(path)

    def close(self) -> list[_Segment]:
        """Stop accepting records, finish the queued group and return the last segment (see :meth:`rotate`)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._committer is not None:
            self._committer.join()
        return self.rotate()


class _AsyncDone:
    """Resolves asyncio futures from the commit thread, one event-loop wake-up per group."""

    __slots__ = ("futures", "loop", "scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.futures: list[tuple[asyncio.Future[None], BaseException | None]] = []
        self.scheduled = False


# ----------------------------------------------------------------------------------------------------------------
# trainer
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StepResult:
    """What one :meth:`Trainer.step` did: the update report (None when nothing was due) and whether it saved."""

    report: UpdateReport | None
    checkpointed: bool


class Trainer:
    """Learns from delayed outcomes on the live policy of a :class:`SnapshotHolder`, checkpoints, publishes.

    Decisions (:meth:`add_decision`) and outcomes (:meth:`add_outcome`) may be added from any thread; everything
    else runs on one thread, the one that calls :meth:`step` (in :class:`DecisionService`, its trainer thread).
    Each :meth:`step`
    passes the pending decisions that can resolve now -- those with an outcome, and those whose attribution window
    has closed -- with their outcomes to ``policy.update_from_log`` (:func:`bandit.attribution.apply_log`: the
    attribution rules and the ledger of settled decisions that make a decision count exactly once), publishes a
    new snapshot if anything was learned, and saves the policy (atomically) when ``checkpoint_every`` seconds or
    ``checkpoint_updates`` updates have passed since the last save.

    Pending decisions and their outcomes are held in memory: the traffic of one attribution window.

    Parameters
    ----------
    holder : SnapshotHolder
    attribution_window : timedelta or str
        How long after a decision an outcome counts, e.g. ``"1D"``.
    checkpoint_path : path, optional
        The policy file to save to (None: never save).
    checkpoint_every : seconds, timedelta or str, default 60
    checkpoint_updates : int, optional
        Also save once this many decisions were applied since the last save.
    combine : {"sum", "max", "first"}
        How several outcomes of a decision make its reward (see :func:`bandit.attribution.resolve_rewards`).
    grace : timedelta or str, default "1min"
        See :func:`bandit.attribution.apply_log`: the ledger of settled decisions keeps the ids of one attribution
        window plus ``grace`` (plus ``delivery_delay``) of traffic, and every step and snapshot touches it. Here
        decisions reach the trainer (:meth:`add_decision`) within milliseconds of their timestamp, and a decision is
        resolved at the latest once its window has closed, so a short grace is enough; ``apply_log``'s default of
        one day, meant for decision logs that land late, would hold a whole day of ids.
    delivery_delay : seconds, timedelta or str, default 2
        How long an outcome may take to reach the service after its timestamp: with the wall clock, a step resolves
        at ``now - delivery_delay``, so a decision expires to reward 0 only once outcomes stamped inside its window
        have had that long to arrive. Outcomes stamped after that instant wait for a later step.
    on_report : callable, optional
        ``on_report(report)`` after each update (e.g. metrics, the rejected-records file).
    clock : callable, optional
        ``clock()`` -> now in microseconds since the epoch (UTC); default the wall clock. A simulation passes its
        simulated clock.
    """

    def __init__(
        self,
        holder: SnapshotHolder,
        *,
        attribution_window: timedelta | str,
        checkpoint_path: str | os.PathLike[str] | None = None,
        checkpoint_every: float | timedelta | str = 60.0,
        checkpoint_updates: int | None = None,
        combine: Literal["sum", "max", "first"] = "sum",
        grace: timedelta | str = "1min",
        delivery_delay: float | timedelta | str = 2.0,
        on_report: Callable[[UpdateReport], None] | None = None,
        clock: Callable[[], int] | None = None,
    ) -> None:
        if not isinstance(holder, SnapshotHolder):
            raise TypeError(f"holder must be a SnapshotHolder, got {type(holder).__name__}")
        window = _as_window(attribution_window)
        if checkpoint_updates is not None and (isinstance(checkpoint_updates, bool) or
                                               not isinstance(checkpoint_updates, int) or checkpoint_updates < 1):
            raise ValueError(f"checkpoint_updates must be a positive int or None, got {checkpoint_updates!r}")
        self.holder = holder
        self.attribution_window = window
        self._window_us = window // pd.Timedelta(microseconds=1)
        self.checkpoint_path = None if checkpoint_path is None else Path(checkpoint_path)
        self.checkpoint_every = _seconds(checkpoint_every, "checkpoint_every")
        self.checkpoint_updates = checkpoint_updates
        self.combine = combine
        self.grace = grace
        self._delay_us = round(_seconds(delivery_delay, "delivery_delay", allow_zero=True) * 1e6)
        self.on_report = on_report
        self._clock = wall_clock_us if clock is None else clock
        self._decision_inbox: deque[tuple[str, int, np.ndarray, str]] = deque()
        self._outcome_inbox: deque[tuple[str, int, float]] = deque()
        #: event_id -> (decision time us, context, arm name), oldest first
        self._pending: OrderedDict[str, tuple[int, np.ndarray, str]] = OrderedDict()
        self._outcomes: dict[str, list[tuple[int, float]]] = {}
        self._orphans: list[tuple[str, int, float]] = []
        self.n_applied = 0
        self.n_steps = 0
        self.last_checkpoint = time.time()
        self.last_checkpoint_version: str | None = None
        self._since_checkpoint = 0
        self._dirty = False
        self.reports: list[UpdateReport] = []
        self.keep_reports = False

    # --- inputs (any thread) ---------------------------------------------------------------------------------

    def add_decision(self, event_id: str, timestamp_us: int, context: np.ndarray, arm: str) -> None:
        """Make a logged decision pending (call after it is durable in the log)."""
        self._decision_inbox.append((event_id, timestamp_us, context, arm))

    def add_outcome(self, event_id: str, timestamp_us: int, reward: float) -> None:
        """Hand over one outcome (call after it is durable in the outcome log)."""
        self._outcome_inbox.append((event_id, timestamp_us, reward))

    @property
    def n_pending(self) -> int:
        """Decisions waiting for an outcome or for their window to close (including not yet drained ones)."""
        return len(self._pending) + len(self._decision_inbox)

    def pending_state(self, event_id: str) -> bool:
        """Whether ``event_id`` is a pending decision this trainer knows (a cheap, racy read for reporting)."""
        return event_id in self._pending

    # --- the trainer thread ----------------------------------------------------------------------------------

    def _drain(self) -> None:
        # outcomes first: an outcome taken now was added after its decision, which is then already in its inbox
        outcomes = [self._outcome_inbox.popleft() for _ in range(len(self._outcome_inbox))]
        while self._decision_inbox:
            event_id, ts, x, arm = self._decision_inbox.popleft()
            self._pending[event_id] = (ts, x, arm)
        for event_id, ts, reward in outcomes:
            if event_id in self._pending:
                self._outcomes.setdefault(event_id, []).append((ts, reward))
            else:
                self._orphans.append((event_id, ts, reward))

    def step(self, now: Any = None) -> StepResult:
        """Apply what can be resolved at ``now`` (default: wall clock minus ``delivery_delay``); publish; save if due.

        Returns
        -------
        StepResult
        """
        now_us = self._clock() - self._delay_us if now is None else utc_us(now, "now")
        self._drain()
        self.n_steps += 1
        policy = self.holder.policy
        ledger = policy._applied_event_ids
        expiry = now_us - self._window_us
        candidates: dict[str, None] = {}
        for event_id, (ts, _, _) in self._pending.items():  # oldest first: stop at the first still-open window
            if ts >= expiry:
                break
            candidates[event_id] = None
        for event_id, outs in self._outcomes.items():
            if any(t <= now_us for t, _ in outs) and self._pending[event_id][0] <= now_us:
                candidates[event_id] = None
        report = None
        if candidates or any(o[1] <= now_us for o in self._orphans):
            ids = list(candidates)
            rows = [self._pending[e] for e in ids]
            decisions = pd.DataFrame({
                "event_id": pd.Series(ids, dtype=object),
                "timestamp": pd.to_datetime(np.array([r[0] for r in rows], dtype=np.int64), unit="us", utc=True),
                "context": pd.Series([r[1] for r in rows], dtype=object),
                "action": np.zeros(len(rows), dtype=np.int64),  # apply_log maps actions by name
                "action_name": pd.Series([r[2] for r in rows], dtype=object),
            })
            out_rows = [(e, t, r) for e in ids for t, r in self._outcomes.get(e, ()) if t <= now_us]
            out_rows += [o for o in self._orphans if o[1] <= now_us]
            outcomes = pd.DataFrame({
                "event_id": pd.Series([o[0] for o in out_rows], dtype=object),
                "timestamp": pd.to_datetime(np.array([o[1] for o in out_rows], dtype=np.int64), unit="us", utc=True),
                "reward": np.array([o[2] for o in out_rows], dtype=np.float64),
            })
            report = policy.update_from_log(
                decisions, outcomes, self.attribution_window, now=pd.Timestamp(now_us, unit="us", tz="UTC"),
                combine=self.combine, grace=self.grace,
            )
            self._orphans = [o for o in self._orphans if o[1] > now_us]
            late = set(report.late_outcomes["event_id"].tolist()) if len(report.late_outcomes) else set()
            for event_id, (ts, _, _) in zip(ids, rows, strict=True):
                if ledger.is_settled(event_id, ts):
                    del self._pending[event_id]
                    # outcomes stamped after ``now`` wait, then are reported as late (the decision is settled)
                    self._orphans += [(event_id, t, r) for t, r in self._outcomes.pop(event_id, ()) if t > now_us]
                elif event_id in late:  # reported once; the decision waits for other outcomes or its expiry
                    kept = [(t, r) for t, r in self._outcomes.get(event_id, ()) if t > now_us]
                    if kept:
                        self._outcomes[event_id] = kept
                    else:
                        self._outcomes.pop(event_id, None)
            self.n_applied += report.n_applied
            if report.n_applied:
                self._since_checkpoint += report.n_applied
                self._dirty = True
                self.holder.publish()
            if self.keep_reports:
                self.reports.append(report)
            if self.on_report is not None:
                self.on_report(report)
        saved = False
        if self._dirty and self.checkpoint_path is not None and (
            time.time() - self.last_checkpoint >= self.checkpoint_every
            or (self.checkpoint_updates is not None and self._since_checkpoint >= self.checkpoint_updates)
        ):
            self.checkpoint()
            saved = True
        return StepResult(report, saved)

    def checkpoint(self) -> Path | None:
        """Save the live policy (with its ledger) atomically to ``checkpoint_path`` now; trainer thread only."""
        if self.checkpoint_path is None:
            return None
        policy = self.holder.policy
        path = policy.save(self.checkpoint_path)
        self.last_checkpoint = time.time()
        self.last_checkpoint_version = policy.policy_version
        self._since_checkpoint = 0
        self._dirty = False
        return Path(path)


# ----------------------------------------------------------------------------------------------------------------
# the service
# ----------------------------------------------------------------------------------------------------------------


class CheckpointError(RuntimeError):
    """An admin change (add or retire a plan) was undone because the policy file could not be saved with it."""


class RequestError(ValueError):
    """A bad rank/reward input: ``field`` names the offending field of the request (``str(error)`` says why)."""

    def __init__(self, field: str, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.field = field
        self.status = status


@dataclass(frozen=True, slots=True)
class RewardReceipt:
    """The answer to :meth:`DecisionService.reward`.

    ``status``: ``"accepted"`` (stored; it counts if the attribution rules say so when the trainer resolves its
    decision -- a reward for a decision already settled is reported as late), ``"duplicate"`` (the same reward was
    received before: nothing stored) or ``"unknown_event"`` (stored, and reported in ``rejected.jsonl``: this service
    has not ranked that id among its last ``id_window`` decisions).
    """

    event_id: str
    status: str
    timestamp: pd.Timestamp


def _field_of(message: str) -> str:
    for name in ("context", "eligible", "event_id"):
        if message.startswith(name) or f" {name} " in message[:40]:
            return name
    return "body"


class DecisionService:
    """Rank, reward and continuous learning on a log directory: the engine of ``upsell-bandit serve``.

    Start it with :meth:`start` (recovery, then the trainer thread), call :meth:`rank` / :meth:`reward` from any
    number of threads (or :meth:`rank_async` / :meth:`reward_async` from an asyncio server), and :meth:`close` it
    (last compaction and checkpoint). See the module docstring for durability, layout and recovery.

    Parameters
    ----------
    policy_path : path
        The policy file (``policy.save``): loaded at start, then checkpointed over (atomically). The service owns
        it while running; keep a copy of the original if you need it.
    log_dir : path
        The log directory (created).
    attribution_window : timedelta or str
        E.g. ``"1D"``.
    durability : {"fsync", "write", "memory"}, default "fsync"
    feature_names : sequence of str, optional
        The context's feature order, for contexts given as ``{feature: value}``.
    checkpoint_every, checkpoint_updates, combine, grace, delivery_delay
        See :class:`Trainer`.
    train_every : seconds, default 1
        Pause between trainer steps.
    compact_every : seconds, default 30
        How often journal segments are compacted into Parquet parts (also once ``compact_rows`` records wait).
    compact_rows : int, default 50_000
    id_window : int, default 200_000
        How many recent event ids are remembered to refuse a repeated one (409).
    clock : callable, optional
        The trainer's clock (see :class:`Trainer`); rank and reward timestamps default to the wall clock.
    trainer : {"thread", "process"}, default "thread"
        Where the trainer runs. ``"thread"``: a thread of this process (one process, simplest to embed; its steps
        and compactions share the GIL with the request threads). ``"process"``: a child process
        (:mod:`bandit._trainer_process`) that owns the live policy, the pending decisions, the Parquet logs and the
        policy file; this process journals, decides from snapshots the child sends back after each step, and
        forwards decisions and outcomes once per ``train_every``. Same learning, same files, same recovery; the
        request path no longer waits for trainer work (measured in ``bench/serve_bench.py``). Needs the wall clock.
    shard : str, optional
        This service's name among several services started from copies of one policy file (see
        :func:`check_shard`). ``policy_version`` is the policy's class, instance id and revision
        (``LinUCB-ab12cd34-57``), and the copies share the id, so their logs would name different states alike;
        with a shard the id becomes ``<id>@<shard>`` (``LinUCB-ab12cd34@eu-1-57``) in every decision, snapshot and
        checkpoint, so merged shard logs tell the states apart, while a restart of the shard (same name, its own
        checkpoint) continues its sequence. A shard name replaces an earlier one in the id. Default None: the
        versions are those of the policy file, as they are.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from bandit import LinUCB
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> _ = LinUCB(["solo", "duo"], n_features=2, exploration_floor=0.1, seed=0).save(tmp / "policy.zip")
    >>> service = DecisionService(tmp / "policy.zip", tmp / "logs", attribution_window="1h", durability="write",
    ...                           feature_names=["tenure", "usage"]).start()
    >>> d = service.rank({"tenure": 1.0, "usage": 0.5}, event_id="req-1")
    >>> d.arm in ("solo", "duo"), round(float(d.probabilities.sum()), 6)
    (True, 1.0)
    >>> service.reward("req-1", 1.0).status
    'accepted'
    >>> service.close()
    >>> len(read_decision_log(tmp / "logs" / "decisions" / "arms-2"))
    1
    """

    def __init__(
        self,
        policy_path: str | os.PathLike[str],
        log_dir: str | os.PathLike[str],
        *,
        attribution_window: timedelta | str,
        durability: Durability = "fsync",
        feature_names: Sequence[str] | None = None,
        checkpoint_every: float | timedelta | str = 60.0,
        checkpoint_updates: int | None = None,
        combine: Literal["sum", "max", "first"] = "sum",
        grace: timedelta | str = "1min",
        delivery_delay: float | timedelta | str = 2.0,
        train_every: float | timedelta | str = 1.0,
        compact_every: float | timedelta | str = 30.0,
        compact_rows: int = 50_000,
        id_window: int = 200_000,
        clock: Callable[[], int] | None = None,
        trainer: Literal["thread", "process"] = "thread",
        shard: str | None = None,
    ) -> None:
        self.shard = check_shard(shard)
        if durability not in DURABILITY_MODES:
            raise ValueError(f"durability must be one of {list(DURABILITY_MODES)}, got {durability!r}")
        if trainer not in ("thread", "process"):
            raise ValueError(f"trainer must be 'thread' or 'process', got {trainer!r}")
        if trainer == "process" and clock is not None:
            raise ValueError("trainer='process' needs the wall clock (clock=None): the trainer process steps by it")
        self.trainer_mode = trainer
        self.policy_path = Path(policy_path)
        self.log_dir = Path(log_dir)
        self.durability = durability
        policy = bandit.load(self.policy_path)
        if policy.n_features is None:
            raise ValueError(
                f"{self.policy_path}: the policy has no n_features; the service logs a context per decision, so it "
                "serves contextual policies (build it with n_features=...)"
            )
        self.n_features: int = int(policy.n_features)
        if self.shard is not None:
            _assign_shard(policy, self.shard)
        if feature_names is not None:
            names = list(feature_names)
            if len(names) != self.n_features or len(set(names)) != len(names) or not all(
                isinstance(n, str) and n for n in names
            ):
                raise ValueError(
                    f"feature_names must be {self.n_features} distinct non-empty names (the policy's n_features), "
                    f"got {len(names)}: {names[:5]}"
                )
            self.feature_names: list[str] | None = names
            self._feature_index = {n: i for i, n in enumerate(names)}
        else:
            self.feature_names = None
            self._feature_index = {}
        self.holder = SnapshotHolder(policy)
        self._reward_low = float(getattr(policy, "_reward_low", -math.inf))  # e.g. [0, 1] for LogisticTS
        self._reward_high = float(getattr(policy, "_reward_high", math.inf))
        self.trainer = Trainer(
            self.holder, attribution_window=attribution_window, checkpoint_path=self.policy_path,
            checkpoint_every=checkpoint_every, checkpoint_updates=checkpoint_updates, combine=combine, grace=grace,
            delivery_delay=delivery_delay, on_report=self._record_report, clock=clock,
        )
        # what a trainer process is built with (plain JSON: durations in microseconds or seconds)
        self._trainer_init: dict[str, Any] = {
            "policy_path": str(self.policy_path), "log_dir": str(self.log_dir), "durability": durability,
            "attribution_window": f"{self.trainer._window_us}us",
            "grace": f"{_as_duration(grace, 'grace', allow_zero=True).value // 1000}us",
            "checkpoint_every": self.trainer.checkpoint_every, "checkpoint_updates": checkpoint_updates,
            "combine": combine, "delivery_delay": self.trainer._delay_us / 1e6, "shard": self.shard,
        }
        self._remote: Any = None  # the trainer process's handle (trainer="process", once started)
        self._remote_stats: dict[str, Any] = {}
        self._recovery_rejected: dict[str, int] = {}
        self._recovery_bad_lines = 0
        self.train_every = _seconds(train_every, "train_every")
        self.compact_every = _seconds(compact_every, "compact_every")
        self.compact_rows = int(compact_rows)
        self._id_window = int(id_window)
        self._recent_ids: deque[str] = deque()
        self._recent_set: set[str] = set()
        self._ids_lock = threading.Lock()
        #: how long a reward's delivery key is kept for dedupe (window + delivery delay + 1 day), and the keys
        self._dedupe_us = self.trainer._window_us + self.trainer._delay_us + 86_400_000_000
        self._outcome_keys = DeliveryKeys(self._dedupe_us)
        #: delivery keys claimed whose journal write has not ended yet, each with the future a retry of the same
        #: delivery waits on (None until a retry comes): a key is final -- a retry is a duplicate -- once written
        self._unwritten: dict[DeliveryKey, Future[bool] | None] = {}
        self._logs: dict[int, DecisionLog] = {}
        self._commands: deque[tuple[Callable[[], Any], Future[Any]]] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_compaction = time.time()
        self.last_error: BaseException | None = None
        self.n_trainer_errors = 0
        # counters read by /metrics (plain ints: cheap on the request path)
        self.decisions_per_arm: dict[str, int] = {}
        self.n_outcomes_received = 0
        self.n_outcome_duplicates = 0
        self.rejected_counts: dict[str, int] = {}
        self.n_journal_bad_lines = 0
        #: wall seconds spent in trainer steps / journal compactions by the trainer thread (for /metrics)
        self.step_seconds = 0.0
        self.last_step_seconds = 0.0
        self.compaction_seconds = 0.0
        self.n_compactions = 0
        self._rejected_fh: Any = None
        self._lock_fh: _Locks | None = None
        self._decision_journal: Journal | None = None
        self._outcome_journal: Journal | None = None
        self._async_done: dict[int, _AsyncDone] = {}

    # --- lifecycle -------------------------------------------------------------------------------------------

    def start(self, *, thread: bool = True) -> DecisionService:
        """Recover (see the module docstring), then start the trainer thread (``thread=False``: call
        :meth:`run_trainer_once` yourself). Returns self. If it raises, nothing is left running or locked: the
        directory can be started again (by this or another process) once the cause is fixed."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._lock_fh = _lock_service(self.log_dir, self.policy_path)
        try:
            for leftover in bandit.state.stale_temporaries(self.policy_path):  # checkpoints a killed process left
                leftover.unlink(missing_ok=True)
            self._check_logs_fit_policy()
            (self.log_dir / "outcomes").mkdir(exist_ok=True)
            self._rejected_fh = open(self.log_dir / "rejected.jsonl", "ab")
            journal_dir = self.log_dir / "journal"
            self._decision_journal = Journal(journal_dir, "decisions", self.durability)
            self._outcome_journal = Journal(journal_dir, "outcomes", self.durability)
            self._recover()
            # compile (or load from numba's cache) the kernels this policy decides with before the first request
            self.holder.snapshot.choose(np.zeros(self.n_features), event_id="warm-up")
            if self.trainer_mode == "process":
                self._start_trainer_process()
        except BaseException:
            self._abandon_start()
            raise
        if thread:
            self._thread = threading.Thread(target=self._trainer_loop, name="upsell-trainer", daemon=True)
            self._thread.start()
        return self

    def _abandon_start(self) -> None:
        """Undo a failed :meth:`start`: stop the journals' commit threads and the trainer process, close the files,
        release the directory lock. What the journals and logs hold stays on disk for the next start's recovery."""
        for journal in (self._decision_journal, self._outcome_journal):
            if journal is not None:
                journal.close()
        self._decision_journal = self._outcome_journal = None
        for log in self._logs.values():
            with contextlib.suppress(Exception):  # (the error being raised is the one to report)
                log.close()
        self._logs.clear()
        if self._remote is not None:
            self._remote.close()
            self._remote = None
        for fh in (self._rejected_fh, self._lock_fh):
            if fh is not None and not fh.closed:
                fh.close()
        self._rejected_fh = self._lock_fh = None

    def close(self) -> None:
        """Stop the trainer, compact the journals, run a last step and checkpoint (idempotent)."""
        if self._decision_journal is None:
            return
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._run_commands()
        assert self._outcome_journal is not None
        decision_segments = self._decision_journal.close()
        outcome_segments = self._outcome_journal.close()
        if self._remote is not None:
            try:  # the child compacts, steps and checkpoints; if it is gone, the journal files stay for recovery
                self._call_trainer("close", decision_segments, outcome_segments)
            except Exception as exc:
                self._trainer_failed(exc)
                if self.durability == "memory" and not self._remote.alive:
                    # the records exist only here: store them (the policy is not saved: this process's copy has no
                    # ledger of settled decisions; the next start learns them from the log)
                    self._store_segments(decision_segments, outcome_segments)
                    for log in self._logs.values():
                        log.close()
            self._remote.close()
        else:
            self._store_segments(decision_segments, outcome_segments)
            self._close_trainer_side()
        self._decision_journal = None
        if self._lock_fh is not None:
            self._lock_fh.close()  # releases the directory and policy-file locks

    def _close_trainer_side(self) -> None:
        try:
            self.trainer.step()
        except Exception as exc:  # a failing trainer must not lose the logs: its error stays in last_error
            self._trainer_failed(exc)
        self.trainer.checkpoint()
        for log in self._logs.values():
            log.close()
        self._rejected_fh.close()

    # --- the trainer in a process ----------------------------------------------------------------------------

    def _open_trainer_side(self) -> None:
        """Make this (unstarted) service the trainer side of a service whose request side runs in another process
        (:mod:`bandit._trainer_process`): it owns the Parquet logs, the policy file and rejected.jsonl."""
        (self.log_dir / "outcomes").mkdir(parents=True, exist_ok=True)
        self._rejected_fh = open(self.log_dir / "rejected.jsonl", "ab")

    def _start_trainer_process(self) -> None:
        from bandit._trainer_process import TrainerProcess

        # hand over: the Parquet writers and rejected.jsonl to the child, then what recovery left pending
        for log in self._logs.values():
            log.close()
        self._logs.clear()
        self._rejected_fh.close()
        self._recovery_rejected = dict(self.rejected_counts)
        self._recovery_bad_lines = self.n_journal_bad_lines
        trainer = self.trainer
        trainer._drain()
        for event_id, (ts, x, arm) in trainer._pending.items():
            trainer._decision_inbox.append((event_id, ts, x, arm))
        for event_id, outs in trainer._outcomes.items():
            trainer._outcome_inbox.extend((event_id, t, r) for t, r in outs)
        trainer._outcome_inbox.extend(trainer._orphans)
        trainer._pending.clear()
        trainer._outcomes.clear()
        trainer._orphans = []
        keep = () if self._lock_fh is None else self._lock_fh.filenos()  # the child holds the locks while it lives
        self._remote = TrainerProcess(self._trainer_init, keep_fds=keep)
        self._call_trainer("batch")

    def _call_trainer(self, kind: str, decision_segments: Sequence[_Segment] = (),
                      outcome_segments: Sequence[_Segment] = (), **fields: Any) -> Any:
        """Send the trainer process what was decided and received since the last call, with one request (and the
        closed journal segments to compact); apply its reply (counters, a new snapshot); return its result."""
        from bandit._trainer_process import batch_message, records_message

        if not self._remote.alive:  # before anything is taken from the inboxes and journals: it all stays here
            raise RuntimeError(f"the trainer process has exited (status {self._remote.proc.returncode}); requests are "
                               "still served and logged, restart the service to recover")
        trainer = self.trainer
        # outcomes first (as in Trainer._drain): an outcome taken now has its decision in the inbox already
        outcomes = [trainer._outcome_inbox.popleft() for _ in range(len(trainer._outcome_inbox))]
        decisions = [trainer._decision_inbox.popleft() for _ in range(len(trainer._decision_inbox))]
        # a large backlog (e.g. what recovery left pending) goes first, in bounded frames of decisions only; the
        # outcomes follow with the last frame, after every decision they can belong to
        start = 0
        while len(decisions) - start > _FORWARD_ROWS:
            chunk_header, chunk_arrays = batch_message(decisions[start : start + _FORWARD_ROWS], [], self.n_features)
            self._apply_trainer_reply(*self._remote.call({"kind": "batch", **chunk_header}, chunk_arrays))
            start += _FORWARD_ROWS
        header, arrays = batch_message(decisions[start:], outcomes, self.n_features)
        header.update(_segment_paths(decision_segments, outcome_segments))
        if self.durability == "memory":
            # the records exist only here: they travel with every message, the child stores them at compaction
            assert self._decision_journal is not None and self._outcome_journal is not None
            decision_segments = [*decision_segments, *self._decision_journal.rotate()]
            outcome_segments = [*outcome_segments, *self._outcome_journal.rotate()]
            more_header, more_arrays = records_message(
                [r for seg in decision_segments for r in seg.records],
                [_outcome_row(r) for seg in outcome_segments for r in seg.records])
            header.update(more_header)
            arrays.update(more_arrays)
        return self._apply_trainer_reply(*self._remote.call({"kind": kind, **fields, **header}, arrays))

    def _apply_trainer_reply(self, reply: dict[str, Any], state: dict[str, np.ndarray]) -> Any:
        from bandit._trainer_process import policy_from_state

        self._remote_stats = reply
        self.n_journal_bad_lines = self._recovery_bad_lines + reply["n_journal_bad_lines"]
        self.rejected_counts = dict(self._recovery_rejected)
        for reason, n in reply["rejected_counts"].items():
            self.rejected_counts[reason] = self.rejected_counts.get(reason, 0) + n
        if "snapshot" in reply:
            self.holder.replace(policy_from_state(reply["snapshot"], state))
        return reply["result"]

    @property
    def n_pending(self) -> int:
        """Decisions waiting for an outcome or for their window to close."""
        if self._remote is None:
            return self.trainer.n_pending
        return int(self._remote_stats.get("n_pending", 0)) + len(self.trainer._decision_inbox)

    @property
    def n_applied(self) -> int:
        """Decisions the policy learned from since start (an outcome, or the window closing without one)."""
        return self.trainer.n_applied + int(self._remote_stats.get("n_applied", 0))

    @property
    def n_trainer_steps(self) -> int:
        """Trainer steps run since start."""
        return self.trainer.n_steps + int(self._remote_stats.get("n_steps", 0))

    @property
    def last_checkpoint(self) -> float:
        """When the policy file was last saved (seconds since the epoch)."""
        return float(self._remote_stats.get("last_checkpoint", self.trainer.last_checkpoint))

    def __enter__(self) -> DecisionService:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def started(self) -> bool:
        """Whether :meth:`start` has run and :meth:`close` has not."""
        return self._decision_journal is not None

    @property
    def healthy(self) -> bool:
        """False once the trainer thread (or process) has died or its last step failed."""
        alive = self._thread is None or self._thread.is_alive()
        if self._remote is not None:
            alive = alive and self._remote.alive
        return alive and self.last_error is None

    def _trainer_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.train_every)
            self._wake.clear()
            if self._stop.is_set():
                return
            self.run_trainer_once()

    def run_trainer_once(self) -> None:
        """One round of the trainer thread: admin commands, a step, compaction and checkpoint when due. Errors are
        kept in :attr:`last_error` (the service reports itself unhealthy) and the next round retries."""
        try:
            self._run_commands()
            t0 = time.perf_counter()
            if self._remote is None:
                self.trainer.step()
            else:
                self._call_trainer("step")
            t1 = time.perf_counter()
            self.step_seconds += t1 - t0
            self.last_step_seconds = t1 - t0
            if time.time() - self._last_compaction >= self.compact_every or self._journal_backlog() >= self.compact_rows:
                self.compact()
                self.compaction_seconds += time.perf_counter() - t1
                self.n_compactions += 1
            self.last_error = None
        except Exception as exc:
            self._trainer_failed(exc)

    def _trainer_failed(self, exc: Exception) -> None:
        """Keep ``exc`` in :attr:`last_error` (the service is unhealthy until a round succeeds), count it, and log it
        when it differs from the error before it (a failure that repeats every round is logged once)."""
        last = self.last_error
        if last is None or type(last) is not type(exc) or str(last) != str(exc):
            _log.error("trainer round failed (the service reports itself unhealthy until a round succeeds): %s: %s",
                       type(exc).__name__, str(exc)[:2000])
        self.last_error = exc
        self.n_trainer_errors += 1

    def _journal_backlog(self) -> int:
        assert self._decision_journal is not None and self._outcome_journal is not None
        return self._decision_journal.n_open_records + self._outcome_journal.n_open_records

    # --- admin (run on the trainer thread) -----------------------------------------------------------------

    def _run_commands(self) -> None:
        while self._commands:
            fn, fut = self._commands.popleft()
            if fut.set_running_or_notify_cancel():
                try:
                    fut.set_result(fn())
                except BaseException as exc:
                    fut.set_exception(exc)

    def submit(self, fn: Callable[[], Any]) -> Future[Any]:
        """Run ``fn()`` on the trainer thread (the only thread that touches the live policy); returns its future."""
        fut: Future[Any] = Future()
        self._commands.append((fn, fut))
        self._wake.set()
        if self._thread is None:
            self._run_commands()
        return fut

    def _add_arm(self, name: str, value: float) -> dict[str, Any]:
        if self._remote is not None:
            return self._call_trainer("add_arm", name=name, value=value)
        policy = self.holder.policy
        # the file knows the arm before any decision can name it
        index = self._change_durably(f"plan {name!r} was not added", lambda: policy.add_arm(bandit.Arm(name=name,
                                                                                                         value=value)))
        return {"arm": name, "index": index, "policy_version": policy.policy_version}

    def _retire_arm(self, name: str) -> dict[str, Any]:
        if self._remote is not None:
            return self._call_trainer("retire_arm", name=name)
        policy = self.holder.policy
        self._change_durably(f"plan {name!r} was not retired", lambda: policy.remove_arm(name))
        return {"arm": name, "retired": True, "policy_version": policy.policy_version}

    def _change_durably(self, what: str, change: Callable[[], Any]) -> Any:
        """Apply ``change()`` to the live policy and checkpoint it, then publish; returns what ``change`` returned.

        All or nothing: if the checkpoint fails (a full disk, a limit of ``bandit.load``), the live policy gets back
        its exact state from before the change -- rebuilt from its arrays, counters and ledger taken before it
        (``remove_arm`` is no inverse of ``add_arm``: the retired plan keeps its index) -- and :class:`CheckpointError`
        is raised. What the policy learned before stays learned (the next checkpoint saves it), nothing logged is
        touched, and no snapshot ever offered the change. A ``change`` that raises changes nothing itself (the
        policies' contract) and its error is raised as it is.
        """
        from bandit._trainer_process import policy_from_state, policy_state

        policy = self.holder.policy
        meta, arrays = policy_state(policy)  # (without the ledger, which an arm change never touches)
        arrays = {key: array.copy() for key, array in arrays.items()}
        result = change()
        try:
            self.trainer.checkpoint()
        except Exception as exc:
            before = policy_from_state(meta, arrays)
            before._applied_event_ids = policy._applied_event_ids
            self.holder.replace(before)
            # (a save that failed after its rename -- syncing the directory -- left the change in the file: put the
            # file back in line with the live policy if the disk lets us; else the next checkpoint does)
            with contextlib.suppress(Exception):
                self.trainer.checkpoint()
            raise CheckpointError(f"{what}: the policy file could not be saved ({type(exc).__name__}: {exc}); the "
                                  "live policy is unchanged") from exc
        self.holder.publish()
        return result

    def _checkpoint(self) -> dict[str, Any]:
        if self._remote is not None:
            return self._call_trainer("checkpoint")
        self.trainer.step()
        path = self.trainer.checkpoint()
        policy = self.holder.policy
        return {"path": str(path), "policy_version": policy.policy_version, "n_updates": policy.n_updates}

    def add_arm(self, name: str, value: float = 1.0) -> Future[Any]:
        """Add a plan (on the trainer thread; checkpointed before it is served). All or nothing: if the checkpoint
        fails, the future raises :class:`CheckpointError` and the live policy is exactly as before."""
        return self.submit(lambda: self._add_arm(name, value))

    def retire_arm(self, name: str) -> Future[Any]:
        """Retire a plan: never offered again, its history kept (on the trainer thread; checkpointed before it takes
        effect, all or nothing like :meth:`add_arm`)."""
        return self.submit(lambda: self._retire_arm(name))

    def force_checkpoint(self) -> Future[Any]:
        """A trainer step, then save the policy now."""
        return self.submit(self._checkpoint)

    # --- rank -----------------------------------------------------------------------------------------------

    def context_vector(self, context: Any) -> np.ndarray:
        """The (n_features,) float64 context of a request: a list of numbers, or ``{feature: value}`` when
        ``feature_names`` is set. Raises :class:`RequestError` naming the field."""
        if isinstance(context, Mapping):
            if self.feature_names is None:
                raise RequestError("context", "context as an object needs the feature order: start the service "
                                   "with feature names (--features), or send a list")
            missing = [n for n in self.feature_names if n not in context]
            unknown = [k for k in context if k not in self._feature_index]
            if missing or unknown:
                raise RequestError("context", f"context is missing features {missing[:5]} / has unknown features "
                                   f"{[str(k)[:40] for k in unknown[:5]]}; expected {self.feature_names}")
            values = [context[n] for n in self.feature_names]
        else:
            values = context
        try:
            x = np.array(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise RequestError("context", "context must hold numbers") from None
        if x.shape != (self.n_features,):
            raise RequestError("context", f"context has {x.size} values, the policy takes {self.n_features}")
        if not np.isfinite(x).all():
            raise RequestError("context", "context holds NaN or infinite values")
        return x

    def _decide(self, context: Any, eligible: Sequence[str] | None, event_id: str | None,
                timestamp: Any) -> tuple[Decision, np.ndarray, int, bytes]:
        if self._decision_journal is None:
            raise RuntimeError("the service is not started (call start())")
        x = self.context_vector(context)
        if event_id is None:
            event_id = uuid.uuid4().hex
        else:
            try:
                check_event_ids([event_id], "event_id")
            except (TypeError, ValueError) as exc:
                raise RequestError("event_id", str(exc)) from None
        ts = time.time_ns() // 1000 if timestamp is None else utc_us(timestamp, "timestamp")
        snapshot = self.holder.snapshot
        try:
            decision = snapshot.choose(x, eligible=None if eligible is None else list(eligible), event_id=event_id)
        except (TypeError, ValueError) as exc:
            raise RequestError(_field_of(str(exc)), str(exc)) from None
        with self._ids_lock:
            if event_id in self._recent_set:
                raise RequestError("event_id", f"event_id {event_id!r} was already ranked; event ids are unique",
                                   status=409)
            self._remember(event_id)
        assert decision.eligible is not None
        if self.durability == "memory":  # no file: the in-memory record is all there is
            return decision, x, ts, b""
        # float arrays as the hex of their little-endian float64 bytes: exact, and ~10x cheaper than decimal text
        line = json.dumps({
            "e": event_id, "t": ts, "x": x.astype("<f8").tobytes().hex(), "a": decision.index,
            "p": decision.propensity, "q": decision.probabilities.astype("<f8").tobytes().hex(),
            "m": decision.eligible.astype(np.uint8).tobytes().hex(), "v": decision.policy_version,
        }, separators=(",", ":")).encode() + b"\n"
        return decision, x, ts, line

    def _remember(self, event_id: str) -> None:
        self._recent_set.add(event_id)
        self._recent_ids.append(event_id)
        if len(self._recent_ids) > self._id_window:
            self._recent_set.discard(self._recent_ids.popleft())

    def _forget(self, event_id: str) -> None:
        with self._ids_lock:
            self._recent_set.discard(event_id)

    def _decided(self, decision: Decision, x: np.ndarray, ts: int) -> None:
        self.trainer.add_decision(decision.event_id, ts, x, decision.arm)  # type: ignore[arg-type]
        counts = self.decisions_per_arm
        counts[decision.arm] = counts.get(decision.arm, 0) + 1

    def rank(self, context: Any, eligible: Sequence[str] | None = None, event_id: str | None = None,
             timestamp: Any = None) -> Decision:
        """Choose an offer with the current snapshot, log it durably, hand it to the trainer; thread-safe.

        Parameters
        ----------
        context : list of float, shape (n_features,), or mapping of feature name to value
        eligible : sequence of str, optional
            Offers allowed for this request (default: every active plan).
        event_id : str, optional
            Unique id (outcomes are joined on it); default a random UUID.
        timestamp : datetime-like, optional
            Decision time; default now (UTC). For replays and simulations.

        Returns
        -------
        Decision
            Logged (per the durability mode) when this returns.

        Raises
        ------
        RequestError
            A bad input (``field`` names it; ``status`` 409 for an event id already ranked); nothing is logged.
        """
        decision, x, ts, line = self._decide(context, eligible, event_id, timestamp)
        self._commit(self._decision_journal, line, _decision_row(decision, x, ts), decision.event_id)
        self._decided(decision, x, ts)
        return decision

    async def rank_async(self, context: Any, eligible: Sequence[str] | None = None,
                         event_id: str | None = None) -> Decision:
        """:meth:`rank` for an asyncio server: waits for the fsync group without blocking the event loop."""
        decision, x, ts, line = self._decide(context, eligible, event_id, None)
        await self._commit_async(self._decision_journal, line, _decision_row(decision, x, ts), decision.event_id)
        self._decided(decision, x, ts)
        return decision

    def _commit(self, journal: Journal | None, line: bytes, record: Any, event_id: Any) -> None:
        assert journal is not None
        try:
            if journal.durability == "fsync":
                done = threading.Event()
                errors: list[BaseException | None] = []

                def release(error: BaseException | None) -> None:
                    errors.append(error)
                    done.set()

                journal.append_fsync(line, record, release)
                done.wait()
                if errors[0] is not None:
                    raise errors[0]
            else:
                journal.append(line, record)
        except BaseException:
            if event_id is not None:
                self._forget(event_id)
            raise

    async def _commit_async(self, journal: Journal | None, line: bytes, record: Any, event_id: Any) -> None:
        assert journal is not None
        try:
            if journal.durability != "fsync":
                journal.append(line, record)
                return
            loop = asyncio.get_running_loop()
            fut: asyncio.Future[None] = loop.create_future()
            journal.append_fsync(line, record, self._async_resolver(loop, fut))
            await fut
        except BaseException:
            if event_id is not None:
                self._forget(event_id)
            raise

    def _async_resolver(self, loop: asyncio.AbstractEventLoop,
                        fut: asyncio.Future[None]) -> Callable[[BaseException | None], None]:
        """A ``done`` callback for the commit thread that batches the futures of one group into one wake-up."""
        key = id(loop)
        state = self._async_done.get(key)
        if state is None:
            state = self._async_done[key] = _AsyncDone(loop)

        def done(error: BaseException | None) -> None:
            state.futures.append((fut, error))
            if not state.scheduled:
                state.scheduled = True
                loop.call_soon_threadsafe(self._resolve_async, state)

        return done

    @staticmethod
    def _resolve_async(state: _AsyncDone) -> None:
        state.scheduled = False
        futures, state.futures = state.futures, []
        for fut, error in futures:
            if not fut.done():
                if error is None:
                    fut.set_result(None)
                else:
                    fut.set_exception(error)

    # --- reward ---------------------------------------------------------------------------------------------

    def _receive(self, event_id: Any, reward: Any,
                 timestamp: Any) -> tuple[RewardReceipt | None, bytes | None, Any]:
        """Check a reward and claim its delivery key: ``(receipt, journal line or None for a duplicate, record)``, or
        ``(None, None, future)`` while the same delivery's first attempt is still being written (the caller waits for
        the future, then asks again: a duplicate once that write succeeded, its own claim if it failed).

        Only the claim -- the dedupe table (:class:`~bandit._ledger.DeliveryKeys`, the 128-bit key hashed before the
        lock) and the recent-ids set, shared by :meth:`reward` on any thread and :meth:`reward_async` on the event
        loop -- runs under ``_ids_lock``, for a few microseconds (never I/O; the table grows incrementally, a few
        slots per claim), so the event loop waits at most that long for a request thread.
        """
        if self._outcome_journal is None:
            raise RuntimeError("the service is not started (call start())")
        try:
            check_event_ids([event_id], "event_id")
        except (TypeError, ValueError) as exc:
            raise RequestError("event_id", str(exc)) from None
        if isinstance(reward, bool) or not isinstance(reward, int | float) or not math.isfinite(reward):
            raise RequestError("reward", f"reward must be a finite number, got {reward!r}")
        reward = float(reward)
        if not self._reward_low <= reward <= self._reward_high:
            raise RequestError("reward", f"reward must be in [{self._reward_low}, {self._reward_high}] for "
                               f"{type(self.holder.policy).__name__}, got {reward}")
        given = None
        if timestamp is not None:
            try:
                given = utc_us(timestamp, "timestamp")
            except (TypeError, ValueError) as exc:
                raise RequestError("timestamp", str(exc)) from None
        key = delivery_key(event_id, reward, given)
        with self._ids_lock:
            now = time.time_ns() // 1000  # (under the lock: the dedupe table stays in order of arrival)
            if given is not None and given > now + MAX_CLOCK_SKEW_US:
                # it would wait in memory until then: refuse the clock bug now
                raise RequestError("timestamp", f"timestamp {timestamp} is in the future (more than "
                                   f"{MAX_CLOCK_SKEW_US // 60_000_000} minutes ahead of the server's clock)")
            unwritten = self._unwritten
            if key in unwritten:  # its first attempt is being written: not a duplicate yet, and maybe never
                waiter = unwritten[key]
                if waiter is None:
                    waiter = unwritten[key] = Future()
                return None, None, waiter
            duplicate = not self._outcome_keys.claim(key, now)
            if duplicate:
                self.n_outcome_duplicates += 1
            else:
                unwritten[key] = None
                self.n_outcomes_received += 1
                known = event_id in self._recent_set
        ts = now if given is None else given
        stamp = pd.Timestamp(ts, unit="us", tz="UTC")
        if duplicate:
            return RewardReceipt(event_id, "duplicate", stamp), None, None
        line = b"" if self.durability == "memory" else json.dumps(
            {"e": event_id, "t": ts, "r": reward, "c": given is not None, "at": now}, separators=(",", ":")
        ).encode() + b"\n"
        return (RewardReceipt(event_id, "accepted" if known else "unknown_event", stamp), line,
                (event_id, ts, reward, now, given is not None, key))

    def _written(self, record: Any, error: BaseException | None) -> None:
        """End a claimed delivery's journal write: a success makes its key final (a retry is a duplicate) and hands
        the reward to the trainer; a failure gives the key back (a retry is not a duplicate). Either way the retries
        waiting for it go on."""
        key = record[-1]
        with self._ids_lock:
            if error is not None:
                self._outcome_keys.release(key)
                self.n_outcomes_received -= 1
            waiter = self._unwritten.pop(key)
        if waiter is not None:
            waiter.set_result(error is None)
        if error is None:
            self._received(record)

    def reward(self, event_id: str, reward: float, timestamp: Any = None) -> RewardReceipt:
        """Record a reward for a ranked event; durable (per the durability mode) when this returns; thread-safe.

        The same body received twice (same ``event_id``, ``reward`` and ``timestamp`` -- or no timestamp both
        times) is one delivery: the second is a ``"duplicate"`` and stores nothing, also when the two arrive at
        once on different threads or through :meth:`reward_async`. A delivery is a duplicate only once it is
        written: a retry that arrives while the first attempt is being written waits for it, and if that write
        fails, the retry is written instead (never answered ``"duplicate"`` for a reward that was not stored).
        Without ``timestamp`` the reward is stamped with the time it is received. Whether it counts is decided by
        the attribution rules when the trainer resolves its decision; outcomes that do not count are reported in
        ``rejected.jsonl``.

        Raises
        ------
        RequestError
            A bad ``event_id``, ``reward`` or ``timestamp``; nothing is stored.
        """
        receipt, line, record = self._receive(event_id, reward, timestamp)
        while receipt is None:  # the same delivery is being written: wait for that write, then ask again
            record.result()
            receipt, line, record = self._receive(event_id, reward, timestamp)
        if line is not None:
            try:
                self._commit(self._outcome_journal, line, record, None)
            except BaseException as exc:
                self._written(record, exc)
                raise
            self._written(record, None)
        return receipt

    async def reward_async(self, event_id: Any, reward: Any, timestamp: Any = None) -> RewardReceipt:
        """:meth:`reward` for an asyncio server (may be mixed with :meth:`reward` calls from other threads).

        If the caller is cancelled while the reward is being written, the write still ends as it would have (its
        key final or given back, the reward handed to the trainer once written): cancelling the wait changes
        nothing stored."""
        receipt, line, record = self._receive(event_id, reward, timestamp)
        while receipt is None:  # (shielded: a cancelled waiter does not cancel the future other retries wait on)
            await asyncio.shield(asyncio.wrap_future(record))
            receipt, line, record = self._receive(event_id, reward, timestamp)
        if line is None:
            return receipt
        journal = self._outcome_journal
        assert journal is not None
        try:
            if journal.durability != "fsync":
                journal.append(line, record)
            else:
                loop = asyncio.get_running_loop()
                fut: asyncio.Future[None] = loop.create_future()
                journal.append_fsync(line, record, self._async_resolver(loop, fut))
                try:
                    await asyncio.shield(fut)
                except asyncio.CancelledError:  # the write goes on: it ends the delivery when it ends
                    fut.add_done_callback(lambda done: self._written(record, done.exception()))
                    raise
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._written(record, exc)
            raise
        self._written(record, None)
        return receipt

    def _received(self, record: Any) -> None:
        event_id, ts, reward = record[0], record[1], record[2]
        self.trainer.add_outcome(event_id, ts, reward)

    # --- reports --------------------------------------------------------------------------------------------

    def _record_report(self, report: UpdateReport) -> None:
        lines = []
        now = pd.Timestamp.now(tz="UTC").isoformat()

        def add(reason: str, event_id: Any, detail: str, source: str) -> None:
            self.rejected_counts[reason] = self.rejected_counts.get(reason, 0) + 1
            lines.append(json.dumps({"time": now, "source": source, "event_id": str(event_id)[:MAX_EVENT_ID_LENGTH],
                                     "reason": reason, "detail": detail}))

        for row in report.unknown_outcomes.itertuples(index=False):
            add("unknown_event", row.event_id, f"reward {row.reward} at {row.timestamp}: no decision with this id",
                "outcomes")
        if len(report.late_outcomes):
            for row in report.late_outcomes.itertuples(index=False):
                add(f"late_{row.late_reason}", row.event_id, f"reward {row.reward} at {row.timestamp}", "outcomes")
        for row in report.rejected.itertuples(index=False):
            add(str(row.reason), row.event_id, str(row.detail), str(row.source))
        if lines:
            self._rejected_fh.write(("\n".join(lines) + "\n").encode())
            self._rejected_fh.flush()

    # --- compaction and recovery ----------------------------------------------------------------------------

    def _log_for(self, k: int) -> DecisionLog:
        log = self._logs.get(k)
        if log is None:
            policy = self.holder.policy
            names = policy.arm_names[:k]
            # the service refuses a repeated id among its last id_window decisions (409) before anything is logged;
            # the writer adds no check of its own (id_window=1), so a compaction can never fail on an id the
            # service accepted: an id repeated after more than id_window decisions is kept by the readers' first-
            # occurrence rule (with a warning)
            log = DecisionLog(self.log_dir / "decisions" / f"arms-{k}", arms=names, policy_name=type(policy).__name__,
                              rows_per_part=1_000_000, id_window=1)
            self._logs[k] = log
        return log

    def compact(self) -> None:
        """Move the journal's closed segments into the Parquet logs and delete them (trainer thread)."""
        assert self._decision_journal is not None and self._outcome_journal is not None
        decision_segments, outcome_segments = self._decision_journal.rotate(), self._outcome_journal.rotate()
        if self._remote is None:
            self._store_segments(decision_segments, outcome_segments)
        elif decision_segments or outcome_segments or self.durability == "memory":
            self._call_trainer("compact", decision_segments, outcome_segments)
        self._last_compaction = time.time()

    def _compact_files(self, decision_paths: list[Path], outcome_paths: list[Path]) -> None:
        """The trainer process's compaction: parse closed journal segment files, store them, delete them."""
        for path in decision_paths:
            self._store_decisions(self._parse_rows(path, lambda r: _record_row(r, self.n_features)))
            _unlink_durably(path)
        for path in outcome_paths:
            self._store_outcomes(self._parse_rows(path, _outcome_row))
            _unlink_durably(path)

    def _parse_rows(self, path: Path, row: Callable[[Any], Any]) -> list[Any]:
        """The records of a segment file as rows; unreadable lines and records are counted and skipped."""
        records, n_bad = parse_segment(path)
        self.n_journal_bad_lines += n_bad
        rows = []
        for r in records:
            try:
                rows.append(row(r))
            except (KeyError, TypeError, ValueError):
                self.n_journal_bad_lines += 1
        return rows

    def _store_segments(self, decision_segments: list[_Segment], outcome_segments: list[_Segment]) -> None:
        assert self._decision_journal is not None and self._outcome_journal is not None
        for seg in decision_segments:
            # in slices, with a pause between them: converted at once, 30 s of traffic held the GIL (and so the
            # request handlers) in single C calls of up to ~100 ms; the Parquet part is still written once, by flush
            records, seg.records = seg.records, []
            touched: set[int] = set()
            while records:
                chunk = records[:_COMPACT_SLICE]
                del records[:_COMPACT_SLICE]
                touched |= self._store_decisions([_record_row(r, self.n_features) for r in chunk], flush=False)
                del chunk
                time.sleep(_COMPACT_PAUSE)
            for k in touched:
                self._logs[k].flush()
            self._decision_journal.remove(seg.path)
        for seg in outcome_segments:
            self._store_outcomes(seg.records)
            self._outcome_journal.remove(seg.path)

    def _store_decisions(self, rows: list[_DecisionRow], flush: bool = True) -> set[int]:
        """Append decision rows (event_id, ts, x, index, propensity, probabilities, mask, version) to the Parquet
        log of their arm list, one batch per run of equal (arm count, policy version); then flush (fsynced) unless
        ``flush`` is False. Returns the arm counts of the logs appended to."""
        start = 0
        touched: set[int] = set()
        while start < len(rows):
            k, version = len(rows[start][5]), rows[start][7]
            stop = start
            while stop < len(rows) and len(rows[stop][5]) == k and rows[stop][7] == version:
                stop += 1
            run = rows[start:stop]
            try:
                self._append_run(run)
                touched.add(k)
            except (TypeError, ValueError) as exc:
                # a record the log refuses (a corrupt or crafted journal line; the log checks a whole batch before it
                # buffers a row): store the others one by one, quarantine it -- before, one such line stopped every
                # start (recovery) and every compaction of its segment
                refused = [(run[0], exc)] if len(run) == 1 else []
                for row in run if len(run) > 1 else ():
                    try:
                        self._append_run([row])
                        touched.add(k)
                    except (TypeError, ValueError) as row_exc:
                        refused.append((row, row_exc))
                for row, error in refused:
                    self.n_journal_bad_lines += 1
                    _log.warning("journal record %r quarantined (not stored in the decision log): %s", row[0],
                                 str(error)[:300])
            start = stop
        if flush:
            for k in touched:
                self._logs[k].flush()
        return touched

    def _append_run(self, run: list[_DecisionRow]) -> None:
        """Append decision rows of one arm count and policy version to their log (buffered; nothing if it raises)."""
        k = len(run[0][5])
        if k > len(self.holder.policy.arm_names):
            raise ValueError(f"the record has {k} arm probabilities, the policy has {len(self.holder.policy.arm_names)}"
                             " plans")
        log = self._log_for(k)
        probs = _rows_of(run, 5)
        index = np.fromiter((r[3] for r in run), dtype=np.int64, count=len(run))
        names = log.arms
        batch = BatchDecision(
            indices=index, arms=[names[i] for i in index],
            propensities=np.fromiter((r[4] for r in run), dtype=np.float64, count=len(run)),
            probabilities=probs, scores=np.zeros_like(probs), event_ids=[r[0] for r in run],
            policy_version=run[0][7], eligible=_rows_of(run, 6),
        )
        log.append_batch(batch, _rows_of(run, 2),
                         timestamps=np.fromiter((r[1] for r in run), dtype=np.int64,
                                                count=len(run)).astype("datetime64[us]"))

    def _store_outcomes(self, records: list[Any]) -> None:
        if not records:
            return
        rows = [_outcome_row(r) for r in records]
        table = pa.table(
            {
                "event_id": pa.array([r[0] for r in rows], pa.string()),
                "timestamp": pa.array(np.array([r[1] for r in rows], dtype="datetime64[us]"), TIMESTAMP_TYPE),
                "reward": pa.array([r[2] for r in rows], pa.float64()),
                "received_at": pa.array(np.array([r[3] for r in rows], dtype="datetime64[us]"), TIMESTAMP_TYPE),
                "client_timestamp": pa.array([r[4] for r in rows], pa.bool_()),
            },
            schema=outcome_schema(_OUTCOME_FIELDS),
        )
        directory = self.log_dir / "outcomes"
        name = _outcome_part_name(_int64(table.column(TIMESTAMP)), _int64(table.column("received_at")))
        tmp = directory / f".{name}.tmp"
        with open(tmp, "wb") as fh:
            pq.write_table(table, fh, compression="zstd")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, directory / name)
        fsync_dir(directory)

    def read_outcomes(self) -> pd.DataFrame:
        """Every outcome stored in the Parquet outcome parts (compacted ones), in arrival order.

        A part that is not a readable outcome table (a corrupt or crafted file) is skipped with a
        :class:`~offline_eval.schema.DecisionLogWarning` naming it, as the decision-log reader skips its parts.
        """
        parts = _OutcomeParts(self.log_dir / "outcomes")
        tables = []
        for part in parts:
            try:
                tables.append(pa.Table.from_batches(list(parts.batches(part)), schema=parts.schema))
            except (OSError, KeyError, ValueError, TypeError, pa.ArrowException) as exc:
                parts.unreadable(part.path, exc)
        if not tables:
            return parts.schema.empty_table().to_pandas()
        return pa.concat_tables(tables).to_pandas()

    def read_decisions(self, after_us: int | None = None) -> pd.DataFrame:
        """Every decision in the Parquet logs (all arm lists), with the columns the trainer needs; with ``after_us``
        (microseconds since the epoch), part files whose footers show every decision at or before it are not read
        (their decisions are settled: recovery need not hold the whole history). A log directory none of whose parts
        is readable (corrupt or crafted files) is skipped with a :class:`~offline_eval.schema.DecisionLogWarning`, as
        the reader skips single unreadable parts."""
        frames = []
        root = self.log_dir / "decisions"
        for sub in sorted(root.glob("arms-*")) if root.exists() else []:
            parts = sorted(sub.glob("part-*.parquet"))
            if after_us is not None:
                parts = [part for part in parts if not _decided_by(part, after_us)]
            if parts:
                try:
                    df = read_decision_log(parts)
                except (OSError, ValueError, pa.ArrowException) as exc:
                    warnings.warn(DecisionLogWarning(f"skipping {str(sub)!r}: {one_line_error(exc)}"), stacklevel=2)
                    continue
                frames.append(df[["event_id", "timestamp", "context", "action_name"]])
        if not frames:
            return pd.DataFrame({"event_id": pd.Series([], dtype=object),
                                 "timestamp": pd.Series([], dtype="datetime64[us, UTC]"),
                                 "context": pd.Series([], dtype=object), "action_name": pd.Series([], dtype=object)})
        return pd.concat(frames, ignore_index=True)

    def _newest_event_ids(self, logged: pd.DataFrame) -> list[str]:
        """The event ids of the last ``id_window`` decisions in time order: ``logged`` (the decisions after the
        watermark, sorted) topped up with the event ids of the newest settled parts, read newest first and only their
        ``event_id`` / ``timestamp`` columns, when it holds fewer."""
        ids = logged["event_id"].tolist()
        if len(ids) >= self._id_window:
            return ids
        have = set(ids)
        root = self.log_dir / "decisions"
        parts = [p for sub in sorted(root.glob("arms-*")) for p in sub.glob("part-*.parquet")] if root.exists() else []
        older: list[pd.DataFrame] = []
        n_older = 0
        for part in sorted(parts, key=_newest_us_or_min, reverse=True):
            if len(ids) + n_older >= self._id_window:
                break
            try:
                table = pq.read_table(part, columns=["event_id", "timestamp"])
                # (a set lookup per id, ~0.2 us: pandas' isin on Arrow strings took ~9 us, and Arrow's is_in hashes
                # its whole value set again at every call, ~3-15 ms per part for 10^5 ids)
                new_ids = np.fromiter((e not in have for e in table.column("event_id").to_pylist()), dtype=bool,
                                      count=table.num_rows)
                frame = table.filter(pa.array(new_ids)).to_pandas()
            except (OSError, ValueError, KeyError, pa.ArrowException):
                continue  # unreadable: the log reader reports it
            older.append(frame)
            n_older += len(frame)
        if not older:
            return ids
        earlier = pd.concat(older, ignore_index=True).sort_values("timestamp", kind="stable")
        return earlier["event_id"].drop_duplicates(keep="first").tolist() + ids

    def _check_logs_fit_policy(self) -> None:
        """ValueError unless every decision log in the directory was written for this policy: its arm list a prefix
        of the policy's (or the policy's of it) and contexts of ``n_features`` values. A policy file swapped for one
        with other plans or features would otherwise start, serve, and then fail every compaction."""
        root = self.log_dir / "decisions"
        names = self.holder.policy.arm_names
        for sub in sorted(root.glob("arms-*")) if root.exists() else []:
            part = min(sub.glob("part-*.parquet"), default=None)
            if part is None:
                continue
            try:
                schema = pq.read_schema(part)
                arms = arms_from_schema(schema)
                width = getattr(schema.field(CONTEXT).type, "list_size", None)
            except (OSError, ValueError, KeyError, pa.ArrowException):
                continue  # an unreadable part is reported (and skipped) by the log reader
            k = min(len(names), len(arms or ()))
            if (arms is not None and arms[:k] != names[:k]) or (width is not None and width != self.n_features):
                raise ValueError(
                    f"{sub} holds decisions for plans {arms} with {width} features, but the policy {self.policy_path}"
                    f" has plans {names} and n_features={self.n_features}: a log directory belongs to one policy; "
                    "start this policy with a new --log directory"
                )

    def _recover(self) -> None:
        """Recovery (module docstring). What the log readers skip or quarantine on the way -- unreadable Parquet
        parts, repeated event ids (:class:`~offline_eval.schema.DecisionLogWarning`) -- is reported once each, as
        rejected records with reason ``"log_read"`` (rejected.jsonl, ``upsell_rejected_outcomes_total``) and in the
        server's log; it never stops the start."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                self._recover_logs()
            finally:
                _footer_newest_us.cache_clear()
        reported: set[str] = set()
        for w in caught:
            if not issubclass(w.category, DecisionLogWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            elif (message := str(w.message)) not in reported:
                reported.add(message)
                self.rejected_counts["log_read"] = self.rejected_counts.get("log_read", 0) + 1
                _log.error("recovery: %s", message[:1000])
                self._rejected_fh.write(json.dumps({
                    "time": pd.Timestamp.now(tz="UTC").isoformat(), "source": "recovery", "event_id": None,
                    "reason": "log_read", "detail": message[:2000]}).encode() + b"\n")
        self._rejected_fh.flush()

    def _recover_logs(self) -> None:
        assert self._decision_journal is not None and self._outcome_journal is not None
        # decisions at or before the checkpoint's watermark are settled: the parts holding only such decisions are
        # not read (a restart costs the attribution window's decisions, not the whole history)
        after_us = self.holder.policy._applied_event_ids.watermark_us
        logged = self.read_decisions(after_us)
        known = set(logged["event_id"].tolist())
        read_all = after_us is None
        for path in self._decision_journal.recovered:  # one segment in memory at a time
            records = self._decision_journal.read_segment(path)
            rows = []
            for r in records:
                try:
                    row = _record_row(r, self.n_features)
                except (KeyError, TypeError, ValueError):
                    self.n_journal_bad_lines += 1
                    continue
                if not read_all and after_us is not None and row[1] <= after_us:
                    # an old journal record (a segment whose removal failed): it may be stored in a part not read
                    known.update(self.read_decisions()["event_id"].tolist())
                    read_all = True
                if row[0] not in known:
                    known.add(row[0])
                    rows.append(row)
            self._store_decisions(rows)
            self._decision_journal.remove(path)
        stored = _OutcomeParts(self.log_dir / "outcomes")  # the parts as they were before the journal's are stored
        for path in self._outcome_journal.recovered:  # one segment in memory at a time
            records = self._outcome_journal.read_segment(path)
            received = []
            for r in records:
                try:
                    received.append((r, _outcome_row(r)))
                except (KeyError, TypeError, ValueError):
                    self.n_journal_bad_lines += 1
            # records a crash left in the journal after storing them: found in the parts received in the same span
            have = stored.deliveries({outcome[:4] for _, outcome in received}) if received else set()
            self._store_outcomes([r for r, outcome in received if outcome[:4] not in have])
            self._outcome_journal.remove(path)
        self.n_journal_bad_lines += self._decision_journal.n_bad_lines + self._outcome_journal.n_bad_lines
        # pending again: every logged decision the checkpoint's ledger has not settled, oldest first
        logged = self.read_decisions(after_us).sort_values("timestamp", kind="stable")
        ledger = self.holder.policy._applied_event_ids
        ids = logged["event_id"].tolist()
        us = _us(logged["timestamp"])
        for event_id, ts, x, arm in zip(ids, us, logged["context"], logged["action_name"], strict=True):
            if not ledger.is_settled(event_id, ts):
                self.trainer.add_decision(event_id, ts, np.asarray(x, dtype=np.float64), arm)
        for event_id in self._newest_event_ids(logged)[-self._id_window:]:
            self._remember(event_id)
        self.trainer._drain()
        self._recover_outcomes(after_us, _OutcomeParts(self.log_dir / "outcomes", known=stored))
        self.trainer.step()
        self.trainer.checkpoint()


    def _recover_outcomes(self, after_us: int | None, parts: _OutcomeParts) -> None:
        """The stored outcomes recovery needs, read part by part in batches of :data:`_OUTCOME_BATCH` rows: the
        deliveries received within the dedupe span (their keys, :attr:`_outcome_keys`) and the outcomes of pending
        decisions (to the trainer), in arrival order; a delivery stored twice counts once.

        With a watermark ``after_us`` (every pending decision is later), an outcome received before the dedupe span
        matters only if it can count, i.e. is stamped after the watermark: parts whose names, and row groups whose
        footer statistics, show neither (every row stamped at or before ``after_us`` and received before the span)
        are not read (names and footers are trusted, as for the decision log's parts). The one difference from
        reading every row: an outcome received before the span and stamped at or
        before the watermark for a decision still pending -- stamped before its decision, so it never counts -- is
        no longer handed to the trainer again (which reported it as late once more).
        """
        now = time.time_ns() // 1000
        cutoff = now - self._dedupe_us  # received at or after it: the key is kept (as the request path keeps it)
        pending = self.trainer._pending  # (a dict: Arrow's is_in would hash all its ids again for every batch)
        chunks: list[tuple[np.ndarray, ...]] = []
        to_trainer: list[tuple[int, str, int, float]] = []  # (row number among the rows used, event_id, ts, reward)
        n_used = 0
        for part in parts:
            if after_us is not None and part.span is not None and part.span[1] <= after_us and part.span[3] < cutoff:
                continue  # (its name tells: not opened)
            spans = parts.groups(part)
            if spans is None:
                continue
            groups = [g for g, span in enumerate(spans) if after_us is None or span is None
                      or span[1] > after_us or span[3] >= cutoff]
            if not groups:
                continue
            part_chunks, part_rows, n_part = [], [], 0
            try:
                for batch in parts.batches(part, groups):
                    ts, at = _int64(batch.column(1)), _int64(batch.column(3))
                    keep = at >= cutoff
                    needed = np.flatnonzero(keep | (ts > after_us) if after_us is not None else np.ones(len(ts), bool))
                    if not len(needed):
                        continue
                    needed_ids = batch.column(0).take(pa.array(needed)).to_pylist()
                    owned = np.zeros(len(ts), dtype=bool)
                    owned[needed] = np.fromiter((e in pending for e in needed_ids), dtype=bool, count=len(needed))
                    used = np.flatnonzero(keep | owned)
                    if not len(used):
                        continue
                    ids = [needed_ids[k] for k in np.searchsorted(needed, used).tolist()]  # (used: among needed)
                    rewards = _float64(batch.column(2))[used].tolist()
                    client = batch.column(4).to_numpy(zero_copy_only=False)[used]
                    ts_used, at_used = ts[used], at[used]
                    halves = np.array([delivery_key(e, r, t if c else None) for e, r, t, c in zip(
                        ids, rewards, ts_used.tolist(), client.tolist(), strict=True)], dtype=np.uint64).reshape(-1, 2)
                    owned_used = owned[used]
                    for k in np.flatnonzero(owned_used).tolist():
                        part_rows.append((n_used + n_part + k, ids[k], int(ts_used[k]), rewards[k]))
                    part_chunks.append((halves[:, 0], halves[:, 1], ts_used, at_used, keep[used]))
                    n_part += len(used)
            except (OSError, KeyError, ValueError, TypeError, pa.ArrowException) as exc:
                parts.unreadable(part.path, exc)
                continue
            chunks += part_chunks
            to_trainer += part_rows
            n_used += n_part
        if not n_used:
            return
        hi, lo, ts, at, keep = (np.concatenate([c[i] for c in chunks]) for i in range(5))
        # a delivery stored twice (a copied or crafted part): the same key, timestamp and receipt time; the first counts
        order = np.lexsort((np.arange(n_used), at, ts, lo, hi))
        same = np.zeros(n_used, dtype=bool)
        same[order[1:]] = ((hi[order[1:]] == hi[order[:-1]]) & (lo[order[1:]] == lo[order[:-1]])
                           & (ts[order[1:]] == ts[order[:-1]]) & (at[order[1:]] == at[order[:-1]]))
        first = keep & ~same
        self._outcome_keys.set_many(hi[first], lo[first], at[first])
        for row, event_id, timestamp_us, reward in to_trainer:
            if not same[row]:
                self.trainer.add_outcome(event_id, timestamp_us, reward)
        n_repeated = int(same.sum())
        if n_repeated:
            warnings.warn(DecisionLogWarning(f"{n_repeated} outcome rows of {self.log_dir / 'outcomes'} repeat a "
                                             "stored delivery (same event id, timestamps and reward): each counted "
                                             "once"), stacklevel=2)


#: Outcome rows read at once by recovery (memory bounded by this, not by a part's size).
_OUTCOME_BATCH = 65_536


def _int64(column: pa.Array) -> np.ndarray:
    """int64 values of an Arrow column (timestamps: microseconds since the epoch)."""
    return column.cast(pa.int64()).to_numpy(zero_copy_only=False)


def _float64(column: pa.Array) -> np.ndarray:
    return column.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)


#: (min, max) of the timestamps and (min, max) of the receipt times of an outcome part's rows, in us.
_Span = tuple[int, int, int, int]
#: An outcome part's file name: its write time (ns; arrival order), a random tag and, since 2026-12-05, the span of
#: its rows (so that a restart can pass over it without opening it; older names have none and their footers tell).
_OUTCOME_PART = re.compile(r"part-\d{20}-[0-9a-f]{8}(?:-(-?\d{1,19})_(-?\d{1,19})_(-?\d{1,19})_(-?\d{1,19}))?\.parquet",
                           re.ASCII)  # (ASCII digits only: int() would read other scripts' digits too)


def _outcome_part_name(ts: np.ndarray, at: np.ndarray) -> str:
    """A new outcome part's file name, with the span of its rows' timestamps ``ts`` and receipt times ``at`` (us)."""
    return (f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}-{int(ts.min())}_{int(ts.max())}_{int(at.min())}_"
            f"{int(at.max())}.parquet")


def _name_span(name: str) -> _Span | None:
    """The span an outcome part's file name states, or None (a name written before spans were, or another)."""
    m = _OUTCOME_PART.fullmatch(name)
    if m is None or m[1] is None:
        return None
    ts_min, ts_max, at_min, at_max = (int(v) for v in m.groups())
    return (ts_min, ts_max, at_min, at_max) if ts_min <= ts_max and at_min <= at_max else None


@dataclass(frozen=True, slots=True)
class _OutcomePart:
    """An outcome part file and the span of its rows its name states (None: the name does not)."""

    path: Path
    span: _Span | None


class _OutcomeParts:
    """The outcome parts of a directory, oldest first (arrival order); each part's time spans from its name (whole
    part) and, read on first use, its footer (per row group: :meth:`groups`).

    A part whose footer cannot be read, or that lacks a column of the outcome table, is skipped with a
    :class:`~offline_eval.schema.DecisionLogWarning` naming it (once per recovery), as :meth:`DecisionService.
    read_outcomes` skips it; so is a part found unreadable while its rows are read (:meth:`unreadable`). ``known``:
    an earlier listing, whose footers are not read again.
    """

    def __init__(self, directory: Path, known: _OutcomeParts | None = None) -> None:
        self.schema = outcome_schema(_OUTCOME_FIELDS)
        self._failed: set[Path] = set() if known is None else known._failed
        self._groups: dict[Path, tuple[_Span | None, ...]] = {} if known is None else known._groups
        self._parts = [_OutcomePart(path, _name_span(path.name)) for path in sorted(directory.glob("part-*.parquet"))]

    def _index(self, path: Path) -> tuple[_Span | None, ...]:
        """Per row group of the part, its span from the footer's statistics, or None where they cannot tell."""
        meta = pq.ParquetFile(path).metadata
        arrow = meta.schema.to_arrow_schema()
        columns = [arrow.get_field_index(name) for name in self.schema.names]
        if min(columns) < 0:
            missing = [n for n, c in zip(self.schema.names, columns, strict=True) if c < 0]
            raise KeyError(f"no column {missing}")
        # the footer tells only about columns stored with the table's own types (a cast could move the values)
        exact = all(arrow.field(c).type == f.type for c, f in zip(columns, self.schema, strict=True))
        # statistics are per leaf column: found by path (an Arrow field's index counts a nested column once, and
        # would point at another leaf when a nested column comes first)
        leaves = {meta.schema.column(i).path: i for i in range(meta.num_columns)}
        groups: list[_Span | None] = []
        for g in range(meta.num_row_groups):
            rg = meta.row_group(g)
            span: list[int] = []
            for name in (TIMESTAMP, "received_at"):
                stats = rg.column(leaves[name]).statistics if exact and name in leaves else None
                if stats is None or not stats.has_min_max or stats.physical_type != "INT64":
                    break
                span += [int(stats.min_raw), int(stats.max_raw)]  # (microseconds: the column is timestamp[us])
            groups.append((span[0], span[1], span[2], span[3]) if len(span) == 4 else None)
        return tuple(groups)

    def groups(self, part: _OutcomePart) -> tuple[_Span | None, ...] | None:
        """The part's row-group spans (its footer, read once); None for a part that cannot be read (reported)."""
        if part.path in self._failed:
            return None
        groups = self._groups.get(part.path)
        if groups is None:
            try:
                groups = self._groups[part.path] = self._index(part.path)
            except (OSError, KeyError, ValueError, TypeError, pa.ArrowException) as exc:
                self.unreadable(part.path, exc)
                return None
        return groups

    def __iter__(self) -> Iterator[_OutcomePart]:
        return (part for part in self._parts if part.path not in self._failed)

    def unreadable(self, path: Path, exc: BaseException) -> None:
        """Skip the part ``path`` from now on, with a warning naming it."""
        self._failed.add(path)
        warnings.warn(DecisionLogWarning(f"skipping {str(path)!r}: not a readable outcome table "
                                         f"({type(exc).__name__}: {one_line_error(exc)})"), stacklevel=3)

    def batches(self, part: _OutcomePart, groups: Sequence[int] | None = None) -> Iterator[pa.RecordBatch]:
        """The rows of the row groups ``groups`` (default all) of ``part``, as batches of the outcome table's
        columns and types (a value the cast refuses -- a null, a bad timestamp -- raises: the part is unreadable)."""
        reader = pq.ParquetFile(part.path)
        for batch in reader.iter_batches(batch_size=_OUTCOME_BATCH, row_groups=groups, columns=self.schema.names):
            yield batch.select(self.schema.names).cast(self.schema)

    def deliveries(self, wanted: set[tuple[str, int, float, int]]) -> set[tuple[str, int, float, int]]:
        """Those of ``wanted`` -- ``(event_id, timestamp us, reward, received_at us)`` of journal records -- that a
        part holds; only parts with row groups received within the records' span are read, each whole (one that
        cannot be read is skipped, as if it held none)."""
        received = sorted({w[3] for w in wanted})
        low, high = received[0], received[-1]
        value_set = pa.array(received, pa.int64())
        found: set[tuple[str, int, float, int]] = set()
        for part in self:
            if part.span is not None and not (part.span[2] <= high and part.span[3] >= low):
                continue
            groups = self.groups(part)
            if groups is None or not any(span is None or (span[2] <= high and span[3] >= low) for span in groups):
                continue
            in_part: set[tuple[str, int, float, int]] = set()
            try:
                for batch in self.batches(part):
                    rows = np.flatnonzero(pc.is_in(batch.column(3).cast(pa.int64()), value_set=value_set)
                                          .to_numpy(zero_copy_only=False))
                    if len(rows):
                        sub = batch.take(pa.array(rows))
                        in_part.update(row for row in zip(
                            sub.column(0).to_pylist(), _int64(sub.column(1)).tolist(), _float64(sub.column(2)).tolist(),
                            _int64(sub.column(3)).tolist(), strict=True) if row in wanted)
            except (OSError, KeyError, ValueError, TypeError, pa.ArrowException) as exc:
                self.unreadable(part.path, exc)
                continue
            found |= in_part
        return found


def _segment_paths(decision_segments: Sequence[_Segment], outcome_segments: Sequence[_Segment]) -> dict[str, list[str]]:
    return {"decision_paths": [str(s.path) for s in decision_segments if s.path is not None],
            "outcome_paths": [str(s.path) for s in outcome_segments if s.path is not None]}


def one_line_error(exc: BaseException) -> str:
    """``str(exc)`` on one line, at most 300 characters (for a warning or a log line)."""
    return one_line(exc)[:300]


def _unlink_durably(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        return
    fsync_dir(path.parent)


def _newest_us(part: Path) -> int | None:
    """The latest decision time (us since the epoch) of a part file from its footer's statistics; None when the
    footer cannot tell (no statistics, unreadable). A restart asks up to three times per part (two reads of the log,
    the id_window top-up): the answers are kept per file version (path, inode, size, mtime) until the recovery ends
    (:func:`_footer_newest_us`; a footer read costs ~0.3 ms, and a service writes a part per compaction)."""
    try:
        st = part.stat()
    except OSError:
        return None
    return _footer_newest_us(str(part), st.st_ino, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=1 << 16)
def _footer_newest_us(part: str, inode: int, size: int, mtime_ns: int) -> int | None:
    """:func:`_newest_us` of one version of a part file, read from its footer."""
    try:
        meta = pq.ParquetFile(part).metadata
        # (the leaf column by its path: a nested column's leaf may bear the name too)
        column = [meta.schema.column(i).path for i in range(meta.num_columns)].index(TIMESTAMP)
        newest = None
        for g in range(meta.num_row_groups):
            stats = meta.row_group(g).column(column).statistics
            if stats is None or not stats.has_min_max:
                return None
            us = utc_us(stats.max, "timestamp")
            newest = us if newest is None else max(newest, us)
        return newest
    except (OSError, ValueError, KeyError, TypeError, pa.ArrowException):
        return None


def _newest_us_or_min(part: Path) -> int:
    newest = _newest_us(part)
    return -(2**63) if newest is None else newest


def _decided_by(part: Path, after_us: int) -> bool:
    """Whether every decision of the part file was made at or before ``after_us`` (from its footer: a part the footer
    cannot tell about is read)."""
    newest = _newest_us(part)
    return newest is not None and newest <= after_us


class _Locks:
    """Exclusive ``flock`` locks this process holds (files kept open; released when closed or the process dies)."""

    def __init__(self, files: list[Any]) -> None:
        self._files = files

    @property
    def closed(self) -> bool:
        return all(fh.closed for fh in self._files)

    def close(self) -> None:
        for fh in self._files:
            fh.close()

    def filenos(self) -> tuple[int, ...]:
        return tuple(fh.fileno() for fh in self._files)


def _lock_service(directory: Path, policy_path: Path) -> _Locks | None:
    """Lock ``directory/.lock`` and ``.<policy file name>.lock`` beside the policy file for this process: two
    services on one log directory would interleave journals, and two on one policy file would checkpoint over each
    other's learning. Raises ``ValueError`` naming what another process holds. None where ``fcntl`` is missing
    (Windows)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return None
    held: list[Any] = []
    targets = [(directory / ".lock", f"{directory} is in use by another serving process")]
    if policy_path.parent.is_dir():
        targets.append((policy_path.with_name(f".{policy_path.name}.lock"),
                        f"the policy file {policy_path} is in use by another serving process"))
    for path, busy in targets:
        fh = open(path, "a+b")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            for other in held:
                other.close()
            raise ValueError(f"{busy}; give every process its own log directory and policy file") from None
        held.append(fh)
    return _Locks(held)


def _us(column: pd.Series) -> list[int]:
    """Microseconds since the epoch (UTC) of a tz-aware timestamp column."""
    return column.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("datetime64[us]").astype(np.int64).tolist()


#: A decision as stored: (event_id, time us, context (d,), index, propensity, probabilities (K,), eligible (K,) bool,
#: policy version).
_DecisionRow = tuple[str, int, np.ndarray, int, float, np.ndarray, np.ndarray, str]


def _rows_of(rows: list[_DecisionRow], field: int) -> np.ndarray:
    """The equal-length 1-D arrays ``row[field]`` stacked into (n, width) (concatenate: much cheaper than stack)."""
    arrays: list[np.ndarray] = [r[field] for r in rows]  # type: ignore[misc]  # fields 2, 5, 6 are arrays
    return np.concatenate(arrays).reshape(len(rows), arrays[0].shape[0])


def _decision_row(decision: Decision, x: np.ndarray, ts: int) -> _DecisionRow:
    """The in-memory journal record of a decision: a tuple of strings, numbers and arrays, which the cyclic garbage
    collector stops tracking (a Decision object is tracked: 30 s of them made its full passes long and frequent)."""
    assert decision.eligible is not None
    return (decision.event_id, ts, x, decision.index, decision.propensity, decision.probabilities,  # type: ignore[return-value]
            decision.eligible, decision.policy_version)


def _journal_us(value: Any) -> int:
    """A journal record's timestamp (int microseconds since the epoch, UTC, in the years 1 to 9999 that the Parquet
    logs hold); ValueError otherwise (a corrupt or crafted record)."""
    if type(value) is not int or not _LOG_MIN_US <= value <= _LOG_MAX_US:
        raise ValueError(f"journal timestamp {str(value)[:30]} is not an int of microseconds in the years 1 to 9999")
    return value


def _journal_event_id(value: Any) -> str:
    check_event_ids([value], "event_id")  # (a str of 1 to 256 characters that Parquet can hold)
    return str(value)


def _record_row(r: Any, n_features: int) -> _DecisionRow:
    """A decision journal record (dict from JSON, or the in-memory row of :func:`_decision_row`) as a row for
    :meth:`_store_decisions`. A record read from a file is checked (a ``TypeError`` / ``ValueError`` for a corrupt or
    crafted one): a valid event id and timestamp, a finite context of ``n_features`` values, an arm index within
    probabilities and an eligibility mask of equal length."""
    if isinstance(r, tuple):
        return r
    x = np.frombuffer(bytes.fromhex(r["x"]), dtype="<f8").astype(np.float64)
    q = np.frombuffer(bytes.fromhex(r["q"]), dtype="<f8").astype(np.float64)
    m = np.frombuffer(bytes.fromhex(r["m"]), dtype=np.uint8) != 0
    row = (_journal_event_id(r["e"]), _journal_us(r["t"]), x, int(r["a"]), float(r["p"]), q, m, str(r["v"]))
    if len(q) != len(m) or not 0 <= row[3] < len(q) or x.shape != (n_features,) or not np.isfinite(x).all():
        raise ValueError("inconsistent decision record")
    return row


def _outcome_row(r: Any) -> tuple[str, int, float, int, bool]:
    """An outcome journal record (dict from JSON, or the in-memory tuple) as (event_id, ts, reward, at, client); a
    record read from a file is checked like :func:`_record_row` (event id, timestamps)."""
    if isinstance(r, tuple):
        return r[0], r[1], r[2], r[3], r[4]
    return _journal_event_id(r["e"]), _journal_us(r["t"]), float(r["r"]), _journal_us(r["at"]), bool(r["c"])


def load_feature_names(policy_path: str | os.PathLike[str], spec: str | None) -> list[str] | None:
    """Feature names from ``spec`` (``"a,b,c"``), else from ``<policy>.features.json`` beside the policy file (a
    JSON list of names), else None."""
    if spec is not None:
        names = [s.strip() for s in spec.split(",")]
        if not all(names):
            raise ValueError(f"--features {spec!r}: expected comma-separated feature names")
        return names
    beside = Path(policy_path).with_suffix(".features.json")
    if beside.is_file():
        if beside.stat().st_size > 1 << 20:
            raise ValueError(f"{beside}: larger than 1 MiB")
        try:
            names = json.loads(beside.read_bytes())
        except (ValueError, RecursionError) as exc:  # (RecursionError: nesting deeper than the parser's stack)
            raise ValueError(f"{beside}: not a readable JSON list of feature names ({type(exc).__name__})") from None
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise ValueError(f"{beside}: expected a JSON list of feature names")
        return names
    return None
