"""Escalation policies on the real clock, with second-long waits: whom each step tells and when, what
stops it, and that a restart neither loses nor repeats a step. Slack and PagerDuty are the fakes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from alertbot.domain.oncall import Schedule, on_call
from tests.conftest import MakeHarness, Peers
from tests.helpers import wait_until
from tests.slack_client import SECRET, command

FIRING = "am-higherrorrate-nutrition-service-firing.json"
PRIMARY: dict[str, Any] = {
    "name": "primary",
    "users": ["U0AAA", "U0BBB"],
    "shift": "1w",
    "handoff": "2026-11-30T09:00:00",
    "timezone": "Europe/Berlin",
}


def oncall_config(peers: Peers, *steps: dict[str, str], **policy: str) -> dict[str, Any]:
    """The peers' config with a `critical` policy of these steps (and keys) on the critical route."""
    return {
        **peers.config,
        "oncall": {"schedules": [PRIMARY], "escalations": [{"name": "critical", "steps": list(steps), **policy}]},
        "routes": {
            "receivers": ["slack"],
            "routes": [
                {
                    "name": "critical",
                    "matchers": ['severity="critical"'],
                    "receivers": ["slack"],
                    "escalation": "critical",
                }
            ],
        },
    }


def on_call_now() -> str:
    return on_call(Schedule.model_validate(PRIMARY), [], datetime.now().astimezone()).user


async def steps_of(h: Any, incident_id: int = 1) -> list[dict[str, Any]]:
    timeline = await (await h.client.get(f"/api/v1/incidents/{incident_id}")).json()
    return [n for n in timeline["notifications"] if n["channel"] == "escalation"]


async def test_nobody_acks_so_each_step_tells_its_target_in_turn(make_harness: MakeHarness, peers: Peers) -> None:
    """Step 1 messages whoever is on call now; step 2 messages another person after its wait; step 3
    pages PagerDuty (not on the route itself); the page's thread says who was told and what is next."""
    config = oncall_config(
        peers,
        {"notify": "schedule:primary"},
        {"notify": "user:U0CCC", "after": "1s"},
        {"notify": "pagerduty", "after": "1s"},
    )
    h = await make_harness(config, secret_values=peers.secret_values)
    await h.post_file(FIRING)
    first = on_call_now()
    await wait_until(lambda: len(peers.slack.direct_messages(first)) == 1, what="step 1's direct message")
    assert "you are paged: step 1 of 3 of escalation *critical*" in peers.slack.direct_messages(first)[0].text
    await wait_until(lambda: len(peers.slack.direct_messages("U0CCC")) == 1, within=10, what="step 2's direct message")
    await wait_until(lambda: len(peers.pagerduty.triggers()) == 1, within=10, what="step 3's PagerDuty trigger")
    assert peers.pagerduty.triggers()[0]["dedup_key"].startswith("alertbot/b7879370733ab294/")

    async def all_delivered() -> bool:  # recorded once each send has returned
        return [s["status"] for s in await steps_of(h)] == ["delivered"] * 3

    await wait_until(all_delivered, what="the three steps recorded as delivered")
    steps = await steps_of(h)
    assert [s["target"] for s in steps] == ["schedule:primary", "user:U0CCC", "pagerduty"]
    created = datetime.fromisoformat(steps[0]["created_at"])
    for number, step in enumerate(steps):  # none went out before its wait was over
        assert datetime.fromisoformat(step["delivered_at"]) >= created + timedelta(seconds=number)
    (page,) = [m for m in peers.slack.roots() if m.channel == peers.slack.channel_ids["#alerts-critical"]]

    def thread() -> list[str]:
        return [m.text for m in peers.slack.replies(page.ts)]

    await wait_until(lambda: len(thread()) >= 3, within=10, what="the page's thread saying what each step did")
    assert len(thread()) == 3, thread()
    assert thread()[1].startswith("Escalation *critical*: step 2 of 3 told <@U0CCC> at ")
    assert thread()[1].endswith(" unless acknowledged: `pagerduty`.")
    assert thread()[2].startswith("Escalation *critical*: step 3 of 3 told PagerDuty at ")
    assert "Ack" in str(page.blocks)  # the page itself keeps its buttons


