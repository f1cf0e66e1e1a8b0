"""Narrow input validators used at the public boundary of the policies.

Each validator checks one kind of argument, takes the argument's ``name`` so its error message names it, and
returns a clean array (float64 / bool / int64, C-contiguous) that the numba kernels accept as is. ``TypeError``
means the wrong kind of object, ``ValueError`` the right kind with a wrong value. Internals trust what these return.

The single-row validators have a fast path: a float64, 1-D, C-contiguous, writeable ndarray of the right length is
returned unchanged (no copy). Finiteness of a single context is then checked by the policy's fused kernel, which
returns a status the policy turns into the same ``ValueError``; pass ``finite=True`` to check it here instead.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "MAX_ABS_REWARD",
    "IllConditionedError",
    "check_arm",
    "check_arms",
    "check_context",
    "check_contexts",
    "check_eligible",
    "check_eligible_batch",
    "check_event_id",
    "check_event_ids",
    "check_reward",
    "check_rewards",
    "check_scalar",
    "check_seed",
    "non_finite_context_error",
]

_F64 = np.dtype(np.float64)

#: Largest reward magnitude a policy learns from (its default reward range is [-MAX_ABS_REWARD, MAX_ABS_REWARD]):
#: a few finite rewards near the float64 limit (e.g. two of 1e308) overflow the per-arm reward sums and the learned
#: statistics to inf, which then neither decide nor load back. 1e100 is far beyond any revenue or conversion count
#: and keeps sums of 10**200 such rewards finite.
MAX_ABS_REWARD = 1e100


def _kind(obj: Any) -> str:
    return type(obj).__name__


def _writeable(arr: np.ndarray) -> np.ndarray:
    """``arr``, copied if read-only: the kernels are compiled for writeable arrays (a read-only argument would
    trigger a second, multi-second compilation)."""
    return arr if arr.flags.writeable else arr.copy()


class IllConditionedError(ValueError):
    """A context (or batch row) that would make a policy's precision matrix lose precision in float64.

    A ``ValueError``: nothing was learned from the call. Its message names the context's norm and the arm (for a
    batch: the first row at which sequential learning would fail).
    """


def non_finite_context_error(name: str) -> ValueError:
    """The error raised when a context holds NaN or inf (shared by the validators and the kernels' status)."""
    return ValueError(
        f"{name} contains NaN or inf; impute or drop missing features before calling the policy "
        "(the policy never learns from or decides on non-finite features)"
    )


def _as_float_array(value: Any, name: str, what: str) -> np.ndarray:
    """``value`` as a float64 ndarray (a copy when the input is not float64); rejects non-numeric input."""
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be {what}, got {_kind(value)}")
    if isinstance(value, Mapping):
        raise TypeError(f"{name} must be {what}, got a {_kind(value)}; pass the values in feature order")
    if value is None:
        raise TypeError(f"{name} must be {what}, got None")
    if isinstance(value, np.ma.MaskedArray) and np.ma.is_masked(value):  # np.asarray would use the hidden values
        raise ValueError(f"{name} has masked (missing) entries; impute or drop missing values first")
    try:
        arr = np.asarray(value)
    except ValueError:  # numpy's "inhomogeneous shape": rows of different lengths
        raise ValueError(f"{name} must be {what} with rows of equal length; it is ragged") from None
    if arr.dtype.kind not in "biuf":  # bools are 0/1 (flags, conversions)
        if arr.dtype.kind == "O":
            try:
                arr = arr.astype(np.float64)
            except OverflowError:
                raise ValueError(f"{name} holds an integer too large for float64 (beyond 1.8e308)") from None
            except (TypeError, ValueError):
                raise TypeError(f"{name} must be {what} of real numbers, got elements that are not numbers") from None
        else:
            raise TypeError(f"{name} must be {what} of real numbers, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.float64)


def check_context(context: Any, n_features: int, name: str = "context", *, finite: bool = True) -> np.ndarray:
    """One feature vector as a float64 C-contiguous array of shape ``(n_features,)``.

    Parameters
    ----------
    context : array-like of shape (n_features,)
        Real numbers (ints and bools are converted). Fast path: a float64 1-D writeable C-contiguous ndarray of the right
        length is returned without a copy.
    n_features : int
        Expected length.
    name : str
        Argument name used in error messages.
    finite : bool
        Also reject NaN/inf here. Policies with a fused kernel pass ``False`` and check finiteness in the kernel.

    Returns
    -------
    ndarray of float64, shape (n_features,)

    Raises
    ------
    TypeError
        Not numeric.
    ValueError
        Wrong shape or length, or NaN/inf (with ``finite=True``).

    Examples
    --------
    >>> check_context([1, 2.5], 2)
    array([1. , 2.5])
    >>> check_context([1.0], 2)
    Traceback (most recent call last):
    ...
    ValueError: context has 1 features, the policy was built with n_features=2; pass one value per feature
    """
    if (
        type(context) is np.ndarray
        and context.dtype is _F64
        and context.shape == (n_features,)
        and context.flags.c_contiguous
        and context.flags.writeable
    ):
        arr = context
    else:
        arr = _as_float_array(context, name, "a 1-D array-like")
        if arr.ndim != 1:
            raise ValueError(
                f"{name} must be 1-D (one feature vector) with n_features={n_features} values, got shape "
                f"{arr.shape}; use choose_batch / update_batch for several rows"
            )
        if arr.shape[0] != n_features:
            raise ValueError(
                f"{name} has {arr.shape[0]} features, the policy was built with n_features={n_features}; "
                "pass one value per feature"
            )
        if arr is context:  # float64 ndarray that failed the fast path (read-only or non-contiguous): own copy
            arr = arr.copy()
    if finite and not np.isfinite(arr).all():
        raise non_finite_context_error(name)
    return arr


def check_contexts(X: Any, n_features: int, name: str = "X", *, finite: bool = True) -> np.ndarray:
    """A batch of feature vectors as a finite float64 C-contiguous writeable array of shape ``(n, n_features)``.

    A 1-D input is rejected (ambiguous: one row or one feature?). A float64 C-contiguous writeable ndarray is
    returned as is (no copy); a read-only one is copied (the kernels are compiled for writeable arrays).
    ``finite=False`` skips the NaN/inf scan, for callers whose kernel checks finiteness itself (a full pass over
    ``X`` saved) and then calls this again with ``finite=True`` to name the offending row.

    Examples
    --------
    >>> check_contexts([[1, 2], [3, 4]], 2).shape
    (2, 2)
    >>> check_contexts([[1, float("nan")]], 2)
    Traceback (most recent call last):
    ...
    ValueError: X contains NaN or inf in row 0; impute or drop missing features before calling the policy ...
    """
    arr = _as_float_array(X, name, "a 2-D array-like (n rows, n_features columns)")
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D with shape (n, {n_features}), got shape {arr.shape}; reshape a single row with "
            "X[None, :] or use choose / update"
        )
    if arr.shape[1] != n_features:
        raise ValueError(
            f"{name} has {arr.shape[1]} features (columns), the policy was built with n_features={n_features}"
        )
    if finite:
        ok = np.isfinite(arr)
        if not ok.all():
            row = int(np.flatnonzero(~ok.all(axis=1))[0])
            raise ValueError(
                f"{name} contains NaN or inf in row {row}; impute or drop missing features before calling the policy "
                "(the policy never learns from or decides on non-finite features)"
            )
    return _writeable(arr)


def check_eligible(
    eligible: Any, arm_index: Mapping[str, int], active: np.ndarray, name: str = "eligible"
) -> np.ndarray:
    """An eligibility argument as a bool mask of shape ``(K,)``, restricted to active (not retired) arms.

    Parameters
    ----------
    eligible : None, sequence of arm names, or bool array-like of shape (K,)
        ``None`` means every active arm.
    arm_index : mapping of str to int
        Arm name -> index.
    active : ndarray of bool, shape (K,)
        Arms that are not retired. Retired arms are never eligible, whatever the mask says.
    name : str
        Argument name used in error messages.

    Returns
    -------
    ndarray of bool, shape (K,)
        A new array unless ``eligible`` is None (then ``active`` itself, which callers must not modify).

    Raises
    ------
    TypeError, ValueError
        Wrong type, unknown name, wrong length, or no eligible arm.

    Examples
    --------
    >>> idx = {"solo": 0, "duo": 1, "family": 2}
    >>> check_eligible(["duo"], idx, np.ones(3, dtype=bool))
    array([False,  True, False])
    >>> check_eligible([False, False, False], idx, np.ones(3, dtype=bool))
    Traceback (most recent call last):
    ...
    ValueError: eligible leaves no arm to choose from; at least one active arm must be eligible ...
    """
    if eligible is None:
        return active
    k = active.shape[0]
    if isinstance(eligible, np.ndarray) and eligible.dtype == np.bool_:
        mask = eligible
    elif isinstance(eligible, (str, bytes)):
        raise TypeError(f"{name} must be a list of arm names or a bool mask, got a single string; use [{eligible!r}]")
    elif isinstance(eligible, (Sequence, np.ndarray)):
        items = list(eligible)
        if not items:  # an empty list of names: nothing is eligible (a catalog may allow nothing for a user)
            raise ValueError(
                f"{name} is empty: it leaves no arm to choose from; at least one active arm must be eligible"
            )
        if all(isinstance(e, str) for e in items):
            mask = np.zeros(k, dtype=np.bool_)
            for e in items:
                j = arm_index.get(e)
                if j is None:
                    raise ValueError(f"{name} names unknown arm {e!r}; known arms: {list(arm_index)}")
                mask[j] = True
        elif all(isinstance(e, (bool, np.bool_)) for e in items):
            mask = np.asarray(items, dtype=np.bool_)
        else:
            raise TypeError(
                f"{name} must be a list of arm names (str) or a bool mask of length {k}, got elements of type "
                f"{sorted({_kind(e) for e in items})}"
            )
    else:
        raise TypeError(f"{name} must be None, a list of arm names or a bool mask, got {_kind(eligible)}")
    if mask.shape != (k,):
        raise ValueError(f"{name} mask must have shape ({k},) (one flag per arm), got {mask.shape}")
    out = mask & active
    if not out.any():
        raise ValueError(
            f"{name} leaves no arm to choose from; at least one active arm must be eligible "
            f"(retired arms are never eligible)"
        )
    return out


def check_eligible_batch(
    eligible: Any, n: int, arm_index: Mapping[str, int], active: np.ndarray, name: str = "eligible"
) -> np.ndarray:
    """Batch eligibility as a bool C-contiguous array of shape ``(1, K)`` (same for every row) or ``(n, K)``.

    Accepts None, one row's eligibility (names or a (K,) mask), or an (n, K) bool mask.

    Examples
    --------
    >>> idx = {"solo": 0, "duo": 1}
    >>> check_eligible_batch([[True, False], [True, True]], 2, idx, np.ones(2, dtype=bool)).tolist()
    [[True, False], [True, True]]
    >>> check_eligible_batch(["duo"], 5, idx, np.ones(2, dtype=bool)).shape
    (1, 2)
    """
    k = active.shape[0]
    if eligible is not None and not isinstance(eligible, (str, bytes)):
        arr = eligible if isinstance(eligible, np.ndarray) else None
        if arr is None and isinstance(eligible, Sequence) and eligible and not isinstance(eligible[0], (str, bool)):
            try:
                arr = np.asarray(eligible)
            except ValueError:  # numpy's "inhomogeneous shape"
                raise ValueError(f"{name} as an (n, K) mask must have K={k} flags in every row; it is ragged") from None
        if arr is not None and arr.ndim == 2:
            if arr.dtype != np.bool_:
                raise TypeError(f"{name} as a 2-D mask must have dtype bool, got {arr.dtype}")
            if arr.shape != (n, k):
                raise ValueError(f"{name} mask must have shape ({n}, {k}) (one row per context), got {arr.shape}")
            out = np.ascontiguousarray(arr & active[None, :])
            bad = ~out.any(axis=1)
            if bad.any():
                raise ValueError(
                    f"{name} leaves no arm to choose from in row {int(np.flatnonzero(bad)[0])}; every row needs at "
                    "least one eligible active arm (retired arms are never eligible)"
                )
            return out
    return np.ascontiguousarray(check_eligible(eligible, arm_index, active, name)[None, :])


def check_arm(arm: Any, arm_index: Mapping[str, int], n_arms: int, name: str = "arm") -> int:
    """An arm given by name or integer index, as its index.

    Examples
    --------
    >>> check_arm("duo", {"solo": 0, "duo": 1}, 2)
    1
    >>> check_arm(5, {"solo": 0, "duo": 1}, 2)
    Traceback (most recent call last):
    ...
    ValueError: arm index 5 is out of range for 2 arms (valid: 0..1)
    """
    if type(arm) is str or isinstance(arm, str):  # (a str subclass, e.g. numpy.str_ from an array of names)
        j = arm_index.get(arm)
        if j is None:
            raise ValueError(f"{name} {str(arm)!r} is unknown; known arms: {list(arm_index)}")
        return j
    if isinstance(arm, (bool, np.bool_)) or not isinstance(arm, numbers.Integral):
        raise TypeError(f"{name} must be an arm name (str) or an integer index, got {_kind(arm)}")
    j = int(arm)
    if not 0 <= j < n_arms:
        raise ValueError(f"{name} index {j} is out of range for {n_arms} arms (valid: 0..{n_arms - 1})")
    return j


def check_arms(arms: Any, n: int, arm_index: Mapping[str, int], n_arms: int, name: str = "arms") -> np.ndarray:
    """A batch of arms (names or integer indices) as an int64 array of shape ``(n,)``.

    Examples
    --------
    >>> check_arms(["duo", "solo"], 2, {"solo": 0, "duo": 1}, 2)
    array([1, 0])
    """
    if isinstance(arms, (str, bytes)):
        raise TypeError(f"{name} must be a sequence of arm names or indices, got a single string")
    arr = np.asarray(arms)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D with one arm per row, got shape {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} entries but X has {n} rows; pass one arm per row")
    if arr.dtype.kind in "US" or (arr.dtype.kind == "O" and all(isinstance(a, str) for a in arr)):
        out = np.empty(n, dtype=np.int64)
        for i, a in enumerate(arr.tolist()):
            j = arm_index.get(a)
            if j is None:
                raise ValueError(f"{name}[{i}] = {a!r} is an unknown arm; known arms: {list(arm_index)}")
            out[i] = j
        return out
    if arr.dtype.kind not in "iu" or arr.dtype == np.bool_:
        if n == 0 and arr.dtype.kind == "f":
            return np.empty(0, dtype=np.int64)
        raise TypeError(f"{name} must hold arm names (str) or integer indices, got dtype {arr.dtype}")
    out = _writeable(np.ascontiguousarray(arr, dtype=np.int64))
    bad = (out < 0) | (out >= n_arms)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name}[{i}] = {int(out[i])} is out of range for {n_arms} arms (valid: 0..{n_arms - 1})")
    return out


