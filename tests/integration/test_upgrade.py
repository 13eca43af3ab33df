"""Upgrading a store written by an earlier release: the migrations bring it up to date at start-up
and the notifications it still had pending go out, in order."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from alertbot.store.migrations import MIGRATIONS
from alertbot.store.schema import outbox, schema_migrations
from tests.conftest import MakeHarness, Peers
from tests.helpers import payload_json, wait_until

DATA = Path(__file__).resolve().parent.parent / "data"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the captured store is a SQLite file
async def test_a_version_10_store_is_migrated_and_its_pending_notifications_sent(
    db_url: str, make_harness: MakeHarness, peers: Peers
) -> None:
    path = db_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        db.executescript((DATA / "store-v10.sql").read_text())
    h = await make_harness(peers.config, secret_values=peers.secret_values)
    again = payload_json("am-higherrorrate-nutrition-service-firing.json")
    again_fingerprint = again["alerts"][0]["fingerprint"]

    def versions(conn: sa.Connection) -> list[int]:
        return [row[0] for row in conn.execute(sa.select(schema_migrations.c.version).order_by("version"))]

    assert await h.state.store.read(versions) == [version for version, _, _ in MIGRATIONS]
    await wait_until(
        lambda: len(peers.pagerduty.resolves()) == 1 and len(peers.slack.messages) == 2,
        what="the pending trigger and resolve on both channels",
    )
    (trigger,), (resolve,) = peers.pagerduty.triggers(), peers.pagerduty.resolves()
    assert resolve["dedup_key"] == trigger["dedup_key"]
    (root,) = peers.slack.roots()
    assert root.text.startswith("[RESOLVED] HighErrorRate nutrition-service")

    def keys(conn: sa.Connection) -> set[str | None]:
        return {row[0] for row in conn.execute(sa.select(outbox.c.fingerprint))}

    assert await h.state.store.read(keys) == {again_fingerprint}  # the rows written before v11 were given theirs

    again["alerts"][0]["startsAt"] = "2026-11-30T03:00:00Z"
    assert (await h.post_payload(json.dumps(again))).status == 200
    await wait_until(
        lambda: len(peers.pagerduty.triggers()) == 2 and root.text.startswith("[CRITICAL]"),
        what="the re-fire, on the upgraded store",
    )
