"""VWPolicy: Vowpal Wabbit's --cb_explore_adf behind the decision contract.

The generic suites (test_policies.py, test_state.py) also run on VWPolicy with its default SquareCB explorer; this
file checks every exploration algorithm, the mapping of VW's distribution onto the arms against VW queried
directly, the cost and probability fed to VW, and the state handling of the model bytes.
"""

from __future__ import annotations

import gc

import numpy as np
import pytest
import vowpalwabbit
from policy_helpers import assert_same_state, state_of
from scipy import stats
from state_files import forge_vw_model, read_state, vw_options, write_state

from bandit import Arm, UniformRandom, VWPolicy, load

EXPLORATIONS = ["squarecb", "epsilon", "cover", "bag", "synthcover", "regcb"]
explorations = pytest.mark.parametrize("exploration", EXPLORATIONS)
#: Explorers whose state after load keeps learning exactly like the original (VW does not save bag's bootstrap
#: generator nor cover's doubly-robust bookkeeping).
RESUMABLE = ["squarecb", "epsilon", "synthcover", "regcb"]

ARMS = [
    Arm(name="individual", value=1.0, features=[1.2, 0.0]),
    Arm(name="duo", value=1.5, features=[1.7, 1.0]),
    Arm(name="family", value=2.0),
    Arm(name="student", value=0.5, features=[0.6, 0.0]),
]
K = len(ARMS)
D = 3
CONTEXTS = np.array([[0.3, -1.2, 0.5], [2.0, 0.1, -0.7], [-1.5, 1.5, 0.0], [0.0, 0.0, 0.0]])


def make(exploration: str = "squarecb", seed: int = 0, **kwargs) -> VWPolicy:
    return VWPolicy(ARMS, n_features=D, exploration=exploration, seed=seed, **kwargs)


