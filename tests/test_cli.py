"""The upsell-bandit command line: --help everywhere, one-line errors with exit 2, simulate, evaluate and demo."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
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


@pytest.mark.parametrize("command", ["simulate", "evaluate", "demo", "report", "export", "serve"])
def test_help_shows_no_escaped_percent(command, capsys):
    # argparse %-formats only the arguments' help, not a description: "95%%" there was printed as is
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "%%" not in capsys.readouterr().out


def test_console_script_is_declared_and_runs():
    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    assert scripts.get("upsell-bandit") == "bandit.cli:main"
    proc = subprocess.run([sys.executable, "-m", "bandit.cli", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "demo" in proc.stdout


def test_missing_config_is_one_line_exit_2(tmp_path, capsys):
    assert main(["simulate", "--config", str(tmp_path / "nope.toml"), "--out", str(tmp_path / "o")]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith(f"upsell-bandit simulate: error: --config {tmp_path / 'nope.toml'}: config file not found")
    assert not (tmp_path / "o").exists()


def test_invalid_config_is_one_line_naming_the_field(tmp_path, capsys):
    cfg = tmp_path / "bad.json"
    cfg.write_text('{"horizon": 100, "batch_size": -3}')
    assert main(["simulate", "--config", str(cfg), "--out", str(tmp_path / "o")]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith(f"upsell-bandit simulate: error: --config {cfg}:") and "batch_size" in line


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


def test_out_that_cannot_be_created_is_one_line_naming_it(tmp_path, capsys, monkeypatch):
    """Its parent is writable, but the directory itself cannot be made (a name longer than the file system allows;
    likewise a path under /proc): one line naming --out, nothing left behind -- and before the run (it was found
    only when the results were written, after the whole simulation)."""
    import bandit.simulation.runner

    def never(*args, **kwargs):
        raise AssertionError("the simulation ran before --out was found unusable")

    monkeypatch.setattr(bandit.simulation.runner, "run_simulation", never)
    cfg = tmp_path / "ok.toml"
    cfg.write_text(SMALL)
    target = tmp_path / "new" / ("x" * 300)
    assert main(["simulate", "--config", str(cfg), "--out", str(target)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert f"--out {target}: cannot be created" in line
    assert not (tmp_path / "new").exists()


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    root = tmp_path_factory.mktemp("sim")
    cfg = root / "sim.toml"
    cfg.write_text(SMALL)
    import contextlib
    import io

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["simulate", "--config", str(cfg), "--out", str(root / "out"), "--quiet"]) == 0
    (root / "stdout.txt").write_text(printed.getvalue())
    return root / "out"


def test_simulate_writes_report_plots_and_logs(simulated):
    assert (simulated / "summary.md").is_file()
    assert (simulated / "plots" / "cumulative_regret.png").stat().st_size > 0
    assert (simulated / "plots" / "new_plan_uptake.png").is_file()
    summary = pd.read_csv(simulated / "summary.csv")
    assert list(summary["policy"]) == ["uniform", "linucb"]
    assert (simulated / "logs" / "logging_uniform" / "decisions").is_dir()
    # the printed table says n/a for a policy that never learned the plan, as summary.md does (it printed NaN)
    uniform = next(ln for ln in (simulated.parent / "stdout.txt").read_text().splitlines() if "uniform" in ln)
    assert "n/a" in uniform and "NaN" not in uniform
    assert "n/a" in next(ln for ln in (simulated / "summary.md").read_text().splitlines() if ln.startswith("| uniform"))


def test_evaluate_saved_policies_on_simulated_logs(simulated, tmp_path, capsys):
    from bandit.attribution import join_outcomes

    world = UpsellWorld(seed=1)
    d = world.featurizer.n_features
    ep = world.episode(3000)
    rng = np.random.default_rng(0)
    arms = rng.integers(0, 4, 3000)
    # the logs list every world arm (the new plan launched mid-run): the policy knows them all
    policy = bandit.LinUCB(world.arms(include_new=True), n_features=d, alpha=0.1, seed=0)
    policy.update_batch(ep.X, arms, (ep.uniforms[np.arange(3000), arms] < ep.probability[np.arange(3000), arms]) * 1.0)
    path = policy.save(tmp_path / "linucb.policy")
    root = simulated / "logs" / "logging_uniform"
    out = tmp_path / "ope"
    rc = main(["evaluate", "--logs", str(root / "decisions"), "--outcomes", str(root / "outcomes.parquet"),
               "--attribution-window", "1D", "--policy", f"fitted={path}", "--policy", "uniform", "--out", str(out),
               "--reward-column", "revenue", "--estimators", "SNIPS,DR"])
    assert rc == 0
    table = pd.read_csv(out / "ope.csv")
    assert set(table["policy"]) == {"fitted", "uniform"} and set(table["estimator"]) == {"SNIPS", "DR"}
    assert (table["ci_low"] <= table["value"]).all() and (table["value"] <= table["ci_high"]).all()
    # uniform on uniform logs: the estimate is the mean revenue of the decisions with a final outcome
    outcomes = pd.read_parquet(root / "outcomes.parquet")
    outcomes["reward"] = outcomes["revenue"]
    decisions = pd.read_parquet(root / "decisions")
    now = max(decisions["timestamp"].max(), outcomes["timestamp"].max())  # the CLI's default now
    joined = join_outcomes(root / "decisions", outcomes, "1D", now=now)
    final = joined["timestamp"] + pd.Timedelta("1D") < now
    snips = table.set_index(["policy", "estimator"]).loc[("uniform", "SNIPS"), "value"]
    assert snips == pytest.approx(joined.loc[final, "reward"].mean(), rel=1e-9)
    assert (out / "ope.md").read_text().startswith("# Off-policy evaluation")
    capsys.readouterr()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--logs", "{tmp}/missing.parquet", "--policy", "uniform"], "--logs {tmp}/missing.parquet: does not exist"),
        (["--logs", "{logs}", "--policy", "{tmp}/nope.policy"], "no policy file"),
        (["--logs", "{logs}", "--policy", "uniform", "--estimators", "IPS,MAGIC"], "--estimators"),
        (["--logs", "{logs}", "--policy", "uniform", "--reward-column", "profit"], "missing column 'profit' (named by --reward-column)"),
        (["--logs", "{logs}", "--policy", "uniform", "--reward-column", "timestamp"], "column 'timestamp' identifies"),
        (["--logs", "{logs}", "--policy", "uniform", "--reward-column", "event_id"], "column 'event_id' identifies"),
        (["--logs", "{tmp}/garbage.parquet", "--policy", "uniform"], "not a readable Parquet"),
        (["--logs", "{logs}/../..", "--policy", "uniform"], "holds decision logs in subdirectories, pass one, e.g."),
        (["--logs", "{logs}", "--policy", "{tmp}/small.policy"], "features"),
    ],
)
def test_evaluate_bad_input_is_one_line_exit_2(simulated, tmp_path, capsys, args, expected):
    (tmp_path / "garbage.parquet").write_text("not parquet")
    bandit.LinUCB(["individual", "duo"], n_features=3, seed=0).save(tmp_path / "small.policy")
    logs = simulated / "logs" / "linucb" / "decisions"
    argv = ["evaluate", *(a.format(tmp=tmp_path, logs=logs) for a in args), "--out", str(tmp_path / "o"),
            "--outcomes", str(logs.parent / "outcomes.parquet"), "--attribution-window", "1D"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    line = [ln for ln in err.splitlines() if "error" in ln]
    assert len(line) == 1 and "Traceback" not in err
    assert expected.format(tmp=tmp_path) in line[0]
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------------------------------------------
# evaluate on a DecisionLog whose rewards are null until the outcomes are joined (the README's workflow)
# ----------------------------------------------------------------------------------------------------------------

START = pd.Timestamp("2026-11-01", tz="UTC")


@pytest.fixture(scope="module")
def readme_logs(tmp_path_factory):
    """A DecisionLog (reward null) and a delayed-outcomes Parquet file, as the README writes them."""
    root = tmp_path_factory.mktemp("readme")
    rng = np.random.default_rng(0)
    logging_policy = bandit.UniformRandom(["individual", "duo", "family"], n_features=3, seed=1)
    conversions = []
    with bandit.DecisionLog(root / "logs", policy=logging_policy) as log:
        for i in range(600):
            x = rng.normal(size=3)
            d = logging_policy.choose(x, event_id=f"req-{i}")
            ts = START + pd.Timedelta(minutes=10 * i)  # 600 offers over ~4.2 days
            log.append(d, x, timestamp=ts)
            if rng.random() < 1 / (1 + np.exp(1.0 - x[d.index])):
                conversions.append((d.event_id, ts + pd.Timedelta(hours=6), 1.0))
    outcomes = pd.DataFrame(conversions, columns=["event_id", "timestamp", "reward"])
    outcomes.to_parquet(root / "outcomes.parquet")
    policy = bandit.LinUCB(["individual", "duo", "family"], n_features=3, seed=0)
    policy.save(root / "candidate.policy")
    return root


def _evaluate_argv(root, out, *extra):
    return ["evaluate", "--logs", str(root / "logs"), "--policy", f"candidate={root / 'candidate.policy'}",
            "--policy", "uniform", "--out", str(out), "--estimators", "SNIPS", *extra]


def test_evaluate_joins_delayed_outcomes_instead_of_crashing(readme_logs, tmp_path, capsys):
    """Regression: the README's logs (reward null) crashed with 'cannot reshape array of size 0'."""
    from bandit.attribution import join_outcomes

    root = readme_logs
    assert main(_evaluate_argv(root, tmp_path / "a")) == 2
    line = _one_line(capsys.readouterr().err)
    assert "--logs" in line and "--outcomes" in line and "reshape" not in line
    assert not (tmp_path / "a").exists()

    out = tmp_path / "b"
    argv = _evaluate_argv(root, out, "--outcomes", str(root / "outcomes.parquet"), "--attribution-window", "1D")
    assert main(argv) == 0
    captured = capsys.readouterr()
    # the last day of decisions is still inside its window at the default now: left out, with a note -- also the
    # ones whose conversion already arrived, or the estimate would be biased upwards
    outcomes = pd.read_parquet(root / "outcomes.parquet")
    now = max(outcomes["timestamp"].max(), START + pd.Timedelta(minutes=10 * 599))
    joined = join_outcomes(root / "logs", outcomes, "1D", now=now)
    final = (joined["timestamp"] + pd.Timedelta("1D") < now).to_numpy()
    early = int((~final & joined["reward"].notna().to_numpy()).sum())
    assert 100 < (~final).sum() < 200 and early > 5
    assert (f"{(~final).sum():,} of 600 decisions are still inside their 1D attribution window" in captured.err
            and f"including {early:,} that already have an outcome" in captured.err)
    table = pd.read_csv(out / "ope.csv").set_index("policy")
    # uniform on uniform logs: SNIPS is the mean joined reward of the final rows -- the attribution rules exactly
    assert table.loc["uniform", "value"] == pytest.approx(joined.loc[final, "reward"].mean(), rel=1e-12)
    assert table.loc["uniform", "value"] < joined["reward"].dropna().mean()  # what keeping early converters gives
    assert table.loc["uniform", "n"] == final.sum()
    # an explicit --now decides what is final
    later = _evaluate_argv(root, tmp_path / "c", "--outcomes", str(root / "outcomes.parquet"),
                           "--attribution-window", "1D", "--now", "2026-12-01")
    assert main(later) == 0
    assert pd.read_csv(tmp_path / "c" / "ope.csv").set_index("policy").loc["uniform", "n"] == 600
    assert "still inside" not in capsys.readouterr().err


