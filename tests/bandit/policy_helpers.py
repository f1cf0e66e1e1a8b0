"""Shared helpers for the policy test suite: the policy classes found by introspection, builders, state capture."""

from __future__ import annotations

import numpy as np

from bandit import Arm
from bandit.policies import policy_classes
from bandit.policies._hybrid import HybridRidgePolicy
from bandit.policies.base import KernelPolicy, Policy, RidgePolicy

#: Features (price / 10, log2 seats) are used by the hybrid policies only.
ARMS = [
    Arm(name="individual", value=1.0, features=[1.2, 0.0]),
    Arm(name="duo", value=1.5, features=[1.7, 1.0]),
    Arm(name="family", value=2.0, features=[2.0, 2.6]),
    Arm(name="student", value=0.5, features=[0.6, 0.0]),
]
K = len(ARMS)
D = 3

#: Every policy class, found by introspection (the classes ``Policy.__init_subclass__`` registered).
POLICY_CLASSES = sorted(policy_classes(), key=lambda c: c.__name__)
#: Classes whose choice depends on the context.
CONTEXTUAL = [c for c in POLICY_CLASSES if c._contextual]
#: Disjoint ridge models per arm (closed-form state, batch == sequential updates).
RIDGE = [c for c in POLICY_CLASSES if issubclass(c, RidgePolicy)]
#: Contextual policies with a Gaussian posterior per arm (they learn with their default parameters).
GAUSSIAN = [c for c in POLICY_CLASSES if issubclass(c, KernelPolicy)]
#: Hybrid (shared + per-arm) models.
HYBRID = [c for c in POLICY_CLASSES if issubclass(c, HybridRidgePolicy)]
#: Policies for 0/1 conversions (rewards must lie in [0, 1]).
CONVERSION = [c for c in POLICY_CLASSES if (c._reward_low, c._reward_high) == (0.0, 1.0)]


def new_arm(name: str, value: float = 1.0) -> Arm:
    """An arm for ``add_arm``, described like ARMS (the hybrid policies need features)."""
    return Arm(name=name, value=value, features=[1.5, 1.6])


def make(cls: type[Policy], seed: int = 0, **overrides) -> Policy:
    """A policy of ``cls`` with its small test parameters, on ARMS and D features."""
    return cls(ARMS, n_features=D, seed=seed, **{**cls._test_params(), **overrides})


def training_data(n: int = 200, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Contexts, arms and 0/1 rewards with arm-dependent conversion rates."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, D))
    arms = rng.integers(0, K, size=n)
    w = np.array([[0.8, -0.5, 0.0], [-0.6, 0.9, 0.2], [0.1, 0.1, 0.9], [0.0, -0.8, -0.4]])
    logits = np.einsum("nd,nd->n", X, w[arms]) - 0.3
    rewards = (rng.random(n) < 1.0 / (1.0 + np.exp(-logits))).astype(float)
    return X, arms, rewards


def trained(cls: type[Policy], seed: int = 0, n: int = 200, **overrides) -> Policy:
    """A policy that has learned from ``training_data(n)`` (so its state is not the prior)."""
    policy = make(cls, seed=seed, **overrides)
    X, arms, rewards = training_data(n)
    policy.update_batch(X, arms, rewards)
    return policy


def state_of(policy: Policy) -> dict:
    """Everything that defines the policy's behaviour, as comparable plain values/arrays (copies)."""
    meta, arrays = policy._get_state()
    return {"meta": meta, "arrays": {k: np.array(v, copy=True) for k, v in arrays.items()}}


def assert_same_state(a: dict, b: dict, *, same_instance: bool = True) -> None:
    """Equal learned state; ``same_instance=False`` ignores the instance id (two policies built alike)."""
    ma, mb = dict(a["meta"]), dict(b["meta"])
    if not same_instance:
        ma.pop("uid"), mb.pop("uid")
    assert ma == mb
    assert a["arrays"].keys() == b["arrays"].keys()
    for k in a["arrays"]:
        np.testing.assert_array_equal(a["arrays"][k], b["arrays"][k], err_msg=k)


def _samples_scores(cls: type[Policy]) -> bool:
    """Whether ``cls`` draws random scores (a Thompson sampler): two event ids give the same state and context
    different scores."""
    policy = trained(cls, n=50)
    x = np.linspace(-0.5, 0.5, D)
    return not np.array_equal(policy.choose(x, event_id="probe-1").scores, policy.choose(x, event_id="probe-2").scores)


#: Thompson samplers (randomised scores; propensities by quadrature), found by their behaviour.
THOMPSON = [c for c in POLICY_CLASSES if _samples_scores(c)]
