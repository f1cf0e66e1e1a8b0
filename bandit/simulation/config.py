"""Configuration of a simulation: pydantic models, loadable from TOML, YAML or JSON with one-line errors.

The top-level model is :class:`SimulationConfig`; every section has defaults, so an empty file is a valid config
(the default world, catalog and policies). A TOML example::

    seed = 7
    horizon = 40000          # events (offers) to simulate
    batch_size = 500         # policies are refreshed every 500 events
    launch_step = 20000      # the catalog's new plan goes on sale at this step
    reward = "conversion"    # policies learn from 0/1 conversions (arm value = price or LTV)

    [world]
    long_term_weight = 1.0   # charge cannibalised revenue (a downgrade from Individual to Student costs 11.99)
    [world.delay]
    mean_days = 0.5
    attribution_window_days = 1.0

    [catalog]
    value = "ltv"            # arm value = price x expected months

    [[policies]]
    name = "linucb"
    type = "LinUCB"
    params = { alpha = 0.5 }

    [[policies]]
    name = "hybrid_linucb"
    type = "HybridLinUCB"    # one model shared through the plans' arm features: scores the new plan at launch
    params = { alpha = 0.5, arm_l2 = 1.0 }

    [[policies]]
    name = "uniform"
    type = "UniformRandom"

Errors raise :class:`ConfigError` (a ``ValueError``) with one line naming the file and the field, e.g.
``bad.toml: policies.0.type: unknown policy type 'LinUBC'; known: ...``.

Examples
--------
>>> cfg = SimulationConfig.model_validate({"horizon": 5000, "batch_size": 100, "launch_step": 2500})
>>> cfg.world.markets["in"].price_tier, cfg.catalog.value, [p.name for p in cfg.policies]
('low', 'price', ['uniform', 'linucb', 'linear_ts'])
>>> SimulationConfig.model_validate({"horizon": 100, "launch_step": 200})
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for SimulationConfig
...
"""

from __future__ import annotations

import inspect
import json
import math
import tomllib
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bandit.simulation.catalog import Catalog, Product, default_new_plan, default_products

Device = Literal["mobile", "desktop", "tablet", "smart_speaker", "tv"]
PriceTier = Literal["high", "mid", "low"]

__all__ = [
    "CatalogConfig",
    "ConfigError",
    "DelayConfig",
    "DriftConfig",
    "LOGGING_RUN",
    "MarketConfig",
    "ModelConfig",
    "OfflineEvalConfig",
    "OutputConfig",
    "PolicyConfig",
    "PopulationConfig",
    "SimulationConfig",
    "WorldConfig",
    "format_validation_error",
    "load_config",
    "policy_types",
]

PRICE_TIERS: tuple[str, ...] = get_args(PriceTier)
ORACLE = "oracle"
#: Label of the uniform-random logging run of off-policy evaluation (its decision log is ``logs/logging_uniform``).
LOGGING_RUN = "logging_uniform"
#: The clock of a simulation (decision times, arrivals, attribution windows) stays inside pandas' timestamp range.
TIME_RANGE = (datetime(1678, 1, 1, tzinfo=UTC), datetime(2262, 1, 1, tzinfo=UTC))
_MAX_DAYS = 36_500.0
#: Largest world seed: the off-policy logging run is seeded with ``seed + 1`` and policy seeds are below 2**64.
MAX_SEED = 2**64 - 2
#: Fewest logged decisions with a final outcome that off-policy evaluation accepts.
_MIN_MATURE = 100


def ope_estimators() -> tuple[str, ...]:
    """Names of the estimators a config (and the CLI) may name: offline_eval's estimator classes, found by
    introspection (:func:`offline_eval.estimators.estimator_classes`)."""
    from offline_eval.estimators import estimator_classes

    return tuple(cls.__name__ for cls in estimator_classes())


