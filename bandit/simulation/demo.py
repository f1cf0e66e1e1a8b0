"""The end-to-end demo: log, fit on earlier logs, evaluate offline on later ones, pick, roll out, launch a plan."""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bandit.arms import Arm
from bandit.decision_log import read_decision_log
from bandit.simulation.catalog import Catalog
from bandit.simulation.config import LOGGING_RUN, PolicyConfig, SimulationConfig
from bandit.simulation.loop import Progress, build_policy, outcomes_table, run_policy
from bandit.simulation.metrics import logged_frame, offline_evaluate, target_probabilities
from bandit.simulation.report import SimulationResult, _collect, file_links, markdown_table
from bandit.simulation.world import Episode, UpsellWorld
from offline_eval import LoggedData
from offline_eval.diagnostics import DiagnosticWarning
from offline_eval.report import DECISIONS, Guardrail, RolloutReport, rollout_report
from offline_eval.splits import chronological_split

__all__ = ["DemoResult", "build_demo", "decision_lines", "metric_ranges", "rollout_line", "run_demo"]

GO, NO_GO, MORE = DECISIONS

#: The rollout decision's smallest lift of revenue per offer worth shipping (currency per offer).
_MIN_EFFECT = 0.10
#: The rollout decision's guardrails: name -> (metric column of the logs, largest acceptable rise per offer). Churn:
#: half a percentage point more cancellations; cannibalisation: 0.50 more of existing monthly subscriptions ended
#: per offer (an upgrade ends the plan it replaces, so some rise comes with any upsell).
_GUARDRAILS = {"churn": ("cancelled", 0.005), "cannibalisation": ("cannibalised", 0.50)}


def metric_ranges(catalog: Catalog, long_term_weight: float = 0.0) -> dict[str, tuple[float, float]]:
    """The a-priori range of one decision's value of each logged metric (:data:`bandit.simulation.metrics.METRICS`),
    from the catalog alone: what the rollout report's ``reward_range`` and ``Guardrail(value_range=...)`` state.

    A decision has at most one attributed conversion, to the offered product ``k``, whose net value is ``value_k -
    long_term_weight * lost_k`` (:mod:`bandit.simulation.world`). A user holds one plan at most (``current_plan``)
    and any add-ons (:meth:`Catalog.holdings`), so ``lost_k``, the value of the held products ``k`` replaces, is at
    most ``L_k`` = the dearest plan ``k`` replaces plus every add-on it replaces. Hence ``revenue`` lies in
    ``[min(0, min_k (value_k - long_term_weight * L_k)), max_k value_k]`` -- up to the top price --,
    ``cannibalised`` in ``[0, max_k L_k]``, and ``converted`` and ``cancelled`` (0/1 flags) in ``[0, 1]``.
    ``cannibalised`` is left out when no product replaces another (it is then 0 on every decision).

    Examples
    --------
    >>> from bandit.simulation.catalog import default_catalog
    >>> metric_ranges(default_catalog())
    {'revenue': (0.0, 19.99), 'converted': (0.0, 1.0), 'cancelled': (0.0, 1.0), 'cannibalised': (0.0, 16.99)}
    >>> metric_ranges(default_catalog(), long_term_weight=1.0)["revenue"]  # a downgrade to Student loses 6.00
    (-6.0, 19.99)
    """
    values = catalog.values
    is_plan = np.array([p.kind == "plan" for p in catalog.products])
    ended = catalog.replacement_matrix() * values[None, :]  # value of each product a conversion to k ends
    lost = np.where(is_plan[None, :], ended, 0.0).max(axis=1) + np.where(is_plan[None, :], 0.0, ended).sum(axis=1)
    out = {"revenue": (min(0.0, float((values - long_term_weight * lost).min())), float(values.max())),
           "converted": (0.0, 1.0), "cancelled": (0.0, 1.0)}
    if lost.max() > 0:
        out["cannibalised"] = (0.0, float(lost.max()))
    return out


@dataclass(frozen=True)
class _DemoSizes:
    n_log: int
    rollout: int
    launch_after: int
    batch_size: int
    share_window: int


_DEMO_FULL = _DemoSizes(n_log=20_000, rollout=60_000, launch_after=20_000, batch_size=500, share_window=2_000)


_DEMO_QUICK = _DemoSizes(n_log=4_000, rollout=6_000, launch_after=2_000, batch_size=250, share_window=500)


#: The demo judges a policy's first guess of the new plan's conversion on the users of this many offers after the
#: launch (those eligible for it).
_COLD_START_EVENTS = 10_000


def _rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


