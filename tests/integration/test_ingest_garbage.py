"""Ingest leaves no reference cycles behind: what a request allocates is freed by reference counting
the moment it is done with. Cyclic garbage is what the collector exists for, and collecting it is
what paused the process under load (bench/RESULTS.md, "Garbage collection while serving": with
cycles made per transaction, a young collection ran every ~50 alerts and found ~8,500 objects)."""

from __future__ import annotations

import gc
import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from alertbot.domain.parse import parse_webhook
from alertbot.ingest.heartbeat import DeadMansSwitch
from alertbot.ingest.ingest import Ingest
from alertbot.settings import parse_config
from alertbot.store.engine import Store
from tests.helpers import payload_json

NOW = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)


@pytest.fixture
def collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def cyclic_garbage() -> Counter[str]:
    """What a collection finds unreachable now, by type."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        found = Counter(type(o).__qualname__ for o in gc.garbage)
        gc.garbage.clear()
    finally:
        gc.set_debug(0)
    return found


def payload(i: int, status: str) -> bytes:
    data = payload_json("am-highload-nutrition-service-firing.json")
    alert = data["alerts"][0]
    alert["fingerprint"] = f"{i:016x}"
    alert["labels"]["service"] = f"svc-{i % 3}"
    alert["status"] = data["status"] = status
    if status == "resolved":
        alert["endsAt"] = "2026-12-02T00:59:00Z"
    data["groupKey"] = f'{{}}:{{service="svc-{i % 3}"}}'
    return json.dumps(data).encode()


@pytest.mark.usefixtures("collector_off")
async def test_ingest_transactions_make_no_cyclic_garbage(sqlite_store: Store) -> None:
    """Batches of new, repeated and resolved alerts through the store's write transaction, with the
    default inhibit rule and storm control on: nothing left for the collector to find."""
    config = parse_config({"routes": {"receivers": ["console"]}})
    ingest = Ingest(
        config, ["console"], DeadMansSwitch(config, ["console"]), owner=lambda: "t", lease=lambda: timedelta(seconds=30)
    )
    batches = [[parse_webhook(payload(i, "firing")) for i in range(n, n + 4)] for n in range(0, 24, 4)]
    await sqlite_store.write(ingest.ingest_all, batches[0], NOW)  # first use: caches fill
    cyclic_garbage()
    for batch in batches[1:]:
        await sqlite_store.write(ingest.ingest_all, batch, NOW)
        await sqlite_store.write(ingest.ingest_all, batch, NOW)  # repeats
    await sqlite_store.write(ingest.ingest_all, [parse_webhook(payload(i, "resolved")) for i in range(4, 12)], NOW)
    assert cyclic_garbage() == Counter()
