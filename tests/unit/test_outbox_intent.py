"""Outbox intents: typed rows, their columns, and the multi-row insert that keeps their order."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from alertbot.domain.outbox import Channel, OutboxEvent, OutboxIntent
from alertbot.store import outbox
from alertbot.store.migrations import migrate

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def intent(incident_id: int, event: OutboxEvent = OutboxEvent.TRIGGER) -> OutboxIntent:
    return OutboxIntent(incident_id, event, Channel.CONSOLE, "", {"fingerprint": f"fp{incident_id}"})


def test_an_intent_fills_the_outbox_columns() -> None:
    """Event and channel are written as their plain names; the ordering key is the payload's fingerprint."""
    assert intent(3, OutboxEvent.RESOLVE).values() == {
        "incident_id": 3,
        "event": "resolve",
        "channel": "console",
        "target": "",
        "payload": {"fingerprint": "fp3"},
        "fingerprint": "fp3",
    }


def test_an_intent_given_as_columns_is_read_once_into_its_type() -> None:
    """A row given as its columns (as tools and tests do) becomes the same intent; an unknown event is refused."""
    row = {"incident_id": 3, "event": "update", "channel": "slack", "target": "#ops", "payload": {"fingerprint": "f"}}
    assert OutboxIntent.of(row) == OutboxIntent(3, OutboxEvent.UPDATE, "slack", "#ops", {"fingerprint": "f"})
    with pytest.raises(ValueError, match="page"):
        OutboxIntent.of({**row, "event": "page"})


def test_sqlite_inserts_a_batch_in_one_statement_with_ids_in_order(tmp_path: Path) -> None:
    """A batch of rows is one INSERT on SQLite (not one per row), and their ids follow the order given."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'a.db'}")
    with engine.begin() as conn:
        migrate(conn, NOW)
    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    with engine.begin() as conn:
        leased = outbox.enqueue_all(
            conn, [outbox.NewRow(intent(i), leased=True) for i in (5, 2, 9)], NOW, owner="me", until=NOW
        )
    assert [row.incident_id for row in leased] == [5, 2, 9]
    assert [row.id for row in leased] == [1, 2, 3]
    assert len([s for s in statements if s.lstrip().upper().startswith("INSERT")]) == 1
    engine.dispose()
