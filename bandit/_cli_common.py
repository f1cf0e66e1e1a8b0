"""Plumbing shared by the ``upsell-bandit`` commands (:mod:`bandit.cli`, :mod:`bandit.cli_report`).

One home for what every command needs: the one-line :class:`UsageError` (exit 2), output directories that are
refused when they exist and removed again when a command fails, reading decision logs and outcomes tables with
errors that name the flag, joining outcomes under an attribution window, and loading ``--policy`` files.
Internal to the CLI: the names here carry no compatibility promise.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np

from bandit._validation import one_line

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "JOIN_COLUMNS",
    "LOG_COLUMNS",
    "STALE",
    "Parser",
    "Uniform",
    "UsageError",
    "add_invalid_rows_argument",
    "add_reward_range_argument",
    "check_out_dir",
    "echo",
    "join",
    "load_policy",
    "one_line",
    "parquet_files",
    "parse_now",
    "parse_range",
    "parse_window",
    "read_decision_log",
    "read_outcomes",
    "read_parquet",
    "require",
    "writing",
]


class UsageError(Exception):
    """A user error: reported as one line on stderr, exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line (plus a pointer to --help) and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def echo(line: str = "") -> None:
    """``print(line)``, but a closed stdout (``upsell-bandit demo | head``) only silences the rest of the output:
    the command still finishes and writes its files."""
    import sys

    try:
        print(line, flush=True)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)



#: Entries of an earlier ``simulate`` / ``demo`` run that a new one would not overwrite file by file (decision-log
#: part files have unique names), removed first under ``--force``.
STALE = ("logs", "plots")


def check_out_dir(out: Path, force: bool) -> None:
    """Refuse an unusable ``--out`` before any work is done (a directory that does not exist yet is created and
    removed again: ``os.access`` cannot tell, e.g. for root or under ``/proc``, which holds no new directories)."""
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
    target = out.absolute()
    try:
        target.mkdir(parents=True)
    except OSError as exc:
        problem: str | None = f"--out {out}: cannot be created ({exc.strerror or exc})"
    else:
        problem = None
    made = target
    while made != ancestor:  # below ``ancestor`` nothing existed: remove what was made, deepest first
        with suppress(OSError):  # not made (the failure), or no longer empty (rmdir removes no content)
            made.rmdir()
        made = made.parent
    if problem:
        raise UsageError(problem)


@contextmanager
def writing(out: Path, stale: Sequence[str] = ()) -> Iterator[Path]:
    """Write into ``out`` (checked by :func:`check_out_dir`); on any failure remove what this run created.

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
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # e.g. a name too long, or a parent (/proc) that holds no new directories
        if not existed and top.exists():
            shutil.rmtree(top, ignore_errors=True)
        raise UsageError(f"--out {out}: cannot be created ({exc.strerror or exc})") from None
    try:
        yield out
    except BaseException:
        if not existed and top.exists():
            shutil.rmtree(top, ignore_errors=True)
        raise



def parquet_files(path: Path, flag: str) -> list[Path]:
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


def read_parquet(path: Path, flag: str) -> Any:
    """The Arrow table of a Parquet file, or of the Parquet files of a directory concatenated."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = parquet_files(path, flag)
    try:
        tables = [pq.read_table(f).replace_schema_metadata(None) for f in files]
    except (OSError, pa.ArrowException) as e:
        raise UsageError(f"{flag} {path}: not a readable Parquet file ({one_line(e)})") from None
    try:
        return pa.concat_tables(tables)
    except pa.ArrowInvalid:
        raise UsageError(f"{flag} {path}: its files have different columns; pass one of them") from None


def require(columns: Sequence[str], present: Sequence[str], flag: str, path: Path, why: str = "") -> None:
    missing = [c for c in columns if c not in present]
    if missing:
        more = f" (all missing: {missing})" if len(missing) > 1 else ""
        raise UsageError(f"{flag} {path}: missing column {missing[0]!r}{more}{why}")


