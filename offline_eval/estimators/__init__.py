"""Off-policy estimators: small frozen dataclasses with one verb, ``estimate(data, target) -> Estimate``."""

from offline_eval.estimators.base import Estimate, Estimator, ResolvedTarget, estimator_classes, resolve_target

# the estimator modules, imported in the order evaluate() runs their estimators (they register themselves)
# isort: split
from offline_eval.estimators.ips import IPS, SNIPS

# isort: split
from offline_eval.estimators.direct import DM

# isort: split
from offline_eval.estimators.doubly_robust import DR, DROS, SNDR, SwitchDR

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
    "estimator_classes",
    "resolve_target",
]
