"""examples/rollout_report.py runs end to end at a small size and its outputs hold up.

The candidates are fit functions: the report must call them with the training rows only (every one of them
before the test window), and the written HTML / Markdown / JSON must carry the decision the report printed.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _load():
    name = "example_rollout_report"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / "rollout_report.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_rollout_example_small(tmp_path):
    res = _load().main(["--small", "--out", str(tmp_path), "--seed", "1", "--backtest-windows", "2"])
    report = res.report
    assert report.decision in ("GO", "NO-GO", "NEED MORE DATA")
    assert report.reasons[0].startswith(report.decision + ":")

    # fitted on the training rows only: the rows before the last test day
    ts = res.logs["timestamp"]
    n_train = int((ts < ts.max() + np.timedelta64(1, "us") - np.timedelta64(1, "D")).sum())
    assert res.fitted_on == {"linucb": n_train, "linear_ts": n_train}
    assert report.settings["n_train"] == n_train and report.settings["n_test"] == len(res.logs) - n_train

    # every metric is evaluated on the same rows; the references are there for every metric
    assert set(report.table["metric"]) == {"revenue", "cancellations", "cannibalisation"}
    for _, part in report.table.groupby("metric"):
        assert {"logging", "best single plan", "popularity", "linucb", "linear_ts"} == set(part["policy"])
    logging = report.table.query("policy == 'logging' and metric == 'cancellations'")["value"].iloc[0]
    test = res.logs.iloc[n_train:]
    assert logging == np.float64(test["cancelled"].mean())

    # the backtest refits the fit functions per window
    assert sorted(report.backtest["window"].unique()) == [0, 1]

    html = res.files["html"].read_text()
    assert report.decision in html and html.count("data:image/png;base64,") >= 2
    assert res.files["markdown"].read_text().startswith(f"# Rollout decision: {report.decision}")
    assert json.loads(res.files["json"].read_text())["decision"] == report.decision