def add_log_arguments(parser: argparse.ArgumentParser, outcomes: str) -> None:
    """``--logs``, ``--outcomes`` (described by ``outcomes``), ``--attribution-window`` and ``--now``: the decision
    log and how its delayed outcomes are joined (shared by ``evaluate`` and ``report``)."""
    parser.add_argument("--logs", required=True, type=Path, metavar="PATH",
                        help="decision log: a Parquet file or a directory of Parquet part files")
    parser.add_argument("--outcomes", type=Path, metavar="FILE",
                        help=f"delayed outcomes ({outcomes}): a Parquet file or directory, joined to the logs with "
                        "bandit.attribution.join_outcomes")
    parser.add_argument("--attribution-window", metavar="WINDOW",
                        help="with --outcomes: how long after a decision an outcome counts, e.g. 1D, 48h, 30min")
    parser.add_argument("--now", metavar="TS",
                        help="with --outcomes: the time up to which outcomes are complete, e.g. 2026-12-01T00:00Z "
                        "(default: the latest timestamp in the logs and outcomes, at most the current time); "
                        "decisions whose attribution window is still open at --now are left out")


def add_invalid_rows_argument(parser: argparse.ArgumentParser) -> None:
    """``--invalid-rows quarantine|raise``: what reading ``--logs`` does with rows that break the decision-log contract
    (``invalid_rows`` of ``offline_eval.LoggedData.from_dataframe``; shared by ``evaluate``, ``report`` and ``export``)."""
    parser.add_argument("--invalid-rows", choices=("quarantine", "raise"), default="quarantine",
                        help="rows of --logs that break the decision-log contract (action out of range, propensity "
                        "outside (0, 1] or not probabilities[action], non-finite context or reward, ...): leave them "
                        "out with a note counting them per reason (quarantine, the default; leaving rows out can "
                        "bias the estimates when the logging is at fault) or stop at the first (raise)")


def add_reward_range_argument(parser: argparse.ArgumentParser, what: str) -> None:
    """``--reward-range LOW,HIGH``: the a-priori range of one reward (``what`` says where it is used; shared by
    ``evaluate`` and ``report``)."""
    parser.add_argument("--reward-range", metavar="LOW,HIGH",
                        help="a-priori range of one reward per decision, e.g. 0,19.99 for revenue up to the top "
                        f"price (--reward-range=-12,20 when LOW is negative): {what}; every reward must lie in it "
                        "(default: none stated)")


def parse_range(text: str, flag: str) -> tuple[float, float]:
    """``LOW,HIGH`` as two finite floats with ``LOW < HIGH``; UsageError naming ``flag`` otherwise.

    Examples
    --------
    >>> parse_range("0,19.99", "--reward-range")
    (0.0, 19.99)
    >>> parse_range("1,0", "--reward-range")
    Traceback (most recent call last):
    ...
    bandit._cli_common.UsageError: --reward-range '1,0': expected LOW,HIGH with finite numbers and LOW < HIGH (the range of one value per decision), e.g. 0,19.99
    """
    import math

    low_text, comma, high_text = text.partition(",")
    try:
        low, high = float(low_text), float(high_text)
    except ValueError:
        low = high = math.nan
    if not (comma and math.isfinite(low) and math.isfinite(high) and low < high):
        raise UsageError(f"{flag} {text!r}: expected LOW,HIGH with finite numbers and LOW < HIGH (the range of one "
                         "value per decision), e.g. 0,19.99")
    return low, high


def check_outcome_arguments(args: argparse.Namespace) -> None:
    """UsageError unless ``--attribution-window`` / ``--now`` come with ``--outcomes`` (the window required, both
    parseable)."""
    if args.outcomes is None:
        for flag, value in (("--attribution-window", args.attribution_window), ("--now", args.now)):
            if value is not None:
                raise UsageError(f"{flag} applies to joined outcomes; pass --outcomes FILE as well")
        return
    if args.attribution_window is None:
        raise UsageError(f"--outcomes {args.outcomes}: needs --attribution-window (e.g. 1D, 48h)")
    parse_window(args.attribution_window)
    if args.now is not None:
        parse_now(args.now)


