"""Import cost follows use: each check runs in a fresh interpreter and inspects ``sys.modules``.

* ``import offline_eval.schema`` (what the decision-log writer needs) loads no numba and no estimators;
* ``import bandit`` loads neither offline_eval's estimators nor its reward models (nor the Parquet stack);
* ``import offline_eval`` does not import the policy library.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def loaded_after(statement: str) -> set[str]:
    """Names in ``sys.modules`` after running ``statement`` in a fresh interpreter."""
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def under(modules: set[str], package: str) -> set[str]:
    return {m for m in modules if m == package or m.startswith(package + ".")}


def test_schema_loads_no_numba_and_no_estimators():
    loaded = loaded_after("import offline_eval.schema")
    assert not under(loaded, "numba")
    assert not under(loaded, "offline_eval.estimators") and "offline_eval.reward_models" not in loaded
    assert "offline_eval.data" not in loaded and not under(loaded, "bandit")


def test_import_bandit_loads_no_estimators_reward_models_or_parquet():
    loaded = loaded_after("import bandit")
    assert not under(loaded, "offline_eval.estimators")
    assert "offline_eval.reward_models" not in loaded and "offline_eval.evaluate" not in loaded
    assert "bandit.decision_log" not in loaded and not under(loaded, "pyarrow")
    assert not under(loaded, "sklearn")


def test_import_offline_eval_does_not_import_bandit():
    loaded = loaded_after("import offline_eval")
    assert not under(loaded, "bandit") and not under(loaded, "numba")
    loaded = loaded_after("import offline_eval; offline_eval.evaluate; offline_eval.IPS; offline_eval.LoggedData")
    assert not under(loaded, "bandit")
    assert "offline_eval.estimators" in loaded  # first access imports the public name


@pytest.mark.parametrize(
    "statement",
    [
        "from offline_eval import evaluate, compare, IPS, LoggedData, RidgeRewardModel, DiagnosticWarning",
        "import offline_eval.evaluate; from offline_eval import evaluate",
        "from offline_eval.evaluate import COLUMNS; import offline_eval; evaluate = offline_eval.evaluate",
        "from bandit import DecisionLog, LinUCB, Arm, load, warmup",
        "import bandit; DecisionLog = bandit.DecisionLog",
    ],
)
def test_lazy_public_names_resolve_to_the_real_objects(statement):
    code = (
        f"{statement}\n"
        "import inspect\n"
        "for name, value in list(locals().items()):\n"
        "    if name in ('evaluate', 'compare'):\n"
        "        assert inspect.isfunction(value), (name, value)\n"
        "    if name == 'DecisionLog':\n"
        "        assert inspect.isclass(value) and value.__module__ == 'bandit.decision_log'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_submodules_are_reachable_as_attributes_after_a_bare_import():
    code = (
        "import offline_eval, bandit\n"
        "assert offline_eval.reward_models.RidgeRewardModel.__name__ == 'RidgeRewardModel'\n"
        "assert offline_eval.estimators.base.TARGET_ATOL == 1e-6\n"
        "assert callable(offline_eval.evaluate) and not hasattr(offline_eval.evaluate, 'COLUMNS')\n"
        "assert bandit.attribution.__name__ == 'bandit.attribution'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_unknown_names_raise_attribute_error():
    import bandit
    import offline_eval

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        offline_eval.nope  # noqa: B018
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        bandit.nope  # noqa: B018
    assert set(offline_eval.__all__) <= set(dir(offline_eval))
    assert set(bandit.__all__) <= set(dir(bandit))
