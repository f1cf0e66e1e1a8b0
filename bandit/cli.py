"""The ``upsell-bandit`` command line: ``simulate``, ``evaluate`` and ``demo``.

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
  later ones, pick, roll out, compare, launch a new plan) in well under two minutes; DIR defaults to
  ``./upsell-demo``.

An existing output directory is refused unless ``--force``; nothing is left behind when a command fails. Bad input
(a missing file, an invalid config, a malformed log or outcomes table, logs the policy cannot be evaluated on)
prints one line ``upsell-bandit <command>: error: ...`` naming the flag on stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from offline_eval import LoggedData

__all__ = ["main"]

PROG = "upsell-bandit"


class UsageError(Exception):
    """A user error: reported as one line on stderr, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line (plus a pointer to --help) and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _one_line(message: object) -> str:
    return " ".join(str(message).split())


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
        "(decision-log schema), with 95%% intervals and importance-weight diagnostics. A decision log's reward is "
        "null until outcomes are joined: pass the outcomes table with --outcomes and the attribution window; "
        "decisions still inside their window are left out.",
    )
    ev.add_argument("--logs", required=True, type=Path, metavar="PATH",
                    help="decision log: a Parquet file or a directory of Parquet part files")
    ev.add_argument("--outcomes", type=Path, metavar="FILE",
                    help="delayed outcomes (event_id, timestamp, reward): a Parquet file or directory, joined to the "
                    "logs with bandit.attribution.join_outcomes")
    ev.add_argument("--attribution-window", metavar="WINDOW",
                    help="with --outcomes: how long after a decision an outcome counts, e.g. 1D, 48h, 30min")
    ev.add_argument("--now", metavar="TS",
                    help="with --outcomes: the time up to which outcomes are complete, e.g. 2026-12-01T00:00Z "
                    "(default: the latest timestamp in the logs and outcomes, at most the current time); decisions "
                    "whose attribution window is still open at --now are left out")
    ev.add_argument("--policy", required=True, action="append", metavar="SPEC", dest="policies",
                    help="a policy file written by policy.save(), as PATH or NAME=PATH; or 'uniform' (uniform over "
                    "the eligible arms); repeat to compare several")
    ev.add_argument("--out", required=True, type=Path, metavar="DIR", help="output directory (created)")
    ev.add_argument("--force", action="store_true", help=force_help)
    ev.add_argument("--reward-column", default="reward", metavar="COL",
                    help="column holding the reward to evaluate: of the outcomes with --outcomes, else of the logs "
                    "(default: reward; e.g. revenue for simulator outcomes)")
    ev.add_argument("--estimators", default="IPS,SNIPS,DR,SNDR", metavar="LIST",
                    help=f"comma-separated estimators among {','.join(OPE_ESTIMATORS)} (default: %(default)s)")

    demo = sub.add_parser(
        "demo",
        help="the end-to-end story (well under two minutes)",
        description="Log offers with a randomised policy, fit candidate policies on the earlier logs, evaluate "
        "them offline with intervals on the later logs, pick one, roll it out in the simulator, compare the "
        "offline estimate with the realised value, launch a new plan and measure how fast it is learned. Writes "
        "plots and a summary.",
    )
    demo.add_argument("--out", type=Path, default=Path("upsell-demo"), metavar="DIR",
                      help="output directory (default: ./upsell-demo)")
    demo.add_argument("--force", action="store_true", help=force_help)
    demo.add_argument("--quick", action="store_true", help="a small run (seconds), e.g. for CI")
    demo.add_argument("--seed", type=int, default=0, help="world seed (default: 0)")
    demo.add_argument("--quiet", action="store_true", help="no progress on stderr")
    from bandit.cli_report import add_parser as _add_report_parser  # the rollout decision (bandit/cli_report.py)

    _add_report_parser(sub)
    return parser


# ----------------------------------------------------------------------------------------------------------------
# output directories
# ----------------------------------------------------------------------------------------------------------------

#: Entries of an earlier ``simulate`` / ``demo`` run that a new one would not overwrite file by file (decision-log
#: part files have unique names), removed first under ``--force``.
_STALE = ("logs", "plots")


