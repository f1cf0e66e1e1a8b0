"""Generic checks run on every policy class (found by introspection), plus per-policy closed-form checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from policy_helpers import (
    ARMS,
    CONTEXTUAL,
    CONVERSION,
    POLICY_CLASSES,
    RIDGE,
    THOMPSON,
    D,
    K,
    assert_same_state,
    make,
    state_of,
    trained,
    training_data,
)
from scipy import stats

import bandit.state
from bandit import Arm, BetaTS, EpsilonGreedy, HybridLinUCB, LinearTS, LinUCB, LogisticTS, UniformRandom, load
from bandit._validation import MAX_ABS_REWARD, check_scalar
from bandit.decision import BatchDecision, Decision
from bandit.policies._hybrid import HybridRidgePolicy

ids = [c.__name__ for c in POLICY_CLASSES]
all_policies = pytest.mark.parametrize("cls", POLICY_CLASSES, ids=ids)
contextual = pytest.mark.parametrize("cls", CONTEXTUAL, ids=[c.__name__ for c in CONTEXTUAL])
thompson = pytest.mark.parametrize("cls", THOMPSON, ids=[c.__name__ for c in THOMPSON])

CONTEXTS = np.array([[0.3, -1.2, 0.5], [2.0, 0.1, -0.7], [-1.5, 1.5, 0.0], [0.0, 0.0, 0.0]])
MASKS = [
    None,
    ["duo", "family"],
    np.array([True, False, False, True]),
    ["student"],
]


def test_introspection_finds_every_policy():
    assert {c.__name__ for c in POLICY_CLASSES} == {
        "BetaTS", "EpsilonGreedy", "HybridLinUCB", "HybridLinearTS", "LinUCB", "LinearTS", "LogisticTS",
        "UniformRandom", "VWPolicy",
    }


# ----------------------------------------------------------------------------------------------------------------
# the decision contract
# ----------------------------------------------------------------------------------------------------------------


def _mask(eligible) -> np.ndarray:
    if eligible is None:
        return np.ones(K, dtype=bool)
    if isinstance(eligible, np.ndarray):
        return eligible
    names = [a.name for a in ARMS]
    return np.isin(names, eligible)


@all_policies
@pytest.mark.parametrize("fresh", [True, False], ids=["fresh", "trained"])
def test_decisions_are_valid(cls, fresh):
    policy = make(cls) if fresh else trained(cls)
    for x in CONTEXTS:
        for eligible in MASKS:
            mask = _mask(eligible)
            for event_id in (None, "evt-7"):
                d = policy.choose(x, eligible=eligible, event_id=event_id)
                assert isinstance(d, Decision)
                p = d.probabilities
                assert p.shape == (K,) and p.dtype == np.float64
                assert abs(p.sum() - 1.0) < 1e-12
                assert (p >= 0).all()
                assert (p[~mask] == 0).all()
                assert mask[d.index] and d.arm == ARMS[d.index].name
                assert d.propensity == p[d.index] > 0
                assert d.event_id == event_id
                assert d.scores.shape == (K,)
                assert np.isneginf(d.scores[~mask]).all() and np.isfinite(d.scores[mask]).all()
                assert not p.flags.writeable and not d.scores.flags.writeable
                assert d.policy_version == policy.policy_version


@all_policies
def test_decisions_do_not_alias_reused_buffers(cls):
    policy = trained(cls)
    d1 = policy.choose(CONTEXTS[0])
    p1, s1 = d1.probabilities.copy(), d1.scores.copy()
    policy.choose(CONTEXTS[1], eligible=["student"])
    policy.choose_batch(CONTEXTS)
    policy.update(CONTEXTS[2], 1, 1.0)
    np.testing.assert_array_equal(d1.probabilities, p1)
    np.testing.assert_array_equal(d1.scores, s1)


@all_policies
def test_batch_equals_single_and_action_probabilities(cls):
    policy = trained(cls)
    X = np.repeat(CONTEXTS, 3, axis=0)
    masks = np.array([_mask(MASKS[i % len(MASKS)]) for i in range(len(X))])
    event_ids = [f"e{i}" for i in range(len(X))]
    batch = policy.choose_batch(X, eligible=masks, event_ids=event_ids)
    assert isinstance(batch, BatchDecision) and len(batch) == len(X)
    ap = policy.action_probabilities(X, eligible=masks)
    np.testing.assert_array_equal(ap, batch.probabilities)
    for i in range(len(X)):
        d = policy.choose(X[i], eligible=masks[i], event_id=event_ids[i])
        assert d.index == batch.indices[i] and d.arm == batch.arms[i] == batch[i].arm
        np.testing.assert_array_equal(d.probabilities, batch.probabilities[i])
        np.testing.assert_array_equal(d.scores, batch.scores[i])
        assert d.propensity == batch.propensities[i]
    assert (batch.probabilities[~masks] == 0).all()
    np.testing.assert_allclose(batch.probabilities.sum(axis=1), 1.0, atol=1e-12)
    assert batch.event_ids == event_ids
    # one (K,) mask applies to all rows
    one = policy.action_probabilities(X, eligible=["duo", "family"])
    np.testing.assert_array_equal(one, policy.action_probabilities(X, eligible=np.tile(_mask(["duo", "family"]), (len(X), 1))))


@all_policies
def test_action_probabilities_do_not_advance_the_generator(cls):
    a, b = trained(cls), trained(cls)
    a.action_probabilities(CONTEXTS)
    assert [a.choose(x).index for x in CONTEXTS] == [b.choose(x).index for x in CONTEXTS]


def test_action_probabilities_thread_safe_is_false_exactly_where_scoring_has_state():
    # BetaTS caches its distributions in a dict, VW scores through its one workspace; every other policy scores
    # from its state into fresh arrays
    assert {c.__name__ for c in POLICY_CLASSES if not c.action_probabilities_thread_safe} == {"BetaTS", "VWPolicy"}


@pytest.mark.parametrize("cls", [c for c in POLICY_CLASSES if c.action_probabilities_thread_safe],
                         ids=lambda c: c.__name__)
def test_thread_safe_scoring_gives_the_sequential_results_from_many_threads_and_changes_nothing(cls):
    import threading

    live = trained(cls)
    snap = live.snapshot()
    gen = np.random.default_rng(5)
    X = gen.normal(size=(400, D))
    masks = gen.random((400, K)) < 0.7
    masks[:, 0] = True
    chunks = [slice(i, i + 50) for i in range(0, 400, 50)]
    before = state_of(live)
    want = [live.action_probabilities(X[c], eligible=masks[c]) for c in chunks]
    got: dict[tuple[int, int], np.ndarray] = {}

    def score(t: int, policy) -> None:
        for _ in range(5):
            for j, c in enumerate(chunks):
                got[(t, j)] = policy.action_probabilities(X[c], eligible=masks[c])

    with snap._lock:  # a snapshot whose scoring is thread-safe does not take its lock to score
        threads = [threading.Thread(target=score, args=(t, live if t % 2 else snap)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert len(got) == 4 * len(chunks)
    for (_, j), probs in got.items():
        np.testing.assert_array_equal(probs, want[j])
    assert_same_state(before, state_of(live))


def test_the_batch_scoring_kernels_release_the_gil():
    # the threads of an offline evaluation score batches at once only if the kernels let go of the GIL
    from bandit.kernels import decide, hybrid, scoring
    from bandit.policies import epsilon_greedy, linear_ts, linucb, logistic_ts, uniform

    kernels = [decide.rows_mean_var, decide.argmax_probs_rows, scoring.linear_mean_var_batch,
               hybrid.hybrid_mean_var_batch, linucb.linucb_decide_rows, linucb.linucb_probabilities,
               linear_ts.linear_ts_decide_rows,
               logistic_ts.logistic_ts_decide_rows, epsilon_greedy.epsilon_greedy_decide_rows,
               epsilon_greedy.prior_variance_rows, uniform.uniform_decide_rows]
    assert [k.__name__ for k in kernels if not k.targetoptions.get("nogil")] == []


@all_policies
def test_empirical_frequencies_follow_reported_probabilities(cls):
    policy = trained(cls, seed=3)
    x = CONTEXTS[1]
    eligible = ["individual", "duo", "family"]
    p = policy.action_probabilities(x[None, :], eligible=eligible)[0]
    n = 20_000
    batch = policy.choose_batch(np.tile(x, (n // 2, 1)), eligible=eligible)
    singles = [policy.choose(x, eligible=eligible).index for _ in range(n // 2)]
    np.testing.assert_array_equal(batch.probabilities, np.tile(p, (n // 2, 1)))
    counts = np.bincount(np.concatenate([batch.indices, singles]), minlength=K)
    assert counts[3] == 0  # ineligible never drawn
    nz = p > 0
    expected = n * p[nz]
    chi2 = ((counts[nz] - expected) ** 2 / expected).sum()
    dof = max(int(nz.sum()) - 1, 1)
    assert stats.chi2.sf(chi2, dof) > 1e-4, (counts, expected)


@all_policies
def test_event_id_determinism(cls):
    a, b = trained(cls, seed=11), trained(cls, seed=11)
    for i, x in enumerate(CONTEXTS):
        da = a.choose(x, event_id=f"req-{i}")
        db = b.choose(x, event_id=f"req-{i}")
        assert da.index == db.index and da.event_id == db.event_id
        np.testing.assert_array_equal(da.probabilities, db.probabilities)
        np.testing.assert_array_equal(da.scores, db.scores)
        # repeated: same state + same id -> same decision, and the own generator was not advanced
        assert a.choose(x, event_id=f"req-{i}").index == da.index
    assert [a.choose(x).index for x in CONTEXTS] == [b.choose(x).index for x in CONTEXTS]
    # integers are ids too (their decimal string)
    assert a.choose(CONTEXTS[0], event_id=42).index == a.choose(CONTEXTS[0], event_id="42").index


@pytest.mark.parametrize(  # the UCB policies are deterministic (no exact ties among these arms' values)
    "cls", [c for c in POLICY_CLASSES if c not in (LinUCB, HybridLinUCB)], ids=lambda c: c.__name__
)
def test_event_ids_give_varied_draws(cls):
    policy = make(cls, seed=5)
    seq = [policy.choose(CONTEXTS[3], event_id=f"u{i}").index for i in range(1000)]
    assert set(seq) == set(range(K))  # a fresh policy explores every arm across events
    other_seed = make(cls, seed=6)
    assert seq != [other_seed.choose(CONTEXTS[3], event_id=f"u{i}").index for i in range(1000)]  # the seed matters


@all_policies
def test_generator_sequence_reproducible_from_seed(cls):
    a, b = make(cls, seed=21), make(cls, seed=21)
    X, arms, rewards = training_data(50)
    seq_a, seq_b = [], []
    for pol, seq in ((a, seq_a), (b, seq_b)):
        for i in range(50):
            d = pol.choose(X[i])
            seq.append(d.index)
            pol.update(X[i], d.index, rewards[i])
    assert seq_a == seq_b
    assert_same_state(state_of(a), state_of(b), same_instance=False)


# ----------------------------------------------------------------------------------------------------------------
# learning, batches
# ----------------------------------------------------------------------------------------------------------------


@all_policies
def test_update_batch_equals_sequential(cls):
    X, arms, rewards = training_data(300, seed=4)
    seq, bat = make(cls), make(cls)
    names = [a.name for a in ARMS]
    for i in range(len(X)):
        seq.update(X[i], names[arms[i]] if i % 2 else int(arms[i]), rewards[i])
    bat.update_batch(X[:100], arms[:100], rewards[:100])
    bat.update_batch(X[100:], [names[a] for a in arms[100:]], rewards[100:])
    s, b = state_of(seq), state_of(bat)
    assert s["meta"]["counters"]["n_updates"] == b["meta"]["counters"]["n_updates"] == 300
    if cls is LogisticTS:  # batch Laplace refit: close to, not equal to, sequential online steps
        np.testing.assert_allclose(b["arrays"]["m"], s["arrays"]["m"], atol=0.25)
        return
    for key in s["arrays"]:
        if key == "n_since_refactor":
            continue
        np.testing.assert_allclose(b["arrays"][key], s["arrays"][key], rtol=1e-9, atol=1e-9, err_msg=key)


@pytest.mark.parametrize("cls", RIDGE, ids=lambda c: c.__name__)
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("discount", [1.0, 0.98])
def test_ridge_state_matches_numpy_closed_form(cls, fit_intercept, discount):
    X, arms, rewards = training_data(150, seed=8)
    policy = make(cls, fit_intercept=fit_intercept, discount=discount, l2=2.0)
    for i in range(len(X)):
        policy.update(X[i], int(arms[i]), rewards[i])
    Dd = D + 1 if fit_intercept else D
    Z = np.hstack([X, np.ones((len(X), 1))]) if fit_intercept else X
    for k in range(K):
        A, b = 2.0 * np.eye(Dd), np.zeros(Dd)
        for z, r in zip(Z[arms == k], rewards[arms == k], strict=False):
            A = discount * A + (1 - discount) * 2.0 * np.eye(Dd) + np.outer(z, z)
            b = discount * b + r * z
        np.testing.assert_allclose(policy._A[k], A, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(policy._A_inv[k], np.linalg.inv(A), rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(policy.coef_[k], np.linalg.solve(A, b), rtol=1e-8, atol=1e-10)


def test_linucb_scores_and_tie_split_closed_form():
    policy = trained(LinUCB, alpha=0.7, exploration_floor=0.0)
    x = CONTEXTS[0]
    z = np.append(x, 1.0)
    values = np.array([a.value for a in ARMS])
    ucb = values * (policy._theta @ z + 0.7 * np.sqrt(np.einsum("d,kde,e->k", z, policy._A_inv, z)))
    d = policy.choose(x)
    np.testing.assert_allclose(d.scores, ucb, rtol=1e-12)
    assert d.index == int(np.argmax(ucb)) and d.propensity == 1.0
    fresh = LinUCB(["a", "b", "c"], n_features=2, exploration_floor=0.3, seed=0)
    np.testing.assert_allclose(fresh.choose([1.0, 2.0]).probabilities, [1 / 3] * 3)
    d = fresh.choose([1.0, 2.0], eligible=["a", "b"])
    np.testing.assert_allclose(d.probabilities, [0.5, 0.5, 0.0])


@pytest.mark.parametrize("schedule", ["per_arm", "constant"])
def test_epsilon_greedy_probabilities_closed_form(schedule):
    # p = (1 - sum e) greedy + e, then the floor; per arm e_k = epsilon w_k / K with w_k = x^T A_k^-1 x / (x^T x / l2)
    policy = trained(EpsilonGreedy, epsilon=0.2, schedule=schedule, l2=2.0, exploration_floor=0.1)
    x = CONTEXTS[1]
    xd = np.append(x, 1.0)
    values = np.array([a.value for a in ARMS])
    greedy = int(np.argmax(values * (policy._theta @ xd)))
    if schedule == "per_arm":
        w = np.array([xd @ np.linalg.solve(A, xd) for A in policy._A]) / (xd @ xd / 2.0)
        assert (w > 0).all() and (w < 0.5).all()  # 200 rows learned: well below the full rate
    else:
        w = np.ones(K)
    e = 0.2 * w / K
    expected = e.copy()
    expected[greedy] += 1.0 - e.sum()
    expected = 0.9 * expected + 0.1 / K
    np.testing.assert_allclose(policy.choose(x).probabilities, expected, rtol=1e-9)
    np.testing.assert_allclose(policy.action_probabilities(x[None]), expected[None], rtol=1e-9)


def test_epsilon_greedy_explores_a_new_arm_at_the_full_rate_and_a_learned_one_as_l2_over_l2_plus_n():
    # w_k = 1 for an arm without data; after n isotropic contexts A ~ (l2 + n) I, so w ~ l2 / (l2 + n)
    gen = np.random.default_rng(4)
    d, n, l2 = 4, 3000, 1.0

    def learned(discount: float) -> EpsilonGreedy:
        policy = EpsilonGreedy(["old", "best"], n_features=d, epsilon=0.3, l2=l2, discount=discount, seed=0)
        X = gen.normal(size=(2 * n, d))
        policy.update_batch(X, ["old"] * n + ["best"] * n, np.repeat([-1.0, 1.0], n) + gen.normal(size=2 * n))
        return policy

    policy = learned(1.0)
    policy.add_arm("new")  # predicted 0: neither greedy nor learned
    x = gen.normal(size=d)
    p = policy.choose(x).probabilities
    np.testing.assert_allclose(p[2], 0.3 / 3, rtol=1e-12)  # the new arm: epsilon / |E|
    assert 0.3 / 3 * 0.7 * l2 / (l2 + n) < p[0] < 0.3 / 3 * 1.3 * l2 / (l2 + n)
    # forgetting (discount < 1) lets A drift back to the prior: exploration of the old arm stays far higher
    assert learned(0.99).choose(x).probabilities[0] > 10 * p[0]


def test_epsilon_greedy_state_files_without_a_schedule_load_with_the_constant_one(tmp_path):
    from state_files import read_state, write_state

    import bandit

    policy = trained(EpsilonGreedy, epsilon=0.2)
    assert policy.schedule == "per_arm"
    meta, arrays = read_state(policy.save(tmp_path / "new.policy"))
    del meta["config"]["schedule"]  # what files written before the per-arm schedule hold
    old = bandit.load(write_state(tmp_path / "old.policy", meta, arrays))
    assert old.schedule == "constant" and old.get_params()["schedule"] == "constant"
    constant = trained(EpsilonGreedy, epsilon=0.2, schedule="constant")
    np.testing.assert_array_equal(old.action_probabilities(CONTEXTS), constant.action_probabilities(CONTEXTS))
    again = bandit.load(old.save(tmp_path / "again.policy"))  # saved with the schedule made explicit
    assert read_state(tmp_path / "again.policy")[0]["config"]["schedule"] == "constant" and again.schedule == "constant"
    with pytest.raises(ValueError, match="schedule must be one of"):
        EpsilonGreedy(ARMS, n_features=D, schedule="linear")


def test_uniform_probabilities():
    policy = UniformRandom(ARMS, seed=0)
    np.testing.assert_array_equal(policy.choose(None).probabilities, [0.25] * 4)
    np.testing.assert_array_equal(policy.action_probabilities([None] * 2, eligible=["duo"]), [[0, 1, 0, 0]] * 2)
    policy.update(None, "duo", 3.0)
    assert policy.pulls.tolist() == [0, 1, 0, 0] and policy.mean_rewards[1] == 3.0


@pytest.mark.parametrize("floor", [0.0, 0.3])
def test_exploration_floor_mixture(floor):
    base = trained(LinUCB, exploration_floor=0.0)
    mixed = trained(LinUCB, exploration_floor=floor)
    for eligible in MASKS:
        mask = _mask(eligible)
        p0 = base.choose(CONTEXTS[2], eligible=eligible).probabilities
        p1 = mixed.choose(CONTEXTS[2], eligible=eligible).probabilities
        np.testing.assert_allclose(p1, (1 - floor) * p0 + floor * mask / mask.sum(), rtol=1e-12, atol=1e-15)


# ----------------------------------------------------------------------------------------------------------------
# Thompson propensities vs Monte Carlo
# ----------------------------------------------------------------------------------------------------------------


def _hybrid_precision(policy) -> np.ndarray:
    """The joint precision M of a hybrid policy, (P + K D) square, assembled from its raw statistics: shared block
    ``Z``, per-arm blocks ``A[a]``, cross blocks ``B[a]`` (bandit.kernels.hybrid)."""
    K_, D_ = policy._theta.shape
    P = policy._Z.shape[0]
    M = np.zeros((P + K_ * D_, P + K_ * D_))
    M[:P, :P] = policy._Z
    for a in range(K_):
        s = slice(P + a * D_, P + (a + 1) * D_)
        M[s, s] = policy._A[a]
        M[s, :P] = policy._B[a]
        M[:P, s] = policy._B[a].T
    return M


def _mc_probabilities(policy, x, mask, n=1_000_000, seed=0) -> np.ndarray:
    """Pure-numpy Monte Carlo of P(arm k has the largest sampled score), from the policy's posterior."""
    rng = np.random.default_rng(seed)
    values = np.array([a.value for a in ARMS])
    if isinstance(policy, BetaTS):
        draws = rng.beta(policy._alpha, policy._beta, size=(n, K)) * values
    elif isinstance(policy, HybridRidgePolicy):  # the joint ridge posterior's marginal per arm, in numpy
        z = np.append(x, 1.0)
        F = np.array([[*a.features, 1.0] for a in ARMS])
        M_inv = np.linalg.inv(_hybrid_precision(policy))
        P = F.shape[1] * z.size
        phis = np.zeros((K, P + K * z.size))
        for k in range(K):
            phis[k, :P] = np.outer(F[k], z).ravel()
            phis[k, P + k * z.size : P + (k + 1) * z.size] = z
        mu = phis @ np.concatenate([policy._beta, policy._theta.ravel()])
        sd = policy.v * np.sqrt(np.einsum("kp,pq,kq->k", phis, M_inv, phis))
        draws = values * (mu + sd * rng.standard_normal((n, K)))
    else:
        z = np.append(x, 1.0)
        cov, mean = policy._posterior()
        mu = mean @ z
        sd = policy.v * np.sqrt(np.einsum("d,kde,e->k", z, cov, z))
        s = mu + sd * rng.standard_normal((n, K))
        draws = values * (s if isinstance(policy, LinearTS) else 1.0 / (1.0 + np.exp(-s)))
    draws[:, ~mask] = -np.inf
    return np.bincount(draws.argmax(axis=1), minlength=K) / n


