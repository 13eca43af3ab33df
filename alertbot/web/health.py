"""Liveness, readiness and metrics: /healthz, /readyz, /metrics."""

from __future__ import annotations

import contextlib

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from alertbot.errors import AlertbotError, ReloadRefused, StoreUnavailable, Unauthorized
from alertbot.store import figures
from alertbot.web.checks import app_state, require_bearer
from alertbot.web.state import AppState


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """200 ``ok`` when the store can commit a webhook now; else 503 ``unavailable`` (starting, store
    down, disk full, read-only, SQLite file deleted or replaced: see store/health.py). Why is logged;
    the answer carries it only for a caller holding the API token."""
    state = app_state(request)
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
    state = app_state(request)
    m = state.metrics
    readiness = state.readiness
    ready = readiness is not None and state.started and await readiness.check() is None
    m.ready.set(1 if ready else 0)
    heartbeat = state.config.heartbeat
    with contextlib.suppress(AlertbotError):  # keep the last known values; alertbot_ready says why not
        found = await state.store.read(figures.read, heartbeat.alertname if heartbeat is not None else None)
        now = state.clock()
        m.outbox_pending.set(found.pending)
        for channel in {*state.notifiers, *found.oldest_pending}:
            queued = found.oldest_pending.get(channel)
            m.outbox_oldest_age.labels(channel).set(max((now - queued).total_seconds(), 0) if queued else 0)
        for severity in ("critical", "warning", "info"):
            m.incidents_firing.labels(severity).set(found.firing.get(severity, 0))
        if found.watchdog_last_seen is not None:
            m.watchdog_last_seen.set(found.watchdog_last_seen.timestamp())
    body = generate_latest(m.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def reload_config(request: web.Request) -> web.Response:
    """POST /-/reload (API token): read the config file and the runbooks again (web/runtime.py).
    200 when applied; 400 with the reason when refused (the running config stays in force)."""
    state = app_state(request)
    require_bearer(request, state.secrets.api_token)
    if state.reloader is None:
        raise StoreUnavailable("alertbot is starting")
    refused = await state.reloader.reload(f"POST /-/reload from {request.remote}")
    if refused is not None:
        raise ReloadRefused(f"reload refused, the running config is kept: {refused}")
    return web.json_response({"status": "reloaded"})
