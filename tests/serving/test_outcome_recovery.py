"""What a restart takes from the stored outcome parts (bandit.serving DecisionService._recover_outcomes), against a
plain reference that reads every row: at the exact edges of the watermark and the dedupe span, with parts whose
names state their span, old names, malformed or crafted names, and row groups of a few rows."""

from __future__ import annotations

import types
import warnings
from collections import OrderedDict

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import bandit.serving
from bandit._ledger import DeliveryKeys, delivery_key
from bandit.serving import DecisionService

NOW = 1_800_000_000_000_000  # the restart's clock (us)
SPAN = 86_400_000_000  # the dedupe span
CUTOFF = NOW - SPAN  # received at or after it: the key is kept
WATERMARK = NOW - 2 * SPAN  # decisions stamped at or before it are settled
SCHEMA = bandit.serving.outcome_schema(bandit.serving._OUTCOME_FIELDS)

#: Part-name forms: the service's (with the rows' span), the old one (no span: the footer tells), and names a restart
#: cannot trust -- reversed spans, non-ASCII digits, too many digits, a word -- which must fall back to the footer.
NAMES = {
    "span": lambda ts, at: f"{int(ts.min())}_{int(ts.max())}_{int(at.min())}_{int(at.max())}",
    "old": None,
    "reversed": lambda ts, at: f"{int(ts.max()) + 1}_{int(ts.min())}_{int(at.max()) + 1}_{int(at.min())}",
    "arabic_digits": lambda ts, at: "_".join(str(v).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
                                             for v in (0, 1, 0, 1)),
    "too_long": lambda ts, at: "_".join(["9" * 20] * 4),
    "word": lambda ts, at: "1_2_x_4",
}

# rows at the edges: stamped at/after the watermark, received before/at/after the cutoff
row_st = st.tuples(
    st.sampled_from(["p0", "p1", "s0", "s1"]),  # p*: a decision still pending, s*: settled or unknown
    st.sampled_from([WATERMARK, WATERMARK, WATERMARK - 1, WATERMARK + 1]),
    st.sampled_from([0.0, -0.0, 1.0]),
    st.sampled_from([CUTOFF - 1, CUTOFF, CUTOFF - 1, CUTOFF + 1]),
    st.booleans(),
)
# (rows, name form, rows per row group, whether a nested column -- extra metrics -- comes first)
part_st = st.tuples(st.lists(row_st, min_size=1, max_size=4), st.sampled_from(["span", "span", "old", *sorted(NAMES)]),
                    st.integers(1, 3), st.booleans())


def reference(rows: list[tuple[str, int, float, int, bool]], pending: set[str]):
    """Every row read (the service before 2026-12-05): the keys received within the span (first place, last
    time), and the outcomes of pending decisions that can count (stamped after the watermark) or whose delivery is
    still remembered; a row repeated whole counts once."""
    keys: OrderedDict[tuple[int, int], int] = OrderedDict()
    to_trainer = []
    seen = set()
    for event_id, ts, reward, at, client in rows:
        key = delivery_key(event_id, reward, ts if client else None)
        if (key, ts, at) in seen:
            continue
        seen.add((key, ts, at))
        if at >= CUTOFF:
            keys[key] = at
        if event_id in pending and (ts > WATERMARK or at >= CUTOFF):
            to_trainer.append((event_id, ts, reward))
    return list(keys.items()), to_trainer