@thompson
@pytest.mark.parametrize("n_train", [0, 40, 400])
def test_thompson_propensities_match_monte_carlo(cls, n_train):
    policy = make(cls, exploration_floor=0.0)
    if n_train:
        X, arms, rewards = training_data(n_train, seed=2)
        policy.update_batch(X, arms, rewards)
    for x, eligible in [(CONTEXTS[0], None), (CONTEXTS[1], ["individual", "duo", "student"])]:
        mask = _mask(eligible)
        p = policy.choose(x, eligible=eligible).probabilities
        mc = _mc_probabilities(policy, x, mask)
        np.testing.assert_allclose(p, mc, atol=2e-3)


def test_beta_ts_extreme_posteriors_match_monte_carlo():
    policy = BetaTS(ARMS, prior_alpha=0.5, prior_beta=0.5, seed=0)
    # very different concentrations: a vague arm, a sharp arm, a heavily observed arm, a singular prior
    policy.update_batch(None, [1] * 3 + [2] * 4000 + [3] * 20, [1, 0, 0] + [1] * 400 + [0] * 3600 + [1] * 19 + [0])
    mask = np.ones(K, dtype=bool)
    p = policy.choose(None).probabilities
    np.testing.assert_allclose(p, _mc_probabilities(policy, None, mask), atol=2e-3)
    assert abs(p.sum() - 1) < 1e-12
    # the largest prior accepted: sharp, nearly equal posteriors still give the exact distribution (1e18 gave NaN)
    sharp = BetaTS(["a", "b", "c"], prior_alpha=3e11, prior_beta=1e12, seed=0)
    sharp.update_batch(None, ["a"] * 3 + ["b"] * 2, [1, 1, 0, 1, 0])
    p = sharp.choose(None).probabilities
    # the means differ by ~1e-12, ~3e-6 posterior standard deviations: each arm wins 1/3 to within 1e-5
    np.testing.assert_allclose(p, [1 / 3] * 3, atol=2e-3)
    assert abs(p.sum() - 1) < 1e-12


