"""PNG plots of a simulation: cumulative regret, arm share over time, new-plan uptake, offline estimate vs truth.

Figures are drawn with matplotlib's object API on an Agg canvas (no display, no global backend change), so they
work on servers, in CI and next to an interactive notebook session. Each function takes the tables of a
:class:`~bandit.simulation.report.SimulationResult` and writes one PNG.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["plot_all", "plot_arm_share", "plot_cumulative_regret", "plot_new_plan_uptake", "plot_ope"]

_DPI = 110


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=_DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(p)
    return p


def _colors(n: int) -> list[Any]:
    """``n`` distinct colours: matplotlib's default ten for up to ten, then tab20, then an even spread of turbo."""
    from matplotlib import colormaps

    if n <= 10:
        return [f"C{i}" for i in range(n)]
    if n <= 20:
        return [colormaps["tab20"](i) for i in range(n)]
    return [colormaps["turbo"](x) for x in np.linspace(0.0, 1.0, n)]


def _line_style(i: int) -> dict[str, Any]:
    """Colour and dash of the ``i``-th policy's line: the ten default colours, then the same with other dashes."""
    return {"color": f"C{i % 10}", "linestyle": ("-", "--", "-.", ":")[(i // 10) % 4]}


def _launch_line(ax: Any, launch_step: int | None) -> None:
    if launch_step is not None:
        ax.axvline(launch_step, color="0.3", linestyle=":", linewidth=1)
        ax.annotate("new plan", (launch_step, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -12),
                    textcoords="offset points", fontsize=8, color="0.3")


def plot_cumulative_regret(metrics: pd.DataFrame, path: str | Path, launch_step: int | None = None) -> Path:
    """Cumulative expected regret against the oracle, one line per policy.

    Parameters
    ----------
    metrics : pandas.DataFrame
        Columns ``policy``, ``step``, ``cum_regret``.
    path : path
        PNG to write.
    launch_step : int, optional
        Marks the new plan's launch.
    """
    fig = _figure(7.5, 4.2)
    ax = fig.add_subplot()
    for i, (name, df) in enumerate(metrics.groupby("policy", sort=False)):
        ax.plot(df["step"], df["cum_regret"], label=str(name), linewidth=1.6, **_line_style(i))
    _launch_line(ax, launch_step)
    ax.set_xlabel("step (offers)")
    ax.set_ylabel("cumulative regret (expected revenue lost)")
    ax.set_title("Cumulative regret vs the oracle")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_arm_share(arm_share: pd.DataFrame, path: str | Path, launch_step: int | None = None) -> Path:
    """Share of each arm per window, one stacked-area panel per policy (the oracle's choices included).

    Parameters
    ----------
    arm_share : pandas.DataFrame
        Columns ``policy``, ``window_start``, ``window_end``, ``arm``, ``share``.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    _arm_share_figure(arm_share, launch_step).savefig(p)
    return p


def _arm_share_figure(arm_share: pd.DataFrame, launch_step: int | None) -> Any:
    policies = list(dict.fromkeys(arm_share["policy"]))
    arms = list(dict.fromkeys(arm_share["arm"]))
    ncol = min(3, len(policies))
    nrow = math.ceil(len(policies) / ncol)
    fig = _figure(4.2 * ncol, 2.8 * nrow + 0.6)
    colors = _colors(len(arms))  # one colour per arm: a catalog of more than ten must not repeat any
    for i, name in enumerate(policies):
        ax = fig.add_subplot(nrow, ncol, i + 1)
        wide = arm_share[arm_share["policy"] == name].pivot_table(
            index="window_end", columns="arm", values="share", sort=False
        ).reindex(columns=arms, fill_value=0.0).fillna(0.0)
        ax.stackplot(wide.index.to_numpy(), wide.to_numpy().T, colors=colors, labels=arms, alpha=0.85)
        _launch_line(ax, launch_step)
        ax.set_ylim(0, 1)
        ax.set_title(str(name), fontsize=9)
        ax.tick_params(labelsize=7)
        if i % ncol == 0:
            ax.set_ylabel("share of offers", fontsize=8)
        if i + ncol >= len(policies):  # nothing below it
            ax.set_xlabel("step (offers)", fontsize=8)
    fig.legend(*fig.axes[0].get_legend_handles_labels(), loc="lower center", ncol=min(len(arms), 7), fontsize=8)
    fig.suptitle("Arm share over time", fontsize=10)
    legend_rows = math.ceil(len(arms) / 7)
    fig.tight_layout(rect=(0, min(0.4, (0.35 + 0.25 * legend_rows) / fig.get_figheight()), 1, 1))
    return fig


def plot_new_plan_uptake(uptake: pd.DataFrame, path: str | Path, fraction: float) -> Path:
    """New-plan share per window after the launch (oracle dashed), and each policy's targeting of it.

    The right panel is the quantity the time to learn is defined on
    (:func:`bandit.simulation.metrics.time_to_learn`): Cohen's kappa between the policy's and the oracle's new-plan
    offers per window, with each policy's own learn threshold (``fraction`` of its settled level, dotted, in its
    colour) and a dot where it is first reached -- the policy's time to learn. A policy that never learned to target
    the plan has neither.

    Parameters
    ----------
    uptake : pandas.DataFrame
        Columns ``policy``, ``steps_since_launch``, ``share``, ``oracle_share``, ``kappa`` (see
        :func:`bandit.simulation.metrics.time_to_learn`).
    path : path
        PNG to write.
    fraction : float
        The share of its settled level a policy must reach (``output.learn_fraction``).
    """
    return _save(_uptake_figure(uptake, fraction), path)


def _uptake_figure(uptake: pd.DataFrame, fraction: float) -> Any:
    from bandit.simulation.metrics import learned_at

    fig = _figure(10, 4)
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    low = 0.0
    for i, (name, df) in enumerate(uptake.groupby("policy", sort=False)):
        style = _line_style(i)
        color = style["color"]
        since = df["steps_since_launch"].to_numpy(dtype=np.float64)
        kappa = df["kappa"].to_numpy(dtype=np.float64)
        left.plot(since, df["share"], label=str(name), **style)
        right.plot(since, kappa, label=str(name), gid=f"kappa:{name}", **style)
        if np.isfinite(kappa).any():
            low = min(low, float(np.nanmin(kappa)))
        threshold, ttl = learned_at(df, fraction)
        if math.isfinite(ttl):
            right.axhline(threshold, color=color, linestyle=":", linewidth=1)
            right.plot([ttl], [kappa[since == ttl][0]], "o", color=color, markersize=6, gid=f"learned:{name}")
    if not uptake.empty:
        ref = uptake.drop_duplicates("steps_since_launch")
        left.plot(ref["steps_since_launch"], ref["oracle_share"], "k--", label="oracle (reference)")
    left.set_title("New-plan share of offers")
    left.set_ylabel("share of offers")
    left.set_ylim(0, 1)
    left.legend(fontsize=8)
    right.set_title("Targeting of the new plan")
    right.set_ylabel("agreement with the oracle (Cohen's kappa)")
    # headroom above kappa = 1 (the oracle run as a policy) for the explanation, which hid that line at the top edge
    bottom = min(-0.1, low - 0.05)
    right.set_ylim(bottom, 1.3)
    right.set_yticks([t for t in right.get_yticks() if bottom - 1e-9 <= t <= 1.0 + 1e-9])
    right.annotate("0: to everyone / at random, 1: exactly the oracle's users\n"
                   f"dot: learned (kappa first reaches {fraction:.0%} of the policy's settled level, dotted)",
                   (0.01, 0.98), xycoords="axes fraction", va="top", fontsize=7, color="0.3")
    for ax in (left, right):
        ax.set_xlabel("steps since launch")
        ax.grid(alpha=0.3)
    return fig


def plot_ope(summary: pd.DataFrame, path: str | Path) -> Path:
    """Offline estimate with its interval vs the true value (and the online realised value) per policy.

    Parameters
    ----------
    summary : pandas.DataFrame
        Columns ``policy``, ``ope_value``, ``ope_ci_low``, ``ope_ci_high``, ``true_value``; ``online_value`` and
        ``rollout_true_value`` (the demo: the exact value on the roll-out users) optional.
    """
    df = summary.dropna(subset=["ope_value"])
    y = np.arange(len(df))
    fig = _figure(7, 0.5 * len(df) + 2.0)
    ax = fig.add_subplot()
    err = np.vstack([df["ope_value"] - df["ope_ci_low"], df["ope_ci_high"] - df["ope_value"]])
    ax.errorbar(df["ope_value"], y, xerr=err, fmt="o", capsize=3, label="offline estimate (95% CI)")
    ax.plot(df["true_value"], y, "kx", markersize=8, label="true value")
    if "rollout_true_value" in df:
        ax.plot(df["rollout_true_value"], y, "+", color="C3", markersize=9, label="true value on the roll-out users")
    if "online_value" in df:
        ax.plot(df["online_value"], y, "s", color="C2", markersize=5, alpha=0.8, label="realised online")
    ax.set_yticks(y, df["policy"].astype(str).tolist())
    ax.set_xlabel("revenue per offer")
    ax.set_title("Offline estimate vs reality")
    ax.set_ylim(-0.6, len(df) - 0.4)
    ax.grid(alpha=0.3, axis="x")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=3, frameon=False)
    return _save(fig, path)


def plot_all(result: Any, directory: str | Path) -> Mapping[str, Path]:
    """Every plot of a :class:`~bandit.simulation.report.SimulationResult` into ``directory``; paths by name."""
    d = Path(directory)
    launch = result.config.launch_step
    files = {
        "plot_regret": plot_cumulative_regret(result.metrics, d / "cumulative_regret.png", launch),
        "plot_arm_share": plot_arm_share(result.arm_share, d / "arm_share.png", launch),
    }
    if launch is not None and not result.uptake.empty:
        files["plot_uptake"] = plot_new_plan_uptake(
            result.uptake, d / "new_plan_uptake.png", result.config.output.learn_fraction
        )
    if "ope_value" in result.summary and result.summary["ope_value"].notna().any():
        files["plot_ope"] = plot_ope(result.summary, d / "ope_vs_truth.png")
    return files
