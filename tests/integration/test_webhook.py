"""POST /webhook/alertmanager through the real app: accept, dedup, resolve, and every bad input."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import structlog

from tests import postgres
from tests.conftest import MakeHarness
from tests.helpers import payload_bytes, payload_json, wait_until
from tests.postgres import PostgresServer

FIRING = "am-higherrorrate-nutrition-service-firing.json"
RESOLVED = "am-higherrorrate-nutrition-service-resolved.json"
JSON = {"Content-Type": "application/json"}


async def test_accepted_alert_is_classified_stored_and_notified(make_harness: MakeHarness) -> None:
    """A real payload → 200 with the count, one console line with the classification, one incident."""
    h = await make_harness()
    resp = await h.post_file(FIRING)
    assert resp.status == 200
    assert await resp.json() == {"status": "accepted", "alerts": 1}
    await wait_until(lambda: len(h.console.lines()) == 1, what="console notification")
    line = h.console.lines()[0]
    assert (line["event"], line["severity"], line["fingerprint"]) == ("trigger", "critical", "b7879370733ab294")
    assert line["stands_in_for"] == ["pagerduty", "slack:#alerts-critical"]
    assert "error_rate 7.2% > critical threshold 5%" in line["reason"]
    incidents = await (await h.client.get("/api/v1/incidents?status=firing")).json()
    assert [i["fingerprint"] for i in incidents] == ["b7879370733ab294"]


async def test_ha_pair_duplicates_notify_once(make_harness: MakeHarness) -> None:
    """The same notification from both receivers (and retried, concurrently) → one trigger, one resolve."""
    h = await make_harness()
    posts = [h.post_file(FIRING), h.post_file(FIRING.replace(".json", ".bearer.json")), h.post_file(FIRING)]
    assert [r.status for r in await asyncio.gather(*posts)] == [200, 200, 200]
    for name in (RESOLVED, RESOLVED.replace(".json", ".bearer.json"), RESOLVED):
        assert (await h.post_file(name)).status == 200
    await wait_until(lambda: len(h.console.lines()) >= 2, what="trigger and resolve")
    await h.dispatcher.deliver_due("console")  # nothing else is waiting to go out
    events = [(line["event"], line["incident_id"]) for line in h.console.lines()]
    assert events == [("trigger", 1), ("resolve", 1)]


async def test_resolved_goes_where_the_trigger_went_with_end_time(make_harness: MakeHarness) -> None:
    """The resolve notification carries endsAt and the incident becomes resolved."""
    h = await make_harness()
    await h.post_file(FIRING)
    await h.post_file(RESOLVED)
    await wait_until(lambda: len(h.console.lines()) == 2, what="resolve")
    resolve = h.console.lines()[1]
    assert resolve["event"] == "resolve" and resolve["ends_at"] == "2026-11-29T19:54:54.168000Z"
    assert resolve["stands_in_for"] == h.console.lines()[0]["stands_in_for"]
    incidents = await (await h.client.get("/api/v1/incidents?status=resolved")).json()
    assert len(incidents) == 1 and incidents[0]["resolved_at"] is not None


async def test_late_firing_copy_after_resolve_is_ignored(make_harness: MakeHarness) -> None:
    """An HA peer's delayed firing copy arriving after the resolve does not re-open or re-page."""
    h = await make_harness()
    await h.post_file(FIRING)
    await h.post_file(RESOLVED)
    assert (await h.post_file(FIRING)).status == 200
    await wait_until(lambda: len(h.console.lines()) == 2, what="trigger + resolve")
    await h.dispatcher.deliver_due("console")
    assert [line["event"] for line in h.console.lines()] == ["trigger", "resolve"]
    firing = await (await h.client.get("/api/v1/incidents?status=firing")).json()
    assert firing == []


async def test_new_episode_after_resolve_is_a_new_incident(make_harness: MakeHarness) -> None:
    """The same alert firing again later (new startsAt) is a new incident and pages again."""
    h = await make_harness()
    await h.post_file(FIRING)
    await h.post_file(RESOLVED)
    again = payload_json(FIRING)
    again["alerts"][0]["startsAt"] = "2026-11-29T21:00:00Z"
    await h.post_payload(json.dumps(again))
    await wait_until(lambda: len(h.console.lines()) == 3, what="second trigger")
    lines = h.console.lines()  # ordered per incident; the two incidents' notifications may interleave
    assert [x["event"] for x in lines if x["incident_id"] == 1] == ["trigger", "resolve"]
    assert [x["event"] for x in lines if x["incident_id"] == 2] == ["trigger"]


