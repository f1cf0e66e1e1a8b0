"""A simulation's results: :class:`SimulationResult` (tables, the markdown report, decision logs and outcomes on
disk) and how it is assembled from the runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bandit.simulation.config import LOGGING_RUN, SimulationConfig
from bandit.simulation.loop import OraclePolicy, PolicyRun, outcomes_table
from bandit.simulation.metrics import _arm_share, _cumulative, _summary_row, offline_evaluate, time_to_learn
from bandit.simulation.world import Episode

__all__ = ["SimulationResult", "markdown_table", "write_decision_logs"]

@dataclass
class SimulationResult:
    """Everything a simulation produced.

    Attributes
    ----------
    config : SimulationConfig
    episode : Episode
    runs : dict of str to PolicyRun
    logging_run : PolicyRun or None
        The uniform-random logging run used for off-policy evaluation.
    metrics : pandas.DataFrame
        Per policy and batch end: ``step``, ``cum_revenue``, ``cum_conversions``, ``cum_expected_value``,
        ``cum_oracle_value``, ``cum_regret``.
    arm_share : pandas.DataFrame
        Per policy (and ``"oracle (reference)"``) and window: ``window_start``, ``window_end``, ``arm``, ``share``.
    uptake : pandas.DataFrame
        Per policy and window after the launch (see :func:`time_to_learn`).
    summary : pandas.DataFrame
        One row per policy (columns in :meth:`to_markdown`).
    ope : pandas.DataFrame or None
        The full off-policy evaluation table.
    notes : list of str
    ope_description : str
        What the ``ope_*``, ``true_value`` and ``online_value`` columns of ``summary`` compare (for the report).
    """

    config: SimulationConfig
    episode: Episode
    runs: dict[str, PolicyRun]
    logging_run: PolicyRun | None
    metrics: pd.DataFrame
    arm_share: pd.DataFrame
    uptake: pd.DataFrame
    summary: pd.DataFrame
    ope: pd.DataFrame | None
    notes: list[str]
    ope_description: str = (
        "Each policy's final state evaluated on the uniform-random logging run's logs (recommended estimator), "
        "against its exact value on those users (`true_value`) and the revenue per event it realised online "
        "while learning (`online_value`)."
    )

    def to_markdown(self, files: Mapping[str, Path] | None = None) -> str:
        """A short markdown report: setup, the per-policy table, OPE vs truth, notes and output files."""
        cfg = self.config
        lines = [
            "# Upsell simulation",
            "",
            f"- seed {cfg.seed}, {cfg.horizon:,} events, refresh every {cfg.batch_size} events, reward "
            f"`{cfg.reward}` learned at `{cfg.learn_at}`, arm value `{cfg.catalog.value}`, long-term weight "
            f"{cfg.world.long_term_weight:g}",
            f"- arms: {', '.join(self.episode.arm_names)}"
            + (f" (`{self.episode.arm_names[-1]}` launched at step {cfg.launch_step:,})"
               if cfg.launch_step is not None else ""),
            "",
            "## Policies",
            "",
            markdown_table(self.summary, _SUMMARY_COLUMNS),
            "",
            "`revenue` is the realised attributed net value and `regret` the exact expected regret against the oracle "
            "(currency).",
        ]
        if cfg.launch_step is not None:
            lines[-1] += (
                " `regret_per_event_after_launch` is the regret per event from the launch on;"
                " `launch_window_regret` sums it over the first `launch_window_offers` offers after the launch"
                f" ({cfg.output.launch_window:,}, or fewer when the run has fewer offers on either side of the"
                " launch) and `pre_launch_window_regret` over as many offers just before it (their difference is"
                " what learning the new plan cost)."
                f" `time_to_learn` counts steps after the launch until, within a window of {cfg.output.share_window:,}"
                " offers, the agreement between the policy's and the oracle's new-plan offers (Cohen's kappa: 0 for"
                " offering it to everyone or at random, 1 for exactly the oracle's users) first reaches"
                f" {cfg.output.learn_fraction:.0%} of the level the policy settles at (its mean over the windows of the"
                " last third of the offers after the launch); n/a: the policy never learned to target the plan (its"
                " settled agreement is below 0.05 or within three standard errors of offering it at random)."
            )
        if "ope_value" in self.summary:
            lines += [
                "",
                "## Offline estimate vs truth",
                "",
                self.ope_description,
                "",
                markdown_table(self.summary, ["policy", "ope_estimator", "ope_value", "ope_ci_low", "ope_ci_high",
                                               "true_value", "online_value"]),
            ]
        if self.notes:
            lines += ["", "## Notes", "", *(f"- {n}" for n in self.notes)]
        if files:
            lines += ["", "## Files", "", *file_links(files, files["summary_md"].parent)]
        return "\n".join(lines) + "\n"

    def save(self, out_dir: str | Path, plots: bool | None = None, logs: bool | None = None) -> dict[str, Path]:
        """Write CSV tables, Parquet decision logs, PNG plots and ``summary.md`` under ``out_dir``.

        Returns
        -------
        dict of str to Path
            What was written, by kind.
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        plots = self.config.output.plots if plots is None else plots
        logs = self.config.output.decision_logs if logs is None else logs
        files: dict[str, Path] = {}
        for key, df in (("summary", self.summary), ("metrics", self.metrics), ("arm_share", self.arm_share),
                        ("uptake", self.uptake), ("ope", self.ope)):
            if df is not None:
                files[key] = out / f"{key}.csv"
                df.to_csv(files[key], index=False)
        files["config"] = out / "config.json"
        files["config"].write_text(self.config.model_dump_json(indent=2))
        if logs:
            runs = dict(self.runs)
            if self.logging_run is not None:
                runs[LOGGING_RUN] = self.logging_run
            files["decision_logs"] = write_decision_logs(runs, self.episode, out / "logs")
        if plots:
            from bandit.simulation import plots as P

            files.update(P.plot_all(self, out / "plots"))
        files["summary_md"] = out / "summary.md"
        files["summary_md"].write_text(self.to_markdown(files))
        return files


