"""Pure numpy / scipy references of the kernels in bandit.kernels (slow, obvious, independent implementations)."""

from __future__ import annotations

import numpy as np
from scipy import integrate, optimize
from scipy.special import expit, logit, ndtr

# ---------------------------------------------------------------------------------------------------------------
# linalg
# ---------------------------------------------------------------------------------------------------------------


def ridge_update_ref(state: dict, k: int, x, reward: float, weight: float, gamma: float, l2: float,
                     refactor_every: int) -> None:
    """One ridge observation on a dict of numpy arrays (A, A_inv, b, theta, n), textbook formulas."""
    A, A_inv, b = state["A"], state["A_inv"], state["b"]
    x = np.asarray(x, dtype=float)
    D = x.shape[0]
    if gamma == 1.0:
        A[k] = A[k] + weight * np.outer(x, x)
        Ax = A_inv[k] @ x
        A_inv[k] = A_inv[k] - weight * np.outer(Ax, Ax) / (1.0 + weight * x @ Ax)
        b[k] = b[k] + weight * reward * x
        state["n"][k] += 1
        if refactor_every > 0 and state["n"][k] >= refactor_every:
            A_inv[k] = np.linalg.inv(A[k])
            state["n"][k] = 0
    else:
        A[k] = gamma * A[k] + (1.0 - gamma) * l2 * np.eye(D) + weight * np.outer(x, x)
        b[k] = gamma * b[k] + weight * reward * x
        A_inv[k] = np.linalg.inv(A[k])
        state["n"][k] = 0
    state["theta"][k] = A_inv[k] @ b[k]


def fresh_ridge_state(K: int, D: int, l2: float) -> dict:
    return {
        "A": np.tile(l2 * np.eye(D), (K, 1, 1)),
        "A_inv": np.tile(np.eye(D) / l2, (K, 1, 1)),
        "b": np.zeros((K, D)),
        "theta": np.zeros((K, D)),
        "n": np.zeros(K, dtype=np.int64),
    }


def fresh_logistic_state(K: int, D: int, l2: float) -> dict:
    return {
        "P": np.tile(l2 * np.eye(D), (K, 1, 1)),
        "Sigma": np.tile(np.eye(D) / l2, (K, 1, 1)),
        "m": np.zeros((K, D)),
        "n": np.zeros(K, dtype=np.int64),
    }


def logistic_update_ref(state: dict, k: int, x, y: float, gamma: float, l2: float, refactor_every: int) -> None:
    """One online Laplace step (Chapelle & Li 2011) on a dict (P, Sigma, m, n), with explicit inverses."""
    P, m = state["P"], state["m"]
    x = np.asarray(x, dtype=float)
    D = x.shape[0]
    p = expit(m[k] @ x)
    w = max(p * (1.0 - p), 1e-6)
    if gamma == 1.0:
        P[k] = P[k] + w * np.outer(x, x)
    else:
        P[k] = gamma * P[k] + (1.0 - gamma) * l2 * np.eye(D) + w * np.outer(x, x)
    state["Sigma"][k] = np.linalg.inv(P[k])
    m[k] = m[k] + state["Sigma"][k] @ x * (y - p)


def logistic_map_ref(m0, P0, X, y):
    """MAP of N(m0, P0^-1) prior x Bernoulli-logit likelihood, by scipy's trust-region Newton (exact Hessian)."""

    def f(beta):
        eta = X @ beta
        d = beta - m0
        return 0.5 * d @ P0 @ d + np.sum(np.logaddexp(0.0, eta) - y * eta)

    def grad(beta):
        return P0 @ (beta - m0) - X.T @ (y - expit(X @ beta))

    def hess(beta):
        p = expit(X @ beta)
        return P0 + (X * (p * (1 - p))[:, None]).T @ X

    res = optimize.minimize(f, m0, jac=grad, hess=hess, method="trust-exact", options={"gtol": 1e-12})
    return res.x


# ---------------------------------------------------------------------------------------------------------------
# scoring
# ---------------------------------------------------------------------------------------------------------------


def linear_mean_var_ref(A_inv, theta, X):
    """(n, K) means and variances with einsum."""
    X = np.atleast_2d(X)
    mean = X @ theta.T
    var = np.einsum("nd,kde,ne->nk", X, A_inv, X)
    return mean, np.maximum(var, 0.0)


# ---------------------------------------------------------------------------------------------------------------
# propensities
# ---------------------------------------------------------------------------------------------------------------


def _quad(f, lo, hi, points):
    pts = sorted(p for p in points if lo < p < hi)
    edges = [lo, *pts, hi]
    total = 0.0
    for a, b in zip(edges[:-1], edges[1:], strict=False):
        if b > a:
            total += integrate.quad(f, a, b, epsabs=1e-14, epsrel=1e-12, limit=500)[0]
    return total


