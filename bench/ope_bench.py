"""Off-policy evaluation benchmark: speed of the estimators and intervals against a naive bootstrap and OBP.

Run ``python bench/ope_bench.py`` (full: about three minutes, most of it simulating the logs, the bootstraps and the
peers, and several GB of memory for the 10^7 x 20 context and two 10^7 x 10 probability matrices) or
``python bench/ope_bench.py --quick`` (small n, a smoke run for CI, a few seconds). Not a test: it prints a table
and writes ``bench/results/ope.json`` (``ope_quick.json`` for ``--quick``, so a smoke run never overwrites the
full results). To include the OBP peer, run it with an interpreter where ``import obp`` works.

World: K=10 actions, d=20 Gaussian features, 0/1 rewards with P(r=1 | x, a) = expit(-2 + x^T w_a); logs from a
softmax logging policy, evaluated for a different softmax target policy given as an (n, K) probability array.

Rows (targets from issue 4):

* IPS + SNIPS with their intervals on 10^7 rows, <= 0.3 s: the target is validated and its weights gathered once
  (``resolve_target``), then ``IPS().estimate`` and ``SNIPS().estimate`` run on it, as ``evaluate`` does; a second
  row times two independent ``estimate(data, probabilities)`` calls, each validating the (n, K) target again;
* DR with 5-fold cross-fitted ridge (``RidgeRewardModel``) on 10^6 rows, <= 0.75 s;
* a 95 % interval on 10^6 rows (``IPS().estimate``: per-row terms, value, normal interval, diagnostics), <= 0.1 s;
* the library's percentile bootstrap (``bootstrap_interval``, Poisson resampling in a compiled kernel) with 10 000
  resamples on the 10^6 IPS terms, timed in full (best of 2 runs), and ``SNIPS(interval="bootstrap")`` (one run).

Peers, timed in the same run on the same arrays:

* a naive percentile bootstrap, written as common tools do it (a Python loop drawing ``n`` indices per resample):
  on the full 10^6 terms a few hundred resamples are timed (best of 2) and the 10 000-resample time is that time
  extrapolated linearly (each resample does the same work; the output says so); on 10^5 terms both bootstraps run
  2 000 resamples in full, side by side.
* Open Bandit Pipeline (``obp``), if ``import obp`` works: its IPW/SNIPW point estimates on 10^7 rows, its DR
  with a 5-fold ``RegressionModel`` (scikit-learn ``Ridge`` on [context, one-hot action]) on 10^6 rows, and its
  bootstrap ``estimate_interval`` (extrapolated like the naive one). obp is not a project dependency; when it does
  not import the rows say why and the comparison is skipped.

Timings are the best of a few repeats (``bench/_common.best_of``); numba compilation (or cache load) is timed
separately first. ``--profile`` prints a cProfile summary of each timed call of this library.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import best_of, print_table, profile, write_results
from scipy.special import expit

from offline_eval import DR, IPS, SNIPS, LoggedData
from offline_eval.estimators import resolve_target
from offline_eval.intervals import bootstrap_interval, normal_interval
from offline_eval.reward_models import RidgeRewardModel

K = 10
D = 20
FULL = {
    "n_ips": 10_000_000,
    "n_dr": 1_000_000,
    "n_ci": 1_000_000,
    "boot_timed": 200,
    "n_boot_small": 100_000,
    "boot_small": 2_000,
    "repeats": 3,
}
QUICK = {
    "n_ips": 200_000,
    "n_dr": 100_000,
    "n_ci": 100_000,
    "boot_timed": 20,
    "n_boot_small": 10_000,
    "boot_small": 2_000,
    "repeats": 2,
}
TARGETS_S = {"ips_snips": 0.3, "dr_ridge": 0.75, "ci": 0.1}
BOOT_FULL = 10_000
CHUNK = 1_000_000


def softmax(scores: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (m, K) scores."""
    z = np.exp(scores - scores.max(axis=1, keepdims=True))
    z /= z.sum(axis=1, keepdims=True)
    return z


