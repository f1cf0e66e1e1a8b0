"""Chronological splits: no future row reaches a fit, windows tile the end of the log, bad input is named."""

from __future__ import annotations

import datetime

import numpy as np
import pandas as pd
import pytest

import bandit
from offline_eval import LoggedData
from offline_eval.splits import Window, chronological_split, fit_on_train, rolling_origin

START = np.datetime64("2024-03-01T00:00:00", "us")


def shuffled_log(n: int = 2000, days: float = 20.0, seed: int = 0, d: int = 3) -> LoggedData:
    """Uniform logs at random times over ``days`` days, rows deliberately not in time order."""
    rng = np.random.default_rng(seed)
    offsets = np.sort(rng.uniform(0, days * 86_400e6, size=n)).astype(np.int64)
    order = rng.permutation(n)
    times = START + offsets[order].astype("timedelta64[us]")
    X = rng.normal(size=(n, d))
    action = rng.integers(0, 3, size=n)
    reward = (rng.random(n) < 0.1 + 0.05 * action).astype(float)
    return LoggedData(X, action, reward, np.full(n, 1 / 3), timestamp=times, action_names=["a", "b", "c"])


def us(ts: np.ndarray) -> np.ndarray:
    return ts.astype(np.int64)


def test_chronological_split_at_partitions_rows_by_time():
    data = shuffled_log()
    at = pd.Timestamp("2024-03-11T06:00Z")
    train, test = chronological_split(data, at=at)
    assert train.n + test.n == data.n
    cut = at.value // 1000
    assert (us(train.timestamp) < cut).all() and (us(test.timestamp) >= cut).all()
    # the same rows, in the order of data
    mask = us(data.timestamp) >= cut
    np.testing.assert_array_equal(test.reward, data.reward[mask])
    np.testing.assert_array_equal(train.context, data.context[~mask])
    assert train.action_names == data.action_names


def test_chronological_split_at_accepts_every_datetime_form_and_converts_time_zones():
    data = shuffled_log()
    ref = chronological_split(data, at="2024-03-11T06:00:00Z")[1].n
    for at in (
        "2024-03-11 06:00",  # naive: UTC
        pd.Timestamp("2024-03-11T07:00", tz="Europe/Berlin"),
        np.datetime64("2024-03-11T06:00"),
        pd.Timestamp("2024-03-11T06:00").to_pydatetime(),
    ):
        assert chronological_split(data, at=at)[1].n == ref
    # a date is its midnight, UTC
    midnight = chronological_split(data, at="2024-03-11")[1].n
    assert chronological_split(data, at=datetime.date(2024, 3, 11))[1].n == midnight


def test_chronological_split_test_days_keeps_exactly_the_last_days():
    data = shuffled_log(days=20.0)
    train, test = chronological_split(data, test_days=5)
    end = us(data.timestamp).max() + 1
    cut = end - 5 * 86_400_000_000
    assert (us(test.timestamp) >= cut).all() and (us(train.timestamp) < cut).all()
    # about a quarter of uniform traffic over 20 days
    assert abs(test.n / data.n - 0.25) < 0.05
    # fractional days
    assert chronological_split(data, test_days=0.5)[1].n == int((us(data.timestamp) >= end - 43_200_000_000).sum())


def test_no_future_row_reaches_the_fit_of_a_policy():
    data = shuffled_log(n=1500)
    seen: list[np.ndarray] = []

    def fit(train: LoggedData) -> bandit.LinUCB:
        seen.append(train.timestamp.copy())
        policy = bandit.LinUCB(data.action_names, n_features=data.n_features, seed=0)
        policy.update_batch(train.context, train.action, train.reward)
        return policy

    for split in [chronological_split(data, test_days=4), *rolling_origin(data, n_windows=4, test_days=3)]:
        test = split.test if isinstance(split, Window) else split[1]
        policy = fit_on_train(split, fit)
        assert us(seen[-1]).max() < us(test.timestamp).min()  # every fitted row precedes every evaluated one
        assert policy.n_updates == len(seen[-1])
    # the policy fitted on the training rows equals one fitted on the rows before the cut, found independently
    train, test = chronological_split(data, test_days=4)
    early = us(data.timestamp) < us(test.timestamp).min()
    ref = bandit.LinUCB(data.action_names, n_features=data.n_features, seed=0)
    ref.update_batch(data.context[early], data.action[early], data.reward[early])
    np.testing.assert_allclose(fit_on_train((train, test), fit).coef_, ref.coef_, rtol=1e-10)


