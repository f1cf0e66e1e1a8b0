"""Run policies side by side on one simulated world, with common random numbers, batch refresh and delayed rewards.

How a run works
---------------
:func:`run_policy` walks an :class:`~bandit.simulation.world.Episode` in batches of ``batch_size`` events (a batch
also ends at the launch step), driving the production loop end to end. For each batch the policy decides every
event with its **current** state (``choose_batch`` with the world's eligibility mask); the decisions are written to
a :class:`bandit.DecisionLog` (``append_batch``, one log per run under the world's arm list); the world reveals the
potential outcomes of the chosen arms, and each conversion becomes an outcome row (``event_id``, arrival
``timestamp``, ``reward``) when it arrives. At the batch's last timestamp ``now`` the policy learns from the
decisions whose reward is known by then through :func:`bandit.attribution.apply_log` -- the code behind
``policy.update_from_log`` and ``join_outcomes``, with an explicit ``now``: a conversion that arrived inside the
attribution window gives reward 1 (or its value), a decision whose window has passed without one gives 0, the rest
wait. At the launch step the catalog's new plan is appended to the policy (``add_arm``, with its arm features, so a
hybrid policy scores it before its first impression); a policy without ``add_arm`` keeps its arms and the run
records a note.

Every policy meets the same users and the same potential outcomes (common random numbers, drawn once per world
seed), so differences between policies are differences in choices, not luck of the draw.

Metrics
-------
* revenue and conversions (attributed, realised) and the expected value of the choices;
* regret: ``sum_i max_eligible E[i, k] - E[i, a_i]`` with ``E`` the oracle's exact expected values (no noise),
  also per event from the launch on (``regret_per_event_after_launch``: what learning the new plan costs);
* arm share per window of ``share_window`` events;
* new-plan uptake and **time to learn**: the number of steps after the launch until, within a window, the
  policy's correctly targeted share of the new plan reaches ``learn_fraction`` of the oracle's share (it offers
  the plan to that fraction of the users the oracle offers it to) and of its own share (that fraction of its
  new-plan offers go to those users); NaN when that never happens (:func:`time_to_learn`);
* off-policy evaluation: every policy's final state is evaluated with ``offline_eval`` on the logs of a
  uniform-random logging run over the same users and compared with its exact value on those users (from the
  oracle) and with the revenue per event it realised online while learning.

Examples
--------
>>> from bandit.simulation.config import SimulationConfig
>>> cfg = SimulationConfig.model_validate({
...     "horizon": 600, "batch_size": 100, "launch_step": 300, "world": {"events_per_day": 200},
...     "policies": [{"name": "oracle", "type": "oracle"}, {"name": "uniform", "type": "UniformRandom"}],
...     "output": {"progress": False, "share_window": 100}})
>>> result = run_simulation(cfg)
>>> float(result.summary.set_index("policy").loc["oracle", "regret"])
0.0
>>> bool(result.summary.set_index("policy").loc["uniform", "regret"] > 0)
True
"""

from __future__ import annotations

import inspect
import math
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bandit.arms import Arm
from bandit.simulation.config import ORACLE, ConfigError, PolicyConfig, SimulationConfig, policy_types
from bandit.simulation.world import Episode, Outcomes, UpsellWorld

__all__ = [
    "DemoResult",
    "OraclePolicy",
    "PolicyRun",
    "Progress",
    "SimulationResult",
    "build_demo",
    "build_policy",
    "logged_data",
    "markdown_table",
    "offline_evaluate",
    "run_demo",
    "run_policy",
    "run_simulation",
    "target_probabilities",
    "time_to_learn",
    "write_decision_logs",
]

_US_PER_DAY = 86_400_000_000


class OraclePolicy:
    """Offers, for every event, the eligible arm of highest true expected value (zero regret; a reference)."""

    name = ORACLE

    def __repr__(self) -> str:
        return "OraclePolicy()"


class Progress:
    """Minimal progress report on stderr: a self-overwriting line on a terminal, a line per 10% otherwise.

    Parameters
    ----------
    total : int
        Total number of steps across everything that will report.
    enabled : bool
        False: silent.
    stream : file-like, optional
        Default ``sys.stderr``.
    """

    def __init__(self, total: int, enabled: bool = True, stream: Any = None) -> None:
        self.total = max(int(total), 1)
        self.enabled = enabled
        self.stream = sys.stderr if stream is None else stream
        self.done = 0
        self._last_decile = -1
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._start = time.perf_counter()

    def advance(self, steps: int, label: str) -> None:
        """Record ``steps`` more steps of work on ``label``."""
        self.done += int(steps)
        if not self.enabled:
            return
        frac = min(self.done / self.total, 1.0)
        elapsed = time.perf_counter() - self._start
        line = f"simulating {label}: {100 * frac:5.1f}% ({self.done:,}/{self.total:,} steps, {elapsed:.0f}s)"
        if self._tty:
            self.stream.write("\r" + line.ljust(78))
            if self.done >= self.total:
                self.stream.write("\n")
        elif int(frac * 10) > self._last_decile:
            self._last_decile = int(frac * 10)
            self.stream.write(line + "\n")
        self.stream.flush()


