"""Parsing webhook bodies: real Alertmanager payloads in, clear errors for everything else."""

from __future__ import annotations

import json
from typing import Any

import pytest

from alertbot.domain.fingerprint import label_fingerprint
from alertbot.domain.models import AlertStatus
from alertbot.domain.normalise import NORMALISED_ANNOTATION, TRUNCATION_MARKER, truncate_value
from alertbot.domain.parse import parse_alerts, parse_webhook
from alertbot.errors import PayloadError
from tests.helpers import all_payload_names, payload_bytes, payload_json


@pytest.mark.parametrize("name", all_payload_names())
def test_every_captured_payload_parses(name: str) -> None:
    """Every body a real Alertmanager 0.25 sent (and those built from them with 0.32+ fields) is
    accepted, with its alerts intact."""
    raw = payload_json(name)
    payload = parse_webhook(payload_bytes(name))
    assert payload.version == "4"
    assert [a.fingerprint for a in payload.alerts] == [a["fingerprint"] for a in raw["alerts"]]
    assert payload.group_key == raw["groupKey"]


@pytest.mark.parametrize("name", all_payload_names())
def test_fingerprint_is_computed_like_alertmanager(name: str) -> None:
    """Our FNV-1a label fingerprint equals the one Alertmanager put in each captured alert."""
    for alert in payload_json(name)["alerts"]:
        assert label_fingerprint(alert["labels"]) == alert["fingerprint"]


def test_missing_fingerprint_is_filled_in() -> None:
    """A sender that omits the fingerprint gets the one Alertmanager would have computed."""
    data = payload_json("am-servicedown-recipe-service-firing.json")
    expected = data["alerts"][0].pop("fingerprint")
    payload = parse_webhook(json.dumps(data).encode())
    assert payload.alerts[0].fingerprint == expected


def test_zero_ends_at_means_not_ended_and_resolved_keeps_real_time() -> None:
    """Go's zero time 0001-01-01 on firing alerts becomes None; resolved alerts keep endsAt."""
    firing = parse_webhook(payload_bytes("am-higherrorrate-nutrition-service-firing.json")).alerts[0]
    resolved = parse_webhook(payload_bytes("am-higherrorrate-nutrition-service-resolved.json")).alerts[0]
    assert firing.status is AlertStatus.FIRING and firing.ends_at is None
    assert resolved.status is AlertStatus.RESOLVED and resolved.ends_at is not None
    assert resolved.ends_at.isoformat() == "2026-11-29T19:54:54.168000+00:00"


def test_unknown_extra_fields_are_tolerated() -> None:
    """Newer Alertmanager versions add fields; they must not break ingest."""
    data = payload_json("am-highload-nutrition-service-firing.json")
    data["newTopLevel"] = {"x": 1}
    data["alerts"][0]["silencedBy"] = ["abc"]
    assert parse_webhook(json.dumps(data).encode()).alerts[0].alertname == "HighLoad"


def _mutated(mutate: object) -> bytes:
    data = payload_json("am-higherrorrate-ai-coach-firing.json")
    assert callable(mutate)
    mutate(data)
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"version": "4", "alerts": [', "not valid JSON"),
        (b"\xff\xfe{}", "not valid UTF-8"),
        (b"[1, 2]", "must be a JSON object"),
        (_mutated(lambda d: d.update(version="3")), "version: unsupported webhook payload version '3'"),
        (_mutated(lambda d: d.update(alerts=[])), "alerts: List should have at least 1 item"),
        (_mutated(lambda d: d["alerts"][0].pop("labels")), "alerts[0].labels: Field required"),
        (_mutated(lambda d: d["alerts"][0]["labels"].update(port=8080)), "alerts[0].labels.port: Input should be"),
        (_mutated(lambda d: d["alerts"][0].update(status="exploded")), "alerts[0].status: Input should be"),
        (_mutated(lambda d: d["alerts"][0].update(startsAt="yesterday")), "alerts[0].startsAt"),
        (_mutated(lambda d: d.pop("status")), "status: Field required"),
    ],
    ids=[
        "truncated-json",
        "non-utf8",
        "not-object",
        "wrong-version",
        "empty-alerts",
        "missing-labels",
        "non-string-label",
        "bad-status",
        "bad-time",
        "missing-status",
    ],
)
def test_bad_bodies_are_rejected_with_what_and_where(body: bytes, message: str) -> None:
    """Each kind of bad input gets a PayloadError naming the problem and its location."""
    with pytest.raises(PayloadError) as info:
        parse_webhook(body)
    assert message in info.value.message


def test_huge_label_values_are_cut_with_a_marker() -> None:
    """A 200 KB label value is data, not an error: it is kept up to the limit (webhook.max_value_bytes,
    16 KiB by default), ends in a visible marker, and the cut is noted on the alert."""
    big = "x" * 200_000
    payload = parse_webhook(_mutated(lambda d: d["alerts"][0]["labels"].update(pod=big)))
    pod = payload.alerts[0].labels["pod"]
    assert pod.startswith("x" * 16_000) and pod.endswith(TRUNCATION_MARKER) and len(pod.encode()) <= 16 * 1024
    assert "labels.pod truncated from 200000" in payload.alerts[0].annotations[NORMALISED_ANNOTATION]
    small = parse_webhook(_mutated(lambda d: d["alerts"][0]["labels"].update(pod=big)), max_value_bytes=1_000)
    assert len(small.alerts[0].labels["pod"].encode()) <= 1_000


