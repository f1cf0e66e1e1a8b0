"""The ``upsell-bandit`` command line: ``simulate``, ``evaluate`` and ``demo``.

* ``upsell-bandit simulate --config FILE --out DIR`` -- run the policies of a TOML/YAML/JSON config
  (:class:`bandit.simulation.SimulationConfig`) on the simulated world; writes tables, Parquet decision logs, PNG
  plots and ``summary.md`` to DIR.
* ``upsell-bandit evaluate --logs PATH --policy SPEC [--policy SPEC ...] --out DIR`` -- off-policy evaluation of
  saved policies (``policy.save(path)``; SPEC is ``PATH`` or ``NAME=PATH``, or ``uniform``) on a decision log
  (Parquet file or directory); writes ``ope.csv`` / ``ope.md`` (estimates, 95% intervals, diagnostics) and
  prints the table.
* ``upsell-bandit demo [--out DIR] [--quick]`` -- the end-to-end story (log, fit, evaluate offline, pick, roll out,
  compare, launch a new plan) in well under two minutes; DIR defaults to ``./upsell-demo``.

Bad input (a missing file, an invalid config, logs the policy cannot be evaluated on) prints one line
``upsell-bandit <command>: error: ...`` on stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

__all__ = ["main"]

PROG = "upsell-bandit"


class UsageError(Exception):
    """A user error: reported as one line on stderr, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line (plus a pointer to --help) and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _build_parser() -> argparse.ArgumentParser:
    from bandit.simulation.config import OPE_ESTIMATORS

    parser = _Parser(
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
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    sim = sub.add_parser(
        "simulate",
        help="run policies on the simulated world described by a config file",
        description="Run the policies of a config (TOML, YAML or JSON; see bandit.simulation.config) on the "
        "simulated upsell world with common random numbers; write summary.md, CSV tables, Parquet decision "
        "logs and PNG plots to the output directory.",
    )
    sim.add_argument("--config", required=True, type=Path, metavar="FILE", help="simulation config (.toml/.yaml/.json)")
    sim.add_argument("--out", required=True, type=Path, metavar="DIR", help="output directory (created)")
    sim.add_argument("--quiet", action="store_true", help="no progress on stderr")
    sim.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    sim.add_argument("--no-logs", action="store_true", help="skip the Parquet decision logs")

    ev = sub.add_parser(
        "evaluate",
        help="estimate saved policies' value on logged decisions (off-policy)",
        description="Off-policy evaluation: estimate the value per decision of saved policies on a decision log "
        "(decision-log schema), with 95% intervals and importance-weight diagnostics.",
    )
    ev.add_argument("--logs", required=True, type=Path, metavar="PATH",
                    help="decision log: a Parquet file or a directory of Parquet part files")
    ev.add_argument("--policy", required=True, action="append", metavar="SPEC", dest="policies",
                    help="a policy file written by policy.save(), as PATH or NAME=PATH; or 'uniform' (uniform over "
                    "the eligible arms); repeat to compare several")
    ev.add_argument("--out", required=True, type=Path, metavar="DIR", help="output directory (created)")
    ev.add_argument("--reward-column", default="reward", metavar="COL",
                    help="column holding the reward to evaluate (default: reward; e.g. revenue for simulator logs)")
    ev.add_argument("--estimators", default="IPS,SNIPS,DR,SNDR", metavar="LIST",
                    help=f"comma-separated estimators among {','.join(OPE_ESTIMATORS)} (default: %(default)s)")

    demo = sub.add_parser(
        "demo",
        help="the end-to-end story (well under two minutes)",
        description="Log offers with a randomised policy, fit candidate policies on the logs, evaluate them "
        "offline with intervals, pick one, roll it out in the simulator, compare the offline estimate with the "
        "realised value, launch a new plan and measure how fast it is learned. Writes plots and a summary.",
    )
    demo.add_argument("--out", type=Path, default=Path("upsell-demo"), metavar="DIR",
                      help="output directory (default: ./upsell-demo)")
    demo.add_argument("--quick", action="store_true", help="a small run (seconds), e.g. for CI")
    demo.add_argument("--seed", type=int, default=0, help="world seed (default: 0)")
    demo.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return parser


def _check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create --out {out}: {e.strerror or e}") from None


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
        raise UsageError(str(e)) from None
    _check_out_dir(args.out)
    try:
        result = run_simulation(config, progress=not args.quiet and config.output.progress)
    except ConfigError as e:
        raise UsageError(f"{args.config}: {e}") from None
    files = result.save(args.out, plots=config.output.plots and not args.no_plots,
                        logs=config.output.decision_logs and not args.no_logs)
    cols = [c for c in ("policy", "revenue", "regret", "time_to_learn", "ope_value", "true_value")
            if c in result.summary]
    print(result.summary[cols].to_string(index=False, float_format=_fmt))
    for note in result.notes:
        print(f"note: {note}")
    _print_files(files, "summary_md")
    return 0


# ----------------------------------------------------------------------------------------------------------------
# evaluate
# ----------------------------------------------------------------------------------------------------------------


def _read_logs(path: Path, reward_column: str) -> Any:
    """LoggedData from a decision-log Parquet file or directory, rewards from ``reward_column``."""
    import warnings

    import pyarrow as pa
    import pyarrow.parquet as pq

    from offline_eval import LoggedData
    from offline_eval.schema import arms_from_schema

    if not path.exists():
        raise UsageError(f"--logs {path} does not exist")
    if path.is_dir():
        files = sorted(f for f in path.glob("*.parquet") if not f.name.startswith((".", "_")))
        if not files:
            raise UsageError(f"--logs {path} is a directory without *.parquet files")
    else:
        files = [path]
    try:
        tables = [pq.read_table(f) for f in files]
    except (OSError, pa.ArrowInvalid) as e:
        raise UsageError(f"--logs {path}: not a readable Parquet decision log ({' '.join(str(e).split())})") from None
    arms = arms_from_schema(tables[0].schema)
    for f, t in zip(files, tables, strict=False):
        if arms_from_schema(t.schema) != arms:
            raise UsageError(f"--logs {path}: {f.name} was written for a different arm list; evaluate each separately")
    table = pa.concat_tables([t.replace_schema_metadata(None) for t in tables])
    if reward_column not in table.column_names:
        raise UsageError(f"--reward-column {reward_column!r} is not a column of the logs ({table.column_names})")
    df = table.to_pandas()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        data = LoggedData.from_dataframe(df, reward=reward_column, action_names=arms)
    for w in caught:
        print(f"note: {w.message}", file=sys.stderr)
    if data.eligible is None:
        raise UsageError(f"--logs {path} has no 'eligible' column; policies need the eligibility mask")
    return data


class _Uniform:
    """Uniform over the eligible arms (a reference target for ``evaluate``)."""

    def action_probabilities(self, X: Any, eligible: np.ndarray) -> np.ndarray:
        e = np.asarray(eligible, dtype=np.float64)
        return e / e.sum(axis=1, keepdims=True)


def _load_target(spec: str, data: Any) -> tuple[str, Any]:
    """(name, (n, K) target probabilities) of one ``--policy`` SPEC on ``data``."""
    import bandit

    if spec == "uniform":
        return "uniform", _Uniform().action_probabilities(data.context, data.eligible)
    name, sep, raw = spec.partition("=")
    path = Path(raw if sep else spec)
    name = name if sep else path.stem
    if not path.is_file():
        raise UsageError(f"--policy {spec}: no policy file at {path} (write one with policy.save(path))")
    try:
        policy = bandit.load(path)
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise UsageError(f"--policy {spec}: cannot load {path}: {' '.join(str(e).split())}") from None
    if policy.n_features is not None and policy.n_features != data.n_features:
        raise UsageError(
            f"--policy {spec}: the policy uses {policy.n_features} features, the logs' contexts have {data.n_features}"
        )
    log_index = {a: i for i, a in enumerate(data.action_names)}
    offered = [a for a in policy.active_arms if a not in log_index]
    if offered:
        raise UsageError(
            f"--policy {spec}: the policy can offer arms {offered} that the logs never had ({data.action_names}); "
            "off-policy evaluation cannot score them"
        )
    cols = np.array([log_index.get(a, -1) for a in policy.arm_names])
    elig = np.zeros((data.n, len(cols)), dtype=np.bool_)
    present = cols >= 0
    elig[:, present] = data.eligible[:, cols[present]]
    if not elig.any(axis=1).all():
        raise UsageError(f"--policy {spec}: some logged rows have no eligible arm among the policy's arms")
    X = data.context if policy.n_features is not None else [None] * data.n
    probs = policy.action_probabilities(X, eligible=elig)
    target = np.zeros((data.n, data.n_actions))
    target[:, cols[present]] = probs[:, present]
    return name, target


def _evaluate(args: argparse.Namespace) -> int:
    import warnings

    import offline_eval
    from bandit.simulation.config import OPE_ESTIMATORS

    names = [s.strip() for s in args.estimators.split(",") if s.strip()]
    unknown = [n for n in names if n not in OPE_ESTIMATORS]
    if not names or unknown:
        raise UsageError(f"--estimators: unknown {unknown or names}; choose among {', '.join(OPE_ESTIMATORS)}")
    data = _read_logs(args.logs, args.reward_column)
    targets: dict[str, Any] = {}
    for spec in args.policies:
        name, target = _load_target(spec, data)
        if name in targets:
            raise UsageError(f"--policy {spec}: the name {name!r} is used twice; use NAME=PATH")
        targets[name] = target
    _check_out_dir(args.out)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = offline_eval.evaluate(data, targets, estimators=[getattr(offline_eval, n)() for n in names])
    for message in dict.fromkeys(" ".join(str(w.message).split()) for w in caught):
        print(f"warning: {message}", file=sys.stderr)
    table.to_csv(args.out / "ope.csv", index=False)
    from bandit.simulation.runner import markdown_table

    cols = ["policy", "estimator", "value", "ci_low", "ci_high", "lift", "lift_ci_low", "lift_ci_high", "ess",
            "max_weight", "support_deficit", "recommended", "warnings"]
    md = (
        f"# Off-policy evaluation\n\nLogs: `{args.logs}` ({data.n:,} decisions, {data.n_actions} arms: "
        f"{', '.join(data.action_names)}); reward column `{args.reward_column}`. Values are per decision with "
        "95% intervals; `lift` is relative to the logging policy; `recommended` marks the estimator with the "
        "smallest estimated error among those with honest intervals.\n\n" + markdown_table(table, cols) + "\n"
    )
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
    from bandit.simulation.runner import run_demo

    if args.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {args.seed}")
    _check_out_dir(args.out)
    files = run_demo(args.out, quick=args.quick, seed=args.seed, progress=not args.quiet, echo=print)
    _print_files(files, "demo_md")
    return 0


_COMMANDS = {"simulate": _simulate, "evaluate": _evaluate, "demo": _demo}


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
        print(f"{PROG} {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
