"""Alerts that could not be processed on their own (``alertbot.domain.parse.parse_alerts``): kept with
their raw JSON (bounded) and the reason, listed by ``GET /api/v1/incidents?status=rejected``."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alertbot.store.schema import insert_ignore, record_json, rejected_alerts

RAW_LIMIT = 64 * 1024  # characters of an alert's JSON kept
RAW_MARKER = "…[cut by alertbot]"


@dataclass(frozen=True)
class RejectedRecord:
    id: int
    reason: str
    raw: str
    receiver: str
    group_key: str
    received_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {**record_json(self), "status": "rejected"}


@dataclass(frozen=True)
class NewRejected:
    """An alert to record: its JSON value as received, why it was rejected, and where it came from."""

    raw: Any
    reason: str
    receiver: str
    group_key: str
    code: str = "invalid"  # why, as one of a fixed set of words (the metric's label)


def _safe(text: str) -> str:
    """Text any database takes: a lone surrogate (JSON allows ``\\ud800``) is written as its escape."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _raw_text(raw: Any) -> str:
    text = json.dumps(raw, ensure_ascii=True, sort_keys=True)
    return text if len(text) <= RAW_LIMIT else text[:RAW_LIMIT] + RAW_MARKER


def _digest(item: NewRejected, text: str) -> str:
    material = json.dumps([item.receiver, item.group_key, text], ensure_ascii=False)
    return hashlib.sha256(_safe(material).encode("utf-8")).hexdigest()


def record(conn: Connection, items: list[NewRejected], now: datetime) -> list[NewRejected]:
    """Store each alert unless the same one (same JSON, receiver and group) is stored already;
    returns those stored now (an HA peer's copy or a retry adds nothing)."""
    stored = []
    for item in items:
        text = _raw_text(item.raw)
        values = {
            "digest": _digest(item, text),
            "reason": _safe(item.reason),
            "raw": text,
            "receiver": _safe(item.receiver),
            "group_key": _safe(item.group_key),
            "received_at": now,
        }
        if insert_ignore(conn, rejected_alerts, values, on=["digest"]):
            stored.append(item)
    return stored


def recent(conn: Connection, limit: int = 500) -> list[RejectedRecord]:
    """The newest rejected alerts first."""
    columns = [c for c in rejected_alerts.c if c.name != "digest"]
    rows = conn.execute(sa.select(*columns).order_by(rejected_alerts.c.id.desc()).limit(limit))
    return [RejectedRecord(**row._asdict()) for row in rows]