async def test_an_ack_between_steps_stops_the_escalation(make_harness: MakeHarness, peers: Peers) -> None:
    config = oncall_config(peers, {"notify": "schedule:primary"}, {"notify": "user:U0CCC", "after": "2s"})
    h = await make_harness(config, secret_values={**peers.secret_values, "slack_signing_secret": SECRET})
    await h.post_file(FIRING)
    await wait_until(lambda: len(peers.slack.direct_messages(on_call_now())) == 1, what="step 1")
    assert "acknowledged" in (await command(h, "ack 1", user="UALICE"))["text"]

    async def stopped() -> bool:
        statuses = [(s["target"], s["status"]) for s in await steps_of(h)]
        return statuses == [("schedule:primary", "delivered"), ("user:U0CCC", "cancelled")]

    await wait_until(stopped, what="step 1 delivered, step 2 cancelled")
    steps = await steps_of(h)
    assert steps[1]["last_error"] == "acknowledged by slack:UALICE"
    assert peers.slack.direct_messages("U0CCC") == []


async def test_a_resolve_ends_the_escalation(make_harness: MakeHarness, peers: Peers) -> None:
    config = oncall_config(peers, {"notify": "user:U0CCC", "after": "30s"})
    h = await make_harness(config, secret_values=peers.secret_values)
    await h.post_file(FIRING)
    await wait_until(lambda: len(peers.slack.roots()) == 1, what="the page")  # no direct message yet
    await h.post_file("am-higherrorrate-nutrition-service-resolved.json")
    (step,) = await steps_of(h)
    assert (step["status"], step["last_error"]) == ("cancelled", "resolved")


async def test_a_restart_between_steps_neither_loses_nor_repeats_a_step(
    make_harness: MakeHarness, peers: Peers
) -> None:
    config = oncall_config(peers, {"notify": "user:U0BBB"}, {"notify": "user:U0CCC", "after": "2s"})
    h = await make_harness(config, secret_values=peers.secret_values)
    await h.post_file(FIRING)
    await wait_until(lambda: len(peers.slack.direct_messages("U0BBB")) == 1, what="step 1")
    await h.client.close()  # stopped with step 2 still waiting
    assert [s for s in peers.slack.direct_messages("U0CCC")] == []
    again = await make_harness(config, secret_values=peers.secret_values)
    await wait_until(lambda: len(peers.slack.direct_messages("U0CCC")) == 1, within=10, what="step 2 after the restart")

    async def both_delivered() -> bool:
        return [(s["target"], s["status"]) for s in await steps_of(again)] == [
            ("user:U0BBB", "delivered"),
            ("user:U0CCC", "delivered"),
        ]

    await wait_until(both_delivered, what="both steps recorded as delivered, once each")
    assert len(peers.slack.direct_messages("U0BBB")) == 1


async def test_shadow_mode_records_the_escalation_it_would_run(make_harness: MakeHarness, peers: Peers) -> None:
    config = {
        **oncall_config(peers, {"notify": "schedule:primary"}, {"notify": "pagerduty", "after": "5m"}),
        "mode": "shadow",
    }
    h = await make_harness(config, secret_values=peers.secret_values)
    await h.post_file(FIRING)
    decisions = await (await h.client.get("/api/v1/decisions")).json()
    (escalate,) = [d for d in decisions if d["kind"] == "escalate"]
    assert escalate["summary"] == "would escalate by critical: schedule:primary now, pagerduty after 5m"
    assert await steps_of(h) == []


async def test_oncall_says_who_is_on_call_and_an_override_changes_who_is_paged(
    make_harness: MakeHarness, peers: Peers
) -> None:
    config = oncall_config(peers, {"notify": "schedule:primary"})
    h = await make_harness(config, secret_values={**peers.secret_values, "slack_signing_secret": SECRET})
    now, then = on_call_now(), {"U0AAA": "U0BBB", "U0BBB": "U0AAA"}[on_call_now()]
    answer = (await command(h, "oncall"))["text"]
    assert answer.startswith(f"*primary*: <@{now}> until ") and answer.endswith(f", then <@{then}>")
    refused = (await command(h, "oncall override <@U0CCC|carol> 2h", user="UMALLORY"))["text"]
    assert "may not change who is on call" in refused and "slack.responders" in refused
    made = await command(h, "oncall override <@U0CCC|carol> 2h", user="UALICE")
    assert made["response_type"] == "in_channel" and "<@U0CCC> covers *primary* until" in made["text"]
    assert (await command(h, "oncall primary"))["text"].startswith("*primary*: <@U0CCC> (override) until ")
    assert "1m to 744h" in (await command(h, "oncall override @U0CCC 90d", user="UALICE"))["text"]
    await h.post_file(FIRING)
    await wait_until(lambda: len(peers.slack.direct_messages("U0CCC")) == 1, what="the override paged")
    assert peers.slack.direct_messages(now) == []


