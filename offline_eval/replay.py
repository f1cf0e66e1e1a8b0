"""Replay: run a candidate policy -- fixed or learning -- through the logs as if it had been online.

Walking through the logged rows in time order, the candidate is shown each context and a row is *accepted* when
the candidate would have taken the logged action, thinned so that the accepted events are distributed as if the
candidate had chosen them itself. A learning candidate then learns from the accepted events only, in order,
optionally in batches. The mean reward of the accepted events estimates the candidate's expected reward per
decision online; the sequence of accepted events is its learning curve.

The acceptance rule
-------------------
Row ``i`` (context ``x_i``, logged action ``a_i`` with logging probability ``mu_i = mu(a_i | x_i)``) is accepted
with probability

.. math:: \\pi_t(a_i \\mid x_i) \\, \\frac{M}{\\mu_i}, \\qquad M \\le \\mu(a \\mid x) \\text{ for every arm } a
          \\text{ the logging policy could take},

where :math:`\\pi_t` is the candidate's current distribution. Then
:math:`P(x, a, \\text{accept}) = D(x) \\mu(a|x) \\pi_t(a|x) M / \\mu(a|x) = M \\, D(x) \\pi_t(a|x)`: every row is
accepted with probability ``M`` whatever its context, and an accepted event is a draw of (context, action) from
the candidate -- exactly what it would have seen online (Li et al. 2011, Theorem 1, generalised to non-uniform
logging by rejection sampling). With ``mode="choose"`` the candidate draws its action with ``choose`` and a row is
accepted when that draw equals the logged action, then kept with probability ``M / mu_i``: the same law.

* :class:`Replay` -- logs uniformly random over the eligible arms (``mu_i = 1 / K_i``, ``K_i`` eligible arms).
  ``M = 1 / K_max``: a row whose candidate action matches is kept with probability ``K_i / K_max`` -- always, when
  every row had the same arms (Li et al.'s replay). Keeping every match when ``K_i`` varies would over-represent
  the users with few eligible offers (they match more often).
* :class:`RejectionReplay` -- any logging policy with known propensities: ``M = min_propensity`` (an a-priori
  floor such as ``exploration_floor / K``), or by default the smallest logging probability in the data
  (``data.probabilities`` when logged, else the logged propensities).

Expected rows kept: ``n * M`` (for instance ``n / K`` for uniform logs over K arms). The estimate is unbiased when
the propensities are right, every arm the candidate may choose has a logging probability of at least ``M`` (no
support deficit; reported), the contexts and rewards do not drift (the replayed stream mixes the whole period),
and the candidate only uses the past: it sees rows in timestamp order and learns from accepted rows only. With the
default ``M`` taken from the same data the rule is data-dependent (a small, usually negligible bias); pass
``min_propensity`` when the logging policy's floor is known.

The interval treats the accepted rewards as independent: exact for a fixed candidate, conditional on the number
of rows kept; for a learning candidate it ignores the run-to-run variation of the learning path (replay with
several ``seed`` values to see it).

References
----------
Li, L., Chu, W., Langford, J. and Wang, X. (2011). Unbiased offline evaluation of contextual-bandit-based news
article recommendation algorithms. WSDM.
Dudik, M., Erhan, D., Langford, J. and Li, L. (2012). Sample-efficient nonstationary policy evaluation for
contextual bandits. UAI (rejection sampling with non-uniform logging).
"""

from __future__ import annotations

import copy as _copy
import math
import warnings
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
import pandas as pd

from offline_eval.data import PROBABILITY_ATOL, LoggedData
from offline_eval.diagnostics import DiagnosticWarning, weight_diagnostics
from offline_eval.estimators.base import TARGET_ATOL, Estimate, _policy_arm_names, resolve_target

__all__ = ["RejectionReplay", "Replay", "ReplayResult", "replay"]

ReplayMode = Literal["auto", "probabilities", "choose"]
_MODES = ("auto", "probabilities", "choose")


