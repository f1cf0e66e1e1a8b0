"""Target policies are matched to the log by arm name; a deterministic logger's support deficit is seen and warned.

Regressions: (1) a policy built with its arms in another order than the log was scored positionally (IPS 0.10
instead of 0.50, no warning); (2) logs of a deterministic policy (every propensity 1) reported ESS = n, support
deficit 0 and no warning for a candidate that spreads mass over the other eligible arms.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from bandit import LinUCB
from offline_eval import DR, IPS, SNIPS, DiagnosticWarning, LoggedData, compare, evaluate
from offline_eval.estimators.base import resolve_target

ARMS = ["individual", "duo", "family"]
RATES = np.array([0.1, 0.3, 0.5])  # conversion rate per arm, in ARMS order
D = 3


def uniform_log(n: int = 3000, seed: int = 0) -> LoggedData:
    """Uniform logging over the eligible arms; "individual" is ineligible in every fifth row."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, D))
    eligible = np.ones((n, 3), dtype=bool)
    eligible[::5, 0] = False
    probs = eligible / eligible.sum(axis=1, keepdims=True)
    action = (probs.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    reward = (rng.random(n) < RATES[action]).astype(float)
    return LoggedData(
        X, action, reward, probs[np.arange(n), action], probabilities=probs, eligible=eligible, action_names=ARMS
    )


def trained_linucb(arms: list[str], data: LoggedData, **kwargs) -> LinUCB:
    """A LinUCB with ``arms`` in the given order, trained by arm name on the first 1000 logged rows."""
    policy = LinUCB(arms, n_features=D, alpha=0.1, seed=3, **kwargs)
    names = [data.action_names[k] for k in data.action[:1000]]
    policy.update_batch(data.context[:1000], names, data.reward[:1000])
    return policy


class NamedPolicy:
    """A non-bandit policy object naming its arms through ``action_names``; records the masks it receives."""

    def __init__(self, action_names: list[str], probs: np.ndarray, use_mask: bool = True) -> None:
        self.action_names = action_names
        self.probs = probs
        self.use_mask = use_mask
        self.masks: list[np.ndarray | None] = []

    def action_probabilities(self, X: np.ndarray, eligible: np.ndarray | None = None) -> np.ndarray:
        self.masks.append(eligible)
        out = self.probs if eligible is None or not self.use_mask else self.probs * eligible
        return out / out.sum(axis=1, keepdims=True)


# ------------------------------------------------------------------------------------------------------------------
# arm order
# ------------------------------------------------------------------------------------------------------------------


def test_linucb_in_two_arm_orders_gives_identical_estimates():
    data = uniform_log()
    forward = trained_linucb(ARMS, data, exploration_floor=0.1)
    backward = trained_linucb(ARMS[::-1], data, exploration_floor=0.1)
    table = evaluate(data, {"forward": forward, "backward": backward}, estimators=[IPS(), SNIPS(), DR()])
    a = table[table.policy == "forward"].reset_index(drop=True)
    b = table[table.policy == "backward"].reset_index(drop=True)
    np.testing.assert_allclose(b.value, a.value, rtol=1e-12)
    np.testing.assert_allclose(b.ci_high, a.ci_high, rtol=1e-12)
    # the value is the real one; the positional reading of the old code (log mask in, columns out) is far off
    probs = forward.action_probabilities(data.context, data.eligible)
    assert a.value[0] == pytest.approx(IPS().estimate(data, probs).value, rel=1e-12)
    assert a.value[0] > 0.4  # it learned to favour "family" (rate 0.5)
    positional = backward.action_probabilities(data.context, data.eligible)
    assert IPS().estimate(data, positional).value < 0.25
    diff = compare(data, forward, backward, IPS())
    assert diff.value == pytest.approx(0.0, abs=1e-12) and diff.se == pytest.approx(0.0, abs=1e-12)


def test_policy_gets_the_eligibility_mask_in_its_own_arm_order():
    data = uniform_log(n=50)
    order = ["family", "individual", "duo"]
    probs = np.tile([0.6, 0.1, 0.3], (data.n, 1))  # in the policy's order
    policy = NamedPolicy(order, probs)
    resolved = resolve_target(data, policy)
    (mask,) = policy.masks
    for j, arm in enumerate(order):
        np.testing.assert_array_equal(mask[:, j], data.eligible[:, ARMS.index(arm)])
    expected = probs * mask
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(resolved.probabilities, expected[:, [order.index(a) for a in ARMS]])


def test_a_policy_in_the_log_order_gets_the_log_mask_itself():
    data = uniform_log(n=20)
    policy = NamedPolicy(list(ARMS), np.full((data.n, 3), 1 / 3))
    resolve_target(data, policy)
    assert policy.masks[0] is data.eligible


def test_a_policy_missing_a_logged_arm_is_an_error_naming_it():
    data = uniform_log(n=50)
    policy = NamedPolicy(["family", "duo"], np.full((data.n, 2), 0.5))
    with pytest.raises(ValueError, match=r"lacks some of the logged arms: \['individual'\] are not among its arms"):
        IPS().estimate(data, policy)
    with pytest.raises(ValueError, match=r"policies\['short'\] lacks some of the logged arms: \['individual'\]"):
        evaluate(data, {"short": policy}, estimators=[IPS()])


def test_probability_on_an_arm_the_log_lacks_is_an_error_naming_it():
    data = uniform_log(n=60)
    extended = trained_linucb(ARMS + ["student"], data, exploration_floor=0.2)
    with pytest.raises(ValueError, match=r"puts probability on arms \['student'\] that are not in the logs"):
        IPS().estimate(data, extended)
    policy = NamedPolicy(["student", *ARMS], np.tile([0.0, 0.2, 0.3, 0.5], (data.n, 1)))
    resolve_target(data, policy)
    assert policy.masks[0][:, 0].all()  # the unlogged arm is offered to the policy, which gives it no mass


def test_a_retired_arm_the_log_lacks_is_dropped():
    data = uniform_log(n=200)
    extended = trained_linucb(ARMS + ["student"], data, exploration_floor=0.2)
    extended.remove_arm("student")
    plain = trained_linucb(ARMS, data, exploration_floor=0.2)
    assert IPS().estimate(data, extended).value == pytest.approx(IPS().estimate(data, plain).value, rel=1e-12)


def test_plain_arrays_stay_positional():
    data = uniform_log(n=500)
    probs = np.tile([0.0, 0.0, 1.0], (data.n, 1))  # column k is data.action_names[k]: always "family"
    assert IPS().estimate(data, probs).value == pytest.approx(IPS().estimate(data, "family").value, rel=1e-15)


def test_dataframe_columns_are_matched_by_name_or_rejected():
    data = uniform_log(n=100)
    probs = np.tile([0.2, 0.3, 0.5], (data.n, 1)) * data.eligible
    probs /= probs.sum(axis=1, keepdims=True)
    expected = IPS().estimate(data, probs).value
    shuffled = pd.DataFrame(probs[:, [2, 0, 1]], columns=["family", "individual", "duo"])
    assert IPS().estimate(data, shuffled).value == pytest.approx(expected, rel=1e-15)
    assert IPS().estimate(data, pd.DataFrame(probs)).value == pytest.approx(expected, rel=1e-15)  # 0..K-1: positional
    wrong = pd.DataFrame(probs, columns=["family", "individual", "student"])
    with pytest.raises(ValueError, match=r"missing \['duo'\], unknown \['student'\]"):
        IPS().estimate(data, wrong)


def test_a_named_policy_on_logs_without_arm_names_is_an_error_saying_how_to_fix_it():
    data = uniform_log(n=100)
    unnamed = LoggedData(data.context, data.action, data.reward, data.propensity, eligible=data.eligible)
    policy = trained_linucb(ARMS, data)
    with pytest.raises(ValueError, match=r"the logs have no arm names .*pass action_names="):
        IPS().estimate(unnamed, policy)
    positional = policy.action_probabilities(unnamed.context, unnamed.eligible)
    assert IPS().estimate(unnamed, positional).value == pytest.approx(IPS().estimate(data, policy).value, rel=1e-15)


@pytest.mark.parametrize(
    "names, exc, message",
    [
        ("abc", TypeError, "action_names must be a sequence of arm names"),
        (["duo", "duo", "family"], ValueError, r"must name each arm once, got duplicates \['duo'\]"),
    ],
)
def test_bad_arm_names_are_rejected(names, exc, message):
    data = uniform_log(n=20)
    with pytest.raises(exc, match=message):
        resolve_target(data, NamedPolicy(names, np.full((data.n, 3), 1 / 3)))


def test_output_of_the_wrong_width_names_the_policy_arms():
    data = uniform_log(n=20)
    policy = NamedPolicy(["family", "duo", "individual"], np.full((data.n, 2), 0.5), use_mask=False)
    with pytest.raises(ValueError, match=r"must have shape \(n, K\) = \(20, 3\).*\['family', 'duo', 'individual'\]"):
        resolve_target(data, policy)


# ------------------------------------------------------------------------------------------------------------------
# deterministic logging policy: the support deficit
# ------------------------------------------------------------------------------------------------------------------


def deterministic_case(n: int = 4000) -> tuple[LoggedData, LinUCB, np.ndarray]:
    """Logs of a greedy LinUCB (exploration_floor=0, every propensity 1) with the real, all-True eligibility mask;
    a candidate LinUCB with a 0.6 exploration floor; the candidate's (n, K) distribution on the logs."""
    rng = np.random.default_rng(11)
    warm = uniform_log(n=600, seed=5)
    logger = LinUCB(ARMS, n_features=D, alpha=0.0, exploration_floor=0.0, seed=1)
    logger.update_batch(warm.context, warm.action, warm.reward)
    X = rng.normal(size=(n, D))
    batch = logger.choose_batch(X)
    assert (batch.propensities == 1.0).all() and batch.eligible.all()
    reward = (rng.random(n) < RATES[batch.indices]).astype(float)
    data = LoggedData(
        X, batch.indices, reward, batch.propensities, probabilities=batch.probabilities, eligible=batch.eligible,
        action_names=logger.arm_names,
    )
    candidate = LinUCB(ARMS, n_features=D, alpha=1.0, exploration_floor=0.6, seed=2)
    probs = candidate.action_probabilities(X, batch.eligible)
    return data, candidate, probs


def test_deterministic_logs_show_the_true_support_deficit_and_warn_once_per_policy():
    data, candidate, probs = deterministic_case()
    deficit = 1.0 - probs[np.arange(data.n), data.action].mean()  # target mass off the only logged arm
    assert deficit > 0.3
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = evaluate(data, {"candidate": candidate}, estimators=[IPS(), SNIPS(), DR()])
    messages = [str(c.message) for c in caught if issubclass(c.category, DiagnosticWarning)]
    support = [m for m in messages if "support deficit" in m]
    assert len(support) == 1 and support[0].startswith("policies['candidate']: support deficit: ")
    np.testing.assert_allclose(table.support_deficit, deficit, rtol=1e-9)
    assert not table.consistent.any()  # IPS-type estimates do not pretend to be unbiased
    assert (table.bias_bound >= deficit * 1.0 - 1e-12).all()  # 0/1 rewards: what the unsupported mass may hold
    assert table.recommended.sum() == 1
    for est in (IPS(), SNIPS(), DR()):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DiagnosticWarning)
            assert not est.estimate(data, candidate).consistent