async def test_a_step_that_keeps_failing_does_not_hold_back_the_next(make_harness: MakeHarness, peers: Peers) -> None:
    """Slack down: the direct message keeps being retried, and PagerDuty is still paged on time."""
    config = oncall_config(peers, {"notify": "user:U0CCC"}, {"notify": "pagerduty", "after": "1s"})
    peers.slack.faults.down = True  # every Slack call answers 503
    h = await make_harness(config, secret_values=peers.secret_values)
    await h.post_file(FIRING)
    await wait_until(lambda: len(peers.pagerduty.triggers()) == 1, within=10, what="the PagerDuty step")
    dm, page = await steps_of(h)
    assert dm["status"] == "pending" and dm["attempts"] >= 1 and page["status"] in ("pending", "delivered")


async def test_a_shadow_trial_route_does_not_shadow_a_live_routes_escalation(
    make_harness: MakeHarness, peers: Peers
) -> None:
    config = oncall_config(peers, {"notify": "user:U0CCC"})
    config["oncall"]["escalations"].append({"name": "trial", "steps": [{"notify": "user:U0DDD"}]})
    trial = {"matchers": ['severity="critical"'], "mode": "shadow", "escalation": "trial", "continue": True}
    config["routes"]["routes"].insert(0, trial)
    h = await make_harness(config, secret_values=peers.secret_values)
    await h.post_file(FIRING)
    await wait_until(lambda: len(peers.slack.direct_messages("U0CCC")) == 1, what="the live policy's step")
    decisions = await (await h.client.get("/api/v1/decisions")).json()
    assert [d["summary"] for d in decisions if d["kind"] == "escalate"] == []


async def test_an_ack_through_the_api_stops_the_escalation(make_harness: MakeHarness, peers: Peers) -> None:
    config = oncall_config(peers, {"notify": "user:U0CCC", "after": "30s"})
    h = await make_harness(config, secret_values=peers.secret_values)
    await h.post_file(FIRING)
    await wait_until(lambda: len(peers.slack.roots()) == 1, what="the page")
    resp = await h.client.post("/api/v1/incidents/1/ack", json={"by": "cli:alice"})
    assert resp.status == 200 and (await resp.json())["acked_by"] == "cli:alice"
    (step,) = await steps_of(h)
    assert (step["status"], step["last_error"]) == ("cancelled", "acknowledged by cli:alice")
    assert (await h.client.post("/api/v1/incidents/1/ack", json={})).status == 409  # acknowledged already
    assert (await h.client.post("/api/v1/incidents/99/ack", json={})).status == 404
    assert (await h.client.post("/api/v1/incidents/1/resolve", json={"by": "pagerduty:x"})).status == 400
    resp = await h.client.post("/api/v1/incidents/1/resolve", json={"by": "cli:alice"})
    assert resp.status == 200 and (await resp.json())["status"] == "resolved"
    (page,) = peers.slack.roots()
    await wait_until(
        lambda: [m.text for m in peers.slack.replies(page.ts)][:1] == ["Acknowledged by cli:alice."],
        what="Slack told of the API's ack",
    )


async def test_an_ack_that_expires_while_still_firing_reenters_escalation(
    make_harness: MakeHarness, peers: Peers
) -> None:
    """``ack_timeout``: the acknowledgement lapses, the page loses it (its Ack button is back), the
    thread says why, and the policy runs again from its first step."""
    config = oncall_config(peers, {"notify": "user:U0CCC"}, ack_timeout="2s")
    h = await make_harness(config, secret_values={**peers.secret_values, "slack_signing_secret": SECRET})
    await h.post_file(FIRING)
    await wait_until(lambda: len(peers.slack.direct_messages("U0CCC")) == 1, what="step 1")
    assert "acknowledged" in (await command(h, "ack 1", user="UALICE"))["text"]
    await wait_until(lambda: len(peers.slack.direct_messages("U0CCC")) == 2, within=10, what="step 1 again")
    incident = await (await h.client.get("/api/v1/incidents/1")).json()
    assert incident["acked_by"] is None and incident["status"] == "firing"
    (page,) = [m for m in peers.slack.roots() if m.channel == peers.slack.channel_ids["#alerts-critical"]]
    await wait_until(
        lambda: any("acknowledgement by <@UALICE> expired after 2s" in m.text for m in peers.slack.replies(page.ts)),
        what="the thread saying the acknowledgement expired",
    )
    await wait_until(lambda: not page.text.startswith("[ACKED]"), what="the page no longer acknowledged")
    assert "acknowledged by" not in str(page.blocks) and "'text': 'Ack'" in str(page.blocks)
    assert [(s["target"], s["status"]) for s in await steps_of(h)][:2] == [
        ("user:U0CCC", "delivered"),
        ("ack_timeout", "delivered"),
    ]