def _demo_candidates(arms: list[Arm], d: int, seed: int) -> dict[str, Any]:
    """The demo's candidate policies: disjoint (one model per plan) and hybrid (shared through the arm features).

    The hybrid policies' settings were tuned on the full demo's launch stage with world seeds 1, 2 and 3 (the demo
    reports seed 0), l2 = 1 for every policy then, comparing post-launch regret per event and, for the new plan, the
    error of the predicted conversion before its first impression:

    * HybridLinUCB alpha in {0.25, 0.5, 1}: 1 lost 5-10% against 0.5; 0.25 gained about 2% (0.139 vs 0.142, 0.145
      vs 0.148 post-launch regret per event), but LinUCB gained more from the same change (0.136 vs 0.141, 0.141 vs
      0.148), so the gain is the smaller bonus, not the shared model. alpha = 0.5, as for ``linucb``, so that the
      table compares the models.
    * arm_l2 in {1, 10, 100}: post-launch regret within 3% and in no consistent order across seeds (HybridLinUCB
      0.142 / 0.141 / 0.142, 0.148 / 0.148 / 0.148, 0.139 / - / 0.135; HybridLinearTS 0.136 / 0.136 / 0.135,
      0.139 / 0.141 / 0.140, 0.134 / - / 0.131), but the new plan's pre-impression RMSE grew with it (0.045, 0.070,
      0.083 on seed 1 after 40,000 uniform-random offers; a fresh disjoint arm, which predicts 0: 0.058): the
      features over-rate the basic tier (its baseline appeal is below what its price and seats suggest), and a
      large arm_l2 leans on them harder. arm_l2 = 1 was then kept for both.

    Since then HybridLinUCB's default prior became ``l2 = arm_l2 = P / 4`` (the disjoint ``D / 4`` scaled to the
    joint model; ``bench/cold_start_bench.py``: novel-tier launch-window regret 2,616 -> 1,636 over 5 seeds), and
    the demo uses it; HybridLinearTS keeps ``l2 = arm_l2 = 1``, its default.
    """
    import bandit

    return {
        "linucb": bandit.LinUCB(arms, n_features=d, alpha=0.5, seed=seed),
        "linear_ts": bandit.LinearTS(arms, n_features=d, seed=seed),
        "epsilon_greedy": bandit.EpsilonGreedy(arms, n_features=d, epsilon=0.05, seed=seed),
        "hybrid_linucb": bandit.HybridLinUCB(arms, n_features=d, alpha=0.5, seed=seed),
        "hybrid_linear_ts": bandit.HybridLinearTS(arms, n_features=d, seed=seed),
    }


def _rollout_decision(
    frame: pd.DataFrame, cut: pd.Timestamp, cands: Mapping[str, Any], episode: Episode, test_steps: np.ndarray,
    ranges: Mapping[str, tuple[float, float]],
) -> tuple[RolloutReport, pd.DataFrame]:
    """The rollout report on the later logged decisions, and what the simulator's truth says about each candidate.

    ``ranges`` (:func:`metric_ranges`) states each metric's a-priori range: the revenue's up to the top price, the
    guardrails' (0/1 cancellations, cannibalised value up to what a conversion can end), so the small-sample bound
    may decide and the intervals are clipped to what the metrics can be.

    ``frame`` holds the logged decisions with a final outcome and their metric columns
    (:func:`~bandit.simulation.metrics.logged_frame`); the report splits it at ``cut`` with
    :func:`offline_eval.splits.chronological_split` (the split the candidates were fitted by) and evaluates the
    later part. The candidates enter as their action distributions over the world's arms on the evaluated rows
    (the logs list the new plan, which the launch-day policies do not know yet).

    Returns the report and a table indexed by candidate: the report's ``verdict``, revenue estimate ``value`` /
    ``ci_low`` / ``ci_high`` and ``lift`` / ``lift_ci_low`` / ``lift_ci_high`` over the logging policy; the exact
    ``true_value`` and ``true_lift`` on the same users, ``true_<guardrail>`` (exact change of each guardrail
    metric), ``worth_it`` (the true lift beats the minimum effect and no guardrail truly moves past its margin),
    ``right`` (GO and worth it, or NO-GO and not; None while undecided) and ``covered`` (the true value lies in
    the report's interval).
    """
    test = frame["step"].isin(test_steps).to_numpy()
    steps = frame.loc[test, "step"].to_numpy(dtype=np.int64)
    X, eligible = episode.X[steps], episode.eligible[steps]
    targets = {label: target_probabilities(p, X, eligible, episode, steps) for label, p in cands.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiagnosticWarning)  # the report shows the diagnostics itself
        report = rollout_report(
            frame, targets, metric="revenue",
            guardrails={name: Guardrail(col, margin, value_range=ranges.get(col))
                        for name, (col, margin) in _GUARDRAILS.items()},
            reward_range=ranges["revenue"], min_effect=_MIN_EFFECT, split_at=cut, conversion="converted",
            frame_options={"action_names": episode.arm_names},
        )
    logging = np.stack(frame.loc[test, "probabilities"].to_numpy())
    truths = {"revenue": episode.expected_value[steps], "churn": episode.expected_cancellation[steps],
              "cannibalisation": episode.expected_cannibalisation[steps]}
    rows = []
    table = report.table
    for label, target in targets.items():
        r = table[(table["policy"] == label) & (table["metric"] == "revenue")].iloc[0]
        row: dict[str, Any] = {
            "policy": label, "verdict": r["verdict"], "value": r["value"], "ci_low": r["ci_low"],
            "ci_high": r["ci_high"], "lift": r["diff"], "lift_ci_low": r["diff_ci_low"],
            "lift_ci_high": r["diff_ci_high"],
        }
        true = {m: float((target * v).sum(axis=1).mean()) for m, v in truths.items()}
        base = {m: float((logging * v).sum(axis=1).mean()) for m, v in truths.items()}
        row["true_value"] = true["revenue"]
        row["true_lift"] = true["revenue"] - base["revenue"]
        for name in _GUARDRAILS:
            row[f"true_{name}"] = true[name] - base[name]
        worth = row["true_lift"] > _MIN_EFFECT and all(
            row[f"true_{name}"] <= margin for name, (_, margin) in _GUARDRAILS.items()
        )
        row["worth_it"] = bool(worth)
        row["right"] = worth if r["verdict"] == GO else (not worth) if r["verdict"] == NO_GO else None
        row["covered"] = bool(r["ci_low"] <= row["true_value"] <= r["ci_high"])
        rows.append(row)
    return report, pd.DataFrame(rows).set_index("policy")


