"""Slack replay protection shared by replicas whose clocks disagree a little."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from alertbot.errors import Unauthorized
from alertbot.slack.verify import SlackVerifier, sign
from alertbot.store.engine import Store

SECRET = "replay-secret"
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(f"sqlite:///{tmp_path}/replay.db")
    yield opened
    await opened.close()


async def _accept(verifier: SlackVerifier, store: Store, body: bytes, sent: datetime, now: datetime) -> None:
    timestamp = str(int(sent.timestamp()))
    await verifier.verify(timestamp=timestamp, signature=sign(SECRET, timestamp, body), body=body, now=now, store=store)


async def test_a_replica_whose_clock_runs_ahead_does_not_forget_what_another_would_accept(store: Store) -> None:
    """Replica A accepts a request; replica B, whose clock runs 200 s ahead, handles another request
    later. A replay of the first to A, still inside A's 5-minute window, is refused: B did not forget
    it by its own clock (stored requests are kept for twice the window)."""
    a, b = SlackVerifier(SecretStr(SECRET)), SlackVerifier(SecretStr(SECRET))
    skew = timedelta(seconds=200)
    await _accept(a, store, b"command=/alertbot&text=help", T0, now=T0 + timedelta(seconds=10))
    b_now = T0 + timedelta(seconds=110) + skew
    await _accept(b, store, b"command=/alertbot&text=status", b_now, now=b_now)
    with pytest.raises(Unauthorized, match="replayed"):
        await _accept(a, store, b"command=/alertbot&text=help", T0, now=T0 + timedelta(seconds=120))
