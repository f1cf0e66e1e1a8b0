"""The HTTP layer of ``upsell-bandit serve``: a Starlette (ASGI) app over a :class:`bandit.serving.DecisionService`.

The two hot endpoints, ``POST /rank`` and ``POST /reward``, are answered by a thin ASGI layer in front of the
Starlette app (:class:`ServiceApp`): the same handlers, validation, errors and metrics, without the router and the
request / response objects (the HTTP layer's CPU per rank went from ~50 to ~20 microseconds).

Endpoints
---------
``POST /rank``
    ``{"event_id"?: str, "context": [number, ...] | {feature: number}, "eligible"?: [plan, ...]}`` ->
    200 ``{"event_id", "arm", "propensity", "probabilities": {plan: p}, "policy_version"}``. The decision is in the
    journal (per the durability mode) before the response. 409 if the event id was already ranked.
``POST /reward``
    ``{"event_id": str, "reward": number, "timestamp"?: ISO-8601}`` -> 202 ``{"event_id", "status", "timestamp"}``
    with ``status`` ``"accepted"``, ``"duplicate"`` (the same body again: nothing stored) or ``"unknown_event"``
    (stored and reported: no pending decision has that id). Needs the bearer token when one is configured.
``GET /healthz``
    200 ``{"status": "ok", "policy_version", "n_updates", "pending_decisions", "durability",
    "checkpoint_age_seconds", "error_type"}``, or 503 (``"status": "unhealthy"``) once the trainer fails. Open to
    everyone, like any load balancer's probe (a missing or wrong token never changes the status code); the body
    names only the failure's exception type (``"error_type"``, e.g. ``"OSError"``, None while healthy). Its
    message -- which can hold file paths, plan names and other internals -- is in ``"last_error"`` (at most 500
    characters) only for a caller that sends the bearer token, and in the server's log (logger
    ``bandit.serving``) whatever the token; a service started without a token shows it in the log only.
``GET /metrics``
    Prometheus text (see :func:`build_metrics`).
``POST /admin/arms`` ``{"name": str, "value"?: number}`` (201), ``DELETE /admin/arms/{name}``, ``POST /admin/checkpoint``
    Add or retire a plan, checkpoint now. Always need the bearer token; without a configured token they answer 403.
    A plan change is checkpointed before it is served, all or nothing: if the policy file cannot be saved (a full
    disk, a limit of ``bandit.load``), the change is undone and the answer is 503 (``field`` ``"server"``). Also 503
    when the trainer process has exited (``--trainer process``): restart the service, which recovers everything
    logged meanwhile.

Every rejected request leaves no state behind and gets a JSON body ``{"error": message, "field": name,
"errors": [{"field", "message"}, ...]}``: 400 (malformed JSON), 401 (missing or wrong token), 403 (admin disabled),
400 also for a body larger than ``max_body_bytes`` (``field`` ``"body"``, the message states the limit in bytes) and
for a content type other than ``application/json`` (``field`` ``"content-type"``), 409 (event id already ranked, plan
exists), 422 (a field fails validation; ``field`` names it).

starlette, pydantic and prometheus_client are imported by this module only (``import bandit`` stays light).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from bandit.arms import MAX_NAME_CHARS, Arm
from bandit.serving import CheckpointError, DecisionService, RequestError, check_token
from offline_eval.schema import MAX_EVENT_ID_LENGTH

__all__ = ["DEFAULT_MAX_BODY_BYTES", "ServiceApp", "build_metrics", "create_app"]

#: Largest request body accepted (bytes); larger ones get 400 before they are parsed.
DEFAULT_MAX_BODY_BYTES = 64 * 1024
#: Latency histogram buckets (seconds).
LATENCY_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
_MAX_ITEMS = 10_000


class RankBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    event_id: str | None = Field(default=None, min_length=1, max_length=MAX_EVENT_ID_LENGTH)
    context: list[float] | dict[str, float] = Field(max_length=_MAX_ITEMS)
    eligible: list[str] | None = Field(default=None, min_length=1, max_length=_MAX_ITEMS)


class RewardBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    event_id: str = Field(min_length=1, max_length=MAX_EVENT_ID_LENGTH)
    reward: float
    timestamp: datetime | None = None


class ArmBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    name: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
    value: float = 1.0


class HTTPError(Exception):
    """A rejected request: status, the field to blame and the message."""

    def __init__(self, status: int, field: str, message: str, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field
        self.errors = errors or [{"field": field, "message": message}]


    def payload(self) -> dict[str, Any]:
        """The JSON error body."""
        return {"error": str(self), "field": self.field, "errors": self.errors}

    def headers(self) -> dict[str, str] | None:
        """Extra response headers (the bearer challenge of a 401)."""
        return {"WWW-Authenticate": "Bearer"} if self.status == 401 else None


#: Compact JSON (one encoder: ``json.dumps`` with options builds a new one per call).
_encode = json.JSONEncoder(separators=(",", ":")).encode


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_encode(payload).encode(), status_code=status, media_type="application/json", headers=headers)


def _error_response(exc: HTTPError) -> Response:
    return _json(exc.payload(), exc.status, exc.headers())


#: Field names a metric label may carry (anything else, e.g. an unknown field a client invented, is "other": label
#: values must stay a small fixed set).
_KNOWN_FIELDS = frozenset({"body", "content-type", "authorization", "context", "eligible", "event_id", "reward",
                           "timestamp", "name", "value", "server"})


def _metric_field(field: str) -> str:
    top = field.split("[", 1)[0].split(".", 1)[0]
    return top if top in _KNOWN_FIELDS else "other"


def _field_path(loc: tuple[Any, ...]) -> str:
    """``("context", "list[float]", 3)`` -> ``"context[3]"`` (the union member pydantic inserts is dropped)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "[" in part:
            continue
        else:
            out += f".{part[:100]}" if out else part[:100]
    return out or "body"


