"""``upsell-bandit report``: the rollout decision (GO / NO-GO / NEED MORE DATA) for saved policies, from decision logs.

::

    upsell-bandit report --logs DIR [--outcomes FILE --attribution-window WINDOW [--now TS]]
        --policy NAME=FILE [--policy NAME=FILE ...] [--baseline logging|NAME] [--metric COLUMN]
        [--split-at DATE | --test-days N] [--min-effect X] [--reward-range LOW,HIGH]
        [--guardrail NAME=COLUMN:MARGIN[:LOW,HIGH][:higher] ...] [--conversion COLUMN] [--alpha A]
        [--estimator NAME] [--backtest-windows N] --out DIR [--force]

Each metric -- the primary ``--metric`` (default ``reward``) and every guardrail's COLUMN -- is a column of the
outcomes table joined to the decisions with :func:`bandit.attribution.join_outcomes` under ``--attribution-window``
(the sum of a decision's outcomes inside its window, 0 once the window has passed without one; decisions whose
window is still open at ``--now`` are left out), or, without ``--outcomes`` (or when the outcomes lack it), a column
of the logs. ``--reward-range`` (the primary metric's) and a guardrail's ``:LOW,HIGH`` state the a-priori range of one
value per decision (``reward_range`` and ``Guardrail(value_range=...)`` of the report): below 10 informative rows the
small-sample bound decides only on a stated range, and a stated range clips that metric's intervals to what it
allows. Policies are files written by ``policy.save()`` (loaded with :func:`bandit.load`); ``uniform`` is
uniform over the eligible arms. The report itself is :func:`offline_eval.report.rollout_report` (rules in its
module docstring); ``--out`` receives ``report.html`` (self-contained), ``report.md``, ``report.json`` and
``report.csv`` (the table).

Bad input prints one line ``upsell-bandit report: error: ...`` naming the flag and exits with status 2, like the
other commands of :mod:`bandit.cli`.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bandit._cli_common import (
    JOIN_COLUMNS,
    LOG_COLUMNS,
    UsageError,
    add_invalid_rows_argument,
    add_log_arguments,
    add_reward_range_argument,
    check_out_dir,
    check_outcome_arguments,
    join,
    load_policies,
    one_line,
    parquet_files,
    parse_range,
    policy_error,
    read_decision_log,
    require,
    writing,
)

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["add_parser", "run"]

#: Names of the report's reference rows, which a --policy may not take.
_RESERVED = ("logging", "best single plan", "popularity")
#: The word after a guardrail's MARGIN that marks a metric where a fall is the harm.
_HIGHER = "higher"


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register the ``report`` subcommand on ``sub`` (an argparse sub-parsers action); returns its parser."""
    from bandit.simulation.config import ope_estimators

    rep = sub.add_parser(
        "report",
        help="decide GO / NO-GO / NEED MORE DATA for saved policies from decision logs",
        description="The rollout decision: estimate saved policies on decision logs (paired against the logging "
        "policy or another policy), check guardrail metrics against non-inferiority margins and the overlap "
        "diagnostics, and forecast how much more data an undecided comparison needs. Writes report.html "
        "(self-contained), report.md, report.json and report.csv.",
    )
    add_log_arguments(rep, "event_id, timestamp and metric columns")
    rep.add_argument("--policy", required=True, action="append", metavar="NAME=FILE", dest="policies",
                     help="a candidate: a policy file written by policy.save(), as NAME=FILE (or FILE), or "
                     "'uniform'; repeat for several")
    rep.add_argument("--baseline", default="logging", metavar="logging|NAME",
                     help="compare against the logging policy (default) or the --policy of this NAME")
    rep.add_argument("--metric", default="reward", metavar="COLUMN",
                     help="primary metric column (of the outcomes, else of the logs; default: reward)")
    split = rep.add_mutually_exclusive_group()
    split.add_argument("--split-at", metavar="DATE",
                       help="decisions before DATE train the references, the others are evaluated")
    split.add_argument("--test-days", type=float, metavar="N", help="evaluate the last N days; earlier rows train")
    rep.add_argument("--min-effect", type=float, default=0.0, metavar="X",
                     help="smallest lift of the metric per decision worth shipping (default 0)")
    add_reward_range_argument(rep, "of the --metric; with it the small-sample bound decides a lift with fewer than "
                              "10 informative outcomes on a candidate's offers (off the end of the range where most "
                              "values sit: conversions, or a mostly-1 flag's zeros), and the metric's intervals are "
                              "clipped to it")
    rep.add_argument("--guardrail", action="append", default=[], metavar="NAME=COLUMN:MARGIN[:LOW,HIGH][:higher]",
                     dest="guardrails",
                     help="a metric that must not get worse by more than MARGIN per decision: by default a rise is "
                     "the harm (e.g. cancellations=cancelled:0.002); append ':LOW,HIGH' to state the range of one "
                     "value (e.g. refunds=refunded:0.001:0,1 for a 0/1 flag: a rare harm is then judged on the "
                     "small-sample bound with fewer than 10 events -- for a mostly-1 flag such as retention, fewer "
                     "than 10 zeros --, and its intervals are clipped to the range); "
                     "append ':higher' for a metric where higher is better and a fall is the harm (e.g. "
                     "retention=retained:0.01:0,1:higher); repeat for several")
    rep.add_argument("--conversion", metavar="COLUMN",
                     help="metric whose positive values are conversions (hit rate, popularity; default --metric)")
    rep.add_argument("--alpha", type=float, default=0.05, help="family-wise error rate (default 0.05)")
    rep.add_argument("--estimator", default=None, choices=list(ope_estimators()),
                     help="one estimator for every metric (default: the recommended DR-DM blend, as in evaluate)")
    rep.add_argument("--backtest-windows", type=int, default=0, metavar="N",
                     help="rolling-origin backtest windows (default 0: none); saved policies are not refitted "
                     "per window, so windows inside the period a policy was trained on are in-sample")
    add_invalid_rows_argument(rep)
    rep.add_argument("--out", required=True, type=Path, metavar="DIR", help="output directory (created)")
    rep.add_argument("--force", action="store_true",
                     help="write into an existing --out directory (default: refuse)")
    return rep


