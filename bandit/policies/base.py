"""The common policy base class: validation, the decision contract, arms, state, snapshots.

Every policy follows the template-method pattern: the public methods here validate their arguments once (with the
narrow validators of :mod:`bandit._validation`) and then call a private hook that receives clean float64 arrays.
A policy file implements only its constructor and the hooks.
"""

from __future__ import annotations

import copy
import inspect
import math
import secrets
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal

import numpy as np

from bandit import state as _state
from bandit._ledger import STATE_ARRAYS as LEDGER_ARRAYS
from bandit._ledger import AppliedEvents
from bandit._validation import (
    MAX_ABS_REWARD,
    IllConditionedError,
    check_arm,
    check_arms,
    check_context,
    check_contexts,
    check_eligible,
    check_eligible_batch,
    check_event_id,
    check_event_ids,
    check_reward,
    check_rewards,
    check_scalar,
    check_seed,
    non_finite_context_error,
)
from bandit.arms import Arm, as_arms
from bandit.decision import BatchDecision, Decision
from bandit.kernels import decide, dense, ridge
from bandit.kernels.rng import event_seed, seed_state
from bandit.kernels.status import STATUS_ILL_CONDITIONED, STATUS_NON_FINITE, STATUS_NOT_PD, STATUS_SCORE_OVERFLOW

__all__ = ["Policy"]

_F64 = np.dtype(np.float64)
_isfinite = math.isfinite
_empty = np.empty
_new = object.__new__


