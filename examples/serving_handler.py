"""Serving an upsell policy: a request handler, a Parquet decision log and a trainer thread fed by delayed outcomes.

Who it is for: the engineer who puts a policy behind an endpoint.

What it shows
-------------
1. **The handler** (:class:`UpsellHandler`): a request carries a request id, the user's attributes (a dict, as in a
   JSON body) and the offers the catalog allows for this user. The handler turns the attributes into a context
   vector (:meth:`bandit.simulation.Featurizer.transform_one`, a few microseconds, the batch featurizer's exact
   encoding), calls ``choose`` on the current read-only ``policy.snapshot()`` with the
   per-request eligibility and ``event_id=<request id>``, appends the decision to a :class:`bandit.DecisionLog`
   (Parquet part files) and returns the decision (``decision.arm`` is the offer to show).
2. **Bad input** raises ``ValueError`` naming the field (the web layer answers 400); nothing is logged and no state
   changes, so the request can be fixed and retried under the same id.
3. **The trainer** (:class:`Trainer`, a separate thread): every ``--refresh`` requests it flushes the log, joins the
   outcomes that have arrived with ``policy.update_from_log(decisions, outcomes, attribution_window=...)`` on the
   live policy, saves the policy (atomic file replace) and swaps the snapshot the handler uses (one reference
   assignment, atomic in Python). The handler never waits for it.
4. **Nothing is lost**: every request served is in the log exactly once, every logged decision is learned from
   exactly once (with its conversion, or 0 once its attribution window has passed), and the file on disk is the
   live state.

Traffic, eligibility and conversions come from the simulated world (:mod:`bandit.simulation`) on a simulated clock
(2,000 requests per simulated day; a conversion arrives after an exponential delay of mean half a day and counts
when it arrives within the one-day attribution window). Exact figures vary slightly from run to run: when a
snapshot swap lands between two requests depends on thread scheduling.

Run ``python examples/serving_handler.py`` (20,000 requests, a few seconds) or ``--small`` (3,000).
"""

from __future__ import annotations

import argparse
import heapq
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import bandit
from bandit.attribution import UpdateReport
from bandit.decision import Decision
from bandit.decision_log import read_decision_log
from bandit.simulation import UpsellWorld, WorldConfig
from bandit.simulation.config import CatalogConfig

#: The business's attribution rule: a conversion counts for an offer when it arrives within this window (the
#: simulated world's window, so the trainer credits exactly the conversions the world attributes).
ATTRIBUTION_WINDOW = timedelta(days=WorldConfig().delay.attribution_window_days)
_US_PER_DAY = 86_400_000_000


class UpsellHandler:
    """Decide one offer per request with the current snapshot and log it.

    Thread-safety: any number of threads may call :meth:`handle`; the snapshot is read-only and thread-safe, and
    so is the :class:`~bandit.DecisionLog` (appends never wait for the trainer's flush).

    Parameters
    ----------
    policy : bandit policy
        The live policy; the handler serves a snapshot of it until :meth:`swap` installs a newer one.
    log : bandit.DecisionLog
    featurize : callable
        User attributes (a mapping) -> context vector, e.g. :meth:`Featurizer.transform_one`.
    """

    def __init__(
        self, policy: Any, log: bandit.DecisionLog, featurize: Callable[[Mapping[str, Any]], np.ndarray]
    ) -> None:
        self._snapshot = policy.snapshot()
        self.log = log
        self.featurize = featurize

    def swap(self, snapshot: Any) -> None:
        """Serve ``snapshot`` from the next request on (a single reference assignment: atomic)."""
        self._snapshot = snapshot

    def handle(self, request_id: str, user: Mapping[str, Any], eligible: Sequence[str], timestamp: Any) -> Decision:
        """Choose, log and return the offer for one request.

        Parameters
        ----------
        request_id : str
            Unique id of the request; the decision's ``event_id``, which outcomes are joined on.
        user : mapping
            The user's attributes (see :meth:`Featurizer.transform_one`).
        eligible : sequence of str
            Names of the offers this user may see.
        timestamp : datetime-like
            Decision time (UTC).

        Returns
        -------
        Decision
            ``decision.arm`` is the offer; ``decision.propensity`` its exact probability.

        Raises
        ------
        TypeError, ValueError
            Bad attributes, unknown or empty eligibility, a request id already served. Nothing is logged then.
        """
        x = self.featurize(user)
        snapshot = self._snapshot  # one consistent policy state for this request
        decision = snapshot.choose(x, eligible=eligible, event_id=request_id)
        self.log.append(decision, x, timestamp=timestamp)  # records decision.eligible, the mask it was made under
        return decision


