"""``upsell-bandit serve`` refuses bad arguments with one line naming the flag (exit 2) before opening a port."""

from __future__ import annotations

import pytest

import bandit
from bandit.cli import main


@pytest.mark.parametrize(
    ("extra", "flag"),
    [
        (["--attribution-window", "1"], "--attribution-window"),
        (["--checkpoint-every", "soon"], "--checkpoint-every"),
        (["--delivery-delay=-1s"], "--delivery-delay"),
        (["--port", "70000"], "--port"),
        (["--features", "a,b"], "--features"),
        (["--token-file", "missing-token"], "--token-file"),
        (["--token-file", "empty-token"], "--token-file"),
        (["--token-file", "utf8-token"], "--token-file"),  # regression: accepted, yet no client could ever match it
        (["--token-file", "binary-token"], "--token-file"),
        (["--max-body-bytes", "10"], "--max-body-bytes"),
        (["--shard", "eu 1"], "--shard"),
        (["--shard", "eu@1"], "--shard"),
    ],
)
def test_bad_serve_arguments_exit_2_naming_the_flag(tmp_path, capsys, monkeypatch, extra, flag):
    monkeypatch.chdir(tmp_path)
    bandit.LinUCB(["solo", "duo"], n_features=3, seed=0).save(tmp_path / "p.zip")
    (tmp_path / "empty-token").write_text("\n")
    (tmp_path / "utf8-token").write_text("s\u00e9same\n", encoding="utf-8")
    (tmp_path / "binary-token").write_bytes(b"ab\xff\xfe\n")
    assert main(["serve", "--policy", "p.zip", "--log", "logs", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"upsell-bandit serve: error: {flag}") and "\n" not in err, err
    assert not (tmp_path / "logs").exists()  # nothing created


@pytest.mark.parametrize("content", [b"[" * 100_000, b'["tenure", "usage"', b'\xff["a"]'], ids=["deep", "torn", "binary"])
def test_an_unreadable_features_file_beside_the_policy_exits_2_naming_it(tmp_path, capsys, content):
    # regression: nesting deeper than the JSON parser's stack escaped as a RecursionError traceback; a torn file was
    # blamed on --policy alone, then on "--features None", a flag the user never passed
    bandit.LinUCB(["solo", "duo"], n_features=3, seed=0).save(tmp_path / "p.zip")
    (tmp_path / "p.features.json").write_bytes(content)
    assert main(["serve", "--policy", str(tmp_path / "p.zip"), "--log", str(tmp_path / "logs")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("upsell-bandit serve: error: --policy") and "(p.features.json)" in err, err
    assert "--features" not in err and "\n" not in err


def test_features_that_do_not_fit_the_policy_name_where_they_came_from(tmp_path, capsys):
    bandit.LinUCB(["solo", "duo"], n_features=2, seed=0).save(tmp_path / "p.zip")
    (tmp_path / "p.features.json").write_text('["tenure"]')
    args = ["serve", "--policy", str(tmp_path / "p.zip"), "--log", str(tmp_path / "logs")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "--policy" in err and "(p.features.json): feature_names must be 2" in err and "None" not in err, err
    assert main([*args, "--features", "a,b,c"]) == 2  # given on the command line: that flag is named
    assert capsys.readouterr().err.strip().startswith("upsell-bandit serve: error: --features a,b,c: feature_names")


def test_a_missing_policy_file_is_named(tmp_path, capsys):
    assert main(["serve", "--policy", str(tmp_path / "nope.zip"), "--log", str(tmp_path / "logs")]) == 2
    assert "--policy" in capsys.readouterr().err