def test_support_deficit_without_logged_probabilities_uses_propensity_one_rows():
    data, candidate, probs = deterministic_case(n=1000)
    full = resolve_target(data, candidate).support_deficit
    assert full == pytest.approx(1.0 - probs[np.arange(data.n), data.action].mean(), rel=1e-12)
    for kwargs in ({"eligible": data.eligible}, {}):  # eligibility only, and nothing but propensities
        thin = LoggedData(data.context, data.action, data.reward, data.propensity, action_names=ARMS, **kwargs)
        assert resolve_target(thin, candidate).support_deficit == pytest.approx(full, rel=1e-12)
        assert resolve_target(thin, data.action).support_deficit == 0.0  # the logger itself is fully supported
        other = (data.action + 1) % 3
        assert resolve_target(thin, other).support_deficit == 1.0  # deterministic targets: same rule
        with pytest.warns(DiagnosticWarning, match="support deficit") as record:
            IPS().estimate(thin, candidate)
        assert not any("mean importance weight" in str(w.message) for w in record)  # E[w] = 1 - deficit holds


def test_rows_with_propensity_below_one_give_a_lower_bound_and_none_when_unknowable():
    n = 400
    action = np.arange(n) % 2
    propensity = np.where(np.arange(n) < n // 2, 1.0, 0.5)
    data = LoggedData(None, action, np.ones(n), propensity, n_actions=2)
    target = np.tile([0.3, 0.7], (n, 1))
    # first half (propensity 1): exactly the mass off the logged arm; second half unknown, counted as 0
    expected = (1.0 - target[np.arange(n // 2), action[: n // 2]]).sum() / n
    assert resolve_target(data, target).support_deficit == pytest.approx(expected)
    unknown = LoggedData(None, action, np.ones(n), np.full(n, 0.5))
    assert resolve_target(unknown, target).support_deficit is None


def test_compare_warns_once_per_policy_with_its_name_and_is_not_consistent():
    data, candidate, _ = deterministic_case(n=1000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        diff = compare(data, candidate, data.action, IPS(), names=("candidate", "logger"))
    support = [str(c.message) for c in caught if "support deficit" in str(c.message)]
    assert len(support) == 1 and "candidate: support deficit" in support[0]
    assert diff.estimator == "IPS: candidate - logger" and not diff.consistent
    with pytest.raises(ValueError, match="names must be two different labels"):
        compare(data, candidate, data.action, IPS(), names=("x", "x"))
    with pytest.raises(TypeError, match="names must be a tuple of two str labels"):
        compare(data, candidate, data.action, IPS(), names=["x", "y"])


def test_through_the_decision_log_a_greedy_logger_shows_the_deficit_and_arm_order_does_not_matter(tmp_path):
    """DecisionLog (with the real eligibility) -> join_outcomes -> LoggedData -> evaluate, end to end."""
    from bandit import DecisionLog
    from bandit.attribution import join_outcomes

    rng = np.random.default_rng(21)
    warm = uniform_log(n=600, seed=6)
    logger = LinUCB(ARMS, n_features=D, alpha=0.0, exploration_floor=0.0, seed=1)
    logger.update_batch(warm.context, warm.action, warm.reward)
    n = 1500
    X = rng.normal(size=(n, D))
    batch = logger.choose_batch(X, event_ids=[f"e{i}" for i in range(n)])
    start = pd.Timestamp("2026-11-01", tz="UTC")
    stamps = [start + pd.Timedelta(seconds=i) for i in range(n)]
    with warnings.catch_warnings(), DecisionLog(tmp_path / "logs", policy=logger) as log:
        warnings.simplefilter("ignore")  # the writer may warn that a greedy logger does not explore: that is the point
        log.append_batch(batch, X, timestamps=stamps, eligible=batch.eligible)
    converted = rng.random(n) < RATES[batch.indices]
    outcomes = pd.DataFrame({
        "event_id": [f"e{i}" for i in np.flatnonzero(converted)],
        "timestamp": [stamps[i] + pd.Timedelta(hours=1) for i in np.flatnonzero(converted)],
        "reward": 1.0,
    })
    joined = join_outcomes(tmp_path / "logs", outcomes, attribution_window="1D", now="2026-12-01")
    data = LoggedData.from_dataframe(joined)
    assert data.action_names == ARMS and data.eligible.all() and (data.propensity == 1.0).all()
    forward = LinUCB(ARMS, n_features=D, alpha=1.0, exploration_floor=0.5, seed=2)
    backward = LinUCB(ARMS[::-1], n_features=D, alpha=1.0, exploration_floor=0.5, seed=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = evaluate(data, {"forward": forward, "backward": backward}, estimators=[IPS(), DR()])
    probs = forward.action_probabilities(data.context, data.eligible)
    deficit = 1.0 - probs[np.arange(n), data.action].mean()
    np.testing.assert_allclose(table.support_deficit, deficit, rtol=1e-9)
    assert deficit > 0.3 and not table.consistent.any()
    np.testing.assert_allclose(table.value[:2], table.value[2:], rtol=1e-12)
    support = sorted(str(c.message).split(":")[0] for c in caught if "support deficit" in str(c.message))
    assert support == ["policies['backward']", "policies['forward']"]


def test_a_policy_with_none_of_the_logged_arms_is_told_so():
    # regression: "the policy has no arm ['individual', 'duo'] of the logged arms ['individual', 'duo']" read as a
    # contradiction
    from bandit import LinUCB
    from offline_eval import IPS, LoggedData

    data = LoggedData(np.zeros((4, 2)), [0, 1, 0, 1], [1.0, 0.0, 1.0, 0.0], [0.5] * 4,
                      action_names=["individual", "duo"])
    with pytest.raises(ValueError, match=r"lacks every one of the logged arms: \['individual', 'duo'\] are not among "
                                         r"its arms \['x', 'y'\]"):
        IPS().estimate(data, LinUCB(["x", "y"], n_features=2, seed=0))
