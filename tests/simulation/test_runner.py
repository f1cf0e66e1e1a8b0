"""Runner: common random numbers, oracle regret, batch refresh with delayed rewards, launch, logs, OPE, outputs."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

import bandit
from bandit.decision_log import read_decision_log
from bandit.simulation.config import ConfigError, DelayConfig, PolicyConfig, SimulationConfig, WorldConfig
from bandit.simulation.runner import (
    OraclePolicy,
    build_policy,
    offline_evaluate,
    run_policy,
    run_simulation,
    time_to_learn,
)
from bandit.simulation.world import UpsellWorld
from offline_eval.schema import DECISION_COLUMNS

US_PER_DAY = 86_400_000_000


class Recorder:
    """Duck-typed policy around a real one, recording every choose_batch / update_batch / add_arm call."""

    def __init__(self, inner, with_add_arm: bool = True):
        self.inner = inner
        self.chosen: list[tuple[int, int]] = []  # (n rows, n eligibility columns) per choose_batch
        self.updates: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.decided = 0
        self.decided_at_update: list[int] = []
        self.added: list[str] = []
        if with_add_arm:
            self.add_arm = self._add_arm

    @property
    def arm_names(self):
        return self.inner.arm_names

    @property
    def n_arms(self):
        return self.inner.n_arms

    def choose_batch(self, X, eligible=None):
        self.chosen.append((X.shape[0], eligible.shape[1]))
        self.decided += X.shape[0]
        return self.inner.choose_batch(X, eligible=eligible)

    def update_batch(self, X, arms, rewards):
        self.updates.append((np.array(X), np.array(arms), np.array(rewards)))
        self.decided_at_update.append(self.decided)
        self.inner.update_batch(X, arms, rewards)

    def _add_arm(self, arm):
        self.added.append(arm.name)
        return self.inner.add_arm(arm)


@pytest.fixture(scope="module")
def world_episode():
    world = UpsellWorld(WorldConfig(events_per_day=400.0), seed=17, launch_step=1500)
    return world, world.episode(3000)


def _uniform(world, seed=0):
    return bandit.UniformRandom(world.arms(include_new=False), n_features=world.featurizer.n_features, seed=seed)


def test_oracle_has_zero_regret_and_uniform_positive(world_episode):
    world, ep = world_episode
    new_arm = world.arms()[-1]
    oracle = run_policy(ep, OraclePolicy(), batch_size=200, launch_step=1500, new_arm=new_arm)
    np.testing.assert_array_equal(oracle.regret, 0.0)
    np.testing.assert_array_equal(oracle.actions, ep.best_arms())
    np.testing.assert_array_equal(oracle.propensities, 1.0)
    uni = run_policy(ep, _uniform(world), batch_size=200, launch_step=1500, new_arm=new_arm)
    assert (uni.regret >= -1e-12).all() and uni.regret.sum() > 0
    # the regret is exact: oracle value minus the expected value of the chosen arm
    np.testing.assert_allclose(uni.regret, ep.oracle_value() - ep.expected_value[np.arange(len(ep)), uni.actions])


def test_common_random_numbers_same_users_and_outcomes(world_episode):
    world, ep = world_episode
    kw = dict(batch_size=250, launch_step=1500, new_arm=world.arms()[-1])
    a = run_policy(ep, _uniform(world, seed=1), **kw)
    b = run_policy(ep, bandit.LinUCB(world.arms(include_new=False), n_features=world.featurizer.n_features,
                                     seed=1), **kw)
    ta, tb = read_decision_log(a.log_dir), read_decision_log(b.log_dir)
    np.testing.assert_array_equal(np.stack(ta["context"]), np.stack(tb["context"]))
    assert ta["event_id"].equals(tb["event_id"])
    same = a.actions == b.actions
    assert same.sum() > 100
    np.testing.assert_array_equal(a.outcomes.converted[same], b.outcomes.converted[same])
    np.testing.assert_array_equal(a.outcomes.delay_days[same], b.outcomes.delay_days[same])
    # the outcome is the world's potential outcome of the chosen arm
    rows = np.arange(len(ep))
    np.testing.assert_array_equal(a.outcomes.converted, ep.uniforms[rows, a.actions] < ep.probability[rows, a.actions])


def test_batches_and_delayed_rewards(world_episode):
    world, ep = world_episode
    rec = Recorder(_uniform(world, seed=3))
    run = run_policy(ep, rec, batch_size=250, launch_step=1500, new_arm=world.arms()[-1])
    # batches of 250 decided with one state; the launch (at a batch edge here) adds the eligibility column
    assert [n for n, _ in rec.chosen] == [250] * 12
    assert [k for _, k in rec.chosen] == [6] * 6 + [7] * 6
    assert rec.added == ["basic"]
    ts = ep.timestamps.astype(np.int64)
    window = int(round(ep.attribution_window_days * US_PER_DAY))
    arrival = ts + np.round(np.where(run.outcomes.attributed, run.outcomes.delay_days, 0) * US_PER_DAY).astype(np.int64)
    # a cancellation (reward 0) arrives `delay mod window` days after its decision and resolves it then
    cancelled = ep.guardrail_outcomes(np.arange(len(ep)), run.actions).cancelled
    assert cancelled.sum() > 5
    cancel_at = ts + np.round(np.fmod(ep.delay_days[np.arange(len(ep)), run.actions], ep.attribution_window_days)
                              * US_PER_DAY).astype(np.int64)
    known_at = np.where(run.outcomes.attributed, arrival, np.where(cancelled, cancel_at, ts + window + 1))
    row_of = {ep.X[i].tobytes(): i for i in range(len(ep))}
    learned, previous_now = [], -1
    for decided, (X, arms, rewards) in zip(rec.decided_at_update, rec.updates, strict=False):
        rows = np.array([row_of[x.tobytes()] for x in X])
        now = ts[decided - 1]  # the refresh happens at the last timestamp of the batch just decided
        assert (rows < decided).all()  # only decisions already made
        assert (known_at[rows] <= now).all()  # nothing learned before its outcome is known
        assert (known_at[rows] > previous_now).all()  # and nothing learned later than the first refresh after that
        np.testing.assert_array_equal(arms, run.actions[rows])
        np.testing.assert_array_equal(rewards, run.outcomes.attributed[rows].astype(float))
        learned.extend(rows)
        previous_now = now
    learned = np.array(learned)
    assert len(np.unique(learned)) == len(learned)  # each decision learned exactly once
    np.testing.assert_array_equal(np.sort(learned), np.flatnonzero(known_at <= ts[-1]))
    np.testing.assert_array_equal(run.known, known_at <= ts[-1])
    np.testing.assert_array_equal(run.mature, ts + window < ts[-1])
    assert (run.mature <= run.known).all()


def test_launch_adds_the_arm_once_and_only_then_offers_it(world_episode):
    world, ep = world_episode
    new = len(ep.arm_names) - 1
    rec = Recorder(_uniform(world, seed=4))
    run = run_policy(ep, rec, batch_size=300, launch_step=1500, new_arm=world.arms()[-1])
    assert run.new_arm_added_at == 1500 and rec.inner.n_arms == len(ep.arm_names)
    assert not (run.actions[:1500] == new).any() and (run.actions[1500:] == new).any()
    np.testing.assert_array_equal(run.probabilities[:1500, new], 0.0)
    assert run.eligible[run.actions >= 0, :].shape == (3000, new + 1)
    assert ep.eligible[np.arange(3000), run.actions].all()
    # a launch step inside a batch splits it
    rec2 = Recorder(_uniform(world, seed=4))
    run_policy(ep, rec2, batch_size=400, launch_step=1500, new_arm=world.arms()[-1])
    assert [n for n, _ in rec2.chosen][:5] == [400, 400, 400, 300, 100]


def test_policy_without_add_arm_is_reported(world_episode):
    world, ep = world_episode
    rec = Recorder(_uniform(world, seed=5), with_add_arm=False)
    run = run_policy(ep, rec, name="legacy", batch_size=500, launch_step=1500, new_arm=world.arms()[-1])
    assert run.notes and "legacy" in run.notes[0] and "never offered" in run.notes[0]
    assert not (run.actions == len(ep.arm_names) - 1).any()


def test_versions_constant_within_a_batch(world_episode):
    world, ep = world_episode
    pol = bandit.LinUCB(world.arms(include_new=False), n_features=world.featurizer.n_features, seed=0)
    run = run_policy(ep, pol, batch_size=500, stop=1500)
    versions = run.versions.reshape(3, 500)
    assert all(len(set(v)) == 1 for v in versions)
    assert len({v[0] for v in versions}) == 3


def test_run_policy_rejects_mismatched_arms_and_bad_sizes(world_episode):
    world, ep = world_episode
    wrong = bandit.UniformRandom(["duo", "individual"], n_features=world.featurizer.n_features, seed=0)
    with pytest.raises(ValueError, match="prefix"):
        run_policy(ep, wrong)
    with pytest.raises(ValueError, match="batch_size"):
        run_policy(ep, _uniform(world), batch_size=0)
    with pytest.raises(ValueError, match="start/stop"):
        run_policy(ep, _uniform(world), start=10, stop=5)
    with pytest.raises(ValueError, match="new_arm"):
        run_policy(ep, _uniform(world), launch_step=1500)


def test_time_to_learn_distinguishes_learning_from_over_offering():
    rng = np.random.default_rng(0)
    steps = np.arange(4000)
    best = np.where(rng.random(4000) < 0.25, 3, rng.integers(0, 3, 4000))
    _, perfect = time_to_learn(best, best, 3, steps, 1000, 500, 0.8)
    assert perfect == 500.0
    _, everyone = time_to_learn(np.full(4000, 3), best, 3, steps, 1000, 500, 0.8)
    assert math.isnan(everyone)
    _, random = time_to_learn(rng.integers(0, 4, 4000), best, 3, steps, 1000, 500, 0.8)
    assert math.isnan(random)
    late = np.where(steps < 2500, rng.integers(0, 3, 4000), best)
    up, ttl = time_to_learn(late, best, 3, steps, 1000, 500, 0.8)
    assert ttl == 2000.0 and len(up) == 6


def test_decisions_go_through_the_decision_log(world_episode, tmp_path):
    """The run writes every decision through bandit.DecisionLog as it decides (null reward, recorded eligibility)."""
    world, ep = world_episode
    run = run_policy(ep, _uniform(world, seed=6), batch_size=250, launch_step=1500, new_arm=world.arms()[-1],
                     log_dir=tmp_path / "log")
    assert run.log_dir == tmp_path / "log"
    df = read_decision_log(run.log_dir)
    assert list(df.columns[: len(DECISION_COLUMNS)]) == list(DECISION_COLUMNS)
    assert df.attrs["arms"] == ep.arm_names and len(df) == len(ep)
    assert df["reward"].isna().all()  # outcomes arrive later, in their own table
    np.testing.assert_array_equal(df["step"], np.arange(len(ep)))
    np.testing.assert_array_equal(df["action"], run.actions)
    np.testing.assert_array_equal(df["propensity"], run.propensities)
    np.testing.assert_array_equal(np.stack(df["probabilities"]), run.probabilities)
    np.testing.assert_array_equal(np.stack(df["eligible"]), run.eligible)
    np.testing.assert_array_equal(np.stack(df["context"]), ep.X)
    np.testing.assert_array_equal(df["timestamp"].dt.tz_localize(None).to_numpy().astype("datetime64[us]"), ep.timestamps)
    # before the launch the new plan is in the arm list but not eligible and never offered
    assert not np.stack(df["eligible"])[:1500, -1].any() and np.stack(df["eligible"])[1500:, -1].any()
    # a directory already holding a log is refused: runs never mix
    with pytest.raises(ValueError, match="already holds a decision log"):
        run_policy(ep, _uniform(world, seed=6), batch_size=250, stop=500, log_dir=tmp_path / "log")
    # without log_dir the log lives in a temporary directory as long as the run
    tmp_run = run_policy(ep, _uniform(world, seed=6), batch_size=250, stop=500)
    assert len(read_decision_log(tmp_run.log_dir)) == 500


def test_offline_estimates_cover_the_truth():
    world = UpsellWorld(WorldConfig(events_per_day=5000.0), seed=23)
    ep = world.episode(12_000)
    arms = world.arms(include_new=False)
    log = run_policy(ep, bandit.UniformRandom(arms, n_features=world.featurizer.n_features, seed=1), batch_size=1000)
    target = bandit.LinUCB(arms, n_features=world.featurizer.n_features, alpha=0.1, seed=0)
    mature = np.flatnonzero(log.mature)
    target.update_batch(ep.X[mature], log.actions[mature], log.reward[mature])
    table, truths = offline_evaluate(log, ep, {"linucb": target, "oracle": OraclePolicy()}, ["SNIPS", "DR"])
    assert set(table["policy"]) == {"linucb", "oracle"}
    for row in table.itertuples():
        assert abs(row.value - truths[row.policy]) < 3.5 * row.se, row
    assert truths["oracle"] > truths["linucb"] > 0


def test_value_reward_with_negative_values_is_rejected_clearly():
    cfg = SimulationConfig.model_validate({
        "horizon": 2000, "batch_size": 200, "reward": "value", "world": {"long_term_weight": 1.0},
        "policies": [{"name": "beta", "type": "BetaTS"}], "offline_eval": {"enabled": False},
        "output": {"progress": False}})
    with pytest.raises(ConfigError, match="'beta' \\(BetaTS\\) cannot learn from reward='value'"):
        run_simulation(cfg)


def test_build_policy_reports_bad_parameter_values():
    world = UpsellWorld(seed=0)
    spec = PolicyConfig(name="x", type="LinUCB", params={"alpha": -1.0})
    with pytest.raises(ConfigError, match=r"policies.2.params: LinUCB rejected its parameters: .*alpha"):
        build_policy(spec, world.arms(include_new=False), world.featurizer.n_features, seed=0, index=2)


def test_run_simulation_end_to_end_and_save(tmp_path):
    cfg = SimulationConfig.model_validate({
        "seed": 3, "horizon": 3000, "batch_size": 250, "launch_step": 1500,
        "world": {"events_per_day": 1000, "delay": DelayConfig(mean_days=0.2, attribution_window_days=0.5)},
        "policies": [{"name": "oracle", "type": "oracle"}, {"name": "uniform", "type": "UniformRandom"},
                     {"name": "linucb", "type": "LinUCB", "params": {"alpha": 0.3}}],
        "output": {"progress": False, "share_window": 250}})
    result = run_simulation(cfg)
    s = result.summary.set_index("policy")
    assert s.loc["oracle", "regret"] == 0.0 and s.loc["uniform", "regret"] > s.loc["linucb", "regret"] > 0
    assert s.loc["oracle", "time_to_learn"] == 250.0 and math.isnan(s.loc["uniform", "time_to_learn"])
    assert s.loc["oracle", "new_plan_share"] == s.loc["oracle", "oracle_new_plan_share"] > 0
    assert {"ope_value", "ope_ci_low", "ope_ci_high", "true_value", "online_value"} <= set(s.columns)
    # every policy saw the same users: identical cumulative oracle value per step
    wide = result.metrics.pivot(index="step", columns="policy", values="cum_oracle_value")
    np.testing.assert_allclose(wide["uniform"], wide["linucb"])
    last = result.metrics.groupby("policy").last()
    np.testing.assert_allclose(last["cum_revenue"], [result.runs[p].outcomes.revenue.sum() for p in last.index])
    shares = result.arm_share.groupby(["policy", "window_end"])["share"].sum()
    np.testing.assert_allclose(shares, 1.0)
    files = result.save(tmp_path)
    for key in ("summary_md", "summary", "metrics", "ope", "plot_regret", "plot_arm_share", "plot_uptake", "plot_ope"):
        assert files[key].is_file() and files[key].stat().st_size > 0, key
    for label in ("oracle", "uniform", "linucb", "logging_uniform"):
        assert len(read_decision_log(files["decision_logs"] / label / "decisions")) == 3000
        assert (files["decision_logs"] / label / "outcomes.parquet").is_file()
    text = files["summary_md"].read_text()
    assert "linucb" in text and "Offline estimate vs truth" in text
    # every file written is listed as a link relative to summary.md (they were paths from the working directory)
    targets = re.findall(r"\]\(([^)]+)\)", text)
    assert sorted(targets) == sorted(path.relative_to(tmp_path).as_posix() for path in files.values())


def test_written_logs_replay_through_the_decision_log_join(world_episode, tmp_path):
    """The outcomes table + decision log, joined by bandit.decision_log, reproduce exactly what the runner learned."""
    from datetime import timedelta

    from bandit.attribution import resolve_rewards
    from bandit.decision_log import read_decision_log
    from bandit.simulation.runner import write_decision_logs

    world, ep = world_episode
    d = world.featurizer.n_features
    live = bandit.LinUCB(world.arms(include_new=False), n_features=d, alpha=0.4, seed=2)
    run = run_policy(ep, live, name="live", batch_size=250, stop=1400)
    root = write_decision_logs({"live": run}, ep, tmp_path)
    decisions = read_decision_log(root / "live" / "decisions")
    assert decisions.attrs["arms"] == ep.arm_names and len(decisions) == 1400
    window = timedelta(days=ep.attribution_window_days)
    now = decisions["timestamp"].max()  # the run's last refresh
    res = resolve_rewards(root / "live" / "decisions", root / "live" / "outcomes.parquet", window, now=now)
    resolved = res.resolved.set_index("event_id")
    known_ids = decisions["event_id"][run.known]
    assert set(resolved.index) == set(known_ids)
    assert len(res.pending_event_ids) == (~run.known).sum() and res.unknown_outcomes.empty
    assert res.rejected.empty
    np.testing.assert_array_equal(resolved.loc[known_ids, "reward"].to_numpy(), run.reward[run.known])
    # a fresh policy fed through update_from_log learns exactly what the live one learned online
    replay = bandit.LinUCB(world.arms(include_new=False), n_features=d, alpha=0.4, seed=2)
    report = replay.update_from_log(root / "live" / "decisions", root / "live" / "outcomes.parquet", window, now=now)
    assert report.n_applied == run.known.sum()
    np.testing.assert_allclose(replay.coef_, live.coef_, rtol=1e-9, atol=1e-12)


def test_progress_reports_on_stderr_like_streams():
    import io

    from bandit.simulation.runner import Progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    plain = io.StringIO()
    p = Progress(1000, stream=plain)
    for _ in range(100):
        p.advance(10, "linucb")
    lines = plain.getvalue().splitlines()
    assert 10 <= len(lines) <= 11 and lines[-1].startswith("simulating linucb: 100.0% (1,000/1,000 steps")
    tty = Terminal()
    p = Progress(1000, stream=tty)
    for _ in range(4):
        p.advance(250, "uniform")
    assert tty.getvalue().count("\r") == 4 and tty.getvalue().endswith("\n")
    quiet = io.StringIO()
    Progress(10, enabled=False, stream=quiet).advance(10, "x")
    assert quiet.getvalue() == ""


def test_demo_fits_on_earlier_logs_and_evaluates_out_of_sample(monkeypatch):
    """Regression: the demo evaluated its candidates on the rows they were fitted on (in-sample, optimistic)."""
    from bandit.simulation import demo, metrics

    fitted: dict[str, list[bytes]] = {}
    evaluated: list[np.ndarray] = []
    make_candidates, make_data = demo._demo_candidates, metrics.logged_data

    def recording_candidates(arms, d, seed):
        cands = make_candidates(arms, d, seed)
        for label, pol in cands.items():
            def update_batch(X, arms, rewards, _label=label, _inner=pol.update_batch):
                fitted.setdefault(_label, [x.tobytes() for x in np.asarray(X)])  # the first call is the fit
                return _inner(X, arms, rewards)
            pol.update_batch = update_batch
        return cands

    def recording_data(run, episode, rows=None):
        data = make_data(run, episode, rows)
        evaluated.append(data.context)
        return data

    monkeypatch.setattr(demo, "_demo_candidates", recording_candidates)
    monkeypatch.setattr(metrics, "logged_data", recording_data)
    result = demo.build_demo(quick=True, seed=0, progress=False)
    episode = result.result.episode
    # chronological: every fitted decision precedes every evaluated one; disjoint
    assert result.fit_steps.size > 500 and result.eval_steps.size > 500
    assert episode.timestamps[result.fit_steps].max() < episode.timestamps[result.eval_steps].min()
    assert not set(result.fit_steps) & set(result.eval_steps)
    # what the candidates actually learned from and what the estimators actually saw: no row in both
    (eval_context,) = evaluated
    eval_rows = {x.tobytes() for x in eval_context}
    assert eval_rows == {episode.X[s].tobytes() for s in result.eval_steps}
    assert set(fitted) == set(result.result.ope["policy"])
    for label, rows in fitted.items():
        assert set(rows) == {episode.X[s].tobytes() for s in result.fit_steps}, label
        assert not set(rows) & eval_rows, label
    # out-of-sample estimates land within their intervals of the true values (exact, known in the simulation)
    rec = result.result.ope[result.result.ope["recommended"]].set_index("policy")
    assert len(rec) == 5
    for label, row in rec.iterrows():
        assert row["ci_low"] <= row["true_value"] <= row["ci_high"], (label, row.to_dict())
    summary = result.result.summary.set_index("policy")
    np.testing.assert_allclose(summary.loc[rec.index, "true_value"], rec["true_value"])
    np.testing.assert_allclose(summary.loc[rec.index, "ope_value"], rec["value"])
    assert summary.loc[rec.index, "rollout_true_value"].notna().all()
    # the rollout report decides on exactly the evaluated rows (the same chronological split), with the truth next
    # to it: the revenue estimates agree with the OPE table's value on those rows, and every interval holds the truth
    from offline_eval.report import DECISIONS

    report, realised = result.report, result.realised
    assert report.decision in DECISIONS and report.reasons[0].startswith(report.decision)
    assert report.settings["n_train"] == result.fit_steps.size and report.settings["n_test"] == result.eval_steps.size
    np.testing.assert_allclose(realised["true_value"], rec.loc[realised.index, "true_value"], rtol=1e-12)
    assert realised["covered"].all(), realised
    assert ((realised["lift_ci_low"] <= realised["true_lift"]) & (realised["true_lift"] <= realised["lift_ci_high"])).all()
    shown = realised.loc[result.chosen]
    assert shown["ci_low"] <= shown["true_value"] <= shown["ci_high"]
    if report.decision == "GO":
        assert result.chosen == report.recommended and result.decision_right == bool(shown["worth_it"])
    else:
        assert result.decision_right is (None if report.decision == "NEED MORE DATA" else not realised["worth_it"].any())
    # the roll-out: every candidate realised its revenue on the same users as the uniform logging policy
    np.testing.assert_allclose(realised["online_value"], summary.loc[realised.index, "online_value"])
    np.testing.assert_allclose(realised["online_lift"],
                               realised["online_value"] - summary.loc["uniform", "online_value"])


def test_outcomes_table_carries_the_guardrail_outcomes(world_episode, tmp_path):
    """outcomes.parquet holds cancellations and cannibalised value: joined per decision, they are the world's."""
    from bandit.simulation.loop import outcomes_table
    from bandit.simulation.metrics import logged_frame
    from offline_eval.schema import outcome_schema

    world, ep = world_episode
    run = run_policy(ep, _uniform(world, seed=8), batch_size=250, launch_step=1500, new_arm=world.arms()[-1],
                     log_dir=tmp_path / "log")
    table = outcomes_table(run, ep)
    assert table.schema.names[:3] == outcome_schema().names
    assert {"revenue", "cancelled", "cannibalised"} <= set(table.schema.names)
    out = table.to_pandas()
    guard = ep.guardrail_outcomes(run.steps, run.actions)
    mature = np.flatnonzero(run.mature)
    assert out["event_id"].is_unique and guard.cancelled[mature].sum() > 5
    assert not ((out["cancelled"] > 0) & (out["reward"] > 0)).any()  # a row is a conversion or a cancellation
    frame = logged_frame(run, ep)
    np.testing.assert_array_equal(frame["step"], run.steps[mature])
    np.testing.assert_array_equal(frame["cancelled"], guard.cancelled[mature].astype(float))
    np.testing.assert_allclose(frame["cannibalised"], guard.cannibalised[mature])
    np.testing.assert_allclose(frame["revenue"], run.outcomes.revenue[mature])
    np.testing.assert_array_equal(frame["converted"], run.outcomes.attributed[mature].astype(float))
    # a cancellation row changes no reward: the rewards a policy learns from the file are the run's
    from bandit.attribution import join_outcomes

    joined = join_outcomes(read_decision_log(run.log_dir), out, ep.attribution_window_days * pd.Timedelta(days=1),
                           now=frame["timestamp"].max() + pd.Timedelta(days=2))
    np.testing.assert_array_equal(joined["reward"].to_numpy()[mature], run.reward[mature])


def test_offline_evaluation_reads_the_decision_log_joined_with_the_outcomes(world_episode, tmp_path):
    """OPE data comes from the run's decision log + outcomes through join_outcomes, not from the runner's arrays."""
    import shutil

    from bandit.simulation.metrics import logged_data

    world, ep = world_episode
    run = run_policy(ep, _uniform(world, seed=8), batch_size=250, launch_step=1500, new_arm=world.arms()[-1],
                     log_dir=tmp_path / "log")
    data = logged_data(run, ep)
    mature = np.flatnonzero(run.mature)
    assert data.n == mature.size < len(ep)
    np.testing.assert_array_equal(data.reward, run.outcomes.revenue[mature])
    np.testing.assert_array_equal(data.action, run.actions[mature])
    np.testing.assert_array_equal(data.propensity, run.propensities[mature])
    np.testing.assert_array_equal(data.eligible, run.eligible[mature])
    np.testing.assert_array_equal(data.context, ep.X[mature])
    later = logged_data(run, ep, rows=np.arange(1000, 3000))
    assert later.n == run.mature[1000:].sum()
    shutil.rmtree(tmp_path / "log")
    with pytest.raises(ValueError, match="not a directory|decision-log"):
        logged_data(run, ep)