# ----------------------------------------------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------------------------------------------

BAD_CONTEXTS = [
    ([1.0, float("nan"), 0.0], ValueError, "context"),
    ([1.0, float("inf"), 0.0], ValueError, "context"),
    ([1.0, 2.0], ValueError, "context has 2 features"),
    ([[1.0, 2.0, 3.0]], ValueError, "context must be 1-D"),
    (["a", "b", "c"], TypeError, "context"),
    ({"a": 1.0}, TypeError, "context"),
    (np.array([1 + 1j, 0, 0]), TypeError, "context"),
    ([None, 1.0, 2.0], ValueError, "context contains NaN"),  # None is a missing value
    ([10**400, 1.0, 2.0], ValueError, "context holds an integer too large"),  # not an OverflowError
    (np.ma.masked_array([1.0, 2.0, 3.0], mask=[0, 1, 0]), ValueError, "context has masked"),  # not the hidden 2.0
]


@all_policies
@pytest.mark.parametrize("bad, exc, match", BAD_CONTEXTS, ids=[f"ctx{i}" for i in range(len(BAD_CONTEXTS))])
def test_bad_context_raises_and_leaves_state(cls, bad, exc, match):
    policy = trained(cls)
    before = state_of(policy)
    with pytest.raises(exc, match=match):
        policy.choose(bad)
    with pytest.raises(exc, match=match):
        policy.update(bad, 0, 1.0)
    assert_same_state(before, state_of(policy))


