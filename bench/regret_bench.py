"""Regret benchmark: every built-in policy and Vowpal Wabbit's SquareCB on the same simulated world.

Run ``python bench/regret_bench.py`` (full: T = 10^5 events on 5 world seeds, a few minutes on a shared 2-core
machine) or ``python bench/regret_bench.py --quick`` (T = 10^4, one seed: a smoke run). Not a test: it prints a
table and writes ``bench/results/regret.json`` and ``bench/results/regret.png`` (cumulative regret curves of the
learning policies, mean over the seeds); ``--quick`` writes ``regret_quick.json`` / ``regret_quick.png`` so a
smoke run never overwrites the full results.

Setting (issue 6): the default simulation world (:class:`bandit.simulation.SimulationConfig` defaults: six
launch-day offers, arm value = monthly price, 0/1 attributed conversions with exponential delays and a one-day
attribution window, drifting tastes, no new-plan launch). Every policy is driven by the simulation runner
(``run_simulation`` for the built-in policies, VW and the oracle; ``run_policy`` on the *same* episode for the
second VW feed), so all meet the same users with the same potential outcomes (common random numbers) and learn
the same way: **batch refresh** -- a policy decides ``batch_size`` = 500 events with its current state, then
learns from every earlier decision whose outcome is known by the end of the batch (a conversion that arrived, or
a window that closed without one). Nobody learns online within a batch.

Objective: expected attributed revenue per offer, ``value_k * P(attributed conversion | x, k)``. The built-in
policies learn 0/1 conversions and weigh them by ``Arm.value`` (the library's objective); :class:`bandit.VWPolicy`
feeds VW the cost ``-value_k * reward / max_value`` (in [-1, 0]): minimising VW's expected cost is maximising the
same value-weighted objective. Regret is exact: ``sum_t max_eligible E[t, k] - E[t, a_t]`` with ``E`` the world's
true expected values (no outcome noise).

Policies (hyper-parameters as in the simulation's defaults and the demo; none tuned on this benchmark):
``LinUCB(alpha=0.5)``, ``LinearTS()``, ``LogisticTS()``, ``BetaTS()`` (no context), ``EpsilonGreedy(epsilon=0.05)``,
``HybridLinUCB(alpha=0.5)`` and ``HybridLinearTS()`` (per-arm models plus one model shared through the catalog's
arm features), ``UniformRandom()``; and ``VWPolicy(exploration="squarecb", interactions=("UA",))``: VW 9
``--cb_explore_adf --squarecb -q UA`` (defaults otherwise: ``cb_type mtr``, gamma scale 10), fed twice:

* ``vw_squarecb``: through the simulation config like every other policy, so its arms carry the catalog's arm
  features: each action line holds the arm's one-hot id and its 7 arm features, crossed with the context by
  ``-q UA`` (per-arm linear models plus shared arm-feature terms: the information the hybrid policies get);
* ``vw_squarecb_arm_ids``: the same spec on the same episode with feature-less arms, so an action line is the
  arm's id only (a linear model per arm, the information the disjoint policies get).

Wall time is each run's time inside the runner (deciding, learning and the runner's bookkeeping); VW's includes
formatting its text input in Python, which is what using VW from Python on this data costs. ``bandit.warmup()``
(numba compile or cache load) is timed separately, first.
"""

from __future__ import annotations

import os

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from _common import RESULTS_DIR, print_table, write_results  # noqa: E402

import bandit  # noqa: E402
from bandit.arms import Arm  # noqa: E402
from bandit.simulation import PolicyRun, SimulationConfig, run_policy, run_simulation  # noqa: E402
from bandit.simulation.config import PolicyConfig  # noqa: E402
from bandit.simulation.plots import plot_cumulative_regret  # noqa: E402
from bandit.simulation.runner import build_policy  # noqa: E402

