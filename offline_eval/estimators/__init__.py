"""Off-policy estimators: small frozen dataclasses with one verb, ``estimate(data, target) -> Estimate``."""

from offline_eval.estimators.base import Estimate, Estimator, ResolvedTarget, resolve_target
from offline_eval.estimators.direct import DM
from offline_eval.estimators.doubly_robust import DR, DROS, SNDR, SwitchDR
from offline_eval.estimators.ips import IPS, SNIPS

__all__ = [
    "DM",
    "DR",
    "DROS",
    "IPS",
    "SNDR",
    "SNIPS",
    "Estimate",
    "Estimator",
    "ResolvedTarget",
    "SwitchDR",
    "resolve_target",
]
