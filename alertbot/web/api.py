"""The HTTP API (/api/v1): incidents and their timelines, silences, change events, shadow-mode
decisions. Silences go through the policy layer (services/)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from alertbot.domain.route import MatcherField
from alertbot.errors import Conflict, NotFound, PayloadError
from alertbot.services.roles import Action, Actor, Source
from alertbot.store import change_events, decisions, incident_notes, incidents, outbox, rejected_alerts
from alertbot.store import silences as silence_repo
from alertbot.timeline import incident_timeline
from alertbot.web.checks import (
    api_request,
    app_state,
    operator_name,
    path_id,
    query_limit,
    require_bearer,
    services_of,
)


async def list_incidents(request: web.Request) -> web.Response:
    state = app_state(request)
    require_bearer(request, state.secrets.api_token)
    status = request.query.get("status")
    if status not in (None, "firing", "resolved", "rejected"):
        raise PayloadError(f"status: must be firing, resolved or rejected, got {status!r}")
    limit = query_limit(request, default=500, maximum=5000)
    if status == "rejected":  # alerts that could not be processed (docs/operations.md)
        rejected = await state.store.read(rejected_alerts.recent, limit)
        return web.json_response([r.to_json() for r in rejected])
    records = await state.store.read(incidents.list_incidents, status=status, limit=limit)
    return web.json_response([r.to_json() for r in records])


async def get_incident(request: web.Request) -> web.Response:
    state = app_state(request)
    require_bearer(request, state.secrets.api_token)
    incident_id = path_id(request, "incident_id")
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
    state = app_state(request)
    require_bearer(request, state.secrets.api_token)
    incident_id = path_id(request, "incident_id")
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


async def create_silence(request: web.Request) -> web.Response:
    state = app_state(request)
    spec = await api_request(request, SilenceRequest)
    silence = await services_of(state).silences.create(
        Actor(Source.API, spec.created_by),
        list(spec.matchers),
        duration=spec.duration,
        ends_at=spec.ends_at,
        comment=spec.comment,
        force=spec.force,
    )
    return web.json_response(silence_repo.silence_json(silence), status=201)


async def list_silences(request: web.Request) -> web.Response:
    state = app_state(request)
    require_bearer(request, state.secrets.api_token)
    include_expired = request.query.get("expired", "false").lower() in ("1", "true", "yes")
    found = await services_of(state).silences.list(include_expired=include_expired)
    return web.json_response([silence_repo.silence_json(s) for s in found])


async def expire_silence(request: web.Request) -> web.Response:
    state = app_state(request)
    require_bearer(request, state.secrets.api_token)
    silence_id = path_id(request, "silence_id")
    await services_of(state).silences.expire(Actor(Source.API, "api"), silence_id)
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
    state = app_state(request)
    spec = await api_request(request, ChangeEventRequest)
    values = spec.model_dump(exclude={"id"})
    values["links"] = [link.model_dump() for link in spec.links]
    values["event_id"] = spec.id
    event, created = await state.store.write(change_events.record, values=values, source="api", now=state.clock())
    return web.json_response({**event.to_json(), "duplicate": not created}, status=201 if created else 200)


async def list_events(request: web.Request) -> web.Response:
    state = app_state(request)
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
    state = app_state(request)
    require_bearer(request, state.secrets.api_token)
    found = await state.store.read(decisions.recent, query_limit(request, default=500, maximum=5000))
    return web.json_response([d.to_json() for d in found])


class IncidentActionRequest(BaseModel):
    """POST /api/v1/incidents/{id}/ack and /resolve: who does it (recorded in the audit trail)."""

    model_config = ConfigDict(extra="forbid")

    by: str = Field("api", min_length=1, max_length=200)

    _name = field_validator("by")(operator_name)


async def _act(request: web.Request, action: Action) -> web.Response:
    """Acknowledge or resolve by hand, as from Slack: PagerDuty and Slack follow, escalation stops."""
    state = app_state(request)
    body = await api_request(request, IncidentActionRequest)
    incident_id = path_id(request, "incident_id")
    outcome = await services_of(state).incidents.act(Actor(Source.API, body.by), action, incident_id)
    if outcome.incident is None:
        if outcome.state == "missing":
            raise NotFound(f"no incident {incident_id}")
        raise Conflict(f"incident {incident_id} is {outcome.state}: nothing to do")
    return web.json_response(outcome.incident.to_json())


async def ack_incident(request: web.Request) -> web.Response:
    return await _act(request, Action.ACK)


async def resolve_incident(request: web.Request) -> web.Response:
    return await _act(request, Action.RESOLVE)