def test_fit_on_train_refuses_a_split_that_leaks_the_future():
    data = shuffled_log(n=300)
    train, test = chronological_split(data, test_days=5)
    called = []
    with pytest.raises(ValueError, match="split is not chronological: .* training rows"):
        fit_on_train((data, test), called.append)  # the full log as "train" contains the test period
    assert not called
    with pytest.raises(TypeError, match="split must be a Window or a \\(train, test\\) tuple"):
        fit_on_train([train, test], called.append)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="fit must be a callable"):
        fit_on_train((train, test), "fit")  # type: ignore[arg-type]


def test_rolling_origin_windows_tile_the_end_of_the_log_and_train_on_the_past():
    data = shuffled_log(n=3000, days=30.0)
    windows = rolling_origin(data, n_windows=4, test_days=5)
    assert len(windows) == 4
    end = pd.Timestamp(us(data.timestamp).max() * 1000 + 1000, tz="UTC")
    assert windows[-1].test_end == end
    for prev, nxt in zip(windows, windows[1:], strict=False):
        assert prev.test_end == nxt.train_end  # consecutive, non-overlapping test windows
        assert nxt.train.n > prev.train.n  # expanding training data
    for w in windows:
        assert w.test_end - w.train_end == pd.Timedelta(days=5)
        lo, hi = w.train_end.value // 1000, w.test_end.value // 1000
        assert (us(w.train.timestamp) < lo).all()
        assert ((us(w.test.timestamp) >= lo) & (us(w.test.timestamp) < hi)).all()
        assert w.train.n == int((us(data.timestamp) < lo).sum())  # every earlier row is used
    # the test windows together are exactly the last 20 days
    total = sum(w.test.n for w in windows)
    assert total == int((us(data.timestamp) >= windows[0].train_end.value // 1000).sum())


def test_rolling_origin_sliding_window_and_step():
    data = shuffled_log(n=3000, days=30.0)
    windows = rolling_origin(data, n_windows=5, test_days=4, step_days=2, train_days=6)
    for w in windows:
        origin = w.train_end.value // 1000
        t = us(w.train.timestamp)
        assert (t < origin).all() and (t >= origin - 6 * 86_400_000_000).all()
        assert abs(w.train.n / data.n - 6 / 30) < 0.05
    starts = [w.train_end for w in windows]
    assert all(b - a == pd.Timedelta(days=2) for a, b in zip(starts, starts[1:], strict=False))


def test_rolling_origin_min_train_days_and_empty_training_are_errors_that_say_how_to_fix():
    data = shuffled_log(days=20.0)
    with pytest.raises(ValueError, match="less than min_train_days=10; use fewer windows"):
        rolling_origin(data, n_windows=3, test_days=4, min_train_days=10)
    assert len(rolling_origin(data, n_windows=2, test_days=4, min_train_days=10)) == 2
    with pytest.raises(ValueError, match="window 0 .* has no training rows"):
        rolling_origin(data, n_windows=5, test_days=4)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({}, ValueError, "give exactly one of at"),
        ({"at": "2024-03-05", "test_days": 2}, ValueError, "give exactly one of at"),
        ({"at": 5}, TypeError, "at must be a datetime"),
        ({"at": "yesterday-ish"}, ValueError, "at must be a date/time"),
        ({"at": "2023-01-01"}, ValueError, "at='2023-01-01' leaves no train rows: the log runs from 2024-03-01"),
        ({"at": "2025-01-01"}, ValueError, "leaves no test rows"),
        ({"test_days": 0}, ValueError, "test_days must be a positive, finite number of days"),
        ({"test_days": "7"}, TypeError, "test_days must be a positive number of days"),
        ({"test_days": 100}, ValueError, "leaves no train rows"),
    ],
)
def test_chronological_split_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        chronological_split(shuffled_log(n=200), **kwargs)


def test_splits_need_timestamps_and_logged_data():
    data = LoggedData(None, [0, 1], [1.0, 0.0], [0.5, 0.5])
    with pytest.raises(ValueError, match="data.timestamp is missing"):
        chronological_split(data, test_days=1)
    with pytest.raises(ValueError, match="data.timestamp is missing"):
        rolling_origin(data)
    with pytest.raises(TypeError, match="data must be an offline_eval.LoggedData"):
        chronological_split(pd.DataFrame({"a": [1]}), test_days=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_windows must be >= 1"):
        rolling_origin(shuffled_log(n=50), n_windows=0)
    with pytest.raises(TypeError, match="n_windows must be an int"):
        rolling_origin(shuffled_log(n=50), n_windows=2.0)  # type: ignore[arg-type]
