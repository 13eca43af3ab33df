"""The console notifier: one readable line per notification on a terminal (a real pseudo-terminal
here), one JSON object per line on anything else."""

from __future__ import annotations

import asyncio
import io
import json
import os
from datetime import UTC, datetime

from alertbot.domain.classify import ClassificationPolicy, Thresholds, classify
from alertbot.domain.incident import IncidentView
from alertbot.domain.models import Alert, AlertStatus
from alertbot.notify.base import Destination, Notification
from alertbot.notify.console import ConsoleNotifier


def notification() -> Notification:
    alert = Alert(
        status=AlertStatus.FIRING,
        labels={"alertname": "HighErrorRate", "service": "nutrition-service", "namespace": "ai", "sli": "error_rate"},
        annotations={"summary": "errors", "value": "0.072"},
        starts_at=datetime(2026, 12, 2, 9, 0, tzinfo=UTC),
        fingerprint="b7879370733ab294",
    )
    incident = IncidentView.preview(alert, classify(alert, ClassificationPolicy(), Thresholds()))
    return Notification.build(incident, "trigger", Destination("console"))


def test_on_a_terminal_each_notification_is_one_readable_line() -> None:
    leader, follower = os.openpty()
    with os.fdopen(follower, "w", encoding="utf-8") as terminal:
        asyncio.run(ConsoleNotifier(terminal).send(notification()))
    shown = os.read(leader, 4096).decode()
    os.close(leader)
    assert shown.strip().startswith("[CRITICAL] HighErrorRate nutrition-service (incident ")
    assert "error_rate 7.2% > critical threshold 5%" in shown and "{" not in shown


def test_elsewhere_and_when_asked_it_is_json() -> None:
    piped = io.StringIO()
    asyncio.run(ConsoleNotifier(piped).send(notification()))
    assert json.loads(piped.getvalue())["alertname"] == "HighErrorRate"
    leader, follower = os.openpty()
    with os.fdopen(follower, "w", encoding="utf-8") as terminal:
        asyncio.run(ConsoleNotifier(terminal, human=False).send(notification()))
    shown = os.read(leader, 65536).decode()
    os.close(leader)
    assert json.loads(shown)["severity"] == "critical"
