"""What a run is worth: cumulative metrics, arm shares, time to learn a new plan, off-policy evaluation.

Metrics
-------
* revenue and conversions (attributed, realised) and the expected value of the choices;
* regret: ``sum_i max_eligible E[i, k] - E[i, a_i]`` with ``E`` the oracle's exact expected values (no noise),
  also per event from the launch on (``regret_per_event_after_launch``: what learning the new plan costs);
* arm share per window of ``share_window`` events;
* the **launch window**: regret over the first ``launch_window`` offers after the launch, next to the same number of
  offers just before it (:func:`launch_window_regret`): what learning the new plan costs, against the policy's own
  running level;
* new-plan uptake and **time to learn**: the number of steps after the launch until, within a window of
  ``share_window`` offers, the agreement between the policy's and the oracle's new-plan offers (Cohen's kappa,
  which is 0 for offering the plan to everyone, to no one or at random, and 1 for offering it exactly to the users
  the oracle offers it to) first reaches ``learn_fraction`` of the level the policy settles at (its mean kappa over
  the windows of the last third of the offers after the launch, :func:`settled_kappa`); NaN when the policy never
  targets the plan (that level below :data:`MIN_LEARNED_KAPPA`, or within :data:`CHANCE_Z` standard errors of
  what offering it at random reaches, :func:`chance_kappa_se`) (:func:`time_to_learn`);
* off-policy evaluation: every policy's final state is evaluated with ``offline_eval`` on the logs of a
  uniform-random logging run over the same users and compared with its exact value on those users (from the
  oracle) and with the revenue per event it realised online while learning.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from bandit._validation import check_scalar
from bandit.simulation.config import SimulationConfig
from bandit.simulation.loop import OraclePolicy, PolicyRun, _n_arms, outcomes_table
from bandit.simulation.world import Episode

__all__ = [
    "CHANCE_Z",
    "METRICS",
    "MIN_LEARNED_KAPPA",
    "chance_kappa_se",
    "cohen_kappa",
    "launch_window_regret",
    "learned_at",
    "logged_data",
    "logged_frame",
    "offline_evaluate",
    "settled_kappa",
    "target_probabilities",
    "time_to_learn",
]

#: The settled agreement (Cohen's kappa) below which a policy is said never to have learned to target the new plan.
MIN_LEARNED_KAPPA = 0.05
#: Standard errors of chance agreement (:func:`chance_kappa_se`) a settled level must also exceed to count as learned:
#: a policy that offers the plan at random passes about once in 700 times.
CHANCE_Z = 3.0


def _cumulative(run: PolicyRun, every: int) -> pd.DataFrame:
    ends = np.unique(np.append(np.arange(every, run.stop - run.start, every), run.stop - run.start)) - 1
    cum = {
        "cum_revenue": np.cumsum(run.outcomes.revenue),
        "cum_conversions": np.cumsum(run.outcomes.attributed),
        "cum_expected_value": np.cumsum(run.expected),
        "cum_oracle_value": np.cumsum(run.oracle),
        "cum_regret": np.cumsum(run.regret),
    }
    df = pd.DataFrame({k: v[ends] for k, v in cum.items()})
    df.insert(0, "step", run.start + ends + 1)
    df.insert(0, "policy", run.name)
    return df


def _arm_share(actions: np.ndarray, start: int, window: int, names: list[str], label: str) -> pd.DataFrame:
    n = actions.shape[0]
    lo = np.arange(0, n, window)
    rows: list[dict[str, Any]] = []
    for a in lo:
        b = min(a + window, n)
        counts = np.bincount(actions[a:b], minlength=len(names)) / (b - a)
        rows.extend(
            {"policy": label, "window_start": start + a, "window_end": start + b, "arm": names[k], "share": counts[k]}
            for k in range(len(names))
        )
    return pd.DataFrame(rows)


def cohen_kappa(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's kappa between two boolean arrays of equal length: chance-corrected agreement.

    ``(p_o - p_e) / (1 - p_e)`` with ``p_o`` the share of rows where they agree and ``p_e = P(a) P(b) + (1 - P(a))
    (1 - P(b))`` the agreement expected by chance; NaN when ``p_e == 1`` (both constant and equal) or empty.

    Examples
    --------
    >>> b = np.array([True, False, True, False])
    >>> cohen_kappa(b, b), cohen_kappa(np.ones(4, bool), b), cohen_kappa(~b, b)
    (1.0, 0.0, -1.0)
    """
    n = a.shape[0]
    if n == 0:
        return math.nan
    pa, pb = float(a.mean()), float(b.mean())
    agree = float((a == b).mean())
    chance = pa * pb + (1.0 - pa) * (1.0 - pb)
    if chance >= 1.0:
        return math.nan
    return (agree - chance) / (1.0 - chance)