class ConfigError(ValueError):
    """A configuration problem, with a one-line message naming the file (if any) and the field."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_shares(shares: Mapping[str, float], what: str) -> None:
    total = sum(shares.values())
    if any(v < 0 or not math.isfinite(v) for v in shares.values()) or not math.isclose(total, 1.0, abs_tol=1e-6):
        raise ValueError(f"{what} must be non-negative and sum to 1, got {dict(shares)} (sum {total:.4g})")


class MarketConfig(_Model):
    """A market: its share of users and its price tier (which scales price sensitivity)."""

    share: float = Field(gt=0, le=1)
    price_tier: PriceTier


def _default_markets() -> dict[str, MarketConfig]:
    return {
        "us": MarketConfig(share=0.30, price_tier="high"),
        "gb": MarketConfig(share=0.15, price_tier="high"),
        "de": MarketConfig(share=0.15, price_tier="high"),
        "br": MarketConfig(share=0.15, price_tier="mid"),
        "mx": MarketConfig(share=0.10, price_tier="mid"),
        "in": MarketConfig(share=0.15, price_tier="low"),
    }


class PopulationConfig(_Model):
    """Who the users are (see :meth:`bandit.simulation.world.UpsellWorld.sample_users` for every column).

    ``plans_students`` / ``plans_others`` give the shares of current plans ("free" = no paid plan) among verified
    students and the other users; plan names other than "free" must be plans of the catalog.
    """

    student_share: float = Field(default=0.12, ge=0, le=1)
    plans_students: dict[str, float] = Field(
        default_factory=lambda: {"free": 0.55, "student": 0.35, "individual": 0.10}
    )
    plans_others: dict[str, float] = Field(default_factory=lambda: {"free": 0.80, "individual": 0.20})
    audiobooks_share: float = Field(default=0.06, ge=0, le=1)
    podcasts_share: float = Field(default=0.08, ge=0, le=1)
    device_shares: dict[Device, float] = Field(
        default_factory=lambda: dict[Device, float](
            {"mobile": 0.55, "desktop": 0.20, "tablet": 0.08, "smart_speaker": 0.09, "tv": 0.08}
        )
    )

    @field_validator("plans_students", "plans_others", "device_shares")
    @classmethod
    def _shares(cls, v: dict[str, float]) -> dict[str, float]:
        if not v:
            raise ValueError("must name at least one entry")
        _check_shares(v, "shares")
        return v


class ModelConfig(_Model):
    """Coefficients of the ground-truth conversion model (log-odds units; see ``UpsellWorld``'s docstring)."""

    price_sensitivity: float = Field(default=0.16, ge=0)
    tier_multiplier: dict[PriceTier, float] = Field(
        default_factory=lambda: dict[PriceTier, float]({"high": 1.0, "mid": 1.6, "low": 2.4})
    )
    student_price_multiplier: float = Field(default=1.7, ge=0)
    loyalty_price_relief: float = Field(default=0.35, ge=0, le=1)
    listening_premium: float = Field(default=0.55)
    listening_basic: float = Field(default=-0.45)
    listening_audiobooks: float = Field(default=0.8)
    listening_podcasts: float = Field(default=0.5)
    loyalty: float = Field(default=0.6)
    past_trials: float = Field(default=-0.3)
    seats_fit: float = Field(default=1.1)
    seats_waste: float = Field(default=0.55, ge=0)
    shared_device: float = Field(default=0.45)
    student_plan: float = Field(default=1.2)
    upgrade_intent: float = Field(default=0.8)
    downgrade: float = Field(default=-0.8)
    mobile_podcasts: float = Field(default=0.5)
    desktop_audiobooks: float = Field(default=0.4)

    @model_validator(mode="after")
    def _finite(self) -> ModelConfig:
        for name, v in self.model_dump().items():
            values = v.values() if isinstance(v, dict) else [v]
            if not all(math.isfinite(x) for x in values):
                raise ValueError(f"{name} must be finite")
        if set(self.tier_multiplier) != set(PRICE_TIERS):
            raise ValueError(f"tier_multiplier must give all of {list(PRICE_TIERS)}")
        return self


class DelayConfig(_Model):
    """Conversions arrive after an exponential delay; only those within the attribution window count."""

    mean_days: float = Field(default=0.5, gt=0, allow_inf_nan=False)
    attribution_window_days: float = Field(default=1.0, gt=0, le=_MAX_DAYS)


class DriftConfig(_Model):
    """Tastes drift linearly: product ``k``'s log-odds move by ``strength * direction[k] * step / steps``."""

    strength: float = Field(default=0.6, allow_inf_nan=False)
    steps: int = Field(default=100_000, ge=1)
    direction: dict[str, float] = Field(default_factory=lambda: {"family": 1.0, "individual": -0.5})

    @field_validator("direction")
    @classmethod
    def _finite_direction(cls, v: dict[str, float]) -> dict[str, float]:
        bad = sorted(k for k, x in v.items() if not math.isfinite(x))
        if bad:
            raise ValueError(f"must be finite numbers, got {bad[0]!r}: {v[bad[0]]}")
        return v


class WorldConfig(_Model):
    """The simulated world: markets, users, ground truth, delays, drift, clock and the long-term term."""

    markets: dict[str, MarketConfig] = Field(default_factory=_default_markets)
    population: PopulationConfig = Field(default_factory=PopulationConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    delay: DelayConfig = Field(default_factory=DelayConfig)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    long_term_weight: float = Field(default=0.0, ge=0, le=10)
    events_per_day: float = Field(default=2000.0, gt=0, allow_inf_nan=False)
    start: datetime = datetime(2024, 1, 1, tzinfo=UTC)

    @field_validator("markets")
    @classmethod
    def _markets(cls, v: dict[str, MarketConfig]) -> dict[str, MarketConfig]:
        if not v:
            raise ValueError("must name at least one market")
        _check_shares({k: m.share for k, m in v.items()}, "market shares")
        return v

    @field_validator("start")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        v = v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)
        if not TIME_RANGE[0] <= v < TIME_RANGE[1]:
            raise ValueError(f"must lie between {TIME_RANGE[0]:%Y-%m-%d} and {TIME_RANGE[1]:%Y-%m-%d} (UTC), got {v}")
        return v


class CatalogConfig(_Model):
    """The offers: products available from the start, the plan launched later, and how a conversion is valued."""

    products: list[Product] = Field(default_factory=default_products, min_length=1)
    new_plan: Product | None = Field(default_factory=default_new_plan)
    value: Literal["price", "ltv"] = "price"

    def build(self, with_new_plan: bool = True) -> Catalog:
        """The :class:`~bandit.simulation.catalog.Catalog` these settings describe (optionally without the new plan)."""
        return Catalog(self.products, self.new_plan if with_new_plan else None, value=self.value)

    @model_validator(mode="after")
    def _consistent(self) -> CatalogConfig:
        self.build()
        return self


def policy_types() -> dict[str, type]:
    """Policy classes a config may name (:func:`bandit.policies.policy_classes`, found by introspection), by name."""
    from bandit.policies import policy_classes

    return {cls.__name__: cls for cls in policy_classes()}


class PolicyConfig(_Model):
    """A policy to run: a unique label, a class name of :mod:`bandit` (or ``"oracle"``) and its parameters.

    ``arms`` and ``n_features`` are supplied by the simulation; ``params`` are the other keyword arguments (e.g.
    ``alpha`` for LinUCB, ``arm_l2`` for HybridLinUCB). The arms carry the catalog's arm features
    (:data:`~bandit.simulation.catalog.ARM_FEATURE_NAMES`), so the hybrid policies need nothing more; the new plan
    is added to every policy at the launch with its features. ``seed`` defaults to the simulation seed.
    ``"oracle"`` always offers the arm with the highest true expected value (zero regret by definition; a
    reference line).
    """

    name: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_\-.]*$", min_length=1)  # a directory name, never . or ..
    type: str
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known(self) -> PolicyConfig:
        if self.type == ORACLE:
            if self.params:
                raise ValueError("the oracle takes no params")
            return self
        types = policy_types()
        if self.type not in types:
            raise ValueError(f"unknown policy type {self.type!r}; known: {sorted([*types, ORACLE])}")
        sig = inspect.signature(types[self.type])
        accepted = [p for p in sig.parameters if p not in ("self", "arms", "n_features")]
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
            unknown = sorted(set(self.params) - set(accepted))
            if unknown:
                raise ValueError(f"{self.type} has no parameter {unknown[0]!r}; accepted: {accepted}")
        return self