def _check_out_dir(out: Path, force: bool) -> None:
    """Refuse an unusable ``--out`` before any work is done (nothing is created here)."""
    if out.exists():
        if not out.is_dir():
            raise UsageError(f"--out {out}: exists and is not a directory")
        if not force:
            raise UsageError(f"--out {out}: already exists; pass --force to replace its files, or choose a new directory")
        if not os.access(out, os.W_OK | os.X_OK):
            raise UsageError(f"--out {out}: not writable")
        return
    ancestor = out.absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UsageError(f"--out {out}: cannot be created, {ancestor} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise UsageError(f"--out {out}: cannot be created, {ancestor} is not writable")


@contextmanager
def _writing(out: Path, stale: Sequence[str] = ()) -> Iterator[Path]:
    """Write into ``out`` (checked by :func:`_check_out_dir`); on any failure remove what this run created.

    A directory that did not exist is created by the writer and removed again if writing fails (with any parents
    created along the way), so a failed command leaves no empty or half-written output directory behind. In an
    existing directory (``--force``) the entries named in ``stale`` (an earlier run's ``logs/`` and ``plots/``) are
    removed first, so new decision logs never mix with old part files; everything else in it is kept.
    """
    top = out.absolute()
    while not top.parent.exists():
        top = top.parent
    existed = top.exists()
    if existed:
        for name in stale:
            old = out / name
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old)
            elif old.exists() or old.is_symlink():
                old.unlink()
    try:
        yield out
    except BaseException:
        if not existed and top.exists():
            shutil.rmtree(top, ignore_errors=True)
        raise


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
        message = _one_line(e)  # load_config names the file first
        prefix = "--config " if message.startswith(str(args.config)) else f"--config {args.config}: "
        raise UsageError(prefix + message) from None
    _check_out_dir(args.out, args.force)
    try:
        result = run_simulation(config, progress=not args.quiet and config.output.progress)
    except ConfigError as e:
        raise UsageError(f"--config {args.config}: {_one_line(e)}") from None
    with _writing(args.out, stale=_STALE):
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
# evaluate: reading and checking the inputs
# ----------------------------------------------------------------------------------------------------------------


def _parquet_files(path: Path, flag: str) -> list[Path]:
    if not path.exists():
        raise UsageError(f"{flag} {path}: does not exist")
    if path.is_dir():
        files = sorted(f for f in path.glob("*.parquet") if not f.name.startswith((".", "_")))
        if not files:
            nested = sorted({p.parent for p in path.glob("**/part-*.parquet")})
            hint = f"; it holds decision logs in subdirectories, pass one, e.g. {nested[0]}" if nested else ""
            raise UsageError(f"{flag} {path}: a directory without *.parquet files{hint}")
        return files
    if path.stat().st_size == 0:
        raise UsageError(f"{flag} {path}: empty file, expected Parquet")
    return [path]