# Alertmanager 0.32+ says why it sent a notification (notification_reason) and 0.34 adds the
# labels of the route it took (routeLabels): tests/data/payloads/am034-*.json.
REPEAT_034 = "am034-higherrorrate-nutrition-service-repeat.json"


async def test_a_repeat_of_an_alert_this_store_never_saw_is_recorded_not_paged_again(
    make_harness: MakeHarness,
) -> None:
    """ "repeat interval elapsed" means Alertmanager delivered this very alert before; when the store
    has no record of it (a new database, a restore) it is recorded firing and muted with that
    reason — not paged again — and its resolve still goes out, to close the earlier page."""
    h = await make_harness()
    assert (await h.post_file(REPEAT_034)).status == 200
    await h.dispatcher.deliver_due("console")
    assert h.console.lines() == []
    (incident,) = await (await h.client.get("/api/v1/incidents?status=firing")).json()
    assert "repeat interval elapsed" in incident["suppressed_by"]
    assert "not paged again" in incident["suppressed_by"]
    assert (await h.post_file(REPEAT_034)).status == 200  # the next repeat changes nothing
    await h.dispatcher.deliver_due("console")
    assert h.console.lines() == []
    assert (await h.post_file("am034-higherrorrate-nutrition-service-resolved.json")).status == 200
    await wait_until(lambda: len(h.console.lines()) == 1, what="the resolve")
    assert h.console.lines()[0]["event"] == "resolve"


async def test_a_repeat_of_an_alert_paged_here_and_a_first_notification_behave_as_before(
    make_harness: MakeHarness,
) -> None:
    """The reason changes nothing for alerts the store knows: the first notification pages, its
    repeats refresh it."""
    h = await make_harness()
    await h.post_file("am034-higherrorrate-nutrition-service-firing.json")
    await h.post_file(REPEAT_034)
    await wait_until(lambda: len(h.console.lines()) == 1, what="the page")
    await h.dispatcher.deliver_due("console")
    assert [line["event"] for line in h.console.lines()] == ["trigger"]
    (incident,) = await (await h.client.get("/api/v1/incidents?status=firing")).json()
    assert incident["suppressed_by"] is None


async def test_route_labels_from_alertmanager_take_part_in_routing(make_harness: MakeHarness) -> None:
    """routeLabels (the labels of the Alertmanager route the group took) are matched like the
    alert's own labels, which win when both name the same label."""
    routes = {
        "receivers": ["slack"],
        "routes": [{"name": "nutrition team", "matchers": ['team="nutrition"'], "receivers": ["slack:#nutrition"]}],
    }
    h = await make_harness({"routes": routes})
    await h.post_file("am034-higherrorrate-nutrition-service-firing.json")
    own = payload_json("am034-higherrorrate-nutrition-service-firing.json")
    own["alerts"][0]["labels"]["team"] = "platform"
    own["alerts"][0]["startsAt"] = "2026-11-29T21:00:00Z"
    await h.post_payload(json.dumps(own))
    await wait_until(lambda: len(h.console.lines()) == 2, what="two pages")
    by_team = {line["labels"]["team"]: line["stands_in_for"] for line in h.console.lines()}
    assert by_team == {"nutrition": ["slack:#nutrition"], "platform": ["slack:#alerts-critical"]}
    assert h.console.lines()[0]["fingerprint"] == "b7879370733ab294"  # Alertmanager's identity stays


async def test_multi_alert_payload_gives_one_incident_each(make_harness: MakeHarness) -> None:
    """Three grocery pods in one notification → three incidents. Pod 3 (5.2 s) is critical, and a
    critical inhibits warnings of the same service, so only it is notified; the other two record why."""
    h = await make_harness()
    resp = await h.post_file("am-highlatencyp95-grocery-3alerts-firing.json")
    assert (await resp.json())["alerts"] == 3
    await wait_until(lambda: len(h.console.lines()) == 1, what="the critical notification")
    await h.dispatcher.deliver_due("console")
    assert [x["labels"]["pod"] for x in h.console.lines()] == ["grocery-7d9f8b6c5-klmno"]
    incidents = await (await h.client.get("/api/v1/incidents")).json()
    by_pod = {i["labels"]["pod"]: i for i in incidents}
    assert len(by_pod) == 3
    for pod in ("grocery-7d9f8b6c5-abcde", "grocery-7d9f8b6c5-fghij"):
        assert by_pod[pod]["severity"] == "warning"
        assert by_pod[pod]["suppressed_by"].startswith('inhibited by {severity="critical"}')


