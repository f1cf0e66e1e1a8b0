"""Off-policy evaluation of offer policies on logged decisions.

Read logs into :class:`LoggedData` (arrays, a DataFrame or Parquet decision logs in the schema of
:mod:`offline_eval.schema`), estimate a target policy's value with :class:`IPS`, :class:`SNIPS`, :class:`DM`,
:class:`DR`, :class:`SNDR`, :class:`SwitchDR` or :class:`DROS` (each ``estimate(data, target) -> Estimate`` with an
interval and diagnostics), compare many policies with :func:`evaluate` and two with :func:`compare`. The reward
models used by the model-based estimators live in :mod:`offline_eval.reward_models`.

This package never imports the policy library: a target policy is an (n, K) probability array, an (n,) action
array, an arm, or any object with ``action_probabilities(X, eligible)``.
"""

from offline_eval.data import LoggedData
from offline_eval.diagnostics import Diagnostics, DiagnosticWarning
from offline_eval.estimators import DM, DR, DROS, IPS, SNDR, SNIPS, Estimate, Estimator, SwitchDR
from offline_eval.evaluate import compare, evaluate
from offline_eval.intervals import RowTerms
from offline_eval.reward_models import (
    CrossFittedRewardModel,
    LogisticRewardModel,
    RidgeRewardModel,
    SklearnRewardModel,
    ValueAwareRewardModel,
    default_reward_model,
)

__all__ = [
    "DM",
    "DR",
    "DROS",
    "IPS",
    "SNDR",
    "SNIPS",
    "CrossFittedRewardModel",
    "DiagnosticWarning",
    "Diagnostics",
    "Estimate",
    "Estimator",
    "LoggedData",
    "LogisticRewardModel",
    "RidgeRewardModel",
    "RowTerms",
    "SklearnRewardModel",
    "SwitchDR",
    "ValueAwareRewardModel",
    "compare",
    "default_reward_model",
    "evaluate",
]
