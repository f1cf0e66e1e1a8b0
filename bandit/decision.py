"""Decision records: what a policy chose and with exactly which probability."""

from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter
from typing import TYPE_CHECKING, cast

import numpy as np


def _fields_equal(a: object, b: object, names: tuple[str, ...]) -> bool:
    for name in names:
        x, y = getattr(a, name), getattr(b, name)
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            if not np.array_equal(x, y):
                return False
        elif x != y:
            return False
    return True


class Decision:
    """One decision (immutable).

    Attributes
    ----------
    arm : str
        Name of the chosen arm.
    index : int
        Index of the chosen arm in the policy's arm list (the decision-log ``action``).
    propensity : float
        Probability, in (0, 1], that this policy in this state chose ``arm`` for this context and eligibility.
    probabilities : ndarray, shape (K,)
        Full distribution over all K arms; exactly 0 for ineligible arms; sums to 1. Read-only.
    scores : ndarray, shape (K,)
        The policy's per-arm scores (e.g. UCB, sampled value); ``-inf`` for ineligible arms. Read-only.
    event_id : str or None
        The event id the decision was made for (outcomes join on it).
    policy_version : str
        Identifies the exact policy state that decided.
    eligible : ndarray of bool, shape (K,), or None
        The eligibility mask the decision was made under (requested arms that are not retired). Read-only. An
        eligible arm may still have probability 0 (a deterministic policy); off-policy evaluation needs to know
        it was eligible, so the decision log records this mask. ``None`` only for hand-built decisions.

    Notes
    -----
    The attributes are read-only properties; assigning one raises ``AttributeError``. A policy's decision keeps
    the (rows, K) array its kernel wrote and materialises ``probabilities``, ``scores`` (read-only views of its rows
    0 and 1), ``propensity`` and ``policy_version`` when they are first read: a decision costs little more than the
    draw. The policies' hot path (:meth:`bandit.policies.base.Policy.choose`) builds it with ``object.__new__``
    and sets the slots itself (a constructor call would cost a tenth of a decision): ``_out`` the kernel's buffer
    (owned by the decision from then on), ``_propensity``, ``_probabilities`` and ``_scores`` None, ``_version``
    the policy version or its ``(prefix, revision)`` parts, joined when first read.

    Examples
    --------
    >>> from bandit import UniformRandom
    >>> d = UniformRandom(["individual", "duo"], seed=0).choose(None, eligible=["duo"], event_id="req-1")
    >>> d.arm, d.index, d.propensity, d.probabilities, d.eligible
    ('duo', 1, 1.0, array([0., 1.]), array([False,  True]))
    """

    __slots__ = (
        "_arm", "_index", "_propensity", "_probabilities", "_scores", "_event_id", "_version", "_eligible", "_out"
    )
    __match_args__ = FIELDS = (
        "arm", "index", "propensity", "probabilities", "scores", "event_id", "policy_version", "eligible"
    )
    _arm: str
    _index: int
    _propensity: float | None
    _probabilities: np.ndarray | None
    _scores: np.ndarray | None
    _event_id: str | None
    _version: str | tuple[str, int]
    _eligible: np.ndarray | None
    _out: np.ndarray | None

    def __init__(
        self,
        arm: str,
        index: int,
        propensity: float,
        probabilities: np.ndarray,
        scores: np.ndarray,
        event_id: str | None,
        policy_version: str,
        eligible: np.ndarray | None = None,
    ) -> None:
        self._arm = arm
        self._index = index
        self._propensity = propensity
        self._probabilities = probabilities
        self._scores = scores
        self._event_id = event_id
        self._version = policy_version
        self._eligible = eligible
        self._out = None

    if TYPE_CHECKING:  # the types of the C-level getters below

        @property
        def arm(self) -> str: ...
        @property
        def index(self) -> int: ...
        @property
        def event_id(self) -> str | None: ...
        @property
        def eligible(self) -> np.ndarray | None: ...

    else:
        arm = property(attrgetter("_arm"), doc="Name of the chosen arm.")
        index = property(attrgetter("_index"), doc="Index of the chosen arm in the policy's arm list.")
        event_id = property(attrgetter("_event_id"), doc="The event id the decision was made for, or None.")
        eligible = property(attrgetter("_eligible"), doc="The eligibility mask the decision was made under (read-only).")

    def _views(self) -> tuple[np.ndarray, np.ndarray]:
        """Read-only views of the kernel's output rows (probabilities, scores), kept for later reads."""
        out = cast(np.ndarray, self._out)
        out.flags.writeable = False  # before the views are taken: they inherit it
        self._probabilities, self._scores = probs, scores = out[0], out[1]
        return probs, scores

    @property
    def probabilities(self) -> np.ndarray:
        """Full distribution over all K arms (read-only)."""
        p = self._probabilities
        return self._views()[0] if p is None else p

    @property
    def scores(self) -> np.ndarray:
        """The policy's per-arm scores; -inf for ineligible arms (read-only)."""
        s = self._scores
        return self._views()[1] if s is None else s

    @property
    def propensity(self) -> float:
        """Probability that this policy chose ``arm`` (in (0, 1])."""
        p = self._propensity
        if p is None:  # row 0 (probabilities) of the (2, K) output
            p = self._propensity = float(cast(np.ndarray, self._out).item(self._index))
        return p

    @property
    def policy_version(self) -> str:
        """Identifies the exact policy state that decided."""
        v = self._version
        if isinstance(v, tuple):
            v = self._version = f"{v[0]}{v[1]}"
        return v

    __hash__ = None  # type: ignore[assignment]  # holds arrays: not hashable

    def __eq__(self, other: object) -> bool:
        """Field-by-field equality (arrays compared element-wise): the same decision, e.g. after save/load."""
        if not isinstance(other, Decision):
            return NotImplemented
        return _fields_equal(self, other, self.FIELDS)

    def __repr__(self) -> str:
        return "Decision(" + ", ".join(f"{name}={getattr(self, name)!r}" for name in self.FIELDS) + ")"


