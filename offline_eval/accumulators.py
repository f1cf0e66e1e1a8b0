r"""Mergeable estimator statistics: evaluate target policies on batches, partitions or shards of the logs.

Every estimator of :mod:`offline_eval.estimators` is a function of a few per-row columns of (logs, target, reward
model): the importance weight ``w``, the reward ``r``, and per reward model the DM part ``dm`` and the residual
``r - q(x, a)``. Its estimate, its normal / delta-method interval, the lift over logging and the diagnostics are
functions of the **means and centred co-moments** of a handful of derived columns (``w r``, ``min(w, c) r``,
``dm + w (r - q)``, ...) plus a few counts and extrema. :class:`PolicyAccumulator` holds exactly those:

* :class:`Moments`: count, mean vector and co-moment matrix ``C = sum (x - mean)(x - mean)^T`` of the columns,
  computed per batch (two passes over the batch, numpy pairwise sums) and merged by the parallel formulas of Chan,
  Golub and LeVeque (1979): exact up to rounding in any merge order, without the cancellation of raw sums of
  squares;
* :class:`~offline_eval.slope_grid.CandidateMoments`: the same for every SwitchDR / DROS candidate of the fixed
  lattice (the data-driven ``tau`` / ``lambda`` are chosen from them as in memory);
* weight sum / sum of squares / max / min positive, the a-priori weight bound, the target mass outside the
  logging support, reward min / max with the weighted rows at each (:class:`~offline_eval.diagnostics.RangeEnds`:
  the informative rows on the observed range), per stated ``reward_range`` the weighted rows off each of its ends,
  clipped and switched counts.

The accumulator is plain arrays (:meth:`PolicyAccumulator.to_arrays` / :meth:`PolicyAccumulator.from_arrays`, no
pickle), so Spark partitions ship it to the driver.

Which intervals are mergeable
-----------------------------
The normal interval (the delta method for SNIPS / SNDR) is a function of the moments: computed exactly. The
empirical-likelihood (``"el"``, ``"el-ips"``), bootstrap and Bernstein intervals optimise or resample over the
rows; ``interval="auto"`` uses EL only up to :data:`~offline_eval.intervals.AUTO_EL_MAX_N` rows. The accumulator
therefore also keeps the rows' base columns (``w``, ``r``, ``dm``, ``r - q`` and the row position) while the merged
count is at most :data:`RETAINED_MAX_ROWS` (= ``AUTO_EL_MAX_N``: at most 200 000 rows x (2 + 2 per reward model)
floats per policy) and drops them beyond; from them the non-normal intervals are computed by the same functions
as in memory, on the rows in log order. An explicitly requested ``"el"``, ``"bootstrap"`` or ``"bernstein"``
interval on more rows raises ``ValueError`` (it is never replaced by another kind). So every estimate, interval
kind and diagnostic equals :func:`offline_eval.evaluate`'s, to floating-point summation order.

References
----------
Chan, T. F., Golub, G. H. and LeVeque, R. J. (1979). Updating formulae and a pairwise algorithm for computing
sample variances. Technical report STAN-CS-79-773.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from offline_eval._stream_kernels import column_moments
from offline_eval.data import LoggedData
from offline_eval.diagnostics import (
    INFORMATIVE_ROWS_MIN,
    Diagnostics,
    InformativeRows,
    RangeEnds,
    informative_counts,
    weight_diagnostics,
)
from offline_eval.estimators import DM, DR, DROS, IPS, SNDR, SNIPS, Estimate, Estimator, SwitchDR, resolve_target
from offline_eval.estimators.base import TARGET_ATOL, _weight_bound
from offline_eval.estimators.doubly_robust import _min_positive, _shrunk_weights, _switch_weights, select_candidate
from offline_eval.gap import GapMoments, projects_weights
from offline_eval.intervals import AUTO_EL_MAX_N, Interval, RowTerms
from offline_eval.reward_fit import check_mergeable
from offline_eval.slope_grid import LATTICE, CandidateMoments
from offline_eval.small_sample import SmallSampleFloor, small_sample_floor

__all__ = ["RETAINED_MAX_ROWS", "Layout", "Moments", "PolicyAccumulator", "evaluation_table", "policy_results"]

#: Rows whose base columns an accumulator keeps for the non-normal intervals (module docstring).
RETAINED_MAX_ROWS = AUTO_EL_MAX_N

_ROW_METHODS = ("el", "bootstrap", "bernstein")


# ----------------------------------------------------------------------------------------------------------------
# moments
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class Moments:
    """Count, means (m,) and co-moment matrix (m, m) ``sum (x - mean)(x - mean)^T`` of m per-row columns."""

    n: int
    mean: np.ndarray
    comoment: np.ndarray

    @classmethod
    def of(cls, columns: np.ndarray) -> Moments:
        """Moments of the columns (m, rows) of one batch (no BLAS call: see :mod:`offline_eval._stream_kernels`)."""
        mean, comoment = column_moments(columns)
        return cls(columns.shape[1], mean, comoment)

    def merge(self, other: Moments) -> Moments:
        """Moments of the union of the rows (Chan et al.)."""
        if self.n == 0:
            return other
        if other.n == 0:
            return self
        n = self.n + other.n
        delta = other.mean - self.mean
        return Moments(
            n,
            self.mean + delta * (other.n / n),
            self.comoment + other.comoment + np.outer(delta, delta) * (self.n * other.n / n),
        )


# ----------------------------------------------------------------------------------------------------------------
# layout: which columns the estimators need
# ----------------------------------------------------------------------------------------------------------------


def _same_model(a: Any, b: Any) -> bool:
    if a is b:
        return True
    try:
        return a is not None and b is not None and type(a) is type(b) and bool(a == b)
    except Exception:  # an __eq__ that cannot compare means "not known to be the same"
        return False


@dataclass(frozen=True)
class Layout:
    """The per-row columns a list of estimators needs, and which reward model each estimator uses.

    Built from the estimators alone (:meth:`of`), identically on every machine, so accumulators built anywhere
    line up. ``models`` holds one entry per distinct ``reward_model`` (None = the data's default), as
    :func:`offline_eval.evaluate` shares them; ``model_of[i]`` is estimator i's index into it (-1: none).
    """

    estimators: tuple[Estimator, ...]
    models: tuple[Any, ...]
    model_of: tuple[int, ...]
    columns: tuple[tuple[str, int, float], ...]  # (kind, model index, threshold)
    clips: tuple[float, ...]  # weight thresholds whose exceedances are counted
    candidate_models: tuple[int, ...]  # models whose SwitchDR / DROS candidates are accumulated
    gap_models: tuple[int, ...]  # models of a DM whose DR - DM gap sums are accumulated (offline_eval.gap)
    ranges: tuple[tuple[float, float], ...] = ()  # the estimators' stated reward ranges (informative rows on each)

    @classmethod
    def of(cls, estimators: Sequence[Estimator]) -> Layout:
        models: list[Any] = []
        model_of = []
        for est in estimators:
            if type(est) not in _SUPPORTED:
                raise TypeError(
                    f"{type(est).__name__} has no mergeable statistics; the streaming and Spark evaluations support "
                    f"{', '.join(c.__name__ for c in _SUPPORTED)}"
                )
            if not est.uses_reward_model:
                model_of.append(-1)
                continue
            model = getattr(est, "reward_model", None)
            try:
                check_mergeable(model)
            except TypeError as err:
                raise TypeError(f"{est.name}: {err}") from None
            for i, known in enumerate(models):
                if _same_model(known, model):
                    model_of.append(i)
                    break
            else:
                models.append(model)
                model_of.append(len(models) - 1)
        columns: list[tuple[str, int, float]] = [("r", -1, 0.0), ("w", -1, 0.0), ("wr", -1, 0.0)]
        columns += [(kind, m, 0.0) for m in range(len(models)) for kind in ("dm", "wres")]
        clips: list[float] = []
        candidates: list[int] = []
        for est, m in zip(estimators, model_of, strict=True):
            extra = None
            if isinstance(est, IPS) and est.clip is not None:
                extra, threshold = ("clip_r", -1, float(est.clip)), float(est.clip)
            elif isinstance(est, DR) and est.clip is not None:
                extra, threshold = ("clip_res", m, float(est.clip)), float(est.clip)
            elif isinstance(est, SwitchDR) and est.tau is not None:
                extra, threshold = ("switch_res", m, float(est.tau)), float(est.tau)
            elif isinstance(est, DROS) and est.lam is not None:
                lam = float(est.lam)
                if 0.0 < lam < math.inf:
                    extra = ("shrink_res", m, lam)
                threshold = math.nan
            elif isinstance(est, (SwitchDR, DROS)):
                threshold = math.nan
                if m not in candidates:
                    candidates.append(m)
            else:
                threshold = math.nan
            if extra is not None and extra not in columns:
                columns.append(extra)
            if not math.isnan(threshold) and threshold not in clips:
                clips.append(threshold)
        gaps = tuple(sorted({m for est, m in zip(estimators, model_of, strict=True)
                             if isinstance(est, DM) and projects_weights(models[m])}))
        ranges = tuple(dict.fromkeys(est.reward_range for est in estimators if est.reward_range is not None))
        return cls(tuple(estimators), tuple(models), tuple(model_of), tuple(columns), tuple(clips),
                   tuple(candidates), gaps, ranges)

    def index(self, kind: str, model: int = -1, threshold: float = 0.0) -> int:
        """Position of a column."""
        return self.columns.index((kind, model, threshold))

    def values(self, w: np.ndarray, r: np.ndarray, dm: Sequence[np.ndarray], resid: Sequence[np.ndarray]
               ) -> np.ndarray:
        """The columns (m, rows) from the base columns (weights, rewards, DM parts and residuals per model)."""
        out = np.empty((len(self.columns), len(w)))
        for j, (kind, m, t) in enumerate(self.columns):
            if kind == "r":
                out[j] = r
            elif kind == "w":
                out[j] = w
            elif kind == "wr":
                np.multiply(w, r, out=out[j])
            elif kind == "dm":
                out[j] = dm[m]
            elif kind == "wres":
                np.multiply(w, resid[m], out=out[j])
            elif kind == "clip_r":
                np.multiply(np.minimum(w, t), r, out=out[j])
            elif kind == "clip_res":
                np.multiply(np.minimum(w, t), resid[m], out=out[j])
            elif kind == "switch_res":
                np.multiply(_switch_weights(w, t), resid[m], out=out[j])
            else:  # shrink_res
                np.multiply(_shrunk_weights(w, t), resid[m], out=out[j])
        return out


_SUPPORTED = (IPS, SNIPS, DM, DR, SNDR, SwitchDR, DROS)


# ----------------------------------------------------------------------------------------------------------------
# the accumulator
# ----------------------------------------------------------------------------------------------------------------

# scalar slots (_RMIN, _AT_MIN, _RMAX, _AT_MAX, _WEIGHTED: the fields of diagnostics.RangeEnds)
_WSUM, _WSQ, _WMAX, _WMINPOS, _WBOUND, _OUTSIDE, _KNOWN, _RMIN, _AT_MIN, _RMAX, _AT_MAX, _WEIGHTED = range(12)
_N_SCALARS = 12
_ENDS = [_RMIN, _AT_MIN, _RMAX, _AT_MAX, _WEIGHTED]


@dataclass
class PolicyAccumulator:
    """Mergeable statistics of one target policy on some rows of the logs, for the estimators of a :class:`Layout`.

    Build one per batch with :meth:`of` and combine with :meth:`merge` (associative; any order and grouping give
    the same result up to rounding); :func:`policy_results` turns the merged accumulator into the estimates.

    Attributes
    ----------
    layout : Layout
    n : int
        Rows.
    moments : Moments
        Of the layout's columns.
    scalars : ndarray (12,)
        Weight sum, sum of squares, max, min positive, a-priori weight bound (NaN unless needed), target mass
        outside the logging support, whether any row's support is known (0/1), and the observed range's
        :class:`~offline_eval.diagnostics.RangeEnds` (reward min, weighted rows at it, reward max, weighted rows at
        it, weighted rows).
    stated : ndarray (len(layout.ranges), 2)
        Per stated reward range, the weighted rows above its low end and below its high end (sums over rows).
    exceed : ndarray (len(layout.clips),)
        Rows with ``w > threshold`` per threshold.
    candidates : list of CandidateMoments
        Per entry of ``layout.candidate_models``.
    gaps : list of GapMoments
        Per entry of ``layout.gap_models``: the sums behind the standard error of DR - DM (:mod:`offline_eval.gap`).
    rows : dict of arrays or None
        The retained base columns (``position``, ``w``, ``r``, ``dm{m}``, ``resid{m}``), None once dropped.
    """

    layout: Layout
    n: int
    moments: Moments
    scalars: np.ndarray
    exceed: np.ndarray
    candidates: list[CandidateMoments]
    gaps: list[GapMoments]
    stated: np.ndarray
    rows: dict[str, np.ndarray] | None = field(default=None)

    @classmethod
    def of(
        cls,
        layout: Layout,
        data: LoggedData,
        target: Any,
        q: Sequence[np.ndarray],
        start: int = 0,
        name: str = "target",
    ) -> PolicyAccumulator:
        """Statistics of one batch.

        Parameters
        ----------
        layout : Layout
        data : LoggedData
            The batch (n >= 1 rows).
        target : policy object, arm, array or ResolvedTarget
            The target on these rows (see :func:`offline_eval.estimators.resolve_target`).
        q : sequence of ndarray (n, K)
            The cross-fitted reward matrix of each of ``layout.models`` on these rows.
        start : int
            Position of the batch's first row in the log (orders the retained rows).
        name : str
            What error messages call the target.
        """
        resolved = resolve_target(data, target, name=name)
        n = data.n
        w, r = resolved.weights, data.reward
        dm, resid = [], []
        rows = np.arange(n) if len(q) else None
        for qm in q:
            dm.append(resolved.expected(qm))
            resid.append(r - qm[rows, data.action])
        columns = layout.values(w, r, dm, resid)
        scalars = np.zeros(_N_SCALARS)
        scalars[_WSUM] = resolved.weight_sum
        scalars[_WSQ] = resolved.weight_sq_sum
        scalars[_WMAX] = resolved.weight_max
        scalars[_WMINPOS] = _min_positive(w)
        scalars[_KNOWN] = resolved.support_deficit is not None
        scalars[_OUTSIDE] = (resolved.support_deficit or 0.0) * n
        scalars[_ENDS] = resolved.range_ends()
        stated = np.array([informative_counts(w, r, rr) for rr in layout.ranges], dtype=np.float64).reshape(-1, 2)
        keep = n <= RETAINED_MAX_ROWS and layout_needs_rows(layout)
        # the bound serves EL-IPS on kept rows and the small-sample floor, which a merge can need only if this
        # batch alone has too few informative rows on some range (merging never lowers a count)
        fewest = min([resolved.n_informative, *(int(c.min()) for c in stated)])
        needed = keep or fewest < INFORMATIVE_ROWS_MIN
        scalars[_WBOUND] = _weight_bound(resolved) if needed else math.nan
        exceed = np.array([float(np.count_nonzero(w > t)) for t in layout.clips])
        candidates = [CandidateMoments.of(w, resid[m], dm[m], r) for m in layout.candidate_models]
        gaps = [GapMoments.of(data.context, data.action, data.n_actions, w, resid[m]) for m in layout.gap_models]
        kept = None
        if keep:
            kept = {"position": np.arange(start, start + n, dtype=np.float64), "w": np.array(w), "r": np.array(r)}
            for m in range(len(q)):
                kept[f"dm{m}"] = dm[m]
                kept[f"resid{m}"] = resid[m]
        return cls(layout, n, Moments.of(columns), scalars, exceed, candidates, gaps, stated, kept)

    def merge(self, other: PolicyAccumulator) -> PolicyAccumulator:
        """The statistics of both accumulators' rows."""
        if (other.layout.columns != self.layout.columns or len(other.candidates) != len(self.candidates)
                or len(other.gaps) != len(self.gaps)):
            raise ValueError("cannot merge accumulators of different estimator layouts")
        a, b = self.scalars, other.scalars
        s = np.empty(_N_SCALARS)
        for k in (_WSUM, _WSQ, _OUTSIDE):
            s[k] = a[k] + b[k]
        for k in (_WMAX, _KNOWN):
            s[k] = max(a[k], b[k])
        s[_WMINPOS] = min(a[_WMINPOS], b[_WMINPOS])
        s[_ENDS] = _range_ends(self).merge(_range_ends(other))
        s[_WBOUND] = np.fmax(a[_WBOUND], b[_WBOUND])  # NaN in batches that need it for neither use (of())
        n = self.n + other.n
        rows = None
        if self.rows is not None and other.rows is not None and n <= RETAINED_MAX_ROWS:
            rows = {k: np.concatenate([self.rows[k], other.rows[k]]) for k in self.rows}
        else:
            _check_rows_not_needed(self.layout, n)
        return PolicyAccumulator(
            self.layout,
            n,
            self.moments.merge(other.moments),
            s,
            self.exceed + other.exceed,
            [x.merge(y) for x, y in zip(self.candidates, other.candidates, strict=True)],
            [x.merge(y) for x, y in zip(self.gaps, other.gaps, strict=True)],
            self.stated + other.stated,
            rows,
        )

    # -- plain arrays ----------------------------------------------------------------------------------------------

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The accumulator as named float64 arrays (``np.savez``-able; :meth:`from_arrays` inverts it)."""
        out = {
            "n": np.array([float(self.n)]),
            "mean": self.moments.mean,
            "comoment": self.moments.comoment,
            "scalars": self.scalars,
            "exceed": self.exceed,
            "stated": self.stated,
        }
        for i, c in enumerate(self.candidates):
            out[f"candidates{i}"] = c.to_array()
        for i, g in enumerate(self.gaps):
            out[f"gaps{i}"] = g.to_array()
        if self.rows is not None:
            for k, v in self.rows.items():
                out[f"rows.{k}"] = v
        return out

    @classmethod
    def from_arrays(cls, layout: Layout, arrays: Mapping[str, np.ndarray]) -> PolicyAccumulator:
        """Rebuild from :meth:`to_arrays` output (``layout`` as when it was built)."""
        m = len(layout.columns)
        mean = np.asarray(arrays["mean"], dtype=np.float64)
        comoment = np.asarray(arrays["comoment"], dtype=np.float64)
        if mean.shape != (m,) or comoment.shape != (m, m):
            raise ValueError(f"accumulator arrays do not match the layout ({m} columns), got mean {mean.shape}")
        rows = {k[5:]: np.asarray(v, dtype=np.float64) for k, v in arrays.items() if k.startswith("rows.")}
        n = int(np.asarray(arrays["n"])[0])
        return cls(
            layout,
            n,
            Moments(n, mean, comoment),
            np.asarray(arrays["scalars"], dtype=np.float64).copy(),
            np.asarray(arrays["exceed"], dtype=np.float64).copy(),
            [CandidateMoments.from_array(np.asarray(arrays[f"candidates{i}"], dtype=np.float64))
             for i in range(len(layout.candidate_models))],
            [GapMoments.from_array(arrays[f"gaps{i}"]) for i in range(len(layout.gap_models))],
            np.asarray(arrays["stated"], dtype=np.float64).reshape(len(layout.ranges), 2).copy(),
            rows or None,
        )


def layout_needs_rows(layout: Layout) -> bool:
    """Whether an estimator may need the rows (an interval other than "normal")."""
    return any(est.interval != "normal" for est in layout.estimators)


def _check_rows_not_needed(layout: Layout, n: int) -> None:
    for est in layout.estimators:
        if est.interval in _ROW_METHODS and n > RETAINED_MAX_ROWS:
            raise ValueError(
                f"{est.name}: interval={est.interval!r} needs every row in memory, and the data has more than "
                f"{RETAINED_MAX_ROWS} rows; use interval='normal' or 'auto' (normal above {AUTO_EL_MAX_N} rows) for "
                "streaming and Spark evaluations, or evaluate() in memory"
            )


# ----------------------------------------------------------------------------------------------------------------
# results
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Linear:
    """``sum_j coef_j mean(col_j) + sum_k sign_k mean(num_k) / mean(den_k)`` over accumulator columns."""

    coef: dict[int, float]
    ratios: tuple[tuple[float, int, int], ...] = ()

    def minus_reward(self) -> _Linear:
        coef = dict(self.coef)
        coef[0] = coef.get(0, 0.0) - 1.0  # column 0 is r
        return _Linear(coef, self.ratios)


@dataclass(frozen=True)
class _Spec:
    terms: _Linear
    clipped_share: float = 0.0
    consistent: bool = True
    params: Mapping[str, float] = field(default_factory=dict)
    warn_clipped: bool = True
    reference: _Linear | None = None
    reference_kind: str = "dr"
    candidate: tuple[int, str, int | None] | None = None  # (candidate-moments index, family, lattice index)


def _normal(lin: _Linear, mean: np.ndarray, comoment: np.ndarray, n: int, alpha: float) -> Interval:
    """Value, se and normal (delta-method) interval of a linear spec from moments, as
    :func:`offline_eval.intervals.normal_interval` computes them from the rows."""
    a = np.zeros(len(mean))
    value = 0.0
    has_terms = bool(lin.coef)
    for j, c in lin.coef.items():
        a[j] += c
    if has_terms:
        value = float(a @ mean)
    finite = True
    for sign, num, den in lin.ratios:
        if mean[den] == 0.0:
            value, finite = math.nan, False
            continue
        ratio = mean[num] / mean[den]
        value += sign * ratio
        a[num] += sign / mean[den]
        a[den] -= sign * ratio / mean[den]
    if n < 2 or not finite or not math.isfinite(value):
        return Interval(value, math.nan, math.nan, math.nan)
    ss = max(float(a @ comoment @ a), 0.0)
    se = math.sqrt(ss / (n - 1)) / math.sqrt(n)
    half = NormalDist().inv_cdf(1.0 - alpha / 2.0) * se
    return Interval(value, se, value - half, value + half)


class _Rows:
    """Materialises specs as :class:`RowTerms` on the retained rows (log order)."""

    def __init__(self, acc: PolicyAccumulator) -> None:
        rows = acc.rows
        if rows is None:  # pragma: no cover - policy_results checks first
            raise RuntimeError("the accumulator dropped its rows")
        order = np.argsort(rows["position"], kind="stable")
        self.w = rows["w"][order]
        self.r = rows["r"][order]
        n_models = len(acc.layout.models)
        self.dm = [rows[f"dm{m}"][order] for m in range(n_models)]
        self.resid = [rows[f"resid{m}"][order] for m in range(n_models)]
        self.cols = acc.layout.values(self.w, self.r, self.dm, self.resid)
        self.w_bound = float(acc.scalars[_WBOUND])

    def terms(self, lin: _Linear, candidate: tuple[int, str, float] | None, layout: Layout) -> RowTerms:
        """The RowTerms of ``lin`` (plus the chosen candidate's weighted residual) on the rows; the plain part is
        summed in the estimators' order: DM part, weighted term, minus the reward last."""
        parts = []
        if candidate is not None:
            m, family, theta = candidate
            g = _switch_weights(self.w, theta) if family == "switch" else _shrunk_weights(self.w, theta)
            parts = [(0, self.dm[m]), (1, g * self.resid[m])]
        for j, c in lin.coef.items():
            kind = layout.columns[j][0]
            if candidate is not None and kind == "dm":
                continue
            rank = 2 if j == 0 else (0 if kind == "dm" else 1)
            parts.append((rank, c * self.cols[j]))
        plain = None
        for _, col in sorted(parts, key=lambda p: p[0]):
            plain = col if plain is None else plain + col
        ratios = tuple((sign, self.cols[num], self.cols[den]) for sign, num, den in lin.ratios)
        return RowTerms(plain, ratios)


def _spec(est: Estimator, acc: PolicyAccumulator, m: int) -> _Spec:
    """The estimator's terms (as ``_row_terms`` builds them) over the accumulator's columns."""
    layout = acc.layout
    n = acc.n
    ix = layout.index
    if isinstance(est, IPS):
        wr = _Linear({ix("wr"): 1.0})
        if est.clip is None:
            return _Spec(wr)
        c = float(est.clip)
        count = float(acc.exceed[layout.clips.index(c)])
        if count == 0:
            return _Spec(wr)
        return _Spec(_Linear({ix("clip_r", -1, c): 1.0}), clipped_share=count / n, consistent=False, reference=wr,
                     reference_kind="ips")
    if isinstance(est, SNIPS):
        return _Spec(_Linear({}, ((1.0, ix("wr"), ix("w")),)))
    dm, wres = ix("dm", m), ix("wres", m)
    dr = _Linear({dm: 1.0, wres: 1.0})
    if isinstance(est, DM):
        return _Spec(_Linear({dm: 1.0}), consistent=False, reference=dr)
    if isinstance(est, SNDR):
        return _Spec(_Linear({dm: 1.0}, ((1.0, wres, ix("w")),)))
    if isinstance(est, DR):
        if est.clip is None:
            return _Spec(dr)
        c = float(est.clip)
        count = float(acc.exceed[layout.clips.index(c)])
        if count == 0:
            return _Spec(dr)
        return _Spec(_Linear({dm: 1.0, ix("clip_res", m, c): 1.0}), clipped_share=count / n, consistent=False,
                     reference=dr)
    if isinstance(est, SwitchDR):
        if est.tau is not None:
            tau = float(est.tau)
            switched = float(acc.exceed[layout.clips.index(tau)]) / n
            return _Spec(_Linear({dm: 1.0, ix("switch_res", m, tau): 1.0}), clipped_share=switched,
                         consistent=switched == 0.0, params={"tau": tau}, reference=None if switched == 0.0 else dr)
        ci = layout.candidate_models.index(m)
        tau, j = select_candidate(acc.candidates[ci], "switch", acc.scalars[_WMINPOS], acc.scalars[_WMAX])
        switched = acc.candidates[ci].switched(j) / n
        return _Spec(_Linear({dm: 1.0}), clipped_share=switched, consistent=switched == 0.0, params={"tau": tau},
                     warn_clipped=False, reference=None if switched == 0.0 else dr, candidate=(ci, "switch", j))
    if isinstance(est, DROS):
        if est.lam is not None:
            lam = float(est.lam)
            if math.isinf(lam):
                terms = dr
            elif lam == 0.0:
                terms = _Linear({dm: 1.0})
            else:
                terms = _Linear({dm: 1.0, ix("shrink_res", m, lam): 1.0})
            return _Spec(terms, consistent=math.isinf(lam), params={"lam": lam},
                         reference=None if math.isinf(lam) else dr)
        ci = layout.candidate_models.index(m)
        lam, j = select_candidate(acc.candidates[ci], "dros", acc.scalars[_WMINPOS], acc.scalars[_WMAX])
        return _Spec(_Linear({dm: 1.0}), consistent=math.isinf(lam), params={"lam": lam},
                     reference=None if math.isinf(lam) else dr, candidate=(ci, "dros", j))
    raise TypeError(f"{type(est).__name__} has no mergeable statistics")  # pragma: no cover - Layout.of checks


def _candidate_moments(
    acc: PolicyAccumulator, candidate: tuple[int, str, int | None], m: int
) -> tuple[np.ndarray, np.ndarray]:
    """Means and co-moments over the columns (r, dm, y) with y the chosen candidate's weighted residual; the
    estimator's terms are then ``dm + y`` (columns 1 and 2)."""
    ci, family, j = candidate
    c = acc.candidates[ci]
    mean_y, c_yy, c_dy, c_ry = c.stats(family, j)
    r, dm = 0, acc.layout.index("dm", m)
    M, C = acc.moments.mean, acc.moments.comoment
    mean = np.array([M[r], M[dm], mean_y])
    comoment = np.array([[C[r, r], C[r, dm], c_ry], [C[dm, r], C[dm, dm], c_dy], [c_ry, c_dy, c_yy]])
    return mean, comoment


@dataclass(frozen=True)
class PolicyResult:
    """One estimator's result on a policy: the estimate and the lift interval with its (bias-aware) bounds."""

    estimate: Estimate
    lift: Interval
    lift_low: float
    lift_high: float
    bias_se: float = math.nan  # DM: standard error of its bias (the mean correction), as evaluate() computes it


def pair_diagnostics(acc: PolicyAccumulator, clipped_share: float = 0.0, warn_clipped: bool = True,
                     reward_range: tuple[float, float] | None = None) -> Diagnostics:
    """:meth:`ResolvedTarget.diagnostics <offline_eval.estimators.ResolvedTarget.diagnostics>`, from the
    accumulator."""
    s = acc.scalars
    return weight_diagnostics(acc.n, float(s[_WSUM]), float(s[_WSQ]), float(s[_WMAX]), support_deficit(acc),
                              clipped_share, warn_clipped, informative(acc, reward_range).rows)


def _range_ends(acc: PolicyAccumulator) -> RangeEnds:
    low, at_low, high, at_high, weighted = acc.scalars[_ENDS].tolist()
    return RangeEnds(low, int(at_low), high, int(at_high), int(weighted))


def informative(acc: PolicyAccumulator, reward_range: tuple[float, float] | None = None) -> InformativeRows:
    """:meth:`ResolvedTarget.informative <offline_eval.estimators.ResolvedTarget.informative>`, from the
    accumulator (``reward_range`` one of ``acc.layout.ranges``, or None for the observed range)."""
    if reward_range is None:
        return _range_ends(acc).informative()
    _range_ends(acc).check_within(reward_range)
    above_low, below_high = acc.stated[acc.layout.ranges.index(reward_range)].tolist()
    return InformativeRows(int(above_low), int(below_high))


def _small_sample_floor(acc: PolicyAccumulator, est: Estimator) -> SmallSampleFloor | None:
    """:meth:`ResolvedTarget.small_sample_floor <offline_eval.estimators.ResolvedTarget.small_sample_floor>`, from
    the accumulator."""
    counts = informative(acc, est.reward_range)
    if counts.rows >= INFORMATIVE_ROWS_MIN:
        return None
    s = acc.scalars
    mean = acc.moments.mean
    layout = acc.layout
    deficit = support_deficit(acc)
    supported = deficit is None or deficit <= TARGET_ATOL
    return small_sample_floor(acc.n, counts.rows, float(mean[layout.index("wr")]),
                              float(mean[layout.index("r")]), float(s[_WBOUND]),
                              reward_range(acc) if est.reward_range is None else est.reward_range, float(est.alpha),
                              counts.at_top, float(s[_WSUM]) / acc.n, supported)


def support_deficit(acc: PolicyAccumulator) -> float | None:
    """Mean target mass outside the logging support (None when unknown)."""
    return float(acc.scalars[_OUTSIDE]) / acc.n if acc.scalars[_KNOWN] else None


def reward_range(acc: PolicyAccumulator) -> tuple[float, float]:
    """Observed reward min and max."""
    return float(acc.scalars[_RMIN]), float(acc.scalars[_RMAX])


def policy_results(acc: PolicyAccumulator) -> list[PolicyResult]:
    """Every estimator's estimate (and lift) from a merged accumulator, equal to the in-memory ones.

    Raises ``ValueError`` for fewer than 2 rows, or an interval that needs rows the accumulator no longer holds.
    """
    layout = acc.layout
    n = acc.n
    if n < 2:
        raise ValueError(f"data has {n} rows; an estimate with an interval needs at least 2")
    _check_rows_not_needed(layout, n)
    deficit = support_deficit(acc)
    supported = deficit is None or deficit <= TARGET_ATOL
    rows: _Rows | None = None
    out = []
    for est, m in zip(layout.estimators, layout.model_of, strict=True):
        spec = _spec(est, acc, m)
        method = est._method(n)
        if method != "normal" and rows is None:
            if acc.rows is None:
                raise ValueError(f"{est.name}: interval {method!r} needs the rows, which were not kept")
            rows = _Rows(acc)

        def interval(lin: _Linear, ips_form: bool, candidate: Any = None, *, est: Estimator = est,
                     method: str = method) -> tuple[Interval, str]:
            if method == "normal":
                if candidate is not None:
                    mean, comoment = _candidate_moments(acc, candidate, m)
                    coef = {1: 1.0, 2: 1.0}
                    if 0 in lin.coef:
                        coef[0] = -1.0
                    return _normal(_Linear(coef), mean, comoment, n, float(est.alpha)), "normal"
                return _normal(lin, acc.moments.mean, acc.moments.comoment, n, float(est.alpha)), "normal"
            if rows is None:  # pragma: no cover - built above for every non-normal method
                raise RuntimeError("rows not materialised")
            terms = rows.terms(lin, _candidate_theta(acc, candidate), layout)
            if method == "el" and ips_form and supported:  # as Estimator._terms_interval
                from offline_eval.empirical_likelihood import ips_el_interval
                from offline_eval.intervals import normal_interval

                point = normal_interval(terms, est.alpha)
                el = ips_el_interval(rows.w, rows.r, est.alpha, w_max=rows.w_bound, reward_range=est.reward_range,
                                     value=point.value)
                return Interval(point.value, point.se, el.low, el.high), "el-ips"
            return est._interval(terms), method

        own_ips = isinstance(est, SNIPS) or (isinstance(est, IPS) and spec.consistent)
        iv, kind = interval(spec.terms, own_ips, spec.candidate)
        reference = None if spec.consistent else spec.reference
        bias = 0.0
        low, high = iv.low, iv.high
        if reference is not None:
            ref, ref_kind = interval(reference, spec.reference_kind == "ips")
            bias = iv.value - ref.value
            if est.bias_aware:
                low, high, kind = min(iv.value, ref.low), max(iv.value, ref.high), f"bias-aware({ref_kind})"
        floor = _small_sample_floor(acc, est)
        if floor is not None:
            low, high, kind = min(low, floor.value_low), max(high, floor.value_high), f"{kind}+kl"
        honest = spec.consistent or (reference is not None and est.bias_aware)
        estimate = Estimate(
            value=iv.value,
            se=iv.se,
            ci_low=low,
            ci_high=high,
            n=n,
            estimator=est.name,
            alpha=float(est.alpha),
            interval=kind,
            diagnostics=pair_diagnostics(acc, spec.clipped_share, spec.warn_clipped, est.reward_range),
            consistent=spec.consistent and supported,
            params=dict(spec.params),
            bias=bias,
            honest=honest and supported,
        )
        lift_iv = interval(spec.terms.minus_reward(), False, spec.candidate)[0]
        lift_low, lift_high = lift_iv.low, lift_iv.high
        lift_ref = None if spec.consistent or spec.reference is None else spec.reference.minus_reward()
        if lift_ref is not None and est.bias_aware:
            ref = interval(lift_ref, False)[0]
            lift_low, lift_high = min(lift_iv.value, ref.low), max(lift_iv.value, ref.high)
        if floor is not None:
            lift_low, lift_high = min(lift_low, floor.lift_low), max(lift_high, floor.lift_high)
        bias_se = math.nan
        if isinstance(est, DM) and reference is not None and m in layout.gap_models:
            bias_se = math.sqrt(acc.gaps[layout.gap_models.index(m)].variance())
        elif isinstance(est, DM) and reference is not None:
            own, ref_coef = spec.terms.coef, reference.coef
            gap = _Linear({j: own.get(j, 0.0) - ref_coef.get(j, 0.0) for j in own.keys() | ref_coef.keys()})
            bias_se = _normal(gap, acc.moments.mean, acc.moments.comoment, n, float(est.alpha)).se
        out.append(PolicyResult(estimate, lift_iv, lift_low, lift_high, bias_se))
    return out


def _candidate_theta(acc: PolicyAccumulator, candidate: Any) -> tuple[int, str, float] | None:
    """(model, family, theta) of a chosen candidate, for materialising it on the rows."""
    if candidate is None:
        return None
    ci, family, j = candidate
    if j is None:
        theta = math.inf
    elif j < 0:
        theta = 0.0
    else:
        theta = float(LATTICE[j]) ** (2 if family == "dros" else 1)
    return acc.layout.candidate_models[ci], family, theta


def evaluation_table(accumulators: Mapping[str, PolicyAccumulator], stacklevel: int = 3) -> pd.DataFrame:
    """The :func:`offline_eval.evaluate` table from merged accumulators (one per policy, in table order).

    Diagnostic warnings are raised as ``evaluate`` raises them: those about the (data, policy) pair once per policy,
    estimator-specific ones prefixed by the estimator name.
    """
    from offline_eval.diagnostics import emit, policy_messages
    from offline_eval.evaluate import COLUMNS, mark_recommended, table_row

    rows: list[dict[str, Any]] = []
    for policy_name, acc in accumulators.items():
        results = policy_results(acc)
        messages: list[tuple[str, tuple[str, ...]]] = []
        lo, hi = reward_range(acc)
        scale = max(abs(lo), abs(hi), hi - lo)
        deficit = support_deficit(acc)
        supported = deficit is None or deficit <= TARGET_ATOL
        support_bias = 0.0 if supported else (deficit or 0.0) * scale
        first = len(rows)
        for res, est in zip(results, acc.layout.estimators, strict=True):
            rows.append(table_row(policy_name, res.estimate, res.lift, res.lift_low, res.lift_high, support_bias,
                                  res.bias_se, value_range=est.reward_range))
            messages.append((res.estimate.estimator, res.estimate.diagnostics.warnings))
        mark_recommended(rows, first)
        emit(policy_messages(pair_diagnostics(acc).warnings, messages), f"policies[{policy_name!r}]",
             stacklevel=stacklevel + 1)
    return pd.DataFrame(rows, columns=list(COLUMNS))