def time_to_learn(
    actions: np.ndarray,
    best: np.ndarray,
    new_index: int,
    steps: np.ndarray,
    launch_step: int,
    window: int,
    fraction: float,
) -> tuple[pd.DataFrame, float]:
    """New-plan uptake per window after the launch, and the time to learn the new plan.

    In each window of ``window`` events after the launch, ``recall`` is the share of the users the oracle offers
    the new plan to who get it from the policy, ``precision`` the share of the policy's new-plan offers that go to
    such users, and ``kappa`` Cohen's kappa between "the policy offers the new plan" and "the oracle does"
    (:func:`cohen_kappa`): 0 for offering it to everyone, to no one or at random, 1 for exactly the oracle's users.
    The policy's settled level is its mean kappa over the windows of the last third of the offers after the launch
    (at least one window; weighted by offers, so a short last window cannot decide it: :func:`settled_kappa`). The
    new plan is learned at the end of the first window whose kappa reaches ``fraction`` of that level, provided the
    level is at least :data:`MIN_LEARNED_KAPPA` and :data:`CHANCE_Z` standard errors of chance agreement
    (:func:`chance_kappa_se`; else the policy never learned to target it; :func:`learned_at`).

    Relative to the policy's own settled level, because a linear policy facing a non-linear truth may never offer
    the plan to a fixed share of the oracle's users: an absolute bar then reports nothing at all for policies that
    did learn the plan as well as their model allows. The settled level is shown next to it (``kappa`` of the late
    windows in the uptake table), so a policy that settles low is visible as such.

    Parameters
    ----------
    actions, best : ndarray of int, shape (n,)
        The policy's and the oracle's arms at ``steps``.
    new_index : int
        Index of the new plan.
    steps : ndarray of int, shape (n,)
    launch_step, window : int
    fraction : float
        In (0, 1].

    Returns
    -------
    uptake : pandas.DataFrame
        Per window: ``window_end``, ``steps_since_launch``, ``share`` (policy's new-plan share), ``oracle_share``,
        ``recall``, ``precision``, ``kappa`` (NaN when undefined).
    time_to_learn : float
        Steps after the launch at the end of the first window whose kappa reaches ``fraction`` of the settled
        level; NaN if the policy never learned to target the plan (or there is no window after the launch).

    Examples
    --------
    A policy that offers the plan to everyone for two windows, then to the oracle's users:

    >>> steps = np.arange(60)
    >>> best = steps % 2
    >>> actions = np.where(steps < 20, 1, best)
    >>> up, ttl = time_to_learn(actions, best, 1, steps, launch_step=0, window=10, fraction=0.6)
    >>> up["kappa"].tolist()
    [0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    >>> ttl
    30.0
    """
    window = int(check_scalar(window, "window", low=1, integer=True))
    fraction = float(check_scalar(fraction, "fraction", low=0.0, high=1.0, low_inclusive=False))
    actions, best, steps = (np.asarray(x) for x in (actions, best, steps))
    if not (actions.ndim == 1 and actions.shape == best.shape == steps.shape):
        raise ValueError(f"actions, best and steps must be 1-D of one length, got shapes {actions.shape}, "
                         f"{best.shape} and {steps.shape}")
    post = steps >= launch_step
    a, b, s = actions[post], best[post], steps[post]
    rows = []
    for lo in range(0, a.shape[0], window):
        hi = min(lo + window, a.shape[0])
        pa, po = a[lo:hi] == new_index, b[lo:hi] == new_index
        hit = float((pa & po).sum())
        recall = hit / po.sum() if po.any() else math.nan
        precision = hit / pa.sum() if pa.any() else math.nan
        since = int(s[hi - 1] - launch_step + 1)
        rows.append(
            {"window_end": int(s[hi - 1]) + 1, "steps_since_launch": since, "share": float(pa.mean()),
             "oracle_share": float(po.mean()), "recall": recall, "precision": precision,
             "kappa": cohen_kappa(pa, po)}
        )
    columns = ["window_end", "steps_since_launch", "share", "oracle_share", "recall", "precision", "kappa"]
    uptake = pd.DataFrame(rows, columns=columns)
    return uptake, learned_at(uptake, fraction)[1]