async def test_an_ack_timeout_ends_with_a_resolve_or_a_new_ack(make_harness: MakeHarness, peers: Peers) -> None:
    config = oncall_config(peers, {"notify": "user:U0CCC"}, ack_timeout="1h")
    h = await make_harness(config, secret_values=peers.secret_values)
    await h.post_file(FIRING)
    await wait_until(lambda: len(peers.slack.direct_messages("U0CCC")) == 1, what="step 1")
    assert (await h.client.post("/api/v1/incidents/1/ack", json={"by": "cli:alice"})).status == 200
    timeout = (await steps_of(h))[-1]
    assert (timeout["target"], timeout["status"]) == ("ack_timeout", "pending")
    await h.post_file("am-higherrorrate-nutrition-service-resolved.json")
    timeout = (await steps_of(h))[-1]
    assert (timeout["target"], timeout["status"], timeout["last_error"]) == ("ack_timeout", "cancelled", "resolved")


async def test_an_unacknowledged_page_is_renotified_until_someone_acks(make_harness: MakeHarness, peers: Peers) -> None:
    """``renotify``: the page is re-posted to its channel (a thread reply also sent to the channel)
    every interval while nobody has acknowledged it; the ack stops it."""
    config = oncall_config(peers, {"notify": "user:U0CCC", "after": "1h"}, renotify="1s")
    h = await make_harness(config, secret_values={**peers.secret_values, "slack_signing_secret": SECRET})
    await h.post_file(FIRING)
    await wait_until(lambda: len(peers.slack.roots()) == 1, what="the page")
    (page,) = peers.slack.roots()

    def renotified() -> list[str]:
        return [m.text for m in peers.slack.replies(page.ts) if m.broadcast]

    await wait_until(lambda: len(renotified()) >= 2, within=10, what="two re-notifications")
    assert renotified()[0].startswith("<!here> Still firing and unacknowledged after ")
    assert "acknowledged" in (await command(h, "ack 1", user="UALICE"))["text"]
    pending = [s for s in await steps_of(h) if s["status"] == "pending"]
    assert pending == []  # neither the next re-notification nor the step in 1h is left
    renotifies = [s for s in await steps_of(h) if s["target"] == "renotify"]
    assert renotifies[-1]["status"] in ("cancelled", "delivered")


async def test_a_hand_off_tells_the_incoming_person_and_the_channel_what_is_still_open(
    make_harness: MakeHarness, peers: Peers
) -> None:
    """The shift running when alertbot starts is nobody's hand-off; an override taking over is: the
    incoming person gets a direct message, the schedule's hand-off channel a line, both naming the
    incidents still open."""
    config = oncall_config(peers, {"notify": "user:U0DDD", "after": "1h"})
    config["oncall"]["schedules"] = [{**PRIMARY, "handoff_channel": "#alerts"}]
    config["oncall"]["handoff_check"] = "100ms"
    h = await make_harness(config, secret_values={**peers.secret_values, "slack_signing_secret": SECRET})
    await h.post_file(FIRING)
    outgoing = on_call_now()
    await command(h, "oncall override <@U0CCC|carol> 2h", user="UALICE")
    await wait_until(lambda: len(peers.slack.direct_messages("U0CCC")) == 1, what="the incoming person told")
    told = peers.slack.direct_messages("U0CCC")[0].text
    assert told.startswith("You are now on call for *primary* (override) until ")
    assert "Still open: 1 — incident 1 *HighErrorRate* nutrition-service (critical, firing" in told

    def announced() -> list[str]:
        channel = peers.slack.channel_ids["#alerts"]
        return [m.text for m in peers.slack.roots() if m.channel == channel]

    await wait_until(lambda: len(announced()) == 1, what="the hand-off channel told")
    (line,) = announced()  # once: not also the shift running at start, nor by every check
    assert line.startswith("<@U0CCC> is now on call for *primary* (override) until ")
    assert f"taking over from <@{outgoing}>" in line and "Still open: 1 — incident 1" in line


