"""The simulated upsell world: users, a non-linear ground truth, delayed conversions, drift, and the oracle.

Users
-----
:meth:`UpsellWorld.sample_users` draws a DataFrame, one row per event (offer), with

====================  ===========================================================================================
``tenure_months``     months since sign-up, Gamma(1.3, 14) (x0.6 for students), at most 180
``weekly_hours``      listening hours per week, Gamma(1.8, 5.5) (x1.25 for students), at most 80
``device``            main device; households of 3+ use smart speakers and TVs twice as often
``market``            market (``WorldConfig.markets`` shares); ``price_tier`` is the market's tier
``household_size``    household-size proxy, 1 + Poisson(1.1) (Poisson(0.35) for students), at most 6
``student_verified``  verified student (``population.student_share``)
``past_trials``       free trials taken before, Poisson(0.35, +0.25 after two years), at most 6
``current_plan``      "free" or the plan the user pays for (``population.plans_students/plans_others``)
``has_audiobooks``    pays for an audiobook add-on (more likely above 15 hours a week)
``has_podcasts``      pays for a podcast add-on
====================  ===========================================================================================

Every column comes from its own random stream spawned from the world seed, so the first n users of a longer draw
are the same n users (prefix-stable). A user whose every launch-day product is held or ineligible loses their
add-ons (and then their plan), so every user has at least one offer.

Ground truth
------------
User ``i`` converts on product ``k`` at step ``t`` with probability ``sigmoid(L_ik(t))`` where, with
``h = log1p(hours) - log1p(10)``, ``loyal = 1 - exp(-tenure / 12)``, ``paid`` the price of the current plan (0 when
free), ``delta = price_k - paid`` for plans (``price_k`` for add-ons) and the coefficients of
:class:`~bandit.simulation.config.ModelConfig`:

* ``appeal_k`` (the product's baseline);
* price: ``- sens_i * delta`` with ``sens_i = price_sensitivity * tier_multiplier[tier_i] * (student_price_multiplier
  if student) * (1 - loyalty_price_relief * loyal)``; a plan cheaper than the current one (a downgrade) counts
  its saving at half weight and gets ``downgrade`` instead of ``upgrade_intent``;
* plans: ``listening_premium * h`` (premium) or ``listening_basic * h`` (basic), ``loyalty * loyal``,
  ``past_trials * trials``, ``upgrade_intent`` for paying users moving up;
* seats (household x seats): ``seats_fit * log(min(household, seats)) - seats_waste * sqrt(max(seats -
  household, 0))`` and ``shared_device`` for multi-seat plans on smart speakers / TVs;
* student x student plan: ``student_plan``;
* add-ons: ``listening_audiobooks * h + desktop_audiobooks * [desktop or tablet]`` for audiobooks,
  ``listening_podcasts * h + mobile_podcasts * [mobile]`` for podcasts;
* drift: ``drift.strength * drift.direction[k] * t / drift.steps``.

A conversion happens when the potential-outcome uniform ``U_ik < sigmoid(L_ik)`` and arrives ``-mean_days *
log(1 - V_ik)`` days later (exponential); it is attributed to the offer when that delay is within the attribution
window, which happens with probability ``F = 1 - exp(-window / mean_days)``. ``U`` and ``V`` are drawn once per
world seed (common random numbers): every policy meets the same users with the same potential outcomes.

Value and the long-term term
----------------------------
A conversion to ``k`` earns ``value_k`` (price or LTV, :class:`~bandit.simulation.catalog.Catalog`) and ends the
products ``k`` replaces that the user has; their value, times ``long_term_weight``, is lost:
``net_ik = value_k - long_term_weight * sum_j replaces[k, j] * has[i, j] * value_j``. With weight 0 the objective is
short-term revenue; with weight 1 a downgrade from Individual (11.99) to Student (5.99) is worth -6.00.

The oracle's expected value of offering ``k`` to user ``i`` is ``sigmoid(L_ik) * F * net_ik`` (exact, so regret is
exact).

Guardrail outcomes
------------------
Two side effects of an offer, for guardrail metrics (:meth:`Episode.guardrail_outcomes`):

* **cancellation** (churn): a paying user who does not convert cancels their paid subscription inside the
  attribution window with probability ``c_ik = sigmoid(CANCEL_BASE + CANCEL_PUSH * push_ik)``, where ``push_ik =
  max(price_k - paid_i, 0)`` for plans and ``price_k`` for add-ons (the extra monthly spend the offer pushes); free
  users cannot cancel. It happens when ``W_ik < c_ik`` and the user did not convert (a converting user upgrades
  instead), so ``E[cancelled_ik] = (1 - sigmoid(L_ik)) * c_ik``. ``W`` comes from its own random stream, drawn
  after every other one: the users, conversions, delays and values above are bit-identical with or without it.
* **cannibalisation**: the monthly value of the paid products an attributed conversion ends (``replaces``),
  ``lost_ik = sum_j replaces[k, j] * has[i, j] * value_j`` (currency), whatever ``long_term_weight`` says, so
  ``E[cannibalised_ik] = sigmoid(L_ik) * F * lost_ik``.

Examples
--------
>>> world = UpsellWorld(seed=3, launch_step=50)
>>> ep = world.episode(100)
>>> ep.X.shape, ep.expected_value.shape, ep.arm_names[-1]
((100, 23), (100, 7), 'basic')
>>> bool(ep.eligible[:50, -1].any()), bool(ep.eligible.any(axis=1).all())
(False, True)
>>> bool(np.array_equal(UpsellWorld(seed=3, launch_step=50).episode(100).uniforms, ep.uniforms))
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd

from bandit.arms import Arm
from bandit.simulation.catalog import Catalog
from bandit.simulation.config import CatalogConfig, WorldConfig
from bandit.simulation.featurizer import DEVICES, Featurizer

__all__ = ["CANCEL_BASE", "CANCEL_PUSH", "Episode", "GuardrailOutcomes", "Outcomes", "UpsellWorld"]

#: One independent random stream per user column / potential-outcome array (order fixed: changing it changes
#: every world).
_STREAMS = (
    "student", "market", "household", "device", "tenure", "hours", "trials", "plan", "audiobooks", "podcasts",
    "convert", "delay",
)
#: Streams of the guardrail outcomes, spawned after :data:`_STREAMS` (so adding them changed no earlier stream).
_GUARDRAIL_STREAMS = ("cancel",)
_US_PER_DAY = 86_400_000_000

#: Log-odds that a paying user who is offered nothing extra to pay cancels inside the window (about 1.5 %).
CANCEL_BASE = -4.2
#: Added log-odds of cancelling per currency unit of extra monthly spend the offer pushes.
CANCEL_PUSH = 0.15


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _pick(u: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Row-wise inverse-CDF draw: index j with cumsum(probs[i])[j-1] <= u[i] < cumsum(probs[i])[j]."""
    cdf = np.cumsum(probs, axis=-1)
    cdf = cdf / cdf[..., -1:]
    return np.minimum((u[:, None] >= cdf).sum(axis=-1), probs.shape[-1] - 1)