def parse_window(text: str) -> Any:
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


def parse_now(text: str) -> Any:
    import pandas as pd

    try:
        ts = pd.Timestamp(text)
    except (TypeError, ValueError):
        ts = pd.NaT
    if ts is pd.NaT:
        raise UsageError(f"--now {text!r}: expected a timestamp, e.g. 2026-12-01 or 2026-12-01T12:00:00Z")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def read_timestamps(series: pd.Series, flag: str, path: Path) -> Any:
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


def check_event_ids(series: pd.Series, flag: str, path: Path) -> None:
    if series.isna().any():
        raise UsageError(f"{flag} {path}: column 'event_id' has {int(series.isna().sum())} missing values")
    if series.map(lambda e: not isinstance(e, str)).any():
        raise UsageError(f"{flag} {path}: column 'event_id' must hold strings")


def read_outcomes(path: Path, reward_column: str) -> pd.DataFrame:
    """The outcomes table, checked, with the evaluated reward in ``reward``."""
    import pandas as pd

    table = read_parquet(path, "--outcomes")
    if {"context", "propensity"} <= set(table.column_names):
        raise UsageError(
            f"--outcomes {path}: this is a decision log (it has 'context' and 'propensity' columns), not an outcomes "
            "table (event_id, timestamp, metric columns); pass it as --logs"
        )
    require(["event_id", "timestamp"], table.column_names, "--outcomes", path)
    if reward_column in ("event_id", "timestamp"):
        raise UsageError(
            f"--outcomes {path}: column {reward_column!r} identifies the outcome, it is not a metric; name a numeric "
            "metric column (--reward-column)"
        )
    if reward_column not in table.column_names:
        hint = "" if reward_column == "reward" else " (named by --reward-column)"
        raise UsageError(f"--outcomes {path}: missing column {reward_column!r}{hint}")
    if table.num_rows == 0:
        raise UsageError(f"--outcomes {path}: holds no outcomes (0 rows); every decision would get reward 0")
    df = table.select(["event_id", "timestamp", reward_column]).to_pandas()
    check_event_ids(df["event_id"], "--outcomes", path)
    df["timestamp"] = read_timestamps(df["timestamp"], "--outcomes", path)
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


LOG_COLUMNS = ("context", "action", "propensity", "eligible")
JOIN_COLUMNS = ("event_id", "timestamp", "action_name")


def read_decision_log(path: Path, notes: list[str]) -> tuple[Any, list[str]]:
    """(Arrow table, arm list) of ``--logs`` through the one decision-log reader, ``offline_eval.schema.read_log``
    (stray files skipped and duplicate event ids dropped with a note)."""
    from offline_eval.schema import DecisionLogWarning, read_log

    parquet_files(path, "--logs")  # a missing path, an empty file or logs one level down: say so precisely
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DecisionLogWarning)
        try:
            log = read_log(path)
        except (OSError, ValueError) as e:
            skipped = [one_line(w.message) for w in caught if issubclass(w.category, DecisionLogWarning)]
            if len(skipped) == 1 and "': " in skipped[0]:  # "skipping 'FILE': why" -- the one reason
                raise UsageError(f"--logs {path}: {skipped[0].split(chr(39) + ': ', 1)[1]}") from None
            raise UsageError(f"--logs {path}: {one_line(e)}") from None
    notes.extend(one_line(w.message) for w in caught if issubclass(w.category, DecisionLogWarning))
    return log.table, list(log.arms)