def simulate(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Synthetic logs: context (n, D), action (n,), reward (n,), logging / target probabilities (n, K),
    propensity (n,) and the true expected reward of the target policy per row (n,). Generated in chunks."""
    rng = np.random.default_rng(seed)
    theta_log = rng.normal(scale=0.15, size=(D, K))
    theta_tgt = rng.normal(scale=0.15, size=(D, K))
    w = rng.normal(scale=0.2, size=(D, K))
    X = np.empty((n, D))
    action = np.empty(n, dtype=np.int64)
    reward = np.empty(n)
    p_log = np.empty((n, K))
    p_tgt = np.empty((n, K))
    v_tgt = np.empty(n)
    for lo in range(0, n, CHUNK):
        hi = min(n, lo + CHUNK)
        x = rng.standard_normal((hi - lo, D))
        pl = softmax(x @ theta_log)
        pt = softmax(x @ theta_tgt)
        a = (pl.cumsum(axis=1) > rng.random((hi - lo, 1))).argmax(axis=1)
        mu = expit(-2.0 + x @ w)
        X[lo:hi], p_log[lo:hi], p_tgt[lo:hi], action[lo:hi] = x, pl, pt, a
        reward[lo:hi] = rng.random(hi - lo) < mu[np.arange(hi - lo), a]
        v_tgt[lo:hi] = (pt * mu).sum(axis=1)
    propensity = p_log[np.arange(n), action]
    return {
        "context": X,
        "action": action,
        "reward": reward,
        "p_log": p_log,
        "p_tgt": p_tgt,
        "propensity": propensity,
        "v_tgt": v_tgt,
    }


def logged(sim: dict[str, np.ndarray], n: int) -> LoggedData:
    return LoggedData(
        context=sim["context"][:n],
        action=sim["action"][:n],
        reward=sim["reward"][:n],
        propensity=sim["propensity"][:n],
        probabilities=sim["p_log"][:n],
    )


def naive_bootstrap(terms: np.ndarray, n_resamples: int, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap as common tools write it: one Python-level resample of n indices per iteration."""
    rng = np.random.default_rng(seed)
    n = len(terms)
    means = np.empty(n_resamples)
    for b in range(n_resamples):
        means[b] = terms[rng.integers(0, n, n)].mean()
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def status(seconds: float, target: float | None, quick: bool) -> str:
    if target is None:
        return ""
    if quick:
        return "n/a (quick)"
    if seconds <= target:
        return "pass"
    return f"MISS (+{100 * (seconds / target - 1):.0f}%)"


def try_obp() -> tuple[object | None, str]:
    try:
        import obp
        from obp import ope
    except Exception as err:  # any import failure (missing package, broken torch, ...) means: skip the peer
        return None, f"obp not importable ({type(err).__name__}: {err}); OBP comparison skipped"
    return ope, f"obp {obp.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small n smoke run (< 20 s)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile summary of each timed call")
    args = parser.parse_args()
    cfg = QUICK if args.quick else FULL
    n_ips, n_dr, n_ci, boot_timed, repeats = (cfg[k] for k in ("n_ips", "n_dr", "n_ci", "boot_timed", "repeats"))
    n_small, boot_small = cfg["n_boot_small"], cfg["boot_small"]
    rows: list[dict] = []
    notes: list[str] = []

    def row(
        label: str, n: int, seconds: float, target: str | None = None, peer: str | None = None,
        peer_seconds: float | None = None,
    ) -> dict:
        """A table row: our time; with ``target`` (a key of TARGETS_S) its target and status; with ``peer`` the
        peer's time (None: not measured) and the speed-up over it."""
        out: dict = {"row": label, "n": n, "time_s": seconds}
        if target is not None:
            out |= {"target_s": TARGETS_S[target], "status": status(seconds, TARGETS_S[target], args.quick)}
        if peer is not None:
            speedup = None if peer_seconds is None else peer_seconds / seconds
            out |= {"peer": peer, "peer_time_s": peer_seconds, "speedup_vs_peer": speedup}
        return out

    # numba: compile or load the cache before timing anything
    warm = simulate(2_000, seed=1)
    compile_s = best_of(lambda: DR(reward_model=RidgeRewardModel()).estimate(logged(warm, 2_000), warm["p_tgt"]), 1)
    rows.append(row("warm-up (numba compile / cache load, DR on 2k rows)", 2_000, compile_s))

    t0 = time.perf_counter()
    sim = simulate(n_ips)
    gen_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    data_ips = logged(sim, n_ips)
    build_s = time.perf_counter() - t0
    data_dr = logged(sim, n_dr)
    data_ci = logged(sim, n_ci)
    p_tgt = sim["p_tgt"]
    rows.append(row("LoggedData construction + validation (not in targets)", n_ips, build_s))

    # --- the library
    def ips_snips():
        target = resolve_target(data_ips, p_tgt)
        return IPS().estimate(data_ips, target), SNIPS().estimate(data_ips, target)

    def ips_snips_separately():
        return IPS().estimate(data_ips, p_tgt), SNIPS().estimate(data_ips, p_tgt)

    def dr():
        return DR(reward_model=RidgeRewardModel(n_folds=5)).estimate(data_dr, p_tgt[:n_dr])

    def ci():
        return IPS().estimate(data_ci, p_tgt[:n_ci])

    t_ips = best_of(ips_snips, repeats)
    t_ips_sep = best_of(ips_snips_separately, repeats)
    t_dr = best_of(dr, repeats)
    t_ci = best_of(ci, max(repeats, 5))
    t_ridge = best_of(lambda: RidgeRewardModel(n_folds=5).fit_predict(data_dr), repeats)
    est_ips, est_snips = ips_snips()
    est_dr = dr()
    est_ci = ci()

    # --- peers
    idx = np.arange(n_ci)
    ips_terms = p_tgt[idx, sim["action"][:n_ci]] / sim["propensity"][:n_ci] * sim["reward"][:n_ci]
    t_normal = best_of(lambda: normal_interval(ips_terms), max(repeats, 5))
    bootstrap_interval(ips_terms[:1000], n_resamples=100)  # compile / load the numba kernel
    t_libboot = best_of(lambda: bootstrap_interval(ips_terms, n_resamples=BOOT_FULL, seed=0), 2)
    boot_ours = bootstrap_interval(ips_terms, n_resamples=BOOT_FULL, seed=0)
    snips_boot = SNIPS(interval="bootstrap", n_bootstrap=BOOT_FULL)
    t0 = time.perf_counter()
    est_snips_boot = snips_boot.estimate(data_ci, p_tgt[:n_ci])
    t_snips_boot = time.perf_counter() - t0
    t_boot_part = best_of(lambda: naive_bootstrap(ips_terms, boot_timed), 2)
    t_boot = t_boot_part * BOOT_FULL / boot_timed
    notes.append(
        f"naive bootstrap: {boot_timed} resamples timed ({t_boot_part:.3g} s), 10000-resample time extrapolated "
        f"linearly to {t_boot:.3g} s"
    )
    notes.append(f"library bootstrap_interval: all {BOOT_FULL} resamples timed (best of 2 runs, no extrapolation)")
    small_terms = ips_terms[:n_small]
    t_libboot_small = best_of(lambda: bootstrap_interval(small_terms, n_resamples=boot_small, seed=0), repeats)
    t_boot_small = best_of(lambda: naive_bootstrap(small_terms, boot_small), 2)
    naive_lo, naive_hi = naive_bootstrap(ips_terms, 1_000)  # the same interval by resampling rows

    ope, obp_info = try_obp()
    notes.append(obp_info)
    obp_ips = obp_dr = obp_boot = None
    obp_values: dict[str, float] = {}
    if ope is not None:
        from sklearn.linear_model import Ridge

        action, reward, pscore = sim["action"], sim["reward"], sim["propensity"]

        def run_obp_ips_snips():
            dist = p_tgt[:, :, None]
            return (
                ope.InverseProbabilityWeighting().estimate_policy_value(
                    reward=reward, action=action, pscore=pscore, action_dist=dist
                ),
                ope.SelfNormalizedInverseProbabilityWeighting().estimate_policy_value(
                    reward=reward, action=action, pscore=pscore, action_dist=dist
                ),
            )

        def run_obp_dr():
            reg = ope.RegressionModel(n_actions=K, base_model=Ridge(alpha=1.0), fitting_method="normal")
            q = reg.fit_predict(
                context=sim["context"][:n_dr], action=action[:n_dr], reward=reward[:n_dr], n_folds=5, random_state=0
            )
            return ope.DoublyRobust().estimate_policy_value(
                reward=reward[:n_dr],
                action=action[:n_dr],
                pscore=pscore[:n_dr],
                action_dist=p_tgt[:n_dr, :, None],
                estimated_rewards_by_reg_model=q,
            )

        def run_obp_interval():
            return ope.InverseProbabilityWeighting().estimate_interval(
                reward=reward[:n_ci],
                action=action[:n_ci],
                pscore=pscore[:n_ci],
                action_dist=p_tgt[:n_ci, :, None],
                n_bootstrap_samples=boot_timed,
                random_state=0,
            )

        obp_ips = best_of(run_obp_ips_snips, repeats)
        t0 = time.perf_counter()
        obp_dr_value = run_obp_dr()  # one timed run: minutes at full size
        obp_dr = time.perf_counter() - t0
        obp_boot_part = best_of(run_obp_interval, 2)
        obp_boot = obp_boot_part * BOOT_FULL / boot_timed
        obp_values = dict(zip(("obp IPW", "obp SNIPW"), map(float, run_obp_ips_snips()), strict=False))
        obp_values["obp DR"] = float(obp_dr_value)
        notes.append(
            f"obp estimate_interval: {boot_timed} resamples timed ({obp_boot_part:.3g} s), extrapolated to 10000"
        )
        notes.append("obp rows compute point estimates only (obp has no analytic interval); ours include intervals")
        notes.append("obp DR regresses on [context, one-hot action] with one sklearn Ridge; ours: ridge per action")

    naive = "naive bootstrap 10k (extrapolated)"
    rows += [
        row("IPS + SNIPS, value + normal / delta-method CI (target resolved once)", n_ips, t_ips, "ips_snips",
            "obp IPW + SNIPW (point only)" if obp_ips else "obp: skipped", obp_ips),
        row("  the same as two independent estimate(data, probabilities) calls", n_ips, t_ips_sep, "ips_snips"),
        row("DR, 5-fold cross-fitted ridge", n_dr, t_dr, "dr_ridge",
            "obp DR + RegressionModel(Ridge), 5 folds" if obp_dr else "obp: skipped", obp_dr),
        row("  of which RidgeRewardModel.fit_predict", n_dr, t_ridge),
        row("95% CI (IPS().estimate: terms + normal CI)", n_ci, t_ci, "ci", naive, t_boot),
        row("  normal_interval on precomputed per-row terms", n_ci, t_normal),
        row("bootstrap 95% CI of the IPS terms, 10k resamples (bootstrap_interval)", n_ci, t_libboot, None, naive,
            t_boot),
        row(f"bootstrap 95% CI, {boot_small} resamples, both timed in full", n_small, t_libboot_small, None,
            f"naive bootstrap {boot_small}", t_boot_small),
        row("SNIPS(interval='bootstrap', n_bootstrap=10k).estimate", n_ci, t_snips_boot),
    ]
    if obp_boot is not None:
        rows.append(
            row("bootstrap 95% CI of the IPS terms, 10k resamples, peer 2", n_ci, t_libboot, None,
                "obp estimate_interval 10k (extrapolated)", obp_boot)
        )

    print(f"\nOPE benchmark ({'quick' if args.quick else 'full'}): K={K}, d={D}; simulated logs in {gen_s:.1f} s\n")
    print_table(rows, ["row", "n", "time_s", "target_s", "status", "peer", "peer_time_s", "speedup_vs_peer"])

    truth_ips = float(sim["v_tgt"].mean())
    truth_dr = float(sim["v_tgt"][:n_dr].mean())
    def value_row(name: str, n: int, est: object, truth: float) -> dict:
        return {"estimate": name, "n": n, "value": est.value, "ci_low": est.ci_low, "ci_high": est.ci_high,
                "truth": truth}

    values = [
        value_row("IPS", n_ips, est_ips, truth_ips),
        value_row("SNIPS", n_ips, est_snips, truth_ips),
        value_row("DR (ridge)", n_dr, est_dr, truth_dr),
        value_row("IPS (CI row)", n_ci, est_ci, float(sim["v_tgt"][:n_ci].mean())),
        {"estimate": "IPS, bootstrap 10k", "n": n_ci, "value": boot_ours.value, "ci_low": boot_ours.low,
         "ci_high": boot_ours.high, "truth": float(sim["v_tgt"][:n_ci].mean())},
        {"estimate": "IPS, naive bootstrap 1000", "n": n_ci, "value": float(ips_terms.mean()), "ci_low": naive_lo,
         "ci_high": naive_hi, "truth": float(sim["v_tgt"][:n_ci].mean())},
        value_row("SNIPS, bootstrap 10k", n_ci, est_snips_boot, float(sim["v_tgt"][:n_ci].mean())),
    ]
    for name, v in obp_values.items():
        n_peer, truth = (n_dr, truth_dr) if "DR" in name else (n_ips, truth_ips)
        values.append({"estimate": name, "n": n_peer, "value": v, "truth": truth})
    print("\nEstimates (sanity: the interval should usually cover the truth of the simulated world)\n")
    print_table(values, ["estimate", "n", "value", "ci_low", "ci_high", "truth"])
    print()
    for note in notes:
        print("note:", note)

    if args.profile:
        profile(f"IPS + SNIPS on {n_ips} rows", ips_snips, 12, "cumulative")
        profile(f"DR (5-fold ridge) on {n_dr} rows", dr, 12, "cumulative")
        profile(f"IPS interval on {n_ci} rows", ci, 12, "cumulative")

    path = write_results(
        "ope_quick" if args.quick else "ope",
        {
            "config": {"K": K, "d": D, **cfg, "bootstrap_resamples": BOOT_FULL, "quick": args.quick},
            "targets_s": TARGETS_S,
            "rows": rows,
            "estimates": values,
            "notes": notes,
        },
    )
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