#: How a guardrail status reads on the console.
_GUARD_WORDS = {"non-inferior": "ok", "breached": "BREACHED", "inconclusive": "undecided"}


def _shown_candidate(report: RolloutReport) -> str:
    """The recommended candidate; without a GO, the one with the largest estimated lift (what would have shipped)."""
    if report.recommended is not None:
        return str(report.recommended)
    lift = report.table[(report.table["role"] == "candidate") & (report.table["kind"] == "primary")]
    return str(lift.set_index("policy")["diff"].idxmax())


def _decision_right(report: RolloutReport, realised: pd.DataFrame) -> bool | None:
    """Whether the simulator's truth agrees with the decision (None for NEED MORE DATA: nothing was decided)."""
    if report.decision == GO:
        return bool(realised.loc[str(report.recommended), "worth_it"])
    if report.decision == NO_GO:
        return not bool(realised["worth_it"].any())
    return None


def decision_lines(report: RolloutReport, realised: pd.DataFrame) -> list[str]:
    """The console block of the rollout decision: the decision, its general reasons, one line per candidate.

    Each candidate's line: its verdict, its revenue lift per offer over the logging policy with the report's
    interval, each guardrail's status, and -- known only in the simulation -- its true lift on the same users.
    """
    level = f"{100 * (1 - report.settings['alpha_per_candidate']):.4g}%"
    head = f"DECISION: {report.decision}"
    if report.recommended is not None:
        head += f" -- roll out {report.recommended!r}"
    quoted = tuple(f"{name!r}" for name in realised.index)
    general = [r for r in report.reasons if not r.startswith(quoted)]
    lines = ["", head, *(f"  {r}" for r in general), f"  per candidate: verdict, revenue lift per offer over the "
             f"logging policy ({level} CI), guardrails (ok = shown not to rise past the margin), and the true lift "
             "(known only in a simulation):"]
    width = max(len(n) for n in realised.index)
    table = report.table
    for name, r in realised.iterrows():
        guards = []
        for g in _GUARDRAILS:
            status = table[(table["policy"] == name) & (table["metric"] == g)]["status"].iloc[0]
            guards.append(f"{g} {_GUARD_WORDS.get(status, status)}")
        lines.append(
            f"  {name:<{width}}  {r['verdict']:<14}  lift {r['lift']:+.3f} [{r['lift_ci_low']:+.3f}, "
            f"{r['lift_ci_high']:+.3f}]  {', '.join(guards)}  | true lift {r['true_lift']:+.3f}"
        )
    lines.append("")
    return lines


