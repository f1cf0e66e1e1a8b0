"""Simulation config: defaults, TOML/YAML/JSON loading, and one-line validation errors naming the field."""

from __future__ import annotations

import json

import pytest

from bandit.simulation.config import ConfigError, SimulationConfig, load_config

TOML = """
seed = 7
horizon = 6000
batch_size = 250
launch_step = 3000
reward = "value"

[world]
long_term_weight = 1.0
[world.delay]
mean_days = 0.25
attribution_window_days = 0.5

[catalog]
value = "ltv"

[[policies]]
name = "linucb"
type = "LinUCB"
params = { alpha = 0.3 }

[[policies]]
name = "oracle"
type = "oracle"
"""

YAML = """
seed: 7
horizon: 6000
batch_size: 250
launch_step: 3000
reward: value
world:
  long_term_weight: 1.0
  delay: {mean_days: 0.25, attribution_window_days: 0.5}
catalog: {value: ltv}
policies:
  - {name: linucb, type: LinUCB, params: {alpha: 0.3}}
  - {name: oracle, type: oracle}
"""

DICT = {
    "seed": 7, "horizon": 6000, "batch_size": 250, "launch_step": 3000, "reward": "value",
    "world": {"long_term_weight": 1.0, "delay": {"mean_days": 0.25, "attribution_window_days": 0.5}},
    "catalog": {"value": "ltv"},
    "policies": [{"name": "linucb", "type": "LinUCB", "params": {"alpha": 0.3}}, {"name": "oracle", "type": "oracle"}],
}


def test_defaults_are_valid_and_round_trip():
    cfg = SimulationConfig()
    assert cfg.catalog.new_plan is not None and cfg.launch_step is None
    again = SimulationConfig.model_validate_json(cfg.model_dump_json())
    assert again == cfg


def test_the_three_formats_agree(tmp_path):
    pytest.importorskip("yaml")
    (tmp_path / "a.toml").write_text(TOML)
    (tmp_path / "a.yaml").write_text(YAML)
    (tmp_path / "a.json").write_text(json.dumps(DICT))
    configs = [load_config(tmp_path / f"a.{ext}") for ext in ("toml", "yaml", "json")]
    assert configs[0] == configs[1] == configs[2] == SimulationConfig.model_validate(DICT)
    cfg = configs[0]
    assert cfg.world.long_term_weight == 1.0 and cfg.catalog.value == "ltv" and cfg.policies[0].params == {"alpha": 0.3}