def settled_kappa(uptake: pd.DataFrame) -> float:
    """The level a policy's targeting of the new plan settles at: its mean kappa over the late windows.

    The late windows are the last ones that together hold at least a third of the offers after the launch (at least
    one window); their kappas are averaged weighted by their number of offers, undefined (NaN) windows left out. A
    short last window (a run that does not end on a window boundary) thus counts for its few offers only, instead of
    deciding the level on its own.

    Parameters
    ----------
    uptake : pandas.DataFrame
        One policy's uptake table (:func:`time_to_learn`): ``steps_since_launch`` and ``kappa`` per window.

    Returns
    -------
    float
        NaN when every late window's kappa is undefined, or there is no window.

    Examples
    --------
    >>> up = pd.DataFrame({"steps_since_launch": [500, 1000, 1001], "kappa": [0.2, 0.8, float("nan")]})
    >>> settled_kappa(up)
    0.8
    """
    late, weight = _late_windows(uptake)
    kappa = uptake["kappa"].to_numpy(dtype=np.float64)[late]
    ok = np.isfinite(kappa)
    if not ok.any():
        return math.nan
    return float(np.average(kappa[ok], weights=weight[ok]))


def _late_windows(uptake: pd.DataFrame) -> tuple[slice, np.ndarray]:
    """The late windows of :func:`settled_kappa` (a slice of ``uptake``'s rows) and their numbers of offers."""
    since = uptake["steps_since_launch"].to_numpy(dtype=np.float64)
    if since.size == 0:
        return slice(0, 0), np.zeros(0)
    sizes = np.diff(since, prepend=0.0)
    from_end = np.cumsum(sizes[::-1])[::-1]  # offers in this window and every later one
    first_late = int(np.flatnonzero(from_end >= since[-1] / 3.0)[-1])
    return slice(first_late, None), sizes[first_late:]


def chance_kappa_se(uptake: pd.DataFrame) -> float:
    """Standard error of the settled kappa of a policy that offers the new plan independently of the oracle.

    The large-sample null variance of Cohen's kappa (Fleiss, Cohen & Everitt, 1969) for the ``m`` offers of the late
    windows, with ``a`` and ``b`` the policy's and the oracle's new-plan shares there and ``p_e = ab + (1-a)(1-b)``:
    ``(p_e + p_e^2 - ab(a+b) - (1-a)(1-b)(2-a-b)) / (m (1 - p_e)^2)``. A policy offering the plan at random in
    windows of a few hundred offers reaches a settled kappa of 0.05 by chance about one time in six; three of these
    standard errors, once in several hundred.

    Parameters
    ----------
    uptake : pandas.DataFrame
        One policy's uptake table (:func:`time_to_learn`): ``steps_since_launch``, ``share``, ``oracle_share``.

    Returns
    -------
    float
        NaN when undefined (no window, or both shares 0 or 1).

    Examples
    --------
    >>> up = pd.DataFrame({"steps_since_launch": [200], "share": [0.2], "oracle_share": [0.2]})
    >>> round(chance_kappa_se(up), 4)  # Monte Carlo over 20,000 draws: 0.0704
    0.0707
    """
    late, weight = _late_windows(uptake)
    m = float(weight.sum())
    if m == 0:
        return math.nan
    a = float(np.average(uptake["share"].to_numpy(dtype=np.float64)[late], weights=weight))
    b = float(np.average(uptake["oracle_share"].to_numpy(dtype=np.float64)[late], weights=weight))
    chance = a * b + (1.0 - a) * (1.0 - b)
    if chance >= 1.0:
        return math.nan
    spread = a * b * (a + b) + (1.0 - a) * (1.0 - b) * (2.0 - a - b)
    return math.sqrt(max(chance + chance**2 - spread, 0.0) / (m * (1.0 - chance) ** 2))


def learned_at(uptake: pd.DataFrame, fraction: float) -> tuple[float, float]:
    """The kappa a policy must reach to have learned the new plan, and when it first reached it.

    Parameters
    ----------
    uptake : pandas.DataFrame
        One policy's uptake table (:func:`time_to_learn`).
    fraction : float
        Share of the settled level (:func:`settled_kappa`) to reach, in (0, 1].

    Returns
    -------
    threshold : float
        ``fraction * settled_kappa(uptake)``; NaN when the policy never learned to target the plan: its settled
        level is undefined, below :data:`MIN_LEARNED_KAPPA`, or within :data:`CHANCE_Z` standard errors of what
        offering the plan at random reaches (:func:`chance_kappa_se`).
    time_to_learn : float
        ``steps_since_launch`` at the end of the first window whose kappa reaches ``threshold``; NaN with it.
    """
    settled = settled_kappa(uptake)
    if not settled >= max(MIN_LEARNED_KAPPA, CHANCE_Z * chance_kappa_se(uptake)):
        return math.nan, math.nan
    threshold = fraction * settled
    kappa = uptake["kappa"].to_numpy(dtype=np.float64)
    reached = np.flatnonzero(np.nan_to_num(kappa, nan=-np.inf) >= threshold)
    return threshold, float(uptake["steps_since_launch"].iloc[reached[0]])


