"""Mergeable sufficient statistics of the policies: fit one policy from many batches, files or Spark partitions.

Every linear policy learns a **sum of per-row terms**, so its training data can be cut into pieces, each piece
summarised on its own (a worker, a Spark partition, a record batch of a Parquet file), the summaries merged, and
the merged summary loaded into the policy. The result equals ``policy.update_batch`` on all the rows (to round-off).

API
---
::

    stats = PolicyStatistics.for_policy(policy)          # empty statistics laid out for this policy
    part = stats.accumulate(X, arms, rewards)            # this piece (validated like update_batch)
    total = part_a.merge(part_b)                         # a then b (associative; order-free when discount == 1)
    blob = total.to_bytes(); PolicyStatistics.from_bytes(blob)   # plain bytes, no pickle (ship between processes)
    total.apply(policy)                                  # == policy.update_batch(all rows)

    fit_batches(policy, lambda: iter_of_batches)         # all of the above, for any fittable policy (LogisticTS too)
    fit_passes(policy, run_pass)                         # the same for an engine that runs one pass over its rows

Streaming from a decision-log directory: :func:`bandit.streaming.fit_parquet`; from Spark: :func:`bandit.spark.fit`.

Which policies
--------------
- **LinUCB, LinearTS, EpsilonGreedy** (disjoint ridge per arm; ``kind="ridge"``): per arm the row count, the
  discounted weight ``sum w``, ``sum w x x^T``, ``sum w r x``, ``sum w r``, ``sum w r^2`` and the undiscounted
  ``sum r`` (for ``mean_rewards``), where ``x`` is the design row (the context, plus a constant 1 with
  ``fit_intercept``). The same statistics fit any of the three (same arms, dimensions and discount).
- **HybridLinUCB, HybridLinearTS** (``kind="hybrid"``): the joint statistics ``A_a``, ``B_a``, ``b_a``, ``Z``,
  ``c`` of :mod:`bandit.kernels.hybrid` are all functions of the per-arm sums above and the arms' features: with
  ``z = vec(f_a x^T)``, ``sum x z^T = kron(f_a^T, S_a)``, ``sum z z^T = sum_a kron(f_a f_a^T, S_a)`` and
  ``sum r z = sum_a kron(f_a, s_a)`` (``S_a = sum w x x^T``, ``s_a = sum w r x`` over arm ``a``'s rows). So the
  hybrid statistics are the disjoint ones (size ``K D^2``, not ``(m D)^2``), discounted on a global clock.
- **BetaTS, UniformRandom** (``kind="counts"``, no context): counts, ``sum w`` and ``sum w r`` per arm.
- **LogisticTS**: not a sum of per-row terms in one pass; its batch Laplace fit is a Newton (IRLS) iteration whose
  every step needs one pass of sums (objective, gradient, Hessian at the current coefficients):
  :class:`LogisticPassStatistics` and the driver :class:`LaplaceFit`, used by :func:`fit_passes`.
- **VWPolicy** (an online learner whose state depends on row order non-additively): ``TypeError``.

Discount
--------
With a forgetting factor ``gamma < 1`` a disjoint arm's statistics age by ``gamma`` at each of its updates
(``A <- gamma A + (1 - gamma) l2 I + x x^T``, :class:`~bandit.policies.base.RidgePolicy`). Writing
``A = l2 I + S`` this is ``S <- gamma S + x x^T``: the prior stays, the data part is a weighted sum with weight
``gamma^(n - t)`` for the t-th of n rows. So a piece keeps ``S = sum gamma^(n - t) x x^T`` and its row count n, and

    ``merge(a, b)``: ``n = n_a + n_b``, ``S = gamma^(n_b) S_a + S_b`` (per arm),

which is exactly "process a, then b" -- and associative: ``(a, b), c`` and ``a, (b, c)`` both give
``gamma^(n_b + n_c) S_a + gamma^(n_c) S_b + S_c``. Applied to a policy holding ``A_0`` after n more rows:
``A = gamma^n A_0 + (1 - gamma^n) l2 I + S``, ``b = gamma^n b_0 + s``. The hybrid policies age every statistic at
every observation of any arm (a global clock: the factor is ``gamma`` to the total row count of ``b``); BetaTS
ages its counts towards the prior the same way. With ``gamma == 1`` every factor is 1 and merging is plain
addition: order-independent up to round-off. With ``gamma < 1`` the order of the rows matters (as it does for
``update_batch``): merge pieces in row order.

Accuracy
--------
Sums are accumulated with compensated summation (:mod:`bandit.kernels.sufficient_stats`: Knuth's TwoSum error-free
transformation, the rounding errors kept in a second array -- Ogita, Rump & Oishi's "Sum2"), and merges add the
(value, error) pairs the same way, so the result is as accurate as if computed in twice the working precision and
then rounded: ``|error| <= eps |sum| + O(n eps^2) sum |terms|`` for n rows in any merge tree (plain or pairwise
summation: ``O(eps log n) sum |terms|``, which loses every digit when terms cancel). The tests check it against
exact rational arithmetic on adversarial data.

Examples
--------
>>> import numpy as np
>>> from bandit import LinUCB
>>> rng = np.random.default_rng(0)
>>> X, arms, rewards = rng.normal(size=(1000, 3)), rng.integers(0, 2, 1000), rng.normal(size=1000)
>>> policy = LinUCB(["solo", "duo"], n_features=3, seed=0)
>>> empty = PolicyStatistics.for_policy(policy)
>>> first, second = empty.accumulate(X[:400], arms[:400], rewards[:400]), empty.accumulate(X[400:], arms[400:], rewards[400:])
>>> total = PolicyStatistics.from_bytes(first.merge(second).to_bytes())
>>> total.apply(policy)
>>> reference = LinUCB(["solo", "duo"], n_features=3, seed=0)
>>> reference.update_batch(X, arms, rewards)
>>> bool(np.allclose(policy.coef_, reference.coef_, rtol=1e-12, atol=0)), policy.pulls.tolist()
(True, [525, 475])
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from bandit._validation import IllConditionedError, check_arms, check_contexts, check_rewards
from bandit.kernels import dense, logistic
from bandit.kernels import sufficient_stats as ss
from bandit.kernels.status import STATUS_OK
from bandit.policies.base import Policy, RidgePolicy

__all__ = [
    "FitReport",
    "LaplaceFit",
    "LogisticPassStatistics",
    "PolicyStatistics",
    "fit_batches",
    "fit_passes",
]

# ------------------------------------------------------------------------------------------------------------------
# compensated (value, error) pairs
# ------------------------------------------------------------------------------------------------------------------


def _two_sum(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Elementwise ``(s, e)`` with ``s = fl(a + b)`` and ``s + e = a + b`` exactly (Knuth's TwoSum)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _pair_merge(
    hi_a: np.ndarray, lo_a: np.ndarray, hi_b: np.ndarray, lo_b: np.ndarray, factor: np.ndarray | float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """``factor * (hi_a + lo_a) + (hi_b + lo_b)`` as a renormalised (value, error) pair."""
    s, e = _two_sum(hi_a * factor, hi_b)
    return _two_sum(s, lo_a * factor + lo_b + e)


def _mirror_upper(M: np.ndarray) -> None:
    """Copy the upper triangle of every trailing (D, D) matrix of ``M`` onto its lower triangle, in place."""
    D = M.shape[-1]
    i, j = np.tril_indices(D, -1)
    M[..., i, j] = M[..., j, i]


# ------------------------------------------------------------------------------------------------------------------
# serialisation: a small self-describing binary format (JSON header + raw little-endian arrays; never pickle)
# ------------------------------------------------------------------------------------------------------------------

_MAGIC = b"UBSTATS1"
_MAX_HEADER = 1 << 24
_DTYPES = {"<f8": np.dtype("<f8"), "<i8": np.dtype("<i8")}


def _encode(kind: str, layout: dict[str, Any], arrays: dict[str, np.ndarray]) -> bytes:
    spec = [[name, arr.dtype.str, list(arr.shape)] for name, arr in arrays.items()]
    header = json.dumps({"type": kind, "layout": layout, "arrays": spec}, allow_nan=False).encode("utf-8")
    body = b"".join(np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes() for arr in arrays.values())
    return _MAGIC + struct.pack("<I", len(header)) + header + body


def _decode(data: Any, kind: str, name: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(layout, arrays) of bytes written by :func:`_encode` for ``kind``; ValueError naming ``name`` otherwise.

    Untrusted input: the header is bounded, every array's size is checked against the bytes present before it is
    read, and only float64/int64 arrays are accepted (shapes are checked against the layout by the caller).
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"{name} must be bytes from to_bytes(), got {type(data).__name__}")
    buf = memoryview(data).cast("B")
    if len(buf) < len(_MAGIC) + 4 or bytes(buf[: len(_MAGIC)]) != _MAGIC:
        raise ValueError(f"{name} is not serialised statistics (bad magic bytes); pass the output of to_bytes()")
    (n_header,) = struct.unpack("<I", bytes(buf[len(_MAGIC) : len(_MAGIC) + 4]))
    start = len(_MAGIC) + 4
    if n_header > _MAX_HEADER or start + n_header > len(buf):
        raise ValueError(f"{name} has a truncated or oversized header")
    try:
        header = json.loads(bytes(buf[start : start + n_header]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{name} has an unreadable header: {err}") from None
    if not isinstance(header, dict) or header.get("type") != kind:
        got = header.get("type") if isinstance(header, dict) else None
        raise ValueError(f"{name} holds {got!r} statistics, expected {kind!r}")
    layout, spec = header.get("layout"), header.get("arrays")
    if not isinstance(layout, dict) or not isinstance(spec, list):
        raise ValueError(f"{name} has a malformed header")
    pos = start + n_header
    arrays: dict[str, np.ndarray] = {}
    for entry in spec:
        if not (isinstance(entry, list) and len(entry) == 3 and isinstance(entry[0], str) and entry[1] in _DTYPES
                and isinstance(entry[2], list) and all(isinstance(s, int) and s >= 0 for s in entry[2])):
            raise ValueError(f"{name} has a malformed array entry {entry!r}")
        arr_name, dtype, shape = entry[0], _DTYPES[entry[1]], tuple(entry[2])
        size = math.prod(shape) * dtype.itemsize
        if pos + size > len(buf):
            raise ValueError(f"{name} is truncated: array {arr_name!r} needs {size} bytes")
        arrays[arr_name] = np.frombuffer(buf[pos : pos + size], dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))
        pos += size
    if pos != len(buf):
        raise ValueError(f"{name} has {len(buf) - pos} unexpected trailing bytes")
    return layout, arrays


def _expect_arrays(arrays: dict[str, np.ndarray], shapes: dict[str, tuple[tuple[int, ...], str]], name: str) -> None:
    if set(arrays) != set(shapes):
        raise ValueError(f"{name} holds arrays {sorted(arrays)}, expected {sorted(shapes)}")
    for key, (shape, dtype) in shapes.items():
        arr = arrays[key]
        if arr.shape != shape or arr.dtype != np.dtype(dtype):
            raise ValueError(f"{name}: array {key!r} has shape {arr.shape} {arr.dtype}, expected {shape} {dtype}")
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise ValueError(f"{name}: array {key!r} holds NaN or inf")
        if arr.dtype.kind == "i" and (arr < 0).any():
            raise ValueError(f"{name}: array {key!r} holds negative counts")


# ------------------------------------------------------------------------------------------------------------------
# layout: what a piece of statistics was computed for
# ------------------------------------------------------------------------------------------------------------------

_KINDS = ("ridge", "hybrid", "counts")


@dataclass(frozen=True)
class _Layout:
    kind: str
    arm_names: tuple[str, ...]
    n_features: int | None
    fit_intercept: bool
    discount: float
    reward_low: float
    reward_high: float

    @property
    def n_arms(self) -> int:
        return len(self.arm_names)

    @property
    def n_dims(self) -> int:
        if self.kind == "counts" or self.n_features is None:
            return 0
        return self.n_features + int(self.fit_intercept)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "arm_names": list(self.arm_names),
            "n_features": self.n_features,
            "fit_intercept": self.fit_intercept,
            "discount": self.discount,
            "reward_low": None if self.reward_low == -math.inf else self.reward_low,
            "reward_high": None if self.reward_high == math.inf else self.reward_high,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any], name: str) -> _Layout:
        try:
            arm_names = obj["arm_names"]
            n_features = obj["n_features"]
            ok = (
                obj["kind"] in (*_KINDS, "logistic")
                and isinstance(arm_names, list) and arm_names and all(isinstance(a, str) for a in arm_names)
                and len(set(arm_names)) == len(arm_names)
                and (n_features is None or (isinstance(n_features, int) and 1 <= n_features <= 1 << 16))
                and isinstance(obj["fit_intercept"], bool)
                and isinstance(obj["discount"], int | float) and 0.0 < obj["discount"] <= 1.0
            )
            low = -math.inf if obj["reward_low"] is None else float(obj["reward_low"])
            high = math.inf if obj["reward_high"] is None else float(obj["reward_high"])
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"{name} has a malformed layout {obj!r}")
        return cls(obj["kind"], tuple(arm_names), n_features, obj["fit_intercept"], float(obj["discount"]), low, high)

    def check_same(self, other: _Layout, name: str, what: str) -> None:
        """ValueError naming ``name`` when ``other`` (the layout of ``name``) differs from this one."""
        for attr, label in (
            ("kind", "policy family"),
            ("arm_names", "arms (in index order)"),
            ("n_features", "n_features"),
            ("fit_intercept", "fit_intercept"),
            ("discount", "discount"),
        ):
            mine, theirs = getattr(self, attr), getattr(other, attr)
            if mine != theirs:
                mine_txt = list(mine) if isinstance(mine, tuple) else mine
                theirs_txt = list(theirs) if isinstance(theirs, tuple) else theirs
                raise ValueError(
                    f"{name} has {label} {theirs_txt!r} but {what} has {mine_txt!r}; statistics only combine with "
                    "the same policy layout (recompute them with PolicyStatistics.for_policy(policy))"
                )


def _policy_kind(policy: Any) -> str:
    """The statistics family of ``policy``: "ridge", "hybrid", "counts" or "logistic"; TypeError otherwise."""
    from bandit.policies import BetaTS, LogisticTS, UniformRandom
    from bandit.policies._hybrid import HybridRidgePolicy

    if isinstance(policy, RidgePolicy):
        return "ridge"
    if isinstance(policy, HybridRidgePolicy):
        return "hybrid"
    if isinstance(policy, BetaTS | UniformRandom):
        return "counts"
    if isinstance(policy, LogisticTS):
        return "logistic"
    if isinstance(policy, Policy):
        raise TypeError(
            f"{type(policy).__name__} cannot be fitted from mergeable statistics: its learner is not a sum of "
            "per-row terms (its state depends on the order of the rows); train it with update_batch in one process"
        )
    raise TypeError(f"policy must be a bandit policy, got {type(policy).__name__}")


def _layout_of(policy: Any, kind: str) -> _Layout:
    return _Layout(
        kind=kind,
        arm_names=tuple(policy.arm_names),
        n_features=policy.n_features,
        fit_intercept=bool(policy.fit_intercept) if kind != "counts" else False,
        discount=float(policy.discount),
        reward_low=float(policy._reward_low),
        reward_high=float(policy._reward_high),
    )


def _check_writable(policy: Any) -> None:
    if not isinstance(policy, Policy):
        raise TypeError(f"policy must be a bandit policy, got {type(policy).__name__}")
    policy._check_writable("apply")


def _batch(layout: _Layout, X: Any, arms: Any, rewards: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate one batch like ``update_batch`` does: ``(design-ready X (n, d), arm indices (n,), rewards (n,))``."""
    if layout.n_features is None:
        if X is not None and (isinstance(X, str | bytes) or not hasattr(X, "__len__")):
            raise TypeError(f"X must be None or a sized collection with one (ignored) entry per row, got {type(X).__name__}")
        n = len(X) if X is not None else (len(arms) if hasattr(arms, "__len__") and not isinstance(arms, str) else 0)
        Xc = np.empty((n, 0))
    else:
        Xc = check_contexts(X, layout.n_features, "X")
        n = Xc.shape[0]
    index = {name: i for i, name in enumerate(layout.arm_names)}
    a = check_arms(arms, n, index, layout.n_arms)
    r = check_rewards(rewards, n, low=layout.reward_low, high=layout.reward_high)
    if layout.n_dims == 0:
        Xc = np.empty((n, 0))
    return Xc, a, r


