"""Bounded records of what was seen: the logged decisions a policy has settled (a watermark plus the recent event
ids), and the reward deliveries a service received recently (compact 128-bit keys, for dedupe).

numpy and the standard library only (``import bandit`` must not pull in pandas). :class:`AppliedEvents` is public as
``bandit.attribution.AppliedEvents``; the rules that use it are in :mod:`bandit.attribution`. :class:`DeliveryKeys`
is the reward dedupe table of :class:`bandit.serving.DecisionService`.
"""

from __future__ import annotations

import hashlib
import heapq
import mmap
import os
import struct
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

__all__ = ["AppliedEvents", "DeliveryKeys", "delivery_key"]

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


# ----------------------------------------------------------------------------------------------------------------
# reward deliveries (dedupe)
# ----------------------------------------------------------------------------------------------------------------

#: A reward delivery's key: the two 64-bit halves (high, low) of a 128-bit hash (see :func:`delivery_key`).
DeliveryKey = tuple[int, int]
_KEY_HEAD = struct.Struct("<d?q")
_DIGEST = struct.Struct("<QQ")
_PERSON = b"upsell-delivery"
#: The hash's key, drawn per process: delivery keys are never stored (a restart computes them again from the outcome
#: log), and unpredictable keys leave a client no way to aim many deliveries at one home slot (long probe runs under
#: the service's lock), as Python's randomised str hashes did for the dict this table replaced.
_SECRET = os.urandom(16)
#: An empty table slot (sequence numbers start at 1): a new table is zeroed memory, whose pages the system maps on
#: first use -- no pass over its memory when it is allocated.
_EMPTY = 0
#: A slot of the table being migrated away from whose key was deleted during the migration (probes pass over it).
_TOMBSTONE = -1
#: Receipt time of a ring entry whose key was released (no time of a claim: those are int64 microseconds of a clock).
_RELEASED = -(2**63)
#: Slots past the last home slot, beyond the longest run at a layout (linear probing never wraps around; a run that
#: reaches the end doubles the spill).
_SPILL = 64
_MIN_SLOTS = 64
#: The ring of keys in arrival order is held in chunks of ``2**_CHUNK_BITS`` entries: it grows by a chunk and frees
#: the chunks expiry has passed, so it is never copied.
_CHUNK_BITS = 10
_CHUNK = 1 << _CHUNK_BITS
_MASK = _CHUNK - 1
#: A new table for at most this many keys is laid out at once (vectorised, well under a millisecond); a larger one is
#: filled incrementally, a few slots of the old table per insert (:meth:`DeliveryKeys._migrate`).
_AT_ONCE = 4096
#: Tables of at least this many bytes are in memory of their own (:func:`_zeroed_slots`).
_MAPPED_BYTES = 1 << 20
#: The old table's memory behind a migration's cursor is given back in pieces of this size (bytes): freeing a large
#: table at once, page by page, took several milliseconds.
_RELEASE_BYTES = 1 << 16


def _zeroed_slots(n: int) -> np.ndarray:
    """``n`` int64 zeros (:data:`_EMPTY` slots) in anonymous memory that the system maps a small page at a time on
    first use, without huge pages: numpy asks for huge pages for large arrays, and a request that then touches a new
    table's first pages would wait for the kernel to find and clear 2 MB pages (measured: 5-25 ms on a busy
    machine, at the first claims of a table for 10^6 keys)."""
    if n * 8 < _MAPPED_BYTES:
        return np.zeros(n, dtype=np.int64)
    private = getattr(mmap, "MAP_PRIVATE", 0) | getattr(mmap, "MAP_ANONYMOUS", 0)
    buf = mmap.mmap(-1, n * 8, flags=private) if private else mmap.mmap(-1, n * 8)
    if hasattr(buf, "madvise") and hasattr(mmap, "MADV_NOHUGEPAGE"):  # (Linux)
        buf.madvise(mmap.MADV_NOHUGEPAGE)
    return np.frombuffer(buf, dtype=np.int64)


