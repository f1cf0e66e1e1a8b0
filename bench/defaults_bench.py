"""Defaults bench: every contextual policy at its DEFAULT settings against Vowpal Wabbit, on a suite of worlds.

Run ``python bench/defaults_bench.py`` (full: 5 seeds, every world; ~15 minutes on a shared 2-core machine) or
``--quick`` (2 seeds, a smoke run writing ``defaults_quick.json``); ``--policies EpsilonGreedy`` (say) runs only those
policies against VW and writes ``defaults_subset.json``. Not a test: it prints a markdown table and writes
``bench/results/defaults.json``.

Protocol (issue 15, "Defaults that win without tuning"). Supervised-to-bandit: each row of a classification data
set is a user, each class a plan; the policy chooses a plan and gets reward 1 if it is the row's label, else 0 (it
never sees the label otherwise). Features are standardised (mean 0, sd 1 per column, over the data set). The rows
are shown in 3 shuffled passes; the score is the **progressive mean reward** over all rows of all passes (every
decision counts, exploration included). Each policy chooses and learns one row at a time (``choose`` then
``update``). 5 seeds: a seed shuffles the passes and seeds the policy (the data set is fixed).

Worlds:

* scikit-learn's ``digits`` (K=10, d=64), ``wine`` (3, 13), ``breast_cancer`` (2, 30), ``iris`` (3, 4);
* six ``make_classification`` worlds (fixed ``random_state``; 2,000 rows) varying the number of plans K, the
  dimension d, the class separation (overlap) and the label noise ``flip_y`` (see :data:`SYNTHETIC`);
* ``upsell_sim``: the simulator's default world (six launch-day offers, arm value = monthly price, 0/1 attributed
  conversions with delays and a one-day attribution window, batch refresh every 500 offers, drifting tastes), 20,000
  offers per seed through :func:`bandit.simulation.run_simulation` (world seed = bench seed). Its score is the
  expected revenue per offer of the choices as a share of the oracle's (1 = always the best offer); the hybrid
  policies run there too (they need arm features, which only that world has).

Contenders, all at their default settings (nothing passed but arms, ``n_features`` and the seed): ``LinUCB``,
``LinearTS``, ``LogisticTS``, ``EpsilonGreedy`` (and ``HybridLinUCB``, ``HybridLinearTS`` on the simulator world);
Vowpal Wabbit 9 ``--cb_explore_adf -q UA`` through :class:`bandit.VWPolicy` with SquareCB (VW's defaults otherwise)
and with epsilon-greedy at 0.05. The goal: every contextual policy >= the better VW configuration on every world,
and the best policy >= 0.90 on digits.
"""

from __future__ import annotations

import os

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402
from _common import print_table, write_results  # noqa: E402

import bandit  # noqa: E402

#: Contextual policies compared at their defaults on every world.
POLICIES: dict[str, Callable[..., bandit.Policy]] = {
    "LinUCB": bandit.LinUCB,
    "LinearTS": bandit.LinearTS,
    "LogisticTS": bandit.LogisticTS,
    "EpsilonGreedy": bandit.EpsilonGreedy,
}
#: Hybrid policies: only on worlds whose arms carry features (the simulator's).
HYBRID = {"HybridLinUCB": bandit.HybridLinUCB, "HybridLinearTS": bandit.HybridLinearTS}
#: The two Vowpal Wabbit configurations (``cb_explore_adf -q UA``), by label.
VW = {
    "VW squarecb": {"exploration": "squarecb", "interactions": ("UA",)},
    "VW eps=0.05": {"exploration": "epsilon", "epsilon": 0.05, "interactions": ("UA",)},
}
PASSES = 3
FULL_SEEDS = (0, 1, 2, 3, 4)
QUICK_SEEDS = (0, 1)
SIM_HORIZON = 20_000


@dataclass(frozen=True)
class Synthetic:
    """A ``make_classification`` world: K plans, d features, separation (overlap), label noise."""

    name: str
    n_classes: int
    n_features: int
    n_informative: int
    class_sep: float
    flip_y: float
    n_clusters_per_class: int = 1
    n_samples: int = 2_000
    random_state: int = 0