def test_value_cut_keeps_whole_characters() -> None:
    """Cutting a multi-byte value never leaves half a character behind."""
    cut = truncate_value("é" * 1_000, 301)
    assert cut is not None and cut.endswith(TRUNCATION_MARKER) and len(cut.encode()) <= 301
    assert set(cut.removesuffix(TRUNCATION_MARKER)) == {"é"}
    assert truncate_value("short", 301) is None


@pytest.mark.parametrize(
    ("raw", "expected", "clamped"),
    [
        ("2026-11-29T19:54:53.462Z", "2026-11-29T19:54:53.462000+00:00", False),
        ("2026-11-29T20:54:53+01:00", "2026-11-29T19:54:53+00:00", False),
        ("0001-01-01T00:00:01Z", "1970-01-01T00:00:00+00:00", True),
        ("0001-01-01T00:30:00+01:00", "1970-01-01T00:00:00+00:00", True),
        ("1969-12-31T23:59:59Z", "1970-01-01T00:00:00+00:00", True),
        ("9999-12-31T23:30:00-01:00", "2200-01-01T00:00:00+00:00", True),
        ("2500-01-01T00:00:00Z", "2200-01-01T00:00:00+00:00", True),
    ],
)
def test_start_times_are_clamped_and_noted(raw: str, expected: str, clamped: bool) -> None:
    """startsAt outside 1970..2200 (or past what a datetime holds once converted to UTC) is clamped to
    the range and the clamp is noted in the alertbot_normalised annotation; sane times are untouched."""
    payload = parse_webhook(_mutated(lambda d: d["alerts"][0].update(startsAt=raw)))
    alert = payload.alerts[0]
    assert alert.starts_at.isoformat() == expected
    assert (NORMALISED_ANNOTATION in alert.annotations) is clamped
    if clamped:
        assert f"startsAt {raw[:19]}" in alert.annotations[NORMALISED_ANNOTATION]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0001-01-01T00:00:00Z", None),  # Go's zero time: a firing alert, not ended
        ("2026-11-29T20:00:00Z", "2026-11-29T20:00:00+00:00"),
        ("9999-12-31T23:59:59-05:00", "2200-01-01T00:00:00+00:00"),
    ],
)
def test_end_times(raw: str, expected: str | None) -> None:
    """endsAt: Alertmanager's zero time still means "not ended"; out-of-range times are clamped."""
    payload = parse_webhook(_mutated(lambda d: d["alerts"][0].update(endsAt=raw)))
    ends_at = payload.alerts[0].ends_at
    assert (ends_at.isoformat() if ends_at is not None else None) == expected


def test_one_bad_alert_is_rejected_alone() -> None:
    """parse_alerts keeps the good alerts of a payload and returns the bad one as rejected, with its
    raw JSON and a reason naming where; parse_webhook (files on the command line) refuses it."""

    def add_bad(d: dict[str, Any]) -> None:
        d["alerts"].append({"status": "firing", "labels": {"a": 1}, "startsAt": "2026-11-29T00:00:00Z"})

    body = _mutated(add_bad)
    parsed = parse_alerts(body)
    assert parsed.payload is not None and len(parsed.payload.alerts) == 1
    (rejected,) = parsed.rejected
    assert rejected.index == 1 and rejected.raw["labels"] == {"a": 1}
    assert rejected.reason.startswith("alerts[1].labels.a:")
    with pytest.raises(PayloadError, match=r"alerts\[1\]\.labels\.a"):
        parse_webhook(body)


def test_envelope_label_maps_are_bounded_too() -> None:
    """groupLabels, commonLabels and commonAnnotations are cut to webhook.max_value_bytes like an alert's."""
    big = "y" * 100_000

    def grow(d: dict[str, Any]) -> None:
        d["commonAnnotations"]["description"] = big
        d["groupLabels"]["service"] = big

    payload = parse_webhook(_mutated(grow), max_value_bytes=2_048)
    assert payload.common_annotations["description"].endswith(TRUNCATION_MARKER)
    assert len(payload.group_labels["service"].encode()) <= 2_048


def test_newer_alertmanager_fields_are_read() -> None:
    """notification_reason (0.32+) is kept, routeLabels (0.34+) join each alert's labels without
    overriding its own or changing its fingerprint, and an odd reason is cut, not refused."""
    payload = parse_webhook(payload_bytes("am034-higherrorrate-nutrition-service-repeat.json"))
    assert payload.notification_reason == "repeat interval elapsed"
    (alert,) = payload.alerts
    assert alert.labels["team"] == "nutrition" and alert.labels["escalation"] == "critical"
    assert alert.fingerprint == "b7879370733ab294"
    data = payload_json("am034-higherrorrate-nutrition-service-firing.json")
    data["routeLabels"] = {"service": "somebody-else", "team": "nutrition"}
    data["notification_reason"] = "x" * 10_000
    data["alerts"][0].pop("fingerprint")
    payload = parse_webhook(json.dumps(data).encode())
    assert payload.alerts[0].labels["service"] == "nutrition-service"
    assert payload.alerts[0].fingerprint == "b7879370733ab294"
    assert len(payload.notification_reason) == 64
    older = parse_webhook(payload_bytes("am-higherrorrate-nutrition-service-firing.json"))
    assert older.notification_reason == "" and "team" not in older.alerts[0].labels
