"""Launching a new plan mid-run: how fast does each policy learn to offer it, and what does the learning cost?

Who it is for: the analyst planning a launch, who wants to know before the launch how the offer policy will react.

What it shows
-------------
1. A simulation set up in code with the runner API (:class:`bandit.simulation.SimulationConfig` and
   :func:`bandit.simulation.run_simulation`, no CLI): the default world and catalog, and the catalog's new plan
   ``basic`` going on sale half-way through. At the launch step every policy gets the new arm (``add_arm``) and
   must learn it from scratch while it keeps serving.
2. Two or three policies side by side (default ``LinUCB``, ``LinearTS``, ``EpsilonGreedy``; ``--policy`` takes any
   policy class of :mod:`bandit`) plus the oracle as the reference. Every policy meets the same users with the
   same potential outcomes (common random numbers), so the differences are the policies' doing.
3. Per policy: **time to learn** the new plan (steps after the launch until, within a window, the agreement between
   the policy's and the oracle's new-plan offers -- Cohen's kappa, 0 for offering it to everyone or at random, 1 for
   exactly the oracle's users -- first reaches 60% of the level the policy settles at; n/a for a policy that never
   learns to target it), its share of offers after the launch against the oracle's, revenue, and the **cost**:
   regret -- expected revenue lost against the oracle -- per 1,000 offers before and after the launch.
4. The plots (cumulative regret, arm share over time, new-plan uptake) and tables are written to ``--out``.

Run ``python examples/new_plan_launch.py --out launch`` (40,000 offers, under a minute) or ``--small`` (8,000).
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bandit.simulation import ConfigError, SimulationConfig, SimulationResult, run_simulation
from bandit.simulation.config import MAX_SEED, policy_types

#: The most offers a simulation config accepts (:class:`bandit.simulation.SimulationConfig`'s ``horizon``).
MAX_HORIZON = 10_000_000

DEFAULT_POLICIES = ("LinUCB", "LinearTS", "EpsilonGreedy")
_COUNT = "{:,.0f}".format
#: How each column of the launch table is printed.
FORMATS = {
    "revenue": _COUNT,
    "regret": _COUNT,
    "regret_per_1k_before": "{:,.1f}".format,
    "regret_per_1k_after": "{:,.1f}".format,
    "new_plan_share": "{:.3f}".format,
    "oracle_new_plan_share": "{:.3f}".format,
    "time_to_learn": lambda v: "n/a" if np.isnan(v) else f"{v:,.0f}",
}
#: Parameters of the default policies (as in the simulation's default config and the demo).
PARAMS = {"LinUCB": {"alpha": 0.5}, "EpsilonGreedy": {"epsilon": 0.05}}


@dataclass
class LaunchResult:
    """The simulation, the per-policy launch table and the files written (returned for tests and notebooks)."""

    result: SimulationResult
    table: pd.DataFrame
    files: dict[str, Path]


def launch_table(result: SimulationResult) -> pd.DataFrame:
    """One row per policy: revenue, regret per 1,000 offers before / after the launch, new-plan share, time to learn."""
    launch = result.config.launch_step
    summary = result.summary.set_index("policy")
    rows = []
    for name, run in result.runs.items():
        post = run.steps >= launch
        rows.append(
            {
                "policy": name,
                "revenue": float(run.outcomes.revenue.sum()),
                "regret": float(run.regret.sum()),
                "regret_per_1k_before": float(1e3 * run.regret[~post].mean()),
                "regret_per_1k_after": float(1e3 * run.regret[post].mean()),
                "new_plan_share": float(summary.loc[name, "new_plan_share"]),
                "oracle_new_plan_share": float(summary.loc[name, "oracle_new_plan_share"]),
                "time_to_learn": float(summary.loc[name, "time_to_learn"]),
            }
        )
    return pd.DataFrame(rows)


def main(argv: Sequence[str] | None = None) -> LaunchResult:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40_000, help="offers to simulate; the plan launches half-way")
    parser.add_argument("--small", action="store_true", help="8,000 offers (a quick run)")
    parser.add_argument("--policy", action="append", default=None, metavar="TYPE",
                        help=f"a policy class of bandit, repeatable (default {', '.join(DEFAULT_POLICIES)})")
    parser.add_argument("--out", type=Path, default=None, help="output directory (default: a temporary one)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    n = 8_000 if args.small else args.n
    types = args.policy or list(DEFAULT_POLICIES)
    known = sorted(policy_types())
    if not 2 <= n <= MAX_HORIZON:
        parser.error(f"--n {n}: expected between 2 and {MAX_HORIZON:,} offers (the plan launches half-way)")
    if not 0 <= args.seed <= MAX_SEED:
        parser.error(f"--seed {args.seed}: expected an integer between 0 and {MAX_SEED}")
    for t in types:
        if t == "oracle":
            parser.error("--policy oracle: the oracle always runs, as the reference; name a policy class")
        if t not in known:
            parser.error(f"--policy {t}: unknown policy class; choose among {', '.join(known)}")
    if len(set(types)) < len(types):
        parser.error(f"--policy: each policy once, got {', '.join(types)}")
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out}: exists and is not a directory")

    config = SimulationConfig.model_validate(
        {
            "seed": args.seed,
            "horizon": n,
            "batch_size": 500,
            "launch_step": n // 2,
            "policies": [
                {"name": "oracle", "type": "oracle"},
                *({"name": t, "type": t, "params": PARAMS.get(t, {})} for t in types),
            ],
            "offline_eval": {"enabled": False},
            "output": {"progress": False, "share_window": max(n // 40, 100)},
        }
    )
    try:
        result = run_simulation(config)
    except ConfigError as e:  # e.g. more offers than the machine has memory for
        parser.error(f"--n {n}: {e}")
    out = Path(tempfile.mkdtemp(prefix="upsell-launch-")) if args.out is None else args.out  # after a run that worked
    try:
        files = result.save(out, plots=True, logs=False)
    except OSError as e:
        parser.error(f"--out {out}: cannot write there: {e}")
    table = launch_table(result)

    new_plan = result.episode.arm_names[-1]
    print(f"{n:,} offers, new plan {new_plan!r} launched at step {config.launch_step:,}; "
          f"windows of {config.output.share_window:,} offers")
    print(table.to_string(index=False, formatters=FORMATS, na_rep="n/a"))
    print("regret = expected revenue lost against the oracle; time_to_learn in steps after the launch "
          "(n/a: never learned to target the plan)")
    learners = table[table["policy"] != "oracle"]
    fastest = learners.sort_values(["time_to_learn", "regret_per_1k_after"]).iloc[0]
    if np.isnan(fastest["time_to_learn"]):
        print(f"no policy learned to target {new_plan!r} within the run")
    else:
        print(f"fastest to learn {new_plan!r}: {fastest['policy']} in {fastest['time_to_learn']:,.0f} steps, losing "
              f"{fastest['regret_per_1k_after']:,.1f} per 1,000 offers after the launch")
    plots = sorted(p.name for k, p in files.items() if p.suffix == ".png")
    print(f"plots in {out / 'plots'}: {', '.join(plots)}; report {files['summary_md']}")
    return LaunchResult(result, table, files)


if __name__ == "__main__":
    main()