def check_reward(reward: Any, name: str = "reward", *, low: float = -math.inf, high: float = math.inf) -> float:
    """A finite real reward in ``[low, high]`` as a Python float.

    Examples
    --------
    >>> check_reward(1)
    1.0
    >>> check_reward(float("nan"))
    Traceback (most recent call last):
    ...
    ValueError: reward must be a finite number, got nan; drop or impute the outcome before updating
    """
    if type(reward) is not float:
        if isinstance(reward, (str, bytes)) or not isinstance(reward, numbers.Real):
            raise TypeError(f"{name} must be a real number (a conversion 0/1 or revenue), got {_kind(reward)}")
        try:
            reward = float(reward)
        except OverflowError:
            raise ValueError(f"{name} must be a finite number, got an integer beyond the float64 range") from None
    if not math.isfinite(reward):
        raise ValueError(f"{name} must be a finite number, got {reward}; drop or impute the outcome before updating")
    if not low <= reward <= high:
        raise ValueError(f"{name} must be in [{low:g}, {high:g}] for this policy, got {reward}")
    return reward


def check_rewards(
    rewards: Any, n: int, name: str = "rewards", *, low: float = -math.inf, high: float = math.inf
) -> np.ndarray:
    """A batch of finite real rewards in ``[low, high]`` as a float64 array of shape ``(n,)``.

    Examples
    --------
    >>> check_rewards([0, 1, 1], 3)
    array([0., 1., 1.])
    >>> check_rewards([0, 1], 3)
    Traceback (most recent call last):
    ...
    ValueError: rewards has 2 entries but X has 3 rows; pass one reward per row
    """
    arr = _as_float_array(rewards, name, "a 1-D array-like of rewards")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D with one reward per row, got shape {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} entries but X has {n} rows; pass one reward per row")
    finite = np.isfinite(arr)
    if not finite.all():
        i = int(np.flatnonzero(~finite)[0])
        raise ValueError(f"{name}[{i}] is {arr[i]}; rewards must be finite, drop or impute the outcome")
    if arr.size and (arr.min() < low or arr.max() > high):
        i = int(np.flatnonzero((arr < low) | (arr > high))[0])
        raise ValueError(f"{name} must be in [{low:g}, {high:g}] for this policy, got {name}[{i}] = {arr[i]}")
    return _writeable(arr)


