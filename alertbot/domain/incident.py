"""An incident as notifications describe it: what a notification renders, whoever holds the incident.

``IncidentFacts`` is the shape notify renders from. A stored incident has it (the store's record
carries these fields and more), and so does ``IncidentView``, built from an alert alone — what
``alertbot replay`` shows without a database, before any incident exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from alertbot.domain.models import Alert, Classification, Severity

# The incident id a preview shows: nothing is stored, so no real incident has it.
PREVIEW_ID = 0


class IncidentFacts(Protocol):
    """The fields of an incident a notification is made of (read-only)."""

    @property
    def id(self) -> int: ...
    @property
    def fingerprint(self) -> str: ...
    @property
    def alertname(self) -> str: ...
    @property
    def service(self) -> str: ...
    @property
    def namespace(self) -> str: ...
    @property
    def severity(self) -> Severity: ...
    @property
    def reason(self) -> str: ...
    @property
    def labels(self) -> dict[str, str]: ...
    @property
    def annotations(self) -> dict[str, str]: ...
    @property
    def starts_at(self) -> datetime: ...
    @property
    def ends_at(self) -> datetime | None: ...
    @property
    def generator_url(self) -> str: ...
    @property
    def group_key(self) -> str: ...


@dataclass(frozen=True)
class IncidentView:
    """``IncidentFacts`` as plain values."""

    id: int
    fingerprint: str
    alertname: str
    service: str
    namespace: str
    severity: Severity
    reason: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None
    generator_url: str
    group_key: str = ""

    @classmethod
    def preview(cls, alert: Alert, classification: Classification) -> IncidentView:
        """The incident an alert would open, before anything is stored (id ``PREVIEW_ID``)."""
        return cls(
            id=PREVIEW_ID,
            fingerprint=alert.fingerprint,
            alertname=alert.alertname,
            service=alert.service,
            namespace=alert.namespace,
            severity=classification.severity,
            reason=classification.reason,
            labels=dict(alert.labels),
            annotations=dict(alert.annotations),
            starts_at=alert.starts_at,
            ends_at=alert.ends_at,
            generator_url=alert.generator_url,
        )
