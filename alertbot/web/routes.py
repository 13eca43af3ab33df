"""HTTP handlers. Raw requests become validated models here; nothing deeper sees dicts."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import urllib.parse
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Literal, TypeVar

import aiohttp
import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from alertbot.bootstrap import Services
from alertbot.domain.parse import (
    ParsedWebhook,
    decode_json,
    describe_validation_error,
    parse_alerts,
)
from alertbot.domain.route import MatcherField
from alertbot.errors import (
    AlertbotError,
    NotFound,
    PayloadError,
    PayloadTooLarge,
    RequestTimeout,
    StoreUnavailable,
    Unauthorized,
    UnsupportedMediaType,
)
from alertbot.services.roles import Actor, Source
from alertbot.slack.commands import Command, parse_interaction
from alertbot.store import change_events, decisions, incident_notes, incidents, outbox, rejected_alerts
from alertbot.store import silences as silence_repo
from alertbot.store.schema import parse_id
from alertbot.timeline import incident_timeline
from alertbot.web.state import STATE, AppState

WEBHOOK_PATH = "/webhook/alertmanager"
# A body declared this small is read without waiting for a body slot: aiohttp buffers this much per
# connection anyway (alertbot.web.app.READ_BUFFER_BYTES), so stalled clients cannot hold the slots
# an Alertmanager notification (a few KiB) would need.
SMALL_BODY_BYTES = 64 * 1024

log = structlog.get_logger("alertbot.web")


def _state(request: web.Request) -> AppState:
    return request.app[STATE]


def require_bearer(request: web.Request, secret: SecretStr | None) -> None:
    """Constant-time check of ``Authorization: Bearer <secret>``; no secret configured → open."""
    if secret is None:
        return
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    expected = secret.get_secret_value().encode()
    # Header bytes that are not UTF-8 arrive as surrogate escapes: back to those bytes, they never match.
    offered = given.strip().encode("utf-8", "surrogateescape")
    if scheme.lower() != "bearer" or not hmac.compare_digest(offered, expected):
        raise Unauthorized("missing or invalid bearer token")


def require_json(request: web.Request) -> None:
    ctype = request.content_type
    if ctype != "application/json" and not ctype.endswith("+json"):
        raise UnsupportedMediaType(f"Content-Type must be application/json, got {ctype or 'none'!r}")


def refuse_declared_oversize(request: web.Request, limit: int) -> None:
    """413 at once for a body declared larger than ``limit``: not a byte of it is read."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"body of {declared} bytes exceeds the limit of {limit} bytes")


def body_deadline(request: web.Request) -> float:
    """When the request's body must have arrived: ``webhook.body_timeout`` from now (the handler's start)."""
    timeout = request.app[STATE].config.webhook.body_timeout.total_seconds()
    return asyncio.get_running_loop().time() + timeout


