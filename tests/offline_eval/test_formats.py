"""VW log interop (offline_eval.formats): DSJSON / cb_adf export, DSJSON import, quarantine, VW trains on exports."""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pyarrow.parquet as pq
import pytest
import vowpalwabbit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offline_eval import IPS, SNIPS, LoggedData, evaluate
from offline_eval.formats import DSJSONWarning, read_dsjson, write_cb_adf, write_dsjson
from offline_eval.schema import encode_decisions

ARMS = ["individual", "duo", "family", "student"]


def random_data(n: int = 300, d: int = 3, seed: int = 0) -> LoggedData:
    """Decisions with holes in the action sets: ineligible arms, eligible arms of probability 0, negative and zero
    rewards, microsecond timestamps, event ids and policy versions."""
    rng = np.random.default_rng(seed)
    k = len(ARMS)
    E = rng.random((n, k)) < 0.75
    E[np.arange(n), rng.integers(0, k, n)] = True
    P = rng.dirichlet(np.ones(k), size=n) * E
    zero = (rng.random((n, k)) < 0.1) & E  # eligible, never chosen by the logging policy
    P[zero] = 0.0
    empty = P.sum(axis=1) == 0
    P[empty] = E[empty]
    P /= P.sum(axis=1, keepdims=True)
    action = np.array([rng.choice(k, p=row) for row in P])
    X = rng.normal(size=(n, d))
    X[rng.random((n, d)) < 0.2] = 0.0
    X[0] = [1e-300, -3.5e30, 1 / 3]  # exact float64 values, far beyond float32
    reward = np.where(rng.random(n) < 0.3, np.round(rng.normal(10, 5, n), 2), 0.0)
    start = np.datetime64("2026-11-01T00:00:00", "us")
    ts = start + rng.integers(0, 10**12, n).astype("timedelta64[us]")
    return LoggedData(
        X, action, reward, P[np.arange(n), action], probabilities=P, eligible=E, timestamp=ts,
        event_id=[f"req-{seed}-{i}" for i in range(n)], action_names=ARMS,
        policy_version=[f"LinUCB-v{i // 100}" for i in range(n)],
    )


