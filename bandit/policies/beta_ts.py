"""Beta-Bernoulli Thompson sampling: the non-contextual baseline."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import numpy as np
from numba import njit

from bandit._validation import check_scalar
from bandit.arms import Arm
from bandit.kernels import decide
from bandit.kernels.beta import beta_argmax_probs, beta_draw
from bandit.policies.base import Policy

__all__ = ["BetaTS", "beta_ts_draw_rows"]

#: Kernel modules compiled into this module's numba cache (see tests/bandit/test_kernels.py).
LINKED_SOURCES = ("beta", "decide", "dense", "logistic", "propensity", "rng", "scoring", "status")
LINKED_SOURCES_SHA256 = "45d0d5e04823a30e"


@njit(cache=True, nogil=True)
def beta_ts_draw_rows(alpha, beta, values, eligible, floor, rng_state, seeds, out_idx, out_scores):
    """Beta-Bernoulli Thompson draws for n rows: arm ``argmax_k value_k * Beta(alpha_k, beta_k)`` per row.

    Each row tosses the exploration floor's coin (:func:`~bandit.kernels.decide.floor_coin`), draws one rate per
    eligible arm (:func:`~bandit.kernels.beta.beta_draw`; scores ``value_k * rate_k``, -inf if ineligible) and
    offers the argmax (exact ties split), or a uniform eligible arm when the coin fell below ``floor``. The exact
    probabilities come from :func:`~bandit.kernels.beta.beta_argmax_probs`.

    Parameters
    ----------
    alpha, beta, values : (K,)
    eligible : (n, K) or (1, K) bool
    seeds : (n,) uint64
        Per-row seeds; when empty, rows draw from ``rng_state`` in order.
    out_idx : (n,) int64
    out_scores : (n, K)
    """
    st_row = np.empty(1, dtype=np.uint64)
    use_seeds = seeds.shape[0] > 0
    one_elig = eligible.shape[0] == 1
    for i in range(out_idx.shape[0]):
        st = decide.row_state(use_seeds, seeds, i, st_row, rng_state)
        elig = eligible[0 if one_elig else i]
        scores = out_scores[i]
        coin = decide.floor_coin(floor, st)
        for k in range(values.shape[0]):
            scores[k] = values[k] * beta_draw(alpha[k], beta[k], st) if elig[k] else -np.inf
        explore = decide.floor_pick(coin, floor, elig, st)
        out_idx[i] = explore if explore >= 0 else decide.argmax_random_ties(scores, elig, st)


#: Largest prior pseudo-count (prior_alpha, prior_beta): a prior worth 1e12 observations is already beyond any use,
#: and from about 1e17-1e18 the posterior's spread falls below float64's resolution of its mean (NaN probabilities).
MAX_PRIOR = 1e12


class BetaTS(Policy):
    """Beta-Bernoulli Thompson sampling (no context): a baseline, and the right model for a single segment.

    Each arm's conversion rate has a ``Beta(prior_alpha + successes, prior_beta + failures)`` posterior. To
    decide, the policy draws one rate per eligible arm and offers ``argmax_k value_k * rate_k``. The exact
    probability that arm k wins is the 1-D integral ``int f_k(y) prod_{j != k} F_j(y) dy`` of Beta densities and
    CDFs (computed with SciPy's regularised incomplete beta function; about a millisecond for 6 arms, cached
    between updates since it does not depend on the context).

    Rewards must be in [0, 1]: a reward r adds r to the successes and 1 - r to the failures. With
    ``discount`` gamma < 1, each update of an arm first shrinks its counts towards the prior:
    ``alpha <- prior_alpha + gamma (alpha - prior_alpha)`` (same for beta).

    The context is ignored; give ``n_features`` only if you want contexts validated like a contextual policy's
    (e.g. to share a decision log with one), otherwise pass ``None`` as the context.

    Defaults and why: ``prior_alpha = prior_beta = 1`` (uniform prior on each rate) is the standard
    uninformative choice; with low conversion rates, a prior such as ``Beta(1, 20)`` explores less wastefully.

    Parameters
    ----------
    arms : list of str or Arm
    prior_alpha, prior_beta : float, default 1.0
        Beta prior pseudo-counts, in (0, 1e12] (``MAX_PRIOR``: beyond about 1e17 pseudo-counts the quadrature of
        the probabilities loses its float64 resolution and returned NaN).
    n_features : int, optional
        Validate contexts of this length (they are still ignored).
    exploration_floor : float, default 0.0
    discount : float, default 1.0
    seed : int, optional

    Examples
    --------
    >>> from bandit import BetaTS
    >>> policy = BetaTS(["individual", "duo"], seed=0)
    >>> policy.update_batch(None, ["individual"] * 10 + ["duo"] * 10, [1] * 2 + [0] * 8 + [1] * 5 + [0] * 5)
    >>> policy.choose(None).probabilities.round(3)
    array([0.091, 0.909])
    """

    _contextual = False
    _reward_low = 0.0
    _reward_high = 1.0
    _state_arrays = ("alpha", "beta")
    _alpha: np.ndarray
    _beta: np.ndarray

    def __init__(
        self,
        arms: Sequence[str | Arm],
        *,
        prior_alpha: float = 1.0,
        prior_beta: float = 1.0,
        n_features: int | None = None,
        exploration_floor: float = 0.0,
        discount: float = 1.0,
        seed: int | None = None,
    ) -> None:
        self.prior_alpha = check_scalar(prior_alpha, "prior_alpha", low=0.0, low_inclusive=False, high=MAX_PRIOR)
        self.prior_beta = check_scalar(prior_beta, "prior_beta", low=0.0, low_inclusive=False, high=MAX_PRIOR)
        super().__init__(
            arms, n_features, exploration_floor=exploration_floor, discount=discount, fit_intercept=False, seed=seed
        )

    @classmethod
    def _test_params(cls) -> dict[str, Any]:
        return {"prior_alpha": 1.0, "prior_beta": 2.0, "exploration_floor": 0.05}

    def _fresh_state(self, n_arms: int) -> dict[str, np.ndarray]:
        return {"alpha": np.full(n_arms, self.prior_alpha), "beta": np.full(n_arms, self.prior_beta)}

    @classmethod
    def _state_shapes(
        cls, n_arms: int, n_features: int | None, config: dict[str, Any], arms: list[Arm]
    ) -> dict[str, tuple[tuple[int, ...], str]]:
        return {"alpha": ((n_arms,), "<f8"), "beta": ((n_arms,), "<f8")}

    @classmethod
    def _from_state(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> BetaTS:
        policy = cast(BetaTS, super()._from_state(meta, arrays))
        # every update adds r and 1 - r (r in [0, 1]) to an arm's counts above the prior, discounting only shrinks
        # them towards it: a file whose counts leave [prior, prior + pulls] was not written by this policy (and
        # zero, negative or huge counts break the Beta quadrature)
        pulls = np.array(policy._pulls, dtype=np.float64)
        for name, prior in (("alpha", policy.prior_alpha), ("beta", policy.prior_beta)):
            counts = getattr(policy, "_" + name) - prior
            tol = 1e-9 * (prior + pulls + 1.0)
            if not ((counts >= -tol) & (counts <= pulls + tol)).all():
                raise ValueError(
                    f"array {name!r} must lie between prior_{name}={prior} and prior_{name} + pulls for every arm"
                )
        return policy

    def _allocate_buffers(self) -> None:
        self._prob_cache: dict[tuple[int, bytes], np.ndarray] = {}

    def _probabilities(self, eligible: np.ndarray) -> np.ndarray:
        """Exact distribution for one eligibility mask, cached per (state revision, mask)."""
        key = (self._revision, eligible.tobytes())
        p = self._prob_cache.get(key)
        if p is None:
            if len(self._prob_cache) > 64 or any(k[0] != self._revision for k in self._prob_cache):
                self._prob_cache.clear()
            p = beta_argmax_probs(self._alpha, self._beta, self._values, eligible)
            decide.mix_floor(p, eligible, self.exploration_floor)
            p.flags.writeable = False
            self._prob_cache[key] = p
        return p

    def _choose_one(self, x: np.ndarray, eligible: np.ndarray, st: np.ndarray, out: np.ndarray) -> int:
        idx = np.empty(1, dtype=np.int64)
        beta_ts_draw_rows(
            self._alpha, self._beta, self._values, eligible[None, :], self.exploration_floor, st, decide.NO_SEEDS, idx,
            out[1:2],
        )
        out[0] = self._probabilities(eligible)
        return int(idx[0])

    def _choose_many(
        self, X: np.ndarray, eligible: np.ndarray, seeds: np.ndarray | None, sample: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        idx, probs, scores = self._batch_outputs(X.shape[0])
        if sample:
            beta_ts_draw_rows(
                self._alpha, self._beta, self._values, eligible, self.exploration_floor, self._rng_state,
                decide.NO_SEEDS if seeds is None else seeds, idx, scores,
            )
        else:
            scores[:] = np.where(eligible, self._values * self._alpha / (self._alpha + self._beta), -np.inf)
        if eligible.shape[0] == 1:
            probs[:] = self._probabilities(eligible[0])
        else:
            masks, inverse = np.unique(eligible, axis=0, return_inverse=True)
            table = np.stack([self._probabilities(m) for m in masks])
            np.take(table, inverse.reshape(-1), axis=0, out=probs)
        return idx, probs, scores

    def _discounted(self, k: np.ndarray | int) -> tuple[Any, Any]:
        g = self.discount
        a = self.prior_alpha + g * (self._alpha[k] - self.prior_alpha)
        b = self.prior_beta + g * (self._beta[k] - self.prior_beta)
        return a, b

    def _update_one(self, x: np.ndarray, k: int, reward: float) -> int:
        a, b = self._discounted(k)
        self._alpha[k] = a + reward
        self._beta[k] = b + (1.0 - reward)
        return 0

    def _update_many(self, X: np.ndarray, arms: np.ndarray, rewards: np.ndarray) -> None:
        if self.discount == 1.0:
            np.add.at(self._alpha, arms, rewards)
            np.add.at(self._beta, arms, 1.0 - rewards)
            return
        for k, r in zip(arms.tolist(), rewards.tolist(), strict=False):
            self._update_one(X, k, r)