def _bad_calls(policy):
    x = CONTEXTS[0]
    X, arms, rewards = training_data(5)
    return [
        (lambda: policy.update(x, "platinum", 1.0), ValueError, "arm 'platinum' is unknown"),
        (lambda: policy.update(x, 7, 1.0), ValueError, "arm index 7"),
        (lambda: policy.update(x, 1.5, 1.0), TypeError, "arm must be"),
        (lambda: policy.update(x, 0, float("nan")), ValueError, "reward must be a finite"),
        (lambda: policy.update(x, 0, "1"), TypeError, "reward must be a real"),
        (lambda: policy.update(x, 0, None), TypeError, "reward"),
        (lambda: policy.update(x, 0, 10**400), ValueError, "reward must be a finite"),
        (lambda: policy.update(x, 0, 1e308), ValueError, r"reward must be in \["),
        (lambda: policy.update(x, 0, -1e101), ValueError, r"reward must be in \["),
        (lambda: policy.update_batch(X, arms, np.full(5, 1e308)), ValueError, r"rewards must be in \["),
        (lambda: policy.choose(x, eligible=["platinum"]), ValueError, "eligible names unknown arm"),
        (lambda: policy.choose(x, eligible=[False] * K), ValueError, "eligible leaves no arm"),
        (lambda: policy.choose(x, eligible=[True] * (K + 1)), ValueError, "eligible mask must have shape"),
        (lambda: policy.choose(x, eligible="duo"), TypeError, "eligible"),
        (lambda: policy.choose(x, eligible=[1, 0, 1, 1]), TypeError, "eligible"),
        (lambda: policy.choose(x, event_id=3.5), TypeError, "event_id"),
        (lambda: policy.choose(x, event_id=""), ValueError, "event_id"),
        (lambda: policy.update_batch(X, arms[:4], rewards), ValueError, "arms has 4 entries"),
        (lambda: policy.update_batch(X, arms, rewards[:3]), ValueError, "rewards has 3 entries"),
        (lambda: policy.update_batch(X, arms, np.where(np.arange(5) == 2, np.nan, rewards)), ValueError, r"rewards\[2\]"),
        (lambda: policy.update_batch(X, ["duo"] * 4 + ["gold"], rewards), ValueError, r"arms\[4\] = 'gold'"),
        (lambda: policy.update_batch(X, arms.astype(float), rewards), TypeError, "arms must hold"),
        (lambda: policy.update_batch(X, arms + K, rewards), ValueError, "out of range"),
        (lambda: policy.choose_batch(X, event_ids=["a"] * 4), ValueError, "event_ids has 4 entries"),
        (lambda: policy.choose_batch(X, eligible=np.ones((4, K), dtype=bool)), ValueError, "eligible mask must have shape"),
        (lambda: policy.choose_batch(X, eligible=np.zeros((5, K), dtype=bool)), ValueError, "no arm to choose from in row 0"),
        (lambda: policy.choose(x, eligible=[]), ValueError, "eligible is empty: it leaves no arm to choose from"),
        (lambda: policy.choose_batch(X, eligible=[]), ValueError, "eligible is empty: it leaves no arm to choose from"),
        (lambda: policy.choose_batch(X, eligible=np.ones((5, K))), TypeError, "eligible as a 2-D mask must have dtype bool"),
        # regression: numpy's "setting an array element with a sequence" named no argument
        (lambda: policy.update_batch([*X[:4].tolist(), [1.0]], arms, rewards), ValueError, "X must be .* it is ragged"),
        (lambda: policy.choose_batch(X, eligible=[[True] * K] * 4 + [[True]]), ValueError, "eligible as an .* ragged"),
        # regression: a set was accepted, its ids landing on rows in hash order
        (lambda: policy.choose_batch(X, event_ids={f"s{i}" for i in range(5)}), TypeError, "event_ids must be an ordered"),
    ]