#: Built-in policies, in the simulation config's format (``type`` = a public class of :mod:`bandit`).
POLICIES: list[dict] = [
    {"name": "linucb", "type": "LinUCB", "params": {"alpha": 0.5}},
    {"name": "linear_ts", "type": "LinearTS"},
    {"name": "logistic_ts", "type": "LogisticTS"},
    {"name": "beta_ts", "type": "BetaTS"},
    {"name": "epsilon_greedy", "type": "EpsilonGreedy", "params": {"epsilon": 0.05}},
    {"name": "hybrid_linucb", "type": "HybridLinUCB", "params": {"alpha": 0.5}},
    {"name": "hybrid_linear_ts", "type": "HybridLinearTS"},
    {"name": "uniform", "type": "UniformRandom"},
]
ORACLE = {"name": "oracle", "type": "oracle"}
#: Vowpal Wabbit SquareCB through the library's VWPolicy (fed the catalog's arms: ids and arm features).
VW: dict = {"name": "vw_squarecb", "type": "VWPolicy", "params": {"exploration": "squarecb", "interactions": ["UA"]}}
#: The same VW policy run with feature-less arms (arm ids only).
VW_IDS_LABEL = "vw_squarecb_arm_ids"
VW_LABELS = (VW["name"], VW_IDS_LABEL)
VW_FEED = {
    VW["name"]: "VWPolicy via the simulation config: shared line 'shared |U j:x_j' (the context features x_j, "
    "zeros left out); one line per arm '|A id<k> f<i>:a_i' (one-hot arm id plus the catalog's 7 arm features, zeros "
    "left out); -q UA; label 0:cost:1 on the chosen arm with cost = -reward * value_k / max_value (SquareCB ignores "
    "the probability); learning examples list every active arm",
    VW_IDS_LABEL: "same VWPolicy spec on the same episode via run_policy, arms without features: '|A id<k>' only",
}
FULL = {"horizon": 100_000, "seeds": (0, 1, 2, 3, 4), "batch_size": 500}
QUICK = {"horizon": 10_000, "seeds": (0,), "batch_size": 500}
#: Left out of the plot (still in the table and the JSON): the oracle is 0, uniform's line would flatten the rest.
NOT_PLOTTED = ("oracle", "uniform")
#: Points per cumulative-regret curve kept in the JSON.
CURVE_POINTS = 200


def ids_only(arms: Sequence[Arm]) -> list[Arm]:
    """``arms`` without their features (name and value kept): VW then sees each arm as its one-hot id only."""
    return [Arm(name=a.name, value=a.value) for a in arms]


def run_seed(seed: int, horizon: int, batch_size: int) -> dict[str, PolicyRun]:
    """World ``seed``: the oracle, the built-ins and VW (catalog arms) through run_simulation, VW (ids only) after.

    The second VW run uses the same episode, the same policy spec and the runner's own ``run_policy`` with the
    same settings as ``run_simulation``; only its arms lack features.
    """
    config = SimulationConfig.model_validate(
        {
            "seed": seed,
            "horizon": horizon,
            "batch_size": batch_size,
            "policies": [ORACLE, *POLICIES, VW],
            "offline_eval": {"enabled": False},
            "output": {"progress": False, "plots": False, "decision_logs": False},
        }
    )
    result = run_simulation(config, progress=False)
    catalog = config.catalog.build(with_new_plan=False)
    arms = ids_only(catalog.arms(include_new=False))
    vw_ids = build_policy(PolicyConfig.model_validate(VW), arms, result.episode.X.shape[1], seed)
    runs = dict(result.runs)
    runs[VW_IDS_LABEL] = run_policy(
        result.episode, vw_ids, name=VW_IDS_LABEL, batch_size=batch_size, reward=config.reward,
        reward_scale=float(catalog.values.max()),
    )
    return runs


def curve_steps(horizon: int) -> np.ndarray:
    """Steps (1-based event counts) at which the cumulative curves are sampled."""
    return np.unique(np.linspace(1, horizon, CURVE_POINTS).round().astype(np.int64))


