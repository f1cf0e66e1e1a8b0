"""Launch metrics of the simulator: Cohen's kappa, the plateau-relative time to learn, the launch-window regret."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from bandit.simulation import SimulationConfig, known_attribute_plan, run_simulation
from bandit.simulation.metrics import (
    MIN_LEARNED_KAPPA,
    cohen_kappa,
    launch_window_regret,
    learned_at,
    settled_kappa,
    time_to_learn,
)


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


def test_offering_the_plan_at_random_is_not_learning_it_even_in_small_windows():
    """With windows of 200 offers a random policy's settled kappa passed the absolute bar of 0.05 about one time in
    six (17 of these 100 seeds, and the uniform policy of the CLI's small simulation): a time to learn for a policy
    that never learned. The settled level must also beat chance by three standard errors."""
    from bandit.simulation.metrics import CHANCE_Z, chance_kappa_se

    learned = 0
    for seed in range(100):
        rng = np.random.default_rng(seed)
        best = (rng.random(1200) < 0.25).astype(np.int64)
        actions = (rng.random(1200) < 0.25).astype(np.int64)
        up, ttl = time_to_learn(actions, best, 1, np.arange(1200), 0, 200, 0.6)
        learned += not math.isnan(ttl)
        assert math.isnan(ttl) == (settled_kappa(up) < max(MIN_LEARNED_KAPPA, CHANCE_Z * chance_kappa_se(up)))
    assert learned <= 2  # about 0.2 expected
    # a policy that does target the plan in the same small windows still learns it
    actions, best, steps = _learner(6, 200, learn_at=2, accuracy=0.9)
    assert time_to_learn(actions, best, 1, steps, 0, 200, 0.6)[1] == 600


@pytest.mark.parametrize("extra", [1, 7, 499])
def test_a_short_last_window_does_not_decide_the_settled_level(extra):
    """A run that does not end on a window boundary ends with a short window; one offer more must not turn a policy
    that learned the plan (even the oracle) into one that never did (it did: the short window alone was the
    settled level, and a one-offer window's kappa is 0 or undefined)."""
    window = 500
    actions, best, steps = _learner(4, window, learn_at=1, accuracy=0.95)
    full = time_to_learn(actions, best, 1, steps, 0, window, 0.6)[1]
    assert full == 2 * window
    rng = np.random.default_rng(extra)
    more_best = np.concatenate([best, (rng.random(extra) < 0.3).astype(np.int64)])
    more_actions = np.concatenate([actions, more_best[-extra:]])
    more_steps = np.arange(more_best.shape[0])
    up, ttl = time_to_learn(more_actions, more_best, 1, more_steps, 0, window, 0.6)
    assert len(up) == 5 and up["steps_since_launch"].iloc[-1] == 4 * window + extra
    assert ttl == full
    assert time_to_learn(more_best, more_best, 1, more_steps, 0, window, 0.6)[1] == window  # the oracle itself
    # the late windows: the last ones holding a third of the offers after the launch, weighted by their offers
    # (the last two hold 500 + extra >= (2000 + extra) / 3 offers from extra = 250 on)
    kappa = up["kappa"].to_numpy()
    late = slice(3, 5) if extra >= window / 2 else slice(2, 5)
    sizes = np.array([window] * 4 + [extra], dtype=np.float64)[late]
    ok = np.isfinite(kappa[late])
    assert settled_kappa(up) == pytest.approx(np.average(kappa[late][ok], weights=sizes[ok]))


@pytest.mark.parametrize("n_windows", [1, 2, 3, 4, 5, 9, 12])
def test_the_settled_level_of_full_windows_is_the_mean_over_the_last_third(n_windows):
    window = 100
    actions, best, steps = _learner(n_windows, window, learn_at=0, accuracy=0.9, seed=n_windows)
    up, ttl = time_to_learn(actions, best, 1, steps, 0, window, 0.6)
    kappa = up["kappa"].to_numpy()
    expected = kappa[-math.ceil(n_windows / 3):].mean()
    assert settled_kappa(up) == pytest.approx(expected)
    threshold, when = learned_at(up, 0.6)
    assert threshold == pytest.approx(0.6 * expected) and when == ttl
    assert ttl == up["steps_since_launch"].iloc[np.flatnonzero(kappa >= threshold)[0]]


def test_the_uptake_plot_shows_the_kappa_and_threshold_the_time_to_learn_uses():
    """The targeting panel draws each policy's kappa per window, and marks its time to learn where the kappa first
    reaches that policy's threshold (it used to draw min(recall, precision) against a line at ``fraction``: a
    different quantity, which learners never crossed)."""
    import pandas as pd

    from bandit.simulation.plots import _uptake_figure

    window = 200
    learner, best, steps = _learner(10, window, learn_at=3, accuracy=0.8)
    frames, ttls = [], {}
    for name, actions in (("learner", learner), ("everyone", np.ones_like(best))):
        up, ttls[name] = time_to_learn(actions, best, 1, steps, 0, window, 0.6)
        up.insert(0, "policy", name)
        frames.append(up)
    uptake = pd.concat(frames, ignore_index=True)
    assert ttls["learner"] == 4 * window and math.isnan(ttls["everyone"])
    fig = _uptake_figure(uptake, 0.6)
    right = fig.axes[1]
    lines = {line.get_gid(): line for line in right.get_lines() if line.get_gid()}
    for name, ttl in ttls.items():
        rows = uptake[uptake["policy"] == name]
        np.testing.assert_array_equal(lines[f"kappa:{name}"].get_ydata(), rows["kappa"].to_numpy())
        if math.isnan(ttl):
            assert f"learned:{name}" not in lines
        else:
            x, y = lines[f"learned:{name}"].get_xdata(), lines[f"learned:{name}"].get_ydata()
            assert (x[0], y[0]) == (ttl, rows.loc[rows["steps_since_launch"] == ttl, "kappa"].iloc[0])
            assert y[0] >= learned_at(rows, 0.6)[0]
    assert "kappa" in right.get_ylabel()


def test_plots_tell_apart_more_than_ten_arms_and_policies():
    """The arm-share plot coloured arm k with C{k % 10}: in a catalog of more than ten products two arms shared a
    colour, so their shares could not be told apart; policy lines past the tenth reuse a colour with another dash."""
    import pandas as pd
    from matplotlib.colors import to_rgba

    from bandit.simulation.plots import _arm_share_figure, _line_style

    arms = [f"plan_{k}" for k in range(13)]
    share = pd.DataFrame([
        {"policy": p, "window_start": w, "window_end": w + 100, "arm": a, "share": 1 / len(arms)}
        for p in ("linucb", "oracle (reference)") for w in (0, 100, 200) for a in arms
    ])
    fig = _arm_share_figure(share, launch_step=100)
    faces = [tuple(np.round(c.get_facecolor()[0], 6)) for c in fig.axes[0].collections]
    assert len(faces) == len(arms) == len(set(faces))
    styles = [_line_style(i) for i in range(40)]
    assert len({(to_rgba(st["color"]), st["linestyle"]) for st in styles}) == 40


def test_time_to_learn_rejects_bad_arguments_naming_them():
    """A zero window failed inside range(), a fraction outside (0, 1] returned NaN as if nothing was learned, and
    arrays of different lengths raised an IndexError."""
    a, steps = np.zeros(10, dtype=np.int64), np.arange(10)
    with pytest.raises(ValueError, match="window must be >= 1"):
        time_to_learn(a, a, 1, steps, 0, 0, 0.6)
    for fraction in (0.0, 2.0, float("nan")):
        with pytest.raises(ValueError, match="fraction must be"):
            time_to_learn(a, a, 1, steps, 0, 5, fraction)
    with pytest.raises(ValueError, match="1-D of one length"):
        time_to_learn(a, a[:5], 1, steps, 0, 5, 0.6)


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
    assert (s["launch_window_offers"] == 3_000).all()
    md = result.to_markdown()
    assert "launch_window_regret" in md and "`launch_window_offers` offers after the launch (3,000" in md


def test_a_launch_at_step_zero_is_reported_and_the_launch_window_is_its_true_size():
    """The summary named the launched plan only for a launch step that was truthy (not 0), and stated the configured
    launch window even when the run had fewer offers on one side of the launch."""
    base = {"horizon": 600, "batch_size": 100, "world": {"events_per_day": 200}, "offline_eval": {"enabled": False},
            "policies": [{"name": "oracle", "type": "oracle"}, {"name": "uniform", "type": "UniformRandom"}],
            "output": {"progress": False, "share_window": 100, "launch_window": 5_000}}
    at_zero = run_simulation(SimulationConfig.model_validate({**base, "launch_step": 0}))
    assert "(`basic` launched at step 0)" in at_zero.to_markdown()
    assert (at_zero.summary["launch_window_offers"] == 0).all()  # nothing before the launch to compare with
    later = run_simulation(SimulationConfig.model_validate({**base, "launch_step": 200}))
    s = later.summary.set_index("policy")
    assert (s["launch_window_offers"] == 200).all()  # 200 offers before the launch, 400 after
    run = later.runs["uniform"]
    assert s.loc["uniform", "launch_window_regret"] == pytest.approx(run.regret[200:400].sum())
    assert s.loc["uniform", "pre_launch_window_regret"] == pytest.approx(run.regret[:200].sum())
    assert " launch_window_offers |" in later.to_markdown()  # a column of the report's table


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


def test_the_uptake_plot_shows_a_policy_that_targets_exactly_like_the_oracle():
    """An ``oracle`` policy (kappa 1 in every window, as in examples/new_plan_launch.py) was drawn on the top edge
    of the targeting panel, under its frame and explanation, and the left legend named "oracle" twice."""
    import pandas as pd
    from matplotlib.text import Annotation

    from bandit.simulation.plots import _uptake_figure

    steps = np.array([500, 1000, 1500, 2000])
    uptake = pd.concat([
        pd.DataFrame({"policy": name, "steps_since_launch": steps, "share": share, "oracle_share": 0.2,
                      "kappa": kappa})
        for name, share, kappa in (("oracle", 0.2, 1.0), ("linucb", 0.4, np.array([0.1, 0.5, 0.7, 0.7])))
    ], ignore_index=True)
    fig = _uptake_figure(uptake, 0.6)
    fig.canvas.draw()
    left, right = fig.axes
    labels = [t.get_text() for t in left.get_legend().get_texts()]
    assert len(labels) == len(set(labels)) and "oracle (reference)" in labels
    bottom, top = right.get_ylim()
    assert top > 1.0 and bottom - 1e-9 <= min(right.get_yticks()) and max(right.get_yticks()) <= 1.0 + 1e-9
    # the explanation sits above kappa = 1, not on the oracle's line
    note = next(c for c in right.get_children() if isinstance(c, Annotation))
    box = note.get_window_extent().transformed(right.transData.inverted())
    assert box.y0 > 1.0
