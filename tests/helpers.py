"""Shared test helpers: payload loading, polling with a deadline, console capture."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alertbot.domain.classify import ClassificationPolicy, Thresholds, classify
from alertbot.domain.parse import parse_webhook
from alertbot.notify.base import Destination, Event, Notification
from alertbot.store.incidents import IncidentRecord

DATA = Path(__file__).parent / "data"
PAYLOADS = DATA / "payloads"
TEST_RUNBOOKS = DATA / "runbooks"  # runbooks made for tests (the shipped ones are in runbooks/)


def payload_bytes(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


def payload_json(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(payload_bytes(name))
    return data


def all_payload_names() -> list[str]:
    return sorted(p.name for p in PAYLOADS.glob("*.json") if p.name != "am-manifest.json")


async def wait_until(
    predicate: Callable[[], bool | Awaitable[bool]], *, within: float = 5.0, what: str = "condition"
) -> None:
    """Poll ``predicate`` until it is true; fail after ``within`` seconds (never a bare sleep)."""
    deadline = time.monotonic() + within
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.01)


class ConsoleSink(io.StringIO):
    """Where the console notifier writes in tests; ``lines()`` parses what it wrote."""

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.getvalue().splitlines() if line.strip()]


def alertbot_cli(
    *args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None, base: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a user would (``python -m alertbot``), in ``cwd``, with ``env`` added to ``base``
    (default: this process's environment)."""
    environment = {**(os.environ if base is None else base), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "alertbot", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environment,
        timeout=60,
        check=False,
    )


def notifications(name: str, event: Event = "trigger") -> list[Notification]:
    """The notifications a recorded payload's alerts would make, as firing incidents 1, 2, …"""
    out = []
    for index, alert in enumerate(parse_webhook(payload_bytes(name)).alerts):
        cls = classify(alert, ClassificationPolicy(), Thresholds())
        now = datetime(2026, 11, 29, tzinfo=UTC)
        record = IncidentRecord(
            id=index + 1,
            fingerprint=alert.fingerprint,
            starts_at=alert.starts_at,
            status="firing",
            alertname=alert.alertname,
            service=alert.service,
            namespace=alert.namespace,
            severity=cls.severity,
            reason=cls.reason,
            sli=cls.sli,
            value=cls.value,
            labels=dict(alert.labels),
            annotations=dict(alert.annotations),
            generator_url=alert.generator_url,
            group_key="g",
            destinations=[],
            suppressed_by=None,
            ends_at=alert.ends_at,
            created_at=now,
            updated_at=now,
            resolved_at=None,
        )
        out.append(Notification.build(record, event, Destination("pagerduty")))
    return out
