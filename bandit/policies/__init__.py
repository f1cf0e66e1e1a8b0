"""Bandit policies: one class per module, all sharing :class:`~bandit.policies.base.Policy`.

Adding a policy touches one file: a module here defining a :class:`~bandit.policies.base.Policy` subclass is
imported below, which registers the class (``Policy.__init_subclass__``). From then on :func:`policy_classes`
lists it, so :func:`warmup` compiles it, :func:`bandit.load` reads its files, simulation configs may name it and the
generic test suite runs on it. Making it a public name of :mod:`bandit` is a separate decision (its ``__all__``).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import time
from typing import Any

import numpy as np

from bandit import state as _state
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
    "policy_classes",
    "warmup",
]

# every policy module registers its classes on import, listed above or not
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")


def policy_classes() -> list[type[Policy]]:
    """Every concrete policy class of this package, in the order their modules were imported.

    Found by introspection: the classes ``Policy.__init_subclass__`` registered, minus abstract bases and private
    (underscore) classes, defined in :mod:`bandit.policies` (user subclasses elsewhere are loadable by
    :func:`bandit.load` but not listed here).

    Examples
    --------
    >>> from bandit.policies import policy_classes
    >>> sorted(cls.__name__ for cls in policy_classes())[:3]
    ['BetaTS', 'EpsilonGreedy', 'HybridLinUCB']
    """
    return [
        cls
        for cls in _state._REGISTRY.values()
        if cls.__module__.startswith(f"{__name__}.") and not inspect.isabstract(cls) and not cls.__name__.startswith("_")
    ]


def warmup() -> float:
    """Compile (or load from numba's on-disk cache) every kernel the policies use.

    Runs each policy of :func:`policy_classes` once through every public method on tiny arrays, so the first real request does not pay
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
    # arms with features: the hybrid policies need them, the others ignore them
    arms = [Arm(name="a", features=[1.0, 0.0]), Arm(name="b", features=[0.0, 1.0])]
    for cls in policy_classes():
        maker: Any = cls  # the constructors differ in whether n_features may be None
        for n_features in (2,) if cls._contextual else (2, None):
            policy = maker(arms, n_features=n_features, seed=0)
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
