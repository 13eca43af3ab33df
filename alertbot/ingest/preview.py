"""A dry run through the webhook's own stages, for ``alertbot replay`` and ``alertbot test``.

The payloads are ingested, in order, by the same ``Ingest`` the daemon runs, into a scratch SQLite
store made for the run and deleted after it; what that transaction decided is then read back: the
notifications it queued (held or not), what it recorded instead of sending (shadow mode), the
runbook runs its automations asked for, and what muted the alert. Nothing is sent and nothing of
the real store is read or changed, so silences, cooldowns and earlier incidents of the running
daemon do not apply: the preview is of a fresh start seeing these payloads.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alertbot.domain.models import Alert, WebhookPayload
from alertbot.ingest.heartbeat import DeadMansSwitch
from alertbot.ingest.ingest import Ingest
from alertbot.notify.base import Notification
from alertbot.settings import Config
from alertbot.store import schema
from alertbot.store.engine import Store

# Routing decides as if both were configured; the caller says which are not enabled where it runs.
PREVIEW_CHANNELS = ("pagerduty", "slack")


@dataclass(frozen=True)
class QueuedNotification:
    channel: str
    target: str
    event: str
    notification: Notification
    held: str | None  # why a resolve would wait, if it would


@dataclass(frozen=True)
class RequestedRun:
    automation: str
    runbook: str
    status: str  # queued (runs now) | pending (awaits approval) | failed (could not be asked for)
    params: dict[str, Any]
    result: str


@dataclass
class Decided:
    """What ingest decided for one alert of a payload."""

    alert: Alert
    acted: bool = False  # False: a repeat of what the store already had; nothing was decided
    suppressed_by: str | None = None
    notifications: list[QueuedNotification] = field(default_factory=list)
    recorded: list[str] = field(default_factory=list)  # shadow mode: what would have been done
    runs: list[RequestedRun] = field(default_factory=list)


async def preview(config: Config, payloads: Sequence[WebhookPayload], now: datetime) -> list[list[Decided]]:
    """Per payload, per alert: what the daemon would decide on a fresh start receiving these payloads."""
    ingest = Ingest(
        config,
        list(PREVIEW_CHANNELS),
        DeadMansSwitch(config, list(PREVIEW_CHANNELS)),  # only its periodic check pages, never run here
        owner=lambda: "",
        lease=lambda: timedelta(0),
    )
    with tempfile.TemporaryDirectory(prefix="alertbot-preview-") as tmp:
        store = await Store.open(f"sqlite:///{Path(tmp) / 'preview.db'}")
        try:
            out = []
            for index, payload in enumerate(payloads):
                at = now + timedelta(milliseconds=index)  # in order, as Alertmanager would send them
                out.append(await store.write(_ingest_and_read, ingest, payload, at))
            return out
        finally:
            await store.close()


def _ingest_and_read(conn: Connection, ingest: Ingest, payload: WebhookPayload, now: datetime) -> list[Decided]:
    since = {table.name: _last_id(conn, table) for table in (schema.outbox, schema.runbook_runs, schema.decisions)}
    before = {alert.fingerprint: _latest(conn, alert.fingerprint) for alert in payload.alerts}
    ingest.ingest_all(conn, [payload], now)
    return [_decided(conn, alert, since, before[alert.fingerprint]) for alert in payload.alerts]


Latest = tuple[int, str, str | None]  # an alert's latest incident: (id, status, suppressed_by)


def _latest(conn: Connection, fingerprint: str) -> Latest | None:
    """The alert's latest incident: what a payload may have changed."""
    inc = schema.incidents.c
    row = conn.execute(
        sa.select(inc.id, inc.status, inc.suppressed_by)
        .where(inc.fingerprint == fingerprint)
        .order_by(inc.id.desc())
        .limit(1)
    ).first()
    return None if row is None else (row.id, row.status, row.suppressed_by)


def _last_id(conn: Connection, table: sa.Table) -> int:
    return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(table.c.id), 0))).scalar_one())


def _decided(conn: Connection, alert: Alert, since: dict[str, int], before: Latest | None) -> Decided:
    """What this payload's transaction did for ``alert``: rows newer than ``since`` of its latest
    incident; ``acted`` when the incident changed from ``before`` or anything was queued for it."""
    decided = Decided(alert)
    latest = _latest(conn, alert.fingerprint)
    if latest is None:
        return decided
    incident_id, _status, decided.suppressed_by = latest
    ob = schema.outbox.c
    for queued in conn.execute(
        sa.select(ob.channel, ob.target, ob.event, ob.payload, ob.hold)
        .where(ob.incident_id == incident_id, ob.id > since["outbox"])
        .order_by(ob.id)
    ):
        notification = Notification.model_validate(queued.payload)
        decided.notifications.append(
            QueuedNotification(queued.channel, queued.target, queued.event, notification, queued.hold)
        )
    dc = schema.decisions.c
    decided.recorded = list(
        conn.execute(
            sa.select(dc.summary).where(dc.incident_id == incident_id, dc.id > since["decisions"]).order_by(dc.id)
        ).scalars()
    )
    rr = schema.runbook_runs.c
    for run in conn.execute(
        sa.select(rr.automation, rr.runbook, rr.status, rr.params, rr.result)
        .where(rr.trigger.like(f"alert:{incident_id} %"), rr.id > since["runbook_runs"])
        .order_by(rr.id)
    ):
        decided.runs.append(RequestedRun(run.automation or "", run.runbook, run.status, dict(run.params), run.result))
    decided.acted = latest != before or bool(decided.notifications or decided.recorded or decided.runs)
    return decided
