"""UTC microsecond timestamps: the one conversion from user-facing datetimes to the decision log's int64 us."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_US = timedelta(microseconds=1)
MIN_US = int(np.iinfo(np.int64).min)


def utc_us(value: Any, name: str) -> int:
    """Microseconds since the Unix epoch (UTC) of one timestamp; naive values are taken as UTC."""
    if value is pd.NaT:
        raise ValueError(f"{name} must be a valid timestamp, got NaT")
    if isinstance(value, pd.Timestamp):
        ts = value.tz_localize("UTC") if value.tzinfo is None else value.tz_convert("UTC")
        return ts.value // 1000
    if isinstance(value, datetime):
        aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value
        return (aware - EPOCH) // ONE_US
    if isinstance(value, np.datetime64):
        if np.isnat(value):
            raise ValueError(f"{name} must be a valid timestamp, got NaT")
        return int(value.astype("datetime64[us]").astype(np.int64))
    if isinstance(value, str):
        return utc_us(pd.Timestamp(value), name)
    raise TypeError(
        f"{name} must be a datetime, numpy.datetime64, pandas.Timestamp or ISO string, got {type(value).__name__}"
    )


def utc_us_array(values: Any, name: str) -> np.ndarray:
    """int64 microseconds since the epoch (UTC) of array-like timestamps; naive values are taken as UTC."""
    if isinstance(values, pd.Series | pd.Index):
        kind = values.dtype.kind
    else:
        values = np.asarray(values)
        kind = values.dtype.kind
    if kind in "biufc":
        raise TypeError(
            f"{name} must hold datetimes (datetime, numpy.datetime64, pandas.Timestamp), got numbers of dtype "
            f"{values.dtype}; convert them with pandas.to_datetime(..., unit=...) first"
        )
    try:
        idx = pd.DatetimeIndex(pd.to_datetime(values, utc=True))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} could not be read as timestamps: {exc}") from None
    if idx.hasnans:
        raise ValueError(f"{name} contains missing timestamps (NaT); every row needs a timestamp")
    return idx.as_unit("us").asi8


def us_to_timestamps(us: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(us.astype("datetime64[us]")).tz_localize("UTC")
