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
    for name, df in metrics.groupby("policy", sort=False):
        ax.plot(df["step"], df["cum_regret"], label=str(name), linewidth=1.6)
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
    policies = list(dict.fromkeys(arm_share["policy"]))
    arms = list(dict.fromkeys(arm_share["arm"]))
    ncol = min(3, len(policies))
    nrow = math.ceil(len(policies) / ncol)
    fig = _figure(4.2 * ncol, 2.8 * nrow + 0.6)
    colors = [f"C{i % 10}" for i in range(len(arms))]
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
    fig.legend(*fig.axes[0].get_legend_handles_labels(), loc="lower center", ncol=min(len(arms), 7), fontsize=8)
    fig.suptitle("Arm share over time", fontsize=10)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(p)
    return p


def plot_new_plan_uptake(uptake: pd.DataFrame, path: str | Path, fraction: float) -> Path:
    """New-plan share per window after the launch (oracle dashed) and how well each policy targets it.

    Parameters
    ----------
    uptake : pandas.DataFrame
        Columns ``policy``, ``steps_since_launch``, ``share``, ``oracle_share``, ``recall``, ``precision`` (see
        :func:`bandit.simulation.metrics.time_to_learn`).
    fraction : float
        The learn threshold, drawn on the right panel.
    """
    fig = _figure(10, 4)
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for i, (name, df) in enumerate(uptake.groupby("policy", sort=False)):
        left.plot(df["steps_since_launch"], df["share"], color=f"C{i}", label=str(name))
        targeting = np.fmin(df["recall"].to_numpy(), df["precision"].to_numpy())
        right.plot(df["steps_since_launch"], targeting, color=f"C{i}", label=str(name))
    if not uptake.empty:
        ref = uptake.drop_duplicates("steps_since_launch")
        left.plot(ref["steps_since_launch"], ref["oracle_share"], "k--", label="oracle")
    right.axhline(fraction, color="0.3", linestyle=":", linewidth=1)
    right.annotate("learned", (0.0, fraction), xycoords=("axes fraction", "data"), xytext=(3, 3),
                   textcoords="offset points", fontsize=8, color="0.3")
    left.set_title("New-plan share of offers")
    right.set_title("Targeting of the new plan: min(recall, precision)")
    for ax in (left, right):
        ax.set_xlabel("steps since launch")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    left.legend(fontsize=8)
    return _save(fig, path)


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
