"""The reward dedupe table (bandit._ledger.DeliveryKeys) against the insertion-ordered dict of delivery tuples it
replaced, under seeded random streams of claims, repeats, expiries, releases and recovery assignments."""

from __future__ import annotations

import mmap
import random
from collections import OrderedDict
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bandit import _ledger
from bandit._ledger import DeliveryKeys, delivery_key


class Reference:
    """The service's dedupe before DeliveryKeys (bandit/serving.py until 2026-12-05), key = the delivery tuple."""

    def __init__(self, span_us: int) -> None:
        self.keys: OrderedDict[tuple[str, float, int | None], int] = OrderedDict()
        self.span = span_us

    def claim(self, key: tuple[str, float, int | None], now: int) -> bool:
        if key in self.keys:
            return False
        self.keys[key] = now
        while self.keys:
            oldest, received = next(iter(self.keys.items()))
            if now - received <= self.span:
                break
            del self.keys[oldest]
        return True


@pytest.mark.parametrize("at_once", [_ledger._AT_ONCE, 8])
@pytest.mark.parametrize("seed", range(4))
def test_the_table_answers_and_holds_exactly_what_the_ordered_dict_did(seed, at_once, monkeypatch):
    # at_once=8: every new table for more than 8 keys takes over incrementally, so most operations run while a
    # migration is under way (claims, repeats, expiries, releases and assignments of keys in either table)
    monkeypatch.setattr(_ledger, "_AT_ONCE", at_once)
    if at_once == 8:  # and every table in memory of its own, the migrated part given back a page at a time
        monkeypatch.setattr(_ledger, "_MAPPED_BYTES", 0)
        monkeypatch.setattr(_ledger, "_RELEASE_BYTES", mmap.PAGESIZE)
    rng = random.Random(seed)
    span = [40, 300, 2_000, 10**9][seed]  # from keys expiring all the time to none expiring
    table, reference = DeliveryKeys(span), Reference(span)
    # deliveries drawn with repeats (a few hot ones), from a pool of ids, rewards and timestamps (or none); -0.0 and
    # 0.0 are the same reward, as they were in the tuple
    pool = [(f"ev-{i % 700}", float(i % 3) if i % 5 else -0.0 * (i % 2) + 0.0 * (1 - i % 2),
             None if i % 4 == 0 else 1_700_000_000_000_000 + i % 50) for i in range(4_000)]
    now = 1_000
    sizes: list[int] = []
    migrating = 0
    for step in range(12_000):
        now += rng.choice([0, 1, 1, 1, 3]) if rng.random() > 0.005 else -rng.randrange(1, 200)  # steps back too
        tup = pool[int(rng.random() ** 3 * len(pool))] if rng.random() < 0.6 else rng.choice(pool)
        key = delivery_key(*tup)
        op = rng.random()
        if op < 0.93:
            assert table.claim(key, now) == reference.claim(tup, now), step
        elif op < 0.97:  # a journal write failed: the key is given back
            table.release(key)
            reference.keys.pop(tup, None)
        else:  # recovery's assignment: a held key keeps its place and takes the new time
            at = now - rng.randrange(0, 3 * span)
            table.set(key, at)
            reference.keys[tup] = at
        sizes.append(len(table))
        migrating += table._old is not None
        if step % 500 == 0 or step == 11_999:
            assert table.items() == [(delivery_key(*t), at) for t, at in reference.keys.items()], step
            assert len(table) == len(reference.keys)
    # everything expires at a late claim: the arrays shrink back to those of a table holding one key (one chunk of
    # the ring, the smallest table: the chunks expiry passed are freed, and the table is replaced by a small one)
    grown = table.nbytes
    last = delivery_key("last", 1.0, None)
    assert table.claim(last, now + 2 * span + 1) and reference.claim(("last", 1.0, None), now + 2 * span + 1)
    assert table.items() == [(last, now + 2 * span + 1)] and len(reference.keys) == 1
    fresh = DeliveryKeys(span)
    fresh.claim(last, 0)
    assert max(sizes) > 400 and table.nbytes == fresh.nbytes < grown
    assert migrating > (1_000 if at_once == 8 else -1)


def test_set_many_at_a_restart_equals_assigning_one_by_one_in_order():
    rng = np.random.default_rng(3)
    tuples = [(f"e{i}", 1.0, None) for i in rng.integers(0, 3_000, size=12_000)]  # repeats: first place, last time
    at = rng.integers(0, 10**9, size=len(tuples))
    reference: OrderedDict = OrderedDict()
    for tup, t in zip(tuples, at.tolist(), strict=True):
        reference[delivery_key(*tup)] = t
    keys = np.array([delivery_key(*t) for t in tuples], dtype=np.uint64)
    bulk = DeliveryKeys(100)
    bulk.set_many(keys[:, 0], keys[:, 1], at)
    assert bulk.items() == list(reference.items())
    one_by_one = DeliveryKeys(100)
    one_by_one.set_many(keys[:1, 0], keys[:1, 1], at[:1])
    one_by_one.set_many(keys[1:, 0], keys[1:, 1], at[1:])  # (on a table holding keys: the loop of set)
    assert one_by_one == bulk
    # the table then claims and expires like the dict would
    assert not bulk.claim(keys[5].tolist(), 10**9) and bulk.claim(delivery_key("new", 1.0, None), 2 * 10**9)
    assert len(bulk) == 1
    with pytest.raises(ValueError, match="equal length"):
        bulk.set_many(keys[:3, 0], keys[:2, 1], at[:3])


