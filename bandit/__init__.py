"""upsell-bandit: contextual bandits that choose which paid plan to offer, with exact propensities.

Public names: the arm and decision types, the policies, :func:`load` and :func:`warmup`.
"""

from bandit.arms import Arm
from bandit.decision import BatchDecision, Decision
from bandit.decision_log import DecisionLog
from bandit.policies import (
    BetaTS,
    EpsilonGreedy,
    HybridLinearTS,
    HybridLinUCB,
    LinearTS,
    LinUCB,
    LogisticTS,
    UniformRandom,
    VWPolicy,
    warmup,
)
from bandit.state import load

__all__ = [
    "Arm",
    "BatchDecision",
    "BetaTS",
    "Decision",
    "DecisionLog",
    "EpsilonGreedy",
    "HybridLinUCB",
    "HybridLinearTS",
    "LinUCB",
    "LinearTS",
    "LogisticTS",
    "UniformRandom",
    "VWPolicy",
    "load",
    "warmup",
]