@dataclass(frozen=True, slots=True, eq=False)
class BatchDecision:
    """n decisions made at once.

    Attributes
    ----------
    indices : ndarray of int64, shape (n,)
    arms : list of str, length n
    propensities : ndarray of float64, shape (n,)
    probabilities : ndarray of float64, shape (n, K)
    scores : ndarray of float64, shape (n, K)
    event_ids : list of (str or None), length n
    policy_version : str
    eligible : ndarray of bool, shape (n, K), or None
        The eligibility mask each row was decided under (read-only; ``None`` only for hand-built batches).

    Examples
    --------
    >>> import numpy as np
    >>> from bandit import UniformRandom
    >>> batch = UniformRandom(["individual", "duo"], seed=0).choose_batch(np.zeros((3, 1)), eligible=["individual"])
    >>> len(batch), batch.arms, batch.propensities
    (3, ['individual', 'individual', 'individual'], array([1., 1., 1.]))
    >>> batch[0].arm
    'individual'
    """

    indices: np.ndarray
    arms: list[str]
    propensities: np.ndarray
    probabilities: np.ndarray
    scores: np.ndarray
    event_ids: list[str | None]
    policy_version: str
    eligible: np.ndarray | None = None

    __hash__ = None  # type: ignore[assignment]

    def __eq__(self, other: object) -> bool:
        """Field-by-field equality (arrays compared element-wise)."""
        if not isinstance(other, BatchDecision):
            return NotImplemented
        return _fields_equal(self, other, self.__slots__)

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def __getitem__(self, i: int) -> Decision:
        return Decision(
            arm=self.arms[i],
            index=int(self.indices[i]),
            propensity=float(self.propensities[i]),
            probabilities=self.probabilities[i],
            scores=self.scores[i],
            event_id=self.event_ids[i],
            policy_version=self.policy_version,
            eligible=None if self.eligible is None else self.eligible[i],
        )