# ----------------------------------------------------------------------------------------------------------------
# arguments
# ----------------------------------------------------------------------------------------------------------------


def _guardrails(specs: list[str]) -> dict[str, tuple[str, float, bool, tuple[float, float] | None]]:
    """``NAME -> (COLUMN, MARGIN, higher_is_better, value range or None)`` of the ``--guardrail
    NAME=COLUMN:MARGIN[:LOW,HIGH][:higher]`` flags (the two optional parts in either order).

    Examples
    --------
    >>> _guardrails(["churn=cancelled:0.01", "retention=retained:0.02:higher"])
    {'churn': ('cancelled', 0.01, False, None), 'retention': ('retained', 0.02, True, None)}
    >>> _guardrails(["refunds=refunded:0.001:0,1", "retention=retained:0.02:0,1:higher"])
    {'refunds': ('refunded', 0.001, False, (0.0, 1.0)), 'retention': ('retained', 0.02, True, (0.0, 1.0))}
    """
    syntax = ("expected NAME=COLUMN:MARGIN[:LOW,HIGH][:higher], e.g. cancellations=cancelled:0.002, "
              "refunds=refunded:0.001:0,1 or retention=retained:0.01:higher")
    out: dict[str, tuple[str, float, bool, tuple[float, float] | None]] = {}
    for spec in specs:
        name, eq, rest = spec.partition("=")
        higher, value_range = False, None
        for _ in range(2):  # the optional ':LOW,HIGH' and ':higher' at the end, in either order
            head, colon, last = rest.rpartition(":")
            word = last.strip()
            if not colon:
                break
            if word.lower() == _HIGHER and not higher:
                higher, rest = True, head
            elif "," in word and value_range is None:
                try:
                    value_range = parse_range(word, "--guardrail")
                except UsageError:
                    raise UsageError(f"--guardrail {spec!r}: the range {word!r} must be LOW,HIGH with finite "
                                     "numbers and LOW < HIGH (of one value per decision, e.g. 0,1 for a 0/1 flag)"
                                     ) from None
                rest = head
            elif "," in word:
                raise UsageError(f"--guardrail {spec!r}: more than one range ({word!r}); {syntax}")
            elif word and not _is_number(word):
                raise UsageError(f"--guardrail {spec!r}: unknown direction {word!r}; {syntax}")
            else:
                break
        column, colon, margin_text = rest.rpartition(":")
        name, column = name.strip(), column.strip()
        if not eq or not colon or not name or not column:
            raise UsageError(f"--guardrail {spec!r}: {syntax}")
        margin = float(margin_text) if _is_number(margin_text) else math.nan
        if not (math.isfinite(margin) and margin >= 0):
            raise UsageError(f"--guardrail {spec!r}: MARGIN must be a number >= 0 (metric units per decision)")
        if name in out:
            raise UsageError(f"--guardrail {spec!r}: the name {name!r} is used twice")
        out[name] = (column, margin, higher, value_range)
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _check_args(args: argparse.Namespace) -> None:
    check_outcome_arguments(args)
    if not math.isfinite(args.min_effect):
        raise UsageError(f"--min-effect {args.min_effect}: expected a finite number")
    if not 0 < args.alpha < 1:
        raise UsageError(f"--alpha {args.alpha}: expected a number in (0, 1), e.g. 0.05")
    if args.test_days is not None and not (math.isfinite(args.test_days) and args.test_days > 0):
        raise UsageError(f"--test-days {args.test_days}: expected a positive number of days")
    if args.split_at is not None:
        import pandas as pd

        try:
            ok = pd.Timestamp(args.split_at) is not pd.NaT
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise UsageError(f"--split-at {args.split_at!r}: expected a date, e.g. 2026-11-20 or 2026-11-20T12:00Z")
    if args.backtest_windows < 0:
        raise UsageError(f"--backtest-windows {args.backtest_windows}: expected an int >= 0")


