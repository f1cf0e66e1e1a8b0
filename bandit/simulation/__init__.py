"""A plan-upsell simulator: try policies on a realistic world before a launch.

* :mod:`~bandit.simulation.catalog` -- plans and add-ons as arms, eligibility rules.
* :mod:`~bandit.simulation.featurizer` -- the documented user featurizer.
* :mod:`~bandit.simulation.world` -- :class:`UpsellWorld`: users, non-linear ground truth, delays, drift, oracle.
* :mod:`~bandit.simulation.config` -- pydantic configuration, loadable from TOML/YAML/JSON.
* :mod:`~bandit.simulation.runner` -- :func:`run_simulation` (several policies, common random numbers, batch
  refresh, launch of a new plan, off-policy evaluation) and :func:`run_demo`.
* :mod:`~bandit.simulation.plots` -- PNG plots.

The command line (``upsell-bandit simulate|evaluate|demo``) wraps these.
"""

from bandit.simulation.catalog import Catalog, Product, default_catalog, known_attribute_plan
from bandit.simulation.config import ConfigError, SimulationConfig, WorldConfig, load_config
from bandit.simulation.featurizer import Featurizer
from bandit.simulation.runner import OraclePolicy, PolicyRun, SimulationResult, run_demo, run_policy, run_simulation
from bandit.simulation.world import Episode, UpsellWorld

__all__ = [
    "Catalog",
    "ConfigError",
    "Episode",
    "Featurizer",
    "OraclePolicy",
    "PolicyRun",
    "Product",
    "SimulationConfig",
    "SimulationResult",
    "UpsellWorld",
    "WorldConfig",
    "default_catalog",
    "known_attribute_plan",
    "load_config",
    "run_demo",
    "run_policy",
    "run_simulation",
]
