"""Chronological splits of logged decisions: fit candidates on the past, evaluate them on the future.

A candidate fitted on the same rows it is evaluated on looks better than it is, and a random split leaks the
future into the fit (drift, the new plan's launch, seasonal traffic). Every split here is by time:

* :func:`chronological_split` -- rows decided before ``at`` train, the others test (or: the last ``test_days``
  days test);
* :func:`rolling_origin` -- several consecutive test windows at the end of the log, each with the rows before its
  start as training data (expanding, or the last ``train_days`` days only): a backtest of how the candidates would
  have done had they been refitted and rolled out at each origin;
* :func:`fit_on_train` -- calls a fitting function with the training rows of a split, and only those, after
  checking that every training row precedes every test row.

Times are those of ``LoggedData.timestamp`` (UTC). Within each part the rows keep their order in ``data``.
Boundaries are half-open: a row at exactly ``at`` is a test row.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from offline_eval.data import LoggedData

__all__ = ["Window", "chronological_split", "fit_on_train", "rolling_origin"]

T = TypeVar("T")

_US_PER_DAY = 86_400_000_000


@dataclass(frozen=True, eq=False)
class Window:
    """One origin of a rolling-origin backtest.

    Attributes
    ----------
    train : LoggedData
        Rows with ``timestamp < train_end`` (and ``>= train_end - train_days`` for a sliding window).
    test : LoggedData
        Rows with ``train_end <= timestamp < test_end``.
    train_end : pandas.Timestamp
        The origin (UTC): end of the training period (exclusive) and start of the test window.
    test_end : pandas.Timestamp
        End of the test window (UTC, exclusive).
    """

    train: LoggedData
    test: LoggedData
    train_end: pd.Timestamp
    test_end: pd.Timestamp

    def __repr__(self) -> str:
        return (
            f"Window(train={self.train.n} rows before {self.train_end}, test={self.test.n} rows in "
            f"[{self.train_end}, {self.test_end}))"
        )


def _timestamps(data: Any) -> np.ndarray:
    """``data.timestamp`` as int64 microseconds since the epoch (UTC), or an error naming what is missing."""
    if not isinstance(data, LoggedData):
        raise TypeError(f"data must be an offline_eval.LoggedData, got {type(data).__name__}")
    if data.timestamp is None:
        raise ValueError(
            "data.timestamp is missing; a chronological split needs decision times: build LoggedData with "
            "timestamp=... (decision logs read with from_parquet carry them)"
        )
    if data.n == 0:
        raise ValueError("data has no rows; there is nothing to split")
    return data.timestamp.astype(np.int64)


def _instant(value: Any, name: str) -> int:
    """A datetime-like (str, datetime, date, numpy.datetime64, pandas.Timestamp) as microseconds since the epoch, UTC."""
    if isinstance(value, bool) or not isinstance(value, (str, date, np.datetime64, pd.Timestamp)):
        raise TypeError(
            f"{name} must be a datetime or date, pandas.Timestamp, numpy.datetime64 or ISO string, got "
            f"{type(value).__name__} {value!r}"
        )
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a date/time such as '2024-03-01T00:00Z', got {value!r}") from err
    if ts is pd.NaT:
        raise ValueError(f"{name} must be a date/time, got a missing value (NaT)")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.value // 1000)


def _days(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a positive number of days, got {type(value).__name__} {value!r}")
    v = float(value)
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a positive, finite number of days, got {value!r}")
    return v


def _optional_days(value: Any, name: str) -> float | None:
    return None if value is None else _days(value, name)


def _to_timestamp(us: int) -> pd.Timestamp:
    return pd.Timestamp(us * 1000, tz="UTC")


def _end(us: np.ndarray) -> int:
    """The log's end: one microsecond after its last decision (so ``[end - d days, end)`` holds the last d days)."""
    return int(us.max()) + 1


