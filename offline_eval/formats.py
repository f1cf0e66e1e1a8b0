"""Vowpal Wabbit log interop: decision logs to DSJSON and ``cb_adf`` text, and DSJSON back into :class:`LoggedData`.

For teams moving between a VW-based decision service (Azure Personalizer, the Decision Service) and this library:
:func:`write_dsjson` / :func:`write_cb_adf` export decision logs whose rewards are joined, so that VW trains on them
(``vw --dsjson --cb_explore_adf -d FILE`` or ``vw --cb_explore_adf -d FILE``), and :func:`read_dsjson` imports a
decision service's DSJSON history so that offline_eval can evaluate candidate policies on it.

DSJSON, one decision per line
-----------------------------
=========================  =====================================================================================
DSJSON field               decision-log value
=========================  =====================================================================================
``_label_cost``            ``-reward`` (VW minimises cost); absent when the reward is missing (import only)
``_label_probability``     ``propensity``
``_label_Action``          1-based position of the chosen arm in ``c._multi``
``_labelIndex``            0-based position of the chosen arm in ``c._multi`` (``_label_Action - 1``)
``Timestamp``              ``timestamp`` as ``YYYY-MM-DDTHH:MM:SS.fffffffZ`` (UTC; read to the microsecond)
``Version``                ``"1"``
``EventId``                ``event_id``
``a``                      1-based positions in ``c._multi``: the chosen arm first, then the others in order
``p``                      the logging probability of each arm of ``a``, in the order of ``a``
``c.<shared namespace>``   the context: ``{"0": x[0], ..., "d-1": x[d-1]}`` (every feature, zeros included)
``c._multi``               one object per **eligible** arm, in arm-index order: ``{"_tag": <arm name>,
                           "<action namespace>": {"id<k>": 1, "f<i>": <Arm.features[i]>...}}``
``VWState.m``              ``policy_version`` (the model that decided)
=========================  =====================================================================================

Mapping decisions, and why:

* **Eligibility.** ``_multi`` is the action set VW sees, so it holds exactly the arms that were eligible (an
  eligible arm of logging probability 0 is kept, with 0 in ``p``); ineligible arms are left out. VW then never
  learns or predicts over an arm the user could not be offered, as :class:`bandit.VWPolicy` shows VW only the
  eligible arms; and the import recovers the mask exactly (eligible = present in ``_multi``, probability 0 for the
  others), which offline_eval needs to keep targets on the eligible arms.
* **Arm identity.** ``_tag`` names the arm (the decision service's action id; VW ignores it when learning). The
  action namespace (default ``A``) holds ``id<k>`` (k the arm's index) and the arm's ``features`` as ``f<i>``, and
  the shared namespace (default ``U``) holds ``x[j]`` as feature ``j``: exactly the example layout of
  :class:`bandit.VWPolicy`, so a model VW trains on an export (with the policy's options,
  :meth:`bandit.VWPolicy.vw_arguments`) is a VWPolicy model (:meth:`bandit.VWPolicy.from_vw_model`).
* **Missing rewards.** Decisions without an outcome (reward null: not joined yet, or still inside the attribution
  window) are left out of an export, counted in :class:`ExportSummary` and a ``UserWarning``; never written as
  reward 0. ``missing_reward="raise"`` refuses instead.
* **Numbers.** DSJSON carries float64 values exactly (shortest round-trip repr): contexts, rewards, propensities and
  probabilities survive an export and import bit for bit; timestamps to the microsecond. VW itself reads them as
  float32, so contexts above 1e38 in magnitude are refused.

``cb_adf`` text, one decision per block (blank line after each)::

    shared |U 0:<x0> 1:<x1> ...          (features written as 0 left out)
    |A id<k>                             (one line per eligible arm, arm-index order)
    0:<cost>:<propensity> |A id<k>       (the chosen arm's line carries the label)

Numbers in text are written with nine significant digits (``%.8e``, what VW's float32 parser reads exactly; below
1e-29 in magnitude as 0), as :class:`bandit.VWPolicy` writes them. Arm names and event ids are not in the text
format.

Import (untrusted input)
------------------------
:func:`read_dsjson` reads a file line by line: a line longer than ``max_line_bytes`` is skipped without being held
in memory; a line that is not valid UTF-8 or JSON, or that breaks the DSJSON conventions above (``a`` not a
permutation of ``1..len(_multi)``, ``p`` not a distribution, ``_label_*`` disagreeing with ``a`` / ``p``, a
non-finite number, an arm twice in one action set, a duplicate ``EventId``, an arm or feature beyond the limits)
is **quarantined**: listed with its line number and reason in :attr:`DSJSONImport.rejected`, never fatal to the
other lines. No code runs and nothing is unpickled; JSON nesting depth and sizes are bounded.

* **Arms.** An action is identified by its ``_tag`` or, without one, by its features (canonical JSON of the
  ``_multi`` object). The arms are the identities seen, in one order that keeps every line's ``_multi`` order
  where the lines agree (ties by first appearance; an export's arm-index order comes back), or ``arms=`` (then a
  line offering another arm is quarantined). Action sets may differ between lines: each line's set is its
  eligibility mask.
* **Context.** The shared features (``c`` without ``_multi`` and ``_``-prefixed keys, which VW ignores too) are
  flattened to named columns: ``namespace.feature`` for numbers (``true`` is 1, ``false`` and ``null`` are absent,
  as in VW), ``namespace.feature=value`` (value 1) for strings, ``namespace.feature[i]`` for arrays of numbers.
  A feature absent from a line is 0, VW's meaning. Columns are in order of first appearance, or ``features=``.
* **Other fields.** ``o``, ``pdrop``, ``_original_label_cost`` and any other field are not read.
* **Rewards.** ``reward = -_label_cost``; a line without ``_label_cost`` has no outcome yet (``missing_reward``).
  ``p`` is the full logging distribution over the line's action set and ``p[0]`` the propensity; a ``p`` that sums
  to 1 only within ``1e-4`` (float32 logs) is renormalised.

Examples
--------
>>> import tempfile, numpy as np
>>> from offline_eval import LoggedData
>>> data = LoggedData([[0.5, -1.0], [2.0, 0.0]], action=[1, 0], reward=[3.0, 0.0], propensity=[0.6, 0.5],
...                   probabilities=[[0.4, 0.6], [0.5, 0.5]], eligible=[[True, True], [True, True]],
...                   event_id=["req-1", "req-2"], action_names=["individual", "duo"])
>>> tmp = tempfile.TemporaryDirectory()
>>> write_dsjson(data, tmp.name + "/log.json").n_written
2
>>> import json
>>> line = json.loads(open(tmp.name + "/log.json").readline())
>>> line["_label_cost"], line["_label_probability"], line["_label_Action"], line["_labelIndex"], line["EventId"]
(-3.0, 0.6, 2, 1, 'req-1')
>>> line["a"], line["p"], line["c"]["U"]
([2, 1], [0.6, 0.4], {'0': 0.5, '1': -1.0})
>>> line["c"]["_multi"]
[{'_tag': 'individual', 'A': {'id0': 1}}, {'_tag': 'duo', 'A': {'id1': 1}}]
>>> back = read_dsjson(tmp.name + "/log.json").data
>>> back.action_names, back.reward.tolist(), back.probabilities.tolist()
(['individual', 'duo'], [3.0, 0.0], [[0.4, 0.6], [0.5, 0.5]])
>>> tmp.cleanup()
"""

