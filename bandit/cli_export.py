"""``upsell-bandit export``: decision logs with their joined rewards as Vowpal Wabbit DSJSON or ``cb_adf`` text.

::

    upsell-bandit export --logs DIR [--outcomes FILE --attribution-window WINDOW [--now TS]] [--reward-column COL]
        --format dsjson|cb_adf --out FILE [--force]

Rewards are joined exactly as ``evaluate`` and ``report`` join them (:func:`bandit._cli_common.join`: the outcomes
inside each decision's attribution window, 0 once it has passed without one); decisions still inside their window
at ``--now``, and decisions of a log without outcomes whose ``reward`` is null, are left out and counted. The
format is :mod:`offline_eval.formats` (field mapping in its module docstring); train VW on the file with
``vw --dsjson --cb_explore_adf -d FILE`` (or ``-d FILE`` for cb_adf).

A DSJSON file is also accepted by ``upsell-bandit evaluate --logs FILE.json`` (:func:`read_dsjson_logs`): the
rewards are in the file, bad lines are quarantined with a note naming their line numbers.

Bad input prints one line ``upsell-bandit export: error: ...`` naming the flag and exits with status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bandit._cli_common import (
    LOG_COLUMNS,
    UsageError,
    add_invalid_rows_argument,
    add_log_arguments,
    check_outcome_arguments,
    join,
    one_line,
    read_decision_log,
    require,
)

if TYPE_CHECKING:
    from offline_eval import LoggedData

__all__ = ["DSJSON_SUFFIXES", "add_parser", "is_dsjson", "read_dsjson_logs", "run"]

#: File suffixes ``--logs`` reads as DSJSON (``evaluate``).
DSJSON_SUFFIXES = (".json", ".jsonl", ".dsjson")


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register the ``export`` subcommand on ``sub`` (an argparse sub-parsers action); returns its parser."""
    exp = sub.add_parser(
        "export",
        help="write decision logs with their rewards as Vowpal Wabbit DSJSON or cb_adf text",
        description="Export a decision log with its joined rewards for Vowpal Wabbit: DSJSON (the decision-service "
        "format: _label_cost = -reward, _label_probability, _label_Action, _labelIndex, EventId, Timestamp, a, p, "
        "c with the context in namespace U and one _multi action per eligible arm) or cb_adf text. Decisions "
        "without a final outcome are left out and counted.",
    )
    add_log_arguments(exp, "event_id, timestamp, reward")
    exp.add_argument("--reward-column", default="reward", metavar="COL",
                     help="column holding the reward: of the outcomes with --outcomes, else of the logs "
                     "(default: reward)")
    exp.add_argument("--format", required=True, choices=("dsjson", "cb_adf"), dest="fmt",
                     help="dsjson (vw --dsjson --cb_explore_adf) or cb_adf text (vw --cb_explore_adf)")
    exp.add_argument("--out", required=True, type=Path, metavar="FILE", help="the file to write")
    exp.add_argument("--force", action="store_true", help="replace an existing --out file")
    add_invalid_rows_argument(exp)
    return exp


