"""PagerDuty's side of v3 webhooks: event bodies shaped as developer.pagerduty.com documents them
(PagerDuty/developer-docs, docs/webhooks/01-Overview.md: the envelope, the `incident` and
`incident_note` data types) and signed as docs/webhooks/04-Signatures.md describes —
`X-PagerDuty-Signature: v1=<hex HMAC-SHA256 of the raw body>`, one per signing secret, comma separated."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime
from typing import Any

ACME = "https://acme.pagerduty.com"


def reference(kind: str, ref_id: str, summary: str) -> dict[str, str]:
    path = {"user_reference": "users", "service_reference": "services", "incident_reference": "incidents"}[kind]
    return {
        "html_url": f"{ACME}/{path}/{ref_id}",
        "id": ref_id,
        "self": f"https://api.pagerduty.com/{path}/{ref_id}",
        "summary": summary,
        "type": kind,
    }


def incident_event(
    event_type: str,
    incident_key: str,
    *,
    status: str,
    who: str = "Tenex Engineer",
    pd_id: str = "PGR0VU2",
    assignees: tuple[str, ...] = ("User 123",),
    occurred_at: datetime | None = None,
) -> dict[str, Any]:
    """An event whose `data` is an `incident` (acknowledged, resolved, reassigned, ...)."""
    data = {
        "id": pd_id,
        "type": "incident",
        "self": f"https://api.pagerduty.com/incidents/{pd_id}",
        "html_url": f"{ACME}/incidents/{pd_id}",
        "number": 2,
        "status": status,
        "incident_key": incident_key,
        "created_at": "2026-11-29T19:55:00Z",
        "title": "High 5xx error rate on nutrition-service",
        "service": reference("service_reference", "PF9KMXH", "AI Nutritionist"),
        "assignees": [reference("user_reference", f"PU{i:05d}", name) for i, name in enumerate(assignees)],
        "urgency": "high",
        "resolve_reason": None,
    }
    return _envelope(event_type, data, who, occurred_at)


def note_event(content: str, *, pd_id: str = "PGR0VU2", who: str = "Tenex Engineer") -> dict[str, Any]:
    """incident.annotated: `data` is an `incident_note`, naming only PagerDuty's incident id."""
    data = {
        "incident": reference("incident_reference", pd_id, "High 5xx error rate on nutrition-service"),
        "id": "P2LA89X",
        "content": content,
        "trimmed": False,
        "type": "incident_note",
    }
    return _envelope("incident.annotated", data, who, None)


def _envelope(event_type: str, data: dict[str, Any], who: str, occurred_at: datetime | None) -> dict[str, Any]:
    return {
        "event": {
            "id": str(uuid.uuid4()),
            "event_type": event_type,
            "resource_type": "incident",
            "occurred_at": (occurred_at or datetime.now(UTC)).isoformat().replace("+00:00", "Z"),
            "agent": reference("user_reference", "PLH1HKV", who),
            "client": {"name": "PagerDuty"},
            "data": data,
        }
    }


def signed(event: dict[str, Any], *secrets: str) -> tuple[bytes, dict[str, str]]:
    """The body and headers PagerDuty sends: one v1 signature per signing secret."""
    body = json.dumps(event).encode()
    signatures = ",".join("v1=" + hmac.new(s.encode(), body, hashlib.sha256).hexdigest() for s in secrets)
    return body, {"Content-Type": "application/json", "X-PagerDuty-Signature": signatures}