def assert_same(a: LoggedData, b: LoggedData) -> None:
    assert a.action_names == b.action_names
    for name in ("context", "action", "reward", "propensity", "probabilities", "eligible", "timestamp"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.event_id.tolist() == b.event_id.tolist()
    assert a.policy_version.tolist() == b.policy_version.tolist()


# ----------------------------------------------------------------------------------------------------------------
# DSJSON round trips and conventions
# ----------------------------------------------------------------------------------------------------------------


def test_logged_data_to_dsjson_and_back_is_exact(tmp_path):
    data = random_data()
    assert not data.eligible.all() and ((data.probabilities == 0) & data.eligible).any()  # both kinds of holes
    summary = write_dsjson(data, tmp_path / "log.json")
    assert (summary.n_written, summary.n_missing_reward, summary.format) == (data.n, 0, "dsjson")
    back = read_dsjson(tmp_path / "log.json")
    assert back.rejected.empty and back.n_lines == data.n
    assert back.features == ["U.0", "U.1", "U.2"]
    assert_same(data, back.data)  # arm order recovered from the action sets' order, every float64 bit for bit


finite = st.floats(min_value=-1e38, max_value=1e38, allow_nan=False)


@st.composite
def logged(draw):
    n, d, k = draw(st.integers(1, 8)), draw(st.integers(1, 4)), draw(st.integers(1, 5))
    rows = []
    for _ in range(n):
        mask = draw(st.lists(st.booleans(), min_size=k, max_size=k))
        chosen = draw(st.integers(0, k - 1))
        mask[chosen] = True
        weights = [draw(st.floats(0.0, 1.0)) if m else 0.0 for m in mask]
        weights[chosen] = max(weights[chosen], 1e-3)
        probs = np.array(weights) / sum(weights)
        rows.append((mask, chosen, probs))
    E = np.array([r[0] for r in rows])
    P = np.array([r[2] for r in rows])
    action = np.array([r[1] for r in rows])
    X = np.array(draw(st.lists(st.lists(finite, min_size=d, max_size=d), min_size=n, max_size=n)))
    reward = np.array(draw(st.lists(finite, min_size=n, max_size=n)))
    us = draw(st.lists(st.integers(-(10**15), 10**17), min_size=n, max_size=n))
    names = [f"arm {i} ü" for i in range(k)]
    return LoggedData(X, action, reward, P[np.arange(n), action], probabilities=P, eligible=E,
                      timestamp=np.array(us, dtype="datetime64[us]"), event_id=[f"e\u00e9{i}" for i in range(n)],
                      action_names=names, policy_version=[draw(st.text(max_size=5)) for _ in range(n)])


@settings(derandomize=True, max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=logged())
def test_dsjson_round_trip_property(data, tmp_path):
    write_dsjson(data, tmp_path / "p.json")
    back = read_dsjson(tmp_path / "p.json", arms=data.action_names).data
    assert_same(data, back)


def test_dsjson_to_logged_data_and_back_is_byte_identical(tmp_path):
    write_dsjson(random_data(seed=1), tmp_path / "a.json")
    write_dsjson(LoggedData.from_dsjson(tmp_path / "a.json"), tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()


def test_dsjson_fields_follow_the_decision_service_conventions(tmp_path):
    data = random_data(n=200, seed=2)
    write_dsjson(data, tmp_path / "log.json", arms=ARMS)
    lines = (tmp_path / "log.json").read_text().splitlines()
    assert len(lines) == data.n
    stamp = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}0Z")
    for i, text in enumerate(lines):
        obj = json.loads(text)
        multi = obj["c"]["_multi"]
        eligible = np.flatnonzero(data.eligible[i])
        assert [m["_tag"] for m in multi] == [ARMS[k] for k in eligible]  # ineligible arms are left out
        assert [m["A"] for m in multi] == [{f"id{k}": 1} for k in eligible]
        assert obj["_label_cost"] == -data.reward[i]
        assert obj["_label_probability"] == data.propensity[i]
        assert obj["_labelIndex"] == obj["_label_Action"] - 1
        assert multi[obj["_labelIndex"]]["_tag"] == ARMS[data.action[i]]
        assert obj["a"][0] == obj["_label_Action"] and sorted(obj["a"]) == list(range(1, len(multi) + 1))
        assert obj["p"] == [data.probabilities[i, eligible[j - 1]] for j in obj["a"]]  # p in the order of a
        assert obj["p"][0] == obj["_label_probability"]
        assert obj["c"]["U"] == {str(j): v for j, v in enumerate(data.context[i].tolist())}
        assert obj["EventId"] == data.event_id[i] and obj["Version"] == "1"
        assert stamp.fullmatch(obj["Timestamp"])
        assert obj["VWState"] == {"m": data.policy_version[i]}


def test_dsjson_without_optional_columns(tmp_path):
    data = LoggedData([[1.0], [2.0]], [0, 1], [1.0, 0.0], [0.5, 0.5], probabilities=[[0.5, 0.5]] * 2)
    write_dsjson(data, tmp_path / "log.json")
    obj = json.loads((tmp_path / "log.json").read_text().splitlines()[0])
    assert not {"EventId", "Timestamp", "VWState"} & set(obj)
    back = read_dsjson(tmp_path / "log.json").data
    assert back.event_id is None and back.timestamp is None and back.policy_version is None
    assert back.eligible.all()  # no recorded mask: every arm is in the action set
    np.testing.assert_array_equal(back.probabilities, data.probabilities)


# ----------------------------------------------------------------------------------------------------------------
# cb_adf text
# ----------------------------------------------------------------------------------------------------------------


def test_cb_adf_matches_a_hand_written_example(tmp_path):
    class Arm:  # duck-typed like bandit.Arm
        def __init__(self, name, features=None):
            self.name, self.features = name, features

    data = LoggedData(
        [[0.5, 0.0, -2.0], [1e-40, 3.0, 0.0]],
        action=[2, 0],
        reward=[19.99, 0.0],
        propensity=[0.25, 0.5],
        probabilities=[[0.25, 0.0, 0.25, 0.5], [0.5, 0.5, 0.0, 0.0]],
        eligible=[[True, False, True, True], [True, True, False, True]],
        action_names=ARMS,
    )
    arms = [Arm("individual"), Arm("duo", [1.5, 0.0]), Arm("family", [2.0, 1.0]), Arm("student")]
    write_cb_adf(data, tmp_path / "log.txt", arms=arms)
    expected = [
        "shared |U 0:5.00000000e-01 2:-2.00000000e+00",
        "|A id0",
        "0:-1.99900000e+01:2.50000000e-01 |A id2 f0:2.00000000e+00 f1:1.00000000e+00",
        "|A id3",
        "",
        "shared |U 1:3.00000000e+00",  # 1e-40 is below what VW's text parser reads: written as 0, left out
        "0:0:5.00000000e-01 |A id0",
        "|A id1 f0:1.50000000e+00",
        "|A id3",
        "",
    ]
    assert (tmp_path / "log.txt").read_text().split("\n") == [*expected, ""]


def test_vw_learns_the_same_model_from_dsjson_and_cb_adf_exports(tmp_path):
    data = random_data(n=400, seed=3).subset(np.arange(1, 400))  # row 0 holds values beyond float32 on purpose
    write_dsjson(data, tmp_path / "log.json")
    write_cb_adf(data, tmp_path / "log.txt")
    args = ["--cb_explore_adf", "--squarecb", "--interactions", "UA", "--quiet", "--random_seed", "1"]
    models = []
    for extra in (["--dsjson", "-d", str(tmp_path / "log.json")], ["-d", str(tmp_path / "log.txt")]):
        ws = vowpalwabbit.Workspace(arg_list=[*args, *extra])
        ws.save(str(tmp_path / "model"))
        ws.finish()
        models.append(vowpalwabbit.Workspace(arg_list=["--quiet", "-i", str(tmp_path / "model")]))
    x = "shared |U 0:0.3 1:-1.2 2:0.5"
    predictions = []
    for ws in models:
        examples = ws.parse([x, "|A id0", "|A id1", "|A id2", "|A id3"], vowpalwabbit.LabelType.CONTEXTUAL_BANDIT)
        ws.predict(examples)
        predictions.append([e.get_partial_prediction() for e in examples[1:]])
        ws.finish_example(examples)
    assert max(map(abs, predictions[0])) > 0.5  # it learned something (rewards ~10)
    np.testing.assert_allclose(predictions[0], predictions[1], rtol=1e-5)  # same examples, float32 rounding only


# ----------------------------------------------------------------------------------------------------------------
# export sources and missing rewards
# ----------------------------------------------------------------------------------------------------------------


def _log_table(n: int = 6):
    rng = np.random.default_rng(4)
    P = np.tile([0.2, 0.8, 0.0], (n, 1))
    reward = np.where(np.arange(n) % 3 == 0, np.nan, rng.integers(0, 2, n).astype(float))
    return encode_decisions(
        event_id=[f"e{i}" for i in range(n)], timestamp_us=np.arange(n) * 1_000_000, context=rng.normal(size=(n, 2)),
        action=np.ones(n, dtype=int), propensity=np.full(n, 0.8), probabilities=P,
        eligible=np.tile([True, True, False], (n, 1)), policy="P", policy_version="v7", arms=ARMS[:3], reward=reward,
    ), reward


def test_export_from_a_log_directory_leaves_out_missing_rewards_with_a_count(tmp_path):
    table, reward = _log_table()
    (tmp_path / "logs").mkdir()
    pq.write_table(table, tmp_path / "logs" / "part-00000000-a.parquet")
    with pytest.warns(UserWarning, match="left out 2 of 6 decisions whose reward is missing"):
        summary = write_dsjson(tmp_path / "logs", tmp_path / "log.json")
    assert (summary.n_written, summary.n_missing_reward) == (4, 2)
    back = read_dsjson(tmp_path / "log.json", arms=ARMS[:3]).data
    keep = ~np.isnan(reward)
    assert back.event_id.tolist() == [f"e{i}" for i in np.flatnonzero(keep)]
    np.testing.assert_array_equal(back.reward, reward[keep])
    assert set(back.policy_version.tolist()) == {"v7"}
    assert not back.eligible[:, 2].any()  # the ineligible arm is in the arm list but in no action set
    frame = table.to_pandas()
    frame.attrs["arms"] = ARMS[:3]
    with pytest.raises(ValueError, match="reward is missing in 2 of 6 decisions"):
        write_cb_adf(frame, tmp_path / "x.txt", missing_reward="raise")
    assert not (tmp_path / "x.txt").exists()


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"arms": ["duo", "individual"]}, ValueError, "arms must name the data's arms in index order"),
        ({"shared_namespace": "a b"}, ValueError, "shared_namespace must be a VW namespace"),
        ({"shared_namespace": "A"}, ValueError, "must differ"),
        ({"missing_reward": "zero"}, ValueError, "missing_reward must be 'drop' or 'raise'"),
    ],
)
def test_bad_export_arguments_name_the_argument(kwargs, exc, match, tmp_path):
    data = LoggedData([[1.0]], [0], [1.0], [1.0], probabilities=[[1.0, 0.0]], action_names=["individual", "duo"])
    with pytest.raises(exc, match=match):
        write_dsjson(data, tmp_path / "log.json", **kwargs)
    assert not (tmp_path / "log.json").exists()


