"""Serving an upsell policy: a request handler, a Parquet decision log and a trainer thread fed by delayed outcomes.

Who it is for: the engineer who puts a policy behind an endpoint.

What it shows
-------------
1. **The handler** (:class:`UpsellHandler`): a request carries a request id, the user's attributes (a dict, as in a
   JSON body) and the offers the catalog allows for this user. The handler turns the attributes into a context
   vector (:meth:`bandit.simulation.Featurizer.transform_one`, a few microseconds, the batch featurizer's exact
   encoding) and calls :meth:`bandit.serving.DecisionService.rank` with the per-request eligibility and
   ``event_id=<request id>``: the current read-only snapshot decides, and the decision is in the journal (the
   service's write-ahead log, compacted into the Parquet decision log) before it returns.
2. **Bad input** raises ``ValueError`` naming the field (the web layer answers 422); nothing is logged and no state
   changes, so the request can be fixed and retried under the same id.
3. **The trainer** (the service's background thread): conversions are posted with ``service.reward(request_id,
   1.0, timestamp=...)``; the trainer applies them through the one-day attribution window with
   ``policy.update_from_log`` on the live policy (a decision without a conversion counts 0 once its window has
   closed), publishes a new snapshot (one reference assignment: the handler never waits) and checkpoints the
   policy file atomically. ``upsell-bandit serve`` is this service behind HTTP.
4. **Nothing is lost**: every request served is in the log exactly once, every logged decision is learned from
   exactly once (with its conversion, or 0 once its attribution window has passed), and the file on disk is the
   live state.

Traffic, eligibility and conversions come from the simulated world (:mod:`bandit.simulation`) on a simulated clock
(2,000 requests per simulated day; a conversion arrives after an exponential delay of mean half a day and counts
when it arrives within the one-day attribution window); the trainer runs on the simulated clock
(``DecisionService(clock=...)``). Exact figures vary slightly from run to run: when a snapshot swap lands between
two requests depends on thread scheduling.

Run ``python examples/serving_handler.py`` (20,000 requests, a few seconds) or ``--small`` (3,000).
"""

from __future__ import annotations

import argparse
import heapq
import tempfile
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
from bandit.serving import DecisionService
from bandit.simulation import UpsellWorld, WorldConfig
from bandit.simulation.config import CatalogConfig

#: The business's attribution rule: a conversion counts for an offer when it arrives within this window (the
#: simulated world's window, so the trainer credits exactly the conversions the world attributes).
ATTRIBUTION_WINDOW = timedelta(days=WorldConfig().delay.attribution_window_days)
_US_PER_DAY = 86_400_000_000