@dataclass(frozen=True)
class Outcomes:
    """Realised outcomes of offering ``arms`` at ``rows`` of an :class:`Episode` (all arrays shape (n,)).

    Attributes
    ----------
    converted : bool
        The user bought the offer (at some time).
    attributed : bool
        Converted within the attribution window (what the business counts and policies learn from).
    delay_days : float
        Days from the offer to the conversion (``inf`` when the user did not convert).
    revenue : float
        Realised net value: ``attributed * net_value`` (currency).
    """

    converted: np.ndarray
    attributed: np.ndarray
    delay_days: np.ndarray
    revenue: np.ndarray


@dataclass(frozen=True)
class GuardrailOutcomes:
    """Realised side effects of offering ``arms`` at ``rows`` of an :class:`Episode` (arrays shape (n,)).

    Attributes
    ----------
    cancelled : bool
        The (paying, non-converting) user cancelled their subscription inside the attribution window.
    cannibalised : float
        Monthly value of the paid products an attributed conversion ended (currency; 0 without one).
    """

    cancelled: np.ndarray
    cannibalised: np.ndarray


@dataclass(frozen=True)
class Episode:
    """A drawn stream of ``n`` events: the users, their contexts and every arm's potential outcome.

    Attributes
    ----------
    users : pandas.DataFrame
        Raw user attributes, one row per event.
    X : ndarray (n, d)
        Contexts (:class:`~bandit.simulation.featurizer.Featurizer`).
    steps : ndarray of int64 (n,)
        Event index (step ``t``).
    timestamps : ndarray of datetime64[us] (n,)
        Decision times (UTC).
    eligible : ndarray of bool (n, K)
        Offers each user may see at that step (the new plan only from the launch step on).
    probability : ndarray (n, K)
        True conversion probability.
    net_value : ndarray (n, K)
        Value of a conversion, long-term term included (currency).
    expected_value : ndarray (n, K)
        Oracle: ``probability * F * net_value``, the expected attributed net value of each offer.
    uniforms, delay_days : ndarray (n, K)
        Potential outcomes: user ``i`` converts on ``k`` iff ``uniforms[i, k] < probability[i, k]``, after
        ``delay_days[i, k]`` days.
    arm_names : list of str
        K product names (the new plan last).
    attribution_window_days : float
    cancel_probability : ndarray (n, K)
        ``c_ik``: probability that a non-converting user cancels after offer ``k`` (module docstring).
    cancel_uniforms : ndarray (n, K)
        Potential outcomes of cancelling: ``cancel_uniforms[i, k] < cancel_probability[i, k]``.
    cannibalised_value : ndarray (n, K)
        ``lost_ik``: monthly value of the paid products a conversion to ``k`` ends.
    attribution_probability : float
        ``F``, the probability that a conversion arrives inside the attribution window.
    """

    users: pd.DataFrame
    X: np.ndarray
    steps: np.ndarray
    timestamps: np.ndarray
    eligible: np.ndarray
    probability: np.ndarray
    net_value: np.ndarray
    expected_value: np.ndarray
    uniforms: np.ndarray
    delay_days: np.ndarray
    arm_names: list[str]
    attribution_window_days: float
    cancel_probability: np.ndarray | None = None
    cancel_uniforms: np.ndarray | None = None
    cannibalised_value: np.ndarray | None = None
    attribution_probability: float | None = None

    def __len__(self) -> int:
        return int(self.steps.shape[0])

    def best_arms(self, rows: Any = slice(None)) -> np.ndarray:
        """Oracle choice (eligible arm of highest expected value; lowest index on ties), shape (n,) int64."""
        ev = np.where(self.eligible[rows], self.expected_value[rows], -np.inf)
        return np.argmax(ev, axis=1).astype(np.int64)

    def oracle_value(self, rows: Any = slice(None)) -> np.ndarray:
        """Expected value of the oracle's choice per row, shape (n,)."""
        ev = np.where(self.eligible[rows], self.expected_value[rows], -np.inf)
        return ev.max(axis=1)

    def outcomes(self, rows: np.ndarray, arms: np.ndarray) -> Outcomes:
        """Realised outcomes of offering ``arms[j]`` at event ``rows[j]`` (integer arrays of equal length).

        Raises
        ------
        ValueError
            An arm that was not eligible at its row, or lengths differ.
        """
        rows = np.asarray(rows, dtype=np.int64)
        arms = np.asarray(arms, dtype=np.int64)
        if rows.shape != arms.shape or rows.ndim != 1:
            raise ValueError(f"rows and arms must be 1-D of equal length, got shapes {rows.shape} and {arms.shape}")
        if rows.size and not self.eligible[rows, arms].all():
            bad = int(np.flatnonzero(~self.eligible[rows, arms])[0])
            raise ValueError(
                f"arm {self.arm_names[arms[bad]]!r} was offered at step {rows[bad]} where it is not eligible"
            )
        converted = self.uniforms[rows, arms] < self.probability[rows, arms]
        delay = np.where(converted, self.delay_days[rows, arms], np.inf)
        attributed = delay <= self.attribution_window_days
        revenue = np.where(attributed, self.net_value[rows, arms], 0.0)
        return Outcomes(converted, attributed, delay, revenue)

    def _guardrail_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.cancel_probability is None or self.cancel_uniforms is None or self.cannibalised_value is None:
            raise ValueError("this Episode has no guardrail outcomes; draw it with UpsellWorld.episode()")
        return self.cancel_probability, self.cancel_uniforms, self.cannibalised_value

    def guardrail_outcomes(self, rows: np.ndarray, arms: np.ndarray) -> GuardrailOutcomes:
        """Realised cancellations and cannibalised value of offering ``arms[j]`` at event ``rows[j]``.

        Same arguments and checks as :meth:`outcomes`; consistent with it (a user who converts never cancels).

        Examples
        --------
        >>> ep = UpsellWorld(seed=0).episode(2000)
        >>> rows = np.arange(2000)
        >>> g = ep.guardrail_outcomes(rows, ep.best_arms())
        >>> bool(np.all(~(g.cancelled & ep.outcomes(rows, ep.best_arms()).converted)))
        True
        """
        cancel_p, cancel_u, lost = self._guardrail_arrays()
        out = self.outcomes(rows, arms)
        rows = np.asarray(rows, dtype=np.int64)
        arms = np.asarray(arms, dtype=np.int64)
        cancelled = ~out.converted & (cancel_u[rows, arms] < cancel_p[rows, arms])
        cannibalised = np.where(out.attributed, lost[rows, arms], 0.0)
        return GuardrailOutcomes(cancelled, cannibalised)

    @property
    def expected_cancellation(self) -> np.ndarray:
        """Exact expected cancellation of each offer, ``(1 - probability) * cancel_probability``, shape (n, K)."""
        cancel_p, _, _ = self._guardrail_arrays()
        return (1.0 - self.probability) * cancel_p

    @property
    def expected_cannibalisation(self) -> np.ndarray:
        """Exact expected cannibalised value of each offer, ``probability * F * cannibalised_value``, shape (n, K)."""
        _, _, lost = self._guardrail_arrays()
        return self.probability * float(self.attribution_probability or 0.0) * lost


