"""Runbook runs through the HTTP API (/api/v1/runs): the audit log, and running, undoing, approving
and cancelling — through the policy layer (services/runs.py, services/approvals.py), as Slack and the
CLI do.

Changing production through the API needs the API token to be configured: without one (on loopback,
or with ``security.allow_unauthenticated``) dry runs, the audit log and cancelling still work, but
nothing is applied. A run can take minutes (a rollout, a Prometheus check): a client that sends
``Accept: application/x-ndjson`` gets each step as it starts and ends, one JSON object per line, a
heartbeat line every ``HEARTBEAT`` seconds so proxies keep the connection, and the result last. A
client that goes away does not stop the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Coroutine
from typing import Any

import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator

from alertbot.errors import AlertbotError, NotFound, PayloadError
from alertbot.runbooks.progress import Progress, StepEvent
from alertbot.services.approvals import Verdict
from alertbot.services.roles import Actor, Forbidden, Source
from alertbot.store import runbook_runs
from alertbot.store.runbook_runs import RunRecord
from alertbot.web.checks import api_request, app_state, operator_name, path_id, query_limit, require_bearer, services_of
from alertbot.web.state import AppState

log = structlog.get_logger("alertbot.api")

NDJSON = "application/x-ndjson"
HEARTBEAT = 10.0  # seconds between heartbeat lines on a streamed run (ingress idle timeouts are ~60 s)
WRITE_TIMEOUT = 5.0  # seconds a streamed line may wait for a client that does not read


class RunRequest(BaseModel):
    """POST /api/v1/runs: plan a runbook (``execute`` false, the default) or apply it."""

    model_config = ConfigDict(extra="forbid")

    runbook: str = Field(min_length=1, max_length=200)
    params: dict[str, str] = Field(default_factory=dict, max_length=50)
    execute: bool = False
    requested_by: str = Field("api", min_length=1, max_length=200)

    _name = field_validator("requested_by")(operator_name)


class UndoRequest(BaseModel):
    """POST /api/v1/runs/{id}/undo: plan (or apply) restoring what the run found."""

    model_config = ConfigDict(extra="forbid")

    execute: bool = False
    requested_by: str = Field("api", min_length=1, max_length=200)

    _name = field_validator("requested_by")(operator_name)


class DecideRequest(BaseModel):
    """POST /api/v1/runs/{id}/approve and /cancel: who decides."""

    model_config = ConfigDict(extra="forbid")

    by: str = Field("api", min_length=1, max_length=200)

    _name = field_validator("by")(operator_name)


def _may_change_production(state: AppState) -> None:
    if state.secrets.api_token is None:
        raise Forbidden(
            "changing production through the API needs the API token (ALERTBOT_API_TOKEN or api.token_file); "
            "dry runs do not"
        )


async def _record(state: AppState, run_id: int) -> RunRecord:
    record = await state.store.read(runbook_runs.get, run_id)
    if record is None:
        raise NotFound(f"no run {run_id}")
    return record


async def list_runbooks(request: web.Request) -> web.Response:
    """The runbooks the daemon has loaded, with their params."""
    state = app_state(request)
    require_bearer(request, state.secrets.api_token)
    fields = {"name", "description", "risk", "params"}
    runbooks = services_of(state).runs.runbooks.values()
    return web.json_response([r.model_dump(mode="json", include=fields) for r in runbooks])


async def list_runs(request: web.Request) -> web.Response:
    """The audit log, newest first (``limit``, default 50)."""
    state = app_state(request)
    require_bearer(request, state.secrets.api_token)
    records = await state.store.read(runbook_runs.history, query_limit(request, default=50, maximum=1000))
    return web.json_response([r.to_json() for r in records])


async def get_run(request: web.Request) -> web.Response:
    state = app_state(request)
    require_bearer(request, state.secrets.api_token)
    return web.json_response((await _record(state, path_id(request, "run_id"))).to_json())


async def start_run(request: web.Request) -> web.StreamResponse:
    state = app_state(request)
    spec = await api_request(request, RunRequest)
    services = services_of(state)
    if spec.execute:
        _may_change_production(state)
    # A client's mistake is a 400 naming the key, before anything streams.
    try:
        runbook = services.runs.runbook(spec.runbook)
    except PayloadError as exc:
        raise PayloadError(f"runbook: {exc.message}") from None
    try:
        runbook.resolve_params(spec.params)
    except ValueError as exc:
        raise PayloadError(f"params: {exc}") from None
    actor = Actor(Source.API, spec.requested_by)
    log.info("api_run", runbook=spec.runbook, execute=spec.execute, by=actor.audit, remote=request.remote)

    async def work(progress: Progress | None) -> dict[str, Any]:
        run = services.runs.run(actor, spec.runbook, spec.params, execute=spec.execute, progress=progress)
        return (await run).to_json()

    return await _respond(request, state, work)


async def undo_run(request: web.Request) -> web.StreamResponse:
    state = app_state(request)
    spec = await api_request(request, UndoRequest)
    services = services_of(state)
    if spec.execute:
        _may_change_production(state)
    record = await _record(state, path_id(request, "run_id"))
    if not record.applied:
        raise PayloadError(f"run {record.id} ({record.status}) changed nothing: nothing to undo")
    actor = Actor(Source.API, spec.requested_by)
    log.info("api_undo", run_id=record.id, execute=spec.execute, by=actor.audit, remote=request.remote)

    async def work(progress: Progress | None) -> dict[str, Any]:
        result = await services.runs.undo(actor, record.id, execute=spec.execute, progress=progress)
        return result.to_json()

    return await _respond(request, state, work)


async def approve_run(request: web.Request) -> web.StreamResponse:
    """Approve a pending run (asked for in Slack, or by an automation that needs approval); once
    approved by as many as its risk needs, it runs here."""
    state = app_state(request)
    spec = await api_request(request, DecideRequest)
    services = services_of(state)
    _may_change_production(state)
    record = await _record(state, path_id(request, "run_id"))
    actor = Actor(Source.API, spec.by)
    log.info("api_approve", run_id=record.id, by=actor.audit, remote=request.remote)

    async def work(progress: Progress | None) -> dict[str, Any]:
        outcome = await services.approvals.approve(actor, record.id)
        body = outcome.to_json()
        if outcome.verdict is Verdict.APPROVED:
            body["result"] = (await services.approvals.execute(outcome.record, progress)).to_json()
        return body

    return await _respond(request, state, work)


async def cancel_run(request: web.Request) -> web.Response:
    state = app_state(request)
    spec = await api_request(request, DecideRequest)
    run_id = path_id(request, "run_id")
    await _record(state, run_id)
    cancelled = await services_of(state).approvals.cancel(Actor(Source.API, spec.by), run_id)
    if cancelled is None:
        current = await _record(state, run_id)
        raise PayloadError(f"run {run_id} is {current.status}: only a pending run can be cancelled")
    return web.json_response({"run_id": run_id, "status": "cancelled"})


async def _respond(
    request: web.Request, state: AppState, work: Callable[[Progress | None], Coroutine[Any, Any, dict[str, Any]]]
) -> web.StreamResponse:
    """``work``'s result as JSON; streamed with its steps' progress when the client accepts NDJSON.
    The work is detached from the request: it goes on when the client goes away, and through reloads."""
    runs = state.operator_runs
    if NDJSON not in request.headers.get("Accept", ""):
        return web.json_response(await runs.detached(work(None)))
    response = web.StreamResponse(headers={"Content-Type": NDJSON, "Cache-Control": "no-store"})
    await response.prepare(request)
    lock = asyncio.Lock()

    async def send(line: dict[str, Any]) -> None:
        # A client that stops reading must not hold the run up: a line it does not take in time is dropped.
        async with asyncio.timeout(WRITE_TIMEOUT), lock:
            await response.write(json.dumps(line).encode() + b"\n")

    async def progress(event: StepEvent) -> None:
        await send(event.to_json())

    async def heartbeat() -> None:
        while True:
            await asyncio.sleep(HEARTBEAT)
            with contextlib.suppress(ConnectionError, TimeoutError):
                await send({"event": "heartbeat"})

    beating = asyncio.create_task(heartbeat(), name="api-run-heartbeat")
    try:
        final = {"event": "result", **await runs.detached(work(progress))}
    except AlertbotError as exc:  # the status line has gone: the error is the last line instead
        final = {"event": "error", "status": exc.http_status, "error": {"code": exc.code, "message": exc.message}}
    except Exception as exc:  # never end the stream without saying so (the run may have changed things)
        log.error("unhandled_error", path=request.path, error=repr(exc))
        message = "internal error: see `alertbot runbook history` for what the run did"
        final = {"event": "error", "status": 500, "error": {"code": "internal", "message": message}}
    finally:
        beating.cancel()
        await asyncio.wait({beating})
    with contextlib.suppress(ConnectionError, TimeoutError):  # the client went away: the run is recorded all the same
        await send(final)
        async with asyncio.timeout(WRITE_TIMEOUT):
            await response.write_eof()
    return response