def calendar_now() -> bytes:
    """An on-call export covering now: alice (by name) until an hour from now, then bob (by e-mail)."""
    now = datetime.now(UTC).replace(microsecond=0)

    def stamp(at: datetime) -> str:
        return at.strftime("%Y%m%dT%H%M%SZ")

    events = [
        ("alice-shift", now - timedelta(hours=1), now + timedelta(hours=1), "SUMMARY:alice"),
        ("bob-shift", now + timedelta(hours=1), now + timedelta(hours=3), "ATTENDEE:mailto:bob@example.com"),
    ]
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//alertbot tests//EN"]
    for uid, start, end, who in events:
        lines += ["BEGIN:VEVENT", f"UID:{uid}", f"DTSTAMP:{stamp(now)}", f"DTSTART:{stamp(start)}"]
        lines += [f"DTEND:{stamp(end)}", who, "END:VEVENT"]
    return "\r\n".join([*lines, "END:VCALENDAR", ""]).encode()


async def test_a_schedule_imported_from_ical_is_paged_and_survives_its_calendar_going_away(
    make_harness: MakeHarness, peers: Peers, aiohttp_server: Any
) -> None:
    """The calendar is fetched from its URL: step 1 messages whoever it has on call, `/alertbot
    oncall` reads it, and when the URL starts failing the last good copy goes on serving."""
    served = {"requests": 0, "status": 200}

    async def export(request: web.Request) -> web.Response:
        served["requests"] += 1
        return web.Response(body=calendar_now(), status=served["status"], content_type="text/calendar")

    app = web.Application()
    app.router.add_get("/export/primary.ics", export)
    calendar = await aiohttp_server(app)
    config = oncall_config(peers, {"notify": "schedule:primary"})
    people = {"alice": "U0AAA", "bob@example.com": "U0BBB"}
    url = str(calendar.make_url("/export/primary.ics"))
    config["oncall"]["schedules"] = [{"name": "primary", "ical": {"url": url, "users": people, "refresh": "1s"}}]
    h = await make_harness(config, secret_values={**peers.secret_values, "slack_signing_secret": SECRET})
    await h.post_file(FIRING)
    await wait_until(lambda: len(peers.slack.direct_messages("U0AAA")) == 1, what="the calendar's person paged")
    answer = (await command(h, "oncall"))["text"]
    assert answer.startswith("*primary*: <@U0AAA> until ") and answer.endswith(", then <@U0BBB>")
    served["status"] = 503
    before = served["requests"]

    async def asked_again() -> bool:
        text = (await command(h, "oncall"))["text"]
        assert text == answer  # the last good copy answers
        return served["requests"] > before

    await wait_until(asked_again, within=10, what="the calendar read again after its refresh")


async def test_a_silenced_page_is_neither_escalated_nor_renotified(make_harness: MakeHarness, peers: Peers) -> None:
    """Silencing a page (not an ack) quiets its escalation: the step due is skipped, and the
    re-notifications go on being planned (the silence may end while it still fires) but post nothing."""
    config = oncall_config(peers, {"notify": "user:U0CCC", "after": "2s"}, renotify="1s")
    h = await make_harness(config, secret_values=peers.secret_values)
    await h.post_file(FIRING)
    await wait_until(lambda: len(peers.slack.roots()) == 1, what="the page")
    silence = {"matchers": ['alertname="HighErrorRate"'], "duration": "1h", "created_by": "cli:alice"}
    assert (await h.client.post("/api/v1/silences", json=silence)).status == 201

    async def step_passed() -> bool:
        steps = await steps_of(h)
        dm = [s for s in steps if s["target"] == "user:U0CCC"]
        renotified = [s for s in steps if s["target"] == "renotify" and s["status"] == "delivered"]
        return dm[0]["status"] == "delivered" and len(renotified) >= 3

    await wait_until(step_passed, within=15, what="the step's time and three re-notification ticks passed")
    (page,) = [m for m in peers.slack.roots() if m.text.startswith("[CRITICAL]")]
    assert peers.slack.direct_messages("U0CCC") == []
    assert [m for m in peers.slack.replies(page.ts) if m.broadcast] == []