def rollout_line(demo: DemoResult) -> str:
    """What the roll-out realised for the recommended candidate (or, without a GO, the leading one)."""
    r = demo.realised.loc[demo.chosen]
    online_uniform = float(r["online_value"] - r["online_lift"])
    shipped = (f"'{demo.chosen}', rolled out," if demo.report.decision == GO
               else f"'{demo.chosen}' (not rolled out: {demo.report.decision}; shown for comparison)")
    right = demo.decision_right
    verdict = ("the decision was right" if right else "the decision was wrong") if right is not None else (
        "no decision was taken")
    inside = "inside" if r["covered"] else "outside"
    return (
        f"5. roll-out on the next {demo.launch - demo.sizes.n_log:,} users before the launch: {shipped} realised "
        f"{r['online_value']:.3f} revenue per offer against {online_uniform:.3f} for the uniform logging policy on "
        f"the same users ({r['online_lift']:+.3f}). On the evaluated users its true value was "
        f"{r['true_value']:.3f}, {inside} the report's interval [{r['ci_low']:.3f}, {r['ci_high']:.3f}] "
        f"(estimate {r['value']:.3f}); true lift {r['true_lift']:+.3f}: {verdict}."
    )


@dataclass
class DemoResult:
    """What :func:`build_demo` computed (:meth:`save` writes it).

    Attributes
    ----------
    result : SimulationResult
        The roll-out of every candidate (and the uniform baseline) with its metrics; ``summary`` has per candidate
        ``ope_value`` / ``ope_ci_low`` / ``ope_ci_high`` (recommended estimator), ``true_value`` (exact value of
        the fitted policy on the evaluation users: what the interval estimates), ``rollout_true_value`` (exact
        value of the fitted policy on the roll-out users before the launch) and ``online_value`` (revenue per offer
        realised there while learning).
    chosen : str
        The candidate the rollout report recommends (GO); without a GO, the one with the largest estimated lift
        (shown for comparison, not rolled out).
    fit_steps, eval_steps : ndarray of int
        Episode steps of the logged decisions the candidates were fitted on, and of those they were evaluated on
        (later ones: a chronological split, disjoint).
    sizes : _DemoSizes
    launch : int
        Step at which the new plan goes on sale.
    first_guess : dict of str to (float, float)
        Per hybrid candidate: RMSE and correlation of its predicted conversion of the new plan, before its first
        impression, against the truth.
    fresh_rmse : float
        The RMSE of a fresh disjoint arm (predicts 0).
    n_judged : int
        Users the first guess is judged on.
    seconds : float
        Wall time of the computation.
    report : RolloutReport
        The rollout decision on the later logged decisions (:func:`offline_eval.report.rollout_report`).
    realised : pandas.DataFrame
        Per candidate: the report's verdict, estimate and lift with intervals next to the simulator's truth on the
        same users (see :func:`_rollout_decision`), and what the roll-out realised: ``rollout_true_value``,
        ``online_value`` (revenue per offer before the launch) and ``online_lift`` (over the uniform logging
        policy on the same users).
    """

    result: SimulationResult
    chosen: str
    fit_steps: np.ndarray
    eval_steps: np.ndarray
    sizes: _DemoSizes
    launch: int
    first_guess: dict[str, tuple[float, float]]
    fresh_rmse: float
    n_judged: int
    seconds: float
    report: RolloutReport
    realised: pd.DataFrame

    @property
    def decision_right(self) -> bool | None:
        """Whether the simulator's truth agrees with the report's decision (None for NEED MORE DATA).

        GO is right when the recommended candidate truly lifts revenue per offer by more than the minimum effect
        without moving a guardrail metric past its margin; NO-GO is right when no candidate truly does.
        """
        return _decision_right(self.report, self.realised)

    def save(self, out_dir: str | Path) -> dict[str, Path]:
        """Write the rollout report (``report.html``, ``report.md``, ``report.json``), ``demo.md``,
        ``summary.md``, CSV tables, decision logs (Parquet) and plots under ``out_dir``."""
        out = Path(out_dir)
        files = self.result.save(out, plots=True, logs=True)
        report = {
            "report_html": self.report.to_html(out / "report.html"),
            "report_md": out / "report.md",
            "report_json": out / "report.json",
            "rollout_csv": out / "rollout.csv",
        }
        report["report_md"].write_text(self.report.to_markdown() + "\n" + _truth_section(self))
        doc = {**self.report.to_dict(), "simulation_truth": _jsonable_truth(self)}
        report["report_json"].write_text(json.dumps(doc, indent=2, allow_nan=False))
        self.realised.reset_index().to_csv(report["rollout_csv"], index=False)
        files = {**report, **files}
        files["demo_md"] = out / "demo.md"
        files["demo_md"].write_text(_demo_report(self, files))
        return files