def _check_out_file(out: Path, force: bool) -> None:
    if out.is_dir():
        raise UsageError(f"--out {out}: is a directory; pass a file name")
    if out.exists() and not force:
        raise UsageError(f"--out {out}: already exists; pass --force to replace it")
    parent = out.absolute().parent
    if not parent.is_dir():
        raise UsageError(f"--out {out}: its directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"--out {out}: its directory {parent} is not writable")


def run(args: argparse.Namespace) -> int:
    """Run ``upsell-bandit export`` (arguments from :func:`add_parser`); returns the exit status."""
    import numpy as np

    from offline_eval.formats import write_cb_adf, write_dsjson

    check_outcome_arguments(args)
    _check_out_file(args.out, args.force)
    notes: list[str] = []
    path: Path = args.logs
    table, arms = read_decision_log(path, notes)
    if table.num_rows == 0:
        raise UsageError(f"--logs {path}: holds no decisions (0 rows)")
    require(LOG_COLUMNS, table.column_names, "--logs", path)
    df = table.to_pandas()
    df.attrs["arms"] = arms
    if args.outcomes is not None:
        df, _ = join(df, args, notes)
    else:
        if args.reward_column not in df:
            raise UsageError(f"--reward-column {args.reward_column!r}: not a column of --logs {path}")
        df["reward"] = df[args.reward_column]
        if df["reward"].isna().all():
            raise UsageError(
                f"--logs {path}: column {args.reward_column!r} is empty (outcomes are not joined yet); pass --outcomes "
                "FILE --attribution-window WINDOW to join them"
            )
    writer = write_dsjson if args.fmt == "dsjson" else write_cb_adf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the count of left-out decisions is reported below
        try:
            summary = writer(df, args.out, invalid_rows=args.invalid_rows)
        except (TypeError, ValueError) as e:
            raise UsageError(f"--logs {path}: {one_line(e)}") from None
        except OSError as e:  # disk full, a file system that refuses files (/proc): the temporary file's name is ours
            raise UsageError(f"--out {args.out}: cannot be written ({e.strerror or one_line(e)})") from None
    if summary.n_written == 0:
        args.out.unlink(missing_ok=True)
        raise UsageError(f"--logs {path}: no decision has a final outcome yet; nothing to export")
    for note in notes:  # join() words its notes for evaluate
        print(f"note: {note.replace('left out of the evaluation', 'left out of the export')}", file=sys.stderr)
    if summary.n_missing_reward and args.outcomes is None:
        print(f"note: left out {summary.n_missing_reward:,} decisions whose {args.reward_column!r} is null",
              file=sys.stderr)
    quarantined = summary.quarantined
    if quarantined:
        why = ", ".join(f"{reason}: {count:,}" for reason, count in quarantined.counts.items())
        print(f"note: left out {quarantined.n_rows:,} decisions that break the decision-log contract ({why}; first: "
              f"{', '.join(quarantined.examples)}); --invalid-rows raise stops at the first instead", file=sys.stderr)
    total = summary.n_written + summary.n_missing_reward + quarantined.n_rows
    print(f"wrote {summary.n_written:,} of {total:,} decisions ({args.fmt}, {len(arms)} arms, "
          f"mean reward {float(np.nanmean(df['reward'])):.4g}) to {summary.path}")
    return 0


def is_dsjson(path: Path) -> bool:
    """True when ``--logs`` names a DSJSON file (by its suffix) rather than Parquet decision logs."""
    return path.suffix.lower() in DSJSON_SUFFIXES


def read_dsjson_logs(args: argparse.Namespace, notes: list[str]) -> tuple[LoggedData, str]:
    """``evaluate --logs FILE.json``: LoggedData from a DSJSON file (rewards are in it), quarantined lines noted."""
    from offline_eval.formats import DSJSONWarning, read_dsjson

    path: Path = args.logs
    if args.outcomes is not None:
        raise UsageError(f"--outcomes {args.outcomes}: a DSJSON --logs file carries its rewards (_label_cost); "
                         "drop --outcomes")
    if args.reward_column != "reward":
        raise UsageError(f"--reward-column {args.reward_column!r}: a DSJSON file's reward is -_label_cost")
    if not path.is_file():
        raise UsageError(f"--logs {path}: does not exist (a DSJSON file, one decision per line)")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = read_dsjson(path)
        except (OSError, ValueError) as e:
            raise UsageError(f"--logs {path}: {one_line(e)}") from None
    notes.extend(one_line(w.message) for w in caught if issubclass(w.category, (DSJSONWarning, UserWarning)))
    if result.data.n == 0:
        raise UsageError(f"--logs {path}: no line has an outcome (_label_cost); nothing to evaluate")
    return result.data, f"`_label_cost` of the DSJSON file ({result.n_lines:,} lines)"
