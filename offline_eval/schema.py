"""The decision-log schema: the one contract between ``bandit`` and ``offline_eval``.

A decision log is a Parquet dataset (one or more part files) with **one row per decision**. The policy library
writes it (``bandit.DecisionLog``); ``offline_eval.LoggedData.from_parquet`` reads it. Nothing else couples the
two packages, and this module imports neither numba nor any policy code.

Columns
-------
=================  ================================  ==========================================================
column             Arrow type                        meaning
=================  ================================  ==========================================================
``event_id``       string                            unique per decision; outcomes join on it
``timestamp``      timestamp[us, UTC]                when the decision was made
``context``        fixed_size_list<float64>[d]       the feature vector the policy saw (d = ``n_features``)
``action``         int32                             index of the chosen arm in the arm list (metadata below)
``action_name``    string                            name of the chosen arm
``propensity``     float64                           probability of the chosen arm, in (0, 1]
``probabilities``  fixed_size_list<float64>[K]       full distribution over the K arms; 0 for ineligible arms
``eligible``       fixed_size_list<bool>[K]          eligibility mask at decision time
``policy``         string                            policy class / name
``policy_version`` string                            identifies the exact policy state that decided
``reward``         float64, nullable                 null until an outcome is joined
=================  ================================  ==========================================================

Schema metadata (Arrow key/value, UTF-8):

* ``upsell_bandit.schema_version`` -- :data:`SCHEMA_VERSION`.
* ``upsell_bandit.arms`` -- JSON list of arm names in index order. ``action`` indexes this list. When arms are
  added to a policy they are appended (indices of existing arms never change); retired arms keep their index
  and have probability 0 / eligible ``False`` in later rows, so indices stay comparable across a whole log.

Extra columns (raw user attributes, guardrail metrics) are allowed and preserved by readers.

The **outcomes table** that is joined to a log has ``event_id`` (string), ``timestamp`` (timestamp[us, UTC])
and ``reward`` (float64), plus optional extra metric columns.

Examples
--------
>>> schema = decision_log_schema(n_features=3, arms=["individual", "duo"])
>>> schema.field("context").type
FixedSizeListType(fixed_size_list<item: double>[3])
>>> arms_from_schema(schema)
['individual', 'duo']
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pyarrow as pa

SCHEMA_VERSION = "1"

META_SCHEMA_VERSION = "upsell_bandit.schema_version"
META_ARMS = "upsell_bandit.arms"

EVENT_ID = "event_id"
TIMESTAMP = "timestamp"
CONTEXT = "context"
ACTION = "action"
ACTION_NAME = "action_name"
PROPENSITY = "propensity"
PROBABILITIES = "probabilities"
ELIGIBLE = "eligible"
POLICY = "policy"
POLICY_VERSION = "policy_version"
REWARD = "reward"

#: Column order of a decision log.
DECISION_COLUMNS: tuple[str, ...] = (
    EVENT_ID,
    TIMESTAMP,
    CONTEXT,
    ACTION,
    ACTION_NAME,
    PROPENSITY,
    PROBABILITIES,
    ELIGIBLE,
    POLICY,
    POLICY_VERSION,
    REWARD,
)

#: Required columns of an outcomes table.
OUTCOME_COLUMNS: tuple[str, ...] = (EVENT_ID, TIMESTAMP, REWARD)

TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")


def decision_log_schema(
    n_features: int, arms: Sequence[str], extra_fields: Sequence[pa.Field] = ()
) -> pa.Schema:
    """Arrow schema of a decision log for ``n_features`` context features and the given arm names.

    Parameters
    ----------
    n_features : int
        Length d of each context vector.
    arms : sequence of str
        Arm names in index order (length K).
    extra_fields : sequence of pyarrow.Field
        Additional columns appended after the standard ones.
    """
    if isinstance(n_features, bool) or not isinstance(n_features, int) or n_features < 1:
        raise ValueError(f"n_features must be a positive int, got {n_features!r}")
    names = [str(a) for a in arms]
    if not names:
        raise ValueError("arms must name at least one arm")
    if len(set(names)) != len(names):
        raise ValueError(f"arms must be unique, got {names}")
    k = len(names)
    fields = [
        pa.field(EVENT_ID, pa.string(), nullable=False),
        pa.field(TIMESTAMP, TIMESTAMP_TYPE, nullable=False),
        pa.field(CONTEXT, pa.list_(pa.float64(), n_features), nullable=False),
        pa.field(ACTION, pa.int32(), nullable=False),
        pa.field(ACTION_NAME, pa.string(), nullable=False),
        pa.field(PROPENSITY, pa.float64(), nullable=False),
        pa.field(PROBABILITIES, pa.list_(pa.float64(), k), nullable=False),
        pa.field(ELIGIBLE, pa.list_(pa.bool_(), k), nullable=False),
        pa.field(POLICY, pa.string(), nullable=False),
        pa.field(POLICY_VERSION, pa.string(), nullable=False),
        pa.field(REWARD, pa.float64(), nullable=True),
        *extra_fields,
    ]
    metadata = {META_SCHEMA_VERSION: SCHEMA_VERSION, META_ARMS: json.dumps(names)}
    return pa.schema(fields, metadata=metadata)


def outcome_schema(extra_fields: Sequence[pa.Field] = ()) -> pa.Schema:
    """Arrow schema of an outcomes table (``event_id``, ``timestamp``, ``reward`` and any extra metrics)."""
    return pa.schema(
        [
            pa.field(EVENT_ID, pa.string(), nullable=False),
            pa.field(TIMESTAMP, TIMESTAMP_TYPE, nullable=False),
            pa.field(REWARD, pa.float64(), nullable=False),
            *extra_fields,
        ]
    )


def arms_from_schema(schema: pa.Schema) -> list[str] | None:
    """Arm names stored in a decision-log schema's metadata, or ``None`` if absent.

    Raises ``ValueError`` for a log written with a newer schema version than this library understands.
    """
    meta = schema.metadata or {}
    version = meta.get(META_SCHEMA_VERSION.encode())
    if version is not None and int(version.decode()) > int(SCHEMA_VERSION):
        raise ValueError(
            f"decision log has schema version {version.decode()}, this library reads up to {SCHEMA_VERSION}; "
            "upgrade upsell-bandit"
        )
    raw = meta.get(META_ARMS.encode())
    if raw is None:
        return None
    names = json.loads(raw.decode())
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"schema metadata {META_ARMS!r} must be a JSON list of strings, got {raw!r}")
    return names
