"""Where an alert goes: routing plus shadow mode, and the outbox rows that carry it there."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from alertbot.domain.classify import classify
from alertbot.domain.models import Alert, Classification, Severity, matching_labels
from alertbot.domain.outbox import OutboxEvent, OutboxIntent
from alertbot.domain.route import RouteResult, route
from alertbot.notify.base import (
    CorrelatedChange,
    Destination,
    Event,
    Notification,
    StormSummary,
    destinations,
)
from alertbot.settings import Config
from alertbot.store.incidents import IncidentRecord


@dataclass(frozen=True)
class RoutingPlan:
    """Where one alert would go, and why: used by the explaining CLI commands."""

    classification: Classification
    labels: dict[str, str]
    route: RouteResult
    destinations: list[Destination]  # sent to
    shadow: list[Destination]  # only recorded (shadow mode)


def plan_routing(config: Config, alert: Alert, enabled_channels: Iterable[str]) -> RoutingPlan:
    classification = classify(alert, config.classification, config.thresholds)
    labels = matching_labels(alert, classification)
    result = route(config.routes, labels)
    live, shadow = split_destinations(config, result, classification.severity, enabled_channels)
    return RoutingPlan(classification, labels, result, live, shadow)


def split_destinations(
    config: Config, result: RouteResult, severity: Severity, enabled_channels: Iterable[str]
) -> tuple[list[Destination], list[Destination]]:
    """Where an alert goes (live) and where it would go (shadow: recorded, not sent)."""
    enabled = list(enabled_channels)
    everything_shadow = config.mode == "shadow"
    live = () if everything_shadow else result.live_receivers
    shadow = result.receivers if everything_shadow else result.shadow_receivers
    channels = config.slack.channels
    return (
        destinations(live, severity, channels, enabled),
        destinations(shadow, severity, channels, enabled) if shadow else [],
    )


def route_destinations(
    config: Config, labels: Mapping[str, str], severity: Severity, enabled_channels: Iterable[str]
) -> tuple[list[Destination], list[Destination]]:
    return split_destinations(config, route(config.routes, labels), severity, enabled_channels)


def enabled_channels(notifiers: Mapping[str, object]) -> list[str]:
    return [name for name in notifiers if name != "console"]


def outbox_row(
    incident: IncidentRecord,
    event: Event,
    dest: Destination,
    *,
    storm: StormSummary | None = None,
    approvals: list[dict[str, Any]] | None = None,
    note: str = "",
    changes: list[CorrelatedChange] | None = None,
) -> OutboxIntent:
    """One notification to queue: for this incident, this event, to this destination."""
    return OutboxIntent(
        incident_id=incident.id,
        event=OutboxEvent(event),
        channel=dest.channel,
        target=dest.target,
        payload=Notification.build(
            incident, event, dest, storm=storm, approvals=approvals, note=note, changes=changes
        ).model_dump(mode="json"),
    )
