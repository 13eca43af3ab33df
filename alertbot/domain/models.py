"""The Alertmanager webhook payload (version 4) and alertbot's own value types.

The payload models tolerate fields newer Alertmanager versions add (``extra="ignore"``) but are
strict about the ones alertbot relies on: labels and annotations are string maps, ``version`` is
"4", there is at least one alert.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from alertbot.domain.fingerprint import label_fingerprint


class Severity(StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _zero_time_is_none(value: datetime | None) -> datetime | None:
    """Alertmanager sends Go's zero time ``0001-01-01T00:00:00Z`` for "not ended"."""
    if value is None or value.year == 1:
        return None
    return _utc(value)


UTCDatetime = Annotated[datetime, AfterValidator(_utc)]


class Alert(BaseModel):
    """One alert of a webhook notification."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    status: AlertStatus
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: UTCDatetime = Field(alias="startsAt")
    ends_at: Annotated[datetime | None, AfterValidator(_zero_time_is_none)] = Field(None, alias="endsAt")
    generator_url: str = Field("", alias="generatorURL")
    fingerprint: str = ""

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


class WebhookPayload(BaseModel):
    """An Alertmanager webhook notification, payload version "4"."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    version: Literal["4"]
    status: AlertStatus
    alerts: list[Alert] = Field(min_length=1)
    receiver: str = ""
    group_labels: dict[str, str] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[str, str] = Field(default_factory=dict, alias="commonLabels")
    common_annotations: dict[str, str] = Field(default_factory=dict, alias="commonAnnotations")
    external_url: str = Field("", alias="externalURL")
    group_key: str = Field("", alias="groupKey")
    truncated_alerts: int = Field(0, alias="truncatedAlerts")


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
