"""How close to the better of DR and DM can any combination of the two get? A bound for the ``<= 1.05 x best`` bar.

Run ``python bench/blend_minimax.py`` (a few seconds, no timing). Writes ``bench/results/blend_minimax.json``.

The model (the one behind the DR-DM blend, offline_eval/evaluate.py): DR is unbiased with variance 1 (units of
Var(DR)); the gap ``D = DR - DM`` is normal with mean ``b`` (DM's bias, unknown) and variance ``s`` (the share of
DR's variance that DM does not have: DR = DM + corrections, the corrections' noise being the gap's), and
``Cov(DR, D) = s``. Then ``DR = DM + D`` and ``DR - theta = D - b + u`` with ``u ~ N(0, 1 - s)`` independent of D.
Any location-equivariant estimate is ``DR - g(D)``, with mean squared error ``(1 - s) + E[(D - g(D) - b)^2]``: the
problem is estimating the mean ``b`` of one normal observation, scored against the better of DR (``g = 0``, MSE 1)
and DM (``g = D``, MSE ``1 - s + b^2``). The table gives, per ``s``:

* ``plug_in_c1_worst``: the worst ratio over b of the plug-in ``lam = min(1, s / D^2)`` (``g = lam D``) to the
  better of the two, and the ``b / sqrt(s)`` where it occurs;
* ``blend_rule_worst``: the same for evaluate's rule ``lam = min(1, c(s) s / D^2)`` (``c_s``,
  :mod:`offline_eval.blend`) -- what the recommendation can promise when its variance estimates are right;
* ``lower_bound_any_rule``: a lower bound on the worst ratio of **every** estimate built from DR and DM (any function g,
  equivariant or not -- the minimax rule of a location problem can be taken equivariant): the Bayes risk of the
  ratio under a three-point prior on ``b / sqrt(s)`` (0 and +-t, searched), which no rule can beat in its worst case.

Where ``lower_bound > 1.05`` no rule that sees only DR and DM (and their variances) meets the bar for every bias:
the bar then needs more information about the bias than the two estimates carry.
"""

from __future__ import annotations

import numpy as np
from _common import print_table, write_results

from offline_eval.blend import blend_constant, gaussian_worst_ratio


def bayes_lower_bound(s: float) -> float:
    """max over three-point priors {0, -t, +t} (weights 1 - p, p/2, p/2) of the Bayes risk of the ratio."""
    z = np.linspace(-14.0, 14.0, 2801)
    dz = z[1] - z[0]
    best = 0.0
    for t in np.linspace(0.25, 6.0, 47):
        points = np.array([0.0, -t, t])
        denom = np.minimum(1.0, 1.0 - s + s * points**2)
        dens = np.exp(-0.5 * (z[None, :] - points[:, None]) ** 2) / np.sqrt(2 * np.pi)  # (3, z)
        for p in np.linspace(0.02, 0.98, 49):
            prior = np.array([1.0 - p, p / 2, p / 2])
            post = (prior / denom)[:, None] * dens  # the ratio's weights turn the prior into prior / denom
            h = (points[:, None] * post).sum(0) / np.maximum(post.sum(0), 1e-300)  # Bayes estimate of b/sqrt(s)
            risk = ((h[None, :] - points[:, None]) ** 2 * dens).sum(1) * dz  # per point, in units of s
            value = float(np.sum(prior * ((1.0 - s) + s * risk) / denom))
            best = max(best, value)
    return best


def main() -> None:
    rows = []
    for s in (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.75, 0.9):
        plug_in, at = gaussian_worst_ratio(1.0, s)
        rule, _ = gaussian_worst_ratio(blend_constant(s), s)
        rows.append({"s": s, "plug_in_c1_worst": plug_in, "plug_in_worst_at_b_over_sd": at,
                     "c_s": blend_constant(s), "blend_rule_worst": rule, "lower_bound_any_rule": bayes_lower_bound(s)})
    print_table(rows, list(rows[0]))
    first = next((r["s"] for r in rows if r["lower_bound_any_rule"] > 1.05), None)
    print(f"no estimate from DR and DM alone can stay within 1.05 of the better one for every bias once s >= {first}")
    print(f"wrote {write_results('blend_minimax', {'rows': rows, 'bar_unreachable_from_s': first})}")


if __name__ == "__main__":
    main()
