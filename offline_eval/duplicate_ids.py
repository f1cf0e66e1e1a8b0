"""Rows whose event id already appeared earlier in a log read batch by batch, found exactly in bounded memory.

:func:`offline_eval.schema.read_log` (and so :meth:`LoggedData.from_parquet <offline_eval.LoggedData.from_parquet>`)
drops every row whose ``event_id`` already appeared earlier in the log, keeping the first occurrence, before
anything else (rows without a reward included). :class:`DuplicateFinder` finds the same rows for a reader that
never holds the log (:mod:`offline_eval.streaming`):

1. while the ids stream past (``add``), each id's 64-bit hash (FNV-1a of its UTF-8 bytes, finalised by
   splitmix64) is appended to one of ``B`` buckets by its top bits: in memory for logs of at most
   :data:`BUCKET_ROWS` rows, otherwise in temporary files (8 bytes per row on disk);
2. ``finish`` sorts each bucket (at most about :data:`BUCKET_ROWS` hashes, 8 bytes each, in memory at a time) and
   keeps the hash values seen more than once -- empty for a log of unique ids, except for a 64-bit collision
   (probability about ``n^2 / 2^65``: 3e-4 at 10^8 rows);
3. only if some hash repeats, one more read of the ids collects the rows carrying such a hash (the duplicated rows,
   their first occurrences and colliding ids) and compares the ids themselves.

So the result is exact (hash collisions are resolved on the strings), and memory is bounded by one bucket plus the
rows of step 3 (which grow with the number of duplicated rows only). A null id repeats nothing (the readers
quarantine its row under the reason ``"event_id"``): it is not hashed.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

__all__ = ["BUCKET_ROWS", "DuplicateFinder", "DuplicateRows", "id_hashes"]

#: Hashes sorted in memory at a time (32 MB); logs with more rows spill their hashes to temporary bucket files.
BUCKET_ROWS = 1 << 22

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


@njit(cache=True, nogil=True)
def _hash_strings(offsets, data, out):  # pragma: no cover - numba
    """64-bit hash of each string: splitmix64(FNV-1a(bytes)).

    ``offsets`` (n + 1,) int32 or int64 byte offsets into ``data`` (uint8, the UTF-8 bytes of all strings, Arrow
    layout); ``out`` (n,) uint64. Returns 0.
    """
    for i in range(out.shape[0]):
        h = _FNV_OFFSET
        for j in range(offsets[i], offsets[i + 1]):
            h = (h ^ np.uint64(data[j])) * _FNV_PRIME
        h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        out[i] = h ^ (h >> np.uint64(31))
    return 0


@njit(cache=True, nogil=True)
def _group_by_top_bits(h, bits, out, bounds):  # pragma: no cover - numba
    """Counting sort of the hashes ``h`` (n,) uint64 by their top ``bits`` bits (>= 1) into ``out`` (n,) uint64,
    stable; ``bounds`` (2^bits + 1,) int64 receives each group's start (and the end). Returns 0."""
    shift = np.uint64(64 - bits)
    bounds[:] = 0
    for i in range(h.shape[0]):
        bounds[np.int64(h[i] >> shift) + 1] += 1
    for j in range(1, bounds.shape[0]):
        bounds[j] += bounds[j - 1]
    fill = bounds[:-1].copy()
    for i in range(h.shape[0]):
        b = np.int64(h[i] >> shift)
        out[fill[b]] = h[i]
        fill[b] += 1
    return 0


def _present(ids: Any) -> tuple[Any, np.ndarray | None]:
    """A pyarrow string array's non-null ids, and their positions among all (None when no id is null)."""
    import pyarrow as pa

    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    if not ids.null_count:
        return ids, None
    valid = ids.is_valid().to_numpy(zero_copy_only=False)
    return ids.filter(pa.array(valid)), np.flatnonzero(valid)


def id_hashes(ids: Any) -> np.ndarray:
    """The 64-bit hash (module docstring) of every id of a pyarrow string array without nulls, shape (n,) uint64."""
    import pyarrow as pa

    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    large = pa.types.is_large_string(ids.type)
    if not (large or pa.types.is_string(ids.type)):
        raise TypeError(f"event_id must be a string column, got Arrow type {ids.type}")
    if ids.null_count:
        raise ValueError(f"event_id has {ids.null_count} null ids; every decision needs an id")
    m = len(ids)
    buffers = ids.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int64 if large else np.int32)[ids.offset : ids.offset + m + 1]
    data = np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None else np.zeros(0, dtype=np.uint8)
    out = np.empty(m, dtype=np.uint64)
    _hash_strings(np.ascontiguousarray(offsets), data, out)
    return out