def test_empty_file_gives_the_defaults(tmp_path):
    p = tmp_path / "empty.toml"
    p.write_text("")
    assert load_config(p) == SimulationConfig()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("horizon = -5", "horizon: Input should be greater than or equal to 1"),
        ("horizn = 5", "horizn: unknown field"),
        ('[[policies]]\nname = "a"\ntype = "LinUBC"', "policies.0: unknown policy type 'LinUBC'"),
        ('[[policies]]\nname = "a"\ntype = "LinUCB"\nparams = { alhpa = 1 }', "LinUCB has no parameter 'alhpa'"),
        ('[[policies]]\nname = "h"\ntype = "HybridLinUCB"\nparams = { arm_l3 = 1 }',
         "HybridLinUCB has no parameter 'arm_l3'"),
        ("horizon = 5000\nlaunch_step = 5000", "launch_step (5000) must be < horizon (5000)"),
        ('[world.markets.us]\nshare = 0.5\nprice_tier = "high"', "world.markets: market shares must"),
        ('[world.markets.us]\nshare = 1.0\nprice_tier = "high"', "catalog: product 'duo' is sold in unknown markets"),
        ('[world.markets.us]\nshare = 1.0\nprice_tier = "posh"', "world.markets.us.price_tier"),
        ("horizon = 1500", "offline_eval needs at least 100 decisions"),
        ('[[policies]]\nname = "a"\ntype = "oracle"\n[[policies]]\nname = "a"\ntype = "oracle"', "duplicated: ['a']"),
        ("[world.population]\nplans_others = { free = 0.5, premium_plus = 0.5 }", "names 'premium_plus'"),
        ('reward = "profit"', "reward: Input should be 'conversion' or 'value'"),
        ("[catalog]\nnew_plan = { name = \"x\", price = 0 }", "catalog.new_plan.price"),
        # non-finite numbers that used to run and report NaN regret, or crash with a traceback
        ("[world.drift]\nstrength = inf", "world.drift.strength: Input should be a finite number"),
        ("[world.drift]\nstrength = nan", "world.drift.strength: Input should be a finite number"),
        ("[world.drift]\ndirection = { family = nan }", "world.drift.direction: must be finite numbers"),
        ("[world]\nevents_per_day = inf", "world.events_per_day: Input should be a finite number"),
        ("[world.delay]\nmean_days = inf", "world.delay.mean_days: Input should be a finite number"),
        ("[world.delay]\nattribution_window_days = 1e300", "world.delay.attribution_window_days"),
        # a clock that leaves the timestamp range (a traceback from the decision log or pandas before)
        ("[world]\nevents_per_day = 1e-9", "run past 2262-01-01, the end of the simulation clock"),
        ("[world]\nstart = 9999-12-31T00:00:00Z", "world.start: must lie between 1678-01-01 and 2262-01-01"),
        ("[world]\nstart = 1000-01-01T00:00:00Z", "world.start: must lie between"),
        # a policy's decision log is logs/<name>/: ".." wrote it outside logs/, "logging_uniform" was silently
        # replaced by the off-policy logging run's
        ('[[policies]]\nname = ".."\ntype = "UniformRandom"', "policies.0.name: String should match pattern"),
        ('[[policies]]\nname = "."\ntype = "UniformRandom"', "policies.0.name: String should match pattern"),
        ('[[policies]]\nname = "logging_uniform"\ntype = "LinUCB"',
         "policies: the name 'logging_uniform' is the off-policy logging run's"),
        # used to fail with offline_eval's ValueError (a traceback in the CLI) after the whole simulation had run
        ('[offline_eval]\nestimators = ["IPS", "DR", "IPS"]', "offline_eval.estimators: each estimator once, "
         "duplicated: ['IPS']"),
        # the logging run is seeded with seed + 1: the largest seed used to fail as "policies.0.params"
        ("seed = 18446744073709551615", "seed: Input should be less than or equal to 18446744073709551614"),
    ],
)
def test_validation_errors_are_one_line_naming_the_field(tmp_path, text, expected):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(p)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{p}: ")
    assert expected in message


@pytest.mark.parametrize("field", ["horizon", "seed", "batch_size", "launch_step"])
def test_a_boolean_is_not_a_count(tmp_path, field):
    """JSON/YAML ``true`` used to be read as 1 (``horizon: true`` ran one event, then complained about offline_eval)."""
    p = tmp_path / "bad.json"
    p.write_text(json.dumps({"horizon": 3000, field: True}))
    with pytest.raises(ConfigError, match=f"{field}: must be an integer, got a boolean"):
        load_config(p)


@pytest.mark.parametrize(
    ("products", "student_share", "expected"),
    [
        ([{"name": "a", "price": 5, "markets": ["us"]}], 0.12,
         "nothing is on sale to users who are not verified students in market 'gb'"),
        ([{"name": "s", "price": 5, "student_only": True}], 0.12,
         "nothing is on sale to users who are not verified students in market 'us'"),
        ([{"name": "s", "price": 5, "student_only": True}], 1.0, None),  # everyone is a verified student
    ],
)
def test_every_user_has_an_offer_or_the_config_says_where_not(products, student_share, expected):
    """These configs validated, then the world failed with a bare ValueError (a traceback in the CLI)."""
    from bandit.simulation import UpsellWorld

    raw = {"horizon": 3000, "catalog": {"new_plan": None, "products": products},
           "world": {"markets": {"us": {"share": 0.5, "price_tier": "high"}, "gb": {"share": 0.5, "price_tier": "mid"}},
                     "population": {"student_share": student_share, "plans_students": {"free": 1.0},
                                    "plans_others": {"free": 1.0}},
                     "drift": {"direction": {}}}}
    if expected is None:
        cfg = SimulationConfig.model_validate(raw)
        episode = UpsellWorld(cfg.world, cfg.catalog.build(), seed=0).episode(500)
        assert episode.eligible.any(axis=1).all()
        return
    with pytest.raises(ValueError, match=expected):
        SimulationConfig.model_validate(raw)


