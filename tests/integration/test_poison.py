"""Per-alert isolation: nothing one alert of a payload contains may cost another alert its page.

Out-of-range times are clamped (and the clamp noted on the alert), oversized label and annotation
values are truncated with a visible marker, and an alert that still cannot be processed is stored
as a rejected record (raw JSON, reason; counted, logged once, listed by the API) while the rest of
its payload is accepted.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import structlog.testing

from alertbot.domain.normalise import NORMALISED_ANNOTATION, TRUNCATION_MARKER
from tests.conftest import Harness, MakeHarness
from tests.helpers import payload_json, wait_until

FIRING = "am-higherrorrate-nutrition-service-firing.json"


def _with_extra_alert(**changes: Any) -> dict[str, Any]:
    """The captured critical payload plus a second alert (another service) with ``changes`` applied."""
    data = payload_json(FIRING)
    extra = copy.deepcopy(data["alerts"][0])
    extra["labels"] = {**extra["labels"], "service": "poison-service", "alertname": "PoisonAlert"}
    extra["fingerprint"] = ""
    extra.update(changes)
    data["alerts"].append(extra)
    return data


async def _incidents(h: Harness, query: str = "") -> list[dict[str, Any]]:
    resp = await h.client.get(f"/api/v1/incidents{query}")
    assert resp.status == 200
    found: list[dict[str, Any]] = await resp.json()
    return found


async def _genuine_alert_paged(h: Harness) -> None:
    await wait_until(
        lambda: any(line["fingerprint"] == "b7879370733ab294" for line in h.console.lines()),
        what="the genuine critical alert's notification",
    )


async def test_year_one_start_does_not_lose_the_genuine_alert(make_harness: MakeHarness) -> None:
    """A payload with a genuine critical alert and one starting at 0001-01-01T00:00:01Z → 200; the
    genuine alert pages, and the other is stored with its start clamped to 1970 and the clamp noted."""
    h = await make_harness()
    resp = await h.post_payload(json.dumps(_with_extra_alert(startsAt="0001-01-01T00:00:01Z")))
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["alerts"] == 2
    await _genuine_alert_paged(h)
    stored = {i["alertname"]: i for i in await _incidents(h)}
    assert stored["PoisonAlert"]["starts_at"].startswith("1970-01-01T00:00:00")
    assert "startsAt 0001-01-01T00:00:01" in stored["PoisonAlert"]["annotations"][NORMALISED_ANNOTATION]
    assert NORMALISED_ANNOTATION not in stored["HighErrorRate"]["annotations"]


async def test_far_future_start_with_offset_is_clamped(make_harness: MakeHarness) -> None:
    """Year 9999 with a negative offset (past datetime's range once in UTC) is clamped to 2200, not a 500."""
    h = await make_harness()
    resp = await h.post_payload(json.dumps(_with_extra_alert(startsAt="9999-12-31T23:30:00-01:00")))
    assert resp.status == 200, await resp.text()
    await _genuine_alert_paged(h)
    stored = {i["alertname"]: i for i in await _incidents(h)}
    assert stored["PoisonAlert"]["starts_at"].startswith("2200-01-01T00:00:00")
    assert "clamped" in stored["PoisonAlert"]["annotations"][NORMALISED_ANNOTATION]


async def test_year_one_end_with_offset_is_clamped(make_harness: MakeHarness) -> None:
    """A resolved alert whose endsAt is year 1 with a positive offset (before datetime's range in UTC)
    is accepted; the genuine alert of the payload still pages."""
    h = await make_harness()
    body = _with_extra_alert(status="resolved", endsAt="0001-01-01T00:30:00+01:00")
    resp = await h.post_payload(json.dumps(body))
    assert resp.status == 200, await resp.text()
    await _genuine_alert_paged(h)


async def test_megabyte_label_value_is_truncated_with_a_marker(make_harness: MakeHarness) -> None:
    """A 1 MiB label value (in a body the limit allows) is cut to webhook.max_value_bytes with a
    visible marker; the alert is stored and notified, and so is the other alert of the payload."""
    h = await make_harness({"webhook": {"max_body_bytes": 4 * 1024 * 1024, "max_value_bytes": 1024}})
    data = _with_extra_alert()
    data["alerts"][1]["labels"]["blob"] = "z" * (1024 * 1024)
    data["alerts"][1]["annotations"]["description"] = "é" * (1024 * 1024)
    resp = await h.post_payload(json.dumps(data, ensure_ascii=False).encode())
    assert resp.status == 200, await resp.text()
    await wait_until(lambda: len(h.console.lines()) == 2, what="both notifications")
    poison = next(line for line in h.console.lines() if line["alertname"] == "PoisonAlert")
    blob = poison["labels"]["blob"]
    assert blob.startswith("z" * 900) and TRUNCATION_MARKER in blob and len(blob.encode()) <= 1024
    description = poison["annotations"]["description"]
    assert TRUNCATION_MARKER in description and len(description.encode()) <= 1024
    assert "labels.blob" in poison["annotations"][NORMALISED_ANNOTATION]


async def test_invalid_alert_is_rejected_and_the_rest_accepted(make_harness: MakeHarness) -> None:
    """An alert that fails validation on its own (a label that is not a string) is stored as a rejected
    record with its raw JSON and the reason, counted and logged once; the rest of the payload → 200.
    The same payload again (an HA peer, a retry) adds no second rejected record."""
    h = await make_harness()
    body = json.dumps(_with_extra_alert(labels={"alertname": "Broken", "replicas": 3}))
    with structlog.testing.capture_logs() as logs:
        resp = await h.post_payload(body)
        assert resp.status == 200, await resp.text()
        assert await resp.json() == {"status": "accepted", "alerts": 1, "rejected": 1}
        assert (await h.post_payload(body)).status == 200
    await _genuine_alert_paged(h)
    rejected = await _incidents(h, "?status=rejected")
    assert len(rejected) == 1
    record = rejected[0]
    assert record["status"] == "rejected"
    assert "labels.replicas" in record["reason"]
    assert json.loads(record["raw"])["labels"] == {"alertname": "Broken", "replicas": 3}
    assert [i["alertname"] for i in await _incidents(h)] == ["HighErrorRate"]
    assert len([e for e in logs if e["event"] == "alert_rejected"]) == 1
    metrics = await (await h.client.get("/metrics")).text()
    assert 'alertbot_alerts_rejected_total{reason="invalid"} 1.0' in metrics


async def test_rejected_raw_json_is_bounded(make_harness: MakeHarness) -> None:
    """A rejected alert's stored raw JSON is cut to a bounded size, whatever the alert's size."""
    h = await make_harness({"webhook": {"max_body_bytes": 4 * 1024 * 1024}})
    body = json.dumps(_with_extra_alert(labels={"alertname": "Broken", "n": 1}, junk="x" * (2 * 1024 * 1024)))
    assert (await h.post_payload(body)).status == 200
    (record,) = await _incidents(h, "?status=rejected")
    assert len(record["raw"].encode()) <= 64 * 1024 + 100


async def test_payload_of_only_invalid_alerts_is_400_and_recorded(make_harness: MakeHarness) -> None:
    """When no alert of a payload can be processed the answer is 400 naming the problem, and the
    alert is still recorded as rejected so that it can be found."""
    h = await make_harness()
    data = payload_json(FIRING)
    data["alerts"][0]["startsAt"] = "not a time"
    resp = await h.post_payload(json.dumps(data))
    assert resp.status == 400
    assert "alerts[0].startsAt" in (await resp.json())["error"]["message"]
    (record,) = await _incidents(h, "?status=rejected")
    assert "startsAt" in record["reason"]
