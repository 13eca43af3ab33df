"""The route table: every HTTP endpoint alertbot serves, and its handler."""

from __future__ import annotations

from aiohttp import web

from alertbot.web.api import (
    ack_incident,
    create_silence,
    expire_silence,
    get_incident,
    get_timeline,
    list_decisions,
    list_events,
    list_incidents,
    list_silences,
    post_event,
    resolve_incident,
)
from alertbot.web.graph_api import GRAPH_PATH, get_graph
from alertbot.web.health import healthz, metrics, readyz, reload_config
from alertbot.web.pagerduty_webhook import PAGERDUTY_WEBHOOK_PATH, webhook_pagerduty
from alertbot.web.runs_api import approve_run, cancel_run, get_run, list_runbooks, list_runs, start_run, undo_run
from alertbot.web.slack_endpoints import slack_commands, slack_interactions
from alertbot.web.webhook import WEBHOOK_PATH, webhook_alertmanager


def setup_routes(app: web.Application) -> None:
    app.router.add_post(WEBHOOK_PATH, webhook_alertmanager)
    app.router.add_post(PAGERDUTY_WEBHOOK_PATH, webhook_pagerduty)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/-/reload", reload_config)
    app.router.add_get("/api/v1/incidents", list_incidents)
    app.router.add_get("/api/v1/incidents/{incident_id}", get_incident)
    app.router.add_get("/api/v1/incidents/{incident_id}/timeline", get_timeline)
    app.router.add_post("/api/v1/incidents/{incident_id}/ack", ack_incident)
    app.router.add_post("/api/v1/incidents/{incident_id}/resolve", resolve_incident)
    app.router.add_get(GRAPH_PATH, get_graph)
    app.router.add_post("/api/v1/silences", create_silence)
    app.router.add_get("/api/v1/silences", list_silences)
    app.router.add_delete("/api/v1/silences/{silence_id}", expire_silence)
    app.router.add_get("/api/v1/runbooks", list_runbooks)
    app.router.add_get("/api/v1/runs", list_runs)
    app.router.add_post("/api/v1/runs", start_run)
    app.router.add_get("/api/v1/runs/{run_id}", get_run)
    app.router.add_post("/api/v1/runs/{run_id}/undo", undo_run)
    app.router.add_post("/api/v1/runs/{run_id}/approve", approve_run)
    app.router.add_post("/api/v1/runs/{run_id}/cancel", cancel_run)
    app.router.add_get("/api/v1/decisions", list_decisions)
    app.router.add_post("/api/v1/events", post_event)
    app.router.add_get("/api/v1/events", list_events)
    app.router.add_post("/slack/commands", slack_commands)
    app.router.add_post("/slack/interactions", slack_interactions)
