"""The hand-off record replicas share (store/oncall.py ``handed_off``): of several replicas seeing the
same new shift at once, one announces it — on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from alertbot.store import oncall
from alertbot.store.engine import Store

NOW = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


@pytest.fixture
async def stores(db_url: str) -> AsyncIterator[list[Store]]:
    """Three replicas: three stores on one database."""
    opened = [await Store.open(db_url) for _ in range(3)]
    yield opened
    for store in opened:
        await store.close()


async def test_the_first_shift_is_recorded_and_each_hand_off_is_announced_once_by_one_replica(
    stores: list[Store],
) -> None:
    first = "U0AAA@2026-11-30T08:00:00+00:00"
    seen = await asyncio.gather(*(s.write(oncall.handed_off, "primary", first, NOW) for s in stores))
    assert seen == [None, None, None]  # nobody handed the running shift off
    second = "U0BBB@2026-12-07T08:00:00+00:00"
    won = await asyncio.gather(*(s.write(oncall.handed_off, "primary", second, NOW) for s in stores))
    assert sorted(won, key=str) == [None, None, first]  # one replica replaced it, and announces
    assert await stores[0].write(oncall.handed_off, "primary", second, NOW) is None
    # A replica whose calendar copy is staler still sees the first shift: not announced again.
    assert await stores[1].write(oncall.handed_off, "primary", first, NOW) is None
    assert await stores[0].write(oncall.handed_off, "secondary", first, NOW) is None  # its own record
