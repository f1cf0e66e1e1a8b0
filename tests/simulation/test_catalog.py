"""Catalog: products as arms, values, arm features, eligibility rules (checked against a plain-Python reference)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from bandit.arms import Arm
from bandit.simulation.catalog import ARM_FEATURE_NAMES, Catalog, Product, default_catalog, default_products
from bandit.simulation.world import UpsellWorld


def test_default_catalog_prices_and_values():
    cat = default_catalog()
    prices = dict(zip(cat.names, cat.prices, strict=False))
    assert prices["individual"] == 11.99 and prices["duo"] == 16.99
    assert prices["family"] == 19.99 and prices["student"] == 5.99
    assert {p.kind for p in cat.products} == {"plan", "addon"}  # plans are balanced against non-plan products
    np.testing.assert_allclose(cat.values, cat.prices)
    ltv = default_catalog(value="ltv")
    np.testing.assert_allclose(ltv.values, [p.price * p.expected_months for p in ltv.products])


def test_arms_are_bandit_arms_with_features():
    cat = default_catalog()
    arms = cat.arms()
    assert all(isinstance(a, Arm) for a in arms)
    assert [a.name for a in arms] == cat.names
    assert [a.name for a in cat.arms(include_new=False)] == cat.names[:-1]
    assert all(a.value == 1.0 for a in cat.arms(unit_values=True))
    F = cat.arm_features()
    assert F.shape == (len(cat), len(ARM_FEATURE_NAMES))
    family = F[cat.names.index("family")]
    assert family[ARM_FEATURE_NAMES.index("log2_seats")] == pytest.approx(math.log2(6))
    assert family[ARM_FEATURE_NAMES.index("price")] == pytest.approx(1.999)
    student = F[cat.names.index("student")]
    assert student[ARM_FEATURE_NAMES.index("student_only")] == 1.0
    audio = F[cat.names.index("audiobooks")]
    assert audio[ARM_FEATURE_NAMES.index("addon")] == 1.0 and audio[ARM_FEATURE_NAMES.index("audiobooks")] == 1.0
    basic = F[cat.names.index("basic")]
    assert basic[ARM_FEATURE_NAMES.index("basic_tier")] == 1.0


def _reference_features(p: Product) -> list[float]:
    """The documented arm features, written out from the product's attributes."""
    return [p.price / 10, math.log2(p.seats), 1.0 if (p.kind == "plan" and not p.premium) else 0.0,
            1.0 if p.student_only else 0.0, 1.0 if p.kind == "addon" else 0.0,
            1.0 if p.family == "audiobooks" else 0.0, 1.0 if p.family == "podcasts" else 0.0]


def test_every_arm_and_the_new_plan_are_featured_consistently():
    cat = default_catalog()
    arms = cat.arms()
    assert cat.has_new_plan and arms[-1].name == "basic"
    assert {len(a.features) for a in arms} == {len(ARM_FEATURE_NAMES)}
    for p, arm in zip(cat.products, arms, strict=False):
        np.testing.assert_allclose(arm.features, _reference_features(p), err_msg=p.name)
    # unit-value arms (value rewards) carry the same features
    np.testing.assert_array_equal([a.features for a in cat.arms(unit_values=True)], cat.arm_features())
    # a product's features describe what it is, not how well it converts: the truth's appeal is not among them
    twin = default_catalog().new_plan.model_copy(update={"appeal": 3.0})
    assert twin.arm_features() == cat.new_plan.arm_features()


def test_no_launch_day_feature_duplicates_the_hybrid_intercept():
    """A column that is the same non-zero constant on every launch-day product is collinear with the constant a
    hybrid policy appends to the arm features: ridge would split the common effects between the two and score a
    new product lacking that attribute with half of them (why the tier is a ``basic_tier`` flag)."""
    F = default_catalog().arm_features()
    launch_day = F[:-1]
    for j, name in enumerate(ARM_FEATURE_NAMES):
        column = launch_day[:, j]
        assert np.ptp(column) > 0 or not column.any(), name
    # and the new plan differs from every launch-day product
    assert not (launch_day == F[-1]).all(axis=1).any()


