"""Compare policies on logged data: a table of estimates (:func:`evaluate`) and paired differences (:func:`compare`).

How :func:`evaluate` picks the recommended row of each policy (the DR-DM blend)
-------------------------------------------------------------------------------
Every row has an honest interval (``honest``): unbiased estimators their own, estimators that trade bias for
variance (DM, SwitchDR, DROS, clipped IPS / DR) a bias-aware one (the unbiased reference's interval extended to
contain the estimate; ``bias`` is their difference to that reference). When the estimators include DM and DR with
the same reward model (the defaults do), :func:`evaluate` adds one more row per policy, ``"DR-DM blend"``, and
recommends it: a James-Stein-type shrinkage of DR toward DM by the DR-DM gap measured against its own noise.

*Derivation.* Write ``D = DR - DM = mean_i w_i (r_i - q(x_i, a_i))``, the mean of DR's per-row corrections, and
``V(lam) = DR - lam D = (1 - lam) DR + lam DM``. With correct propensities DR is unbiased for the true value
``theta`` and ``E[D] = -b``, ``b`` the bias of DM (the reward model's error on the target's choices). Then

    MSE(V(lam)) = Var(DR) - 2 lam Cov(DR, D) + lam^2 E[D^2],   minimised at   lam* = Cov(DR, D) / E[D^2].

``Cov(DR, D) = Var(D) + Cov(DM, D)``; DM averages the model's predictions and D its weighted residuals, whose
covariance across contexts is zero when the model's error is uncorrelated with its prediction and is neglected:
``Cov(DR, D) ~= Var(D)`` (the bench measures the resulting accuracy). ``E[D^2] = Var(D) + b^2`` is estimated
without bias by the observed ``D^2``, and ``Var(D)`` by ``v_D``, the DM row's ``bias_se`` squared
(:mod:`offline_eval.gap`): the sample variance over n of ``(w_i - w^_i) (r_i - q(x_i, a_i))``, where ``w^`` is the
per-arm least-squares projection of the weights on ``[1, x]``. The reward model was fitted to the same residuals
and absorbs their per-arm means and slopes, so only the weights it cannot express add noise to D; the plain
standard error of ``w_i (r_i - q(x_i, a_i))`` overstated the replications' spread of D 1.1-3.6 times in the accuracy
bench, which pulled the blend to DM where DM's bias was plainly visible. (For a reward model that is not a per-arm
fit with an intercept and linear terms, e.g. a scikit-learn wrapper, ``v_D`` stays the plain variance.) Keeping
``lam`` in [0, 1] (the positive part) gives the plug-in ``lam = min(1, v_D / D^2)``. The rule scales ``v_D`` by a
constant ``c(s)`` that depends on ``s = v_D / se_DR^2``, the share of DR's variance that DM does not have
(:mod:`offline_eval.blend`: the constant that minimises, in the Gaussian model of the two estimates, the worst
ratio over DM's unknown bias of the blend's MSE to the better of DR and DM; 0.8-1 up to s ~ 0.35, rising to 2.8
as DM becomes noiseless relative to DR):

    V = DR - lam (DR - DM),   lam = min(1, c(s) v_D / (DR - DM)^2)        (lam = 1 when DR == DM).

A gap within ``sqrt(c v_D)`` is indistinguishable from noise and the blend is DM; a visible gap pulls it back
towards DR (``lam -> 0`` as ``|D| / sqrt(v_D)`` grows), whatever the model claims about itself. In both cases
``|V - DR| = min(|D|, c v_D / |D|) <= sqrt(c v_D)``: the blend moves at most ``sqrt(c)`` (<= 1.7) standard errors
of the gap away from DR.

*Interval.* The blend's interval is DR's interval widened to contain V, ``[min(V, DR_low), max(V, DR_high)]``
(``interval = "bias-aware(<DR's kind>)"``), so it covers whenever DR's does; since ``|V - DR| <= sqrt(c v_D)``,
below DR's standard error up to s ~ 0.35 and at most 1.7 of them (``c(s) s <= 2.7``), V usually lies inside DR's
95 % interval and the interval is DR's. A narrower interval centred on V would need the sampling law of ``lam D``
(a non-smooth function of the data); it is not attempted. The blend row's ``se`` is DR's, ``bias`` is ``V - DR``
and ``params`` holds ``lam``; the lift columns are DR's lift shifted by the same ``-lam D`` and widened the same
way. The blend is computed from the rows' fields only
(:func:`blend_row`, called by :func:`mark_recommended`), so the in-memory, streaming and Spark tables agree.

*Without a blend* (no DM and DR with the same reward model among the estimators, or DR not honest), the
recommended row is chosen by the SLOPE / Lepski rule (Su, Srinath and Krishnamurthy 2020) over the other honest
rows ordered by decreasing standard error ``se`` (the spread of the estimator's own terms; unbiased rows first on
ties): walking from the noisiest, keep the last row whose interval ``value +- SLOPE_WIDTH * se`` (2 standard
errors) still intersects those of every row before it. The recommended row reports its own point estimate and its
honest interval.

*Why the blend and not SLOPE when both are available.* Measured by ``bench/ope_accuracy.py`` (8 settings, 1,000
replications each; README): SLOPE keeps DM while its bias is below about two DR standard errors, which on the
simulator's default world (DM 12 % off from a misspecified reward model) gave 1.71-1.75x the best single
estimator's RMSE; the blend discounts such a bias continuously: 1.16-1.17x there and a worst case of 1.19x over the
settings (SLOPE 1.75x in the same run). The price is paid where DM is best: 1.06-1.07x in the small skewed world,
where SLOPE has 1.02x. The blend's interval is DR's (coverage 0.945-0.957 in every setting).

``bias_bound`` = ``|bias|`` plus, when the policy has a support deficit ``d`` (target mass on arms the logging
policy never takes, see :mod:`offline_eval.estimators.base`), ``d * max(|r_max|, |r_min|, r_max - r_min)`` over the
logged rewards; ``est_mse = se^2 + bias_bound^2`` is shown for information. With a support deficit no row is
honest and the row with the smallest ``est_mse`` is recommended.

Diagnostic warnings (:class:`~offline_eval.diagnostics.DiagnosticWarning`) name the policy: those about the (data,
policy) pair -- support deficit, effective sample size, mean weight -- are raised once per policy, however many
estimators run; estimator-specific ones (clipping) once per estimator, prefixed by its name.

Reward models are fitted once: estimators with the same ``reward_model`` (None = the default for the data) share
one cross-fitted q matrix across all policies; each target is validated once and shared by all estimators.
Lift over the logging policy is the paired difference ``estimate - mean(reward)``, whose interval comes from the
per-row differences ``psi_i - r_i`` (psi the estimator's per-row terms).

*A stated reward range clips the intervals.* With an estimator's ``reward_range=(low, high)`` (the a-priori range of
one reward, e.g. ``(0, top price)``), a value's interval is clipped to ``[low, high]`` and a lift's or a paired
difference's (:func:`compare`) to ``[low - high, high - low]``, never past the point estimate
(:func:`offline_eval.small_sample.clip_to_range`). The true value lies in that set, so the clipped interval covers
whenever the unclipped one does: coverage is kept and only impossible values are dropped (a conversion rate's
interval no longer starts below 0). The same function clips in the streaming and Spark tables and in
:func:`offline_eval.report.rollout_report`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from offline_eval.blend import blend_shift, shifted_interval
from offline_eval.data import LoggedData
from offline_eval.diagnostics import INFORMATIVE_ROWS_MIN, emit, policy_messages, worst_of
from offline_eval.estimators import DM, Estimate, Estimator, estimator_classes, resolve_target
from offline_eval.estimators.base import ResolvedTarget
from offline_eval.estimators.doubly_robust import slope_select
from offline_eval.gap import gap_se, projects_weights
from offline_eval.intervals import Interval, normal_interval
from offline_eval.small_sample import clip_to_range

__all__ = ["compare", "default_estimators", "evaluate"]

COLUMNS = (
    "policy",
    "estimator",
    "value",
    "se",
    "ci_low",
    "ci_high",
    "lift",
    "lift_se",
    "lift_ci_low",
    "lift_ci_high",
    "n",
    "alpha",
    "interval",
    "consistent",
    "bias_bound",
    "est_mse",
    "recommended",
    "ess",
    "max_weight",
    "mean_weight",
    "support_deficit",
    "clipped_share",
    "params",
    "warnings",
    "bias",
    "honest",
    "bias_se",
)


def default_estimators() -> list[Estimator]:
    """What :func:`evaluate` runs by default: one of every estimator class, with its default parameters.

    The classes are found by introspection (:func:`~offline_eval.estimators.base.estimator_classes`, leaving out
    those with ``_run_by_default = False``): today ``[IPS(), SNIPS(), DM(), DR(), SNDR(), SwitchDR(), DROS()]``.
    """
    return [cls() for cls in estimator_classes() if cls._run_by_default]


def _check_data(data: Any) -> None:
    if not isinstance(data, LoggedData):
        raise TypeError(
            f"data must be an offline_eval.LoggedData, got {type(data).__name__}; build it with LoggedData(...), "
            "LoggedData.from_dataframe(df) or LoggedData.from_parquet(path)"
        )


def _check_estimators(estimators: Sequence[Estimator] | None) -> list[Estimator]:
    if estimators is None:
        return default_estimators()
    if isinstance(estimators, Estimator):
        raise TypeError("estimators must be a sequence of estimators, e.g. [IPS(), DR()], got a single estimator")
    out = list(estimators)
    if not out:
        raise ValueError("estimators is empty; pass None for the defaults or e.g. [IPS(), DR()]")
    for i, est in enumerate(out):
        if not isinstance(est, Estimator):
            raise TypeError(
                f"estimators[{i}] must be an offline_eval estimator such as IPS(), got {type(est).__name__}"
            )
    keys = [(e.name, e.interval, float(e.alpha)) for e in out]
    dupes = sorted({k[0] for k in keys if keys.count(k) > 1})
    if dupes:
        raise ValueError(f"estimators has duplicates {dupes} (same name, interval and alpha); remove them")
    return out


class _RewardMatrices:
    """One cross-fitted q per distinct reward model (None = the data's default model), fitted on first use."""

    def __init__(self, data: LoggedData) -> None:
        self.data = data
        self._fitted: list[tuple[Any, ResolvedTarget | None, np.ndarray]] = []
        self._default: Any = None

    def model(self, estimator: Estimator) -> Any:
        """The estimator's reward model; the data's default model (made once) when it has None."""
        model = getattr(estimator, "reward_model", None)
        if model is None:
            if self._default is None:
                from offline_eval import reward_models

                self._default = reward_models.default_reward_model(self.data)
            model = self._default
        return model

    def get(self, estimator: Estimator, target: ResolvedTarget | None = None) -> np.ndarray | None:
        if not estimator.uses_reward_model:
            return None
        model = getattr(estimator, "reward_model", None)
        per_target = getattr(model, "target_dependent", False)
        for key, key_target, q in self._fitted:
            same = key is model or (key is not None and model is not None and _same_model(key, model))
            if same and (not per_target or key_target is target):
                return q
        if model is None:  # the default model is never target-dependent
            fitted = estimator.reward_matrix(self.data, q=self.model(estimator).fit_predict(self.data))
        else:
            fitted = estimator.reward_matrix(self.data, target=target)
        if fitted is None:  # pragma: no cover - uses_reward_model estimators always return a matrix
            raise RuntimeError(f"{estimator.name} uses a reward model but returned no reward matrix")
        self._fitted.append((model, target if per_target else None, fitted))
        return fitted


def _same_model(a: Any, b: Any) -> bool:
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:  # an __eq__ that cannot compare (e.g. arrays inside) means "not known to be the same"
        return False


def _reward_scale(reward: np.ndarray) -> float:
    """``max(|r_max|, |r_min|, r_max - r_min)``: bounds a support deficit's bias per unit of missing mass."""
    if not len(reward):
        return 0.0
    lo, hi = float(reward.min()), float(reward.max())
    return max(abs(lo), abs(hi), hi - lo)


def _format_params(params: Mapping[str, float]) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in params.items())


