"""The dead man's switch: Alertmanager's always-firing Watchdog alert proves the pipeline works.

Both halves live here: ``seen`` records a Watchdog as ingest meets it (never notified, but it
resolves a "pipeline broken" page), and ``check`` pages once when it is overdue.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import structlog
from sqlalchemy.engine import Connection

from alertbot import incident_actions
from alertbot.domain.models import Alert, AlertStatus, Classification, Severity, matching_labels
from alertbot.domain.parse import format_duration
from alertbot.ingest.routing import outbox_row, route_destinations
from alertbot.settings import Config
from alertbot.shadow import record_shadow, stored_destinations
from alertbot.store import heartbeats, incidents, outbox

log = structlog.get_logger("alertbot.pipeline")


class DeadMansSwitch:
    def __init__(self, config: Config, enabled_channels: Iterable[str]) -> None:
        self._config = config
        self._enabled = frozenset(enabled_channels)

    @property
    def enabled(self) -> bool:
        return self._config.heartbeat is not None

    def is_heartbeat(self, alert: Alert) -> bool:
        return self._config.heartbeat is not None and alert.alertname == self._config.heartbeat.alertname

    def seen(self, conn: Connection, alert: Alert, now: datetime) -> int:
        """Record a Watchdog; returns how many notifications resolving a "pipeline broken" page it queued."""
        assert self._config.heartbeat is not None
        if alert.status is not AlertStatus.FIRING:
            return 0
        broken = heartbeats.seen(conn, self._config.heartbeat.alertname, now)
        if broken is None:
            return 0
        log.info("heartbeat_restored", incident_id=broken)
        resolved = incident_actions.resolve(
            conn, broken, by=f"{self._config.heartbeat.alertname} arrived again", now=now
        )
        return len(resolved.destinations) if resolved is not None else 0

    def check(self, conn: Connection, now: datetime) -> bool:
        """Page when the Watchdog is overdue (once, until it returns); True when it paged now."""
        policy = self._config.heartbeat
        assert policy is not None
        beat = heartbeats.get(conn, policy.alertname) or heartbeats.start_grace(conn, policy.alertname, now)
        if beat.incident_id is not None or now - beat.last_seen <= policy.max_interval:
            return False
        if not heartbeats.claim_page(conn, policy.alertname):
            return False  # another replica is paging for it
        silent_for = format_duration(now - beat.last_seen)
        alert = Alert.model_validate(
            {
                "status": "firing",
                "startsAt": now,
                "labels": {"alertname": "AlertingPipelineBroken", "service": "alertmanager", "severity": "critical"},
                "annotations": {
                    "summary": (
                        f"No {policy.alertname} from Alertmanager for {silent_for}: the alerting pipeline is broken"
                    ),
                    "description": f"alertbot expects Alertmanager's always-firing {policy.alertname} alert at least "
                    "every "
                    f"{format_duration(policy.max_interval)}. Alerts may not be reaching anyone: check "
                    "Alertmanager, Prometheus and the webhook to alertbot.",
                },
            }
        )
        classification = Classification(
            Severity.CRITICAL,
            f"dead man's switch: no {policy.alertname} for {silent_for} (max {format_duration(policy.max_interval)})",
        )
        incident = incidents.insert(conn, alert, classification, group_key="alertbot/heartbeat", now=now)
        dests, shadow = route_destinations(
            self._config, matching_labels(alert, classification), Severity.CRITICAL, self._enabled
        )
        incidents.set_outcome(
            conn, incident.id, destinations=stored_destinations(dests, shadow), suppressed_by=None, now=now
        )
        outbox.enqueue(conn, [outbox_row(incident, "trigger", dest) for dest in dests], now)
        record_shadow(conn, incident, "trigger", shadow, now)
        heartbeats.paged(conn, policy.alertname, incident.id)
        log.error("heartbeat_missed", alertname=policy.alertname, silent_for=silent_for, incident_id=incident.id)
        return True
