"""The simulator's run loop: one policy on an episode, deciding, logging and learning as in production.

How a run works
---------------
:func:`run_policy` walks an :class:`~bandit.simulation.world.Episode` in batches of ``batch_size`` events (a batch
also ends at the launch step), driving the production loop end to end. For each batch the policy decides every
event with its **current** state (``choose_batch`` with the world's eligibility mask); the decisions are written to
a :class:`bandit.DecisionLog` (``append_batch``, one log per run under the world's arm list); the world reveals the
potential outcomes of the chosen arms, and each conversion becomes an outcome row (``event_id``, arrival
``timestamp``, ``reward``) when it arrives -- as does each cancellation, with reward 0 (:func:`outcomes_table`). At the batch's last timestamp ``now`` the policy learns from the
decisions whose reward is known by then through :func:`bandit.attribution.apply_log` -- the code behind
``policy.update_from_log`` and ``join_outcomes``, with an explicit ``now``: a conversion that arrived inside the
attribution window gives reward 1 (or its value), a decision whose window has passed without one gives 0, the rest
wait. At the launch step the catalog's new plan is appended to the policy (``add_arm``, with its arm features, so a
hybrid policy scores it before its first impression); a policy without ``add_arm`` keeps its arms and the run
records a note.

Every policy meets the same users and the same potential outcomes (common random numbers, drawn once per world
seed), so differences between policies are differences in choices, not luck of the draw.
"""

from __future__ import annotations

import inspect
import math
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bandit.arms import Arm
from bandit.simulation.config import ORACLE, ConfigError, PolicyConfig, policy_types
from bandit.simulation.world import Episode, Outcomes

__all__ = ["LEARN_AT", "OraclePolicy", "PolicyRun", "Progress", "build_policy", "outcomes_table", "run_policy"]

_US_PER_DAY = 86_400_000_000
#: When a run learns a decision's outcome (see :func:`run_policy`'s ``learn_at``).
LEARN_AT = ("arrival", "window_close")


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
    learn_at: str = "arrival",
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
    learn_at : {"arrival", "window_close"}
        When a decision's outcome is learned. ``"arrival"`` (what ``update_from_log`` does in production): a
        conversion as soon as its outcome row arrives, a non-conversion when its attribution window closes.
        ``"window_close"``: every decision when its window closes, conversion or not. Learning at arrival feeds
        conversions before the non-conversions of the same decisions, so for about one window the learned outcomes
        of an arm shown mostly recently (a new plan) are nearly all conversions; learning at window close waits one
        window for every outcome but never sees that bias.

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
    if learn_at not in LEARN_AT:
        raise ValueError(f"learn_at must be one of {list(LEARN_AT)}, got {learn_at!r}")
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
    flow = _LogFlow(episode, start, stop, kind, reward, reward_scale, log_dir, learn_at)
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
                 log_dir: str | Path | None, learn_at: str = "arrival") -> None:
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
        self.learn_at = learn_at

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
        """Schedule an outcome row for each conversion (arriving ``delay`` days after its decision) and each
        cancellation (reward 0; see :func:`outcomes_table`)."""
        rows = local + self.start
        has, delay, _ = _outcome_rows(self.episode, rows, idx, out)
        delay_us = np.round(delay * _US_PER_DAY).astype(np.int64)
        self.arrival_us[local[has]] = self.ts_us[local[has]] + delay_us[has]
        if self.reward == "conversion":
            self.outcome_reward[local] = np.where(out.converted, 1.0, 0.0)
        else:
            self.outcome_reward[local] = np.where(
                out.converted, self.episode.net_value[rows, idx] / self.reward_scale, 0.0
            )

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
        closed = self.ts_us[p] + self.window_us < now_us
        p = p[closed] if self.learn_at == "window_close" else p[(self.arrival_us[p] <= now_us) | closed]
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


def _event_ids(steps: np.ndarray) -> list[str]:
    return [f"evt-{s:08d}" for s in steps]