@dataclass(frozen=True)
class DuplicateRows:
    """What a duplicate scan found: ``positions`` (sorted int64) of the rows to drop, in log order from 0;
    ``ids``: the distinct dropped ids in the order of their first repeat (as :func:`read_log`'s warning lists
    them)."""

    positions: np.ndarray
    ids: list[str]

    def __len__(self) -> int:
        return len(self.positions)

    def keep_mask(self, start: int, m: int) -> np.ndarray | None:
        """Boolean mask of the rows ``start .. start + m - 1`` to keep, or None when all are kept."""
        lo, hi = np.searchsorted(self.positions, [start, start + m])
        if lo == hi:
            return None
        keep = np.ones(m, dtype=bool)
        keep[self.positions[lo:hi] - start] = False
        return keep


class DuplicateFinder:
    """Find the rows whose event id already appeared earlier (module docstring): ``add`` every batch's ids in log
    order, then ``finish``.

    Parameters
    ----------
    expected_rows : int
        Rows of the log (sizes the buckets; a wrong guess costs speed or memory, never exactness).
    """

    def __init__(self, expected_rows: int) -> None:
        self._bits = max(0, int(np.ceil(np.log2(max(expected_rows, 1) / BUCKET_ROWS))))
        self._memory: list[np.ndarray] = []
        self._directory: Path | None = None
        if self._bits:
            self._directory = Path(tempfile.mkdtemp(prefix="offline_eval-ids-"))

    def add(self, ids: Any) -> None:
        """Hash the ids (a pyarrow string array) of the next rows of the log; null ids are left out."""
        h = id_hashes(_present(ids)[0])
        if self._directory is None:
            self._memory.append(h)
            return
        grouped = np.empty_like(h)
        bounds = np.empty((1 << self._bits) + 1, dtype=np.int64)
        _group_by_top_bits(h, self._bits, grouped, bounds)
        for b in range(1 << self._bits):
            if bounds[b + 1] > bounds[b]:
                with open(self._directory / f"{b}.u64", "ab") as f:
                    grouped[bounds[b] : bounds[b + 1]].tofile(f)

    def _repeated_hashes(self) -> np.ndarray:
        """Hash values that occur more than once (sorted, unique)."""
        found = []
        if self._directory is None:
            buckets: Iterable[np.ndarray] = [np.concatenate(self._memory)] if self._memory else []
        else:
            buckets = (np.fromfile(p, dtype=np.uint64) for p in sorted(self._directory.glob("*.u64")))
        for h in buckets:
            h.sort()
            repeat = h[1:][h[1:] == h[:-1]]
            if len(repeat):
                found.append(np.unique(repeat))
        return np.sort(np.concatenate(found)) if found else np.zeros(0, dtype=np.uint64)

    def close(self) -> None:
        """Delete the spilled hashes (``finish`` does it; for a scan abandoned half-way)."""
        self._memory = []
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None

    def finish(self, reread: Callable[[], Iterable[Any]]) -> DuplicateRows:
        """The duplicated rows. ``reread()`` yields the ids (pyarrow string arrays) of the log again, in the same
        order and batches of any size; called only when some hash repeats."""
        try:
            repeated = self._repeated_hashes()
        finally:
            self.close()
        if not len(repeated):
            return DuplicateRows(np.zeros(0, dtype=np.int64), [])
        positions, values = [], []
        start = 0
        for ids in reread():
            present, where = _present(ids)
            h = id_hashes(present)
            at = np.searchsorted(repeated, h)
            hit = np.flatnonzero((at < len(repeated)) & (repeated[np.minimum(at, len(repeated) - 1)] == h))
            if len(hit):
                positions.append((hit if where is None else where[hit]) + start)
                values += present.take(hit).to_pylist()
            start += len(ids)
        import pandas as pd

        rows = np.concatenate(positions)
        index = pd.Index(values, dtype=object)
        dup = index.duplicated(keep="first")
        return DuplicateRows(rows[dup].astype(np.int64), [str(v) for v in index[dup].unique()])