def _bad_outcomes(root, tmp, kind):
    outcomes = pd.read_parquet(root / "outcomes.parquet")
    path = tmp / f"outcomes-{kind}.parquet"
    if kind == "no_reward":
        outcomes.drop(columns=["reward"]).to_parquet(path)
    elif kind in ("inf", "nan"):
        outcomes.loc[3, "reward"] = np.inf if kind == "inf" else np.nan
        outcomes.to_parquet(path)
    elif kind == "zero_rows":
        outcomes.iloc[:0].to_parquet(path)
    elif kind == "empty_file":
        path.write_bytes(b"")
    elif kind == "csv":
        path = tmp / "outcomes.csv"
        outcomes.to_csv(path, index=False)
    elif kind == "foreign_ids":
        outcomes["event_id"] = "other-" + outcomes["event_id"]
        outcomes.to_parquet(path)
    elif kind == "numeric_timestamps":
        outcomes["timestamp"] = np.arange(len(outcomes))
        outcomes.to_parquet(path)
    return path


def _bad_logs(root, tmp, kind):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (part,) = (root / "logs").glob("part-*.parquet")
    table = pq.read_table(part)
    path = tmp / f"logs-{kind}.parquet"
    if kind in ("propensity_0", "propensity_1.5"):
        df = table.to_pandas()
        df.loc[5, "propensity"] = 0.0 if kind == "propensity_0" else 1.5
        table = pa.Table.from_pandas(df, schema=table.schema, preserve_index=False)
    elif kind == "no_context":
        table = table.drop(["context"])
    elif kind == "zero_rows":
        table = table.slice(0, 0)
    pq.write_table(table, path)
    return path


