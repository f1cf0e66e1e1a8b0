"""``upsell-bandit report``: the rollout decision from decision logs and delayed outcomes; one-line errors, exit 2.

The fixture logs 2,000 uniform-random offers of three plans over about a week with a DecisionLog (reward null,
as in production) and writes a delayed-outcomes table with three metric columns: ``reward`` (a conversion),
``revenue`` and ``cancelled`` (a cancellation event). "family" converts six times as often as the others and, in
the second fixture variant, also triggers cancellations. A LinUCB fitted on those logs is saved as the candidate.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bandit
from bandit.attribution import join_outcomes
from bandit.cli import main

ARMS = ["individual", "duo", "family"]
PRICES = np.array([11.99, 16.99, 19.99])
START = pd.Timestamp("2026-11-01T00:00:00Z")


def _one_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("note:")]
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def _make(root: Path, cancel_family: float) -> Path:
    rng = np.random.default_rng(0)
    logging_policy = bandit.UniformRandom(ARMS, n_features=3, seed=1)
    events, X, actions, rewards = [], [], [], []
    with bandit.DecisionLog(root / "logs", policy=logging_policy) as log:
        for i in range(2_000):
            x = rng.normal(size=3)
            d = logging_policy.choose(x, event_id=f"req-{i}")
            ts = START + pd.Timedelta(minutes=5 * i)  # about 6.9 days
            log.append(d, x, timestamp=ts)
            converted = rng.random() < (0.30 if d.index == 2 else 0.05)
            if converted:
                events.append((d.event_id, ts + pd.Timedelta(hours=3), 1.0, PRICES[d.index], 0.0))
            elif rng.random() < (cancel_family if d.index == 2 else 0.01):
                events.append((d.event_id, ts + pd.Timedelta(hours=5), 0.0, 0.0, 1.0))
            X.append(x)
            actions.append(d.index)
            rewards.append(float(converted))
    pd.DataFrame(events, columns=["event_id", "timestamp", "reward", "revenue", "cancelled"]).to_parquet(
        root / "outcomes.parquet"
    )
    policy = bandit.LinUCB(ARMS, n_features=3, alpha=0.1, seed=0)
    policy.update_batch(np.array(X), np.array(actions), np.array(rewards))
    policy.save(root / "fitted.policy")
    return root


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    # family cancels 8% of its non-converted offers: enough cancellations among the candidate's test offers
    # (INFORMATIVE_ROWS_MIN) for the guardrail to be judged
    return _make(tmp_path_factory.mktemp("report"), cancel_family=0.08)


@pytest.fixture(scope="module")
def churny_logs(tmp_path_factory):
    return _make(tmp_path_factory.mktemp("churny"), cancel_family=0.15)


def _argv(root: Path, out: Path, *extra: str) -> list[str]:
    return ["report", "--logs", str(root / "logs"), "--outcomes", str(root / "outcomes.parquet"),
            "--attribution-window", "1D", "--policy", f"fitted={root / 'fitted.policy'}", "--out", str(out),
            "--estimator", "SNIPS", *extra]


def test_help_lists_report(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0 and "report" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    out = capsys.readouterr().out
    assert "--guardrail" in out and "--split-at" in out and "--min-effect" in out


def test_report_go_end_to_end_matches_the_library(logs, tmp_path, capsys):
    out = tmp_path / "out"
    argv = _argv(logs, out, "--metric", "revenue", "--conversion", "reward", "--guardrail",
                 "cancellations=cancelled:0.04", "--test-days", "3", "--min-effect", "0.5", "--now", "2026-11-09")
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "DECISION: GO" in captured.out
    for name in ("report.html", "report.md", "report.json", "report.csv"):
        assert (out / name).is_file()
    doc = json.loads((out / "report.json").read_text())
    assert doc["decision"] == "GO" and doc["recommended"] == "fitted"

    # the same numbers as rollout_report on the outcomes joined per metric column in Python
    from offline_eval import SNIPS
    from offline_eval.report import Guardrail, rollout_report

    outcomes = pd.read_parquet(logs / "outcomes.parquet")
    now = pd.Timestamp("2026-11-09T00:00:00Z")
    frame = None
    for column in ("revenue", "reward", "cancelled"):
        o = outcomes[["event_id", "timestamp", column]].rename(columns={column: "reward"})
        joined = join_outcomes(logs / "logs", o, "1D", now=now)
        final = (pd.to_datetime(joined["timestamp"], utc=True) + pd.Timedelta("1D") < now).to_numpy()
        if frame is None:
            frame = joined.drop(columns=["reward", "reward_status"])
        frame[column] = np.where(final, joined["reward"].to_numpy(dtype=float), np.nan)
    policy = bandit.load(logs / "fitted.policy")
    assert not frame["revenue"].isna().any()  # every window closed by --now
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = rollout_report(frame, {"fitted": policy}, metric="revenue", conversion="reward",
                             guardrails={"cancellations": Guardrail("cancelled", 0.04)}, min_effect=0.5,
                             test_days=3, estimator=SNIPS(), frame_options={"action_names": ARMS})
    table = pd.read_csv(out / "report.csv")
    np.testing.assert_allclose(table["value"].to_numpy(), ref.table["value"].to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(table["diff"].to_numpy(), ref.table["diff"].to_numpy(), rtol=1e-9, atol=1e-12)
    assert ref.decision == "GO"


def test_report_guardrail_breach_is_no_go(churny_logs, tmp_path, capsys):
    argv = _argv(churny_logs, tmp_path / "out", "--guardrail", "cancellations=cancelled:0.01", "--now",
                 "2026-11-09")
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "DECISION: NO-GO" in captured.out
    assert "breaches the cancellations guardrail" in captured.out


def test_report_metric_from_the_logs_without_outcomes(logs, tmp_path, capsys):
    """Without --outcomes the metric columns are read from the logs (here: a log with a joined reward column)."""
    joined = join_outcomes(logs / "logs", pd.read_parquet(logs / "outcomes.parquet"), "1D",
                           now=pd.Timestamp("2026-11-09T00:00:00Z"))
    import pyarrow as pa
    import pyarrow.parquet as pq

    part = next((logs / "logs").glob("*.parquet"))
    table = pq.read_table(part)
    order = pd.Index(joined["event_id"]).get_indexer(table.column("event_id").to_pylist())
    reward = joined["reward"].to_numpy(dtype=float)[order]
    table = table.set_column(table.schema.get_field_index("reward"), table.schema.field("reward"),
                             pa.array(reward, pa.float64(), mask=np.isnan(reward)))
    path = tmp_path / "part-00000-joined.parquet"
    pq.write_table(table, path)
    out = tmp_path / "out"
    assert main(["report", "--logs", str(path), "--policy", f"fitted={logs / 'fitted.policy'}", "--policy",
                 "uniform", "--out", str(out), "--estimator", "IPS"]) == 0
    doc = json.loads((out / "report.json").read_text())
    assert set(doc["verdicts"]) == {"fitted", "uniform"}
    assert doc["settings"]["metric"] == "reward"


@pytest.mark.parametrize(
    "extra,expected",
    [
        (["--guardrail", "cancellations"], "--guardrail 'cancellations': expected NAME=COLUMN:MARGIN"),
        (["--guardrail", "c=cancelled:-1"], "--guardrail 'c=cancelled:-1': MARGIN must be a number >= 0"),
        (["--guardrail", "c=nope:0.1"], "--guardrail c=nope: no column 'nope'"),
        (["--metric", "nope"], "--metric: no column 'nope'"),
        (["--metric", "timestamp"], "--metric: column 'timestamp' of --outcomes"),  # was an AttributeError
        (["--metric", "action_name"], "--metric: column 'action_name' of --logs"),  # was a ValueError traceback
        (["--guardrail", "g=event_id:0.1"], "--guardrail g=event_id: column 'event_id' of --outcomes"),
        (["--baseline", "other"], "--baseline 'other': expected 'logging' or a --policy NAME"),
        (["--split-at", "yesterday-ish"], "--split-at 'yesterday-ish': expected a date"),
        (["--split-at", "2030-01-01"], "--split-at 2030-01-01:"),
        (["--test-days", "-2"], "--test-days -2.0: expected a positive number of days"),
        (["--alpha", "2"], "--alpha 2.0: expected a number in (0, 1)"),
        (["--min-effect", "nan"], "--min-effect nan: expected a finite number"),
        (["--now", "soon"], "--now 'soon': expected a timestamp"),
        (["--reward-range", "19.99"], "--reward-range '19.99': expected LOW,HIGH"),
        (["--reward-range", "1,x"], "--reward-range '1,x': expected LOW,HIGH"),
        # the primary metric (conversions, 0/1) and a guardrail's column run past a range that does not hold them
        (["--reward-range", "0,0.5"], "--reward-range 0,0.5: reward_range (of the primary metric 'reward') is "
         "(0.0, 0.5) but its values run from 0 to 1"),
        (["--guardrail", "c=cancelled:0.1:0,0.5"], "--guardrail c: guardrails['c'].value_range is (0.0, 0.5) but "
         "its values run from 0 to 1"),
    ],
)
def test_bad_input_is_one_line_naming_the_flag(logs, tmp_path, capsys, extra, expected):
    out = tmp_path / "out"
    assert main(_argv(logs, out, *extra)) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("upsell-bandit report: error:") and expected in line, line
    assert not out.exists()


def test_bad_files_are_one_line(logs, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["report", "--logs", str(logs / "logs"), "--policy", f"x={tmp_path / 'none.policy'}", "--outcomes",
            str(logs / "outcomes.parquet"), "--attribution-window", "1D", "--out", str(out)]
    assert main(argv) == 2
    assert "--policy x=" in _one_line(capsys.readouterr().err)
    argv = _argv(logs, out)
    argv.remove("--attribution-window")
    argv.remove("1D")
    assert main(argv) == 2
    assert "needs --attribution-window" in _one_line(capsys.readouterr().err)
    argv = _argv(logs, out)  # regression: an outcomes file that is not Parquet escaped as an ArrowInvalid
    argv[argv.index("--outcomes") + 1] = str(logs / "fitted.policy")
    assert main(argv) == 2
    assert "--outcomes" in _one_line(capsys.readouterr().err) and not out.exists()
    out.mkdir()
    assert main(_argv(logs, out)) == 2
    assert "--out" in _one_line(capsys.readouterr().err) and "--force" in capsys.readouterr().err + "--force"


def test_guardrail_higher_is_better_treats_a_fall_as_the_harm(logs, tmp_path, capsys):
    """NAME=COLUMN:MARGIN:higher: a fall is the harm. Uniform converts far less than the fitted baseline: with
    conversions as a higher-is-better guardrail that is a breach; read as a rise-is-harm metric it is no harm."""
    common = ["--policy", "uniform", "--baseline", "fitted", "--metric", "revenue", "--now", "2026-11-09"]
    higher, lower = tmp_path / "higher", tmp_path / "lower"
    assert main(_argv(logs, higher, *common, "--guardrail", "conversions=reward:0.01:higher")) == 0
    assert "breaches the conversions guardrail" in capsys.readouterr().out
    assert main(_argv(logs, lower, *common, "--guardrail", "conversions=reward:0.01")) == 0
    assert "breaches" not in capsys.readouterr().out
    up = json.loads((higher / "report.json").read_text())
    down = json.loads((lower / "report.json").read_text())
    assert up["settings"]["guardrails"]["conversions"]["higher_is_better"] is True
    assert down["settings"]["guardrails"]["conversions"]["higher_is_better"] is False
    status = {d: next(r["status"] for r in doc["table"] if r["policy"] == "uniform" and r["metric"] == "conversions")
              for d, doc in (("up", up), ("down", down))}
    assert status == {"up": "breached", "down": "non-inferior"}
    assert up["decision"] == "NO-GO"


def test_guardrail_help_documents_the_higher_syntax(capsys):
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert ":higher" in text and "NAME=COLUMN:MARGIN[:LOW,HIGH][:higher]" in text and "--reward-range LOW,HIGH" in text


def test_a_rare_guardrail_is_judged_on_its_stated_range_and_the_advice_names_the_flag(logs, tmp_path, capsys):
    """Half a day of test rows hold one cancellation among the candidate's offers. Without a range the guardrail
    decides nothing and the reasons say how to state one in this command's words (the library's say value_range=);
    with ':0,1' it is judged on the small-sample bound."""
    common = ["--metric", "revenue", "--test-days", "0.5", "--now", "2026-11-09"]
    assert main(_argv(logs, tmp_path / "a", *common, "--guardrail", "cancellations=cancelled:0.04")) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "decides nothing (append :LOW,HIGH to its --guardrail to judge it on the small-sample bound)" in printed
    assert "value_range=" not in printed
    doc = json.loads((tmp_path / "a" / "report.json").read_text())
    assert any("append :LOW,HIGH to its --guardrail" in r for r in doc["reasons"])
    assert main(_argv(logs, tmp_path / "b", *common, "--guardrail", "cancellations=cancelled:0.04:0,1")) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "judged on the small-sample bound (only 1 of its offers have an informative cancellations value" in printed


def test_stated_ranges_reach_the_report(logs, tmp_path, capsys):
    """--reward-range and a guardrail's :LOW,HIGH are rollout_report's reward_range and Guardrail.value_range (either
    order with :higher): recorded in the settings, the same table as the library's, every interval inside what the
    range allows; the old NAME=COLUMN:MARGIN form still has no range."""
    from offline_eval import SNIPS
    from offline_eval.report import Guardrail, rollout_report

    out = tmp_path / "out"
    argv = _argv(logs, out, "--metric", "revenue", "--reward-range", "0,19.99", "--test-days", "3",
                 "--guardrail", "cancellations=cancelled:0.04:0,1", "--guardrail", "conversions=reward:0.5:higher:0,1",
                 "--guardrail", "plain=cancelled:0.04", "--now", "2026-11-09")
    assert main(argv) == 0
    capsys.readouterr()
    doc = json.loads((out / "report.json").read_text())
    s = doc["settings"]
    assert s["reward_range"] == [0.0, 19.99]
    assert {k: (g["value_range"], g["higher_is_better"]) for k, g in s["guardrails"].items()} == {
        "cancellations": ([0.0, 1.0], False), "conversions": ([0.0, 1.0], True), "plain": (None, False)}
    assert s["value_ranges"]["revenue"] == {"low": 0.0, "high": 19.99, "given": True}
    assert s["value_ranges"]["plain"]["given"] is False
    table = pd.DataFrame(doc["table"])
    for metric, (lo, hi) in {"revenue": (0.0, 19.99), "cancellations": (0.0, 1.0), "conversions": (0.0, 1.0)}.items():
        part = table[table.metric == metric]
        assert (part.ci_low >= lo).all() and (part.ci_high <= hi).all()
        d = part.dropna(subset=["diff_ci_low"])
        assert (d.diff_ci_low >= lo - hi).all() and (d.diff_ci_high <= hi - lo).all()

    frame = pd.read_parquet(logs / "outcomes.parquet")  # the library on the same rows gives the same table
    now = pd.Timestamp("2026-11-09T00:00:00Z")
    joined_frame = None
    for column in ("revenue", "reward", "cancelled"):
        o = frame[["event_id", "timestamp", column]].rename(columns={column: "reward"})
        joined = join_outcomes(logs / "logs", o, "1D", now=now)
        if joined_frame is None:
            joined_frame = joined.drop(columns=["reward", "reward_status"])
        joined_frame[column] = joined["reward"].fillna(0.0).to_numpy(dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = rollout_report(joined_frame, {"fitted": bandit.load(logs / "fitted.policy")}, metric="revenue",
                             guardrails={"cancellations": Guardrail("cancelled", 0.04, value_range=(0, 1)),
                                         "conversions": Guardrail("reward", 0.5, True, value_range=(0, 1)),
                                         "plain": Guardrail("cancelled", 0.04)},
                             estimator=SNIPS(), reward_range=(0, 19.99), test_days=3,
                             frame_options={"action_names": ARMS})
    cols = ["value", "ci_low", "ci_high", "diff", "diff_ci_low", "diff_ci_high"]
    np.testing.assert_allclose(table[cols].to_numpy(dtype=float), ref.table[cols].to_numpy(dtype=float),
                               rtol=1e-9, equal_nan=True)
    assert doc["decision"] == ref.decision


@pytest.mark.parametrize(
    "spec,expected",
    [
        ("c=cancelled:0.1:lower", "unknown direction 'lower'"),
        ("c=cancelled:higher", "expected NAME=COLUMN:MARGIN[:LOW,HIGH][:higher]"),
        ("c=cancelled:0.1:1,0", "the range '1,0' must be LOW,HIGH with finite numbers and LOW < HIGH"),
        ("c=cancelled:0.1:0,1:0,2", "more than one range ('0,1')"),
        ("c=cancelled:0,1", "expected NAME=COLUMN:MARGIN[:LOW,HIGH][:higher]"),
        ("c=cancelled:-0.1:higher", "MARGIN must be a number >= 0"),
        ("=cancelled:0.1", "expected NAME=COLUMN:MARGIN"),
    ],
)
def test_bad_guardrail_direction_is_one_line(logs, tmp_path, capsys, spec, expected):
    assert main(_argv(logs, tmp_path / "out", "--guardrail", spec)) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith(f"upsell-bandit report: error: --guardrail {spec!r}: ") and expected in line, line
    assert not (tmp_path / "out").exists()


SIM = """
seed = 3
horizon = 6000
batch_size = 500
launch_step = 3000

