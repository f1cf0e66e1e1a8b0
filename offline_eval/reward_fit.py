"""Cross-fitted reward models fitted from mergeable statistics, in passes over batches of rows.

:mod:`offline_eval.reward_models` fits on a :class:`~offline_eval.LoggedData` held in memory. The streaming and
Spark evaluations (:mod:`offline_eval.streaming`, :mod:`offline_eval.spark`) never hold all rows; they fit the
same models from statistics that are sums (or minima / maxima) over rows, computed per batch or partition and
merged:

* :class:`~offline_eval.reward_models.RidgeRewardModel`: one pass accumulating the per-(fold, action) normal
  equations (``sum x x^T``, ``sum x r``, sums, counts), then the same solve as in memory (with the evaluation pass:
  two passes in all for a DR-family evaluation);
* :class:`~offline_eval.reward_models.LogisticRewardModel` and
  :class:`~offline_eval.reward_models.ValueAwareRewardModel`: one pass for the counts (the intercept prior) and the
  reward checks, then Newton / IRLS iterations, each one pass that sums the gradient and Hessian of every
  (action, fold) model at its current coefficients (plus one pass per step-halving, rare). They converge to the
  same optimum as the in-memory Newton fit (a strictly convex objective), to the solver's tolerance;
* ``reward_model=None``: one pass of reward statistics picks the model as
  :func:`~offline_eval.reward_models.default_reward_model` does (:func:`reward_stats`; in the default models'
  folds, the same statistics start the logistic fit);
* :class:`~offline_eval.reward_models.MRDRRewardModel` (:func:`fit_mrdr`, once per target): the batches carry each
  row's raw MRDR weight for the target; one pass sums them with the reward statistics, one sums the floored
  weights (the normalisation of :func:`~offline_eval.reward_models.mrdr_weights`), then the weighted fit of the
  form the rewards call for (weighted ridge normal equations in one pass, or weighted Newton passes).

The Newton passes run the kernel on up to 4 threads (it releases the GIL) and skip the pass after a full step
within the tolerance (the in-memory fit accepts that step too, so the coefficients agree).

Folds are the hashed event-id folds of :func:`offline_eval.reward_models.fold_of`, so the fitted models, and the
predictions, equal the in-memory ones up to floating-point summation order. scikit-learn models are not supported
here (:func:`check_mergeable` raises ``TypeError``: their fit needs all training rows at once).

The engine is abstract: a *reduce* callable ``reduce(map_fn, ops)`` applies ``map_fn`` to every batch
(:class:`ModelBatch`) and combines the returned arrays elementwise with ``ops`` ("sum", "min" or "max").
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from numba import njit
from scipy.special import expit

from offline_eval.reward_models import (
    MRDR_WEIGHT_FLOOR,
    VALUE_RTOL,
    LogisticRewardModel,
    MRDRRewardModel,
    RidgeRewardModel,
    SklearnRewardModel,
    ValueAwareRewardModel,
    _predict_linear,
    _ridge_solve,
    default_model_from_stats,
    group_moments,
)

__all__ = [
    "CrossFitPredictor", "ModelBatch", "Reduce", "Sample", "check_mergeable", "choose_model", "combine", "fit_cross_fit",
    "fit_mrdr", "reduce_in_memory", "reward_stats",
]


class ModelBatch(NamedTuple):
    """A batch of logged rows for fitting: ``X`` (m, d) float64 C-contiguous, ``action`` (m,) int64 in [0, K),
    ``reward`` (m,) float64, ``folds`` (m,) int64 in [0, n_folds); ``mrdr`` (m,) float64 or None: the rows' raw
    MRDR weights ``pi(a|x) (1 - p) / p^2`` for the target an MRDR model is fitted to (:func:`fit_mrdr`)."""

    X: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    folds: np.ndarray
    mrdr: np.ndarray | None = None


MapFn = Callable[[ModelBatch], tuple[np.ndarray, ...]]
Reduce = Callable[[MapFn, tuple[str, ...]], list[np.ndarray]]


def combine(parts: Sequence[Sequence[np.ndarray]], ops: Sequence[str]) -> list[np.ndarray]:
    """Combine per-batch outputs ``parts`` (one tuple of arrays per batch) elementwise by ``ops``.

    Sums are pairwise (a balanced tree over the batches), so rounding grows with log(batches).
    """
    if not parts:
        raise ValueError("no batches to combine: the data has no rows")
    out = []
    for j, op in enumerate(ops):
        arrays = [np.asarray(p[j], dtype=np.float64) for p in parts]
        if op == "sum":
            while len(arrays) > 1:
                arrays = [arrays[i] + arrays[i + 1] if i + 1 < len(arrays) else arrays[i]
                          for i in range(0, len(arrays), 2)]
            out.append(arrays[0])
        elif op == "min":
            out.append(np.minimum.reduce(arrays))
        elif op == "max":
            out.append(np.maximum.reduce(arrays))
        else:
            raise ValueError(f"ops must be 'sum', 'min' or 'max', got {op!r}")
    return out


def reduce_in_memory(batches: Sequence[ModelBatch]) -> Reduce:
    """A *reduce* over batches held in memory (for tests and in-memory comparison)."""

    def reduce(map_fn: MapFn, ops: tuple[str, ...]) -> list[np.ndarray]:
        return combine([map_fn(b) for b in batches], ops)

    return reduce


# ----------------------------------------------------------------------------------------------------------------
# numba kernels
# ----------------------------------------------------------------------------------------------------------------


@njit(cache=True)
def _reward_stats(action, reward, out_counts, lo, hi):  # pragma: no cover - numba
    """``out_counts`` (3,) += (rows not 0/1, rows < 0, rows > 1); ``lo``/``hi`` (K,) = min / max positive reward
    per action (inf / -inf where none). ``action`` (m,) int64, ``reward`` (m,) float64. Returns 0."""
    for i in range(reward.shape[0]):
        r = reward[i]
        if r != 0.0 and r != 1.0:
            out_counts[0] += 1.0
        if r < 0.0:
            out_counts[1] += 1.0
        if r > 1.0:
            out_counts[2] += 1.0
        if r > 0.0:
            a = action[i]
            lo[a] = min(lo[a], r)
            hi[a] = max(hi[a], r)
    return 0


@njit(cache=True, nogil=True)
def _logistic_pass(X, y, weight, action, fold, B, obj, grad, hess):  # pragma: no cover - numba
    """Add every row's loss, gradient and Hessian, times its weight, to the models of the folds it trains (all but
    its own).

    ``X`` (m, d) float64, ``y`` (m,) float64 in [0, 1], ``weight`` (m,) float64 or (0,) for weight 1,
    ``action`` and ``fold`` (m,) int64; ``B`` (K, F, p)
    coefficients (intercept first, p = d + 1). Outputs (added to): ``obj`` (K, F) = sum of
    ``log(1 + e^z) - y z``; ``grad`` (K, F, p) = sum of ``(sigmoid(z) - y) [1, x]``; ``hess`` (K, F, p (p + 1) / 2)
    = sum of ``s (1 - s) [1, x] [1, x]^T``, its upper triangle packed row by row (``np.triu_indices(p)`` order).
    Returns 0.
    """
    m, d = X.shape
    F = B.shape[1]
    p = d + 1
    weighted = weight.shape[0] > 0
    x1 = np.empty(p)
    outer = np.empty(hess.shape[2])
    x1[0] = 1.0
    for i in range(m):
        k = action[i]
        g = fold[i]
        yi = y[i]
        wi = weight[i] if weighted else 1.0
        for j in range(d):
            x1[j + 1] = X[i, j]
        u = 0
        for j in range(p):
            xj = x1[j]
            for t in range(j, p):
                outer[u] = xj * x1[t]
                u += 1
        for f in range(F):
            if f == g:
                continue
            z = 0.0
            for j in range(p):
                z += x1[j] * B[k, f, j]
            if z > 0.0:
                e = math.exp(-z)
                obj[k, f] += wi * (z + math.log1p(e) - yi * z)
                s = 1.0 / (1.0 + e)
            else:
                e = math.exp(z)
                obj[k, f] += wi * (math.log1p(e) - yi * z)
                s = e / (1.0 + e)
            r = wi * (s - yi)
            wgt = wi * (s * (1.0 - s))
            gk = grad[k, f]
            for j in range(p):
                gk[j] += r * x1[j]
            hk = hess[k, f]
            for v in range(outer.shape[0]):
                hk[v] += wgt * outer[v]
    return 0


#: Rows below which a logistic pass runs on one thread.
_THREAD_MIN_ROWS = 1 << 14
_executor: ThreadPoolExecutor | None = None


def _threads() -> int:
    return max(1, min(os.cpu_count() or 1, 4))


def _logistic_sums(X: np.ndarray, y: np.ndarray, weight: np.ndarray, action: np.ndarray, fold: np.ndarray,
                   B: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(obj (K, F), grad (K, F, p), hess (K, F, p (p + 1) / 2) packed)`` of :func:`_logistic_pass` over the rows,
    the rows split in chunks run on up to 4 threads (the kernel releases the GIL) and the chunks' sums added."""
    global _executor
    K, F, p = B.shape
    m = len(y)
    # several chunks per thread: a thread that the OS schedules late (a busy machine) delays the pass by one chunk
    chunks = min(4 * _threads(), max(1, m // _THREAD_MIN_ROWS))

    def run(lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        obj, grad, hess = np.zeros((K, F)), np.zeros((K, F, p)), np.zeros((K, F, p * (p + 1) // 2))
        _logistic_pass(X[lo:hi], y[lo:hi], weight[lo:hi], action[lo:hi], fold[lo:hi], B, obj, grad, hess)
        return obj, grad, hess

    if chunks == 1:
        return run(0, m)
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=_threads(), thread_name_prefix="offline_eval-irls")
    bounds = np.linspace(0, m, chunks + 1).astype(int)
    parts = list(_executor.map(run, bounds[:-1], bounds[1:]))
    obj, grad, hess = parts[0]
    for o, g, h in parts[1:]:
        obj += o
        grad += g
        hess += h
    return obj, grad, hess


# ----------------------------------------------------------------------------------------------------------------
# the fitted predictor
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CrossFitPredictor:
    """A fitted cross-fitted reward model: per-fold linear coefficients, applied batch by batch.

    ``q[i, k] = link(intercept[f_i, k] + X[i] @ coef[f_i, :, k]) * values[k]`` with ``f_i`` row i's fold,
    ``link`` the identity (ridge) or the logistic function, ``values`` (K,) the arm values (value-aware) or 1.

    Attributes
    ----------
    coef : ndarray (F, d, K)
    intercept : ndarray (F, K)
    logistic : bool
    values : ndarray (K,) or None
    n_folds, fold_seed : int
        The folds (:func:`offline_eval.reward_models.fold_of` with this seed).
    model : str
        Name of the model class it was fitted as.
    """

    coef: np.ndarray
    intercept: np.ndarray
    logistic: bool
    values: np.ndarray | None
    n_folds: int
    fold_seed: int
    model: str

    def predict(self, X: np.ndarray, folds: np.ndarray) -> np.ndarray:
        """(m, K) predictions of rows ``X`` (m, d) in folds ``folds`` (m,) int64."""
        q = np.empty((len(X), self.intercept.shape[1]))
        _predict_linear(np.ascontiguousarray(X, dtype=np.float64), folds, self.coef, self.intercept, q)
        if self.logistic:
            expit(q, out=q)
        if self.values is not None:
            q *= self.values
        return q

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays (for shipping to Spark executors); :meth:`from_arrays` rebuilds it."""
        return {
            "coef": self.coef,
            "intercept": self.intercept,
            "logistic": np.array([self.logistic]),
            "values": np.zeros(0) if self.values is None else self.values,
            "has_values": np.array([self.values is not None]),
            "folds": np.array([self.n_folds, self.fold_seed], dtype=np.int64),
            "model": np.array([self.model]),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> CrossFitPredictor:
        """Inverse of :meth:`to_arrays`."""
        return cls(
            np.ascontiguousarray(arrays["coef"], dtype=np.float64),
            np.ascontiguousarray(arrays["intercept"], dtype=np.float64),
            bool(arrays["logistic"][0]),
            np.asarray(arrays["values"], dtype=np.float64) if bool(arrays["has_values"][0]) else None,
            int(arrays["folds"][0]),
            int(arrays["folds"][1]),
            str(arrays["model"][0]),
        )


# ----------------------------------------------------------------------------------------------------------------
# fitting
# ----------------------------------------------------------------------------------------------------------------


def _stats_map(n_actions: int, n_folds: int) -> MapFn:
    def map_fn(b: ModelBatch) -> tuple[np.ndarray, ...]:
        counts = np.zeros(3)
        lo = np.full(n_actions, np.inf)
        hi = np.full(n_actions, -np.inf)
        _reward_stats(b.action, b.reward, counts, lo, hi)
        rows = np.bincount(b.folds, minlength=n_folds).astype(np.float64)
        positive = np.bincount(b.folds, weights=b.reward, minlength=n_folds)
        converted = np.bincount(b.folds, weights=(b.reward > 0).astype(np.float64), minlength=n_folds)
        r_range = np.array([b.reward.min(), b.reward.max()]) if len(b.reward) else np.array([np.inf, -np.inf])
        d = np.array([float(b.X.shape[1])])
        return counts, lo, hi, rows, positive, converted, r_range[:1], r_range[1:], d

    return map_fn


_STATS_OPS = ("sum", "min", "max", "sum", "sum", "sum", "min", "max", "max")
_MERGEABLE = (RidgeRewardModel, LogisticRewardModel, ValueAwareRewardModel, MRDRRewardModel)


def _logistic_newton(
    evaluate: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]],
    b0: np.ndarray,
    K: int,
    p: int,
    l2: float,
    max_iter: int,
    tol: float,
    start: np.ndarray | None = None,
    warn: bool = True,
) -> np.ndarray:
    """Penalised Newton with per-model step halving (as the in-memory fit); ``evaluate(B)`` is one pass returning
    the unpenalised sums of :func:`_logistic_pass` (the Hessian packed).

    ``B`` (K, F, p), started at ``start`` or else the prior (intercept ``b0[f]``, slopes 0): the objective is
    strictly convex, so the start changes the number of passes, not the optimum. Returns the coefficients.
    """
    F = len(b0)
    prior = np.zeros((K, F, p))
    prior[..., 0] = b0[None, :]
    eye = np.eye(p)

    upper = np.triu_indices(p)

    def penalised(B: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        obj, grad, packed = evaluate(B)
        diff = B - prior
        hess = np.empty((K, F, p, p))
        hess[..., upper[0], upper[1]] = packed
        hess[..., upper[1], upper[0]] = packed
        return obj + 0.5 * l2 * (diff**2).sum(axis=-1), grad + l2 * diff, hess + l2 * eye

    B = prior.copy() if start is None else start.copy()
    obj, grad, hess = penalised(B)
    active = np.ones(K, dtype=bool)
    iters = np.zeros(K, dtype=np.int64)
    converged = np.zeros(K, dtype=bool)
    while active.any():
        iters[active] += 1
        step = np.linalg.solve(hess, grad[..., None])[..., 0]
        step[~active] = 0.0
        # a full step within the tolerance ends the action's fit; the in-memory fit takes it too (its line search
        # accepts a step that small: the objective cannot rise by more than rounding), so it needs no pass
        final = active & np.all(np.abs(step).max(axis=-1) <= tol * (1.0 + np.abs(B - step).max(axis=-1)), axis=1)
        if final.any():
            B[final] -= step[final]
            converged |= final
            active &= ~final
            step[final] = 0.0
            if not active.any():
                break
        t = np.ones((K, F))
        for _ in range(40):
            B_new = B - t[..., None] * step
            obj_new, grad_new, hess_new = penalised(B_new)
            worse = (obj_new > obj + 1e-12 * np.abs(obj)) & active[:, None]
            if not worse.any():
                break
            t = np.where(worse, 0.5 * t, t)
        moved = np.abs(t[..., None] * step).max(axis=-1)
        B, obj, grad, hess = B_new, obj_new, grad_new, hess_new
        done = np.all(moved <= tol * (1.0 + np.abs(B).max(axis=-1)), axis=1)
        converged |= done & active
        active &= ~done & (iters < max_iter)
    for k in np.flatnonzero(~converged if warn else np.zeros(K, dtype=bool)):
        warnings.warn(
            f"LogisticRewardModel: Newton did not converge for action {k} within max_iter={max_iter} iterations "
            f"(tol={tol}); raise max_iter or l2",
            RuntimeWarning,
            stacklevel=4,
        )
    return B


def reward_stats(reduce: Reduce, n_actions: int, n_folds: int) -> list[np.ndarray]:
    """One pass of reward statistics with the batches' folds (``n_folds`` of them): what :func:`choose_model` needs
    to pick the default model, and what :func:`fit_cross_fit` needs before the logistic passes of a model with the
    same folds (pass them as ``stats`` to both to save a pass)."""
    return reduce(_stats_map(n_actions, n_folds), _STATS_OPS)


Sample = Callable[[], tuple[Reduce, float] | None]


def fit_cross_fit(model: Any, reduce: Reduce, n_actions: int, action_names: Sequence[str] | None = None,
                  stats: Sequence[np.ndarray] | None = None, sample: Sample | None = None) -> CrossFitPredictor:
    """Fit ``model`` (or the default for the data when None) by passes of ``reduce`` (module docstring).

    Parameters
    ----------
    model : RidgeRewardModel, LogisticRewardModel or ValueAwareRewardModel
        The estimator's ``reward_model``, resolved by :func:`choose_model` (MRDR: :func:`fit_mrdr`).
    reduce : callable
        ``reduce(map_fn, ops)``, the engine (module docstring). Its batches' folds must be this model's folds
        (``model.folds(m, event_id, start)``).
    n_actions : int
        K.
    action_names : sequence of str, optional
        For ``ValueAwareRewardModel(values={name: value})``.
    stats : list of ndarray, optional
        :func:`reward_stats` of the same rows in this model's folds (saves the logistic models' first pass).
    sample : callable, optional
        Called after the first pass: None, or (a reduce over a sample of the rows, the sample's share of them),
        cheaper than ``reduce``; the logistic fit on it starts the fit on all rows (fewer Newton passes).

    Returns
    -------
    CrossFitPredictor
    """
    if model is None:
        raise TypeError("fit_cross_fit needs a model: resolve None with choose_model first")
    check_mergeable(model)
    if type(model) is MRDRRewardModel:
        raise TypeError("MRDRRewardModel is fitted per target: use fit_mrdr")
    F = int(model.n_folds)
    name = type(model).__name__
    seed = int(model.fold_seed_)
    if type(model) is RidgeRewardModel:  # one pass: the normal equations carry their own counts
        coef, intercept = _ridge_fit(reduce, n_actions, F, float(model.l2), bool(model.fit_intercept), None)
        return CrossFitPredictor(coef, intercept, False, None, F, seed, name)
    if stats is None or len(stats[3]) != F:
        stats = reward_stats(reduce, n_actions, F)
    counts, lo, hi, rows, total, converted, r_min, r_max, n_features = stats
    _check_rows(rows.sum(), F)
    if type(model) is LogisticRewardModel:
        if counts[1] or counts[2]:
            raise ValueError(
                f"LogisticRewardModel needs rewards in [0, 1] (0/1 conversions); the log has rewards in "
                f"[{float(r_min[0]):g}, {float(r_max[0]):g}]; use ValueAwareRewardModel or RidgeRewardModel"
            )
        positive, values, value_aware = total, None, False
    else:  # ValueAwareRewardModel
        if counts[1]:
            raise ValueError(
                f"ValueAwareRewardModel needs rewards >= 0 (value x conversion); the log has {int(counts[1])} "
                "negative rows; use RidgeRewardModel"
            )
        values = _values(model, lo, hi, n_actions, action_names)
        positive, value_aware = converted, True
    coef, intercept = _logistic_fit(reduce, rows, positive, n_actions, int(n_features[0]), model, value_aware, None,
                                    None if sample is None else sample())
    return CrossFitPredictor(coef, intercept, True, values, F, seed, name)


WeightFn = Callable[[ModelBatch], np.ndarray]




def _ridge_fit(reduce: Reduce, K: int, F: int, l2: float, fit_intercept: bool, weight: WeightFn | None
               ) -> tuple[np.ndarray, np.ndarray]:
    """Per-(fold, action) ridge coefficients from one pass of (weighted) normal equations."""

    def moments(b: ModelBatch) -> tuple[np.ndarray, ...]:
        return group_moments(b.X, b.reward, b.folds, b.action, K, F, None if weight is None else weight(b))

    gram, xsum, count, xy, ysum = reduce(moments, ("sum",) * 5)
    if weight is None:
        _check_rows(count.sum(), F)
    return _ridge_solve(gram, xsum, count, xy, ysum, F, K, l2, fit_intercept)


_UNWEIGHTED = np.zeros(0)


#: Tolerance of the Newton fit on a sample that only chooses the start of the fit on all rows.
WARM_START_TOL = 1e-4


def _logistic_fit(reduce: Reduce, rows: np.ndarray, positive: np.ndarray, K: int, d: int, model: Any,
                  value_aware: bool, weight: WeightFn | None, sample: tuple[Reduce, float] | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Per-(fold, action) penalised logistic coefficients ``coef`` (F, d, K) and ``intercept`` (F, K) by Newton
    passes; the prior intercept from the (unweighted) rows and positives per fold, ``rows``, ``positive`` (F,).

    ``sample`` = (a reduce over a sample of the rows, its share of them): the same fit on the sample (penalty
    scaled by the share, loose tolerance) gives the start of the fit on all rows, which then needs fewer passes.
    """
    train_rows = rows.sum() - rows
    train_pos = positive.sum() - positive
    b0 = np.log((train_pos + 0.5) / (train_rows - train_pos + 0.5))

    def evaluate_on(engine: Reduce) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]:
        def evaluate(B: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            def pass_fn(b: ModelBatch) -> tuple[np.ndarray, ...]:
                y = (b.reward > 0).astype(np.float64) if value_aware else b.reward
                w = _UNWEIGHTED if weight is None else weight(b)
                return _logistic_sums(b.X, y, w, b.action, b.folds, B)

            obj, grad, hess = engine(pass_fn, ("sum", "sum", "sum"))
            return obj, grad, hess

        return evaluate

    l2, max_iter = float(model.l2), int(model.max_iter)
    start = None
    if sample is not None:
        sample_reduce, share = sample
        start = _logistic_newton(evaluate_on(sample_reduce), b0, K, d + 1, l2 * share, max_iter, WARM_START_TOL,
                                 warn=False)
    B = _logistic_newton(evaluate_on(reduce), b0, K, d + 1, l2, max_iter, float(model.tol), start=start)
    return np.ascontiguousarray(B[..., 1:].transpose(1, 2, 0)), np.ascontiguousarray(B[..., 0].T)


def fit_mrdr(model: MRDRRewardModel, reduce: Reduce, n_actions: int, sample: Sample | None = None
             ) -> CrossFitPredictor:
    """Fit an :class:`~offline_eval.reward_models.MRDRRewardModel` for one target by passes of ``reduce``, whose
    batches carry the target's raw MRDR weights (``ModelBatch.mrdr``) and this model's folds.

    As in memory: the weights :func:`~offline_eval.reward_models.mrdr_weights` (their mean from a first pass that
    also takes the reward statistics, their floored mean from a second), then the weighted logistic conversion
    model times the arm values (value x conversion rewards), the weighted logistic model (0/1 rewards) or weighted
    ridge (other rewards), each a weighted sum of per-row terms. ``sample`` as in :func:`fit_cross_fit`.
    """
    F, K = int(model.n_folds), n_actions
    stats_map = _stats_map(K, F)

    def first(b: ModelBatch) -> tuple[np.ndarray, ...]:
        return (*stats_map(b), np.array([_raw(b).sum()]))

    *stats, raw_sum = reduce(first, (*_STATS_OPS, "sum"))
    counts, lo, hi, rows, total, converted, _, _, n_features = stats
    n = rows.sum()
    _check_rows(n, F)
    mean = float(raw_sum[0]) / n
    weight: WeightFn
    if mean <= 0.0:
        def weight(b: ModelBatch) -> np.ndarray:
            return np.ones(len(b.reward))
    else:
        floor = MRDR_WEIGHT_FLOOR * mean
        (floored,) = reduce(lambda b: (np.array([np.maximum(_raw(b), floor).sum()]),), ("sum",))
        scale = float(floored[0]) / n

        def weight(b: ModelBatch) -> np.ndarray:
            return np.maximum(_raw(b), floor) / scale

    binary = counts[0] == 0
    none = ~np.isfinite(lo)
    lo, hi = np.where(none, np.nan, lo), np.where(none, np.nan, hi)
    values = None
    if not binary and counts[1] == 0 and not none.all() and not np.any(hi - lo > VALUE_RTOL * np.abs(hi)):
        values = np.where(np.isnan(hi), 0.0, 0.5 * (lo + hi))
    seed, name = int(model.fold_seed_), type(model).__name__
    if binary or values is not None:
        positive = converted if values is not None else total
        coef, intercept = _logistic_fit(reduce, rows, positive, K, int(n_features[0]), model, values is not None,
                                        weight, None if sample is None else sample())
        return CrossFitPredictor(coef, intercept, True, values, F, seed, name)
    coef, intercept = _ridge_fit(reduce, K, F, float(model.l2), True, weight)
    return CrossFitPredictor(coef, intercept, False, None, F, seed, name)


def _raw(b: ModelBatch) -> np.ndarray:
    if b.mrdr is None:  # pragma: no cover - the engines attach them to an MRDR model's batches
        raise RuntimeError("an MRDR pass needs the rows' MRDR weights")
    return b.mrdr


def check_mergeable(model: Any) -> None:
    """Raise ``TypeError`` unless ``model`` (a ``reward_model``) can be fitted from mergeable statistics."""
    if model is None or type(model) in _MERGEABLE:
        return
    if isinstance(model, SklearnRewardModel):
        raise TypeError(
            f"SklearnRewardModel({type(model.estimator).__name__}) cannot be fitted batch by batch (streaming / "
            "Spark): a scikit-learn estimator's fit needs all its training rows at once, and its fitted state is "
            "not a sum over rows that partitions could merge; use RidgeRewardModel, LogisticRewardModel, "
            "ValueAwareRewardModel, MRDRRewardModel or None (the default), or evaluate() in memory"
        )
    raise TypeError(
        f"{type(model).__name__} has no mergeable statistics (streaming / Spark): use RidgeRewardModel, "
        "LogisticRewardModel, ValueAwareRewardModel, MRDRRewardModel or None (the default), or evaluate() in memory"
    )


def _check_rows(n: float, n_folds: int) -> None:
    if n <= n_folds:
        raise ValueError(f"n_folds={n_folds} needs more than {n_folds} logged rows, got {int(n)}")


def _values(model: ValueAwareRewardModel, lo: np.ndarray, hi: np.ndarray, K: int,
            action_names: Sequence[str] | None) -> np.ndarray:
    """The arm values of a value-aware model from the positive-reward ranges ``lo``, ``hi`` (K,) (inf where none)."""
    none = ~np.isfinite(lo)
    lo = np.where(none, np.nan, lo)
    hi = np.where(none, np.nan, hi)
    rtol = float(model.rtol)
    if model.values is None:
        spread = hi - lo > rtol * np.abs(hi)
        if spread.any():
            k = int(np.flatnonzero(spread)[0])
            raise ValueError(
                f"ValueAwareRewardModel(values=None) infers each action's value from its positive rewards, but "
                f"action {k} has positive rewards from {lo[k]:g} to {hi[k]:g}, not one value (rtol={rtol:g}); pass "
                "values={name: value} if rewards are value x conversion, otherwise use RidgeRewardModel"
            )
        return np.where(np.isnan(hi), 0.0, 0.5 * (lo + hi))
    if isinstance(model.values, dict):
        if action_names is None:
            raise ValueError("values is a dict but the log has no action names; pass values as an array (K,)")
        missing = [a for a in action_names if a not in model.values]
        if missing:
            raise ValueError(f"values must give a value for every action {list(action_names)}; missing {missing}")
        values = np.array([float(model.values[a]) for a in action_names])
    else:
        values = np.asarray(model.values, dtype=np.float64)
        if len(values) != K:
            raise ValueError(f"values has {len(values)} entries but the data has K={K} actions")
    off = (np.abs(lo - values) > rtol * values) | (np.abs(hi - values) > rtol * values)
    if off.any():
        k = int(np.flatnonzero(off)[0])
        raise ValueError(
            f"action {k} has positive rewards different from its value {values[k]:g} (rtol={rtol:g}); rewards must "
            "be value x conversion, fix values or use RidgeRewardModel"
        )
    return values


def choose_model(model: Any, reduce: Reduce, n_actions: int, stats: Sequence[np.ndarray] | None = None) -> Any:
    """``model`` itself, or for None the model :func:`~offline_eval.reward_models.default_reward_model` picks from
    the rewards (one pass, none with ``stats`` from :func:`reward_stats`; the folds of the batches are irrelevant
    to it)."""
    if model is not None:
        check_mergeable(model)
        return model
    counts, lo, hi, *_ = reward_stats(reduce, n_actions, 1) if stats is None else stats
    none = ~np.isfinite(lo)
    return default_model_from_stats(
        binary=counts[0] == 0,
        nonnegative=counts[1] == 0,
        lo=np.where(none, np.nan, lo),
        hi=np.where(none, np.nan, hi),
    )