_SUMMARY_COLUMNS = [
    "policy", "type", "events", "revenue", "conversions", "revenue_per_event", "regret", "regret_per_event",
    "regret_per_event_after_launch", "launch_window_regret", "pre_launch_window_regret", "launch_window_offers",
    "new_plan_share",
    "oracle_new_plan_share", "time_to_learn", "seconds",
]


def file_links(files: Mapping[str, Path], base: Path) -> list[str]:
    """Markdown list items linking each written file relative to ``base``, the directory of the report that lists
    them (paths relative to the working directory, as before, pointed nowhere from inside the report).

    Examples
    --------
    >>> file_links({"summary": Path("run/summary.csv"), "logs": Path("run/logs")}, Path("run"))
    ['- summary: [summary.csv](summary.csv)', '- logs: [logs](logs)']
    """
    items = []
    for kind, path in files.items():
        try:
            name = Path(path).relative_to(base).as_posix()
        except ValueError:  # written outside the report's directory: its own path
            name = Path(path).as_posix()
        items.append(f"- {kind}: [{name}]({name})")
    return items


def markdown_table(df: pd.DataFrame, columns: Sequence[str]) -> str:
    cols = [c for c in columns if c in df.columns]
    head = "| " + " | ".join(cols) + " |"
    sep = "|" + "|".join("---" for _ in cols) + "|"
    body = []
    for _, row in df[cols].iterrows():
        cells = []
        for c in cols:
            v = row[c]
            if isinstance(v, (float, np.floating)):
                x = float(v)
                cells.append("n/a" if math.isnan(x) else f"{x:,.4g}" if abs(x) < 1e4 else f"{x:,.0f}")
            elif isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
                cells.append(f"{v:,}")
            else:
                cells.append(str(v))
        body.append("| " + " | ".join(cells) + " |")
    return "\n".join([head, sep, *body])


