"""Shared helpers of the decision-log and attribution tests: hand-built decisions, batches, a recording policy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bandit.decision import BatchDecision, Decision

ARMS = ["individual", "duo", "family"]
T0 = pd.Timestamp("2024-05-01T00:00:00", tz="UTC")


def make_decision(event_id: str | None, index: int, probs, version: str = "v1", eligible=None) -> Decision:
    """A hand-built decision; eligible defaults to the arms of positive probability (as a policy with exploration)."""
    probs = np.asarray(probs, dtype=np.float64)
    return Decision(
        arm=ARMS[index],
        index=index,
        propensity=float(probs[index]),
        probabilities=probs,
        scores=np.where(probs > 0, probs, -np.inf),
        event_id=event_id,
        policy_version=version,
        eligible=probs > 0 if eligible is None else np.asarray(eligible, dtype=bool),
    )


def random_decisions(n: int, seed: int, d: int = 4):
    """n decisions with random distributions (some arms ineligible) and contexts; returns (decisions, X)."""
    rng = np.random.default_rng(seed)
    decisions = []
    for i in range(n):
        probs = rng.dirichlet(np.ones(len(ARMS)))
        if i % 3 == 0:
            probs[i % len(ARMS)] = 0.0
            probs /= probs.sum()
        index = int(rng.choice(len(ARMS), p=probs))
        decisions.append(make_decision(f"ev-{seed}-{i}", index, probs, version=f"v{i % 2}"))
    return decisions, rng.normal(size=(n, d))


def as_batch(decisions: list[Decision]) -> BatchDecision:
    return BatchDecision(
        indices=np.array([d.index for d in decisions], dtype=np.int64),
        arms=[d.arm for d in decisions],
        propensities=np.array([d.propensity for d in decisions]),
        probabilities=np.stack([d.probabilities for d in decisions]),
        scores=np.stack([d.scores for d in decisions]),
        event_ids=[d.event_id for d in decisions],
        policy_version=decisions[0].policy_version,
        eligible=np.stack([d.eligible for d in decisions]),
    )


class RecordingPolicy:
    """Stand-in for a bandit policy: arm names plus an update_batch that records its calls."""

    def __init__(self, arm_names, fail: bool = False):
        self.arm_names = list(arm_names)
        self.fail = fail
        self.calls: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def update_batch(self, X, arms, rewards):
        if self.fail:
            raise RuntimeError("update failed")
        self.calls.append((np.array(X, copy=True), np.array(arms, copy=True), np.array(rewards, copy=True)))


def part_files(path: Path) -> list[Path]:
    return sorted(path.glob("part-*.parquet"))