@all_policies
def test_numpy_strings_are_event_ids_and_arm_names(cls):
    # regression: numpy.str_ ids and names (from arrays) were refused as "must be a string ..., got str_"
    policy = trained(cls)
    ids = np.array(["req-1", "req-2"])
    assert policy.choose(CONTEXTS[0], event_id=ids[0]) == policy.choose(CONTEXTS[0], event_id="req-1")
    batch = policy.choose_batch(CONTEXTS[:2], event_ids=ids)
    assert batch.event_ids == ["req-1", "req-2"] and all(type(e) is str for e in batch.event_ids)
    np.testing.assert_array_equal(batch.indices, policy.choose_batch(CONTEXTS[:2], event_ids=["req-1", "req-2"]).indices)
    names = np.array(policy.arm_names)  # likewise arm names (update, remove_arm)
    policy, twin = trained(cls), trained(cls)
    policy.update(CONTEXTS[1], names[2], 1.0)
    twin.update(CONTEXTS[1], "family", 1.0)
    policy.remove_arm(names[0])
    twin.remove_arm("individual")
    assert_same_state(state_of(policy), state_of(twin), same_instance=False)


@all_policies
def test_bad_arguments_raise_naming_them_and_leave_state(cls):
    policy = trained(cls)
    before = state_of(policy)
    for call, exc, match in _bad_calls(policy):
        with pytest.raises(exc, match=match):
            call()
        assert_same_state(before, state_of(policy))


@pytest.mark.parametrize("cls", [c for c in POLICY_CLASSES if c not in CONVERSION and c.__name__ != "VWPolicy"],
                         ids=lambda c: c.__name__)  # (VWPolicy bounds its costs tighter, see test_vw_policy)
def test_the_largest_accepted_rewards_leave_a_state_that_decides_and_loads_back(cls, tmp_path):
    # regression: two finite rewards of 1e308 were learned and overflowed the reward sums (and the ridge statistics)
    # to inf; the policy then saved a file that bandit.load refused, e.g. the service's checkpoint after two
    # /reward calls, so it could not restart
    policy = make(cls)
    X, arms, _ = training_data(40)
    for i in range(40):
        policy.update(X[i], int(arms[i]), MAX_ABS_REWARD if i % 3 else -MAX_ABS_REWARD)
    policy.update_batch(X, arms, np.full(40, MAX_ABS_REWARD))
    for arr in policy._get_state()[1].values():
        assert np.isfinite(arr).all()
    assert np.isclose(policy.choose(CONTEXTS[0], event_id="e").probabilities.sum(), 1.0)
    assert_same_state(state_of(policy), state_of(load(policy.save(tmp_path / "p.zip"))))


@contextual
def test_bad_batch_contexts(cls):
    policy = trained(cls)
    before = state_of(policy)
    X, arms, rewards = training_data(5)
    Xn = X.copy()
    Xn[3, 1] = np.inf
    for call, exc, match in [
        (lambda: policy.update_batch(Xn, arms, rewards), ValueError, "X contains NaN or inf in row 3"),
        (lambda: policy.choose_batch(Xn), ValueError, "X contains NaN or inf in row 3"),
        (lambda: policy.action_probabilities(Xn), ValueError, "X contains NaN or inf in row 3"),
        (lambda: policy.update_batch(X[:, :2], arms, rewards), ValueError, "X has 2 features"),
        (lambda: policy.choose_batch(X[0]), ValueError, "X must be 2-D"),
        (lambda: policy.choose_batch(X.astype(str)), TypeError, "X must be"),
    ]:
        with pytest.raises(exc, match=match):
            call()
        assert_same_state(before, state_of(policy))