def _default_policies() -> list[PolicyConfig]:
    return [
        PolicyConfig(name="uniform", type="UniformRandom"),
        PolicyConfig(name="linucb", type="LinUCB", params={"alpha": 0.5}),
        PolicyConfig(name="linear_ts", type="LinearTS"),
    ]


class OutputConfig(_Model):
    """What the runner writes and reports.

    ``plots``: PNG plots; ``decision_logs``: Parquet decision logs per policy; ``progress``: progress on stderr;
    ``share_window``: events per window of the arm-share and new-plan uptake tables; ``learn_fraction``: the
    share of its settled targeting agreement a policy must reach for the time to learn the new plan
    (:func:`bandit.simulation.runner.time_to_learn`); ``launch_window``: offers after (and before) the launch over
    which the launch-window regret is summed (:func:`bandit.simulation.metrics.launch_window_regret`).
    """

    plots: bool = True
    decision_logs: bool = True
    progress: bool = True
    share_window: int = Field(default=1000, ge=10)
    learn_fraction: float = Field(default=0.6, gt=0, le=1)
    launch_window: int = Field(default=5_000, ge=1)


class OfflineEvalConfig(_Model):
    """Off-policy evaluation of every policy's final state on the logs of a uniform-random logging run."""

    enabled: bool = True
    estimators: list[str] = Field(default_factory=lambda: ["SNIPS", "DR"], min_length=1)

    @field_validator("estimators")
    @classmethod
    def _known_estimators(cls, names: list[str]) -> list[str]:
        known = ope_estimators()
        unknown = [name for name in names if name not in known]
        if unknown:
            raise ValueError(f"unknown estimator {unknown[0]!r}; choose among {', '.join(known)}")
        dupes = sorted({name for name in names if names.count(name) > 1})
        if dupes:
            raise ValueError(f"each estimator once, duplicated: {dupes}")
        return names