def _outcome_rows(
    episode: Episode, rows: np.ndarray, arms: np.ndarray, out: Outcomes
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(has_row, delay_days, cancelled)`` of offering ``arms`` at ``rows``: which events produce an outcome row
    and when it arrives -- a conversion after its delay, a cancellation (no conversion) ``delay mod window`` days
    after the decision (the unused potential delay: no new randomness). An episode without guardrail outcomes has
    no cancellations."""
    if episode.cancel_probability is None:
        cancelled = np.zeros(rows.shape[0], dtype=np.bool_)
    else:
        cancelled = episode.guardrail_outcomes(rows, arms).cancelled
    window = float(episode.attribution_window_days)
    delay = np.where(out.converted, out.delay_days, np.fmod(episode.delay_days[rows, arms], window))
    has = out.converted | cancelled
    return has, np.where(has, delay, 0.0), cancelled


def outcomes_table(run: PolicyRun, episode: Episode) -> Any:
    """The run's outcomes table (Arrow, :func:`offline_eval.schema.outcome_schema`): what had arrived by the end of
    the run (its last decision's timestamp).

    Columns: ``event_id``, ``timestamp`` (arrival), ``reward``, ``revenue`` (net value), and the guardrail metrics
    of :meth:`~bandit.simulation.world.Episode.guardrail_outcomes`: ``cancelled`` (1.0 for a cancellation) and
    ``cannibalised`` (monthly value of the paid products a conversion ended). One row per event at most:

    * a **conversion** (attributed or not) arrives ``delay`` days after its decision: ``reward`` 1.0 (or the scaled
      net value for value rewards), ``revenue`` its net value, ``cancelled`` 0, ``cannibalised`` the value it
      ended;
    * a **cancellation** (a paying user who did not convert) arrives inside the attribution window, ``delay mod
      window`` days after its decision (``delay`` is the potential conversion delay the user did not use: no new
      randomness), with ``reward``, ``revenue`` and ``cannibalised`` 0 and ``cancelled`` 1.0.

    These are exactly the rows :class:`_LogFlow` fed the attribution during the run (a cancellation resolves its
    decision to reward 0 when it arrives, before the window closes), so ``policy.update_from_log`` on the file
    learns what the run learned. Joined with :func:`bandit.attribution.join_outcomes` under the attribution window
    (sum of a decision's rows inside it), each metric column gives the per-decision metric.
    """
    import pyarrow as pa

    from offline_eval.schema import TIMESTAMP_TYPE, outcome_schema

    n = run.stop - run.start
    rows = run.steps
    ts = episode.timestamps[run.start : run.stop].astype(np.int64)
    converted = run.outcomes.converted
    has, delay, cancelled = _outcome_rows(episode, rows, run.actions, run.outcomes)
    if episode.cancel_probability is None:
        cannibalised = np.zeros(n)
    else:
        cannibalised = episode.guardrail_outcomes(rows, run.actions).cannibalised
    arrival = ts + np.round(delay * _US_PER_DAY).astype(np.int64)
    keep = has & (arrival <= ts[-1])
    net = episode.net_value[run.start : run.stop][np.arange(n), run.actions]
    reward = np.ones(n) if run.reward_mode == "conversion" else net / run.reward_scale
    reward = np.where(converted, reward, 0.0)
    revenue = np.where(converted, net, 0.0)
    ids = np.array(_event_ids(rows), dtype=object)
    return pa.Table.from_arrays(
        [
            pa.array(ids[keep], pa.string()),
            pa.array(arrival[keep], TIMESTAMP_TYPE),
            pa.array(reward[keep], pa.float64()),
            pa.array(revenue[keep], pa.float64()),
            pa.array(cancelled[keep].astype(np.float64), pa.float64()),
            pa.array(cannibalised[keep], pa.float64()),
        ],
        schema=outcome_schema(
            [pa.field("revenue", pa.float64()), pa.field("cancelled", pa.float64()),
             pa.field("cannibalised", pa.float64())]
        ),
    )