@pytest.mark.parametrize("cls", CONVERSION, ids=lambda c: c.__name__)
def test_conversion_policies_reject_rewards_outside_unit_interval(cls):
    policy = trained(cls)
    before = state_of(policy)
    with pytest.raises(ValueError, match=r"reward must be in \[0, 1\]"):
        policy.update(CONTEXTS[0], 0, 2.0)
    X, arms, rewards = training_data(5)
    with pytest.raises(ValueError, match=r"rewards must be in \[0, 1\]"):
        policy.update_batch(X, arms, rewards - 1.0)
    assert_same_state(before, state_of(policy))


@pytest.mark.parametrize(
    "cls, kwargs, exc, match",
    [
        (LinUCB, {"alpha": -1.0}, ValueError, "alpha must be >= 0"),
        (LinUCB, {"l2": 0.0}, ValueError, "l2 must be > 0"),
        # an infinite prior variance: accepted, then every choose and update was refused as non-finite state
        (LinUCB, {"l2": 5e-309}, ValueError, r"l2 must be a precision whose inverse \(the prior variance\) is finite"),
        (LinearTS, {"l2": 1e-320}, ValueError, "prior variance"),
        (LogisticTS, {"l2": 1e-320}, ValueError, "prior variance"),
        (EpsilonGreedy, {"l2": 1e-320}, ValueError, "prior variance"),
        (LinUCB, {"exploration_floor": 1.5}, ValueError, "exploration_floor must be <= 1"),
        (LinUCB, {"discount": 0.0}, ValueError, "discount must be > 0"),
        (LinUCB, {"seed": -1}, ValueError, "seed"),
        (LinUCB, {"seed": 1.5}, TypeError, "seed"),
        (LinUCB, {"fit_intercept": "yes"}, TypeError, "fit_intercept"),
        (LinearTS, {"v": 0.0}, ValueError, "v must be > 0"),
        (LogisticTS, {"v": float("nan")}, ValueError, "v must be finite"),
        (EpsilonGreedy, {"epsilon": 2.0}, ValueError, "epsilon must be <= 1"),
        (BetaTS, {"prior_alpha": 0.0}, ValueError, "prior_alpha must be > 0"),
        (BetaTS, {"prior_alpha": 1e18}, ValueError, r"prior_alpha must be <= 1e\+12"),  # gave NaN probabilities
        (BetaTS, {"prior_beta": math.inf}, ValueError, "prior_beta must be finite"),
    ],
)
def test_bad_hyper_parameters(cls, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        cls(ARMS, n_features=D, **kwargs)


def test_bad_construction(monkeypatch):
    with pytest.raises(TypeError, match="needs n_features"):
        LinUCB(ARMS, None)
    with pytest.raises(ValueError, match="n_features must be >= 1"):
        LinUCB(ARMS, 0)
    with pytest.raises(ValueError, match="unique"):
        LinUCB(["a", "a"], 2)
    with pytest.raises(TypeError, match="arms must"):
        LinUCB("abc", 2)
    with pytest.raises(TypeError, match="positional"):
        LinUCB(ARMS, 2, 1.0)  # hyper-parameters are keyword-only
    # what bandit.load refuses cannot be built either (such a policy saved a file that could not be loaded back)
    with pytest.raises(ValueError, match="at most 1024 characters"):
        LinUCB(["a", "x" * 1025], 2)
    with pytest.raises(ValueError, match="valid UTF-8"):
        LinUCB(["a", "b\ud800"], 2)
    with pytest.raises(ValueError, match=r"n_features must be <= 100000"):
        UniformRandom(["a", "b"], n_features=100_001)
    with pytest.raises(ValueError, match="at most 100000 features"):
        UniformRandom([Arm(name="a", features=[0.0] * 100_001)])
    with pytest.raises(ValueError, match="at most 100000 arms"):
        UniformRandom([str(i) for i in range(100_001)])
    with pytest.raises(ValueError, match="n_features must be finite"):
        check_scalar(10**400, "n_features")
    policy = UniformRandom(["a", "x" * 1024], n_features=1)  # the limits themselves are fine
    monkeypatch.setattr(bandit.state, "MAX_ARMS", 2)
    with pytest.raises(ValueError, match="already has 2 arms"):
        policy.add_arm("c")
    assert policy.arm_names == ["a", "x" * 1024]


@all_policies
@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    x=st.lists(st.floats(-1e3, 1e3), min_size=D, max_size=D),
    pos=st.integers(0, D - 1),
    bad=st.sampled_from([math.nan, math.inf, -math.inf]),
    arm=st.integers(0, K - 1),
)
def test_hypothesis_non_finite_anywhere_is_rejected_without_side_effects(cls, x, pos, bad, arm):
    policy = trained(cls, n=30)
    before = state_of(policy)
    x[pos] = bad
    with pytest.raises(ValueError, match="context contains NaN or inf"):
        policy.update(np.array(x), arm, 1.0)
    with pytest.raises(ValueError, match="context contains NaN or inf"):
        policy.choose(x)
    assert_same_state(before, state_of(policy))


@contextual
@settings(max_examples=20, deadline=None, derandomize=True)
@given(
    X=st.lists(st.lists(st.floats(-50, 50), min_size=D, max_size=D), min_size=1, max_size=8),
    data=st.data(),
)
def test_hypothesis_valid_batches_give_valid_distributions(cls, X, data):
    policy = trained(cls, n=30)
    X = np.array(X)
    masks = np.array(data.draw(st.lists(st.lists(st.booleans(), min_size=K, max_size=K).filter(any),
                                        min_size=len(X), max_size=len(X))))
    p = policy.action_probabilities(X, eligible=masks)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)
    assert (p[~masks] == 0).all() and (p >= 0).all()
    batch = policy.choose_batch(X, eligible=masks)
    assert masks[np.arange(len(X)), batch.indices].all()