async def test_concurrent_posts_share_commits_and_lose_nothing(make_harness: MakeHarness) -> None:
    """60 concurrent distinct alerts: every one answered 200, stored and notified exactly once."""
    h = await make_harness()
    bodies = []
    for i in range(60):
        data = payload_json("am-highload-nutrition-service-firing.json")
        data["alerts"][0]["labels"]["service"] = f"svc-{i}"
        data["alerts"][0]["fingerprint"] = ""
        data["groupKey"] = f'{{}}:{{alertname="HighLoad", service="svc-{i}"}}'  # 60 groups: no storm
        bodies.append(json.dumps(data))
    responses = await asyncio.gather(*(h.post_payload(b) for b in bodies))
    assert {r.status for r in responses} == {200}
    await wait_until(lambda: len(h.console.lines()) == 60, what="60 notifications")
    assert len({x["fingerprint"] for x in h.console.lines()}) == 60


# --- auth ---------------------------------------------------------------------------------------


async def test_bearer_token_required_when_configured(make_harness: MakeHarness) -> None:
    """With ALERTBOT_WEBHOOK_TOKEN set: missing or wrong token → 401 JSON; the right one → 200."""
    h = await make_harness(secret_values={"webhook_token": "s3cret-token"})
    for token in (None, "wrong", "s3cret-token-but-longer", ""):
        resp = await h.post_file(FIRING, token=token)
        assert resp.status == 401
        assert (await resp.json())["error"]["code"] == "unauthorized"
    assert (await h.post_file(FIRING + "", token="s3cret-token")).status == 200


async def test_refused_requests_are_logged_once_per_client_per_minute(make_harness: MakeHarness) -> None:
    """A refused webhook leaves a trace in the log — status, reason, client address, never the token —
    once per client and status a minute, then with the count of those not logged in between."""
    now = [datetime(2026, 12, 2, 9, 0, tzinfo=UTC)]
    h = await make_harness(secret_values={"webhook_token": "s3cret-token"}, clock=lambda: now[0])
    with structlog.testing.capture_logs() as logs:
        for _ in range(3):
            assert (await h.post_file(FIRING, token="s3cret-tokex")).status == 401
        assert (await h.client.post("/webhook/alertmanager", data=b"{", headers=JSON)).status == 401
        now[0] += timedelta(seconds=61)
        assert (await h.post_file(FIRING, token="wrong")).status == 401
        assert (await h.post_file(FIRING, token="s3cret-token")).status == 200
    refused = [e for e in logs if e["event"] == "request_refused"]
    assert [(e["status"], e["reason"], e["remote"], e["path"], e["suppressed"]) for e in refused] == [
        (401, "missing or invalid bearer token", "127.0.0.1", "/webhook/alertmanager", 0),
        (401, "missing or invalid bearer token", "127.0.0.1", "/webhook/alertmanager", 3),
    ]
    assert refused[0]["log_level"] == "warning"
    assert "s3cret" not in repr(logs)


async def test_basic_auth_scheme_is_refused(make_harness: MakeHarness) -> None:
    h = await make_harness(secret_values={"webhook_token": "s3cret-token"})
    resp = await h.client.post(
        "/webhook/alertmanager",
        data=payload_bytes(FIRING),
        headers={"Content-Type": "application/json", "Authorization": "Basic s3cret-token"},
    )
    assert resp.status == 401


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "code", "message"),
    [
        (b'{"version": "4", "alerts": [', 400, "invalid_payload", "not valid JSON"),
        (b"\xff\xfe\x00garbage", 400, "invalid_payload", "not valid UTF-8"),
        (json.dumps({**payload_json(FIRING), "version": "3"}).encode(), 400, "invalid_payload", "version"),
        (json.dumps({**payload_json(FIRING), "alerts": []}).encode(), 400, "invalid_payload", "alerts"),
        (
            json.dumps(
                {**payload_json(FIRING), "alerts": [{"status": "firing", "startsAt": "2026-11-29T00:00:00Z"}]}
            ).encode(),
            400,
            "invalid_payload",
            "alerts[0].labels: Field required",
        ),
        (b"", 400, "invalid_payload", "not valid JSON"),
    ],
    ids=["malformed-json", "non-utf8", "wrong-version", "empty-alerts", "missing-labels", "empty-body"],
)
async def test_bad_bodies_get_400_and_lose_nothing(
    make_harness: MakeHarness, body: bytes, status: int, code: str, message: str
) -> None:
    """Each bad body → a JSON error naming the problem; alerts accepted before it are still there."""
    h = await make_harness()
    assert (await h.post_file(FIRING)).status == 200
    resp = await h.post_payload(body)
    assert resp.status == status
    error = (await resp.json())["error"]
    assert error["code"] == code and message in error["message"]
    assert (await h.post_file("am-servicedown-recipe-service-firing.json")).status == 200
    incidents = await (await h.client.get("/api/v1/incidents")).json()
    assert len(incidents) == 2


