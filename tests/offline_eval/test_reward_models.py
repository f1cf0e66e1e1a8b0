"""Tests of the cross-fitted reward models against pure-numpy / scipy references and simulated upsell logs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import expit

from offline_eval.reward_models import (
    LogisticRewardModel,
    RidgeRewardModel,
    SklearnRewardModel,
    ValueAwareRewardModel,
    _group_moments,
    _predict_linear,
    default_reward_model,
)


@dataclass
class Logs:
    """Stand-in with the attributes of offline_eval.LoggedData that reward models read."""

    context: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    n_actions: int
    action_names: list[str] | None = None

    def __post_init__(self) -> None:
        if self.action_names is None:
            self.action_names = [f"plan{k}" for k in range(self.n_actions)]

    @property
    def n(self) -> int:
        return len(self.action)

    @property
    def n_features(self) -> int:
        return self.context.shape[1]


def linear_logs(n: int = 600, d: int = 3, K: int = 3, seed: int = 0) -> Logs:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) + 0.5
    a = rng.integers(0, K, n)
    w = rng.normal(size=(d, K))
    r = 1.0 + (X @ w)[np.arange(n), a] + rng.normal(size=n)
    return Logs(X, a, r, K)


def binary_logs(n: int = 800, d: int = 2, K: int = 3, seed: int = 0) -> Logs:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    a = rng.integers(0, K, n)
    w = rng.normal(size=(d, K))
    p = expit(-1.0 + (X @ w)[np.arange(n), a])
    return Logs(X, a, (rng.random(n) < p).astype(float), K)


PRICES = np.array([5.99, 7.99, 9.99, 12.99, 14.99, 19.99])


def upsell_logs(n: int, seed: int) -> tuple[Logs, Logs, np.ndarray, np.ndarray]:
    """Simulated upsell logs: (revenue logs, 0/1 conversion logs, true P(convert) (n, K), true revenue (n, K)).

    Six plans priced 5.99..19.99; conversion follows a logistic link of the context (4 Gaussian + 2 binary
    features) plus a mild x0*x1 interaction the models do not include; mean conversion about 1 % (dearest
    plan) to about 10 % (cheapest); a softmax logging policy over the plans.
    """
    rng = np.random.default_rng(seed)
    K, d = len(PRICES), 6
    X = np.column_stack([rng.normal(size=(n, 4)), rng.random((n, 2)) < 0.3]).astype(float)
    base_rate = np.linspace(0.08, 0.01, K)
    beta = rng.normal(scale=0.35, size=(d, K))
    p = expit(np.log(base_rate / (1 - base_rate)) + X @ beta + 0.2 * X[:, [0]] * X[:, [1]])
    scores = X @ rng.normal(scale=0.3, size=(d, K))
    pi = np.exp(scores - scores.max(axis=1, keepdims=True))
    pi /= pi.sum(axis=1, keepdims=True)
    a = (pi.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    conv = (rng.random(n) < p[np.arange(n), a]).astype(float)
    names = ["basic", "standard", "plus", "duo", "family", "premium"]
    revenue = Logs(X, a, PRICES[a] * conv, K, names)
    return revenue, Logs(X, a, conv, K, names), p, p * PRICES


def rmse(q: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(np.mean((q - truth) ** 2)))


# ------------------------------------------------------------------------------------------------ kernels


def test_group_moments_kernel_matches_numpy():
    rng = np.random.default_rng(1)
    n, d, F, K = 500, 4, 3, 2
    X = rng.normal(size=(n, d))
    y = rng.normal(size=n)
    fold = rng.integers(0, F, n)
    action = rng.integers(0, K, n)
    gram, xsum, xy = np.zeros((F * K, d, d)), np.zeros((F * K, d)), np.zeros((F * K, d))
    count, ysum = np.zeros(F * K), np.zeros(F * K)
    _group_moments(X, y, fold, action, K, gram, xsum, count, xy, ysum)
    for g in range(F * K):
        m = fold * K + action == g
        np.testing.assert_allclose(gram[g], X[m].T @ X[m], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(xsum[g], X[m].sum(axis=0), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(xy[g], X[m].T @ y[m], rtol=1e-12, atol=1e-12)
        assert count[g] == m.sum()
        assert ysum[g] == pytest.approx(y[m].sum(), rel=1e-12)


def test_predict_linear_kernel_matches_numpy():
    rng = np.random.default_rng(2)
    n, d, F, K = 300, 5, 4, 3
    X = rng.normal(size=(n, d))
    fold = rng.integers(0, F, n)
    coef = rng.normal(size=(F, d, K))
    intercept = rng.normal(size=(F, K))
    out = np.full((n, K), np.nan)
    _predict_linear(X, fold, coef, intercept, out)
    expected = np.einsum("nd,ndk->nk", X, coef[fold]) + intercept[fold]
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------------------------ folds


def _reference_fold(key: bytes, n_folds: int, seed: int) -> int:
    """Pure-Python FNV-1a 64 of ``key``, xor the splitmix64 of the seed, splitmix64 finaliser, modulo n_folds."""
    mask = 2**64 - 1

    def mix(x: int) -> int:
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & mask
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & mask
        return x ^ (x >> 31)

    h = 0xCBF29CE484222325
    for byte in key:
        h = ((h ^ byte) * 0x100000001B3) & mask
    return mix(h ^ mix(seed)) % n_folds


def test_folds_hash_event_ids_seeded_and_stored():
    model = RidgeRewardModel(n_folds=4, seed=3)
    ids = np.array([f"evt-{i}-é" for i in range(1003)], dtype=object)
    folds = model.folds(1003, ids)
    assert folds.dtype == np.int64
    assert folds.tolist() == [_reference_fold(i.encode(), 4, 3) for i in ids]
    counts = np.bincount(folds, minlength=4)
    assert np.all(np.abs(counts - 1003 / 4) < 4 * np.sqrt(1003 * 0.25 * 0.75))  # multinomial, balanced on average
    assert not np.array_equal(folds, RidgeRewardModel(n_folds=4, seed=4).folds(1003, ids))
    order = np.random.default_rng(0).permutation(1003)  # a row keeps its fold wherever it is read
    np.testing.assert_array_equal(model.folds(1003, ids[order]), folds[order])
    # without ids: the row position is hashed; a batch starting at row 600 gets the same folds
    by_position = model.folds(1003)
    assert by_position.tolist() == [_reference_position(i, 4, 3) for i in range(1003)]
    np.testing.assert_array_equal(model.folds(403, start=600), by_position[600:])
    data = linear_logs(n=1003)
    q = model.fit_predict(data)
    np.testing.assert_array_equal(model.folds_, by_position)  # these logs carry no event ids
    assert model.q_ is q


def _reference_position(i: int, n_folds: int, seed: int) -> int:
    mask = 2**64 - 1

    def mix(x: int) -> int:
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & mask
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & mask
        return x ^ (x >> 31)

    return mix(i ^ mix(seed)) % n_folds


# ------------------------------------------------------------------------------------------------ ridge


def naive_ridge(data: Logs, folds: np.ndarray, n_folds: int, l2: float, fit_intercept: bool) -> np.ndarray:
    X, a, r, K = data.context, data.action, data.reward, data.n_actions
    D = np.column_stack([np.ones(len(X)), X]) if fit_intercept else X
    penalty = l2 * np.eye(D.shape[1])
    if fit_intercept:
        penalty[0, 0] = 0.0
    q = np.empty((len(X), K))
    for f in range(n_folds):
        test = folds == f
        for k in range(K):
            rows = (folds != f) & (a == k)
            if not rows.any():
                q[test, k] = r[folds != f].mean() if fit_intercept else 0.0
                continue
            beta = np.linalg.solve(D[rows].T @ D[rows] + penalty, D[rows].T @ r[rows])
            q[test, k] = D[test] @ beta
    return q


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("l2", [0.3, 10.0])
def test_ridge_matches_naive_per_fold_solve(l2, fit_intercept):
    data = linear_logs(n=700, d=4, K=3, seed=5)
    model = RidgeRewardModel(l2=l2, n_folds=5, seed=1, fit_intercept=fit_intercept)
    q = model.fit_predict(data)
    np.testing.assert_allclose(q, naive_ridge(data, model.folds_, 5, l2, fit_intercept), rtol=1e-8, atol=1e-8)


def test_ridge_l2_zero_is_least_squares():
    data = linear_logs(n=400, d=3, K=2, seed=6)
    model = RidgeRewardModel(l2=0.0, n_folds=3)
    q = model.fit_predict(data)
    D = np.column_stack([np.ones(data.n), data.context])
    for f in range(3):
        for k in range(2):
            rows = (model.folds_ != f) & (data.action == k)
            beta = np.linalg.lstsq(D[rows], data.reward[rows], rcond=None)[0]
            np.testing.assert_allclose(q[model.folds_ == f, k], D[model.folds_ == f] @ beta, rtol=1e-8, atol=1e-8)


def test_ridge_recovers_noiseless_linear_rewards():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(400, 3))
    a = rng.integers(0, 2, 400)
    truth = np.column_stack([2.0 + X @ [1.0, -1.0, 0.5], -1.0 + X @ [0.0, 3.0, 0.0]])
    q = RidgeRewardModel(l2=1e-10).fit_predict(Logs(X, a, truth[np.arange(400), a], 2))
    np.testing.assert_allclose(q, truth, atol=1e-6)


def test_ridge_action_never_logged_predicts_pooled_training_mean():
    data = linear_logs(n=300, K=3, seed=8)
    data.action = data.action % 2  # action 2 never logged
    model = RidgeRewardModel()
    q = model.fit_predict(data)
    for f in range(5):
        test = model.folds_ == f
        np.testing.assert_allclose(q[test, 2], data.reward[~test].mean(), rtol=1e-12)


def test_models_accept_logged_data_and_match_the_stand_in():
    from offline_eval import LoggedData

    logs = binary_logs(n=500, seed=21)
    data = LoggedData(logs.context, logs.action, logs.reward, np.full(500, 1 / 3), action_names=logs.action_names)
    for make in (RidgeRewardModel, LogisticRewardModel, ValueAwareRewardModel):
        np.testing.assert_array_equal(make().fit_predict(data), make().fit_predict(logs))


def test_ridge_without_context_predicts_per_fold_action_means():
    from offline_eval import LoggedData

    logs = linear_logs(n=400, K=3, seed=22)
    data = LoggedData(None, logs.action, logs.reward, np.full(400, 1 / 3))
    model = RidgeRewardModel()
    q = model.fit_predict(data)
    for f in range(5):
        for k in range(3):
            train = (model.folds_ != f) & (logs.action == k)
            np.testing.assert_allclose(q[model.folds_ == f, k], logs.reward[train].mean(), rtol=1e-12)


# ------------------------------------------------------------------------------------------------ cross-fitting


def _changed_rewards(data: Logs, rows: np.ndarray, kind: str, seed: int) -> Logs:
    rng = np.random.default_rng(seed)
    r = data.reward.copy()
    if kind == "binary":
        r[rows] = 1.0 - r[rows]
    elif kind == "revenue":
        r[rows] = np.where(rng.random(rows.sum()) < 0.5, PRICES[data.action[rows]], 0.0)
    else:
        r[rows] = rng.normal(loc=5.0, size=rows.sum())
    return Logs(data.context, data.action, r, data.n_actions, data.action_names)


def _sklearn_linear():
    from sklearn.linear_model import LinearRegression

    return SklearnRewardModel(LinearRegression(), n_folds=4, seed=2)


@pytest.mark.parametrize(
    ("make_model", "kind"),
    [
        (lambda: RidgeRewardModel(n_folds=4, seed=2), "real"),
        (lambda: LogisticRewardModel(n_folds=4, seed=2), "binary"),
        (lambda: ValueAwareRewardModel(n_folds=4, seed=2), "revenue"),
        (_sklearn_linear, "real"),
    ],
    ids=["ridge", "logistic", "value_aware", "sklearn"],
)
def test_changing_a_folds_rewards_leaves_its_predictions_unchanged(make_model, kind):
    if kind == "revenue":
        data = upsell_logs(n=3000, seed=4)[0]
    elif kind == "binary":
        data = binary_logs(seed=4)
    else:
        data = linear_logs(seed=4)
    model = make_model()
    q = model.fit_predict(data)
    f = 1
    own = model.folds_ == f
    q2 = make_model().fit_predict(_changed_rewards(data, own, kind, seed=9))
    np.testing.assert_allclose(q2[own], q[own], rtol=1e-10, atol=1e-12)
    assert np.abs(q2[~own] - q[~own]).max() > 1e-3  # the other folds' models did see the change


# ------------------------------------------------------------------------------------------------ logistic


def logistic_reference(data: Logs, folds: np.ndarray, f: int, k: int, l2: float) -> np.ndarray:
    """Minimise the documented penalised objective with scipy for model (fold f, action k)."""
    X, y = data.context, data.reward
    train = folds != f
    pos, m = y[train].sum(), train.sum()
    b0 = np.log((pos + 0.5) / (m - pos + 0.5))
    rows = train & (data.action == k)
    D = np.column_stack([np.ones(rows.sum()), X[rows]])
    prior = np.zeros(D.shape[1])
    prior[0] = b0

    def objective(beta):
        z = D @ beta
        value = np.sum(np.logaddexp(0.0, z) - y[rows] * z) + 0.5 * l2 * np.sum((beta - prior) ** 2)
        grad = D.T @ (expit(z) - y[rows]) + l2 * (beta - prior)
        return value, grad

    res = minimize(objective, prior, jac=True, method="BFGS", options={"gtol": 1e-10, "maxiter": 1000})
    return res.x


@pytest.mark.parametrize("l2", [0.1, 5.0])
def test_logistic_matches_scipy_minimiser_of_same_objective(l2):
    data = binary_logs(n=900, d=3, K=3, seed=10)
    model = LogisticRewardModel(l2=l2, n_folds=3, seed=0)
    q = model.fit_predict(data)
    assert model.n_iter_ < 25
    for f in range(3):
        test = model.folds_ == f
        for k in range(3):
            beta = logistic_reference(data, model.folds_, f, k, l2)
            expected = expit(beta[0] + data.context[test] @ beta[1:])
            np.testing.assert_allclose(q[test, k], expected, rtol=1e-6, atol=1e-8)


def test_logistic_handles_actions_without_conversions_or_rows():
    data = binary_logs(n=600, K=4, seed=11)
    data.action = data.action % 3  # action 3 never logged
    data.reward[data.action == 2] = 0.0  # action 2 never converts
    model = LogisticRewardModel()
    q = model.fit_predict(data)
    assert np.all((q > 0) & (q < 1))
    for f in range(5):
        train = model.folds_ != f
        pos, m = data.reward[train].sum(), train.sum()
        np.testing.assert_allclose(q[~train, 3], (pos + 0.5) / (m + 1), rtol=1e-10)  # the pooled prior
    assert q[:, 2].max() < data.reward.mean()  # shrunk below the pooled rate, not to exactly 0


def test_logistic_warns_when_newton_does_not_converge():
    with pytest.warns(RuntimeWarning, match="did not converge"):
        LogisticRewardModel(max_iter=1).fit_predict(binary_logs(seed=12))


def test_logistic_rejects_rewards_outside_unit_interval():
    data = linear_logs()
    with pytest.raises(ValueError, match=r"rewards in \[0, 1\].*RidgeRewardModel"):
        LogisticRewardModel().fit_predict(data)


# ------------------------------------------------------------------------------------------------ value-aware


def test_value_aware_infers_prices_and_equals_logistic_times_value():
    revenue, conversion, _, _ = upsell_logs(n=4000, seed=13)
    model = ValueAwareRewardModel(n_folds=3, seed=5)
    q = model.fit_predict(revenue)
    np.testing.assert_allclose(model.values_, PRICES, rtol=1e-12)
    p = LogisticRewardModel(n_folds=3, seed=5).fit_predict(conversion)
    np.testing.assert_allclose(q, p * PRICES, rtol=1e-12)
    q_dict = ValueAwareRewardModel(values=dict(zip(revenue.action_names, PRICES, strict=False)), n_folds=3, seed=5)
    np.testing.assert_allclose(q_dict.fit_predict(revenue), q, rtol=1e-12)
    np.testing.assert_allclose(ValueAwareRewardModel(values=PRICES, n_folds=3, seed=5).fit_predict(revenue), q)


def test_value_aware_action_without_conversions_is_predicted_zero():
    revenue = upsell_logs(n=3000, seed=14)[0]
    revenue.reward[revenue.action == 5] = 0.0
    model = ValueAwareRewardModel()
    q = model.fit_predict(revenue)
    assert model.values_[5] == 0.0
    assert np.all(q[:, 5] == 0.0)
    assert np.all(q[:, :5] > 0.0)


def test_value_inference_names_the_action_with_non_constant_values():
    revenue = upsell_logs(n=3000, seed=15)[0]
    rows = np.flatnonzero((revenue.action == 3) & (revenue.reward > 0))
    revenue.reward[rows[0]] = 11.0
    with pytest.raises(ValueError, match=r"action 'duo' \(index 3\) has positive rewards from 11 to 12.99"):
        ValueAwareRewardModel().fit_predict(revenue)


def test_value_aware_rejects_values_inconsistent_with_log_and_bad_values():
    revenue = upsell_logs(n=3000, seed=16)[0]
    wrong = PRICES.copy()
    wrong[2] = 10.99
    with pytest.raises(ValueError, match=r"action 'plus' \(index 2\) has \d+ positive rewards different"):
        ValueAwareRewardModel(values=wrong).fit_predict(revenue)
    with pytest.raises(ValueError, match=r"missing \['premium'\], unknown \['gold'\]"):
        names = revenue.action_names[:5] + ["gold"]
        ValueAwareRewardModel(values=dict(zip(names, PRICES, strict=False))).fit_predict(revenue)
    with pytest.raises(ValueError, match="values has 5 entries but the data has K=6"):
        ValueAwareRewardModel(values=PRICES[:5]).fit_predict(revenue)
    with pytest.raises(ValueError, match="values must be finite numbers > 0"):
        ValueAwareRewardModel(values=[1.0, -2.0])
    with pytest.raises(TypeError, match="values must be None, a dict"):
        ValueAwareRewardModel(values="5.99")
    negative = Logs(revenue.context, revenue.action, revenue.reward - 1.0, 6)
    with pytest.raises(ValueError, match="needs rewards >= 0"):
        ValueAwareRewardModel().fit_predict(negative)


# ------------------------------------------------------------------------------------------------ sklearn


@pytest.mark.parametrize("features", ["interactions", "onehot"])
def test_sklearn_linear_regression(features):
    from sklearn.linear_model import LinearRegression

    data = linear_logs(n=500, d=3, K=3, seed=17)
    q = SklearnRewardModel(LinearRegression(), features=features).fit_predict(data)
    if features == "interactions":  # one linear model per action: ridge with l2 -> 0
        np.testing.assert_allclose(q, RidgeRewardModel(l2=1e-10).fit_predict(data), rtol=1e-6, atol=1e-6)
    else:  # shared slopes, per-action intercepts: the difference between two actions is a constant per fold
        model = RidgeRewardModel()
        folds = model.folds(data.n)
        for f in range(5):
            diff = q[folds == f, 1] - q[folds == f, 0]
            np.testing.assert_allclose(diff, diff[0], atol=1e-9)


def test_sklearn_classifier_uses_probability_of_class_one():
    from sklearn.linear_model import LogisticRegression

    data = binary_logs(n=600, seed=18)
    model = SklearnRewardModel(LogisticRegression(C=0.5), n_folds=3, features="onehot")
    q = model.fit_predict(data)
    for f in range(3):
        ref = LogisticRegression(C=0.5)
        train = model.folds_ != f
        Z = np.column_stack([data.context, np.eye(3)[data.action]])
        ref.fit(Z[train], data.reward[train])
        for k in range(3):
            Zk = np.column_stack([data.context[~train], np.tile(np.eye(3)[k], ((~train).sum(), 1))])
            np.testing.assert_allclose(q[~train, k], ref.predict_proba(Zk)[:, 1], rtol=1e-10)
    assert len(model.estimators_) == 3


def test_sklearn_classifier_with_single_class_fold_predicts_that_class():
    from sklearn.linear_model import LogisticRegression

    data = binary_logs(n=50, seed=19)
    data.reward[:] = 0.0
    q = SklearnRewardModel(LogisticRegression()).fit_predict(data)
    assert np.all(q == 0.0)
    data.reward[:3] = 1.0
    with pytest.raises(ValueError, match="is a classifier .* not 0 or 1"):
        data.reward[0] = 0.5
        SklearnRewardModel(LogisticRegression()).fit_predict(data)


# ------------------------------------------------------------------------------------------------ default


def test_default_reward_model_choice():
    revenue, conversion, _, _ = upsell_logs(n=2000, seed=20)
    assert isinstance(default_reward_model(conversion), LogisticRewardModel)
    assert isinstance(default_reward_model(revenue), ValueAwareRewardModel)
    revenue.reward[np.flatnonzero(revenue.reward > 0)[0]] *= 1.5  # one price differs: not value x conversion
    assert isinstance(default_reward_model(revenue), RidgeRewardModel)
    assert isinstance(default_reward_model(linear_logs()), RidgeRewardModel)


def test_value_aware_beats_ridge_on_upsell_logs():
    """The measurement behind default_reward_model (run with -s to print the table)."""
    rows = []
    for seed in range(5):
        revenue, conversion, p, truth = upsell_logs(n=50_000, seed=seed)
        rows.append(
            (
                rmse(RidgeRewardModel().fit_predict(revenue), truth),
                rmse(ValueAwareRewardModel().fit_predict(revenue), truth),
                rmse(RidgeRewardModel().fit_predict(conversion), p),
                rmse(LogisticRewardModel().fit_predict(conversion), p),
                float(truth.mean()),
            )
        )
    res = np.array(rows)
    print("\nseed  ridge(revenue)  value-aware  ridge(0/1)  logistic(0/1)  mean true revenue")
    for seed, r in enumerate(res):
        print(f"{seed:4d}  {r[0]:14.4f}  {r[1]:11.4f}  {r[2]:10.4f}  {r[3]:13.4f}  {r[4]:.3f}")
    m = res.mean(axis=0)
    print(f"mean  {m[0]:14.4f}  {m[1]:11.4f}  {m[2]:10.4f}  {m[3]:13.4f}  {m[4]:.3f}")
    assert np.all(res[:, 1] < res[:, 0])  # value-aware more accurate than ridge on revenue, every seed
    assert np.all(res[:, 3] < res[:, 2])  # logistic more accurate than ridge on conversions, every seed
    assert res[:, 1].mean() < 0.8 * res[:, 0].mean()


# ------------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: RidgeRewardModel(n_folds=1), ValueError, "n_folds must be >= 2"),
        (lambda: RidgeRewardModel(n_folds=2.5), TypeError, "n_folds must be an int"),
        (lambda: RidgeRewardModel(n_folds=True), TypeError, "n_folds must be an int"),
        (lambda: RidgeRewardModel(l2=-1.0), ValueError, "l2 must be finite and >= 0"),
        (lambda: RidgeRewardModel(l2=float("nan")), ValueError, "l2 must be finite"),
        (lambda: RidgeRewardModel(l2="1"), TypeError, "l2 must be a number"),
        (lambda: RidgeRewardModel(seed="0"), TypeError, "seed must be an int"),
        (lambda: RidgeRewardModel(seed=-1), ValueError, "seed must be >= 0"),
        (lambda: RidgeRewardModel(fit_intercept="yes"), TypeError, "fit_intercept must be a bool"),
        (lambda: LogisticRewardModel(l2=0.0), ValueError, "l2 must be finite and > 0"),
        (lambda: LogisticRewardModel(max_iter=0), ValueError, "max_iter must be >= 1"),
        (lambda: LogisticRewardModel(tol=0), ValueError, "tol must be finite and > 0"),
        (lambda: ValueAwareRewardModel(l2=-1), ValueError, "l2 must be finite"),
        (lambda: ValueAwareRewardModel(rtol=-1), ValueError, "rtol must be finite and >= 0"),
        (lambda: SklearnRewardModel(object()), TypeError, "estimator must be a scikit-learn-style"),
        (lambda: SklearnRewardModel(_sklearn_linear().estimator, features="poly"), ValueError, "features must be"),
    ],
)
def test_bad_hyperparameters_raise_clear_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_bad_data_raises_and_leaves_fitted_state_unchanged():
    model = RidgeRewardModel()
    data = linear_logs()
    q = model.fit_predict(data)
    folds = model.folds_
    with pytest.raises(TypeError, match="data must be an offline_eval.LoggedData .* without context"):
        model.fit_predict(np.zeros((10, 3)))
    with pytest.raises(ValueError, match=r"only 3 logged rows for a reward model cross-fitted in n_folds=5 folds.*IPS, SNIPS"):
        model.fit_predict(Logs(data.context[:3], data.action[:3], data.reward[:3], 3))
    with pytest.raises(ValueError, match=r"data.action must lie in \[0, 2\)"):
        model.fit_predict(Logs(data.context, data.action, data.reward, 2))
    with pytest.raises(ValueError, match="data.context must be"):
        model.fit_predict(Logs(data.context[:-1], data.action, data.reward, 3))
    assert model.q_ is q
    assert model.folds_ is folds
