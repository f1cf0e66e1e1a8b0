"""bandit.spark.fit: per-partition statistics merged on the driver equal update_batch on the same rows."""

from __future__ import annotations

import copy

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bandit import BetaTS, HybridLinUCB, LinUCB, LogisticTS, VWPolicy
from offline_eval.schema import encode_decisions
from tests.bandit.policy_helpers import ARMS, make, state_of
from tests.offline_eval.scale_logs import old_form

pytestmark = [
    pytest.mark.slow,  # one shared local[2] session; each Spark job costs ~0.5-1 s once the workers are warm
    # createDataFrame(pandas) in the tests warns about pandas 3 (the Arrow conversion used here works)
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
]

NAMES = [a.name for a in ARMS]


def joined_log(n: int, seed: int, d: int = 3) -> pa.Table:
    """A decision log with 0/1 rewards joined (some null: pending), distinct increasing timestamps."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    action = rng.integers(0, len(NAMES), size=n)
    probs = np.full((n, len(NAMES)), 1.0 / len(NAMES))
    reward = (rng.random(n) < 1 / (1 + np.exp(-X[:, 0] + 0.3 * action))).astype(float)
    reward_arr = pa.array(np.where(rng.random(n) < 0.1, None, reward).tolist(), type=pa.float64())
    return encode_decisions(
        event_id=[f"e{i}" for i in range(n)], timestamp_us=1_700_000_000_000_000 + np.arange(n) * 1000, context=X,
        action=action, propensity=probs[np.arange(n), action], probabilities=probs,
        eligible=np.ones((n, len(NAMES)), dtype=bool), policy="UniformRandom", policy_version="v1", arms=NAMES,
        reward=reward_arr,
    )


def usable(table: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    df = table.to_pandas()
    df = df[df["reward"].notna()]
    X = np.stack(df["context"].to_list())
    arms = np.array([NAMES.index(a) for a in df["action_name"]])
    return X, arms, df["reward"].to_numpy()


def write_parts(table: pa.Table, root, parts: int = 3) -> str:
    bounds = np.linspace(0, table.num_rows, parts + 1).astype(int)
    for i in range(parts):
        pq.write_table(table.slice(bounds[i], bounds[i + 1] - bounds[i]), root / f"part-{i:08d}-x.parquet")
    return str(root)


def assert_close(got, want, rtol: float) -> None:
    a, b = state_of(got)["arrays"], state_of(want)["arrays"]
    for name, ref in b.items():
        if ref.dtype.kind == "f" and ref.size:
            np.testing.assert_allclose(a[name], ref, rtol=0, atol=rtol * np.abs(ref).max(), err_msg=name)
        else:
            np.testing.assert_array_equal(a[name], ref, err_msg=name)


@pytest.mark.parametrize("cls", [LinUCB, HybridLinUCB, LogisticTS], ids=lambda c: c.__name__)
def test_spark_fit_equals_update_batch(spark, tmp_path, cls):
    from bandit.spark import fit

    table = joined_log(900, seed=1)
    df = spark.read.parquet(write_parts(table, tmp_path))
    policy = make(cls)
    reference = copy.deepcopy(policy)
    report = fit(policy, df)
    X, arms, rewards = usable(table)
    reference.update_batch(X, arms, rewards)
    assert report.n_rows == len(rewards) and report.n_pending == table.num_rows - len(rewards)
    assert report.rejected == {}
    assert (report.n_passes > 1) == (cls is LogisticTS)
    assert_close(policy, reference, 1e-9 if cls is not LogisticTS else 1e-7)


def test_spark_fit_drops_repeated_event_ids_as_read_decision_log_does(spark, tmp_path):
    """A later row repeating an earlier event id (another context and reward) is not learned, and is warned about."""
    from bandit.spark import fit
    from offline_eval.schema import DecisionLogWarning

    table = joined_log(400, seed=3)
    repeat = table.slice(5, 1)
    for name, value in (("reward", [0.0 if table.column("reward")[5].as_py() else 1.0]), ("context", [[4.0, -4.0, 4.0]])):
        field = table.schema.field(name)
        repeat = repeat.set_column(table.schema.get_field_index(name), field, pa.array(value, field.type))
    with_repeat = pa.concat_tables([table.slice(0, 300), repeat, table.slice(300)])
    df = spark.read.parquet(write_parts(with_repeat, tmp_path, parts=1))
    policy = make(LinUCB)
    reference = copy.deepcopy(policy)
    with pytest.warns(DecisionLogWarning, match="1 row\\(s\\) whose event id already appeared.*'e5'"):
        report = fit(policy, df)
    reference.update_batch(*usable(table))
    assert report.n_rows == len(usable(table)[2])
    assert_close(policy, reference, 1e-9)


def test_spark_fit_reads_old_and_new_parts_and_rejects_a_null_context_element(spark, tmp_path):
    """A directory of an old-form part (nullable list elements, one of them null) then a new-form part (the other
    order: tests/offline_eval/test_spark_eval.py): the null element's row is a bad context, every other row is
    learned."""
    from bandit.spark import fit

    table = joined_log(400, seed=4)
    row = int(np.flatnonzero(~np.isnan(table.column("reward").to_numpy(zero_copy_only=False)))[3])  # has a reward
    old, new = old_form(table.slice(0, 200), ("context", row, 2)), table.slice(200)
    for i, part in enumerate([old, new]):
        pq.write_table(part, tmp_path / f"part-{i:08d}-x.parquet")
    policy = make(LinUCB)
    reference = copy.deepcopy(policy)
    report = fit(policy, spark.read.parquet(str(tmp_path)))
    assert report.rejected == {"bad_context": 1}
    reference.update_batch(*usable(pa.concat_tables([table.slice(0, row), table.slice(row + 1)])))
    assert_close(policy, reference, 1e-9)


def test_spark_fit_with_discount_follows_the_dataframe_order(spark):
    """discount < 1: rows learned in DataFrame order (sorted by timestamp), partitions merged in order."""
    from bandit.spark import fit

    table = joined_log(600, seed=2)
    shuffled = table.take(np.random.default_rng(0).permutation(table.num_rows))
    df = spark.createDataFrame(shuffled.to_pandas()).repartitionByRange(4, "timestamp").sortWithinPartitions("timestamp")
    assert df.rdd.getNumPartitions() > 1
    policy = make(LinUCB, discount=0.95)
    reference = copy.deepcopy(policy)
    fit(policy, df)
    reference.update_batch(*usable(table))  # table order = timestamp order
    assert_close(policy, reference, 1e-9)


def test_spark_fit_skips_and_counts_bad_rows(spark, tmp_path):
    from bandit.spark import fit

    table = joined_log(200, seed=3)
    names = table.column("action_name").to_pylist()
    contexts = [np.array(c) for c in table.column("context").to_pylist()]
    rewards = table.column("reward").to_pylist()
    names[3] = "retired-plan"
    contexts[5] = np.array([np.nan, 0.0, 1.0])
    contexts[6] = np.array([0.0, 1.0])  # wrong length
    rewards[7] = 2.0  # outside BetaTS's [0, 1]
    rewards[9] = float("nan")
    ids: list[str | None] = [f"e{i}" for i in range(200)]
    ids[11] = None  # a decision without an id: offline_eval quarantines it, so the fit does not learn it either
    for i in (3, 5, 6, 11):
        rewards[i] = 1.0
    bad = {3, 5, 6, 7, 9, 11}
    data = pa.table({
        "event_id": pa.array(ids, type=pa.string()),
        "context": pa.array([c.tolist() for c in contexts], type=pa.list_(pa.float64())),
        "action_name": pa.array(names),
        "reward": pa.array(rewards, type=pa.float64(), from_pandas=False),
    })
    pq.write_table(data, tmp_path / "joined.parquet")
    df = spark.read.parquet(str(tmp_path / "joined.parquet"))
    policy = make(BetaTS)  # contexts validated (n_features=3) though not used
    reference = copy.deepcopy(policy)
    report = fit(policy, df)
    keep = [i for i in range(200) if i not in bad and rewards[i] is not None]
    reference.update_batch(np.stack([contexts[i] for i in keep]), [names[i] for i in keep], [rewards[i] for i in keep])
    assert report.rejected == {"bad_context": 2, "bad_reward": 2, "missing_event_id": 1, "unknown_arm": 1}
    assert report.n_rows == len(keep) and report.n_pending == sum(r is None for r in rewards)
    assert_close(policy, reference, 1e-12)


def test_spark_fit_refuses_vw_and_missing_columns(spark):
    from bandit.spark import fit

    df = spark.createDataFrame([(1.0,)], "reward double")
    with pytest.raises(ValueError, match="context"):
        fit(make(LinUCB), df)
    with pytest.raises(TypeError, match="not a sum of per-row terms"):
        fit(make(VWPolicy), df)


def test_importing_bandit_spark_does_not_import_pyspark():
    import json
    import subprocess
    import sys

    code = "import json, sys, bandit, bandit.spark, bandit.stats; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert not any(m == "pyspark" or m.startswith("pyspark.") for m in loaded)


def test_spark_fit_example_runs_and_agrees_with_the_streaming_fit(spark, tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "spark_fit.py"
    spec = importlib.util.spec_from_file_location("example_spark_fit", path)
    module = importlib.util.module_from_spec(spec)
    import sys

    sys.modules[spec.name] = module  # its dataclass resolves the module while the class body runs
    spec.loader.exec_module(module)
    res = module.main(["--n", "3000", "--out", str(tmp_path), "--policy", "LinearTS"], spark=spark)
    assert 2500 < res.report.n_rows < 3000 and res.report.n_pending == 3000 - res.report.n_rows
    assert res.report.n_passes == 1 and res.max_diff_vs_streaming < 1e-9
    loaded = __import__("bandit").load(res.policy_path)
    np.testing.assert_array_equal(loaded.coef_, res.policy.coef_)
    assert "rows/s" in capsys.readouterr().out