def test_delivery_keys_are_the_tuple_equality_of_the_deliveries():
    assert delivery_key("e", 1, None) == delivery_key("e", 1.0, None)
    assert delivery_key("e", -0.0, 7) == delivery_key("e", 0.0, 7)
    distinct = [delivery_key(*t) for t in [("e", 1.0, None), ("e", 1.0, 0), ("e", 1.0, 1), ("e ", 1.0, None),
                                           ("e", 1.0000000000000002, None), ("é", 1.0, None), ("e\0", 1.0, None)]]
    assert len(set(distinct)) == len(distinct)
    assert all(0 <= half < 2**64 for key in distinct for half in key)


def test_a_held_key_costs_tens_of_bytes_not_hundreds():
    table = DeliveryKeys(10**12)
    moved, migrations = [], 0
    for i in range(50_000):
        migrating = table._old
        before = table._cursor
        table.claim(delivery_key(f"{i:032x}", 1.0, None), i)
        if migrating is not None:  # a migration was under way: this claim moved a paced number of old slots
            moved.append((table._cursor if table._old is migrating else len(migrating)) - before)
        migrations += table._old is not None and migrating is None
    assert len(table) == 50_000 and table.nbytes / len(table) < 80  # the OrderedDict of tuples: ~330 bytes a key
    # growth is incremental: past 4,096 keys each new table takes over a few old slots per claim (the pace keeps the
    # new table under half full until the move ends, so the move never has to be finished at once)
    assert migrations >= 3 and len(moved) > 10_000 and max(moved) <= 9
    with pytest.raises(ValueError, match="span_us"):
        DeliveryKeys(-1)


# adversarial keys: low halves that share a home slot (or land at the table's end, in the spill) at every table size,
# so that probe runs are long, cross the spill and are shifted back by deletions
_LOWS = [0, 1, 2, 63, 64, 65, 127, 191, 2**64 - 1, 2**64 - 2, 2**63, 960, 2**32]
_key = st.tuples(st.integers(0, 3), st.one_of(st.sampled_from(_LOWS), st.integers(0, 2**64 - 1)))
_op = st.one_of(
    st.tuples(st.just("claim"), _key, st.integers(-50, 50)),  # the clock steps back too
    st.tuples(st.just("release"), _key, st.just(0)),  # also of a key not held
    st.tuples(st.just("set"), _key, st.integers(-200, 200)),
)


@settings(derandomize=True, max_examples=150, deadline=None)
@given(st.integers(0, 100), st.lists(st.tuples(_key, st.integers(-100, 100)), max_size=50),
       st.lists(_op, max_size=300))
def test_colliding_keys_expiry_and_releases_against_the_ordered_dict(span, bulk, ops):
    for at_once in (_ledger._AT_ONCE, 2):  # 2: a table for more than 2 keys takes over incrementally
        with mock.patch.object(_ledger, "_AT_ONCE", at_once), mock.patch.object(
                _ledger, "_MAPPED_BYTES", 0 if at_once == 2 else _ledger._MAPPED_BYTES):
            _colliding_keys_against_the_ordered_dict(span, bulk, ops)


def _colliding_keys_against_the_ordered_dict(span, bulk, ops):
    table, reference = DeliveryKeys(span), Reference(span)
    if bulk:  # recovery's bulk load first (keys repeated: first place, last time)
        table.set_many(*(np.array(column, dtype=dtype) for column, dtype in zip(
            zip(*((k[0], k[1], at) for k, at in bulk), strict=True), (np.uint64, np.uint64, np.int64), strict=True)))
        for key, at in bulk:
            reference.keys[key] = at
    now = 0
    for step, (op, key, value) in enumerate(ops):
        if op == "claim":
            now += value
            assert table.claim(key, now) == reference.claim(key, now), step
        elif op == "release":
            table.release(key)
            reference.keys.pop(key, None)
        else:
            table.set(key, now + value)
            reference.keys[key] = now + value
        assert len(table) == len(reference.keys), step
    assert table.items() == list(reference.keys.items())
    assert all(key in table for key in reference.keys) and not any(
        (h, low) in table for h in range(4) for low in _LOWS if (h, low) not in reference.keys)


def test_keys_are_unpredictable_across_processes():
    # hardening: unkeyed hashes let a client compute every delivery's home slot and aim rewards at one probe run
    # (each claim in it walks the run under the service's lock); the hash is keyed with a secret drawn per process
    import subprocess
    import sys

    code = "from bandit._ledger import delivery_key; print(*delivery_key('req-1', 1.0, None))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert tuple(map(int, other)) != delivery_key("req-1", 1.0, None)
