"""upsell-bandit: contextual bandits that choose which paid plan to offer, with exact propensities.

Public names: the arm and decision types, the policies, :func:`load`, :func:`warmup` and the decision log.

:class:`DecisionLog` (pandas, pyarrow and the log schema) is imported on first access, so ``import bandit`` for
serving decisions does not pay for the Parquet stack; nothing here imports ``offline_eval``'s estimators.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from bandit.arms import Arm
from bandit.decision import BatchDecision, Decision
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

if TYPE_CHECKING:
    from bandit.decision_log import DecisionLog

#: Public name -> the submodule defining it (imported on first access).
_LAZY = {"DecisionLog": "bandit.decision_log"}

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


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value  # later look-ups skip this hook
        return value
    if not name.startswith("__"):  # a submodule not imported yet, e.g. ``bandit.attribution``
        try:
            return importlib.import_module(f"bandit.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"bandit.{name}":
                raise
    raise AttributeError(f"module 'bandit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
