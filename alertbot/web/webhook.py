"""The Alertmanager webhook: authenticated, bounded in size, time and concurrent bodies; parsed once,
its rejected alerts kept, the rest handed to the ingest pipeline."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog
from aiohttp import web

from alertbot.domain.parse import ParsedWebhook, parse_alerts
from alertbot.errors import AlertbotError, PayloadError, RequestTimeout
from alertbot.store import rejected_alerts
from alertbot.web.checks import (
    app_state,
    body_deadline,
    read_body,
    refuse_declared_oversize,
    require_bearer,
    require_json,
)
from alertbot.web.state import AppState

WEBHOOK_PATH = "/webhook/alertmanager"
# A body declared this small is read without waiting for a body slot: aiohttp buffers this much per
# connection anyway (alertbot.web.app.READ_BUFFER_BYTES), so stalled clients cannot hold the slots
# an Alertmanager notification (a few KiB) would need.
SMALL_BODY_BYTES = 64 * 1024

log = structlog.get_logger("alertbot.web")


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
    state = app_state(request)
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
