"""POST /webhook/pagerduty: PagerDuty v3 webhook events, their signature checked on the raw body
before anything is parsed, applied by services/pagerduty_events.py."""

from __future__ import annotations

import structlog
from aiohttp import web

from alertbot.domain.parse import decode_json
from alertbot.errors import StoreUnavailable, Unauthorized
from alertbot.services.pagerduty_events import PagerDutyEvents, signature_ok
from alertbot.web.checks import app_state, read_body

log = structlog.get_logger("alertbot.pagerduty")

PAGERDUTY_WEBHOOK_PATH = "/webhook/pagerduty"
PAGERDUTY_BODY_LIMIT = 256 * 1024


async def webhook_pagerduty(request: web.Request) -> web.Response:
    state = app_state(request)
    secrets = state.secrets.pagerduty_webhook_secrets()
    if not secrets:  # fail closed: nobody may ack or resolve through an unsigned endpoint
        raise Unauthorized("ALERTBOT_PAGERDUTY_WEBHOOK_SECRET is not configured: PagerDuty webhooks are refused")
    body = await read_body(request, PAGERDUTY_BODY_LIMIT)
    if not signature_ok(secrets, body, request.headers.get("X-PagerDuty-Signature")):
        raise Unauthorized("X-PagerDuty-Signature is missing or matches no configured secret")
    data = decode_json(body)
    if not state.started or state.dispatcher is None:
        raise StoreUnavailable("alertbot is starting")
    events = PagerDutyEvents(state.store, clock=state.clock, max_age=lambda: state.config.pagerduty.webhook_max_age)
    applied = await events.apply(data, state.dispatcher.wake)
    log.info("pagerduty_event", status=applied.status, incident_id=applied.incident_id, detail=applied.detail or None)
    return web.json_response({"status": applied.status, "incident_id": applied.incident_id})
