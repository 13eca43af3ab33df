"""The per-batch lookups are index searches whose cost does not grow with history (SQLite's plans):
the firing incidents of a batch's services by (service, status), the outbox claim walking pending
rows in id order (no sort of every due row), the next wake-up the first pending row by due time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event

from alertbot.store import incidents, outbox
from alertbot.store.engine import Store


def plans(store: Store) -> dict[str, list[str]]:
    """Run each lookup once, and explain the SELECT it executed."""
    executed: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            executed.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", capture)
    try:
        names = []
        with store.engine.connect() as conn, conn.begin():
            for name, call in (
                (
                    "firing_sources",
                    lambda: incidents.firing_sources(conn, service="a", namespace=None, severity="critical"),
                ),
                ("next_due", lambda: outbox.next_due(conn, "console")),
                (
                    "claim_due",
                    lambda: outbox.claim_due(
                        conn, "console", datetime.now(UTC), lease=timedelta(seconds=5), owner="t", limit=64
                    ),
                ),
            ):
                before = len(executed)
                call()
                names += [name] * (len(executed) - before)
            conn.rollback()
    finally:
        event.remove(store.engine, "before_cursor_execute", capture)
    raw = store.engine.raw_connection()
    try:
        cursor = raw.cursor()
        return {
            name: [row[3] for row in cursor.execute("EXPLAIN QUERY PLAN " + sql, params)]
            for name, (sql, params) in zip(names, executed, strict=True)
        }
    finally:
        raw.close()


async def test_batch_lookups_search_indexes_not_history(sqlite_store: Store) -> None:
    """Each lookup searches an index by its key: inhibition sources by (service, severity), pending outbox
    rows by channel in id order (claim) or due order (next wake-up), with no temporary sort."""
    explained = plans(sqlite_store)
    assert explained["firing_sources"] == [
        "SEARCH incidents USING INDEX ix_incidents_firing_sources (service=? AND severity=?)"
    ]
    assert explained["claim_due"][0] == "SEARCH outbox USING INDEX ix_outbox_pending_claim (channel=?)"
    assert explained["next_due"][0] == "SEARCH outbox USING INDEX ix_outbox_pending_due (channel=?)"
    for name in ("claim_due", "next_due"):
        assert not any("TEMP B-TREE" in step for step in explained[name]), explained[name]
