"""The upsell-bandit command line: --help everywhere, one-line errors with exit 2, simulate, evaluate and demo."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

import numpy as np
import pandas as pd
import pytest

import bandit
from bandit.cli import main
from bandit.simulation.world import UpsellWorld

SMALL = """
seed = 1
horizon = 2400
batch_size = 200
launch_step = 1200

[world]
events_per_day = 1000

[[policies]]
name = "uniform"
type = "UniformRandom"

[[policies]]
name = "linucb"
type = "LinUCB"
params = { alpha = 0.3 }

[output]
progress = false
share_window = 200
"""


def _one_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


@pytest.mark.parametrize("argv", [["--help"], ["simulate", "--help"], ["evaluate", "--help"], ["demo", "--help"]])
def test_help_everywhere(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: upsell-bandit")
    expected = {"--help": "simulate", "simulate": "--config", "evaluate": "--policy", "demo": "--quick"}[argv[0]]
    assert expected in out


def test_console_script_is_declared_and_runs():
    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    assert scripts.get("upsell-bandit") == "bandit.cli:main"
    proc = subprocess.run([sys.executable, "-m", "bandit.cli", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "demo" in proc.stdout


def test_missing_config_is_one_line_exit_2(tmp_path, capsys):
    assert main(["simulate", "--config", str(tmp_path / "nope.toml"), "--out", str(tmp_path / "o")]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("upsell-bandit simulate: error:") and "config file not found" in line
    assert not (tmp_path / "o").exists()


def test_invalid_config_is_one_line_naming_the_field(tmp_path, capsys):
    cfg = tmp_path / "bad.json"
    cfg.write_text('{"horizon": 100, "batch_size": -3}')
    assert main(["simulate", "--config", str(cfg), "--out", str(tmp_path / "o")]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "batch_size" in line and str(cfg) in line


def test_usage_errors_are_one_line_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["simulate", "--out", "x"])
    assert info.value.code == 2
    line = _one_line(capsys.readouterr().err)
    assert "--config" in line and "--help" in line


def test_out_that_is_a_file(tmp_path, capsys):
    cfg = tmp_path / "ok.toml"
    cfg.write_text(SMALL)
    target = tmp_path / "file.txt"
    target.write_text("x")
    assert main(["simulate", "--config", str(cfg), "--out", str(target)]) == 2
    assert "not a directory" in _one_line(capsys.readouterr().err)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    root = tmp_path_factory.mktemp("sim")
    cfg = root / "sim.toml"
    cfg.write_text(SMALL)
    assert main(["simulate", "--config", str(cfg), "--out", str(root / "out"), "--quiet"]) == 0
    return root / "out"


def test_simulate_writes_report_plots_and_logs(simulated):
    assert (simulated / "summary.md").is_file()
    assert (simulated / "plots" / "cumulative_regret.png").stat().st_size > 0
    assert (simulated / "plots" / "new_plan_uptake.png").is_file()
    summary = pd.read_csv(simulated / "summary.csv")
    assert list(summary["policy"]) == ["uniform", "linucb"]
    assert (simulated / "logs" / "logging_uniform" / "decisions").is_dir()


def test_evaluate_saved_policies_on_simulated_logs(simulated, tmp_path, capsys):
    world = UpsellWorld(seed=1)
    d = world.featurizer.n_features
    ep = world.episode(3000)
    rng = np.random.default_rng(0)
    arms = rng.integers(0, 4, 3000)
    policy = bandit.LinUCB(world.arms(include_new=False), n_features=d, alpha=0.1, seed=0)
    policy.update_batch(ep.X, arms, (ep.uniforms[np.arange(3000), arms] < ep.probability[np.arange(3000), arms]) * 1.0)
    path = policy.save(tmp_path / "linucb.policy")
    logs = simulated / "logs" / "logging_uniform" / "decisions"
    out = tmp_path / "ope"
    rc = main(["evaluate", "--logs", str(logs), "--policy", f"fitted={path}", "--policy", "uniform", "--out", str(out),
               "--reward-column", "revenue", "--estimators", "SNIPS,DR"])
    assert rc == 0
    table = pd.read_csv(out / "ope.csv")
    assert set(table["policy"]) == {"fitted", "uniform"} and set(table["estimator"]) == {"SNIPS", "DR"}
    assert (table["ci_low"] <= table["value"]).all() and (table["value"] <= table["ci_high"]).all()
    # uniform on uniform logs: the estimate is the logged mean revenue
    logged = pd.read_parquet(logs)["revenue"].dropna()
    snips = table.set_index(["policy", "estimator"]).loc[("uniform", "SNIPS"), "value"]
    assert snips == pytest.approx(logged.mean(), rel=1e-9)
    assert (out / "ope.md").read_text().startswith("# Off-policy evaluation")
    capsys.readouterr()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--logs", "{tmp}/missing.parquet", "--policy", "uniform"], "does not exist"),
        (["--logs", "{logs}", "--policy", "{tmp}/nope.policy"], "no policy file"),
        (["--logs", "{logs}", "--policy", "uniform", "--estimators", "IPS,MAGIC"], "--estimators"),
        (["--logs", "{logs}", "--policy", "uniform", "--reward-column", "profit"], "--reward-column 'profit'"),
        (["--logs", "{tmp}/garbage.parquet", "--policy", "uniform"], "not a readable Parquet"),
        (["--logs", "{logs}", "--policy", "{tmp}/small.policy"], "features"),
    ],
)
def test_evaluate_bad_input_is_one_line_exit_2(simulated, tmp_path, capsys, args, expected):
    (tmp_path / "garbage.parquet").write_text("not parquet")
    bandit.LinUCB(["individual", "duo"], n_features=3, seed=0).save(tmp_path / "small.policy")
    logs = simulated / "logs" / "linucb" / "decisions"
    argv = ["evaluate", *(a.format(tmp=tmp_path, logs=logs) for a in args), "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    line = [ln for ln in err.splitlines() if "error" in ln]
    assert len(line) == 1 and "Traceback" not in err
    assert expected in line[0]


def test_demo_quick_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--quiet", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"report: {out / 'demo.md'}" in printed
    report = (out / "demo.md").read_text()
    for step in ("**Logging**", "**Offline evaluation**", "**Pick**", "**Roll-out**", "**New plan**"):
        assert step in report
    for png in ("cumulative_regret", "arm_share", "new_plan_uptake", "ope_vs_truth"):
        assert (out / "plots" / f"{png}.png").stat().st_size > 0
    summary = pd.read_csv(out / "summary.csv").set_index("policy")
    assert summary.loc["uniform", "regret"] > summary.drop(index="uniform")["regret"].max()
    assert summary.drop(index="uniform")["ope_value"].notna().all()
    # the launch compares disjoint and hybrid policies: cost after the launch, and the hybrids' first guess
    disjoint, hybrid = ["linucb", "linear_ts", "epsilon_greedy"], ["hybrid_linucb", "hybrid_linear_ts"]
    assert set(disjoint + hybrid + ["uniform"]) == set(summary.index)
    assert (summary["regret_per_event_after_launch"] > 0).all()
    assert (summary.loc[hybrid, "new_plan_first_guess_rmse"] > 0).all()
    assert summary.loc[disjoint + ["uniform"], "new_plan_first_guess_rmse"].isna().all()
    assert "regret_per_event_after_launch" in report and "hybrid_linucb" in report and "guesses 0" in report
    assert "first guess of its conversion before any impression" in printed