def summarize(per_seed: dict[int, dict[str, PolicyRun]], horizon: int) -> tuple[list[dict], dict, dict, np.ndarray]:
    """Table rows (means over the seeds), mean cumulative-regret curves, per-seed figures and the curves' steps."""
    seeds = list(per_seed)
    labels = list(per_seed[seeds[0]])
    steps = curve_steps(horizon)
    tail = slice(horizon - horizon // 10, horizon)
    rows, curves, raw = [], {}, {}
    for label in labels:
        runs = [per_seed[s][label] for s in seeds]
        regret = np.array([r.regret.sum() for r in runs])
        revenue = np.array([r.outcomes.revenue.sum() for r in runs])
        expected = np.array([r.expected.sum() for r in runs])
        oracle = np.array([r.oracle.sum() for r in runs])
        seconds = np.array([r.seconds for r in runs])
        tail_regret = np.array([r.regret[tail].mean() for r in runs])
        rows.append(
            {
                "policy": label,
                "type": runs[0].kind,
                "regret": float(regret.mean()),
                "regret_sd": float(regret.std(ddof=1)) if len(seeds) > 1 else float("nan"),
                "regret_pct_oracle": float(100 * (regret / oracle).mean()),
                "tail_regret_per_event": float(tail_regret.mean()),
                "revenue": float(revenue.mean()),
                "expected_revenue": float(expected.mean()),
                "seconds": float(seconds.mean()),
                "us_per_event": float(1e6 * seconds.mean() / horizon),
            }
        )
        curves[label] = np.mean([np.cumsum(r.regret)[steps - 1] for r in runs], axis=0)
        raw[label] = {
            str(s): {"regret": float(g), "revenue": float(v), "seconds": float(t)}
            for s, g, v, t in zip(seeds, regret, revenue, seconds, strict=False)
        }
    return rows, curves, raw, steps


def verdict(rows: list[dict], raw: dict) -> tuple[str, bool]:
    """Target: the best built-in learner has lower mean regret than the better of the two VW feeds."""
    learners = [r for r in rows if r["policy"] not in ("oracle", "uniform", *VW_LABELS)]
    best = min(learners, key=lambda r: r["regret"])
    vw = min((r for r in rows if r["policy"] in VW_LABELS), key=lambda r: r["regret"])
    beats = best["regret"] < vw["regret"]
    seeds = list(raw[best["policy"]])
    wins = sum(raw[best["policy"]][s]["regret"] < raw[vw["policy"]][s]["regret"] for s in seeds)
    text = (
        f"best built-in policy {best['policy']} regret {best['regret']:,.0f} vs best VW feed {vw['policy']} "
        f"{vw['regret']:,.0f} ({vw['regret'] / best['regret']:.2f}x): target {'MET' if beats else 'MISSED'} "
        f"(lower on {wins}/{len(seeds)} seeds)"
    )
    return text, beats


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="T = 10^4 on one seed (a smoke run)")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    horizon, seeds, batch_size = cfg["horizon"], cfg["seeds"], cfg["batch_size"]

    warmup_s = bandit.warmup()
    t0 = time.perf_counter()
    per_seed: dict[int, dict[str, PolicyRun]] = {}
    for seed in seeds:
        per_seed[seed] = run_seed(seed, horizon, batch_size)
        print(f"seed {seed}: done ({time.perf_counter() - t0:.0f} s)", flush=True)
    total_s = time.perf_counter() - t0

    rows, curves, raw, steps = summarize(per_seed, horizon)
    text, beats = verdict(rows, raw)
    columns = [
        "policy", "type", "regret", "regret_sd", "regret_pct_oracle", "tail_regret_per_event", "revenue",
        "expected_revenue", "seconds", "us_per_event",
    ]
    print(
        f"\nRegret benchmark ({'quick' if args.quick else 'full'}): T={horizon:,} events, world seeds {list(seeds)}, "
        f"batch refresh every {batch_size}; means over seeds; bandit.warmup() {warmup_s:.2f} s; total {total_s:.0f} s\n"
    )
    print_table(rows, columns)
    print(f"\n{text}")

    metrics = pd.concat(
        [
            pd.DataFrame({"policy": label, "step": steps, "cum_regret": curve})
            for label, curve in curves.items()
            if label not in NOT_PLOTTED
        ],
        ignore_index=True,
    )
    name = "regret_quick" if args.quick else "regret"
    png = plot_cumulative_regret(metrics, RESULTS_DIR / f"{name}.png")
    path = write_results(
        name,
        {
            "config": {
                "horizon": horizon,
                "seeds": list(seeds),
                "batch_size": batch_size,
                "n_features": int(per_seed[seeds[0]][VW["name"]].policy.n_features),
                "reward": "conversion (0/1 attributed), arm value = monthly price",
                "policies": [*POLICIES, VW, {**VW, "name": VW_IDS_LABEL, "arms": "without features"}],
                "vw_feed": VW_FEED,
                "learning": f"batch refresh every {batch_size} events with delayed outcomes (simulation runner)",
                "quick": args.quick,
            },
            "warmup_s": warmup_s,
            "total_s": total_s,
            "rows": rows,
            "verdict": text,
            "target_met": bool(beats),
            "per_seed": raw,
            "curves": {"step": steps.tolist(), **{k: v.tolist() for k, v in curves.items()}},
        },
    )
    print(f"wrote {path} and {png}")


if __name__ == "__main__":
    main()
