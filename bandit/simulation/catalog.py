"""The product catalog of the simulated world: plans and paid add-ons, their arm features and eligibility rules.

A :class:`Product` is one offer a policy can make: a subscription plan (Individual, Duo, Family, Student, ...) or a
non-plan paid product (an audiobook add-on, a podcast bundle), so a policy balances plans against other products.
A :class:`Catalog` turns products into :class:`bandit.arms.Arm` objects (``value`` = monthly price or lifetime
value, ``features`` = the numeric description used by hybrid policies) and decides which offers each user may see.

Arm features
------------
:meth:`Product.arm_features` returns, in the order of :data:`ARM_FEATURE_NAMES`, a description of the product's
attributes that the world's conversion model depends on (:class:`~bandit.simulation.world.UpsellWorld`; the
features say *what* a product is, never how much it converts):

==================  ===========================================================  ==================================
feature             value                                                        ground-truth terms it describes
==================  ===========================================================  ==================================
``price``           monthly price / 10 (so 11.99 -> 1.199)                       price sensitivity
``log2_seats``      log2 of the number of accounts (1 -> 0, 2 -> 1, 6 -> 2.585)  household fit, shared devices
``basic_tier``      1 for a basic-tier plan, 0 otherwise                         listening (premium vs basic)
``student_only``    1 when only verified students may buy it                     student plan
``addon``           1 for a non-plan product (add-on), 0 for a plan              plan terms (loyalty, trials, ...)
``audiobooks``      1 when the product belongs to the audiobooks family          listening, desktop use
``podcasts``        1 when the product belongs to the podcasts family            listening, mobile use
==================  ===========================================================  ==================================

The tier is a ``basic_tier`` flag, not a ``premium`` flag, on purpose: every launch-day product is premium, so a
``premium`` column would equal the constant column a hybrid policy adds (``fit_intercept``), and ridge would split
the common effects between the two, scoring a basic plan with half of them. A flag that is 0 for every launch-day
product instead leaves the shared model's prediction for a new basic plan that of a premium plan with its price,
seats and family, and the flag's own coefficients start at their prior until basic-tier data arrives. Product
``appeal`` is not a feature: it is the ground truth's per-product baseline, which a policy has to learn (the
per-arm coefficients of a hybrid policy).

Eligibility
-----------
A user may be offered product ``k`` when all of these hold:

1. ``k`` is launched (``launched[k]``; the catalog's ``new_plan`` is launched at the simulation's launch step);
2. ``k`` is not student-only, or the user is a verified student (``student_verified``);
3. ``k`` is sold in the user's market (``Product.markets`` is None = every market);
4. the user does not already have it: a plan equal to the user's ``current_plan``, or an add-on whose family
   the user already pays for (``has_audiobooks`` / ``has_podcasts``).

Examples
--------
>>> catalog = default_catalog()
>>> catalog.names
['individual', 'duo', 'family', 'student', 'audiobooks', 'podcast_plus', 'basic']
>>> [a.value for a in catalog.arms(include_new=False)]
[11.99, 16.99, 19.99, 5.99, 9.99, 4.99]
>>> dict(zip(ARM_FEATURE_NAMES, (round(f, 3) for f in catalog.arms()[2].features)))  # family
{'price': 1.999, 'log2_seats': 2.585, 'basic_tier': 0.0, 'student_only': 0.0, 'addon': 0.0, 'audiobooks': 0.0,
 'podcasts': 0.0}
>>> [round(f, 3) for f in catalog.arms()[-1].features]  # the new plan "basic": same features, its own values
[0.799, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bandit.arms import Arm

__all__ = [
    "ARM_FEATURE_NAMES",
    "ADDON_FAMILIES",
    "Catalog",
    "NO_PLAN",
    "Product",
    "default_catalog",
    "default_new_plan",
    "default_products",
    "known_attribute_plan",
]

#: Names of the columns of :meth:`Product.arm_features`, in order.
ARM_FEATURE_NAMES: tuple[str, ...] = (
    "price",
    "log2_seats",
    "basic_tier",
    "student_only",
    "addon",
    "audiobooks",
    "podcasts",
)

#: ``current_plan`` of a user without a paid plan (so no product may be called this).
NO_PLAN = "free"

#: Add-on families and the user column that says the user already pays for one.
ADDON_FAMILIES: Mapping[str, str] = {"audiobooks": "has_audiobooks", "podcasts": "has_podcasts"}


class Product(BaseModel):
    """One product a policy can offer.

    Parameters
    ----------
    name : str
        Unique arm name (letters, digits, ``_`` or ``-``).
    kind : {"plan", "addon"}
        A subscription plan (a user has at most one) or a paid add-on.
    price : float
        Monthly price in the reference currency, > 0.
    seats : int
        Accounts included (1 for add-ons).
    premium : bool
        Premium tier (True) or basic tier (False); it changes how listening hours move a plan's conversion (and
        is ignored for add-ons).
    family : {"music", "audiobooks", "podcasts"}
        Product family. Add-ons must be ``"audiobooks"`` or ``"podcasts"``; plans are ``"music"``.
    student_only : bool
        Only verified students may buy it.
    expected_months : float
        Expected months a converted user keeps paying; lifetime value = ``price * expected_months``.
    markets : list of str, optional
        Markets where it is sold; None = every market.
    replaces : list of str
        Products a conversion ends when the user has them (e.g. Family replaces an Individual plan). The world's
        long-term term charges their value as cannibalised revenue.
    appeal : float
        Ground truth of the simulated world: baseline log-odds of converting before the user-specific terms of
        :class:`bandit.simulation.world.UpsellWorld` (price sensitivity, household size, listening, ...).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_\-]+$", min_length=1)
    kind: Literal["plan", "addon"] = "plan"
    price: float = Field(gt=0)
    seats: int = Field(default=1, ge=1, le=12)
    premium: bool = True
    family: Literal["music", "audiobooks", "podcasts"] = "music"
    student_only: bool = False
    expected_months: float = Field(default=12.0, gt=0)
    markets: list[str] | None = None
    replaces: list[str] = Field(default_factory=list)
    appeal: float = -2.0

    @field_validator("price", "expected_months", "appeal")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v

    @model_validator(mode="after")
    def _check_kind(self) -> Product:
        if self.kind == "addon":
            if self.family not in ADDON_FAMILIES:
                raise ValueError(f"an add-on must have family 'audiobooks' or 'podcasts', got {self.family!r}")
            if self.seats != 1 or self.student_only:
                raise ValueError("an add-on has seats=1 and student_only=false")
        elif self.family != "music":
            raise ValueError(f"a plan must have family 'music', got {self.family!r}")
        if self.markets is not None and not self.markets:
            raise ValueError("markets must list at least one market, or be omitted for every market")
        if self.name in self.replaces:
            raise ValueError(f"product {self.name!r} cannot replace itself")
        return self

    def arm_features(self) -> list[float]:
        """Numeric description for hybrid policies, in the order of :data:`ARM_FEATURE_NAMES`."""
        return [
            self.price / 10.0,
            math.log2(self.seats),
            float(self.kind == "plan" and not self.premium),
            float(self.student_only),
            float(self.kind == "addon"),
            float(self.family == "audiobooks"),
            float(self.family == "podcasts"),
        ]

    def value(self, how: Literal["price", "ltv"]) -> float:
        """Revenue of one conversion: the monthly ``price`` or the lifetime value ``price * expected_months``."""
        return self.price if how == "price" else self.price * self.expected_months


