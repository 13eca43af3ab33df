"""The durable outbox: retries with backoff, failures recorded, order kept, nothing lost across restarts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from alertbot.errors import NotifyError
from alertbot.store import outbox
from tests.conftest import Harness, MakeHarness
from tests.fakes.notifiers import ScriptedNotifier
from tests.helpers import ConsoleSink, wait_until

FIRING = "am-higherrorrate-nutrition-service-firing.json"
RESOLVED = "am-higherrorrate-nutrition-service-resolved.json"
FAST_RETRY = {"outbox": {"initial_backoff": "10ms", "max_backoff": "50ms", "poll_interval": "20ms"}}


async def incident_notifications(h: Harness, incident_id: int = 1) -> list[dict[str, Any]]:
    body = await (await h.client.get(f"/api/v1/incidents/{incident_id}")).json()
    notifications: list[dict[str, Any]] = body["notifications"]
    return notifications


async def test_retryable_failures_are_retried_until_delivered(make_harness: MakeHarness) -> None:
    """429 / 5xx-like failures are retried with backoff; the attempt count is recorded."""
    notifier = ScriptedNotifier(
        [NotifyError("HTTP 503", retryable=True), NotifyError("HTTP 429", retryable=True, retry_after=0.05)]
    )
    h = await make_harness(FAST_RETRY, notifiers={"console": notifier})
    await h.post_file(FIRING)

    async def recorded() -> bool:
        return [(r["status"], r["attempts"]) for r in await incident_notifications(h)] == [("delivered", 3)]

    await wait_until(recorded, what="delivery after two failures, recorded")
    assert len(notifier.attempts) == 3 and len(notifier.delivered) == 1


async def test_non_retryable_failure_is_recorded_with_reason(make_harness: MakeHarness) -> None:
    """A 4xx-like failure is not retried: the row is failed with the peer's reason."""
    notifier = ScriptedNotifier([NotifyError("HTTP 400: invalid routing key", retryable=False)])
    h = await make_harness(FAST_RETRY, notifiers={"console": notifier})
    await h.post_file(FIRING)

    async def failed() -> bool:
        return [r["status"] for r in await incident_notifications(h)] == ["failed"]

    await wait_until(failed, what="failed row")
    rows = await incident_notifications(h)
    assert rows[0]["last_error"] == "HTTP 400: invalid routing key" and rows[0]["attempts"] == 1
    assert notifier.delivered == []
    metrics = await (await h.client.get("/metrics")).text()
    assert 'alertbot_notifications_total{channel="console",outcome="failed"} 1.0' in metrics


async def test_resolve_never_overtakes_its_trigger(make_harness: MakeHarness) -> None:
    """While the trigger is failing and waiting to retry, the resolve waits behind it."""
    notifier = ScriptedNotifier([NotifyError("down", retryable=True)] * 3)
    h = await make_harness(FAST_RETRY, notifiers={"console": notifier})
    await h.post_file(FIRING)
    await h.post_file(RESOLVED)
    await wait_until(lambda: len(notifier.delivered) == 2, what="both delivered")
    assert [n.event for n in notifier.attempts] == ["trigger"] * 4 + ["resolve"]


async def test_undelivered_notifications_survive_a_restart(make_harness: MakeHarness) -> None:
    """Accepted while the channel is down, the app stops; the next start delivers them."""
    down = ScriptedNotifier([NotifyError("down", retryable=True)] * 1000)
    first = await make_harness({"outbox": {"initial_backoff": "1h"}}, notifiers={"console": down})
    await first.post_file(FIRING)
    await first.post_file("am-servicedown-recipe-service-firing.json")
    await wait_until(lambda: len(down.attempts) >= 2, what="first attempts")
    await first.client.close()

    console = ConsoleSink()
    await make_harness(console=console)
    await wait_until(lambda: len(console.lines()) == 2, what="delivery after restart")
    assert sorted(x["alertname"] for x in console.lines()) == ["HighErrorRate", "ServiceDown"]


async def test_rows_claimed_when_stopped_are_sent_after_restart(make_harness: MakeHarness) -> None:
    """A notification in flight at shutdown is handed back (not stuck behind a lease)."""
    slow = ScriptedNotifier()
    slow.blocked.clear()  # the send hangs until the app is stopped
    first = await make_harness({"outbox": {"send_timeout": "200ms"}}, notifiers={"console": slow})
    await first.post_file(FIRING)
    await first.client.close()

    console = ConsoleSink()
    await make_harness(console=console)
    await wait_until(lambda: len(console.lines()) == 1, what="re-delivery after restart")


async def test_a_row_waiting_behind_a_held_one_does_not_make_the_channel_look_due(make_harness: MakeHarness) -> None:
    """The sender sleeps until the next row it could claim: a row queued behind a held resolve is not
    claimable before it, so it must not report the channel due now (the sender would spin)."""
    h = await make_harness()
    await h.post_file(FIRING)
    await wait_until(lambda: len(h.console.lines()) == 1, what="the trigger")
    now = datetime.now(UTC)
    row = {"incident_id": 1, "channel": "console", "target": "", "payload": {"fingerprint": "f" * 16}}
    await h.state.store.write(
        outbox.enqueue, [{**row, "event": "resolve"}], now, hold=(now + timedelta(minutes=10), "resolve_delay 10m")
    )
    await h.state.store.write(outbox.enqueue, [{**row, "event": "acknowledge"}], now)
    due = await h.state.store.read(outbox.next_due, "console")
    assert due == now + timedelta(minutes=10)
    assert (
        await h.state.store.write(outbox.claim_due, "console", now, lease=timedelta(seconds=30), owner="t", limit=10)
        == []
    )