from __future__ import annotations

import heapq
import json
import math
import os
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import pandas as pd

from offline_eval import schema as S
from offline_eval._files import atomic_file
from offline_eval.data import InvalidRows, LoggedData, Quarantine

__all__ = [
    "DSJSONImport",
    "DSJSONWarning",
    "ExportSummary",
    "read_dsjson",
    "write_cb_adf",
    "write_dsjson",
]

MissingReward = Literal["drop", "raise"]

#: Default bound on one DSJSON line (bytes): a decision with a few hundred actions and features fits easily.
MAX_LINE_BYTES = 1 << 20
#: Default bounds on the distinct arms and shared-feature columns an import builds.
MAX_ACTIONS = 1_000
MAX_FEATURES = 10_000
#: Deepest JSON nesting accepted in a line (VW's own namespaces nest two or three levels).
MAX_DEPTH = 32
#: ``p`` may miss 1 by this much (float32 logs) and is then renormalised; beyond it the line is quarantined.
RENORMALISE_ATOL = 1e-4
#: Largest magnitude VW represents (its features are float32).
MAX_ABS_VW_NUMBER = 1e38
#: Text numbers below this magnitude are written as 0 (VW's float32 text parser cannot scale them).
MIN_ABS_VW_TEXT_NUMBER = 1e-29
#: Longest part of a quarantined line kept in the rejected table.
_SNIPPET = 120
_TIMESTAMP = re.compile(r"(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})?")


class DSJSONWarning(UserWarning):
    """A DSJSON import quarantined lines (see :attr:`DSJSONImport.rejected`)."""


@dataclass(frozen=True)
class ExportSummary:
    """What an export wrote.

    Attributes
    ----------
    path : pathlib.Path
        The written file.
    n_written : int
        Decisions written.
    n_missing_reward : int
        Decisions left out because their reward is missing (outcome not joined, or still inside the window).
    format : str
        ``"dsjson"`` or ``"cb_adf"``.
    quarantined : Quarantine
        Decisions left out because they break the decision-log contract (``invalid_rows="quarantine"``; see
        :attr:`offline_eval.LoggedData.quarantined`); empty for a LoggedData source.
    """

    path: Path
    n_written: int
    n_missing_reward: int
    format: str
    quarantined: Quarantine = field(default_factory=Quarantine)


@dataclass(frozen=True)
class DSJSONImport:
    """The result of :func:`read_dsjson`.

    Attributes
    ----------
    data : LoggedData
        The accepted decisions with an outcome, in file order.
    rejected : pandas.DataFrame
        One row per quarantined line: ``line`` (1-based), ``reason``, ``text`` (the line's start).
    n_lines : int
        Non-blank lines read.
    n_missing_reward : int
        Valid lines without ``_label_cost`` (no outcome), left out under ``missing_reward="drop"``.
    features : list of str
        Names of the context columns of ``data`` (see the module docstring).
    """

    data: LoggedData
    rejected: pd.DataFrame
    n_lines: int
    n_missing_reward: int
    features: list[str]


# ----------------------------------------------------------------------------------------------------------------
# export
# ----------------------------------------------------------------------------------------------------------------