def test_export_refuses_data_vw_cannot_take(tmp_path):
    with pytest.raises(ValueError, match="no logging probabilities"):
        write_dsjson(LoggedData([[1.0]], [0], [1.0], [1.0]), tmp_path / "a.json")
    huge = LoggedData([[1.0], [4e38]], [0, 0], [1.0, 1.0], [1.0, 1.0], probabilities=[[1.0]] * 2)
    with pytest.raises(ValueError, match=r"too large for Vowpal Wabbit \(row 1\)"):
        write_cb_adf(huge, tmp_path / "b.txt")
    with pytest.raises(TypeError, match="source must be a LoggedData"):
        write_dsjson([1, 2], tmp_path / "c.json")


# ----------------------------------------------------------------------------------------------------------------
# import of other producers' DSJSON, and untrusted lines
# ----------------------------------------------------------------------------------------------------------------


def _ds_line(**over):
    """A decision-service style line: context in nested namespaces, action ids in _tag, float32 probabilities."""
    line = {
        "_label_cost": -1.0, "_label_probability": 0.8500000238418579, "_label_Action": 2, "_labelIndex": 1,
        "o": [{"v": 1.0, "EventId": "ev-1", "ActionTaken": False}], "Timestamp": "2025-03-01T08:15:42.1234567Z",
        "Version": "1", "EventId": "ev-1", "a": [2, 1, 3],
        "c": {"Geo": {"country": "NL", "_countrycf": "8"}, "User": [{"tenure": 14, "student": True, "trial": False}],
              "Hist": [0.5, 2], "_synthetic": False,
              "_multi": [{"_tag": "tea", "i": {"constant": 1, "id": "tea"}},
                         {"_tag": "coffee", "i": {"constant": 1, "id": "coffee"}, "j": [{"roast": "dark"}]},
                         {"_tag": "juice", "i": {"constant": 1, "id": "juice"}}]},
        "p": [0.85, 0.075, 0.075], "VWState": {"m": "model-17/abc"},
    }
    line.update(over)
    return line


