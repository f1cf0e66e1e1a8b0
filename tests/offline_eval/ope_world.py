"""A synthetic upsell world with an exactly known policy value, for the off-policy estimator tests.

Users come in ``C`` discrete types with known frequencies; the context is the one-hot type vector (so a linear
reward model per arm is exactly right). Each (type, arm) has a known conversion probability, the logging and
target policies are per-type distributions, so the target's expected reward per decision is an exact finite sum.
Replications are drawn at once as (R, n) arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from offline_eval import LoggedData


def softmax(scores: np.ndarray) -> np.ndarray:
    z = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


@dataclass
class Draw:
    """R replications of n logged rows: user type, logged action, reward, each (R, n)."""

    types: np.ndarray
    action: np.ndarray
    reward: np.ndarray


class World:
    """Known world: type frequencies ``freq`` (C,), conversion table ``mu`` (C, K), logging table ``logging`` (C, K).

    ``floor`` mixes the logging policy with the uniform one so every logging probability is at least
    ``floor / K`` (bounded weights).
    """

    def __init__(self, seed: int = 0, n_types: int = 4, n_actions: int = 3, floor: float = 0.3) -> None:
        rng = np.random.default_rng(seed)
        self.C, self.K = n_types, n_actions
        self.freq = softmax(rng.normal(size=n_types))
        self.mu = rng.uniform(0.05, 0.6, size=(n_types, n_actions))
        self.logging = (1 - floor) * softmax(rng.normal(scale=1.5, size=(n_types, n_actions))) + floor / n_actions
        self.target = softmax(rng.normal(scale=2.0, size=(n_types, n_actions)))
        self.features = np.eye(n_types)

    def value(self, policy: np.ndarray) -> float:
        """Exact expected reward per decision of a per-type policy table (C, K)."""
        return float(self.freq @ (policy * self.mu).sum(axis=1))

    def draw(self, n: int, reps: int, seed: int) -> Draw:
        rng = np.random.default_rng(seed)
        types = rng.choice(self.C, size=(reps, n), p=self.freq)
        cdf = self.logging.cumsum(axis=1)[types]
        action = (cdf > rng.random((reps, n, 1))).argmax(axis=2)
        reward = (rng.random((reps, n)) < self.mu[types, action]).astype(np.float64)
        return Draw(types, action, reward)

    def logged(self, draw: Draw, rep: int = 0) -> LoggedData:
        t, a = draw.types[rep], draw.action[rep]
        probs = self.logging[t]
        return LoggedData(
            self.features[t], a, draw.reward[rep], probs[np.arange(len(a)), a], probabilities=probs
        )

    def target_probs(self, draw: Draw, rep: int = 0, policy: np.ndarray | None = None) -> np.ndarray:
        table = self.target if policy is None else policy
        return table[draw.types[rep]]

    def oracle_q(self, draw: Draw, rep: int = 0) -> np.ndarray:
        return self.mu[draw.types[rep]]
