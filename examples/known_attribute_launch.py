"""Launching a plan the catalog already describes: does a model shared through the arm features pay less to learn it?

Who it is for: the analyst planning a launch of a plan made of attributes the catalog already has -- here
``duo_saver``, two seats at 13.99, a new price point between Individual (11.99, one seat) and Duo (16.99, two seats)
(:func:`bandit.simulation.known_attribute_plan`).

What it shows
-------------
1. The default world with the catalog's new plan replaced by ``duo_saver``, launched after the policies have learned
   the launch-day catalog for a while. Every policy runs at its **default settings** and meets the same users with
   the same potential outcomes (common random numbers); conversions arrive with delays and a one-day attribution
   window, and policies learn in batch refreshes, as in production.
2. Two pairs of twins: ``LinUCB`` / ``HybridLinUCB`` and ``LinearTS`` / ``HybridLinearTS``. The disjoint policy gives
   the new plan a fresh model; the hybrid one scores it from its arm features (price, seats, tier, family) before its
   first impression.
3. Per policy: the **launch-window regret** (expected revenue lost against the oracle over the first offers after
   the launch) next to the same number of offers just before it -- their difference is what learning the plan
   cost -- the share of offers the new plan got in the first day after the launch, and the time to learn it.

Run ``python examples/known_attribute_launch.py`` (25,000 offers, launch at 15,000, 5,000-offer windows; about half a
minute) or ``--small`` (8,000 offers, launch at 5,000, 2,000-offer windows). ``--learn-at window_close`` learns every
outcome when its attribution window closes instead of a conversion as soon as it arrives (what production's
``update_from_log`` does), which removes the early-conversion bias of a new plan's first day. ``bench/cold_start_bench.py``
repeats it over five seeds, with the default (novel-tier) launch next to it.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bandit.simulation import SimulationConfig, SimulationResult, known_attribute_plan, run_simulation
from bandit.simulation.config import MAX_SEED
from bandit.simulation.loop import LEARN_AT

#: The twins compared: (disjoint, hybrid).
TWINS = (("LinUCB", "HybridLinUCB"), ("LinearTS", "HybridLinearTS"))
FULL = {"horizon": 25_000, "launch_step": 15_000, "launch_window": 5_000}
SMALL = {"horizon": 8_000, "launch_step": 5_000, "launch_window": 2_000}


@dataclass
class KnownLaunchResult:
    """The simulation and the per-policy launch table (returned for tests and notebooks)."""

    result: SimulationResult
    table: pd.DataFrame


def launch_config(seed: int, horizon: int, launch_step: int, launch_window: int,
                  learn_at: str = "arrival") -> SimulationConfig:
    """The known-attribute launch: default world, ``duo_saver`` launched at ``launch_step``, the twins at defaults."""
    return SimulationConfig.model_validate(
        {
            "seed": seed,
            "learn_at": learn_at,
            "horizon": horizon,
            "batch_size": 500,
            "launch_step": launch_step,
            "catalog": {"new_plan": known_attribute_plan().model_dump()},
            "policies": [{"name": t, "type": t} for pair in TWINS for t in pair],
            "offline_eval": {"enabled": False},
            "output": {"progress": False, "plots": False, "decision_logs": False, "share_window": 500,
                       "launch_window": launch_window},
        }
    )


def launch_table(result: SimulationResult) -> pd.DataFrame:
    """Per policy: launch-window regret after / before the launch, their difference, first-day new-plan share, time
    to learn; and per hybrid policy the ratio of its launch-window regret (and of its extra cost) to its twin's."""
    s = result.summary.set_index("policy")
    cfg = result.config
    launch = cfg.launch_step
    if launch is None:
        raise ValueError("the known-attribute launch table needs a simulation with a launch_step")
    day = int(cfg.world.events_per_day)  # offers in the first day after the launch
    new_index = len(result.episode.arm_names) - 1
    rows = []
    for disjoint, hybrid in TWINS:
        for name in (disjoint, hybrid):
            run = result.runs[name]
            first_day = (run.steps >= launch) & (run.steps < launch + day)
            after, before = float(s.loc[name, "launch_window_regret"]), float(s.loc[name, "pre_launch_window_regret"])
            rows.append({
                "policy": name, "twin": disjoint, "launch_window_regret": after, "pre_launch_window_regret": before,
                "launch_cost": after - before, "first_day_new_plan_share": float(
                    (run.actions[first_day] == new_index).mean()),
                "time_to_learn": float(s.loc[name, "time_to_learn"]),
            })
    table = pd.DataFrame(rows)
    twin = table.set_index("policy")
    table["ratio_to_twin"] = [r.launch_window_regret / twin.loc[r.twin, "launch_window_regret"] for r in
                              table.itertuples()]
    # a ratio of costs means something only when the twin's launch cost something: a zero or negative cost (the
    # twin's regret fell at the launch) would make a cheaper launch look dearer, or a dearer one look free
    table["cost_ratio_to_twin"] = [
        r.launch_cost / twin.loc[r.twin, "launch_cost"] if twin.loc[r.twin, "launch_cost"] > 0 else np.nan
        for r in table.itertuples()
    ]
    return table


def main(argv: Sequence[str] | None = None) -> KnownLaunchResult:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="8,000 offers, launch at 5,000 (a quick run)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--learn-at", choices=LEARN_AT, default="arrival",
                        help="learn a conversion when it arrives (default, as in production) or every outcome when its "
                             "attribution window closes")
    args = parser.parse_args(argv)
    if not 0 <= args.seed <= MAX_SEED:
        parser.error(f"--seed {args.seed}: expected an integer between 0 and {MAX_SEED}")
    sizes = SMALL if args.small else FULL
    config = launch_config(args.seed, **sizes, learn_at=args.learn_at)
    result = run_simulation(config)
    table = launch_table(result)
    print(f"{config.horizon:,} offers, 'duo_saver' (13.99, two seats) launched at step {config.launch_step:,}; "
          f"launch windows of {sizes['launch_window']:,} offers, time to learn in windows of "
          f"{config.output.share_window:,}; every policy at its default settings; outcomes learned at "
          f"{config.learn_at}")
    formats = {c: "{:,.1f}".format for c in ("launch_window_regret", "pre_launch_window_regret", "launch_cost")}
    formats.update({c: "{:.2f}".format for c in ("first_day_new_plan_share", "ratio_to_twin", "cost_ratio_to_twin")})
    formats["time_to_learn"] = "{:,.0f}".format
    print(table.drop(columns="twin").to_string(index=False, formatters=formats, na_rep="n/a"))  # NaN: n/a
    print("launch_cost = launch-window regret minus the regret over as many offers just before the launch; ratios "
          "compare each policy with its disjoint twin (1.00 for the twin itself; cost ratio n/a when the twin's "
          "launch cost nothing)")
    return KnownLaunchResult(result, table)


if __name__ == "__main__":
    main()
