"""Run policies side by side on one simulated world, with common random numbers, batch refresh and delayed rewards.

:func:`run_simulation` runs every policy of a :class:`~bandit.simulation.config.SimulationConfig` on the same
users and potential outcomes (common random numbers), plus a uniform-random logging run for off-policy evaluation,
and collects the metrics into a :class:`SimulationResult`. The work is split by job:

* :mod:`~bandit.simulation.loop` -- one policy on an episode, as in production: decisions written through
  :class:`bandit.DecisionLog`, delayed rewards resolved by :mod:`bandit.attribution` at every batch refresh
  (:func:`run_policy`);
* :mod:`~bandit.simulation.metrics` -- revenue, regret against the oracle, arm share, time to learn a new plan,
  off-policy evaluation on the logging run's decision log (:func:`time_to_learn`, :func:`offline_evaluate`);
* :mod:`~bandit.simulation.report` -- :class:`SimulationResult`: tables, ``summary.md``, decision logs and
  outcomes on disk (:func:`write_decision_logs`);
* :mod:`~bandit.simulation.demo` -- the end-to-end demo (:func:`run_demo`).

This module re-exports their public names.

Examples
--------
>>> from bandit.simulation.config import SimulationConfig
>>> cfg = SimulationConfig.model_validate({
...     "horizon": 600, "batch_size": 100, "launch_step": 300, "world": {"events_per_day": 200},
...     "policies": [{"name": "oracle", "type": "oracle"}, {"name": "uniform", "type": "UniformRandom"}],
...     "output": {"progress": False, "share_window": 100}})
>>> result = run_simulation(cfg)
>>> float(result.summary.set_index("policy").loc["oracle", "regret"])
0.0
>>> bool(result.summary.set_index("policy").loc["uniform", "regret"] > 0)
True
"""

from __future__ import annotations

from typing import Any

from bandit.simulation.config import LOGGING_RUN, ConfigError, PolicyConfig, SimulationConfig
from bandit.simulation.demo import DemoResult, build_demo, run_demo
from bandit.simulation.loop import OraclePolicy, PolicyRun, Progress, build_policy, run_policy
from bandit.simulation.metrics import logged_data, offline_evaluate, target_probabilities, time_to_learn
from bandit.simulation.report import SimulationResult, _collect, markdown_table, write_decision_logs
from bandit.simulation.world import UpsellWorld

__all__ = [
    "DemoResult",
    "OraclePolicy",
    "PolicyRun",
    "Progress",
    "SimulationResult",
    "build_demo",
    "build_policy",
    "check_memory",
    "logged_data",
    "markdown_table",
    "offline_evaluate",
    "run_demo",
    "run_policy",
    "run_simulation",
    "target_probabilities",
    "time_to_learn",
    "write_decision_logs",
]


#: Memory a run holds per event, in bytes: the episode (users, contexts, potential outcomes; measured 1.2 KB per
#: event with one policy run) and each policy run (actions, distributions, outcomes, decision-log bookkeeping, the
#: off-policy evaluation of the logging run; measured 0.8 KB per event and run; peak RSS at 20,000 and 100,000
#: events, default world).
EPISODE_BYTES_PER_EVENT = 400
RUN_BYTES_PER_EVENT = 800


def _available_memory() -> int | None:
    """Bytes of memory available to a new allocation (``MemAvailable`` of /proc/meminfo), or None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_memory(config: SimulationConfig, available: int | None = None) -> int:
    """Refuse a run that would need more memory than the machine has, before allocating anything.

    Parameters
    ----------
    config : SimulationConfig
    available : int, optional
        Bytes available (default: the machine's available memory; no check where it is unknown).

    Returns
    -------
    int
        The estimated bytes the run needs.

    Raises
    ------
    ConfigError
        The estimate exceeds ``available``; the message names ``horizon`` and the policies.
    """
    n_runs = len(config.policies) + int(config.offline_eval.enabled)
    need = config.horizon * (EPISODE_BYTES_PER_EVENT + RUN_BYTES_PER_EVENT * n_runs)
    available = _available_memory() if available is None else available
    if available is not None and need > available:
        logging_run = config.offline_eval.enabled
        raise ConfigError(
            f"horizon: {config.horizon:,} events with {n_runs} policy runs"
            f"{' (the policies and the off-policy logging run)' if logging_run else ''} need about "
            f"{need / 1e9:.1f} GB of memory, but {available / 1e9:.1f} GB are available; lower horizon"
            + (", run fewer policies or set offline_eval.enabled = false" if logging_run else " or run fewer policies")
        )
    return need


def run_simulation(config: SimulationConfig, progress: bool | None = None) -> SimulationResult:
    """Run every configured policy on the configured world (common random numbers) and collect the metrics.

    Parameters
    ----------
    config : SimulationConfig
    progress : bool, optional
        Report progress on stderr (default ``config.output.progress``).

    Returns
    -------
    SimulationResult
        Call :meth:`SimulationResult.save` to write tables, logs, plots and the summary.

    Raises
    ------
    ConfigError
        A policy rejects its parameters, or the run would need more memory than is available
        (:func:`check_memory`).
    """
    if not isinstance(config, SimulationConfig):
        raise TypeError(f"config must be a SimulationConfig, got {type(config).__name__}")
    check_memory(config)
    catalog = config.catalog.build(with_new_plan=config.launch_step is not None)
    world = UpsellWorld(config.world, catalog, launch_step=config.launch_step, seed=config.seed)
    episode = world.episode(config.horizon)
    unit = config.reward == "value"
    arms = world.arms(include_new=False, unit_values=unit)
    new_arm = world.arms(include_new=True, unit_values=unit)[-1] if catalog.has_new_plan else None
    scale = float(catalog.values.max())
    d = world.featurizer.n_features
    policies = {
        spec.name: build_policy(spec, arms, d, config.seed, i) for i, spec in enumerate(config.policies)
    }
    n_runs = len(policies) + int(config.offline_eval.enabled)
    tracker = Progress(n_runs * config.horizon, enabled=config.output.progress if progress is None else progress)

    def run(policy: Any, label: str) -> PolicyRun:
        return run_policy(episode, policy, name=label, batch_size=config.batch_size, launch_step=config.launch_step,
                          new_arm=new_arm, reward=config.reward, reward_scale=scale, progress=tracker,
                          learn_at=config.learn_at)

    runs = {label: run(pol, label) for label, pol in policies.items()}
    logging_run = None
    if config.offline_eval.enabled:
        logger = build_policy(PolicyConfig(name=LOGGING_RUN, type="UniformRandom"), arms, d, config.seed + 1)
        logging_run = run(logger, LOGGING_RUN)
    return _collect(config, episode, runs, logging_run)
