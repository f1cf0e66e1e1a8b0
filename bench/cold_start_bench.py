"""Cold-start bench: what launching a new plan costs each policy at its default settings, over five world seeds.

Run ``python bench/cold_start_bench.py`` (5 seeds x 2 launches; a few minutes on a shared 2-core machine) or
``--quick`` (2 seeds, writes ``cold_start_quick.json``). Not a test: it prints a table and writes
``bench/results/cold_start.json``.

Setting (issue 15, "New plans learned cheaply"): the simulator's default world (arm value = monthly price, 0/1
attributed conversions, exponential delays with a one-day attribution window = 2,000 offers, batch refresh every
500 offers), 25,000 offers; the new plan goes on sale at offer 15,000, after the policies have learned the launch-day
catalog from their own decisions. Two launches:

* ``known``: ``duo_saver`` (:func:`bandit.simulation.known_attribute_plan`), two seats at a new price point (13.99):
  every arm feature it has is one the launch-day catalog varies;
* ``novel``: the default new plan ``basic`` (7.99, one seat, basic tier): no launch-day product is basic-tier.

Policies at their defaults (nothing but arms, ``n_features`` and the seed): the twins ``LinUCB`` / ``HybridLinUCB``
and ``LinearTS`` / ``HybridLinearTS``, and ``EpsilonGreedy``. Figures per policy (means ± sd over the seeds):
``launch_window_regret`` -- expected regret over the first 5,000 offers after the launch --, ``pre_launch`` -- over
the 5,000 offers before it --, ``launch_cost`` = their difference, the share of offers the new plan got in the first
day after the launch, and the time to learn it (:func:`bandit.simulation.time_to_learn`). Per hybrid policy the
ratio of its launch-window regret (and of its launch cost) to its disjoint twin's, per seed, then mean ± sd. The
goal: ratio <= 0.6 on the known launch.

``linear_floor`` (:func:`linear_floor`) is the launch-window regret of per-arm least-squares fits of the true
expected values, linear in the context -- the model class of every policy here, hybrids included -- chosen greedily
with no noise, exploration or delay; ``floor_ratio`` is it over the disjoint twin's regret, per seed: the smallest
ratio a linear reward model could roughly reach on this world.

Each launch runs twice: with outcomes learned as production's ``update_from_log`` learns them (``learn_at =
"arrival"``: a conversion when it arrives, a non-conversion when its window closes -- the default, on which the goal
is judged) and with every outcome learned when its window closes (``"window_close"``), which shows what the
early-conversion bias of learning at arrival costs at a launch (:func:`bandit.simulation.run_policy`).
"""

from __future__ import annotations

import os

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402

import numpy as np  # noqa: E402
from _common import print_table, write_results  # noqa: E402

import bandit  # noqa: E402
from bandit.simulation import SimulationConfig, known_attribute_plan, run_simulation  # noqa: E402
from bandit.simulation.catalog import default_new_plan  # noqa: E402
from bandit.simulation.world import Episode  # noqa: E402

TWINS = (("LinUCB", "HybridLinUCB"), ("LinearTS", "HybridLinearTS"))
POLICIES = (*(p for pair in TWINS for p in pair), "EpsilonGreedy")
LAUNCHES = {"known": known_attribute_plan, "novel": default_new_plan}
HORIZON, LAUNCH, WINDOW = 25_000, 15_000, 5_000
LEARN_AT = ("arrival", "window_close")
FULL_SEEDS, QUICK_SEEDS = (0, 1, 2, 3, 4), (0, 1)
GOAL = 0.6
#: Row label of the linear model's floor (:func:`linear_floor`) in the per-seed results.
FLOOR = "linear_floor"


def run_launch(seed: int, launch: str, learn_at: str) -> dict[str, dict[str, float]]:
    """One world seed, one launch, one learning mode: per policy the launch-window figures."""
    config = SimulationConfig.model_validate({
        "seed": seed, "horizon": HORIZON, "batch_size": 500, "launch_step": LAUNCH, "learn_at": learn_at,
        "catalog": {"new_plan": LAUNCHES[launch]().model_dump()},
        "policies": [{"name": p, "type": p} for p in POLICIES],
        "offline_eval": {"enabled": False},
        "output": {"progress": False, "plots": False, "decision_logs": False, "share_window": 500,
                   "launch_window": WINDOW},
    })
    result = run_simulation(config, progress=False)
    floor = linear_floor(result.episode, LAUNCH, WINDOW)
    s = result.summary.set_index("policy")
    day = int(config.world.events_per_day * config.world.delay.attribution_window_days)
    new_index = len(result.episode.arm_names) - 1
    out = {}
    for name, run in result.runs.items():
        first_day = (run.steps >= LAUNCH) & (run.steps < LAUNCH + day)
        after, before = float(s.loc[name, "launch_window_regret"]), float(s.loc[name, "pre_launch_window_regret"])
        out[name] = {
            "launch_window_regret": after, "pre_launch": before, "launch_cost": after - before,
            "first_day_share": float((run.actions[first_day] == new_index).mean()),
            "time_to_learn": float(s.loc[name, "time_to_learn"]),
            "seconds": run.seconds,
        }
    out[FLOOR] = {"launch_window_regret": floor}
    return out


