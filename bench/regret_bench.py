"""Regret benchmark: every built-in policy and Vowpal Wabbit's SquareCB on the same simulated world.

Run ``python bench/regret_bench.py`` (full: T = 10^5 events on 5 world seeds, a few minutes on a shared 2-core
machine) or ``python bench/regret_bench.py --quick`` (T = 10^4, one seed: a smoke run). Not a test: it prints a
table and writes ``bench/results/regret.json`` and ``bench/results/regret.png`` (cumulative regret curves of the
learning policies, mean over the seeds); ``--quick`` writes ``regret_quick.json`` / ``regret_quick.png`` so a
smoke run never overwrites the full results.

Setting (issue 6): the default simulation world (:class:`bandit.simulation.SimulationConfig` defaults: six
launch-day offers, arm value = monthly price, 0/1 attributed conversions with exponential delays and a one-day
attribution window, drifting tastes, no new-plan launch). Every policy is driven by the simulation runner
(``run_simulation`` for the built-in policies and the oracle, ``run_policy`` on the *same* episode for VW), so all
meet the same users with the same potential outcomes (common random numbers) and learn the same way: **batch
refresh** -- a policy decides ``batch_size`` = 500 events with its current state, then learns from every earlier
decision whose outcome is known by the end of the batch (a conversion that arrived, or a window that closed
without one). Nobody learns online within a batch.

Objective: expected attributed revenue per offer, ``value_k * P(attributed conversion | x, k)``. The built-in
policies learn 0/1 conversions and weigh them by ``Arm.value`` (the library's objective); VW has no arm values, so
its adapter feeds it the cost ``-value_k * reward / max_value`` (in [-1, 0]): minimising VW's expected cost is
maximising the same value-weighted objective. Regret is exact: ``sum_t max_eligible E[t, k] - E[t, a_t]`` with
``E`` the world's true expected values (no outcome noise).

Policies (hyper-parameters as in the simulation's defaults and the demo; none tuned on this benchmark):
``LinUCB(alpha=0.5)``, ``LinearTS()``, ``LogisticTS()``, ``BetaTS()`` (no context), ``EpsilonGreedy(epsilon=0.05)``,
``UniformRandom()``; VW 9 ``--cb_explore_adf --squarecb -q UA`` (defaults otherwise: ``cb_type mtr``, gamma scale
10) through :class:`VWSquareCB`, a thin adapter in this file (not in the library) exposing the
``choose_batch`` / ``update_batch`` interface the runner drives. Wall time is each run's time inside the runner
(deciding, learning and the runner's bookkeeping); VW's includes formatting its text input in Python, which is
what using VW from Python on this data costs. ``bandit.warmup()`` (numba compile or cache load) is timed
separately, first.
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
import vowpalwabbit  # noqa: E402
from _common import RESULTS_DIR, print_table, write_results  # noqa: E402

import bandit  # noqa: E402
from bandit.arms import Arm  # noqa: E402
from bandit.decision import BatchDecision  # noqa: E402
from bandit.simulation import PolicyRun, SimulationConfig, run_policy, run_simulation  # noqa: E402
from bandit.simulation.plots import plot_cumulative_regret  # noqa: E402

#: Built-in policies, in the simulation config's format (``type`` = a public class of :mod:`bandit`).
POLICIES: list[dict] = [
    {"name": "linucb", "type": "LinUCB", "params": {"alpha": 0.5}},
    {"name": "linear_ts", "type": "LinearTS"},
    {"name": "logistic_ts", "type": "LogisticTS"},
    {"name": "beta_ts", "type": "BetaTS"},
    {"name": "epsilon_greedy", "type": "EpsilonGreedy", "params": {"epsilon": 0.05}},
    {"name": "uniform", "type": "UniformRandom"},
]
ORACLE = {"name": "oracle", "type": "oracle"}
VW_ARGS = "--cb_explore_adf --squarecb -q UA --quiet"
VW_LABEL = "vw_squarecb"
FULL = {"horizon": 100_000, "seeds": (0, 1, 2, 3, 4), "batch_size": 500}
QUICK = {"horizon": 10_000, "seeds": (0,), "batch_size": 500}
#: Left out of the plot (still in the table and the JSON): the oracle is 0, uniform's line would flatten the rest.
NOT_PLOTTED = ("oracle", "uniform")
#: Points per cumulative-regret curve kept in the JSON.
CURVE_POINTS = 200


class VWSquareCB:
    """Vowpal Wabbit's ``--cb_explore_adf --squarecb`` behind the ``choose_batch`` / ``update_batch`` interface.

    Each decision is one ADF example: a shared line with the context in namespace ``U`` (feature ``j`` named
    ``j``, zeros skipped) and one line per *eligible* arm with its id in namespace ``A``; ``-q UA`` crosses them, so
    VW fits a linear model per arm (as the disjoint linear policies do). VW returns a pmf over the eligible arms;
    the arm is drawn from it with this adapter's seeded generator and the pmf is reported as the decision's exact
    probabilities. ``update_batch`` gets (context, arm, reward) rows like any policy; the adapter looks up the
    decision it made for that context (its eligible arms, its shared line and the probability of the arm) and
    teaches VW the label ``0:cost:probability`` with ``cost = -reward * value_arm / max_value``. It only learns from
    its own decisions: an update for a context it never decided raises ``KeyError``.

    Parameters
    ----------
    arms : sequence of Arm
        The world's arms (their ``value`` weights the cost).
    args : str
        VW command line.
    seed : int
        Seeds VW (``--random_seed``) and the arm draws.
    """

    def __init__(self, arms: Sequence[Arm], args: str = VW_ARGS, seed: int = 0) -> None:
        self.arm_names = [a.name for a in arms]
        self.n_arms = len(self.arm_names)
        values = np.array([a.value for a in arms], dtype=np.float64)
        self._cost_per_reward = -values / values.max()
        self._actions = [f"|A a{k}" for k in range(self.n_arms)]
        self._ws = vowpalwabbit.Workspace(f"{args} --random_seed {seed}")
        self._rng = np.random.default_rng(seed)
        # context bytes -> decisions awaiting their outcome: (arm, eligible arms, shared line, probability)
        self._pending: dict[bytes, list[tuple[int, np.ndarray, str, float]]] = {}
        self._n_updates = 0

    @staticmethod
    def _shared(x: np.ndarray) -> str:
        nz = np.flatnonzero(x)
        return "shared |U " + " ".join(f"{j}:{v:.9g}" for j, v in zip(nz.tolist(), x[nz].tolist()))

    def choose_batch(self, X: np.ndarray, eligible: np.ndarray | None = None) -> BatchDecision:
        n, K = X.shape[0], self.n_arms
        mask = np.ones((n, K), dtype=np.bool_) if eligible is None else np.asarray(eligible, dtype=np.bool_)
        idx = np.empty(n, dtype=np.int64)
        probs = np.zeros((n, K))
        u = self._rng.random(n)
        for i in range(n):
            elig = np.flatnonzero(mask[i])
            shared = self._shared(X[i])
            pmf = np.asarray(self._ws.predict(shared + "\n" + "\n".join(self._actions[k] for k in elig)))
            pmf = pmf / pmf.sum()
            j = min(int(np.searchsorted(np.cumsum(pmf), u[i], side="right")), elig.size - 1)
            k = int(elig[j])
            idx[i] = k
            probs[i, elig] = pmf
            self._pending.setdefault(X[i].tobytes(), []).append((k, elig, shared, float(pmf[j])))
        version = f"vw-{self._n_updates}"
        return BatchDecision(
            indices=idx,
            arms=[self.arm_names[k] for k in idx],
            propensities=probs[np.arange(n), idx],
            probabilities=probs,
            scores=np.zeros((n, K)),
            event_ids=[None] * n,
            policy_version=version,
        )

    def update_batch(self, X: np.ndarray, arms: np.ndarray, rewards: np.ndarray) -> None:
        for x, k, r in zip(X, np.asarray(arms).tolist(), np.asarray(rewards, dtype=np.float64).tolist()):
            key = x.tobytes()
            records = self._pending[key]
            pos = next(i for i, rec in enumerate(records) if rec[0] == k)
            _, elig, shared, p = records.pop(pos)
            if not records:
                del self._pending[key]
            cost = r * self._cost_per_reward[k]
            lines = [f"0:{cost:.9g}:{p:.9g} {self._actions[a]}" if a == k else self._actions[a] for a in elig.tolist()]
            self._ws.learn(shared + "\n" + "\n".join(lines))
            self._n_updates += 1

    @property
    def n_pending(self) -> int:
        """Decisions whose outcome has not been learned yet."""
        return sum(len(v) for v in self._pending.values())


def run_seed(seed: int, horizon: int, batch_size: int) -> dict[str, PolicyRun]:
    """All policies on world ``seed``: the built-ins and the oracle through run_simulation, VW on the same episode."""
    config = SimulationConfig.model_validate(
        {
            "seed": seed,
            "horizon": horizon,
            "batch_size": batch_size,
            "policies": [ORACLE, *POLICIES],
            "offline_eval": {"enabled": False},
            "output": {"progress": False, "plots": False, "decision_logs": False},
        }
    )
    result = run_simulation(config, progress=False)
    episode = result.episode
    arms = config.catalog.build(with_new_plan=False).arms(include_new=False)
    vw = VWSquareCB(arms, seed=seed)
    runs = dict(result.runs)
    runs[VW_LABEL] = run_policy(episode, vw, name=VW_LABEL, batch_size=batch_size, reward=config.reward)
    return runs


def curve_steps(horizon: int) -> np.ndarray:
    """Steps (1-based event counts) at which the cumulative curves are sampled."""
    return np.unique(np.linspace(1, horizon, CURVE_POINTS).round().astype(np.int64))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="T = 10^4 on one seed (a smoke run)")
    args = parser.parse_args()
    cfg = QUICK if args.quick else FULL
    horizon, seeds, batch_size = cfg["horizon"], cfg["seeds"], cfg["batch_size"]

    warmup_s = bandit.warmup()
    t0 = time.perf_counter()
    per_seed: dict[int, dict[str, PolicyRun]] = {}
    for seed in seeds:
        per_seed[seed] = run_seed(seed, horizon, batch_size)
        print(f"seed {seed}: done ({time.perf_counter() - t0:.0f} s)", flush=True)
    total_s = time.perf_counter() - t0

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
            for s, g, v, t in zip(seeds, regret, revenue, seconds)
        }

    learners = [r for r in rows if r["policy"] not in ("oracle", "uniform", VW_LABEL)]
    best = min(learners, key=lambda r: r["regret"])
    vw_row = next(r for r in rows if r["policy"] == VW_LABEL)
    beats = best["regret"] < vw_row["regret"]
    per_seed_wins = sum(raw[best["policy"]][str(s)]["regret"] < raw[VW_LABEL][str(s)]["regret"] for s in seeds)
    verdict = (
        f"best built-in policy {best['policy']} regret {best['regret']:,.0f} vs VW squarecb {vw_row['regret']:,.0f} "
        f"({vw_row['regret'] / best['regret']:.2f}x): target {'MET' if beats else 'MISSED'} "
        f"(lower on {per_seed_wins}/{len(seeds)} seeds)"
    )

    columns = [
        "policy", "type", "regret", "regret_sd", "regret_pct_oracle", "tail_regret_per_event", "revenue",
        "expected_revenue", "seconds", "us_per_event",
    ]
    print(
        f"\nRegret benchmark ({'quick' if args.quick else 'full'}): T={horizon:,} events, world seeds {list(seeds)}, "
        f"batch refresh every {batch_size}; means over seeds; bandit.warmup() {warmup_s:.2f} s; total {total_s:.0f} s\n"
    )
    print_table(rows, columns)
    print(f"\n{verdict}")

    metrics = pd.concat(
        [
            pd.DataFrame({"policy": label, "step": steps, "cum_regret": curves[label]})
            for label in labels
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
                "reward": "conversion (0/1 attributed), arm value = monthly price",
                "policies": POLICIES,
                "vw_args": VW_ARGS,
                "vw_feed": "shared |U j:x_j (nonzero features), one |A a<k> line per eligible arm; label "
                "0:cost:probability on the chosen arm, cost = -reward * value_k / max_value",
                "learning": f"batch refresh every {batch_size} events with delayed outcomes (simulation runner)",
                "quick": args.quick,
            },
            "warmup_s": warmup_s,
            "total_s": total_s,
            "rows": rows,
            "verdict": verdict,
            "target_met": bool(beats),
            "per_seed": raw,
            "curves": {"step": steps.tolist(), **{k: v.tolist() for k, v in curves.items()}},
        },
    )
    print(f"wrote {path} and {png}")


if __name__ == "__main__":
    main()