@settings(derandomize=True, max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(part_st, min_size=1, max_size=6))
@example([([("s0", WATERMARK, 1.0, CUTOFF - 1, True), ("p1", WATERMARK + 1, 1.0, CUTOFF - 1, False)], "span", 2, False)])
@example([([("p0", WATERMARK + 1, 1.0, CUTOFF - 1, True)], "old", 1, True)])
def test_a_restart_takes_exactly_the_outcomes_a_full_read_would_at_the_edges(tmp_path_factory, monkeypatch, parts):
    directory = tmp_path_factory.mktemp("log") / "outcomes"
    directory.mkdir()
    rows_in_order = []
    for k, (rows, form, group, nested) in enumerate(parts):
        table = pa.table(
            {"event_id": [r[0] for r in rows],
             "timestamp": pa.array(np.array([r[1] for r in rows], dtype="datetime64[us]"), SCHEMA.field(1).type),
             "reward": [r[2] for r in rows],
             "received_at": pa.array(np.array([r[3] for r in rows], dtype="datetime64[us]"), SCHEMA.field(3).type),
             "client_timestamp": [r[4] for r in rows]}, schema=SCHEMA)
        if nested:  # leaves: metrics.a, .b, .c, timestamp, received_at, ...: the Arrow field index of "timestamp" (1)
            # is the leaf metrics.b, an int64 column too (regression: its statistics were taken for the timestamps')
            metrics = pa.array([{"a": 0, "b": 0, "c": 0}] * len(rows))
            table = table.select(["timestamp", "received_at", "event_id", "reward", "client_timestamp"])
            table = table.add_column(0, "metrics", metrics)
        ts, at = np.array([r[1] for r in rows]), np.array([r[3] for r in rows])
        name = f"part-{k:020d}-0000000{k}" + ("" if NAMES[form] is None else "-" + NAMES[form](ts, at))
        pq.write_table(table, directory / f"{name}.parquet", row_group_size=group)
        rows_in_order += rows
    pending = {"p0", "p1"}
    got: list[tuple[str, int, float]] = []
    fake = types.SimpleNamespace(
        trainer=types.SimpleNamespace(_pending=dict.fromkeys(pending),
                                      add_outcome=lambda e, t, r: got.append((e, t, r))),
        _dedupe_us=SPAN, _outcome_keys=DeliveryKeys(SPAN), log_dir=directory.parent)
    monkeypatch.setattr(bandit.serving, "time", types.SimpleNamespace(time_ns=lambda: NOW * 1000))
    monkeypatch.setattr(bandit.serving, "_OUTCOME_BATCH", 2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        DecisionService._recover_outcomes(fake, WATERMARK, bandit.serving._OutcomeParts(directory))
    keys, to_trainer = reference(rows_in_order, pending)
    assert fake._outcome_keys.items() == keys
    assert got == to_trainer
    # a row stored twice (same delivery, timestamp and receipt) is reported, once
    assert [str(w.message).split()[0] for w in caught] == ([str(n_repeats)] if (n_repeats := _repeats(rows_in_order)) else [])


def _repeats(rows) -> int:
    """Rows the restart uses that repeat an earlier one whole."""
    used = [(delivery_key(e, r, t if c else None), t, a) for e, t, r, a, c in rows
            if a >= CUTOFF or (e in {"p0", "p1"} and t > WATERMARK)]
    return len(used) - len(set(used))


def test_part_names_that_state_no_usable_span_fall_back_to_the_footer():
    ts, at = np.array([5, 9]), np.array([7, 8])
    assert bandit.serving._name_span(f"part-{0:020d}-abcdef01-{NAMES['span'](ts, at)}.parquet") == (5, 9, 7, 8)
    for form in ("reversed", "arabic_digits", "too_long", "word"):
        assert bandit.serving._name_span(f"part-{0:020d}-abcdef01-{NAMES[form](ts, at)}.parquet") is None, form
    assert bandit.serving._name_span(f"part-{0:020d}-abcdef01.parquet") is None


def test_a_decision_parts_newest_time_is_read_from_its_own_timestamp_column(tmp_path):
    # regression: the footer's column was found by leaf name, so a nested column's leaf named "timestamp" (before the
    # real one) made a part of new decisions look settled: a restart passed over it
    part = tmp_path / "part-1.parquet"
    pq.write_table(pa.table({"meta": pa.array([{"timestamp": 0}]),
                             "timestamp": pa.array(np.array([WATERMARK + 1], "datetime64[us]"), SCHEMA.field(1).type)}),
                   part)
    assert bandit.serving._newest_us(part) == WATERMARK + 1
    assert not bandit.serving._decided_by(part, WATERMARK)