def _check_missing_reward(missing_reward: object) -> None:
    if missing_reward not in ("drop", "raise"):
        raise ValueError(f"missing_reward must be 'drop' or 'raise', got {missing_reward!r}")


def _as_logged(source: Any, missing_reward: str, invalid_rows: InvalidRows) -> tuple[LoggedData, int]:
    """The decisions of ``source`` that have a reward, as LoggedData (rows that break the log contract quarantined
    or refused by ``invalid_rows``), and the number left out without a reward."""
    if isinstance(source, LoggedData):
        return source, 0
    if isinstance(source, str | os.PathLike):
        table, arms = S.read_log(source)
        frame = table.to_pandas()
        frame.attrs["arms"] = arms
        source = frame
    if not isinstance(source, pd.DataFrame):
        raise TypeError(
            f"source must be a LoggedData, a decision-log DataFrame or a decision-log path, got {type(source).__name__}"
        )
    missing_cols = [c for c in (S.CONTEXT, S.ACTION, S.PROPENSITY, S.PROBABILITIES, S.REWARD) if c not in source]
    if missing_cols:
        raise ValueError(
            f"source has no column(s) {missing_cols}; pass a decision log (DecisionLog.read(), join_outcomes(...)) "
            "whose rewards are joined"
        )
    reward = pd.to_numeric(source[S.REWARD], errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
    missing = np.isnan(reward)
    n_missing = int(missing.sum())
    if n_missing and missing_reward == "raise":
        raise ValueError(
            f"reward is missing in {n_missing} of {len(reward)} decisions (outcome not joined yet, or still inside "
            'its attribution window); join the outcomes first or pass missing_reward="drop" to leave them out'
        )
    kept = source.loc[~missing] if n_missing else source
    data = LoggedData.from_dataframe(kept, missing_reward="raise", invalid_rows=invalid_rows)
    return data, n_missing


def _arm_features(arms: Sequence[Any] | None, names: list[str]) -> list[list[float]]:
    """Per arm (index order), its features from ``arms`` (names or objects with ``name`` / ``features``)."""
    if arms is None:
        return [[] for _ in names]
    if isinstance(arms, str) or not isinstance(arms, Sequence):
        raise TypeError(f"arms must be a sequence of arm names or Arm objects, got {type(arms).__name__}")
    given = [a if isinstance(a, str) else getattr(a, "name", None) for a in arms]
    if given != names:
        raise ValueError(f"arms must name the data's arms in index order {names}, got {given}")
    out = []
    for arm in arms:
        feats = [] if isinstance(arm, str) else list(getattr(arm, "features", None) or [])
        values = [float(v) for v in feats]
        if not all(math.isfinite(v) and abs(v) <= MAX_ABS_VW_NUMBER for v in values):
            raise ValueError(f"arm {getattr(arm, 'name', arm)!r} has features that are not finite numbers up to 1e38")
        out.append(values)
    return out


def _check_vw_range(data: LoggedData) -> None:
    ctx = data.context
    if ctx.size and float(np.abs(ctx).max()) > MAX_ABS_VW_NUMBER:
        row = int(np.flatnonzero((np.abs(ctx) > MAX_ABS_VW_NUMBER).any(axis=1))[0])
        raise ValueError(
            f"context values are too large for Vowpal Wabbit (row {row}): VW stores features as float32 (|value| <= "
            "1e38); standardise the features before exporting"
        )
    if data.reward.size and float(np.abs(data.reward).max()) > MAX_ABS_VW_NUMBER:
        row = int(np.flatnonzero(np.abs(data.reward) > MAX_ABS_VW_NUMBER)[0])
        raise ValueError(f"reward[{row}] = {data.reward[row]:g} is too large for Vowpal Wabbit's float32 costs")


def _timestamp_text(data: LoggedData) -> list[str] | None:
    if data.timestamp is None:
        return None
    text = np.datetime_as_string(data.timestamp.astype("datetime64[us]"), unit="us")
    return [f"{t}0Z" for t in text.tolist()]


def _action_sets(data: LoggedData) -> np.ndarray:
    """(n, K) bool: the arms in each decision's action set (its eligibility mask; all arms when not recorded)."""
    if data.eligible is not None:
        return data.eligible
    return np.ones((data.n, data.n_actions), dtype=bool)


def _export(
    source: Any, path: str | os.PathLike[str], arms: Sequence[Any] | None, missing_reward: str, fmt: str,
    lines: Any, invalid_rows: InvalidRows = "quarantine",
) -> ExportSummary:
    _check_missing_reward(missing_reward)
    data, n_missing = _as_logged(source, missing_reward, invalid_rows)
    if data.probabilities is None:
        raise ValueError(
            "the data has no logging probabilities (n, K); DSJSON and cb_adf need the distribution over each action "
            "set: build the LoggedData with probabilities= (decision logs always have them)"
        )
    arm_feats = _arm_features(arms, data.action_names)
    _check_vw_range(data)
    target = Path(path)
    with atomic_file(target, "w", encoding="utf-8", newline="\n") as fh:
        for text in lines(data, arm_feats):
            fh.write(text)
    if n_missing:
        warnings.warn(
            f"left out {n_missing} of {n_missing + data.n} decisions whose reward is missing (outcome not joined yet "
            f"or still inside the attribution window); wrote {data.n}",
            UserWarning,
            stacklevel=3,
        )
    return ExportSummary(target, data.n, n_missing, fmt, data.quarantined)


def _dsjson_lines(
    data: LoggedData, arm_feats: list[list[float]], shared_namespace: str, action_namespace: str
) -> Iterator[str]:
    names = data.action_names
    multi_items = []
    for k, name in enumerate(names):
        feats: dict[str, float] = {f"id{k}": 1}
        feats.update({f"f{i}": v for i, v in enumerate(arm_feats[k]) if v != 0.0})
        multi_items.append({"_tag": name, action_namespace: feats})
    sets = _action_sets(data)
    P = data.probabilities
    assert P is not None  # checked by the caller
    stamps = _timestamp_text(data)
    ids = None if data.event_id is None else data.event_id.tolist()
    versions = None if data.policy_version is None else data.policy_version.tolist()
    context = data.context.tolist()
    actions = data.action.tolist()
    rewards = data.reward.tolist()
    propensities = data.propensity.tolist()
    for i in range(data.n):
        ks = np.flatnonzero(sets[i]).tolist()
        pos = ks.index(actions[i])
        order = [pos] + [j for j in range(len(ks)) if j != pos]
        probs = P[i, ks].tolist()
        line: dict[str, Any] = {
            "_label_cost": -rewards[i],
            "_label_probability": propensities[i],
            "_label_Action": pos + 1,
            "_labelIndex": pos,
        }
        if stamps is not None:
            line["Timestamp"] = stamps[i]
        line["Version"] = "1"
        if ids is not None:
            line["EventId"] = str(ids[i])
        line["a"] = [j + 1 for j in order]
        line["c"] = {
            shared_namespace: {str(j): v for j, v in enumerate(context[i])},
            "_multi": [multi_items[k] for k in ks],
        }
        line["p"] = [probs[j] for j in order]
        if versions is not None:
            line["VWState"] = {"m": str(versions[i])}
        yield json.dumps(line, separators=(",", ":"), allow_nan=False) + "\n"  # ASCII: non-ASCII text escaped


def _namespace(name: object, what: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"{what} must be a str, got {type(name).__name__}")
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]{0,63}", name):
        raise ValueError(f"{what} must be a VW namespace name (a letter, then letters or digits), got {name!r}")
    return name