#: The synthetic suite: easy / hard separation, few / many plans, low / high dimension, clean / noisy labels.
SYNTHETIC = (
    Synthetic("synth_k3_d10_easy", 3, 10, 6, 1.5, 0.01, random_state=11),
    Synthetic("synth_k5_d20_overlap", 5, 20, 10, 0.8, 0.05, random_state=12),
    Synthetic("synth_k10_d40_noisy", 10, 40, 20, 1.0, 0.10, random_state=13),
    Synthetic("synth_k4_d8_hard_noisy", 4, 8, 6, 0.5, 0.20, random_state=14),
    Synthetic("synth_k2_d30_sparse", 2, 30, 5, 1.0, 0.02, random_state=15),
    Synthetic("synth_k8_d16_clusters", 8, 16, 12, 1.2, 0.05, n_clusters_per_class=2, random_state=16),
)
SKLEARN = ("digits", "wine", "breast_cancer", "iris")


def standardise(X: np.ndarray) -> np.ndarray:
    """Columns to mean 0, sd 1 (constant columns to 0)."""
    sd = X.std(axis=0)
    return np.ascontiguousarray((X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0), dtype=np.float64)


def load_world(name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(X standardised (n, d) float64, y (n,) int64 labels 0..K-1)`` of a classification world."""
    from sklearn import datasets

    if name in SKLEARN:
        X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    else:
        s = next(s for s in SYNTHETIC if s.name == name)
        X, y = datasets.make_classification(
            n_samples=s.n_samples, n_features=s.n_features, n_informative=s.n_informative,
            n_redundant=min(2, s.n_features - s.n_informative), n_classes=s.n_classes,
            n_clusters_per_class=s.n_clusters_per_class, class_sep=s.class_sep, flip_y=s.flip_y,
            random_state=s.random_state,
        )
    _, y = np.unique(y, return_inverse=True)
    return standardise(np.asarray(X, dtype=np.float64)), y.astype(np.int64)


def progressive_reward(make: Callable[..., bandit.Policy], X: np.ndarray, y: np.ndarray, seed: int,
                       passes: int = PASSES, **params: object) -> float:
    """Mean reward over ``passes`` shuffled passes, choosing and learning one row at a time."""
    K = int(y.max()) + 1
    policy = make([f"class_{k}" for k in range(K)], n_features=X.shape[1], seed=seed, **params)
    rng = np.random.default_rng(seed)
    hits = 0.0
    for _ in range(passes):
        for i in rng.permutation(len(y)):
            x = X[i]
            d = policy.choose(x)
            r = 1.0 if d.index == y[i] else 0.0
            policy.update(x, d.index, r)
            hits += r
    return hits / (passes * len(y))


def simulator_scores(seed: int, horizon: int = SIM_HORIZON) -> dict[str, float]:
    """Expected revenue per offer as a share of the oracle's, per contender, on the simulator's default world."""
    from bandit.simulation import SimulationConfig, run_simulation

    specs = [{"name": n, "type": n} for n in (*POLICIES, *HYBRID)]
    vw_names = {f"vw_{i}": label for i, label in enumerate(VW)}  # config names allow no spaces
    specs += [{"name": name, "type": "VWPolicy", "params": {**VW[label], "interactions": list(VW[label]["interactions"])}}
              for name, label in vw_names.items()]
    config = SimulationConfig.model_validate({
        "seed": seed, "horizon": horizon, "batch_size": 500, "policies": specs,
        "offline_eval": {"enabled": False}, "output": {"progress": False, "plots": False, "decision_logs": False},
    })
    result = run_simulation(config, progress=False)
    return {vw_names.get(label, label): float(run.expected.sum() / run.oracle.sum()) for label, run in result.runs.items()}


def run_suite(worlds: Sequence[str], seeds: Sequence[int], with_sim: bool,
              policies: Sequence[str] | None = None) -> dict[str, dict[str, list[float]]]:
    """``scores[world][contender]`` = one score per seed; ``policies`` limits the contenders besides VW (default
    all)."""
    chosen = {label: cls for label, cls in POLICIES.items() if policies is None or label in policies}
    scores: dict[str, dict[str, list[float]]] = {}
    t0 = time.perf_counter()
    for world in worlds:
        X, y = load_world(world)
        per: dict[str, list[float]] = {}
        for seed in seeds:
            for label, cls in chosen.items():
                per.setdefault(label, []).append(progressive_reward(cls, X, y, seed))
            for label, params in VW.items():
                per.setdefault(label, []).append(progressive_reward(bandit.VWPolicy, X, y, seed, **params))
        scores[world] = per
        print(f"{world}: done ({time.perf_counter() - t0:.0f} s)", flush=True)
    if with_sim:
        per = {}
        for seed in seeds:
            for label, v in simulator_scores(seed).items():
                if policies is None or label in policies or label in VW:
                    per.setdefault(label, []).append(v)
        scores["upsell_sim"] = per
        print(f"upsell_sim: done ({time.perf_counter() - t0:.0f} s)", flush=True)
    return scores


def verdicts(scores: dict[str, dict[str, list[float]]]) -> tuple[list[str], bool]:
    """Per-world misses (a policy's mean below the better VW mean) and whether the best reaches 0.90 on digits."""
    misses = []
    for world, per in scores.items():
        vw_best = max(float(np.mean(per[v])) for v in VW)
        for label, vals in per.items():
            if label in VW:
                continue
            if float(np.mean(vals)) < vw_best:
                misses.append(f"{label} on {world}: {np.mean(vals):.3f} < VW {vw_best:.3f}")
    digits = scores.get("digits")
    best_digits = max(float(np.mean(v)) for k, v in digits.items() if k not in VW) if digits else float("nan")
    return misses, bool(best_digits >= 0.90)


def markdown(scores: dict[str, dict[str, list[float]]]) -> str:
    """The README table: mean (sd over seeds) per world and contender; the best per world in bold."""
    labels = [*POLICIES, *HYBRID, *VW]
    head = "| world | " + " | ".join(labels) + " |"
    lines = [head, "|---" * (len(labels) + 1) + "|"]
    for world, per in scores.items():
        best = max(float(np.mean(v)) for v in per.values())
        cells = []
        for label in labels:
            if label not in per:
                cells.append("")
                continue
            m, sd = float(np.mean(per[label])), float(np.std(per[label], ddof=1)) if len(per[label]) > 1 else 0.0
            text = f"{m:.3f} ± {sd:.3f}"
            cells.append(f"**{text}**" if m == best else text)
        lines.append(f"| {world} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds (a smoke run; writes defaults_quick.json)")
    parser.add_argument("--worlds", nargs="*", default=None, help="a subset of the worlds (default all)")
    parser.add_argument("--no-sim", action="store_true", help="leave out the simulator world")
    parser.add_argument("--policies", nargs="*", default=None, choices=[*POLICIES, *HYBRID],
                        help="only these policies (VW always runs); the results go to defaults_subset.json")
    args = parser.parse_args(argv)
    seeds = QUICK_SEEDS if args.quick else FULL_SEEDS
    worlds = args.worlds if args.worlds is not None else [*SKLEARN, *(s.name for s in SYNTHETIC)]
    warmup_s = bandit.warmup()
    t0 = time.perf_counter()
    scores = run_suite(worlds, seeds, with_sim=not args.no_sim and args.worlds is None, policies=args.policies)
    total_s = time.perf_counter() - t0
    misses, digits_ok = verdicts(scores)
    table = markdown(scores)
    rows = [
        {"world": w, **{k: float(np.mean(v)) for k, v in per.items()}} for w, per in scores.items()
    ]
    print(f"\nDefaults bench ({'quick' if args.quick else 'full'}): seeds {list(seeds)}, {PASSES} passes; "
          f"warmup {warmup_s:.1f} s, total {total_s:.0f} s\n")
    print_table(rows, ["world", *(c for c in (*POLICIES, *HYBRID, *VW) if any(c in per for per in scores.values()))])
    print("\n" + table + "\n")
    print("every contextual policy >= the better VW configuration on every world: "
          + ("MET" if not misses else f"MISSED ({len(misses)}): " + "; ".join(misses)))
    print(f"best policy >= 0.90 on digits: {'MET' if digits_ok else 'MISSED'}")
    path = write_results(
        "defaults_quick" if args.quick else "defaults_subset" if args.policies is not None else "defaults",
        {
            "config": {
                "seeds": list(seeds), "passes": PASSES, "worlds": list(scores),
                "synthetic": [s.__dict__ for s in SYNTHETIC], "simulator_horizon": SIM_HORIZON,
                "policies": "defaults: " + ", ".join([*POLICIES, *HYBRID]),
                "defaults": {name: _defaults(cls) for name, cls in {**POLICIES, **HYBRID}.items()},
                "vw": {k: {**v, "interactions": list(v["interactions"])} for k, v in VW.items()},
                "score": "progressive mean reward over all rows of all passes (classification worlds); expected "
                         "revenue per offer / oracle's (upsell_sim)",
            },
            "warmup_s": warmup_s,
            "total_s": total_s,
            "scores": scores,
            "means": rows,
            "misses": misses,
            "target_met": not misses,
            "digits_best_at_least_0.90": digits_ok,
            "markdown": table,
        },
    )
    print(f"wrote {path}")


def _defaults(cls: type) -> dict[str, object]:
    import inspect

    return {p.name: p.default for p in inspect.signature(cls).parameters.values()
            if p.default is not inspect.Parameter.empty and p.name != "seed"}


if __name__ == "__main__":
    main()
