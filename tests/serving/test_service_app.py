"""The HTTP layer in process (Starlette TestClient, lifespan included): responses, every kind of bad request with
the field named and no state changed, tokens, admin endpoints, metrics."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import bandit
from bandit.decision_log import read_decision_log
from bandit.service import create_app
from bandit.serving import DecisionService

with warnings.catch_warnings():  # starlette asks for httpx2 for its test client; httpx works the same here
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture()
def app_service(tmp_path):
    bandit.LinUCB(["solo", "duo", "family"], n_features=3, exploration_floor=0.1, seed=0).save(tmp_path / "p.zip")
    svc = DecisionService(tmp_path / "p.zip", tmp_path / "logs", attribution_window="1h", durability="write",
                          feature_names=["tenure", "usage", "seats"], delivery_delay=0)
    return svc, tmp_path


def client_for(svc, token=TOKEN, max_body_bytes=2048):
    return TestClient(create_app(svc, token=token, max_body_bytes=max_body_bytes), raise_server_exceptions=True)


def rank(client, body, **kwargs):
    return client.post("/rank", content=json.dumps(body), headers={"content-type": "application/json"}, **kwargs)


def test_rank_returns_the_logged_decision_with_exact_probabilities(app_service):
    svc, tmp = app_service
    with client_for(svc) as client:
        r = rank(client, {"event_id": "e1", "context": [0.5, 1.0, 2.0], "eligible": ["duo", "family"]})
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        body = r.json()
        assert set(body) == {"event_id", "arm", "propensity", "probabilities", "policy_version"}
        assert body["probabilities"]["solo"] == 0.0 and sum(body["probabilities"].values()) == pytest.approx(1.0)
        assert body["propensity"] == body["probabilities"][body["arm"]]
        r2 = rank(client, {"context": {"seats": 2.0, "tenure": 0.5, "usage": 1.0}})  # named features, any order
        assert r2.status_code == 200 and len(r2.json()["event_id"]) == 32
        # the same context by name and by position decides identically for the same event id
        same = svc.holder.snapshot.choose(np.array([0.5, 1.0, 2.0]), event_id=r2.json()["event_id"])
        assert same.arm == r2.json()["arm"]
    log = read_decision_log(tmp / "logs" / "decisions" / "arms-3")
    assert log["event_id"].tolist() == ["e1", r2.json()["event_id"]]
    assert log["propensity"].tolist() == [body["propensity"], r2.json()["propensity"]]
    np.testing.assert_array_equal(log["context"][1], [0.5, 1.0, 2.0])
    assert log["eligible"][0].tolist() == [False, True, True]


BAD_RANK = [
    ("not json", b"{context: [1,2,3]}", "application/json", 400, "body"),
    ("wrong content type", b'{"context": [1, 2, 3]}', "text/plain", 400, "content-type"),
    ("no content type", b'{"context": [1, 2, 3]}', None, 400, "content-type"),
    ("oversized", json.dumps({"context": [1.0, 2.0, 3.0], "pad": "x" * 5000}).encode(), "application/json", 400,
     "body"),
    ("missing context", b"{}", "application/json", 422, "context"),
    ("string number", b'{"context": [1, "2", 3]}', "application/json", 422, "context[1]"),
    ("NaN", b'{"context": [1, NaN, 3]}', "application/json", 422, "context[1]"),
    ("too short", b'{"context": [1, 2]}', "application/json", 422, "context"),
    ("unknown feature", b'{"context": {"tenure": 1, "usage": 2, "color": 3}}', "application/json", 422, "context"),
    # regression: blamed "context" with the list member's "Input should be a valid array"
    ("object value not a number", b'{"context": {"tenure": 1, "usage": true, "seats": 3}}', "application/json", 422,
     "context.usage"),
    ("unknown plan", b'{"context": [1, 2, 3], "eligible": ["platinum"]}', "application/json", 422, "eligible"),
    ("empty eligible", b'{"context": [1, 2, 3], "eligible": []}', "application/json", 422, "eligible"),
    ("extra field", b'{"context": [1, 2, 3], "user": "x"}', "application/json", 422, "user"),
    ("empty event id", b'{"context": [1, 2, 3], "event_id": ""}', "application/json", 422, "event_id"),
    ("long event id", json.dumps({"context": [1, 2, 3], "event_id": "e" * 300}).encode(), "application/json", 422,
     "event_id"),
    ("numeric event id", b'{"context": [1, 2, 3], "event_id": 7}', "application/json", 422, "event_id"),
    ("array body", b"[1, 2, 3]", "application/json", 422, "body"),
    ("reused event id", b'{"context": [1, 2, 3], "event_id": "taken"}', "application/json", 409, "event_id"),
]


def test_bad_rank_requests_get_json_errors_naming_the_field_and_change_nothing(app_service):
    svc, tmp = app_service
    app = create_app(svc, token=TOKEN, max_body_bytes=2048)
    with TestClient(app) as client:
        # the Starlette route behind the hot path answers every request the same way
        routed = TestClient(app.starlette)
        assert rank(client, {"context": [1, 2, 3], "event_id": "taken"}).status_code == 200
        version = svc.holder.snapshot.policy_version
        for label, content, ctype, status, field in BAD_RANK:
            headers = {} if ctype is None else {"content-type": ctype}
            r = client.post("/rank", content=content, headers=headers)
            assert r.status_code == status, (label, r.text)
            again = routed.post("/rank", content=content, headers=headers)
            assert (again.status_code, again.json(), again.headers["content-type"]) == (
                status, r.json(), "application/json"), label
            body = r.json()
            assert body["field"] == field and body["error"], (label, body)
            assert body["errors"][0]["field"] == field
            if label == "oversized":
                assert "2048 bytes" in body["error"], body  # the limit, in bytes
        metrics = client.get("/metrics").text
        assert svc.holder.snapshot.policy_version == version
        assert svc.decisions_per_arm and sum(svc.decisions_per_arm.values()) == 1
    assert 'upsell_requests_total{code="422",endpoint="rank"} 26.0' in metrics  # 13 each way
    assert 'upsell_rejected_requests_total{endpoint="rank",field="content-type"} 4.0' in metrics
    assert 'field="other"} 2.0' in metrics and 'field="user"' not in metrics  # client-chosen names stay out of labels
    assert read_decision_log(tmp / "logs" / "decisions" / "arms-3")["event_id"].tolist() == ["taken"]


def test_reward_token_checks_and_idempotence(app_service):
    svc, tmp = app_service
    with client_for(svc) as client:
        event = rank(client, {"context": [1, 2, 3]}).json()["event_id"]
        body = json.dumps({"event_id": event, "reward": 4.99})
        post = {"content": body}
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"Authorization": "Basic x"}):
            r = client.post("/reward", headers={"content-type": "application/json", **headers}, **post)
            assert r.status_code == 401 and r.json()["field"] == "authorization"
            assert r.headers["www-authenticate"] == "Bearer"
        headers = {"content-type": "application/json", **AUTH}
        first = client.post("/reward", headers=headers, **post)
        again = client.post("/reward", headers=headers, **post)
        assert (first.status_code, first.json()["status"]) == (202, "accepted")
        assert (again.status_code, again.json()["status"]) == (202, "duplicate")
        unknown = client.post("/reward", headers=headers, content=json.dumps({"event_id": "zz", "reward": 1}))
        assert unknown.json()["status"] == "unknown_event"
        bad = client.post("/reward", headers=headers, content=b'{"event_id": "x", "reward": 1, "timestamp": "soon"}')
        assert bad.status_code == 422 and bad.json()["field"] == "timestamp"
        bad = client.post("/reward", headers=headers,
                          content=b'{"event_id": "x", "reward": 1, "timestamp": "2099-01-01T00:00:00Z"}')
        assert bad.status_code == 422 and bad.json()["field"] == "timestamp" and "future" in bad.json()["error"]
        bad = client.post("/reward", headers=headers, content=b'{"event_id": "x", "reward": "1"}')
        assert bad.status_code == 422 and bad.json()["field"] == "reward"
        metrics = client.get("/metrics").text
    assert "upsell_outcomes_received_total 2.0" in metrics and "upsell_outcome_duplicates_total 1.0" in metrics
    assert len(svc.read_outcomes()) == 2


def test_admin_endpoints_add_and_retire_plans_and_checkpoint(app_service):
    svc, tmp = app_service
    with client_for(svc) as client:
        headers = {"content-type": "application/json"}
        assert client.post("/admin/checkpoint", headers=headers).status_code == 401
        r = client.post("/admin/arms", headers={**headers, **AUTH}, content=b'{"name": "team", "value": 2.0}')
        assert r.status_code == 201 and r.json()["index"] == 3
        assert client.post("/admin/arms", headers={**headers, **AUTH}, content=b'{"name": "team"}').status_code == 409
        inf = client.post("/admin/arms", headers={**headers, **AUTH}, content=b'{"name": "big", "value": 1e999}')
        assert inf.status_code == 422 and inf.json()["field"] == "value"
        # regression: the plan's own rules were reported against "name", with pydantic's multi-line text
        for bad, field, message in [(b'{"name": "free", "value": 0}', "value", "arm value must be finite and > 0"),
                                    (b'{"name": "   "}', "name", "arm name must be a non-empty string")]:
            r = client.post("/admin/arms", headers={**headers, **AUTH}, content=bad)
            assert (r.status_code, r.json()["field"]) == (422, field) and message in r.json()["error"]
        decided = rank(client, {"context": [1, 2, 3], "eligible": ["team", "solo"]}).json()
        assert set(decided["probabilities"]) == {"solo", "duo", "family", "team"}
        assert client.delete("/admin/arms/solo", headers=AUTH).status_code == 200
        assert client.delete("/admin/arms/nope", headers=AUTH).status_code == 422
        for _ in range(20):
            assert rank(client, {"context": [1, 2, 3], "eligible": ["team", "solo"]}).json()["arm"] == "team"
        saved = client.post("/admin/checkpoint", headers=AUTH).json()
        assert saved["policy_version"] == svc.holder.policy.policy_version
        # regression: a plan whose name holds "/" could be added but never retired (the route did not match)
        assert client.post("/admin/arms", headers={**headers, **AUTH}, content=b'{"name": "duo/annual"}').status_code == 201
        assert client.delete("/admin/arms/duo%2Fannual", headers=AUTH).status_code == 200
        assert svc.holder.policy.arm_names[-1] == "duo/annual" and "duo/annual" not in svc.holder.policy.active_arms
    reloaded = bandit.load(tmp / "p.zip")
    assert reloaded.arm_names == ["solo", "duo", "family", "team", "duo/annual"]
    assert reloaded.active_arms == ["duo", "family", "team"]
    assert len(read_decision_log(tmp / "logs" / "decisions" / "arms-4")) == 21


def test_admin_is_disabled_without_a_token_and_health_and_metrics_answer(app_service):
    svc, _ = app_service
    for bad in ("", "s\u00e9same", "two words"):  # a non-ASCII token could never match a header (read as Latin-1)
        with pytest.raises(ValueError, match="token must be a non-empty string of printable ASCII"):
            create_app(svc, token=bad)
    with client_for(svc, token=None) as client:
        r = client.post("/admin/checkpoint", headers=AUTH)
        assert r.status_code == 403 and r.json()["field"] == "authorization"
        ok = client.post("/reward", headers={"content-type": "application/json"},
                         content=b'{"event_id": "e", "reward": 0}')
        assert ok.status_code == 202  # no token configured: /reward is open
        health = client.get("/healthz").json()
        assert health["status"] == "ok" and health["durability"] == "write"
        metrics = client.get("/metrics").text
    for name in ("upsell_request_duration_seconds_bucket", "upsell_pending_decisions", "upsell_applied_decisions_total",
                 "upsell_checkpoint_age_seconds", "upsell_snapshot_info", "upsell_rejected_outcomes_total"):
        assert name in metrics, name


def test_an_unexpected_error_is_a_json_500_and_the_service_keeps_serving(app_service, monkeypatch):
    svc, _ = app_service
    with TestClient(create_app(svc, token=TOKEN), raise_server_exceptions=False) as client:
        real = svc.rank_async

        async def broken(*args, **kwargs):
            raise OSError("disk full")

        monkeypatch.setattr(svc, "rank_async", broken)
        r = rank(client, {"context": [1, 2, 3]})
        assert r.status_code == 500 and r.json()["field"] == "server" and "OSError" in r.json()["error"]
        monkeypatch.setattr(svc, "rank_async", real)
        assert rank(client, {"context": [1, 2, 3]}).status_code == 200


def test_a_plan_change_that_cannot_be_checkpointed_answers_503_and_is_undone(app_service):
    # regression: the checkpoint's error was answered as the client's (422 blaming "name") or a 500, and the plan
    # stayed in the live policy, so a retry answered 409 "already exists"
    svc, tmp = app_service
    headers = {"content-type": "application/json", **AUTH}
    with client_for(svc) as client:
        (tmp / "p.zip").unlink()
        (tmp / "p.zip").mkdir()  # the policy file cannot be written
        for r in (client.post("/admin/arms", headers=headers, content=b'{"name": "team"}'),
                  client.delete("/admin/arms/solo", headers=AUTH)):
            assert r.status_code == 503 and r.json()["field"] == "server", r.text
            assert "the live policy is unchanged" in r.json()["error"]
        assert client.get("/healthz").json()["status"] == "ok"
        assert set(rank(client, {"context": [1, 2, 3]}).json()["probabilities"]) == {"solo", "duo", "family"}
        (tmp / "p.zip").rmdir()
        assert client.post("/admin/arms", headers=headers, content=b'{"name": "team"}').status_code == 201
    assert bandit.load(tmp / "p.zip").active_arms == ["solo", "duo", "family", "team"]


def test_healthz_shows_the_error_message_only_to_the_token_holder_and_keeps_its_status_code(app_service, monkeypatch,
                                                                                             caplog):
    # regression: the unauthenticated /healthz (load balancers probe it) answered str(last_error): paths, plan names
    svc, tmp = app_service
    secret = f"{tmp}/p.zip: plan 'family' could not be saved"
    with client_for(svc) as client:
        assert client.get("/healthz").json()["error_type"] is None
        healthy = client.get("/healthz", headers=AUTH).json()
        assert healthy["status"] == "ok" and healthy["last_error"] is None

        def failing_step(*args, **kwargs):
            raise OSError(secret)

        monkeypatch.setattr(svc.trainer, "step", failing_step)
        with caplog.at_level("ERROR", logger="bandit.serving"):
            svc.run_trainer_once()
            svc.run_trainer_once()  # the same failure again: logged once
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            r = client.get("/healthz", headers=headers)
            assert r.status_code == 503 and "last_error" not in r.json(), headers
            assert r.json()["status"] == "unhealthy" and r.json()["error_type"] == "OSError"
            assert str(tmp) not in r.text and "family" not in r.text
        r = client.get("/healthz", headers=AUTH)
        assert r.status_code == 503 and r.json()["last_error"] == secret
        monkeypatch.undo()
        svc.run_trainer_once()
        assert client.get("/healthz").status_code == 200
    logged = [rec.getMessage() for rec in caplog.records if rec.name == "bandit.serving"]
    assert len(logged) == 1 and secret in logged[0] and "OSError" in logged[0]
    with client_for(svc, token=None) as client:  # no token configured: nobody sees the message over HTTP
        monkeypatch.setattr(svc.trainer, "step", failing_step)
        svc.run_trainer_once()
        r = client.get("/healthz", headers=AUTH)
        assert r.status_code == 503 and "last_error" not in r.json() and r.json()["error_type"] == "OSError"


def test_an_admin_command_after_the_trainer_process_died_answers_503_saying_so(tmp_path):
    # regression: a 500 "internal error: RuntimeError" that told the operator nothing
    import os
    import signal

    bandit.LinUCB(["solo", "duo"], n_features=2, seed=0).save(tmp_path / "p.zip")
    svc = DecisionService(tmp_path / "p.zip", tmp_path / "logs", attribution_window="1h", durability="write",
                          trainer="process", train_every=3600)
    with client_for(svc) as client:
        # alive, the trainer process applies a plan change and /rank serves it from the snapshot it sends back
        r = client.post("/admin/arms", headers={"content-type": "application/json", **AUTH}, content=b'{"name": "pro"}')
        assert r.status_code == 201
        assert rank(client, {"context": [1, 2], "eligible": ["pro"]}).json()["arm"] == "pro"
        os.kill(svc._remote.pid, signal.SIGKILL)
        svc._remote.proc.wait()
        for r in (client.post("/admin/arms", headers={"content-type": "application/json", **AUTH},
                              content=b'{"name": "team"}'),
                  client.post("/admin/checkpoint", headers=AUTH)):
            assert r.status_code == 503 and r.json()["field"] == "server", r.text
            assert "trainer process has exited" in r.json()["error"] and "restart" in r.json()["error"]
        assert rank(client, {"context": [1, 2], "event_id": "still-served"}).status_code == 200
        assert client.get("/healthz").status_code == 503
    assert bandit.load(tmp_path / "p.zip").arm_names == ["solo", "duo", "pro"]


def test_rank_names_the_plans_of_the_snapshot_it_read_even_when_a_new_snapshot_reuses_an_old_ones_id(app_service,
                                                                                                  monkeypatch):
    # regression: the plan names of /rank answers were cached by id(snapshot) without keeping the snapshot alive; a
    # snapshot published after add_arm at the address of a freed one (CPython reuses them) got the old, shorter list
    # and every /rank answered 500 (zip of K + 1 probabilities with K names) until the next publish. A constant id
    # stands in for that address reuse.
    import bandit.service

    svc, _ = app_service
    monkeypatch.setattr(bandit.service, "id", lambda obj: 1, raising=False)
    with client_for(svc) as client:
        assert set(rank(client, {"context": [1, 2, 3]}).json()["probabilities"]) == {"solo", "duo", "family"}
        r = client.post("/admin/arms", headers={"content-type": "application/json", **AUTH}, content=b'{"name": "team"}')
        assert r.status_code == 201
        r = rank(client, {"context": [1, 2, 3], "eligible": ["team"]})
        assert r.status_code == 200, r.text
        assert r.json()["arm"] == "team" and set(r.json()["probabilities"]) == {"solo", "duo", "family", "team"}


def test_plans_added_and_retired_during_a_burst_of_ranks_and_rewards_keep_every_answer_consistent_and_logged(tmp_path):
    import threading

    bandit.LinUCB(["solo", "duo", "family"], n_features=3, exploration_floor=0.1, seed=0).save(tmp_path / "p.zip")
    svc = DecisionService(tmp_path / "p.zip", tmp_path / "logs", attribution_window="1h", durability="write",
                          train_every=0.01, compact_every=0.05, delivery_delay=0)
    final = ["solo", "duo", "family", "team", "pro", "max"]
    answers: dict[str, dict] = {}
    failures: list[str] = []
    retired = threading.Event()
    headers = {"content-type": "application/json", **AUTH}
    with client_for(svc) as client:
        def burst(worker: int) -> None:
            rng = np.random.default_rng(worker)
            for i in range(40):
                event_id = f"w{worker}-{i}"
                after_retire = retired.is_set()
                r = rank(client, {"event_id": event_id, "context": rng.normal(size=3).tolist()})
                if r.status_code != 200:
                    failures.append(r.text)
                    continue
                body = r.json()
                names = list(body["probabilities"])
                if names != final[: len(names)] or abs(sum(body["probabilities"].values()) - 1) > 1e-9 or (
                        after_retire and body["arm"] == "duo"):
                    failures.append(str(body))
                answers[event_id] = body
                r = client.post("/reward", headers=headers, content=json.dumps({"event_id": event_id, "reward": 1.0}))
                if r.status_code != 202 or r.json()["status"] != "accepted":
                    failures.append(r.text)

        threads = [threading.Thread(target=burst, args=(w,)) for w in range(4)]
        for th in threads:
            th.start()
        for name in final[3:]:
            assert client.post("/admin/arms", headers=headers, content=json.dumps({"name": name})).status_code == 201
        assert client.delete("/admin/arms/duo", headers=AUTH).status_code == 200
        retired.set()
        for th in threads:
            th.join()
    assert not failures, failures[:3]
    assert len(answers) == 160
    logs = [read_decision_log(p) for p in sorted((tmp_path / "logs" / "decisions").iterdir())]
    logged = {e: (a, p) for log in logs for e, a, p in zip(log["event_id"], log["action_name"], log["propensity"],
                                                            strict=True)}
    assert sum(len(log) for log in logs) == len(logged) == 160  # each decision once, in the log of its arm list
    assert all(logged[e] == (b["arm"], b["propensity"]) for e, b in answers.items())
    assert sorted(svc.read_outcomes()["event_id"]) == sorted(answers)
    reloaded = bandit.load(tmp_path / "p.zip")
    assert reloaded.arm_names == final and "duo" not in reloaded.active_arms
