"""Decision records: what a policy chose and with exactly which probability."""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True, eq=False)
class Decision:
    """One decision.

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

    Examples
    --------
    >>> from bandit import UniformRandom
    >>> d = UniformRandom(["individual", "duo"], seed=0).choose(None, eligible=["duo"], event_id="req-1")
    >>> d.arm, d.index, d.propensity, d.probabilities, d.eligible
    ('duo', 1, 1.0, array([0., 1.]), array([False,  True]))
    """

    arm: str
    index: int
    propensity: float
    probabilities: np.ndarray
    scores: np.ndarray
    event_id: str | None
    policy_version: str
    eligible: np.ndarray | None = None

    __hash__ = None  # type: ignore[assignment]  # holds arrays: not hashable

    def __eq__(self, other: object) -> bool:
        """Field-by-field equality (arrays compared element-wise): the same decision, e.g. after save/load."""
        if not isinstance(other, Decision):
            return NotImplemented
        return _fields_equal(self, other, self.__slots__)


_object_new = object.__new__
_SET_DECISION_FIELDS = tuple(getattr(Decision, name).__set__ for name in Decision.__slots__)


def new_decision(
    arm: str,
    index: int,
    propensity: float,
    probabilities: np.ndarray,
    scores: np.ndarray,
    event_id: str | None,
    policy_version: str,
    eligible: np.ndarray,
) -> Decision:
    """``Decision(...)`` for the policies' hot path, about twice as fast.

    The frozen dataclass ``__init__`` sets each field through ``object.__setattr__`` by name; this sets the slots
    through their descriptors directly. The result is an ordinary (frozen) :class:`Decision`.
    """
    d = _object_new(Decision)
    s_arm, s_index, s_prop, s_probs, s_scores, s_event, s_version, s_eligible = _SET_DECISION_FIELDS
    s_arm(d, arm)
    s_index(d, index)
    s_prop(d, propensity)
    s_probs(d, probabilities)
    s_scores(d, scores)
    s_event(d, event_id)
    s_version(d, policy_version)
    s_eligible(d, eligible)
    return d


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