class SimulationConfig(_Model):
    """Everything a simulation run needs.

    Parameters
    ----------
    seed : int
        World seed: users, potential outcomes and delays are drawn from it once; policies default to it too.
    horizon : int
        Number of events (offers), one user each.
    batch_size : int
        Policies decide a batch of this many events with their current state, then learn from the outcomes that
        have arrived by the end of the batch (production-style batch refresh).
    launch_step : int, optional
        Step at which ``catalog.new_plan`` goes on sale and is added to every policy (``add_arm``); None: the new
        plan is not part of the simulation.
    reward : {"conversion", "value"}
        What policies learn from: 0/1 attributed conversions with arm value = price/LTV (short-term revenue), or
        the net value (long-term term included) divided by the largest arm value, with unit arm values.
    learn_at : {"arrival", "window_close"}
        When policies learn an outcome: a conversion as soon as it arrives and a non-conversion when its attribution
        window closes (``"arrival"``, what ``update_from_log`` does in production), or every outcome when its window
        closes (``"window_close"``; no early-conversion bias, one window of delay for everything). See
        :func:`bandit.simulation.loop.run_policy`.
    """

    seed: int = Field(default=0, ge=0, le=MAX_SEED)
    horizon: int = Field(default=20_000, ge=1, le=10_000_000)
    batch_size: int = Field(default=500, ge=1)
    launch_step: int | None = Field(default=None, ge=0)
    reward: Literal["conversion", "value"] = "conversion"
    learn_at: Literal["arrival", "window_close"] = "arrival"
    world: WorldConfig = Field(default_factory=WorldConfig)
    catalog: CatalogConfig = Field(default_factory=CatalogConfig)
    policies: list[PolicyConfig] = Field(default_factory=_default_policies, min_length=1)
    output: OutputConfig = Field(default_factory=OutputConfig)
    offline_eval: OfflineEvalConfig = Field(default_factory=OfflineEvalConfig)

    @field_validator("seed", "horizon", "batch_size", "launch_step", mode="before")
    @classmethod
    def _not_bool(cls, v: Any) -> Any:
        if isinstance(v, bool):  # JSON/YAML true would otherwise count as 1
            raise ValueError(f"must be an integer, got a boolean ({str(v).lower()})")
        return v

    @model_validator(mode="after")
    def _cross_check(self) -> SimulationConfig:
        if self.launch_step is not None:
            if self.catalog.new_plan is None:
                raise ValueError("launch_step is set but catalog.new_plan is null; give a new plan or drop launch_step")
            if self.launch_step >= self.horizon:
                raise ValueError(f"launch_step ({self.launch_step}) must be < horizon ({self.horizon})")
        labels = [p.name for p in self.policies]
        dupes = sorted({n for n in labels if labels.count(n) > 1})
        if dupes:
            raise ValueError(f"policies: names must be unique, duplicated: {dupes}")
        if LOGGING_RUN in labels:
            raise ValueError(f"policies: the name {LOGGING_RUN!r} is the off-policy logging run's; choose another")
        markets = set(self.world.markets)
        for p in self.catalog.build().products:
            unknown = sorted(set(p.markets or ()) - markets)
            if unknown:
                raise ValueError(
                    f"catalog: product {p.name!r} is sold in unknown markets {unknown}; world.markets has "
                    f"{sorted(markets)}"
                )
        catalog = self.catalog.build()
        plans = {p.name: p for p in catalog.products[: catalog.n_base] if p.kind == "plan"}
        pop = self.world.population
        # every user must have an offer: a free user without add-ons may be offered any launch-day product sold in
        # their market (student-only ones if a verified student)
        groups = [flag for flag, share in ((False, 1.0 - pop.student_share), (True, pop.student_share)) if share > 0]
        for market in self.world.markets:
            for student in groups:
                if not any((p.markets is None or market in p.markets) and (student or not p.student_only)
                           for p in catalog.products[: catalog.n_base]):
                    who = "verified students" if student else "users who are not verified students"
                    raise ValueError(
                        f"catalog.products: nothing is on sale to {who} in market {market!r}; add a product sold "
                        "there, or drop the market from world.markets"
                    )
        for field, shares in (("plans_students", pop.plans_students), ("plans_others", pop.plans_others)):
            for name in shares:
                if name != "free" and name not in plans:
                    raise ValueError(
                        f"world.population.{field} names {name!r}, which is not a launch-day plan of the catalog "
                        f"({sorted(plans)}) nor 'free'"
                    )
                if field == "plans_others" and name in plans and plans[name].student_only and shares[name] > 0:
                    raise ValueError(f"world.population.plans_others gives non-students the student-only plan {name!r}")
        if self.offline_eval.enabled:
            window = self.world.delay.attribution_window_days * self.world.events_per_day
            if self.horizon - window < _MIN_MATURE:
                raise ValueError(
                    f"offline_eval needs at least {_MIN_MATURE} decisions whose "
                    f"{self.world.delay.attribution_window_days:g}-day attribution window closes within the run, but "
                    f"{self.horizon} events at {self.world.events_per_day:g} per day leave "
                    f"{max(int(self.horizon - window), 0)}; raise horizon or world.events_per_day, or set "
                    "offline_eval.enabled = false"
                )
        world = self.world
        days = self.horizon / world.events_per_day + world.delay.attribution_window_days
        if days * 86_400.0 > (TIME_RANGE[1] - world.start).total_seconds():
            raise ValueError(
                f"world: {self.horizon:,} events at {world.events_per_day:g} per day from {world.start:%Y-%m-%d} (plus "
                f"the {world.delay.attribution_window_days:g}-day attribution window) run past "
                f"{TIME_RANGE[1]:%Y-%m-%d}, the end of the simulation clock; raise world.events_per_day, lower horizon "
                "or move world.start earlier"
            )
        unknown = sorted(set(self.world.drift.direction) - set(catalog.names))
        if unknown:
            raise ValueError(f"world.drift.direction names unknown products {unknown}; known: {catalog.names}")
        return self