def test_reads_a_decision_service_log(tmp_path):
    second = _ds_line(EventId="ev-2", a=[1, 2, 3], _label_Action=1, _labelIndex=0, _label_cost=0.0,
                      _label_probability=0.6, p=[0.6, 0.2, 0.2],
                      c={"Geo": {"country": "DE"}, "_multi": [{"_tag": "tea"}, {"_tag": "juice"}, {"_tag": "cake"}]})
    (tmp_path / "ds.json").write_text(json.dumps(_ds_line()) + "\n\n" + json.dumps(second) + "\n")
    result = read_dsjson(tmp_path / "ds.json")
    data = result.data
    assert result.rejected.empty and result.n_lines == 2
    assert data.action_names == ["tea", "coffee", "juice", "cake"]  # merged _multi orders
    assert result.features == ["Geo.country=NL", "User.tenure", "User.student", "Hist[0]", "Hist[1]",
                               "Geo.country=DE"]  # _-keys, false and nested _ keys ignored as VW does
    np.testing.assert_array_equal(data.context, [[1, 14, 1, 0.5, 2, 0], [0, 0, 0, 0, 0, 1]])
    assert data.action.tolist() == [1, 0] and data.reward.tolist() == [1.0, 0.0]
    np.testing.assert_array_equal(data.propensity, [0.85, 0.6])
    np.testing.assert_array_equal(data.probabilities, [[0.075, 0.85, 0.075, 0], [0.6, 0, 0.2, 0.2]])
    np.testing.assert_array_equal(data.eligible, [[1, 1, 1, 0], [1, 0, 1, 1]])
    assert data.timestamp[0] == np.datetime64("2025-03-01T08:15:42.123456", "us")  # 100 ns digit truncated
    assert data.event_id.tolist() == ["ev-1", "ev-2"] and data.policy_version.tolist() == ["model-17/abc"] * 2