def chronological_split(
    data: LoggedData, at: Any = None, test_days: float | None = None
) -> tuple[LoggedData, LoggedData]:
    """Split the logs by time: ``(train, test)`` with every training row decided before every test row.

    Give exactly one of ``at`` and ``test_days``.

    Parameters
    ----------
    data : LoggedData
        The logs; needs ``data.timestamp``.
    at : datetime-like, optional
        The cut (UTC; naive values are taken as UTC): rows with ``timestamp < at`` train, ``timestamp >= at`` test.
    test_days : float, optional
        The last ``test_days`` days of the log are the test rows: ``at = end - test_days`` with ``end`` one
        microsecond after the last decision.

    Returns
    -------
    (LoggedData, LoggedData)
        Train and test rows, each in the order of ``data``.

    Raises
    ------
    ValueError
        No timestamps, both or neither of ``at`` / ``test_days``, or a cut that leaves either part empty.

    Examples
    --------
    >>> import numpy as np
    >>> times = np.datetime64("2024-01-01") + np.arange(10) * np.timedelta64(12, "h")
    >>> data = LoggedData(None, [0, 1] * 5, np.ones(10), np.full(10, 0.5), timestamp=times)
    >>> train, test = chronological_split(data, at="2024-01-04")
    >>> train.n, test.n
    (6, 4)
    >>> train, test = chronological_split(data, test_days=1)
    >>> str(test.timestamp[0]), test.n
    ('2024-01-05T00:00:00.000000', 2)
    """
    us = _timestamps(data)
    if (at is None) == (test_days is None):
        raise ValueError("give exactly one of at (the cut time) and test_days (length of the test period)")
    if at is not None:
        cut = _instant(at, "at")
        what = f"at={at!r}"
    else:
        cut = _end(us) - round(_days(test_days, "test_days") * _US_PER_DAY)
        what = f"test_days={test_days!r}"
    test = us >= cut
    n_test = int(test.sum())
    if n_test == 0 or n_test == data.n:
        part = "test" if n_test == 0 else "train"
        first, last = _to_timestamp(int(us.min())), _to_timestamp(int(us.max()))
        raise ValueError(
            f"{what} leaves no {part} rows: the log runs from {first} to {last}; choose a cut inside that range"
        )
    return data.subset(~test), data.subset(test)


def rolling_origin(
    data: LoggedData,
    n_windows: int = 3,
    test_days: float = 7.0,
    min_train_days: float | None = None,
    step_days: float | None = None,
    train_days: float | None = None,
) -> list[Window]:
    """Rolling-origin backtest windows: ``n_windows`` test windows at the end of the log, oldest first.

    Window ``j`` (0-based, ``m = n_windows``) tests on ``[e_j - test_days, e_j)`` with
    ``e_j = end - (m - 1 - j) * step_days`` (``end``: one microsecond after the last decision) and trains on the
    rows before ``e_j - test_days`` -- all of them (expanding window) or those of the last ``train_days`` days
    (sliding window). With ``step_days = test_days`` (the default) the test windows tile the end of the log.

    Parameters
    ----------
    data : LoggedData
        The logs; needs ``data.timestamp``.
    n_windows : int
        Number of origins, >= 1.
    test_days : float
        Length of each test window in days.
    min_train_days : float, optional
        The first window's training period must span at least this many days from the log's first decision
        (ValueError otherwise: fewer windows, shorter steps or more data). Default: it must hold a row.
    step_days : float, optional
        Days between consecutive origins (default ``test_days``).
    train_days : float, optional
        Sliding training window length; None (default) trains on everything before the origin.

    Returns
    -------
    list of Window
        Chronological; every window has at least one training row. A test window may be empty when the log has
        a gap (no traffic) there.

    Examples
    --------
    >>> import numpy as np
    >>> times = np.datetime64("2024-01-01") + np.arange(30 * 24) * np.timedelta64(1, "h")
    >>> data = LoggedData(None, np.zeros(720, dtype=int), np.ones(720), np.ones(720), timestamp=times)
    >>> windows = rolling_origin(data, n_windows=3, test_days=7)
    >>> [(w.train.n, w.test.n) for w in windows]
    [(216, 168), (384, 168), (552, 168)]
    >>> str(windows[-1].test_end.floor("s")), bool(windows[0].train.timestamp.max() < windows[0].test.timestamp.min())
    ('2024-01-30 23:00:00+00:00', True)
    """
    us = _timestamps(data)
    if isinstance(n_windows, bool) or not isinstance(n_windows, (int, np.integer)):
        raise TypeError(f"n_windows must be an int >= 1, got {type(n_windows).__name__} {n_windows!r}")
    if n_windows < 1:
        raise ValueError(f"n_windows must be >= 1, got {n_windows}")
    test_us = round(_days(test_days, "test_days") * _US_PER_DAY)
    step = _optional_days(step_days, "step_days")
    step_us = test_us if step is None else round(step * _US_PER_DAY)
    min_train = _optional_days(min_train_days, "min_train_days")
    sliding = _optional_days(train_days, "train_days")
    end, start = _end(us), int(us.min())
    first_origin = end - (n_windows - 1) * step_us - test_us
    span = (first_origin - start) / _US_PER_DAY
    if min_train is not None and span < min_train:
        raise ValueError(
            f"n_windows={n_windows} windows of test_days={test_days} every {step_us / _US_PER_DAY:g} days leave "
            f"the first window {span:.3g} days of training data, less than min_train_days={min_train_days}; use "
            "fewer windows, a shorter step or more data"
        )
    windows = []
    for j in range(n_windows):
        origin = first_origin + j * step_us
        stop = origin + test_us
        train = us < origin
        if sliding is not None:
            train &= us >= origin - round(sliding * _US_PER_DAY)
        if not train.any():
            raise ValueError(
                f"window {j} (origin {_to_timestamp(origin)}) has no training rows: the log starts at "
                f"{_to_timestamp(start)}; use fewer windows (n_windows), a shorter step_days or test_days, or a "
                "longer train_days"
            )
        test = (us >= origin) & (us < stop)
        windows.append(Window(data.subset(train), data.subset(test), _to_timestamp(origin), _to_timestamp(stop)))
    return windows