def write_dsjson(
    source: LoggedData | pd.DataFrame | str | os.PathLike[str],
    path: str | os.PathLike[str],
    *,
    arms: Sequence[Any] | None = None,
    missing_reward: MissingReward = "drop",
    shared_namespace: str = "U",
    action_namespace: str = "A",
    invalid_rows: InvalidRows = "quarantine",
) -> ExportSummary:
    """Write decisions with their rewards as VW decision-service JSON (DSJSON), one decision per line.

    Fields and mapping rules are in the module docstring. The file is written to a temporary name and renamed
    into place (never half-written); about 60 us per decision for d = 23, K = 7 (``bench/vwio_bench.py``).

    Parameters
    ----------
    source : LoggedData, pandas.DataFrame or path
        The decisions: a :class:`LoggedData` (with ``probabilities``), a decision-log DataFrame whose rewards are
        joined (``bandit.attribution.join_outcomes(...)``; null rewards are missing), or a decision-log directory /
        Parquet file (read with :func:`offline_eval.schema.read_log`; its ``reward`` column as it is).
    path : str or path-like
        The file to write (parent directories are created; an existing file is replaced).
    arms : sequence of str or Arm, optional
        The arms in index order (names must match the data's); their ``features`` become action features ``f<i>``.
    missing_reward : {"drop", "raise"}
        Decisions without a reward are left out with a ``UserWarning`` and counted (``"drop"``), or refused.
    shared_namespace, action_namespace : str
        VW namespaces of the context and of the action features (defaults match :class:`bandit.VWPolicy`).
    invalid_rows : {"quarantine", "raise"}
        For a DataFrame or path source: decisions that break the decision-log contract are left out, counted in
        ``ExportSummary.quarantined`` and reported in one warning (``"quarantine"``), or refused (``"raise"``), as
        :meth:`offline_eval.LoggedData.from_dataframe` does.

    Returns
    -------
    ExportSummary

    Raises
    ------
    ValueError
        No probabilities, a reward missing under ``"raise"``, contexts VW cannot represent, ``arms`` not matching.
    """
    shared = _namespace(shared_namespace, "shared_namespace")
    action = _namespace(action_namespace, "action_namespace")
    if shared == action:
        raise ValueError(f"shared_namespace and action_namespace must differ, both are {shared!r}")
    return _export(
        source, path, arms, missing_reward, "dsjson", lambda d, f: _dsjson_lines(d, f, shared, action), invalid_rows
    )


def _vw_text_nonzero(value: float) -> bool:
    return abs(value) >= MIN_ABS_VW_TEXT_NUMBER


def _vw_text_number(value: float) -> str:
    return f"{value:.8e}" if _vw_text_nonzero(value) else "0"


def _cb_adf_lines(data: LoggedData, arm_feats: list[list[float]]) -> Iterator[str]:
    action_lines = []
    for k in range(data.n_actions):
        feats = "".join(f" f{i}:{_vw_text_number(v)}" for i, v in enumerate(arm_feats[k]) if _vw_text_nonzero(v))
        action_lines.append(f"|A id{k}{feats}")
    sets = _action_sets(data)
    context = data.context.tolist()
    for i in range(data.n):
        shared = " ".join(f"{j}:{_vw_text_number(v)}" for j, v in enumerate(context[i]) if _vw_text_nonzero(v))
        block = [f"shared |U {shared}".rstrip()]
        chosen = int(data.action[i])
        label = f"0:{_vw_text_number(-float(data.reward[i]))}:{_vw_text_number(float(data.propensity[i]))} "
        for k in np.flatnonzero(sets[i]).tolist():
            block.append(label + action_lines[k] if k == chosen else action_lines[k])
        yield "\n".join(block) + "\n\n"


