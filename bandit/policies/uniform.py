"""Uniformly random offers: the logging policy of a randomised experiment."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bandit.arms import Arm
from bandit.kernels import policy_kernels as pk
from bandit.policies.base import Policy

__all__ = ["UniformRandom"]


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

    def __init__(self, arms: Sequence[str | Arm], n_features: int | None = None, *, seed: int | None = None) -> None:
        super().__init__(arms, n_features, seed=seed)

    @classmethod
    def _test_params(cls) -> dict[str, Any]:
        return {}

    def _fresh_state(self, n_arms: int) -> dict[str, np.ndarray]:
        return {}

    def _allocate_buffers(self) -> None:
        self._zeros = np.zeros((1, len(self._names)))

    def _choose_one(self, x: np.ndarray, eligible: np.ndarray, use_seed: bool, seed: np.uint64, out: np.ndarray) -> int:
        idx = np.empty(1, dtype=np.int64)
        pk.decide_rows(
            pk.UNIFORM, self._zeros, self._zeros, self._values, eligible[None, :], 0.0, 0.0, True, self._rng_state,
            use_seed, np.array([seed], dtype=np.uint64), idx, out[0:1], out[1:2],
        )
        return int(idx[0])

    def _choose_many(
        self, X: np.ndarray, eligible: np.ndarray, seeds: np.ndarray | None, sample: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        idx, probs, scores = self._batch_outputs(X.shape[0])
        pk.decide_rows(
            pk.UNIFORM, self._zeros, self._zeros, self._values, eligible, 0.0, 0.0, sample, self._rng_state,
            seeds is not None, pk.NO_SEEDS if seeds is None else seeds, idx, probs, scores,
        )
        return idx, probs, scores

    def _update_one(self, x: np.ndarray, k: int, reward: float) -> int:
        return 0  # nothing to learn: the base class counts pulls and rewards

    def _update_many(self, X: np.ndarray, arms: np.ndarray, rewards: np.ndarray) -> None:
        return None  # nothing to learn: the base class counts pulls and rewards