def _release_prefix(slots: np.ndarray, n_bytes: int, done: int) -> int:
    """Give the memory of ``slots``' first ``n_bytes`` (rounded down to :data:`_RELEASE_BYTES`) back to the system,
    the first ``done`` bytes of which were given back already; returns the new ``done``. Only for the private
    anonymous memory of :func:`_zeroed_slots` (its pages read as zeros afterwards); a no-op for other arrays."""
    upto = n_bytes // _RELEASE_BYTES * _RELEASE_BYTES
    base = slots.base
    buf = base.obj if isinstance(base, memoryview) else None
    if upto > done and isinstance(buf, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):
        buf.madvise(mmap.MADV_DONTNEED, done, upto - done)
        return upto
    return done


def delivery_key(event_id: str, reward: float, timestamp_us: int | None) -> DeliveryKey:
    """The 128-bit key of a reward delivery ``(event_id, reward, timestamp or None)``: blake2b with a 16-byte digest,
    keyed with a secret drawn per process (:data:`_SECRET`: a key is valid in its process only), of a canonical
    encoding -- the reward as a little-endian float64 (``-0.0`` as ``0.0``: they are equal rewards), whether the
    timestamp is missing, the timestamp (int64 microseconds, 0 when missing), then the event id's UTF-8 bytes (the
    fixed-width head makes the encoding one-to-one) -- as two unsigned 64-bit ints ``(high, low)``.

    Two different deliveries share a key with probability about ``n**2 / 2**129`` among ``n`` keys held at once:
    below ``1e-20`` for ``n = 10**9``.

    >>> delivery_key("req-1", 2.0, None) == delivery_key("req-1", 2, None), delivery_key("req-1", -0.0, 5) == \\
    ...     delivery_key("req-1", 0.0, 5), delivery_key("req-1", 2.0, None) == delivery_key("req-1", 2.0, 0)
    (True, True, False)
    """
    head = _KEY_HEAD.pack(float(reward) + 0.0, timestamp_us is None, 0 if timestamp_us is None else timestamp_us)
    digest = hashlib.blake2b(head + event_id.encode("utf-8", "surrogatepass"), digest_size=16, key=_SECRET,
                             person=_PERSON)
    high, low = _DIGEST.unpack(digest.digest())
    return high, low


