"""The Alertmanager webhook payload (version 4) and alertbot's own value types.

The payload models tolerate fields newer Alertmanager versions add (``extra="ignore"``) but are
strict about the ones alertbot relies on: labels and annotations are string maps, ``version`` is
"4", there is at least one alert.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from alertbot.domain.fingerprint import label_fingerprint
from alertbot.domain.normalise import NORMALISED_ANNOTATION, Normalising, clamp_time, truncate_value


class Severity(StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_ALIASES = {"starts_at": "startsAt", "ends_at": "endsAt", "generator_url": "generatorURL"}


def _normalising(info: ValidationInfo) -> Normalising:
    """The alert's normalisation context; a throw-away default when validated without one."""
    context = info.context
    return context if isinstance(context, Normalising) else Normalising()


def _where(info: ValidationInfo) -> str:
    name = info.field_name or ""
    return _ALIASES.get(name, name)


def _clamped_time(value: datetime, info: ValidationInfo) -> datetime:
    """UTC, within 1970..2200 (clamped and noted when not: see ``alertbot.domain.normalise``)."""
    clamped, why = clamp_time(value)
    if why is not None:
        _normalising(info).note(f"{_where(info)} {why}")
    return clamped


def _zero_time_is_none(value: datetime | None, info: ValidationInfo) -> datetime | None:
    """Alertmanager sends Go's zero time ``0001-01-01T00:00:00Z`` for "not ended"."""
    if value is None or value.year == 1:
        return None
    return _clamped_time(value, info)


def _bounded_values(value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
    """Values longer than ``webhook.max_value_bytes`` cut, with a visible marker, and noted."""
    context = _normalising(info)
    out: dict[str, str] | None = None
    for key, item in value.items():
        cut = truncate_value(item, context.max_value_bytes)
        if cut is None:
            continue
        if out is None:
            out = dict(value)
        out[key] = cut
        size = len(item.encode("utf-8", "surrogatepass"))
        context.note(f"{info.field_name}.{key} truncated from {size} to {context.max_value_bytes} bytes")
    return value if out is None else out


def _bounded_url(value: str, info: ValidationInfo) -> str:
    """A link longer than ``webhook.max_value_bytes`` is dropped (a cut link leads nowhere), and noted."""
    context = _normalising(info)
    if truncate_value(value, context.max_value_bytes) is None:
        return value
    context.note(f"{_where(info)} of {len(value)} characters dropped")
    return ""


MAX_REASON_CHARS = 64


def _reason(value: str) -> str:
    """Alertmanager's reasons are short fixed phrases; anything longer is cut, never refused."""
    return value[:MAX_REASON_CHARS]


UTCDatetime = Annotated[datetime, AfterValidator(_utc)]
AlertTime = Annotated[datetime, AfterValidator(_clamped_time)]
BoundedValues = Annotated[dict[str, str], AfterValidator(_bounded_values)]


class Alert(BaseModel):
    """One alert of a webhook notification."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    status: AlertStatus
    labels: BoundedValues
    annotations: BoundedValues = Field(default_factory=dict)
    starts_at: AlertTime = Field(alias="startsAt")
    ends_at: Annotated[datetime | None, AfterValidator(_zero_time_is_none)] = Field(None, alias="endsAt")
    generator_url: Annotated[str, AfterValidator(_bounded_url)] = Field("", alias="generatorURL")
    fingerprint: str = ""

    @model_validator(mode="after")
    def _note_normalisation(self, info: ValidationInfo) -> Alert:
        # What was clamped or cut is visible on the alert itself (incident, notifications, API).
        context = _normalising(info)
        if context.notes:
            annotations = {**self.annotations, NORMALISED_ANNOTATION: context.summary()}
            object.__setattr__(self, "annotations", annotations)
        return self

    @model_validator(mode="after")
    def _fill_fingerprint(self) -> Alert:
        # Alertmanager always sends one; other senders may not. Compute it the way Alertmanager
        # does so the same alert gets the same identity whoever delivers it.
        if not self.fingerprint:
            object.__setattr__(self, "fingerprint", label_fingerprint(self.labels))
        return self

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def service(self) -> str:
        for key in ("service", "app", "job"):
            if self.labels.get(key):
                return self.labels[key]
        return ""

    @property
    def namespace(self) -> str:
        return self.labels.get("namespace", "")


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    version: Literal["4"]
    status: AlertStatus
    receiver: str = ""
    group_labels: BoundedValues = Field(default_factory=dict, alias="groupLabels")
    common_labels: BoundedValues = Field(default_factory=dict, alias="commonLabels")
    common_annotations: BoundedValues = Field(default_factory=dict, alias="commonAnnotations")
    external_url: str = Field("", alias="externalURL")
    group_key: str = Field("", alias="groupKey")
    truncated_alerts: int = Field(0, alias="truncatedAlerts")
    # Alertmanager 0.32+: why this notification was sent ("first notification", "new alerts added",
    # "repeat interval elapsed", ...; ``NotificationReason``). Empty from older versions.
    notification_reason: Annotated[str, AfterValidator(_reason)] = ""
    # Alertmanager 0.34+: the labels of the route the group took. Added to each alert's labels where
    # the alert has none of that name (``WebhookPayload``).
    route_labels: BoundedValues = Field(default_factory=dict, alias="routeLabels")


class WebhookEnvelope(_Envelope):
    """A webhook notification whose alerts are not validated yet: each is, on its own, so that one
    bad alert does not cost the others (``alertbot.domain.parse.parse_alerts``)."""

    alerts: list[Any] = Field(min_length=1)


class WebhookPayload(_Envelope):
    """An Alertmanager webhook notification, payload version "4"."""

    alerts: list[Alert] = Field(min_length=1)

    @model_validator(mode="after")
    def _add_route_labels(self) -> WebhookPayload:
        # The route's labels take part in alertbot's matching (routes, silences, automations) and
        # show with the alert; the alert's own label wins, and its identity (fingerprint) stays
        # Alertmanager's, computed from its own labels.
        if self.route_labels:
            alerts = [
                alert.model_copy(update={"labels": {**self.route_labels, **alert.labels}})
                if not self.route_labels.keys() <= alert.labels.keys()
                else alert
                for alert in self.alerts
            ]
            object.__setattr__(self, "alerts", alerts)
        return self


class NotificationReason(StrEnum):
    """Alertmanager's ``notification_reason`` values (its notify.go ``NotifyReason.String``)."""

    FIRST = "first notification"
    NEW_ALERTS = "new alerts added"
    SOME_RESOLVED = "some alerts resolved"
    ALL_RESOLVED = "all alerts resolved"
    REPEAT = "repeat interval elapsed"


@dataclass(frozen=True, slots=True)
class Classification:
    """alertbot's verdict on one alert: exactly one severity and why."""

    severity: Severity
    reason: str
    sli: str | None = None
    value: float | None = None


def matching_labels(alert: Alert, classification: Classification) -> dict[str, str]:
    """The label set routes, silences, inhibition and automations match against.

    It is the alert's labels with ``severity`` replaced by alertbot's classification, so that a
    matcher ``severity="critical"`` means what alertbot decided, not what the rule author wrote.
    """
    return {**alert.labels, "severity": classification.severity.value}
