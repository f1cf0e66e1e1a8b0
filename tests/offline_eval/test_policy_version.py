"""LoggedData carries the logging policy's version per row, and the multi-logger estimators use it by default."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bandit import DecisionLog, LinUCB
from bandit.decision_log import read_decision_log
from offline_eval import LoggedData
from offline_eval.multilogger import balanced_ips, per_version_diagnostics, stratified_estimate


def _two_version_data(seed: int = 0, n: int = 4000, with_versions: bool = True) -> tuple[LoggedData, np.ndarray]:
    rng = np.random.default_rng(seed)
    version = np.repeat(np.array(["v1", "v2"], dtype=object), n // 2)
    p1 = np.where(version == "v1", 0.5, 0.1)
    a = (rng.random(n) < p1).astype(int)
    r = (rng.random(n) < 0.2 + 0.1 * a).astype(float)
    data = LoggedData(
        None, a, r, np.where(a == 1, p1, 1 - p1), n_actions=2, policy_version=version if with_versions else None
    )
    return data, version


def test_policy_version_survives_decision_log_parquet_and_subset(tmp_path):
    policy = LinUCB(["individual", "duo", "family"], n_features=2, exploration_floor=0.1, seed=0)
    rng = np.random.default_rng(1)
    versions = []
    with DecisionLog(tmp_path / "log", policy=policy) as log:
        for i in range(40):
            x = rng.normal(size=2)
            d = policy.choose(x, event_id=f"e{i}")
            log.append(d, x)
            versions.append(d.policy_version)
            policy.update(x, d.arm, float(rng.random() < 0.3))
    df = read_decision_log(tmp_path / "log")
    df["reward"] = 1.0  # outcomes joined (all converted)
    data = LoggedData.from_dataframe(df)
    assert data.policy_version.tolist() == versions
    assert len(set(versions)) == 40  # each update makes a new version
    out = data.to_parquet(tmp_path / "copy.parquet")
    back = LoggedData.from_parquet(out)
    assert back.policy_version.tolist() == versions
    assert back.subset([3, 1]).policy_version.tolist() == [versions[3], versions[1]]
    # an explicit version overrides the column for every row
    forced = LoggedData.from_parquet(data.to_parquet(tmp_path / "forced.parquet", policy_version="v9"))
    assert set(forced.policy_version) == {"v9"}
    assert not forced.policy_version.flags.writeable


def test_without_a_version_column_to_parquet_writes_unknown(tmp_path):
    rng = np.random.default_rng(0)
    data = LoggedData(
        rng.normal(size=(3, 2)), [0, 1, 0], [1.0, 0.0, 0.0], [0.5] * 3, probabilities=np.full((3, 2), 0.5),
        eligible=np.ones((3, 2), bool), timestamp=np.arange(3).astype("datetime64[s]"), event_id=["a", "b", "c"],
    )
    assert data.policy_version is None
    assert LoggedData.from_parquet(data.to_parquet(tmp_path / "x.parquet")).policy_version.tolist() == ["unknown"] * 3


@pytest.mark.parametrize(
    ("value", "exc", "message"),
    [
        (["v1", "v2"], ValueError, r"policy_version must have shape \(3,\)"),
        (["v1", 2, "v3"], TypeError, "policy_version must hold str labels; row 1 holds int"),
    ],
)
def test_bad_policy_version_is_named(value, exc, message):
    with pytest.raises(exc, match=message):
        LoggedData(None, [0, 1, 0], [1.0, 0.0, 0.0], [0.5] * 3, policy_version=value)


def test_from_dataframe_reads_the_version_column_or_a_named_one():
    df = pd.DataFrame({"action": [0, 1], "reward": [1.0, 0.0], "propensity": [0.5, 0.5], "ver": ["a", "b"]})
    assert LoggedData.from_dataframe(df, context=None).policy_version is None
    assert LoggedData.from_dataframe(df, context=None, policy_version="ver").policy_version.tolist() == ["a", "b"]


def test_multilogger_defaults_to_the_data_versions():
    data, version = _two_version_data()
    plain, _ = _two_version_data(with_versions=False)
    by_column = stratified_estimate(data, 1)
    by_groups = stratified_estimate(plain, 1, version)
    assert by_column.combined.value == pytest.approx(by_groups.combined.value, rel=1e-12)
    assert by_column.combined.se == pytest.approx(by_groups.combined.se, rel=1e-12)
    assert per_version_diagnostics(data, 1)["version"].tolist() == ["v1", "v2"]
    props = np.column_stack([np.full(data.n, 0.5), np.where(data.action == 1, 0.1, 0.9)])
    assert balanced_ips(data, 1, props).value == pytest.approx(balanced_ips(plain, 1, props, version).value)
    with pytest.raises(ValueError, match="no policy_version column; pass groups"):
        stratified_estimate(plain, 1)
