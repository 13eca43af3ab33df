"""Flap damping and resolve hysteresis, through the HTTP app with the captured Alertmanager payloads
replayed as an alert that keeps flipping (each re-fire has a new startsAt, as Alertmanager sends)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from alertbot import incident_actions
from alertbot.store import outbox
from tests.conftest import Harness, MakeHarness, Peers
from tests.helpers import payload_json, wait_until

FIRING = "am-higherrorrate-nutrition-service-firing.json"
RESOLVED = "am-higherrorrate-nutrition-service-resolved.json"
T0 = datetime(2026, 11, 29, 20, 0, tzinfo=UTC)


def stamp(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def episode(starts: datetime, ends: datetime | None = None) -> str:
    """The captured payload as one firing (``ends`` None) or its resolve."""
    body = payload_json(RESOLVED if ends is not None else FIRING)
    alert = body["alerts"][0]
    alert["startsAt"] = stamp(starts)
    if ends is not None:
        alert["endsAt"] = stamp(ends)
    return json.dumps(body)


class Flapper:
    """Drives one alert through firing/resolved flips, moving alertbot's clock to each event."""

    def __init__(self, h: Harness, clock: dict[str, datetime]) -> None:
        self.h, self.clock = h, clock
        self.started: datetime | None = None

    async def fire(self, at: datetime) -> None:
        self.clock["now"], self.started = at, at
        assert (await self.h.post_payload(episode(at))).status == 200

    async def resolve(self, at: datetime) -> None:
        assert self.started is not None
        self.clock["now"] = at
        assert (await self.h.post_payload(episode(self.started, at))).status == 200


async def setup(make_harness: MakeHarness, peers: Peers, **config: Any) -> tuple[Harness, Flapper, dict[str, datetime]]:
    clock = {"now": T0}
    h = await make_harness({**peers.config, **config}, secret_values=peers.secret_values, clock=lambda: clock["now"])
    return h, Flapper(h, clock), clock


async def incident(h: Harness, incident_id: int) -> dict[str, Any]:
    body: dict[str, Any] = await (await h.client.get(f"/api/v1/incidents/{incident_id}")).json()
    return body


async def all_sent(h: Harness) -> bool:
    """Every due notification is out (held ones stay pending)."""
    rows = []
    for item in await (await h.client.get("/api/v1/incidents?limit=100")).json():
        rows += (await incident(h, item["id"]))["notifications"]
    return all(r["status"] != "pending" or r["held_until"] for r in rows)


async def test_a_flapping_alert_pages_no_more_and_one_message_counts_the_flips(
    make_harness: MakeHarness, peers: Peers
) -> None:
    """Default policy (6 transitions in 30m, quiet 10m): the first episodes page as usual; the resolve
    that makes the 6th transition is held, the next firing re-triggers nothing, the one Slack message
    shows the count, and the resolve goes out once the alert has been quiet for 10m."""
    h, alert, clock = await setup(make_harness, peers)
    for minute in (0, 2):  # transitions 1-4: ordinary pages and resolves
        await alert.fire(T0 + timedelta(minutes=minute))
        await alert.resolve(T0 + timedelta(minutes=minute + 1))
    await wait_until(lambda: len(peers.pagerduty.resolves()) == 2, what="the first two episodes resolved")
    await alert.fire(T0 + timedelta(minutes=4))  # 5
    await wait_until(lambda: len(peers.pagerduty.triggers()) == 3, what="third page")
    await alert.resolve(T0 + timedelta(minutes=5))  # 6: flapping, resolve held
    await alert.fire(T0 + timedelta(minutes=6))  # 7: continues incident 3
    await wait_until(lambda: all_sent(h), what="updates sent")

    assert len(peers.pagerduty.triggers()) == 3 and len(peers.pagerduty.resolves()) == 2
    [message] = peers.slack.roots()  # one thread all along
    assert message.text.startswith("[FLAPPING CRITICAL] HighErrorRate")
    context = json.dumps(message.blocks, ensure_ascii=False)
    assert "Flapping: 7 firing↔resolved transitions in 30m (firing now). PagerDuty is not re-triggered." in context

    fourth = await incident(h, 4)
    assert fourth["lead_id"] == 3 and fourth["status"] == "firing"
    assert fourth["suppressed_by"] == (
        "suppressed: flapping 7×/30m, continues incident 3; "  # noqa: RUF001
        "PagerDuty not re-triggered"
    )
    assert [n["kind"] for n in fourth["history"]] == ["continued"]
    third = await incident(h, 3)
    assert [n["kind"] for n in third["history"]] == ["held", "continued"]
    assert third["history"][0]["text"].startswith("resolve held for 10m: flapping 6×/30m")  # noqa: RUF001
    cancelled = [r for r in third["notifications"] if r["status"] == "cancelled"]
    assert {r["channel"] for r in cancelled} == {"pagerduty", "slack"}

    await alert.resolve(T0 + timedelta(minutes=7))  # 8: held again
    await wait_until(lambda: all_sent(h), what="updates sent")
    assert len(peers.pagerduty.resolves()) == 2
    clock["now"] = T0 + timedelta(minutes=16)  # 9 minutes quiet: still held
    h.dispatcher.wake()
    await wait_until(lambda: all_sent(h), what="nothing due")
    assert len(peers.pagerduty.resolves()) == 2
    clock["now"] = T0 + timedelta(minutes=17, seconds=1)  # quiet for 10m: the resolve goes out
    h.dispatcher.wake()
    await wait_until(
        lambda: len(peers.pagerduty.resolves()) == 3 and message.text.startswith("[RESOLVED]"), what="the held resolve"
    )
    third_trigger = peers.pagerduty.triggers()[2]
    assert peers.pagerduty.resolves()[2]["dedup_key"] == third_trigger["dedup_key"]


