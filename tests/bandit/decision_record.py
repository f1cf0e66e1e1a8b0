"""Decisions of every policy on a fixed script, recorded so that a refactor can prove it changed no decision.

:func:`record` runs each policy class through a seeded script -- learn a batch, then ``choose`` with and without
event ids and eligibility masks (learning after each decision), ``choose_batch``, ``action_probabilities`` -- and
returns every arm drawn, probability and score as arrays. ``tests/bandit/data/recorded_decisions.npz`` holds the
output of the code before the kernels were split into one file per policy (``python tests/bandit/decision_record.py
PATH`` writes it); ``test_policies.py`` checks that today's code reproduces it bit for bit.

Every constructor argument is recorded (and passed back) explicitly, so a later change of a default does not
change the script.
"""

from __future__ import annotations

import json
import sys

import numpy as np
from policy_helpers import ARMS, POLICY_CLASSES, D, training_data

from bandit.policies.base import Policy

#: The script's contexts, eligibility masks (None = all arms) and event ids.
_CONTEXTS = np.random.default_rng(2024).normal(size=(24, D))
_MASKS = [None, ["duo", "family"], np.array([True, False, True, True]), ["student"]]


def _policy(cls: type[Policy], params: dict) -> Policy:
    return cls(ARMS, **params)


def run_script(policy: Policy) -> dict[str, np.ndarray]:
    """Every decision of the script for one (fresh, seeded) policy."""
    X, arms, rewards = training_data(150)
    policy.update_batch(X, arms, rewards)
    out: dict[str, list] = {"index": [], "probabilities": [], "scores": []}
    for i, x in enumerate(_CONTEXTS):
        mask = _MASKS[i % len(_MASKS)]
        event_id = f"req-{i}" if i % 3 else None
        d = policy.choose(x, eligible=mask, event_id=event_id)
        out["index"].append(d.index)
        out["probabilities"].append(np.array(d.probabilities))
        out["scores"].append(np.array(d.scores))
        policy.update(x, d.index, float(i % 2))
    batch = policy.choose_batch(_CONTEXTS, event_ids=[f"b-{i}" for i in range(len(_CONTEXTS))])
    free = policy.choose_batch(_CONTEXTS[:8], eligible=np.array([True, True, False, True]))
    return {
        "index": np.array(out["index"], dtype=np.int64),
        "probabilities": np.stack(out["probabilities"]),
        "scores": np.stack(out["scores"]),
        "batch_index": np.concatenate([batch.indices, free.indices]),
        "batch_probabilities": np.concatenate([batch.probabilities, free.probabilities]),
        "batch_scores": np.concatenate([batch.scores, free.scores]),
        "action_probabilities": policy.action_probabilities(_CONTEXTS, eligible=["individual", "family", "student"]),
    }


def record() -> dict[str, np.ndarray]:
    """The script's outputs for every policy class, keyed ``"<class>/<name>"``, plus ``"<class>/params"`` (JSON)."""
    result: dict[str, np.ndarray] = {}
    for cls in POLICY_CLASSES:
        params = {"n_features": D, "seed": 7, **cls._test_params()}
        params = _policy(cls, params).get_params()
        for name, arr in run_script(_policy(cls, params)).items():
            result[f"{cls.__name__}/{name}"] = arr
        result[f"{cls.__name__}/params"] = np.array(json.dumps(params, sort_keys=True))
    return result


if __name__ == "__main__":
    np.savez(sys.argv[1], **record())