async def read_body(request: web.Request, limit: int, *, deadline: float | None = None) -> bytes:
    """The request body, refused as soon as it is known to exceed ``limit`` bytes, or when it has not
    arrived by ``deadline`` (loop time; default ``webhook.body_timeout`` from now): 408, and the
    connection is closed."""
    refuse_declared_oversize(request, limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout_at(deadline if deadline is not None else body_deadline(request)):
            async for chunk in request.content.iter_chunked(64 * 1024):
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"body exceeds the limit of {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise RequestTimeout("the request body did not arrive within webhook.body_timeout") from None
    except (ConnectionError, aiohttp.ClientPayloadError):
        # The client went away mid-body (or sent a broken chunked encoding): nothing to process.
        raise PayloadError("the connection closed before the whole body arrived") from None
    return b"".join(chunks)


@contextlib.asynccontextmanager
async def body_slot(request: web.Request, state: AppState, deadline: float) -> AsyncIterator[None]:
    """A slot of ``webhook.max_concurrent_bodies`` for reading and parsing a body larger than
    ``SMALL_BODY_BYTES`` (or of unknown size); waiting for it counts against the body's deadline."""
    declared = request.content_length
    if declared is not None and declared <= SMALL_BODY_BYTES:
        yield
        return
    try:
        async with asyncio.timeout_at(deadline):
            await state.body_slots.acquire()
    except TimeoutError:
        raise RequestTimeout("the request body did not arrive within webhook.body_timeout") from None
    try:
        yield
    finally:
        state.body_slots.release()


async def record_rejected(state: AppState, parsed: ParsedWebhook) -> None:
    """Store the alerts of a payload that could not be processed; count and log each new one once."""
    items = [
        rejected_alerts.NewRejected(r.raw, r.reason, parsed.receiver, parsed.group_key, r.code) for r in parsed.rejected
    ]
    stored = await state.store.write(rejected_alerts.record, items, state.clock())
    for item in stored:
        state.metrics.alerts_rejected.labels(item.code).inc()
        log.warning("alert_rejected", reason=item.reason, receiver=item.receiver, group_key=item.group_key)


async def webhook_alertmanager(request: web.Request) -> web.Response:
    state = _state(request)
    status = 500
    try:
        require_bearer(request, state.secrets.webhook_token)
        require_json(request)
        limits = state.config.webhook
        refuse_declared_oversize(request, limits.max_body_bytes)
        deadline = body_deadline(request)
        async with body_slot(request, state, deadline):  # bounds the memory of many large posts at once
            body = await read_body(request, limits.max_body_bytes, deadline=deadline)
            parsed = parse_alerts(body, max_value_bytes=limits.max_value_bytes)
        if parsed.rejected:
            await record_rejected(state, parsed)
        if parsed.payload is None:
            raise PayloadError(parsed.problem())
        stats = await state.pipeline.accept(parsed.payload)
        status = 200
        answer: dict[str, object] = {"status": "accepted", "alerts": stats.alerts}
        if parsed.rejected:
            answer["rejected"] = len(parsed.rejected)
        return web.json_response(answer)
    except AlertbotError as exc:
        status = exc.http_status
        raise
    finally:
        state.metrics.webhook_requests.labels(str(status)).inc()


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """200 ``ok`` when the store can commit a webhook now; else 503 ``unavailable`` (starting, store
    down, disk full, read-only, SQLite file deleted or replaced: see store/health.py). Why is logged;
    the answer carries it only for a caller holding the API token."""
    state = _state(request)
    readiness = state.readiness
    reason = "alertbot is starting" if readiness is None or not state.started else await readiness.check()
    if reason is None:
        return web.json_response({"status": "ok"})
    body = {"status": "unavailable"}
    if _holds_api_token(request, state):
        body["reason"] = reason
    return web.json_response(body, status=503)


def _holds_api_token(request: web.Request, state: AppState) -> bool:
    if state.secrets.api_token is None:
        return False
    try:
        require_bearer(request, state.secrets.api_token)
    except Unauthorized:
        return False
    return True


async def metrics(request: web.Request) -> web.Response:
    state = _state(request)
    with contextlib.suppress(AlertbotError):  # keep the last known value; /readyz reports the store
        state.metrics.outbox_pending.set(await state.store.read(outbox.pending_count))
    body = generate_latest(state.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def list_incidents(request: web.Request) -> web.Response:
    state = _state(request)
    require_bearer(request, state.secrets.api_token)
    status = request.query.get("status")
    if status not in (None, "firing", "resolved", "rejected"):
        raise PayloadError(f"status: must be firing, resolved or rejected, got {status!r}")
    try:
        limit = int(request.query.get("limit", "500"))
    except ValueError:
        raise PayloadError("limit: must be an integer") from None
    if not 1 <= limit <= 5000:
        raise PayloadError("limit: must be between 1 and 5000")
    if status == "rejected":  # alerts that could not be processed (docs/operations.md)
        rejected = await state.store.read(rejected_alerts.recent, limit)
        return web.json_response([r.to_json() for r in rejected])
    records = await state.store.read(incidents.list_incidents, status=status, limit=limit)
    return web.json_response([r.to_json() for r in records])


def _int_param(request: web.Request, name: str) -> int:
    raw = request.match_info[name]
    value = parse_id(raw)
    if value is None:
        raise NotFound(f"no {name.removesuffix('_id')} {raw!r}")
    return value


async def get_incident(request: web.Request) -> web.Response:
    state = _state(request)
    require_bearer(request, state.secrets.api_token)
    incident_id = _int_param(request, "incident_id")
    record = await state.store.read(incidents.get, incident_id)
    if record is None:
        raise NotFound(f"no incident {incident_id}")
    notifications = await state.store.read(outbox.for_incident, record.chain_id)
    history = await state.store.read(incident_notes.for_incidents, [incident_id])
    return web.json_response(
        {**record.to_json(), "notifications": notifications, "history": [note.to_json() for note in history]}
    )


async def get_timeline(request: web.Request) -> web.Response:
    """The incident's alerts, notifications, changes, runbook runs, acks and notes, in order."""
    state = _state(request)
    require_bearer(request, state.secrets.api_token)
    incident_id = _int_param(request, "incident_id")
    entries = await state.store.read(
        incident_timeline, incident_id, lookback=state.config.correlation.lookback, now=state.clock()
    )
    if entries is None:
        raise NotFound(f"no incident {incident_id}")
    return web.json_response([e.to_json() for e in entries])


class SilenceRequest(BaseModel):
    """POST /api/v1/silences. ``duration`` is checked (with every other limit) by the silence service."""

    model_config = ConfigDict(extra="forbid")

    matchers: list[MatcherField] = Field(min_length=1, max_length=50)
    duration: str | int | float | None = None
    ends_at: datetime | None = None
    created_by: str = Field("api", min_length=1, max_length=200)
    comment: str = Field("", max_length=2000)
    force: bool = False  # required for matchers that would silence every alert

    @model_validator(mode="after")
    def _one_end(self) -> SilenceRequest:
        if (self.duration is None) == (self.ends_at is None):
            raise ValueError("give exactly one of duration (e.g. '2h') or ends_at")
        if self.ends_at is not None and self.ends_at.tzinfo is None:
            raise ValueError("ends_at must carry a timezone, e.g. 2026-11-30T08:00:00Z")
        return self


M = TypeVar("M", bound=BaseModel)


async def api_request(request: web.Request, model: type[M]) -> M:
    """An API call's body: bearer-checked, JSON, at most 64 KiB, validated as ``model`` (400 says where)."""
    require_bearer(request, _state(request).secrets.api_token)
    require_json(request)
    body = decode_json(await read_body(request, 64 * 1024))
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise PayloadError(describe_validation_error(exc)) from None


def _services(state: AppState) -> Services:
    if state.services is None:
        raise StoreUnavailable("alertbot is starting")
    return state.services


async def create_silence(request: web.Request) -> web.Response:
    state = _state(request)
    spec = await api_request(request, SilenceRequest)
    silence = await _services(state).silences.create(
        Actor(Source.API, spec.created_by),
        list(spec.matchers),
        duration=spec.duration,
        ends_at=spec.ends_at,
        comment=spec.comment,
        force=spec.force,
    )
    return web.json_response(silence_repo.silence_json(silence), status=201)


async def list_silences(request: web.Request) -> web.Response:
    state = _state(request)
    require_bearer(request, state.secrets.api_token)
    include_expired = request.query.get("expired", "false").lower() in ("1", "true", "yes")
    found = await _services(state).silences.list(include_expired=include_expired)
    return web.json_response([silence_repo.silence_json(s) for s in found])


async def expire_silence(request: web.Request) -> web.Response:
    state = _state(request)
    require_bearer(request, state.secrets.api_token)
    silence_id = _int_param(request, "silence_id")
    await _services(state).silences.expire(Actor(Source.API, "api"), silence_id)
    return web.json_response({"id": silence_id, "status": "expired"})


class Link(BaseModel):
    model_config = ConfigDict(extra="forbid")

    href: str = Field(min_length=1, max_length=2000)
    text: str = Field("", max_length=200)


class ChangeEventRequest(BaseModel):
    """POST /api/v1/events: a deployment, config change, flag flip or traffic shift."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["deployment", "config_change", "feature_flag", "traffic_shift"]
    service: str = Field(min_length=1, max_length=253)
    namespace: str = Field(min_length=1, max_length=253)
    version: str = Field("", max_length=200)
    actor: str = Field(min_length=1, max_length=200)
    description: str = Field(min_length=1, max_length=4000)
    timestamp: datetime
    links: list[Link] = Field(default_factory=list, max_length=20)
    id: str | None = Field(None, min_length=1, max_length=200)
    # What alertbot may offer to undo for pages that follow: virtualservice/NAME or deployment/NAME.
    target: str = Field("", pattern=r"^((virtualservice|deployment)/[a-z0-9]([-a-z0-9.]*[a-z0-9])?)?$")

    @model_validator(mode="after")
    def _complete(self) -> ChangeEventRequest:
        if self.kind == "deployment" and not self.version:
            raise ValueError("version: required for a deployment")
        self.timestamp = _utc("timestamp", self.timestamp)
        return self


def _utc(name: str, value: datetime) -> datetime:
    """A client's time as UTC: it must name its timezone, and be one UTC can hold (year 1 at +14:00
    is not) — else a ValueError naming the field (400), never an error from the store (500)."""
    if value.tzinfo is None:
        raise ValueError(f"{name}: must carry a timezone, e.g. 2026-11-29T20:00:00Z")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{name}: out of range") from None


async def post_event(request: web.Request) -> web.Response:
    state = _state(request)
    spec = await api_request(request, ChangeEventRequest)
    values = spec.model_dump(exclude={"id"})
    values["links"] = [link.model_dump() for link in spec.links]
    values["event_id"] = spec.id
    event, created = await state.store.write(change_events.record, values=values, source="api", now=state.clock())
    return web.json_response({**event.to_json(), "duplicate": not created}, status=201 if created else 200)


async def list_events(request: web.Request) -> web.Response:
    state = _state(request)
    require_bearer(request, state.secrets.api_token)
    since_raw = request.query.get("since")
    since = None
    if since_raw:
        try:
            parsed = datetime.fromisoformat(since_raw.replace("Z", "+00:00"))
        except ValueError:
            raise PayloadError(f"since: not an ISO 8601 time: {since_raw!r}") from None
        try:
            since = _utc("since", parsed)
        except ValueError as exc:
            raise PayloadError(str(exc)) from None
    found = await state.store.read(
        change_events.recent,
        service=request.query.get("service"),
        namespace=request.query.get("namespace"),
        since=since,
        limit=500,
    )
    return web.json_response([e.to_json() for e in found])


async def list_decisions(request: web.Request) -> web.Response:
    """What shadow mode would have sent or run, newest first."""
    state = _state(request)
    require_bearer(request, state.secrets.api_token)
    found = await state.store.read(decisions.recent, 500)
    return web.json_response([d.to_json() for d in found])


SLACK_BODY_LIMIT = 64 * 1024


async def _verified_slack_form(request: web.Request, state: AppState) -> dict[str, str]:
    """Verify the signature on the raw body, then (only then) parse the form."""
    body = await read_body(request, SLACK_BODY_LIMIT)
    await state.slack_verifier.verify(
        timestamp=request.headers.get("X-Slack-Request-Timestamp"),
        signature=request.headers.get("X-Slack-Signature"),
        body=body,
        now=state.clock(),
        store=state.store if state.started else None,  # replays refused across replicas (docs/operations.md)
    )
    try:
        form = urllib.parse.parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise PayloadError("body is not valid UTF-8") from None
    return {key: values[0] for key, values in form.items()}


async def slack_commands(request: web.Request) -> web.Response:
    state = _state(request)
    form = await _verified_slack_form(request, state)
    if state.slack is None:
        raise StoreUnavailable("alertbot is starting")
    command = Command(
        user_id=form.get("user_id", ""),
        user_name=form.get("user_name", ""),
        text=form.get("text", ""),
        response_url=form.get("response_url", ""),
    )
    return web.json_response(await state.slack.command(command))


async def slack_interactions(request: web.Request) -> web.Response:
    state = _state(request)
    form = await _verified_slack_form(request, state)
    if state.slack is None:
        raise StoreUnavailable("alertbot is starting")
    try:
        payload = parse_interaction(form.get("payload", ""))
    except ValueError:
        raise PayloadError("payload: not a JSON object") from None
    answer = await state.slack.interaction(payload)
    return web.json_response(answer) if answer is not None else web.Response(status=200)


def setup_routes(app: web.Application) -> None:
    app.router.add_post(WEBHOOK_PATH, webhook_alertmanager)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/v1/incidents", list_incidents)
    app.router.add_get("/api/v1/incidents/{incident_id}", get_incident)
    app.router.add_get("/api/v1/incidents/{incident_id}/timeline", get_timeline)
    app.router.add_post("/api/v1/silences", create_silence)
    app.router.add_get("/api/v1/silences", list_silences)
    app.router.add_delete("/api/v1/silences/{silence_id}", expire_silence)
    app.router.add_get("/api/v1/decisions", list_decisions)
    app.router.add_post("/api/v1/events", post_event)
    app.router.add_get("/api/v1/events", list_events)
    app.router.add_post("/slack/commands", slack_commands)
    app.router.add_post("/slack/interactions", slack_interactions)
