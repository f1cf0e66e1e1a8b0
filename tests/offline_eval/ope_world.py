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


# ----------------------------------------------------------------------------------------------------------------
# plan-upsell world: revenue = price x conversion with a non-linear truth
# ----------------------------------------------------------------------------------------------------------------


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


class UpsellOPEWorld:
    """Plan-upsell world with a non-linear conversion truth and a known policy value (by a large seeded sample).

    ``K`` plans priced evenly from 5.99 to 19.99; contexts ``d = 5`` (three Gaussian, two binary features); the
    conversion probability of plan k is ``sigmoid(a_k - s(x) * price_k / 10 + x^T b_k + 0.6 x0 x1 - 0.3 x2^2)``
    with a context-dependent price sensitivity ``s(x) = exp(0.4 x0 - 0.3 x3)`` (no linear-logistic model is
    exact); revenue ``price_k * conversion``. Logging: ``floor`` of uniform plus ``1 - floor`` of a softmax of
    noisy scores (temperature ``log_temp``); ``floor = 1`` is uniform. Targets: ``"greedy"`` (argmax of a
    perturbed value score: deterministic) and ``"softmax"`` (softmax of the same score, temperature 1 / 3 of the
    price scale).
    """

    def __init__(self, seed: int = 0, n_actions: int = 4, floor: float = 0.5, log_temp: float = 1.0) -> None:
        rng = np.random.default_rng(seed)
        self.K, self.d = n_actions, 5
        self.prices = np.round(np.linspace(5.99, 19.99, n_actions), 2)
        self.appeal = rng.normal(-1.6, 0.4, size=n_actions) + 0.9 * np.linspace(0, 1, n_actions)
        self.coef = rng.normal(0.0, 0.5, size=(self.d, n_actions))
        self.log_w = rng.normal(0.0, 1.0, size=(self.d, n_actions))
        self.tgt_noise = rng.normal(0.0, 0.3, size=(self.d, n_actions))
        self.floor, self.log_temp = float(floor), float(log_temp)
        self._truth: dict[str, float] = {}

    def contexts(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        X = np.empty((*shape, self.d))
        X[..., :3] = rng.standard_normal((*shape, 3))
        X[..., 3] = rng.random(shape) < 0.3
        X[..., 4] = rng.random(shape) < 0.5
        return X

    def conversion(self, X: np.ndarray) -> np.ndarray:
        sens = np.exp(0.4 * X[..., 0] - 0.3 * X[..., 3])[..., None]
        z = self.appeal - sens * self.prices / 10.0 + X @ self.coef
        z = z + (0.6 * X[..., 0] * X[..., 1] - 0.3 * X[..., 2] ** 2)[..., None]
        return _sigmoid(z)

    def expected_reward(self, X: np.ndarray) -> np.ndarray:
        return self.conversion(X) * self.prices

    def logging_probs(self, X: np.ndarray) -> np.ndarray:
        soft = softmax((X @ self.log_w) / self.log_temp)
        return (1.0 - self.floor) * soft + self.floor / self.K

    def target_probs(self, X: np.ndarray, kind: str) -> np.ndarray:
        score = self.expected_reward(X) + X @ self.tgt_noise
        if kind == "greedy":
            return np.eye(self.K)[score.argmax(axis=-1)]
        if kind == "softmax":
            return softmax(score / (self.prices.mean() / 15.0))
        raise ValueError(kind)

    def truth(self, kind: str, m: int = 4_000_000) -> float:
        """Policy value by a seeded sample of ``m`` contexts (Monte-Carlo error ~1e-4 relative)."""
        if kind not in self._truth:
            rng = np.random.default_rng(12345)
            total = 0.0
            for lo in range(0, m, 500_000):
                X = self.contexts(rng, (min(500_000, m - lo),))
                total += float((self.target_probs(X, kind) * self.expected_reward(X)).sum())
            self._truth[kind] = total / m
        return self._truth[kind]

    def draw(self, n: int, seed: int) -> tuple[LoggedData, np.ndarray]:
        """One log of n rows and its context matrix."""
        rng = np.random.default_rng(seed)
        X = self.contexts(rng, (n,))
        P = self.logging_probs(X)
        a = (P.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
        conv = rng.random(n) < self.conversion(X)[np.arange(n), a]
        reward = self.prices[a] * conv
        names = [f"plan{k}" for k in range(self.K)]
        return LoggedData(X, a, reward, P[np.arange(n), a], probabilities=P, action_names=names), X
