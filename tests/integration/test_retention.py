"""Retention on SQLite and PostgreSQL: old history goes in small batches, with everything that hangs off
it; what is recent, still firing, still running or still referenced stays; two replicas running
the job at once on PostgreSQL delete each row once, without errors; delivered notifications keep
no payload."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alertbot.store import outbox as outbox_repo
from alertbot.store.engine import Store
from alertbot.store.retention import RetentionJob, RetentionPolicy
from alertbot.store.schema import (
    change_events,
    decisions,
    heartbeats,
    incident_notes,
    incidents,
    oncall_overrides,
    outbox,
    pagerduty_events,
    rejected_alerts,
    runbook_locks,
    runbook_runs,
    silences,
    slack_messages,
    storms,
)
from tests.conftest import MakeHarness
from tests.helpers import wait_until

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=40)  # beyond the 30-day default
RECENT = NOW - timedelta(days=2)
POLICY = RetentionPolicy(incidents=timedelta(days=30), audit=timedelta(days=365), interval=timedelta(minutes=5))


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(db_url)
    yield opened
    await opened.close()


def add_incident(
    conn: Connection, name: str, *, status: str, resolved_at: datetime | None, lead_id: int | None = None
) -> int:
    at = resolved_at or NOW
    values: dict[str, Any] = {
        "fingerprint": name,
        "starts_at": at - timedelta(minutes=5),
        "status": status,
        "alertname": "HighErrorRate",
        "service": name,
        "namespace": "ns",
        "severity": "warning",
        "reason": "",
        "labels": {"alertname": "HighErrorRate", "service": name},
        "annotations": {},
        "generator_url": "",
        "group_key": name,
        "destinations": [],
        "created_at": at - timedelta(minutes=5),
        "updated_at": at,
        "resolved_at": resolved_at,
        "lead_id": lead_id,
    }
    incident_id: int = conn.execute(incidents.insert().values(**values).returning(incidents.c.id)).scalar_one()
    conn.execute(
        outbox.insert().values(
            incident_id=lead_id or incident_id,
            event="trigger",
            channel="console",
            target="",
            payload={"fingerprint": name, "big": "x" * 1000},
            status="delivered",
            attempts=1,
            next_attempt_at=at,
            created_at=at,
            delivered_at=at,
            fingerprint=name,
        )
    )
    conn.execute(incident_notes.insert().values(incident_id=incident_id, kind="held", text="note", at=at))
    conn.execute(
        decisions.insert().values(incident_id=incident_id, kind="notify", summary="would", detail={}, created_at=at)
    )
    conn.execute(
        slack_messages.insert().values(
            incident_id=incident_id, fingerprint=name, target=f"#{name}", channel_id="C1", ts="1.0", created_at=at
        )
    )
    return incident_id


def add_storm(conn: Connection, anchor: int, *, open_: bool) -> None:
    conn.execute(
        storms.insert().values(
            group_key=f"g{anchor}",
            group_labels={},
            anchor_incident_id=anchor,
            count=3,
            destinations=[],
            started_at=OLD,
            resolved_at=None if open_ else OLD,
        )
    )


def add_run(conn: Connection, *, started: datetime, status: str) -> int:
    run_id: int = conn.execute(
        runbook_runs.insert()
        .values(
            runbook="emergency-rollback",
            params={},
            trigger="cli:test",
            status=status,
            plan=[],
            applied=[],
            result="",
            started_at=started,
            finished_at=None if status == "running" else started,
        )
        .returning(runbook_runs.c.id)
    ).scalar_one()
    return run_id


def add_change(conn: Connection, *, at: datetime, event_id: str) -> None:
    conn.execute(
        change_events.insert().values(
            event_id=event_id,
            kind="deployment",
            service="svc",
            namespace="ns",
            version="1",
            actor="ci",
            description="d",
            links=[],
            timestamp=at,
            source="api",
            created_at=at,
        )
    )


def add_silence(conn: Connection, *, ends: datetime) -> None:
    conn.execute(
        silences.insert().values(
            matchers=[], starts_at=ends - timedelta(hours=1), ends_at=ends, created_by="t", comment="", created_at=ends
        )
    )


def populate(conn: Connection) -> dict[str, int]:
    """Chains old and new, kept for each reason; audit rows old and new. Returns the ids by role."""
    ids: dict[str, int] = {}
    for n in range(5):  # five plain old chains: more than one batch of 2
        ids[f"old{n}"] = add_incident(conn, f"old{n}", status="resolved", resolved_at=OLD)
    ids["old_lead"] = add_incident(conn, "old_lead", status="resolved", resolved_at=OLD)
    ids["old_member"] = add_incident(
        conn, "old_member", status="resolved", resolved_at=OLD + timedelta(hours=1), lead_id=ids["old_lead"]
    )
    ids["lead_of_firing"] = add_incident(conn, "lead_of_firing", status="resolved", resolved_at=OLD)
    ids["firing_member"] = add_incident(
        conn, "firing_member", status="firing", resolved_at=None, lead_id=ids["lead_of_firing"]
    )
    ids["recent"] = add_incident(conn, "recent", status="resolved", resolved_at=RECENT)
    ids["firing"] = add_incident(conn, "firing", status="firing", resolved_at=None)
    ids["open_storm_anchor"] = add_incident(conn, "open_storm_anchor", status="resolved", resolved_at=OLD)
    add_storm(conn, ids["open_storm_anchor"], open_=True)
    add_storm(conn, ids["old0"], open_=False)
    ids["heartbeat_page"] = add_incident(conn, "heartbeat_page", status="resolved", resolved_at=OLD)
    conn.execute(heartbeats.insert().values(name="Watchdog", last_seen=NOW, incident_id=ids["heartbeat_page"]))

    add_silence(conn, ends=OLD)
    add_silence(conn, ends=RECENT)
    for name, at in (("rejected-old", OLD), ("rejected-recent", RECENT)):
        conn.execute(
            rejected_alerts.insert().values(
                digest=name, reason="invalid", raw="{}", receiver="r", group_key="g", received_at=at
            )
        )
    add_silence(conn, ends=NOW + timedelta(hours=1))
    ancient = NOW - timedelta(days=400)
    ids["run_old"] = add_run(conn, started=ancient, status="succeeded")
    ids["run_old2"] = add_run(conn, started=ancient, status="failed")
    ids["run_running"] = add_run(conn, started=ancient, status="running")
    ids["run_locked"] = add_run(conn, started=ancient, status="succeeded")
    conn.execute(runbook_locks.insert().values(target="vs ns/x", run_id=ids["run_locked"], acquired_at=ancient))
    ids["run_recent"] = add_run(conn, started=OLD, status="succeeded")
    add_change(conn, at=ancient, event_id="old-change")
    add_change(conn, at=OLD, event_id="recent-change")
    return ids


def remaining(conn: Connection) -> dict[str, Any]:
    return {
        "incidents": sorted(r.service for r in conn.execute(sa.select(incidents.c.service))),
        "children": {
            table.name: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            for table in (outbox, incident_notes, decisions, slack_messages)
        },
        "storms": sorted(r.anchor_incident_id for r in conn.execute(sa.select(storms.c.anchor_incident_id))),
        "silences": sorted(r.ends_at for r in conn.execute(sa.select(silences.c.ends_at))),
        "runs": sorted(r.id for r in conn.execute(sa.select(runbook_runs.c.id))),
        "changes": sorted(r.event_id for r in conn.execute(sa.select(change_events.c.event_id))),
        "rejected": sorted(r.digest for r in conn.execute(sa.select(rejected_alerts.c.digest))),
        "overrides": sorted(r.created_by for r in conn.execute(sa.select(oncall_overrides.c.created_by))),
        "pagerduty_events": sorted(r.event_id for r in conn.execute(sa.select(pagerduty_events.c.event_id))),
    }


def on_call_history(conn: Connection) -> None:
    """An override over 40 days ago and one still running; PagerDuty events as old and recent."""
    for who, ends in (("old-override", OLD), ("current-override", NOW + timedelta(hours=1))):
        conn.execute(
            oncall_overrides.insert().values(
                schedule="primary", user_id="U0AAA", starts_at=ends - timedelta(hours=4), ends_at=ends,
                created_by=who, created_at=ends - timedelta(hours=4),
            )
        )  # fmt: skip
    for event_id, at in (("old-event", OLD), ("recent-event", RECENT)):
        conn.execute(
            pagerduty_events.insert().values(
                event_id=event_id, event_type="incident.acknowledged", occurred_at=at, pd_incident_id="PGR0VU2"
            )
        )


KEPT = sorted(["lead_of_firing", "firing_member", "recent", "firing", "open_storm_anchor", "heartbeat_page"])


async def test_old_history_goes_in_batches_and_what_is_still_needed_stays(store: Store) -> None:
    """One pass (batches of 2) deletes old resolved chains with their outbox rows, notes, decisions,
    Slack references and closed storms, expired silences, old rejected alerts, and old finished runs
    and change events;
    it keeps recent, firing, half-firing chains, the anchor of an open storm, the dead man's switch's
    page, runs running or holding a lock, and anything younger than its retention."""
    ids = await store.write(populate)
    await store.write(on_call_history)
    job = RetentionJob(store, POLICY, clock=lambda: NOW, batch=2, pause=0)
    result = await job.run_pass()
    left = await store.read(remaining)
    assert left["incidents"] == KEPT
    assert (left["overrides"], left["pagerduty_events"]) == (["current-override"], ["recent-event"])
    assert left["children"] == {name: len(KEPT) for name in ("outbox", "incident_notes", "decisions", "slack_messages")}
    assert left["storms"] == [ids["open_storm_anchor"]]
    assert left["silences"] == [RECENT, NOW + timedelta(hours=1)]
    assert left["runs"] == sorted([ids["run_running"], ids["run_locked"], ids["run_recent"]])
    assert left["changes"] == ["recent-change"]
    assert left["rejected"] == ["rejected-recent"]  # rejected alerts are kept as long as incidents
    deleted = {k: v for k, v in result.deleted.items() if k != "outbox_rows_packed"}
    assert deleted == {
        "incidents": 7,
        "silences": 1,
        "rejected_alerts": 1,
        "oncall_overrides": 1,
        "pagerduty_events": 1,
        "runbook_runs": 2,
        "change_events": 1,
    }
    again = await job.run_pass()
    assert {k: v for k, v in again.deleted.items() if k != "outbox_rows_packed"} == dict.fromkeys(deleted, 0)


async def test_two_replicas_on_postgres_delete_each_row_once(db_url: str, store: Store) -> None:
    """Two stores (replicas) running passes at the same time on one PostgreSQL database: together they
    delete exactly the old history, neither fails (no deadlock, no double delete)."""
    if not db_url.startswith("postgresql"):
        pytest.skip("replicas share PostgreSQL only (a SQLite file has one owner)")
    await store.write(populate)
    other = await Store.open(db_url)
    try:
        jobs = [RetentionJob(s, POLICY, clock=lambda: NOW, batch=1, pause=0) for s in (store, other, store, other)]
        await asyncio.gather(*(job.run_pass() for job in jobs))
        # A replica that found the lock taken skipped its turn: one more pass finishes the work.
        await jobs[0].run_pass()
    finally:
        await other.close()
    left = await store.read(remaining)
    assert left["incidents"] == KEPT
    assert left["changes"] == ["recent-change"]


async def test_delivered_notifications_drop_their_payload(store: Store) -> None:
    """Once delivered, an outbox row keeps what the timeline shows (event, channel, status, times)
    and drops the notification payload (most of the outbox's size)."""

    def setup(conn: Connection) -> int:
        incident_id = add_incident(conn, "live", status="firing", resolved_at=None)
        outbox_repo.enqueue(
            conn,
            [
                {
                    "incident_id": incident_id,
                    "event": "trigger",
                    "channel": "console",
                    "target": "",
                    "payload": {"fingerprint": "live", "big": "x" * 1000},
                }
            ],
            NOW,
        )
        row_id: int = conn.execute(sa.select(sa.func.max(outbox.c.id))).scalar_one()
        return row_id

    row_id = await store.write(setup)
    await store.write(outbox_repo.mark_delivered_many, [(row_id, NOW)])
    row = await store.read(lambda conn: conn.execute(sa.select(outbox).where(outbox.c.id == row_id)).one())
    assert row.payload == {} and row.status == "delivered" and row.delivered_at == NOW
    assert row.event == "trigger" and row.channel == "console"


async def test_a_delivered_escalation_step_keeps_its_payload(store: Store) -> None:
    """An escalation row names the policy an acknowledgement then times (outbox.latest_escalation)."""
    step = {"fingerprint": "live", "escalation": {"policy": "critical"}}

    def setup(conn: Connection) -> int:
        incident_id = add_incident(conn, "live", status="firing", resolved_at=None)
        row = {"incident_id": incident_id, "event": "trigger", "channel": "escalation", "target": "pagerduty"}
        outbox_repo.enqueue(conn, [{**row, "payload": step}], NOW)
        row_id: int = conn.execute(sa.select(sa.func.max(outbox.c.id))).scalar_one()
        return row_id

    row_id = await store.write(setup)
    await store.write(outbox_repo.mark_delivered_many, [(row_id, NOW)])
    row = await store.read(lambda conn: conn.execute(sa.select(outbox).where(outbox.c.id == row_id)).one())
    assert row.payload == step and row.status == "delivered"


async def test_the_running_app_deletes_resolved_incidents_after_retention(make_harness: MakeHarness) -> None:
    """``alertbot serve``'s job: with ``retention.incidents: 200ms`` (every 50 ms), an alert that fired
    and resolved is gone from the API shortly after, while a firing one stays."""
    h = await make_harness({"retention": {"incidents": "200ms", "interval": "50ms"}, "storm": None})
    assert (await h.post_file("am-higherrorrate-nutrition-service-firing.json")).status == 200
    assert (await h.post_file("am-higherrorrate-nutrition-service-resolved.json")).status == 200
    assert (await h.post_file("am-servicedown-recipe-service-firing.json")).status == 200

    async def only_the_firing_one_left() -> bool:
        listed = await (await h.client.get("/api/v1/incidents")).json()
        return [i["status"] for i in listed] == ["firing"]

    await wait_until(only_the_firing_one_left, within=10, what="the resolved incident deleted")


async def test_sqlite_packs_delivered_rows_so_their_payload_space_is_reused(store: Store) -> None:
    """SQLite: delivered rows drop their payload in place, which alone frees no page (new rows are
    appended at the end of the table); a retention pass rewrites the settled rows densely — same
    ids, same values — and the database then uses far fewer pages, reusable for new rows. A job
    started later (a restart) goes on from where the last one got to."""
    if not store.is_sqlite:
        pytest.skip("PostgreSQL reuses the space by itself")

    def setup(conn: Connection) -> list[int]:
        incident_id = add_incident(conn, "live", status="firing", resolved_at=None)
        row = {"incident_id": incident_id, "event": "trigger", "channel": "console", "target": ""}
        outbox_repo.enqueue(
            conn, [{**row, "payload": {"fingerprint": f"f{n}", "big": "x" * 1500}} for n in range(400)], NOW
        )
        ids = [r.id for r in conn.execute(sa.select(outbox.c.id).where(outbox.c.status == "pending"))]
        outbox_repo.enqueue(conn, [{**row, "payload": {"fingerprint": "last", "big": "x"}}], NOW)  # stays pending
        return ids

    def used_pages(conn: Connection) -> int:
        pages: int = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
        free: int = conn.exec_driver_sql("PRAGMA freelist_count").scalar_one()
        return pages - free

    def rows(conn: Connection) -> list[Any]:
        return [tuple(r) for r in conn.execute(sa.select(outbox).order_by(outbox.c.id))]

    ids = await store.write(setup)
    await store.write(outbox_repo.mark_delivered_many, [(i, NOW) for i in ids])
    before_rows, before_pages = await store.read(rows), await store.read(used_pages)
    result = await RetentionJob(store, POLICY, clock=lambda: NOW, pause=0).run_pass()
    assert result.deleted["outbox_rows_packed"] == len(ids) + 1  # the incident's own delivered row too
    assert await store.read(rows) == before_rows
    after_pages = await store.read(used_pages)
    assert after_pages < before_pages - 100, (before_pages, after_pages)
    restarted = await RetentionJob(store, POLICY, clock=lambda: NOW, pause=0).run_pass()
    assert restarted.deleted["outbox_rows_packed"] == 0  # where it got to is stored: no second pass over them