class Trainer(threading.Thread):
    """Background learner: each job ``(now, outcomes)`` updates the live policy from the log, saves it, swaps it in.

    Only this thread touches the live policy (``update_from_log``, ``save``, ``snapshot``). Send ``None`` to stop.
    An exception stops the thread and is kept in :attr:`error` (re-raised by the caller after ``join``).

    The job queue holds one waiting job: the simulated traffic arrives far faster than real traffic (a day of
    requests in about a second), so the request loop waits when the trainer falls two refreshes behind, which keeps
    the served snapshot at most two refreshes old, as it would be in production. Each job re-reads the whole log for
    simplicity; a production trainer would read only the parts added since its last job plus the decisions still
    pending (``update_from_log`` skips decisions already applied either way).
    """

    def __init__(self, policy: Any, handler: UpsellHandler, policy_path: Path, window: timedelta) -> None:
        super().__init__(name="upsell-trainer", daemon=True)
        self.policy = policy
        self.handler = handler
        self.policy_path = policy_path
        self.window = window
        self.jobs: queue.Queue[tuple[pd.Timestamp, pd.DataFrame] | None] = queue.Queue(maxsize=1)
        self.reports: list[UpdateReport] = []
        self.seconds: list[float] = []
        self.error: BaseException | None = None

    def submit(self, job: tuple[pd.Timestamp, pd.DataFrame] | None) -> None:
        """Queue a job, waiting while one is already waiting; raises if the thread has died meanwhile."""
        while True:
            if not self.is_alive():
                raise RuntimeError("the trainer thread stopped") from self.error
            try:
                self.jobs.put(job, timeout=0.1)
                return
            except queue.Full:
                continue

    def run(self) -> None:
        try:
            while (job := self.jobs.get()) is not None:
                now, outcomes = job
                t0 = time.perf_counter()
                self.handler.log.flush()  # every decision handled so far is on disk when this returns
                decisions = read_decision_log(self.handler.log.path)
                report = self.policy.update_from_log(decisions, outcomes, attribution_window=self.window, now=now)
                self.policy.save(self.policy_path)
                self.handler.swap(self.policy.snapshot())
                self.reports.append(report)
                self.seconds.append(time.perf_counter() - t0)
        except BaseException as exc:  # surfaced by the main thread after join()
            self.error = exc


@dataclass
class ServingResult:
    """What :func:`main` served and learned (returned for tests and notebooks)."""

    served: int
    rejected: list[str]
    decisions: list[Decision]
    latency_us: np.ndarray
    attributed: np.ndarray
    revenue: np.ndarray
    reports: list[UpdateReport]
    policy: Any
    log_path: Path
    policy_path: Path
    windows: pd.DataFrame


def bad_requests(user: Mapping[str, Any], eligible: list[str]) -> list[tuple[str, dict, list[str]]]:
    """Requests a real endpoint receives: a missing attribute, NaN, an unknown level, an unknown offer, no offer."""
    missing = {k: v for k, v in user.items() if k != "market"}
    nan_hours = {**user, "weekly_hours": float("nan")}
    unknown_market = {**user, "market": "fr"}
    return [
        ("missing market", missing, eligible),
        ("NaN weekly_hours", nan_hours, eligible),
        ("unknown market", unknown_market, eligible),
        ("unknown offer", dict(user), [*eligible, "platinum"]),
        ("no eligible offer", dict(user), []),
    ]


def conversion_windows(attributed: np.ndarray, revenue: np.ndarray, n_windows: int = 5) -> pd.DataFrame:
    """Attributed conversion rate and revenue per offer in ``n_windows`` consecutive windows of requests."""
    edges = np.linspace(0, attributed.shape[0], n_windows + 1).round().astype(int)
    return pd.DataFrame(
        {
            "requests": [f"{a + 1}-{b}" for a, b in zip(edges[:-1], edges[1:], strict=False)],
            "conversion_rate": [attributed[a:b].mean() for a, b in zip(edges[:-1], edges[1:], strict=False)],
            "revenue_per_offer": [revenue[a:b].mean() for a, b in zip(edges[:-1], edges[1:], strict=False)],
        }
    )