def linear_floor(episode: Episode, launch: int, window: int) -> float:
    """Launch-window regret of the best a reward model linear in the context can do: per arm, the least-squares fit
    (with an intercept) of the arm's true expected value (attributed-conversion probability times value) over every
    offer of the episode where it is eligible (noise-free, no exploration, no delay), then the eligible arm of
    highest fit.

    Every policy compared here models ``E[reward | x, a]`` as linear in ``x`` per arm (the hybrids too: ``z . beta +
    x . theta_a`` is linear in ``x`` for a fixed arm), so this is roughly the floor of their launch-window regret
    on a world whose conversions are logistic in many interactions.
    """
    X = np.hstack([episode.X, np.ones((len(episode), 1))])
    target = episode.expected_value
    fit = np.empty_like(target)
    for k in range(target.shape[1]):
        rows = episode.eligible[:, k]
        coef = np.linalg.lstsq(X[rows], target[rows, k], rcond=None)[0]
        fit[:, k] = X @ coef
    sl = slice(launch, launch + window)
    chosen = np.where(episode.eligible[sl], fit[sl], -np.inf).argmax(axis=1)
    return float((episode.oracle_value(sl) - target[sl][np.arange(window), chosen]).sum())


def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    v = np.array(values, dtype=np.float64)
    finite = v[np.isfinite(v)]
    if finite.size == 0:
        return math.nan, math.nan
    return float(finite.mean()), float(finite.std(ddof=1)) if finite.size > 1 else 0.0


def summarise(per_seed: dict[int, dict[str, dict[str, float]]]) -> tuple[list[dict], list[dict]]:
    """Rows per policy (mean, sd of each figure) and per hybrid/disjoint pair (ratios per seed, mean, sd)."""
    seeds = list(per_seed)
    rows = []
    for name in POLICIES:
        row: dict = {"policy": name}
        for key in ("launch_window_regret", "pre_launch", "launch_cost", "first_day_share", "time_to_learn"):
            vals = [per_seed[s][name][key] for s in seeds]
            row[key], row[f"{key}_sd"] = _mean_sd(vals)
            if key == "time_to_learn":
                row["learned_on"] = f"{sum(math.isfinite(v) for v in vals)}/{len(vals)}"
        rows.append(row)
    floor, floor_sd = _mean_sd([per_seed[s][FLOOR]["launch_window_regret"] for s in seeds])
    rows.append({"policy": FLOOR, "launch_window_regret": floor, "launch_window_regret_sd": floor_sd})
    pairs = []
    for disjoint, hybrid in TWINS:
        raw = [per_seed[s][hybrid]["launch_window_regret"] / per_seed[s][disjoint]["launch_window_regret"]
               for s in seeds]
        cost = [per_seed[s][hybrid]["launch_cost"] / per_seed[s][disjoint]["launch_cost"] for s in seeds]
        best = [per_seed[s][FLOOR]["launch_window_regret"] / per_seed[s][disjoint]["launch_window_regret"]
                for s in seeds]
        mean_raw, sd_raw = _mean_sd(raw)
        mean_cost, sd_cost = _mean_sd(cost)
        pairs.append({
            "pair": f"{hybrid} / {disjoint}", "ratio": mean_raw, "ratio_sd": sd_raw,
            "ratio_per_seed": [round(r, 3) for r in raw], "cost_ratio": mean_cost, "cost_ratio_sd": sd_cost,
            "cost_ratio_per_seed": [round(r, 3) for r in cost], "goal_met": bool(mean_raw <= GOAL),
            "floor_ratio": _mean_sd(best)[0], "floor_ratio_per_seed": [round(r, 3) for r in best],
        })
    return rows, pairs


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds (a smoke run; writes cold_start_quick.json)")
    args = parser.parse_args(argv)
    seeds = QUICK_SEEDS if args.quick else FULL_SEEDS
    warmup_s = bandit.warmup()
    t0 = time.perf_counter()
    results = {}
    for learn_at in LEARN_AT:
        for launch in LAUNCHES:
            per_seed = {}
            for seed in seeds:
                per_seed[seed] = run_launch(seed, launch, learn_at)
                print(f"{launch}/{learn_at} seed {seed}: done ({time.perf_counter() - t0:.0f} s)", flush=True)
            rows, pairs = summarise(per_seed)
            results[f"{launch}/{learn_at}"] = {
                "rows": rows, "pairs": pairs, "per_seed": {str(s): v for s, v in per_seed.items()},
            }
    total_s = time.perf_counter() - t0
    for key, res in results.items():
        launch, learn_at = key.split("/")
        print(f"\n{launch} launch ({'duo_saver' if launch == 'known' else 'basic'}), learning at {learn_at}, "
              f"seeds {list(seeds)}: "
              f"{WINDOW:,} offers after / before the launch at {LAUNCH:,} of {HORIZON:,}; means (sd)")
        print_table(res["rows"], ["policy", "launch_window_regret", "launch_window_regret_sd", "pre_launch",
                                  "launch_cost", "launch_cost_sd", "first_day_share", "time_to_learn",
                                  "learned_on"])
        print()
        print_table(res["pairs"], ["pair", "ratio", "ratio_sd", "ratio_per_seed", "cost_ratio", "cost_ratio_sd",
                                   "cost_ratio_per_seed", "goal_met", "floor_ratio"])
    path = write_results(
        "cold_start_quick" if args.quick else "cold_start",
        {
            "config": {"seeds": list(seeds), "horizon": HORIZON, "launch_step": LAUNCH, "launch_window": WINDOW,
                       "batch_size": 500, "policies": list(POLICIES), "settings": "defaults",
                       "launches": {k: f().model_dump() for k, f in LAUNCHES.items()}, "learn_at": list(LEARN_AT),
                       "goal": GOAL, "goal_judged_on": "known/arrival"},
            "warmup_s": warmup_s, "total_s": total_s, "results": results,
        },
    )
    print(f"\nwrote {path} (total {total_s:.0f} s)")


if __name__ == "__main__":
    main()