[world]
events_per_day = 1000

[[policies]]
name = "uniform"
type = "UniformRandom"

[output]
progress = false
plots = false
share_window = 500
"""


def test_simulate_then_report_with_a_churn_guardrail(tmp_path, capsys):
    """The simulator's outcomes carry cancellations: `report --guardrail churn=cancelled:...` runs on them."""
    from bandit.simulation.world import UpsellWorld

    cfg = tmp_path / "sim.toml"
    cfg.write_text(SIM)
    assert main(["simulate", "--config", str(cfg), "--out", str(tmp_path / "sim"), "--quiet"]) == 0
    root = tmp_path / "sim" / "logs" / "logging_uniform"
    outcomes = pd.read_parquet(root / "outcomes.parquet")
    assert {"cancelled", "cannibalised"} <= set(outcomes.columns) and outcomes["cancelled"].sum() > 10
    world = UpsellWorld(seed=3)
    policy = bandit.LinUCB(world.arms(include_new=True), n_features=world.featurizer.n_features, seed=0)
    policy.save(tmp_path / "fresh.policy")
    out = tmp_path / "report"
    argv = ["report", "--logs", str(root / "decisions"), "--outcomes", str(root / "outcomes.parquet"),
            "--attribution-window", "1D", "--policy", f"fresh={tmp_path / 'fresh.policy'}", "--metric", "revenue",
            "--conversion", "reward", "--guardrail", "churn=cancelled:0.01",
            "--guardrail", "cannibalisation=cannibalised:0.5", "--estimator", "SNIPS", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    doc = json.loads((out / "report.json").read_text())
    assert doc["decision"] in ("GO", "NO-GO", "NEED MORE DATA") and f"DECISION: {doc['decision']}" in printed
    assert "churn" in printed and "cannibalisation" in printed
    # the logging policy's churn is the share of final decisions with a cancellation joined inside the window
    decisions = pd.read_parquet(root / "decisions")
    now = max(decisions["timestamp"].max(), outcomes["timestamp"].max())  # the CLI's default now
    cancels = outcomes[["event_id", "timestamp", "cancelled"]].rename(columns={"cancelled": "reward"})
    joined = join_outcomes(root / "decisions", cancels, "1D", now=now)
    final = joined["timestamp"] + pd.Timedelta("1D") < now
    logging_churn = next(r["value"] for r in doc["table"] if r["policy"] == "logging" and r["metric"] == "churn")
    assert logging_churn == pytest.approx(joined.loc[final, "reward"].mean(), rel=1e-9)
    assert doc["settings"]["n_test"] == int(final.sum())


def test_logs_without_joined_outcomes_say_how_to_join_them(logs, tmp_path, capsys):
    """Regression: a DecisionLog's reward is null until outcomes are joined; report crashed with 'cannot reshape'."""
    out = tmp_path / "out"
    assert main(["report", "--logs", str(logs / "logs"), "--policy", "uniform", "--out", str(out)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("upsell-bandit report: error: --metric: column 'reward' of --logs"), line
    assert "--outcomes FILE --attribution-window WINDOW" in line and "reshape" not in line
    assert not out.exists()


def test_a_policy_may_not_take_a_reference_rows_name(logs, tmp_path, capsys):
    argv = _argv(logs, tmp_path / "out")
    argv[argv.index("--policy") + 1] = f"logging={logs / 'fitted.policy'}"
    assert main(argv) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith(f"upsell-bandit report: error: --policy logging={logs / 'fitted.policy'}: the name "
                           "'logging' is taken by a reference row"), line


def test_a_decision_log_passed_as_outcomes_and_a_tiny_test_window_name_their_flags(logs, tmp_path, capsys):
    argv = _argv(logs, tmp_path / "out")
    argv[argv.index("--outcomes") + 1] = str(logs / "logs")
    assert main(argv) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith(f"upsell-bandit report: error: --outcomes {logs / 'logs'}: this is a decision log"), line
    assert main(_argv(logs, tmp_path / "out", "--test-days", "0.00001")) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("upsell-bandit report: error: --test-days 1e-05: "), line
    assert not (tmp_path / "out").exists()


def test_the_report_files_state_the_decisions_left_out(logs, tmp_path, capsys):
    # the attribution window's "left out" note went to stderr only: report.html / .md / .json, the files handed on,
    # did not say that the last day's decisions were not evaluated (evaluate's ope.md always did)
    out = tmp_path / "out"
    assert main(_argv(logs, out, "--test-days", "2", "--min-effect", "0.01")) == 0
    err = capsys.readouterr().err
    note = next(ln[len("note: "):] for ln in err.splitlines() if "still inside their 1D attribution window" in ln)
    doc = json.loads((out / "report.json").read_text())
    assert doc["reasons"][-1] == f"Note: {note}"
    assert f"- Note: {note}" in (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    assert "still inside their 1D attribution window" in html
    assert doc["reasons"][0].startswith(doc["decision"])  # the decision stays first
