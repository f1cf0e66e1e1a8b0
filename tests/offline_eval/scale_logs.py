"""Decision logs for the scale-out tests: written in parts through the schema's encoder, with real policies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from bandit import EpsilonGreedy, LinUCB
from offline_eval.schema import encode_decisions

ARMS = ["solo", "duo", "family", "premium"]
PRICES = np.array([5.99, 9.99, 14.99, 19.99])


def write_log(directory: Path, n: int = 6000, parts: int = 4, seed: int = 0, missing: int = 25) -> dict:
    """A log of ``n`` decisions by an epsilon-greedy logger in ``parts`` part files; ``missing`` rows of the second
    part have no reward yet. Returns target policies (a trained LinUCB, a greedy one, a single arm)."""
    rng = np.random.default_rng(seed)
    d = 3
    X = rng.normal(size=(n, d))
    eligible = rng.random((n, len(ARMS))) < 0.8
    eligible[:, 0] = True
    logger = EpsilonGreedy(ARMS, n_features=d, epsilon=0.3, seed=seed)
    warm = rng.normal(size=(300, d))
    logger.update_batch(warm, rng.integers(0, 4, 300), rng.random(300))
    batch = logger.choose_batch(X, eligible=eligible)
    a = np.asarray(batch.indices)
    convert = rng.random(n) < 1 / (1 + np.exp(2.2 - 0.9 * X[:, 0] * (a % 2) + 0.3 * a))
    reward = PRICES[a] * convert
    bounds = np.linspace(0, n, parts + 1).astype(int)
    directory.mkdir(parents=True, exist_ok=True)
    for p in range(parts):
        rows = slice(bounds[p], bounds[p + 1])
        r = reward[rows].astype(object)
        if p == 1:
            r[:missing] = None
        table = encode_decisions(
            event_id=[f"evt-{i:07d}" for i in range(bounds[p], bounds[p + 1])],
            timestamp_us=np.arange(bounds[p], bounds[p + 1], dtype=np.int64) * 1_000_000,
            context=X[rows], action=a[rows], propensity=np.asarray(batch.propensities)[rows],
            probabilities=np.asarray(batch.probabilities)[rows], eligible=eligible[rows], policy="EpsilonGreedy",
            policy_version="v1", arms=ARMS, reward=r,
        )
        pq.write_table(table, directory / f"part-{p:08d}-x.parquet")
    learner = LinUCB(ARMS, n_features=d, alpha=0.5, exploration_floor=0.1, seed=1)
    learner.update_batch(X[:3000], a[:3000], reward[:3000])
    greedy = EpsilonGreedy(ARMS, n_features=d, epsilon=0.05, seed=2)
    greedy.update_batch(X[:3000], a[:3000], reward[:3000])
    return {"linucb": learner, "greedy": greedy, "always solo": "solo"}


def add_duplicates(directory: Path) -> list[str]:
    """Append a part repeating event ids of earlier parts (with other rewards, so keeping the wrong copy changes every
    estimate): rows of part 0, the first rows of part 1 (whose rewards are missing, so their repeats are dropped
    although they carry one), and one id twice within the new part. Returns the repeated ids in order of first
    repeat."""
    import pyarrow as pa
    import pyarrow.compute as pc

    parts = sorted(directory.glob("part-*.parquet"))
    first, second = pq.read_table(parts[0]), pq.read_table(parts[1])
    rows = pa.concat_tables([first.take([10, 11, 500]), second.take([0, 1]), first.take([500])])
    reward = pa.array([9.99, 0.0, 19.99, 5.99, 0.0, 14.99], type=pa.float64())
    rows = rows.set_column(rows.schema.get_field_index("reward"), "reward", reward)
    pq.write_table(rows, directory / f"part-{len(parts):08d}-dup.parquet")
    return pc.unique(rows.column("event_id")).to_pylist()


def old_form(table, null_at: tuple[str, int, int] | None = None):
    """``table`` (a decision log in the written schema) as logs were written before the list columns' elements were
    typed non-nullable; ``null_at`` = (column, row, slot) makes that list element null, which only this form can
    hold. Write it with ``pq.write_table``."""
    import pyarrow as pa

    from offline_eval.schema import LIST_COLUMNS

    fields, columns = [], []
    for field, column in zip(table.schema, table.columns, strict=True):
        if field.name in LIST_COLUMNS:
            size, value_type = field.type.list_size, field.type.value_type
            values = column.combine_chunks().flatten().to_pylist()
            if null_at is not None and null_at[0] == field.name:
                values[null_at[1] * size + null_at[2]] = None
            field = pa.field(field.name, pa.list_(value_type, size), nullable=False)
            column = pa.FixedSizeListArray.from_arrays(pa.array(values, value_type), size)
            assert field.type.value_field.nullable
        fields.append(field)
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=pa.schema(fields, metadata=table.schema.metadata))
