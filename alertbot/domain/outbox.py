"""What the outbox carries: a typed intent to notify one destination of one incident's event."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NotRequired, TypedDict

from alertbot.domain.jsontypes import JSONObject


class OutboxEvent(StrEnum):
    TRIGGER = "trigger"
    RESOLVE = "resolve"
    ACKNOWLEDGE = "acknowledge"
    UPDATE = "update"  # the same alert's message changed in place (a flapping count, a storm's count)


class Channel(StrEnum):
    PAGERDUTY = "pagerduty"
    SLACK = "slack"
    CONSOLE = "console"
    ESCALATION = "escalation"  # a step of an escalation policy, due at its time (notify/escalation.py)


class StoredDestination(TypedDict):
    """Where an incident was sent, as stored with it (``shadow``: only recorded, in shadow mode)."""

    channel: str
    target: str
    stands_in_for: list[str]  # the receivers a console line stands in for
    shadow: NotRequired[bool]


class OutboxValues(TypedDict):
    """The outbox columns an intent fills."""

    incident_id: int
    event: str
    channel: str
    target: str
    payload: JSONObject
    fingerprint: str


@dataclass(frozen=True)
class OutboxIntent:
    """One notification to queue: this incident's ``event`` to ``channel``/``target``, carrying the
    notification as rendered when it was decided (``payload``: free-form JSON for the notifier)."""

    incident_id: int
    event: OutboxEvent
    channel: str  # a Channel, or the name of another registered notifier
    target: str
    payload: JSONObject  # the Notification as JSON: opaque here, validated back by the notifier

    @property
    def fingerprint(self) -> str:
        """The ordering key shared by an alert's episodes: the fingerprint of the notification."""
        return str(self.payload["fingerprint"])

    @classmethod
    def of(cls, row: OutboxIntent | Mapping[str, Any]) -> OutboxIntent:
        """An intent, or one given as its outbox columns (incident_id, event, channel, target, payload)."""
        if isinstance(row, OutboxIntent):
            return row
        return cls(row["incident_id"], OutboxEvent(row["event"]), row["channel"], row["target"], dict(row["payload"]))

    def values(self) -> OutboxValues:
        """The outbox columns it fills."""
        return {
            "incident_id": self.incident_id,
            "event": self.event.value,
            "channel": str(self.channel),
            "target": self.target,
            "payload": self.payload,
            "fingerprint": self.fingerprint,
        }
