"""The bounded record of the logged decisions a policy has settled: a watermark plus the recent event ids.

Standard library only (``import bandit`` must not pull in pandas). :class:`AppliedEvents` is public as
``bandit.attribution.AppliedEvents``; the rules that use it are in :mod:`bandit.attribution`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from typing import Any

__all__ = ["AppliedEvents"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)

#: Decision time of an id loaded from a pre-watermark policy file (``applied_event_ids``: ids without times).
#: Such an id is kept until a call sees its decision row and learns the real time (then it ages out normally).
UNKNOWN_US = 2**63 - 1


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

    __slots__ = ("_recent", "_watermark_us")

    def __init__(self) -> None:
        self._watermark_us: int | None = None
        self._recent: dict[str, int] = {}

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
        return any(t == UNKNOWN_US for t in self._recent.values())

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
        for e, t in zip(event_ids, timestamps_us, strict=True):
            t = int(t)
            if w is None or t > w:
                recent[str(e)] = t

    def learn_times(self, event_ids: Iterable[str], timestamps_us: Iterable[int]) -> None:
        """Give ids loaded without a decision time (old policy files) their time, so that they can age out."""
        recent = self._recent
        for e, t in zip(event_ids, timestamps_us, strict=True):
            if recent.get(e) == UNKNOWN_US:
                recent[e] = int(t)
        w = self._watermark_us
        if w is not None:
            self._recent = {e: t for e, t in recent.items() if t > w}

    def advance(self, watermark_us: int) -> None:
        """Move the watermark forward to ``watermark_us`` (never back) and drop the ids it now covers."""
        watermark_us = int(watermark_us)
        if self._watermark_us is not None and watermark_us <= self._watermark_us:
            return
        self._watermark_us = watermark_us
        self._recent = {e: t for e, t in self._recent.items() if t > watermark_us}

    def copy(self) -> AppliedEvents:
        new = AppliedEvents()
        new._watermark_us = self._watermark_us
        new._recent = dict(self._recent)
        return new

    # -- persistence --------------------------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """JSON-ready form, saved as ``applied_events`` in the policy file's metadata: the watermark, the ids and
        their decision times as differences from the previous id's (the first from 0), which are short numbers
        since ids are added in time order."""
        times = list(self._recent.values())
        return {
            "watermark_us": self._watermark_us,
            "event_ids": list(self._recent),
            "timestamp_deltas_us": [b - a for a, b in zip([0, *times], times, strict=False)],
        }

    @classmethod
    def from_state(cls, meta: Mapping[str, Any]) -> AppliedEvents:
        """Read ``meta["applied_events"]`` (see :meth:`to_state`) or, from files written before the watermark, the
        plain id list ``meta["applied_event_ids"]`` (ids kept with an unknown time until a call sees their
        decision row). Raises ``ValueError`` naming the field when it is malformed."""
        ledger = cls()
        state = meta.get("applied_events")
        if state is None:
            legacy = meta.get("applied_event_ids", [])
            if not isinstance(legacy, list) or not all(isinstance(e, str) for e in legacy):
                raise ValueError("policy metadata field 'applied_event_ids' must be a list of event-id strings")
            ledger._recent = dict.fromkeys(legacy, UNKNOWN_US)
            return ledger
        if not isinstance(state, Mapping):
            raise ValueError("policy metadata field 'applied_events' must be an object")
        w = state.get("watermark_us")
        ids = state.get("event_ids")
        deltas = state.get("timestamp_deltas_us")
        if w is not None and (isinstance(w, bool) or not isinstance(w, int)):
            raise ValueError(f"applied_events.watermark_us must be an integer or null, got {w!r}")
        if not isinstance(ids, list) or not all(isinstance(e, str) for e in ids):
            raise ValueError("applied_events.event_ids must be a list of event-id strings")
        if (
            not isinstance(deltas, list)
            or len(deltas) != len(ids)
            or not all(isinstance(t, int) and not isinstance(t, bool) for t in deltas)
        ):
            raise ValueError("applied_events.timestamp_deltas_us must be a list of integers, one per event id")
        times = list(accumulate(deltas))
        ledger._watermark_us = w
        ledger._recent = dict(zip(ids, times, strict=True))
        return ledger