def launch_window_regret(run: PolicyRun, launch_step: int, window: int) -> tuple[float, float, int]:
    """Regret over the first ``m`` offers after the launch and over the ``m`` offers just before it.

    ``m = min(window, offers of the run after the launch, offers of the run before it)``, so both sums cover the
    same number of offers and their difference is what the launch cost on top of the policy's running level.

    Returns
    -------
    after, before : float
        Expected regret summed over the two windows (NaN when ``m == 0``).
    m : int
    """
    pos = int(np.searchsorted(run.steps, launch_step))
    m = min(int(window), run.steps.shape[0] - pos, pos)
    if m <= 0:
        return math.nan, math.nan, 0
    return float(run.regret[pos : pos + m].sum()), float(run.regret[pos - m : pos].sum()), m


def _summary_row(run: PolicyRun, episode: Episode, cfg: SimulationConfig, new_index: int | None) -> dict[str, Any]:
    n = run.stop - run.start
    row: dict[str, Any] = {
        "policy": run.name,
        "type": run.kind,
        "events": n,
        "revenue": float(run.outcomes.revenue.sum()),
        "conversions": int(run.outcomes.attributed.sum()),
        "revenue_per_event": float(run.outcomes.revenue.mean()),
        "expected_value": float(run.expected.sum()),
        "regret": float(run.regret.sum()),
        "regret_per_event": float(run.regret.mean()),
        "seconds": run.seconds,
    }
    if new_index is not None and cfg.launch_step is not None:
        post = run.steps >= cfg.launch_step
        best = episode.best_arms(slice(run.start, run.stop))
        row["regret_per_event_after_launch"] = float(run.regret[post].mean()) if post.any() else math.nan
        row["new_plan_share"] = float((run.actions[post] == new_index).mean())
        row["oracle_new_plan_share"] = float((best[post] == new_index).mean())
        after, before, offers = launch_window_regret(run, cfg.launch_step, cfg.output.launch_window)
        row["launch_window_regret"] = after
        row["pre_launch_window_regret"] = before
        row["launch_window_offers"] = offers
    return row


#: Metric columns of :func:`logged_frame`: attributed revenue (the primary metric), attributed conversions, and the
#: guardrail metrics of the world (cancellations, cannibalised monthly value).
METRICS = ("revenue", "converted", "cancelled", "cannibalised")


def logged_frame(run: PolicyRun, episode: Episode, rows: np.ndarray | None = None) -> pd.DataFrame:
    """The run's decisions with a final outcome (``run.mature``), one column per metric of :data:`METRICS`.

    The run's decision log joined with its outcomes table (:func:`~bandit.simulation.loop.outcomes_table`) by
    :func:`bandit.attribution.join_outcomes` at the end of the run, one metric column at a time -- what
    ``upsell-bandit report --outcomes`` does: ``revenue`` (net value), ``converted`` (1.0 for an attributed
    conversion), ``cancelled`` and ``cannibalised``, each the sum of the decision's outcome rows inside its
    attribution window. ``reward`` is the revenue. ``attrs["arms"]`` holds the world's arm list.

    ``rows`` (positions in the run, default all) restricts it further; rows without a final outcome are left out
    whatever ``rows`` says.
    """
    from bandit.attribution import join_outcomes
    from bandit.decision_log import read_decision_log

    if run.log_dir is None:
        raise ValueError(f"run {run.name!r} has no decision log")
    decisions = read_decision_log(run.log_dir)
    outcomes = outcomes_table(run, episode).to_pandas()
    outcomes["converted"] = 1.0 - outcomes["cancelled"]  # a row is a conversion or a cancellation
    now = decisions["timestamp"].iloc[-1]  # the run's last decision: the end of the run
    window = pd.Timedelta(days=episode.attribution_window_days)
    keep = _final_rows(run, rows)
    frame = decisions.iloc[keep].reset_index(drop=True)
    for metric in METRICS:
        o = outcomes[["event_id", "timestamp", metric]].rename(columns={metric: "reward"})
        joined = join_outcomes(decisions, o, window, now=now)
        frame[metric] = joined["reward"].to_numpy(dtype=np.float64)[keep]
    frame["reward"] = frame["revenue"]
    frame.attrs["arms"] = list(episode.arm_names)
    return frame