def _kernel_error(status: int, what: str) -> Exception:
    if status == ss.STATUS_NON_FINITE:
        return ValueError(f"{what} contains NaN or inf")
    return ValueError(f"{what} does not match the statistics' layout (kernel status {status})")


def _gamma_power(gamma: float, n: np.ndarray | int) -> tuple[Any, Any]:
    """``(gamma^n, 1 - gamma^n)``, the second without cancellation."""
    if gamma == 1.0:
        return np.ones_like(n, dtype=np.float64), np.zeros_like(n, dtype=np.float64)
    log_g = math.log(gamma)
    n_f = np.asarray(n, dtype=np.float64)
    return np.exp(n_f * log_g), -np.expm1(n_f * log_g)


# ------------------------------------------------------------------------------------------------------------------
# the linear / count statistics
# ------------------------------------------------------------------------------------------------------------------


class _ArmSums:
    """What both statistics objects answer about their layout and row counts (they hold ``_layout``, ``_count``)."""

    _layout: _Layout
    _count: np.ndarray

    @property
    def arm_names(self) -> tuple[str, ...]:
        """The arms, in the index order of the policy the statistics were laid out for."""
        return self._layout.arm_names

    @property
    def n_features(self) -> int | None:
        """The context length the rows must have (None: the context is ignored)."""
        return self._layout.n_features

    @property
    def reward_range(self) -> tuple[float, float]:
        """The policy's reward range: rewards outside it are rejected."""
        return self._layout.reward_low, self._layout.reward_high

    @property
    def n_rows(self) -> int:
        """Rows accumulated (all arms)."""
        return int(self._count.sum())

    @property
    def count(self) -> np.ndarray:
        """Rows per arm, shape (K,) int64 (a copy)."""
        return self._count.copy()