def fit_on_train(split: Window | tuple[LoggedData, LoggedData], fit: Callable[[LoggedData], T]) -> T:
    """``fit(train)`` for a split: the fitting function sees the training rows and nothing else.

    Checks first that every training row precedes every test row (so a hand-made split cannot leak the
    future into the fit) and that the training rows are not the test rows.

    Parameters
    ----------
    split : Window or (LoggedData, LoggedData)
        A :class:`Window` or the ``(train, test)`` pair of :func:`chronological_split`.
    fit : callable
        ``fit(train: LoggedData) -> anything`` (e.g. a fitted policy, or a dict of candidate targets).

    Returns
    -------
    Whatever ``fit`` returns.

    Examples
    --------
    >>> import numpy as np
    >>> times = np.datetime64("2024-01-01") + np.arange(8) * np.timedelta64(1, "D")
    >>> data = LoggedData(None, [0, 1] * 4, np.arange(8.0), np.full(8, 0.5), timestamp=times)
    >>> split = chronological_split(data, test_days=2)
    >>> fit_on_train(split, lambda train: float(train.reward.mean()))
    2.5
    """
    if isinstance(split, Window):
        train, test = split.train, split.test
    elif isinstance(split, tuple) and len(split) == 2:
        train, test = split
    else:
        raise TypeError(
            f"split must be a Window or a (train, test) tuple of LoggedData, got {type(split).__name__}"
        )
    if not callable(fit):
        raise TypeError(f"fit must be a callable taking the training LoggedData, got {type(fit).__name__}")
    train_us, test_us = _timestamps(train), None
    if isinstance(test, LoggedData) and test.timestamp is not None and test.n:
        test_us = test.timestamp.astype(np.int64)
    elif not isinstance(test, LoggedData):
        raise TypeError(f"split's test part must be a LoggedData, got {type(test).__name__}")
    if test_us is not None and train_us.max() >= test_us.min():
        late = int((train_us >= test_us.min()).sum())
        raise ValueError(
            f"split is not chronological: {late} training rows are at or after the first test row "
            f"({_to_timestamp(int(test_us.min()))}); build it with chronological_split or rolling_origin"
        )
    return fit(train)
