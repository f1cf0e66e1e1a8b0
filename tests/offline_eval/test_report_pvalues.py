"""Guardrail p-values: the direct inversion of the empirical-likelihood interval equals the level bisection.

A guardrail's one-sided p-value is half the smallest two-sided level at which the difference's interval excludes
the margin. The report found it by bisecting the level (about 30 intervals per guardrail); for the EL interval it
now comes from one profile evaluation at the margin (``el_mean_p_value``), and for the normal interval from the
z-statistic. Reference here: the bisection, on the same intervals, to a tighter tolerance than the report used.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy.special import expit, stdtr
from scipy.stats import norm

from offline_eval import DR, IPS, LoggedData
from offline_eval.empirical_likelihood import el_mean_interval, el_mean_p_value
from offline_eval.report import Guardrail, rollout_report

LOGIT_FLOOR = -30.0  # the report's floor: p-values below expit(-30) / 2 (about 4.7e-14) are reported as that


def bisected_p(x: np.ndarray, threshold: float, steps: int = 45) -> float:
    """Half the smallest two-sided level at which ``el_mean_interval(x, level)`` excludes ``threshold``, by
    bisection on the level's logit (the report's former method, with more steps)."""
    upper = threshold > x.mean()

    def excludes(logit: float) -> bool:
        iv = el_mean_interval(x, float(expit(logit)))
        return bool(iv.high < threshold) if upper else bool(iv.low > threshold)

    lo, hi = LOGIT_FLOOR, 30.0
    if excludes(lo):
        return float(expit(lo)) / 2
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if excludes(mid) else (mid, hi)
    return float(expit(hi)) / 2


def t_calibrated_normal_p(x: np.ndarray, threshold: float) -> float:
    """The one-sided p-value of the interval's t-calibrated normal end (the EL calibration's nu, Bartlett 1 / n)."""
    n = len(x)
    c = x - x.mean()
    m2 = (c**2).mean()
    nu = min(n - 1.0, 2.0 * n / ((c**4).mean() / m2**2 - 1.0))
    se = x.std(ddof=1) / math.sqrt(n)
    return float(stdtr(nu, -abs(threshold - x.mean()) / (se * math.sqrt(1.0 + 1.0 / n))))


def _cases() -> dict[str, tuple[np.ndarray, float]]:
    rng = np.random.default_rng(11)
    n = 2_000
    w = 2.0 * (rng.random(n) < 0.5)
    cancel = (rng.random(n) < 0.03).astype(float)
    paired = w * cancel - cancel  # a guardrail's paired difference over the logged mean: skewed, three values
    revenue = 19.99 * (rng.random(n) < 0.04) * (rng.random(n) < 0.25) * 4.0 - 0.8  # rare, large terms
    heavy = rng.standard_t(3, size=n)
    no_gain = -20.0 * (rng.random(300) < 0.03)  # none of the candidate's offers converted: every term <= 0
    lone = np.zeros(400)
    lone[:3] = [-6.0, -4.0, -5.0]
    lone[3] = 0.02  # the largest term sits inside the normal half-width of the mean
    return {
        "paired above": (paired, 0.004),
        "paired below": (paired, -0.02),
        "paired far": (paired, 0.05),  # below the floor: reported as expit(-30) / 2
        "revenue above": (revenue, 0.15),
        "revenue below": (revenue, -0.3),
        "heavy tails": (heavy, 0.12),
        "beyond the range": (no_gain, 0.2),  # fallback: the threshold is past the largest term
        "inside the range": (lone, 0.01),  # fallback at the level: the largest term is in the half-width
    }


@pytest.mark.parametrize("case", list(_cases()))
def test_el_p_value_equals_the_bisection_of_the_interval(case):
    x, threshold = _cases()[case]
    p = max(el_mean_p_value(x, threshold), float(expit(LOGIT_FLOOR)) / 2)
    assert p == pytest.approx(bisected_p(x, threshold), rel=1e-7, abs=1e-15)
    if case in ("beyond the range", "inside the range"):
        # the interval's end there is the t-calibrated normal end (the range would stop the EL end at the largest
        # term): the p-value is that end's
        edge = threshold if case == "beyond the range" else float(x.max())
        assert p == pytest.approx(t_calibrated_normal_p(x, edge), rel=1e-9)
        assert x.max() < threshold or case == "inside the range"
    if case == "paired above":  # at the level 2 p, the EL interval's upper end is the threshold
        assert el_mean_interval(x, 2 * p).high == pytest.approx(threshold, rel=1e-7)


def test_el_p_value_degenerate_terms():
    assert el_mean_p_value(np.full(10, 2.0), 3.0) == 0.0  # a point interval excludes every other value
    assert el_mean_p_value(np.full(10, 2.0), 2.0) == 0.5
    assert el_mean_p_value(np.array([1.0, 2.0, 3.0]), 2.0) == 0.5  # the threshold at the mean
    with pytest.raises(ValueError, match="threshold"):
        el_mean_p_value(np.array([1.0, 2.0]), math.nan)


@pytest.mark.parametrize("estimator", [DR(), IPS(interval="normal")], ids=["el", "normal"])
def test_report_guardrail_p_values_invert_its_intervals(estimator):
    """End to end: a guardrail's p-value (one guardrail: Holm leaves it as is) is half the level at which the
    report's own interval of the paired difference has the margin as its end."""
    rng = np.random.default_rng(4)
    n = 3_000
    a = rng.integers(0, 2, n)
    conv = (rng.random(n) < np.where(a == 1, 0.12, 0.08)).astype(float)
    cancel = (rng.random(n) < np.where(a == 1, 0.03, 0.025)).astype(float)
    data = LoggedData(rng.normal(size=(n, 2)), a, conv, np.full(n, 0.5), probabilities=np.full((n, 2), 0.5))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = rollout_report(data, {"b": 1}, guardrails={"c": Guardrail(cancel, margin=0.012)}, estimator=estimator)
        g = rep.table.query("policy == 'b' and metric == 'c'").iloc[0]
        assert 1e-6 < g.p_holm < 0.4
        again = rollout_report(data, {"b": 1}, guardrails={"c": Guardrail(cancel, margin=0.012)},
                               estimator=estimator, alpha=2 * g.p_holm)
    h = again.table.query("policy == 'b' and metric == 'c'").iloc[0]
    assert h.diff_ci_high == pytest.approx(0.012, rel=1e-6)  # the margin is the interval's end at level 2 p
    if estimator.interval == "normal":
        assert g.p_holm == pytest.approx(norm.sf((0.012 - g["diff"]) / g.diff_se), rel=1e-9)