def write_cb_adf(
    source: LoggedData | pd.DataFrame | str | os.PathLike[str],
    path: str | os.PathLike[str],
    *,
    arms: Sequence[Any] | None = None,
    missing_reward: MissingReward = "drop",
    invalid_rows: InvalidRows = "quarantine",
) -> ExportSummary:
    """Write decisions with their rewards as VW ``cb_adf`` text (``vw --cb_explore_adf -d FILE``).

    One multi-line example per decision (layout in the module docstring): the shared context line, one line per
    eligible arm (``|A id<k>`` plus ``f<i>`` arm features), the chosen arm's line labelled
    ``0:<cost>:<propensity>`` with ``cost = -reward``, and a blank line. Parameters, return value and errors as
    :func:`write_dsjson`.

    Examples
    --------
    >>> import tempfile
    >>> from offline_eval import LoggedData
    >>> data = LoggedData([[0.5, 0.0]], action=[1], reward=[2.0], propensity=[0.75],
    ...                   probabilities=[[0.25, 0.75, 0.0]], eligible=[[True, True, False]])
    >>> tmp = tempfile.TemporaryDirectory()
    >>> _ = write_cb_adf(data, tmp.name + "/log.txt")
    >>> print(open(tmp.name + "/log.txt").read())
    shared |U 0:5.00000000e-01
    |A id0
    0:-2.00000000e+00:7.50000000e-01 |A id1
    <BLANKLINE>
    <BLANKLINE>
    >>> tmp.cleanup()
    """
    return _export(source, path, arms, missing_reward, "cb_adf", _cb_adf_lines, invalid_rows)


# ----------------------------------------------------------------------------------------------------------------
# import
# ----------------------------------------------------------------------------------------------------------------


class _Reject(Exception):
    """A line breaks the format: quarantined with this reason."""