@dataclass(frozen=True, eq=False)
class PolicyStatistics(_ArmSums):
    """Per-arm sufficient statistics of a ridge, hybrid or count policy: computed per piece, merged, applied.

    Build with :meth:`for_policy` (empty) and :meth:`accumulate`; never mutated (every method returns a new object).
    The arrays below are the exact sums rounded once (each is kept internally as a compensated value/error pair).

    Attributes
    ----------
    kind : str
        ``"ridge"`` (LinUCB, LinearTS, EpsilonGreedy), ``"hybrid"`` (HybridLinUCB, HybridLinearTS) or ``"counts"``
        (BetaTS, UniformRandom).
    arm_names : tuple of str
        The arms, in the index order of the policy the statistics were laid out for.
    discount : float
        The forgetting factor gamma the sums are discounted with (module docstring).
    count : ndarray of int64, shape (K,)
        Rows per arm.
    weight, reward, reward_sq : ndarray, shape (K,)
        Per arm ``sum w``, ``sum w r``, ``sum w r^2`` with the discount weights ``w = gamma^age`` (1 if no discount).
    reward_total : ndarray, shape (K,)
        Per arm undiscounted ``sum r``.
    xx : ndarray, shape (K, D, D)
        Per arm ``sum w x x^T`` over design rows ``x`` (the context plus a trailing 1 with ``fit_intercept``; D = 0
        for ``"counts"``).
    xr : ndarray, shape (K, D)
        Per arm ``sum w r x``.
    """

    _layout: _Layout
    _count: np.ndarray
    _scal: tuple[np.ndarray, np.ndarray]
    _xx: tuple[np.ndarray, np.ndarray]
    _xr: tuple[np.ndarray, np.ndarray]

    _TYPE: ClassVar[str] = "PolicyStatistics"

    # ---- construction ----------------------------------------------------------------------------------------

    @classmethod
    def for_policy(cls, policy: Any) -> PolicyStatistics:
        """Empty statistics laid out for ``policy`` (its arms, context length, intercept, discount, family).

        Raises
        ------
        TypeError
            ``policy`` is a LogisticTS (use :class:`LaplaceFit` or :func:`fit_passes`), a VWPolicy, or not a policy.
        """
        kind = _policy_kind(policy)
        if kind == "logistic":
            raise TypeError(
                "LogisticTS is fitted by Newton passes, not one sum: use bandit.stats.fit_passes / fit_batches (or "
                "LaplaceFit with LogisticPassStatistics)"
            )
        return cls._empty(_layout_of(policy, kind))

    @classmethod
    def _empty(cls, layout: _Layout) -> PolicyStatistics:
        K, D = layout.n_arms, layout.n_dims
        return cls(
            layout,
            np.zeros(K, dtype=np.int64),
            (np.zeros((K, 4)), np.zeros((K, 4))),
            (np.zeros((K, D, D)), np.zeros((K, D, D))),
            (np.zeros((K, D)), np.zeros((K, D))),
        )

    def accumulate(self, X: Any, arms: Any, rewards: Any) -> PolicyStatistics:
        """These statistics followed by the rows ``(X[i], arms[i], rewards[i])``, in order.

        Parameters
        ----------
        X : array-like of shape (n, n_features), or None for a policy without ``n_features``
        arms : sequence of n arm names or int indices
        rewards : array-like of shape (n,)
            Within the policy's reward range ([0, 1] for BetaTS).

        Returns
        -------
        PolicyStatistics
            A new object; ``self`` is unchanged (also when a row is rejected).

        Raises
        ------
        TypeError, ValueError
            A bad row, as ``update_batch`` would raise (nothing is accumulated).
        """
        lay = self._layout
        Xc, a, r = _batch(lay, X, arms, rewards)
        count = self._count.copy()
        scal = (self._scal[0].copy(), self._scal[1].copy())
        xx = (self._xx[0].copy(), self._xx[1].copy())
        xr = (self._xr[0].copy(), self._xr[1].copy())
        status = ss.accumulate_linear(
            a, Xc, r, lay.fit_intercept, lay.discount, lay.kind == "hybrid", count, scal[0], scal[1], xx[0], xx[1],
            xr[0], xr[1],
        )
        if status != ss.STATUS_OK:
            raise _kernel_error(status, "X or rewards")
        _mirror_upper(xx[0])
        _mirror_upper(xx[1])
        return PolicyStatistics(lay, count, scal, xx, xr)

    # ---- merging ---------------------------------------------------------------------------------------------

    def merge(self, other: PolicyStatistics) -> PolicyStatistics:
        """The statistics of this piece's rows followed by ``other``'s rows.

        Associative; with ``discount == 1`` also commutative up to round-off. With a discount, merge pieces in row
        order (``a.merge(b)`` ages ``a`` by ``gamma`` per row of ``b``: per row of the same arm for the disjoint
        policies and BetaTS, per row of any arm for the hybrid ones).

        Raises
        ------
        TypeError
            ``other`` is not PolicyStatistics.
        ValueError
            ``other`` was laid out for another policy (arms, dimensions, discount or family differ).
        """
        if not isinstance(other, PolicyStatistics):
            raise TypeError(f"other must be PolicyStatistics, got {type(other).__name__}")
        self._layout.check_same(other._layout, "other", "this statistics object")
        gamma = self._layout.discount
        if self._layout.kind == "hybrid":
            factor_arm = np.full(self._layout.n_arms, _gamma_power(gamma, int(other._count.sum()))[0])
        else:
            factor_arm = np.asarray(_gamma_power(gamma, other._count)[0], dtype=np.float64)
        f_scal = np.concatenate([np.repeat(factor_arm[:, None], 3, axis=1), np.ones((len(factor_arm), 1))], axis=1)
        scal = _pair_merge(self._scal[0], self._scal[1], other._scal[0], other._scal[1], f_scal)
        xx = _pair_merge(self._xx[0], self._xx[1], other._xx[0], other._xx[1], factor_arm[:, None, None])
        xr = _pair_merge(self._xr[0], self._xr[1], other._xr[0], other._xr[1], factor_arm[:, None])
        return PolicyStatistics(self._layout, self._count + other._count, scal, xx, xr)

    # ---- inspection ------------------------------------------------------------------------------------------

    @property
    def kind(self) -> str:
        return self._layout.kind

    @property
    def discount(self) -> float:
        return self._layout.discount

    def _value(self, pair: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        return pair[0] + pair[1]

    @property
    def weight(self) -> np.ndarray:
        return self._value(self._scal)[:, ss.WEIGHT]

    @property
    def reward(self) -> np.ndarray:
        return self._value(self._scal)[:, ss.REWARD]

    @property
    def reward_sq(self) -> np.ndarray:
        return self._value(self._scal)[:, ss.REWARD_SQ]

    @property
    def reward_total(self) -> np.ndarray:
        return self._value(self._scal)[:, ss.REWARD_TOTAL]

    @property
    def xx(self) -> np.ndarray:
        return self._value(self._xx)

    @property
    def xr(self) -> np.ndarray:
        return self._value(self._xr)

    def __repr__(self) -> str:
        lay = self._layout
        return (f"PolicyStatistics(kind={lay.kind!r}, arms={list(lay.arm_names)}, n_dims={lay.n_dims}, "
                f"discount={lay.discount}, n_rows={self.n_rows})")

    # ---- serialisation ---------------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """A self-describing binary encoding (JSON header + raw little-endian float64/int64 arrays; no pickle)."""
        return _encode(self._TYPE, self._layout.to_json(), self._arrays())

    def _arrays(self) -> dict[str, np.ndarray]:
        return {
            "count": self._count,
            "scal_hi": self._scal[0], "scal_lo": self._scal[1],
            "xx_hi": self._xx[0], "xx_lo": self._xx[1],
            "xr_hi": self._xr[0], "xr_lo": self._xr[1],
        }

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> PolicyStatistics:
        """Decode :meth:`to_bytes` output; every field is checked (untrusted input: ValueError naming ``data``)."""
        layout_json, arrays = _decode(data, cls._TYPE, "data")
        layout = _Layout.from_json(layout_json, "data")
        if layout.kind not in _KINDS:
            raise ValueError(f"data has kind {layout.kind!r}, expected one of {list(_KINDS)}")
        K, D = layout.n_arms, layout.n_dims
        shapes: dict[str, tuple[tuple[int, ...], str]] = {"count": ((K,), "int64")}
        for name, shape in (("scal", (K, 4)), ("xx", (K, D, D)), ("xr", (K, D))):
            shapes[name + "_hi"] = (shape, "float64")
            shapes[name + "_lo"] = (shape, "float64")
        _expect_arrays(arrays, shapes, "data")
        for key in ("xx_hi", "xx_lo"):
            if not np.array_equal(arrays[key], arrays[key].transpose(0, 2, 1)):
                raise ValueError(f"data: array {key!r} is not symmetric")
        return cls(
            layout, arrays["count"], (arrays["scal_hi"], arrays["scal_lo"]), (arrays["xx_hi"], arrays["xx_lo"]),
            (arrays["xr_hi"], arrays["xr_lo"]),
        )

    # ---- applying --------------------------------------------------------------------------------------------

    def apply(self, policy: Any) -> None:
        """Learn these statistics: afterwards ``policy`` is as if ``update_batch`` had been called with the rows.

        Raises
        ------
        TypeError
            ``policy`` is not a policy of this family.
        ValueError
            ``policy``'s arms, ``n_features``, ``fit_intercept`` or ``discount`` differ from the statistics' (a
            policy that added arms since: recompute them); or the statistics would make a precision matrix
            overflow or lose precision (:class:`~bandit._validation.IllConditionedError`). The policy is unchanged.
        RuntimeError
            ``policy`` is a read-only snapshot.
        """
        kind = _policy_kind(policy)
        _check_writable(policy)
        self._layout.check_same(_layout_of(policy, kind), "policy", "the statistics")
        if self.n_rows == 0:
            return
        if kind == "ridge":
            self._apply_ridge(policy)
        elif kind == "hybrid":
            self._apply_hybrid(policy)
        else:
            self._apply_counts(policy)
        count = self._count
        policy._pulls = (np.array(policy._pulls, dtype=np.int64) + count).tolist()
        policy._reward_sum = (np.array(policy._reward_sum) + self.reward_total).tolist()
        policy._n_updates += self.n_rows
        policy._changed()

    def _apply_ridge(self, policy: Any) -> None:
        gamma, l2 = policy.discount, policy.l2
        touched = np.flatnonzero(self._count > 0)
        decay, rest = _gamma_power(gamma, self._count)
        xx, xr = self.xx, self.xr
        D = xx.shape[1]
        eye = np.eye(D)
        A = policy._A[touched] * decay[touched, None, None] + rest[touched, None, None] * l2 * eye + xx[touched]
        b = policy._b[touched] * decay[touched, None] + xr[touched]
        A_inv = np.empty_like(A)
        for i, k in enumerate(touched):
            _check_precision(A[i], A_inv[i], b[i], policy, int(k))
        theta = np.einsum("kij,kj->ki", A_inv, b)
        policy._A[touched] = A
        policy._A_inv[touched] = A_inv
        policy._b[touched] = b
        policy._theta[touched] = theta
        policy._n_since_refactor[touched] = 0

    def _apply_hybrid(self, policy: Any) -> None:
        from bandit.kernels import hybrid

        gamma, l2, arm_l2 = policy.discount, policy.l2, policy.arm_l2
        decay, rest = (float(v) for v in _gamma_power(gamma, self.n_rows))
        S, s = self.xx, self.xr
        F = policy._F  # (K, m') arm features (with the constant when fit_intercept)
        K, D = s.shape
        P = policy._c.shape[0]
        A = policy._A * decay + rest * arm_l2 * np.eye(D) + S
        B = policy._B * decay + np.einsum("ki,kjl->kjil", F, S).reshape(K, D, P)
        b = policy._b * decay + s
        Z = policy._Z * decay + rest * l2 * np.eye(P) + np.einsum("ki,kp,kjl->ijpl", F, F, S).reshape(P, P)
        c = policy._c * decay + np.einsum("ki,kj->ij", F, s).reshape(P)
        _mirror_upper(Z)
        if not all(np.isfinite(arr).all() for arr in (A, B, b, Z, c)):
            raise ValueError(
                "the statistics would make the policy's precision matrices overflow (nothing was changed); "
                "standardise the features before fitting"
            )
        A_inv, C = np.empty_like(A), np.empty_like(B)
        A0_inv, beta, theta = np.empty((P, P)), np.empty(P), np.empty((K, D))
        status = hybrid._rebuild(A, B, b, Z, c, A_inv, C, A0_inv, beta, theta)
        if status != STATUS_OK:
            raise policy._status_error(status, "stats")
        for name, arr in (("A", A), ("A_inv", A_inv), ("B", B), ("C", C), ("b", b), ("theta", theta), ("Z", Z),
                          ("c", c), ("A0_inv", A0_inv), ("beta", beta)):
            getattr(policy, "_" + name)[...] = arr
        policy._n_since_refactor[0] = 0

    def _apply_counts(self, policy: Any) -> None:
        from bandit.policies import BetaTS

        if not isinstance(policy, BetaTS):
            return  # UniformRandom learns nothing beyond the pull and reward counts
        decay, _ = _gamma_power(policy.discount, self._count)
        touched = self._count > 0
        a0, b0 = policy.prior_alpha, policy.prior_beta
        reward, weight = self.reward, self.weight
        alpha = np.where(touched, a0 + decay * (policy._alpha - a0) + reward, policy._alpha)
        beta = np.where(touched, b0 + decay * (policy._beta - b0) + (weight - reward), policy._beta)
        policy._alpha[...] = alpha
        policy._beta[...] = beta


def _check_precision(A: np.ndarray, A_inv_out: np.ndarray, b: np.ndarray, policy: Any, k: int) -> None:
    """Invert the precision ``A`` of arm ``k`` into ``A_inv_out`` with the checks of the update kernels."""
    if not (np.isfinite(A).all() and np.isfinite(b).all()):
        raise ValueError(
            f"the statistics would make arm {policy.arm_names[k]!r}'s precision matrix overflow (nothing was changed);"
            " standardise the features before fitting"
        )
    if dense.spd_inverse_into(A, A_inv_out) != 0 or not (
        A.shape[0] * float(np.sum(np.diag(A) * np.diag(A_inv_out))) <= dense.MAX_CONDITION
    ):
        raise IllConditionedError(
            f"the statistics would make arm {policy.arm_names[k]!r}'s precision matrix lose precision (condition "
            f"number > {dense.MAX_CONDITION:.0e}); nothing was changed; standardise the features (e.g. to unit "
            "variance) and clip outliers"
        )


# ------------------------------------------------------------------------------------------------------------------
# LogisticTS: Newton (IRLS) passes of aggregated gradients and Hessians
# ------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class LogisticPassStatistics(_ArmSums):
    """The sums one Newton pass of the LogisticTS Laplace fit needs, at fixed coefficients per arm.

    For each arm k at the point ``coef[k]`` (``eta = coef_k . x``, ``p = sigmoid(eta)``, ``x`` the design row):
    ``objective = sum [softplus(eta) - y eta]`` (the negative log-likelihood), ``gradient = sum (p - y) x``,
    ``hessian = sum max(p (1 - p), 1e-6) x x^T``, ``label_sum = sum y`` and the row count. Plain sums (no
    discount: LogisticTS forgets once per batch, see :class:`LaplaceFit`), so pieces merge in any order.
    Build the empty pass with :meth:`LaplaceFit.next_pass`.

    Attributes
    ----------
    coef : ndarray, shape (K, D)
        The evaluation points.
    count : ndarray of int64, shape (K,)
    objective, label_sum : ndarray, shape (K,)
    gradient : ndarray, shape (K, D)
    hessian : ndarray, shape (K, D, D)
    """

    _layout: _Layout
    _coef: np.ndarray
    _count: np.ndarray
    _scal: tuple[np.ndarray, np.ndarray]
    _grad: tuple[np.ndarray, np.ndarray]
    _hess: tuple[np.ndarray, np.ndarray]

    _TYPE: ClassVar[str] = "LogisticPassStatistics"

    @classmethod
    def _empty(cls, layout: _Layout, coef: np.ndarray) -> LogisticPassStatistics:
        K, D = coef.shape
        coef = np.ascontiguousarray(coef, dtype=np.float64).copy()
        coef.flags.writeable = False
        return cls(
            layout, coef, np.zeros(K, dtype=np.int64), (np.zeros((K, 2)), np.zeros((K, 2))),
            (np.zeros((K, D)), np.zeros((K, D))), (np.zeros((K, D, D)), np.zeros((K, D, D))),
        )

    def accumulate(self, X: Any, arms: Any, rewards: Any) -> LogisticPassStatistics:
        """This pass followed by the rows (labels in [0, 1]); a new object (see :meth:`PolicyStatistics.accumulate`)."""
        lay = self._layout
        Xc, a, y = _batch(lay, X, arms, rewards)
        count = self._count.copy()
        scal = (self._scal[0].copy(), self._scal[1].copy())
        grad = (self._grad[0].copy(), self._grad[1].copy())
        hess = (self._hess[0].copy(), self._hess[1].copy())
        status = ss.accumulate_logistic(
            a, Xc, y, lay.fit_intercept, np.ascontiguousarray(self._coef), logistic.MIN_CURVATURE, count, scal[0],
            scal[1], grad[0], grad[1], hess[0], hess[1],
        )
        if status != ss.STATUS_OK:
            raise _kernel_error(status, "X or rewards")
        _mirror_upper(hess[0])
        _mirror_upper(hess[1])
        return LogisticPassStatistics(lay, self._coef, count, scal, grad, hess)

    def merge(self, other: LogisticPassStatistics) -> LogisticPassStatistics:
        """The sums over both pieces' rows (order-free up to round-off); ValueError if laid out differently."""
        if not isinstance(other, LogisticPassStatistics):
            raise TypeError(f"other must be LogisticPassStatistics, got {type(other).__name__}")
        self._layout.check_same(other._layout, "other", "this statistics object")
        if not np.array_equal(self._coef, other._coef):
            raise ValueError("other was evaluated at other coefficients (a different pass); merge pieces of one pass")
        return LogisticPassStatistics(
            self._layout, self._coef, self._count + other._count,
            _pair_merge(*self._scal, *other._scal), _pair_merge(*self._grad, *other._grad),
            _pair_merge(*self._hess, *other._hess),
        )

    @property
    def coef(self) -> np.ndarray:
        return self._coef.copy()

    @property
    def objective(self) -> np.ndarray:
        return (self._scal[0] + self._scal[1])[:, ss.OBJECTIVE]

    @property
    def label_sum(self) -> np.ndarray:
        return (self._scal[0] + self._scal[1])[:, ss.LABEL_SUM]

    @property
    def gradient(self) -> np.ndarray:
        return self._grad[0] + self._grad[1]

    @property
    def hessian(self) -> np.ndarray:
        return self._hess[0] + self._hess[1]

    def to_bytes(self) -> bytes:
        """Binary encoding as :meth:`PolicyStatistics.to_bytes` (the coefficients travel along)."""
        arrays = {
            "coef": self._coef, "count": self._count,
            "scal_hi": self._scal[0], "scal_lo": self._scal[1],
            "grad_hi": self._grad[0], "grad_lo": self._grad[1],
            "hess_hi": self._hess[0], "hess_lo": self._hess[1],
        }
        return _encode(self._TYPE, self._layout.to_json(), arrays)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> LogisticPassStatistics:
        """Decode :meth:`to_bytes` output (checked like :meth:`PolicyStatistics.from_bytes`)."""
        layout_json, arrays = _decode(data, cls._TYPE, "data")
        layout = _Layout.from_json(layout_json, "data")
        if layout.kind != "logistic" or layout.n_features is None:
            raise ValueError(f"data has kind {layout.kind!r}, expected 'logistic' with n_features")
        K, D = layout.n_arms, layout.n_features + int(layout.fit_intercept)
        shapes: dict[str, tuple[tuple[int, ...], str]] = {"coef": ((K, D), "float64"), "count": ((K,), "int64")}
        for name, shape in (("scal", (K, 2)), ("grad", (K, D)), ("hess", (K, D, D))):
            shapes[name + "_hi"] = (shape, "float64")
            shapes[name + "_lo"] = (shape, "float64")
        _expect_arrays(arrays, shapes, "data")
        coef = arrays["coef"]
        coef.flags.writeable = False
        return cls(
            layout, coef, arrays["count"], (arrays["scal_hi"], arrays["scal_lo"]),
            (arrays["grad_hi"], arrays["grad_lo"]), (arrays["hess_hi"], arrays["hess_lo"]),
        )


@dataclass
class _ArmNewton:
    """The Newton/line-search state of one arm of :class:`LaplaceFit` (mirrors ``logistic.logistic_update_batch``)."""

    beta: np.ndarray  # current iterate
    point: np.ndarray  # where the next pass evaluates
    phase: str = "start"  # start | full | search | done
    iteration: int = 0
    f: float = 0.0
    grad: np.ndarray = field(default_factory=lambda: np.empty(0))
    hess: np.ndarray = field(default_factory=lambda: np.empty(0))
    step: np.ndarray = field(default_factory=lambda: np.empty(0))
    decrement: float = 0.0
    scale: float = 1.0
    halvings: int = 0


class LaplaceFit:
    """The batch Laplace fit of a LogisticTS, computed from passes of mergeable sums.

    The fit it reproduces is ``LogisticTS.update_batch`` on all the rows (``logistic.logistic_update_batch``): for
    each arm k with rows, prior ``N(m_k, P_k^-1)`` (with ``discount`` gamma < 1 first ``P_k <- gamma P_k +
    (1 - gamma) l2 I``, once), the MAP ``beta_k`` of prior x Bernoulli-logit likelihood of the arm's rows by up to
    ``LogisticTS._NEWTON_ITERS`` Newton steps from ``m_k`` (Armijo backtracking while the Newton decrement
    ``g^T H^-1 g`` is at least 1e-6, full steps below, stop when it is below 1e-24), then ``P_k += sum w x x^T``
    at the MAP (``w = max(p (1 - p), 1e-6)``), ``Sigma_k = P_k^-1``, ``m_k = beta_k``.

    Every objective, gradient and Hessian is a sum over the rows at one point per arm, so each step is one pass
    (:class:`LogisticPassStatistics`): the first pass evaluates at ``m_k``; after each pass every arm either takes
    its Newton step, tries a line-search point, or is done. A typical fit takes 4-8 passes. Since every pass
    returns the gradient and Hessian along with the objective, an accepted point costs no extra pass.

    Usage::

        fit = LaplaceFit(policy)
        while not fit.done:
            fit.update(run_pass(fit.next_pass()))   # run_pass: accumulate every row into the empty pass, merged
        fit.apply(policy)

    Parameters
    ----------
    policy : LogisticTS
    """

    def __init__(self, policy: Any) -> None:
        from bandit.policies import LogisticTS

        if not isinstance(policy, LogisticTS):
            raise TypeError(f"policy must be a LogisticTS, got {type(policy).__name__}")
        self._layout = _layout_of(policy, "logistic")
        gamma, l2 = policy.discount, policy.l2
        D = policy._m.shape[1]
        self._P0 = policy._P * gamma + (1.0 - gamma) * l2 * np.eye(D) if gamma != 1.0 else policy._P.copy()
        self._m0 = policy._m.copy()
        self._iters = int(policy._NEWTON_ITERS)
        self._arms = [_ArmNewton(beta=self._m0[k].copy(), point=self._m0[k].copy()) for k in range(len(self._m0))]
        self._count: np.ndarray | None = None
        self._label_sum: np.ndarray | None = None
        self.n_passes = 0

    @property
    def done(self) -> bool:
        """True once every arm's fit has converged (or stopped); then call :meth:`apply`."""
        return self._count is not None and all(arm.phase == "done" for arm in self._arms)

    def next_pass(self) -> LogisticPassStatistics:
        """The empty pass to accumulate every row into (evaluation points: each arm's current proposal)."""
        if self.done:
            raise RuntimeError("the fit is done: call apply(policy)")
        return LogisticPassStatistics._empty(self._layout, np.stack([arm.point for arm in self._arms]))

    def update(self, stats: LogisticPassStatistics) -> None:
        """Advance every arm with the sums of one pass over all the rows (from :meth:`next_pass`)."""
        if not isinstance(stats, LogisticPassStatistics):
            raise TypeError(f"stats must be LogisticPassStatistics, got {type(stats).__name__}")
        self._layout.check_same(stats._layout, "stats", "the fit")
        expected = np.stack([arm.point for arm in self._arms])
        if not np.array_equal(stats._coef, expected):
            raise ValueError("stats were evaluated at other coefficients; pass the result of this fit's next_pass()")
        if self._count is None:
            self._count, self._label_sum = stats.count, stats.label_sum
            for k, arm in enumerate(self._arms):
                if self._count[k] == 0:
                    arm.phase = "done"
        elif not np.array_equal(stats._count, self._count):
            raise ValueError(
                f"stats hold {stats.n_rows} rows, the first pass held {int(self._count.sum())}: every pass must "
                "cover the same rows"
            )
        self.n_passes += 1
        f_data, g_data, h_data = stats.objective, stats.gradient, stats.hessian
        for k, arm in enumerate(self._arms):
            if arm.phase != "done":
                self._advance(k, arm, float(f_data[k]), g_data[k], h_data[k])

    def _advance(self, k: int, arm: _ArmNewton, f_data: float, g_data: np.ndarray, h_data: np.ndarray) -> None:
        P0, m0 = self._P0[k], self._m0[k]
        diff = arm.point - m0
        prior_grad = P0 @ diff
        f = 0.5 * float(diff @ prior_grad) + f_data
        grad, hess = prior_grad + g_data, P0 + h_data
        if arm.phase == "search" and not f <= arm.f - logistic._ARMIJO * arm.scale * arm.decrement:
            arm.halvings += 1
            if arm.halvings == logistic._MAX_HALVINGS:
                arm.phase = "done"  # no acceptable step: keep the current iterate (its Hessian is known)
                return
            arm.scale *= 0.5
            arm.point = arm.beta - arm.scale * arm.step
            return
        # the evaluated point is the new iterate (the start, a full step, or an accepted line-search point)
        arm.beta, arm.f, arm.grad, arm.hess = arm.point.copy(), f, grad, hess
        if arm.iteration == self._iters:
            arm.phase = "done"
            return
        arm.iteration += 1
        try:
            factor = np.linalg.cholesky(hess)
        except np.linalg.LinAlgError:
            finite = bool(np.isfinite(hess).all())
            raise (IllConditionedError if finite else ValueError)(
                f"the Laplace fit of arm {self._layout.arm_names[k]!r} met a Hessian that is not positive definite "
                "in float64 (nothing was changed); standardise the features (e.g. to unit variance) and clip outliers"
            ) from None
        arm.step = np.linalg.solve(factor.T, np.linalg.solve(factor, grad))
        arm.decrement = float(grad @ arm.step)
        if not arm.decrement > 1e-24:
            arm.phase = "done"
        elif arm.decrement < logistic._FULL_STEP_DECREMENT:
            arm.phase, arm.point = "full", arm.beta - arm.step
        else:
            arm.phase, arm.scale, arm.halvings = "search", 1.0, 0
            arm.point = arm.beta - arm.step

    def apply(self, policy: Any) -> None:
        """Load the fitted posteriors into ``policy`` (the LogisticTS given to the constructor, or one laid out alike).

        Raises
        ------
        RuntimeError
            The fit is not done, or ``policy`` is a snapshot.
        ValueError
            ``policy``'s layout differs, or a posterior precision would lose precision (nothing is changed).
        """
        if not self.done:
            raise RuntimeError("the fit needs more passes: call update(run_pass(next_pass())) until done")
        _check_writable(policy)
        self._layout.check_same(_layout_of(policy, _policy_kind(policy)), "policy", "the fit")
        assert self._count is not None and self._label_sum is not None
        touched = np.flatnonzero(self._count > 0)
        if not len(touched):
            return  # no rows: nothing learned (as update_batch with no rows)
        P = np.stack([self._arms[k].hess for k in touched])
        Sigma = np.empty_like(P)
        for i, k in enumerate(touched):
            _mirror_upper(P[i])
            _check_precision(P[i], Sigma[i], self._arms[k].beta, policy, int(k))
        policy._P[touched] = P
        policy._Sigma[touched] = Sigma
        policy._m[touched] = np.stack([self._arms[k].beta for k in touched])
        policy._n_since_refactor[touched] = 0
        policy._pulls = (np.array(policy._pulls, dtype=np.int64) + self._count).tolist()
        policy._reward_sum = (np.array(policy._reward_sum) + self._label_sum).tolist()
        policy._n_updates += int(self._count.sum())
        policy._changed()


# ------------------------------------------------------------------------------------------------------------------
# drivers
# ------------------------------------------------------------------------------------------------------------------

#: Either kind of mergeable statistics.
Statistics = PolicyStatistics | LogisticPassStatistics


@dataclass(frozen=True)
class FitReport:
    """What a fit did.

    Attributes
    ----------
    n_rows : int
        Rows learned from (each once).
    n_passes : int
        Passes over the rows (1, or the Newton passes of a LogisticTS).
    n_pending : int
        Rows skipped because their reward is not known yet (null), by the engines that read a ``reward`` column
        (:func:`bandit.spark.fit`).
    rejected : dict of str to int
        Rows skipped as unusable, counted by reason (``"bad_context"``, ``"unknown_arm"``, ``"bad_reward"``).
    """

    n_rows: int
    n_passes: int
    n_pending: int = 0
    rejected: dict[str, int] = field(default_factory=dict)


def fit_passes(policy: Any, run_pass: Callable[[Any], Any]) -> FitReport:
    """Fit ``policy`` from an engine that can run one pass of mergeable statistics over its rows.

    ``run_pass(empty)`` must return ``empty.accumulate(...)`` over every row, pieces merged (in row order when the
    policy has a discount): ``empty`` is a :class:`PolicyStatistics` (one pass) or, for LogisticTS, a
    :class:`LogisticPassStatistics` (one pass per Newton step, :class:`LaplaceFit`). Every pass must see the same
    rows. The policy is changed only at the end, and only if everything succeeded.

    Returns
    -------
    FitReport

    Examples
    --------
    >>> import numpy as np
    >>> from bandit import LogisticTS
    >>> rng = np.random.default_rng(1)
    >>> X = rng.normal(size=(2000, 2))
    >>> y = (rng.random(2000) < 1 / (1 + np.exp(-X[:, 0]))).astype(float)
    >>> arms = rng.integers(0, 2, 2000)
    >>> policy = LogisticTS(["a", "b"], n_features=2, seed=0)
    >>> def run_pass(empty):  # here: two chunks of an in-memory array
    ...     return empty.accumulate(X[:1000], arms[:1000], y[:1000]).merge(empty.accumulate(X[1000:], arms[1000:], y[1000:]))
    >>> report = fit_passes(policy, run_pass)
    >>> reference = LogisticTS(["a", "b"], n_features=2, seed=0)
    >>> reference.update_batch(X, arms, y)
    >>> report.n_rows, bool(np.allclose(policy.coef_, reference.coef_, atol=1e-9))
    (2000, True)
    """
    kind = _policy_kind(policy)
    _check_writable(policy)
    if kind != "logistic":
        stats = run_pass(PolicyStatistics.for_policy(policy))
        if not isinstance(stats, PolicyStatistics):
            raise TypeError(f"run_pass must return PolicyStatistics, got {type(stats).__name__}")
        stats.apply(policy)
        return FitReport(stats.n_rows, 1)
    fit = LaplaceFit(policy)
    while not fit.done:
        fit.update(run_pass(fit.next_pass()))
    fit.apply(policy)
    assert fit._count is not None
    return FitReport(int(fit._count.sum()), fit.n_passes)


def fit_batches(policy: Any, batches: Callable[[], Iterable[tuple[Any, Any, Any]]]) -> FitReport:
    """Fit ``policy`` from batches ``(X, arms, rewards)``; equals ``update_batch`` on all of them, concatenated.

    Parameters
    ----------
    policy : policy
        Any policy but VWPolicy.
    batches : callable
        Returns a fresh iterable of batches each time it is called (once per pass: LogisticTS needs several), e.g.
        ``lambda: pq_batches(path)``; every call must yield the same rows in the same order.

    Returns
    -------
    FitReport
    """

    def run_pass(empty: Any) -> Any:
        total = empty
        for X, arms, rewards in batches():
            total = total.accumulate(X, arms, rewards)
        return total

    return fit_passes(policy, run_pass)