def test_timestamps_with_offsets_are_read_as_utc(tmp_path):
    lines = [_ds_line(EventId="a", Timestamp="2025-03-01T10:15:42+02:00"),
             _ds_line(EventId="b", Timestamp="2300-01-01T00:00:00.5"),  # beyond pandas' nanosecond range
             _ds_line(EventId="c", Timestamp="2025-02-30T00:00:00Z")]
    (tmp_path / "ds.json").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    with pytest.warns(DSJSONWarning, match="line 3: Timestamp '2025-02-30T00:00:00Z' is not a valid date"):
        data = read_dsjson(tmp_path / "ds.json").data
    np.testing.assert_array_equal(
        data.timestamp, np.array(["2025-03-01T08:15:42", "2300-01-01T00:00:00.5"], dtype="datetime64[us]")
    )


def test_actions_without_tags_are_identified_by_their_features(tmp_path):
    def line(order, chosen):
        acts = [{"ns": {"price": 5.99}}, {"ns": {"price": 9.99}}, {"ns": {"price": 14.99}}]
        multi = [acts[k] for k in order]
        return json.dumps({"_label_cost": -1, "_label_probability": 0.5, "_label_Action": chosen + 1,
                           "_labelIndex": chosen, "a": [chosen + 1] + [j + 1 for j in range(3) if j != chosen],
                           "c": {"x": 1.0, "_multi": multi}, "p": [0.5, 0.25, 0.25]})

    (tmp_path / "ds.json").write_text(line([0, 1, 2], 0) + "\n" + line([2, 0, 1], 2) + "\n")
    data = read_dsjson(tmp_path / "ds.json").data
    names = [json.loads(a)["ns"]["price"] for a in data.action_names]
    chosen = [names[a] for a in data.action]
    assert chosen == [5.99, 9.99] and data.probabilities[1, names.index(9.99)] == 0.5


DEEP: list = [1.0]
for _ in range(40):
    DEEP = [DEEP]

BAD_LINES = {
    "not json": ("{'_label_cost': 1", "not valid JSON"),
    "nan": (json.dumps(_ds_line()).replace('"_label_cost": -1.0', '"_label_cost": NaN'), "not valid JSON"),
    "overflow": (json.dumps(_ds_line()).replace('"tenure": 14', '"tenure": 1e400'), "must be finite"),
    "huge int": (json.dumps(_ds_line()).replace('"tenure": 14', '"tenure": 1' + "0" * 400), "must be finite"),
    "huge index": (json.dumps(_ds_line(_labelIndex=10**40)), "_labelIndex must be an integer"),
    "array": ("[1, 2, 3]", "must be a JSON object"),
    "no context": (json.dumps({"a": [1], "p": [1.0]}), "missing 'c'"),
    "empty multi": (json.dumps(_ds_line(c={"_multi": []})), "non-empty array of actions"),
    "slots": (json.dumps(_ds_line(c={"_multi": [{"_tag": "tea"}], "_slots": [{}]})), "CCB or slates"),
    "a not permutation": (json.dumps(_ds_line(a=[2, 2, 3])), "1-based action ids 1..3"),
    "zero-based a": (json.dumps(_ds_line(a=[1, 0, 2], _label_Action=1, _labelIndex=0)), "1-based action ids"),
    "short p": (json.dumps(_ds_line(p=[0.85, 0.15])), "must list each of the 3 actions"),
    "p sum": (json.dumps(_ds_line(p=[0.85, 0.1, 0.1])), "'p' must sum to 1"),
    "negative p": (json.dumps(_ds_line(p=[1.1, -0.05, -0.05])), "in \\[0, 1\\]"),
    "label index": (json.dumps(_ds_line(_labelIndex=0)), "_labelIndex 0 is not a\\[0\\] - 1"),
    "label action": (json.dumps(_ds_line(_label_Action=3)), "_label_Action 3 is not a\\[0\\]"),
    "label p": (json.dumps(_ds_line(_label_probability=0.5)), "_label_probability 0.5 differs"),
    "chosen p 0": (json.dumps(_ds_line(p=[0.0, 0.5, 0.5], _label_probability=0.0)), "has probability p\\[0\\] = 0"),
    "string cost": (json.dumps(_ds_line(_label_cost="-1")), "_label_cost must be a number"),
    "twice": (json.dumps(_ds_line(c={"_multi": [{"_tag": "tea"}, {"_tag": "tea"}, {"_tag": "juice"}]})),
              "appears twice"),
    "duplicate id": (json.dumps(_ds_line()), "EventId 'ev-1' already appeared"),
    "long id": (json.dumps(_ds_line(EventId="x" * 300)), "at most 256 characters"),
    "bad time": (json.dumps(_ds_line(EventId="ev-t", Timestamp="yesterday")), "Timestamp 'yesterday'"),
    "no time": (json.dumps({k: v for k, v in _ds_line(EventId="ev-n").items() if k != "Timestamp"}),
                "no Timestamp"),
    "deep": (json.dumps(_ds_line(EventId="ev-d", c={"x": DEEP, "_multi": [{"_tag": "tea"}]}, a=[1], p=[1.0],
                                  _label_Action=1, _labelIndex=0, _label_probability=1.0)), "nested deeper"),
}