def evaluate(
    data: LoggedData,
    policies: Mapping[str, Any],
    estimators: Sequence[Estimator] | None = None,
) -> pd.DataFrame:
    """Estimate every policy with every estimator: one row per (policy, estimator), one recommended per policy.

    Parameters
    ----------
    data : LoggedData
        The logs.
    policies : mapping of str to target
        Policy name -> target (an (n, K) probability array, an (n,) action array, an arm, or an object with
        ``action_probabilities(X, eligible)``; see :mod:`offline_eval.estimators.base`).
    estimators : sequence of Estimator, optional
        Default :func:`default_estimators`.

    Returns
    -------
    pandas.DataFrame
        Columns: ``policy``, ``estimator``, ``value``, ``se``, ``ci_low``, ``ci_high`` (the estimate);
        ``lift``, ``lift_se``, ``lift_ci_low``, ``lift_ci_high`` (estimate minus the logging policy's mean
        reward, paired per row); ``n``, ``alpha``, ``interval``; ``consistent``, ``bias_bound``, ``est_mse``,
        ``recommended`` (see the module docstring); the diagnostics ``ess``, ``max_weight``, ``mean_weight``,
        ``support_deficit``, ``clipped_share``; ``params`` (data-driven hyperparameters as text) and ``warnings``
        (diagnostic messages joined by "; "). Diagnostic warnings are also raised: those about the (data,
        policy) pair once per policy, estimator-specific ones (clipping) prefixed by the estimator name.
        ``table.attrs["quarantined"]``: the rows the log reader left out as breaking the decision-log contract,
        per reason (:attr:`LoggedData.quarantined`; empty when none), as the streaming and Spark engines report it.

    Examples
    --------
    >>> import numpy as np
    >>> from offline_eval import LoggedData, IPS, SNIPS, DR
    >>> rng = np.random.default_rng(7)
    >>> n = 20_000
    >>> X = rng.normal(size=(n, 2))
    >>> logging = np.full((n, 3), 1 / 3)
    >>> action = rng.integers(0, 3, size=n)
    >>> p_convert = 0.05 + 0.05 * action + 0.05 * (X[:, 0] > 0) * (action == 2)
    >>> reward = (rng.random(n) < p_convert).astype(float)
    >>> data = LoggedData(X, action, reward, logging[np.arange(n), action], probabilities=logging)
    >>> table = evaluate(data, {"always 2": 2, "always 0": 0}, estimators=[IPS(), SNIPS(), DR()])
    >>> table[["policy", "estimator", "value", "recommended"]].round(3)
         policy estimator  value  recommended
    0  always 2       IPS  0.173        False
    1  always 2     SNIPS  0.174        False
    2  always 2        DR  0.174         True
    3  always 0       IPS  0.048        False
    4  always 0     SNIPS  0.047         True
    5  always 0        DR  0.047        False
    >>> table.loc[table.recommended, ["policy", "lift", "lift_ci_low", "lift_ci_high"]].round(3)
         policy   lift  lift_ci_low  lift_ci_high
    2  always 2  0.068        0.061         0.075
    4  always 0 -0.059       -0.064        -0.054
    """
    _check_data(data)
    if not isinstance(policies, Mapping) or not policies:
        raise TypeError(
            "policies must be a non-empty mapping of name -> target, e.g. {'new': probs, 'current': logged_probs}"
        )
    for name in policies:
        if not isinstance(name, str):
            raise TypeError(f"policies must be keyed by str names, got key {name!r}")
    ests = _check_estimators(estimators)
    matrices = _RewardMatrices(data)
    scale = _reward_scale(data.reward)
    rows: list[dict[str, Any]] = []
    for policy_name, target in policies.items():
        resolved = resolve_target(data, target, name=f"policies[{policy_name!r}]")
        if data.n < 2:
            raise ValueError(f"data has {data.n} rows; an estimate with an interval needs at least 2")
        messages: list[tuple[str, tuple[str, ...]]] = []
        support_bias = 0.0 if resolved.supported else (resolved.support_deficit or 0.0) * scale
        first_row = len(rows)
        for est in ests:
            q = matrices.get(est, resolved)
            result, out = est._estimate(resolved, q)
            lift_iv = est._terms_interval(resolved, out.terms.minus(data.reward), False)[0]
            lift_ref = None if out.consistent or out.reference is None else out.reference.minus(data.reward)
            lift_low, lift_high, _, _ = est._bias_aware(resolved, lift_iv, "", lift_ref, False)
            floor = resolved.small_sample_floor(est.alpha, est.reward_range)
            if floor is not None:
                lift_low, lift_high = min(lift_low, floor.lift_low), max(lift_high, floor.lift_high)
            bias_se = math.nan
            if isinstance(est, DM) and out.reference is not None:
                if q is not None and projects_weights(matrices.model(est)):
                    bias_se = gap_se(data, resolved.weights, q)
                else:
                    bias_se = normal_interval(out.terms - out.reference, est.alpha).se
            rows.append(table_row(policy_name, result, lift_iv, lift_low, lift_high, support_bias, bias_se,
                                  value_range=est.reward_range))
            messages.append((result.estimator, result.diagnostics.warnings))
        mark_recommended(rows, first_row)
        # about the (data, target) pair, raised once per policy where every estimator shares it
        emit(policy_messages(resolved.diagnostics().warnings, messages), f"policies[{policy_name!r}]", stacklevel=3)
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    table.attrs["quarantined"] = dict(data.quarantined.counts)
    return table