# ----------------------------------------------------------------------------------------------------------------
# result
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ReplayResult:
    """What a replay found: the value estimate, how many rows it kept, and the learning curve.

    Attributes
    ----------
    estimate : Estimate
        Mean reward per accepted event with its normal interval (``n`` = rows kept); usable wherever an
        :class:`~offline_eval.estimators.Estimate` is (e.g. :func:`offline_eval.power.rows_needed`).
    n_rows : int
        Logged rows replayed.
    n_accepted : int
        Rows kept (accepted events).
    acceptance_rate : float
        ``M``: the probability with which every row is kept; ``n_rows * M`` rows are expected.
    support_deficit : float
        Mean candidate mass on arms with logging probability below ``M`` (0 on arms the log could take with at
        least ``M``); above 0 the estimate is biased. Only known in ``mode="probabilities"`` (NaN otherwise).
    curve : pandas.DataFrame
        One row per accepted event, in replay order: ``event`` (1, 2, ...), ``row`` (index into the data),
        ``timestamp`` (NaT without timestamps), ``arm`` (name), ``reward``, ``cumulative_reward``,
        ``mean_reward`` (cumulative reward per accepted event so far) and ``updates`` (events the candidate had
        learned from when it decided this one).
    policy : object
        The candidate after the replay (a copy of the one passed unless ``copy=False``); what it learned.
    arm_names : list of str
        The log's arms.
    """

    estimate: Estimate
    n_rows: int
    n_accepted: int
    acceptance_rate: float
    support_deficit: float
    curve: pd.DataFrame
    policy: Any
    arm_names: list[str] = field(default_factory=list)

    @property
    def value(self) -> float:
        """Mean reward per accepted event (the estimate of the candidate's reward per decision)."""
        return self.estimate.value

    @property
    def expected_accepted(self) -> float:
        """``n_rows * acceptance_rate``: how many rows a replay of these logs keeps on average."""
        return self.n_rows * self.acceptance_rate

    def arm_shares(self, window: int | None = None, freq: str | None = None) -> pd.DataFrame:
        """Share of each arm among the accepted events over time.

        Parameters
        ----------
        window : int, optional
            Trailing window in accepted events (default ``max(1, n_accepted // 20)``); rows indexed by ``event``.
        freq : str, optional
            A pandas frequency (e.g. ``"D"``, ``"W"``): shares per calendar period of the timestamps instead.

        Returns
        -------
        pandas.DataFrame
            One column per arm (the log's arm order), rows summing to 1.
        """
        onehot = pd.get_dummies(pd.Categorical(self.curve["arm"], categories=self.arm_names)).astype(float)
        if freq is not None:
            if self.curve["timestamp"].isna().all():
                raise ValueError("freq needs timestamps; these logs have none (use window=...)")
            onehot.index = pd.DatetimeIndex(self.curve["timestamp"])
            counts = onehot.resample(freq).sum()
            counts = counts[counts.sum(axis=1) > 0]
            return counts.div(counts.sum(axis=1), axis=0)
        if window is None:
            window = max(1, self.n_accepted // 20)
        if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
            raise ValueError(f"window must be an int >= 1 (accepted events), got {window!r}")
        onehot.index = self.curve["event"]
        return onehot.rolling(int(window), min_periods=1).mean()

    def cost(self, reference: float) -> pd.Series:
        """Cumulative reward given up against ``reference`` (reward per decision), per accepted event.

        ``sum_{j <= t} (reference - reward_j)``: with ``reference`` the value of the policy in place (e.g. a
        ``Replay(learn=False)`` or IPS estimate of it), what learning this candidate costs -- or, once negative,
        gains -- over its first t decisions. Each accepted event stands for one online decision.

        Examples
        --------
        >>> import numpy as np
        >>> from offline_eval import LoggedData
        >>> data = LoggedData(None, [0, 1, 1, 0], [1.0, 0.0, 2.0, 0.0], [0.5] * 4)
        >>> Replay().run(data, 1).cost(reference=0.5).tolist()
        [0.5, -1.0]
        """
        if isinstance(reference, bool) or not isinstance(reference, (int, float, np.integer, np.floating)):
            raise TypeError(f"reference must be a number (reward per decision), got {type(reference).__name__}")
        ref = float(reference)
        if not math.isfinite(ref):
            raise ValueError(f"reference must be a finite reward per decision, got {reference!r}")
        return pd.Series(np.cumsum(ref - self.curve["reward"].to_numpy()), index=self.curve["event"], name="cost")

    def __repr__(self) -> str:
        e = self.estimate
        return (
            f"ReplayResult({e.estimator}: value={e.value:.6g}, {100 * e.level:g}% CI [{e.ci_low:.6g}, "
            f"{e.ci_high:.6g}], kept {self.n_accepted} of {self.n_rows} rows, expected {self.expected_accepted:.1f})"
        )


# ----------------------------------------------------------------------------------------------------------------
# the candidate
# ----------------------------------------------------------------------------------------------------------------


class _Candidate:
    """The candidate's interface, in the log's arm order: probabilities, choices and updates."""

    def __init__(self, obj: Any, data: LoggedData, mode: str, learn: bool, copy: bool) -> None:
        has_probs = callable(getattr(obj, "action_probabilities", None))
        has_choose = callable(getattr(obj, "choose", None))
        has_update = callable(getattr(obj, "update_batch", None)) or callable(getattr(obj, "update", None))
        if mode == "auto":
            mode = "probabilities" if has_probs or not has_choose else "choose"
        if mode == "choose" and not has_choose:
            raise TypeError(f"mode='choose' needs a candidate with choose(context, eligible), got {type(obj).__name__}")
        self.learning = learn and (has_probs or has_choose) and has_update
        if self.learning and getattr(obj, "read_only", False) is True:
            raise TypeError(
                f"candidate {type(obj).__name__} is read-only (a snapshot) and cannot learn; pass learn=False to "
                "replay it as a fixed policy, or pass the live policy"
            )
        if learn and (has_probs or has_choose) and not has_update:
            raise TypeError(
                f"candidate {type(obj).__name__} has no update_batch(X, arms, rewards) or update(x, arm, reward) to "
                "learn with; pass learn=False to replay it as a fixed policy"
            )
        if self.learning and copy:
            try:
                obj = _copy.deepcopy(obj)
            except Exception as err:  # noqa: BLE001 - any failure to copy means the same advice
                raise TypeError(
                    f"candidate {type(obj).__name__} cannot be copied ({err}); pass copy=False to let the replay "
                    "update it in place"
                ) from err
        self.obj = obj
        self.mode = mode
        names = _policy_arm_names(obj, "candidate") if has_probs or has_choose else None
        self.names = names
        log = data.action_names
        if names is None or names == log:
            self.to_own: np.ndarray | None = None  # identity
        else:
            missing = [a for a in log if a not in names]
            if missing:
                raise ValueError(
                    f"candidate has no arm {missing} of the logged arms {log} (its arms: {names}); a candidate must "
                    "know every logged arm"
                )
            self.to_own = np.array([names.index(a) for a in log], dtype=np.int64)
        self.from_own = {} if names is None else {j: log.index(a) for j, a in enumerate(names) if a in log}
        self.data = data

    def own_eligible(self, row: int) -> np.ndarray | None:
        E = self.data.eligible
        if E is None:
            return None
        if self.to_own is None or self.names is None:
            return E[row]
        mask = np.ones(len(self.names), dtype=np.bool_)  # arms the log lacks: eligible, never a match
        mask[self.to_own] = E[row]
        return mask

    def choice(self, row: int) -> int:
        """The log index of the arm the candidate draws for ``row``."""
        d = self.obj.choose(self.data.context[row], self.own_eligible(row))
        own = self.names if self.names is not None else self.data.action_names
        if isinstance(d, str):
            if d not in own:
                raise ValueError(f"candidate.choose returned arm {d!r}, not one of its arms {own}")
            j = own.index(d)
        elif isinstance(d, (int, np.integer)) and not isinstance(d, bool):
            j = int(d)
        elif hasattr(d, "index"):
            j = int(d.index)
        else:
            raise TypeError(
                f"candidate.choose must return a Decision (with .index), an arm index or an arm name, got "
                f"{type(d).__name__}"
            )
        k = j if self.to_own is None else self.from_own.get(j, -1)
        if not 0 <= k < self.data.n_actions:
            raise ValueError(
                f"candidate chose arm {own[j] if 0 <= j < len(own) else j!r} at row {row}, which is not in the logs "
                f"(logged arms: {self.data.action_names}); no logged decision can replay it: retire that arm in a "
                "copy of the candidate (remove_arm) or replay logs that include it"
            )
        return k

    def learn(self, rows: np.ndarray) -> None:
        if not self.learning or not len(rows):
            return
        X, arms, r = self.data.context[rows], self.data.action[rows], self.data.reward[rows]
        own = arms if self.to_own is None else self.to_own[arms]
        if callable(getattr(self.obj, "update_batch", None)):
            self.obj.update_batch(X, own, r)
        else:
            for x, k, reward in zip(X, own, r, strict=True):
                self.obj.update(x, int(k), float(reward))


# ----------------------------------------------------------------------------------------------------------------
# replay
# ----------------------------------------------------------------------------------------------------------------


def _uniform_rows(data: LoggedData) -> tuple[np.ndarray, np.ndarray]:
    """Which rows were logged uniformly at random over their eligible arms, and each row's number of such arms.

    The number of arms comes from ``eligible``, else from the support of ``probabilities``, else it is K (every
    arm eligible).
    """
    p = data.propensity
    if data.eligible is not None:
        k = data.eligible.sum(axis=1)
    elif data.probabilities is not None:
        k = (data.probabilities > 0).sum(axis=1)
    else:
        k = np.full(data.n, data.n_actions)
    uniform = np.abs(p * k - 1.0) <= PROBABILITY_ATOL * k
    if data.probabilities is not None:
        uniform &= (np.abs(data.probabilities - p[:, None]) <= PROBABILITY_ATOL).sum(axis=1) == k
    return uniform, k


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int >= 1, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


@dataclass(frozen=True, kw_only=True)
class Replay:
    """Li et al.'s replay for logs that are uniformly random over the eligible arms (see the module docstring).

    A row is kept when the candidate's action equals the logged one, with probability ``K_i / K_max`` (``K_i``
    eligible arms in the row, ``K_max`` the most in any row; 1 when every row has the same arms). Expected rows
    kept: ``n / K_max``. Unbiased for the candidate's online reward per decision when logging is uniform, the
    world is stationary over the log, and the candidate only uses the past (it is shown the rows in timestamp
    order and learns from accepted rows only).

    Parameters
    ----------
    batch_size : int
        A learning candidate is refreshed every ``batch_size`` accepted events (1: after each), as an online
        policy refreshed in batches would be.
    learn : bool
        Let a candidate that has ``update_batch`` (or ``update``) learn from the accepted events. False replays it
        as a fixed policy (arrays and arms are always fixed).
    mode : {"auto", "probabilities", "choose"}
        How the candidate's action enters: ``"probabilities"`` accepts row i with probability
        ``pi(a_i | x_i) * M / mu_i`` from ``action_probabilities`` (lower variance; the candidate's probabilities
        for a frozen state are computed for many rows at once); ``"choose"`` draws the candidate's action with
        ``choose(context, eligible)`` and keeps a match with probability ``M / mu_i``. ``"auto"``: probabilities
        when the candidate has them.
    copy : bool
        Replay a deep copy of a learning candidate (True) or update the object passed (False).
    alpha : float
        Two-sided error rate of the interval.
    seed : int or None
        Seeds the acceptance draws (a ``choose`` candidate draws its actions from its own generator).

    Examples
    --------
    >>> import numpy as np
    >>> from offline_eval import LoggedData
    >>> rng = np.random.default_rng(0)
    >>> n = 3000
    >>> action = rng.integers(0, 3, size=n)
    >>> reward = (rng.random(n) < np.array([0.1, 0.2, 0.3])[action]).astype(float)
    >>> data = LoggedData(None, action, reward, np.full(n, 1 / 3))
    >>> result = Replay().run(data, 2)  # always offer arm 2
    >>> result.n_accepted, round(result.value, 3), round(result.expected_accepted)
    (1043, 0.303, 1000)

    References
    ----------
    Li, L., Chu, W., Langford, J. and Wang, X. (2011). Unbiased offline evaluation of contextual-bandit-based news
    article recommendation algorithms. WSDM.
    """

    batch_size: int = 1
    learn: bool = True
    mode: ReplayMode = "auto"
    copy: bool = True
    alpha: float = 0.05
    seed: int | None = 0

    def __post_init__(self) -> None:
        _positive_int(self.batch_size, "batch_size")
        if self.mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {self.mode!r}")
        for name in ("learn", "copy"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or not 0 < self.alpha < 1:
            raise ValueError(f"alpha must lie in (0, 1) (0.05 gives a 95% interval), got {self.alpha!r}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer))):
            raise TypeError(f"seed must be an int or None, got {type(self.seed).__name__} {self.seed!r}")

    @property
    def name(self) -> str:
        return type(self).__name__ + (f"(batch_size={self.batch_size})" if self.batch_size != 1 else "")

    # -- the hook: acceptance scale ------------------------------------------------------------------------------

    def acceptance(self, data: LoggedData) -> tuple[np.ndarray, float]:
        """``(M / mu_i per row, M)``: the thinning of a matched row and the overall acceptance rate.

        Raises ``ValueError`` naming ``data.propensity`` when the logs are not uniformly random over the eligible
        arms (use :class:`RejectionReplay` then).
        """
        p = data.propensity
        uniform, k = _uniform_rows(data)
        if not uniform.all():
            bad = np.flatnonzero(~uniform)
            raise ValueError(
                f"data.propensity must be 1 / (number of eligible arms) for Replay (uniformly random logs); "
                f"{len(bad)} of {data.n} rows are not (first at row {bad[0]}: propensity {p[bad[0]]:.6g} with "
                f"{int(k[bad[0]])} eligible arms); use RejectionReplay for non-uniform logging"
            )
        m = 1.0 / float(k.max())
        return np.minimum(m / p, 1.0), m

    # -- the verb ------------------------------------------------------------------------------------------------

    def run(self, data: LoggedData, candidate: Any) -> ReplayResult:
        """Replay ``candidate`` through ``data`` in timestamp order (row order without timestamps).

        Parameters
        ----------
        data : LoggedData
            The logs (with ``timestamp`` for a time-ordered replay).
        candidate : target or policy object
            A fixed target (an (n, K) probability array, an (n,) action array, an arm, a DataFrame; see
            :mod:`offline_eval.estimators.base`), or an object with ``action_probabilities(X, eligible)`` and/or
            ``choose(context, eligible)`` -- e.g. a ``bandit`` policy, from scratch or already trained -- that
            learns through ``update_batch(X, arms, rewards)`` or ``update(x, arm, reward)`` (arms are passed as
            the candidate's indices; a candidate naming its arms in ``arm_names`` is matched to the log by name).

        Returns
        -------
        ReplayResult
        """
        if not isinstance(data, LoggedData):
            raise TypeError(f"data must be an offline_eval.LoggedData, got {type(data).__name__}")
        if data.n < 2:
            raise ValueError(f"data has {data.n} rows; a replay needs at least 2")
        scale, m = self.acceptance(data)
        order = np.arange(data.n) if data.timestamp is None else np.argsort(data.timestamp, kind="stable")
        u = np.random.default_rng(self.seed).random(data.n)
        is_policy = not isinstance(candidate, (np.ndarray, pd.DataFrame, pd.Series)) and (
            callable(getattr(candidate, "action_probabilities", None)) or callable(getattr(candidate, "choose", None))
        )
        deficit = math.nan
        if not is_policy:  # a fixed target: resolve it once
            resolved = resolve_target(data, candidate, name="candidate")
            accept = u[order] < resolved.weights[order] * data.propensity[order] * scale[order]
            rows, updates = order[accept], np.zeros(int(accept.sum()), dtype=np.int64)
            deficit = self._deficit(data, resolved, np.arange(data.n), m)
            policy = candidate
        else:
            cand = _Candidate(candidate, data, self.mode, self.learn, self.copy)
            if cand.mode == "choose":
                rows, updates = self._run_choose(cand, order, scale, u)
            else:
                rows, updates, deficit = self._run_probabilities(cand, order, scale, u, m)
            policy = cand.obj
        return self._result(data, rows, updates, m, deficit, policy)

    def _deficit(self, data: LoggedData, resolved: Any, rows: np.ndarray, m: float) -> float:
        """Sum over ``rows`` of the candidate's mass on arms of logging probability below ``M`` (0 if unknown)."""
        P = data.probabilities
        if P is None:
            return float(resolved.support_deficit or 0.0) * len(rows)
        low = P[rows] < m * (1 - 1e-9)
        if resolved.actions is not None:
            return float(low[np.arange(len(rows)), resolved.actions[rows]].sum())
        return float((resolved.probabilities[rows] * low).sum())

    def _run_probabilities(
        self, cand: _Candidate, order: np.ndarray, scale: np.ndarray, u: np.ndarray, m: float
    ) -> tuple[np.ndarray, np.ndarray, float]:
        data, n = cand.data, len(order)
        kept: list[np.ndarray] = []
        updates: list[np.ndarray] = []
        pending: list[np.ndarray] = []  # accepted, not learned from yet (fewer than batch_size)
        n_pending, n_learned, pos, deficit = 0, 0, 0, 0.0
        while pos < n:
            need = self.batch_size - n_pending if cand.learning else n
            length = n - pos if not cand.learning else min(n - pos, math.ceil(1.5 * need / m) + 16)
            rows = order[pos : pos + length]
            chunk = data.subset(rows)
            resolved = resolve_target(chunk, cand.obj, name="candidate.action_probabilities(X, eligible)")
            pi = resolved.weights * chunk.propensity  # pi(a_i | x_i)
            hits = np.flatnonzero(u[rows] < pi * scale[rows])
            if len(hits) >= need:
                hits, length = hits[:need], int(hits[need - 1]) + 1
            deficit += self._deficit(chunk, resolved, np.arange(length), m)
            accepted = rows[hits]
            kept.append(accepted)
            updates.append(np.full(len(accepted), n_learned, dtype=np.int64))
            pending.append(accepted)
            n_pending += len(accepted)
            if cand.learning and n_pending == self.batch_size:
                cand.learn(np.concatenate(pending))
                n_learned += n_pending
                pending, n_pending = [], 0
            pos += length
        return np.concatenate(kept), np.concatenate(updates), deficit

    def _run_choose(
        self, cand: _Candidate, order: np.ndarray, scale: np.ndarray, u: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        action = cand.data.action
        kept: list[int] = []
        updates: list[int] = []
        pending: list[int] = []
        n_learned = 0
        for i in order:
            i = int(i)
            if cand.choice(i) != action[i] or u[i] >= scale[i]:
                continue
            kept.append(i)
            updates.append(n_learned)
            if cand.learning:
                pending.append(i)
                if len(pending) == self.batch_size:
                    cand.learn(np.array(pending, dtype=np.int64))
                    n_learned += len(pending)
                    pending.clear()
        return np.array(kept, dtype=np.int64), np.array(updates, dtype=np.int64)

    def _result(
        self, data: LoggedData, rows: np.ndarray, updates: np.ndarray, m: float, deficit: float, policy: Any
    ) -> ReplayResult:
        r = data.reward[rows]
        n_acc = len(rows)
        value = float(r.mean()) if n_acc else math.nan
        se = float(r.std(ddof=1) / math.sqrt(n_acc)) if n_acc > 1 else math.nan
        z = NormalDist().inv_cdf(1 - self.alpha / 2)
        support = deficit / data.n if math.isfinite(deficit) else math.nan
        diagnostics = weight_diagnostics(max(n_acc, 1), float(n_acc), float(n_acc), 1.0 if n_acc else 0.0, support)
        estimate = Estimate(
            value=value,
            se=se,
            ci_low=value - z * se,
            ci_high=value + z * se,
            n=n_acc,
            estimator=self.name,
            alpha=float(self.alpha),
            interval="normal",
            diagnostics=diagnostics,
            consistent=not (support > TARGET_ATOL),
        )
        if support > TARGET_ATOL:
            warnings.warn(
                f"{self.name}: {100 * support:.3g}% of the candidate's mass is on arms logged with probability "
                f"below the acceptance rate M={m:.4g}: those choices are under-sampled and the estimate is biased",
                DiagnosticWarning,
                stacklevel=3,
            )
        names = np.asarray(data.action_names, dtype=object)
        ts = (
            pd.DatetimeIndex([pd.NaT] * n_acc, tz="UTC")
            if data.timestamp is None
            else pd.DatetimeIndex(pd.to_datetime(data.timestamp[rows], utc=True))
        )
        cum = np.cumsum(r)
        events = np.arange(1, n_acc + 1)
        curve = pd.DataFrame(
            {
                "event": events,
                "row": rows,
                "timestamp": ts,
                "arm": names[data.action[rows]],
                "reward": r,
                "cumulative_reward": cum,
                "mean_reward": cum / np.maximum(events, 1),
                "updates": updates,
            }
        )
        return ReplayResult(estimate, data.n, n_acc, m, support, curve, policy, list(data.action_names))


@dataclass(frozen=True, kw_only=True)
class RejectionReplay(Replay):
    """Replay for any logging policy with known propensities, by rejection sampling (see the module docstring).

    Row i is kept with probability ``pi_t(a_i | x_i) * M / mu_i`` (``mode="probabilities"``) or, when the
    candidate's draw matches the logged action, with probability ``M / mu_i`` (``mode="choose"``). Every row is kept
    with probability ``M``: about ``n * M`` rows. Unbiased when every arm the candidate may take had logging
    probability >= ``M`` (a smaller one is under-sampled: reported as ``support_deficit`` with a
    :class:`~offline_eval.diagnostics.DiagnosticWarning`), the propensities are right, the world is stationary and
    the candidate only uses the past.

    Parameters
    ----------
    min_propensity : float, optional
        ``M`` in (0, 1]: a lower bound on the logging probability of every eligible arm, known a priori (e.g.
        ``exploration_floor / K``). Must not exceed any logged propensity. Default: the smallest positive logging
        probability in ``data.probabilities`` (if logged; only arms the logger could take count), else the
        smallest logged propensity (data-dependent: see the module docstring).
    batch_size, learn, mode, copy, alpha, seed
        As in :class:`Replay`.

    Examples
    --------
    >>> import numpy as np
    >>> from offline_eval import LoggedData
    >>> rng = np.random.default_rng(1)
    >>> n = 4000
    >>> logging = np.array([0.6, 0.3, 0.1])
    >>> action = rng.choice(3, size=n, p=logging)
    >>> reward = (rng.random(n) < np.array([0.1, 0.2, 0.3])[action]).astype(float)
    >>> data = LoggedData(None, action, reward, logging[action], probabilities=np.tile(logging, (n, 1)))
    >>> result = RejectionReplay().run(data, 1)  # always offer arm 1; M = 0.1, about 400 rows kept
    >>> result.n_accepted, round(result.value, 2)
    (380, 0.19)
    """

    min_propensity: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        m = self.min_propensity
        if m is not None:
            if isinstance(m, bool) or not isinstance(m, (int, float, np.integer, np.floating)):
                raise TypeError(f"min_propensity must be a float in (0, 1] or None, got {type(m).__name__}")
            if not 0 < float(m) <= 1:
                raise ValueError(f"min_propensity must lie in (0, 1], got {m!r}")

    @property
    def name(self) -> str:
        parts = [f"batch_size={self.batch_size}"] if self.batch_size != 1 else []
        if self.min_propensity is not None:
            parts.append(f"min_propensity={self.min_propensity:g}")
        return f"RejectionReplay({', '.join(parts)})" if parts else "RejectionReplay"

    def acceptance(self, data: LoggedData) -> tuple[np.ndarray, float]:
        """``(M / mu_i per row, M)`` with ``M`` = ``min_propensity`` or the smallest logging probability."""
        p = data.propensity
        if self.min_propensity is not None:
            m = float(self.min_propensity)
            if p.min() < m * (1 - 1e-12):
                bad = int(np.argmin(p))
                raise ValueError(
                    f"min_propensity={m:g} exceeds the logged propensity {p[bad]:.6g} at row {bad}: it must be a "
                    "lower bound on every logging probability; lower it or leave it None (taken from the data)"
                )
        elif data.probabilities is not None:
            P = data.probabilities
            m = float(P[P > 0].min())
        else:
            m = float(p.min())
        return np.minimum(m / p, 1.0), m


def replay(data: LoggedData, candidate: Any, replayer: Replay | None = None) -> ReplayResult:
    """Replay ``candidate`` with ``replayer`` (default :class:`Replay` for uniform logs, else RejectionReplay).

    Examples
    --------
    >>> import numpy as np
    >>> from offline_eval import LoggedData
    >>> data = LoggedData(None, [0, 1, 1, 0], [1.0, 0.0, 2.0, 0.0], [0.5] * 4)
    >>> replay(data, 1).n_accepted
    2
    """
    if replayer is None:
        if not isinstance(data, LoggedData):
            raise TypeError(f"data must be an offline_eval.LoggedData, got {type(data).__name__}")
        replayer = Replay() if _uniform_rows(data)[0].all() else RejectionReplay()
    if not isinstance(replayer, Replay):
        raise TypeError(f"replayer must be a Replay or RejectionReplay, got {type(replayer).__name__}")
    return replayer.run(data, candidate)

