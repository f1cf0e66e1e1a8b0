"""Idempotence-state benchmark: what remembering the applied decisions costs, old growing set vs watermark ledger.

Run ``python bench/idempotence_bench.py`` (full: 10^5, 10^6 and 10^7 applied events, about two minutes and ~3 GB
of memory for the old set at 10^7) or ``python bench/idempotence_bench.py --quick`` (5*10^4 and 2*10^5 events, a few
seconds). Not a test: it prints a table and writes ``bench/results/idempotence.json`` (``idempotence_quick.json``
for ``--quick``).

Traffic: steady, ``RATE`` = 50 000 decisions a day, each applied by a daily ``update_from_log`` call (1-day
attribution window, 1-day grace), so N applied events span N / RATE days (2, 20 and 200 days).

* **new** -- the policy's :class:`bandit.attribution.AppliedEvents` ledger: a watermark at
  ``now - window - grace`` plus the ids settled after it. For the smallest N the ledger is built by real daily
  ``policy.update_from_log`` calls on generated logs (LinUCB, 4 features); for the larger ones by the ledger calls
  ``apply_log`` makes each day (``add`` the day's applied ids with their decision times, then ``advance`` the
  watermark), which is the same bookkeeping without building 10^7 log rows. The run checks that both give the same
  ledger size at the smallest N.
* **old** -- the growing set of every applied id (before this change), emulated exactly: the set on the policy
  (``snapshot()`` copied it) and ``sorted(ids)`` as ``applied_event_ids`` in the policy file's JSON metadata.

Measured for each: the policy file's size, ``policy.save`` time (best of a few; one run for the old 10^7), and
``policy.snapshot()`` time (best of a few), plus the number of ids held. Ids look like ``req-0000123456``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _common import best_of, print_table, write_results

import bandit
from bandit import state as _state
from bandit._ledger import STATE_ARRAYS as LEDGER_ARRAYS
from bandit.attribution import AppliedEvents

RATE = 50_000  # decisions per day
DAY_US = 86_400_000_000
WINDOW, GRACE = "1D", "1D"
T0 = pd.Timestamp("2026-01-01", tz="UTC")
T0_US = T0.value // 1000
FULL = {"sizes": [100_000, 1_000_000, 10_000_000], "repeats": 3}
QUICK = {"sizes": [50_000, 200_000], "repeats": 2}
ARMS = ["individual", "duo", "family"]


def ids_of_day(day: int, per_day: int) -> tuple[list[str], np.ndarray]:
    """The day's decision ids and times (us), evenly spread over the day."""
    first = day * per_day
    ids = [f"req-{i:010d}" for i in range(first, first + per_day)]
    times = T0_US + day * DAY_US + np.arange(per_day, dtype=np.int64) * (DAY_US // per_day)
    return ids, times


def new_policy() -> Any:
    return bandit.LinUCB(ARMS, n_features=4, seed=0)


def call_time_us(day: int) -> int:
    """The daily update_from_log call after day ``day``: one second past midnight."""
    return T0_US + (day + 1) * DAY_US + 1_000_000


def ledger_by_bookkeeping(n_events: int) -> AppliedEvents:
    """The ledger after n_events applied by daily calls, kept as apply_log keeps it: each call settles the decisions
    it applies, then moves the watermark to its now - window - grace (2 days)."""
    ledger = AppliedEvents()
    days = n_events // RATE
    for day in range(days + 1):  # call `day` settles day `day`'s decisions (and the rest of the day before)
        if day < days:
            ledger.add(*ids_of_day(day, RATE))
        ledger.advance(call_time_us(day) - 2 * DAY_US)
    return ledger


def day_frames(day: int, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One day's decision log (4 features) and outcomes (every 5th decision converts an hour later)."""
    ids, times = ids_of_day(day, RATE)
    stamps = pd.DatetimeIndex(pd.to_datetime(times, unit="us", utc=True))
    dec = pd.DataFrame(
        {
            "event_id": ids,
            "timestamp": stamps,
            "context": list(rng.normal(size=(RATE, 4)) * 0.3),
            "action": np.arange(RATE, dtype=np.int32) % 3,
            "action_name": [ARMS[i % 3] for i in range(RATE)],
        }
    )
    buy = np.arange(0, RATE, 5)
    outs = pd.DataFrame({"event_id": [ids[i] for i in buy], "timestamp": stamps[buy] + pd.Timedelta("1h"),
                         "reward": 1.0})
    return dec, outs


def ledger_by_update_from_log(n_events: int) -> Any:
    """A LinUCB fed n_events decisions through real daily update_from_log calls, each reading the last two days of
    log and outcomes (a decision stays open for one day)."""
    rng = np.random.default_rng(0)
    policy = new_policy()
    days = n_events // RATE
    recent: list[tuple[pd.DataFrame, pd.DataFrame]] = []
    for day in range(days + 1):  # the extra call resolves the last day's decisions
        if day < days:
            recent = [*recent[-1:], day_frames(day, rng)]
        else:
            recent = recent[-1:]
        dec = pd.concat([d for d, _ in recent], ignore_index=True)
        outs = pd.concat([o for _, o in recent], ignore_index=True)
        now = pd.Timestamp(call_time_us(day), unit="us", tz="UTC")
        report = policy.update_from_log(dec, outs, WINDOW, now=now, grace=GRACE)
        assert set(report.rejected["reason"]) <= {"future_timestamp"}, report.rejected.head()
    assert policy.n_updates == n_events, (policy.n_updates, n_events)
    return policy


class OldFormat:
    """Saves ``policy`` as the code before the watermark did: every applied id, sorted, in the JSON metadata."""

    def __init__(self, policy: Any, ids: set[str]) -> None:
        self.policy = policy
        self.ids = ids

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta, arrays = self.policy._get_state()
        meta.pop("applied_events")
        for name in LEDGER_ARRAYS:
            arrays.pop(name)
        meta["applied_event_ids"] = sorted(self.ids)
        return meta, arrays


def measure(policy: Any, saver: Any, path: Path, repeats: int, held: Any) -> dict[str, float]:
    """File size and save time of ``saver``'s state, and snapshot() time of ``policy`` holding ``held``."""
    save_s = best_of(lambda: _state.save(saver, path), repeats)
    ledger = policy._applied_event_ids
    policy._applied_event_ids = held  # the old code's snapshot() copied the set: the same cost
    try:
        snapshot_s = best_of(policy.snapshot, max(repeats, 3))
    finally:
        policy._applied_event_ids = ledger
    return {"file_mb": path.stat().st_size / 1e6, "save_s": save_s, "snapshot_s": snapshot_s}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5*10^4 and 2*10^5 events (a smoke run)")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    warmup_s = bandit.warmup()
    rows: list[dict[str, Any]] = []
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for n in cfg["sizes"]:
            t0 = time.perf_counter()
            if n == cfg["sizes"][0]:
                policy = ledger_by_update_from_log(n)
                check = ledger_by_bookkeeping(n)
                built_by = "update_from_log"
                assert policy._applied_event_ids == check, (len(policy._applied_event_ids), len(check))
            else:
                policy = new_policy()
                policy._applied_event_ids = ledger_by_bookkeeping(n)
                built_by = "ledger add/advance"
            build_s = time.perf_counter() - t0
            new = measure(policy, policy, Path(tmp) / "new.zip", cfg["repeats"], policy._applied_event_ids)
            rows.append({"events": n, "state": "new (watermark)", "ids_held": len(policy._applied_event_ids),
                         **new, "built_by": built_by, "build_s": build_s})
            print(f"{n:,} new: {new}", flush=True)

            old_ids = {f"req-{i:010d}" for i in range(n)}
            old = measure(policy, OldFormat(policy, old_ids), Path(tmp) / "old.zip",
                          1 if n >= 10_000_000 else cfg["repeats"], old_ids)
            rows.append({"events": n, "state": "old (growing set)", "ids_held": len(old_ids), **old,
                         "built_by": "emulated", "build_s": None})
            print(f"{n:,} old: {old}", flush=True)
            del old_ids
    total_s = time.perf_counter() - t_start

    print(
        f"\nIdempotence state ({'quick' if args.quick else 'full'}): steady {RATE:,} decisions/day, window {WINDOW}, "
        f"grace {GRACE}; bandit.warmup() {warmup_s:.2f} s; total {total_s:.0f} s\n"
    )
    print_table(rows, ["events", "state", "ids_held", "file_mb", "save_s", "snapshot_s", "built_by"])
    big = [r for r in rows if r["events"] == cfg["sizes"][-1]]
    ratio = {k: big[1][k] / big[0][k] for k in ("file_mb", "save_s", "snapshot_s")}
    print(
        f"\nAt {cfg['sizes'][-1]:,} events the old set is {ratio['file_mb']:.0f}x the file, {ratio['save_s']:.0f}x the "
        f"save time and {ratio['snapshot_s']:.0f}x the snapshot time of the watermark ledger, whose cost stays flat."
    )
    path = write_results(
        "idempotence_quick" if args.quick else "idempotence",
        {
            "config": {"rate_per_day": RATE, "window": WINDOW, "grace": GRACE, **cfg},
            "warmup_s": warmup_s,
            "total_s": total_s,
            "rows": rows,
            "old_over_new_at_largest": ratio,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
