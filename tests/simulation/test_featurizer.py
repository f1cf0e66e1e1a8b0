"""Featurizer: documented constants, shapes, names, one-hot blocks and input errors."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bandit.simulation.featurizer import BOOLEAN, DEVICES, NUMERIC, Featurizer
from bandit.simulation.world import UpsellWorld


@pytest.fixture(scope="module")
def world_users():
    world = UpsellWorld(seed=5)
    return world, world.sample_users(20_000)


def test_shape_and_names(world_users):
    world, users = world_users
    f = world.featurizer
    X = f.transform(users)
    markets, plans = list(world.config.markets), ["free", "individual", "duo", "family", "student"]
    assert f.plans == tuple(plans)
    assert X.shape == (len(users), f.n_features) == (len(users), 4 + 3 + len(DEVICES) + len(markets) + len(plans))
    assert X.dtype == np.float64 and X.flags.c_contiguous
    assert len(set(f.feature_names)) == f.n_features
    assert f.feature_names[:7] == [c for c, *_ in NUMERIC] + list(BOOLEAN)
    assert f.feature_names[7:12] == [f"device={d}" for d in DEVICES]


def test_numeric_columns_follow_the_documented_formula(world_users):
    world, users = world_users
    X = world.featurizer.transform(users)
    for j, (col, how, mean, scale) in enumerate(NUMERIC):
        raw = users[col].to_numpy(dtype=float)
        expected = ((np.log1p(raw) if how == "log1p" else raw) - mean) / scale
        np.testing.assert_allclose(X[:, j], expected, rtol=0, atol=1e-12)
        # the fixed constants standardise the default population (documented claim)
        assert abs(X[:, j].mean()) < 0.1 and 0.85 < X[:, j].std() < 1.15


def test_one_hot_blocks(world_users):
    world, users = world_users
    f = world.featurizer
    X = f.transform(users)
    for col, levels in (("device", f.devices), ("market", f.markets), ("current_plan", f.plans)):
        idx = [f.feature_names.index(f"{col}={lvl}") for lvl in levels]
        block = X[:, idx]
        np.testing.assert_array_equal(block.sum(axis=1), 1.0)
        chosen = np.array(levels, dtype=object)[block.argmax(axis=1)]
        np.testing.assert_array_equal(chosen, users[col].to_numpy(dtype=object))
    for j, col in enumerate(BOOLEAN, start=len(NUMERIC)):
        np.testing.assert_array_equal(X[:, j], users[col].to_numpy().astype(float))


def test_input_errors(world_users):
    world, users = world_users
    f = world.featurizer
    with pytest.raises(TypeError, match="DataFrame"):
        f.transform(users.to_numpy())
    with pytest.raises(ValueError, match="missing columns.*weekly_hours"):
        f.transform(users.drop(columns=["weekly_hours"]))
    bad = users.head(3).copy()
    bad.loc[bad.index[0], "market"] = "fr"
    with pytest.raises(ValueError, match="market.*'fr'"):
        f.transform(bad)
    neg = users.head(3).copy()
    neg.loc[neg.index[1], "tenure_months"] = -1.0
    with pytest.raises(ValueError, match="tenure_months"):
        f.transform(neg)
    with pytest.raises(ValueError, match="repeat"):
        Featurizer(markets=["us", "us"], plans=["free"])


def test_extra_columns_are_ignored(world_users):
    world, users = world_users
    more = users.head(10).assign(something_else=1.0)
    np.testing.assert_array_equal(world.featurizer.transform(more), world.featurizer.transform(users.head(10)))
    assert isinstance(users, pd.DataFrame)


def test_transform_one_matches_the_batch_featurizer():
    world = UpsellWorld(seed=3)
    users = world.sample_users(400)
    featurize = world.featurizer.transform_one
    X = np.stack([featurize(u) for u in users.to_dict("records")])
    np.testing.assert_allclose(X, world.featurizer.transform(users), rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"weekly_hours": None}, "weekly_hours"),
        ({"tenure_months": -1.0}, "tenure_months"),
        ({"household_size": math.inf}, "household_size"),
        ({"past_trials": "2"}, "past_trials"),
        ({"student_verified": 1}, "student_verified"),
        ({"device": "fridge"}, "device"),
        ({"current_plan": 3}, "current_plan"),
    ],
    ids=lambda v: str(v) if isinstance(v, str) else next(iter(v)),
)
def test_transform_one_names_the_bad_field(change, field):
    world = UpsellWorld(seed=3)
    user = {**world.sample_users(1).to_dict("records")[0], **change}
    with pytest.raises(ValueError, match=f"'{field}'"):
        world.featurizer.transform_one(user)


def test_transform_one_missing_field_and_wrong_type():
    world = UpsellWorld(seed=3)
    featurize = world.featurizer.transform_one
    user = world.sample_users(1).to_dict("records")[0]
    del user["market"]
    with pytest.raises(ValueError, match="missing the attribute 'market'"):
        featurize(user)
    with pytest.raises(TypeError, match="mapping"):
        featurize([1.0, 2.0])