@pytest.mark.parametrize(
    ("flag", "kind", "expected"),
    [
        ("--outcomes", "no_reward", "--outcomes {path}: missing column 'reward'"),
        ("--outcomes", "inf", "--outcomes {path}: column 'reward' has 1 NaN or infinite values"),
        ("--outcomes", "nan", "--outcomes {path}: column 'reward' has 1 NaN or infinite values"),
        ("--outcomes", "zero_rows", "--outcomes {path}: holds no outcomes"),
        ("--outcomes", "empty_file", "--outcomes {path}: empty file, expected Parquet"),
        ("--outcomes", "csv", "--outcomes {path}: not a readable Parquet file"),
        ("--outcomes", "numeric_timestamps", "--outcomes {path}: column 'timestamp' holds numbers"),
        ("--outcomes", "missing", "--outcomes {path}: does not exist"),
        ("--outcomes", "foreign_ids", "--outcomes {path}: none of its"),
        ("--logs", "propensity_0", "--logs {path}: propensity must lie in (0, 1]"),
        ("--logs", "propensity_1.5", "--logs {path}: propensity must lie in (0, 1]"),
        ("--logs", "no_context", "--logs {path}: it is not a decision-log part (it has no column(s) ['context'])"),
        ("--logs", "zero_rows", "--logs {path}: holds no decisions"),
        ("--logs", "missing", "--logs {path}: does not exist"),
    ],
)
def test_evaluate_bad_data_is_one_line_naming_the_flag(readme_logs, tmp_path, capsys, flag, kind, expected):
    root = readme_logs
    if kind == "missing":
        path = tmp_path / "nowhere.parquet"
    else:
        path = (_bad_outcomes if flag == "--outcomes" else _bad_logs)(root, tmp_path, kind)
    argv = _evaluate_argv(root, tmp_path / "o", "--outcomes", str(root / "outcomes.parquet"),
                          "--attribution-window", "1D")
    argv[argv.index(flag) + 1] = str(path)
    if kind.startswith("propensity"):  # quarantined by default (test_evaluate_quarantines_bad_log_rows)
        argv += ["--invalid-rows", "raise"]
    assert main(argv) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("upsell-bandit evaluate: error: " + expected.format(path=path)), line
    assert not (tmp_path / "o").exists()


