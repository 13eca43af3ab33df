"""How many statements one ingest transaction runs: the batch's reads are done once per batch, not
once per alert or per group, so the cost of a batch of N alerts does not carry N round trips."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event

from alertbot.domain.parse import parse_webhook
from alertbot.ingest.heartbeat import DeadMansSwitch
from alertbot.ingest.ingest import Ingest
from alertbot.settings import parse_config
from alertbot.store.engine import Store
from tests.helpers import payload_json

NOW = datetime(2026, 11, 29, 20, 0, tzinfo=UTC)


def group_payload(group: int) -> bytes:
    """One new warning alert in its own Alertmanager group (its own service)."""
    data = payload_json("am-highload-nutrition-service-firing.json")
    alert = data["alerts"][0]
    alert["fingerprint"] = f"{group:016x}"
    alert["labels"]["service"] = f"svc-{group}"
    data["groupKey"] = f'{{}}:{{service="svc-{group}"}}'
    return json.dumps(data).encode()


def test_storm_arrivals_of_a_batch_are_counted_with_one_statement(sqlite_store: Store) -> None:
    """A batch of 12 payloads, each a new group: storm control counts the arrivals of all 12 groups
    in the storm window with one statement, not one per group."""
    config = parse_config({"routes": {"receivers": ["console"]}})
    ingest = Ingest(
        config,
        ["console"],
        DeadMansSwitch(config, ["console"]),
        owner=lambda: "test",
        lease=lambda: timedelta(seconds=30),
    )
    payloads = [parse_webhook(group_payload(i)) for i in range(12)]
    executed: list[str] = []

    def capture(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        executed.append(" ".join(statement.split()))

    event.listen(sqlite_store.engine, "before_cursor_execute", capture)
    try:
        with sqlite_store.engine.begin() as conn:
            stats = ingest.ingest_all(conn, payloads, NOW)
    finally:
        event.remove(sqlite_store.engine, "before_cursor_execute", capture)
    assert sum(s.alerts for s in stats) == 12
    counts = [s for s in executed if "count(" in s.lower() and "GROUP BY incidents.group_key" in s]
    assert len(counts) == 1, counts