def _read_parquet(path: Path, flag: str) -> Any:
    """The Arrow table of a Parquet file, or of the Parquet files of a directory concatenated."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = _parquet_files(path, flag)
    try:
        tables = [pq.read_table(f).replace_schema_metadata(None) for f in files]
    except (OSError, pa.ArrowException) as e:
        raise UsageError(f"{flag} {path}: not a readable Parquet file ({_one_line(e)})") from None
    try:
        return pa.concat_tables(tables)
    except pa.ArrowInvalid:
        raise UsageError(f"{flag} {path}: its files have different columns; pass one of them") from None


def _require(columns: Sequence[str], present: Sequence[str], flag: str, path: Path, why: str = "") -> None:
    missing = [c for c in columns if c not in present]
    if missing:
        more = f" (all missing: {missing})" if len(missing) > 1 else ""
        raise UsageError(f"{flag} {path}: missing column {missing[0]!r}{more}{why}")


def _parse_window(text: str) -> Any:
    import pandas as pd

    bad = UsageError(f"--attribution-window {text!r}: expected a positive duration with a unit, e.g. 1D, 48h, 30min")
    if not re.search(r"[A-Za-z]", text):
        raise bad  # pandas would read a bare "1" as one nanosecond
    try:
        window = pd.Timedelta(text)
    except (TypeError, ValueError):
        raise bad from None
    if window is pd.NaT or window < pd.Timedelta(microseconds=1):
        raise bad
    return window


def _parse_now(text: str) -> Any:
    import pandas as pd

    try:
        ts = pd.Timestamp(text)
    except (TypeError, ValueError):
        ts = pd.NaT
    if ts is pd.NaT:
        raise UsageError(f"--now {text!r}: expected a timestamp, e.g. 2026-12-01 or 2026-12-01T12:00:00Z")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _timestamps(series: pd.Series, flag: str, path: Path) -> Any:
    import pandas as pd

    if series.dtype.kind in "biufc":
        raise UsageError(f"{flag} {path}: column 'timestamp' holds numbers ({series.dtype}), expected timestamps")
    try:
        ts = pd.to_datetime(series, utc=True)
    except (TypeError, ValueError, OverflowError):
        raise UsageError(f"{flag} {path}: column 'timestamp' could not be read as timestamps") from None
    if ts.isna().any():
        raise UsageError(f"{flag} {path}: column 'timestamp' has {int(ts.isna().sum())} missing values")
    return ts


def _event_ids(series: pd.Series, flag: str, path: Path) -> None:
    if series.isna().any():
        raise UsageError(f"{flag} {path}: column 'event_id' has {int(series.isna().sum())} missing values")
    if series.map(lambda e: not isinstance(e, str)).any():
        raise UsageError(f"{flag} {path}: column 'event_id' must hold strings")


def _read_outcomes(path: Path, reward_column: str) -> pd.DataFrame:
    """The outcomes table, checked, with the evaluated reward in ``reward``."""
    import pandas as pd

    table = _read_parquet(path, "--outcomes")
    _require(["event_id", "timestamp"], table.column_names, "--outcomes", path)
    if reward_column not in table.column_names:
        hint = "" if reward_column == "reward" else " (named by --reward-column)"
        raise UsageError(f"--outcomes {path}: missing column {reward_column!r}{hint}")
    if table.num_rows == 0:
        raise UsageError(f"--outcomes {path}: holds no outcomes (0 rows); every decision would get reward 0")
    df = table.select(["event_id", "timestamp", reward_column]).to_pandas()
    _event_ids(df["event_id"], "--outcomes", path)
    df["timestamp"] = _timestamps(df["timestamp"], "--outcomes", path)
    try:
        reward = pd.to_numeric(df[reward_column], errors="raise").to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        raise UsageError(f"--outcomes {path}: column {reward_column!r} must be numeric") from None
    bad = ~np.isfinite(reward)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise UsageError(
            f"--outcomes {path}: column {reward_column!r} has {int(bad.sum())} NaN or infinite values (first at row "
            f"{first}: {reward[first]}); every outcome needs a finite reward"
        )
    return pd.DataFrame({"event_id": df["event_id"], "timestamp": df["timestamp"], "reward": reward})


_LOG_COLUMNS = ("context", "action", "propensity", "eligible")
_JOIN_COLUMNS = ("event_id", "timestamp", "action_name")


def _read_decision_log(path: Path, notes: list[str]) -> tuple[Any, list[str]]:
    """(Arrow table, arm list) of ``--logs`` through the one decision-log reader, ``offline_eval.schema.read_log``
    (stray files skipped and duplicate event ids dropped with a note)."""
    from offline_eval.schema import DecisionLogWarning, read_log

    _parquet_files(path, "--logs")  # a missing path, an empty file or logs one level down: say so precisely
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DecisionLogWarning)
        try:
            log = read_log(path)
        except (OSError, ValueError) as e:
            skipped = [_one_line(w.message) for w in caught if issubclass(w.category, DecisionLogWarning)]
            if len(skipped) == 1 and "': " in skipped[0]:  # "skipping 'FILE': why" -- the one reason
                raise UsageError(f"--logs {path}: {skipped[0].split(chr(39) + ': ', 1)[1]}") from None
            raise UsageError(f"--logs {path}: {_one_line(e)}") from None
    notes.extend(_one_line(w.message) for w in caught if issubclass(w.category, DecisionLogWarning))
    return log.table, list(log.arms)


def _read_logs(args: argparse.Namespace, notes: list[str]) -> tuple[LoggedData, str]:
    """LoggedData from the decision log (rewards joined from ``--outcomes`` if given), and how rewards were got."""

    from offline_eval import LoggedData

    path: Path = args.logs
    table, arms = _read_decision_log(path, notes)
    if table.num_rows == 0:
        raise UsageError(f"--logs {path}: holds no decisions (0 rows)")
    _require(_LOG_COLUMNS, table.column_names, "--logs", path)
    if args.outcomes is not None:
        _require(_JOIN_COLUMNS, table.column_names, "--logs", path, "; joining --outcomes needs it")
    elif args.reward_column not in table.column_names:
        raise UsageError(
            f"--reward-column {args.reward_column!r}: not a column of --logs {path}; the decision log's 'reward' is "
            "filled by joining outcomes: pass --outcomes FILE --attribution-window WINDOW"
        )
    df = table.to_pandas()
    if arms is not None:
        df.attrs["arms"] = arms
    if args.outcomes is not None:
        df, source = _join(df, args, notes)
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
            data = LoggedData.from_dataframe(df, reward=reward_column, action_names=arms)
        except (TypeError, ValueError) as e:
            raise UsageError(f"--logs {path}: {_one_line(e)}") from None
    if args.outcomes is None:
        notes.extend(_one_line(w.message) for w in caught)
    if data.n == 0:
        raise UsageError(f"--logs {path}: no decision has a final outcome yet; nothing to evaluate")
    if data.eligible is None:
        raise UsageError(f"--logs {path}: has no 'eligible' column; policies need the eligibility mask")
    return data, source


def _join(df: pd.DataFrame, args: argparse.Namespace, notes: list[str]) -> tuple[pd.DataFrame, str]:
    """Fill the log's ``reward`` from ``--outcomes`` under the attribution window (pending rows: NaN)."""
    from bandit.attribution import join_outcomes

    path: Path = args.logs
    window = _parse_window(args.attribution_window)
    outcomes = _read_outcomes(args.outcomes, args.reward_column)
    _event_ids(df["event_id"], "--logs", path)
    df["timestamp"] = _timestamps(df["timestamp"], "--logs", path)
    if df["event_id"].duplicated().any():
        dupes = df.loc[df["event_id"].duplicated(), "event_id"].unique().tolist()
        raise UsageError(f"--logs {path}: event ids must be unique, duplicated: {dupes[:3]}")
    if args.now is not None:
        now = _parse_now(args.now)
        how = "--now"
    else:
        import pandas as pd

        latest = max(df["timestamp"].max(), outcomes["timestamp"].max()) if len(outcomes) else df["timestamp"].max()
        now = min(latest, pd.Timestamp.now(tz="UTC"))
        how = "the latest timestamp in the logs and outcomes, at most the current time; pass --now to change"
    try:
        joined = join_outcomes(df, outcomes, attribution_window=window, now=now)
    except (TypeError, ValueError) as e:
        raise UsageError(f"--outcomes {args.outcomes}: {_one_line(e)}") from None
    unmatched = int((~outcomes["event_id"].isin(df["event_id"])).sum())
    if unmatched == len(outcomes):
        raise UsageError(
            f"--outcomes {args.outcomes}: none of its {len(outcomes):,} event ids matches a decision of --logs "
            f"{path}; is it the outcomes table of these logs?"
        )
    if unmatched:
        notes.append(f"{unmatched:,} of {len(outcomes):,} outcomes match no logged decision (ignored)")
    # only decisions whose window has closed are final: keeping the early conversions of still-open windows but
    # not their non-conversions would bias every estimate upwards
    open_window = (joined["timestamp"] + window >= now).to_numpy()
    early = int((open_window & joined["reward"].notna().to_numpy()).sum())
    joined.loc[open_window, "reward"] = np.nan
    if open_window.all():
        raise UsageError(
            f"--now {now.isoformat()}: every decision is still inside its {args.attribution_window} attribution "
            "window (or was made later); nothing has a final outcome to evaluate -- pass a later --now"
        )
    if open_window.any():
        notes.append(
            f"{int(open_window.sum()):,} of {len(joined):,} decisions are still inside their {args.attribution_window} "
            f"attribution window at now={now.isoformat()} ({how}); left out of the evaluation"
            + (f", including {early:,} that already have an outcome (keeping only those would bias the estimates "
               "upwards)" if early else "")
        )
    if "reward_status" in joined:
        status = joined.loc[~open_window, "reward_status"]
        bad = status[~status.isin(["outcome", "window_expired", "pending"])]
        if len(bad):
            counts = ", ".join(f"{reason} ({k:,})" for reason, k in bad.value_counts().items())
            notes.append(f"{len(bad):,} decisions rejected by the attribution rules and left out: {counts}")
        joined = joined.drop(columns=["reward_status"])
    source = (
        f"outcomes `{args.outcomes}` (column `{args.reward_column}`) joined with a {args.attribution_window} "
        f"attribution window at now={now.isoformat()}"
    )
    return joined, source


