"""Liveness, readiness and metrics: /healthz, /readyz, /metrics."""

from __future__ import annotations

import contextlib

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from alertbot.errors import AlertbotError, ReloadRefused, StoreUnavailable, Unauthorized
from alertbot.store import outbox
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
    with contextlib.suppress(AlertbotError):  # keep the last known value; /readyz reports the store
        state.metrics.outbox_pending.set(await state.store.read(outbox.pending_count))
    body = generate_latest(state.metrics.registry)
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
