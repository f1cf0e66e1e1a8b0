"""Bandit policies: one class per module, all sharing :class:`~bandit.policies.base.Policy`."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from bandit.arms import Arm
from bandit.policies.base import Policy
from bandit.policies.beta_ts import BetaTS
from bandit.policies.epsilon_greedy import EpsilonGreedy
from bandit.policies.hybrid_linear_ts import HybridLinearTS
from bandit.policies.hybrid_linucb import HybridLinUCB
from bandit.policies.linear_ts import LinearTS
from bandit.policies.linucb import LinUCB
from bandit.policies.logistic_ts import LogisticTS
from bandit.policies.uniform import UniformRandom
from bandit.policies.vw import VWPolicy

__all__ = [
    "BetaTS",
    "EpsilonGreedy",
    "HybridLinUCB",
    "HybridLinearTS",
    "LinUCB",
    "LinearTS",
    "LogisticTS",
    "Policy",
    "UniformRandom",
    "VWPolicy",
    "warmup",
]


def warmup() -> float:
    """Compile (or load from numba's on-disk cache) every kernel the policies use.

    Runs each policy once through every public method on tiny arrays, so the first real request does not pay
    for compilation. Kernels are compiled with ``cache=True``: the first call in a fresh environment compiles
    (tens of seconds), later processes load the cache (well under a second).

    Returns
    -------
    float
        Seconds taken.

    Examples
    --------
    >>> from bandit import warmup
    >>> warmup() >= 0.0
    True
    """
    start = time.perf_counter()
    X = np.array([[0.5, -0.5], [1.0, 0.0]])
    masks = np.array([[True, True], [False, True]])
    # Any: the constructors differ in whether n_features may be None (only BetaTS and UniformRandom get None here)
    classes: tuple[Any, ...] = (
        LinUCB, LinearTS, LogisticTS, EpsilonGreedy, BetaTS, UniformRandom, HybridLinUCB, HybridLinearTS, VWPolicy
    )
    for cls in classes:
        hybrid = cls in (HybridLinUCB, HybridLinearTS)
        arms = [Arm(name="a", features=[1.0, 0.0]), Arm(name="b", features=[0.0, 1.0])] if hybrid else ["a", "b"]
        for n_features in (2, None) if cls in (BetaTS, UniformRandom) else (2,):
            policy = cls(arms, n_features=n_features, seed=0)
            for fit in (False, True):  # the floor branch of the Thompson samplers
                policy.choose(X[0])
                policy.choose(X[0], eligible=["b"], event_id="warmup")
                policy.choose_batch(X)
                policy.choose_batch(X, eligible=masks, event_ids=["w0", "w1"])
                policy.action_probabilities(X, eligible=masks)
                policy.update(X[0], "a", 1.0)
                policy.update_batch(X, [0, 1], [0.0, 1.0])
                if fit:
                    break
                policy.exploration_floor = 0.1
    return time.perf_counter() - start