class _Uniform:
    """Uniform over the eligible arms (a reference target for ``evaluate``)."""

    def action_probabilities(self, X: Any, eligible: np.ndarray) -> np.ndarray:
        e = np.asarray(eligible, dtype=np.float64)
        return e / e.sum(axis=1, keepdims=True)


def _load_target(spec: str, data: LoggedData) -> tuple[str, np.ndarray]:
    """(name, (n, K) target probabilities) of one ``--policy`` SPEC on ``data``."""
    import bandit

    eligible = data.eligible
    if eligible is None:
        raise UsageError("--logs: has no 'eligible' column; policies need the eligibility mask")
    if spec == "uniform":
        return "uniform", _Uniform().action_probabilities(data.context, eligible)
    name, sep, raw = spec.partition("=")
    if sep and not name.strip():
        raise UsageError(f"--policy {spec!r}: empty NAME; expected NAME=PATH, PATH or 'uniform'")
    if sep and not raw.strip():
        raise UsageError(f"--policy {spec!r}: empty PATH; expected NAME=PATH, PATH or 'uniform'")
    path = Path(raw if sep else spec)
    name = name if sep else path.stem
    if not path.exists():
        raise UsageError(
            f"--policy {spec}: no policy file at {path} (write one with policy.save(path); 'uniform' is the only "
            "built-in)"
        )
    if not path.is_file():
        raise UsageError(f"--policy {spec}: {path} is not a file (expected a file written by policy.save())")
    try:
        policy = bandit.load(path)
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise UsageError(f"--policy {spec}: cannot load {path}: {_one_line(e)}") from None
    if data.context is None:
        raise UsageError(f"--policy {spec}: the logs have no contexts")
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
    elig[:, present] = eligible[:, cols[present]]
    if not elig.any(axis=1).all():
        raise UsageError(f"--policy {spec}: some logged rows have no eligible arm among the policy's arms")
    X = data.context if policy.n_features is not None else [None] * data.n
    probs = policy.action_probabilities(X, eligible=elig)
    target = np.zeros((data.n, data.n_actions))
    target[:, cols[present]] = probs[:, present]
    return name, target