def test_bad_lines_are_quarantined_with_their_line_numbers(tmp_path):
    good = json.dumps(_ds_line())
    body = [good.encode()]
    for text, _ in BAD_LINES.values():
        body.append(text.encode())
    body.append(b"\xff\xfe not utf-8")
    body.append(b'{"pad": "' + b"x" * 5000 + b'"}')
    body.append(json.dumps(_ds_line(EventId="ev-ok")).encode())
    (tmp_path / "ds.json").write_bytes(b"\n".join(body) + b"\n")
    with pytest.warns(DSJSONWarning, match=r"quarantined 27 of 29 lines \(line 2: not valid JSON"):
        result = read_dsjson(tmp_path / "ds.json", max_line_bytes=4096)
    reasons = dict(zip(result.rejected["line"], result.rejected["reason"], strict=True))
    for number, (name, (_, match)) in enumerate(BAD_LINES.items(), start=2):
        assert re.search(match, reasons[number]), (name, reasons[number])
    assert "not UTF-8" in reasons[len(BAD_LINES) + 2]
    assert "longer than max_line_bytes=4096" in reasons[len(BAD_LINES) + 3]
    assert result.data.event_id.tolist() == ["ev-1", "ev-ok"]  # the rest is read, in file order
    assert result.data.action_names == ["tea", "coffee", "juice"]  # arms seen only on rejected lines are not arms
    with pytest.warns(DSJSONWarning):
        assert LoggedData.from_dsjson(tmp_path / "ds.json", max_line_bytes=4096).n == 2


def test_inconsistent_action_sets_and_limits(tmp_path):
    lines = [_ds_line(EventId="a"), _ds_line(EventId="b", c={"_multi": [{"_tag": "tea"}, {"_tag": "water"},
                                                                       {"_tag": "juice"}]})]
    (tmp_path / "ds.json").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    with pytest.warns(DSJSONWarning, match="line 2: action 'water' is not one of arms"):
        fixed = read_dsjson(tmp_path / "ds.json", arms=["juice", "coffee", "tea", "cake"])
    assert fixed.data.action_names == ["juice", "coffee", "tea", "cake"] and fixed.data.n == 1
    np.testing.assert_array_equal(fixed.data.eligible, [[True, True, True, False]])
    assert fixed.data.action.tolist() == [1]  # coffee, by name, whatever its position in the line
    with pytest.warns(DSJSONWarning, match="line 2: more than max_actions=3"):
        assert read_dsjson(tmp_path / "ds.json", max_actions=3).data.n == 1
    with pytest.warns(DSJSONWarning, match="more than max_features=2"):
        read_dsjson(tmp_path / "ds.json", max_features=2)
    only = read_dsjson(tmp_path / "ds.json", features=["Hist[1]", "Geo.country=NL", "missing"]).data
    np.testing.assert_array_equal(only.context, [[2, 1, 0], [0, 0, 0]])  # line 2 has none: VW's 0


def test_lines_without_an_outcome_follow_missing_reward(tmp_path):
    pending = {k: v for k, v in _ds_line(EventId="ev-2").items() if k != "_label_cost"}
    (tmp_path / "ds.json").write_text(json.dumps(_ds_line()) + "\n" + json.dumps(pending) + "\n")
    with pytest.warns(UserWarning, match="left out 1 of 2 valid lines without _label_cost"):
        result = read_dsjson(tmp_path / "ds.json")
    assert result.n_missing_reward == 1 and result.data.event_id.tolist() == ["ev-1"]
    with pytest.raises(ValueError, match="1 of 2 valid lines have no _label_cost"):
        read_dsjson(tmp_path / "ds.json", missing_reward="raise")


