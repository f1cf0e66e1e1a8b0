"""Logs from several logging-policy versions: per-version diagnostics and stratified / balanced estimates.

A decision log usually spans several versions of the logging policy (``policy_version`` in the decision-log
schema). IPS with each row's own propensity is unbiased over the union, but versions that explore little (small
propensities for the target's actions) inflate the variance of the pooled estimate. Agarwal, Basu, Schnabel and
Joachims (2017) give two remedies, both here:

:func:`stratified_estimate` -- *weighted* (precision-weighted) IPS
    Estimate each version's stratum separately with any estimator (default ``IPS()``) and combine the per-version
    values ``V_g`` with weights ``lambda_g`` proportional to ``1 / se_g^2`` (the paper's ``n_g / sigma_g^2``).
    Each ``V_g`` is unbiased for the same value, so the combination is too (up to the dependence of the weights on
    the data, O(1/n)); its standard error is ``(sum_g 1 / se_g^2)^{-1/2}`` and the interval is normal.
    A version whose weights are heavy gets little weight instead of dominating the pooled variance.
:func:`balanced_ips` -- balanced IPS
    Replace each row's propensity by the *mixture* propensity ``p_bar(a|x) = sum_g (n_g / n) p_g(a|x)``: the
    logs are a sample of the mixture policy. Needs every version's probability of the logged action for every
    row (``version_propensities`` (n, G)), e.g. by replaying the stored policy versions on the logged contexts.
    Never worse than naive IPS in variance (the paper's Theorem 1).

Per-version diagnostics (:func:`per_version_diagnostics`) show which versions the estimate leans on: rows,
effective sample size, weights and each version's own estimate. The versions are :attr:`LoggedData.policy_version
<offline_eval.LoggedData>` (read from the decision log's ``policy_version`` column) unless ``groups`` (an (n,) array
of labels) says otherwise.

References
----------
Agarwal, A., Basu, S., Schnabel, T. and Joachims, T. (2017). Effective evaluation using logged bandit feedback from
multiple loggers. KDD.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from offline_eval.data import LoggedData
from offline_eval.estimators import IPS, Estimate, Estimator, resolve_target
from offline_eval.intervals import Interval, normal_interval

__all__ = ["StratifiedResult", "balanced_ips", "per_version_diagnostics", "stratified_estimate"]


def _groups(data: LoggedData, groups: ArrayLike | None) -> tuple[np.ndarray, np.ndarray]:
    """Version labels (G,) and the version index of each row (n,); ``groups`` None means ``data.policy_version``."""
    if groups is None:
        if data.policy_version is None:
            raise ValueError(
                "groups is None and the data has no policy_version column; pass groups (the logging-policy version "
                "of each row) or build the data from a decision log (LoggedData.from_parquet)"
            )
        groups = data.policy_version
    arr = np.asarray(groups)
    if arr.shape != (data.n,):
        raise ValueError(
            f"groups must give the logging-policy version of every row, shape ({data.n},), got shape {arr.shape}; "
            "pass the decision log's policy_version column"
        )
    labels, index = np.unique(arr, return_inverse=True)
    return labels, index.reshape(-1)


def _subset_target(target: Any, rows: np.ndarray, n: int) -> Any:
    """The target restricted to ``rows`` when it is per-row (arrays, DataFrames); policy objects and arms as is."""
    if isinstance(target, pd.DataFrame):
        return target.iloc[rows]
    if isinstance(target, np.ndarray | list | tuple) and len(target) == n:
        return np.asarray(target)[rows]
    return target


@dataclass(frozen=True)
class StratifiedResult:
    """A precision-weighted combination of per-version estimates.

    Attributes
    ----------
    combined : Estimate
        The combined estimate (``estimator`` is ``"stratified(<name>)"``, normal interval).
    per_version : pandas.DataFrame
        One row per version: ``version``, ``n``, ``share``, ``weight`` (lambda_g), ``value``, ``se``, ``ci_low``,
        ``ci_high``, ``ess``, ``max_weight``, ``mean_weight``.
    """

    combined: Estimate
    per_version: pd.DataFrame


def per_version_diagnostics(
    data: LoggedData, target: Any, groups: ArrayLike | None = None, estimator: Estimator | None = None
) -> pd.DataFrame:
    """Per logging version: rows, share, the target's weight diagnostics and the version's own estimate.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> n = 4000
    >>> version = np.repeat(["v1", "v2"], n // 2)
    >>> p1 = np.where(version == "v1", 0.5, 0.1)  # v2 rarely takes arm 1
    >>> a = (rng.random(n) < p1).astype(int)
    >>> r = (rng.random(n) < 0.2 + 0.1 * a).astype(float)
    >>> data = LoggedData(None, a, r, np.where(a == 1, p1, 1 - p1), policy_version=version)
    >>> per_version_diagnostics(data, 1)[["version", "n", "ess", "max_weight"]].round(1)
      version     n     ess  max_weight
    0      v1  2000  1007.0         2.0
    1      v2  2000   205.0        10.0
    """
    return stratified_estimate(data, target, groups, estimator).per_version


def stratified_estimate(
    data: LoggedData, target: Any, groups: ArrayLike | None = None, estimator: Estimator | None = None
) -> StratifiedResult:
    """Precision-weighted combination of per-version estimates (weighted IPS of Agarwal et al. 2017).

    Parameters
    ----------
    data : LoggedData
        The logs (each row's propensity is its own version's).
    target : target
        Any target accepted by the estimators (per-row arrays are split with the rows).
    groups : array_like (n,), optional
        Logging-policy version of each row; default ``data.policy_version``.
    estimator : Estimator, optional
        Estimator of each stratum (default ``IPS()``); its ``alpha`` sets the combined interval's level.

    Returns
    -------
    StratifiedResult

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> n = 4000
    >>> version = np.repeat(["v1", "v2"], n // 2)
    >>> p1 = np.where(version == "v1", 0.5, 0.1)
    >>> a = (rng.random(n) < p1).astype(int)
    >>> r = (rng.random(n) < 0.2 + 0.1 * a).astype(float)
    >>> data = LoggedData(None, a, r, np.where(a == 1, p1, 1 - p1))
    >>> res = stratified_estimate(data, 1, version)
    >>> res.per_version["weight"].round(2).tolist()  # v2 (weights up to 10) counts less
    [0.87, 0.13]
    >>> bool(res.combined.se < IPS().estimate(data, 1).se)
    True
    """
    estimator = IPS() if estimator is None else estimator
    labels, index = _groups(data, groups)
    rows_out = []
    estimates: list[Estimate] = []
    for g, label in enumerate(labels):
        rows = np.flatnonzero(index == g)
        if len(rows) < 2:
            raise ValueError(f"logging version {label!r} has {len(rows)} row(s); each version needs at least 2")
        sub = data.subset(rows)
        est = estimator.estimate(sub, _subset_target(target, rows, data.n))
        estimates.append(est)
        d = est.diagnostics
        rows_out.append(
            {
                "version": label,
                "n": len(rows),
                "share": len(rows) / data.n,
                "value": est.value,
                "se": est.se,
                "ci_low": est.ci_low,
                "ci_high": est.ci_high,
                "ess": d.ess,
                "max_weight": d.max_weight,
                "mean_weight": d.mean_weight,
            }
        )
    se = np.array([e.se for e in estimates])
    precision = np.where(se > 0, 1.0 / np.maximum(se, 1e-300) ** 2, 0.0)
    if not np.any(precision > 0):  # every stratum exact: weight by rows
        precision = np.array([r["n"] for r in rows_out], dtype=np.float64)
    lam = precision / precision.sum()
    value = float(lam @ np.array([e.value for e in estimates]))
    combined_se = float(math.sqrt(float((lam**2) @ (se**2))))
    half = NormalDist().inv_cdf(1.0 - float(estimator.alpha) / 2.0) * combined_se
    table = pd.DataFrame(rows_out)
    table.insert(3, "weight", lam)
    worst = max(estimates, key=lambda e: e.diagnostics.max_weight).diagnostics
    combined = Estimate(
        value=value,
        se=combined_se,
        ci_low=value - half,
        ci_high=value + half,
        n=data.n,
        estimator=f"stratified({estimator.name})",
        alpha=float(estimator.alpha),
        interval="normal",
        diagnostics=worst,
        consistent=all(e.consistent for e in estimates),
        honest=all(e.honest for e in estimates),
    )
    return StratifiedResult(combined, table)


def balanced_ips(
    data: LoggedData,
    target: Any,
    version_propensities: ArrayLike,
    groups: ArrayLike | None = None,
    alpha: float = 0.05,
) -> Estimate:
    """Balanced IPS (Agarwal et al. 2017): IPS with the mixture propensity of all logging versions.

    Parameters
    ----------
    data : LoggedData
        The logs.
    target : target
        The target policy.
    version_propensities : array_like (n, G)
        ``version_propensities[i, g]`` = probability that version g (in the sorted order of the ``groups``
        labels) takes the logged action ``a_i`` in context ``x_i``; the column of row i's own version must equal
        its logged propensity.
    groups : array_like (n,), optional
        Logging-policy version of each row; default ``data.policy_version``.
    alpha : float
        Two-sided error rate of the normal interval.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> n = 4000
    >>> version = np.repeat(["v1", "v2"], n // 2)
    >>> p1 = np.where(version == "v1", 0.5, 0.1)
    >>> a = (rng.random(n) < p1).astype(int)
    >>> r = (rng.random(n) < 0.2 + 0.1 * a).astype(float)
    >>> data = LoggedData(None, a, r, np.where(a == 1, p1, 1 - p1))
    >>> props = np.column_stack([np.where(a == 1, 0.5, 0.5), np.where(a == 1, 0.1, 0.9)])
    >>> est = balanced_ips(data, 1, props, version)
    >>> round(est.value, 3), bool(est.se < IPS().estimate(data, 1).se)
    (0.299, True)
    """
    labels, index = _groups(data, groups)
    P = np.asarray(version_propensities, dtype=np.float64)
    if P.shape != (data.n, len(labels)):
        raise ValueError(
            f"version_propensities must have shape (n, G) = ({data.n}, {len(labels)}) -- every version's "
            f"probability of each logged action -- got {P.shape}"
        )
    own = P[np.arange(data.n), index]
    if not np.allclose(own, data.propensity, atol=1e-6):
        bad = int(np.flatnonzero(~np.isclose(own, data.propensity, atol=1e-6))[0])
        raise ValueError(
            f"version_propensities of each row's own version must equal its logged propensity; row {bad} has "
            f"{own[bad]:g} vs {data.propensity[bad]:g} (columns in the sorted order of the labels: {labels.tolist()})"
        )
    share = np.bincount(index, minlength=len(labels)) / data.n
    mixture = P @ share
    resolved = resolve_target(data, target)
    w = resolved.weights * data.propensity / mixture
    terms = w * data.reward
    iv: Interval = normal_interval(terms, alpha)
    from offline_eval.diagnostics import weight_diagnostics

    return Estimate(
        value=iv.value,
        se=iv.se,
        ci_low=iv.low,
        ci_high=iv.high,
        n=data.n,
        estimator="BalancedIPS",
        alpha=float(alpha),
        interval="normal",
        diagnostics=weight_diagnostics(data.n, float(w.sum()), float(w @ w), float(w.max()), resolved.support_deficit),
        consistent=resolved.supported,
        honest=resolved.supported,
    )