@all_policies
def test_inputs_are_not_mutated(cls):
    policy = make(cls)
    X, arms, rewards = training_data(20)
    masks = np.ones((20, K), dtype=bool)
    masks[::2, 1] = False
    copies = [a.copy() for a in (X, arms, rewards, masks)]
    x, mask = X[0].copy(), masks[0].copy()
    policy.update_batch(X, arms, rewards)
    policy.choose_batch(X, eligible=masks)
    policy.action_probabilities(X, eligible=masks)
    policy.choose(x, eligible=mask)
    policy.update(x, 1, 1.0)
    for a, c in zip((X, arms, rewards, masks), copies, strict=False):
        np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(x, X[0])
    np.testing.assert_array_equal(mask, masks[0])


@contextual
def test_context_types_accepted(cls):
    policy = trained(cls)
    ref = policy.choose(CONTEXTS[0], event_id="t").probabilities
    for x in ([0.3, -1.2, 0.5], (0.3, -1.2, 0.5), np.array([0.3, -1.2, 0.5], dtype=">f8"),
              np.array([[0.3, 0.0], [-1.2, 0.0], [0.5, 0.0]])[:, 0]):
        np.testing.assert_array_equal(policy.choose(x, event_id="t").probabilities, ref)
    ro = CONTEXTS[0].copy()
    ro.flags.writeable = False
    misaligned = np.frombuffer(b"\0" + CONTEXTS[0].tobytes(), dtype=np.float64, offset=1)
    misaligned = misaligned.copy() if misaligned.flags.aligned else misaligned  # (the platform may align it)
    writable = bytearray(b"\0" + CONTEXTS[0].tobytes())
    unaligned_rw = np.frombuffer(writable, dtype=np.float64, offset=1)
    layouts = (ro, misaligned, unaligned_rw, np.repeat(CONTEXTS[0], 2)[::2], memoryview(ro))
    # the policies' kernels are bound to one exact array type (Policy._bind): every other layout is normalised first
    seen = []

    def spy(hook):
        def call(x, *args):
            arrays = [x, *(a for a in args if isinstance(a, np.ndarray))]
            seen.append(all(a.flags.c_contiguous and a.flags.writeable and a.flags.aligned for a in arrays)
                        and x.dtype == np.float64 and x.shape == (D,))
            return hook(x, *args)
        return call

    policy._choose_one = spy(policy._choose_one)
    for x in layouts:
        np.testing.assert_array_equal(policy.choose(x, event_id="t").probabilities, ref)
        np.testing.assert_array_equal(policy.choose(x, eligible=["duo", "family"], event_id="t").probabilities,
                                      policy.choose(CONTEXTS[0], eligible=["duo", "family"], event_id="t").probabilities)
    learners = [trained(cls) for _ in range(len(layouts) + 1)]
    learners[0].update(CONTEXTS[0].copy(), 1, 1.0)
    for learner, x in zip(learners[1:], layouts, strict=True):
        learner._update_one = spy(learner._update_one)
        learner.update(x, 1, 1.0)
        assert_same_state(state_of(learner), state_of(learners[0]), same_instance=False)
    assert len(seen) == 4 * len(layouts) and all(seen)
    fresh = make(cls)
    d = fresh.choose([1, 0, 1], event_id="i")  # ints and bools are 0/1 numbers
    np.testing.assert_array_equal(fresh.choose(np.array([True, False, True]), event_id="i").probabilities,
                                  d.probabilities)
    fresh.update_batch(np.array([[True, False, True]]), [0], np.array([True]))
    assert fresh.n_updates == 1


# ----------------------------------------------------------------------------------------------------------------
# arms over time, versions, repr
# ----------------------------------------------------------------------------------------------------------------


@all_policies
def test_add_and_remove_arms(cls):
    policy = trained(cls)
    version = policy.policy_version
    k_new = policy.add_arm(ARMS[0].model_copy(update={"name": "bundle", "value": 3.0}))
    assert k_new == K and policy.n_arms == K + 1 and policy.arm_names[-1] == "bundle"
    assert policy.policy_version != version
    d = policy.choose(CONTEXTS[0], eligible=["bundle"])
    assert d.index == K and d.probabilities.shape == (K + 1,)
    policy.update(CONTEXTS[0], "bundle", 1.0)
    policy.remove_arm("duo")
    assert "duo" not in policy.active_arms and policy.arm_names[1] == "duo"
    p = policy.action_probabilities(CONTEXTS)
    assert (p[:, 1] == 0).all() and p.shape == (len(CONTEXTS), K + 1)
    assert policy.choose(CONTEXTS[0], eligible=np.ones(K + 1, dtype=bool)).index != 1  # never eligible again
    with pytest.raises(ValueError, match="no arm to choose from"):
        policy.choose(CONTEXTS[0], eligible=["duo"])
    policy.update(CONTEXTS[0], "duo", 1.0)  # late outcomes of earlier decisions still count
    assert policy.pulls[1] > 0
    with pytest.raises(ValueError, match="already exists"):
        policy.add_arm("family")
    with pytest.raises(ValueError, match="already retired"):
        policy.remove_arm("duo")
    for name in ("individual", "family", "student"):
        policy.remove_arm(name)
    with pytest.raises(ValueError, match="last active arm"):
        policy.remove_arm("bundle")


@all_policies
def test_policy_version_changes_with_learned_state_only(cls):
    policy = make(cls)
    v0 = policy.policy_version
    policy.choose(CONTEXTS[0])
    policy.choose_batch(CONTEXTS)
    assert policy.policy_version == v0
    policy.update(CONTEXTS[0], 0, 1.0)
    v1 = policy.policy_version
    assert v1 != v0
    policy.update_batch(CONTEXTS, [0, 1, 2, 3], [0, 1, 0, 1])
    assert policy.policy_version not in (v0, v1)
    assert make(cls).policy_version != v0  # distinct instances never share a version


@all_policies
def test_repr_shows_pulls_and_mean_reward(cls):
    policy = make(cls)
    policy.update_batch(CONTEXTS[:3], ["duo", "duo", "family"], [1.0, 0.0, 1.0])
    text = repr(policy)
    assert cls.__name__ in text
    duo_line = next(line for line in text.splitlines() if line.strip().startswith("duo"))
    assert duo_line.split()[2:4] == ["2", "0.5"]
    assert "-" in next(line for line in text.splitlines() if line.strip().startswith("student"))


@contextual
def test_overflowing_contexts_are_rejected_without_side_effects(cls):
    policy = trained(cls)
    before = state_of(policy)
    huge = np.array([1e200, 0.0, 0.0])
    for call in (
        lambda: policy.choose(huge),
        lambda: policy.update(huge, 0, 1.0),
        lambda: policy.update_batch(np.vstack([CONTEXTS[:3], huge]), [0, 1, 2, 0], [1.0, 0.0, 1.0, 1.0]),
        lambda: policy.action_probabilities(huge[None, :]),
    ):
        with pytest.raises(ValueError, match=r"(context|X) values are too large"):
            call()
    assert_same_state(before, state_of(policy))