class UpsellHandler:
    """Decide one offer per request through a :class:`bandit.serving.DecisionService` and return it.

    Thread-safety: any number of threads may call :meth:`handle`; the service's rank reads the current read-only
    snapshot (never blocked by the trainer) and journals the decision before returning.

    Parameters
    ----------
    service : bandit.serving.DecisionService
        Started service (its trainer learns in the background and swaps the snapshot ``rank`` uses).
    featurize : callable
        User attributes (a mapping) -> context vector, e.g. :meth:`Featurizer.transform_one`.
    """

    def __init__(self, service: DecisionService, featurize: Callable[[Mapping[str, Any]], np.ndarray]) -> None:
        self.service = service
        self.featurize = featurize

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
            Bad attributes, unknown or empty eligibility (a :class:`bandit.serving.RequestError` naming the field),
            a request id already served. Nothing is logged then.
        """
        x = self.featurize(user)
        return self.service.rank(x, eligible=eligible, event_id=request_id, timestamp=timestamp)


class SimulatedClock:
    """The trainer's clock in the simulation (microseconds since the epoch): the time up to which the outcome
    pipeline has delivered every conversion, advanced by the request loop after each delivery."""

    def __init__(self, start: pd.Timestamp) -> None:
        self.us = start.value // 1000

    def set(self, when: pd.Timestamp) -> None:
        self.us = when.value // 1000

    def __call__(self) -> int:
        return self.us


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
    parser.add_argument("--refresh", type=int, default=1_000,
                        help="requests between outcome deliveries (the outcome pipeline's batch; default 1,000)")
    parser.add_argument("--out", type=Path, default=None, help="directory for the logs and the policy (default: temp)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    n = 3_000 if args.small else args.n
    if n < 1 or args.refresh < 1:
        parser.error("--n and --refresh must be positive")
    if args.seed < 0:
        parser.error(f"--seed {args.seed}: expected a non-negative integer")
    out = Path(tempfile.mkdtemp(prefix="upsell-serving-")) if args.out is None else args.out
    if (out / "logs").exists():
        parser.error(f"{out / 'logs'} already holds a serving log (request ids would repeat); use a new --out")
    out.mkdir(parents=True, exist_ok=True)

    # the world supplies the traffic: users, the offers each may see, and what each would do with each offer
    world = UpsellWorld(WorldConfig(), CatalogConfig().build(with_new_plan=False), seed=args.seed)
    episode = world.episode(n)
    requests = episode.users.to_dict("records")
    names = np.array(episode.arm_names, dtype=object)
    stamps = pd.DatetimeIndex(episode.timestamps).tz_localize("UTC")

    bandit.warmup()
    policy_path = out / "policy.zip"
    bandit.LinUCB(world.arms(include_new=False), n_features=world.featurizer.n_features, alpha=0.5,
                  exploration_floor=0.05, seed=args.seed).save(policy_path)
    clock = SimulatedClock(stamps[0])
    # the trainer thread steps every 20 ms of wall time on the simulated clock; checkpoints every 1,000 updates
    service = DecisionService(policy_path, out / "logs", attribution_window=ATTRIBUTION_WINDOW, durability="write",
                              delivery_delay=0, train_every=0.02, checkpoint_updates=1_000, clock=clock)
    service.trainer.keep_reports = True
    service.start()
    handler = UpsellHandler(service, world.featurizer.transform_one)

    print(f"serving {n:,} requests with LinUCB (exploration floor 0.05); logs in {service.log_dir}")
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
    n_delivered = 0
    clock_ns = time.perf_counter_ns
    for i in range(n):
        request_id = f"req-{i:07d}"
        t0 = clock_ns()
        decision = handler.handle(request_id, requests[i], list(names[episode.eligible[i]]), stamps[i])
        latency[i] = clock_ns() - t0
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
                service.reward(event_id, 1.0, timestamp=arrival)  # the outcome pipeline posts each conversion
                n_delivered += 1
            clock.set(now)  # the trainer's clock moves only once every outcome up to it is delivered
            # the request loop runs a simulated day in about a second: let the trainer catch up so that the served
            # snapshot is at most one refresh old, as it would be in production
            service.submit(service.trainer.step).result()
    service.close()  # compacts the journal into the Parquet logs, last step and checkpoint
    if service.last_error is not None:
        raise RuntimeError("the trainer failed") from service.last_error

    reports: list[UpdateReport] = service.trainer.reports
    log_path = service.log_dir / "decisions" / f"arms-{len(names)}"
    logged = read_decision_log(log_path)
    reloaded = bandit.load(policy_path)
    policy = service.holder.policy
    applied = [e for r in reports for e in r.event_ids]
    windows = conversion_windows(attributed, revenue)
    lat = latency / 1e3
    print(f"\nserved {n:,} requests, rejected {len(rejected)} bad ones; logged {len(logged):,} decisions "
          f"({logged['policy_version'].nunique()} policy versions served)")
    print(f"handler latency (informal, featurize + rank + journal write, trainer running alongside): "
          f"p50 {np.percentile(lat, 50):.1f} us, p99 {np.percentile(lat, 99):.1f} us")
    learned = float(np.nansum(policy.mean_rewards * policy.pulls))
    print(f"trainer: {service.trainer.n_steps} steps, {service.holder.n_published} snapshots published, applied "
          f"{len(applied):,} decisions ({sum(r.n_expired_zero for r in reports):,} expired without a conversion); "
          f"{n_delivered:,} conversions delivered, {int(attributed.sum()):,} inside their attribution window, "
          f"learned reward total {learned:,.0f}")
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
        reports=reports,
        policy=policy,
        log_path=log_path,
        policy_path=policy_path,
        windows=windows,
    )


if __name__ == "__main__":
    main()