def check_event_id(event_id: Any, name: str = "event_id") -> str | None:
    """An event id: None, a non-empty string, or an integer (converted to its decimal string).

    Examples
    --------
    >>> check_event_id(42)
    '42'
    """
    if event_id is None or type(event_id) is str:
        if event_id == "":
            raise ValueError(f"{name} must be a non-empty string (e.g. the request id) or None")
        return event_id
    if isinstance(event_id, str):  # a str subclass, e.g. numpy.str_ from an array of ids
        return check_event_id(str(event_id), name)
    if isinstance(event_id, numbers.Integral) and not isinstance(event_id, (bool, np.bool_)):
        return str(int(event_id))
    raise TypeError(f"{name} must be a string (e.g. the request id), an int or None, got {_kind(event_id)}")


def check_event_ids(event_ids: Any, n: int, name: str = "event_ids") -> list[str] | None:
    """None, or a sequence of ``n`` event ids (see :func:`check_event_id`) as a list of str.

    Examples
    --------
    >>> check_event_ids(["a", 7], 2)
    ['a', '7']
    """
    if event_ids is None:
        return None
    if isinstance(event_ids, (str, bytes)):
        raise TypeError(f"{name} must be a sequence of ids (one per row), got a single string")
    if isinstance(event_ids, (set, frozenset, Mapping)):  # no row order: ids would land on arbitrary rows
        raise TypeError(f"{name} must be an ordered sequence of ids (one per row, e.g. a list), got a {_kind(event_ids)}")
    ids = list(event_ids)
    if len(ids) != n:
        raise ValueError(f"{name} has {len(ids)} entries but X has {n} rows; pass one id per row")
    out: list[str] = []
    for i, e in enumerate(ids):
        checked = None if e is None else check_event_id(e, f"{name}[{i}]")
        if checked is None:
            raise ValueError(f"{name}[{i}] is None; give every row an id, or pass event_ids=None")
        out.append(checked)
    return out