def _finite(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Reject(f"{what} must be a number, got {type(value).__name__}")
    try:
        out = float(value)
    except OverflowError:  # an integer beyond float64
        out = math.inf
    if not math.isfinite(out):
        raise _Reject(f"{what} must be finite, got {str(value)[:30]}")
    return out


def _index(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not -(2**31) <= value < 2**31:
        raise _Reject(f"{what} must be an integer, got {str(value)[:30]}")
    if value != int(value):
        raise _Reject(f"{what} must be an integer, got {value!r}")
    return int(value)


def _depth_ok(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return False
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return True


def _flatten(value: Any, prefix: str, out: dict[str, float]) -> None:
    """VW's reading of a JSON feature value, as named columns (module docstring); ``_`` keys are ignored."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key.startswith("_"):
                continue
            _flatten(item, f"{prefix}.{key}" if prefix else key, out)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, dict | list):
                _flatten(item, prefix, out)
            else:
                _flatten(item, f"{prefix}[{i}]", out)
    elif isinstance(value, bool):
        if value:
            out[prefix] = out.get(prefix, 0.0) + 1.0
    elif isinstance(value, int | float):
        number = _finite(value, f"feature {prefix!r}")
        out[prefix] = out.get(prefix, 0.0) + number
    elif isinstance(value, str):
        name = f"{prefix}={value}"
        out[name] = out.get(name, 0.0) + 1.0
    # null: absent


def _parse_timestamp(value: Any) -> int:
    """Microseconds since the epoch of a DSJSON ``Timestamp`` (digits beyond the microsecond are truncated)."""
    if not isinstance(value, str) or len(value) > 40:
        raise _Reject(f"Timestamp must be an ISO 8601 string, got {str(value)[:40]!r}")
    m = _TIMESTAMP.fullmatch(value)
    if m is None:
        raise _Reject(f"Timestamp {value!r} is not YYYY-MM-DDTHH:MM:SS[.fraction][Z|+hh:mm]")
    date, clock, fraction, zone = m.groups()
    try:
        local = int(np.datetime64(f"{date}T{clock}", "us").astype(np.int64))
    except ValueError:
        raise _Reject(f"Timestamp {value!r} is not a valid date and time") from None
    offset = 0
    if zone not in (None, "Z"):
        offset = (int(zone[1:3]) * 60 + int(zone[4:6])) * 60_000_000 * (1 if zone[0] == "+" else -1)
    return local - offset + int((fraction or "0")[:6].ljust(6, "0"))


@dataclass
class _Row:
    line: int
    features: dict[str, float]
    arms: list[str]
    chosen: int
    probs: list[float]
    reward: float
    timestamp_us: int | None
    event_id: str | None
    version: str | None


def _action_identity(item: Any, position: int) -> str:
    if not isinstance(item, dict):
        raise _Reject(f"c._multi[{position}] must be an object, got {type(item).__name__}")
    tag = item.get("_tag")
    if tag is not None:
        if not isinstance(tag, str) or not tag or len(tag) > S.MAX_EVENT_ID_LENGTH:
            raise _Reject(f"c._multi[{position}]._tag must be a non-empty string of at most 256 characters")
        return tag
    features: dict[str, float] = {}
    _flatten(item, "", features)  # checks its numbers
    return json.dumps(item, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _parse_line(obj: Any, number: int, tol: float) -> _Row:
    if not isinstance(obj, dict):
        raise _Reject(f"a DSJSON line must be a JSON object, got {type(obj).__name__}")
    context = obj.get("c")
    if not isinstance(context, dict):
        raise _Reject("missing 'c' (the context object with '_multi')")
    if "_slots" in context:
        raise _Reject("'c._slots' marks a CCB or slates decision; this reader takes contextual-bandit (cb_adf) ones")
    multi = context.get("_multi")
    if not isinstance(multi, list) or not multi:
        raise _Reject("'c._multi' must be a non-empty array of actions (this reader takes cb_adf decisions)")
    arms = [_action_identity(item, j) for j, item in enumerate(multi)]
    if len(set(arms)) != len(arms):
        dup = next(a for a in arms if arms.count(a) > 1)
        raise _Reject(f"action {dup[:60]!r} appears twice in c._multi")
    m = len(multi)
    ranking = obj.get("a")
    probs = obj.get("p")
    if not isinstance(ranking, list) or not isinstance(probs, list):
        raise _Reject("'a' and 'p' must be arrays (action ids and their probabilities)")
    if len(ranking) != m or len(probs) != m:
        raise _Reject(f"'a' ({len(ranking)}) and 'p' ({len(probs)}) must list each of the {m} actions of c._multi")
    ids = [_index(v, "a[]") for v in ranking]
    if sorted(ids) != list(range(1, m + 1)):
        raise _Reject(f"'a' must be the 1-based action ids 1..{m} in some order, got {ranking[:10]}")
    p = [_finite(v, "p[]") for v in probs]
    if min(p) < 0.0 or max(p) > 1.0:
        raise _Reject("'p' entries must lie in [0, 1]")
    total = math.fsum(p)
    if abs(total - 1.0) > tol:
        raise _Reject(f"'p' must sum to 1, sums to {total:.9g}")
    if abs(total - 1.0) > S.PROBABILITY_ATOL:
        p = [v / total for v in p]
    chosen = ids[0] - 1
    if p[0] <= 0.0:
        raise _Reject("the chosen action (a[0]) has probability p[0] = 0")
    if "_label_Action" in obj and _index(obj["_label_Action"], "_label_Action") != ids[0]:
        raise _Reject(f"_label_Action {obj['_label_Action']!r} is not a[0] = {ids[0]}")
    if "_labelIndex" in obj and _index(obj["_labelIndex"], "_labelIndex") != chosen:
        raise _Reject(f"_labelIndex {obj['_labelIndex']!r} is not a[0] - 1 = {chosen}")
    if "_label_probability" in obj:
        label_p = _finite(obj["_label_probability"], "_label_probability")
        if abs(label_p - p[0]) > tol:
            raise _Reject(f"_label_probability {label_p!r} differs from p[0] = {p[0]!r}")
    reward = math.nan
    if "_label_cost" in obj:
        reward = -_finite(obj["_label_cost"], "_label_cost")
        if reward == 0.0:
            reward = 0.0  # -(-0.0)
    features: dict[str, float] = {}
    for key, value in context.items():
        if not key.startswith("_"):
            _flatten(value, key, features)
    stamp = obj.get("Timestamp")
    event_id = obj.get("EventId")
    if event_id is not None:
        try:
            S.check_event_ids([event_id], "EventId")
        except (TypeError, ValueError) as err:
            raise _Reject(str(err).replace("EventId[0] = ", "EventId ")) from None
    state = obj.get("VWState")
    version = state.get("m") if isinstance(state, dict) else None
    if version is not None and (not isinstance(version, str) or len(version) > 1024):
        raise _Reject("VWState.m must be a string of at most 1024 characters")
    probs_by_arm = [0.0] * m
    for rank, action_id in enumerate(ids):
        probs_by_arm[action_id - 1] = p[rank]
    return _Row(
        line=number,
        features=features,
        arms=arms,
        chosen=chosen,
        probs=probs_by_arm,
        reward=reward,
        timestamp_us=None if stamp is None else _parse_timestamp(stamp),
        event_id=event_id,
        version=version,
    )


def _lines(fh: IO[bytes], max_line_bytes: int) -> Iterator[tuple[int, bytes | None]]:
    """(1-based number, content) of each line; content None for a line over ``max_line_bytes`` (never held)."""
    number = 0
    while True:
        chunk = fh.readline(max_line_bytes + 1)
        if not chunk:
            return
        number += 1
        if len(chunk) > max_line_bytes and not chunk.endswith(b"\n"):
            while chunk and not chunk.endswith(b"\n"):
                chunk = fh.readline(1 << 16)
            yield number, None
            continue
        yield number, chunk


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _names(value: Sequence[str] | None, name: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise TypeError(f"{name} must be a sequence of str, got {type(value).__name__}")
    out = list(value)
    if not all(isinstance(v, str) for v in out) or len(set(out)) != len(out) or not out:
        raise ValueError(f"{name} must be non-empty, unique strings, got {out[:10]}")
    return out


def read_dsjson(
    path: str | os.PathLike[str],
    *,
    arms: Sequence[str] | None = None,
    features: Sequence[str] | None = None,
    missing_reward: MissingReward = "drop",
    max_line_bytes: int = MAX_LINE_BYTES,
    max_actions: int = MAX_ACTIONS,
    max_features: int = MAX_FEATURES,
    probability_tolerance: float = RENORMALISE_ATOL,
) -> DSJSONImport:
    """Read a VW decision-service JSON (DSJSON) log of contextual-bandit decisions into :class:`LoggedData`.

    The file is untrusted: every line is checked and a bad one is quarantined (listed in ``rejected`` with its
    line number and reason, and reported in one :class:`DSJSONWarning`), never fatal to the rest. Mapping rules are
    in the module docstring.

    About 110 us per line for d = 23, K = 7 (``bench/vwio_bench.py``).

    Parameters
    ----------
    path : str or path-like
        The DSJSON file (one JSON object per line; blank lines are skipped).
    arms : sequence of str, optional
        The arm names (action ``_tag`` values) in index order; a line offering another arm is quarantined.
        Default: the arms seen, in an order consistent with the lines' ``_multi`` orders (module docstring).
    features : sequence of str, optional
        The context columns, in order (flattened names such as ``"U.0"``; others are ignored; absent ones are 0).
        Default: every shared feature seen, in order of first appearance.
    missing_reward : {"drop", "raise"}
        Valid lines without ``_label_cost`` (no outcome) are left out and counted (``"drop"``), or raise.
    max_line_bytes, max_actions, max_features : int
        Bounds on a line's size, on the distinct arms and on the distinct context columns; lines beyond them are
        quarantined.
    probability_tolerance : float
        How far ``p`` may sum from 1 (then renormalised) and ``_label_probability`` differ from ``p[0]``.

    Returns
    -------
    DSJSONImport
        ``data`` (LoggedData with ``probabilities``, ``eligible``, and ``timestamp`` / ``event_id`` /
        ``policy_version`` when the lines carry ``Timestamp`` / ``EventId`` / ``VWState.m``), ``rejected``,
        ``n_lines``, ``n_missing_reward``, ``features``.

    Raises
    ------
    ValueError
        The file does not exist, or no line is left to build data from (the message gives the first reasons);
        a reward is missing under ``missing_reward="raise"``.
    """
    _check_missing_reward(missing_reward)
    max_line_bytes = _positive_int(max_line_bytes, "max_line_bytes")
    max_actions = _positive_int(max_actions, "max_actions")
    max_features = _positive_int(max_features, "max_features")
    tol = float(probability_tolerance)
    if not 0.0 <= tol < 0.5:
        raise ValueError(f"probability_tolerance must lie in [0, 0.5), got {probability_tolerance!r}")
    arm_list = _names(arms, "arms")
    feature_list = _names(features, "features")
    source = Path(path)
    if not source.is_file():
        raise ValueError(f"path {str(source)!r} is not a file; pass a DSJSON file (one decision per line)")

    arm_index: dict[str, int] = {} if arm_list is None else {a: i for i, a in enumerate(arm_list)}
    feature_index: dict[str, int] = {} if feature_list is None else {f: i for i, f in enumerate(feature_list)}
    rows: list[_Row] = []
    rejected: list[tuple[int, str, str]] = []
    seen_ids: set[str] = set()
    n_lines = 0
    with open(source, "rb") as fh:
        for number, raw in _lines(fh, max_line_bytes):
            if raw is None:
                n_lines += 1
                rejected.append((number, f"line longer than max_line_bytes={max_line_bytes}", ""))
                continue
            if not raw.strip():
                continue
            n_lines += 1
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                rejected.append((number, f"not UTF-8 text (byte {err.start})", ""))
                continue
            try:
                try:
                    obj = json.loads(text, parse_constant=_no_constant)
                except (ValueError, RecursionError) as err:
                    raise _Reject(f"not valid JSON ({' '.join(str(err).split())[:100]})") from None
                if not _depth_ok(obj, MAX_DEPTH):
                    raise _Reject(f"JSON nested deeper than {MAX_DEPTH} levels")
                row = _parse_line(obj, number, tol)
                new_arms = [a for a in row.arms if a not in arm_index]
                if new_arms and arm_list is not None:
                    raise _Reject(f"action {new_arms[0][:60]!r} is not one of arms={arm_list[:10]}")
                if len(arm_index) + len(new_arms) > max_actions:
                    raise _Reject(f"more than max_actions={max_actions} distinct actions in the file")
                new_feats = [f for f in row.features if f not in feature_index]
                if feature_list is None and len(feature_index) + len(new_feats) > max_features:
                    raise _Reject(f"more than max_features={max_features} distinct context features in the file")
                if row.event_id is not None:
                    if row.event_id in seen_ids:
                        raise _Reject(f"EventId {row.event_id[:60]!r} already appeared on an earlier line")
                    seen_ids.add(row.event_id)
            except _Reject as err:
                rejected.append((number, str(err), text[:_SNIPPET]))
                continue
            for a in new_arms:
                arm_index[a] = len(arm_index)
            if feature_list is None:
                for f in new_feats:
                    feature_index[f] = len(feature_index)
            rows.append(row)

    rows, late = _consistent_optional_fields(rows)
    rejected.extend((r.line, why, "") for r, why in late)
    rejected.sort()
    table = pd.DataFrame(rejected, columns=["line", "reason", "text"])
    if not rows:
        first = "; ".join(f"line {n}: {why}" for n, why, _ in rejected[:3])
        raise ValueError(f"{str(source)!r} holds no valid DSJSON decision ({n_lines} lines; {first or 'empty'})")
    rewards = np.array([r.reward for r in rows])
    missing = np.isnan(rewards)
    n_missing = int(missing.sum())
    if n_missing and missing_reward == "raise":
        raise ValueError(
            f"{n_missing} of {len(rows)} valid lines have no _label_cost (no outcome yet); pass "
            'missing_reward="drop" to leave them out'
        )
    if len(table):
        shown = "; ".join(f"line {n}: {why}" for n, why in zip(table["line"][:5], table["reason"][:5], strict=True))
        warnings.warn(
            f"{str(source)!r}: quarantined {len(table)} of {n_lines} lines ({shown}{'; ...' if len(table) > 5 else ''}"
            "); see read_dsjson(...).rejected",
            DSJSONWarning,
            stacklevel=2,
        )
    if n_missing:
        warnings.warn(
            f"{str(source)!r}: left out {n_missing} of {len(rows)} valid lines without _label_cost (no outcome yet)",
            UserWarning,
            stacklevel=2,
        )
    if arm_list is None:  # arms and features seen only on quarantined lines are not part of the data
        arm_index = {a: i for i, a in enumerate(_merged_order([r.arms for r in rows]))}
    if feature_list is None:
        used_features = {f for r in rows for f in r.features}
        feature_index = {f: i for i, f in enumerate(f for f in feature_index if f in used_features)}
    kept = [r for r, miss in zip(rows, missing.tolist(), strict=True) if not miss]
    data = _build(kept, list(arm_index), list(feature_index), rows)
    return DSJSONImport(data, table, n_lines, n_missing, list(feature_index))


def _merged_order(sequences: list[list[str]]) -> list[str]:
    """The arms of all action sets in one order that keeps each set's own order where they agree (ties and
    conflicts: first appearance), so that action sets written in arm-index order give back that order."""
    first: dict[str, int] = {}
    edges: set[tuple[str, str]] = set()
    for seq in sequences:
        for a in seq:
            first.setdefault(a, len(first))
        edges.update(zip(seq, seq[1:], strict=False))
    successors: dict[str, list[str]] = {a: [] for a in first}
    indegree = dict.fromkeys(first, 0)
    for a, b in edges:
        successors[a].append(b)
        indegree[b] += 1
    ready = [(first[a], a) for a, deg in indegree.items() if deg == 0]
    heapq.heapify(ready)
    order: list[str] = []
    placed: set[str] = set()
    while len(order) < len(first):
        if not ready:  # conflicting orders (a cycle): place the earliest-seen arm left
            a = min((a for a in first if a not in placed), key=first.__getitem__)
            indegree[a] = 0
            ready.append((first[a], a))
        _, a = heapq.heappop(ready)
        if a in placed:
            continue
        placed.add(a)
        order.append(a)
        for b in successors[a]:
            indegree[b] -= 1
            if indegree[b] == 0 and b not in placed:
                heapq.heappush(ready, (first[b], b))
    return order


def _consistent_optional_fields(rows: list[_Row]) -> tuple[list[_Row], list[tuple[_Row, str]]]:
    """Rows whose ``Timestamp`` / ``EventId`` are present whenever any row has them; the others with reasons."""
    late: list[tuple[_Row, str]] = []
    if any(r.timestamp_us is not None for r in rows):
        late += [(r, "no Timestamp (other lines have one)") for r in rows if r.timestamp_us is None]
    if any(r.event_id is not None for r in rows):
        late += [(r, "no EventId (other lines have one)") for r in rows if r.event_id is None]
    if not late:
        return rows, late
    bad = {id(r) for r, _ in late}
    return [r for r in rows if id(r) not in bad], late


def _build(rows: list[_Row], arms: list[str], features: list[str], all_rows: list[_Row]) -> LoggedData:
    n, k, d = len(rows), len(arms), len(features)
    arm_index = {a: i for i, a in enumerate(arms)}
    feature_index = {f: i for i, f in enumerate(features)}
    X = np.zeros((n, d))
    P = np.zeros((n, k))
    E = np.zeros((n, k), dtype=bool)
    action = np.empty(n, dtype=np.int64)
    for i, row in enumerate(rows):
        for name, value in row.features.items():
            j = feature_index.get(name)
            if j is not None:
                X[i, j] = value
        cols = [arm_index[a] for a in row.arms]
        E[i, cols] = True
        P[i, cols] = row.probs
        action[i] = cols[row.chosen]
    has_time = any(r.timestamp_us is not None for r in all_rows)
    has_ids = any(r.event_id is not None for r in all_rows)
    has_versions = any(r.version is not None for r in all_rows)
    return LoggedData(
        X,
        action,
        np.array([r.reward for r in rows], dtype=np.float64),
        P[np.arange(n), action],
        probabilities=P,
        eligible=E,
        timestamp=np.array([r.timestamp_us for r in rows], dtype=np.int64).astype("datetime64[us]") if has_time else None,
        event_id=np.array([r.event_id for r in rows], dtype=object) if has_ids else None,
        action_names=arms,
        policy_version=np.array(["N/A" if r.version is None else r.version for r in rows], dtype=object) if has_versions else None,
    )