def main(argv: Sequence[str] | None = None) -> ServingResult:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="requests to serve (default 20,000)")
    parser.add_argument("--small", action="store_true", help="3,000 requests (a quick run)")
    parser.add_argument("--refresh", type=int, default=1_000, help="requests between trainer jobs (default 1,000)")
    parser.add_argument("--out", type=Path, default=None, help="directory for the log and the policy (default: temp)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    n = 3_000 if args.small else args.n
    if n < 1 or args.refresh < 1:
        parser.error("--n and --refresh must be positive")
    out = Path(tempfile.mkdtemp(prefix="upsell-serving-")) if args.out is None else args.out
    if any((out / "decisions").glob("part-*.parquet")):
        parser.error(f"{out / 'decisions'} already holds a decision log (request ids would repeat); use a new --out")
    out.mkdir(parents=True, exist_ok=True)

    # the world supplies the traffic: users, the offers each may see, and what each would do with each offer
    world = UpsellWorld(WorldConfig(), CatalogConfig().build(with_new_plan=False), seed=args.seed)
    episode = world.episode(n)
    requests = episode.users.to_dict("records")
    names = np.array(episode.arm_names, dtype=object)
    stamps = pd.DatetimeIndex(episode.timestamps).tz_localize("UTC")

    bandit.warmup()
    policy = bandit.LinUCB(world.arms(include_new=False), n_features=world.featurizer.n_features, alpha=0.5,
                           exploration_floor=0.05, seed=args.seed)
    log = bandit.DecisionLog(out / "decisions", policy=policy)
    handler = UpsellHandler(policy, log, world.featurizer.transform_one)
    trainer = Trainer(policy, handler, out / "policy.zip", ATTRIBUTION_WINDOW)
    trainer.start()

    print(f"serving {n:,} requests with {type(policy).__name__} (exploration floor 0.05); log in {log.path}")
    rejected = []
    for label, user, eligible in bad_requests(requests[0], list(names[episode.eligible[0]])):
        try:
            handler.handle("bad-request", user, eligible, stamps[0])
        except (TypeError, ValueError) as exc:
            rejected.append(f"{label}: {exc}")
            print(f"  rejected ({label}): {type(exc).__name__}: {exc}")

    decisions: list[Decision] = []
    latency = np.empty(n, dtype=np.int64)
    attributed = np.zeros(n, dtype=np.bool_)
    revenue = np.zeros(n)
    arrivals: list[tuple[pd.Timestamp, str]] = []  # conversions in flight, by arrival time
    delivered: list[tuple[str, pd.Timestamp]] = []  # the outcome pipeline's table so far
    clock = time.perf_counter_ns
    for i in range(n):
        request_id = f"req-{i:07d}"
        t0 = clock()
        decision = handler.handle(request_id, requests[i], list(names[episode.eligible[i]]), stamps[i])
        latency[i] = clock() - t0
        decisions.append(decision)
        outcome = episode.outcomes(np.array([i]), np.array([decision.index]))
        attributed[i], revenue[i] = outcome.attributed[0], outcome.revenue[0]
        if outcome.converted[0]:
            arrival = stamps[i] + pd.Timedelta(microseconds=round(outcome.delay_days[0] * _US_PER_DAY))
            heapq.heappush(arrivals, (arrival, request_id))
        if (i + 1) % args.refresh == 0 or i == n - 1:
            # at the end, let every attribution window close so each decision resolves
            now = stamps[i] + (ATTRIBUTION_WINDOW + timedelta(microseconds=1) if i == n - 1 else timedelta(0))
            while arrivals and arrivals[0][0] <= now:
                arrival, event_id = heapq.heappop(arrivals)
                delivered.append((event_id, arrival))
            outcomes = pd.DataFrame(delivered, columns=["event_id", "timestamp"]).assign(reward=1.0)
            trainer.submit((now, outcomes))
    trainer.submit(None)
    trainer.join()
    if trainer.error is not None:
        raise RuntimeError("the trainer thread failed") from trainer.error
    log.close()

    logged = read_decision_log(log.path)
    reloaded = bandit.load(trainer.policy_path)
    applied = [e for r in trainer.reports for e in r.event_ids]
    windows = conversion_windows(attributed, revenue)
    lat = latency / 1e3
    print(f"\nserved {n:,} requests, rejected {len(rejected)} bad ones; logged {len(logged):,} decisions "
          f"({logged['policy_version'].nunique()} policy versions served)")
    print(f"handler latency (informal, featurize + choose + log append, trainer running alongside): "
          f"p50 {np.percentile(lat, 50):.1f} us, p99 {np.percentile(lat, 99):.1f} us")
    learned = float(np.nansum(policy.mean_rewards * policy.pulls))
    print(f"trainer: {len(trainer.reports)} refreshes (median {1e3 * np.median(trainer.seconds):.0f} ms each), "
          f"applied {len(applied):,} decisions ({sum(r.n_expired_zero for r in trainer.reports):,} expired without a "
          f"conversion); {len(delivered):,} conversions delivered, {int(attributed.sum()):,} inside their "
          f"attribution window, learned reward total {learned:,.0f}")
    print("conversion over time:")
    print(windows.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    lost = n - len(applied)
    print(f"nothing lost: log rows == served: {len(logged) == n}; decisions learned exactly once: "
          f"{len(set(applied)) == len(applied) == n} ({lost} not learned); saved policy == live policy: "
          f"{reloaded.policy_version == policy.policy_version and reloaded.n_updates == policy.n_updates}")
    return ServingResult(
        served=n,
        rejected=rejected,
        decisions=decisions,
        latency_us=lat,
        attributed=attributed,
        revenue=revenue,
        reports=trainer.reports,
        policy=policy,
        log_path=log.path,
        policy_path=trainer.policy_path,
        windows=windows,
    )


if __name__ == "__main__":
    main()
