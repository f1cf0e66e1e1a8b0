"""The ``upsell-bandit`` command line: ``simulate``, ``evaluate``, ``demo`` and ``report``.

* ``upsell-bandit simulate --config FILE --out DIR`` -- run the policies of a TOML/YAML/JSON config
  (:class:`bandit.simulation.SimulationConfig`) on the simulated world; writes tables, Parquet decision logs, PNG
  plots and ``summary.md`` to DIR.
* ``upsell-bandit evaluate --logs PATH [--outcomes FILE --attribution-window 1D [--now TS]] --policy SPEC
  [--policy SPEC ...] --out DIR`` -- off-policy evaluation of saved policies (``policy.save(path)``; SPEC is
  ``PATH`` or ``NAME=PATH``, or ``uniform``) on a decision log (Parquet file or directory). The log's ``reward`` is
  null until outcomes are joined: ``--outcomes`` joins a delayed-outcomes table with
  :func:`bandit.attribution.join_outcomes` (the rules policies learn by); decisions still inside their attribution
  window at ``--now`` are left out with a note. Writes ``ope.csv`` / ``ope.md`` (estimates, 95% intervals,
  diagnostics) and prints the table.
* ``upsell-bandit demo [--out DIR] [--quick]`` -- the end-to-end story (log, fit on earlier logs, evaluate offline on
  later ones, decide GO / NO-GO / NEED MORE DATA with the rollout report, roll out and compare with the truth, launch
  a new plan) in well under two minutes; writes ``report.html`` / ``report.md`` / ``report.json``, ``demo.md``,
  plots and decision logs to DIR (default ``./upsell-demo``) and prints the decision, one line per candidate and
  where the files are.
* ``upsell-bandit report ...`` -- the rollout decision on decision logs (:mod:`bandit.cli_report`).
* ``upsell-bandit export --logs DIR [--outcomes FILE --attribution-window 1D] --format dsjson|cb_adf --out FILE`` --
  decision logs with their joined rewards for Vowpal Wabbit (:mod:`bandit.cli_export`); ``evaluate --logs FILE.json``
  reads a DSJSON log.
* ``upsell-bandit serve --policy FILE --log DIR ...`` -- the Rank/Reward HTTP service (:mod:`bandit.cli_serve`).

An existing output directory is refused unless ``--force``; nothing is left behind when a command fails. Bad input
(a missing file, an invalid config, a malformed log or outcomes table, logs the policy cannot be evaluated on)
prints one line ``upsell-bandit <command>: error: ...`` naming the flag on stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bandit._cli_common import (
    JOIN_COLUMNS,
    LOG_COLUMNS,
    STALE,
    Parser,
    UsageError,
    add_invalid_rows_argument,
    add_log_arguments,
    add_reward_range_argument,
    check_out_dir,
    check_outcome_arguments,
    echo,
    join,
    load_policies,
    one_line,
    parse_range,
    policy_error,
    read_decision_log,
    require,
    writing,
)

if TYPE_CHECKING:
    from offline_eval import LoggedData

__all__ = ["UsageError", "main"]

PROG = "upsell-bandit"
#: Files ``simulate`` and ``demo`` write at the top of ``--out``: with ``--force`` every one of them is removed first,
#: so a run never leaves an earlier run's table or report (e.g. an ``ope.csv`` it does not write) next to its own.
RUN_FILES = ("summary.md", "summary.csv", "metrics.csv", "arm_share.csv", "uptake.csv", "ope.csv", "config.json",
             "demo.md", "report.html", "report.md", "report.json", "rollout.csv")


def _build_parser() -> argparse.ArgumentParser:
    from bandit.simulation.config import ope_estimators

    parser = Parser(
        prog=PROG,
        description="Choose which paid plan to offer with contextual bandits; simulate launches; evaluate "
        "policies off-policy.",
    )
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version("upsell-bandit")
    except PackageNotFoundError:
        ver = "unknown"
    parser.add_argument("--version", action="version", version=f"%(prog)s {ver}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    force_help = "replace the files of an earlier run in an existing --out directory (default: refuse)"

    sim = sub.add_parser(
        "simulate",
        help="run policies on the simulated world described by a config file",
        description="Run the policies of a config (TOML, YAML or JSON; see bandit.simulation.config) on the "
        "simulated upsell world with common random numbers; write summary.md, CSV tables, Parquet decision "
        "logs and PNG plots to the output directory.",
    )
    sim.add_argument("--config", required=True, type=Path, metavar="FILE", help="simulation config (.toml/.yaml/.json)")
    sim.add_argument("--out", required=True, type=Path, metavar="DIR", help="output directory (created)")
    sim.add_argument("--force", action="store_true", help=force_help)
    sim.add_argument("--quiet", action="store_true", help="no progress on stderr")
    sim.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    sim.add_argument("--no-logs", action="store_true", help="skip the Parquet decision logs")

    ev = sub.add_parser(
        "evaluate",
        help="estimate saved policies' value on logged decisions (off-policy)",
        description="Off-policy evaluation: estimate the value per decision of saved policies on a decision log "
        "(decision-log schema), with 95% intervals and importance-weight diagnostics. A decision log's reward is "
        "null until outcomes are joined: pass the outcomes table with --outcomes and the attribution window; "
        "decisions still inside their window are left out.",
    )
    add_log_arguments(ev, "event_id, timestamp, reward")
    ev.add_argument("--policy", required=True, action="append", metavar="SPEC", dest="policies",
                    help="a policy file written by policy.save(), as PATH or NAME=PATH; or 'uniform' (uniform over "
                    "the eligible arms); repeat to compare several")
    ev.add_argument("--out", required=True, type=Path, metavar="DIR", help="output directory (created)")
    ev.add_argument("--force", action="store_true", help=force_help)
    ev.add_argument("--reward-column", default="reward", metavar="COL",
                    help="column holding the reward to evaluate: of the outcomes with --outcomes, else of the logs "
                    "(default: reward; e.g. revenue for simulator outcomes)")
    ev.add_argument("--estimators", default="IPS,SNIPS,DR,SNDR", metavar="LIST",
                    help=f"comma-separated estimators among {','.join(ope_estimators())} (default: %(default)s)")
    add_reward_range_argument(ev, "every estimator's reward_range (the small-sample bound below 10 informative rows "
                              "rests on it, IPS and SNIPS intervals use it, and every interval is clipped to it)")
    add_invalid_rows_argument(ev)

    demo = sub.add_parser(
        "demo",
        help="the end-to-end story (well under two minutes)",
        description="Log offers with a randomised policy, fit candidate policies on the earlier logs, evaluate "
        "them offline with intervals on the later logs and decide GO / NO-GO / NEED MORE DATA (the rollout report: "
        "revenue lift, churn and cannibalisation guardrails), roll them out in the simulator and compare the "
        "report with the truth, launch a new plan and measure how fast it is learned. Writes report.html, "
        "report.md, report.json, demo.md, plots and decision logs.",
    )
    demo.add_argument("--out", type=Path, default=Path("upsell-demo"), metavar="DIR",
                      help="output directory (default: ./upsell-demo)")
    demo.add_argument("--force", action="store_true", help=force_help)
    demo.add_argument("--quick", action="store_true", help="a small run (seconds), e.g. for CI")
    demo.add_argument("--seed", type=int, default=0, help="world seed (default: 0)")
    demo.add_argument("--quiet", action="store_true", help="no progress on stderr")
    from bandit.cli_report import add_parser as _add_report_parser  # the rollout decision (bandit/cli_report.py)

    _add_report_parser(sub)
    from bandit.cli_export import add_parser as _add_export_parser  # VW DSJSON / cb_adf (bandit/cli_export.py)

    _add_export_parser(sub)
    from bandit.cli_serve import add_parser as _add_serve_parser  # the Rank/Reward service (bandit/cli_serve.py)

    _add_serve_parser(sub)
    return parser


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"


def _print_files(files: dict[str, Path], first: str) -> None:
    print(f"report: {os.path.abspath(files[first])}")
    for key, path in files.items():
        if key.startswith("plot_"):
            print(f"plot:   {os.path.abspath(path)}")
    if "decision_logs" in files:
        print(f"logs:   {os.path.abspath(files['decision_logs'])}")


# ----------------------------------------------------------------------------------------------------------------
# simulate
# ----------------------------------------------------------------------------------------------------------------


def _simulate(args: argparse.Namespace) -> int:
    from bandit.simulation.config import ConfigError, load_config
    from bandit.simulation.runner import run_simulation

    try:
        config = load_config(args.config)
    except ConfigError as e:
        message = one_line(e)  # load_config names the file first
        prefix = "--config " if message.startswith(str(args.config)) else f"--config {args.config}: "
        raise UsageError(prefix + message) from None
    check_out_dir(args.out, args.force)
    try:
        result = run_simulation(config, progress=not args.quiet and config.output.progress)
    except ConfigError as e:
        raise UsageError(f"--config {args.config}: {one_line(e)}") from None
    with writing(args.out, stale=(*STALE, *RUN_FILES)):
        files = result.save(args.out, plots=config.output.plots and not args.no_plots,
                            logs=config.output.decision_logs and not args.no_logs)
    cols = [c for c in ("policy", "revenue", "regret", "time_to_learn", "ope_value", "true_value")
            if c in result.summary]
    print(result.summary[cols].to_string(index=False, float_format=_fmt, na_rep="n/a"))  # as summary.md
    for note in result.notes:
        print(f"note: {note}")
    _print_files(files, "summary_md")
    return 0


# ----------------------------------------------------------------------------------------------------------------
# evaluate
# ----------------------------------------------------------------------------------------------------------------


def _read_logs(args: argparse.Namespace, notes: list[str]) -> tuple[LoggedData, str]:
    """LoggedData from the decision log (rewards joined from ``--outcomes`` if given), and how rewards were got."""
    from bandit.cli_export import is_dsjson, read_dsjson_logs

    if is_dsjson(args.logs):  # a VW decision-service log (DSJSON) carries its rewards
        return read_dsjson_logs(args, notes)
    from offline_eval import LoggedData

    path: Path = args.logs
    table, arms = read_decision_log(path, notes)
    if table.num_rows == 0:
        raise UsageError(f"--logs {path}: holds no decisions (0 rows)")
    require(LOG_COLUMNS, table.column_names, "--logs", path)
    if args.outcomes is not None:
        require(JOIN_COLUMNS, table.column_names, "--logs", path, "; joining --outcomes needs it")
    elif args.reward_column not in table.column_names:
        raise UsageError(
            f"--reward-column {args.reward_column!r}: not a column of --logs {path}; the decision log's 'reward' is "
            "filled by joining outcomes: pass --outcomes FILE --attribution-window WINDOW"
        )
    df = table.to_pandas()
    if arms is not None:
        df.attrs["arms"] = arms
    if args.outcomes is not None:
        df, source = join(df, args, notes)
        reward_column = "reward"
    else:
        reward_column = args.reward_column
        if df[reward_column].isna().all():
            raise UsageError(
                f"--logs {path}: column {reward_column!r} is empty (outcomes are not joined yet); pass --outcomes "
                "FILE --attribution-window WINDOW to join them"
            )
        source = f"reward column `{reward_column}` of the logs"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        try:
            data = LoggedData.from_dataframe(df, reward=reward_column, action_names=arms,
                                             invalid_rows=args.invalid_rows)
        except (TypeError, ValueError) as e:
            raise UsageError(f"--logs {path}: {one_line(e)}") from None
    from offline_eval.schema import DecisionLogWarning

    # with --outcomes the join's notes already say which rewards are missing; quarantined rows are always noted
    notes.extend(one_line(w.message) for w in caught
                 if args.outcomes is None or issubclass(w.category, DecisionLogWarning))
    if data.n == 0:
        raise UsageError(f"--logs {path}: no decision has a final outcome yet; nothing to evaluate")
    if data.eligible is None:
        raise UsageError(f"--logs {path}: has no 'eligible' column; policies need the eligibility mask")
    return data, source


def _estimator_names(text: str) -> list[str]:
    from bandit.simulation.config import ope_estimators

    known = ope_estimators()
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [n for n in names if n not in known]
    if not names:
        raise UsageError(f"--estimators {text!r}: expected a comma-separated list among {', '.join(known)}")
    if unknown:
        raise UsageError(f"--estimators {text!r}: unknown {unknown}; choose among {', '.join(known)}")
    return list(dict.fromkeys(names))


def _evaluate(args: argparse.Namespace) -> int:
    import offline_eval

    names = _estimator_names(args.estimators)
    reward_range = None if args.reward_range is None else parse_range(args.reward_range, "--reward-range")
    check_outcome_arguments(args)
    check_out_dir(args.out, args.force)
    notes: list[str] = []
    data, source = _read_logs(args, notes)
    if data.context is None:
        raise UsageError(f"--logs {args.logs}: the logs have no contexts; policies need them")
    if reward_range is not None and not (reward_range[0] <= data.reward.min() and data.reward.max() <= reward_range[1]):
        raise UsageError(f"--reward-range {args.reward_range}: the rewards run from {data.reward.min():g} to "
                         f"{data.reward.max():g}; give a range that holds every possible reward")
    policies = load_policies(args.policies, data.n_features)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            table = offline_eval.evaluate(data, {name: p for name, (_, p) in policies.items()},
                                          estimators=[getattr(offline_eval, n)(reward_range=reward_range)
                                                      for n in names])
        except (TypeError, ValueError) as e:
            # offline_eval matches each policy's arms to the logged ones by name and says which are missing
            raise UsageError(policy_error(str(e), policies) or f"--logs {args.logs}: {one_line(e)}") from None
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    for message in dict.fromkeys(one_line(w.message) for w in caught):
        print(f"warning: {message}", file=sys.stderr)
    from bandit.simulation.report import markdown_table

    cols = ["policy", "estimator", "value", "ci_low", "ci_high", "lift", "lift_ci_low", "lift_ci_high", "ess",
            "max_weight", "support_deficit", "recommended", "warnings"]
    md = (
        f"# Off-policy evaluation\n\nLogs: `{args.logs}` ({data.n:,} decisions with a final outcome, "
        f"{data.n_actions} arms: {', '.join(data.action_names)}); rewards from {source}"
        + ("" if reward_range is None else f", stated to lie in [{reward_range[0]:g}, {reward_range[1]:g}] "
           "(--reward-range: intervals clipped to it)")
        + ". Values are per decision "
        "with 95% intervals; `lift` is relative to the logging policy; `recommended` marks the recommended estimate "
        "(the DR-DM blend when DM and DR run, else the SLOPE choice among the rows with honest intervals).\n\n" + markdown_table(table, cols) + "\n"
    )
    if notes:
        md += "\n" + "".join(f"- note: {n}\n" for n in notes)
    with writing(args.out):
        args.out.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out / "ope.csv", index=False)
        (args.out / "ope.md").write_text(md)
    show = ["policy", "estimator", "value", "ci_low", "ci_high", "ess", "recommended"]
    print(table[show].to_string(index=False, float_format=_fmt))
    print(f"report: {args.out / 'ope.md'}")
    print(f"table:  {args.out / 'ope.csv'}")
    return 0


# ----------------------------------------------------------------------------------------------------------------
# demo
# ----------------------------------------------------------------------------------------------------------------


def _demo(args: argparse.Namespace) -> int:
    from bandit.simulation.config import MAX_SEED
    from bandit.simulation.demo import run_demo

    if args.seed < 0:
        raise UsageError(f"--seed {args.seed}: expected a non-negative integer")
    if args.seed > MAX_SEED:  # the logging run is seeded with seed + 1, policy seeds are below 2**64
        raise UsageError(f"--seed {args.seed}: expected at most {MAX_SEED} (2**64 - 2)")
    check_out_dir(args.out, args.force)
    with writing(args.out, stale=(*STALE, *RUN_FILES)):
        args.out.mkdir(parents=True, exist_ok=True)  # before the run: a directory that cannot be made fails at once
        files = run_demo(args.out, quick=args.quick, seed=args.seed, progress=not args.quiet, echo=echo)
    echo()
    echo(f"rollout report: {os.path.abspath(files['report_html'])}  (open in a browser; also report.md, "
         "report.json)")
    echo(f"the story:      {os.path.abspath(files['demo_md'])}")
    plots = [p for k, p in files.items() if k.startswith("plot_")]
    if plots:
        echo(f"plots:          {os.path.abspath(plots[0].parent)}{os.sep}  ({', '.join(p.name for p in plots)})")
    if "decision_logs" in files:
        echo(f"decision logs:  {os.path.abspath(files['decision_logs'])}{os.sep}  (try: upsell-bandit report "
             "--help)")
    return 0


def _report(args: argparse.Namespace) -> int:
    from bandit.cli_report import run

    return run(args)


def _export(args: argparse.Namespace) -> int:
    from bandit.cli_export import run

    return run(args)


def _serve(args: argparse.Namespace) -> int:
    from bandit.cli_serve import run

    return run(args)


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "simulate": _simulate, "evaluate": _evaluate, "demo": _demo, "report": _report,
    "export": _export,
    "serve": _serve,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``upsell-bandit``; returns the exit status (0 ok, 2 bad input).

    Examples
    --------
    >>> main(["simulate", "--config", "/nonexistent.toml", "--out", "/tmp/x"])
    2
    """
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except UsageError as e:
        print(f"{PROG} {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"{PROG} {args.command}: error: {one_line(e)}", file=sys.stderr)
        return 2
    except MemoryError as e:  # e.g. pyarrow.ArrowMemoryError: a run larger than the memory it was allowed
        print(f"{PROG} {args.command}: error: out of memory ({one_line(e) or type(e).__name__}); try a smaller "
              "run", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