def data(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Contexts, uniformly random arms and 0/1 rewards whose rate depends on the context and the arm."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, D))
    arms = rng.integers(0, K, size=n)
    w = np.array([[1.0, -0.5, 0.0], [-0.8, 1.0, 0.2], [0.1, 0.1, 1.0], [0.0, -1.0, -0.5]])
    p = 1.0 / (1.0 + np.exp(-(np.einsum("nd,nd->n", X, w[arms]) - 0.5)))
    return X, arms, (rng.random(n) < p).astype(float)


def trained(exploration: str = "squarecb", seed: int = 0, n: int = 300, **kwargs) -> VWPolicy:
    policy = make(exploration, seed=seed, **kwargs)
    policy.update_batch(*data(n))
    return policy


def model_bytes(policy: VWPolicy) -> bytes:
    return policy._get_state()[1]["model"].tobytes()


# ----------------------------------------------------------------------------------------------------------------
# a pure reference: VW queried directly, without the policy
# ----------------------------------------------------------------------------------------------------------------


def reference_workspace(policy: VWPolicy, tmp_path) -> vowpalwabbit.Workspace:
    path = tmp_path / "reference.vw"
    path.write_bytes(model_bytes(policy))
    return vowpalwabbit.Workspace(arg_list=["--quiet", "-i", str(path)])


def reference_lines(x, arm_indices, label=None) -> list[str]:
    """The multi-line example of the policy's documented layout (namespace U: context, A: id and arm features)."""
    lines = ["shared |U " + " ".join(f"{j}:{v:.8e}" for j, v in enumerate(x) if v != 0.0)]
    for k in arm_indices:
        feats = "".join(f" f{i}:{v:.8e}" for i, v in enumerate(ARMS[k].features or ()) if v != 0.0)
        prefix = f"0:{label[1]:.8e}:{label[2]:.8e} " if label is not None and label[0] == k else ""
        lines.append(f"{prefix}|A id{k}{feats}")
    return lines


def reference_pmf(workspace, x, arm_indices) -> tuple[np.ndarray, np.ndarray]:
    """VW's distribution over ``arm_indices`` (in that order) and its cost predictions."""
    examples = workspace.parse(reference_lines(x, arm_indices), vowpalwabbit.LabelType.CONTEXTUAL_BANDIT)
    pmf = np.array(workspace.predict(examples))
    costs = np.array([e.get_partial_prediction() for e in examples[1:]])
    workspace.finish_example(examples)
    return pmf, costs


@explorations
@pytest.mark.parametrize("floor", [0.0, 0.2])
def test_probabilities_are_vw_pmf_over_eligible_arms_with_floor(exploration, floor, tmp_path):
    policy = trained(exploration, exploration_floor=floor)
    ref = reference_workspace(policy, tmp_path)
    for x in CONTEXTS:
        for eligible in ([0, 1, 2, 3], [1, 3], [2]):
            mask = np.isin(np.arange(K), eligible)
            d = policy.choose(x, eligible=mask)
            pmf, costs = reference_pmf(ref, x, eligible)
            pmf = pmf / pmf.sum()
            expected = np.zeros(K)
            expected[eligible] = (1 - floor) * pmf + floor / len(eligible)
            np.testing.assert_allclose(d.probabilities, expected, rtol=1e-12, atol=1e-15)
            assert (d.probabilities[~mask] == 0).all() and np.isneginf(d.scores[~mask]).all()
            if exploration in ("cover", "bag"):  # ensembles: the scores are VW's distribution
                np.testing.assert_allclose(d.scores[eligible], pmf, rtol=1e-12)
            else:  # predicted value * reward = -cost / cost_scale
                np.testing.assert_allclose(d.scores[eligible], -costs / policy.cost_scale, rtol=1e-12)


# ----------------------------------------------------------------------------------------------------------------
# the decision contract
# ----------------------------------------------------------------------------------------------------------------


@explorations
def test_drawn_arms_follow_reported_probabilities(exploration):
    policy = trained(exploration, seed=3, exploration_floor=0.1)
    x = CONTEXTS[1]
    eligible = ["individual", "duo", "family"]
    p = policy.action_probabilities(x[None, :], eligible=eligible)[0]
    n = 6000
    singles = [policy.choose(x, eligible=eligible).index for _ in range(n // 2)]
    seeded = [policy.choose(x, eligible=eligible, event_id=f"e{i}").index for i in range(n // 2)]
    counts = np.bincount(singles + seeded, minlength=K)
    assert counts[3] == 0
    nz = p > 0
    expected = n * p[nz]
    chi2 = ((counts[nz] - expected) ** 2 / expected).sum()
    assert stats.chi2.sf(chi2, max(int(nz.sum()) - 1, 1)) > 1e-4, (counts, expected)


@explorations
def test_eligibility_and_retired_arms_are_never_violated(exploration):
    policy = trained(exploration, n=100, exploration_floor=0.05)
    policy.remove_arm("family")
    rng = np.random.default_rng(4)
    masks = rng.random((200, K)) < 0.5
    masks[np.arange(200), rng.integers(0, K, 200)] = True
    masks[:, 2] |= rng.random(200) < 0.5  # retired: never eligible, whatever the mask says
    masks[~masks[:, [0, 1, 3]].any(axis=1), 0] = True
    X = rng.normal(size=(200, D))
    batch = policy.choose_batch(X, eligible=masks)
    allowed = masks & policy._active
    assert allowed[np.arange(200), batch.indices].all()
    assert (batch.probabilities[~allowed] == 0).all()
    np.testing.assert_allclose(batch.probabilities.sum(axis=1), 1.0, atol=1e-12)
    for i in range(0, 200, 10):
        d = policy.choose(X[i], eligible=masks[i], event_id=f"r{i}")
        assert allowed[i, d.index] and d.propensity == d.probabilities[d.index] > 0


@explorations
def test_event_id_determinism(exploration):
    a, b = trained(exploration, seed=11), trained(exploration, seed=11)
    batch = a.choose_batch(CONTEXTS, event_ids=[f"q{i}" for i in range(len(CONTEXTS))])
    for i, x in enumerate(CONTEXTS):
        da, db = a.choose(x, event_id=f"q{i}"), b.choose(x, event_id=f"q{i}")
        assert da.index == db.index == batch.indices[i]
        np.testing.assert_array_equal(da.probabilities, db.probabilities)
        np.testing.assert_array_equal(da.probabilities, batch.probabilities[i])
        assert a.choose(x, event_id=f"q{i}").index == da.index  # same state + same id: same decision
    # the seed decides the draws: another seed draws differently across many events
    c = trained(exploration, seed=12, exploration_floor=0.5)
    d = trained(exploration, seed=11, exploration_floor=0.5)
    ids = [f"u{i}" for i in range(300)]
    draws_c = [c.choose(CONTEXTS[0], event_id=e).index for e in ids]
    assert draws_c != [d.choose(CONTEXTS[0], event_id=e).index for e in ids]


# ----------------------------------------------------------------------------------------------------------------
# learning: costs and probabilities fed to VW
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cost_scale", [None, 0.1])
def test_scores_recover_value_times_reward(cost_scale):
    """cost = -cost_scale * value * reward, scores = -predicted cost / cost_scale: the scores estimate value * E[r].

    SquareCB regresses without importance weights, so its regressor converges to the costs' means.
    """
    rewards = np.array([0.5, 0.5, 0.1, 0.8])  # constant per arm
    policy = make("squarecb", seed=2, vw_args="--power_t 0 -l 0.1", cost_scale=cost_scale)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, D))
    arms = rng.integers(0, K, size=3000)
    policy.update_batch(X, arms, rewards[arms])
    values = np.array([a.value for a in ARMS])
    assert policy.cost_scale == (1 / values.max() if cost_scale is None else cost_scale)
    for x in CONTEXTS:
        np.testing.assert_allclose(policy.choose(x).scores, values * rewards, atol=0.02)


def test_importance_weighted_explorers_get_the_current_probability(tmp_path):
    """epsilon/cover/bag/synthcover learn with p = the policy's current probability of the arm (all active arms)."""
    policy = trained("epsilon", n=50, exploration_floor=0.1)
    policy.remove_arm("student")
    ref = reference_workspace(policy, tmp_path)
    X, arms, rewards = data(40, seed=7)
    arms[::5] = 3  # late outcomes of the retired arm: it joins the action set
    values = np.array([a.value for a in ARMS])
    for x, k, r in zip(X, arms, rewards, strict=False):
        shown = [j for j in range(K) if policy._active[j] or j == k]
        pmf, _ = reference_pmf(ref, x, shown)
        p = 0.9 * pmf / pmf.sum() + 0.1 / len(shown)
        if policy._active[k]:  # the probability the policy reports for this context, every active arm eligible
            np.testing.assert_allclose(policy.action_probabilities(x[None])[0][shown], p, rtol=1e-12)
        cost = -policy.cost_scale * values[k] * r
        ref.learn(reference_lines(x, shown, label=(k, cost, max(p[shown.index(k)], 0.01))))
        policy.update(x, int(k), float(r))
    for x in CONTEXTS:
        pmf, costs = reference_pmf(ref, x, [0, 1, 2])
        d = policy.choose(x)
        np.testing.assert_allclose(d.probabilities[:3], 0.9 * pmf / pmf.sum() + 0.1 / 3, rtol=1e-12)
        np.testing.assert_allclose(d.scores[:3], -costs / policy.cost_scale, rtol=1e-12)


@explorations
def test_update_batch_equals_sequential_updates(exploration):
    X, arms, rewards = data(120, seed=5)
    seq, bat = make(exploration), make(exploration)
    for x, k, r in zip(X, arms, rewards, strict=False):
        seq.update(x, int(k), float(r))
    bat.update_batch(X[:50], arms[:50], rewards[:50])
    bat.update_batch(X[50:], arms[50:], rewards[50:])
    assert model_bytes(seq) == model_bytes(bat)
    assert seq.n_updates == bat.n_updates == 120 and (seq.pulls == bat.pulls).all()


# ----------------------------------------------------------------------------------------------------------------
# a synthetic world
# ----------------------------------------------------------------------------------------------------------------

WORLD_ARMS = [Arm(name="individual", value=1.0), Arm(name="duo", value=1.5), Arm(name="family", value=2.0)]
W_TRUE = np.array([[1.5, -1.0, 0.0], [-1.5, 1.0, 0.0], [0.0, -1.0, 1.5]])
B_TRUE = np.array([-0.5, -1.2, -2.0])


def run_world(policy, n: int, seed: int) -> tuple[float, float]:
    """Mean expected value of the offers made online, and the oracle's."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    P = 1.0 / (1.0 + np.exp(-(X @ W_TRUE.T + B_TRUE)))
    EV = P * np.array([a.value for a in WORLD_ARMS])
    U = rng.random(n)
    got = 0.0
    for i in range(n):
        d = policy.choose(X[i])
        got += EV[i, d.index]
        policy.update(X[i], d.index, float(U[i] < P[i, d.index]))
    return got / n, float(EV.max(axis=1).mean())


@pytest.mark.parametrize(
    "exploration, share", [("squarecb", 0.8), ("epsilon", 0.6), ("bag", 0.6), ("synthcover", 0.4), ("cover", 0.25),
                           ("regcb", 0.25)]
)
def test_learns_a_synthetic_world_far_better_than_uniform(exploration, share):
    vw_value, oracle = run_world(VWPolicy(WORLD_ARMS, n_features=3, exploration=exploration, seed=0), 3000, seed=0)
    uniform_value, _ = run_world(UniformRandom(WORLD_ARMS, n_features=3, seed=0), 3000, seed=0)
    assert vw_value >= uniform_value + share * (oracle - uniform_value), (vw_value, uniform_value, oracle)


# ----------------------------------------------------------------------------------------------------------------
# arms over time, state
# ----------------------------------------------------------------------------------------------------------------


def test_new_arm_learns_and_is_chosen():
    policy = VWPolicy(WORLD_ARMS[:2], n_features=3, seed=0)
    k = policy.add_arm(Arm(name="family", value=2.0, features=[1.0]))
    assert k == 2 and policy.choose(CONTEXTS[0]).probabilities.shape == (3,)
    rng = np.random.default_rng(0)
    for _ in range(400):
        x = rng.normal(size=3)
        arm = int(rng.integers(0, 3))
        policy.update(x, arm, float(arm == 2))
    assert policy.action_probabilities(CONTEXTS).argmax(axis=1).tolist() == [2] * len(CONTEXTS)


@explorations
def test_save_load_round_trip_gives_identical_decisions(exploration, tmp_path):
    policy = trained(exploration, seed=9, exploration_floor=0.05)
    policy.add_arm(Arm(name="bundle", value=3.0, features=[2.5, 2.0]))
    policy.remove_arm("student")
    policy.choose(CONTEXTS[0])  # advance the own generator
    restored = load(policy.save(tmp_path / "vw.zip"))
    assert type(restored) is VWPolicy and restored.get_params() == policy.get_params()
    assert model_bytes(restored) == model_bytes(policy)
    for i, x in enumerate(CONTEXTS):
        a, b = policy.choose(x, event_id=f"s{i}"), restored.choose(x, event_id=f"s{i}")
        assert a.index == b.index and a.policy_version == b.policy_version
        np.testing.assert_array_equal(a.probabilities, b.probabilities)
        np.testing.assert_array_equal(a.scores, b.scores)
    assert [policy.choose(x).index for x in CONTEXTS] == [restored.choose(x).index for x in CONTEXTS]
    if exploration in RESUMABLE:  # and they keep learning identically
        X, arms, rewards = data(60, seed=3)
        for p in (policy, restored):
            p.update_batch(X, arms, rewards)
        assert_same_state(state_of(policy), state_of(restored))


def _with_model(path, model: bytes, **config):
    """Rewrite the policy file at ``path`` with other model bytes (and config entries), checksum recomputed: a
    consistent file, as an attacker can write one."""
    meta, arrays = read_state(path)
    arrays["model"] = np.frombuffer(model, dtype=np.uint8)
    meta["config"].update(config)
    return write_state(path, meta, arrays)


def test_load_rejects_a_corrupt_model(tmp_path):
    path = trained().save(tmp_path / "vw.zip")
    _with_model(path, b"not a vw model")
    with pytest.raises(ValueError, match="cannot load policy .* not a VW model"):
        load(path)
    # a header VWPolicy accepts but whose VW checksum is wrong: VW itself refuses it
    path = trained().save(tmp_path / "vw.zip")
    model = bytearray(model_bytes(load(path)))
    end = 4 + model[0] + 30 + 4 + len(vw_options(bytes(model))) + 1 + 8  # just past the header checksum
    model[end - 1] ^= 0xFF
    _with_model(path, bytes(model))
    with pytest.raises(ValueError, match="cannot load policy .* model bytes could not be loaded"):
        load(path)


FILE_OPTIONS = [
    "--readable_model {out}",
    "--invert_hash {out}",
    "-f {out}",
    "--final_regressor {out}",
    "--cache_file {out}",
    "--predictions {out}",
    "--extra_metrics {out}",
    "--output_feature_regularizer_text {out}",
    "--audit_regressor {out}",
]


@pytest.mark.parametrize("option", FILE_OPTIONS, ids=lambda o: o.split()[0].lstrip("-"))
def test_load_refuses_a_model_whose_stored_options_touch_files(option, tmp_path):
    """Regression: VW rebuilds its learner from the options stored in the model and honoured --readable_model FILE
    & co., overwriting FILE when the workspace was collected. Such a model (a valid VW header, checksum forged) must
    be refused before VW sees it, and nothing may be written."""
    out = tmp_path / "written-by-vw.txt"
    path = trained().save(tmp_path / "vw.zip")
    model = model_bytes(load(path))
    forged = forge_vw_model(model, options=vw_options(model) + " " + option.format(out=out))
    # the forged model is one VW accepts: built directly, VW writes the file when the workspace finishes
    probe = tmp_path / "probe.vw"
    probe.write_bytes(forge_vw_model(model, options=vw_options(model) + " --readable_model " + str(out)))
    ws = vowpalwabbit.Workspace(arg_list=["--quiet", "-i", str(probe)])
    ws.finish()
    assert out.exists()
    out.unlink()

    _with_model(path, forged)
    with pytest.raises(ValueError, match="stores options that the policy's configuration does not produce .*refused"):
        load(path)
    gc.collect()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["probe.vw", "vw.zip"]


@pytest.mark.parametrize(
    "forge, match",
    [
        ({"options": " --cb_adf --cb_explore_adf --cb_type mtr --csoaa_ldf multiline --csoaa_rank --interactions UA "
                     "--squarecb --random_seed 1 --bag 4"}, "does not produce .*--bag"),  # not the saved explorer
        ({"bits": 30}, "--bit_precision 30; VWPolicy allows 1 to 24"),  # 2**30 weights: gigabytes
        ({"bits": 20}, "--bit_precision 20 but the policy's configuration gives 18"),
        ({"model_id": b"x --readable_model /tmp/pwn"}, "carries a model id"),  # VW appends '--id <id>' to options
        ({"options": " --cb_adf\x01"}, "not printable ASCII"),
    ],
    ids=["other-explorer", "huge-bits", "bits-mismatch", "model-id", "control-chars"],
)
def test_load_refuses_other_crafted_model_headers(forge, match, tmp_path):
    path = trained().save(tmp_path / "vw.zip")
    model = model_bytes(load(path))
    options = forge.pop("options", None)
    _with_model(path, forge_vw_model(model, options=options, **forge))
    with pytest.raises(ValueError, match=match):
        load(path)


def test_load_refuses_a_config_that_would_make_vw_allocate_or_touch_files(tmp_path):
    """The stored configuration goes through the same allow-list as the constructor's vw_args."""
    path = trained().save(tmp_path / "vw.zip")
    model = model_bytes(load(path))
    for vw_args, match in [
        ("-b 30", "--bit_precision must be an integer from 1 to 24"),
        ("--extra_metrics /tmp/x.json", "must not set --extra_metrics"),
        ("--readable_model /tmp/x.txt", "must not set --readable_model"),
    ]:
        _with_model(path, model, vw_args=vw_args)
        with pytest.raises(ValueError, match=match):
            load(path)


@pytest.mark.parametrize("exploration", ["squarecb", "bag"])
def test_snapshot_is_independent_and_read_only(exploration):
    policy = trained(exploration)
    snap = policy.snapshot()
    assert snap._vw is not policy._vw and snap.read_only
    ref = snap.action_probabilities(CONTEXTS)
    np.testing.assert_array_equal(ref, policy.action_probabilities(CONTEXTS))
    before_bytes = model_bytes(snap)  # (after the predictions: VW counts the examples it predicts on)
    policy.update_batch(*data(300, seed=8))
    assert model_bytes(snap) == before_bytes != model_bytes(policy)
    np.testing.assert_array_equal(snap.action_probabilities(CONTEXTS), ref)
    assert not np.array_equal(policy.action_probabilities(CONTEXTS), ref)
    with pytest.raises(RuntimeError, match="read-only snapshot"):
        snap.update(CONTEXTS[0], 0, 1.0)


# ----------------------------------------------------------------------------------------------------------------
# configuration and bad input
# ----------------------------------------------------------------------------------------------------------------


def test_vw_arguments_reach_vw():
    policy = make("epsilon", epsilon=0.2, vw_args="--l2 1e-6 -b 19", interactions=("UA", "UUA"))
    args = policy._vw.get_arguments()
    for expected in ("--epsilon 0.2", "--l2 9.99999997", "--bit_precision 19", "--interactions UA",
                     "--interactions UUA"):
        assert expected in args, (expected, args)
    assert "--cover 6" in make("cover", n_policies=6)._vw.get_arguments()
    regcb_args = make("regcb")._vw.get_arguments()
    assert "--cb_min_cost -1" in regcb_args and "--cb_max_cost 0" in regcb_args
    regcb = make("regcb", vw_args="--cb_min_cost -2 --cb_max_cost 0")  # a negative value is not an option
    assert "--cb_min_cost -2" in regcb._vw.get_arguments()
    assert make(cost_scale=0.25).cost_scale == 0.25


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"exploration": "ucb"}, ValueError, "exploration must be one of"),
        ({"exploration": None}, ValueError, "exploration must be one of"),
        ({"epsilon": 1.5}, ValueError, "epsilon must be <= 1"),
        ({"n_policies": 1}, ValueError, "n_policies must be >= 2"),
        ({"n_policies": 2.5}, TypeError, "n_policies must be an integer"),
        ({"interactions": "UA"}, TypeError, "interactions must be a sequence"),
        ({"interactions": ("UX",)}, ValueError, "interactions entries"),
        ({"interactions": ("U",)}, ValueError, "interactions entries"),
        ({"vw_args": 3}, TypeError, "vw_args must be a str"),
        ({"vw_args": "--cb_explore_adf"}, ValueError, "vw_args must not set --cb_explore_adf"),
        ({"vw_args": "--epsilon 0.3"}, ValueError, "vw_args must not set --epsilon: use exploration='epsilon'"),
        ({"vw_args": "--softmax"}, ValueError, "vw_args must not set --softmax: VWPolicy chooses the explorer"),
        ({"vw_args": "-q UU"}, ValueError, "vw_args must not set --quadratic"),
        ({"vw_args": "-qUU"}, ValueError, "vw_args must not set --quadratic"),
        ({"vw_args": "--random_seed=4"}, ValueError, "vw_args must not set --random_seed: VWPolicy seeds VW from seed"),
        ({"vw_args": "-i model.vw"}, ValueError, "vw_args must not set --initial_regressor"),
        ({"vw_args": "--oaa 3"}, ValueError, "vw_args must not set --oaa"),
        ({"vw_args": "--no_such_option 1"}, ValueError, "must not set --no_such_option: VWPolicy accepts only"),
        ({"vw_args": "--extra_metrics m.json"}, ValueError, "must not set --extra_metrics"),  # writes a file
        ({"vw_args": "--l2 /tmp/x"}, ValueError, "--l2 needs a number or a word"),
        ({"vw_args": "-b 25"}, ValueError, "--bit_precision must be an integer from 1 to 24"),
        ({"vw_args": "--elim=1"}, ValueError, "--elim takes no value"),
        ({"vw_args": "--power_t"}, ValueError, "--power_t needs a value"),
        ({"vw_args": "-Z"}, ValueError, "must not set -Z"),
        ({"vw_args": "0.5"}, ValueError, "'0.5' is not an option"),
        ({"vw_args": "--loss_function nonsense"}, ValueError, "Vowpal Wabbit rejected vw_args"),
        ({"vw_args": "--l2 '1"}, ValueError, "vw_args could not be split"),
        ({"cost_scale": 0.0}, ValueError, "cost_scale must be > 0"),
        ({"discount": 0.9}, ValueError, "discount must be 1.0 for VWPolicy"),
        ({"discount": "1"}, TypeError, "discount"),
        ({"exploration_floor": -0.1}, ValueError, "exploration_floor must be >= 0"),
    ],
)
def test_bad_construction_names_the_argument(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        make(**kwargs)


def test_rejected_calls_leave_the_vw_model_unchanged():
    policy = trained("epsilon")
    before, before_state = model_bytes(policy), state_of(policy)
    huge = np.array([1e39, 0.0, 0.0])
    X, arms, rewards = data(5)
    for call, exc, match in [
        (lambda: policy.update(huge, 0, 1.0), ValueError, "context values are too large"),
        (lambda: policy.choose(huge), ValueError, "context values are too large"),
        (lambda: policy.update_batch(np.vstack([X, huge]), [*arms, 0], [*rewards, 1.0]), ValueError,
         r"X values are too large \(row 5\)"),
        (lambda: policy.update(X[0], "platinum", 1.0), ValueError, "arm 'platinum' is unknown"),
        (lambda: policy.update(X[0], 0, float("inf")), ValueError, "reward must be a finite"),
        (lambda: policy.update_batch(X, arms, rewards[:4]), ValueError, "rewards has 4 entries"),
        (lambda: policy.update([1.0, np.nan, 0.0], 0, 1.0), ValueError, "context contains NaN"),
    ]:
        with pytest.raises(exc, match=match):
            call()
        assert model_bytes(policy) == before
    assert_same_state(before_state, state_of(policy))


def test_tiny_feature_values_are_passed_as_zero():
    """VW's text parser turns magnitudes below 1e-29 into 0 or inf; the policy passes them as 0."""
    policy = trained()
    x = CONTEXTS[0].copy()
    tiny = x.copy()
    tiny[2] = 5e-175
    zero = x.copy()
    zero[2] = 0.0
    np.testing.assert_array_equal(
        policy.choose(tiny, event_id="t").probabilities, policy.choose(zero, event_id="t").probabilities
    )
    policy.update(tiny, 1, 1.0)
    assert np.isfinite(policy.choose(x).scores).all()