def format_validation_error(err: ValidationError, source: str | None = None) -> str:
    """One line: ``[source: ]field.path: message[ (and N more problems)]``."""
    errors = err.errors(include_url=False)
    first = errors[0]
    loc = ".".join(str(p) for p in first["loc"])
    msg = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        msg = "unknown field (check the spelling)"
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    prefix = f"{source}: " if source else ""
    where = f"{loc}: " if loc else ""
    return " ".join(f"{prefix}{where}{msg}{more}".split())


#: Largest config file read (a config with dozens of policies is a few kilobytes): anything larger is refused
#: before it is read into memory.
MAX_CONFIG_BYTES = 1_000_000
_SUFFIXES = (".toml", ".json", ".yaml", ".yml")


def _parse(path: Path) -> Any:
    suffix = path.suffix.lower()
    if suffix not in _SUFFIXES:  # decided before reading anything
        raise ConfigError(
            f"{path}: unknown config format {suffix or '(no suffix)'!r}; use .toml, .yaml, .yml or .json"
        )
    with path.open("rb") as f:
        data = f.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES:,} bytes; a simulation config is a few kilobytes")
    text = data.decode("utf-8")
    if suffix == ".toml":
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: not valid TOML: {e}") from None
    if suffix == ".json":
        try:
            return json.loads(text, object_pairs_hook=_unique_keys)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: not valid JSON: {e}") from None
        except _DuplicateKey as e:
            raise ConfigError(f"{path}: not valid JSON: {e}") from None
    try:  # .yaml / .yml
        import yaml
    except ImportError:
        raise ConfigError(f"{path}: reading YAML needs PyYAML (pip install pyyaml), or use TOML/JSON") from None
    try:
        return yaml.load(text, Loader=_unique_key_yaml_loader())  # a SafeLoader that refuses repeated keys
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(e).split())}") from None
    except _DuplicateKey as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None


