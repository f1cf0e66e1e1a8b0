"""Decision log: the Parquet writer (atomic part files) and reader of a log directory.

A :class:`DecisionLog` records every decision a policy makes in the decision-log schema of
:mod:`offline_eval.schema` -- the same files ``offline_eval`` reads. Conversions arrive later in an outcomes table
(``event_id``, ``timestamp``, ``reward``); :mod:`bandit.attribution` joins them to the decisions under an
attribution window and feeds them to a policy exactly once (what ``policy.update_from_log`` does).

Layout on disk
--------------
A log is a directory of part files ``part-<seq>-<uuid>.parquet``. Each part is written to a dot-prefixed temporary
file in the same directory, fsynced, then atomically renamed, so a crash while writing never corrupts or loses an
earlier part. The dot-prefixed temporaries a crash may leave behind are ignored by this module's readers and by
``pyarrow.dataset`` / ``pandas.read_parquet`` on the directory (they skip names starting with ``.`` or ``_``).

One log, one arm list
---------------------
A log directory is bound to one arm list (schema metadata ``upsell_bandit.arms``). Policies append new arms at the
end and keep the index of retired arms, so indices never change meaning; but a decision made after an arm was
added has K + 1 probabilities and does not fit the old schema. :class:`DecisionLog` then raises a ``ValueError``:
open a new ``DecisionLog`` in a new directory for the new arm list. :func:`bandit.attribution.apply_log` maps
logged actions to the policy by arm *name*, so logs written under different arm lists can all be applied to the same policy.
"""

from __future__ import annotations

import math
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bandit._fs import fsync_dir
from bandit._timestamps import utc_us, utc_us_array
from bandit.arms import as_arms
from bandit.decision import BatchDecision, Decision
from offline_eval.schema import (
    CONTEXT,
    DECISION_COLUMNS,
    META_ARMS,
    SCHEMA_VERSION,
    TIMESTAMP,
    arms_from_schema,
    decision_log_schema,
)

__all__ = ["DecisionLog", "read_decision_log"]

_PART_GLOB = "part-*.parquet"
_MIN_CAPACITY = 256


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


def _part_files(directory: Path) -> list[Path]:
    """Committed part files of a log directory, in write order (temporaries are dot-prefixed and never listed)."""

    def key(p: Path) -> tuple[int, str]:
        seq = p.name.split("-")[1]
        return (int(seq) if seq.isdigit() else -1, p.name)

    return sorted(directory.glob(_PART_GLOB), key=key)


def _frame(table: pa.Table, arms: list[str]) -> pd.DataFrame:
    df = table.to_pandas()
    df.attrs["arms"] = list(arms)
    df.attrs["schema_version"] = SCHEMA_VERSION
    return df


def _read_parts(parts: list[Path]) -> tuple[pa.Table, list[str]]:
    """Read and concatenate non-empty ``parts``; all must carry the same arm list."""
    tables = [pq.read_table(part) for part in parts]
    arm_lists = [arms_from_schema(t.schema) for t in tables]
    for part, part_arms in zip(parts, arm_lists, strict=True):
        if part_arms is None:
            raise ValueError(f"{part} has no {META_ARMS!r} schema metadata; it is not a decision-log part")
        if part_arms != arm_lists[0]:
            raise ValueError(
                f"{part} was written for arms {part_arms}, {parts[0]} for {arm_lists[0]}; a log directory holds one "
                "arm list -- move the parts of each arm list to their own directory"
            )
    return pa.concat_tables(tables), arm_lists[0]