def test_evaluate_quarantines_bad_log_rows(readme_logs, tmp_path, capsys):
    """A log row with propensity 0 is left out and noted (also with --outcomes), and the estimates are those of the
    log without it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = readme_logs
    path = _bad_logs(root, tmp_path, "propensity_0")
    clean = tmp_path / "clean.parquet"
    table = pq.read_table(path)
    pq.write_table(table.filter(pa.array(np.arange(table.num_rows) != 5)), clean)
    tables = {}
    for name, logs in (("bad", path), ("clean", clean)):
        argv = _evaluate_argv(root, tmp_path / name, "--outcomes", str(root / "outcomes.parquet"),
                              "--attribution-window", "1D")
        argv[argv.index("--logs") + 1] = str(logs)
        assert main(argv) == 0
        tables[name] = pd.read_csv(tmp_path / name / "ope.csv")
        err = capsys.readouterr().err
        assert ("note: quarantined 1 of" in err) == (name == "bad"), err
    assert "(propensity: 1, propensity_mismatch: 1; first: req-5)" in (tmp_path / "bad" / "ope.md").read_text()
    pd.testing.assert_frame_equal(tables["bad"], tables["clean"])


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--attribution-window", "1X"], "--attribution-window '1X': expected a positive duration"),
        (["--attribution-window", "1"], "--attribution-window '1': expected a positive duration"),
        (["--attribution-window=-2h"], "--attribution-window '-2h': expected a positive duration"),
        (["--attribution-window", "1D", "--now", "soon"], "--now 'soon': expected a timestamp"),
        (["--attribution-window", "1D", "--now", "2026-10-01"], "--now 2026-10-01T00:00:00+00:00: every decision"),
        ([], "--outcomes {root}/outcomes.parquet: needs --attribution-window"),
        (["--attribution-window", "1D", "--policy", "=x.policy"], "--policy '=x.policy': empty NAME"),
        (["--attribution-window", "1D", "--policy", "x="], "--policy 'x=': empty PATH"),
        (["--attribution-window", "1D", "--policy", "unifrom"], "--policy unifrom: no policy file at unifrom"),
        (["--attribution-window", "1D", "--policy", "{root}/logs"], "--policy {root}/logs: {root}/logs is not a file"),
        (["--attribution-window", "1D", "--policy", "{root}/outcomes.parquet"],
         "--policy {root}/outcomes.parquet: cannot load"),
        (["--attribution-window", "1D", "--estimators", ""], "--estimators '': expected a comma-separated list"),
        (["--attribution-window", "1D", "--reward-range", "1"], "--reward-range '1': expected LOW,HIGH"),
        (["--attribution-window", "1D", "--reward-range", "1,0"], "--reward-range '1,0': expected LOW,HIGH"),
        (["--attribution-window", "1D", "--reward-range", "0,inf"], "--reward-range '0,inf': expected LOW,HIGH"),
        (["--attribution-window", "1D", "--reward-range", "0,0.5"],
         "--reward-range 0,0.5: the rewards run from 0 to 1; give a range that holds every possible reward"),
    ],
)
def test_evaluate_bad_arguments_are_one_line_naming_the_flag(readme_logs, tmp_path, capsys, extra, expected):
    root = readme_logs
    argv = _evaluate_argv(root, tmp_path / "o", "--outcomes", str(root / "outcomes.parquet"),
                          *(a.format(root=root) for a in extra))
    assert main(argv) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("upsell-bandit evaluate: error: " + expected.format(root=root)), line
    assert not (tmp_path / "o").exists()


def test_evaluate_reward_range_reaches_every_estimator_and_clips_the_intervals(readme_logs, tmp_path, capsys):
    """--reward-range LOW,HIGH is every estimator's reward_range: the table equals offline_eval.evaluate with it (the
    intervals clipped to [0, 1], lifts to [-1, 1]), and ope.md states it."""
    from offline_eval import DR, SNIPS, LoggedData, evaluate

    out = tmp_path / "o"
    argv = _evaluate_argv(readme_logs, out, "--outcomes", str(readme_logs / "outcomes.parquet"),
                          "--attribution-window", "1D", "--estimators", "SNIPS,DR", "--reward-range", "0,1")
    assert main(argv) == 0
    capsys.readouterr()
    got = pd.read_csv(out / "ope.csv")
    assert "stated to lie in [0, 1] (--reward-range" in (out / "ope.md").read_text()
    assert (got.ci_low >= 0).all() and (got.ci_high <= 1).all()
    assert (got.lift_ci_low >= -1).all() and (got.lift_ci_high <= 1).all()
    # the same numbers as the library with reward_range on the same joined rows
    from bandit.attribution import join_outcomes

    outcomes = pd.read_parquet(readme_logs / "outcomes.parquet")
    now = max(outcomes["timestamp"].max(), START + pd.Timedelta(minutes=10 * 599))
    joined = join_outcomes(readme_logs / "logs", outcomes, "1D", now=now)
    joined = joined[(joined["timestamp"] + pd.Timedelta("1D") < now).to_numpy()].copy()
    joined["reward"] = joined["reward"].fillna(0.0)
    data = LoggedData.from_dataframe(joined, reward="reward", action_names=["individual", "duo", "family"])
    policies = {"candidate": bandit.load(readme_logs / "candidate.policy"),
                "uniform": bandit.UniformRandom(["individual", "duo", "family"], n_features=3)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = evaluate(data, policies, [SNIPS(reward_range=(0.0, 1.0)), DR(reward_range=(0.0, 1.0))])
    cols = ["value", "ci_low", "ci_high", "lift", "lift_ci_low", "lift_ci_high"]
    np.testing.assert_allclose(got[cols].to_numpy(), want[cols].to_numpy(), rtol=1e-6, atol=1e-9)


def test_window_and_now_without_outcomes_are_refused(readme_logs, tmp_path, capsys):
    argv = _evaluate_argv(readme_logs, tmp_path / "o", "--attribution-window", "1D")
    assert main(argv) == 2
    assert "--attribution-window applies to joined outcomes; pass --outcomes" in _one_line(capsys.readouterr().err)


def test_existing_out_is_refused_unless_force(readme_logs, tmp_path, capsys):
    root = readme_logs
    out = tmp_path / "report"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    join = ["--outcomes", str(root / "outcomes.parquet"), "--attribution-window", "1D", "--now", "2026-12-01"]
    assert main(_evaluate_argv(root, out, *join)) == 2
    assert f"--out {out}: already exists; pass --force" in _one_line(capsys.readouterr().err)
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]
    (out / "logs").mkdir()  # e.g. --out is the run directory that holds the logs being evaluated
    (out / "logs" / "part-0.parquet").write_text("input")
    assert main(_evaluate_argv(root, out, *join, "--force")) == 0
    assert sorted(p.name for p in out.iterdir()) == ["logs", "mine.txt", "ope.csv", "ope.md"]
    assert (out / "logs" / "part-0.parquet").read_text() == "input"


def test_simulate_refuses_existing_out_and_force_replaces_the_old_logs(tmp_path, capsys):
    cfg = tmp_path / "sim.toml"
    cfg.write_text(SMALL.replace("horizon = 2400", "horizon = 1600").replace("launch_step = 1200", "launch_step = 800"))
    out = tmp_path / "out"
    out.mkdir()
    stale = out / "logs" / "linucb" / "decisions" / "part-99999999-stale.parquet"
    stale.parent.mkdir(parents=True)
    stale.write_text("an earlier run's part file")
    argv = ["simulate", "--config", str(cfg), "--out", str(out), "--quiet", "--no-plots"]
    assert main(argv) == 2
    assert "already exists; pass --force" in _one_line(capsys.readouterr().err)
    assert stale.exists()
    assert main([*argv, "--force"]) == 0
    assert not stale.exists() and (out / "summary.md").is_file()
    capsys.readouterr()
    # an earlier run's tables and reports that this run does not write are gone too (they were kept: an ope.csv or
    # a demo's report.html next to a summary they do not describe); files of the user's own are kept
    earlier = ["ope.csv", "demo.md", "report.html", "rollout.csv"]
    for name in [*earlier, "my_notes.txt"]:
        (out / name).write_text("from an earlier run")
    cfg.write_text(cfg.read_text() + "\n[offline_eval]\nenabled = false\n")
    assert main([*argv, "--force"]) == 0
    assert not any((out / name).exists() for name in earlier)
    assert (out / "my_notes.txt").read_text() == "from an earlier run" and (out / "summary.md").is_file()
    capsys.readouterr()


def test_failed_write_leaves_no_output_directory(tmp_path, capsys, monkeypatch):
    from bandit.simulation.runner import SimulationResult

    def broken_save(self, out_dir, plots=None, logs=None):
        (tmp_path / "new" / "out").mkdir(parents=True, exist_ok=True)  # made by the CLI before writing
        (tmp_path / "new" / "out" / "summary.csv").write_text("half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(SimulationResult, "save", broken_save)
    cfg = tmp_path / "sim.toml"
    cfg.write_text(SMALL.replace("horizon = 2400", "horizon = 1600").replace("launch_step = 1200", "launch_step = 800"))
    assert main(["simulate", "--config", str(cfg), "--out", str(tmp_path / "new" / "out"), "--quiet"]) == 2
    assert "No space left on device" in _one_line(capsys.readouterr().err)
    assert not (tmp_path / "new").exists()  # the parent it created is gone too


def test_demo_refuses_existing_out(tmp_path, capsys):
    (tmp_path / "demo").mkdir()
    assert main(["demo", "--quick", "--quiet", "--out", str(tmp_path / "demo")]) == 2
    assert "--out" in _one_line(capsys.readouterr().err)


def test_evaluate_policy_without_a_logged_arm_names_the_flag_and_the_arms(simulated, tmp_path, capsys):
    """offline_eval matches a policy's arms to the logged ones by name; the CLI reports its error as one line."""
    world = UpsellWorld(seed=1)
    policy = bandit.LinUCB(world.arms(include_new=False), n_features=world.featurizer.n_features, seed=0)
    path = policy.save(tmp_path / "launch_day.policy")
    root = simulated / "logs" / "logging_uniform"
    argv = ["evaluate", "--logs", str(root / "decisions"), "--outcomes", str(root / "outcomes.parquet"),
            "--attribution-window", "1D", "--policy", f"old={path}", "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith(f"upsell-bandit evaluate: error: --policy old={path}: "), line
    assert "'basic'" in line and "'individual'" in line  # the missing arm and the logged ones
    assert not (tmp_path / "o").exists()


def test_evaluate_policy_with_an_unlogged_arm_it_would_offer_names_the_flag(readme_logs, tmp_path, capsys):
    """A policy that can offer an arm the logs never had cannot be scored: one line naming --policy and the arm."""
    policy = bandit.LinUCB(["individual", "duo", "family", "student"], n_features=3, seed=0)
    path = policy.save(tmp_path / "more.policy")
    argv = _evaluate_argv(readme_logs, tmp_path / "o", "--outcomes", str(readme_logs / "outcomes.parquet"),
                          "--attribution-window", "1D")
    argv[argv.index("--policy") + 1] = f"more={path}"
    assert main(argv) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith(f"upsell-bandit evaluate: error: --policy more={path}: "), line
    assert "'student'" in line
    assert not (tmp_path / "o").exists()


def test_demo_quick_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--quiet", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"rollout report: {out / 'report.html'}" in printed and f"the story:      {out / 'demo.md'}" in printed
    report = (out / "demo.md").read_text()
    for step in ("**Logging**", "**Offline evaluation**", "**Rollout decision**", "**Roll-out**", "**New plan**"):
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
    # the files demo.md and summary.md list are links relative to the report (they were paths from the cwd)
    for md, listed in (("demo.md", {"report.html", "summary.csv", "plots/arm_share.png", "logs"}),
                       ("summary.md", {"summary.csv", "plots/arm_share.png", "logs"})):
        targets = re.findall(r"\]\(([^)]+)\)", (out / md).read_text())
        assert listed <= set(targets), md
        assert all((out / target).exists() for target in targets), md
    assert "first guess of its conversion before any impression" in printed
    # the quick run has 4,000 offers after the launch and 2,000 roll-out offers before it: the story says so (it
    # claimed the first 10,000 offers after the launch and a 5,000-offer launch window)
    assert "offers after the launch who could be offered it" in report
    assert "of the first 4,000 offers after the launch who" in report
    assert "the regret over the first 2,000 offers after the launch" in report
    assert (summary["launch_window_offers"] == 2_000).all()


def test_demo_quick_ends_in_the_rollout_report(tmp_path, capsys):
    """The demo decides on the later logs and shows what the roll-out realised next to the report (seeded, quick)."""
    import json

    from offline_eval.report import DECISIONS

    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--quiet", "--seed", "0", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for name in ("report.html", "report.md", "report.json", "rollout.csv"):
        assert (out / name).stat().st_size > 0, name
    doc = json.loads((out / "report.json").read_text())
    decision = doc["decision"]
    assert decision in DECISIONS
    assert f"DECISION: {decision}" in printed and doc["reasons"][0] in printed
    assert (out / "report.md").read_text().startswith(f"# Rollout decision: {decision}")
    assert decision in (out / "report.html").read_text() and "**Rollout decision**" in (out / "demo.md").read_text()
    realised = pd.read_csv(out / "rollout.csv").set_index("policy")
    candidates = ["linucb", "linear_ts", "epsilon_greedy", "hybrid_linucb", "hybrid_linear_ts"]
    assert list(realised.index) == candidates
    for name in candidates:  # one console line per candidate, with its verdict
        (line,) = [ln for ln in printed.splitlines() if ln.strip().startswith(name + " ")]
        assert realised.loc[name, "verdict"] in line and "true lift" in line
    # the realised values are consistent with the report: the truth lies in the report's intervals
    shown = doc["simulation_truth"]["shown"]
    assert shown == (doc["recommended"] or realised["lift"].idxmax())
    row = realised.loc[shown]
    assert row["ci_low"] <= row["true_value"] <= row["ci_high"]
    assert (realised["lift_ci_low"] <= realised["true_lift"]).all() and (realised["true_lift"] <= realised["lift_ci_high"]).all()
    table = pd.DataFrame(doc["table"]).set_index(["policy", "metric"])
    np.testing.assert_allclose(realised["value"], [table.loc[(c, "revenue"), "value"] for c in candidates])
    right = doc["simulation_truth"]["decision_right"]
    assert right is None if decision == "NEED MORE DATA" else right in (True, False)
    # the catalog's ranges are stated (revenue up to the top price, 0/1 churn, cannibalised value up to the dearest
    # plan a conversion ends), so every interval lies inside them, and the story says so
    settings = doc["settings"]
    assert settings["reward_range"] == [0.0, 19.99]
    assert {g: v["value_range"] for g, v in settings["guardrails"].items()} == {
        "churn": [0.0, 1.0], "cannibalisation": [0.0, 16.99]}
    for metric, (lo, hi) in (("revenue", (0.0, 19.99)), ("churn", (0.0, 1.0)), ("cannibalisation", (0.0, 16.99))):
        part = table.xs(metric, level="metric")
        assert (part["ci_low"] >= lo).all() and (part["ci_high"] <= hi).all(), metric
    assert "revenue in [0, 19.99], churn in [0, 1], cannibalisation in [0, 16.99]" in (out / "demo.md").read_text()
    assert realised["online_value"].notna().all() and f"{row['online_value']:.3f} revenue per offer" in printed


def test_default_now_is_never_later_than_the_clock(tmp_path, capsys):
    """A future-dated outcome row (a clock bug) must not expire recent decisions to reward 0."""
    policy = bandit.UniformRandom(["individual", "duo"], n_features=1, seed=0)
    recent = pd.Timestamp.now(tz="UTC") - pd.Timedelta(hours=2)
    with bandit.DecisionLog(tmp_path / "logs", policy=policy) as log:
        for i in range(20):
            log.append(policy.choose([0.5], event_id=f"e{i}"), [0.5], timestamp=recent + pd.Timedelta(minutes=i))
    pd.DataFrame({"event_id": ["e0"], "timestamp": [pd.Timestamp("2099-01-01", tz="UTC")], "reward": [1.0]}).to_parquet(
        tmp_path / "outcomes.parquet")
    argv = ["evaluate", "--logs", str(tmp_path / "logs"), "--outcomes", str(tmp_path / "outcomes.parquet"),
            "--attribution-window", "1D", "--policy", "uniform", "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    assert "every decision is still inside its 1D attribution window" in _one_line(capsys.readouterr().err)
    assert not (tmp_path / "o").exists()


def _run_readme_command(subcommand, readme_logs, tmp_path, monkeypatch):
    """Run the README's ``upsell-bandit SUBCOMMAND`` block as written, in a folder holding the README's files."""
    import re
    import shlex
    import shutil
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)
    # the block that runs on the README's own files (other sections show the command on other inputs)
    (command,) = [b for b in blocks if f"upsell-bandit {subcommand} --logs logs/" in b]
    argv = shlex.split(command.replace("\\\n", " "))
    assert argv[0] == "upsell-bandit"
    shutil.copytree(readme_logs / "logs", tmp_path / "logs")
    shutil.copy(readme_logs / "outcomes.parquet", tmp_path / "outcomes.parquet")
    shutil.copy(readme_logs / "candidate.policy", tmp_path / "policy.zip")
    monkeypatch.chdir(tmp_path)
    assert main(argv[1:]) == 0


def test_the_readme_evaluate_command_runs_as_written(readme_logs, tmp_path, monkeypatch, capsys):
    _run_readme_command("evaluate", readme_logs, tmp_path, monkeypatch)
    assert set(pd.read_csv(tmp_path / "ope-report" / "ope.csv")["policy"]) == {"candidate", "uniform"}
    capsys.readouterr()


def test_the_readme_report_command_runs_as_written(readme_logs, tmp_path, monkeypatch, capsys):
    _run_readme_command("report", readme_logs, tmp_path, monkeypatch)
    report = json.loads((tmp_path / "rollout" / "report.json").read_text())
    assert report["decision"] in ("GO", "NO-GO", "NEED MORE DATA")
    assert (tmp_path / "rollout" / "report.html").stat().st_size > 10_000
    capsys.readouterr()


def test_logs_are_read_by_the_one_decision_log_reader(readme_logs, tmp_path, capsys):
    """A stray file in the log directory is skipped with a note (offline_eval.schema.read_log), not a crash."""
    import shutil

    shutil.copytree(readme_logs / "logs", tmp_path / "logs")
    shutil.copy(readme_logs / "outcomes.parquet", tmp_path / "logs" / "notes.parquet")
    argv = _evaluate_argv(readme_logs, tmp_path / "o", "--outcomes", str(readme_logs / "outcomes.parquet"),
                          "--attribution-window", "1D", "--now", "2026-12-01")
    argv[argv.index("--logs") + 1] = str(tmp_path / "logs")
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "note: skipping" in err and "notes.parquet" in err
    assert pd.read_csv(tmp_path / "o" / "ope.csv").set_index("policy").loc["uniform", "n"] == 600


def test_demo_bad_seed_names_the_flag(tmp_path, capsys):
    assert main(["demo", "--quick", "--quiet", "--seed", "-3", "--out", str(tmp_path / "d")]) == 2
    assert _one_line(capsys.readouterr().err) == "upsell-bandit demo: error: --seed -3: expected a non-negative integer"
    assert not (tmp_path / "d").exists()


def test_demo_seed_too_large_names_the_flag(tmp_path, capsys):
    """A seed past 2**64 - 2 used to end in a traceback from a policy's seed check."""
    assert main(["demo", "--quick", "--quiet", "--seed", str(2**64 - 1), "--out", str(tmp_path / "d")]) == 2
    assert _one_line(capsys.readouterr().err) == (
        f"upsell-bandit demo: error: --seed {2**64 - 1}: expected at most {2**64 - 2} (2**64 - 2)")
    assert not (tmp_path / "d").exists()


def test_simulate_refuses_a_run_larger_than_memory_before_running_it(tmp_path, capsys, monkeypatch):
    """A huge horizon used to run for hours and die of memory with a traceback; it is refused up front, naming
    horizon. A MemoryError that happens anyway is one line, exit 2."""
    import bandit.simulation.runner as runner

    cfg = tmp_path / "big.toml"
    cfg.write_text("horizon = 10000000\n")
    monkeypatch.setattr(runner, "_available_memory", lambda: 8 * 10**9)
    assert main(["simulate", "--config", str(cfg), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith(f"upsell-bandit simulate: error: --config {cfg}: horizon: 10,000,000 events with 4 policy "
                           "runs") and "36.0 GB of memory, but 8.0 GB are available" in line
    assert not (tmp_path / "o").exists()

    def out_of_memory(config, progress=None):
        raise MemoryError("realloc of size 33554432 failed")

    monkeypatch.setattr(runner, "run_simulation", out_of_memory)
    cfg.write_text(SMALL)
    assert main(["simulate", "--config", str(cfg), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert _one_line(capsys.readouterr().err) == (
        "upsell-bandit simulate: error: out of memory (realloc of size 33554432 failed); try a smaller run")
    assert not (tmp_path / "o").exists()
