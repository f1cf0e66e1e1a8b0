"""The examples run end to end at a small size and their outputs hold up; one seed of the regret bench runs.

Each example's ``main(argv)`` is called into ``tmp_path`` and its returned result and files are checked against
properties that would catch real bugs: the serving log holds every request exactly once with the propensities the
handler returned, the trainer learns every decision exactly once, the offline intervals contain their estimates and
the go / no-go follows the paired interval, the launched plan is offered only after its launch. The regret bench's
quick seed runs every policy on the same users and feeds VW (``bandit.VWPolicy``) as its results file says.
"""

from __future__ import annotations

import importlib.util
import math
import sys
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import bandit
from bandit.decision_log import read_decision_log
from bandit.simulation import UpsellWorld
from bandit.simulation.catalog import default_catalog

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _load(relative: str, name: str):
    """Import a script by path (examples/ and bench/ are not packages)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / relative)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve their module while the class body runs
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def serving():
    return _load("examples/serving_handler.py", "example_serving_handler")


# ----------------------------------------------------------------------------------------------------------------
# serving_handler.py
# ----------------------------------------------------------------------------------------------------------------


def test_serving_handler_logs_everything_and_learns_each_decision_once(serving, tmp_path):
    n = 2_500
    res = serving.main(["--n", str(n), "--refresh", "500", "--out", str(tmp_path), "--seed", "2"])
    log = read_decision_log(res.log_path)

    # every request served is in the log exactly once, as the handler returned it
    assert res.served == n == len(log) == len(res.decisions)
    assert log["event_id"].tolist() == [f"req-{i:07d}" for i in range(n)]
    probs = np.stack(log["probabilities"].to_numpy())
    action = log["action"].to_numpy()
    np.testing.assert_array_equal(log["propensity"].to_numpy(), probs[np.arange(n), action])
    np.testing.assert_array_equal(log["propensity"].to_numpy(), [d.propensity for d in res.decisions])
    np.testing.assert_array_equal(action, [d.index for d in res.decisions])
    assert log["policy_version"].tolist() == [d.policy_version for d in res.decisions]
    assert (np.stack(log["eligible"].to_numpy()) | (probs == 0)).all()  # no probability on an ineligible arm

    # the bad requests were rejected with the field named, and left no trace in the log
    assert len(res.rejected) == 5
    for field in ("'market'", "'weekly_hours'", "'fr'", "'platinum'"):
        assert any(field in msg for msg in res.rejected), field
    assert "bad-request" not in set(log["event_id"])

    # the trainer learned every decision exactly once, with every in-window conversion and nothing else
    applied = [e for r in res.reports for e in r.event_ids]
    assert len(applied) == len(set(applied)) == n
    assert set(applied) == set(log["event_id"])
    assert res.reports[-1].n_pending == 0
    policy = res.policy
    assert policy.n_updates == n
    np.testing.assert_array_equal(policy.pulls, np.bincount(action, minlength=policy.n_arms))
    learned = np.nansum(policy.mean_rewards * policy.pulls)
    assert learned == pytest.approx(res.attributed.sum(), abs=1e-9)
    assert res.attributed.sum() > 0

    # the file on disk is the live state
    reloaded = bandit.load(res.policy_path)
    assert reloaded.policy_version == policy.policy_version
    X = np.stack(log["context"].to_numpy()[:50])
    np.testing.assert_array_equal(reloaded.action_probabilities(X), policy.action_probabilities(X))

    assert res.latency_us.shape == (n,) and (res.latency_us > 0).all()
    assert len(res.windows) == 5
    np.testing.assert_allclose(res.windows["conversion_rate"].mean(), res.attributed.mean(), rtol=1e-12)


def test_a_failing_trainer_surfaces_instead_of_blocking_the_request_loop(serving, tmp_path):
    world = UpsellWorld(seed=0)
    policy = bandit.UniformRandom(world.arms(include_new=False), n_features=world.featurizer.n_features, seed=0)
    policy.save(tmp_path / "policy.zip")
    clock = serving.SimulatedClock(pd.Timestamp("2024-01-01T00:00:00Z"))
    service = serving.DecisionService(tmp_path / "policy.zip", tmp_path / "logs", durability="write",
                                      attribution_window=serving.ATTRIBUTION_WINDOW, delivery_delay=0, clock=clock,
                                      train_every=0.01).start()

    def broken_update(*args, **kwargs):
        raise ValueError("broken update")

    service.holder.policy.update_from_log = broken_update
    handler = serving.UpsellHandler(service, world.featurizer.transform_one)
    user = world.sample_users(1).to_dict("records")[0]
    handler.handle("req-1", user, ["individual"], "2024-01-01T00:00:00Z")
    service.reward("req-1", 1.0, timestamp="2024-01-01T01:00:00Z")
    clock.set(pd.Timestamp("2024-01-01T02:00:00Z"))
    for _ in range(500):  # the trainer thread fails on its next step; the service reports itself unhealthy
        if not service.healthy:
            break
        time.sleep(0.01)
    assert not service.healthy
    assert isinstance(service.last_error, ValueError) and "broken update" in str(service.last_error)
    handler.handle("req-2", user, ["individual"], "2024-01-01T02:00:00Z")  # requests are still served
    service.close()
    assert bandit.load(tmp_path / "policy.zip").n_updates == 0
    log = read_decision_log(tmp_path / "logs" / "decisions" / f"arms-{policy.n_arms}")
    assert log["event_id"].tolist() == ["req-1", "req-2"]


# ----------------------------------------------------------------------------------------------------------------
# ope_on_logs.py
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("low", "high", "expected"), [(0.1, 0.3, "GO"), (-0.3, -0.1, "NO-GO"),
                                                      (-0.1, 0.3, "NEED MORE DATA")])
def test_ope_on_logs_undecided_difference_needs_more_data(low, high, expected):
    # an interval containing 0 was printed as "NO-GO ... collect more data": the rollout report's NEED MORE DATA
    ope = _load("examples/ope_on_logs.py", "example_ope_on_logs")
    diff = SimpleNamespace(value=(low + high) / 2, level=0.95, ci_low=low, ci_high=high)
    decision, line = ope.go_no_go(diff, "linucb")
    assert decision == expected and line.startswith(f"{expected}: ")


def test_ope_on_logs_intervals_and_go_no_go(tmp_path, recwarn):
    ope = _load("examples/ope_on_logs.py", "example_ope_on_logs")
    res = ope.main(["--small", "--out", str(tmp_path), "--seed", "1"])
    table = res.table

    finite = table[np.isfinite(table["value"])]
    assert len(finite) == len(table)
    assert (finite["ci_low"] <= finite["value"]).all() and (finite["value"] <= finite["ci_high"]).all()
    assert (table["lift_ci_low"] <= table["lift"]).all() and (table["lift"] <= table["lift_ci_high"]).all()
    assert table.groupby("policy")["recommended"].sum().eq(1).all()
    assert set(table["policy"]) == {*res.candidates, ope.LOGGING}

    # the logging policy evaluated on its own logs: every importance weight is 1, IPS is the logged mean
    data = res.data
    ips_logging = table[(table["policy"] == ope.LOGGING) & (table["estimator"] == "IPS")].iloc[0]
    assert ips_logging["value"] == pytest.approx(data.reward.mean(), rel=1e-12)
    assert ips_logging["max_weight"] == pytest.approx(1.0)

    # the paired comparison is V_DR(best) - V_DR(logging) on the same reward model, and decides the go / no-go
    dr = table[table["estimator"] == "DR"].set_index("policy")["value"]
    diff = res.comparison
    assert diff.value == pytest.approx(dr[res.best] - dr[ope.LOGGING], abs=1e-9)
    assert diff.ci_low <= diff.value <= diff.ci_high
    assert res.decision == ("GO" if diff.ci_low > 0 else "NO-GO" if diff.ci_high < 0 else "NEED MORE DATA")
    rec = res.recommended.set_index("policy")
    assert rec.loc[res.best, "ci_low"] == rec.drop(ope.LOGGING)["ci_low"].max()

    # the candidates were fitted on the older half and evaluated on the newer one; outcomes still open are left out
    log = read_decision_log(res.log_dir)
    assert log["reward"].isna().all()  # the decision log holds decisions; outcomes are joined from their own table
    mature = log[log["timestamp"] + pd.Timedelta("1D") < log["timestamp"].max()]
    assert res.n_train + data.n == len(mature) < len(log)
    assert data.timestamp.min() >= mature["timestamp"].sort_values().iloc[res.n_train - 1].to_datetime64()
    assert sum(p.n_updates for p in res.candidates.values()) == res.n_train * len(res.candidates)
    written = pd.read_csv(tmp_path / "ope.csv")
    np.testing.assert_allclose(written["value"], table["value"])


@pytest.mark.parametrize(
    ("script", "args", "expected"),
    [
        ("ope_on_logs", ["--n", "0"], "--n 0: expected a positive number of offers"),
        ("ope_on_logs", ["--n", "50"], "--n 50: the last 2,000 offers are still inside their 1D attribution window"),
        ("ope_on_logs", ["--small", "--window", "junk"], "--window 'junk': expected a positive duration"),
        ("ope_on_logs", ["--small", "--seed", "-1"], "--seed -1: expected an integer between 0 and"),
        ("ope_on_logs", ["--logs", "{tmp}/nope"], "--logs {tmp}/nope: not a decision-log directory"),
        ("ope_on_logs", ["--logs", "{tmp}"], "--outcomes"),
        ("rollout_report", ["--n", "100"], "--n 100 and --test-days 5: 100 offers leave 0 days of final outcomes"),
        ("rollout_report", ["--small", "--test-days", "-1"], "--test-days -1: expected a positive number of days"),
        ("rollout_report", ["--small", "--test-days", "100"], "--small and --test-days 100: 8,000 offers leave 3"),
        ("rollout_report", ["--small", "--min-effect", "nan"], "--min-effect nan: expected a finite revenue lift"),
        ("rollout_report", ["--small", "--backtest-windows", "-1"], "--backtest-windows -1: expected 0"),
        ("rollout_report", ["--small", "--seed", "-2"], "--seed -2: expected an integer between 0 and"),
        ("serving_handler", ["--small", "--seed", "-3"], "--seed -3: expected a non-negative integer"),
        ("spark_evaluate", ["--n", "0"], "--n 0: the demo log needs at least 1,000 rows"),
        ("spark_evaluate", ["--seed", "-1"], "--seed -1: expected a non-negative integer"),
        ("spark_evaluate", ["--log", "{tmp}/nope"], "--log {tmp}/nope: no such directory"),
        ("spark_evaluate", ["--candidate", "nonsense"], "--candidate nonsense: expected NAME=PATH"),
        ("spark_evaluate", ["--candidate", "x={tmp}/nope.zip"], "--candidate x={tmp}/nope.zip: no policy file at"),
        ("spark_fit", ["--n", "-5"], "--n -5: the demo log needs at least 1,000 rows"),
        ("spark_fit", ["--seed", "-1"], "--seed -1: expected a non-negative integer"),
        ("spark_fit", ["--log", "{tmp}/nope"], "--log {tmp}/nope: no such directory"),
    ],
)
def test_offline_examples_bad_flags_are_one_line_naming_the_flag(tmp_path, capsys, script, args, expected):
    """Each of these ended in a traceback (or, for --small --test-days, was silently ignored)."""
    module = _load(f"examples/{script}.py", f"example_{script}")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    with pytest.raises(SystemExit) as info:
        module.main([*args, "--out", str(tmp_path / "o")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert expected.replace("{tmp}", str(tmp_path)) in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------------------------------------------
# new_plan_launch.py
# ----------------------------------------------------------------------------------------------------------------


def test_new_plan_launch_learns_the_plan_only_after_its_launch(tmp_path):
    launch = _load("examples/new_plan_launch.py", "example_new_plan_launch")
    res = launch.main(["--small", "--out", str(tmp_path), "--policy", "LinUCB", "--policy", "LinearTS"])
    result, table = res.result, res.table
    n, step = result.config.horizon, result.config.launch_step
    new = len(result.episode.arm_names) - 1
    assert result.episode.arm_names[new] == "basic"
    assert set(table["policy"]) == {"oracle", "LinUCB", "LinearTS"}

    t = table.set_index("policy")
    for name, run in result.runs.items():
        before = run.steps < step
        assert not (run.actions[before] == new).any(), name  # never offered before it exists
        share = (run.actions[~before] == new).mean()
        assert share > 0, name
        assert t.loc[name, "new_plan_share"] == pytest.approx(share)
        assert t.loc[name, "regret"] == pytest.approx(run.regret.sum())
        ttl = t.loc[name, "time_to_learn"]
        assert math.isnan(ttl) or 0 < ttl <= n - step
    assert t.loc["oracle", "regret"] == 0
    assert (t.drop("oracle")["regret"] > 0).all()

    pngs = {p.name: p for p in res.files.values() if p.suffix == ".png"}
    assert set(pngs) == {"cumulative_regret.png", "arm_share.png", "new_plan_uptake.png"}
    for png in pngs.values():
        assert png.parent == tmp_path / "plots" and png.read_bytes()[:8] == PNG_MAGIC
    assert res.files["summary_md"].read_text().startswith("# Upsell simulation")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--n", "0"], "--n 0: expected between 2 and 10,000,000 offers"),
        (["--n", "-5"], "--n -5: expected between 2"),
        (["--policy", "LinUBC"], "--policy LinUBC: unknown policy class; choose among"),
        (["--policy", "oracle"], "--policy oracle: the oracle always runs, as the reference"),
        (["--policy", "LinUCB", "--policy", "LinUCB"], "--policy: each policy once"),
        (["--seed", "-1"], "--seed -1: expected an integer between 0 and"),
    ],
)
def test_new_plan_launch_bad_flags_are_one_line_naming_the_flag(tmp_path, capsys, args, expected):
    """Each of these used to end in a pydantic traceback."""
    launch = _load("examples/new_plan_launch.py", "example_new_plan_launch")
    with pytest.raises(SystemExit) as info:
        launch.main([*args, "--out", str(tmp_path / "o")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_new_plan_launch_too_large_for_memory_names_the_flag_and_leaves_no_temp_dir(capsys, monkeypatch):
    import tempfile

    import bandit.simulation.runner as runner

    launch = _load("examples/new_plan_launch.py", "example_new_plan_launch")
    monkeypatch.setattr(runner, "_available_memory", lambda: 10**6)
    made = []
    monkeypatch.setattr(tempfile, "mkdtemp", lambda **kw: made.append(kw) or "/nonexistent")
    with pytest.raises(SystemExit) as info:
        launch.main(["--n", "2000"])
    assert info.value.code == 2 and not made  # the temporary output directory used to be made before the run
    assert "--n 2000: horizon: 2,000 events with 4 policy runs need about" in capsys.readouterr().err


def test_new_plan_launch_out_that_is_a_file_names_the_flag(tmp_path, capsys):
    launch = _load("examples/new_plan_launch.py", "example_new_plan_launch")
    target = tmp_path / "file.txt"
    target.write_text("x")
    with pytest.raises(SystemExit):
        launch.main(["--n", "200", "--out", str(target)])
    assert f"--out {target}: exists and is not a directory" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------------------------
# known_attribute_launch.py
# ----------------------------------------------------------------------------------------------------------------


def test_known_attribute_launch_compares_each_hybrid_with_its_disjoint_twin():
    known = _load("examples/known_attribute_launch.py", "example_known_attribute_launch")
    res = known.main(["--small", "--seed", "0"])
    result, table = res.result, res.table
    step, window = result.config.launch_step, result.config.output.launch_window
    assert result.episode.arm_names[-1] == "duo_saver"
    t = table.set_index("policy")
    assert set(t.index) == {p for pair in known.TWINS for p in pair}
    for name, run in result.runs.items():
        assert not (run.actions[run.steps < step] == len(result.episode.arm_names) - 1).any(), name
        assert t.loc[name, "launch_window_regret"] == pytest.approx(run.regret[step : step + window].sum())
        assert t.loc[name, "launch_cost"] == pytest.approx(
            run.regret[step : step + window].sum() - run.regret[step - window : step].sum())
        assert 0 <= t.loc[name, "first_day_new_plan_share"] <= 1
        ttl = t.loc[name, "time_to_learn"]
        assert 0 < ttl <= result.config.horizon - step, name  # every policy here learns the plan
    assert result.config.learn_at == "arrival"
    for disjoint, hybrid in known.TWINS:
        assert t.loc[disjoint, "ratio_to_twin"] == 1.0
        assert t.loc[hybrid, "ratio_to_twin"] == pytest.approx(
            t.loc[hybrid, "launch_window_regret"] / t.loc[disjoint, "launch_window_regret"])
        # a cost ratio only against a twin whose launch cost something (seed 0: LinearTS's regret fell at the
        # launch, and HybridLinearTS's cost ratio was printed as -2.12)
        twin_cost = t.loc[disjoint, "launch_cost"]
        for name in (disjoint, hybrid):
            if twin_cost > 0:
                assert t.loc[name, "cost_ratio_to_twin"] == pytest.approx(t.loc[name, "launch_cost"] / twin_cost)
            else:
                assert math.isnan(t.loc[name, "cost_ratio_to_twin"]), name
    assert (t["launch_cost"] <= 0).any()  # the seed exercises the n/a case
    # the first day is a day of offers, whatever the attribution window
    run, day = result.runs["LinUCB"], int(result.config.world.events_per_day)
    assert t.loc["LinUCB", "first_day_new_plan_share"] == pytest.approx(
        (run.actions[step : step + day] == len(result.episode.arm_names) - 1).mean())


# ----------------------------------------------------------------------------------------------------------------
# bench/regret_bench.py: one seed of the quick path
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def regret_bench():
    with pytest.MonkeyPatch.context() as mp:
        for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            mp.delenv(var, raising=False)  # the script pins them at import; restore them afterwards
        mp.syspath_prepend(str(ROOT / "bench"))
        yield _load("bench/regret_bench.py", "bench_regret_bench")


def test_regret_bench_quick_seed_runs_every_policy_and_feeds_vw_as_documented(regret_bench):
    rb = regret_bench
    horizon = rb.QUICK["horizon"]
    runs = rb.run_seed(0, horizon, rb.QUICK["batch_size"])
    names = ["oracle", *(p["name"] for p in rb.POLICIES), rb.VW["name"], rb.VW_IDS_LABEL]
    assert list(runs) == names
    assert {"hybrid_linucb", "hybrid_linear_ts"} <= set(names)
    assert runs["hybrid_linucb"].policy.alpha == runs["linucb"].policy.alpha == 0.5

    catalog = default_catalog()
    catalog_arms = catalog.arms(include_new=False)
    oracle = runs["oracle"]
    for name, run in runs.items():
        assert run.stop - run.start == horizon, name
        assert run.eligible[np.arange(horizon), run.actions].all(), name
        np.testing.assert_array_equal(run.oracle, oracle.expected)  # same users and truths for everyone
        if name != "oracle":
            assert run.regret.sum() > 0, name
            assert run.policy.n_updates == int(run.known.sum()), name  # each known outcome learned exactly once
    assert oracle.regret.sum() == 0

    # both VW runs are the library's SquareCB; one sees the catalog's arm features, the other the arm ids only
    vw, vw_ids = runs[rb.VW["name"]].policy, runs[rb.VW_IDS_LABEL].policy
    assert isinstance(vw, bandit.VWPolicy) and isinstance(vw_ids, bandit.VWPolicy)
    assert vw.exploration == vw_ids.exploration == "squarecb" and vw.interactions == vw_ids.interactions == ("UA",)
    assert [a.features for a in vw.arms] == [a.features for a in catalog_arms]
    assert all(a.features is None for a in vw_ids.arms)
    assert [a.value for a in vw_ids.arms] == [a.value for a in catalog_arms]
    assert vw.cost_scale == vw_ids.cost_scale == pytest.approx(1 / catalog.values[: len(catalog_arms)].max())

    rows, curves, raw, steps = rb.summarize({0: runs}, horizon)
    table = {r["policy"]: r for r in rows}
    for name, run in runs.items():
        assert table[name]["regret"] == pytest.approx(run.regret.sum())
        assert curves[name][-1] == pytest.approx(run.regret.sum())
        assert table[name]["regret_pct_oracle"] == pytest.approx(100 * run.regret.sum() / oracle.expected.sum())
    assert steps[0] == 1 and steps[-1] == horizon
    text, beats = rb.verdict(rows, raw)
    learners = [r["regret"] for n, r in table.items() if n not in ("oracle", "uniform", *rb.VW_LABELS)]
    assert beats == (min(learners) < min(table[n]["regret"] for n in rb.VW_LABELS))
    assert ("MET" if beats else "MISSED") in text


# ----------------------------------------------------------------------------------------------------------------
# spark_evaluate.py (the Spark run itself is tested in tests/offline_eval/test_spark_eval.py)
# ----------------------------------------------------------------------------------------------------------------


def test_spark_evaluate_demo_log_keeps_every_propensity_at_the_exploration_rate(tmp_path):
    # the demo logger's per-arm schedule let propensities fall to ~6e-4: weights near 2,000, an effective sample
    # size of 0.1 % of the log, and every estimate flagged by a warning the example did not print
    from offline_eval import LoggedData

    example = _load("examples/spark_evaluate.py", "example_spark_evaluate")
    data = LoggedData.from_parquet(example.make_demo_log(tmp_path, 3_000, seed=0))
    assert data.propensity.min() >= 0.3 / 3 - 1e-12


def test_spark_evaluate_prints_each_user_warning_once(capsys):
    example = _load("examples/spark_evaluate.py", "example_spark_evaluate")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            warnings.warn("effective sample size 193 is below 2e+03 rows", UserWarning, stacklevel=1)
        warnings.warn("a library's deprecation", FutureWarning, stacklevel=1)
    example.print_warnings(caught)
    assert capsys.readouterr().out == "warning: effective sample size 193 is below 2e+03 rows\n"


class _SparkReadStop(Exception):
    pass


class _RecordingSpark:
    """Stands in for a SparkSession: records the location handed to ``spark.read.parquet``, then stops the run."""

    def __init__(self) -> None:
        self.read = self
        self.locations: list[str] = []

    def parquet(self, location: str) -> None:
        self.locations.append(location)
        raise _SparkReadStop


@pytest.mark.parametrize("script", ["spark_fit", "spark_evaluate"])
def test_spark_examples_hand_a_log_uri_to_spark_unchanged(tmp_path, script):
    # Path("s3://bucket/log/") is 's3:/bucket/log': the README's cluster commands could not even read their log
    module = _load(f"examples/{script}.py", f"example_{script}")
    spark = _RecordingSpark()
    extra = []
    if script == "spark_evaluate":
        extra = ["--candidate", f"c={bandit.LinUCB(['a', 'b'], n_features=2).save(tmp_path / 'c.zip')}"]
    with pytest.raises(_SparkReadStop):
        module.main(["--log", "s3://bucket/decision-log-joined/", *extra, "--out", str(tmp_path / "o")], spark=spark)
    assert spark.locations == ["s3://bucket/decision-log-joined/"]


def test_spark_examples_read_and_write_uris(tmp_path, monkeypatch):
    # an --out or --candidate URI was turned into a local directory named 's3:' (or 'file:') by pathlib: on a
    # cluster the model and the table were written to the driver's scratch disk and lost
    monkeypatch.chdir(tmp_path)
    evaluate = _load("examples/spark_evaluate.py", "example_spark_evaluate")
    fit = _load("examples/spark_fit.py", "example_spark_fit")
    uri = f"file://{tmp_path}/reports/"
    for module in (evaluate, fit):
        assert module.write_output(b"policy,value\n", uri, "table.csv") == f"{uri}table.csv"
        assert (tmp_path / "reports" / "table.csv").read_bytes() == b"policy,value\n"
    policy = bandit.LinUCB(["a", "b"], n_features=2, seed=0)
    policy.update([0.5, 1.0], "b", 1.0)
    policy.save(tmp_path / "reports" / "p.zip")
    loaded = evaluate.load_policy(f"{uri}p.zip")
    assert loaded.choose([0.5, 1.0], event_id="e") == policy.choose([0.5, 1.0], event_id="e")
    assert not (tmp_path / "file:").exists()
