"""The README's commands and code run as written."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_starts_with_the_two_setup_commands_and_the_demo():
    setup, main_job = _blocks("bash")[:2]
    assert setup.split("\n")[:2] == ['pip install -e ".[dev]"', "pytest -q"]
    assert main_job.strip() == "upsell-bandit demo"


def test_readme_python_snippets_run_in_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "readme"}
    for block in _blocks("python"):
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - the README is ours
    # the go/no-go comparison in the README found the candidate better, with a CI that excludes 0
    paired = namespace["paired"]
    assert paired.ci_low > 0 and paired.ci_low <= paired.value <= paired.ci_high
    # the rollout report on the same logs: the candidate is clearly better, so GO, and the page is written
    report = namespace["report"]
    assert report.decision == "GO" and report.reasons[0].startswith("GO: roll out 'linucb'")
    assert (tmp_path / "rollout.html").stat().st_size > 10_000


def test_readme_simulation_config_is_valid(tmp_path):
    from bandit.simulation.config import load_config

    (toml_block,) = _blocks("toml")
    path = tmp_path / "launch.toml"
    path.write_text(toml_block)
    config = load_config(path)
    assert config.horizon == tomllib.loads(toml_block)["horizon"]
    assert [p.name for p in config.policies] == ["linucb", "uniform"]
