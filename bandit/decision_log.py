"""Decision log: the Parquet writer (atomic part files, thread-safe) and reader of a log directory.

A :class:`DecisionLog` records every decision a policy makes in the decision-log schema of
:mod:`offline_eval.schema` -- the same files ``offline_eval`` reads, encoded by the schema module's one encoder
(:func:`offline_eval.schema.encode_decisions`) and read by its one reader (:func:`offline_eval.schema.read_log`).
Conversions arrive later in an outcomes table (``event_id``, ``timestamp``, ``reward``); :mod:`bandit.attribution`
joins them to the decisions under an attribution window and feeds them to a policy exactly once (what
``policy.update_from_log`` does).

Layout on disk
--------------
A log is a directory of part files ``part-<seq>-<uuid>.parquet``. Each part is written to a dot-prefixed temporary
file ``.part-<seq>-<uuid>.parquet.<host>-<pid>.tmp`` in the same directory, fsynced, then atomically renamed, so a
crash while writing never corrupts or loses an earlier part. Every reader ignores the temporaries (as do
``pyarrow.dataset`` and ``pandas.read_parquet``: they skip names starting with ``.``), and opening a
:class:`DecisionLog` deletes the ones a crashed writer left behind (see :class:`DecisionLog`).

One log, one arm list
---------------------
A log directory is bound to one arm list (schema metadata ``upsell_bandit.arms``). Policies append new arms at the
end and keep the index of retired arms, so indices never change meaning; but a decision made after an arm was
added has K + 1 probabilities and does not fit the old schema. :class:`DecisionLog` then raises a ``ValueError``:
open a new ``DecisionLog`` in a new directory for the new arm list. :func:`bandit.attribution.apply_log` maps
logged actions to the policy by arm *name*, so logs written under different arm lists can all be applied to the
same policy.
"""

from __future__ import annotations

import math
import numbers
import os
import re
import socket
import threading
import time
import uuid
import warnings
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bandit._fs import fsync_dir
from bandit._timestamps import EPOCH, ONE_US, utc_us, utc_us_array
from bandit.arms import as_arms
from bandit.decision import BatchDecision, Decision
from offline_eval.schema import (
    DECISION_COLUMNS,
    PROBABILITY_ATOL,
    SCHEMA_VERSION,
    check_event_ids,
    decision_log_schema,
    encode_decisions,
    part_sequence,
    read_log,
    read_parts,
    scan_parts,
)

__all__ = ["DEFAULT_ID_WINDOW", "ORPHAN_TEMP_AGE", "DecisionLog", "NoExplorationWarning", "read_decision_log"]

#: Default number of most recent rows whose event ids a :class:`DecisionLog` remembers to reject duplicates.
DEFAULT_ID_WINDOW = 200_000

#: Seconds after which a writer's temporary file counts as orphaned even if its owner looks alive (see
#: :class:`DecisionLog`); writing one part takes well under a second.
ORPHAN_TEMP_AGE = 3600.0

_MIN_CAPACITY = 256

#: How parts are written: zstd; dictionary encoding and statistics only where they pay (repeated strings; scalar
#: columns to filter on) -- trying to dictionary-encode 50,000 x d random floats doubles the write time. The list
#: child name stays "item" so the file's schema equals ``decision_log_schema`` exactly.
_PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 1,
    "use_dictionary": ["action_name", "policy", "policy_version"],
    "write_statistics": ["event_id", "timestamp", "action", "propensity", "reward"],
    "use_compliant_nested_type": False,
}
_MIN_US = (datetime(1, 1, 1, tzinfo=UTC) - EPOCH) // ONE_US
_MAX_US = (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC) - EPOCH) // ONE_US
_HOST = re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname())[:64] or "host"


class NoExplorationWarning(UserWarning):
    """A logged decision gave probability 0 to an arm that was eligible: the logging policy does not explore.

    Offline evaluation can only estimate a candidate policy on actions the logging policy could take; rows where an
    eligible arm had probability 0 leave a support deficit for every policy that would choose that arm. Give the
    logging policy an ``exploration_floor`` (e.g. ``LinUCB(..., exploration_floor=0.05)``) when its logs must
    support offline evaluation. A :class:`DecisionLog` warns once.
    """


def policy_arms_and_name(policy: Any) -> tuple[list[str], str]:
    """Arm names (in index order) and display name of ``policy``.

    The only place in this module that knows which policy attributes hold them.
    """
    try:
        names = policy.arm_names
    except AttributeError:
        raise TypeError(
            f"policy must be a bandit policy exposing arm_names, got {type(policy).__name__}"
        ) from None
    return [str(n) for n in names], type(policy).__name__


# ----------------------------------------------------------------------------------------------------------------
# reading
# ----------------------------------------------------------------------------------------------------------------


def _frame(table: pa.Table, arms: list[str]) -> pd.DataFrame:
    df = table.to_pandas()
    df.attrs["arms"] = list(arms)
    df.attrs["schema_version"] = SCHEMA_VERSION
    return df


