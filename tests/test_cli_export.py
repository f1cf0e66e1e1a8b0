"""``upsell-bandit export`` (decision logs to VW DSJSON / cb_adf) and ``evaluate --logs FILE.json`` (DSJSON input)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import bandit
from bandit.attribution import join_outcomes
from bandit.cli import main
from bandit.decision_log import read_decision_log
from offline_eval.formats import read_dsjson

ARMS = ["individual", "duo", "family"]
START = pd.Timestamp("2026-11-01", tz="UTC")
LATE = "2026-12-01"  # every attribution window has closed


def _one_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert len(lines) == 1, text
    return lines[0]


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    """A decision log (reward null, "family" not offered to every user) and its delayed outcomes."""
    root = tmp_path_factory.mktemp("export")
    rng = np.random.default_rng(0)
    policy = bandit.UniformRandom(ARMS, n_features=3, seed=1)
    conversions = []
    with bandit.DecisionLog(root / "logs", policy=policy) as log:
        for i in range(400):
            x = rng.normal(size=3)
            eligible = [True, True, bool(x[2] > -0.5)]
            d = policy.choose(x, eligible=eligible, event_id=f"req-{i}")
            ts = START + pd.Timedelta(minutes=15 * i)  # 400 offers over ~4.2 days
            log.append(d, x, timestamp=ts)
            if rng.random() < 1 / (1 + np.exp(1.0 - x[d.index])):
                conversions.append((d.event_id, ts + pd.Timedelta(hours=6), float(rng.integers(5, 20))))
    pd.DataFrame(conversions, columns=["event_id", "timestamp", "reward"]).to_parquet(root / "outcomes.parquet")
    return root


def _export(root, out, *extra):
    return ["export", "--logs", str(root / "logs"), "--outcomes", str(root / "outcomes.parquet"),
            "--attribution-window", "1D", "--out", str(out), *extra]


def test_export_dsjson_carries_the_joined_rewards_and_the_eligibility(logs, tmp_path, capsys):
    out = tmp_path / "log.json"
    assert main(_export(logs, out, "--format", "dsjson", "--now", LATE)) == 0
    assert capsys.readouterr().out.startswith("wrote 400 of 400 decisions (dsjson, 3 arms, mean reward")
    joined = join_outcomes(logs / "logs", pd.read_parquet(logs / "outcomes.parquet"), "1D", now=LATE)
    data = read_dsjson(out, arms=ARMS).data
    assert data.event_id.tolist() == joined["event_id"].tolist()
    np.testing.assert_array_equal(data.reward, joined["reward"].to_numpy())
    np.testing.assert_array_equal(data.eligible, np.stack(joined["eligible"].to_numpy()))
    np.testing.assert_array_equal(data.context, np.stack(joined["context"].to_numpy()))
    assert not data.eligible[:, 2].all() and data.reward.max() > 0


def test_export_leaves_out_decisions_still_inside_their_window(logs, tmp_path, capsys):
    out = tmp_path / "log.json"
    assert main(_export(logs, out, "--format", "dsjson")) == 0
    captured = capsys.readouterr()
    n = len(out.read_text().splitlines())
    assert 250 < n < 400 and captured.out.startswith(f"wrote {n:,} of 400 decisions")
    assert f"{400 - n:,} of 400 decisions are still inside their 1D attribution window" in captured.err


def test_export_quarantines_decisions_that_break_the_log_contract_and_says_so(logs, tmp_path, capsys):
    """Two decisions with a propensity of 0: left out of the export with a note counting them (they were dropped
    silently: the warning was swallowed and the total did not count them), or refused with --invalid-rows raise."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path / "copy"
    shutil.copytree(logs, root)
    part = sorted((root / "logs").rglob("part-*.parquet"))[0]
    table = pq.read_table(part)
    propensity = table.column("propensity").to_numpy().copy()
    propensity[[3, 7]] = 0.0
    i = table.schema.get_field_index("propensity")
    pq.write_table(table.set_column(i, table.schema.field(i), pa.array(propensity)), part)
    bad_ids = [table.column("event_id")[j].as_py() for j in (3, 7)]
    out = tmp_path / "log.json"
    assert main(_export(root, out, "--format", "dsjson", "--now", LATE)) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("wrote 398 of 400 decisions (dsjson")
    assert "left out 2 decisions that break the decision-log contract (propensity: 2" in captured.err
    assert f"first: {bad_ids[0]}, {bad_ids[1]}" in captured.err
    assert not set(bad_ids) & {json.loads(line)["EventId"] for line in out.read_text().splitlines()}
    assert main(_export(root, tmp_path / "strict.json", "--format", "dsjson", "--now", LATE, "--invalid-rows",
                        "raise")) == 2
    assert "propensity must lie in (0, 1]" in _one_line(capsys.readouterr().err)
    assert not (tmp_path / "strict.json").exists()