def join(df: pd.DataFrame, args: argparse.Namespace, notes: list[str]) -> tuple[pd.DataFrame, str]:
    """Fill the log's ``reward`` from ``--outcomes`` under the attribution window (pending rows: NaN)."""
    from bandit.attribution import join_outcomes

    path: Path = args.logs
    window = parse_window(args.attribution_window)
    outcomes = read_outcomes(args.outcomes, args.reward_column)
    check_event_ids(df["event_id"], "--logs", path)
    df["timestamp"] = read_timestamps(df["timestamp"], "--logs", path)
    if df["event_id"].duplicated().any():
        dupes = df.loc[df["event_id"].duplicated(), "event_id"].unique().tolist()
        raise UsageError(f"--logs {path}: event ids must be unique, duplicated: {dupes[:3]}")
    if args.now is not None:
        now = parse_now(args.now)
        how = "--now"
    else:
        import pandas as pd

        latest = max(df["timestamp"].max(), outcomes["timestamp"].max()) if len(outcomes) else df["timestamp"].max()
        now = min(latest, pd.Timestamp.now(tz="UTC"))
        how = "the latest timestamp in the logs and outcomes, at most the current time; pass --now to change"
    try:
        joined = join_outcomes(df, outcomes, attribution_window=window, now=now)
    except (TypeError, ValueError) as e:
        raise UsageError(f"--outcomes {args.outcomes}: {one_line(e)}") from None
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


class Uniform:
    """Uniform over the eligible arms (a reference target for ``evaluate``)."""

    def action_probabilities(self, X: Any, eligible: np.ndarray) -> np.ndarray:
        e = np.asarray(eligible, dtype=np.float64)
        return e / e.sum(axis=1, keepdims=True)



def load_policy(spec: str) -> tuple[str, Any]:
    """``(name, policy)`` of one ``--policy`` SPEC: ``uniform``, ``PATH`` (named after the file) or ``NAME=PATH``.

    The policy object is returned as loaded (:func:`bandit.load`); offline_eval matches its arms to the logs' by
    name when it is evaluated (errors there name the policy: see :func:`policy_error`).
    """
    import bandit

    if spec == "uniform":
        return "uniform", Uniform()
    name, sep, raw = spec.partition("=")
    if sep and not name.strip():
        raise UsageError(f"--policy {spec!r}: empty NAME; expected NAME=PATH, PATH or 'uniform'")
    if sep and not raw.strip():
        raise UsageError(f"--policy {spec!r}: empty PATH; expected NAME=PATH, PATH or 'uniform'")
    path = Path(raw.strip() if sep else spec)
    name = name.strip() if sep else path.stem
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
        raise UsageError(f"--policy {spec}: cannot load {path}: {one_line(e)}") from None
    return name, policy


def load_policies(specs: Sequence[str], n_features: int) -> dict[str, tuple[str, Any]]:
    """``name -> (spec, policy)`` for every ``--policy``; refuses a repeated name and a feature-count mismatch."""
    out: dict[str, tuple[str, Any]] = {}
    for spec in specs:
        name, policy = load_policy(spec)
        if name in out:
            raise UsageError(f"--policy {spec}: the name {name!r} is used twice; use NAME=PATH")
        want = getattr(policy, "n_features", None)
        if want is not None and want != n_features:
            raise UsageError(
                f"--policy {spec}: the policy uses {want} features, the logs' contexts have {n_features}"
            )
        out[name] = (spec, policy)
    return out


def policy_error(message: str, specs: dict[str, tuple[str, Any]]) -> str | None:
    """The ``--policy SPEC: ...`` line for an error offline_eval raised about one of the policies, or None.

    offline_eval names a target by its quoted key (``policies['fitted'] has no arm ['family'] of the logged arms
    ...``, ``candidates['fitted']...``); the line names the flag and keeps the message (which names the arms).

    Examples
    --------
    >>> specs = {"fitted": ("fitted=p.zip", None)}
    >>> policy_error("policies['fitted'] has no arm ['family'] of the logged arms", specs)
    "--policy fitted=p.zip: the policy has no arm ['family'] of the logged arms"
    >>> policy_error("data has 0 rows", specs) is None
    True
    """
    for name, (spec, _) in specs.items():
        if repr(name) in message:  # offline_eval quotes the names it blames (policies['x'], candidates['x'])
            for key in (f"policies[{name!r}]", f"candidates[{name!r}]"):
                message = message.replace(key + ".", "the policy's ").replace(key, "the policy")
            return f"--policy {spec}: {one_line(message)}"
    return None

