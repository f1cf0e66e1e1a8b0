"""The shared machinery of HybridLinUCB and HybridLinearTS: the hybrid joint ridge model of Li et al. (2010).

The arithmetic lives in :mod:`bandit.kernels.hybrid` (its docstring derives the formulas); this module validates
the arms' features and connects the kernels to the decision contract of :class:`~bandit.policies.base.Policy`.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from bandit.arms import Arm, as_arms
from bandit.kernels import decide, hybrid
from bandit.kernels.status import STATUS_SCORE_OVERFLOW
from bandit.policies.base import Policy, gaussian_prior, scaled_prior_precision

__all__ = ["HybridRidgePolicy", "joint_prior_precision"]


def check_arm_features(arms: Sequence[Arm], name: str, n_arm_features: int | None = None) -> int:
    """The common length m of the arms' ``features``; ValueError naming ``name`` if one is missing or differs.

    ``name`` is ``"arms"`` (a constructor's list) or ``"arm"`` (one arm for ``add_arm``); ``n_arm_features`` is
    the length every arm must have (None: that of the first arm).
    """
    m = n_arm_features if n_arm_features is not None else len(arms[0].features or [])
    for i, arm in enumerate(arms):
        where = f"{name}[{i}] ({arm.name!r})" if name == "arms" else f"{name} {arm.name!r}"
        feats = arm.features
        if not feats:
            raise ValueError(
                f"{where} has no features: hybrid policies need a numeric description of every arm, e.g. "
                f"Arm(name={arm.name!r}, value={arm.value}, features=[price / 10, log2(seats), ...])"
            )
        if not all(math.isfinite(f) for f in feats):
            raise ValueError(f"{where} has a NaN or infinite feature: {list(feats)}")
        if len(feats) != m:
            raise ValueError(
                f"{where} has {len(feats)} features, expected {m} like the other arms; every arm needs the same "
                "description (same features, same order)"
            )
    return m


def joint_prior_precision(owner: str, arms: Sequence[str | Arm], n_features: Any, fit_intercept: bool) -> float:
    """``P / 4``, HybridLinUCB's default prior precision of every coefficient, shared and per arm.

    P = (m + 1) D is the length of the shared feature vector ``z = vec(f x^T)`` (m arm features and D context
    columns, each with the constant of ``fit_intercept``). It is :func:`~bandit.policies.base.scaled_prior_precision`
    applied to the joint model: on standardised contexts and order-one arm features ``E ||z||^2 = P``, so the shared
    part alone gives a prediction the prior standard deviation ``2 sigma`` of a disjoint policy's arm, and the arm's
    own part, ``x . theta_a`` with ``E ||x||^2 = D``, only ``2 sigma / sqrt(m + 1)``: a prior deviation from the
    shared model, not a second model as uncertain as the whole (see :class:`HybridRidgePolicy`, "Cold start").
    ``arms`` and ``n_features`` are validated here, as the policy would (it is needed before the policy exists);
    ``owner`` is the class name for the error messages.

    Examples
    --------
    >>> arms = [Arm(name="a", features=[1.2, 0.0]), Arm(name="b", features=[1.7, 1.0])]
    >>> joint_prior_precision("HybridLinUCB", arms, n_features=23, fit_intercept=True)  # (2 + 1) * 24 / 4
    18.0
    """
    arm_list = as_arms(arms)
    n_arm_dims = check_arm_features(arm_list, "arms") + bool(fit_intercept)
    return scaled_prior_precision(owner, n_features, fit_intercept) * n_arm_dims


class HybridRidgePolicy(Policy):
    """Hybrid linear model: coefficients shared through the arms' features plus per-arm ridge coefficients.

    Arm ``a`` carries numeric ``features`` (m,) (:attr:`Arm.features`, same length and meaning for every arm). With
    ``fit_intercept`` a constant 1 is appended both to the context, ``x`` (D = ``n_features`` + 1), and to the arm
    features, ``f_a`` (m + 1). The expected reward is

        ``E[r | x, a] = z_{x,a} . beta + x . theta_a``,  with ``z_{x,a} = vec(f_a x^T)`` (P = (m + 1) D entries),

    so the shared ``beta`` holds every (arm feature x context feature) interaction ("price hurts price-sensitive
    users"), the arm features' main effects ("price hurts on average"), context effects common to all arms and a
    global intercept (the constant columns), and ``theta_a`` is arm ``a``'s own correction. Both are fit by one
    ridge regression, exactly (the block elimination of Li et al. 2010, Algorithm 2, with their ``A_0``, ``b_0``,
    ``A_a``, ``B_a``, ``b_a``; see :mod:`bandit.kernels.hybrid`), with prior precision ``l2`` on ``beta`` and
    ``arm_l2`` on every ``theta_a`` (Li et al.: 1 and 1; the defaults: "Cold start" below). The posterior variance
    of an arm's prediction (in noise units) is Li et al.'s

        ``s_{x,a} = x^T A_a^-1 x + (z - B_a^T A_a^-1 x)^T A_0^-1 (z - B_a^T A_a^-1 x)``.

    Cold start. A new arm (``add_arm(Arm(name, value, features))``) starts with ``theta_a`` at its prior (0, no
    data): its mean ``z . beta`` already uses everything learned about arms with similar features, and the variance
    of its prediction is ``x^T x / arm_l2 + z^T A0^-1 z``. When every arm has its own free coefficients, the data
    never separate ``beta`` from the ``theta_a``: ``x . theta_a + z . beta`` is one linear function of ``x`` per
    arm, and only the prior (``l2`` against ``arm_l2``) decides how much of it is shared. For a new arm whose
    features are a combination ``sum_a c_a f_a`` of launched arms' features, the shared part's variance is therefore
    bounded below by about ``sum_a c_a^2 x^T x / arm_l2`` (the launched arms' own deviations, which the data cannot
    tell apart from ``beta``), however much data the other arms have: ``arm_l2`` sets the between-arm
    heterogeneity the model allows, and with it how uncertain a new arm looks. Li et al.'s identity priors (``l2 =
    arm_l2 = 1``) let every arm deviate from the shared model by ``sqrt(D)`` noise units (about 5 for the
    simulator's 24 context columns), as much as a disjoint arm under a flat prior. HybridLinUCB's default instead
    scales both to ``P / 4`` (:func:`joint_prior_precision`), the argument of
    :func:`~bandit.policies.base.scaled_prior_precision` applied to the joint model: the shared part gives a
    prediction the prior standard deviation ``2 sigma`` of a disjoint arm, and an arm's own deviation from it
    ``2 sigma / sqrt(m + 1)``. Measured with ``bench/cold_start_bench.py`` (5 world seeds; regret over the first
    5,000 offers after the launch; HybridLinUCB at this default against Li et al.'s priors): the novel-tier launch
    fell from 2,616 to 1,636 (LinUCB: 1,946) with outcomes learned at arrival and from 2,640 to 681 (LinUCB: 930)
    with outcomes learned at window close; the known-attribute launch moved from 590 to 602 (LinUCB: 616); and on
    ``bench/defaults_bench.py``'s ``upsell_sim`` world the revenue share of the oracle's rose from 0.841 to 0.847.
    The known launch hardly depends on the prior (599-645 on seeds 0-2 over 18 settings of ``l2`` and ``arm_l2``
    from 1 to 600, 605 at Li et al.'s): its window is dominated by steady-state error, not by learning the new plan (LinUCB's regret
    before the launch is as large), and per-arm least-squares fits linear in the context -- the hybrids' model
    class too -- fitted exactly to the world's expected values still lose 370 there.

    Whatever the model, the first outcomes a new arm learns are biased when outcomes are learned as they arrive
    (production's ``update_from_log``): a conversion is learned when it arrives, a non-conversion only when its
    attribution window closes, so for about one window nearly every learned outcome of the new arm is a conversion
    (after the first refresh of the simulator's launch, LinUCB had learned 18 outcomes of the new plan, all
    conversions, and predicted 0.89 for a true 0.11). The simulator's ``learn_at="window_close"`` measures the
    alternative (:func:`bandit.simulation.loop.run_policy`).

    ``discount`` gamma < 1 ages the whole joint system at every update (whichever arm): every per-arm and shared
    statistic, towards the prior, so an observation's weight is ``gamma^age`` with the age counted in observations
    of any arm (the disjoint policies count an arm's own updates instead: here the shared coefficients tie all
    arms' data together). It costs a full rebuild per update (``O(K D^2 P + K D P^2 + P^3)``).

    Scale the arm features like the context (numbers of order one, e.g. price / 10, log2 of seats, 0/1 flags).
    """

    _state_arrays = ("A", "A_inv", "B", "C", "b", "theta")
    _shared_state_arrays = ("Z", "c", "A0_inv", "beta", "n_since_refactor")
    _inverse_pairs = (("A", "A_inv"),)
    action_probabilities_thread_safe = True  # fresh arrays per batch, nogil kernels, no draw without sampling
    #: Rank-1 updates between exact rebuilds of every derived array from the raw statistics.
    _REFACTOR_EVERY: ClassVar[int] = 512

    l2: float
    n_features: int
    # learned arrays (set from _fresh_state by Policy.__init__; see bandit.kernels.hybrid for their meaning)
    _A: np.ndarray
    _A_inv: np.ndarray
    _B: np.ndarray
    _C: np.ndarray
    _b: np.ndarray
    _theta: np.ndarray
    _Z: np.ndarray
    _c: np.ndarray
    _A0_inv: np.ndarray
    _beta: np.ndarray
    _n_since_refactor: np.ndarray
    arm_l2: float

    def __init__(
        self,
        arms: Sequence[str | Arm],
        n_features: int,
        *,
        exploration_floor: float = 0.0,
        discount: float = 1.0,
        fit_intercept: bool = True,
        seed: int | None = None,
    ) -> None:
        arm_list = as_arms(arms)
        #: m, the length of every arm's ``features`` (without the constant added by ``fit_intercept``).
        self.n_arm_features: int = check_arm_features(arm_list, "arms")
        super().__init__(
            arm_list,
            n_features,
            exploration_floor=exploration_floor,
            discount=discount,
            fit_intercept=fit_intercept,
            seed=seed,
        )

    @property
    def _n_dims(self) -> int:
        return self.n_features + 1 if self.fit_intercept else self.n_features

    @property
    def _n_arm_dims(self) -> int:
        return self.n_arm_features + 1 if self.fit_intercept else self.n_arm_features

    def _fresh_state(self, n_arms: int) -> dict[str, np.ndarray]:
        D = self._n_dims
        P = self._n_arm_dims * D
        A, A_inv, theta = gaussian_prior(n_arms, D, self.arm_l2)
        return {
            "A": A,
            "A_inv": A_inv,
            "B": np.zeros((n_arms, D, P)),
            "C": np.zeros((n_arms, D, P)),
            "b": np.zeros_like(theta),
            "theta": theta,
            "Z": np.eye(P) * self.l2,
            "c": np.zeros(P),
            "A0_inv": np.eye(P) / self.l2,
            "beta": np.zeros(P),
            "n_since_refactor": np.zeros(1, dtype=np.int64),
        }

    @classmethod
    def _state_shapes(
        cls, n_arms: int, n_features: int | None, config: dict[str, Any], arms: list[Arm]
    ) -> dict[str, tuple[tuple[int, ...], str]]:
        fit_intercept = config.get("fit_intercept") is True
        D = (n_features or 0) + fit_intercept
        P = (len(arms[0].features or ()) + fit_intercept) * D
        per_arm = {"A": (D, D), "A_inv": (D, D), "B": (D, P), "C": (D, P), "b": (D,), "theta": (D,)}
        shapes = {name: ((n_arms, *shape), "<f8") for name, shape in per_arm.items()}
        shared = {"Z": (P, P), "c": (P,), "A0_inv": (P, P), "beta": (P,)}
        shapes.update({name: (shape, "<f8") for name, shape in shared.items()})
        shapes["n_since_refactor"] = ((1,), "<i8")
        return shapes

    def _allocate_buffers(self) -> None:
        F = np.array([a.features for a in self._arms], dtype=np.float64)
        self._F = np.concatenate([F, np.ones((len(F), 1))], axis=1) if self.fit_intercept else F
        self._x = np.ones(self._n_dims)  # the intercept slot stays 1
        self._mv = np.empty((2, len(self._names)))
        self._idx = np.empty(1, dtype=np.int64)

    def add_arm(self, arm: str | Arm) -> int:
        """Append a new arm (it needs ``features`` like the others); see :meth:`Policy.add_arm`.

        The new arm's own coefficients start from the prior, the shared ones already score it from its features.

        Raises
        ------
        ValueError
            The arm has no features, or not ``n_arm_features`` of them (nothing is changed), or its name exists.
        """
        self._check_writable("add_arm")
        new = as_arms([arm])[0]
        if new.name not in self._arm_index:  # a duplicate name is reported by Policy.add_arm
            check_arm_features([new], "arm", self.n_arm_features)
        return super().add_arm(new)

    # ------------------------------------------------------------------------------------------------------------
    # hooks
    # ------------------------------------------------------------------------------------------------------------

    def _design(self, X: np.ndarray) -> np.ndarray:
        if not self.fit_intercept:
            return X
        return np.concatenate([X, np.ones((X.shape[0], 1))], axis=1)

    def _mean_var(self, Xd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n, k = Xd.shape[0], len(self._names)
        mu = np.empty((n, k))
        var = np.empty((n, k))
        hybrid.hybrid_mean_var_batch(self._F, self._A_inv, self._C, self._theta, self._A0_inv, self._beta, Xd, mu, var)
        if not (np.isfinite(mu).all() and np.isfinite(var).all()):
            raise self._status_error(STATUS_SCORE_OVERFLOW, "X")
        return mu, var

    @abstractmethod
    def _decide_rows(
        self, mean: np.ndarray, var: np.ndarray, eligible: np.ndarray, sample: bool, st: np.ndarray,
        seeds: np.ndarray, idx: np.ndarray, probs: np.ndarray, scores: np.ndarray,
    ) -> None:
        """The policy's rule for n rows, from the (n, K) (or (1, K)) means and variances of the arms' predictions;
        rows draw from their ``seeds`` or, when ``seeds`` is empty, from the generator ``st`` in order."""

    def _choose_one(self, x: np.ndarray, eligible: np.ndarray, st: np.ndarray, out: np.ndarray) -> int:
        xd = self._x
        xd[: self.n_features] = x
        mv = self._mv
        hybrid.hybrid_mean_var(self._F, self._A_inv, self._C, self._theta, self._A0_inv, self._beta, xd, mv[0], mv[1])
        if not np.isfinite(mv).all():
            return STATUS_SCORE_OVERFLOW
        self._decide_rows(mv[0:1], mv[1:2], eligible[None, :], True, st, decide.NO_SEEDS, self._idx, out[0:1],
                          out[1:2])
        return int(self._idx[0])

    def _choose_many(
        self, X: np.ndarray, eligible: np.ndarray, seeds: np.ndarray | None, sample: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        mu, var = self._mean_var(self._design(X))
        idx, probs, scores = self._batch_outputs(X.shape[0])
        self._decide_rows(mu, var, eligible, sample, self._rng_state, decide.NO_SEEDS if seeds is None else seeds, idx,
                          probs, scores)
        return idx, probs, scores

    def _update_one(self, x: np.ndarray, k: int, reward: float) -> int:
        xd = self._x
        xd[: self.n_features] = x
        return hybrid.hybrid_update(
            self._F, self._A, self._A_inv, self._B, self._C, self._b, self._theta, self._Z, self._c, self._A0_inv,
            self._beta, self._n_since_refactor, k, xd, reward, self.discount, self.l2, self.arm_l2,
            self._REFACTOR_EVERY,
        )

    def _update_many(self, X: np.ndarray, arms: np.ndarray, rewards: np.ndarray) -> None:
        status = hybrid.hybrid_update_batch(
            self._F, self._A, self._A_inv, self._B, self._C, self._b, self._theta, self._Z, self._c, self._A0_inv,
            self._beta, self._n_since_refactor, arms, self._design(X), rewards, self.discount, self.l2, self.arm_l2,
        )
        if status < 0:
            raise self._status_error(status, "X", X)

    # ------------------------------------------------------------------------------------------------------------
    # inspection
    # ------------------------------------------------------------------------------------------------------------

    def predict(self, X: Any) -> np.ndarray:
        """Posterior mean reward ``z_{x,a} . beta + x . theta_a`` of every arm for every row (not times value).

        Parameters
        ----------
        X : array-like of shape (n, n_features)

        Returns
        -------
        ndarray of float64, shape (n, K)
            Retired arms included. For an arm never offered this is what the shared model infers from its features.
        """
        lock = self._lock
        if lock is not None:
            with lock:
                return self._mean_var(self._design(self._batch_contexts(X, "X")))[0]
        return self._mean_var(self._design(self._batch_contexts(X, "X")))[0]

    @property
    def coef_(self) -> np.ndarray:
        """Per-arm coefficients ``theta_a``, shape (K, D) (last column = intercept when ``fit_intercept``). A copy."""
        return self._theta.copy()

    @property
    def shared_coef_(self) -> np.ndarray:
        """Shared coefficients ``beta`` as an (m + 1, D) matrix (m, D without ``fit_intercept``). A copy.

        Entry (i, j) multiplies ``f[i] * x[j]``, where ``f`` and ``x`` end with the constant 1 when ``fit_intercept``:
        the last row holds the context effects common to all arms, the last column the arm features' main effects.
        """
        return self._beta.reshape(self._n_arm_dims, self._n_dims).copy()
