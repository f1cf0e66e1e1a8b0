"""The bounded record of the logged decisions a policy has settled: a watermark plus the recent event ids.

numpy and the standard library only (``import bandit`` must not pull in pandas). :class:`AppliedEvents` is public as
``bandit.attribution.AppliedEvents``; the rules that use it are in :mod:`bandit.attribution`.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

__all__ = ["AppliedEvents"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)

#: Decision time of an id loaded from a pre-watermark policy file (``applied_event_ids``: ids without times).
#: Such an id is kept until a call sees its decision row and learns the real time (then it ages out normally).
UNKNOWN_US = 2**63 - 1
_MIN_US, _MAX_US = -(2**63), 2**63 - 1
#: Names of the ledger's arrays in a policy file's ``arrays.npz`` (see :meth:`AppliedEvents.to_state`).
STATE_ARRAYS = ("ledger_id_bytes", "ledger_id_ends", "ledger_times_us")


class AppliedEvents:
    """Which logged decisions a policy has settled (applied, or rejected for good), in bounded memory.

    Two parts: a **watermark** ``W`` -- every decision stamped at or before ``W`` is settled, whatever its id --
    and the ids (with their decision times) of the decisions settled after ``W``. The watermark moves to
    ``now - attribution_window - grace`` after each :func:`bandit.attribution.apply_log` call (never back), and the
    ids at or before it are dropped, so the size is the traffic of one window plus grace, not of all history.
    A decision stamped at or before ``W`` is never applied again, even if its id was never seen (its log row
    arrived more than ``grace`` late): ``grace`` must cover the delay with which decision rows become readable.

    Saved with the policy (``policy.save``); a ``policy._applied_event_ids`` of this type is what
    ``update_from_log`` reads and updates in place.

    Examples
    --------
    >>> ledger = AppliedEvents()
    >>> ledger.add(["a", "b"], [1_000, 5_000])  # decision times, microseconds since the epoch (UTC)
    >>> ledger.advance(2_000)                    # "a" is now covered by the watermark
    >>> len(ledger), "a" in ledger, ledger.is_settled("a", 1_000), ledger.is_settled("zz", 1_500)
    (1, False, True, True)
    >>> ledger.watermark
    datetime.datetime(1970, 1, 1, 0, 0, 0, 2000, tzinfo=datetime.timezone.utc)
    """

    __slots__ = ("_by_time", "_maybe_unknown", "_recent", "_watermark_us")

    def __init__(self) -> None:
        self._watermark_us: int | None = None
        self._recent: dict[str, int] = {}
        # (time, id) of every id stored, a min-heap: advance() pops what the watermark covers instead of scanning
        # all ids (a serving trainer advances every second over a window of traffic); entries whose id was dropped
        # or re-timed are skipped when popped
        self._by_time: list[tuple[int, str]] = []
        self._maybe_unknown = False  # False: no id has UNKNOWN_US (has_unknown_times without a scan)

    def _index(self) -> None:
        """Rebuild the time heap and the unknown-time flag from ``_recent``."""
        self._by_time = [(t, e) for e, t in self._recent.items()]
        heapq.heapify(self._by_time)
        self._maybe_unknown = UNKNOWN_US in self._recent.values()

    # -- reading ------------------------------------------------------------------------------------------------

    @property
    def watermark_us(self) -> int | None:
        """The watermark in microseconds since the epoch (UTC), or None before the first advance."""
        return self._watermark_us

    @property
    def watermark(self) -> datetime | None:
        """The watermark as an aware UTC datetime, or None before the first advance."""
        w = self._watermark_us
        return None if w is None else _EPOCH + w * _ONE_US

    def __len__(self) -> int:
        """Number of ids held (the settled decisions after the watermark)."""
        return len(self._recent)

    def __contains__(self, event_id: object) -> bool:
        """Whether ``event_id`` is among the ids held (ids at or before the watermark are not held)."""
        return event_id in self._recent

    def __iter__(self) -> Iterator[str]:
        return iter(self._recent)

    def items(self) -> Iterator[tuple[str, int]]:
        """``(event_id, decision time in us)`` pairs of the ids held."""
        return iter(self._recent.items())

    def is_settled(self, event_id: str, timestamp_us: int) -> bool:
        """Whether the decision ``event_id`` stamped ``timestamp_us`` is settled (id held, or at/before the watermark)."""
        w = self._watermark_us
        return event_id in self._recent or (w is not None and timestamp_us <= w)

    @property
    def has_unknown_times(self) -> bool:
        """Whether some ids came from an old policy file without their decision times (see :meth:`learn_times`)."""
        return self._maybe_unknown and any(t == UNKNOWN_US for t in self._recent.values())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AppliedEvents):
            return NotImplemented
        return self._watermark_us == other._watermark_us and self._recent == other._recent

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        w = self.watermark
        return f"AppliedEvents(watermark={None if w is None else w.isoformat()}, n_ids={len(self._recent)})"

    # -- updating -----------------------------------------------------------------------------------------------

    def add(self, event_ids: Iterable[str], timestamps_us: Iterable[int]) -> None:
        """Record decisions as settled (ids with their decision times, in us); those at/before the watermark are
        covered by it already and not stored."""
        w = self._watermark_us
        recent = self._recent
        heap = self._by_time
        for e, t in zip(event_ids, timestamps_us, strict=True):
            t = int(t)
            if w is None or t > w:
                e = str(e)
                recent[e] = t
                heapq.heappush(heap, (t, e))
                if t == UNKNOWN_US:
                    self._maybe_unknown = True

    def learn_times(self, event_ids: Iterable[str], timestamps_us: Iterable[int]) -> None:
        """Give ids loaded without a decision time (old policy files) their time, so that they can age out."""
        recent = self._recent
        for e, t in zip(event_ids, timestamps_us, strict=True):
            if recent.get(e) == UNKNOWN_US:
                recent[e] = int(t)
        w = self._watermark_us
        if w is not None:
            self._recent = {e: t for e, t in recent.items() if t > w}
        self._index()

    def advance(self, watermark_us: int) -> None:
        """Move the watermark forward to ``watermark_us`` (never back) and drop the ids it now covers."""
        watermark_us = int(watermark_us)
        if self._watermark_us is not None and watermark_us <= self._watermark_us:
            return
        self._watermark_us = watermark_us
        recent, heap = self._recent, self._by_time
        while heap and heap[0][0] <= watermark_us:
            t, e = heapq.heappop(heap)
            if recent.get(e) == t:
                del recent[e]

    def copy(self) -> AppliedEvents:
        new = AppliedEvents()
        new._watermark_us = self._watermark_us
        new._recent = dict(self._recent)
        new._by_time = list(self._by_time)
        new._maybe_unknown = self._maybe_unknown
        return new

    # -- persistence --------------------------------------------------------------------------------------------

    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The ledger as saved with the policy: a small JSON object (``applied_events`` in ``policy.json``: the
        watermark and the sizes) and three arrays for ``arrays.npz`` (see :data:`STATE_ARRAYS`): the ids' UTF-8
        bytes concatenated (uint8), each id's end offset in them (int64) and each id's decision time in us
        (int64). Arrays keep the policy file small and its JSON bounded however busy the traffic is."""
        encoded = [e.encode("utf-8") for e in self._recent]
        ends = np.cumsum(np.fromiter((len(b) for b in encoded), dtype=np.int64, count=len(encoded)))
        meta: dict[str, Any] = {
            "watermark_us": self._watermark_us, "n_ids": len(encoded), "id_bytes": int(ends[-1]) if len(ends) else 0
        }
        arrays: dict[str, np.ndarray] = {
            "ledger_id_bytes": np.frombuffer(b"".join(encoded), dtype=np.uint8).copy(),
            "ledger_id_ends": ends,
            "ledger_times_us": np.fromiter(self._recent.values(), dtype=np.int64, count=len(encoded)),
        }
        return meta, arrays

    @classmethod
    def from_state(cls, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> AppliedEvents:
        """Rebuild the ledger from ``meta["applied_events"]`` and the :data:`STATE_ARRAYS` (see :meth:`to_state`)
        or, from files written before the watermark, the plain id list ``meta["applied_event_ids"]`` (ids kept
        with an unknown time until a call sees their decision row). Untrusted input: raises ``ValueError`` naming
        the field when anything is malformed or inconsistent."""
        ledger = cls()
        state = meta.get("applied_events")
        present = [name for name in STATE_ARRAYS if name in arrays]
        if state is None:
            if present:
                raise ValueError(f"arrays {present} need the policy metadata field 'applied_events'")
            legacy = meta.get("applied_event_ids", [])
            if not isinstance(legacy, list) or not all(isinstance(e, str) for e in legacy):
                raise ValueError("policy metadata field 'applied_event_ids' must be a list of event-id strings")
            ledger._recent = dict.fromkeys(legacy, UNKNOWN_US)
            ledger._index()
            return ledger
        if not isinstance(state, Mapping) or set(state) != {"watermark_us", "n_ids", "id_bytes"}:
            raise ValueError("policy metadata field 'applied_events' must be an object with watermark_us, n_ids, id_bytes")
        w, n, n_bytes = state["watermark_us"], state["n_ids"], state["id_bytes"]
        if w is not None and (type(w) is not int or not _MIN_US <= w <= _MAX_US):
            raise ValueError(f"applied_events.watermark_us must be an int64 or null, got {w!r}")
        for name, value in (("n_ids", n), ("id_bytes", n_bytes)):
            if type(value) is not int or value < 0:
                raise ValueError(f"applied_events.{name} must be a non-negative integer, got {value!r}")
        if len(present) != len(STATE_ARRAYS):
            raise ValueError(f"the applied-events ledger needs arrays {list(STATE_ARRAYS)}, got {present}")
        raw, ends, times = (arrays[name] for name in STATE_ARRAYS)
        for name, arr, shape, dtype in (
            ("ledger_id_bytes", raw, (n_bytes,), np.uint8),
            ("ledger_id_ends", ends, (n,), np.int64),
            ("ledger_times_us", times, (n,), np.int64),
        ):
            if arr.shape != shape or arr.dtype != dtype:
                raise ValueError(f"array {name!r} has shape {arr.shape} {arr.dtype}, expected {shape} {np.dtype(dtype)}")
        if n and (ends[-1] != n_bytes or ends[0] < 1 or np.any(np.diff(ends) < 1)):
            raise ValueError("array 'ledger_id_ends' must rise strictly from >= 1 to applied_events.id_bytes")
        if not n and n_bytes:
            raise ValueError("applied_events.id_bytes must be 0 when n_ids is 0")
        if n and w is not None and times.min() <= w:
            raise ValueError("array 'ledger_times_us' holds decision times at or before the watermark")
        blob = raw.tobytes()
        starts = [0, *ends[:-1].tolist()] if n else []
        try:
            ids = [blob[a:b].decode("utf-8") for a, b in zip(starts, ends.tolist(), strict=True)]
        except UnicodeDecodeError:
            raise ValueError("array 'ledger_id_bytes' holds an event id that is not valid UTF-8") from None
        recent = dict(zip(ids, times.tolist(), strict=True))
        if len(recent) != n:
            raise ValueError("the applied-events ledger holds an event id twice")
        ledger._watermark_us = w
        ledger._recent = recent
        ledger._index()
        return ledger