class UpsellWorld:
    """A seeded simulated world of plan-upsell offers (model and columns in the module docstring).

    Parameters
    ----------
    config : WorldConfig, optional
        Markets, population, ground-truth coefficients, delays, drift, clock, long-term weight. Default
        ``WorldConfig()``.
    catalog : Catalog, optional
        The offers. Default: the catalog of ``CatalogConfig()`` (four plans, two add-ons, the new plan "basic").
    launch_step : int, optional
        Step from which the catalog's new plan is eligible; None: never.
    seed : int
        Seeds every random stream (users, potential outcomes, delays).

    Attributes
    ----------
    featurizer : Featurizer
        Encodes users as contexts (markets of the config; plans "free" + the launch-day plans).
    attribution_probability : float
        ``F``, the probability that a conversion arrives inside the attribution window.
    """

    def __init__(
        self,
        config: WorldConfig | None = None,
        catalog: Catalog | None = None,
        *,
        launch_step: int | None = None,
        seed: int = 0,
    ) -> None:
        if config is None:
            config = WorldConfig()
        if not isinstance(config, WorldConfig):
            raise TypeError(f"config must be a WorldConfig, got {type(config).__name__}")
        if catalog is None:
            catalog = CatalogConfig().build()
        if not isinstance(catalog, Catalog):
            raise TypeError(f"catalog must be a Catalog, got {type(catalog).__name__}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        if launch_step is not None:
            if isinstance(launch_step, bool) or not isinstance(launch_step, (int, np.integer)) or launch_step < 0:
                raise ValueError(f"launch_step must be a non-negative int or None, got {launch_step!r}")
            if not catalog.has_new_plan:
                raise ValueError("launch_step is set but the catalog has no new_plan to launch")
        unknown = sorted({m for p in catalog.products for m in (p.markets or ())} - set(config.markets))
        if unknown:
            raise ValueError(f"catalog sells in markets {unknown} that the world config does not define")
        self.config = config
        self.catalog = catalog
        self.launch_step = None if launch_step is None else int(launch_step)
        self.seed = int(seed)
        base_plans = [p.name for p in catalog.products[: catalog.n_base] if p.kind == "plan"]
        self.featurizer = Featurizer(markets=list(config.markets), plans=["free", *base_plans], devices=DEVICES)
        delay = config.delay
        self.attribution_probability = float(-np.expm1(-delay.attribution_window_days / delay.mean_days))
        self._prices = {p.name: p.price for p in catalog.products}
        self._replace_value = catalog.replacement_matrix() * catalog.values[None, :]

    def __repr__(self) -> str:
        return f"UpsellWorld(seed={self.seed}, catalog={self.catalog!r}, launch_step={self.launch_step})"

    @property
    def arm_names(self) -> list[str]:
        """Product names in arm-index order (the new plan last)."""
        return self.catalog.names

    def arms(self, include_new: bool = True, unit_values: bool = False) -> list[Arm]:
        """The catalog's arms (see :meth:`Catalog.arms`)."""
        return self.catalog.arms(include_new=include_new, unit_values=unit_values)

    def _streams(self) -> dict[str, np.random.Generator]:
        # spawn(m)[i] does not depend on m, so the guardrail streams appended last leave the others unchanged
        names = _STREAMS + _GUARDRAIL_STREAMS
        children = np.random.SeedSequence(self.seed).spawn(len(names))
        return {name: np.random.default_rng(s) for name, s in zip(names, children, strict=True)}

    # ------------------------------------------------------------------------------------------------------------
    # users
    # ------------------------------------------------------------------------------------------------------------

    def sample_users(self, n: int) -> pd.DataFrame:
        """The first ``n`` users of this world (prefix-stable; columns in the module docstring).

        Examples
        --------
        >>> users = UpsellWorld(seed=1).sample_users(5)
        >>> list(users.columns)  # doctest: +NORMALIZE_WHITESPACE
        ['tenure_months', 'weekly_hours', 'device', 'market', 'price_tier', 'household_size', 'student_verified',
         'past_trials', 'current_plan', 'has_audiobooks', 'has_podcasts']
        >>> users.equals(UpsellWorld(seed=1).sample_users(50).iloc[:5])
        True
        """
        return self._sample_users(n, self._streams())

    def _sample_users(self, n: int, rng: dict[str, np.random.Generator]) -> pd.DataFrame:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n must be a non-negative int, got {n!r}")
        pop = self.config.population
        markets = list(self.config.markets)
        student = rng["student"].random(n) < pop.student_share
        market_idx = _pick(rng["market"].random(n), np.array([[m.share for m in self.config.markets.values()]]))
        market = np.array(markets, dtype=object)[market_idx]
        tier = np.array([self.config.markets[m].price_tier for m in markets], dtype=object)[market_idx]
        household = 1 + np.minimum(rng["household"].poisson(np.where(student, 0.35, 1.1)), 5)
        shares = cast("dict[str, float]", pop.device_shares)
        base = np.array([shares.get(d, 0.0) for d in DEVICES])
        tilt = np.where(np.isin(np.array(DEVICES), ["smart_speaker", "tv"]), 2.0, 1.0)
        dev_probs = np.where((household >= 3)[:, None], base * tilt, base)
        device = np.array(DEVICES, dtype=object)[_pick(rng["device"].random(n), dev_probs)]
        tenure = np.minimum(rng["tenure"].gamma(1.3, 14.0, size=n) * np.where(student, 0.6, 1.0), 180.0)
        hours = np.minimum(rng["hours"].gamma(1.8, 5.5, size=n) * np.where(student, 1.25, 1.0), 80.0)
        trials = np.minimum(rng["trials"].poisson(0.35 + 0.25 * (tenure > 24)), 6)
        plan_names = sorted(set(pop.plans_students) | set(pop.plans_others))
        p_stu = np.array([pop.plans_students.get(p, 0.0) for p in plan_names])
        p_oth = np.array([pop.plans_others.get(p, 0.0) for p in plan_names])
        plan_idx = _pick(rng["plan"].random(n), np.where(student[:, None], p_stu, p_oth))
        plan = np.array(plan_names, dtype=object)[plan_idx]
        audio_p = np.minimum(pop.audiobooks_share * np.where(hours > 15, 1.8, 0.7), 1.0)
        audiobooks = rng["audiobooks"].random(n) < audio_p
        podcasts = rng["podcasts"].random(n) < pop.podcasts_share
        users = pd.DataFrame(
            {
                "tenure_months": tenure,
                "weekly_hours": hours,
                "device": device,
                "market": market,
                "price_tier": tier,
                "household_size": household.astype(np.int64),
                "student_verified": student,
                "past_trials": trials.astype(np.int64),
                "current_plan": plan,
                "has_audiobooks": audiobooks,
                "has_podcasts": podcasts,
            }
        )
        return self._ensure_an_offer(users)

    def _ensure_an_offer(self, users: pd.DataFrame) -> pd.DataFrame:
        """Users with no eligible launch-day offer lose their add-ons, then their plan (documented rule)."""
        none = ~self.catalog.eligibility(users, launched=False).any(axis=1)
        if none.any():
            users.loc[none, ["has_audiobooks", "has_podcasts"]] = False
            none = ~self.catalog.eligibility(users, launched=False).any(axis=1)
            users.loc[none, "current_plan"] = "free"
            none = ~self.catalog.eligibility(users, launched=False).any(axis=1)
            if none.any():
                row = users.loc[none].iloc[0]
                raise ValueError(
                    f"the catalog offers nothing to a free non-owner in market {row['market']!r} "
                    f"(student={bool(row['student_verified'])}); add a product sold there"
                )
        return users

    # ------------------------------------------------------------------------------------------------------------
    # ground truth
    # ------------------------------------------------------------------------------------------------------------

    def _paid(self, users: pd.DataFrame) -> np.ndarray:
        plan = users["current_plan"].to_numpy(dtype=object)
        return np.array([self._prices.get(p, 0.0) for p in plan], dtype=np.float64)

    def logits(self, users: pd.DataFrame, steps: Any = 0) -> np.ndarray:
        """Ground-truth log-odds of converting, shape (n, K) (formula in the module docstring).

        Parameters
        ----------
        users : pandas.DataFrame
            As from :meth:`sample_users`.
        steps : int or array of int, shape (n,)
            Step of each event (drift).
        """
        m = self.config.model
        cat = self.catalog
        n = len(users)
        t = np.broadcast_to(np.asarray(steps, dtype=np.float64), (n,))
        hours = users["weekly_hours"].to_numpy(dtype=np.float64)
        tenure = users["tenure_months"].to_numpy(dtype=np.float64)
        household = users["household_size"].to_numpy(dtype=np.float64)
        trials = users["past_trials"].to_numpy(dtype=np.float64)
        student = users["student_verified"].to_numpy(dtype=np.bool_)
        device = users["device"].to_numpy(dtype=object)
        tiers = users["price_tier"].to_numpy(dtype=object)
        h = np.log1p(hours) - np.log1p(10.0)
        loyal = -np.expm1(-tenure / 12.0)
        tier_mult = np.array([m.tier_multiplier[x] for x in tiers], dtype=np.float64)
        sens = (
            m.price_sensitivity
            * tier_mult
            * np.where(student, m.student_price_multiplier, 1.0)
            * (1.0 - m.loyalty_price_relief * loyal)
        )
        paid = self._paid(users)
        shared = np.isin(device, ["smart_speaker", "tv"])
        desktop = np.isin(device, ["desktop", "tablet"])
        mobile = device == "mobile"
        drift = self.config.drift
        L = np.empty((n, len(cat)))
        for k, p in enumerate(cat.products):
            col = np.full(n, p.appeal)
            if p.kind == "plan":
                delta = p.price - paid
                down = delta < 0
                col -= sens * np.where(down, 0.5 * delta, delta)
                col += np.where(paid > 0, np.where(down, m.downgrade, m.upgrade_intent), 0.0)
                col += (m.listening_premium if p.premium else m.listening_basic) * h
                col += m.loyalty * loyal + m.past_trials * trials
                col += m.seats_fit * np.log(np.minimum(household, p.seats))
                col -= m.seats_waste * np.sqrt(np.maximum(p.seats - household, 0.0))
                if p.seats > 1:
                    col += m.shared_device * shared
                if p.student_only:
                    col += m.student_plan
            else:
                col -= sens * p.price
                if p.family == "audiobooks":
                    col += m.listening_audiobooks * h + m.desktop_audiobooks * desktop
                else:
                    col += m.listening_podcasts * h + m.mobile_podcasts * mobile
            col += drift.strength * drift.direction.get(p.name, 0.0) * t / drift.steps
            L[:, k] = col
        return L

    def conversion_probability(self, users: pd.DataFrame, steps: Any = 0) -> np.ndarray:
        """True probability of converting on each product, shape (n, K)."""
        return _sigmoid(self.logits(users, steps))

    def net_values(self, users: pd.DataFrame) -> np.ndarray:
        """Value of a conversion per user and product, long-term term included (currency), shape (n, K)."""
        return self.catalog.values[None, :] - self.config.long_term_weight * self.cannibalised_values(users)

    def cannibalised_values(self, users: pd.DataFrame) -> np.ndarray:
        """Monthly value of the paid products a conversion to each product ends, ``lost_ik``, shape (n, K)."""
        H = self.catalog.holdings(users).astype(np.float64)
        return H @ self._replace_value.T

    def cancel_probabilities(self, users: pd.DataFrame) -> np.ndarray:
        """``c_ik``: probability that a non-converting user cancels after offer ``k``, shape (n, K) (0 if free)."""
        paid = self._paid(users)
        push = np.empty((len(users), len(self.catalog)))
        for k, p in enumerate(self.catalog.products):
            push[:, k] = np.maximum(p.price - paid, 0.0) if p.kind == "plan" else p.price
        return np.where((paid > 0)[:, None], _sigmoid(CANCEL_BASE + CANCEL_PUSH * push), 0.0)

    def expected_values(self, users: pd.DataFrame, steps: Any = 0) -> np.ndarray:
        """Oracle: expected attributed net value of offering each product, shape (n, K) (ignores eligibility)."""
        return self.conversion_probability(users, steps) * self.attribution_probability * self.net_values(users)

    def eligibility(self, users: pd.DataFrame, steps: Any = 0) -> np.ndarray:
        """Offers each user may see at ``steps`` (the new plan from ``launch_step`` on), shape (n, K) of bool."""
        n = len(users)
        t = np.broadcast_to(np.asarray(steps), (n,))
        launched = np.zeros(n, dtype=np.bool_) if self.launch_step is None else t >= self.launch_step
        return self.catalog.eligibility(users, launched=launched)

    # ------------------------------------------------------------------------------------------------------------
    # episodes
    # ------------------------------------------------------------------------------------------------------------

    def episode(self, n_events: int) -> Episode:
        """Draw the first ``n_events`` events of this world: users, contexts, potential outcomes and the oracle.

        Deterministic in the seed and prefix-stable: ``episode(m)`` is the first m rows of ``episode(n)``, m < n.
        """
        rng = self._streams()
        users = self._sample_users(n_events, rng)
        k = len(self.catalog)
        steps = np.arange(n_events, dtype=np.int64)
        start_us = int(pd.Timestamp(self.config.start).value // 1000)
        offsets = np.round(steps * (_US_PER_DAY / self.config.events_per_day)).astype(np.int64)
        timestamps = (start_us + offsets).astype("datetime64[us]")
        prob = self.conversion_probability(users, steps)
        net = self.net_values(users)
        uniforms = rng["convert"].random((n_events, k))
        delay = -self.config.delay.mean_days * np.log1p(-rng["delay"].random((n_events, k)))
        cancel_uniforms = rng["cancel"].random((n_events, k))
        return Episode(
            users=users,
            X=self.featurizer.transform(users),
            steps=steps,
            timestamps=timestamps,
            eligible=self.eligibility(users, steps),
            probability=prob,
            net_value=net,
            expected_value=prob * self.attribution_probability * net,
            uniforms=uniforms,
            delay_days=delay,
            arm_names=self.arm_names,
            attribution_window_days=self.config.delay.attribution_window_days,
            cancel_probability=self.cancel_probabilities(users),
            cancel_uniforms=cancel_uniforms,
            cannibalised_value=self.cannibalised_values(users),
            attribution_probability=self.attribution_probability,
        )
