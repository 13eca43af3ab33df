"""The embedded default: each notification on stdout — one readable line on a terminal, one JSON
object per line otherwise (a pipe, a file, a container's log), or always with ``human=False``."""

from __future__ import annotations

import json
import sys
from typing import TextIO

from alertbot.notify.base import Notification


class ConsoleNotifier:
    channel = "console"

    def __init__(self, stream: TextIO | None = None, *, human: bool | None = None) -> None:
        self._stream = stream
        self._human = human  # None: readable when the stream is a terminal

    async def send(self, notification: Notification) -> None:
        stream = self._stream or sys.stdout
        human = self._human if self._human is not None else stream.isatty()
        line = readable_line(notification) if human else json_line(notification)
        stream.write(line + "\n")
        stream.flush()


def json_line(n: Notification) -> str:
    return json.dumps(n.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)


def readable_line(n: Notification) -> str:
    """``[CRITICAL] HighErrorRate nutrition-service (incident 3): error_rate 7.2% > critical …``."""
    state = {"resolve": "RESOLVED", "acknowledge": "ACKED", "update": "UPDATED"}.get(n.event, n.severity.value.upper())
    if n.storm is not None:
        return f"[STORM {state}] {n.storm.count} alerts in group {n.group_key} (incident {n.incident_id})"
    where = f" {n.service}" if n.service else ""
    by = f" by {n.actor}" if n.actor else ""
    note = f" — {n.note}" if n.note else ""
    return f"[{state}] {n.alertname or n.fingerprint}{where} (incident {n.incident_id}){by}: {n.reason}{note}"