def write_decision_logs(runs: Mapping[str, PolicyRun], episode: Episode, directory: str | Path) -> Path:
    """Write each run's decision log and outcomes under ``directory/<policy>/``.

    Layout: ``decisions/`` (the :class:`bandit.DecisionLog` the run wrote as it decided, copied part by part:
    the decision-log schema with a null ``reward`` and an extra ``step`` column; readable by
    ``bandit.decision_log.read_decision_log``, ``offline_eval.LoggedData.from_parquet`` and ``upsell-bandit
    evaluate --logs``) and ``outcomes.parquet`` (:func:`~bandit.simulation.loop.outcomes_table`: the conversions
    and cancellations that arrived by the end of the run -- ``event_id``, ``timestamp`` of arrival, ``reward`` (1.0
    for a conversion, or the scaled net value for value rewards; 0 for a cancellation), ``revenue`` (net value) and
    the guardrail metrics ``cancelled`` and ``cannibalised``). Join them with ``bandit.attribution.join_outcomes``
    / ``policy.update_from_log``, ``upsell-bandit evaluate --outcomes`` or ``upsell-bandit report --outcomes``
    (e.g. ``--metric revenue --guardrail churn=cancelled:0.01``), under the world's attribution window.
    The outcomes file is written to a dot-prefixed temporary name and renamed.

    Returns
    -------
    Path
        ``directory``.
    """
    import shutil

    import pyarrow.parquet as pq

    root = Path(directory)
    for label, run in runs.items():
        if run.log_dir is None or not run.log_dir.is_dir():
            raise ValueError(f"run {label!r} has no decision log directory to write")
        target = root / label / "decisions"
        target.mkdir(parents=True, exist_ok=True)
        for part in sorted(run.log_dir.glob("part-*.parquet")):
            shutil.copyfile(part, target / part.name)
        out = root / label / "outcomes.parquet"
        tmp = out.with_name("." + out.name + ".tmp")
        pq.write_table(outcomes_table(run, episode), tmp)
        tmp.replace(out)
    return root


def _collect(
    config: SimulationConfig, episode: Episode, runs: dict[str, PolicyRun], logging_run: PolicyRun | None
) -> SimulationResult:
    out = config.output
    names = episode.arm_names
    launch_step = config.launch_step
    new_index = len(names) - 1 if launch_step is not None else None
    metrics = pd.concat([_cumulative(r, config.batch_size) for r in runs.values()], ignore_index=True)
    oracle_best = episode.best_arms()
    shares = [_arm_share(r.actions, r.start, out.share_window, names, r.name) for r in runs.values()]
    lo, hi = min(r.start for r in runs.values()), max(r.stop for r in runs.values())
    shares.append(_arm_share(oracle_best[lo:hi], lo, out.share_window, names, "oracle (reference)"))
    arm_share = pd.concat(shares, ignore_index=True)
    rows, uptakes = [], []
    for r in runs.values():
        row = _summary_row(r, episode, config, new_index)
        if new_index is not None and launch_step is not None:
            up, ttl = time_to_learn(r.actions, oracle_best[r.start : r.stop], new_index, r.steps,
                                    launch_step, out.share_window, out.learn_fraction)
            up.insert(0, "policy", r.name)
            uptakes.append(up)
            row["time_to_learn"] = ttl
        rows.append(row)
    summary = pd.DataFrame(rows)
    uptake = pd.concat(uptakes, ignore_index=True) if uptakes else pd.DataFrame(
        columns=["policy", "window_end", "steps_since_launch", "share", "oracle_share", "recall", "precision", "kappa"])
    ope = None
    if logging_run is not None:
        frozen = {label: (r.policy if r.policy is not None else OraclePolicy()) for label, r in runs.items()}
        ope, _ = offline_evaluate(logging_run, episode, frozen, config.offline_eval.estimators)
        best = ope[ope["recommended"]].set_index("policy")
        summary["ope_estimator"] = summary["policy"].map(best["estimator"])
        for col in ("value", "ci_low", "ci_high"):
            summary[f"ope_{col}"] = summary["policy"].map(best[col])
        summary["true_value"] = summary["policy"].map(best["true_value"])
        summary["online_value"] = summary["revenue_per_event"]
    notes = [n for r in runs.values() for n in r.notes]
    return SimulationResult(config, episode, runs, logging_run, metrics, arm_share, uptake, summary, ope, notes)