class _DuplicateKey(ValueError):
    """A key given twice in one mapping of a JSON or YAML config (TOML refuses it itself)."""


def _unique_keys(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
    """``dict(pairs)``, refusing a key given twice: JSON and YAML would silently keep the last one."""
    out: dict[Any, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(f"the key {key!r} is given twice in one mapping (the first would be ignored)")
        out[key] = value
    return out


def _unique_key_yaml_loader() -> Any:
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: set[Any] = set()
            for key_node, _ in node.value:  # the keys written in this mapping; merged ones (<<) may be overridden
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node)
                if key in seen:
                    raise _DuplicateKey(f"the key {key!r} is given twice in one mapping (line "
                                        f"{key_node.start_mark.line + 1}; the first would be ignored)")
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader


def load_config(path: str | Path) -> SimulationConfig:
    """Read and validate a :class:`SimulationConfig` from a TOML, YAML or JSON file.

    Raises
    ------
    ConfigError
        Missing/unreadable file, bad syntax or an invalid field; the message is one line naming the file and field.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = tempfile.TemporaryDirectory()
    >>> p = pathlib.Path(d.name) / "sim.toml"
    >>> _ = p.write_text('horizon = 5000\\n[[policies]]\\nname = "u"\\ntype = "UniformRandom"\\n')
    >>> load_config(p).horizon
    5000
    >>> _ = p.write_text('horizon = -5\\n')
    >>> load_config(p)
    Traceback (most recent call last):
    ...
    bandit.simulation.config.ConfigError: .../sim.toml: horizon: Input should be greater than or equal to 1
    >>> d.cleanup()
    """
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{p}: config file not found")
    if not p.is_file():
        raise ConfigError(f"{p}: not a file")
    try:
        raw = _parse(p)
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: cannot read: {e}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: the top level must be a table/mapping of settings, got {type(raw).__name__}")
    try:
        return SimulationConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, str(p))) from None