@all_policies
def test_a_single_arm_policy_decides_and_learns(cls):
    """K = 1 is a real catalog (one plan on sale in a market): the state arrays must be writable."""
    policy = cls(ARMS[:1], n_features=D, seed=0, **cls._test_params())
    d = policy.choose(CONTEXTS[0])
    assert (d.index, d.propensity) == (0, 1.0) and d.probabilities.tolist() == [1.0]
    policy.update(CONTEXTS[0], 0, 1.0)
    policy.update_batch(CONTEXTS, [0] * len(CONTEXTS), [1.0, 0.0, 1.0, 0.0])
    assert policy.pulls[0] == 1 + len(CONTEXTS)
    np.testing.assert_array_equal(policy.action_probabilities(CONTEXTS), np.ones((len(CONTEXTS), 1)))


@all_policies
def test_decisions_record_the_eligibility_they_were_made_under(cls):
    """Decision.eligible / BatchDecision.eligible are the requested mask restricted to active arms, read-only."""
    policy = trained(cls)
    policy.remove_arm("student")
    x = np.array([0.3, -0.2, 0.5])
    full = policy.choose(x, event_id="e1")
    assert full.eligible.tolist() == [True, True, True, False]  # the retired arm is never eligible
    some = policy.choose(x, eligible=["duo", "student"], event_id="e2")
    assert some.eligible.tolist() == [False, True, False, False]
    for d in (full, some):
        assert not d.eligible.flags.writeable
        assert np.all(d.probabilities[~d.eligible] == 0.0)
    with pytest.raises(ValueError):
        full.eligible[0] = False
    masks = np.array([[True, True, False, False], [False, False, True, True]])
    batch = policy.choose_batch(np.tile(x, (2, 1)), eligible=masks, event_ids=["b1", "b2"])
    assert batch.eligible.tolist() == [[True, True, False, False], [False, False, True, False]]
    assert not batch.eligible.flags.writeable
    assert batch[1].eligible.tolist() == [False, False, True, False]
    one = policy.choose_batch(np.tile(x, (3, 1)), eligible=["individual"])
    assert one.eligible.shape == (3, 4) and one.eligible[:, 0].all() and not one.eligible[:, 1:].any()
    # the live policy's state cannot be changed through a decision's mask
    assert policy.choose(x, event_id="e3").eligible.tolist() == [True, True, True, False]


# ----------------------------------------------------------------------------------------------------------------
# numerics fail safe (tests/bandit/test_numerics.py has the per-kernel checks)
# ----------------------------------------------------------------------------------------------------------------


@all_policies
def test_an_outlier_update_is_learned_exactly_or_refused_without_side_effects(cls):
    # every policy either learns a wild context (the context-free ones ignore it, VW clips nothing below 1e38) or
    # refuses it with a ValueError naming the cause and the policy state untouched; normal updates go on working
    policy = trained(cls)
    X, arms, rewards = training_data(300, seed=5)
    before = state_of(policy)
    try:
        policy.update([1e9, -1e9, 1e9], arms[0], float(rewards[0]))
    except ValueError as exc:
        assert "condition number > 1e+12" in str(exc) and "standardise the features" in str(exc)
        assert_same_state(before, state_of(policy))
    for i in range(len(X)):
        policy.update(X[i], arms[i], float(rewards[i]))
    probs = policy.action_probabilities(CONTEXTS)
    assert np.isfinite(probs).all() and np.allclose(probs.sum(axis=1), 1.0)


#: Constructor arguments that did not exist when recorded_decisions.npz was written, with their old behaviour.
ARGUMENTS_SINCE_RECORDING = {"EpsilonGreedy": {"schedule": "constant"}}


@all_policies
def test_decisions_reproduce_the_recorded_ones_bit_for_bit(cls):
    # tests/bandit/data/recorded_decisions.npz holds what the code before the per-policy kernels decided on the
    # script of decision_record.py; same state, same seeds and event ids -> the same arms and the same floats
    import json
    import pathlib

    from decision_record import run_script

    recorded = np.load(pathlib.Path(__file__).parent / "data" / "recorded_decisions.npz", allow_pickle=False)
    name = cls.__name__
    if f"{name}/params" not in recorded.files:
        pytest.skip(f"{name} is newer than the recording")
    # arguments added after the recording, at the values that reproduce the recorded behaviour
    params = {**ARGUMENTS_SINCE_RECORDING.get(name, {}), **json.loads(str(recorded[f"{name}/params"]))}
    got = run_script(cls(ARMS, **params))
    for key, arr in got.items():
        np.testing.assert_array_equal(arr, recorded[f"{name}/{key}"], err_msg=f"{name} {key}")


@all_policies
def test_decisions_are_immutable_and_equal_to_hand_built_ones(cls):
    # a policy's decision materialises its views, propensity and version when read: they must be the read-only,
    # consistent values a hand-built Decision holds, and no field can be reassigned
    policy = trained(cls)
    d = policy.choose(CONTEXTS[0], eligible=["duo", "family"], event_id="imm-1")
    version = policy.policy_version
    policy.update(CONTEXTS[0], d.index, 1.0)  # later changes of the policy do not reach the decision
    assert d.policy_version == version != policy.policy_version
    assert d.propensity == d.probabilities[d.index] and type(d.propensity) is float
    for field in Decision.FIELDS:
        with pytest.raises(AttributeError):
            setattr(d, field, None)
    for arr in (d.probabilities, d.scores, d.eligible):
        assert not arr.flags.writeable
        with pytest.raises(ValueError):
            arr[0] = 0.5
    twin = Decision(arm=d.arm, index=d.index, propensity=d.propensity, probabilities=d.probabilities.copy(),
                    scores=d.scores.copy(), event_id="imm-1", policy_version=version, eligible=d.eligible.copy())
    assert twin == d and repr(twin) == repr(d)
    assert d.probabilities is d.probabilities  # materialised once
    batch = policy.choose_batch(CONTEXTS, event_ids=["b0", "b1", "b2", "b3"])
    for arr in (batch.indices, batch.propensities, batch.probabilities, batch.scores, batch.eligible):
        assert not arr.flags.writeable  # (regression: propensities, a fresh array, was writeable)