def test_export_cb_adf_writes_one_block_per_decision(logs, tmp_path, capsys):
    out = tmp_path / "log.txt"
    assert main(_export(logs, out, "--format", "cb_adf", "--now", LATE)) == 0
    blocks = out.read_text().split("\n\n")
    assert blocks[-1] == "" and len(blocks) == 401
    log = read_decision_log(logs / "logs")
    first = blocks[0].splitlines()
    x = log["context"].iloc[0]
    assert first[0] == "shared |U " + " ".join(f"{j}:{v:.8e}" for j, v in enumerate(x))
    assert len(first) == 1 + int(np.sum(log["eligible"].iloc[0]))
    labelled = [ln for ln in first[1:] if not ln.startswith("|")]
    assert len(labelled) == 1 and labelled[0].endswith(f"|A id{log['action'].iloc[0]}")


def test_export_refuses_an_existing_file_unless_force(logs, tmp_path, capsys):
    out = tmp_path / "log.json"
    out.write_text("keep me")
    assert main(_export(logs, out, "--format", "dsjson", "--now", LATE)) == 2
    assert "--out" in _one_line(capsys.readouterr().err) and out.read_text() == "keep me"
    assert main(_export(logs, out, "--format", "dsjson", "--now", LATE, "--force")) == 0
    assert json.loads(out.read_text().splitlines()[0])["EventId"] == "req-0"


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--format", "dsjson"], "--outcomes"),  # the log's rewards are null: outcomes must be joined
        (["--format", "dsjson", "--attribution-window", "1D"], "--attribution-window applies to joined outcomes"),
        (["--format", "dsjson", "--outcomes", "OUTCOMES"], "needs --attribution-window"),
    ],
)
def test_export_bad_input_is_one_line_naming_the_flag(logs, tmp_path, capsys, argv, expected):
    argv = [a.replace("OUTCOMES", str(logs / "outcomes.parquet")) for a in argv]
    out = tmp_path / "log.json"
    assert main(["export", "--logs", str(logs / "logs"), "--out", str(out), *argv]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("upsell-bandit export: error:") and expected in line
    assert not out.exists()


def test_evaluate_reads_a_dsjson_log_like_the_decision_log_it_came_from(logs, tmp_path, capsys):
    dsjson = tmp_path / "log.json"
    assert main(_export(logs, dsjson, "--format", "dsjson", "--now", LATE)) == 0
    common = ["--policy", "uniform", "--estimators", "IPS,SNIPS"]
    assert main(["evaluate", "--logs", str(dsjson), *common, "--out", str(tmp_path / "a")]) == 0
    assert main(["evaluate", "--logs", str(logs / "logs"), "--outcomes", str(logs / "outcomes.parquet"),
                 "--attribution-window", "1D", "--now", LATE, *common, "--out", str(tmp_path / "b")]) == 0
    from_json = pd.read_csv(tmp_path / "a" / "ope.csv")
    from_parquet = pd.read_csv(tmp_path / "b" / "ope.csv")
    cols = ["policy", "estimator", "value", "ci_low", "ci_high", "n"]
    pd.testing.assert_frame_equal(from_json[cols], from_parquet[cols])
    capsys.readouterr()
    assert main(["evaluate", "--logs", str(dsjson), "--outcomes", str(logs / "outcomes.parquet"),
                 "--attribution-window", "1D", *common, "--out", str(tmp_path / "c")]) == 2
    assert "carries its rewards" in _one_line(capsys.readouterr().err)


def test_evaluate_notes_quarantined_dsjson_lines(logs, tmp_path, capsys):
    dsjson = tmp_path / "log.json"
    assert main(_export(logs, dsjson, "--format", "dsjson", "--now", LATE)) == 0
    lines = dsjson.read_text().splitlines()
    lines.insert(3, '{"_label_cost": "oops"')
    dsjson.write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    assert main(["evaluate", "--logs", str(dsjson), "--policy", "uniform", "--estimators", "SNIPS",
                 "--out", str(tmp_path / "a")]) == 0
    assert "quarantined 1 of 401 lines (line 4: not valid JSON" in capsys.readouterr().err
    assert pd.read_csv(tmp_path / "a" / "ope.csv")["n"].iloc[0] == 400


def test_export_that_cannot_be_written_names_out(logs, tmp_path, capsys, monkeypatch):
    # a write failure (disk full; /proc/x.json as root) gave "error: [Errno 2] ...: '/proc/.x.json.29078.tmp'",
    # naming a temporary file the user never chose and no flag
    import offline_eval.formats

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / ".log.json.123.tmp"))

    monkeypatch.setattr(offline_eval.formats, "write_dsjson", disk_full)
    out = tmp_path / "log.json"
    assert main(_export(logs, out, "--format", "dsjson", "--now", LATE)) == 2
    line = _one_line(capsys.readouterr().err)
    assert line == f"upsell-bandit export: error: --out {out}: cannot be written (No space left on device)"
