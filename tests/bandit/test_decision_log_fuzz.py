"""Fuzzing DecisionLog.append / append_batch with malformed input (hypothesis).

Every malformed call must raise ValueError or TypeError and leave the log unchanged; the good rows appended around
the bad calls must all flush and read back exactly. The default run takes a few seconds; the ``slow`` variant runs
many more examples.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bandit.decision import BatchDecision, Decision
from bandit.decision_log import DecisionLog, NoExplorationWarning, read_decision_log

ARMS = ["individual", "duo", "family"]
D = 3
PROBS = np.array([0.5, 0.3, 0.2])

surrogate = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
bad_ids = st.one_of(
    st.just(""),
    st.text(min_size=257, max_size=400),
    st.builds(lambda a, s, b: a + s + b, st.text(max_size=5), surrogate, st.text(max_size=5)),
    st.integers(),
    st.binary(min_size=1, max_size=8),
    st.floats(allow_nan=True),
    st.none(),
)
bad_values = st.sampled_from([np.nan, np.inf, -np.inf])
bad_timestamps = st.one_of(
    st.integers(),
    st.floats(allow_nan=True),
    st.just(np.datetime64("NaT")),
    st.just(np.datetime64("10000-01-01")),
    st.just("not a timestamp"),
    st.just([1, 2]),
    st.booleans(),
)
bad_extras = st.one_of(
    st.just({"unknown": 1}),
    st.just({"country": 3.5}),
    st.just({"country": "se\ud800"}),
    st.just({"visits": "many"}),
    st.just({"visits": 2**70}),
    st.just(["country"]),
    st.just("country=SE"),
)


def decision(event_id: Any, index: int = 0, probs: np.ndarray = PROBS, eligible: Any = None) -> Decision:
    return Decision(arm=ARMS[index], index=index, propensity=float(probs[index]), probabilities=probs,
                    scores=np.zeros(3), event_id=event_id, policy_version="v1",
                    eligible=np.ones(3, dtype=bool) if eligible is None else eligible)


def batch(ids: list[Any], eligible: Any = None) -> BatchDecision:
    n = len(ids)
    return BatchDecision(indices=np.zeros(n, dtype=np.int64), arms=["individual"] * n,
                         propensities=np.full(n, PROBS[0]), probabilities=np.tile(PROBS, (n, 1)),
                         scores=np.zeros((n, 3)), event_ids=list(ids), policy_version="v1",
                         eligible=np.ones((n, 3), dtype=bool) if eligible is None else eligible)


@st.composite
def bad_single(draw: st.DrawFn) -> Callable[[DecisionLog, str], None]:
    """A malformed append(...) call; ``fresh`` is an id not used yet (so only the drawn defect is wrong)."""
    x = np.ones(D)
    kind = draw(st.sampled_from(["id", "context", "mask", "timestamp", "extra", "decision"]))
    if kind == "id":
        event_id = draw(bad_ids)
        return lambda log, fresh: log.append(decision(event_id), x)
    if kind == "context":
        ctx: Any
        variant = draw(st.sampled_from(["nonfinite", "length", "2d", "text", "empty"]))
        if variant == "nonfinite":
            ctx = x.copy()
            ctx[draw(st.integers(0, D - 1))] = draw(bad_values)
        elif variant == "length":
            ctx = np.ones(draw(st.integers(1, 8).filter(lambda n: n != D)))
        elif variant == "2d":
            ctx = np.ones((1, D))
        elif variant == "text":
            ctx = ["a"] * D
        else:
            ctx = np.ones(0)
        return lambda log, fresh: log.append(decision(fresh), ctx)
    if kind == "mask":
        mask: Any = draw(st.sampled_from([
            np.array([False, True, True]),  # excludes the chosen arm
            np.array([True, False, True]),  # excludes an arm of positive probability
            np.ones(2, dtype=bool),
            np.ones((1, 3), dtype=bool),
            np.array([1, 1, 1]),
            ["individual", "student"],
            "individual",
            [],
        ]))
        via = draw(st.sampled_from(["argument", "decision"]))
        if via == "argument":
            return lambda log, fresh: log.append(decision(fresh), x, eligible=mask)
        return lambda log, fresh: log.append(decision(fresh, eligible=mask), x)
    if kind == "timestamp":
        ts = draw(bad_timestamps)
        return lambda log, fresh: log.append(decision(fresh), x, timestamp=ts)
    if kind == "extra":
        extra = draw(bad_extras)
        return lambda log, fresh: log.append(decision(fresh), x, extra=extra)
    probs = draw(st.sampled_from([np.array([0.5, 0.3, 0.3]), np.array([np.nan, 0.5, 0.5]),
                                  np.array([0.5, 0.5]), np.array([1.5, -0.5, 0.0])]))
    return lambda log, fresh: log.append(
        Decision(arm="individual", index=0, propensity=0.5, probabilities=probs, scores=np.zeros(len(probs)),
                 event_id=fresh, policy_version="v1", eligible=np.ones(len(probs), dtype=bool)), x)


@st.composite
def bad_batch(draw: st.DrawFn) -> Callable[[DecisionLog, str], None]:
    """A malformed append_batch(...) call of 1-4 rows."""
    n = draw(st.integers(1, 4))
    X = np.ones((n, D))

    def ids(fresh: str) -> list[Any]:
        return [f"{fresh}/{i}" for i in range(n)]

    kind = draw(st.sampled_from(["id", "duplicate", "X", "mask", "timestamps", "extra"]))
    if kind == "id":
        bad, at = draw(bad_ids), draw(st.integers(0, n - 1))
        return lambda log, fresh: log.append_batch(batch([bad if i == at else e for i, e in enumerate(ids(fresh))]), X)
    if kind == "duplicate":
        return lambda log, fresh: log.append_batch(batch([fresh] * (n + 1)), np.ones((n + 1, D)))
    if kind == "X":
        Xb: Any = X.copy()
        variant = draw(st.sampled_from(["nonfinite", "rows", "cols", "1d"]))
        if variant == "nonfinite":
            Xb[draw(st.integers(0, n - 1)), draw(st.integers(0, D - 1))] = draw(bad_values)
        elif variant == "rows":
            Xb = np.ones((n + 1, D))
        elif variant == "cols":
            Xb = np.ones((n, D + 1))
        else:
            Xb = np.ones(n * D)
        return lambda log, fresh: log.append_batch(batch(ids(fresh)), Xb)
    if kind == "mask":
        mask = np.ones((n, 3), dtype=bool)
        variant = draw(st.sampled_from(["chosen", "positive", "shape", "dtype"]))
        if variant == "chosen":
            mask[draw(st.integers(0, n - 1)), 0] = False
        elif variant == "positive":
            mask[draw(st.integers(0, n - 1)), 1] = False
        elif variant == "shape":
            mask = np.ones((n, 2), dtype=bool)
        else:
            mask = np.ones((n, 3), dtype=np.int64)  # type: ignore[assignment]
        return lambda log, fresh: log.append_batch(batch(ids(fresh)), X, eligible=mask)
    if kind == "timestamps":
        ts = draw(st.one_of(bad_timestamps, st.just([dt.datetime(2024, 5, 1)] * (n + 1))))
        return lambda log, fresh: log.append_batch(batch(ids(fresh)), X, timestamps=ts)
    extra = draw(st.one_of(bad_extras.map(lambda e: {k: [v] * n for k, v in e.items()} if isinstance(e, dict) else e),
                           st.just({"country": ["SE"] * (n + 1)})))
    return lambda log, fresh: log.append_batch(batch(ids(fresh)), X, extra=extra)


operations = st.lists(
    st.one_of(st.just("good"), st.just("good-batch"), bad_single(), bad_batch()), min_size=1, max_size=12
)


def run(ops: list[Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        log = DecisionLog(tmp, arms=ARMS, policy_name="P", rows_per_part=5,
                          extra_columns={"country": "string", "visits": "int64"})
        log.append(decision("first"), np.zeros(D))  # fixes d, so a context of another length is malformed
        good_ids: list[str] = ["first"]
        good_x: list[np.ndarray] = [np.zeros(D)]
        for k, op in enumerate(ops):
            fresh = f"req-{k}"
            if op == "good":
                x = np.full(D, float(k))
                log.append(decision(fresh), x, extra={"country": "SE"})
                good_ids.append(fresh)
                good_x.append(x)
            elif op == "good-batch":
                ids = [f"{fresh}/{i}" for i in range(3)]
                X = np.full((3, D), float(k))
                log.append_batch(batch(ids), X, extra={"visits": [1, None, 3]})
                good_ids += ids
                good_x += list(X)
            else:
                before = (log.n_buffered, log.n_features)
                with pytest.raises((ValueError, TypeError)):
                    op(log, fresh)
                assert (log.n_buffered, log.n_features) == before  # the log is unchanged
        log.flush()  # never fails because of a row's content
        df = read_decision_log(tmp)
        assert df["event_id"].tolist() == good_ids
        np.testing.assert_array_equal(np.stack(df["context"]), np.stack(good_x))
        log.close()


@settings(max_examples=60, deadline=None, database=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(operations)
def test_malformed_appends_are_rejected_and_good_rows_still_flush(ops):
    with warnings.catch_warnings():
        warnings.simplefilter("error", NoExplorationWarning)  # the good rows explore
        run(ops)


@pytest.mark.slow
@settings(max_examples=600, deadline=None, database=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(operations)
def test_malformed_appends_are_rejected_and_good_rows_still_flush_many_examples(ops):
    run(ops)