def table_row(
    policy_name: str,
    result: Estimate,
    lift: Interval,
    lift_low: float,
    lift_high: float,
    support_bias: float,
    bias_se: float = math.nan,
    *,
    value_range: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """One row of the :func:`evaluate` table (``recommended`` False until :func:`mark_recommended`).

    ``lift`` is the interval of the estimator's terms minus the logged rewards and ``lift_low``, ``lift_high`` its
    (bias-aware where needed) bounds; ``support_bias`` the support deficit times the reward scale; ``bias_se`` the
    standard error of ``result.bias`` (DM rows: of the mean correction ``mean(w (r - q))``; NaN elsewhere);
    ``value_range`` the estimator's ``reward_range``: when given, the value's interval is clipped to it and the
    lift's to ``[low - high, high - low]`` (:func:`offline_eval.small_sample.clip_to_range`; coverage is kept). The
    blend row (:func:`blend_row`) widens DR's clipped interval to contain the blend, which keeps the same rule.
    Shared with the streaming and Spark evaluations, which compute the same inputs from mergeable statistics.
    """
    ci_low, ci_high = clip_to_range(result.ci_low, result.ci_high, result.value, value_range)
    lift_low, lift_high = clip_to_range(lift_low, lift_high, lift.value, value_range, difference=True)
    bias = support_bias + abs(result.bias)
    d = result.diagnostics
    return {
        "policy": policy_name,
        "estimator": result.estimator,
        "value": result.value,
        "se": result.se,
        "ci_low": ci_low,
        "ci_high": ci_high,
        "lift": lift.value,
        "lift_se": lift.se,
        "lift_ci_low": lift_low,
        "lift_ci_high": lift_high,
        "n": result.n,
        "alpha": result.alpha,
        "interval": result.interval,
        "consistent": result.consistent,
        "bias_bound": bias,
        "est_mse": result.se**2 + bias**2,
        "recommended": False,
        "ess": d.ess,
        "max_weight": d.max_weight,
        "mean_weight": d.mean_weight,
        "support_deficit": np.nan if d.support_deficit is None else d.support_deficit,
        "clipped_share": d.clipped_share,
        "params": _format_params(result.params),
        "warnings": "; ".join(d.warnings),
        "bias": result.bias,
        "honest": result.honest,
        "bias_se": bias_se,
    }


#: Relative difference below which two standard errors are a tie for the recommendation (see :func:`_slope_choice`).
SE_TIE_RTOL = 1e-9


def _slope_choice(values: Sequence[float], ses: Sequence[float], unbiased: Sequence[bool]) -> int | None:
    """Index chosen by SLOPE among candidates (module docstring); None when none has a finite value and se.

    Standard errors within a relative :data:`SE_TIE_RTOL` of each other are ties (e.g. DR and a SwitchDR that chose
    ``tau = inf``, or one estimator with two interval kinds): they are ordered unbiased first, then by position, so
    that the choice does not depend on the last bits of equal standard errors computed along different paths
    (in memory, streaming, Spark).
    """
    finite = [i for i in range(len(values)) if math.isfinite(values[i]) and math.isfinite(ses[i])]
    if not finite:
        return None
    group: dict[int, int] = {}
    head, g = -1, -1
    for i in sorted(finite, key=lambda i: -ses[i]):
        if head < 0 or abs(ses[i] - ses[head]) > SE_TIE_RTOL * abs(ses[head]):
            head, g = i, g + 1
        group[i] = g
    order = sorted(finite, key=lambda i: (group[i], not unbiased[i], i))
    j = slope_select(np.array([values[i] for i in order]), np.array([ses[i] for i in order]))
    return order[j]


#: Estimator name of the DR-DM blend row (module docstring); a reward model's suffix follows, as in ``DR(model=...)``.
BLEND_NAME = "DR-DM blend"


def _blend_pair(rows: Sequence[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any], str] | None:
    """The first DM row with a finite ``bias_se`` and the DR row with the same reward model, alpha and policy (DR's
    name is DM's with the class name replaced, e.g. ``DM(model=X)`` and ``DR(model=X)``), and the name suffix."""
    for dm in rows:
        name = dm["estimator"]
        if not (name == "DM" or name.startswith("DM(")) or not math.isfinite(dm["bias_se"]):
            continue
        suffix = name[2:]
        for dr in rows:
            if dr["estimator"] == "DR" + suffix and dr["alpha"] == dm["alpha"] and dr["policy"] == dm["policy"]:
                return dm, dr, suffix
    return None


def blend_row(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The DR-DM blend row of one policy's rows (module docstring), or None without a DM and its DR row.

    Computed from the rows' fields only (``value``, ``bias_se``, DR's interval and lift), so the in-memory,
    streaming and Spark tables get the same blend. ``value = DR - lam (DR - DM)`` with ``lam``
    :func:`offline_eval.blend.blend_weight`; ``se``, ``n``, ``alpha`` and the diagnostics are DR's; ``ci_low`` /
    ``ci_high`` (and the lift's bounds) are DR's interval widened to contain the blend (``interval =
    "bias-aware(<DR's kind>)"``); ``bias`` = blend - DR; ``params`` = ``"lam=..."``.
    """
    pair = _blend_pair(rows)
    if pair is None:
        return None
    dm, dr, suffix = pair
    blended = blend_shift(dr["value"], dm["value"], dm["bias_se"] ** 2, dr["se"] ** 2)
    if blended is None:
        return None
    lam, shift = blended
    value, low, high = shifted_interval(dr["value"], dr["ci_low"], dr["ci_high"], shift)
    lift, lift_low, lift_high = shifted_interval(dr["lift"], dr["lift_ci_low"], dr["lift_ci_high"], shift)
    bias = value - dr["value"]
    kind = dr["interval"]
    if kind.startswith("bias-aware("):  # pragma: no cover - DR rows are unbiased (clipped DR has another name)
        kind = kind[len("bias-aware("):-1]
    support_bias = dr["bias_bound"] - abs(dr["bias"])
    bias_bound = support_bias + abs(bias)
    return dr | {
        "estimator": BLEND_NAME + suffix,
        "value": value,
        "ci_low": low,
        "ci_high": high,
        "lift": lift,
        "lift_ci_low": lift_low,
        "lift_ci_high": lift_high,
        "interval": f"bias-aware({kind})",
        "consistent": dr["consistent"] and lam == 0.0,
        "bias_bound": bias_bound,
        "est_mse": dr["se"] ** 2 + bias_bound**2,
        "recommended": False,
        "params": _format_params({"lam": lam}),
        "bias": bias,
        "honest": dr["honest"],
        "bias_se": math.nan,
    }


def slope_recommendation(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The row SLOPE recommends among one policy's rows (module docstring): the SLOPE choice among the honest rows,
    else the row with the smallest finite ``est_mse``; None when no row has one. :func:`mark_recommended` uses it
    when there is no honest blend (the accuracy bench reports it beside the blend)."""
    honest = [r for r in rows if r["honest"]]
    if honest:
        i = _slope_choice([r["value"] for r in honest], [r["se"] for r in honest], [r["consistent"] for r in honest])
        if i is not None:
            return honest[i]
    finite = [r for r in rows if math.isfinite(r["est_mse"])]
    return min(finite, key=lambda r: r["est_mse"]) if finite else None


def mark_recommended(rows: list[dict[str, Any]], first: int = 0) -> None:
    """Finish one policy's rows ``rows[first:]``: append its DR-DM blend row (:func:`blend_row`, when there is a DM
    and a DR row) and set ``recommended`` on one row (module docstring): the blend when it is honest or no row is
    (a support deficit), else :func:`slope_recommendation` of the other rows (the blend's ``est_mse`` is never below
    DR's)."""
    own = rows[first:]
    blend = blend_row(own)
    if blend is not None:
        rows.append(blend)
        # no honest row at all: a support deficit (every row knows it). Only the reward model speaks for the arms
        # the logger never takes -- IPS / SNIPS ignore or renormalise that mass -- so the blend still leads
        if blend["honest"] or not any(r["honest"] for r in own):
            blend["recommended"] = True
            return
    choice = slope_recommendation(own)
    if choice is not None:
        choice["recommended"] = True


def _paired(estimator: Estimator, ra: ResolvedTarget, rb: ResolvedTarget, matrices: _RewardMatrices,
            names: tuple[str, str]) -> tuple[Estimate, float]:
    """``V(a) - V(b)`` by one estimator, with its (bias-aware where needed) interval of per-row differences, and
    for DM the standard error of its bias (as ``bias_se`` of :func:`evaluate`; NaN otherwise)."""
    name_a, name_b = names
    q_a, q_b = matrices.get(estimator, ra), matrices.get(estimator, rb)
    out_a = estimator._row_terms(ra, q_a)
    out_b = estimator._row_terms(rb, q_b)
    iv = estimator._interval(out_a.terms - out_b.terms)
    consistent = out_a.consistent and out_b.consistent
    reference = None
    if not consistent:
        ref_a = out_a.terms if out_a.consistent else out_a.reference
        ref_b = out_b.terms if out_b.consistent else out_b.reference
        if ref_a is not None and ref_b is not None:
            reference = ref_a - ref_b
    low, high, kind, bias = estimator._bias_aware(ra, iv, estimator._method(ra.data.n), reference, False)
    informative = min(ra.informative(estimator.reward_range).rows, rb.informative(estimator.reward_range).rows)
    if informative < INFORMATIVE_ROWS_MIN:  # offline_eval.small_sample: union bound
        a_low, a_high = ra.value_kl_interval(estimator.alpha / 2.0, estimator.reward_range)
        b_low, b_high = rb.value_kl_interval(estimator.alpha / 2.0, estimator.reward_range)
        low, high, kind = min(low, a_low - b_high), max(high, a_high - b_low), f"{kind}+kl"
    low, high = clip_to_range(low, high, iv.value, estimator.reward_range, difference=True)
    bias_se = math.nan
    if isinstance(estimator, DM) and reference is not None:
        if q_a is not None and q_b is q_a and projects_weights(matrices.model(estimator)):
            bias_se = gap_se(ra.data, ra.weights - rb.weights, q_a)
        else:
            bias_se = normal_interval(out_a.terms - out_b.terms - reference, estimator.alpha).se
    diagnostics = worst_of(ra.diagnostics(out_a.clipped_share, reward_range=estimator.reward_range),
                           rb.diagnostics(out_b.clipped_share, reward_range=estimator.reward_range), names)
    params = {f"{name_a}.{k}": v for k, v in out_a.params.items()} | {
        f"{name_b}.{k}": v for k, v in out_b.params.items()
    }
    supported = ra.supported and rb.supported
    return Estimate(
        value=iv.value,
        se=iv.se,
        ci_low=low,
        ci_high=high,
        n=ra.data.n,
        estimator=f"{estimator.name}: {name_a} - {name_b}",
        alpha=float(estimator.alpha),
        interval=kind,
        diagnostics=diagnostics,
        consistent=consistent and supported,
        params=params,
        bias=bias,
        honest=(consistent or (reference is not None and estimator.bias_aware)) and supported,
    ), bias_se


def _paired_blend(results: Sequence[Estimate], bias_ses: Sequence[float], names: tuple[str, str]) -> Estimate | None:
    """The DR-DM blend of the default DM and DR paired differences (as :func:`blend_row`), or None."""
    dm = next((i for i, r in enumerate(results) if r.estimator.startswith("DM: ")), None)
    dr = next((r for r in results if r.estimator.startswith("DR: ")), None)
    if dm is None or dr is None:
        return None
    blended = blend_shift(dr.value, results[dm].value, bias_ses[dm] ** 2, dr.se**2)
    if blended is None:
        return None
    lam, shift = blended
    value, low, high = shifted_interval(dr.value, dr.ci_low, dr.ci_high, shift)
    return dataclasses.replace(
        dr,
        value=value,
        ci_low=low,
        ci_high=high,
        estimator=f"{BLEND_NAME}: {names[0]} - {names[1]}",
        interval=f"bias-aware({dr.interval})",
        consistent=dr.consistent and lam == 0.0,
        params=dict(dr.params) | {"lam": lam},
        bias=value - dr.value,
    )


def compare(
    data: LoggedData,
    a: Any,
    b: Any,
    estimator: Estimator | None = None,
    *,
    names: tuple[str, str] = ("a", "b"),
) -> Estimate:
    """The paired difference ``V(a) - V(b)`` of two target policies, with an interval from per-row differences.

    Both targets are evaluated on the same rows with the same reward matrix, and the interval is computed from
    the per-row differences of their terms, so everything the two share (the context mix, the reward model's
    part) cancels: the interval is much narrower than the two separate intervals suggest.

    Parameters
    ----------
    data : LoggedData
        The logs.
    a, b : target
        The two target policies (any form accepted by :func:`offline_eval.estimators.resolve_target`).
    estimator : Estimator, optional
        The estimator of the difference (its ``interval``, ``alpha`` and reward model are used). Default: every
        estimator of :func:`default_estimators` on the paired differences, and the recommended one as
        :func:`evaluate` chooses it (module docstring): the DR-DM blend of the paired DM and DR differences
        (``estimator = "DR-DM blend: a - b"``, its ``lam`` in ``params``), else the SLOPE choice, with its honest
        interval.
    names : (str, str)
        What to call ``a`` and ``b`` in the result, its warnings and error messages (e.g. ``("new", "current")``).

    Returns
    -------
    Estimate
        ``value`` = V(a) - V(b); ``estimator`` = ``"<estimator>: a - b"`` with ``a``, ``b`` from ``names``;
        ``diagnostics`` = the worse of the two targets' diagnostics field by field (warnings prefixed by the
        names); ``consistent`` if both are (a support deficit of either makes it False); ``params`` prefixed by
        the names. Diagnostic warnings are raised once per policy, prefixed by its name.

    Examples
    --------
    >>> import numpy as np
    >>> from offline_eval import LoggedData, IPS
    >>> rng = np.random.default_rng(3)
    >>> n = 50_000
    >>> action = rng.integers(0, 2, size=n)
    >>> reward = (rng.random(n) < np.where(action == 1, 0.12, 0.10)).astype(float)
    >>> data = LoggedData(None, action, reward, np.full(n, 0.5))
    >>> diff = compare(data, 1, 0, estimator=IPS())
    >>> round(diff.value, 3), bool(diff.ci_low > 0)
    (0.02, True)
    """
    _check_data(data)
    if estimator is not None and not isinstance(estimator, Estimator):
        raise TypeError(f"estimator must be an offline_eval estimator such as DR(), got {type(estimator).__name__}")
    if not isinstance(names, tuple) or len(names) != 2 or not all(isinstance(x, str) for x in names):
        raise TypeError(f"names must be a tuple of two str labels, e.g. ('new', 'current'), got {names!r}")
    if names[0] == names[1]:
        raise ValueError(f"names must be two different labels, e.g. ('new', 'current'), got {names!r}")
    name_a, name_b = names
    ra = resolve_target(data, a, name=name_a)
    rb = resolve_target(data, b, name=name_b)
    if data.n < 2:
        raise ValueError(f"data has {data.n} rows; an estimate with an interval needs at least 2")
    matrices = _RewardMatrices(data)
    if estimator is not None:
        result = _paired(estimator, ra, rb, matrices, names)[0]
    else:
        paired = [_paired(est, ra, rb, matrices, names) for est in default_estimators()]
        results = [p[0] for p in paired]
        blend = _paired_blend(results, [p[1] for p in paired], names)
        if blend is not None and blend.honest:
            result = blend
        else:
            honest = [r for r in results if r.honest] or results
            i = _slope_choice([r.value for r in honest], [r.se for r in honest], [r.consistent for r in honest])
            result = honest[0 if i is None else i]
    diagnostics = result.diagnostics
    emit(diagnostics.warnings, result.estimator, stacklevel=3)
    return result