@dataclass
class PolicyRun:
    """What one policy did on events ``start..stop-1`` of an episode (arrays have one row per event).

    Attributes
    ----------
    name, kind : str
        Label and policy class name (``"oracle"`` for :class:`OraclePolicy`).
    policy : object
        The policy in its final state (None for the oracle).
    start, stop : int
        Episode rows covered.
    actions : ndarray of int64
        Chosen arm (world arm index).
    propensities : ndarray
        Probability of the chosen arm.
    probabilities : ndarray (n, K)
        Full distribution over the world's K arms (0 for arms the policy did not have yet).
    eligible : ndarray of bool (n, K)
        Eligibility mask the policy was given (the world's, restricted to the policy's arms).
    versions : ndarray of object
        ``policy_version`` that decided each event.
    outcomes : Outcomes
        Realised outcomes.
    reward : ndarray
        What the policy learned from (0/1 attributed conversion, or net value / ``reward_scale``).
    known : ndarray of bool
        Outcome known (and learned from) by the end of the run: an attributed conversion arrived, or the
        attribution window closed without one.
    mature : ndarray of bool
        The attribution window closed before the end of the run, so the outcome is final whatever it is.
        Off-policy evaluation uses only these rows: keeping the early converters of still-open windows but not
        their non-converters would bias every estimate upwards.
    expected, oracle : ndarray
        Expected value of the chosen arm and of the oracle's arm.
    new_arm_added_at : int or None
        Step at which the new plan was added to the policy.
    reward_mode : {"conversion", "value"}
    reward_scale : float
    notes : list of str
    seconds : float
        Wall time of the run.
    log_dir : Path or None
        The run's decision log (a :class:`bandit.DecisionLog` directory); a temporary directory, removed with this
        object, unless ``run_policy`` was given one.
    """

    name: str
    kind: str
    policy: Any
    start: int
    stop: int
    actions: np.ndarray
    propensities: np.ndarray
    probabilities: np.ndarray
    eligible: np.ndarray
    versions: np.ndarray
    outcomes: Outcomes
    reward: np.ndarray
    known: np.ndarray
    mature: np.ndarray
    expected: np.ndarray
    oracle: np.ndarray
    new_arm_added_at: int | None
    reward_mode: str = "conversion"
    reward_scale: float = 1.0
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    log_dir: Path | None = None
    _log_tmp: Any = field(default=None, repr=False, compare=False)

    @property
    def regret(self) -> np.ndarray:
        """Per-event expected regret against the oracle, shape (n,)."""
        return self.oracle - self.expected

    @property
    def steps(self) -> np.ndarray:
        """Episode steps covered, shape (n,)."""
        return np.arange(self.start, self.stop, dtype=np.int64)


# ----------------------------------------------------------------------------------------------------------------
# building policies
# ----------------------------------------------------------------------------------------------------------------


def build_policy(spec: PolicyConfig, arms: Sequence[Arm], n_features: int, seed: int, index: int = 0) -> Any:
    """Construct the policy a :class:`PolicyConfig` describes (``seed`` unless the params give one).

    Raises
    ------
    ConfigError
        The parameters are rejected by the policy class (message names ``policies[index]``).
    """
    if spec.type == ORACLE:
        return OraclePolicy()
    cls = policy_types()[spec.type]
    params = dict(spec.params)
    accepted = inspect.signature(cls).parameters
    if "seed" in accepted:
        params.setdefault("seed", seed)
    if "n_features" in accepted:
        params["n_features"] = n_features
    try:
        return cls(list(arms), **params)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"policies.{index}.params: {spec.type} rejected its parameters: {e}") from None


def _n_arms(policy: Any) -> int:
    return int(policy.n_arms) if hasattr(policy, "n_arms") else len(policy.arm_names)


# ----------------------------------------------------------------------------------------------------------------
# running one policy
# ----------------------------------------------------------------------------------------------------------------


def _boundaries(start: int, stop: int, batch_size: int, launch_step: int | None) -> list[int]:
    cuts = set(range(start, stop, batch_size)) | {stop}
    if launch_step is not None and start < launch_step < stop:
        cuts.add(launch_step)
    return sorted(cuts)