def _estimator_names(text: str) -> list[str]:
    from bandit.simulation.config import OPE_ESTIMATORS

    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [n for n in names if n not in OPE_ESTIMATORS]
    if not names:
        raise UsageError(f"--estimators {text!r}: expected a comma-separated list among {', '.join(OPE_ESTIMATORS)}")
    if unknown:
        raise UsageError(f"--estimators {text!r}: unknown {unknown}; choose among {', '.join(OPE_ESTIMATORS)}")
    return list(dict.fromkeys(names))


# ----------------------------------------------------------------------------------------------------------------
# evaluate
# ----------------------------------------------------------------------------------------------------------------


def _evaluate(args: argparse.Namespace) -> int:
    import offline_eval

    names = _estimator_names(args.estimators)
    if args.outcomes is None:
        for flag, value in (("--attribution-window", args.attribution_window), ("--now", args.now)):
            if value is not None:
                raise UsageError(f"{flag} applies to joined outcomes; pass --outcomes FILE as well")
    else:
        if args.attribution_window is None:
            raise UsageError(f"--outcomes {args.outcomes}: needs --attribution-window (e.g. 1D, 48h)")
        _parse_window(args.attribution_window)
        if args.now is not None:
            _parse_now(args.now)
    _check_out_dir(args.out, args.force)
    notes: list[str] = []
    data, source = _read_logs(args, notes)
    targets: dict[str, Any] = {}
    for spec in args.policies:
        name, target = _load_target(spec, data)
        if name in targets:
            raise UsageError(f"--policy {spec}: the name {name!r} is used twice; use NAME=PATH")
        targets[name] = target
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = offline_eval.evaluate(data, targets, estimators=[getattr(offline_eval, n)() for n in names])
    for message in dict.fromkeys(_one_line(w.message) for w in caught):
        print(f"warning: {message}", file=sys.stderr)
    from bandit.simulation.report import markdown_table

    cols = ["policy", "estimator", "value", "ci_low", "ci_high", "lift", "lift_ci_low", "lift_ci_high", "ess",
            "max_weight", "support_deficit", "recommended", "warnings"]
    md = (
        f"# Off-policy evaluation\n\nLogs: `{args.logs}` ({data.n:,} decisions with a final outcome, "
        f"{data.n_actions} arms: {', '.join(data.action_names)}); rewards from {source}. Values are per decision "
        "with 95% intervals; `lift` is relative to the logging policy; `recommended` marks the estimator with the "
        "smallest estimated error among those with honest intervals.\n\n" + markdown_table(table, cols) + "\n"
    )
    if notes:
        md += "\n" + "".join(f"- note: {n}\n" for n in notes)
    with _writing(args.out):
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
    from bandit.simulation.demo import run_demo

    if args.seed < 0:
        raise UsageError(f"--seed {args.seed}: expected a non-negative integer")
    _check_out_dir(args.out, args.force)
    with _writing(args.out, stale=_STALE):
        files = run_demo(args.out, quick=args.quick, seed=args.seed, progress=not args.quiet, echo=print)
    _print_files(files, "demo_md")
    return 0


def _report(args: argparse.Namespace) -> int:
    from bandit.cli_report import run

    return run(args)


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "simulate": _simulate, "evaluate": _evaluate, "demo": _demo, "report": _report,
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
        print(f"{PROG} {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