def _reference_eligible(cat: Catalog, user: pd.Series, launched: bool) -> list[bool]:
    out = []
    for k, p in enumerate(cat.products):
        ok = True
        if cat.has_new_plan and k == len(cat) - 1 and not launched:
            ok = False
        if p.student_only and not user["student_verified"]:
            ok = False
        if p.markets is not None and user["market"] not in p.markets:
            ok = False
        if p.kind == "plan" and user["current_plan"] == p.name:
            ok = False
        if p.kind == "addon" and user[{"audiobooks": "has_audiobooks", "podcasts": "has_podcasts"}[p.family]]:
            ok = False
        out.append(ok)
    return out


def test_eligibility_matches_reference_rules():
    world = UpsellWorld(seed=11)
    users = world.sample_users(3000)
    launched = np.random.default_rng(0).random(len(users)) < 0.5
    E = world.catalog.eligibility(users, launched=launched)
    ref = np.array([_reference_eligible(world.catalog, users.iloc[i], launched[i]) for i in range(len(users))])
    np.testing.assert_array_equal(E, ref)
    names = world.catalog.names
    student = users["student_verified"].to_numpy()
    # the rules hold on real draws: no student plan for non-students, no Duo in India, no offer of what one has
    assert not E[~student, names.index("student")].any()
    assert E[student, names.index("student")].any()
    assert not E[users["market"].to_numpy() == "in", names.index("duo")].any()
    assert not E[users["current_plan"].to_numpy() == "individual", names.index("individual")].any()
    assert not E[users["has_audiobooks"].to_numpy(), names.index("audiobooks")].any()
    assert not E[~launched, names.index("basic")].any()
    assert E.any(axis=1).all()


def test_holdings_and_replacement_matrix():
    cat = default_catalog()
    users = pd.DataFrame({"current_plan": ["individual", "free"], "has_audiobooks": [False, True],
                          "has_podcasts": [True, False]})
    H = cat.holdings(users)
    assert H[0].nonzero()[0].tolist() == [cat.names.index("individual"), cat.names.index("podcast_plus")]
    assert H[1].nonzero()[0].tolist() == [cat.names.index("audiobooks")]
    R = cat.replacement_matrix()
    assert R[cat.names.index("family"), cat.names.index("individual")]
    assert not R[cat.names.index("audiobooks")].any()


def test_catalog_validation_errors():
    products = default_products()
    with pytest.raises(ValueError, match="unique"):
        Catalog([*products, products[0]])
    with pytest.raises(ValueError, match="replaces unknown"):
        Catalog([Product(name="x", price=1.0, replaces=["nope"])])
    with pytest.raises(ValueError, match="value"):
        Catalog(products, value="profit")
    with pytest.raises(TypeError, match="products"):
        Catalog([])
    with pytest.raises(ValidationError, match="family"):
        Product(name="a", kind="addon", price=3.0, family="music")
    with pytest.raises(ValidationError, match="price"):
        Product(name="a", price=-1.0)
    with pytest.raises(ValidationError):
        Product(name="a b", price=1.0)
    # "free" is every unpaid user's current_plan: such a product made free users pay its price (and the world failed
    # to build with a bare ValueError from the featurizer, a traceback in the CLI)
    for kind, family in (("plan", "music"), ("addon", "podcasts")):
        with pytest.raises(ValueError, match="'free' is reserved"):
            Catalog([*products, Product(name="free", kind=kind, family=family, price=2.0)])
    with pytest.raises(ValueError, match="'free' is reserved"):
        Catalog(products, new_plan=Product(name="free", price=2.0))
    from bandit.simulation.config import SimulationConfig

    with pytest.raises(ValidationError, match="(?s)catalog.*'free' is reserved"):
        SimulationConfig.model_validate({"catalog": {"new_plan": {"name": "free", "price": 2.0}}})


def test_eligibility_needs_columns():
    with pytest.raises(ValueError, match="missing columns"):
        default_catalog().eligibility(pd.DataFrame({"market": ["us"]}))
