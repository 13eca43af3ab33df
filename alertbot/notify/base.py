"""What a notifier is, what it is given, and where a notification goes.

A route names receivers (``pagerduty``, ``slack``, ``slack:#chan``, ``console``); ``destinations``
turns them into concrete (channel, target) pairs. A channel whose notifier is not enabled (its
secret is absent) is stood in for by the console notifier, and all stand-ins of one alert collapse
into one console line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict

from alertbot.domain.incident import IncidentFacts
from alertbot.domain.models import Severity
from alertbot.domain.outbox import StoredDestination
from alertbot.settings_sections import SlackChannels

# update: the same alert's message changed in place (a flapping count); only channels that can edit a
# message they sent (Slack, and the console standing in for it) are sent updates.
Event = Literal["trigger", "resolve", "acknowledge", "update"]
UPDATABLE_CHANNELS = frozenset({"slack", "console"})


@dataclass(frozen=True)
class Destination:
    channel: str
    target: str = ""
    stands_in_for: tuple[str, ...] = ()

    def to_json(self) -> StoredDestination:
        return {"channel": self.channel, "target": self.target, "stands_in_for": list(self.stands_in_for)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Destination:
        return cls(data["channel"], data.get("target", ""), tuple(data.get("stands_in_for", ())))


def destinations(
    receivers: Iterable[str], severity: Severity, channels: SlackChannels, enabled: Iterable[str]
) -> list[Destination]:
    enabled_set = set(enabled)
    concrete: dict[tuple[str, str], None] = {}
    standing_in: dict[str, None] = {}
    for receiver in receivers:
        kind, _, target = receiver.partition(":")
        if kind == "slack" and not target:
            target = channels.for_severity(severity)
        if kind == "console" or kind not in enabled_set:
            standing_in.setdefault(receiver if kind == "console" else f"{kind}:{target}".rstrip(":"), None)
            continue
        concrete.setdefault((kind, target), None)
    out = [Destination(kind, target) for kind, target in concrete]
    if standing_in:
        stood_for = tuple(r for r in standing_in if r != "console")
        out.append(Destination("console", "", stood_for))
    return out


def live_and_shadow(stored: Iterable[Mapping[str, Any]]) -> tuple[list[Destination], list[Destination]]:
    """An incident's stored destinations, split into those notified and those only recorded (shadow)."""
    live: list[Destination] = []
    shadow: list[Destination] = []
    for item in stored:
        (shadow if item.get("shadow") else live).append(Destination.from_json(item))
    return live, shadow


class StormSummary(BaseModel):
    """A group in an alert storm: how many of its alerts are collapsed into this one notification."""

    model_config = ConfigDict(frozen=True)

    group_key: str
    group_labels: dict[str, str]
    count: int
    firing: int
    sample: list[str]


class CorrelatedChange(BaseModel):
    """A recent change to the alert's service: "started 3 min after …" and what would undo it."""

    model_config = ConfigDict(frozen=True)

    id: int
    kind: str
    text: str  # started 3 min after deployment nutrition-service 1.4.3: canary at 10 % (by deploy-bot)
    target: str = ""  # virtualservice/NAME | deployment/NAME: a rollback can be offered


class EscalationStep(BaseModel):
    """One row of an incident's escalation (``oncall.escalations``), carried by its outbox row on the
    ``escalation`` channel: whom to tell, and where the page's own messages are.

    ``kind``: ``notify`` is a step of the policy; ``renotify`` re-posts the page while nobody has
    acknowledged it; ``ack_timeout`` ends the acknowledgement given at ``acked_at`` if the incident
    still fires then. Every row carries the policy's ``ack_timeout`` and ``renotify``, so an ack or a
    re-notification plans the next row without the config."""

    model_config = ConfigDict(frozen=True)

    policy: str
    kind: Literal["notify", "renotify", "ack_timeout"] = "notify"
    number: int = 0  # 1-based, across repeats (notify)
    of: int = 0
    target: str = ""  # schedule:NAME | user:SLACK_ID | channel:#name | pagerduty (notify)
    due: datetime
    next_target: str = ""  # the step after this one, if any
    next_due: datetime | None = None
    pages: list[str] = []  # the Slack channels the page went to
    ack_timeout: timedelta | None = None
    renotify: timedelta | None = None
    acked_by: str = ""  # ack_timeout: whose acknowledgement, given when
    acked_at: datetime | None = None

    @property
    def row_target(self) -> str:
        """The outbox row's target, as the incident's timeline shows it."""
        return self.target if self.kind == "notify" else self.kind


class Notification(BaseModel):
    """Everything a notifier needs, decided and frozen when the alert was accepted."""

    model_config = ConfigDict(frozen=True)

    incident_id: int
    event: Event
    channel: str
    target: str
    stands_in_for: list[str]
    fingerprint: str
    alertname: str
    service: str
    namespace: str
    severity: Severity
    reason: str
    summary: str
    description: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None
    generator_url: str
    runbook_url: str
    group_key: str
    storm: StormSummary | None = None
    actor: str | None = None  # who acknowledged or resolved it by hand
    approvals: list[dict[str, Any]] = []  # runbook runs awaiting approval for it: {run_id, runbook}
    note: str = ""  # what alertbot is doing about it, e.g. flap damping
    changes: list[CorrelatedChange] = []  # recent changes to its service, newest first
    escalation: EscalationStep | None = None  # on the escalation channel: the step to take

    @classmethod
    def build(
        cls,
        incident: IncidentFacts,
        event: Event,
        destination: Destination,
        *,
        storm: StormSummary | None = None,
        actor: str | None = None,
        approvals: list[dict[str, Any]] | None = None,
        note: str = "",
        changes: list[CorrelatedChange] | None = None,
        escalation: EscalationStep | None = None,
    ) -> Notification:
        annotations = incident.annotations
        return cls(
            incident_id=incident.id,
            event=event,
            channel=destination.channel,
            target=destination.target,
            stands_in_for=list(destination.stands_in_for),
            fingerprint=incident.fingerprint,
            alertname=incident.alertname,
            service=incident.service,
            namespace=incident.namespace,
            severity=incident.severity,
            reason=incident.reason,
            summary=annotations.get("summary") or incident.alertname or incident.fingerprint,
            description=annotations.get("description", ""),
            labels=incident.labels,
            annotations=annotations,
            starts_at=incident.starts_at,
            ends_at=incident.ends_at,
            generator_url=incident.generator_url,
            runbook_url=annotations.get("runbook_url", ""),
            group_key=incident.group_key,
            storm=storm,
            actor=actor,
            approvals=approvals or [],
            note=note,
            changes=changes or [],
            escalation=escalation,
        )


@dataclass(frozen=True)
class PostedMessage:
    """A message a notifier posted that later notifications of the incident edit (Slack's channel and
    ``ts``). The notifier only reports it; the dispatcher stores it with the delivery, in one
    transaction, so a notifier never writes the database after the peer accepted its message."""

    incident_id: int
    fingerprint: str
    target: str
    channel_id: str
    ts: str


class Notifier(Protocol):
    """Delivers one notification or raises ``NotifyError`` (retryable or not); returns the message it
    posted when later notifications must find it again, else None."""

    channel: str

    async def send(self, notification: Notification) -> PostedMessage | None: ...
