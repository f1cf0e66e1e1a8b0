"""Offline evaluation on a decision log: fit candidate policies, estimate them with intervals, decide go / no-go.

Who it is for: the data scientist who must say whether a new policy may replace the one in production, from the
logs alone.

What it shows
-------------
1. **The log.** By default a production stand-in -- ``LinUCB`` with a 30 % exploration floor, so every eligible
   offer keeps a known, positive probability -- makes ``--n`` offers in the simulated world, learning as it goes;
   its decisions are written through ``bandit.DecisionLog`` (Parquet, :mod:`offline_eval.schema`, ``reward`` null)
   and its conversions, as they arrive, to an outcomes table (``event_id``, ``timestamp``, ``reward`` -- the 0/1
   conversion -- and ``revenue``). ``--logs DIR`` reads such a log instead (e.g. ``<out>/logs/<policy>/decisions``
   written by ``upsell-bandit simulate``, with ``outcomes.parquet`` next to it or ``--outcomes FILE``). The
   outcomes are joined with :func:`bandit.attribution.join_outcomes` under the attribution window (``--window``,
   default 1D) at ``now`` = the last logged decision: decisions whose window is still open are left out --
   keeping only their early conversions would bias every estimate upwards.
2. **A time split.** Candidates are fitted on the older half of the log (``policy.update_from_log``: the same
   attribution rules, conversions as rewards) and evaluated on the newer half: a policy is never evaluated on the
   rows it learned from.
3. **Estimates with intervals and diagnostics.** :func:`offline_eval.evaluate` runs IPS, SNIPS, DR and SNDR on
   every candidate (and on the logging policy itself, whose value is the logged mean); the table keeps each
   policy's recommended estimate with its 95 % interval, the lift over the logging policy and the importance-weight
   diagnostics (effective sample size, largest weight, warnings).
4. **Go / no-go.** The candidate with the highest lower confidence bound is compared with the logging policy by
   :func:`offline_eval.compare` (doubly robust, paired per row, so the shared noise cancels). GO only if the
   whole 95 % interval of the difference is above zero, NO-GO if it is below zero, NEED MORE DATA otherwise.
5. In the simulation the truth is known: the table also shows each policy's exact expected revenue per offer on the
   evaluation users (``true_value``), so you can see the intervals at work.

Run ``python examples/ope_on_logs.py`` (20,000 logged offers, well under a minute) or ``--small`` (5,000).
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import bandit
from bandit.attribution import join_outcomes
from bandit.decision_log import read_decision_log
from bandit.simulation import Episode, UpsellWorld, WorldConfig
from bandit.simulation.config import MAX_SEED, CatalogConfig
from bandit.simulation.runner import run_policy, write_decision_logs
from offline_eval import DR, IPS, SNDR, SNIPS, Estimate, LoggedData, compare, evaluate

LOGGING = "logging policy"
#: Fewest decisions with a final outcome the example fits (older half) and evaluates (newer half) on.
MIN_FINAL = 200
SHOWN = ["policy", "estimator", "value", "ci_low", "ci_high", "lift", "lift_ci_low", "lift_ci_high", "ess",
         "max_weight"]
_MONEY = "{:.3f}".format
#: How each printed column is formatted (revenue per offer to 3 decimals).
FORMATS = {c: _MONEY for c in ["value", "ci_low", "ci_high", "lift", "lift_ci_low", "lift_ci_high", "true_value"]}
FORMATS.update(ess="{:,.0f}".format, max_weight="{:.1f}".format)


@dataclass
class OpeResult:
    """What :func:`main` estimated and decided (returned for tests and notebooks)."""

    table: pd.DataFrame
    recommended: pd.DataFrame
    best: str
    comparison: Estimate
    decision: str
    data: LoggedData
    candidates: dict[str, Any]
    n_train: int
    log_dir: Path


def generate_log(out: Path, n: int, seed: int) -> tuple[Path, Episode]:
    """Log ``n`` offers of the production stand-in in the simulated world; returns the log directory and episode."""
    world = UpsellWorld(WorldConfig(), CatalogConfig().build(with_new_plan=False), seed=seed)
    episode = world.episode(n)
    production = bandit.LinUCB(world.arms(include_new=False), n_features=world.featurizer.n_features, alpha=0.5,
                               exploration_floor=0.3, seed=seed)
    run = run_policy(episode, production, name="production", batch_size=500)
    root = write_decision_logs({"production": run}, episode, out / "logs")
    return root / "production" / "decisions", episode


def candidates_for(arm_names: Sequence[str], n_features: int, seed: int) -> dict[str, Any]:
    """Fresh candidate policies over the log's arms (values = monthly prices from the catalog)."""
    catalog = {a.name: a for a in CatalogConfig().build().arms()}
    unknown = [a for a in arm_names if a not in catalog]
    if unknown:
        raise ValueError(f"the log has arms {unknown} that the catalog does not price; known: {sorted(catalog)}")
    arms = [catalog[a] for a in arm_names]
    return {
        "linucb": bandit.LinUCB(arms, n_features=n_features, alpha=0.5, seed=seed),
        "linear_ts": bandit.LinearTS(arms, n_features=n_features, seed=seed),
        "logistic_ts": bandit.LogisticTS(arms, n_features=n_features, seed=seed),
        "epsilon_greedy": bandit.EpsilonGreedy(arms, n_features=n_features, epsilon=0.05, seed=seed),
        "beta_ts": bandit.BetaTS(arms, seed=seed),
    }