async def test_wrong_content_type_is_415(make_harness: MakeHarness) -> None:
    h = await make_harness()
    resp = await h.post_payload(payload_bytes(FIRING), content_type="text/plain")
    assert resp.status == 415
    assert (await resp.json())["error"]["code"] == "unsupported_media_type"


async def test_content_type_with_charset_is_fine(make_harness: MakeHarness) -> None:
    h = await make_harness()
    assert (await h.post_payload(payload_bytes(FIRING), content_type="application/json; charset=utf-8")).status == 200


async def test_ten_megabyte_body_is_413_before_it_is_read(make_harness: MakeHarness) -> None:
    """A 10 MB body with Content-Length → 413 JSON, and the process keeps serving."""
    h = await make_harness()
    resp = await h.post_payload(b"x" * (10 * 1024 * 1024))
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "payload_too_large"
    assert (await h.post_file(FIRING)).status == 200


async def test_chunked_body_over_the_limit_is_413(make_harness: MakeHarness) -> None:
    """Without Content-Length (chunked), the limit is enforced while reading."""
    h = await make_harness({"webhook": {"max_body_bytes": 4096}})

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"y" * 1024

    resp = await h.client.post("/webhook/alertmanager", data=chunks(), headers={"Content-Type": "application/json"})
    assert resp.status == 413


async def test_huge_label_value_is_cut_to_the_limit(make_harness: MakeHarness) -> None:
    """A 500 KB label value inside the 1 MiB body limit is accepted, stored and notified, cut to
    webhook.max_value_bytes (16 KiB by default) with a visible marker."""
    h = await make_harness()
    data = payload_json(FIRING)
    data["alerts"][0]["labels"]["blob"] = "z" * 500_000
    data["alerts"][0]["fingerprint"] = ""
    assert (await h.post_payload(json.dumps(data))).status == 200
    await wait_until(lambda: len(h.console.lines()) == 1, what="notification")
    blob = h.console.lines()[0]["labels"]["blob"]
    assert blob.startswith("z" * 16_000) and blob.endswith("[truncated by alertbot]") and len(blob) < 16_400


async def test_store_locked_gives_503_with_retry_after_then_recovers(make_harness: MakeHarness, tmp_path: Path) -> None:
    """SQLite: another process holding the database's write lock → 503 + Retry-After; released → 200."""
    path = tmp_path / "locked.db"
    h = await make_harness({"storage": {"url": f"sqlite:///{path}", "busy_timeout": "100ms"}})
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        resp = await h.post_file(FIRING)
        assert resp.status == 503
        assert resp.headers["Retry-After"].isdigit()
        assert (await resp.json())["error"]["code"] == "store_unavailable"
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert (await h.post_file(FIRING)).status == 200
    await wait_until(lambda: len(h.console.lines()) == 1, what="notification after recovery")


async def test_database_down_gives_503_and_not_ready_then_recovers(make_harness: MakeHarness) -> None:
    """PostgreSQL stopped: the webhook answers 503 + Retry-After (Alertmanager retries) and /readyz 503;
    started again: 200, ready, and the alert is notified."""
    if not postgres.available():
        pytest.skip("PostgreSQL binaries not installed")
    server = PostgresServer()
    server.start()
    try:
        h = await make_harness({"storage": {"url": server.new_database()}})
        assert (await h.client.get("/readyz")).status == 200
        server.stop()
        resp = await h.post_file(FIRING)
        assert resp.status == 503 and resp.headers["Retry-After"].isdigit()
        assert (await resp.json())["error"]["code"] == "store_unavailable"
        assert (await h.client.get("/readyz")).status == 503
        server.start()
        assert (await h.post_file(FIRING)).status == 200
        assert (await h.client.get("/readyz")).status == 200
        await wait_until(lambda: len(h.console.lines()) == 1, what="notification after recovery")
    finally:
        server.cleanup()