def run_policy(
    episode: Episode,
    policy: Any,
    *,
    name: str | None = None,
    batch_size: int = 500,
    launch_step: int | None = None,
    new_arm: Arm | None = None,
    reward: str = "conversion",
    reward_scale: float = 1.0,
    start: int = 0,
    stop: int | None = None,
    progress: Progress | None = None,
    on_launch: Callable[[Any, int], None] | None = None,
    log_dir: str | Path | None = None,
) -> PolicyRun:
    """Run one policy on rows ``start..stop-1`` of ``episode`` with batch refresh and delayed rewards.

    Parameters
    ----------
    episode : Episode
        The world's events (same object for every policy: common random numbers).
    policy : policy or OraclePolicy
        A :mod:`bandit` policy whose arms are the first ``K_p`` world arms, in world order. It is updated in place.
    name : str, optional
        Label (default: the class name).
    batch_size : int
        Events decided per refresh.
    launch_step : int, optional
        Episode step at which ``new_arm`` (the world's last arm) goes on sale and is added to the policy.
    new_arm : Arm, optional
        The arm to add (required with ``launch_step`` unless the policy already has every world arm).
    reward : {"conversion", "value"}
        Learn from 0/1 attributed conversions, or from the attributed net value divided by ``reward_scale``.
    reward_scale : float
        Divisor of the value reward (> 0).
    start, stop : int
        Episode rows to run (default all).
    progress : Progress, optional
    on_launch : callable, optional
        Called as ``on_launch(policy, step)`` right after ``new_arm`` is added, before the policy decides anything
        with it (e.g. to record what the policy predicts for the new plan before its first impression). Not called
        for the oracle, nor when the policy cannot add arms.
    log_dir : str or path, optional
        Directory of the run's decision log (must not hold one yet); default a temporary directory that lives as
        long as the returned :class:`PolicyRun`.

    Returns
    -------
    PolicyRun

    Raises
    ------
    ValueError
        Mismatched arm lists or bad sizes.
    ConfigError
        The policy rejects the rewards (e.g. BetaTS, which needs rewards in [0, 1], with negative net values).
    """
    K = len(episode.arm_names)
    stop = len(episode) if stop is None else int(stop)
    if not 0 <= start < stop <= len(episode):
        raise ValueError(f"start/stop must satisfy 0 <= start < stop <= {len(episode)}, got {start}, {stop}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if reward not in ("conversion", "value"):
        raise ValueError(f"reward must be 'conversion' or 'value', got {reward!r}")
    if not (reward_scale > 0 and math.isfinite(reward_scale)):
        raise ValueError(f"reward_scale must be finite and > 0, got {reward_scale!r}")
    is_oracle = isinstance(policy, OraclePolicy)
    kind = ORACLE if is_oracle else type(policy).__name__
    name = kind if name is None else name
    if not is_oracle:
        kp = _n_arms(policy)
        if kp > K or list(policy.arm_names) != episode.arm_names[:kp]:
            raise ValueError(
                f"policy {name!r} has arms {list(policy.arm_names)}; they must be the world's arms in order, "
                f"a prefix of {episode.arm_names}"
            )

    n = stop - start
    actions = np.empty(n, dtype=np.int64)
    propensities = np.empty(n)
    probabilities = np.zeros((n, K))
    eligible = np.zeros((n, K), dtype=np.bool_)
    versions = np.empty(n, dtype=object)
    converted = np.zeros(n, dtype=np.bool_)
    attributed = np.zeros(n, dtype=np.bool_)
    delay = np.full(n, np.inf)
    revenue = np.zeros(n)
    known = np.zeros(n, dtype=np.bool_)
    notes: list[str] = []
    added_at: int | None = None
    t0 = time.perf_counter()
    flow = _LogFlow(episode, start, stop, kind, reward, reward_scale, log_dir)
    bounds = _boundaries(start, stop, batch_size, launch_step)
    try:
        for s, e in zip(bounds[:-1], bounds[1:], strict=False):
            rows = np.arange(s, e)
            local = rows - start
            if not is_oracle and launch_step is not None and s >= launch_step and added_at is None:
                added_at = s
                if (_n_arms(policy) < K and _add_new_arm(policy, name, new_arm, episode, notes)
                        and on_launch is not None):
                    on_launch(policy, s)
            if is_oracle:
                idx = episode.best_arms(slice(s, e))
                probs = np.zeros((e - s, K))
                probs[np.arange(e - s), idx] = 1.0
                mask = episode.eligible[s:e]
                version = ORACLE
            else:
                kp = _n_arms(policy)
                mask = episode.eligible[s:e, :kp]
                batch = policy.choose_batch(episode.X[s:e], eligible=mask)
                idx = np.asarray(batch.indices, dtype=np.int64)
                probs = np.asarray(batch.probabilities)
                version = batch.policy_version
            kp = probs.shape[1]
            actions[local] = idx
            probabilities[local, :kp] = probs
            propensities[local] = probs[np.arange(e - s), idx]
            eligible[local, :kp] = mask
            versions[local] = version
            flow.log_decisions(local, actions, propensities, probabilities, eligible, version)
            out = episode.outcomes(rows, idx)
            converted[local], attributed[local] = out.converted, out.attributed
            delay[local], revenue[local] = out.delay_days, out.revenue
            flow.record_outcomes(local, out, idx)
            # the refresh at the batch's last timestamp: learn from every decision whose reward is known by now
            known[flow.attribute(None if is_oracle else policy, name, actions, now_step=e - 1)] = True
            if progress is not None:
                progress.advance(e - s, name)
    finally:
        flow.close()

    reward_arr = _rewards(reward, attributed, revenue, reward_scale)
    sl = slice(start, stop)
    expected = episode.expected_value[sl][np.arange(n), actions]
    ts_us = episode.timestamps.astype(np.int64)
    return PolicyRun(
        name=name,
        kind=kind,
        policy=None if is_oracle else policy,
        start=start,
        stop=stop,
        actions=actions,
        propensities=propensities,
        probabilities=probabilities,
        eligible=eligible,
        versions=versions,
        outcomes=Outcomes(converted, attributed, delay, revenue),
        reward=reward_arr,
        known=known,
        mature=ts_us[start:stop] + flow.window_us < ts_us[stop - 1],
        expected=expected,
        oracle=episode.oracle_value(sl),
        new_arm_added_at=added_at,
        reward_mode=reward,
        reward_scale=float(reward_scale),
        notes=notes,
        seconds=time.perf_counter() - t0,
        log_dir=flow.log_dir,
        _log_tmp=flow.tmp,
    )


class _LogFlow:
    """The production data flow of one run: decisions into a :class:`bandit.DecisionLog`, conversions into
    outcome rows as they arrive, and delayed rewards resolved by :mod:`bandit.attribution` at each refresh.

    The attribution sees the decisions not yet resolved (as the log holds them: ``event_id``, ``timestamp``,
    ``context``, ``action``, ``action_name``) and the outcome rows that have arrived for them: what
    ``policy.update_from_log`` would read from the log and the outcomes table, without re-reading the whole log at
    every refresh. Resolved decisions are settled in an :class:`~bandit.attribution.AppliedEvents` ledger, so none
    is learned twice.
    """

    def __init__(self, episode: Episode, start: int, stop: int, kind: str, reward: str, reward_scale: float,
                 log_dir: str | Path | None) -> None:
        import tempfile

        from bandit.attribution import AppliedEvents
        from bandit.decision_log import DecisionLog

        self.episode, self.start = episode, start
        self.tmp = None
        if log_dir is None:
            self.tmp = tempfile.TemporaryDirectory(prefix="upsell-sim-log-")
            log_dir = self.tmp.name
        self.log_dir = Path(log_dir)
        if self.log_dir.exists() and any(self.log_dir.glob("part-*.parquet")):
            raise ValueError(f"log_dir {str(self.log_dir)!r} already holds a decision log; give each run its own")
        self.log = DecisionLog(self.log_dir, arms=episode.arm_names, policy_name=kind, extra_columns={"step": "int64"})
        n = stop - start
        self.names = np.array(episode.arm_names, dtype=object)
        self.ids = np.array(_event_ids(np.arange(start, stop)), dtype=object)
        self.ts_us = episode.timestamps[start:stop].astype("datetime64[us]").astype(np.int64)
        self.times = pd.DatetimeIndex(self.ts_us.astype("datetime64[us]")).tz_localize("UTC")
        self.window = pd.Timedelta(days=episode.attribution_window_days)
        self.window_us = int(self.window // pd.Timedelta(microseconds=1))
        self.arrival_us = np.full(n, np.iinfo(np.int64).max)  # when a conversion's outcome row arrives
        self.outcome_reward = np.zeros(n)
        self.reward, self.reward_scale = reward, reward_scale
        self.pending = np.empty(0, dtype=np.int64)  # positions not resolved yet, in decision order
        self.ledger = AppliedEvents()

    def log_decisions(self, local: np.ndarray, actions: np.ndarray, propensities: np.ndarray,
                      probabilities: np.ndarray, eligible: np.ndarray, version: str) -> None:
        """Append the batch at positions ``local`` (world arm indices, K columns) to the decision log."""
        from bandit.decision import BatchDecision
        from bandit.decision_log import NoExplorationWarning

        idx = actions[local]
        batch = BatchDecision(
            indices=idx, arms=self.names[idx].tolist(), propensities=propensities[local],
            probabilities=probabilities[local], scores=np.zeros_like(probabilities[local]),
            event_ids=self.ids[local].tolist(), policy_version=str(version), eligible=eligible[local],
        )
        with warnings.catch_warnings():
            # greedy policies and the oracle do not explore: expected in a simulation, not worth a warning
            warnings.simplefilter("ignore", NoExplorationWarning)
            self.log.append_batch(batch, self.episode.X[local + self.start], timestamps=self.times[local],
                                  extra={"step": (local + self.start).tolist()})
        self.pending = np.concatenate([self.pending, local])

    def record_outcomes(self, local: np.ndarray, out: Outcomes, idx: np.ndarray) -> None:
        """Schedule an outcome row for each conversion (arriving ``delay`` days after its decision)."""
        conv = out.converted
        delay_us = np.round(np.where(conv, out.delay_days, 0.0) * _US_PER_DAY).astype(np.int64)
        self.arrival_us[local[conv]] = self.ts_us[local[conv]] + delay_us[conv]
        if self.reward == "conversion":
            self.outcome_reward[local] = 1.0
        else:
            rows = local + self.start
            self.outcome_reward[local] = self.episode.net_value[rows, idx] / self.reward_scale

    def attribute(self, policy: Any, name: str, actions: np.ndarray, now_step: int) -> np.ndarray:
        """Resolve the rewards known at the timestamp of episode row ``now_step`` and feed them to ``policy``.

        ``policy`` None (the oracle) only resolves. Returns the positions resolved by this call.
        """
        from bandit.attribution import apply_log, resolve_rewards

        now = pd.Timestamp(int(self.ts_us[now_step - self.start]), unit="us", tz="UTC")
        now_us = now.value // 1000
        # only decisions that can resolve now -- an outcome has arrived or the window has passed -- are passed on:
        # the others would only be reported pending (the attribution rules decide each decision on its own rows)
        p = self.pending
        p = p[(self.arrival_us[p] <= now_us) | (self.ts_us[p] + self.window_us < now_us)]
        decisions = pd.DataFrame({
            "event_id": self.ids[p], "timestamp": self.times[p],
            "context": list(self.episode.X[p + self.start]), "action": actions[p].astype(np.int32),
            "action_name": self.names[actions[p]],
        })
        arrived = p[self.arrival_us[p] <= now_us]
        outcomes = pd.DataFrame({
            "event_id": self.ids[arrived],
            "timestamp": pd.DatetimeIndex(self.arrival_us[arrived].astype("datetime64[us]")).tz_localize("UTC"),
            "reward": self.outcome_reward[arrived],
        })
        label = ORACLE if policy is None else type(policy).__name__
        try:
            if policy is None:
                res = resolve_rewards(decisions, outcomes, self.window, now=now)
                ids, rejected = res.resolved["event_id"].to_numpy(dtype=object), res.rejected
            else:
                report = apply_log(policy, decisions, outcomes, self.window, now=now, applied=self.ledger)
                ids, rejected = np.array(report.event_ids, dtype=object), report.rejected
        except ValueError as err:
            raise ConfigError(f"policy {name!r} ({label}) cannot learn from reward={self.reward!r} rewards: {err}") from None
        if len(rejected):
            first = rejected.iloc[0]
            raise ConfigError(
                f"policy {name!r} ({label}) cannot learn from reward={self.reward!r} rewards: {first['reason']} "
                f"({first['detail']})"
            )
        done = np.array([int(e[4:]) for e in ids], dtype=np.int64) - self.start
        self.pending = np.setdiff1d(self.pending, done, assume_unique=True)
        return done

    def close(self) -> None:
        self.log.close()


def _rewards(reward: str, attributed: np.ndarray, revenue: np.ndarray, scale: float) -> np.ndarray:
    return attributed.astype(np.float64) if reward == "conversion" else revenue / scale


def _add_new_arm(policy: Any, name: str, new_arm: Arm | None, episode: Episode, notes: list[str]) -> bool:
    """Append ``new_arm`` to ``policy``; False (and a note) when the policy cannot add arms."""
    label = episode.arm_names[-1]
    if new_arm is None:
        raise ValueError(f"launch_step is set but no new_arm was given to add {label!r} to policy {name!r}")
    add = getattr(policy, "add_arm", None)
    if add is None:
        notes.append(f"{name}: {type(policy).__name__} has no add_arm(); the new plan {label!r} was never offered")
        return False
    add(new_arm)
    return True


# ----------------------------------------------------------------------------------------------------------------
# metrics
# ----------------------------------------------------------------------------------------------------------------


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
    the new plan to who get it from the policy, and ``precision`` the share of the policy's new-plan offers that
    go to such users. The new plan is learned in the first window where both reach ``fraction``: the policy's
    correctly targeted share of the new plan is at least ``fraction`` of the oracle's share and of its own share
    (so neither ignoring the plan nor offering it to everyone counts as learning it).

    Parameters
    ----------
    actions, best : ndarray of int, shape (n,)
        The policy's and the oracle's arms at ``steps``.
    new_index : int
        Index of the new plan.
    steps : ndarray of int, shape (n,)
    launch_step, window : int
    fraction : float

    Returns
    -------
    uptake : pandas.DataFrame
        Per window: ``window_end``, ``steps_since_launch``, ``share`` (policy's new-plan share), ``oracle_share``,
        ``recall``, ``precision`` (NaN when undefined).
    time_to_learn : float
        Steps after the launch at the end of the first window where ``min(recall, precision) >= fraction``; NaN if
        none.

    Examples
    --------
    >>> steps = np.arange(12)
    >>> best = np.array([0, 1, 1, 0, 1, 1, 1, 0, 1, 1, 0, 1])
    >>> actions = np.array([0, 0, 0, 0, 1, 0, 1, 1, 1, 1, 0, 1])
    >>> up, ttl = time_to_learn(actions, best, 1, steps, launch_step=2, window=2, fraction=0.75)
    >>> up[["recall", "precision"]].to_numpy().tolist()
    [[0.0, nan], [0.5, 1.0], [1.0, 0.5], [1.0, 1.0], [1.0, 1.0]]
    >>> ttl
    8.0
    """
    post = steps >= launch_step
    a, b, s = actions[post], best[post], steps[post]
    rows = []
    ttl = math.nan
    for lo in range(0, a.shape[0], window):
        hi = min(lo + window, a.shape[0])
        pa, po = a[lo:hi] == new_index, b[lo:hi] == new_index
        hit = float((pa & po).sum())
        recall = hit / po.sum() if po.any() else math.nan
        precision = hit / pa.sum() if pa.any() else math.nan
        since = int(s[hi - 1] - launch_step + 1)
        rows.append(
            {"window_end": int(s[hi - 1]) + 1, "steps_since_launch": since, "share": float(pa.mean()),
             "oracle_share": float(po.mean()), "recall": recall, "precision": precision}
        )
        if math.isnan(ttl) and not (math.isnan(recall) or math.isnan(precision)) and min(recall, precision) >= fraction:
            ttl = float(since)
    columns = ["window_end", "steps_since_launch", "share", "oracle_share", "recall", "precision"]
    return pd.DataFrame(rows, columns=columns), ttl


# ----------------------------------------------------------------------------------------------------------------
# decision logs and offline evaluation
# ----------------------------------------------------------------------------------------------------------------


def _event_ids(steps: np.ndarray) -> list[str]:
    return [f"evt-{s:08d}" for s in steps]


def _outcomes_table(run: PolicyRun, episode: Episode) -> Any:
    """Raw conversions that arrived by the end of the run (attributed or not): ``event_id``, ``timestamp`` (arrival),
    ``reward`` (1.0, or the scaled net value for value rewards) and ``revenue`` (net value)."""
    import pyarrow as pa

    from offline_eval.schema import TIMESTAMP_TYPE, outcome_schema

    n = run.stop - run.start
    ts = episode.timestamps[run.start : run.stop].astype(np.int64)
    delay = np.where(run.outcomes.converted, run.outcomes.delay_days, 0.0)
    arrival = ts + np.round(delay * _US_PER_DAY).astype(np.int64)
    keep = run.outcomes.converted & (arrival <= ts[-1])
    net = episode.net_value[run.start : run.stop][np.arange(n), run.actions]
    reward = np.ones(n) if run.reward_mode == "conversion" else net / run.reward_scale
    ids = np.array(_event_ids(run.steps), dtype=object)
    return pa.Table.from_arrays(
        [
            pa.array(ids[keep], pa.string()),
            pa.array(arrival[keep], TIMESTAMP_TYPE),
            pa.array(reward[keep], pa.float64()),
            pa.array(net[keep], pa.float64()),
        ],
        schema=outcome_schema([pa.field("revenue", pa.float64())]),
    )


def logged_data(run: PolicyRun, episode: Episode, rows: np.ndarray | None = None) -> Any:
    """The run's decisions with a final outcome (``run.mature``), as :class:`offline_eval.LoggedData` whose reward
    is the attributed revenue.

    ``rows`` (positions in the run, default all) restricts it further, e.g. to the later part of a chronological
    split; rows without a final outcome are left out whatever ``rows`` says.
    """
    from offline_eval import LoggedData

    keep = _final_rows(run, rows)
    steps = keep + run.start
    return LoggedData(
        episode.X[steps],
        run.actions[keep],
        run.outcomes.revenue[keep],
        run.propensities[keep],
        probabilities=run.probabilities[keep],
        eligible=run.eligible[keep],
        timestamp=episode.timestamps[steps],
        event_id=np.array(_event_ids(steps), dtype=object),
        action_names=episode.arm_names,
    )


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


# ----------------------------------------------------------------------------------------------------------------
# the whole simulation
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class SimulationResult:
    """Everything a simulation produced.

    Attributes
    ----------
    config : SimulationConfig
    episode : Episode
    runs : dict of str to PolicyRun
    logging_run : PolicyRun or None
        The uniform-random logging run used for off-policy evaluation.
    metrics : pandas.DataFrame
        Per policy and batch end: ``step``, ``cum_revenue``, ``cum_conversions``, ``cum_expected_value``,
        ``cum_oracle_value``, ``cum_regret``.
    arm_share : pandas.DataFrame
        Per policy (and ``"oracle (reference)"``) and window: ``window_start``, ``window_end``, ``arm``, ``share``.
    uptake : pandas.DataFrame
        Per policy and window after the launch (see :func:`time_to_learn`).
    summary : pandas.DataFrame
        One row per policy (columns in :meth:`to_markdown`).
    ope : pandas.DataFrame or None
        The full off-policy evaluation table.
    notes : list of str
    ope_description : str
        What the ``ope_*``, ``true_value`` and ``online_value`` columns of ``summary`` compare (for the report).
    """

    config: SimulationConfig
    episode: Episode
    runs: dict[str, PolicyRun]
    logging_run: PolicyRun | None
    metrics: pd.DataFrame
    arm_share: pd.DataFrame
    uptake: pd.DataFrame
    summary: pd.DataFrame
    ope: pd.DataFrame | None
    notes: list[str]
    ope_description: str = (
        "Each policy's final state evaluated on the uniform-random logging run's logs (recommended estimator), "
        "against its exact value on those users (`true_value`) and the revenue per event it realised online "
        "while learning (`online_value`)."
    )

    def to_markdown(self, files: Mapping[str, Path] | None = None) -> str:
        """A short markdown report: setup, the per-policy table, OPE vs truth, notes and output files."""
        cfg = self.config
        lines = [
            "# Upsell simulation",
            "",
            f"- seed {cfg.seed}, {cfg.horizon:,} events, refresh every {cfg.batch_size} events, reward "
            f"`{cfg.reward}`, arm value `{cfg.catalog.value}`, long-term weight {cfg.world.long_term_weight:g}",
            f"- arms: {', '.join(self.episode.arm_names)}"
            + (f" (`{self.episode.arm_names[-1]}` launched at step {cfg.launch_step:,})" if cfg.launch_step else ""),
            "",
            "## Policies",
            "",
            markdown_table(self.summary, _SUMMARY_COLUMNS),
            "",
            "`revenue` is the realised attributed net value and `regret` the exact expected regret against the oracle "
            "(currency).",
        ]
        if cfg.launch_step is not None:
            lines[-1] += (
                " `regret_per_event_after_launch` is the regret per event from the launch on."
                f" `time_to_learn` counts steps after the launch until, within a window of {cfg.output.share_window:,} "
                f"offers, the policy offers the new plan to {cfg.output.learn_fraction:.0%} of the users the oracle "
                f"offers it to, with {cfg.output.learn_fraction:.0%} of its new-plan offers going to those users "
                "(n/a: not within the run)."
            )
        if "ope_value" in self.summary:
            lines += [
                "",
                "## Offline estimate vs truth",
                "",
                self.ope_description,
                "",
                markdown_table(self.summary, ["policy", "ope_estimator", "ope_value", "ope_ci_low", "ope_ci_high",
                                               "true_value", "online_value"]),
            ]
        if self.notes:
            lines += ["", "## Notes", "", *(f"- {n}" for n in self.notes)]
        if files:
            lines += ["", "## Files", "", *(f"- {k}: `{v}`" for k, v in files.items())]
        return "\n".join(lines) + "\n"

    def save(self, out_dir: str | Path, plots: bool | None = None, logs: bool | None = None) -> dict[str, Path]:
        """Write CSV tables, Parquet decision logs, PNG plots and ``summary.md`` under ``out_dir``.

        Returns
        -------
        dict of str to Path
            What was written, by kind.
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        plots = self.config.output.plots if plots is None else plots
        logs = self.config.output.decision_logs if logs is None else logs
        files: dict[str, Path] = {}
        for key, df in (("summary", self.summary), ("metrics", self.metrics), ("arm_share", self.arm_share),
                        ("uptake", self.uptake), ("ope", self.ope)):
            if df is not None:
                files[key] = out / f"{key}.csv"
                df.to_csv(files[key], index=False)
        files["config"] = out / "config.json"
        files["config"].write_text(self.config.model_dump_json(indent=2))
        if logs:
            runs = dict(self.runs)
            if self.logging_run is not None:
                runs["logging_uniform"] = self.logging_run
            files["decision_logs"] = write_decision_logs(runs, self.episode, out / "logs")
        if plots:
            from bandit.simulation import plots as P

            files.update(P.plot_all(self, out / "plots"))
        files["summary_md"] = out / "summary.md"
        files["summary_md"].write_text(self.to_markdown(files))
        return files


_SUMMARY_COLUMNS = [
    "policy", "type", "events", "revenue", "conversions", "revenue_per_event", "regret", "regret_per_event",
    "regret_per_event_after_launch", "new_plan_share", "oracle_new_plan_share", "time_to_learn", "seconds",
]


def markdown_table(df: pd.DataFrame, columns: Sequence[str]) -> str:
    cols = [c for c in columns if c in df.columns]
    head = "| " + " | ".join(cols) + " |"
    sep = "|" + "|".join("---" for _ in cols) + "|"
    body = []
    for _, row in df[cols].iterrows():
        cells = []
        for c in cols:
            v = row[c]
            if isinstance(v, (float, np.floating)):
                x = float(v)
                cells.append("n/a" if math.isnan(x) else f"{x:,.4g}" if abs(x) < 1e4 else f"{x:,.0f}")
            elif isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
                cells.append(f"{v:,}")
            else:
                cells.append(str(v))
        body.append("| " + " | ".join(cells) + " |")
    return "\n".join([head, sep, *body])


def write_decision_logs(runs: Mapping[str, PolicyRun], episode: Episode, directory: str | Path) -> Path:
    """Write each run's decision log and outcomes under ``directory/<policy>/``.

    Layout: ``decisions/`` (the :class:`bandit.DecisionLog` the run wrote as it decided, copied part by part:
    the decision-log schema with a null ``reward`` and an extra ``step`` column; readable by
    ``bandit.decision_log.read_decision_log``, ``offline_eval.LoggedData.from_parquet`` and ``upsell-bandit
    evaluate --logs``) and ``outcomes.parquet`` (the conversions that arrived by the end of the run, attributed or
    not: ``event_id``, ``timestamp`` of arrival, ``reward`` -- 1.0, or the scaled net value for value rewards --
    and ``revenue``, the net value). Join them with ``bandit.attribution.join_outcomes`` /
    ``policy.update_from_log`` or ``upsell-bandit evaluate --outcomes``, under the world's attribution window.
    The outcomes file is written to a dot-prefixed temporary name and renamed.

    Returns
    -------
    Path
        ``directory``.
    """
    import shutil

    import pyarrow.parquet as pq

    root = Path(directory)
    for label, run in runs.items():
        if run.log_dir is None or not run.log_dir.is_dir():
            raise ValueError(f"run {label!r} has no decision log directory to write")
        target = root / label / "decisions"
        target.mkdir(parents=True, exist_ok=True)
        for part in sorted(run.log_dir.glob("part-*.parquet")):
            shutil.copyfile(part, target / part.name)
        out = root / label / "outcomes.parquet"
        tmp = out.with_name("." + out.name + ".tmp")
        pq.write_table(_outcomes_table(run, episode), tmp)
        tmp.replace(out)
    return root


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
    return row


def run_simulation(config: SimulationConfig, progress: bool | None = None) -> SimulationResult:
    """Run every configured policy on the configured world (common random numbers) and collect the metrics.

    Parameters
    ----------
    config : SimulationConfig
    progress : bool, optional
        Report progress on stderr (default ``config.output.progress``).

    Returns
    -------
    SimulationResult
        Call :meth:`SimulationResult.save` to write tables, logs, plots and the summary.

    Raises
    ------
    ConfigError
        A policy rejects its parameters.
    """
    if not isinstance(config, SimulationConfig):
        raise TypeError(f"config must be a SimulationConfig, got {type(config).__name__}")
    catalog = config.catalog.build(with_new_plan=config.launch_step is not None)
    world = UpsellWorld(config.world, catalog, launch_step=config.launch_step, seed=config.seed)
    episode = world.episode(config.horizon)
    unit = config.reward == "value"
    arms = world.arms(include_new=False, unit_values=unit)
    new_arm = world.arms(include_new=True, unit_values=unit)[-1] if catalog.has_new_plan else None
    scale = float(catalog.values.max())
    d = world.featurizer.n_features
    policies = {
        spec.name: build_policy(spec, arms, d, config.seed, i) for i, spec in enumerate(config.policies)
    }
    n_runs = len(policies) + int(config.offline_eval.enabled)
    tracker = Progress(n_runs * config.horizon, enabled=config.output.progress if progress is None else progress)
    def run(policy: Any, label: str) -> PolicyRun:
        return run_policy(episode, policy, name=label, batch_size=config.batch_size, launch_step=config.launch_step,
                          new_arm=new_arm, reward=config.reward, reward_scale=scale, progress=tracker)

    runs = {label: run(pol, label) for label, pol in policies.items()}
    logging_run = None
    if config.offline_eval.enabled:
        logger = build_policy(PolicyConfig(name="logging_uniform", type="UniformRandom"), arms, d, config.seed + 1)
        logging_run = run(logger, "logging_uniform")
    return _collect(config, episode, runs, logging_run)


def _collect(
    config: SimulationConfig, episode: Episode, runs: dict[str, PolicyRun], logging_run: PolicyRun | None
) -> SimulationResult:
    out = config.output
    names = episode.arm_names
    launch_step = config.launch_step
    new_index = len(names) - 1 if launch_step is not None else None
    metrics = pd.concat([_cumulative(r, config.batch_size) for r in runs.values()], ignore_index=True)
    oracle_best = episode.best_arms()
    shares = [_arm_share(r.actions, r.start, out.share_window, names, r.name) for r in runs.values()]
    lo, hi = min(r.start for r in runs.values()), max(r.stop for r in runs.values())
    shares.append(_arm_share(oracle_best[lo:hi], lo, out.share_window, names, "oracle (reference)"))
    arm_share = pd.concat(shares, ignore_index=True)
    rows, uptakes = [], []
    for r in runs.values():
        row = _summary_row(r, episode, config, new_index)
        if new_index is not None and launch_step is not None:
            up, ttl = time_to_learn(r.actions, oracle_best[r.start : r.stop], new_index, r.steps,
                                    launch_step, out.share_window, out.learn_fraction)
            up.insert(0, "policy", r.name)
            uptakes.append(up)
            row["time_to_learn"] = ttl
        rows.append(row)
    summary = pd.DataFrame(rows)
    uptake = pd.concat(uptakes, ignore_index=True) if uptakes else pd.DataFrame(
        columns=["policy", "window_end", "steps_since_launch", "share", "oracle_share", "recall", "precision"])
    ope = None
    if logging_run is not None:
        frozen = {label: (r.policy if r.policy is not None else OraclePolicy()) for label, r in runs.items()}
        ope, _ = offline_evaluate(logging_run, episode, frozen, config.offline_eval.estimators)
        best = ope[ope["recommended"]].set_index("policy")
        summary["ope_estimator"] = summary["policy"].map(best["estimator"])
        for col in ("value", "ci_low", "ci_high"):
            summary[f"ope_{col}"] = summary["policy"].map(best[col])
        summary["true_value"] = summary["policy"].map(best["true_value"])
        summary["online_value"] = summary["revenue_per_event"]
    notes = [n for r in runs.values() for n in r.notes]
    return SimulationResult(config, episode, runs, logging_run, metrics, arm_share, uptake, summary, ope, notes)


# ----------------------------------------------------------------------------------------------------------------
# the demo
# ----------------------------------------------------------------------------------------------------------------


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
    reports seed 0), l2 = 1 for every policy, comparing post-launch regret per event and, for the new plan, the
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
      large arm_l2 leans on them harder. arm_l2 = 1 (the default).
    """
    import bandit

    return {
        "linucb": bandit.LinUCB(arms, n_features=d, alpha=0.5, seed=seed),
        "linear_ts": bandit.LinearTS(arms, n_features=d, seed=seed),
        "epsilon_greedy": bandit.EpsilonGreedy(arms, n_features=d, epsilon=0.05, seed=seed),
        "hybrid_linucb": bandit.HybridLinUCB(arms, n_features=d, alpha=0.5, arm_l2=1.0, seed=seed),
        "hybrid_linear_ts": bandit.HybridLinearTS(arms, n_features=d, arm_l2=1.0, seed=seed),
    }


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
        The candidate with the highest lower confidence bound.
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

    def save(self, out_dir: str | Path) -> dict[str, Path]:
        """Write ``summary.md``, ``demo.md``, CSV tables, decision logs (Parquet) and plots under ``out_dir``."""
        files = self.result.save(out_dir, plots=True, logs=True)
        files["demo_md"] = Path(out_dir) / "demo.md"
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
    logger = build_policy(PolicyConfig(name="logging_uniform", type="UniformRandom"), arms, d, seed + 1)
    log_run = run_policy(episode, logger, name="logging_uniform", batch_size=sizes.batch_size,
                         start=0, stop=sizes.n_log, progress=tracker)
    say(f"1. logged {sizes.n_log:,} uniform-random offers")

    # 2. chronological split of the decisions with a final outcome: fit on the earlier half, evaluate on the later
    final = np.flatnonzero(log_run.mature)
    fit, held_out = final[: final.size // 2], final[final.size // 2 :]
    from bandit.decision_log import read_decision_log

    if log_run.log_dir is None:
        raise RuntimeError("the logging run has no decision log")
    logged = read_decision_log(log_run.log_dir)
    outcomes = _outcomes_table(log_run, episode).to_pandas()
    now = logged["timestamp"].iloc[-1]  # the end of the logging period: every fitted decision's window has closed
    for label, pol in cands.items():
        report = pol.update_from_log(logged.iloc[fit], outcomes, pd.Timedelta(days=episode.attribution_window_days),
                                     now=now)
        if report.n_applied != fit.size:
            raise RuntimeError(f"{label} learned from {report.n_applied} of the {fit.size} fitted decisions")
    say(f"2. fitted {len(cands)} candidates on the {fit.size:,} earlier logged decisions with a final outcome: "
        + ", ".join(cands))

    # 3. off-policy evaluation with intervals, on the later decisions only
    ope_table, _ = offline_evaluate(log_run, episode, cands, ["SNIPS", "DR"], rows=held_out)
    rec = ope_table[ope_table["recommended"]].set_index("policy")
    chosen = str(rec["ci_low"].idxmax())
    say(f"3-4. offline estimates on the {held_out.size:,} later decisions (revenue/offer, true value in the "
        "simulation): "
        + ", ".join(f"{p} {rec.loc[p, 'value']:.3f} [{rec.loc[p, 'ci_low']:.3f}, {rec.loc[p, 'ci_high']:.3f}] "
                    f"(true {rec.loc[p, 'true_value']:.3f})" for p in rec.index)
        + f" -> chosen: {chosen}")

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
        seconds=time.perf_counter() - t_start,
    )
    s = result.summary.set_index("policy")
    say(f"5-6. {chosen} rolled out: offline estimate {s.loc[chosen, 'ope_value']:.3f} (true value on the "
        f"evaluation users {s.loc[chosen, 'true_value']:.3f}), true value of the fitted policy on the roll-out "
        f"users {s.loc[chosen, 'rollout_true_value']:.3f}, realised {s.loc[chosen, 'online_value']:.3f} "
        "revenue/offer")
    ttl = s["time_to_learn"].map(lambda v: "-" if math.isnan(v) else f"{v:,.0f}")
    say(f"7. new plan 'basic' launched at step {launch:,}; time to learn (steps) / regret per offer after the "
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
        "95% intervals; `recommended` = estimator with the smallest estimated error; `true_value` is the exact "
        "value of the fitted policy on the same users, known in the simulation, and `covered` says whether the "
        "interval holds it:",
        "",
        markdown_table(result.ope, ["policy", "estimator", "value", "ci_low", "ci_high", "true_value", "covered",
                                     "ess", "recommended"]),
        "",
        f"4. **Pick**: `{chosen}` (highest lower confidence bound).",
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
        f"{_COLD_START_EVENTS:,} offers after the launch who could be offered it: {guesses}; a fresh disjoint arm "
        f"guesses 0 for everyone (RMSE {fresh_rmse:.4f}). The cost of learning it: regret per offer over the roll-out "
        f"and after the launch, and the time to learn the plan: steps until, within a window of {sizes.share_window:,} "
        f"offers, the policy offers it to {result.config.output.learn_fraction:.0%} of the users the oracle offers it "
        "to, with at least that share of its new-plan offers going to them:",
        "",
        markdown_table(result.summary, ["policy", "revenue_per_event", "regret_per_event",
                                         "regret_per_event_after_launch", "new_plan_share", "oracle_new_plan_share",
                                         "time_to_learn", "new_plan_first_guess_rmse"]),
        "",
        f"Chosen policy `{chosen}`: offline estimate {s.loc[chosen, 'ope_value']:.3f} "
        f"[{s.loc[chosen, 'ope_ci_low']:.3f}, {s.loc[chosen, 'ope_ci_high']:.3f}], true value "
        f"{s.loc[chosen, 'true_value']:.3f} on the evaluation users and {s.loc[chosen, 'rollout_true_value']:.3f} on "
        f"the roll-out users, realised {s.loc[chosen, 'online_value']:.3f}.",
        "",
        "## Files",
        "",
        *(f"- {k}: `{v}`" for k, v in files.items()),
    ]
    return "\n".join(lines) + "\n"