def _header(scope: Scope, name: bytes) -> str | None:
    """The first value of request header ``name`` (lower-case bytes), decoded as Latin-1, or None."""
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


async def _read_body(scope: Scope, receive: Receive, max_bytes: int) -> bytes:
    """The request body, once the content type is JSON and within ``max_bytes`` (checked while it streams in)."""
    media = (_header(scope, b"content-type") or "").split(";")[0].strip().lower()
    if media != "application/json":
        raise HTTPError(400, "content-type", f"content-type must be application/json, got {media or 'none'!r}")
    declared = _header(scope, b"content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > max_bytes):
        raise HTTPError(400, "body", f"the body must be at most {max_bytes} bytes (content-length {declared[:20]})")
    body = b""
    while True:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect
            raise HTTPError(400, "body", "the client disconnected before sending the whole body")
        body += message.get("body", b"")
        if len(body) > max_bytes:
            raise HTTPError(400, "body", f"the body must be at most {max_bytes} bytes")
        if not message.get("more_body", False):
            return body


def _parse(model: type[BaseModel], body: bytes) -> Any:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        # the most specific location first: for a union (context: list or object) pydantic lists the failure of
        # every member, and the first one ("should be a valid array" for an object) does not say what is wrong
        found = sorted(exc.errors(include_url=False), key=lambda e: -len(e["loc"]))
        errors = [{"field": _field_path(e["loc"]), "message": e["msg"]} for e in found]
        status = 400 if any(e["type"] == "json_invalid" for e in exc.errors()) else 422
        if status == 400:
            errors = [{"field": "body", "message": "the body is not valid JSON"}]
        raise HTTPError(status, errors[0]["field"], errors[0]["message"], errors) from None


class _Collector:
    """The trainer's and journal's state, read at scrape time (nothing on the request path)."""

    def __init__(self, service: DecisionService) -> None:
        self.service = service

    def collect(self) -> Iterator[Any]:
        s = self.service
        per_arm = CounterMetricFamily("upsell_decisions", "Decisions served, per plan", labels=["arm"])
        for arm, n in sorted(s.decisions_per_arm.items()):
            per_arm.add_metric([arm], n)
        yield per_arm
        yield CounterMetricFamily("upsell_outcomes_received", "Rewards stored (duplicates excluded)",
                                  value=s.n_outcomes_received)
        yield CounterMetricFamily("upsell_outcome_duplicates", "Rewards received again (same body): not stored",
                                  value=s.n_outcome_duplicates)
        yield GaugeMetricFamily("upsell_pending_decisions", "Decisions waiting for an outcome or their window",
                                value=s.n_pending)
        yield CounterMetricFamily("upsell_applied_decisions", "Decisions the policy learned from (outcome or expiry)",
                                  value=s.n_applied)
        rejected = CounterMetricFamily("upsell_rejected_outcomes", "Outcomes and logged rows that did not count, by "
                                       "reason (details in rejected.jsonl)", labels=["reason"])
        for reason, n in sorted(s.rejected_counts.items()):
            rejected.add_metric([reason], n)
        yield rejected
        yield GaugeMetricFamily("upsell_checkpoint_age_seconds", "Seconds since the policy file was last saved",
                                value=time.time() - s.last_checkpoint)
        info = InfoMetricFamily("upsell_snapshot", "The policy version being served")
        info.add_metric([], {"policy_version": s.holder.snapshot.policy_version})
        yield info
        yield CounterMetricFamily("upsell_snapshots_published", "Snapshots swapped in by the trainer",
                                  value=s.holder.n_published)
        yield GaugeMetricFamily("upsell_policy_updates", "Observations the live policy has learned from",
                                value=s.holder.snapshot.n_updates)
        yield CounterMetricFamily("upsell_trainer_errors", "Trainer rounds that failed", value=s.n_trainer_errors)
        yield CounterMetricFamily("upsell_trainer_steps", "Trainer steps run", value=s.n_trainer_steps)
        yield CounterMetricFamily("upsell_trainer_step_seconds", "Wall seconds spent in trainer steps (with the trainer "
                                  "in a process: the round trip to it)",
                                  value=s.step_seconds)
        yield GaugeMetricFamily("upsell_trainer_last_step_seconds", "Wall seconds of the last trainer step",
                                value=s.last_step_seconds)
        yield CounterMetricFamily("upsell_compactions", "Journal compactions into the Parquet logs",
                                  value=s.n_compactions)
        yield CounterMetricFamily("upsell_compaction_seconds", "Wall seconds spent compacting the journal",
                                  value=s.compaction_seconds)
        yield CounterMetricFamily("upsell_journal_bad_lines", "Unreadable journal lines skipped at recovery",
                                  value=s.n_journal_bad_lines)


def build_metrics(service: DecisionService) -> tuple[CollectorRegistry, Counter, Histogram, Counter]:
    """A registry with the request metrics (returned for the handlers) and the service's state.

    Metrics: ``upsell_requests_total{endpoint,code}``, ``upsell_request_duration_seconds{endpoint}`` (histogram),
    ``upsell_rejected_requests_total{endpoint,field}``, ``upsell_decisions_total{arm}``,
    ``upsell_outcomes_received_total``, ``upsell_outcome_duplicates_total``, ``upsell_pending_decisions``,
    ``upsell_applied_decisions_total``, ``upsell_rejected_outcomes_total{reason}``,
    ``upsell_checkpoint_age_seconds``, ``upsell_snapshot_info{policy_version}``,
    ``upsell_snapshots_published_total``, ``upsell_policy_updates``, ``upsell_trainer_errors_total``,
    ``upsell_trainer_steps_total``, ``upsell_trainer_step_seconds_total``, ``upsell_trainer_last_step_seconds``,
    ``upsell_compactions_total``, ``upsell_compaction_seconds_total``, ``upsell_journal_bad_lines_total``.
    """
    registry = CollectorRegistry(auto_describe=False)
    requests = Counter("upsell_requests", "HTTP requests by endpoint and status code", ["endpoint", "code"],
                       registry=registry)
    latency = Histogram("upsell_request_duration_seconds", "Request handling time (seconds)", ["endpoint"],
                        buckets=LATENCY_BUCKETS, registry=registry)
    rejected = Counter("upsell_rejected_requests", "Requests rejected (4xx), by endpoint and field blamed",
                       ["endpoint", "field"], registry=registry)
    registry.register(_Collector(service))
    return registry, requests, latency, rejected


#: What a handler answers: status and JSON payload; what an endpoint answers: status, JSON bytes, extra headers.
Handler = Callable[[Scope, Receive], Awaitable[tuple[int, Any]]]
_Reply = tuple[int, bytes, "dict[str, str] | None"]
_JSON_HEADERS = [(b"content-type", b"application/json")]


def _server_error_body(exc: BaseException) -> bytes:
    name = type(exc).__name__
    return _encode({"error": f"internal error: {name}", "field": "server",
                    "errors": [{"field": "server", "message": name}]}).encode()


class ServiceApp:
    """The ASGI app of :func:`create_app`: ``POST /rank`` and ``POST /reward`` are answered directly (the hot
    path: no router, request or response objects -- the same handlers, validation and metrics as the Starlette
    routes they shadow), everything else by the Starlette app :attr:`starlette` (lifespan, the other endpoints,
    404 / 405)."""

    def __init__(self, starlette: Starlette,
                 hot: dict[str, Callable[[Scope, Receive], Awaitable[_Reply]]]) -> None:
        self.starlette = starlette
        self._hot = hot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path = scope["path"]
            root = scope.get("root_path", "")
            handle = self._hot.get(path[len(root):] if root and path.startswith(root) else path)
            if handle is not None:
                try:
                    status, body, headers = await handle(scope, receive)
                except Exception as exc:  # answered like the Starlette app's 500, then raised for the server's log
                    await _send(send, 500, _server_error_body(exc), None)
                    raise
                await _send(send, status, body, headers)
                return
        await self.starlette(scope, receive, send)


async def _send(send: Send, status: int, body: bytes, headers: dict[str, str] | None) -> None:
    raw = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    if headers:
        raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def create_app(service: DecisionService, *, token: str | None = None,
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, manage: bool = True) -> ServiceApp:
    """The ASGI app serving ``service`` (a :class:`ServiceApp`: the hot endpoints directly, the rest through Starlette).

    Parameters
    ----------
    service : DecisionService
    token : str, optional
        Bearer token for the admin endpoints and ``/reward`` (compared in constant time). None: ``/reward`` is open
        and the admin endpoints are disabled (403).
    max_body_bytes : int
        Largest request body accepted.
    manage : bool, default True
        Start the service (recovery, trainer) when the app starts, unless it is started already, and close it
        (compaction, checkpoint) when it stops, through the ASGI lifespan.
    """
    if token is not None and (not token or not all("!" <= c <= "~" for c in token)):
        # (HTTP header bytes beyond ASCII are read as Latin-1: a non-ASCII token could never match)
        raise ValueError("token must be a non-empty string of printable ASCII characters (no spaces) or None")
    registry, requests, latency, rejected = build_metrics(service)
    # the last snapshot whose plan names were read, and the names: held (compared with ``is``), not keyed by id(),
    # which a later snapshot -- with a plan more -- may reuse once the cached one is freed
    names_cache: list[Any] = [None, []]

    def arm_names(snapshot: Any) -> list[str]:
        if names_cache[0] is not snapshot:
            names_cache[:] = [snapshot, snapshot.arm_names]
        names: list[str] = names_cache[1]
        return names

    def authenticated(scope: Scope) -> bool:
        """Whether the request carries the configured bearer token (False when no token is configured)."""
        if token is None:
            return False
        scheme, _, given = (_header(scope, b"authorization") or "").partition(" ")
        return scheme.lower() == "bearer" and check_token(given.strip(), token)

    def authorize(scope: Scope, *, admin: bool) -> None:
        if admin and token is None:
            raise HTTPError(403, "authorization", "admin endpoints are disabled: start the service with --token-file")
        if token is not None and not authenticated(scope):
            raise HTTPError(401, "authorization", "missing or wrong bearer token (Authorization: Bearer <token>)")

    def endpoint(name: str, fn: Handler) -> Callable[[Scope, Receive], Awaitable[_Reply]]:
        """``fn`` with rejected requests turned into JSON errors, counted and timed."""
        timer = latency.labels(endpoint=name)
        counters: dict[int, Any] = {}

        async def handle(scope: Scope, receive: Receive) -> _Reply:
            t0 = time.perf_counter()
            headers = None
            try:
                status, payload = await fn(scope, receive)
            except (HTTPError, RequestError) as exc:
                error = exc if isinstance(exc, HTTPError) else HTTPError(exc.status, exc.field, str(exc))
                rejected.labels(name, _metric_field(error.field)).inc()
                status, payload, headers = error.status, error.payload(), error.headers()
            body = _encode(payload).encode()
            counter = counters.get(status)
            if counter is None:
                counter = counters[status] = requests.labels(name, str(status))
            counter.inc()
            timer.observe(time.perf_counter() - t0)
            return status, body, headers

        return handle

    def route(handle: Callable[[Scope, Receive], Awaitable[_Reply]]) -> Callable[[Request], Awaitable[Response]]:
        async def respond(request: Request) -> Response:
            status, body, headers = await handle(request.scope, request.receive)
            return Response(body, status_code=status, media_type="application/json", headers=headers)

        return respond

    async def rank(scope: Scope, receive: Receive) -> tuple[int, Any]:
        body = _parse(RankBody, await _read_body(scope, receive, max_body_bytes))
        decision = await service.rank_async(body.context, body.eligible, body.event_id)
        probs = decision.probabilities.tolist()
        names = arm_names(service.holder.snapshot)  # arms are only appended: the deciding snapshot's are a prefix
        return 200, {
            "event_id": decision.event_id, "arm": decision.arm, "propensity": decision.propensity,
            "probabilities": dict(zip(names[: len(probs)], probs, strict=True)),
            "policy_version": decision.policy_version,
        }

    async def reward(scope: Scope, receive: Receive) -> tuple[int, Any]:
        authorize(scope, admin=False)
        body = _parse(RewardBody, await _read_body(scope, receive, max_body_bytes))
        receipt = await service.reward_async(body.event_id, body.reward, body.timestamp)
        return 202, {"event_id": receipt.event_id, "status": receipt.status,
                     "timestamp": receipt.timestamp.isoformat()}

    async def healthz(scope: Scope, receive: Receive) -> tuple[int, Any]:
        snap = service.holder.snapshot
        ok = service.healthy
        error = service.last_error
        body = {
            "status": "ok" if ok else "unhealthy", "policy_version": snap.policy_version, "n_updates": snap.n_updates,
            "pending_decisions": service.n_pending, "durability": service.durability,
            "checkpoint_age_seconds": round(time.time() - service.last_checkpoint, 3),
            "error_type": None if error is None else type(error).__name__,
        }
        if authenticated(scope):  # the message names paths and plans: for the operator only (module docstring)
            body["last_error"] = None if error is None else str(error)[:500]
        return 200 if ok else 503, body

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    async def admin(run: Callable[[], Any], status: int = 200) -> tuple[int, Any]:
        try:
            result = await asyncio.wrap_future(run())
        except CheckpointError as exc:  # the change was undone: nothing to fix in the request, retry later
            raise HTTPError(503, "server", str(exc)) from None
        except (RuntimeError, EOFError, OSError) as exc:
            if service.trainer_mode != "process" or service.healthy:
                raise
            # the trainer process has exited (was a 500 "internal error: RuntimeError"): the operator's next step
            raise HTTPError(503, "server", f"the trainer process has exited, the admin command was not confirmed "
                            f"({type(exc).__name__}); requests are still served and logged: restart the service to "
                            "recover") from None
        except ValueError as exc:
            message = str(exc)
            raise HTTPError(409 if "already exists" in message else 422, "name", message) from None
        return status, result

    async def add_arm(scope: Scope, receive: Receive) -> tuple[int, Any]:
        authorize(scope, admin=True)
        body = _parse(ArmBody, await _read_body(scope, receive, max_body_bytes))  # (value: finite, pydantic checks)
        try:  # the plan's own rules (value > 0, a name that is not blank), blaming the field that breaks them
            Arm(name=body.name, value=body.value)
        except ValidationError as exc:
            errors = [{"field": _field_path(e["loc"]), "message": e["msg"]} for e in exc.errors(include_url=False)]
            raise HTTPError(422, errors[0]["field"], errors[0]["message"], errors) from None
        return await admin(lambda: service.add_arm(body.name, body.value), 201)

    async def retire_arm(scope: Scope, receive: Receive) -> tuple[int, Any]:
        authorize(scope, admin=True)
        name = scope["path_params"]["name"]
        return await admin(lambda: service.retire_arm(name))

    async def checkpoint(scope: Scope, receive: Receive) -> tuple[int, Any]:
        authorize(scope, admin=True)
        return await admin(service.force_checkpoint)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if manage and not service.started:
            await asyncio.get_running_loop().run_in_executor(None, service.start)
        try:
            yield
        finally:
            if manage:
                await asyncio.get_running_loop().run_in_executor(None, service.close)

    async def server_error(request: Request, exc: Exception) -> Response:
        return Response(_server_error_body(exc), status_code=500, media_type="application/json")

    handle_rank, handle_reward = endpoint("rank", rank), endpoint("reward", reward)
    routes = [
        Route("/rank", route(handle_rank), methods=["POST"]),
        Route("/reward", route(handle_reward), methods=["POST"]),
        Route("/healthz", route(endpoint("healthz", healthz)), methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/admin/arms", route(endpoint("admin_add_arm", add_arm)), methods=["POST"]),
        # (:path: a plan name may hold "/", which a client sends as %2F and the router sees decoded)
        Route("/admin/arms/{name:path}", route(endpoint("admin_retire_arm", retire_arm)), methods=["DELETE"]),
        Route("/admin/checkpoint", route(endpoint("admin_checkpoint", checkpoint)), methods=["POST"]),
    ]
    starlette = Starlette(routes=routes, lifespan=lifespan, exception_handlers={Exception: server_error})
    return ServiceApp(starlette, {"/rank": handle_rank, "/reward": handle_reward})