def gaussian_argmax_quad(mu, sigma, eligible=None):
    """P(k = argmax s), s_k ~ N(mu_k, sigma_k^2), by scipy.integrate.quad in arm k's standard score z."""
    mu = np.asarray(mu, float)
    sigma = np.asarray(sigma, float)
    K = mu.shape[0]
    eligible = np.ones(K, bool) if eligible is None else np.asarray(eligible, bool)
    idx = np.flatnonzero(eligible)
    cont = [j for j in idx if sigma[j] > 0]
    pm = [j for j in idx if sigma[j] == 0]
    top = max((mu[j] for j in pm), default=-np.inf)
    out = np.zeros(K)
    for k in cont:
        others = [j for j in cont if j != k]

        def f(z, k=k, others=others):
            t = mu[k] + sigma[k] * z
            return np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi) * np.prod([ndtr((t - mu[j]) / sigma[j]) for j in others])

        lo = max(-40.0, (top - mu[k]) / sigma[k])
        points = [(mu[j] - mu[k]) / sigma[k] + c * sigma[j] / sigma[k] for j in others for c in (-3, 0, 3)]
        out[k] = _quad(f, lo, 40.0, points) if lo < 40.0 else 0.0
    ties = [j for j in pm if mu[j] == top]
    for j in ties:
        out[j] = np.prod([ndtr((top - mu[i]) / sigma[i]) for i in cont]) / len(ties)
    return out


def logistic_value_argmax_quad(mu, sigma, values, eligible=None):
    """P(k = argmax v sigmoid(s)), s_k ~ N(mu_k, sigma_k^2), continuous arms only, by quad in arm k's z."""
    mu = np.asarray(mu, float)
    sigma = np.asarray(sigma, float)
    values = np.asarray(values, float)
    K = mu.shape[0]
    eligible = np.ones(K, bool) if eligible is None else np.asarray(eligible, bool)
    idx = list(np.flatnonzero(eligible))
    if any(sigma[j] == 0 for j in idx):
        raise ValueError("point masses are not supported by this reference")
    out = np.zeros(K)

    def cdf(j, t):
        if t >= values[j]:
            return 1.0
        if t <= 0.0:
            return 0.0
        return ndtr((logit(t / values[j]) - mu[j]) / sigma[j])

    for k in idx:
        others = [j for j in idx if j != k]

        def f(z, k=k, others=others):
            t = values[k] * expit(mu[k] + sigma[k] * z)
            return np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi) * np.prod([cdf(j, t) for j in others])

        points = []
        for j in others:  # where arm j's CDF moves, mapped to arm k's z
            for c in (-3.0, -1.0, 0.0, 1.0, 3.0):
                r = values[j] * expit(mu[j] + c * sigma[j]) / values[k]
                if 0.0 < r < 1.0:
                    points.append((logit(r) - mu[k]) / sigma[k])
            if values[j] < values[k]:
                points.append((logit(values[j] / values[k]) - mu[k]) / sigma[k])
        out[k] = _quad(f, -40.0, 40.0, points)
    return out


def argmax_monte_carlo(samples, eligible=None):
    """Frequencies of the argmax over eligible columns of (n_draws, K) sampled scores."""
    samples = np.array(samples, dtype=float)
    K = samples.shape[1]
    if eligible is not None:
        samples[:, ~np.asarray(eligible, bool)] = -np.inf
    return np.bincount(np.argmax(samples, axis=1), minlength=K) / samples.shape[0]


def argmax_tie_ref(scores, eligible):
    s = np.where(np.asarray(eligible, bool), np.nan_to_num(np.asarray(scores, float), nan=-np.inf), np.nan)
    best = np.nanmax(s)
    hit = s == best
    return hit / hit.sum()


def uniform_mix_ref(p, eligible, floor):
    eligible = np.asarray(eligible, bool)
    return np.where(eligible, (1 - floor) * np.asarray(p, float) + floor / eligible.sum(), 0.0)


# ---------------------------------------------------------------------------------------------------------------
# each policy's decision rule: (probabilities, scores) without sampling, from the arms' predictor mean and variance
# ---------------------------------------------------------------------------------------------------------------


def linucb_rule_ref(mean, var, values, eligible, alpha, floor):
    scores = np.where(eligible, values * (mean + alpha * np.sqrt(np.maximum(var, 0.0))), -np.inf)
    return uniform_mix_ref(argmax_tie_ref(scores, eligible), eligible, floor), scores


def epsilon_greedy_rule_ref(mean, var, values, eligible, epsilon, floor, prior_var=None):
    """Constant epsilon (``prior_var`` None), or per-arm shares ``epsilon w_k / |E|`` with ``w_k = var_k / prior_var``
    clipped to [0, 1] and the greedy distribution keeping the rest."""
    eligible = np.asarray(eligible, bool)
    scores = np.where(eligible, values * mean, -np.inf)
    greedy = argmax_tie_ref(scores, eligible)
    if prior_var is None:
        mixed = uniform_mix_ref(greedy, eligible, epsilon)
    else:
        share = np.where(eligible, epsilon * np.clip(np.asarray(var) / prior_var, 0.0, 1.0) / eligible.sum(), 0.0)
        mixed = np.where(eligible, (1.0 - share.sum()) * greedy + share, 0.0)
    return uniform_mix_ref(mixed, eligible, floor), scores


def linear_ts_rule_ref(mean, var, values, eligible, v, floor):
    sd = values * v * np.sqrt(np.maximum(var, 0.0))
    probs = gaussian_argmax_quad(values * mean, sd, eligible)
    return uniform_mix_ref(probs, eligible, floor), np.where(eligible, values * mean, -np.inf)


def logistic_ts_rule_ref(mean, var, values, eligible, v, floor):
    probs = logistic_value_argmax_quad(mean, v * np.sqrt(np.maximum(var, 0.0)), values, eligible)
    return uniform_mix_ref(probs, eligible, floor), np.where(eligible, values * expit(mean), -np.inf)