class DeliveryKeys:
    """The reward deliveries received recently -- key (:func:`delivery_key`) and receipt time, in arrival order -- in
    flat numpy arrays: about 50 bytes per key where an ``OrderedDict`` of ``(event_id, reward, timestamp)`` tuples
    took about 330.

    It behaves exactly as the insertion-ordered dict ``key -> receipt time (us)`` it replaces in
    :class:`bandit.serving.DecisionService`:

    * :meth:`claim` ``(key, now)``: ``False`` when the key is held (a duplicate: nothing changes); otherwise the key
      is added with time ``now``, and then keys are dropped from the oldest on while the oldest was received more
      than ``span_us`` before ``now`` (expiry follows arrival order and stops at the first key still young, also
      when the clock stepped back). A key past its span stays until a later claim drops it.
    * :meth:`release` ``(key)``: forget a key (a delivery whose write failed: its retry is no duplicate).
    * :meth:`set` ``(key, time)`` (recovery): a held key keeps its place and takes the new time; a new key is added
      last. Nothing expires.

    Layout: a ring of ``(high, low, time)`` in arrival order, in chunks of 1,024 entries (a key's place is its
    sequence number; the ring grows by a chunk and frees the chunks expiry has passed), and an open-addressing table
    (linear probing, at most half full) of sequence numbers, home slot ``low % slots``. When the table passes half
    full, or expiry has left it under 1/16 full, a new table (3 slots per key) takes over **incrementally**: new keys
    go to the new table, each insert moves the next few slots of the old one (paced so that the move ends before the
    new table is half full), lookups search both, and a key deleted from the old table meanwhile leaves a tombstone.
    So no call pays for more than a few dozen slots (a new table for at most 4,096 keys is laid out at once,
    vectorised). Not thread-safe: the service calls it under its lock.

    Parameters
    ----------
    span_us : int
        How long a key is kept after its receipt, in microseconds (at least; see :meth:`claim`).

    Examples
    --------
    >>> keys = DeliveryKeys(span_us=1_000)
    >>> k = delivery_key("req-1", 1.0, None)
    >>> keys.claim(k, now_us=0), keys.claim(k, now_us=500), len(keys)
    (True, False, 1)
    >>> keys.claim(delivery_key("req-2", 1.0, None), now_us=1_001), k in keys  # req-1 expired, dropped by this claim
    (True, False)
    """

    __slots__ = ("_arrays", "_c0", "_cat", "_chi", "_clo", "_cursor", "_head", "_n", "_old", "_old_table", "_pace",
                 "_released", "_slots", "_span", "_table", "_tail", "_vold", "_vslots")

    def __init__(self, span_us: int) -> None:
        if isinstance(span_us, bool) or not isinstance(span_us, int | np.integer) or span_us < 0:
            raise ValueError(f"span_us must be a non-negative int of microseconds, got {span_us!r}")
        self._span = int(span_us)
        empty = np.zeros(0, dtype=np.uint64)
        self._install(empty, empty, np.zeros(0, dtype=np.int64))

    # -- storage --------------------------------------------------------------------------------------------------

    def _install(self, hi: np.ndarray, lo: np.ndarray, at: np.ndarray) -> None:
        """Hold exactly the keys ``(hi, lo)`` with times ``at`` (distinct keys, arrival order): sequence numbers from
        1, a table of 3 slots per key laid out at once."""
        n = len(hi)
        self._arrays: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._chi: list[memoryview] = []
        self._clo: list[memoryview] = []
        self._cat: list[memoryview] = []
        self._c0 = 0  # chunk number of self._arrays[0]
        for start in range(-1, n, _CHUNK):  # (entry k has sequence number k + 1: chunk 0 starts with the unused 0)
            self._add_chunk()
            h, lw, t = self._arrays[-1]
            src, dst = slice(max(start, 0), start + _CHUNK), slice(1 if start < 0 else 0, None)
            size = len(hi[src])
            h[dst][:size], lw[dst][:size], t[dst][:size] = hi[src], lo[src], at[src]
        self._head, self._tail, self._n = 1, n + 1, n
        self._old: np.ndarray | None = None  # the table being migrated away from (None: no migration)
        self._vold: memoryview | None = None
        self._old_table, self._cursor, self._pace, self._released = 0, 0, 0, 0
        self._use(self._layout(np.arange(1, n + 1, dtype=np.int64), lo, max(_MIN_SLOTS, 3 * n)), max(_MIN_SLOTS, 3 * n))

    def _add_chunk(self) -> None:
        arrays = (np.zeros(_CHUNK, dtype=np.uint64), np.zeros(_CHUNK, dtype=np.uint64), np.zeros(_CHUNK, dtype=np.int64))
        self._arrays.append(arrays)
        # memoryviews: element reads and writes as Python ints, several times faster than numpy scalar indexing
        self._chi.append(arrays[0].data)
        self._clo.append(arrays[1].data)
        self._cat.append(arrays[2].data)

    def _drop_chunk(self) -> None:
        """Free the oldest chunk (expiry has passed its last entry)."""
        del self._arrays[0], self._chi[0], self._clo[0], self._cat[0]
        self._c0 += 1

    @staticmethod
    def _layout(seqs: np.ndarray, lo: np.ndarray, table: int) -> np.ndarray:
        """A table of ``table`` home slots holding ``seqs`` (keys with low halves ``lo``), vectorised: slots of an
        insertion in order of home."""
        n = len(seqs)
        home = (lo % np.uint64(table)).astype(np.int64)
        order = np.argsort(home)  # (any order among equal homes is a valid layout; a stable sort took 2.5x as long)
        # linear probing in order of home: entry k lands at max(home_k, slot of entry k-1 + 1)
        steps = np.arange(n, dtype=np.int64)
        slot = np.maximum.accumulate(home[order] - steps) + steps if n else steps
        last = int(slot[-1]) if n else -1
        slots = _zeroed_slots(max(table, last + 1) + _SPILL)
        slots[slot] = seqs[order]
        return slots

    def _use(self, slots: np.ndarray, table: int) -> None:
        self._slots, self._vslots, self._table = slots, slots.data, table

    def _gather(self, seqs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(hi, lo, at)`` of the ring entries ``seqs`` (int64, held or released)."""
        if not len(seqs):
            return np.zeros(0, np.uint64), np.zeros(0, np.uint64), np.zeros(0, np.int64)
        first, last = int(seqs.min()) >> _CHUNK_BITS, int(seqs.max()) >> _CHUNK_BITS
        span = self._arrays[first - self._c0: last - self._c0 + 1]
        at = seqs - (first << _CHUNK_BITS)
        return tuple(np.concatenate([arrays[k] for arrays in span])[at] for k in range(3))

    def _held_seqs(self) -> np.ndarray:
        """Sequence numbers of the keys held, in arrival order (both tables during a migration)."""
        parts = [self._slots[self._slots > 0]]
        if self._old is not None:
            rest = self._old[self._cursor:]
            parts.append(rest[rest > 0])
        return np.sort(np.concatenate(parts))

    def _live(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(hi, lo, at)`` of the keys held, in arrival order."""
        return self._gather(self._held_seqs())

    def _start(self, table: int) -> None:
        """Let a table of ``table`` home slots take over (at once when few keys are held, else incrementally)."""
        if self._n <= _AT_ONCE:  # (also ends a migration under way: both tables are read)
            seqs = self._held_seqs()
            self._old = self._vold = None
            self._use(self._layout(seqs, self._gather(seqs)[1], table), table)
            return
        if self._old is not None:
            self._migrate(len(self._old))  # (never needed by the pacing; kept as the safe order of things)
        self._old, self._vold, self._old_table, self._cursor, self._released = (
            self._slots, self._vslots, self._table, 0, 0)
        self._use(_zeroed_slots(table + _SPILL), table)  # (no pass over the new memory)
        # inserts left before the new table is half full, halved: the old slots are all moved by then
        budget = max(1, (table // 2 - self._n) // 2)
        self._pace = -(-len(self._old) // budget)

    def _migrate(self, n_slots: int) -> None:
        """Move the keys of the next ``n_slots`` slots of the old table into the new one (ends the migration after
        the last slot)."""
        old, vold = self._old, self._vold
        assert old is not None and vold is not None
        start = self._cursor
        stop = min(start + n_slots, len(old))
        clo, c0 = self._clo, self._c0
        # (a paced step is a few slots: read one by one; a long stretch, with numpy)
        found = range(start, stop) if stop - start <= 64 else (np.flatnonzero(old[start:stop] > 0) + start).tolist()
        for i in found:
            seq = vold[i]
            if seq > 0:
                self._vslots[self._free_slot(clo[(seq >> _CHUNK_BITS) - c0][seq & _MASK])] = seq
        self._cursor = stop
        if stop == len(old):
            self._old = self._vold = None
        else:
            self._released = _release_prefix(old, 8 * stop, self._released)

    def _free_slot(self, low: int) -> int:
        """The first empty slot of the current table from this low half's home (the spill doubles if a run reaches
        the end: only on adversarial keys)."""
        while True:
            slots = self._vslots
            i, end = low % self._table, len(slots)
            while i < end and slots[i] != _EMPTY:
                i += 1
            if i < end:
                return i
            longer = _zeroed_slots(2 * end - self._table)
            longer[:end] = self._slots
            self._use(longer, self._table)

    # -- reading --------------------------------------------------------------------------------------------------

    def _probe(self, high: int, low: int) -> tuple[bool, int]:
        """``(True, slot holding the key in the current table, or -1 when it is in the old one)``, or ``(False, the
        empty slot of the current table a new key takes)`` (-1: past the end)."""
        slots, chi, clo, c0 = self._vslots, self._chi, self._clo, self._c0
        i, end = low % self._table, len(slots)
        free = -1
        while i < end:
            seq = slots[i]
            if not seq:  # (_EMPTY)
                free = i
                break
            c = (seq >> _CHUNK_BITS) - c0
            if clo[c][seq & _MASK] == low and chi[c][seq & _MASK] == high:
                return True, i
            i += 1
        if self._old is not None and self._find_old(high, low) >= 0:
            return True, -1
        return False, free

    def _find_old(self, high: int, low: int) -> int:
        """The slot holding the key in the old table (at or past the migration's cursor), or -1."""
        vold, chi, clo, c0 = self._vold, self._chi, self._clo, self._c0
        assert vold is not None
        # the probe starts at the cursor when the home is before it: the slots moved are never read again (their
        # memory is given back), and every slot from the cursor to a key left is still full or a tombstone
        i, end = max(low % self._old_table, self._cursor), len(vold)
        while i < end:
            seq = vold[i]
            if seq == _EMPTY:
                return -1
            if seq != _TOMBSTONE:
                c, j = (seq >> _CHUNK_BITS) - c0, seq & _MASK
                if clo[c][j] == low and chi[c][j] == high:
                    return i
            i += 1
        return -1

    def _locate(self, high: int, low: int) -> tuple[memoryview | None, int]:
        """``(slots, index)`` of the table slot holding the key, or ``(None, -1)``."""
        found, i = self._probe(high, low)
        if not found:
            return None, -1
        if i >= 0:
            return self._vslots, i
        return self._vold, self._find_old(high, low)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, tuple) and self._locate(*key)[0] is not None

    def __len__(self) -> int:
        """Number of keys held."""
        return self._n

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays holding the keys."""
        old = 0 if self._old is None else self._old.nbytes
        return 3 * 8 * _CHUNK * len(self._arrays) + self._slots.nbytes + old

    def items(self) -> list[tuple[DeliveryKey, int]]:
        """``((high, low), receipt time us)`` of the keys held, in arrival order."""
        hi, lo, at = self._live()
        return list(zip(zip(hi.tolist(), lo.tolist(), strict=True), at.tolist(), strict=True))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DeliveryKeys):
            return NotImplemented
        return self._span == other._span and self.items() == other.items()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"DeliveryKeys(span_us={self._span}, n_keys={self._n}, nbytes={self.nbytes})"

    # -- updating -------------------------------------------------------------------------------------------------

    def _append(self, high: int, low: int, at: int, probed: int = -1) -> None:
        """Add a key not held, last in arrival order (``probed``: the empty slot a lookup found, -1: unknown)."""
        if self._old is None:
            if 2 * (self._n + 1) > self._table:
                self._start(3 * (self._n + 1))
                probed = -1
        elif 2 * (self._n + 1) > self._table:  # (the pacing ends a migration first; kept as a safety net)
            self._migrate(len(self._old))
            self._start(3 * (self._n + 1))
            probed = -1
        i = probed if probed >= 0 else self._free_slot(low)
        seq = self._tail
        c = (seq >> _CHUNK_BITS) - self._c0
        if c == len(self._arrays):
            self._add_chunk()
        j = seq & _MASK
        self._chi[c][j], self._clo[c][j], self._cat[c][j] = high, low, at
        self._vslots[i] = seq
        self._tail = seq + 1
        self._n += 1
        if self._old is not None:
            self._migrate(self._pace)

    def _delete(self, slots: memoryview, i: int) -> None:
        """Empty slot ``i``: a tombstone in the old table; in the current one, later entries of its run shift back
        (no tombstones)."""
        self._n -= 1
        if slots is not self._vslots:
            slots[i] = _TOMBSTONE
            return
        clo, c0, table = self._clo, self._c0, self._table
        slots[i] = _EMPTY
        j, end = i + 1, len(slots)
        while j < end:
            seq = slots[j]
            if seq == _EMPTY:
                break
            if clo[(seq >> _CHUNK_BITS) - c0][seq & _MASK] % table <= i:  # home at or before the hole: moves into it
                slots[i] = seq
                slots[j] = _EMPTY
                i = j
            j += 1

    def _expire(self, seq: int, low: int) -> None:
        """Delete the held key of ring entry ``seq`` (low half ``low``), found by its sequence number."""
        slots = self._vslots
        i, end = low % self._table, len(slots)
        while i < end:
            found = slots[i]
            if found == seq:
                self._delete(slots, i)
                return
            if found == _EMPTY:
                break
            i += 1
        old = self._vold  # (not in the current table: in the old one, past the migration's cursor)
        assert old is not None
        i = max(low % self._old_table, self._cursor)
        while old[i] != seq:
            i += 1
        self._delete(old, i)

    def claim(self, key: DeliveryKey, now_us: int) -> bool:
        """Add ``key`` received at ``now_us`` and expire old keys (see the class docstring); ``False`` (and nothing
        changes) when the key is held already: a duplicate delivery."""
        high, low = key
        held, free = self._probe(high, low)
        if held:
            return False
        self._append(high, low, now_us, free)
        span = self._span
        while self._head < self._tail:
            seq = self._head
            c, j = (seq >> _CHUNK_BITS) - self._c0, seq & _MASK
            at = self._cat[c][j]
            if at != _RELEASED:  # (a released key is no longer held: skipped, as the dict had dropped it)
                if now_us - at <= span:
                    break
                self._expire(seq, self._clo[c][j])
            self._head = seq + 1
            if j == _MASK:
                self._drop_chunk()
        if self._table > _MIN_SLOTS and 16 * self._n < self._table and (self._old is None or self._n <= _AT_ONCE):
            self._start(max(_MIN_SLOTS, 3 * self._n))
        return True

    def release(self, key: DeliveryKey) -> None:
        """Forget ``key`` if held."""
        slots, i = self._locate(*key)
        if slots is not None:
            seq = slots[i]
            self._cat[(seq >> _CHUNK_BITS) - self._c0][seq & _MASK] = _RELEASED
            self._delete(slots, i)

    def set(self, key: DeliveryKey, at_us: int) -> None:
        """Hold ``key`` with receipt time ``at_us``: a held key keeps its place in the arrival order."""
        slots, i = self._locate(*key)
        if slots is not None:
            seq = slots[i]
            self._cat[(seq >> _CHUNK_BITS) - self._c0][seq & _MASK] = at_us
        else:
            self._append(key[0], key[1], at_us)

    def set_many(self, high: np.ndarray, low: np.ndarray, at_us: np.ndarray) -> None:
        """:meth:`set` for each key in order (uint64 halves and int64 times of equal length); vectorised when nothing
        is held yet (a restart's recovery)."""
        high, low = np.asarray(high, dtype=np.uint64), np.asarray(low, dtype=np.uint64)
        at_us = np.asarray(at_us, dtype=np.int64)
        if not high.shape == low.shape == at_us.shape or high.ndim != 1:
            raise ValueError("high, low and at_us must be 1-D arrays of equal length")
        if self._n or not len(high):
            for key in zip(high.tolist(), low.tolist(), at_us.tolist(), strict=True):
                self.set((key[0], key[1]), key[2])
            return
        # one entry per key: at the place of its first occurrence, with the time of its last
        order = np.lexsort((np.arange(len(high)), low, high))
        hs, ls = high[order], low[order]
        starts = np.flatnonzero(np.r_[True, (hs[1:] != hs[:-1]) | (ls[1:] != ls[:-1])])
        ends = np.r_[starts[1:], len(order)] - 1
        first, last = order[starts], order[ends]
        arrival = np.argsort(first, kind="stable")
        self._install(high[first][arrival], low[first][arrival], at_us[last][arrival])