async def test_resolve_delay_turns_a_quick_refire_into_the_same_incident(
    make_harness: MakeHarness, peers: Peers
) -> None:
    """A route with resolve_delay 5m: a resolve waits 5m; a re-fire within it continues the incident (one
    page, no resolve sent); a resolve that stays quiet for 5m goes out with the first page's dedup key."""
    routes = {
        "receivers": ["slack"],
        "routes": [
            {
                "name": "critical",
                "matchers": ['severity="critical"'],
                "receivers": ["pagerduty", "slack"],
                "resolve_delay": "5m",
            }
        ],
    }
    h, alert, clock = await setup(make_harness, peers, routes=routes, flapping=None)
    await alert.fire(T0)
    await alert.resolve(T0 + timedelta(minutes=1))
    await wait_until(lambda: all_sent(h), what="the page")
    first = await incident(h, 1)
    held = [r for r in first["notifications"] if r["event"] == "resolve"]
    assert {(r["channel"], r["status"], r["hold"]) for r in held} == {
        ("pagerduty", "pending", "resolve_delay 5m"),
        ("slack", "pending", "resolve_delay 5m"),
    }
    assert held[0]["held_until"] == "2026-11-29T20:06:00+00:00"

    await alert.fire(T0 + timedelta(minutes=3))
    await wait_until(lambda: all_sent(h), what="nothing to send")
    second = await incident(h, 2)
    assert second["lead_id"] == 1
    assert second["suppressed_by"] == "re-fired while its resolve was held: continues incident 1"
    assert len(peers.pagerduty.triggers()) == 1 and peers.pagerduty.resolves() == []
    assert len(peers.slack.roots()) == 1 and peers.slack.roots()[0].text.startswith("[CRITICAL]")

    await alert.resolve(T0 + timedelta(minutes=4))
    clock["now"] = T0 + timedelta(minutes=9, seconds=1)
    h.dispatcher.wake()
    await wait_until(lambda: len(peers.pagerduty.resolves()) == 1, what="the held resolve")
    assert peers.pagerduty.resolves()[0]["dedup_key"] == peers.pagerduty.triggers()[0]["dedup_key"]
    await wait_until(lambda: peers.slack.roots()[0].text.startswith("[RESOLVED]"), what="Slack resolved")

    await alert.fire(T0 + timedelta(minutes=12))  # after the delay: a new incident, a new page
    await wait_until(lambda: len(peers.pagerduty.triggers()) == 2, what="a new page")
    assert (await incident(h, 3))["lead_id"] is None


async def test_resolving_by_hand_sends_a_held_resolve_now(make_harness: MakeHarness, peers: Peers) -> None:
    """The Slack message of a held resolve still shows firing; its Resolve button sends it at once."""
    routes = {"receivers": ["pagerduty", "slack"], "resolve_delay": "1h"}
    h, alert, clock = await setup(make_harness, peers, routes=routes)
    await alert.fire(T0)
    await alert.resolve(T0 + timedelta(minutes=1))
    await wait_until(lambda: all_sent(h), what="the page")
    assert peers.pagerduty.resolves() == []
    clock["now"] = T0 + timedelta(minutes=2)
    done = await h.state.store.write(incident_actions.resolve, 1, by="slack:U0ONCALL", now=clock["now"])
    assert done is not None
    h.dispatcher.wake()
    await wait_until(lambda: len(peers.pagerduty.resolves()) == 1, what="the resolve, sent now")
    history = (await incident(h, 1))["history"]
    assert history[-1]["text"] == "held resolve sent now: resolved by hand by slack:U0ONCALL"


async def test_the_retry_at_restart_leaves_held_resolves_waiting(make_harness: MakeHarness, peers: Peers) -> None:
    """At start-up every backed-off send is made due at once, but a held resolve is a decision, not a
    backoff: it keeps waiting."""
    routes = {"receivers": ["pagerduty"], "resolve_delay": "5m"}
    h, alert, clock = await setup(make_harness, peers, routes=routes)
    await alert.fire(T0)
    await alert.resolve(T0 + timedelta(minutes=1))
    await wait_until(lambda: all_sent(h), what="the page")
    assert await h.state.store.write(outbox.retry_now, clock["now"]) == 0
    h.dispatcher.wake()
    await wait_until(lambda: all_sent(h), what="nothing due")
    assert peers.pagerduty.resolves() == []