def test_the_largest_seed_and_the_clock_edges_are_accepted():
    base = {"horizon": 3000, "offline_eval": {"enabled": False}}
    assert SimulationConfig.model_validate({**base, "seed": 2**64 - 2}).seed == 2**64 - 2
    late = SimulationConfig.model_validate({**base, "world": {"start": "2261-12-30T00:00:00Z",
                                                             "events_per_day": 1e6}})
    assert late.world.start.year == 2261


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("bad.toml", "horizon = = 3", "not valid TOML"),
        ("bad.json", "{horizon: 3", "not valid JSON"),
        ("bad.yaml", "horizon: [1, 2", "not valid YAML"),
        ("bad.ini", "horizon=3", "unknown config format '.ini'"),
        ("list.json", "[1, 2]", "top level must be a table/mapping"),
        # a key given twice: JSON and YAML silently kept the last one (TOML refuses it itself)
        ("dup.json", '{"horizon": 5000, "world": {"events_per_day": 10, "events_per_day": 1000}}',
         "not valid JSON: the key 'events_per_day' is given twice in one mapping"),
        ("dup.yaml", "horizon: 5000\nbatch_size: 100\nhorizon: 3000\n",
         "not valid YAML: the key 'horizon' is given twice in one mapping \\(line 3"),
    ],
)
def test_unreadable_files(tmp_path, name, content, expected):
    if name.endswith(".yaml"):
        pytest.importorskip("yaml")
    p = tmp_path / name
    p.write_text(content)
    with pytest.raises(ConfigError, match=expected) as info:
        load_config(p)
    assert "\n" not in str(info.value)


def test_an_oversized_config_is_refused_before_it_is_read(tmp_path):
    """A config file was read whole whatever its size (or its suffix) before anything was checked."""
    from bandit.simulation.config import MAX_CONFIG_BYTES

    big = tmp_path / "big.toml"
    with big.open("wb") as f:
        f.truncate(50 * MAX_CONFIG_BYTES)  # sparse: costs no disk
    with pytest.raises(ConfigError, match=f"big.toml: larger than {MAX_CONFIG_BYTES:,} bytes"):
        load_config(big)
    at_limit = tmp_path / "ok.toml"
    at_limit.write_text("horizon = 3000\n" + "#" * (MAX_CONFIG_BYTES - 16) + "\n")
    assert at_limit.stat().st_size == MAX_CONFIG_BYTES and load_config(at_limit).horizon == 3000


def test_yaml_anchors_and_merge_keys_still_work(tmp_path):
    pytest.importorskip("yaml")
    p = tmp_path / "merge.yaml"
    p.write_text("horizon: 3000\npolicies:\n  - &p {name: a, type: LinUCB, params: {alpha: 0.3}}\n  - <<: *p\n    name: b\n")
    cfg = load_config(p)
    assert [(q.name, q.type, q.params) for q in cfg.policies] == [("a", "LinUCB", {"alpha": 0.3}),
                                                                  ("b", "LinUCB", {"alpha": 0.3})]


def test_missing_path_and_directory(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="not a file"):
        load_config(tmp_path)


def test_several_errors_are_counted(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text(json.dumps({"horizon": 0, "batch_size": 0, "seed": -1}))
    with pytest.raises(ConfigError, match=r"\(and 2 more problems\)"):
        load_config(p)


def test_the_documented_toml_example_is_valid_and_builds_a_hybrid_policy():
    import inspect
    import textwrap
    import tomllib

    import bandit.simulation.config as config_module

    doc = inspect.getdoc(config_module)
    example = textwrap.dedent(doc.split("A TOML example::", 1)[1].split("Errors raise", 1)[0])
    cfg = SimulationConfig.model_validate(tomllib.loads(example))
    hybrid = next(p for p in cfg.policies if p.type == "HybridLinUCB")
    assert hybrid.params == {"alpha": 0.5, "arm_l2": 1.0}
    assert cfg.launch_step == 20000 and cfg.catalog.new_plan is not None
