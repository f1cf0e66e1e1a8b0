"""Replay against the simulator's truth: fixed and learning candidates, uniform and non-uniform logging."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

import bandit
from bandit.simulation.world import Episode, UpsellWorld
from offline_eval import LoggedData
from offline_eval.diagnostics import DiagnosticWarning
from offline_eval.replay import RejectionReplay, Replay, ReplayResult, replay

K = 6  # the launch-day products (the new plan is never eligible here)
FLOOR = 0.3  # exploration floor of the non-uniform logging policy


@dataclass
class Sim:
    world: UpsellWorld
    episode: Episode
    data: LoggedData
    ev: np.ndarray  # (n, K) expected attributed revenue of every offer: the truth


def logging_probabilities(ep: Episode, uniform: bool) -> np.ndarray:
    E = ep.eligible[:, :K]
    flat = E / E.sum(axis=1, keepdims=True)
    if uniform:
        return flat
    scores = ep.X @ np.random.default_rng(42).normal(scale=0.6, size=(ep.X.shape[1], K))
    z = np.where(E, np.exp(scores - scores.max(axis=1, keepdims=True)), 0.0)
    return (1 - FLOOR) * z / z.sum(axis=1, keepdims=True) + FLOOR * flat  # every eligible arm >= FLOOR / K


def simulate(seed: int, n: int, uniform: bool = True) -> Sim:
    world = UpsellWorld(seed=seed)
    ep = world.episode(n)
    P = logging_probabilities(ep, uniform)
    rng = np.random.default_rng(seed + 10_000)
    action = (P.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    rows = np.arange(n)
    reward = ep.outcomes(rows, action).revenue
    data = LoggedData(
        ep.X, action, reward, P[rows, action], probabilities=P, eligible=ep.eligible[:, :K],
        timestamp=ep.timestamps, action_names=ep.arm_names[:K],
    )
    return Sim(world, ep, data, ep.expected_value[:, :K])


def make_linucb(world: UpsellWorld, seed: int, alpha: float = 0.5) -> bandit.LinUCB:
    arms = world.arms(include_new=False, unit_values=True)
    return bandit.LinUCB(arms, n_features=world.featurizer.n_features, alpha=alpha, seed=seed)


def online_truth(world: UpsellWorld, policy: bandit.LinUCB, steps: int, batch_size: int, seed: int) -> float:
    """Expected revenue per decision of ``policy`` run online for ``steps`` fresh users, refreshed in batches."""
    ep = world.__class__(seed=seed).episode(steps)
    E, ev = ep.eligible[:, :K], ep.expected_value[:, :K]
    total = 0.0
    for start in range(0, steps, batch_size):
        rows = np.arange(start, min(start + batch_size, steps))
        bd = policy.choose_batch(ep.X[rows], eligible=E[rows])
        total += float((bd.probabilities * ev[rows]).sum())
        policy.update_batch(ep.X[rows], bd.indices, ep.outcomes(rows, bd.indices).revenue)
    return total / steps


def fitted_policy(seed: int = 999) -> bandit.LinUCB:
    """A LinUCB trained on separate uniform logs (alpha 0: greedy), to replay as a fixed candidate."""
    sim = simulate(seed, 6000)
    policy = make_linucb(sim.world, seed=1, alpha=0.0)
    policy.update_batch(sim.data.context, sim.data.action, sim.data.reward)
    return policy


def within_three_se(errors: list[float]) -> tuple[float, float]:
    e = np.asarray(errors)
    mean, se = float(e.mean()), float(e.std(ddof=1) / np.sqrt(len(e)))
    assert abs(mean) < 3 * se, f"mean error {mean:.4f} is more than 3 standard errors ({se:.4f}) from 0"
    return mean, se


class ChooseOnly:
    """A candidate with only choose/update (no action_probabilities): forces the draw-and-match rule."""

    def __init__(self, policy: bandit.LinUCB) -> None:
        self.policy = policy
        self.arm_names = policy.arm_names

    def choose(self, context, eligible=None):
        return self.policy.choose(context, eligible)

    def update(self, context, arm, reward):
        self.policy.update(context, arm, reward)


# ------------------------------------------------------------------------------------------------------------
# against the simulator's truth
# ------------------------------------------------------------------------------------------------------------


def test_replay_of_a_fixed_policy_matches_its_true_value_on_uniform_logs():
    policy = fitted_policy()
    errors, kept = [], []
    for seed in range(20):
        sim = simulate(seed, 6000)
        result = Replay(learn=False).run(sim.data, policy)
        truth = float((policy.action_probabilities(sim.data.context, sim.data.eligible) * sim.ev).sum(axis=1).mean())
        errors.append(result.value - truth)
        kept.append(result.n_accepted)
        assert result.acceptance_rate == pytest.approx(1 / 6)
    within_three_se(errors)
    # rows kept: binomial(n, M) per seed
    assert abs(np.mean(kept) - 1000) < 3 * np.sqrt(1000 * 5 / 6 / 20)


@pytest.mark.slow
def test_replay_of_a_learning_policy_matches_its_true_online_reward():
    errors_prob, errors_choose = [], []
    for seed in range(20):
        sim = simulate(seed, 9000)
        res = Replay(batch_size=25).run(sim.data, make_linucb(sim.world, seed))
        truth = online_truth(sim.world, make_linucb(sim.world, seed), res.n_accepted, 25, seed + 500)
        errors_prob.append(res.value - truth)
        assert res.curve["updates"].iloc[-1] == 25 * ((res.n_accepted - 1) // 25)
        # the draw-and-match rule, learning every 5 accepted events (one update call each)
        res1 = Replay(mode="choose", batch_size=5).run(sim.data, ChooseOnly(make_linucb(sim.world, seed)))
        truth1 = online_truth(sim.world, make_linucb(sim.world, seed), res1.n_accepted, 5, seed + 500)
        errors_choose.append(res1.value - truth1)
    within_three_se(errors_prob)
    within_three_se(errors_choose)


@pytest.mark.slow
def test_rejection_replay_matches_the_truth_on_non_uniform_logs():
    policy = fitted_policy()
    fixed, learning, kept = [], [], []
    for seed in range(20):
        sim = simulate(seed, 12_000, uniform=False)
        rr = RejectionReplay(min_propensity=FLOOR / K, batch_size=20)
        res = rr.run(sim.data, policy)  # learns from the accepted events: a copy, the fitted policy is unchanged
        truth = online_truth(sim.world, copy.deepcopy(policy), res.n_accepted, 20, seed + 500)
        learning.append(res.value - truth)
        kept.append(res.n_accepted)
        fixed_res = RejectionReplay(learn=False).run(sim.data, policy)  # M from data.probabilities
        pi = policy.action_probabilities(sim.data.context, sim.data.eligible)
        fixed.append(fixed_res.value - float((pi * sim.ev).sum(axis=1).mean()))
        assert fixed_res.acceptance_rate >= FLOOR / K
    assert policy.n_updates == 6000
    within_three_se(fixed)
    within_three_se(learning)
    assert abs(np.mean(kept) - 12_000 * FLOOR / K) < 3 * np.sqrt(600 / 20)


@pytest.mark.slow
def test_replay_shows_how_fast_a_trained_policy_learns_a_new_plan():
    """A policy trained before the launch gets the new plan "basic"; the replayed share of "basic" and the revenue
    per decision match the same policy run online on the launched catalog (the simulator's truth)."""
    before = fitted_policy()  # six launch-day products
    new_arm = UpsellWorld(seed=0).arms(unit_values=True)[-1]
    share_err, value_err, shares = [], [], []
    for seed in range(20):
        world = UpsellWorld(seed=seed, launch_step=0)
        ep = world.episode(7000)
        E = ep.eligible
        P = E / E.sum(axis=1, keepdims=True)
        rng = np.random.default_rng(seed + 10_000)
        action = (P.cumsum(axis=1) > rng.random((len(ep), 1))).argmax(axis=1)
        rows = np.arange(len(ep))
        data = LoggedData(ep.X, action, ep.outcomes(rows, action).revenue, P[rows, action], probabilities=P,
                          eligible=E, timestamp=ep.timestamps, action_names=ep.arm_names)
        launched = copy.deepcopy(before)
        launched.add_arm(new_arm)
        res = Replay(batch_size=20).run(data, launched)
        replay_share = float((res.curve["arm"] == "basic").mean())
        # online truth: the same starting state on fresh users of the launched world
        online = copy.deepcopy(launched)
        fresh = UpsellWorld(seed=seed + 500, launch_step=0).episode(res.n_accepted)
        ev, total, basic = fresh.expected_value, 0.0, 0.0
        for start in range(0, res.n_accepted, 20):
            r = np.arange(start, min(start + 20, res.n_accepted))
            bd = online.choose_batch(fresh.X[r], eligible=fresh.eligible[r])
            total += float((bd.probabilities * ev[r]).sum())
            basic += float(bd.probabilities[:, -1].sum())
            online.update_batch(fresh.X[r], bd.indices, fresh.outcomes(r, bd.indices).revenue)
        share_err.append(replay_share - basic / res.n_accepted)
        value_err.append(res.value - total / res.n_accepted)
        shares.append(res.arm_shares(window=100)["basic"].to_numpy())
        assert res.policy.arm_names[-1] == "basic" and res.policy.pulls[-1] > 0
    within_three_se(share_err)
    within_three_se(value_err)
    # the learning curve of the new plan: its share moves away from the untrained start as the policy learns
    first = np.mean([s[99] for s in shares])
    last = np.mean([s[-1] for s in shares])
    assert abs(last - first) > 0.02


# ------------------------------------------------------------------------------------------------------------
# mechanics
# ------------------------------------------------------------------------------------------------------------


class Recorder:
    """A learning candidate that records what it is shown: a uniform choice over eligible arms, per-row seeded."""

    arm_names = ["a", "b", "c"]

    def __init__(self) -> None:
        self.decided: list[tuple[np.ndarray, int]] = []  # (contexts scored, updates so far)
        self.learned: list[np.ndarray] = []

    def action_probabilities(self, X, eligible):
        self.decided.append((np.asarray(X)[:, 0].copy(), sum(len(b) for b in self.learned)))
        E = np.ones((len(X), 3), dtype=bool) if eligible is None else np.asarray(eligible)
        return E / E.sum(axis=1, keepdims=True)

    def update_batch(self, X, arms, rewards):
        self.learned.append(np.asarray(X)[:, 0].copy())


def shuffled_uniform_log(n: int = 3000, seed: int = 0) -> LoggedData:
    rng = np.random.default_rng(seed)
    t = rng.permutation(n)  # rows out of time order; context column 0 is the time index
    X = np.column_stack([t.astype(float), rng.normal(size=n)])
    times = np.datetime64("2024-01-01T00:00", "us") + t.astype("timedelta64[m]")
    action = rng.integers(0, 3, size=n)
    reward = (rng.random(n) < 0.2).astype(float)
    return LoggedData(X, action, reward, np.full(n, 1 / 3), timestamp=times, action_names=["a", "b", "c"])


def test_a_learning_candidate_sees_rows_in_time_order_and_learns_only_from_past_accepted_rows_in_batches():
    data = shuffled_uniform_log()
    cand = Recorder()
    res = Replay(batch_size=7, copy=False).run(data, cand)
    assert res.policy is cand
    batches = cand.learned
    assert all(len(b) == 7 for b in batches) and len(batches) == res.n_accepted // 7
    learned = np.concatenate(batches)
    np.testing.assert_array_equal(learned, np.sort(learned))  # in timestamp order
    # the learned rows are exactly the first accepted events, in order
    np.testing.assert_array_equal(learned, data.context[res.curve["row"].to_numpy()[: len(learned)], 0])
    # whenever the candidate scored rows, it had learned only from strictly earlier rows
    for times, n_learned in cand.decided:
        if n_learned:
            assert learned[:n_learned].max() < times.min()
    # curve bookkeeping
    curve = res.curve
    assert (curve["timestamp"].diff().iloc[1:] > pd.Timedelta(0)).all()
    np.testing.assert_allclose(curve["cumulative_reward"], np.cumsum(curve["reward"]))
    np.testing.assert_allclose(curve["mean_reward"].iloc[-1], res.value)
    np.testing.assert_array_equal(curve["updates"], 7 * (np.arange(res.n_accepted) // 7))
    assert res.estimate.n == res.n_accepted and res.estimate.ci_low < res.value < res.estimate.ci_high
    assert abs(res.n_accepted - 1000) < 3 * np.sqrt(3000 * (1 / 3) * (2 / 3))


def test_replay_copies_a_learning_candidate_and_reports_what_it_learned():
    sim = simulate(3, 3000)
    policy = make_linucb(sim.world, seed=0)
    res = Replay(batch_size=10).run(sim.data, policy)
    assert policy.n_updates == 0
    assert res.policy is not policy and res.policy.n_updates == 10 * (res.n_accepted // 10)
    fixed = Replay(learn=False).run(sim.data, policy)
    assert fixed.policy is policy and policy.n_updates == 0 and fixed.curve["updates"].eq(0).all()


def test_cost_of_learning_against_the_policy_in_place():
    sim = simulate(4, 6000)
    current = fitted_policy()
    in_place = Replay(learn=False).run(sim.data, current)
    res = Replay(batch_size=20).run(sim.data, make_linucb(sim.world, seed=4))
    cost = res.cost(in_place.value)
    assert len(cost) == res.n_accepted and cost.index[0] == 1
    np.testing.assert_allclose(cost.to_numpy(), np.cumsum(in_place.value - res.curve["reward"].to_numpy()))
    assert cost.iloc[-1] == pytest.approx(res.n_accepted * (in_place.value - res.value))
    with pytest.raises(TypeError, match="reference must be a number"):
        res.cost("0.5")
    with pytest.raises(ValueError, match="reference must be a finite"):
        res.cost(float("nan"))


def test_a_read_only_snapshot_cannot_learn_but_replays_as_a_fixed_policy():
    sim = simulate(5, 1500)
    snap = fitted_policy().snapshot()
    with pytest.raises(TypeError, match="read-only \\(a snapshot\\).*pass learn=False"):
        Replay().run(sim.data, snap)
    assert Replay(learn=False).run(sim.data, snap).n_accepted > 0


def test_replay_equals_li_et_al_when_every_row_has_the_same_arms():
    """Same arms in every row: M / mu = 1, so the replay keeps exactly the rows where the candidate matches."""
    rng = np.random.default_rng(5)
    n = 2000
    X = rng.normal(size=(n, 2))
    action = rng.integers(0, 4, size=n)
    reward = rng.normal(size=n)
    data = LoggedData(X, action, reward, np.full(n, 0.25))
    target = (X[:, 0] > 0).astype(int) + 2 * (X[:, 1] > 0)
    res = Replay().run(data, target)
    match = np.flatnonzero(target == action)
    np.testing.assert_array_equal(np.sort(res.curve["row"].to_numpy()), match)
    assert res.value == pytest.approx(reward[match].mean())
    assert res.estimate.se == pytest.approx(reward[match].std(ddof=1) / np.sqrt(len(match)))


def test_replay_thins_matches_by_the_number_of_eligible_arms():
    """Rows with 2 of 4 arms eligible are matched twice as often; thinning by K_i / K_max undoes it."""
    rng = np.random.default_rng(9)
    n = 40_000
    E = np.ones((n, 4), dtype=bool)
    few = rng.random(n) < 0.5
    E[few, 2:] = False
    k = E.sum(axis=1)
    action = np.where(few, rng.integers(0, 2, size=n), rng.integers(0, 4, size=n))
    reward = np.where(few, 1.0, 0.0)  # the truth of "always arm 0": 0.5
    data = LoggedData(None, action, reward, 1.0 / k, eligible=E)
    res = Replay().run(data, 0)
    assert res.acceptance_rate == 0.25
    assert abs(res.value - 0.5) < 3 * 0.5 / np.sqrt(res.n_accepted)
    naive = reward[action == 0].mean()  # keeping every match: 2/3 of the kept rows are "few" rows
    assert abs(naive - 2 / 3) < 0.02


def test_arm_shares_and_name_matching():
    data = shuffled_uniform_log(n=2000)

    class Reversed(Recorder):
        arm_names = ["c", "b", "a"]

        def action_probabilities(self, X, eligible):
            p = np.tile([0.6, 0.3, 0.1], (len(X), 1))  # c, b, a in its own order
            return p

    res = Replay(learn=False).run(data, Reversed())
    ref = Replay().run(data, np.tile([0.1, 0.3, 0.6], (data.n, 1)))
    np.testing.assert_array_equal(res.curve["row"], ref.curve["row"])
    shares = res.arm_shares(window=200)
    assert list(shares.columns) == ["a", "b", "c"]
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    overall = res.arm_shares(window=res.n_accepted).iloc[-1]
    assert abs(overall["c"] - 0.6) < 0.06 and abs(overall["a"] - 0.1) < 0.04
    daily = res.arm_shares(freq="h")
    np.testing.assert_allclose(daily.sum(axis=1), 1.0)
    assert "kept" in repr(res) and isinstance(res, ReplayResult)


def test_rejection_replay_warns_about_arms_logged_below_the_acceptance_rate():
    n = 3000
    rng = np.random.default_rng(2)
    P = np.tile([0.7, 0.29, 0.01], (n, 1))
    action = (P.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    data = LoggedData(None, action, rng.random(n), P[np.arange(n), action], probabilities=P)
    # min_propensity above a logged propensity is refused; the default M = 0.01 keeps about 1% of the rows
    with pytest.raises(ValueError, match="min_propensity=0.2 exceeds the logged propensity 0.01"):
        RejectionReplay(min_propensity=0.2).run(data, 2)
    res = RejectionReplay().run(data, 2)
    assert res.acceptance_rate == pytest.approx(0.01) and res.support_deficit == 0.0
    assert abs(res.n_accepted - 30) < 3 * np.sqrt(30)
    # an arm the logger never takes: the candidate's mass there is never replayed
    P0 = np.tile([0.7, 0.3, 0.0], (n, 1))
    action0 = (P0.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    data0 = LoggedData(None, action0, rng.random(n), P0[np.arange(n), action0], probabilities=P0)
    with pytest.warns(DiagnosticWarning, match="logged with probability below the acceptance rate"):
        res0 = RejectionReplay().run(data0, np.full((n, 3), 1 / 3))
    assert res0.support_deficit == pytest.approx(1 / 3) and not res0.estimate.consistent


def test_replay_picks_the_rule_from_the_logs():
    data = shuffled_uniform_log(n=500)
    assert replay(data, 1).estimate.estimator == "Replay"
    n = 500
    p = np.where(np.arange(n) % 2 == 0, 0.5, 0.25)
    skewed = LoggedData(None, np.zeros(n, dtype=int), np.ones(n), p, n_actions=3)
    assert replay(skewed, 0).estimate.estimator == "RejectionReplay"


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: Replay(batch_size=0), ValueError, "batch_size must be >= 1"),
        (lambda: Replay(batch_size=2.5), TypeError, "batch_size must be an int"),
        (lambda: Replay(mode="fast"), ValueError, "mode must be one of"),
        (lambda: Replay(alpha=1.5), ValueError, "alpha must lie in \\(0, 1\\)"),
        (lambda: Replay(seed="x"), TypeError, "seed must be an int or None"),
        (lambda: RejectionReplay(min_propensity=0), ValueError, "min_propensity must lie in \\(0, 1\\]"),
        (lambda: RejectionReplay(min_propensity="a"), TypeError, "min_propensity must be a float"),
    ],
)
def test_bad_replay_settings(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_bad_replay_inputs():
    data = shuffled_uniform_log(n=300)
    n = 300
    skewed = LoggedData(None, np.zeros(n, dtype=int), np.ones(n), np.full(n, 0.5), n_actions=3)
    with pytest.raises(ValueError, match="data.propensity must be 1 / \\(number of eligible arms\\).*RejectionReplay"):
        Replay().run(skewed, 0)
    with pytest.raises(TypeError, match="data must be an offline_eval.LoggedData"):
        Replay().run(data.reward, 0)

    class NoUpdate:
        arm_names = ["a", "b", "c"]

        def action_probabilities(self, X, eligible):
            return np.full((len(X), 3), 1 / 3)

    with pytest.raises(TypeError, match="no update_batch.*pass learn=False"):
        Replay().run(data, NoUpdate())
    assert Replay(learn=False).run(data, NoUpdate()).n_accepted > 0

    class Unknown(Recorder):
        arm_names = ["a", "b"]

    with pytest.raises(ValueError, match="candidate has no arm \\['c'\\]"):
        Replay().run(data, Unknown())
    with pytest.raises(TypeError, match="mode='choose' needs a candidate with choose"):
        Replay(mode="choose").run(data, Recorder())

    class Extra:
        arm_names = ["a", "b", "c", "new"]

        def choose(self, context, eligible=None):
            return 3

        def update(self, context, arm, reward):
            pass

    with pytest.raises(ValueError, match="candidate chose arm 'new' at row .* not in the logs"):
        Replay().run(data, Extra())