def logged_data(run: PolicyRun, episode: Episode, rows: np.ndarray | None = None) -> Any:
    """The run's decisions with a final outcome (``run.mature``), as :class:`offline_eval.LoggedData` whose reward
    is the attributed revenue: the run's decision log joined with its outcomes' ``revenue`` by
    :func:`bandit.attribution.join_outcomes` at the end of the run (what ``upsell-bandit evaluate --outcomes``
    does).

    ``rows`` (positions in the run, default all) restricts it further, e.g. to the later part of a chronological
    split; rows without a final outcome are left out whatever ``rows`` says.
    """
    from bandit.attribution import join_outcomes
    from bandit.decision_log import read_decision_log
    from offline_eval import LoggedData

    if run.log_dir is None:
        raise ValueError(f"run {run.name!r} has no decision log")
    decisions = read_decision_log(run.log_dir)
    outcomes = outcomes_table(run, episode).to_pandas()
    outcomes["reward"] = outcomes["revenue"]
    now = decisions["timestamp"].iloc[-1]  # the run's last decision: the end of the run
    joined = join_outcomes(decisions, outcomes, pd.Timedelta(days=episode.attribution_window_days), now=now)
    final = joined.iloc[_final_rows(run, rows)].drop(columns=["reward_status"])
    # the simulator's own log: a row that breaks the contract is a bug here, not something to leave out
    return LoggedData.from_dataframe(final, reward="reward", action_names=episode.arm_names, missing_reward="raise",
                                     invalid_rows="raise")


def _final_rows(run: PolicyRun, rows: np.ndarray | None) -> np.ndarray:
    """Sorted positions in ``run`` (restricted to ``rows`` if given) whose outcome is final."""
    mature = run.mature.copy()
    if rows is not None:
        chosen = np.zeros_like(mature)
        chosen[np.asarray(rows, dtype=np.int64)] = True
        mature &= chosen
    return np.flatnonzero(mature)


def target_probabilities(
    policy: Any, X: np.ndarray, eligible: np.ndarray, episode: Episode, rows: np.ndarray
) -> np.ndarray:
    """``policy``'s action distribution on ``X`` over the world's K arms (0 for arms it lacks), shape (n, K)."""
    K = eligible.shape[1]
    out = np.zeros((X.shape[0], K))
    if isinstance(policy, OraclePolicy):
        out[np.arange(rows.shape[0]), episode.best_arms(rows)] = 1.0
        return out
    kp = _n_arms(policy)
    out[:, :kp] = policy.action_probabilities(X, eligible=np.ascontiguousarray(eligible[:, :kp]))
    return out


def offline_evaluate(
    logging_run: PolicyRun,
    episode: Episode,
    policies: Mapping[str, Any],
    estimators: Sequence[str] = ("SNIPS", "DR"),
    rows: np.ndarray | None = None,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Estimate each policy's value per event on the logging run's logs, and compute its true value there.

    Parameters
    ----------
    logging_run : PolicyRun
        A randomised logging run (e.g. uniform random) over the same episode.
    episode : Episode
    policies : mapping of str to policy
        Frozen policies (or :class:`OraclePolicy`) to evaluate; they are not changed.
    estimators : sequence of str
        Names of :mod:`offline_eval` estimators.
    rows : ndarray of int, optional
        Positions in ``logging_run`` to evaluate on (default: all); only those with a final outcome are used.

    Returns
    -------
    table : pandas.DataFrame
        :func:`offline_eval.evaluate`'s table plus ``true_value`` (exact expected revenue per event of the policy
        on the evaluated users, from the oracle) and ``covered`` (true value inside the interval).
    truths : dict of str to float
    """
    import offline_eval
    from offline_eval.diagnostics import DiagnosticWarning

    data = logged_data(logging_run, episode, rows)
    steps = _final_rows(logging_run, rows) + logging_run.start
    targets, truths = {}, {}
    for label, pol in policies.items():
        probs = target_probabilities(pol, data.context, data.eligible, episode, steps)
        targets[label] = probs
        truths[label] = float((probs * episode.expected_value[steps]).sum(axis=1).mean())
    ests = [getattr(offline_eval, name)() for name in estimators]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiagnosticWarning)
        table = offline_eval.evaluate(data, targets, estimators=ests)
    table["true_value"] = table["policy"].map(truths)
    table["covered"] = (table["ci_low"] <= table["true_value"]) & (table["true_value"] <= table["ci_high"])
    return table, truths
