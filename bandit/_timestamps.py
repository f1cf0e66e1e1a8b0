"""UTC microsecond timestamps: the one conversion from user-facing datetimes to the decision log's int64 us."""

from __future__ import annotations

import math
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_US = timedelta(microseconds=1)
MIN_US = int(np.iinfo(np.int64).min)  # also numpy's NaT: us_to_timestamps maps it to NaT
MAX_US = int(np.iinfo(np.int64).max)


def wall_clock_us() -> int:
    """The current wall-clock time (UTC) in microseconds since the Unix epoch."""
    return (datetime.now(UTC) - EPOCH) // ONE_US


def utc_us(value: Any, name: str) -> int:
    """Microseconds since the Unix epoch (UTC) of one timestamp; naive values are taken as UTC."""
    if value is pd.NaT:
        raise ValueError(f"{name} must be a valid timestamp, got NaT")
    if isinstance(value, pd.Timestamp):
        ts = value.tz_localize("UTC") if value.tzinfo is None else value.tz_convert("UTC")
        return int(ts.as_unit("us").asm8.astype(np.int64))  # asm8: naive UTC, in any unit (no ns overflow)
    if isinstance(value, datetime):
        aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value
        return (aware - EPOCH) // ONE_US
    if isinstance(value, np.datetime64):
        if np.isnat(value):
            raise ValueError(f"{name} must be a valid timestamp, got NaT")
        return int(value.astype("datetime64[us]").astype(np.int64))
    if isinstance(value, str):
        try:
            parsed = pd.Timestamp(value)
        except (TypeError, ValueError, OverflowError) as exc:
            raise ValueError(f"{name} could not be read as a timestamp ({value!r}): {exc}") from None
        return utc_us(parsed, name)
    raise TypeError(
        f"{name} must be a datetime, numpy.datetime64, pandas.Timestamp or ISO string, got {type(value).__name__}"
    )


def _is_missing(value: Any) -> bool:
    return value is None or value is pd.NaT or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _one_us(value: Any) -> int | None:
    """Microseconds of one timestamp-like value, or None when it is missing, a bare number or unreadable."""
    if _is_missing(value) or not isinstance(value, str | datetime | np.datetime64):
        return None  # numbers are refused: their unit would be a guess
    try:
        return utc_us(value, "timestamp")
    except (TypeError, ValueError, OverflowError):
        return None


def parse_utc_us(values: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps of a table with possibly bad rows: ``(us, ok)``, both of shape (n,).

    ``us`` is int64 microseconds since the epoch (UTC; naive values are taken as UTC), :data:`MIN_US` (NaT) where
    ``ok`` is False: a missing value (None, NaN, NaT), a bare number inside an object column, or a string or
    object that is not a timestamp. A column of a numeric dtype is a table-level mistake (the unit would be a
    guess) and raises ``TypeError`` naming ``name``.
    """
    if isinstance(values, pd.Series | pd.Index):
        kind = values.dtype.kind
    else:
        values = np.asarray(values)
        kind = values.dtype.kind
    if values.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence of timestamps, got an array of shape {values.shape}")
    if kind in "biufc":
        raise TypeError(
            f"{name} must hold datetimes (datetime, numpy.datetime64, pandas.Timestamp, ISO strings), got numbers "
            f"of dtype {values.dtype}; convert them with pandas.to_datetime(..., unit=...) first"
        )
    if kind == "M":
        idx = pd.DatetimeIndex(values)
        idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
        ok = ~np.asarray(idx.isna())
        return np.where(ok, idx.as_unit("us").asi8, MIN_US), ok
    items = np.asarray(values, dtype=object)
    n = items.shape[0]
    if all(isinstance(v, str | datetime | np.datetime64) or _is_missing(v) for v in items):
        try:  # vectorised when every value is a timestamp-like or missing (bare numbers would be read as ns)
            with warnings.catch_warnings():  # "could not infer format": mixed formats are parsed one by one
                warnings.simplefilter("ignore", UserWarning)
                idx = pd.DatetimeIndex(pd.to_datetime(items, utc=True))
        except (TypeError, ValueError, OverflowError):
            pass  # mixed formats or garbage strings: element by element below
        else:
            ok = ~np.asarray(idx.isna())
            return np.where(ok, idx.as_unit("us").asi8, MIN_US), ok
    parsed = [_one_us(v) for v in items]
    ok = np.fromiter((p is not None for p in parsed), dtype=bool, count=n)
    us = np.fromiter((MIN_US if p is None else p for p in parsed), dtype=np.int64, count=n)
    return us, ok


def utc_us_array(values: Any, name: str) -> np.ndarray:
    """int64 microseconds since the epoch (UTC) of array-like timestamps (naive values are taken as UTC); every
    row must be a timestamp: ``ValueError`` naming the first that is not (see :func:`parse_utc_us`)."""
    us, ok = parse_utc_us(values, name)
    if not ok.all():
        bad = np.flatnonzero(~ok)
        raise ValueError(
            f"{name} has {bad.size} missing or unreadable timestamps (first at row {int(bad[0])}); every row needs a "
            "timestamp"
        )
    return us


def us_to_timestamps(us: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(us.astype("datetime64[us]")).tz_localize("UTC")