def _few_refund_logs(n=4_000, seed=5):
    """Uniform logging over two plans; refunds of 10 on 0.3% of B's offers (7 here) and 1% of A's."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2, n)
    conv = (rng.random(n) < np.where(a == 1, 0.15, 0.05)).astype(float)
    refund = 10.0 * (rng.random(n) < np.where(a == 1, 0.003, 0.01))
    return LoggedData(rng.normal(size=(n, 2)), a, conv, np.full(n, 0.5), probabilities=np.full((n, 2), 0.5)), refund


@pytest.mark.parametrize("baseline", ["logging", "mix"])
@pytest.mark.parametrize("estimator", [None, IPS()], ids=["blend", "ips"])
def test_floored_guardrail_p_values_invert_the_floored_interval(monkeypatch, baseline, estimator):
    """A guardrail with fewer than 10 events on the candidate's offers (7 refunds; a stated value_range) is judged on
    its floored interval, the hull of the scorer's interval and the KL floor: its p-value is the larger of the two
    p-values, the floor's in closed form (the union bound of the two sides' Chernoff bounds), and at level 2 p the
    floored interval ends at the margin (the bisection reference: re-running the report there)."""
    import offline_eval.report as report_module
    from offline_eval.small_sample import kl_difference_p_value

    data, refund = _few_refund_logs()
    mix = np.random.default_rng(1).dirichlet([1, 1], size=data.n)
    candidates = {"B": 1} if baseline == "logging" else {"B": 1, "mix": mix}
    margin = 0.05

    def run(alpha=0.05):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rep = rollout_report(data, candidates, baseline=baseline, estimator=estimator, alpha=alpha,
                                 guardrails={"r": Guardrail(refund, margin, value_range=(0.0, 10.0))})
        return rep.table.query("policy == 'B' and metric == 'r'").iloc[0]

    g = run()
    assert g.informative_rows == 7 and g.interval.endswith(("+kl", "+kl)")) and 1e-4 < g.p_holm < 0.2
    # the floor's p-value in closed form: IPS terms w r of B (W = 2, range [0, 20]) against the baseline's
    w_b = 2.0 * (data.action == 1)
    base = (refund.mean(), 0.0, 10.0) if baseline == "logging" else (
        float((mix[np.arange(data.n), data.action] / 0.5 * refund).mean()), 0.0, 10.0 * float((mix / 0.5).max()))
    p_kl = kl_difference_p_value((float((w_b * refund).mean()), 0.0, 20.0), base, data.n, margin, upper=True)
    with monkeypatch.context() as m:
        m.setattr(report_module, "INFORMATIVE_ROWS_MIN", 0)  # no floor: the scorer's own p-value
        p_own = run().p_holm
    assert p_kl > p_own and g.p_holm == pytest.approx(max(p_own, p_kl), rel=1e-12)
    again = run(alpha=2 * g.p_holm)
    assert again.diff_ci_high == pytest.approx(margin, rel=1e-6)  # the margin is the floored interval's end
