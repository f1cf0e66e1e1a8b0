"""Accuracy and coverage of the off-policy estimators and of ``evaluate``'s recommendation, against known truth.

Run ``python bench/ope_accuracy.py`` (full: 1,000 replications per setting, 15-20 minutes on one core) or
``--quick`` (20 replications, a smoke run). Not a test: prints a table and writes ``bench/results/ope_accuracy.json``
(``ope_accuracy_quick.json`` for ``--quick``). Run the accuracy part under ``nice`` with ``--no-timing``, then the
short timed part alone under the machine's quiet lock with ``--timing-only`` (it updates the ``timing`` entry of
the existing results file).

Settings (each with a deterministic ``greedy`` and a ``softmax`` target, evaluated together by one
``evaluate(data, {...})`` call with the default estimators, as a user would):

* ``upsell4-uniform``: :class:`UpsellOPEWorld` (``tests/offline_eval/ope_world.py``), 4 plans 5.99-19.99,
  near-uniform logging (80 % uniform), n = 5,000;
* ``upsell6-skewed``: 6 plans, skewed softmax logging with a 20 % uniform exploration floor, n = 2,000;
* ``upsell10-skewed``: 10 plans, skewed logging with a 10 % floor, n = 20,000;
* ``simulator``: ``bandit.simulation.world.UpsellWorld()`` (default world, 7 offers with eligibility): a population
  of 400,000 users; each replication samples n = 5,000 of them, logs an offer from an eligibility-restricted
  logging policy (50 % uniform over eligible offers, 50 % softmax of a noisy score) and draws the attributed
  conversion with the world's exact probability; the truth is the population mean of ``sum_k pi(k|x) E[value]``
  from the world's oracle ``expected_value``.

Truth of the synthetic worlds: the population value by a seeded 4,000,000-context sample (relative Monte-Carlo
error about 1e-4). Reported per setting, target and row label: relative RMSE ``sqrt(mean((V - truth)^2)) / truth``,
relative bias, coverage of the nominal 95 % interval (share of replications with ``ci_low <= truth <= ci_high``;
binomial sd 0.007 at 1,000 replications: at 200 it was 0.015, as wide as the distance from 0.95 to the 0.92 bar,
and the RMSE ratios moved by a few percent between seed sets), mean interval width. The labels are the seven
default estimators, the ``DR-DM blend`` row, ``recommended`` (``evaluate``'s recommended row) and ``SLOPE`` (the
SLOPE choice among the seven single estimators, :func:`offline_eval.evaluate.slope_recommendation`, recomputed from
the same table: the recommendation before the blend). For the last three, ``rmse_ratio`` = RMSE over the lowest RMSE
of the seven single estimators in the same run (target <= 1.05; the summary also gives the recommended row's ratio
with the blend counted among the estimators, ``recommended_rmse_ratio_incl_blend``) and which rows they picked;
``worst`` is each one's largest ratio over the settings. A second part times ``evaluate`` (default estimators, two
policies) on 10^6 rows.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
from _common import RESULTS_DIR, print_table, write_results

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "offline_eval"))

from ope_world import UpsellOPEWorld, softmax  # noqa: E402

from offline_eval import DiagnosticWarning, LoggedData, evaluate  # noqa: E402
from offline_eval.evaluate import BLEND_NAME, slope_recommendation  # noqa: E402

#: Labels of the rows that are not single estimators: evaluate's recommended row, and the SLOPE choice among the
#: single estimators (the recommendation before the DR-DM blend), recomputed from the same table.
COMBINED = ("recommended", "SLOPE")

#: evaluate() on 10^6 rows, two policies, default estimators, measured before this work (commit f04570f, same
#: machine, best of 3 while other jobs ran): 18.9 s.
BASELINE_EVALUATE_1E6_S = 18.9


class SimulatorSetting:
    """Logs drawn from the default ``UpsellWorld`` population with known per-user expected values."""

    def __init__(self, population: int = 400_000, seed: int = 0) -> None:
        from bandit.simulation.world import UpsellWorld

        world = UpsellWorld(seed=seed)
        ep = world.episode(population)
        self.X = ep.X.astype(np.float64)
        self.E = ep.eligible
        self.prob = ep.probability * float(ep.attribution_probability or 1.0)
        self.value = ep.net_value
        self.ev = ep.expected_value
        self.names = list(ep.arm_names)
        rng = np.random.default_rng(seed + 1)
        K, d = self.ev.shape[1], self.X.shape[1]
        self.log_w = rng.normal(0.0, 0.5, size=(d, K))
        self.tgt_noise = rng.normal(0.0, 0.3, size=self.ev.shape)  # a fixed per-user perturbation of the oracle
        self.logging = self._masked(0.5 * softmax(self.X @ self.log_w) + 0.5)
        score = np.where(self.E, self.ev + self.tgt_noise * self.ev.std(), -np.inf)
        self.targets = {
            "greedy": np.eye(K)[score.argmax(axis=1)],
            "softmax": self._masked(softmax(np.where(self.E, score / 1.0, -np.inf))),
        }
        self.truth = {k: float((T * self.ev).sum(axis=1).mean()) for k, T in self.targets.items()}

    def _masked(self, P: np.ndarray) -> np.ndarray:
        P = np.where(self.E, P, 0.0)
        return P / P.sum(axis=1, keepdims=True)

    def draw(self, n: int, seed: int) -> tuple[LoggedData, dict[str, np.ndarray]]:
        rng = np.random.default_rng(seed)
        rows = rng.integers(0, len(self.X), n)
        P = self.logging[rows]
        a = (P.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
        idx = np.arange(n)
        reward = np.where(rng.random(n) < self.prob[rows, a], self.value[rows, a], 0.0)
        data = LoggedData(
            self.X[rows], a, reward, P[idx, a], probabilities=P, eligible=self.E[rows], action_names=self.names
        )
        return data, {"greedy": self.targets["greedy"][rows].argmax(axis=1), "softmax": self.targets["softmax"][rows]}


def synthetic(world: UpsellOPEWorld, n: int, seed: int) -> tuple[LoggedData, dict[str, np.ndarray]]:
    data, X = world.draw(n, seed)
    return data, {"greedy": world.target_probs(X, "greedy").argmax(axis=1), "softmax": world.target_probs(X, "softmax")}


def run_setting(name: str, draw, truth: dict[str, float], n: int, reps: int, seed: int) -> tuple[list, list, dict]:
    records: dict[str, dict[str, list]] = {k: {} for k in truth}
    t0 = time.perf_counter()
    for rep in range(reps):
        data, policies = draw(n, seed + rep)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DiagnosticWarning)
            table = evaluate(data, policies)
        for policy, group in table.groupby("policy", sort=False):
            singles = group[group.estimator != BLEND_NAME].to_dict("records")
            slope = slope_recommendation(singles)
            for row in group.to_dict("records"):
                labels = [row["estimator"]] + ["recommended"] * row["recommended"]
                for label in labels:
                    rec = records[policy].setdefault(label, [])
                    rec.append((row["value"], row["ci_low"], row["ci_high"], row["estimator"], row["se"], row["bias"]))
            if slope is not None:
                records[policy].setdefault("SLOPE", []).append(
                    (slope["value"], slope["ci_low"], slope["ci_high"], slope["estimator"], slope["se"], slope["bias"]))
    seconds = time.perf_counter() - t0
    rows, raw = [], {}
    summary = []
    for policy, per in records.items():
        v0 = truth[policy]
        stats = {}
        for label, recs in per.items():
            v = np.array([r[0] for r in recs])
            lo = np.array([r[1] for r in recs])
            hi = np.array([r[2] for r in recs])
            stats[label] = {
                "rel_rmse": float(np.sqrt(np.mean((v - v0) ** 2)) / abs(v0)),
                "rel_bias": float(np.mean(v - v0) / abs(v0)),
                "coverage": float(np.mean((lo <= v0) & (v0 <= hi))),
                "rel_width": float(np.mean(hi - lo) / abs(v0)),
            }
            se = np.array([r[4] for r in recs])
            bias = np.array([r[5] for r in recs])
            raw[f"{policy}/{label}"] = {"truth": v0, "table": np.column_stack([v, lo, hi, se, bias])}
        singles = [k for k in stats if k not in COMBINED and k != BLEND_NAME]
        best = min(stats[k]["rel_rmse"] for k in singles)
        best_all = min(best, stats[BLEND_NAME]["rel_rmse"]) if BLEND_NAME in stats else best
        for label, s in stats.items():
            row = {"setting": name, "n": n, "target": policy, "estimator": label, **s}
            if label in COMBINED or label == BLEND_NAME:
                row["rmse_ratio"] = s["rel_rmse"] / best
            if label in COMBINED:
                picks = Counter(r[3] for r in per[label])
                row["picked"] = ", ".join(f"{k} {c}" for k, c in picks.most_common())
            rows.append(row)
        rec, slope = stats["recommended"], stats["SLOPE"]
        blend = stats.get(BLEND_NAME, {"rel_rmse": float("nan"), "coverage": float("nan")})
        estimators = [k for k in stats if k not in COMBINED]
        summary.append(
            {
                "setting": name,
                "target": policy,
                "best_single": min(singles, key=lambda k: stats[k]["rel_rmse"]),
                "recommended_rmse_ratio": rec["rel_rmse"] / best,
                "recommended_rmse_ratio_incl_blend": rec["rel_rmse"] / best_all,
                "recommended_coverage": rec["coverage"],
                "slope_rmse_ratio": slope["rel_rmse"] / best,
                "slope_coverage": slope["coverage"],
                "blend_rmse_ratio": blend["rel_rmse"] / best,
                "blend_coverage": blend["coverage"],
                "coverage_min": min(stats[k]["coverage"] for k in estimators),
                "coverage_max": max(stats[k]["coverage"] for k in estimators),
                "rmse_ok": rec["rel_rmse"] <= 1.05 * best,
                "coverage_ok": all(0.92 <= stats[k]["coverage"] <= 0.98 for k in [*estimators, "recommended"]),
            }
        )
    print(f"{name}: {reps} replications of n={n} in {seconds:.0f} s", flush=True)
    return rows, summary, raw


def time_evaluate_1e6() -> float:
    world = UpsellOPEWorld(seed=0, n_actions=6, floor=0.5)
    data, X = world.draw(1_000_000, seed=1)
    pol = {"greedy": world.target_probs(X, "greedy").argmax(1), "softmax": world.target_probs(X, "softmax")}
    small, Xs = world.draw(5000, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiagnosticWarning)
        evaluate(small, {"g": world.target_probs(Xs, "greedy").argmax(1)})
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            evaluate(data, pol)
            best = min(best, time.perf_counter() - t0)
    return best


def timing_entry() -> dict:
    """Time :func:`time_evaluate_1e6`, print it against the baseline, return the ``timing`` results entry."""
    t = time_evaluate_1e6()
    print(f"\nevaluate on 10^6 rows (2 policies, default estimators): {t:.1f} s "
          f"(baseline {BASELINE_EVALUATE_1E6_S} s, ratio {t / BASELINE_EVALUATE_1E6_S:.2f})")
    return {"evaluate_1e6_s": t, "baseline_s": BASELINE_EVALUATE_1E6_S, "ratio": t / BASELINE_EVALUATE_1E6_S}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--no-timing", action="store_true")
    parser.add_argument("--timing-only", action="store_true",
                        help="only time evaluate on 10^6 rows and update the timing of the existing results file")
    parser.add_argument("--raw", default=None, help="also save the per-replication estimates to this .npy file")
    args = parser.parse_args()
    if args.timing_only:
        name = "ope_accuracy_quick" if args.quick else "ope_accuracy"
        results = json.loads((RESULTS_DIR / f"{name}.json").read_text())
        results.pop("machine", None)  # write_results records this run's machine facts
        results["timing"] = timing_entry()
        print(f"wrote {write_results(name, results)}")
        return
    reps = args.reps or (20 if args.quick else 1000)
    worlds = {
        "upsell4-uniform": (UpsellOPEWorld(seed=1, n_actions=4, floor=0.8), 5_000),
        "upsell6-skewed": (UpsellOPEWorld(seed=2, n_actions=6, floor=0.2, log_temp=0.5), 2_000),
        "upsell10-skewed": (UpsellOPEWorld(seed=3, n_actions=10, floor=0.1, log_temp=0.5), 20_000),
    }
    rows: list[dict] = []
    summary: list[dict] = []
    raw: dict = {}
    for i, (name, (world, n)) in enumerate(worlds.items()):
        truth = {k: world.truth(k) for k in ("greedy", "softmax")}
        r, s, w = run_setting(name, lambda n, seed, world=world: synthetic(world, n, seed), truth, n, reps,
                              1000 * (i + 1))
        rows += r
        summary += s
        raw[name] = w
    sim = SimulatorSetting()
    r, s, w = run_setting("simulator", sim.draw, sim.truth, 5_000, reps, 9000)
    rows += r
    summary += s
    raw["simulator"] = w
    print()
    print_table(rows, ["setting", "n", "target", "estimator", "rel_rmse", "rel_bias", "coverage", "rel_width",
                       "rmse_ratio", "picked"])
    print()
    print_table(summary, list(summary[0]))
    worst = {k: max(s[k] for s in summary) for k in ("recommended_rmse_ratio", "slope_rmse_ratio", "blend_rmse_ratio")}
    print("worst RMSE ratio over the settings (vs the best single estimator): "
          + ", ".join(f"{k} {v:.3f}" for k, v in worst.items()))
    timing = {} if args.no_timing else timing_entry()
    path = write_results(
        "ope_accuracy_quick" if args.quick else "ope_accuracy",
        {"config": {"reps": reps, "quick": args.quick}, "rows": rows, "summary": summary, "worst": worst,
         "timing": timing},
    )
    if args.raw:
        np.save(args.raw, np.array([raw], dtype=object), allow_pickle=True)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