def one_line(message: object) -> str:
    """``str(message)`` with its whitespace runs (newlines included) folded to single spaces: one line for an error
    message, a warning or a log record.

    >>> one_line(ValueError("bad\\n  input"))
    'bad input'
    """
    return " ".join(str(message).split())


def check_precision(value: Any, name: str) -> float:
    """A prior precision (``l2``, ``arm_l2``): a finite real > 0 whose inverse, the prior variance, is finite too.

    Examples
    --------
    >>> check_precision(1e-300, "l2")
    1e-300
    >>> check_precision(1e-310, "l2")
    Traceback (most recent call last):
    ...
    ValueError: l2 must be a precision whose inverse (the prior variance) is finite, i.e. >= 5.6e-309, got 1e-310
    """
    value = check_scalar(value, name, low=0.0, low_inclusive=False)
    if not math.isfinite(1.0 / value):
        raise ValueError(
            f"{name} must be a precision whose inverse (the prior variance) is finite, i.e. >= 5.6e-309, got {value}"
        )
    return float(value)


def check_scalar(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    integer: bool = False,
) -> float | int:
    """A constructor hyper-parameter: a finite real (or integer) within bounds.

    Examples
    --------
    >>> check_scalar(0.5, "alpha", low=0.0)
    0.5
    >>> check_scalar(-1, "alpha", low=0.0, low_inclusive=False)
    Traceback (most recent call last):
    ...
    ValueError: alpha must be > 0, got -1
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a {'integer' if integer else 'real number'}, got {_kind(value)}")
    if integer:
        if not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be an integer, got {_kind(value)}")
        value = int(value)
    else:
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an int beyond the float64 range
            finite = False
        if not finite:
            raise ValueError(f"{name} must be finite, got {value if isinstance(value, float) else 'a huge integer'}")
    if low is not None and (value < low or (not low_inclusive and value == low)):
        raise ValueError(f"{name} must be {'>=' if low_inclusive else '>'} {low:g}, got {value}")
    if high is not None and (value > high or (not high_inclusive and value == high)):
        raise ValueError(f"{name} must be {'<=' if high_inclusive else '<'} {high:g}, got {value}")
    return value if integer else float(value)


def check_seed(seed: Any, name: str = "seed") -> int | None:
    """None or a non-negative integer below 2**64.

    Examples
    --------
    >>> check_seed(7)
    7
    """
    if seed is None:
        return None
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"{name} must be None or a non-negative int, got {_kind(seed)}")
    seed = int(seed)
    if not 0 <= seed < 2**64:
        raise ValueError(f"{name} must be in [0, 2**64), got {seed}")
    return seed