def test_a_file_without_a_valid_line_is_a_value_error(tmp_path):
    (tmp_path / "ds.json").write_text("nonsense\n")
    with pytest.raises(ValueError, match=r"no valid DSJSON decision \(1 lines; line 1: not valid JSON"):
        read_dsjson(tmp_path / "ds.json")
    with pytest.raises(ValueError, match="is not a file"):
        read_dsjson(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="max_line_bytes must be a positive int"):
        read_dsjson(tmp_path / "ds.json", max_line_bytes=0)


# ----------------------------------------------------------------------------------------------------------------
# VW trains on an export of a simulated world; the model, as a VWPolicy, beats uniform and evaluates offline
# ----------------------------------------------------------------------------------------------------------------


def test_vw_trained_on_an_export_beats_uniform_and_evaluates_through_offline_eval(tmp_path):
    from bandit import VWPolicy
    from bandit.policies.vw import _serialize
    from bandit.simulation.world import UpsellWorld

    n_train, n_test = 6000, 4000
    world = UpsellWorld(seed=7)
    ep = world.episode(n_train + n_test)
    rng = np.random.default_rng(1)
    P = ep.eligible / ep.eligible.sum(axis=1, keepdims=True)  # uniform logging over the eligible plans
    action = (P.cumsum(axis=1) > rng.random((len(P), 1))).argmax(axis=1)
    revenue = ep.outcomes(np.arange(len(P)), action).revenue
    data = LoggedData(ep.X, action, revenue, P[np.arange(len(P)), action], probabilities=P, eligible=ep.eligible,
                      timestamp=ep.timestamps, event_id=[f"ev-{i}" for i in range(len(P))],
                      action_names=ep.arm_names)
    train, test = data.subset(np.arange(n_train)), data.subset(np.arange(n_train, n_train + n_test))
    write_dsjson(train, tmp_path / "train.json")

    d = ep.X.shape[1]
    config = {"exploration": "squarecb", "seed": 3}  # unit arm values: VW's cost is -revenue, as exported
    workspace = vowpalwabbit.Workspace(
        arg_list=[*VWPolicy(ep.arm_names, d, **config).vw_arguments(), "--dsjson", "-d", str(tmp_path / "train.json")]
    )
    model = _serialize(workspace)
    workspace.finish()
    policy = VWPolicy.from_vw_model(model, ep.arm_names, d, **config)

    rows = slice(n_train, None)
    value = ep.expected_value[rows]
    vw_value = float((policy.action_probabilities(test.context, test.eligible) * value).sum(axis=1).mean())
    uniform_value = float((P[rows] * value).sum(axis=1).mean())
    oracle_value = float(ep.oracle_value(rows).mean())
    assert vw_value > 1.5 * uniform_value and vw_value > 0.8 * oracle_value  # 1.15 vs 0.59 (oracle 1.28)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = evaluate(test, {"vw": policy}, estimators=[IPS(), SNIPS()])
    for _, row in table.iterrows():
        assert row["ci_low"] <= vw_value <= row["ci_high"], row
        assert row["ci_low"] > uniform_value  # the offline estimate alone tells VW apart from uniform


def test_from_vw_model_refuses_a_model_of_another_configuration():
    from bandit import VWPolicy
    from bandit.policies.vw import _serialize

    other = vowpalwabbit.Workspace(arg_list=["--cb_explore_adf", "--epsilon", "0.2", "--quiet"])
    model = _serialize(other)
    other.finish()
    with pytest.raises(ValueError, match="stores options that the policy's configuration does not produce"):
        VWPolicy.from_vw_model(model, ARMS, 3)
    with pytest.raises(TypeError, match="model must be the bytes"):
        VWPolicy.from_vw_model("model.vw", ARMS, 3)
    fresh = VWPolicy(ARMS, 3, seed=0)
    loaded = VWPolicy.from_vw_model(_serialize(fresh._vw), ARMS, 3, seed=0)
    assert loaded.policy_version != fresh.policy_version
    x = np.array([[0.3, -1.0, 2.0]])
    np.testing.assert_array_equal(loaded.action_probabilities(x), fresh.action_probabilities(x))
