"""Launch metrics of the simulator: Cohen's kappa, the plateau-relative time to learn, the launch-window regret."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from bandit.simulation import SimulationConfig, known_attribute_plan, run_simulation
from bandit.simulation.metrics import MIN_LEARNED_KAPPA, cohen_kappa, launch_window_regret, time_to_learn


@pytest.mark.parametrize("seed", range(5))
def test_cohen_kappa_matches_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    a = rng.random(300) < 0.3
    b = np.where(rng.random(300) < 0.7, a, rng.random(300) < 0.5)
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b), abs=1e-12)


def test_cohen_kappa_is_zero_for_everyone_or_no_one_and_nan_when_undefined():
    truth = np.array([True, False, False, True, False])
    assert cohen_kappa(np.ones(5, bool), truth) == 0.0
    assert cohen_kappa(np.zeros(5, bool), truth) == 0.0
    assert math.isnan(cohen_kappa(np.zeros(5, bool), np.zeros(5, bool)))
    assert math.isnan(cohen_kappa(np.zeros(0, bool), np.zeros(0, bool)))


def _learner(n_windows: int, window: int, learn_at: int, accuracy: float, seed: int = 0):
    """Oracle offers the new plan (1) to 30% of users; the policy offers it to everyone until window ``learn_at``,
    then agrees with the oracle with probability ``accuracy``."""
    rng = np.random.default_rng(seed)
    n = n_windows * window
    best = (rng.random(n) < 0.3).astype(np.int64)
    actions = np.where(rng.random(n) < accuracy, best, 1 - best)
    actions[: learn_at * window] = 1
    return actions, best, np.arange(n)


@pytest.mark.parametrize("accuracy", [0.7, 0.95])
def test_time_to_learn_is_the_first_window_near_the_settled_level_whatever_that_level(accuracy):
    """Offering the plan to everyone never counts; a policy that settles at a modest agreement still gets a time
    (the old absolute bar reported n/a for it), at the end of the window where it starts targeting."""
    window = 500
    actions, best, steps = _learner(12, window, learn_at=4, accuracy=accuracy)
    up, ttl = time_to_learn(actions, best, 1, steps, launch_step=0, window=window, fraction=0.6)
    np.testing.assert_array_equal(up["kappa"].to_numpy()[:4], 0.0)
    assert ttl == 5 * window
    assert up["kappa"].to_numpy()[4:].min() > MIN_LEARNED_KAPPA
    # the uptake columns are those of the docstring
    assert list(up.columns) == ["window_end", "steps_since_launch", "share", "oracle_share", "recall", "precision",
                                "kappa"]


def test_time_to_learn_is_nan_for_a_policy_that_never_targets_the_plan():
    window = 200
    actions, best, steps = _learner(10, window, learn_at=10, accuracy=1.0)  # everyone, all along
    assert math.isnan(time_to_learn(actions, best, 1, steps, 0, window, 0.6)[1])
    rng = np.random.default_rng(3)
    random = (rng.random(best.shape[0]) < 0.3).astype(np.int64)  # the right share, at random
    assert math.isnan(time_to_learn(random, best, 1, steps, 0, window, 0.6)[1])
    assert math.isnan(time_to_learn(np.zeros_like(best), best, 1, steps, 0, window, 0.6)[1])  # never offered
    empty, ttl = time_to_learn(actions, best, 1, steps, launch_step=10**6, window=window, fraction=0.6)
    assert empty.empty and math.isnan(ttl)


class _Run:
    def __init__(self, start: int, regret: np.ndarray) -> None:
        self.steps = np.arange(start, start + regret.shape[0])
        self.regret = regret


def test_launch_window_regret_sums_equal_windows_on_both_sides():
    regret = np.arange(100, dtype=np.float64)
    after, before, m = launch_window_regret(_Run(0, regret), launch_step=60, window=25)
    assert (after, before, m) == (regret[60:85].sum(), regret[35:60].sum(), 25)
    after, before, m = launch_window_regret(_Run(1000, regret), launch_step=1090, window=25)  # 10 left after
    assert (after, before, m) == (regret[90:].sum(), regret[80:90].sum(), 10)
    after, before, m = launch_window_regret(_Run(0, regret), launch_step=0, window=25)
    assert math.isnan(after) and math.isnan(before) and m == 0


@pytest.fixture(scope="module")
def known_launch():
    cfg = SimulationConfig.model_validate({
        "seed": 1, "horizon": 9_000, "batch_size": 500, "launch_step": 5_000,
        "catalog": {"new_plan": known_attribute_plan().model_dump()},
        "policies": [{"name": "oracle", "type": "oracle"}, {"name": "linucb", "type": "LinUCB"},
                     {"name": "eps", "type": "EpsilonGreedy"}, {"name": "hybrid", "type": "HybridLinUCB"},
                     {"name": "uniform", "type": "UniformRandom"}],
        "offline_eval": {"enabled": False},
        "output": {"progress": False, "share_window": 500, "launch_window": 3_000}})
    return run_simulation(cfg)


def test_the_summary_reports_the_launch_window_regret_and_a_time_to_learn_for_every_learner(known_launch):
    result = known_launch
    s = result.summary.set_index("policy")
    for name, run in result.runs.items():
        assert s.loc[name, "launch_window_regret"] == pytest.approx(run.regret[5_000:8_000].sum())
        assert s.loc[name, "pre_launch_window_regret"] == pytest.approx(run.regret[2_000:5_000].sum())
    assert s.loc["oracle", "launch_window_regret"] == 0.0
    for name in ("linucb", "eps", "hybrid", "oracle"):
        assert 0 < s.loc[name, "time_to_learn"] <= 4_000, name
    assert math.isnan(s.loc["uniform", "time_to_learn"])  # offers it at random: never learned
    md = result.to_markdown()
    assert "launch_window_regret" in md and "3,000 offers after the launch" in md


def test_the_known_attribute_plan_is_spanned_by_the_launch_day_catalog():
    """Every arm feature of duo_saver lies within the range the launch-day products span."""
    from bandit.simulation.catalog import default_products

    F = np.array([p.arm_features() for p in default_products() if p.kind == "plan" and not p.student_only])
    f = np.array(known_attribute_plan().arm_features())
    assert ((F.min(axis=0) <= f) & (f <= F.max(axis=0))).all()


def test_learning_at_window_close_learns_exactly_the_closed_windows_and_at_arrival_also_early_conversions():
    """``learn_at="window_close"``: what the run learned is exactly the decisions whose window had closed by its last
    refresh (``mature``); at arrival, those plus the outcomes that arrived in still-open windows -- mostly
    conversions, the early-conversion bias the option avoids."""
    import bandit
    from bandit.simulation import UpsellWorld, run_policy

    world = UpsellWorld(seed=5, launch_step=None)
    ep = world.episode(6_000)
    arms, d = world.arms(include_new=False), world.featurizer.n_features
    runs = {}
    for mode in ("arrival", "window_close"):
        pol = bandit.LinUCB(arms, n_features=d, seed=0)
        runs[mode] = run = run_policy(ep, pol, batch_size=500, learn_at=mode)
        assert pol.n_updates == int(run.known.sum())
        learned = np.nansum(pol.mean_rewards * pol.pulls)
        assert learned == pytest.approx(run.reward[run.known].sum(), abs=1e-9)
    closed, early = runs["window_close"], runs["arrival"]
    np.testing.assert_array_equal(closed.known, closed.mature)
    extra = early.known & ~early.mature
    assert extra.any() and (early.mature <= early.known).all()
    # early outcomes are conversions (and cancellations of paying users, reward 0): far richer in conversions than
    # the decisions whose window closed
    np.testing.assert_array_equal(early.reward[extra], early.outcomes.attributed[extra])
    assert early.reward[extra].mean() > 5 * early.reward[early.mature].mean()
    with pytest.raises(ValueError, match="learn_at"):
        run_policy(ep, bandit.LinUCB(arms, n_features=d, seed=0), learn_at="never")
