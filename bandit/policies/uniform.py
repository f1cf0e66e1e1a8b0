"""Uniformly random offers: the logging policy of a randomised experiment."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numba import njit

from bandit.arms import Arm
from bandit.kernels import decide, propensity
from bandit.policies.base import Policy

__all__ = ["UniformRandom", "uniform_decide_rows"]

#: Kernel modules compiled into this module's numba cache (see tests/bandit/test_kernels.py).
LINKED_SOURCES = ("decide", "dense", "logistic", "propensity", "rng", "scoring", "status")
LINKED_SOURCES_SHA256 = "5caffd1252692377"


@njit(cache=True, nogil=True)
def uniform_decide_rows(eligible, sample, rng_state, seeds, out_idx, out_probs, out_scores):
    """Uniform decisions for n rows: every eligible arm scores 0 (-inf if ineligible), so the exact ties split the
    mass evenly, ``1 / |eligible|``; if ``sample``, one uniform of the row's generator draws the arm.

    ``eligible`` is (n, K) or (1, K); row ``i`` draws from ``seeds[i]`` or, when ``seeds`` is empty, from
    ``rng_state`` in order. Fills ``out_idx`` (n,), ``out_probs`` and ``out_scores`` (n, K).
    """
    st_row = np.empty(1, dtype=np.uint64)
    use_seeds = seeds.shape[0] > 0
    one_elig = eligible.shape[0] == 1
    for i in range(out_idx.shape[0]):
        st = decide.row_state(use_seeds, seeds, i, st_row, rng_state)
        elig = eligible[0 if one_elig else i]
        scores = out_scores[i]
        for k in range(elig.shape[0]):
            scores[k] = 0.0 if elig[k] else -np.inf
        propensity.argmax_tie_probs(scores, elig, out_probs[i])
        out_idx[i] = decide.draw_mixed(out_probs[i], elig, 0.0, sample, st)


class UniformRandom(Policy):
    """Offer an eligible arm uniformly at random: ``p_k = 1 / |eligible|``.

    The classic logging policy for collecting data that every other policy can later be evaluated on off-policy
    (every eligible arm has propensity at least ``1/K``). It learns nothing; ``update`` only counts pulls and
    rewards (shown by ``repr``). The context is ignored unless ``n_features`` is given, in which case it is
    validated like a contextual policy's.

    Parameters
    ----------
    arms : list of str or Arm
    n_features : int, optional
        Validate contexts of this length (they are still ignored).
    seed : int, optional

    Examples
    --------
    >>> from bandit import UniformRandom
    >>> policy = UniformRandom(["individual", "duo", "family"], seed=0)
    >>> d = policy.choose(None, eligible=["duo", "family"], event_id="req-1")
    >>> d.probabilities, d.propensity
    (array([0. , 0.5, 0.5]), 0.5)
    """

    _contextual = False
    action_probabilities_thread_safe = True  # fresh arrays per batch, a nogil kernel, no draw without sampling

    def __init__(self, arms: Sequence[str | Arm], n_features: int | None = None, *, seed: int | None = None) -> None:
        super().__init__(arms, n_features, seed=seed)

    @classmethod
    def _test_params(cls) -> dict[str, Any]:
        return {}

    def _fresh_state(self, n_arms: int) -> dict[str, np.ndarray]:
        return {}

    def _choose_one(self, x: np.ndarray, eligible: np.ndarray, st: np.ndarray, out: np.ndarray) -> int:
        idx = np.empty(1, dtype=np.int64)
        uniform_decide_rows(eligible[None, :], True, st, decide.NO_SEEDS, idx, out[0:1], out[1:2])
        return int(idx[0])

    def _choose_many(
        self, X: np.ndarray, eligible: np.ndarray, seeds: np.ndarray | None, sample: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        idx, probs, scores = self._batch_outputs(X.shape[0])
        uniform_decide_rows(
            eligible, sample, self._rng_state, decide.NO_SEEDS if seeds is None else seeds, idx, probs, scores
        )
        return idx, probs, scores

    def _update_one(self, x: np.ndarray, k: int, reward: float) -> int:
        return 0  # nothing to learn: the base class counts pulls and rewards

    def _update_many(self, X: np.ndarray, arms: np.ndarray, rewards: np.ndarray) -> None:
        return None  # nothing to learn: the base class counts pulls and rewards
