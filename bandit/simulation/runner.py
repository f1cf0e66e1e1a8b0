"""Run policies side by side on one simulated world, with common random numbers, batch refresh and delayed rewards.

How a run works
---------------
:func:`run_policy` walks an :class:`~bandit.simulation.world.Episode` in batches of ``batch_size`` events (a batch
also ends at the launch step), driving the production loop end to end. For each batch the policy decides every
event with its **current** state (``choose_batch`` with the world's eligibility mask); the decisions are written to
a :class:`bandit.DecisionLog` (``append_batch``, one log per run under the world's arm list); the world reveals the
potential outcomes of the chosen arms, and each conversion becomes an outcome row (``event_id``, arrival
``timestamp``, ``reward``) when it arrives. At the batch's last timestamp ``now`` the policy learns from the
decisions whose reward is known by then through :func:`bandit.attribution.apply_log` -- the code behind
``policy.update_from_log`` and ``join_outcomes``, with an explicit ``now``: a conversion that arrived inside the
attribution window gives reward 1 (or its value), a decision whose window has passed without one gives 0, the rest
wait. At the launch step the catalog's new plan is appended to the policy (``add_arm``, with its arm features, so a
hybrid policy scores it before its first impression); a policy without ``add_arm`` keeps its arms and the run
records a note.

Every policy meets the same users and the same potential outcomes (common random numbers, drawn once per world
seed), so differences between policies are differences in choices, not luck of the draw.

Metrics
-------
* revenue and conversions (attributed, realised) and the expected value of the choices;
* regret: ``sum_i max_eligible E[i, k] - E[i, a_i]`` with ``E`` the oracle's exact expected values (no noise),
  also per event from the launch on (``regret_per_event_after_launch``: what learning the new plan costs);
* arm share per window of ``share_window`` events;
* new-plan uptake and **time to learn**: the number of steps after the launch until, within a window, the
  policy's correctly targeted share of the new plan reaches ``learn_fraction`` of the oracle's share (it offers
  the plan to that fraction of the users the oracle offers it to) and of its own share (that fraction of its
  new-plan offers go to those users); NaN when that never happens (:func:`time_to_learn`);
* off-policy evaluation: every policy's final state is evaluated with ``offline_eval`` on the logs of a
  uniform-random logging run over the same users and compared with its exact value on those users (from the
  oracle) and with the revenue per event it realised online while learning.

The work is split by job: :mod:`~bandit.simulation.loop` (running one policy), :mod:`~bandit.simulation.metrics`
(what a run is worth, off-policy evaluation), :mod:`~bandit.simulation.report` (:class:`SimulationResult`, files)
and :mod:`~bandit.simulation.demo`; this module runs a whole configured simulation and re-exports their public
names.

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

from bandit.simulation.config import PolicyConfig, SimulationConfig
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
        A policy rejects its parameters.
    """
    if not isinstance(config, SimulationConfig):
        raise TypeError(f"config must be a SimulationConfig, got {type(config).__name__}")
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
                          new_arm=new_arm, reward=config.reward, reward_scale=scale, progress=tracker)

    runs = {label: run(pol, label) for label, pol in policies.items()}
    logging_run = None
    if config.offline_eval.enabled:
        logger = build_policy(PolicyConfig(name="logging_uniform", type="UniformRandom"), arms, d, config.seed + 1)
        logging_run = run(logger, "logging_uniform")
    return _collect(config, episode, runs, logging_run)