def go_no_go(diff: Estimate, best: str) -> tuple[str, str]:
    """The decision and a one-line reason: GO when the whole interval of V(best) - V(logging) is above 0, NO-GO when
    it is below 0, NEED MORE DATA when it contains 0 (the words of :func:`offline_eval.report.rollout_report`)."""
    ci = f"{diff.value:+.3f} revenue/offer, {diff.level:.0%} CI [{diff.ci_low:+.3f}, {diff.ci_high:+.3f}]"
    if diff.ci_low > 0:
        return "GO", f"GO: roll out {best}: it beats the logging policy by {ci}"
    if diff.ci_high < 0:
        return "NO-GO", f"NO-GO: {best} is worse than the logging policy ({ci})"
    return "NEED MORE DATA", f"NEED MORE DATA: {best} is not distinguishable from the logging policy ({ci})"


def main(argv: Sequence[str] | None = None) -> OpeResult:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="offers to log when generating (default 20,000)")
    parser.add_argument("--small", action="store_true", help="5,000 offers (a quick run)")
    parser.add_argument("--logs", type=Path, default=None, help="read this decision-log directory instead")
    parser.add_argument("--outcomes", type=Path, default=None,
                        help="outcomes table of --logs (default: outcomes.parquet next to the log directory)")
    parser.add_argument("--window", default="1D", help="attribution window (default 1D, the simulator's)")
    parser.add_argument("--out", type=Path, default=None, help="output directory (default: a temporary one)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    n = 5_000 if args.small else args.n
    if not 0 <= args.seed <= MAX_SEED:
        parser.error(f"--seed {args.seed}: expected an integer between 0 and {MAX_SEED}")
    if args.logs is None and n < 1:
        parser.error(f"--n {n}: expected a positive number of offers")
    try:
        window = pd.Timedelta(args.window)
    except ValueError:
        window = pd.NaT
    if window is pd.NaT or window <= pd.Timedelta(0):
        parser.error(f"--window {args.window!r}: expected a positive duration such as 1D or 12h")
    if args.logs is not None and not args.logs.is_dir():
        parser.error(f"--logs {args.logs}: not a decision-log directory")
    if args.logs is None:  # the generated log has events_per_day offers a day; only closed windows count
        open_rows = window / pd.Timedelta(days=1) * WorldConfig().events_per_day
        if n - open_rows < MIN_FINAL:
            parser.error(f"--n {n}: the last {open_rows:,.0f} offers are still inside their {args.window} attribution "
                         f"window; log at least {int(open_rows) + MIN_FINAL:,} offers to fit and evaluate on "
                         f"{MIN_FINAL} final outcomes")
    if args.logs is not None:
        outcomes_path = args.outcomes if args.outcomes is not None else args.logs.parent / "outcomes.parquet"
        if not outcomes_path.is_file():
            parser.error(f"--outcomes {outcomes_path}: no outcomes table there; pass --outcomes FILE (event_id, "
                         "timestamp, reward)")
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out}: exists and is not a directory")
    out = Path(tempfile.mkdtemp(prefix="upsell-ope-")) if args.out is None else args.out
    out.mkdir(parents=True, exist_ok=True)

    episode = None
    if args.logs is None:
        log_dir, episode = generate_log(out, n, args.seed)
        print(f"logged {n:,} offers of LinUCB with a 30% exploration floor to {log_dir}")
        outcomes_path = log_dir.parent / "outcomes.parquet"
    else:
        log_dir = args.logs
    try:
        df = read_decision_log(log_dir)
        outcomes = pd.read_parquet(outcomes_path)
    except (OSError, ValueError) as e:
        parser.error(f"--logs {log_dir} / --outcomes {outcomes_path}: cannot be read: {' '.join(str(e).split())}")
    now = df["timestamp"].max()  # the end of the log: outcomes are complete up to here
    final = df[df["timestamp"] + window < now].sort_values("timestamp", kind="stable").reset_index(drop=True)
    print(f"{len(final):,} of {len(df):,} decisions have a final outcome (attribution window closed at {now})")
    if len(final) < MIN_FINAL:
        flag = f"--logs {log_dir}" if args.logs is not None else f"--n {n}"
        parser.error(f"{flag}: only {len(final):,} decisions have a final outcome (their {args.window} attribution "
                     f"window closed before the last decision); fitting and evaluating needs at least {MIN_FINAL}")
    revenue = outcomes.assign(reward=outcomes["revenue"]) if "revenue" in outcomes else outcomes
    joined = join_outcomes(final, revenue, window, now=now)
    joined.attrs["arms"] = df.attrs["arms"]
    data = LoggedData.from_dataframe(joined, reward="reward", action_names=df.attrs["arms"])
    n_train = data.n // 2
    evaluation = data.subset(slice(n_train, None))

    cands = candidates_for(data.action_names, data.n_features, args.seed)
    train = final.iloc[:n_train]
    for policy in cands.values():
        policy.update_from_log(train, outcomes, window, now=now)
    print(f"fitted {len(cands)} candidates on the older {n_train:,} decisions; evaluating on the newer "
          f"{evaluation.n:,}")

    targets: dict[str, Any] = {**cands, LOGGING: evaluation.probabilities}
    table = evaluate(evaluation, targets, estimators=[IPS(), SNIPS(), DR(), SNDR()])
    rec = table[table["recommended"]].reset_index(drop=True)
    if episode is not None:  # simulation only: the exact value of each policy on the evaluation users
        rows = final["step"].to_numpy()[n_train:]
        truth = {
            name: float((_probabilities(t, evaluation) * episode.expected_value[rows]).sum(axis=1).mean())
            for name, t in targets.items()
        }
        rec["true_value"] = rec["policy"].map(truth)
    pd.options.display.width = 160
    print("\nrecommended estimate per policy (revenue per offer, 95% intervals; lift = vs the logging policy):")
    print(rec[[c for c in [*SHOWN, "true_value"] if c in rec]].to_string(index=False, formatters=FORMATS))
    for _, row in rec[rec["warnings"] != ""].iterrows():
        print(f"  warning for {row['policy']}: {row['warnings']}")

    best = str(rec[rec["policy"] != LOGGING].sort_values("ci_low", ascending=False)["policy"].iloc[0])
    diff = compare(evaluation, cands[best], evaluation.probabilities, estimator=DR())
    decision, line = go_no_go(diff, best)
    print(f"\nbest candidate by lower confidence bound: {best}; paired DR difference vs the logging policy:")
    print(line)
    if episode is not None:
        print(f"(simulation truth of that difference on these users: {truth[best] - truth[LOGGING]:+.3f})")
    table.to_csv(out / "ope.csv", index=False)
    print(f"full table ({len(table)} rows, every estimator and diagnostic): {out / 'ope.csv'}")
    return OpeResult(table, rec, best, diff, decision, evaluation, cands, n_train, Path(log_dir))


def _probabilities(target: Any, data: LoggedData) -> np.ndarray:
    """A target's (n, K) action distribution on the evaluation rows."""
    if isinstance(target, np.ndarray):
        return target
    return target.action_probabilities(data.context, eligible=data.eligible)


if __name__ == "__main__":
    main()