def default_products() -> list[Product]:
    """The launch-day catalog: four plans and two add-ons.

    Duo is sold in ``us``, ``gb`` and ``br``; Family everywhere except ``in``; the rest everywhere.
    """
    return [
        Product(name="individual", price=11.99, seats=1, expected_months=14, replaces=["student"], appeal=-1.5),
        Product(name="duo", price=16.99, seats=2, expected_months=20, markets=["us", "gb", "br"],
                replaces=["individual", "student"], appeal=-1.4),
        Product(name="family", price=19.99, seats=6, expected_months=26, markets=["us", "gb", "de", "br", "mx"],
                replaces=["individual", "duo", "student"], appeal=-1.3),
        Product(name="student", price=5.99, seats=1, student_only=True, expected_months=9,
                replaces=["individual"], appeal=-2.0),
        Product(name="audiobooks", kind="addon", price=9.99, family="audiobooks", expected_months=7, appeal=-1.9),
        Product(name="podcast_plus", kind="addon", price=4.99, family="podcasts", expected_months=8, appeal=-2.8),
    ]


def default_new_plan() -> Product:
    """The plan launched mid-simulation: ``basic``, a 7.99 single-seat basic-tier plan sold everywhere.

    It is the best offer for many light listeners in price-sensitive markets, so a policy has something to learn.
    """
    return Product(name="basic", price=7.99, seats=1, premium=False, expected_months=11,
                   replaces=["individual", "student"], appeal=-2.3)


