"""Off-policy evaluation of offer policies on logged decisions.

Read logs into :class:`LoggedData` (arrays, a DataFrame or Parquet decision logs in the schema of
:mod:`offline_eval.schema`), estimate a target policy's value with :class:`IPS`, :class:`SNIPS`, :class:`DM`,
:class:`DR`, :class:`SNDR`, :class:`SwitchDR` or :class:`DROS` (each ``estimate(data, target) -> Estimate`` with an
interval and diagnostics), compare many policies with :func:`evaluate` and two with :func:`compare`. The reward
models used by the model-based estimators live in :mod:`offline_eval.reward_models`.

This package never imports the policy library: a target policy is an (n, K) probability array, an (n,) action
array, an arm, or any object with ``action_probabilities(X, eligible)``; an object that also names its arms
(``arm_names``) is matched to the log's arms by name (see :mod:`offline_eval.estimators.base`).

Import cost follows use: the public names below are imported on first access (PEP 562), so
``import offline_eval.schema`` (what the decision-log writer needs) loads neither numba nor the estimators.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from offline_eval.data import LoggedData
    from offline_eval.diagnostics import Diagnostics, DiagnosticWarning
    from offline_eval.estimators import DM, DR, DROS, IPS, SNDR, SNIPS, Estimate, Estimator, SwitchDR
    from offline_eval.evaluate import compare, evaluate
    from offline_eval.formats import DSJSONWarning, read_dsjson, write_cb_adf, write_dsjson
    from offline_eval.intervals import RowTerms
    from offline_eval.report import Guardrail, RolloutReport, rollout_report
    from offline_eval.reward_models import (
        CrossFittedRewardModel,
        LogisticRewardModel,
        MRDRRewardModel,
        RidgeRewardModel,
        SklearnRewardModel,
        ValueAwareRewardModel,
        default_reward_model,
    )

#: Public name -> the submodule defining it (imported on first access).
_LAZY = {
    "LoggedData": "offline_eval.data",
    "Diagnostics": "offline_eval.diagnostics",
    "DiagnosticWarning": "offline_eval.diagnostics",
    "DM": "offline_eval.estimators",
    "DR": "offline_eval.estimators",
    "DROS": "offline_eval.estimators",
    "IPS": "offline_eval.estimators",
    "SNDR": "offline_eval.estimators",
    "SNIPS": "offline_eval.estimators",
    "Estimate": "offline_eval.estimators",
    "Estimator": "offline_eval.estimators",
    "SwitchDR": "offline_eval.estimators",
    "compare": "offline_eval.evaluate",
    "evaluate": "offline_eval.evaluate",
    "DSJSONWarning": "offline_eval.formats",
    "read_dsjson": "offline_eval.formats",
    "write_cb_adf": "offline_eval.formats",
    "write_dsjson": "offline_eval.formats",
    "RowTerms": "offline_eval.intervals",
    "Guardrail": "offline_eval.report",
    "RolloutReport": "offline_eval.report",
    "rollout_report": "offline_eval.report",
    "CrossFittedRewardModel": "offline_eval.reward_models",
    "LogisticRewardModel": "offline_eval.reward_models",
    "MRDRRewardModel": "offline_eval.reward_models",
    "RidgeRewardModel": "offline_eval.reward_models",
    "SklearnRewardModel": "offline_eval.reward_models",
    "ValueAwareRewardModel": "offline_eval.reward_models",
    "default_reward_model": "offline_eval.reward_models",
}

__all__ = [
    "DM",
    "DR",
    "DROS",
    "DSJSONWarning",
    "IPS",
    "SNDR",
    "SNIPS",
    "CrossFittedRewardModel",
    "DiagnosticWarning",
    "Diagnostics",
    "Estimate",
    "Estimator",
    "Guardrail",
    "LoggedData",
    "LogisticRewardModel",
    "MRDRRewardModel",
    "RidgeRewardModel",
    "RolloutReport",
    "RowTerms",
    "SklearnRewardModel",
    "SwitchDR",
    "ValueAwareRewardModel",
    "compare",
    "default_reward_model",
    "evaluate",
    "read_dsjson",
    "rollout_report",
    "write_cb_adf",
    "write_dsjson",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value  # later look-ups skip this hook
        return value
    if not name.startswith("__"):  # a submodule not imported yet, e.g. ``offline_eval.intervals``
        try:
            return importlib.import_module(f"offline_eval.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"offline_eval.{name}":
                raise
    raise AttributeError(f"module 'offline_eval' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


class _Package(types.ModuleType):
    """This package's module type: importing the submodule ``offline_eval.evaluate`` must not shadow the function.

    The import system binds a loaded submodule as an attribute of its package; for ``evaluate`` (a submodule and
    the public function it defines) that binding is skipped, so ``offline_eval.evaluate`` stays the function
    whichever import came first.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _LAZY and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