def read_decision_log(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read every committed part file of a decision-log directory into one DataFrame.

    Parameters
    ----------
    path : str or path-like
        Directory written by :class:`DecisionLog`.

    Returns
    -------
    pandas.DataFrame
        One row per decision, columns in :data:`offline_eval.schema.DECISION_COLUMNS` order followed by any extra
        columns; ``context``, ``probabilities`` and ``eligible`` hold one numpy array per row; ``timestamp`` is
        ``datetime64[us, UTC]``. ``df.attrs["arms"]`` is the arm list (index order) and
        ``df.attrs["schema_version"]`` the schema version. Parts are concatenated in write order; temporary files
        left by an interrupted write are ignored.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from bandit.decision import Decision
    >>> tmp = tempfile.TemporaryDirectory()
    >>> d = Decision(arm="duo", index=1, propensity=0.75, probabilities=np.array([0.25, 0.75]),
    ...              scores=np.array([0.1, 0.3]), event_id="e1", policy_version="v1")
    >>> with DecisionLog(tmp.name, arms=["individual", "duo"], policy_name="LinUCB") as log:
    ...     log.append(d, [1.0, 0.5], timestamp="2024-05-01T12:00:00Z")
    >>> df = read_decision_log(tmp.name)
    >>> df[["event_id", "action_name", "propensity"]].to_dict("records")
    [{'event_id': 'e1', 'action_name': 'duo', 'propensity': 0.75}]
    >>> df.attrs["arms"]
    ['individual', 'duo']
    >>> tmp.cleanup()
    """
    directory = Path(path)
    if not directory.is_dir():
        raise ValueError(f"path must be a decision-log directory, {str(directory)!r} is not a directory")
    parts = _part_files(directory)
    if not parts:
        raise ValueError(
            f"path {str(directory)!r} holds no decision-log part files (part-*.parquet); check the path, or call "
            "DecisionLog.flush() before reading"
        )
    table, arms = _read_parts(parts)
    return _frame(table, arms)


# ----------------------------------------------------------------------------------------------------------------
# writer
# ----------------------------------------------------------------------------------------------------------------


class DecisionLog:
    """Append-only decision log: buffers decisions in memory and writes them as atomic Parquet part files.

    Every row follows the decision-log schema of :mod:`offline_eval.schema` (``reward`` is null: outcomes are joined
    later by :func:`bandit.attribution.resolve_rewards`). Rows are buffered in preallocated numpy arrays -- an :meth:`append` costs a
    few microseconds -- and written as a new part every ``rows_per_part`` rows, on :meth:`flush`, :meth:`close` or
    leaving a ``with`` block. A part is written to a dot-prefixed temporary file in the log directory, fsynced,
    then renamed to ``part-<seq>-<uuid>.parquet``: a crash mid-write leaves earlier parts intact and at most a
    temporary file that every reader ignores. If a write fails, the rows stay buffered and the next
    :meth:`flush` retries them; rows still buffered when the process dies are lost, so ``rows_per_part`` trades
    the number of part files against how many decisions a crash can lose. The append that fills a part pays for
    writing it (about 0.1 s for 50,000 rows of 32 features): on a latency-sensitive path, lower ``rows_per_part``
    or call :meth:`flush` off the request path.

    Caveats
    -------
    * **One arm list per log.** The log is bound to the arm list it was opened with (from ``policy.arm_names`` or
      ``arms``). After a policy gains an arm, its decisions carry K + 1 probabilities and :meth:`append` raises a
      ``ValueError``: open a new ``DecisionLog`` in a new directory. Reopening a directory that holds parts for a
      different arm list (or different extra columns) also raises.
    * **event_id is required.** The decision has already been shown to the user, so the log cannot invent an id
      the outcome pipeline would never know: pass ``event_id=`` to ``policy.choose`` (e.g. the request id). Ids
      must be unique; duplicates are rejected among buffered rows (ids already flushed are not remembered --
      :func:`bandit.attribution.resolve_rewards` rejects duplicates across the whole log).
    * **eligible** defaults to ``decision.probabilities > 0``. Passing the real eligibility mask is better: an
      eligible arm the policy gave probability 0 (a deterministic policy) is then recorded as eligible, which
      off-policy estimators need.
    * Timestamps are stored in UTC with microsecond resolution; naive datetimes are taken as UTC.
    * Not thread-safe: guard a shared instance with a lock, or give each worker its own instance on the same
      directory (part names never collide).

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

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from bandit.decision import Decision
    >>> tmp = tempfile.TemporaryDirectory()
    >>> log = DecisionLog(tmp.name, arms=["individual", "duo", "family"], policy_name="LinUCB",
    ...                   extra_columns={"country": "string"})
    >>> probs = np.array([0.1, 0.8, 0.1])
    >>> for i, arm in enumerate([1, 1, 2]):
    ...     d = Decision(arm=["individual", "duo", "family"][arm], index=arm, propensity=float(probs[arm]),
    ...                  probabilities=probs, scores=np.zeros(3), event_id=f"req-{i}", policy_version="v7")
    ...     log.append(d, [1.0, float(i)], timestamp=np.datetime64("2024-05-01T12:00") + i,
    ...                extra={"country": "SE"})
    >>> log.n_buffered
    3
    >>> df = log.read()  # flushes, then reads what is on disk
    >>> df[["event_id", "action", "action_name", "propensity", "country"]]
      event_id  action action_name  propensity country
    0    req-0       1         duo         0.8      SE
    1    req-1       1         duo         0.8      SE
    2    req-2       2      family         0.1      SE
    >>> df["eligible"][2].tolist(), bool(df["reward"].isna().all())
    ([True, True, True], True)
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
        if isinstance(rows_per_part, bool) or not isinstance(rows_per_part, int | np.integer) or rows_per_part < 1:
            raise ValueError(f"rows_per_part must be a positive int, got {rows_per_part!r}")

        self._extra_fields = self._check_extra_columns(extra_columns)
        self._arms: list[str] = arm_names
        self._arm_array = pa.array(arm_names, pa.string())
        self._k = len(arm_names)
        self._policy_name = policy_name
        self._rows_per_part = int(rows_per_part)
        self._dir = Path(path)
        if self._dir.exists() and not self._dir.is_dir():
            raise ValueError(f"path must be a directory for the log's part files, {str(self._dir)!r} is a file")
        self._dir.mkdir(parents=True, exist_ok=True)
        self._d: int | None = None
        self._seq = 0
        self._adopt_existing_parts()
        self._schema: pa.Schema | None = None if self._d is None else self._build_schema(self._d)

        self._n = 0
        self._cap = 0
        self._ids: set[str] = set()
        self._event_ids: list[str] = []
        self._versions: list[str] = []
        self._extra: dict[str, list[Any]] = {f.name: [] for f in self._extra_fields}
        self._closed = False

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

    def _build_schema(self, n_features: int) -> pa.Schema:
        return decision_log_schema(n_features, self._arms, extra_fields=self._extra_fields)

    def _adopt_existing_parts(self) -> None:
        """Check parts already in the directory against this log and continue their sequence numbers."""
        for part in _part_files(self._dir):
            schema = pq.read_schema(part)
            part_arms = arms_from_schema(schema)
            if part_arms != self._arms:
                raise ValueError(
                    f"{str(self._dir)!r} already holds a log for arms {part_arms}, this DecisionLog is for "
                    f"{self._arms}; a log is bound to one arm list -- open the DecisionLog in a new directory"
                )
            d = schema.field(CONTEXT).type.list_size
            expected = self._build_schema(d)
            if not schema.equals(expected, check_metadata=False):
                raise ValueError(
                    f"{part} has columns {schema.names} with types that differ from this DecisionLog's "
                    f"{expected.names} (extra_columns must match the existing parts); open a new directory"
                )
            if self._d is not None and d != self._d:
                raise ValueError(f"parts in {str(self._dir)!r} disagree on the context length ({self._d} vs {d})")
            self._d = d
            seq = part.name.split("-")[1]
            if seq.isdigit():
                self._seq = max(self._seq, int(seq) + 1)

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
        """Rows appended but not yet written to a part file."""
        return self._n

    # --- buffer management -----------------------------------------------------------------------------------

    def _buffers(self) -> tuple[tuple[str, tuple[int, ...], type], ...]:
        """(attribute, trailing shape, dtype) of each preallocated row buffer."""
        d, k = self._d, self._k
        return (
            ("_ctx", (d,), np.float64),
            ("_probs", (k,), np.float64),
            ("_elig", (k,), np.bool_),  # only meaningful where _has_mask
            ("_has_mask", (), np.bool_),  # False: eligible defaults to probabilities > 0, filled in at write time
            ("_action", (), np.int32),
            ("_prop", (), np.float64),
            ("_ts", (), np.int64),  # microseconds since the epoch, UTC
        )

    def _reserve(self, n_more: int) -> None:
        need = self._n + n_more
        if need <= self._cap:
            return
        cap = max(need, min(max(2 * self._cap, _MIN_CAPACITY), self._rows_per_part))
        n = self._n
        for attr, shape, dtype in self._buffers():
            new = np.empty((cap, *shape), dtype=dtype)
            if n:
                new[:n] = getattr(self, attr)[:n]
            setattr(self, attr, new)
        self._cap = cap

    def _bind_n_features(self, d: int) -> None:
        self._d = d
        self._schema = self._build_schema(d)

    def _drop_front(self, m: int) -> None:
        """Forget the first ``m`` buffered rows (they are on disk)."""
        n = self._n
        rest = n - m
        for attr, _, _ in self._buffers():
            arr = getattr(self, attr)
            arr[:rest] = arr[m:n]
        self._ids.difference_update(self._event_ids[:m])
        del self._event_ids[:m]
        del self._versions[:m]
        for values in self._extra.values():
            del values[:m]
        self._n = rest

    def _table(self, start: int, stop: int) -> pa.Table:
        d, k, n = self._d, self._k, stop - start
        action = self._action[start:stop]
        probs = self._probs[start:stop]
        eligible = probs > 0.0
        given = self._has_mask[start:stop]
        eligible[given] = self._elig[start:stop][given]
        arrays = [
            pa.array(self._event_ids[start:stop], pa.string()),
            pa.array(self._ts[start:stop], type=self._schema.field(TIMESTAMP).type),
            pa.FixedSizeListArray.from_arrays(pa.array(self._ctx[start:stop].reshape(n * d)), d),
            pa.array(action, pa.int32()),
            self._arm_array.take(pa.array(action)),
            pa.array(self._prop[start:stop], pa.float64()),
            pa.FixedSizeListArray.from_arrays(pa.array(probs.reshape(n * k)), k),
            pa.FixedSizeListArray.from_arrays(pa.array(eligible.reshape(n * k)), k),
            pa.repeat(self._policy_name, n),
            pa.array(self._versions[start:stop], pa.string()),
            pa.nulls(n, pa.float64()),
        ]
        arrays += [pa.array(self._extra[f.name][start:stop], f.type) for f in self._extra_fields]
        return pa.Table.from_arrays(arrays, schema=self._schema)

    def _write_part(self, table: pa.Table) -> Path:
        name = f"part-{self._seq:08d}-{uuid.uuid4().hex}.parquet"
        final = self._dir / name
        tmp = self._dir / f".{name}.tmp"
        try:
            with open(tmp, "wb") as fh:
                # keep the list child name "item" so the file's schema equals decision_log_schema exactly
                pq.write_table(table, fh, compression="zstd", use_compliant_nested_type=False)
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

    # --- public API ------------------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("this DecisionLog is closed; open a new DecisionLog on the same path to keep logging")

    def _k_mismatch(self, k: int, name: str) -> ValueError:
        return ValueError(
            f"{name} has {k} arm probabilities, this log is bound to {self._k} arms {self._arms}; a log holds one "
            "arm list -- after adding or retiring arms, open a new DecisionLog (new directory) for the new arm list"
        )

    def append(
        self,
        decision: Decision,
        context: Any,
        timestamp: datetime | np.datetime64 | str | None = None,
        eligible: Any = None,
        *,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """Buffer one decision.

        Parameters
        ----------
        decision : Decision
            The decision as returned by ``policy.choose``; its ``event_id`` must be set.
        context : array-like of float, shape (d,)
            The feature vector the policy saw; d is fixed by the first row of the log.
        timestamp : datetime, numpy.datetime64, pandas.Timestamp or ISO str, optional
            When the decision was made; naive values are UTC. Default: now (UTC).
        eligible : array-like of bool, shape (K,), or list of arm names, optional
            Eligibility mask at decision time. Default ``decision.probabilities > 0``; pass the real mask when a
            policy may give an eligible arm probability 0.
        extra : mapping, optional
            Values of the log's ``extra_columns`` for this row; missing ones are null.

        Raises
        ------
        ValueError
            Missing or duplicate ``event_id``, wrong context length, non-finite context, a decision with a
            different number of arms than the log (open a new log), an eligibility mask that excludes the chosen
            arm or gives probability to an ineligible one, an unknown extra column. The log is unchanged.
        """
        self._check_open()
        if not isinstance(decision, Decision):
            raise TypeError(f"decision must be a bandit Decision, got {type(decision).__name__}")
        event_id = decision.event_id
        if not isinstance(event_id, str) or not event_id:
            raise ValueError(
                f"decision.event_id must be a non-empty string, got {event_id!r}: the offer already went out "
                "under that id, so the log cannot invent one -- pass event_id=... to policy.choose()"
            )
        if event_id in self._ids:
            raise ValueError(f"decision.event_id {event_id!r} was already appended to this log; event ids are unique")
        probs = decision.probabilities
        if probs.shape != (self._k,):
            raise self._k_mismatch(probs.shape[0] if probs.ndim == 1 else -1, "decision.probabilities")
        index = decision.index
        if not 0 <= index < self._k or self._arms[index] != decision.arm:
            raise ValueError(
                f"decision chose arm {decision.arm!r} at index {index}, but this log's arm list is {self._arms}; "
                "log each arm list in its own DecisionLog"
            )
        propensity = decision.propensity
        if not 0.0 < propensity <= 1.0:
            raise ValueError(f"decision.propensity must be in (0, 1], got {propensity}")
        version = decision.policy_version
        if not isinstance(version, str):
            raise TypeError(f"decision.policy_version must be a str, got {type(version).__name__}")
        x = context
        if type(x) is not np.ndarray or x.dtype != np.float64:
            try:
                x = np.asarray(context, dtype=np.float64)
            except (TypeError, ValueError):
                raise TypeError(f"context must be an array of floats, got {type(context).__name__}") from None
        if x.ndim != 1:
            raise ValueError(f"context must be 1-D (one row of features), got shape {x.shape}")
        if self._d is not None and x.shape[0] != self._d:
            raise ValueError(f"context has {x.shape[0]} features, this log's rows have {self._d}")
        if x.shape[0] == 0:
            raise ValueError("context must have at least one feature")
        if not math.isfinite(x.sum()) and not np.isfinite(x).all():
            raise ValueError("context contains NaN or infinite values")
        ts = time.time_ns() // 1000 if timestamp is None else utc_us(timestamp, "timestamp")
        mask = None if eligible is None else self._eligible_row(eligible, probs, index)
        if extra is not None:
            row_extra = self._extra_row(extra)

        # commit: nothing below can fail except memory allocation
        if self._d is None:
            self._bind_n_features(x.shape[0])
        i = self._n
        if i == self._cap:
            self._reserve(1)
        self._ctx[i] = x
        self._probs[i] = probs
        if mask is None:
            self._has_mask[i] = False
        else:
            self._has_mask[i] = True
            self._elig[i] = mask
        self._action[i] = index
        self._prop[i] = propensity
        self._ts[i] = ts
        self._event_ids.append(event_id)
        self._ids.add(event_id)
        self._versions.append(version)
        if self._extra:
            for name, values in self._extra.items():
                values.append(row_extra.get(name) if extra is not None else None)
        self._n = i + 1
        if self._n >= self._rows_per_part:
            self._write_buffered(full_parts_only=True)

    def _eligible_row(self, eligible: Any, probs: np.ndarray, index: int) -> np.ndarray:
        mask = self._as_mask(eligible, "eligible")
        if mask.shape != (self._k,):
            raise ValueError(f"eligible must have one entry per arm ({self._k}), got shape {mask.shape}")
        if not mask[index]:
            raise ValueError(f"eligible marks the chosen arm {self._arms[index]!r} as ineligible")
        if probs[~mask].any():
            raise ValueError("eligible marks arms ineligible that decision.probabilities gives positive probability")
        return mask

    def _as_mask(self, eligible: Any, name: str) -> np.ndarray:
        if type(eligible) is np.ndarray and eligible.dtype == np.bool_:
            return eligible
        if isinstance(eligible, Sequence) and not isinstance(eligible, str) and eligible and all(
            isinstance(e, str) for e in eligible
        ):
            unknown = [e for e in eligible if e not in self._arms]
            if unknown:
                raise ValueError(f"{name} names unknown arms {unknown}; this log's arms are {self._arms}")
            return np.isin(np.asarray(self._arms, dtype=object), list(eligible))
        mask = np.asarray(eligible)
        if mask.dtype != np.bool_:
            raise TypeError(f"{name} must be a boolean mask or a list of arm names, got dtype {mask.dtype}")
        return mask

    def _extra_row(self, extra: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(extra, Mapping):
            raise TypeError(f"extra must be a dict of extra column values, got {type(extra).__name__}")
        types = {f.name: f.type for f in self._extra_fields}
        for name, value in extra.items():
            if name not in types:
                raise ValueError(
                    f"extra column {name!r} was not declared; declare it in DecisionLog(extra_columns=...) "
                    f"(declared: {sorted(types)})"
                )
            try:
                pa.scalar(value, type=types[name])
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
                raise ValueError(f"extra[{name!r}] = {value!r} does not fit the column type {types[name]}") from None
        return dict(extra)

    def append_batch(
        self,
        batch: BatchDecision,
        X: Any,
        timestamps: Any = None,
        eligible: Any = None,
        *,
        extra: Mapping[str, Sequence[Any]] | None = None,
    ) -> None:
        """Buffer n decisions made at once.

        Parameters
        ----------
        batch : BatchDecision
            As returned by ``policy.choose_batch``; every ``event_ids`` entry must be set.
        X : array-like of float, shape (n, d)
            The contexts, one row per decision.
        timestamps : timestamp or array-like of timestamps, shape (n,), optional
            One timestamp for the whole batch or one per row (naive = UTC). Default: now (UTC).
        eligible : array-like of bool, shape (n, K), optional
            Eligibility masks. Default ``batch.probabilities > 0``.
        extra : mapping of str to sequence, optional
            Per extra column, n values.

        Raises
        ------
        ValueError
            As :meth:`append`, checked for the whole batch before any row is buffered.
        """
        self._check_open()
        if not isinstance(batch, BatchDecision):
            raise TypeError(f"batch must be a bandit BatchDecision, got {type(batch).__name__}")
        n = len(batch)
        probs = np.asarray(batch.probabilities, dtype=np.float64)
        if probs.ndim != 2 or probs.shape[0] != n:
            raise ValueError(f"batch.probabilities must have shape (n, K) with n={n}, got {probs.shape}")
        if probs.shape[1] != self._k:
            raise self._k_mismatch(probs.shape[1], "batch.probabilities")
        ids = list(batch.event_ids)
        bad = [e for e in ids if not isinstance(e, str) or not e]
        if len(ids) != n or bad:
            raise ValueError(
                f"batch.event_ids must hold {n} non-empty strings, found {bad[:3]}: the offers already went out, so "
                "the log cannot invent ids -- pass event_ids=... to policy.choose_batch()"
            )
        if len(set(ids)) != n:
            dupes = pd.Index(ids)[pd.Index(ids).duplicated()].unique().tolist()
            raise ValueError(f"batch.event_ids must be unique, duplicated: {dupes[:5]}")
        clash = self._ids.intersection(ids)
        if clash:
            raise ValueError(f"batch.event_ids already appended to this log: {sorted(clash)[:5]}")
        indices = np.asarray(batch.indices)
        if indices.shape != (n,) or indices.dtype.kind not in "iu":
            raise ValueError(f"batch.indices must be {n} integers, got shape {indices.shape} dtype {indices.dtype}")
        if n and (indices.min() < 0 or indices.max() >= self._k):
            raise ValueError(f"batch.indices must be in [0, {self._k}), got range [{indices.min()}, {indices.max()}]")
        if list(batch.arms) != [self._arms[i] for i in indices]:
            raise ValueError(
                f"batch.arms do not match batch.indices under this log's arm list {self._arms}; log each arm list "
                "in its own DecisionLog"
            )
        props = np.asarray(batch.propensities, dtype=np.float64)
        if props.shape != (n,) or not np.all((props > 0.0) & (props <= 1.0)):
            raise ValueError("batch.propensities must be n values in (0, 1]")
        if not isinstance(batch.policy_version, str):
            raise TypeError(f"batch.policy_version must be a str, got {type(batch.policy_version).__name__}")
        try:
            x = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"X must be a 2-D array of floats, got {type(X).__name__}") from None
        if x.ndim != 2 or x.shape[0] != n:
            raise ValueError(f"X must have shape (n, d) with n={n} rows (one per decision), got {x.shape}")
        if self._d is not None and x.shape[1] != self._d:
            raise ValueError(f"X has {x.shape[1]} features, this log's rows have {self._d}")
        if x.shape[1] == 0:
            raise ValueError("X must have at least one feature column")
        if not np.isfinite(x).all():
            raise ValueError("X contains NaN or infinite values")
        if timestamps is None:
            ts = np.full(n, time.time_ns() // 1000, dtype=np.int64)
        elif isinstance(timestamps, datetime | np.datetime64 | str):
            ts = np.full(n, utc_us(timestamps, "timestamps"), dtype=np.int64)
        else:
            ts = utc_us_array(timestamps, "timestamps")
            if ts.shape != (n,):
                raise ValueError(f"timestamps must be one timestamp or {n} of them, got {ts.shape[0]}")
        if eligible is None:
            mask = probs > 0.0
        else:
            mask = np.asarray(eligible)
            if mask.dtype != np.bool_ or mask.shape != (n, self._k):
                raise ValueError(
                    f"eligible must be a boolean array of shape ({n}, {self._k}), got dtype {mask.dtype} shape "
                    f"{mask.shape}"
                )
            if n and not mask[np.arange(n), indices].all():
                raise ValueError("eligible marks a chosen arm as ineligible")
            if np.any(probs[~mask] != 0.0):
                raise ValueError("eligible marks arms ineligible that batch.probabilities gives positive probability")
        columns = self._extra_batch(extra, n)

        if n == 0:
            return
        if self._d is None:
            self._bind_n_features(x.shape[1])
        self._reserve(n)
        i, j = self._n, self._n + n
        self._ctx[i:j] = x
        self._probs[i:j] = probs
        self._elig[i:j] = mask
        self._has_mask[i:j] = True
        self._action[i:j] = indices
        self._prop[i:j] = props
        self._ts[i:j] = ts
        self._event_ids.extend(ids)
        self._ids.update(ids)
        self._versions.extend([batch.policy_version] * n)
        for name, values in self._extra.items():
            values.extend(columns.get(name, [None] * n))
        self._n = j
        if self._n >= self._rows_per_part:
            self._write_buffered(full_parts_only=True)

    def _extra_batch(self, extra: Mapping[str, Sequence[Any]] | None, n: int) -> dict[str, list[Any]]:
        if extra is None:
            return {}
        if not isinstance(extra, Mapping):
            raise TypeError(f"extra must be a dict of column -> values, got {type(extra).__name__}")
        types = {f.name: f.type for f in self._extra_fields}
        columns = {}
        for name, values in extra.items():
            if name not in types:
                raise ValueError(
                    f"extra column {name!r} was not declared; declare it in DecisionLog(extra_columns=...) "
                    f"(declared: {sorted(types)})"
                )
            values = list(values)
            if len(values) != n:
                raise ValueError(f"extra[{name!r}] must hold {n} values (one per decision), got {len(values)}")
            try:
                pa.array(values, type=types[name])
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
                raise ValueError(f"extra[{name!r}] values do not fit the column type {types[name]}") from None
            columns[name] = values
        return columns

    def _write_buffered(self, full_parts_only: bool) -> None:
        """Write buffered rows as parts of at most ``rows_per_part`` rows (only full ones if asked).

        Rows are dropped from the buffer only once their part is committed, so a failed write neither loses nor
        duplicates a row.
        """
        start = 0
        limit = self._n - self._n % self._rows_per_part if full_parts_only else self._n
        try:
            while start < limit:
                stop = min(limit, start + self._rows_per_part)
                self._write_part(self._table(start, stop))
                start = stop
        finally:
            if start:
                self._drop_front(start)

    def flush(self) -> None:
        """Write all buffered rows as part files (at most ``rows_per_part`` rows each).

        If a write fails the exception propagates; rows of parts already written are not duplicated and the
        remaining rows stay buffered for the next flush.
        """
        self._write_buffered(full_parts_only=False)

    def close(self) -> None:
        """Flush and close; later appends raise. Closing twice is a no-op."""
        if not self._closed:
            self.flush()
            self._closed = True

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
        if not self._closed:
            self.flush()
        parts = _part_files(self._dir)
        if not parts:
            # context length is unknown before the first row; it does not affect an empty frame
            return _frame(self._build_schema(self._d or 1).empty_table(), self._arms)
        table, arms = _read_parts(parts)
        return _frame(table, arms)

    def __repr__(self) -> str:
        return (
            f"DecisionLog(path={str(self._dir)!r}, arms={self._arms}, policy={self._policy_name!r}, "
            f"n_buffered={self._n})"
        )