def known_attribute_plan() -> Product:
    """A plan whose attributes the launch-day catalog already spans: ``duo_saver``, two seats at a new price point.

    13.99 a month for two accounts (between Individual's 11.99 and Duo's 16.99), premium tier, sold everywhere, with
    a baseline appeal between theirs (-1.45): every arm feature it has (price, seats, tier, family) is one the
    launch-day plans vary, so a model shared through the arm features can predict it before its first impression
    -- unlike :func:`default_new_plan`, whose basic tier no launch-day product has. Use it as
    ``CatalogConfig(new_plan=known_attribute_plan())`` (``examples/known_attribute_launch.py``).
    """
    return Product(name="duo_saver", price=13.99, seats=2, expected_months=18, replaces=["individual", "student"],
                   appeal=-1.45)


class Catalog:
    """An ordered list of products; the optional ``new_plan`` is last (it is appended to policies at launch).

    Parameters
    ----------
    products : sequence of Product
        Offers available from the start, in arm-index order.
    new_plan : Product, optional
        An offer launched later in a simulation; its index is ``len(products)``.
    value : {"price", "ltv"}
        Arm value: monthly price or lifetime value (``price * expected_months``).

    Raises
    ------
    ValueError
        Duplicate names, a product called ``"free"`` (:data:`NO_PLAN`), or ``replaces`` naming an unknown product.
    """

    def __init__(
        self,
        products: Sequence[Product],
        new_plan: Product | None = None,
        value: Literal["price", "ltv"] = "price",
    ) -> None:
        if isinstance(products, (str, bytes)) or not isinstance(products, Sequence) or not products:
            raise TypeError("products must be a non-empty list of Product")
        if not all(isinstance(p, Product) for p in products):
            raise TypeError("products must contain only Product objects")
        if new_plan is not None and not isinstance(new_plan, Product):
            raise TypeError(f"new_plan must be a Product or None, got {type(new_plan).__name__}")
        if value not in ("price", "ltv"):
            raise ValueError(f"value must be 'price' or 'ltv', got {value!r}")
        items = [*products, *([new_plan] if new_plan is not None else [])]
        names = [p.name for p in items]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"product names must be unique, duplicated: {dupes}")
        if NO_PLAN in names:
            raise ValueError(f"the product name {NO_PLAN!r} is reserved: it is the current_plan of users without a paid "
                             "plan; name the product otherwise")
        for p in items:
            unknown = sorted(set(p.replaces) - set(names))
            if unknown:
                raise ValueError(f"product {p.name!r} replaces unknown products {unknown}; known: {names}")
        self.products: list[Product] = items
        self.has_new_plan: bool = new_plan is not None
        self.value_kind: Literal["price", "ltv"] = value

    def __len__(self) -> int:
        return len(self.products)

    def __repr__(self) -> str:
        new = f", new_plan={self.products[-1].name!r}" if self.has_new_plan else ""
        return f"Catalog({self.names[: self.n_base]}{new}, value={self.value_kind!r})"

    @property
    def names(self) -> list[str]:
        """All product names in arm-index order (the new plan last)."""
        return [p.name for p in self.products]

    @property
    def n_base(self) -> int:
        """Number of products available from the start."""
        return len(self.products) - int(self.has_new_plan)

    @property
    def new_plan(self) -> Product | None:
        """The product launched later, if any."""
        return self.products[-1] if self.has_new_plan else None

    @property
    def prices(self) -> np.ndarray:
        """Monthly prices, shape (K,)."""
        return np.array([p.price for p in self.products])

    @property
    def values(self) -> np.ndarray:
        """Revenue of one conversion per product (price or LTV), shape (K,)."""
        return np.array([p.value(self.value_kind) for p in self.products])

    def arm_features(self) -> np.ndarray:
        """Arm feature matrix, shape (K, len(ARM_FEATURE_NAMES))."""
        return np.array([p.arm_features() for p in self.products], dtype=np.float64)

    def arms(self, include_new: bool = True, unit_values: bool = False) -> list[Arm]:
        """The products as :class:`bandit.arms.Arm` (value = price or LTV; features = :meth:`Product.arm_features`).

        Parameters
        ----------
        include_new : bool
            Include the new plan (False: the launch-day arm list).
        unit_values : bool
            Give every arm ``value=1.0`` (for policies whose reward already is revenue).
        """
        items = self.products if include_new else self.products[: self.n_base]
        return [
            Arm(name=p.name, value=1.0 if unit_values else p.value(self.value_kind), features=p.arm_features())
            for p in items
        ]

    def replacement_matrix(self) -> np.ndarray:
        """``R[k, j]`` is True when converting to product ``k`` ends product ``j``; shape (K, K)."""
        index = {n: i for i, n in enumerate(self.names)}
        R = np.zeros((len(self), len(self)), dtype=np.bool_)
        for k, p in enumerate(self.products):
            for name in p.replaces:
                R[k, index[name]] = True
        return R

    def holdings(self, users: pd.DataFrame) -> np.ndarray:
        """``H[i, k]`` is True when user ``i`` already has product ``k``; shape (n, K).

        A plan is held when it equals ``users["current_plan"]``; an add-on when the user's ``has_<family>``
        column is True.
        """
        _require(users, ["current_plan", *ADDON_FAMILIES.values()])
        plan = users["current_plan"].to_numpy(dtype=object)
        H = np.zeros((len(users), len(self)), dtype=np.bool_)
        for k, p in enumerate(self.products):
            if p.kind == "plan":
                H[:, k] = plan == p.name
            else:
                H[:, k] = users[ADDON_FAMILIES[p.family]].to_numpy(dtype=np.bool_)
        return H

    def eligibility(self, users: pd.DataFrame, launched: np.ndarray | bool = False) -> np.ndarray:
        """Which offers each user may see (rules in the module docstring); shape (n, K) of bool.

        Parameters
        ----------
        users : pandas.DataFrame
            Needs ``market``, ``student_verified``, ``current_plan``, ``has_audiobooks``, ``has_podcasts``.
        launched : bool or array of bool, shape (n,)
            Whether the new plan is on sale for each user (e.g. ``step >= launch_step``). Ignored without a new
            plan.

        Examples
        --------
        >>> users = pd.DataFrame({"market": ["in", "us"], "student_verified": [False, True],
        ...                       "current_plan": ["free", "individual"], "has_audiobooks": [True, False],
        ...                       "has_podcasts": [False, False]})
        >>> default_catalog().eligibility(users).astype(int)
        array([[1, 0, 0, 0, 0, 1, 0],
               [0, 1, 1, 1, 1, 1, 0]])
        """
        _require(users, ["market", "student_verified"])
        n = len(users)
        market = users["market"].to_numpy(dtype=object)
        student = users["student_verified"].to_numpy(dtype=np.bool_)
        E = ~self.holdings(users)
        for k, p in enumerate(self.products):
            if p.student_only:
                E[:, k] &= student
            if p.markets is not None:
                E[:, k] &= np.isin(market, p.markets)
        if self.has_new_plan:
            live = np.broadcast_to(np.asarray(launched, dtype=np.bool_), (n,))
            E[:, -1] &= live
        return E


def default_catalog(value: Literal["price", "ltv"] = "price", new_plan: bool = True) -> Catalog:
    """The default catalog: :func:`default_products` plus (``new_plan=True``) :func:`default_new_plan`."""
    return Catalog(default_products(), default_new_plan() if new_plan else None, value=value)


def _require(users: pd.DataFrame, columns: Sequence[str]) -> None:
    if not isinstance(users, pd.DataFrame):
        raise TypeError(f"users must be a pandas DataFrame, got {type(users).__name__}")
    missing = [c for c in columns if c not in users.columns]
    if missing:
        raise ValueError(f"users is missing columns {missing}; generate users with UpsellWorld.sample_users()")
