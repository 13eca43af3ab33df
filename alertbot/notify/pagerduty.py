"""PagerDuty Events API v2: one endpoint, a small aiohttp client.

``trigger`` opens (or updates) a PagerDuty alert keyed by ``dedup_key``; ``resolve`` with the same
key closes it. The key is derived from the incident's identity, so retries and restarts never open
a second PagerDuty incident. Responses: 202 accepted; 400 invalid (not retried); 429 throttled and
5xx (retried by the outbox).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from typing import Literal, NotRequired, TypedDict

import aiohttp
from pydantic import SecretStr

from alertbot.errors import NotifyError, retryable_http_status
from alertbot.notify.base import Notification
from alertbot.notify.links import ContextLink, LinkMaker

SUMMARY_LIMIT = 1024
DEDUP_KEY_LIMIT = 255
PD_SEVERITY = {"critical": "critical", "warning": "warning", "info": "info"}


def dedup_key(notification: Notification) -> str:
    """One PagerDuty alert per incident — or, during an alert storm, one per Alertmanager group."""
    if notification.storm is not None:
        digest = hashlib.sha256(notification.storm.group_key.encode()).hexdigest()[:32]
        return f"alertbot/group/{digest}"
    key = f"alertbot/{notification.fingerprint}/{int(notification.starts_at.timestamp() * 1000)}"
    return key[:DEDUP_KEY_LIMIT]


def _clip(text: str) -> str:
    return text if len(text) <= SUMMARY_LIMIT else text[: SUMMARY_LIMIT - 1] + "…"


def group_title(labels: dict[str, str], group_key: str) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or group_key


def _summary(n: Notification) -> str:
    if n.storm is not None:
        return _clip(
            f"[STORM] {n.storm.count} alerts in group {group_title(n.storm.group_labels, n.storm.group_key)}"
            f" ({n.storm.firing} firing): " + "; ".join(n.storm.sample)
        )
    subject = f"[{n.severity.value.upper()}] {n.alertname or n.fingerprint}"
    if n.service:
        subject += f" {n.service}"
    text = f"{subject}: {n.summary}" if n.summary and n.summary != n.alertname else subject
    text += f" — {n.reason}"
    if n.changes:
        text += f" — {n.changes[0].text}"
    return _clip(text)


class StormDetails(TypedDict):
    group_key: str
    group_labels: dict[str, str]
    count: int
    firing: int
    sample: list[str]


class CustomDetails(TypedDict):
    """What alertbot puts in ``payload.custom_details`` (free-form for PagerDuty, fixed here)."""

    reason: str
    incident_id: int
    fingerprint: str
    labels: dict[str, str]
    annotations: dict[str, str]
    storm: NotRequired[StormDetails]
    recent_changes: NotRequired[list[str]]


# The event's ``payload`` (``class`` is a keyword, hence the functional form); absent keys are omitted.
EventPayload = TypedDict(
    "EventPayload",
    {
        "summary": str,
        "source": str,
        "severity": str,
        "timestamp": str,
        "component": NotRequired[str],
        "group": NotRequired[str],
        "class": NotRequired[str],
        "custom_details": NotRequired[CustomDetails],
    },
)


class Link(TypedDict):
    href: str
    text: str


class Event(TypedDict):
    """An Events API v2 request body."""

    routing_key: str
    dedup_key: str
    event_action: Literal["trigger", "resolve", "acknowledge"]
    client: NotRequired[str]
    payload: NotRequired[EventPayload]
    links: NotRequired[list[Link]]


def build_event(n: Notification, routing_key: str, context: Sequence[ContextLink] = ()) -> Event:
    """The Events API v2 body for a notification (pure; validated against the official schema in tests)."""
    if n.event in ("resolve", "acknowledge"):
        return {"routing_key": routing_key, "dedup_key": dedup_key(n), "event_action": n.event}
    details: CustomDetails = {
        "reason": n.reason,
        "incident_id": n.incident_id,
        "fingerprint": n.fingerprint,
        "labels": n.labels,
        "annotations": n.annotations,
    }
    if n.storm is not None:
        storm = n.storm
        details["storm"] = {
            "group_key": storm.group_key,
            "group_labels": dict(storm.group_labels),
            "count": storm.count,
            "firing": storm.firing,
            "sample": list(storm.sample),
        }
    if n.changes:
        details["recent_changes"] = [c.text for c in n.changes]
    payload: EventPayload = {
        "summary": _summary(n),
        "source": n.labels.get("instance")
        or "/".join(p for p in (n.namespace, n.service) if p)
        or n.alertname
        or "alertbot",
        "severity": PD_SEVERITY[n.severity.value],
        "timestamp": n.starts_at.isoformat(),
    }
    if n.service:
        payload["component"] = n.service
    if n.namespace:
        payload["group"] = n.namespace
    if n.alertname:
        payload["class"] = n.alertname
    payload["custom_details"] = details
    event: Event = {
        "routing_key": routing_key,
        "dedup_key": dedup_key(n),
        "event_action": "trigger",
        "client": "alertbot",
        "payload": payload,
    }
    links: list[Link] = [
        {"href": url, "text": text}
        for url, text in (
            (n.generator_url, "Source (Prometheus)"),
            (n.runbook_url, "Runbook"),
            *((link.url, link.text) for link in context),
        )
        if url
    ]
    if links:
        event["links"] = links
    return event


class PagerDutyNotifier:
    channel = "pagerduty"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        events_url: str,
        routing_key: SecretStr | None,
        named_keys: dict[str, SecretStr] | None = None,
        *,
        links: LinkMaker | None = None,
    ) -> None:
        self._links = links  # deep links for the event (context in docs/configuration.md)
        self._session = session
        self._url = events_url
        self._routing_key = routing_key
        self._named = dict(named_keys or {})

    def _key(self, target: str) -> SecretStr:
        """The routing key for a destination: ``pagerduty`` → the default, ``pagerduty:NAME`` → NAME's."""
        key = self._named.get(re.sub(r"[^a-z0-9]", "_", target.lower())) if target else self._routing_key
        if key is None:
            wanted = f"ALERTBOT_PAGERDUTY_ROUTING_KEY_{target.upper()}" if target else "ALERTBOT_PAGERDUTY_ROUTING_KEY"
            raise NotifyError(
                f"no PagerDuty routing key for pagerduty{':' + target if target else ''} (set {wanted})",
                retryable=False,
            )
        return key

    async def send(self, notification: Notification) -> None:
        if notification.event == "update":
            return  # a PagerDuty incident has no message to edit; the pipeline sends it none
        links = self._links(notification) if self._links is not None else []
        event = build_event(notification, self._key(notification.target).get_secret_value(), links)
        try:
            async with self._session.post(self._url, json=event) as resp:
                body = await resp.text()
                status = resp.status
                retry_after = _retry_after(resp.headers.get("Retry-After"))
        except (aiohttp.ClientError, OSError) as exc:
            raise NotifyError(f"PagerDuty unreachable: {type(exc).__name__}: {exc}", retryable=True) from exc
        if 200 <= status < 300:
            return
        raise NotifyError(
            f"PagerDuty answered HTTP {status}: {_error_text(body)}",
            retryable=retryable_http_status(status),
            retry_after=retry_after,
        )


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def _error_text(body: str) -> str:
    """PagerDuty's 400 body is {"status", "message", "errors": [...]}; keep it short and useful."""
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        return body[:300] or "(empty body)"
    if isinstance(data, dict):
        parts = [str(data.get("message", ""))] + [str(e) for e in data.get("errors", []) or []]
        return "; ".join(p for p in parts if p)[:300] or body[:300]
    return body[:300]