def gaussian_prior(n_arms: int, n_dims: int, l2: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fresh per-arm prior N(0, I / l2) over ``n_dims`` coefficients: precision ``l2 I`` and covariance ``I / l2``
    (n_arms, D, D) and mean 0 (n_arms, D); writeable copies, also for one arm."""
    eye = np.eye(n_dims)
    return np.tile(eye * l2, (n_arms, 1, 1)), np.tile(eye / l2, (n_arms, 1, 1)), np.zeros((n_arms, n_dims))


def compiled_entry(kernel: Any, args: tuple[Any, ...]) -> Callable[..., Any]:
    """The compiled entry point of the numba dispatcher ``kernel`` for the exact numba types of ``args`` (compiled,
    or loaded from numba's cache, when new).

    Calling it skips the dispatcher's typing of every argument on every call (about 0.2 us for ten arguments), so
    the caller must pass arguments of exactly these types on every later call: the policies bind their per-decision
    kernels on first use (:meth:`Policy._bind`) to their own state arrays, the normalised context and mask
    :meth:`Policy.choose` and :meth:`Policy.update` hand to the hooks, and Python scalars.
    """
    return kernel.compile(tuple(kernel.typeof_pyval(a) for a in args))


def scaled_prior_precision(owner: str, n_features: Any, fit_intercept: bool) -> float:
    """``D / 4``, the default prior precision ``l2`` of LinUCB, LinearTS and LogisticTS (D = ``n_features`` plus the
    intercept column): on standardised features ``E ||x||^2 = D``, so a prior ``N(0, sigma^2 I / l2)`` gives the
    predicted reward a prior standard deviation of ``sigma sqrt(D / l2) = 2 sigma`` (0.5 for 0/1 conversions, whose
    sigma is 0.25), and a prior ``N(0, I / l2)`` on log-odds coefficients gives the logit a prior standard deviation
    of 2, whatever the dimension. ``n_features`` is validated here, as :class:`Policy` would (it is needed before
    the policy exists); ``owner`` is the class name for the error message."""
    if n_features is None:
        raise TypeError(f"{owner} needs n_features (the length of a context vector)")
    d = int(check_scalar(n_features, "n_features", low=1, integer=True))
    return (d + bool(fit_intercept)) / 4.0


class Policy(ABC):
    """Base class of all policies (not instantiated directly).

    Objective
    ---------
    A policy chooses one of K arms (plan offers) for a context ``x`` (a vector of ``n_features`` numbers) and
    learns from the observed reward. It maximises ``value_k * E[reward | x, k]``, where ``value_k`` is
    :attr:`Arm.value`. With 0/1 conversion rewards and values set to plan revenue this is expected revenue per
    offer; with every value 1.0 (the default) any real-valued reward (e.g. revenue itself) is maximised as is.

    Decisions and propensities
    --------------------------
    ``choose`` returns a :class:`~bandit.decision.Decision` whose ``probabilities`` are the **exact** distribution
    the arm was drawn from (deterministic scores split ties uniformly; Thompson sampling probabilities are computed
    by quadrature). Every policy mixes ``exploration_floor`` of uniform mass over the eligible arms:
    ``p = (1 - floor) * p_policy + floor / |eligible|``; the draw follows this mixture exactly.

    Determinism
    -----------
    With ``event_id=...`` the random draws come from a generator seeded by ``(seed, event_id)``: the same state and
    the same ``event_id`` always give the same decision (serving replicas agree; decisions can be audited).
    Without it they come from the policy's own generator, whose state is advanced and saved.

    Thread-safety
    -------------
    A live policy is **not** thread-safe: it reuses preallocated buffers; use it from one thread at a time (e.g.
    the trainer). ``snapshot()`` returns a read-only copy that any number of serving threads may share: its
    ``choose``/``choose_batch``/``action_probabilities`` are serialised by an internal lock, and it never changes
    when the live policy is updated. ``Decision`` and ``BatchDecision`` objects are immutable and safe to share.
    Where :attr:`action_probabilities_thread_safe` is true (every policy whose scoring is a pure function of its
    state: it changes nothing and its kernels release the GIL), ``action_probabilities`` may run in several
    threads at once -- a snapshot's without its lock, a live policy's while nothing updates it -- so e.g.
    :func:`offline_eval.streaming.evaluate_parquet` scores batches in parallel.

    Arms over time
    --------------
    ``add_arm`` appends an arm (its index is ``K``; indices are never reused) and ``remove_arm`` retires one: a
    retired arm keeps its index and learned state (for audit, and updates for decisions made before retirement
    are still accepted) but is never eligible again, whatever ``eligible`` says.
    """

    #: Whether the policy uses the context (False: the context is ignored unless ``n_features`` is given).
    _contextual: ClassVar[bool] = True
    #: Allowed reward range for update/update_batch (also read by update_from_log and the service). Unbounded
    #: rewards stop at +-MAX_ABS_REWARD: larger finite ones overflow the learned sums to inf.
    _reward_low: ClassVar[float] = -MAX_ABS_REWARD
    _reward_high: ClassVar[float] = MAX_ABS_REWARD
    #: Whether the hooks check the finiteness of a single context themselves (in the fused kernel).
    _kernel_checks_finite: ClassVar[bool] = False
    #: Names of the per-arm learned arrays (attributes ``_<name>``, leading axis = arm), saved by ``save``.
    _state_arrays: ClassVar[tuple[str, ...]] = ()
    #: Names of the learned arrays shared by all arms (no arm axis; ``add_arm`` leaves them as they are), saved too.
    _shared_state_arrays: ClassVar[tuple[str, ...]] = ()
    #: (precision, covariance) state arrays that the updates keep symmetric positive definite and inverse to each
    #: other within ``_max_condition`` (:func:`bandit.kernels.dense.condition_bound`); ``bandit.load`` checks them.
    _inverse_pairs: ClassVar[tuple[tuple[str, str], ...]] = ()
    _max_condition: ClassVar[float] = dense.MAX_CONDITION
    #: Whether ``action_probabilities`` may be called from several threads at once: it reads the learned state and
    #: changes nothing (no generator, cache or buffer), and its compiled kernels release the GIL. A snapshot then
    #: scores without its lock; on a live policy it holds while no thread updates the policy. Callers that score
    #: many batches (offline evaluation) read it on the class as an opt-in to concurrent calls; any target class
    #: may set it, and a subclass whose scoring changes state must set it back to False.
    action_probabilities_thread_safe: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not inspect.isabstract(cls):
            _state.register(cls)

    def __init__(
        self,
        arms: Sequence[str | Arm],
        n_features: int | None,
        *,
        exploration_floor: float = 0.0,
        discount: float = 1.0,
        fit_intercept: bool = False,
        seed: int | None = None,
    ) -> None:
        arm_list = as_arms(arms)
        if n_features is not None or self._contextual:
            if n_features is None:
                raise TypeError(f"{type(self).__name__} needs n_features (the length of a context vector)")
            n_features = int(check_scalar(n_features, "n_features", low=1, high=_state.MAX_FEATURES, integer=True))
        self.n_features: int | None = n_features
        self._context_shape = (n_features,)
        self.exploration_floor = check_scalar(exploration_floor, "exploration_floor", low=0.0, high=1.0)
        self.discount = check_scalar(discount, "discount", low=0.0, high=1.0, low_inclusive=False)
        if not isinstance(fit_intercept, (bool, np.bool_)):
            raise TypeError(f"fit_intercept must be True or False, got {type(fit_intercept).__name__}")
        self.fit_intercept = bool(fit_intercept)
        seed = check_seed(seed)
        #: The seed actually used (drawn from the OS when None was given, so that save/load reproduces it).
        self.seed: int = secrets.randbits(63) if seed is None else seed
        self._rng_state = seed_state(self.seed)
        #: generator state of a decision with an event id (re-seeded for each such decision)
        self._event_state = seed_state(0)
        self._uid = secrets.token_hex(4)
        self._version_prefix = f"{type(self).__name__}-{self._uid}-"
        self._revision = 0
        self._version: str | None = None
        self._n_updates = 0
        self._read_only = False
        self._lock: threading.Lock | None = None
        #: which logged decisions update_from_log has settled: a watermark + recent ids (bounded memory)
        self._applied_event_ids = AppliedEvents()
        self._set_arms(arm_list, np.ones(len(arm_list), dtype=np.bool_))
        self._unbind()
        # plain lists: incrementing a list element is several times cheaper than a numpy scalar on the hot path
        self._pulls: list[int] = [0] * len(arm_list)
        self._reward_sum: list[float] = [0.0] * len(arm_list)
        for name, arr in self._fresh_state(len(arm_list)).items():
            setattr(self, "_" + name, arr)
        self._allocate_buffers()

    # ------------------------------------------------------------------------------------------------------------
    # hooks
    # ------------------------------------------------------------------------------------------------------------

    @classmethod
    @abstractmethod
    def _test_params(cls) -> dict[str, Any]:
        """Small constructor arguments (besides ``arms`` and ``n_features``) for the generic test suite."""

    @abstractmethod
    def _fresh_state(self, n_arms: int) -> dict[str, np.ndarray]:
        """Learned arrays (names in ``_state_arrays`` and ``_shared_state_arrays``) for ``n_arms`` arms, no data."""

    def _unbind(self) -> None:
        """Forget the compiled entry points of the per-decision kernels (:meth:`_bind`): whenever the state arrays
        are replaced (their types may differ), the next call binds them again."""
        self._choose_entry: Callable[..., int] | None = None
        self._update_entry: Callable[..., int] | None = None

    def _bind(self, hook: Literal["choose", "update"], kernel: Any, args: tuple[Any, ...]) -> Callable[..., int]:
        """Bind ``kernel``'s compiled entry point for the types of ``args`` (:func:`compiled_entry`) as the
        ``hook``'s entry (``_choose_entry`` / ``_update_entry``) and return it.

        A policy's ``_choose_one`` / ``_update_one`` calls its kernel as ``(self._choose_entry or self._bind("choose",
        kernel, args))(*args)``: the types of ``args`` never change between two :meth:`_unbind` calls, because the
        hooks receive contexts and masks normalised to float64 / bool, 1-D, C-contiguous, writeable, aligned arrays
        (:meth:`choose`, :meth:`update`), the policy's own state arrays and generator states, fresh ``np.empty``
        buffers and Python scalars.
        """
        entry = compiled_entry(kernel, args)
        setattr(self, f"_{hook}_entry", entry)
        return entry

    def _decision_rows(self) -> int:
        """Rows of a decision's (rows, K) buffer: 2 (probabilities, scores) plus any work space of the kernel."""
        return 2

    def _allocate_buffers(self) -> None:
        """(Re)allocate the preallocated work buffers; called at construction, on add_arm and for snapshots."""

    @abstractmethod
    def _choose_one(self, x: np.ndarray, eligible: np.ndarray, st: np.ndarray, out: np.ndarray) -> int:
        """Fill ``out[0]`` (probabilities) and ``out[1]`` (scores) and return the chosen index.

        ``out`` is a fresh (:meth:`_decision_rows`, K) buffer; its rows after the first two are the hook's work space.

        ``x`` is the validated context (finiteness may still need checking: return ``STATUS_NON_FINITE``),
        ``eligible`` a (K,) bool mask with at least one True; both are C-contiguous, writeable and aligned (the
        types a kernel bound by :meth:`_bind` takes). Draws come from the generator state ``st`` (the policy's own,
        or one seeded for the decision's event id).
        """

    @abstractmethod
    def _choose_many(
        self, X: np.ndarray, eligible: np.ndarray, seeds: np.ndarray | None, sample: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Decide for every row of the finite (n, d) ``X``; ``eligible`` is (1, K) or (n, K).

        Returns ``(indices (n,), probabilities (n, K), scores (n, K))``; with ``sample=False`` only the
        probabilities are meaningful (indices unspecified, no generator advanced).
        """

    @abstractmethod
    def _update_one(self, x: np.ndarray, k: int, reward: float) -> int:
        """Learn from one observation; return a kernel status (``STATUS_NON_FINITE`` leaves the state untouched).

        ``x`` is a context as :meth:`_choose_one` gets it, ``k`` a Python int, ``reward`` a Python float."""

    @abstractmethod
    def _update_many(self, X: np.ndarray, arms: np.ndarray, rewards: np.ndarray) -> None:
        """Learn from n validated observations (finite (n, d) ``X``, int64 ``arms``, finite ``rewards``)."""

    # ------------------------------------------------------------------------------------------------------------
    # arms
    # ------------------------------------------------------------------------------------------------------------

    def _set_arms(self, arms: list[Arm], active: np.ndarray) -> None:
        self._arms = list(arms)
        self._names = [a.name for a in arms]
        self._arm_index = {n: i for i, n in enumerate(self._names)}
        self._values = np.array([a.value for a in arms], dtype=np.float64)
        self._active = np.ascontiguousarray(active, dtype=np.bool_)
        self._refresh_active_view()
        self._names_obj = np.array(self._names, dtype=object)
        #: shape of a decision's buffer: probabilities and scores (rows 0 and 1), then the kernel's work space
        self._out_shape = (self._decision_rows(), len(arms))

    def _refresh_active_view(self) -> None:
        # decisions made with eligible=None record this read-only view; the kernels get the writeable original
        # (numba compiles a separate specialisation for read-only arrays)
        view = self._active.view()
        view.flags.writeable = False
        self._active_view = view

    @property
    def arms(self) -> tuple[Arm, ...]:
        """All arms in index order, retired ones included."""
        return tuple(self._arms)

    @property
    def arm_names(self) -> list[str]:
        """Arm names in index order (the decision-log ``action`` indexes this list), retired ones included."""
        return list(self._names)

    @property
    def active_arms(self) -> list[str]:
        """Names of the arms that can still be chosen (not retired)."""
        return [n for n, a in zip(self._names, self._active, strict=False) if a]

    @property
    def n_arms(self) -> int:
        """K, the number of arms including retired ones."""
        return len(self._names)

    def add_arm(self, arm: str | Arm) -> int:
        """Append a new arm; it is eligible from the next decision on and starts from the prior.

        Parameters
        ----------
        arm : str or Arm

        Returns
        -------
        int
            The new arm's index (always the previous K: indices are never reused).

        Examples
        --------
        >>> from bandit import Arm, LinUCB
        >>> policy = LinUCB(["individual", "duo"], n_features=2, seed=0)
        >>> policy.add_arm(Arm(name="family", value=19.99))
        2
        >>> policy.remove_arm("individual")
        >>> policy.arm_names, policy.active_arms
        (['individual', 'duo', 'family'], ['duo', 'family'])
        >>> policy.choose([0.1, 0.2]).probabilities  # family's value makes it the optimistic choice
        array([0., 0., 1.])
        """
        self._check_writable("add_arm")
        new = as_arms([arm])[0]
        if new.name in self._arm_index:
            raise ValueError(f"arm {new.name!r} already exists (index {self._arm_index[new.name]}); arm names are unique")
        if len(self._names) >= _state.MAX_ARMS:
            raise ValueError(f"the policy already has {len(self._names)} arms, the most a policy file holds")
        fresh = self._fresh_state(1)
        grown = {
            name: np.ascontiguousarray(np.concatenate([getattr(self, "_" + name), fresh[name]]))
            for name in self._state_arrays
        }
        for name, arr in grown.items():
            setattr(self, "_" + name, arr)
        self._pulls.append(0)
        self._reward_sum.append(0.0)
        self._set_arms([*self._arms, new], np.append(self._active, True))
        self._unbind()
        self._allocate_buffers()
        self._changed()
        return len(self._names) - 1

    def remove_arm(self, name: str) -> None:
        """Retire an arm: it is never eligible again; its index, name and learned state are kept for audit.

        Raises
        ------
        ValueError
            Unknown name, already retired, or it is the last active arm.
        """
        self._check_writable("remove_arm")
        k = check_arm(name, self._arm_index, len(self._names), "name")
        if not self._active[k]:
            raise ValueError(f"arm {self._names[k]!r} is already retired")
        if self._active.sum() == 1:
            raise ValueError(f"cannot retire {self._names[k]!r}: it is the last active arm; add another arm first")
        active = self._active.copy()
        active[k] = False
        self._active = active
        self._unbind()
        self._refresh_active_view()
        self._changed()

    # ------------------------------------------------------------------------------------------------------------
    # bookkeeping
    # ------------------------------------------------------------------------------------------------------------

    def _changed(self) -> None:
        self._revision += 1
        self._version = None

    @property
    def policy_version(self) -> str:
        """Identifies the exact learned state: changes on every update, add_arm and remove_arm; kept by save/load."""
        v = self._version
        if v is None:
            v = self._version = f"{self._version_prefix}{self._revision}"
        return v

    @property
    def n_updates(self) -> int:
        """Number of observations learned from."""
        return self._n_updates

    @property
    def read_only(self) -> bool:
        """True for snapshots (see :meth:`snapshot`)."""
        return self._read_only

    @property
    def pulls(self) -> np.ndarray:
        """Observations learned per arm, shape (K,)."""
        return np.array(self._pulls, dtype=np.int64)

    @property
    def mean_rewards(self) -> np.ndarray:
        """Mean observed reward per arm, shape (K,); NaN for arms never updated."""
        with np.errstate(invalid="ignore", divide="ignore"):
            pulls = np.array(self._pulls, dtype=np.float64)
            return np.where(pulls > 0, np.array(self._reward_sum) / np.maximum(pulls, 1.0), np.nan)

    def get_params(self) -> dict[str, Any]:
        """Constructor keyword arguments (``seed`` is the seed actually used), e.g. to build a fresh copy."""
        sig = inspect.signature(type(self).__init__)
        return {
            p.name: getattr(self, p.name)
            for p in sig.parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY or p.name == "n_features"
        }

    def _check_writable(self, what: str) -> None:
        if self._read_only:
            raise RuntimeError(
                f"{what}() is not allowed on a read-only snapshot; update the live policy and take a new snapshot()"
            )

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items() if k != "seed")
        lines = [f"{type(self).__name__}({params}) n_updates={self._n_updates} version={self.policy_version}"]
        width = max(len(n) for n in self._names)
        lines.append(f"  {'arm':<{width}}  {'value':>9}  {'pulls':>9}  {'mean reward':>11}")
        means = self.mean_rewards
        for i, name in enumerate(self._names):
            mean = "-" if np.isnan(means[i]) else f"{means[i]:.4g}"
            flag = "" if self._active[i] else "  (retired)"
            lines.append(f"  {name:<{width}}  {self._values[i]:>9.4g}  {self._pulls[i]:>9d}  {mean:>11}{flag}")
        return "\n".join(lines)

    # ------------------------------------------------------------------------------------------------------------
    # deciding
    # ------------------------------------------------------------------------------------------------------------

    def _context(self, context: Any, name: str) -> np.ndarray:
        """The validated context off the fast path, as the hooks take it: float64, (n_features,), C-contiguous,
        writeable and aligned (a read-only or misaligned view of a foreign buffer is copied)."""
        if self.n_features is None:
            return decide.EMPTY
        x = check_context(context, self.n_features, name, finite=not self._kernel_checks_finite)
        flags = x.flags
        return x if flags.aligned and flags.writeable else x.copy()

    def _batch_contexts(self, X: Any, name: str) -> np.ndarray:
        if self.n_features is None:
            if X is None or isinstance(X, (str, bytes)) or not hasattr(X, "__len__"):
                raise TypeError(f"{name} must be a sized collection with one (ignored) entry per row, got {type(X).__name__}")
            return np.empty((len(X), 0), dtype=np.float64)
        return check_contexts(X, self.n_features, name, finite=not self._kernel_checks_finite)

    def choose(self, context: Any, eligible: Any = None, event_id: str | int | None = None) -> Decision:
        """Choose an arm for one context.

        Parameters
        ----------
        context : array-like of shape (n_features,)
            Finite feature vector (standardised features recommended). Ignored by non-contextual policies built
            without ``n_features`` (pass None).
        eligible : None, list of str, or bool array-like of shape (K,)
            Arms that may be offered; None means all active arms. Retired arms are never eligible.
        event_id : str or int, optional
            The request/event id. With it, the draw is a pure function of (state, seed, event_id).

        Returns
        -------
        Decision

        Raises
        ------
        TypeError, ValueError
            Bad context (wrong length, NaN/inf, not numeric), bad ``eligible`` or no eligible arm.
        """
        # one frame: a snapshot's choose is this method wrapped in the snapshot's lock (see snapshot), and the
        # Decision is built here rather than by a helper (a Python call costs ~0.1 us per request)
        # the same fast-path test stands in choose and update: a shared helper costs a call per request
        if (
            type(context) is np.ndarray
            and context.dtype is _F64
            and context.shape == self._context_shape
            and (flags := context.flags).c_contiguous
            and flags.writeable
            and flags.aligned
            and self._kernel_checks_finite
        ):
            x = context  # fast path: the fused kernel checks finiteness
        else:
            x = self._context(context, "context")
        if eligible is None:
            mask = self._active
            recorded = self._active_view
        else:
            recorded = mask = check_eligible(eligible, self._arm_index, self._active)
        eid = check_event_id(event_id) if event_id is not None else None
        if eid is None:
            st = self._rng_state
        else:
            st = self._event_state
            st[0] = event_seed(self.seed, eid)
        out = _empty(self._out_shape)
        idx = self._choose_one(x, mask, st, out)
        if idx < 0:
            raise self._status_error(idx, "context")
        if recorded is mask:
            mask.setflags(write=False)
        # a Decision as bandit.decision documents for the hot path: the kernel's buffer (owned by the decision from
        # now on), the views, propensity and version string made when first read
        d = _new(Decision)
        d._arm = self._names[idx]
        d._index = idx
        d._propensity = d._probabilities = d._scores = None
        d._event_id = eid
        version = self._version
        d._version = (self._version_prefix, self._revision) if version is None else version
        d._eligible = recorded
        d._out = out
        return d

    def choose_batch(self, X: Any, eligible: Any = None, event_ids: Sequence[str | int] | None = None) -> BatchDecision:
        """Choose an arm for each row of ``X``.

        Row ``i`` is decided exactly as ``choose(X[i], eligible_i, event_ids[i])`` would (same probabilities; with
        event ids, the same arm). Without event ids the rows draw from the policy's generator in order.

        Parameters
        ----------
        X : array-like of shape (n, n_features)
        eligible : None, list of str, bool array-like of shape (K,) (all rows) or (n, K)
        event_ids : sequence of n str/int, optional

        Returns
        -------
        BatchDecision
            Arrays are read-only.
        """
        lock = self._lock
        if lock is not None:
            with lock:
                return self._choose_batch(X, eligible, event_ids)
        return self._choose_batch(X, eligible, event_ids)

    def _choose_batch(self, X: Any, eligible: Any, event_ids: Any) -> BatchDecision:
        Xc = self._batch_contexts(X, "X")
        n = Xc.shape[0]
        mask = check_eligible_batch(eligible, n, self._arm_index, self._active)
        ids = check_event_ids(event_ids, n)
        seeds = None
        if ids is not None:
            s = self.seed
            seeds = np.fromiter((event_seed(s, e) for e in ids), dtype=np.uint64, count=n)
        idx, probs, scores = self._choose_many(Xc, mask, seeds, True)
        propensities = probs[np.arange(n), idx]
        for a in (idx, probs, scores, propensities):
            a.flags.writeable = False
        return BatchDecision(
            indices=idx,
            arms=self._names_obj[idx].tolist(),
            propensities=propensities,
            probabilities=probs,
            scores=scores,
            event_ids=list[str | None](ids) if ids is not None else [None] * n,
            policy_version=self.policy_version,
            eligible=np.broadcast_to(mask, (n, mask.shape[1])),  # a read-only view
        )

    def action_probabilities(self, X: Any, eligible: Any = None) -> np.ndarray:
        """The exact distribution ``choose`` would draw from, for every row of ``X`` (for off-policy evaluation).

        Parameters
        ----------
        X : array-like of shape (n, n_features)
        eligible : None, list of str, bool array-like of shape (K,) or (n, K)

        Returns
        -------
        ndarray of float64, shape (n, K)
            Rows sum to 1; exactly 0 for ineligible and retired arms. No generator is advanced.
        """
        lock = self._lock
        if lock is not None and not self.action_probabilities_thread_safe:
            with lock:
                return self._action_probabilities(X, eligible)
        return self._action_probabilities(X, eligible)

    def _batch_outputs(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Fresh ``(indices (n,) int64 zeros, probabilities (n, K), scores (n, K))`` for :meth:`_choose_many`."""
        k = len(self._names)
        return np.zeros(n, dtype=np.int64), np.empty((n, k)), np.empty((n, k))

    def _action_probabilities(self, X: Any, eligible: Any) -> np.ndarray:
        Xc = self._batch_contexts(X, "X")
        mask = check_eligible_batch(eligible, Xc.shape[0], self._arm_index, self._active)
        return self._choose_many(Xc, mask, None, False)[1]

    def _status_error(self, status: int, name: str, X: np.ndarray | None = None, arm: int | None = None) -> Exception:
        """The exception for a negative kernel status (the kernels change nothing when they return one).

        ``X`` is the rejected context (with ``arm``, its arm index) or batch of contexts (``arm`` None); they let
        the message of an ill-conditioned update name the offending context's norm and the arm (or the row).
        """
        if status == STATUS_NON_FINITE:
            return non_finite_context_error(name)
        if status == STATUS_ILL_CONDITIONED:
            limit = f"condition number > {dense.MAX_CONDITION:.0e}"
            fix = (
                "nothing was changed; standardise the features (e.g. to unit variance) and clip outliers before "
                "calling the policy"
            )
            if X is None:
                return IllConditionedError(f"{name} would make a precision matrix lose precision ({limit}); {fix}")
            with np.errstate(over="ignore"):
                norms = np.sqrt(np.sum(np.square(np.asarray(X, dtype=np.float64).reshape(-1, X.shape[-1])), axis=1))
            if arm is not None:
                return IllConditionedError(
                    f"{name} norm {norms[0]:.3g} would make arm {self._names[arm]!r}'s precision matrix lose "
                    f"precision ({limit}); {fix}"
                )
            row = int(np.argmax(norms))
            return IllConditionedError(
                f"{name} would make an arm's precision matrix lose precision ({limit}); its largest row is row {row} "
                f"(norm {norms[row]:.3g}); {fix}"
            )
        if status in (STATUS_SCORE_OVERFLOW, STATUS_NOT_PD):
            return ValueError(
                f"{name} values are too large: the arm's scores or precision matrix overflowed (nothing was changed);"
                " standardise the features (e.g. to unit variance) before calling the policy"
            )
        return RuntimeError(f"internal kernel error (status {status}); please report it with the saved policy file")

    # ------------------------------------------------------------------------------------------------------------
    # learning
    # ------------------------------------------------------------------------------------------------------------

    def update(self, context: Any, arm: str | int, reward: float) -> None:
        """Learn from the reward observed after offering ``arm`` in ``context``.

        Parameters
        ----------
        context : array-like of shape (n_features,)
            The context the decision was made for.
        arm : str or int
            Arm name or index (retired arms are accepted: outcomes of earlier decisions still count).
        reward : float
            Observed reward (a 0/1 conversion, or revenue when all arm values are 1), within the policy's reward
            range: [0, 1] for the conversion policies, at most 1e100 in magnitude (``MAX_ABS_REWARD``) otherwise.

        Raises
        ------
        TypeError, ValueError
            Bad context, unknown arm, non-finite or out-of-range reward; the state is then unchanged.
        RuntimeError
            Called on a snapshot.
        """
        if self._read_only:
            self._check_writable("update")
        # the same fast-path test stands in _choose and update: a shared helper costs a call (~60 ns) per request
        if (
            type(context) is np.ndarray
            and context.dtype is _F64
            and context.shape == self._context_shape
            and (flags := context.flags).c_contiguous
            and flags.writeable
            and flags.aligned
            and self._kernel_checks_finite
        ):
            x = context  # fast path: the fused kernel checks finiteness
        else:
            x = self._context(context, "context")
        k = arm if type(arm) is int and 0 <= arm < len(self._names) else check_arm(arm, self._arm_index, len(self._names))
        if type(reward) is float and _isfinite(reward) and self._reward_low <= reward <= self._reward_high:
            r = reward
        else:
            r = check_reward(reward, low=self._reward_low, high=self._reward_high)
        status = self._update_one(x, k, r)
        if status < 0:
            raise self._status_error(status, "context", x, k)
        self._pulls[k] += 1
        self._reward_sum[k] += r
        self._n_updates += 1
        self._revision += 1
        self._version = None

    def update_batch(self, X: Any, arms: Any, rewards: Any) -> None:
        """Learn from n observations at once (row ``i``: context ``X[i]``, arm ``arms[i]``, reward ``rewards[i]``).

        For LinUCB, LinearTS and EpsilonGreedy this equals n sequential ``update`` calls (to 1e-9).

        Parameters
        ----------
        X : array-like of shape (n, n_features)
        arms : sequence of n arm names or int indices
        rewards : array-like of shape (n,)

        Raises
        ------
        TypeError, ValueError
            Any bad row (nothing is learned then), mismatched lengths.
        RuntimeError
            Called on a snapshot.
        """
        self._check_writable("update_batch")
        if self.n_features is None and X is None:
            n = len(arms) if hasattr(arms, "__len__") and not isinstance(arms, (str, bytes)) else 0
            X = [None] * n
        Xc = self._batch_contexts(X, "X")
        n = Xc.shape[0]
        a = check_arms(arms, n, self._arm_index, len(self._names))
        r = check_rewards(rewards, n, low=self._reward_low, high=self._reward_high)
        if n == 0:
            return
        try:
            self._update_many(Xc, a, r)
        except IllConditionedError as exc:
            # name the culprit: the first row at which sequential learning (on a throwaway copy) fails; the batch
            # checks the accumulated statistics once, so the row is only found on this (rare) error path
            probe = copy.deepcopy(self)
            for i in range(n):
                try:
                    probe.update(Xc[i], int(a[i]), float(r[i]))
                except IllConditionedError:
                    raise IllConditionedError(
                        f"X row {i} (norm {float(np.linalg.norm(Xc[i])):.3g}) would make arm "
                        f"{self._names[int(a[i])]!r}'s precision matrix lose precision (condition number > "
                        f"{dense.MAX_CONDITION:.0e}; the first such row when the batch is learned in order); nothing "
                        "was learned from the batch; standardise the features (e.g. to unit variance) and clip outliers "
                        "before calling the policy"
                    ) from None
            raise exc from None
        k = len(self._names)
        self._pulls = (np.array(self._pulls, dtype=np.int64) + np.bincount(a, minlength=k)).tolist()
        self._reward_sum = (np.array(self._reward_sum) + np.bincount(a, weights=r, minlength=k)).tolist()
        self._n_updates += n
        self._changed()

    def update_from_log(
        self,
        decisions: Any,
        outcomes: Any,
        attribution_window: timedelta | str,
        now: datetime | np.datetime64 | str | None = None,
        *,
        combine: Literal["sum", "max", "first"] = "sum",
        grace: timedelta | str = "1D",
    ) -> Any:
        """Learn from a decision log joined with delayed outcomes, never counting a decision twice.

        A decision gets its outcomes' reward (``combine``: "sum", "max" or "first") when they arrive within
        ``attribution_window`` of the decision, and 0 once the window has passed without one; undecided decisions
        wait. ``now`` defaults to the wall clock (UTC now); pass it to replay history. Bad rows (duplicate ids, NaN
        or out-of-range rewards, bad contexts, unknown arms, unreadable or future timestamps) are skipped and
        reported in the result's ``rejected`` table; they never block the others. The decisions settled are
        remembered in bounded memory (a watermark at ``now - attribution_window - grace`` plus the ids after it)
        and saved with the policy, so calling again with more data only applies new decisions. See
        :mod:`bandit.attribution` for the exact rules.

        Returns
        -------
        bandit.attribution.UpdateReport
        """
        self._check_writable("update_from_log")
        from bandit.attribution import apply_log

        return apply_log(
            self, decisions, outcomes, attribution_window, now, applied=self._applied_event_ids, combine=combine,
            grace=grace,
        )

    # ------------------------------------------------------------------------------------------------------------
    # state
    # ------------------------------------------------------------------------------------------------------------

    def snapshot(self) -> Policy:
        """A read-only, thread-safe copy of the current state for serving threads.

        The copy never changes when this policy is updated; its ``update*``/``add_arm``/``remove_arm`` raise
        ``RuntimeError``. Its own generator starts from this policy's generator state (so, without event ids, a
        snapshot and the live policy draw the same sequence); decisions with an ``event_id`` are identical to the
        live policy's at the time of the snapshot. Call it from the thread that updates the live policy.
        """
        snap = object.__new__(type(self))
        for key, val in self.__dict__.items():
            if key == "choose":  # a snapshot's locked choose, bound to it; the copy gets its own below
                continue
            if isinstance(val, np.ndarray):
                val = val.copy()
            elif isinstance(val, (list, dict, set)):
                val = type(val)(val)
            elif isinstance(val, AppliedEvents):
                val = val.copy()
            snap.__dict__[key] = val
        snap._read_only = True
        snap._lock = lock = threading.Lock()
        unlocked = snap.choose

        def choose(context: Any, eligible: Any = None, event_id: str | int | None = None) -> Decision:
            with lock:
                return unlocked(context, eligible, event_id)

        choose.__doc__ = unlocked.__doc__
        snap.__dict__["choose"] = choose  # shadows Policy.choose on this instance only
        snap._refresh_active_view()
        snap._unbind()
        snap._allocate_buffers()
        return snap

    def save(self, path: Any) -> Any:
        """Write the policy to one file, atomically (see :mod:`bandit.state`); returns the path written.

        Load it back with :func:`bandit.load`.
        """
        return _state.save(self, path)

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        params = self.get_params()
        params.pop("n_features", None)
        meta = {
            "class": type(self).__name__,
            "n_features": self.n_features,
            "config": params,
            "arms": [a.model_dump() for a in self._arms],
            "counters": {"n_updates": self._n_updates, "revision": self._revision},
            "rng_state": int(self._rng_state[0]),
            "uid": self._uid,
        }
        meta["applied_events"], arrays = self._applied_event_ids.to_state()
        arrays.update(
            pulls=np.array(self._pulls, dtype=np.int64),
            reward_sum=np.array(self._reward_sum, dtype=np.float64),
            active=self._active,
        )
        arrays.update({name: getattr(self, "_" + name) for name in (*self._state_arrays, *self._shared_state_arrays)})
        return meta, arrays

    @classmethod
    def _state_shapes(
        cls, n_arms: int, n_features: int | None, config: dict[str, Any], arms: list[Arm]
    ) -> dict[str, tuple[tuple[int, ...], str]]:
        """Shape and dtype (e.g. ``"<f8"``) of every array in ``_state_arrays`` and ``_shared_state_arrays`` of a
        policy built with these arguments, computed without building it (``bandit.load`` checks a file's arrays
        against them before anything is allocated). Policies with learned arrays override it."""
        return {}

    @classmethod
    def _from_state(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Policy:
        # untrusted input: every field and array is checked against the metadata and the limits of bandit.state
        # before the policy is built (no allocation beyond what the file holds)
        arms, config, n_features = _state.check_meta(cls, meta)
        arrays = dict(arrays)
        ledger = AppliedEvents.from_state(meta, {name: arrays.pop(name) for name in LEDGER_ARRAYS if name in arrays})
        _state.check_arrays(cls, arms, n_features, config, arrays, meta["counters"]["n_updates"])
        if cls._contextual or n_features is not None:
            config["n_features"] = n_features
        policy = cls(arms, **config)
        # names, shapes and dtypes were checked against _state_shapes above (tests keep it equal to what policies
        # build), so the arrays replace the fresh ones as they are
        learned = (*cls._state_arrays, *cls._shared_state_arrays)
        policy._pulls = arrays["pulls"].tolist()
        policy._reward_sum = arrays["reward_sum"].tolist()
        policy._set_arms(arms, arrays["active"])
        for name in learned:
            setattr(policy, "_" + name, np.ascontiguousarray(arrays[name]))
        counters = meta["counters"]
        policy._n_updates = int(counters["n_updates"])
        policy._revision = int(counters["revision"])
        policy._rng_state[0] = np.uint64(int(meta["rng_state"]))
        policy._uid = str(meta["uid"])
        policy._version_prefix = f"{cls.__name__}-{policy._uid}-"
        policy._applied_event_ids = ledger
        policy._version = None
        policy._unbind()
        policy._allocate_buffers()
        return policy


class KernelPolicy(Policy):
    """A contextual policy whose arms have a Gaussian posterior (covariance, mean) on a linear predictor.

    A subclass shows its decision rule: its ``_choose_one`` calls its own fused kernel (one compiled call per
    ``choose``, which also checks the context's finiteness), and its ``_decide_rows`` its rows kernel, which
    decides every row of a batch from the per-arm means and variances computed here
    (:func:`bandit.kernels.decide.rows_mean_var`).
    """

    _kernel_checks_finite = True
    action_probabilities_thread_safe = True  # fresh arrays per call, nogil kernels, no draw without sampling
    n_features: int  # contextual: always set

    @abstractmethod
    def _posterior(self) -> tuple[np.ndarray, np.ndarray]:
        """(covariance (K, D, D), mean (K, D)) of each arm's coefficients."""

    @abstractmethod
    def _decide_rows(
        self, X: np.ndarray, mean: np.ndarray, var: np.ndarray, eligible: np.ndarray, sample: bool, seeds: np.ndarray,
        idx: np.ndarray, probs: np.ndarray, scores: np.ndarray,
    ) -> None:
        """Decide the n rows of the contexts ``X`` (n, d) from the (n, K) means and variances of the arms' linear
        predictors (``eligible`` (1, K) or (n, K)); rows draw from their ``seeds`` (n,) uint64, or, when ``seeds`` is
        empty, from the policy's generator in order. Fills ``idx`` (n,), ``probs`` and ``scores`` (n, K)."""

    @property
    def _n_dims(self) -> int:
        return self.n_features + 1 if self.fit_intercept else self.n_features

    def _gaussian_prior(self, n_arms: int, l2: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """:func:`gaussian_prior` over this policy's D dimensions, plus refactorisation counters 0 (n_arms,) int64."""
        return (*gaussian_prior(n_arms, self._n_dims, l2), np.zeros(n_arms, dtype=np.int64))

    def _decision_rows(self) -> int:
        return decide.decision_rows(self._n_dims, len(self._names))

    def _batch_error(self, status: int, X: np.ndarray) -> Exception:
        """The exception for a negative batch-kernel status; a non-finite row is named by the validator."""
        if status == STATUS_NON_FINITE:
            check_contexts(X, self.n_features, "X")  # raises, naming the first row with NaN or inf
        return self._status_error(status, "X", X)

    def _choose_many(
        self, X: np.ndarray, eligible: np.ndarray, seeds: np.ndarray | None, sample: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        cov, coef = self._posterior()
        idx, probs, scores = self._batch_outputs(X.shape[0])
        mean, var = np.empty_like(probs), np.empty_like(probs)
        status = decide.rows_mean_var(X, cov, coef, mean, var)
        if status < 0:
            raise self._batch_error(status, X)
        self._decide_rows(X, mean, var, eligible, sample, decide.NO_SEEDS if seeds is None else seeds, idx, probs, scores)
        return idx, probs, scores


class RidgePolicy(KernelPolicy):
    """Disjoint ridge regression per arm: ``A_k = l2 I + sum x x^T``, ``b_k = sum r x``, ``theta_k = A_k^-1 b_k``.

    With ``discount`` gamma < 1 every update of arm k first forgets: ``A_k <- gamma A_k + (1 - gamma) l2 I``,
    ``b_k <- gamma b_k`` (the prior is kept, old data fade with weight gamma per update of the arm).
    """

    _state_arrays = ("A", "A_inv", "b", "theta", "n_since_refactor")
    _inverse_pairs = (("A", "A_inv"),)
    l2: float
    _A: np.ndarray
    _A_inv: np.ndarray
    _b: np.ndarray
    _theta: np.ndarray
    _n_since_refactor: np.ndarray
    #: Sherman-Morrison updates between exact refactorisations of A^-1 (keeps it symmetric positive definite).
    _REFACTOR_EVERY: ClassVar[int] = 512

    def _fresh_state(self, n_arms: int) -> dict[str, np.ndarray]:
        A, A_inv, theta, counters = self._gaussian_prior(n_arms, self.l2)
        return {"A": A, "A_inv": A_inv, "b": np.zeros_like(theta), "theta": theta, "n_since_refactor": counters}

    @classmethod
    def _state_shapes(
        cls, n_arms: int, n_features: int | None, config: dict[str, Any], arms: list[Arm]
    ) -> dict[str, tuple[tuple[int, ...], str]]:
        D = (n_features or 0) + (config.get("fit_intercept") is True)
        return {
            "A": ((n_arms, D, D), "<f8"),
            "A_inv": ((n_arms, D, D), "<f8"),
            "b": ((n_arms, D), "<f8"),
            "theta": ((n_arms, D), "<f8"),
            "n_since_refactor": ((n_arms,), "<i8"),
        }

    def _posterior(self) -> tuple[np.ndarray, np.ndarray]:
        return self._A_inv, self._theta

    def _update_one(self, x: np.ndarray, k: int, reward: float) -> int:
        args = (x, k, reward, self._A, self._A_inv, self._b, self._theta, self._n_since_refactor, self.discount, self.l2,
                self._REFACTOR_EVERY)
        return (self._update_entry or self._bind("update", ridge.ridge_update_context, args))(*args)

    def _update_many(self, X: np.ndarray, arms: np.ndarray, rewards: np.ndarray) -> None:
        status = ridge.ridge_update_batch(
            self._A, self._A_inv, self._b, self._theta, self._n_since_refactor, arms, X, rewards,
            np.ones(X.shape[0]), self.discount, self.l2, self._REFACTOR_EVERY,
        )
        if status < 0:
            raise self._batch_error(status, X)

    @property
    def coef_(self) -> np.ndarray:
        """Ridge coefficients per arm, shape (K, D) (last column = intercept when ``fit_intercept``). A copy."""
        return self._theta.copy()