def build_demo(
    quick: bool = False,
    seed: int = 0,
    progress: bool = True,
    echo: Callable[[str], None] | None = None,
) -> DemoResult:
    """The end-to-end story, computed (nothing written; :func:`run_demo` also writes it).

    1. Log ``n_log`` offers with a uniform-random policy on the launch-day catalog.
    2. Split the logged decisions whose outcome is final (attribution window closed) chronologically: the earlier
       half fits the candidate policies (``policy.update_from_log`` on the logging run's decision log and outcomes)
       -- disjoint ones (LinUCB, LinearTS, epsilon-greedy: one model per plan)
       and hybrid ones (HybridLinUCB, HybridLinearTS: a model shared through the plans' arm features, see
       :mod:`bandit.simulation.catalog`) -- and the later half evaluates them. No decision used for fitting is in
       the evaluation set: a policy evaluated on the rows it learned from looks better than it is.
    3. Evaluate every candidate off-policy (SNIPS and DR, with 95% intervals) on the later logs, next to its exact
       value on those users (known in the simulation).
    4. Pick the candidate with the highest lower confidence bound of its recommended estimate.
    5. Roll every candidate out on the next ``rollout`` users (same users for all: common random numbers), still
       learning, refreshed in batches.
    6. Compare each candidate's offline estimate with its exact value on the roll-out users and with the revenue
       per event it realised before the launch.
    7. Launch the new plan ``basic`` mid-rollout and measure how fast each candidate learns it and what the
       launch costs (regret per offer after the launch). A disjoint policy starts the new plan from its prior; a
       hybrid one scores it from its features before its first impression: the report gives the error of that
       first guess of its conversion against the truth.
    """
    say = echo if echo is not None else (lambda s: None)
    say(f"upsell-bandit demo{' (quick)' if quick else ''}, world seed {seed}: log offers at random, fit candidate "
        "policies on the earlier logs, decide GO / NO-GO / NEED MORE DATA on the later ones, then roll out in the "
        "simulator and compare with the truth.")
    sizes = _DEMO_QUICK if quick else _DEMO_FULL
    t_start = time.perf_counter()
    horizon = sizes.n_log + sizes.rollout
    launch = sizes.n_log + sizes.launch_after
    config = SimulationConfig.model_validate(
        {
            "seed": seed, "horizon": horizon, "batch_size": sizes.batch_size, "launch_step": launch,
            "policies": [{"name": "uniform", "type": "UniformRandom"}],
            "output": {"share_window": sizes.share_window, "progress": progress},
            "offline_eval": {"estimators": ["SNIPS", "DR"]},
        }
    )
    catalog = config.catalog.build()
    world = UpsellWorld(config.world, catalog, launch_step=launch, seed=seed)
    episode = world.episode(horizon)
    arms = world.arms(include_new=False)
    new_arm = world.arms()[-1]
    d = world.featurizer.n_features
    cands = _demo_candidates(arms, d, seed)
    tracker = Progress(sizes.n_log + sizes.rollout * (len(cands) + 1), enabled=progress)

    # 1. logging run with a randomised policy
    logger = build_policy(PolicyConfig(name=LOGGING_RUN, type="UniformRandom"), arms, d, seed + 1)
    log_run = run_policy(episode, logger, name=LOGGING_RUN, batch_size=sizes.batch_size,
                         start=0, stop=sizes.n_log, progress=tracker)
    say(f"1. logged {sizes.n_log:,} uniform-random offers")

    # 2. chronological split of the decisions with a final outcome (offline_eval.splits): fit on the earlier half,
    #    evaluate and decide on the later half
    if log_run.log_dir is None:
        raise RuntimeError("the logging run has no decision log")
    frame = logged_frame(log_run, episode)  # decision log + outcomes joined per metric, final outcomes only
    cut = frame["timestamp"].iloc[len(frame) // 2]
    train, test = chronological_split(
        LoggedData.from_dataframe(frame, reward="revenue", action_names=episode.arm_names), at=cut
    )
    is_train = frame["event_id"].isin(set(np.asarray(train.event_id).tolist())).to_numpy()
    positions = frame["step"].to_numpy(dtype=np.int64) - log_run.start
    fit, held_out = positions[is_train], positions[~is_train]
    if held_out.size != test.n:
        raise RuntimeError(f"the split put {held_out.size} decisions in the test part, offline_eval {test.n}")
    logged = read_decision_log(log_run.log_dir)
    outcomes = outcomes_table(log_run, episode).to_pandas()
    now = logged["timestamp"].max()  # the end of the logging period: every fitted decision's window has closed
    fit_rows = logged[logged["step"].isin(fit + log_run.start)]
    for label, pol in cands.items():
        report = pol.update_from_log(fit_rows, outcomes, pd.Timedelta(days=episode.attribution_window_days),
                                     now=now)
        if report.n_applied != fit.size:
            raise RuntimeError(f"{label} learned from {report.n_applied} of the {fit.size} fitted decisions")
    say(f"2. fitted {len(cands)} candidates on the {fit.size:,} earlier logged decisions with a final outcome "
        f"(before {cut:%Y-%m-%d %H:%M} UTC): " + ", ".join(cands))

    # 3. off-policy evaluation with intervals, on the later decisions only
    ope_table, _ = offline_evaluate(log_run, episode, cands, ["SNIPS", "DR"], rows=held_out)
    rec = ope_table[ope_table["recommended"]].set_index("policy")
    say(f"3. estimated every candidate off-policy on the {held_out.size:,} later decisions (SNIPS and DR, 95% "
        "intervals; ope.csv)")

    # 4. the rollout decision on the same later decisions: lift over the logging policy, guardrails, overlap
    test_steps = held_out + log_run.start
    report, realised = _rollout_decision(frame, cut, cands, episode, test_steps,
                                         metric_ranges(catalog, config.world.long_term_weight))
    chosen = _shown_candidate(report)
    say(f"4. rollout decision on the {held_out.size:,} later decisions: revenue per offer must rise by more than "
        f"{_MIN_EFFECT:g} over the logging policy; guardrails: "
        + ", ".join(f"{name} ({col}) may rise by at most {margin:g}" for name, (col, margin) in _GUARDRAILS.items()))
    for line in decision_lines(report, realised):
        say(line)

    # 5.-7. roll out every candidate (and the uniform baseline) on the same new users, launch the new plan
    pre = np.arange(sizes.n_log, launch)
    rollout_truth = {
        label: float((target_probabilities(p, episode.X[pre], episode.eligible[pre], episode, pre)
                      * episode.expected_value[pre]).sum(axis=1).mean())
        for label, p in cands.items()
    }
    # what a policy with a shared model predicts for the new plan the moment it is added, against the truth
    judged = np.arange(launch, min(launch + _COLD_START_EVENTS, horizon))
    judged = judged[episode.eligible[judged, -1]]
    truth = episode.probability[judged, -1] * world.attribution_probability
    first_guess: dict[str, tuple[float, float]] = {}

    def record_first_guess(label: str) -> Callable[[Any, int], None]:
        def on_launch(policy: Any, step: int) -> None:
            if hasattr(policy, "predict"):
                guess = policy.predict(episode.X[judged])[:, -1]
                first_guess[label] = (_rmse(guess, truth), float(np.corrcoef(guess, truth)[0, 1]))
        return on_launch

    runs = {}
    rollout = {**cands, "uniform": build_policy(config.policies[0], arms, d, seed)}
    for label, pol in rollout.items():
        runs[label] = run_policy(episode, pol, name=label, batch_size=sizes.batch_size, launch_step=launch,
                                 new_arm=new_arm, start=sizes.n_log, stop=horizon, progress=tracker,
                                 on_launch=record_first_guess(label))
    result = _collect(config, episode, runs, None)
    result.summary["new_plan_first_guess_rmse"] = result.summary["policy"].map(
        {label: rmse for label, (rmse, _) in first_guess.items()}
    )
    result.summary["ope_estimator"] = result.summary["policy"].map(rec["estimator"])
    for col in ("value", "ci_low", "ci_high"):
        result.summary[f"ope_{col}"] = result.summary["policy"].map(rec[col])
    result.summary["true_value"] = result.summary["policy"].map(rec["true_value"])
    result.summary["rollout_true_value"] = result.summary["policy"].map(rollout_truth)
    result.summary["online_value"] = result.summary["policy"].map(
        {label: float(r.outcomes.revenue[: launch - sizes.n_log].mean()) for label, r in runs.items()}
    )
    online = result.summary.set_index("policy")["online_value"]
    realised["rollout_true_value"] = realised.index.map(rollout_truth)
    realised["online_value"] = realised.index.map(online)
    realised["online_lift"] = realised["online_value"] - float(online["uniform"])
    result.logging_run = log_run
    result.ope = ope_table
    result.ope_description = (
        f"Each candidate as fitted on the {fit.size:,} earlier logged decisions, evaluated off-policy on the "
        f"{held_out.size:,} later ones (recommended estimator), against its exact value on those users "
        "(`true_value`, what the interval estimates), its exact value on the roll-out users before the launch "
        "(`rollout_true_value`) and the revenue per offer it realised there while learning (`online_value`)."
    )
    fresh = _rmse(np.zeros_like(truth), truth)
    demo = DemoResult(
        result=result, chosen=chosen, fit_steps=fit + log_run.start, eval_steps=held_out + log_run.start,
        sizes=sizes, launch=launch, first_guess=first_guess, fresh_rmse=fresh, n_judged=int(judged.size),
        seconds=time.perf_counter() - t_start, report=report, realised=realised,
    )
    say(rollout_line(demo))
    s = result.summary.set_index("policy")
    ttl = s["time_to_learn"].map(lambda v: "-" if math.isnan(v) else f"{v:,.0f}")
    say(f"6. new plan 'basic' launched at step {launch:,}; time to learn (steps) / regret per offer after the "
        "launch: " + ", ".join(f"{p} {ttl[p]} / {s.loc[p, 'regret_per_event_after_launch']:.3f}" for p in s.index))
    say("   first guess of its conversion before any impression, RMSE: "
        + ", ".join(f"{p} {rmse:.4f}" for p, (rmse, _) in first_guess.items())
        + f" (a fresh disjoint arm guesses 0: {fresh:.4f})")
    return demo


def run_demo(
    out_dir: str | Path = "upsell-demo",
    quick: bool = False,
    seed: int = 0,
    progress: bool = True,
    echo: Callable[[str], None] | None = None,
) -> dict[str, Path]:
    """The end-to-end story in one call (seconds once the kernels are compiled; ``quick=True`` is smaller).

    Computes :func:`build_demo` (log, fit on the earlier logs, evaluate offline on the later ones, pick, roll
    out, compare, launch a new plan) and writes ``summary.md``, ``demo.md``, CSV tables, decision logs (Parquet)
    and plots under ``out_dir``.

    Returns
    -------
    dict of str to Path
        Files written, by kind (``"demo_md"`` is the report).
    """
    return build_demo(quick=quick, seed=seed, progress=progress, echo=echo).save(out_dir)


_TRUTH_COLUMNS = ["policy", "verdict", "value", "ci_low", "ci_high", "true_value", "covered", "lift", "lift_ci_low",
                  "lift_ci_high", "true_lift", *(f"true_{g}" for g in _GUARDRAILS), "worth_it", "right",
                  "rollout_true_value", "online_value", "online_lift"]


def _truth_section(demo: DemoResult) -> str:
    """Markdown: the report's estimates next to the simulator's truth and what the roll-out realised."""
    right = demo.decision_right
    verdict = "n/a (NEED MORE DATA decides nothing)" if right is None else ("right" if right else "wrong")
    table = demo.realised.reset_index().astype({"right": object})
    return "\n".join([
        "## In the simulation: the truth and the roll-out",
        "",
        f"The decision was **{verdict}**. `true_value` / `true_lift` are the exact revenue per offer of each candidate "
        "and its lift over the logging policy on the evaluated users (what the interval estimates); `true_churn` and "
        "`true_cannibalisation` the exact change of each guardrail metric; `worth_it`: the true lift beats the "
        f"{_MIN_EFFECT:g} worth shipping and no guardrail truly moves past its margin. `online_value` is the revenue "
        f"per offer each candidate realised on the next {demo.launch - demo.sizes.n_log:,} users (before the new "
        "plan's launch), `online_lift` against the uniform logging policy on the same users.",
        "",
        markdown_table(table, _TRUTH_COLUMNS),
        "",
    ])


def _jsonable_truth(demo: DemoResult) -> dict[str, Any]:
    rows = {}
    for name, r in demo.realised.iterrows():
        rows[str(name)] = {
            k: (None if v is None or (isinstance(v, float) and not math.isfinite(v)) else
                bool(v) if isinstance(v, (bool, np.bool_)) else float(v) if isinstance(v, (int, float, np.number))
                else str(v))
            for k, v in r.items()
        }
    return {"decision_right": demo.decision_right, "shown": demo.chosen, "candidates": rows}


def _ranges_sentence(settings: Mapping[str, Any]) -> str:
    """What the report was told about each metric's range (:func:`metric_ranges`), as a sentence."""
    stated = [("revenue", settings["reward_range"])] + [
        (name, g["value_range"]) for name, g in settings["guardrails"].items()]
    parts = [f"{name} in [{r[0]:g}, {r[1]:g}]" for name, r in stated if r is not None]
    return (f"The catalog bounds one offer's value of each metric ({', '.join(parts)}): stated to the report, they "
            "let it judge on the small-sample bound below 10 events and clip every interval to what the metric can "
            "be.")


def _demo_report(demo: DemoResult, files: Mapping[str, Path]) -> str:
    result, chosen, sizes, launch = demo.result, demo.chosen, demo.sizes, demo.launch
    seconds, first_guess, fresh_rmse, n_judged = demo.seconds, demo.first_guess, demo.fresh_rmse, demo.n_judged
    s = result.summary.set_index("policy")
    new = result.config.catalog.new_plan
    if new is None:
        raise ValueError("the demo's catalog has no new plan to launch")
    guesses = "; ".join(
        f"`{p}` RMSE {rmse:.4f} (correlation with the truth {corr:.2f})" for p, (rmse, corr) in first_guess.items()
    )
    delay = result.config.world.delay
    lines = [
        "# upsell-bandit demo",
        "",
        f"Ran in {seconds:.1f} s. World seed {result.config.seed}; arm value = monthly price; reward = attributed "
        f"conversion (delays: exponential, mean {delay.mean_days:g} day(s), {delay.attribution_window_days:g}-day "
        "attribution window).",
        "",
        f"1. **Logging**: {sizes.n_log:,} offers chosen uniformly at random among the eligible launch-day plans.",
        f"2. **Fit**: candidate policies trained on the {demo.fit_steps.size:,} earlier logged decisions whose "
        f"outcome is final (steps {demo.fit_steps.min():,}-{demo.fit_steps.max():,}).",
        f"3. **Offline evaluation** on the {demo.eval_steps.size:,} later ones (steps {demo.eval_steps.min():,}-"
        f"{demo.eval_steps.max():,}; out of sample: no decision used for fitting is evaluated). Revenue per offer, "
        "95% intervals; `recommended` = the recommended estimate (the DR-DM blend of DM and DR); `true_value` is "
        "the exact "
        "value of the fitted policy on the same users, known in the simulation, and `covered` says whether the "
        "interval holds it:",
        "",
        markdown_table(result.ope, ["policy", "estimator", "value", "ci_low", "ci_high", "true_value", "covered",
                                     "ess", "recommended"]),
        "",
        f"4. **Rollout decision** on the same later decisions (`report.html`, `report.md`, `report.json`): "
        f"**{demo.report.decision}**" + (f", roll out `{chosen}`" if demo.report.decision == GO else "") + ". "
        f"Revenue per offer must rise by more than {_MIN_EFFECT:g} over the logging policy; guardrails: "
        + ", ".join(f"{g} (`{c}`) may rise by at most {m:g} per offer" for g, (c, m) in _GUARDRAILS.items())
        + ". " + _ranges_sentence(demo.report.settings) + " Reasons:",
        "",
        *(f"   - {r}" for r in demo.report.reasons),
        "",
        _truth_section(demo),
        f"5. **Roll-out** on the next {sizes.rollout:,} users (the same users for every candidate), learning online "
        f"with a refresh every {sizes.batch_size} offers.",
        "6. **Offline estimate vs reality** (before the launch): `true_value` is the exact expected revenue per offer "
        "of the fitted policy on the evaluation users, `rollout_true_value` on the roll-out users, `online_value` "
        "what it realised there while learning.",
        "",
        markdown_table(result.summary, ["policy", "ope_value", "ope_ci_low", "ope_ci_high", "true_value",
                                         "rollout_true_value", "online_value"]),
        "",
        f"7. **New plan** `{new.name}` ({new.price:g} a month, {new.seats} seat(s), "
        f"{'premium' if new.premium else 'basic'} tier) launched at step {launch:,}. The disjoint "
        "policies (`linucb`, `linear_ts`, `epsilon_greedy`) give it a fresh model; the hybrid ones (`hybrid_*`) "
        "score it from its arm features (price, seats, tier, family) before its first impression. Their first guess "
        f"of its conversion probability, against the truth for the {n_judged:,} users of the first "
        f"{min(_COLD_START_EVENTS, sizes.n_log + sizes.rollout - launch):,} offers after the launch who could be "
        f"offered it: {guesses}; a fresh disjoint arm "
        f"guesses 0 for everyone (RMSE {fresh_rmse:.4f}). The cost of learning it: regret per offer over the roll-out "
        f"and after the launch, the regret over the first {int(result.summary['launch_window_offers'].max()):,} offers "
        "after the launch next to as many offers just before it, and the time to learn the "
        f"plan: steps until, within a window of {sizes.share_window:,} offers, the agreement between the policy's and "
        "the oracle's new-plan offers (Cohen's kappa) reaches "
        f"{result.config.output.learn_fraction:.0%} of the level the policy settles at:",
        "",
        markdown_table(result.summary, ["policy", "revenue_per_event", "regret_per_event",
                                         "regret_per_event_after_launch", "launch_window_regret",
                                         "pre_launch_window_regret", "new_plan_share", "oracle_new_plan_share",
                                         "time_to_learn", "new_plan_first_guess_rmse"]),
        "",
        f"Shown policy `{chosen}` ({demo.report.decision}): offline estimate {s.loc[chosen, 'ope_value']:.3f} "
        f"[{s.loc[chosen, 'ope_ci_low']:.3f}, {s.loc[chosen, 'ope_ci_high']:.3f}], true value "
        f"{s.loc[chosen, 'true_value']:.3f} on the evaluation users and {s.loc[chosen, 'rollout_true_value']:.3f} on "
        f"the roll-out users, realised {s.loc[chosen, 'online_value']:.3f}.",
        "",
        "## Files",
        "",
        *file_links(files, files["demo_md"].parent),
    ]
    return "\n".join(lines) + "\n"