def read_decision_log(path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> pd.DataFrame:
    """Read a decision log (a directory of part files, one Parquet file, or a list of part files) into one DataFrame.

    Reads through :func:`offline_eval.schema.read_log`: stray files are skipped and duplicate event ids
    quarantined (first occurrence kept), each with a :class:`offline_eval.schema.DecisionLogWarning`.

    Parameters
    ----------
    path : str, path-like or sequence of them
        Directory written by :class:`DecisionLog`, a Parquet file in the decision-log schema, or a list of part files
        (read in the given order, e.g. a subset of a directory's parts, or the parts of several shards).

    Returns
    -------
    pandas.DataFrame
        One row per decision, columns in :data:`offline_eval.schema.DECISION_COLUMNS` order followed by any extra
        columns; ``context``, ``probabilities`` and ``eligible`` hold one numpy array per row; ``timestamp`` is
        ``datetime64[us, UTC]``. ``df.attrs["arms"]`` is the arm list (index order) and
        ``df.attrs["schema_version"]`` the schema version. Parts are concatenated in write order; temporary files
        left by an interrupted write are ignored.

    Raises
    ------
    ValueError
        The path does not exist or holds no readable part file, or its parts disagree on the arm list.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from bandit.decision import Decision
    >>> tmp = tempfile.TemporaryDirectory()
    >>> d = Decision(arm="duo", index=1, propensity=0.75, probabilities=np.array([0.25, 0.75]),
    ...              scores=np.array([0.1, 0.3]), event_id="e1", policy_version="v1",
    ...              eligible=np.array([True, True]))
    >>> with DecisionLog(tmp.name, arms=["individual", "duo"], policy_name="LinUCB") as log:
    ...     log.append(d, [1.0, 0.5], timestamp="2024-05-01T12:00:00Z")
    >>> df = read_decision_log(tmp.name)
    >>> df[["event_id", "action_name", "propensity"]].to_dict("records")
    [{'event_id': 'e1', 'action_name': 'duo', 'propensity': 0.75}]
    >>> df.attrs["arms"]
    ['individual', 'duo']
    >>> tmp.cleanup()
    """
    if isinstance(path, str | os.PathLike):
        source = Path(path)
        if not source.exists():
            raise ValueError(
                f"path must be a decision-log directory (or a Parquet file of one), {str(source)!r} does not exist"
            )
        table, arms = read_log(source)
    else:
        table, arms = read_log([Path(p) for p in path])
    return _frame(table, arms)


def _timestamps_us(values: Any) -> np.ndarray:
    """int64 microseconds (UTC) of array-like timestamps; naive = UTC. Datetime arrays and indexes skip the
    general (pandas.to_datetime) conversion of :func:`bandit._timestamps.utc_us_array`."""
    if isinstance(values, pd.DatetimeIndex):
        if values.hasnans:
            raise ValueError("timestamps contains missing timestamps (NaT); every row needs a timestamp")
        return values.as_unit("us").asi8  # UTC-based for tz-aware indexes, naive taken as UTC
    if isinstance(values, np.ndarray) and values.dtype.kind == "M":
        us = values.astype("datetime64[us]")
        if np.isnat(us).any():
            raise ValueError("timestamps contains missing timestamps (NaT); every row needs a timestamp")
        return us.astype(np.int64)
    return utc_us_array(values, "timestamps")


def _check_utf8(text: str, name: str) -> None:
    """Strings go to Parquet as UTF-8: reject lone surrogates up front, not when the part is written."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{name} must be valid UTF-8 text (no lone surrogates), got {text!r}") from None


# ----------------------------------------------------------------------------------------------------------------
# buffered rows
# ----------------------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Rows:
    """Validated rows waiting to be written (the arrays are owned by the log: nobody else mutates them)."""

    ids: list[str]
    ts: np.ndarray  # (n,) int64, microseconds since the epoch, UTC
    ctx: np.ndarray  # (n, d) float64
    action: np.ndarray  # (n,) int32
    prop: np.ndarray  # (n,) float64
    probs: np.ndarray  # (n, K) float64
    elig: np.ndarray  # (n, K) bool
    versions: str | list[str]  # one for all rows, or one per row
    extra: dict[str, pa.Array]  # declared extra columns given for these rows (absent: null)

    def __len__(self) -> int:
        return len(self.ids)

    def slice(self, start: int, stop: int) -> _Rows:
        return _Rows(
            self.ids[start:stop],
            self.ts[start:stop],
            self.ctx[start:stop],
            self.action[start:stop],
            self.prop[start:stop],
            self.probs[start:stop],
            self.elig[start:stop],
            self.versions if isinstance(self.versions, str) else self.versions[start:stop],
            {name: col.slice(start, stop - start) for name, col in self.extra.items()},
        )


class _RowBuffer:
    """Preallocated arrays that single-row appends fill (a few microseconds each); frozen into :class:`_Rows`."""

    def __init__(self, d: int, k: int, extra_names: Sequence[str]) -> None:
        self.d, self.k = d, k
        self.extra_names = list(extra_names)
        self._reset()

    def _reset(self) -> None:
        d, k = self.d, self.k
        self.n = 0
        self.cap = 0
        self.ids: list[str] = []
        self.versions: list[str] = []
        self.extra: dict[str, list[pa.Scalar | None]] = {name: [] for name in self.extra_names}
        self.any_extra = False
        self.ts = np.empty(0, np.int64)
        self.ctx = np.empty((0, d))
        self.action = np.empty(0, np.int32)
        self.prop = np.empty(0)
        self.probs = np.empty((0, k))
        self.elig = np.empty((0, k), np.bool_)

    def add(
        self,
        event_id: str,
        ts: int,
        x: np.ndarray,
        index: int,
        propensity: float,
        probs: np.ndarray,
        mask: np.ndarray,
        version: str,
        extra: dict[str, pa.Scalar] | None,
    ) -> None:
        i = self.n
        if i == self.cap:
            self._grow()
        self.ts[i] = ts
        self.ctx[i] = x
        self.action[i] = index
        self.prop[i] = propensity
        self.probs[i] = probs
        self.elig[i] = mask
        self.ids.append(event_id)
        self.versions.append(version)
        if extra or self.any_extra:
            self.any_extra = True
            for name, values in self.extra.items():
                values.extend([None] * (i - len(values)))
                values.append(None if extra is None else extra.get(name))
        self.n = i + 1

    def _grow(self) -> None:
        cap = max(_MIN_CAPACITY, 2 * self.cap)
        n = self.n
        for attr in ("ts", "ctx", "action", "prop", "probs", "elig"):
            old = getattr(self, attr)
            new = np.empty((cap, *old.shape[1:]), dtype=old.dtype)
            new[:n] = old[:n]
            setattr(self, attr, new)
        self.cap = cap

    def freeze(self, types: Mapping[str, pa.DataType]) -> _Rows:
        """The buffered rows (views of the arrays, which this buffer gives up); the buffer is empty afterwards."""
        n = self.n
        extra = {}
        if self.any_extra:
            for name, values in self.extra.items():
                values.extend([None] * (n - len(values)))
                if any(v is not None for v in values):
                    extra[name] = pa.array(values, types[name])
        rows = _Rows(
            self.ids, self.ts[:n], self.ctx[:n], self.action[:n], self.prop[:n], self.probs[:n], self.elig[:n],
            self.versions, extra,
        )
        self._reset()  # fresh arrays: the old ones now belong to rows
        return rows


# ----------------------------------------------------------------------------------------------------------------
# temporaries
# ----------------------------------------------------------------------------------------------------------------


def _temp_owner(name: str) -> tuple[str, int] | None:
    """(host tag, pid) encoded in a temporary's name ``.part-...parquet.<host>-<pid>.tmp``, or None (older name)."""
    stem = name[: -len(".tmp")]
    tag = stem.rsplit(".", 1)[-1]
    host, sep, pid = tag.rpartition("-")
    if not sep or not pid.isdigit() or stem.endswith(".parquet"):
        return None
    return host, int(pid)


def _owner_alive(owner: tuple[str, int] | None) -> bool | None:
    """Whether the process that owns a temporary is alive: True / False, or None when it cannot be told (another
    host, an older temporary name, or a platform without signal 0)."""
    if owner is None or os.name == "nt":
        return None
    host, pid = owner
    if host != _HOST:
        return None
    if pid == os.getpid():
        return True  # another DecisionLog of this process may be writing it right now
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    except OSError:
        return None
    return True


def clean_orphan_temps(directory: Path, max_age: float | None = None) -> list[Path]:
    """Delete the temporaries (``.part-*.tmp``) in ``directory`` that no live writer can still be writing.

    A temporary is deleted when the process named in it (same host) no longer exists, or when it has not been
    modified for ``max_age`` seconds (default :data:`ORPHAN_TEMP_AGE`) -- whatever its owner. A temporary of a live
    writer on this host, or of any writer on another host, younger than that is kept. Deleting the temporary of a
    writer that is somehow still busy after that long only makes its rename fail: its ``flush`` raises and keeps the
    rows for the next one, so no row is lost. Returns the deleted paths.
    """
    limit = ORPHAN_TEMP_AGE if max_age is None else max_age
    now = time.time()
    deleted = []
    for entry in os.scandir(directory):
        name = entry.name
        if not (name.startswith(".part-") and name.endswith(".tmp")):
            continue
        try:
            age = now - entry.stat().st_mtime
        except FileNotFoundError:
            continue  # its writer just renamed it
        if _owner_alive(_temp_owner(name)) is False or age > limit:
            try:
                os.unlink(entry.path)
            except FileNotFoundError:
                continue
            deleted.append(Path(entry.path))
    return deleted


# ----------------------------------------------------------------------------------------------------------------
# writer
# ----------------------------------------------------------------------------------------------------------------


class DecisionLog:
    """Append-only, thread-safe decision log: validates and buffers decisions, writes them as atomic Parquet parts.

    Every row follows the decision-log schema of :mod:`offline_eval.schema` (``reward`` is null: outcomes are joined
    later by :func:`bandit.attribution.resolve_rewards`). Rows are validated when appended -- nothing invalid is ever
    buffered, so a write can only fail for reasons of the file system -- and buffered in preallocated arrays (a
    single :meth:`append` costs about 10 microseconds; :meth:`append_batch` about 0.4 microseconds per row). They are
    written as a new part every ``rows_per_part`` rows, on :meth:`flush`, :meth:`close` or leaving a ``with`` block.
    A part is written to a dot-prefixed temporary file in the log directory, fsynced, then renamed to
    ``part-<seq>-<uuid>.parquet``: a crash mid-write leaves earlier parts intact and at most a temporary that every
    reader ignores. If a write fails, its rows stay buffered and the next :meth:`flush` retries them; rows still
    buffered when the process dies are lost, so ``rows_per_part`` trades the number of part files against how many
    decisions a crash can lose. The append that fills a part writes it (about 50 ms of CPU for 50,000 rows of 32
    features) unless another thread is already writing; on a latency-sensitive path, lower ``rows_per_part`` or call
    :meth:`flush` off the request path.

    Eligibility is recorded, never inferred
    ---------------------------------------
    Each row stores the eligibility mask the decision was made under: ``decision.eligible`` (set by every policy's
    ``choose`` / ``choose_batch``), or an explicit ``eligible=`` argument, which is checked against the decision's
    probabilities (the chosen arm eligible, no probability on an ineligible arm). A hand-built decision without a
    mask and without ``eligible=`` is rejected. A decision that gives probability 0 to an *eligible* arm (a policy
    without exploration, e.g. ``LinUCB(exploration_floor=0)``) is logged, but the first one triggers a
    :class:`NoExplorationWarning` (once per ``DecisionLog``): offline evaluation cannot estimate policies that would
    choose those arms; set an ``exploration_floor`` on the logging policy when its logs must support offline
    evaluation.

    Event ids
    ---------
    ``event_id`` is required (the offer already went out under it, so the log cannot invent one: pass
    ``event_id=`` to ``policy.choose``). It must be a ``str`` of 1 to
    :data:`~offline_eval.schema.MAX_EVENT_ID_LENGTH` (256) characters that encodes as UTF-8 (no lone surrogates).
    **Uniqueness guarantee** (bounded memory): :meth:`append` / :meth:`append_batch` reject an id equal to the id of
    any of the last ``id_window`` rows of the log -- this writer's rows (buffered or written) and, when the directory
    already held parts at opening, the last rows of those parts, in part order. The log remembers at least
    ``id_window`` and at most ``id_window`` + (rows not yet written) ids, about 100 bytes each (20 MB at the
    default 200,000), however long it runs. A duplicate of an older id, or one written concurrently by another
    writer process on the same directory, is not detected at write time; every reader
    (:func:`read_decision_log`, :meth:`read`, ``LoggedData.from_parquet``) then keeps the first occurrence in log
    order and warns (:class:`~offline_eval.schema.DecisionLogWarning`) naming the dropped ids.

    Threads and processes
    ---------------------
    One instance may be shared by any number of threads. An internal lock guards the buffer: each :meth:`append` /
    :meth:`append_batch` is atomic (all of its rows or none, a batch's rows contiguous), each row is written
    exactly once, and rows are written in the order in which their appends completed. The lock is held only to
    check ids and copy rows into the buffer, never while a part is encoded and written: :meth:`flush` takes the
    buffered rows, then writes them while other threads keep appending. Writes are serialised (a second lock), and
    when :meth:`flush` returns, every row appended -- by any thread -- before it was called is on disk, fsynced
    (it survives ``kill -9``). Several processes may write to the same directory (part names never collide) with
    the caveat on id uniqueness above.

    Reopening and crashes
    ---------------------
    Opening a directory that already holds parts continues the log: they are read with the schema reader
    (:func:`offline_eval.schema.scan_parts`; stray, empty or foreign files are skipped with a
    :class:`~offline_eval.schema.DecisionLogWarning` naming them), must carry this log's arm list and extra columns,
    and new parts continue their sequence. Temporaries a crashed writer left behind are deleted, except those another
    live writer may be writing right now: a temporary names its writer's host and pid and is kept while that process
    is alive (and for temporaries of other hosts or older names) until it is :data:`ORPHAN_TEMP_AGE` seconds old.

    Caveats
    -------
    * **One arm list per log.** The log is bound to the arm list it was opened with (from ``policy.arm_names`` or
      ``arms``). After a policy gains an arm, its decisions carry K + 1 probabilities and :meth:`append` raises a
      ``ValueError``: open a new ``DecisionLog`` in a new directory. Reopening a directory that holds parts for a
      different arm list (or different extra columns) also raises.
    * Timestamps are stored in UTC with microsecond resolution, years 1 to 9999; naive datetimes are taken as UTC.

    Parameters
    ----------
    path : str or path-like
        Log directory (created if missing). Existing parts are kept; new parts continue their sequence.
    policy : policy, optional
        The policy whose decisions are logged; supplies the arm list (``policy.arm_names``) and the ``policy``
        column (its class name). Give either ``policy`` or ``arms``.
    arms : list of str or Arm, optional
        Arm list in index order, when no policy object is at hand.
    policy_name : str, optional
        Value of the ``policy`` column; required with ``arms``, overrides the class name with ``policy``.
    rows_per_part : int, default 50_000
        Buffered rows that trigger writing a part; parts never hold more rows than this.
    extra_columns : mapping of str to pyarrow.DataType or type alias, optional
        Extra columns (raw user attributes, guardrail metrics), e.g. ``{"country": "string"}``, filled per row
        through ``append(..., extra={...})``; missing values are null.
    id_window : int, default :data:`DEFAULT_ID_WINDOW` (200,000)
        Number of most recent rows whose event ids are checked for duplicates (see above).

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from bandit import LinUCB
    >>> tmp = tempfile.TemporaryDirectory()
    >>> policy = LinUCB(["individual", "duo", "family"], n_features=2, exploration_floor=0.1, seed=0)
    >>> log = DecisionLog(tmp.name, policy, extra_columns={"country": "string"})
    >>> for i in range(3):
    ...     x = np.array([1.0, float(i)])
    ...     d = policy.choose(x, eligible=["duo", "family"], event_id=f"req-{i}")
    ...     log.append(d, x, timestamp=np.datetime64("2024-05-01T12:00") + i, extra={"country": "SE"})
    >>> log.n_buffered
    3
    >>> df = log.read()  # flushes, then reads what is on disk
    >>> df[["event_id", "action_name", "country"]].to_dict("list")
    {'event_id': ['req-0', 'req-1', 'req-2'], 'action_name': ['family', 'family', 'duo'], 'country': ['SE', 'SE', 'SE']}
    >>> df["eligible"][0].tolist(), df["probabilities"][0].tolist(), bool(df["reward"].isna().all())
    ([False, True, True], [0.0, 0.5, 0.5], True)
    >>> log.close()
    >>> tmp.cleanup()
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        policy: Any = None,
        *,
        arms: Sequence[Any] | None = None,
        policy_name: str | None = None,
        rows_per_part: int = 50_000,
        extra_columns: Mapping[str, pa.DataType | str] | None = None,
        id_window: int = DEFAULT_ID_WINDOW,
    ) -> None:
        if policy is not None and arms is not None:
            raise ValueError("give either policy or arms, not both: the arm list comes from one place")
        if policy is not None:
            arm_names, default_name = policy_arms_and_name(policy)
        elif arms is not None:
            arm_names, default_name = [a.name for a in as_arms(arms)], None
        else:
            raise ValueError("DecisionLog needs the arm list: pass policy=<the policy> or arms=[names]")
        if policy_name is None:
            if default_name is None:
                raise ValueError("policy_name is required with arms=: it fills the log's 'policy' column")
            policy_name = default_name
        if not isinstance(policy_name, str) or not policy_name:
            raise ValueError(f"policy_name must be a non-empty string, got {policy_name!r}")
        for name, text in [("policy_name", policy_name), *(("arms", a) for a in arm_names)]:
            _check_utf8(text, name)
        for name, value in (("rows_per_part", rows_per_part), ("id_window", id_window)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")

        self._extra_fields = self._check_extra_columns(extra_columns)
        self._extra_types = {f.name: f.type for f in self._extra_fields}
        self._arms: list[str] = arm_names
        self._arm_index = {name: i for i, name in enumerate(arm_names)}
        self._arm_objects = np.array(arm_names, dtype=object)
        self._k = len(arm_names)
        self._policy_name = policy_name
        self._rows_per_part = int(rows_per_part)
        self._id_window = int(id_window)
        decision_log_schema(1, arm_names)  # arm list checks (non-empty, unique) before touching the directory
        self._dir = Path(path)
        if self._dir.exists() and not self._dir.is_dir():
            raise ValueError(f"path must be a directory for the log's part files, {str(self._dir)!r} is a file")
        self._dir.mkdir(parents=True, exist_ok=True)

        self._lock = threading.Lock()  # buffer, id window, closed flag
        self._write_lock = threading.Lock()  # one part writer at a time; guards _seq
        self._d: int | None = None
        self._schema: pa.Schema | None = None
        self._seq = 0
        self._pending: deque[_Rows] = deque()  # frozen rows, oldest first; then self._open
        self._open: _RowBuffer | None = None
        self._n_pending = 0  # rows in _pending and _open
        self._in_flight = 0  # rows taken by the writer, not yet committed
        self._recent: deque[str] = deque()  # ids of the most recent rows, oldest first
        self._recent_set: set[str] = set()
        self._recent_on_disk = 0  # how many of the oldest ids in _recent belong to rows on disk
        self._warned_no_exploration = False
        self._closed = False
        clean_orphan_temps(self._dir)
        self._adopt_existing_parts()

    # --- construction helpers --------------------------------------------------------------------------------

    @staticmethod
    def _check_extra_columns(extra_columns: Mapping[str, pa.DataType | str] | None) -> list[pa.Field]:
        if extra_columns is None:
            return []
        if not isinstance(extra_columns, Mapping):
            raise TypeError(
                "extra_columns must map column names to Arrow types, e.g. {'country': 'string'}, got "
                f"{type(extra_columns).__name__}"
            )
        fields = []
        for name, typ in extra_columns.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"extra_columns names must be non-empty strings, got {name!r}")
            if name in DECISION_COLUMNS:
                raise ValueError(f"extra_columns name {name!r} clashes with a standard decision-log column")
            if isinstance(typ, str):
                try:
                    typ = pa.type_for_alias(typ)
                except ValueError:
                    raise ValueError(
                        f"extra_columns[{name!r}] = {typ!r} is not an Arrow type alias (e.g. 'string', 'int64', "
                        "'float64', 'bool')"
                    ) from None
            elif not isinstance(typ, pa.DataType):
                raise TypeError(
                    f"extra_columns[{name!r}] must be a pyarrow.DataType or type alias string, got "
                    f"{type(typ).__name__}"
                )
            fields.append(pa.field(name, typ, nullable=True))
        return fields

    def _adopt_existing_parts(self) -> None:
        """Check the parts already in the directory against this log, continue their sequence, remember their last
        ``id_window`` event ids."""
        for name in os.listdir(self._dir):
            seq = part_sequence(name)
            if seq is not None:
                self._seq = max(self._seq, seq + 1)  # skipped parts too: keep names in write order
        parts = scan_parts(self._dir)
        mine = [(f.name, f.type) for f in self._extra_fields]
        for info in parts:
            if info.arms != self._arms:
                raise ValueError(
                    f"{str(self._dir)!r} already holds a log for arms {info.arms}, this DecisionLog is for "
                    f"{self._arms}; a log is bound to one arm list -- open the DecisionLog in a new directory"
                )
            theirs = [(f.name, f.type) for f in info.extra_fields]
            if theirs != mine:
                raise ValueError(
                    f"{info.path} has extra columns {theirs}, this DecisionLog declares {mine} (extra_columns must "
                    "match the existing parts); open a new directory"
                )
            if self._d is None:
                self._bind_n_features(info.n_features)
            elif info.n_features != self._d:
                raise ValueError(
                    f"parts in {str(self._dir)!r} disagree on the context length ({self._d} vs {info.n_features})"
                )
        chunks: list[list[str]] = []
        have = 0
        for info in reversed(parts):
            if have >= self._id_window:
                break
            try:
                ids = pq.read_table(info.path, columns=["event_id"]).column(0).to_pylist()
            except (OSError, pa.ArrowException):
                continue  # the readers skip it with a warning too
            chunks.append(ids)
            have += len(ids)
        ids = [e for chunk in reversed(chunks) for e in chunk][-self._id_window :]
        for e in ids:
            if e not in self._recent_set:
                self._recent_set.add(e)
                self._recent.append(e)
        self._recent_on_disk = len(self._recent)

    def _bind_n_features(self, d: int) -> None:
        self._d = d
        self._schema = decision_log_schema(d, self._arms, extra_fields=self._extra_fields)
        self._open = _RowBuffer(d, self._k, list(self._extra_types))

    # --- properties ------------------------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The log directory."""
        return self._dir

    @property
    def arms(self) -> list[str]:
        """Arm names in index order (the log's ``action`` indexes this list)."""
        return list(self._arms)

    @property
    def n_features(self) -> int | None:
        """Context length d, fixed by the first row (or existing parts); ``None`` before that."""
        return self._d

    @property
    def n_buffered(self) -> int:
        """Rows appended but not yet written to a part file (including rows being written right now)."""
        with self._lock:
            return self._n_pending + self._in_flight

    @property
    def id_window(self) -> int:
        """Number of most recent rows whose event ids are checked for duplicates."""
        return self._id_window

    # --- validation (no state is touched) ---------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("this DecisionLog is closed; open a new DecisionLog on the same path to keep logging")

    def _k_mismatch(self, k: int, name: str) -> ValueError:
        return ValueError(
            f"{name} has {k} arm probabilities, this log is bound to {self._k} arms {self._arms}; a log holds one "
            "arm list -- after adding or retiring arms, open a new DecisionLog (new directory) for the new arm list"
        )

    def _as_mask(self, eligible: Any, name: str) -> np.ndarray:
        if type(eligible) is np.ndarray and eligible.dtype == np.bool_:
            return eligible
        if isinstance(eligible, str):
            raise TypeError(f"{name} must be a boolean mask or a list of arm names, got a single str {eligible!r}")
        if isinstance(eligible, Sequence) and eligible and all(isinstance(e, str) for e in eligible):
            unknown = [e for e in eligible if e not in self._arm_index]
            if unknown:
                raise ValueError(f"{name} names unknown arms {unknown}; this log's arms are {self._arms}")
            mask = np.zeros(self._k, dtype=np.bool_)
            mask[[self._arm_index[e] for e in eligible]] = True
            return mask
        try:
            mask = np.asarray(eligible)
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be a boolean mask or a list of arm names, got {type(eligible).__name__}")
        if mask.dtype != np.bool_:
            raise TypeError(f"{name} must be a boolean mask or a list of arm names, got dtype {mask.dtype}")
        return mask

    def _check_probabilities(self, probs: Any, name: str, n: int | None) -> np.ndarray:
        """``probs`` as float64 (K,) (``n`` None) or (n, K), each row a distribution."""
        try:
            p = np.asarray(probs, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be an array of floats, got {type(probs).__name__}") from None
        shape = (self._k,) if n is None else (n, self._k)
        if p.shape != shape:
            if p.ndim == len(shape) and p.shape[:-1] == shape[:-1]:
                raise self._k_mismatch(p.shape[-1], name)
            raise ValueError(f"{name} must have shape {shape}, got {p.shape}")
        if p.size:
            # min / max propagate NaN, so every non-finite entry fails the range check; then the sums are finite
            if not (p.min() >= 0.0 and p.max() <= 1.0 + PROBABILITY_ATOL):
                raise self._not_a_distribution(name)
            if not np.all(np.abs(p.sum(axis=-1) - 1.0) <= PROBABILITY_ATOL):
                raise self._not_a_distribution(name)
        return p

    def _not_a_distribution(self, name: str) -> ValueError:
        return ValueError(
            f"{name} must be a probability distribution over the {self._k} arms (entries in [0, 1], summing to 1 "
            f"within {PROBABILITY_ATOL:g}); check the decision came from a bandit policy"
        )

    def _check_masks(self, mask: np.ndarray, probs: np.ndarray, indices: np.ndarray, name: str) -> None:
        """(n, K) ``mask`` allows the chosen arms and excludes no arm of positive probability."""
        if mask.shape != probs.shape:
            raise ValueError(f"{name} must have shape {probs.shape} (one row per decision, one entry per arm), got "
                             f"shape {mask.shape}")
        if len(mask) and not mask[np.arange(len(mask)), indices].all():
            raise ValueError(f"{name} marks a chosen arm as ineligible")
        if np.any(probs[~mask] != 0.0):
            raise ValueError(f"{name} marks arms ineligible that batch.probabilities gives positive probability")

    def _check_version(self, version: Any, name: str) -> str:
        if not isinstance(version, str):
            raise TypeError(f"{name} must be a str, got {type(version).__name__}")
        _check_utf8(version, name)
        return version

    @staticmethod
    def _check_ts_range(us: np.ndarray | int, name: str) -> None:
        if np.any(us < _MIN_US) or np.any(us > _MAX_US):
            raise ValueError(f"{name} must lie between the years 1 and 9999 (UTC)")

    def _extra_row(self, extra: Any) -> dict[str, pa.Scalar]:
        if not isinstance(extra, Mapping):
            raise TypeError(f"extra must be a dict of extra column values, got {type(extra).__name__}")
        row = {}
        for name, value in extra.items():
            if name not in self._extra_types:
                raise ValueError(
                    f"extra column {name!r} was not declared; declare it in DecisionLog(extra_columns=...) "
                    f"(declared: {sorted(self._extra_types)})"
                )
            try:
                row[name] = pa.scalar(value, type=self._extra_types[name])
            except (pa.ArrowException, TypeError, ValueError, OverflowError):
                raise ValueError(
                    f"extra[{name!r}] = {value!r} does not fit the column type {self._extra_types[name]}"
                ) from None
        return row

    def _extra_batch(self, extra: Any, n: int) -> dict[str, pa.Array]:
        if extra is None:
            return {}
        if not isinstance(extra, Mapping):
            raise TypeError(f"extra must be a dict of column -> values, got {type(extra).__name__}")
        columns = {}
        for name, values in extra.items():
            if name not in self._extra_types:
                raise ValueError(
                    f"extra column {name!r} was not declared; declare it in DecisionLog(extra_columns=...) "
                    f"(declared: {sorted(self._extra_types)})"
                )
            typ = self._extra_types[name]
            if isinstance(values, str | bytes | Mapping):
                raise TypeError(f"extra[{name!r}] must be a sequence of {n} values, got {type(values).__name__}")
            try:
                if isinstance(values, pa.Array | pa.ChunkedArray):
                    col = values.cast(typ)
                elif isinstance(values, np.ndarray | pd.Series):
                    col = pa.array(np.array(values, copy=True), typ)  # a copy: the caller may reuse the array
                else:
                    col = pa.array(list(values), typ)
            except TypeError:
                raise TypeError(f"extra[{name!r}] must be a sequence of {n} values of type {typ}") from None
            except (pa.ArrowException, ValueError, OverflowError):
                raise ValueError(f"extra[{name!r}] values do not fit the column type {typ}") from None
            if isinstance(col, pa.ChunkedArray):
                col = col.combine_chunks()
            if len(col) != n:
                raise ValueError(f"extra[{name!r}] must hold {n} values (one per decision), got {len(col)}")
            columns[name] = col
        return columns

    # --- appending ---------------------------------------------------------------------------------------------

    def append(
        self,
        decision: Decision,
        context: Any,
        timestamp: datetime | np.datetime64 | str | None = None,
        eligible: Any = None,
        *,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """Validate and buffer one decision (thread-safe).

        Parameters
        ----------
        decision : Decision
            The decision as returned by ``policy.choose``; its ``event_id`` must be set.
        context : array-like of float, shape (d,)
            The feature vector the policy saw; d is fixed by the first row of the log.
        timestamp : datetime, numpy.datetime64, pandas.Timestamp or ISO str, optional
            When the decision was made; naive values are UTC. Default: now (UTC).
        eligible : array-like of bool, shape (K,), or list of arm names, optional
            The eligibility mask the decision was made under. Default ``decision.eligible`` (recorded by the
            policy); required for a hand-built decision without one. Never inferred from the probabilities.
        extra : mapping, optional
            Values of the log's ``extra_columns`` for this row; missing ones are null.

        Raises
        ------
        TypeError
            ``decision`` is not a Decision; ``event_id``, ``policy_version``, ``context``, ``timestamp``,
            ``eligible`` or ``extra`` of the wrong type.
        ValueError
            Missing, empty, too long (> 256 characters), non-UTF-8 or recently used ``event_id`` (see the class
            docstring); wrong or non-finite context; a decision with a different number of arms than the log (open a
            new log); probabilities that are not a distribution or disagree with the propensity; no eligibility mask,
            or one that excludes the chosen arm or gives probability to an ineligible arm; an unknown extra column or
            a value that does not fit its type; a timestamp outside the years 1-9999.
            The log is unchanged.

        Warns
        -----
        NoExplorationWarning
            The first time (per log) a decision gives probability 0 to an eligible arm.
        """
        self._check_open()
        if not isinstance(decision, Decision):
            raise TypeError(f"decision must be a bandit Decision, got {type(decision).__name__}")
        event_id = decision.event_id
        if event_id is None:
            raise ValueError(
                "decision.event_id must be a non-empty string, got None: the offer already went out under some id, "
                "so the log cannot invent one -- pass event_id=... to policy.choose()"
            )
        check_event_ids([event_id], "decision.event_id")
        probs = decision.probabilities
        if type(probs) is not np.ndarray or probs.dtype != np.float64 or probs.shape != (self._k,):
            probs = self._check_probabilities(probs, "decision.probabilities", None)
        pl = probs.tolist()  # K Python floats: cheaper to check than K-element numpy reductions
        total = sum(pl)
        if not (min(pl) >= 0.0 and max(pl) <= 1.0 + PROBABILITY_ATOL and abs(total - 1.0) <= PROBABILITY_ATOL):
            raise self._not_a_distribution("decision.probabilities")
        index = decision.index
        if (
            type(index) is not int
            and (isinstance(index, bool) or not isinstance(index, numbers.Integral))
            or not 0 <= index < self._k
            or self._arms[index] != decision.arm
        ):
            raise ValueError(
                f"decision chose arm {decision.arm!r} at index {index!r}, but this log's arm list is {self._arms}; "
                "log each arm list in its own DecisionLog"
            )
        index = int(index)
        propensity = decision.propensity
        if type(propensity) is not float and (isinstance(propensity, bool) or not isinstance(propensity, numbers.Real)):
            raise TypeError(f"decision.propensity must be a float, got {type(propensity).__name__}")
        propensity = float(propensity)
        if not 0.0 < propensity <= 1.0:
            raise ValueError(f"decision.propensity must be in (0, 1], got {propensity}")
        if abs(propensity - pl[index]) > PROBABILITY_ATOL:
            raise ValueError(
                f"decision.propensity {propensity} differs from decision.probabilities[{index}] = {pl[index]}"
            )
        version = self._check_version(decision.policy_version, "decision.policy_version")
        x = context
        if type(x) is not np.ndarray or x.dtype != np.float64:
            try:
                x = np.asarray(context, dtype=np.float64)
            except (TypeError, ValueError):
                raise TypeError(f"context must be an array of floats, got {type(context).__name__}") from None
        if x.ndim != 1:
            raise ValueError(f"context must be 1-D (one row of features), got shape {x.shape}")
        if x.shape[0] == 0:
            raise ValueError("context must have at least one feature")
        if not math.isfinite(x.sum()) and not np.isfinite(x).all():
            raise ValueError("context contains NaN or infinite values; impute missing features before deciding")
        if timestamp is None:
            ts = time.time_ns() // 1000
        else:
            ts = utc_us(timestamp, "timestamp")
            self._check_ts_range(ts, "timestamp")
        if eligible is None:
            if decision.eligible is None:
                raise ValueError(
                    "decision.eligible is None (a hand-built Decision) and no eligible= was given: the log records "
                    "the eligibility mask the decision was made under and never infers it -- pass eligible=<mask or "
                    "arm names> or build the Decision with eligible="
                )
            name, mask = "decision.eligible", self._as_mask(decision.eligible, "decision.eligible")
        else:
            name, mask = "eligible", self._as_mask(eligible, "eligible")
        if mask.shape != (self._k,):
            raise ValueError(f"{name} must have shape ({self._k},) (one entry per arm), got shape {mask.shape}")
        ml = mask.tolist()
        if not ml[index]:
            raise ValueError(f"{name} marks the chosen arm {self._arms[index]!r} as ineligible")
        if any(p != 0.0 and not m for p, m in zip(pl, ml, strict=True)):
            raise ValueError(f"{name} marks arms ineligible that decision.probabilities gives positive probability")
        no_exploration = any(m and p == 0.0 for p, m in zip(pl, ml, strict=True))
        row_extra = None if extra is None else self._extra_row(extra)

        with self._lock:
            self._check_open()
            if self._d is None:
                self._bind_n_features(x.shape[0])
            elif x.shape[0] != self._d:
                raise ValueError(f"context has {x.shape[0]} features, this log's rows have {self._d}")
            if event_id in self._recent_set:
                raise ValueError(
                    f"decision.event_id {event_id!r} was already appended to this log; event ids are unique"
                )
            assert self._open is not None
            self._open.add(event_id, ts, x, index, propensity, probs, mask, version, row_extra)
            self._remember([event_id])
            self._n_pending += 1
            full = self._n_pending >= self._rows_per_part
            warn = no_exploration and not self._warned_no_exploration
            self._warned_no_exploration |= warn
        if warn:
            self._warn_no_exploration(event_id)
        if full:
            self._write(full_parts_only=True, wait=False)

    def append_batch(
        self,
        batch: BatchDecision,
        X: Any,
        timestamps: Any = None,
        eligible: Any = None,
        *,
        extra: Mapping[str, Sequence[Any]] | None = None,
    ) -> None:
        """Validate and buffer n decisions made at once (thread-safe; all or nothing).

        About 20 ms of CPU for n = 50,000 rows of d = 32 features, plus writing the part(s) it fills (about 50 ms
        for such a part; see the class docstring).

        Parameters
        ----------
        batch : BatchDecision
            As returned by ``policy.choose_batch``; every ``event_ids`` entry must be set.
        X : array-like of float, shape (n, d)
            The contexts, one row per decision (copied).
        timestamps : timestamp or array-like of timestamps, shape (n,), optional
            One timestamp for the whole batch or one per row (naive = UTC). Default: now (UTC).
        eligible : array-like of bool, shape (n, K), optional
            Eligibility masks. Default ``batch.eligible`` (recorded by the policy); required for a hand-built batch
            without one.
        extra : mapping of str to sequence, optional
            Per extra column, n values.

        Raises
        ------
        TypeError, ValueError
            As :meth:`append`, checked for the whole batch before any row is buffered; also duplicate ids within the
            batch.

        Warns
        -----
        NoExplorationWarning
            As :meth:`append`.
        """
        self._check_open()
        if not isinstance(batch, BatchDecision):
            raise TypeError(f"batch must be a bandit BatchDecision, got {type(batch).__name__}")
        indices = np.asarray(batch.indices)
        if indices.ndim != 1 or (indices.dtype.kind not in "iu" and len(indices)):
            raise ValueError(f"batch.indices must be a 1-D array of ints, got shape {indices.shape} {indices.dtype}")
        n = len(indices)
        probs = self._check_probabilities(batch.probabilities, "batch.probabilities", n)
        raw_ids = batch.event_ids
        if not isinstance(raw_ids, list | tuple) or len(raw_ids) != n:
            raise ValueError(f"batch.event_ids must be a list of {n} ids, got {type(raw_ids).__name__}")
        ids = cast(list[str], list(raw_ids))  # checked just below
        if None in ids:
            raise ValueError(
                f"batch.event_ids must hold {n} non-empty strings, found None: the offers already went out, so the "
                "log cannot invent ids -- pass event_ids=... to policy.choose_batch()"
            )
        check_event_ids(ids, "batch.event_ids")
        if len(set(ids)) != n:
            dupes = pd.Index(ids)[pd.Index(ids).duplicated()].unique().tolist()
            raise ValueError(f"batch.event_ids must be unique, duplicated: {dupes[:5]}")
        if n and (indices.min() < 0 or indices.max() >= self._k):
            raise ValueError(f"batch.indices must be in [0, {self._k}), got range [{indices.min()}, {indices.max()}]")
        arms = batch.arms
        if not isinstance(arms, list | tuple) or len(arms) != n or self._arm_objects[indices].tolist() != list(arms):
            raise ValueError(
                f"batch.arms do not match batch.indices under this log's arm list {self._arms}; log each arm list "
                "in its own DecisionLog"
            )
        try:
            props = np.array(batch.propensities, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"batch.propensities must be floats, got {type(batch.propensities).__name__}") from None
        if props.shape != (n,) or not np.all((props > 0.0) & (props <= 1.0)):
            raise ValueError(f"batch.propensities must be {n} values in (0, 1]")
        if n and np.any(np.abs(props - probs[np.arange(n), indices]) > PROBABILITY_ATOL):
            raise ValueError("batch.propensities differ from batch.probabilities at the chosen arms")
        version = self._check_version(batch.policy_version, "batch.policy_version")
        try:
            x = np.array(X, dtype=np.float64)  # a copy: the caller may reuse X
        except (TypeError, ValueError):
            raise TypeError(f"X must be a 2-D array of floats, got {type(X).__name__}") from None
        if x.ndim != 2 or x.shape[0] != n:
            raise ValueError(f"X must have shape (n, d) with n={n} rows (one per decision), got {x.shape}")
        if x.shape[1] == 0:
            raise ValueError("X must have at least one feature column")
        if not np.isfinite(x).all():
            raise ValueError("X contains NaN or infinite values; impute missing features before deciding")
        if timestamps is None:
            ts = np.full(n, time.time_ns() // 1000, dtype=np.int64)
        elif isinstance(timestamps, datetime | np.datetime64 | str):
            ts = np.full(n, utc_us(timestamps, "timestamps"), dtype=np.int64)
        else:
            ts = _timestamps_us(timestamps)
            if ts.shape != (n,):
                raise ValueError(f"timestamps must be one timestamp or {n} of them, got shape {ts.shape}")
        self._check_ts_range(ts, "timestamps")
        if eligible is None:
            if batch.eligible is None:
                raise ValueError(
                    "batch.eligible is None (a hand-built BatchDecision) and no eligible= was given: the log records "
                    "the eligibility masks the decisions were made under and never infers them -- pass "
                    "eligible=<(n, K) boolean mask>"
                )
            name = "batch.eligible"
            mask = np.asarray(batch.eligible)
        else:
            name = "eligible"
            mask = np.asarray(eligible)
        if mask.dtype != np.bool_:
            raise TypeError(f"{name} must be a boolean array of shape ({n}, {self._k}), got dtype {mask.dtype}")
        self._check_masks(mask, probs, indices, name)
        no_exploration = bool(np.any(mask & (probs == 0.0)))
        columns = self._extra_batch(extra, n)
        if n == 0:
            return
        rows = _Rows(
            ids, ts, x, indices.astype(np.int32), props, np.array(probs, copy=True), np.array(mask, copy=True),
            version, columns,
        )

        with self._lock:
            self._check_open()
            if self._d is None:
                self._bind_n_features(x.shape[1])
            elif x.shape[1] != self._d:
                raise ValueError(f"X has {x.shape[1]} features, this log's rows have {self._d}")
            clash = self._recent_set.intersection(ids)
            if clash:
                raise ValueError(f"batch.event_ids already appended to this log: {sorted(clash)[:5]}")
            self._freeze_open()
            self._pending.append(rows)
            self._remember(ids)
            self._n_pending += n
            full = self._n_pending >= self._rows_per_part
            warn = no_exploration and not self._warned_no_exploration
            self._warned_no_exploration |= warn
        if warn:
            first = int(np.flatnonzero((mask & (probs == 0.0)).any(axis=1))[0])
            self._warn_no_exploration(ids[first])
        if full:
            self._write(full_parts_only=True, wait=False)

    def _warn_no_exploration(self, event_id: str) -> None:
        warnings.warn(
            f"decision {event_id!r} gave probability 0 to an eligible arm: the logging policy does not explore, so "
            "offline evaluation cannot estimate policies that would choose such arms (support deficit). Set an "
            "exploration_floor on the logging policy (e.g. LinUCB(..., exploration_floor=0.05)) when its logs must "
            "support offline evaluation. (Warned once per DecisionLog.)",
            NoExplorationWarning,
            stacklevel=3,
        )

    # --- buffer and id window (call with self._lock held) -------------------------------------------------------

    def _remember(self, ids: list[str]) -> None:
        self._recent.extend(ids)
        self._recent_set.update(ids)
        self._forget()

    def _forget(self) -> None:
        """Drop the oldest remembered ids beyond ``id_window``, but only ids of rows already on disk."""
        excess = min(len(self._recent) - self._id_window, self._recent_on_disk)
        if excess > 0:
            popleft, discard = self._recent.popleft, self._recent_set.discard
            for _ in range(excess):
                discard(popleft())
            self._recent_on_disk -= excess

    def _freeze_open(self) -> None:
        if self._open is not None and self._open.n:
            self._pending.append(self._open.freeze(self._extra_types))

    def _take(self, limit: int) -> list[_Rows]:
        """Remove the oldest ``limit`` buffered rows from the buffer."""
        self._freeze_open()
        taken = []
        need = limit
        while need:
            rows = self._pending.popleft()
            if len(rows) > need:
                self._pending.appendleft(rows.slice(need, len(rows)))
                rows = rows.slice(0, need)
            taken.append(rows)
            need -= len(rows)
        self._n_pending -= limit
        return taken

    def _give_back(self, taken: list[_Rows], done: int) -> None:
        """Put the rows of ``taken`` after the first ``done`` back at the front of the buffer (a write failed)."""
        rest = []
        skip = done
        for rows in taken:
            if skip >= len(rows):
                skip -= len(rows)
                continue
            rest.append(rows.slice(skip, len(rows)) if skip else rows)
            skip = 0
        for rows in reversed(rest):
            self._pending.appendleft(rows)
            self._n_pending += len(rows)

    # --- writing -----------------------------------------------------------------------------------------------

    def _encode(self, rows: _Rows) -> pa.Table:
        assert self._schema is not None
        return encode_decisions(
            event_id=rows.ids,
            timestamp_us=rows.ts,
            context=rows.ctx,
            action=rows.action,
            propensity=rows.prop,
            probabilities=rows.probs,
            eligible=rows.elig,
            policy=self._policy_name,
            policy_version=rows.versions,
            arms=self._arms,
            extra=rows.extra,
            extra_fields=self._extra_fields,
            schema=self._schema,
        )

    def _write(self, full_parts_only: bool, wait: bool) -> None:
        """Write the buffered rows (only whole parts if asked) while appenders keep going.

        Rows leave the buffer when taken and are put back in front if their part cannot be written, so a failed
        write neither loses nor duplicates a row. ``wait=False``: return at once if another thread is writing.
        """
        if not self._write_lock.acquire(blocking=wait):
            return
        try:
            with self._lock:
                total = self._n_pending
                limit = total - total % self._rows_per_part if full_parts_only else total
                if not limit:
                    return
                taken = self._take(limit)
                self._in_flight = limit
            done = 0
            try:
                tables = [self._encode(rows) for rows in taken]
                table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
                while done < limit:
                    m = min(self._rows_per_part, limit - done)
                    self._write_part(table.slice(done, m))
                    done += m
                    with self._lock:
                        self._in_flight -= m
                        self._recent_on_disk += m
                        self._forget()
            finally:
                if done < limit:
                    with self._lock:
                        self._in_flight = 0
                        self._give_back(taken, done)
        finally:
            self._write_lock.release()

    def _write_part(self, table: pa.Table) -> Path:
        name = f"part-{self._seq:08d}-{uuid.uuid4().hex}.parquet"
        final = self._dir / name
        tmp = self._dir / f".{name}.{_HOST}-{os.getpid()}.tmp"
        try:
            with open(tmp, "wb") as fh:
                pq.write_table(table, fh, **_PARQUET_OPTIONS)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        except BaseException:
            try:
                tmp.unlink()
            except OSError:
                pass
            raise
        fsync_dir(self._dir)
        self._seq += 1
        return final

    def flush(self) -> None:
        """Write all buffered rows as part files (at most ``rows_per_part`` rows each); thread-safe.

        When it returns, every row appended (by any thread) before it was called is on disk. Other threads keep
        appending while it writes. If a write fails the exception propagates; rows of parts already written are not
        duplicated and the remaining rows stay buffered for the next flush.
        """
        self._write(full_parts_only=False, wait=True)

    def close(self) -> None:
        """Stop accepting appends and flush; later appends raise. Closing again retries a failed flush, else is a
        no-op."""
        with self._lock:
            self._closed = True
        self.flush()

    def __enter__(self) -> DecisionLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        # decisions buffered before an exception were shown to users: keep them
        self.close()

    def read(self) -> pd.DataFrame:
        """Flush, then read every committed part in the directory (including parts of other writers).

        Returns
        -------
        pandas.DataFrame
            As :func:`read_decision_log`; an empty frame with the log's columns if nothing was logged.
        """
        self.flush()
        parts = scan_parts(self._dir)
        if not parts:
            # context length is unknown before the first row; it does not affect an empty frame
            schema = decision_log_schema(self._d or 1, self._arms, extra_fields=self._extra_fields)
            return _frame(schema.empty_table(), self._arms)
        table, arms = read_parts(parts)
        return _frame(table, arms)

    def __repr__(self) -> str:
        return (
            f"DecisionLog(path={str(self._dir)!r}, arms={self._arms}, policy={self._policy_name!r}, "
            f"n_buffered={self.n_buffered})"
        )