# ----------------------------------------------------------------------------------------------------------------
# reading
# ----------------------------------------------------------------------------------------------------------------


def _metric_columns(args: argparse.Namespace,
                    guardrails: dict[str, tuple[str, float, bool, tuple[float, float] | None]]) -> dict[str, str]:
    """Column -> the flag that asked for it (metric, conversion, guardrails)."""
    cols = {args.metric: "--metric"}
    if args.conversion is not None:
        cols.setdefault(args.conversion, "--conversion")
    for name, (column, *_) in guardrails.items():
        cols.setdefault(column, f"--guardrail {name}={column}")
    return cols


def _read(args: argparse.Namespace, columns: dict[str, str], notes: list[str]) -> pd.DataFrame:
    """The decision log as a DataFrame with one column per metric (NaN where the outcome is not final)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path: Path = args.logs
    table, arms = read_decision_log(path, notes)
    if table.num_rows == 0:
        raise UsageError(f"--logs {path}: holds no decisions (0 rows)")
    require(LOG_COLUMNS, table.column_names, "--logs", path)
    df = table.to_pandas()
    if arms is not None:
        df.attrs["arms"] = arms
    outcome_schema: pa.Schema | None = None
    if args.outcomes is not None:
        require(JOIN_COLUMNS, table.column_names, "--logs", path, "; joining --outcomes needs it")
        files = parquet_files(args.outcomes, "--outcomes")
        try:
            outcome_schema = pq.read_schema(files[0])
        except (OSError, pa.ArrowException) as e:
            raise UsageError(f"--outcomes {args.outcomes}: not a readable Parquet file ({one_line(e)})") from None
    outcome_columns = [] if outcome_schema is None else list(outcome_schema.names)
    metrics = {}
    for column, flag in columns.items():
        if column in outcome_columns:
            assert outcome_schema is not None
            _check_numeric(outcome_schema.field(column).type, flag, column, f"--outcomes {args.outcomes}")
            joined, _ = join(df.copy(), argparse.Namespace(**{**vars(args), "reward_column": column}), notes)
            metrics[column] = joined["reward"].to_numpy(dtype=np.float64)
            df["timestamp"] = joined["timestamp"]
        elif column in df.columns and (column != "reward" or args.outcomes is None):
            _check_numeric(table.schema.field(column).type, flag, column, f"--logs {path}")
            values = df[column].to_numpy(dtype=np.float64, na_value=np.nan)
            if np.isnan(values).all():
                raise UsageError(
                    f"{flag}: column {column!r} of --logs {path} is empty (outcomes are not joined yet); pass "
                    "--outcomes FILE --attribution-window WINDOW to join them"
                )
            metrics[column] = values
        else:
            where = f"--outcomes {args.outcomes} or --logs {path}" if args.outcomes is not None else f"--logs {path}"
            hint = "" if args.outcomes is not None else " (a decision log's metrics come from --outcomes FILE)"
            raise UsageError(f"{flag}: no column {column!r} in {where}{hint}")
    for column, values in metrics.items():
        df[column] = values
    return df


def _check_numeric(kind: pa.DataType, flag: str, column: str, where: str) -> None:
    """A metric column must hold numbers (or booleans): not the event ids, timestamps or arm names."""
    import pyarrow as pa

    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
            or pa.types.is_null(kind)):
        raise UsageError(f"{flag}: column {column!r} of {where} holds {kind}, not a numeric metric per decision")


# ----------------------------------------------------------------------------------------------------------------
# the command
# ----------------------------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    """Run ``upsell-bandit report`` with parsed ``args``; returns 0 (errors raise :class:`bandit.cli.UsageError`)."""
    import json

    import offline_eval
    from offline_eval.report import Guardrail, rollout_report

    _check_args(args)
    reward_range = None if args.reward_range is None else parse_range(args.reward_range, "--reward-range")
    guardrails = _guardrails(args.guardrails)
    if args.metric in guardrails:
        raise UsageError(f"--guardrail {args.metric}=...: a guardrail may not be named like the --metric")
    check_out_dir(args.out, args.force)
    notes: list[str] = []
    columns = _metric_columns(args, guardrails)
    df = _read(args, columns, notes)
    n_features = int(np.asarray(df["context"].iloc[0]).shape[0]) if len(df) else 0
    specs = load_policies(args.policies, n_features)
    for name, (spec, _) in specs.items():
        if name in _RESERVED:
            raise UsageError(
                f"--policy {spec}: the name {name!r} is taken by a reference row of the report; use NAME=FILE with "
                "another NAME"
            )
    policies = {name: policy for name, (_, policy) in specs.items()}
    if args.baseline != "logging" and args.baseline not in policies:
        raise UsageError(f"--baseline {args.baseline!r}: expected 'logging' or a --policy NAME ({', '.join(policies)})")
    if len(policies) == 1 and args.baseline in policies:
        raise UsageError(f"--baseline {args.baseline}: give at least one other --policy to decide on")
    gr = {name: Guardrail(column, margin, higher, value_range)
          for name, (column, margin, higher, value_range) in guardrails.items()}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            report = rollout_report(
                df,
                policies,
                baseline=args.baseline,
                metric=args.metric,
                guardrails=gr,
                min_effect=args.min_effect,
                alpha=args.alpha,
                estimator=None if args.estimator is None else getattr(offline_eval, args.estimator)(),
                reward_range=reward_range,
                split_at=args.split_at,
                test_days=args.test_days,
                conversion=args.conversion,
                backtest_windows=args.backtest_windows,
                frame_options={"action_names": df.attrs.get("arms"), "invalid_rows": args.invalid_rows},
            )
        except (TypeError, ValueError) as e:
            raise UsageError(policy_error(str(e), specs) or _flag_of(str(e), args) + one_line(e)) from None
    for note in dict.fromkeys(notes):
        print(f"note: {note}", file=sys.stderr)
    for message in dict.fromkeys(one_line(w.message) for w in caught if not _is_diagnostic(w)):
        if args.outcomes is not None and "with a missing metric" in message:
            continue  # the attribution note above already says which decisions are left out
        print(f"note: {message}", file=sys.stderr)
    # the reasons say how to state a range in the command's words, not the library's
    report = dataclasses.replace(report, reasons=[_shell_words(r) for r in report.reasons])
    # the files are read without this terminal: they state what the reading and joining left out, as ope.md does
    written = dataclasses.replace(report, reasons=[*report.reasons, *(f"Note: {n}" for n in dict.fromkeys(notes))])
    with writing(args.out):
        args.out.mkdir(parents=True, exist_ok=True)
        html = written.to_html(args.out / "report.html")
        (args.out / "report.md").write_text(written.to_markdown())
        (args.out / "report.json").write_text(json.dumps(written.to_dict(), indent=2, allow_nan=False))
        report.table.to_csv(args.out / "report.csv", index=False)
    print(f"DECISION: {report.decision}")
    for reason in report.reasons:
        print(f"- {reason}")
    print(f"report: {html}")
    print(f"table:  {args.out / 'report.csv'}")
    return 0


#: The report's advice on stating a range (offline_eval.report), in the flags of this command.
_SHELL_WORDS = {
    "pass reward_range=(low, high)": "pass --reward-range LOW,HIGH",
    "give the guardrail a value_range=(low, high)": "append :LOW,HIGH to its --guardrail",
}


def _shell_words(reason: str) -> str:
    """``reason`` with the report's keyword arguments for a range replaced by this command's flags.

    Examples
    --------
    >>> _shell_words("it decides nothing (pass reward_range=(low, high) to judge it on the small-sample bound)")
    'it decides nothing (pass --reward-range LOW,HIGH to judge it on the small-sample bound)'
    """
    for library, shell in _SHELL_WORDS.items():
        reason = reason.replace(library, shell)
    return reason


def _is_diagnostic(w: Any) -> bool:
    from offline_eval.diagnostics import DiagnosticWarning

    return issubclass(w.category, DiagnosticWarning)


def _flag_of(message: str, args: argparse.Namespace) -> str:
    """The flag an error from rollout_report is about, as a prefix (``"--policy NAME: "``), or the logs."""
    import re

    m = re.search(r"candidates\['([^']+)'\]", message)
    if m:
        return f"--policy {m.group(1)}: "
    m = re.match(r"guardrails\['([^']+)'\]\.value_range", message)
    if m:
        return f"--guardrail {m.group(1)}: "
    if message.startswith("reward_range"):
        return f"--reward-range {args.reward_range}: "
    if "evaluated data has" in message and (args.split_at is not None or args.test_days is not None):
        return f"--split-at {args.split_at}: " if args.split_at is not None else f"--test-days {args.test_days}: "
    if "split_at" in message or "at=" in message:
        return f"--split-at {args.split_at}: " if args.split_at is not None else f"--test-days {args.test_days}: "
    if "test_days" in message:
        return f"--test-days {args.test_days}: "
    if "backtest" in message or "window" in message:
        return f"--backtest-windows {args.backtest_windows}: "
    return f"--logs {args.logs}: "


if __name__ == "__main__":  # pragma: no cover
    from bandit.cli import main

    sys.exit(main(["report", *sys.argv[1:]]))
